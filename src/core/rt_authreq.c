#include "rt_authreq.h"
#include "rt_pkce.h"
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
    static const rt_form_param params[] = {
        {"client_id", 0, 0},
        {"redirect_uri", 0, 0},
        {"response_type", 0, 0},
        {"state", 1, 0},
        {"nonce", 0, 0},
        {"code_challenge", 0, 0},
        {"code_challenge_method", 0, 0},
    };
    const char *v[sizeof(params) / sizeof(params[0])];
    rt_error *e;

    memset(q, 0, sizeof(*q));
    if (query == NULL) {
        return NULL;
    }
    e = rt_form_scan(p, query, strlen(query), "query", params,
                     sizeof(params) / sizeof(params[0]), 0, v);
    if (e == NULL) {
        q->client_id = v[0];
        q->redirect_uri = v[1];
        q->response_type = v[2];
        q->state = v[3];
        q->nonce = v[4];
        q->code_challenge = v[5];
        q->code_challenge_method = v[6];
    }
    return e;
}

/* A loopback redirect URI: "http://" and a loopback host (as is), an
 * optional port of 1 to 5 digits, then nothing, a path or a query. Its
 * host part's length goes to *host, what follows the port to *rest; 0 for
 * any other URI. */
static int loopback(const char *uri, apr_size_t *host, const char **rest)
{
    static const char *const hosts[] = {"http://127.0.0.1", "http://[::1]",
                                        "http://localhost"};

    for (apr_size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        apr_size_t n = strlen(hosts[i]), digits = 0;
        const char *p = uri + n;

        if (strncmp(uri, hosts[i], n) != 0) {
            continue;
        }
        if (*p == ':') {
            while (apr_isdigit(p[1 + digits]) && digits < 6) {
                digits++;
            }
            if (digits == 0 || digits > 5) {
                return 0;
            }
            p += 1 + digits;
        }
        if (*p != '\0' && *p != '/' && *p != '?') {
            return 0; /* "localhost.example.com", "127.0.0.1@evil"... */
        }
        *host = n;
        *rest = p;
        return 1;
    }
    return 0;
}

/* RFC 8252 §7.3: a loopback URI matches a registered one on any port. */
static int same_uri(const char *registered, const char *uri)
{
    apr_size_t rh, uh;
    const char *rr, *ur;

    if (strcmp(registered, uri) == 0) {
        return 1;
    }
    return loopback(registered, &rh, &rr) && loopback(uri, &uh, &ur) &&
           rh == uh && strncmp(registered, uri, rh) == 0 && strcmp(rr, ur) == 0;
}

int rt_authreq_registered(const apr_array_header_t *uris, const char *uri)
{
    for (int i = 0; i < uris->nelts; i++) {
        if (same_uri(APR_ARRAY_IDX(uris, i, const char *), uri)) {
            return 1;
        }
    }
    return 0;
}

rt_error *rt_authreq_check(apr_pool_t *p, const rt_authreq *q,
                           const apr_array_header_t *uris)
{
    const char *method = q->code_challenge_method;
    const char *chal = q->code_challenge;

    if (q->client_id == NULL || *q->client_id == '\0') {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "missing parameter 'client_id'", NULL);
    }
    if (uris == NULL) {
        return rt_error_make(p, RT_ERR_UNKNOWN_CLIENT, "unknown client", NULL);
    }
    /* Byte for byte (a loopback URI on any port): no normalisation an
     * attacker could steer. */
    if (q->redirect_uri == NULL ||
        !rt_authreq_registered(uris, q->redirect_uri)) {
        return rt_error_make(p, RT_ERR_REDIRECT_MISMATCH,
                             "redirect URI not registered for this client",
                             NULL);
    }
    if (q->response_type != NULL && strcmp(q->response_type, "code") != 0) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "response_type must be code", NULL);
    }
    if (method != NULL && (strcmp(method, "S256") != 0 || chal == NULL)) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "code_challenge_method must be S256 with a "
                             "code_challenge",
                             NULL);
    }
    if (chal != NULL && (method == NULL || !rt_pkce_syntax_ok(chal))) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST,
                             "code_challenge must be 43 to 128 base64url "
                             "characters with code_challenge_method S256",
                             NULL);
    }
    if ((q->state && strlen(q->state) > PARAM_MAX) ||
        (q->nonce && strlen(q->nonce) > PARAM_MAX)) {
        return rt_error_make(p, RT_ERR_BAD_REQUEST, "state or nonce too long",
                             NULL);
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
