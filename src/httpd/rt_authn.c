#include "rt_authn.h"

#include "http_log.h"
#include "rt_credcache.h"
#include <apr_strings.h>

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

#define CACHE_SLOTS 4096

static rt_credcache *cache;

void rt_authn_child_init(apr_pool_t *p, server_rec *s)
{
    cache = rt_credcache_create(p, CACHE_SLOTS);
    if (cache == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "verified-credential cache unavailable: every app_token "
                     "request checks its secret");
    }
}

authn_status rt_authn_check_app(request_rec *r, const rt_dir_conf *dc,
                                const char *id, const char *secret)
{
    apr_int64_t ttl = rt_config_app_cache(dc);
    apr_int64_t now = apr_time_sec(r->request_time);
    /* The provider list of this location scopes the entry. */
    const char *scope = apr_psprintf(r->pool, "%pp", (void *)dc->app_providers);
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
