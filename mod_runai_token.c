/* mod_runai_token: the Run:ai API 2.19 token endpoints inside Apache httpd.
 *
 * This file is the front door: the module record, the directive table, the
 * hooks, and the route table that maps method + path to a grant. The code
 * that needs no httpd lives in src/core, the rest of the glue in src/httpd;
 * see docs/testing.md, "Source layout". */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include <apr_strings.h>

#include "util_script.h"

#include "rt_authn.h"
#include "rt_authorize.h"
#include "rt_config.h"
#include "rt_device.h"
#include "rt_end.h"
#include "rt_form.h"
#include "rt_json.h"
#include "rt_grant.h"
#include "rt_guard.h"
#include "rt_health.h"
#include "rt_monitor.h"
#include "rt_oauth.h"
#include "rt_socache.h"
#include "rt_redis_store.h"
#include "rt_store.h"
#include "rt_throttle.h"
#include "rt_http.h"
#include "rt_request.h"
#include "rt_userinfo.h"
#include "rt_util.h"

#define HANDLER_NAME "runai-token"

/* Deprecated routes carry RFC 9745 Deprecation (2024-09-01) and a
 * Link to their successor. */
#define DEPRECATION_DATE "@1725148800"
#define SUCCESSOR_LINK "</api/v1/token>; rel=\"successor-version\""

/* Where a route lives: at a fixed path, or under the issuer's path. */
enum { AT_ROOT, UNDER_ISSUER };

#define POST (AP_METHOD_BIT << M_POST)
#define GET (AP_METHOD_BIT << M_GET)

typedef enum {
    RT_GRANT,     /* grant: JSON body (and forms where form is set) */
    RT_JWKS,      /* the JWKS document */
    RT_DISCOVERY, /* the OIDC discovery document */
    RT_PAGE,      /* a page for people: its handler reads its own body */
} rt_route_kind;

/* Dialects of a route's body: JSON only, JSON or a form (the OAuth 2.0
 * dialect of a Run:ai route), or OAuth 2.0 alone (errors in its shape
 * whatever the body). */
enum { JSON, JSON_FORM, OAUTH };

typedef struct rt_route {
    const char *path;    /* a '*' stands for one segment: c->param */
    int base;            /* AT_ROOT or UNDER_ISSUER */
    apr_int64_t methods; /* POST, GET (HEAD is served as GET) */
    rt_route_kind kind;
    int deprecated;
    int dialect;         /* JSON, JSON_FORM or OAUTH */
    unsigned int fields; /* JSON body fields the route reads; 0: no body */
    int query; /* reads the query (secrets: redacted in the logs), on GET
                  when the route also has a body (an empty one is then no
                  parameters) */
    rt_grant_fn grant; /* fills a JSON reply, or answers by itself */
} rt_route;

static const rt_route routes[] = {
    {"/api/v1/token", AT_ROOT, POST, RT_GRANT, 0, JSON_FORM, RT_FIELDS_TOKEN, 0,
     rt_grant_token},
    {"/protocol/openid-connect/token", UNDER_ISSUER, POST, RT_GRANT, 0,
     JSON_FORM, RT_FIELDS_TOKEN, 0, rt_grant_token},
    /* API 2.20's OAuth 2.0 token endpoint: forms (and JSON), RFC 6749
     * answers. */
    {"/api/v2/token", AT_ROOT, POST, RT_GRANT, 0, OAUTH, RT_FIELDS_TOKEN, 0,
     rt_grant_token},
    {"/api/v1/authorize", AT_ROOT, GET, RT_GRANT, 0, JSON, 0, 0, rt_authorize},
    {"/v1/k8s/auth/oauth/apptoken", AT_ROOT, POST, RT_GRANT, 1, JSON,
     RT_FIELDS_LEGACY_APP, 0, rt_grant_legacy_apptoken},
    {"/v1/k8s/auth/oauth/tokens/refresh", AT_ROOT, POST, RT_GRANT, 1, JSON, 0,
     1, rt_grant_legacy_refresh},
    {"/v1/k8s/auth/token/exchange", AT_ROOT, GET, RT_GRANT, 1, JSON, 0, 1,
     rt_grant_legacy_exchange},
    {"/protocol/openid-connect/revoke", UNDER_ISSUER, POST, RT_GRANT, 0, OAUTH,
     RT_FIELDS_REVOKE, 0, rt_end_revoke},
    {"/protocol/openid-connect/logout", UNDER_ISSUER, GET | POST, RT_GRANT, 0,
     OAUTH, RT_FIELDS_LOGOUT, 1, rt_end_logout},
    {"/api/v1/users/*/logout", AT_ROOT, POST, RT_GRANT, 0, JSON, 0, 0,
     rt_end_user},
    {"/protocol/openid-connect/userinfo", UNDER_ISSUER, GET | POST, RT_GRANT, 0,
     OAUTH, 0, 0, rt_userinfo},
    /* The device authorization grant (RFC 8628) at Keycloak's paths. */
    {"/protocol/openid-connect/auth/device", UNDER_ISSUER, POST, RT_GRANT, 0,
     OAUTH, RT_FIELDS_DEVICE, 0, rt_device_authorize},
    {"/device", UNDER_ISSUER, GET | POST, RT_PAGE, 0, JSON, 0, 0,
     rt_device_page},
    {"/.well-known/openid-configuration", UNDER_ISSUER, GET, RT_DISCOVERY, 0,
     JSON, 0, 0, NULL},
    {"/.well-known/openid-configuration", AT_ROOT, GET, RT_DISCOVERY, 0, JSON,
     0, 0, NULL},
    {"/protocol/openid-connect/certs", UNDER_ISSUER, GET, RT_JWKS, 0, JSON, 0,
     0, NULL},
    {"/.well-known/jwks.json", AT_ROOT, GET, RT_JWKS, 0, JSON, 0, 0, NULL},
};

static const command_rec rt_directives[] = {
    AP_INIT_TAKE1("RunaiTokenIssuer", rt_config_set_issuer, NULL, RSRC_CONF,
                  "Issuer URL of the tokens (iss); default https:// + "
                  "ServerName"),
    AP_INIT_TAKE12("RunaiTokenSigningKey", rt_config_set_signing_key, NULL,
                   RSRC_CONF,
                   "PEM key file (RSA or EC) or hmac:FILE, and an optional "
                   "key id; the first one signs"),
    AP_INIT_ITERATE("RunaiTokenAudience", rt_config_set_audience,
                    (void *)APR_OFFSETOF(rt_dir_conf, audience),
                    RSRC_CONF | ACCESS_CONF,
                    "Audiences (aud) of access tokens; default runai"),
    AP_INIT_ITERATE("RunaiTokenIdTokenAudience", rt_config_set_audience,
                    (void *)APR_OFFSETOF(rt_dir_conf, id_audience),
                    RSRC_CONF | ACCESS_CONF,
                    "Audiences added to the aud of every id token, beside "
                    "its client; default none"),
    AP_INIT_TAKE1("RunaiTokenAccessLifetime", rt_config_set_access_lifetime,
                  NULL, RSRC_CONF | ACCESS_CONF,
                  "Lifetime of access and id tokens in seconds; default "
                  "3600"),
    AP_INIT_ITERATE("RunaiTokenAppProvider", rt_config_set_provider,
                    (void *)APR_OFFSETOF(rt_dir_conf, app_providers),
                    RSRC_CONF | ACCESS_CONF,
                    "Authn providers that check application secrets"),
    AP_INIT_ITERATE("RunaiTokenPasswordProvider", rt_config_set_provider,
                    (void *)APR_OFFSETOF(rt_dir_conf, password_providers),
                    RSRC_CONF | ACCESS_CONF,
                    "Authn providers that check user passwords"),
    AP_INIT_TAKE23("RunaiTokenClaim", rt_config_set_claim,
                   (void *)APR_OFFSETOF(rt_dir_conf, claims),
                   RSRC_CONF | ACCESS_CONF,
                   "Claim of user tokens: NAME EXPR [string|list|number|bool]"),
    AP_INIT_TAKE23("RunaiTokenAppClaim", rt_config_set_claim,
                   (void *)APR_OFFSETOF(rt_dir_conf, app_claims),
                   RSRC_CONF | ACCESS_CONF,
                   "Claim of app tokens: NAME EXPR [string|list|number|bool]"),
    AP_INIT_TAKE1("RunaiTokenMaxBody", rt_config_set_max_body, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Largest accepted request body in bytes; default 16384"),
    AP_INIT_TAKE1("RunaiTokenRefreshLifetime", rt_config_set_refresh_lifetime,
                  NULL, RSRC_CONF | ACCESS_CONF,
                  "Longest life of a refresh session from its login, in "
                  "seconds; default 86400"),
    AP_INIT_TAKE1("RunaiTokenRefreshRetry", rt_config_set_refresh_retry, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds in which a rotated refresh token, presented "
                  "again, gets its successor again; 0 for none; default 30"),
    AP_INIT_TAKE1("RunaiTokenRefreshIdle", rt_config_set_refresh_idle, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds without a refresh after which a session ends, or "
                  "off; default off"),
    AP_INIT_TAKE1("RunaiTokenSessionCheck", rt_config_set_session_check, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds the guard trusts its last look at a token's "
                  "session in the store, or off; default 5"),
    AP_INIT_RAW_ARGS("RunaiTokenRefreshRequire", rt_config_set_refresh_require,
                     NULL, RSRC_CONF | ACCESS_CONF,
                     "A Require line (authz provider and arguments) the user "
                     "must still pass at each refresh"),
    AP_INIT_TAKE12("RunaiTokenRefreshRate", rt_config_set_refresh_rate, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "Refreshes per session and window in seconds, or off; "
                   "default 60 60"),
    AP_INIT_TAKE1("RunaiTokenCodeLifetime", rt_config_set_code_lifetime, NULL,
                  RSRC_CONF,
                  "Lifetime of authorization codes in seconds; default 60"),
    AP_INIT_TAKE1("RunaiTokenDeviceCodeLifetime", rt_config_set_device_lifetime,
                  NULL, RSRC_CONF,
                  "Lifetime of device codes and their user codes in seconds; "
                  "default 600"),
    AP_INIT_TAKE1("RunaiTokenCache", rt_store_set_cache, NULL, RSRC_CONF,
                  "Session store: socache PROVIDER[:ARGS]; default runai-shm"),
    AP_INIT_TAKE1("RunaiTokenRedisTimeout", rt_redis_store_set_timeout, NULL,
                  RSRC_CONF,
                  "Milliseconds to connect to redis and for each command; "
                  "default 1000"),
    AP_INIT_TAKE12("RunaiTokenRedisAuth", rt_redis_store_set_auth, NULL,
                   RSRC_CONF,
                   "[USER] PASSWORD or file:PATH: redis AUTH (an ACL user, "
                   "or the default user)"),
    AP_INIT_TAKE_ARGV("RunaiTokenRedisTLS", rt_redis_store_set_tls, NULL,
                      RSRC_CONF,
                      "CAFILE [CERTFILE KEYFILE]: TLS to redis and its "
                      "sentinels, or off; default off"),
    AP_INIT_TAKE12("RunaiTokenRedisReplicas", rt_redis_store_set_replicas, NULL,
                   RSRC_CONF,
                   "Replicas that must acknowledge each write (redis WAIT) "
                   "and the milliseconds to wait for them; default 0"),
    AP_INIT_TAKE1("RunaiTokenStateDir", rt_store_set_state_dir, NULL, RSRC_CONF,
                  "Directory of the state file of a store of this host, kept "
                  "across stops and crashes, or off; default runai-token "
                  "under DefaultRuntimeDir"),
    AP_INIT_TAKE_ARGV("RunaiTokenClient", rt_config_set_client, NULL, RSRC_CONF,
                      "Registered client: ID [public|confidential] [pkce] "
                      "[device] [REDIRECT_URI...]"),
    AP_INIT_FLAG("RunaiTokenRequirePKCE", rt_config_set_require_pkce, NULL,
                 RSRC_CONF,
                 "On: the authorize endpoint mints codes only with a PKCE "
                 "challenge, for every client; default Off"),
    AP_INIT_TAKE1("RunaiTokenSubject", rt_config_set_subject, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Expression for the sub of user tokens, evaluated after "
                  "authentication; default the user name"),
    AP_INIT_TAKE1("RunaiTokenExternalTokenVar", rt_config_set_name,
                  (void *)APR_OFFSETOF(rt_dir_conf, external_token_var),
                  RSRC_CONF | ACCESS_CONF,
                  "Variable holding an upstream token to return as "
                  "externalToken"),
    AP_INIT_TAKE1("RunaiTokenAppCache", rt_config_set_app_cache, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds a verified app secret is remembered, or off; "
                  "default 10"),
    AP_INIT_TAKE1("RunaiTokenLeeway", rt_config_set_leeway, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Clock skew allowed on exp, nbf and iat, in seconds; default "
                  "30"),
    AP_INIT_TAKE1("RunaiTokenUserClaim", rt_config_set_name,
                  (void *)APR_OFFSETOF(rt_dir_conf, user_claim),
                  RSRC_CONF | ACCESS_CONF,
                  "Claim that becomes REMOTE_USER; default sub"),
    AP_INIT_TAKE12("RunaiTokenThrottle", rt_config_set_throttle, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "Failed attempts per principal and window in seconds, or "
                   "off; default 10 60"),
    {NULL},
};

/* Whether path is the route's path; the segment a '*' stands for (not
 * empty, no '/') goes to *param. */
static int path_matches(const char *pattern, const char *path, apr_pool_t *p,
                        const char **param)
{
    const char *star = strchr(pattern, '*');
    apr_size_t head, tail, len = strlen(path);
    const char *seg;

    if (star == NULL) {
        return strcmp(pattern, path) == 0;
    }
    head = (apr_size_t)(star - pattern);
    tail = strlen(star + 1);
    if (len <= head + tail || strncmp(pattern, path, head) != 0 ||
        strcmp(star + 1, path + len - tail) != 0) {
        return 0;
    }
    seg = apr_pstrmemdup(p, path + head, len - head - tail);
    if (strchr(seg, '/') != NULL) {
        return 0;
    }
    *param = seg;
    return 1;
}

static const rt_route *find_route(request_rec *r, const rt_server_conf *sc,
                                  const char **param)
{
    apr_size_t ilen = strlen(sc->issuer_path);

    for (apr_size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *p = r->uri;

        if (routes[i].base == UNDER_ISSUER) {
            if (strncmp(p, sc->issuer_path, ilen) != 0) {
                continue;
            }
            p += ilen;
        }
        if (path_matches(routes[i].path, p, r->pool, param)) {
            return &routes[i];
        }
    }
    return NULL;
}

/* Reads a legacy route's query as a form (same decoding and refusals as
 * the OAuth dialect: no NUL, no parameter twice), then keeps the secrets
 * out of the access log (%r, %q) by redacting the query. */
static rt_error *read_query(request_rec *r, const char *args, rt_fields *f)
{
    rt_error *err = NULL;

    memset(f, 0, sizeof(*f));
    if (args != NULL && *args != '\0') {
        err = rt_form_parse(r->pool, args, strlen(args), f);
    }
    return err;
}

/* Keeps a query out of the access log (%r, %q): the legacy routes carry
 * refresh tokens and codes there, also when sent to a wrong method or a
 * mistyped path. */
static void redact_query(request_rec *r)
{
    r->args = "redacted";
    r->parsed_uri.query = r->args;
    r->unparsed_uri = apr_pstrcat(r->pool, r->uri, "?redacted", NULL);
    r->the_request = apr_pstrcat(r->pool, r->method, " ", r->unparsed_uri, " ",
                                 r->protocol, NULL);
}

/* An error before the route's grant runs, in the route's dialect. */
static int fail(rt_ctx *c, rt_error_kind kind, const char *message)
{
    rt_error e = {kind, message, NULL};

    ap_discard_request_body(c->r);
    return c->oauth ? rt_oauth_send_error(c, &e) : rt_http_send_error(c->r, &e);
}

static const char *log_value(request_rec *r, const char *v)
{
    return v ? ap_escape_logitem(r->pool, v) : "-";
}

/* JWKS and discovery: built at start-up, cacheable. */
static int send_document(request_rec *r, const char *doc)
{
    r->status = HTTP_OK;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "public, max-age=300");
    ap_set_content_length(r, (apr_off_t)strlen(doc));
    if (!r->header_only) {
        ap_rputs(doc, r);
    }
    return OK;
}

/* Reads and parses the body in the route's dialects into c->f. */
static rt_error *read_request(rt_ctx *c, const rt_route *route)
{
    char *body;
    apr_size_t len;
    rt_body_kind kind;
    rt_error *err =
        rt_http_read_body(c->r, rt_config_max_body(c->dc),
                          route->dialect != JSON, &body, &len, &kind);

    /* A route that also reads its parameters from the query has none it
     * requires: an empty body is a request without parameters. */
    if (err == NULL && len == 0 && route->query) {
        return NULL;
    }
    if (err == NULL && kind == RT_BODY_FORM) {
        c->oauth = c->param_names = 1;
        err = rt_form_parse(c->r->pool, body, len, &c->f);
    } else if (err == NULL) {
        err =
            rt_request_parse_json(c->r->pool, body, len, route->fields, &c->f);
    }
    /* The OAuth 2.0 dialect (a form, or a route of that dialect) takes
     * client credentials from Basic too. */
    return err == NULL && c->oauth ? rt_oauth_client_auth(c) : err;
}

static int rt_handler(request_rec *r)
{
    const rt_route *route;
    rt_ctx c = {0};
    rt_error *err = NULL;
    json_t *reply = NULL;
    const char *args, *outcome;

    if (r->handler == NULL || strcmp(r->handler, HANDLER_NAME) != 0) {
        return DECLINED;
    }
    c.r = r;
    c.sc = ap_get_module_config(r->server->module_config, &runai_token_module);
    c.dc = ap_get_module_config(r->per_dir_config, &runai_token_module);
    route = find_route(r, c.sc, &c.param);
    /* Only the authorize endpoint reads its query as is (it holds no
     * secret); every other query is read here, then redacted. */
    args = r->args;
    if (args != NULL && (route == NULL || route->grant != rt_authorize)) {
        redact_query(r);
    }
    if (route == NULL) {
        return fail(&c, RT_ERR_NOT_FOUND, "not found");
    }
    c.oauth = route->dialect == OAUTH;
    if (route->deprecated) {
        apr_table_setn(r->headers_out, "Deprecation", DEPRECATION_DATE);
        apr_table_setn(r->headers_out, "Link", SUCCESSOR_LINK);
    }
    if (!(route->methods & (AP_METHOD_BIT << r->method_number))) {
        apr_table_setn(r->headers_out, "Allow",
                       route->methods == POST  ? "POST"
                       : route->methods == GET ? "GET, HEAD"
                                               : "GET, HEAD, POST");
        return fail(&c, RT_ERR_METHOD, "method not allowed");
    }
    if (route->kind == RT_JWKS || route->kind == RT_DISCOVERY) {
        ap_discard_request_body(r);
        return send_document(r, route->kind == RT_JWKS ? c.sc->jwks
                                                       : c.sc->discovery);
    }

    c.outcome = "granted";
    c.args = args;
    if (route->kind == RT_PAGE) {
        /* its handler reads the body */
    } else if (route->fields != 0 && r->method_number == M_POST) {
        err = read_request(&c, route);
    } else {
        ap_discard_request_body(r);
        if (route->query) {
            c.param_names = 1;
            err = read_query(r, args, &c.f);
        }
    }
    if (err == NULL) {
        err = route->grant(&c, &reply);
        rt_json_pool_own(r->pool, reply);
    }
    outcome = err ? rt_error_log_word(err) : c.outcome;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "grant=%s principal=%s client=%s remote=%s outcome=%s",
                  log_value(r, c.grant), log_value(r, c.principal),
                  log_value(r, c.client), log_value(r, r->useragent_ip),
                  outcome);
    /* Counted with the words of the log line. */
    rt_monitor_answer(r, (int)(route - routes), c.grant, outcome);
    if (err != NULL) {
        return c.oauth ? rt_oauth_send_error(&c, err)
                       : rt_http_send_error(r, err);
    }
    if (reply != NULL && c.oauth) {
        reply = rt_json_pool_own(r->pool, rt_oauth_reply(reply));
    }
    return reply ? rt_http_send_json(r, HTTP_OK, reply) : OK;
}

static int rt_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    rt_config_pre_config();
    return rt_store_pre_config(pconf);
}

static int rt_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    return rt_config_check(s);
}

/* The route table's paths, the route label of the counters. */
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
static const char *route_paths[NROUTES];

static int rt_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    int rc = rt_config_finish(pconf, s);

    (void)plog;
    for (apr_size_t i = 0; i < NROUTES; i++) {
        route_paths[i] = routes[i].path;
    }
    rc = rc == OK ? rt_store_post_config(pconf, ptemp, s) : rc;
    return rc == OK
               ? rt_monitor_post_config(pconf, s, route_paths, (int)NROUTES)
               : rc;
}

static void rt_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(rt_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(rt_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(rt_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rt_store_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rt_authn_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rt_throttle_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(rt_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(rt_health_handler, NULL, NULL, APR_HOOK_MIDDLE);
    rt_monitor_register(p);
    rt_guard_register(p);
    rt_socache_register(p);
}

AP_DECLARE_MODULE(runai_token) = {
    STANDARD20_MODULE_STUFF,     rt_config_create_dir,   rt_config_merge_dir,
    rt_config_create_server,     rt_config_merge_server, rt_directives,
    rt_register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_ALWAYS_MERGE,
#endif
};
