/* Unit tests of the core (src/ without httpd), TAP output for prove. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <jwt.h>

#include "rt_authreq.h"
#include "rt_claim.h"
#include "rt_pkce.h"
#include "rt_outage.h"
#include "rt_redis.h"
#include "rt_json.h"
#include "rt_counters.h"
#include "rt_credcache.h"
#include "rt_crypto.h"
#include "rt_error.h"
#include "rt_form.h"
#include "rt_oidc.h"
#include "rt_record.h"
#include "rt_refresh.h"
#include "rt_shmtable.h"
#include "rt_jwt.h"
#include "rt_key.h"
#include "rt_request.h"
#include "rt_util.h"
#include "rt_statefile.h"

static int tests, failures;

static void ok(int cond, const char *name)
{
    tests++;
    if (!cond) {
        failures++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", tests, name);
}

static void is_str(const char *got, const char *want, const char *name)
{
    int same = got && want ? strcmp(got, want) == 0 : got == want;
    ok(same, name);
    if (!same) {
        printf("#   got:  '%s'\n#   want: '%s'\n", got ? got : "(null)",
               want ? want : "(null)");
    }
}

static apr_pool_t *pool;
static char tmpdir[] = "/tmp/rt_unit_XXXXXX";

static void test_b64url(void)
{
    const unsigned char bin[] = {0xfb, 0xff};
    is_str(rt_b64url(pool, (const unsigned char *)"", 0), "", "b64url empty");
    is_str(rt_b64url(pool, (const unsigned char *)"f", 1), "Zg", "b64url 1");
    is_str(rt_b64url(pool, (const unsigned char *)"fo", 2), "Zm8", "b64url 2");
    is_str(rt_b64url(pool, (const unsigned char *)"foo", 3), "Zm9v",
           "b64url 3");
    is_str(rt_b64url(pool, bin, 2), "-_8", "b64url uses - and _");
    {
        apr_size_t n = 0;
        unsigned char *d = rt_b64url_decode(pool, "-_8", 3, &n);

        ok(d != NULL && n == 2 && d[0] == 0xfb && d[1] == 0xff,
           "b64url decodes what it encodes");
        ok(rt_b64url_decode(pool, "-_9", 3, &n) == NULL,
           "b64url decode: leftover bits must be zero");
        ok(rt_b64url_decode(pool, "Zm9v=", 5, &n) == NULL &&
               rt_b64url_decode(pool, "Zm+v", 4, &n) == NULL &&
               rt_b64url_decode(pool, "Z", 1, &n) == NULL,
           "b64url decode: no padding, no +, no length 4n+1");
    }
    ok(strlen(rt_random_id(pool, 16)) == 22, "random id of 16 bytes: 22 chars");
    ok(strcmp(rt_random_id(pool, 16), rt_random_id(pool, 16)) != 0,
       "random ids differ");
}

static void test_utf8(void)
{
    ok(rt_utf8_valid("plain", 5), "utf8 ascii");
    ok(rt_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
       "utf8 2, 3 and 4 byte sequences");
    ok(!rt_utf8_valid("\xc0\x80", 2), "utf8 overlong refused");
    ok(!rt_utf8_valid("\xed\xa0\x80", 3), "utf8 surrogate refused");
    ok(!rt_utf8_valid("\xe2\x82", 2), "utf8 truncated refused");
    ok(!rt_utf8_valid("\xf5\x80\x80\x80", 4), "utf8 above U+10FFFF refused");
    ok(!rt_utf8_valid("a\xff", 2), "utf8 stray byte refused");
}

static void test_json_ascii(void)
{
    json_t *o = rt_json_pool_own(pool, json_object());
    json_object_set_new(o, "a", json_string("x>y?z~\x7f \xc3\xa9"));
    is_str(rt_json_ascii(pool, o),
           "{\"a\":\"x\\u003ey\\u003fz\\u007e\\u007f \\u00e9\"}",
           "json ascii escapes > ? ~ DEL and non-ASCII");
}

static void test_json_ascii_shapes(void)
{
    json_t *o =
        rt_json_pool_own(pool, json_pack("{s:s,s:[i,f,b,n],s:{s:s},s:f}", "s",
                                         "q\"b\\n\n\x01\xf0\x9f\x98\x80", "a",
                                         -42, 2.5, 1, "o", "k", "v", "r", 3.0));
    const char *want = "{\"s\":\"q\\\"b\\\\n\\u000a\\u0001\\ud83d"
                       "\\ude00\",\"a\":[-42,2.5,true,null],\"o\":{\"k\":"
                       "\"v\"},\"r\":3.0}";
    char *got = rt_json_ascii(pool, o);
    json_t *back = rt_json_pool_own(pool, json_loads(got ? got : "", 0, NULL));

    is_str(got, want, "json ascii: escapes, surrogate pairs, numbers, nesting");
    ok(back && json_equal(back, o), "json ascii: jansson reads back the same");
}

static void test_small_parsers(void)
{
    apr_int64_t v = 0;
    ok(rt_media_type_is("application/json", "application/json"), "media json");
    ok(rt_media_type_is("Application/JSON; charset=utf-8", "application/json"),
       "media type case and parameters");
    ok(!rt_media_type_is("application/jsonx", "application/json"),
       "media type prefix refused");
    ok(!rt_media_type_is("text/plain", "application/json"), "media other");
    ok(rt_parse_int("10", 1, 100, &v) == 0 && v == 10, "int 10");
    ok(rt_parse_int("0", 1, 100, &v) != 0, "int below min");
    ok(rt_parse_int("101", 1, 100, &v) != 0, "int above max");
    ok(rt_parse_int("-1", -5, 100, &v) != 0, "int sign refused");
    ok(rt_parse_int("1x", 1, 100, &v) != 0, "int trailing junk");
    ok(rt_parse_int("", 1, 100, &v) != 0, "int empty");
    ok(rt_parse_int("99999999999999999999", 1, 100, &v) != 0, "int overflow");
}

static rt_error *parse(const char *body, unsigned int known, rt_fields *f)
{
    return rt_request_parse_json(pool, body, strlen(body), known, f);
}

static void expect_400(const char *body, const char *needle, const char *name)
{
    rt_fields f;
    rt_error *e = parse(body, RT_FIELDS_TOKEN, &f);
    int good = e && rt_error_status(e) == 400 && strstr(e->message, needle);
    ok(good, name);
    if (!good) {
        printf("#   got: %s\n", e ? e->message : "success");
    }
}

static void test_request(void)
{
    rt_fields f;
    rt_error *e;

    e = parse("{\"AppId\":\"a1\",\"APPSECRET\":\"s\",\"clientId\":\"c\"}",
              RT_FIELDS_TOKEN, &f);
    ok(e == NULL, "case-insensitive keys parse");
    is_str(rt_request_field(&f, RT_F_APP_ID), "a1", "AppId is appID");
    is_str(rt_request_field(&f, RT_F_APP_SECRET), "s",
           "APPSECRET is appSecret");
    is_str(rt_request_field(&f, RT_F_CLIENT_ID), "c", "clientId is clientID");
    e = parse("{\"appID\":\"\",\"other\":[1,{\"x\":null}],\"id\":7}",
              RT_FIELDS_TOKEN, &f);
    ok(e == NULL && rt_request_field(&f, RT_F_APP_ID) == NULL,
       "empty field reads as absent; unknown keys of any type ignored");
    e = parse("{\"id\":\"i\",\"name\":\"n\",\"secret\":\"s\",\"appID\":5}",
              RT_FIELDS_LEGACY_APP, &f);
    ok(e == NULL && strcmp(rt_request_field(&f, RT_F_ID), "i") == 0,
       "legacy route reads id, ignores appID");
    expect_400("{\"appID\":\"a\",\"APPID\":\"b\"}", "duplicate",
               "duplicate in other casing");
    expect_400("{\"appID\":\"a\",\"appID\":\"a\"}", "duplicate",
               "exact duplicate");
    expect_400("{\"zz\":1,\"ZZ\":2}", "duplicate", "duplicate unknown key");
    expect_400("{\"appSecret\":5}", "appSecret", "number names the field");
    expect_400("{\"password\":null}", "password", "null names the field");
    expect_400("{\"username\":[\"a\"]}", "username", "array names the field");
    expect_400("{\"grantType\":{}}", "grantType", "object names the field");
    expect_400("{\"clientID\":true}", "clientID", "bool names the field");
    expect_400("[1,2]", "object", "array body refused");
    expect_400("\"str\"", "object", "string body refused");
    expect_400("{\"a\":\"\\u0000\"}", "NUL", "escaped NUL refused");
    expect_400("{\"a\":\"\xff\"}", "UTF-8", "invalid UTF-8 refused");
    expect_400("", "empty", "empty body refused");
    e = rt_request_parse_json(pool, "{\"a\":\"x\0\"}", 9, RT_FIELDS_TOKEN, &f);
    ok(e && rt_error_status(e) == 400 && strstr(e->message, "NUL"),
       "raw NUL refused");
    e = parse("{\"password\":\"hunter2", RT_FIELDS_TOKEN, &f);
    ok(e && rt_error_status(e) == 400 && !strstr(e->message, "hunter2") &&
           (!e->details || !strstr(e->details, "hunter2")),
       "invalid JSON error does not quote the input");
    is_str(rt_error_body(pool, e),
           apr_psprintf(pool,
                        "{\"code\":400,\"message\":\"request body is "
                        "not valid JSON\",\"details\":\"%s\"}",
                        e->details),
           "error body shape");
}

static void claim_is(const char *text, rt_claim_type t, const char *want,
                     int want_bad, const char *name)
{
    int bad = -1;
    json_t *v = rt_claim_value(text, t, &bad);
    char *got = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    ok(bad == want_bad && (want ? got && strcmp(got, want) == 0 : !got), name);
    if (got && want && strcmp(got, want)) {
        printf("#   got %s want %s\n", got, want);
    }
    free(got);
    json_decref(v);
}

static void test_claims(void)
{
    claim_is("x", RT_CLAIM_STRING, "\"x\"", 0, "string claim");
    claim_is("", RT_CLAIM_STRING, NULL, 0, "empty claim omitted");
    claim_is("a, b,,c ", RT_CLAIM_LIST, "[\"a\",\"b\",\"c\"]", 0, "list");
    claim_is(" , ,", RT_CLAIM_LIST, NULL, 0, "list of nothing omitted");
    /* mod_authnz_ldap joins an attribute's values with "; " */
    claim_is("ml-team; research; gpu users", RT_CLAIM_LIST,
             "[\"ml-team\",\"research\",\"gpu users\"]", 0,
             "list of values joined with \"; \"");
    claim_is("a,b; c, d;e", RT_CLAIM_LIST, "[\"a\",\"b\",\"c\",\"d;e\"]", 0,
             "list: commas and \"; \" both separate, a bare ';' does not");
    claim_is("a;b;c", RT_CLAIM_LIST, "[\"a;b;c\"]", 0,
             "list: semicolons without a space stay in the item");
    claim_is(";  ; ;", RT_CLAIM_LIST, "[\";\"]", 0,
             "list: empty items between \"; \" dropped, a last ';' kept");
    claim_is("solo", RT_CLAIM_LIST, "[\"solo\"]", 0, "list of one value");
    claim_is("x;", RT_CLAIM_LIST, "[\"x;\"]", 0, "list: a ';' at the end");
    claim_is("42", RT_CLAIM_NUMBER, "42", 0, "integer");
    claim_is("-4.5", RT_CLAIM_NUMBER, "-4.5", 0, "decimal");
    claim_is("4x", RT_CLAIM_NUMBER, NULL, 1, "bad number flagged");
    claim_is(" 4", RT_CLAIM_NUMBER, NULL, 1, "number with space flagged");
    claim_is("nan", RT_CLAIM_NUMBER, NULL, 1, "nan flagged");
    claim_is("Yes", RT_CLAIM_BOOL, "true", 0, "bool yes");
    claim_is("off", RT_CLAIM_BOOL, "false", 0, "bool off");
    claim_is("maybe", RT_CLAIM_BOOL, NULL, 1, "bad bool flagged");
    ok(rt_claim_type_parse("LIST") == RT_CLAIM_LIST &&
           rt_claim_type_parse("int") < 0,
       "claim type names");
}

static const char *write_key(const char *name, EVP_PKEY *pk, int pub_only)
{
    const char *path = apr_pstrcat(pool, tmpdir, "/", name, NULL);
    FILE *fp = fopen(path, "w");
    if (pub_only) {
        PEM_write_PUBKEY(fp, pk);
    } else {
        PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
    }
    fclose(fp);
    chmod(path, 0600);
    return path;
}

static const char *write_bytes(const char *name, const char *data, size_t n)
{
    const char *path = apr_pstrcat(pool, tmpdir, "/", name, NULL);
    FILE *fp = fopen(path, "w");
    fwrite(data, 1, n, fp);
    fclose(fp);
    return path;
}

/* Signs claims with key and verifies the token with libjwt. */
static void sign_and_verify(const rt_key *k, const char *alg)
{
    json_t *claims = rt_json_pool_own(
        pool, json_pack("{s:s,s:s}", "sub", "u?>~", "aud", "runai"));
    char *tok = rt_jwt_sign(pool, k, claims);
    const char *vk = k->secret ? (const char *)k->secret : k->public_pem;
    int vlen = k->secret ? (int)k->secret_len : (int)strlen(k->public_pem);
    jwt_t *jwt = NULL;
    char *dot1, *dot2;

    ok(tok != NULL, apr_psprintf(pool, "%s: signs", alg));
    if (tok == NULL) {
        return;
    }
    ok(jwt_decode(&jwt, tok, (const unsigned char *)vk, vlen) == 0 &&
           strcmp(jwt_get_grant(jwt, "sub"), "u?>~") == 0,
       apr_psprintf(pool, "%s: libjwt verifies", alg));
    jwt_free(jwt);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    ok(strcspn(dot1 + 1, "-_") >= (size_t)(dot2 - dot1 - 1),
       apr_psprintf(pool, "%s: payload segment has no - or _", alg));
    dot2[1] = dot2[1] == 'A' ? 'B' : 'A';
    jwt = NULL;
    ok(jwt_decode(&jwt, tok, (const unsigned char *)vk, vlen) != 0,
       apr_psprintf(pool, "%s: libjwt refuses a changed signature", alg));
    jwt_free(jwt);
}

static void test_keys(void)
{
    static const struct {
        const char *alg, *curve;
    } ec[] = {{"ES256", "P-256"}, {"ES384", "P-384"}, {"ES512", "P-521"}};
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    rt_key *k = NULL;
    const char *err;
    char secret[40];

    err = rt_key_load(pool, write_key("rsa.pem", rsa, 0), NULL, &k);
    ok(err == NULL && strcmp(k->alg_name, "RS256") == 0 && k->can_sign,
       "RSA key loads as RS256");
    ok(k && strlen(k->kid) == 43, "default kid is a SHA-256 thumbprint");
    ok(k && k->warning == NULL, "no warning for a 0600 key file");
    if (k) {
        ok(rt_jwt_selfcheck(pool, k) == NULL, "libjwt self-check passes");
        sign_and_verify(k, "RS256");
    }
    err = rt_key_load(pool, write_key("rsa.pub", rsa, 1), "old-key", &k);
    ok(err == NULL && !k->can_sign && strcmp(k->kid, "old-key") == 0,
       "public key loads verify-only with the given kid");
    ok(err == NULL &&
           rt_jwt_sign(pool, k, rt_json_pool_own(pool, json_object())) == NULL,
       "a verify-only key does not sign");
    err = rt_key_load(pool, write_key("small.pem", small, 0), NULL, &k);
    ok(err && strstr(err, "1024") && strstr(err, "small.pem"),
       "RSA-1024 refused, naming the file");
    for (int i = 0; i < 3; i++) {
        EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "EC", ec[i].curve);
        err = rt_key_load(pool, write_key(ec[i].alg, e, 0), NULL, &k);
        ok(err == NULL && strcmp(k->alg_name, ec[i].alg) == 0,
           apr_psprintf(pool, "EC %s key loads as %s", ec[i].curve, ec[i].alg));
        if (err == NULL) {
            sign_and_verify(k, ec[i].alg);
        }
        EVP_PKEY_free(e);
    }
    memset(secret, 'k', sizeof(secret));
    err = rt_key_load(
        pool, apr_pstrcat(pool, "hmac:", write_bytes("hs", secret, 32), NULL),
        NULL, &k);
    ok(err == NULL && strcmp(k->alg_name, "HS256") == 0 && k->jwk == NULL,
       "32-byte hmac secret loads as HS256, unpublished");
    if (err == NULL) {
        sign_and_verify(k, "HS256");
    }
    err = rt_key_load(
        pool, apr_pstrcat(pool, "hmac:", write_bytes("hs31", secret, 31), NULL),
        NULL, &k);
    ok(err && strstr(err, "hs31"), "31-byte hmac secret refused");
    err = rt_key_load(pool, "/nonexistent/key.pem", NULL, &k);
    ok(err && strstr(err, "/nonexistent/key.pem"), "missing file named");
    err =
        rt_key_load(pool, write_bytes("junk.pem", "not a key\n", 10), NULL, &k);
    ok(err && strstr(err, "junk.pem"), "unparsable file named");
    chmod(apr_pstrcat(pool, tmpdir, "/rsa.pem", NULL), 0644);
    err = rt_key_load(pool, apr_pstrcat(pool, tmpdir, "/rsa.pem", NULL), NULL,
                      &k);
    ok(err == NULL && k->warning && strstr(k->warning, "readable"),
       "world-readable key file gives a warning");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(small);
}

static void test_records(void)
{
    unsigned char k1[RT_REC_KEY_LEN], k2[RT_REC_KEY_LEN];
    json_t *d = rt_json_pool_own(pool, json_pack("{s:s}", "sub", "alice"));
    apr_size_t len;
    char *enc = rt_record_encode(pool, 2000, d, &len);
    json_t *back;

    rt_record_key(k1, RT_REC_CODE, "secret", 6);
    rt_record_key(k2, RT_REC_REFRESH, "secret", 6);
    ok(k1[32] == 'c' && k2[32] == 'r' && memcmp(k1, k2, 32) == 0,
       "record keys: SHA-256 of the material, then the kind byte");
    {
        unsigned char k3[RT_REC_KEY_LEN];
        rt_record_key(k3, RT_REC_CODE, "other", 5);
        ok(k3[0] != k1[0] || k3[1] != k1[1],
           "record keys start with hash bytes (shmcb spreads keys by them)");
    }
    ok(memmem(k1, sizeof(k1), "secret", 6) == NULL,
       "record key does not hold the secret");
    ok(enc != NULL && strstr(enc, "\"v\":1") && strstr(enc, "\"exp\":2000"),
       "record carries version and expiry");
    back = rt_record_decode(pool, (unsigned char *)enc, len, 1999);
    is_str(json_string_value(json_object_get(back, "sub")), "alice",
           "record round trip");
    ok(rt_record_decode(pool, (unsigned char *)enc, len, 2000) == NULL,
       "expired record refused");
    ok(rt_record_decode(pool, (unsigned char *)"{\"v\":2,\"exp\":9e9,\"d\":{}}",
                        24, 1) == NULL,
       "other format version refused");
    ok(rt_record_decode(pool, (unsigned char *)"garbage", 7, 1) == NULL,
       "garbage refused");
}

static void test_form(void)
{
    rt_fields f;
    rt_error *e;
    const char *id, *secret;
    const char *b = "grant_type=authorization_code&client_id=c%20li&"
                    "redirect_uri=http%3A%2F%2Fx%2Fcb&code=a+b&scope=openid";

    e = rt_form_parse(pool, b, strlen(b), &f);
    ok(e == NULL, "form parses");
    is_str(rt_request_field(&f, RT_F_GRANT_TYPE), "exchange_token",
           "authorization_code maps to exchange_token");
    is_str(rt_request_field(&f, RT_F_CLIENT_ID), "c li", "percent-decoding");
    is_str(rt_request_field(&f, RT_F_REDIRECT_URI), "http://x/cb",
           "decoded URI");
    is_str(rt_request_field(&f, RT_F_CODE), "a b", "plus is space");
    b = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&"
        "device_code=d-_0&client_id=kubelogin";
    e = rt_form_parse(pool, b, strlen(b), &f);
    ok(e == NULL &&
           strcmp(rt_request_field(&f, RT_F_GRANT_TYPE),
                  "urn:ietf:params:oauth:grant-type:device_code") == 0 &&
           strcmp(rt_request_field(&f, RT_F_DEVICE_CODE), "d-_0") == 0,
       "form: the device grant's grant_type and device_code");
    e = rt_request_parse_json(pool, "{\"DeviceCode\":\"d\",\"scope\":1}", 28,
                              RT_FIELDS_TOKEN, &f);
    ok(e == NULL && strcmp(rt_request_field(&f, RT_F_DEVICE_CODE), "d") == 0,
       "JSON: deviceCode (any case); scope is no field");
    e = rt_form_parse(pool, "code=1&code=2", 13, &f);
    ok(e && rt_error_status(e) == 400 && strstr(e->message, "duplicate"),
       "duplicate parameter refused");
    e = rt_form_parse(pool, "code=%zz", 8, &f);
    ok(e && rt_error_status(e) == 400, "bad escape refused");
    e = rt_form_parse(pool, "code=%00", 8, &f);
    ok(e && rt_error_status(e) == 400, "escaped NUL refused");
    e = rt_form_parse(pool, "code=%ff", 8, &f);
    ok(e && rt_error_status(e) == 400, "invalid UTF-8 refused");
    e = rt_form_parse(pool, "code=%4", 7, &f);
    ok(e && rt_error_status(e) == 400, "truncated escape refused");
    e = rt_form_basic_auth(pool, "Basic YXBwJTNBMTpzM2M6cmV0", &id, &secret);
    ok(e == NULL && strcmp(id, "app:1") == 0 && strcmp(secret, "s3c:ret") == 0,
       "basic credentials are form-decoded, split at the first colon");
    e = rt_form_basic_auth(pool, "Basic bm9jb2xvbg==", &id, &secret);
    ok(e && rt_error_status(e) == 401,
       "basic credentials without colon refused");
}

static void test_pkce(void)
{
    /* RFC 7636 appendix B */
    ok(rt_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
       "RFC 7636 example verifier matches");
    ok(!rt_pkce_s256_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
                        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
       "other verifier does not");
    ok(!rt_pkce_syntax_ok("short") &&
           !rt_pkce_syntax_ok("has space has space has space "
                              "has space has space"),
       "verifier syntax checked");
}

static char *sign_claims(rt_key *k, const char *json)
{
    json_t *c = rt_json_pool_own(pool, json_loads(json, 0, NULL));
    return rt_jwt_sign(pool, k, c);
}

static void refuse(const rt_jwt_params *v, const char *tok, const char *want,
                   const char *name)
{
    const char *why = NULL;
    json_t *c = rt_jwt_verify(pool, v, tok, &why);
    ok(c == NULL && why && strstr(why, want), name);
    if (c || !why || !strstr(why, want)) {
        printf("#   why: %s\n", why ? why : "(verified)");
    }
}

static void test_verify(void)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char secret[40];
    rt_key *kr, *ke, *kh;
    apr_array_header_t *keys = apr_array_make(pool, 3, sizeof(rt_key *));
    apr_array_header_t *aud = apr_array_make(pool, 1, sizeof(char *));
    rt_jwt_params v = {keys, "https://iss", aud, 1000, 30};
    const char *why = NULL;
    char *tok, *forged;
    json_t *c;

    memset(secret, 's', sizeof(secret));
    rt_key_load(pool, write_key("v_rsa.pem", rsa, 0), NULL, &kr);
    rt_key_load(pool, write_key("v_ec.pem", ec, 0), NULL, &ke);
    rt_key_load(
        pool, apr_pstrcat(pool, "hmac:", write_bytes("v_hs", secret, 40), NULL),
        NULL, &kh);
    APR_ARRAY_PUSH(keys, rt_key *) = kr;
    APR_ARRAY_PUSH(keys, rt_key *) = ke;
    APR_ARRAY_PUSH(aud, const char *) = "runai";

    tok = sign_claims(kr, "{\"iss\":\"https://iss\",\"sub\":\"u\",\"aud\":"
                          "[\"x\",\"runai\"],\"exp\":1100}");
    c = rt_jwt_verify(pool, &v, tok, &why);
    ok(c && strcmp(json_string_value(json_object_get(c, "sub")), "u") == 0,
       "RS256 token verifies (aud array)");
    tok = sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"runai\","
                          "\"exp\":1100,\"nbf\":1020}");
    ok(rt_jwt_verify(pool, &v, tok, &why) != NULL,
       "ES256 token verifies, nbf within leeway");
    refuse(&v,
           sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"runai\","
                           "\"exp\":1100,\"nbf\":1031}"),
           "not yet", "nbf beyond leeway refused");
    refuse(&v,
           sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"runai\","
                           "\"exp\":970}"),
           "expired", "exp beyond leeway refused");
    ok(rt_jwt_verify(pool, &v,
                     sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":"
                                     "\"runai\",\"exp\":971}"),
                     &why) != NULL,
       "exp within leeway accepted");
    refuse(&v, sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"runai\"}"),
           "no exp", "missing exp refused");
    refuse(&v,
           sign_claims(ke, "{\"iss\":\"https://other\",\"aud\":\"runai\","
                           "\"exp\":1100}"),
           "issuer", "wrong issuer refused");
    refuse(&v, sign_claims(ke, "{\"aud\":\"runai\",\"exp\":1100}"), "issuer",
           "missing issuer refused");
    refuse(&v,
           sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"other\","
                           "\"exp\":1100}"),
           "audience", "wrong audience refused");
    /* HS256 signed with the RSA key's public PEM as secret, labelled with
     * the RSA kid: the classic algorithm confusion. */
    {
        rt_key fake = *kh;
        json_t *h = rt_json_pool_own(
            pool, json_pack("{s:s,s:s}", "alg", "HS256", "kid", kr->kid));
        char *hj = rt_json_ascii(pool, h);
        fake.secret = (unsigned char *)kr->public_pem;
        fake.secret_len = strlen(kr->public_pem);
        fake.header_b64 = rt_b64url(pool, (unsigned char *)hj, strlen(hj));
        fake.header_b64_len = strlen(fake.header_b64);
        refuse(&v,
               sign_claims(&fake, "{\"iss\":\"https://iss\",\"aud\":"
                                  "\"runai\",\"exp\":1100}"),
               "alg", "HS256 token with an RSA kid refused");
    }
    tok = sign_claims(ke, "{\"iss\":\"https://iss\",\"aud\":\"runai\","
                          "\"exp\":1100}");
    {
        /* alg none: header swapped, signature dropped */
        json_t *h = rt_json_pool_own(
            pool, json_pack("{s:s,s:s}", "alg", "none", "kid", ke->kid));
        char *hj = rt_json_ascii(pool, h);
        forged =
            apr_pstrcat(pool, rt_b64url(pool, (unsigned char *)hj, strlen(hj)),
                        strchr(tok, '.'), NULL);
        *(strrchr(forged, '.') + 1) = '\0';
        refuse(&v, forged, "alg", "alg none refused");
    }
    forged = apr_pstrdup(pool, tok);
    forged[strlen(forged) - 3] ^= 1;
    refuse(&v, forged, "signature", "changed signature refused");
    refuse(&v, apr_pstrcat(pool, tok, ".x.y", NULL), "compact",
           "five segments refused");
    refuse(&v, "..", "header", "empty segments refused");
    v.keys = apr_array_make(pool, 1, sizeof(rt_key *));
    APR_ARRAY_PUSH((apr_array_header_t *)v.keys, rt_key *) = kr;
    refuse(&v, tok, "kid", "unknown kid refused");
    APR_ARRAY_PUSH((apr_array_header_t *)v.keys, rt_key *) = kh;
    ok(rt_jwt_verify(pool, &v,
                     sign_claims(kh, "{\"iss\":\"https://iss\",\"aud\":"
                                     "\"runai\",\"exp\":1100}"),
                     &why) != NULL,
       "HS256 token verifies with its secret");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

static void test_credcache(void)
{
    rt_credcache *c = rt_credcache_create(pool, 64);

    ok(c != NULL, "credential cache created");
    ok(!rt_credcache_hit(c, "s", "app", "pw", 100, 10), "empty cache misses");
    rt_credcache_put(c, "s", "app", "pw", 100, 110);
    ok(rt_credcache_hit(c, "s", "app", "pw", 105, 10) == RT_CREDCACHE_HIT,
       "verified secret hits");
    ok(!rt_credcache_hit(c, "s", "app", "pw2", 105, 10), "other secret misses");
    ok(!rt_credcache_hit(c, "t", "app", "pw", 105, 10), "other scope misses");
    ok(!rt_credcache_hit(c, "s", "ap", "ppw", 105, 10),
       "moving a byte between id and secret misses");
    ok(!rt_credcache_hit(c, "s", "app", "pw", 110, 10), "expired entry misses");

    /* Renewal: put at 100 for 40 s; the last quarter starts at 130. */
    rt_credcache_put(c, "s", "app", "pw", 100, 140);
    ok(rt_credcache_hit(c, "s", "app", "pw", 129, 40) == RT_CREDCACHE_HIT,
       "hit before the last quarter of the entry's life");
    ok(rt_credcache_hit(c, "s", "app", "pw", 130, 40) == RT_CREDCACHE_RENEW,
       "first hit in the last quarter renews");
    ok(rt_credcache_hit(c, "s", "app", "pw", 131, 40) == RT_CREDCACHE_HIT,
       "while one caller renews, the others hit");
    rt_credcache_put(c, "s", "app", "pw", 130, 170);
    ok(rt_credcache_hit(c, "s", "app", "pw", 150, 40) == RT_CREDCACHE_HIT,
       "a renewed entry hits until its new last quarter");
    ok(rt_credcache_hit(c, "s", "app", "pw", 160, 40) == RT_CREDCACHE_RENEW,
       "and is renewed again in it");
    rt_credcache_forget(c, "s", "app", "pw2");
    ok(rt_credcache_hit(c, "s", "app", "pw", 161, 40) == RT_CREDCACHE_HIT,
       "forgetting another secret leaves the entry");
    rt_credcache_forget(c, "s", "app", "pw");
    ok(rt_credcache_hit(c, "s", "app", "pw", 161, 40) == RT_CREDCACHE_MISS,
       "a forgotten entry misses");
    rt_credcache_put(c, "s", "app", "pw", 200, 210);
    ok(rt_credcache_hit(c, "s", "app", "pw", 210, 10) == RT_CREDCACHE_MISS,
       "an entry expires at its TTL");
    rt_credcache_forget(c, "s", "app", "pw");
}

/* One request checks a credential; another asking for the same one waits
 * for that answer instead of checking it too. */
typedef struct {
    rt_credcache *c;
    volatile int done;
    rt_credcache_result res;
} waiter;

static void *wait_for_check(void *arg)
{
    waiter *w = arg;

    w->res = rt_credcache_hit(w->c, "s", "app", "pw", 300, 10);
    w->done = 1;
    return NULL;
}

/* Starts w's request in a thread and gives it 0.3 s to finish or block. */
static void start_waiter(waiter *w, pthread_t *t)
{
    w->done = 0;
    w->res = RT_CREDCACHE_RENEW; /* no answer of these cases */
    pthread_create(t, NULL, wait_for_check, w);
    usleep(300 * 1000);
}

static void test_credcache_single_check(void)
{
    rt_credcache *c = rt_credcache_create(pool, 64);
    waiter w = {c, 0, RT_CREDCACHE_RENEW}, w2 = {c, 0, RT_CREDCACHE_RENEW};
    pthread_t t, t2;

    ok(rt_credcache_hit(c, "s", "app", "pw", 300, 10) == RT_CREDCACHE_MISS,
       "first request misses and checks");
    start_waiter(&w, &t);
    ok(!w.done, "a second request for the same credential waits");
    rt_credcache_put(c, "s", "app", "pw", 300, 310);
    pthread_join(t, NULL);
    ok(w.done && w.res == RT_CREDCACHE_HIT,
       "and takes the first one's success as a hit");

    /* pw's entry is dropped; a check of pw2 is under way. */
    rt_credcache_forget(c, "s", "app", "pw");
    ok(rt_credcache_hit(c, "s", "app", "pw2", 300, 10) == RT_CREDCACHE_MISS,
       "a wrong secret misses and is checked");
    start_waiter(&w, &t);
    ok(w.done && w.res == RT_CREDCACHE_MISS,
       "a check of another secret does not hold the right one up");
    pthread_join(t, NULL);
    rt_credcache_forget(c, "s", "app", "pw2");

    rt_credcache_forget(c, "s", "app", "pw");
    ok(rt_credcache_hit(c, "s", "app", "pw", 300, 10) == RT_CREDCACHE_MISS,
       "after a forget the next request checks again");
    start_waiter(&w, &t);
    start_waiter(&w2, &t2);
    ok(!w.done && !w2.done, "two requests wait for that check");
    rt_credcache_forget(c, "s", "app", "pw");
    usleep(300 * 1000);
    /* Neither may claim the slot and make the other wait again. */
    ok(w.done && w.res == RT_CREDCACHE_MISS && w2.done &&
           w2.res == RT_CREDCACHE_MISS,
       "when it fails, both check by themselves at once, not in turn");
    pthread_join(t, NULL);
    pthread_join(t2, NULL);
    rt_credcache_forget(c, "s", "app", "pw");

    /* A provider error ends a renewal without dropping the entry. */
    rt_credcache_put(c, "s", "app", "pw", 300, 340);
    ok(rt_credcache_hit(c, "s", "app", "pw", 330, 40) == RT_CREDCACHE_RENEW,
       "renewal claimed");
    rt_credcache_release(c, "s", "app", "pw");
    ok(rt_credcache_hit(c, "s", "app", "pw", 331, 40) == RT_CREDCACHE_RENEW,
       "after a failed renewal the entry still hits and is renewed again");
    rt_credcache_forget(c, "s", "app", "pw");
}

/* A hit is bounded by the TTL of the caller that asks (the section that
 * serves it), also when the entry was put by one with a longer TTL. */
static void test_credcache_max_age(void)
{
    rt_credcache *c = rt_credcache_create(pool, 64);

    rt_credcache_put(c, "s", "app", "pw", 400, 1000);
    ok(rt_credcache_hit(c, "s", "app", "pw", 403, 5) == RT_CREDCACHE_HIT,
       "an entry put for 600 s hits 3 s after its check for a TTL of 5 s");
    ok(rt_credcache_hit(c, "s", "app", "pw", 405, 600) == RT_CREDCACHE_HIT,
       "5 s after its check it hits for a TTL of 600 s");
    ok(rt_credcache_hit(c, "s", "app", "pw", 405, 5) == RT_CREDCACHE_MISS,
       "but not for a TTL of 5 s: the entry is as old as that TTL");
    /* That caller checks the secret again; its success starts a new
     * entry with its own TTL. */
    rt_credcache_put(c, "s", "app", "pw", 405, 410);
    ok(rt_credcache_hit(c, "s", "app", "pw", 408, 5) == RT_CREDCACHE_HIT,
       "the check of the shorter TTL makes a new entry");
    ok(rt_credcache_hit(c, "s", "app", "pw", 410, 600) == RT_CREDCACHE_MISS,
       "which a longer TTL does not extend past its end");
    rt_credcache_forget(c, "s", "app", "pw");

    /* Renewal counts in the life the caller sees: 8 s from 500, the last
     * quarter from 506. */
    rt_credcache_put(c, "s", "app", "pw", 500, 1100);
    ok(rt_credcache_hit(c, "s", "app", "pw", 505, 8) == RT_CREDCACHE_HIT,
       "bounded entry: hit before the last quarter of the caller's TTL");
    ok(rt_credcache_hit(c, "s", "app", "pw", 506, 8) == RT_CREDCACHE_RENEW,
       "bounded entry: renewed in the last quarter of the caller's TTL");
    ok(rt_credcache_hit(c, "s", "app", "pw", 507, 8) == RT_CREDCACHE_HIT,
       "bounded entry: the others hit meanwhile");
    rt_credcache_release(c, "s", "app", "pw");
    ok(rt_credcache_hit(c, "s", "app", "pw", 508, 8) == RT_CREDCACHE_MISS,
       "bounded entry: a miss at the end of the caller's TTL");
    rt_credcache_forget(c, "s", "app", "pw");

    rt_credcache_put(c, "s", "app", "pw", 600, 700);
    ok(rt_credcache_hit(c, "s", "app", "pw", 600, 0) == RT_CREDCACHE_MISS,
       "a TTL of 0 never hits");
    rt_credcache_forget(c, "s", "app", "pw");
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than a block). */
static void test_hmac(void)
{
    static const struct {
        const char *key, *data, *mac;
    } v[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {NULL, /* 131 bytes of 0xaa */
         "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65"
         "204b6579202d2048617368204b6579204669727374",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };

    static const char *names[] = {"1", "2", "6"};

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        long klen = 131, dlen;
        unsigned char *key = v[i].key ? OPENSSL_hexstr2buf(v[i].key, &klen)
                                      : OPENSSL_malloc(131);
        unsigned char *data = OPENSSL_hexstr2buf(v[i].data, &dlen);
        unsigned char mac[RT_SHA256_LEN];
        char hex[2 * RT_SHA256_LEN + 1];
        rt_hmac *h;

        if (v[i].key == NULL) {
            memset(key, 0xaa, 131);
        }
        h = rt_crypto_hmac_new(pool, key, (apr_size_t)klen);
        /* The data in two parts: a MAC covers their concatenation. */
        const void *parts[] = {data, data + 3};
        apr_size_t lens[] = {3, (apr_size_t)dlen - 3};

        ok(h != NULL && rt_crypto_hmac_sha256(h, 2, parts, lens, mac),
           "HMAC-SHA256 computed");
        for (int j = 0; j < RT_SHA256_LEN; j++) {
            sprintf(hex + 2 * j, "%02x", mac[j]);
        }
        is_str(hex, v[i].mac,
               apr_pstrcat(pool, "RFC 4231 case ", names[i], NULL));
        OPENSSL_free(key);
        OPENSSL_free(data);
    }
}

/* A child forked after its parent drew random bytes gets other bytes. */
static void test_random_fork(void)
{
    unsigned char parent[16], child[16];
    int fds[2];
    pid_t pid;

    ok(rt_crypto_random(parent, 1) && pipe(fds) == 0, "randomness drawn");
    pid = fork();
    if (pid == 0) {
        rt_crypto_random(child, sizeof(child));
        _exit(write(fds[1], child, sizeof(child)) == sizeof(child) ? 0 : 1);
    }
    close(fds[1]); /* a child that dies gives EOF, not a hang */
    rt_crypto_random(parent, sizeof(parent));
    ok(pid > 0 && read(fds[0], child, sizeof(child)) == sizeof(child) &&
           memcmp(parent, child, sizeof(parent)) != 0,
       "parent and forked child draw different bytes");
    close(fds[0]);
    if (pid > 0) {
        waitpid(pid, NULL, 0);
    }
}

static void test_loopback_uris(void)
{
    apr_array_header_t *uris = apr_array_make(pool, 4, sizeof(char *));
    const char *yes[] = {
        "http://localhost:8000/logout", "http://localhost:43121/logout",
        "http://localhost/logout",      "http://127.0.0.1:18000/",
        "http://127.0.0.1:8000/",       "http://[::1]:5/cb?x=1",
        "https://app.test/cb",
    };
    const char *no[] = {
        "http://localhost:8000/logout/",          /* another path */
        "http://localhost:8000/logout?x",         /* another query */
        "http://127.0.0.1:8000/logout",           /* another host */
        "https://localhost:8000/logout",          /* another scheme */
        "http://localhost.evil.test:8000/logout", /* not the host */
        "http://localhost:8000@evil.test/logout", /* userinfo trick */
        "http://localhost:/logout",               /* empty port */
        "http://localhost:123456/logout",         /* six digits */
        "http://LOCALHOST:8000/logout",           /* not as registered */
        "https://app.test:444/cb",                /* only loopback */
        "http://[::1]:5/cb",                      /* query dropped */
    };

    APR_ARRAY_PUSH(uris, const char *) = "http://localhost:8000/logout";
    APR_ARRAY_PUSH(uris, const char *) = "http://127.0.0.1/";
    APR_ARRAY_PUSH(uris, const char *) = "http://[::1]/cb?x=1";
    APR_ARRAY_PUSH(uris, const char *) = "https://app.test/cb";
    for (apr_size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        ok(rt_authreq_registered(uris, yes[i]),
           apr_psprintf(pool, "loopback URIs: %s matches", yes[i]));
    }
    for (apr_size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        ok(!rt_authreq_registered(uris, no[i]),
           apr_psprintf(pool, "loopback URIs: %s does not match", no[i]));
    }
}

static void test_authreq(void)
{
    rt_authreq q;
    rt_error *e;
    apr_array_header_t *uris = apr_array_make(pool, 1, sizeof(char *));
    const char *chal = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    APR_ARRAY_PUSH(uris, const char *) = "https://app.test/cb";
    e = rt_authreq_parse(pool,
                         "client_id=web&redirect_uri=https%3A%2F%2Fapp.test"
                         "%2Fcb&state=a%E9b&scope=openid",
                         &q);
    ok(e == NULL && strcmp(q.redirect_uri, "https://app.test/cb") == 0 &&
           strcmp(q.state, "a\xe9"
                           "b") == 0,
       "authorize query parses; state may hold any bytes");
    ok(rt_authreq_check(pool, &q, uris) == NULL,
       "registered redirect URI accepted");
    e = rt_authreq_parse(pool, "client_id=a&client_id=b", &q);
    ok(e && rt_error_status(e) == 400,
       "authorize: duplicate parameter refused");
    e = rt_authreq_parse(pool, "nonce=%E9", &q);
    ok(e && rt_error_status(e) == 400, "authorize: nonce must be UTF-8");
    e = rt_authreq_parse(pool, "state=%00", &q);
    ok(e && rt_error_status(e) == 400, "authorize: NUL refused even in state");
    rt_authreq_parse(pool, "client_id=web&redirect_uri=https://app.test/cb/",
                     &q);
    e = rt_authreq_check(pool, &q, uris);
    ok(e && rt_error_status(e) == 400 &&
           strcmp(rt_error_log_word(e), "redirect_mismatch") == 0,
       "authorize: a trailing slash is another redirect URI");
    rt_authreq_parse(pool, "client_id=web&redirect_uri=https://APP.test/cb",
                     &q);
    ok(rt_authreq_check(pool, &q, uris) != NULL,
       "authorize: redirect URIs compare byte for byte");
    rt_authreq_parse(pool, "client_id=x&redirect_uri=https://app.test/cb", &q);
    e = rt_authreq_check(pool, &q, NULL);
    ok(e && strcmp(rt_error_log_word(e), "unknown_client") == 0,
       "authorize: unknown client");
    rt_authreq_parse(pool,
                     apr_pstrcat(pool,
                                 "client_id=web&redirect_uri=https://app.test/"
                                 "cb&code_challenge_method=plain&"
                                 "code_challenge=",
                                 chal, NULL),
                     &q);
    ok(rt_authreq_check(pool, &q, uris) != NULL,
       "authorize: plain PKCE refused");
    rt_authreq_parse(pool,
                     "client_id=web&redirect_uri=https://app.test/cb&"
                     "code_challenge=short&code_challenge_method=S256",
                     &q);
    ok(rt_authreq_check(pool, &q, uris) != NULL,
       "authorize: short challenge refused");
    is_str(rt_authreq_location(pool, "https://app.test/cb?x=1", "c0-_",
                               "a b&c#\r\n"),
           "https://app.test/cb?x=1&code=c0-_&state=a%20b%26c%23%0D%0A",
           "authorize: Location escapes state, appends to a query");
}

/* Every kind has its row in rt_error.c's table, and the rows that the
 * OAuth dialect tells apart come out as RFC 6749 says. */
static void test_error_kinds(void)
{
    int complete = 1;

    for (int k = 0; k < RT_ERR__COUNT; k++) {
        rt_error *e = rt_error_make(pool, (rt_error_kind)k, "m", NULL);
        int st, s = rt_error_status(e);
        const char *code = rt_error_oauth(e, &st);

        complete = complete && s >= 400 && s <= 599 && st >= 400 && st <= 599 &&
                   code != NULL && *code != '\0' &&
                   rt_error_log_word(e) != NULL && *rt_error_log_word(e);
    }
    ok(complete,
       "errors: every kind has a status, an OAuth code and a log word");
    {
        rt_error *app = rt_error_make(pool, RT_ERR_BAD_APP_SECRET, "m", NULL);
        rt_error *pw = rt_error_make(pool, RT_ERR_BAD_PASSWORD, "m", NULL);
        int sa, sp;

        ok(strcmp(rt_error_oauth(app, &sa), "invalid_client") == 0 &&
               sa == 401 &&
               strcmp(rt_error_oauth(pw, &sp), "invalid_grant") == 0 &&
               sp == 400 && rt_error_status(pw) == 401 &&
               strcmp(rt_error_log_word(app), rt_error_log_word(pw)) == 0,
           "errors: a wrong secret and a wrong password share a log word, "
           "not an OAuth code");
    }
    {
        /* RFC 8628 §3.5: the codes of a poll, each a 400 in both dialects */
        static const struct {
            rt_error_kind k;
            const char *code;
        } poll[] = {{RT_ERR_AUTH_PENDING, "authorization_pending"},
                    {RT_ERR_SLOW_DOWN, "slow_down"},
                    {RT_ERR_EXPIRED_TOKEN, "expired_token"},
                    {RT_ERR_ACCESS_DENIED, "access_denied"},
                    {RT_ERR_UNAUTHORIZED_CLIENT, "unauthorized_client"}};
        int right = 1;

        for (size_t i = 0; i < sizeof(poll) / sizeof(poll[0]); i++) {
            rt_error *e = rt_error_make(pool, poll[i].k, "m", NULL);
            int st;

            right = right &&
                    strcmp(rt_error_oauth(e, &st), poll[i].code) == 0 &&
                    st == 400 && rt_error_status(e) == 400;
        }
        ok(right, "errors: the device grant's codes, 400 each");
    }
    is_str(rt_error_body(
               pool, rt_error_make(pool, RT_ERR_THROTTLED, "too many", NULL)),
           "{\"code\":429,\"message\":\"too many\"}",
           "errors: the Error body carries the kind's status");
}

static void test_oidc(void)
{
    is_str(rt_oidc_issuer_path(pool, "https://h/auth/realms/runai/"),
           "/auth/realms/runai", "issuer path, trailing slash dropped");
    is_str(rt_oidc_issuer_path(pool, "https://h"), "", "issuer without path");
    is_str(
        rt_oidc_endpoint(pool, "https://h:8443/auth/realms/runai/", "/device"),
        "https://h:8443/auth/realms/runai/device",
        "endpoint under the issuer: origin, path, suffix");
    is_str(rt_oidc_endpoint(pool, "http://h", "/device"), "http://h/device",
           "endpoint under an issuer without path");
}

/* iat: a token issued in the future beyond the leeway is refused, like
 * an nbf there; a token without iat, or issued within the leeway, is not. */
static void iat_case(rt_jwt_params *v, const char *iat, int accepted,
                     const char *name)
{
    const char *why = NULL;
    const char *payload = apr_pstrcat(
        pool, "{\"iss\":\"https://iss\",\"aud\":\"runai\",\"exp\":1100",
        iat ? ",\"iat\":" : "", iat ? iat : "", "}", NULL);
    json_t *c = rt_jwt_verify_claims(pool, v, payload, &why);

    if (accepted) {
        ok(c != NULL, name);
    } else {
        ok(c == NULL && why && strstr(why, "issued in the future"), name);
    }
    if ((c != NULL) != accepted) {
        printf("#   why: %s\n", why ? why : "(verified)");
    }
}

static void test_verify_iat(void)
{
    apr_array_header_t *aud = apr_array_make(pool, 1, sizeof(char *));
    rt_jwt_params v = {NULL, "https://iss", aud, 1000, 30};

    APR_ARRAY_PUSH(aud, const char *) = "runai";
    iat_case(&v, NULL, 1, "iat: a token without iat is accepted");
    iat_case(&v, "900", 1, "iat: issued in the past, accepted");
    iat_case(&v, "1000", 1, "iat: issued now, accepted");
    iat_case(&v, "1030", 1, "iat: 30 s ahead, leeway 30: accepted");
    iat_case(&v, "1030.5", 0, "iat: 30.5 s ahead, leeway 30: refused");
    iat_case(&v, "1031", 0, "iat: 31 s ahead, leeway 30: refused");
    iat_case(&v, "4000000000", 0, "iat: far in the future: refused");
    v.leeway = 0;
    iat_case(&v, "1000", 1, "iat: issued now, leeway 0: accepted");
    iat_case(&v, "1001", 0, "iat: 1 s ahead, leeway 0: refused");
    v.leeway = 300;
    iat_case(&v, "1300", 1, "iat: 300 s ahead, leeway 300: accepted");
    iat_case(&v, "1301", 0, "iat: 301 s ahead, leeway 300: refused");
    v.leeway = 30;
    iat_case(&v, "\"1000\"", 0, "iat: a string is refused");
    iat_case(&v, "null", 0, "iat: null is refused");
    iat_case(&v, "true", 0, "iat: a boolean is refused");
}

static void remove_tmpdir(void)
{
    static const char *const names[] = {
        "rsa.pem", "rsa.pub", "small.pem", "ES256",    "ES384",
        "ES512",   "hs",      "hs31",      "junk.pem", NULL};
    for (const char *const *n = names; *n; n++) {
        unlink(apr_pstrcat(pool, tmpdir, "/", *n, NULL));
    }
    rmdir(tmpdir);
}

/* A throttled attempt answers 429 in both dialects, and in the OAuth one an
 * RFC 6749 §5.2 code (slow_down is not one): the code a wrong credential of
 * its kind answers. */
static void test_throttled_kinds(void)
{
    rt_error *u = rt_error_make(pool, RT_ERR_THROTTLED, "m", NULL);
    rt_error *c = rt_error_make(pool, RT_ERR_THROTTLED_CLIENT, "m", NULL);
    int su, sc;

    ok(strcmp(rt_error_oauth(u, &su), "invalid_grant") == 0 && su == 429 &&
           rt_error_status(u) == 429 &&
           strcmp(rt_error_log_word(u), "throttled") == 0,
       "errors: a throttled user is 429 invalid_grant, logged as throttled");
    ok(strcmp(rt_error_oauth(c, &sc), "invalid_client") == 0 && sc == 429 &&
           rt_error_status(c) == 429 &&
           strcmp(rt_error_log_word(c), "throttled") == 0,
       "errors: a throttled client or application is 429 invalid_client, "
       "logged as throttled");
}

/* The state file of the default store: round trip, and every kind of
 * damage refused before a record is handed out. */
static int state_seen;
static char state_last[64];

static void state_record(void *baton, const unsigned char *key, apr_size_t klen,
                         const unsigned char *val, apr_size_t vlen)
{
    (void)baton;
    (void)key;
    state_seen++;
    apr_snprintf(state_last, sizeof(state_last), "%.*s/%.*s", (int)klen,
                 (const char *)key, (int)vlen, (const char *)val);
}

static void test_statefile(void)
{
    rt_statefile *f = rt_statefile_begin(pool);
    const unsigned char *buf, *sum;
    unsigned char *copy;
    apr_size_t len;
    apr_int64_t exp = 0;
    const char *rec = "{\"v\":1,\"exp\":1234,\"d\":{}}";

    ok(rt_statefile_add(f, (const unsigned char *)"k1", 2,
                        (const unsigned char *)"v1", 2) &&
           rt_statefile_add(f, (const unsigned char *)"k2", 2,
                            (const unsigned char *)"", 0),
       "statefile: records added");
    ok(!rt_statefile_add(f, (const unsigned char *)"", 0,
                         (const unsigned char *)"v", 1),
       "statefile: an empty key refused");
    buf = rt_statefile_finish(f, &len, &sum);
    ok(buf != NULL && rt_statefile_count(f) == 2 &&
           sum == buf + len - RT_SHA256_LEN,
       "statefile: finished with two records and a checksum at the end");
    state_seen = 0;
    ok(rt_statefile_parse(buf, len, state_record, NULL) == NULL &&
           state_seen == 2 && strcmp(state_last, "k2/") == 0,
       "statefile: round trip");
    state_seen = 0;
    ok(rt_statefile_parse(buf, len - 1, state_record, NULL) != NULL &&
           state_seen == 0,
       "statefile: truncated by one byte refused, no record handed out");
    ok(rt_statefile_parse(buf, 10, state_record, NULL) != NULL &&
           rt_statefile_parse(buf, 0, state_record, NULL) != NULL,
       "statefile: cut inside the header refused");
    copy = apr_pmemdup(pool, buf, len);
    copy[len / 2] ^= 1;
    ok(rt_statefile_parse(copy, len, state_record, NULL) != NULL &&
           state_seen == 0,
       "statefile: one flipped bit refused");
    ok(rt_statefile_parse((const unsigned char *)"garbage garbage garbage "
                                                 "garbage garbage garbage",
                          47, state_record, NULL) != NULL,
       "statefile: garbage refused");
    {
        /* A record count that claims more than the body holds, with a
         * checksum that matches: refused by the walk, not trusted. */
        rt_statefile *g = rt_statefile_begin(pool);
        unsigned char *b2;
        apr_size_t l2;

        rt_statefile_add(g, (const unsigned char *)"k", 1,
                         (const unsigned char *)"v", 1);
        buf = rt_statefile_finish(g, &l2, &sum);
        b2 = apr_pmemdup(pool, buf, l2);
        b2[sizeof(RT_STATEFILE_MAGIC) - 1 + 3] = 9;
        rt_crypto_sha256(b2, l2 - RT_SHA256_LEN, b2 + l2 - RT_SHA256_LEN);
        ok(rt_statefile_parse(b2, l2, state_record, NULL) != NULL &&
               state_seen == 0,
           "statefile: a count beyond the records refused");
    }
    ok(rt_statefile_record_exp((const unsigned char *)rec, strlen(rec), &exp) &&
           exp == 1234,
       "statefile: the expiry of a store record read");
    ok(!rt_statefile_record_exp((const unsigned char *)"{}", 2, &exp),
       "statefile: a value without expiry has none");
}

static void test_refresh_sid(void)
{
    const char *h = "AAAAAAAAAAAAAAAAAAAAAA";
    const char *sid = rt_refresh_sid(pool, h);
    unsigned char d[RT_SHA256_LEN], want[RT_SHA256_LEN];
    unsigned char k1[RT_REC_KEY_LEN], k2[RT_REC_KEY_LEN];

    ok(sid != NULL && strlen(sid) == 43 && strchr(sid, '.') == NULL &&
           strstr(sid, h) == NULL,
       "sid: 43 base64url characters, not the handle");
    is_str(rt_refresh_sid(pool, h), sid, "sid: the same handle, the same sid");
    ok(strcmp(rt_refresh_sid(pool, "BAAAAAAAAAAAAAAAAAAAAA"), sid) != 0,
       "sid: another handle, another sid");
    ok(rt_refresh_sid_digest(pool, sid, d) &&
           rt_crypto_sha256(h, strlen(h), want) &&
           memcmp(d, want, sizeof(d)) == 0,
       "sid: its digest is the SHA-256 of the handle");
    ok(rt_record_key(k1, RT_REC_SESSION, h, strlen(h)), "record key of h");
    rt_record_key_of(k2, RT_REC_SESSION, d);
    ok(memcmp(k1, k2, sizeof(k1)) == 0,
       "sid: its digest keys the session's record, as the handle does");
    ok(!rt_refresh_sid_digest(pool, NULL, d) &&
           !rt_refresh_sid_digest(pool, "", d) &&
           !rt_refresh_sid_digest(pool, apr_pstrcat(pool, sid, "A", NULL), d) &&
           !rt_refresh_sid_digest(pool, apr_pstrndup(pool, sid, 42), d) &&
           !rt_refresh_sid_digest(
               pool, "+++++++++++++++++++++++++++++++++++++++++++", d),
       "sid: other lengths and characters are not one");
}

static void test_refresh_tokens(void)
{
    const char *h = "AAAAAAAAAAAAAAAAAAAAAA", *seed = "seed-one", *t, *t2;
    rt_refresh_parts parts;
    char *bad;

    t = rt_refresh_token(pool, h, seed, 7);
    ok(t != NULL && strncmp(t, "AAAAAAAAAAAAAAAAAAAAAA.7.", 25) == 0 &&
           strlen(t) == 25 + 43,
       "refresh token: handle, generation, 43-character MAC");
    t2 = rt_refresh_token(pool, h, seed, 7);
    is_str(t2, t, "refresh token: the same generation gives the same token");
    ok(strcmp(rt_refresh_token(pool, h, seed, 8), t) != 0 &&
           strcmp(rt_refresh_token(pool, h, "seed-two", 7), t) != 0,
       "refresh token: another generation or seed, another MAC");
    ok(rt_refresh_parse(pool, t, &parts) && parts.gen == 7 &&
           strcmp(parts.handle, h) == 0 &&
           rt_refresh_authentic(pool, &parts, seed) &&
           !rt_refresh_authentic(pool, &parts, "seed-two") &&
           !rt_refresh_authentic(pool, &parts, NULL),
       "refresh token: parsed back, authentic under its seed only");
    bad = apr_pstrdup(pool, t);
    bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == 'A' ? 'B' : 'A';
    ok(rt_refresh_parse(pool, bad, &parts) &&
           !rt_refresh_authentic(pool, &parts, seed),
       "refresh token: an altered MAC is not authentic");
    bad = apr_pstrcat(pool, h, ".8.", t + 25, NULL);
    ok(rt_refresh_parse(pool, bad, &parts) &&
           !rt_refresh_authentic(pool, &parts, seed),
       "refresh token: another generation with the MAC of this one is not");
    {
        const char *shapes[] = {
            "",
            "x",
            "AAAA.1.AAAA",
            "AAAAAAAAAAAAAAAAAAAAAA.1",
            apr_pstrcat(pool, h, ".0.", t + 25, NULL),
            apr_pstrcat(pool, h, ".07.", t + 25, NULL),
            apr_pstrcat(pool, h, ".-1.", t + 25, NULL),
            apr_pstrcat(pool, h, "..", t + 25, NULL),
            apr_pstrcat(pool, h, ".1000000000000000.", t + 25, NULL),
            apr_pstrcat(pool, h, ".1.", t + 25, "A", NULL),
            apr_pstrcat(pool, "AAAAAAAAAAAAAAAAAAAAA=.1.", t + 25, NULL),
            apr_pstrcat(pool, h, ".1.", t + 26, "+", NULL)};
        int all = 1;

        for (size_t i = 0; i < sizeof(shapes) / sizeof(*shapes); i++) {
            all = all && !rt_refresh_parse(pool, shapes[i], &parts);
        }
        ok(all, "refresh token: malformed shapes are refused");
    }
}

static void test_refresh_rules(void)
{
    rt_refresh_rules rules = {1000, 30, 3, 60, 0};
    rt_refresh_state s = {5, 990, 0, 0, 0}, keep;
    apr_int64_t issue;

    ok(rt_refresh_decide(&s, 5, &rules, &issue) == RT_RS_ROTATE && issue == 6 &&
           s.gen == 6 && s.at == 1000 && s.rate_count == 1,
       "rotation: the newest token rotates to the next generation");
    rules.now = 1010;
    ok(rt_refresh_decide(&s, 5, &rules, &issue) == RT_RS_RETRY && issue == 6 &&
           s.gen == 6 && s.at == 1000,
       "rotation: the one before, within the retry window, gets the newest "
       "again");
    rules.now = 1020;
    ok(rt_refresh_decide(&s, 6, &rules, &issue) == RT_RS_ROTATE && issue == 7 &&
           s.rate_count == 3,
       "rotation: retries count against the rate");
    keep = s;
    ok(rt_refresh_decide(&s, 7, &rules, &issue) == RT_RS_LIMITED &&
           issue == 40 && memcmp(&s, &keep, sizeof(s)) == 0,
       "rotation: over the rate, the wait to the window's end and no "
       "change");
    rules.now = 1060;
    ok(rt_refresh_decide(&s, 7, &rules, &issue) == RT_RS_ROTATE && issue == 8 &&
           s.rate_start == 1060 && s.rate_count == 1,
       "rotation: a new rate window");
    ok(rt_refresh_decide(&s, 12, &rules, &issue) == RT_RS_ROTATE &&
           issue == 13 && s.gen == 13,
       "rotation: a record behind its token catches up");
    rules.now = 1091;
    ok(rt_refresh_decide(&s, 12, &rules, &issue) == RT_RS_REUSED && s.revoked,
       "rotation: the one before, after the window, revokes");
    ok(rt_refresh_decide(&s, 13, &rules, &issue) == RT_RS_REVOKED,
       "rotation: a revoked session refuses its newest token");
    s = (rt_refresh_state){5, 1091, 0, 0, 0};
    ok(rt_refresh_decide(&s, 3, &rules, &issue) == RT_RS_REUSED,
       "rotation: an older token revokes even within the window");
    s = (rt_refresh_state){5, 1000, 1090, 3, 0};
    ok(rt_refresh_decide(&s, 1, &rules, &issue) == RT_RS_REUSED,
       "rotation: reuse is judged before the rate");
    s = (rt_refresh_state){5, 1095, 0, 0, 0};
    ok(rt_refresh_decide(&s, 4, &rules, &issue) == RT_RS_RETRY && issue == 5,
       "rotation: the one before, judged by a clock behind the rotation's, "
       "is a retry");
    rules.retry = 0;
    s = (rt_refresh_state){5, 1091, 0, 0, 0};
    ok(rt_refresh_decide(&s, 4, &rules, &issue) == RT_RS_REUSED,
       "rotation: no retry window with RunaiTokenRefreshRetry 0");
    {
        rt_refresh_rules idle = {2000, 30, 0, 0, 600};

        s = (rt_refresh_state){5, 1401, 0, 0, 0};
        ok(rt_refresh_decide(&s, 5, &idle, &issue) == RT_RS_ROTATE &&
               s.at == 2000,
           "rotation: within RunaiTokenRefreshIdle, it rotates and restarts "
           "the idle clock");
        s = (rt_refresh_state){5, 1400, 0, 0, 0};
        ok(rt_refresh_decide(&s, 5, &idle, &issue) == RT_RS_IDLE && s.revoked &&
               rt_refresh_decide(&s, 5, &idle, &issue) == RT_RS_REVOKED,
           "rotation: idle for RunaiTokenRefreshIdle, the session ends");
    }
    rules.rate_count = 0;
    s = (rt_refresh_state){5, 1000, 1090, 100, 0};
    ok(rt_refresh_decide(&s, 5, &rules, &issue) == RT_RS_ROTATE &&
           s.rate_count == 100,
       "rotation: no rate with RunaiTokenRefreshRate off");
}

static int count_each(void *baton, const unsigned char *key, apr_size_t klen,
                      apr_int64_t expiry, const unsigned char *val,
                      apr_size_t vlen)
{
    (void)key;
    (void)klen;
    (void)expiry;
    (void)val;
    (void)vlen;
    (*(int *)baton)++;
    return 0;
}

static void test_outage(void)
{
    rt_outage o = {0, 0, 0};
    rt_backoff b = {0, 0};
    apr_interval_time_t took = 0;
    apr_uint32_t refused = 0;
    apr_time_t t = apr_time_from_sec(1000);

    ok(!rt_outage_up(&o, t, &took, &refused), "outage: up when up: no line");
    ok(rt_outage_down(&o, t), "outage: the first failure says so");
    ok(!rt_outage_down(&o, t + 1), "outage: the next ones do not");
    ok(rt_outage_is_down(&o), "outage: down");
    rt_outage_refused(&o);
    rt_outage_refused(&o);
    ok(rt_outage_up(&o, t + apr_time_from_sec(3), &took, &refused) &&
           took == apr_time_from_sec(3) && refused == 2,
       "outage: the first answer says so, with the time and the refusals");
    ok(!rt_outage_up(&o, t + apr_time_from_sec(4), &took, &refused) &&
           !rt_outage_is_down(&o),
       "outage: once");
    ok(rt_outage_down(&o, t) && o.refused == 0,
       "outage: a new outage counts from zero");

    ok(!rt_backoff_waiting(&b, t), "backoff: none at first");
    rt_backoff_failed(&b, t);
    ok(rt_backoff_waiting(&b, t + RT_BACKOFF_MIN - 1) &&
           !rt_backoff_waiting(&b, t + RT_BACKOFF_MIN),
       "backoff: the first wait");
    for (int i = 0; i < 10; i++) {
        rt_backoff_failed(&b, t);
    }
    ok(rt_backoff_waiting(&b, t + RT_BACKOFF_MAX - 1) &&
           !rt_backoff_waiting(&b, t + RT_BACKOFF_MAX),
       "backoff: doubles up to its bound");
    rt_backoff_reset(&b);
    ok(!rt_backoff_waiting(&b, t), "backoff: reset by a success");
}

static void test_redis_addrs(void)
{
    rt_redis_addr a[3];
    char err[RT_REDIS_ERRLEN];
    int n =
        rt_redis_parse_addrs("r1:7000,10.0.0.2,[::1]:7001", 6379, a, 3, err);

    ok(n == 3, "redis addrs: three");
    is_str(a[0].host, "r1", "redis addrs: a name");
    ok(a[0].port == 7000, "redis addrs: its port");
    is_str(a[1].host, "10.0.0.2", "redis addrs: an address without a port");
    ok(a[1].port == 6379, "redis addrs: the default port");
    is_str(a[2].host, "::1", "redis addrs: IPv6 in brackets");
    ok(a[2].port == 7001, "redis addrs: IPv6's port");
    ok(rt_redis_parse_addrs("[::1]", 26379, a, 3, err) == 1 &&
           a[0].port == 26379,
       "redis addrs: IPv6 without a port");
    {
        const char *bad[] = {
            "",    ",",     "h:",   "h:0",    "h:65536", "h:12x",      "h1,,h2",
            "h1,", ":7000", "[::1", "[::1]x", "a,b,c,d", "h:123456789"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            char name[80];

            err[0] = '\0';
            snprintf(name, sizeof(name), "redis addrs: '%s' refused, said why",
                     bad[i]);
            ok(rt_redis_parse_addrs(bad[i], 6379, a, 3, err) == -1 &&
                   err[0] != '\0',
               name);
        }
    }
}

static void test_shmtable(void)
{
    apr_size_t size = 64 * 1024;
    void *mem = apr_palloc(pool, size);
    rt_shmtable *t = rt_shmtable_init(mem, size);
    rt_shmtable_stats st;
    unsigned char val[4096], out[4096];
    apr_size_t len;
    char key[32];
    int all, n;

    ok(t != NULL && rt_shmtable_init(mem, 100) == NULL,
       "shm table: formats a block, refuses one too small");
    rt_shmtable_stat(t, &st);
    memset(val, 'v', sizeof(val));
    ok(rt_shmtable_put(t, (const unsigned char *)"k1", 2, 100, val, 300, 10) ==
           RT_SHMT_OK,
       "shm table: put");
    len = sizeof(out);
    ok(rt_shmtable_get(t, (const unsigned char *)"k1", 2, 10, out, &len) ==
               RT_SHMT_OK &&
           len == 300 && memcmp(out, val, 300) == 0,
       "shm table: get gives the value back across slots");
    len = 10;
    ok(rt_shmtable_get(t, (const unsigned char *)"k1", 2, 10, out, &len) ==
           RT_SHMT_TOO_LARGE,
       "shm table: get into a buffer too small");
    len = sizeof(out);
    ok(rt_shmtable_get(t, (const unsigned char *)"k1", 2, 100, out, &len) ==
           RT_SHMT_NOTFOUND,
       "shm table: an expired record is not found");
    ok(rt_shmtable_put(t, (const unsigned char *)"k1", 2, 100, val, 10, 10) ==
               RT_SHMT_OK &&
           rt_shmtable_remove(t, (const unsigned char *)"k1", 2) ==
               RT_SHMT_OK &&
           rt_shmtable_remove(t, (const unsigned char *)"k1", 2) ==
               RT_SHMT_NOTFOUND,
       "shm table: remove, then not found");
    ok(rt_shmtable_put(t, (const unsigned char *)"k", 70, 100, val, 10, 10) ==
               RT_SHMT_TOO_LARGE &&
           rt_shmtable_put(t, (const unsigned char *)"big", 3, 100, val, size,
                           10) == RT_SHMT_TOO_LARGE,
       "shm table: a key or a value too large is refused");

    /* Half full of records, then one of them rewritten 100,000 times, with
     * values of changing size: every other record is still there. */
    rt_shmtable_stat(t, &st);
    n = (int)st.entries / 2;
    for (int i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "rec-%d", i);
        rt_shmtable_put(t, (const unsigned char *)key, strlen(key), 1000 + i,
                        val, 200, 10);
    }
    for (int i = 0; i < 100000; i++) {
        rt_shmtable_put(t, (const unsigned char *)"hot", 3, 5000, val,
                        (apr_size_t)(100 + i % 300), 10);
    }
    all = 1;
    for (int i = 0; i < n; i++) {
        apr_snprintf(key, sizeof(key), "rec-%d", i);
        len = sizeof(out);
        all = all && rt_shmtable_get(t, (const unsigned char *)key, strlen(key),
                                     10, out, &len) == RT_SHMT_OK;
    }
    rt_shmtable_stat(t, &st);
    ok(all && st.evicted == 0 && st.records == (unsigned)n + 1,
       "shm table: one record rewritten 100,000 times displaces no other");
    n = 0;
    rt_shmtable_each(t, 10, pool, count_each, &n);
    ok(n == (int)st.records, "shm table: each visits every record");

    /* Over full: the records nearest their expiry go first. */
    for (int i = 0; i < 4 * (int)st.entries; i++) {
        apr_snprintf(key, sizeof(key), "new-%d", i);
        rt_shmtable_put(t, (const unsigned char *)key, strlen(key), 900000, val,
                        200, 10);
    }
    len = sizeof(out);
    rt_shmtable_stat(t, &st);
    all = st.evicted > 0 && rt_shmtable_get(t, (const unsigned char *)"hot", 3,
                                            10, out, &len) == RT_SHMT_NOTFOUND;
    for (int i = 0; all && i < n; i++) {
        apr_snprintf(key, sizeof(key), "rec-%d", i);
        len = sizeof(out);
        all = rt_shmtable_get(t, (const unsigned char *)key, strlen(key), 10,
                              out, &len) == RT_SHMT_NOTFOUND;
    }
    apr_snprintf(key, sizeof(key), "new-%d", 4 * (int)st.entries - 1);
    len = sizeof(out);
    ok(all && rt_shmtable_get(t, (const unsigned char *)key, strlen(key), 10,
                              out, &len) == RT_SHMT_OK,
       "shm table: full, it drops the records nearest their expiry");
    {
        /* every slot and entry accounted for */
        int counted = 0;

        rt_shmtable_each(t, 10, pool, count_each, &counted);
        ok(counted == (int)st.records && st.records <= st.entries &&
               st.free_slots <= st.slots,
           "shm table: its counts stay consistent");
    }
}

/* rt_counters: what a render shows, collected in one string. */
static void collect(void *baton, const char *text, apr_size_t len)
{
    char **all = baton;

    *all = apr_pstrcat(pool, *all, apr_pstrmemdup(pool, text, len), NULL);
}

static char *render(const rt_counters *c, const char *const *routes,
                    const rt_counters_fill *fill, rt_counters_format f)
{
    char *all = "";

    rt_counters_render(c, routes, fill, f, collect, &all);
    return all;
}

static void has_line(const char *text, const char *line, const char *name)
{
    const char *at = strstr(text, line);
    int found = at != NULL && (at == text || at[-1] == '\n') &&
                at[strlen(line)] == '\n';

    ok(found, name);
    if (!found) {
        printf("#   no line '%s' in:\n%s", line, text);
    }
}

static void test_counters(void)
{
    static const char *const routes[] = {"/api/v1/token", "/revoke"};
    const char *names[] = {"a:80", "b\"q:81"};
    apr_size_t size = rt_counters_size(2, 2);
    void *mem = apr_pcalloc(pool, size), *mem2 = apr_pcalloc(pool, size);
    rt_counters *c = rt_counters_init(mem, 2, 2), *c2;
    rt_counters_fill fill = {1, 3, 100, 7, 200, 0};
    int all_words = 1;
    char *p;

    for (int k = 0; k < RT_ERR__COUNT; k++) {
        const char *w =
            rt_error_log_word(rt_error_make(pool, (rt_error_kind)k, "m", NULL));

        all_words = all_words && strcmp(rt_counters_outcome_label(w), w) == 0;
    }
    ok(all_words, "counters: every error kind's log word has its own slot");
    is_str(rt_counters_outcome_label("something new"), "other",
           "counters: an unknown outcome counts as other");
    is_str(rt_counters_grant_label("urn:x:grant"), "other",
           "counters: an unknown grant counts as other");
    is_str(rt_counters_grant_label(NULL), "-",
           "counters: no grant counts as -");
    is_str(rt_counters_reason_label("bad signature"), "bad_signature",
           "counters: a guard reason has its label");

    rt_counters_set_name(c, 0, names[0]);
    rt_counters_set_name(c, 1, names[1]);
    ok(rt_counters_same(c, 2, 2, names), "counters: same layout and names");
    ok(!rt_counters_same(c, 2, 3, names) && !rt_counters_same(c, 1, 2, names),
       "counters: another layout is not the same");
    rt_counters_answer(c, 0, 0, "app_token", "granted");
    rt_counters_answer(c, 0, 0, "app_token", "granted");
    rt_counters_answer(c, 0, 0, "refresh_token", "reused");
    rt_counters_answer(c, 1, 1, "revoke", "revoked");
    rt_counters_answer(c, 0, 0, "password", "throttled");
    rt_counters_answer(c, 2, 0, "app_token", "granted"); /* no such host */
    rt_counters_answer(c, 0, 5, "app_token", "granted"); /* no such route */
    rt_counters_answer(NULL, 0, 0, "app_token", "granted");
    rt_counters_count(c, 0, RT_CEV_ROTATION);
    rt_counters_store(c, 0, 400, 0);
    rt_counters_store(c, 0, 600, 0);
    rt_counters_store(c, 0, 2000000, 1);
    rt_counters_guard(c, 1, NULL);
    rt_counters_guard(c, 1, "not a JWS compact serialization");
    rt_counters_guard(c, 1, "a reason nobody knows");

    p = render(c, routes, &fill, RT_COUNTERS_PROMETHEUS);
    has_line(p, "# TYPE runai_token_answers_total counter",
             "prometheus: TYPE line");
    has_line(p,
             "runai_token_answers_total{vhost=\"a:80\",route=\"/api/v1/"
             "token\",grant=\"app_token\",outcome=\"granted\"} 2",
             "prometheus: answers by route, grant and outcome");
    has_line(p,
             "runai_token_answers_total{vhost=\"b\\\"q:81\",route=\"/revoke\","
             "grant=\"revoke\",outcome=\"revoked\"} 1",
             "prometheus: another host, its name escaped");
    ok(strstr(p, "outcome=\"granted\"} 3") == NULL &&
           strstr(p, "vhost=\"b\\\"q:81\",route=\"/api/v1/token\"") == NULL,
       "prometheus: no count went to another host or route");
    has_line(p, "runai_token_reuse_revocations_total{vhost=\"a:80\"} 1",
             "prometheus: a reused outcome is a reuse revocation");
    has_line(p, "runai_token_revocations_total{vhost=\"b\\\"q:81\"} 1",
             "prometheus: revocations");
    has_line(p, "runai_token_throttled_total{vhost=\"a:80\"} 1",
             "prometheus: throttled");
    has_line(p, "runai_token_refresh_rotations_total{vhost=\"a:80\"} 1",
             "prometheus: rotations");
    has_line(p, "runai_token_store_errors_total{vhost=\"a:80\"} 1",
             "prometheus: store errors");
    has_line(p,
             "runai_token_store_latency_seconds_bucket{vhost=\"a:80\",le="
             "\"0.0005\"} 1",
             "prometheus: the first bucket");
    has_line(p,
             "runai_token_store_latency_seconds_bucket{vhost=\"a:80\",le="
             "\"0.001\"} 2",
             "prometheus: buckets are cumulative");
    has_line(p,
             "runai_token_store_latency_seconds_bucket{vhost=\"a:80\",le="
             "\"1\"} 2",
             "prometheus: 2 s is over the last bound");
    has_line(p,
             "runai_token_store_latency_seconds_bucket{vhost=\"a:80\",le="
             "\"+Inf\"} 3",
             "prometheus: +Inf");
    has_line(p, "runai_token_store_latency_seconds_count{vhost=\"a:80\"} 3",
             "prometheus: count");
    has_line(p,
             "runai_token_store_latency_seconds_sum{vhost=\"a:80\"} 2.001000",
             "prometheus: sum in seconds");
    has_line(p, "runai_token_guard_accepted_total{vhost=\"b\\\"q:81\"} 1",
             "prometheus: guard accepted");
    has_line(p,
             "runai_token_guard_refused_total{vhost=\"b\\\"q:81\",reason="
             "\"not_jws\"} 1",
             "prometheus: guard refused by reason");
    has_line(p,
             "runai_token_guard_refused_total{vhost=\"b\\\"q:81\",reason="
             "\"other\"} 1",
             "prometheus: an unknown reason is other");
    has_line(p, "runai_token_store_slots_used 7", "prometheus: the fill");

    p = render(c, routes, NULL, RT_COUNTERS_AUTO);
    has_line(p,
             "runai_token_answers_total vhost=a:80 route=/api/v1/token "
             "grant=app_token outcome=granted: 2",
             "auto: name, labels and value");
    ok(strstr(p, "# ") == NULL && strstr(p, "store_slots") == NULL,
       "auto: no HELP or TYPE lines, no fill without one");
    p = render(c, routes, NULL, RT_COUNTERS_HTML);
    ok(strstr(p, "b&quot;q:81") != NULL && strstr(p, "<table") != NULL,
       "html: a table, names escaped");

    /* A new layout takes the counts of the host of the same name. */
    c2 = rt_counters_init(mem2, 2, 2);
    rt_counters_set_name(c2, 0, "new:82");
    rt_counters_set_name(c2, 1, "a:80");
    ok(rt_counters_carry(c2, c) == 1, "counters: one host carried by name");
    p = render(c2, routes, NULL, RT_COUNTERS_PROMETHEUS);
    has_line(p,
             "runai_token_answers_total{vhost=\"a:80\",route=\"/api/v1/"
             "token\",grant=\"app_token\",outcome=\"granted\"} 2",
             "counters: carried answers");
    has_line(p, "runai_token_refresh_rotations_total{vhost=\"new:82\"} 0",
             "counters: a new host starts at 0");
    c2 = rt_counters_init(mem2, 2, 1);
    ok(rt_counters_carry(c2, c) == 0,
       "counters: nothing carried across other routes");
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&pool, NULL);
    if (mkdtemp(tmpdir) == NULL) {
        printf("Bail out! cannot create a temporary directory\n");
        return 1;
    }
    test_b64url();
    test_utf8();
    test_json_ascii();
    test_json_ascii_shapes();
    test_small_parsers();
    test_request();
    test_claims();
    test_keys();
    test_records();
    test_form();
    test_pkce();
    test_verify();
    test_oidc();
    test_credcache();
    test_credcache_single_check();
    test_credcache_max_age();
    test_hmac();
    test_random_fork();
    test_authreq();
    test_loopback_uris();
    test_error_kinds();
    test_verify_iat();
    test_throttled_kinds();
    test_statefile();
    test_refresh_tokens();
    test_refresh_sid();
    test_refresh_rules();
    test_shmtable();
    test_redis_addrs();
    test_outage();
    test_counters();
    remove_tmpdir();
    apr_pool_destroy(pool);
    apr_terminate();
    printf("1..%d\n", tests);
    return failures ? 1 : 0;
}
