/* RunaiTokenClaim / RunaiTokenAppClaim evaluation: ap_expr string
 * expressions parsed at configuration time, typed into JSON here. */
#ifndef RT_CLAIM_EVAL_H
#define RT_CLAIM_EVAL_H

#include "rt_config.h"

/* Evaluates claims (rt_claim) for r into a new JSON object owned by
 * r->pool. Empty results are omitted; values that do not fit their type
 * are omitted with a warning naming the claim (never its value). */
json_t *rt_claim_eval(request_rec *r, const apr_array_header_t *claims);

#endif
