#include "rt_end.h"
#include "rt_authreq.h"
#include "rt_json.h"
#include "rt_jwt.h"
#include "rt_session.h"
#include "rt_util.h"

#include "http_log.h"
#include "http_protocol.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

static rt_error *fail(rt_ctx *c, rt_error_kind kind, const char *message)
{
    return rt_error_make(c->r->pool, kind, message, NULL);
}

static rt_error *store_down(rt_ctx *c)
{
    return fail(c, RT_ERR_STORE_DOWN, "session store unavailable");
}

/* The claims of a JWT this server signed (its keys, its issuer), expired
 * or not: a token that names a session names it for good. NULL when it
 * is not one. */
static json_t *our_jwt(rt_ctx *c, const char *token)
{
    const char *why = NULL;
    const char *payload =
        rt_jwt_verify_signature(c->r->pool, c->sc->keys, token, &why);
    json_t *claims =
        payload
            ? rt_json_pool_own(
                  c->r->pool, json_loads(payload, JSON_REJECT_DUPLICATES, NULL))
            : NULL;
    const char *iss = json_string_value(json_object_get(claims, "iss"));

    return iss != NULL && strcmp(iss, c->sc->issuer) == 0 ? claims : NULL;
}

static const char *claim_str(json_t *claims, const char *name)
{
    return json_string_value(json_object_get(claims, name));
}

/* 200 with no body, nothing to cache: what revocation and force logout
 * answer. */
static void answer_empty(request_rec *r)
{
    r->status = HTTP_OK;
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, 0);
}

/* The answer of a revocation once the store was asked: 200 whether a
 * session ended or none was found (RFC 7009 §2.2: an invalid token is no
 * error), 503 when the store did not answer. */
static rt_error *revoked(rt_ctx *c, rt_store_status st)
{
    if (st == RT_STORE_DOWN) {
        return store_down(c);
    }
    c->outcome = st == RT_STORE_OK ? "revoked" : "unknown_token";
    answer_empty(c->r);
    return NULL;
}

static int owner_ok(request_rec *r, const rt_login *l, void *baton)
{
    rt_ctx *c = baton;

    (void)r;
    c->refused = rt_grant_check_owner(c, l->azp);
    return c->refused == NULL;
}

rt_error *rt_end_revoke(rt_ctx *c, json_t **reply)
{
    const char *token = rt_request_field(&c->f, RT_F_TOKEN);
    apr_int64_t keep = rt_config_keep_ended(0);
    rt_refresh_parts parts;
    json_t *claims;
    rt_error *e = rt_grant_authenticate_client(c, "revoke");

    (void)reply;
    c->grant = "revoke";
    c->client = rt_request_field(&c->f, RT_F_CLIENT_ID);
    if (e != NULL) {
        return e;
    }
    if (token == NULL) {
        return fail(c, RT_ERR_BAD_REQUEST, "missing parameter 'token'");
    }
    /* The hint only says where to look first (RFC 7009 §2.1); both kinds
     * are told apart by their shape. */
    if (ap_strchr_c(token, '.') == NULL ||
        rt_refresh_parse(c->r->pool, token, &parts)) {
        switch (rt_session_revoke(c->r, token, owner_ok, c, keep)) {
        case RT_REFRESH_OK:
            return revoked(c, RT_STORE_OK);
        case RT_REFRESH_REFUSED:
            return c->refused;
        case RT_REFRESH_DOWN:
            return revoked(c, RT_STORE_DOWN);
        default:
            return revoked(c, RT_STORE_NOTFOUND);
        }
    }
    claims = our_jwt(c, token);
    if (claims == NULL) {
        return revoked(c, RT_STORE_NOTFOUND);
    }
    c->principal = claim_str(claims, "sub");
    if (claim_str(claims, "sid") == NULL) {
        return fail(c, RT_ERR_UNSUPPORTED_TOKEN,
                    "this token belongs to no session: it cannot be revoked, "
                    "it expires");
    }
    e = rt_grant_check_owner(c, claim_str(claims, "azp"));
    return e ? e
             : revoked(c, rt_session_end(c->r, claim_str(claims, "sid"), keep));
}

/* Whether uri may be redirected to after a logout: registered for the
 * client (for any client when none is named). */
static int logout_uri_ok(rt_ctx *c, const char *client, const char *uri)
{
    apr_hash_index_t *hi;

    if (client != NULL) {
        const rt_client *cl = rt_config_client(c->sc, client);

        return cl != NULL && rt_authreq_registered(cl->uris, uri);
    }
    for (hi = c->sc->clients ? apr_hash_first(c->r->pool, c->sc->clients)
                             : NULL;
         hi != NULL; hi = apr_hash_next(hi)) {
        const rt_client *cl = apr_hash_this_val(hi);

        if (rt_authreq_registered(cl->uris, uri)) {
            return 1;
        }
    }
    return 0;
}

#define LOGGED_OUT_PAGE                                                        \
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"                    \
    "<title>Logged out</title></head>\n<body><p>You are logged out."           \
    "</p></body></html>\n"

rt_error *rt_end_logout(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    const char *hint = rt_request_field(&c->f, RT_F_ID_TOKEN_HINT);
    const char *uri = rt_request_field(&c->f, RT_F_POST_LOGOUT_URI);
    const char *legacy = rt_request_field(&c->f, RT_F_REDIRECT_URI);
    const char *state = rt_request_field(&c->f, RT_F_STATE);
    const char *client = rt_request_field(&c->f, RT_F_CLIENT_ID);
    const char *sid = NULL;

    (void)reply;
    c->grant = "logout";
    c->client = client;
    /* Keycloak-era clients (the runai CLI) send redirect_uri. */
    if (uri != NULL && legacy != NULL && strcmp(uri, legacy) != 0) {
        return fail(c, RT_ERR_BAD_REQUEST,
                    "post_logout_redirect_uri and redirect_uri differ");
    }
    uri = uri ? uri : legacy;
    if (hint != NULL) {
        json_t *claims = our_jwt(c, hint);
        const char *azp = claims ? claim_str(claims, "azp") : NULL;

        /* An id token: access tokens (they have a jti) reach every
         * resource server, which must not be able to log users out. */
        if (claims == NULL || json_object_get(claims, "jti") != NULL) {
            return fail(c, RT_ERR_BAD_REQUEST, "invalid id_token_hint");
        }
        if (client != NULL && azp != NULL && strcmp(client, azp) != 0) {
            return fail(c, RT_ERR_CLIENT_MISMATCH,
                        "id_token_hint was issued to another client");
        }
        client = client ? client : azp;
        c->client = client;
        c->principal = claim_str(claims, "sub");
        sid = claim_str(claims, "sid");
    }
    /* Every check before anything ends: a refused logout changes nothing. */
    if (uri != NULL && !logout_uri_ok(c, client, uri)) {
        return fail(c, RT_ERR_LOGOUT_REDIRECT,
                    client ? "post_logout_redirect_uri is not registered for "
                             "this client"
                           : "post_logout_redirect_uri is not registered for "
                             "any client");
    }
    c->outcome = "logged_out";
    if (sid != NULL) {
        switch (rt_session_end(r, sid, rt_config_keep_ended(0))) {
        case RT_STORE_DOWN:
            return store_down(c);
        case RT_STORE_NOTFOUND:
            c->outcome = "no_session";
            break;
        default:
            break;
        }
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (uri != NULL) {
        r->status = HTTP_MOVED_TEMPORARILY;
        apr_table_setn(
            r->headers_out, "Location",
            state ? apr_pstrcat(r->pool, uri, ap_strchr_c(uri, '?') ? "&" : "?",
                                "state=", ap_escape_urlencoded(r->pool, state),
                                NULL)
                  : uri);
        ap_set_content_length(r, 0);
        return NULL;
    }
    r->status = HTTP_OK;
    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_set_content_length(r, (apr_off_t)strlen(LOGGED_OUT_PAGE));
    if (!r->header_only) {
        ap_rputs(LOGGED_OUT_PAGE, r);
    }
    return NULL;
}

rt_error *rt_end_user(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;

    (void)reply;
    c->grant = "force_logout";
    c->principal = c->param;
    if (r->user == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "%s refused: it needs an authenticated user; put an "
                      "AuthType and a Require on this location",
                      ap_escape_logitem(r->pool, r->uri));
        return fail(c, RT_ERR_FORBIDDEN,
                    "force logout is not enabled at this location");
    }
    if (rt_session_end_user(r, c->sc->issuer, c->param,
                            rt_config_keep_ended(1)) != RT_STORE_OK) {
        return store_down(c);
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "every session of user '%s' ended by '%s'",
                  ap_escape_logitem(r->pool, c->param),
                  ap_escape_logitem(r->pool, r->user));
    c->outcome = "logged_out";
    answer_empty(r);
    return NULL;
}
