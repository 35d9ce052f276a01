/* Signing keys, read and parsed once at configuration time:
 * RSA → RS256, EC P-256/384/521 → ES256/384/512, hmac:FILE → HS256.
 * Each key carries what signing and publishing need, computed once. */
#ifndef RT_KEY_H
#define RT_KEY_H

#include <apr_pools.h>
#include <jansson.h>
#include <openssl/evp.h>

typedef enum {
    RT_ALG_RS256,
    RT_ALG_ES256,
    RT_ALG_ES384,
    RT_ALG_ES512,
    RT_ALG_HS256
} rt_alg;

/* Largest JOSE signature we produce: RSA-8192. */
#define RT_SIG_MAX 1024

typedef struct rt_key {
    const char *file; /* as resolved, for messages */
    const char *kid;  /* configured, else RFC 7638 thumbprint */
    rt_alg alg;
    const char *alg_name; /* "RS256", ... */
    const EVP_MD *md;
    EVP_PKEY *pkey;        /* RSA or EC; NULL for HMAC */
    int can_sign;          /* private key (or HMAC secret) present */
    unsigned char *secret; /* HMAC secret, else NULL */
    struct rt_hmac *hmac;  /* the HMAC secret, keyed once */
    EVP_MD_CTX *sign_tmpl; /* initialised once; each signature copies it */
    EVP_MD_CTX *verify_tmpl;
    apr_size_t secret_len;
    apr_size_t ec_half;     /* bytes of r and of s for ES*, else 0 */
    json_t *jwk;            /* public JWK with kid/alg/use; NULL for HMAC */
    const char *public_pem; /* SubjectPublicKeyInfo PEM; NULL for HMAC */
    const char *header_b64; /* base64url of {"alg","typ","kid"} */
    apr_size_t header_b64_len;
    const char *warning; /* non-fatal remark for the log, or NULL */
} rt_key;

/* Loads "FILE" or "hmac:FILE" (already made absolute by the caller).
 * kid may be NULL. Returns NULL and sets *out, or an error message that
 * names the file. Everything is freed by a cleanup on p. */
const char *rt_key_load(apr_pool_t *p, const char *spec, const char *kid,
                        rt_key **out);

/* 1 when sig is key's JOSE signature of in[0..len). Thread-safe. */
int rt_key_verify(const rt_key *key, const unsigned char *in, apr_size_t len,
                  const unsigned char *sig, apr_size_t sig_len);

/* Signs in[0..len) into sig (RT_SIG_MAX bytes) in JOSE form (raw R||S for
 * ECDSA). Returns the signature length, 0 on failure. Thread-safe. */
apr_size_t rt_key_sign(const rt_key *key, const unsigned char *in,
                       apr_size_t len, unsigned char *sig);

#endif
