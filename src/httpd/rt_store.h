/* The session store: one mod_socache instance for the whole server, a
 * global mutex ("Mutex runai-token ...") for read-modify-write on one host,
 * and the store's own remove as the claim across hosts. Beside a store
 * other hosts share, a shmcb of this host for its own records (local). */
#ifndef RT_STORE_H
#define RT_STORE_H

#include "httpd.h"
#include "http_config.h"
#include "rt_record.h"

typedef enum {
    RT_STORE_OK,
    RT_STORE_NOTFOUND, /* absent, expired, or claimed by another request */
    RT_STORE_DOWN      /* the store did not answer */
} rt_store_status;

/* RunaiTokenCache PROVIDER[:ARGS] */
const char *rt_store_set_cache(cmd_parms *cmd, void *dc, const char *arg);

/* RunaiTokenStateDir DIR|off: where a store of this host keeps its state file
 * across restarts (default: runai-token under DefaultRuntimeDir). */
const char *rt_store_set_state_dir(cmd_parms *cmd, void *dc, const char *arg);

int rt_store_pre_config(apr_pool_t *pconf);
int rt_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void rt_store_child_init(apr_pool_t *p, server_rec *s);

/* 1 when other hosts may share the store (redis, memcache: any provider but
 * runai-shm, shmcb and dbm), whose read-modify-write the global mutex then
 * serialises on this host only. */
int rt_store_shared(void);

/* The store's socache provider ("runai-shm", "redis"...), or NULL when the
 * server has none (nothing configured needs one). */
const char *rt_store_provider(void);

/* Read-modify-write under the global mutex: fn gets the current data (NULL
 * when absent) and returns the new data and its expiry, or NULL to leave
 * the record as it is. */
typedef json_t *(*rt_store_update_fn)(request_rec *r, json_t *old, void *baton,
                                      apr_int64_t *exp);

typedef enum {
    RT_STORE_GET,    /* reads the record into got */
    RT_STORE_PUT,    /* writes put until exp (epoch seconds) */
    RT_STORE_TAKE,   /* reads and removes it, a miss confirmed (see below) */
    RT_STORE_REMOVE, /* removes it */
    RT_STORE_UPDATE  /* read-modify-write with fn and baton */
} rt_store_op;

/* One operation on the record of (kind, material). */
typedef struct {
    rt_store_op op;
    rt_rec_kind kind;
    const char *material;
    const unsigned char *digest; /* instead of material: its SHA-256 */
    const json_t *put;
    apr_int64_t exp;
    rt_store_update_fn fn;
    void *baton;
    /* GET, UPDATE: a miss of a store other hosts share is confirmed by a
     * probe write (as a take's always is): RT_STORE_NOTFOUND then means
     * the store answered. */
    int confirm_miss;
    /* The record is this host's own, read and written by this host only,
     * always under the mutex: beside a shared store it is kept in a shmcb
     * of this host (mod_socache_shmcb loaded), else in the store under a
     * key naming this host (a random id made for each generation). */
    int local;
    json_t *got; /* GET, TAKE: the record read, owned by r->pool */
    rt_store_status st;
} rt_store_step;

/* The one way to the store: runs steps in order, in one turn of the
 * global mutex when a step needs it (a take or an update, or any step of
 * a store that needs the mutex: runai-shm, shmcb, dbm); redis and memcache run
 * reads and writes without it. Records are encoded before the mutex is taken
 * and decoded after it is released. The steps after one whose store is
 * down are not run: their st stays RT_STORE_DOWN.
 * A take's miss is confirmed (see confirm_miss); of concurrent takers of
 * one record, on one host or several sharing the store, exactly one gets
 * RT_STORE_OK. Other misses are confirmed only when asked: memcache and
 * redis clients also answer "not found" when down. */
void rt_store_steps(request_rec *r, rt_store_step *steps, int n);

/* A store client of the module's own (redis, memcache: rt_redis_store.h,
 * rt_memcache_store.h) instead of a socache provider. Keys are klen
 * bytes. On RT_STORE_DOWN a note (rt_store_note_error) says why; a
 * RT_STORE_NOTFOUND is a miss the server said. */
typedef int (*rt_native_update_fn)(request_rec *r, void *ctx,
                                   const unsigned char *old, apr_size_t oldlen,
                                   const char **val, apr_size_t *len,
                                   apr_int64_t *exp);
typedef struct {
    int (*post_config)(apr_pool_t *pconf, server_rec *s);
    /* Copies at most *len bytes into buf and sets *len. */
    rt_store_status (*get)(request_rec *r, const unsigned char *key,
                           apr_size_t klen, unsigned char *buf,
                           unsigned int *len);
    rt_store_status (*put)(request_rec *r, const unsigned char *key,
                           apr_size_t klen, apr_int64_t exp, const char *val,
                           apr_size_t len);
    rt_store_status (*remove)(request_rec *r, const unsigned char *key,
                              apr_size_t klen);
    /* Read and remove, and read-modify-write (fn gives the new value from
     * the old one, again when another writer came in between), each one
     * step on the server for all hosts; NULL: get, remove and put under
     * this host's mutex. */
    rt_store_status (*take)(request_rec *r, const unsigned char *key,
                            apr_size_t klen, unsigned char *buf,
                            unsigned int *len);
    rt_store_status (*update)(request_rec *r, const unsigned char *key,
                              apr_size_t klen, rt_native_update_fn fn,
                              void *ctx);
    /* A miss believed only when this says so; NULL: always. */
    rt_store_status (*confirm_miss)(request_rec *r);
    /* 1 when the store as a whole is down (every server of several);
     * NULL: a failure is the store's. */
    int (*all_down)(void);
} rt_native_store;

/* Why the store failed this request, for the line that tells the outage
 * (one per outage, not per request). */
void rt_store_note_error(request_rec *r, const char *why);

/* n outage words (rt_outage.h) in anonymous shared memory of pconf,
 * zeroed, for all processes of this host; NULL (logged at crit, naming
 * what) when it cannot be made. */
void *rt_store_outage_words(apr_pool_t *pconf, server_rec *s, int n,
                            const char *what);

/* rt_store_steps of one step. */
rt_store_status rt_store_put(request_rec *r, rt_rec_kind kind,
                             const char *material, apr_int64_t exp,
                             const json_t *data);
rt_store_status rt_store_take(request_rec *r, rt_rec_kind kind,
                              const char *material, json_t **data);

#endif
