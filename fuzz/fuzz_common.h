/* Shared by the fuzz targets: one APR pool per process, a subpool per input
 * destroyed after it, and a NUL-terminated copy for C-string APIs. Each
 * target includes this once; it only holds static inline helpers. */
#ifndef RT_FUZZ_COMMON_H
#define RT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_pools.h>

static apr_pool_t *fuzz_root;

/* At exit the process pool goes, running the cleanups that free what was
 * loaded into it (keys): LeakSanitizer's final check then sees no leak,
 * even with APR pools in memory that it does not scan. */
static void fuzz_fini_apr(void)
{
    apr_pool_destroy(fuzz_root);
    apr_terminate();
}

/* Once per process; httpd does the same at start-up. */
static inline void fuzz_init_apr(void)
{
    if (apr_initialize() != APR_SUCCESS ||
        apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
        fprintf(stderr, "fuzz: cannot initialise APR\n");
        exit(1);
    }
    atexit(fuzz_fini_apr);
}

/* The libFuzzer initialiser of a target that needs nothing but APR. */
#define FUZZ_INIT_APR_ONLY                                                     \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                          \
    {                                                                          \
        (void)argc;                                                            \
        (void)argv;                                                            \
        fuzz_init_apr();                                                       \
        return 0;                                                              \
    }

/* A pool for one input, the stand-in for r->pool. */
static inline apr_pool_t *fuzz_pool(void)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, fuzz_root) != APR_SUCCESS) {
        abort();
    }
    return p;
}

/* data[0..size) as an exactly sized C string on the heap (not in a pool,
 * so that ASan sees a read past its end): the bytes up to the first NUL,
 * as a header or query string reaches the module. free() it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    const void *nul = memchr(data, '\0', size);
    size_t n = nul ? (size_t)((const uint8_t *)nul - data) : size;
    char *s = malloc(n + 1);

    if (s == NULL) {
        abort();
    }
    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* A broken invariant is a finding: make libFuzzer save the input. */
#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond,      \
                    __FILE__, __LINE__);                                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
