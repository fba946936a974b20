/* SPDX-License-Identifier: MIT */
/* Long-poll waiters; see wait.h. Serving is O(messages handed out). */
#include "wait.h"

#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "broker.h"
#include "cmd.h"
#include "conn.h"
#include "dlist.h"
#include "ops.h"
#include "queue.h"
#include "reply.h"
#include "server.h"
#include "slabmq.h"

struct waiter {
    struct conn *c;      /* connection that asked */
    struct queue *q;     /* queue waited on */
    uint64_t rid;        /* request id to answer */
    uint32_t max;        /* messages wanted at most */
    int noack;           /* at-most-once FETCH */
    struct event timer;  /* fires when the wait ends */
    struct dlink qlink;  /* in q->waiters, FIFO */
    struct dlink clink;  /* in c->waits */
};

static void
waiter_free(struct waiter *w)
{
    struct broker *b = &w->c->srv->b;

    event_del(&w->timer);
    dlist_unlink(&w->qlink);
    dlist_unlink(&w->clink);
    w->c->nwaits--;
    slab_free(&b->slab, w, sizeof(*w));
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct conn *c = w->c;

    (void)fd;
    (void)what;
    reply_deliveries(c, SMQ_OP_FETCH, w->rid, NULL, 0);
    waiter_free(w);
    conn_want_write(c);
}

int
wait_start(struct conn *c, struct queue *q, uint64_t rid, uint32_t max, uint32_t wait_ms,
           int noack)
{
    struct server *s = c->srv;
    struct waiter *w = slab_alloc_reserved(&s->b.slab, sizeof(*w));
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

    if (!w)
        return -1;
    memset(w, 0, sizeof(*w));
    w->c = c;
    w->q = q;
    w->rid = rid;
    w->max = max;
    w->noack = noack;
    dlist_push_back(&q->waiters, &w->qlink);
    dlist_push_back(&c->waits, &w->clink);
    c->nwaits++;
    event_assign(&w->timer, s->base, -1, 0, wait_timeout_cb, w);
    event_add(&w->timer, &tv);
    return 0;
}

void
wait_serve(void *ctx, struct queue *q)
{
    struct server *s = ctx;
    struct broker *b = &s->b;

    while (!q->paused && !dlist_empty(&q->waiters) && queue_ready(q) > 0) {
        if (broker_over_limit(b)) { /* replies would need memory: serve when it drains */
            if (dlist_empty(&q->wake))
                dlist_push_back(&b->wake, &q->wake);
            return;
        }
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct waiter, qlink);
        struct conn *c = w->c;
        uint32_t room = c->held.n < b->cfg.max_inflight ? b->cfg.max_inflight - c->held.n : 0;
        uint32_t n;
        if (room == 0) { /* its window filled up by other FETCHes meanwhile */
            reply_error(c, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_LIMIT,
                        "in-flight window full: %u unacked messages", c->held.n);
            waiter_free(w);
            conn_want_write(c);
            continue;
        }
        n = queue_take(b, q, &c->held, w->max < room ? w->max : room, b->cfg.max_fetch_bytes,
                       b->scratch);
        if (n == 0)
            break; /* memory limit: the waiter keeps waiting */
        cmd_deliver(c, w->rid, n, w->noack);
        waiter_free(w);
        conn_try_write(c);
    }
}

void
wait_queue_gone(void *ctx, struct queue *q)
{
    (void)ctx;
    while (!dlist_empty(&q->waiters)) {
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct waiter, qlink);
        struct conn *c = w->c;
        reply_error(c, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_QUEUE_DELETED,
                    "queue %s was deleted while waiting", q->name);
        waiter_free(w);
        conn_want_write(c);
    }
}

void
wait_shutdown_conn(struct conn *c)
{
    while (!dlist_empty(&c->waits)) {
        struct waiter *w = DLIST_ENTRY(c->waits.next, struct waiter, clink);
        reply_error(c, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
        waiter_free(w);
    }
}

void
wait_cancel_conn(struct conn *c)
{
    while (!dlist_empty(&c->waits))
        waiter_free(DLIST_ENTRY(c->waits.next, struct waiter, clink));
}
