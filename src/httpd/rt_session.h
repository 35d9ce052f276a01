/* Refresh sessions: one record per session in the store, found by the
 * hash of the random handle its refresh tokens carry (rt_refresh.h). A
 * refresh reads and rewrites that record only: the store holds one record
 * per session however often it is refreshed. */
#ifndef RT_SESSION_H
#define RT_SESSION_H

#include "rt_login.h"
#include "rt_refresh.h"
#include "rt_store.h"

/* Starts a refresh session ending at session_exp; returns its first
 * refresh token in *token. */
rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token);

typedef enum {
    RT_REFRESH_OK,
    RT_REFRESH_INVALID, /* unknown, forged, expired or revoked */
    RT_REFRESH_REUSED,  /* an earlier token shown too late: now revoked */
    RT_REFRESH_REFUSED, /* check said no; the session is left as it was */
    RT_REFRESH_LIMITED, /* over RunaiTokenRefreshRate: *wait seconds */
    RT_REFRESH_DOWN
} rt_refresh_status;

/* Whether the requester may redeem a session's token (its client rules). */
typedef int (*rt_session_check_fn)(request_rec *r, const rt_login *login,
                                   void *baton);

/* Redeems token: fills login, asks check (may be NULL), and answers the
 * session's next token in *next, under rules (rules->now is set here).
 * A retry of a token within rules->retry seconds of its rotation gets the
 * same *next as the first presentation; a fault in the store leaves the
 * session as it was or rotated, never ended. */
rt_refresh_status rt_session_refresh(request_rec *r, const char *token,
                                     rt_refresh_rules *rules,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next,
                                     apr_int64_t *wait);

#endif
