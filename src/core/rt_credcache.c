#include "rt_credcache.h"
#include "rt_crypto.h"

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_time.h>
#include <openssl/crypto.h>

/* How long a request waits for another one checking the same credential
 * before it checks it itself. */
#define WAIT_AT_MOST apr_time_from_sec(5)

typedef struct {
    unsigned char tag[RT_SHA256_LEN];
    apr_int64_t since;  /* verified at */
    apr_int64_t until;  /* 0: empty */
    int checking;       /* a caller is checking this tag with the provider */
    unsigned int ended; /* checks ended in this slot: a waiter's wake-up */
    char *value;        /* malloc'd, or NULL */
} slot;

struct rt_credcache {
    rt_hmac *key; /* random per process: tags mean nothing elsewhere */
    apr_size_t nslots;
    slot *slots;
#if APR_HAS_THREADS
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *checked; /* broadcast when a check ends */
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

    if (slots == 0 || !rt_crypto_random(key, sizeof(key))) {
        return NULL;
    }
    c->key = rt_crypto_hmac_new(p, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    if (c->key == NULL) {
        return NULL;
    }
    c->nslots = slots;
    c->slots = apr_pcalloc(p, slots * sizeof(slot));
#if APR_HAS_THREADS
    if (apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS ||
        apr_thread_cond_create(&c->checked, p) != APR_SUCCESS) {
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

    return rt_crypto_hmac_sha256(c->key, 3, parts, lens, tag);
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

/* A check ended (put or forget): the requests waiting for it look again.
 * Call with the lock held. */
static void check_ended(rt_credcache *c, slot *s)
{
    s->checking = 0;
    s->ended++;
#if APR_HAS_THREADS
    apr_thread_cond_broadcast(c->checked);
#endif
}

/* Waits (lock held) until a check ends or the deadline; 0 at the deadline
 * or without threads. */
static int wait_check(rt_credcache *c, apr_time_t deadline)
{
#if APR_HAS_THREADS
    apr_interval_time_t left = deadline - apr_time_now();

    if (left > 0) {
        apr_thread_cond_timedwait(c->checked, c->lock, left);
        return 1;
    }
#else
    (void)c;
    (void)deadline;
#endif
    return 0;
}

/* When the entry of s ends for a caller whose TTL is max_age: at its own
 * expiry, or max_age seconds after its verification if that is sooner.
 * The lock is held. */
static apr_int64_t ends_for(const slot *s, apr_int64_t max_age)
{
    if (s->until == 0 || max_age <= 0) {
        return 0;
    }
    return s->since > s->until - max_age ? s->until : s->since + max_age;
}

rt_credcache_result rt_credcache_hit(rt_credcache *c, const char *scope,
                                     const char *id, const char *secret,
                                     apr_int64_t now, apr_int64_t max_age)
{
    unsigned char tag[RT_SHA256_LEN];
    apr_time_t deadline = apr_time_now() + WAIT_AT_MOST;
    rt_credcache_result res;
    unsigned int ended = 0;
    int waited = 0;
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return RT_CREDCACHE_MISS;
    }
    s = slot_for(c, tag);
    lock(c);
    for (;;) {
        int same = CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0;
        /* The entry's life as this caller sees it: bounded by its TTL,
         * also when the entry was put with a longer one. */
        apr_int64_t until = same ? ends_for(s, max_age) : 0;

        if (until > now) {
            res = RT_CREDCACHE_HIT;
            if (!s->checking && now >= until - (until - s->since) / 4) {
                s->checking = 1;
                res = RT_CREDCACHE_RENEW;
            }
            break;
        }
        /* Another request checks this very credential: its success will
         * do for this one too. Once that check has ended without one (a
         * wrong secret, a provider error) or the wait is over, this
         * request checks by itself, alongside the others that waited:
         * they do not queue behind each other. */
        if (same && s->checking && (!waited || s->ended == ended)) {
            if (!waited) {
                waited = 1;
                ended = s->ended;
            }
            if (wait_check(c, deadline)) {
                continue;
            }
        }
        res = RT_CREDCACHE_MISS;
        /* Claim the slot for this check unless this request waited, or the
         * slot holds another live entry or another check. An entry too old
         * for this caller is claimed too: its check renews it. */
        if (!waited && !s->checking && (s->until <= now || same)) {
            free(s->value);
            s->value = NULL;
            memcpy(s->tag, tag, RT_SHA256_LEN);
            s->until = 0;
            s->checking = 1;
        }
        break;
    }
    unlock(c);
    return res;
}

int rt_credcache_peek(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, apr_int64_t now, apr_int64_t max_age)
{
    unsigned char tag[RT_SHA256_LEN];
    slot *s;
    int live;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return 0;
    }
    s = slot_for(c, tag);
    lock(c);
    live = CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0 &&
           ends_for(s, max_age) > now;
    unlock(c);
    return live;
}

/* Ends a check of (scope, id, secret), dropping its entry when drop is
 * set. */
static void end_check(rt_credcache *c, const char *scope, const char *id,
                      const char *secret, int drop)
{
    unsigned char tag[RT_SHA256_LEN];
    slot *s;

    if (c == NULL || !make_tag(c, scope, id, secret, tag)) {
        return;
    }
    s = slot_for(c, tag);
    lock(c);
    if (CRYPTO_memcmp(s->tag, tag, RT_SHA256_LEN) == 0) {
        if (drop) {
            s->until = 0;
        }
        check_ended(c, s);
    }
    unlock(c);
}

void rt_credcache_forget(rt_credcache *c, const char *scope, const char *id,
                         const char *secret)
{
    end_check(c, scope, id, secret, 1);
}

void rt_credcache_release(rt_credcache *c, const char *scope, const char *id,
                          const char *secret)
{
    end_check(c, scope, id, secret, 0);
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
    s->value = copy;
    check_ended(c, s);
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
