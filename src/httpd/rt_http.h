/* HTTP plumbing of the token endpoints: bounded body reading, media type
 * checks, and the one place that writes JSON answers and Error bodies. */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include "httpd.h"
#include "rt_error.h"
#include <jansson.h>

typedef enum { RT_BODY_JSON, RT_BODY_FORM } rt_body_kind;

/* Reads the request body into a pool buffer: JSON (also when there is no
 * Content-Type) or, when allow_form, a form; 415 for other media types,
 * 413 over limit. */
rt_error *rt_http_read_body(request_rec *r, apr_off_t limit, int allow_form,
                            char **body, apr_size_t *len, rt_body_kind *kind);

/* Writes a JSON answer with Cache-Control: no-store. Returns OK. */
int rt_http_send_json(request_rec *r, int status, const json_t *body);

/* Writes an HTML page for a person, never cached, framed or sent on as a
 * Referer (it may show a credential). Returns OK. */
int rt_http_send_page(request_rec *r, int status, const char *html);

/* The start of a handler of GET (and HEAD) only: DECLINED for another
 * handler than name, else the body discarded, and 405 (Allow: GET, HEAD
 * and TRACE) for another method, OK for GET. */
int rt_http_get_only(request_rec *r, const char *name);

/* Writes e as the Error body with the status of its kind. Returns OK. */
int rt_http_send_error(request_rec *r, const rt_error *e);

#endif
