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
void rt_redis_store_child_init(apr_pool_t *p, server_rec *s);

/* Its operations: takes with GETDEL, updates with WATCH/MULTI/EXEC,
 * misses fenced by WAIT when replicas are asked for. */
extern const rt_native_store rt_redis_native;

#endif
