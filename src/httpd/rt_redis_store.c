#include "rt_redis_store.h"
#include "rt_outage.h"
#include "rt_redis.h"

#include "http_log.h"
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <openssl/err.h>

APLOG_USE_MODULE(runai_token);

#define MAX_ADDRS 16
#define POOL_MAX 64
#define DEFAULT_PORT 6379
#define SENTINEL_PORT 26379
#define REDIS_TIMEOUT apr_time_from_msec(1000)
/* WATCH conflicts an update retries before it gives up (503), waiting a
 * random while, longer with each try, between them: concurrent copies of
 * one token (a client that retries in parallel) take turns. */
#define UPDATE_TRIES 64
#define UPDATE_PAUSE_US 200

typedef struct {
    rt_redis *c;
    unsigned epoch;
    int fresh; /* made for this request, not taken from the pool */
} conn;

/* The configuration (reset for each generation) and this process's
 * connections. */
static struct {
    int used;
    int sentinel;
    const char *master; /* sentinel: the master's name */
    rt_redis_addr addrs[MAX_ADDRS];
    int naddr;
    const char *desc; /* for log lines */
    apr_interval_time_t timeout;
    const char *user, *password;
    const char *tls_ca, *tls_cert, *tls_key;
    int replicas;
    apr_interval_time_t wait;
    SSL_CTX *ctx;
    rt_redis_opts opts;  /* of the master */
    rt_redis_opts sopts; /* of sentinels: no AUTH */
    /* Per process. */
    apr_thread_mutex_t *lock;
    rt_redis *idle[POOL_MAX];
    int nidle;
    unsigned epoch;
    rt_backoff retry; /* after a connection could not be made */
    int last_good;
} R;

int rt_redis_store_names(const char *name)
{
    return strcmp(name, "redis") == 0 || strcmp(name, "redis-sentinel") == 0;
}

void rt_redis_store_pre_config(void)
{
    memset(&R, 0, sizeof(R));
    R.timeout = REDIS_TIMEOUT;
}

const char *rt_redis_store_configure(apr_pool_t *p, const char *name,
                                     const char *args)
{
    char err[RT_REDIS_ERRLEN];
    const char *list = args ? args : "";
    int sentinel = strcmp(name, "redis-sentinel") == 0;

    if (sentinel) {
        const char *at = ap_strchr_c(list, '@');

        if (at == NULL || at == list) {
            return "redis-sentinel needs MASTER@HOST[:PORT][,HOST[:PORT]...] "
                   "(the master's name as the sentinels know it)";
        }
        R.master = apr_pstrmemdup(p, list, at - list);
        list = at + 1;
    }
    R.naddr = rt_redis_parse_addrs(
        list, sentinel ? SENTINEL_PORT : DEFAULT_PORT, R.addrs, MAX_ADDRS, err);
    if (R.naddr < 0) {
        R.naddr = 0;
        return apr_psprintf(p, "%s: %s", list, err);
    }
    R.used = 1;
    R.sentinel = sentinel;
    R.desc = sentinel ? apr_psprintf(p, "redis master '%s' of sentinels %s",
                                     R.master, list)
                      : apr_psprintf(p, "redis %s", list);
    return NULL;
}

static const char *parse_ms(cmd_parms *cmd, const char *arg,
                            apr_interval_time_t *out, int allow_zero)
{
    char *end;
    apr_int64_t ms = apr_strtoi64(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || ms < (allow_zero ? 0 : 1) ||
        ms > 60000) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a number of milliseconds from "
                            "%d to 60000",
                            cmd->cmd->name, arg, allow_zero ? 0 : 1);
    }
    *out = apr_time_from_msec(ms);
    return NULL;
}

const char *rt_redis_store_set_timeout(cmd_parms *cmd, void *dc,
                                       const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    return err ? err : parse_ms(cmd, arg, &R.timeout, 0);
}

/* A secret given as file:PATH is the file's first line, read at start
 * (as root: the file can stay private). */
static const char *read_secret(cmd_parms *cmd, const char *arg,
                               const char **out)
{
    apr_file_t *f;
    char line[1024];
    const char *path;
    apr_size_t n;

    if (strncmp(arg, "file:", 5) != 0) {
        *out = arg;
        return NULL;
    }
    path = ap_server_root_relative(cmd->temp_pool, arg + 5);
    if (path == NULL || apr_file_open(&f, path, APR_FOPEN_READ, 0,
                                      cmd->temp_pool) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: cannot read %s", cmd->cmd->name,
                            arg + 5);
    }
    line[0] = '\0';
    apr_file_gets(line, sizeof(line), f);
    apr_file_close(f);
    n = strcspn(line, "\r\n");
    if (n == 0) {
        return apr_psprintf(cmd->pool, "%s: %s is empty", cmd->cmd->name,
                            arg + 5);
    }
    *out = apr_pstrmemdup(cmd->pool, line, n);
    return NULL;
}

const char *rt_redis_store_set_auth(cmd_parms *cmd, void *dc, const char *a1,
                                    const char *a2)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    R.user = a2 ? a1 : NULL;
    return read_secret(cmd, a2 ? a2 : a1, &R.password);
}

const char *rt_redis_store_set_tls(cmd_parms *cmd, void *dc, int argc,
                                   char *const argv[])
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (argc == 1 && strcasecmp(argv[0], "off") == 0) {
        R.tls_ca = R.tls_cert = R.tls_key = NULL;
        return NULL;
    }
    if (argc != 1 && argc != 3) {
        return apr_psprintf(cmd->pool,
                            "%s takes CAFILE [CERTFILE KEYFILE], or off",
                            cmd->cmd->name);
    }
    R.tls_ca = ap_server_root_relative(cmd->pool, argv[0]);
    R.tls_cert = argc == 3 ? ap_server_root_relative(cmd->pool, argv[1]) : NULL;
    R.tls_key = argc == 3 ? ap_server_root_relative(cmd->pool, argv[2]) : NULL;
    return NULL;
}

const char *rt_redis_store_set_replicas(cmd_parms *cmd, void *dc, const char *n,
                                        const char *ms)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    char *end;
    apr_int64_t v = apr_strtoi64(n, &end, 10);

    (void)dc;
    if (err != NULL) {
        return err;
    }
    if (*n == '\0' || *end != '\0' || v < 0 || v > 16) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a number of replicas from 0 to 16",
                            cmd->cmd->name, n);
    }
    R.replicas = (int)v;
    return ms ? parse_ms(cmd, ms, &R.wait, 1) : NULL;
}

static apr_status_t free_ctx(void *data)
{
    (void)data;
    SSL_CTX_free(R.ctx);
    R.ctx = NULL;
    return APR_SUCCESS;
}

static int tls_setup(apr_pool_t *pconf, server_rec *s)
{
    char buf[160];

    R.ctx = SSL_CTX_new(TLS_client_method());
    if (R.ctx == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "RunaiTokenRedisTLS: cannot make a TLS context");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, NULL, free_ctx, apr_pool_cleanup_null);
    SSL_CTX_set_min_proto_version(R.ctx, TLS1_2_VERSION);
    if (SSL_CTX_load_verify_locations(R.ctx, R.tls_ca, NULL) != 1 ||
        (R.tls_cert != NULL &&
         (SSL_CTX_use_certificate_chain_file(R.ctx, R.tls_cert) != 1 ||
          SSL_CTX_use_PrivateKey_file(R.ctx, R.tls_key, SSL_FILETYPE_PEM) !=
              1 ||
          SSL_CTX_check_private_key(R.ctx) != 1))) {
        ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
        ERR_clear_error();
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "RunaiTokenRedisTLS: cannot load %s%s%s: %s", R.tls_ca,
                     R.tls_cert ? " or " : "", R.tls_cert ? R.tls_cert : "",
                     buf);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int post_config(apr_pool_t *pconf, server_rec *s)
{
    if (!R.used) {
        return OK;
    }
    if (R.tls_ca != NULL && tls_setup(pconf, s) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* WAIT's reply is read under the command timeout: it must come
     * first. */
    if (R.wait == 0) {
        R.wait = R.timeout / 2;
    }
    if (R.replicas > 0 && R.wait >= R.timeout) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "RunaiTokenRedisReplicas: waiting %" APR_TIME_T_FMT
                     " ms for replicas needs a RunaiTokenRedisTimeout above "
                     "it (now %" APR_TIME_T_FMT " ms)",
                     apr_time_as_msec(R.wait), apr_time_as_msec(R.timeout));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    R.opts.timeout = R.sopts.timeout = R.timeout;
    R.opts.user = R.user;
    R.opts.password = R.password;
    R.opts.tls = R.sopts.tls = R.ctx;
    return OK;
}

static apr_status_t close_idle(void *data)
{
    (void)data;
    for (int i = 0; i < R.nidle; i++) {
        rt_redis_close(R.idle[i]);
    }
    R.nidle = 0;
    R.lock = NULL;
    return APR_SUCCESS;
}

void rt_redis_store_child_init(apr_pool_t *p, server_rec *s)
{
    if (!R.used) {
        return;
    }
    R.nidle = 0;
    if (apr_thread_mutex_create(&R.lock, APR_THREAD_MUTEX_DEFAULT, p) !=
        APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "cannot create the redis connection pool's lock");
        R.lock = NULL;
    }
    apr_pool_cleanup_register(p, NULL, close_idle, apr_pool_cleanup_null);
}

static void pool_lock(void)
{
    if (R.lock != NULL) {
        apr_thread_mutex_lock(R.lock);
    }
}

static void pool_unlock(void)
{
    if (R.lock != NULL) {
        apr_thread_mutex_unlock(R.lock);
    }
}

static void note(request_rec *r, const char *fmt, const char *what)
{
    const char *msg = apr_psprintf(r->pool, fmt, what);

    rt_store_note_error(r, msg);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, "session store (%s): %s",
                  R.desc, msg);
}

/* ROLE on a new connection: only a master is used. */
static int is_master(rt_redis *c, char err[RT_REDIS_ERRLEN])
{
    const char *argv[1] = {"ROLE"};
    size_t lens[1] = {4};
    redisReply *rep = rt_redis_command(c, err, 1, argv, lens);
    int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
             rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(rep->element[0]->str, "master") == 0;

    if (rep != NULL && !ok) {
        apr_snprintf(err, RT_REDIS_ERRLEN, "not a master (ROLE: %.40s)",
                     rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                             rep->element[0]->type == REDIS_REPLY_STRING
                         ? rep->element[0]->str
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                      : "?");
    }
    freeReplyObject(rep);
    return ok;
}

/* The master's address from the first sentinel that knows it. */
static int ask_sentinels(rt_redis_addr *out, char err[RT_REDIS_ERRLEN])
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", R.master};
    size_t lens[3] = {8, 23, strlen(R.master)};

    for (int k = 0; k < R.naddr; k++) {
        int i = (R.last_good + k) % R.naddr;
        rt_redis *c =
            rt_redis_connect(R.addrs[i].host, R.addrs[i].port, &R.sopts, err);
        redisReply *rep = c ? rt_redis_command(c, err, 3, argv, lens) : NULL;
        int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
                 rep->elements == 2 &&
                 rep->element[0]->type == REDIS_REPLY_STRING &&
                 rep->element[1]->type == REDIS_REPLY_STRING &&
                 rep->element[0]->len < sizeof(out->host);

        if (ok) {
            apr_cpystrn(out->host, rep->element[0]->str, sizeof(out->host));
            out->port = atoi(rep->element[1]->str);
            R.last_good = i;
        } else if (rep != NULL) {
            apr_snprintf(err, RT_REDIS_ERRLEN,
                         "sentinel %s:%d does not know master '%.60s'",
                         R.addrs[i].host, R.addrs[i].port, R.master);
        }
        freeReplyObject(rep);
        rt_redis_close(c);
        if (ok) {
            return 1;
        }
    }
    return 0;
}

static rt_redis *connect_master(char err[RT_REDIS_ERRLEN])
{
    rt_redis_addr m;
    rt_redis *c;

    if (R.sentinel) {
        if (!ask_sentinels(&m, err)) {
            return NULL;
        }
        c = rt_redis_connect(m.host, m.port, &R.opts, err);
        if (c != NULL && !is_master(c, err)) {
            rt_redis_close(c);
            c = NULL;
        }
        return c;
    }
    for (int k = 0; k < R.naddr; k++) {
        int i = (R.last_good + k) % R.naddr;

        c = rt_redis_connect(R.addrs[i].host, R.addrs[i].port, &R.opts, err);
        if (c != NULL && is_master(c, err)) {
            R.last_good = i;
            return c;
        }
        rt_redis_close(c);
    }
    return NULL;
}

/* A connection: one from the pool, or a new one to the master (unless the
 * last try failed less than the backoff ago). */
static int acquire(request_rec *r, conn *out)
{
    char err[RT_REDIS_ERRLEN] = "";

    pool_lock();
    out->epoch = R.epoch;
    if (R.nidle > 0) {
        out->c = R.idle[--R.nidle];
        out->fresh = 0;
        pool_unlock();
        return 1;
    }
    pool_unlock();
    if (rt_backoff_waiting(&R.retry, apr_time_now())) {
        note(r, "%s", "not reconnecting yet (the last try failed)");
        return 0;
    }
    out->c = connect_master(err);
    out->fresh = 1;
    if (out->c == NULL) {
        rt_backoff_failed(&R.retry, apr_time_now());
        note(r, "cannot connect: %s", err);
        return 0;
    }
    rt_backoff_reset(&R.retry);
    return 1;
}

static void release(conn *k)
{
    pool_lock();
    if (k->epoch == R.epoch && R.nidle < POOL_MAX) {
        R.idle[R.nidle++] = k->c;
        k->c = NULL;
    }
    pool_unlock();
    rt_redis_close(k->c);
    k->c = NULL;
}

/* A connection broke: it and every pooled one made before it go (a
 * restarted or demoted server breaks them all). */
static void discard(conn *k)
{
    rt_redis *old[POOL_MAX];
    int n;

    pool_lock();
    n = R.nidle;
    memcpy(old, R.idle, sizeof(rt_redis *) * (apr_size_t)n);
    R.nidle = 0;
    R.epoch++;
    pool_unlock();
    for (int i = 0; i < n; i++) {
        rt_redis_close(old[i]);
    }
    rt_redis_close(k->c);
    k->c = NULL;
}

/* An operation on one connection: returns its status, or sets *broken
 * (with err) when the connection must go. */
typedef rt_store_status (*op_fn)(request_rec *r, rt_redis *c, void *baton,
                                 int *broken, char err[RT_REDIS_ERRLEN]);

/* Runs op on a connection; when a pooled connection breaks (a server
 * restarted, failed over or timed out), once more on a new one. */
static rt_store_status with_conn(request_rec *r, op_fn op, void *baton)
{
    conn k;
    char err[RT_REDIS_ERRLEN];
    rt_store_status st;
    int broken;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (!acquire(r, &k)) {
            return RT_STORE_DOWN;
        }
        broken = 0;
        err[0] = '\0';
        st = op(r, k.c, baton, &broken, err);
        if (!broken) {
            release(&k);
            return st;
        }
        discard(&k);
        note(r, "%s", err);
        if (k.fresh) {
            break;
        }
    }
    return RT_STORE_DOWN;
}

/* An error reply breaks the connection: READONLY (a demoted master),
 * LOADING, MASTERDOWN, NOREPLICAS and the like all mean "not here". */
static int reply_error(const redisReply *rep, char err[RT_REDIS_ERRLEN])
{
    if (rep->type != REDIS_REPLY_ERROR) {
        return 0;
    }
    apr_snprintf(err, RT_REDIS_ERRLEN, "the server answered: %.100s", rep->str);
    return 1;
}

/* WAIT's reply: the write reached R.replicas replicas; else the
 * connection is dropped (a master that lost its replicas, or an old
 * master that came back alone, is not written to). */
static int fenced(const redisReply *rep, char err[RT_REDIS_ERRLEN])
{
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= R.replicas) {
        return 1;
    }
    if (!reply_error(rep, err)) {
        apr_snprintf(
            err, RT_REDIS_ERRLEN,
            "the write reached %" APR_INT64_T_FMT " of %d replicas in time",
            (apr_int64_t)(rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1),
            R.replicas);
    }
    return 0;
}

static void append_wait(rt_redis *c, char *buf)
{
    const char *argv[3] = {"WAIT", buf, buf + 16};
    size_t lens[3];

    apr_snprintf(buf, 16, "%d", R.replicas);
    apr_snprintf(buf + 16, 16, "%" APR_TIME_T_FMT, apr_time_as_msec(R.wait));
    lens[0] = 4;
    lens[1] = strlen(argv[1]);
    lens[2] = strlen(argv[2]);
    rt_redis_append(c, 3, argv, lens);
}

typedef struct {
    const unsigned char *key;
    apr_size_t klen;
    unsigned char *buf;
    unsigned int *len;
    apr_int64_t exp;
    const char *val;
    apr_size_t vlen;
    const char *cmd; /* GET, GETDEL, DEL */
    rt_native_update_fn fn;
    void *ctx;
} op_args;

static rt_store_status copy_value(const redisReply *rep, op_args *a)
{
    if (rep->type == REDIS_REPLY_NIL) {
        return RT_STORE_NOTFOUND;
    }
    if (rep->type != REDIS_REPLY_STRING || rep->len > *a->len) {
        return RT_STORE_NOTFOUND; /* not a record of ours */
    }
    memcpy(a->buf, rep->str, rep->len);
    *a->len = (unsigned int)rep->len;
    return RT_STORE_OK;
}

/* Sends the queued commands, and WAIT when fence and replicas are asked
 * for, and reads their n (+1) replies into rep. 0, with *broken set and
 * nothing to free, when the connection broke, a reply is an error
 * (READONLY, LOADING...: no master to use) or the writes did not reach
 * the replicas; else the number of replies, to be freed. */
static int exchange(rt_redis *c, redisReply **rep, int n, int fence,
                    int *broken, char err[RT_REDIS_ERRLEN])
{
    char wbuf[32];
    int wait = fence && R.replicas > 0, i;

    if (wait) {
        append_wait(c, wbuf);
        n++;
    }
    if (!rt_redis_exchange(c, rep, n, err)) {
        *broken = 1;
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (reply_error(rep[i], err) ||
            (wait && i == n - 1 && !fenced(rep[i], err))) {
            rt_redis_free_replies(rep, n);
            *broken = 1;
            return 0;
        }
    }
    return n;
}

/* GET, GETDEL or DEL of one key; writes (GETDEL, DEL) then WAIT. */
static rt_store_status op_key(request_rec *r, rt_redis *c, void *baton,
                              int *broken, char err[RT_REDIS_ERRLEN])
{
    op_args *a = baton;
    const char *argv[2] = {a->cmd, (const char *)a->key};
    size_t lens[2] = {strlen(a->cmd), a->klen};
    redisReply *rep[2];
    rt_store_status st;
    int n;

    (void)r;
    rt_redis_append(c, 2, argv, lens);
    n = exchange(c, rep, 1, strcmp(a->cmd, "GET") != 0, broken, err);
    if (n == 0) {
        return RT_STORE_DOWN;
    }
    if (a->buf != NULL) {
        st = copy_value(rep[0], a);
    } else {
        st = rep[0]->type == REDIS_REPLY_INTEGER && rep[0]->integer > 0
                 ? RT_STORE_OK
                 : RT_STORE_NOTFOUND;
    }
    rt_redis_free_replies(rep, n);
    return st;
}

/* SET with its expiry (EXAT), then WAIT. */
static rt_store_status op_put(request_rec *r, rt_redis *c, void *baton,
                              int *broken, char err[RT_REDIS_ERRLEN])
{
    op_args *a = baton;
    char exat[24];
    const char *argv[5] = {"SET", (const char *)a->key, a->val, "EXAT", exat};
    size_t lens[5] = {3, a->klen, a->vlen, 4, 0};
    redisReply *rep[2];
    int n;

    (void)r;
    apr_snprintf(exat, sizeof(exat), "%" APR_INT64_T_FMT, a->exp);
    lens[4] = strlen(exat);
    rt_redis_append(c, 5, argv, lens);
    n = exchange(c, rep, 1, 1, broken, err);
    rt_redis_free_replies(rep, n);
    return n ? RT_STORE_OK : RT_STORE_DOWN;
}

/* WAIT alone: this master still has its replicas. */
static rt_store_status op_fence(request_rec *r, rt_redis *c, void *baton,
                                int *broken, char err[RT_REDIS_ERRLEN])
{
    redisReply *rep[1];
    int n = exchange(c, rep, 0, 1, broken, err);

    (void)r;
    (void)baton;
    rt_redis_free_replies(rep, n);
    return n ? RT_STORE_NOTFOUND : RT_STORE_DOWN;
}

static void pause_a_little(int tries)
{
    unsigned char b[2] = {0, 0};
    apr_interval_time_t most =
        (apr_interval_time_t)UPDATE_PAUSE_US * (tries < 8 ? tries + 1 : 8);

    apr_generate_random_bytes(b, sizeof(b));
    apr_sleep(((apr_interval_time_t)((b[0] << 8) | b[1]) * most) / 65536);
}

/* WATCH, GET; the new value; MULTI, SET, EXEC (and WAIT). EXEC answers
 * nil when another writer changed the record after WATCH: again, with
 * what it wrote. */
static rt_store_status op_update(request_rec *r, rt_redis *c, void *baton,
                                 int *broken, char err[RT_REDIS_ERRLEN])
{
    op_args *a = baton;
    const char *watch[2] = {"WATCH", (const char *)a->key};
    const char *get[2] = {"GET", (const char *)a->key};
    const char *multi[1] = {"MULTI"}, *exec[1] = {"EXEC"},
               *unwatch[1] = {"UNWATCH"};
    size_t klens[2] = {5, a->klen}, glens[2] = {3, a->klen};
    size_t mlen[1] = {5}, elen[1] = {4}, ulen[1] = {7};
    redisReply *rep[4];
    char exat[24];

    for (int tries = 0; tries < UPDATE_TRIES; tries++) {
        const char *val = NULL;
        apr_size_t vlen = 0;
        apr_int64_t exp = 0;
        int n, ok, found;

        rt_redis_append(c, 2, watch, klens);
        rt_redis_append(c, 2, get, glens);
        if (exchange(c, rep, 2, 0, broken, err) == 0) {
            return RT_STORE_DOWN;
        }
        found = rep[1]->type == REDIS_REPLY_STRING;
        if (!found && rep[1]->type != REDIS_REPLY_NIL) {
            rt_redis_free_replies(rep, 2);
            apr_cpystrn(err, "GET answered neither a value nor nil",
                        RT_REDIS_ERRLEN);
            *broken = 1;
            return RT_STORE_DOWN;
        }
        ok = a->fn(r, a->ctx, found ? (const unsigned char *)rep[1]->str : NULL,
                   found ? rep[1]->len : 0, &val, &vlen, &exp);
        rt_redis_free_replies(rep, 2);
        if (!ok || val == NULL) {
            /* Nothing to write; a miss is believed from a master that
             * still has its replicas only. */
            rt_redis_append(c, 1, unwatch, ulen);
            n = exchange(c, rep, 1, 1, broken, err);
            rt_redis_free_replies(rep, n);
            return n && ok ? RT_STORE_OK : RT_STORE_DOWN;
        }
        {
            const char *set[5] = {"SET", (const char *)a->key, val, "EXAT",
                                  exat};
            size_t slens[5] = {3, a->klen, vlen, 4, 0};

            apr_snprintf(exat, sizeof(exat), "%" APR_INT64_T_FMT, exp);
            slens[4] = strlen(exat);
            rt_redis_append(c, 1, multi, mlen);
            rt_redis_append(c, 5, set, slens);
            rt_redis_append(c, 1, exec, elen);
        }
        n = exchange(c, rep, 3, 1, broken, err);
        if (n == 0) {
            return RT_STORE_DOWN;
        }
        if (rep[2]->type == REDIS_REPLY_ARRAY) {
            /* EXEC ran the SET: its reply is the one element. */
            int set_ok = rep[2]->elements == 1 &&
                         rt_redis_is_status(rep[2]->element[0], "OK");

            if (!set_ok) {
                apr_snprintf(err, RT_REDIS_ERRLEN, "SET in EXEC: %.100s",
                             rep[2]->elements == 1 &&
                                     rep[2]->element[0]->type ==
                                         REDIS_REPLY_ERROR
                                 ? rep[2]->element[0]->str
                                 : "unexpected reply");
                *broken = 1;
            }
            rt_redis_free_replies(rep, n);
            return set_ok ? RT_STORE_OK : RT_STORE_DOWN;
        }
        if (rep[2]->type != REDIS_REPLY_NIL) {
            apr_cpystrn(err, "EXEC answered neither the results nor nil",
                        RT_REDIS_ERRLEN);
            rt_redis_free_replies(rep, n);
            *broken = 1;
            return RT_STORE_DOWN;
        }
        rt_redis_free_replies(rep, n); /* EXEC nil: changed meanwhile */
        pause_a_little(tries);
    }
    note(r, "%s",
         "the record kept changing under the update: too much contention");
    return RT_STORE_DOWN;
}

static rt_store_status redis_get(request_rec *r, const unsigned char *key,
                                 apr_size_t klen, unsigned char *buf,
                                 unsigned int *len)
{
    op_args a = {
        .key = key, .klen = klen, .buf = buf, .len = len, .cmd = "GET"};

    return with_conn(r, op_key, &a);
}

static rt_store_status redis_take(request_rec *r, const unsigned char *key,
                                  apr_size_t klen, unsigned char *buf,
                                  unsigned int *len)
{
    op_args a = {
        .key = key, .klen = klen, .buf = buf, .len = len, .cmd = "GETDEL"};

    return with_conn(r, op_key, &a);
}

static rt_store_status redis_remove(request_rec *r, const unsigned char *key,
                                    apr_size_t klen)
{
    op_args a = {.key = key, .klen = klen, .cmd = "DEL"};

    return with_conn(r, op_key, &a);
}

static rt_store_status redis_put(request_rec *r, const unsigned char *key,
                                 apr_size_t klen, apr_int64_t exp,
                                 const char *val, apr_size_t len)
{
    op_args a = {.key = key, .klen = klen, .exp = exp, .val = val, .vlen = len};

    return with_conn(r, op_put, &a);
}

static rt_store_status redis_update(request_rec *r, const unsigned char *key,
                                    apr_size_t klen, rt_native_update_fn fn,
                                    void *ctx)
{
    op_args a = {.key = key, .klen = klen, .fn = fn, .ctx = ctx};

    return with_conn(r, op_update, &a);
}

static rt_store_status redis_confirm_miss(request_rec *r)
{
    return R.replicas > 0 ? with_conn(r, op_fence, NULL) : RT_STORE_NOTFOUND;
}

const rt_native_store rt_redis_native = {
    post_config, redis_get,    redis_put,          redis_remove,
    redis_take,  redis_update, redis_confirm_miss, NULL};
