/* The socache provider "runai-shm": a table in shared memory that rewrites
 * a record in place (src/core/rt_shmtable.h), the default session store.
 * Any module can name it (mod_socache's interface); like shmcb it needs
 * its caller's global mutex (AP_SOCACHE_FLAG_NOTMPSAFE).
 *
 *   RunaiTokenCache runai-shm            16 MiB
 *   RunaiTokenCache runai-shm:67108864   or runai-shm:(67108864) */
#ifndef RT_SOCACHE_H
#define RT_SOCACHE_H

#include "httpd.h"
#include "rt_counters.h"

#define RT_SOCACHE_NAME "runai-shm"
#define RT_SOCACHE_DEFAULT_SIZE (16 * 1024 * 1024)

void rt_socache_register(apr_pool_t *p);

/* The fill of the runai-shm store made last and not yet destroyed (the
 * server's store when RunaiTokenCache names runai-shm); fill->have 0 when
 * there is none. Read without the store's mutex: a moment's figures. */
void rt_socache_fill(server_rec *s, rt_counters_fill *fill);

#endif
