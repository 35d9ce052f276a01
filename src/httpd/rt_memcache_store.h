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
/* This process's client and its connection pools. */
void rt_memcache_store_child_init(apr_pool_t *p, server_rec *s);

/* Its operations: get, put and remove on each record's own server; the
 * store as a whole is down when every server is (each server's outage is
 * logged on its own). */
extern const rt_native_store rt_memcache_native;

#endif
