#include "rt_credcache.h"
#include "rt_crypto.h"

#include <string.h>
#include <apr_thread_mutex.h>
#include <openssl/crypto.h>

typedef struct {
    unsigned char tag[RT_SHA256_LEN];
    apr_int64_t until; /* 0: empty */
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

int rt_credcache_hit(rt_credcache *c, const char *scope, const char *id,
                     const char *secret, apr_int64_t now)
{
    unsigned char tag[RT_SHA256_LEN];
    slot *s;
    int hit;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return 0;
    }
    s = slot_for(c, tag);
#if APR_HAS_THREADS
    apr_thread_mutex_lock(c->lock);
#endif
    hit = s->until > now && CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0;
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(c->lock);
#endif
    return hit;
}

void rt_credcache_put(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t until)
{
    unsigned char tag[RT_SHA256_LEN];
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return;
    }
    s = slot_for(c, tag);
#if APR_HAS_THREADS
    apr_thread_mutex_lock(c->lock);
#endif
    memcpy(s->tag, tag, RT_SHA256_LEN);
    s->until = until;
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(c->lock);
#endif
}
