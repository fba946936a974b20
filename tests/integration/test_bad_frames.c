/* SPDX-License-Identifier: MIT */
/* Hostile input, part 1: bytes that are not valid slabmq frames or not valid msgpack.
 * Frame lengths (zero, one over the maximum, 0xffffffff), foreign protocols (HTTP, TLS),
 * garbage msgpack inside well-formed frames, containers declaring billions of elements
 * (allocation bombs) and deep nesting.
 *
 * Each case runs against a real slabmqd with a well-behaved "other client" connected
 * before the bad input; see tests/harness/raw.h for the method and the helpers. */
#include <unistd.h>
#include "raw.h"

/* ---------------------------------------------------------------------------------------- */
/* Frame lengths and foreign protocols                                                       */

static void
test_frame_length_zero(void)
{
    struct t_broker b;
    slabmq_client *other;
    static const uint8_t zero[] = {0, 0, 0, 0};
    /* a valid PING, then an empty frame in the same send: the PING is answered first */
    static const uint8_t ping_then_zero[] = {0, 0, 0, 3, 0x92, 0x02, 0x07, 0, 0, 0, 0};
    int fd;
    struct rep p;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    EXPECT_FATAL(&b, 0, zero, sizeof(zero), SLABMQ_ERR_PROTOCOL);
    EXPECT_FATAL(&b, 1, zero, sizeof(zero), SLABMQ_ERR_PROTOCOL);
    fd = raw_session(&b);
    t_raw_send(fd, ping_then_zero, sizeof(ping_then_zero));
    EXPECT_OK(fd, SMQ_OP_PING, 7, &p);
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    EXPECT_EOF(fd);
    close(fd);
    OTHER_WORKS(&b, other);
    T_ASSERT(STAT(other, NULL, "protocol_errors") >= 3);
    FINISH(&b, other);
}

/* One byte over the maximum frame body is refused from the header alone; exactly the
 * maximum is read and handled as a request. */
static void
test_frame_length_max_plus_one(void)
{
    struct t_broker b;
    slabmq_client *other;
    uint8_t h[8];
    struct mb m = {0};
    struct rep p;
    uint8_t *big;
    size_t blen;
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    smq_frame_put_header(h, DEFAULT_MAX_BODY + 1);
    h[4] = 0x92; /* a few body bytes after the header */
    h[5] = 0x02;
    h[6] = 0x01;
    EXPECT_FATAL(&b, 0, h, 4, SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 1, h, 4, SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 1, h, 7, SLABMQ_ERR_FRAME_TOO_BIG);
    OTHER_WORKS(&b, other);
    /* a naive client sends the whole oversized frame: the refusal still arrives, even
     * though the broker closes with unread input (which resets the connection) */
    {
        size_t n = 4 + DEFAULT_MAX_BODY + 1;
        uint8_t *all = calloc(1, n);
        int fd2 = raw_session(&b);
        T_ASSERT(all != NULL);
        memcpy(all, h, 7);
        t_raw_send(fd2, all, n);
        EXPECT_ERR(fd2, SMQ_OP_NONE, 0, SLABMQ_ERR_FRAME_TOO_BIG);
        T_ASSERT(t_raw_wait_closed(fd2, CLOSE_MS));
        close(fd2);
        free(all);
    }
    OTHER_WORKS(&b, other);

    /* exactly the maximum: [8, 5, "q", bin] with a payload over max_message_size */
    fd = raw_session(&b);
    blen = DEFAULT_MAX_BODY - 10; /* 94 08 05 a1 'q' c6 xx xx xx xx = 10 bytes of header */
    big = calloc(1, blen);
    T_ASSERT(big != NULL);
    mb_req(&m, SMQ_OP_PUBLISH, 5, 2);
    mb_str(&m, "q");
    mb_bin(&m, big, blen);
    T_EQ_INT(m.len, DEFAULT_MAX_BODY);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_PUBLISH, 5, SLABMQ_ERR_TOO_LARGE);
    EXPECT_PING(fd);
    /* the largest message is accepted */
    mb_req(&m, SMQ_OP_PUBLISH, 6, 2);
    mb_str(&m, "q");
    mb_bin(&m, big, DEFAULT_MAX_MSG);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_PUBLISH, 6, &p);
    T_EQ_U64(STAT(other, "q", "ready"), 1);
    OTHER_WORKS(&b, other);
    close(fd);
    free(big);
    mb_free(&m);
    FINISH(&b, other);
}

static void
test_frame_length_ffffffff(void)
{
    struct t_broker b;
    slabmq_client *other;
    static const uint8_t h[] = {0xff, 0xff, 0xff, 0xff, 0x94, 0x08, 0x01};
    int64_t t0;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    t0 = t_now_ms();
    EXPECT_FATAL(&b, 0, h, 4, SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 1, h, sizeof(h), SLABMQ_ERR_FRAME_TOO_BIG);
    /* the header split over two sends */
    {
        int fd = raw_session(&b);
        t_raw_send(fd, h, 2);
        t_sleep_ms(30);
        t_raw_send(fd, h + 2, 2);
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_FRAME_TOO_BIG);
        EXPECT_EOF(fd);
        close(fd);
    }
    T_ASSERT(t_now_ms() - t0 < 3000);
    T_ASSERT(STAT(other, NULL, "memory_used") < 64 * MIB);
    FINISH(&b, other);
}

static void
test_http_request(void)
{
    struct t_broker b;
    slabmq_client *other;
    static const char get[] = "GET / HTTP/1.1\r\n\r\n";
    static const char post[] = "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Length: 5\r\n\r\nhello";

    t_broker_start(&b, NULL);
    other = t_client(&b);
    /* "GET " read as a length is 0x47455420: far over the maximum */
    EXPECT_FATAL(&b, 0, get, strlen(get), SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 0, post, strlen(post), SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 1, get, strlen(get), SLABMQ_ERR_FRAME_TOO_BIG);
    OTHER_WORKS(&b, other);
    FINISH(&b, other);
}

static void
test_tls_client_hello(void)
{
    struct t_broker b;
    slabmq_client *other;
    /* record header (handshake, TLS 1.0, length 0x00c8), handshake header (ClientHello,
     * length 0x0000c4), client version 3.3, then random bytes */
    uint8_t hello[64] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03};
    static const uint8_t ssh[] = "SSH-2.0-OpenSSH_9.2p1\r\n";

    for (size_t i = 11; i < sizeof(hello); i++)
        hello[i] = (uint8_t)(i * 37 + 11);
    t_broker_start(&b, NULL);
    other = t_client(&b);
    EXPECT_FATAL(&b, 0, hello, sizeof(hello), SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 0, hello, 5, SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 1, hello, sizeof(hello), SLABMQ_ERR_FRAME_TOO_BIG);
    EXPECT_FATAL(&b, 0, ssh, sizeof(ssh) - 1, SLABMQ_ERR_FRAME_TOO_BIG);
    OTHER_WORKS(&b, other);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* Garbage msgpack inside well-formed frames                                                 */

/* Body-level errors keep the frame boundaries intact, so the broker answers [0, 0, 1, msg]
 * (or the op's own error when the header could be read) and the connection stays usable. */
static void
test_garbage_msgpack(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;
    static const uint8_t c1[] = {0xc1};
    static const uint8_t c1_in_array[] = {0x92, 0xc1, 0x01};
    static const uint8_t rid_c1[] = {0x92, 0x02, 0xc1};
    static const uint8_t trunc_array[] = {0x92, 0x01};
    static const uint8_t trunc_rid[] = {0x92, 0x02, 0xcd, 0x00};
    static const uint8_t trunc_u64_op[] = {0x92, 0xcf, 0, 0, 0};
    static const uint8_t hello_text[] = "hello";

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);

    send_frame(fd, c1, sizeof(c1));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    EXPECT_PING(fd);
    send_frame(fd, c1_in_array, sizeof(c1_in_array));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, rid_c1, sizeof(rid_c1));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, trunc_array, sizeof(trunc_array));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, trunc_rid, sizeof(trunc_rid));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, trunc_u64_op, sizeof(trunc_u64_op));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, hello_text, 5); /* text where msgpack belongs: 'h' is a fixmap */
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    EXPECT_PING(fd);

    /* 0xc1 as an argument */
    mb_req(&m, SMQ_OP_PUBLISH, 3, 2);
    mb_str(&m, "q");
    mb_byte(&m, 0xc1);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, 3, SLABMQ_ERR_BAD_REQUEST);
    /* truncated msgpack inside a complete frame: a bin that claims 16 bytes, 3 present */
    mb_req(&m, SMQ_OP_PUBLISH, 4, 2);
    mb_str(&m, "q");
    mb_byte(&m, 0xc4);
    mb_byte(&m, 16);
    mb_put(&m, "abc", 3);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, 4, SLABMQ_ERR_BAD_REQUEST);
    /* a str that claims 10 bytes, 2 present */
    mb_req(&m, SMQ_OP_DECLARE, 5, 1);
    mb_byte(&m, 0xaa);
    mb_put(&m, "ab", 2);
    REQ_ERR(fd, &m, SMQ_OP_DECLARE, 5, SLABMQ_ERR_BAD_REQUEST);
    /* the array says 3 elements, only 2 are there */
    mb_arr(&m, 3);
    mb_uint(&m, SMQ_OP_PING);
    mb_uint(&m, 6);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);

    /* trailing bytes after a valid request */
    mb_req(&m, SMQ_OP_PING, 7, 0);
    mb_nil(&m);
    REQ_ERR(fd, &m, SMQ_OP_PING, 7, SLABMQ_ERR_PROTOCOL);
    mb_req(&m, SMQ_OP_STATS, 8, 0);
    mb_put(&m, "\x00\x00\x00", 3);
    REQ_ERR(fd, &m, SMQ_OP_STATS, 8, SLABMQ_ERR_PROTOCOL);
    mb_req(&m, SMQ_OP_PUBLISH, 9, 2);
    mb_str(&m, "trail");
    mb_bin(&m, "x", 1);
    mb_byte(&m, 0x01);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, 9, SLABMQ_ERR_PROTOCOL);
    mb_req(&m, SMQ_OP_ACK, 10, 1);
    mb_arr(&m, 0);
    mb_byte(&m, 0xc1);
    REQ_ERR(fd, &m, SMQ_OP_ACK, 10, SLABMQ_ERR_PROTOCOL);
    {
        slabmq_stats *s = NULL; /* nothing was stored by the refused PUBLISH */
        T_EQ_INT(slabmq_stats_get(other, "trail", &s), SLABMQ_ERR_NOT_FOUND);
        T_EQ_INT(slabmq_stats_get(other, "q", &s), SLABMQ_ERR_NOT_FOUND);
    }

    /* good, bad, good pipelined in one send: three replies, in order */
    {
        struct mb s = {0};
        struct rep p;
        static const uint8_t ping11[] = {0x92, 0x02, 0x0b};
        static const uint8_t ping12[] = {0x92, 0x02, 0x0c};
        mb_frame(&s, ping11, sizeof(ping11));
        mb_frame(&s, c1, sizeof(c1));
        mb_frame(&s, ping12, sizeof(ping12));
        t_raw_send(fd, s.p, s.len);
        EXPECT_OK(fd, SMQ_OP_PING, 11, &p);
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        EXPECT_OK(fd, SMQ_OP_PING, 12, &p);
        mb_free(&s);
    }
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

/* Containers that declare billions of elements must be refused at once, without the broker
 * allocating for them. */
static void
test_huge_declared_containers(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;
    uint64_t used0;
    uint64_t peak0;
    uint64_t peak_vm0;
    uint64_t hwm0;
    int64_t t0;
    int64_t worst = 0;
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0x10, 0x00, 0x00, 0x00};
    static const uint8_t arr16[] = {0xdc, 0xff, 0xff, 0x02, 0x01};
    static const uint8_t map_big_first[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const uint8_t str32[] = {0x92, 0x02, 0xdb, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t bin32[] = {0x92, 0x02, 0xc6, 0xff, 0xff, 0xff, 0xff};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    OTHER_WORKS(&b, other);
    used0 = STAT(other, NULL, "memory_used");
    peak0 = STAT(other, NULL, "memory_peak");
    peak_vm0 = proc_kib(b.pid, "VmPeak");
    hwm0 = proc_kib(b.pid, "VmHWM");

    for (int round = 0; round < 20; round++) {
        t0 = t_now_ms();
        /* as the whole body */
        send_frame(fd, arr32, sizeof(arr32));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        send_frame(fd, map32, sizeof(map32));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        send_frame(fd, arr16, sizeof(arr16));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        send_frame(fd, map_big_first, sizeof(map_big_first));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        /* a string or bin of 4 GiB where the request id belongs */
        send_frame(fd, str32, sizeof(str32));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        send_frame(fd, bin32, sizeof(bin32));
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        /* as arguments: ACK ids, PUBLISH_BATCH payloads, DECLARE options, names, payloads */
        mb_req(&m, SMQ_OP_ACK, 20, 1);
        mb_put(&m, arr32, sizeof(arr32));
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_ACK, 20, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_NACK, 21, 1);
        mb_put(&m, arr32, sizeof(arr32));
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_NACK, 21, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_PUBLISH_BATCH, 22, 2);
        mb_str(&m, "huge");
        mb_put(&m, arr32, sizeof(arr32));
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_PUBLISH_BATCH, 22, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_DECLARE, 23, 2);
        mb_str(&m, "huge");
        mb_put(&m, map32, sizeof(map32));
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_DECLARE, 23, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_PUBLISH, 24, 2);
        mb_put(&m, str32 + 2, 5); /* queue name: str32 of 4 GiB */
        mb_bin(&m, "x", 1);
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_PUBLISH, 24, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_PUBLISH, 25, 2);
        mb_str(&m, "huge");
        mb_put(&m, bin32 + 2, 5); /* payload: bin32 of 4 GiB */
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_PUBLISH, 25, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_HELLO, 26, 2); /* a second HELLO with a 4 GiB client name */
        mb_uint(&m, 1);
        mb_put(&m, str32 + 2, 5);
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_HELLO, 26, SLABMQ_ERR_BAD_REQUEST);
        if (t_now_ms() - t0 > worst)
            worst = t_now_ms() - t0;
    }
    EXPECT_PING(fd);
    OTHER_WORKS(&b, other);
    /* answered promptly: 13 refusals well within a second, even under sanitizers */
    if (worst > 1000)
        t_fail(__FILE__, __LINE__, "13 refusals took %lld ms", (long long)worst);
    /* nothing allocated for the declared sizes */
    {
        uint64_t used = STAT(other, NULL, "memory_used");
        uint64_t peak = STAT(other, NULL, "memory_peak");
        uint64_t vm = proc_kib(b.pid, "VmPeak");
        uint64_t hwm = proc_kib(b.pid, "VmHWM");
        if (used > used0 + MIB || (peak > peak0 && peak > used0 + 4 * MIB))
            t_fail(__FILE__, __LINE__, "memory_used %llu (peak %llu), was %llu before",
                   (unsigned long long)used, (unsigned long long)peak,
                   (unsigned long long)used0);
        if (peak_vm0 && vm > peak_vm0 + 256 * 1024)
            t_fail(__FILE__, __LINE__, "VmPeak grew from %llu to %llu KiB",
                   (unsigned long long)peak_vm0, (unsigned long long)vm);
        if (hwm0 && hwm > hwm0 + 64 * 1024)
            t_fail(__FILE__, __LINE__, "VmHWM grew from %llu to %llu KiB",
                   (unsigned long long)hwm0, (unsigned long long)hwm);
    }
    {
        slabmq_stats *s = NULL;
        T_EQ_INT(slabmq_stats_get(other, "huge", &s), SLABMQ_ERR_NOT_FOUND);
    }
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

/* 40 levels of single-element arrays, and a body of nothing but nesting. */
static void
test_deep_nesting(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    /* the body: 40 x 0x91 then 1 */
    for (int i = 0; i < 40; i++)
        mb_byte(&m, 0x91);
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    /* the request id nested 40 deep */
    mb_arr(&m, 2);
    mb_uint(&m, SMQ_OP_PING);
    for (int i = 0; i < 40; i++)
        mb_byte(&m, 0x91);
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    /* an ACK whose id list nests 40 deep */
    mb_req(&m, SMQ_OP_ACK, 3, 1);
    for (int i = 0; i < 40; i++)
        mb_byte(&m, 0x91);
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_ACK, 3, SLABMQ_ERR_BAD_REQUEST);
    /* DECLARE options whose value nests 40 deep */
    mb_req(&m, SMQ_OP_DECLARE, 4, 2);
    mb_str(&m, "nest");
    mb_map(&m, 1);
    mb_str(&m, "visibility_ms");
    for (int i = 0; i < 40; i++)
        mb_byte(&m, 0x81);
    mb_nil(&m);
    REQ_ERR(fd, &m, SMQ_OP_DECLARE, 4, SLABMQ_ERR_BAD_REQUEST);
    /* a PING whose extra argument nests 100000 deep (a recursive decoder would overflow) */
    mb_req(&m, SMQ_OP_PING, 5, 1);
    for (int i = 0; i < 100000; i++)
        mb_byte(&m, 0x91);
    mb_nil(&m);
    REQ_ERR(fd, &m, SMQ_OP_PING, 5, SLABMQ_ERR_BAD_REQUEST);
    /* a body of 1 MiB of nesting */
    for (size_t i = 0; i < DEFAULT_MAX_BODY; i++)
        mb_byte(&m, 0x91);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

static const struct t_case cases[] = {
    T_CASE(test_frame_length_zero),
    T_CASE(test_frame_length_max_plus_one),
    T_CASE(test_frame_length_ffffffff),
    T_CASE(test_http_request),
    T_CASE(test_tls_client_hello),
    T_CASE(test_garbage_msgpack),
    T_CASE(test_huge_declared_containers),
    T_CASE(test_deep_nesting),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
