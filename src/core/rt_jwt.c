#include "rt_jwt.h"
#include "rt_json.h"
#include "rt_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <jwt.h>

char *rt_jwt_sign(apr_pool_t *p, const rt_key *key, const json_t *claims)
{
    unsigned char sig[RT_SIG_MAX];
    const char *payload = rt_json_ascii(p, claims);
    apr_size_t plen, sig_len, n;
    char *tok, *o;

    if (payload == NULL) {
        return NULL;
    }
    plen = strlen(payload);
    tok = apr_palloc(p, key->header_b64_len + 1 + rt_b64url_len(plen) + 1 +
                            rt_b64url_len(RT_SIG_MAX) + 1);
    memcpy(tok, key->header_b64, key->header_b64_len);
    o = tok + key->header_b64_len;
    *o++ = '.';
    o += rt_b64url_to(o, (const unsigned char *)payload, plen);
    n = (apr_size_t)(o - tok);
    sig_len = rt_key_sign(key, (const unsigned char *)tok, n, sig);
    if (sig_len == 0) {
        return NULL;
    }
    *o++ = '.';
    rt_b64url_to(o, sig, sig_len);
    return tok;
}

static const jwt_alg_t libjwt_alg[] = {
    [RT_ALG_RS256] = JWT_ALG_RS256, [RT_ALG_ES256] = JWT_ALG_ES256,
    [RT_ALG_ES384] = JWT_ALG_ES384, [RT_ALG_ES512] = JWT_ALG_ES512,
    [RT_ALG_HS256] = JWT_ALG_HS256,
};

const char *rt_jwt_selfcheck(apr_pool_t *p, const rt_key *key)
{
    json_t *claims = rt_json_pool_own(
        p, json_pack("{s:s,s:s}", "iss", "mod_runai_token", "sub", "probe?>~"));
    char *tok = rt_jwt_sign(p, key, claims);
    const unsigned char *vk;
    int vk_len, rc;
    jwt_t *jwt = NULL;
    const char *sub;

    if (tok == NULL) {
        return apr_psprintf(p, "cannot sign with the key in '%s'", key->file);
    }
    if (key->secret != NULL) {
        vk = key->secret;
        vk_len = (int)key->secret_len;
    } else {
        vk = (const unsigned char *)key->public_pem;
        vk_len = (int)strlen(key->public_pem);
    }
    rc = jwt_decode(&jwt, tok, vk, vk_len);
    sub = rc == 0 ? jwt_get_grant(jwt, "sub") : NULL;
    rc = rc != 0 || jwt_get_alg(jwt) != libjwt_alg[key->alg] || sub == NULL ||
         strcmp(sub, "probe?>~") != 0;
    jwt_free(jwt);
    return rc ? apr_psprintf(p,
                             "libjwt does not verify a %s token signed "
                             "with the key in '%s'",
                             key->alg_name, key->file)
              : NULL;
}

#define TOKEN_MAX 16384

static json_t *decode_json(apr_pool_t *p, const char *s, apr_size_t n)
{
    apr_size_t len;
    unsigned char *raw = rt_b64url_decode(p, s, n, &len);
    json_t *j;

    if (raw == NULL) {
        return NULL;
    }
    j = rt_json_pool_own(
        p, json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL));
    return json_is_object(j) ? j : NULL;
}

static const rt_key *pick_key(const apr_array_header_t *keys, const char *kid)
{
    for (int i = 0; keys && i < keys->nelts; i++) {
        const rt_key *k = APR_ARRAY_IDX(keys, i, rt_key *);
        if (kid ? strcmp(k->kid, kid) == 0 : keys->nelts == 1) {
            return k;
        }
    }
    return NULL;
}

static int aud_ok(const rt_jwt_params *v, json_t *aud)
{
    json_t *item;
    size_t i;

    if (json_is_string(aud)) {
        json_t *one = json_pack("[O]", aud);
        int ok = aud_ok(v, one);
        json_decref(one);
        return ok;
    }
    json_array_foreach(aud, i, item)
    {
        const char *a = json_string_value(item);
        if (a == NULL) {
            continue;
        }
        for (int j = 0; j < v->audience->nelts; j++) {
            if (strcmp(a, APR_ARRAY_IDX(v->audience, j, const char *)) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

#define REFUSE(reason)                                                         \
    do {                                                                       \
        *why = (reason);                                                       \
        return NULL;                                                           \
    } while (0)

const char *rt_jwt_verify_signature(apr_pool_t *p,
                                    const apr_array_header_t *keys,
                                    const char *token, const char **why)
{
    const char *dot1, *dot2, *alg, *kid;
    json_t *hdr;
    const rt_key *k;
    unsigned char *sig, *payload;
    apr_size_t sig_len, len, n = strlen(token);

    if (n > TOKEN_MAX) {
        REFUSE("token too long");
    }
    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        REFUSE("not a JWS compact serialization");
    }
    hdr = decode_json(p, token, (apr_size_t)(dot1 - token));
    if (hdr == NULL) {
        REFUSE("malformed header");
    }
    alg = json_string_value(json_object_get(hdr, "alg"));
    kid = json_string_value(json_object_get(hdr, "kid"));
    if (alg == NULL || json_object_get(hdr, "crit") != NULL) {
        REFUSE("header without alg, or with crit");
    }
    if (json_object_get(hdr, "kid") != NULL && kid == NULL) {
        REFUSE("kid is not a string");
    }
    k = pick_key(keys, kid);
    if (k == NULL) {
        REFUSE("no key with this kid");
    }
    /* The key fixes the algorithm: no "none", no HS with a public key. */
    if (strcmp(alg, k->alg_name) != 0) {
        REFUSE("alg does not match the key");
    }
    sig = rt_b64url_decode(p, dot2 + 1, strlen(dot2 + 1), &sig_len);
    if (sig == NULL || sig_len == 0 ||
        !rt_key_verify(k, (const unsigned char *)token,
                       (apr_size_t)(dot2 - token), sig, sig_len)) {
        REFUSE("bad signature");
    }
    payload =
        rt_b64url_decode(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), &len);
    if (payload == NULL || memchr(payload, '\0', len) != NULL) {
        REFUSE("malformed claims");
    }
    return (const char *)payload;
}

json_t *rt_jwt_verify_claims(apr_pool_t *p, const rt_jwt_params *v,
                             const char *payload, const char **why)
{
    json_t *claims =
        rt_json_pool_own(p, json_loads(payload, JSON_REJECT_DUPLICATES, NULL));
    json_t *exp, *nbf, *iat;

    if (!json_is_object(claims)) {
        REFUSE("malformed claims");
    }
    exp = json_object_get(claims, "exp");
    nbf = json_object_get(claims, "nbf");
    iat = json_object_get(claims, "iat");
    if (!json_is_integer(exp) && !json_is_real(exp)) {
        REFUSE("no exp");
    }
    if (json_number_value(exp) + (double)v->leeway <= (double)v->now) {
        REFUSE("expired");
    }
    if (nbf != NULL &&
        (!json_is_number(nbf) ||
         json_number_value(nbf) - (double)v->leeway > (double)v->now)) {
        REFUSE("not yet valid");
    }
    /* A token issued later than now (beyond the leeway) comes from a
     * clock that is wrong, or from someone who holds a key and stamps
     * tokens ahead: refused like an nbf in the future. */
    if (iat != NULL &&
        (!json_is_number(iat) ||
         json_number_value(iat) - (double)v->leeway > (double)v->now)) {
        REFUSE("issued in the future");
    }
    if (!json_is_string(json_object_get(claims, "iss")) ||
        strcmp(json_string_value(json_object_get(claims, "iss")), v->issuer) !=
            0) {
        REFUSE("wrong issuer");
    }
    if (!aud_ok(v, json_object_get(claims, "aud"))) {
        REFUSE("wrong audience");
    }
    return claims;
}

#undef REFUSE

json_t *rt_jwt_verify(apr_pool_t *p, const rt_jwt_params *v, const char *token,
                      const char **why)
{
    const char *payload = rt_jwt_verify_signature(p, v->keys, token, why);

    return payload ? rt_jwt_verify_claims(p, v, payload, why) : NULL;
}
