#include "rt_crypto.h"

/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP,
 * but EVP costs an allocation, a provider dispatch and a free per digest:
 * more than hashing our short inputs (profiled: an HMAC of a JWT signing
 * input cost ~17 K instructions through EVP_MAC, ~9 K this way). They are
 * the same implementation underneath, and remain in OpenSSL 3. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <pthread.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

int rt_crypto_sha256(const void *data, apr_size_t len,
                     unsigned char out[RT_SHA256_LEN])
{
    SHA256_CTX c;

    return SHA256_Init(&c) && SHA256_Update(&c, data, len) &&
           SHA256_Final(out, &c);
}

/* RFC 2104: the states after absorbing the key XOR ipad and XOR opad (one
 * block each), computed once; each MAC starts from copies of them. */
struct rt_hmac {
    SHA256_CTX inner, outer;
};

static apr_status_t hmac_cleanup(void *data)
{
    OPENSSL_cleanse(data, sizeof(rt_hmac));
    return APR_SUCCESS;
}

rt_hmac *rt_crypto_hmac_new(apr_pool_t *p, const unsigned char *key,
                            apr_size_t key_len)
{
    rt_hmac *h = apr_pcalloc(p, sizeof(*h));
    unsigned char k[SHA256_CBLOCK] = {0}, ipad[SHA256_CBLOCK],
                  opad[SHA256_CBLOCK];
    int ok;

    if (key_len > SHA256_CBLOCK) {
        ok = rt_crypto_sha256(key, key_len, k);
    } else {
        memcpy(k, key, key_len);
        ok = 1;
    }
    for (int i = 0; i < SHA256_CBLOCK; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    ok = ok && SHA256_Init(&h->inner) &&
         SHA256_Update(&h->inner, ipad, sizeof(ipad)) &&
         SHA256_Init(&h->outer) && SHA256_Update(&h->outer, opad, sizeof(opad));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(ipad, sizeof(ipad));
    OPENSSL_cleanse(opad, sizeof(opad));
    apr_pool_cleanup_register(p, h, hmac_cleanup, apr_pool_cleanup_null);
    return ok ? h : NULL;
}

int rt_crypto_hmac_sha256(const rt_hmac *h, int n, const void *const *parts,
                          const apr_size_t *lens,
                          unsigned char out[RT_SHA256_LEN])
{
    SHA256_CTX c = h->inner;
    unsigned char inner[RT_SHA256_LEN];
    int ok = 1;

    for (int i = 0; ok && i < n; i++) {
        ok = SHA256_Update(&c, parts[i], lens[i]);
    }
    ok = ok && SHA256_Final(inner, &c);
    c = h->outer;
    ok = ok && SHA256_Update(&c, inner, sizeof(inner)) && SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(inner, sizeof(inner));
    return ok;
}

#define POOL_BYTES 1024

/* Bumped in every forked child: a thread-local buffer filled before the
 * fork (the child's one thread is the parent's forking thread) must not
 * hand the child bytes the parent also holds. Checking this costs nothing
 * per call, where getpid() is a system call. glibc drops the handler when
 * the module is unloaded. */
static volatile unsigned long fork_generation = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forked_child(void)
{
    fork_generation++;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forked_child);
}

int rt_crypto_random(unsigned char *out, apr_size_t n)
{
    static __thread unsigned char pool[POOL_BYTES];
    static __thread apr_size_t left;
    static __thread unsigned long generation;

    if (n > POOL_BYTES) {
        return RAND_bytes(out, (int)n) == 1;
    }
    pthread_once(&atfork_once, register_atfork);
    if (n > left || generation != fork_generation) {
        if (RAND_bytes(pool, POOL_BYTES) != 1) {
            return 0;
        }
        left = POOL_BYTES;
        generation = fork_generation;
    }
    /* Hand out the end of the buffer and wipe it: no byte twice. */
    left -= n;
    memcpy(out, pool + left, n);
    OPENSSL_cleanse(pool + left, n);
    return 1;
}
