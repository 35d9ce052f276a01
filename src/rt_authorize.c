#include "rt_authorize.h"
#include "rt_claims.h"
#include "rt_session.h"
#include "rt_util.h"

#include "http_log.h"
#include "http_protocol.h"
#include "util_script.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define PARAM_MAX 1024 /* state and nonce */

static rt_error *refuse(rt_ctx *c, int status, const char *outcome,
                        const char *message)
{
    c->outcome = outcome;
    return rt_error_make(c->r->pool, status, message, NULL);
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

rt_error *rt_authorize(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    apr_table_t *q;
    const char *client, *ruri, *rtype, *state, *nonce, *chal, *method;
    const char *code, *location;
    const apr_array_header_t *uris;
    rt_login l = {0};

    (void)reply;
    c->grant = "authorize";
    if (r->user == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "%s reached without authentication: put an AuthType "
                      "and Require valid-user on this location",
                      r->uri);
        return refuse(c, 500, "error", "internal error");
    }
    c->principal = r->user;
    ap_args_to_table(r, &q);
    client = apr_table_get(q, "client_id");
    ruri = apr_table_get(q, "redirect_uri");
    rtype = apr_table_get(q, "response_type");
    state = apr_table_get(q, "state");
    nonce = apr_table_get(q, "nonce");
    chal = apr_table_get(q, "code_challenge");
    method = apr_table_get(q, "code_challenge_method");
    c->client = client;
    if (client == NULL || *client == '\0') {
        return refuse(c, 400, "bad_request", "missing parameter 'client_id'");
    }
    uris = rt_conf_client(c->sc, client);
    if (uris == NULL) {
        return refuse(c, 400, "unknown_client", "unknown client");
    }
    if (ruri == NULL || !registered(uris, ruri)) {
        return refuse(c, 400, "redirect_mismatch",
                      "redirect URI not registered for this client");
    }
    if (rtype != NULL && strcmp(rtype, "code") != 0) {
        return refuse(c, 400, "bad_request", "response_type must be code");
    }
    if ((method != NULL && strcmp(method, "S256") != 0) ||
        (method != NULL && chal == NULL)) {
        return refuse(c, 400, "bad_request",
                      "code_challenge_method must be S256 with a "
                      "code_challenge");
    }
    if (chal != NULL && (method == NULL || !rt_pkce_syntax_ok(chal))) {
        return refuse(c, 400, "bad_request",
                      "code_challenge must be 43 to 128 base64url "
                      "characters with code_challenge_method S256");
    }
    if ((state && strlen(state) > PARAM_MAX) ||
        (nonce && strlen(nonce) > PARAM_MAX)) {
        return refuse(c, 400, "bad_request", "state or nonce too long");
    }

    l.sub = r->user;
    l.azp = client;
    l.auth_time = apr_time_sec(r->request_time);
    l.nonce = nonce && *nonce ? nonce : NULL;
    l.external = external_token(r, c->dc);
    l.redirect_uri = ruri;
    l.challenge = chal;
    l.profile = rt_json_pool_own(r->pool, json_object());
    json_object_set_new(l.profile, "preferred_username", json_string(r->user));
    json_object_update(l.profile, rt_claims_eval(r, c->dc->claims));
    if (rt_code_mint(r, &l, l.auth_time + rt_conf_code_lifetime(c->sc),
                     &code) != RT_STORE_OK) {
        return refuse(c, 503, "store_unavailable", "session store unavailable");
    }
    location = apr_pstrcat(r->pool, ruri, strchr(ruri, '?') ? "&" : "?",
                           "code=", code, NULL);
    if (state != NULL) {
        location =
            apr_pstrcat(r->pool, location,
                        "&state=", ap_escape_urlencoded(r->pool, state), NULL);
    }
    c->outcome = "code_issued";
    r->status = HTTP_MOVED_TEMPORARILY;
    apr_table_setn(r->headers_out, "Location", location);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Pragma", "no-cache");
    ap_set_content_length(r, 0);
    return NULL;
}
