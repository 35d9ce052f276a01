#include "rt_counters.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define MAGIC 0x52544354u /* "RTCT" */
/* Raise when a table below or the layout changes: a kept block of another
 * version is then not reused (its counts are not carried either). */
#define VERSION 1u

/* The grants of the log lines; "-" is a request that named none. */
static const char *const grants[] = {"-",
                                     "app_token",
                                     "password",
                                     "refresh_token",
                                     "exchange_token",
                                     "device_code",
                                     "authorize",
                                     "revoke",
                                     "logout",
                                     "force_logout",
                                     "userinfo",
                                     "device_authorization",
                                     "device_verification",
                                     "other"};
#define NGRANTS (sizeof(grants) / sizeof(grants[0]))

/* The outcomes of the log lines: those of successes (c->outcome), then the
 * log words of the error kinds (rt_error.c; a unit test checks that each
 * has its slot here), and the event each one implies. */
static const struct {
    const char *word;
    int event; /* an rt_counters_event, or -1 */
} outcomes[] = {
    {"granted", -1},
    {"code_issued", -1},
    {"revoked", RT_CEV_REVOCATION},
    {"unknown_token", -1},
    {"logged_out", RT_CEV_LOGOUT},
    {"no_session", -1},
    {"userinfo", -1},
    {"no_token", -1},
    {"device_code_issued", -1},
    {"device_approved", -1},
    {"device_denied", -1},
    {"device_page", -1},
    {"bad_request", -1},
    {"not_found", -1},
    {"method_not_allowed", -1},
    {"unsupported", -1},
    {"not_enabled", -1},
    {"unknown_client", -1},
    {"invalid_client", -1},
    {"invalid_credentials", -1},
    {"invalid_code", -1},
    {"invalid_token", -1},
    {"reused", RT_CEV_REUSE},
    {"pkce_failed", -1},
    {"redirect_mismatch", -1},
    {"client_mismatch", -1},
    {"throttled", RT_CEV_THROTTLED},
    {"refresh_rate", -1},
    {"unsupported_token", -1},
    {"forbidden", -1},
    {"user_refused", -1},
    {"directory_unavailable", -1},
    {"unauthorized_client", -1},
    {"invalid_user_code", -1},
    {"pending", -1},
    {"slow_down", -1},
    {"expired", -1},
    {"denied", -1},
    {"store_unavailable", -1},
    {"error", -1},
    {"other", -1},
};
#define NOUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))

/* The guard's refusals: the reason of its log line, and its label. */
static const struct {
    const char *reason;
    const char *label;
} reasons[] = {
    {"no_token", "no_token"},
    {"empty", "empty"},
    {"token too long", "too_long"},
    {"not a JWS compact serialization", "not_jws"},
    {"malformed header", "malformed_header"},
    {"header without alg, or with crit", "bad_header"},
    {"kid is not a string", "bad_kid"},
    {"no key with this kid", "unknown_kid"},
    {"alg does not match the key", "alg_mismatch"},
    {"bad signature", "bad_signature"},
    {"malformed claims", "malformed_claims"},
    {"no exp", "no_exp"},
    {"expired", "expired"},
    {"not yet valid", "not_yet_valid"},
    {"issued in the future", "issued_in_future"},
    {"wrong issuer", "wrong_issuer"},
    {"wrong audience", "wrong_audience"},
    {"no user claim", "no_user_claim"},
    {"its session has ended", "session_ended"},
    {"insufficient_scope", "insufficient_scope"},
    {"other", "other"},
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

/* Upper bounds of the store latency buckets, in microseconds, and as the
 * le label (seconds); a last bucket counts the rest (+Inf). */
static const apr_int64_t bounds[] = {500,   1000,  2500,   5000,   10000,
                                     25000, 50000, 100000, 250000, 1000000};
static const char *const bound_labels[] = {"0.0005", "0.001", "0.0025", "0.005",
                                           "0.01",   "0.025", "0.05",   "0.1",
                                           "0.25",   "1"};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

typedef struct {
    char name[RT_COUNTERS_NAME_MAX];
    apr_uint64_t events[RT_CEV__COUNT];
    apr_uint64_t refused[NREASONS];
    apr_uint64_t latency[NBOUNDS + 1]; /* per bucket, not cumulative */
    apr_uint64_t latency_us;           /* the sum */
    apr_uint64_t answers[];            /* [route][grant][outcome] */
} host;

struct rt_counters {
    apr_uint32_t magic, version, nvhosts, nroutes;
    apr_uint64_t stride; /* bytes of a host, a multiple of 64 */
};

#define HEAD_SIZE ((sizeof(rt_counters) + 63) & ~(apr_size_t)63)

static apr_size_t stride_of(int nroutes)
{
    apr_size_t n = sizeof(host) + (apr_size_t)nroutes * NGRANTS * NOUTCOMES *
                                      sizeof(apr_uint64_t);

    return (n + 63) & ~(apr_size_t)63;
}

apr_size_t rt_counters_size(int nvhosts, int nroutes)
{
    return HEAD_SIZE + (apr_size_t)nvhosts * stride_of(nroutes);
}

static host *host_at(const rt_counters *c, int v)
{
    return (host *)((char *)c + HEAD_SIZE + (apr_size_t)v * c->stride);
}

rt_counters *rt_counters_init(void *mem, int nvhosts, int nroutes)
{
    rt_counters *c = mem;

    memset(mem, 0, rt_counters_size(nvhosts, nroutes));
    c->magic = MAGIC;
    c->version = VERSION;
    c->nvhosts = (apr_uint32_t)nvhosts;
    c->nroutes = (apr_uint32_t)nroutes;
    c->stride = stride_of(nroutes);
    return c;
}

void rt_counters_set_name(rt_counters *c, int v, const char *name)
{
    host *h = host_at(c, v);

    strncpy(h->name, name, sizeof(h->name) - 1);
    h->name[sizeof(h->name) - 1] = '\0';
}

static int same_shape(const rt_counters *a, const rt_counters *b)
{
    return a->magic == MAGIC && b->magic == MAGIC && a->version == VERSION &&
           b->version == VERSION && a->nroutes == b->nroutes &&
           a->stride == b->stride;
}

int rt_counters_same(const rt_counters *c, int nvhosts, int nroutes,
                     const char *const *names)
{
    rt_counters want = {MAGIC, VERSION, (apr_uint32_t)nvhosts,
                        (apr_uint32_t)nroutes, stride_of(nroutes)};

    if (!same_shape(c, &want) || c->nvhosts != want.nvhosts) {
        return 0;
    }
    for (int v = 0; v < nvhosts; v++) {
        if (strncmp(host_at(c, v)->name, names[v], RT_COUNTERS_NAME_MAX - 1) !=
            0) {
            return 0;
        }
    }
    return 1;
}

static apr_uint64_t get(const apr_uint64_t *slot)
{
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
}

static void add(apr_uint64_t *slot, apr_uint64_t n)
{
    __atomic_fetch_add(slot, n, __ATOMIC_RELAXED);
}

int rt_counters_carry(rt_counters *to, const rt_counters *from)
{
    int carried = 0;

    if (!same_shape(to, from)) {
        return 0;
    }
    for (apr_uint32_t v = 0; v < to->nvhosts; v++) {
        host *h = host_at(to, (int)v);

        for (apr_uint32_t w = 0; w < from->nvhosts; w++) {
            const host *o = host_at(from, (int)w);
            const apr_uint64_t *src = o->events;
            apr_uint64_t *dst = h->events;
            apr_size_t n =
                (to->stride - offsetof(host, events)) / sizeof(apr_uint64_t);

            if (strcmp(h->name, o->name) != 0) {
                continue;
            }
            for (apr_size_t i = 0; i < n; i++) {
                dst[i] = get(&src[i]);
            }
            carried++;
            break;
        }
    }
    return carried;
}

static int grant_index(const char *word)
{
    for (apr_size_t i = 0; word != NULL && i < NGRANTS - 1; i++) {
        if (strcmp(grants[i], word) == 0) {
            return (int)i;
        }
    }
    return word == NULL ? 0 : (int)NGRANTS - 1;
}

static int outcome_index(const char *word)
{
    for (apr_size_t i = 0; word != NULL && i < NOUTCOMES - 1; i++) {
        if (strcmp(outcomes[i].word, word) == 0) {
            return (int)i;
        }
    }
    return (int)NOUTCOMES - 1;
}

static int reason_index(const char *reason)
{
    for (apr_size_t i = 0; i < NREASONS - 1; i++) {
        if (strcmp(reasons[i].reason, reason) == 0) {
            return (int)i;
        }
    }
    return (int)NREASONS - 1;
}

const char *rt_counters_grant_label(const char *grant)
{
    return grants[grant_index(grant)];
}

const char *rt_counters_outcome_label(const char *outcome)
{
    return outcomes[outcome_index(outcome)].word;
}

const char *rt_counters_reason_label(const char *reason)
{
    return reasons[reason_index(reason)].label;
}

static int valid(const rt_counters *c, int v)
{
    return c != NULL && v >= 0 && (apr_uint32_t)v < c->nvhosts;
}

void rt_counters_answer(rt_counters *c, int v, int route, const char *grant,
                        const char *outcome)
{
    int o = outcome_index(outcome);
    host *h;

    if (!valid(c, v) || route < 0 || (apr_uint32_t)route >= c->nroutes) {
        return;
    }
    h = host_at(c, v);
    add(&h->answers[((apr_size_t)route * NGRANTS +
                     (apr_size_t)grant_index(grant)) *
                        NOUTCOMES +
                    (apr_size_t)o],
        1);
    if (outcomes[o].event >= 0) {
        add(&h->events[outcomes[o].event], 1);
    }
}

void rt_counters_count(rt_counters *c, int v, rt_counters_event e)
{
    if (valid(c, v) && e < RT_CEV__COUNT) {
        add(&host_at(c, v)->events[e], 1);
    }
}

void rt_counters_store(rt_counters *c, int v, apr_int64_t usec, int failed)
{
    host *h;
    apr_size_t b = 0;

    if (!valid(c, v)) {
        return;
    }
    h = host_at(c, v);
    usec = usec < 0 ? 0 : usec;
    while (b < NBOUNDS && usec > bounds[b]) {
        b++;
    }
    add(&h->latency[b], 1);
    add(&h->latency_us, (apr_uint64_t)usec);
    if (failed) {
        add(&h->events[RT_CEV_STORE_ERROR], 1);
    }
}

void rt_counters_guard(rt_counters *c, int v, const char *refusal)
{
    if (!valid(c, v)) {
        return;
    }
    if (refusal == NULL) {
        add(&host_at(c, v)->events[RT_CEV_GUARD_ACCEPTED], 1);
    } else {
        add(&host_at(c, v)->refused[reason_index(refusal)], 1);
    }
}

/* --- rendering ----------------------------------------------------------- */

typedef struct {
    rt_counters_format f;
    rt_counters_emit_fn emit;
    void *baton;
} out;

typedef struct {
    const char *k, *v;
} label;

static void emit_str(const out *o, const char *s)
{
    o->emit(o->baton, s, strlen(s));
}

/* A label value, escaped for the format: Prometheus escapes \ " and
 * newlines, ?auto has no blanks (a key ends at ": "), HTML its four. */
static void emit_value(const out *o, const char *v)
{
    const char *run = v;

    for (; *v; v++) {
        const char *esc = NULL;

        if (o->f == RT_COUNTERS_PROMETHEUS) {
            esc = *v == '\\'   ? "\\\\"
                  : *v == '"'  ? "\\\""
                  : *v == '\n' ? "\\n"
                               : NULL;
        } else if (o->f == RT_COUNTERS_AUTO) {
            esc = (unsigned char)*v <= ' ' ? "_" : NULL;
        } else {
            esc = *v == '&'   ? "&amp;"
                  : *v == '<' ? "&lt;"
                  : *v == '>' ? "&gt;"
                  : *v == '"' ? "&quot;"
                              : NULL;
        }
        if (esc != NULL) {
            o->emit(o->baton, run, (apr_size_t)(v - run));
            emit_str(o, esc);
            run = v + 1;
        }
    }
    o->emit(o->baton, run, (apr_size_t)(v - run));
}

static void family(const out *o, const char *name, const char *type,
                   const char *help)
{
    if (o->f == RT_COUNTERS_PROMETHEUS) {
        emit_str(o, "# HELP ");
        emit_str(o, name);
        emit_str(o, " ");
        emit_str(o, help);
        emit_str(o, "\n# TYPE ");
        emit_str(o, name);
        emit_str(o, " ");
        emit_str(o, type);
        emit_str(o, "\n");
    } else if (o->f == RT_COUNTERS_HTML) {
        emit_str(o, "<tr><th colspan=\"3\" align=\"left\">");
        emit_str(o, name);
        emit_str(o, ": ");
        emit_str(o, help);
        emit_str(o, "</th></tr>\n");
    }
}

/* One sample: name{labels} value in the format's shape. */
static void sample(const out *o, const char *name, const label *l, int n,
                   const char *value)
{
    const char *open = o->f == RT_COUNTERS_PROMETHEUS ? "{"
                       : o->f == RT_COUNTERS_AUTO     ? " "
                                                      : "</td><td>";
    const char *sep = o->f == RT_COUNTERS_PROMETHEUS ? ","
                      : o->f == RT_COUNTERS_AUTO     ? " "
                                                     : ", ";
    const char *eq = o->f == RT_COUNTERS_PROMETHEUS ? "=\"" : "=";
    const char *q = o->f == RT_COUNTERS_PROMETHEUS ? "\"" : "";

    emit_str(o, o->f == RT_COUNTERS_HTML ? "<tr><td>" : "");
    emit_str(o, name);
    for (int i = 0; i < n; i++) {
        emit_str(o, i == 0 ? open : sep);
        emit_str(o, l[i].k);
        emit_str(o, eq);
        emit_value(o, l[i].v);
        emit_str(o, q);
    }
    if (o->f == RT_COUNTERS_PROMETHEUS) {
        emit_str(o, n > 0 ? "} " : " ");
    } else {
        emit_str(o, o->f == RT_COUNTERS_AUTO ? ": "
                    : n > 0                  ? "</td><td>"
                                             : "</td><td></td><td>");
    }
    emit_str(o, value);
    emit_str(o, o->f == RT_COUNTERS_HTML ? "</td></tr>\n" : "\n");
}

static void sample_u(const out *o, const char *name, const label *l, int n,
                     apr_uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sample(o, name, l, n, buf);
}

/* A counter per virtual host: one event. */
static void per_host(const rt_counters *c, const out *o, const char *name,
                     const char *help, rt_counters_event e)
{
    family(o, name, "counter", help);
    for (apr_uint32_t v = 0; v < c->nvhosts; v++) {
        const host *h = host_at(c, (int)v);
        label l[] = {{"vhost", h->name}};

        sample_u(o, name, l, 1, get(&h->events[e]));
    }
}

static void answers(const rt_counters *c, const char *const *routes,
                    const out *o)
{
    const char *name = "runai_token_answers_total";

    family(o, name, "counter",
           "Token answers by route, grant and outcome (the words of the "
           "log line)");
    for (apr_uint32_t v = 0; v < c->nvhosts; v++) {
        const host *h = host_at(c, (int)v);

        for (apr_size_t i = 0; i < c->nroutes * NGRANTS * NOUTCOMES; i++) {
            apr_uint64_t n = get(&h->answers[i]);
            label l[] = {{"vhost", h->name},
                         {"route", routes[i / (NGRANTS * NOUTCOMES)]},
                         {"grant", grants[i / NOUTCOMES % NGRANTS]},
                         {"outcome", outcomes[i % NOUTCOMES].word}};

            if (n > 0) {
                sample_u(o, name, l, 4, n);
            }
        }
    }
}

static void latency(const rt_counters *c, const out *o)
{
    family(o, "runai_token_store_latency_seconds", "histogram",
           "Time of the session store's calls (a request's steps in one "
           "turn)");
    for (apr_uint32_t v = 0; v < c->nvhosts; v++) {
        const host *h = host_at(c, (int)v);
        apr_uint64_t snap[NBOUNDS + 1], total = 0;
        label l[] = {{"vhost", h->name}, {"le", NULL}};
        char sum[48];

        /* Cumulative from one snapshot: the +Inf bucket is the count. */
        for (apr_size_t b = 0; b <= NBOUNDS; b++) {
            snap[b] = get(&h->latency[b]);
        }
        for (apr_size_t b = 0; b <= NBOUNDS; b++) {
            total += snap[b];
            l[1].v = b < NBOUNDS ? bound_labels[b] : "+Inf";
            sample_u(o, "runai_token_store_latency_seconds_bucket", l, 2,
                     total);
        }
        snprintf(sum, sizeof(sum), "%.6f", (double)get(&h->latency_us) / 1e6);
        sample(o, "runai_token_store_latency_seconds_sum", l, 1, sum);
        sample_u(o, "runai_token_store_latency_seconds_count", l, 1, total);
    }
}

static void guard(const rt_counters *c, const out *o)
{
    const char *name = "runai_token_guard_refused_total";

    per_host(c, o, "runai_token_guard_accepted_total",
             "Bearer tokens AuthType RunaiToken accepted",
             RT_CEV_GUARD_ACCEPTED);
    family(o, name, "counter",
           "Requests AuthType RunaiToken refused, by reason");
    for (apr_uint32_t v = 0; v < c->nvhosts; v++) {
        const host *h = host_at(c, (int)v);

        for (apr_size_t i = 0; i < NREASONS; i++) {
            label l[] = {{"vhost", h->name}, {"reason", reasons[i].label}};

            sample_u(o, name, l, 2, get(&h->refused[i]));
        }
    }
}

static void gauge(const out *o, const char *name, const char *type,
                  const char *help, apr_uint64_t v)
{
    family(o, name, type, help);
    sample_u(o, name, NULL, 0, v);
}

void rt_counters_render(const rt_counters *c, const char *const *routes,
                        const rt_counters_fill *fill, rt_counters_format f,
                        rt_counters_emit_fn emit, void *baton)
{
    out o = {f, emit, baton};

    if (f == RT_COUNTERS_HTML) {
        emit_str(&o, "<hr>\n<h2>mod_runai_token</h2>\n<table "
                     "border=\"0\">\n");
    }
    if (c != NULL) {
        answers(c, routes, &o);
        per_host(c, &o, "runai_token_refresh_rotations_total",
                 "Refresh tokens rotated (a retry answered again is not one)",
                 RT_CEV_ROTATION);
        per_host(c, &o, "runai_token_reuse_revocations_total",
                 "Sessions revoked because a rotated refresh token was "
                 "shown again",
                 RT_CEV_REUSE);
        per_host(c, &o, "runai_token_revocations_total",
                 "Sessions ended by token revocation (RFC 7009)",
                 RT_CEV_REVOCATION);
        per_host(c, &o, "runai_token_logouts_total",
                 "Logouts and force logouts", RT_CEV_LOGOUT);
        per_host(c, &o, "runai_token_throttled_total",
                 "Token requests refused 429 by throttling", RT_CEV_THROTTLED);
        per_host(c, &o, "runai_token_store_errors_total",
                 "Session store calls that found the store down",
                 RT_CEV_STORE_ERROR);
        latency(c, &o);
        guard(c, &o);
    }
    if (fill != NULL && fill->have) {
        gauge(&o, "runai_token_store_records", "gauge",
              "Records in the default store (runai-shm)", fill->records);
        gauge(&o, "runai_token_store_records_max", "gauge",
              "Records the default store has entries for", fill->records_max);
        gauge(&o, "runai_token_store_slots_used", "gauge",
              "Value slots in use in the default store", fill->slots_used);
        gauge(&o, "runai_token_store_slots", "gauge",
              "Value slots of the default store", fill->slots);
        gauge(&o, "runai_token_store_evictions_total", "counter",
              "Records the default store evicted to make room", fill->evicted);
    }
    if (f == RT_COUNTERS_HTML) {
        emit_str(&o, "</table>\n");
    }
}
