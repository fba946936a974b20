/* SPDX-License-Identifier: MIT */
/* Output chains; see obuf.h. Appends are O(bytes); a flush is one writev per 64 buffers. */
#include "mem/obuf.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#include "frame.h"
#include "mem/reservoir.h"

#define OBUF_IOV 64

/* Bytes appended over the chain's life; frames measure themselves with it. */
static size_t obuf_total(const struct obuf *o);

/* Pending bytes the limit lets through. */
static size_t
obuf_writable(const struct obuf *o)
{
    if (o->limit == UINT64_MAX || o->limit >= o->flushed + o->len)
        return o->len;
    return o->limit > o->flushed ? (size_t)(o->limit - o->flushed) : 0;
}

void
obuf_init(struct obuf *o, struct reservoir *res)
{
    o->res = res;
    o->head = o->tail = NULL;
    o->len = 0;
    o->flushed = 0;
    o->limit = UINT64_MAX;
}

void
obuf_deinit(struct obuf *o)
{
    while (o->head) {
        struct rbuf *b = o->head;
        o->head = b->next;
        reservoir_put(o->res, b);
    }
    o->tail = NULL;
    o->len = 0;
}

/* Make room for at least 'want' contiguous bytes at the tail (want <= RES_MIN_SIZE), or for
 * a large write, a buffer of up to 'hint' bytes. */
static struct rbuf *
tail_room(struct obuf *o, size_t want, size_t hint)
{
    struct rbuf *t = o->tail;

    if (t && t->cap - t->len >= want)
        return t;
    t = reservoir_get(o->res, hint > want ? hint : want, 1);
    if (!t)
        return NULL;
    if (o->tail)
        o->tail->next = t;
    else
        o->head = t;
    o->tail = t;
    return t;
}

void
obuf_write(struct obuf *o, const void *p, size_t n)
{
    const uint8_t *src = p;

    while (n > 0) {
        /* Large writes take 64 KiB buffers: fewer iovecs, still pooled. */
        struct rbuf *t = tail_room(o, 1, n > RES_MIN_SIZE ? 4 * RES_MIN_SIZE : RES_MIN_SIZE);
        size_t k;

        if (!t)
            return; /* malloc failed: the connection will be closed by its owner */
        k = t->cap - t->len;
        if (k > n)
            k = n;
        memcpy(t->data + t->len, src, k);
        t->len += (uint32_t)k;
        o->len += k;
        src += k;
        n -= k;
    }
}

int
obuf_pack_cb(void *data, const char *buf, size_t len)
{
    obuf_write(data, buf, len);
    return 0;
}

static size_t
obuf_total(const struct obuf *o)
{
    return o->len;
}

uint8_t *
obuf_reserve(struct obuf *o, size_t n)
{
    struct rbuf *t = tail_room(o, n, RES_MIN_SIZE);

    return t ? t->data + t->len : NULL;
}

void
obuf_frame_begin(struct obuf *o, struct obuf_frame *f)
{
    struct rbuf *t = tail_room(o, SMQ_FRAME_HEADER, RES_MIN_SIZE);

    f->hdr = NULL;
    if (!t)
        return;
    f->hdr = t->data + t->len;
    t->len += SMQ_FRAME_HEADER;
    o->len += SMQ_FRAME_HEADER;
    f->start = obuf_total(o);
}

void
obuf_frame_end(struct obuf *o, struct obuf_frame *f)
{
    if (f->hdr)
        smq_frame_put_header(f->hdr, (uint32_t)(obuf_total(o) - f->start));
}

/* The buffer holding the pending byte at absolute position pos, and its offset there in
 * *off; NULL unless pos .. pos + n are all pending. */
static struct rbuf *
locate(const struct obuf *o, uint64_t pos, size_t n, size_t *off)
{
    uint64_t at;

    if (pos < o->flushed || pos + n > o->flushed + o->len)
        return NULL;
    at = pos - o->flushed;
    for (struct rbuf *b = o->head; b; b = b->next) {
        if (at < b->len - b->start) {
            *off = b->start + (size_t)at;
            return b;
        }
        at -= b->len - b->start;
    }
    return NULL;
}

int
obuf_peek(const struct obuf *o, uint64_t pos, void *dst, size_t n)
{
    size_t off = 0;
    uint8_t *d = dst;

    for (struct rbuf *b = locate(o, pos, n, &off); b && n > 0; b = b->next) {
        size_t k = b->len - off < n ? b->len - off : n;
        memcpy(d, b->data + off, k);
        d += k;
        n -= k;
        off = b->next ? b->next->start : 0;
    }
    return n == 0 ? 0 : -1;
}

int
obuf_patch(struct obuf *o, uint64_t pos, const void *src, size_t n)
{
    size_t off = 0;
    const uint8_t *s = src;

    for (struct rbuf *b = locate(o, pos, n, &off); b && n > 0; b = b->next) {
        size_t k = b->len - off < n ? b->len - off : n;
        memcpy(b->data + off, s, k);
        s += k;
        n -= k;
        off = b->next ? b->next->start : 0;
    }
    return n == 0 ? 0 : -1;
}

long
obuf_drain(struct obuf *o, obuf_sink sink, void *ctx)
{
    while (o->head) {
        struct iovec iov[OBUF_IOV];
        int n = 0;
        ssize_t w;
        uint64_t allowed = o->limit == UINT64_MAX ? UINT64_MAX : o->limit - o->flushed;

        for (struct rbuf *b = o->head; b && n < OBUF_IOV && allowed > 0; b = b->next) {
            size_t k = b->len - b->start;
            if (k == 0)
                continue;
            if (k > allowed)
                k = (size_t)allowed;
            iov[n].iov_base = b->data + b->start;
            iov[n].iov_len = k;
            allowed -= k;
            n++;
        }
        if (n == 0)
            break;
        w = sink(ctx, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return (long)obuf_writable(o);
            return -1;
        }
        o->len -= (size_t)w;
        o->flushed += (uint64_t)w;
        while (w > 0 || (o->head && o->head->start == o->head->len && o->head != o->tail)) {
            struct rbuf *b = o->head;
            size_t k = b->len - b->start;
            if ((size_t)w < k) {
                b->start += (uint32_t)w;
                break;
            }
            w -= (ssize_t)k;
            b->start = b->len;
            if (b == o->tail) {
                b->start = b->len = 0; /* keep the tail for the next reply */
                break;
            }
            o->head = b->next;
            reservoir_put(o->res, b);
        }
    }
    if (o->head && o->len == 0) { /* all written: give the last buffer back too */
        reservoir_put(o->res, o->head);
        o->head = o->tail = NULL;
    }
    return (long)obuf_writable(o);
}

static ssize_t
sink_writev(void *ctx, const struct iovec *iov, int n)
{
    return writev(*(int *)ctx, iov, n);
}

long
obuf_flush(struct obuf *o, int fd)
{
    return obuf_drain(o, sink_writev, &fd);
}
