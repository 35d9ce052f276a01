/* GET /api/v1/authorize: after Apache authenticated the user
 * (any AuthType), mints a one-time code and redirects to the client. */
#ifndef RT_AUTHORIZE_H
#define RT_AUTHORIZE_H

#include "rt_grant.h"

/* Answers the 302 itself and returns NULL, or returns the error to send
 * (never a redirect for a client or redirect URI that is not registered). */
rt_error *rt_authorize(rt_ctx *c, json_t **reply);

/* For a page behind the site's authentication: NULL with c->principal
 * the user Apache authenticated, or, when none did (no AuthType on the
 * location), the 500 to answer, with a line in the error log that says
 * what to configure. */
rt_error *rt_authorize_user(rt_ctx *c);

#endif
