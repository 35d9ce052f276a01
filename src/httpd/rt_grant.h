/* The grants: each takes a parsed request and either fills a
 * reply or returns the error to answer. Tokens are minted here. */
#ifndef RT_GRANT_H
#define RT_GRANT_H

#include "rt_config.h"
#include "rt_request.h"

typedef struct rt_ctx {
    request_rec *r;
    const rt_server_conf *sc;
    const rt_dir_conf *dc;
    rt_fields f;
    int oauth;       /* the request came in the OAuth 2.0 form dialect */
    int param_names; /* fields came as form or query parameters */
    int client_authenticated; /* an app proved its secret as the client */
    rt_error *refused;        /* why the client rules refused a refresh */
    const char *param;        /* the route's path parameter, or NULL */
    const char *args;         /* the query as received (logged redacted) */
    /* What the one log line per request says; never a secret. */
    const char *grant;
    const char *principal;
    const char *client;
    const char *outcome; /* of a success; an error's comes from its kind */
} rt_ctx;

typedef rt_error *(*rt_grant_fn)(rt_ctx *c, json_t **reply);

/* POST /api/v1/token: picks the grant from grantType. */
rt_error *rt_grant_token(rt_ctx *c, json_t **reply);
/* POST /v1/k8s/auth/oauth/apptoken: {id,name,secret} → {access_token,id_token}.
 */
rt_error *rt_grant_legacy_apptoken(rt_ctx *c, json_t **reply);
/* Legacy refresh and exchange routes: answered by the sessions issue. */
rt_error *rt_grant_legacy_refresh(rt_ctx *c, json_t **reply);
rt_error *rt_grant_legacy_exchange(rt_ctx *c, json_t **reply);

/* A client secret sent with a grant other than app_token (whose secret is
 * the grant itself), in a form, a Basic header or JSON's clientSecret,
 * must hold for the client_id it comes with; grant names the request in
 * the log. */
rt_error *rt_grant_authenticate_client(rt_ctx *c, const char *grant);

/* The 400 of a missing field, named as the request names it: a form
 * parameter or a JSON field. */
rt_error *rt_grant_missing(rt_ctx *c, rt_field_id f);

/* Whether the requester may end what was issued to the client issued_to
 * (NULL: to no client, anyone holding it may): it names that client, and
 * proved its secret if it has one. */
rt_error *rt_grant_check_owner(rt_ctx *c, const char *issued_to);

#endif
