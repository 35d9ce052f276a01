/* SHA-256 and HMAC-SHA256 on the hot path: OpenSSL 3's one-shot SHA256()
 * and HMAC() fetch the algorithm on every call, and EVP contexts allocate
 * and dispatch per use; on our short inputs both cost more than the
 * hashing. An HMAC key keeps its two padded-key states and each MAC starts
 * from copies of them. Thread-safe. */
#ifndef RT_CRYPTO_H
#define RT_CRYPTO_H

#include <apr_pools.h>

#define RT_SHA256_LEN 32

/* 0 on failure: callers must not use out then. */
int rt_crypto_sha256(const void *data, apr_size_t len,
                     unsigned char out[RT_SHA256_LEN]);

/* An HMAC-SHA256 key, prepared once; NULL on failure. Freed with p. */
typedef struct rt_hmac rt_hmac;
rt_hmac *rt_crypto_hmac_new(apr_pool_t *p, const unsigned char *key,
                            apr_size_t key_len);

/* HMAC-SHA256 of the concatenation of n parts; 0 on failure. */
int rt_crypto_hmac_sha256(const rt_hmac *h, int n, const void *const *parts,
                          const apr_size_t *lens,
                          unsigned char out[RT_SHA256_LEN]);

/* n random bytes from a per-thread buffer refilled from the CSPRNG; 0 on
 * failure. */
int rt_crypto_random(unsigned char *out, apr_size_t n);

#endif
