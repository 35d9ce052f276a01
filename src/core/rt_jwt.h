/* JWTs in compact form. Minting uses keys parsed once; the payload is
 * ASCII JSON with '>', '?', '~' escaped, so standard-base64 decoders read
 * it too. Verifying a bearer token: the kid picks the key, the key fixes
 * the algorithm, then signature, exp/nbf/iat with leeway, iss, aud. */
#ifndef RT_JWT_H
#define RT_JWT_H

#include <apr_tables.h>
#include "rt_key.h"

/* header.payload.signature, or NULL when signing failed. */
char *rt_jwt_sign(apr_pool_t *p, const rt_key *key, const json_t *claims);

/* Signs a probe token with key and verifies it with libjwt; NULL when
 * libjwt agrees, else an error naming the key file. Start-up only. */
const char *rt_jwt_selfcheck(apr_pool_t *p, const rt_key *key);

typedef struct rt_jwt_params {
    const apr_array_header_t *keys;     /* rt_key *, as configured */
    const char *issuer;                 /* required iss */
    const apr_array_header_t *audience; /* const char *; one must match */
    apr_int64_t now;
    apr_int64_t leeway;
} rt_jwt_params;

/* The claims of token (owned by p) when it verifies, else NULL with *why
 * set to a reason for the log (never the token). */
json_t *rt_jwt_verify(apr_pool_t *p, const rt_jwt_params *v, const char *token,
                      const char **why);

/* The two halves of rt_jwt_verify, so that a verified signature can be
 * remembered while the time, issuer and audience checks run every time:
 * the payload JSON text of a token whose header and signature verify with
 * one of keys, and the claims of a payload that pass the checks of v. */
const char *rt_jwt_verify_signature(apr_pool_t *p,
                                    const apr_array_header_t *keys,
                                    const char *token, const char **why);
json_t *rt_jwt_verify_claims(apr_pool_t *p, const rt_jwt_params *v,
                             const char *payload, const char **why);

#endif
