#include "rt_shmtable.h"

#include <stdint.h>
#include <string.h>

#define MAGIC 0x72747331u /* "rts1" */
#define NIL UINT32_MAX
#define SLOT_BYTES 128
/* The block is divided for records of about three slots (a session with a
 * few claims); smaller records leave slots over, larger ones entries. */
#define SLOTS_PER_ENTRY 3
#define SAMPLE 64 /* entries looked at to choose one to evict */

typedef struct {
    uint32_t next;  /* next entry in its bucket, or in the free list */
    uint32_t first; /* first slot of the value */
    int64_t expiry;
    uint32_t vlen;
    uint16_t klen;
    uint16_t used;
    unsigned char key[RT_SHMTABLE_KEY_MAX];
} entry;

typedef struct {
    uint32_t more; /* next slot of the value, or in the free list */
    unsigned char data[SLOT_BYTES - sizeof(uint32_t)];
} slot;

struct rt_shmtable {
    uint32_t magic;
    uint32_t nbuckets, nentries, nslots;
    uint32_t free_entry, free_slot;
    uint32_t free_slots, records;
    uint32_t cursor, evicted;
    uint64_t pad; /* keeps what follows 8-byte aligned */
};

#define DATA_PER_SLOT (sizeof(((slot *)0)->data))

static uint32_t *buckets(rt_shmtable *t)
{
    return (uint32_t *)(t + 1);
}

static entry *entries(rt_shmtable *t)
{
    return (entry *)(buckets(t) + t->nbuckets + (t->nbuckets & 1));
}

static slot *slots(rt_shmtable *t)
{
    return (slot *)(entries(t) + t->nentries);
}

apr_size_t rt_shmtable_min_size(void)
{
    return sizeof(rt_shmtable) +
           16 * (sizeof(uint32_t) + sizeof(entry) +
                 SLOTS_PER_ENTRY * sizeof(slot)) +
           8;
}

rt_shmtable *rt_shmtable_init(void *mem, apr_size_t size)
{
    rt_shmtable *t = mem;
    apr_size_t per =
        sizeof(uint32_t) + sizeof(entry) + SLOTS_PER_ENTRY * sizeof(slot);
    apr_size_t n;

    if (size < rt_shmtable_min_size() || ((uintptr_t)mem & 7) != 0) {
        return NULL;
    }
    n = (size - sizeof(*t) - 8) / per;
    if (n > NIL / (2 * SLOTS_PER_ENTRY)) {
        n = NIL / (2 * SLOTS_PER_ENTRY);
    }
    memset(t, 0, sizeof(*t));
    t->nbuckets = (uint32_t)n;
    t->nentries = (uint32_t)n;
    /* whatever the division leaves over goes to slots */
    t->nslots =
        (uint32_t)(((char *)mem + size - (char *)slots(t)) / sizeof(slot));
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        buckets(t)[i] = NIL;
    }
    for (uint32_t i = 0; i < t->nentries; i++) {
        entries(t)[i].used = 0;
        entries(t)[i].next = i + 1 < t->nentries ? i + 1 : NIL;
    }
    for (uint32_t i = 0; i < t->nslots; i++) {
        slots(t)[i].more = i + 1 < t->nslots ? i + 1 : NIL;
    }
    t->free_entry = 0;
    t->free_slot = 0;
    t->free_slots = t->nslots;
    t->magic = MAGIC;
    return t;
}

static uint32_t hash(const unsigned char *key, apr_size_t klen)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (apr_size_t i = 0; i < klen; i++) {
        h = (h ^ key[i]) * 16777619u;
    }
    return h;
}

static uint32_t slots_for(apr_size_t vlen)
{
    return vlen == 0 ? 1
                     : (uint32_t)((vlen + DATA_PER_SLOT - 1) / DATA_PER_SLOT);
}

/* The entry of key and the link that points to it (for unlinking). */
static uint32_t find(rt_shmtable *t, const unsigned char *key, apr_size_t klen,
                     uint32_t **link)
{
    uint32_t *l = &buckets(t)[hash(key, klen) % t->nbuckets];
    uint32_t steps = 0;

    while (*l != NIL && *l < t->nentries && steps++ < t->nentries) {
        entry *e = &entries(t)[*l];

        if (e->used && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            *link = l;
            return *l;
        }
        l = &e->next;
    }
    return NIL;
}

static void free_chain(rt_shmtable *t, uint32_t s)
{
    uint32_t steps = 0;

    while (s != NIL && s < t->nslots && steps++ < t->nslots) {
        uint32_t more = slots(t)[s].more;

        slots(t)[s].more = t->free_slot;
        t->free_slot = s;
        t->free_slots++;
        s = more;
    }
}

/* Unlinks the entry at *link and frees it with its slots. */
static void drop(rt_shmtable *t, uint32_t *link)
{
    uint32_t i = *link;
    entry *e = &entries(t)[i];

    *link = e->next;
    free_chain(t, e->first);
    e->used = 0;
    e->next = t->free_entry;
    t->free_entry = i;
    t->records--;
}

/* Drops entry i wherever it is linked. */
static void drop_entry(rt_shmtable *t, uint32_t i)
{
    uint32_t *link;
    entry *e = &entries(t)[i];

    if (find(t, e->key, e->klen, &link) == i) {
        drop(t, link);
    }
}

/* Makes room for one entry and n slots: the expired among a sample go,
 * then the one nearest its expiry, until there is room. 0 when the table
 * cannot hold n slots at all. */
static int make_room(rt_shmtable *t, uint32_t n, apr_int64_t now)
{
    if (n > t->nslots) {
        return 0;
    }
    /* Each round looks at SAMPLE entries and drops one; a table that has
     * no room after as many rounds as it has entries has damaged lists:
     * give up rather than spin. */
    for (uint32_t round = 0; t->free_entry == NIL || t->free_slots < n;
         round++) {
        uint32_t victim = NIL;
        int64_t soonest = INT64_MAX;

        if (round > t->nentries + 2 || t->records == 0) {
            return 0;
        }
        for (int k = 0; k < SAMPLE; k++) {
            uint32_t i = t->cursor++ % t->nentries;
            entry *e = &entries(t)[i];

            if (!e->used) {
                continue;
            }
            if (e->expiry <= now) {
                drop_entry(t, i);
                continue;
            }
            if (e->expiry < soonest) {
                soonest = e->expiry;
                victim = i;
            }
        }
        if (victim != NIL && (t->free_entry == NIL || t->free_slots < n)) {
            drop_entry(t, victim);
            t->evicted++;
        }
    }
    return 1;
}

/* Writes val into the chain starting at s (long enough). */
static void write_chain(rt_shmtable *t, uint32_t s, const unsigned char *val,
                        apr_size_t vlen)
{
    apr_size_t off = 0;

    while (off < vlen && s != NIL) {
        apr_size_t n = vlen - off < DATA_PER_SLOT ? vlen - off : DATA_PER_SLOT;

        memcpy(slots(t)[s].data, val + off, n);
        off += n;
        s = slots(t)[s].more;
    }
}

static uint32_t take_slots(rt_shmtable *t, uint32_t n)
{
    uint32_t first = t->free_slot, s = first;

    for (uint32_t k = 1; k < n; k++) {
        s = slots(t)[s].more;
    }
    t->free_slot = slots(t)[s].more;
    slots(t)[s].more = NIL;
    t->free_slots -= n;
    return first;
}

rt_shmtable_status rt_shmtable_put(rt_shmtable *t, const unsigned char *key,
                                   apr_size_t klen, apr_int64_t expiry,
                                   const unsigned char *val, apr_size_t vlen,
                                   apr_int64_t now)
{
    uint32_t *link, i, n = slots_for(vlen), have = 0, s;
    entry *e;

    if (klen > RT_SHMTABLE_KEY_MAX || vlen > UINT32_MAX) {
        return RT_SHMT_TOO_LARGE;
    }
    i = find(t, key, klen, &link);
    if (i != NIL) {
        /* In place when the value takes as many slots as before. */
        e = &entries(t)[i];
        for (s = e->first; s != NIL && have <= n && have < t->nslots;
             s = slots(t)[s].more) {
            have++;
        }
        if (have == n) {
            write_chain(t, e->first, val, vlen);
            e->vlen = (uint32_t)vlen;
            e->expiry = expiry;
            return RT_SHMT_OK;
        }
        drop(t, link);
    }
    if (!make_room(t, n, now)) {
        return RT_SHMT_TOO_LARGE;
    }
    i = t->free_entry;
    e = &entries(t)[i];
    t->free_entry = e->next;
    e->first = take_slots(t, n);
    write_chain(t, e->first, val, vlen);
    e->vlen = (uint32_t)vlen;
    e->expiry = expiry;
    e->klen = (uint16_t)klen;
    memcpy(e->key, key, klen);
    e->used = 1;
    link = &buckets(t)[hash(key, klen) % t->nbuckets];
    e->next = *link;
    *link = i;
    t->records++;
    return RT_SHMT_OK;
}

rt_shmtable_status rt_shmtable_get(rt_shmtable *t, const unsigned char *key,
                                   apr_size_t klen, apr_int64_t now,
                                   unsigned char *dst, apr_size_t *len)
{
    uint32_t *link, i, s;
    entry *e;
    apr_size_t off = 0;

    if (klen > RT_SHMTABLE_KEY_MAX) {
        return RT_SHMT_NOTFOUND;
    }
    i = find(t, key, klen, &link);
    if (i == NIL) {
        return RT_SHMT_NOTFOUND;
    }
    e = &entries(t)[i];
    if (e->expiry <= now) {
        drop(t, link);
        return RT_SHMT_NOTFOUND;
    }
    if (e->vlen > *len) {
        return RT_SHMT_TOO_LARGE;
    }
    for (s = e->first; off < e->vlen && s != NIL && s < t->nslots;
         s = slots(t)[s].more) {
        apr_size_t n =
            e->vlen - off < DATA_PER_SLOT ? e->vlen - off : DATA_PER_SLOT;

        memcpy(dst + off, slots(t)[s].data, n);
        off += n;
    }
    *len = off;
    return off == e->vlen ? RT_SHMT_OK : RT_SHMT_NOTFOUND;
}

rt_shmtable_status rt_shmtable_remove(rt_shmtable *t, const unsigned char *key,
                                      apr_size_t klen)
{
    uint32_t *link;

    if (klen > RT_SHMTABLE_KEY_MAX || find(t, key, klen, &link) == NIL) {
        return RT_SHMT_NOTFOUND;
    }
    drop(t, link);
    return RT_SHMT_OK;
}

int rt_shmtable_each(rt_shmtable *t, apr_int64_t now, apr_pool_t *p,
                     rt_shmtable_fn fn, void *baton)
{
    for (uint32_t i = 0; i < t->nentries; i++) {
        entry *e = &entries(t)[i];
        unsigned char *buf;
        apr_size_t len;
        int rc;

        if (!e->used || e->expiry <= now) {
            continue;
        }
        len = e->vlen;
        buf = apr_palloc(p, len ? len : 1);
        if (rt_shmtable_get(t, e->key, e->klen, now, buf, &len) != RT_SHMT_OK) {
            continue;
        }
        rc = fn(baton, e->key, e->klen, e->expiry, buf, len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void rt_shmtable_stat(const rt_shmtable *t, rt_shmtable_stats *st)
{
    st->records = t->records;
    st->entries = t->nentries;
    st->free_slots = t->free_slots;
    st->slots = t->nslots;
    st->evicted = t->evicted;
}
