/* SPDX-License-Identifier: MIT */
/* At-least-once delivery against a real slabmqd: visibility timeouts, requeue when a consumer
 * disconnects, NACK now and later, and ACK errors that leave the connection usable. */
#include <string.h>

#include "slabmq.h"
#include "t.h"

/* Fetch exactly one message (waiting up to wait_ms), returning a copy of its metadata. */
static slabmq_message
fetch_one(slabmq_client *c, const char *queue, uint32_t wait_ms)
{
    slabmq_batch *b;
    slabmq_message m;

    T_OK(c, slabmq_fetch(c, queue, 1, wait_ms, &b));
    T_EQ_INT(slabmq_batch_count(b), 1);
    m = *slabmq_batch_get(b, 0);
    m.data = NULL; /* freed with the batch */
    slabmq_batch_free(b);
    return m;
}

static size_t
fetch_count(slabmq_client *c, const char *queue, uint32_t max, uint32_t wait_ms)
{
    slabmq_batch *b;
    size_t n;

    T_OK(c, slabmq_fetch(c, queue, max, wait_ms, &b));
    n = slabmq_batch_count(b);
    slabmq_batch_free(b);
    return n;
}

static void
test_visibility_timeout_redelivers(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    /* 1 s: long enough that under valgrind on a loaded machine the redelivered message is
     * still held when it is acked */
    slabmq_queue_options qo = {.visibility_ms = 1000};
    slabmq_message m1;
    slabmq_message m2;
    uint64_t id;
    int64_t t0;

    t_broker_start(&b, NULL);
    a = t_client(&b);
    c = t_client(&b);
    T_OK(a, slabmq_declare(a, "vis", &qo, NULL));
    T_OK(a, slabmq_publish(a, "vis", "job", 3, &id));
    m1 = fetch_one(a, "vis", 0);
    T_EQ_U64(m1.id, id);
    T_EQ_INT(m1.deliveries, 1);
    T_EQ_INT(fetch_count(c, "vis", 1, 0), 0); /* in flight: invisible to others */
    t0 = t_now_ms();
    m2 = fetch_one(c, "vis", 5000); /* returns when the 1 s timeout requeues it */
    T_ASSERT(t_now_ms() - t0 >= 800);
    T_EQ_U64(m2.id, id);
    T_EQ_INT(m2.deliveries, 2);
    /* the first consumer no longer holds it */
    T_EQ_INT(slabmq_ack(a, id), SLABMQ_ERR_UNKNOWN_ID);
    T_OK(a, slabmq_ping(a));
    T_OK(c, slabmq_ack(c, id));
    T_EQ_U64(t_stat(c, "vis", "timeouts"), 1);
    T_EQ_U64(t_stat(c, "vis", "redelivered"), 1);
    T_EQ_U64(t_stat(c, "vis", "acked"), 1);
    slabmq_client_close(a);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_disconnect_requeues_at_once(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    slabmq_batch *bt;
    int64_t t0;

    t_broker_start(&b, NULL); /* default visibility: 30 s */
    a = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 3; i++)
        T_OK(a, slabmq_publish(a, "dq", "m", 1, NULL));
    T_EQ_INT(fetch_count(a, "dq", 10, 0), 3);
    T_EQ_U64(t_stat(c, "dq", "inflight"), 3);
    slabmq_client_close(a); /* without acking */
    t0 = t_now_ms();
    T_OK(c, slabmq_fetch(c, "dq", 10, 5000, &bt));
    T_ASSERT(t_now_ms() - t0 < 5000); /* long before the 30 s timeout */
    T_EQ_INT(slabmq_batch_count(bt), 3);
    for (size_t i = 0; i < 3; i++) {
        const slabmq_message *m = slabmq_batch_get(bt, i);
        T_EQ_INT(m->deliveries, 2);
        T_OK(c, slabmq_ack(c, m->id));
    }
    slabmq_batch_free(bt);
    T_EQ_U64(t_stat(c, "dq", "ready"), 0);
    T_EQ_U64(t_stat(c, "dq", "inflight"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_nack_now_and_delayed(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_message m;
    uint64_t id;
    int64_t t0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_publish(c, "nq", "n", 1, &id));
    m = fetch_one(c, "nq", 0);
    T_OK(c, slabmq_nack(c, m.id, 0));
    m = fetch_one(c, "nq", 0); /* ready again at once */
    T_EQ_U64(m.id, id);
    T_EQ_INT(m.deliveries, 2);
    t0 = t_now_ms();
    T_OK(c, slabmq_nack(c, m.id, 1500)); /* 1.5 s: a slow run still checks "not before" */
    T_EQ_U64(t_stat(c, "nq", "delayed"), 1);
    T_EQ_INT(fetch_count(c, "nq", 1, 0), 0); /* not before its time */
    m = fetch_one(c, "nq", 5000);
    T_ASSERT(t_now_ms() - t0 >= 1400);
    T_EQ_INT(m.deliveries, 3);
    T_OK(c, slabmq_ack(c, m.id));
    T_EQ_U64(t_stat(c, "nq", "nacked"), 2);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_ack_errors_keep_connection(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    slabmq_message m1;
    slabmq_message m2;
    uint64_t ids[3];
    uint64_t acked = 99;

    t_broker_start(&b, NULL);
    a = t_client(&b);
    c = t_client(&b);
    T_OK(a, slabmq_publish(a, "aq", "1", 1, NULL));
    T_OK(a, slabmq_publish(a, "aq", "2", 1, NULL));
    m1 = fetch_one(a, "aq", 0);
    m2 = fetch_one(c, "aq", 0);
    /* unknown id */
    T_EQ_INT(slabmq_ack(a, 123456789), SLABMQ_ERR_UNKNOWN_ID);
    T_ASSERT(strstr(slabmq_client_errmsg(a), "123456789") != NULL);
    /* a message held by another connection */
    T_EQ_INT(slabmq_ack(a, m2.id), SLABMQ_ERR_UNKNOWN_ID);
    /* a partial batch: the known id is acked, the call reports the unknown one */
    ids[0] = m1.id;
    ids[1] = 42424242;
    T_EQ_INT(slabmq_ack_batch(a, ids, 2, &acked), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(t_stat(a, "aq", "acked"), 1);
    /* double ack */
    T_EQ_INT(slabmq_ack(a, m1.id), SLABMQ_ERR_UNKNOWN_ID);
    T_OK(a, slabmq_ping(a));
    T_OK(c, slabmq_ack(c, m2.id));
    ids[0] = m2.id;
    T_EQ_INT(slabmq_nack_batch(c, ids, 1, 0, NULL), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(t_stat(c, "aq", "acked"), 2);
    T_EQ_U64(t_stat(c, "aq", "ready"), 0);
    slabmq_client_close(a);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* One ACK of more ids than the broker decodes once (its first pass keeps 320), in an order
 * that breaks the delivery order, with unknown and repeated ids at and around that bound:
 * every listed held id is acked once, each unknown one is counted, and the held id left
 * out (right after the run the repeated id breaks) is still held. */
static void
test_large_ack_mixed_order(void)
{
    enum { N = 1000 };
    struct t_broker b;
    slabmq_client *c;
    uint64_t held[N];
    uint64_t ids[N + 5];
    size_t got = 0;
    size_t k = 0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < N; i++)
        T_OK(c, slabmq_publish(c, "big", "m", 1, NULL));
    while (got < N) {
        slabmq_batch *bt;
        T_OK(c, slabmq_fetch(c, "big", N, 0, &bt));
        T_ASSERT(slabmq_batch_count(bt) > 0);
        for (size_t i = 0; i < slabmq_batch_count(bt); i++)
            held[got++] = slabmq_batch_get(bt, i)->id;
        slabmq_batch_free(bt);
    }
    ids[k++] = 987654321;                  /* unknown first */
    for (int i = 0; i < 318; i++)          /* in delivery order */
        ids[k++] = held[i];
    ids[k++] = held[0];                    /* repeated (index 319): unknown, not held[318] */
    ids[k++] = held[700];                  /* index 320: the first id decoded twice */
    for (int i = N - 1; i > 700; i--)      /* backwards */
        ids[k++] = held[i];
    ids[k++] = 987654323;
    for (int i = 319; i < 700; i += 2)     /* every other one, then the rest */
        ids[k++] = held[i];
    for (int i = 320; i < 700; i += 2)
        ids[k++] = held[i];
    ids[k++] = held[N - 1];                /* repeated at the end */
    T_EQ_U64(k, N + 3);
    T_EQ_INT(slabmq_ack_batch(c, ids, k, NULL), SLABMQ_ERR_UNKNOWN_ID);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "4 of 1003 ids unknown") != NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "(first: 987654321)") != NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "999 settled") != NULL);
    T_EQ_U64(t_stat(c, "big", "acked"), N - 1);
    T_EQ_U64(t_stat(c, "big", "inflight"), 1);
    T_OK(c, slabmq_ack(c, held[318]));
    T_EQ_U64(t_stat(c, "big", "inflight"), 0);
    T_EQ_U64(t_stat(c, "big", "ready"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Acked messages are gone for good: a consumer that disconnects after acking leaves
 * nothing to redeliver, and unacked ones of the same batch come back. */
static void
test_acked_never_return(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t keep_id;

    t_broker_start(&b, NULL);
    a = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 10; i++)
        T_OK(a, slabmq_publish(a, "gone", "x", 1, NULL));
    T_OK(a, slabmq_fetch(a, "gone", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 10);
    for (size_t i = 0; i < 9; i++)
        T_OK(a, slabmq_ack(a, slabmq_batch_get(bt, i)->id));
    keep_id = slabmq_batch_get(bt, 9)->id;
    slabmq_batch_free(bt);
    slabmq_client_close(a);
    T_OK(c, slabmq_fetch(c, "gone", 10, 5000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_U64(slabmq_batch_get(bt, 0)->id, keep_id);
    T_OK(c, slabmq_ack(c, keep_id));
    slabmq_batch_free(bt);
    T_EQ_INT(fetch_count(c, "gone", 10, 200), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* TOUCH restarts the visibility timeout: a message touched before its deadline is not
 * redelivered at the old deadline, only a full timeout after the touch. */
static void
test_touch_extends_visibility(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    slabmq_queue_options qo = {.visibility_ms = 400};
    slabmq_message m;
    uint64_t touched = 0;
    uint64_t bogus = 987654321;
    int64_t t_touch;

    t_broker_start(&b, NULL);
    a = t_client(&b);
    c = t_client(&b);
    T_OK(a, slabmq_declare(a, "tq", &qo, NULL));
    T_OK(a, slabmq_publish(a, "tq", "t", 1, NULL));
    m = fetch_one(a, "tq", 0);
    t_sleep_ms(250);
    T_OK(a, slabmq_touch(a, &m.id, 1, &touched));
    t_touch = t_now_ms();
    T_EQ_U64(touched, 1);
    t_sleep_ms(250); /* past the original 400 ms deadline */
    T_EQ_INT(fetch_count(c, "tq", 1, 0), 0);
    m = fetch_one(c, "tq", 5000); /* comes back a full timeout after the touch */
    T_ASSERT(t_now_ms() - t_touch >= 350);
    T_EQ_INT(m.deliveries, 2);
    T_EQ_INT(slabmq_touch(a, &m.id, 1, NULL), SLABMQ_ERR_UNKNOWN_ID); /* no longer a's */
    T_EQ_INT(slabmq_touch(c, &bogus, 1, NULL), SLABMQ_ERR_UNKNOWN_ID);
    T_OK(c, slabmq_ack(c, m.id));
    slabmq_client_close(a);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The messages of one FETCH share one timer entry in the broker (docs/semantics.md section
 * 7), and still each comes back at its own deadline: the first and one in the middle acked,
 * one touched, and the other three return together at the batch's deadline, the touched one
 * a full timeout after its TOUCH. */
static void
test_batch_times_out_each(void)
{
    struct t_broker b;
    slabmq_client *a;
    slabmq_client *c;
    slabmq_queue_options qo = {.visibility_ms = 600};
    slabmq_batch *got;
    uint64_t ids[6];
    uint64_t back[6];
    size_t n;
    int64_t t0;
    int64_t t_touch;

    t_broker_start(&b, NULL);
    a = t_client(&b);
    c = t_client(&b);
    T_OK(a, slabmq_declare(a, "runs", &qo, NULL));
    for (int i = 0; i < 6; i++)
        T_OK(a, slabmq_publish(a, "runs", "r", 1, NULL));
    T_OK(a, slabmq_fetch(a, "runs", 6, 0, &got));
    t0 = t_now_ms();
    T_EQ_INT(slabmq_batch_count(got), 6);
    for (int i = 0; i < 6; i++)
        ids[i] = slabmq_batch_get(got, (size_t)i)->id;
    slabmq_batch_free(got);
    T_EQ_U64(t_stat(a, NULL, "timers"), 1); /* one entry for the six */
    T_OK(a, slabmq_ack(a, ids[0]));
    T_OK(a, slabmq_ack(a, ids[3]));
    t_sleep_ms(300);
    T_OK(a, slabmq_touch(a, &ids[4], 1, NULL));
    t_touch = t_now_ms();
    T_OK(c, slabmq_fetch(c, "runs", 6, 5000, &got)); /* the batch's deadline */
    T_ASSERT(t_now_ms() - t0 >= 500);
    n = slabmq_batch_count(got);
    for (size_t i = 0; i < n; i++)
        back[i] = slabmq_batch_get(got, i)->id;
    slabmq_batch_free(got);
    if (n < 3) { /* a slow machine may split the three over two sweeps */
        T_OK(c, slabmq_fetch(c, "runs", 6, 2000, &got));
        for (size_t i = 0; i < slabmq_batch_count(got) && n < 6; i++)
            back[n++] = slabmq_batch_get(got, i)->id;
        slabmq_batch_free(got);
    }
    T_EQ_U64(n, 3);
    T_EQ_U64(back[0] + back[1] + back[2], ids[1] + ids[2] + ids[5]);
    for (size_t i = 0; i < 3; i++)
        T_ASSERT(back[i] == ids[1] || back[i] == ids[2] || back[i] == ids[5]);
    T_OK(c, slabmq_fetch(c, "runs", 6, 5000, &got)); /* the touched one, later */
    T_ASSERT(t_now_ms() - t_touch >= 500);
    T_EQ_INT(slabmq_batch_count(got), 1);
    T_EQ_U64(slabmq_batch_get(got, 0)->id, ids[4]);
    slabmq_batch_free(got);
    T_EQ_U64(t_stat(c, "runs", "timeouts"), 4);
    T_EQ_U64(t_stat(c, "runs", "acked"), 2);
    slabmq_client_close(a);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A paused queue accepts publishes and delivers nothing; RESUME delivers again. */
static void
test_pause_resume(void)
{
    struct t_broker b;
    slabmq_client *c;
    int was = -1;
    int64_t t0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_EQ_INT(slabmq_pause(c, "pq", NULL), SLABMQ_ERR_NOT_FOUND);
    T_OK(c, slabmq_publish(c, "pq", "1", 1, NULL));
    T_OK(c, slabmq_pause(c, "pq", &was));
    T_EQ_INT(was, 0);
    T_OK(c, slabmq_pause(c, "pq", &was));
    T_EQ_INT(was, 1);
    T_OK(c, slabmq_publish(c, "pq", "2", 1, NULL)); /* still accepted */
    T_EQ_U64(t_stat(c, "pq", "paused"), 1);
    T_EQ_U64(t_stat(c, "pq", "ready"), 2);
    t0 = t_now_ms();
    T_EQ_INT(fetch_count(c, "pq", 10, 300), 0); /* waits its full 300 ms: nothing delivered */
    T_ASSERT(t_now_ms() - t0 >= 250);
    T_OK(c, slabmq_resume(c, "pq", &was));
    T_EQ_INT(was, 1);
    T_EQ_INT(fetch_count(c, "pq", 10, 0), 2);
    T_EQ_U64(t_stat(c, "pq", "paused"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Retry backoff: each NACK without a delay (and each visibility timeout) waits
 * base * 2^(deliveries-1), capped, minus up to 20% jitter: 200, 400, then 500 (the cap). */
static void
test_backoff_grows_and_is_bounded(void)
{
    static const int64_t want[] = {200, 400, 500, 500};
    struct t_broker b;
    slabmq_client *c;
    slabmq_queue_options qo = {.retry_backoff_ms = 200, .retry_backoff_max_ms = 500};
    slabmq_queue_options off = {.retry_backoff_ms = SLABMQ_NO_BACKOFF};
    slabmq_message m;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_declare(c, "bq", &qo, NULL));
    T_EQ_U64(t_stat(c, "bq", "retry_backoff_ms"), 200);
    T_OK(c, slabmq_publish(c, "bq", "b", 1, NULL));
    m = fetch_one(c, "bq", 0);
    for (int i = 0; i < 4; i++) {
        int64_t t0;
        int64_t waited;
        T_OK(c, slabmq_nack(c, m.id, 0));
        t0 = t_now_ms();
        m = fetch_one(c, "bq", 5000);
        waited = t_now_ms() - t0;
        if (waited < want[i] * 8 / 10 - 20 || waited > want[i] + 300)
            t_fail(__FILE__, __LINE__, "attempt %d waited %lld ms, expected %lld minus 0-20%%",
                   i + 2, (long long)waited, (long long)want[i]);
        T_EQ_INT(m.deliveries, i + 2);
    }
    T_OK(c, slabmq_ack(c, m.id));
    /* a visibility timeout backs off the same way: a first delivery not acked within 100 ms
     * is ready again 200 ms (minus jitter) after that */
    qo.visibility_ms = 100;
    T_OK(c, slabmq_declare(c, "bq", &qo, NULL));
    T_OK(c, slabmq_publish(c, "bq", "t", 1, NULL));
    {
        slabmq_client *other = t_client(&b);
        int64_t t0 = t_now_ms();
        int64_t waited;
        m = fetch_one(c, "bq", 0);
        m = fetch_one(other, "bq", 5000);
        waited = t_now_ms() - t0;
        T_ASSERT(waited >= 100 + 160 - 20 && waited <= 100 + 200 + 300);
        T_EQ_INT(m.deliveries, 2);
        T_EQ_U64(t_stat(c, "bq", "timeouts"), 1);
        T_OK(other, slabmq_ack(other, m.id));
        slabmq_client_close(other);
    }
    T_OK(c, slabmq_declare(c, "bq", &off, NULL)); /* and it can be turned off */
    T_EQ_U64(t_stat(c, "bq", "retry_backoff_ms"), 0);
    T_OK(c, slabmq_publish(c, "bq", "c", 1, NULL));
    m = fetch_one(c, "bq", 0);
    T_OK(c, slabmq_nack(c, m.id, 0));
    T_EQ_INT(fetch_count(c, "bq", 1, 0), 1); /* at once */
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_backoff_grows_and_is_bounded),
    T_CASE(test_touch_extends_visibility),
    T_CASE(test_batch_times_out_each),
    T_CASE(test_pause_resume),
    T_CASE(test_visibility_timeout_redelivers),
    T_CASE(test_disconnect_requeues_at_once),
    T_CASE(test_nack_now_and_delayed),
    T_CASE(test_ack_errors_keep_connection),
    T_CASE(test_large_ack_mixed_order),
    T_CASE(test_acked_never_return),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
