/* The bridge to Apache's authn providers, driven as mod_auth_basic and
 * mod_auth_form drive them. */
#ifndef RT_AUTHN_H
#define RT_AUTHN_H

#include "rt_config.h"

/* Checks user/password against providers (rt_provider) in order: the
 * provider name note is set around each call, the next provider is asked
 * only when the user was not found. Returns AUTH_GRANTED, AUTH_DENIED (also
 * for an unknown user) or AUTH_GENERAL_ERROR. Sets r->user to user. */
authn_status rt_authn_check(request_rec *r, const apr_array_header_t *providers,
                            const char *user, const char *password);

/* rt_authn_check for application secrets, through the verified-credential
 * cache of this process (RunaiTokenAppCache). */
authn_status rt_authn_check_app(request_rec *r, const rt_dir_conf *dc,
                                const char *id, const char *secret);

/* Whether (id, secret) is an application secret the providers verified
 * within RunaiTokenAppCache: rt_authn_check_app will then grant it without
 * asking them. A look only. */
int rt_authn_app_verified(request_rec *r, const rt_dir_conf *dc, const char *id,
                          const char *secret);

/* Whether the application providers of dc know id (then they hold a
 * secret for it): asked with a random password, so a known id costs one
 * password comparison; a provider error counts as known. The answer is
 * remembered for RunaiTokenAppCache seconds, as a verified secret is. */
int rt_authn_app_known(request_rec *r, const rt_dir_conf *dc, const char *id);

/* Whether user still passes every RunaiTokenRefreshRequire line of dc,
 * asked of the authz providers as a Require line would ask them for a
 * user Apache just authenticated: AUTHZ_GRANTED (also with no line), or
 * the first other answer, with *failed the provider's name. */
authz_status rt_authn_still_allowed(request_rec *r, const rt_dir_conf *dc,
                                    const char *user, const char **failed);

/* Creates this process's verified-credential cache. */
void rt_authn_child_init(apr_pool_t *p, server_rec *s);

#endif
