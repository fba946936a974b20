/* SPDX-License-Identifier: MIT */
/* Queue operations; the state machine is described in delivery.h, costs in queue.h. */
#include "core/queue.h"

#include <string.h>

#include "core/broker.h"
#include "core/delivery.h"
#include "core/journal.h"
#include "core/queue_int.h"
#include "mem/segment.h"

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
    if (q->sparse == g)
        q->sparse = NULL;
    seg_free(&b->slab, g);
}

static void compact(struct broker *b, struct queue *q, struct segment *g);

/* A moved-record segment with room for a record of len payload bytes; NULL at the limit. */
struct segment *
queue_moved_tail(struct broker *b, struct queue *q, uint32_t len)
{
    struct segment *g = q->mtail;

    uint32_t need = (uint32_t)sizeof(struct segment) + seg_rec_size(len) + 8;

    if (g && seg_fits_moved_len(g, len))
        return g;
    g = seg_new(&b->slab, need > 8u * 1024 ? need : 8u * 1024);
    if (!g || !seg_fits_moved_len(g, len)) {
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

/* At most a quarter of g live, and taken by consumers: worth moving those and freeing the
 * rest. */
static int
sparse(const struct queue *q, const struct segment *g)
{
    return !q->clearing && !q->no_compact && g->live > 0 && g->nrec >= 16
           && g->live * 4 <= g->nrec
           && g != q->tail && g != q->mtail && (g->moved || behind_cursor(q, g));
}

/* A record in g died. Free g if nothing in it can be read or delivered again (the tail is
 * kept while the cursor has not passed its end, so publishing can go on appending to it);
 * compact it if a few long-unacked messages are all that pin it.
 *
 * Not at once: a segment that turns sparse is remembered (q->sparse) and compacted when a
 * record dies in another segment while it is still sparse. Consumers draining in order ack
 * the rest of the segment next, and it is freed without moving anything (compacting at once
 * moved a fifth of the messages of a fill-and-drain just before their acks arrived); the
 * few long-unacked records compaction is for see the acks move on to later segments. */
void
queue_segment_died(struct broker *b, struct queue *q, struct segment *g, uint32_t live)
{
    struct segment *pend = q->sparse;

    if (pend && pend != g) {
        q->sparse = NULL;
        if (sparse(q, pend)) {
            compact(b, q, pend); /* may move records into g, the moved-record tail */
            live = g->live;
        }
    }
    if (live > 0) {
        if (!q->sparse && sparse(q, g))
            q->sparse = g;
        return;
    }
    if (g == q->tail && q->rseg == g && q->roff < g->used)
        return;
    drop_segment(b, q, g);
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
            if (!d || d->seg != g || d->off != off || !(to = queue_moved_tail(b, q, r.len)))
                break; /* not held by a delivery (cannot happen) or no memory: leave it */
            d->off = (uint16_t)seg_move(to, g, off, r.id);
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
/* Ready lists and wake-ups                                                                  */

static struct dlink *
ready_list(struct queue *q, unsigned prio)
{
    return prio ? &q->plists[prio - 1] : &q->retry;
}

/* The ready list to take from next (priorities, then priority 0's retry FIFO), or NULL if
 * the next message is a fresh one at the cursor (or none is ready). */
static struct dlink *
next_list(struct queue *q)
{
    if (q->nprio)
        for (unsigned p = SMQ_PRIO_MAX; p > 0; p--)
            if (!dlist_empty(&q->plists[p - 1]))
                return &q->plists[p - 1];
    return dlist_empty(&q->retry) ? NULL : &q->retry;
}

/* Consumers are never served from inside a queue operation (they would take from queues,
 * and use the broker's scratch array, in the middle of it): the queue joins the broker's
 * wake list, which the server serves once the current request or timer sweep is done. */
void
queue_wake(struct broker *b, struct queue *q)
{
    if (q->clearing || (dlist_empty(&q->waiters) && dlist_empty(&q->subs)))
        return;
    queue_park(b, q);
}

void
queue_park(struct broker *b, struct queue *q)
{
    if (dlist_empty(&q->wake))
        dlist_push_back(&b->wake, &q->wake);
}

/* Put d (out of every state) in its ready list; its TTL, if any, goes to the timer heap. */
void
queue_make_ready(struct broker *b, struct delivery *d)
{
    struct queue *q = d->q;

    d->state = DLV_RETRY;
    dlist_push_back(ready_list(q, d->prio), &d->slink);
    q->nretry++;
    if (d->prio)
        q->nprio++;
    if (d->ext && d->ext->expires_ms) {
        d->due_ms = d->ext->expires_ms;
        if (d->heap_idx != DLV_NO_HEAP)
            theap_update(&b->timers, d);
        else
            theap_push(&b->timers, d); /* if it cannot: expired when it comes to be taken */
    } else {
        theap_remove(&b->timers, d);
    }
    queue_wake(b, q);
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
    latency_published(&q->lat, mid, b->now_ms);
    if (q->durable)
        journal_msg_put(b, q, mid, data, len, NULL);
    return 0;
}

/* The priority FIFOs, created on first use. -1 at the memory limit. */
static int
need_plists(struct broker *b, struct queue *q)
{
    if (q->plists)
        return 0;
    q->plists = slab_alloc(&b->slab, SMQ_PRIO_MAX * sizeof(*q->plists));
    if (!q->plists)
        return -1;
    for (unsigned p = 0; p < SMQ_PRIO_MAX; p++)
        dlist_init(&q->plists[p]);
    return 0;
}

int
queue_publish_opts(struct broker *b, struct queue *q, const void *data, uint32_t len,
                   const struct pub_opts *o, uint64_t *id)
{
    uint64_t ttl = o && o->ttl_ms ? o->ttl_ms : q->ttl_ms;
    uint64_t mid = b->next_id;
    struct delivery *d = NULL;
    struct msg_ext *e = NULL;
    struct segment *g;
    long off;

    if (o && o->no_queue_ttl)
        ttl = o->ttl_ms;
    if (ttl == 0 && (!o || (o->delay_ms == 0 && o->prio == 0 && !o->record)))
        return queue_publish(b, q, data, len, id);
    /* everything that can fail first, so a failure leaves nothing behind */
    if ((o && o->prio && need_plists(b, q)) || theap_reserve(&b->timers, 1) < 0
        || !(d = slab_alloc(&b->rec, sizeof(*d)))
        || (ttl && !(e = slab_alloc(&b->rec, sizeof(*e))))
        || !(g = queue_moved_tail(b, q, len))
        || (off = seg_append_moved(&b->slab, g, mid, data, len)) < 0) {
        if (e)
            slab_free(&b->rec, e, sizeof(*e));
        if (d)
            slab_free(&b->rec, d, sizeof(*d));
        return -1;
    }
    memset(d, 0, sizeof(*d));
    d->id = mid;
    d->len = len;
    d->q = q;
    d->seg = g;
    d->off = (uint16_t)off;
    d->heap_idx = DLV_NO_HEAP;
    d->prio = o ? o->prio : 0;
    if (e) {
        memset(e, 0, sizeof(*e));
        e->expires_ms = b->now_ms + ttl;
        d->ext = e;
    }
    dlist_init(&d->slink);
    dlist_push_back(&q->deliveries, &d->qlink);
    dtable_insert(&b->dels, d);
    b->next_id++;
    q->bytes += len;
    q->c.published++;
    b->messages++;
    *id = mid;
    latency_published(&q->lat, mid, b->now_ms);
    if (o && o->delay_ms)
        queue_delay(b, d, o->delay_ms);
    else
        queue_make_ready(b, d);
    if (q->durable)
        journal_msg_put(b, q, mid, data, len, d);
    return 0;
}

void
queue_mark(const struct queue *q, struct queue_mark *m)
{
    m->dlast = q->deliveries.prev;
    m->tail = q->tail;
    m->used = q->tail ? q->tail->used : 0;
    m->nrec = q->tail ? q->tail->nrec : 0;
    m->nfresh = q->nfresh;
    m->bytes = q->bytes;
}

void
queue_rollback(struct broker *b, struct queue *q, const struct queue_mark *m)
{
    uint64_t n;

    /* messages published with a delivery record: every record after the mark. Their deaths
     * must not compact (free) a segment: m->tail has to stay for the loop below */
    q->no_compact = 1;
    while (q->deliveries.prev != m->dlast) {
        struct delivery *d = DLIST_ENTRY(q->deliveries.prev, struct delivery, qlink);
        queue_leave_state(b, d);
        queue_destroy(b, d);
        q->c.published--;
    }
    q->no_compact = 0;
    n = q->nfresh - m->nfresh;
    while (q->tail && q->tail != m->tail) { /* segments created by the batch */
        struct segment *g = q->tail;
        for (uint32_t off = 0; off < g->used;) {
            struct seg_rec r;
            seg_read(g, off, &r);
            seg_kill(&b->slab, g, off);
            if (q->durable)
                journal_msg_del(b, q, r.id, r.len);
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
            if (q->durable)
                journal_msg_del(b, q, r.id, r.len);
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

/* The delivery after d in its consumer's in-flight list if it is a follower in d's run
 * (delivery.h: same queue and due time, no heap entry of its own), else NULL. */
static struct delivery *
next_follower(const struct delivery *d)
{
    const struct dlink *l = d->slink.next;
    struct delivery *n;

    if (l == &d->owner->list)
        return NULL;
    n = DLIST_ENTRY(l, struct delivery, slink);
    return n->heap_idx == DLV_NO_HEAP && n->q == d->q && n->due_ms == d->due_ms ? n : NULL;
}

/* Whether d, just put at the end of its consumer's in-flight list, continues the run of the
 * delivery before it. */
static int
continues_run(const struct delivery *d)
{
    const struct dlink *l = d->slink.prev;
    const struct delivery *p;

    if (l == &d->owner->list)
        return 0;
    p = DLIST_ENTRY(l, struct delivery, slink);
    return p->q == d->q && p->due_ms == d->due_ms;
}

/* In-flight d is leaving its consumer's list: a follower gives back its held slot; a heap
 * entry with a follower behind it passes the entry on (d is then out of the heap). */
static void
leave_run(struct broker *b, struct delivery *d)
{
    struct delivery *n;

    if (d->heap_idx == DLV_NO_HEAP)
        b->timers.held--;
    else if ((n = next_follower(d)))
        theap_hand_over(&b->timers, d, n);
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

/* A new delivery for the fresh message at the cursor, in no state. NULL at the memory
 * limit. */
struct delivery *
queue_take_fresh(struct broker *b, struct queue *q)
{
    struct delivery *d;
    struct seg_rec r;

    cursor_normalise(q);
    d = slab_alloc_reserved(&b->rec, sizeof(*d));
    if (!d)
        return NULL;
    seg_read(q->rseg, q->roff, &r);
    memset(d, 0, sizeof(*d));
    d->id = r.id;
    d->len = r.len;
    d->q = q;
    d->seg = q->rseg;
    d->off = (uint16_t)q->roff;
    d->heap_idx = DLV_NO_HEAP;
    dlist_init(&d->slink);
    dlist_push_back(&q->deliveries, &d->qlink);
    dtable_insert(&b->dels, d);
    q->roff += r.size;
    q->nfresh--;
    return d;
}

/* The next ready message, out of its ready list (in no state), or NULL if none can be
 * had. */
static struct delivery *
take_next(struct broker *b, struct queue *q)
{
    struct dlink *l = next_list(q);
    struct delivery *d;

    if (!l)
        return queue_take_fresh(b, q);
    d = DLIST_ENTRY(l->next, struct delivery, slink);
    queue_leave_state(b, d);
    return d;
}

uint32_t
queue_take(struct broker *b, struct queue *q, struct holder *h, uint32_t max, size_t max_bytes,
           struct delivery **out)
{
    uint32_t n = 0;
    uint32_t stuck = 0;
    size_t bytes = 0;
    struct lat_run run = {0};

    /* Heap slots for the whole batch at once, and then a compare a message instead of a call
     * (40 of 1,540 instructions a drained message, callgrind); near the memory limit this
     * fails and the loop grows the heap one slot at a time, so what fits is still delivered. */
    (void)theap_reserve(&b->timers, queue_ready(q) < max ? (uint32_t)queue_ready(q) : max);

    while (!q->paused && n < max && queue_ready(q) > 0 && (n == 0 || bytes < max_bytes)) {
        struct delivery *d;
        if ((!theap_has_room(&b->timers) && theap_reserve(&b->timers, 1) < 0)
            || !(d = take_next(b, q))) {
            /* cannot track its deadline, or no memory for its record: leave it ready */
            q->mem_held = 1;
            q->c.memory_stalls++;
            if (dlist_empty(&q->wake)) /* served again when memory frees (broker.c) */
                dlist_push_back(&b->mem_wait, &q->wake);
            latency_run_end(&q->lat, &run);
            return n;
        }
        if (d->ext && d->ext->expires_ms && d->ext->expires_ms <= b->now_ms) {
            /* not needed (the dead-letter queue is never q, and a move adds no checkpoint);
             * ended so that no run spans another queue operation */
            latency_run_end(&q->lat, &run);
            queue_dead_letter(b, d, DL_EXPIRED); /* its timer has not run yet */
            if (d->q == q && d->state == DLV_RETRY && ++stuck > BROKER_MAX_FETCH)
                break; /* could not move (memory limit), again and again: stop here */
            continue; /* one that could not move went to the back: go on behind it */
        }
        if (d->deliveries)
            q->c.redelivered++;
        make_inflight(b, d, h);
        if (d->deliveries == 1)
            latency_run_add(&q->lat, &run, d->id, b->now_ms);
        if (d->heap_idx != DLV_NO_HEAP)
            theap_update(&b->timers, d);
        else if (continues_run(d) || theap_push(&b->timers, d) < 0)
            b->timers.held++; /* a follower (the push cannot fail: the slot was reserved) */
        bytes += d->len;
        out[n++] = d;
    }
    latency_run_end(&q->lat, &run);
    q->mem_held = 0;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Settling                                                                                  */

void
queue_free_ext(struct broker *b, struct delivery *d)
{
    if (d->ext)
        slab_free(&b->rec, d->ext, msg_ext_size(d->ext));
    d->ext = NULL;
}

void
queue_destroy(struct broker *b, struct delivery *d)
{
    struct queue *q = d->q;

    q->bytes -= d->len;
    b->messages--;
    if (q->durable && !q->clearing)
        journal_msg_del(b, q, d->id, d->len);
    theap_remove(&b->timers, d);
    dtable_remove(&b->dels, d);
    dlist_unlink(&d->slink);
    dlist_unlink(&d->qlink);
    queue_segment_died(b, q, d->seg, seg_kill(&b->slab, d->seg, d->off));
    queue_free_ext(b, d);
    slab_free(&b->rec, d, sizeof(*d));
}

void
queue_leave_state(struct broker *b, struct delivery *d)
{
    struct queue *q = d->q;

    switch (d->state) {
    case DLV_INFLIGHT:
        leave_run(b, d);
        q->ninflight--;
        q->pinned_bytes -= d->len;
        d->owner->n--;
        if (d->sub) { /* its subscription has credit again */
            d->owner->sub_out[d->sub - 1]--;
            d->sub = 0;
            queue_wake(b, q);
        }
        break;
    case DLV_RETRY:
        q->nretry--;
        if (d->prio)
            q->nprio--;
        break;
    case DLV_DELAYED:
        q->ndelayed--;
        q->pinned_bytes -= d->len;
        break;
    }
    d->state = 0;
    dlist_unlink(&d->slink);
    d->owner = NULL;
}

void
queue_ack(struct broker *b, struct delivery *d)
{
    d->q->c.acked++;
    if (d->state == DLV_INFLIGHT) { /* delivered (or TOUCHed) at due_ms - visibility */
        uint64_t since = d->due_ms - d->q->visibility_ms;
        latency_acked(&d->q->lat, b->now_ms > since ? b->now_ms - since : 0);
    }
    queue_leave_state(b, d);
    queue_destroy(b, d);
}

/* d leaves its run (its due time changes, it stays where it is in its consumer's list): the
 * follower behind it now starts a run of its own and needs an entry, d's if it had one; then
 * d gets an entry for its new due time. Slots: each follower turned into an entry gives back
 * its held slot first, so no push here needs memory. */
void
queue_touch(struct broker *b, struct delivery *d)
{
    uint64_t due = b->now_ms + d->q->visibility_ms;
    int follower = d->heap_idx == DLV_NO_HEAP;
    struct delivery *n;

    if (due == d->due_ms)
        return;
    if ((n = next_follower(d))) {
        if (!follower) {
            theap_hand_over(&b->timers, d, n);
        } else {
            b->timers.held--;
            theap_push(&b->timers, n);
        }
    }
    if (follower)
        b->timers.held--;
    d->due_ms = due;
    if (d->heap_idx != DLV_NO_HEAP)
        theap_update(&b->timers, d);
    else
        theap_push(&b->timers, d);
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

/* d (out of every state) becomes DELAYED until now + delay_ms (> 0), or its expiry if that
 * comes first. */
void
queue_delay(struct broker *b, struct delivery *d, uint64_t delay_ms)
{
    d->state = DLV_DELAYED;
    d->due_ms = b->now_ms + delay_ms;
    if (d->ext && d->ext->expires_ms && d->ext->expires_ms < d->due_ms)
        d->due_ms = d->ext->expires_ms;
    d->q->ndelayed++;
    d->q->pinned_bytes += d->len;
    if (d->heap_idx != DLV_NO_HEAP)
        theap_update(&b->timers, d);
    else if (theap_push(&b->timers, d) < 0) {
        d->q->ndelayed--; /* cannot time it: ready now rather than lost */
        d->q->pinned_bytes -= d->len;
        queue_make_ready(b, d);
    }
}

static int
expired(const struct broker *b, const struct delivery *d)
{
    return d->ext && d->ext->expires_ms && d->ext->expires_ms <= b->now_ms;
}

/* An in-flight d comes back: dead-lettered if it has had its deliveries or its time,
 * else ready after delay_ms (at once if 0). */
static void
come_back(struct broker *b, struct delivery *d, uint64_t delay_ms)
{
    struct queue *q = d->q;

    queue_leave_state(b, d);
    if (q->max_deliveries && d->deliveries >= q->max_deliveries) {
        queue_dead_letter(b, d, DL_DELIVERY_LIMIT);
    } else if (expired(b, d)) {
        queue_dead_letter(b, d, DL_EXPIRED);
    } else if (delay_ms) {
        queue_delay(b, d, delay_ms);
        if (q->durable)
            journal_msg_set(b, d);
    } else {
        queue_make_ready(b, d);
        if (q->durable)
            journal_msg_set(b, d);
    }
}

void
queue_requeue(struct broker *b, struct delivery *d)
{
    come_back(b, d, 0);
}

void
queue_nack(struct broker *b, struct delivery *d, uint64_t delay_ms)
{
    d->q->c.nacked++;
    come_back(b, d, delay_ms ? delay_ms : backoff_ms(b, d));
}

void
queue_expire(struct broker *b, struct delivery *d)
{
    d->q->c.timeouts++;
    come_back(b, d, backoff_ms(b, d));
}

void
queue_term(struct broker *b, struct delivery *d)
{
    d->q->c.terminated++;
    queue_leave_state(b, d);
    queue_dead_letter(b, d, DL_REJECTED);
}

void
queue_due(struct broker *b, struct delivery *d)
{
    queue_leave_state(b, d);
    if (expired(b, d))
        queue_dead_letter(b, d, DL_EXPIRED);
    else
        queue_make_ready(b, d); /* a delay ended */
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
    if (q->durable && !q->clearing)
        journal_msg_del(b, q, r.id, r.len);
    queue_segment_died(b, q, g, seg_kill(&b->slab, g, q->roff - r.size));
}

/* Kill every fresh record from the cursor on. Returns how many. */
static uint64_t
drop_fresh(struct broker *b, struct queue *q)
{
    uint64_t n = q->nfresh;

    while (q->nfresh > 0 && q->rseg) /* rseg: set while any is fresh */
        drop_fresh_one(b, q);
    return n;
}

/* Drop, or dead-letter, the message at the head of the delivery order. Returns 0, or -1 if
 * no ready message is left (or, dead-lettering, memory for it ran out). */
static int
drop_head(struct broker *b, struct queue *q)
{
    struct dlink *l;
    struct delivery *d;

    if (queue_ready(q) == 0)
        return -1;
    if (q->overflow == QUEUE_DEAD_LETTER) {
        uint64_t failed = q->c.dead_letter_failed;
        if (!(d = take_next(b, q)))
            return -1;
        queue_dead_letter(b, d, DL_MAX_LENGTH);
        return q->c.dead_letter_failed == failed ? 0 : -1;
    }
    if ((l = next_list(q))) {
        d = DLIST_ENTRY(l->next, struct delivery, slink);
        queue_leave_state(b, d);
        queue_destroy(b, d);
    } else {
        drop_fresh_one(b, q);
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

    if (q->overflow != QUEUE_REJECT) /* room for at least the newest message */
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

    if (q->overflow == QUEUE_REJECT)
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
            queue_leave_state(b, d);
            queue_destroy(b, d);
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
        queue_leave_state(b, d);
        queue_destroy(b, d);
        n++;
    }
    while (q->head)
        drop_segment(b, q, q->head);
    while (q->mhead)
        drop_segment(b, q, q->mhead);
    if (q->plists)
        slab_free(&b->slab, q->plists, SMQ_PRIO_MAX * sizeof(*q->plists));
    q->plists = NULL;
    return n;
}

uint64_t
queue_next_due(const struct queue *q)
{
    uint64_t due = 0;

    for (const struct dlink *l = q->deliveries.next; l != &q->deliveries; l = l->next) {
        const struct delivery *d = DLIST_ENTRY(l, struct delivery, qlink);
        if (d->state == DLV_DELAYED && (due == 0 || d->due_ms < due))
            due = d->due_ms;
    }
    return due;
}

/* PEEK's walk: one ready list, skipping and collecting. Returns 1 when out is full. */
static int
peek_list(const struct dlink *list, uint64_t *skip, uint32_t max, size_t max_bytes,
          struct msgref *out, uint32_t *n, size_t *bytes)
{
    for (const struct dlink *l = list->next; l != list; l = l->next) {
        const struct delivery *d = DLIST_ENTRY(l, struct delivery, slink);
        if (*skip) {
            (*skip)--;
            continue;
        }
        if (*n >= max || (*n > 0 && *bytes >= max_bytes))
            return 1;
        *bytes += d->len;
        out[(*n)++] = (struct msgref){.id = d->id, .seg = d->seg, .ext = d->ext,
                                      .deliveries = d->deliveries, .off = d->off};
    }
    return 0;
}

uint32_t
queue_peek(const struct queue *q, uint64_t skip, uint32_t max, size_t max_bytes,
           struct msgref *out)
{
    uint32_t n = 0;
    size_t bytes = 0;
    const struct segment *g = q->rseg;
    uint32_t off = q->roff;
    struct seg_rec r;

    for (unsigned p = SMQ_PRIO_MAX; q->plists && p > 0; p--)
        if (peek_list(&q->plists[p - 1], &skip, max, max_bytes, out, &n, &bytes))
            return n;
    if (peek_list(&q->retry, &skip, max, max_bytes, out, &n, &bytes))
        return n;
    if (skip >= q->nfresh)
        return n;
    while (g && n < max && (n == 0 || bytes < max_bytes)) {
        if (off >= g->used) {
            g = g->next;
            off = 0;
            continue;
        }
        seg_read(g, off, &r);
        off += r.size;
        if (r.flags & SEG_DEAD)
            continue; /* behind the cursor, or rolled back */
        if (skip) {
            skip--;
            continue;
        }
        bytes += r.len;
        out[n++] = (struct msgref){.id = r.id, .seg = (struct segment *)g, .off = off - r.size};
    }
    return n;
}
