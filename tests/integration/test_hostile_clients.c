/* SPDX-License-Identifier: MIT */
/* Hostile input, part 3: clients that misbehave in time and volume rather than bytes.
 * Frames that never complete, one byte per send, a thousand pipelined PINGs, disconnects
 * during delivery and while waiting, slow readers, the memory limit with unread output,
 * more connections than --max-connections, and TCP keepalive against half-open ones.
 *
 * Each case runs against a real slabmqd with a well-behaved "other client" connected
 * before the bad input; see tests/harness/raw.h for the method and the helpers. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "raw.h"

/* ---------------------------------------------------------------------------------------- */
/* Frames that never complete                                                                */

/* The header announces 100 bytes, 10 arrive, then the client closes. */
static void
test_truncated_frame_then_close(void)
{
    struct t_broker b;
    slabmq_client *other;
    static const uint8_t part[] = {0, 0, 0, 100, 0x94, 0x08, 0x02, 0xa1, 'q', 0xc4, 0x50, 1, 2, 3};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    for (int hello = 0; hello <= 1; hello++) {
        for (int reset = 0; reset <= 1; reset++) {
            int fd = hello ? raw_session(&b) : t_raw_connect(b.port);
            t_raw_send(fd, part, sizeof(part));
            t_sleep_ms(50); /* let the broker buffer the partial frame */
            OTHER_WORKS(&b, other);
            if (reset)
                close_reset(fd);
            else
                close(fd);
            WAIT_STAT(other, NULL, "connections", 1, 5000);
            OTHER_WORKS(&b, other);
        }
    }
    /* a header that stops short (2 of 4 bytes) */
    {
        int fd = raw_session(&b);
        t_raw_send(fd, part, 2);
        t_sleep_ms(50);
        close(fd);
        WAIT_STAT(other, NULL, "connections", 1, 5000);
    }
    /* nothing was published by the truncated PUBLISH */
    {
        slabmq_stats *s = NULL;
        T_EQ_INT(slabmq_stats_get(other, "q", &s), SLABMQ_ERR_NOT_FOUND);
    }
    FINISH(&b, other);
}

/* A frame stops short and the client stalls: the other client is served meanwhile, the
 * stalled connection stays open, and when the rest arrives the request completes. */
static void
test_stalled_partial_frame(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct mb s = {0};
    struct rep p;
    uint8_t payload[300];
    uint64_t id;
    slabmq_batch *bt = NULL;
    int fd;
    int fd2;
    int fd3;

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    mb_req(&m, SMQ_OP_PUBLISH, 2, 2);
    mb_str(&m, "stall");
    mb_bin(&m, payload, sizeof(payload));
    mb_frame(&s, m.p, m.len);
    /* header + half of the body, then nothing for a while */
    t_raw_send(fd, s.p, 4 + m.len / 2);
    /* a second raw connection stalls inside the 4-byte header, a third stalls after a
     * header announcing the largest allowed frame */
    fd2 = raw_session(&b);
    t_raw_send(fd2, s.p, 3);
    fd3 = raw_session(&b);
    {
        uint8_t h[6];
        smq_frame_put_header(h, DEFAULT_MAX_BODY);
        h[4] = 0x94;
        h[5] = 0x08;
        t_raw_send(fd3, h, 5);
        t_sleep_ms(20);
        t_raw_send(fd3, h + 5, 1);
    }
    for (int i = 0; i < 5; i++) {
        OTHER_WORKS(&b, other);
        t_sleep_ms(50);
    }
    EXPECT_OPEN(fd, 100);
    EXPECT_OPEN(fd2, 10);
    EXPECT_OPEN(fd3, 10);
    {
        slabmq_stats *st = NULL;
        T_EQ_INT(slabmq_stats_get(other, "stall", &st), SLABMQ_ERR_NOT_FOUND);
    }
    /* the rest of the frame: the publish completes */
    t_raw_send(fd, s.p + 4 + m.len / 2, s.len - 4 - m.len / 2);
    EXPECT_OK(fd, SMQ_OP_PUBLISH, 2, &p);
    T_ASSERT(p.n == 4 && smq_mpr_uint(&p.r, &id) == 0);
    EXPECT_PING(fd);
    T_OK(other, slabmq_fetch(other, "stall", 1, 1000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_U64(slabmq_batch_get(bt, 0)->id, id);
    T_EQ_INT(slabmq_batch_get(bt, 0)->len, sizeof(payload));
    T_EQ_MEM(slabmq_batch_get(bt, 0)->data, payload, sizeof(payload));
    T_OK(other, slabmq_ack(other, id));
    slabmq_batch_free(bt);
    close(fd);
    close(fd2);
    close(fd3);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* Odd but valid framing                                                                     */

static void
test_one_byte_per_send(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct mb s = {0};
    struct rep p;
    uint64_t ids[2];
    uint64_t id;
    int fd;
    int64_t t0 = t_now_ms();

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 1);
    mb_str(&m, "trickle");
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_PUBLISH, 2, 2);
    mb_str(&m, "trickle");
    mb_bin(&m, "slowly", 6);
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_FETCH, 3, 2);
    mb_str(&m, "trickle");
    mb_uint(&m, 1);
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    T_ASSERT(s.len < 200);
    for (size_t i = 0; i < s.len; i++) {
        t_raw_send(fd, s.p + i, 1);
        t_sleep_ms(2);
        if (i == s.len / 2)
            OTHER_WORKS(&b, other); /* served while a frame is half there */
    }
    EXPECT_OK(fd, SMQ_OP_HELLO, 1, &p);
    EXPECT_OK(fd, SMQ_OP_PUBLISH, 2, &p);
    T_ASSERT(p.n == 4 && smq_mpr_uint(&p.r, &id) == 0);
    EXPECT_OK(fd, SMQ_OP_FETCH, 3, &p);
    T_EQ_INT(parse_messages(__FILE__, __LINE__, &p, ids, 2), 1);
    T_EQ_U64(ids[0], id);
    raw_ack_send(fd, 4, ids, 1);
    T_EQ_U64(EXPECT_COUNT(fd, SMQ_OP_ACK, 4), 1);
    T_ASSERT(t_now_ms() - t0 < 20000);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

/* Many frames in one send(): every reply arrives, in order. */
static void
test_thousand_pings_one_send(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct mb s = {0};
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (unsigned round = 0; round < 2; round++) {
        uint32_t count = round == 0 ? 1000 : 50000; /* the second: ~450 KB in one send */
        s.len = 0;
        for (uint32_t i = 1; i <= count; i++) {
            m.len = 0;
            mb_req(&m, SMQ_OP_PING, i, 0);
            mb_frame(&s, m.p, m.len);
        }
        t_raw_send(fd, s.p, s.len);
        for (uint32_t i = 1; i <= count; i++) {
            struct rep p;
            recv_rep(__FILE__, __LINE__, fd, &p);
            if (p.op != SMQ_OP_PING || p.rid != i || p.status != 0 || p.n != 3)
                t_fail(__FILE__, __LINE__, "reply %u of %u: op %llu rid %llu status %llu", i,
                       count, (unsigned long long)p.op, (unsigned long long)p.rid,
                       (unsigned long long)p.status);
        }
        EXPECT_OPEN(fd, 50); /* nothing more */
        OTHER_WORKS(&b, other);
    }
    close(fd);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* Disconnects with work outstanding                                                         */

#define BIG_N 64
#define BIG_LEN (64u * 1024)

static void
fill_big(uint8_t *buf, unsigned i)
{
    for (size_t k = 0; k < BIG_LEN; k++)
        buf[k] = (uint8_t)(i * 31 + k * 7 + (k >> 8));
}

/* A consumer fetches 64 x 64 KiB at once and disconnects while the 4 MiB reply is being
 * written: the broker keeps running and every message becomes ready again, intact. */
static void
test_disconnect_during_large_delivery(void)
{
    struct t_broker b;
    slabmq_client *other;
    uint8_t *buf = malloc(BIG_LEN);
    uint8_t *want = malloc(BIG_LEN);
    uint64_t pub[BIG_N];
    struct mb m = {0};

    T_ASSERT(buf && want);
    t_broker_start(&b, NULL);
    other = t_client(&b);
    for (unsigned i = 0; i < BIG_N; i++) {
        fill_big(buf, i);
        T_OK(other, slabmq_publish(other, "big", buf, BIG_LEN, &pub[i]));
    }
    for (int mode = 0; mode < 3; mode++) {
        int fd = raw_connect_small(b.port, 4096);
        uint8_t junk[16384];
        t_raw_hello(fd);
        struct mb s = {0};
        /* FETCH replies are capped in bytes (max_fetch_bytes): pipeline enough FETCHes to
         * take all 64 whatever the cap */
        for (unsigned r = 0; r < BIG_N; r++) {
            m.len = 0;
            mb_req(&m, SMQ_OP_FETCH, 2 + r, 2);
            mb_str(&m, "big");
            mb_uint(&m, BIG_N);
            mb_frame(&s, m.p, m.len);
        }
        m.len = 0;
        t_raw_send(fd, s.p, s.len);
        mb_free(&s);
        /* the broker has taken them all and is writing */
        WAIT_STAT(other, "big", "inflight", BIG_N, 5000);
        T_EQ_U64(STAT(other, "big", "ready"), 0);
        if (mode == 1) { /* read a little of the reply first */
            ssize_t got = recv(fd, junk, sizeof(junk), 0);
            T_ASSERT(got > 0);
        }
        OTHER_WORKS(&b, other);
        if (mode == 2)
            close_reset(fd);
        else
            close(fd);
        WAIT_STAT(other, "big", "inflight", 0, 5000);
        WAIT_STAT(other, "big", "ready", BIG_N, 5000);
        WAIT_STAT(other, NULL, "connections", 1, 5000);
        OTHER_WORKS(&b, other);
    }
    /* every message is intact, redelivered in order, and can be acked */
    {
        unsigned got = 0;
        uint64_t acked = 0;
        int64_t deadline = t_now_ms() + 10000;
        while (got < BIG_N && t_now_ms() < deadline) {
            slabmq_batch *bt = NULL;
            T_OK(other, slabmq_fetch(other, "big", BIG_N, 0, &bt));
            T_ASSERT(slabmq_batch_count(bt) > 0);
            for (size_t j = 0; j < slabmq_batch_count(bt); j++, got++) {
                const slabmq_message *msg = slabmq_batch_get(bt, j);
                T_ASSERT(got < BIG_N);
                T_EQ_U64(msg->id, pub[got]);
                T_EQ_INT(msg->deliveries, 4); /* three connections took it before */
                T_EQ_INT(msg->len, BIG_LEN);
                fill_big(want, got);
                T_EQ_MEM(msg->data, want, BIG_LEN);
            }
            slabmq_batch_free(bt);
        }
        T_EQ_INT(got, BIG_N);
        T_OK(other, slabmq_ack_batch(other, pub, BIG_N, &acked));
        T_EQ_U64(acked, BIG_N);
    }
    T_EQ_U64(STAT(other, "big", "ready"), 0);
    T_EQ_U64(STAT(other, "big", "inflight"), 0);
    free(buf);
    free(want);
    mb_free(&m);
    FINISH(&b, other);
}

/* Long-poll FETCHes left behind by a closed connection must not be served later, and a
 * connection may not stack up unlimited waits. */
static void
test_disconnect_while_waiting(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct mb s = {0};
    slabmq_batch *bt = NULL;
    uint64_t id;
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (unsigned i = 0; i < 64; i++) {
        m.len = 0;
        mb_req(&m, SMQ_OP_FETCH, 10 + i, 3);
        mb_str(&m, "lp");
        mb_uint(&m, 1);
        mb_uint(&m, 60000);
        mb_frame(&s, m.p, m.len);
    }
    m.len = 0;
    mb_req(&m, SMQ_OP_FETCH, 99, 3); /* the 65th */
    mb_str(&m, "lp");
    mb_uint(&m, 1);
    mb_uint(&m, 60000);
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    t_raw_send(fd, s.p, s.len);
    EXPECT_ERR(fd, SMQ_OP_FETCH, 99, SLABMQ_ERR_LIMIT);
    WAIT_STAT(other, "lp", "waiters", 64, 5000);
    close(fd);
    WAIT_STAT(other, "lp", "waiters", 0, 5000);
    WAIT_STAT(other, NULL, "connections", 1, 5000);
    T_OK(other, slabmq_publish(other, "lp", "late", 4, &id));
    T_EQ_U64(STAT(other, "lp", "ready"), 1);
    T_OK(other, slabmq_fetch(other, "lp", 1, 1000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_U64(slabmq_batch_get(bt, 0)->id, id);
    T_EQ_INT(slabmq_batch_get(bt, 0)->deliveries, 1);
    slabmq_batch_free(bt);
    T_OK(other, slabmq_ack(other, id));
    /* a waiter whose queue is deleted gets QUEUE_DELETED and its connection lives on */
    fd = raw_session(&b);
    mb_req(&m, SMQ_OP_FETCH, 5, 3);
    mb_str(&m, "lp");
    mb_uint(&m, 1);
    mb_uint(&m, 60000);
    send_mb(fd, &m);
    WAIT_STAT(other, "lp", "waiters", 1, 5000);
    T_OK(other, slabmq_delete(other, "lp", NULL));
    EXPECT_ERR(fd, SMQ_OP_FETCH, 5, SLABMQ_ERR_QUEUE_DELETED);
    EXPECT_PING(fd);
    close(fd);
    OTHER_WORKS(&b, other);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

/* A client pipelines requests whose replies total 160 MiB and does not read: the broker
 * stops reading it at its output cap, keeps serving others, and when the client finally
 * reads, every reply arrives in order. */
static void
test_slow_reader_pipelined(void)
{
    struct t_broker b;
    slabmq_client *other;
    uint8_t *buf = malloc(BIG_LEN);
    uint8_t *rbuf;
    size_t rcap = (size_t)BIG_N * (BIG_LEN + 64) + 4096;
    struct mb m = {0};
    struct mb s = {0};
    uint64_t used0;
    uint64_t used;
    int fd;
    uint64_t first = 0;
    uint32_t n;
    const unsigned nreq = 40;

    T_ASSERT(buf != NULL);
    rbuf = malloc(rcap);
    T_ASSERT(rbuf != NULL);
    t_broker_start(&b, NULL);
    other = t_client(&b);
    for (unsigned i = 0; i < BIG_N; i++) {
        uint64_t id;
        fill_big(buf, i);
        T_OK(other, slabmq_publish(other, "slow", buf, BIG_LEN, &id));
        if (i == 0)
            first = id;
    }
    OTHER_WORKS(&b, other);
    used0 = STAT(other, NULL, "memory_used");
    fd = raw_connect_small(b.port, 4096);
    t_raw_hello(fd);
    for (unsigned i = 0; i < nreq; i++) {
        m.len = 0;
        mb_req(&m, SMQ_OP_PEEK, 100 + i, 2);
        mb_str(&m, "slow");
        mb_uint(&m, BIG_N);
        mb_frame(&s, m.p, m.len);
    }
    t_raw_send(fd, s.p, s.len);
    t_sleep_ms(300);
    for (int i = 0; i < 3; i++) {
        OTHER_WORKS(&b, other);
        t_sleep_ms(50);
    }
    /* pending output is bounded by the 16 MiB output cap plus one reply (at most 4 MiB) */
    used = STAT(other, NULL, "memory_used");
    if (used > used0 + 24 * MIB)
        t_fail(__FILE__, __LINE__, "memory_used %llu with a slow reader, %llu before",
               (unsigned long long)used, (unsigned long long)used0);
    for (unsigned i = 0; i < nreq; i++) {
        struct rep p;
        uint64_t ids[BIG_N];
        recv_rep_buf(__FILE__, __LINE__, fd, rbuf, rcap, 10000, &p);
        if (p.op != SMQ_OP_PEEK || p.rid != 100 + i || p.status != 0)
            t_fail(__FILE__, __LINE__, "reply %u: op %llu rid %llu status %llu", i,
                   (unsigned long long)p.op, (unsigned long long)p.rid,
                   (unsigned long long)p.status);
        /* as many as fit the reply cap (max_fetch_bytes), oldest first */
        n = parse_messages(__FILE__, __LINE__, &p, ids, BIG_N);
        T_ASSERT(n >= 1 && n <= BIG_N);
        T_EQ_U64(ids[0], first);
    }
    EXPECT_PING(fd);
    close(fd);
    OTHER_WORKS(&b, other);
    free(buf);
    free(rbuf);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

/* A client with a short timeout, so that a broker that stops answering fails the case fast
 * and says so. */
static slabmq_client *
client_timeout(const struct t_broker *b, int ms)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c = NULL;
    char err[256] = "";
    slabmq_status st;

    o.port = (uint16_t)b->port;
    o.timeout_ms = ms;
    st = slabmq_client_connect_errbuf(&o, &c, err, sizeof(err));
    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__, "connect: %s (%s)", slabmq_status_name(st), err);
    return c;
}

/* A client that asks for a large reply and never reads it must not stop the broker from
 * serving others, and must not switch the memory limit off. Replies are allocated past
 * --max-memory on purpose (mem_force: they are owed), so a PEEK of everything stored takes
 * memory_used over memory_limit. Then: other clients' PING, STATS and ACK are still
 * answered; new message storage is refused; and the input buffer a connection needs for a
 * large frame (4 MiB for a 1 MiB + 1 KiB frame) is refused too. */
static void
test_memory_limit_while_output_pending(void)
{
    struct t_broker b;
    slabmq_client *other;
    uint8_t *buf = calloc(1, MIB);
    struct mb m = {0};
    uint64_t limit;
    uint64_t used;
    uint64_t over;
    uint64_t before_peek;
    uint64_t held_id;
    unsigned k = 0;
    unsigned extra = 0;
    unsigned refused = 0;
    slabmq_status st = SLABMQ_OK;
    slabmq_batch *bt = NULL;
    int64_t t0;
    int fd;
    int fd2;
    int big[6];
    const unsigned nbig = sizeof(big) / sizeof(big[0]);

    T_ASSERT(buf != NULL);
    t_broker_start(&b, "--max-memory", "32MiB", NULL);
    other = client_timeout(&b, 3000);
    fd = raw_connect_small(b.port, 4096);
    t_raw_hello(fd);
    fd2 = raw_connect_small(b.port, 4096);
    t_raw_hello(fd2);
    for (unsigned i = 0; i < nbig; i++)
        big[i] = raw_session(&b);
    limit = STAT(other, NULL, "memory_limit");
    T_EQ_U64(limit, 32 * MIB);
    /* the other client holds one message, to ACK later */
    T_OK(other, slabmq_publish(other, "held", "h", 1, &held_id));
    T_OK(other, slabmq_fetch(other, "held", 1, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    slabmq_batch_free(bt);
    /* fill up to the limit with 1 MiB messages */
    while (k < 64) {
        uint64_t id;
        st = slabmq_publish(other, "fill", buf, MIB, &id);
        if (st != SLABMQ_OK)
            break;
        k++;
    }
    T_EQ_INT(st, SLABMQ_ERR_NOMEM);
    T_ASSERT(k >= 8);
    before_peek = STAT(other, NULL, "memory_used");
    T_ASSERT(before_peek <= limit);
    /* two clients that do not read pipeline PEEKs of everything: each gets replies up to
     * the per-connection output cap (16 MiB) whatever the cap on one reply */
    {
        struct mb s = {0};
        for (unsigned i = 0; i < 40; i++) {
            m.len = 0;
            mb_req(&m, SMQ_OP_PEEK, 2 + i, 2);
            mb_str(&m, "fill");
            mb_uint(&m, 256);
            mb_frame(&s, m.p, m.len);
        }
        m.len = 0;
        t_raw_send(fd, s.p, s.len);
        t_raw_send(fd2, s.p, s.len);
        mb_free(&s);
    }
    t_sleep_ms(300);
    /* the others are still served: requests that need no memory, or free some */
    t0 = t_now_ms();
    st = slabmq_ping(other);
    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__,
               "PING from another client: %s after %lld ms (%s). With %u MiB stored at a "
               "32 MiB limit, two connections' unread PEEK replies stop the broker from "
               "serving every other connection",
               slabmq_status_name(st), (long long)(t_now_ms() - t0), slabmq_client_errmsg(other),
               k);
    used = STAT(other, NULL, "memory_used");
    if (used <= limit)
        t_fail(__FILE__, __LINE__, "pending PEEK replies over %u MiB did not take memory_used "
               "(%llu) over the limit; the premise of this case no longer holds", k,
               (unsigned long long)used);
    T_OK(other, slabmq_ack(other, held_id));
    /* message storage is refused */
    for (unsigned i = 0; i < 4; i++) {
        uint64_t id;
        st = slabmq_publish(other, "fill2", buf, MIB, &id);
        if (st == SLABMQ_OK)
            extra++;
        else if (st != SLABMQ_ERR_NOMEM)
            t_fail(__FILE__, __LINE__, "publish: %s (%s)", slabmq_status_name(st),
                   slabmq_client_errmsg(other));
    }
    if (extra > 0)
        t_fail(__FILE__, __LINE__, "%u one-MiB publishes accepted over the memory limit", extra);
    /* large-frame input buffers: each connection sends the first 100 KB of a maximal ACK
     * frame (ACK frees memory, so no admission check refuses it from its header), more than
     * a read buffer holds, so the broker must size its input buffer for the whole frame */
    over = STAT(other, NULL, "memory_used");
    {
        size_t part = 100000;
        uint8_t *h = malloc(4 + part);
        T_ASSERT(h != NULL);
        memset(h, 0x01, 4 + part);
        smq_frame_put_header(h, DEFAULT_MAX_BODY);
        h[4] = 0x93; /* [11, 5, [1, 1, 1, ...]] */
        h[5] = SMQ_OP_ACK;
        h[6] = 0x05;
        h[7] = 0xdd;
        h[8] = 0x00; /* 1049592 ids of one byte: 8 + 1049592 = the maximal body */
        h[9] = 0x10;
        h[10] = 0x03;
        h[11] = 0xf8;
        for (unsigned i = 0; i < nbig; i++)
            send_bounded(big[i], h, 4 + part, 2000);
        free(h);
    }
    t_sleep_ms(300);
    used = STAT(other, NULL, "memory_used");
    for (unsigned i = 0; i < nbig; i++) {
        long n = t_raw_recv_frame(big[i], rep_buf, sizeof(rep_buf), 100);
        if (n > 0) {
            struct rep p;
            parse_rep(__FILE__, __LINE__, rep_buf, (size_t)n, &p);
            T_EQ_U64(p.status, SLABMQ_ERR_NOMEM);
            refused++;
        }
    }
    if (used > over + MIB)
        t_fail(__FILE__, __LINE__,
               "memory_used went from %llu to %llu (limit %llu) while already over the limit: "
               "%u of %u connections got a large input buffer, %u were refused. mem_reserve() "
               "computes limit - used, which wraps around once mem_force() has pushed used "
               "past limit, so every reservation succeeds",
               (unsigned long long)over, (unsigned long long)used, (unsigned long long)limit,
               nbig - refused, nbig, refused);
    for (unsigned i = 0; i < nbig; i++)
        close(big[i]);
    close(fd);
    close(fd2);
    WAIT_STAT(other, NULL, "connections", 1, 5000);
    T_OK(other, slabmq_purge(other, "fill", NULL));
    OTHER_WORKS(&b, other);
    free(buf);
    mb_free(&m);
    FINISH(&b, other);
}

/* More connections than --max-connections: the extra ones are told why and closed, the
 * others (and the other client) are unaffected, and freed slots can be used again. */
static void
test_connection_flood(void)
{
    struct t_broker b;
    slabmq_client *other;
    int fds[40];
    unsigned accepted = 0;
    unsigned refused = 0;

    t_broker_start(&b, "--max-connections", "8", NULL);
    other = t_client(&b);
    for (unsigned i = 0; i < 40; i++) {
        static const uint8_t hello[] = {0, 0, 0, 8, 0x94, 0x01, 0x01, 0x01, 0xa3, 'r', 'a', 'w'};
        struct rep p;
        fds[i] = t_raw_connect(b.port);
        t_raw_send(fds[i], hello, sizeof(hello));
        recv_rep(__FILE__, __LINE__, fds[i], &p);
        if (p.status == SLABMQ_OK) {
            T_EQ_U64(p.op, SMQ_OP_HELLO);
            accepted++;
        } else {
            T_EQ_U64(p.op, SMQ_OP_NONE);
            T_EQ_U64(p.status, SLABMQ_ERR_LIMIT);
            EXPECT_EOF(fds[i]);
            close(fds[i]);
            fds[i] = -1;
            refused++;
        }
    }
    T_EQ_INT(accepted, 7); /* 8 with the other client */
    T_EQ_INT(refused, 33);
    T_EQ_U64(STAT(other, NULL, "connections_refused"), 33);
    OTHER_WORKS(&b, other);
    for (unsigned i = 0; i < 40; i++) {
        if (fds[i] >= 0) {
            EXPECT_PING(fds[i]);
            close(fds[i]);
        }
    }
    WAIT_STAT(other, NULL, "connections", 1, 5000);
    {
        int fd = raw_session(&b); /* slots are free again */
        EXPECT_PING(fd);
        close(fd);
    }
    FINISH(&b, other);
}

/* --frame-timeout: a frame that stops short is cut off at the deadline with an error, and
 * so is a slowloris that keeps sending one byte at a time (a deadline, not an idle timer);
 * another client is served throughout. */
static void
test_frame_deadline(void)
{
    struct t_broker b;
    slabmq_client *other;
    static const uint8_t start[] = {0, 0, 0, 100, 0x94, 0x08, 0x01};
    uint8_t reply[256];
    int64_t t0;
    long n;
    int fd;
    int closed = 0;

    t_broker_start(&b, "--frame-timeout", "300", NULL);
    other = t_client(&b);
    fd = t_raw_connect(b.port);
    t_raw_hello(fd);
    t0 = t_now_ms();
    t_raw_send(fd, start, sizeof(start)); /* 3 of 100 body bytes, then silence */
    T_OK(other, slabmq_ping(other));
    n = t_raw_recv_frame(fd, reply, sizeof(reply), 3000);
    T_ASSERT(n > 4);
    T_EQ_INT(reply[1], 0x00); /* [0, 0, ERR_PROTOCOL, "frame not completed within 300 ms"] */
    T_EQ_INT(reply[3], SLABMQ_ERR_PROTOCOL);
    T_ASSERT(t_now_ms() - t0 >= 250);
    T_ASSERT(t_raw_wait_closed(fd, 2000));
    close(fd);

    fd = t_raw_connect(b.port); /* one byte every 50 ms: would take 5 s, cut at 300 ms */
    t_raw_hello(fd);
    t0 = t_now_ms();
    t_raw_send(fd, start, 4);
    for (int i = 0; i < 100 && !closed; i++) {
        uint8_t one = 0x01;
        t_sleep_ms(50);
        if (send(fd, &one, 1, MSG_NOSIGNAL) != 1 || t_raw_wait_closed(fd, 1))
            closed = 1;
    }
    T_ASSERT(closed);
    T_ASSERT(t_now_ms() - t0 < 2000);
    close(fd);
    T_OK(other, slabmq_ping(other));
    slabmq_client_close(other);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Half-open connections: TCP keepalive                                                      */

/* A TCP connection's row in /proc/net/tcp. */
struct tcp_row {
    unsigned st;        /* state: 1 ESTABLISHED, 8 CLOSE_WAIT, ... */
    unsigned long txq;  /* bytes sent and not yet acknowledged by the peer */
    unsigned long rxq;  /* bytes received and not yet read */
    unsigned tr;        /* running timer: 2 is keepalive */
    unsigned long when; /* its expiry, clock ticks from now */
};

/* The row of the connection with local port lport and remote port rport (both on
 * 127.0.0.1) in state st (1: ESTABLISHED; 0: any) into out. Returns 0, or -1 if there is
 * none. */
static int
tcp_row_in(int lport, int rport, unsigned st_want, struct tcp_row *out)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int found = -1;

    T_ASSERT(f != NULL);
    while (found < 0 && fgets(line, sizeof(line), f)) {
        unsigned lp;
        unsigned rp;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx %x:%lx", &lp, &rp, &out->st,
                   &out->txq, &out->rxq, &out->tr, &out->when) == 7
            && (int)lp == lport && (int)rp == rport && (!st_want || out->st == st_want))
            found = 0;
    }
    fclose(f);
    return found;
}

/* tcp_row_in() of the established connection. */
static int
tcp_row(int lport, int rport, struct tcp_row *out)
{
    return tcp_row_in(lport, rport, 1, out);
}

/* The broker's end of the connection from local port cport to its port bport: -1 if it is
 * not there (yet), 0 if no keepalive timer runs on it, else the seconds until the timer
 * fires (at least 1). */
static long
keepalive_timer_s(int bport, int cport)
{
    struct tcp_row r;

    if (tcp_row(bport, cport, &r))
        return -1;
    return r.tr != 2 ? 0 : (long)(r.when / (unsigned long)sysconf(_SC_CLK_TCK)) + 1;
}

/* The local port of socket fd. */
static int
local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    T_ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    return ntohs(sa.sin_port);
}

/* Connect to port and return the broker's keepalive timer for it (as keepalive_timer_s),
 * waiting up to 2 s for the connection to show. */
static long
keepalive_of(int port)
{
    int fd = t_raw_connect(port);
    int64_t deadline = t_now_ms() + 2000;
    int cport = local_port(fd);
    struct tcp_row r;
    long s;

    while ((s = keepalive_timer_s(port, cport)) < 0 && t_now_ms() < deadline)
        t_sleep_ms(10);
    close(fd);
    if (s < 0)
        t_fail(__FILE__, __LINE__, "no connection to port %d in /proc/net/tcp", port);
    /* wait for the broker to close its end too (ESTABLISHED or CLOSE_WAIT until then), so
     * that no connection is open when it is stopped */
    while (tcp_row_in(port, cport, 0, &r) == 0 && (r.st == 1 || r.st == 8)
           && t_now_ms() < deadline + 3000)
        t_sleep_ms(10);
    return s;
}

/* Connections to the plain, TLS and HTTP ports get TCP keepalive, after 60 s without
 * traffic by default and --tcp-keepalive seconds when given; 0 turns it off. Without it a
 * connection whose peer vanished without a FIN stays until --idle-timeout (issue 15). */
static void
test_tcp_keepalive(void)
{
    static const char *const settings[] = {NULL, "600", "0"};
    char dir[64];
    char crt[128];
    char key[128];

    t_temp_dir(dir, sizeof(dir), "keepalive");
    t_certs_make(dir);
    snprintf(crt, sizeof(crt), "%s/server.crt", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    for (int i = 0; i < 3; i++) {
        struct t_broker b;
        const char *set = settings[i];
        long lo = i == 0 ? 1 : 62; /* default 60 s; 600 s; off (a tick more for rounding) */
        long hi = i == 0 ? 61 : 601;
        int ports[3];
        t_broker_start(&b, "--tls-port", "0", "--tls-cert", crt, "--tls-key", key, "--http", "0",
                       set ? "--tcp-keepalive" : NULL, set, NULL);
        ports[0] = b.port;
        ports[1] = b.tls_port;
        ports[2] = b.http_port;
        for (int j = 0; j < 3; j++) {
            long s = keepalive_of(ports[j]);
            if (i == 2 ? s != 0 : s < lo || s > hi)
                t_fail(__FILE__, __LINE__, "--tcp-keepalive %s, port %d: timer %ld s, expected %s",
                       set ? set : "(default)", ports[j], s, i == 2 ? "none" : "in range");
        }
        t_broker_stop(&b);
    }
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* NOACK replies nobody reads                                                                */

#define NOACK_N 20000u   /* messages published */
#define NOACK_LEN 1000u  /* bytes each */
#define NOACK_REQS 40u   /* pipelined FETCHes of 1000 with NOACK: room for twice NOACK_N */

/* Wait up to 5 s for queue's ready count to stop changing (the same in 4 reads 50 ms
 * apart); returns it. */
static uint64_t
ready_settled(slabmq_client *c, const char *queue)
{
    int64_t deadline = t_now_ms() + 5000;
    uint64_t last = STAT(c, queue, "ready");
    int same = 0;

    while (same < 3 && t_now_ms() < deadline) {
        uint64_t v;
        t_sleep_ms(50);
        v = STAT(c, queue, "ready");
        same = v == last ? same + 1 : 0;
        last = v;
    }
    T_ASSERT(same == 3);
    return last;
}

/* docs/protocol.md 6.10: NOACK messages are removed when the broker puts them into its
 * reply, not when the reply is written. A client that asks for far more than it reads and
 * then closes loses every message of its replies: far more than the socket ever took, and
 * at most what was written plus the 16 MiB of unsent replies at which the broker stops
 * reading the connection, plus the one reply that crossed it. Nothing comes back at the
 * close. (protocol.md said "as the reply is written"; the broker never did that.) */
static void
test_noack_unread_replies_are_lost(void)
{
    struct t_broker b;
    slabmq_client *other;
    slabmq_payload *batch = calloc(500, sizeof(*batch));
    char *payload = malloc(NOACK_LEN);
    struct mb m = {0};
    struct mb s = {0};
    struct tcp_row br;
    struct tcp_row cr;
    uint64_t id;
    uint64_t lost;
    uint64_t written;
    int fd;

    T_ASSERT(batch && payload);
    memset(payload, 'n', NOACK_LEN);
    for (unsigned i = 0; i < 500; i++) {
        batch[i].data = payload;
        batch[i].len = NOACK_LEN;
    }
    t_broker_start(&b, NULL);
    other = t_client(&b);
    for (unsigned i = 0; i < NOACK_N / 500; i++)
        T_OK(other, slabmq_publish_batch(other, "noack", batch, 500, &id));
    fd = raw_connect_small(b.port, 4096);
    t_raw_hello(fd);
    for (unsigned i = 0; i < NOACK_REQS; i++) {
        m.len = 0;
        mb_req(&m, SMQ_OP_FETCH, 100 + i, 4);
        mb_str(&m, "noack");
        mb_uint(&m, 1000);
        mb_uint(&m, 0);
        mb_uint(&m, 1); /* NOACK */
        mb_frame(&s, m.p, m.len);
    }
    t_raw_send(fd, s.p, s.len);
    lost = NOACK_N - ready_settled(other, "noack");
    T_EQ_U64(STAT(other, "noack", "inflight"), 0);
    /* what the broker wrote: still on its way, or in the client's receive queue */
    T_ASSERT(tcp_row(b.port, local_port(fd), &br) == 0);
    T_ASSERT(tcp_row(local_port(fd), b.port, &cr) == 0);
    written = br.txq + cr.rxq;
    printf("noack: %llu of %u messages removed, %llu bytes written to the socket\n",
           (unsigned long long)lost, NOACK_N, (unsigned long long)written);
    if (lost * NOACK_LEN <= written + 8 * MIB
        || lost * NOACK_LEN > written + 16 * MIB + DEFAULT_MAX_MSG)
        t_fail(__FILE__, __LINE__, "%llu messages of %u bytes removed, %llu bytes written",
               (unsigned long long)lost, NOACK_LEN, (unsigned long long)written);
    close(fd);
    t_sleep_ms(200);
    T_EQ_U64(STAT(other, "noack", "ready"), NOACK_N - lost); /* none came back */
    OTHER_WORKS(&b, other);
    slabmq_client_close(other);
    t_broker_stop(&b);
    mb_free(&m);
    mb_free(&s);
    free(payload);
    free(batch);
}

static const struct t_case cases[] = {
    T_CASE(test_frame_deadline),
    T_CASE(test_truncated_frame_then_close),
    T_CASE(test_stalled_partial_frame),
    T_CASE(test_one_byte_per_send),
    T_CASE(test_thousand_pings_one_send),
    T_CASE(test_disconnect_during_large_delivery),
    T_CASE(test_disconnect_while_waiting),
    T_CASE(test_slow_reader_pipelined),
    T_CASE(test_memory_limit_while_output_pending),
    T_CASE(test_connection_flood),
    T_CASE(test_tcp_keepalive),
    T_CASE(test_noack_unread_replies_are_lost),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
