/* Whether a store (or one of its servers) is down, as all processes of a
 * host see it together, and a process's clock for trying it again: so
 * that an outage is told once when it begins and once when it ends, and a
 * server that is down is not hammered. Lock-free (atomics): the state sits
 * in shared memory and threads share the clock. */
#ifndef RT_OUTAGE_H
#define RT_OUTAGE_H

#include <apr.h>
#include <apr_time.h>

typedef struct {
    apr_uint32_t down;    /* 1 while down */
    apr_uint32_t refused; /* requests refused since it went down */
    apr_time_t since;
} rt_outage;

/* A request refused for it: counted. */
void rt_outage_refused(rt_outage *o);

/* It failed at now: 1 for the one caller that turned it down, which says
 * so. */
int rt_outage_down(rt_outage *o, apr_time_t now);

/* It answered at now: 1 for the one caller that turned it back up, with
 * how long it was down and the requests refused meanwhile for its line. */
int rt_outage_up(rt_outage *o, apr_time_t now, apr_interval_time_t *took,
                 apr_uint32_t *refused);

int rt_outage_is_down(const rt_outage *o);

/* After a connection could not be made, the next try waits
 * RT_BACKOFF_MIN, doubling up to RT_BACKOFF_MAX while tries fail: a
 * server that comes back is used again within RT_BACKOFF_MAX. */
#define RT_BACKOFF_MIN apr_time_from_msec(20)
#define RT_BACKOFF_MAX apr_time_from_msec(250)

typedef struct {
    apr_time_t retry_at;
    apr_interval_time_t backoff;
} rt_backoff;

/* 1 when a try at now must wait (the last one failed too recently). */
int rt_backoff_waiting(const rt_backoff *b, apr_time_t now);
void rt_backoff_failed(rt_backoff *b, apr_time_t now);
void rt_backoff_reset(rt_backoff *b);

#endif
