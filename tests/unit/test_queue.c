/* SPDX-License-Identifier: MIT */
/* Queue logic without sockets: publish order, take/ack, retry-first redelivery, NACK delays
 * and visibility timeouts through the timer heap (the clock is set by hand), purge, batch
 * rollback, chained large payloads, and memory returning to the slab. */
#include "core/broker.h"
#include "core/delivery.h"
#include "mem/obuf.h"
#include "core/queue.h"
#include "mem/reservoir.h"
#include "mem/segment.h"
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


/* Whether g is one of q's segments (main or moved list). */
static int
owns_segment(const struct queue *q, const struct segment *g)
{
    for (const struct segment *s = q->head; s; s = s->next)
        if (s == g)
            return 1;
    for (const struct segment *s = q->mhead; s; s = s->next)
        if (s == g)
            return 1;
    return 0;
}

/* The slab does not poison what it frees, so ASan cannot see a segment used after it went
 * back: check by hand that every list is linked both ways with live counts that match the
 * records, that q->sparse is NULL or one of q's segments, and that every delivery of q points
 * at a live record of its id in one of q's segments. Returns q's live records. */
static uint64_t
check_queue(const struct queue *q)
{
    uint64_t live = 0;
    uint64_t ndel = 0;

    T_ASSERT(q->sparse == NULL || owns_segment(q, q->sparse));
    for (int moved = 0; moved < 2; moved++) {
        const struct segment *prev = NULL;
        for (const struct segment *g = moved ? q->mhead : q->head; g; g = g->next) {
            uint32_t n = 0;
            uint32_t nrec = 0;
            T_ASSERT(g->prev == prev);
            T_EQ_INT(g->moved, moved);
            for (uint32_t off = 0; off < g->used;) {
                struct seg_rec r;
                seg_read(g, off, &r);
                n += !(r.flags & SEG_DEAD);
                nrec++;
                off += r.size;
            }
            T_EQ_U64(n, g->live);
            T_EQ_U64(nrec, g->nrec);
            live += n;
            prev = g;
        }
        T_ASSERT((moved ? q->mtail : q->tail) == prev);
    }
    for (const struct dlink *l = q->deliveries.next; l != &q->deliveries; l = l->next) {
        const struct delivery *d = DLIST_ENTRY(l, struct delivery, qlink);
        struct seg_rec r;
        T_ASSERT(d->q == q);
        T_ASSERT(owns_segment(q, d->seg));
        seg_read(d->seg, d->off, &r);
        T_EQ_U64(r.id, d->id);
        T_ASSERT(!(r.flags & SEG_DEAD));
        ndel++;
    }
    T_EQ_U64(live, q->nfresh + ndel);
    return live;
}

/* Body i of the compaction tests: its own bytes, so a record moved wrongly shows. */
static uint32_t
body_of(int i, char *buf, size_t cap)
{
    memset(buf, 0, cap);
    snprintf(buf, cap, "message %04d %080d", i, i);
    return 99;
}

/* The consumers' deliveries of 2,000 messages of 99 bytes (a 1 KiB, an 8 KiB, then 60 KiB
 * segments), all taken; the first taken one at out[0]. */
static void
fill_and_take(struct fixture *f, struct delivery **out, int n)
{
    char body[128];

    for (int i = 0; i < n; i++)
        T_EQ_INT(queue_publish(&f->b, f->q, body, body_of(i, body, sizeof(body)),
                               &(uint64_t){0}),
                 0);
    T_EQ_INT(queue_take(&f->b, f->q, &f->owner, (uint32_t)n, 1 << 30, out), n);
}

/* Index range [*lo, *hi) of the deliveries in out[0..n) whose records share seg with out[k]. */
static void
same_segment(struct delivery **out, int n, int k, int *lo, int *hi)
{
    *lo = *hi = k;
    while (*lo > 0 && out[*lo - 1]->seg == out[k]->seg)
        (*lo)--;
    while (*hi < n && out[*hi]->seg == out[k]->seg)
        (*hi)++;
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

/* A batch taken together shares one timer entry, and still every message times out at its
 * own deadline: acks of the first and of one in the middle, a TOUCH in the middle (which
 * splits the run), then the deadlines. Before runs, the heap held one entry per message. */
static void
test_batch_shares_a_timer(void)
{
    struct fixture f;
    struct delivery *out[10];
    uint64_t ids[10];
    uint64_t t0;

    setup(&f, 64 << 20);
    f.owner.sub_out = NULL;
    f.q->visibility_ms = 1000;
    for (int i = 0; i < 10; i++)
        publish(&f, "m");
    t0 = f.b.now_ms;
    T_EQ_U64(queue_take(&f.b, f.q, &f.owner, 10, 1 << 20, out), 10);
    for (int i = 0; i < 10; i++)
        ids[i] = out[i]->id;
    T_EQ_U64(f.b.timers.n, 1); /* one entry for the batch */
    T_EQ_U64(f.b.timers.held, 9);
    queue_ack(&f.b, out[0]); /* the entry passes to out[1] */
    queue_ack(&f.b, out[5]);
    T_EQ_U64(f.b.timers.n, 1);
    T_EQ_U64(f.b.timers.held, 7);
    f.b.now_ms += 400;
    queue_touch(&f.b, out[3]); /* runs now: 1-2, 3 (touched), 4 6 7 8 9 */
    T_EQ_U64(f.b.timers.n, 3);
    T_EQ_U64(f.b.timers.held, 5);
    f.b.now_ms = t0 + 999;
    T_EQ_U64(broker_run_timers(&f.b), t0 + 1000);
    T_EQ_U64(f.q->ninflight, 8);
    f.b.now_ms = t0 + 1000; /* every deadline but the touched one's */
    T_EQ_U64(broker_run_timers(&f.b), t0 + 1400);
    T_EQ_U64(f.q->c.timeouts, 7);
    T_EQ_U64(f.q->ninflight, 1);
    T_EQ_U64(f.owner.n, 1);
    T_EQ_U64(DLIST_ENTRY(f.owner.list.next, struct delivery, slink)->id, ids[3]);
    T_EQ_U64(f.b.timers.n, 1);
    T_EQ_U64(f.b.timers.held, 0);
    f.b.now_ms = t0 + 1400;
    T_EQ_U64(broker_run_timers(&f.b), 0);
    T_EQ_U64(f.q->c.timeouts, 8);
    T_EQ_U64(queue_ready(f.q), 8);
    T_EQ_U64(queue_take(&f.b, f.q, &f.owner, 10, 1 << 20, out), 8);
    for (int i = 0; i < 8; i++) {
        T_EQ_U64(out[i]->deliveries, 2);
        T_ASSERT(out[i]->id != ids[0] && out[i]->id != ids[5]);
        queue_ack(&f.b, out[i]);
    }
    T_EQ_U64(f.b.timers.n, 0);
    T_EQ_U64(f.b.timers.held, 0);
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
    char want[128];
    uint32_t n;
    size_t pages_before;
    uint64_t kept = 0;

    setup(&f, 64 << 20);
    fill_and_take(&f, out, 2000);
    pages_before = slab_pages_resident(&f.b.slab);
    for (int i = 0; i < 2000; i++)
        if (i % 10 != 3)
            queue_ack(&f.b, out[i]);
    T_ASSERT(f.q->c.compactions > 0);
    T_ASSERT(f.q->c.moved >= 100);
    T_ASSERT(f.q->mhead != NULL);
    for (int i = 3; i < 2000; i += 10) { /* still readable where they moved to */
        T_EQ_MEM(payload(out[i]), want, body_of(i, want, sizeof(want)));
        T_ASSERT(dtable_find(&f.b.dels, out[i]->id) == out[i]);
    }
    /* back to the queue and out again: same ids, same bytes */
    for (int i = 3; i < 2000; i += 10)
        queue_nack(&f.b, out[i], 0);
    n = queue_take(&f.b, f.q, &f.owner, 200, 1 << 30, again);
    T_EQ_INT(n, 200);
    for (uint32_t k = 0; k < n; k++) {
        int i = 3 + 10 * (int)k;
        uint32_t len = body_of(i, want, sizeof(want));
        T_EQ_U64(again[k]->id, out[i]->id);
        T_EQ_INT(again[k]->deliveries, 2);
        T_EQ_MEM(payload(again[k]), want, len);
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
    for (int i = 0; i < 2000; i++)
        T_EQ_INT(queue_publish(&f.b, f.q, body, body_of(i, body, sizeof(body)), &(uint64_t){0}),
                 0);
    for (int round = 0; round < 2; round++) { /* two fetches of 1,000, each acked in order */
        n = queue_take(&f.b, f.q, &f.owner, 1000, 1 << 30, out);
        T_EQ_INT(n, 1000);
        for (uint32_t i = 0; i < n; i++) {
            queue_ack(&f.b, out[i]);
            if (i % 64 == 0) /* q->sparse is forgotten when its segment is freed */
                check_queue(f.q);
        }
    }
    T_EQ_U64(f.q->c.compactions, 0);
    T_EQ_U64(f.q->c.moved, 0);
    T_EQ_U64(f.b.messages, 0);
    T_ASSERT(f.q->mhead == NULL);
    teardown(&f);
}


/* Body check for the deliveries out[lo..hi) taken by fill_and_take from index base. */
static void
check_bodies(struct delivery **out, int lo, int hi, int base, int keep_mod)
{
    char want[128];

    for (int i = lo; i < hi; i++) {
        if (keep_mod && i % 10 != keep_mod)
            continue;
        body_of(i - base, want, sizeof(want));
        T_EQ_MEM(payload(out[i]), want, 99);
    }
}

/* Ack out[lo..hi) but every tenth (i % 10 == 3): the segment they share turns sparse and
 * waits in q->sparse. Returns that segment. */
static struct segment *
make_pending(struct fixture *f, struct delivery **out, int lo, int hi)
{
    struct segment *g = out[lo]->seg;

    T_ASSERT(g != f->q->tail && g != f->q->mtail);
    for (int i = lo; i < hi; i++)
        if (i % 10 != 3)
            queue_ack(&f->b, out[i]);
    T_ASSERT(f->q->sparse == g);
    T_EQ_U64(f->q->c.compactions, 0);
    check_queue(f->q);
    return g;
}

/* The pending segment is compacted by the death of the only record of the moved-record tail:
 * the tail was empty when its record died, but compaction moves records into it, so it must
 * be kept (queue_segment_died re-reads its live count). */
static void
test_compaction_into_emptied_mtail(void)
{
    struct fixture f;
    static struct delivery *out[2001];
    struct pub_opts o = {.prio = 1};
    struct segment *m;
    int lo;
    int hi;

    setup(&f, 64 << 20);
    T_EQ_INT(queue_publish_opts(&f.b, f.q, "prio", 4, &o, &(uint64_t){0}), 0);
    m = f.q->mtail;
    T_ASSERT(m && m->live == 1);
    T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 1, 1 << 30, out), 1);
    T_EQ_STR(payload(out[0]), "prio");
    fill_and_take(&f, out + 1, 2000);
    same_segment(out, 2001, 1000, &lo, &hi);
    make_pending(&f, out, lo, hi);
    queue_ack(&f.b, out[0]); /* m empties; the pending segment is compacted into it */
    T_EQ_U64(f.q->c.compactions, 1);
    T_ASSERT(f.q->sparse == NULL);
    T_ASSERT(f.q->mtail == m && m->live > 0);
    check_queue(f.q);
    check_bodies(out, lo, hi, 1, 3);
    for (int i = 1; i < 2001; i++)
        if (i < lo || i >= hi || i % 10 == 3)
            queue_ack(&f.b, out[i]);
    check_queue(f.q);
    T_EQ_U64(f.b.messages, 0);
    T_ASSERT(f.q->head == NULL && f.q->mhead == NULL);
    teardown(&f);
}

/* Dead-lettering a message of another segment compacts the pending one; the dead letter and
 * the moved records both stay readable. */
static void
test_dead_letter_compacts_pending(void)
{
    struct fixture f;
    static struct delivery *out[2000];
    struct delivery *dl[4];
    struct queue *dq;
    int lo;
    int hi;

    setup(&f, 64 << 20);
    fill_and_take(&f, out, 2000);
    same_segment(out, 2000, 1000, &lo, &hi);
    make_pending(&f, out, lo, hi);
    T_ASSERT(hi < 2000);
    queue_term(&f.b, out[hi]); /* dies in the next segment: moves to q.dlq */
    T_EQ_U64(f.q->c.compactions, 1);
    T_ASSERT(f.q->sparse == NULL);
    dq = broker_queue_find(&f.b, "q.dlq", 5);
    T_ASSERT(dq != NULL);
    check_queue(f.q);
    check_queue(dq);
    check_bodies(out, lo, hi, 0, 3);
    T_EQ_INT(queue_take(&f.b, dq, &f.owner, 4, 1 << 30, dl), 1);
    T_ASSERT(dl[0] == out[hi]);
    check_bodies(out, hi, hi + 1, 0, 0);
    for (int i = 0; i < 2000; i++)
        if (i < lo || i >= hi || i % 10 == 3)
            queue_ack(&f.b, out[i]);
    check_queue(f.q);
    check_queue(dq);
    T_EQ_U64(f.b.messages, 0);
    teardown(&f);
}

/* PURGE destroying ready messages in several segments, among them the pending one's, then
 * the queue deleted while a segment is pending: nothing dangles, nothing leaks. */
static void
test_pending_then_purge_and_delete(void)
{
    struct fixture f;
    static struct delivery *out[2000];
    int lo;
    int hi;

    setup(&f, 64 << 20);
    fill_and_take(&f, out, 2000);
    same_segment(out, 2000, 1000, &lo, &hi);
    make_pending(&f, out, lo, hi);
    for (int i = 0; i < 2000; i += 7) /* ready again: PURGE removes these */
        if (i < lo || i >= hi || i % 10 == 3)
            queue_nack(&f.b, out[i], (uint64_t)(i % 2) * 1000);
    queue_purge(&f.b, f.q);
    check_queue(f.q);
    T_ASSERT(f.q->c.compactions >= 1);
    same_segment(out, 2000, 1500, &lo, &hi); /* another sparse segment waits... */
    for (int i = lo; i < hi; i++)
        if (i % 10 != 3 && i % 7 != 0)
            queue_ack(&f.b, out[i]);
    check_queue(f.q);
    T_ASSERT(f.q->sparse != NULL);
    broker_queue_delete(&f.b, f.q); /* ...when the queue goes */
    T_EQ_U64(f.b.messages, 0);
    teardown(&f);
}

/* Drop-oldest and dead-letter overflow kill fresh records at the cursor, in another segment
 * than the pending one: it is compacted in the middle of queue_trim's loop. */
static void
test_overflow_compacts_pending(void)
{
    for (int mode = QUEUE_DROP_OLDEST; mode <= QUEUE_DEAD_LETTER; mode++) {
        struct fixture f;
        static struct delivery *out[2000];
        char body[128];
        struct segment *pend;
        int lo;
        int hi;

        setup(&f, 64 << 20);
        for (int i = 0; i < 2000; i++)
            T_EQ_INT(queue_publish(&f.b, f.q, body, body_of(i, body, sizeof(body)),
                                   &(uint64_t){0}),
                     0);
        T_EQ_INT(queue_take(&f.b, f.q, &f.owner, 1400, 1 << 30, out), 1400);
        same_segment(out, 1400, 900, &lo, &hi);
        T_ASSERT(hi < 1400);
        pend = make_pending(&f, out, lo, hi);
        f.q->overflow = (uint8_t)mode;
        f.q->max_messages = f.q->ninflight + 5;
        T_EQ_INT(queue_publish(&f.b, f.q, "new", 3, &(uint64_t){0}), 0);
        queue_trim(&f.b, f.q);
        T_ASSERT(f.q->c.compactions >= 1 && !owns_segment(f.q, pend));
        T_EQ_U64(queue_ready(f.q), 5);
        check_queue(f.q);
        check_bodies(out, lo, hi, 0, 3);
        for (int i = 0; i < 1400; i++)
            if (i < lo || i >= hi || i % 10 == 3)
                queue_ack(&f.b, out[i]);
        check_queue(f.q);
        teardown(&f);
    }
}

/* At the memory limit compaction stops half way, losing nothing; once memory is back, the
 * next death in the segment makes it pending again and the next one elsewhere finishes it. */
static void
test_compaction_at_memory_limit(void)
{
    struct fixture f;
    static struct delivery *out[2000];
    static void *hoard[4096];
    struct pub_opts o = {.prio = 1};
    struct segment *pend;
    struct segment *m;
    uint32_t nh = 0;
    uint64_t moved;
    int lo;
    int hi;
    int k;

    setup(&f, 16 << 20);
    fill_and_take(&f, out, 2000);
    same_segment(out, 2000, 1000, &lo, &hi);
    /* ready messages with delivery records fill the moved-record tail but for ~20 copies */
    T_EQ_INT(queue_publish_opts(&f.b, f.q, "ready", 5, &o, &(uint64_t){0}), 0);
    m = f.q->mtail;
    while (m->size - sizeof(*m) - m->used > 20 * 115)
        T_EQ_INT(queue_publish_opts(&f.b, f.q, "ready", 5, &o, &(uint64_t){0}), 0);
    T_ASSERT(f.q->mtail == m);
    pend = make_pending(&f, out, lo, hi);
    while (nh < 4096 && (hoard[nh] = slab_alloc(&f.b.slab, 8192)) != NULL)
        nh++; /* no memory for another moved-record segment */
    T_ASSERT(nh < 4096);
    queue_ack(&f.b, out[hi]); /* compaction: stops when m is full */
    T_EQ_U64(f.q->c.compactions, 1);
    T_ASSERT(f.q->c.moved > 0 && f.q->c.moved < 50);
    T_ASSERT(owns_segment(f.q, pend) && pend->live > 0);
    T_ASSERT(f.q->sparse == NULL);
    check_queue(f.q);
    check_bodies(out, lo, hi, 0, 3);
    while (nh > 0)
        slab_free(&f.b.slab, hoard[--nh], 8192);
    moved = f.q->c.moved;
    k = lo + (13 - lo % 10) % 10; /* one left in pend dies: pending again */
    while (out[k]->seg != pend)
        k += 10;
    queue_ack(&f.b, out[k]);
    T_ASSERT(f.q->sparse == pend);
    queue_ack(&f.b, out[hi + 1]); /* and one elsewhere: the rest moves */
    T_EQ_U64(f.q->c.compactions, 2);
    T_ASSERT(!owns_segment(f.q, pend));
    T_ASSERT(f.q->c.moved > moved);
    check_queue(f.q);
    check_bodies(out, lo, hi, 0, 3);
    for (int i = 0; i < 2000; i++)
        if (i != k && (i < lo || i > hi + 1 || (i < hi && i % 10 == 3)))
            queue_ack(&f.b, out[i]);
    check_queue(f.q);
    T_EQ_U64(f.q->ninflight, 0);
    teardown(&f);
}


/* Random publishes (plain, with priority or TTL, some chained), fetches, acks in and out of
 * order, NACKs, TERMs, timeouts, purges, drop-oldest trims and rolled-back batches, with every
 * segment, delivery and q->sparse checked as they go. */
/* The timer heap and the runs of a consumer's in-flight list (delivery.h): every entry is at
 * its index and no earlier than its parent; every in-flight delivery without an entry
 * continues the run of the one before it; those followers are what the heap holds slots for;
 * and, once the timers have run, nothing in flight is overdue (a follower times out with
 * the first of its run, not later). */
static void
check_timers(struct fixture *f, int after_run)
{
    const struct theap *h = &f->b.timers;
    const struct delivery *prev = NULL;
    uint32_t followers = 0;

    for (uint32_t i = 0; i < h->n; i++) {
        T_EQ_U64(h->a[i]->heap_idx, i);
        if (i > 0)
            T_ASSERT(h->a[(i - 1) / 2]->due_ms <= h->a[i]->due_ms);
    }
    for (const struct dlink *l = f->owner.list.next; l != &f->owner.list; l = l->next) {
        const struct delivery *d = DLIST_ENTRY(l, struct delivery, slink);
        T_EQ_U64(d->state, DLV_INFLIGHT);
        if (d->heap_idx == DLV_NO_HEAP) {
            T_ASSERT(prev && prev->q == d->q && prev->due_ms == d->due_ms);
            followers++;
        }
        if (after_run)
            T_ASSERT(d->due_ms > f->b.now_ms);
        prev = d;
    }
    T_EQ_U64(h->held, followers);
    T_ASSERT(h->n + h->held <= h->cap);
}

static void
random_ops(uint64_t seed, size_t max_memory)
{
    struct fixture f;
    static struct delivery *out[256];
    static uint8_t body[20000];
    uint64_t rng = 0x9e3779b97f4a7c15ull * seed;
    struct queue *dq;

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 13 + 1);
    setup(&f, max_memory);
    f.owner.sub_out = NULL;
    f.q->visibility_ms = 50;
    for (int step = 0; step < 60000; step++) {
        uint32_t r;
        uint32_t op;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        r = (uint32_t)(rng >> 16);
        op = r % 100;
        if (op >= 40 && op < 70 && (step / 4000) % 2 == 0)
            op = 0; /* filling phases, then draining ones */
        if (op < 40) { /* publish */
            struct pub_opts o = {0};
            uint32_t len = (r >> 8) % 200;
            if ((r >> 20) % 500 == 0)
                len = 9000 + (r >> 10) % 10000; /* a chain */
            if ((r >> 24) % 16 == 0)
                o.prio = (uint8_t)(1 + (r >> 4) % 3);
            if ((r >> 24) % 16 == 1)
                o.ttl_ms = 1 + (r >> 4) % 100;
            (void)queue_publish_opts(&f.b, f.q, body, len, &o, &(uint64_t){0});
            if (f.q->overflow)
                queue_trim(&f.b, f.q);
        } else if (op < 55) { /* fetch */
            (void)queue_take(&f.b, f.q, &f.owner, 1 + (r >> 8) % 200, 1 << 30, out);
        } else if (op < 85 && f.owner.n) { /* settle the oldest, or one further in */
            struct dlink *l = f.owner.list.next;
            struct delivery *d;
            for (uint32_t skip = op < 75 ? 0 : (r >> 8) % f.owner.n; skip; skip--)
                l = l->next;
            d = DLIST_ENTRY(l, struct delivery, slink);
            if ((r >> 4) % 40 == 0)
                queue_nack(&f.b, d, (r >> 12) % 3 * 20);
            else if ((r >> 4) % 40 == 1)
                queue_term(&f.b, d);
            else if ((r >> 4) % 40 < 6)
                queue_touch(&f.b, d);
            else
                queue_ack(&f.b, d);
        } else if (op < 90) { /* time passes: timeouts, delays, TTLs */
            f.b.now_ms += (r >> 8) % 40;
            broker_run_timers(&f.b);
            check_timers(&f, 1);
        } else if (op == 90 && (r >> 8) % 20 == 0) {
            queue_purge(&f.b, f.q);
        } else if (op == 91 && (r >> 8) % 10 == 0) { /* a batch rolled back */
            struct queue_mark m;
            struct pub_opts o = {.prio = (uint8_t)((r >> 12) % 2)};
            queue_mark(f.q, &m);
            for (uint32_t i = (r >> 16) % 700; i > 0; i--)
                (void)queue_publish_opts(&f.b, f.q, body, (r >> 4) % 150, &o,
                                         &(uint64_t){0});
            queue_rollback(&f.b, f.q, &m);
        } else if (op == 92 && (r >> 8) % 10 == 0) { /* overflow policy on or off */
            f.q->overflow = (uint8_t)((r >> 12) % 3);
            f.q->max_messages = 500 + (r >> 14) % 3000;
        } else if (op == 93 && (dq = broker_queue_find(&f.b, "q.dlq", 5)) != NULL) {
            uint32_t n = queue_take(&f.b, dq, &f.owner, 100, 1 << 30, out);
            for (uint32_t i = 0; i < n; i++)
                queue_ack(&f.b, out[i]);
        }
        if (step % 97 == 0 || f.q->sparse) {
            check_timers(&f, 0);
            check_queue(f.q);
            if ((dq = broker_queue_find(&f.b, "q.dlq", 5)) != NULL)
                check_queue(dq);
        }
    }
    T_ASSERT(f.q->c.compactions > 0);
    check_queue(f.q);
    teardown(&f);
}

static void
test_random_ops_keep_segments_consistent(void)
{
    for (uint64_t seed = 1; seed <= 4; seed++) /* the small ones at the memory limit */
        random_ops(seed, seed % 2 ? (size_t)32 << 20 : (size_t)8 << 20);
}

/* ---------------------------------------------------------------------------------------- */
/* The queue registry (open addressing, broker.c)                                            */

#define REG_NAMES 6000
#define REG_PAIR_SEARCH 400000 /* names hashed to find two with the same 32-bit hash */

static void
reg_name(char *buf, size_t cap, uint32_t i)
{
    snprintf(buf, cap, "reg.%u", i);
}

/* Every occupied slot can be reached from its home slot: no empty slot in between (what a
 * wrong backward shift on delete breaks), and the slot's hash is its queue's. */
static void
check_probes(const struct broker *b)
{
    size_t n = 0;

    for (size_t i = 0; i <= b->qmask; i++) {
        const struct broker_slot *e = &b->qb[i];
        if (!e->q)
            continue;
        n++;
        T_EQ_U64(e->hash, e->q->hash);
        T_EQ_U64(e->hash, broker_queue_hash(e->q->name, e->q->name_len));
        for (size_t j = e->hash & b->qmask; j != i; j = (j + 1) & b->qmask)
            T_ASSERT(b->qb[j].q != NULL);
    }
    T_EQ_U64(n, b->nqueues);
    T_ASSERT(b->nqueues * 4 <= (b->qmask + 1) * 3); /* at most 3/4 full */
}

/* The registry against a model: each name found exactly when alive, as its own queue; the
 * walk visits every live queue once. */
static void
check_registry(struct broker *b, struct queue **model, uint32_t n)
{
    char name[32];
    size_t walked = 0;
    size_t pos = 0;
    struct queue *q;

    for (uint32_t i = 0; i < n; i++) {
        reg_name(name, sizeof(name), i);
        T_ASSERT(broker_queue_find(b, name, strlen(name)) == model[i]);
    }
    while ((q = broker_queue_next(b, &pos))) {
        uint32_t i = (uint32_t)strtoul(q->name + 4, NULL, 10);
        T_ASSERT(i < n && model[i] == q);
        walked++;
    }
    T_EQ_U64(walked, b->nqueues);
    check_probes(b);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Two names with the same 32-bit hash, found by sorting the hashes of many. */
static void
colliding_pair(uint32_t *a, uint32_t *b)
{
    uint64_t *v = malloc(REG_PAIR_SEARCH * sizeof(*v));
    char name[32];

    T_ASSERT(v != NULL);
    for (uint32_t i = 0; i < REG_PAIR_SEARCH; i++) {
        snprintf(name, sizeof(name), "pair.%u", i);
        v[i] = (uint64_t)broker_queue_hash(name, strlen(name)) << 32 | i;
    }
    qsort(v, REG_PAIR_SEARCH, sizeof(*v), cmp_u64);
    *a = *b = UINT32_MAX;
    for (uint32_t i = 1; i < REG_PAIR_SEARCH && *a == UINT32_MAX; i++) {
        if (v[i] >> 32 == v[i - 1] >> 32) {
            *a = (uint32_t)v[i - 1];
            *b = (uint32_t)v[i];
        }
    }
    free(v);
    T_ASSERT(*a != UINT32_MAX); /* about 18 pairs are expected among 400,000 names */
}

static void
test_registry_many_queues(void)
{
    struct fixture f;
    struct queue **model = calloc(REG_NAMES, sizeof(*model));
    uint64_t rng = 88172645463325252ULL;
    size_t base;
    char name[32];
    char other[32];
    uint32_t a;
    uint32_t b;
    int created;

    T_ASSERT(model != NULL);
    setup(&f, (size_t)256 << 20);
    broker_queue_delete(&f.b, f.q);
    base = broker_mem_busy(&f.b); /* the first 64 slots are not in the budget */
    /* growth: 64 slots to 8,192, each doubling checked on the way */
    for (uint32_t i = 0; i < REG_NAMES; i++) {
        size_t slots = f.b.qmask + 1;
        reg_name(name, sizeof(name), i);
        model[i] = broker_queue_get(&f.b, name, strlen(name), &created);
        T_ASSERT(model[i] != NULL && created);
        T_ASSERT(broker_queue_get(&f.b, name, strlen(name), &created) == model[i] && !created);
        if (f.b.qmask + 1 != slots)
            check_registry(&f.b, model, i + 1);
    }
    T_EQ_U64(f.b.qmask + 1, 8192);
    check_registry(&f.b, model, REG_NAMES);
    /* deletes in a random order, creates again: runs are shifted back and refilled */
    for (int round = 0; round < 40000; round++) {
        uint32_t i;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        i = (uint32_t)(rng % REG_NAMES);
        reg_name(name, sizeof(name), i);
        if (model[i]) {
            broker_queue_delete(&f.b, model[i]);
            model[i] = NULL;
        } else {
            model[i] = broker_queue_get(&f.b, name, strlen(name), &created);
            T_ASSERT(model[i] != NULL && created);
        }
        T_ASSERT(broker_queue_find(&f.b, name, strlen(name)) == model[i]);
        if (round % 4000 == 0)
            check_registry(&f.b, model, REG_NAMES);
    }
    check_registry(&f.b, model, REG_NAMES);
    /* same hash, different names: both kept apart, each survives the other's deletion */
    colliding_pair(&a, &b);
    snprintf(name, sizeof(name), "pair.%u", a);
    snprintf(other, sizeof(other), "pair.%u", b);
    T_EQ_U64(broker_queue_hash(name, strlen(name)), broker_queue_hash(other, strlen(other)));
    {
        struct queue *qa = broker_queue_get(&f.b, name, strlen(name), &created);
        struct queue *qb = broker_queue_get(&f.b, other, strlen(other), &created);
        T_ASSERT(qa && qb && qa != qb && created);
        T_ASSERT(broker_queue_find(&f.b, name, strlen(name)) == qa);
        T_ASSERT(broker_queue_find(&f.b, other, strlen(other)) == qb);
        check_probes(&f.b);
        broker_queue_delete(&f.b, qa);
        T_ASSERT(broker_queue_find(&f.b, name, strlen(name)) == NULL);
        T_ASSERT(broker_queue_find(&f.b, other, strlen(other)) == qb);
        check_probes(&f.b);
        broker_queue_delete(&f.b, qb);
        T_ASSERT(broker_queue_find(&f.b, other, strlen(other)) == NULL);
    }
    /* everything deleted: only the grown table is left in the budget, 16 bytes a slot */
    for (uint32_t i = 0; i < REG_NAMES; i++) {
        if (model[i])
            broker_queue_delete(&f.b, model[i]);
        model[i] = NULL;
    }
    check_registry(&f.b, model, REG_NAMES);
    T_EQ_U64(f.b.nqueues, 0);
    T_EQ_U64(broker_mem_busy(&f.b) - base, (f.b.qmask + 1) * sizeof(struct broker_slot));
    free(model);
    teardown(&f);
}

static const struct t_case cases[] = {
    T_CASE(test_batch_shares_a_timer),
    T_CASE(test_compaction_moves_pinned),
    T_CASE(test_in_order_acks_move_nothing),
    T_CASE(test_compaction_into_emptied_mtail),
    T_CASE(test_dead_letter_compacts_pending),
    T_CASE(test_pending_then_purge_and_delete),
    T_CASE(test_overflow_compacts_pending),
    T_CASE(test_compaction_at_memory_limit),
    T_CASE(test_random_ops_keep_segments_consistent),
    T_CASE(test_fifo_take_ack),
    T_CASE(test_requeue_goes_first_with_count),
    T_CASE(test_visibility_timeout_and_nack_delay),
    T_CASE(test_purge_keeps_inflight),
    T_CASE(test_batch_rollback),
    T_CASE(test_large_payload_chain),
    T_CASE(test_limit_and_memory_returns),
    T_CASE(test_registry_many_queues),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
