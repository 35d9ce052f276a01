/* Small helpers of the core: base64url, random identifiers, UTF-8 and
 * media type checks, integer parsing, constant-time comparison. */
#ifndef RT_UTIL_H
#define RT_UTIL_H

#include <apr_pools.h>

/* base64url without padding; returns a pool string. */
char *rt_b64url(apr_pool_t *p, const unsigned char *data, apr_size_t len);
/* Writes base64url of data into out (room for rt_b64url_len(len) + 1). */
apr_size_t rt_b64url_to(char *out, const unsigned char *data, apr_size_t len);
#define rt_b64url_len(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Decodes unpadded base64url (one encoding per value: the leftover bits
 * must be zero) into p, NUL-terminated; NULL on any other character or
 * length. */
unsigned char *rt_b64url_decode(apr_pool_t *p, const char *s, apr_size_t n,
                                apr_size_t *out_len);

/* nbytes of CSPRNG output, base64url; NULL if the generator failed. */
char *rt_random_id(apr_pool_t *p, apr_size_t nbytes);

/* 1 when buf[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
int rt_utf8_valid(const char *buf, apr_size_t len);

/* Case-insensitive media type test: "application/json; charset=utf-8"
 * matches "application/json". */
int rt_media_type_is(const char *content_type, const char *type);

/* Parses a decimal integer in [min, max]; 0 on success, -1 otherwise. */
int rt_parse_int(const char *s, apr_int64_t min, apr_int64_t max,
                 apr_int64_t *out);

/* Compares two strings in time that depends only on their lengths. */
int rt_ct_streq(const char *a, const char *b);

#endif
