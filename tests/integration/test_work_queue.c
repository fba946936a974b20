/* SPDX-License-Identifier: MIT */
/* The work-queue features through libslabmq against a real slabmqd: publish options
 * (priority, delay, at, TTL, producer ids and the duplicate flag, batch and pipelined
 * forms), queue options read back from STATS, dead letters with their info after TERM, the
 * delivery limit and overflow dead-letter, 64-bit NACK delays, PEEK pages, FETCH of several
 * queues, and subscriptions: credit, pushes kept across synchronous calls, acks sent by
 * slabmq_receive, and the end of a subscription when its queue is deleted. */

#include "slabmq.h"
#include "t.h"

/* Poll a statistic until it equals want, for at most ms. */
static void
wait_stat(slabmq_client *c, const char *queue, const char *name, uint64_t want, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint64_t v;

    while ((v = t_stat(c, queue, name)) != want && t_now_ms() < deadline)
        t_sleep_ms(10);
    if (v != want)
        t_fail(__FILE__, __LINE__, "%s of %s stayed %" PRIu64 ", not %" PRIu64, name, queue, v,
               want);
}

static void
publish_str(slabmq_client *c, const char *queue, const char *s, const slabmq_publish_options *o,
            uint64_t *id)
{
    int dup = -1;

    T_OK(c, slabmq_publish_opts(c, queue, s, strlen(s), o, id, &dup));
    T_EQ_INT(dup, 0);
}

/* The payload of message i of b, NUL-terminated in a static buffer. */
static const char *
payload(const slabmq_batch *b, size_t i)
{
    static char buf[256];
    const slabmq_message *m = slabmq_batch_get(b, i);

    T_ASSERT(m != NULL && m->len < sizeof(buf));
    memcpy(buf, m->data, m->len);
    buf[m->len] = '\0';
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Publish options                                                                           */

/* Higher priorities first; a delayed message (by delay_ms or at_ms) is delivered at its
 * time and not before; the batch form applies its options to every message. */
static void
test_publish_options_roundtrip(void)
{
    static const char *const order[] = {"nine", "five-a", "five-b", "zero"};
    slabmq_publish_options o = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_payload two[] = {{"five-a", 6}, {"five-b", 6}};
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t id;
    int64_t t0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    publish_str(c, "prio", "zero", &o, &id);
    o.priority = 5;
    T_OK(c, slabmq_publish_batch_opts(c, "prio", two, 2, &o, &id));
    o.priority = 9;
    publish_str(c, "prio", "nine", &o, &id);
    T_EQ_U64(t_stat(c, "prio", "priority_ready"), 3);
    T_OK(c, slabmq_fetch(c, "prio", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    for (size_t i = 0; i < 4; i++)
        T_EQ_STR(payload(bt, i), order[i]);
    slabmq_batch_free(bt);

    o = (slabmq_publish_options)SLABMQ_PUBLISH_OPTIONS_INIT;
    o.delay_ms = 300;
    t0 = t_now_ms();
    publish_str(c, "later", "in 300 ms", &o, &id);
    o.delay_ms = 0;
    o.at_ms = (uint64_t)t_wall_ms() + 3600 * 1000; /* an hour from now */
    publish_str(c, "later", "in an hour", &o, &id);
    T_EQ_U64(t_stat(c, "later", "delayed"), 2);
    T_EQ_U64(t_stat(c, "later", "ready"), 0);
    T_ASSERT(t_stat(c, "later", "next_due_ms") <= 300);
    T_OK(c, slabmq_peek(c, "later", 10, &bt)); /* delayed messages are not shown */
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "later", 10, 5000, &bt));
    T_ASSERT(t_now_ms() - t0 >= 290);
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_STR(payload(bt, 0), "in 300 ms");
    slabmq_batch_free(bt);
    T_EQ_U64(t_stat(c, "later", "delayed"), 1);
    T_ASSERT(t_stat(c, "later", "next_due_ms") > 3500 * 1000);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A message whose TTL passes while it is ready goes to the dead-letter queue as "expired";
 * the queue's own ttl_ms applies to messages published without one. */
static void
test_ttl_expires_to_dead_letters(void)
{
    slabmq_publish_options o = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    const slabmq_message *m;
    uint64_t id;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    o.ttl_ms = 150;
    publish_str(c, "short", "brief", &o, &id);
    qo.ttl_ms = 150;
    T_OK(c, slabmq_declare(c, "short2", &qo, NULL));
    T_OK(c, slabmq_publish(c, "short2", "default ttl", 11, NULL));
    T_OK(c, slabmq_publish(c, "short", "lasting", 7, NULL));
    wait_stat(c, "short", "expired", 1, 3000);
    wait_stat(c, "short2", "expired", 1, 3000);
    T_EQ_U64(t_stat(c, "short", "ready"), 1);
    T_EQ_U64(t_stat(c, "short", "dead_lettered"), 1);
    T_OK(c, slabmq_fetch(c, "short.dlq", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    m = slabmq_batch_get(bt, 0);
    T_EQ_U64(m->id, id);
    T_EQ_STR(payload(bt, 0), "brief");
    T_ASSERT(m->dead != NULL);
    T_EQ_STR(m->dead->reason, "expired");
    T_EQ_STR(m->dead->queue, "short");
    T_EQ_U64(m->dead->deliveries, 0);
    T_EQ_STR(slabmq_batch_queue(bt), "short.dlq");
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

struct dups {
    int n;          /* confirmations */
    int duplicates; /* of which duplicates */
    uint64_t value; /* the last id */
};

static void
count_dups(void *arg, const slabmq_confirm *cf)
{
    struct dups *d = arg;

    d->n++;
    d->duplicates += cf->status == SLABMQ_OK && cf->duplicate;
    d->value = cf->value;
}

/* A producer id the queue remembers is a duplicate: nothing stored, the first message's
 * id returned, sync and pipelined; with de-duplication off it is not. */
static void
test_duplicate_flag(void)
{
    slabmq_publish_options o = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    struct dups d = {0, 0, 0};
    struct t_broker b;
    slabmq_client *c;
    uint64_t first;
    uint64_t id;
    int dup = -1;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    o.id = "order-1";
    T_OK(c, slabmq_publish_opts(c, "orders", "v1", 2, &o, &first, &dup));
    T_EQ_INT(dup, 0);
    T_OK(c, slabmq_publish_opts(c, "orders", "v2", 2, &o, &id, &dup));
    T_EQ_INT(dup, 1);
    T_EQ_U64(id, first);
    T_EQ_U64(t_stat(c, "orders", "ready"), 1);
    T_EQ_U64(t_stat(c, "orders", "duplicates"), 1);
    T_ASSERT(t_stat(c, "orders", "dedup_bytes") > 0);
    slabmq_client_on_confirm_ex(c, count_dups, &d);
    T_OK(c, slabmq_publish_opts_async(c, "orders", "v3", 2, &o, NULL));
    o.id = "order-2";
    T_OK(c, slabmq_publish_opts_async(c, "orders", "w1", 2, &o, NULL));
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(d.n, 2);
    T_EQ_INT(d.duplicates, 1);
    T_ASSERT(d.value > first);
    T_EQ_U64(t_stat(c, "orders", "ready"), 2);
    /* the id must be 1-128 bytes: refused before sending */
    o.id = "";
    T_EQ_INT(slabmq_publish_opts(c, "orders", "x", 1, &o, &id, &dup), SLABMQ_ERR_ARG);
    /* de-duplication off: the same id stores again */
    qo.dedup_window = SLABMQ_DEDUP_OFF;
    T_OK(c, slabmq_declare(c, "orders", &qo, NULL));
    T_EQ_U64(t_stat(c, "orders", "dedup_window"), 0);
    o.id = "order-1";
    T_OK(c, slabmq_publish_opts(c, "orders", "v4", 2, &o, &id, &dup));
    T_EQ_INT(dup, 0);
    T_ASSERT(id != first);
    T_EQ_U64(t_stat(c, "orders", "ready"), 3);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Queue options and dead letters                                                            */

/* Every new queue option is read back from STATS, "none" values included. */
static void
test_queue_options_roundtrip(void)
{
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    struct t_broker b;
    slabmq_client *c;
    slabmq_stats *s;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_declare(c, "opts", NULL, NULL)); /* the defaults */
    T_OK(c, slabmq_stats_get(c, "opts", &s));
    T_EQ_STR(slabmq_stats_find_str(s, "dead_letter"), "opts.dlq");
    slabmq_stats_free(s);
    T_EQ_U64(t_stat(c, "opts", "max_deliveries"), 20);
    T_EQ_U64(t_stat(c, "opts", "ttl_ms"), 0);
    T_EQ_U64(t_stat(c, "opts", "dedup_window"), 1 << 20);
    qo.max_deliveries = 3;
    qo.dead_letter = "graveyard";
    qo.ttl_ms = SLABMQ_TIME_MAX_MS;
    qo.dedup_window = 4096;
    qo.overflow = SLABMQ_OVERFLOW_DEAD_LETTER;
    T_OK(c, slabmq_declare(c, "opts", &qo, NULL));
    T_OK(c, slabmq_stats_get(c, "opts", &s));
    T_EQ_STR(slabmq_stats_find_str(s, "dead_letter"), "graveyard");
    slabmq_stats_free(s);
    T_EQ_U64(t_stat(c, "opts", "max_deliveries"), 3);
    T_EQ_U64(t_stat(c, "opts", "ttl_ms"), SLABMQ_TIME_MAX_MS);
    T_EQ_U64(t_stat(c, "opts", "dedup_window"), 4096);
    T_EQ_U64(t_stat(c, "opts", "overflow_dead_letter"), 1);
    T_EQ_U64(t_stat(c, "opts", "overflow_drop_oldest"), 0);
    qo = (slabmq_queue_options)SLABMQ_QUEUE_OPTIONS_INIT;
    qo.max_deliveries = SLABMQ_NO_LIMIT;
    qo.dead_letter = "";
    qo.ttl_ms = SLABMQ_NO_TTL;
    T_OK(c, slabmq_declare(c, "opts", &qo, NULL));
    T_OK(c, slabmq_stats_get(c, "opts", &s));
    T_EQ_STR(slabmq_stats_find_str(s, "dead_letter"), "");
    slabmq_stats_free(s);
    T_EQ_U64(t_stat(c, "opts", "max_deliveries"), 0);
    T_EQ_U64(t_stat(c, "opts", "ttl_ms"), 0);
    T_EQ_U64(t_stat(c, "opts", "dedup_window"), 4096); /* left out: kept */
    /* the broker's checks: a dead-letter queue of its own name */
    qo = (slabmq_queue_options)SLABMQ_QUEUE_OPTIONS_INIT;
    qo.dead_letter = "opts";
    T_EQ_INT(slabmq_declare(c, "opts", &qo, NULL), SLABMQ_ERR_BAD_REQUEST);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* TERM dead-letters at once with reason "rejected"; the dead letter carries its source and
 * deliveries, sync and pipelined. */
static void
test_term_dead_letters_with_info(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t ids[2];
    uint64_t n = 0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_publish(c, "jobs", "bad input", 9, &ids[0]));
    T_OK(c, slabmq_publish(c, "jobs", "also bad", 8, &ids[1]));
    T_OK(c, slabmq_fetch(c, "jobs", 2, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 2);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_term(c, ids, 1, &n));
    T_EQ_U64(n, 1);
    T_OK(c, slabmq_term_async(c, ids + 1, 1, NULL));
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(slabmq_term(c, ids, 1, &n), SLABMQ_ERR_UNKNOWN_ID); /* no longer held */
    T_EQ_U64(t_stat(c, "jobs", "terminated"), 2);
    T_EQ_U64(t_stat(c, "jobs", "dead_lettered"), 2);
    T_EQ_U64(t_stat(c, "jobs", "inflight"), 0);
    T_OK(c, slabmq_peek(c, "jobs.dlq", 10, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 2);
    for (size_t i = 0; i < 2; i++) {
        const slabmq_message *m = slabmq_batch_get(bt, i);
        T_EQ_U64(m->id, ids[i]);
        T_EQ_INT(m->deliveries, 0);
        T_ASSERT(m->dead != NULL);
        T_EQ_STR(m->dead->reason, "rejected");
        T_EQ_STR(m->dead->queue, "jobs");
        T_EQ_U64(m->dead->deliveries, 1);
    }
    T_EQ_STR(payload(bt, 0), "bad input");
    slabmq_batch_free(bt);
    /* the dead-letter queue has no limit and no dead-letter queue of its own */
    T_EQ_U64(t_stat(c, "jobs.dlq", "max_deliveries"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A message NACKed max_deliveries times is dead-lettered as "delivery-limit", whatever the
 * delay; a NACK delay past 2^32 ms is taken. Overflow dead-letter moves the oldest ready
 * messages to the dead-letter queue as "max-length". */
static void
test_delivery_limit_overflow_and_long_nack(void)
{
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t id;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    qo.max_deliveries = 2;
    T_OK(c, slabmq_declare(c, "flaky", &qo, NULL));
    T_OK(c, slabmq_publish(c, "flaky", "poison", 6, &id));
    for (int i = 0; i < 2; i++) {
        T_OK(c, slabmq_fetch(c, "flaky", 1, 0, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 1);
        slabmq_batch_free(bt);
        T_OK(c, slabmq_nack(c, id, i == 0 ? 0 : 5000000000ULL));
    }
    T_EQ_U64(t_stat(c, "flaky", "delivery_limit"), 1);
    T_OK(c, slabmq_fetch(c, "flaky.dlq", 1, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_STR(slabmq_batch_get(bt, 0)->dead->reason, "delivery-limit");
    T_EQ_U64(slabmq_batch_get(bt, 0)->dead->deliveries, 2);
    slabmq_batch_free(bt);
    /* a long NACK delay: 5e9 ms, over the old 32-bit cap */
    T_OK(c, slabmq_publish(c, "slow", "x", 1, &id));
    T_OK(c, slabmq_fetch(c, "slow", 1, 0, &bt));
    slabmq_batch_free(bt);
    T_OK(c, slabmq_nack(c, id, 5000000000ULL));
    T_EQ_U64(t_stat(c, "slow", "delayed"), 1);
    T_ASSERT(t_stat(c, "slow", "next_due_ms") > UINT32_MAX);
    /* overflow dead-letter */
    qo = (slabmq_queue_options)SLABMQ_QUEUE_OPTIONS_INIT;
    qo.max_messages = 2;
    qo.overflow = SLABMQ_OVERFLOW_DEAD_LETTER;
    T_OK(c, slabmq_declare(c, "bounded", &qo, NULL));
    for (int i = 0; i < 3; i++)
        T_OK(c, slabmq_publish(c, "bounded", i == 0 ? "oldest" : "newer", i == 0 ? 6 : 5, NULL));
    T_EQ_U64(t_stat(c, "bounded", "ready"), 2);
    T_EQ_U64(t_stat(c, "bounded", "dropped"), 0);
    T_OK(c, slabmq_peek(c, "bounded.dlq", 10, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_STR(payload(bt, 0), "oldest");
    T_EQ_STR(slabmq_batch_get(bt, 0)->dead->reason, "max-length");
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* PEEK pages, FETCH of several queues                                                       */

static void
test_peek_skip_pages(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t first = 0;
    uint64_t seen = 0;
    char body[16];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 25; i++) {
        uint64_t id;
        snprintf(body, sizeof(body), "m%02d", i);
        T_OK(c, slabmq_publish(c, "pages", body, strlen(body), &id));
        if (i == 0)
            first = id;
    }
    for (int page = 0; page < 3; page++) {
        size_t n;
        T_OK(c, slabmq_peek_skip(c, "pages", 10, seen, &bt));
        n = slabmq_batch_count(bt);
        T_EQ_INT(n, page < 2 ? 10 : 5);
        for (size_t i = 0; i < n; i++) {
            snprintf(body, sizeof(body), "m%02d", (int)(seen + i));
            T_EQ_STR(payload(bt, i), body);
            T_EQ_U64(slabmq_batch_get(bt, i)->id, first + seen + i);
        }
        seen += n;
        slabmq_batch_free(bt);
    }
    T_OK(c, slabmq_peek_skip(c, "pages", 10, 25, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_peek_skip(c, "pages", 10, UINT64_MAX, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    T_EQ_U64(t_stat(c, "pages", "ready"), 25);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The first queue with a ready message answers, and the batch names it; an empty FETCH
 * names none; a waiting one is woken by a publish to any of its queues. */
static void
test_fetch_several_queues(void)
{
    static const char *const queues[] = {"urgent", "normal", "bulk"};
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    slabmq_batch *bt;
    int64_t t0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    p = t_client(&b);
    T_OK(p, slabmq_publish(p, "bulk", "b1", 2, NULL));
    T_OK(p, slabmq_publish(p, "normal", "n1", 2, NULL));
    T_OK(p, slabmq_publish(p, "normal", "n2", 2, NULL));
    T_OK(c, slabmq_fetch_any(c, queues, 3, 10, 0, 0, &bt));
    T_EQ_STR(slabmq_batch_queue(bt), "normal");
    T_EQ_INT(slabmq_batch_count(bt), 2); /* from that queue only */
    T_EQ_STR(payload(bt, 1), "n2");
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch_any(c, queues, 3, 10, 0, 0, &bt));
    T_EQ_STR(slabmq_batch_queue(bt), "bulk");
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch_any(c, queues, 3, 10, 0, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_ASSERT(slabmq_batch_queue(bt) == NULL);
    slabmq_batch_free(bt);
    /* a waiting FETCH of several queues, woken by the queue that gets a message */
    T_OK(p, slabmq_publish_opts(p, "urgent", "u1", 2,
                                &(slabmq_publish_options){.delay_ms = 200}, NULL, NULL));
    t0 = t_now_ms();
    T_OK(c, slabmq_fetch_any(c, queues, 3, 10, 5000, 0, &bt));
    T_ASSERT(t_now_ms() - t0 >= 150);
    T_EQ_STR(slabmq_batch_queue(bt), "urgent");
    T_EQ_STR(payload(bt, 0), "u1");
    slabmq_batch_free(bt);
    /* a queue named twice counts once: waiting on it, one wake and one reply */
    {
        const char *dups[] = {"urgent", "normal", "urgent", "normal"};
        T_OK(p, slabmq_publish_opts(p, "urgent", "u2", 2,
                                    &(slabmq_publish_options){.delay_ms = 200}, NULL, NULL));
        T_OK(c, slabmq_fetch_any(c, dups, 4, 10, 5000, 0, &bt));
        T_EQ_STR(slabmq_batch_queue(bt), "urgent");
        T_EQ_INT(slabmq_batch_count(bt), 1);
        slabmq_batch_free(bt);
        T_OK(p, slabmq_publish(p, "normal", "n3", 2, NULL));
        T_OK(c, slabmq_fetch_any(c, dups, 4, 10, 0, 0, &bt));
        T_EQ_STR(slabmq_batch_queue(bt), "normal");
        T_EQ_INT(slabmq_batch_count(bt), 1);
        slabmq_batch_free(bt);
        T_OK(c, slabmq_ping(c)); /* nothing else came for the duplicate waits */
    }
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Subscriptions                                                                             */

/* Receive for up to ms; returns the number of messages, their ids in ids (cap of them). */
static size_t
receive_for(slabmq_client *c, uint64_t sub, int ms, uint64_t *ids, size_t cap)
{
    int64_t deadline = t_now_ms() + ms;
    size_t got = 0;

    while (t_now_ms() < deadline) {
        slabmq_batch *bt;
        int64_t left = deadline - t_now_ms();
        T_OK(c, slabmq_receive(c, left > 0 ? (int)left : 0, &bt));
        for (size_t i = 0; i < slabmq_batch_count(bt); i++) {
            T_EQ_U64(slabmq_batch_subscription(bt), sub);
            if (got < cap)
                ids[got] = slabmq_batch_get(bt, i)->id;
            got++;
        }
        slabmq_batch_free(bt);
    }
    return got;
}

/* A consumer that does not ack receives exactly its credit and no more; acks give credit
 * back and bring exactly as many more; after UNSUBSCRIBE nothing more comes. */
static void
test_subscribe_credit(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    uint64_t sub = 0;
    uint64_t ids[16];
    uint64_t more[16];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    p = t_client(&b);
    T_OK(c, slabmq_subscribe(c, "push", 3, &sub));
    T_ASSERT(sub > 0);
    T_EQ_U64(t_stat(p, "push", "subscriptions"), 1);
    T_EQ_U64(t_stat(p, "push", "credit"), 3);
    for (int i = 0; i < 10; i++)
        T_OK(p, slabmq_publish(p, "push", "work", 4, NULL));
    T_EQ_U64(receive_for(c, sub, 500, ids, 16), 3);
    T_EQ_U64(t_stat(p, "push", "inflight"), 3);
    T_EQ_U64(t_stat(p, "push", "credit"), 0);
    T_EQ_U64(t_stat(p, "push", "ready"), 7);
    T_OK(c, slabmq_ack_batch(c, ids, 2, NULL));
    T_EQ_U64(receive_for(c, sub, 500, more, 16), 2);
    T_EQ_U64(t_stat(p, "push", "inflight"), 3);
    T_OK(c, slabmq_unsubscribe(c, sub));
    T_EQ_INT(slabmq_unsubscribe(c, sub), SLABMQ_ERR_NOT_FOUND);
    T_OK(c, slabmq_ack_batch(c, more, 2, NULL));
    T_EQ_U64(receive_for(c, sub, 300, more, 16), 0);
    T_EQ_U64(t_stat(p, "push", "subscriptions"), 0);
    T_EQ_U64(t_stat(p, "push", "inflight"), 1); /* still held, to be settled as usual */
    T_OK(c, slabmq_ack(c, ids[2]));
    T_EQ_U64(t_stat(p, "push", "ready"), 5);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Pushes that arrive while the subscriber waits for replies to other calls are all handed
 * out by slabmq_receive afterwards; a receive loop that acks with slabmq_ack_async gets
 * every message through a small credit. */
static void
test_pushes_kept_and_async_acks(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    uint64_t sub;
    uint64_t ids[64];
    size_t got = 0;
    int64_t deadline;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    p = t_client(&b);
    T_OK(c, slabmq_subscribe(c, "kept", 5, &sub));
    for (int i = 0; i < 5; i++)
        T_OK(p, slabmq_publish(p, "kept", "k", 1, NULL));
    wait_stat(p, "kept", "inflight", 5, 3000); /* all five pushed to c... */
    for (int i = 0; i < 20; i++)
        T_OK(c, slabmq_ping(c)); /* ...and read by c while it waited for its PINGs */
    T_EQ_U64(t_stat(c, "kept", "credit"), 0);
    T_EQ_U64(receive_for(c, sub, 300, ids, 64), 5);
    T_OK(c, slabmq_ack_batch(c, ids, 5, NULL));
    for (int i = 0; i < 50; i++)
        T_OK(p, slabmq_publish(p, "kept", "k", 1, NULL));
    deadline = t_now_ms() + 10000;
    while (got < 50 && t_now_ms() < deadline) {
        slabmq_batch *bt;
        size_t n;
        T_OK(c, slabmq_receive(c, 1000, &bt));
        n = slabmq_batch_count(bt);
        for (size_t i = 0; i < n; i++)
            ids[i] = slabmq_batch_get(bt, i)->id;
        if (n)
            T_OK(c, slabmq_ack_async(c, ids, n, NULL)); /* sent by the next receive */
        got += n;
        slabmq_batch_free(bt);
    }
    T_EQ_U64(got, 50);
    T_OK(c, slabmq_flush(c));
    wait_stat(p, "kept", "acked", 55, 3000);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* slabmq_receive_max() hands out at most N messages a call: a push of 50 comes out as
 * 7, 7, ... in order and exactly once, each batch naming its subscription and queue (with
 * slabmq_receive() it is one batch of 50); the rest of a split push stays first in line,
 * ahead of pushes that arrive after it. */
static void
test_receive_max(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    static slabmq_payload msgs[50];
    char bodies[50][4];
    uint64_t sub;
    uint64_t last = 0;
    size_t got = 0;
    size_t largest = 0;
    int64_t deadline;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    p = t_client(&b);
    for (int i = 0; i < 50; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "%03d", i);
        msgs[i] = (slabmq_payload){bodies[i], 3};
    }
    T_OK(p, slabmq_publish_batch(p, "capped", msgs, 50, NULL));
    T_OK(c, slabmq_subscribe(c, "capped", 60, &sub));
    wait_stat(p, "capped", "inflight", 50, 3000);
    T_OK(c, slabmq_ping(c)); /* the pushes are read while c waits for its PING */
    T_OK(p, slabmq_publish(p, "capped", "050", 3, NULL)); /* a later push, behind them */
    wait_stat(p, "capped", "inflight", 51, 3000);
    deadline = t_now_ms() + 5000;
    while (got < 51 && t_now_ms() < deadline) {
        slabmq_batch *bt;
        size_t n;
        T_OK(c, slabmq_receive_max(c, 1000, 7, &bt));
        n = slabmq_batch_count(bt);
        T_ASSERT(n <= 7);
        if (n) {
            T_EQ_U64(slabmq_batch_subscription(bt), sub);
            T_EQ_STR(slabmq_batch_queue(bt), "capped");
        }
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(bt, i);
            char want[4];
            snprintf(want, sizeof(want), "%03zu", got + i);
            T_EQ_INT(m->len, 3);
            T_EQ_MEM(m->data, want, 3); /* in order, none twice, none lost */
            T_ASSERT(m->id > last);
            last = m->id;
        }
        largest = n > largest ? n : largest;
        got += n;
        slabmq_batch_free(bt);
    }
    T_EQ_U64(got, 51);
    T_EQ_U64(largest, 7); /* the push of 50 was split */
    T_EQ_INT(slabmq_receive_max(NULL, 0, 7, NULL), SLABMQ_ERR_ARG);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Deleting the queue ends its subscriptions: receive reports ERR_QUEUE_DELETED with an
 * empty batch that names the subscription and queue. */
static void
test_subscription_ends_on_delete(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    slabmq_batch *bt = NULL;
    uint64_t sub;
    slabmq_status st = SLABMQ_OK;
    int64_t deadline;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    p = t_client(&b);
    T_OK(c, slabmq_subscribe(c, "doomed", 2, &sub));
    T_OK(p, slabmq_delete(p, "doomed", NULL));
    deadline = t_now_ms() + 5000;
    while (st == SLABMQ_OK && t_now_ms() < deadline) {
        slabmq_batch_free(bt);
        st = slabmq_receive(c, 500, &bt);
    }
    T_EQ_INT(st, SLABMQ_ERR_QUEUE_DELETED);
    T_ASSERT(bt != NULL);
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_EQ_U64(slabmq_batch_subscription(bt), sub);
    T_EQ_STR(slabmq_batch_queue(bt), "doomed");
    slabmq_batch_free(bt);
    T_EQ_INT(slabmq_unsubscribe(c, sub), SLABMQ_ERR_NOT_FOUND); /* it is gone */
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_publish_options_roundtrip),
    T_CASE(test_ttl_expires_to_dead_letters),
    T_CASE(test_duplicate_flag),
    T_CASE(test_queue_options_roundtrip),
    T_CASE(test_term_dead_letters_with_info),
    T_CASE(test_delivery_limit_overflow_and_long_nack),
    T_CASE(test_peek_skip_pages),
    T_CASE(test_fetch_several_queues),
    T_CASE(test_subscribe_credit),
    T_CASE(test_pushes_kept_and_async_acks),
    T_CASE(test_subscription_ends_on_delete),
    T_CASE(test_receive_max),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
