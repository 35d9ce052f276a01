#include "rt_authreq.h"
#include "rt_form.h"
#include "rt_util.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#define PARAM_MAX 1024 /* state and nonce */

rt_error *rt_authreq_parse(apr_pool_t *p, const char *query, rt_authreq *q)
{
    /* state is opaque and only echoed back: any bytes but NUL. The others
     * end up in JSON records and tokens: UTF-8. */
    const struct {
        const char *name;
        const char **slot;
        int opaque;
    } params[] = {
        {"client_id", &q->client_id, 0},
        {"redirect_uri", &q->redirect_uri, 0},
        {"response_type", &q->response_type, 0},
        {"state", &q->state, 1},
        {"nonce", &q->nonce, 0},
        {"code_challenge", &q->code_challenge, 0},
        {"code_challenge_method", &q->code_challenge_method, 0},
    };
    const char *s = query, *end;

    memset(q, 0, sizeof(*q));
    if (query == NULL) {
        return NULL;
    }
    end = query + strlen(query);
    while (s < end) {
        const char *amp = strchr(s, '&');
        const char *pe = amp ? amp : end;
        const char *eq = memchr(s, '=', (apr_size_t)(pe - s));
        char *name, *value;

        if (pe == s) {
            s = pe + 1;
            continue;
        }
        apr_size_t vlen;

        name = rt_form_decode(p, s, (apr_size_t)((eq ? eq : pe) - s));
        value = eq ? rt_form_decode_bytes(p, eq + 1, (apr_size_t)(pe - eq - 1),
                                          &vlen)
                   : apr_pstrdup(p, "");
        if (name == NULL || value == NULL) {
            return rt_error_make(p, 400, "malformed query",
                                 "bad percent-escape or NUL");
        }
        for (apr_size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
            if (strcmp(name, params[i].name) != 0) {
                continue;
            }
            if (!params[i].opaque && !rt_utf8_valid(value, strlen(value))) {
                return rt_error_make(p, 400, "malformed query",
                                     apr_psprintf(p,
                                                  "parameter '%s' is not UTF-8",
                                                  params[i].name));
            }
            if (*params[i].slot != NULL) {
                return rt_error_make(
                    p, 400, "duplicate parameter in query",
                    apr_psprintf(p, "parameter '%s' is given twice",
                                 params[i].name));
            }
            *params[i].slot = value;
        }
        s = pe + 1;
    }
    return NULL;
}

static int registered(const apr_array_header_t *uris, const char *uri)
{
    for (int i = 0; i < uris->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(uris, i, const char *), uri) == 0) {
            return 1;
        }
    }
    return 0;
}

rt_error *rt_authreq_check(apr_pool_t *p, const rt_authreq *q,
                           const apr_array_header_t *uris, const char **outcome)
{
    const char *method = q->code_challenge_method;
    const char *chal = q->code_challenge;

    *outcome = "bad_request";
    if (q->client_id == NULL || *q->client_id == '\0') {
        return rt_error_make(p, 400, "missing parameter 'client_id'", NULL);
    }
    if (uris == NULL) {
        *outcome = "unknown_client";
        return rt_error_make(p, 400, "unknown client", NULL);
    }
    /* Byte for byte: no normalisation an attacker could steer. */
    if (q->redirect_uri == NULL || !registered(uris, q->redirect_uri)) {
        *outcome = "redirect_mismatch";
        return rt_error_make(
            p, 400, "redirect URI not registered for this client", NULL);
    }
    if (q->response_type != NULL && strcmp(q->response_type, "code") != 0) {
        return rt_error_make(p, 400, "response_type must be code", NULL);
    }
    if (method != NULL && (strcmp(method, "S256") != 0 || chal == NULL)) {
        return rt_error_make(p, 400,
                             "code_challenge_method must be S256 with a "
                             "code_challenge",
                             NULL);
    }
    if (chal != NULL && (method == NULL || !rt_pkce_syntax_ok(chal))) {
        return rt_error_make(p, 400,
                             "code_challenge must be 43 to 128 base64url "
                             "characters with code_challenge_method S256",
                             NULL);
    }
    if ((q->state && strlen(q->state) > PARAM_MAX) ||
        (q->nonce && strlen(q->nonce) > PARAM_MAX)) {
        return rt_error_make(p, 400, "state or nonce too long", NULL);
    }
    return NULL;
}

/* Percent-encodes all but RFC 3986 unreserved characters. */
static char *query_escape(apr_pool_t *p, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(s) * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (apr_isalnum(c) || strchr("-._~", c)) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

char *rt_authreq_location(apr_pool_t *p, const char *redirect_uri,
                          const char *code, const char *state)
{
    return apr_pstrcat(p, redirect_uri, strchr(redirect_uri, '?') ? "&" : "?",
                       "code=", query_escape(p, code), state ? "&state=" : "",
                       state ? query_escape(p, state) : "", NULL);
}
