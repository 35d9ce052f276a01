/* Minting JWTs with keys parsed once (SPEC §4). The payload is ASCII JSON
 * with '>', '?', '~' escaped, so standard-base64 decoders read it too. */
#ifndef RT_JWT_H
#define RT_JWT_H

#include "rt_keys.h"

/* header.payload.signature, or NULL when signing failed. */
char *rt_jwt_sign(apr_pool_t *p, const rt_key *key, const json_t *claims);

/* Signs a probe token with key and verifies it with libjwt; NULL when
 * libjwt agrees, else an error naming the key file. Start-up only. */
const char *rt_jwt_selfcheck(apr_pool_t *p, const rt_key *key);

typedef enum {
    RT_CLAIM_STRING,
    RT_CLAIM_LIST,
    RT_CLAIM_NUMBER,
    RT_CLAIM_BOOL
} rt_claim_type;

/* "string", "list", "number", "bool" → type; -1 when unknown. */
int rt_claim_type_parse(const char *name);

/* The JSON value of a claim evaluated to text: NULL when the claim is to
 * be omitted (empty text); *bad set when text does not fit the type. */
json_t *rt_claim_value(const char *text, rt_claim_type type, int *bad);

#endif
