#include "rt_store.h"
#include "rt_config.h"
#include "rt_crypto.h"
#include "rt_memcache_store.h"
#include "rt_redis_store.h"
#include "rt_monitor.h"
#include "rt_outage.h"
#include "rt_socache.h"
#include "rt_statefile.h"

#include "http_log.h"
#include "http_core.h"
#include "ap_mpm.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "mod_watchdog.h"
#include "unixd.h"
#include "util_mutex.h"
#include <apr_strings.h>
#include <apr_global_mutex.h>
#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_shm.h>
#include <unistd.h>

APLOG_USE_MODULE(runai_token);

#define MUTEX_TYPE "runai-token"
/* After a store restart, memcache and redis clients fail once for each
 * pooled connection that went stale; a few tries get past them. */
#define STORE_ATTEMPTS 4
#define LOCAL_PROVIDER "shmcb"
#define LOCAL_SHMCB_ARGS "runai-token-local(2097152)"

#define STATE_DEFAULT_DIR "runai-token"
#define STATE_FILE "runai-token.state"
#define STATE_TICK apr_time_from_sec(2)
#define STATE_MAX_BYTES (256 * 1024 * 1024)

/* What one generation's configuration made: one store for the whole
 * server, as mod_authn_socache keeps its cache, its mutex and its state
 * file. pre_config resets it all at once: an earlier generation's
 * settings are gone with its pool. */
static struct {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
    const char *provider_name;
    const char *provider_args; /* as configured; NULL: none */
    /* The module's own client instead of a socache provider (redis,
     * memcache); NULL: a socache provider. */
    const rt_native_store *native;
    apr_global_mutex_t *mutex;
    /* A store of this host kept from an earlier generation (keep_store). */
    int kept;
    int is_dbm;
    /* Other hosts may share it; this host's id for this generation. */
    int shared;
    const char *host_id;
    /* Beside a shared store, a shmcb of this host's own for the records
     * only this host uses (rt_store_step.local); NULL without
     * mod_socache_shmcb, and those records then go to the store under keys
     * naming this host. */
    const ap_socache_provider_t *local_provider;
    ap_socache_instance_t *local_instance;
    /* No store at all: nothing in the configuration creates sessions,
     * codes or throttle counters, so reads find nothing and nothing is
     * written. */
    int unused;
    /* The state file of a store of this host (RunaiTokenStateDir): loaded into
     * the new store by the parent in post_config, written by one child every
     * STATE_TICK when the records changed (a singleton watchdog of
     * mod_watchdog) and by the parent when the generation ends (graceful,
     * restart, stop), before the store is destroyed. */
    const char *state_dir_conf; /* NULL: the default; "": off */
    const char *state_path;     /* NULL: no state file */
    const char *state_dir;
    pid_t state_parent;
    int state_child_ready;
    int state_failing;
    unsigned char state_last[RT_SHA256_LEN];
    int state_have_last;
    /* Whether the store is down, for all processes of this host: one
     * line when it goes down, one when it is back (outage_note). */
    rt_outage *outage;
} g;

const char *rt_store_set_cache(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *sep, *name;
    int socache = strncmp(arg, "socache:", 8) == 0;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    /* socache:NAME[:ARGS] always names mod_socache's provider (the way to
     * mod_socache_redis and mod_socache_memcache); redis, redis-sentinel
     * and memcache are the module's own clients. */
    arg = socache ? arg + 8 : arg;
    sep = ap_strchr_c(arg, ':');
    name = sep ? apr_pstrmemdup(cmd->pool, arg, sep - arg) : arg;
    g.native = NULL;
    if (!socache &&
        (rt_redis_store_names(name) || rt_memcache_store_names(name))) {
        int mc = rt_memcache_store_names(name);

        err = mc ? rt_memcache_store_configure(cmd->pool, sep ? sep + 1 : NULL)
                 : rt_redis_store_configure(cmd->pool, name,
                                            sep ? sep + 1 : NULL);
        if (err != NULL) {
            return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
        }
        g.provider = NULL;
        g.instance = NULL;
        g.native = mc ? &rt_memcache_native : &rt_redis_native;
        g.provider_name = name;
        g.provider_args = sep ? apr_pstrdup(cmd->pool, sep + 1) : NULL;
        g.is_dbm = 0;
        return NULL;
    }
    g.provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                    AP_SOCACHE_PROVIDER_VERSION);
    if (g.provider == NULL) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a known socache provider (is "
                            "mod_socache_%s loaded?)",
                            cmd->cmd->name, arg, name);
    }
    err = g.provider->create(&g.instance, sep ? sep + 1 : NULL, cmd->temp_pool,
                             cmd->pool);
    if (err != NULL) {
        g.provider = NULL;
        return apr_psprintf(cmd->pool, "%s: '%s': %s", cmd->cmd->name, arg,
                            err);
    }
    g.provider_name = name;
    g.provider_args = sep ? apr_pstrdup(cmd->pool, sep + 1) : NULL;
    g.is_dbm = strcmp(name, "dbm") == 0;
    return NULL;
}

const char *rt_store_set_state_dir(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_finfo_t fi;

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (strcasecmp(arg, "off") == 0) {
        g.state_dir_conf = "";
        return NULL;
    }
    g.state_dir_conf = *arg ? ap_server_root_relative(cmd->pool, arg) : NULL;
    if (g.state_dir_conf == NULL) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a directory path (or off)",
                            cmd->cmd->name, arg);
    }
    if (apr_stat(&fi, g.state_dir_conf, APR_FINFO_TYPE, cmd->temp_pool) ==
            APR_SUCCESS &&
        fi.filetype != APR_DIR) {
        g.state_dir_conf = NULL;
        return apr_psprintf(cmd->pool, "%s: '%s' exists and is not a directory",
                            cmd->cmd->name, arg);
    }
    return NULL;
}

int rt_store_pre_config(apr_pool_t *pconf)
{
    memset(&g, 0, sizeof(g));
    g.host_id = "";
    rt_redis_store_pre_config();
    rt_memcache_store_pre_config();
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
    if (g.provider != NULL && g.instance != NULL && !g.kept) {
        g.provider->destroy(g.instance, data);
    }
    g.instance = NULL;
    return APR_SUCCESS;
}

static apr_status_t local_cleanup(void *data)
{
    if (g.local_provider != NULL && g.local_instance != NULL) {
        g.local_provider->destroy(g.local_instance, data);
    }
    g.local_instance = NULL;
    return APR_SUCCESS;
}

/* The host-local shmcb beside a shared store; without mod_socache_shmcb
 * there is none (not an error). */
static int make_local(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    struct ap_socache_hints hints = {64, 256, 86400 * APR_USEC_PER_SEC};
    const char *err;
    apr_status_t rv;

    g.local_provider = ap_lookup_provider(
        AP_SOCACHE_PROVIDER_GROUP, LOCAL_PROVIDER, AP_SOCACHE_PROVIDER_VERSION);
    if (g.local_provider == NULL) {
        return OK;
    }
    err = g.local_provider->create(&g.local_instance, LOCAL_SHMCB_ARGS, ptemp,
                                   pconf);
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "RunaiTokenCache: the host-local shmcb: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = g.local_provider->init(g.local_instance, "runai-token-local", &hints,
                                s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot initialise the host-local "
                     "shmcb");
        g.local_instance = NULL;
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
    g.host_id = hex;
    return OK;
}

/* Loading a state file: each record that has not expired goes into the new
 * store as it was, under its own expiry. */
typedef struct {
    server_rec *s;
    apr_pool_t *p;
    apr_int64_t now;
    int loaded, expired, failed;
} state_load_ctx;

static void state_load_record(void *baton, const unsigned char *key,
                              apr_size_t klen, const unsigned char *val,
                              apr_size_t vlen)
{
    state_load_ctx *c = baton;
    apr_int64_t exp = 0;

    if (!rt_statefile_record_exp(val, vlen, &exp) || exp <= c->now) {
        c->expired++;
        return;
    }
    if (g.provider->store(g.instance, c->s, key, (unsigned int)klen,
                          apr_time_from_sec(exp), (unsigned char *)val,
                          (unsigned int)vlen, c->p) == APR_SUCCESS) {
        c->loaded++;
    } else {
        c->failed++;
    }
}

/* A state file that cannot be read whole or does not check is set aside
 * (renamed, kept for a look) and the store starts empty: never a refusal
 * to start. */
static void state_load(apr_pool_t *ptemp, server_rec *s)
{
    state_load_ctx c = {s, ptemp, apr_time_sec(apr_time_now()), 0, 0, 0};
    apr_file_t *f;
    apr_finfo_t fi;
    unsigned char *buf = NULL;
    apr_size_t got = 0;
    const char *err = NULL, *aside;
    apr_status_t rv = apr_file_open(
        &f, g.state_path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, ptemp);

    if (APR_STATUS_IS_ENOENT(rv)) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "RunaiTokenStateDir: no state file %s yet: the session "
                     "store starts empty",
                     g.state_path);
        return;
    }
    if (rv != APR_SUCCESS) {
        err = "cannot be opened";
    } else {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_TYPE, f);
        if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
            err = "not a regular file";
        } else if (fi.size > STATE_MAX_BYTES) {
            err = "too large";
        } else {
            buf = apr_palloc(ptemp, (apr_size_t)fi.size + 1);
            rv = apr_file_read_full(f, buf, (apr_size_t)fi.size, &got);
            if (rv != APR_SUCCESS && !(APR_STATUS_IS_EOF(rv) && fi.size == 0)) {
                err = "cannot be read";
            }
        }
        apr_file_close(f);
    }
    if (err == NULL) {
        err = rt_statefile_parse(buf, got, state_load_record, &c);
    }
    if (err != NULL) {
        aside =
            apr_psprintf(ptemp, "%s.corrupt-%" APR_INT64_T_FMT, g.state_path,
                         (apr_int64_t)apr_time_sec(apr_time_now()));
        rv = apr_file_rename(g.state_path, aside, ptemp);
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "RunaiTokenStateDir: the state file %s is unusable (%s): "
                     "%s%s; the session store starts empty",
                     g.state_path, err,
                     rv == APR_SUCCESS ? "set aside as "
                                       : "could not be set "
                                         "aside as ",
                     aside);
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                 "RunaiTokenStateDir: %d records restored from %s (%d expired, "
                 "%d not stored)",
                 c.loaded, g.state_path, c.expired, c.failed);
}

typedef struct {
    rt_statefile *f;
    int dropped;
} state_snap_ctx;

static apr_status_t state_snap_record(ap_socache_instance_t *inst,
                                      server_rec *s, void *userctx,
                                      const unsigned char *id,
                                      unsigned int idlen,
                                      const unsigned char *data,
                                      unsigned int datalen, apr_pool_t *pool)
{
    state_snap_ctx *c = userctx;

    (void)inst;
    (void)s;
    (void)pool;
    if (!rt_statefile_add(c->f, id, idlen, data, datalen)) {
        c->dropped++;
    }
    return APR_SUCCESS;
}

/* A snapshot of the store: its records copied under the mutex, the file
 * written after it is released, to a temporary file renamed over the state
 * file (a crash leaves the old one or the new one, never half of one). A
 * snapshot equal to the last this process wrote is not written again,
 * unless final (the parent, when the generation ends). */
static void state_write(server_rec *s, apr_pool_t *p, int final)
{
    state_snap_ctx c = {rt_statefile_begin(p), 0};
    const unsigned char *buf, *sum;
    const char *tmp;
    apr_file_t *f;
    apr_size_t len;
    apr_status_t rv;
    apr_time_t held;

    rv = apr_global_mutex_lock(g.mutex);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "RunaiTokenStateDir: cannot lock the %s mutex",
                     MUTEX_TYPE);
        return;
    }
    held = apr_time_now();
    rv = g.provider->iterate(g.instance, s, &c, state_snap_record, p);
    apr_global_mutex_unlock(g.mutex);
    held = apr_time_now() - held;
    buf = rv == APR_SUCCESS ? rt_statefile_finish(c.f, &len, &sum) : NULL;
    if (buf == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "RunaiTokenStateDir: cannot read the store's records");
        return;
    }
    if (!final && g.state_have_last &&
        memcmp(sum, g.state_last, RT_SHA256_LEN) == 0) {
        return;
    }
    tmp = apr_psprintf(p, "%s.%" APR_PID_T_FMT ".tmp", g.state_path, getpid());
    apr_file_remove(tmp, p);
    rv = apr_file_open(&f, tmp,
                       APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_EXCL |
                           APR_FOPEN_BINARY,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, buf, len, NULL);
        if (rv == APR_SUCCESS) {
            rv = apr_file_sync(f);
        }
        apr_file_close(f);
        if (rv == APR_SUCCESS) {
            rv = apr_file_rename(tmp, g.state_path, p);
        }
        if (rv != APR_SUCCESS) {
            apr_file_remove(tmp, p);
        } else if (apr_file_open(&f, g.state_dir, APR_FOPEN_READ, 0, p) ==
                   APR_SUCCESS) {
            /* The rename itself reaches the disk (a power cut). */
            apr_file_sync(f);
            apr_file_close(f);
        }
    }
    if (rv != APR_SUCCESS) {
        /* Once per run of failures, not once per tick. */
        if (!g.state_failing || final) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                         "RunaiTokenStateDir: cannot write %s (its directory "
                         "must be writable by httpd's User)",
                         tmp);
        }
        g.state_failing = 1;
        return;
    }
    g.state_failing = 0;
    memcpy(g.state_last, sum, RT_SHA256_LEN);
    g.state_have_last = 1;
    ap_log_error(APLOG_MARK, final ? APLOG_NOTICE : APLOG_DEBUG, 0, s,
                 "RunaiTokenStateDir: %u records saved to %s (%" APR_SIZE_T_FMT
                 " bytes; copied in %" APR_TIME_T_FMT " us under the mutex)%s",
                 rt_statefile_count(c.f), g.state_path, len, held,
                 c.dropped ? " (some too large to keep)" : "");
}

/* The parent, when its generation ends: graceful, restart and stop run it
 * before the store is destroyed (registered after it, so run before it). */
static apr_status_t state_final(void *data)
{
    apr_pool_t *p;

    if (getpid() != g.state_parent || g.state_path == NULL ||
        g.instance == NULL || g.mutex == NULL ||
        apr_pool_create(&p, NULL) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    state_write(data, p, 1);
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

/* The singleton watchdog, in one child: a snapshot every STATE_TICK when
 * the records changed. A child of a generation that is ending writes
 * nothing: the new generation's store is newer. */
static apr_status_t state_tick(int state, void *data, apr_pool_t *pool)
{
    int mpm_state = AP_MPMQ_RUNNING;

    if (state == AP_WATCHDOG_STATE_STOPPING || !g.state_child_ready ||
        g.state_path == NULL || g.instance == NULL || g.mutex == NULL) {
        return APR_SUCCESS;
    }
    if (ap_mpm_query(AP_MPMQ_MPM_STATE, &mpm_state) == APR_SUCCESS &&
        mpm_state == AP_MPMQ_STOPPING) {
        return APR_SUCCESS;
    }
    state_write(data, pool, 0);
    return APR_SUCCESS;
}

/* The temporary files of writers killed while writing (a crash). */
static void state_remove_tmp(apr_pool_t *ptemp)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_size_t plen = strlen(STATE_FILE "."), n;

    if (apr_dir_open(&d, g.state_dir, ptemp) != APR_SUCCESS) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d) ==
           APR_SUCCESS) {
        n = strlen(fi.name);
        if (fi.filetype == APR_REG && n > plen + 4 &&
            strncmp(fi.name, STATE_FILE ".", plen) == 0 &&
            strcmp(fi.name + n - 4, ".tmp") == 0) {
            apr_file_remove(apr_pstrcat(ptemp, g.state_dir, "/", fi.name, NULL),
                            ptemp);
        }
    }
    apr_dir_close(d);
}

/* The state file of a store of this host, in the parent's post_config: its
 * directory made (0700, owned by the User the children run as, who write
 * the snapshots), the file loaded unless the store was kept from the last
 * generation, the final snapshot and the watchdog registered. Nothing here
 * refuses to start: without a directory the store is only not durable, and says
 * so. */
static int state_start(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                       int load)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) * wd_get;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) * wd_register;
    ap_watchdog_t *wd = NULL;
    int mine = g.state_dir_conf == NULL;
    const char *dir = mine ? ap_runtime_dir_relative(pconf, STATE_DEFAULT_DIR)
                           : g.state_dir_conf;
    apr_finfo_t fi;
    apr_status_t rv = APR_SUCCESS;

    /* Off; or the first of the two passes over the configuration at start,
     * whose store never serves a request. */
    if ((g.state_dir_conf != NULL && *g.state_dir_conf == '\0') ||
        ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (apr_stat(&fi, dir, APR_FINFO_TYPE, ptemp) != APR_SUCCESS) {
        rv = apr_dir_make_recursive(
            dir, APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE,
            ptemp);
        mine = 1;
    }
    if (rv == APR_SUCCESS && mine && geteuid() == 0 &&
        chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "RunaiTokenStateDir: cannot make %s its own: sessions, "
                     "codes and throttle counters will not survive a "
                     "restart",
                     dir);
        return OK;
    }
    g.state_dir = dir;
    g.state_path = apr_pstrcat(pconf, dir, "/" STATE_FILE, NULL);
    g.state_parent = getpid();
    state_remove_tmp(ptemp);
    if (load) {
        state_load(ptemp, s);
    }
    apr_pool_cleanup_register(pconf, s, state_final, apr_pool_cleanup_null);
    wd_get = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (wd_get != NULL && wd_register != NULL &&
        wd_get(&wd, "runai-token-state", 0, 1, pconf) == APR_SUCCESS &&
        wd_register(wd, STATE_TICK, s, state_tick) == APR_SUCCESS) {
        return OK;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "RunaiTokenStateDir: mod_watchdog is not loaded: %s is "
                 "written at graceful, restart and stop only, so a crash "
                 "loses every change since the last of them",
                 g.state_path);
    return OK;
}

static int make_mutex(apr_pool_t *p, server_rec *s, apr_global_mutex_t **mutex)
{
    apr_status_t rv =
        ap_global_mutex_create(mutex, NULL, MUTEX_TYPE, NULL, s, p, 0);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot create the %s mutex", MUTEX_TYPE);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* The store's mutex and the provider's init, in pool p. */
static int make_store(apr_pool_t *p, server_rec *s,
                      const struct ap_socache_hints *hints,
                      ap_socache_instance_t *instance,
                      apr_global_mutex_t **mutex)
{
    apr_status_t rv;

    if (make_mutex(p, s, mutex) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = g.provider->init(instance, "runai-token", hints, s, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot initialise the %s store",
                     g.provider_name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* The default store (runai-shm) outlives its generation, as the
 * scoreboard does: made in the process pool with its mutex, it is handed
 * to the next generation (graceful or not) when RunaiTokenCache names the
 * same store, so the children of the old generation that still finish
 * requests and those of the new one share one store and one mutex:
 * nothing they write is lost. The state file carries it across a stop
 * and a crash only. A store of other arguments replaces it (filled from
 * the state file the old one's generation just wrote). The module is
 * unloaded between generations: what is kept is found again through the
 * process pool's user data, and only a store of this module's own
 * provider is kept (a shmcb kept so crashed httpd at exit under
 * AddressSanitizer, once mod_socache_shmcb had been unloaded and loaded
 * again). */
typedef struct {
    const char *name; /* provider:args */
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;
} kept_store;

#define KEPT_STORE "runai-token-kept-store"

/* Unmaps a store kept from an earlier generation in the parent; the
 * children of that generation keep their own mapping until they exit. */
static void drop_kept(apr_pool_t *ptemp, server_rec *s, kept_store *k)
{
    const ap_socache_provider_t *p;

    if (k == NULL || k->instance == NULL) {
        return;
    }
    p = ap_lookup_provider(
        AP_SOCACHE_PROVIDER_GROUP,
        apr_pstrmemdup(ptemp, k->name, strcspn(k->name, ":")),
        AP_SOCACHE_PROVIDER_VERSION);
    if (p != NULL) {
        p->destroy(k->instance, s);
    }
    k->instance = NULL;
}

/* A store kept for an earlier configuration that this one does not use. */
static void forget_kept(apr_pool_t *ptemp, server_rec *s)
{
    kept_store *k = NULL;

    apr_pool_userdata_get((void **)&k, KEPT_STORE, s->process->pool);
    drop_kept(ptemp, s, k);
}

static int keep_store(apr_pool_t *ptemp, server_rec *s,
                      const struct ap_socache_hints *hints, int *reused)
{
    apr_pool_t *pg = s->process->pool;
    const char *name =
        apr_pstrcat(ptemp, g.provider_name, ":",
                    g.provider_args ? g.provider_args : "", NULL);
    kept_store *k = NULL, *old;
    const char *err;

    apr_pool_userdata_get((void **)&k, KEPT_STORE, pg);
    if (k != NULL && k->instance != NULL && strcmp(k->name, name) == 0) {
        *reused = 1;
    } else {
        old = k;
        k = apr_pcalloc(pg, sizeof(*k));
        k->name = apr_pstrdup(pg, name);
        err = g.provider->create(&k->instance, g.provider_args, ptemp, pg);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "RunaiTokenCache: %s",
                         err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (make_store(pg, s, hints, k->instance, &k->mutex) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        drop_kept(ptemp, s, old);
        apr_pool_userdata_set(k, KEPT_STORE, apr_pool_cleanup_null, pg);
    }
    g.instance = k->instance;
    g.mutex = k->mutex;
    g.kept = 1;
    return OK;
}

void *rt_store_outage_words(apr_pool_t *pconf, server_rec *s, int n,
                            const char *what)
{
    apr_shm_t *shm;
    apr_size_t size = (apr_size_t)n * sizeof(rt_outage);
    apr_status_t rv = apr_shm_create(&shm, size, NULL, pconf);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot make a shared memory segment "
                     "for %s",
                     what);
        return NULL;
    }
    memset(apr_shm_baseaddr_get(shm), 0, size);
    return apr_shm_baseaddr_get(shm);
}

/* The word shared by every process of this host that says whether the
 * store is down; a new one for each generation. */
static int make_outage(apr_pool_t *pconf, server_rec *s)
{
    g.outage = rt_store_outage_words(pconf, s, 1, "the store's state");
    return g.outage ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* Stores of this host: the state file and the kept segment are theirs. */
static int host_store(const char *name)
{
    return strcmp(name, RT_SOCACHE_NAME) == 0 || strcmp(name, "shmcb") == 0;
}

int rt_store_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    /* shmcb sizes its index by these: records are keys of RT_REC_KEY_LEN
     * bytes and values of 100 (a throttle counter) to 600 (a session with
     * a few claims) bytes; hinting below the average keeps index slots from
     * running out before the data area does (docs/operations.md, "Sizing"). */
    struct ap_socache_hints hints = {RT_REC_KEY_LEN, 256,
                                     86400 * APR_USEC_PER_SEC};

    /* Loading the module changes nothing until it is used: no shared
     * memory, no mutex unless RunaiTokenCache is set or some server or
     * directory configures a provider or a client. */
    if (g.provider == NULL && !g.native && !rt_config_uses_store(s)) {
        g.unused = 1;
        forget_kept(ptemp, s);
        return OK;
    }
    if (make_outage(pconf, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (g.native) {
        /* The module's redis or memcache client: shared; the mutex serves
         * the records of this host's own, and memcache's takes and
         * updates (redis makes them atomic on the server). */
        g.shared = 1;
        forget_kept(ptemp, s);
        if (g.native->post_config(pconf, s) != OK ||
            make_mutex(pconf, s, &g.mutex) != OK ||
            make_host_id(pconf, s) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        return make_local(pconf, ptemp, s);
    }
    if (g.provider == NULL) {
        /* The default: the module's own table, which needs no socache
         * module loaded. */
        g.provider =
            ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, RT_SOCACHE_NAME,
                               AP_SOCACHE_PROVIDER_VERSION);
        if (g.provider == NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "RunaiTokenCache: the " RT_SOCACHE_NAME
                         " provider is not registered");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        g.provider_name = RT_SOCACHE_NAME;
        g.provider_args = NULL;
    }
    /* runai-shm, shmcb and dbm live on this host; redis and memcache may be
     * shared. */
    g.shared = !host_store(g.provider_name) && !g.is_dbm;
    if (strcmp(g.provider_name, RT_SOCACHE_NAME) == 0 &&
        ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) {
        int reused = 0;

        if (keep_store(ptemp, s, &hints, &reused) != OK) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        return state_start(pconf, ptemp, s, !reused);
    }
    if (strcmp(g.provider_name, RT_SOCACHE_NAME) != 0) {
        forget_kept(ptemp, s);
    }
    if (g.instance == NULL) {
        const char *err =
            g.provider->create(&g.instance, g.provider_args, ptemp, pconf);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "RunaiTokenCache: %s",
                         err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (make_store(pconf, s, &hints, g.instance, &g.mutex) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, s, store_cleanup, apr_pool_cleanup_null);
    if (!g.shared) {
        /* dbm keeps its own file; shmcb is made anew with each generation
         * and its state file carries it across. */
        return g.is_dbm ? OK : state_start(pconf, ptemp, s, 1);
    }
    return make_host_id(pconf, s) == OK ? make_local(pconf, ptemp, s)
                                        : HTTP_INTERNAL_SERVER_ERROR;
}

void rt_store_child_init(apr_pool_t *p, server_rec *s)
{
    apr_status_t rv;

    rt_redis_store_child_init(p, s);
    rt_memcache_store_child_init(p, s);
    if (g.mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&g.mutex,
                                     apr_global_mutex_lockfile(g.mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "cannot attach the %s mutex in a child", MUTEX_TYPE);
        return;
    }
    g.state_child_ready = 1;
}

int rt_store_shared(void)
{
    return g.shared;
}

const char *rt_store_provider(void)
{
    return g.unused || (g.instance == NULL && !g.native) ? NULL
                                                         : g.provider_name;
}

/* The cache of a step: the host-local shmcb for a local one where there
 * is one. */
#define PROVIDER(local)                                                        \
    ((local) && g.local_instance ? g.local_provider : g.provider)
#define INSTANCE(local)                                                        \
    ((local) && g.local_instance ? g.local_instance : g.instance)
#define IS_DBM(local) (g.is_dbm && !((local) && g.local_instance))
/* The module's own client serves every step but a local one beside a
 * host-local shmcb; redis's takes and updates are one step on the server. */
#define NATIVE(local) (g.native && !((local) && g.local_instance))
/* ... and makes takes, or updates, one step on the server. */
#define ON_SERVER(local, op) (NATIVE(local) && g.native->op != NULL)

static int needs_lock(void)
{
    return g.provider != NULL &&
           (g.provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE);
}

static int lock(request_rec *r)
{
    apr_status_t rv = apr_global_mutex_lock(g.mutex);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, "cannot lock the %s mutex",
                      MUTEX_TYPE);
        return 0;
    }
    return 1;
}

static void unlock(request_rec *r)
{
    apr_status_t rv = apr_global_mutex_unlock(g.mutex);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "cannot unlock the %s mutex", MUTEX_TYPE);
    }
}

void rt_store_note_error(request_rec *r, const char *why)
{
    apr_table_setn(r->notes, "runai-token-store-error", why);
}

/* Per request at debug level: an outage is told once when it begins and
 * once when it ends (outage_note). */
static void down(request_rec *r, apr_status_t rv, const char *op)
{
    rt_store_note_error(r,
                        apr_psprintf(r->pool, "failed to %s (%pm)", op, &rv));
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                  "session store (%s) failed to %s", g.provider_name, op);
}

/* Whether a step heard from the store itself: a record found or written,
 * or a miss from a store that tells a miss from an outage (the module's
 * own clients do; mod_socache_memcache and mod_socache_redis answer "not
 * found" when down). */
static int answered(const rt_store_step *steps, int n)
{
    for (int i = 0; i < n; i++) {
        if (!steps[i].local &&
            (steps[i].st == RT_STORE_OK ||
             (steps[i].st == RT_STORE_NOTFOUND && (!g.shared || g.native)))) {
            return 1;
        }
    }
    return 0;
}

/* After a request's store steps: the first process of this host to see
 * the store fail says so, the first to see it answer again says how long
 * it was down and how many requests it refused meanwhile. */
static void outage_note(request_rec *r, int failed, int answered)
{
    rt_outage *o = g.outage;
    apr_interval_time_t took;
    apr_uint32_t refused;

    if (o == NULL) {
        return;
    }
    if (failed) {
        if (apr_table_get(r->notes, "runai-token-store-refused") == NULL) {
            apr_table_setn(r->notes, "runai-token-store-refused", "1");
            rt_outage_refused(o);
        }
        if (rt_outage_down(o, r->request_time)) {
            const char *why =
                apr_table_get(r->notes, "runai-token-store-error");

            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "session store (%s) is down: %s; requests that need "
                          "it answer 503 until it is back",
                          g.provider_name, why ? why : "no answer");
        }
        return;
    }
    if (answered && rt_outage_up(o, apr_time_now(), &took, &refused)) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "session store (%s) is back after %.1f s; %u requests "
                      "were refused meanwhile",
                      g.provider_name, (double)took / APR_USEC_PER_SEC,
                      refused);
    }
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

    if (NATIVE(local)) {
        return g.native->put(r, key, RT_REC_KEY_LEN, exp, val, len);
    }
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
                          "dbm store (about 950 bytes at most): use runai-shm, "
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
 * a miss of a shared store is confirmed by a write before it is believed;
 * runai-shm, shmcb and dbm answer for themselves. */
static rt_store_status confirm_miss(request_rec *r)
{
    unsigned char key[RT_REC_KEY_LEN];
    json_t *empty;
    const char *val;
    apr_size_t len;
    rt_store_status st;

    if (!g.shared) {
        return RT_STORE_NOTFOUND;
    }
    if (g.native) {
        /* Its misses are misses; redis's fenced when asked (replicas). */
        return g.native->confirm_miss ? g.native->confirm_miss(r)
                                      : RT_STORE_NOTFOUND;
    }
    empty = json_object();
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
    if (NATIVE(local)) {
        out->len = RT_REC_MAX;
        return g.native->get(r, key, RT_REC_KEY_LEN, out->buf, &out->len);
    }
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
    apr_status_t rv;

    if (NATIVE(local)) {
        return g.native->remove(r, key, RT_REC_KEY_LEN);
    }
    rv = PROVIDER(local)->remove(INSTANCE(local), r->server, key,
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

/* The new bytes of a record from its old data (NULL: absent): *val NULL
 * when the step leaves it as it is. */
static rt_store_status update_value(request_rec *r, rt_store_step *t,
                                    json_t *old, const char **val,
                                    apr_size_t *len, apr_int64_t *exp)
{
    json_t *new = t->fn(r, old, t->baton, exp);
    rt_store_status st = RT_STORE_OK;

    *val = NULL;
    if (new != NULL) {
        st = encode(r, *exp, new, val, len);
    }
    json_decref(new);
    return st;
}

/* rt_native_update_fn over update_value: the module's redis client runs
 * the step on the server, again when another writer came in between. */
static int native_update_value(request_rec *r, void *ctx,
                               const unsigned char *old, apr_size_t oldlen,
                               const char **val, apr_size_t *len,
                               apr_int64_t *exp)
{
    rt_store_step *t = ctx;
    json_t *data = old ? rt_record_decode(r->pool, old, oldlen,
                                          apr_time_sec(r->request_time))
                       : NULL;

    return update_value(r, t, data, val, len, exp) == RT_STORE_OK;
}

/* Read-modify-write: the one step that decodes and encodes under the
 * mutex, as the new record depends on the old one. */
static rt_store_status update(request_rec *r, const unsigned char *key,
                              rt_store_step *t)
{
    raw_rec got;
    json_t *old = NULL;
    const char *val;
    apr_size_t len = 0;
    apr_int64_t exp = 0;
    rt_store_status st;

    if (ON_SERVER(t->local, update)) {
        return g.native->update(r, key, RT_REC_KEY_LEN, native_update_value, t);
    }
    st = decode(r, raw_get(r, t->local, key, &got), &got, &old);
    if (st == RT_STORE_NOTFOUND && t->confirm_miss) {
        st = confirm_miss(r);
    }
    if (st == RT_STORE_DOWN) {
        return st;
    }
    st = update_value(r, t, st == RT_STORE_OK ? old : NULL, &val, &len, &exp);
    if (st == RT_STORE_OK && val != NULL) {
        st = raw_put(r, t->local, key, exp, val, len);
    }
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
        st = raw_get(r, t->local, key, got);
        return st == RT_STORE_NOTFOUND && t->confirm_miss ? confirm_miss(r)
                                                          : st;
    case RT_STORE_PUT:
        return raw_put(r, t->local, key, t->exp, val, len);
    case RT_STORE_REMOVE:
        return raw_remove(r, t->local, key);
    case RT_STORE_UPDATE:
        return update(r, key, t);
    case RT_STORE_TAKE:
        if (ON_SERVER(t->local, take)) {
            /* One step on the server (GETDEL), its miss a miss. */
            got->buf = apr_palloc(r->pool, RT_REC_MAX);
            got->len = RT_REC_MAX;
            return g.native->take(r, key, RT_REC_KEY_LEN, got->buf, &got->len);
        }
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
    int locked = needs_lock(), ready = g.instance != NULL || g.native, i;
    apr_time_t started;

    /* Keys and encoding before the mutex, decoding after it. Takes and
     * updates always hold it: read and write must be one step. */
    for (i = 0; i < n; i++) {
        rt_store_step *t = &steps[i];
        /* A record of this host's own kept in a shared store: its key
         * names this host. */
        const char *m = t->local && g.shared && g.local_instance == NULL
                            ? apr_pstrcat(r->pool, "host ", g.host_id, " ",
                                          t->material, NULL)
                            : t->material;

        t->st = RT_STORE_DOWN;
        t->got = NULL;
        /* The module's redis client makes takes and updates atomic on
         * the server, for all hosts and processes (GETDEL, WATCH): no
         * mutex, so that unrelated sessions never wait for each other. */
        locked = locked || t->local ||
                 (t->op == RT_STORE_UPDATE && !ON_SERVER(0, update)) ||
                 (t->op == RT_STORE_TAKE && !ON_SERVER(0, take));
        if (t->digest != NULL) {
            rt_record_key_of(keys[i], t->kind, t->digest);
        }
        ready = ready &&
                (t->digest != NULL ||
                 rt_record_key(keys[i], t->kind, m, strlen(m))) &&
                (t->op != RT_STORE_PUT ||
                 encode(r, t->exp, t->put, &val[i], &len[i]) == RT_STORE_OK);
    }
    if (g.unused) {
        for (i = 0; i < n; i++) {
            steps[i].st =
                steps[i].op == RT_STORE_PUT || steps[i].op == RT_STORE_UPDATE
                    ? RT_STORE_DOWN
                    : RT_STORE_NOTFOUND;
        }
        return;
    }
    if (!ready) {
        return;
    }
    if (locked && !lock(r)) {
        outage_note(r, 1, 0);
        return;
    }
    started = apr_time_now();
    for (i = 0; i < n; i++) {
        rt_store_step *t = &steps[i];

        t->st = run(r, keys[i], t, &got[i], val[i], len[i]);
        if (t->st == RT_STORE_DOWN) {
            break;
        }
    }
    rt_monitor_store(r, started, i < n);
    if (locked) {
        unlock(r);
    }
    /* memcache: each server's outage is told on its own (a store of
     * several is partly up while one is down); the store is down when all
     * of them are, else a request to a live server would say "back" and
     * the next to the dead one "down" again. */
    outage_note(r,
                i < n && (g.native == NULL || g.native->all_down == NULL ||
                          g.native->all_down()),
                answered(steps, n));
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

rt_store_status rt_store_take(request_rec *r, rt_rec_kind kind,
                              const char *material, json_t **data)
{
    rt_store_step t = {.op = RT_STORE_TAKE, .kind = kind, .material = material};
    rt_store_status st = one(r, &t);

    *data = t.got;
    return st;
}
