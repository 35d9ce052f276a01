/* JSON as the module writes it: compact ASCII that standard-base64
 * decoders read correctly, and json_t values owned by a pool. */
#ifndef RT_JSON_H
#define RT_JSON_H

#include <apr_pools.h>
#include <jansson.h>

/* Compact JSON, ASCII only, with '>', '?', '~' and DEL written as \u00XX so
 * that its base64 encoding never contains '+' or '/' (base64url '-' / '_').
 * NULL on failure. */
char *rt_json_ascii(apr_pool_t *p, const json_t *j);

/* Appends the string s to the array arr unless arr holds it already. */
void rt_json_array_add_unique(json_t *arr, const char *s);

/* Hands j to the pool: json_decref runs when the pool is cleared. */
json_t *rt_json_pool_own(apr_pool_t *p, json_t *j);

#endif
