/* bcrypt verifications per second on N threads, through the same APR
 * function mod_authn_file uses (apr_password_validate). */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <apr_general.h>
#include <apr_md5.h>
#include <apr_time.h>

static const char *password, *hash;
static double seconds;
static long counts[64];

static void *work(void *arg)
{
    long *n = arg;
    apr_time_t end = apr_time_now() + (apr_time_t)(seconds * 1e6);

    while (apr_time_now() < end) {
        if (apr_password_validate(password, hash) != APR_SUCCESS) {
            fprintf(stderr, "hash does not verify\n");
            exit(1);
        }
        (*n)++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    pthread_t t[64];
    long total = 0;

    if (argc < 4 || threads < 1 || threads > 64) {
        fprintf(stderr,
                "usage: bcrypt_speed PASSWORD HASH THREADS [SECONDS]\n");
        return 2;
    }
    apr_initialize();
    password = argv[1];
    hash = argv[2];
    seconds = argc > 4 ? atof(argv[4]) : 3.0;
    for (int i = 0; i < threads; i++) {
        pthread_create(&t[i], NULL, work, &counts[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    printf("%.1f\n", total / seconds);
    return 0;
}
