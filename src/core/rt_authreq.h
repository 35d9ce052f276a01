/* The query of GET /api/v1/authorize, pure: parsing, the
 * checks that decide between a redirect and an error, and the Location of
 * the redirect. */
#ifndef RT_AUTHREQ_H
#define RT_AUTHREQ_H

#include <apr_tables.h>
#include "rt_error.h"

typedef struct rt_authreq {
    const char *client_id;
    const char *redirect_uri;
    const char *response_type;
    const char *state;
    const char *nonce;
    const char *code_challenge;
    const char *code_challenge_method;
} rt_authreq;

/* Form-decodes query (may be NULL). A known parameter given twice, a bad
 * escape, invalid UTF-8 or NUL: 400. */
rt_error *rt_authreq_parse(apr_pool_t *p, const char *query, rt_authreq *q);

/* Checks q for a client whose registered redirect URIs are uris (NULL: the
 * client is unknown). Any error is answered without a redirect. */
rt_error *rt_authreq_check(apr_pool_t *p, const rt_authreq *q,
                           const apr_array_header_t *uris);

/* 1 when uri is one of uris (const char *): byte for byte, but for a
 * loopback URI (http://127.0.0.1, http://[::1], http://localhost), which
 * matches on any port (RFC 8252 §7.3): the CLIs that listen there pick
 * their port when they start. */
int rt_authreq_registered(const apr_array_header_t *uris, const char *uri);

/* redirect_uri with code and state appended as query parameters. */
char *rt_authreq_location(apr_pool_t *p, const char *redirect_uri,
                          const char *code, const char *state);

#endif
