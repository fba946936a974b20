/* SPDX-License-Identifier: MIT */
/* Dead letters: where a queue's go, and moving one there (docs/protocol.md 7.6).
 *
 * A dead letter keeps its message id, its delivery record and its payload: the record is
 * moved (payload copied, or a large payload's chain handed over) into the dead-letter
 * queue's moved-record segments, and the delivery is relinked there with an extension that
 * says why, from where, and after how many deliveries. So dead-lettering allocates only
 * that extension and, now and then, a segment. */
#include <string.h>

#include "core/broker.h"
#include "core/delivery.h"
#include "core/journal.h"
#include "core/queue.h"
#include "core/queue_int.h"
#include "mem/segment.h"

const char *
dl_reason_name(unsigned reason)
{
    switch (reason) {
    case DL_DELIVERY_LIMIT:
        return "delivery-limit";
    case DL_REJECTED:
        return "rejected";
    case DL_EXPIRED:
        return "expired";
    case DL_MAX_LENGTH:
        return "max-length";
    default:
        return "";
    }
}

uint32_t
queue_dlq_name(const struct queue *q, char *buf)
{
    uint32_t n;

    switch (q->dlq_mode) {
    case QUEUE_DLQ_NONE:
        buf[0] = '\0';
        return 0;
    case QUEUE_DLQ_NAMED:
        memcpy(buf, q->dlq_name, q->dlq_len + 1u);
        return q->dlq_len;
    default: /* name + ".dlq", the name cut so that the whole is a valid name */
        n = q->name_len <= SMQ_NAME_MAX - 4 ? q->name_len : SMQ_NAME_MAX - 4;
        memcpy(buf, q->name, n);
        memcpy(buf + n, ".dlq", 5);
        return n + 4;
    }
}

int
queue_set_dlq(struct broker *b, struct queue *q, const char *name, uint32_t len)
{
    char *copy = NULL;

    if (name && len) {
        if (!(copy = slab_alloc(&b->slab, (size_t)len + 1)))
            return -1;
        memcpy(copy, name, len);
        copy[len] = '\0';
    }
    if (q->dlq_name)
        slab_free(&b->slab, q->dlq_name, (size_t)q->dlq_len + 1);
    q->dlq_name = copy;
    q->dlq_len = (uint8_t)(copy ? len : 0);
    q->dlq_mode = !name ? QUEUE_DLQ_DEFAULT : len ? QUEUE_DLQ_NAMED : QUEUE_DLQ_NONE;
    return 0;
}

/* Whether q's dead letters have nowhere to go: dead_letter "", or a default name that is
 * q's own (a 200-byte name ending in ".dlq" cut to 196 bytes plus ".dlq"). */
static int
dlq_none(const struct queue *q)
{
    char name[SMQ_NAME_MAX + 1];
    uint32_t len;

    if (q->dlq_mode == QUEUE_DLQ_NONE)
        return 1;
    len = queue_dlq_name(q, name);
    return len == q->name_len && memcmp(name, q->name, len) == 0;
}

/* The dead-letter queue of q (not q itself), created if missing, then with no delivery
 * limit and no dead-letter queue of its own, so dead letters cannot cascade. NULL at the
 * memory limit. */
static struct queue *
dlq_of(struct broker *b, struct queue *q)
{
    char name[SMQ_NAME_MAX + 1];
    uint32_t len = queue_dlq_name(q, name);
    int created;
    struct queue *dq = broker_queue_get(b, name, len, &created);

    if (dq && created) {
        dq->max_deliveries = 0;
        dq->dlq_mode = QUEUE_DLQ_NONE;
        journal_queue_put(b, dq); /* those settings: the put at creation had the defaults */
    }
    return dq;
}

/* The move (or discard) happened: count it by reason. */
static void
count_reason(struct queue *q, unsigned reason)
{
    if (reason == DL_EXPIRED)
        q->c.expired++;
    else if (reason == DL_DELIVERY_LIMIT)
        q->c.delivery_limit++;
}

/* It could not move: leave d ready where it is, and make sure its TTL timer does not fire
 * again at once (it will be tried again within a second). */
static void
stay(struct broker *b, struct delivery *d)
{
    d->q->c.dead_letter_failed++;
    queue_make_ready(b, d);
    if (d->heap_idx != DLV_NO_HEAP && d->due_ms <= b->now_ms) {
        d->due_ms = b->now_ms + 1000;
        theap_update(&b->timers, d);
    }
}

void
queue_dead_letter(struct broker *b, struct delivery *d, unsigned reason)
{
    struct queue *q = d->q;
    struct queue *dq;
    struct segment *from = d->seg;
    struct segment *to;
    struct msg_ext *e;

    if (dlq_none(q)) {
        count_reason(q, reason);
        q->c.dead_discarded++;
        queue_destroy(b, d);
        return;
    }
    if (!(dq = dlq_of(b, q))
        || !(e = slab_alloc_reserved(&b->rec, sizeof(*e) + q->name_len))) {
        stay(b, d);
        return;
    }
    if (!(to = queue_moved_tail(b, dq, d->len))) {
        slab_free(&b->rec, e, sizeof(*e) + q->name_len);
        stay(b, d);
        return;
    }
    count_reason(q, reason);
    e->expires_ms = 0; /* a dead letter's TTL, delay and priority do not apply */
    e->dl_deliveries = d->deliveries;
    e->reason = (uint8_t)reason;
    e->srclen = (uint8_t)q->name_len;
    memcpy(e->src, q->name, q->name_len);

    d->off = (uint16_t)seg_move(to, from, d->off, d->id);
    d->seg = to;
    q->bytes -= d->len;
    q->c.dead_lettered++;
    dlist_unlink(&d->qlink);
    queue_segment_died(b, q, from, from->live);

    queue_free_ext(b, d);
    d->ext = e;
    d->q = dq;
    d->deliveries = 0;
    d->prio = 0;
    dlist_push_back(&dq->deliveries, &d->qlink);
    dq->bytes += d->len;
    dq->c.published++;
    queue_make_ready(b, d);
    if (dq->durable && q->durable) /* the same row, now in the dead-letter queue */
        journal_msg_set(b, d);
    else if (dq->durable)
        journal_msg_held(b, d);
    else if (q->durable)
        journal_msg_del(b, q, d->id, d->len);
}

int
queue_restore_dead(struct broker *b, struct delivery *d, unsigned reason, uint32_t deliveries,
                   const char *src, uint32_t srclen)
{
    struct msg_ext *e;

    if (srclen > SMQ_NAME_MAX)
        srclen = SMQ_NAME_MAX;
    if (!(e = slab_alloc(&b->rec, sizeof(*e) + srclen)))
        return -1;
    e->expires_ms = 0;
    e->dl_deliveries = deliveries;
    e->reason = (uint8_t)reason;
    e->srclen = (uint8_t)srclen;
    memcpy(e->src, src, srclen);
    if (d->ext && d->ext->expires_ms)
        e->expires_ms = d->ext->expires_ms;
    queue_free_ext(b, d);
    d->ext = e;
    return 0;
}
