#include "rt_grant.h"
#include "rt_jwt.h"
#include "rt_code.h"
#include "rt_device.h"
#include "rt_pkce.h"
#include "rt_json.h"
#include "rt_authn.h"
#include "rt_claim_eval.h"
#include "rt_form.h"
#include "rt_session.h"
#include "rt_throttle.h"
#include "rt_util.h"

#include "http_log.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define JTI_BYTES 16

static rt_error *fail(rt_ctx *c, rt_error_kind kind, const char *message)
{
    return rt_error_make(c->r->pool, kind, message, NULL);
}

rt_error *rt_grant_missing(rt_ctx *c, rt_field_id f)
{
    /* Named as the request named it: a form parameter or a JSON field. */
    return fail(c, RT_ERR_BAD_REQUEST,
                c->param_names
                    ? apr_psprintf(c->r->pool, "missing parameter '%s'",
                                   rt_form_param_name(f))
                    : apr_psprintf(c->r->pool, "missing field '%s'",
                                   rt_request_field_names[f]));
}

static rt_error *missing(rt_ctx *c, rt_field_id f)
{
    return rt_grant_missing(c, f);
}

static rt_error *internal(rt_ctx *c, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, c->r, "%s grant failed: %s",
                  c->grant, why);
    return fail(c, RT_ERR_INTERNAL, "internal error");
}

static rt_error *store_down(rt_ctx *c)
{
    return fail(c, RT_ERR_STORE_DOWN, "session store unavailable");
}

/* A provider that could not answer (a directory that is down): 503 with
 * Retry-After, whether it was asked for credentials or by
 * RunaiTokenRefreshRequire. */
#define RT_DIRECTORY_RETRY_AFTER "5"

static rt_error *directory_down(rt_ctx *c)
{
    apr_table_setn(c->r->err_headers_out, "Retry-After",
                   RT_DIRECTORY_RETRY_AFTER);
    return fail(c, RT_ERR_DIRECTORY_DOWN, "the user directory is unavailable");
}

/* aud: a string for one audience, an array for several: first (when not
 * NULL), then the values of a, then those of more (may be NULL), each
 * once. */
static json_t *aud_of(const char *first, const apr_array_header_t *a,
                      const apr_array_header_t *more)
{
    json_t *arr = json_array(), *one;
    const apr_array_header_t *lists[2] = {a, more};

    if (first != NULL) {
        json_array_append_new(arr, json_string(first));
    }
    for (int l = 0; l < 2; l++) {
        for (int i = 0; lists[l] != NULL && i < lists[l]->nelts; i++) {
            rt_json_array_add_unique(arr,
                                     APR_ARRAY_IDX(lists[l], i, const char *));
        }
    }
    if (json_array_size(arr) != 1) {
        return arr;
    }
    one = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return one;
}

static json_t *audience(rt_ctx *c)
{
    return aud_of(NULL, rt_config_audience(c->dc, c->r->pool), NULL);
}

/* The claims both token kinds share; the caller adds the kind's own. */
static json_t *claims_base(rt_ctx *c, const rt_login *l, json_t *aud,
                           apr_int64_t now)
{
    json_t *o = rt_json_pool_own(c->r->pool, json_object());

    json_object_set_new(o, "iss", json_string(c->sc->issuer));
    json_object_set_new(o, "sub", json_string(l->sub));
    json_object_set_new(o, "aud", aud);
    json_object_set_new(o, "iat", json_integer(now));
    json_object_set_new(o, "exp",
                        json_integer(now + rt_config_access_lifetime(c->dc)));
    if (l->azp != NULL) {
        json_object_set_new(o, "azp", json_string(l->azp));
    }
    if (l->sid != NULL) {
        json_object_set_new(o, "sid", json_string(l->sid));
    }
    return o;
}

/* Mints the access token and, when id is not NULL, the id token (its aud
 * is the client, else the audience). */
static rt_error *mint(rt_ctx *c, const rt_login *l, const char **access,
                      const char **id)
{
    const rt_key *key;
    apr_int64_t now = apr_time_sec(c->r->request_time);
    const char *jti = rt_random_id(c->r->pool, JTI_BYTES);
    json_t *at;

    if (c->sc->keys == NULL) {
        return internal(c, "no RunaiTokenSigningKey is configured for this "
                           "server");
    }
    if (jti == NULL) {
        return internal(c, "the random generator failed");
    }
    key = APR_ARRAY_IDX(c->sc->keys, 0, rt_key *);
    at = claims_base(c, l, audience(c), now);
    json_object_set_new(at, "jti", json_string(jti));
    /* Profile claims never replace the module's own: a record read back
     * from the store is not trusted to. */
    json_object_update_missing(at, l->profile);
    *access = rt_jwt_sign(c->r->pool, key, at);
    if (id != NULL) {
        /* The client, else the audience; and RunaiTokenIdTokenAudience,
         * so that kube-apiserver's one --oidc-client-id accepts the id
         * tokens of every client. */
        json_t *it = claims_base(
            c, l,
            aud_of(l->azp,
                   l->azp ? NULL : rt_config_audience(c->dc, c->r->pool),
                   c->dc->id_audience),
            now);

        json_object_set_new(it, "auth_time", json_integer(l->auth_time));
        if (l->nonce != NULL) {
            json_object_set_new(it, "nonce", json_string(l->nonce));
        }
        json_object_update_missing(it, l->profile);
        *id = rt_jwt_sign(c->r->pool, key, it);
    }
    if (*access == NULL || (id != NULL && *id == NULL)) {
        return internal(
            c,
            apr_psprintf(c->r->pool, "signing with key '%s' failed", key->kid));
    }
    return NULL;
}

/* {accessToken, idToken?, refreshToken?, externalToken?, expiresIn} */
static json_t *token_reply(rt_ctx *c, const char *access, const char *id,
                           const char *refresh, const char *external)
{
    json_t *o = json_pack("{s:s}", "accessToken", access);

    if (id != NULL) {
        json_object_set_new(o, "idToken", json_string(id));
    }
    if (refresh != NULL) {
        json_object_set_new(o, "refreshToken", json_string(refresh));
    }
    if (external != NULL) {
        json_object_set_new(o, "externalToken", json_string(external));
    }
    json_object_set_new(o, "expiresIn",
                        json_integer(rt_config_access_lifetime(c->dc)));
    return o;
}

/* Throttle, check the credentials (an app's secret when app is set, else a
 * user's password), count the outcome: NULL when they hold, else the
 * error to answer (429; 503 when the provider could not answer; denied
 * with message when they are wrong).
 * The one path for the grants and for client authentication. */
static rt_error *check_credentials(rt_ctx *c, int app, const char *user,
                                   const char *secret, rt_error_kind denied,
                                   const char *message)
{
    /* Users, applications and clients count apart; a client is an
     * application authenticating as one (denied is then RT_ERR_BAD_CLIENT). */
    rt_throttle_space space = !app                          ? RT_THROTTLE_USER
                              : denied == RT_ERR_BAD_CLIENT ? RT_THROTTLE_CLIENT
                                                            : RT_THROTTLE_APP;
    rt_throttle *t;
    /* A secret the app cache holds as verified is no guess: the throttle
     * only looks at the failures on record, and writes nothing. */
    apr_int64_t wait = rt_throttle_reserve(
        c->r, c->dc, space, user,
        app && rt_authn_app_verified(c->r, c->dc, user, secret), &t);

    if (wait > 0) {
        return rt_throttle_error(c->r, space, wait);
    }
    /* The attempt is counted: whatever the concurrency, no more attempts
     * reach the providers than the throttle admits. */
    switch (
        app ? rt_authn_check_app(c->r, c->dc, user, secret)
            : rt_authn_check(c->r, c->dc->password_providers, user, secret)) {
    case AUTH_GRANTED:
        rt_throttle_settle(c->r, t, RT_THROTTLE_GRANTED);
        return NULL;
    case AUTH_DENIED:
        rt_throttle_settle(c->r, t, RT_THROTTLE_FAILED);
        return fail(c, denied, message);
    default:
        /* Neither a yes nor a no (rt_authn_check logged why): the client
         * may try again, and nothing is counted against it. */
        rt_throttle_settle(c->r, t, RT_THROTTLE_UNANSWERED);
        return directory_down(c);
    }
}

/* Credentials (an app's secret when app is set, else a user's password),
 * then subject and claims: NULL when granted, with l filled. */
static rt_error *authenticate(rt_ctx *c, int app,
                              const apr_array_header_t *claims,
                              const char *user, const char *secret, rt_login *l)
{
    rt_error *e = check_credentials(
        c, app, user, secret, app ? RT_ERR_BAD_APP_SECRET : RT_ERR_BAD_PASSWORD,
        "invalid credentials");

    if (e == NULL) {
        rt_claim_eval_login(c->r, app ? NULL : c->dc->subject, claims, user, l);
    }
    return e;
}

static rt_error *grant_app(rt_ctx *c, const char *id, rt_field_id id_field,
                           const char *secret, rt_field_id secret_field,
                           const char **access, const char **idt)
{
    rt_login l;
    rt_error *e;

    c->principal = c->client = id;
    if (c->dc->app_providers == NULL) {
        return fail(c, RT_ERR_GRANT_DISABLED, "grant type not enabled");
    }
    if (id == NULL) {
        return missing(c, id_field);
    }
    if (secret == NULL) {
        return missing(c, secret_field);
    }
    e = authenticate(c, 1, c->dc->app_claims, id, secret, &l);
    if (e == NULL) {
        l.azp = id;
        e = mint(c, &l, access, idt);
    }
    return e;
}

static rt_error *grant_app_token(rt_ctx *c, json_t **reply)
{
    const char *access = NULL;
    /* A form names the app client_id; JSON names it appID or clientId. */
    int by_app = !c->oauth && (rt_request_field(&c->f, RT_F_APP_ID) ||
                               !rt_request_field(&c->f, RT_F_CLIENT_ID));
    rt_field_id id = by_app ? RT_F_APP_ID : RT_F_CLIENT_ID;
    rt_field_id secret = by_app ? RT_F_APP_SECRET : RT_F_CLIENT_SECRET;
    rt_error *e;

    c->grant = "app_token";
    e = grant_app(c, rt_request_field(&c->f, id), id,
                  rt_request_field(&c->f, secret), secret, &access, NULL);
    if (e == NULL) {
        *reply = token_reply(c, access, NULL, NULL, NULL);
    }
    return e;
}

rt_error *rt_grant_legacy_apptoken(rt_ctx *c, json_t **reply)
{
    const char *access = NULL, *idt = NULL;
    rt_error *e;

    c->grant = "app_token";
    /* The contract requires name; it is not checked against anything. */
    if (c->dc->app_providers != NULL &&
        rt_request_field(&c->f, RT_F_ID) != NULL &&
        rt_request_field(&c->f, RT_F_NAME) == NULL) {
        c->principal = rt_request_field(&c->f, RT_F_ID);
        return missing(c, RT_F_NAME);
    }
    e = grant_app(c, rt_request_field(&c->f, RT_F_ID), RT_F_ID,
                  rt_request_field(&c->f, RT_F_SECRET), RT_F_SECRET, &access,
                  &idt);
    if (e == NULL) {
        *reply =
            json_pack("{s:s,s:s}", "access_token", access, "id_token", idt);
    }
    return e;
}

/* A client that has a secret: declared confidential on its
 * RunaiTokenClient line, or, when the line says neither, known to the
 * application providers, which then hold its secret. */
static int client_confidential(rt_ctx *c, const char *id)
{
    const rt_client *cl = rt_config_client(c->sc, id);

    if (cl != NULL && cl->kind != RT_CLIENT_PROBE) {
        return cl->kind == RT_CLIENT_CONFIDENTIAL;
    }
    return c->dc->app_providers != NULL && rt_authn_app_known(c->r, c->dc, id);
}

/* RFC 6749 §2.3 and §4.1.3: a client that has a secret proves it for every
 * grant that names it or redeems what was issued to it (issued_to, with
 * code set for an authorization code); in the OAuth dialect a public
 * client names itself when it redeems a code. */
static rt_error *check_client(rt_ctx *c, const char *issued_to, int code)
{
    const char *named = rt_request_field(&c->f, RT_F_CLIENT_ID);
    const char *client = issued_to ? issued_to : named;

    if (named != NULL && (issued_to != NULL || code) &&
        (issued_to == NULL || strcmp(named, issued_to) != 0)) {
        return fail(c, RT_ERR_CLIENT_MISMATCH, "client mismatch");
    }
    if (client == NULL || c->client_authenticated) {
        return NULL;
    }
    if (client_confidential(c, client)) {
        return fail(c, RT_ERR_BAD_CLIENT, "client authentication required");
    }
    if (code && c->oauth && named == NULL) {
        return missing(c, RT_F_CLIENT_ID);
    }
    return NULL;
}

rt_error *rt_grant_check_owner(rt_ctx *c, const char *issued_to)
{
    const char *named = rt_request_field(&c->f, RT_F_CLIENT_ID);

    if (issued_to != NULL && (named == NULL || strcmp(named, issued_to) != 0)) {
        return fail(c, RT_ERR_CLIENT_MISMATCH,
                    "the token was issued to another client");
    }
    if (named == NULL || c->client_authenticated) {
        return NULL;
    }
    if (c->sc->clients != NULL && rt_config_client(c->sc, named) == NULL) {
        return fail(c, RT_ERR_UNKNOWN_CLIENT, "unknown client");
    }
    return client_confidential(c, named)
               ? fail(c, RT_ERR_BAD_CLIENT, "client authentication required")
               : NULL;
}

/* The client rules for a session, run before its refresh token rotates:
 * a refused refresh leaves the session as it was. */
static int refresh_client_ok(request_rec *r, const rt_login *l, void *baton)
{
    rt_ctx *c = baton;
    const char *failed = NULL;

    c->refused = check_client(c, l->azp, 0);
    if (c->refused == NULL) {
        switch (rt_authn_still_allowed(r, c->dc, l->sub, &failed)) {
        case AUTHZ_GRANTED:
            break;
        case AUTHZ_GENERAL_ERROR:
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "RunaiTokenRefreshRequire %s could not decide for "
                          "'%s': refresh refused, session kept",
                          failed, ap_escape_logitem(r->pool, l->sub));
            c->refused = directory_down(c);
            break;
        default:
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "user '%s' no longer passes RunaiTokenRefreshRequire "
                          "%s: refresh refused",
                          ap_escape_logitem(r->pool, l->sub), failed);
            c->refused = fail(c, RT_ERR_USER_REFUSED, "invalid refresh token");
            break;
        }
    }
    return c->refused == NULL;
}

/* Access, id and refresh tokens for a login that starts a session. */
static rt_error *start_session(rt_ctx *c, rt_login *l, const char *external,
                               json_t **reply)
{
    const char *access = NULL, *idt = NULL, *refresh = NULL;
    apr_int64_t sexp =
        apr_time_sec(c->r->request_time) + rt_config_refresh_lifetime(c->dc);
    rt_error *e;

    /* A code minted before a logout of all its user's sessions: spent. */
    if (l->started < (apr_int64_t)c->r->request_time) {
        switch (rt_session_login_state(c->r, c->sc->issuer, l)) {
        case RT_SESSION_ENDED:
            return fail(c, RT_ERR_BAD_CODE, "invalid or expired code");
        case RT_SESSION_UNKNOWN:
            return store_down(c);
        default:
            break;
        }
    }
    /* The session first: its tokens name it (sid). */
    if (rt_session_start(c->r, l, sexp, &refresh) != RT_STORE_OK) {
        return store_down(c);
    }
    e = mint(c, l, &access, &idt);
    if (e == NULL) {
        *reply = token_reply(c, access, idt, refresh, external);
    }
    return e;
}

static rt_error *grant_password(rt_ctx *c, json_t **reply)
{
    const char *user = rt_request_field(&c->f, RT_F_USERNAME);
    const char *password = rt_request_field(&c->f, RT_F_PASSWORD);
    const char *client = rt_request_field(&c->f, RT_F_CLIENT_ID);
    rt_login l;
    rt_error *e;

    c->grant = "password";
    c->principal = user;
    c->client = client;
    if (c->dc->password_providers == NULL) {
        return fail(c, RT_ERR_GRANT_DISABLED, "grant type not enabled");
    }
    if (user == NULL) {
        return missing(c, RT_F_USERNAME);
    }
    if (password == NULL) {
        return missing(c, RT_F_PASSWORD);
    }
    /* Until clients are registered any clientID is taken as azp; an app
     * that authenticated as a confidential client is known either way. */
    if (client != NULL && c->sc->clients != NULL && !c->client_authenticated &&
        rt_config_client(c->sc, client) == NULL) {
        return fail(c, RT_ERR_UNKNOWN_CLIENT, "unknown client");
    }
    e = check_client(c, NULL, 0);
    if (e != NULL) {
        return e;
    }
    e = authenticate(c, 0, c->dc->claims, user, password, &l);
    if (e != NULL) {
        return e;
    }
    l.azp = client;
    return start_session(c, &l, NULL, reply);
}

static rt_error *grant_refresh(rt_ctx *c, json_t **reply)
{
    const char *token = rt_request_field(&c->f, RT_F_REFRESH_TOKEN);
    const char *access = NULL, *idt = NULL, *next = NULL;
    rt_login l = {0};
    rt_refresh_rules rules;
    apr_int64_t wait = 0;
    rt_error *e;

    c->grant = "refresh_token";
    if (token == NULL) {
        return missing(c, RT_F_REFRESH_TOKEN);
    }
    rt_config_refresh_rules(c->dc, &rules);
    switch (rt_session_refresh(c->r, c->sc->issuer, token, &rules,
                               refresh_client_ok, c, &l, &next, &wait)) {
    case RT_REFRESH_OK:
        break;
    case RT_REFRESH_LIMITED:
        c->principal = l.sub;
        c->client = l.azp;
        apr_table_setn(c->r->err_headers_out, "Retry-After",
                       apr_psprintf(c->r->pool, "%" APR_INT64_T_FMT, wait));
        return fail(c, RT_ERR_REFRESH_RATE,
                    "too many refreshes of this session");
    case RT_REFRESH_REFUSED:
        c->principal = l.sub;
        c->client = l.azp;
        return c->refused;
    case RT_REFRESH_REUSED:
        return fail(c, RT_ERR_REUSED_REFRESH, "invalid refresh token");
    case RT_REFRESH_INVALID:
        return fail(c, RT_ERR_BAD_REFRESH, "invalid refresh token");
    default:
        return store_down(c);
    }
    c->principal = l.sub;
    c->client = l.azp;
    e = mint(c, &l, &access, &idt);
    if (e == NULL) {
        *reply = token_reply(c, access, idt, next, NULL);
    }
    return e;
}

static rt_error *grant_exchange(rt_ctx *c, json_t **reply)
{
    const char *code = rt_request_field(&c->f, RT_F_CODE);
    const char *ruri = rt_request_field(&c->f, RT_F_REDIRECT_URI);
    const char *verifier = rt_request_field(&c->f, RT_F_CODE_VERIFIER);
    rt_login l = {0};
    rt_error *e;

    c->grant = "exchange_token";
    if (code == NULL) {
        return missing(c, RT_F_CODE);
    }
    if (ruri == NULL) {
        return missing(c, RT_F_REDIRECT_URI);
    }
    /* From here on the code is spent, whatever the outcome. */
    switch (rt_code_take(c->r, code, &l)) {
    case RT_STORE_OK:
        break;
    case RT_STORE_NOTFOUND:
        return fail(c, RT_ERR_BAD_CODE, "invalid or expired code");
    default:
        return store_down(c);
    }
    c->principal = l.sub;
    c->client = l.azp;
    if (l.redirect_uri == NULL || strcmp(l.redirect_uri, ruri) != 0) {
        return fail(c, RT_ERR_REDIRECT_MISMATCH, "redirect URI mismatch");
    }
    e = check_client(c, l.azp, 1);
    if (e != NULL) {
        return e;
    }
    if (l.challenge != NULL &&
        (verifier == NULL || !rt_pkce_s256_ok(verifier, l.challenge))) {
        return fail(c, RT_ERR_BAD_VERIFIER, "invalid code verifier");
    }
    return start_session(c, &l, l.external, reply);
}

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"

/* RFC 8628 §3.4-3.5: a poll answers authorization_pending, slow_down,
 * access_denied or expired_token until the user approved; then one poll
 * takes the approval and starts a session as a password grant would. */
static rt_error *grant_device(rt_ctx *c, json_t **reply)
{
    const char *code = rt_request_field(&c->f, RT_F_DEVICE_CODE);
    rt_device_poll_t p;
    rt_login l;
    rt_error *e;

    c->grant = "device_code";
    if (code == NULL) {
        return missing(c, RT_F_DEVICE_CODE);
    }
    rt_device_poll(c->r, code, &p);
    if (p.state == RT_DEVICE_DOWN) {
        return store_down(c);
    }
    if (p.state == RT_DEVICE_INVALID) {
        return fail(c, RT_ERR_BAD_CODE, "invalid device code");
    }
    c->client = p.client;
    e = check_client(c, p.client, 1);
    if (e != NULL) {
        return e;
    }
    switch (p.state) {
    case RT_DEVICE_EXPIRED:
        return fail(c, RT_ERR_EXPIRED_TOKEN, "expired_token");
    case RT_DEVICE_DENIED:
        return fail(c, RT_ERR_ACCESS_DENIED, "access_denied");
    case RT_DEVICE_PENDING:
        return p.slow ? fail(c, RT_ERR_SLOW_DOWN, "slow_down")
                      : fail(c, RT_ERR_AUTH_PENDING, "authorization_pending");
    default:
        break;
    }
    /* Of concurrent polls, one takes the approval; the others find the
     * device code spent. */
    switch (rt_device_redeem(c->r, code, p.exp, &l)) {
    case RT_STORE_OK:
        break;
    case RT_STORE_NOTFOUND:
        return fail(c, RT_ERR_BAD_CODE, "invalid device code");
    default:
        return store_down(c);
    }
    c->principal = l.sub;
    l.azp = p.client;
    return start_session(c, &l, NULL, reply);
}

rt_error *rt_grant_authenticate_client(rt_ctx *c, const char *grant)
{
    const char *id = rt_request_field(&c->f, RT_F_CLIENT_ID);
    const char *secret = rt_request_field(&c->f, RT_F_CLIENT_SECRET);
    rt_error *e;

    if (secret == NULL) {
        return NULL;
    }
    c->grant = grant;
    c->principal = c->client = id;
    if (id == NULL || c->dc->app_providers == NULL) {
        return fail(c, RT_ERR_BAD_CLIENT, "invalid client credentials");
    }
    e = check_credentials(c, 1, id, secret, RT_ERR_BAD_CLIENT,
                          "invalid client credentials");
    if (e == NULL) {
        c->client_authenticated = 1;
        c->r->user = NULL; /* the grant names its own principal */
    }
    return e;
}

rt_error *rt_grant_token(rt_ctx *c, json_t **reply)
{
    const char *g = rt_request_field(&c->f, RT_F_GRANT_TYPE);
    rt_error *e;

    if (g == NULL) {
        if (c->f.v[RT_F_APP_ID] || c->f.v[RT_F_APP_SECRET]) {
            return grant_app_token(c, reply);
        }
        return missing(c, RT_F_GRANT_TYPE);
    }
    if (strcmp(g, "app_token") == 0 || strcmp(g, "client_credentials") == 0) {
        return grant_app_token(c, reply);
    }
    e = rt_grant_authenticate_client(c, g);
    if (e != NULL) {
        return e;
    }
    if (strcmp(g, "password") == 0) {
        return grant_password(c, reply);
    }
    if (strcmp(g, "refresh_token") == 0) {
        return grant_refresh(c, reply);
    }
    if (strcmp(g, "exchange_token") == 0) {
        return grant_exchange(c, reply);
    }
    if (strcmp(g, DEVICE_GRANT) == 0) {
        return grant_device(c, reply);
    }
    return fail(c, RT_ERR_UNSUPPORTED_GRANT, "grant type not supported");
}

rt_error *rt_grant_legacy_refresh(rt_ctx *c, json_t **reply)
{
    return grant_refresh(c, reply);
}

rt_error *rt_grant_legacy_exchange(rt_ctx *c, json_t **reply)
{
    return grant_exchange(c, reply);
}
