#include "rt_error.h"
#include "rt_json.h"

#include <apr_strings.h>

/* The one table: per kind, the Run:ai status, the OAuth 2.0 error code
 * and status, and the log word. Statuses are numbers here because the core
 * does not see httpd's HTTP_* names. A wrong password or code is 401 in the
 * Run:ai dialect and invalid_grant (400) in RFC 6749's. RFC 6749 §5.2 has no
 * code for "throttled": a throttled attempt answers the code a wrong
 * credential of its kind would (invalid_grant for a user's password,
 * invalid_client for an application's or a client's secret) with 429. */
static const struct {
    int status;
    const char *oauth;
    int oauth_status;
    const char *log;
} kinds[RT_ERR__COUNT] = {
    [RT_ERR_BAD_REQUEST] = {400, "invalid_request", 400, "bad_request"},
    [RT_ERR_TOO_LARGE] = {413, "invalid_request", 413, "bad_request"},
    [RT_ERR_MEDIA_TYPE] = {415, "invalid_request", 415, "bad_request"},
    [RT_ERR_NOT_FOUND] = {404, "invalid_request", 404, "not_found"},
    [RT_ERR_METHOD] = {405, "invalid_request", 405, "method_not_allowed"},
    [RT_ERR_UNSUPPORTED_GRANT] = {400, "unsupported_grant_type", 400,
                                  "unsupported"},
    [RT_ERR_GRANT_DISABLED] = {400, "unsupported_grant_type", 400,
                               "not_enabled"},
    [RT_ERR_UNKNOWN_CLIENT] = {400, "invalid_client", 401, "unknown_client"},
    [RT_ERR_BAD_CLIENT] = {401, "invalid_client", 401, "invalid_client"},
    [RT_ERR_BAD_APP_SECRET] = {401, "invalid_client", 401,
                               "invalid_credentials"},
    [RT_ERR_BAD_PASSWORD] = {401, "invalid_grant", 400, "invalid_credentials"},
    [RT_ERR_BAD_CODE] = {401, "invalid_grant", 400, "invalid_code"},
    [RT_ERR_BAD_REFRESH] = {401, "invalid_grant", 400, "invalid_token"},
    [RT_ERR_REUSED_REFRESH] = {401, "invalid_grant", 400, "reused"},
    [RT_ERR_BAD_VERIFIER] = {401, "invalid_grant", 400, "pkce_failed"},
    [RT_ERR_REDIRECT_MISMATCH] = {400, "invalid_grant", 400,
                                  "redirect_mismatch"},
    [RT_ERR_CLIENT_MISMATCH] = {400, "invalid_grant", 400, "client_mismatch"},
    [RT_ERR_THROTTLED] = {429, "invalid_grant", 429, "throttled"},
    [RT_ERR_THROTTLED_CLIENT] = {429, "invalid_client", 429, "throttled"},
    /* Not invalid_grant: the token stays good, the client waits. */
    [RT_ERR_REFRESH_RATE] = {429, "temporarily_unavailable", 429,
                             "refresh_rate"},
    /* Not invalid_grant: a logout is no grant. */
    [RT_ERR_LOGOUT_REDIRECT] = {400, "invalid_request", 400,
                                "redirect_mismatch"},
    [RT_ERR_UNSUPPORTED_TOKEN] = {400, "unsupported_token_type", 400,
                                  "unsupported_token"},
    [RT_ERR_FORBIDDEN] = {403, "access_denied", 403, "forbidden"},
    [RT_ERR_USER_REFUSED] = {401, "invalid_grant", 400, "user_refused"},
    [RT_ERR_DIRECTORY_DOWN] = {503, "temporarily_unavailable", 503,
                               "directory_unavailable"},
    /* RFC 8628 §3.5: every answer to a poll before tokens is a 400. */
    [RT_ERR_UNAUTHORIZED_CLIENT] = {400, "unauthorized_client", 400,
                                    "unauthorized_client"},
    [RT_ERR_BAD_USER_CODE] = {400, "invalid_grant", 400, "invalid_user_code"},
    [RT_ERR_AUTH_PENDING] = {400, "authorization_pending", 400, "pending"},
    [RT_ERR_SLOW_DOWN] = {400, "slow_down", 400, "slow_down"},
    [RT_ERR_EXPIRED_TOKEN] = {400, "expired_token", 400, "expired"},
    [RT_ERR_ACCESS_DENIED] = {400, "access_denied", 400, "denied"},
    [RT_ERR_STORE_DOWN] = {503, "temporarily_unavailable", 503,
                           "store_unavailable"},
    [RT_ERR_INTERNAL] = {500, "server_error", 500, "error"},
};

rt_error *rt_error_make(apr_pool_t *p, rt_error_kind kind, const char *message,
                        const char *details)
{
    rt_error *e = apr_palloc(p, sizeof(*e));

    e->kind = kind < RT_ERR__COUNT ? kind : RT_ERR_INTERNAL;
    e->message = message;
    e->details = details;
    return e;
}

int rt_error_status(const rt_error *e)
{
    return kinds[e->kind].status;
}

const char *rt_error_log_word(const rt_error *e)
{
    return kinds[e->kind].log;
}

const char *rt_error_oauth(const rt_error *e, int *status)
{
    *status = kinds[e->kind].oauth_status;
    return kinds[e->kind].oauth;
}

char *rt_error_body(apr_pool_t *p, const rt_error *e)
{
    json_t *o = rt_json_pool_own(p, json_object());
    char *s;

    json_object_set_new(o, "code", json_integer(rt_error_status(e)));
    json_object_set_new(o, "message", json_string(e->message));
    if (e->details != NULL) {
        json_object_set_new(o, "details", json_string(e->details));
    }
    s = rt_json_ascii(p, o);
    return s ? s
             : apr_psprintf(p, "{\"code\":%d,\"message\":\"error\"}",
                            rt_error_status(e));
}
