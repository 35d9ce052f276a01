/* A table of records in one block of memory that processes share (the
 * default session store, src/httpd/rt_socache.c), pure: no locking, the
 * caller serialises every call (the store's global mutex).
 *
 * Why not shmcb: shmcb keeps each subcache as a ring, so a record written
 * again and again leaves its old copies behind and pushes the oldest live
 * records of its subcache out. Here a key has one entry, and writing it
 * again reuses the entry's slots: how often one record is rewritten never
 * displaces another. Values are kept in chains of fixed-size slots. When
 * the table is full, expired records go first, then, among a sample of
 * entries, the one nearest its expiry. */
#ifndef RT_SHMTABLE_H
#define RT_SHMTABLE_H

#include <apr_pools.h>

#define RT_SHMTABLE_KEY_MAX 64

typedef struct rt_shmtable rt_shmtable;

/* The smallest block worth formatting. */
apr_size_t rt_shmtable_min_size(void);

/* Formats mem[0..size) as an empty table; NULL when size is too small or
 * mem misaligned (8 bytes). */
rt_shmtable *rt_shmtable_init(void *mem, apr_size_t size);

typedef enum {
    RT_SHMT_OK,
    RT_SHMT_NOTFOUND,
    RT_SHMT_TOO_LARGE /* a key over RT_SHMTABLE_KEY_MAX, a value over what
                       * the table holds, or (get) over *len */
} rt_shmtable_status;

/* Stores val under key until expiry (any unit; now in the same unit),
 * replacing a record of that key in place. */
rt_shmtable_status rt_shmtable_put(rt_shmtable *t, const unsigned char *key,
                                   apr_size_t klen, apr_int64_t expiry,
                                   const unsigned char *val, apr_size_t vlen,
                                   apr_int64_t now);

/* Copies the value into dst (room for *len bytes) and sets *len; a record
 * expired at now is removed and not found. */
rt_shmtable_status rt_shmtable_get(rt_shmtable *t, const unsigned char *key,
                                   apr_size_t klen, apr_int64_t now,
                                   unsigned char *dst, apr_size_t *len);

rt_shmtable_status rt_shmtable_remove(rt_shmtable *t, const unsigned char *key,
                                      apr_size_t klen);

/* Calls fn for every record not expired at now, its value assembled in p;
 * stops early when fn returns non-zero, and returns that. */
typedef int (*rt_shmtable_fn)(void *baton, const unsigned char *key,
                              apr_size_t klen, apr_int64_t expiry,
                              const unsigned char *val, apr_size_t vlen);
int rt_shmtable_each(rt_shmtable *t, apr_int64_t now, apr_pool_t *p,
                     rt_shmtable_fn fn, void *baton);

typedef struct {
    unsigned records, entries, free_slots, slots, evicted;
} rt_shmtable_stats;

void rt_shmtable_stat(const rt_shmtable *t, rt_shmtable_stats *st);

#endif
