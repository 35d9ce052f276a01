/*
 * jwt_verify KEYFILE TOKEN
 *
 * Independent verifier for the test suite: checks TOKEN with libjwt's
 * jwt_decode() and the bytes of KEYFILE (a PEM public key for RS and ES
 * tokens, the raw secret bytes for HS tokens). libjwt 1.10 reads only public
 * keys when it verifies, so a PEM private key is refused with a hint. On
 * success it prints the claims JSON on line 1 and the algorithm on line 2 and
 * exits 0; on any failure it prints the reason on stderr and exits 1.
 *
 * The key type fixes the algorithm family: a PEM key never accepts an HS
 * token (the classic public-key-as-HMAC-secret confusion) and a raw secret
 * never accepts an RS or ES token; "none" is always refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#define MAX_KEY_BYTES (1024 * 1024)

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "jwt_verify: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    return 1;
}

/* Reads the whole file; NUL-terminates for convenience, *len excludes it. */
static unsigned char *read_key(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    size_t n;

    if (!f)
        return NULL;
    buf = malloc(MAX_KEY_BYTES + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, MAX_KEY_BYTES + 1, f);
    if (ferror(f) || n == 0 || n > MAX_KEY_BYTES) {
        fclose(f);
        free(buf);
        errno = EINVAL;
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int alg_is_asymmetric(jwt_alg_t alg)
{
    return alg == JWT_ALG_RS256 || alg == JWT_ALG_RS384 ||
           alg == JWT_ALG_RS512 || alg == JWT_ALG_ES256 ||
           alg == JWT_ALG_ES384 || alg == JWT_ALG_ES512;
}

int main(int argc, char **argv)
{
    unsigned char *key;
    size_t key_len = 0;
    jwt_t *jwt = NULL;
    jwt_alg_t alg;
    char *claims;
    int is_pem, rc;

    if (argc != 3)
        return fail("usage", "jwt_verify KEYFILE TOKEN");

    key = read_key(argv[1], &key_len);
    if (!key)
        return fail(argv[1], strerror(errno));
    is_pem = strstr((const char *)key, "-----BEGIN ") != NULL;
    if (is_pem && strstr((const char *)key, "PRIVATE KEY-----")) {
        free(key);
        return fail(argv[1], "libjwt 1.10 verifies with a PEM public key, "
                             "not a private key");
    }

    rc = jwt_decode(&jwt, argv[2], key, (int)key_len);
    free(key);
    if (rc != 0 || !jwt)
        return fail("jwt_decode failed", strerror(rc ? rc : EINVAL));

    alg = jwt_get_alg(jwt);
    if (alg == JWT_ALG_NONE || is_pem != alg_is_asymmetric(alg)) {
        jwt_free(jwt);
        return fail("algorithm does not match the key type", jwt_alg_str(alg));
    }

    claims = jwt_get_grants_json(jwt, NULL);
    if (!claims) {
        jwt_free(jwt);
        return fail("cannot serialise the claims", NULL);
    }
    printf("%s\n%s\n", claims, jwt_alg_str(alg));
    free(claims);
    jwt_free(jwt);
    return 0;
}
