/* RunaiTokenClaim / RunaiTokenAppClaim evaluation: ap_expr string
 * expressions parsed at configuration time, typed into JSON here. */
#ifndef RT_CLAIM_EVAL_H
#define RT_CLAIM_EVAL_H

#include "rt_config.h"
#include "rt_login.h"

/* Evaluates claims (rt_claim) for r into a new JSON object owned by
 * r->pool. Empty results are omitted; values that do not fit their type
 * are omitted with a warning naming the claim (never its value). */
json_t *rt_claim_eval(request_rec *r, const apr_array_header_t *claims);

/* What a login of user establishes, into l: the subject (from the
 * RunaiTokenSubject expression when one is given and yields text, else the
 * user name), the time, and preferred_username with the claims. */
void rt_claim_eval_login(request_rec *r, const ap_expr_info_t *subject,
                         const apr_array_header_t *claims, const char *user,
                         rt_login *l);

#endif
