#include "rt_crypto.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static pthread_once_t fetched = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;
static EVP_MAC *hmac;

static void fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

int rt_sha256(const void *data, apr_size_t len,
              unsigned char out[RT_SHA256_LEN])
{
    pthread_once(&fetched, fetch);
    return sha256 != NULL && EVP_Digest(data, len, out, NULL, sha256, NULL);
}

struct rt_hmac {
    EVP_MAC_CTX *tmpl; /* keyed once; each use works on a copy */
};

static apr_status_t hmac_cleanup(void *data)
{
    EVP_MAC_CTX_free(((rt_hmac *)data)->tmpl);
    return APR_SUCCESS;
}

rt_hmac *rt_hmac_new(apr_pool_t *p, const unsigned char *key,
                     apr_size_t key_len)
{
    rt_hmac *h = apr_pcalloc(p, sizeof(*h));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end()};

    pthread_once(&fetched, fetch);
    h->tmpl = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    if (h->tmpl == NULL || !EVP_MAC_init(h->tmpl, key, key_len, params)) {
        EVP_MAC_CTX_free(h->tmpl);
        return NULL;
    }
    apr_pool_cleanup_register(p, h, hmac_cleanup, apr_pool_cleanup_null);
    return h;
}

int rt_hmac_sha256(const rt_hmac *h, int n, const void *const *parts,
                   const apr_size_t *lens, unsigned char out[RT_SHA256_LEN])
{
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(h->tmpl);
    size_t len = 0;
    int ok = ctx != NULL;

    for (int i = 0; ok && i < n; i++) {
        ok = EVP_MAC_update(ctx, parts[i], lens[i]);
    }
    ok = ok && EVP_MAC_final(ctx, out, &len, RT_SHA256_LEN) &&
         len == RT_SHA256_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

#define POOL_BYTES 1024

int rt_random_bytes(unsigned char *out, apr_size_t n)
{
    static __thread unsigned char pool[POOL_BYTES];
    static __thread apr_size_t left;
    static __thread pid_t owner;

    if (n > POOL_BYTES) {
        return RAND_bytes(out, (int)n) == 1;
    }
    /* A forked child must not reuse bytes its parent already holds. */
    if (n > left || owner != getpid()) {
        if (RAND_bytes(pool, POOL_BYTES) != 1) {
            return 0;
        }
        left = POOL_BYTES;
        owner = getpid();
    }
    /* Hand out the end of the buffer and wipe it: no byte twice. */
    left -= n;
    memcpy(out, pool + left, n);
    OPENSSL_cleanse(pool + left, n);
    return 1;
}
