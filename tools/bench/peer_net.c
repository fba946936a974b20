/* SPDX-License-Identifier: MIT */
/* The buffered non-blocking connection of slabmq-peerbench (peer_net.h): output is appended
 * to a buffer that doubles when full (64 KiB at first) and written when peer_net_io() runs;
 * input is read into a buffer that starts at IN_CHUNK and grows by IN_CHUNK whenever it is
 * full, after unread bytes have been moved to its front. A connection that moves nothing
 * for PEER_NET_STALL_NS fails, so every loop built on it ends. */
#include "peer_net.h"

#include <errno.h>
#include <fcntl.h>
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

#define IN_CHUNK (1u << 20)           /* input buffer grows by this */

/* ---------------------------------------------------------------------------------------- */
/* Time, errors and output                                                                   */

int64_t
peer_net_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
peer_net_set_err(struct peer_conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

char *
peer_net_out_space(struct peer_conn *c, size_t n)
{
    if (c->opos == c->olen)
        c->opos = c->olen = 0;
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 65536;
        char *p;
        while (cap < c->olen + n)
            cap *= 2;
        p = realloc(c->out, cap);
        if (!p) {
            c->oom = 1;
            return NULL;
        }
        c->out = p;
        c->ocap = cap;
    }
    return c->out + c->olen;
}

void
peer_net_out_add(struct peer_conn *c, const void *p, size_t n)
{
    char *d = peer_net_out_space(c, n);

    if (d) {
        memcpy(d, p, n);
        c->olen += n;
    }
}

void
peer_net_out_str(struct peer_conn *c, const char *s)
{
    peer_net_out_add(c, s, strlen(s));
}

void
peer_net_out_fmt(struct peer_conn *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (k > 0 && (size_t)k < sizeof(buf))
        peer_net_out_add(c, buf, (size_t)k);
    else
        c->oom = 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The socket                                                                                */

int
peer_net_open(struct peer_conn *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    memset(c, 0, sizeof(*c));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        peer_net_set_err(c, "connect 127.0.0.1:%d: %s", port, strerror(errno));
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->icap = IN_CHUNK;
    c->in = malloc(c->icap);
    c->progress_ns = peer_net_now_ns();
    if (!c->in) {
        peer_net_set_err(c, "out of memory");
        return -1;
    }
    return 0;
}

void
peer_net_close(struct peer_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
}

/* Write what is pending; 1 if bytes moved, 0 if none could, -1 on error. */
static int
conn_write(struct peer_conn *c)
{
    int moved = 0;

    while (c->opos < c->olen) {
        ssize_t w = send(c->fd, c->out + c->opos, c->olen - c->opos, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            peer_net_set_err(c, "send: %s", strerror(errno));
            return -1;
        }
        c->opos += (size_t)w;
        moved = 1;
    }
    return moved;
}

/* Read what has arrived, after moving unread bytes to the front (this invalidates views)
 * and growing the buffer when it is full; 1 if bytes came, 0 if none, -1 on error or EOF. */
static int
conn_read(struct peer_conn *c)
{
    ssize_t r;

    if (c->ipos > 0) {
        memmove(c->in, c->in + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    }
    if (c->ilen == c->icap) {
        char *p = realloc(c->in, c->icap + IN_CHUNK);
        if (!p) {
            peer_net_set_err(c, "out of memory");
            return -1;
        }
        c->in = p;
        c->icap += IN_CHUNK;
    }
    do
        r = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (r <= 0) {
        peer_net_set_err(c, "%s", r == 0 ? "connection closed by the broker" : strerror(errno));
        return -1;
    }
    c->ilen += (size_t)r;
    return 1;
}

int
peer_net_io(struct peer_conn *c, int wait_ms)
{
    int w;
    int r;
    struct pollfd p = {c->fd, POLLIN, 0};

    if (c->oom) {
        peer_net_set_err(c, "out of memory");
        return -1;
    }
    w = conn_write(c);
    r = w < 0 ? -1 : conn_read(c);
    if (w < 0 || r < 0)
        return -1;
    if (w == 0 && r == 0 && wait_ms > 0) {
        if (c->opos < c->olen)
            p.events |= POLLOUT;
        if (poll(&p, 1, wait_ms) > 0) {
            w = conn_write(c);
            r = w < 0 ? -1 : conn_read(c);
            if (w < 0 || r < 0)
                return -1;
        }
    }
    if (w > 0 || r > 0) {
        c->progress_ns = peer_net_now_ns();
        return 1;
    }
    if (peer_net_now_ns() - c->progress_ns > PEER_NET_STALL_NS) {
        peer_net_set_err(c, "stalled: nothing moved for %lld s", PEER_NET_STALL_NS / 1000000000);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Lines                                                                                     */

const char *
peer_net_line_at(struct peer_conn *c, size_t *len)
{
    const char *b = c->in + c->ipos;
    const char *e = memchr(b, '\n', c->ilen - c->ipos);

    if (!e)
        return NULL;
    *len = (size_t)(e - b);
    if (*len > 0 && b[*len - 1] == '\r')
        (*len)--;
    return b;
}

size_t
peer_net_line_bytes(const struct peer_conn *c, const char *l)
{
    return (size_t)((const char *)memchr(l, '\n', c->ilen - c->ipos) - l) + 1;
}

void
peer_net_skip_line(struct peer_conn *c, const char *l)
{
    c->ipos += peer_net_line_bytes(c, l);
}
