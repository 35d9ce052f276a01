#include "rt_util.h"
#include "rt_crypto.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

apr_size_t rt_b64url_to(char *out, const unsigned char *d, apr_size_t len)
{
    char *o = out;
    apr_size_t i = 0;

    for (; i + 2 < len; i += 3) {
        *o++ = b64url_alphabet[d[i] >> 2];
        *o++ = b64url_alphabet[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
        *o++ = b64url_alphabet[((d[i + 1] & 15) << 2) | (d[i + 2] >> 6)];
        *o++ = b64url_alphabet[d[i + 2] & 63];
    }
    if (len - i == 1) {
        *o++ = b64url_alphabet[d[i] >> 2];
        *o++ = b64url_alphabet[(d[i] & 3) << 4];
    } else if (len - i == 2) {
        *o++ = b64url_alphabet[d[i] >> 2];
        *o++ = b64url_alphabet[((d[i] & 3) << 4) | (d[i + 1] >> 4)];
        *o++ = b64url_alphabet[(d[i + 1] & 15) << 2];
    }
    *o = '\0';
    return (apr_size_t)(o - out);
}

char *rt_b64url(apr_pool_t *p, const unsigned char *data, apr_size_t len)
{
    char *out = apr_palloc(p, rt_b64url_len(len) + 1);
    rt_b64url_to(out, data, len);
    return out;
}

char *rt_random_id(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char buf[64];

    if (nbytes > sizeof(buf) || !rt_crypto_random(buf, nbytes)) {
        return NULL;
    }
    return rt_b64url(p, buf, nbytes);
}

int rt_utf8_valid(const char *buf, apr_size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    const unsigned char *end = s + len;

    while (s < end) {
        unsigned char c = *s;
        apr_size_t n;
        unsigned int cp;

        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if ((apr_size_t)(end - s) <= n) {
            return 0;
        }
        for (apr_size_t k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        s += n + 1;
    }
    return 1;
}

int rt_media_type_is(const char *ct, const char *type)
{
    apr_size_t n = strlen(type);

    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    if (strncasecmp(ct, type, n) != 0) {
        return 0;
    }
    ct += n;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return *ct == '\0' || *ct == ';';
}

int rt_parse_int(const char *s, apr_int64_t min, apr_int64_t max,
                 apr_int64_t *out)
{
    char *end;
    apr_int64_t v;

    if (s == NULL || !apr_isdigit(*s)) {
        return -1;
    }
    errno = 0;
    v = apr_strtoi64(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int rt_ct_streq(const char *a, const char *b)
{
    apr_size_t n = strlen(a);

    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}
