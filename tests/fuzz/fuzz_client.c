/* SPDX-License-Identifier: MIT */
/* Fuzz target "client": libslabmq's reading and decoding of replies, driven through its
 * public calls. The input is what a (broken or hostile) broker sends: the harness writes it
 * into one end of a socketpair and hangs up, and a client on the other end makes a scripted
 * series of calls, each of which frames and decodes the replies it reads: HELLO's limits,
 * FETCH and PEEK message arrays (dead letters' info maps too), STATS maps (str values too),
 * LIST rows, counts, bools, error replies, pipelined confirmations (with PUBLISH options:
 * duplicate and level), FETCH from several queues, SUBSCRIBE and the DELIVER pushes read by
 * slabmq_receive() or kept while another call waits for its reply, UNSUBSCRIBE and TERM,
 * and QUIET ACKs (HELLO's features, or byte 0): confirmed by the reply to a later request,
 * their errors read before it, the PING slabmq_flush() sends after them.
 *
 * Input layout:
 *   byte 0      bit 0: the client says HELLO first (else it starts with default limits);
 *               bit 1: then it takes QUIET ACKs whatever HELLO said; bit 2: a window of 4
 *               requests and an in-flight limit of 4 (else 1024 and HELLO's), so the full
 *               window, or the settlements' limit, is read out mid-call
 *   bytes 1-8   the calls, one per byte (value modulo the number of calls), in turn, until
 *               16 calls are made or the connection is unusable
 *   the rest    the bytes the broker sends (cut at what the socket buffer takes)
 *
 * Checked: no sanitizer finding; every result handed out is readable (payloads, names,
 * values are touched); the client's read buffer grows only with bytes that arrived, never
 * to a length a frame header merely declares; and confirmations come once each, in request
 * order, only for pipelined requests of the caller (never for the PING of a flush), with
 * the count of ids for a QUIET ACK confirmed by a later reply. */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client-internal.h"
#include "fuzz.h"
#include "ops.h"
#include "slabmq.h"

#define MAX_CALLS 16

static volatile uint64_t sink; /* results are read into this so none is optimized away */

/* The pipelined calls of the script, counted by the request id each was given (ids stay
 * small: 16 calls of a few requests each; acks that libslabmq coalesces share one), and
 * the last confirmation's id. */
#define MAX_RID 1024
static uint8_t async_rid[MAX_RID]; /* calls queued under this id and not yet confirmed */
static uint64_t last_confirmed;

/* A pipelined call of the script returned st and the request id rid: queued if OK. */
static void
note(slabmq_status st, uint64_t rid)
{
    if (st == SLABMQ_OK && rid < MAX_RID)
        async_rid[rid]++;
}

static void
check_confirm(uint64_t request, slabmq_status status, uint64_t value)
{
    FUZZ_CHECK(request >= last_confirmed); /* in request order */
    last_confirmed = request;
    /* once per call, and never the PING of a flush */
    FUZZ_CHECK(request >= MAX_RID || async_rid[request] > 0);
    if (request < MAX_RID)
        async_rid[request]--;
    sink += (uint64_t)status + value;
}

static void
touch_batch(slabmq_batch *b)
{
    size_t n = slabmq_batch_count(b);

    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        const uint8_t *p = m->data;
        sink += m->id + m->deliveries;
        for (size_t k = 0; k < m->len; k++)
            sink += p[k];
        if (m->dead)
            sink += strlen(m->dead->reason) + strlen(m->dead->queue) + m->dead->deliveries;
    }
    if (slabmq_batch_queue(b))
        sink += strlen(slabmq_batch_queue(b));
    sink += slabmq_batch_subscription(b);
    slabmq_batch_free(b);
}

static void
touch_stats(slabmq_stats *s)
{
    uint64_t v;

    for (size_t i = 0; i < slabmq_stats_count(s); i++) {
        sink += strlen(slabmq_stats_name(s, i)) + slabmq_stats_value(s, i);
        if (slabmq_stats_str(s, i))
            sink += strlen(slabmq_stats_str(s, i));
    }
    sink += (uint64_t)slabmq_stats_find(s, "ready", &v);
    if (slabmq_stats_find_str(s, "dead_letter"))
        sink += strlen(slabmq_stats_find_str(s, "dead_letter"));
    slabmq_stats_free(s);
}

static void
confirmed(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    (void)arg;
    check_confirm(request, status, value);
    sink += request + (uint64_t)status + value;
}

static void
confirmed_ex(void *arg, const slabmq_confirm *cf)
{
    (void)arg;
    sink += cf->request + (uint64_t)cf->status + cf->value + (uint64_t)cf->duplicate
            + (uint64_t)cf->level;
}

/* Make call number k (of the script's choice). */
static void
call(slabmq_client *c, unsigned k)
{
    static const uint64_t ids[3] = {1, 2, 300};
    static const slabmq_payload batch[3] = {{"a", 1}, {"", 0}, {"ccc", 3}};
    static const char *const queues[3] = {"q", "r", "s"};
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_batch *b = NULL;
    slabmq_stats *st = NULL;
    slabmq_queue_info *list = NULL;
    size_t n = 0;
    uint64_t u = 0;
    slabmq_status rc;
    int v = 0;

    switch (k % 28) {
    case 0:
        slabmq_ping(c);
        break;
    case 1:
        slabmq_declare(c, "q", NULL, &v);
        break;
    case 2:
        slabmq_delete(c, "q", &u);
        break;
    case 3:
        slabmq_purge(c, "q", &u);
        break;
    case 4:
        if (slabmq_list(c, &list, &n) == SLABMQ_OK) {
            for (size_t i = 0; i < n; i++)
                sink += strlen(list[i].name) + list[i].ready + list[i].inflight;
            slabmq_queue_list_free(list);
        }
        break;
    case 5:
        if (slabmq_stats_get(c, NULL, &st) == SLABMQ_OK)
            touch_stats(st);
        break;
    case 6:
        if (slabmq_stats_get(c, "q", &st) == SLABMQ_OK)
            touch_stats(st);
        break;
    case 7:
        slabmq_publish(c, "q", "hello", 5, &u);
        break;
    case 8:
        slabmq_publish_batch(c, "q", batch, 3, &u);
        break;
    case 9:
        if (slabmq_fetch(c, "q", 10, 0, &b) == SLABMQ_OK)
            touch_batch(b);
        break;
    case 10:
        if (slabmq_peek(c, "q", 10, &b) == SLABMQ_OK)
            touch_batch(b);
        break;
    case 11:
        slabmq_ack(c, 1);
        break;
    case 12:
        slabmq_nack_batch(c, ids, 3, 5, &u);
        break;
    case 13:
        slabmq_touch(c, ids, 2, &u);
        break;
    case 14:
        slabmq_pause(c, "q", &v);
        slabmq_resume(c, "q", &v);
        break;
    case 15: /* pipelined: confirmations read by flush */
        rc = slabmq_publish_async(c, "q", "x", 1, &u);
        note(rc, u);
        rc = slabmq_ack_async(c, ids, 1, &u);
        note(rc, u);
        slabmq_flush(c);
        break;
    case 16: /* pipelined: confirmations that have arrived, read without waiting */
        rc = slabmq_publish_async(c, "q", "y", 1, &u);
        note(rc, u);
        slabmq_send(c);
        break;
    case 17:
        smq_client_hello(c, "fuzz", &v);
        break;
    case 18: /* replies with pushes before them, kept for receive */
        slabmq_subscribe(c, "q", 4, &u);
        break;
    case 19:
        if (slabmq_receive(c, 0, &b) == SLABMQ_OK || b)
            touch_batch(b);
        break;
    case 20:
        if (slabmq_receive(c, 50, &b) == SLABMQ_OK || b)
            touch_batch(b);
        break;
    case 21:
        slabmq_unsubscribe(c, 1);
        break;
    case 22:
        if (slabmq_fetch_any(c, queues, 3, 10, 0, 0, &b) == SLABMQ_OK)
            touch_batch(b);
        break;
    case 23:
        po.id = "p1";
        po.priority = 3;
        slabmq_publish_opts(c, "q", "z", 1, &po, &u, &v);
        sink += (uint64_t)slabmq_last_confirm_level(c);
        break;
    case 24:
        slabmq_term(c, ids, 3, &u);
        break;
    case 25: /* pipelined with options: duplicate and level reach the callback */
        po.delay_ms = 10;
        rc = slabmq_publish_opts_async(c, "q", "w", 1, &po, &u);
        note(rc, u);
        rc = slabmq_term_async(c, ids, 1, &u);
        note(rc, u);
        slabmq_flush(c);
        break;
    case 26: /* acks (QUIET if the broker takes them), then a fetch whose reply confirms them */
        for (int i = 0; i < 3; i++) {
            rc = slabmq_ack_async(c, ids, 1 + (i == 2), &u);
            note(rc, u);
        }
        if (slabmq_fetch(c, "q", 10, 0, &b) == SLABMQ_OK)
            touch_batch(b);
        break;
    default: /* acks and a NACK sent now, then what arrived is read by send and receive */
        rc = slabmq_ack_async(c, ids, 1, &u);
        note(rc, u);
        rc = slabmq_nack_async(c, ids + 1, 1, 0, &u);
        note(rc, u);
        rc = slabmq_ack_async(c, ids + 1, 2, &u);
        note(rc, u);
        slabmq_send(c);
        if (slabmq_receive(c, 0, &b) == SLABMQ_OK || b)
            touch_batch(b);
        break;
    }
    sink += u + (uint64_t)v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    size_t sent = 0;
    slabmq_client *c;

    if (size < 9)
        return 0;
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    FUZZ_CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0 && fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    while (sent < size - 9) {
        ssize_t w = send(sv[1], data + 9 + sent, size - 9 - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR); /* the broker says nothing more */
    c = smq_client_new(2000);
    FUZZ_CHECK(c);
    c->fd = sv[0];
    memset(async_rid, 0, sizeof(async_rid));
    last_confirmed = 0;
    slabmq_client_on_confirm(c, confirmed, NULL);
    slabmq_client_on_confirm_ex(c, confirmed_ex, NULL);
    if (data[0] & 1) {
        int auth;
        smq_client_hello(c, "fuzz", &auth);
    } else {
        c->max_message = 1u << 20;
        c->max_frame = (1u << 20) + 1024;
    }
    if (data[0] & 2)
        c->features |= SMQ_FEATURE_QUIET_ACK;
    if (data[0] & 4) { /* and a broker in-flight limit of 4: the settlements' limit too */
        c->max_inflight = 4;
        slabmq_client_set_window(c, 4);
    }
    for (int i = 0; i < MAX_CALLS && !c->broken; i++) {
        call(c, data[1 + i % 8]);
        /* the buffer holds what arrived (at most 'sent' bytes), rounded up by doubling */
        FUZZ_CHECK(c->rcap <= 65536 || c->rcap <= 2 * sent);
        FUZZ_CHECK(c->qlen <= c->outstanding); /* QUIET ACKs are among the outstanding */
        FUZZ_CHECK(c->settling <= c->outstanding); /* unsettled_others() relies on it */
        sink += strlen(slabmq_client_errmsg(c));
    }
    slabmq_client_close(c); /* closes sv[0] */
    close(sv[1]);
    return 0;
}
