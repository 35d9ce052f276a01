#include "rt_monitor.h"
#include "rt_config.h"
#include "rt_http.h"
#include "rt_socache.h"
#include "rt_store.h"

#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"
#include <apr_hash.h>
#include <apr_optional_hooks.h>
#include <apr_shm.h>
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define METRICS_HANDLER "runai-token-metrics"
#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The block outlives its generation, as the default store does (see
 * keep_store in rt_store.c): made in the process pool, found again there
 * by the next generation (the module is unloaded in between), and kept
 * when the routes and the virtual hosts are the same. Otherwise a new
 * block takes the counts of the hosts of the same name, and the old one
 * is unmapped in the parent (the old generation's children keep their
 * mapping; what they count after that moment is lost). */
#define KEPT_COUNTERS "runai-token-kept-counters"

typedef struct {
    apr_shm_t *shm;
    rt_counters *c;
} kept_counters;

/* This generation's: the block, each server's host index, route names. */
static struct {
    rt_counters *c;
    apr_hash_t *index; /* server_rec * -> int */
    const char *const *routes;
} m;

/* server_hostname:port, made unique with #N. */
static const char *host_name(apr_pool_t *p, server_rec *s,
                             const apr_array_header_t *names)
{
    apr_port_t port = s->port ? s->port : s->addrs ? s->addrs->host_port : 0;
    const char *base = apr_psprintf(
        p, "%s:%u", s->server_hostname ? s->server_hostname : "-", port);
    const char *name = base;

    for (int n = 2, i = 0; i < names->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(names, i, const char *), name) == 0) {
            name = apr_psprintf(p, "%s#%d", base, n++);
            i = -1;
        }
    }
    return name;
}

static void unmap(kept_counters *k)
{
    if (k != NULL && k->shm != NULL) {
        apr_shm_destroy(k->shm);
        k->shm = NULL;
        k->c = NULL;
    }
}

int rt_monitor_post_config(apr_pool_t *pconf, server_rec *s,
                           const char *const *routes, int nroutes)
{
    apr_pool_t *pg = s->process->pool;
    apr_array_header_t *names = apr_array_make(pconf, 8, sizeof(char *));
    kept_counters *k = NULL;
    apr_shm_t *shm;
    rt_counters *c;
    apr_status_t rv;
    int carried = 0;

    m.c = NULL;
    m.index = apr_hash_make(pconf);
    m.routes = routes;
    /* A host counts where the module can answer or guard: it has keys. */
    for (server_rec *sv = s; sv != NULL; sv = sv->next) {
        const rt_server_conf *sc =
            ap_get_module_config(sv->module_config, &runai_token_module);
        int *i = apr_palloc(pconf, sizeof(*i));
        const char *name;

        if (sc->keys == NULL || sc->keys->nelts == 0) {
            continue;
        }
        name = host_name(pconf, sv, names);
        *i = names->nelts;
        APR_ARRAY_PUSH(names, const char *) = name;
        apr_hash_set(m.index, apr_pmemdup(pconf, &sv, sizeof(sv)), sizeof(sv),
                     i);
    }
    apr_pool_userdata_get((void **)&k, KEPT_COUNTERS, pg);
    if (names->nelts == 0) {
        unmap(k); /* loaded, unused: no shared memory */
        return OK;
    }
    if (k != NULL && k->c != NULL &&
        rt_counters_same(k->c, names->nelts, nroutes,
                         (const char *const *)names->elts)) {
        m.c = k->c;
        return OK;
    }
    rv =
        apr_shm_create(&shm, rt_counters_size(names->nelts, nroutes), NULL, pg);
    if (rv != APR_SUCCESS) {
        /* Counting is not worth refusing to start for. */
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "cannot create the shared memory of the counters: "
                     "nothing is counted");
        return OK;
    }
    c = rt_counters_init(apr_shm_baseaddr_get(shm), names->nelts, nroutes);
    for (int i = 0; i < names->nelts; i++) {
        rt_counters_set_name(c, i, APR_ARRAY_IDX(names, i, const char *));
    }
    if (k == NULL) {
        k = apr_pcalloc(pg, sizeof(*k));
        apr_pool_userdata_set(k, KEPT_COUNTERS, apr_pool_cleanup_null, pg);
    } else if (k->c != NULL) {
        carried = rt_counters_carry(c, k->c);
    }
    unmap(k);
    k->shm = shm;
    k->c = m.c = c;
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "counters: %d virtual hosts, %" APR_SIZE_T_FMT
                 " bytes of shared memory, %d carried from the last "
                 "generation",
                 names->nelts, rt_counters_size(names->nelts, nroutes),
                 carried);
    return OK;
}

static int host_of(request_rec *r)
{
    const int *i =
        m.c ? apr_hash_get(m.index, &r->server, sizeof(r->server)) : NULL;

    return i ? *i : -1;
}

void rt_monitor_answer(request_rec *r, int route, const char *grant,
                       const char *outcome)
{
    rt_counters_answer(m.c, host_of(r), route, grant, outcome);
}

void rt_monitor_event(request_rec *r, rt_counters_event e)
{
    rt_counters_count(m.c, host_of(r), e);
}

void rt_monitor_store(request_rec *r, apr_time_t started, int failed)
{
    rt_counters_store(m.c, host_of(r), apr_time_now() - started, failed);
}

void rt_monitor_guard(request_rec *r, const char *refusal)
{
    if (ap_is_initial_req(r)) {
        rt_counters_guard(m.c, host_of(r), refusal);
    }
}

static void emit(void *baton, const char *text, apr_size_t len)
{
    ap_rwrite(text, (int)len, baton);
}

/* Every host's counters, and the default store's fill. */
static void render(request_rec *r, rt_counters_format f)
{
    const char *provider = rt_store_provider();
    rt_counters_fill fill = {0};

    if (provider != NULL && strcmp(provider, RT_SOCACHE_NAME) == 0) {
        rt_socache_fill(r->server, &fill);
    }
    rt_counters_render(m.c, m.routes, &fill, f, emit, r);
}

static int status_hook(request_rec *r, int flags)
{
    if (m.c != NULL) {
        render(r,
               flags & AP_STATUS_SHORT ? RT_COUNTERS_AUTO : RT_COUNTERS_HTML);
    }
    return OK;
}

static int metrics_handler(request_rec *r)
{
    int rc = rt_http_get_only(r, METRICS_HANDLER);

    if (rc != OK) {
        return rc;
    }
    ap_set_content_type(r, PROMETHEUS_TYPE);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (!r->header_only) {
        render(r, RT_COUNTERS_PROMETHEUS);
    }
    return OK;
}

void rt_monitor_register(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* Optional: nothing happens without mod_status. */
    APR_OPTIONAL_HOOK(ap, status_hook, status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
