/* The OIDC UserInfo endpoint: the claims of a bearer access token's
 * session, checked as the guard checks it. */
#ifndef RT_USERINFO_H
#define RT_USERINFO_H

#include "rt_grant.h"

/* GET or POST {issuer path}/protocol/openid-connect/userinfo: answers by
 * itself (the claims, or an RFC 6750 challenge). */
rt_error *rt_userinfo(rt_ctx *c, json_t **reply);

#endif
