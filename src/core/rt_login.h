/* What a login established: the tokens of a session are minted from it,
 * and refresh sessions and one-time codes keep it in the store as JSON. */
#ifndef RT_LOGIN_H
#define RT_LOGIN_H

#include <apr_pools.h>
#include <jansson.h>

typedef struct rt_login {
    const char *sub;
    const char *azp; /* client, or NULL */
    json_t *profile; /* preferred_username and configured claims */
    apr_int64_t auth_time;
    apr_int64_t started;  /* the login's time in microseconds: a logout of all
                             the user's sessions at a later time ends it */
    const char *nonce;    /* codes only */
    const char *external; /* codes only: RunaiTokenExternalTokenVar */
    const char *redirect_uri; /* codes only */
    const char *challenge;    /* codes only: PKCE S256 challenge */
    apr_int64_t session_exp;  /* refresh sessions: absolute end */
    const char *sid; /* the session's id (not kept: its record's key) */
} rt_login;

/* A new JSON object of l (the caller decrefs it). */
json_t *rt_login_to_json(const rt_login *l);

/* Fills l from o (strings copied into p, the profile borrowed from o);
 * 0 when the record lacks what every login has. */
int rt_login_from_json(apr_pool_t *p, json_t *o, rt_login *l);

/* A string member of o copied into p, or NULL. */
const char *rt_login_str(apr_pool_t *p, const json_t *o, const char *k);

#endif
