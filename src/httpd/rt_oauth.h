/* The OAuth 2.0 dialect around the grants: client
 * authentication by client_secret_basic or client_secret_post, and the
 * RFC 6749 shapes of replies and errors. */
#ifndef RT_OAUTH_H
#define RT_OAUTH_H

#include "rt_grant.h"

/* Takes client credentials from Authorization: Basic into c->f (the
 * grants check them); an empty secret only names the client. A 400 when
 * the body names another client, or a secret as well. */
rt_error *rt_oauth_client_auth(rt_ctx *c);

/* {access_token, token_type, expires_in, refresh_token?, id_token?} */
json_t *rt_oauth_reply(const json_t *reply);

/* Sends e as {error, error_description} with the RFC 6749 code and status
 * of its kind. Returns OK. */
int rt_oauth_send_error(rt_ctx *c, const rt_error *e);

#endif
