/* libFuzzer target: the JSON token request parser (rt_request_parse_json),
 * with the field set of the token route and of the legacy apptoken route.
 * The input is a request body, passed with its length as the module does. */
#include "fuzz_common.h"
#include "rt_request.h"
#include "rt_util.h"

static void parse_with(apr_pool_t *p, const uint8_t *data, size_t size,
                       unsigned int known)
{
    rt_fields f;
    rt_error *e = rt_request_parse_json(p, (const char *)data, size, known, &f);

    if (e != NULL) {
        FUZZ_CHECK(rt_error_status(e) == 400 && e->message != NULL);
        FUZZ_CHECK(rt_error_body(p, e) != NULL);
        return;
    }
    for (int i = 0; i < RT_F__COUNT; i++) {
        /* Only known fields are filled, each a NUL-free UTF-8 string. */
        FUZZ_CHECK(f.v[i] == NULL || (known & (1u << i)));
        if (f.v[i] != NULL) {
            FUZZ_CHECK(rt_utf8_valid(f.v[i], strlen(f.v[i])));
        }
        (void)rt_request_field(&f, (rt_field_id)i);
    }
}

FUZZ_INIT_APR_ONLY

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    parse_with(p, data, size, RT_FIELDS_TOKEN);
    parse_with(p, data, size, RT_FIELDS_LEGACY_APP);
    apr_pool_destroy(p);
    return 0;
}
