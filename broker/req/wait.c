/* SPDX-License-Identifier: MIT */
/* Long-poll waiters; see wait.h. Serving is O(messages handed out). */
#include "req/wait.h"

#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/broker.h"
#include "req/cmd.h"
#include "net/conn.h"
#include "util/dlist.h"
#include "ops.h"
#include "core/queue.h"
#include "req/reply.h"
#include "net/server.h"
#include "slabmq_protocol.h"

struct waiter;

/* A waiter's place in one queue's FIFO of waiters. */
struct wlink {
    struct dlink qlink;  /* in q->waiters */
    struct waiter *w;
    struct queue *q;
};

struct waiter {
    struct conn *c;      /* connection that asked */
    uint64_t rid;        /* request id to answer */
    uint32_t max;        /* messages wanted at most */
    uint8_t noack;       /* at-most-once FETCH */
    uint8_t multi;       /* FETCH named a list of queues: the reply names the queue */
    uint8_t nq;          /* queues waited on */
    struct event timer;  /* fires when the wait ends */
    struct dlink clink;  /* in c->waits */
    struct wlink links[]; /* one per queue waited on */
};

static size_t
waiter_size(unsigned nq)
{
    return sizeof(struct waiter) + nq * sizeof(struct wlink);
}

static void
waiter_free(struct waiter *w)
{
    struct broker *b = &w->c->srv->b;

    event_del(&w->timer);
    for (unsigned i = 0; i < w->nq; i++)
        dlist_unlink(&w->links[i].qlink);
    dlist_unlink(&w->clink);
    w->c->nwaits--;
    slab_free(&b->rec, w, waiter_size(w->nq));
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct conn *c = w->c;

    (void)fd;
    (void)what;
    reply_deliveries_from(c, SMQ_OP_FETCH, w->rid, NULL, 0, w->multi, NULL);
    waiter_free(w);
    conn_want_write(c);
}

int
wait_start(struct conn *c, struct queue **qs, unsigned nq, int multi, uint64_t rid,
           uint32_t max, uint32_t wait_ms, int noack)
{
    struct server *s = c->srv;
    struct waiter *w = slab_alloc_reserved(&s->b.rec, waiter_size(nq));
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

    if (!w)
        return -1;
    memset(w, 0, waiter_size(nq));
    w->c = c;
    w->rid = rid;
    w->max = max;
    w->noack = (uint8_t)noack;
    w->multi = (uint8_t)multi;
    w->nq = (uint8_t)nq;
    for (unsigned i = 0; i < nq; i++) {
        w->links[i].w = w;
        w->links[i].q = qs[i];
        dlist_push_back(&qs[i]->waiters, &w->links[i].qlink);
    }
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
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct wlink, qlink)->w;
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
        cmd_deliver(c, w->rid, n, w->noack, w->multi, q);
        waiter_free(w);
        conn_try_write(c);
    }
}

void
wait_queue_gone(void *ctx, struct queue *q)
{
    (void)ctx;
    while (!dlist_empty(&q->waiters)) {
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct wlink, qlink)->w;
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
