/* Refresh sessions: a login kept in the store under the hash of an opaque
 * random refresh token that rotates on every use; a rotated token
 * presented again revokes its session. */
#ifndef RT_SESSION_H
#define RT_SESSION_H

#include "rt_login.h"
#include "rt_store.h"

/* Starts a refresh session ending at session_exp; returns its first
 * refresh token in *token. */
rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token);

typedef enum {
    RT_REFRESH_OK,
    RT_REFRESH_INVALID, /* unknown, expired or revoked */
    RT_REFRESH_REUSED,  /* a rotated token: its session is now revoked */
    RT_REFRESH_REFUSED, /* check said no; the token is left as it was */
    RT_REFRESH_DOWN
} rt_refresh_status;

/* Whether the requester may redeem a session's token (its client rules). */
typedef int (*rt_session_check_fn)(request_rec *r, const rt_login *login,
                                   void *baton);

/* Redeems token once: fills login, asks check (may be NULL), and rotates
 * the token into *next. */
rt_refresh_status rt_session_refresh(request_rec *r, const char *token,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next);

#endif
