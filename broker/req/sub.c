/* SPDX-License-Identifier: MIT */
/* Subscriptions; see sub.h. Serving is O(subscriptions scanned + messages pushed). */
#include "req/sub.h"

#include <string.h>

#include "core/broker.h"
#include "net/conn.h"
#include "core/delivery.h"
#include "util/dlist.h"
#include "ops.h"
#include "core/queue.h"
#include "req/reply.h"
#include "net/server.h"
#include "slabmq_protocol.h"

struct sub {
    struct conn *c;      /* subscriber */
    struct queue *q;     /* queue subscribed to */
    uint64_t id;         /* subscription id on c */
    uint32_t credit;     /* most of its messages in flight at once */
    uint32_t slot;       /* index in c->subs->s and c->held.sub_out */
    struct dlink qlink;  /* in q->subs */
};

/* A connection's subscriptions, allocated at its first SUBSCRIBE. */
struct subtab {
    struct sub *s[CONN_MAX_SUBS];
    uint32_t out[CONN_MAX_SUBS]; /* the holder's sub_out: messages in flight per slot */
    uint32_t n;
    uint64_t next_id;
};

int64_t
sub_start(struct conn *c, struct queue *q, uint32_t credit)
{
    struct broker *b = &c->srv->b;
    struct subtab *t = c->subs;
    struct sub *u;
    uint32_t slot;

    if (!t) {
        if (!(t = slab_alloc_reserved(&b->rec, sizeof(*t))))
            return -1;
        memset(t, 0, sizeof(*t));
        c->subs = t;
        c->held.sub_out = t->out;
    }
    if (t->n >= CONN_MAX_SUBS)
        return 0;
    for (slot = 0; t->s[slot]; slot++)
        ;
    if (!(u = slab_alloc_reserved(&b->rec, sizeof(*u))))
        return -1;
    u->c = c;
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
    struct conn *c = u->c;
    struct subtab *t = c->subs;

    if (t->out[u->slot]) {
        for (struct dlink *l = c->held.list.next; l != &c->held.list; l = l->next) {
            struct delivery *d = DLIST_ENTRY(l, struct delivery, slink);
            if (d->sub == u->slot + 1)
                d->sub = 0;
        }
        t->out[u->slot] = 0;
    }
    dlist_unlink(&u->qlink);
    t->s[u->slot] = NULL;
    t->n--;
    slab_free(&c->srv->b.rec, u, sizeof(*u));
}

int
sub_stop(struct conn *c, uint64_t id)
{
    struct subtab *t = c->subs;

    for (uint32_t i = 0; t && i < CONN_MAX_SUBS; i++)
        if (t->s[i] && t->s[i]->id == id) {
            sub_free(t->s[i]);
            return 0;
        }
    return -1;
}

/* Messages u may be pushed now: its free credit within the connection's window; 0 while
 * its connection's output is backed up. */
static uint32_t
sub_room(struct sub *u, const struct broker *b)
{
    struct conn *c = u->c;
    uint32_t free_credit = u->credit - c->subs->out[u->slot];
    uint32_t window = c->held.n < b->cfg.max_inflight ? b->cfg.max_inflight - c->held.n : 0;

    if (c->closing)
        return 0;
    if (c->out.len > SUB_OUT_MAX) {
        c->sub_blocked = 1;
        return 0;
    }
    return free_credit < window ? free_credit : window;
}

void
sub_serve(struct server *s, struct queue *q)
{
    struct broker *b = &s->b;

    while (!q->paused && queue_ready(q) > 0 && !dlist_empty(&q->subs)) {
        struct sub *u = NULL;
        uint32_t room = 0;
        uint32_t n;
        if (broker_over_limit(b)) { /* pushes would need memory: serve when it drains */
            if (dlist_empty(&q->wake))
                dlist_push_back(&b->wake, &q->wake);
            return;
        }
        for (struct dlink *l = q->subs.next; l != &q->subs; l = l->next) {
            struct sub *x = DLIST_ENTRY(l, struct sub, qlink);
            if ((room = sub_room(x, b)) > 0) {
                u = x;
                break;
            }
        }
        if (!u)
            return; /* all out of credit: settling gives it back and wakes the queue */
        n = queue_take(b, q, &u->c->held, room, b->cfg.max_fetch_bytes, b->scratch);
        if (n == 0)
            return; /* memory limit */
        for (uint32_t i = 0; i < n; i++)
            b->scratch[i]->sub = (uint8_t)(u->slot + 1);
        u->c->subs->out[u->slot] += n;
        reply_deliveries(u->c, SMQ_OP_DELIVER, u->id, b->scratch, n);
        dlist_unlink(&u->qlink); /* served: to the back */
        dlist_push_back(&q->subs, &u->qlink);
        conn_write_batched(u->c);
    }
}

/* End u with a DELIVER error frame. */
static void
sub_end(struct sub *u, unsigned code, const char *msg)
{
    struct conn *c = u->c;

    reply_error(c, SMQ_OP_DELIVER, u->id, code, "%s", msg);
    sub_free(u);
    conn_want_write(c);
}

void
sub_queue_gone(struct queue *q)
{
    while (!dlist_empty(&q->subs))
        sub_end(DLIST_ENTRY(q->subs.next, struct sub, qlink), SLABMQ_ERR_QUEUE_DELETED,
                "the queue was deleted");
}

void
sub_conn_drained(struct conn *c)
{
    struct broker *b = &c->srv->b;

    c->sub_blocked = 0;
    for (uint32_t i = 0; c->subs && i < CONN_MAX_SUBS; i++) {
        struct queue *q = c->subs->s[i] ? c->subs->s[i]->q : NULL;
        if (q && dlist_empty(&q->wake))
            dlist_push_back(&b->wake, &q->wake);
    }
}

static void
end_all(struct conn *c, int frames)
{
    struct subtab *t = c->subs;

    if (!t)
        return;
    for (uint32_t i = 0; i < CONN_MAX_SUBS; i++)
        if (t->s[i]) {
            if (frames)
                sub_end(t->s[i], SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
            else
                sub_free(t->s[i]);
        }
}

void
sub_cancel_conn(struct conn *c)
{
    end_all(c, 0);
    if (c->subs) {
        c->held.sub_out = NULL;
        slab_free(&c->srv->b.rec, c->subs, sizeof(*c->subs));
        c->subs = NULL;
    }
}

uint32_t
sub_conn_count(const struct conn *c)
{
    return c->subs ? c->subs->n : 0;
}

void
sub_shutdown_conn(struct conn *c)
{
    end_all(c, 1);
}

uint64_t
sub_credit(const struct queue *q)
{
    uint64_t total = 0;

    for (const struct dlink *l = q->subs.next; l != &q->subs; l = l->next) {
        const struct sub *u = DLIST_ENTRY(l, struct sub, qlink);
        const struct conn *c = u->c;
        uint32_t free_credit = u->credit - c->subs->out[u->slot];
        uint32_t window = c->srv->b.cfg.max_inflight > c->held.n
                              ? c->srv->b.cfg.max_inflight - c->held.n
                              : 0;
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
