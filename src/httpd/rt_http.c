#include "rt_http.h"
#include "rt_json.h"
#include "rt_util.h"

#include "http_protocol.h"
#include "http_log.h"
#include "http_request.h"
#include <apr_strings.h>
#include <string.h>

APLOG_USE_MODULE(runai_token);

#define READ_CHUNK 8192

rt_error *rt_http_read_body(request_rec *r, apr_off_t limit, int allow_form,
                            char **body, apr_size_t *len, rt_body_kind *kind)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t cap, n = 0;
    char *buf;
    int rc;

    *body = NULL;
    *len = 0;
    *kind = RT_BODY_JSON;
    if (ct != NULL && allow_form &&
        rt_media_type_is(ct, "application/x-www-form-urlencoded")) {
        *kind = RT_BODY_FORM;
    } else if (ct != NULL && !rt_media_type_is(ct, "application/json")) {
        return rt_error_make(r->pool, RT_ERR_MEDIA_TYPE,
                             "unsupported media type",
                             allow_form ? "send application/json or "
                                          "application/x-www-form-urlencoded"
                                        : "send application/json");
    }
    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rt_error_make(r->pool,
                             rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                 ? RT_ERR_TOO_LARGE
                                 : RT_ERR_BAD_REQUEST,
                             rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                 ? "request body too large"
                                 : "cannot read the request body",
                             NULL);
    }
    if (r->remaining > limit) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return rt_error_make(
            r->pool, RT_ERR_TOO_LARGE, "request body too large",
            apr_psprintf(r->pool, "the limit is %" APR_OFF_T_FMT " bytes",
                         limit));
    }
    if (!ap_should_client_block(r)) {
        *body = apr_pcalloc(r->pool, 1);
        return NULL;
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : READ_CHUNK;
    buf = apr_palloc(r->pool, cap);
    for (;;) {
        long got;

        if (n + 1 >= cap) {
            /* Grow up to limit + 2: room to see one byte over the limit. */
            apr_size_t ncap = cap * 2 > (apr_size_t)limit + 2
                                  ? (apr_size_t)limit + 2
                                  : cap * 2;
            char *nbuf = apr_palloc(r->pool, ncap);

            memcpy(nbuf, buf, n);
            buf = nbuf;
            cap = ncap;
        }
        got = ap_get_client_block(r, buf + n, cap - n - 1);
        if (got == 0) {
            break;
        }
        if (got < 0) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return rt_error_make(r->pool, RT_ERR_BAD_REQUEST,
                                 "cannot read the request body", NULL);
        }
        n += (apr_size_t)got;
        if ((apr_off_t)n > limit) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return rt_error_make(
                r->pool, RT_ERR_TOO_LARGE, "request body too large",
                apr_psprintf(r->pool, "the limit is %" APR_OFF_T_FMT " bytes",
                             limit));
        }
    }
    buf[n] = '\0';
    *body = buf;
    *len = n;
    return NULL;
}

static int send_body(request_rec *r, int status, const char *text)
{
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Pragma", "no-cache");
    ap_set_content_length(r, (apr_off_t)strlen(text));
    if (!r->header_only) {
        ap_rputs(text, r);
    }
    return OK;
}

int rt_http_send_json(request_rec *r, int status, const json_t *body)
{
    char *text = rt_json_ascii(r->pool, body);

    if (text == NULL) {
        rt_error e = {RT_ERR_INTERNAL, "internal error", NULL};
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "cannot encode the reply");
        return rt_http_send_error(r, &e);
    }
    return send_body(r, status, text);
}

int rt_http_send_page(request_rec *r, int status, const char *html)
{
    r->status = status;
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Pragma", "no-cache");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "X-Frame-Options", "DENY");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; form-action 'self'; "
                   "frame-ancestors 'none'");
    ap_set_content_length(r, (apr_off_t)strlen(html));
    if (!r->header_only) {
        ap_rputs(html, r);
    }
    return OK;
}

int rt_http_send_error(request_rec *r, const rt_error *e)
{
    return send_body(r, rt_error_status(e), rt_error_body(r->pool, e));
}

int rt_http_get_only(request_rec *r, const char *name)
{
    if (r->handler == NULL || strcmp(r->handler, name) != 0) {
        return DECLINED;
    }
    ap_discard_request_body(r);
    /* httpd's 405 answer makes its Allow header from these (GET brings
     * HEAD). */
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
    return r->method_number == M_GET ? OK : HTTP_METHOD_NOT_ALLOWED;
}
