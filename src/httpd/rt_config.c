#include "rt_config.h"
#include "rt_jwt.h"
#include "rt_claim.h"
#include "rt_util.h"
#include "rt_oidc.h"

#include "http_log.h"
#include "http_core.h"
#include "ap_provider.h"
#include <apr_atomic.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <apr_hash.h>
#include <strings.h>

APLOG_USE_MODULE(runai_token);

/* Claims the module sets itself; RunaiTokenClaim may not replace them. */
static const char *const reserved_claims[] = {
    "iss", "sub", "aud",       "exp",   "iat", "nbf",
    "jti", "azp", "auth_time", "nonce", "sid", NULL};

#define BAD(cmd, value, ...)                                                   \
    apr_psprintf((cmd)->pool, "%s: '%s' %s", (cmd)->cmd->name, (value),        \
                 apr_psprintf((cmd)->pool, __VA_ARGS__))

static rt_server_conf *server_conf(cmd_parms *cmd)
{
    return ap_get_module_config(cmd->server->module_config,
                                &runai_token_module);
}

/* Remembers where grants were first configured, for rt_config_check. */
static void note_grants(cmd_parms *cmd)
{
    rt_server_conf *sc = server_conf(cmd);

    if (sc->grants_at == NULL) {
        sc->grants_at =
            apr_psprintf(cmd->pool, "%s (line %d of %s)", cmd->cmd->name,
                         cmd->directive->line_num, cmd->directive->filename);
    }
}

/* The merge rule of most fields: the child's value where it set one. */
#define PICK(field, unset)                                                     \
    c->field = add->field != unset ? add->field : base->field

/* Every field of both records has a default here and a rule in the merge
 * below; t/91_config_fields.t fails when one is missing. */
void *rt_config_create_server(apr_pool_t *p, server_rec *s)
{
    rt_server_conf *c = apr_palloc(p, sizeof(*c));

    (void)s;
    c->issuer = NULL; /* https:// + ServerName, filled by post_config */
    c->keys = NULL;
    c->code_lifetime = -1;
    c->device_lifetime = -1;
    c->clients = NULL;
    c->require_pkce = -1;
    c->grants_at = NULL;
    c->issuer_path = NULL;
    c->jwks = NULL;
    c->discovery = NULL;
    return c;
}

void *rt_config_merge_server(apr_pool_t *p, void *basev, void *addv)
{
    rt_server_conf *base = basev, *add = addv;
    rt_server_conf *c = apr_palloc(p, sizeof(*c));

    PICK(issuer, NULL);
    PICK(keys, NULL);
    PICK(code_lifetime, -1);
    PICK(device_lifetime, -1);
    PICK(clients, NULL);
    PICK(require_pkce, -1);
    PICK(grants_at, NULL);
    /* Derived from the merged record by post_config, never inherited. */
    c->issuer_path = NULL;
    c->jwks = NULL;
    c->discovery = NULL;
    return c;
}

/* Numbers the dir records of this process as they are created: each
 * section of the configuration gets its own. Records are created while
 * the configuration is read and in child_init (rt_authn.c), before
 * requests run; atomic all the same, should one ever be created by a
 * request (an .htaccess file, were a directive allowed there). */
static volatile apr_uint32_t dir_records;

void *rt_config_create_dir(apr_pool_t *p, char *dir)
{
    rt_dir_conf *c = apr_palloc(p, sizeof(*c));

    (void)dir;
    c->audience = NULL;
    c->id_audience = NULL;
    c->access_lifetime = -1;
    c->app_providers = NULL;
    c->password_providers = NULL;
    c->claims = NULL;
    c->app_claims = NULL;
    c->max_body = -1;
    c->refresh_lifetime = -1;
    c->external_token_var = NULL;
    c->throttle_attempts = -1;
    c->throttle_seconds = 0;
    c->refresh_retry = -1;
    c->refresh_idle = -1;
    c->session_check = -1;
    c->refresh_require = NULL;
    c->refresh_rate = -1;
    c->refresh_rate_seconds = 0;
    c->leeway = -1;
    c->user_claim = NULL;
    c->app_cache = -1;
    c->subject = NULL;
    c->identity = apr_psprintf(p, "%u", apr_atomic_inc32(&dir_records) + 1);
    return c;
}

/* Parent claims, then the child's: a name given again replaces it. */
static apr_array_header_t *merge_claims(apr_pool_t *p,
                                        const apr_array_header_t *base,
                                        const apr_array_header_t *add)
{
    apr_array_header_t *out;

    if (base == NULL || add == NULL) {
        return (apr_array_header_t *)(add ? add : base);
    }
    out = apr_array_copy(p, base);
    for (int i = 0; i < add->nelts; i++) {
        const rt_claim *c = &APR_ARRAY_IDX(add, i, rt_claim);
        int j;

        for (j = 0; j < out->nelts; j++) {
            if (strcmp(APR_ARRAY_IDX(out, j, rt_claim).name, c->name) == 0) {
                break;
            }
        }
        if (j == out->nelts) {
            apr_array_push(out);
        }
        APR_ARRAY_IDX(out, j, rt_claim) = *c;
    }
    return out;
}

void *rt_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    rt_dir_conf *base = basev, *add = addv;
    rt_dir_conf *c = apr_palloc(p, sizeof(*c));

    PICK(audience, NULL);
    PICK(id_audience, NULL);
    PICK(access_lifetime, -1);
    PICK(app_providers, NULL);
    PICK(password_providers, NULL);
    PICK(max_body, -1);
    PICK(refresh_lifetime, -1);
    PICK(external_token_var, NULL);
    PICK(throttle_attempts, -1);
    PICK(throttle_seconds, 0);
    PICK(refresh_retry, -1);
    PICK(refresh_idle, -1);
    PICK(session_check, -1);
    PICK(refresh_require, NULL);
    PICK(refresh_rate, -1);
    PICK(refresh_rate_seconds, 0);
    PICK(leeway, -1);
    PICK(user_claim, NULL);
    PICK(app_cache, -1);
    PICK(subject, NULL);
    /* The sections of both, base then add: never one of them alone. */
    c->identity = apr_pstrcat(p, base->identity, ".", add->identity, NULL);
    c->claims = merge_claims(p, base->claims, add->claims);
    c->app_claims = merge_claims(p, base->app_claims, add->app_claims);
    return c;
}

const char *rt_config_set_issuer(cmd_parms *cmd, void *dc, const char *url)
{
    rt_server_conf *sc = server_conf(cmd);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    apr_uri_t u;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (apr_uri_parse(cmd->pool, url, &u) != APR_SUCCESS || !u.scheme ||
        (strcmp(u.scheme, "https") != 0 && strcmp(u.scheme, "http") != 0) ||
        !u.hostname || !*u.hostname || u.query || u.fragment || u.user) {
        return BAD(cmd, url,
                   "is not an absolute http(s) URL without query, "
                   "fragment or user");
    }
    sc->issuer = url;
    return NULL;
}

const char *rt_config_set_signing_key(cmd_parms *cmd, void *dc,
                                      const char *file, const char *kid)
{
    rt_server_conf *sc = server_conf(cmd);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    int hmac = strncmp(file, "hmac:", 5) == 0;
    const char *path;
    rt_key *key;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (kid != NULL && (*kid == '\0' || strlen(kid) > 256)) {
        return BAD(cmd, kid, "is not a usable key id (1 to 256 characters)");
    }
    path = ap_server_root_relative(cmd->pool, hmac ? file + 5 : file);
    if (path == NULL || (hmac && file[5] == '\0')) {
        return BAD(cmd, file, "is not a valid path");
    }
    err = rt_key_load(cmd->pool,
                      hmac ? apr_pstrcat(cmd->pool, "hmac:", path, NULL) : path,
                      kid, &key);
    if (err == NULL && key->can_sign) {
        err = rt_jwt_selfcheck(cmd->pool, key);
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    if (sc->keys == NULL) {
        if (!key->can_sign) {
            return BAD(cmd, file,
                       "holds a public key only, but the first "
                       "key signs: list a private key first");
        }
        sc->keys = apr_array_make(cmd->pool, 2, sizeof(rt_key *));
    }
    for (int i = 0; i < sc->keys->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(sc->keys, i, rt_key *)->kid, key->kid) == 0) {
            return BAD(cmd, file,
                       "has key id '%s', already used by another "
                       "key",
                       key->kid);
        }
    }
    APR_ARRAY_PUSH(sc->keys, rt_key *) = key;
    return NULL;
}

const char *rt_config_set_audience(cmd_parms *cmd, void *dcv, const char *aud)
{
    apr_array_header_t **list =
        (apr_array_header_t **)((char *)dcv + (apr_size_t)cmd->info);

    if (*aud == '\0') {
        return BAD(cmd, aud, "is empty");
    }
    if (*list == NULL) {
        *list = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(*list, const char *) = aud;
    return NULL;
}

static const char *set_seconds(cmd_parms *cmd, const char *v, apr_int64_t min,
                               apr_int64_t max, apr_int64_t *out)
{
    if (rt_parse_int(v, min, max, out) != 0) {
        return BAD(cmd, v,
                   "is not a whole number from %" APR_INT64_T_FMT
                   " to %" APR_INT64_T_FMT,
                   min, max);
    }
    return NULL;
}

/* The longest access and refresh lifetimes and leeway of this
 * configuration, in any section: how long an ended session, or a logout
 * of all of a user's sessions, must be remembered (rt_config_keep_ended).
 * Set while the configuration is read, in the parent. */
static apr_int64_t longest_access, longest_refresh, longest_leeway;

void rt_config_pre_config(void)
{
    longest_access = RT_DEFAULT_ACCESS_LIFETIME;
    longest_refresh = RT_DEFAULT_REFRESH_LIFETIME;
    longest_leeway = RT_DEFAULT_LEEWAY;
}

static const char *set_longest(cmd_parms *cmd, const char *v, apr_int64_t min,
                               apr_int64_t max, apr_int64_t *out,
                               apr_int64_t *longest)
{
    const char *err = set_seconds(cmd, v, min, max, out);

    if (err == NULL && *out > *longest) {
        *longest = *out;
    }
    return err;
}

apr_int64_t rt_config_keep_ended(int all_sessions)
{
    return apr_time_sec(apr_time_now()) + longest_access + longest_leeway +
           (all_sessions ? longest_refresh : 0);
}

const char *rt_config_set_access_lifetime(cmd_parms *cmd, void *dcv,
                                          const char *v)
{
    return set_longest(cmd, v, 1, 31536000,
                       &((rt_dir_conf *)dcv)->access_lifetime, &longest_access);
}

const char *rt_config_set_session_check(cmd_parms *cmd, void *dcv,
                                        const char *v)
{
    if (strcasecmp(v, "off") == 0) {
        ((rt_dir_conf *)dcv)->session_check = 0;
        return NULL;
    }
    return set_seconds(cmd, v, 1, 3600, &((rt_dir_conf *)dcv)->session_check);
}

apr_int64_t rt_config_session_check(const rt_dir_conf *dc)
{
    return dc->session_check >= 0 ? dc->session_check
                                  : RT_DEFAULT_SESSION_CHECK;
}

const char *rt_config_set_max_body(cmd_parms *cmd, void *dcv, const char *v)
{
    return set_seconds(cmd, v, 64, 16777216, &((rt_dir_conf *)dcv)->max_body);
}

const char *rt_config_set_refresh_lifetime(cmd_parms *cmd, void *dcv,
                                           const char *v)
{
    return set_longest(cmd, v, 1, 31536000,
                       &((rt_dir_conf *)dcv)->refresh_lifetime,
                       &longest_refresh);
}

const char *rt_config_set_refresh_idle(cmd_parms *cmd, void *dcv, const char *v)
{
    if (strcasecmp(v, "off") == 0) {
        ((rt_dir_conf *)dcv)->refresh_idle = 0;
        return NULL;
    }
    return set_seconds(cmd, v, 1, 31536000,
                       &((rt_dir_conf *)dcv)->refresh_idle);
}

const char *rt_config_set_refresh_retry(cmd_parms *cmd, void *dcv,
                                        const char *v)
{
    return set_seconds(cmd, v, 0, 3600, &((rt_dir_conf *)dcv)->refresh_retry);
}

const char *rt_config_set_code_lifetime(cmd_parms *cmd, void *dc, const char *v)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    (void)dc;
    return err ? err
               : set_seconds(cmd, v, 1, 600, &server_conf(cmd)->code_lifetime);
}

const char *rt_config_set_device_lifetime(cmd_parms *cmd, void *dc,
                                          const char *v)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    (void)dc;
    return err ? err
               : set_seconds(cmd, v, 1, 3600,
                             &server_conf(cmd)->device_lifetime);
}

/* RunaiTokenClient ID [public|confidential] [pkce] [device]
 * [REDIRECT_URI...]:
 * redirect URIs are compared byte for byte, so they are checked to be
 * absolute and fragment-free; a word without a colon is a flag. */
const char *rt_config_set_client(cmd_parms *cmd, void *dc, int argc,
                                 char *const argv[])
{
    rt_server_conf *sc = server_conf(cmd);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    rt_client *cl;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (argc < 1 || *argv[0] == '\0') {
        return apr_psprintf(cmd->pool, "%s: a client id is required",
                            cmd->cmd->name);
    }
    for (const char *s = argv[0]; *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
            return BAD(cmd, argv[0], "is not a usable client id");
        }
    }
    if (sc->clients == NULL) {
        sc->clients = apr_hash_make(cmd->pool);
    }
    if (apr_hash_get(sc->clients, argv[0], APR_HASH_KEY_STRING)) {
        return BAD(cmd, argv[0], "is registered twice");
    }
    cl = apr_pcalloc(cmd->pool, sizeof(*cl));
    cl->id = argv[0];
    cl->kind = RT_CLIENT_PROBE;
    cl->uris = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (int i = 1; i < argc; i++) {
        apr_uri_t u;

        if (strchr(argv[i], ':') == NULL) {
            if (strcasecmp(argv[i], "public") == 0 ||
                strcasecmp(argv[i], "confidential") == 0) {
                if (cl->kind != RT_CLIENT_PROBE) {
                    return BAD(cmd, argv[i],
                               "is the second of public and "
                               "confidential");
                }
                cl->kind = strcasecmp(argv[i], "public") == 0
                               ? RT_CLIENT_PUBLIC
                               : RT_CLIENT_CONFIDENTIAL;
            } else if (strcasecmp(argv[i], "pkce") == 0) {
                cl->pkce = 1;
            } else if (strcasecmp(argv[i], "device") == 0) {
                cl->device = 1;
            } else {
                return BAD(cmd, argv[i],
                           "is neither a redirect URI nor one of public, "
                           "confidential, pkce, device");
            }
            continue;
        }
        if (apr_uri_parse(cmd->pool, argv[i], &u) != APR_SUCCESS || !u.scheme ||
            u.fragment ||
            ((!strcmp(u.scheme, "http") || !strcmp(u.scheme, "https")) &&
             (!u.hostname || !*u.hostname))) {
            return BAD(cmd, argv[i],
                       "is not an absolute redirect URI without "
                       "fragment");
        }
        APR_ARRAY_PUSH(cl->uris, const char *) = argv[i];
    }
    apr_hash_set(sc->clients, cl->id, APR_HASH_KEY_STRING, cl);
    note_grants(cmd);
    return NULL;
}

const char *rt_config_set_require_pkce(cmd_parms *cmd, void *dc, int on)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);

    (void)dc;
    if (err == NULL) {
        server_conf(cmd)->require_pkce = on;
    }
    return err;
}

/* An ap_expr string expression, parsed now so a bad one fails configtest. */
static const char *parse_expr(cmd_parms *cmd, const char *expr,
                              ap_expr_info_t **out)
{
    const char *err = NULL;

    *out = ap_expr_parse_cmd(cmd, expr, AP_EXPR_FLAG_STRING_RESULT, &err, NULL);
    return err ? BAD(cmd, expr, "is not a valid expression: %s", err) : NULL;
}

const char *rt_config_set_subject(cmd_parms *cmd, void *dcv, const char *expr)
{
    return parse_expr(cmd, expr, &((rt_dir_conf *)dcv)->subject);
}

/* RunaiTokenExternalTokenVar / RunaiTokenUserClaim: cmd->info is the
 * offset of the name in rt_dir_conf. */
const char *rt_config_set_name(cmd_parms *cmd, void *dcv, const char *name)
{
    if (*name == '\0') {
        return BAD(cmd, name, "is empty");
    }
    *(const char **)((char *)dcv + (apr_size_t)cmd->info) = name;
    return NULL;
}

const char *rt_config_set_app_cache(cmd_parms *cmd, void *dcv, const char *v)
{
    rt_dir_conf *dc = dcv;

    if (strcasecmp(v, "off") == 0) {
        dc->app_cache = 0;
        return NULL;
    }
    return set_seconds(cmd, v, 1, 3600, &dc->app_cache);
}

const char *rt_config_set_leeway(cmd_parms *cmd, void *dcv, const char *v)
{
    return set_longest(cmd, v, 0, 3600, &((rt_dir_conf *)dcv)->leeway,
                       &longest_leeway);
}

/* COUNT SECONDS, or off: a count per window (RunaiTokenThrottle,
 * RunaiTokenRefreshRate). */
static const char *set_count_window(cmd_parms *cmd, const char *count,
                                    const char *seconds, const char *what,
                                    int *n, int *window)
{
    apr_int64_t a, s;

    if (seconds == NULL && strcasecmp(count, "off") == 0) {
        *n = 0;
        *window = 0;
        return NULL;
    }
    if (rt_parse_int(count, 1, 100000, &a) != 0) {
        return BAD(cmd, count,
                   "is not a number of %s from 1 to 100000 (or 'off')", what);
    }
    if (seconds == NULL || rt_parse_int(seconds, 1, 86400, &s) != 0) {
        return BAD(cmd, seconds ? seconds : "",
                   "is not a window of 1 to "
                   "86400 seconds");
    }
    *n = (int)a;
    *window = (int)s;
    return NULL;
}

const char *rt_config_set_throttle(cmd_parms *cmd, void *dcv,
                                   const char *attempts, const char *seconds)
{
    rt_dir_conf *dc = dcv;

    return set_count_window(cmd, attempts, seconds, "attempts",
                            &dc->throttle_attempts, &dc->throttle_seconds);
}

const char *rt_config_set_refresh_rate(cmd_parms *cmd, void *dcv,
                                       const char *count, const char *seconds)
{
    rt_dir_conf *dc = dcv;

    return set_count_window(cmd, count, seconds, "refreshes", &dc->refresh_rate,
                            &dc->refresh_rate_seconds);
}

/* RunaiTokenAppProvider / RunaiTokenPasswordProvider: cmd->info is the
 * offset of the list in rt_dir_conf. Providers are resolved now, as
 * mod_auth_basic does, so an unknown name fails configtest. */
const char *rt_config_set_provider(cmd_parms *cmd, void *dcv, const char *name)
{
    apr_array_header_t **list =
        (apr_array_header_t **)((char *)dcv + (apr_size_t)cmd->info);
    rt_provider *pr;
    const authn_provider *ap =
        ap_lookup_provider(AUTHN_PROVIDER_GROUP, name, AUTHN_PROVIDER_VERSION);

    if (ap == NULL) {
        return BAD(cmd, name,
                   "is not a known authn provider (is its "
                   "mod_authn_* module loaded, or its "
                   "AuthnProviderAlias defined above?)");
    }
    if (ap->check_password == NULL) {
        return BAD(cmd, name, "cannot check passwords");
    }
    if (*list == NULL) {
        *list = apr_array_make(cmd->pool, 2, sizeof(rt_provider));
    }
    note_grants(cmd);
    pr = apr_array_push(*list);
    pr->name = name;
    pr->provider = ap;
    return NULL;
}

const char *rt_config_set_refresh_require(cmd_parms *cmd, void *dcv,
                                          const char *args)
{
    rt_dir_conf *dc = dcv;
    const char *name = ap_getword_conf(cmd->pool, &args);
    rt_refresh_require *rq;
    const authz_provider *ap =
        *name ? ap_lookup_provider(AUTHZ_PROVIDER_GROUP, name,
                                   AUTHZ_PROVIDER_VERSION)
              : NULL;

    if (ap == NULL) {
        return BAD(cmd, name,
                   "is not a known authz provider (the word after Require: "
                   "user, group, ldap-user, ldap-filter, dbd-group...; is "
                   "its mod_authz_* module loaded?)");
    }
    if (dc->refresh_require == NULL) {
        dc->refresh_require =
            apr_array_make(cmd->pool, 2, sizeof(rt_refresh_require));
    }
    rq = apr_array_push(dc->refresh_require);
    rq->name = name;
    rq->line = apr_pstrdup(cmd->pool, args);
    rq->parsed = NULL;
    rq->provider = ap;
    if (ap->parse_require_line != NULL) {
        const char *err = ap->parse_require_line(cmd, rq->line, &rq->parsed);

        if (err != NULL) {
            return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
        }
    }
    return NULL;
}

/* RunaiTokenClaim / RunaiTokenAppClaim: cmd->info is the offset of the
 * claim list in rt_dir_conf. */
const char *rt_config_set_claim(cmd_parms *cmd, void *dcv, const char *name,
                                const char *expr, const char *type)
{
    apr_array_header_t **list =
        (apr_array_header_t **)((char *)dcv + (apr_size_t)cmd->info);
    rt_claim c;
    const char *err = NULL;
    int t = type ? rt_claim_type_parse(type) : RT_CLAIM_STRING;

    if (*name == '\0' || strlen(name) > 128) {
        return BAD(cmd, name, "is not a usable claim name");
    }
    for (const char *const *r = reserved_claims; *r; r++) {
        if (strcmp(name, *r) == 0) {
            return BAD(cmd, name, "is a claim the module sets itself");
        }
    }
    for (const char *s = name; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return BAD(cmd, name, "contains a control character");
        }
    }
    if (t < 0) {
        return BAD(cmd, type,
                   "is not a claim type (string, list, number, "
                   "bool)");
    }
    c.name = name;
    c.type = (rt_claim_type)t;
    err = parse_expr(cmd, expr, &c.expr);
    if (err != NULL) {
        return err;
    }
    if (*list == NULL) {
        *list = apr_array_make(cmd->pool, 4, sizeof(rt_claim));
    }
    {
        apr_array_header_t one = {cmd->pool, sizeof(rt_claim), 1, 1,
                                  (char *)&c};
        *list = merge_claims(cmd->pool, *list, &one);
    }
    return NULL;
}

int rt_config_check(server_rec *main_server)
{
    for (server_rec *s = main_server; s != NULL; s = s->next) {
        const rt_server_conf *sc =
            ap_get_module_config(s->module_config, &runai_token_module);

        if (sc->grants_at != NULL && sc->keys == NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         "RunaiTokenSigningKey is required: %s configures "
                         "token grants for server %s:%u, which has no "
                         "signing key",
                         sc->grants_at, s->server_hostname, s->port);
            return !OK;
        }
    }
    return OK;
}

int rt_config_uses_store(server_rec *main_server)
{
    for (server_rec *s = main_server; s != NULL; s = s->next) {
        const rt_server_conf *sc =
            ap_get_module_config(s->module_config, &runai_token_module);

        if (sc->grants_at != NULL) {
            return 1;
        }
    }
    return 0;
}

/* Names of the claims configured at server level, for discovery. */
static apr_array_header_t *claim_names(apr_pool_t *p, server_rec *s)
{
    const rt_dir_conf *dc =
        ap_get_module_config(s->lookup_defaults, &runai_token_module);
    apr_array_header_t *names = apr_array_make(p, 4, sizeof(const char *));

    for (int i = 0; dc->claims != NULL && i < dc->claims->nelts; i++) {
        APR_ARRAY_PUSH(names, const char *) =
            APR_ARRAY_IDX(dc->claims, i, rt_claim).name;
    }
    return names;
}

int rt_config_finish(apr_pool_t *p, server_rec *main_server)
{
    int first_pass =
        ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG;
    const rt_server_conf *main_sc =
        ap_get_module_config(main_server->module_config, &runai_token_module);

    for (server_rec *s = main_server; s != NULL; s = s->next) {
        rt_server_conf *sc =
            ap_get_module_config(s->module_config, &runai_token_module);

        if (sc->issuer == NULL) {
            sc->issuer = apr_pstrcat(
                p, "https://",
                s->server_hostname ? s->server_hostname : "localhost", NULL);
        }
        sc->issuer_path = rt_oidc_issuer_path(p, sc->issuer);
        sc->jwks = rt_oidc_jwks(p, sc->keys);
        sc->discovery =
            rt_oidc_discovery(p, sc->issuer, sc->keys, claim_names(p, s));
        /* Warn once per key list: vhosts may share the main server's. */
        if (first_pass || sc->keys == NULL ||
            (s != main_server && sc->keys == main_sc->keys)) {
            continue;
        }
        for (int i = 0; i < sc->keys->nelts; i++) {
            const rt_key *k = APR_ARRAY_IDX(sc->keys, i, rt_key *);
            if (k->warning != NULL) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                             "RunaiTokenSigningKey: %s", k->warning);
            }
        }
    }
    return OK;
}

apr_int64_t rt_config_access_lifetime(const rt_dir_conf *dc)
{
    return dc->access_lifetime > 0 ? dc->access_lifetime
                                   : RT_DEFAULT_ACCESS_LIFETIME;
}

apr_int64_t rt_config_max_body(const rt_dir_conf *dc)
{
    return dc->max_body > 0 ? dc->max_body : RT_DEFAULT_MAX_BODY;
}

apr_int64_t rt_config_refresh_lifetime(const rt_dir_conf *dc)
{
    return dc->refresh_lifetime > 0 ? dc->refresh_lifetime
                                    : RT_DEFAULT_REFRESH_LIFETIME;
}

apr_int64_t rt_config_code_lifetime(const rt_server_conf *sc)
{
    return sc->code_lifetime > 0 ? sc->code_lifetime : RT_DEFAULT_CODE_LIFETIME;
}

apr_int64_t rt_config_device_lifetime(const rt_server_conf *sc)
{
    return sc->device_lifetime > 0 ? sc->device_lifetime
                                   : RT_DEFAULT_DEVICE_LIFETIME;
}

void rt_config_refresh_rules(const rt_dir_conf *dc, rt_refresh_rules *rules)
{
    rules->retry =
        dc->refresh_retry >= 0 ? dc->refresh_retry : RT_DEFAULT_REFRESH_RETRY;
    rules->idle = dc->refresh_idle > 0 ? dc->refresh_idle : 0;
    rules->rate_count =
        dc->refresh_rate >= 0 ? dc->refresh_rate : RT_DEFAULT_REFRESH_RATE;
    rules->rate_seconds = dc->refresh_rate >= 0
                              ? dc->refresh_rate_seconds
                              : RT_DEFAULT_REFRESH_RATE_SECONDS;
}

int rt_config_throttle(const rt_dir_conf *dc, int *seconds)
{
    if (dc->throttle_attempts < 0) {
        *seconds = RT_DEFAULT_THROTTLE_SECONDS;
        return RT_DEFAULT_THROTTLE_ATTEMPTS;
    }
    *seconds = dc->throttle_seconds;
    return dc->throttle_attempts;
}

const rt_client *rt_config_client(const rt_server_conf *sc, const char *id)
{
    return sc->clients ? apr_hash_get(sc->clients, id, APR_HASH_KEY_STRING)
                       : NULL;
}

apr_int64_t rt_config_leeway(const rt_dir_conf *dc)
{
    return dc->leeway >= 0 ? dc->leeway : RT_DEFAULT_LEEWAY;
}

const apr_array_header_t *rt_config_audience(const rt_dir_conf *dc,
                                             apr_pool_t *p)
{
    apr_array_header_t *a;

    if (dc->audience != NULL) {
        return dc->audience;
    }
    a = apr_array_make(p, 1, sizeof(const char *));
    APR_ARRAY_PUSH(a, const char *) = RT_DEFAULT_AUDIENCE;
    return a;
}

int rt_config_require_pkce(const rt_server_conf *sc)
{
    return sc->require_pkce == 1;
}

const char *rt_config_user_claim(const rt_dir_conf *dc)
{
    return dc->user_claim ? dc->user_claim : RT_DEFAULT_USER_CLAIM;
}

apr_int64_t rt_config_app_cache(const rt_dir_conf *dc)
{
    return dc->app_cache >= 0 ? dc->app_cache : RT_DEFAULT_APP_CACHE;
}
