/* SPDX-License-Identifier: MIT */
/* Broker state: set-up, the queue registry and the timer sweep; see broker.h.
 * Registry lookups are O(1) expected (open addressing on the name's hash, grown by
 * doubling; see "Registry" below). */
#include "core/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dedup.h"
#include "core/journal.h"
#include "frame.h"
#include "core/queue.h"
#include "mem/segment.h"

#define REGISTRY_MIN 64

void
broker_config_defaults(struct broker_config *c)
{
    c->max_memory = (size_t)1 << 30;
    c->max_message_size = 1u << 20;
    c->visibility_ms = 30000;
    c->reservoir_capacity = 0; /* auto: 120% of peak concurrent use */
    c->page_size = (size_t)1 << 20;
    c->growth = 1.25;
    c->max_fetch_bytes = (size_t)1 << 20;
    c->max_inflight = 10000;
}

/* mem.reclaim: idle pooled buffers first, then resident empty pages. */
static size_t
reclaim_idle(void *ctx, size_t want)
{
    struct broker *b = ctx;
    size_t freed = reservoir_trim(&b->res, want);

    if (freed < want)
        freed += slab_trim_pool(&b->rec);
    if (freed < want)
        freed += slab_trim_pool(&b->slab);
    return freed;
}

int
broker_init(struct broker *b, const struct broker_config *c, char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    b->cfg = *c;
    b->next_id = 1;
    b->next_sid = 1;
    b->rng = 0x9e3779b97f4a7c15ULL;
    mem_init(&b->mem, c->max_memory);
    b->mem.reclaim = reclaim_idle;
    b->mem.reclaim_ctx = b;
    if (slab_init(&b->slab, &b->mem, c->max_memory, c->page_size, c->growth)
        || slab_init(&b->rec, &b->mem, c->max_memory, BROKER_REC_PAGE, c->growth)) {
        snprintf(err, errlen, "cannot reserve %zu bytes of address space: %s", c->max_memory,
                 strerror(errno));
        slab_deinit(&b->slab); /* either may be set up; deinit skips one that is not */
        slab_deinit(&b->rec);
        return -1;
    }
    /* The drain reserve: memory that message storage and queue bookkeeping may not use, so
     * that consumers can always take, hold and ack (docs/memory.md, "The limit"). It holds a
     * fresh record page for every record class at once, plus index growth, or 1/64 of the
     * limit when that is more. */
    b->mem.headroom = (size_t)b->rec.nclasses * BROKER_REC_PAGE + BROKER_INDEX_ROOM;
    if (c->max_memory / 64 > b->mem.headroom)
        b->mem.headroom = c->max_memory / 64;
    reservoir_init(&b->res, &b->mem, (size_t)c->max_message_size + SMQ_FRAME_SLACK,
                   c->reservoir_capacity);
    theap_init(&b->timers, &b->mem);
    b->scratch = calloc(BROKER_MAX_FETCH, sizeof(*b->scratch));
    b->qb = calloc(REGISTRY_MIN, sizeof(*b->qb));
    if (!b->scratch || !b->qb || dtable_init(&b->dels, &b->mem)) {
        snprintf(err, errlen, "out of memory at start-up (--max-memory too small?)");
        broker_deinit(b);
        return -1;
    }
    b->qmask = REGISTRY_MIN - 1;
    dlist_init(&b->wake);
    dlist_init(&b->mem_wait);
    broker_tick(b);
    return 0;
}

void
broker_deinit(struct broker *b)
{
    for (size_t i = 0; b->qb && i <= b->qmask; i++) {
        struct queue *q = b->qb[i].q;
        if (!q)
            continue;
        b->qb[i].q = NULL;
        queue_clear(b, q);
        queue_set_dlq(b, q, NULL, 0);
        dedup_free(b, q);
        slab_free(&b->slab, q, sizeof(*q));
    }
    if (b->qb && b->qmask + 1 > REGISTRY_MIN) /* grown: it is in the budget */
        mem_release(&b->mem, (b->qmask + 1) * sizeof(*b->qb));
    free(b->qb);
    free(b->scratch);
    b->qb = NULL;
    b->scratch = NULL;
    dtable_deinit(&b->dels);
    theap_deinit(&b->timers);
    reservoir_deinit(&b->res);
    slab_deinit(&b->rec);
    slab_deinit(&b->slab);
}

size_t
broker_mem_busy(const struct broker *b)
{
    size_t idle = b->res.idle_bytes + (size_t)b->slab.pool_resident * b->slab.page_size
                  + (size_t)b->rec.pool_resident * b->rec.page_size;

    return b->mem.used > idle ? b->mem.used - idle : 0;
}

int
broker_over_limit(const struct broker *b)
{
    return broker_mem_busy(b) >= b->mem.limit;
}

void
broker_tick(struct broker *b)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------- */
/* Registry                                                                                  */

/* Open addressing with linear probing over 16-byte slots (hash, queue), at most 3/4 full:
 * a lookup reads one slot line (two at a line's end) and then only the queue whose hash
 * matches, instead of a chain of queues. With 100,000 queues that was three cache misses
 * in a row per publish (bucket, queue's hash, name: 72% of the broker's time when one
 * producer spread its publishes over them); it is now two, and conn.c overlaps those of a
 * read's frames with broker_prefetch_*. Memory: 16 bytes a slot, 21 to 43 per queue, in
 * b->mem beyond the first REGISTRY_MIN slots. Deleting shifts the run after the hole back
 * (no tombstones), so lookups stay short under churn. */

/* Eight bytes a step, each step a multiply and a shift (the mixer of splitmix64): a publish
 * hashes its queue's name when the broker looks ahead (conn.c), and a byte-at-a-time hash
 * (FNV-1a) cost 30 instructions for a 12-byte name. The last 8 bytes (the first and last 4
 * of a shorter name) are one load that may overlap the step before, not a loop over the
 * 1-7 bytes left: 64 instructions a call for a 11-byte name became ~30 (callgrind), which
 * with 100,000 queues is paid on every publish. The length is mixed in first, so names of
 * different lengths do not share the overlap's words. */
uint32_t
broker_queue_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
    uint64_t w;

    if (len >= 8) {
        const char *last = s + len - 8;
        for (; s < last; s += 8) {
            memcpy(&w, s, 8);
            h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
            h ^= h >> 31;
        }
        memcpy(&w, last, 8);
    } else if (len >= 4) {
        uint32_t lo;
        uint32_t hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + len - 4, 4);
        w = (uint64_t)hi << 32 | lo;
    } else {
        w = len ? (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[len / 2] << 8
                      | (uint64_t)(unsigned char)s[len - 1] << 16
                : 0;
    }
    h = (h ^ w) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return (uint32_t)(h >> 32);
}

/* a[0..len) == b[0..len), a word at a time, the last word overlapping: memcmp through the
 * PLT cost ~30 instructions for a 11-byte name, and a lookup compares one on every publish
 * that names another queue than the one before. */
static inline int
name_eq(const char *a, const char *b, size_t len)
{
    uint64_t x;
    uint64_t y;

    if (len < 8)
        return memcmp(a, b, len) == 0;
    for (size_t i = 0; i + 8 < len; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            return 0;
    }
    memcpy(&x, a + len - 8, 8);
    memcpy(&y, b + len - 8, 8);
    return x == y;
}

struct queue *
broker_queue_find_hashed(struct broker *b, const char *name, size_t len, uint32_t h)
{
    for (size_t i = h & b->qmask;; i = (i + 1) & b->qmask) {
        const struct broker_slot *e = &b->qb[i];
        if (!e->q)
            return NULL;
        if (e->hash == h && e->q->name_len == len && name_eq(e->q->name, name, len))
            return e->q;
    }
}

struct queue *
broker_queue_find(struct broker *b, const char *name, size_t len)
{
    return broker_queue_find_hashed(b, name, len, broker_queue_hash(name, len));
}

void
broker_prefetch_slot(const struct broker *b, uint32_t hash)
{
    __builtin_prefetch(&b->qb[hash & b->qmask]);
}

void
broker_prefetch_queue(const struct broker *b, uint32_t hash)
{
    for (size_t i = hash & b->qmask;; i = (i + 1) & b->qmask) {
        const struct broker_slot *e = &b->qb[i];
        if (!e->q)
            return;
        if (e->hash == hash) { /* nearly always the queue: a collision only wastes a hint */
            queue_prefetch(e->q);
            return;
        }
    }
}

/* Put q in the first free slot of its run (there is one: the table is never full). */
static void
slot_put(struct broker_slot *tab, size_t mask, struct queue *q)
{
    size_t i = q->hash & mask;

    while (tab[i].q)
        i = (i + 1) & mask;
    tab[i].hash = q->hash;
    tab[i].q = q;
}

/* Double the slots. -1 if the memory is not there (nothing changed). */
static int
registry_grow(struct broker *b)
{
    size_t n = (b->qmask + 1) * 2;
    struct broker_slot *nb;

    if (mem_reserve(&b->mem, n * sizeof(*nb)))
        return -1;
    nb = calloc(n, sizeof(*nb));
    if (!nb) {
        mem_release(&b->mem, n * sizeof(*nb));
        return -1;
    }
    for (size_t i = 0; i <= b->qmask; i++)
        if (b->qb[i].q)
            slot_put(nb, n - 1, b->qb[i].q);
    if (b->qmask + 1 > REGISTRY_MIN)
        mem_release(&b->mem, (b->qmask + 1) * sizeof(*nb));
    free(b->qb);
    b->qb = nb;
    b->qmask = n - 1;
    return 0;
}

struct queue *
broker_queue_get(struct broker *b, const char *name, size_t len, int *created)
{
    struct queue *q = broker_queue_find(b, name, len);

    *created = 0;
    if (q)
        return q;
    /* past 3/4 full the table doubles; if it cannot, it fills further, but keeps a free
     * slot, which ends every probe */
    if ((b->nqueues + 1) * 4 > (b->qmask + 1) * 3 && registry_grow(b)
        && b->nqueues + 2 > b->qmask + 1)
        return NULL;
    q = slab_alloc(&b->slab, sizeof(*q));
    if (!q)
        return NULL;
    memset(q, 0, sizeof(*q));
    memcpy(q->name, name, len);
    q->name_len = (uint32_t)len;
    q->hash = broker_queue_hash(name, len);
    q->visibility_ms = b->cfg.visibility_ms;
    q->backoff_max_ms = 60000;
    q->max_deliveries = QUEUE_MAX_DELIVERIES_DEFAULT;
    q->dedup_window = QUEUE_DEDUP_DEFAULT;
    q->next_seg = SEG_MIN_SIZE;
    q->sid = b->next_sid++;
    if (b->journal) { /* with --durability sqlite, queues are durable unless declared not */
        q->durable = 1;
        q->confirm = b->journal->confirm;
    }
    dlist_init(&q->wake);
    dlist_init(&q->retry);
    dlist_init(&q->deliveries);
    dlist_init(&q->waiters);
    dlist_init(&q->subs);
    slot_put(b->qb, b->qmask, q);
    b->nqueues++;
    *created = 1;
    journal_queue_put(b, q);
    return q;
}

/* Take q's slot out: the entries after it in its run that may sit earlier (their home slot
 * is not between the hole and them) move back into the hole, one by one. */
static void
slot_remove(struct broker *b, const struct queue *q)
{
    size_t mask = b->qmask;
    size_t i = q->hash & mask;

    while (b->qb[i].q != q)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; b->qb[j].q; j = (j + 1) & mask) {
        size_t home = b->qb[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            b->qb[i] = b->qb[j];
            i = j;
        }
    }
    b->qb[i].q = NULL;
    b->qb[i].hash = 0;
}

uint64_t
broker_queue_delete(struct broker *b, struct queue *q)
{
    uint64_t n;

    if (b->hooks.queue_gone)
        b->hooks.queue_gone(b->hooks.ctx, q);
    dlist_unlink(&q->wake);
    b->qgen++;
    slot_remove(b, q);
    b->nqueues--;
    journal_queue_del(b, q);
    n = queue_clear(b, q);
    queue_set_dlq(b, q, NULL, 0); /* frees a dead-letter queue name */
    dedup_free(b, q);
    slab_free(&b->slab, q, sizeof(*q));
    return n;
}

static int
cmp_queue(const void *a, const void *b)
{
    const struct queue *x = *(struct queue *const *)a;
    const struct queue *y = *(struct queue *const *)b;

    return strcmp(x->name, y->name);
}

void
broker_queue_list(struct broker *b, struct queue **out)
{
    struct queue *q;
    size_t pos = 0;
    size_t n = 0;

    while ((q = broker_queue_next(b, &pos)))
        out[n++] = q;
    qsort(out, n, sizeof(*out), cmp_queue);
}

/* ---------------------------------------------------------------------------------------- */
/* Timers                                                                                    */

void
broker_defer_wake(struct broker *b)
{
    b->defer_wake++;
}

void
broker_flush_wake(struct broker *b)
{
    if (--b->defer_wake == 0)
        broker_serve_wake(b);
}

void
broker_serve_wake(struct broker *b)
{
    /* A queue that could not deliver for want of a delivery record is served again once one
     * fits: an ack or a drain elsewhere freed one. O(1) while nothing waits for memory. */
    if (!dlist_empty(&b->mem_wait)
        && (slab_has_room(&b->rec, sizeof(struct delivery))
            || broker_mem_busy(b) + b->rec.page_size <= b->mem.limit)) {
        while (!dlist_empty(&b->mem_wait)) {
            struct dlink *l = b->mem_wait.next;
            dlist_unlink(l);
            dlist_push_back(&b->wake, l);
        }
    }
    while (!dlist_empty(&b->wake) && !broker_over_limit(b)) {
        struct queue *q = DLIST_ENTRY(b->wake.next, struct queue, wake);
        dlist_unlink(&q->wake);
        if ((!dlist_empty(&q->waiters) || !dlist_empty(&q->subs)) && b->hooks.queue_ready)
            b->hooks.queue_ready(b->hooks.ctx, q);
    }
}

uint64_t
broker_run_timers(struct broker *b)
{
    struct delivery *d;

    broker_defer_wake(b);
    while ((d = theap_min(&b->timers)) && d->due_ms <= b->now_ms) {
        if (d->state == DLV_INFLIGHT)
            queue_expire(b, d); /* back to ready, after the queue's backoff */
        else
            queue_due(b, d); /* a delay ended, or a TTL: ready, or dead-lettered */
    }
    broker_flush_wake(b);
    return d ? d->due_ms : 0;
}
