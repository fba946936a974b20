/* SPDX-License-Identifier: MIT */
/* Pipelined client calls against a real slabmqd: asynchronous publishes with a window and a
 * confirmation callback, errors reported by slabmq_flush, acks sent with the next fetch, and
 * synchronous calls mixed in. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raw.h"
#include "slabmq.h"
#include "t.h"

struct confirms {
    uint64_t n;          /* confirmations seen */
    uint64_t ok;         /* of which successful */
    uint64_t next_req;   /* request id expected next (they come in order) */
    uint64_t last_value; /* last message id confirmed */
    int out_of_order;
};

static void
on_confirm(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    struct confirms *cf = arg;

    if (cf->n > 0 && request != cf->next_req)
        cf->out_of_order = 1;
    cf->next_req = request + 1;
    cf->n++;
    if (status == SLABMQ_OK) {
        if (cf->ok > 0 && value != cf->last_value + 1)
            cf->out_of_order = 1; /* one connection, one queue: ids are consecutive */
        cf->ok++;
        cf->last_value = value;
    }
}

static uint64_t
stat_of(slabmq_client *c, const char *queue, const char *name)
{
    slabmq_stats *s;
    uint64_t v = UINT64_MAX;

    T_OK(c, slabmq_stats_get(c, queue, &s));
    T_ASSERT(slabmq_stats_find(s, name, &v));
    slabmq_stats_free(s);
    return v;
}

static void
test_async_publish_window(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct confirms cf = {0};
    char body[32];
    uint64_t req = 0;
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    slabmq_client_set_window(c, 64);
    slabmq_client_on_confirm(c, on_confirm, &cf);
    for (int i = 0; i < 10000; i++) {
        snprintf(body, sizeof(body), "m%05d", i);
        T_OK(c, slabmq_publish_async(c, "pipe", body, 6, &req));
        T_ASSERT(slabmq_client_outstanding(c) <= 64);
    }
    T_ASSERT(cf.n < 10000); /* most are still unconfirmed... */
    T_OK(c, slabmq_flush(c)); /* ...until the flush */
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    T_EQ_U64(cf.n, 10000);
    T_EQ_U64(cf.ok, 10000);
    T_EQ_INT(cf.out_of_order, 0);
    T_EQ_U64(cf.next_req, req + 1);
    T_EQ_U64(stat_of(c, "pipe", "ready"), 10000);
    /* in publish order, byte-exact */
    T_OK(c, slabmq_peek(c, "pipe", 3, &bt));
    T_EQ_MEM(slabmq_batch_get(bt, 0)->data, "m00000", 6);
    T_EQ_MEM(slabmq_batch_get(bt, 2)->data, "m00002", 6);
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A synchronous call in the middle sends what is queued and reads those confirmations
 * first; an error of a pipelined request is reported by the next flush. */
static void
test_async_errors_and_sync_mix(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct confirms cf = {0};
    slabmq_queue_options lim = {.max_messages = 5};

    t_broker_start(&b, NULL);
    c = t_client(&b);
    slabmq_client_on_confirm(c, on_confirm, &cf);
    T_OK(c, slabmq_declare(c, "small", &lim, NULL));
    for (int i = 0; i < 8; i++)
        T_OK(c, slabmq_publish_async(c, "small", "x", 1, NULL));
    T_EQ_U64(stat_of(c, "small", "ready"), 5); /* the sync STATS saw all 8 processed */
    T_EQ_U64(cf.n, 8);
    T_EQ_U64(cf.ok, 5);
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_QUEUE_FULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "full") != NULL);
    T_OK(c, slabmq_flush(c)); /* reported once */
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A consumer loop: fetch a batch, ack it asynchronously; the ack goes out with the next
 * fetch, and nothing is delivered twice. */
static void
test_async_ack_with_fetch(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    uint64_t got = 0;
    uint64_t ids[100];

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 5000; i++)
        T_OK(p, slabmq_publish_async(p, "work", "job", 3, NULL));
    T_OK(p, slabmq_flush(p));
    for (int round = 0; round < 200 && got < 5000; round++) {
        slabmq_batch *bt;
        size_t n;
        T_OK(c, slabmq_fetch(c, "work", 100, 1000, &bt));
        n = slabmq_batch_count(bt);
        for (size_t i = 0; i < n; i++) {
            T_EQ_INT(slabmq_batch_get(bt, i)->deliveries, 1);
            ids[i] = slabmq_batch_get(bt, i)->id;
        }
        if (n)
            T_OK(c, slabmq_ack_async(c, ids, n, NULL));
        slabmq_batch_free(bt);
        got += n;
    }
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(got, 5000);
    T_EQ_U64(stat_of(p, "work", "acked"), 5000);
    T_EQ_U64(stat_of(p, "work", "inflight"), 0);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* At-most-once fetch: delivered once, nothing held, nothing to ack or redeliver. */
static void
test_fetch_noack(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 10; i++)
        T_OK(c, slabmq_publish_async(c, "amo", "z", 1, NULL));
    T_OK(c, slabmq_fetch_flags(c, "amo", 6, 0, SLABMQ_FETCH_NOACK, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 6);
    T_EQ_INT(slabmq_ack(c, slabmq_batch_get(bt, 0)->id), SLABMQ_ERR_UNKNOWN_ID);
    slabmq_batch_free(bt);
    T_EQ_U64(stat_of(c, "amo", "inflight"), 0);
    T_EQ_U64(stat_of(c, "amo", "ready"), 4);
    slabmq_client_close(c);
    c = t_client(&b); /* a reconnect brings nothing back */
    T_OK(c, slabmq_fetch_flags(c, "amo", 10, 100, SLABMQ_FETCH_NOACK, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    slabmq_batch_free(bt);
    T_EQ_U64(stat_of(c, "amo", "ready"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* slabmq_send puts queued requests on the wire at once: a consumer sees the message
 * before the producer has read any confirmation. */
static void
test_send_without_waiting(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    struct confirms cf = {0};
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    slabmq_client_on_confirm(p, on_confirm, &cf);
    T_OK(p, slabmq_publish_async(p, "now", "fresh", 5, NULL));
    T_OK(p, slabmq_send(p));
    T_OK(c, slabmq_fetch(c, "now", 1, 5000, &bt)); /* long-poll: arrives without a flush */
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_MEM(slabmq_batch_get(bt, 0)->data, "fresh", 5);
    slabmq_batch_free(bt);
    for (int i = 0; i < 100 && cf.n == 0; i++) { /* the confirmation arrives by itself */
        t_sleep_ms(10);
        T_OK(p, slabmq_send(p));
    }
    T_EQ_U64(cf.n, 1);
    T_EQ_U64(slabmq_client_outstanding(p), 0);
    T_OK(p, slabmq_flush(p));
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The pushes made for a batch of PUBLISHes read at once leave in one write, before the
 * publisher's confirmations, as a FETCH reply would carry them: here 20 PUBLISHes in one
 * send reach the subscriber in one segment (before, with a writev per push: 11 in one run). */
static void
test_pushes_of_one_read_in_one_write(void)
{
    struct t_broker b;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    const uint64_t n = 20;
    uint32_t segs;
    int fd;
    int sfd;

    t_broker_start(&b, NULL);
    fd = raw_session(&b);
    sfd = raw_session(&b);
    mb_req(&m, SMQ_OP_SUBSCRIBE, 2, 2);
    mb_str(&m, "batched");
    mb_uint(&m, 100);
    send_mb(sfd, &m);
    EXPECT_OK(sfd, SMQ_OP_SUBSCRIBE, 2, &p);
    segs = raw_data_segs_in(sfd);
    for (uint64_t i = 0; i < n; i++) {
        mb_req(&m, SMQ_OP_PUBLISH, 10 + i, 2);
        mb_str(&m, "batched");
        mb_bin(&m, "payload", 7);
        mb_frame(&stream, m.p, m.len);
        m.len = 0;
    }
    T_EQ_INT(send(fd, stream.p, stream.len, 0), (long)stream.len);
    for (uint64_t i = 0; i < n; i++)
        EXPECT_OK(fd, SMQ_OP_PUBLISH, 10 + i, &p);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k;
        EXPECT_OK(sfd, SMQ_OP_DELIVER, 1, &p); /* [DELIVER, subscription 1, 0, [message]] */
        T_ASSERT(smq_mpr_array(&p.r, &k) == 0 && k == 1);
    }
    T_EQ_U64(raw_data_segs_in(sfd) - segs, 1);
    mb_free(&m);
    mb_free(&stream);
    close(fd);
    close(sfd);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_pushes_of_one_read_in_one_write),
    T_CASE(test_send_without_waiting),
    T_CASE(test_fetch_noack),
    T_CASE(test_async_publish_window),
    T_CASE(test_async_errors_and_sync_mix),
    T_CASE(test_async_ack_with_fetch),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
