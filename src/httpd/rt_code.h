/* One-time authorization codes: a login kept in the store under the
 * hash of an opaque random code until it is redeemed or expires. */
#ifndef RT_CODE_H
#define RT_CODE_H

#include "rt_login.h"
#include "rt_store.h"

/* Stores a one-time code for login until exp. */
rt_store_status rt_code_mint(request_rec *r, const rt_login *login,
                             apr_int64_t exp, const char **code);

/* Takes a code (spent whatever happens next) and fills login. */
rt_store_status rt_code_take(request_rec *r, const char *code, rt_login *login);

#endif
