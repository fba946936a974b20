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

/* Confirmations of acks: in request order, each with its count. */
struct ack_confirms {
    uint64_t n;        /* confirmations seen */
    uint64_t ok;       /* of which successful */
    uint64_t acked;    /* the counts they carried */
    uint64_t next_req; /* request id expected next (after the first) */
    uint64_t last_err; /* request id of the last failure */
    int out_of_order;
};

static void
on_ack_confirm(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    struct ack_confirms *cf = arg;

    if (cf->n > 0 && request < cf->next_req)
        cf->out_of_order = 1; /* ids rise; the flush's PING takes one without a callback */
    cf->next_req = request + 1;
    cf->n++;
    if (status == SLABMQ_OK) {
        cf->ok++;
        cf->acked += value;
    } else {
        cf->last_err = request;
    }
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
    T_EQ_U64(t_stat(c, "pipe", "ready"), 10000);
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
    T_EQ_U64(t_stat(c, "small", "ready"), 5); /* the sync STATS saw all 8 processed */
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
    T_EQ_U64(t_stat(p, "work", "acked"), 5000);
    T_EQ_U64(t_stat(p, "work", "inflight"), 0);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Pipelined acks go QUIET against this broker; their confirmations still come once each, in
 * request order, with the count: from the reply to the next request (a FETCH), or from the
 * PING slabmq_flush() sends when nothing else follows them. A failing one is reported as
 * before, and a small window of quiet acks neither stalls nor confirms a request inside the
 * call that queued it. */
static void
test_quiet_acks_confirmed(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct ack_confirms cf = {0};
    slabmq_batch *bt;
    uint64_t ids[40];
    uint64_t req = 0;
    uint64_t bogus = 1u << 30;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 40; i++)
        T_OK(c, slabmq_publish_async(c, "qa", "job", 3, NULL));
    T_OK(c, slabmq_flush(c));
    slabmq_client_on_confirm(c, on_ack_confirm, &cf);
    T_OK(c, slabmq_fetch(c, "qa", 40, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 40);
    for (int i = 0; i < 40; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    for (int i = 0; i < 10; i++)
        T_OK(c, slabmq_ack_async(c, &ids[i], 1, &req));
    T_EQ_U64(slabmq_client_outstanding(c), 10);
    T_EQ_U64(cf.n, 0);
    T_OK(c, slabmq_fetch(c, "qa", 1, 0, &bt)); /* nothing ready: its reply confirms them */
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    T_EQ_U64(cf.n, 10);
    T_EQ_U64(cf.acked, 10);
    T_EQ_U64(cf.next_req, req + 1);
    T_ASSERT(!cf.out_of_order);
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    /* an unknown id among them: its error, the others confirmed, flush reports it */
    T_OK(c, slabmq_ack_async(c, &ids[10], 1, NULL));
    T_OK(c, slabmq_ack_async(c, &bogus, 1, &req));
    T_OK(c, slabmq_ack_async(c, &ids[11], 1, NULL));
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(cf.n, 13);
    T_EQ_U64(cf.acked, 12);
    T_EQ_U64(cf.last_err, req);
    T_ASSERT(!cf.out_of_order);
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    /* a window of 4: one ack in four is plain, so the window frees up without a PING */
    slabmq_client_set_window(c, 4);
    for (int i = 12; i < 40; i++) {
        uint64_t before = cf.n;
        T_OK(c, slabmq_ack_async(c, &ids[i], 1, &req));
        T_ASSERT(cf.n == before || cf.next_req <= req); /* never this request itself */
    }
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(cf.n, 41);
    T_EQ_U64(cf.acked, 40);
    T_ASSERT(!cf.out_of_order);
    T_EQ_U64(t_stat(c, "qa", "acked"), 40);
    T_EQ_U64(t_stat(c, "qa", "inflight"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A synchronous call refused before it is sent (a batch over the broker's frame size) takes
 * no request id: the pipelined requests around it keep consecutive ids, so the QUIET ACKs
 * before and after it are confirmed by the next reply instead of the client calling that
 * reply out of order (and the connection broken). */
static void
test_refused_call_leaves_no_gap(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct ack_confirms cf = {0};
    slabmq_batch *bt;
    uint64_t ids[4];
    uint64_t req = 0;
    static char big[600 * 1024];
    slabmq_payload two[2] = {{big, sizeof(big)}, {big, sizeof(big)}};

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 4; i++)
        T_OK(c, slabmq_publish(c, "gap", "job", 3, NULL));
    T_OK(c, slabmq_fetch(c, "gap", 4, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    for (int i = 0; i < 4; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    slabmq_client_on_confirm(c, on_ack_confirm, &cf);
    T_OK(c, slabmq_ack_async(c, &ids[0], 1, NULL));
    T_EQ_INT(slabmq_publish_batch(c, "gap", two, 2, NULL), SLABMQ_ERR_ARG); /* over max_frame */
    T_OK(c, slabmq_ack_async(c, &ids[1], 1, NULL));
    T_OK(c, slabmq_fetch(c, "gap", 1, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    slabmq_batch_free(bt);
    T_EQ_U64(cf.n, 2);
    T_EQ_U64(cf.acked, 2);
    /* the same with a plain request after the gap, read by flush */
    T_OK(c, slabmq_ack_async(c, &ids[2], 1, NULL));
    T_EQ_INT(slabmq_publish_batch(c, "gap", two, 2, NULL), SLABMQ_ERR_ARG);
    T_OK(c, slabmq_publish_async(c, "gap", "x", 1, NULL));
    T_OK(c, slabmq_ack_async(c, &ids[3], 1, &req));
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(cf.n, 5);
    T_EQ_U64(cf.next_req, req + 1);
    T_ASSERT(!cf.out_of_order);
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    T_EQ_U64(t_stat(c, "gap", "acked"), 4);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* QUIET ACKs outstanding when the broker closes the connection (idle timeout, a
 * connection-level error): none is confirmed, since nothing proves it; and once the
 * connection is known broken, slabmq_flush() sends no PING after them (a write to a closed
 * socket, failing with EPIPE and hiding the reason) but says the connection is unusable. */
static void
test_quiet_acks_at_a_connection_error(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct ack_confirms cf = {0};
    slabmq_batch *bt;
    uint64_t ids[2];

    t_broker_start(&b, "--idle-timeout", "300", NULL);
    c = t_client(&b);
    for (int i = 0; i < 2; i++)
        T_OK(c, slabmq_publish(c, "idle", "job", 3, NULL));
    T_OK(c, slabmq_fetch(c, "idle", 2, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 2);
    for (int i = 0; i < 2; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    slabmq_client_on_confirm(c, on_ack_confirm, &cf);
    T_OK(c, slabmq_ack_async(c, &ids[0], 1, NULL));
    T_OK(c, slabmq_ack_async(c, &ids[1], 1, NULL));
    T_OK(c, slabmq_send(c));
    t_sleep_ms(800); /* nothing held, nothing sent: the broker closes with [0, 0, 14] */
    T_EQ_INT(slabmq_ping(c), SLABMQ_ERR_LIMIT);
    T_EQ_U64(cf.n, 0);
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_CLOSED);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "unusable") != NULL);
    T_EQ_U64(cf.n, 0);
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
    T_EQ_U64(t_stat(c, "amo", "inflight"), 0);
    T_EQ_U64(t_stat(c, "amo", "ready"), 4);
    slabmq_client_close(c);
    c = t_client(&b); /* a reconnect brings nothing back */
    T_OK(c, slabmq_fetch_flags(c, "amo", 10, 100, SLABMQ_FETCH_NOACK, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    slabmq_batch_free(bt);
    T_EQ_U64(t_stat(c, "amo", "ready"), 0);
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
 * send reach the subscriber in one segment (before, with a writev per push: 11 in one run),
 * and in one DELIVER frame: the run of publishes is served once, after its last frame
 * (before issue 17, 20 frames of one message each). */
static void
test_pushes_of_one_read_in_one_write(void)
{
    struct t_broker b;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    const uint64_t n = 20;
    uint32_t segs;
    uint32_t k;
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
    EXPECT_OK(sfd, SMQ_OP_DELIVER, 1, &p); /* [DELIVER, subscription 1, 0, [message...]] */
    T_ASSERT(smq_mpr_array(&p.r, &k) == 0);
    T_EQ_U64(k, n);
    T_EQ_U64(raw_data_segs_in(sfd) - segs, 1);
    mb_free(&m);
    mb_free(&stream);
    close(fd);
    close(sfd);
    t_broker_stop(&b);
}

/* A QUIET ACK (flags 1) on the wire: no reply when it acks every id, so the next frame is
 * the reply to the request after it; an error still gets its reply; HELLO announces it. And
 * the consumer it is for: ACK and a waiting FETCH in one send used to bring two segments
 * (the ACK's reply, then the FETCH's once a message came), each a wake-up; now one. */
static void
test_quiet_ack_on_the_wire(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    uint64_t ids[3];
    uint64_t v;
    uint32_t k;
    uint32_t segs;
    int fd;
    int pfd;

    t_broker_start(&b, NULL);
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 1);
    mb_str(&m, "quiet");
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_HELLO, 1, &p);
    T_EQ_INT(p.n, 11); /* op, id, status and eight results, the last the features */
    for (int i = 0; i < 7; i++)
        T_ASSERT(smq_mpr_skip(&p.r, 4) == 0);
    T_ASSERT(smq_mpr_uint(&p.r, &v) == 0);
    T_EQ_U64(v & 1, 1); /* QUIET ACK */
    pfd = raw_session(&b);
    for (uint64_t i = 0; i < 3; i++) {
        mb_req(&m, SMQ_OP_PUBLISH, 10 + i, 2);
        mb_str(&m, "quiet");
        mb_bin(&m, "job", 3);
        send_mb(pfd, &m);
        EXPECT_OK(pfd, SMQ_OP_PUBLISH, 10 + i, &p);
    }
    mb_req(&m, SMQ_OP_FETCH, 2, 2);
    mb_str(&m, "quiet");
    mb_uint(&m, 3);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_FETCH, 2, &p);
    T_ASSERT(smq_mpr_array(&p.r, &k) == 0 && k == 3);
    for (int i = 0; i < 3; i++) {
        T_ASSERT(smq_mpr_array(&p.r, &k) == 0 && k == 3);
        T_ASSERT(smq_mpr_uint(&p.r, &ids[i]) == 0);
        T_ASSERT(smq_mpr_skip(&p.r, 1) == 0 && smq_mpr_skip(&p.r, 1) == 0);
    }
    /* QUIET ACK of the first, then PING: the PING's reply is the next frame */
    mb_req(&m, SMQ_OP_ACK, 3, 2);
    mb_arr(&m, 1);
    mb_uint(&m, ids[0]);
    mb_uint(&m, 1);
    send_mb(fd, &m);
    mb_req(&m, SMQ_OP_PING, 4, 0);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_PING, 4, &p);
    /* a QUIET ACK that fails still answers: the first id again (acked) and the second */
    mb_req(&m, SMQ_OP_ACK, 5, 2);
    mb_arr(&m, 2);
    mb_uint(&m, ids[0]);
    mb_uint(&m, ids[1]);
    mb_uint(&m, 1);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_ACK, 5, SLABMQ_ERR_UNKNOWN_ID);
    /* ACK (quiet) + a waiting FETCH in one send; then a message: one segment comes back */
    mb_req(&m, SMQ_OP_ACK, 6, 2);
    mb_arr(&m, 1);
    mb_uint(&m, ids[2]);
    mb_uint(&m, 1);
    mb_frame(&stream, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_FETCH, 7, 3);
    mb_str(&m, "quiet");
    mb_uint(&m, 1);
    mb_uint(&m, 5000);
    mb_frame(&stream, m.p, m.len);
    m.len = 0;
    segs = raw_data_segs_in(fd);
    T_EQ_INT(send(fd, stream.p, stream.len, 0), (long)stream.len);
    t_sleep_ms(50); /* the broker has read both: the FETCH is waiting */
    mb_req(&m, SMQ_OP_PUBLISH, 13, 2);
    mb_str(&m, "quiet");
    mb_bin(&m, "late", 4);
    send_mb(pfd, &m);
    EXPECT_OK(pfd, SMQ_OP_PUBLISH, 13, &p);
    EXPECT_OK(fd, SMQ_OP_FETCH, 7, &p);
    T_ASSERT(smq_mpr_array(&p.r, &k) == 0 && k == 1);
    T_EQ_U64(raw_data_segs_in(fd) - segs, 1);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "quiet", "acked"), 3);
    T_EQ_U64(t_stat(c, "quiet", "inflight"), 1);
    slabmq_client_close(c);
    mb_free(&m);
    mb_free(&stream);
    close(fd);
    close(pfd);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_quiet_ack_on_the_wire),
    T_CASE(test_quiet_acks_confirmed),
    T_CASE(test_refused_call_leaves_no_gap),
    T_CASE(test_quiet_acks_at_a_connection_error),
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
