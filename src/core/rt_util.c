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

static const signed char b64url_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,
    ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

unsigned char *rt_b64url_decode(apr_pool_t *p, const char *s, apr_size_t n,
                                apr_size_t *out_len)
{
    unsigned char *out = apr_palloc(p, n * 3 / 4 + 1);
    apr_size_t o = 0;
    unsigned int acc = 0;
    int bits = 0;

    if (n % 4 == 1) {
        return NULL;
    }
    for (apr_size_t i = 0; i < n; i++) {
        int v = b64url_value[(unsigned char)s[i]];
        if (v == 0) {
            return NULL;
        }
        acc = (acc << 6) | (unsigned int)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero: one encoding per value. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return NULL;
    }
    out[o] = '\0';
    *out_len = o;
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
