/* The session store: one mod_socache instance for the whole server, a
 * global mutex ("Mutex runai-token ...") for read-modify-write on one host,
 * and the store's own remove as the claim across hosts (SPEC §3.5). */
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

int rt_store_pre_config(apr_pool_t *pconf);
int rt_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void rt_store_child_init(apr_pool_t *p, server_rec *s);

/* Writes data under (kind, material) until exp (epoch seconds). */
rt_store_status rt_store_put(request_rec *r, rt_rec_kind kind,
                             const char *material, apr_int64_t exp,
                             const json_t *data);

/* Reads the record; *data is owned by r->pool. A miss is not confirmed:
 * memcache and redis clients also answer "not found" when down. */
rt_store_status rt_store_get(request_rec *r, rt_rec_kind kind,
                             const char *material, json_t **data);

/* Reads and writes of several records, in order: a step writes put
 * (until exp) when put is set, else reads the record into got (owned by
 * r->pool). With a store that needs the mutex (shmcb, dbm) all steps run
 * in one turn of it; redis and memcache run them one by one, as before.
 * Records are encoded before the mutex is taken and decoded after it is
 * released. The steps after one whose store is down, or after a read
 * marked stop_if_found whose record is there (even if it then does not
 * decode), are not run: their st stays RT_STORE_DOWN. */
typedef struct {
    rt_rec_kind kind;
    const char *material;
    const json_t *put;
    apr_int64_t exp;
    int stop_if_found;
    json_t *got;
    rt_store_status st;
} rt_store_step;
void rt_store_steps(request_rec *r, rt_store_step *steps, int n);

/* Reads and removes the record; a miss is confirmed by a probe write, so
 * RT_STORE_NOTFOUND means the store answered. Of concurrent takers of one
 * record, on one host or several sharing the store, exactly one gets
 * RT_STORE_OK. */
rt_store_status rt_store_take(request_rec *r, rt_rec_kind kind,
                              const char *material, json_t **data);

rt_store_status rt_store_remove(request_rec *r, rt_rec_kind kind,
                                const char *material);

/* Read-modify-write under the global mutex: fn gets the current data (NULL
 * when absent) and returns the new data and its expiry, or NULL to leave
 * the record as it is. */
typedef json_t *(*rt_store_update_fn)(request_rec *r, json_t *old, void *baton,
                                      apr_int64_t *exp);
rt_store_status rt_store_update(request_rec *r, rt_rec_kind kind,
                                const char *material, rt_store_update_fn fn,
                                void *baton);

#endif
