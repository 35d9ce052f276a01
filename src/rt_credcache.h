/* Verified-credential caches: a bounded table, one per process, of keyed
 * hashes of (scope, id, secret) → expiry and an optional value. Only
 * successes are kept, never the secret itself. Application secrets use it
 * (never user passwords: an app whose secret changes or is removed is
 * refused again within the TTL), and so do bearer tokens whose signature
 * verified (the value is their payload). */
#ifndef RT_CREDCACHE_H
#define RT_CREDCACHE_H

#include <apr_pools.h>

typedef struct rt_credcache rt_credcache;

/* A cache of slots entries with a fresh random key; NULL on failure. */
rt_credcache *rt_credcache_create(apr_pool_t *p, apr_size_t slots);

/* 1 when (scope, id, secret) was verified and has not expired at now. */
int rt_credcache_hit(rt_credcache *c, const char *scope, const char *id,
                     const char *secret, apr_int64_t now);

/* Remembers a successful verification until the epoch second until. */
void rt_credcache_put(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t until);

/* The value stored for (scope, id) by rt_credcache_put_value, copied into
 * p, or NULL. */
const char *rt_credcache_get(rt_credcache *c, apr_pool_t *p, const char *scope,
                             const char *id, apr_int64_t now);

void rt_credcache_put_value(rt_credcache *c, const char *scope, const char *id,
                            apr_int64_t until, const char *value);

#endif
