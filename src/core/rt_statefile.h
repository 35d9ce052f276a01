/* The state file of a host-local store, pure: the records (key and value
 * bytes, as the store holds them: hashed keys, values without a usable
 * secret) of one snapshot, behind a magic line and a SHA-256 of the whole,
 * so that a truncated or damaged file is recognised and never loaded. */
#ifndef RT_STATEFILE_H
#define RT_STATEFILE_H

#include <apr_pools.h>

#define RT_STATEFILE_MAGIC "RUNAI-TOKEN-STATE 1\n"
#define RT_STATEFILE_KEY_MAX 255

typedef struct rt_statefile rt_statefile;

/* A snapshot being written, growing in p. */
rt_statefile *rt_statefile_begin(apr_pool_t *p);

/* 0 when the record cannot be held (empty or too long a key, too long a
 * value). */
int rt_statefile_add(rt_statefile *f, const unsigned char *key, apr_size_t klen,
                     const unsigned char *val, apr_size_t vlen);

/* The file's bytes, checksum appended; *sum points at that checksum
 * (RT_SHA256_LEN bytes, inside the returned buffer). NULL on failure. */
const unsigned char *rt_statefile_finish(rt_statefile *f, apr_size_t *len,
                                         const unsigned char **sum);

/* Records of the snapshot so far. */
unsigned int rt_statefile_count(const rt_statefile *f);

typedef void (*rt_statefile_record_fn)(void *baton, const unsigned char *key,
                                       apr_size_t klen,
                                       const unsigned char *val,
                                       apr_size_t vlen);

/* Checks the whole of buf (magic, lengths, checksum) before it calls fn for
 * each record; NULL when it did, else why the file is not a state file
 * (fn then was never called). */
const char *rt_statefile_parse(const unsigned char *buf, apr_size_t len,
                               rt_statefile_record_fn fn, void *baton);

/* The "exp" (epoch seconds) of a store record's value; 0 when it has
 * none. */
int rt_statefile_record_exp(const unsigned char *val, apr_size_t len,
                            apr_int64_t *exp);

#endif
