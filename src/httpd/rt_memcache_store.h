/* The memcache store: the module's own client, on apr-util's apr_memcache,
 * behind the session store (rt_store.h), used for
 *
 *   RunaiTokenCache memcache:HOST[:PORT][,HOST[:PORT]...]
 *
 * Several servers shard the records, they do not replicate: each record
 * lives on one server (APR's CRC32 hash of the record's digest, so that a
 * session's record and its end marker share a server), and a server lost
 * takes its share of the records (about 1/N) with it. Unlike
 * mod_socache_memcache a record whose server cannot be reached is
 * RT_STORE_DOWN, never a miss: it is not looked for on another server.
 * Each server going down and coming back is logged once per host (all
 * processes together). Read-modify-write is not atomic on the servers:
 * rt_store.c runs takes and updates under this host's mutex. */
#ifndef RT_MEMCACHE_STORE_H
#define RT_MEMCACHE_STORE_H

#include "httpd.h"
#include "rt_store.h"

/* 1 when name is the provider this client serves ("memcache"). */
int rt_memcache_store_names(const char *name);

/* The RunaiTokenCache arguments (HOST[:PORT],...); an error or NULL. */
const char *rt_memcache_store_configure(apr_pool_t *p, const char *args);

void rt_memcache_store_pre_config(void);
/* The word per server shared by the processes of this host. */
int rt_memcache_store_post_config(apr_pool_t *pconf, server_rec *s);
/* This process's client and its connection pools. */
void rt_memcache_store_child_init(apr_pool_t *p, server_rec *s);

/* 1 when every server is down as this host last saw it: the store as a
 * whole is down (rt_store.c's outage line); 0 while some server answers. */
int rt_memcache_store_all_down(void);

/* A record's operations, key of klen bytes (at most 64). On RT_STORE_DOWN
 * a note (rt_store_note_error) says why. get copies at most *len bytes
 * into buf and sets *len; RT_STORE_NOTFOUND is a miss from a server that
 * answered. */
rt_store_status rt_memcache_store_get(request_rec *r, const unsigned char *key,
                                      apr_size_t klen, unsigned char *buf,
                                      unsigned int *len);
rt_store_status rt_memcache_store_put(request_rec *r, const unsigned char *key,
                                      apr_size_t klen, apr_int64_t exp,
                                      const char *val, apr_size_t len);
/* RT_STORE_OK when this call removed it: of concurrent removers of one
 * record, on any host, one. */
rt_store_status rt_memcache_store_remove(request_rec *r,
                                         const unsigned char *key,
                                         apr_size_t klen);

#endif
