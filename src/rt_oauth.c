#include "rt_oauth.h"
#include "rt_authn.h"
#include "rt_form.h"
#include "rt_http.h"
#include "rt_throttle.h"

#include "http_log.h"
#include <apr_strings.h>
#include <strings.h>

APLOG_USE_MODULE(runai_token);

#define BASIC_CHALLENGE "Basic realm=\"runai-token\""

static rt_error *invalid_client(rt_ctx *c)
{
    c->outcome = "invalid_client";
    return rt_error_make(c->r->pool, 401, "invalid client credentials", NULL);
}

rt_error *rt_oauth_client_auth(rt_ctx *c)
{
    const char *auth = apr_table_get(c->r->headers_in, "Authorization");
    const char *grant = rt_field(&c->f, RT_F_GRANT_TYPE);
    const char *id = rt_field(&c->f, RT_F_CLIENT_ID);
    const char *secret = rt_field(&c->f, RT_F_CLIENT_SECRET);
    int counted;
    apr_int64_t wait;

    if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0) {
        const char *bid, *bsecret;
        rt_error *e = rt_form_basic_auth(c->r->pool, auth, &bid, &bsecret);

        if (e != NULL) {
            c->outcome = e->status == 401 ? "invalid_client" : "bad_request";
            return e;
        }
        if (secret != NULL || (id != NULL && strcmp(id, bid) != 0)) {
            c->outcome = "bad_request";
            return rt_error_make(c->r->pool, 400,
                                 "client credentials given twice", NULL);
        }
        c->f.v[RT_F_CLIENT_ID] = id = bid;
        c->f.v[RT_F_CLIENT_SECRET] = secret = bsecret;
    }
    if (secret == NULL || grant == NULL ||
        strcmp(grant, "client_credentials") == 0) {
        return NULL; /* public client, or the grant checks the secret */
    }
    /* A confidential client using a user grant: its secret must hold. */
    c->grant = grant;
    c->principal = c->client = id;
    if (id == NULL || c->dc->app_providers == NULL) {
        return invalid_client(c);
    }
    wait = rt_throttle_check(c->r, c->dc, id, &counted);
    if (wait > 0) {
        c->outcome = "throttled";
        return rt_throttle_error(c->r, wait);
    }
    switch (rt_authn_check_app(c->r, c->dc, id, secret)) {
    case AUTH_GRANTED:
        if (counted) {
            rt_throttle_succeeded(c->r, c->dc, id);
        }
        c->client_authenticated = 1;
        c->r->user = NULL; /* the user grant names its own principal */
        return NULL;
    case AUTH_DENIED:
        rt_throttle_failed(c->r, c->dc, id);
        return invalid_client(c);
    default:
        c->outcome = "error";
        return rt_error_make(c->r->pool, 500, "internal error", NULL);
    }
}

json_t *rt_oauth_reply(const json_t *reply)
{
    static const char *const names[][2] = {
        {"accessToken", "access_token"},     {"expiresIn", "expires_in"},
        {"refreshToken", "refresh_token"},   {"idToken", "id_token"},
        {"externalToken", "external_token"},
    };
    json_t *o = json_object();

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *v = json_object_get(reply, names[i][0]);
        if (v != NULL) {
            json_object_set(o, names[i][1], v);
        }
        if (i == 0) {
            json_object_set_new(o, "token_type", json_string("Bearer"));
        }
    }
    return o;
}

/* RFC 6749 §5.2 error code and status for an outcome of the grants. */
static const char *error_code(rt_ctx *c, const rt_error *e, int *status)
{
    const char *o = c->outcome ? c->outcome : "";

    *status = e->status;
    if (e->status == 401 && strcmp(o, "invalid_credentials") == 0 &&
        c->grant != NULL && strcmp(c->grant, "app_token") == 0) {
        return "invalid_client";
    }
    if (strcmp(o, "invalid_client") == 0 || strcmp(o, "unknown_client") == 0) {
        *status = 401;
        return "invalid_client";
    }
    if (strcmp(o, "unsupported") == 0 || strcmp(o, "not_enabled") == 0) {
        *status = 400;
        return "unsupported_grant_type";
    }
    switch (e->status) {
    case 401:
        *status = 400; /* wrong password, code, verifier or refresh token */
        return "invalid_grant";
    case 400:
        return strcmp(o, "redirect_mismatch") == 0 ||
                       strcmp(o, "client_mismatch") == 0
                   ? "invalid_grant"
                   : "invalid_request";
    case 429:
        return "slow_down";
    case 503:
        return "temporarily_unavailable";
    case 413:
    case 415:
        return "invalid_request";
    default:
        *status = 500;
        return "server_error";
    }
}

int rt_oauth_send_error(rt_ctx *c, const rt_error *e)
{
    int status;
    const char *code = error_code(c, e, &status);
    json_t *body =
        json_pack("{s:s,s:s}", "error", code, "error_description", e->message);
    int rc;

    if (status == 401) {
        apr_table_setn(c->r->err_headers_out, "WWW-Authenticate",
                       BASIC_CHALLENGE);
    }
    rc = rt_http_send_json(c->r, status, body);
    json_decref(body);
    return rc;
}
