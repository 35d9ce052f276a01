#include "rt_throttle.h"

#include "http_log.h"
#include <apr_strings.h>
#include <locale.h>
#include <string.h>
#include <wctype.h>

APLOG_USE_MODULE(runai_token);

/* The policy (docs/operations.md, "Throttling"), for RunaiTokenThrottle
 * ATTEMPTS SECONDS. Three counters, each with a window that starts with
 * its first count and lasts SECONDS, and a space of its own for users,
 * applications and clients:
 *   - the pair (principal, address): ATTEMPTS failures, and no more than
 *     ATTEMPTS attempts in flight and failed together: the hard bound;
 *   - the principal, from all addresses: past FACTOR x ATTEMPTS failures it
 *     refuses the addresses that have failed for it, never one that has
 *     not (so guessers elsewhere do not lock the owner out);
 *   - the address, for all principals: FACTOR x ATTEMPTS failures.
 * The pair's record that decides (PAIR_OWN) is this host's own, read and
 * written only under the mutex (rt_store_step.local). With a store other
 * hosts share, a shared record of the pair's failures comes with it: each
 * host admits at most ATTEMPTS, and a failure anywhere counts everywhere.
 * The principal's, the address's and the shared pair's records count
 * failures only: updated when an attempt fails, and read (beside a shared
 * store) without the mutex. */
#define FACTOR 10
/* While attempts in flight might reach the limit, a request polls the
 * store this often, this long at most. */
#define POLL_USEC (20 * 1000)
#define WAIT_USEC (5 * APR_USEC_PER_SEC)

static const char *const space_names[] = {"user", "app", "client", "device"};

/* --- the canonical form of a principal ------------------------------------ */

/* C.UTF-8 for towlower_l and iswspace_l, made in each child before it
 * serves and freed with it; NULL where the C library has none (then only
 * ASCII is folded). */
static locale_t utf8_loc;

static apr_status_t free_locale(void *data)
{
    (void)data;
    if (utf8_loc != (locale_t)0) {
        freelocale(utf8_loc);
        utf8_loc = (locale_t)0;
    }
    return APR_SUCCESS;
}

void rt_throttle_child_init(apr_pool_t *p, server_rec *s)
{
    (void)s;
    utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    apr_pool_cleanup_register(p, NULL, free_locale, apr_pool_cleanup_null);
}

static locale_t utf8_locale(void)
{
    return utf8_loc;
}

/* A byte that does not start well-formed UTF-8 stays as it is. */
#define RAW_BYTE 0x80000000u

static apr_size_t utf8_decode(const unsigned char *s, apr_size_t n,
                              apr_uint32_t *cp)
{
    apr_uint32_t c = s[0];
    apr_size_t len = 0;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        c &= 0x07;
    }
    if (len == 0 || len > n) {
        *cp = RAW_BYTE | s[0];
        return 1;
    }
    for (apr_size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = RAW_BYTE | s[0];
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) ||
        (len == 4 && (c < 0x10000 || c > 0x10FFFF))) {
        *cp = RAW_BYTE | s[0];
        return 1;
    }
    *cp = c;
    return len;
}

static char *utf8_encode(char *o, apr_uint32_t c)
{
    if (c & RAW_BYTE) {
        *o++ = (char)(c & 0xFF);
    } else if (c < 0x80) {
        *o++ = (char)c;
    } else if (c < 0x800) {
        *o++ = (char)(0xC0 | (c >> 6));
        *o++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *o++ = (char)(0xE0 | (c >> 12));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (c >> 18));
        *o++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *o++ = (char)(0x80 | (c & 0x3F));
    }
    return o;
}

static int is_space(apr_uint32_t c, locale_t loc)
{
    if (c & RAW_BYTE) {
        return 0;
    }
    if (c < 0x80) {
        return c == ' ' || (c >= '\t' && c <= '\r');
    }
    return loc != NULL && iswspace_l((wint_t)c, loc);
}

static apr_uint32_t fold(apr_uint32_t c, locale_t loc)
{
    wint_t l;

    if (c & RAW_BYTE) {
        return c;
    }
    if (c < 0x80) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
    }
    if (loc == NULL) {
        return c;
    }
    l = towlower_l((wint_t)c, loc);
    return l > 0 && l <= 0x10FFFF && (l < 0xD800 || l > 0xDFFF)
               ? (apr_uint32_t)l
               : c;
}

/* The principal as the counters know it: white space around it trimmed,
 * letters in lower case (all of Unicode where the C library has C.UTF-8,
 * else ASCII), so that "dave", "Dave" and " DAVE" share counters. */
static const char *canonical(apr_pool_t *p, const char *name)
{
    const unsigned char *s = (const unsigned char *)name;
    apr_size_t n = strlen(name), i = 0, k = 0, first, last;
    apr_uint32_t *cps = apr_palloc(p, (n + 1) * sizeof(*cps));
    locale_t loc = utf8_locale();
    char *out = apr_palloc(p, 4 * n + 1), *o = out;

    while (i < n) {
        i += utf8_decode(s + i, n - i, &cps[k++]);
    }
    for (first = 0; first < k && is_space(cps[first], loc); first++) {
    }
    for (last = k; last > first && is_space(cps[last - 1], loc); last--) {
    }
    for (i = first; i < last; i++) {
        o = utf8_encode(o, fold(cps[i], loc));
    }
    *o = '\0';
    return out;
}

/* --- counters ---------------------------------------------------------------
 */

/* A counter as read at one moment: failures and, for the pair, attempts
 * in flight. */
typedef struct {
    apr_int64_t f, p, until;
} count;

static apr_int64_t now_sec(void)
{
    return apr_time_sec(apr_time_now());
}

static apr_int64_t field(const json_t *d, const char *name)
{
    apr_int64_t v = json_integer_value(json_object_get(d, name));

    return v > 0 ? v : 0;
}

/* Zero when absent or past its window. */
static count read_count(const json_t *d, apr_int64_t now)
{
    count c = {0, 0, 0};

    if (d != NULL && field(d, "until") > now) {
        c.f = field(d, "f");
        c.p = field(d, "p");
        c.until = field(d, "until");
    }
    return c;
}

/* A counter at zero starts a new window when it counts again. */
static void open_window(count *c, apr_int64_t now, int seconds)
{
    if (c->until <= now || (c->f == 0 && c->p == 0)) {
        c->f = c->p = 0;
        c->until = now + seconds;
    }
}

static json_t *write_count(const count *c, apr_int64_t *exp)
{
    *exp = c->until;
    return json_pack("{s:I,s:I,s:I}", "f", (json_int_t)c->f, "p",
                     (json_int_t)c->p, "until", (json_int_t)c->until);
}

enum { PRINCIPAL, ADDRESS, PAIR_SHARED, PAIR_OWN, RECORDS };

typedef enum { ADMIT, WAIT, REFUSE } verdict;

struct rt_throttle {
    const char *principal; /* as given, for the log line */
    int limit, seconds;
    int shared; /* other hosts share the store: PAIR_SHARED is used */
    const char *material[RECORDS];
    count seen[RECORDS];
    apr_int64_t now;
    verdict v;
    apr_int64_t wait;  /* REFUSE: seconds left in the refusing window */
    apr_int64_t until; /* the window of PAIR_OWN the attempt is in */
    int verified;      /* no provider is asked: nothing is put in flight */
};

typedef struct {
    rt_throttle *t;
    int which;
    rt_throttle_outcome outcome;
} step_baton;

static void refuse(rt_throttle *t, const count *c)
{
    t->v = REFUSE;
    if (c->until - t->now > t->wait) {
        t->wait = c->until - t->now;
    }
}

/* Beside a shared store, a first turn reads the counters of failures:
 * PRINCIPAL, ADDRESS and PAIR_SHARED, as plain reads without the mutex.
 * 0 when the store did not answer. */
static int read_counters(request_rec *r, rt_throttle *t)
{
    rt_store_step s[3];
    int which[3], n = 0;

    which[n++] = PRINCIPAL;
    which[n++] = ADDRESS;
    if (t->shared) {
        which[n++] = PAIR_SHARED;
    }
    memset(s, 0, sizeof(s));
    for (int i = 0; i < n; i++) {
        s[i].op = RT_STORE_GET;
        s[i].kind = RT_REC_THROTTLE;
        s[i].material = t->material[which[i]];
    }
    rt_store_steps(r, s, n);
    for (int i = 0; i < n; i++) {
        if (s[i].st == RT_STORE_DOWN) {
            return 0;
        }
        t->seen[which[i]] =
            read_count(s[i].st == RT_STORE_OK ? s[i].got : NULL, t->now);
    }
    return 1;
}

/* Under the mutex, a read-modify-write of PAIR_OWN decides with what was
 * read and, when admitted, counts the attempt in flight. Only this host
 * writes PAIR_OWN (a shmcb of its own beside a shared store), so on this
 * host no more attempts are in flight and failed than the limit. With a
 * store of this host (runai-shm, shmcb, dbm), PRINCIPAL and ADDRESS are read in
 * the same turn, by steps that write nothing. */
static json_t *reserve_step(request_rec *r, json_t *old, void *baton,
                            apr_int64_t *exp)
{
    step_baton *b = baton;
    rt_throttle *t = b->t;
    count own = read_count(old, t->now);
    const count *pr = &t->seen[PRINCIPAL], *ad = &t->seen[ADDRESS];
    const count *sh = &t->seen[PAIR_SHARED];
    apr_int64_t failed;

    (void)r;
    if (b->which != PAIR_OWN) {
        t->seen[b->which] = own; /* read only, for the decision below */
        return NULL;
    }
    failed = own.f > sh->f ? own.f : sh->f;
    t->v = ADMIT;
    if (own.f >= t->limit) {
        refuse(t, &own);
    }
    if (sh->f >= t->limit) {
        refuse(t, sh);
    }
    if (ad->f >= (apr_int64_t)FACTOR * t->limit) {
        refuse(t, ad);
    }
    /* The principal's ceiling spares an address that has not failed. */
    if (pr->f >= (apr_int64_t)FACTOR * t->limit && failed > 0) {
        refuse(t, pr);
    }
    if (t->v == REFUSE) {
        return NULL;
    }
    /* A verified credential is no guess: it takes no place in flight and
     * need not wait for the attempts there. */
    if (t->verified) {
        return NULL;
    }
    /* Were all attempts in flight here to fail, would they reach a limit?
     * Then their outcome decides. */
    if (own.f + own.p >= t->limit || sh->f + own.p >= t->limit ||
        (own.p > 0 && pr->f >= (apr_int64_t)FACTOR * t->limit)) {
        t->v = WAIT;
        return NULL;
    }
    open_window(&own, t->now, t->seconds);
    own.p++;
    t->until = own.until;
    return write_count(&own, exp);
}

/* Settling: the attempt leaves PAIR_OWN's in-flight count (in the window
 * it entered); a failure counts everywhere, a success clears the pair. */
static json_t *settle_step(request_rec *r, json_t *old, void *baton,
                           apr_int64_t *exp)
{
    step_baton *b = baton;
    rt_throttle *t = b->t;
    count c = read_count(old, t->now);
    int changed = 0;

    (void)r;
    if (b->which == PAIR_OWN && !t->verified && c.until == t->until &&
        c.p > 0) {
        c.p--;
        changed = 1;
    }
    if (b->outcome == RT_THROTTLE_FAILED) {
        open_window(&c, t->now, t->seconds);
        c.f++;
        changed = 1;
    } else if (b->outcome == RT_THROTTLE_GRANTED && c.f > 0 &&
               (b->which == PAIR_OWN || b->which == PAIR_SHARED)) {
        c.f = 0;
        changed = 1;
    }
    return changed ? write_count(&c, exp) : NULL;
}

/* The records a settle touches, in order; returns their number. */
static int settle_records(const rt_throttle *t, rt_throttle_outcome o,
                          int *which)
{
    int n = 0;

    which[n++] = PAIR_OWN;
    if (o == RT_THROTTLE_FAILED) {
        if (t->shared) {
            which[n++] = PAIR_SHARED;
        }
        which[n++] = PRINCIPAL;
        which[n++] = ADDRESS;
    } else if (o == RT_THROTTLE_GRANTED && t->shared &&
               t->seen[PAIR_SHARED].f > 0) {
        which[n++] = PAIR_SHARED; /* its failures are cleared */
    }
    return n;
}

static void run_turn(request_rec *r, rt_throttle *t, const int *which, int n,
                     rt_store_update_fn fn, rt_throttle_outcome o,
                     rt_store_step *steps)
{
    step_baton *b = apr_pcalloc(r->pool, (apr_size_t)n * sizeof(*b));

    memset(steps, 0, (apr_size_t)n * sizeof(*steps));
    for (int i = 0; i < n; i++) {
        b[i].t = t;
        b[i].which = which[i];
        b[i].outcome = o;
        steps[i].op = RT_STORE_UPDATE;
        steps[i].kind = RT_REC_THROTTLE;
        steps[i].material = t->material[which[i]];
        steps[i].fn = fn;
        steps[i].baton = &b[i];
        steps[i].local = which[i] == PAIR_OWN;
    }
    rt_store_steps(r, steps, n);
}

static void log_refusal(request_rec *r, const rt_throttle *t, apr_int64_t wait)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "throttled: too many failed attempts from %s for "
                  "principal %s; retry after %" APR_INT64_T_FMT " s",
                  r->useragent_ip, ap_escape_logitem(r->pool, t->principal),
                  wait);
}

apr_int64_t rt_throttle_reserve(request_rec *r, const rt_dir_conf *dc,
                                rt_throttle_space space, const char *principal,
                                int verified, rt_throttle **res)
{
    int seconds, limit = rt_config_throttle(dc, &seconds);
    int which[RECORDS], n = 0;
    rt_store_step steps[RECORDS];
    apr_time_t deadline = apr_time_now() + WAIT_USEC;
    const char *canon, *ip = r->useragent_ip, *pair;
    rt_throttle *t;

    *res = NULL;
    if (limit == 0) {
        return 0;
    }
    t = apr_pcalloc(r->pool, sizeof(*t));
    t->principal = principal;
    t->verified = verified;
    t->limit = limit;
    t->seconds = seconds;
    t->shared = rt_store_shared();
    canon = canonical(r->pool, principal);
    /* The address has no spaces: each material reads one way only. */
    pair = apr_pstrcat(r->pool, "pair ", space_names[space], " ", ip, " ",
                       canon, NULL);
    t->material[PRINCIPAL] = apr_pstrcat(r->pool, "principal ",
                                         space_names[space], " ", canon, NULL);
    t->material[ADDRESS] = apr_pstrcat(r->pool, "address ", ip, NULL);
    t->material[PAIR_SHARED] = pair;
    t->material[PAIR_OWN] = pair; /* a record of this host's own */
    if (!t->shared) {
        which[n++] = PRINCIPAL;
        which[n++] = ADDRESS;
    }
    which[n++] = PAIR_OWN;
    for (;;) {
        t->now = now_sec();
        t->v = ADMIT;
        t->wait = 0;
        if (t->shared && !read_counters(r, t)) {
            return 0; /* the store did not answer: nothing is counted */
        }
        run_turn(r, t, which, n, reserve_step, RT_THROTTLE_FAILED, steps);
        if (steps[n - 1].st != RT_STORE_OK) {
            return 0;
        }
        if (t->v == ADMIT) {
            *res = t;
            return 0;
        }
        if (t->v == REFUSE) {
            log_refusal(r, t, t->wait > 0 ? t->wait : 1);
            return t->wait > 0 ? t->wait : 1;
        }
        if (apr_time_now() >= deadline) {
            /* Not a line for fail2ban: nothing failed yet. */
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "throttle: attempts for principal %s from %s "
                          "still in flight after %d s; retry after 1 s",
                          ap_escape_logitem(r->pool, t->principal),
                          r->useragent_ip, (int)(WAIT_USEC / APR_USEC_PER_SEC));
            return 1;
        }
        apr_sleep(POLL_USEC);
    }
}

void rt_throttle_settle(request_rec *r, rt_throttle *t,
                        rt_throttle_outcome outcome)
{
    int which[RECORDS];
    rt_store_step steps[RECORDS];
    int n;

    if (t == NULL) {
        return;
    }
    /* A verified attempt put nothing in flight: a success has only the
     * pair's failures to clear, and none were seen. */
    if (t->verified && outcome == RT_THROTTLE_GRANTED &&
        t->seen[PAIR_OWN].f == 0 && t->seen[PAIR_SHARED].f == 0) {
        return;
    }
    t->now = now_sec();
    n = settle_records(t, outcome, which);
    run_turn(r, t, which, n, settle_step, outcome, steps);
}

rt_error *rt_throttle_error(request_rec *r, rt_throttle_space space,
                            apr_int64_t wait)
{
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, wait));
    return rt_error_make(r->pool,
                         space == RT_THROTTLE_USER ||
                                 space == RT_THROTTLE_DEVICE
                             ? RT_ERR_THROTTLED
                             : RT_ERR_THROTTLED_CLIENT,
                         "too many failed attempts", NULL);
}
