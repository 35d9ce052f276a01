#include "rt_pkce.h"
#include "rt_crypto.h"
#include "rt_util.h"

#include <string.h>
#include <apr_lib.h>

int rt_pkce_syntax_ok(const char *s)
{
    apr_size_t n = strlen(s);

    if (n < 43 || n > 128) {
        return 0;
    }
    for (; *s; s++) {
        if (!apr_isalnum(*s) && !strchr("-._~", *s)) {
            return 0;
        }
    }
    return 1;
}

int rt_pkce_s256_ok(const char *verifier, const char *challenge)
{
    unsigned char md[RT_SHA256_LEN];
    char enc[rt_b64url_len(RT_SHA256_LEN) + 1];

    if (!rt_pkce_syntax_ok(verifier)) {
        return 0;
    }
    if (!rt_crypto_sha256(verifier, strlen(verifier), md)) {
        return 0;
    }
    rt_b64url_to(enc, md, sizeof(md));
    return rt_ct_streq(enc, challenge);
}
