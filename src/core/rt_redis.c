#include "rt_redis.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rt_redis {
    int fd;
    SSL *ssl;
    redisReader *reader;
    char *out; /* queued commands */
    size_t out_len, out_cap;
    int queued;
};

static void set_err(char err[RT_REDIS_ERRLEN], const char *what, int e)
{
    if (e != 0) {
        snprintf(err, RT_REDIS_ERRLEN, "%s: %s", what, strerror(e));
    } else {
        snprintf(err, RT_REDIS_ERRLEN, "%s", what);
    }
}

static void set_tls_err(char err[RT_REDIS_ERRLEN], const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[120];

    if (e == 0) {
        set_err(err, what, errno);
        return;
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(err, RT_REDIS_ERRLEN, "%s: %s", what, buf);
}

/* A TCP connection to one of host's addresses within timeout; -1 with
 * err. */
static int tcp_connect(const char *host, int port, apr_interval_time_t timeout,
                       char err[RT_REDIS_ERRLEN])
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[16];
    int fd = -1, rc, one = 1;
    struct timeval tv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%d", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, RT_REDIS_ERRLEN, "cannot resolve %s: %s", host,
                 gai_strerror(rc));
        return -1;
    }
    set_err(err, "no address", 0);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            set_err(err, "socket", errno);
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            do {
                rc = poll(&pfd, 1, (int)(timeout / 1000));
            } while (rc < 0 && errno == EINTR);
            if (rc == 0) {
                soerr = ETIMEDOUT;
            } else if (rc < 0 ||
                       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
                soerr = errno;
            }
            rc = soerr ? -1 : 0;
            errno = soerr;
        }
        if (rc != 0) {
            set_err(err, "connect", errno);
            close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        tv.tv_sec = (time_t)(timeout / APR_USEC_PER_SEC);
        tv.tv_usec = (suseconds_t)(timeout % APR_USEC_PER_SEC);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        break;
    }
    freeaddrinfo(res);
    return fd;
}

/* TLS over fd, the server's certificate checked against the context's
 * CAs and against host (a name or an address). */
static SSL *tls_connect(int fd, SSL_CTX *ctx, const char *host,
                        char err[RT_REDIS_ERRLEN])
{
    SSL *ssl = SSL_new(ctx);
    unsigned char addr[16];
    int ip = inet_pton(AF_INET, host, addr) == 1 ||
             inet_pton(AF_INET6, host, addr) == 1;

    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        set_tls_err(err, "TLS");
        SSL_free(ssl);
        return NULL;
    }
    if (ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    } else {
        SSL_set_tlsext_host_name(ssl, host);
        SSL_set1_host(ssl, host);
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);

        if (v != X509_V_OK) {
            snprintf(err, RT_REDIS_ERRLEN, "TLS: the server's certificate: %s",
                     X509_verify_cert_error_string(v));
            ERR_clear_error();
        } else {
            set_tls_err(err, "TLS handshake");
        }
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

rt_redis *rt_redis_connect(const char *host, int port, const rt_redis_opts *o,
                           char err[RT_REDIS_ERRLEN])
{
    rt_redis *c;
    int fd = tcp_connect(host, port, o->timeout, err);

    if (fd < 0) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->reader = redisReaderCreate()) == NULL) {
        free(c);
        close(fd);
        set_err(err, "out of memory", 0);
        return NULL;
    }
    c->fd = fd;
    if (o->tls != NULL &&
        (c->ssl = tls_connect(fd, o->tls, host, err)) == NULL) {
        rt_redis_close(c);
        return NULL;
    }
    if (o->password != NULL) {
        const char *argv[3] = {"AUTH", o->user ? o->user : o->password,
                               o->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(o->password)};
        redisReply *rep = rt_redis_command(c, err, o->user ? 3 : 2, argv, lens);

        if (rep == NULL || !rt_redis_is_status(rep, "OK")) {
            /* The server's words, never the credentials. */
            if (rep != NULL) {
                snprintf(err, RT_REDIS_ERRLEN, "AUTH refused: %.100s",
                         rep->type == REDIS_REPLY_ERROR ? rep->str
                                                        : "unexpected reply");
            }
            freeReplyObject(rep);
            rt_redis_close(c);
            return NULL;
        }
        freeReplyObject(rep);
    }
    return c;
}

void rt_redis_close(rt_redis *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
    }
    free(c->out);
    free(c);
}

int rt_redis_append(rt_redis *c, int argc, const char **argv,
                    const size_t *lens)
{
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);

    if (len < 0 || cmd == NULL) {
        return 0;
    }
    if (c->out_len + (size_t)len > c->out_cap) {
        size_t cap = (c->out_len + (size_t)len) * 2;
        char *n = realloc(c->out, cap);

        if (n == NULL) {
            redisFreeCommand(cmd);
            return 0;
        }
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, cmd, (size_t)len);
    c->out_len += (size_t)len;
    c->queued++;
    redisFreeCommand(cmd);
    return 1;
}

static int io_write(rt_redis *c, char err[RT_REDIS_ERRLEN])
{
    size_t done = 0;

    while (done < c->out_len) {
        ssize_t n;

        if (c->ssl != NULL) {
            n = SSL_write(c->ssl, c->out + done, (int)(c->out_len - done));
            if (n <= 0) {
                set_tls_err(err, "write");
                return 0;
            }
        } else {
            n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                set_err(err, "write", errno == EAGAIN ? ETIMEDOUT : errno);
                return 0;
            }
        }
        done += (size_t)n;
    }
    c->out_len = 0;
    return 1;
}

static int io_read(rt_redis *c, char err[RT_REDIS_ERRLEN])
{
    char buf[16384];
    ssize_t n;

    for (;;) {
        if (c->ssl != NULL) {
            n = SSL_read(c->ssl, buf, sizeof(buf));
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, (int)n);

                if (e == SSL_ERROR_ZERO_RETURN) {
                    set_err(err, "the server closed the connection", 0);
                } else {
                    set_tls_err(err, "read");
                }
                return 0;
            }
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n == 0) {
                set_err(err, "the server closed the connection", 0);
                return 0;
            }
            if (n < 0) {
                set_err(err, "read", errno == EAGAIN ? ETIMEDOUT : errno);
                return 0;
            }
        }
        break;
    }
    if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
        set_err(err, "reply does not parse", 0);
        return 0;
    }
    return 1;
}

void rt_redis_free_replies(redisReply **replies, int n)
{
    for (int i = 0; i < n; i++) {
        if (replies[i] != NULL) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    }
}

int rt_redis_exchange(rt_redis *c, redisReply **replies, int n,
                      char err[RT_REDIS_ERRLEN])
{
    int i;

    for (i = 0; i < n; i++) {
        replies[i] = NULL;
    }
    if (c->queued != n) {
        set_err(err, "commands and replies do not match", 0);
        c->queued = 0;
        c->out_len = 0;
        return 0;
    }
    c->queued = 0;
    if (!io_write(c, err)) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        void *rep = NULL;

        for (;;) {
            if (redisReaderGetReply(c->reader, &rep) != REDIS_OK) {
                set_err(err, "reply does not parse", 0);
                rt_redis_free_replies(replies, i);
                return 0;
            }
            if (rep != NULL) {
                break;
            }
            if (!io_read(c, err)) {
                rt_redis_free_replies(replies, i);
                return 0;
            }
        }
        replies[i] = rep;
    }
    return 1;
}

redisReply *rt_redis_command(rt_redis *c, char err[RT_REDIS_ERRLEN], int argc,
                             const char **argv, const size_t *lens)
{
    redisReply *rep = NULL;

    if (!rt_redis_append(c, argc, argv, lens)) {
        set_err(err, "command does not format", 0);
        return NULL;
    }
    return rt_redis_exchange(c, &rep, 1, err) ? rep : NULL;
}

int rt_redis_is_status(const redisReply *rep, const char *text)
{
    return rep != NULL && rep->type == REDIS_REPLY_STATUS &&
           strcmp(rep->str, text) == 0;
}

int rt_redis_is_error(const redisReply *rep, const char *prefix)
{
    size_t n = strlen(prefix);

    return rep != NULL && rep->type == REDIS_REPLY_ERROR && rep->len >= n &&
           strncmp(rep->str, prefix, n) == 0 &&
           (rep->len == n || rep->str[n] == ' ');
}

int rt_redis_parse_addrs(const char *list, int defport, rt_redis_addr *out,
                         int max, char err[RT_REDIS_ERRLEN])
{
    int n = 0;
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *host = p, *colon, *hend;
        size_t hlen;
        char *stop;
        long port = defport;

        if (len == 0) {
            set_err(err, "an empty address in the list", 0);
            return -1;
        }
        if (n == max) {
            snprintf(err, RT_REDIS_ERRLEN, "more than %d addresses", max);
            return -1;
        }
        if (*p == '[') {
            hend = memchr(p, ']', len);
            if (hend == NULL) {
                set_err(err, "an IPv6 address without its ']'", 0);
                return -1;
            }
            host = p + 1;
            hlen = (size_t)(hend - host);
            colon = hend + 1 < p + len ? hend + 1 : NULL;
            if (colon != NULL && *colon != ':') {
                set_err(err, "garbage after an IPv6 address", 0);
                return -1;
            }
        } else {
            colon = memchr(p, ':', len);
            hlen = colon ? (size_t)(colon - p) : len;
        }
        if (colon != NULL) {
            char num[8];
            size_t nlen = (size_t)(p + len - colon - 1);

            if (nlen == 0 || nlen >= sizeof(num)) {
                set_err(err, "a port that is not a number", 0);
                return -1;
            }
            memcpy(num, colon + 1, nlen);
            num[nlen] = '\0';
            port = strtol(num, &stop, 10);
            if (*stop != '\0' || port < 1 || port > 65535) {
                set_err(err, "a port that is not a number from 1 to 65535", 0);
                return -1;
            }
        }
        if (hlen == 0 || hlen >= sizeof(out[n].host)) {
            set_err(err, "an address without a host", 0);
            return -1;
        }
        memcpy(out[n].host, host, hlen);
        out[n].host[hlen] = '\0';
        out[n].port = (int)port;
        n++;
        p += len;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                set_err(err, "an empty address in the list", 0);
                return -1;
            }
        }
    }
    if (n == 0) {
        set_err(err, "no address", 0);
        return -1;
    }
    return n;
}
