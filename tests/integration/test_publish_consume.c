/* SPDX-License-Identifier: MIT */
/* Publish and consume through libslabmq against a real slabmqd: volume with byte-exact
 * payloads, edge sizes up to and over the maximum, long-poll wake-up, and concurrent
 * consumers that must never see a message twice. */
#include <pthread.h>
#include <unistd.h>

#include "slabmq.h"
#include "t.h"

#define VOLUME 100000
#define BODY 100

/* Deterministic payload for message number i: its number, then a pattern. */
static void
make_body(uint8_t *p, size_t len, uint64_t i)
{
    for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)(i * 31 + k * 7 + (i >> 8));
    if (len >= 8)
        memcpy(p, &i, 8);
}

/* Fetch and ack everything in 'queue', checking each payload against make_body and that
 * numbers arrive exactly once and in order. */
static void
drain_check(slabmq_client *c, const char *queue, uint64_t count, size_t len)
{
    uint64_t next = 0;
    uint8_t want[BODY];
    static uint64_t ids[1000];

    while (next < count) {
        slabmq_batch *b;
        size_t n;
        T_OK(c, slabmq_fetch(c, queue, 1000, 2000, &b));
        n = slabmq_batch_count(b);
        T_ASSERT(n > 0);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(b, i);
            uint64_t num;
            T_EQ_U64(m->len, len);
            memcpy(&num, m->data, 8);
            T_EQ_U64(num, next);
            make_body(want, len, next);
            T_EQ_MEM(m->data, want, len);
            T_EQ_INT(m->deliveries, 1);
            ids[i] = m->id;
            next++;
        }
        T_OK(c, slabmq_ack_batch(c, ids, n, NULL));
        slabmq_batch_free(b);
    }
}

static void
assert_empty(slabmq_client *c, const char *queue)
{
    slabmq_stats *s;
    uint64_t v = 99;

    T_OK(c, slabmq_stats_get(c, queue, &s));
    T_ASSERT(slabmq_stats_find(s, "ready", &v));
    T_EQ_U64(v, 0);
    T_ASSERT(slabmq_stats_find(s, "inflight", &v));
    T_EQ_U64(v, 0);
    slabmq_stats_free(s);
}

static void
test_volume_single(void)
{
    struct t_broker b;
    slabmq_client *c;
    uint8_t body[BODY];
    uint64_t id;
    uint64_t prev = 0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (uint64_t i = 0; i < VOLUME; i++) {
        make_body(body, BODY, i);
        T_OK(c, slabmq_publish(c, "vol", body, BODY, &id));
        T_ASSERT(id > prev);
        prev = id;
    }
    drain_check(c, "vol", VOLUME, BODY);
    assert_empty(c, "vol");
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_volume_batched(void)
{
    struct t_broker b;
    slabmq_client *c;
    static uint8_t bodies[500][BODY];
    slabmq_payload p[500];
    uint64_t first;
    uint64_t expect_first = 0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (uint64_t i = 0; i < VOLUME; i += 500) {
        for (int k = 0; k < 500; k++) {
            make_body(bodies[k], BODY, i + (uint64_t)k);
            p[k] = (slabmq_payload){bodies[k], BODY};
        }
        T_OK(c, slabmq_publish_batch(c, "batch", p, 500, &first));
        if (expect_first)
            T_EQ_U64(first, expect_first); /* ids of a batch are consecutive */
        expect_first = first + 500;
    }
    drain_check(c, "batch", VOLUME, BODY);
    assert_empty(c, "batch");
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* 0 B, 1 B, 64 KiB, exactly the maximum (1 MiB), and one byte over it. */
static void
test_edge_sizes(void)
{
    static const size_t sizes[] = {0, 1, 65536, 1 << 20};
    struct t_broker b;
    slabmq_client *c;
    static uint8_t big[(1 << 20) + 1];
    slabmq_batch *bt;
    uint64_t id;
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i % 251);
    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (size_t i = 0; i < n; i++)
        T_OK(c, slabmq_publish(c, "edge", big, sizes[i], &id));
    T_EQ_INT(slabmq_publish(c, "edge", big, (1 << 20) + 1, &id), SLABMQ_ERR_TOO_LARGE);
    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m;
        T_OK(c, slabmq_fetch(c, "edge", 1, 1000, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 1);
        m = slabmq_batch_get(bt, 0);
        T_EQ_U64(m->len, sizes[i]);
        T_EQ_MEM(m->data, big, sizes[i]);
        T_OK(c, slabmq_ack(c, m->id));
        slabmq_batch_free(bt);
    }
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The broker itself refuses one byte over the maximum, not only the library: a raw
 * PUBLISH [8, 2, "q", bin(4097)] gets ERR_TOO_LARGE and the connection stays usable. */
static void
test_broker_refuses_oversize(void)
{
    struct t_broker b;
    static uint8_t frame[4 + 8 + 4097];
    static const uint8_t hdr[] = {0x94, 0x08, 0x02, 0xa1, 'q', 0xc5, 0x10, 0x01};
    static const uint8_t ping[] = {0, 0, 0, 3, 0x92, 0x02, 0x03};
    uint8_t reply[512];
    long n;
    int fd;

    t_broker_start(&b, "--max-message-size", "4096", NULL);
    fd = t_raw_connect(b.port);
    t_raw_hello(fd);
    frame[0] = 0;
    frame[1] = 0;
    frame[2] = (uint8_t)((8 + 4097) >> 8);
    frame[3] = (uint8_t)(8 + 4097);
    memcpy(frame + 4, hdr, sizeof(hdr));
    t_raw_send(fd, frame, sizeof(frame));
    n = t_raw_recv_frame(fd, reply, sizeof(reply), 5000);
    T_ASSERT(n > 4);
    T_EQ_INT(reply[0], 0x94); /* [op, rid, code, message] */
    T_EQ_INT(reply[1], 0x08);
    T_EQ_INT(reply[2], 0x02);
    T_EQ_INT(reply[3], SLABMQ_ERR_TOO_LARGE);
    t_raw_send(fd, ping, sizeof(ping));
    n = t_raw_recv_frame(fd, reply, sizeof(reply), 5000);
    T_EQ_INT(n, 4); /* [2, 3, 0] */
    T_EQ_INT(reply[3], 0);
    close(fd);
    t_broker_stop(&b);
}

struct waiter_arg {
    int port;
    slabmq_status st;
    size_t got;
    int64_t waited_ms;
    char payload[32];
};

static void *
long_poll(void *p)
{
    struct waiter_arg *a = p;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c;
    slabmq_batch *b = NULL;
    int64_t t0;

    o.port = (uint16_t)a->port;
    if (slabmq_client_connect(&o, &c) != SLABMQ_OK)
        return NULL;
    t0 = t_now_ms();
    a->st = slabmq_fetch(c, "lp", 10, 10000, &b);
    a->waited_ms = t_now_ms() - t0;
    a->got = slabmq_batch_count(b);
    if (a->got)
        snprintf(a->payload, sizeof(a->payload), "%.*s", (int)slabmq_batch_get(b, 0)->len,
                 (const char *)slabmq_batch_get(b, 0)->data);
    slabmq_batch_free(b);
    slabmq_client_close(c);
    return NULL;
}

static void
test_long_poll_wakes_on_publish(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct waiter_arg a = {0};
    pthread_t th;
    slabmq_stats *s;
    uint64_t waiters = 0;
    int64_t deadline;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    a.port = b.port;
    a.st = SLABMQ_ERR_IO;
    T_EQ_INT(pthread_create(&th, NULL, long_poll, &a), 0);
    deadline = t_now_ms() + 5000; /* wait until the broker holds the waiter */
    while (waiters == 0 && t_now_ms() < deadline) {
        t_sleep_ms(10);
        if (slabmq_stats_get(c, "lp", &s) == SLABMQ_OK) {
            slabmq_stats_find(s, "waiters", &waiters);
            slabmq_stats_free(s);
        }
    }
    T_EQ_U64(waiters, 1);
    T_OK(c, slabmq_publish(c, "lp", "wake", 4, NULL));
    pthread_join(th, NULL);
    T_EQ_INT(a.st, SLABMQ_OK);
    T_EQ_INT(a.got, 1);
    T_EQ_STR(a.payload, "wake");
    T_ASSERT(a.waited_ms < 9000); /* woke on the publish, not at the 10 s timeout */
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* SIGTERM answers a parked FETCH with ERR_SHUTDOWN instead of leaving it to time out. */
static void
test_shutdown_answers_waiters(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct waiter_arg a = {0};
    pthread_t th;
    slabmq_stats *s;
    uint64_t waiters = 0;
    int64_t deadline;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    a.port = b.port;
    T_EQ_INT(pthread_create(&th, NULL, long_poll, &a), 0);
    deadline = t_now_ms() + 5000;
    while (waiters == 0 && t_now_ms() < deadline) {
        t_sleep_ms(10);
        if (slabmq_stats_get(c, "lp", &s) == SLABMQ_OK) {
            slabmq_stats_find(s, "waiters", &waiters);
            slabmq_stats_free(s);
        }
    }
    T_EQ_U64(waiters, 1);
    slabmq_client_close(c);
    t_broker_stop(&b);
    pthread_join(th, NULL);
    T_EQ_INT(a.st, SLABMQ_ERR_SHUTDOWN);
    T_ASSERT(a.waited_ms < 9000);
}

static void
test_long_poll_times_out_empty(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    int64_t t0;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    t0 = t_now_ms();
    T_OK(c, slabmq_fetch(c, "empty", 5, 300, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_ASSERT(t_now_ms() - t0 >= 250);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_ping(c)); /* the connection is still in step */
    slabmq_client_close(c);
    t_broker_stop(&b);
}

#define CONSUMERS 4
#define SHARED 20000

struct consumer_arg {
    int port;
    uint8_t *seen; /* SHARED flags, one per message number; shared, guarded by lock */
    uint64_t *total; /* messages seen by all consumers; guarded by lock */
    pthread_mutex_t *lock;
    uint64_t dupes;
    uint64_t got;
    int failed;
};

static void *
consume(void *p)
{
    struct consumer_arg *a = p;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c;
    int64_t deadline = t_now_ms() + 60000;

    o.port = (uint16_t)a->port;
    if (slabmq_client_connect(&o, &c) != SLABMQ_OK) {
        a->failed = 1;
        return NULL;
    }
    while (t_now_ms() < deadline) {
        slabmq_batch *b;
        size_t n;
        if (slabmq_fetch(c, "shared", 50, 500, &b) != SLABMQ_OK) {
            a->failed = 1;
            break;
        }
        n = slabmq_batch_count(b);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(b, i);
            uint64_t num;
            memcpy(&num, m->data, 8);
            pthread_mutex_lock(a->lock);
            if (num >= SHARED || a->seen[num])
                a->dupes++;
            else
                a->seen[num] = 1;
            (*a->total)++;
            pthread_mutex_unlock(a->lock);
            a->got++;
            if (slabmq_ack(c, m->id) != SLABMQ_OK)
                a->failed = 1;
        }
        slabmq_batch_free(b);
        pthread_mutex_lock(a->lock);
        n = *a->total >= SHARED;
        pthread_mutex_unlock(a->lock);
        if (n)
            break; /* all delivered; nothing may be left to see twice */
    }
    slabmq_client_close(c);
    return NULL;
}

static void
test_four_consumers_no_duplicates(void)
{
    struct t_broker b;
    slabmq_client *c;
    static uint8_t seen[SHARED];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct consumer_arg a[CONSUMERS];
    pthread_t th[CONSUMERS];
    uint64_t total = 0;
    uint64_t shared_total = 0;
    uint8_t body[16];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < CONSUMERS; i++) {
        a[i] = (struct consumer_arg){b.port, seen, &shared_total, &lock, 0, 0, 0};
        T_EQ_INT(pthread_create(&th[i], NULL, consume, &a[i]), 0);
    }
    for (uint64_t i = 0; i < SHARED; i++) { /* publish while they consume */
        make_body(body, sizeof(body), i);
        T_OK(c, slabmq_publish(c, "shared", body, sizeof(body), NULL));
    }
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(th[i], NULL);
        T_EQ_INT(a[i].failed, 0);
        T_EQ_U64(a[i].dupes, 0);
        total += a[i].got;
    }
    T_EQ_U64(total, SHARED);
    for (int i = 0; i < SHARED; i++)
        T_EQ_INT(seen[i], 1);
    assert_empty(c, "shared");
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_declare_delete_purge_list(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_queue_options qo = {.visibility_ms = 500};
    slabmq_queue_info *l;
    size_t n;
    int created = -1;
    uint64_t count;
    slabmq_stats *s;
    uint64_t v;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_declare(c, "b-queue", &qo, &created));
    T_EQ_INT(created, 1);
    T_OK(c, slabmq_declare(c, "b-queue", NULL, &created));
    T_EQ_INT(created, 0);
    T_OK(c, slabmq_stats_get(c, "b-queue", &s));
    T_ASSERT(slabmq_stats_find(s, "visibility_ms", &v));
    T_EQ_U64(v, 500);
    slabmq_stats_free(s);
    for (int i = 0; i < 7; i++)
        T_OK(c, slabmq_publish(c, "a-queue", "x", 1, NULL));
    T_OK(c, slabmq_list(c, &l, &n));
    T_EQ_INT(n, 2);
    T_EQ_STR(l[0].name, "a-queue"); /* sorted by name */
    T_EQ_U64(l[0].ready, 7);
    T_EQ_STR(l[1].name, "b-queue");
    slabmq_queue_list_free(l);
    T_OK(c, slabmq_purge(c, "a-queue", &count));
    T_EQ_U64(count, 7);
    T_OK(c, slabmq_publish(c, "a-queue", "y", 1, NULL));
    T_OK(c, slabmq_delete(c, "a-queue", &count));
    T_EQ_U64(count, 1);
    T_EQ_INT(slabmq_delete(c, "a-queue", &count), SLABMQ_ERR_NOT_FOUND);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "a-queue") != NULL);
    /* the same connection publishes to the name again: a new, empty queue (the broker's
     * per-connection queue cache must not hand back the deleted one) */
    T_OK(c, slabmq_publish(c, "a-queue", "z", 1, NULL));
    T_OK(c, slabmq_stats_get(c, "a-queue", &s));
    T_ASSERT(slabmq_stats_find(s, "published", &v));
    T_EQ_U64(v, 1);
    slabmq_stats_free(s);
    T_OK(c, slabmq_delete(c, "a-queue", &count));
    T_EQ_INT(slabmq_declare(c, "bad name", NULL, NULL), SLABMQ_ERR_BAD_NAME);
    T_OK(c, slabmq_list(c, &l, &n));
    T_EQ_INT(n, 1);
    slabmq_queue_list_free(l);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_volume_single),
    T_CASE(test_volume_batched),
    T_CASE(test_edge_sizes),
    T_CASE(test_broker_refuses_oversize),
    T_CASE(test_long_poll_wakes_on_publish),
    T_CASE(test_long_poll_times_out_empty),
    T_CASE(test_shutdown_answers_waiters),
    T_CASE(test_four_consumers_no_duplicates),
    T_CASE(test_declare_delete_purge_list),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
