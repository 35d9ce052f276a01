#include "rt_guard.h"
#include "rt_json.h"
#include "rt_config.h"
#include "rt_credcache.h"
#include "rt_util.h"
#include "rt_jwt.h"
#include "rt_monitor.h"
#include "rt_session.h"

#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"
#include "ap_provider.h"
#include <apr_strings.h>
#include <apr_lib.h>
#include <stdio.h>
#include <strings.h>

APLOG_USE_MODULE(runai_token);

#define AUTH_TYPE "RunaiToken"

static int is_ours(request_rec *r)
{
    const char *t = ap_auth_type(r);
    return t != NULL && strcasecmp(t, AUTH_TYPE) == 0;
}

int rt_guard_challenge(request_rec *r, const char *error)
{
    const char *realm = ap_auth_name(r);
    const char *v = apr_psprintf(
        r->pool, "Bearer realm=\"%s\"%s%s%s",
        realm ? ap_escape_quotes(r->pool, realm) : "runai",
        error ? ", error=\"" : "", error ? error : "", error ? "\"" : "");

    apr_table_setn(r->err_headers_out, "WWW-Authenticate", v);
    return HTTP_UNAUTHORIZED;
}

/* RUNAI_TOKEN_<NAME>: upper case, other characters than letters and
 * digits as '_'. */
static const char *env_name(apr_pool_t *p, const char *claim)
{
    char *n = apr_pstrcat(p, "RUNAI_TOKEN_", claim, NULL);

    for (char *c = n + 12; *c; c++) {
        *c = apr_isalnum(*c) ? (char)apr_toupper(*c) : '_';
    }
    return n;
}

static const char *scalar_text(apr_pool_t *p, json_t *v)
{
    char buf[64];

    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        return apr_psprintf(p, "%" APR_INT64_T_FMT,
                            (apr_int64_t)json_integer_value(v));
    }
    if (json_is_boolean(v)) {
        return json_is_true(v) ? "true" : "false";
    }
    if (json_is_real(v)) {
        /* libc, not apr_psprintf: APR's %g drops the leading zero. */
        snprintf(buf, sizeof(buf), "%.15g", json_real_value(v));
        return apr_pstrdup(p, buf);
    }
    return NULL;
}

static void export_claims(request_rec *r, json_t *claims)
{
    const char *name;
    json_t *v;

    json_object_foreach(claims, name, v)
    {
        const char *text = scalar_text(r->pool, v);

        if (json_is_array(v)) {
            size_t i;
            json_t *item;
            const char *joined = "";

            json_array_foreach(v, i, item)
            {
                const char *t = scalar_text(r->pool, item);
                if (t != NULL) {
                    joined = *joined
                                 ? apr_pstrcat(r->pool, joined, ",", t, NULL)
                                 : t;
                }
            }
            text = joined;
        } else if (json_is_object(v)) {
            text = rt_json_ascii(r->pool, v);
        }
        if (text != NULL) {
            apr_table_set(r->subprocess_env, env_name(r->pool, name), text);
        }
    }
}

/* Tokens whose signature verified, per process: a client sends the same
 * token many times, and one P-256 verification costs more than the rest
 * of a small request. The time, issuer and audience checks run on every
 * request; the entry itself lives at most TOKEN_CACHE_TTL seconds. */
#define TOKEN_CACHE_SLOTS 1024
#define TOKEN_CACHE_TTL 300

static rt_credcache *verified;

static json_t *verify(request_rec *r, const rt_jwt_params *v, const char *token,
                      const char **why)
{
    /* The key set scopes an entry: vhosts may trust different keys. */
    const char *scope = apr_psprintf(r->pool, "%pp", (void *)v->keys);
    const char *payload =
        rt_credcache_get(verified, r->pool, scope, token, v->now);

    if (payload == NULL) {
        payload = rt_jwt_verify_signature(r->pool, v->keys, token, why);
        if (payload == NULL) {
            return NULL;
        }
        rt_credcache_put_value(verified, scope, token, v->now,
                               v->now + TOKEN_CACHE_TTL, payload);
    }
    return rt_jwt_verify_claims(r->pool, v, payload, why);
}

/* What this process last saw of a session in the store, for at most
 * RunaiTokenSessionCheck seconds: the bound on how long the guard accepts
 * the access tokens of a session that was revoked, logged out or ended
 * with all of its user's. It is looked at apart from the signature cache
 * above, so that cache's longer life does not stretch the bound. */
#define SESSION_CACHE_SLOTS 4096

static rt_credcache *sessions;

static int session_ended(request_rec *r, const rt_dir_conf *dc, json_t *claims,
                         apr_int64_t now)
{
    apr_int64_t check = rt_config_session_check(dc);
    const char *sid = json_string_value(json_object_get(claims, "sid"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *seen, *scope;
    rt_session_state st;

    if (check == 0 || sid == NULL || sub == NULL) {
        return 0; /* not looked at, or a token of no session (apps) */
    }
    /* The bound is the location's: what a location with a longer one
     * remembered is not seen here. */
    scope = apr_psprintf(r->pool, "%" APR_INT64_T_FMT " %s", check, sub);
    seen =
        sessions ? rt_credcache_get(sessions, r->pool, scope, sid, now) : NULL;
    if (seen != NULL) {
        return *seen == 'e';
    }
    st = rt_session_look(r, sid,
                         json_string_value(json_object_get(claims, "iss")), sub,
                         json_integer_value(json_object_get(claims, "iat")));
    if (st == RT_SESSION_UNKNOWN) {
        /* A store outage ends no session: the signature decides. */
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "bearer token's session not looked at: the session "
                      "store did not answer");
        return 0;
    }
    if (sessions != NULL) {
        rt_credcache_put_value(sessions, scope, sid, now, now + check,
                               st == RT_SESSION_ENDED ? "e" : "l");
    }
    return st == RT_SESSION_ENDED;
}

/* Creates this process's caches of tokens whose signature verified and of
 * sessions looked at. */
static void guard_child_init(apr_pool_t *p, server_rec *s)
{
    verified = rt_credcache_create(p, TOKEN_CACHE_SLOTS);
    sessions = rt_credcache_create(p, SESSION_CACHE_SLOTS);
    if (verified == NULL || sessions == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "bearer token caches unavailable: every bearer token "
                     "is verified and its session looked at");
    }
}

json_t *rt_guard_claims(request_rec *r, const char **why)
{
    const rt_server_conf *sc =
        ap_get_module_config(r->server->module_config, &runai_token_module);
    const rt_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &runai_token_module);
    const char *auth = apr_table_get(r->headers_in, "Authorization");
    const char *token, *user;
    rt_jwt_params v;
    json_t *claims;

    *why = NULL;
    /* httpd strips trailing blanks: "Bearer " arrives as "Bearer". */
    if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 ||
        (auth[6] != ' ' && auth[6] != '\0')) {
        return NULL;
    }
    for (token = auth + 6; *token == ' '; token++) {
    }
    if (*token == '\0') {
        *why = "empty";
        return NULL;
    }
    v.keys = sc->keys;
    v.issuer = sc->issuer;
    v.audience = rt_config_audience(dc, r->pool);
    v.now = apr_time_sec(r->request_time);
    v.leeway = rt_config_leeway(dc);
    claims = verify(r, &v, token, why);
    user = claims ? json_string_value(
                        json_object_get(claims, rt_config_user_claim(dc)))
                  : NULL;
    if (claims != NULL && (user == NULL || *user == '\0')) {
        *why = "no user claim";
    } else if (claims != NULL && session_ended(r, dc, claims, v.now)) {
        *why = "its session has ended";
    }
    return *why ? NULL : claims;
}

static int guard_authn(request_rec *r)
{
    const rt_dir_conf *dc;
    const char *why = NULL;
    json_t *claims;

    if (!is_ours(r)) {
        return DECLINED;
    }
    claims = rt_guard_claims(r, &why);
    rt_monitor_guard(r, claims ? NULL : why ? why : "no_token");
    if (claims == NULL && why == NULL) {
        return rt_guard_challenge(r, NULL);
    }
    if (claims == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "bearer token refused: %s",
                      why);
        return rt_guard_challenge(r, "invalid_token");
    }
    dc = ap_get_module_config(r->per_dir_config, &runai_token_module);
    r->user = apr_pstrdup(r->pool, json_string_value(json_object_get(
                                       claims, rt_config_user_claim(dc))));
    r->ap_auth_type = AUTH_TYPE;
    export_claims(r, claims);
    ap_set_module_config(r->request_config, &runai_token_module, claims);
    return OK;
}

/* Require runai-claim NAME VALUE...: granted when the claim equals, or as
 * an array contains, one of the values. */
static const char *claim_parse(cmd_parms *cmd, const char *line,
                               const void **parsed)
{
    const char *name = ap_getword_conf(cmd->pool, &line);
    apr_array_header_t *words = apr_array_make(cmd->pool, 4, sizeof(char *));

    if (*name == '\0' || *line == '\0') {
        return "Require runai-claim: needs a claim name and at least one "
               "value";
    }
    APR_ARRAY_PUSH(words, const char *) = name;
    while (*line) {
        APR_ARRAY_PUSH(words, const char *) = ap_getword_conf(cmd->pool, &line);
    }
    *parsed = words;
    return NULL;
}

static int value_matches(apr_pool_t *p, json_t *v,
                         const apr_array_header_t *words)
{
    const char *text = scalar_text(p, v);

    for (int i = 1; text != NULL && i < words->nelts; i++) {
        if (strcmp(text, APR_ARRAY_IDX(words, i, const char *)) == 0) {
            return 1;
        }
    }
    return 0;
}

static authz_status claim_check(request_rec *r, const char *line,
                                const void *parsed)
{
    const apr_array_header_t *words = parsed;
    json_t *claims =
        ap_get_module_config(r->request_config, &runai_token_module);
    json_t *v, *item;
    size_t i;

    (void)line;
    if (claims == NULL) {
        return r->user ? AUTHZ_DENIED : AUTHZ_DENIED_NO_USER;
    }
    v = json_object_get(claims, APR_ARRAY_IDX(words, 0, const char *));
    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (value_matches(r->pool, item, words)) {
                return AUTHZ_GRANTED;
            }
        }
        return AUTHZ_DENIED;
    }
    return v && value_matches(r->pool, v, words) ? AUTHZ_GRANTED : AUTHZ_DENIED;
}

static const authz_provider claim_provider = {claim_check, claim_parse};

static int note_failure(request_rec *r, const char *type)
{
    if (strcasecmp(type, AUTH_TYPE) != 0) {
        return DECLINED;
    }
    rt_guard_challenge(r, NULL);
    return OK;
}

/* RFC 6750 section 3.1: a valid token that lacks what the resource needs
 * gets 403 with error="insufficient_scope"; a 401 would make the client
 * refresh its token and retry, for ever. mod_authz_core answers 401 when
 * a Require refuses an authenticated user, unless AuthzSendForbiddenOn-
 * Failure is On, and a module cannot change that from the inside: an authz
 * provider's answers (authz_status) have no "forbidden", ap_auth_type() is
 * the configured AuthType, and the note_auth_failure hook, which
 * mod_authz_core calls before its 401, returns no status. The check_authz
 * hook is run-first: this one runs ahead of mod_authz_core (which is
 * APR_HOOK_LAST), runs the hook itself once more (mod_authz_core's
 * decision among the rest, this hook stepping aside), and answers 403 in
 * place of a refusal when the user came from a bearer token that
 * verified here. Missing and invalid tokens never get here: guard_authn
 * answered 401 with error="invalid_token" or no error. */
#define AUTHZ_INNER_NOTE "runai-token-authz-inner"

static int guard_authz(request_rec *r)
{
    int status;

    if (!is_ours(r) || apr_table_get(r->notes, AUTHZ_INNER_NOTE) != NULL ||
        ap_get_module_config(r->request_config, &runai_token_module) == NULL) {
        return DECLINED;
    }
    apr_table_setn(r->notes, AUTHZ_INNER_NOTE, "1");
    status = ap_run_auth_checker(r);
    apr_table_unset(r->notes, AUTHZ_INNER_NOTE);
    if (status != HTTP_UNAUTHORIZED && status != HTTP_FORBIDDEN) {
        return status;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "bearer token of '%s' verified, authorization refused: "
                  "403 insufficient_scope",
                  ap_escape_logitem(r->pool, r->user));
    rt_monitor_guard(r, "insufficient_scope");
    rt_guard_challenge(r, "insufficient_scope");
    return HTTP_FORBIDDEN;
}

void rt_guard_register(apr_pool_t *p)
{
    ap_hook_check_authn(guard_authn, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_check_authz(guard_authz, NULL, NULL, APR_HOOK_FIRST,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(note_failure, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(guard_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "runai-claim",
                              AUTHZ_PROVIDER_VERSION, &claim_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
