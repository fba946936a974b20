/* SPDX-License-Identifier: MIT */
/* The journal seam (core/journal.h): a recording journal checks the exact records the core
 * emits for declare, publish with options, a producer id, fetch + ack, NACK with a delay, dead-lettering at
 * the delivery limit, TTL expiry, purge and delete; that a queue that is not durable emits
 * nothing; and that replaying records gives the same state. No store, no sockets. */
#include <string.h>

#include "core/broker.h"
#include "core/dedup.h"
#include "core/delivery.h"
#include "core/journal.h"
#include "core/queue.h"
#include "mem/segment.h"
#include "t.h"

/* A record as seen, with copies of what it points to. */
struct seen {
    struct journal_rec r;
    char name[SMQ_NAME_MAX + 1]; /* QUEUE_PUT: the queue's name */
    struct journal_qsettings qs; /* QUEUE_PUT */
    char body[64];               /* MSG_PUT: the payload (short ones) */
    char src[SMQ_NAME_MAX + 1];  /* a dead letter's source */
};

#define MAX_SEEN 64

struct recorder {
    struct seen seen[MAX_SEEN];
    unsigned n, read; /* recorded; checked by next() */
};

static void
record(void *ctx, const struct journal_rec *r)
{
    struct recorder *rec = ctx;
    struct seen *s;

    T_ASSERT(rec->n < MAX_SEEN);
    s = &rec->seen[rec->n++];
    memset(s, 0, sizeof(*s));
    s->r = *r;
    if (r->name)
        memcpy(s->name, r->name, r->name_len);
    if (r->qs)
        s->qs = *r->qs;
    if (r->kind == JOURNAL_MSG_PUT) {
        T_ASSERT(r->len < sizeof(s->body));
        if (r->data)
            memcpy(s->body, r->data, r->len);
        else
            seg_copy_to(r->seg, r->off, s->body, r->len);
    }
    if (r->src)
        memcpy(s->src, r->src, r->srclen);
}

static const struct journal_ops recorder_ops = {record};

struct fixture {
    struct broker b;
    struct recorder rec;
    struct journal j;
    struct holder owner;
};

static void
setup(struct fixture *f)
{
    struct broker_config c;
    char err[128];

    broker_config_defaults(&c);
    c.max_memory = (size_t)64 << 20;
    T_EQ_INT(broker_init(&f->b, &c, err, sizeof(err)), 0);
    memset(&f->rec, 0, sizeof(f->rec));
    f->j.ops = &recorder_ops;
    f->j.ctx = &f->rec;
    f->j.confirm = 1;
    f->b.journal = &f->j;
    dlist_init(&f->owner.list);
    f->owner.n = 0;
}

static void
teardown(struct fixture *f)
{
    f->b.journal = NULL;
    broker_deinit(&f->b);
}

/* The next record, which must be of kind k. */
static const struct seen *
next(struct fixture *f, enum journal_kind k)
{
    const struct seen *s;

    T_ASSERT(f->rec.read < f->rec.n);
    s = &f->rec.seen[f->rec.read++];
    T_EQ_INT(s->r.kind, k);
    T_EQ_U64(s->r.now_ms, f->b.now_ms);
    return s;
}

/* Nothing was recorded beyond what was checked. */
static void
no_more(struct fixture *f)
{
    T_EQ_INT(f->rec.n, f->rec.read);
}

static uint64_t
publish(struct fixture *f, struct queue *q, const char *s, const struct pub_opts *o)
{
    uint64_t id;

    T_EQ_INT(queue_publish_opts(&f->b, q, s, (uint32_t)strlen(s), o, &id), 0);
    return id;
}

static struct delivery *
take_one(struct fixture *f, struct queue *q, uint64_t id)
{
    struct delivery *out[1];

    T_EQ_INT(queue_take(&f->b, q, &f->owner, 1, 1 << 20, out), 1);
    T_EQ_U64(out[0]->id, id);
    return out[0];
}

static void
check_msg_put(const struct seen *s, const struct queue *q, uint64_t id, const char *body)
{
    T_EQ_U64(s->r.sid, q->sid);
    T_EQ_U64(s->r.id, id);
    T_EQ_U64(s->r.len, strlen(body));
    T_EQ_STR(s->body, body);
}

static void
test_record_sequence(void)
{
    struct fixture f;
    struct pub_opts o = {0};
    const struct seen *s;
    struct queue *q, *dq;
    struct delivery *d;
    uint64_t a, m, c, p1, t0;
    int created;

    setup(&f);
    f.b.now_ms = t0 = 1000000;

    /* declare: durable by default with a journal, settings as they are */
    q = broker_queue_get(&f.b, "q", 1, &created);
    T_ASSERT(q && created && q->durable);
    T_EQ_INT(q->confirm, 1);
    s = next(&f, JOURNAL_QUEUE_PUT);
    T_EQ_U64(s->r.sid, q->sid);
    T_EQ_STR(s->name, "q");
    T_EQ_INT(s->qs.version, JOURNAL_QSETTINGS_VERSION);
    T_EQ_INT(s->qs.confirm, 1);
    /* a settings change (DECLARE with options does this) */
    q->max_deliveries = 2;
    journal_queue_put(&f.b, q);
    s = next(&f, JOURNAL_QUEUE_PUT);
    T_EQ_INT(s->qs.max_deliveries, 2);
    no_more(&f);

    /* plain publish, fetch (no record: a delivery is not durable), ack */
    a = publish(&f, q, "plain", NULL);
    s = next(&f, JOURNAL_MSG_PUT);
    check_msg_put(s, q, a, "plain");
    T_EQ_INT(s->r.prio, 0);
    T_EQ_U64(s->r.expires_ms, 0);
    T_EQ_U64(s->r.due_ms, 0);
    /* its producer id remembered (PUBLISH does this after the publish) */
    q->dedup_window = DEDUP_WINDOW_MIN;
    T_EQ_INT(dedup_insert(&f.b, q, "pid-1", 5, a), 0);
    s = next(&f, JOURNAL_DEDUP);
    T_EQ_U64(s->r.sid, q->sid);
    T_EQ_U64(s->r.id, a);
    T_EQ_U64(s->r.pid_len, 5);
    T_ASSERT(memcmp(s->r.pid, "pid-1", 5) == 0);
    d = take_one(&f, q, a);
    no_more(&f);
    queue_ack(&f.b, d);
    s = next(&f, JOURNAL_MSG_DEL);
    T_EQ_U64(s->r.sid, q->sid);
    T_EQ_U64(s->r.id, a);
    T_EQ_U64(s->r.len, 5);
    no_more(&f);

    /* publish with options; NACK with a delay: the outcome, not the verb */
    o.prio = 3;
    o.ttl_ms = 60000;
    m = publish(&f, q, "opts", &o);
    s = next(&f, JOURNAL_MSG_PUT);
    check_msg_put(s, q, m, "opts");
    T_EQ_INT(s->r.prio, 3);
    T_EQ_U64(s->r.expires_ms, t0 + 60000);
    T_EQ_U64(s->r.deliveries, 0);
    d = take_one(&f, q, m);
    queue_nack(&f.b, d, 250);
    s = next(&f, JOURNAL_MSG_SET);
    T_EQ_U64(s->r.id, m);
    T_EQ_U64(s->r.sid, q->sid);
    T_EQ_U64(s->r.deliveries, 1);
    T_EQ_U64(s->r.due_ms, t0 + 250);
    T_EQ_U64(s->r.expires_ms, t0 + 60000);
    T_EQ_INT(s->r.prio, 3);
    T_EQ_INT(s->r.reason, 0);
    /* the delay ends: nothing to write (the stored due time has passed too) */
    f.b.now_ms = t0 + 250;
    broker_run_timers(&f.b);
    no_more(&f);

    /* the second delivery comes back: dead-lettered at the delivery limit, into q.dlq,
     * which is declared on the way (its settings once made a dead-letter queue) */
    d = take_one(&f, q, m);
    queue_nack(&f.b, d, 0);
    dq = broker_queue_find(&f.b, "q.dlq", 5);
    T_ASSERT(dq && dq->durable);
    s = next(&f, JOURNAL_QUEUE_PUT);
    T_EQ_U64(s->r.sid, dq->sid);
    T_EQ_STR(s->name, "q.dlq");
    s = next(&f, JOURNAL_QUEUE_PUT);
    T_EQ_U64(s->r.sid, dq->sid);
    T_EQ_INT(s->qs.max_deliveries, 0);
    T_EQ_INT(s->qs.dlq_mode, QUEUE_DLQ_NONE);
    s = next(&f, JOURNAL_MSG_SET);
    T_EQ_U64(s->r.id, m);
    T_EQ_U64(s->r.sid, dq->sid);
    T_EQ_INT(s->r.reason, DL_DELIVERY_LIMIT);
    T_EQ_U64(s->r.dl_deliveries, 2);
    T_EQ_STR(s->src, "q");
    T_EQ_U64(s->r.deliveries, 0);
    T_EQ_INT(s->r.prio, 0);
    T_EQ_U64(s->r.expires_ms, 0);
    T_EQ_U64(s->r.due_ms, 0);
    no_more(&f);

    /* TTL expiry of a ready message: moved to the dead-letter queue */
    o.prio = 0;
    o.ttl_ms = 50;
    c = publish(&f, q, "short", &o);
    s = next(&f, JOURNAL_MSG_PUT);
    check_msg_put(s, q, c, "short");
    T_EQ_U64(s->r.expires_ms, f.b.now_ms + 50);
    f.b.now_ms += 50;
    broker_run_timers(&f.b);
    s = next(&f, JOURNAL_MSG_SET);
    T_EQ_U64(s->r.id, c);
    T_EQ_U64(s->r.sid, dq->sid);
    T_EQ_INT(s->r.reason, DL_EXPIRED);
    T_EQ_STR(s->src, "q");
    no_more(&f);

    /* purge: every ready message gone, one record each */
    p1 = publish(&f, q, "p1", NULL);
    publish(&f, q, "p2", NULL);
    next(&f, JOURNAL_MSG_PUT);
    next(&f, JOURNAL_MSG_PUT);
    T_EQ_U64(queue_purge(&f.b, q), 2);
    s = next(&f, JOURNAL_MSG_DEL);
    T_EQ_U64(s->r.id, p1);
    s = next(&f, JOURNAL_MSG_DEL);
    T_EQ_U64(s->r.id, p1 + 1);
    no_more(&f);

    /* delete: one record for the queue, none for the messages it held */
    T_EQ_U64(broker_queue_delete(&f.b, dq), 2);
    s = next(&f, JOURNAL_QUEUE_DEL);
    T_EQ_U64(s->r.sid, dq->sid);
    no_more(&f);
    (void)broker_queue_delete(&f.b, q);
    next(&f, JOURNAL_QUEUE_DEL);
    no_more(&f);
    teardown(&f);
}

/* A queue that is not durable costs no journal call: publish, take, NACK, ack, purge. */
static void
test_not_durable_emits_nothing(void)
{
    struct fixture f;
    struct pub_opts o = {0};
    struct queue *q;
    struct delivery *d;
    uint64_t id;
    int created;

    setup(&f);
    q = broker_queue_get(&f.b, "mem", 3, &created);
    T_ASSERT(q && created);
    next(&f, JOURNAL_QUEUE_PUT);
    journal_queue_del(&f.b, q); /* DECLARE durable=false does this, then clears the flag */
    next(&f, JOURNAL_QUEUE_DEL);
    q->durable = 0;
    id = publish(&f, q, "x", NULL);
    q->dedup_window = DEDUP_WINDOW_MIN;
    T_EQ_INT(dedup_insert(&f.b, q, "pid", 3, id), 0);
    o.prio = 2;
    publish(&f, q, "y", &o);
    d = take_one(&f, q, id + 1);
    queue_nack(&f.b, d, 10);
    d = take_one(&f, q, id);
    queue_ack(&f.b, d);
    queue_purge(&f.b, q);
    broker_queue_delete(&f.b, q);
    no_more(&f);
    teardown(&f);
}

/* The records of a publish replayed into another broker (what recovery does) give the same
 * queue and message state, at that broker's clock. */
static void
test_replay_gives_the_same_state(void)
{
    struct fixture f, g;
    struct pub_opts o = {0};
    struct queue *q, *q2;
    struct delivery *d;
    struct seen *s;
    uint64_t plain, opts;
    int created;

    setup(&f);
    setup(&g);
    f.b.now_ms = 5000;
    g.b.journal = NULL; /* replaying writes nothing */
    g.b.now_ms = 90000;
    q = broker_queue_get(&f.b, "r", 1, &created);
    q->max_deliveries = 7;
    q->ttl_ms = 0;
    journal_queue_put(&f.b, q);
    plain = publish(&f, q, "plain", NULL);
    o.prio = 4;
    o.ttl_ms = 60000;
    o.delay_ms = 500;
    opts = publish(&f, q, "opts", &o);
    T_EQ_INT(f.rec.n, 4);

    s = &f.rec.seen[1]; /* the settings as changed */
    s->r.name = s->name;
    s->r.qs = &s->qs;
    q2 = journal_replay_queue(&g.b, &s->r);
    T_ASSERT(q2 && q2->durable);
    T_EQ_U64(q2->sid, q->sid);
    T_EQ_INT(q2->max_deliveries, 7);
    T_ASSERT(g.b.next_sid > q->sid);
    for (unsigned i = 2; i < 4; i++) {
        s = &f.rec.seen[i];
        s->r.data = s->body;
        s->r.now_ms = f.b.now_ms;
        T_EQ_INT(journal_replay_msg(&g.b, q2, &s->r), 0);
    }
    T_EQ_U64(g.b.next_id, opts + 1);
    T_EQ_U64(q2->nfresh, 1);
    d = dtable_find(&g.b.dels, opts);
    T_ASSERT(d && d->q == q2);
    T_EQ_INT(d->state, DLV_DELAYED);
    T_EQ_INT(d->prio, 4);
    T_EQ_U64(d->due_ms, g.b.now_ms + 500);
    T_ASSERT(d->ext && d->ext->expires_ms == g.b.now_ms + 60000);
    T_ASSERT(dtable_find(&g.b.dels, plain) == NULL); /* a plain message has no record */
    teardown(&g);
    teardown(&f);
}

static const struct t_case cases[] = {
    T_CASE(test_record_sequence),
    T_CASE(test_not_durable_emits_nothing),
    T_CASE(test_replay_gives_the_same_state),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
