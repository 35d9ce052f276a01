#include "rt_refresh.h"
#include "rt_crypto.h"
#include "rt_util.h"

#include <apr_strings.h>
#include <string.h>

#define HANDLE_LEN rt_b64url_len(RT_REFRESH_HANDLE_BYTES)
#define MAC_LEN rt_b64url_len(RT_SHA256_LEN)
#define GEN_MAX APR_INT64_C(999999999999999)

/* The MAC of (handle, gen) in base64url, into out (MAC_LEN + 1 bytes). */
static int mac_of(apr_pool_t *p, const char *handle, const char *seed,
                  apr_int64_t gen, char *out)
{
    char num[24];
    unsigned char mac[RT_SHA256_LEN];
    const void *parts[3];
    apr_size_t lens[3];
    rt_hmac *h =
        rt_crypto_hmac_new(p, (const unsigned char *)seed, strlen(seed));

    apr_snprintf(num, sizeof(num), "%" APR_INT64_T_FMT, gen);
    parts[0] = handle;
    lens[0] = strlen(handle) + 1; /* the NUL separates handle and gen */
    parts[1] = num;
    lens[1] = strlen(num);
    if (h == NULL || !rt_crypto_hmac_sha256(h, 2, parts, lens, mac)) {
        return 0;
    }
    rt_b64url_to(out, mac, sizeof(mac));
    out[MAC_LEN] = '\0';
    return 1;
}

const char *rt_refresh_token(apr_pool_t *p, const char *handle,
                             const char *seed, apr_int64_t gen)
{
    char mac[MAC_LEN + 1];

    if (handle == NULL || seed == NULL || gen < 1 || gen > GEN_MAX ||
        !mac_of(p, handle, seed, gen, mac)) {
        return NULL;
    }
    return apr_psprintf(p, "%s.%" APR_INT64_T_FMT ".%s", handle, gen, mac);
}

const char *rt_refresh_sid(apr_pool_t *p, const char *handle)
{
    unsigned char d[RT_SHA256_LEN];

    return rt_crypto_sha256(handle, strlen(handle), d)
               ? rt_b64url(p, d, sizeof(d))
               : NULL;
}

int rt_refresh_sid_digest(apr_pool_t *p, const char *sid,
                          unsigned char digest[RT_SHA256_LEN])
{
    apr_size_t len = 0;
    unsigned char *d = sid != NULL && strlen(sid) == MAC_LEN
                           ? rt_b64url_decode(p, sid, MAC_LEN, &len)
                           : NULL;

    if (d == NULL || len != RT_SHA256_LEN) {
        return 0;
    }
    memcpy(digest, d, RT_SHA256_LEN);
    return 1;
}

static int b64url_chars(const char *s, apr_size_t n)
{
    for (apr_size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

int rt_refresh_parse(apr_pool_t *p, const char *token, rt_refresh_parts *out)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    char *num;

    if (dot2 == NULL || dot1 - token != HANDLE_LEN ||
        !b64url_chars(token, HANDLE_LEN) || strlen(dot2 + 1) != MAC_LEN ||
        !b64url_chars(dot2 + 1, MAC_LEN) || dot2 - dot1 - 1 < 1 ||
        dot2 - dot1 - 1 > 15 || dot1[1] == '0') {
        return 0;
    }
    num = apr_pstrmemdup(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1));
    if (rt_parse_int(num, 1, GEN_MAX, &out->gen) != 0) {
        return 0;
    }
    out->handle = apr_pstrmemdup(p, token, HANDLE_LEN);
    out->mac = dot2 + 1;
    return 1;
}

int rt_refresh_authentic(apr_pool_t *p, const rt_refresh_parts *t,
                         const char *seed)
{
    char mac[MAC_LEN + 1];

    return seed != NULL && mac_of(p, t->handle, seed, t->gen, mac) &&
           rt_ct_streq(mac, t->mac);
}

rt_refresh_verdict rt_refresh_decide(rt_refresh_state *s, apr_int64_t presented,
                                     const rt_refresh_rules *rules,
                                     apr_int64_t *issue)
{
    /* A clock behind the rotation's (another host's, or a request whose
     * decision waited on a slow store) is within the window too. */
    int retry = presented == s->gen - 1 && rules->retry > 0 &&
                (rules->now < s->at || rules->now - s->at < rules->retry);

    *issue = 0;
    if (s->revoked) {
        return RT_RS_REVOKED;
    }
    if (rules->idle > 0 && rules->now - s->at >= rules->idle) {
        s->revoked = 1;
        return RT_RS_IDLE;
    }
    if (presented < s->gen && !retry) {
        s->revoked = 1;
        return RT_RS_REUSED;
    }
    if (rules->rate_count > 0) {
        if (rules->now - s->rate_start >= rules->rate_seconds ||
            rules->now < s->rate_start) {
            s->rate_start = rules->now;
            s->rate_count = 0;
        }
        if (s->rate_count >= rules->rate_count) {
            *issue = s->rate_start + rules->rate_seconds - rules->now;
            return RT_RS_LIMITED;
        }
        s->rate_count++;
    }
    if (retry) {
        *issue = s->gen;
        return RT_RS_RETRY;
    }
    s->gen = presented + 1;
    s->at = rules->now;
    *issue = s->gen;
    return RT_RS_ROTATE;
}
