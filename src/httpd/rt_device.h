/* The device authorization grant (RFC 8628): the device authorization
 * endpoint, the page where a user approves a device, and the store side of
 * the polls (the grant itself is in rt_grant.c). Three records: the device
 * code's (client, expiry, interval, last poll), the user code's (the
 * device code's hash, spent by the one decision), and the decision's
 * (the login, or a denial), which the one poll that gets tokens takes,
 * after it wrote a fourth: the mark of a spent code. */
#ifndef RT_DEVICE_H
#define RT_DEVICE_H

#include "rt_grant.h"
#include "rt_login.h"
#include "rt_store.h"

/* POST {issuer path}/protocol/openid-connect/auth/device: answers the
 * JSON itself and returns NULL, or returns the error to send. */
rt_error *rt_device_authorize(rt_ctx *c, json_t **reply);

/* GET and POST {issuer path}/device: the user's page (HTML); every answer,
 * errors too, is a page. */
rt_error *rt_device_page(rt_ctx *c, json_t **reply);

typedef enum {
    RT_DEVICE_PENDING,  /* no decision yet */
    RT_DEVICE_APPROVED, /* approved: rt_device_redeem may take it */
    RT_DEVICE_DENIED,
    RT_DEVICE_EXPIRED,
    RT_DEVICE_INVALID, /* unknown, or redeemed */
    RT_DEVICE_DOWN     /* the store did not answer */
} rt_device_state;

typedef struct {
    rt_device_state state;
    const char *client; /* the client the code was issued to */
    apr_int64_t exp;    /* the device code's expiry */
    int slow;           /* polled faster than the interval (now raised) */
} rt_device_poll_t;

/* One poll of device_code: records its time (raising the interval when
 * it came too early) and reads the user's decision. */
void rt_device_poll(request_rec *r, const char *device_code,
                    rt_device_poll_t *p);

/* Marks device_code spent (until GRACE after exp), then takes its approval
 * into l: of concurrent polls, on one host or several sharing the store,
 * one gets RT_STORE_OK. */
rt_store_status rt_device_redeem(request_rec *r, const char *device_code,
                                 apr_int64_t exp, rt_login *l);

#endif
