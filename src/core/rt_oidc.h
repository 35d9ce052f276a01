/* OIDC discovery and JWKS documents, built once per server at
 * start-up from the issuer and the keys; requests only copy them out. */
#ifndef RT_OIDC_H
#define RT_OIDC_H

#include <apr_tables.h>
#include <jansson.h>

/* The path part of an issuer URL ("" for https://host). */
const char *rt_oidc_issuer_path(apr_pool_t *p, const char *issuer);

/* The URL of an endpoint under the issuer: its origin, its path, then
 * suffix ("/device" gives https://host/realm/device). */
const char *rt_oidc_endpoint(apr_pool_t *p, const char *issuer,
                             const char *suffix);

/* {"keys":[...]} of every key that has a public part (never HMAC). */
char *rt_oidc_jwks(apr_pool_t *p, const apr_array_header_t *keys);

/* The discovery document; claims lists extra claim names (const char *). */
char *rt_oidc_discovery(apr_pool_t *p, const char *issuer,
                        const apr_array_header_t *keys,
                        const apr_array_header_t *claims);

#endif
