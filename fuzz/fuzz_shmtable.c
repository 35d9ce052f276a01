/* libFuzzer target: the default store's table (rt_shmtable.c), driven by
 * the input as a sequence of operations, each of four bytes: the operation
 * (put, get, remove, a full walk), a key of 24, a value length up to 1 KiB
 * and an expiry step. Two tables take the same operations: a large one
 * that never needs to evict, checked record by record against a model,
 * and a small one that evicts all the time, where a get must give the
 * value last put under its key or nothing, never another's. Both keep
 * their counts consistent. */
#include "fuzz_common.h"
#include "rt_shmtable.h"

#include <apr_strings.h>

#define KEYS 24
#define BIG (256 * 1024)
#define SMALL 8192

static uint64_t big_mem[BIG / 8], small_mem[SMALL / 8];

typedef struct {
    int present;
    apr_int64_t expiry;
    apr_size_t len;
    unsigned char fill;
} model;

static void value(unsigned char *buf, apr_size_t len, unsigned char fill)
{
    for (apr_size_t i = 0; i < len; i++) {
        buf[i] = (unsigned char)(fill + i);
    }
}

static int count_one(void *baton, const unsigned char *key, apr_size_t klen,
                     apr_int64_t expiry, const unsigned char *val,
                     apr_size_t vlen)
{
    (void)key;
    (void)klen;
    (void)expiry;
    (void)val;
    (void)vlen;
    (*(unsigned *)baton)++;
    return 0;
}

static void consistent(rt_shmtable *t, apr_int64_t now, apr_pool_t *p)
{
    rt_shmtable_stats st;
    unsigned n = 0;

    rt_shmtable_stat(t, &st);
    rt_shmtable_each(t, now, p, count_one, &n);
    if (n > st.records || st.records > st.entries || st.free_slots > st.slots) {
        abort();
    }
}

FUZZ_INIT_APR_ONLY

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    rt_shmtable *big = rt_shmtable_init(big_mem, sizeof(big_mem));
    rt_shmtable *small = rt_shmtable_init(small_mem, sizeof(small_mem));
    model m[KEYS] = {{0, 0, 0, 0}};
    unsigned char small_fill[KEYS] = {0};
    unsigned char in[1100], out[1100];
    apr_int64_t now = 1000;

    if (big == NULL || small == NULL) {
        abort();
    }
    for (size_t i = 0; i + 4 <= size; i += 4) {
        unsigned op = data[i] % 5, k = data[i + 1] % KEYS;
        apr_size_t len = (apr_size_t)data[i + 2] * 4, got;
        char key[8];
        rt_shmtable_status a, b;

        apr_snprintf(key, sizeof(key), "key%u", k);
        now += data[i + 3] % 4;
        switch (op) {
        case 0:
        case 1: /* put, expiring 1 to 16 steps later */
            value(in, len, data[i + 3]);
            a = rt_shmtable_put(big, (unsigned char *)key, strlen(key),
                                now + 1 + data[i + 3] % 16, in, len, now);
            b = rt_shmtable_put(small, (unsigned char *)key, strlen(key),
                                now + 1 + data[i + 3] % 16, in, len, now);
            if (a != RT_SHMT_OK) {
                abort();
            }
            m[k] = (model){1, now + 1 + data[i + 3] % 16, len, data[i + 3]};
            small_fill[k] = data[i + 3];
            (void)b;
            break;
        case 2: /* get */
            got = sizeof(out);
            a = rt_shmtable_get(big, (unsigned char *)key, strlen(key), now,
                                out, &got);
            if (m[k].present && m[k].expiry > now) {
                value(in, m[k].len, m[k].fill);
                if (a != RT_SHMT_OK || got != m[k].len ||
                    memcmp(out, in, got) != 0) {
                    abort();
                }
            } else if (a != RT_SHMT_NOTFOUND) {
                abort();
            }
            got = sizeof(out);
            b = rt_shmtable_get(small, (unsigned char *)key, strlen(key), now,
                                out, &got);
            if (b == RT_SHMT_OK) {
                /* the value last put under this key, nothing else */
                value(in, got, small_fill[k]);
                if (!m[k].present || got != m[k].len ||
                    memcmp(out, in, got) != 0) {
                    abort();
                }
            }
            break;
        case 3: /* remove */
            a = rt_shmtable_remove(big, (unsigned char *)key, strlen(key));
            rt_shmtable_remove(small, (unsigned char *)key, strlen(key));
            /* an expired record may be gone already (a get drops it) */
            if ((!m[k].present && a == RT_SHMT_OK) ||
                (m[k].present && m[k].expiry > now && a != RT_SHMT_OK)) {
                abort();
            }
            m[k].present = 0;
            break;
        default:
            consistent(big, now, p);
            consistent(small, now, p);
        }
    }
    {
        rt_shmtable_stats st;

        rt_shmtable_stat(big, &st);
        if (st.evicted != 0) {
            abort(); /* the large table never needs to */
        }
    }
    consistent(big, now, p);
    consistent(small, now, p);
    apr_pool_destroy(p);
    return 0;
}
