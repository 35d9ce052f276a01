/* One error type for every failure: a kind, a message safe to show, and
 * optional details. Secrets never go into either. The kind alone decides
 * the HTTP status, the Run:ai Error body's code, the OAuth 2.0 error code
 * and its status, and the word the log line gives as the outcome: one
 * table in rt_error.c holds them all. */
#ifndef RT_ERROR_H
#define RT_ERROR_H

#include <apr_pools.h>

typedef enum {
    RT_ERR_BAD_REQUEST,         /* malformed request, missing field */
    RT_ERR_TOO_LARGE,           /* body over RunaiTokenMaxBody */
    RT_ERR_MEDIA_TYPE,          /* a media type the route does not take */
    RT_ERR_NOT_FOUND,           /* no route at this path */
    RT_ERR_METHOD,              /* a route, but not for this method */
    RT_ERR_UNSUPPORTED_GRANT,   /* a grant type the module does not know */
    RT_ERR_GRANT_DISABLED,      /* a grant this location has no provider for */
    RT_ERR_UNKNOWN_CLIENT,      /* a client id that is not registered */
    RT_ERR_BAD_CLIENT,          /* client authentication failed */
    RT_ERR_BAD_APP_SECRET,      /* app_token: wrong application secret */
    RT_ERR_BAD_PASSWORD,        /* password: wrong user or password */
    RT_ERR_BAD_CODE,            /* unknown, expired or spent code */
    RT_ERR_BAD_REFRESH,         /* unknown, expired or revoked refresh token */
    RT_ERR_REUSED_REFRESH,      /* a rotated refresh token: session revoked */
    RT_ERR_BAD_VERIFIER,        /* PKCE code verifier does not match */
    RT_ERR_REDIRECT_MISMATCH,   /* redirect URI not the one registered/used */
    RT_ERR_CLIENT_MISMATCH,     /* code redeemed by another client */
    RT_ERR_THROTTLED,           /* too many failed attempts: a user's */
    RT_ERR_THROTTLED_CLIENT,    /* ... an application's or a client's */
    RT_ERR_REFRESH_RATE,        /* a session over RunaiTokenRefreshRate */
    RT_ERR_LOGOUT_REDIRECT,     /* a logout redirect no client registered */
    RT_ERR_UNSUPPORTED_TOKEN,   /* revocation of a token of no session */
    RT_ERR_FORBIDDEN,           /* force logout without an Apache user */
    RT_ERR_USER_REFUSED,        /* refresh of a user RunaiTokenRefreshRequire
                                   no longer admits */
    RT_ERR_DIRECTORY_DOWN,      /* ... whose provider could not decide */
    RT_ERR_UNAUTHORIZED_CLIENT, /* a client not allowed this grant */
    RT_ERR_BAD_USER_CODE, /* the device page: a wrong or spent user code */
    RT_ERR_AUTH_PENDING,  /* device grant: the user has not decided yet */
    RT_ERR_SLOW_DOWN,     /* ... polled faster than the interval */
    RT_ERR_EXPIRED_TOKEN, /* ... the device code expired */
    RT_ERR_ACCESS_DENIED, /* ... the user denied it */
    RT_ERR_STORE_DOWN,    /* the session store did not answer */
    RT_ERR_INTERNAL,      /* anything else: logged, answered without */
    RT_ERR__COUNT
} rt_error_kind;

typedef struct rt_error {
    rt_error_kind kind;
    const char *message; /* short, fixed text */
    const char *details; /* optional, NULL when none */
} rt_error;

rt_error *rt_error_make(apr_pool_t *p, rt_error_kind kind, const char *message,
                        const char *details);

/* The HTTP status of the Run:ai dialect, also the Error body's "code". */
int rt_error_status(const rt_error *e);

/* The outcome word of the request's log line, e.g. "invalid_credentials". */
const char *rt_error_log_word(const rt_error *e);

/* The RFC 6749 §5.2 error code of the OAuth 2.0 dialect, and its status. */
const char *rt_error_oauth(const rt_error *e, int *status);

/* The Error body of the contract: {"code":..,"message":..,"details"?:..} */
char *rt_error_body(apr_pool_t *p, const rt_error *e);

#endif
