/* Parsing of token requests in the Run:ai JSON dialect: keys are
 * matched case-insensitively, a key given twice in any casing is refused,
 * known fields must be strings. Pure: no httpd. */
#ifndef RT_REQUEST_H
#define RT_REQUEST_H

#include "rt_error.h"

typedef enum {
    RT_F_GRANT_TYPE,
    RT_F_APP_ID,
    RT_F_APP_SECRET,
    RT_F_USERNAME,
    RT_F_PASSWORD,
    RT_F_CLIENT_ID,
    RT_F_CLIENT_SECRET,
    RT_F_CODE,
    RT_F_REDIRECT_URI,
    RT_F_REFRESH_TOKEN,
    RT_F_CODE_VERIFIER,
    RT_F_DEVICE_CODE, /* the device authorization grant (RFC 8628) */
    RT_F_ID,          /* legacy apptoken route only */
    RT_F_NAME,        /* legacy apptoken route only */
    RT_F_SECRET,      /* legacy apptoken route only */
    RT_F_TOKEN,       /* revocation */
    RT_F_TOKEN_TYPE_HINT,
    RT_F_ID_TOKEN_HINT, /* logout */
    RT_F_POST_LOGOUT_URI,
    RT_F_STATE,
    RT_F__COUNT
} rt_field_id;

/* Which fields a route knows; the others are ignored like unknown keys. */
#define RT_FIELDS_TOKEN ((1u << RT_F_ID) - 1)
#define RT_FIELDS_LEGACY_APP                                                   \
    ((1u << RT_F_ID) | (1u << RT_F_NAME) | (1u << RT_F_SECRET))

#define RT_FIELDS_REVOKE                                                       \
    ((1u << RT_F_TOKEN) | (1u << RT_F_TOKEN_TYPE_HINT) |                       \
     (1u << RT_F_CLIENT_ID) | (1u << RT_F_CLIENT_SECRET))
#define RT_FIELDS_DEVICE ((1u << RT_F_CLIENT_ID) | (1u << RT_F_CLIENT_SECRET))
#define RT_FIELDS_LOGOUT                                                       \
    ((1u << RT_F_ID_TOKEN_HINT) | (1u << RT_F_POST_LOGOUT_URI) |               \
     (1u << RT_F_STATE) | (1u << RT_F_CLIENT_ID) | (1u << RT_F_REDIRECT_URI))

/* Canonical spellings, as error messages name them. */
extern const char *const rt_request_field_names[RT_F__COUNT];

typedef struct rt_fields {
    const char *v[RT_F__COUNT]; /* NULL when absent */
} rt_fields;

/* The refusals every body dialect shares: empty, or holding a NUL byte. */
rt_error *rt_request_check_body(apr_pool_t *p, const char *body,
                                apr_size_t len);

/* Parses body[0..len) as a JSON object into out (values in p).
 * Returns NULL on success or a 400 error that names the offending field. */
rt_error *rt_request_parse_json(apr_pool_t *p, const char *body, apr_size_t len,
                                unsigned int known, rt_fields *out);

/* The value of field f, or NULL when absent or empty. */
const char *rt_request_field(const rt_fields *f, rt_field_id which);

#endif
