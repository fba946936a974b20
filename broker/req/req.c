/* SPDX-License-Identifier: MIT */
/* The request context's set-up; see req.h. O(1). */
#include "req/req.h"

#include <stdio.h>
#include <string.h>

#include "auth/verify.h"
#include "core/broker.h"
#include "core/queue.h"
#include "req/confirm.h"
#include "req/sub.h"
#include "req/wait.h"

void
req_server_init(struct req_server *srv, struct broker *b, const struct req_ops *ops)
{
    memset(srv, 0, sizeof(*srv));
    srv->b = b;
    srv->ops = ops;
    dlist_init(&srv->confirm_reqs);
}

void
req_init(struct req *rq, struct req_server *srv, uint64_t id, const char *peer)
{
    memset(rq, 0, sizeof(*rq));
    rq->b = srv->b;
    rq->srv = srv;
    rq->id = id;
    snprintf(rq->peer, sizeof(rq->peer), "%s", peer);
    obuf_init(&rq->out, &srv->b->res);
    dlist_init(&rq->held.list);
    dlist_init(&rq->waits);
}

void
req_deinit(struct req *rq)
{
    struct broker *b = rq->b;

    if (rq->auth_slot) /* its check's result must not find rq freed */
        verify_cancel(rq->srv->verify, rq->auth_slot);
    confirm_req_gone(rq);
    wait_cancel_req(rq);
    sub_cancel_req(rq);
    broker_defer_wake(b);
    while (!dlist_empty(&rq->held.list)) {
        struct delivery *d = DLIST_ENTRY(rq->held.list.next, struct delivery, slink);
        queue_requeue(b, d);
    }
    broker_flush_wake(b);
    obuf_deinit(&rq->out);
}

void
req_serve_queue(void *ctx, struct queue *q)
{
    wait_serve(ctx, q);
    sub_serve(ctx, q);
}

void
req_queue_gone(void *ctx, struct queue *q)
{
    wait_queue_gone(ctx, q);
    sub_queue_gone(q);
}
