#include "rt_authorize.h"
#include "rt_code.h"
#include "rt_json.h"
#include "rt_authreq.h"
#include "rt_claim_eval.h"
#include "rt_session.h"
#include "rt_util.h"
#include "rt_http.h"

#include "http_log.h"
#include "http_protocol.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

static rt_error *refuse(rt_ctx *c, rt_error_kind kind, const char *message)
{
    return rt_error_make(c->r->pool, kind, message, NULL);
}

/* The upstream token another module left for us, e.g. OIDC_access_token
 * from mod_auth_openidc. */
static const char *external_token(request_rec *r, const rt_dir_conf *dc)
{
    const char *v;

    if (dc->external_token_var == NULL) {
        return NULL;
    }
    v = apr_table_get(r->subprocess_env, dc->external_token_var);
    if (v == NULL) {
        v = apr_table_get(r->notes, dc->external_token_var);
    }
    return v && *v ? v : NULL;
}

/* The out-of-band redirect URI of native clients on hosts without a
 * browser (runai login remote-browser, kubelogin's authcode-keyboard):
 * the user copies the code from a page. */
#define RT_OOB_URI "urn:ietf:wg:oauth:2.0:oob"

/* A small page with the code (a credential until it is redeemed). */
static void oob_page(request_rec *r, const char *code)
{
    rt_http_send_page(
        r, HTTP_OK,
        apr_pstrcat(r->pool,
                    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                    "<title>Your code</title></head>\n<body><p>Copy this code "
                    "into the program that asked you to log in:</p>\n<p><code "
                    "id=\"code\">",
                    code, "</code></p></body></html>\n", NULL));
}

rt_error *rt_authorize_user(rt_ctx *c)
{
    if (c->r->user == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, c->r,
                      "%s reached without authentication: put an AuthType "
                      "and Require valid-user on this location",
                      c->r->uri);
        return refuse(c, RT_ERR_INTERNAL, "internal error");
    }
    c->principal = c->r->user;
    return NULL;
}

rt_error *rt_authorize(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    rt_authreq q;
    rt_error *e;
    const char *code;
    const rt_client *client;
    rt_login l;

    (void)reply;
    c->grant = "authorize";
    e = rt_authorize_user(c);
    if (e != NULL) {
        return e;
    }
    e = rt_authreq_parse(r->pool, r->args, &q);
    c->client = q.client_id;
    client = q.client_id ? rt_config_client(c->sc, q.client_id) : NULL;
    if (e == NULL) {
        e = rt_authreq_check(r->pool, &q, client ? client->uris : NULL);
    }
    if (e != NULL) {
        return e;
    }
    if (q.code_challenge == NULL &&
        (client->pkce || rt_config_require_pkce(c->sc))) {
        return refuse(c, RT_ERR_BAD_REQUEST,
                      "this client must send a PKCE code_challenge (S256)");
    }

    rt_claim_eval_login(r, c->dc->subject, c->dc->claims, r->user, &l);
    l.azp = q.client_id;
    l.nonce = q.nonce && *q.nonce ? q.nonce : NULL;
    l.external = external_token(r, c->dc);
    l.redirect_uri = q.redirect_uri;
    l.challenge = q.code_challenge;
    if (rt_code_mint(r, &l, l.auth_time + rt_config_code_lifetime(c->sc),
                     &code) != RT_STORE_OK) {
        return refuse(c, RT_ERR_STORE_DOWN, "session store unavailable");
    }
    c->outcome = "code_issued";
    if (strcmp(q.redirect_uri, RT_OOB_URI) == 0) {
        oob_page(r, code);
        return NULL;
    }
    r->status = HTTP_MOVED_TEMPORARILY;
    apr_table_setn(r->headers_out, "Location",
                   rt_authreq_location(r->pool, q.redirect_uri, code, q.state));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Pragma", "no-cache");
    ap_set_content_length(r, 0);
    return NULL;
}
