#include "rt_claim_eval.h"
#include "rt_claim.h"
#include "rt_json.h"
#include "rt_util.h"

#include "http_log.h"

APLOG_USE_MODULE(runai_token);

json_t *rt_claim_eval(request_rec *r, const apr_array_header_t *claims)
{
    json_t *out = rt_json_pool_own(r->pool, json_object());

    for (int i = 0; claims != NULL && i < claims->nelts; i++) {
        const rt_claim *c = &APR_ARRAY_IDX(claims, i, rt_claim);
        const char *err = NULL;
        const char *text = ap_expr_str_exec(r, c->expr, &err);
        int bad = 0;
        json_t *v;

        if (err != NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "claim '%s' omitted: expression failed: %s", c->name,
                          err);
            continue;
        }
        v = rt_claim_value(text, c->type, &bad);
        if (bad) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "claim '%s' omitted: its value is not a %s", c->name,
                          c->type == RT_CLAIM_NUMBER ? "number" : "bool");
        }
        if (v != NULL) {
            json_object_set_new(out, c->name, v);
        }
    }
    return out;
}

void rt_claim_eval_login(request_rec *r, const ap_expr_info_t *subject,
                         const apr_array_header_t *claims, const char *user,
                         rt_login *l)
{
    const char *sub = user;

    if (subject != NULL) {
        const char *err = NULL;
        const char *v = ap_expr_str_exec(r, subject, &err);

        if (err != NULL || v == NULL || *v == '\0') {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "RunaiTokenSubject gave %s: the user name is the "
                          "subject",
                          err ? "an error" : "nothing");
        } else {
            sub = v;
        }
    }
    memset(l, 0, sizeof(*l));
    l->sub = sub;
    l->auth_time = apr_time_sec(r->request_time);
    l->started = (apr_int64_t)r->request_time;
    l->profile = rt_json_pool_own(r->pool, json_object());
    json_object_set_new(l->profile, "preferred_username", json_string(user));
    json_object_update(l->profile, rt_claim_eval(r, claims));
}
