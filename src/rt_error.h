/* One error type for every failure: HTTP status, a message safe to show,
 * and optional details. Secrets never go into either. */
#ifndef RT_ERROR_H
#define RT_ERROR_H

#include <apr_pools.h>

typedef struct rt_error {
    int status;          /* HTTP status, also the body's "code" */
    const char *message; /* short, fixed text */
    const char *details; /* optional, NULL when none */
} rt_error;

rt_error *rt_error_make(apr_pool_t *p, int status, const char *message,
                        const char *details);

/* The Error body of the contract: {"code":..,"message":..,"details"?:..} */
char *rt_error_body(apr_pool_t *p, const rt_error *e);

#endif
