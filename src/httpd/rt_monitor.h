/* The module's counters (src/core/rt_counters.h) for the whole server:
 * one block of shared memory, a slot area per virtual host that has a
 * signing key, kept across graceful and full restarts; and what shows
 * them: a section of mod_status's /server-status (its optional status_hook,
 * HTML and ?auto) and SetHandler runai-token-metrics (Prometheus). Counting
 * takes no lock. */
#ifndef RT_MONITOR_H
#define RT_MONITOR_H

#include "httpd.h"
#include "rt_counters.h"

/* Makes the block, or keeps the one of the last generation (same routes,
 * same virtual hosts), or carries its counts by host name into a new one.
 * routes names the route table's indexes (pconf's lifetime). */
int rt_monitor_post_config(apr_pool_t *pconf, server_rec *s,
                           const char *const *routes, int nroutes);

/* The metrics handler and mod_status's hook. */
void rt_monitor_register(apr_pool_t *p);

/* A token answer, with the words of its log line. */
void rt_monitor_answer(request_rec *r, int route, const char *grant,
                       const char *outcome);
void rt_monitor_event(request_rec *r, rt_counters_event e);
/* A store call begun at started; failed: the store was down. */
void rt_monitor_store(request_rec *r, apr_time_t started, int failed);
/* AuthType RunaiToken on an initial request: refusal NULL for an accepted
 * token (see rt_counters_guard). */
void rt_monitor_guard(request_rec *r, const char *refusal);

#endif
