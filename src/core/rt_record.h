/* Records of the session store, pure: keys are the
 * SHA-256 of the secret material (never the secret itself) and a kind byte;
 * values are JSON carrying a format version and their own expiry. */
#ifndef RT_RECORD_H
#define RT_RECORD_H

#include <apr_pools.h>
#include <jansson.h>

typedef enum {
    RT_REC_CODE = 'c',      /* one-time authorization code */
    RT_REC_SESSION = 's',   /* a refresh session, by its handle */
    RT_REC_REFRESH = 'r',   /* a session of the earlier format, by its token */
    RT_REC_THROTTLE = 't',  /* failed-attempt counter */
    RT_REC_USER = 'u',      /* a user's sessions ended before a time */
    RT_REC_ENDED = 'e',     /* a session ended on demand, by its digest */
    RT_REC_PING = 'p',      /* liveness probe of the store */
    RT_REC_DEVICE = 'd',    /* a device authorization (RFC 8628), by its code */
    RT_REC_USER_CODE = 'k', /* ... by its user code: the device code's hash */
    RT_REC_DECISION = 'g',  /* the user's approval or denial of a device */
    RT_REC_DEVICE_SPENT = 'y' /* ... a device code being or been redeemed */
} rt_rec_kind;

#define RT_REC_VERSION 1
#define RT_REC_KEY_LEN 34 /* SHA-256, kind, 'R' */
#define RT_REC_MAX 32768  /* largest encoded value */

/* 0 when the hash failed: no key then. */
int rt_record_key(unsigned char key[RT_REC_KEY_LEN], rt_rec_kind kind,
                  const char *material, apr_size_t len);

/* The key of a record whose material's SHA-256 is digest (a session
 * named by its sid). */
void rt_record_key_of(unsigned char key[RT_REC_KEY_LEN], rt_rec_kind kind,
                      const unsigned char digest[32]);

/* {"v":1,"exp":exp,"d":data}; NULL when it would exceed RT_REC_MAX. */
char *rt_record_encode(apr_pool_t *p, apr_int64_t exp, const json_t *data,
                       apr_size_t *len);

/* The "d" object of a record (owned by p), or NULL when buf is not a
 * record of this version or has expired at now. */
json_t *rt_record_decode(apr_pool_t *p, const unsigned char *buf,
                         apr_size_t len, apr_int64_t now);

#endif
