#include "rt_grant.h"
#include "rt_authn.h"
#include "rt_claims.h"
#include "rt_util.h"

#include "http_log.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define JTI_BYTES 16

static rt_error *bad_request(rt_ctx *c, const char *outcome,
                             const char *message, const char *details)
{
    c->outcome = outcome;
    return rt_error_make(c->r->pool, 400, message, details);
}

static rt_error *missing(rt_ctx *c, rt_field_id f)
{
    return bad_request(
        c, "bad_request",
        apr_psprintf(c->r->pool, "missing field '%s'", rt_field_names[f]),
        NULL);
}

static rt_error *internal(rt_ctx *c, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, c->r, "%s grant failed: %s",
                  c->grant, why);
    c->outcome = "error";
    return rt_error_make(c->r->pool, 500, "internal error", NULL);
}

static json_t *audience(const rt_dir_conf *dc)
{
    json_t *arr;

    if (dc->audience == NULL) {
        return json_string(RT_DEFAULT_AUDIENCE);
    }
    if (dc->audience->nelts == 1) {
        return json_string(APR_ARRAY_IDX(dc->audience, 0, const char *));
    }
    arr = json_array();
    for (int i = 0; i < dc->audience->nelts; i++) {
        json_array_append_new(
            arr, json_string(APR_ARRAY_IDX(dc->audience, i, const char *)));
    }
    return arr;
}

/* The claims both token kinds share; the caller adds the kind's own. */
static json_t *claims_base(rt_ctx *c, const char *sub, json_t *aud,
                           apr_int64_t now)
{
    json_t *o = rt_json_pool_own(c->r->pool, json_object());
    apr_int64_t life = rt_conf_access_lifetime(c->dc);

    json_object_set_new(o, "iss", json_string(c->sc->issuer));
    json_object_set_new(o, "sub", json_string(sub));
    json_object_set_new(o, "aud", aud);
    json_object_set_new(o, "iat", json_integer(now));
    json_object_set_new(o, "exp", json_integer(now + life));
    return o;
}

/* Mints the access token and, when id_aud is given, the id token.
 * profile holds preferred_username and the configured claims. */
static rt_error *mint(rt_ctx *c, const char *sub, const char *azp,
                      json_t *profile, json_t *id_aud, const char **access,
                      const char **id)
{
    const rt_key *key;
    apr_int64_t now = apr_time_sec(c->r->request_time);
    const char *jti = rt_random_id(c->r->pool, JTI_BYTES);
    json_t *at;

    if (c->sc->keys == NULL) {
        json_decref(id_aud);
        return internal(c, "no RunaiTokenSigningKey is configured for this "
                           "server");
    }
    if (jti == NULL) {
        json_decref(id_aud);
        return internal(c, "the random generator failed");
    }
    key = APR_ARRAY_IDX(c->sc->keys, 0, rt_key *);
    at = claims_base(c, sub, audience(c->dc), now);
    json_object_set_new(at, "jti", json_string(jti));
    if (azp != NULL) {
        json_object_set_new(at, "azp", json_string(azp));
    }
    json_object_update(at, profile);
    *access = rt_jwt_sign(c->r->pool, key, at);
    if (id_aud != NULL) {
        json_t *it = claims_base(c, sub, id_aud, now);

        json_object_set_new(it, "auth_time", json_integer(now));
        if (azp != NULL) {
            json_object_set_new(it, "azp", json_string(azp));
        }
        json_object_update(it, profile);
        *id = rt_jwt_sign(c->r->pool, key, it);
    }
    if (*access == NULL || (id_aud != NULL && *id == NULL)) {
        return internal(c, apr_psprintf(c->r->pool,
                                        "signing with key '%s' "
                                        "failed",
                                        key->kid));
    }
    return NULL;
}

/* Checks credentials, evaluates claims; NULL when granted. */
static rt_error *authenticate(rt_ctx *c, const apr_array_header_t *providers,
                              const apr_array_header_t *claims,
                              const char *user, const char *secret,
                              json_t **profile)
{
    switch (rt_authn_check(c->r, providers, user, secret)) {
    case AUTH_GRANTED:
        break;
    case AUTH_DENIED:
        c->outcome = "invalid_credentials";
        return rt_error_make(c->r->pool, 401, "invalid credentials", NULL);
    default:
        c->outcome = "error";
        return rt_error_make(c->r->pool, 500, "internal error", NULL);
    }
    *profile = rt_json_pool_own(c->r->pool, json_object());
    json_object_set_new(*profile, "preferred_username", json_string(user));
    json_object_update(*profile, rt_claims_eval(c->r, claims));
    return NULL;
}

static rt_error *grant_app(rt_ctx *c, const char *id, rt_field_id id_field,
                           const char *secret, rt_field_id secret_field,
                           const char **access, const char **idt)
{
    json_t *profile;
    rt_error *e;

    c->principal = c->client = id;
    if (c->dc->app_providers == NULL) {
        return bad_request(c, "not_enabled", "grant type not enabled", NULL);
    }
    if (id == NULL) {
        return missing(c, id_field);
    }
    if (secret == NULL) {
        return missing(c, secret_field);
    }
    e = authenticate(c, c->dc->app_providers, c->dc->app_claims, id, secret,
                     &profile);
    if (e == NULL) {
        e = mint(c, id, id, profile, idt ? json_string(id) : NULL, access, idt);
    }
    return e;
}

static rt_error *grant_app_token(rt_ctx *c, json_t **reply)
{
    const char *access = NULL;
    int by_app =
        rt_field(&c->f, RT_F_APP_ID) || !rt_field(&c->f, RT_F_CLIENT_ID);
    rt_error *e;

    c->grant = "app_token";
    e = grant_app(
        c, rt_field(&c->f, by_app ? RT_F_APP_ID : RT_F_CLIENT_ID),
        by_app ? RT_F_APP_ID : RT_F_CLIENT_ID,
        rt_field(&c->f, by_app ? RT_F_APP_SECRET : RT_F_CLIENT_SECRET),
        by_app ? RT_F_APP_SECRET : RT_F_CLIENT_SECRET, &access, NULL);
    if (e == NULL) {
        *reply = json_pack("{s:s,s:I}", "accessToken", access, "expiresIn",
                           (json_int_t)rt_conf_access_lifetime(c->dc));
    }
    return e;
}

rt_error *rt_grant_legacy_apptoken(rt_ctx *c, json_t **reply)
{
    const char *access = NULL, *idt = NULL;
    rt_error *e;

    c->grant = "app_token";
    /* The contract requires name; it is not checked against anything. */
    if (c->dc->app_providers != NULL && rt_field(&c->f, RT_F_ID) != NULL &&
        rt_field(&c->f, RT_F_NAME) == NULL) {
        c->principal = rt_field(&c->f, RT_F_ID);
        return missing(c, RT_F_NAME);
    }
    e = grant_app(c, rt_field(&c->f, RT_F_ID), RT_F_ID,
                  rt_field(&c->f, RT_F_SECRET), RT_F_SECRET, &access, &idt);
    if (e == NULL) {
        *reply =
            json_pack("{s:s,s:s}", "access_token", access, "id_token", idt);
    }
    return e;
}

static rt_error *grant_password(rt_ctx *c, json_t **reply)
{
    const char *user = rt_field(&c->f, RT_F_USERNAME);
    const char *password = rt_field(&c->f, RT_F_PASSWORD);
    const char *client = rt_field(&c->f, RT_F_CLIENT_ID);
    const char *access = NULL, *idt = NULL;
    json_t *profile;
    rt_error *e;

    c->grant = "password";
    c->principal = user;
    c->client = client;
    if (c->dc->password_providers == NULL) {
        return bad_request(c, "not_enabled", "grant type not enabled", NULL);
    }
    if (user == NULL) {
        return missing(c, RT_F_USERNAME);
    }
    if (password == NULL) {
        return missing(c, RT_F_PASSWORD);
    }
    e = authenticate(c, c->dc->password_providers, c->dc->claims, user,
                     password, &profile);
    if (e == NULL) {
        e = mint(c, user, client, profile,
                 client ? json_string(client) : audience(c->dc), &access, &idt);
    }
    if (e == NULL) {
        *reply =
            json_pack("{s:s,s:s,s:I}", "accessToken", access, "idToken", idt,
                      "expiresIn", (json_int_t)rt_conf_access_lifetime(c->dc));
    }
    return e;
}

static rt_error *not_supported(rt_ctx *c)
{
    return bad_request(c, "unsupported", "grant type not supported", NULL);
}

rt_error *rt_grant_token(rt_ctx *c, json_t **reply)
{
    const char *g = rt_field(&c->f, RT_F_GRANT_TYPE);

    if (g == NULL) {
        if (c->f.v[RT_F_APP_ID] || c->f.v[RT_F_APP_SECRET]) {
            return grant_app_token(c, reply);
        }
        return missing(c, RT_F_GRANT_TYPE);
    }
    if (strcmp(g, "app_token") == 0 || strcmp(g, "client_credentials") == 0) {
        return grant_app_token(c, reply);
    }
    if (strcmp(g, "password") == 0) {
        return grant_password(c, reply);
    }
    if (strcmp(g, "refresh_token") == 0 || strcmp(g, "exchange_token") == 0) {
        c->grant = g;
    }
    return not_supported(c);
}

rt_error *rt_grant_legacy_refresh(rt_ctx *c, json_t **reply)
{
    (void)reply;
    c->grant = "refresh_token";
    return not_supported(c);
}

rt_error *rt_grant_legacy_exchange(rt_ctx *c, json_t **reply)
{
    (void)reply;
    c->grant = "exchange_token";
    return not_supported(c);
}
