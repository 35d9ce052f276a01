#include "rt_outage.h"

void rt_outage_refused(rt_outage *o)
{
    __atomic_add_fetch(&o->refused, 1, __ATOMIC_RELAXED);
}

int rt_outage_down(rt_outage *o, apr_time_t now)
{
    apr_uint32_t up = 0;

    if (__atomic_load_n(&o->down, __ATOMIC_ACQUIRE) != 0 ||
        !__atomic_compare_exchange_n(&o->down, &up, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return 0;
    }
    __atomic_store_n(&o->since, now, __ATOMIC_RELEASE);
    return 1;
}

int rt_outage_up(rt_outage *o, apr_time_t now, apr_interval_time_t *took,
                 apr_uint32_t *refused)
{
    apr_uint32_t down = 1;

    if (__atomic_load_n(&o->down, __ATOMIC_ACQUIRE) != 1 ||
        !__atomic_compare_exchange_n(&o->down, &down, 0, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return 0;
    }
    *took = now - __atomic_load_n(&o->since, __ATOMIC_ACQUIRE);
    *refused = __atomic_exchange_n(&o->refused, 0, __ATOMIC_ACQ_REL);
    return 1;
}

int rt_outage_is_down(const rt_outage *o)
{
    return __atomic_load_n(&o->down, __ATOMIC_ACQUIRE) != 0;
}

int rt_backoff_waiting(const rt_backoff *b, apr_time_t now)
{
    return now < __atomic_load_n(&b->retry_at, __ATOMIC_RELAXED);
}

void rt_backoff_failed(rt_backoff *b, apr_time_t now)
{
    apr_interval_time_t d = __atomic_load_n(&b->backoff, __ATOMIC_RELAXED);

    d = d ? 2 * d : RT_BACKOFF_MIN;
    d = d > RT_BACKOFF_MAX ? RT_BACKOFF_MAX : d;
    __atomic_store_n(&b->backoff, d, __ATOMIC_RELAXED);
    __atomic_store_n(&b->retry_at, now + d, __ATOMIC_RELAXED);
}

void rt_backoff_reset(rt_backoff *b)
{
    __atomic_store_n(&b->backoff, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->retry_at, 0, __ATOMIC_RELAXED);
}
