/* The redis store: the module's own client (src/core/rt_redis.h) behind
 * the session store (rt_store.h), used for "RunaiTokenCache redis:..." and
 * "RunaiTokenCache redis-sentinel:...". Unlike mod_socache_redis it tells a
 * miss from an outage, reconnects at once (with a short backoff) instead
 * of marking a server dead for 5 s, checks that it talks to the master,
 * finds the master through sentinels, speaks TLS and AUTH, makes every
 * read-modify-write one atomic step on the server (WATCH/MULTI/EXEC) and
 * can fence writes with WAIT.
 *
 *   RunaiTokenCache redis:HOST[:PORT][,HOST[:PORT]...]
 *   RunaiTokenCache redis-sentinel:MASTER@HOST[:PORT][,HOST[:PORT]...]
 *   RunaiTokenRedisTimeout MS
 *   RunaiTokenRedisAuth [USER] PASSWORD|file:PATH
 *   RunaiTokenRedisTLS CAFILE [CERTFILE KEYFILE] | off
 *   RunaiTokenRedisReplicas N [MS] */
#ifndef RT_REDIS_STORE_H
#define RT_REDIS_STORE_H

#include "httpd.h"
#include "http_config.h"
#include "rt_store.h"

/* 1 when name is a provider this client serves ("redis",
 * "redis-sentinel"). */
int rt_redis_store_names(const char *name);

/* The RunaiTokenCache arguments of such a provider; an error or NULL. */
const char *rt_redis_store_configure(apr_pool_t *p, const char *name,
                                     const char *args);

const char *rt_redis_store_set_timeout(cmd_parms *cmd, void *dc,
                                       const char *arg);
const char *rt_redis_store_set_auth(cmd_parms *cmd, void *dc, const char *a1,
                                    const char *a2);
const char *rt_redis_store_set_tls(cmd_parms *cmd, void *dc, int argc,
                                   char *const argv[]);
const char *rt_redis_store_set_replicas(cmd_parms *cmd, void *dc, const char *n,
                                        const char *ms);

void rt_redis_store_pre_config(void);
/* 1 when RunaiTokenCache named this client. */
int rt_redis_store_used(void);
/* The TLS context and the process's pool of connections. */
int rt_redis_store_post_config(apr_pool_t *pconf, server_rec *s);
void rt_redis_store_child_init(apr_pool_t *p, server_rec *s);

/* A record's operations, key of klen bytes. On RT_STORE_DOWN a note
 * (rt_store_note_error) says why. get copies at most *len bytes into buf
 * and sets *len. */
rt_store_status rt_redis_store_get(request_rec *r, const unsigned char *key,
                                   apr_size_t klen, unsigned char *buf,
                                   unsigned int *len);
rt_store_status rt_redis_store_put(request_rec *r, const unsigned char *key,
                                   apr_size_t klen, apr_int64_t exp,
                                   const char *val, apr_size_t len);
rt_store_status rt_redis_store_remove(request_rec *r, const unsigned char *key,
                                      apr_size_t klen);
/* Reads and removes in one step (GETDEL): of concurrent takers on any
 * host, one gets the record. */
rt_store_status rt_redis_store_take(request_rec *r, const unsigned char *key,
                                    apr_size_t klen, unsigned char *buf,
                                    unsigned int *len);

/* The new value of a record from its old one (old NULL: absent); *val
 * NULL: leave it. 0: cannot (the update answers RT_STORE_DOWN). Called
 * again when another writer changed the record in between. */
typedef int (*rt_redis_update_fn)(request_rec *r, void *ctx,
                                  const unsigned char *old, apr_size_t oldlen,
                                  const char **val, apr_size_t *len,
                                  apr_int64_t *exp);
rt_store_status rt_redis_store_update(request_rec *r, const unsigned char *key,
                                      apr_size_t klen, rt_redis_update_fn fn,
                                      void *ctx);

/* A miss believed only from a master that still has its replicas
 * (RunaiTokenRedisReplicas): RT_STORE_NOTFOUND, or RT_STORE_DOWN. */
rt_store_status rt_redis_store_confirm_miss(request_rec *r);

#endif
