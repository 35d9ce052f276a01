/* HTTP plumbing of the token endpoints: bounded body reading, media type
 * checks, and the one place that writes JSON answers and Error bodies. */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#include "httpd.h"
#include "rt_error.h"
#include <jansson.h>

/* Reads the request body as JSON (415 for other media types, 413 over
 * limit) into a pool buffer. */
rt_error *rt_http_read_json(request_rec *r, apr_off_t limit, char **body,
                            apr_size_t *len);

/* Writes a 200 JSON answer with Cache-Control: no-store. Returns OK. */
int rt_http_send_json(request_rec *r, const json_t *body);

/* Writes e as the Error body with status e->status. Returns OK. */
int rt_http_send_error(request_rec *r, const rt_error *e);

#endif
