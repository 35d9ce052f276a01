/* One connection to a redis server or sentinel: commands and replies in
 * RESP through hiredis's formatter and reader, over a socket of ours,
 * plain TCP or TLS (OpenSSL), so that one transport serves both and
 * carries the timeouts. Blocking: a timeout bounds the connect and each
 * read or write. One thread at a time uses a connection; connections
 * live across requests, so they are malloc'd, not in a pool.
 *
 * A connection that fails (I/O, timeout, a reply that does not parse) is
 * broken: the caller frees it and makes another. */
#ifndef RT_REDIS_H
#define RT_REDIS_H

#include <apr.h>
#include <apr_time.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>

typedef struct rt_redis rt_redis;

typedef struct {
    apr_interval_time_t timeout; /* connect, and each read and write */
    const char *user;            /* AUTH user (ACL); NULL: the default */
    const char *password;        /* NULL: no AUTH */
    SSL_CTX *tls;                /* NULL: plain TCP */
} rt_redis_opts;

#define RT_REDIS_ERRLEN 160

/* A connection to host:port, authenticated when o->password is set; NULL
 * with err (no secret in it) when it cannot be made. */
rt_redis *rt_redis_connect(const char *host, int port, const rt_redis_opts *o,
                           char err[RT_REDIS_ERRLEN]);
void rt_redis_close(rt_redis *c);

/* Queues one command; 0 when it cannot be formatted. */
int rt_redis_append(rt_redis *c, int argc, const char **argv,
                    const size_t *lens);

/* Sends the queued commands and reads n replies into replies (each to be
 * freed with freeReplyObject, or all with rt_redis_free_replies). 0 when
 * the connection broke (err says why; replies are all NULL then). */
int rt_redis_exchange(rt_redis *c, redisReply **replies, int n,
                      char err[RT_REDIS_ERRLEN]);
void rt_redis_free_replies(redisReply **replies, int n);

/* A single command's reply (NULL: broken, err says why). */
redisReply *rt_redis_command(rt_redis *c, char err[RT_REDIS_ERRLEN], int argc,
                             const char **argv, const size_t *lens);

/* 1 when the reply is the status or error text given (case-sensitive
 * prefix for errors: "READONLY" matches "-READONLY You can't..."). */
int rt_redis_is_status(const redisReply *rep, const char *text);
int rt_redis_is_error(const redisReply *rep, const char *prefix);

/* "HOST:PORT[,HOST:PORT...]" (IPv6 as [ADDR]:PORT; PORT defaults to
 * defport) into up to max entries; the count, or -1 with err. */
typedef struct {
    char host[256];
    int port;
} rt_redis_addr;

int rt_redis_parse_addrs(const char *list, int defport, rt_redis_addr *out,
                         int max, char err[RT_REDIS_ERRLEN]);

#endif
