/* Claim values of RunaiTokenClaim: text evaluated at request time,
 * typed into JSON. */
#ifndef RT_CLAIM_H
#define RT_CLAIM_H

#include <jansson.h>

typedef enum {
    RT_CLAIM_STRING,
    RT_CLAIM_LIST,
    RT_CLAIM_NUMBER,
    RT_CLAIM_BOOL
} rt_claim_type;

/* "string", "list", "number", "bool" → type; -1 when unknown. */
int rt_claim_type_parse(const char *name);

/* The JSON value of a claim evaluated to text: NULL when the claim is to
 * be omitted (empty text); *bad set when text does not fit the type. */
json_t *rt_claim_value(const char *text, rt_claim_type type, int *bad);

#endif
