#include "rt_error.h"
#include "rt_util.h"

#include <apr_strings.h>

rt_error *rt_error_make(apr_pool_t *p, int status, const char *message,
                        const char *details)
{
    rt_error *e = apr_palloc(p, sizeof(*e));

    e->status = status;
    e->message = message;
    e->details = details;
    return e;
}

char *rt_error_body(apr_pool_t *p, const rt_error *e)
{
    json_t *o = rt_json_pool_own(p, json_object());
    char *s;

    json_object_set_new(o, "code", json_integer(e->status));
    json_object_set_new(o, "message", json_string(e->message));
    if (e->details != NULL) {
        json_object_set_new(o, "details", json_string(e->details));
    }
    s = rt_json_ascii(p, o);
    return s ? s
             : apr_psprintf(p, "{\"code\":%d,\"message\":\"error\"}",
                            e->status);
}
