#include "rt_session.h"
#include "rt_util.h"

#include "http_log.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

/* The session's place in the record, beside its login. */
static void state_get(const json_t *o, rt_refresh_state *s)
{
    s->gen = json_integer_value(json_object_get(o, "gen"));
    s->at = json_integer_value(json_object_get(o, "at"));
    s->rate_start = json_integer_value(json_object_get(o, "rs"));
    s->rate_count = json_integer_value(json_object_get(o, "rc"));
    s->revoked = json_is_true(json_object_get(o, "rv"));
}

static void state_set(json_t *o, const rt_refresh_state *s)
{
    json_object_set_new(o, "gen", json_integer(s->gen));
    json_object_set_new(o, "at", json_integer(s->at));
    json_object_set_new(o, "rs", json_integer(s->rate_start));
    json_object_set_new(o, "rc", json_integer(s->rate_count));
    if (s->revoked) {
        json_object_set_new(o, "rv", json_true());
    }
}

rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token)
{
    const char *handle = rt_random_id(r->pool, RT_REFRESH_HANDLE_BYTES);
    const char *seed = rt_random_id(r->pool, RT_REFRESH_SEED_BYTES);
    rt_refresh_state s = {1, apr_time_sec(r->request_time), 0, 0, 0};
    json_t *data;
    rt_store_status st;

    login->session_exp = session_exp;
    login->nonce = login->external = NULL;
    login->redirect_uri = login->challenge = NULL;
    *token = rt_refresh_token(r->pool, handle, seed, s.gen);
    data = *token ? rt_login_to_json(login) : NULL;
    if (data == NULL) {
        return RT_STORE_DOWN;
    }
    json_object_set_new(data, "seed", json_string(seed));
    state_set(data, &s);
    st = rt_store_put(r, RT_REC_SESSION, handle, session_exp, data);
    json_decref(data);
    return st;
}

/* A token of the format before sessions had one record: its login starts a
 * session of the current kind, so an upgrade ends no session. */
static rt_refresh_status legacy(request_rec *r, const char *token,
                                rt_session_check_fn check, void *baton,
                                rt_login *login, const char **next)
{
    json_t *data = NULL;
    rt_store_status st = rt_store_take(r, RT_REC_REFRESH, token, &data);

    if (st == RT_STORE_NOTFOUND) {
        return RT_REFRESH_INVALID;
    }
    if (st != RT_STORE_OK) {
        return RT_REFRESH_DOWN;
    }
    if (!rt_login_from_json(r->pool, data, login)) {
        return RT_REFRESH_INVALID;
    }
    if (check != NULL && !check(r, login, baton)) {
        /* Not this requester's: the token goes back as it was. */
        if (rt_store_put(r, RT_REC_REFRESH, token, login->session_exp, data) !=
            RT_STORE_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "a refused refresh token could not be put back: "
                          "its session ends");
        }
        return RT_REFRESH_REFUSED;
    }
    return rt_session_start(r, login, login->session_exp, next) == RT_STORE_OK
               ? RT_REFRESH_OK
               : RT_REFRESH_DOWN;
}

/* One refresh under the store's mutex: the record as it is now decides. */
typedef struct {
    const rt_refresh_parts *t;
    const char *seed; /* of the record the token was checked against */
    const rt_refresh_rules *rules;
    rt_refresh_verdict verdict;
    apr_int64_t issue;
    apr_int64_t behind; /* the record's generation, when behind the token */
    int found;
} rotation;

static json_t *rotate(request_rec *r, json_t *old, void *baton,
                      apr_int64_t *exp)
{
    rotation *o = baton;
    rt_refresh_state s;
    const char *seed = json_string_value(json_object_get(old, "seed"));

    (void)r;
    /* The same session as the token was checked against (a session's key
     * never changes), not one made since under the same handle. */
    o->found = seed != NULL && strcmp(seed, o->seed) == 0;
    if (!o->found) {
        return NULL;
    }
    state_get(old, &s);
    o->behind = o->t->gen > s.gen ? s.gen : 0;
    o->verdict = rt_refresh_decide(&s, o->t->gen, o->rules, &o->issue);
    if (o->verdict == RT_RS_REVOKED || o->verdict == RT_RS_LIMITED) {
        return NULL;
    }
    state_set(old, &s);
    *exp = json_integer_value(json_object_get(old, "sexp"));
    return json_incref(old);
}

rt_refresh_status rt_session_refresh(request_rec *r, const char *token,
                                     rt_refresh_rules *rules,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next,
                                     apr_int64_t *wait)
{
    rt_refresh_parts t;
    rotation o = {&t, NULL, rules, RT_RS_REVOKED, 0, 0, 0};
    json_t *data = NULL;
    rt_store_status st;

    if (ap_strchr_c(token, '.') == NULL) {
        return legacy(r, token, check, baton, login, next);
    }
    if (!rt_refresh_parse(r->pool, token, &t)) {
        return RT_REFRESH_INVALID;
    }
    /* The login and the client rules first, outside the mutex (the rules
     * may ask an authn provider): a refused refresh changes nothing. */
    {
        rt_store_step get = {.op = RT_STORE_GET,
                             .kind = RT_REC_SESSION,
                             .material = t.handle,
                             .confirm_miss = 1};

        rt_store_steps(r, &get, 1);
        st = get.st;
        data = get.got;
    }
    if (st == RT_STORE_NOTFOUND) {
        return RT_REFRESH_INVALID;
    }
    if (st != RT_STORE_OK) {
        return RT_REFRESH_DOWN;
    }
    o.seed = json_string_value(json_object_get(data, "seed"));
    if (!rt_refresh_authentic(r->pool, &t, o.seed) ||
        !rt_login_from_json(r->pool, data, login)) {
        return RT_REFRESH_INVALID;
    }
    if (check != NULL && !check(r, login, baton)) {
        return RT_REFRESH_REFUSED;
    }
    /* The time of the decision, not of the request: a request that waited
     * on the store while a retry of it rotated the session is a retry. */
    rules->now = apr_time_sec(apr_time_now());
    {
        rt_store_step u = {.op = RT_STORE_UPDATE,
                           .kind = RT_REC_SESSION,
                           .material = t.handle,
                           .fn = rotate,
                           .baton = &o,
                           .confirm_miss = 1};

        rt_store_steps(r, &u, 1);
        st = u.st;
    }
    if (st != RT_STORE_OK) {
        return st == RT_STORE_NOTFOUND ? RT_REFRESH_INVALID : RT_REFRESH_DOWN;
    }
    if (!o.found) {
        return RT_REFRESH_INVALID; /* ended since the first read */
    }
    switch (o.verdict) {
    case RT_RS_REVOKED:
        return RT_REFRESH_INVALID;
    case RT_RS_IDLE:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "refresh session not refreshed for %" APR_INT64_T_FMT
                      " s (RunaiTokenRefreshIdle): ended",
                      rules->idle);
        return RT_REFRESH_INVALID;
    case RT_RS_REUSED:
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "refresh token reused: its session is revoked");
        return RT_REFRESH_REUSED;
    case RT_RS_LIMITED:
        *wait = o.issue > 0 ? o.issue : 1;
        return RT_REFRESH_LIMITED;
    case RT_RS_RETRY:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "refresh token presented again within the retry "
                      "window: its successor is answered again");
        break;
    case RT_RS_ROTATE:
        if (o.behind) {
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          "session record was behind its refresh token "
                          "(generation %" APR_INT64_T_FMT " < %" APR_INT64_T_FMT
                          ": the store lost a write); caught up",
                          o.behind, t.gen);
        }
        break;
    }
    *next = rt_refresh_token(r->pool, t.handle, o.seed, o.issue);
    return *next ? RT_REFRESH_OK : RT_REFRESH_DOWN;
}
