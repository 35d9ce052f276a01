/* PKCE (RFC 7636), S256 only. */
#ifndef RT_PKCE_H
#define RT_PKCE_H

/* RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]. */
int rt_pkce_syntax_ok(const char *s);

/* 1 when BASE64URL(SHA-256(verifier)) equals challenge. */
int rt_pkce_s256_ok(const char *verifier, const char *challenge);

#endif
