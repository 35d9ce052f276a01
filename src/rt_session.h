/* Refresh sessions and one-time codes (SPEC §3.3-3.5): what a login
 * established, kept in the store under hashes of opaque random secrets. */
#ifndef RT_SESSION_H
#define RT_SESSION_H

#include "rt_store.h"

/* What a login established; the tokens of a session are minted from it. */
typedef struct rt_login {
    const char *sub;
    const char *azp; /* client, or NULL */
    json_t *profile; /* preferred_username and configured claims */
    apr_int64_t auth_time;
    const char *nonce;        /* codes only */
    const char *external;     /* codes only: RunaiTokenExternalTokenVar */
    const char *redirect_uri; /* codes only */
    const char *challenge;    /* codes only: PKCE S256 challenge */
    apr_int64_t session_exp;  /* refresh sessions: absolute end */
    const char *family;       /* refresh sessions: family id */
} rt_login;

/* Starts a refresh session ending at session_exp; returns its first
 * refresh token in *token. */
rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token);

typedef enum {
    RT_REFRESH_OK,
    RT_REFRESH_INVALID, /* unknown, expired or revoked */
    RT_REFRESH_REUSED,  /* a rotated token: its session is now revoked */
    RT_REFRESH_DOWN
} rt_refresh_status;

/* Redeems token once: fills login and rotates it into *next. */
rt_refresh_status rt_session_refresh(request_rec *r, const char *token,
                                     rt_login *login, const char **next);

/* Stores a one-time code for login until exp. */
rt_store_status rt_code_mint(request_rec *r, const rt_login *login,
                             apr_int64_t exp, const char **code);

/* Takes a code (spent whatever happens next) and fills login. */
rt_store_status rt_code_take(request_rec *r, const char *code, rt_login *login);

#endif
