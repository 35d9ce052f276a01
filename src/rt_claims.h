/* RunaiTokenClaim / RunaiTokenAppClaim evaluation: ap_expr string
 * expressions parsed at configuration time, typed into JSON here. */
#ifndef RT_CLAIMS_H
#define RT_CLAIMS_H

#include "rt_config.h"

/* Evaluates claims (rt_claim) for r into a new JSON object owned by
 * r->pool. Empty results are omitted; values that do not fit their type
 * are omitted with a warning naming the claim (never its value). */
json_t *rt_claims_eval(request_rec *r, const apr_array_header_t *claims);

#endif
