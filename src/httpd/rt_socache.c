#include "rt_socache.h"
#include "rt_shmtable.h"
#include "rt_util.h"

#include "http_log.h"
#include "http_protocol.h"
#include "ap_provider.h"
#include "ap_socache.h"
#include "mod_status.h"
#include <apr_shm.h>
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define SIZE_MAX_BYTES APR_INT64_C(4294967296) /* 4 GiB */

struct ap_socache_instance_t {
    apr_size_t size;
    apr_shm_t *shm;
    rt_shmtable *table;
    apr_pool_t *process; /* where it is named as the current one */
};

/* The instance made last, in the process pool's user data: the module is
 * unloaded between generations, and a kept store is not made again. */
#define CURRENT "runai-token-shm-current"

static void set_current(apr_pool_t *process, ap_socache_instance_t *c)
{
    apr_pool_userdata_set(c, CURRENT, apr_pool_cleanup_null, process);
}

/* Forgets c as the current instance, when it is. */
static void forget_current(ap_socache_instance_t *c)
{
    ap_socache_instance_t *cur = NULL;

    if (c->process != NULL) {
        apr_pool_userdata_get((void **)&cur, CURRENT, c->process);
        if (cur == c) {
            set_current(c->process, NULL);
        }
    }
}

static const char *create(ap_socache_instance_t **instance, const char *arg,
                          apr_pool_t *tmp, apr_pool_t *p)
{
    ap_socache_instance_t *c = apr_pcalloc(p, sizeof(*c));
    apr_int64_t size = RT_SOCACHE_DEFAULT_SIZE;

    if (arg != NULL && *arg) {
        const char *num = arg;
        apr_size_t n = strlen(arg);

        if (arg[0] == '(' && n > 2 && arg[n - 1] == ')') {
            num = apr_pstrmemdup(tmp, arg + 1, n - 2);
        }
        if (rt_parse_int(num, (apr_int64_t)rt_shmtable_min_size(),
                         SIZE_MAX_BYTES, &size) != 0) {
            return apr_psprintf(
                tmp,
                "'%s' is not a size in bytes from %" APR_SIZE_T_FMT
                " to %" APR_INT64_T_FMT,
                arg, rt_shmtable_min_size(), SIZE_MAX_BYTES);
        }
    }
    c->size = (apr_size_t)size;
    *instance = c;
    return NULL;
}

static apr_status_t init(ap_socache_instance_t *c, const char *cname,
                         const struct ap_socache_hints *hints, server_rec *s,
                         apr_pool_t *p)
{
    /* Anonymous: the children inherit the parent's mapping. */
    apr_status_t rv = apr_shm_create(&c->shm, c->size, NULL, p);

    (void)cname;
    (void)hints;
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     RT_SOCACHE_NAME ": cannot create %" APR_SIZE_T_FMT
                                     " bytes of shared memory",
                     c->size);
        return rv;
    }
    c->table = rt_shmtable_init(apr_shm_baseaddr_get(c->shm),
                                apr_shm_size_get(c->shm));
    if (c->table == NULL) {
        apr_shm_destroy(c->shm);
        c->shm = NULL;
        return APR_ENOSPC;
    }
    /* Forgotten by destroy, which every store's owner calls. No pool
     * cleanup: the kept store lives in the process pool, whose cleanups
     * run at exit, after the module is unloaded. */
    c->process = s->process->pool;
    set_current(c->process, c);
    return APR_SUCCESS;
}

static void destroy(ap_socache_instance_t *c, server_rec *s)
{
    (void)s;
    forget_current(c);
    if (c->shm != NULL) {
        apr_shm_destroy(c->shm);
        c->shm = NULL;
        c->table = NULL;
    }
}

static apr_status_t store(ap_socache_instance_t *c, server_rec *s,
                          const unsigned char *id, unsigned int idlen,
                          apr_time_t expiry, unsigned char *data,
                          unsigned int datalen, apr_pool_t *pool)
{
    (void)s;
    (void)pool;
    if (c->table == NULL) {
        return APR_EGENERAL;
    }
    return rt_shmtable_put(c->table, id, idlen, expiry, data, datalen,
                           apr_time_now()) == RT_SHMT_OK
               ? APR_SUCCESS
               : APR_ENOSPC;
}

static apr_status_t retrieve(ap_socache_instance_t *c, server_rec *s,
                             const unsigned char *id, unsigned int idlen,
                             unsigned char *data, unsigned int *datalen,
                             apr_pool_t *pool)
{
    apr_size_t len = *datalen;

    (void)s;
    (void)pool;
    if (c->table == NULL) {
        return APR_EGENERAL;
    }
    switch (rt_shmtable_get(c->table, id, idlen, apr_time_now(), data, &len)) {
    case RT_SHMT_OK:
        *datalen = (unsigned int)len;
        return APR_SUCCESS;
    case RT_SHMT_TOO_LARGE:
        return APR_ENOSPC;
    default:
        return APR_NOTFOUND;
    }
}

static apr_status_t remove_id(ap_socache_instance_t *c, server_rec *s,
                              const unsigned char *id, unsigned int idlen,
                              apr_pool_t *pool)
{
    (void)s;
    (void)pool;
    if (c->table == NULL) {
        return APR_EGENERAL;
    }
    return rt_shmtable_remove(c->table, id, idlen) == RT_SHMT_OK ? APR_SUCCESS
                                                                 : APR_NOTFOUND;
}

static void status(ap_socache_instance_t *c, request_rec *r, int flags)
{
    rt_shmtable_stats st = {0, 0, 0, 0, 0};

    if (c->table != NULL) {
        rt_shmtable_stat(c->table, &st);
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r,
                   "CacheType: " RT_SOCACHE_NAME "\nCacheRecords: %u\n"
                   "CacheEntries: %u\nCacheFreeSlots: %u\nCacheSlots: %u\n"
                   "CacheEvicted: %u\n",
                   st.records, st.entries, st.free_slots, st.slots, st.evicted);
    } else {
        ap_rprintf(r,
                   "cache type: <b>" RT_SOCACHE_NAME "</b>, records: "
                   "<b>%u</b> of <b>%u</b>, free slots: <b>%u</b> of "
                   "<b>%u</b>, evicted: <b>%u</b><br>",
                   st.records, st.entries, st.free_slots, st.slots, st.evicted);
    }
}

typedef struct {
    ap_socache_instance_t *c;
    server_rec *s;
    void *userctx;
    ap_socache_iterator_t *iterator;
    apr_pool_t *pool;
    apr_status_t rv;
} each_ctx;

static int each_record(void *baton, const unsigned char *key, apr_size_t klen,
                       apr_int64_t expiry, const unsigned char *val,
                       apr_size_t vlen)
{
    each_ctx *e = baton;

    (void)expiry;
    e->rv = e->iterator(e->c, e->s, e->userctx, key, (unsigned int)klen, val,
                        (unsigned int)vlen, e->pool);
    return e->rv != APR_SUCCESS;
}

static apr_status_t iterate(ap_socache_instance_t *c, server_rec *s,
                            void *userctx, ap_socache_iterator_t *iterator,
                            apr_pool_t *pool)
{
    each_ctx e = {c, s, userctx, iterator, pool, APR_SUCCESS};

    if (c->table == NULL) {
        return APR_EGENERAL;
    }
    rt_shmtable_each(c->table, apr_time_now(), pool, each_record, &e);
    return e.rv;
}

static const ap_socache_provider_t provider = {
    RT_SOCACHE_NAME, AP_SOCACHE_FLAG_NOTMPSAFE,
    create,          init,
    destroy,         store,
    retrieve,        remove_id,
    status,          iterate};

void rt_socache_register(apr_pool_t *p)
{
    ap_register_provider(p, AP_SOCACHE_PROVIDER_GROUP, RT_SOCACHE_NAME,
                         AP_SOCACHE_PROVIDER_VERSION, &provider);
}

void rt_socache_fill(server_rec *s, rt_counters_fill *fill)
{
    ap_socache_instance_t *c = NULL;
    rt_shmtable_stats st;

    memset(fill, 0, sizeof(*fill));
    apr_pool_userdata_get((void **)&c, CURRENT, s->process->pool);
    if (c == NULL || c->table == NULL) {
        return;
    }
    rt_shmtable_stat(c->table, &st);
    fill->have = 1;
    fill->records = st.records;
    fill->records_max = st.entries;
    fill->slots = st.slots;
    fill->slots_used = st.slots - st.free_slots;
    fill->evicted = st.evicted;
}
