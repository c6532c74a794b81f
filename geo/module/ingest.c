/* RH.CLAIM and RH.PLACE: a batch of pings' two steps (geo/lua/claim.lua, geo/lua/place.lua
 * with region.lua) as Redis module commands, registered by module.c.
 *
 * Same contract as the scripts: the same keys and arguments, the same reply, the same values
 * written (records, rate-limit buckets, crossings, sets, location samples), each computed in
 * the same order of floating-point operations, so a Redis may run either for any batch and
 * the index reads the same. Each script's header documents its records; this file follows
 * the scripts step by step, and names the step it mirrors where that helps.
 *
 * The scripts' cost in Redis (~70k instructions per ping at 100k drivers: turning every
 * reply and record into Lua values, the interpreter) is gone here: records are read by one
 * hash lookup and written in place. Each write is propagated as the command a script would
 * have propagated (HSET, HDEL, ZADD, ZREM, XADD with its id), so replicas and the AOF need
 * no module. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

#define CLAIM_IN 57    /* '<c16dddhc15' id, lat, lng, ts_ms, heading, region */
#define DIR_HEAD 60    /* '<dddBBhBddc15' a directory record without its status version */
#define DIR_SIZE 64    /* ... then '<I4' the status version */
#define CLAIM_OUT 31   /* '<BBBBc15dI4' outcome, status, product, publish, region, since, version */
#define SAMPLE_SIZE 44 /* '<c16dddBBh' */
#define REGION 15
#define CROSSED 2      /* flag bit: the last accepted ping crossed into another region */
#define PLACE_IN 72    /* the id, then an `at` record '<dddBBhdddI4' (56 bytes) */
#define AT_SIZE 56
#define HEAD_SIZE 36   /* '<dddBBhd': a tombstone, or a record written before `seen` */
#define SEEN_SIZE 44   /* a live record written before `since`; a tombstone with a pending status */
#define SINCE_SIZE 52  /* a live record written before `version` */
#define GONE 0

static const char NONE[REGION] = {0};

static uint32_t u32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int wrongtype(RedisModuleKey *key) {
    int type = RedisModule_KeyType(key);
    return type != REDISMODULE_KEYTYPE_HASH && type != REDISMODULE_KEYTYPE_EMPTY;
}

/* A field's value (a copy, to free), or NULL. */
static RedisModuleString *hget(RedisModuleCtx *ctx, RedisModuleKey *key, const char *field,
                               size_t len) {
    RedisModuleString *f = RedisModule_CreateString(ctx, field, len), *v = NULL;
    RedisModule_HashGet(key, REDISMODULE_HASH_NONE, f, &v, NULL);
    RedisModule_FreeString(ctx, f);
    return v;
}

static void hset(RedisModuleCtx *ctx, RedisModuleKey *key, RedisModuleString *name,
                 const char *field, size_t flen, const char *value, size_t vlen) {
    RedisModuleString *f = RedisModule_CreateString(ctx, field, flen);
    RedisModuleString *v = RedisModule_CreateString(ctx, value, vlen);
    RedisModule_HashSet(key, REDISMODULE_HASH_NONE, f, v, NULL);
    RedisModule_Replicate(ctx, "HSET", "sss", name, f, v);
    RedisModule_FreeString(ctx, f);
    RedisModule_FreeString(ctx, v);
}

static void hdel(RedisModuleCtx *ctx, RedisModuleKey *key, RedisModuleString *name,
                 const char *field, size_t flen) {
    RedisModuleString *f = RedisModule_CreateString(ctx, field, flen);
    if (RedisModule_HashSet(key, REDISMODULE_HASH_NONE, f, REDISMODULE_HASH_DELETE, NULL) > 0)
        RedisModule_Replicate(ctx, "HDEL", "ss", name, f);
    RedisModule_FreeString(ctx, f);
}

/* Write `n` entries, each a 16-byte id (the field) then its value of `size` bytes, as one
 * HSET. */
static void hset_all(RedisModuleCtx *ctx, RedisModuleKey *key, RedisModuleString *name,
                     const char *entries, size_t size, size_t n) {
    if (n == 0) return;
    RedisModuleString **args = RedisModule_Alloc(sizeof(*args) * 2 * n);
    for (size_t i = 0; i < n; i++) {
        const char *entry = entries + i * (ID_SIZE + size);
        args[2 * i] = RedisModule_CreateString(ctx, entry, ID_SIZE);
        args[2 * i + 1] = RedisModule_CreateString(ctx, entry + ID_SIZE, size);
        RedisModule_HashSet(key, REDISMODULE_HASH_NONE, args[2 * i], args[2 * i + 1], NULL);
    }
    RedisModule_Replicate(ctx, "HSET", "sv", name, args, 2 * n);
    for (size_t i = 0; i < 2 * n; i++) RedisModule_FreeString(ctx, args[i]);
    RedisModule_Free(args);
}

/* The region a driver left at its last crossing (field id.."mv": '<dc15'), or NONE. */
static void left_region(RedisModuleCtx *ctx, RedisModuleKey *dir, const char *id, char *out) {
    char field[ID_SIZE + 2];
    memcpy(field, id, ID_SIZE);
    memcpy(field + ID_SIZE, "mv", 2);
    RedisModuleString *kept = hget(ctx, dir, field, sizeof(field));
    memcpy(out, NONE, REGION);
    if (kept != NULL) {
        size_t len;
        const char *p = RedisModule_StringPtrLen(kept, &len);
        if (len >= 8 + REGION) memcpy(out, p + 8, REGION);
        RedisModule_FreeString(ctx, kept);
    }
}

static void claim_out(char *o, int outcome, int status, int product, int publish,
                      const char *region, double since, uint32_t version) {
    o[0] = (char)outcome, o[1] = (char)status, o[2] = (char)product, o[3] = (char)publish;
    memcpy(o + 4, region, REGION);
    memcpy(o + 19, &since, 8);
    memcpy(o + 27, &version, 4);
}

/* Each charged driver takes a token from its bucket (claim.lua, "ARGV[4..7]"). */
static void charge_rates(RedisModuleCtx *ctx, RedisModuleKey *dir, RedisModuleString *name,
                         const char *charge, size_t ncharge, double rate, double burst,
                         double now, IdMap *denied, char *denied_out, size_t *ndenied) {
    for (size_t i = 0; i < ncharge; i++) {
        const char *id = charge + i * ID_SIZE;
        char field[ID_SIZE + 2], value[16];
        memcpy(field, id, ID_SIZE);
        memcpy(field + ID_SIZE, "rl", 2);
        double tokens = burst, ts = now;
        RedisModuleString *b = hget(ctx, dir, field, sizeof(field));
        if (b != NULL) {
            size_t len;
            const char *p = RedisModule_StringPtrLen(b, &len);
            if (len >= 16) tokens = f64(p), ts = f64(p + 8);
            RedisModule_FreeString(ctx, b);
        }
        tokens = fmin(burst, tokens + fmax(0, now - ts) * rate / 1000);
        if (tokens >= 1) {
            tokens = tokens - 1;
        } else if (idmap_slot(denied, id, 0) == NULL) {
            idmap_slot(denied, id, 1);
            memcpy(denied_out + ID_SIZE * (*ndenied)++, id, ID_SIZE);
        }
        memcpy(value, &tokens, 8);
        memcpy(value + 8, &now, 8);
        hset(ctx, dir, name, field, sizeof(field), value, sizeof(value));
    }
}

/* Whether the move from (lat0, lng0) at ts0 to (lat, lng) at ts is faster than max_speed
 * (claim.lua: the haversine against sin(half)^2). */
static int impossible(double lat0, double lng0, double ts0, double lat, double lng, double ts,
                      double max_speed) {
    const double rad = M_PI / 180, HALF_PI = M_PI / 2;
    double half = max_speed * (ts - ts0) / 1000 / (2 * EARTH_M);
    if (!(half < HALF_PI)) return 0;
    double s1 = sin((lat - lat0) * rad / 2), s2 = sin((lng - lng0) * rad / 2);
    double bound = sin(half);
    return s1 * s1 + cos(lat0 * rad) * cos(lat * rad) * s2 * s2 > bound * bound;
}

/* RH.CLAIM <directory shard> <samples stream> <records> <max speed> <sample ms> <rate>
 *   <burst> <now ms> <charged ids> <backlog> <several per driver: 1|0>  (claim.lua) */
int ClaimCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 12) return RedisModule_WrongArity(ctx);
    size_t blen, clen, mlen;
    const char *blob = RedisModule_StringPtrLen(argv[3], &blen);
    const char *charge = RedisModule_StringPtrLen(argv[9], &clen);
    const char *several = RedisModule_StringPtrLen(argv[11], &mlen);
    double max_speed, sample, rate = 0, burst = 0, now = 0;
    if (blen % CLAIM_IN != 0 || clen % ID_SIZE != 0)
        return RedisModule_ReplyWithError(ctx, "ERR records or ids of the wrong size");
    if (RedisModule_StringToDouble(argv[4], &max_speed) != REDISMODULE_OK ||
        RedisModule_StringToDouble(argv[5], &sample) != REDISMODULE_OK ||
        (clen > 0 && (RedisModule_StringToDouble(argv[6], &rate) != REDISMODULE_OK ||
                      RedisModule_StringToDouble(argv[7], &burst) != REDISMODULE_OK ||
                      RedisModule_StringToDouble(argv[8], &now) != REDISMODULE_OK)))
        return RedisModule_ReplyWithError(ctx, "ERR a limit is not a number");
    RedisModuleKey *dir = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    if (wrongtype(dir)) {
        RedisModule_CloseKey(dir);
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    size_t n = blen / CLAIM_IN, ncharge = clen / ID_SIZE, ndenied = 0, nwrites = 0, nsamples = 0;
    int tracked = mlen == 1 && several[0] == '1';
    IdMap denied, latest;
    idmap_init(&denied, ncharge);
    if (tracked) idmap_init(&latest, n);
    char *denied_out = RedisModule_Alloc(clen + 1);
    char *out = RedisModule_Alloc(n * CLAIM_OUT + 1);
    char *writes = RedisModule_Alloc(n * (ID_SIZE + DIR_SIZE) + 1);   /* id, then record */
    char *samples = RedisModule_Alloc(n * SAMPLE_SIZE + 1);
    const char *error = NULL;
    if (ncharge > 0)
        charge_rates(ctx, dir, argv[1], charge, ncharge, rate, burst, now, &denied,
                     denied_out, &ndenied);
    for (size_t i = 0; i < n && error == NULL; i++) {
        const char *in = blob + i * CLAIM_IN, *id = in, *region = in + 42;
        double lat = f64(in + 16), lng = f64(in + 24), ts = f64(in + 32);
        char *o = out + i * CLAIM_OUT;
        if (ndenied > 0 && idmap_slot(&denied, id, 0) != NULL) {
            claim_out(o, 4, 0, 0, 0, NONE, 0, 0);
            continue;
        }
        RedisModuleString *held = NULL;
        const char *v = NULL;
        size_t vlen = 0;
        char **kept = tracked ? idmap_slot(&latest, id, 0) : NULL;
        if (kept != NULL && *kept != NULL) {
            v = *kept, vlen = DIR_SIZE;
        } else if ((held = hget(ctx, dir, id, ID_SIZE)) != NULL) {
            v = RedisModule_StringPtrLen(held, &vlen);
        }
        if (v == NULL) {
            claim_out(o, 0, 0, 0, 0, NONE, 0, 0);
            continue;
        }
        if (vlen < DIR_HEAD) {
            error = "ERR a directory record is too short";
            RedisModule_FreeString(ctx, held);
            break;
        }
        double lat0 = f64(v), lng0 = f64(v + 8), ts0 = f64(v + 16);
        int status = (unsigned char)v[24], product = (unsigned char)v[25];
        int flag0 = (unsigned char)v[28];
        double lastpub = f64(v + 29), since = f64(v + 37);
        char region0[REGION], evict[REGION];
        memcpy(region0, v + 45, REGION);
        uint32_t version = vlen >= DIR_SIZE ? u32(v + 60) : 0;   /* older records: none */
        int crossed = flag0 >= CROSSED;
        if (ts == ts0 && lat == lat0 && lng == lng0) {
            /* The last accepted ping sent again: answered as the first time. */
            if (crossed) left_region(ctx, dir, id, evict);
            else memcpy(evict, region0, REGION);
            claim_out(o, flag0 % 2 == 1 ? 2 : 3, status, product, 0, evict, since, version);
        } else if (ts <= ts0) {
            claim_out(o, 1, status, product, 0, region0, since, version);
        } else {
            int outcome = 3, flag = 0, publish = 0;
            if (ts0 > 0 && impossible(lat0, lng0, ts0, lat, lng, ts, max_speed))
                outcome = 2, flag = 1;
            if (outcome == 3 && ts - lastpub >= sample) {
                char *s = samples + SAMPLE_SIZE * nsamples++;
                publish = 1, lastpub = ts;
                memcpy(s, id, ID_SIZE);
                memcpy(s + 16, &lat, 8);
                memcpy(s + 24, &lng, 8);
                memcpy(s + 32, &ts, 8);
                s[40] = (char)status, s[41] = (char)product;
                memcpy(s + 42, in + 40, 2);
            }
            memcpy(evict, region0, REGION);
            char field[ID_SIZE + 2];
            memcpy(field, id, ID_SIZE);
            memcpy(field + ID_SIZE, "mv", 2);
            if (memcmp(region, region0, REGION) != 0 && memcmp(region0, NONE, REGION) != 0) {
                /* A crossing: the region left is kept until the next accepted ping. */
                char mv[8 + REGION];
                flag += CROSSED;
                memcpy(mv, &ts, 8);
                memcpy(mv + 8, region0, REGION);
                hset(ctx, dir, argv[1], field, sizeof(field), mv, sizeof(mv));
            } else if (crossed) {
                left_region(ctx, dir, id, evict);
                hdel(ctx, dir, argv[1], field, sizeof(field));
            }
            char *w = writes + nwrites++ * (ID_SIZE + DIR_SIZE), *r = w + ID_SIZE;
            memcpy(w, id, ID_SIZE);
            memcpy(r, &lat, 8);
            memcpy(r + 8, &lng, 8);
            memcpy(r + 16, &ts, 8);
            r[24] = (char)status, r[25] = (char)product;
            memcpy(r + 26, in + 40, 2);
            r[28] = (char)flag;
            memcpy(r + 29, &lastpub, 8);
            memcpy(r + 37, &since, 8);
            memcpy(r + 45, region, REGION);
            memcpy(r + 60, &version, 4);
            if (tracked) {
                char **slot = idmap_slot(&latest, id, 1);
                if (*slot == NULL) *slot = RedisModule_Alloc(DIR_SIZE);
                memcpy(*slot, r, DIR_SIZE);
            }
            claim_out(o, outcome, status, product, publish, evict, since, version);
        }
        if (held != NULL) RedisModule_FreeString(ctx, held);
    }
    if (error == NULL) {
        hset_all(ctx, dir, argv[1], writes, DIR_SIZE, nwrites);
    }
    RedisModule_CloseKey(dir);
    if (error == NULL && nsamples > 0) {
        RedisModuleCallReply *added = RedisModule_Call(
            ctx, "XADD", "!sccsccb", argv[2], "MAXLEN", "~", argv[10], "*", "s", samples,
            nsamples * SAMPLE_SIZE);
        if (added == NULL) {
            error = "ERR the samples could not be added";
        } else {
            if (RedisModule_CallReplyType(added) == REDISMODULE_REPLY_ERROR)
                error = "ERR the samples could not be added (is the stream key of another type?)";
            RedisModule_FreeCallReply(added);
        }
    }
    if (error != NULL) {
        RedisModule_ReplyWithError(ctx, error);
    } else {
        RedisModule_ReplyWithArray(ctx, 2);
        RedisModule_ReplyWithStringBuffer(ctx, out, n * CLAIM_OUT);
        RedisModule_ReplyWithStringBuffer(ctx, denied_out, ndenied * ID_SIZE);
    }
    idmap_free(&denied);
    if (tracked) idmap_free(&latest);
    RedisModule_Free(denied_out);
    RedisModule_Free(out);
    RedisModule_Free(writes);
    RedisModule_Free(samples);
    return REDISMODULE_OK;
}

/* Whether a step of session `since` at `ts` comes after a record's (region.lua's `after`). */
static int after(double since, double ts, double tsince, double tts) {
    return since > tsince || (since == tsince && ts > tts);
}

/* The region's sorted set of `product`'s drivers in the bucket of `score` (region.lua's
 * `bucket_key`): "<region prefix>:z:<product>:<bucket>". The bucket, an integer below 2^53
 * wherever the index wrote the score, is written by hand: `%.0f` took ~2% of Redis's time
 * per ping at 1M drivers. */
static RedisModuleString *bucket_key(RedisModuleCtx *ctx, const char *prefix, size_t plen,
                                     int product, double score, double div) {
    char tail[64], digits[24];
    double bucket = (score - (score - floor(score / div) * div)) / div;
    int len;
    if (bucket >= 0 && bucket < 9007199254740992.0 && bucket == floor(bucket)) {
        uint64_t v = (uint64_t)bucket;
        int n = 0;
        do {
            digits[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        len = snprintf(tail, sizeof(tail), ":z:%d:", product);
        while (n > 0) tail[len++] = digits[--n];
    } else {
        len = snprintf(tail, sizeof(tail), ":z:%d:%.0f", product, bucket);
    }
    char name[512];
    if (plen + (size_t)len <= sizeof(name)) {
        memcpy(name, prefix, plen);
        memcpy(name + plen, tail, (size_t)len);
        return RedisModule_CreateString(ctx, name, plen + (size_t)len);
    }
    RedisModuleString *key = RedisModule_CreateString(ctx, prefix, plen);
    RedisModule_StringAppendBuffer(ctx, key, tail, (size_t)len);
    return key;
}

/* Add or remove a driver in a set; propagated as ZADD or ZREM when it changed the set.
 * Returns 0 when the key holds another type. */
static int zset_write(RedisModuleCtx *ctx, RedisModuleString *name, RedisModuleString *id,
                      int add, double score) {
    RedisModuleKey *set = RedisModule_OpenKey(ctx, name, REDISMODULE_READ | REDISMODULE_WRITE);
    int type = RedisModule_KeyType(set), ok = 1;
    if (type != REDISMODULE_KEYTYPE_ZSET && type != REDISMODULE_KEYTYPE_EMPTY) {
        ok = 0;
    } else if (add) {
        int flags = 0;
        RedisModule_ZsetAdd(set, score, id, &flags);
        if (flags & (REDISMODULE_ZADD_ADDED | REDISMODULE_ZADD_UPDATED))
            RedisModule_Replicate(ctx, "ZADD", "sls", name, (long long)score, id);
    } else {
        int deleted = 0;
        RedisModule_ZsetRem(set, id, &deleted);
        if (deleted) RedisModule_Replicate(ctx, "ZREM", "ss", name, id);
    }
    RedisModule_CloseKey(set);
    return ok;
}

/* RH.PLACE <region's at key> <bucket divisor> <records>  (place.lua) */
int PlaceCommand(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 4) return RedisModule_WrongArity(ctx);
    size_t keylen, blen;
    const char *atname = RedisModule_StringPtrLen(argv[1], &keylen);
    const char *blob = RedisModule_StringPtrLen(argv[3], &blen);
    double div;
    if (keylen < 3 || memcmp(atname + keylen - 3, ":at", 3) != 0)
        return RedisModule_ReplyWithError(ctx, "ERR not an index region's at key");
    if (RedisModule_StringToDouble(argv[2], &div) != REDISMODULE_OK || !(div >= 1))
        return RedisModule_ReplyWithError(ctx, "ERR the bucket divisor is not a number >= 1");
    if (blen % PLACE_IN != 0)
        return RedisModule_ReplyWithError(ctx, "ERR records of the wrong size");
    RedisModuleKey *at = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    if (wrongtype(at)) {
        RedisModule_CloseKey(at);
        return RedisModule_ReplyWithError(ctx, REDISMODULE_ERRORMSG_WRONGTYPE);
    }
    size_t n = blen / PLACE_IN, plen = keylen - 3, nats = 0;
    long long applied = 0;
    IdMap latest;
    idmap_init(&latest, n);
    char *ats = RedisModule_Alloc(n * (ID_SIZE + AT_SIZE) + 1);   /* id, then record */
    const char *error = NULL;
    for (size_t i = 0; i < n && error == NULL; i++) {
        const char *in = blob + i * PLACE_IN, *id = in, *rec = in + ID_SIZE;
        double ts = f64(rec + 16), score = f64(rec + 28), since = f64(rec + 44);
        int product = (unsigned char)rec[24];
        uint32_t version = u32(rec + 52);
        RedisModuleString *held = NULL;
        const char *cur = NULL;
        size_t clen = 0;
        char **kept = idmap_slot(&latest, id, 0);
        if (kept != NULL && *kept != NULL) {
            cur = *kept, clen = AT_SIZE;
        } else if ((held = hget(ctx, at, id, ID_SIZE)) != NULL) {
            cur = RedisModule_StringPtrLen(held, &clen);
        }
        int ok = 1, filed = 0, newer = 0;   /* newer: a status change landed since the claim */
        char nstatus = 0, nversion[4];
        RedisModuleString *idstr = RedisModule_CreateString(ctx, id, ID_SIZE);
        if (cur != NULL) {
            if (clen < HEAD_SIZE || (clen > SEEN_SIZE && clen < SINCE_SIZE) ||
                (clen > SINCE_SIZE && clen < AT_SIZE)) {
                error = "ERR a region record of unknown size";
            } else {
                double cts = f64(cur + 16), cscore = f64(cur + 28), csince = 0;
                int cprod = (unsigned char)cur[24], cst = (unsigned char)cur[25];
                int has_since = clen > SEEN_SIZE;
                uint32_t cversion = clen > SINCE_SIZE ? u32(cur + 52) : 0;
                if (has_since) csince = f64(cur + 44);
                if (cst == GONE) {  /* a tombstone keeps its session where score is */
                    ok = after(since, ts, cscore, cts);
                    if (ok && clen >= SEEN_SIZE && u32(cur + 40) > version) {
                        newer = 1, nstatus = cur[36];
                        memcpy(nversion, cur + 40, 4);
                    }
                } else {
                    ok = has_since ? after(since, ts, csince, cts) : ts > cts;
                    if (ok) {
                        if (cversion > version) {
                            newer = 1, nstatus = cur[25];
                            memcpy(nversion, cur + 52, 4);
                        }
                        double cb = cscore - (cscore - floor(cscore / div) * div);
                        double b = score - (score - floor(score / div) * div);
                        if (cprod != product || cb != b) {
                            RedisModuleString *old = bucket_key(ctx, atname, plen, cprod,
                                                                cscore, div);
                            if (!zset_write(ctx, old, idstr, 0, 0))
                                error = REDISMODULE_ERRORMSG_WRONGTYPE;
                            RedisModule_FreeString(ctx, old);
                        } else if (cscore == score) {
                            filed = 1;  /* same cell: its set holds the driver already */
                        }
                    }
                }
            }
        }
        if (error == NULL && ok) {
            if (!filed) {
                RedisModuleString *set = bucket_key(ctx, atname, plen, product, score, div);
                if (!zset_write(ctx, set, idstr, 1, (double)(long long)score))
                    error = REDISMODULE_ERRORMSG_WRONGTYPE;
                RedisModule_FreeString(ctx, set);
            }
            char *w = ats + nats++ * (ID_SIZE + AT_SIZE), *r = w + ID_SIZE;
            memcpy(w, id, ID_SIZE);
            memcpy(r, rec, AT_SIZE);
            if (newer) {
                r[25] = nstatus;
                memcpy(r + 52, nversion, 4);
            }
            char **slot = idmap_slot(&latest, id, 1);
            if (*slot == NULL) *slot = RedisModule_Alloc(AT_SIZE);
            memcpy(*slot, r, AT_SIZE);
            applied++;
        }
        RedisModule_FreeString(ctx, idstr);
        if (held != NULL) RedisModule_FreeString(ctx, held);
    }
    if (error == NULL)
        hset_all(ctx, at, argv[1], ats, AT_SIZE, nats);
    RedisModule_CloseKey(at);
    idmap_free(&latest);
    RedisModule_Free(ats);
    if (error != NULL) return RedisModule_ReplyWithError(ctx, error);
    return RedisModule_ReplyWithLongLong(ctx, applied);
}
