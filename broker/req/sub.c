/* SPDX-License-Identifier: MIT */
/* Subscriptions; see sub.h. Serving is O(subscriptions scanned + messages pushed). */
#include "req/sub.h"

#include <string.h>

#include "core/broker.h"
#include "req/req.h"
#include "core/delivery.h"
#include "util/dlist.h"
#include "ops.h"
#include "core/queue.h"
#include "req/reply.h"
#include "slabmq_protocol.h"

struct sub {
    struct req *rq;      /* subscriber */
    struct queue *q;     /* queue subscribed to */
    uint64_t id;         /* subscription id on rq */
    uint32_t credit;     /* most of its messages in flight at once */
    uint32_t slot;       /* index in rq->subs->s and rq->held.sub_out */
    struct dlink qlink;  /* in q->subs */
};

/* A connection's subscriptions, allocated at its first SUBSCRIBE. */
struct subtab {
    struct sub *s[REQ_MAX_SUBS];
    uint32_t out[REQ_MAX_SUBS]; /* the holder's sub_out: messages in flight per slot */
    uint32_t n;
    uint64_t next_id;
};

int64_t
sub_start(struct req *rq, struct queue *q, uint32_t credit)
{
    struct broker *b = rq->b;
    struct subtab *t = rq->subs;
    struct sub *u;
    uint32_t slot;

    if (!t) {
        if (!(t = slab_alloc_reserved(&b->rec, sizeof(*t))))
            return -1;
        memset(t, 0, sizeof(*t));
        rq->subs = t;
        rq->held.sub_out = t->out;
    }
    if (t->n >= REQ_MAX_SUBS)
        return 0;
    for (slot = 0; t->s[slot]; slot++)
        ;
    if (!(u = slab_alloc_reserved(&b->rec, sizeof(*u))))
        return -1;
    u->rq = rq;
    u->q = q;
    u->id = ++t->next_id;
    u->credit = credit;
    u->slot = slot;
    t->s[slot] = u;
    t->out[slot] = 0;
    t->n++;
    dlist_push_back(&q->subs, &u->qlink);
    return (int64_t)u->id;
}

/* Forget u: its deliveries stay in flight, held by the connection, but no longer count
 * against a subscription. */
static void
sub_free(struct sub *u)
{
    struct req *rq = u->rq;
    struct subtab *t = rq->subs;

    if (t->out[u->slot]) {
        for (struct dlink *l = rq->held.list.next; l != &rq->held.list; l = l->next) {
            struct delivery *d = DLIST_ENTRY(l, struct delivery, slink);
            if (d->sub == u->slot + 1)
                d->sub = 0;
        }
        t->out[u->slot] = 0;
    }
    dlist_unlink(&u->qlink);
    t->s[u->slot] = NULL;
    t->n--;
    slab_free(&rq->b->rec, u, sizeof(*u));
}

int
sub_stop(struct req *rq, uint64_t id)
{
    struct subtab *t = rq->subs;

    for (uint32_t i = 0; t && i < REQ_MAX_SUBS; i++)
        if (t->s[i] && t->s[i]->id == id) {
            sub_free(t->s[i]);
            return 0;
        }
    return -1;
}

/* Messages u may be pushed now: its free credit within the connection's window; 0 while
 * its connection's output is backed up. */
static uint32_t
sub_room(struct sub *u)
{
    struct req *rq = u->rq;
    uint32_t free_credit = u->credit - rq->subs->out[u->slot];
    uint32_t window = req_window(rq);

    if (rq->closing)
        return 0;
    if (rq->out.len > SUB_OUT_MAX) {
        rq->sub_blocked = 1;
        return 0;
    }
    return free_credit < window ? free_credit : window;
}

void
sub_serve(struct req_server *s, struct queue *q)
{
    struct broker *b = s->b;

    while (!q->paused && queue_ready(q) > 0 && !dlist_empty(&q->subs)) {
        struct sub *u = NULL;
        uint32_t room = 0;
        uint32_t n;
        if (broker_over_limit(b)) { /* pushes would need memory: serve when it drains */
            queue_park(b, q);
            return;
        }
        for (struct dlink *l = q->subs.next; l != &q->subs; l = l->next) {
            struct sub *x = DLIST_ENTRY(l, struct sub, qlink);
            if ((room = sub_room(x)) > 0) {
                u = x;
                break;
            }
        }
        if (!u)
            return; /* all out of credit: settling gives it back and wakes the queue */
        n = queue_take(b, q, &u->rq->held, room, b->cfg.max_fetch_bytes, b->scratch);
        if (n == 0)
            return; /* memory limit */
        for (uint32_t i = 0; i < n; i++)
            b->scratch[i]->sub = (uint8_t)(u->slot + 1);
        u->rq->subs->out[u->slot] += n;
        reply_deliveries(u->rq, SMQ_OP_DELIVER, u->id, b->scratch, n);
        dlist_unlink(&u->qlink); /* served: to the back */
        dlist_push_back(&q->subs, &u->qlink);
        req_write_batched(u->rq);
    }
}

/* End u with a DELIVER error frame. */
static void
sub_end(struct sub *u, unsigned code, const char *msg)
{
    struct req *rq = u->rq;

    reply_error(rq, SMQ_OP_DELIVER, u->id, code, "%s", msg);
    sub_free(u);
    req_want_write(rq);
}

void
sub_queue_gone(struct queue *q)
{
    while (!dlist_empty(&q->subs))
        sub_end(DLIST_ENTRY(q->subs.next, struct sub, qlink), SLABMQ_ERR_QUEUE_DELETED,
                "the queue was deleted");
}

void
sub_req_drained(struct req *rq)
{
    struct broker *b = rq->b;

    rq->sub_blocked = 0;
    for (uint32_t i = 0; rq->subs && i < REQ_MAX_SUBS; i++) {
        struct queue *q = rq->subs->s[i] ? rq->subs->s[i]->q : NULL;
        if (q)
            queue_park(b, q);
    }
}

static void
end_all(struct req *rq, int frames)
{
    struct subtab *t = rq->subs;

    if (!t)
        return;
    for (uint32_t i = 0; i < REQ_MAX_SUBS; i++)
        if (t->s[i]) {
            if (frames)
                sub_end(t->s[i], SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
            else
                sub_free(t->s[i]);
        }
}

void
sub_cancel_req(struct req *rq)
{
    end_all(rq, 0);
    if (rq->subs) {
        rq->held.sub_out = NULL;
        slab_free(&rq->b->rec, rq->subs, sizeof(*rq->subs));
        rq->subs = NULL;
    }
}

uint32_t
sub_req_count(const struct req *rq)
{
    return rq->subs ? rq->subs->n : 0;
}

void
sub_shutdown_req(struct req *rq)
{
    end_all(rq, 1);
}

uint64_t
sub_credit(const struct queue *q)
{
    uint64_t total = 0;

    for (const struct dlink *l = q->subs.next; l != &q->subs; l = l->next) {
        const struct sub *u = DLIST_ENTRY(l, struct sub, qlink);
        const struct req *rq = u->rq;
        uint32_t free_credit = u->credit - rq->subs->out[u->slot];
        uint32_t window = req_window(rq);
        total += free_credit < window ? free_credit : window;
    }
    return total;
}

uint64_t
sub_count(const struct queue *q)
{
    uint64_t n = 0;

    for (const struct dlink *l = q->subs.next; l != &q->subs; l = l->next)
        n++;
    return n;
}
