#include "rt_key.h"
#include "rt_json.h"
#include "rt_util.h"
#include "rt_crypto.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#define HMAC_MIN_BYTES 32
#define KEY_FILE_MAX (1024 * 1024)

static apr_status_t key_cleanup(void *data)
{
    rt_key *k = data;

    EVP_MD_CTX_free(k->sign_tmpl);
    EVP_MD_CTX_free(k->verify_tmpl);
    EVP_PKEY_free(k->pkey);
    json_decref(k->jwk);
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
    }
    return APR_SUCCESS;
}

/* Never prompt for a pass phrase: httpd may have no terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static const char *read_file(apr_pool_t *p, const char *path,
                             unsigned char **data, apr_size_t *len,
                             const char **warning)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char ebuf[120];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE | APR_FINFO_PROT, f);
    }
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read key file '%s': %s", path,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    if (fi.size <= 0 || fi.size > KEY_FILE_MAX) {
        apr_file_close(f);
        return apr_psprintf(p, "key file '%s' is empty or too large", path);
    }
    *len = (apr_size_t)fi.size;
    *data = apr_palloc(p, *len + 1);
    rv = apr_file_read_full(f, *data, *len, NULL);
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read key file '%s': %s", path,
                            apr_strerror(rv, ebuf, sizeof(ebuf)));
    }
    (*data)[*len] = '\0';
    if (fi.protection & (APR_FPROT_GREAD | APR_FPROT_WREAD)) {
        *warning = apr_psprintf(p,
                                "key file '%s' is readable by group or "
                                "others; chmod 600 it",
                                path);
    }
    return NULL;
}

static char *bn_b64url(apr_pool_t *p, EVP_PKEY *pkey, const char *param,
                       int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;

    if (!EVP_PKEY_get_bn_param(pkey, param, &bn)) {
        return NULL;
    }
    n = pad ? pad : BN_num_bytes(bn);
    if (n > (int)sizeof(buf) || BN_bn2binpad(bn, buf, n) != n) {
        BN_free(bn);
        return NULL;
    }
    BN_free(bn);
    return rt_b64url(p, buf, (apr_size_t)n);
}

static char *sha256_b64url(apr_pool_t *p, const char *s)
{
    unsigned char md[RT_SHA256_LEN];

    if (!rt_crypto_sha256(s, strlen(s), md)) {
        return NULL;
    }
    return rt_b64url(p, md, sizeof(md));
}

/* Fills alg, md, jwk and the RFC 7638 thumbprint input for an RSA/EC key. */
static const char *describe_pkey(apr_pool_t *p, rt_key *k,
                                 const char **thumb_input)
{
    int bits = EVP_PKEY_get_bits(k->pkey);

    k->jwk = json_object();
    if (EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_RSA) {
        char *n = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_RSA_N, 0);
        char *e = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);

        if (bits < 2048 || bits > 8192) {
            return apr_psprintf(p,
                                "RSA key in '%s' has %d bits; 2048 to 8192 "
                                "are accepted",
                                k->file, bits);
        }
        if (n == NULL || e == NULL) {
            return apr_psprintf(p, "cannot export RSA key '%s'", k->file);
        }
        k->alg = RT_ALG_RS256;
        k->alg_name = "RS256";
        k->md = EVP_sha256();
        json_object_set_new(k->jwk, "kty", json_string("RSA"));
        json_object_set_new(k->jwk, "n", json_string(n));
        json_object_set_new(k->jwk, "e", json_string(e));
        *thumb_input = apr_psprintf(p,
                                    "{\"e\":\"%s\",\"kty\":\"RSA\","
                                    "\"n\":\"%s\"}",
                                    e, n);
        return NULL;
    }
    if (EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_EC) {
        char group[64];
        const char *crv;
        char *x, *y;

        if (!EVP_PKEY_get_group_name(k->pkey, group, sizeof(group), NULL)) {
            return apr_psprintf(p, "cannot read the curve of EC key '%s'",
                                k->file);
        }
        if (strcmp(group, "prime256v1") == 0) {
            k->alg = RT_ALG_ES256, k->alg_name = "ES256", crv = "P-256";
            k->md = EVP_sha256(), k->ec_half = 32;
        } else if (strcmp(group, "secp384r1") == 0) {
            k->alg = RT_ALG_ES384, k->alg_name = "ES384", crv = "P-384";
            k->md = EVP_sha384(), k->ec_half = 48;
        } else if (strcmp(group, "secp521r1") == 0) {
            k->alg = RT_ALG_ES512, k->alg_name = "ES512", crv = "P-521";
            k->md = EVP_sha512(), k->ec_half = 66;
        } else {
            return apr_psprintf(p,
                                "EC key '%s' is on curve %s; P-256, P-384 "
                                "and P-521 are accepted",
                                k->file, group);
        }
        x = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, (int)k->ec_half);
        y = bn_b64url(p, k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, (int)k->ec_half);
        if (x == NULL || y == NULL) {
            return apr_psprintf(p, "cannot export EC key '%s'", k->file);
        }
        json_object_set_new(k->jwk, "kty", json_string("EC"));
        json_object_set_new(k->jwk, "crv", json_string(crv));
        json_object_set_new(k->jwk, "x", json_string(x));
        json_object_set_new(k->jwk, "y", json_string(y));
        *thumb_input = apr_psprintf(p,
                                    "{\"crv\":\"%s\",\"kty\":\"EC\","
                                    "\"x\":\"%s\",\"y\":\"%s\"}",
                                    crv, x, y);
        return NULL;
    }
    return apr_psprintf(p, "key in '%s' is neither RSA nor EC", k->file);
}

static const char *load_pem(apr_pool_t *p, rt_key *k, unsigned char *data,
                            apr_size_t len, const char **thumb_input)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    BIO *out;
    char *pem;
    long pem_len;

    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    k->can_sign = k->pkey != NULL;
    if (k->pkey == NULL) {
        /* A public key is enough for a verify-only (rotated-out) key. */
        BIO_free(bio);
        bio = BIO_new_mem_buf(data, (int)len);
        k->pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    if (k->pkey == NULL) {
        return apr_psprintf(p,
                            "'%s' holds no unencrypted PEM private or "
                            "public key",
                            k->file);
    }
    out = BIO_new(BIO_s_mem());
    if (out == NULL || !PEM_write_bio_PUBKEY(out, k->pkey)) {
        BIO_free(out);
        return apr_psprintf(p, "cannot export the public key of '%s'", k->file);
    }
    pem_len = BIO_get_mem_data(out, &pem);
    k->public_pem = apr_pstrmemdup(p, pem, (apr_size_t)pem_len);
    BIO_free(out);
    return describe_pkey(p, k, thumb_input);
}

/* The per-use state a key needs, set up once: OpenSSL 3 would otherwise
 * fetch the algorithms on every signature. */
static const char *prepare(apr_pool_t *p, rt_key *k)
{
    if (k->secret != NULL) {
        k->hmac = rt_crypto_hmac_new(p, k->secret, k->secret_len);
        return k->hmac ? NULL
                       : apr_psprintf(p, "cannot use the HMAC key in '%s'",
                                      k->file);
    }
    k->verify_tmpl = EVP_MD_CTX_new();
    if (k->verify_tmpl == NULL ||
        EVP_DigestVerifyInit(k->verify_tmpl, NULL, k->md, NULL, k->pkey) != 1) {
        return apr_psprintf(p, "cannot verify with the key in '%s'", k->file);
    }
    if (k->can_sign) {
        k->sign_tmpl = EVP_MD_CTX_new();
        if (k->sign_tmpl == NULL ||
            EVP_DigestSignInit(k->sign_tmpl, NULL, k->md, NULL, k->pkey) != 1) {
            return apr_psprintf(p, "cannot sign with the key in '%s'", k->file);
        }
    }
    return NULL;
}

const char *rt_key_load(apr_pool_t *p, const char *spec, const char *kid,
                        rt_key **out)
{
    rt_key *k = apr_pcalloc(p, sizeof(*k));
    const char *err, *thumb_input = NULL;
    unsigned char *data;
    apr_size_t len;
    int hmac = strncmp(spec, "hmac:", 5) == 0;
    json_t *hdr;
    char *hdr_json;

    k->file = hmac ? spec + 5 : spec;
    apr_pool_cleanup_register(p, k, key_cleanup, apr_pool_cleanup_null);
    err = read_file(p, k->file, &data, &len, &k->warning);
    if (err != NULL) {
        return err;
    }
    if (hmac) {
        if (len < HMAC_MIN_BYTES) {
            return apr_psprintf(p,
                                "HMAC secret in '%s' has %" APR_SIZE_T_FMT
                                " bytes; at least %d are needed",
                                k->file, len, HMAC_MIN_BYTES);
        }
        k->secret = data;
        k->secret_len = len;
        k->can_sign = 1;
        k->alg = RT_ALG_HS256;
        k->alg_name = "HS256";
        k->md = EVP_sha256();
        thumb_input = apr_psprintf(p, "{\"k\":\"%s\",\"kty\":\"oct\"}",
                                   rt_b64url(p, data, len));
    } else {
        err = load_pem(p, k, data, len, &thumb_input);
        OPENSSL_cleanse(data, len);
        if (err != NULL) {
            return err;
        }
    }
    if (!k->can_sign) {
        k->warning = NULL; /* a public key may be readable by anyone */
    }
    err = prepare(p, k);
    if (err != NULL) {
        return err;
    }
    k->kid = kid ? apr_pstrdup(p, kid) : sha256_b64url(p, thumb_input);
    if (k->kid == NULL) {
        return apr_psprintf(p, "cannot compute the key id of '%s'", k->file);
    }
    if (k->jwk != NULL) {
        json_object_set_new(k->jwk, "kid", json_string(k->kid));
        json_object_set_new(k->jwk, "alg", json_string(k->alg_name));
        json_object_set_new(k->jwk, "use", json_string("sig"));
    }
    hdr = rt_json_pool_own(p, json_pack("{s:s,s:s,s:s}", "alg", k->alg_name,
                                        "typ", "JWT", "kid", k->kid));
    hdr_json = hdr ? rt_json_ascii(p, hdr) : NULL;
    if (hdr_json == NULL) {
        return apr_psprintf(p, "key id for '%s' is not valid UTF-8", k->file);
    }
    k->header_b64 = rt_b64url(p, (unsigned char *)hdr_json, strlen(hdr_json));
    k->header_b64_len = strlen(k->header_b64);
    *out = k;
    return NULL;
}

static apr_size_t ecdsa_der_to_jose(const rt_key *key, const unsigned char *der,
                                    size_t der_len, unsigned char *sig)
{
    const unsigned char *d = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)der_len);
    const BIGNUM *r, *s;
    int half = (int)key->ec_half;
    apr_size_t n = 0;

    if (es == NULL) {
        return 0;
    }
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, half) == half &&
        BN_bn2binpad(s, sig + half, half) == half) {
        n = 2 * key->ec_half;
    }
    ECDSA_SIG_free(es);
    return n;
}

apr_size_t rt_key_sign(const rt_key *key, const unsigned char *in,
                       apr_size_t len, unsigned char *sig)
{
    EVP_MD_CTX *ctx;
    unsigned char der[160];
    size_t sig_len;
    int ok;

    if (!key->can_sign) {
        return 0;
    }
    if (key->hmac != NULL) {
        const void *parts[] = {in};
        return rt_crypto_hmac_sha256(key->hmac, 1, parts, &len, sig)
                   ? RT_SHA256_LEN
                   : 0;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return 0;
    }
    sig_len = key->ec_half ? sizeof(der) : RT_SIG_MAX;
    ok = EVP_MD_CTX_copy_ex(ctx, key->sign_tmpl) == 1 &&
         EVP_DigestSign(ctx, key->ec_half ? der : sig, &sig_len, in, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return 0;
    }
    return key->ec_half ? ecdsa_der_to_jose(key, der, sig_len, sig) : sig_len;
}

int rt_key_verify(const rt_key *key, const unsigned char *in, apr_size_t len,
                  const unsigned char *sig, apr_size_t sig_len)
{
    unsigned char mac[RT_SHA256_LEN], der[160];
    EVP_MD_CTX *ctx;
    int ok;

    if (key->hmac != NULL) {
        const void *parts[] = {in};
        return sig_len == RT_SHA256_LEN &&
               rt_crypto_hmac_sha256(key->hmac, 1, parts, &len, mac) &&
               CRYPTO_memcmp(mac, sig, RT_SHA256_LEN) == 0;
    }
    if (key->ec_half) {
        /* JOSE R||S back to the DER that OpenSSL verifies. */
        ECDSA_SIG *es;
        BIGNUM *r, *s;
        unsigned char *d = der;
        int dl;

        if (sig_len != 2 * key->ec_half) {
            return 0;
        }
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sig, (int)key->ec_half, NULL);
        s = BN_bin2bn(sig + key->ec_half, (int)key->ec_half, NULL);
        if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(s);
            return 0;
        }
        dl = i2d_ECDSA_SIG(es, NULL);
        if (dl <= 0 || dl > (int)sizeof(der)) {
            ECDSA_SIG_free(es);
            return 0;
        }
        i2d_ECDSA_SIG(es, &d);
        ECDSA_SIG_free(es);
        sig = der;
        sig_len = (apr_size_t)dl;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_MD_CTX_copy_ex(ctx, key->verify_tmpl) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, in, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
