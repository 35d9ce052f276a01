/* SetHandler runai-token-health: whether this server can issue tokens now
 * (signing keys loaded, the session store answering), for load balancers
 * and monitors. */
#ifndef RT_HEALTH_H
#define RT_HEALTH_H

#include "httpd.h"

/* The handler hook: declines every other handler. */
int rt_health_handler(request_rec *r);

#endif
