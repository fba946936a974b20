/* SPDX-License-Identifier: MIT */
/* FETCH read-ahead (slabmq_client_set_fetch_ahead) against a real slabmqd: the next FETCH is
 * on the wire when slabmq_fetch() returns (the broker delivers it before the application
 * asks), every message arrives exactly once and in order with acks, the messages fetched
 * ahead come back to another consumer when the connection closes, the batch fetched ahead
 * is handed out first whatever queue and max the next call names, and an idle queue is
 * long-polled by the call and not polled ahead. */

#include "slabmq.h"
#include "t.h"

/* Poll a statistic until it equals want, for at most ms. */
static void
wait_stat(slabmq_client *c, const char *queue, const char *name, uint64_t want, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint64_t v;

    while ((v = t_stat(c, queue, name)) != want && t_now_ms() < deadline)
        t_sleep_ms(5);
    if (v != want)
        t_fail(__FILE__, __LINE__, "%s of %s stayed %" PRIu64 ", not %" PRIu64, name, queue, v,
               want);
}

/* Publish messages "first" .. "first + n - 1" (decimal) to queue. */
static void
publish_range(slabmq_client *c, const char *queue, unsigned first, unsigned n)
{
    char buf[16];

    for (unsigned i = first; i < first + n; i++) {
        int len = snprintf(buf, sizeof(buf), "%u", i);
        T_OK(c, slabmq_publish_async(c, queue, buf, (size_t)len, NULL));
    }
    T_OK(c, slabmq_flush(c));
}

static unsigned
number(const slabmq_message *m)
{
    char buf[16];

    T_ASSERT(m->len > 0 && m->len < sizeof(buf));
    memcpy(buf, m->data, m->len);
    buf[m->len] = '\0';
    return (unsigned)strtoul(buf, NULL, 10);
}

/* When slabmq_fetch() returns its first batch, the next FETCH is already sent: the broker
 * delivers it (inflight doubles) without another call on the consumer. Without read-ahead
 * inflight would stay at one batch. */
static void
test_next_fetch_on_the_wire(void)
{
    struct t_broker b;
    slabmq_client *p, *c;
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    publish_range(p, "fa", 0, 1000);
    T_OK(c, slabmq_client_set_fetch_ahead(c, 1));
    T_OK(c, slabmq_fetch(c, "fa", 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 100);
    wait_stat(p, "fa", "inflight", 200, 2000); /* this batch and the one fetched ahead */
    slabmq_batch_free(bt);
    /* the next call hands out the batch fetched ahead and sends one more: three batches
     * in flight, none acked */
    T_OK(c, slabmq_client_set_fetch_ahead(c, 3));
    T_OK(c, slabmq_fetch(c, "fa", 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 100);
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 100);
    slabmq_batch_free(bt);
    wait_stat(p, "fa", "inflight", 300, 2000);
    T_EQ_INT(slabmq_client_set_fetch_ahead(c, SLABMQ_FETCH_AHEAD_MAX + 1), SLABMQ_ERR_ARG);
    T_EQ_INT(slabmq_client_set_fetch_ahead(NULL, 1), SLABMQ_ERR_ARG);
    slabmq_client_close(c);
    wait_stat(p, "fa", "inflight", 0, 2000);
    T_EQ_U64(t_stat(p, "fa", "ready"), 1000);
    slabmq_client_close(p);
    t_broker_stop(&b);
}

/* Drain 20,000 messages with read-ahead (depth 1 and 4), acking each with
 * slabmq_ack_async(): each arrives once, in publish order, never redelivered, and the
 * queue ends empty with nothing in flight. */
static void
drain_in_order(unsigned depth)
{
    enum { N = 20000 };
    struct t_broker b;
    slabmq_client *p, *c;
    unsigned next = 0;
    int64_t deadline;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    publish_range(p, "fo", 0, N);
    T_OK(c, slabmq_client_set_fetch_ahead(c, depth));
    deadline = t_now_ms() + 60000;
    while (next < N && t_now_ms() < deadline) {
        slabmq_batch *bt;
        T_OK(c, slabmq_fetch(c, "fo", 97, 100, &bt)); /* 97: batches do not divide N */
        T_ASSERT(slabmq_batch_count(bt) <= 97);
        for (size_t i = 0; i < slabmq_batch_count(bt); i++) {
            const slabmq_message *m = slabmq_batch_get(bt, i);
            T_EQ_U64(number(m), next);
            T_EQ_U64(m->deliveries, 1);
            next++;
            T_OK(c, slabmq_ack_async(c, &m->id, 1, NULL));
        }
        T_EQ_STR(slabmq_batch_queue(bt), "fo");
        slabmq_batch_free(bt);
    }
    T_EQ_U64(next, N);
    { /* the queue is empty: the call long-polls, nothing is left ahead */
        slabmq_batch *bt;
        int64_t t0 = t_now_ms();
        T_OK(c, slabmq_fetch(c, "fo", 97, 200, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 0);
        T_ASSERT(t_now_ms() - t0 >= 150);
        slabmq_batch_free(bt);
    }
    T_OK(c, slabmq_flush(c));
    wait_stat(p, "fo", "inflight", 0, 2000);
    T_EQ_U64(t_stat(p, "fo", "ready"), 0);
    T_EQ_U64(t_stat(p, "fo", "acked"), N);
    slabmq_client_close(c);
    slabmq_client_close(p);
    t_broker_stop(&b);
}

static void
test_exactly_once_in_order(void)
{
    drain_in_order(1);
}

static void
test_exactly_once_in_order_deep(void)
{
    drain_in_order(4);
}

/* A consumer takes one batch and acks it; the batch fetched ahead is in flight, never handed
 * out. When it closes, the broker requeues it: another consumer gets those messages first,
 * in order, with deliveries 2, then the rest once each. */
static void
test_close_redelivers_ahead(void)
{
    struct t_broker b;
    slabmq_client *p, *a, *c;
    slabmq_batch *bt;
    unsigned next;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    a = t_client(&b);
    c = t_client(&b);
    publish_range(p, "fc", 0, 500);
    T_OK(a, slabmq_client_set_fetch_ahead(a, 1));
    T_OK(a, slabmq_fetch(a, "fc", 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 100);
    for (size_t i = 0; i < 100; i++)
        T_OK(a, slabmq_ack_async(a, &slabmq_batch_get(bt, i)->id, 1, NULL));
    slabmq_batch_free(bt);
    T_OK(a, slabmq_flush(a)); /* the acks settle; the reply fetched ahead is kept */
    wait_stat(p, "fc", "inflight", 100, 2000);
    T_EQ_U64(t_stat(p, "fc", "acked"), 100);
    slabmq_client_close(a);
    wait_stat(p, "fc", "inflight", 0, 2000);
    T_EQ_U64(t_stat(p, "fc", "ready"), 400);

    T_OK(c, slabmq_fetch(c, "fc", 1000, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 400);
    next = 100;
    for (size_t i = 0; i < 400; i++) {
        const slabmq_message *m = slabmq_batch_get(bt, i);
        T_EQ_U64(number(m), next);
        T_EQ_U64(m->deliveries, i < 100 ? 2 : 1); /* the ones fetched ahead: redelivered */
        next++;
        T_OK(c, slabmq_ack_async(c, &m->id, 1, NULL));
    }
    slabmq_batch_free(bt);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(t_stat(p, "fc", "acked"), 500);
    T_EQ_U64(t_stat(p, "fc", "ready"), 0);
    slabmq_client_close(c);
    slabmq_client_close(p);
    t_broker_stop(&b);
}

/* The batch fetched ahead is handed out first whatever the next call names: another queue
 * (slabmq_batch_queue() says where it is from), or a smaller max (the rest stays first). */
static void
test_ahead_batch_first(void)
{
    struct t_broker b;
    slabmq_client *p, *c;
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    publish_range(p, "q1", 0, 30);
    publish_range(p, "q2", 1000, 5);
    T_OK(c, slabmq_client_set_fetch_ahead(c, 1));
    T_OK(c, slabmq_fetch(c, "q1", 10, 0, &bt)); /* 0..9, and 10..19 fetched ahead */
    T_EQ_INT(slabmq_batch_count(bt), 10);
    slabmq_batch_free(bt);
    /* q1's 10..13, 14..19 staying first; 4 is this call's max: a q2 FETCH of 4 goes ahead */
    T_OK(c, slabmq_fetch(c, "q2", 4, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    T_EQ_STR(slabmq_batch_queue(bt), "q1");
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 10);
    T_EQ_U64(number(slabmq_batch_get(bt, 3)), 13);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "q2", 10, 0, &bt)); /* q1's 14..19: short, nothing more ahead */
    T_EQ_INT(slabmq_batch_count(bt), 6);
    T_EQ_STR(slabmq_batch_queue(bt), "q1");
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 14);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "q2", 10, 0, &bt)); /* the q2 FETCH of max 4 sent ahead */
    T_EQ_INT(slabmq_batch_count(bt), 4);
    T_EQ_STR(slabmq_batch_queue(bt), "q2");
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 1000);
    slabmq_batch_free(bt);
    {
        const char *const qs[] = {"q2", "q1"};
        /* nothing ahead: its own FETCH, q2's last; several queues, so one goes ahead */
        T_OK(c, slabmq_fetch_any(c, qs, 2, 5, 0, 0, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 1);
        T_EQ_STR(slabmq_batch_queue(bt), "q2");
        T_EQ_U64(number(slabmq_batch_get(bt, 0)), 1004);
        slabmq_batch_free(bt);
        /* the one sent ahead found q2 empty and took from q1: the reply names the queue */
        T_OK(c, slabmq_fetch_any(c, qs, 2, 5, 0, 0, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 5);
        T_EQ_STR(slabmq_batch_queue(bt), "q1");
        T_EQ_U64(number(slabmq_batch_get(bt, 0)), 20);
        slabmq_batch_free(bt);
    }
    /* a synchronous call in between reads the reply fetched ahead and keeps it */
    T_OK(c, slabmq_ping(c));
    T_OK(c, slabmq_fetch(c, "q1", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 5);
    T_EQ_STR(slabmq_batch_queue(bt), "q1");
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 25);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "q1", 10, 0, &bt)); /* nothing ahead, and its own FETCH empty */
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    wait_stat(p, "q1", "inflight", 30, 2000);
    wait_stat(p, "q2", "inflight", 5, 2000);
    slabmq_client_close(c);
    slabmq_client_close(p);
    t_broker_stop(&b);
}

/* A FETCH sent ahead that the broker refuses (the connection holds --max-inflight unacked
 * messages) is not reported by itself: the next call passes over it, makes its own FETCH and
 * reports that one's refusal; once acks make room, fetching goes on in order. */
static void
test_refused_ahead_reported_by_next_call(void)
{
    struct t_broker b;
    slabmq_client *p, *c;
    slabmq_batch *bt;
    uint64_t ids[100];

    t_broker_start(&b, "--max-inflight", "100", NULL);
    p = t_client(&b);
    c = t_client(&b);
    publish_range(p, "fr", 0, 300);
    T_OK(c, slabmq_client_set_fetch_ahead(c, 1));
    T_OK(c, slabmq_fetch(c, "fr", 100, 0, &bt)); /* 0..99; the one sent ahead is refused */
    T_EQ_INT(slabmq_batch_count(bt), 100);
    for (size_t i = 0; i < 100; i++)
        ids[i] = slabmq_batch_get(bt, i)->id;
    slabmq_batch_free(bt);
    T_EQ_INT(slabmq_fetch(c, "fr", 100, 0, &bt), SLABMQ_ERR_LIMIT);
    T_ASSERT(bt == NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "in-flight") != NULL);
    T_OK(c, slabmq_ack_batch(c, ids, 100, NULL));
    T_OK(c, slabmq_fetch(c, "fr", 100, 0, &bt)); /* its own FETCH again: 100..199 */
    T_EQ_INT(slabmq_batch_count(bt), 100);
    T_EQ_U64(number(slabmq_batch_get(bt, 0)), 100);
    slabmq_batch_free(bt);
    T_EQ_U64(t_stat(p, "fr", "inflight"), 100);
    slabmq_client_close(c);
    slabmq_client_close(p);
    t_broker_stop(&b);
}

int
main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_next_fetch_on_the_wire),
        T_CASE(test_exactly_once_in_order),
        T_CASE(test_exactly_once_in_order_deep),
        T_CASE(test_close_redelivers_ahead),
        T_CASE(test_ahead_batch_first),
        T_CASE(test_refused_ahead_reported_by_next_call),
        {NULL, NULL},
    };

    return t_main(cases, argc, argv);
}
