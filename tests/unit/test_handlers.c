/* SPDX-License-Identifier: MIT */
/* Request handlers without a socket: a broker, a request context (struct req) with a fake
 * network side (struct req_ops that counts its calls), request bodies packed with msgpack-c
 * and handed to dispatch_frame(), and the reply frames read back out of the req's output
 * buffer. What the connection must do next is req.next. */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "core/broker.h"
#include "frame.h"
#include "mem/obuf.h"
#include "mpread.h"
#include "ops.h"
#include "req/dispatch.h"
#include "req/req.h"
#include "slabmq.h"
#include "t.h"

struct fixture {
    struct broker b;
    struct req_server srv;
    struct req rq;
    int handshakes;      /* ops->handshake_done calls */
    int writes;          /* ops->want_write, try_write, write_batched calls */
    uint8_t out[65536];  /* the reply bytes drained from rq.out */
    size_t out_len;
    size_t out_read;     /* how far next_reply() has read out */
};

static struct fixture *fx; /* the fake network side finds the test's fixture here */

static void
count_write(struct req *rq)
{
    (void)rq;
    fx->writes++;
}

static void
handshake_done(struct req *rq)
{
    rq->ready = 1; /* what net/guard.c does, besides its deadline */
    fx->handshakes++;
}

static const struct req_ops fake_ops = {
    .want_write = count_write,
    .try_write = count_write,
    .write_batched = count_write,
    .handshake_done = handshake_done,
};

static struct fixture *
setup(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct broker_config c;
    char err[128];

    T_ASSERT(f != NULL);
    fx = f;
    broker_config_defaults(&c);
    T_EQ_INT(broker_init(&f->b, &c, err, sizeof(err)), 0);
    req_server_init(&f->srv, &f->b, &fake_ops);
    f->b.hooks = (struct broker_hooks){req_serve_queue, req_queue_gone, &f->srv};
    req_init(&f->rq, &f->srv, 1, "test");
    return f;
}

static void
teardown(struct fixture *f)
{
    req_deinit(&f->rq);
    broker_deinit(&f->b);
    T_EQ_U64(f->b.mem.used, 0);
    free(f);
}

/* Pack a request [op, rid, args...] with msgpack-c and dispatch it; 'args' packs the nargs
 * arguments. */
static void
request(struct fixture *f, unsigned op, uint64_t rid, uint32_t nargs,
        void (*args)(msgpack_packer *pk))
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2 + nargs);
    msgpack_pack_uint64(&pk, op);
    msgpack_pack_uint64(&pk, rid);
    if (args)
        args(&pk);
    dispatch_frame(&f->rq, (const uint8_t *)sb.data, (uint32_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static ssize_t
sink(void *ctx, const struct iovec *iov, int n)
{
    struct fixture *f = ctx;
    size_t taken = 0;

    for (int i = 0; i < n; i++) {
        T_ASSERT(f->out_len + iov[i].iov_len <= sizeof(f->out));
        memcpy(f->out + f->out_len, iov[i].iov_base, iov[i].iov_len);
        f->out_len += iov[i].iov_len;
        taken += iov[i].iov_len;
    }
    return (ssize_t)taken;
}

/* The next reply frame's body: reads [op, rid, status] and leaves r at the first result. */
static void
next_reply(struct fixture *f, struct smq_mpr *r, uint64_t op, uint64_t rid, uint64_t status,
           uint32_t *nresults)
{
    uint32_t len;
    uint32_t n;
    uint64_t v;

    if (f->out_read == f->out_len)
        T_EQ_INT(obuf_drain(&f->rq.out, sink, f), 0);
    T_ASSERT(f->out_len - f->out_read >= SMQ_FRAME_HEADER);
    len = (uint32_t)f->out[f->out_read] << 24 | (uint32_t)f->out[f->out_read + 1] << 16
          | (uint32_t)f->out[f->out_read + 2] << 8 | f->out[f->out_read + 3];
    f->out_read += SMQ_FRAME_HEADER;
    T_ASSERT(f->out_len - f->out_read >= len);
    smq_mpr_init(r, f->out + f->out_read, len);
    f->out_read += len;
    T_EQ_INT(smq_mpr_array(r, &n), 0);
    T_ASSERT(n >= 3);
    T_EQ_INT(smq_mpr_uint(r, &v), 0);
    T_EQ_U64(v, op);
    T_EQ_INT(smq_mpr_uint(r, &v), 0);
    T_EQ_U64(v, rid);
    T_EQ_INT(smq_mpr_uint(r, &v), 0);
    T_EQ_U64(v, status);
    if (nresults)
        *nresults = n - 3;
}

/* Nothing more was written. */
static void
no_more_replies(struct fixture *f)
{
    T_EQ_U64(f->out_read, f->out_len);
    T_EQ_U64(f->rq.out.len, 0);
}

static void
hello_args(msgpack_packer *pk)
{
    msgpack_pack_uint32(pk, SLABMQ_PROTOCOL_VERSION);
    msgpack_pack_str_with_body(pk, "unit", 4);
}

static void
hello(struct fixture *f)
{
    struct smq_mpr r;

    request(f, SMQ_OP_HELLO, 1, 2, hello_args);
    next_reply(f, &r, SMQ_OP_HELLO, 1, 0, NULL);
}

static void
queue_arg(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "q", 1);
}

/* HELLO: the handshake is done (no users), the reply carries the version and the limits. */
static void
test_hello(void)
{
    struct fixture *f = setup();
    struct smq_mpr r;
    uint32_t n;
    uint64_t v;
    const char *s;
    uint32_t len;

    request(f, SMQ_OP_HELLO, 7, 2, hello_args);
    T_EQ_INT(f->rq.next, REQ_GO_ON);
    T_EQ_INT(f->rq.hello, 1);
    T_EQ_INT(f->rq.ready, 1);
    T_EQ_INT(f->handshakes, 1);
    next_reply(f, &r, SMQ_OP_HELLO, 7, 0, &n);
    T_EQ_INT(n, 8);
    T_EQ_INT(smq_mpr_uint(&r, &v), 0);
    T_EQ_U64(v, SLABMQ_PROTOCOL_VERSION);
    T_EQ_INT(smq_mpr_str(&r, &s, &len), 0);
    T_ASSERT(len > 8 && memcmp(s, "slabmqd ", 8) == 0);
    T_EQ_INT(smq_mpr_uint(&r, &v), 0);
    T_EQ_U64(v, f->b.cfg.max_message_size);
    no_more_replies(f);
    teardown(f);
}

static void
publish_args(msgpack_packer *pk)
{
    queue_arg(pk);
    msgpack_pack_bin_with_body(pk, "hello", 5);
}

static void
fetch_args(msgpack_packer *pk)
{
    queue_arg(pk);
    msgpack_pack_uint32(pk, 10);
}

static uint64_t acked_id;

static void
ack_args(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint64(pk, acked_id);
}

/* PUBLISH, FETCH, ACK: the id PUBLISH answers is the one FETCH delivers, with its payload;
 * the req holds it until the ACK, which counts 1. */
static void
test_publish_fetch_ack(void)
{
    struct fixture *f = setup();
    struct smq_mpr r;
    uint32_t n;
    uint64_t id;
    uint64_t v;
    const uint8_t *p;
    uint32_t len;

    hello(f);
    request(f, SMQ_OP_DECLARE, 2, 1, queue_arg);
    next_reply(f, &r, SMQ_OP_DECLARE, 2, 0, &n);
    T_EQ_INT(n, 1);
    request(f, SMQ_OP_PUBLISH, 3, 2, publish_args);
    next_reply(f, &r, SMQ_OP_PUBLISH, 3, 0, &n);
    T_EQ_INT(n, 1);
    T_EQ_INT(smq_mpr_uint(&r, &id), 0);
    request(f, SMQ_OP_FETCH, 4, 2, fetch_args);
    next_reply(f, &r, SMQ_OP_FETCH, 4, 0, &n);
    T_EQ_INT(n, 1);
    T_EQ_INT(smq_mpr_array(&r, &n), 0); /* the messages */
    T_EQ_INT(n, 1);
    T_EQ_INT(smq_mpr_array(&r, &n), 0); /* [id, deliveries, payload] */
    T_EQ_INT(n, 3);
    T_EQ_INT(smq_mpr_uint(&r, &v), 0);
    T_EQ_U64(v, id);
    T_EQ_INT(smq_mpr_uint(&r, &v), 0);
    T_EQ_U64(v, 1);
    T_EQ_INT(smq_mpr_bin(&r, &p, &len), 0);
    T_EQ_INT(len, 5);
    T_EQ_MEM(p, "hello", 5);
    T_EQ_INT(f->rq.held.n, 1);
    acked_id = id;
    request(f, SMQ_OP_ACK, 5, 1, ack_args);
    next_reply(f, &r, SMQ_OP_ACK, 5, 0, &n);
    T_EQ_INT(n, 1);
    T_EQ_INT(smq_mpr_uint(&r, &v), 0);
    T_EQ_U64(v, 1);
    T_EQ_INT(f->rq.held.n, 0);
    T_EQ_INT(f->rq.next, REQ_GO_ON);
    no_more_replies(f);
    teardown(f);
}

static void
declare_bad_args(msgpack_packer *pk)
{
    queue_arg(pk);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "no_such_option", 14);
    msgpack_pack_uint32(pk, 1);
}

/* DECLARE with an option the broker does not know: BAD_REQUEST, no queue, and the
 * connection goes on. */
static void
test_declare_bad_option(void)
{
    struct fixture *f = setup();
    struct smq_mpr r;
    uint32_t n;
    const char *s;
    uint32_t len;

    hello(f);
    request(f, SMQ_OP_DECLARE, 2, 2, declare_bad_args);
    next_reply(f, &r, SMQ_OP_DECLARE, 2, SLABMQ_ERR_BAD_REQUEST, &n);
    T_EQ_INT(n, 1);
    T_EQ_INT(smq_mpr_str(&r, &s, &len), 0); /* the message */
    T_ASSERT(len > 0);
    T_EQ_INT(f->b.nqueues, 0);
    T_EQ_INT(f->rq.next, REQ_GO_ON);
    no_more_replies(f);
    teardown(f);
}

/* A request before HELLO is answered, and the connection must close after the write. */
static void
test_close_after_write(void)
{
    struct fixture *f = setup();
    struct smq_mpr r;

    request(f, SMQ_OP_PING, 3, 0, NULL);
    T_EQ_INT(f->rq.next, REQ_CLOSE_AFTER_WRITE);
    next_reply(f, &r, SMQ_OP_PING, 3, SLABMQ_ERR_HELLO_REQUIRED, NULL);
    T_EQ_U64(f->srv.n.protocol_errors, 1);
    no_more_replies(f);
    teardown(f);
}

static void
hello_v99_args(msgpack_packer *pk)
{
    msgpack_pack_uint32(pk, 99);
    msgpack_pack_str_with_body(pk, "unit", 4);
}

/* HELLO in a version the broker does not speak: ERR_VERSION, then close. */
static void
test_hello_wrong_version_closes(void)
{
    struct fixture *f = setup();
    struct smq_mpr r;

    request(f, SMQ_OP_HELLO, 1, 2, hello_v99_args);
    T_EQ_INT(f->rq.next, REQ_CLOSE_AFTER_WRITE);
    T_EQ_INT(f->rq.hello, 0);
    next_reply(f, &r, SMQ_OP_HELLO, 1, SLABMQ_ERR_VERSION, NULL);
    teardown(f);
}

static const struct t_case cases[] = {
    T_CASE(test_hello),
    T_CASE(test_publish_fetch_ack),
    T_CASE(test_declare_bad_option),
    T_CASE(test_close_after_write),
    T_CASE(test_hello_wrong_version_closes),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
