#include "rt_oidc.h"
#include "rt_json.h"
#include "rt_key.h"
#include "rt_util.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_uri.h>

const char *rt_oidc_issuer_path(apr_pool_t *p, const char *issuer)
{
    apr_uri_t u;
    apr_size_t n;
    const char *path;

    if (apr_uri_parse(p, issuer, &u) != APR_SUCCESS || u.path == NULL) {
        return "";
    }
    n = strlen(u.path);
    while (n > 0 && u.path[n - 1] == '/') {
        n--;
    }
    path = apr_pstrmemdup(p, u.path, n);
    return path;
}

/* scheme://host[:port] of the issuer: endpoints live on its origin. */
static const char *origin(apr_pool_t *p, const char *issuer)
{
    apr_uri_t u;

    if (apr_uri_parse(p, issuer, &u) != APR_SUCCESS) {
        return issuer;
    }
    u.path = NULL;
    u.query = NULL;
    u.fragment = NULL;
    return apr_uri_unparse(p, &u, APR_URI_UNP_OMITUSERINFO);
}

const char *rt_oidc_endpoint(apr_pool_t *p, const char *issuer,
                             const char *suffix)
{
    return apr_pstrcat(p, origin(p, issuer), rt_oidc_issuer_path(p, issuer),
                       suffix, NULL);
}

char *rt_oidc_jwks(apr_pool_t *p, const apr_array_header_t *keys)
{
    json_t *doc = rt_json_pool_own(p, json_pack("{s:[]}", "keys"));
    json_t *arr = json_object_get(doc, "keys");

    for (int i = 0; keys != NULL && i < keys->nelts; i++) {
        const rt_key *k = APR_ARRAY_IDX(keys, i, rt_key *);
        if (k->jwk != NULL) {
            json_array_append(arr, k->jwk);
        }
    }
    return rt_json_ascii(p, doc);
}

char *rt_oidc_discovery(apr_pool_t *p, const char *issuer,
                        const apr_array_header_t *keys,
                        const apr_array_header_t *claims)
{
    static const char *const std_claims[] = {"iss",
                                             "sub",
                                             "aud",
                                             "exp",
                                             "iat",
                                             "auth_time",
                                             "nonce",
                                             "jti",
                                             "azp",
                                             "sid",
                                             "preferred_username",
                                             NULL};
    const char *o = origin(p, issuer);
    const char *base = rt_oidc_endpoint(p, issuer, "");
    json_t *doc, *algs, *cl;

    doc = rt_json_pool_own(
        p, json_pack(
               "{s:s,s:s,s:s,s:s,s:[s,s,s,s,s],s:[s],s:[s],s:[s,s,s],s:[s],"
               "s:[s,s,s]}",
               "issuer", issuer, "authorization_endpoint",
               apr_pstrcat(p, o, "/api/v1/authorize", NULL), "token_endpoint",
               apr_pstrcat(p, base, "/protocol/openid-connect/token", NULL),
               "jwks_uri",
               apr_pstrcat(p, base, "/protocol/openid-connect/certs", NULL),
               "grant_types_supported", "authorization_code", "password",
               "refresh_token", "client_credentials",
               "urn:ietf:params:oauth:grant-type:device_code",
               "response_types_supported", "code",
               "code_challenge_methods_supported", "S256",
               "token_endpoint_auth_methods_supported", "client_secret_basic",
               "client_secret_post", "none", "subject_types_supported",
               "public", "scopes_supported", "openid", "profile", "email"));
    /* Ending sessions (RFC 7009, RP-Initiated Logout): the paths
     * clients configured for Keycloak look for. */
    json_object_set_new(doc, "revocation_endpoint",
                        json_string(apr_pstrcat(
                            p, base, "/protocol/openid-connect/revoke", NULL)));
    json_object_set(
        doc, "revocation_endpoint_auth_methods_supported",
        json_object_get(doc, "token_endpoint_auth_methods_supported"));
    json_object_set_new(
        doc, "userinfo_endpoint",
        json_string(
            apr_pstrcat(p, base, "/protocol/openid-connect/userinfo", NULL)));
    /* RFC 8628 §4, at Keycloak's path. */
    json_object_set_new(
        doc, "device_authorization_endpoint",
        json_string(apr_pstrcat(p, base, "/protocol/openid-connect/auth/device",
                                NULL)));
    json_object_set_new(doc, "end_session_endpoint",
                        json_string(apr_pstrcat(
                            p, base, "/protocol/openid-connect/logout", NULL)));
    algs = json_array();
    for (int i = 0; keys != NULL && i < keys->nelts; i++) {
        rt_json_array_add_unique(algs,
                                 APR_ARRAY_IDX(keys, i, rt_key *)->alg_name);
    }
    json_object_set_new(doc, "id_token_signing_alg_values_supported", algs);
    cl = json_array();
    for (const char *const *c = std_claims; *c; c++) {
        json_array_append_new(cl, json_string(*c));
    }
    for (int i = 0; claims != NULL && i < claims->nelts; i++) {
        json_array_append_new(
            cl, json_string(APR_ARRAY_IDX(claims, i, const char *)));
    }
    json_object_set_new(doc, "claims_supported", cl);
    return rt_json_ascii(p, doc);
}
