/* libFuzzer target: the OAuth form dialect. The input is parsed as an
 * application/x-www-form-urlencoded body (rt_form_parse) and, up to its
 * first NUL, as the credentials of an "Authorization: Basic" header
 * (rt_form_basic_auth), which the module calls once the header is known
 * to start with "Basic ". */
#include "fuzz_common.h"
#include "rt_form.h"
#include "rt_util.h"

#include <strings.h>
#include <apr_strings.h>

static void form(apr_pool_t *p, const uint8_t *data, size_t size)
{
    rt_fields f;
    rt_error *e = rt_form_parse(p, (const char *)data, size, &f);

    if (e != NULL) {
        FUZZ_CHECK(rt_error_status(e) == 400 && rt_error_body(p, e) != NULL);
        return;
    }
    for (int i = 0; i < RT_F__COUNT; i++) {
        if (f.v[i] != NULL) {
            FUZZ_CHECK(rt_utf8_valid(f.v[i], strlen(f.v[i])));
            /* The name error messages use for it. */
            FUZZ_CHECK(rt_form_param_name((rt_field_id)i) != NULL);
        }
    }
    FUZZ_CHECK(f.v[RT_F_GRANT_TYPE] == NULL ||
               strcmp(f.v[RT_F_GRANT_TYPE], "authorization_code") != 0);
}

static void basic(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *creds = fuzz_cstr(data, size);
    size_t n = strlen(creds);
    char *header = malloc(n + 7);
    const char *id = NULL, *secret = NULL;
    rt_error *e;

    if (header == NULL) {
        abort();
    }
    memcpy(header, "Basic ", 6);
    memcpy(header + 6, creds, n + 1);
    e = rt_form_basic_auth(p, header, &id, &secret);
    if (e != NULL) {
        FUZZ_CHECK(rt_error_status(e) == 400 || rt_error_status(e) == 401);
    } else {
        FUZZ_CHECK(id != NULL && *id != '\0' && secret != NULL);
        FUZZ_CHECK(rt_utf8_valid(id, strlen(id)) &&
                   rt_utf8_valid(secret, strlen(secret)));
    }
    free(header);
    free(creds);
}

FUZZ_INIT_APR_ONLY

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();

    form(p, data, size);
    basic(p, data, size);
    apr_pool_destroy(p);
    return 0;
}
