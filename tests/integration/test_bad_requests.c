/* SPDX-License-Identifier: MIT */
/* Hostile input, part 2: well-formed msgpack that is not a valid request.
 * Request shape (not an array, too short, non-integer or unknown op), HELLO rules, wrong
 * argument types, invalid queue names, and ACK errors (unknown, double, another
 * connection's message).
 *
 * Each case runs against a real slabmqd with a well-behaved "other client" connected
 * before the bad input; see tests/harness/raw.h for the method and the helpers. */
#include <unistd.h>
#include "raw.h"

/* ---------------------------------------------------------------------------------------- */
/* Request shape                                                                             */

static void
test_body_not_array(void)
{
    struct t_broker b;
    slabmq_client *other;
    int fd;
    static const uint8_t bodies[][6] = {
        {0x02},                         /* positive fixint */
        {0xff},                         /* negative fixint */
        {0xc0},                         /* nil */
        {0xc3},                         /* true */
        {0xa3, 'a', 'b', 'c'},          /* str */
        {0xc4, 0x02, 0x92, 0x02},       /* bin holding an array */
        {0x82, 0x01, 0x02, 0x03, 0x04}, /* map */
        {0xcb, 0, 0, 0, 0, 0},          /* truncated float64 */
        {0xd4, 0x01, 0x02},             /* fixext1 */
    };
    static const size_t lens[] = {1, 1, 1, 1, 4, 4, 5, 6, 3};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        send_frame(fd, bodies[i], lens[i]);
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    }
    EXPECT_PING(fd);
    OTHER_WORKS(&b, other);
    close(fd);
    FINISH(&b, other);
}

static void
test_array_too_short(void)
{
    struct t_broker b;
    slabmq_client *other;
    int fd;
    static const uint8_t empty[] = {0x90};
    static const uint8_t one[] = {0x91, 0x02};
    static const uint8_t empty16[] = {0xdc, 0x00, 0x00};
    static const uint8_t one32[] = {0xdd, 0x00, 0x00, 0x00, 0x01, 0x02};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    send_frame(fd, empty, sizeof(empty));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, one, sizeof(one));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, empty16, sizeof(empty16));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    send_frame(fd, one32, sizeof(one32));
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    EXPECT_PING(fd);
    OTHER_WORKS(&b, other);
    close(fd);
    FINISH(&b, other);
}

static void
test_op_not_an_integer(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    mb_arr(&m, 2); /* ["ping", 2] */
    mb_str(&m, "ping");
    mb_uint(&m, 2);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    mb_arr(&m, 2); /* [-2, 3] */
    mb_neg(&m, -2);
    mb_uint(&m, 3);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    mb_arr(&m, 2); /* [2.0, 4] */
    mb_f64(&m, 2.0);
    mb_uint(&m, 4);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    mb_arr(&m, 2); /* [nil, 5] */
    mb_nil(&m);
    mb_uint(&m, 5);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    mb_arr(&m, 2); /* [2, "six"]: request id a string */
    mb_uint(&m, SMQ_OP_PING);
    mb_str(&m, "six");
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    mb_arr(&m, 2); /* [2, -7]: negative request id */
    mb_uint(&m, SMQ_OP_PING);
    mb_neg(&m, -7);
    REQ_ERR(fd, &m, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    /* a signed encoding of a non-negative op is accepted: [int8 2, 8] is a PING */
    {
        static const uint8_t sping[] = {0x92, 0xd0, 0x02, 0x08};
        struct rep p;
        send_frame(fd, sping, sizeof(sping));
        EXPECT_OK(fd, SMQ_OP_PING, 8, &p);
    }
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

static void
test_unknown_op(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;
    static const uint64_t ops[] = {99, 0, SMQ_OP_MAX, 255, 65536, UINT32_MAX,
                                   UINT64_MAX};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        mb_arr(&m, 2);
        mb_uint(&m, ops[i]);
        mb_uint(&m, 100 + i);
        REQ_ERR(fd, &m, ops[i], 100 + i, SLABMQ_ERR_UNKNOWN_OP);
    }
    /* with arguments, and with a huge request id echoed back */
    mb_req(&m, 99, UINT64_MAX, 3);
    mb_str(&m, "a");
    mb_bin(&m, "b", 1);
    mb_arr(&m, 0);
    REQ_ERR(fd, &m, 99, UINT64_MAX, SLABMQ_ERR_UNKNOWN_OP);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* HELLO                                                                                     */

static void
test_request_before_hello(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct mb s = {0};
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    /* PING first */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_PING, 9, 0);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_PING, 9, SLABMQ_ERR_HELLO_REQUIRED);
    EXPECT_EOF(fd);
    close(fd);
    /* PUBLISH first: refused, closed, nothing stored */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_PUBLISH, 3, 2);
    mb_str(&m, "pre");
    mb_bin(&m, "x", 1);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_PUBLISH, 3, SLABMQ_ERR_HELLO_REQUIRED);
    EXPECT_EOF(fd);
    close(fd);
    {
        slabmq_stats *st = NULL;
        T_EQ_INT(slabmq_stats_get(other, "pre", &st), SLABMQ_ERR_NOT_FOUND);
    }
    /* STATS first, then a HELLO in the same send: only the refusal, then the close */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_STATS, 4, 0);
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_HELLO, 5, 2);
    mb_uint(&m, 1);
    mb_str(&m, "late");
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    t_raw_send(fd, s.p, s.len);
    EXPECT_ERR(fd, SMQ_OP_STATS, 4, SLABMQ_ERR_HELLO_REQUIRED);
    EXPECT_EOF(fd);
    close(fd);
    /* A malformed body or an unknown op before HELLO: the error reply, then the connection
     * is closed (the broker since 0f7555a) or stays open (docs/protocol.md sections 4.3,
     * 4.4 and 5 say "stays open, even before HELLO"); if open, a PING is refused with
     * HELLO_REQUIRED and the connection closed. */
    fd = t_raw_connect(b.port);
    {
        static const uint8_t c1[] = {0xc1};
        send_frame(fd, c1, 1);
        EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
    }
    if (CLOSED_OR_USABLE(fd, SLABMQ_ERR_HELLO_REQUIRED))
        EXPECT_EOF(fd);
    close(fd);
    fd = t_raw_connect(b.port);
    mb_req(&m, 99, 6, 0);
    send_mb(fd, &m);
    EXPECT_ERR(fd, 99, 6, SLABMQ_ERR_UNKNOWN_OP);
    if (CLOSED_OR_USABLE(fd, SLABMQ_ERR_HELLO_REQUIRED))
        EXPECT_EOF(fd);
    close(fd);
    OTHER_WORKS(&b, other);
    mb_free(&m);
    mb_free(&s);
    FINISH(&b, other);
}

static void
test_hello_bad(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct rep p;
    char name65[66];
    int fd;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    /* version 2 */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 2);
    mb_str(&m, "raw");
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 1, SLABMQ_ERR_VERSION);
    EXPECT_EOF(fd);
    close(fd);
    /* version 0 and a huge version */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 2, 2);
    mb_uint(&m, 0);
    mb_str(&m, "raw");
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 2, SLABMQ_ERR_VERSION);
    EXPECT_EOF(fd);
    close(fd);
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 3, 2);
    mb_uint(&m, UINT64_MAX);
    mb_str(&m, "raw");
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 3, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_EOF(fd);
    close(fd);
    /* missing client name, name not a str, name of 65 bytes, version a str */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 4, 1);
    mb_uint(&m, 1);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 4, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_EOF(fd);
    close(fd);
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 5, 2);
    mb_uint(&m, 1);
    mb_bin(&m, "raw", 3);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 5, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_EOF(fd);
    close(fd);
    memset(name65, 'n', 65);
    name65[65] = '\0';
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 6, 2);
    mb_uint(&m, 1);
    mb_str(&m, name65);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 6, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_EOF(fd);
    close(fd);
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 7, 2);
    mb_str(&m, "1");
    mb_str(&m, "raw");
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 7, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_EOF(fd);
    close(fd);
    /* HELLO with trailing bytes before any HELLO: ERR_PROTOCOL and closed */
    fd = t_raw_connect(b.port);
    mb_req(&m, SMQ_OP_HELLO, 10, 2);
    mb_uint(&m, 1);
    mb_str(&m, "raw");
    mb_nil(&m);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 10, SLABMQ_ERR_PROTOCOL);
    EXPECT_EOF(fd);
    close(fd);
    /* a second HELLO that fails with BAD_REQUEST does not undo the first */
    fd = raw_session(&b);
    mb_req(&m, SMQ_OP_HELLO, 11, 2);
    mb_uint(&m, 1);
    mb_str(&m, name65);
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 11, SLABMQ_ERR_BAD_REQUEST);
    EXPECT_PING(fd);
    /* a second HELLO with version 2: ERR_VERSION, then closed (the broker since 0f7555a) or
     * still open and usable (docs/protocol.md sections 5 and 8: "open if an earlier HELLO
     * succeeded") */
    mb_req(&m, SMQ_OP_HELLO, 8, 2);
    mb_uint(&m, 2);
    mb_str(&m, "raw");
    send_mb(fd, &m);
    EXPECT_ERR(fd, SMQ_OP_HELLO, 8, SLABMQ_ERR_VERSION);
    if (!CLOSED_OR_USABLE(fd, SLABMQ_OK)) {
        close(fd);
        fd = raw_session(&b);
    }
    /* name of exactly 64 bytes is fine */
    name65[64] = '\0';
    mb_req(&m, SMQ_OP_HELLO, 9, 2);
    mb_uint(&m, 1);
    mb_str(&m, name65);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_HELLO, 9, &p);
    close(fd);
    OTHER_WORKS(&b, other);
    mb_free(&m);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* Arguments                                                                                 */

/* One argument of a bad request, packed by put_arg(). */
enum bad_arg_kind {
    A_END, /* no more arguments (what zero-initialised slots hold) */
    A_UINT,
    A_NEG,
    A_STR,
    A_BIN,
    A_NIL,
    A_ARR, /* an array header of u elements: the elements follow as arguments */
    A_MAP, /* a map header of u pairs: keys and values follow as arguments */
    A_F64,
    A_RAW, /* len bytes as they are (float32, true) */
    A_BIG  /* a bin of DEFAULT_MAX_MSG + 1 zero bytes: one over the message limit */
};

struct bad_arg {
    enum bad_arg_kind kind;
    uint64_t u;
    int64_t i;
    double f;
    const char *s;
    size_t len;
};

#define U(v) {.kind = A_UINT, .u = (v)}
#define N(v) {.kind = A_NEG, .i = (v)}
#define S(v) {.kind = A_STR, .s = (v)}
#define B(v) {.kind = A_BIN, .s = (v), .len = sizeof(v) - 1}
#define RAW(v) {.kind = A_RAW, .s = (v), .len = sizeof(v) - 1}
#define F64(v) {.kind = A_F64, .f = (v)}
#define ARR(n) {.kind = A_ARR, .u = (n)}
#define MAP(n) {.kind = A_MAP, .u = (n)}
#define NIL {.kind = A_NIL}
#define BIG {.kind = A_BIG}
#define NONE {.kind = A_END}

/* A request (op, its argument count as the array header says, the arguments as sent) that
 * the broker must refuse with want, and then answer a PING on the same connection. line is
 * the table row's, for the failure message. */
struct bad_req {
    int line;
    unsigned op;
    uint32_t nargs;
    slabmq_status want;
    struct bad_arg args[6];
};

#define ROW(op, n, want, ...) {__LINE__, SMQ_OP_##op, n, want, {__VA_ARGS__}}
#define BAD(op, n, ...) ROW(op, n, SLABMQ_ERR_BAD_REQUEST, __VA_ARGS__)

static const struct bad_req bad_args[] = {
    /* PUBLISH: queue name as int, as bin, as nil; payload as str, int, nil, array */
    BAD(PUBLISH, 2, U(5), B("x")),
    BAD(PUBLISH, 2, B("wa"), B("x")),
    BAD(PUBLISH, 2, NIL, B("x")),
    BAD(PUBLISH, 2, S("wa"), S("payload as str")),
    BAD(PUBLISH, 2, S("wa"), U(42)),
    BAD(PUBLISH, 2, S("wa"), NIL),
    BAD(PUBLISH, 2, S("wa"), ARR(1), B("x")),
    /* PUBLISH: wrong argument counts */
    BAD(PUBLISH, 0, NONE),
    BAD(PUBLISH, 1, S("wa")),
    BAD(PUBLISH, 3, S("wa"), B("x"), B("y")),
    /* PUBLISH: one byte over the maximum message size */
    ROW(PUBLISH, 2, SLABMQ_ERR_TOO_LARGE, S("wa"), BIG),
    /* PUBLISH_BATCH: payloads not an array; one payload a str (all or nothing) */
    BAD(PUBLISH_BATCH, 2, S("wa"), B("x")),
    BAD(PUBLISH_BATCH, 2, S("wa"), ARR(3), B("a"), B("b"), S("c")),
    /* FETCH: negative max, max 0, max over the limit, float, nil, str, bool */
    BAD(FETCH, 2, S("wa"), N(-1)),
    BAD(FETCH, 2, S("wa"), N(INT64_MIN)),
    BAD(FETCH, 2, S("wa"), U(0)),
    BAD(FETCH, 2, S("wa"), U(10001)),
    BAD(FETCH, 2, S("wa"), U(UINT64_MAX)),
    BAD(FETCH, 2, S("wa"), F64(1.0)),
    BAD(FETCH, 2, S("wa"), RAW("\xca\x3f\x80\x00\x00")), /* float32 1.0 */
    BAD(FETCH, 2, S("wa"), NIL),
    BAD(FETCH, 2, S("wa"), S("1")),
    BAD(FETCH, 2, S("wa"), RAW("\xc3")), /* true */
    /* FETCH: wait_ms negative, over an hour, float; argument counts 1 and 4 */
    BAD(FETCH, 3, S("wa"), U(1), N(-5)),
    BAD(FETCH, 3, S("wa"), U(1), U(3600u * 1000 + 1)),
    BAD(FETCH, 3, S("wa"), U(1), F64(0.5)),
    BAD(FETCH, 1, S("wa")),
    BAD(FETCH, 5, S("wa"), U(1), U(0), U(0), U(0)), /* [queue, max, wait_ms, flags] at most */
    BAD(FETCH, 4, S("wa"), U(1), U(0), U(2)), /* an unknown flag */
    /* ACK / NACK: ids not an array, negative id, str id, unknown or str ACK flags, float
    * delay, too many args */
    BAD(ACK, 1, U(5)),
    BAD(ACK, 1, ARR(1), N(-1)),
    BAD(ACK, 1, ARR(2), U(1), S("2")),
    BAD(ACK, 0, NONE),
    BAD(ACK, 2, ARR(0), U(4)), /* flags: only QUIET (1) and CONFIRMED (2) are known */
    BAD(ACK, 2, ARR(0), S("1")),
    BAD(ACK, 3, ARR(0), U(0), U(0)),
    BAD(NACK, 2, ARR(0), F64(10.0)),
    BAD(NACK, 2, ARR(0), U(3153600000000ULL + 1)), /* over 100 years */
    BAD(NACK, 3, ARR(0), U(0), U(0)),
    /* DECLARE: options not a map, unknown option, option value wrong, key not str */
    BAD(DECLARE, 2, S("wa"), ARR(0)),
    BAD(DECLARE, 2, S("wa"), MAP(1), S("no_such_option"), U(1)),
    BAD(DECLARE, 2, S("wa"), MAP(1), S("visibility_ms"), U(0)),
    BAD(DECLARE, 2, S("wa"), MAP(1), S("visibility_ms"), S("1000")),
    BAD(DECLARE, 2, S("wa"), MAP(1), U(1), U(1000)),
    BAD(DECLARE, 0, NONE),
    /* PING, LIST with arguments; STATS with an int; PEEK max 257; DELETE with 2 args */
    BAD(PING, 1, NIL),
    BAD(LIST, 1, S("wa")),
    BAD(STATS, 1, U(5)),
    BAD(STATS, 2, NIL, NIL),
    BAD(PEEK, 2, S("wa"), U(257)),
    BAD(PEEK, 2, S("wa"), U(0)),
    BAD(DELETE, 2, S("wa"), NIL),
    BAD(PURGE, 0, NONE),
};

static void
put_arg(struct mb *m, const struct bad_arg *a, const uint8_t *big)
{
    switch (a->kind) {
    case A_UINT:
        mb_uint(m, a->u);
        break;
    case A_NEG:
        mb_neg(m, a->i);
        break;
    case A_STR:
        mb_str(m, a->s);
        break;
    case A_BIN:
        mb_bin(m, a->s, a->len);
        break;
    case A_NIL:
        mb_nil(m);
        break;
    case A_ARR:
        mb_arr(m, (uint32_t)a->u);
        break;
    case A_MAP:
        mb_map(m, (uint32_t)a->u);
        break;
    case A_F64:
        mb_f64(m, a->f);
        break;
    case A_RAW:
        mb_put(m, a->s, a->len);
        break;
    case A_BIG:
        mb_bin(m, big, DEFAULT_MAX_MSG + 1);
        break;
    case A_END:
        break;
    }
}

static void
test_wrong_argument_types(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;
    uint64_t rid = 100;
    uint8_t *big;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);

    big = calloc(1, DEFAULT_MAX_MSG + 1);
    T_ASSERT(big != NULL);
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        const struct bad_req *r = &bad_args[i];
        mb_req(&m, r->op, ++rid, r->nargs);
        for (const struct bad_arg *a = r->args; a->kind != A_END; a++)
            put_arg(&m, a, big);
        raw_req_err(__FILE__, r->line, fd, &m, r->op, rid, r->want);
    }
    free(big);

    /* none of it created the queue "wa" (validation comes before any change) */
    {
        slabmq_stats *st = NULL;
        T_EQ_INT(slabmq_stats_get(other, "wa", &st), SLABMQ_ERR_NOT_FOUND);
    }
    T_EQ_U64(STAT(other, NULL, "queues"), 0);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

static void
test_invalid_queue_names(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    struct rep p;
    int fd;
    uint64_t rid = 200;
    char n200[201];
    char n201[202];
    const char *names[8];
    size_t lens[8];
    static const unsigned ops[] = {SMQ_OP_DECLARE, SMQ_OP_DELETE, SMQ_OP_PURGE,
                                   SMQ_OP_STATS,   SMQ_OP_PUBLISH, SMQ_OP_PUBLISH_BATCH,
                                   SMQ_OP_FETCH,   SMQ_OP_PEEK};
    size_t nnames = 0;

    memset(n200, 'a', 200);
    n200[200] = '\0';
    memset(n201, 'b', 201);
    n201[201] = '\0';
    names[nnames] = "", lens[nnames++] = 0;
    names[nnames] = n201, lens[nnames++] = 201;
    names[nnames] = "a b", lens[nnames++] = 3;
    names[nnames] = "a/b", lens[nnames++] = 3;
    names[nnames] = "a\0b", lens[nnames++] = 3;
    names[nnames] = "caf\xc3\xa9", lens[nnames++] = 5;
    names[nnames] = "line\n", lens[nnames++] = 5;
    names[nnames] = "..\\x", lens[nnames++] = 4;

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        for (size_t i = 0; i < nnames; i++) {
            unsigned op = ops[o];
            uint32_t nargs = op == SMQ_OP_PUBLISH || op == SMQ_OP_PUBLISH_BATCH
                                     || op == SMQ_OP_FETCH || op == SMQ_OP_PEEK
                                 ? 2
                                 : 1;
            mb_req(&m, op, ++rid, nargs);
            mb_strn(&m, names[i], lens[i]);
            if (op == SMQ_OP_PUBLISH)
                mb_bin(&m, "x", 1);
            else if (op == SMQ_OP_PUBLISH_BATCH)
                mb_arr(&m, 0);
            else if (op == SMQ_OP_FETCH || op == SMQ_OP_PEEK)
                mb_uint(&m, 1);
            send_mb(fd, &m);
            EXPECT_ERR(fd, op, rid, SLABMQ_ERR_BAD_NAME);
        }
        EXPECT_PING(fd);
    }
    T_EQ_U64(STAT(other, NULL, "queues"), 0);
    /* 200 bytes is the longest valid name */
    mb_req(&m, SMQ_OP_DECLARE, ++rid, 1);
    mb_str(&m, n200);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_DECLARE, rid, &p);
    mb_req(&m, SMQ_OP_DELETE, ++rid, 1);
    mb_str(&m, n200);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_DELETE, rid, &p);
    /* a valid name that does not exist */
    mb_req(&m, SMQ_OP_PEEK, ++rid, 2);
    mb_str(&m, "absent");
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_PEEK, rid, SLABMQ_ERR_NOT_FOUND);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

/* ---------------------------------------------------------------------------------------- */
/* ACK                                                                                       */

static void
test_ack_unknown_id(void)
{
    struct t_broker b;
    slabmq_client *other;
    struct mb m = {0};
    int fd;
    static const uint64_t unknown[] = {999999, 0, UINT64_MAX};

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    for (size_t i = 0; i < 3; i++) {
        raw_ack_send(fd, 10 + i, &unknown[i], 1);
        EXPECT_ERR(fd, SMQ_OP_ACK, 10 + i, SLABMQ_ERR_UNKNOWN_ID);
        EXPECT_PING(fd); /* the same connection stays usable */
    }
    mb_req(&m, SMQ_OP_NACK, 20, 2);
    mb_arr(&m, 1);
    mb_uint(&m, 12345);
    mb_uint(&m, 100);
    REQ_ERR(fd, &m, SMQ_OP_NACK, 20, SLABMQ_ERR_UNKNOWN_ID);
    /* an empty id list is a successful no-op */
    raw_ack_send(fd, 21, NULL, 0);
    T_EQ_U64(EXPECT_COUNT(fd, SMQ_OP_ACK, 21), 0);
    /* the other client's message id, held by nobody: unknown, and still ready */
    {
        uint64_t id;
        T_OK(other, slabmq_publish(other, "ackq", "m", 1, &id));
        raw_ack_send(fd, 22, &id, 1);
        EXPECT_ERR(fd, SMQ_OP_ACK, 22, SLABMQ_ERR_UNKNOWN_ID);
        T_EQ_U64(STAT(other, "ackq", "ready"), 1);
        T_EQ_U64(STAT(other, "ackq", "acked"), 0);
    }
    EXPECT_PING(fd);
    OTHER_WORKS(&b, other);
    close(fd);
    mb_free(&m);
    FINISH(&b, other);
}

static void
test_double_ack(void)
{
    struct t_broker b;
    slabmq_client *other;
    int fd;
    uint64_t ids[4];
    uint64_t pub[2];
    uint64_t mixed[2];

    t_broker_start(&b, NULL);
    other = t_client(&b);
    fd = raw_session(&b);
    T_OK(other, slabmq_publish(other, "dq", "one", 3, &pub[0]));
    T_OK(other, slabmq_publish(other, "dq", "two", 3, &pub[1]));
    T_EQ_INT(RAW_FETCH(fd, 2, "dq", 2, ids, 4), 2);
    T_EQ_U64(ids[0], pub[0]);
    T_EQ_U64(ids[1], pub[1]);
    raw_ack_send(fd, 3, &ids[0], 1);
    T_EQ_U64(EXPECT_COUNT(fd, SMQ_OP_ACK, 3), 1);
    raw_ack_send(fd, 4, &ids[0], 1);
    EXPECT_ERR(fd, SMQ_OP_ACK, 4, SLABMQ_ERR_UNKNOWN_ID);
    EXPECT_PING(fd);
    /* [acked already, held]: the held one is settled, the reply says one was unknown */
    mixed[0] = ids[0];
    mixed[1] = ids[1];
    raw_ack_send(fd, 5, mixed, 2);
    EXPECT_ERR(fd, SMQ_OP_ACK, 5, SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(STAT(other, "dq", "inflight"), 0);
    T_EQ_U64(STAT(other, "dq", "acked"), 2);
    /* the same id twice in one ACK */
    T_OK(other, slabmq_publish(other, "dq", "three", 5, &pub[0]));
    T_EQ_INT(RAW_FETCH(fd, 6, "dq", 1, ids, 4), 1);
    mixed[0] = mixed[1] = ids[0];
    raw_ack_send(fd, 7, mixed, 2);
    EXPECT_ERR(fd, SMQ_OP_ACK, 7, SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(STAT(other, "dq", "acked"), 3);
    T_EQ_U64(STAT(other, "dq", "ready"), 0);
    EXPECT_PING(fd);
    OTHER_WORKS(&b, other);
    close(fd);
    FINISH(&b, other);
}

static void
test_ack_other_connections_message(void)
{
    struct t_broker b;
    slabmq_client *other;
    int a;
    int c;
    uint64_t id;
    uint64_t ids[2];

    t_broker_start(&b, NULL);
    other = t_client(&b);
    a = raw_session(&b);
    c = raw_session(&b);
    T_OK(other, slabmq_publish(other, "xq", "mine", 4, &id));
    T_EQ_INT(RAW_FETCH(a, 2, "xq", 1, ids, 2), 1);
    T_EQ_U64(ids[0], id);
    /* connection c may not ACK or NACK what a holds */
    raw_ack_send(c, 3, ids, 1);
    EXPECT_ERR(c, SMQ_OP_ACK, 3, SLABMQ_ERR_UNKNOWN_ID);
    {
        struct mb m = {0};
        mb_req(&m, SMQ_OP_NACK, 4, 1);
        mb_arr(&m, 1);
        mb_uint(&m, id);
        REQ_ERR(c, &m, SMQ_OP_NACK, 4, SLABMQ_ERR_UNKNOWN_ID);
        mb_free(&m);
    }
    /* nor can the library client */
    T_EQ_INT(slabmq_ack(other, id), SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_U64(STAT(other, "xq", "inflight"), 1);
    T_EQ_U64(STAT(other, "xq", "acked"), 0);
    EXPECT_PING(c);
    /* a still holds it and can ACK it */
    raw_ack_send(a, 5, ids, 1);
    T_EQ_U64(EXPECT_COUNT(a, SMQ_OP_ACK, 5), 1);
    T_EQ_U64(STAT(other, "xq", "inflight"), 0);
    T_EQ_U64(STAT(other, "xq", "acked"), 1);
    /* once a's connection is gone, its message is ready again and c cannot ACK it until c
     * fetches it */
    T_OK(other, slabmq_publish(other, "xq", "again", 5, &id));
    T_EQ_INT(RAW_FETCH(a, 6, "xq", 1, ids, 2), 1);
    close(a);
    WAIT_STAT(other, "xq", "ready", 1, 5000);
    raw_ack_send(c, 7, ids, 1);
    EXPECT_ERR(c, SMQ_OP_ACK, 7, SLABMQ_ERR_UNKNOWN_ID);
    T_EQ_INT(RAW_FETCH(c, 8, "xq", 1, ids, 2), 1);
    T_EQ_U64(ids[0], id);
    raw_ack_send(c, 9, ids, 1);
    T_EQ_U64(EXPECT_COUNT(c, SMQ_OP_ACK, 9), 1);
    OTHER_WORKS(&b, other);
    close(c);
    FINISH(&b, other);
}

static const struct t_case cases[] = {
    T_CASE(test_body_not_array),
    T_CASE(test_array_too_short),
    T_CASE(test_op_not_an_integer),
    T_CASE(test_unknown_op),
    T_CASE(test_request_before_hello),
    T_CASE(test_hello_bad),
    T_CASE(test_wrong_argument_types),
    T_CASE(test_invalid_queue_names),
    T_CASE(test_ack_unknown_id),
    T_CASE(test_double_ack),
    T_CASE(test_ack_other_connections_message),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
