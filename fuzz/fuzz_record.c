/* libFuzzer target: the store record decoder (rt_record_decode). The input
 * is a value as a socache provider hands it back, at most RT_REC_MAX bytes.
 * A record that decodes is encoded again and must decode to the same data.
 * The input is also hashed into a record key, as a client's code or
 * refresh token is (rt_record_key), and read as a refresh token
 * (rt_refresh_parse): one that parses is made again from its parts and
 * must be the input when its MAC is authentic. */
#include "fuzz_common.h"
#include "rt_record.h"
#include "rt_refresh.h"

#include <apr_strings.h>

#define NOW 1700000000

FUZZ_INIT_APR_ONLY

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    json_t *d, *again;
    char *enc;
    apr_size_t len;

    if (size > RT_REC_MAX) { /* the store never reads more */
        return 0;
    }
    p = fuzz_pool();
    {
        unsigned char k1[RT_REC_KEY_LEN], k2[RT_REC_KEY_LEN];

        /* hash first (shmcb spreads keys by their first bytes), then the
         * kind: one material, two kinds, two keys sharing the hash */
        FUZZ_CHECK(rt_record_key(k1, RT_REC_CODE, (const char *)data, size));
        FUZZ_CHECK(rt_record_key(k2, RT_REC_REFRESH, (const char *)data, size));
        FUZZ_CHECK(k1[RT_REC_KEY_LEN - 2] == RT_REC_CODE &&
                   k2[RT_REC_KEY_LEN - 2] == RT_REC_REFRESH &&
                   memcmp(k1, k2, RT_REC_KEY_LEN - 2) == 0);
    }
    {
        char *tok = apr_pstrmemdup(p, (const char *)data, size);
        rt_refresh_parts t;

        if (strlen(tok) == size && rt_refresh_parse(p, tok, &t)) {
            const char *again = rt_refresh_token(p, t.handle, "seed", t.gen);

            FUZZ_CHECK(t.gen >= 1 && strlen(t.handle) == 22);
            FUZZ_CHECK(again != NULL &&
                       (strcmp(again, tok) == 0) ==
                           rt_refresh_authentic(p, &t, "seed"));
        }
    }
    d = rt_record_decode(p, data, size, NOW);
    if (d != NULL) {
        FUZZ_CHECK(json_is_object(d));
        enc = rt_record_encode(p, NOW + 1, d, &len);
        if (enc != NULL) {
            again = rt_record_decode(p, (const unsigned char *)enc, len, NOW);
            FUZZ_CHECK(again != NULL && json_equal(again, d));
            FUZZ_CHECK(rt_record_decode(p, (const unsigned char *)enc, len,
                                        NOW + 1) == NULL);
        }
    }
    apr_pool_destroy(p);
    return 0;
}
