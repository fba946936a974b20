/* SPDX-License-Identifier: MIT */
/* The connection of slabmq-peerbench to a peer broker: one non-blocking TCP socket to
 * 127.0.0.1 with an output buffer and an input buffer, moved both ways by peer_net_io() with
 * poll(), so a pipeline cannot deadlock on full socket buffers. Appends never block and never
 * fail on the spot: a buffer that cannot grow sets 'oom', and the next peer_net_io() reports
 * it. The first error is kept as text in 'err'; nothing here prints. Appending is amortised
 * O(1); peer_net_io() moves unread input to the front of the buffer, O(unread bytes).
 * Only 127.0.0.1 is ever contacted. Never installed. */
#ifndef SLABMQ_TOOLS_PEER_NET_H
#define SLABMQ_TOOLS_PEER_NET_H

#include <stddef.h>
#include <stdint.h>

#define PEER_NET_STALL_NS 30000000000ll /* no progress for this long aborts the run */

/* A non-blocking TCP connection with an output buffer and an input buffer. Bytes in
 * in[ipos, ilen) are unread; views into it stay valid until the next peer_net_io(). */
struct peer_conn {
    int fd;
    char *out;                /* pending output out[opos, olen) */
    size_t opos;
    size_t olen;
    size_t ocap;
    char *in;
    size_t ipos;
    size_t ilen;
    size_t icap;
    int oom;                  /* an append could not grow the buffer */
    int64_t progress_ns;      /* last byte moved, CLOCK_MONOTONIC ns */
    char err[256];            /* first error, "" when none */
};

/* CLOCK_MONOTONIC now, ns. */
int64_t peer_net_now_ns(void);

/* Keep a formatted error in c->err unless one is there already: the first error wins. */
void peer_net_set_err(struct peer_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Connect c to 127.0.0.1:port, non-blocking with TCP_NODELAY; 0, or -1 with c->err set.
 * Initialises all of c: call peer_net_close() afterwards in either case. */
int peer_net_open(struct peer_conn *c, int port);

/* Close the socket and free both buffers; harmless on a closed connection (fd -1). */
void peer_net_close(struct peer_conn *c);

/* Move bytes both ways; when nothing moves, wait up to wait_ms for the socket and try once
 * more. 1 if bytes moved, 0 if not, -1 on error (c->err set), including an earlier append
 * that ran out of memory and a stall of PEER_NET_STALL_NS. Invalidates views into the input. */
int peer_net_io(struct peer_conn *c, int wait_ms);

/* Room for n more output bytes at c->out + c->olen; the caller writes them and adds what it
 * wrote to c->olen. NULL (and c->oom) when the buffer cannot grow. */
char *peer_net_out_space(struct peer_conn *c, size_t n);

/* Append n bytes from p to the output (on failure, c->oom). */
void peer_net_out_add(struct peer_conn *c, const void *p, size_t n);

/* Append the string s, without its terminator. */
void peer_net_out_str(struct peer_conn *c, const char *s);

/* Append printf-style output of at most 511 bytes (longer sets c->oom). */
void peer_net_out_fmt(struct peer_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The line at the front of the input and, in *len, the length of its part before "\n" or
 * "\r\n"; NULL when no complete line has arrived. The view is valid until the next
 * peer_net_io(). */
const char *peer_net_line_at(struct peer_conn *c, size_t *len);

/* Bytes of the line that starts at l (returned by peer_net_line_at()), terminator included. */
size_t peer_net_line_bytes(const struct peer_conn *c, const char *l);

/* Consume the line that starts at l (returned by peer_net_line_at()). */
void peer_net_skip_line(struct peer_conn *c, const char *l);

#endif
