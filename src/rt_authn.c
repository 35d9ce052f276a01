#include "rt_authn.h"

#include "http_log.h"

APLOG_USE_MODULE(runai_token);

authn_status rt_authn_check(request_rec *r, const apr_array_header_t *providers,
                            const char *user, const char *password)
{
    authn_status st = AUTH_USER_NOT_FOUND;

    /* Providers and claim expressions see the principal as REMOTE_USER. */
    r->user = (char *)user;
    for (int i = 0; i < providers->nelts; i++) {
        const rt_provider *pr = &APR_ARRAY_IDX(providers, i, rt_provider);

        apr_table_setn(r->notes, AUTHN_PROVIDER_NAME_NOTE, pr->name);
        st = pr->provider->check_password(r, user, password);
        apr_table_unset(r->notes, AUTHN_PROVIDER_NAME_NOTE);
        if (st != AUTH_USER_NOT_FOUND) {
            break;
        }
    }
    switch (st) {
    case AUTH_GRANTED:
        return AUTH_GRANTED;
    case AUTH_DENIED:
    case AUTH_USER_NOT_FOUND:
        return AUTH_DENIED;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "authn provider failed (status %d) while checking "
                      "credentials",
                      (int)st);
        return AUTH_GENERAL_ERROR;
    }
}
