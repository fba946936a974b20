/* SPDX-License-Identifier: MIT */
/* libslabmq connections: connect + HELLO, framing, and one synchronous request/reply call
 * (smq_call) that every public operation goes through. Blocking semantics over a
 * non-blocking socket and poll(), so every call honours the connection's timeout. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client-internal.h"
#include "codec.h"
#include "frame.h"
#include "ops.h"

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

slabmq_status
smq_client_fail(struct slabmq_client *c, slabmq_status st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is above; a clang 14 defect (llvm/llvm-project#40656)
    va_end(ap);
    c->last = st;
    if (st == SLABMQ_ERR_IO || st == SLABMQ_ERR_CLOSED || st == SLABMQ_ERR_BAD_REPLY
        || st == SLABMQ_ERR_TIMEOUT)
        c->broken = 1; /* the stream position is unknown: no later call can trust it */
    return st;
}

slabmq_status
smq_check_queue(struct slabmq_client *c, const char *queue)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (!queue || !smq_name_valid(queue, strlen(queue)))
        return smq_client_fail(c, SLABMQ_ERR_BAD_NAME,
                               "invalid queue name: 1-%d bytes of A-Z a-z 0-9 . _ : -",
                               SMQ_NAME_MAX);
    return SLABMQ_OK;
}

slabmq_status
smq_bad_reply(struct slabmq_client *c, const char *what)
{
    return smq_client_fail(c, SLABMQ_ERR_BAD_REPLY, "malformed reply from the broker: %s", what);
}

SLABMQ_API const char *
slabmq_client_errmsg(const slabmq_client *c)
{
    return c ? c->err : "";
}

SLABMQ_API uint64_t
slabmq_client_max_message_size(const slabmq_client *c)
{
    return c ? c->max_message : 0;
}

SLABMQ_API uint64_t
slabmq_client_max_frame_size(const slabmq_client *c)
{
    return c ? c->max_frame : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Time and I/O                                                                              */

int64_t
smq_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events until the deadline (0: forever). 1 ready, 0 timeout,
 * -1 error; with intr, -2 when a signal interrupts the wait (else it goes on waiting). */
static int
poll_until(int fd, short events, int64_t deadline, int intr)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int ms = -1;
        int rc;
        if (deadline) {
            int64_t left = deadline - smq_now_ms();
            if (left <= 0)
                return 0;
            ms = left > 60000 ? 60000 : (int)left;
        }
        rc = poll(&p, 1, ms);
        if (rc > 0)
            return 1;
        if (rc < 0 && errno == EINTR && intr)
            return -2;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

int
smq_wait_fd(int fd, short events, int64_t deadline)
{
    return poll_until(fd, events, deadline, 0);
}

int
smq_wait_readable(struct slabmq_client *c, int64_t deadline)
{
    int rc;

    if (smq_io_buffered(c)) /* TLS has decrypted bytes the socket no longer shows */
        return 1;
    rc = poll_until(c->fd, c->io_events == POLLOUT ? POLLIN | POLLOUT : POLLIN, deadline, 1);
    if (rc > 0)
        c->rdrained = 0;
    return rc;
}

static slabmq_status
send_all(struct slabmq_client *c, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = smq_io_send(c, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = smq_wait_fd(c->fd, c->io_events, deadline);
            if (rc == 0)
                return smq_client_fail(c, SLABMQ_ERR_TIMEOUT, "timed out sending to the broker");
            if (rc > 0)
                continue;
        }
        return smq_client_fail(c, SLABMQ_ERR_IO, "send failed: %s", smq_io_strerror(c, errno));
    }
    return SLABMQ_OK;
}

/* Make rbuf at least cap bytes. Returns 0 or -1. */
static int
grow_rbuf(struct slabmq_client *c, size_t cap)
{
    uint8_t *nb;

    if (cap <= c->rcap)
        return 0;
    nb = realloc(c->rbuf, cap);
    if (!nb)
        return -1;
    c->rbuf = nb;
    c->rcap = cap;
    return 0;
}

/* Make sure rbuf holds at least want unconsumed bytes, reading as needed. The buffer grows
 * (doubling, from 64 KiB) only once it is full of bytes that arrived, never to a length a
 * frame header merely declares: 4 bytes from a broken or hostile peer must not make the
 * client allocate up to SMQ_CLIENT_MAX_REPLY. */
static slabmq_status
fill(struct slabmq_client *c, size_t want, int64_t deadline)
{
    while (c->rlen - c->rstart < want) {
        ssize_t n;
        if (c->rlen == c->rcap && c->rstart > 0) { /* full: drop what was consumed */
            memmove(c->rbuf, c->rbuf + c->rstart, c->rlen - c->rstart);
            c->rlen -= c->rstart;
            c->rstart = 0;
        }
        if (c->rlen == c->rcap) { /* full of unconsumed bytes: grow */
            size_t ncap = c->rcap ? c->rcap * 2 : 65536;
            if (ncap > want && want > 65536)
                ncap = want;
            if (grow_rbuf(c, ncap))
                return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for a reply");
        }
        if (c->rdrained) { /* nothing was left at the last receive: wait, then read */
            if (smq_wait_fd(c->fd, POLLIN, deadline) < 0)
                return smq_client_fail(c, SLABMQ_ERR_IO, "poll failed: %s", strerror(errno));
            c->rdrained = 0; /* readable, or the time is up: the receive tells which */
        }
        n = smq_io_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n > 0) {
            c->rlen += (size_t)n;
            continue;
        }
        if (n == 0)
            return smq_client_fail(c, SLABMQ_ERR_CLOSED, "connection closed by the broker");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = smq_wait_fd(c->fd, c->io_events, deadline);
            if (rc == 0)
                return smq_client_fail(c, SLABMQ_ERR_TIMEOUT,
                                       "timed out waiting for the broker's reply");
            if (rc > 0) {
                c->rdrained = 0;
                continue;
            }
        }
        return smq_client_fail(c, SLABMQ_ERR_IO, "receive failed: %s",
                               smq_io_strerror(c, errno));
    }
    return SLABMQ_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                  */

/* msgpack_packer_write callback that grows wbuf. */
static int
wbuf_write(void *data, const char *buf, size_t len)
{
    struct slabmq_client *c = data;

    if (smq_wbuf_room(c, len))
        return -1;
    memcpy(c->wbuf + c->wlen, buf, len);
    c->wlen += len;
    return 0;
}

void
smq_req_begin(struct slabmq_client *c, unsigned op, uint32_t nargs)
{
    c->wstart = c->wlen;
    c->wfail = 0;
    wbuf_write(c, "\0\0\0\0", SMQ_FRAME_HEADER); /* the length, patched when it ends */
    msgpack_pack_array(&c->pk, 2 + nargs);
    msgpack_pack_uint32(&c->pk, op);
    msgpack_pack_uint64(&c->pk, c->next_rid);
}

int
smq_wbuf_room(struct slabmq_client *c, size_t n)
{
    if (c->wcap - c->wlen < n) {
        size_t ncap = c->wcap ? c->wcap : 4096;
        uint8_t *nb;
        while (ncap - c->wlen < n)
            ncap *= 2;
        nb = realloc(c->wbuf, ncap);
        if (!nb) {
            c->wfail = 1;
            return -1;
        }
        c->wbuf = nb;
        c->wcap = ncap;
    }
    return 0;
}

uint8_t *
smq_req_reserve(struct slabmq_client *c, size_t n)
{
    c->wstart = c->wlen;
    c->wfail = 0;
    if (c->wcap - c->wlen < SMQ_FRAME_HEADER + n) {
        size_t ncap = c->wcap ? c->wcap : 4096;
        uint8_t *nb;
        while (ncap - c->wlen < SMQ_FRAME_HEADER + n)
            ncap *= 2;
        nb = realloc(c->wbuf, ncap);
        if (!nb) {
            c->wfail = 1;
            return NULL;
        }
        c->wbuf = nb;
        c->wcap = ncap;
    }
    c->wlen += SMQ_FRAME_HEADER; /* the length, patched when the request ends */
    return c->wbuf + c->wlen;
}

void
smq_req_wrote(struct slabmq_client *c, const uint8_t *end)
{
    c->wlen = (size_t)(end - c->wbuf);
}

void
smq_pack_str(struct slabmq_client *c, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(&c->pk, n);
    msgpack_pack_str_body(&c->pk, s, n);
}

/* Read one frame; *body views rbuf until the next read. */
static slabmq_status
read_any_frame(struct slabmq_client *c, const uint8_t **body, uint32_t *len, int64_t deadline)
{
    const uint8_t *b;
    size_t total;
    slabmq_status st = fill(c, SMQ_FRAME_HEADER, deadline);

    if (st)
        return st;
    switch (smq_frame_decode(c->rbuf + c->rstart, c->rlen - c->rstart, SMQ_CLIENT_MAX_REPLY, &b,
                             len, &total)) {
    case SMQ_FRAME_EMPTY:
        return smq_bad_reply(c, "empty frame");
    case SMQ_FRAME_TOO_BIG:
        return smq_bad_reply(c, "frame too large");
    default:
        break;
    }
    st = fill(c, SMQ_FRAME_HEADER + (size_t)*len, deadline);
    if (st)
        return st;
    *body = c->rbuf + c->rstart + SMQ_FRAME_HEADER;
    c->rstart += SMQ_FRAME_HEADER + (size_t)*len;
    return SLABMQ_OK;
}

/* Read one reply frame, keeping the subscription pushes that come before it for
 * slabmq_receive(). *body views rbuf until the next read. */
static slabmq_status
read_frame(struct slabmq_client *c, const uint8_t **body, uint32_t *len, int64_t deadline)
{
    for (;;) {
        slabmq_status st = read_any_frame(c, body, len, deadline);
        if (st || !smq_is_deliver(*body, *len))
            return st;
        st = smq_push_deliver(c, *body, *len);
        if (st)
            return st;
    }
}

slabmq_status
smq_read_confirm(struct slabmq_client *c, int64_t deadline)
{
    const uint8_t *body = NULL;
    uint32_t len = 0;
    slabmq_status st = read_frame(c, &body, &len, deadline);

    return st ? st : smq_confirm(c, body, len);
}

int
smq_read_head(struct smq_mpr *r, struct smq_head *h)
{
    if (smq_mpr_array(r, &h->n) || h->n < 3 || smq_mpr_uint(r, &h->op) || smq_mpr_uint(r, &h->id)
        || smq_mpr_uint(r, &h->status))
        return -1;
    h->msg = "";
    h->mlen = 0;
    if (h->status != SLABMQ_OK && (h->n < 4 || smq_mpr_peek(r) != SMQ_MP_STR
                                   || smq_mpr_str(r, &h->msg, &h->mlen))) {
        h->msg = "";
        h->mlen = 0;
    }
    return 0;
}

/* Decode [op, rid, status, ...]; on an error status take its message. */
static slabmq_status
parse_reply(struct slabmq_client *c, unsigned op, uint64_t rid, struct smq_mpr *r,
            uint32_t *nresults)
{
    struct smq_head h;

    if (smq_read_head(r, &h))
        return smq_bad_reply(c, "not [op, request_id, status, ...]");
    if (h.status != SLABMQ_OK) {
        smq_client_fail(c, (slabmq_status)h.status, "%s: %.*s",
                        smq_status_message((unsigned)h.status), (int)h.mlen, h.msg);
        if (h.op == SMQ_OP_NONE) /* the broker closes after a connection-level error */
            c->broken = 1;
        return (slabmq_status)h.status;
    }
    if (h.op != op || h.id != rid)
        return smq_bad_reply(c, "reply does not match the request");
    *nresults = h.n - 3;
    return SLABMQ_OK;
}

/* Finish the request being built: check its size, write its length. On failure the
 * request is dropped from wbuf. */
static slabmq_status
req_end(struct slabmq_client *c)
{
    size_t body = c->wlen - c->wstart - SMQ_FRAME_HEADER;

    if (c->wfail || body > c->max_frame) {
        c->wlen = c->wstart;
        if (c->wfail)
            return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
        return smq_client_fail(c, SLABMQ_ERR_ARG, "request of %zu bytes exceeds the broker's "
                               "maximum frame of %u bytes", body, c->max_frame);
    }
    smq_frame_put_header(c->wbuf + c->wstart, (uint32_t)body);
    return SLABMQ_OK;
}

void
smq_ack_seal(struct slabmq_client *c)
{
    const struct smq_ackq *a = &c->ackq;
    uint8_t *p = c->wbuf + a->ids + 1; /* after the array32 header byte */

    p[0] = (uint8_t)(a->n >> 24);
    p[1] = (uint8_t)(a->n >> 16);
    p[2] = (uint8_t)(a->n >> 8);
    p[3] = (uint8_t)a->n;
    smq_frame_put_header(c->wbuf + a->frame, (uint32_t)(a->end - a->frame - SMQ_FRAME_HEADER));
}

/* Send every queued frame in one go. */
slabmq_status
smq_send_queued(struct slabmq_client *c, int64_t deadline)
{
    slabmq_status st;

    if (c->wlen == 0)
        return SLABMQ_OK;
    if (c->ackq.end) /* queued, maybe with later requests after it */
        smq_ack_seal(c);
    st = send_all(c, c->wbuf, c->wlen, deadline);
    c->wlen = c->wstart = 0;
    c->ackq.end = 0; /* sent: an ACK on the wire takes no more ids */
    if (c->wcap > ((size_t)4 << 20)) { /* do not keep a huge request buffer around */
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    return st;
}

/* Whether any confirmation callback is set: a refusal is then told, not kept sticky. */
static int
has_callback(const struct slabmq_client *c)
{
    return c->on_confirm || c->on_confirm_ex || c->on_confirmation;
}

/* Hand one confirmation to the callbacks: cf, and what it confirms (op, its count). */
static void
notify(struct slabmq_client *c, const slabmq_confirm *cf, slabmq_async_op op, uint64_t count)
{
    if (c->on_confirm)
        c->on_confirm(c->confirm_arg, cf->request, cf->status, cf->value);
    if (c->on_confirm_ex)
        c->on_confirm_ex(c->confirm_ex_arg, cf);
    if (c->on_confirmation) {
        int publish = op == SLABMQ_ASYNC_PUBLISH;
        int ok = cf->status == SLABMQ_OK;
        slabmq_confirmation k = {op,
                                 cf->status,
                                 cf->request,
                                 publish && ok ? cf->value : 0,
                                 ok ? (publish ? count : cf->value) : 0,
                                 cf->duplicate,
                                 cf->level,
                                 c->confirmation_arg};
        c->on_confirmation(&k);
    }
}

uint32_t
smq_settle_window(const struct slabmq_client *c)
{
    uint32_t broker = c->max_inflight ? c->max_inflight : 10000; /* the broker's default */

    return broker > c->window ? broker : c->window;
}

/* Work out the limits that follow from the window and the broker's in-flight limit, once
 * (after HELLO and at each slabmq_client_set_window()), not at every pipelined call. */
static void
set_limits(struct slabmq_client *c)
{
    c->slimit = smq_settle_window(c);
    c->qrun_max = c->slimit / 4 < SMQ_QUIET_RUN ? c->slimit / 4 : SMQ_QUIET_RUN;
}

/* Outstanding requests other than settlements: those the window counts. settling never
 * exceeds outstanding (smq_confirm() keeps it so, whatever ops a broker names). */
static uint32_t
unsettled_others(const struct slabmq_client *c)
{
    return c->outstanding - c->settling;
}

int
smq_quiet_reserve(struct slabmq_client *c)
{
    struct smq_quiet *q;
    uint32_t cap;
    if (!(c->features & SMQ_FEATURE_QUIET_ACK) || c->qrun >= c->qrun_max
        || c->qids >= c->qrun_max)
        return -1; /* a limit under 4 makes qrun_max 0: no QUIET ACKs */
    if (c->qlen < c->qcap)
        return 0;
    if (c->qcap > UINT32_MAX / 2)
        return -1;
    cap = c->qcap ? c->qcap * 2 : 64;
    q = malloc((size_t)cap * sizeof(*q));
    if (!q)
        return -1;
    for (uint32_t i = 0, j = c->qhead; i < c->qlen; i++) { /* unwrap the ring, oldest first */
        q[i] = c->quiet[j];
        j = j + 1 == c->qcap ? 0 : j + 1;
    }
    free(c->quiet);
    c->quiet = q;
    c->qcap = cap;
    c->qhead = 0;
    return 0;
}

/* Take the oldest QUIET ACK off the ring if its request id is rid; 1 if it was. */
static int
quiet_pop(struct slabmq_client *c, uint64_t rid, struct smq_quiet *out)
{
    if (c->qlen == 0 || c->quiet[c->qhead].rid != rid)
        return 0;
    *out = c->quiet[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    if (c->qrun > c->qlen) { /* it was of the run at the end */
        c->qrun = c->qlen;
        c->qids -= out->n < c->qids ? out->n : c->qids;
    }
    return 1;
}

/* Whether a reply to request rid would confirm only QUIET ACKs: every outstanding request
 * before rid is one. (The ring holds the QUIET ACKs' ids rising, none below first_async, so
 * its k-th being rid - 1 means the first k are first_async .. rid - 1.) */
static int
quiet_before(const struct slabmq_client *c, uint64_t rid)
{
    uint64_t k;

    if (c->outstanding == 0 || rid <= c->first_async)
        return 1;
    k = rid - c->first_async; /* outstanding requests before rid */
    return k <= c->qlen && c->quiet[(c->qhead + k - 1) % c->qcap].rid == rid - 1;
}

/* Tell each slabmq_ack_async() call a QUIET ACK carries its confirmation, in call order,
 * all with the ACK's request id: on success the first call's count (n - (calls - 1)) and
 * then 1 per call (acks.c coalesces calls of one id), on failure cf as it is. */
static void
notify_quiet(struct slabmq_client *c, const struct smq_quiet *q, slabmq_confirm *cf)
{
    if (!has_callback(c))
        return;
    for (uint64_t i = 0; i < q->calls; i++) {
        if (cf->status == SLABMQ_OK)
            cf->value = i == 0 ? q->n - (q->calls - 1) : 1;
        notify(c, cf, SLABMQ_ASYNC_ACK, cf->value);
    }
}

/* A reply to request rid has come, and quiet_before(rid): the QUIET ACKs before it
 * succeeded, each settling all its ids (the broker runs a connection's requests in order
 * and would have answered a failure before this reply). Confirm them. Checked first, not
 * while confirming, so that a reply that turns out bad has confirmed nothing. */
static void
confirm_quiet_before(struct slabmq_client *c, uint64_t rid)
{
    struct smq_quiet q;

    while (c->outstanding > 0 && c->first_async < rid && quiet_pop(c, c->first_async, &q)) {
        c->first_async++;
        c->outstanding--;
        c->settling -= c->settling > 0;
        notify_quiet(c, &q, &(slabmq_confirm){q.rid, SLABMQ_OK, q.n, 0, SLABMQ_CONFIRM_DEFAULT});
    }
}

/* The operation of a pipelined reply's op code; 0 for one this library never pipelines. A
 * table: one load per confirmation. */
static slabmq_async_op
async_op(uint64_t op)
{
    static const uint8_t ops[32] = {
        [SMQ_OP_PUBLISH] = SLABMQ_ASYNC_PUBLISH, [SMQ_OP_PUBLISH_BATCH] = SLABMQ_ASYNC_PUBLISH,
        [SMQ_OP_ACK] = SLABMQ_ASYNC_ACK,         [SMQ_OP_NACK] = SLABMQ_ASYNC_NACK,
        [SMQ_OP_TERM] = SLABMQ_ASYNC_TERM,
    };

    return op < sizeof(ops) ? (slabmq_async_op)ops[op] : (slabmq_async_op)0;
}

/* A pipelined request failed: keep the first failure for slabmq_flush(), and a refused
 * publish no callback is told of as the sticky error. */
static void
keep_failure(struct slabmq_client *c, const struct smq_head *h, slabmq_async_op op)
{
    char msg[sizeof(c->async_msg)];

    snprintf(msg, sizeof(msg), "request %llu: %s: %.*s", (unsigned long long)h->id,
             smq_status_message((unsigned)h->status), (int)h->mlen, h->msg);
    if (c->async_err == SLABMQ_OK) {
        c->async_err = (slabmq_status)h->status;
        memcpy(c->async_msg, msg, sizeof(msg));
    }
    if (op == SLABMQ_ASYNC_PUBLISH && !has_callback(c) && c->sticky == SLABMQ_OK) {
        c->sticky = (slabmq_status)h->status;
        memcpy(c->sticky_msg, msg, sizeof(msg));
    }
}

slabmq_status
smq_sticky(struct slabmq_client *c)
{
    if (c->sticky == SLABMQ_OK)
        return SLABMQ_OK;
    return smq_client_fail(c, c->sticky, "%s (a refused pipelined publish; "
                           "slabmq_client_take_error() clears it)", c->sticky_msg);
}

/* Decode one pipelined reply and tell the caller: the id of a publish (and whether it was a
 * duplicate), the count of an ack, or the error. The first error is kept for
 * slabmq_flush(). */
slabmq_status
smq_confirm(struct slabmq_client *c, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    struct smq_head h;
    struct smq_quiet q;
    slabmq_confirm cf = {0, SLABMQ_OK, 0, 0, SLABMQ_CONFIRM_DEFAULT};
    slabmq_async_op op;
    uint64_t count = 1;
    int was_quiet;
    int ahead;

    smq_mpr_init(&r, body, len);
    if (smq_read_head(&r, &h))
        return smq_bad_reply(c, "pipelined reply out of order");
    if (h.op == SMQ_OP_NONE && h.id == 0 && h.status != SLABMQ_OK) {
        c->broken = 1; /* a connection-level error: the broker closes */
        return smq_client_fail(c, (slabmq_status)h.status, "%s: %.*s",
                               smq_status_message((unsigned)h.status), (int)h.mlen, h.msg);
    }
    if (c->outstanding == 0 || h.id < c->first_async || h.id - c->first_async >= c->outstanding
        || !quiet_before(c, h.id)) /* not a reply to an outstanding request */
        return smq_bad_reply(c, "pipelined reply out of order");
    op = async_op(h.op);
    ahead = smq_ahead_expects(c, h.id); /* a FETCH sent ahead: its batch is kept */
    if (h.id != c->ping_rid && op == 0 && !ahead) /* replies, errors too, name the op */
        return smq_bad_reply(c, "pipelined reply of an operation never pipelined");
    confirm_quiet_before(c, h.id);
    was_quiet = quiet_pop(c, h.id, &q); /* a QUIET ACK answered: it failed */
    c->first_async++;
    c->outstanding--;
    c->settling -= (was_quiet || op >= SLABMQ_ASYNC_ACK) && c->settling > 0;
    if (c->settling > c->outstanding) /* a broker that named the wrong ops */
        c->settling = c->outstanding;
    if (ahead) {
        if (h.status != SLABMQ_OK && h.op == SMQ_OP_NONE)
            c->broken = 1; /* a connection-level error: the broker closes */
        return smq_ahead_reply(c, &h, &r);
    }
    if (h.id == c->ping_rid) { /* ours, not the caller's */
        c->ping_rid = 0;
        return h.status == SLABMQ_OK ? SLABMQ_OK
                                     : smq_bad_reply(c, "PING refused");
    }
    cf.request = h.id;
    cf.status = (slabmq_status)h.status;
    if (h.status == SLABMQ_OK && h.n > 3)
        smq_mpr_uint(&r, &cf.value);
    if (h.status == SLABMQ_OK && h.op == SMQ_OP_PUBLISH_BATCH && h.n > 4)
        smq_mpr_uint(&r, &count); /* [first_id, count] */
    if (h.status == SLABMQ_OK && h.op == SMQ_OP_PUBLISH && h.n > 4
        && smq_mpr_bool(&r, &cf.duplicate))
        cf.duplicate = 0; /* not the bool of a publish with options: nothing to report */
    else if (h.status == SLABMQ_OK && h.op == SMQ_OP_PUBLISH && h.n > 5)
        cf.level = smq_read_level(&r);
    if (h.status != SLABMQ_OK)
        keep_failure(c, &h, op);
    if (was_quiet) /* it failed: every call it carries is told */
        notify_quiet(c, &q, &cf);
    else
        notify(c, &cf, op, count);
    if (h.status != SLABMQ_OK && h.op == SMQ_OP_NONE)
        c->broken = 1; /* a connection-level error: the broker closes */
    return SLABMQ_OK;
}

/* Queue a request as pipelined: its reply is read later. */
static void
queued_async(struct slabmq_client *c)
{
    if (c->outstanding++ == 0)
        c->first_async = c->next_rid;
    c->next_rid++;
}

/* Everything outstanding is a QUIET ACK, so no reply is coming: ask for one with a PING and
 * send it. Not on a connection an error left unusable: no reply could be trusted (or come). */
static slabmq_status
ping_for_quiet(struct slabmq_client *c, int64_t deadline)
{
    slabmq_status st;

    if (c->broken)
        return smq_client_fail(c, SLABMQ_ERR_CLOSED,
                               "connection unusable after an earlier error; reconnect");
    smq_req_begin(c, SMQ_OP_PING, 0);
    st = req_end(c);
    if (st)
        return st;
    c->ping_rid = c->next_rid;
    c->qrun = c->qids = 0;
    queued_async(c);
    return smq_send_queued(c, deadline);
}

/* Read pipelined replies until at most 'keep' requests other than settlements and at most
 * 'keep_settle' settlements are outstanding. With 'sync' a synchronous request follows
 * them, whose reply confirms the QUIET ACKs left at the end; without, a PING is sent to
 * confirm them. */
static slabmq_status
read_confirms(struct slabmq_client *c, uint32_t keep, uint32_t keep_settle, int sync,
              int64_t deadline)
{
    while (unsettled_others(c) > keep || (c->settling > keep_settle && c->outstanding > 0)) {
        const uint8_t *body = NULL;
        uint32_t len = 0;
        slabmq_status st;
        if (c->qlen == c->outstanding) {
            if (sync)
                break;
            st = ping_for_quiet(c, deadline);
            if (st)
                return st;
        }
        st = read_frame(c, &body, &len, deadline);
        if (st)
            return st;
        st = smq_confirm(c, body, len);
        if (st)
            return st;
    }
    return SLABMQ_OK;
}

static int64_t
call_deadline(const struct slabmq_client *c, int extra_ms)
{
    return c->timeout_ms > 0 ? smq_now_ms() + c->timeout_ms + extra_ms : 0;
}

/* A limit is reached (or 64 KiB are queued): send what is queued, then read replies until
 * half the window, or half the settlements' limit, is free. The cold half of
 * req_async(). */
static slabmq_status
make_room(struct slabmq_client *c)
{
    int64_t deadline = call_deadline(c, 0); /* the clock is read only when there is I/O */
    slabmq_status st = smq_send_queued(c, deadline);

    if (st == SLABMQ_OK && unsettled_others(c) >= c->window)
        st = read_confirms(c, c->window / 2, UINT32_MAX, 0, deadline);
    if (st == SLABMQ_OK && c->settling >= c->slimit)
        st = read_confirms(c, UINT32_MAX, c->slimit / 2, 0, deadline);
    return st;
}

/* smq_req_async(), for a settlement with 'settle', a QUIET ACK of 'quiet' ids when quiet
 * is not UINT64_MAX. */
static slabmq_status
req_async(struct slabmq_client *c, uint64_t *rid, int settle, uint64_t quiet)
{
    slabmq_status st;

    if (c->broken) {
        c->wlen = c->wstart;
        return smq_client_fail(c, SLABMQ_ERR_CLOSED,
                               "connection unusable after an earlier error; reconnect");
    }
    st = req_end(c);
    if (st)
        return st;
    if (rid)
        *rid = c->next_rid;
    if (quiet != UINT64_MAX) { /* room was reserved: smq_quiet_reserve() */
        c->quiet[(c->qhead + c->qlen++) % c->qcap] = (struct smq_quiet){c->next_rid, quiet, 1};
        c->qrun++;
        c->qids += quiet;
    } else {
        c->qrun = c->qids = 0;
    }
    c->settling += (uint32_t)settle;
    queued_async(c);
    /* one send per 64 KiB of requests, and replies read in batches: half a limit at once;
     * settlements and the rest each against their own limit */
    if (c->wlen >= 65536 || unsettled_others(c) >= c->window || c->settling >= c->slimit)
        return make_room(c);
    return SLABMQ_OK;
}

slabmq_status
smq_req_grew(struct slabmq_client *c)
{
    return c->wlen >= 65536 ? make_room(c) : SLABMQ_OK;
}

slabmq_status
smq_req_async(struct slabmq_client *c, uint64_t *rid)
{
    return req_async(c, rid, 0, UINT64_MAX);
}

slabmq_status
smq_req_async_settle(struct slabmq_client *c, uint64_t *rid)
{
    return req_async(c, rid, 1, UINT64_MAX);
}

slabmq_status
smq_req_async_quiet(struct slabmq_client *c, uint64_t *rid, uint64_t n)
{
    return req_async(c, rid, 1, n);
}

slabmq_status
smq_call(struct slabmq_client *c, unsigned op, int extra_ms, struct smq_mpr *r,
         uint32_t *nresults)
{
    int64_t deadline = call_deadline(c, extra_ms);
    uint64_t rid = c->next_rid; /* the request carries it already (smq_req_begin) */
    const uint8_t *body = NULL;
    uint32_t len;
    slabmq_status st;

    *nresults = 0; /* no caller reads an unset count, whatever the path */
    if (c->broken) {
        c->wlen = c->wstart;
        return smq_client_fail(c, SLABMQ_ERR_CLOSED,
                               "connection unusable after an earlier error; reconnect");
    }
    st = req_end(c);
    if (st) /* dropped unsent: its id goes to the next request, so pipelined ids stay
               consecutive (queued_async() and the confirmations count on it) */
        return st;
    c->next_rid++;
    /* pipelined requests still queued go out in the same send, their replies come first */
    st = smq_send_queued(c, deadline);
    if (st == SLABMQ_OK)
        st = read_confirms(c, 0, 0, 1, deadline);
    if (st)
        return st;
    if (c->rstart == c->rlen)
        c->rstart = c->rlen = 0;
    for (;;) { /* only QUIET ACKs are outstanding now: their errors may come first */
        struct smq_head h;
        st = read_frame(c, &body, &len, deadline);
        if (st)
            return st;
        smq_mpr_init(r, body, len);
        if (smq_read_head(r, &h)) /* no request id: it confirms nothing */
            return smq_bad_reply(c, "not [op, request_id, status, ...]");
        if (c->outstanding == 0 || h.id == rid)
            break;
        st = smq_confirm(c, body, len);
        if (st)
            return st;
    }
    if (!quiet_before(c, rid))
        return smq_bad_reply(c, "pipelined reply out of order");
    confirm_quiet_before(c, rid); /* this reply confirms the rest */
    smq_mpr_init(r, body, len);
    return parse_reply(c, op, rid, r, nresults);
}

int
smq_next_buffered(struct slabmq_client *c, const uint8_t **body, uint32_t *len)
{
    size_t total;

    if (c->rlen - c->rstart < SMQ_FRAME_HEADER)
        return 0; /* not even a header yet; rbuf is NULL before the first read */
    switch (smq_frame_decode(c->rbuf + c->rstart, c->rlen - c->rstart, SMQ_CLIENT_MAX_REPLY,
                             body, len, &total)) {
    case SMQ_FRAME_OK:
        c->rstart += total;
        return 1;
    case SMQ_FRAME_NEED_MORE:
        return 0;
    default:
        smq_bad_reply(c, "frame length");
        return -1;
    }
}

slabmq_status
smq_recv_some(struct slabmq_client *c)
{
    ssize_t n;

    if (c->rstart > 0) { /* make room at the end for what may have arrived */
        memmove(c->rbuf, c->rbuf + c->rstart, c->rlen - c->rstart);
        c->rlen -= c->rstart;
        c->rstart = 0;
    }
    /* as in fill(): grow by what arrived (doubling once full), never to the length a frame
     * header declares, which 4 bytes from a broken or hostile peer could set to 1 GiB */
    if (c->rlen == c->rcap && grow_rbuf(c, c->rcap ? c->rcap * 2 : 65536))
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for a reply");
    n = smq_io_recv(c, c->rbuf + c->rlen, c->rcap - c->rlen); /* the socket is non-blocking */
    if (n == 0)
        return smq_client_fail(c, SLABMQ_ERR_CLOSED, "connection closed by the broker");
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return SLABMQ_OK;
        return smq_client_fail(c, SLABMQ_ERR_IO, "receive failed: %s",
                               smq_io_strerror(c, errno));
    }
    c->rlen += (size_t)n;
    return SLABMQ_OK;
}

/* Read the pipelined replies that have already arrived, without waiting for more;
 * subscription pushes among them are kept for slabmq_receive(). */
static slabmq_status
read_arrived(struct slabmq_client *c)
{
    int read_once = 0;

    while (c->outstanding > 0) {
        const uint8_t *b;
        uint32_t len;
        size_t avail = c->rlen - c->rstart;
        slabmq_status st;
        int got = smq_next_buffered(c, &b, &len);
        if (got < 0)
            return (slabmq_status)c->last;
        if (got > 0) {
            st = smq_is_deliver(b, len) ? smq_push_deliver(c, b, len) : smq_confirm(c, b, len);
            if (st)
                return st;
            continue;
        }
        if (read_once && c->rdrained)
            return SLABMQ_OK; /* that read took all there was */
        st = smq_recv_some(c);
        read_once = 1;
        if (st || c->rlen - c->rstart == avail)
            return st; /* nothing more has arrived */
    }
    return SLABMQ_OK;
}

slabmq_status
smq_send_now(struct slabmq_client *c)
{
    return smq_send_queued(c, call_deadline(c, 0));
}

SLABMQ_API slabmq_status
slabmq_send(slabmq_client *c)
{
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    st = smq_send_queued(c, call_deadline(c, 0));
    if (st == SLABMQ_OK && c->rcap == 0 && grow_rbuf(c, 65536))
        st = smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for replies");
    if (st == SLABMQ_OK)
        st = read_arrived(c);
    return st ? st : smq_sticky(c);
}

SLABMQ_API slabmq_status
slabmq_flush(slabmq_client *c)
{
    int64_t deadline;
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    deadline = call_deadline(c, 0);
    st = smq_send_queued(c, deadline);
    if (st == SLABMQ_OK)
        st = read_confirms(c, 0, 0, 0, deadline);
    if (st)
        return st;
    c->sticky = SLABMQ_OK; /* reported below: it is the first failure or came after it */
    st = c->async_err;
    if (st) {
        snprintf(c->err, sizeof(c->err), "%s", c->async_msg);
        c->async_err = SLABMQ_OK;
    }
    return st;
}

SLABMQ_API void
slabmq_client_set_window(slabmq_client *c, uint32_t window)
{
    if (c) {
        c->window = window < 1 ? 1 : window;
        set_limits(c);
    }
}

SLABMQ_API void
slabmq_client_on_confirm(slabmq_client *c, slabmq_confirm_cb cb, void *arg)
{
    if (c) {
        c->on_confirm = cb;
        c->confirm_arg = arg;
    }
}

SLABMQ_API void
slabmq_client_on_confirm_ex(slabmq_client *c, slabmq_confirm_ex_cb cb, void *arg)
{
    if (c) {
        c->on_confirm_ex = cb;
        c->confirm_ex_arg = arg;
    }
}

SLABMQ_API void
slabmq_client_on_confirmation(slabmq_client *c, slabmq_confirmation_cb cb, void *user)
{
    if (c) {
        c->on_confirmation = cb;
        c->confirmation_arg = user;
    }
}

SLABMQ_API uint64_t
slabmq_client_outstanding(const slabmq_client *c)
{
    return c ? c->outstanding : 0;
}

SLABMQ_API slabmq_status
slabmq_client_take_error(slabmq_client *c)
{
    slabmq_status st;

    if (!c || c->sticky == SLABMQ_OK)
        return SLABMQ_OK;
    st = smq_sticky(c);
    if (c->async_err == st && strcmp(c->async_msg, c->sticky_msg) == 0)
        c->async_err = SLABMQ_OK; /* read here: the next flush does not report it again */
    c->sticky = SLABMQ_OK;
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Connecting                                                                                */

/* Connect fd-by-fd through the addresses of host:port until one answers. */
static slabmq_status
open_socket(struct slabmq_client *c, const slabmq_options *o, int64_t deadline)
{
    struct addrinfo hints = {0};
    struct addrinfo *res;
    char port[8];
    int rc;
    int saved = ECONNREFUSED;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL; /* an IPv6 address: print it in brackets */

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        return smq_client_fail(c, SLABMQ_ERR_CONNECT, "cannot resolve %s: %s", host,
                               gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        int err = 0;
        socklen_t elen = sizeof(err);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
            || (errno == EINPROGRESS && smq_wait_fd(fd, POLLOUT, deadline) == 1
                && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->fd = fd;
            freeaddrinfo(res);
            return SLABMQ_OK;
        }
        saved = err ? err : errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
    }
    freeaddrinfo(res);
    return smq_client_fail(c, SLABMQ_ERR_CONNECT, "cannot connect to %s%s%s:%u: %s",
                           v6 ? "[" : "", host, v6 ? "]" : "", o->port, strerror(saved));
}

slabmq_status
smq_client_hello(struct slabmq_client *c, const char *name, int *auth)
{
    struct smq_mpr r;
    uint32_t n;
    uint64_t version;
    const char *server;
    uint32_t slen;
    uint64_t max_msg;
    uint64_t max_frame;
    slabmq_status st;

    *auth = 0;
    c->max_frame = UINT32_MAX;
    smq_req_begin(c, SMQ_OP_HELLO, 2);
    msgpack_pack_uint32(&c->pk, SLABMQ_PROTOCOL_VERSION);
    smq_pack_str(c, name ? name : "libslabmq");
    st = smq_call(c, SMQ_OP_HELLO, 0, &r, &n);
    if (st)
        return st;
    if (n < 4 || smq_mpr_uint(&r, &version) || smq_mpr_str(&r, &server, &slen)
        || smq_mpr_uint(&r, &max_msg) || smq_mpr_uint(&r, &max_frame) || max_msg > UINT32_MAX
        || max_frame > UINT32_MAX)
        return smq_bad_reply(c, "HELLO");
    c->max_message = (uint32_t)max_msg;
    c->max_frame = (uint32_t)max_frame;
    if (n >= 6) { /* brokers since 0.1 announce the FETCH byte cap and the in-flight window */
        uint64_t fetch;
        uint64_t window;
        if (smq_mpr_uint(&r, &fetch) || smq_mpr_uint(&r, &window) || window > UINT32_MAX)
            return smq_bad_reply(c, "HELLO");
        c->max_fetch = fetch;
        c->max_inflight = (uint32_t)window;
    }
    set_limits(c);
    if (n >= 7 && smq_mpr_bool(&r, auth)) /* and whether AUTH must follow */
        return smq_bad_reply(c, "HELLO");
    c->features = 0;
    if (n >= 8) { /* and what it takes beyond version 1's first form */
        uint64_t f;
        if (smq_mpr_uint(&r, &f))
            return smq_bad_reply(c, "HELLO");
        c->features = (uint32_t)f;
    }
    return SLABMQ_OK;
}

struct slabmq_client *
smq_client_new(int timeout_ms)
{
    struct slabmq_client *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    c->next_rid = 1;
    c->window = 1024;
    set_limits(c);
    c->pushed_end = &c->pushed;
    msgpack_packer_init(&c->pk, c, wbuf_write);
    return c;
}

/* AUTH with the options' credentials, or those of the environment (see slabmq_options). */
static slabmq_status
authenticate(struct slabmq_client *c, const slabmq_options *o)
{
    const char *user = o->user ? o->user : getenv("SLABMQ_USER");
    const char *pw = o->password ? o->password : getenv("SLABMQ_PASSWORD");
    struct smq_mpr r;
    uint32_t n;
    slabmq_status st;

    if (!user || !*user)
        return smq_client_fail(c, SLABMQ_ERR_AUTH,
                               "the broker requires authentication: give a user and password "
                               "(options, or SLABMQ_USER and SLABMQ_PASSWORD)");
    if (strlen(user) > 64 || (pw && strlen(pw) > 1024))
        return smq_client_fail(c, SLABMQ_ERR_ARG,
                               "user name over 64 bytes or password over 1024 bytes");
    smq_req_begin(c, SMQ_OP_AUTH, 2);
    smq_pack_str(c, user);
    smq_pack_str(c, pw ? pw : "");
    st = smq_call(c, SMQ_OP_AUTH, 0, &r, &n);
    if (c->wbuf) /* the password is sent: keep no copy of it */
        memset(c->wbuf, 0, c->wcap);
    return st;
}

SLABMQ_API void
slabmq_options_init(slabmq_options *o)
{
    static const slabmq_options defaults = {
        .host = "127.0.0.1", .port = SLABMQ_DEFAULT_PORT, .timeout_ms = 5000};

    *o = defaults;
}

SLABMQ_API void
slabmq_tls_options_init(slabmq_tls_options *t)
{
    memset(t, 0, sizeof(*t));
}

SLABMQ_API slabmq_status
slabmq_client_connect_errbuf(const slabmq_options *o, slabmq_client **out, char *errbuf,
                             size_t errlen)
{
    slabmq_options defaults;
    struct slabmq_client *c;
    slabmq_status st;
    int64_t deadline;
    int auth;

    *out = NULL;
    slabmq_options_init(&defaults);
    if (!o)
        o = &defaults;
    if (o->client_name && strlen(o->client_name) > 64) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "client name longer than 64 bytes");
        return SLABMQ_ERR_ARG;
    }
    c = smq_client_new(o->timeout_ms);
    if (!c) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory");
        return SLABMQ_ERR_CLIENT_NOMEM;
    }
    deadline = o->timeout_ms > 0 ? smq_now_ms() + o->timeout_ms : 0;
    st = open_socket(c, o, deadline);
    if (st == SLABMQ_OK && o->tls)
        st = smq_io_tls_start(c, o->tls, o->host ? o->host : "127.0.0.1", deadline);
    if (st == SLABMQ_OK)
        st = smq_client_hello(c, o->client_name, &auth);
    if (st == SLABMQ_OK && auth)
        st = authenticate(c, o);
    if (st) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", c->err);
        slabmq_client_close(c);
        return st;
    }
    *out = c;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_client_connect(const slabmq_options *o, slabmq_client **out)
{
    return slabmq_client_connect_errbuf(o, out, NULL, 0);
}

/* The 0.2 name of slabmq_client_connect_errbuf(), exported for programs linked against
 * libslabmq.so.1; slabmq.h marks it deprecated. Costs one jump per connect. */
SLABMQ_API slabmq_status
slabmq_client_connect2(const slabmq_options *o, slabmq_client **out, char *errbuf,
                       size_t errlen)
{
    return slabmq_client_connect_errbuf(o, out, errbuf, errlen);
}

SLABMQ_API void
slabmq_client_close(slabmq_client *c)
{
    if (!c)
        return;
    smq_io_close(c);
    smq_subs_free(c);
    smq_ahead_free(c);
    free(c->quiet);
    free(c->wbuf);
    free(c->rbuf);
    free(c);
}
