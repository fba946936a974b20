/* SPDX-License-Identifier: MIT */
/* Push consumers: SUBSCRIBE and UNSUBSCRIBE (the pushing itself is in sub.c). */
#include "core/broker.h"
#include "req/cmd.h"
#include "req/req.h"
#include "core/queue.h"
#include "req/reply.h"
#include "slabmq_protocol.h"
#include "req/sub.h"

/* [queue, credit] -> [subscription_id] */
void
cmd_subscribe(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    const unsigned op = SMQ_OP_SUBSCRIBE;
    const char *name;
    uint32_t len;
    uint64_t credit;
    int created;
    struct queue *q;
    int64_t id;

    if (cmd_expect_args(rq, op, rid, nargs, 2, 2) || cmd_read_name(rq, op, rid, r, &name, &len)
        || cmd_read_uint(rq, op, rid, r, "credit", 1, b->cfg.max_inflight, &credit)
        || cmd_args_end(rq, op, rid, r))
        return;
    if (!(q = broker_queue_get(b, name, len, &created)) || (id = sub_start(rq, q, (uint32_t)credit)) < 0) {
        reply_error(rq, op, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
        return;
    }
    if (id == 0) {
        reply_error(rq, op, rid, SLABMQ_ERR_LIMIT, "at most %d subscriptions per connection",
                    REQ_MAX_SUBS);
        return;
    }
    reply_uint(rq, op, rid, (uint64_t)id);
    queue_wake(b, q); /* pushes follow the reply */
}

/* [subscription_id] -> [] */
void
cmd_unsubscribe(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    const unsigned op = SMQ_OP_UNSUBSCRIBE;
    uint64_t id;

    if (cmd_expect_args(rq, op, rid, nargs, 1, 1)
        || cmd_read_uint(rq, op, rid, r, "subscription_id", 1, UINT64_MAX, &id)
        || cmd_args_end(rq, op, rid, r))
        return;
    if (sub_stop(rq, id)) {
        reply_error(rq, op, rid, SLABMQ_ERR_NOT_FOUND, "no subscription %llu on this connection",
                    (unsigned long long)id);
        return;
    }
    reply_ok(rq, op, rid);
}
