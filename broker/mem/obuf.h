/* SPDX-License-Identifier: MIT */
/* A connection's pending output: a chain of reservoir buffers written with writev.
 *
 * Replies are packed by msgpack-c straight into the tail buffer (obuf_pack_cb), so a reply
 * costs one copy of its bytes; payloads are copied once, from the slab into the chain.
 * A frame's length prefix is reserved first and patched when the frame ends, so no frame
 * is measured twice. Buffers never move, which keeps that reservation valid. */
#ifndef SLABMQ_BROKER_MEM_OBUF_H
#define SLABMQ_BROKER_MEM_OBUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "mem/reservoir.h"

struct obuf {
    struct reservoir *res; /* where buffers come from; borrowed */
    struct rbuf *head;     /* oldest buffer, written first */
    struct rbuf *tail;     /* buffer being appended to */
    size_t len;            /* bytes pending */
    uint64_t flushed;      /* bytes written to the socket so far, in all */
    uint64_t limit;        /* write nothing at or past this absolute position (flushed +
                              pending offset): replies waiting for the store (confirm.c);
                              UINT64_MAX: no hold */
};

/* Absolute position of the next byte appended. */
static inline uint64_t
obuf_position(const struct obuf *o)
{
    return o->flushed + o->len;
}

/* A frame under construction. */
struct obuf_frame {
    uint8_t *hdr;  /* the 4 reserved header bytes */
    size_t start;  /* obuf->total when the body began */
};

void obuf_init(struct obuf *o, struct reservoir *res);
/* Put every buffer back to the reservoir. */
void obuf_deinit(struct obuf *o);

/* Append bytes. Buffers are taken with force: output for work already done is owed. */
void obuf_write(struct obuf *o, const void *p, size_t n);
/* msgpack_packer_write callback; data is a struct obuf. Never fails. */
int obuf_pack_cb(void *data, const char *buf, size_t len);

/* At least n (<= RES_MIN_SIZE) contiguous bytes at the tail, to write into directly and then
 * obuf_commit(); NULL if no buffer could be had. */
uint8_t *obuf_reserve(struct obuf *o, size_t n);

/* Keep n bytes written at the pointer obuf_reserve() returned. */
static inline void
obuf_commit(struct obuf *o, size_t n)
{
    o->tail->len += (uint32_t)n;
    o->len += n;
}

void obuf_frame_begin(struct obuf *o, struct obuf_frame *f);
void obuf_frame_end(struct obuf *o, struct obuf_frame *f);

/* Read (obuf_peek) or overwrite (obuf_patch) n pending bytes at absolute position pos, not
 * yet flushed. 0, or -1 when they are not all pending. O(buffers before pos). */
int obuf_peek(const struct obuf *o, uint64_t pos, void *dst, size_t n);
int obuf_patch(struct obuf *o, uint64_t pos, const void *src, size_t n);

/* Write as much as the socket takes, up to the limit. Returns the bytes left that may be
 * written now (held bytes not counted), or -1 on a write error (errno). */
long obuf_flush(struct obuf *o, int fd);
/* Where obuf_drain() sends bytes: like writev(2), bytes taken or -1 with errno (EAGAIN when
 * it takes no more now). */
typedef ssize_t (*obuf_sink)(void *ctx, const struct iovec *iov, int n);
/* obuf_flush() into any sink (a TLS connection's bufferevent, conn.c). */
long obuf_drain(struct obuf *o, obuf_sink sink, void *ctx);

#endif /* SLABMQ_BROKER_MEM_OBUF_H */
