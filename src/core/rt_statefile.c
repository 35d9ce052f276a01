#include "rt_statefile.h"
#include "rt_crypto.h"
#include "rt_record.h"

#include <jansson.h>
#include <string.h>

/* MAGIC, a 4-byte record count, then per record a 1-byte key length, a
 * 4-byte value length (big-endian), the key and the value; last the
 * SHA-256 of everything before it. */
#define MAGIC_LEN (sizeof(RT_STATEFILE_MAGIC) - 1)
#define HEAD_LEN (MAGIC_LEN + 4)

struct rt_statefile {
    apr_pool_t *p;
    unsigned char *buf;
    apr_size_t len, cap;
    unsigned int count;
};

static int grow(rt_statefile *f, apr_size_t more)
{
    unsigned char *nb;
    apr_size_t cap = f->cap;

    if (f->len + more <= f->cap) {
        return 1;
    }
    while (cap < f->len + more) {
        cap *= 2;
    }
    nb = apr_palloc(f->p, cap);
    if (nb == NULL) {
        return 0;
    }
    memcpy(nb, f->buf, f->len);
    f->buf = nb;
    f->cap = cap;
    return 1;
}

static void put32(unsigned char *b, apr_uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static apr_uint32_t get32(const unsigned char *b)
{
    return ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16) |
           ((apr_uint32_t)b[2] << 8) | (apr_uint32_t)b[3];
}

rt_statefile *rt_statefile_begin(apr_pool_t *p)
{
    rt_statefile *f = apr_pcalloc(p, sizeof(*f));

    f->p = p;
    f->cap = 65536;
    f->buf = apr_palloc(p, f->cap);
    memcpy(f->buf, RT_STATEFILE_MAGIC, MAGIC_LEN);
    f->len = HEAD_LEN;
    return f;
}

int rt_statefile_add(rt_statefile *f, const unsigned char *key, apr_size_t klen,
                     const unsigned char *val, apr_size_t vlen)
{
    if (klen == 0 || klen > RT_STATEFILE_KEY_MAX || vlen > RT_REC_MAX ||
        !grow(f, 5 + klen + vlen)) {
        return 0;
    }
    f->buf[f->len] = (unsigned char)klen;
    put32(f->buf + f->len + 1, (apr_uint32_t)vlen);
    memcpy(f->buf + f->len + 5, key, klen);
    memcpy(f->buf + f->len + 5 + klen, val, vlen);
    f->len += 5 + klen + vlen;
    f->count++;
    return 1;
}

unsigned int rt_statefile_count(const rt_statefile *f)
{
    return f->count;
}

const unsigned char *rt_statefile_finish(rt_statefile *f, apr_size_t *len,
                                         const unsigned char **sum)
{
    if (!grow(f, RT_SHA256_LEN)) {
        return NULL;
    }
    put32(f->buf + MAGIC_LEN, f->count);
    if (!rt_crypto_sha256(f->buf, f->len, f->buf + f->len)) {
        return NULL;
    }
    *sum = f->buf + f->len;
    f->len += RT_SHA256_LEN;
    *len = f->len;
    return f->buf;
}

/* Walks the records; with fn NULL it only checks that they fill the body
 * exactly. */
static const char *walk(const unsigned char *buf, apr_size_t body,
                        rt_statefile_record_fn fn, void *baton)
{
    apr_uint32_t count = get32(buf + MAGIC_LEN), i;
    apr_size_t at = HEAD_LEN;

    for (i = 0; i < count; i++) {
        apr_size_t klen, vlen;

        if (body - at < 5) {
            return "a record is cut short";
        }
        klen = buf[at];
        vlen = get32(buf + at + 1);
        if (klen == 0 || vlen > RT_REC_MAX || body - at - 5 < klen + vlen) {
            return "a record has a bad length";
        }
        if (fn != NULL) {
            fn(baton, buf + at + 5, klen, buf + at + 5 + klen, vlen);
        }
        at += 5 + klen + vlen;
    }
    return at == body ? NULL : "bytes follow the last record";
}

const char *rt_statefile_parse(const unsigned char *buf, apr_size_t len,
                               rt_statefile_record_fn fn, void *baton)
{
    unsigned char sum[RT_SHA256_LEN];
    apr_size_t body;
    const char *err;

    if (len < HEAD_LEN + RT_SHA256_LEN ||
        memcmp(buf, RT_STATEFILE_MAGIC, MAGIC_LEN) != 0) {
        return "not a state file (no header)";
    }
    body = len - RT_SHA256_LEN;
    if (!rt_crypto_sha256(buf, body, sum) ||
        memcmp(sum, buf + body, RT_SHA256_LEN) != 0) {
        return "its checksum does not match: truncated or damaged";
    }
    err = walk(buf, body, NULL, NULL);
    return err != NULL ? err : walk(buf, body, fn, baton);
}

int rt_statefile_record_exp(const unsigned char *val, apr_size_t len,
                            apr_int64_t *exp)
{
    json_t *rec = json_loadb((const char *)val, len, 0, NULL);
    json_t *e = json_object_get(rec, "exp");
    int ok = json_is_integer(e);

    if (ok) {
        *exp = (apr_int64_t)json_integer_value(e);
    }
    json_decref(rec);
    return ok;
}
