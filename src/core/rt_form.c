#include "rt_form.h"
#include "rt_util.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_lib.h>

/* The form parameters of the token endpoints; id is the field each fills. */
static const rt_form_param params[] = {
    {"grant_type", 0, RT_F_GRANT_TYPE},
    {"client_id", 0, RT_F_CLIENT_ID},
    {"client_secret", 0, RT_F_CLIENT_SECRET},
    {"username", 0, RT_F_USERNAME},
    {"password", 0, RT_F_PASSWORD},
    {"refresh_token", 0, RT_F_REFRESH_TOKEN},
    {"code", 0, RT_F_CODE},
    {"redirect_uri", 0, RT_F_REDIRECT_URI},
    {"code_verifier", 0, RT_F_CODE_VERIFIER},
    {"device_code", 0, RT_F_DEVICE_CODE},
    {"token", 0, RT_F_TOKEN},
    {"token_type_hint", 0, RT_F_TOKEN_TYPE_HINT},
    {"id_token_hint", 0, RT_F_ID_TOKEN_HINT},
    {"post_logout_redirect_uri", 0, RT_F_POST_LOGOUT_URI},
    {"state", 0, RT_F_STATE},
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

const char *rt_form_param_name(rt_field_id f)
{
    for (apr_size_t i = 0; i < NPARAMS; i++) {
        if (params[i].id == (int)f) {
            return params[i].name;
        }
    }
    return rt_request_field_names[f];
}

static int hexval(char c)
{
    return apr_isdigit(c)           ? c - '0'
           : (c >= 'a' && c <= 'f') ? c - 'a' + 10
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                    : -1;
}

char *rt_form_decode_bytes(apr_pool_t *p, const char *s, apr_size_t n,
                           apr_size_t *len)
{
    char *out = apr_palloc(p, n + 1), *o = out;

    for (apr_size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n) {
                return NULL;
            }
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    *len = (apr_size_t)(o - out);
    return out;
}

char *rt_form_decode(apr_pool_t *p, const char *s, apr_size_t n)
{
    apr_size_t len;
    char *out = rt_form_decode_bytes(p, s, n, &len);

    return out && rt_utf8_valid(out, len) ? out : NULL;
}

rt_error *rt_form_scan(apr_pool_t *p, const char *s, apr_size_t len,
                       const char *where, const rt_form_param *params,
                       apr_size_t n, int text_unknown, const char **values)
{
    const char *end = s + len;

    memset(values, 0, n * sizeof(*values));
    while (s < end) {
        const char *amp = memchr(s, '&', (apr_size_t)(end - s));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(s, '=', (apr_size_t)(pe - s));
        char *name, *value = "";
        apr_size_t i, vlen = 0;

        if (pe == s) { /* empty pair, e.g. "a=1&&b=2" */
            s = pe + 1;
            continue;
        }
        name = rt_form_decode(p, s, (apr_size_t)((eq ? eq : pe) - s));
        if (eq != NULL) {
            value = rt_form_decode_bytes(p, eq + 1, (apr_size_t)(pe - eq - 1),
                                         &vlen);
        }
        if (name == NULL || value == NULL) {
            return rt_error_make(p, RT_ERR_BAD_REQUEST,
                                 apr_pstrcat(p, "malformed ", where, NULL),
                                 "bad percent-escape or NUL");
        }
        for (i = 0; i < n && strcmp(name, params[i].name) != 0; i++) {
        }
        if ((i < n ? !params[i].opaque : text_unknown) &&
            !rt_utf8_valid(value, vlen)) {
            return rt_error_make(
                p, RT_ERR_BAD_REQUEST,
                apr_pstrcat(p, "malformed ", where, NULL),
                i < n ? apr_psprintf(p, "parameter '%s' is not UTF-8", name)
                      : "invalid UTF-8");
        }
        if (i < n && values[i] != NULL) {
            return rt_error_make(
                p, RT_ERR_BAD_REQUEST,
                apr_pstrcat(p, "duplicate parameter in ", where, NULL),
                apr_psprintf(p, "parameter '%s' is given twice", name));
        }
        if (i < n) {
            values[i] = value;
        }
        s = pe + 1;
    }
    return NULL;
}

rt_error *rt_form_parse(apr_pool_t *p, const char *body, apr_size_t len,
                        rt_fields *out)
{
    const char *values[NPARAMS];
    rt_error *e;

    memset(out, 0, sizeof(*out));
    e = rt_request_check_body(p, body, len);
    if (e != NULL) {
        return e;
    }
    /* Every value is UTF-8 text, that of an unknown parameter too. */
    e = rt_form_scan(p, body, len, "request body", params, NPARAMS, 1, values);
    if (e != NULL) {
        return e;
    }
    for (apr_size_t i = 0; i < NPARAMS; i++) {
        out->v[params[i].id] = values[i];
    }
    if (out->v[RT_F_GRANT_TYPE] &&
        strcmp(out->v[RT_F_GRANT_TYPE], "authorization_code") == 0) {
        out->v[RT_F_GRANT_TYPE] = "exchange_token";
    }
    return NULL;
}

rt_error *rt_form_basic_auth(apr_pool_t *p, const char *header, const char **id,
                             const char **secret)
{
    const char *b64 = header + 6;
    char *raw, *colon;
    int n;

    while (*b64 == ' ') {
        b64++;
    }
    if (strlen(b64) > 4096) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "malformed Authorization header", NULL);
    }
    raw = apr_palloc(p, apr_base64_decode_len(b64) + 1);
    n = apr_base64_decode(raw, b64);
    raw[n < 0 ? 0 : n] = '\0';
    colon = strchr(raw, ':');
    if (n <= 0 || colon == NULL || (int)strlen(raw) != n) {
        return rt_error_make(p, RT_ERR_BAD_CLIENT,
                             "malformed client credentials", NULL);
    }
    *id = rt_form_decode(p, raw, (apr_size_t)(colon - raw));
    *secret = rt_form_decode(p, colon + 1, strlen(colon + 1));
    if (*id == NULL || *secret == NULL || **id == '\0') {
        return rt_error_make(p, RT_ERR_BAD_CLIENT,
                             "malformed client credentials", NULL);
    }
    return NULL;
}
