/* SPDX-License-Identifier: MIT */
/* Message ops: PUBLISH, PUBLISH_BATCH, FETCH, ACK, NACK, PEEK. Nothing here allocates from
 * the heap: messages go to the slab, replies to pooled output buffers. */
#include <string.h>

#include "broker.h"
#include "cmd.h"
#include "conn.h"
#include "delivery.h"
#include "queue.h"
#include "reply.h"
#include "server.h"
#include "slabmq.h"
#include "wait.h"

#define WAIT_MAX_MS (3600u * 1000)        /* longest long-poll: an hour */
#define NACK_DELAY_MAX_MS (UINT32_MAX)     /* ~49.7 days in this version's wire field */

/* The queue for a publish or fetch, created on first use. NULL after replying NOMEM. */
static struct queue *
use_queue(struct conn *c, unsigned op, uint64_t rid, const char *name, uint32_t len)
{
    int created;
    struct queue *q = cmd_cached_queue(c, name, len);

    if (q)
        return q;
    q = broker_queue_get(&c->srv->b, name, len, &created);
    if (!q)
        reply_error(c, op, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
    else
        cmd_cache_queue(c, q);
    return q;
}

/* Read one payload, enforcing the maximum message size. */
static int
read_payload(struct conn *c, unsigned op, uint64_t rid, struct smq_mpr *r, const uint8_t **p,
             uint32_t *len)
{
    uint32_t max = c->srv->b.cfg.max_message_size;

    if (smq_mpr_bin(r, p, len)) {
        reply_error(c, op, rid, SLABMQ_ERR_BAD_REQUEST, "payload must be a msgpack bin");
        return -1;
    }
    if (*len > max) {
        reply_error(c, op, rid, SLABMQ_ERR_TOO_LARGE,
                    "message of %u bytes exceeds the maximum message size of %u bytes", *len,
                    max);
        return -1;
    }
    return 0;
}

/* A queue's own limits refuse the publish: say which limit and where the queue stands. */
static void
reply_full(struct conn *c, unsigned op, uint64_t rid, const struct queue *q)
{
    char lim[96] = "";

    if (q->max_messages)
        snprintf(lim, sizeof(lim), "max_messages %llu", (unsigned long long)q->max_messages);
    if (q->max_bytes)
        snprintf(lim + strlen(lim), sizeof(lim) - strlen(lim), "%smax_bytes %llu",
                 q->max_messages ? ", " : "", (unsigned long long)q->max_bytes);
    reply_error(c, op, rid, SLABMQ_ERR_QUEUE_FULL,
                "queue %s is full: it holds %llu message%s of %llu bytes (%s)%s", q->name,
                (unsigned long long)queue_held(q), queue_held(q) == 1 ? "" : "s",
                (unsigned long long)q->bytes, lim,
                q->overflow == QUEUE_DROP_OLDEST
                    ? "; drop-oldest cannot make room: in-flight and delayed messages are "
                      "never dropped, or the message alone exceeds max_bytes"
                    : "");
}

/* [queue, payload] -> [id] */
void
cmd_publish(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = &c->srv->b;
    const char *name;
    uint32_t nlen;
    const uint8_t *p;
    uint32_t len;
    struct queue *q;
    uint64_t id;

    if (cmd_expect_args(c, SMQ_OP_PUBLISH, rid, nargs, 2, 2)
        || cmd_read_name(c, SMQ_OP_PUBLISH, rid, r, &name, &nlen)
        || read_payload(c, SMQ_OP_PUBLISH, rid, r, &p, &len)
        || cmd_args_end(c, SMQ_OP_PUBLISH, rid, r)
        || !(q = use_queue(c, SMQ_OP_PUBLISH, rid, name, nlen)))
        return;
    if (queue_admit(q, 1, len, len)) {
        reply_full(c, SMQ_OP_PUBLISH, rid, q);
        return;
    }
    if (queue_publish(b, q, p, len, &id)) {
        reply_error(c, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_NOMEM,
                    "memory limit reached (%zu of %zu bytes in use); retry later", b->mem.used,
                    b->mem.limit);
        return;
    }
    queue_trim(b, q);
    reply_uint(c, SMQ_OP_PUBLISH, rid, id);
    if (!dlist_empty(&q->waiters))
        wait_serve(c->srv, q);
}

/* [queue, [payload, ...]] -> [first_id, count]; all or nothing. */
void
cmd_publish_batch(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = &c->srv->b;
    const unsigned op = SMQ_OP_PUBLISH_BATCH;
    const char *name;
    uint32_t nlen;
    uint32_t n;
    struct smq_mpr items;
    struct queue *q;
    struct queue_mark mark;
    uint64_t first = 0;
    uint64_t total = 0;
    uint32_t largest = 0;
    struct reply rep;

    if (cmd_expect_args(c, op, rid, nargs, 2, 2) || cmd_read_name(c, op, rid, r, &name, &nlen))
        return;
    if (smq_mpr_array(r, &n)) {
        reply_error(c, op, rid, SLABMQ_ERR_BAD_REQUEST, "payloads must be a msgpack array");
        return;
    }
    items = *r; /* first pass validates every payload; nothing is stored unless all are good */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t len;
        if (read_payload(c, op, rid, r, &p, &len))
            return;
        total += len;
        if (len > largest)
            largest = len;
    }
    if (cmd_args_end(c, op, rid, r) || !(q = use_queue(c, op, rid, name, nlen)))
        return;
    if (queue_admit(q, n, total, largest)) {
        reply_full(c, op, rid, q);
        return;
    }
    queue_mark(q, &mark);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t len;
        uint64_t id;
        smq_mpr_bin(&items, &p, &len);
        if (queue_publish(b, q, p, len, &id)) {
            queue_rollback(b, q, &mark);
            reply_error(c, op, rid, SLABMQ_ERR_NOMEM,
                        "memory limit reached after %u of %u messages; none stored", i, n);
            return;
        }
        if (i == 0)
            first = id;
    }
    queue_trim(b, q);
    reply_begin(&rep, c, op, rid, 2);
    msgpack_pack_uint64(&rep.pk, first);
    msgpack_pack_uint32(&rep.pk, n);
    reply_end(&rep);
    if (n && !dlist_empty(&q->waiters))
        wait_serve(c->srv, q);
}

#define FETCH_NOACK 1u /* flags: at-most-once, the messages are gone once sent */

/* Reply with n taken deliveries; for an at-most-once FETCH, settle them at once. */
void
cmd_deliver(struct conn *c, uint64_t rid, uint32_t n, int noack)
{
    struct broker *b = &c->srv->b;

    reply_deliveries(c, SMQ_OP_FETCH, rid, b->scratch, n);
    for (uint32_t i = 0; noack && i < n; i++)
        queue_ack(b, b->scratch[i]);
}

/* [queue, max, wait_ms, flags] -> [[[id, deliveries, payload], ...]] */
void
cmd_fetch(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = &c->srv->b;
    const unsigned op = SMQ_OP_FETCH;
    const char *name;
    uint32_t nlen;
    uint64_t max;
    uint64_t wait_ms = 0;
    uint64_t flags = 0;
    struct queue *q;
    uint32_t n;

    if (cmd_expect_args(c, op, rid, nargs, 2, 4) || cmd_read_name(c, op, rid, r, &name, &nlen)
        || cmd_read_uint(c, op, rid, r, "max", 1, BROKER_MAX_FETCH, &max)
        || (nargs >= 3 && cmd_read_uint(c, op, rid, r, "wait_ms", 0, WAIT_MAX_MS, &wait_ms))
        || (nargs == 4 && cmd_read_uint(c, op, rid, r, "flags", 0, FETCH_NOACK, &flags))
        || cmd_args_end(c, op, rid, r))
        return;
    if (c->held.n >= b->cfg.max_inflight) {
        reply_error(c, op, rid, SLABMQ_ERR_LIMIT,
                    "in-flight window full: this connection holds %u unacked messages "
                    "(--max-inflight); ack or nack some first", c->held.n);
        return;
    }
    if (!(q = use_queue(c, op, rid, name, nlen)))
        return;
    if (max > b->cfg.max_inflight - c->held.n)
        max = b->cfg.max_inflight - c->held.n;
    /* Earlier waiters of this queue come first; a new FETCH never overtakes them. */
    n = dlist_empty(&q->waiters)
            ? queue_take(b, q, &c->held, (uint32_t)max, b->cfg.max_fetch_bytes, b->scratch)
            : 0;
    if (n > 0 || wait_ms == 0) {
        cmd_deliver(c, rid, n, flags & FETCH_NOACK);
        return;
    }
    if (c->nwaits >= CONN_MAX_WAITS) {
        reply_error(c, op, rid, SLABMQ_ERR_LIMIT, "at most %d waiting FETCHes per connection",
                    CONN_MAX_WAITS);
        return;
    }
    if (wait_start(c, q, rid, (uint32_t)max, (uint32_t)wait_ms, flags & FETCH_NOACK))
        reply_error(c, op, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
}

/* Shared body of ACK and NACK: [[id, ...] (, delay_ms)] -> [count]. Known ids are settled even
 * when some are unknown; then the reply is ERR_UNKNOWN_ID. */
static void
settle(struct conn *c, unsigned op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = &c->srv->b;
    uint32_t n;
    uint64_t delay = 0;
    uint64_t done = 0;
    uint64_t unknown = 0;
    uint64_t first_unknown = 0;
    struct smq_mpr ids;

    if (cmd_expect_args(c, op, rid, nargs, 1, op == SMQ_OP_NACK ? 2 : 1))
        return;
    if (smq_mpr_array(r, &n)) {
        reply_error(c, op, rid, SLABMQ_ERR_BAD_REQUEST, "ids must be a msgpack array");
        return;
    }
    ids = *r;
    for (uint32_t i = 0; i < n; i++) { /* first pass: all valid, or nothing is settled */
        uint64_t id;
        if (smq_mpr_uint(r, &id)) {
            reply_error(c, op, rid, SLABMQ_ERR_BAD_REQUEST,
                        "message ids must be non-negative integers");
            return;
        }
    }
    if ((nargs == 2 && cmd_read_uint(c, op, rid, r, "delay_ms", 0, NACK_DELAY_MAX_MS, &delay))
        || cmd_args_end(c, op, rid, r))
        return;
    broker_defer_wake(b); /* waiters get NACKed messages after the whole list is settled */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id;
        struct delivery *d;
        smq_mpr_uint(&ids, &id);
        d = dtable_find(&b->dels, id);
        if (!d || d->state != DLV_INFLIGHT || d->owner != &c->held) {
            if (unknown++ == 0)
                first_unknown = id;
            continue;
        }
        if (op == SMQ_OP_ACK)
            queue_ack(b, d);
        else if (op == SMQ_OP_TOUCH)
            queue_touch(b, d);
        else
            queue_nack(b, d, (uint32_t)delay);
        done++;
    }
    broker_flush_wake(b);
    if (unknown) {
        reply_error(c, op, rid, SLABMQ_ERR_UNKNOWN_ID,
                    "%llu of %u ids unknown or not held by this connection (first: %llu); "
                    "%llu settled",
                    (unsigned long long)unknown, n, (unsigned long long)first_unknown,
                    (unsigned long long)done);
        return;
    }
    reply_uint(c, op, rid, done);
}

void
cmd_ack(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(c, SMQ_OP_ACK, rid, r, nargs);
}

void
cmd_nack(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(c, SMQ_OP_NACK, rid, r, nargs);
}

/* [[id, ...]] -> [count]: still working on these, restart their visibility timeouts. */
void
cmd_touch(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(c, SMQ_OP_TOUCH, rid, r, nargs);
}

/* [queue, max] -> [[[id, deliveries, payload], ...]] without taking them */
void
cmd_peek(struct conn *c, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct msgref refs[256];
    const unsigned op = SMQ_OP_PEEK;
    const char *name;
    uint32_t nlen;
    uint64_t max;
    struct queue *q;

    if (cmd_expect_args(c, op, rid, nargs, 2, 2) || cmd_read_name(c, op, rid, r, &name, &nlen)
        || cmd_read_uint(c, op, rid, r, "max", 1, 256, &max) || cmd_args_end(c, op, rid, r)
        || !(q = cmd_find_queue(c, op, rid, name, nlen)))
        return;
    reply_msgrefs(c, op, rid, refs,
                  queue_peek(q, (uint32_t)max, c->srv->b.cfg.max_fetch_bytes, refs));
}
