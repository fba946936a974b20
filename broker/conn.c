/* SPDX-License-Identifier: MIT */
/* Connection I/O; see conn.h. A read callback reads at most CONN_READ_ROUNDS buffers so one
 * busy client cannot starve the rest, handles every complete frame, then writes once. */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "delivery.h"
#include "dispatch.h"
#include "frame.h"
#include "log.h"
#include "queue.h"
#include "reservoir.h"
#include "server.h"
#include "slabmq.h"
#include "wait.h"

#define CONN_READ_SIZE (64u * 1024)
#define CONN_READ_ROUNDS 4
#define CONN_CLOSE_GRACE_S 2 /* how long a closing connection may take to drain */

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static void conn_write_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct conn *c);
static int conn_flush(struct conn *c);

void
conn_accept(struct server *s, int fd, const char *peer)
{
    struct conn *c = slab_alloc_reserved(&s->b.slab, sizeof(*c));
    int one = 1;

    if (!c) {
        log_warn("refusing connection from %s: memory limit", peer);
        close(fd);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->srv = s;
    c->fd = fd;
    c->id = ++s->next_conn_id;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    obuf_init(&c->out, &s->b.res);
    dlist_init(&c->inflight);
    dlist_init(&c->waits);
    dlist_push_back(&s->conns, &c->link);
    s->nconns++;
    s->conns_total++;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE, conn_write_cb, c);
    event_add(&c->rev, NULL);
    log_debug("connection %llu open from %s", (unsigned long long)c->id, c->peer);
}

void
conn_close(struct conn *c)
{
    struct server *s = c->srv;

    if (c->in_dispatch) { /* the frame loop still uses c: finish there */
        c->dead = 1;
        return;
    }
    wait_cancel_conn(c);
    broker_defer_wake(&s->b);
    while (!dlist_empty(&c->inflight)) {
        struct delivery *d = DLIST_ENTRY(c->inflight.next, struct delivery, slink);
        queue_requeue(&s->b, d);
    }
    broker_flush_wake(&s->b);
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    obuf_deinit(&c->out);
    reservoir_put(&s->b.res, c->in);
    dlist_unlink(&c->link);
    s->nconns--;
    log_debug("connection %llu from %s closed", (unsigned long long)c->id, c->peer);
    slab_free(&s->b.slab, c, sizeof(*c));
    server_arm_timer(s);
}

void
conn_want_write(struct conn *c)
{
    if (!c->closing && !event_pending(&c->wev, EV_WRITE, NULL))
        event_add(&c->wev, NULL);
}

void
conn_close_after_write(struct conn *c)
{
    c->closing = 1;
    event_del(&c->rev);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

/* Make sure c->in can take more bytes, and can hold the whole frame at its front when the
 * frame's header says how long it is. Returns 0, or -1 at the memory limit. */
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
        c->in = reservoir_get(&c->srv->b.res, CONN_READ_SIZE, 0);
        return c->in ? 0 : -1;
    }
    avail = in->len - in->start;
    smq_frame_decode(in->data + in->start, avail, UINT32_MAX, &body, &blen, &total);
    if (total > need)
        need = total;
    if (need <= in->cap && in->cap - in->start >= need && in->len < in->cap)
        return 0;
    if (need <= in->cap) { /* room enough once compacted */
        memmove(in->data, in->data + in->start, avail);
        in->start = 0;
        in->len = (uint32_t)avail;
        return 0;
    }
    c->in = reservoir_get(&c->srv->b.res, need, 0);
    if (!c->in) {
        c->in = in;
        return -1;
    }
    memcpy(c->in->data, in->data + in->start, avail);
    c->in->len = (uint32_t)avail;
    reservoir_put(&c->srv->b.res, in);
    return 0;
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->srv;

    (void)what;
    broker_tick(&s->b);
    for (int round = 0; round < CONN_READ_ROUNDS && !c->closing && !c->paused; round++) {
        size_t room;
        ssize_t n;
        if (ensure_in(c)) {
            dispatch_fatal(c, SLABMQ_ERR_NOMEM, "memory limit reached: cannot buffer frame");
            break;
        }
        room = c->in->cap - c->in->len;
        n = read(fd, c->in->data + c->in->len, room);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0)
            break;
        c->in->len += (uint32_t)n;
        conn_process(c);
        if (c->dead) {
            c->in_dispatch = 0;
            conn_close(c);
            return;
        }
        if ((size_t)n < room)
            break;
    }
    if (c->in && c->in->start == c->in->len) { /* nothing buffered: idle connections hold none */
        reservoir_put(&s->b.res, c->in);
        c->in = NULL;
    }
    if (conn_flush(c) == 0)
        server_arm_timer(s);
}

/* Handle every complete frame in c->in, until closing or the output cap pauses reading. */
static void
conn_process(struct conn *c)
{
    struct server *s = c->srv;
    uint32_t max_body = s->b.cfg.max_message_size + SMQ_FRAME_SLACK;

    c->in_dispatch = 1;
    while (c->in && !c->closing && !c->paused && !c->dead) {
        struct rbuf *in = c->in;
        const uint8_t *body;
        uint32_t blen;
        size_t total;
        enum smq_frame_result r =
            smq_frame_decode(in->data + in->start, in->len - in->start, max_body, &body, &blen,
                             &total);
        if (r == SMQ_FRAME_NEED_MORE)
            break;
        if (r == SMQ_FRAME_EMPTY) {
            dispatch_fatal(c, SLABMQ_ERR_PROTOCOL, "empty frame (length 0)");
            break;
        }
        if (r == SMQ_FRAME_TOO_BIG) {
            dispatch_fatal(c, SLABMQ_ERR_FRAME_TOO_BIG, "frame length %u exceeds maximum %u",
                           blen, max_body);
            break;
        }
        dispatch_frame(c, body, blen);
        in->start += (uint32_t)total;
        if (c->out.len >= s->cfg.output_cap) {
            c->paused = 1;
            event_del(&c->rev);
        }
    }
    c->in_dispatch = 0;
    if (c->in && c->in->start == c->in->len)
        c->in->start = c->in->len = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Write what is pending. Returns 0, or -1 if c was closed. */
static int
conn_flush(struct conn *c)
{
    struct server *s = c->srv;
    long left = obuf_flush(&c->out, c->fd);

    if (left < 0) {
        conn_close(c);
        return -1;
    }
    if (left > 0) {
        struct timeval grace = {CONN_CLOSE_GRACE_S, 0};
        event_add(&c->wev, c->closing ? &grace : NULL);
        return 0;
    }
    event_del(&c->wev);
    if (c->closing) {
        conn_close(c);
        return -1;
    }
    if (c->paused && (size_t)left < s->cfg.output_cap / 2) {
        c->paused = 0;
        event_add(&c->rev, NULL);
        conn_process(c); /* frames buffered while paused */
        if (c->dead) {
            conn_close(c);
            return -1;
        }
        return conn_flush(c);
    }
    return 0;
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd;
    if (what & EV_TIMEOUT) {
        log_info("connection %llu from %s: closing without draining its output",
                 (unsigned long long)c->id, c->peer);
        conn_close(c);
        return;
    }
    broker_tick(&c->srv->b);
    if (conn_flush(c) == 0)
        server_arm_timer(c->srv);
}
