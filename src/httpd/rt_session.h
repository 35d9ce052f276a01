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
 * refresh token in *token and sets login->sid and login->session_exp (the
 * session keeps no nonce, upstream token, redirect URI or challenge). */
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

/* Redeems token at the issuer of this server (whose force logouts end
 * it): fills login, asks check (may be NULL), and answers the
 * session's next token in *next, under rules (rules->now is set here).
 * A retry of a token within rules->retry seconds of its rotation gets the
 * same *next as the first presentation; a fault in the store leaves the
 * session as it was or rotated, never ended. */
rt_refresh_status rt_session_refresh(request_rec *r, const char *issuer,
                                     const char *token, rt_refresh_rules *rules,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next,
                                     apr_int64_t *wait);

/* Ends the session named by sid (the claim of its tokens): its refresh
 * tokens are refused, and so are its access tokens where the guard looks
 * (RunaiTokenSessionCheck). The end is a record of its own, kept until
 * keep (epoch seconds), that no rotation on any host rewrites.
 * RT_STORE_NOTFOUND: sid is not a session's id. Ending a session that has
 * already ended, or gone, changes nothing that matters. */
rt_store_status rt_session_end(request_rec *r, const char *sid,
                               apr_int64_t keep);

/* Ends the session of a refresh token (RFC 7009), after check (may be
 * NULL) says the requester may: RT_REFRESH_OK, _INVALID (unknown, forged
 * or expired: nothing to do), _REFUSED (check said no: nothing changed)
 * or _DOWN. */
rt_refresh_status rt_session_revoke(request_rec *r, const char *token,
                                    rt_session_check_fn check, void *baton,
                                    apr_int64_t keep);

/* Ends every session of the user sub of issuer begun before now, on every
 * host that shares the store: one record per user, kept until keep, that
 * the refresh and the guard compare with a session's start. */
rt_store_status rt_session_end_user(request_rec *r, const char *issuer,
                                    const char *sub, apr_int64_t keep);

typedef enum {
    RT_SESSION_LIVE,   /* live, or nothing says it ended */
    RT_SESSION_ENDED,  /* revoked, logged out, or all the user's ended */
    RT_SESSION_UNKNOWN /* the store did not answer */
} rt_session_state;

/* Whether the logins of l->sub at issuer were all ended after l began (a
 * code, or a token of the earlier format, minted before a force logout). */
rt_session_state rt_session_login_state(request_rec *r, const char *issuer,
                                        const rt_login *l);

/* Where the session sid of user sub of issuer stands, for the guard; iat
 * is the token's, which decides when the session's record is gone. */
rt_session_state rt_session_look(request_rec *r, const char *sid,
                                 const char *issuer, const char *sub,
                                 apr_int64_t iat);

#endif
