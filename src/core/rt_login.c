#include "rt_login.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_time.h>

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v != NULL) {
        json_object_set_new(o, k, json_string(v));
    }
}

const char *rt_login_str(apr_pool_t *p, const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? apr_pstrdup(p, v) : NULL;
}

json_t *rt_login_to_json(const rt_login *l)
{
    json_t *o = json_object();

    set_str(o, "sub", l->sub);
    set_str(o, "azp", l->azp);
    json_object_set(o, "claims", l->profile);
    json_object_set_new(o, "auth_time", json_integer(l->auth_time));
    json_object_set_new(o, "st", json_integer(l->started));
    set_str(o, "nonce", l->nonce);
    set_str(o, "ext", l->external);
    set_str(o, "ruri", l->redirect_uri);
    set_str(o, "chal", l->challenge);
    if (l->session_exp) {
        json_object_set_new(o, "sexp", json_integer(l->session_exp));
    }
    return o;
}

int rt_login_from_json(apr_pool_t *p, json_t *o, rt_login *l)
{
    memset(l, 0, sizeof(*l));
    l->sub = rt_login_str(p, o, "sub");
    l->azp = rt_login_str(p, o, "azp");
    l->profile = json_object_get(o, "claims");
    l->auth_time = json_integer_value(json_object_get(o, "auth_time"));
    /* Records made before logins kept it: the second of auth_time. */
    l->started = json_object_get(o, "st")
                     ? json_integer_value(json_object_get(o, "st"))
                     : l->auth_time * APR_USEC_PER_SEC;
    l->nonce = rt_login_str(p, o, "nonce");
    l->external = rt_login_str(p, o, "ext");
    l->redirect_uri = rt_login_str(p, o, "ruri");
    l->challenge = rt_login_str(p, o, "chal");
    l->session_exp = json_integer_value(json_object_get(o, "sexp"));
    return l->sub != NULL && json_is_object(l->profile);
}
