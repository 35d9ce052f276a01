#include "rt_credcache.h"
#include "rt_crypto.h"

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/crypto.h>

typedef struct {
    unsigned char tag[RT_SHA256_LEN];
    apr_int64_t since; /* verified at */
    apr_int64_t until; /* 0: empty */
    int renewing;      /* a caller is checking the credential again */
    char *value;       /* malloc'd, or NULL */
} slot;

struct rt_credcache {
    rt_hmac *key; /* random per process: tags mean nothing elsewhere */
    apr_size_t nslots;
    slot *slots;
#if APR_HAS_THREADS
    apr_thread_mutex_t *lock;
#endif
};

static apr_status_t wipe(void *data)
{
    rt_credcache *c = data;

    for (apr_size_t i = 0; i < c->nslots; i++) {
        free(c->slots[i].value);
    }
    OPENSSL_cleanse(c->slots, c->nslots * sizeof(slot));
    return APR_SUCCESS;
}

rt_credcache *rt_credcache_create(apr_pool_t *p, apr_size_t slots)
{
    rt_credcache *c = apr_pcalloc(p, sizeof(*c));
    unsigned char key[32];

    if (slots == 0 || !rt_random_bytes(key, sizeof(key))) {
        return NULL;
    }
    c->key = rt_hmac_new(p, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    if (c->key == NULL) {
        return NULL;
    }
    c->nslots = slots;
    c->slots = apr_pcalloc(p, slots * sizeof(slot));
#if APR_HAS_THREADS
    if (apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p) !=
        APR_SUCCESS) {
        return NULL;
    }
#endif
    apr_pool_cleanup_register(p, c, wipe, apr_pool_cleanup_null);
    return c;
}

/* HMAC(key, scope NUL id NUL secret): the NULs fix the boundaries, as
 * none of the three can hold one. */
static int make_tag(const rt_credcache *c, const char *scope, const char *id,
                    const char *secret, unsigned char tag[RT_SHA256_LEN])
{
    const void *parts[] = {scope, id, secret};
    apr_size_t lens[] = {strlen(scope) + 1, strlen(id) + 1, strlen(secret)};

    return rt_hmac_sha256(c->key, 3, parts, lens, tag);
}

static slot *slot_for(rt_credcache *c, const unsigned char *tag)
{
    apr_uint64_t h;

    memcpy(&h, tag, sizeof(h));
    return &c->slots[h % c->nslots];
}

/* The slot of a live entry for tag, or NULL; call with the lock held. */
static slot *find(rt_credcache *c, const unsigned char *tag, apr_int64_t now)
{
    slot *s = slot_for(c, tag);

    return s->until > now && CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0
               ? s
               : NULL;
}

static void lock(rt_credcache *c)
{
#if APR_HAS_THREADS
    apr_thread_mutex_lock(c->lock);
#endif
}

static void unlock(rt_credcache *c)
{
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(c->lock);
#endif
}

rt_credcache_result rt_credcache_hit(rt_credcache *c, const char *scope,
                                     const char *id, const char *secret,
                                     apr_int64_t now)
{
    unsigned char tag[RT_SHA256_LEN];
    rt_credcache_result res = RT_CREDCACHE_MISS;
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return RT_CREDCACHE_MISS;
    }
    lock(c);
    s = find(c, tag, now);
    if (s != NULL) {
        res = RT_CREDCACHE_HIT;
        if (!s->renewing && now >= s->until - (s->until - s->since) / 4) {
            s->renewing = 1;
            res = RT_CREDCACHE_RENEW;
        }
    }
    unlock(c);
    return res;
}

void rt_credcache_forget(rt_credcache *c, const char *scope, const char *id,
                         const char *secret)
{
    unsigned char tag[RT_SHA256_LEN];
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return;
    }
    s = slot_for(c, tag);
    lock(c);
    if (CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0) {
        s->until = 0;
    }
    unlock(c);
}

const char *rt_credcache_get(rt_credcache *c, apr_pool_t *p, const char *scope,
                             const char *id, apr_int64_t now)
{
    unsigned char tag[RT_SHA256_LEN];
    const char *v = NULL;
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, "", tag)) {
        return NULL;
    }
    lock(c);
    s = find(c, tag, now);
    if (s != NULL && s->value != NULL) {
        v = apr_pstrdup(p, s->value);
    }
    unlock(c);
    return v;
}

static void put(rt_credcache *c, const char *scope, const char *id,
                const char *secret, apr_int64_t now, apr_int64_t until,
                const char *value)
{
    unsigned char tag[RT_SHA256_LEN];
    char *copy = NULL;
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag) ||
        (value != NULL && (copy = strdup(value)) == NULL)) {
        return;
    }
    s = slot_for(c, tag);
    lock(c);
    free(s->value);
    memcpy(s->tag, tag, RT_SHA256_LEN);
    s->since = now;
    s->until = until;
    s->renewing = 0;
    s->value = copy;
    unlock(c);
}

void rt_credcache_put(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t now, apr_int64_t until)
{
    put(c, scope, id, secret, now, until, NULL);
}

void rt_credcache_put_value(rt_credcache *c, const char *scope, const char *id,
                            apr_int64_t now, apr_int64_t until,
                            const char *value)
{
    put(c, scope, id, "", now, until, value);
}
