#include "rt_jwt.h"
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

int rt_claim_type_parse(const char *name)
{
    static const char *const names[] = {"string", "list", "number", "bool"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++) {
        if (strcasecmp(s, *words) == 0) {
            return 1;
        }
    }
    return 0;
}

static json_t *number_value(const char *s, int *bad)
{
    char *end;
    apr_int64_t i;
    double d;

    errno = 0;
    i = apr_strtoi64(s, &end, 10);
    if (end != s && *end == '\0' && errno == 0) {
        return json_integer((json_int_t)i);
    }
    errno = 0;
    d = strtod(s, &end);
    if (end != s && *end == '\0' && errno == 0 && isfinite(d) &&
        !apr_isspace(*s)) {
        return json_real(d);
    }
    *bad = 1;
    return NULL;
}

json_t *rt_claim_value(const char *text, rt_claim_type type, int *bad)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};

    *bad = 0;
    if (text == NULL || *text == '\0') {
        return NULL;
    }
    switch (type) {
    case RT_CLAIM_STRING:
        return json_string(text); /* NULL for invalid UTF-8: omitted */
    case RT_CLAIM_NUMBER:
        return apr_isspace(*text) ? (*bad = 1, NULL) : number_value(text, bad);
    case RT_CLAIM_BOOL:
        if (is_one_of(text, yes)) {
            return json_true();
        }
        if (is_one_of(text, no)) {
            return json_false();
        }
        *bad = 1;
        return NULL;
    case RT_CLAIM_LIST: {
        json_t *arr = json_array();
        const char *s = text;

        while (*s) {
            const char *e = strchr(s, ',');
            const char *end = e ? e : s + strlen(s);
            const char *a = s, *b = end;

            while (a < b && apr_isspace(*a)) {
                a++;
            }
            while (b > a && apr_isspace(b[-1])) {
                b--;
            }
            if (b > a) {
                json_array_append_new(arr, json_stringn(a, (size_t)(b - a)));
            }
            s = e ? e + 1 : end;
        }
        if (json_array_size(arr) == 0) {
            json_decref(arr);
            return NULL;
        }
        return arr;
    }
    }
    *bad = 1;
    return NULL;
}
