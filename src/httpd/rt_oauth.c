#include "rt_oauth.h"
#include "rt_form.h"
#include "rt_http.h"

#include "http_log.h"
#include <apr_strings.h>
#include <strings.h>

APLOG_USE_MODULE(runai_token);

#define BASIC_CHALLENGE "Basic realm=\"runai-token\""

rt_error *rt_oauth_client_auth(rt_ctx *c)
{
    const char *auth = apr_table_get(c->r->headers_in, "Authorization");
    const char *id = rt_request_field(&c->f, RT_F_CLIENT_ID);
    const char *bid, *bsecret;
    rt_error *e;

    if (auth == NULL || strncasecmp(auth, "Basic ", 6) != 0) {
        return NULL;
    }
    e = rt_form_basic_auth(c->r->pool, auth, &bid, &bsecret);
    if (e != NULL) {
        return e;
    }
    if ((*bsecret != '\0' &&
         rt_request_field(&c->f, RT_F_CLIENT_SECRET) != NULL) ||
        (id != NULL && strcmp(id, bid) != 0)) {
        return rt_error_make(c->r->pool, RT_ERR_BAD_REQUEST,
                             "client credentials given twice", NULL);
    }
    c->f.v[RT_F_CLIENT_ID] = bid;
    /* An empty secret identifies a public client and authenticates
     * nothing (Go's golang.org/x/oauth2 and requests-oauthlib send one):
     * as if client_id were in the body, and nothing to count. */
    if (*bsecret != '\0') {
        c->f.v[RT_F_CLIENT_SECRET] = bsecret;
    }
    return NULL;
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

int rt_oauth_send_error(rt_ctx *c, const rt_error *e)
{
    int status;
    const char *code = rt_error_oauth(e, &status);
    json_t *body =
        json_pack("{s:s,s:s}", "error", code, "error_description", e->message);
    int rc;

    if (status == HTTP_UNAUTHORIZED) {
        apr_table_setn(c->r->err_headers_out, "WWW-Authenticate",
                       BASIC_CHALLENGE);
    }
    rc = rt_http_send_json(c->r, status, body);
    json_decref(body);
    return rc;
}
