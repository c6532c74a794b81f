/* What the index's module commands share (module.c registers them). */
#ifndef RIDEHAIL_MODULE_H
#define RIDEHAIL_MODULE_H

#include <stdint.h>
#include <string.h>

#include "redismodule.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "records are little-endian; this module reads them in place"
#endif

#define EARTH_M 6371008.8
#define ID_SIZE 16

static inline double f64(const char *p) {
    double v;
    memcpy(&v, p, 8);
    return v;
}

/* A set of 16-byte driver ids, each with a slot for a record the command keeps for it (open
 * addressing; sized once for the command's ids). */
typedef struct {
    size_t mask;
    char (*ids)[ID_SIZE];
    unsigned char *used;
    char **values;
} IdMap;

void idmap_init(IdMap *m, size_t n);
void idmap_free(IdMap *m);
/* The slot of `id`'s value; a new id gets a NULL one when `add`, else NULL is returned. */
char **idmap_slot(IdMap *m, const char *id, int add);

int SearchCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int ClaimCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int PlaceCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

#endif
