/* SPDX-License-Identifier: MIT */
/* Connection I/O; see conn.h. A read callback reads at most CONN_READ_ROUNDS buffers so one
 * busy client cannot starve the rest, handles every complete frame, then writes once. */
#include "net/conn.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/broker.h"
#include "req/dispatch.h"
#include "frame.h"
#include "net/guard.h"
#include "util/log.h"
#include "mem/mem.h"
#include "ops.h"
#include "req/reply.h"
#include "mem/reservoir.h"
#include "net/server.h"
#include "slabmq_protocol.h"
#include "store/store.h"
#include "req/sub.h"
#include "net/tls.h"
#include "req/wait.h"

#define CONN_READ_SIZE (64u * 1024)
/* One buffer (64 KiB) per callback, then the replies go out and the loop turns to the other
 * connections (reads are level-triggered: what is left is read at the next turn), as Redis
 * reads at most 16 KiB per client per turn. Four buffers a callback kept a FETCH waiting
 * behind up to 256 KiB of a producer's publishes, and that producer's confirmations behind
 * them: with 256-byte messages and a window of 1,024, a FETCH of 512 ran at 0.80 of a FETCH
 * of 1,024 (0.91 with one), and a producer alone at 3.70M msg/s (4.93M with one); 16-byte
 * publishing did not change (medians of 3 alternated runs, docs/performance.md). */
#define CONN_READ_ROUNDS 1
#define CONN_CLOSE_GRACE_S 2 /* how long a closing connection may take to drain */
/* TLS: output handed to the bufferevent at a time. The rest waits in c->req.out, under the
 * output cap and the memory limit like a plain connection's; this much more sits in
 * libevent's buffer (outside them) until OpenSSL has encrypted and written it. */
#define CONN_TLS_OUT_CHUNK (64u * 1024)

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct conn *c);
static int conn_flush(struct conn *c);
static void conn_tls_read_cb(struct bufferevent *bev, void *arg);
static void conn_tls_write_cb(struct bufferevent *bev, void *arg);
static void conn_tls_event_cb(struct bufferevent *bev, short what, void *arg);

void
conn_accept(struct server *s, int fd, const char *peer, int tls)
{
    struct conn *c = slab_alloc_reserved(&s->b.rec, sizeof(*c));
    struct bufferevent *bev = NULL;
    int one = 1;

    if (!c) {
        log_warn("refusing connection from %s: memory limit", peer);
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (tls && !(bev = tls_accept(s, fd))) { /* fd is closed */
        log_warn("refusing TLS connection from %s: cannot set up TLS", peer);
        slab_free(&s->b.rec, c, sizeof(*c));
        return;
    }
    memset(c, 0, sizeof(*c));
    req_init(&c->req, &s->rs, ++s->next_conn_id, peer);
    c->srv = s;
    c->fd = fd;
    dlist_init(&c->plink);
    dlist_init(&c->blink);
    dlist_push_back(&s->conns, &c->link);
    s->rs.n.nconns++;
    s->rs.n.conns_total++;
    if (bev) {
        /* The bufferevent watches the socket; rev and wev watch nothing and are only made
         * active (or given the frame deadline), so the code below serves both kinds. */
        c->bev = bev;
        s->rs.n.tls_conns++;
        event_assign(&c->rev, s->base, -1, EV_PERSIST, conn_read_cb, c); /* a persistent
                                                  timer, as the frame deadline needs */
        event_assign(&c->wev, s->base, -1, 0, conn_write_cb, c);
        bufferevent_setcb(bev, conn_tls_read_cb, conn_tls_write_cb, conn_tls_event_cb, c);
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    } else {
        event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
        event_assign(&c->wev, s->base, fd, EV_WRITE, conn_write_cb, c);
        event_add(&c->rev, NULL);
    }
    guard_conn_open(c);
    log_debug("connection %llu open from %s", (unsigned long long)c->req.id, c->req.peer);
}

void
conn_close(struct conn *c)
{
    struct server *s = c->srv;

    if (c->in_dispatch) { /* the frame loop still uses c: finish there */
        c->dead = 1;
        return;
    }
    if (c->paused & CONN_PAUSE_MEMORY)
        dlist_unlink(&c->plink);
    if (c->paused & CONN_PAUSE_STORE)
        dlist_unlink(&c->stlink);
    dlist_unlink(&c->blink);
    req_deinit(&c->req);
    event_del(&c->rev);
    event_del(&c->wev);
    if (c->bev) {
        s->rs.n.tls_conns--;
        if (!c->tls_up)
            s->rs.n.tls_handshake_failures++;
        tls_close(c->bev);
    } else {
        close(c->fd);
    }
    reservoir_put(&s->b.res, c->in);
    dlist_unlink(&c->link);
    guard_conn_close(c);
    s->rs.n.nconns--;
    log_debug("connection %llu from %s closed", (unsigned long long)c->req.id, c->req.peer);
    slab_free(&s->b.rec, c, sizeof(*c));
    server_arm_timer(s);
    if (s->stopping && dlist_empty(&s->conns)) /* the last one drained: shutdown is done */
        event_base_loopbreak(s->base);
}

void
conn_shutdown(struct conn *c)
{
    wait_shutdown_req(&c->req);
    sub_shutdown_req(&c->req);
    reply_error(&c->req, SMQ_OP_NONE, 0, SLABMQ_ERR_SHUTDOWN, "broker is shutting down");
    conn_close_after_write(c);
}

void
conn_drain_all(struct server *s)
{
    struct dlink *l = s->conns.next;

    while (l != &s->conns) {
        struct conn *c = DLIST_ENTRY(l, struct conn, link);
        l = l->next;
        conn_flush(c); /* closes c once its output is written */
    }
    if (dlist_empty(&s->conns))
        event_base_loopbreak(s->base);
}

/* TLS: hand what may be written to the bufferevent, up to CONN_TLS_OUT_CHUNK queued there. */
static ssize_t
tls_sink(void *ctx, const struct iovec *iov, int n)
{
    struct evbuffer *out = bufferevent_get_output(ctx);
    size_t queued = evbuffer_get_length(out);
    size_t taken = 0;

    for (int i = 0; i < n && queued + taken < CONN_TLS_OUT_CHUNK; i++) {
        size_t k = iov[i].iov_len;
        if (k > CONN_TLS_OUT_CHUNK - queued - taken)
            k = CONN_TLS_OUT_CHUNK - queued - taken;
        if (evbuffer_add(out, iov[i].iov_base, k))
            break;
        taken += k;
    }
    if (taken == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)taken;
}

/* Write (or for TLS, hand over) what is pending. Returns the bytes still to go (for TLS
 * including what the bufferevent has not written yet), or -1 on a write error. */
static long
out_flush(struct conn *c)
{
    long left;

    if (!c->bev)
        return obuf_flush(&c->req.out, c->fd);
    left = obuf_drain(&c->req.out, tls_sink, c->bev);
    return left < 0 ? left : left + (long)evbuffer_get_length(bufferevent_get_output(c->bev));
}

void
conn_try_write(struct conn *c)
{
    if (c->req.closing || out_flush(c) != 0)
        conn_want_write(c);
}

void
conn_write_batched(struct conn *c)
{
    struct server *s = c->srv;

    if (!s->batching)
        conn_try_write(c);
    else if (dlist_empty(&c->blink))
        dlist_push_back(&s->batched, &c->blink);
}

/* The frames being handled are done: write the pushes made for them, one write per
 * connection. A connection whose pushes were held back at SUB_OUT_MAX goes through the
 * write event, which serves its subscriptions again once its output drains. */
static void
write_batched(struct server *s)
{
    while (!dlist_empty(&s->batched)) {
        struct conn *c = DLIST_ENTRY(s->batched.next, struct conn, blink);
        dlist_unlink(&c->blink);
        conn_try_write(c);
        if (c->req.sub_blocked)
            conn_want_write(c);
    }
}

void
conn_want_write(struct conn *c)
{
    if (c->req.closing || event_pending(&c->wev, EV_WRITE, NULL))
        return;
    if (c->bev) /* flushed from the loop, as the plain socket's write event would be */
        event_active(&c->wev, EV_WRITE, 0);
    else
        event_add(&c->wev, NULL);
}

/* Stop (or start again) taking input from the socket. */
static void
reading(struct conn *c, int on)
{
    if (on)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
    if (c->bev)
        (on ? bufferevent_enable : bufferevent_disable)(c->bev, EV_READ);
}

void
conn_close_after_write(struct conn *c)
{
    c->req.closing = 1;
    reading(c, 0);
}

void
conn_close_with_error(struct conn *c, uint64_t op, uint64_t rid, unsigned code,
                      const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is above; a clang 14 defect (llvm/llvm-project#40656)
    va_end(ap);
    reply_error(&c->req, op, rid, code, "%s", msg);
    conn_close_after_write(c);
    conn_flush(c);
}

/* ---------------------------------------------------------------------------------------- */
/* Pausing                                                                                   */

/* Stop reading c: its output is over the cap (CONN_PAUSE_OUTPUT, resumed when it drains) or
 * the broker is at its memory limit (CONN_PAUSE_MEMORY, resumed by conn_resume_memory). */
static void
pause_reading(struct conn *c, uint8_t why)
{
    if (!c->paused)
        reading(c, 0);
    c->deadline_armed = 0;
    if ((why & CONN_PAUSE_MEMORY) && !(c->paused & CONN_PAUSE_MEMORY))
        dlist_push_back(&c->srv->mem_paused, &c->plink);
    c->paused |= why;
}

void
conn_hold(struct conn *c)
{
    pause_reading(c, CONN_PAUSE_AUTH);
}

/* Something happened on c's socket while its AUTH check is pending: close c if the peer
 * ended its side or reset the connection; new bytes wait. */
static void
conn_gone_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    char b;
    ssize_t n;

    if (!(what & EV_CLOSED)) { /* epoll reports a reset as readable, not as EV_CLOSED */
        n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
            return;
    }
    log_debug("connection %llu from %s: closed by the peer during its AUTH check",
              (unsigned long long)c->req.id, c->req.peer);
    conn_close(c); /* cancels the check: a queued one then costs no hash */
}

/* While the check is pending, rev watches only for the peer's close, edge-triggered so that
 * bytes sent meanwhile wake it once and stay unread: a guesser that gives up is forgotten at
 * once instead of being hashed for. A peer that ends its side after AUTH without waiting for
 * the answer does not get it. TLS connections are left to their bufferevent. */
static void
check_wait(struct conn *c)
{
    pause_reading(c, CONN_PAUSE_CHECK);
    if (c->bev)
        return;
    event_assign(&c->rev, c->srv->base, c->fd, EV_READ | EV_CLOSED | EV_ET | EV_PERSIST,
                 conn_gone_cb, c);
    event_add(&c->rev, NULL);
}

/* Clear 'why'; once nothing holds c, read again and handle frames buffered meanwhile (the
 * read callback would not fire for bytes already read). */
static void
resume_reading(struct conn *c, uint8_t why)
{
    if (why & CONN_PAUSE_MEMORY)
        dlist_unlink(&c->plink);
    if (why & CONN_PAUSE_STORE)
        dlist_unlink(&c->stlink);
    c->paused &= (uint8_t)~why;
    if (c->paused || c->req.closing)
        return;
    reading(c, 1);
    c->deadline_armed = 0;
    if (c->partial_since) /* the broker held it up: the frame deadline starts again */
        c->partial_since = c->srv->b.now_ms;
    event_active(&c->rev, EV_READ, 0);
}

static void
check_done(struct conn *c)
{
    if (!c->bev) {
        event_del(&c->rev);
        event_assign(&c->rev, c->srv->base, c->fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    }
    resume_reading(c, CONN_PAUSE_CHECK);
}

/* ---------------------------------------------------------------------------------------- */
/* The request layer's way back (struct req_ops): each is one call per reply or batch        */

static void
req_want_write_op(struct req *rq)
{
    conn_want_write(conn_of(rq));
}

static void
req_try_write_op(struct req *rq)
{
    conn_try_write(conn_of(rq));
}

static void
req_write_batched_op(struct req *rq)
{
    conn_write_batched(conn_of(rq));
}

static void
req_close_op(struct req *rq)
{
    conn_close(conn_of(rq));
}

static void
req_check_done_op(struct req *rq)
{
    check_done(conn_of(rq));
}

static void
req_handshake_done_op(struct req *rq)
{
    guard_handshake_done(conn_of(rq));
}

static void
req_auth_failed_op(struct req *rq, uint64_t rid, enum req_refusal why)
{
    guard_auth_failed(conn_of(rq), rid, why);
}

static void
req_log_refusal_op(struct req *rq, const char *line)
{
    guard_log_refusal(conn_of(rq)->srv, "%s", line);
}

const struct req_ops conn_req_ops = {
    .want_write = req_want_write_op,
    .try_write = req_try_write_op,
    .write_batched = req_write_batched_op,
    .close = req_close_op,
    .check_done = req_check_done_op,
    .handshake_done = req_handshake_done_op,
    .auth_failed = req_auth_failed_op,
    .log_refusal = req_log_refusal_op,
};

/* Past the limit by more than the headroom, replies nobody reads are what holds the memory:
 * close the connection with the most unread output (a slow consumer), as Redis does at its
 * client output hard limit. Its in-flight messages go back to their queues. */
static void
shed_slow_readers(struct server *s)
{
    while (broker_mem_busy(&s->b) > s->b.mem.limit + s->b.mem.headroom) {
        struct conn *worst = NULL;
        for (struct dlink *l = s->conns.next; l != &s->conns; l = l->next) {
            struct conn *c = DLIST_ENTRY(l, struct conn, link);
            if (!worst || c->req.out.len > worst->req.out.len)
                worst = c;
        }
        if (!worst || worst->req.out.len < RES_MIN_SIZE)
            return;
        log_warn("connection %llu from %s: closing, %zu bytes of replies unread while the "
                 "broker is over its memory limit", (unsigned long long)worst->req.id,
                 worst->req.peer, worst->req.out.len);
        s->rs.n.slow_closed++;
        conn_close(worst);
    }
}

void
conn_resume_store(struct server *s)
{
    struct dlink *l = s->store_paused.next;

    while (l != &s->store_paused && store_has_room(s->b.store, s->b.cfg.max_message_size)) {
        struct conn *c = DLIST_ENTRY(l, struct conn, stlink);
        l = l->next;
        resume_reading(c, CONN_PAUSE_STORE);
    }
}

void
conn_resume_memory(struct server *s)
{
    shed_slow_readers(s);
    if (!s->b.defer_wake)
        broker_serve_wake(&s->b);
    struct dlink *l = s->mem_paused.next;

    while (l != &s->mem_paused && !broker_over_limit(&s->b)) {
        struct conn *c = DLIST_ENTRY(l, struct conn, plink);
        l = l->next;
        /* one waiting for a buffer resumes when that much can be had, not before (no
         * spinning): free memory plus what idle buffers and pages give back */
        if (c->need_mem + broker_mem_busy(&s->b) <= s->b.mem.limit)
            resume_reading(c, CONN_PAUSE_MEMORY);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

/* Make sure c->in can take more bytes. A buffer grows to a frame's full size only once it
 * is full of that frame, so by then conn_process has seen the frame's op and admission has
 * had its say. Returns 0, or -1 when the memory for the buffer is not there (c->need_mem
 * then says how much is wanted). */
static int
ensure_in(struct conn *c)
{
    struct rbuf *in = c->in;
    size_t avail;
    size_t need = CONN_READ_SIZE;
    const uint8_t *body;
    uint32_t blen;
    size_t total = 0;

    if (!in) {
        /* Reading the next request must always be possible: it may be the ACK that frees
         * memory. At the limit the buffer is the smallest class, taken even past it. */
        int over = broker_over_limit(&c->srv->b) || mem_free_bytes(&c->srv->b.mem) < need;
        c->in = reservoir_get(&c->srv->b.res, over ? RES_MIN_SIZE : need, over);
        c->need_mem = c->in ? 0 : need;
        return c->in ? 0 : -1;
    }
    if (in->len < in->cap)
        return 0;
    avail = in->len - in->start;
    if (!c->discard) /* while skipping, the bytes are not a frame header */
        smq_frame_decode(in->data + in->start, avail, UINT32_MAX, &body, &blen, &total);
    if (total > need)
        need = total;
    if (need <= in->cap) { /* room enough once compacted */
        memmove(in->data, in->data + in->start, avail);
        in->start = 0;
        in->len = (uint32_t)avail;
        return 0;
    }
    c->in = reservoir_get(&c->srv->b.res, need, 0);
    if (!c->in) {
        c->in = in;
        c->need_mem = need;
        return -1;
    }
    c->need_mem = 0;
    memcpy(c->in->data, in->data + in->start, avail);
    c->in->len = (uint32_t)avail;
    reservoir_put(&c->srv->b.res, in);
    return 0;
}

/* Drop input bytes of a frame refused from its header. */
static void
discard_input(struct conn *c)
{
    struct rbuf *in = c->in;
    size_t k = in->len - in->start;

    if (k > c->discard)
        k = c->discard;
    in->start += (uint32_t)k;
    c->discard -= k;
}

/* A frame header is buffered but not the whole frame: decide whether to read on. */
static void
frame_pending(struct conn *c, size_t total, uint32_t blen)
{
    struct rbuf *in = c->in;
    size_t have = in->len - in->start;

    if (total <= in->cap - in->start || have < SMQ_FRAME_HEADER + 24)
        return; /* fits the buffer, or too little of the body to know its op yet */
    if (dispatch_admit(&c->req, in->data + in->start + SMQ_FRAME_HEADER,
                       have - SMQ_FRAME_HEADER, blen)) {
        c->discard = SMQ_FRAME_HEADER + (size_t)blen; /* refused: skip it as it arrives */
        discard_input(c);
    }
}

/* Do what the request just handled asked of the connection (req.next), when it asked for
 * anything: take_next() tests the byte inline (2 instructions a frame; a call here for
 * every frame cost 15, +4% on an ACK frame, tools/callgrind-hotpath.sh). */
static void __attribute__((noinline))
act_on_next(struct conn *c)
{
    switch ((enum req_next)c->req.next) {
    case REQ_GO_ON:
        return;
    case REQ_CLOSE_AFTER_WRITE:
        conn_close_after_write(c);
        break;
    case REQ_HOLD:
        check_wait(c);
        break;
    }
    c->req.next = REQ_GO_ON;
}

static inline void
take_next(struct conn *c)
{
    if (c->req.next)
        act_on_next(c);
}

/* Prefetching ahead of the frame being handled. One producer spreading its publishes over
 * many queues makes every publish name a queue that is not in the cache: its registry slot
 * and then the queue's lines are misses in a row, about 0.33 us of broker CPU a publish over
 * 100,000 queues against 0.07 over one (slabmq-bench --spread). The frames of a read are all
 * there, so the misses of the next ones can be under way while this one is handled: the
 * slot of the queue named PF_SLOT_AHEAD frames ahead starts loading, and, once that has had
 * time to arrive, the queue's lines PF_QUEUE_AHEAD frames ahead (0.15 us a publish then;
 * the distances matter little between 16/4 and 64/24). Costs about 130 instructions a frame
 * when on (a second look at the frame's header, a hash, the slot), nothing when off: off
 * below PF_MIN_QUEUES queues, whose lines stay in the L2 cache (at 1,000 queues it cost
 * more than it saved), and for a frame naming the queue of the frame before it. The hash of
 * the frame being handled goes on to its lookup (req.hint_*, set around dispatch_frame and
 * cleared after it, as the buffer's bytes may change): one hash a publish, not two. */
#define PF_SLOT_AHEAD 32 /* a power of 2: the ring's size */
#define PF_QUEUE_AHEAD 12
#define PF_MIN_QUEUES 4096

struct prefetch {
    size_t off;             /* bytes after in->start scanned already */
    uint32_t ahead;         /* frames scanned and not handled yet */
    uint32_t head;          /* ring index of the next frame to handle */
    int stop;               /* a frame could not be scanned: no further in this call */
    const char *last;       /* the name of the last frame scanned that had one */
    uint32_t last_len;
    uint32_t hash[PF_SLOT_AHEAD];
    const char *name[PF_SLOT_AHEAD]; /* where hash[]'s name is in c->in, and its length: */
    uint32_t nlen[PF_SLOT_AHEAD];    /* for the handler's lookup (req.hint_*), not hashed twice */
    uint8_t named[PF_SLOT_AHEAD]; /* hash[] is set: a queue to prefetch */
};

/* Probably the name of the frame scanned before: the same length and last 8 bytes (or all
 * of a shorter name). A wrong guess costs only a prefetch, made or missed. */
static inline int
same_name(const struct prefetch *pf, const char *name, uint32_t nlen)
{
    uint64_t x = 0;
    uint64_t y = 0;

    if (nlen != pf->last_len)
        return 0;
    if (nlen >= 8) {
        memcpy(&x, name + nlen - 8, 8);
        memcpy(&y, pf->last + nlen - 8, 8);
        return x == y;
    }
    for (uint32_t i = 0; i < nlen; i++) {
        x = x << 8 | (uint8_t)name[i];
        y = y << 8 | (uint8_t)pf->last[i];
    }
    return x == y;
}

/* Scan up to PF_SLOT_AHEAD frames ahead of the one at in->start, starting their loads. Not
 * inlined, nor prefetch_next: in the frame loop they cost registers, and instructions on a
 * connection that does not prefetch. */
static void __attribute__((noinline))
prefetch_scan(struct conn *c, struct prefetch *pf, uint32_t max_body)
{
    struct rbuf *in = c->in;
    const struct broker *b = &c->srv->b;

    while (!pf->stop && pf->ahead < PF_SLOT_AHEAD) {
        uint32_t i = (pf->head + pf->ahead) & (PF_SLOT_AHEAD - 1);
        size_t at = in->start + pf->off;
        const uint8_t *body;
        const char *name;
        uint32_t blen;
        uint32_t nlen;
        size_t total;
        if (smq_frame_decode(in->data + at, in->len - at, max_body, &body, &blen, &total)
            != SMQ_FRAME_OK) {
            pf->stop = 1;
            return;
        }
        pf->named[i] = 0;
        if (dispatch_queue_name(body, blen, &name, &nlen) && !same_name(pf, name, nlen)) {
            pf->hash[i] = broker_queue_hash(name, nlen);
            pf->name[i] = name;
            pf->nlen[i] = nlen;
            pf->named[i] = 1;
            pf->last = name;
            pf->last_len = nlen;
            if (pf->ahead < PF_QUEUE_AHEAD) /* too near to wait for the slot */
                broker_prefetch_queue(b, pf->hash[i]);
            else
                broker_prefetch_slot(b, pf->hash[i]);
        }
        pf->ahead++;
        pf->off += total;
    }
}

/* The frame at in->start (total bytes) was handled: the one now PF_QUEUE_AHEAD - 1 frames
 * ahead gets its queue's lines loaded (its slot should be there by now). */
static void __attribute__((noinline))
prefetch_next(const struct conn *c, struct prefetch *pf, size_t total)
{
    if (pf->ahead == 0)
        return;
    pf->head = (pf->head + 1) & (PF_SLOT_AHEAD - 1);
    pf->ahead--;
    pf->off -= total;
    if (pf->ahead >= PF_QUEUE_AHEAD) {
        uint32_t i = (pf->head + PF_QUEUE_AHEAD - 1) & (PF_SLOT_AHEAD - 1);
        if (pf->named[i])
            broker_prefetch_queue(&c->srv->b, pf->hash[i]);
    }
}

/* Handle every complete frame in c->in, until closing, or a pause.
 *
 * Queues woken by a request are served right after its reply, except within a run of
 * settles and publishes (dispatch_defers_wake): a subscriber acking each push sends its acks
 * together, and serving after each would push one message per DELIVER frame for each credit
 * given back (a push drain ran at half the speed of FETCH); a producer pipelines its
 * publishes, and serving a waiting FETCH after each handed it one message per reply (a
 * FETCH of 512 under a producer window of 1,024 ran at two thirds of the rate of a FETCH of
 * 1,024). The run's woken queues are served once, after its last frame: before the next
 * other request, or at the end of the read. */
static void
conn_process(struct conn *c)
{
    struct server *s = c->srv;
    uint32_t full_body = s->b.cfg.max_message_size + SMQ_FRAME_SLACK;
    uint8_t batching = s->batching;
    int run = 0; /* inside a run of settles and publishes: wakes are deferred */
    int prefetching = s->b.nqueues >= PF_MIN_QUEUES;
    struct prefetch pf;

    c->in_dispatch = 1;
    s->batching = 1;
    if (prefetching) {
        pf.off = 0;
        pf.ahead = pf.head = 0;
        pf.stop = 0;
        pf.last = NULL;
        pf.last_len = 0;
    }
    while (c->in && !c->req.closing && !c->paused && !c->dead) {
        struct rbuf *in = c->in;
        /* until HELLO (and AUTH) are done, only small frames: they need no more */
        uint32_t max_body = c->req.ready ? full_body : GUARD_HANDSHAKE_FRAME_MAX;
        const uint8_t *body;
        uint32_t blen;
        size_t total;
        enum smq_frame_result r;
        int defers;
        if (c->discard) {
            discard_input(c);
            if (c->discard)
                break;
        }
        /* At the limit, a connection whose replies are still unread waits for them to
         * drain; the others go on (their PING, ACK and small requests free or need little
         * memory), so one client that stops reading cannot stop the broker. */
        if (c->req.out.len > 0 && broker_over_limit(&s->b)) {
            c->need_mem = 0;
            pause_reading(c, CONN_PAUSE_MEMORY);
            break;
        }
        r = smq_frame_decode(in->data + in->start, in->len - in->start, max_body, &body, &blen,
                             &total);
        /* The run is over: serve before the next reply, also one made from the frame alone
         * (a fatal frame error is the last frame the connection gets, section 2) */
        defers = r == SMQ_FRAME_OK && dispatch_defers_wake(body, blen);
        if (run && !defers) {
            run = 0;
            broker_flush_wake(&s->b);
        }
        if (r == SMQ_FRAME_OK && s->b.store && !store_has_room(s->b.store, blen)) {
            pause_reading(c, CONN_PAUSE_STORE); /* the writer is behind: wait for it */
            dlist_push_back(&s->store_paused, &c->stlink);
            break;
        }
        if (r == SMQ_FRAME_NEED_MORE) {
            if (total)
                frame_pending(c, total, blen);
            if (!c->discard)
                break;
            continue;
        }
        if (r == SMQ_FRAME_EMPTY) {
            dispatch_fatal(&c->req, SLABMQ_ERR_PROTOCOL, "empty frame (length 0)");
            take_next(c);
            break;
        }
        if (r == SMQ_FRAME_TOO_BIG) {
            dispatch_fatal(&c->req, SLABMQ_ERR_FRAME_TOO_BIG,
                           "frame length %u exceeds maximum %u%s", blen, max_body,
                           c->req.ready ? "" : " before the handshake (HELLO, AUTH)");
            take_next(c);
            break;
        }
        if (defers && !run) {
            run = 1;
            broker_defer_wake(&s->b);
        }
        if (prefetching) {
            prefetch_scan(c, &pf, max_body);
            if (pf.ahead && pf.named[pf.head]) { /* this frame's name, hashed by the scan */
                c->req.hint_name = pf.name[pf.head];
                c->req.hint_len = pf.nlen[pf.head];
                c->req.hint_hash = pf.hash[pf.head];
            }
        }
        dispatch_frame(&c->req, body, blen);
        c->req.hint_name = NULL; /* the buffer's bytes may change before the next frame */
        c->req.hint_q = NULL;
        take_next(c);
        in->start += (uint32_t)total;
        if (prefetching)
            prefetch_next(c, &pf, total);
        if (!dlist_empty(&s->b.wake) && !s->b.defer_wake) /* right after the reply */
            broker_serve_wake(&s->b);
        if (c->req.out.len >= s->cfg.output_cap)
            pause_reading(c, CONN_PAUSE_OUTPUT);
    }
    if (run)
        broker_flush_wake(&s->b);
    c->in_dispatch = 0;
    s->batching = batching;
    if (!batching)
        write_batched(s);
    if (c->in && c->in->start == c->in->len)
        c->in->start = c->in->len = 0;
}

/* A frame that has started must be complete within --frame-timeout, however slowly its bytes
 * trickle in (a slowloris holds a buffer otherwise). Returns 1 if c was told and is closing. */
static int
frame_overdue(struct conn *c)
{
    struct server *s = c->srv;
    int partial = c->in && c->in->len > c->in->start;

    if (!partial) {
        c->partial_since = 0;
        return 0;
    }
    if (!c->partial_since)
        c->partial_since = s->b.now_ms;
    if (s->b.now_ms - c->partial_since < s->cfg.frame_timeout_ms)
        return 0;
    dispatch_fatal(&c->req, SLABMQ_ERR_PROTOCOL, "frame not completed within %u ms",
                   s->cfg.frame_timeout_ms);
    take_next(c);
    return 1;
}

/* Wake up at the frame deadline even if no byte arrives: rev gets a timeout while a partial
 * frame is buffered. */
static void
arm_frame_deadline(struct conn *c)
{
    int want = c->partial_since != 0 && !c->paused && !c->req.closing;
    struct timeval tv;

    if (want == c->deadline_armed)
        return;
    tv.tv_sec = c->srv->cfg.frame_timeout_ms / 1000;
    tv.tv_usec = (suseconds_t)(c->srv->cfg.frame_timeout_ms % 1000) * 1000;
    event_add(&c->rev, want ? &tv : NULL);
    c->deadline_armed = (uint8_t)want;
}

/* TLS: take decrypted input from the bufferevent; like read(2), 0 at the end of the
 * stream (once the input before it is taken) and -1 with EAGAIN when there is none now. */
static ssize_t
tls_read(struct conn *c, void *dst, size_t room)
{
    int n = evbuffer_remove(bufferevent_get_input(c->bev), dst, room);

    if (n > 0)
        return n;
    if (c->tls_eof)
        return 0;
    errno = EAGAIN;
    return -1;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv;

    broker_tick(&s->b);
    if ((what & EV_TIMEOUT) && frame_overdue(c)) {
        conn_flush(c);
        return;
    }
    conn_process(c); /* frames left buffered by a pause come first */
    for (int round = 0; round < CONN_READ_ROUNDS && !c->req.closing && !c->paused && !c->dead;
         round++) {
        size_t room;
        ssize_t n;
        if (ensure_in(c)) {
            pause_reading(c, CONN_PAUSE_MEMORY); /* no buffer: wait for memory to drain */
            break;
        }
        room = c->in->cap - c->in->len;
        n = c->bev      ? tls_read(c, c->in->data + c->in->len, room)
            : s->read_fn ? s->read_fn(s->read_ctx, fd, c->in->data + c->in->len, room)
                         : read(fd, c->in->data + c->in->len, room);
        if (n == 0) {
            /* End of stream: a client may end its side (shutdown(SHUT_WR)) and still read.
             * The replies made so far may still wait in c->req.out (and for TLS in the
             * bufferevent): send them, then close, within the close grace; a peer that is
             * gone entirely fails the write and is closed then. */
            conn_close_after_write(c);
            break;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c);
            return;
        }
        if (n < 0)
            break;
        c->in->len += (uint32_t)n;
        guard_conn_input(c);
        conn_process(c);
        if ((size_t)n < room)
            break;
    }
    if (c->dead) {
        conn_close(c);
        return;
    }
    /* TLS input left after the rounds: go on at the loop's next turn, after the others
     * (the bufferevent calls back only for new bytes) */
    if (c->bev && !c->req.closing && !c->paused
        && (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 || c->tls_eof))
        event_active(&c->rev, EV_READ, 0);
    if (c->in && c->in->start == c->in->len) { /* nothing buffered: idle connections hold none */
        reservoir_put(&s->b.res, c->in);
        c->in = NULL;
    }
    if (!c->req.closing && !frame_overdue(c))
        arm_frame_deadline(c);
    if (conn_flush(c) == 0)
        server_arm_timer(s);
    conn_resume_memory(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Write what is pending. Returns 0, or -1 if c was closed. */
static int
conn_flush(struct conn *c)
{
    long left = out_flush(c);

    /* a TLS connection closing before its handshake is done has no way to read a reply
     * (a stalled handshake at --handshake-timeout, SIGTERM): close now, not after the grace */
    if (left < 0 || (c->req.closing && c->bev && !c->tls_up)) {
        conn_close(c);
        return -1;
    }
    if (c->req.sub_blocked && (size_t)left < SUB_OUT_MAX)
        sub_req_drained(&c->req);
    if (left > 0) {
        struct timeval grace = {CONN_CLOSE_GRACE_S, 0};
        /* while the broker stops, its --shutdown-timeout bounds the drain instead; for TLS
         * wev is only that timer: the bufferevent's write callback says when it drained */
        if (!c->bev || c->req.closing)
            event_add(&c->wev, c->req.closing && !c->srv->stopping ? &grace : NULL);
        return 0;
    }
    event_del(&c->wev);
    if (c->req.closing && c->req.out.len > 0)
        return 0; /* replies held for the store go out first (confirm.c) */
    if (c->req.closing) {
        conn_close(c);
        return -1;
    }
    if (c->paused & CONN_PAUSE_OUTPUT)
        resume_reading(c, CONN_PAUSE_OUTPUT);
    if ((c->paused & CONN_PAUSE_MEMORY) && !c->need_mem) /* its own replies are read */
        resume_reading(c, CONN_PAUSE_MEMORY);
    return 0;
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv; /* c may be freed by conn_flush */

    (void)fd;
    if (what & EV_TIMEOUT) {
        log_info("connection %llu from %s: closing without draining its output",
                 (unsigned long long)c->req.id, c->req.peer);
        conn_close(c);
        return;
    }
    broker_tick(&s->b);
    if (conn_flush(c) == 0)
        server_arm_timer(s);
    conn_resume_memory(s);
}

/* ---------------------------------------------------------------------------------------- */
/* TLS: the bufferevent's callbacks (deferred to the loop) lead into the same code            */

static void
conn_tls_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_read_cb(-1, EV_READ, arg);
}

static void
conn_tls_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_write_cb(-1, EV_WRITE, arg);
}

static void
conn_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    char why[256];

    if (what & BEV_EVENT_CONNECTED) {
        c->tls_up = 1;
        log_debug("connection %llu from %s: TLS handshake done", (unsigned long long)c->req.id,
                  c->req.peer);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* the input before the end is handled first, as read(2) returning 0 would be, and
         * the replies still go out: libevent stops writing at the end of the stream, so
         * start it again (a closing connection is already draining, within its grace) */
        c->tls_eof = 1;
        if (!c->tls_up) /* OpenSSL 3 calls it unexpected EOF only without the option */
            log_info("connection %llu from %s: TLS handshake failed: the client closed",
                     (unsigned long long)c->req.id, c->req.peer);
        bufferevent_enable(bev, EV_WRITE);
        if (!c->req.closing && !c->paused)
            event_active(&c->rev, EV_READ, 0);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        if (c->tls_up)
            log_debug("connection %llu from %s: TLS error: %s", (unsigned long long)c->req.id,
                      c->req.peer, tls_error(bev, why, sizeof(why)));
        else
            log_info("connection %llu from %s: TLS handshake failed: %s",
                     (unsigned long long)c->req.id, c->req.peer, tls_error(bev, why, sizeof(why)));
        conn_close(c);
    }
}
