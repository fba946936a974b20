/* SPDX-License-Identifier: MIT */
/* Queue operations; the state machine is described in delivery.h, costs in queue.h. */
#include "queue.h"

#include <string.h>

#include "broker.h"
#include "delivery.h"
#include "segment.h"

/* ---------------------------------------------------------------------------------------- */
/* Segments                                                                                  */

/* Unlink and free g from whichever list holds it; keeps the read cursor valid. */
static void
drop_segment(struct broker *b, struct queue *q, struct segment *g)
{
    struct segment **head = g->moved ? &q->mhead : &q->head;
    struct segment **tail = g->moved ? &q->mtail : &q->tail;

    if (g->prev)
        g->prev->next = g->next;
    else
        *head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        *tail = g->prev;
    if (q->rseg == g) { /* only possible once the cursor has passed every record of g */
        q->rseg = g->next ? g->next : g->prev;
        q->roff = g->next ? 0 : (g->prev ? g->prev->used : 0);
    }
    seg_free(&b->slab, g);
}

static void compact(struct broker *b, struct queue *q, struct segment *g);

/* Whether every record of a main-list segment has been taken (the cursor is past it). */
static int
behind_cursor(const struct queue *q, const struct segment *g)
{
    if (!q->rseg)
        return 1;
    if (q->rseg == g)
        return q->roff >= g->used;
    return (int32_t)(g->seq - q->rseg->seq) < 0;
}

/* A record in g died. Free g if nothing in it can be read or delivered again (the tail is
 * kept while the cursor has not passed its end, so publishing can go on appending to it);
 * compact it if a few long-unacked messages are all that pin it. */
static void
segment_died(struct broker *b, struct queue *q, struct segment *g, uint32_t live)
{
    if (live > 0) {
        /* at most a quarter live, and taken by consumers: move those, free the rest */
        if (!q->clearing && g->nrec >= 16 && live * 4 <= g->nrec && g != q->tail
            && g != q->mtail
            && (g->moved || behind_cursor(q, g)))
            compact(b, q, g);
        return;
    }
    if (g == q->tail && q->rseg == g && q->roff < g->used)
        return;
    drop_segment(b, q, g);
}

/* A moved-record segment with room for the record at (from, off). NULL at the limit. */
static struct segment *
moved_tail(struct broker *b, struct queue *q, struct segment *from, uint32_t off)
{
    struct segment *g = q->mtail;

    if (g && seg_fits_moved(g, from, off))
        return g;
    g = seg_new(&b->slab, 8u * 1024);
    if (!g || !seg_fits_moved(g, from, off)) {
        seg_free(&b->slab, g);
        return NULL;
    }
    g->moved = 1;
    g->prev = q->mtail;
    if (q->mtail)
        q->mtail->next = g;
    else
        q->mhead = g;
    q->mtail = g;
    return g;
}

/* Move g's live records (each held by a delivery) to the moved-record segments and free g.
 * Stops, losing nothing, if memory for the copies runs out. Amortised O(1) per message: a
 * segment is compacted once, when at most a quarter of its records are left. */
static void
compact(struct broker *b, struct queue *q, struct segment *g)
{
    uint32_t moved = 0;

    for (uint32_t off = 0; off < g->used && g->live > 0;) {
        struct seg_rec r;
        struct delivery *d;
        struct segment *to;
        seg_read(g, off, &r);
        if (!(r.flags & SEG_DEAD)) {
            d = dtable_find(&b->dels, r.id);
            if (!d || d->seg != g || d->off != off || !(to = moved_tail(b, q, g, off)))
                break; /* not held by a delivery (cannot happen) or no memory: leave it */
            d->off = seg_move(to, g, off, r.id);
            d->seg = to;
            moved++;
        }
        off += r.size;
    }
    q->c.moved += moved;
    q->c.compactions++;
    if (g->live == 0)
        drop_segment(b, q, g);
}

/* Make room for a record of len bytes at the tail: a new segment, eight times the last one's
 * size up to SEG_MAX_SIZE (1, 8, 64 KiB: few classes, so few partly used pages, yet an idle
 * queue with a handful of messages holds only 1 KiB). Returns the tail or NULL at the
 * memory limit. */
static struct segment *
tail_for(struct broker *b, struct queue *q, uint64_t id, uint32_t len)
{
    struct segment *g = q->tail;
    uint32_t need = (uint32_t)sizeof(struct segment) + seg_rec_size(len);
    uint32_t size;

    if (g && seg_fits(g, id, len))
        return g;
    size = q->next_seg > need ? q->next_seg : need;
    g = seg_new(&b->slab, size);
    if (!g)
        return NULL;
    if (q->next_seg < SEG_MAX_SIZE)
        q->next_seg = q->next_seg * 8 < SEG_MAX_SIZE ? q->next_seg * 8 : SEG_MAX_SIZE;
    g->seq = q->next_seq++;
    g->prev = q->tail;
    if (q->tail)
        q->tail->next = g;
    else
        q->head = g;
    q->tail = g;
    if (!q->rseg || (q->rseg == g->prev && q->roff >= q->rseg->used)) {
        q->rseg = g;
        q->roff = 0;
    }
    return g;
}

/* ---------------------------------------------------------------------------------------- */
/* Publishing                                                                                */

int
queue_publish(struct broker *b, struct queue *q, const void *data, uint32_t len, uint64_t *id)
{
    uint64_t mid = b->next_id;
    struct segment *g = tail_for(b, q, mid, len);

    if (!g || seg_append(&b->slab, g, mid, data, len) < 0)
        return -1;
    b->next_id++;
    q->nfresh++;
    q->bytes += len;
    q->c.published++;
    b->messages++;
    *id = mid;
    return 0;
}

void
queue_mark(const struct queue *q, struct queue_mark *m)
{
    m->tail = q->tail;
    m->used = q->tail ? q->tail->used : 0;
    m->nrec = q->tail ? q->tail->nrec : 0;
    m->nfresh = q->nfresh;
    m->bytes = q->bytes;
}

void
queue_rollback(struct broker *b, struct queue *q, const struct queue_mark *m)
{
    uint64_t n = q->nfresh - m->nfresh;

    while (q->tail && q->tail != m->tail) { /* segments created by the batch */
        struct segment *g = q->tail;
        for (uint32_t off = 0; off < g->used;) {
            struct seg_rec r;
            seg_read(g, off, &r);
            seg_kill(&b->slab, g, off);
            off += r.size;
        }
        drop_segment(b, q, g);
    }
    if (q->tail) {
        struct segment *g = q->tail;
        for (uint32_t off = m->used; off < g->used;) {
            struct seg_rec r;
            seg_read(g, off, &r);
            seg_kill(&b->slab, g, off);
            off += r.size;
        }
        g->used = m->used;
        g->nrec = m->nrec;
    }
    q->nfresh = m->nfresh;
    q->bytes = m->bytes;
    q->c.published -= n;
    b->messages -= n;
}

/* ---------------------------------------------------------------------------------------- */
/* Delivering                                                                                */

/* Advance the cursor past g's end to the next segment, if any. */
static void
cursor_normalise(struct queue *q)
{
    while (q->rseg && q->roff >= q->rseg->used && q->rseg->next) {
        struct segment *done = q->rseg;
        q->rseg = done->next;
        q->roff = 0;
        (void)done;
    }
}

static void
make_inflight(struct broker *b, struct delivery *d, struct holder *h)
{
    d->state = DLV_INFLIGHT;
    d->owner = h;
    d->deliveries++;
    d->due_ms = b->now_ms + d->q->visibility_ms;
    dlist_push_back(&h->list, &d->slink);
    h->n++;
    d->q->ninflight++;
    d->q->pinned_bytes += d->len;
    d->q->c.delivered++;
}

/* A new delivery for the fresh message at the cursor. NULL at the memory limit. */
static struct delivery *
take_fresh(struct broker *b, struct queue *q)
{
    struct delivery *d;
    struct seg_rec r;

    cursor_normalise(q);
    d = slab_alloc_reserved(&b->slab, sizeof(*d));
    if (!d)
        return NULL;
    seg_read(q->rseg, q->roff, &r);
    memset(d, 0, sizeof(*d));
    d->id = r.id;
    d->len = r.len;
    d->q = q;
    d->seg = q->rseg;
    d->off = q->roff;
    d->heap_idx = DLV_NO_HEAP;
    dlist_init(&d->slink);
    dlist_push_back(&q->deliveries, &d->qlink);
    dtable_insert(&b->dels, d);
    q->roff += r.size;
    q->nfresh--;
    return d;
}

uint32_t
queue_take(struct broker *b, struct queue *q, struct holder *h, uint32_t max, size_t max_bytes,
           struct delivery **out)
{
    uint32_t n = 0;
    size_t bytes = 0;

    while (!q->paused && n < max && queue_ready(q) > 0 && (n == 0 || bytes < max_bytes)) {
        struct delivery *d;
        if (theap_reserve(&b->timers, 1) < 0)
            break; /* cannot track its deadline: leave it ready */
        if (q->nretry) {
            d = DLIST_ENTRY(q->retry.next, struct delivery, slink);
            dlist_unlink(&d->slink);
            q->nretry--;
            q->c.redelivered++;
        } else if (!(d = take_fresh(b, q))) {
            break;
        }
        make_inflight(b, d, h);
        theap_push(&b->timers, d);
        bytes += d->len;
        out[n++] = d;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Settling                                                                                  */

/* Forget d and its message entirely. */
static void
destroy(struct broker *b, struct delivery *d)
{
    struct queue *q = d->q;

    q->bytes -= d->len;
    b->messages--;
    theap_remove(&b->timers, d);
    dtable_remove(&b->dels, d);
    dlist_unlink(&d->slink);
    dlist_unlink(&d->qlink);
    segment_died(b, q, d->seg, seg_kill(&b->slab, d->seg, d->off));
    slab_free(&b->slab, d, sizeof(*d));
}

/* Leave whatever list/count d's current state implies. */
static void
leave_state(struct delivery *d)
{
    struct queue *q = d->q;

    switch (d->state) {
    case DLV_INFLIGHT:
        q->ninflight--;
        q->pinned_bytes -= d->len;
        d->owner->n--;
        break;
    case DLV_RETRY:
        q->nretry--;
        break;
    case DLV_DELAYED:
        q->ndelayed--;
        q->pinned_bytes -= d->len;
        break;
    }
    dlist_unlink(&d->slink);
    d->owner = NULL;
}

void
queue_ack(struct broker *b, struct delivery *d)
{
    d->q->c.acked++;
    leave_state(d);
    destroy(b, d);
}

void
queue_touch(struct broker *b, struct delivery *d)
{
    d->due_ms = b->now_ms + d->q->visibility_ms;
    theap_update(&b->timers, d);
}

void
queue_requeue(struct broker *b, struct delivery *d)
{
    struct queue *q = d->q;

    leave_state(d);
    theap_remove(&b->timers, d);
    d->state = DLV_RETRY;
    dlist_push_back(&q->retry, &d->slink);
    q->nretry++;
    if (dlist_empty(&q->waiters))
        return;
    if (b->defer_wake) {
        if (dlist_empty(&q->wake))
            dlist_push_back(&b->wake, &q->wake);
    } else if (b->hooks.queue_ready) {
        b->hooks.queue_ready(b->hooks.ctx, q);
    }
}

/* The queue's retry backoff for d's next attempt: base * 2^(deliveries - 1), capped, with
 * jitter of up to -20% so consumers that failed together do not retry together. 0 when the
 * queue has no backoff. */
static uint32_t
backoff_ms(struct broker *b, const struct delivery *d)
{
    const struct queue *q = d->q;
    uint64_t ms;
    unsigned shift = d->deliveries > 1 ? d->deliveries - 1 : 0;

    if (q->backoff_ms == 0)
        return 0;
    ms = shift >= 32 ? q->backoff_max_ms : (uint64_t)q->backoff_ms << shift;
    if (ms > q->backoff_max_ms)
        ms = q->backoff_max_ms;
    b->rng ^= b->rng << 13; /* xorshift64: cheap, and good enough for jitter */
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (uint32_t)(ms - ms * (b->rng % 201) / 1000); /* minus 0-20% */
}

/* Make d ready again after delay_ms (> 0), through the timer heap. */
static void
delay(struct broker *b, struct delivery *d, uint32_t delay_ms)
{
    leave_state(d);
    d->state = DLV_DELAYED;
    d->due_ms = b->now_ms + delay_ms;
    d->q->ndelayed++;
    d->q->pinned_bytes += d->len;
    /* Already in the heap (in-flight deadline): move it. */
    if (d->heap_idx != DLV_NO_HEAP)
        theap_update(&b->timers, d);
    else if (theap_push(&b->timers, d) < 0)
        queue_requeue(b, d); /* cannot time it: ready now rather than lost */
}

void
queue_nack(struct broker *b, struct delivery *d, uint32_t delay_ms)
{
    d->q->c.nacked++;
    if (delay_ms == 0)
        delay_ms = backoff_ms(b, d);
    if (delay_ms == 0)
        queue_requeue(b, d);
    else
        delay(b, d, delay_ms);
}

void
queue_expire(struct broker *b, struct delivery *d)
{
    uint32_t ms = backoff_ms(b, d);

    d->q->c.timeouts++;
    if (ms == 0)
        queue_requeue(b, d);
    else
        delay(b, d, ms);
}

/* ---------------------------------------------------------------------------------------- */
/* Bulk                                                                                      */

/* Kill the fresh record at the cursor (there must be one). */
static void
drop_fresh_one(struct broker *b, struct queue *q)
{
    struct segment *g;
    struct seg_rec r;

    cursor_normalise(q);
    g = q->rseg;
    seg_read(g, q->roff, &r);
    q->bytes -= r.len;
    q->roff += r.size;
    q->nfresh--;
    b->messages--;
    segment_died(b, q, g, seg_kill(&b->slab, g, q->roff - r.size));
}

/* Kill every fresh record from the cursor on. Returns how many. */
static uint64_t
drop_fresh(struct broker *b, struct queue *q)
{
    uint64_t n = q->nfresh;

    while (q->nfresh > 0)
        drop_fresh_one(b, q);
    return n;
}

/* Drop the message at the head of the delivery order (retry FIFO, then fresh). Returns 0,
 * or -1 if no ready message is left. */
static int
drop_head(struct broker *b, struct queue *q)
{
    if (q->nretry) {
        struct delivery *d = DLIST_ENTRY(q->retry.next, struct delivery, slink);
        leave_state(d);
        destroy(b, d);
    } else if (q->nfresh) {
        drop_fresh_one(b, q);
    } else {
        return -1;
    }
    q->c.dropped++;
    return 0;
}

int
queue_admit(struct queue *q, uint64_t n, uint64_t bytes, uint32_t largest)
{
    uint64_t max_n = q->max_messages ? q->max_messages : UINT64_MAX;
    uint64_t max_b = q->max_bytes ? q->max_bytes : UINT64_MAX;
    uint64_t pinned = q->ninflight + q->ndelayed; /* never dropped */
    int ok;

    if (q->overflow == QUEUE_DROP_OLDEST) /* room for at least the newest message */
        ok = pinned < max_n && q->pinned_bytes + largest <= max_b;
    else
        ok = queue_held(q) + n <= max_n && q->bytes + bytes <= max_b;
    if (!ok)
        q->c.rejected++;
    return ok ? 0 : -1;
}

void
queue_trim(struct broker *b, struct queue *q)
{
    uint64_t max_n = q->max_messages ? q->max_messages : UINT64_MAX;
    uint64_t max_b = q->max_bytes ? q->max_bytes : UINT64_MAX;

    if (q->overflow != QUEUE_DROP_OLDEST)
        return;
    while ((queue_held(q) > max_n || q->bytes > max_b) && drop_head(b, q) == 0)
        ;
}

uint64_t
queue_purge(struct broker *b, struct queue *q)
{
    uint64_t n = drop_fresh(b, q);
    struct dlink *l = q->deliveries.next;

    while (l != &q->deliveries) {
        struct delivery *d = DLIST_ENTRY(l, struct delivery, qlink);
        l = l->next;
        if (d->state == DLV_RETRY || d->state == DLV_DELAYED) {
            leave_state(d);
            destroy(b, d);
            n++;
        }
    }
    q->c.purged += n;
    return n;
}

uint64_t
queue_clear(struct broker *b, struct queue *q)
{
    uint64_t n;

    q->clearing = 1;
    n = drop_fresh(b, q);

    while (!dlist_empty(&q->deliveries)) {
        struct delivery *d = DLIST_ENTRY(q->deliveries.next, struct delivery, qlink);
        leave_state(d);
        destroy(b, d);
        n++;
    }
    while (q->head)
        drop_segment(b, q, q->head);
    while (q->mhead)
        drop_segment(b, q, q->mhead);
    return n;
}

uint32_t
queue_peek(const struct queue *q, uint32_t max, size_t max_bytes, struct msgref *out)
{
    uint32_t n = 0;
    size_t bytes = 0;
    const struct segment *g = q->rseg;
    uint32_t off = q->roff;
    struct seg_rec r;

    for (const struct dlink *l = q->retry.next; l != &q->retry && n < max; l = l->next) {
        const struct delivery *d = DLIST_ENTRY(l, struct delivery, slink);
        if (n > 0 && bytes >= max_bytes)
            return n;
        seg_read(d->seg, d->off, &r);
        bytes += r.len;
        out[n++] = (struct msgref){d->id, d->deliveries, d->seg, d->off};
    }
    while (g && n < max && (n == 0 || bytes < max_bytes)) {
        if (off >= g->used) {
            g = g->next;
            off = 0;
            continue;
        }
        seg_read(g, off, &r);
        bytes += r.len;
        out[n++] = (struct msgref){r.id, 0, (struct segment *)g, off};
        off += r.size;
    }
    return n;
}
