/* Configuration records and the directive handlers that fill them. Every
 * value is checked here, at configuration time; requests read effective
 * values through the rt_config_* accessors, which apply the defaults. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include "httpd.h"
#include "http_config.h"
#include "mod_auth.h"
#include "ap_expr.h"
#include <apr_hash.h>

#include "rt_claim.h"
#include "rt_key.h"
#include "rt_refresh.h"

/* How a registered client authenticates: as its RunaiTokenClient line
 * says, or, when it says neither, confidential when the application
 * providers know its id (they hold its secret). */
typedef enum {
    RT_CLIENT_PROBE,
    RT_CLIENT_PUBLIC,
    RT_CLIENT_CONFIDENTIAL
} rt_client_kind;

typedef struct rt_client {
    const char *id;
    apr_array_header_t *uris; /* const char *: registered redirect URIs */
    rt_client_kind kind;
    int pkce;   /* codes only with a PKCE challenge */
    int device; /* may use the device authorization grant */
} rt_client;

typedef struct rt_server_conf {
    const char *issuer;          /* NULL until post_config fills the default */
    apr_array_header_t *keys;    /* rt_key *; first signs; NULL when unset */
    apr_int64_t code_lifetime;   /* -1: unset */
    apr_int64_t device_lifetime; /* RunaiTokenDeviceCodeLifetime; -1: unset */
    apr_hash_t *clients;         /* id -> rt_client; NULL: none */
    int require_pkce;            /* RunaiTokenRequirePKCE; -1: unset (off) */
    const char *grants_at;       /* where a provider or client is configured */
    /* Derived from the merged record by post_config (NULL before): */
    const char *issuer_path; /* path of the issuer URL, "" for none */
    const char *jwks;        /* JWKS document */
    const char *discovery;   /* OIDC discovery document */
} rt_server_conf;

typedef struct rt_provider {
    const char *name;
    const authn_provider *provider;
} rt_provider;

/* A RunaiTokenRefreshRequire line: an authz provider (mod_authz_*) and
 * its Require line, parsed once. */
typedef struct rt_refresh_require {
    const char *name;
    const char *line;
    const void *parsed;
    const authz_provider *provider;
} rt_refresh_require;

typedef struct rt_claim {
    const char *name;
    ap_expr_info_t *expr;
    rt_claim_type type;
} rt_claim;

typedef struct rt_dir_conf {
    apr_array_header_t *audience;           /* const char *; NULL: unset */
    apr_array_header_t *id_audience;        /* const char *; NULL: none */
    apr_int64_t access_lifetime;            /* -1: unset */
    apr_array_header_t *app_providers;      /* rt_provider; NULL: unset */
    apr_array_header_t *password_providers; /* rt_provider; NULL: unset */
    apr_array_header_t *claims;             /* rt_claim; NULL: none */
    apr_array_header_t *app_claims;         /* rt_claim; NULL: none */
    apr_int64_t max_body;                   /* -1: unset */
    apr_int64_t refresh_lifetime;           /* -1: unset */
    const char *external_token_var;         /* NULL: unset */
    int throttle_attempts;                  /* -1: unset, 0: off */
    int throttle_seconds;
    apr_int64_t refresh_retry;           /* -1: unset */
    apr_int64_t refresh_idle;            /* -1: unset, 0: off */
    apr_int64_t session_check;           /* -1: unset, 0: off */
    apr_array_header_t *refresh_require; /* rt_refresh_require; NULL: none */
    int refresh_rate;                    /* -1: unset, 0: off */
    int refresh_rate_seconds;
    apr_int64_t leeway;      /* -1: unset */
    const char *user_claim;  /* NULL: unset */
    apr_int64_t app_cache;   /* -1: unset, 0: off */
    ap_expr_info_t *subject; /* RunaiTokenSubject; NULL: the user name */
    /* Which sections this record is made of: the number each section's
     * record got when created, joined in merge order ("1.7.12"). Scopes
     * the app-secret cache (rt_authn.c says why). */
    const char *identity;
} rt_dir_conf;

#define RT_DEFAULT_AUDIENCE "runai"
#define RT_DEFAULT_ACCESS_LIFETIME 3600
#define RT_DEFAULT_MAX_BODY 16384
#define RT_DEFAULT_REFRESH_LIFETIME 86400
#define RT_DEFAULT_CODE_LIFETIME 60
#define RT_DEFAULT_DEVICE_LIFETIME 600
#define RT_DEFAULT_THROTTLE_ATTEMPTS 10
#define RT_DEFAULT_THROTTLE_SECONDS 60
#define RT_DEFAULT_REFRESH_RETRY 30
#define RT_DEFAULT_REFRESH_RATE 60
#define RT_DEFAULT_REFRESH_RATE_SECONDS 60
#define RT_DEFAULT_LEEWAY 30
#define RT_DEFAULT_SESSION_CHECK 5
#define RT_DEFAULT_APP_CACHE 10
#define RT_DEFAULT_USER_CLAIM "sub"

extern module AP_MODULE_DECLARE_DATA runai_token_module;

void *rt_config_create_server(apr_pool_t *p, server_rec *s);
void *rt_config_merge_server(apr_pool_t *p, void *base, void *add);
void *rt_config_create_dir(apr_pool_t *p, char *dir);
void *rt_config_merge_dir(apr_pool_t *p, void *base, void *add);

const char *rt_config_set_issuer(cmd_parms *cmd, void *dc, const char *url);
const char *rt_config_set_signing_key(cmd_parms *cmd, void *dc,
                                      const char *file, const char *kid);
const char *rt_config_set_audience(cmd_parms *cmd, void *dc, const char *aud);
const char *rt_config_set_access_lifetime(cmd_parms *cmd, void *dc,
                                          const char *v);
const char *rt_config_set_provider(cmd_parms *cmd, void *dc, const char *name);
const char *rt_config_set_claim(cmd_parms *cmd, void *dc, const char *name,
                                const char *expr, const char *type);
const char *rt_config_set_max_body(cmd_parms *cmd, void *dc, const char *v);
const char *rt_config_set_refresh_lifetime(cmd_parms *cmd, void *dc,
                                           const char *v);
const char *rt_config_set_refresh_idle(cmd_parms *cmd, void *dc, const char *v);
const char *rt_config_set_refresh_retry(cmd_parms *cmd, void *dc,
                                        const char *v);
const char *rt_config_set_refresh_rate(cmd_parms *cmd, void *dc,
                                       const char *count, const char *seconds);
const char *rt_config_set_code_lifetime(cmd_parms *cmd, void *dc,
                                        const char *v);
const char *rt_config_set_device_lifetime(cmd_parms *cmd, void *dc,
                                          const char *v);
const char *rt_config_set_client(cmd_parms *cmd, void *dc, int argc,
                                 char *const argv[]);
const char *rt_config_set_require_pkce(cmd_parms *cmd, void *dc, int on);
const char *rt_config_set_subject(cmd_parms *cmd, void *dc, const char *expr);
const char *rt_config_set_name(cmd_parms *cmd, void *dc, const char *name);
const char *rt_config_set_app_cache(cmd_parms *cmd, void *dc, const char *v);
const char *rt_config_set_leeway(cmd_parms *cmd, void *dc, const char *v);
const char *rt_config_set_throttle(cmd_parms *cmd, void *dc,
                                   const char *attempts, const char *seconds);

/* check_config: a server that configures grants has a signing key. */
int rt_config_check(server_rec *s);

/* Whether some server or directory configures a provider or a client, and
 * so needs the session store (sessions, codes, throttle counters). */
int rt_config_uses_store(server_rec *s);

/* Fills defaults that depend on the whole configuration (the issuer from
 * ServerName) and logs key warnings; run from post_config. */
int rt_config_finish(apr_pool_t *p, server_rec *s);

/* Effective values of a dir config. */
apr_int64_t rt_config_access_lifetime(const rt_dir_conf *dc);

/* RunaiTokenSessionCheck SECONDS|off: how long the guard trusts its last
 * look at a token's session; 0: it never looks. */
const char *rt_config_set_session_check(cmd_parms *cmd, void *dc,
                                        const char *v);
apr_int64_t rt_config_session_check(const rt_dir_conf *dc);

/* RunaiTokenRefreshRequire PROVIDER [ARGS]: a refresh needs the user to
 * pass this Require line, as Apache would check it now. */
const char *rt_config_set_refresh_require(cmd_parms *cmd, void *dc,
                                          const char *args);

/* Resets what rt_config_keep_ended derives from, before a configuration
 * is read. */
void rt_config_pre_config(void);

/* Until when (epoch seconds) an ended session must be remembered so that
 * no token minted from it can outlive the memory: its access tokens' life
 * and leeway, the longest this configuration sets; all_sessions: also a
 * session's longest life, for a logout of all the sessions of a user. */
apr_int64_t rt_config_keep_ended(int all_sessions);
apr_int64_t rt_config_max_body(const rt_dir_conf *dc);
apr_int64_t rt_config_refresh_lifetime(const rt_dir_conf *dc);
apr_int64_t rt_config_code_lifetime(const rt_server_conf *sc);
apr_int64_t rt_config_device_lifetime(const rt_server_conf *sc);
apr_int64_t rt_config_leeway(const rt_dir_conf *dc);
/* The claim that becomes REMOTE_USER in the bearer guard. */
const char *rt_config_user_claim(const rt_dir_conf *dc);
/* Seconds a verified app secret is remembered; 0: off. */
apr_int64_t rt_config_app_cache(const rt_dir_conf *dc);
/* RunaiTokenAudience as a list (default "runai"), allocated in p. */
const apr_array_header_t *rt_config_audience(const rt_dir_conf *dc,
                                             apr_pool_t *p);
/* Throttle limit for one principal (0: off) and its window in seconds. */
int rt_config_throttle(const rt_dir_conf *dc, int *seconds);
/* RunaiTokenRefreshRetry and RunaiTokenRefreshRate as rotation rules. */
void rt_config_refresh_rules(const rt_dir_conf *dc, rt_refresh_rules *rules);
/* RunaiTokenRequirePKCE: every code needs a challenge. */
int rt_config_require_pkce(const rt_server_conf *sc);
/* A registered client, NULL when unknown. */
const rt_client *rt_config_client(const rt_server_conf *sc, const char *id);

#endif
