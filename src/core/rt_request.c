#include "rt_request.h"
#include "rt_json.h"
#include "rt_util.h"

#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <jansson.h>

const char *const rt_request_field_names[RT_F__COUNT] = {
    "grantType",
    "appID",
    "appSecret",
    "username",
    "password",
    "clientID",
    "clientSecret",
    "code",
    "redirectUri",
    "refreshToken",
    "codeVerifier",
    "deviceCode",
    "id",
    "name",
    "secret",
    "token",
    "tokenTypeHint",
    "idTokenHint",
    "postLogoutRedirectUri",
    "state"};

static int field_index(const char *key, unsigned int known)
{
    for (int i = 0; i < RT_F__COUNT; i++) {
        if ((known & (1u << i)) &&
            strcasecmp(key, rt_request_field_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

rt_error *rt_request_check_body(apr_pool_t *p, const char *body, apr_size_t len)
{
    if (len == 0) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST, "request body is empty",
                             NULL);
    }
    if (memchr(body, '\0', len) != NULL) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "request body contains a NUL byte", NULL);
    }
    return NULL;
}

rt_error *rt_request_parse_json(apr_pool_t *p, const char *body, apr_size_t len,
                                unsigned int known, rt_fields *out)
{
    json_error_t jerr;
    rt_error *e;
    json_t *root;
    const char *key;
    json_t *value;
    apr_hash_t *seen;

    memset(out, 0, sizeof(*out));
    e = rt_request_check_body(p, body, len);
    if (e != NULL) {
        return e;
    }
    if (!rt_utf8_valid(body, len)) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "request body is not valid UTF-8", NULL);
    }
    /* jansson's error text quotes the input near the error; it may hold a
     * secret, so only the position is passed on. */
    root = rt_json_pool_own(
        p,
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr));
    if (root == NULL) {
        switch (json_error_code(&jerr)) {
        case json_error_duplicate_key:
            return rt_error_make(p, RT_ERR_BAD_REQUEST,
                                 "duplicate key in request body", NULL);
        case json_error_null_character:
            return rt_error_make(p, RT_ERR_BAD_REQUEST,
                                 "NUL character in a JSON string", NULL);
        default:
            return rt_error_make(
                p, RT_ERR_BAD_REQUEST, "request body is not valid JSON",
                apr_psprintf(p, "line %d, column %d", jerr.line, jerr.column));
        }
    }
    if (!json_is_object(root)) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "request body must be a JSON object", NULL);
    }

    seen = apr_hash_make(p);
    json_object_foreach(root, key, value)
    {
        char *lower = apr_pstrdup(p, key);
        int idx;

        for (char *c = lower; *c; c++) {
            *c = (char)apr_tolower(*c);
        }
        idx = field_index(key, known);
        if (apr_hash_get(seen, lower, APR_HASH_KEY_STRING) != NULL) {
            return rt_error_make(
                p, RT_ERR_BAD_REQUEST, "duplicate key in request body",
                idx >= 0 ? apr_psprintf(p, "field '%s' is given twice",
                                        rt_request_field_names[idx])
                         : NULL);
        }
        apr_hash_set(seen, lower, APR_HASH_KEY_STRING, lower);
        if (idx < 0) {
            continue;
        }
        if (!json_is_string(value)) {
            return rt_error_make(p, RT_ERR_BAD_REQUEST,
                                 apr_psprintf(p, "field '%s' must be a string",
                                              rt_request_field_names[idx]),
                                 NULL);
        }
        out->v[idx] = apr_pstrmemdup(p, json_string_value(value),
                                     json_string_length(value));
    }
    return NULL;
}

const char *rt_request_field(const rt_fields *f, rt_field_id which)
{
    const char *v = f->v[which];
    return (v != NULL && *v != '\0') ? v : NULL;
}
