/* SPDX-License-Identifier: MIT */
/* Long-poll waiters; see wait.h. Serving is O(messages handed out). */
#include "req/wait.h"

#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/broker.h"
#include "req/cmd.h"
#include "req/req.h"
#include "util/dlist.h"
#include "ops.h"
#include "core/queue.h"
#include "req/reply.h"
#include "slabmq_protocol.h"

struct waiter;

/* A waiter's place in one queue's FIFO of waiters. */
struct wlink {
    struct dlink qlink;  /* in q->waiters */
    struct waiter *w;
    struct queue *q;
};

struct waiter {
    struct req *rq;      /* connection that asked */
    uint64_t rid;        /* request id to answer */
    uint32_t max;        /* messages wanted at most */
    uint8_t noack;       /* at-most-once FETCH */
    uint8_t multi;       /* FETCH named a list of queues: the reply names the queue */
    uint8_t nq;          /* queues waited on */
    struct event timer;  /* fires when the wait ends */
    struct dlink clink;  /* in rq->waits */
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
    struct broker *b = w->rq->b;

    event_del(&w->timer);
    for (unsigned i = 0; i < w->nq; i++)
        dlist_unlink(&w->links[i].qlink);
    dlist_unlink(&w->clink);
    w->rq->nwaits--;
    slab_free(&b->rec, w, waiter_size(w->nq));
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    struct req *rq = w->rq;

    (void)fd;
    (void)what;
    reply_deliveries_from(rq, SMQ_OP_FETCH, w->rid, NULL, 0, w->multi, NULL);
    waiter_free(w);
    req_want_write(rq);
}

int
wait_start(struct req *rq, struct queue **qs, unsigned nq, int multi, uint64_t rid,
           uint32_t max, uint32_t wait_ms, int noack)
{
    struct req_server *s = rq->srv;
    struct waiter *w = slab_alloc_reserved(&s->b->rec, waiter_size(nq));
    struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};

    if (!w)
        return -1;
    memset(w, 0, waiter_size(nq));
    w->rq = rq;
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
    dlist_push_back(&rq->waits, &w->clink);
    rq->nwaits++;
    event_assign(&w->timer, s->base, -1, 0, wait_timeout_cb, w);
    event_add(&w->timer, &tv);
    return 0;
}

void
wait_serve(void *ctx, struct queue *q)
{
    struct req_server *s = ctx;
    struct broker *b = s->b;

    while (!q->paused && !dlist_empty(&q->waiters) && queue_ready(q) > 0) {
        if (broker_over_limit(b)) { /* replies would need memory: serve when it drains */
            queue_park(b, q);
            return;
        }
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct wlink, qlink)->w;
        struct req *rq = w->rq;
        uint32_t room = req_window(rq);
        uint32_t n;
        if (room == 0) { /* its window filled up by other FETCHes meanwhile */
            reply_error(rq, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_LIMIT,
                        "in-flight window full: %u unacked messages", rq->held.n);
            waiter_free(w);
            req_want_write(rq);
            continue;
        }
        n = queue_take(b, q, &rq->held, w->max < room ? w->max : room, b->cfg.max_fetch_bytes,
                       b->scratch);
        if (n == 0)
            break; /* memory limit: the waiter keeps waiting */
        cmd_deliver(rq, w->rid, n, w->noack, w->multi, q);
        waiter_free(w);
        req_try_write(rq);
    }
}

void
wait_queue_gone(void *ctx, struct queue *q)
{
    (void)ctx;
    while (!dlist_empty(&q->waiters)) {
        struct waiter *w = DLIST_ENTRY(q->waiters.next, struct wlink, qlink)->w;
        struct req *rq = w->rq;
        reply_error(rq, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_QUEUE_DELETED,
                    "queue %s was deleted while waiting", q->name);
        waiter_free(w);
        req_want_write(rq);
    }
}

void
wait_shutdown_req(struct req *rq)
{
    while (!dlist_empty(&rq->waits)) {
        struct waiter *w = DLIST_ENTRY(rq->waits.next, struct waiter, clink);
        reply_error(rq, SMQ_OP_FETCH, w->rid, SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
        waiter_free(w);
    }
}

void
wait_cancel_req(struct req *rq)
{
    while (!dlist_empty(&rq->waits))
        waiter_free(DLIST_ENTRY(rq->waits.next, struct waiter, clink));
}
