#include "rt_device.h"
#include "rt_authorize.h"
#include "rt_claim_eval.h"
#include "rt_crypto.h"
#include "rt_form.h"
#include "rt_http.h"
#include "rt_json.h"
#include "rt_oidc.h"
#include "rt_throttle.h"
#include "rt_util.h"

#include "http_log.h"
#include "http_protocol.h"
#include <apr_lib.h>
#include <apr_strings.h>
#include <strings.h>

APLOG_USE_MODULE(runai_token);

#define DEVICE_BYTES 32 /* 256 random bits */
/* User codes: 8 letters without vowels (no words) nor look-alikes, shown
 * as XXXX-XXXX: 20^8, about 2^34.6, guesses bounded by the throttle. */
#define USER_ALPHABET "BCDFGHJKLMNPQRSTVWXZ"
#define USER_CODE_LEN 8
#define MINT_TRIES 4 /* user codes drawn before giving up on collisions */
#define INTERVAL 5   /* seconds between polls (RFC 8628 §3.2) */
#define SLOW_STEP 5  /* added to the interval at each slow_down (§3.5) */
/* A poll this much early is not yet too early: timers of clients. */
#define TOLERANCE_MSEC 500
/* A device code's record outlives its expiry by this, so that a late
 * poll hears expired_token rather than invalid_grant. */
#define GRACE 600

static rt_error *refuse(rt_ctx *c, rt_error_kind kind, const char *message)
{
    return rt_error_make(c->r->pool, kind, message, NULL);
}

/* --- the device authorization endpoint ------------------------------------ */

/* 8 letters of USER_ALPHABET from the CSPRNG (bytes over 239 skipped, so
 * that each letter is as likely); NULL if the generator failed. */
static char *draw_user_code(apr_pool_t *p)
{
    unsigned char b[16];
    char *out = apr_palloc(p, USER_CODE_LEN + 1);
    int n = 0;

    while (n < USER_CODE_LEN) {
        if (!rt_crypto_random(b, sizeof(b))) {
            return NULL;
        }
        for (apr_size_t i = 0; i < sizeof(b) && n < USER_CODE_LEN; i++) {
            if (b[i] < 240) {
                out[n++] = USER_ALPHABET[b[i] % 20];
            }
        }
    }
    out[n] = '\0';
    return out;
}

/* A user code as typed: case, dashes and spaces do not matter. NULL when
 * it cannot be one. */
static const char *normalize(apr_pool_t *p, const char *in)
{
    char *out = apr_palloc(p, USER_CODE_LEN + 1);
    int n = 0;

    for (const char *s = in; *s; s++) {
        char ch = (char)apr_toupper((unsigned char)*s);

        if (*s == '-' || *s == ' ') {
            continue;
        }
        if (n == USER_CODE_LEN || strchr(USER_ALPHABET, ch) == NULL) {
            return NULL;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    return n == USER_CODE_LEN ? out : NULL;
}

typedef struct {
    const json_t *data;
    apr_int64_t exp;
    int taken;
} put_new_baton;

/* Writes the record only where there is none: a user code is unique
 * among the live ones (on one host under the mutex; across hosts sharing
 * a store, two equal draws in the same moment are left to chance, 1 in
 * 2^34 per live code). */
static json_t *put_new(request_rec *r, json_t *old, void *baton,
                       apr_int64_t *exp)
{
    put_new_baton *b = baton;

    (void)r;
    if (old != NULL) {
        b->taken = 1;
        return NULL;
    }
    *exp = b->exp;
    return json_deep_copy(b->data);
}

/* Stores the device code's record and a new user code's; *user_code is
 * then the code drawn. */
static rt_store_status mint(request_rec *r, const char *device_code,
                            const unsigned char *digest, const char *client,
                            apr_int64_t exp, const char **user_code)
{
    json_t *dev = rt_json_pool_own(
        r->pool, json_pack("{s:s,s:I,s:i,s:I}", "cid", client, "exp",
                           (json_int_t)exp, "iv", INTERVAL, "lp", 0));
    json_t *uc = rt_json_pool_own(
        r->pool,
        json_pack("{s:s,s:s,s:I}", "dc", rt_b64url(r->pool, digest, 32), "cid",
                  client, "exp", (json_int_t)exp));
    rt_store_step s[2];
    put_new_baton b = {uc, exp, 0};

    if (dev == NULL || uc == NULL) {
        return RT_STORE_DOWN;
    }
    memset(s, 0, sizeof(s));
    s[0].op = RT_STORE_PUT;
    s[0].kind = RT_REC_DEVICE;
    s[0].material = device_code;
    s[0].put = dev;
    s[0].exp = exp + GRACE;
    for (int i = 0; i < MINT_TRIES; i++) {
        /* The device code's record in the first turn only. */
        rt_store_step *u = &s[i == 0 ? 1 : 0];

        *user_code = draw_user_code(r->pool);
        if (*user_code == NULL) {
            return RT_STORE_DOWN;
        }
        memset(u, 0, sizeof(*u));
        u->op = RT_STORE_UPDATE;
        u->kind = RT_REC_USER_CODE;
        u->material = *user_code;
        u->fn = put_new;
        u->baton = &b;
        b.taken = 0;
        rt_store_steps(r, s, i == 0 ? 2 : 1);
        if (s[0].st != RT_STORE_OK || u->st != RT_STORE_OK) {
            return RT_STORE_DOWN;
        }
        if (!b.taken) {
            return RT_STORE_OK;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "device authorization: %d user codes drawn were all in use",
                  MINT_TRIES);
    return RT_STORE_DOWN;
}

rt_error *rt_device_authorize(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    const char *id = rt_request_field(&c->f, RT_F_CLIENT_ID);
    apr_int64_t life = rt_config_device_lifetime(c->sc);
    unsigned char digest[RT_SHA256_LEN];
    const char *device_code, *user_code, *shown, *uri;
    const rt_client *cl;
    json_t *o;
    rt_error *e;

    (void)reply;
    c->grant = "device_authorization";
    c->principal = c->client = id;
    if (id == NULL) {
        return rt_grant_missing(c, RT_F_CLIENT_ID);
    }
    e = rt_grant_authenticate_client(c, c->grant);
    if (e != NULL) {
        return e;
    }
    cl = rt_config_client(c->sc, id);
    if (cl == NULL) {
        return refuse(c, RT_ERR_UNKNOWN_CLIENT, "unknown client");
    }
    if (!cl->device) {
        return refuse(c, RT_ERR_UNAUTHORIZED_CLIENT,
                      "this client may not use the device authorization "
                      "grant");
    }
    e = rt_grant_check_owner(c, NULL);
    if (e != NULL) {
        return e;
    }
    device_code = rt_random_id(r->pool, DEVICE_BYTES);
    if (device_code == NULL ||
        !rt_crypto_sha256(device_code, strlen(device_code), digest)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "device authorization failed: the random generator "
                      "failed");
        return refuse(c, RT_ERR_INTERNAL, "internal error");
    }
    if (mint(r, device_code, digest, id, apr_time_sec(r->request_time) + life,
             &user_code) != RT_STORE_OK) {
        return refuse(c, RT_ERR_STORE_DOWN, "session store unavailable");
    }
    shown = apr_psprintf(r->pool, "%.4s-%s", user_code, user_code + 4);
    uri = rt_oidc_endpoint(r->pool, c->sc->issuer, "/device");
    o = rt_json_pool_own(
        r->pool,
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:i}", "device_code", device_code,
                  "user_code", shown, "verification_uri", uri,
                  "verification_uri_complete",
                  apr_pstrcat(r->pool, uri, "?user_code=", shown, NULL),
                  "expires_in", (json_int_t)life, "interval", INTERVAL));
    c->outcome = "device_code_issued";
    rt_http_send_json(r, HTTP_OK, o);
    return NULL;
}

/* --- the user's page ------------------------------------------------------ */

enum { P_USER_CODE, P_ACTION, P_COUNT };

static const rt_form_param page_params[P_COUNT] = {
    {"user_code", 0, P_USER_CODE},
    {"action", 0, P_ACTION},
};

/* The page: a message (HTML, or NULL) and, unless done, the form with
 * the code prefilled. Every answer of the page, errors too. */
static rt_error *page(rt_ctx *c, int status, const char *message,
                      const char *code, int done)
{
    request_rec *r = c->r;
    const char *html = apr_pstrcat(
        r->pool,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>Sign in a device</title></head>\n<body>\n",
        message ? apr_pstrcat(r->pool, "<p id=\"message\">", message, "</p>\n",
                              NULL)
                : "",
        done ? ""
             : apr_pstrcat(
                   r->pool, "<form method=\"post\" action=\"",
                   ap_escape_html2(r->pool, r->uri, 1),
                   "\">\n<p><label for=\"user_code\">Enter the code your "
                   "device shows:</label></p>\n<p><input id=\"user_code\" "
                   "name=\"user_code\" autocomplete=\"off\" "
                   "spellcheck=\"false\" value=\"",
                   code ? ap_escape_html2(r->pool, code, 1) : "",
                   "\"></p>\n<p><button type=\"submit\" name=\"action\" "
                   "value=\"approve\">Approve</button> <button "
                   "type=\"submit\" name=\"action\" "
                   "value=\"deny\">Deny</button></p>\n</form>\n",
                   NULL),
        "</body></html>\n", NULL);

    rt_http_send_page(r, status, html);
    return NULL;
}

/* An error as a page; the log line still gives its word. */
static rt_error *page_error(rt_ctx *c, const rt_error *e, const char *code)
{
    c->outcome = rt_error_log_word(e);
    return page(c, rt_error_status(e),
                ap_escape_html2(c->r->pool, e->message, 1), code, 0);
}

/* A browser's POST from another site (the user's Basic credentials go
 * with it) is refused: Sec-Fetch-Site, else Origin, must say this site.
 * Clients that send neither are not browsers on another site's page. */
static int same_site(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *o;

    if (site != NULL) {
        return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
    }
    if (origin == NULL) {
        return 1;
    }
    o = strstr(origin, "://");
    return o != NULL && host != NULL && strcasecmp(o + 3, host) == 0;
}

/* The decision on the device the user code names: the user code is
 * taken (one decision per code, across hosts too), then the decision is
 * written for the polls. */
static rt_error *decide(rt_ctx *c, const char *typed, int approve)
{
    request_rec *r = c->r;
    const char *code = normalize(r->pool, typed);
    rt_throttle *t;
    apr_int64_t wait =
        rt_throttle_reserve(r, c->dc, RT_THROTTLE_DEVICE, r->user, 0, &t);
    json_t *got = NULL, *data;
    const char *hash;
    apr_size_t len = 0;
    const unsigned char *digest;
    apr_int64_t exp;
    rt_store_status st;
    rt_store_step s = {.op = RT_STORE_PUT, .kind = RT_REC_DECISION};
    rt_login l;

    if (wait > 0) {
        return page_error(c, rt_throttle_error(r, RT_THROTTLE_DEVICE, wait),
                          typed);
    }
    st = code ? rt_store_take(r, RT_REC_USER_CODE, code, &got)
              : RT_STORE_NOTFOUND;
    hash = st == RT_STORE_OK ? json_string_value(json_object_get(got, "dc"))
                             : NULL;
    digest = hash ? rt_b64url_decode(r->pool, hash, strlen(hash), &len) : NULL;
    if (st == RT_STORE_DOWN) {
        rt_throttle_settle(r, t, RT_THROTTLE_UNANSWERED);
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_STORE_DOWN,
                                        "session store unavailable", NULL),
                          typed);
    }
    if (digest == NULL || len != RT_SHA256_LEN) {
        rt_throttle_settle(r, t, RT_THROTTLE_FAILED);
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_BAD_USER_CODE,
                                        "This code is wrong, used or expired.",
                                        NULL),
                          typed);
    }
    rt_throttle_settle(r, t, RT_THROTTLE_GRANTED);
    c->client = rt_login_str(r->pool, got, "cid");
    exp = json_integer_value(json_object_get(got, "exp"));
    if (approve) {
        rt_claim_eval_login(r, c->dc->subject, c->dc->claims, r->user, &l);
        l.azp = c->client;
        data = json_pack("{s:o}", "login", rt_login_to_json(&l));
    } else {
        data = json_pack("{s:b}", "denied", 1);
    }
    s.put = rt_json_pool_own(r->pool, data);
    s.digest = digest;
    s.exp = exp;
    if (s.put != NULL) {
        rt_store_steps(r, &s, 1);
    }
    if (s.put == NULL || s.st != RT_STORE_OK) {
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_STORE_DOWN,
                                        "session store unavailable", NULL),
                          NULL);
    }
    c->outcome = approve ? "device_approved" : "device_denied";
    return page(
        c, HTTP_OK,
        apr_pstrcat(r->pool, approve ? "Approved" : "Denied",
                    ": the device of ",
                    ap_escape_html2(r->pool, c->client ? c->client : "-", 1),
                    approve ? " signs in as you now" : " does not sign in",
                    ". You can close this page.", NULL),
        NULL, 1);
}

rt_error *rt_device_page(rt_ctx *c, json_t **reply)
{
    request_rec *r = c->r;
    const char *v[P_COUNT];
    char *body;
    apr_size_t len;
    rt_body_kind kind;
    rt_error *e;

    (void)reply;
    c->grant = "device_verification";
    e = rt_authorize_user(c);
    if (e != NULL) {
        return e;
    }
    if (r->method_number != M_POST) {
        ap_discard_request_body(r);
        e = c->args ? rt_form_scan(r->pool, c->args, strlen(c->args), "query",
                                   page_params, P_COUNT, 1, v)
                    : NULL;
        c->outcome = "device_page";
        return e ? page_error(c, e, NULL)
                 : page(c, HTTP_OK, NULL, c->args ? v[P_USER_CODE] : NULL, 0);
    }
    e = rt_http_read_body(r, rt_config_max_body(c->dc), 1, &body, &len, &kind);
    if (e == NULL && kind != RT_BODY_FORM) {
        e = rt_error_make(r->pool, RT_ERR_MEDIA_TYPE, "unsupported media type",
                          NULL);
    }
    if (e == NULL) {
        e = rt_form_scan(r->pool, body, len, "request body", page_params,
                         P_COUNT, 1, v);
    }
    if (e != NULL) {
        return page_error(c, e, NULL);
    }
    if (!same_site(r)) {
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_FORBIDDEN,
                                        "A request from another site is "
                                        "refused.",
                                        NULL),
                          NULL);
    }
    if (v[P_ACTION] == NULL || (strcmp(v[P_ACTION], "approve") != 0 &&
                                strcmp(v[P_ACTION], "deny") != 0)) {
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_BAD_REQUEST,
                                        "Choose approve or deny.", NULL),
                          v[P_USER_CODE]);
    }
    if (v[P_USER_CODE] == NULL || *v[P_USER_CODE] == '\0') {
        return page_error(c,
                          rt_error_make(r->pool, RT_ERR_BAD_REQUEST,
                                        "Enter the code your device shows.",
                                        NULL),
                          NULL);
    }
    return decide(c, v[P_USER_CODE], strcmp(v[P_ACTION], "approve") == 0);
}

/* --- polls ---------------------------------------------------------------- */

typedef struct {
    rt_device_poll_t *p;
    apr_int64_t now_ms;
} poll_baton;

/* The poll's time goes into the device code's record; one too early
 * raises the interval by SLOW_STEP. */
static json_t *poll_step(request_rec *r, json_t *old, void *baton,
                         apr_int64_t *exp)
{
    poll_baton *b = baton;
    apr_int64_t dexp, iv, lp;
    json_t *o;

    if (old == NULL) {
        b->p->state = RT_DEVICE_INVALID;
        return NULL;
    }
    b->p->client = rt_login_str(r->pool, old, "cid");
    dexp = json_integer_value(json_object_get(old, "exp"));
    b->p->exp = dexp;
    if (dexp <= apr_time_sec(r->request_time)) {
        b->p->state = RT_DEVICE_EXPIRED;
        return NULL;
    }
    b->p->state = RT_DEVICE_PENDING;
    iv = json_integer_value(json_object_get(old, "iv"));
    lp = json_integer_value(json_object_get(old, "lp"));
    if (lp > 0 && b->now_ms - lp + TOLERANCE_MSEC < iv * 1000) {
        b->p->slow = 1;
        iv += SLOW_STEP;
    }
    o = json_copy(old);
    json_object_set_new(o, "iv", json_integer(iv));
    json_object_set_new(o, "lp", json_integer(b->now_ms));
    *exp = dexp + GRACE;
    return o;
}

void rt_device_poll(request_rec *r, const char *device_code,
                    rt_device_poll_t *p)
{
    unsigned char digest[RT_SHA256_LEN];
    poll_baton b = {p, (apr_int64_t)apr_time_as_msec(r->request_time)};
    rt_store_step s[3];

    memset(p, 0, sizeof(*p));
    memset(s, 0, sizeof(s));
    p->state = RT_DEVICE_DOWN;
    if (!rt_crypto_sha256(device_code, strlen(device_code), digest)) {
        return;
    }
    /* A shared store's miss is confirmed: a store that does not answer
     * must not spend the client's device code. */
    s[0].op = RT_STORE_UPDATE;
    s[0].kind = RT_REC_DEVICE;
    s[0].material = device_code;
    s[0].fn = poll_step;
    s[0].baton = &b;
    s[0].confirm_miss = 1;
    /* The decision, then the spent mark, in this order: a redeeming poll
     * writes the mark before it takes the decision, so a decision gone
     * with no mark is one never made, on any host. */
    s[1].op = RT_STORE_GET;
    s[1].kind = RT_REC_DECISION;
    s[1].digest = digest;
    s[2].op = RT_STORE_GET;
    s[2].kind = RT_REC_DEVICE_SPENT;
    s[2].digest = digest;
    rt_store_steps(r, s, 3);
    if (s[0].st != RT_STORE_OK) {
        p->state = RT_DEVICE_DOWN;
        return;
    }
    if (p->state != RT_DEVICE_PENDING) {
        return;
    }
    if (s[1].st == RT_STORE_OK) {
        p->state = json_object_get(s[1].got, "denied") ? RT_DEVICE_DENIED
                                                       : RT_DEVICE_APPROVED;
    } else if (s[2].st == RT_STORE_OK) {
        p->state = RT_DEVICE_INVALID;
    }
}

rt_store_status rt_device_redeem(request_rec *r, const char *device_code,
                                 apr_int64_t exp, rt_login *l)
{
    unsigned char digest[RT_SHA256_LEN];
    rt_store_step s[2];

    if (!rt_crypto_sha256(device_code, strlen(device_code), digest)) {
        return RT_STORE_DOWN;
    }
    memset(s, 0, sizeof(s));
    /* The spent mark first (every redeeming poll writes the same), then
     * the take: of concurrent takers, on one host or several, one gets
     * the approval; any poll that then finds it gone finds the mark, and
     * hears invalid_grant. */
    s[0].op = RT_STORE_PUT;
    s[0].kind = RT_REC_DEVICE_SPENT;
    s[0].digest = digest;
    s[0].put = rt_json_pool_own(r->pool, json_object());
    s[0].exp = exp + GRACE;
    s[1].op = RT_STORE_TAKE;
    s[1].kind = RT_REC_DECISION;
    s[1].digest = digest;
    if (s[0].put == NULL) {
        return RT_STORE_DOWN;
    }
    rt_store_steps(r, s, 2);
    if (s[0].st != RT_STORE_OK || s[1].st != RT_STORE_OK) {
        return s[0].st != RT_STORE_OK ? s[0].st : s[1].st;
    }
    return rt_login_from_json(r->pool, json_object_get(s[1].got, "login"), l)
               ? RT_STORE_OK
               : RT_STORE_NOTFOUND;
}
