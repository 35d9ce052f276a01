#include "rt_session.h"
#include "rt_crypto.h"
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

/* When the session began, in microseconds: a logout of all the user's
 * sessions at a later time ends it. A login made by this request began
 * when the request came; a code's began when the code was minted. */
static apr_int64_t session_start(request_rec *r, const rt_login *login)
{
    return login->auth_time == apr_time_sec(r->request_time)
               ? (apr_int64_t)r->request_time
               : login->auth_time * APR_USEC_PER_SEC;
}

/* The session's start as its record says (records made before it said
 * so: the login's time). */
static apr_int64_t record_start(const json_t *o)
{
    json_t *st = json_object_get(o, "st");

    return st ? json_integer_value(st)
              : json_integer_value(json_object_get(o, "auth_time")) *
                    APR_USEC_PER_SEC;
}

/* The material of a user's force-logout record: users are named by their
 * issuer and sub, so that a force logout on one virtual host does not reach
 * a user of the same name on another. */
static const char *user_material(apr_pool_t *p, const char *issuer,
                                 const char *sub)
{
    return apr_pstrcat(p, issuer, "\n", sub, NULL);
}

/* The time before which every session of a user has ended: 0 for none. */
static apr_int64_t user_out(const json_t *marker)
{
    return marker ? json_integer_value(json_object_get(marker, "out")) : 0;
}

rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token)
{
    const char *handle = rt_random_id(r->pool, RT_REFRESH_HANDLE_BYTES);
    const char *seed = rt_random_id(r->pool, RT_REFRESH_SEED_BYTES);
    rt_refresh_state s = {1, apr_time_sec(r->request_time), 0, 0, 0};
    rt_login kept = *login; /* without what only a code carries */
    json_t *data;
    rt_store_status st;

    login->session_exp = kept.session_exp = session_exp;
    kept.nonce = kept.external = kept.redirect_uri = kept.challenge = NULL;
    *token = rt_refresh_token(r->pool, handle, seed, s.gen);
    login->sid = *token ? rt_refresh_sid(r->pool, handle) : NULL;
    data = login->sid ? rt_login_to_json(&kept) : NULL;
    if (data == NULL) {
        return RT_STORE_DOWN;
    }
    json_object_set_new(data, "seed", json_string(seed));
    json_object_set_new(data, "st", json_integer(session_start(r, login)));
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

rt_refresh_status rt_session_refresh(request_rec *r, const char *issuer,
                                     const char *token, rt_refresh_rules *rules,
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
        /* The user's logout of all sessions is read in the same turn: a
         * session it ended may still rotate here, but its tokens are
         * refused all the same (they name a session begun before it). */
        rt_store_step u[2] = {
            {.op = RT_STORE_GET,
             .kind = RT_REC_USER,
             .material = user_material(r->pool, issuer, login->sub)},
            {.op = RT_STORE_UPDATE,
             .kind = RT_REC_SESSION,
             .material = t.handle,
             .fn = rotate,
             .baton = &o,
             .confirm_miss = 1}};

        rt_store_steps(r, u, 2);
        st = u[0].st == RT_STORE_DOWN ? RT_STORE_DOWN : u[1].st;
        if (st == RT_STORE_OK && user_out(u[0].got) > 0 &&
            user_out(u[0].got) >= record_start(data)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "refresh session ended by a logout of all the "
                          "user's sessions");
            return RT_REFRESH_INVALID;
        }
    }
    if (st != RT_STORE_OK) {
        return st == RT_STORE_NOTFOUND ? RT_REFRESH_INVALID : RT_REFRESH_DOWN;
    }
    if (!o.found) {
        return RT_REFRESH_INVALID; /* ended since the first read */
    }
    login->sid = rt_refresh_sid(r->pool, t.handle);
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

/* Marks a session ended: its refresh tokens and, through the guard, its
 * access tokens are refused from now on. The record stays until keep (or
 * its own end, if later), for the guard to see. */
typedef struct {
    const char *seed; /* NULL: any session under the key */
    apr_int64_t keep;
    int found;
} ending;

static json_t *end_fn(request_rec *r, json_t *old, void *baton,
                      apr_int64_t *exp)
{
    ending *e = baton;
    const char *seed = json_string_value(json_object_get(old, "seed"));
    apr_int64_t sexp = json_integer_value(json_object_get(old, "sexp"));

    (void)r;
    e->found = old != NULL && seed != NULL &&
               (e->seed == NULL || strcmp(seed, e->seed) == 0);
    if (!e->found || json_is_true(json_object_get(old, "rv"))) {
        return NULL; /* nothing, or already ended */
    }
    json_object_set_new(old, "rv", json_true());
    *exp = sexp > e->keep ? sexp : e->keep;
    return json_incref(old);
}

static rt_store_status end_record(request_rec *r, rt_store_step *u, ending *e)
{
    u->op = RT_STORE_UPDATE;
    u->kind = RT_REC_SESSION;
    u->fn = end_fn;
    u->baton = e;
    u->confirm_miss = 1;
    rt_store_steps(r, u, 1);
    return u->st == RT_STORE_OK && !e->found ? RT_STORE_NOTFOUND : u->st;
}

rt_store_status rt_session_end(request_rec *r, const char *sid,
                               apr_int64_t keep)
{
    unsigned char digest[RT_SHA256_LEN];
    ending e = {NULL, keep, 0};
    rt_store_step u = {.digest = digest};

    if (!rt_refresh_sid_digest(r->pool, sid, digest)) {
        return RT_STORE_NOTFOUND;
    }
    return end_record(r, &u, &e);
}

rt_refresh_status rt_session_revoke(request_rec *r, const char *token,
                                    rt_session_check_fn check, void *baton,
                                    apr_int64_t keep)
{
    rt_refresh_parts t;
    rt_login login;
    ending e = {NULL, keep, 0};
    rt_store_step u = {
        .op = RT_STORE_GET, .kind = RT_REC_SESSION, .confirm_miss = 1};
    rt_store_status st;

    if (ap_strchr_c(token, '.') == NULL) {
        /* A token of the earlier format: removing it ends its session,
         * once its client rules allow. */
        u.kind = RT_REC_REFRESH;
        u.material = token;
        rt_store_steps(r, &u, 1);
        if (u.st != RT_STORE_OK) {
            return u.st == RT_STORE_NOTFOUND ? RT_REFRESH_INVALID
                                             : RT_REFRESH_DOWN;
        }
        if (!rt_login_from_json(r->pool, u.got, &login)) {
            return RT_REFRESH_INVALID;
        }
        if (check != NULL && !check(r, &login, baton)) {
            return RT_REFRESH_REFUSED;
        }
        u.op = RT_STORE_REMOVE;
        rt_store_steps(r, &u, 1);
        return u.st == RT_STORE_DOWN ? RT_REFRESH_DOWN : RT_REFRESH_OK;
    }
    if (!rt_refresh_parse(r->pool, token, &t)) {
        return RT_REFRESH_INVALID;
    }
    u.material = t.handle;
    rt_store_steps(r, &u, 1);
    if (u.st != RT_STORE_OK) {
        return u.st == RT_STORE_NOTFOUND ? RT_REFRESH_INVALID : RT_REFRESH_DOWN;
    }
    e.seed = json_string_value(json_object_get(u.got, "seed"));
    if (!rt_refresh_authentic(r->pool, &t, e.seed) ||
        !rt_login_from_json(r->pool, u.got, &login)) {
        return RT_REFRESH_INVALID;
    }
    if (check != NULL && !check(r, &login, baton)) {
        return RT_REFRESH_REFUSED;
    }
    e.seed = apr_pstrdup(r->pool, e.seed);
    st = end_record(r, &u, &e);
    return st == RT_STORE_OK     ? RT_REFRESH_OK
           : st == RT_STORE_DOWN ? RT_REFRESH_DOWN
                                 : RT_REFRESH_INVALID;
}

rt_store_status rt_session_end_user(request_rec *r, const char *issuer,
                                    const char *sub, apr_int64_t keep)
{
    json_t *marker = json_pack("{s:I}", "out", (json_int_t)apr_time_now());
    rt_store_status st = rt_store_put(
        r, RT_REC_USER, user_material(r->pool, issuer, sub), keep, marker);

    json_decref(marker);
    return st;
}

rt_session_state rt_session_look(request_rec *r, const char *sid,
                                 const char *issuer, const char *sub,
                                 apr_int64_t iat)
{
    unsigned char digest[RT_SHA256_LEN];
    rt_store_step s[2] = {
        {.op = RT_STORE_GET, .kind = RT_REC_SESSION, .digest = digest},
        {.op = RT_STORE_GET,
         .kind = RT_REC_USER,
         .material = user_material(r->pool, issuer, sub)}};
    apr_int64_t out;

    if (!rt_refresh_sid_digest(r->pool, sid, digest)) {
        return RT_SESSION_LIVE; /* not one of ours: nothing to look at */
    }
    rt_store_steps(r, s, 2);
    if (s[0].st == RT_STORE_DOWN || s[1].st == RT_STORE_DOWN) {
        return RT_SESSION_UNKNOWN;
    }
    if (s[0].got != NULL && json_is_true(json_object_get(s[0].got, "rv"))) {
        return RT_SESSION_ENDED;
    }
    out = user_out(s[1].got);
    if (out > 0 &&
        out >= (s[0].got ? record_start(s[0].got) : iat * APR_USEC_PER_SEC)) {
        return RT_SESSION_ENDED;
    }
    return RT_SESSION_LIVE;
}
