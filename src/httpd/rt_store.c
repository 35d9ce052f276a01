#include "rt_store.h"
#include "rt_config.h"

#include "http_log.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "util_mutex.h"
#include <apr_strings.h>
#include <apr_global_mutex.h>
#include <apr_general.h>

APLOG_USE_MODULE(runai_token);

#define MUTEX_TYPE "runai-token"
/* After a store restart, memcache and redis clients fail once for each
 * pooled connection that went stale; a few tries get past them. */
#define STORE_ATTEMPTS 4
#define DEFAULT_PROVIDER "shmcb"
#define DEFAULT_SHMCB_ARGS "runai-token-cache(16777216)"
#define LOCAL_SHMCB_ARGS "runai-token-local(2097152)"

/* One store for the whole server, as mod_authn_socache keeps its cache. */
static const ap_socache_provider_t *provider;
static ap_socache_instance_t *instance;
static const char *provider_name;
static apr_global_mutex_t *mutex;
static int is_dbm;
/* Other hosts may share it; this host's id for this generation. */
static int shared;
static const char *host_id = "";
/* Beside a shared store, a shmcb of this host's own for the records only
 * this host uses (rt_store_step.local); NULL without mod_socache_shmcb,
 * and those records then go to the store under keys naming this host. */
static const ap_socache_provider_t *local_provider;
static ap_socache_instance_t *local_instance;
/* No store at all: nothing in the configuration creates sessions, codes
 * or throttle counters, so reads find nothing and nothing is written. */
static int unused;

const char *rt_store_set_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *sep = ap_strchr_c(arg, ':');
    const char *name = sep ? apr_pstrmemdup(cmd->pool, arg, sep - arg) : arg;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                  AP_SOCACHE_PROVIDER_VERSION);
    if (provider == NULL) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a known socache provider (is "
                            "mod_socache_%s loaded?)",
                            cmd->cmd->name, arg, name);
    }
    err = provider->create(&instance, sep ? sep + 1 : NULL, cmd->temp_pool,
                           cmd->pool);
    if (err != NULL) {
        provider = NULL;
        return apr_psprintf(cmd->pool, "%s: '%s': %s", cmd->cmd->name, arg,
                            err);
    }
    provider_name = name;
    is_dbm = strcmp(name, "dbm") == 0;
    return NULL;
}

int rt_store_pre_config(apr_pool_t *pconf)
{
    /* Settings of an earlier generation are gone with its pool. */
    provider = NULL;
    instance = NULL;
    mutex = NULL;
    is_dbm = 0;
    unused = 0;
    shared = 0;
    host_id = "";
    local_provider = NULL;
    local_instance = NULL;
    /* A lock file by default (as Debian's "Mutex file:... default"): a
     * graceful restart destroys the old generation's mutex while its
     * children still serve requests, and only a file lock they hold open
     * keeps working for them; a semaphore or pthread mutex answers EINVAL. */
    return ap_mutex_register(pconf, MUTEX_TYPE, NULL, APR_LOCK_FCNTL, 0) ==
                   APR_SUCCESS
               ? OK
               : HTTP_INTERNAL_SERVER_ERROR;
}

static apr_status_t store_cleanup(void *data)
{
    if (provider != NULL && instance != NULL) {
        provider->destroy(instance, data);
    }
    instance = NULL;
    return APR_SUCCESS;
}

static apr_status_t local_cleanup(void *data)
{
    if (local_provider != NULL && local_instance != NULL) {
        local_provider->destroy(local_instance, data);
    }
    local_instance = NULL;
    return APR_SUCCESS;
}

/* The host-local shmcb beside a shared store; without mod_socache_shmcb
 * there is none (not an error). */
static int make_local(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    struct ap_socache_hints hints = {64, 256, 86400 * APR_USEC_PER_SEC};
    const char *err;
    apr_status_t rv;

    local_provider =
        ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, DEFAULT_PROVIDER,
                           AP_SOCACHE_PROVIDER_VERSION);
    if (local_provider == NULL) {
        return OK;
    }
    err =
        local_provider->create(&local_instance, LOCAL_SHMCB_ARGS, ptemp, pconf);
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "RunaiTokenCache: the host-local shmcb: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = local_provider->init(local_instance, "runai-token-local", &hints, s,
                              pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot initialise the host-local "
                     "shmcb");
        local_instance = NULL;
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, s, local_cleanup, apr_pool_cleanup_null);
    return OK;
}

/* Beside a shared store without a shmcb of this host, the records of this
 * host's own carry the host id in their keys: a new generation starts with
 * none. */
static int make_host_id(apr_pool_t *pconf, server_rec *s)
{
    unsigned char raw[8];
    char *hex = apr_palloc(pconf, 2 * sizeof(raw) + 1);
    apr_status_t rv = apr_generate_random_bytes(raw, sizeof(raw));

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot make a host id");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    host_id = hex;
    return OK;
}

int rt_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    struct ap_socache_hints hints = {64, 2048, 86400 * APR_USEC_PER_SEC};
    apr_status_t rv;

    /* Loading the module changes nothing until it is used: no shared
     * memory, no mutex unless RunaiTokenCache is set or some server or
     * directory configures a provider or a client. */
    if (provider == NULL && !rt_config_uses_store(s)) {
        unused = 1;
        return OK;
    }
    if (provider == NULL) {
        const char *err;

        provider =
            ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, DEFAULT_PROVIDER,
                               AP_SOCACHE_PROVIDER_VERSION);
        if (provider == NULL) {
            /* A server that loads the module without using sessions must
             * still start; the grants that need a store answer 503. */
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "RunaiTokenCache is not set and mod_socache_shmcb "
                         "is not loaded: there is no session store, so the "
                         "password, refresh_token, exchange_token and "
                         "authorize endpoints answer 503");
            return OK;
        }
        err = provider->create(&instance, DEFAULT_SHMCB_ARGS, ptemp, pconf);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "RunaiTokenCache: default shmcb: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        provider_name = DEFAULT_PROVIDER;
    }
    rv = ap_global_mutex_create(&mutex, NULL, MUTEX_TYPE, NULL, s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot create the %s mutex", MUTEX_TYPE);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = provider->init(instance, "runai-token", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot initialise the %s store",
                     provider_name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, s, store_cleanup, apr_pool_cleanup_null);
    /* shmcb and dbm live on this host; redis and memcache may be shared. */
    shared = strcmp(provider_name, "shmcb") != 0 && !is_dbm;
    if (!shared) {
        return OK;
    }
    return make_host_id(pconf, s) == OK ? make_local(pconf, ptemp, s)
                                        : HTTP_INTERNAL_SERVER_ERROR;
}

void rt_store_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    if (mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&mutex, apr_global_mutex_lockfile(mutex),
                                     p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "cannot attach the %s mutex in a child", MUTEX_TYPE);
    }
}

int rt_store_shared(void)
{
    return shared;
}

/* The cache of a step: the host-local shmcb for a local one where there
 * is one. */
#define PROVIDER(local) ((local) && local_instance ? local_provider : provider)
#define INSTANCE(local) ((local) && local_instance ? local_instance : instance)
#define IS_DBM(local) (is_dbm && !((local) && local_instance))

static int needs_lock(void)
{
    return provider != NULL && (provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE);
}

static int lock(request_rec *r)
{
    apr_status_t rv = apr_global_mutex_lock(mutex);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "cannot lock the %s mutex",
                      MUTEX_TYPE);
        return 0;
    }
    return 1;
}

static void unlock(request_rec *r)
{
    apr_status_t rv = apr_global_mutex_unlock(mutex);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "cannot unlock the %s mutex", MUTEX_TYPE);
    }
}

static void down(request_rec *r, apr_status_t rv, const char *op)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                  "session store (%s) failed to %s", provider_name, op);
}

/* A record's bytes, made before the mutex is taken: JSON work never runs
 * under it. */
static rt_store_status encode(request_rec *r, apr_int64_t exp,
                              const json_t *data, const char **val,
                              apr_size_t *len)
{
    *val = rt_record_encode(r->pool, exp, data, len);
    if (*val == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "session record too large to store");
        return RT_STORE_DOWN;
    }
    return RT_STORE_OK;
}

static rt_store_status raw_put(request_rec *r, int local,
                               const unsigned char *key, apr_int64_t exp,
                               const char *val, apr_size_t len)
{
    apr_status_t rv;

    for (int attempt = 0; attempt < STORE_ATTEMPTS; attempt++) {
        rv = PROVIDER(local)->store(INSTANCE(local), r->server, key,
                                    RT_REC_KEY_LEN, apr_time_from_sec(exp),
                                    (unsigned char *)val, (unsigned int)len,
                                    r->pool);
        if (rv == APR_SUCCESS || rv == APR_ENOSPC) {
            break;
        }
    }
    if (rv != APR_SUCCESS) {
        if (rv == APR_ENOSPC && IS_DBM(local)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "session record of %u bytes is too large for the "
                          "dbm store (about 950 bytes at most): use shmcb, "
                          "redis or memcache",
                          (unsigned int)len);
            return RT_STORE_DOWN;
        }
        down(r, rv, "store");
        return RT_STORE_DOWN;
    }
    return RT_STORE_OK;
}

/* Memcache and redis clients answer "not found" when no server is up, so
 * a miss is confirmed by a write before it is believed. */
static rt_store_status confirm_miss(request_rec *r)
{
    unsigned char key[RT_REC_KEY_LEN];
    json_t *empty = json_object();
    const char *val;
    apr_size_t len;
    rt_store_status st;

    if (!rt_record_key(key, RT_REC_PING, "ping", 4)) {
        json_decref(empty);
        return RT_STORE_DOWN;
    }
    st = encode(r, apr_time_sec(r->request_time) + 60, empty, &val, &len);
    json_decref(empty);
    if (st == RT_STORE_OK) {
        st = raw_put(r, 0, key, apr_time_sec(r->request_time) + 60, val, len);
    }
    return st == RT_STORE_OK ? RT_STORE_NOTFOUND : RT_STORE_DOWN;
}

/* A record's bytes as stored, not yet decoded. */
typedef struct {
    unsigned char *buf;
    unsigned int len;
} raw_rec;

static rt_store_status raw_get(request_rec *r, int local,
                               const unsigned char *key, raw_rec *out)
{
    apr_status_t rv = APR_EGENERAL;

    out->buf = apr_palloc(r->pool, RT_REC_MAX);
    for (int attempt = 0; attempt < STORE_ATTEMPTS; attempt++) {
        out->len = RT_REC_MAX;
        rv = PROVIDER(local)->retrieve(INSTANCE(local), r->server, key,
                                       RT_REC_KEY_LEN, out->buf, &out->len,
                                       r->pool);
        if (rv == APR_SUCCESS || rv == APR_NOTFOUND) {
            break;
        }
    }

    /* mod_socache_dbm answers a missing key with APR_EGENERAL. */
    if (rv == APR_NOTFOUND || (rv == APR_EGENERAL && IS_DBM(local))) {
        return RT_STORE_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        down(r, rv, "retrieve");
        return RT_STORE_DOWN;
    }
    return RT_STORE_OK;
}

/* The data of a record read with raw_get (st its status), after the mutex
 * is released: a record that does not decode or has expired is a miss. */
static rt_store_status decode(request_rec *r, rt_store_status st,
                              const raw_rec *in, json_t **data)
{
    if (st != RT_STORE_OK) {
        return st;
    }
    *data = rt_record_decode(r->pool, in->buf, in->len,
                             apr_time_sec(r->request_time));
    return *data ? RT_STORE_OK : RT_STORE_NOTFOUND;
}

static rt_store_status raw_remove(request_rec *r, int local,
                                  const unsigned char *key)
{
    apr_status_t rv = PROVIDER(local)->remove(INSTANCE(local), r->server, key,
                                              RT_REC_KEY_LEN, r->pool);

    if (rv == APR_NOTFOUND) {
        return RT_STORE_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        down(r, rv, "remove");
        return RT_STORE_DOWN;
    }
    return RT_STORE_OK;
}

/* Read-modify-write: the one step that decodes and encodes under the
 * mutex, as the new record depends on the old one. */
static rt_store_status update(request_rec *r, const unsigned char *key,
                              rt_store_step *t)
{
    raw_rec got;
    json_t *old = NULL, *new;
    apr_int64_t exp = 0;
    rt_store_status st = decode(r, raw_get(r, t->local, key, &got), &got, &old);

    if (st == RT_STORE_DOWN) {
        return st;
    }
    new = t->fn(r, st == RT_STORE_OK ? old : NULL, t->baton, &exp);
    st = RT_STORE_OK;
    if (new != NULL) {
        const char *val;
        apr_size_t len;

        st = encode(r, exp, new, &val, &len);
        if (st == RT_STORE_OK) {
            st = raw_put(r, t->local, key, exp, val, len);
        }
    }
    json_decref(new);
    return st;
}

/* One step, with its key made and the mutex held where it is needed. */
static rt_store_status run(request_rec *r, const unsigned char *key,
                           rt_store_step *t, raw_rec *got, const char *val,
                           apr_size_t len)
{
    rt_store_status st;

    switch (t->op) {
    case RT_STORE_GET:
        return raw_get(r, t->local, key, got);
    case RT_STORE_PUT:
        return raw_put(r, t->local, key, t->exp, val, len);
    case RT_STORE_REMOVE:
        return raw_remove(r, t->local, key);
    case RT_STORE_UPDATE:
        return update(r, key, t);
    case RT_STORE_TAKE:
        /* Under the mutex, get+remove is one step on this host; across
         * hosts only the request whose remove succeeds holds the record. */
        st = raw_get(r, t->local, key, got);
        if (st == RT_STORE_OK) {
            st = raw_remove(r, t->local, key);
        }
        return st == RT_STORE_NOTFOUND ? confirm_miss(r) : st;
    }
    return RT_STORE_DOWN;
}

void rt_store_steps(request_rec *r, rt_store_step *steps, int n)
{
    unsigned char(*keys)[RT_REC_KEY_LEN] =
        apr_palloc(r->pool, (apr_size_t)n * RT_REC_KEY_LEN);
    raw_rec *got = apr_pcalloc(r->pool, (apr_size_t)n * sizeof(*got));
    const char **val = apr_pcalloc(r->pool, (apr_size_t)n * sizeof(*val));
    apr_size_t *len = apr_pcalloc(r->pool, (apr_size_t)n * sizeof(*len));
    int locked = needs_lock(), ready = instance != NULL, i;

    /* Keys and encoding before the mutex, decoding after it. Takes and
     * updates always hold it: read and write must be one step. */
    for (i = 0; i < n; i++) {
        rt_store_step *t = &steps[i];
        /* A record of this host's own kept in a shared store: its key
         * names this host. */
        const char *m =
            t->local && shared && local_instance == NULL
                ? apr_pstrcat(r->pool, "host ", host_id, " ", t->material, NULL)
                : t->material;

        t->st = RT_STORE_DOWN;
        t->got = NULL;
        locked = locked || t->local || t->op == RT_STORE_TAKE ||
                 t->op == RT_STORE_UPDATE;
        ready = ready && rt_record_key(keys[i], t->kind, m, strlen(m)) &&
                (t->op != RT_STORE_PUT ||
                 encode(r, t->exp, t->put, &val[i], &len[i]) == RT_STORE_OK);
    }
    if (unused) {
        for (i = 0; i < n; i++) {
            steps[i].st =
                steps[i].op == RT_STORE_PUT || steps[i].op == RT_STORE_UPDATE
                    ? RT_STORE_DOWN
                    : RT_STORE_NOTFOUND;
        }
        return;
    }
    if (!ready || (locked && !lock(r))) {
        return;
    }
    for (i = 0; i < n; i++) {
        rt_store_step *t = &steps[i];

        t->st = run(r, keys[i], t, &got[i], val[i], len[i]);
        if (t->st == RT_STORE_DOWN ||
            (t->stop_if_found && t->st == RT_STORE_OK)) {
            break;
        }
    }
    if (locked) {
        unlock(r);
    }
    for (int j = 0; j < n && j <= i; j++) {
        if (steps[j].op == RT_STORE_GET || steps[j].op == RT_STORE_TAKE) {
            steps[j].st = decode(r, steps[j].st, &got[j], &steps[j].got);
        }
    }
}

static rt_store_status one(request_rec *r, rt_store_step *t)
{
    rt_store_steps(r, t, 1);
    return t->st;
}

rt_store_status rt_store_put(request_rec *r, rt_rec_kind kind,
                             const char *material, apr_int64_t exp,
                             const json_t *data)
{
    rt_store_step t = {.op = RT_STORE_PUT,
                       .kind = kind,
                       .material = material,
                       .put = data,
                       .exp = exp};

    if (data == NULL) {
        return RT_STORE_DOWN; /* nothing to write (out of memory) */
    }
    return one(r, &t);
}

rt_store_status rt_store_get(request_rec *r, rt_rec_kind kind,
                             const char *material, json_t **data)
{
    rt_store_step t = {.op = RT_STORE_GET, .kind = kind, .material = material};
    rt_store_status st = one(r, &t);

    *data = t.got;
    return st;
}

rt_store_status rt_store_take(request_rec *r, rt_rec_kind kind,
                              const char *material, json_t **data)
{
    rt_store_step t = {.op = RT_STORE_TAKE, .kind = kind, .material = material};
    rt_store_status st = one(r, &t);

    *data = t.got;
    return st;
}

rt_store_status rt_store_remove(request_rec *r, rt_rec_kind kind,
                                const char *material)
{
    rt_store_step t = {
        .op = RT_STORE_REMOVE, .kind = kind, .material = material};

    return one(r, &t);
}

rt_store_status rt_store_update(request_rec *r, rt_rec_kind kind,
                                const char *material, rt_store_update_fn fn,
                                void *baton)
{
    rt_store_step t = {.op = RT_STORE_UPDATE,
                       .kind = kind,
                       .material = material,
                       .fn = fn,
                       .baton = baton};

    return one(r, &t);
}
