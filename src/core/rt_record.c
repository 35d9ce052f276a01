#include "rt_record.h"
#include "rt_json.h"
#include "rt_util.h"
#include "rt_crypto.h"

#include <string.h>

int rt_record_key(unsigned char key[RT_REC_KEY_LEN], rt_rec_kind kind,
                  const char *material, apr_size_t len)
{
    unsigned char digest[RT_SHA256_LEN];

    if (!rt_crypto_sha256(material, len, digest)) {
        return 0;
    }
    rt_record_key_of(key, kind, digest);
    return 1;
}

void rt_record_key_of(unsigned char key[RT_REC_KEY_LEN], rt_rec_kind kind,
                      const unsigned char digest[32])
{
    /* The hash comes first: shmcb picks a subcache by the first bytes of
     * a key, so a fixed prefix would crowd every record into one. */
    memcpy(key, digest, RT_SHA256_LEN);
    key[RT_SHA256_LEN] = (unsigned char)kind;
    key[RT_SHA256_LEN + 1] = 'R';
}

char *rt_record_encode(apr_pool_t *p, apr_int64_t exp, const json_t *data,
                       apr_size_t *len)
{
    json_t *rec =
        rt_json_pool_own(p, json_pack("{s:i,s:I,s:O}", "v", RT_REC_VERSION,
                                      "exp", (json_int_t)exp, "d", data));
    char *s = rec ? rt_json_ascii(p, rec) : NULL;

    if (s == NULL || (*len = strlen(s)) > RT_REC_MAX) {
        return NULL;
    }
    return s;
}

json_t *rt_record_decode(apr_pool_t *p, const unsigned char *buf,
                         apr_size_t len, apr_int64_t now)
{
    json_t *rec =
        rt_json_pool_own(p, json_loadb((const char *)buf, len, 0, NULL));
    json_t *v, *exp, *d;

    if (!json_is_object(rec)) {
        return NULL;
    }
    v = json_object_get(rec, "v");
    exp = json_object_get(rec, "exp");
    d = json_object_get(rec, "d");
    if (!json_is_integer(v) || json_integer_value(v) != RT_REC_VERSION ||
        !json_is_integer(exp) || json_integer_value(exp) <= now ||
        !json_is_object(d)) {
        return NULL;
    }
    return d;
}
