/* SPDX-License-Identifier: MIT */
/* libslabmq against a scripted broker: a child process that answers HELLO and then each
 * request with frames written byte by byte for the case, so the library's decoding of
 * replies the real broker may send rarely or only in later versions is pinned down: dead
 * letters' info maps with unknown keys, message entries with extra elements, DELIVER pushes
 * that arrive before a reply or among pipelined confirmations, the end of a subscription,
 * STATS values of other types, and the request bytes of the work-queue options.
 *
 * The scripted broker checks each request it is sent with T_ASSERT; a failure there ends
 * the child with status 1, which the parent sees as a closed connection and then as the
 * child's exit status in fake_stop(). */
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw.h"
#include "slabmq.h"
#include "t.h"

#include "../../protocol/codec.h"

/* Answers one request (HELLO excepted) on fd; nargs arguments follow at r. */
typedef void (*fake_fn)(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs);

struct fake {
    pid_t pid;       /* the scripted broker */
    struct t_broker b; /* its port, for t_client() */
};

/* Start [op, rid, 0, <nres results>] in b. */
static void
ok_head(struct mb *b, uint64_t op, uint64_t rid, uint32_t nres)
{
    mb_arr(b, 3 + nres);
    mb_uint(b, op);
    mb_uint(b, rid);
    mb_uint(b, 0);
}

/* The features HELLO announces (an eighth result, after auth_required false); -1: the
 * six results of a broker that announces neither. Set before fake_start(). */
static int64_t hello_features = -1;

static void
hello_reply(int fd, uint64_t rid)
{
    struct mb b = {0};

    ok_head(&b, SMQ_OP_HELLO, rid, hello_features < 0 ? 6 : 8);
    mb_uint(&b, 1);
    mb_str(&b, "fake 0");
    mb_uint(&b, 1 << 20);
    mb_uint(&b, (1 << 20) + 1024);
    mb_uint(&b, 1 << 20);
    mb_uint(&b, 10000);
    if (hello_features >= 0) {
        mb_byte(&b, 0xc2); /* auth_required: false */
        mb_uint(&b, (uint64_t)hello_features);
    }
    send_mb(fd, &b);
    mb_free(&b);
}

/* The child: one connection, until the client hangs up. */
static void
fake_main(int lfd, fake_fn fn)
{
    static uint8_t buf[1 << 16];
    struct pollfd p = {lfd, POLLIN, 0};
    int fd;

    if (poll(&p, 1, 20000) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
        _exit(1);
    for (;;) {
        struct smq_mpr r;
        uint64_t op;
        uint64_t rid;
        uint32_t nargs;
        long len = t_raw_recv_frame(fd, buf, sizeof(buf), 20000);
        if (len < 0)
            _exit(len == -1 ? 0 : 1); /* the client closed: done */
        smq_mpr_init(&r, buf, (size_t)len);
        T_ASSERT(smq_read_header(&r, &op, &rid, &nargs) == 0);
        if (op == SMQ_OP_HELLO)
            hello_reply(fd, rid);
        else
            fn(fd, op, rid, &r, nargs);
    }
}

static void
fake_start(struct fake *f, fake_fn fn)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    T_ASSERT(lfd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    T_ASSERT(listen(lfd, 4) == 0);
    T_ASSERT(getsockname(lfd, (struct sockaddr *)&sa, &len) == 0);
    memset(&f->b, 0, sizeof(f->b));
    f->b.port = ntohs(sa.sin_port);
    f->pid = fork();
    T_ASSERT(f->pid >= 0);
    if (f->pid == 0)
        fake_main(lfd, fn);
    close(lfd);
}

/* Close the client, then the scripted broker must end cleanly: every request it saw was
 * as expected. */
static void
fake_stop(struct fake *f, slabmq_client *c)
{
    int status = 0;

    slabmq_client_close(c);
    T_EQ_INT(waitpid(f->pid, &status, 0), f->pid);
    T_ASSERT(WIFEXITED(status));
    T_EQ_INT(WEXITSTATUS(status), 0);
}

/* Read a str argument and compare it. */
static int
arg_is(struct smq_mpr *r, const char *want)
{
    const char *s;
    uint32_t n;

    return smq_mpr_str(r, &s, &n) == 0 && n == strlen(want) && memcmp(s, want, n) == 0;
}

/* One message [id, deliveries, payload] with elements extra of its own. */
static void
put_msg(struct mb *b, uint64_t id, uint64_t deliveries, const char *payload, uint32_t extra)
{
    mb_arr(b, 3 + extra);
    mb_uint(b, id);
    mb_uint(b, deliveries);
    mb_bin(b, payload, strlen(payload));
}

/* ---------------------------------------------------------------------------------------- */
/* Dead letters                                                                              */

/* FETCH and PEEK answer with 3-, 4- and 5-element entries; infos carry unknown keys of every
 * type, keys that are not strs, and known keys with values of the wrong type. */
static void
dead_letters_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct mb b = {0};

    T_ASSERT(op == SMQ_OP_FETCH || op == SMQ_OP_PEEK);
    T_ASSERT(nargs >= 2 && arg_is(r, "jobs.dlq"));
    ok_head(&b, op, rid, 1);
    mb_arr(&b, 4);
    put_msg(&b, 1, 1, "plain", 0);
    put_msg(&b, 2, 0, "rejected one", 1);
    mb_map(&b, 6);
    mb_str(&b, "reason");
    mb_str(&b, "rejected");
    mb_str(&b, "future");
    mb_arr(&b, 2);
    mb_uint(&b, 1);
    mb_map(&b, 1);
    mb_str(&b, "x");
    mb_nil(&b);
    mb_str(&b, "queue");
    mb_str(&b, "jobs");
    mb_uint(&b, 7); /* a key that is not a str */
    mb_str(&b, "seven");
    mb_str(&b, "deliveries");
    mb_uint(&b, 3);
    mb_str(&b, "neg");
    mb_neg(&b, -1);
    put_msg(&b, 3, 2, "odd info", 1);
    mb_map(&b, 2);
    mb_str(&b, "queue");
    mb_uint(&b, 5); /* wrong type: left out */
    mb_str(&b, "deliveries");
    mb_str(&b, "many"); /* wrong type: left out */
    put_msg(&b, 4, 1, "expired", 2);
    mb_map(&b, 1);
    mb_str(&b, "reason");
    mb_str(&b, "expired");
    mb_f64(&b, 2.5); /* a fifth element, from a later protocol */
    send_mb(fd, &b);
    mb_free(&b);
}

static void
check_dead_letters(const slabmq_batch *bt)
{
    const slabmq_message *m;

    T_EQ_INT(slabmq_batch_count(bt), 4);
    T_EQ_STR(slabmq_batch_queue(bt), "jobs.dlq");
    T_EQ_U64(slabmq_batch_subscription(bt), 0);
    m = slabmq_batch_get(bt, 0);
    T_ASSERT(m->dead == NULL && m->id == 1 && m->len == 5);
    T_EQ_MEM(m->data, "plain", 5);
    m = slabmq_batch_get(bt, 1);
    T_ASSERT(m->dead != NULL);
    T_EQ_U64(m->id, 2);
    T_EQ_INT(m->deliveries, 0);
    T_EQ_MEM(m->data, "rejected one", 12);
    T_EQ_STR(m->dead->reason, "rejected");
    T_EQ_STR(m->dead->queue, "jobs");
    T_EQ_U64(m->dead->deliveries, 3);
    m = slabmq_batch_get(bt, 2);
    T_ASSERT(m->dead != NULL);
    T_EQ_STR(m->dead->reason, "");
    T_EQ_STR(m->dead->queue, "");
    T_EQ_U64(m->dead->deliveries, 0);
    m = slabmq_batch_get(bt, 3);
    T_ASSERT(m->dead != NULL);
    T_EQ_STR(m->dead->reason, "expired");
    T_EQ_MEM(m->data, "expired", 7);
    T_ASSERT(slabmq_batch_get(bt, 4) == NULL);
}

static void
test_dead_letter_entries(void)
{
    struct fake f;
    slabmq_client *c;
    slabmq_batch *bt;

    fake_start(&f, dead_letters_fn);
    c = t_client(&f.b);
    T_OK(c, slabmq_fetch(c, "jobs.dlq", 10, 0, &bt));
    check_dead_letters(bt);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_peek(c, "jobs.dlq", 10, &bt));
    check_dead_letters(bt);
    slabmq_batch_free(bt);
    fake_stop(&f, c);
}

/* ---------------------------------------------------------------------------------------- */
/* Subscription pushes                                                                       */

/* DELIVER [20, sub, 0, [[id, 1, payload]]]. */
static void
push(int fd, uint64_t sub, uint64_t id, const char *payload)
{
    struct mb b = {0};

    ok_head(&b, SMQ_OP_DELIVER, sub, 1);
    mb_arr(&b, 1);
    put_msg(&b, id, 1, payload, 0);
    send_mb(fd, &b);
    mb_free(&b);
}

/* An error frame [op, id, code, msg]. */
static void
error_frame(int fd, uint64_t op, uint64_t id, unsigned code, const char *msg)
{
    struct mb b = {0};

    mb_arr(&b, 4);
    mb_uint(&b, op);
    mb_uint(&b, id);
    mb_uint(&b, code);
    mb_str(&b, msg);
    send_mb(fd, &b);
    mb_free(&b);
}

/* SUBSCRIBE jobs 2 -> 7. PING gets two pushes before its reply. ACK [10, 11] is answered,
 * then a third push follows. UNSUBSCRIBE 7 is answered, after one last push sent just before
 * the reply. */
static void
pushes_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct mb b = {0};
    uint64_t v;
    uint32_t n;

    switch (op) {
    case SMQ_OP_SUBSCRIBE:
        T_ASSERT(nargs == 2 && arg_is(r, "jobs") && smq_mpr_uint(r, &v) == 0 && v == 2);
        ok_head(&b, op, rid, 1);
        mb_uint(&b, 7);
        break;
    case SMQ_OP_PING:
        push(fd, 7, 10, "p10");
        push(fd, 7, 11, "p11");
        ok_head(&b, op, rid, 0);
        break;
    case SMQ_OP_ACK:
        T_ASSERT(smq_mpr_array(r, &n) == 0 && n == 2);
        ok_head(&b, op, rid, 1);
        mb_uint(&b, 2);
        send_mb(fd, &b);
        push(fd, 7, 12, "p12");
        mb_free(&b);
        return;
    case SMQ_OP_UNSUBSCRIBE:
        T_ASSERT(nargs == 1 && smq_mpr_uint(r, &v) == 0 && v == 7);
        push(fd, 7, 13, "p13");
        ok_head(&b, op, rid, 0);
        break;
    default:
        T_ASSERT(!"unexpected request");
    }
    send_mb(fd, &b);
    mb_free(&b);
}

struct counts {
    int confirms;   /* confirmations seen */
    uint64_t value; /* the last one's value */
};

static void
count_confirm(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    struct counts *n = arg;

    (void)request;
    n->confirms += status == SLABMQ_OK;
    n->value = value;
}

/* Receive one push of one message and check it. */
static void
expect_push(slabmq_client *c, int timeout_ms, uint64_t id, const char *payload)
{
    slabmq_batch *bt;
    const slabmq_message *m;

    T_OK(c, slabmq_receive(c, timeout_ms, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_U64(slabmq_batch_subscription(bt), 7);
    T_EQ_STR(slabmq_batch_queue(bt), "jobs");
    m = slabmq_batch_get(bt, 0);
    T_EQ_U64(m->id, id);
    T_EQ_MEM(m->data, payload, strlen(payload));
    slabmq_batch_free(bt);
}

static void
expect_nothing(slabmq_client *c, int timeout_ms)
{
    slabmq_batch *bt;

    T_OK(c, slabmq_receive(c, timeout_ms, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_EQ_U64(slabmq_batch_subscription(bt), 0);
    T_ASSERT(slabmq_batch_queue(bt) == NULL);
    slabmq_batch_free(bt);
}

/* Pushes that arrive while a synchronous call waits are kept for slabmq_receive(), in
 * order; receive sends queued acks and reads their confirmations among the pushes. */
static void
test_pushes_kept_across_calls(void)
{
    static const uint64_t ids[] = {10, 11};
    struct fake f;
    slabmq_client *c;
    struct counts n = {0, 0};
    uint64_t sub = 0;
    int64_t t0;

    fake_start(&f, pushes_fn);
    c = t_client(&f.b);
    slabmq_client_on_confirm(c, count_confirm, &n);
    expect_nothing(c, 0);
    T_OK(c, slabmq_subscribe(c, "jobs", 2, &sub));
    T_EQ_U64(sub, 7);
    T_OK(c, slabmq_ping(c)); /* two pushes come first; the PING still succeeds */
    expect_push(c, 0, 10, "p10");
    expect_push(c, 0, 11, "p11");
    t0 = t_now_ms();
    expect_nothing(c, 100);
    T_ASSERT(t_now_ms() - t0 >= 90);
    T_OK(c, slabmq_ack_async(c, ids, 2, NULL));
    expect_push(c, 5000, 12, "p12"); /* the ACK went out; its reply came before the push */
    T_EQ_INT(n.confirms, 1);
    T_EQ_U64(n.value, 2);
    T_EQ_U64(slabmq_client_outstanding(c), 0);
    T_OK(c, slabmq_unsubscribe(c, 7));
    expect_push(c, 0, 13, "p13"); /* pushed before the UNSUBSCRIBE reply: still handed out */
    expect_nothing(c, 0);
    fake_stop(&f, c);
}

/* SUBSCRIBE -> 7, its reply and the pushes of 20, 21 and 22 in one send; each ACK (one id,
 * in order) must have come in the one send that carried all three. */
static void
acks_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    static uint32_t segs; /* data segments in when SUBSCRIBE was read */
    static uint64_t next_id = 20;
    struct mb body = {0};
    struct mb stream = {0};
    uint32_t n;
    uint64_t id;

    if (op == SMQ_OP_SUBSCRIBE) {
        segs = raw_data_segs_in(fd);
        ok_head(&body, op, rid, 1);
        mb_uint(&body, 7);
        mb_frame(&stream, body.p, body.len);
        for (id = 20; id < 23; id++) {
            body.len = 0;
            ok_head(&body, SMQ_OP_DELIVER, 7, 1);
            mb_arr(&body, 1);
            put_msg(&body, id, 1, id == 20 ? "p20" : id == 21 ? "p21" : "p22", 0);
            mb_frame(&stream, body.p, body.len);
        }
        T_EQ_INT(send(fd, stream.p, stream.len, 0), (long)stream.len);
    } else {
        T_ASSERT(op == SMQ_OP_ACK && nargs == 1); /* no features announced: plain ACKs */
        T_ASSERT(smq_mpr_array(r, &n) == 0 && n == 1 && smq_mpr_uint(r, &id) == 0);
        T_EQ_U64(id, next_id);
        next_id++;
        T_EQ_U64(raw_data_segs_in(fd) - segs, 1);
        ok_head(&body, op, rid, 1);
        mb_uint(&body, 1);
        send_mb(fd, &body);
    }
    mb_free(&body);
    mb_free(&stream);
}

/* Pushes that came in one read are handed out one per slabmq_receive() without a send in
 * between: the acks queued for them go out together once receive has to read again, as
 * a fetcher's go out with its next FETCH (one send, not one per message). */
static void
test_acks_of_one_read_leave_together(void)
{
    static const char *const payloads[] = {"p20", "p21", "p22"};
    struct fake f;
    slabmq_client *c;
    struct counts n = {0, 0};
    uint64_t sub = 0;

    fake_start(&f, acks_fn);
    c = t_client(&f.b);
    slabmq_client_on_confirm(c, count_confirm, &n);
    T_OK(c, slabmq_subscribe(c, "jobs", 3, &sub));
    T_EQ_U64(sub, 7);
    for (uint64_t id = 20; id < 23; id++) {
        expect_push(c, 5000, id, payloads[id - 20]);
        T_OK(c, slabmq_ack_async(c, &id, 1, NULL));
    }
    T_EQ_U64(slabmq_client_outstanding(c), 3);
    expect_nothing(c, 0); /* nothing buffered: the three acks go out, in one send */
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(n.confirms, 3);
    fake_stop(&f, c);
}

/* SUBSCRIBE a -> 1 and b -> 2; PING: b's queue is deleted (13), then the broker shuts down
 * a (15). */
static void
ends_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    static uint64_t next_sub = 1;
    struct mb b = {0};

    (void)r;
    (void)nargs;
    if (op == SMQ_OP_SUBSCRIBE) {
        ok_head(&b, op, rid, 1);
        mb_uint(&b, next_sub++);
        send_mb(fd, &b);
    } else {
        T_ASSERT(op == SMQ_OP_PING);
        push(fd, 2, 40, "last of b");
        error_frame(fd, SMQ_OP_DELIVER, 2, SLABMQ_ERR_QUEUE_DELETED, "queue b was deleted");
        ok_head(&b, op, rid, 0);
        send_mb(fd, &b);
        error_frame(fd, SMQ_OP_DELIVER, 1, SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
    }
    mb_free(&b);
}

/* A DELIVER with an error status ends its subscription: receive reports it with an empty
 * batch that names the subscription, after the pushes that came before it. */
static void
test_push_error_ends_subscription(void)
{
    struct fake f;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t a;
    uint64_t b;

    fake_start(&f, ends_fn);
    c = t_client(&f.b);
    T_OK(c, slabmq_subscribe(c, "a", 5, &a));
    T_OK(c, slabmq_subscribe(c, "b", 5, &b));
    T_EQ_U64(a, 1);
    T_EQ_U64(b, 2);
    T_OK(c, slabmq_ping(c));
    T_OK(c, slabmq_receive(c, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_STR(slabmq_batch_queue(bt), "b");
    slabmq_batch_free(bt);
    T_EQ_INT(slabmq_receive(c, 0, &bt), SLABMQ_ERR_QUEUE_DELETED);
    T_ASSERT(bt != NULL);
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_EQ_U64(slabmq_batch_subscription(bt), 2);
    T_EQ_STR(slabmq_batch_queue(bt), "b");
    T_ASSERT(strstr(slabmq_client_errmsg(c), "subscription 2 to b ended") != NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "queue b was deleted") != NULL);
    slabmq_batch_free(bt);
    /* the second end arrives after the PING reply: receive reads it from the socket */
    T_EQ_INT(slabmq_receive(c, 5000, &bt), SLABMQ_ERR_SHUTDOWN);
    T_EQ_U64(slabmq_batch_subscription(bt), 1);
    T_EQ_STR(slabmq_batch_queue(bt), "a");
    slabmq_batch_free(bt);
    expect_nothing(c, 0);
    fake_stop(&f, c);
}

/* ---------------------------------------------------------------------------------------- */
/* STATS, FETCH of several queues                                                            */

static void
stats_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct mb b = {0};

    (void)r;
    (void)nargs;
    T_ASSERT(op == SMQ_OP_STATS);
    ok_head(&b, op, rid, 1);
    mb_map(&b, 10);
    mb_str(&b, "ready");
    mb_uint(&b, 3);
    mb_str(&b, "nothing");
    mb_nil(&b);
    mb_str(&b, "dead_letter");
    mb_str(&b, "jobs.dlq");
    mb_str(&b, "list");
    mb_arr(&b, 2);
    mb_uint(&b, 1);
    mb_str(&b, "x");
    mb_str(&b, "negative");
    mb_neg(&b, -5);
    mb_str(&b, "flag");
    mb_byte(&b, 0xc3);
    mb_str(&b, "half");
    mb_f64(&b, 0.5);
    mb_str(&b, "nested");
    mb_map(&b, 1);
    mb_str(&b, "a");
    mb_uint(&b, 1);
    mb_str(&b, "empty");
    mb_str(&b, "");
    mb_str(&b, "big");
    mb_uint(&b, UINT64_MAX);
    send_mb(fd, &b);
    mb_free(&b);
}

/* Integers and strs are kept in order; values of any other type are left out. */
static void
test_stats_strings_and_unknown_types(void)
{
    struct fake f;
    slabmq_client *c;
    slabmq_stats *s;
    uint64_t v = 0;

    fake_start(&f, stats_fn);
    c = t_client(&f.b);
    T_OK(c, slabmq_stats_get(c, "jobs", &s));
    T_EQ_INT(slabmq_stats_count(s), 4);
    T_EQ_STR(slabmq_stats_name(s, 0), "ready");
    T_EQ_U64(slabmq_stats_value(s, 0), 3);
    T_ASSERT(slabmq_stats_str(s, 0) == NULL);
    T_EQ_STR(slabmq_stats_name(s, 1), "dead_letter");
    T_EQ_STR(slabmq_stats_str(s, 1), "jobs.dlq");
    T_EQ_U64(slabmq_stats_value(s, 1), 0);
    T_EQ_STR(slabmq_stats_name(s, 2), "empty");
    T_EQ_STR(slabmq_stats_str(s, 2), "");
    T_EQ_STR(slabmq_stats_name(s, 3), "big");
    T_ASSERT(slabmq_stats_find(s, "big", &v) && v == UINT64_MAX);
    T_ASSERT(!slabmq_stats_find(s, "dead_letter", &v)); /* not an integer */
    T_ASSERT(!slabmq_stats_find(s, "flag", &v));
    T_EQ_STR(slabmq_stats_find_str(s, "dead_letter"), "jobs.dlq");
    T_EQ_STR(slabmq_stats_find_str(s, "empty"), "");
    T_ASSERT(slabmq_stats_find_str(s, "ready") == NULL);
    T_ASSERT(slabmq_stats_find_str(s, "missing") == NULL);
    T_ASSERT(slabmq_stats_str(s, 4) == NULL && slabmq_stats_name(s, 4) == NULL);
    slabmq_stats_free(s);
    fake_stop(&f, c);
}

/* FETCH [["a", "b"], 5, 100]: first answered from b, then empty with nil. */
static void
fetch_any_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    static int calls;
    struct mb b = {0};
    uint32_t n;
    uint64_t max;
    uint64_t wait;

    T_ASSERT(op == SMQ_OP_FETCH && nargs == 3);
    T_ASSERT(smq_mpr_array(r, &n) == 0 && n == 2 && arg_is(r, "a") && arg_is(r, "b"));
    T_ASSERT(smq_mpr_uint(r, &max) == 0 && max == 5 && smq_mpr_uint(r, &wait) == 0);
    ok_head(&b, op, rid, 2);
    if (calls++ == 0) {
        mb_arr(&b, 1);
        put_msg(&b, 9, 1, "from b", 0);
        mb_str(&b, "b");
    } else {
        mb_arr(&b, 0);
        mb_nil(&b);
    }
    send_mb(fd, &b);
    mb_free(&b);
}

static void
test_fetch_any_names_queue(void)
{
    static const char *const queues[] = {"a", "b"};
    struct fake f;
    slabmq_client *c;
    slabmq_batch *bt;

    fake_start(&f, fetch_any_fn);
    c = t_client(&f.b);
    T_OK(c, slabmq_fetch_any(c, queues, 2, 5, 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_STR(slabmq_batch_queue(bt), "b");
    T_EQ_U64(slabmq_batch_get(bt, 0)->id, 9);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch_any(c, queues, 2, 5, 100, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_ASSERT(slabmq_batch_queue(bt) == NULL);
    slabmq_batch_free(bt);
    /* checked before anything is sent */
    T_EQ_INT(slabmq_fetch_any(c, queues, 0, 5, 0, 0, &bt), SLABMQ_ERR_ARG);
    T_EQ_INT(slabmq_fetch_any(c, queues, 17, 5, 0, 0, &bt), SLABMQ_ERR_ARG);
    fake_stop(&f, c);
}

/* ---------------------------------------------------------------------------------------- */
/* Request bytes of the new options                                                          */

/* Read an options map into a fixed set of fields; unknown keys fail the case. */
struct opts_seen {
    uint64_t delay_ms, at_ms, ttl_ms, priority;
    char id[SLABMQ_PRODUCER_ID_MAX + 1];
    uint32_t keys;
};

static void
read_opts(struct smq_mpr *r, struct opts_seen *o)
{
    memset(o, 0, sizeof(*o));
    T_ASSERT(smq_mpr_map(r, &o->keys) == 0);
    for (uint32_t i = 0; i < o->keys; i++) {
        const char *k;
        uint32_t klen;
        uint64_t *dst = NULL;
        T_ASSERT(smq_mpr_str(r, &k, &klen) == 0);
        if (klen == 8 && memcmp(k, "delay_ms", 8) == 0)
            dst = &o->delay_ms;
        else if (klen == 5 && memcmp(k, "at_ms", 5) == 0)
            dst = &o->at_ms;
        else if (klen == 6 && memcmp(k, "ttl_ms", 6) == 0)
            dst = &o->ttl_ms;
        else if (klen == 8 && memcmp(k, "priority", 8) == 0)
            dst = &o->priority;
        if (dst) {
            T_ASSERT(smq_mpr_uint(r, dst) == 0);
        } else {
            const char *s;
            uint32_t n;
            T_ASSERT(klen == 2 && memcmp(k, "id", 2) == 0);
            T_ASSERT(smq_mpr_str(r, &s, &n) == 0 && n <= SLABMQ_PRODUCER_ID_MAX);
            memcpy(o->id, s, n);
        }
    }
}

/* The DECLARE options of test_request_bytes: the API's "none" values are 0 (or "") on the
 * wire, the overflow policy is named. */
static void
read_declare(struct smq_mpr *r)
{
    static const char *const ints[] = {"max_deliveries", "ttl_ms", "dedup_window"};
    uint32_t pairs;
    unsigned seen = 0;

    T_ASSERT(smq_mpr_map(r, &pairs) == 0 && pairs == 5);
    for (uint32_t i = 0; i < pairs; i++) {
        const char *k;
        uint32_t klen;
        uint64_t v = 1;
        int known = 0;
        T_ASSERT(smq_mpr_str(r, &k, &klen) == 0);
        for (unsigned j = 0; j < 3; j++) {
            if (klen == strlen(ints[j]) && memcmp(k, ints[j], klen) == 0) {
                T_ASSERT(smq_mpr_uint(r, &v) == 0 && v == 0);
                seen |= 1u << j;
                known = 1;
            }
        }
        if (known)
            continue;
        if (klen == 11 && memcmp(k, "dead_letter", 11) == 0) {
            T_ASSERT(arg_is(r, ""));
            seen |= 8;
        } else {
            T_ASSERT(klen == 8 && memcmp(k, "overflow", 8) == 0 && arg_is(r, "dead-letter"));
            seen |= 16;
        }
    }
    T_EQ_INT(seen, 31);
}

/* PUBLISH with all options answers duplicate true; PUBLISH_BATCH's options have no id; NACK
 * takes a 64-bit delay; PEEK a skip; TERM its ids; FETCH its max, wait and flags. */
static void
wire_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct mb b = {0};
    struct opts_seen o;
    const uint8_t *d;
    uint32_t n;
    uint64_t v;

    switch (op) {
    case SMQ_OP_PUBLISH:
        T_ASSERT(nargs == 3 && arg_is(r, "q") && smq_mpr_bin(r, &d, &n) == 0 && n == 3);
        read_opts(r, &o);
        T_ASSERT(o.keys == 5 && o.delay_ms == 1500 && o.at_ms == 1700000000000ULL);
        T_ASSERT(o.ttl_ms == SLABMQ_TIME_MAX_MS && o.priority == 9 && !strcmp(o.id, "order-17"));
        ok_head(&b, op, rid, 2);
        mb_uint(&b, 41);
        mb_byte(&b, 0xc3); /* true: a duplicate of message 41 */
        break;
    case SMQ_OP_PUBLISH_BATCH:
        T_ASSERT(nargs == 3 && arg_is(r, "q") && smq_mpr_array(r, &n) == 0 && n == 2);
        T_ASSERT(smq_mpr_bin(r, &d, &n) == 0 && smq_mpr_bin(r, &d, &n) == 0);
        read_opts(r, &o);
        T_ASSERT(o.keys == 1 && o.priority == 4);
        ok_head(&b, op, rid, 2);
        mb_uint(&b, 50);
        mb_uint(&b, 2);
        break;
    case SMQ_OP_NACK:
        T_ASSERT(nargs == 2 && smq_mpr_array(r, &n) == 0 && n == 1 && smq_mpr_uint(r, &v) == 0);
        T_ASSERT(smq_mpr_uint(r, &v) == 0 && v == SLABMQ_TIME_MAX_MS);
        ok_head(&b, op, rid, 1);
        mb_uint(&b, 1);
        break;
    case SMQ_OP_PEEK:
        T_ASSERT(nargs == 3 && arg_is(r, "q") && smq_mpr_uint(r, &v) == 0 && v == 2);
        T_ASSERT(smq_mpr_uint(r, &v) == 0 && v == 5000000000ULL);
        ok_head(&b, op, rid, 1);
        mb_arr(&b, 0);
        break;
    case SMQ_OP_DECLARE:
        T_ASSERT(nargs == 2 && arg_is(r, "q"));
        read_declare(r);
        ok_head(&b, op, rid, 1);
        mb_byte(&b, 0xc2);
        break;
    case SMQ_OP_TERM:
        T_ASSERT(nargs == 1 && smq_mpr_array(r, &n) == 0 && n == 3);
        ok_head(&b, op, rid, 1);
        mb_uint(&b, 3);
        break;
    case SMQ_OP_FETCH: /* written directly, in the shortest forms, as msgpack-c would */
        T_ASSERT((nargs == 3 || nargs == 4) && arg_is(r, "q"));
        T_ASSERT(smq_mpr_left(r) == (nargs == 4 ? 9u : 8u));
        T_ASSERT(r->p[0] == 0xcd && r->p[1] == 0x03 && r->p[2] == 0xe8); /* uint16 1000 */
        T_ASSERT(smq_mpr_uint(r, &v) == 0 && v == 1000);
        T_ASSERT(r->p[0] == 0xce && smq_mpr_uint(r, &v) == 0 && v == 70000); /* uint32 */
        T_ASSERT(nargs == 3 || (r->p[0] == 0x01 && smq_mpr_uint(r, &v) == 0));
        ok_head(&b, op, rid, 1);
        mb_arr(&b, 0);
        break;
    default:
        T_ASSERT(!"unexpected request");
    }
    send_mb(fd, &b);
    mb_free(&b);
}

struct ex_seen {
    int n;
    slabmq_confirm last;
};

static void
on_confirm_ex(void *arg, const slabmq_confirm *cf)
{
    struct ex_seen *s = arg;

    s->n++;
    s->last = *cf;
}

static void
test_request_bytes(void)
{
    static const uint64_t ids[] = {1, 2, 3};
    slabmq_payload two[] = {{"a", 1}, {"b", 1}};
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    struct ex_seen ex = {0, {0, SLABMQ_OK, 0, 0, SLABMQ_CONFIRM_DEFAULT}};
    struct fake f;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t id = 0;
    uint64_t n = 0;
    uint64_t req = 0;
    int dup = 0;
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    int created = 1;

    fake_start(&f, wire_fn);
    c = t_client(&f.b);
    po.delay_ms = 1500;
    po.at_ms = 1700000000000ULL;
    po.ttl_ms = SLABMQ_TIME_MAX_MS;
    po.priority = 9;
    po.id = "order-17";
    T_OK(c, slabmq_publish_opts(c, "q", "abc", 3, &po, &id, &dup));
    T_EQ_U64(id, 41);
    T_EQ_INT(dup, 1);
    slabmq_client_on_confirm_ex(c, on_confirm_ex, &ex);
    T_OK(c, slabmq_publish_opts_async(c, "q", "abc", 3, &po, &req));
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(ex.n, 1);
    T_EQ_U64(ex.last.request, req);
    T_EQ_U64(ex.last.value, 41);
    T_EQ_INT(ex.last.duplicate, 1);
    /* checked before anything is sent */
    T_EQ_INT(slabmq_publish_batch_opts(c, "q", two, 2, &po, &id), SLABMQ_ERR_ARG);
    po.id = "";
    T_EQ_INT(slabmq_publish_opts(c, "q", "abc", 3, &po, &id, &dup), SLABMQ_ERR_ARG);
    po = (slabmq_publish_options)SLABMQ_PUBLISH_OPTIONS_INIT;
    po.priority = 10;
    T_EQ_INT(slabmq_publish_opts(c, "q", "abc", 3, &po, &id, &dup), SLABMQ_ERR_ARG);
    po.priority = 4;
    T_OK(c, slabmq_publish_batch_opts(c, "q", two, 2, &po, &id));
    T_EQ_U64(id, 50);
    T_OK(c, slabmq_publish_batch_opts_async(c, "q", two, 2, &po, &req));
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(ex.n, 2);
    T_EQ_U64(ex.last.value, 50);
    T_EQ_INT(ex.last.duplicate, 0);
    T_OK(c, slabmq_nack(c, 77, SLABMQ_TIME_MAX_MS));
    T_OK(c, slabmq_peek_skip(c, "q", 2, 5000000000ULL, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_EQ_STR(slabmq_batch_queue(bt), "q");
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "q", 1000, 70000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 0);
    T_EQ_STR(slabmq_batch_queue(bt), "q");
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch_flags(c, "q", 1000, 70000, SLABMQ_FETCH_NOACK, &bt));
    slabmq_batch_free(bt);
    T_OK(c, slabmq_term(c, ids, 3, &n));
    T_EQ_U64(n, 3);
    T_OK(c, slabmq_term_async(c, ids, 3, &req));
    T_OK(c, slabmq_flush(c));
    T_EQ_INT(ex.n, 3);
    T_EQ_U64(ex.last.value, 3);
    qo.max_deliveries = SLABMQ_NO_LIMIT;
    qo.dead_letter = "";
    qo.ttl_ms = SLABMQ_NO_TTL;
    qo.dedup_window = SLABMQ_DEDUP_OFF;
    qo.overflow = SLABMQ_OVERFLOW_DEAD_LETTER;
    T_OK(c, slabmq_declare(c, "q", &qo, &created));
    T_EQ_INT(created, 0);
    qo.dead_letter = "bad name";
    T_EQ_INT(slabmq_declare(c, "q", &qo, &created), SLABMQ_ERR_BAD_NAME);
    fake_stop(&f, c);
}

/* ---------------------------------------------------------------------------------------- */
/* QUIET ACKs and replies that prove nothing                                                 */

/* What quiet_fn answers a PING with: a body that is not [op, request_id, status, ...], or
 * a reply to a request id never sent. ACKs must come QUIET and get no reply. */
static int quiet_bad_mode;

static void
quiet_fn(int fd, uint64_t op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct mb b = {0};
    uint32_t n;
    uint64_t id;
    uint64_t flags;

    if (op == SMQ_OP_ACK) {
        T_ASSERT(nargs == 2 && smq_mpr_array(r, &n) == 0 && n >= 1); /* coalesced: 2 ids */
        for (uint32_t i = 0; i < n; i++)
            T_ASSERT(smq_mpr_uint(r, &id) == 0);
        T_ASSERT(smq_mpr_uint(r, &flags) == 0 && flags == SMQ_ACK_QUIET);
        return;
    }
    T_ASSERT(op == SMQ_OP_PING);
    if (quiet_bad_mode == 0) {
        mb_arr(&b, 1); /* [2]: no request id, no status */
        mb_uint(&b, SMQ_OP_PING);
    } else {
        ok_head(&b, op, rid + 5, 0);
    }
    send_mb(fd, &b);
    mb_free(&b);
}

/* A reply confirms the QUIET ACKs before it only if it is one: a malformed frame, or a
 * reply to a request that was never sent, is a bad reply and confirms none of them. */
static void
test_quiet_acks_not_confirmed_by_bad_replies(void)
{
    struct fake f;
    slabmq_client *c;
    struct counts n = {0, 0};
    uint64_t ids[2] = {5, 6};

    hello_features = SMQ_FEATURE_QUIET_ACK;
    for (quiet_bad_mode = 0; quiet_bad_mode < 2; quiet_bad_mode++) {
        fake_start(&f, quiet_fn);
        c = t_client(&f.b);
        slabmq_client_on_confirm(c, count_confirm, &n);
        T_OK(c, slabmq_ack_async(c, &ids[0], 1, NULL));
        T_OK(c, slabmq_ack_async(c, &ids[1], 1, NULL));
        if (quiet_bad_mode == 0) /* the sync PING's reply */
            T_EQ_INT(slabmq_ping(c), SLABMQ_ERR_BAD_REPLY);
        else /* the reply to flush's PING */
            T_EQ_INT(slabmq_flush(c), SLABMQ_ERR_BAD_REPLY);
        T_EQ_INT(n.confirms, 0);
        fake_stop(&f, c);
    }
    hello_features = -1;
}

static const struct t_case cases[] = {
    T_CASE(test_dead_letter_entries),
    T_CASE(test_pushes_kept_across_calls),
    T_CASE(test_push_error_ends_subscription),
    T_CASE(test_acks_of_one_read_leave_together),
    T_CASE(test_stats_strings_and_unknown_types),
    T_CASE(test_fetch_any_names_queue),
    T_CASE(test_request_bytes),
    T_CASE(test_quiet_acks_not_confirmed_by_bad_replies),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
