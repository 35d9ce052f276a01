/* libFuzzer target: the query of GET /api/v1/authorize. The input, up to
 * its first NUL, is r->args: rt_authreq_parse, then rt_authreq_check against
 * a fixed list of registered redirect URIs (a loopback one matching on any
 * port), then for an accepted request
 * rt_authreq_location, whose result must be the registered URI followed by
 * nothing but escaped parameters (no CR, LF, '#' or other injection). */
#include "fuzz_common.h"
#include "rt_authreq.h"
#include "rt_pkce.h"
#include "rt_form.h"
#include "rt_util.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_tables.h>

#define CODE "Zm9vYmFyLWNvZGU_-"

static const char *const registered[] = {
    "https://app.test/cb",
    "https://app.test/cb?tenant=1",
    "http://127.0.0.1:8080/callback",
    "com.example.app:/oauth2redirect",
};

static apr_array_header_t *uris;

/* Everything after the URI: "?" or "&", then code=..., then state=... */
static void check_location(apr_pool_t *p, const rt_authreq *q)
{
    const char *loc = rt_authreq_location(p, q->redirect_uri, CODE, q->state);
    size_t n = strlen(q->redirect_uri);
    const char *tail, *st;

    FUZZ_CHECK(loc != NULL && strncmp(loc, q->redirect_uri, n) == 0);
    tail = loc + n;
    FUZZ_CHECK(*tail == (strchr(q->redirect_uri, '?') ? '&' : '?'));
    FUZZ_CHECK(strncmp(tail + 1, "code=" CODE, strlen("code=" CODE)) == 0);
    for (const char *c = tail + 1; *c; c++) {
        FUZZ_CHECK(apr_isalnum(*c) || strchr("-._~%&=", *c) != NULL);
    }
    st = tail + 1 + strlen("code=" CODE);
    if (q->state == NULL) {
        FUZZ_CHECK(*st == '\0');
    } else {
        apr_size_t len;
        char *back;

        FUZZ_CHECK(strncmp(st, "&state=", 7) == 0);
        back = rt_form_decode_bytes(p, st + 7, strlen(st + 7), &len);
        /* The empty state decodes to "" too. */
        FUZZ_CHECK(back != NULL && len == strlen(q->state) &&
                   memcmp(back, q->state, len) == 0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_apr();
    uris = apr_array_make(fuzz_root, 4, sizeof(const char *));
    for (size_t i = 0; i < sizeof(registered) / sizeof(registered[0]); i++) {
        APR_ARRAY_PUSH(uris, const char *) = registered[i];
    }
    return 0;
}

/* The reference for RFC 8252 §7.3, apart from the module's code: a
 * loopback http URI with its port (":" and 1 to 5 digits after the host)
 * taken out, when what follows is a path, a query or nothing; else NULL. */
static const char *without_port(apr_pool_t *p, const char *u)
{
    static const char *const hosts[] = {"http://127.0.0.1", "http://[::1]",
                                        "http://localhost"};

    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t n = strlen(hosts[i]), d = 0;
        const char *rest = u + n;

        if (strncmp(u, hosts[i], n) != 0) {
            continue;
        }
        if (*rest == ':') {
            while (rest[1 + d] >= '0' && rest[1 + d] <= '9') {
                d++;
            }
            if (d == 0 || d > 5) {
                return NULL;
            }
            rest += 1 + d;
        }
        return *rest == '\0' || *rest == '/' || *rest == '?'
                   ? apr_pstrcat(p, hosts[i], rest, NULL)
                   : NULL;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *query = fuzz_cstr(data, size);
    rt_authreq q;
    rt_error *e;

    /* No input stands for a request without a query: r->args is NULL. */
    e = rt_authreq_parse(p, size == 0 ? NULL : query, &q);
    if (e != NULL) {
        FUZZ_CHECK(rt_error_status(e) == 400 && rt_error_body(p, e) != NULL);
        goto done;
    }
    /* An unknown client first, as for a client_id not configured. */
    e = rt_authreq_check(p, &q, NULL);
    FUZZ_CHECK(e != NULL && rt_error_status(e) == 400 &&
               rt_error_log_word(e) != NULL);
    e = rt_authreq_check(p, &q, uris);
    if (e != NULL) {
        FUZZ_CHECK(rt_error_status(e) == 400 && rt_error_log_word(e) != NULL);
        goto done;
    }
    /* Accepted: the redirect URI is registered byte for byte, or is a
     * registered loopback URI on another port. */
    {
        int found = 0;
        for (int i = 0; i < uris->nelts; i++) {
            const char *reg = APR_ARRAY_IDX(uris, i, const char *);
            const char *a = without_port(p, reg);
            const char *b = without_port(p, q.redirect_uri);

            found |= strcmp(reg, q.redirect_uri) == 0 ||
                     (a != NULL && b != NULL && strcmp(a, b) == 0);
        }
        FUZZ_CHECK(found && q.client_id && *q.client_id);
        FUZZ_CHECK(q.code_challenge == NULL ||
                   rt_pkce_syntax_ok(q.code_challenge));
    }
    check_location(p, &q);
done:
    free(query);
    apr_pool_destroy(p);
    return 0;
}
