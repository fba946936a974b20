/* SPDX-License-Identifier: MIT */
/* The de-duplication ring and its index; see dedup.h. */
#include "core/dedup.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/journal.h"
#include "core/queue.h"

#define ENTRY_HDR 17u /* next, hash, message id, len */

struct dedup {
    uint8_t *ring;     /* 'size' bytes of entries */
    uint32_t *index;   /* buckets: ring offset + 1 of the newest entry of the bucket; 0 none */
    uint32_t size;     /* ring bytes */
    uint32_t mask;     /* buckets - 1 */
    uint32_t head;     /* offset of the oldest entry */
    uint32_t tail;     /* offset for the next entry */
    uint32_t wrap_end; /* while wrapped: end of the entries before the ring's end */
    uint32_t count;    /* entries */
    uint8_t wrapped;   /* tail is before head: entries are [head, wrap_end) + [0, tail) */
    uint64_t seed;
};

static uint32_t
entry_size(uint32_t len)
{
    return (ENTRY_HDR + len + 7u) & ~7u;
}

/* FNV-1a over the seed and the bytes, finished by a 64-bit mix. */
static uint32_t
hash_id(uint64_t seed, const uint8_t *p, uint32_t len)
{
    uint64_t h = 1469598103934665603ULL ^ seed;

    for (uint32_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

struct entry_view {
    uint32_t next;
    uint32_t hash;
    uint64_t msg_id;
    uint8_t len;
    const uint8_t *id;
};

static void
entry_read(const struct dedup *d, uint32_t off, struct entry_view *e)
{
    const uint8_t *p = d->ring + off;

    memcpy(&e->next, p, 4);
    memcpy(&e->hash, p + 4, 4);
    memcpy(&e->msg_id, p + 8, 8);
    e->len = p[16];
    e->id = p + ENTRY_HDR;
}

int
dedup_find(const struct queue *q, const void *id, uint32_t len, uint64_t *msg_id)
{
    const struct dedup *d = q->dedup;
    uint32_t h;

    if (!d)
        return 0;
    h = hash_id(d->seed, id, len);
    for (uint32_t o = d->index[h & d->mask]; o; ) {
        struct entry_view e;
        entry_read(d, o - 1, &e);
        if (e.hash == h && e.len == len && memcmp(e.id, id, len) == 0) {
            *msg_id = e.msg_id;
            return 1;
        }
        o = e.next;
    }
    return 0;
}

/* Forget the oldest entry. */
static void
evict(struct dedup *d)
{
    struct entry_view e;
    uint32_t *link;

    entry_read(d, d->head, &e);
    link = &d->index[e.hash & d->mask];
    while (*link != d->head + 1) /* the oldest is the last of its chain */
        link = (uint32_t *)(void *)(d->ring + *link - 1); /* that entry's 'next' field */
    *link = 0;
    d->head += entry_size(e.len);
    d->count--;
    if (d->wrapped && d->head >= d->wrap_end) {
        d->head = 0;
        d->wrapped = 0;
    }
    if (d->count == 0)
        d->head = d->tail = d->wrapped = 0;
}

static struct dedup *
create(struct broker *b, uint32_t window)
{
    uint32_t buckets = 1;
    struct dedup *d;
    size_t bytes;

    while (buckets < window / 64)
        buckets <<= 1;
    bytes = sizeof(*d) + window + (size_t)buckets * sizeof(uint32_t);
    if (mem_reserve_bulk(&b->mem, bytes))
        return NULL;
    d = calloc(1, sizeof(*d));
    if (d) {
        d->ring = malloc(window);
        d->index = calloc(buckets, sizeof(uint32_t));
    }
    if (!d || !d->ring || !d->index) {
        if (d) {
            free(d->ring);
            free(d->index);
        }
        free(d);
        mem_release(&b->mem, bytes);
        return NULL;
    }
    d->size = window;
    d->mask = buckets - 1;
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    d->seed = b->rng;
    return d;
}

int
dedup_insert(struct broker *b, struct queue *q, const void *id, uint32_t len,
             uint64_t msg_id)
{
    struct dedup *d = q->dedup;
    uint32_t need = entry_size(len);
    uint32_t h;
    uint32_t *bucket;
    uint8_t *p;

    if (!d && !(d = q->dedup = create(b, q->dedup_window)))
        return -1;
    if (need > d->size)
        return -1;
    for (;;) { /* make room at tail, oldest first */
        if (!d->wrapped) {
            if (d->size - d->tail >= need)
                break;
            if (d->count == 0) {
                d->head = d->tail = 0;
                break;
            }
            d->wrap_end = d->tail;
            d->tail = 0;
            d->wrapped = 1;
        } else if (d->head - d->tail >= need) {
            break;
        }
        if (d->wrapped)
            evict(d);
    }
    h = hash_id(d->seed, id, len);
    bucket = &d->index[h & d->mask];
    p = d->ring + d->tail;
    memcpy(p, bucket, 4); /* newest first in its chain */
    memcpy(p + 4, &h, 4);
    memcpy(p + 8, &msg_id, 8);
    p[16] = (uint8_t)len;
    memcpy(p + ENTRY_HDR, id, len);
    *bucket = d->tail + 1;
    d->tail += need;
    d->count++;
    if (q->durable)
        journal_dedup(b, q, id, len, msg_id);
    return 0;
}

size_t
dedup_bytes(const struct queue *q)
{
    const struct dedup *d = q->dedup;

    return d ? sizeof(*d) + d->size + ((size_t)d->mask + 1) * sizeof(uint32_t) : 0;
}

void
dedup_free(struct broker *b, struct queue *q)
{
    struct dedup *d = q->dedup;

    if (!d)
        return;
    mem_release(&b->mem, dedup_bytes(q));
    free(d->ring);
    free(d->index);
    free(d);
    q->dedup = NULL;
}
