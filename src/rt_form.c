#include "rt_form.h"
#include "rt_util.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <apr_lib.h>

static const struct {
    const char *name;
    rt_field_id field;
} params[] = {
    {"grant_type", RT_F_GRANT_TYPE},
    {"client_id", RT_F_CLIENT_ID},
    {"client_secret", RT_F_CLIENT_SECRET},
    {"username", RT_F_USERNAME},
    {"password", RT_F_PASSWORD},
    {"refresh_token", RT_F_REFRESH_TOKEN},
    {"code", RT_F_CODE},
    {"redirect_uri", RT_F_REDIRECT_URI},
    {"code_verifier", RT_F_CODE_VERIFIER},
};

const char *rt_form_param_name(rt_field_id f)
{
    for (apr_size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (params[i].field == f) {
            return params[i].name;
        }
    }
    return rt_field_names[f];
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

rt_error *rt_form_parse(apr_pool_t *p, const char *body, apr_size_t len,
                        rt_fields *out)
{
    const char *s = body, *end = body + len;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        return rt_error_make(p, 400, "request body is empty", NULL);
    }
    if (memchr(body, '\0', len) != NULL) {
        return rt_error_make(p, 400, "request body contains a NUL byte", NULL);
    }
    while (s < end) {
        const char *amp = memchr(s, '&', (apr_size_t)(end - s));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(s, '=', (apr_size_t)(pe - s));
        char *name, *value;

        if (pe == s) { /* empty pair, e.g. "a=1&&b=2" */
            s = pe + 1;
            continue;
        }
        name = rt_form_decode(p, s, (apr_size_t)((eq ? eq : pe) - s));
        value = eq ? rt_form_decode(p, eq + 1, (apr_size_t)(pe - eq - 1))
                   : apr_pstrdup(p, "");
        if (name == NULL || value == NULL) {
            return rt_error_make(p, 400, "malformed form body",
                                 "bad percent-escape, NUL or invalid UTF-8");
        }
        for (apr_size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
            if (strcmp(name, params[i].name) != 0) {
                continue;
            }
            if (out->v[params[i].field] != NULL) {
                return rt_error_make(
                    p, 400, "duplicate parameter in request body",
                    apr_psprintf(p, "parameter '%s' is given twice",
                                 params[i].name));
            }
            out->v[params[i].field] = value;
        }
        s = pe + 1;
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
        return rt_error_make(p, 400, "malformed Authorization header", NULL);
    }
    raw = apr_palloc(p, apr_base64_decode_len(b64) + 1);
    n = apr_base64_decode(raw, b64);
    raw[n < 0 ? 0 : n] = '\0';
    colon = strchr(raw, ':');
    if (n <= 0 || colon == NULL || (int)strlen(raw) != n) {
        return rt_error_make(p, 401, "malformed client credentials", NULL);
    }
    *id = rt_form_decode(p, raw, (apr_size_t)(colon - raw));
    *secret = rt_form_decode(p, colon + 1, strlen(colon + 1));
    if (*id == NULL || *secret == NULL || **id == '\0') {
        return rt_error_make(p, 401, "malformed client credentials", NULL);
    }
    return NULL;
}
