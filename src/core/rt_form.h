/* The OAuth 2.0 dialect: application/x-www-form-urlencoded token
 * requests and client_secret_basic credentials, mapped onto the fields of
 * the Run:ai dialect so both reach the same grants. Pure: no httpd. */
#ifndef RT_FORM_H
#define RT_FORM_H

#include "rt_request.h"

/* A parameter a scan looks for: its name, whether its value is opaque
 * (any bytes but NUL) rather than UTF-8 text, and an id for the caller. */
typedef struct rt_form_param {
    const char *name;
    int opaque;
    int id;
} rt_form_param;

/* Scans the name=value pairs of s[0..len), a form body or a query, and
 * sets values[i] to the decoded value of params[i] (NULL when absent).
 * Unknown parameters are skipped; their values must still decode, and be
 * UTF-8 when text_unknown is set. A known parameter given twice, a bad
 * escape, NUL or invalid UTF-8: 400, whose message names where ("request
 * body", "query"). */
rt_error *rt_form_scan(apr_pool_t *p, const char *s, apr_size_t len,
                       const char *where, const rt_form_param *params,
                       apr_size_t n, int text_unknown, const char **values);

/* Parses a form body. grant_type authorization_code becomes
 * exchange_token; client_id/client_secret fill clientID/clientSecret.
 * A parameter given twice, bad escapes, invalid UTF-8 or NUL: 400. */
rt_error *rt_form_parse(apr_pool_t *p, const char *body, apr_size_t len,
                        rt_fields *out);

/* application/x-www-form-urlencoded decoding of s[0..n); NULL when an
 * escape is malformed or the result is not NUL-free UTF-8. */
char *rt_form_decode(apr_pool_t *p, const char *s, apr_size_t n);

/* The same without the UTF-8 check, for opaque values; *len its length. */
char *rt_form_decode_bytes(apr_pool_t *p, const char *s, apr_size_t n,
                           apr_size_t *len);

/* The form parameter that carries field f, e.g. "grant_type". */
const char *rt_form_param_name(rt_field_id f);

/* Decodes "Basic base64(urlenc(id):urlenc(secret))" (RFC 6749 §2.3.1).
 * Returns NULL and sets *id, *secret, or a 400/401 error. */
rt_error *rt_form_basic_auth(apr_pool_t *p, const char *header, const char **id,
                             const char **secret);

#endif
