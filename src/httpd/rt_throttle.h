/* RunaiTokenThrottle: failed-credential counters per principal and per
 * remote address, kept in the session store. */
#ifndef RT_THROTTLE_H
#define RT_THROTTLE_H

#include "rt_config.h"
#include "rt_store.h"
#include "rt_error.h"

/* 0 when principal may try now, else the seconds to wait (logged as one
 * line a tool like fail2ban can match). A store that does not answer
 * throttles nothing. */
apr_int64_t rt_throttle_check(request_rec *r, const rt_dir_conf *dc,
                              const char *principal, int *counted);

/* The 429 answer for a wait of the given seconds, with Retry-After. */
rt_error *rt_throttle_error(request_rec *r, apr_int64_t wait);

/* Counts one wrong credential for principal and for the remote address. */
void rt_throttle_failed(request_rec *r, const rt_dir_conf *dc,
                        const char *principal);

/* A success clears the principal's count (call it when check said
 * counted). */
void rt_throttle_succeeded(request_rec *r, const rt_dir_conf *dc,
                           const char *principal);

#endif
