/* SPDX-License-Identifier: MIT */
/* Queue logic without sockets: publish order, take/ack, retry-first redelivery, NACK delays
 * and visibility timeouts through the timer heap (the clock is set by hand), purge, batch
 * rollback, chained large payloads, and memory returning to the slab. */
#include "broker.h"
#include "delivery.h"
#include "obuf.h"
#include "queue.h"
#include "reservoir.h"
#include "segment.h"
#include "t.h"

struct fixture {
    struct broker b;
    struct queue *q;
    struct holder owner; /* a consumer's in-flight deliveries */
};

static void
setup(struct fixture *f, size_t max_memory)
{
    struct broker_config c;
    char err[128];
    int created;

    broker_config_defaults(&c);
    c.max_memory = max_memory;
    T_EQ_INT(broker_init(&f->b, &c, err, sizeof(err)), 0);
    f->q = broker_queue_get(&f->b, "q", 1, &created);
    T_ASSERT(f->q && created);
    dlist_init(&f->owner.list);
    f->owner.n = 0;
}

static void
teardown(struct fixture *f)
{
    broker_deinit(&f->b);
    T_EQ_U64(f->b.mem.used, 0);
}

static uint64_t
publish(struct fixture *f, const char *s)
{
    uint64_t id;

    T_EQ_INT(queue_publish(&f->b, f->q, s, (uint32_t)strlen(s), &id), 0);
    return id;
}

/* Payload of a delivery as a string (short payloads only). */
static const char *
payload(const struct delivery *d)
{
    static char buf[256];
    uint32_t n = seg_copy_to(d->seg, d->off, buf, sizeof(buf) - 1);

    buf[n] = '\0';
    return buf;
}

static void
test_fifo_take_ack(void)
{
    struct fixture f;
    struct delivery *out[10];
    uint64_t first;

    setup(&f, 64 << 20);
    first = publish(&f, "one");
    publish(&f, "two");
    publish(&f, "three");
    T_EQ_U64(queue_ready(f.q), 3);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 2, 1 << 20, out), 2);
    T_EQ_STR(payload(out[0]), "one");
    T_EQ_STR(payload(out[1]), "two");
    T_EQ_U64(out[0]->id, first);
    T_EQ_U64(out[1]->id, first + 1);
    T_EQ_INT(out[0]->deliveries, 1);
    T_EQ_U64(f.q->ninflight, 2);
    T_ASSERT(dtable_find(&f.b.dels, first) == out[0]);
    queue_ack(&f.b, out[0]);
    queue_ack(&f.b, out[1]);
    T_ASSERT(dtable_find(&f.b.dels, first) == NULL);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 10, 1 << 20, out), 1);
    T_EQ_STR(payload(out[0]), "three");
    queue_ack(&f.b, out[0]);
    T_EQ_U64(f.q->c.acked, 3);
    T_EQ_U64(f.b.messages, 0);
    T_EQ_U64(f.q->bytes, 0);
    teardown(&f);
}

static void
test_requeue_goes_first_with_count(void)
{
    struct fixture f;
    struct delivery *out[10];

    setup(&f, 64 << 20);
    publish(&f, "a");
    publish(&f, "b");
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 1, 1 << 20, out), 1);
    queue_requeue(&f.b, out[0]); /* e.g. the consumer disconnected */
    T_ASSERT(dlist_empty(&f.owner.list));
    T_EQ_INT(f.owner.n, 0);
    T_EQ_U64(queue_ready(f.q), 2);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 10, 1 << 20, out), 2);
    T_EQ_STR(payload(out[0]), "a");
    T_EQ_INT(out[0]->deliveries, 2);
    T_EQ_STR(payload(out[1]), "b");
    T_EQ_INT(out[1]->deliveries, 1);
    T_EQ_U64(f.q->c.redelivered, 1);
    teardown(&f);
}

static void
test_visibility_timeout_and_nack_delay(void)
{
    struct fixture f;
    struct delivery *out[10];

    setup(&f, 64 << 20);
    f.q->visibility_ms = 1000;
    publish(&f, "x");
    publish(&f, "y");
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 2, 1 << 20, out), 2);
    queue_nack(&f.b, out[1], 500); /* y: ready again at +500 ms */
    T_EQ_U64(f.q->ndelayed, 1);
    T_EQ_U64(queue_ready(f.q), 0);
    f.b.now_ms += 499;
    broker_run_timers(&f.b);
    T_EQ_U64(queue_ready(f.q), 0);
    f.b.now_ms += 1;
    T_EQ_U64(broker_run_timers(&f.b), out[0]->due_ms); /* x's deadline is next */
    T_EQ_U64(queue_ready(f.q), 1);
    f.b.now_ms += 500; /* x's visibility timeout (1000 ms) has passed */
    T_EQ_U64(broker_run_timers(&f.b), 0);
    T_EQ_U64(queue_ready(f.q), 2);
    T_EQ_U64(f.q->c.timeouts, 1);
    T_ASSERT(dlist_empty(&f.owner.list));
    T_EQ_INT(f.owner.n, 0);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 2, 1 << 20, out), 2);
    T_EQ_STR(payload(out[0]), "y"); /* ready again first */
    T_EQ_STR(payload(out[1]), "x");
    T_EQ_INT(out[1]->deliveries, 2);
    teardown(&f);
}

static void
test_purge_keeps_inflight(void)
{
    struct fixture f;
    struct delivery *out[10];

    setup(&f, 64 << 20);
    for (int i = 0; i < 100; i++)
        publish(&f, "m");
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 3, 1 << 20, out), 3);
    queue_nack(&f.b, out[2], 0);
    T_EQ_U64(queue_purge(&f.b, f.q), 98);
    T_EQ_U64(queue_ready(f.q), 0);
    T_EQ_U64(f.q->ninflight, 2);
    queue_ack(&f.b, out[0]);
    queue_ack(&f.b, out[1]);
    T_EQ_U64(f.b.messages, 0);
    publish(&f, "after");
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 3, 1 << 20, out), 1);
    T_EQ_STR(payload(out[0]), "after");
    teardown(&f);
}

static void
test_batch_rollback(void)
{
    struct fixture f;
    struct queue_mark m;
    struct delivery *out[10];

    setup(&f, 64 << 20);
    publish(&f, "kept");
    queue_mark(f.q, &m);
    for (int i = 0; i < 5000; i++) /* spills over several new segments */
        publish(&f, "rolled back, rolled back");
    queue_rollback(&f.b, f.q, &m);
    T_EQ_U64(queue_ready(f.q), 1);
    T_EQ_U64(f.b.messages, 1);
    T_EQ_U64(f.q->c.published, 1);
    publish(&f, "next");
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 10, 1 << 20, out), 2);
    T_EQ_STR(payload(out[0]), "kept");
    T_EQ_STR(payload(out[1]), "next");
    teardown(&f);
}

/* Payloads above SEG_INLINE_MAX live in chained chunks: byte-exact through copy-out. */
static void
test_large_payload_chain(void)
{
    struct fixture f;
    struct delivery *out[4];
    static uint8_t big[(1 << 20) + 3];
    static uint8_t back[(1 << 20) + 3];
    uint64_t id;
    struct obuf o;
    size_t got = 0;

    setup(&f, 64 << 20);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    T_EQ_INT(queue_publish(&f.b, f.q, big, sizeof(big), &id), 0);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 1, 1 << 20, out), 1);
    T_EQ_U64(seg_copy_to(out[0]->seg, out[0]->off, back, sizeof(back)), sizeof(big));
    T_EQ_MEM(back, big, sizeof(big));
    obuf_init(&o, &f.b.res);
    seg_copy_out(out[0]->seg, out[0]->off, &o);
    T_EQ_U64(o.len, sizeof(big));
    for (struct rbuf *b = o.head; b; b = b->next) {
        T_EQ_MEM(b->data, big + got, b->len);
        got += b->len;
    }
    obuf_deinit(&o);
    queue_ack(&f.b, out[0]);
    teardown(&f);
}

/* Publishing until the limit refuses, then draining, returns the pages. */
static void
test_limit_and_memory_returns(void)
{
    struct fixture f;
    struct delivery *out[256];
    char body[1000];
    uint64_t id;
    uint64_t n = 0;
    uint32_t k;

    memset(body, 'z', sizeof(body));
    setup(&f, 16 << 20);
    while (queue_publish(&f.b, f.q, body, sizeof(body), &id) == 0)
        n++;
    if (n < 9000) /* 16 MiB less 2 MiB headroom, a page each for small classes */
        t_fail(__FILE__, __LINE__, "only %llu messages fit", (unsigned long long)n);
    T_ASSERT(f.b.mem.used <= f.b.mem.limit);
    while ((k = queue_take(&f.b, f.q, &f.owner, 256, 1 << 30, out)) > 0)
        for (uint32_t i = 0; i < k; i++)
            queue_ack(&f.b, out[i]);
    T_EQ_U64(f.q->c.acked, n);
    T_EQ_U64(f.b.messages, 0);
    T_ASSERT(f.q->head == NULL); /* every segment went back to the slab */
    T_EQ_INT(queue_publish(&f.b, f.q, body, sizeof(body), &id), 0);
    teardown(&f);
}

/* A segment pinned by a few unacked messages is compacted: they move, the segment is freed,
 * and their payloads, ids and redelivery survive the move. */
static void
test_compaction_moves_pinned(void)
{
    struct fixture f;
    static struct delivery *out[2000];
    struct delivery *again[200];
    char body[128];
    char want[128];
    uint32_t n;
    size_t pages_before;
    uint64_t kept = 0;

    setup(&f, 64 << 20);
    for (int i = 0; i < 2000; i++) {
        snprintf(body, sizeof(body), "message %04d %080d", i, i);
        T_EQ_INT(queue_publish(&f.b, f.q, body, 99, &(uint64_t){0}), 0);
    }
    n = queue_take(&f.b, f.q, &f.owner, 2000, 1 << 30, out);
    T_EQ_INT(n, 2000);
    pages_before = slab_pages_resident(&f.b.slab);
    for (int i = 0; i < 2000; i++)
        if (i % 10 != 3)
            queue_ack(&f.b, out[i]);
    T_ASSERT(f.q->c.compactions > 0);
    T_ASSERT(f.q->c.moved >= 100);
    T_ASSERT(f.q->mhead != NULL);
    for (int i = 3; i < 2000; i += 10) { /* still readable where they moved to */
        snprintf(want, sizeof(want), "message %04d %080d", i, i);
        T_EQ_MEM(payload(out[i]), want, 99);
        T_ASSERT(dtable_find(&f.b.dels, out[i]->id) == out[i]);
    }
    /* back to the queue and out again: same ids, same bytes */
    for (int i = 3; i < 2000; i += 10)
        queue_nack(&f.b, out[i], 0);
    n = queue_take(&f.b, f.q, &f.owner, 200, 1 << 30, again);
    T_EQ_INT(n, 200);
    for (uint32_t k = 0; k < n; k++) {
        int i = 3 + 10 * (int)k;
        snprintf(want, sizeof(want), "message %04d %080d", i, i);
        T_EQ_U64(again[k]->id, out[i]->id);
        T_EQ_INT(again[k]->deliveries, 2);
        T_EQ_MEM(payload(again[k]), want, 99);
        queue_ack(&f.b, again[k]);
        kept++;
    }
    T_EQ_U64(kept, 200);
    T_EQ_U64(f.b.messages, 0);
    T_ASSERT(f.q->head == NULL && f.q->mhead == NULL);
    T_ASSERT(slab_pages_resident(&f.b.slab) <= pages_before);
    teardown(&f);
}

/* Consumers acking in order: a segment that turns sparse has the rest of its acks on the way,
 * and is freed as they arrive, nothing moved (it used to be compacted at once: a fifth of the
 * messages of a fill-and-drain were copied just before their acks). */
static void
test_in_order_acks_move_nothing(void)
{
    struct fixture f;
    static struct delivery *out[2000];
    char body[128];
    uint32_t n;

    setup(&f, 64 << 20);
    for (int i = 0; i < 2000; i++) {
        snprintf(body, sizeof(body), "message %04d %080d", i, i);
        T_EQ_INT(queue_publish(&f.b, f.q, body, 99, &(uint64_t){0}), 0);
    }
    for (int round = 0; round < 2; round++) { /* two fetches of 1,000, each acked in order */
        n = queue_take(&f.b, f.q, &f.owner, 1000, 1 << 30, out);
        T_EQ_INT(n, 1000);
        for (uint32_t i = 0; i < n; i++)
            queue_ack(&f.b, out[i]);
    }
    T_EQ_U64(f.q->c.compactions, 0);
    T_EQ_U64(f.q->c.moved, 0);
    T_EQ_U64(f.b.messages, 0);
    T_ASSERT(f.q->mhead == NULL);
    teardown(&f);
}

static const struct t_case cases[] = {
    T_CASE(test_compaction_moves_pinned),
    T_CASE(test_in_order_acks_move_nothing),
    T_CASE(test_fifo_take_ack),
    T_CASE(test_requeue_goes_first_with_count),
    T_CASE(test_visibility_timeout_and_nack_delay),
    T_CASE(test_purge_keeps_inflight),
    T_CASE(test_batch_rollback),
    T_CASE(test_large_payload_chain),
    T_CASE(test_limit_and_memory_returns),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
