#include "rt_code.h"
#include "rt_util.h"

#define SECRET_BYTES 32 /* 256 random bits */

rt_store_status rt_code_mint(request_rec *r, const rt_login *login,
                             apr_int64_t exp, const char **code)
{
    json_t *data;
    rt_store_status st;

    *code = rt_random_id(r->pool, SECRET_BYTES);
    if (*code == NULL) {
        return RT_STORE_DOWN;
    }
    data = rt_login_to_json(login);
    st = rt_store_put(r, RT_REC_CODE, *code, exp, data);
    json_decref(data);
    return st;
}

rt_store_status rt_code_take(request_rec *r, const char *code, rt_login *login)
{
    json_t *data = NULL;
    rt_store_status st = rt_store_take(r, RT_REC_CODE, code, &data);

    if (st == RT_STORE_OK && !rt_login_from_json(r->pool, data, login)) {
        return RT_STORE_NOTFOUND;
    }
    return st;
}
