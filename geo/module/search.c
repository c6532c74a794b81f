/* RH.SEARCH: the index's nearby search (geo/lua/search.lua) as a Redis module command.
 *
 * Same contract as the Lua script, so the client sends the same arguments and reads the same
 * reply (geo/scripts.py picks this command when the server has it):
 *   RH.SEARCH <at key> <product> <query> <cells>
 *   query: '<ddddHB' lat, lng, limit_m, the oldest fresh seen time (ms), k, wanted status.
 *   cells: one record per cell, sorted by its first field: '<d' a lower bound on the distance
 *     from the query to any point of the cell, then three texts each prefixed by its length
 *     in one byte: the cell's bucket (the sorted set `<region>:z:<product>:<bucket>` holds
 *     it) and the lowest and highest score of its drivers.
 *   Reply: records '<dc16dddh' of distance (m), id, lat, lng, ts_ms, heading, nearest first.
 * Reads cells in order and stops once it holds k drivers all nearer than the next cell's
 * floor. A driver's `at` record (geo/lua/region.lua) is '<dddBBhdd...' lat, lng, ts, product,
 * status, heading, score, seen (36-byte records, written before `seen` existed, are read by
 * ts). The distance is the script's haversine, computed in the same order of operations, so
 * both paths return the same drivers at the same distances.
 *
 * What the script pays for in Redis (turning each ZRANGE and HMGET reply into Lua values,
 * the interpreter, its garbage collector: ~750k instructions per query at 100k drivers) is
 * gone here: the sorted set is walked in place and each record read by one hash lookup.
 * Registered by module.c. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

#define QUERY_SIZE 35  /* '<ddddHB' */
#define FOUND_SIZE 50  /* '<dc16dddh' */
#define HEAD_SIZE 36   /* the oldest `at` record: '<dddBBhd' */
#define SEEN_END 44    /* a record with `seen`: bytes 36..44 */

typedef struct {
    double d, lat, lng, ts;
    int16_t heading;
    char id[16];
} Found;

typedef struct {
    double lat0d, lng0d, lat0, coslat0, radius, fresh_after;
    int k, want, nbest;
    Found *best;
} Search;

/* A fresh driver with the wanted status: keep it if it is among the k nearest so far (after
 * the ones already held at the same distance, as the script does). */
static void keep(Search *s, const char *id, double lat, double lng, double ts,
                 int16_t heading) {
    const double rad = M_PI / 180;
    double la = lat * rad;
    double s1 = sin((la - s->lat0) / 2), s2 = sin((lng - s->lng0d) * rad / 2);
    double d = 2 * EARTH_M * asin(fmin(1, sqrt(s1 * s1 + s->coslat0 * cos(la) * s2 * s2)));
    if (d > s->radius || (s->nbest >= s->k && d >= s->best[s->nbest - 1].d)) return;
    int pos = s->nbest < s->k ? s->nbest++ : s->k - 1;
    while (pos > 0 && s->best[pos - 1].d > d) {
        s->best[pos] = s->best[pos - 1];
        pos--;
    }
    Found *f = &s->best[pos];
    f->d = d, f->lat = lat, f->lng = lng, f->ts = ts, f->heading = heading;
    memcpy(f->id, id, 16);
}

/* Read the waiting drivers' records and keep the fresh ones with the wanted status. */
static void read_waiting(RedisModuleCtx *ctx, Search *s, RedisModuleKey *at,
                         RedisModuleString **waiting, int *nwaiting) {
    for (int i = 0; i < *nwaiting; i++) {
        RedisModuleString *record = NULL;
        size_t idlen, len;
        const char *id = RedisModule_StringPtrLen(waiting[i], &idlen);
        if (at != NULL) RedisModule_HashGet(at, REDISMODULE_HASH_NONE, waiting[i], &record, NULL);
        if (record != NULL) {
            const char *r = RedisModule_StringPtrLen(record, &len);
            if (idlen == 16 && (len == HEAD_SIZE || len >= SEEN_END)) {
                double ts = f64(r + 16), seen = len > HEAD_SIZE ? f64(r + 36) : ts;
                int16_t heading;
                memcpy(&heading, r + 26, 2);
                if ((unsigned char)r[25] == s->want && seen >= s->fresh_after)
                    keep(s, id, f64(r), f64(r + 8), ts, heading);
            }
            RedisModule_FreeString(ctx, record);
        }
        RedisModule_FreeString(ctx, waiting[i]);
    }
    *nwaiting = 0;
}

/* One length-prefixed text of a cell record, or NULL past the end. */
static const char *text(const char *p, const char *end, size_t *len, const char **next) {
    if (p >= end) return NULL;
    *len = (unsigned char)*p;
    if ((size_t)(end - p - 1) < *len) return NULL;
    *next = p + 1 + *len;
    return p + 1;
}

/* A score as the client sends it: a decimal integer below 2^53 (H3 digits), exact as a double
 * (strtod took 8% of the command's instructions). */
static int parse_score(const char *p, size_t len, double *out) {
    uint64_t v = 0;
    if (len == 0 || len > 16) return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = (double)v;
    return 1;
}

/* The sets a search has opened, by bucket: cells read in floor order often share one (a
 * coarsest-level cell's), which is then looked up in the keyspace once per search. */
#define OPEN_SETS 16
typedef struct {
    int n;
    size_t len[OPEN_SETS];
    char bucket[OPEN_SETS][256];
    RedisModuleKey *key[OPEN_SETS];
} OpenSets;

static RedisModuleKey *open_set(RedisModuleCtx *ctx, OpenSets *open, char *name, size_t head,
                                const char *bucket, size_t blen, int *owned) {
    for (int i = 0; i < open->n; i++)
        if (open->len[i] == blen && memcmp(open->bucket[i], bucket, blen) == 0) {
            *owned = 0;
            return open->key[i];
        }
    memcpy(name + head, bucket, blen);
    RedisModuleString *setname = RedisModule_CreateString(ctx, name, head + blen);
    RedisModuleKey *set = RedisModule_OpenKey(ctx, setname, REDISMODULE_READ);
    RedisModule_FreeString(ctx, setname);
    *owned = open->n == OPEN_SETS;
    if (!*owned) {
        open->len[open->n] = blen;
        memcpy(open->bucket[open->n], bucket, blen);
        open->key[open->n++] = set;
    }
    return set;
}

int SearchCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 5) return RedisModule_WrongArity(ctx);
    size_t keylen, plen, qlen, clen;
    const char *atname = RedisModule_StringPtrLen(argv[1], &keylen);
    const char *product = RedisModule_StringPtrLen(argv[2], &plen);
    const char *q = RedisModule_StringPtrLen(argv[3], &qlen);
    const char *cells = RedisModule_StringPtrLen(argv[4], &clen);
    if (qlen != QUERY_SIZE) return RedisModule_ReplyWithError(ctx, "ERR query must be 35 bytes");
    if (keylen < 3 || memcmp(atname + keylen - 3, ":at", 3) != 0 || plen > 64)
        return RedisModule_ReplyWithError(ctx, "ERR not an index region's at key");
    Search s;
    uint16_t k;
    s.lat0d = f64(q), s.lng0d = f64(q + 8), s.radius = f64(q + 16), s.fresh_after = f64(q + 24);
    memcpy(&k, q + 32, 2);
    s.k = k, s.want = (unsigned char)q[34], s.nbest = 0;
    s.lat0 = s.lat0d * (M_PI / 180), s.coslat0 = cos(s.lat0);
    if (s.k == 0) return RedisModule_ReplyWithStringBuffer(ctx, "", 0);

    RedisModuleKey *at = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ);
    int attype = RedisModule_KeyType(at);
    if (attype != REDISMODULE_KEYTYPE_HASH && attype != REDISMODULE_KEYTYPE_EMPTY) {
        RedisModule_CloseKey(at);
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    /* A set's name: the region's prefix (the at key less ":at"), ":z:", product, ":", bucket. */
    char name[512];
    size_t head = keylen - 3 + 3 + plen + 1;
    if (head + 255 > sizeof(name)) {
        RedisModule_CloseKey(at);
        return RedisModule_ReplyWithError(ctx, "ERR key too long");
    }
    memcpy(name, atname, keylen - 3);
    memcpy(name + keylen - 3, ":z:", 3);
    memcpy(name + keylen, product, plen);
    name[head - 1] = ':';

    OpenSets open;
    open.n = 0;
    s.best = RedisModule_Alloc(sizeof(Found) * s.k);
    int nwaiting = 0, cap = 64;
    RedisModuleString **waiting = RedisModule_Alloc(sizeof(*waiting) * cap);
    const char *error = NULL;
    const char *p = cells, *end = cells + clen;
    while (p < end) {
        size_t blen, lolen, hilen;
        const char *bucket, *lo, *hi, *next;
        double floor, min, max;
        if (end - p < 8) { error = "ERR bad cells"; break; }
        floor = f64(p);
        if (!(bucket = text(p + 8, end, &blen, &next)) || !(lo = text(next, end, &lolen, &next))
            || !(hi = text(next, end, &hilen, &next)) || !parse_score(lo, lolen, &min)
            || !parse_score(hi, hilen, &max)) { error = "ERR bad cells"; break; }
        p = next;
        if (floor > s.radius || (s.nbest >= s.k && s.best[s.nbest - 1].d <= floor)) break;
        int owned;
        RedisModuleKey *set = open_set(ctx, &open, name, head, bucket, blen, &owned);
        int type = RedisModule_KeyType(set);
        if (type == REDISMODULE_KEYTYPE_ZSET &&
            RedisModule_ZsetFirstInScoreRange(set, min, max, 0, 0) == REDISMODULE_OK) {
            while (!RedisModule_ZsetRangeEndReached(set)) {
                if (nwaiting == cap) {
                    cap *= 2;
                    waiting = RedisModule_Realloc(waiting, sizeof(*waiting) * cap);
                }
                waiting[nwaiting++] = RedisModule_ZsetRangeCurrentElement(set, NULL);
                if (!RedisModule_ZsetRangeNext(set)) break;
            }
            RedisModule_ZsetRangeStop(set);
        } else if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_ZSET) {
            error = REDISMODULE_ERRORMSG_WRONGTYPE;
        }
        if (owned) RedisModule_CloseKey(set);
        if (error) break;
        if (s.nbest + nwaiting >= s.k) read_waiting(ctx, &s, at, waiting, &nwaiting);
    }
    if (!error) read_waiting(ctx, &s, at, waiting, &nwaiting);
    for (int i = 0; i < nwaiting; i++) RedisModule_FreeString(ctx, waiting[i]);
    RedisModule_Free(waiting);
    for (int i = 0; i < open.n; i++) RedisModule_CloseKey(open.key[i]);
    RedisModule_CloseKey(at);
    if (error) {
        RedisModule_Free(s.best);
        return RedisModule_ReplyWithError(ctx, error);
    }
    char *out = RedisModule_Alloc(FOUND_SIZE * (size_t)s.nbest + 1);
    for (int i = 0; i < s.nbest; i++) {
        char *o = out + FOUND_SIZE * i;
        Found *f = &s.best[i];
        memcpy(o, &f->d, 8);
        memcpy(o + 8, f->id, 16);
        memcpy(o + 24, &f->lat, 8);
        memcpy(o + 32, &f->lng, 8);
        memcpy(o + 40, &f->ts, 8);
        memcpy(o + 48, &f->heading, 2);
    }
    RedisModule_ReplyWithStringBuffer(ctx, out, FOUND_SIZE * (size_t)s.nbest);
    RedisModule_Free(out);
    RedisModule_Free(s.best);
    return REDISMODULE_OK;
}
