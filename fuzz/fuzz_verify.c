/* libFuzzer target: the bearer token verifier (rt_jwt_verify). Each input,
 * up to its first NUL, is the token of an "Authorization: Bearer" header;
 * an input that is a JSON object is also signed as claims and verified.
 *
 * The keys (RSA-2048, EC P-256, a 40-byte HMAC secret) are derived from
 * fixed labels with OpenSSL at start-up, written as files to a temporary
 * directory and loaded with rt_key_load, as the module loads its keys. The
 * derivation is deterministic, so tokens minted once with rt_jwt_sign stay
 * valid in the committed seed corpus and let the fuzzer past the signature
 * into the claims checks. RT_FUZZ_MINT=DIR writes such tokens to DIR and
 * exits (fuzz/run.sh does not need it; it is how the seeds were made). */
#include "fuzz_common.h"
#include "rt_jwt.h"
#include "rt_json.h"
#include "rt_key.h"
#include "rt_util.h"
#include "rt_jwt.h"

#include <unistd.h>
#include <apr_strings.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define LSAN_DISABLE() __lsan_disable()
#define LSAN_ENABLE() __lsan_enable()
#endif
#endif
#ifndef LSAN_DISABLE /* the coverage build has no sanitizer */
#define LSAN_DISABLE()
#define LSAN_ENABLE()
#endif

#define NOW 1700000000
#define LEEWAY 30
#define ISSUER "https://runai.test/auth/realms/runai"

static rt_key *key_rsa, *key_ec, *key_hs;
static rt_jwt_params all_keys, one_key[3];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_verify: %s\n", what);
    exit(1);
}

/* n bytes of SHA-256(label || counter) blocks: the fixed "randomness". */
static void expand(const char *label, unsigned char *out, size_t n)
{
    unsigned char block[SHA256_DIGEST_LENGTH];

    for (unsigned int ctr = 0; n > 0; ctr++) {
        char *in = apr_psprintf(fuzz_root, "%s/%u", label, ctr);
        size_t take = n < sizeof(block) ? n : sizeof(block);

        SHA256((const unsigned char *)in, strlen(in), block);
        memcpy(out, block, take);
        out += take;
        n -= take;
    }
}

/* The first prime p >= a fixed odd 1024-bit start with gcd(p - 1, e) = 1. */
static BIGNUM *fixed_prime(const char *label, const BIGNUM *e, BN_CTX *ctx)
{
    unsigned char buf[128];
    BIGNUM *p, *pm1, *g;

    expand(label, buf, sizeof(buf));
    buf[0] |= 0xC0; /* two top bits: p * q has exactly 2048 bits */
    buf[sizeof(buf) - 1] |= 1;
    p = BN_bin2bn(buf, sizeof(buf), NULL);
    pm1 = BN_new();
    g = BN_new();
    if (p == NULL || pm1 == NULL || g == NULL) {
        die("out of memory");
    }
    for (;;) {
        if (BN_check_prime(p, ctx, NULL) == 1 && BN_copy(pm1, p) &&
            BN_sub_word(pm1, 1) && BN_gcd(g, pm1, e, ctx) && BN_is_one(g)) {
            break;
        }
        if (!BN_add_word(p, 2)) {
            die("BN_add_word");
        }
    }
    BN_free(pm1);
    BN_free(g);
    return p;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (params == NULL || pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_KEYPAIR, params) != 1) {
        die(type);
    }
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(pc);
    return pk;
}

static EVP_PKEY *fixed_rsa(void)
{
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *e = BN_new(), *n = BN_new(), *d = BN_new(), *phi = BN_new();
    BIGNUM *p1 = BN_new(), *q1 = BN_new(), *dp = BN_new(), *dq = BN_new();
    BIGNUM *qi = BN_new(), *p, *q;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk;

    if (ctx == NULL || e == NULL || qi == NULL || bld == NULL ||
        !BN_set_word(e, 65537)) {
        die("out of memory");
    }
    p = fixed_prime("mod_runai_token fuzz rsa p", e, ctx);
    q = fixed_prime("mod_runai_token fuzz rsa q", e, ctx);
    if (!BN_mul(n, p, q, ctx) || !BN_sub(p1, p, BN_value_one()) ||
        !BN_sub(q1, q, BN_value_one()) || !BN_mul(phi, p1, q1, ctx) ||
        !BN_mod_inverse(d, e, phi, ctx) || !BN_mod(dp, d, p1, ctx) ||
        !BN_mod(dq, d, q1, ctx) || !BN_mod_inverse(qi, q, p, ctx)) {
        die("RSA arithmetic");
    }
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi)) {
        die("RSA parameters");
    }
    pk = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(e), BN_free(n), BN_clear_free(d), BN_free(phi), BN_free(p1);
    BN_free(q1), BN_clear_free(dp), BN_clear_free(dq), BN_free(qi);
    BN_clear_free(p), BN_clear_free(q);
    BN_CTX_free(ctx);
    return pk;
}

static EVP_PKEY *fixed_ec(void)
{
    unsigned char buf[32], pub[65];
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *d;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk;

    expand("mod_runai_token fuzz ec", buf, sizeof(buf));
    d = BN_bin2bn(buf, sizeof(buf), NULL);
    /* A 256-bit value is below the group order but for a 2^-32 chance:
     * reduce it anyway. */
    if (pt == NULL || ctx == NULL || d == NULL || bld == NULL ||
        !BN_nnmod(d, d, EC_GROUP_get0_order(g), ctx) || BN_is_zero(d) ||
        !EC_POINT_mul(g, pt, d, NULL, NULL, ctx) ||
        EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub,
                           sizeof(pub), ctx) != sizeof(pub)) {
        die("EC arithmetic");
    }
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                          sizeof(pub))) {
        die("EC parameters");
    }
    pk = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    BN_CTX_free(ctx);
    return pk;
}

static const char *write_pem(const char *dir, const char *name, EVP_PKEY *pk)
{
    const char *path = apr_pstrcat(fuzz_root, dir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    if (f == NULL || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)) {
        die("cannot write a key file");
    }
    fclose(f);
    EVP_PKEY_free(pk);
    return path;
}

static rt_key *load(const char *spec, const char *kid)
{
    rt_key *k;
    const char *err = rt_key_load(fuzz_root, spec, kid, &k);

    if (err != NULL) {
        die(err);
    }
    return k;
}

static void load_keys(void)
{
    char dir[] = "/tmp/rt_fuzz_verify_XXXXXX";
    unsigned char secret[40];
    const char *rsa, *ec, *hs;
    FILE *f;

    if (mkdtemp(dir) == NULL) {
        die("cannot create a temporary directory");
    }
    rsa = write_pem(dir, "rsa.pem", fixed_rsa());
    ec = write_pem(dir, "ec.pem", fixed_ec());
    hs = apr_pstrcat(fuzz_root, dir, "/hs.key", NULL);
    expand("mod_runai_token fuzz hmac", secret, sizeof(secret));
    f = fopen(hs, "w");
    if (f == NULL || fwrite(secret, 1, sizeof(secret), f) != sizeof(secret)) {
        die("cannot write the HMAC secret");
    }
    fclose(f);
    /* Thumbprint kids for RSA and EC, a configured kid for HMAC. */
    key_rsa = load(rsa, NULL);
    key_ec = load(ec, NULL);
    key_hs = load(apr_pstrcat(fuzz_root, "hmac:", hs, NULL), "hs-1");
    unlink(rsa);
    unlink(ec);
    unlink(hs);
    rmdir(dir);
}

static void set_params(rt_jwt_params *v, rt_key *const *keys, int n,
                       const apr_array_header_t *aud)
{
    apr_array_header_t *a = apr_array_make(fuzz_root, n, sizeof(rt_key *));

    for (int i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, rt_key *) = keys[i];
    }
    v->keys = a;
    v->issuer = ISSUER;
    v->audience = aud;
    v->now = NOW;
    v->leeway = LEEWAY;
}

/* Valid tokens of each algorithm and claim shape, plus a few near misses
 * (expired, wrong issuer) so the fuzzer starts next to every check. */
static void mint(const char *dir)
{
    static const char *const claims[] = {
        "{\"iss\":\"" ISSUER "\",\"sub\":\"alice\",\"aud\":\"runai\","
        "\"exp\":1700003600,\"iat\":1700000000}",
        "{\"iss\":\"" ISSUER "\",\"sub\":\"bob\",\"aud\":[\"x\",\"runai\"],"
        "\"exp\":1700003600.5,\"nbf\":1699999990,\"email\":\"b@x?>~\"}",
        "{\"iss\":\"" ISSUER "\",\"sub\":\"carol\",\"aud\":\"other\","
        "\"exp\":1700000010,\"nbf\":1700000020}",
        "{\"iss\":\"" ISSUER "\",\"sub\":\"dave\",\"aud\":\"runai\","
        "\"exp\":1699999960}",
        "{\"iss\":\"https://evil.test\",\"sub\":\"eve\",\"aud\":\"runai\","
        "\"exp\":1700003600}",
        "{\"iss\":\"" ISSUER "\",\"sub\":\"frank\",\"aud\":[1,null,\"runai\"],"
        "\"exp\":1700003600,\"groups\":[\"a\",\"b\"],\"nested\":{\"k\":[]}}",
    };
    const rt_key *keys[] = {key_rsa, key_ec, key_hs};
    const char *names[] = {"rs256", "es256", "hs256"};

    for (size_t k = 0; k < 3; k++) {
        for (size_t c = 0; c < sizeof(claims) / sizeof(claims[0]); c++) {
            json_t *j =
                rt_json_pool_own(fuzz_root, json_loads(claims[c], 0, NULL));
            char *tok = j ? rt_jwt_sign(fuzz_root, keys[k], j) : NULL;
            const char *path = apr_psprintf(
                fuzz_root, "%s/%s-%" APR_SIZE_T_FMT ".jwt", dir, names[k], c);
            FILE *f = fopen(path, "w");

            if (tok == NULL || f == NULL) {
                die("cannot mint a seed token");
            }
            fputs(tok, f);
            fclose(f);
        }
    }
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const aud[] = {"runai", "https://api.runai.test"};
    apr_array_header_t *a;
    const char *mint_dir = getenv("RT_FUZZ_MINT");

    (void)argc;
    (void)argv;
    fuzz_init_apr();
    /* The keys live for the process; the only pointers to their OpenSSL and
     * jansson objects are in pool memory, which APR gets with mmap and
     * LeakSanitizer does not scan. Without this every leak check in the
     * run would report them (they are freed at exit by the pool). */
    LSAN_DISABLE();
    load_keys();
    LSAN_ENABLE();
    a = apr_array_make(fuzz_root, 2, sizeof(const char *));
    APR_ARRAY_PUSH(a, const char *) = aud[0];
    APR_ARRAY_PUSH(a, const char *) = aud[1];
    set_params(&all_keys, (rt_key *[]){key_rsa, key_ec, key_hs}, 3, a);
    /* With a single key a token without kid is tried against it. */
    set_params(&one_key[0], &key_rsa, 1, a);
    set_params(&one_key[1], &key_ec, 1, a);
    set_params(&one_key[2], &key_hs, 1, a);
    if (mint_dir != NULL) {
        mint(mint_dir);
    }
    return 0;
}

/* 1 when the claims name one of the configured audiences. */
static int has_audience(const rt_jwt_params *v, json_t *aud)
{
    json_t *item;
    size_t i;

    if (json_is_string(aud)) {
        for (int j = 0; j < v->audience->nelts; j++) {
            if (strcmp(json_string_value(aud),
                       APR_ARRAY_IDX(v->audience, j, const char *)) == 0) {
                return 1;
            }
        }
        return 0;
    }
    json_array_foreach(aud, i, item)
    {
        if (json_is_string(item) && has_audience(v, item)) {
            return 1;
        }
    }
    return 0;
}

static void verify(apr_pool_t *p, const rt_jwt_params *v, const char *tok)
{
    const char *why = NULL, *iss;
    json_t *claims = rt_jwt_verify(p, v, tok, &why), *exp, *nbf;

    if (claims == NULL) {
        FUZZ_CHECK(why != NULL);
        return;
    }
    /* Accepted: every claims check held, none skipped for being absent. */
    FUZZ_CHECK(why == NULL && json_is_object(claims));
    iss = json_string_value(json_object_get(claims, "iss"));
    FUZZ_CHECK(iss != NULL && strcmp(iss, ISSUER) == 0);
    exp = json_object_get(claims, "exp");
    FUZZ_CHECK(json_is_number(exp) && json_number_value(exp) + LEEWAY > NOW);
    nbf = json_object_get(claims, "nbf");
    FUZZ_CHECK(nbf == NULL ||
               (json_is_number(nbf) && json_number_value(nbf) - LEEWAY <= NOW));
    FUZZ_CHECK(has_audience(v, json_object_get(claims, "aud")));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *tok = fuzz_cstr(data, size);
    json_t *claims;

    verify(p, &all_keys, tok);
    for (int i = 0; i < 3; i++) {
        verify(p, &one_key[i], tok);
    }
    /* A signature cannot be forged, so mutated claims never reach the
     * claims checks: an input that is a JSON object is also signed as the
     * claims of an HS256 token, which is then verified. */
    claims = rt_json_pool_own(
        p, json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL));
    if (json_is_object(claims)) {
        char *signed_tok = rt_jwt_sign(p, key_hs, claims);

        if (signed_tok != NULL) {
            verify(p, &all_keys, signed_tok);
            verify(p, &one_key[2], signed_tok);
        }
    }
    free(tok);
    apr_pool_destroy(p);
    return 0;
}
