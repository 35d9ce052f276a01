#include "rt_throttle.h"

#include "http_log.h"
#include <apr_strings.h>
#include <string.h>

APLOG_USE_MODULE(runai_token);

/* A remote address may fail this many times the principal limit. */
#define ADDRESS_FACTOR 10

static const char *principal_key(request_rec *r, const char *principal)
{
    return apr_pstrcat(r->pool, "principal:", principal, NULL);
}

static const char *address_key(request_rec *r)
{
    return apr_pstrcat(r->pool, "address:", r->useragent_ip, NULL);
}

/* Seconds left in a counter's window when it has reached limit, else 0. */
static apr_int64_t blocked_for(request_rec *r, rt_store_status st,
                               const json_t *d, int limit)
{
    apr_int64_t now = apr_time_sec(r->request_time);
    apr_int64_t until;

    if (st != RT_STORE_OK) {
        return 0;
    }
    until = json_integer_value(json_object_get(d, "until"));
    if (json_integer_value(json_object_get(d, "n")) < limit || until <= now) {
        return 0;
    }
    return until - now;
}

apr_int64_t rt_throttle_check(request_rec *r, const rt_dir_conf *dc,
                              const char *principal, int *counted)
{
    int seconds, limit = rt_config_throttle(dc, &seconds);
    rt_store_step t[2];
    apr_int64_t a, b;

    *counted = 0;
    if (limit == 0) {
        return 0;
    }
    /* Both counters in one turn of the store's mutex, where it has one. */
    memset(t, 0, sizeof(t));
    t[0].op = t[1].op = RT_STORE_GET;
    t[0].kind = t[1].kind = RT_REC_THROTTLE;
    t[0].material = principal_key(r, principal);
    t[1].material = address_key(r);
    rt_store_steps(r, t, 2);
    *counted = t[0].st == RT_STORE_OK;
    a = blocked_for(r, t[0].st, t[0].got, limit);
    b = blocked_for(r, t[1].st, t[1].got, limit * ADDRESS_FACTOR);
    if (a == 0 && b == 0) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                  "throttled: too many failed attempts from %s for "
                  "principal %s; retry after %" APR_INT64_T_FMT " s",
                  r->useragent_ip, ap_escape_logitem(r->pool, principal),
                  a > b ? a : b);
    return a > b ? a : b;
}

typedef struct {
    int seconds;
} count_baton;

static json_t *count_one(request_rec *r, json_t *old, void *baton,
                         apr_int64_t *exp)
{
    count_baton *b = baton;
    apr_int64_t now = apr_time_sec(r->request_time);
    apr_int64_t until = now + b->seconds, n = 1;

    if (old != NULL &&
        json_integer_value(json_object_get(old, "until")) > now) {
        until = json_integer_value(json_object_get(old, "until"));
        n = json_integer_value(json_object_get(old, "n")) + 1;
    }
    *exp = until;
    return json_pack("{s:I,s:I}", "n", (json_int_t)n, "until",
                     (json_int_t)until);
}

void rt_throttle_failed(request_rec *r, const rt_dir_conf *dc,
                        const char *principal)
{
    count_baton b;
    int limit = rt_config_throttle(dc, &b.seconds);

    if (limit == 0) {
        return;
    }
    rt_store_update(r, RT_REC_THROTTLE, principal_key(r, principal), count_one,
                    &b);
    rt_store_update(r, RT_REC_THROTTLE, address_key(r), count_one, &b);
}

void rt_throttle_succeeded(request_rec *r, const rt_dir_conf *dc,
                           const char *principal)
{
    int seconds;

    if (rt_config_throttle(dc, &seconds) != 0) {
        rt_store_remove(r, RT_REC_THROTTLE, principal_key(r, principal));
    }
}

rt_error *rt_throttle_error(request_rec *r, apr_int64_t wait)
{
    apr_table_setn(r->err_headers_out, "Retry-After",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, wait));
    return rt_error_make(r->pool, RT_ERR_THROTTLED, "too many failed attempts",
                         NULL);
}
