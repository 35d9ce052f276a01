#include "rt_session.h"
#include "rt_config.h"
#include "rt_crypto.h"
#include "rt_monitor.h"
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

/* The material of a user's force-logout record: users are named by their
 * issuer and sub, so that a force logout on one virtual host does not reach
 * a user of the same name on another. */
static const char *user_material(apr_pool_t *p, const char *issuer,
                                 const char *sub)
{
    return apr_pstrcat(p, issuer, "\n", sub, NULL);
}

/* Whether a login began before the last logout of all its user's
 * sessions (marker: that user's record, or NULL). */
static int logged_out(const json_t *marker, const rt_login *l)
{
    apr_int64_t out =
        marker ? json_integer_value(json_object_get(marker, "out")) : 0;

    return out > 0 && out >= l->started;
}

/* A session ended on demand is marked by a record of its own under the
 * session's digest (kind RT_REC_ENDED), written once and never rewritten:
 * a rotation that rewrites the session's record on another host at the
 * same moment cannot undo it. */
static rt_store_status put_end(request_rec *r,
                               const unsigned char digest[RT_SHA256_LEN],
                               apr_int64_t keep)
{
    json_t *end = json_pack("{s:I}", "at", (json_int_t)apr_time_now());
    rt_store_step put = {.op = RT_STORE_PUT,
                         .kind = RT_REC_ENDED,
                         .digest = digest,
                         .put = end,
                         .exp = keep};

    rt_store_steps(r, &put, 1);
    json_decref(end);
    return put.st;
}

rt_session_state rt_session_login_state(request_rec *r, const char *issuer,
                                        const rt_login *l)
{
    rt_store_step get = {.op = RT_STORE_GET,
                         .kind = RT_REC_USER,
                         .material = user_material(r->pool, issuer, l->sub)};

    rt_store_steps(r, &get, 1);
    return get.st == RT_STORE_DOWN  ? RT_SESSION_UNKNOWN
           : logged_out(get.got, l) ? RT_SESSION_ENDED
                                    : RT_SESSION_LIVE;
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
    state_set(data, &s);
    st = rt_store_put(r, RT_REC_SESSION, handle, session_exp, data);
    json_decref(data);
    return st;
}

/* A token of the format before sessions had one record: its login starts a
 * session of the current kind, so an upgrade ends no session. */
static rt_refresh_status legacy(request_rec *r, const char *issuer,
                                const char *token, rt_session_check_fn check,
                                void *baton, rt_login *login, const char **next)
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
    switch (rt_session_login_state(r, issuer, login)) {
    case RT_SESSION_ENDED:
        return RT_REFRESH_INVALID;
    case RT_SESSION_UNKNOWN:
        return RT_REFRESH_DOWN;
    default:
        break;
    }
    if (rt_session_start(r, login, login->session_exp, next) != RT_STORE_OK) {
        return RT_REFRESH_DOWN;
    }
    rt_monitor_event(r, RT_CEV_ROTATION); /* the old token is spent */
    return RT_REFRESH_OK;
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
    if (s.revoked && *exp < rt_config_keep_ended(0)) {
        /* Ended now: kept while its access tokens live, for the guard. */
        *exp = rt_config_keep_ended(0);
    }
    return json_incref(old);
}

rt_refresh_status rt_session_refresh(request_rec *r, const char *issuer,
                                     const char *token, rt_refresh_rules *rules,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next,
                                     apr_int64_t *wait)
{
    rt_refresh_parts t;
    unsigned char digest[RT_SHA256_LEN];
    rotation o = {&t, NULL, rules, RT_RS_REVOKED, 0, 0, 0};
    json_t *data = NULL;
    rt_store_status st;

    if (ap_strchr_c(token, '.') == NULL) {
        return legacy(r, issuer, token, check, baton, login, next);
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
    if (!rt_crypto_sha256(t.handle, strlen(t.handle), digest)) {
        return RT_REFRESH_DOWN;
    }
    {
        /* The session's end and its user's logout of all sessions are read
         * in the same turn: a session ended at this very moment may still
         * rotate here, but the answer is a refusal, and its tokens are
         * refused from then on. */
        rt_store_step u[3] = {
            {.op = RT_STORE_GET,
             .kind = RT_REC_USER,
             .material = user_material(r->pool, issuer, login->sub)},
            {.op = RT_STORE_GET, .kind = RT_REC_ENDED, .digest = digest},
            {.op = RT_STORE_UPDATE,
             .kind = RT_REC_SESSION,
             .material = t.handle,
             .fn = rotate,
             .baton = &o,
             .confirm_miss = 1}};

        rt_store_steps(r, u, 3);
        st = u[0].st == RT_STORE_DOWN || u[1].st == RT_STORE_DOWN
                 ? RT_STORE_DOWN
                 : u[2].st;
        if (st == RT_STORE_OK && u[1].got != NULL) {
            return RT_REFRESH_INVALID; /* revoked or logged out */
        }
        if (st == RT_STORE_OK && logged_out(u[0].got, login)) {
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
        /* Also as an end of its own, which no rotation elsewhere undoes. */
        put_end(r, digest, rt_config_keep_ended(0));
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
        rt_monitor_event(r, RT_CEV_ROTATION);
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

rt_store_status rt_session_end(request_rec *r, const char *sid,
                               apr_int64_t keep)
{
    unsigned char digest[RT_SHA256_LEN];

    if (!rt_refresh_sid_digest(r->pool, sid, digest)) {
        return RT_STORE_NOTFOUND;
    }
    return put_end(r, digest, keep);
}

rt_refresh_status rt_session_revoke(request_rec *r, const char *token,
                                    rt_session_check_fn check, void *baton,
                                    apr_int64_t keep)
{
    rt_refresh_parts t;
    rt_login login;
    unsigned char digest[RT_SHA256_LEN];
    rt_store_step u = {
        .op = RT_STORE_GET, .kind = RT_REC_SESSION, .confirm_miss = 1};

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
    if (!rt_refresh_authentic(
            r->pool, &t, json_string_value(json_object_get(u.got, "seed"))) ||
        !rt_login_from_json(r->pool, u.got, &login)) {
        return RT_REFRESH_INVALID;
    }
    if (check != NULL && !check(r, &login, baton)) {
        return RT_REFRESH_REFUSED;
    }
    if (!rt_crypto_sha256(t.handle, strlen(t.handle), digest)) {
        return RT_REFRESH_DOWN;
    }
    return put_end(r, digest, keep) == RT_STORE_OK ? RT_REFRESH_OK
                                                   : RT_REFRESH_DOWN;
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
    rt_store_step s[3] = {
        {.op = RT_STORE_GET, .kind = RT_REC_SESSION, .digest = digest},
        {.op = RT_STORE_GET, .kind = RT_REC_ENDED, .digest = digest},
        {.op = RT_STORE_GET,
         .kind = RT_REC_USER,
         .material = user_material(r->pool, issuer, sub)}};
    rt_login l = {0};

    if (!rt_refresh_sid_digest(r->pool, sid, digest)) {
        return RT_SESSION_LIVE; /* not one of ours: nothing to look at */
    }
    rt_store_steps(r, s, 3);
    if (s[0].st == RT_STORE_DOWN || s[1].st == RT_STORE_DOWN ||
        s[2].st == RT_STORE_DOWN) {
        return RT_SESSION_UNKNOWN;
    }
    if (s[1].got != NULL ||
        (s[0].got != NULL && json_is_true(json_object_get(s[0].got, "rv")))) {
        return RT_SESSION_ENDED;
    }
    /* When the session's record is gone, the token's time stands for the
     * session's start. */
    if (s[0].got == NULL || !rt_login_from_json(r->pool, s[0].got, &l)) {
        l.started = iat * APR_USEC_PER_SEC;
    }
    return logged_out(s[2].got, &l) ? RT_SESSION_ENDED : RT_SESSION_LIVE;
}
