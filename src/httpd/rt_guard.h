/* AuthType RunaiToken and Require runai-claim: bearer JWTs
 * verified with the keys loaded at start-up. */
#ifndef RT_GUARD_H
#define RT_GUARD_H

#include "httpd.h"

/* Registers the check_authn hook and the runai-claim authz provider. */
void rt_guard_register(apr_pool_t *p);

#endif
