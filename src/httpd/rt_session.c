#include "rt_session.h"
#include "rt_util.h"

#include "http_log.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define SECRET_BYTES 32 /* refresh tokens: 256 random bits */
#define FAMILY_BYTES 16
/* Seconds after a rotation in which the old token is refused without
 * revoking the session: concurrent refreshes, not theft. */
#define REUSE_GRACE 2

/* A new refresh token of login's family and the record to store under
 * it (the caller decrefs it); NULL when no token could be made. */
static json_t *new_refresh(request_rec *r, const rt_login *login,
                           const char **token)
{
    *token = rt_random_id(r->pool, SECRET_BYTES);
    return *token ? rt_login_to_json(login) : NULL;
}

/* Stores login under a new refresh token of its family. */
static rt_store_status issue_refresh(request_rec *r, const rt_login *login,
                                     const char **token)
{
    json_t *data = new_refresh(r, login, token);
    rt_store_status st;

    if (data == NULL) {
        return RT_STORE_DOWN;
    }
    st = rt_store_put(r, RT_REC_REFRESH, *token, login->session_exp, data);
    json_decref(data);
    return st;
}

rt_store_status rt_session_start(request_rec *r, rt_login *login,
                                 apr_int64_t session_exp, const char **token)
{
    login->session_exp = session_exp;
    login->family = rt_random_id(r->pool, FAMILY_BYTES);
    login->nonce = login->external = NULL;
    login->redirect_uri = login->challenge = NULL;
    if (login->family == NULL) {
        return RT_STORE_DOWN;
    }
    return issue_refresh(r, login, token);
}

rt_refresh_status rt_session_refresh(request_rec *r, const char *token,
                                     rt_session_check_fn check, void *baton,
                                     rt_login *login, const char **next)
{
    json_t *data = NULL, *marker;
    rt_store_status st = rt_store_take(r, RT_REC_REFRESH, token, &data);

    if (st == RT_STORE_NOTFOUND) {
        /* A rotated token presented again: someone holds a copy. */
        if (rt_store_get(r, RT_REC_USED, token, &data) != RT_STORE_OK) {
            return RT_REFRESH_INVALID;
        }
        /* Requests that raced with the rotation (a client refreshing from
         * two threads) lose without ending the session; a copy presented
         * later means the token leaked. Revocation is a marker, not the
         * removal of a record, so a cache that evicts old records cannot
         * end live sessions. */
        if (apr_time_sec(r->request_time) -
                json_integer_value(json_object_get(data, "at")) <
            REUSE_GRACE) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "refresh token presented again while it was being "
                          "rotated: refused, session kept");
            return RT_REFRESH_INVALID;
        }
        login->family = rt_login_str(r->pool, data, "fam");
        if (login->family != NULL) {
            json_t *none = json_object();
            rt_store_put(r, RT_REC_REVOKED, login->family,
                         json_integer_value(json_object_get(data, "sexp")),
                         none);
            json_decref(none);
        }
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "refresh token reused: its session is revoked");
        return RT_REFRESH_REUSED;
    }
    if (st != RT_STORE_OK) {
        return RT_REFRESH_DOWN;
    }
    if (!rt_login_from_json(r->pool, data, login) || login->family == NULL) {
        return RT_REFRESH_INVALID;
    }
    if (check != NULL && !check(r, login, baton)) {
        /* Not this requester's to redeem: the token goes back, good for
         * the client it was issued to. */
        if (rt_store_put(r, RT_REC_REFRESH, token, login->session_exp, data) !=
            RT_STORE_OK) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "a refused refresh token could not be put back: "
                          "its session ends");
        }
        return RT_REFRESH_REFUSED;
    }
    /* Mark the old token used, look for a revocation of the session, and
     * store the next token unless the session was revoked: one turn of the
     * store's mutex where it has one. A failed look fails closed. */
    marker = json_pack("{s:s,s:I,s:I}", "fam", login->family, "sexp",
                       (json_int_t)login->session_exp, "at",
                       (json_int_t)apr_time_sec(r->request_time));
    data = new_refresh(r, login, next);
    if (data == NULL || marker == NULL) {
        json_decref(marker);
        json_decref(data);
        return RT_REFRESH_DOWN;
    }
    {
        rt_store_step t[3] = {{.op = RT_STORE_PUT,
                               .kind = RT_REC_USED,
                               .material = token,
                               .put = marker,
                               .exp = login->session_exp},
                              {.op = RT_STORE_GET,
                               .kind = RT_REC_REVOKED,
                               .material = login->family,
                               .stop_if_found = 1},
                              {.op = RT_STORE_PUT,
                               .kind = RT_REC_REFRESH,
                               .material = *next,
                               .put = data,
                               .exp = login->session_exp}};

        rt_store_steps(r, t, 3);
        json_decref(marker);
        json_decref(data);
        if (t[1].st == RT_STORE_OK) {
            return RT_REFRESH_INVALID; /* its session was revoked */
        }
        return t[0].st == RT_STORE_OK && t[2].st == RT_STORE_OK
                   ? RT_REFRESH_OK
                   : RT_REFRESH_DOWN;
    }
}
