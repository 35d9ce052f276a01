#include "rt_memcache_store.h"
#include "rt_outage.h"

#include "ap_mpm.h"
#include "http_log.h"
#include <apr_memcache.h>
#include <apr_network_io.h>
#include <apr_shm.h>
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define MAX_SERVERS 16
#define DEFAULT_PORT 11211
/* Keys are the record's key in hex after a prefix of ours: printable, no
 * spaces, and apart from other users of the same servers. */
#define KEY_PREFIX "runai-token:"
#define KEY_PREFIX_LEN (sizeof(KEY_PREFIX) - 1)
#define KEY_MAX 64
/* The SHA-256 that begins every record key (rt_record.h), in hex. */
#define DIGEST_HEX 64
/* Idle connections older than this are closed rather than used. */
#define CONN_TTL apr_time_from_sec(15)
/* memcached reads an expiry up to 30 days as seconds from now, above
 * that as epoch seconds. */
#define RELATIVE_MAX (30 * 86400)

typedef struct {
    const char *host;
    apr_port_t port;
    const char *name; /* HOST:PORT, for log lines */
    /* This process's clock for trying it again after a failure. */
    rt_backoff retry;
} mc_server;

/* The configuration (reset for each generation), the host's view and
 * this process's client. */
static struct {
    int used;
    mc_server servers[MAX_SERVERS];
    int n;
    /* How the processes of this host see each server together: one line
     * when it goes down, one when it is back. */
    rt_outage *view;
    apr_memcache_t *mc;
    int tries; /* per operation, to get past connections gone stale */
} M;

int rt_memcache_store_names(const char *name)
{
    return strcmp(name, "memcache") == 0;
}

void rt_memcache_store_pre_config(void)
{
    memset(&M, 0, sizeof(M));
}

const char *rt_memcache_store_configure(apr_pool_t *p, const char *args)
{
    char *list = apr_pstrdup(p, args ? args : ""), *last = NULL, *item;

    M.n = 0;
    for (item = apr_strtok(list, ",", &last); item != NULL;
         item = apr_strtok(NULL, ",", &last)) {
        char *host = NULL, *scope = NULL;
        apr_port_t port = 0;

        if (M.n == MAX_SERVERS) {
            return apr_psprintf(p, "at most %d memcached servers", MAX_SERVERS);
        }
        if (apr_parse_addr_port(&host, &scope, &port, item, p) != APR_SUCCESS ||
            host == NULL || scope != NULL) {
            return apr_psprintf(p, "'%s' is not HOST[:PORT]", item);
        }
        M.servers[M.n].host = host;
        M.servers[M.n].port = port ? port : DEFAULT_PORT;
        M.servers[M.n].name =
            apr_psprintf(p, ap_strchr_c(host, ':') ? "[%s]:%u" : "%s:%u", host,
                         (unsigned)M.servers[M.n].port);
        M.n++;
    }
    if (M.n == 0) {
        return "memcache needs HOST[:PORT][,HOST[:PORT]...]";
    }
    M.used = 1;
    return NULL;
}

static int post_config(apr_pool_t *pconf, server_rec *s)
{
    M.view =
        rt_store_outage_words(pconf, s, M.n, "the memcached servers' state");
    return M.view ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* Only the digest part of a key picks its server: a session's record and
 * its end marker (one digest, two kinds) live on one server, so that a
 * refresh depends on one server for them. */
static apr_uint32_t digest_hash(void *baton, const char *data, apr_size_t len)
{
    (void)baton;
    if (len >= KEY_PREFIX_LEN + DIGEST_HEX) {
        data += KEY_PREFIX_LEN;
        len = DIGEST_HEX;
    }
    return apr_memcache_hash_default(NULL, data, len);
}

/* Always the key's own server, up or down: APR's default would send the
 * key of a dead server to the next live one, which answers "not found". */
static apr_memcache_server_t *home_server(void *baton, apr_memcache_t *mc,
                                          const apr_uint32_t hash)
{
    (void)baton;
    return mc->live_servers[hash % mc->ntotal];
}

void rt_memcache_store_child_init(apr_pool_t *p, server_rec *s)
{
    int threads = 1;
    apr_status_t rv;

    M.mc = NULL;
    if (!M.used || M.view == NULL) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS ||
        threads < 1) {
        threads = 1;
    }
    /* Each pooled connection may have gone stale (a server restarted),
     * and a stale one fails at most twice before APR drops it. */
    M.tries = 2 * threads + 2;
    rv = apr_memcache_create(p, (apr_uint16_t)M.n, 0, &M.mc);
    for (int i = 0; i < M.n && rv == APR_SUCCESS; i++) {
        apr_memcache_server_t *ms;

        rv = apr_memcache_server_create(p, M.servers[i].host, M.servers[i].port,
                                        0, (apr_uint32_t)threads,
                                        (apr_uint32_t)threads, CONN_TTL, &ms);
        if (rv == APR_SUCCESS) {
            rv = apr_memcache_add_server(M.mc, ms);
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "RunaiTokenCache: cannot make the memcache client");
        M.mc = NULL;
        return;
    }
    M.mc->hash_func = digest_hash;
    M.mc->hash_baton = NULL;
    M.mc->server_func = home_server;
    M.mc->server_baton = NULL;
}

static int all_down(void)
{
    for (int i = 0; M.view != NULL && i < M.n; i++) {
        if (!rt_outage_is_down(&M.view[i])) {
            return 0;
        }
    }
    return 1;
}

typedef enum { OP_GET, OP_SET, OP_DELETE } op_kind;

static const char *const op_names[] = {"get", "set", "delete"};

typedef struct {
    op_kind op;
    char key[KEY_PREFIX_LEN + 2 * KEY_MAX + 1];
    char *val;
    apr_size_t len;
    apr_uint32_t exptime;
} mc_op;

static void make_key(mc_op *o, const unsigned char *key, apr_size_t klen)
{
    static const char hex[] = "0123456789abcdef";
    char *k = o->key + KEY_PREFIX_LEN;

    memcpy(o->key, KEY_PREFIX, KEY_PREFIX_LEN);
    for (apr_size_t i = 0; i < klen && i < KEY_MAX; i++) {
        *k++ = hex[key[i] >> 4];
        *k++ = hex[key[i] & 15];
    }
    *k = '\0';
}

static apr_status_t attempt(request_rec *r, mc_op *o)
{
    switch (o->op) {
    case OP_GET:
        return apr_memcache_getp(M.mc, r->pool, o->key, &o->val, &o->len, NULL);
    case OP_SET:
        return apr_memcache_set(M.mc, o->key, o->val, o->len, o->exptime, 0);
    case OP_DELETE:
        break;
    }
    return apr_memcache_delete(M.mc, o->key, 0);
}

/* What a pooled connection that a restarted server closed fails with
 * (APR reads its end as an empty, unexpected answer: APR_EGENERAL). The
 * next try takes another connection, or makes a new one; a server that
 * is down then fails to connect. */
static int stale(apr_status_t rv)
{
    return rv == APR_EGENERAL || APR_STATUS_IS_EOF(rv) ||
           APR_STATUS_IS_ECONNRESET(rv) || APR_STATUS_IS_EPIPE(rv) ||
           APR_STATUS_IS_ECONNABORTED(rv);
}

static void refused(request_rec *r, rt_outage *v, const char *why)
{
    rt_store_note_error(r, why);
    rt_outage_refused(v);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session store (memcache): %s",
                  why);
}

/* A try that could not reach the server: the first process of this host
 * to see it says so. */
static void server_down(request_rec *r, mc_server *sv, rt_outage *v,
                        const char *why)
{
    rt_backoff_failed(&sv->retry, apr_time_now());
    refused(r, v, apr_psprintf(r->pool, "server %s: %s", sv->name, why));
    if (rt_outage_down(v, apr_time_now())) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "session store (memcache): server %s is down: %s; "
                      "requests for the records it holds (about 1 in %d) "
                      "answer 503 until it is back",
                      sv->name, why, M.n);
    }
}

/* The server answered: the first process to see it after an outage says
 * how long it was down and how many requests it refused meanwhile. */
static void server_up(request_rec *r, mc_server *sv, rt_outage *v)
{
    apr_interval_time_t took;
    apr_uint32_t n;

    rt_backoff_reset(&sv->retry);
    if (rt_outage_up(v, apr_time_now(), &took, &n)) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "session store (memcache): server %s is back after "
                      "%.1f s; %u requests were refused meanwhile (a "
                      "restarted memcached has lost the records it held)",
                      sv->name, (double)took / APR_USEC_PER_SEC, n);
    }
}

/* One operation on the key's own server: a miss only when that server
 * said so, RT_STORE_DOWN when it could not be asked. */
static rt_store_status run(request_rec *r, mc_op *o)
{
    apr_uint32_t i;
    mc_server *sv;
    rt_outage *v;
    apr_status_t rv = APR_EGENERAL;
    int t;

    if (M.mc == NULL) {
        rt_store_note_error(r, "no memcache client in this process");
        return RT_STORE_DOWN;
    }
    i = apr_memcache_hash(M.mc, o->key, strlen(o->key)) % M.n;
    sv = &M.servers[i];
    v = &M.view[i];
    if (rt_backoff_waiting(&sv->retry, apr_time_now())) {
        /* Not a new sign of an outage: the host's view stays as it is. */
        refused(r, v,
                apr_psprintf(r->pool,
                             "server %s: not tried again yet (the last try "
                             "failed)",
                             sv->name));
        return RT_STORE_DOWN;
    }
    for (t = 0; t < M.tries; t++) {
        rv = attempt(r, o);
        if (!stale(rv)) {
            break;
        }
    }
    if (rv == APR_SUCCESS || rv == APR_NOTFOUND) {
        server_up(r, sv, v);
        return rv == APR_SUCCESS ? RT_STORE_OK : RT_STORE_NOTFOUND;
    }
    if (rv == APR_EGENERAL || rv == APR_EEXIST) {
        /* It answered, every time, but not as asked (SERVER_ERROR, or not
         * a memcached): not an outage of the server. */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "session store (memcache): server %s answered %s with "
                      "an error",
                      sv->name, op_names[o->op]);
        rt_store_note_error(r, apr_psprintf(r->pool,
                                            "server %s answered %s with an "
                                            "error",
                                            sv->name, op_names[o->op]));
        return RT_STORE_DOWN;
    }
    server_down(r, sv, v,
                apr_psprintf(r->pool, "cannot %s (%pm)", op_names[o->op], &rv));
    return RT_STORE_DOWN;
}

static rt_store_status memcache_get(request_rec *r, const unsigned char *key,
                                    apr_size_t klen, unsigned char *buf,
                                    unsigned int *len)
{
    mc_op o = {.op = OP_GET};
    rt_store_status st;

    make_key(&o, key, klen);
    st = run(r, &o);
    if (st != RT_STORE_OK) {
        return st;
    }
    if (o.len > *len) {
        return RT_STORE_NOTFOUND; /* not a record of ours */
    }
    memcpy(buf, o.val, o.len);
    *len = (unsigned int)o.len;
    return RT_STORE_OK;
}

static rt_store_status memcache_put(request_rec *r, const unsigned char *key,
                                    apr_size_t klen, apr_int64_t exp,
                                    const char *val, apr_size_t len)
{
    apr_int64_t now = apr_time_sec(apr_time_now());
    mc_op o = {.op = OP_SET, .val = (char *)val, .len = len};

    /* Records carry an absolute expiry; memcached takes one beyond 30 days
     * as it is, a nearer one as seconds from now (a past one: at once). */
    o.exptime = exp - now > RELATIVE_MAX ? (apr_uint32_t)exp
                : exp > now              ? (apr_uint32_t)(exp - now)
                                         : 1;
    make_key(&o, key, klen);
    return run(r, &o);
}

static rt_store_status memcache_remove(request_rec *r, const unsigned char *key,
                                       apr_size_t klen)
{
    mc_op o = {.op = OP_DELETE};

    make_key(&o, key, klen);
    return run(r, &o);
}

const rt_native_store rt_memcache_native = {
    post_config, memcache_get, memcache_put, memcache_remove,
    NULL,        NULL,         NULL,         all_down};
