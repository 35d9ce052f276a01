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

typedef enum {
    RT_CREDCACHE_MISS = 0, /* not verified, or expired: check it */
    RT_CREDCACHE_HIT,      /* verified and not expired */
    /* A hit in the last quarter of the entry's life, answered to one caller
     * at a time: that caller checks the credential again while the others
     * keep hitting. Without it, all requests of a busy application would
     * miss together when the entry expires and all pay the provider's
     * check (bcrypt) at once. */
    RT_CREDCACHE_RENEW
} rt_credcache_result;

/* Whether (scope, id, secret) was verified and is still good at now for
 * a caller whose TTL is max_age: the entry has not expired (the until of
 * its put), and it was verified less than max_age seconds before now, so
 * that a caller with a shorter TTL than the one that put the entry is
 * never served an older verification (max_age <= 0: never a hit). After
 * MISS or RENEW the caller checks the credential and must then call
 * rt_credcache_put (it was right), rt_credcache_forget (it was wrong) or
 * rt_credcache_release (the check failed). While one caller checks a
 * credential, the others asking for the same one wait (at most 5 s) for
 * its success instead of checking too; when it fails they each check. */
rt_credcache_result rt_credcache_hit(rt_credcache *c, const char *scope,
                                     const char *id, const char *secret,
                                     apr_int64_t now, apr_int64_t max_age);

/* Whether (scope, id, secret) has a live entry for a caller whose TTL is
 * max_age, without starting or waiting for a check: a look, nothing else. */
int rt_credcache_peek(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t now, apr_int64_t max_age);

/* Remembers a successful verification made at now until the epoch second
 * until: an entry is never extended without a new verification. */
void rt_credcache_put(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t now, apr_int64_t until);

/* Drops the entry of (scope, id, secret), if any, and ends a check of it. */
void rt_credcache_forget(rt_credcache *c, const char *scope, const char *id,
                         const char *secret);

/* Ends a check of (scope, id, secret) that could not decide (the provider
 * failed): a live entry stays until it expires. */
void rt_credcache_release(rt_credcache *c, const char *scope, const char *id,
                          const char *secret);

/* The value stored for (scope, id) by rt_credcache_put_value, copied into
 * p, or NULL. */
const char *rt_credcache_get(rt_credcache *c, apr_pool_t *p, const char *scope,
                             const char *id, apr_int64_t now);

void rt_credcache_put_value(rt_credcache *c, const char *scope, const char *id,
                            apr_int64_t now, apr_int64_t until,
                            const char *value);

#endif
