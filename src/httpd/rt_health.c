#include "rt_health.h"
#include "rt_config.h"
#include "rt_http.h"
#include "rt_json.h"
#include "rt_store.h"

#include "http_log.h"
#include "http_protocol.h"
#include <apr_strings.h>

APLOG_USE_MODULE(runai_token);

#define HEALTH_HANDLER "runai-token-health"

/* The store answers a write: one small record of its own, so that a
 * redis or memcached that is down (whose clients answer reads with "not
 * found") is seen as down. */
static int store_answers(request_rec *r)
{
    json_t *probe = json_object();
    rt_store_status st = rt_store_put(
        r, RT_REC_PING, "health", apr_time_sec(r->request_time) + 60, probe);

    json_decref(probe);
    return st == RT_STORE_OK;
}

int rt_health_handler(request_rec *r)
{
    const rt_server_conf *sc;
    const char *provider, *reason = NULL;
    int keys, store_ok = 1, rc = rt_http_get_only(r, HEALTH_HANDLER);
    json_t *body;

    if (rc != OK) {
        return rc;
    }
    sc = ap_get_module_config(r->server->module_config, &runai_token_module);
    keys = sc->keys ? sc->keys->nelts : 0;
    provider = rt_store_provider();
    if (provider != NULL) {
        store_ok = store_answers(r);
    }
    if (keys == 0) {
        reason = "no signing key is configured";
    } else if (!store_ok) {
        reason = "the session store did not answer";
    }
    body = rt_json_pool_own(
        r->pool, json_pack("{s:s,s:i,s:{s:s?,s:b}}", "status",
                           reason ? "unavailable" : "ok", "keys", keys, "store",
                           "provider", provider, "ok", store_ok));
    if (reason != NULL) {
        json_object_set_new(body, "reason", json_string(reason));
    }
    return rt_http_send_json(r, reason ? HTTP_SERVICE_UNAVAILABLE : HTTP_OK,
                             body);
}
