/* Refresh tokens and the rotation rule of a session, pure.
 *
 * A session is one record in the store, found by the hash of a random
 * handle. Its refresh token of generation g is "HANDLE.g.MAC", the MAC an
 * HMAC-SHA256 of (handle, g) under a random per-session seed kept in the
 * record. The token of each generation is thus fixed: a retry, or a
 * concurrent copy, of one token on any host gets the same successor, and a
 * record that fell behind its tokens (a write lost to a fault or a crash)
 * catches up with the first authentic token shown to it. The store holds
 * the seed but never the handle (records are keyed by its hash); the
 * tokens hold the handle but never the seed: neither alone gives a token. */
#ifndef RT_REFRESH_H
#define RT_REFRESH_H

#include <apr_pools.h>

#define RT_REFRESH_HANDLE_BYTES 16 /* 128 random bits */
#define RT_REFRESH_SEED_BYTES 32

/* A token's parts; handle points into a pool copy. */
typedef struct {
    const char *handle;
    apr_int64_t gen;
    const char *mac;
} rt_refresh_parts;

/* The token of generation gen of the session (handle, seed); NULL on
 * failure. */
const char *rt_refresh_token(apr_pool_t *p, const char *handle,
                             const char *seed, apr_int64_t gen);

/* The session's id, the sid claim of its access and id tokens:
 * base64url(SHA-256(handle)), whose digest keys the session's record.
 * It names the session without giving its handle. */
const char *rt_refresh_sid(apr_pool_t *p, const char *handle);

/* The digest a sid encodes (32 bytes); 0 when sid is not one. */
int rt_refresh_sid_digest(apr_pool_t *p, const char *sid,
                          unsigned char digest[32]);

/* 1 when token has the shape of a session token (it may still be forged). */
int rt_refresh_parse(apr_pool_t *p, const char *token, rt_refresh_parts *out);

/* 1 when the parts carry the MAC of the session whose seed is given. */
int rt_refresh_authentic(apr_pool_t *p, const rt_refresh_parts *t,
                         const char *seed);

/* Where a session stands; kept in its record. */
typedef struct {
    apr_int64_t gen;        /* generation of the newest token issued */
    apr_int64_t at;         /* when it was issued */
    apr_int64_t rate_start; /* the rate window's start */
    apr_int64_t rate_count; /* refreshes counted in it */
    int revoked;
} rt_refresh_state;

/* What the rules allow (rt_refresh_decide). */
typedef struct {
    apr_int64_t now;
    apr_int64_t retry;      /* RunaiTokenRefreshRetry: seconds */
    apr_int64_t rate_count; /* RunaiTokenRefreshRate: 0 for off */
    apr_int64_t rate_seconds;
    apr_int64_t idle; /* RunaiTokenRefreshIdle: seconds, 0 for off */
} rt_refresh_rules;

typedef enum {
    RT_RS_ROTATE,  /* a new generation: *issue is its number */
    RT_RS_RETRY,   /* the newest token again (*issue), for a retry */
    RT_RS_REUSED,  /* an earlier token shown too late: now revoked */
    RT_RS_REVOKED, /* the session had ended */
    RT_RS_IDLE,    /* not rotated for rules->idle seconds: now ended */
    RT_RS_LIMITED  /* over the rate: wait *issue seconds */
} rt_refresh_verdict;

/* Applies the rules to an authentic token of generation presented: s is
 * updated (the caller stores it unless the verdict is RT_RS_REVOKED or
 * RT_RS_LIMITED, which change nothing). The newest token, or any later
 * one (the record fell behind), rotates; the one before it, shown within
 * rules->retry seconds of the rotation, gets the newest again; any other
 * revokes the session. A session not rotated for rules->idle seconds ends
 * first; reuse is judged before the rate. */
rt_refresh_verdict rt_refresh_decide(rt_refresh_state *s, apr_int64_t presented,
                                     const rt_refresh_rules *rules,
                                     apr_int64_t *issue);

#endif
