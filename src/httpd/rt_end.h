/* Ending sessions on demand: token revocation (RFC 7009), RP-initiated
 * logout (OpenID Connect RP-Initiated Logout 1.0, with the legacy
 * redirect_uri of Keycloak-era clients), and the Run:ai force logout of
 * all of a user's sessions. Each is a route of the handler (rt_grant_fn). */
#ifndef RT_END_H
#define RT_END_H

#include "rt_grant.h"

/* POST {issuer}/protocol/openid-connect/revoke: token, token_type_hint. */
rt_error *rt_end_revoke(rt_ctx *c, json_t **reply);

/* GET or POST {issuer}/protocol/openid-connect/logout. */
rt_error *rt_end_logout(rt_ctx *c, json_t **reply);

/* POST /api/v1/users/{userId}/logout: c->param is the userId. Served
 * only to a user Apache authenticated (an AuthType and a Require on the
 * location); 403 otherwise. */
rt_error *rt_end_user(rt_ctx *c, json_t **reply);

#endif
