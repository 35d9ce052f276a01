/* The module's counters, in one block of memory that processes share (made
 * by src/httpd/rt_monitor.c): a header, then one fixed-size area per
 * virtual host. Every label a counter has is a word of a table known at
 * compile time (routes are the route table's indexes, fixed per build), so
 * the layout is fixed and a counter is a slot: updated with atomic adds, no
 * lock. A word no table knows counts as "other". The block is rendered as
 * the Prometheus text format, mod_status's ?auto lines or its HTML. */
#ifndef RT_COUNTERS_H
#define RT_COUNTERS_H

#include <apr_pools.h>

/* A virtual host's name in the block (server_hostname:port), truncated. */
#define RT_COUNTERS_NAME_MAX 128

/* Counters of events, per virtual host. The first four follow from the
 * outcome of a token answer (reused, revoked, logged_out, throttled). */
typedef enum {
    RT_CEV_REUSE,          /* a rotated refresh token shown again: revoked */
    RT_CEV_REVOCATION,     /* a revocation ended a session */
    RT_CEV_LOGOUT,         /* a logout or force logout */
    RT_CEV_THROTTLED,      /* an answer 429 throttled */
    RT_CEV_ROTATION,       /* a refresh token rotated (not a retry's answer) */
    RT_CEV_STORE_ERROR,    /* a store call that found the store down */
    RT_CEV_GUARD_ACCEPTED, /* AuthType RunaiToken: a token accepted */
    RT_CEV__COUNT
} rt_counters_event;

typedef struct rt_counters rt_counters;

/* Bytes of a block for nvhosts virtual hosts and nroutes routes. */
apr_size_t rt_counters_size(int nvhosts, int nroutes);

/* Formats mem (rt_counters_size bytes, 8-byte aligned) as a block of
 * zeroed counters with empty names. */
rt_counters *rt_counters_init(void *mem, int nvhosts, int nroutes);

/* Names virtual host v (0 .. nvhosts-1). */
void rt_counters_set_name(rt_counters *c, int v, const char *name);

/* Whether c has this layout and these names in this order: a block that
 * can be kept as it is for a new configuration. */
int rt_counters_same(const rt_counters *c, int nvhosts, int nroutes,
                     const char *const *names);

/* Copies into every virtual host of to the counts of the host of the same
 * name in from, when both have the same routes; returns how many hosts
 * were carried. */
int rt_counters_carry(rt_counters *to, const rt_counters *from);

/* A token answer: route index, the log line's grant and outcome words
 * (NULL: "-"); also counts the event the outcome implies. */
void rt_counters_answer(rt_counters *c, int v, int route, const char *grant,
                        const char *outcome);
void rt_counters_count(rt_counters *c, int v, rt_counters_event e);
/* A store call of usec microseconds; failed: the store was down. */
void rt_counters_store(rt_counters *c, int v, apr_int64_t usec, int failed);
/* The guard: refusal NULL when it accepted a token, else the reason as
 * the log line gives it ("bad signature"), or "no_token" and
 * "insufficient_scope". */
void rt_counters_guard(rt_counters *c, int v, const char *refusal);

/* What the store reports of its fill (the default store only). */
typedef struct {
    int have;
    apr_uint64_t records, records_max, slots_used, slots, evicted;
} rt_counters_fill;

typedef enum {
    RT_COUNTERS_PROMETHEUS, /* text exposition format 0.0.4 */
    RT_COUNTERS_AUTO,       /* mod_status ?auto: "name label=value: N" */
    RT_COUNTERS_HTML        /* mod_status's page: a table */
} rt_counters_format;

typedef void (*rt_counters_emit_fn)(void *baton, const char *text,
                                    apr_size_t len);

/* Renders every virtual host's counters (and the fill, when fill->have),
 * a line at a time; routes names the route indexes. */
void rt_counters_render(const rt_counters *c, const char *const *routes,
                        const rt_counters_fill *fill, rt_counters_format f,
                        rt_counters_emit_fn emit, void *baton);

/* The label a word gets (for tests): the word, or "other". */
const char *rt_counters_grant_label(const char *grant);
const char *rt_counters_outcome_label(const char *outcome);
const char *rt_counters_reason_label(const char *reason);

#endif
