/* The index's Redis module: its hot scripts' work in C (geo/module/__init__.py builds it).
 *   RH.SEARCH  the nearby search     (search.c, for geo/lua/search.lua)
 *   RH.CLAIM   a ping's directory step (ingest.c, for geo/lua/claim.lua)
 *   RH.PLACE   a ping's region step    (ingest.c, for geo/lua/place.lua)
 * Each takes the keys and arguments of the script it stands in for, in the same order, and
 * gives the same reply and writes, so geo/scripts.py calls it wherever the server has it and
 * the script elsewhere. Built against the vendored redismodule.h of Redis 7.0
 * (BSD-3-Clause, REDIS-COPYING). */
#include <stdlib.h>

#include "module.h"

void idmap_init(IdMap *m, size_t n) {
    size_t cap = 8;
    while (cap < 2 * n) cap *= 2;
    m->mask = cap - 1;
    m->ids = RedisModule_Alloc(cap * ID_SIZE);
    m->used = RedisModule_Calloc(cap, 1);
    m->values = RedisModule_Calloc(cap, sizeof(char *));
}

void idmap_free(IdMap *m) {
    for (size_t i = 0; i <= m->mask; i++)
        if (m->values[i] != NULL) RedisModule_Free(m->values[i]);
    RedisModule_Free(m->ids);
    RedisModule_Free(m->used);
    RedisModule_Free(m->values);
}

char **idmap_slot(IdMap *m, const char *id, int add) {
    uint64_t h;
    memcpy(&h, id, 8);     /* ids are random (UUIDs): their bytes hash themselves */
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ULL;
    for (size_t i = (size_t)(h >> 17) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->used[i]) {
            if (!add) return NULL;
            m->used[i] = 1;
            memcpy(m->ids[i], id, ID_SIZE);
            return &m->values[i];
        }
        if (memcmp(m->ids[i], id, ID_SIZE) == 0) return &m->values[i];
    }
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    if (RedisModule_Init(ctx, "ridehail", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    /* Each declares the keys its script declares, which route a call to their slot (on Redis
     * Cluster); the other keys it touches share their hash tag. */
    if (RedisModule_CreateCommand(ctx, "rh.search", SearchCommand, "readonly", 1, 1, 1)
            == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "rh.claim", ClaimCommand, "write deny-oom", 1, 2, 1)
            == REDISMODULE_ERR ||
        RedisModule_CreateCommand(ctx, "rh.place", PlaceCommand, "write deny-oom", 1, 1, 1)
            == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
