#include "rt_authn.h"

#include "http_core.h"
#include "http_log.h"
#include "rt_credcache.h"
#include "rt_util.h"
#include <apr_strings.h>
#include <string.h>

APLOG_USE_MODULE(runai_token);

authn_status rt_authn_check(request_rec *r, const apr_array_header_t *providers,
                            const char *user, const char *password)
{
    authn_status st = AUTH_USER_NOT_FOUND;

    /* Providers and claim expressions see the principal as REMOTE_USER. */
    r->user = (char *)user;
    for (int i = 0; i < providers->nelts; i++) {
        const rt_provider *pr = &APR_ARRAY_IDX(providers, i, rt_provider);

        apr_table_setn(r->notes, AUTHN_PROVIDER_NAME_NOTE, pr->name);
        st = pr->provider->check_password(r, user, password);
        apr_table_unset(r->notes, AUTHN_PROVIDER_NAME_NOTE);
        if (st != AUTH_USER_NOT_FOUND) {
            break;
        }
    }
    switch (st) {
    case AUTH_GRANTED:
        return AUTH_GRANTED;
    case AUTH_DENIED:
    case AUTH_USER_NOT_FOUND:
        return AUTH_DENIED;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "authn provider failed (status %d) while checking "
                      "credentials",
                      (int)st);
        return AUTH_GENERAL_ERROR;
    }
}

/* The scope of a cached app secret.
 *
 * A provider reads the per-directory settings of its own module
 * (AuthUserFile, AuthLDAPURL, AuthDBDUserPWQuery) and the server settings
 * of the virtual host (DBDParams, LDAP connections) from the configuration
 * merged for the request, which a <Location> or virtual host can change
 * without repeating RunaiTokenAppProvider. So an entry is scoped by which
 * sections were merged for the request, not by the provider list: each
 * record of this module has a number from its creation and a merged record
 * joins the numbers of both sides (rt_config.c), so the merged record of a
 * request names the chain of sections, the virtual host's defaults first,
 * whose settings every module sees. Two requests with the same chain see
 * the same provider configuration; any other request has its own entries.
 *
 * That holds only if every section has a record of this module: httpd
 * creates a module's record only for the sections where one of its
 * directives appears, and merges nothing for the others, so a <Location>
 * with only AuthUserFile would pass on its parent's record, and a virtual
 * host with none of these directives the main server's. name_sections()
 * below gives the others an empty record (every field unset, so merging it
 * changes nothing but the identity) in each child before it serves
 * requests: every <Directory>, <Location>, <Files> and <If> section, with
 * those nested in them, and for each virtual host its defaults. An
 * .htaccess file is read anew by every request and never has a record of
 * this module (none of its directives is allowed there), so the
 * directories of the .htaccess files a request read are added to its
 * scope: the same sections read with other .htaccess files are another
 * scope. An edit of an .htaccess file, like an edit of the user file,
 * takes effect within the TTL. <Proxy> sections are not named: a request
 * served there goes to the proxy, not to this module's handler. */
static void name_sections(apr_pool_t *p, const apr_array_header_t *sections);

static void name_section(apr_pool_t *p, ap_conf_vector_t *section)
{
    core_dir_config *core = ap_get_core_module_config(section);

    if (ap_get_module_config(section, &runai_token_module) == NULL) {
        ap_set_module_config(section, &runai_token_module,
                             rt_config_create_dir(p, NULL));
    }
    if (core != NULL) {
        name_sections(p, core->sec_file);
        name_sections(p, core->sec_if);
    }
}

static void name_sections(apr_pool_t *p, const apr_array_header_t *sections)
{
    for (int i = 0; sections != NULL && i < sections->nelts; i++) {
        name_section(p, APR_ARRAY_IDX(sections, i, ap_conf_vector_t *));
    }
}

static void name_all_sections(apr_pool_t *p, server_rec *main_server)
{
    void *main_dc =
        ap_get_module_config(main_server->lookup_defaults, &runai_token_module);

    for (server_rec *s = main_server; s != NULL; s = s->next) {
        core_server_config *core = ap_get_core_module_config(s->module_config);

        /* A virtual host that set nothing of this module shares the main
         * server's record: give it one of its own, merged as httpd merges
         * virtual hosts. */
        if (s != main_server && main_dc != NULL &&
            ap_get_module_config(s->lookup_defaults, &runai_token_module) ==
                main_dc) {
            ap_set_module_config(
                s->lookup_defaults, &runai_token_module,
                rt_config_merge_dir(p, main_dc, rt_config_create_dir(p, NULL)));
        }
        name_section(p, s->lookup_defaults); /* its <Files> and <If> */
        name_sections(p, core->sec_dir);
        name_sections(p, core->sec_url);
    }
}

/* The cache scope of r: the identity of its merged record, then the
 * directory of each .htaccess file it read, length first. */
static const char *scope_of(request_rec *r, const rt_dir_conf *dc)
{
    const char *scope = dc->identity;

    for (const struct htaccess_result *h = r->htaccess; h != NULL;
         h = h->next) {
        if (h->htaccess != NULL) {
            scope = apr_psprintf(r->pool, "%s %" APR_SIZE_T_FMT ":%s", scope,
                                 strlen(h->dir), h->dir);
        }
    }
    return scope;
}

#define CACHE_SLOTS 4096

static rt_credcache *cache;

int rt_authn_app_known(request_rec *r, const rt_dir_conf *dc, const char *id)
{
    /* A password nobody has: providers answer "not found" for an unknown
     * id, and "denied" (after comparing it) for a known one. The answer is
     * remembered as a verified secret is (same scope and TTL); the empty
     * secret of its entry is one no application can have. */
    const char *probe;
    const char *scope = scope_of(r, dc);
    const char *key = apr_pstrcat(r->pool, "known:", id, NULL);
    apr_int64_t ttl = rt_config_app_cache(dc);
    apr_int64_t now = apr_time_sec(r->request_time);
    const char *seen =
        ttl > 0 ? rt_credcache_get(cache, r->pool, scope, key, now) : NULL;
    char *user = r->user;
    authn_status st = AUTH_USER_NOT_FOUND;

    if (seen != NULL) {
        return *seen == '1';
    }
    probe = rt_random_id(r->pool, 24);
    if (probe == NULL) {
        return 1; /* cannot tell: treat it as having a secret */
    }
    for (int i = 0; i < dc->app_providers->nelts && st == AUTH_USER_NOT_FOUND;
         i++) {
        const rt_provider *pr =
            &APR_ARRAY_IDX(dc->app_providers, i, rt_provider);

        r->user = (char *)id;
        apr_table_setn(r->notes, AUTHN_PROVIDER_NAME_NOTE, pr->name);
        st = pr->provider->check_password(r, id, probe);
        apr_table_unset(r->notes, AUTHN_PROVIDER_NAME_NOTE);
    }
    r->user = user;
    if (ttl > 0 && st != AUTH_GENERAL_ERROR) {
        rt_credcache_put_value(cache, scope, key, now, now + ttl,
                               st != AUTH_USER_NOT_FOUND ? "1" : "0");
    }
    return st != AUTH_USER_NOT_FOUND;
}

void rt_authn_child_init(apr_pool_t *p, server_rec *s)
{
    /* Only where some section uses the module: a server that loads it
     * and configures nothing keeps its configuration as it was. */
    if (rt_config_uses_store(s)) {
        name_all_sections(p, s);
    }
    cache = rt_credcache_create(p, CACHE_SLOTS);
    if (cache == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "verified-credential cache unavailable: every app_token "
                     "request checks its secret");
    }
}

int rt_authn_app_verified(request_rec *r, const rt_dir_conf *dc, const char *id,
                          const char *secret)
{
    apr_int64_t ttl = rt_config_app_cache(dc);

    return ttl > 0 && rt_credcache_peek(cache, scope_of(r, dc), id, secret,
                                        apr_time_sec(r->request_time), ttl);
}

authn_status rt_authn_check_app(request_rec *r, const rt_dir_conf *dc,
                                const char *id, const char *secret)
{
    apr_int64_t ttl = rt_config_app_cache(dc);
    apr_int64_t now = apr_time_sec(r->request_time);
    /* The sections merged for this request scope the entry (see above),
     * and its own TTL bounds a hit. */
    const char *scope = scope_of(r, dc);
    rt_credcache_result cached =
        ttl > 0 ? rt_credcache_hit(cache, scope, id, secret, now, ttl)
                : RT_CREDCACHE_MISS;
    authn_status st;

    if (cached == RT_CREDCACHE_HIT) {
        r->user = (char *)id;
        return AUTH_GRANTED;
    }
    /* A miss, or this request renews the entry: the provider decides, and
     * the cache learns the answer (requests waiting for it go on). */
    st = rt_authn_check(r, dc->app_providers, id, secret);
    if (ttl > 0) {
        if (st == AUTH_GRANTED) {
            rt_credcache_put(cache, scope, id, secret, now, now + ttl);
        } else if (st == AUTH_DENIED) {
            rt_credcache_forget(cache, scope, id, secret);
        } else {
            rt_credcache_release(cache, scope, id, secret);
        }
    }
    return st;
}

authz_status rt_authn_still_allowed(request_rec *r, const rt_dir_conf *dc,
                                    const char *user, const char **failed)
{
    const apr_array_header_t *lines = dc->refresh_require;
    request_rec *q;
    authz_status st = AUTHZ_GRANTED;

    if (lines == NULL) {
        return st;
    }
    /* As if Apache had just authenticated the user, on a copy of the
     * request: the provider reads its user and the location's own
     * configuration (AuthLDAPURL, AuthGroupFile, AuthzDBDQuery...), and
     * finds no per-request state an earlier check of this request left
     * (mod_authnz_ldap keeps the DN of an LDAP login there: a client's,
     * when its secret was checked through LDAP). */
    q = apr_pmemdup(r->pool, r, sizeof(*r));
    q->request_config = ap_create_request_config(r->pool);
    q->user = apr_pstrdup(r->pool, user);
    for (int i = 0; i < lines->nelts; i++) {
        const rt_refresh_require *rq =
            &APR_ARRAY_IDX(lines, i, rt_refresh_require);

        st = rq->provider->check_authorization(q, rq->line, rq->parsed);
        if (st != AUTHZ_GRANTED) {
            *failed = rq->name;
            break;
        }
    }
    return st;
}
