/* AuthType RunaiToken and Require runai-claim: bearer JWTs
 * verified with the keys loaded at start-up. */
#ifndef RT_GUARD_H
#define RT_GUARD_H

#include "httpd.h"

#include <jansson.h>

/* The claims of the request's bearer token (owned by r->pool) when it
 * passes every check of the location: signature, time, issuer, audience,
 * user claim, and its session not ended. Else NULL, with *why the reason
 * for the log, or NULL when the request carries no bearer token. */
json_t *rt_guard_claims(request_rec *r, const char **why);

/* Sets the RFC 6750 challenge: error is NULL (no credentials),
 * "invalid_token" or "insufficient_scope". Returns 401. */
int rt_guard_challenge(request_rec *r, const char *error);

/* Registers the check_authn hook and the runai-claim authz provider. */
void rt_guard_register(apr_pool_t *p);

#endif
