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

/* One connection pipelining publishes round-robin over 8,400 queues, where the broker looks
 * ahead of the frame it handles at the queues the next frames name (net/conn.c, on from
 * 4,096 queues: half of them are declared first): frames that create a queue on the way (no
 * slot yet when looked ahead at), runs to one queue, FETCHes in between, and payloads up to
 * 100 KiB, so frames straddle reads. Every message lands in its own queue, in order,
 * byte-exact. */
#define SPREAD_QUEUES 8400
#define SPREAD_ROUNDS 3

static size_t
spread_body(char *buf, int q, int round)
{
    int n = snprintf(buf, 64, "q%03d-r%03d", q, round);
    size_t len = (q * 7 + round) % 997 == 0 ? 100000 : (size_t)n + (size_t)((q + round) % 40);

    for (size_t i = (size_t)n; i < len; i++)
        buf[i] = (char)('a' + (i + (size_t)q) % 26);
    return len;
}

static void
test_pipelined_publishes_over_many_queues(void)
{
    struct t_broker b;
    slabmq_client *c;
    char *body = malloc(100000);
    char *want = malloc(100000);
    char name[32];
    slabmq_batch *bt;

    T_ASSERT(body && want);
    t_broker_start(&b, NULL);
    c = t_client(&b);
    slabmq_client_set_window(c, 1024);
    for (int q = 0; q < SPREAD_QUEUES; q += 2) { /* half of them exist beforehand */
        snprintf(name, sizeof(name), "spread.%d", q);
        T_OK(c, slabmq_declare(c, name, NULL, NULL));
    }
    for (int round = 0; round < SPREAD_ROUNDS; round++) {
        for (int q = 0; q < SPREAD_QUEUES; q++) {
            size_t len = spread_body(body, q, round);
            snprintf(name, sizeof(name), "spread.%d", q);
            T_OK(c, slabmq_publish_async(c, name, body, len, NULL));
            if (q % 1000 == 0) /* a run to one queue */
                for (int i = 0; i < 20; i++)
                    T_OK(c, slabmq_publish_async(c, "spread.run", "r", 1, NULL));
        }
        /* a FETCH that finds nothing among the publishes */
        if (round == 1) {
            T_OK(c, slabmq_fetch(c, "spread.none", 10, 0, &bt));
            T_EQ_U64(slabmq_batch_count(bt), 0);
            slabmq_batch_free(bt);
        }
    }
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(t_stat(c, "spread.run", "ready"), 20 * 9 * SPREAD_ROUNDS);
    for (int q = 0; q < SPREAD_QUEUES; q++) {
        snprintf(name, sizeof(name), "spread.%d", q);
        T_EQ_U64(t_stat(c, name, "ready"), SPREAD_ROUNDS);
        T_OK(c, slabmq_peek(c, name, SPREAD_ROUNDS, &bt));
        T_EQ_U64(slabmq_batch_count(bt), SPREAD_ROUNDS);
        for (int round = 0; round < SPREAD_ROUNDS; round++) {
            const slabmq_message *m = slabmq_batch_get(bt, (size_t)round);
            size_t len = spread_body(want, q, round);
            T_EQ_U64(m->len, len);
            T_EQ_MEM(m->data, want, len);
        }
        slabmq_batch_free(bt);
    }
    slabmq_client_close(c);
    t_broker_stop(&b);
    free(body);
    free(want);
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

/* slabmq_ack_async(), then slabmq_send(): the ACK leaves now, as its own request, and no
 * later call can append ids to it (client/acks.c). */
static void
ack_alone(slabmq_client *c, uint64_t id, uint64_t *req)
{
    T_OK(c, slabmq_ack_async(c, &id, 1, req));
    T_OK(c, slabmq_send(c));
}

/* Pipelined acks go QUIET against this broker; their confirmations still come once each, in
 * request order, with the count: from the reply to the next request (a FETCH), or from the
 * PING slabmq_flush() sends when nothing else follows them. A failing one is reported as
 * before, and a small window of quiet acks neither stalls nor confirms a request inside the
 * call that queued it. Each ack is sent alone (ack_alone), so each is its own QUIET ACK. */
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
        ack_alone(c, ids[i], &req);
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
    ack_alone(c, ids[10], NULL);
    ack_alone(c, bogus, &req);
    ack_alone(c, ids[11], NULL);
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(cf.n, 13);
    T_EQ_U64(cf.acked, 12);
    T_EQ_U64(cf.last_err, req);
    T_ASSERT(!cf.out_of_order);
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    /* a window of 4 limits publishes only; acks have the broker's in-flight limit, and none
     * is confirmed inside the call that queued it */
    slabmq_client_set_window(c, 4);
    for (int i = 12; i < 40; i++) {
        uint64_t before = cf.n;
        ack_alone(c, ids[i], &req);
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
    ack_alone(c, ids[0], NULL); /* sent: the ACK after the gap is a request of its own */
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

/* What slabmq_client_on_confirmation() was told, by operation. */
struct by_op {
    uint64_t n;                  /* confirmations */
    uint64_t ok[5];              /* successful ones per slabmq_async_op */
    uint64_t count[5];           /* the counts they carried */
    uint64_t failed[5];          /* failures per op */
    slabmq_confirmation last;    /* the last one */
    slabmq_confirmation seen[16]; /* the first 16 */
    int bad_op;                  /* an op outside slabmq_async_op */
};

static void
on_confirmation(const slabmq_confirmation *k)
{
    struct by_op *o = k->user; /* a wrong user pointer crashes here, under ASan at least */

    if (k->op < 1 || k->op > 4) {
        o->bad_op = 1;
        return;
    }
    if (o->n < 16)
        o->seen[o->n] = *k;
    o->n++;
    o->last = *k;
    if (k->status == SLABMQ_OK) {
        o->ok[k->op]++;
        o->count[k->op] += k->count;
    } else {
        o->failed[k->op]++;
    }
}

/* A consumer whose batch (2048) is far larger than its window (64) settles every message
 * with a pipelined ack or NACK without stopping mid-batch: settlements do not count against
 * the window, so no call reads a reply (no confirmation is handed out, the broker still
 * holds all 2048: nothing was even sent) until the next FETCH, whose write carries them all
 * and whose reply confirms them. Before, the 64th ack read replies until half the window
 * was free, 63 waits for the broker per batch. */
static void
test_acks_beyond_the_window(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    struct by_op o = {0};
    static slabmq_payload msgs[2048];
    slabmq_batch *bt;
    uint64_t ids[2048];

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 2048; i++)
        msgs[i] = (slabmq_payload){"job", 3};
    T_OK(p, slabmq_publish_batch(p, "big-batch", msgs, 2048, NULL));
    slabmq_client_set_window(c, 64);
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    T_OK(c, slabmq_fetch(c, "big-batch", 2048, 1000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 2048);
    for (int i = 0; i < 2048; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    for (int i = 0; i < 2048; i++) {
        if (i < 1536)
            T_OK(c, slabmq_ack_async(c, &ids[i], 1, NULL));
        else
            T_OK(c, slabmq_nack_async(c, &ids[i], 1, 0, NULL));
        T_EQ_U64(o.n, 0); /* no reply read inside the batch */
        /* the acks coalesce: QUIET ACKs of 256 ids (a full QUIET run), each followed by a
         * plain ACK of one, 11 requests for 1,536 acks; then a NACK each */
        T_EQ_U64(slabmq_client_outstanding(c),
                 i < 1536 ? 2 * ((uint64_t)i / 257) + (i % 257 == 256) + 1
                          : (uint64_t)i - 1524);
    }
    T_EQ_U64(t_stat(p, "big-batch", "inflight"), 2048); /* none has left c yet */
    T_OK(c, slabmq_fetch(c, "big-batch", 1, 0, &bt)); /* one write: 2048 settlements, FETCH */
    T_EQ_INT(slabmq_batch_count(bt), 1);                /* a NACKed one, back in the queue */
    T_OK(c, slabmq_nack_async(c, &slabmq_batch_get(bt, 0)->id, 1, 0, NULL));
    slabmq_batch_free(bt);
    T_EQ_U64(o.n, 2048); /* one per call */
    T_EQ_U64(o.ok[SLABMQ_ASYNC_ACK], 1536);
    T_EQ_U64(o.count[SLABMQ_ASYNC_ACK], 1536);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_NACK], 512);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    T_EQ_U64(t_stat(p, "big-batch", "acked"), 1536);
    T_EQ_U64(t_stat(p, "big-batch", "inflight"), 0);
    T_EQ_U64(t_stat(p, "big-batch", "ready"), 512);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Publishes still have their window: with acks outstanding beyond it, a publish that fills
 * the window reads confirmations until half of it is free, and no more. */
static void
test_window_counts_publishes_only(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t ids[100];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 100; i++)
        T_OK(c, slabmq_publish_async(c, "mix", "m", 1, NULL));
    T_OK(c, slabmq_flush(c));
    T_OK(c, slabmq_fetch(c, "mix", 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 100);
    for (int i = 0; i < 100; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    slabmq_client_set_window(c, 8);
    for (int i = 0; i < 100; i++) /* 100 requests: acks sent one by one do not coalesce */
        ack_alone(c, ids[i], NULL);
    T_EQ_U64(slabmq_client_outstanding(c), 100);
    for (int i = 0; i < 7; i++)
        T_OK(c, slabmq_publish_async(c, "mix", "m", 1, NULL));
    T_EQ_U64(slabmq_client_outstanding(c), 107);
    T_OK(c, slabmq_publish_async(c, "mix", "m", 1, NULL)); /* the 8th: reads down to 4 */
    T_EQ_U64(slabmq_client_outstanding(c), 4);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(t_stat(c, "mix", "acked"), 100);
    T_EQ_U64(t_stat(c, "mix", "ready"), 8);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A paced producer without a confirmation callback learns that the broker refused a
 * pipelined publish (its memory limit) from the return of its next call, not only from
 * slabmq_flush(): the refusal is sticky, every publish *_async returns it without queuing,
 * slabmq_send() returns it too, until slabmq_client_take_error() reads it. With a callback
 * the callback is told instead and the calls go on returning OK. Before, all 100000 calls
 * returned OK. */
static void
test_refused_publish_is_sticky(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *d;
    static char kib[1024];
    slabmq_status st = SLABMQ_OK;
    uint64_t queued = 0;
    uint64_t before;
    struct by_op o = {0};

    t_broker_start(&b, "--max-memory", "16MiB", NULL);
    c = t_client(&b);
    for (int i = 0; i < 100000 && st == SLABMQ_OK; i++) {
        st = slabmq_publish_async(c, "fill", kib, sizeof(kib), NULL);
        if (st == SLABMQ_OK) {
            queued++;
            st = slabmq_send(c);
        }
    }
    T_EQ_INT(st, SLABMQ_ERR_NOMEM);
    T_ASSERT(queued < 100000);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "request ") != NULL);
    /* sticky: nothing more is queued, slabmq_send says it again */
    before = slabmq_client_outstanding(c);
    T_EQ_INT(slabmq_publish_async(c, "fill", "x", 1, NULL), SLABMQ_ERR_NOMEM);
    T_EQ_INT(slabmq_publish_batch_async(c, "fill", &(slabmq_payload){"x", 1}, 1, NULL),
             SLABMQ_ERR_NOMEM);
    T_ASSERT(slabmq_client_outstanding(c) <= before);
    T_EQ_INT(slabmq_send(c), SLABMQ_ERR_NOMEM);
    T_OK(c, slabmq_ping(c)); /* synchronous calls answer for themselves */
    /* read and cleared: the next refusal (there are more: all went out together) is sticky
     * again, and the flush reports the first one since the one read */
    T_EQ_INT(slabmq_client_take_error(c), SLABMQ_ERR_NOMEM);
    T_EQ_INT(slabmq_client_take_error(c), SLABMQ_OK);
    st = slabmq_flush(c);
    T_ASSERT(st == SLABMQ_OK || st == SLABMQ_ERR_NOMEM);
    T_EQ_INT(slabmq_client_take_error(c), SLABMQ_OK); /* the flush cleared it too */
    /* with a callback set, the callback is told and the calls keep returning OK */
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    for (int i = 0; i < 50; i++)
        T_OK(c, slabmq_publish_async(c, "fill", kib, sizeof(kib), NULL));
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_NOMEM);
    T_EQ_U64(o.failed[SLABMQ_ASYNC_PUBLISH], 50);
    T_EQ_INT(slabmq_client_take_error(c), SLABMQ_OK);
    slabmq_client_on_confirmation(c, NULL, NULL);
    /* room again: publishing resumes */
    d = t_client(&b);
    T_OK(d, slabmq_purge(d, "fill", NULL));
    T_OK(c, slabmq_publish_async(c, "fill", "x", 1, NULL));
    T_OK(c, slabmq_send(c));
    T_OK(c, slabmq_flush(c));
    slabmq_client_close(d);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The old two-argument callbacks and slabmq_client_on_confirmation() on one client: each is
 * told every confirmation once, in order; the new one names the operation, the message id
 * of a publish (the first of a batch) with its count, the count of a settlement, and hands
 * back the user pointer. */
static void
test_confirmation_names_its_op(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct confirms old = {0};
    struct by_op o = {0};
    slabmq_payload three[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    slabmq_batch *bt;
    uint64_t ids[4];
    uint64_t bogus = 1u << 30;
    uint64_t req[7];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    slabmq_client_on_confirm(c, on_confirm, &old);
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    T_OK(c, slabmq_publish_async(c, "ops", "x", 1, &req[0]));
    T_OK(c, slabmq_publish_batch_async(c, "ops", three, 3, &req[1]));
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(old.n, 2);
    T_EQ_U64(o.n, 2);
    T_EQ_INT(o.seen[0].op, SLABMQ_ASYNC_PUBLISH);
    T_EQ_U64(o.seen[0].request, req[0]);
    T_EQ_U64(o.seen[0].count, 1);
    T_EQ_INT(o.seen[1].op, SLABMQ_ASYNC_PUBLISH);
    T_EQ_U64(o.seen[1].request, req[1]);
    T_EQ_U64(o.seen[1].count, 3);
    T_EQ_U64(o.seen[1].id, o.seen[0].id + 1);
    T_EQ_U64(old.last_value, o.seen[1].id); /* the old callback: the same id */
    T_ASSERT(!old.out_of_order);
    T_OK(c, slabmq_fetch(c, "ops", 4, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 4);
    for (int i = 0; i < 4; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    T_EQ_U64(ids[0], o.seen[0].id);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_ack_async(c, &ids[0], 1, &req[2]));   /* QUIET */
    T_OK(c, slabmq_nack_async(c, &ids[1], 1, 0, &req[3]));
    T_OK(c, slabmq_term_async(c, &ids[2], 2, &req[4]));
    T_OK(c, slabmq_ack_async(c, &bogus, 1, &req[5]));   /* refused */
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(o.n, 6);
    T_EQ_U64(old.n, 6);
    T_EQ_INT(o.seen[2].op, SLABMQ_ASYNC_ACK);
    T_EQ_U64(o.seen[2].request, req[2]);
    T_EQ_U64(o.seen[2].count, 1);
    T_EQ_U64(o.seen[2].id, 0);
    T_EQ_INT(o.seen[3].op, SLABMQ_ASYNC_NACK);
    T_EQ_U64(o.seen[3].count, 1);
    T_EQ_INT(o.seen[4].op, SLABMQ_ASYNC_TERM);
    T_EQ_U64(o.seen[4].request, req[4]);
    T_EQ_U64(o.seen[4].count, 2);
    T_EQ_INT(o.seen[5].op, SLABMQ_ASYNC_ACK);
    T_EQ_INT(o.seen[5].status, SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(o.seen[5].count, 0);
    T_EQ_U64(o.seen[5].request, req[5]);
    T_ASSERT(!o.bad_op);
    T_EQ_INT(slabmq_client_take_error(c), SLABMQ_OK); /* a settlement is never sticky */
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

/* ---------------------------------------------------------------------------------------- */
/* Coalesced ACKs (client/acks.c)                                                            */

/* Fetch n messages of queue q on c into ids (n of them must be ready). */
static void
fetch_ids(slabmq_client *c, const char *q, uint64_t *ids, size_t n)
{
    size_t got = 0;

    while (got < n) {
        slabmq_batch *bt;
        size_t k;
        T_OK(c, slabmq_fetch(c, q, (uint32_t)(n - got > 10000 ? 10000 : n - got), 0, &bt));
        k = slabmq_batch_count(bt);
        T_ASSERT(k > 0);
        for (size_t i = 0; i < k; i++)
            ids[got + i] = slabmq_batch_get(bt, i)->id;
        slabmq_batch_free(bt);
        got += k;
    }
}

/* Acks pipelined one id at a time share one QUIET ACK while nothing else is queued after
 * it: one request id for all the calls, one request outstanding, and still a confirmation
 * per call (count 1, that request id). A publish, a NACK or an ack with other flags queued
 * between them ends it, and the requests go out in the calls' order: the confirmations
 * come in that order, and the broker settles exactly the acked ids. Before coalescing,
 * ten calls were ten requests (outstanding 10, ten request ids). */
static void
test_acks_coalesce(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *s;
    struct by_op o = {0};
    uint64_t ids[40];
    uint64_t req[40];
    uint64_t preq = 0;
    uint64_t nreq = 0;
    slabmq_batch *bt;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    s = t_client(&b);
    for (int i = 0; i < 40; i++)
        T_OK(c, slabmq_publish_async(c, "co", "job", 3, NULL));
    T_OK(c, slabmq_flush(c));
    fetch_ids(c, "co", ids, 40);
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    for (int i = 0; i < 10; i++)
        T_OK(c, slabmq_ack_async(c, &ids[i], 1, &req[i]));
    for (int i = 1; i < 10; i++)
        T_EQ_U64(req[i], req[0]);
    T_EQ_U64(slabmq_client_outstanding(c), 1);
    T_EQ_U64(t_stat(s, "co", "inflight"), 40); /* nothing sent yet */
    T_EQ_U64(o.n, 0);
    T_EQ_U64(t_stat(c, "co", "inflight"), 30); /* sent before the STATS, whose reply */
    T_EQ_U64(o.n, 10);                         /* confirms the ACK, call by call */
    for (int i = 0; i < 10; i++) {
        T_EQ_INT(o.seen[i].op, SLABMQ_ASYNC_ACK);
        T_EQ_U64(o.seen[i].request, req[0]);
        T_EQ_U64(o.seen[i].count, 1);
    }
    T_EQ_U64(t_stat(c, "co", "acked"), 10);
    /* ack ack | publish | ack ack | NACK | ack | CONFIRMED ack | ack */
    T_OK(c, slabmq_ack_async(c, &ids[10], 1, &req[10]));
    T_OK(c, slabmq_ack_async(c, &ids[11], 1, &req[11]));
    T_OK(c, slabmq_publish_async(c, "co", "new", 3, &preq));
    T_OK(c, slabmq_ack_async(c, &ids[12], 1, &req[12]));
    T_OK(c, slabmq_ack_async(c, &ids[13], 1, &req[13]));
    T_OK(c, slabmq_nack_async(c, &ids[14], 1, 0, &nreq));
    T_OK(c, slabmq_ack_async(c, &ids[15], 1, &req[15]));
    T_OK(c, slabmq_ack_flags_async(c, &ids[16], 1, SLABMQ_ACK_CONFIRMED, &req[16]));
    T_OK(c, slabmq_ack_flags_async(c, &ids[17], 1, SLABMQ_ACK_CONFIRMED, &req[17]));
    T_OK(c, slabmq_ack_async(c, &ids[18], 1, &req[18]));
    T_EQ_U64(req[11], req[10]);
    T_EQ_U64(preq, req[10] + 1);
    T_EQ_U64(req[12], preq + 1);
    T_EQ_U64(req[13], req[12]);
    T_EQ_U64(nreq, req[12] + 1);
    T_EQ_U64(req[15], nreq + 1);
    T_EQ_U64(req[16], req[15] + 1);
    T_EQ_U64(req[17], req[16]);
    T_EQ_U64(req[18], req[16] + 1);
    T_EQ_U64(slabmq_client_outstanding(c), 7);
    T_OK(c, slabmq_fetch(c, "none", 1, 0, &bt)); /* in the same write; confirms them all */
    slabmq_batch_free(bt);
    T_EQ_U64(o.n, 20);
    T_ASSERT(!o.bad_op);
    {
        static const slabmq_async_op want[6] = {SLABMQ_ASYNC_ACK, SLABMQ_ASYNC_ACK,
                                                SLABMQ_ASYNC_PUBLISH, SLABMQ_ASYNC_ACK,
                                                SLABMQ_ASYNC_ACK, SLABMQ_ASYNC_NACK};
        const uint64_t wreq[6] = {req[10], req[10], preq, req[12], req[12], nreq};
        for (int i = 0; i < 6; i++) { /* the first 16 are kept */
            T_EQ_INT(o.seen[10 + i].op, want[i]);
            T_EQ_INT(o.seen[10 + i].status, SLABMQ_OK);
            T_EQ_U64(o.seen[10 + i].count, 1);
            T_EQ_U64(o.seen[10 + i].request, wreq[i]);
        }
    }
    T_EQ_INT(o.last.op, SLABMQ_ASYNC_ACK);
    T_EQ_U64(o.last.request, req[18]);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_ACK], 18);
    T_EQ_U64(o.count[SLABMQ_ASYNC_ACK], 18);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_PUBLISH], 1);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_NACK], 1);
    T_EQ_U64(t_stat(c, "co", "acked"), 18);
    T_EQ_U64(t_stat(c, "co", "nacked"), 1);
    T_EQ_U64(t_stat(c, "co", "inflight"), 40 - 19);
    T_EQ_U64(t_stat(c, "co", "ready"), 2); /* the NACKed one and the new one */
    /* slabmq_send() between two acks ends the first: two requests */
    T_OK(c, slabmq_ack_async(c, &ids[19], 1, &req[19]));
    T_OK(c, slabmq_send(c));
    T_OK(c, slabmq_ack_async(c, &ids[20], 1, &req[20]));
    T_EQ_U64(req[20], req[19] + 1);
    T_EQ_U64(slabmq_client_outstanding(c), 2);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(o.count[SLABMQ_ASYNC_ACK], 20);
    T_EQ_U64(t_stat(c, "co", "acked"), 20);
    T_EQ_U64(t_stat(c, "co", "inflight"), 40 - 21); /* 20 acked, one NACKed */
    slabmq_client_close(s);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* An unknown id inside a coalesced ACK: the broker settles the known ids and answers the
 * whole request ERR_UNKNOWN_ID, so every call that joined it is confirmed with that error
 * (count 0, their shared request id), and slabmq_flush() reports it with the broker's
 * counts ("1 of 3 ids unknown ...; 2 settled"). Acks sent one by one (slabmq_send()
 * between them) fail alone. */
static void
test_coalesced_ack_unknown_id(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct by_op o = {0};
    uint64_t ids[4];
    uint64_t req[3];
    uint64_t bogus = (uint64_t)1 << 40;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 4; i++)
        T_OK(c, slabmq_publish(c, "unk", "job", 3, NULL));
    fetch_ids(c, "unk", ids, 4);
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    T_OK(c, slabmq_ack_async(c, &ids[0], 1, &req[0]));
    T_OK(c, slabmq_ack_async(c, &bogus, 1, &req[1]));
    T_OK(c, slabmq_ack_async(c, &ids[1], 1, &req[2]));
    T_EQ_U64(req[1], req[0]);
    T_EQ_U64(req[2], req[0]);
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_UNKNOWN_ID);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "1 of 3 ids unknown") != NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "2 settled") != NULL);
    T_EQ_U64(o.n, 3);
    T_EQ_U64(o.failed[SLABMQ_ASYNC_ACK], 3);
    for (int i = 0; i < 3; i++) {
        T_EQ_INT(o.seen[i].status, SLABMQ_ERR_UNKNOWN_ID);
        T_EQ_U64(o.seen[i].request, req[0]);
        T_EQ_U64(o.seen[i].count, 0);
    }
    T_EQ_U64(t_stat(c, "unk", "acked"), 2); /* the known ones are settled all the same */
    T_EQ_U64(t_stat(c, "unk", "inflight"), 2);
    /* one by one: the unknown id's request fails, the others succeed */
    ack_alone(c, ids[2], NULL);
    ack_alone(c, bogus, &req[1]);
    ack_alone(c, ids[3], NULL);
    T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(o.n, 6);
    T_EQ_U64(o.failed[SLABMQ_ASYNC_ACK], 4);
    T_EQ_U64(o.seen[4].request, req[1]);
    T_EQ_INT(o.seen[4].status, SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_ACK], 2);
    T_EQ_U64(t_stat(c, "unk", "acked"), 4);
    T_EQ_U64(t_stat(c, "unk", "inflight"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Where a coalesced ACK ends: once 256 ids have been acked QUIET in a row. The next call
 * is a plain ACK of its one id, whose reply confirms the run, and the call after it starts
 * a new QUIET ACK. 600 acks of one id are five requests: QUIET 256, plain 1, QUIET 256,
 * plain 1, QUIET 86; and 600 confirmations, one per call. */
static void
test_coalesced_ack_limits(void)
{
    static uint64_t ids[600];
    static slabmq_payload msgs[600];
    struct t_broker b;
    slabmq_client *c;
    struct by_op o = {0};
    uint64_t req[600];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 600; i++)
        msgs[i] = (slabmq_payload){"job", 3};
    T_OK(c, slabmq_publish_batch(c, "cap", msgs, 600, NULL));
    fetch_ids(c, "cap", ids, 600);
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    for (int i = 0; i < 600; i++)
        T_OK(c, slabmq_ack_async(c, &ids[i], 1, &req[i]));
    T_EQ_U64(slabmq_client_outstanding(c), 5);
    for (int i = 0; i < 600; i++)
        T_EQ_U64(req[i], req[0] + (i < 256 ? 0 : i == 256 ? 1 : i < 513 ? 2 : i == 513 ? 3 : 4));
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(o.n, 600);
    T_EQ_U64(o.ok[SLABMQ_ASYNC_ACK], 600);
    T_EQ_U64(o.count[SLABMQ_ASYNC_ACK], 600);
    T_EQ_U64(o.last.request, req[599]);
    T_EQ_U64(t_stat(c, "cap", "acked"), 600);
    T_EQ_U64(t_stat(c, "cap", "inflight"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A push consumer acking each message with slabmq_ack_async() makes no synchronous call;
 * its acks still get confirmed while it consumes: the QUIET run counts ids, so after 256
 * ids acked QUIET the next ACK is plain and its reply (read by slabmq_receive()) confirms
 * them. Had the run counted requests, acks coalesced per read would have been confirmed
 * only after 256 requests, here not before the flush. */
static void
test_push_consumer_acks_confirmed(void)
{
    static slabmq_payload msgs[4096];
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    struct by_op o = {0};
    uint64_t got = 0;
    int64_t end;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 4096; i++)
        msgs[i] = (slabmq_payload){"job", 3};
    T_OK(p, slabmq_publish_batch(p, "push", msgs, 4096, NULL));
    slabmq_client_on_confirmation(c, on_confirmation, &o);
    T_OK(c, slabmq_subscribe(c, "push", 512, NULL));
    end = t_now_ms() + 10000;
    while (got < 4096 && t_now_ms() < end) {
        slabmq_batch *bt = NULL;
        T_OK(c, slabmq_receive(c, 1000, &bt));
        for (size_t i = 0; bt && i < slabmq_batch_count(bt); i++)
            T_OK(c, slabmq_ack_async(c, &slabmq_batch_get(bt, i)->id, 1, NULL));
        got += bt ? slabmq_batch_count(bt) : 0;
        slabmq_batch_free(bt);
    }
    T_EQ_U64(got, 4096);
    /* the broker delivered the last 512 only after the acks of the first 3,584 came in;
     * all but a QUIET run (256 ids) at their end have been confirmed */
    T_ASSERT(o.count[SLABMQ_ASYNC_ACK] >= 4096 - 512 - 257);
    T_EQ_U64(o.failed[SLABMQ_ASYNC_ACK], 0);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(o.count[SLABMQ_ASYNC_ACK], 4096);
    T_EQ_U64(t_stat(p, "push", "acked"), 4096);
    T_EQ_U64(t_stat(p, "push", "inflight"), 0);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A subscriber acking each message of a push gives the first QUIET run's credit back while
 * it still works through the rest: the plain ACK that closes the run leaves at once, with the
 * run, and the broker pushes into that credit before the consumer asks again (acks.c). */
static void
test_push_credit_returns_mid_batch(void)
{
    static slabmq_payload msgs[2048];
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    slabmq_batch *bt = NULL;
    uint64_t acked = 0;
    int64_t end;

    t_broker_start(&b, NULL);
    p = t_client(&b);
    c = t_client(&b);
    for (int i = 0; i < 2048; i++)
        msgs[i] = (slabmq_payload){"job", 3};
    T_OK(p, slabmq_publish_batch(p, "mid", msgs, 2048, NULL));
    T_OK(c, slabmq_subscribe(c, "mid", 512, NULL));
    /* one push of the whole credit (it may come in more than one DELIVER: take them all) */
    end = t_now_ms() + 10000;
    while ((!bt || slabmq_batch_count(bt) < 512) && t_now_ms() < end) {
        slabmq_batch_free(bt);
        bt = NULL;
        T_OK(c, slabmq_receive_max(c, 1000, 512, &bt));
        if (bt && slabmq_batch_count(bt) < 512) { /* ack a partial push and take the rest */
            for (size_t i = 0; i < slabmq_batch_count(bt); i++)
                T_OK(c, slabmq_ack(c, slabmq_batch_get(bt, i)->id));
        }
    }
    T_ASSERT(bt && slabmq_batch_count(bt) == 512);
    /* 300 acks, no call that reads or sends on its own: 257 of them (a QUIET run of 256
     * and the plain ACK closing it) must reach the broker now */
    for (size_t i = 0; i < 300; i++)
        T_OK(c, slabmq_ack_async(c, &slabmq_batch_get(bt, i)->id, 1, NULL));
    end = t_now_ms() + 5000;
    while (acked < 257 && t_now_ms() < end) {
        acked = t_stat(p, "mid", "acked");
        if (acked < 257)
            usleep(10000);
    }
    T_EQ_U64(acked, 257);
    /* and the broker refilled that credit: 257 more messages in flight to c */
    end = t_now_ms() + 5000;
    while (t_stat(p, "mid", "inflight") < 512 && t_now_ms() < end)
        usleep(10000);
    T_EQ_U64(t_stat(p, "mid", "inflight"), 512);
    for (size_t i = 300; i < 512; i++)
        T_OK(c, slabmq_ack_async(c, &slabmq_batch_get(bt, i)->id, 1, NULL));
    slabmq_batch_free(bt);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(t_stat(p, "mid", "acked"), 512);
    slabmq_client_close(p);
    slabmq_client_close(c);
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
    T_CASE(test_pipelined_publishes_over_many_queues),
    T_CASE(test_async_errors_and_sync_mix),
    T_CASE(test_async_ack_with_fetch),
    T_CASE(test_acks_beyond_the_window),
    T_CASE(test_window_counts_publishes_only),
    T_CASE(test_refused_publish_is_sticky),
    T_CASE(test_confirmation_names_its_op),
    T_CASE(test_acks_coalesce),
    T_CASE(test_coalesced_ack_unknown_id),
    T_CASE(test_coalesced_ack_limits),
    T_CASE(test_push_consumer_acks_confirmed),
    T_CASE(test_push_credit_returns_mid_batch),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
