/* RunaiTokenThrottle: counters of attempts and failed credentials, kept in
 * the session store. An attempt is reserved before any provider is asked
 * and settled with its outcome. The policy and its numbers are in
 * docs/operations.md ("Throttling"). */
#ifndef RT_THROTTLE_H
#define RT_THROTTLE_H

#include "rt_config.h"
#include "rt_store.h"
#include "rt_error.h"

/* Whose credential is checked: each has counters of its own, so that a
 * user named like a client is not refused for the client's failures. */
typedef enum {
    RT_THROTTLE_USER,   /* a user's password */
    RT_THROTTLE_APP,    /* an application's secret (app_token) */
    RT_THROTTLE_CLIENT, /* a client's secret (OAuth client authentication) */
    RT_THROTTLE_DEVICE, /* a user's user codes on the device page */
} rt_throttle_space;

/* One reserved attempt. */
typedef struct rt_throttle rt_throttle;

typedef enum {
    RT_THROTTLE_FAILED,    /* the credential was wrong (or unknown) */
    RT_THROTTLE_GRANTED,   /* it was right */
    RT_THROTTLE_UNANSWERED /* the provider failed: nothing was learnt */
} rt_throttle_outcome;

/* Reserves one attempt of principal (compared in its canonical form:
 * trimmed, case-folded) from the remote address, counted in one
 * read-modify-write under the store's mutex. With verified set (the
 * credential is one the providers verified, and will not be asked about
 * again) only the failures on record can refuse it: nothing is put in
 * flight, and a success with no failures to clear writes nothing. Returns 0
 * when it may be checked now (*t is then the reservation to settle; NULL when
 * nothing was reserved: throttling off, or the store did not answer), else the
 * seconds to wait, logged as one warn line a tool like fail2ban can match.
 * While attempts in flight could still reach the limit, it waits (at most a few
 * seconds) for their outcome. */
apr_int64_t rt_throttle_reserve(request_rec *r, const rt_dir_conf *dc,
                                rt_throttle_space space, const char *principal,
                                int verified, rt_throttle **t);

/* Settles a reservation (NULL: nothing to do) with its outcome: a failure
 * counts for the principal from this address, for the principal and for
 * the address; a success clears the principal's failures from this
 * address. */
void rt_throttle_settle(request_rec *r, rt_throttle *t,
                        rt_throttle_outcome outcome);

/* Makes this child's C.UTF-8 locale, which case-folds principals. */
void rt_throttle_child_init(apr_pool_t *p, server_rec *s);

/* The 429 answer for a wait of the given seconds, with Retry-After: its
 * OAuth code is the one a wrong credential of that space answers. */
rt_error *rt_throttle_error(request_rec *r, rt_throttle_space space,
                            apr_int64_t wait);

#endif
