#include "rt_json.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* A growing output buffer in a pool. */
typedef struct {
    apr_pool_t *p;
    char *buf;
    apr_size_t len, cap;
} outbuf;

static void out_need(outbuf *o, apr_size_t n)
{
    if (o->len + n + 1 > o->cap) {
        apr_size_t cap = (o->cap + n + 1) * 2;
        char *b = apr_palloc(o->p, cap);

        if (o->len > 0) {
            memcpy(b, o->buf, o->len);
        }
        o->buf = b;
        o->cap = cap;
    }
}

static void out_put(outbuf *o, const char *s, apr_size_t n)
{
    out_need(o, n);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_u(outbuf *o, unsigned int u)
{
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\',
                 'u',
                 hex[(u >> 12) & 15],
                 hex[(u >> 8) & 15],
                 hex[(u >> 4) & 15],
                 hex[u & 15]};

    out_put(o, e, 6);
}

/* 1 for the bytes written as they are: printable ASCII but the quote, the
 * backslash and > ? ~ (escaped so that a payload never holds them raw). */
static unsigned char plain[256];
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

static void plain_init(void)
{
    for (int c = 0x20; c < 0x7f; c++) {
        plain[c] = c != '"' && c != '\\' && c != '>' && c != '?' && c != '~';
    }
}

/* A JSON string, ASCII only; jansson strings are valid UTF-8. */
static void out_string(outbuf *o, const char *s, apr_size_t n)
{
    const unsigned char *c = (const unsigned char *)s, *end = c + n;

    out_put(o, "\"", 1);
    while (c < end) {
        const unsigned char *run = c;

        while (c < end && plain[*c]) {
            c++;
        }
        out_put(o, (const char *)run, (apr_size_t)(c - run));
        if (c == end) {
            break;
        }
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            out_put(o, e, 2);
            c++;
        } else if (*c < 0x80) {
            out_u(o, *c++);
        } else {
            unsigned int cp;
            int extra = *c >= 0xF0 ? 3 : *c >= 0xE0 ? 2 : 1;

            cp = *c++ & (0x3F >> extra);
            for (int i = 0; i < extra && c < end; i++) {
                cp = (cp << 6) | (*c++ & 0x3F);
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                out_u(o, 0xD800 | (cp >> 10));
                out_u(o, 0xDC00 | (cp & 0x3FF));
            } else {
                out_u(o, cp);
            }
        }
    }
    out_put(o, "\"", 1);
}

static int out_value(outbuf *o, const json_t *j, int depth)
{
    char num[64];
    int n;

    if (depth > 64) {
        return 0;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        int first = 1;

        out_put(o, "{", 1);
        json_object_foreach((json_t *)j, key, v)
        {
            if (!first) {
                out_put(o, ",", 1);
            }
            first = 0;
            out_string(o, key, strlen(key));
            out_put(o, ":", 1);
            if (!out_value(o, v, depth + 1)) {
                return 0;
            }
        }
        out_put(o, "}", 1);
        return 1;
    }
    case JSON_ARRAY:
        out_put(o, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i > 0) {
                out_put(o, ",", 1);
            }
            if (!out_value(o, json_array_get(j, i), depth + 1)) {
                return 0;
            }
        }
        out_put(o, "]", 1);
        return 1;
    case JSON_STRING:
        out_string(o, json_string_value(j), json_string_length(j));
        return 1;
    case JSON_INTEGER:
        n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(j));
        out_put(o, num, (apr_size_t)n);
        return 1;
    case JSON_REAL:
        /* As jansson writes reals: 17 digits, always with '.' or 'e'. */
        if (!isfinite(json_real_value(j))) {
            return 0;
        }
        n = snprintf(num, sizeof(num) - 2, "%.17g", json_real_value(j));
        if (!strpbrk(num, ".eE")) {
            num[n++] = '.';
            num[n++] = '0';
        }
        out_put(o, num, (apr_size_t)n);
        return 1;
    case JSON_TRUE:
        out_put(o, "true", 4);
        return 1;
    case JSON_FALSE:
        out_put(o, "false", 5);
        return 1;
    case JSON_NULL:
        out_put(o, "null", 4);
        return 1;
    }
    return 0;
}

char *rt_json_ascii(apr_pool_t *p, const json_t *j)
{
    outbuf o = {p, NULL, 0, 0};

    if (j == NULL) {
        return NULL;
    }
    pthread_once(&plain_once, plain_init);
    out_need(&o, 256);
    if (!out_value(&o, j, 0)) {
        return NULL;
    }
    o.buf[o.len] = '\0';
    return o.buf;
}

static apr_status_t json_cleanup(void *data)
{
    json_decref((json_t *)data);
    return APR_SUCCESS;
}

json_t *rt_json_pool_own(apr_pool_t *p, json_t *j)
{
    if (j != NULL) {
        apr_pool_cleanup_register(p, j, json_cleanup, apr_pool_cleanup_null);
    }
    return j;
}

void rt_json_array_add_unique(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
            return;
        }
    }
    json_array_append_new(arr, json_string(s));
}
