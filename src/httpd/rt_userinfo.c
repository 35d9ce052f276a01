#include "rt_userinfo.h"
#include "rt_guard.h"
#include "rt_http.h"
#include "rt_json.h"

#include "http_log.h"
#include "http_protocol.h"

APLOG_USE_MODULE(runai_token);

/* What a token says about the token itself, not about its user. */
static const char *const token_claims[] = {"iss",       "aud",   "exp", "iat",
                                           "nbf",       "jti",   "azp", "sid",
                                           "auth_time", "nonce", NULL};

rt_error *rt_userinfo(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    const char *why = NULL;
    json_t *claims = rt_guard_claims(r, &why), *body;
    int status;

    (void)reply;
    c->grant = "userinfo";
    if (claims == NULL) {
        /* RFC 6750 §3: the challenge says it; an error body helps humans. */
        status = rt_guard_challenge(r, why ? "invalid_token" : NULL);
        c->outcome = why ? "invalid_token" : "no_token";
        if (why != NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "userinfo: bearer token refused: %s", why);
        }
        body = rt_json_pool_own(
            r->pool, json_pack("{s:s,s:s}", "error",
                               why ? "invalid_token" : "invalid_request",
                               "error_description",
                               why ? "invalid access token"
                                   : "an access token is required"));
        rt_http_send_json(r, status, body);
        return NULL;
    }
    c->principal = json_string_value(json_object_get(claims, "sub"));
    c->client = json_string_value(json_object_get(claims, "azp"));
    c->outcome = "userinfo";
    body = rt_json_pool_own(r->pool, json_deep_copy(claims));
    for (const char *const *k = token_claims; *k; k++) {
        json_object_del(body, *k);
    }
    rt_http_send_json(r, HTTP_OK, body);
    return NULL;
}
