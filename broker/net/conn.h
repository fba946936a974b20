/* SPDX-License-Identifier: MIT */
/* One client connection: a non-blocking socket read into a reservoir buffer, complete frames
 * handed to dispatch, replies appended to an output chain and written with writev once per
 * batch of frames. Not a bufferevent: libevent 2.1 caps a bufferevent read at 4 KiB,
 * allocates evbuffer chains per write and never bounds output; here reads are as large as
 * the buffer, buffers are pooled, and pending output is capped (reading pauses above
 * output_cap). Connection records are slab objects. */
#ifndef SLABMQ_BROKER_NET_CONN_H
#define SLABMQ_BROKER_NET_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "req/req.h"
#include "util/dlist.h"

struct bufferevent;
struct server;
struct rbuf;

/* Why reading is paused (bits of conn.paused). */
#define CONN_PAUSE_OUTPUT 1 /* pending output over the cap: resumes when written */
#define CONN_PAUSE_MEMORY 2 /* broker at its memory limit: resumes when memory drains */
#define CONN_PAUSE_STORE 4  /* the store's operation ring is full: resumes as it drains */
#define CONN_PAUSE_AUTH 8   /* AUTH failed: never resumes, closed after the delay (guard.c) */
#define CONN_PAUSE_CHECK 16 /* AUTH's password check is pending off the loop (verify.c):
                               frames after it wait, in order, until its result */

struct conn {
    struct req req;          /* what the handlers see (req/req.h); first, so container_of
                                is free */
    struct server *srv;
    int fd;
    struct event rev;        /* readable; for TLS, only activated (and the frame deadline) */
    struct event wev;        /* writable; with a timeout while closing; for TLS, activated */
    struct bufferevent *bev; /* TLS: libevent's OpenSSL bufferevent does the socket I/O and
                                the frames go through its buffers (conn_tls_*); NULL for a
                                plain socket */
    struct rbuf *in;         /* unprocessed input, NULL when none */
    struct dlink link;       /* in srv->conns */
    struct dlink stlink;     /* in srv->store_paused while CONN_PAUSE_STORE */
    struct dlink plink;      /* in srv->mem_paused while CONN_PAUSE_MEMORY */
    size_t discard;          /* input bytes still to skip of a frame refused from its header */
    size_t need_mem;         /* bytes a paused read is waiting for (0: none) */
    uint64_t partial_since;  /* mono ms when the buffered partial frame began; 0: none */
    uint8_t deadline_armed;  /* rev is added with the frame timeout */
    uint8_t paused;          /* CONN_PAUSE_* bits; reading is paused while any is set */
    uint8_t in_dispatch;     /* inside conn_process: defer closing */
    uint8_t dead;            /* close when dispatch returns */
    struct dlink blink;      /* in srv->batched while it has pushes to write at the end of
                                the frames being handled (conn_write_batched) */
    /* Handshake, authentication and idleness (guard.c) */
    struct dlink glink;      /* in srv->handshaking until the handshake ends; then in
                                srv->auth_failed or srv->auth_refused if AUTH failed */
    struct dlink ilink;      /* in srv->idle, with --idle-timeout */
    uint64_t guard_since;    /* mono ms: accepted at (handshaking), AUTH failed at */
    uint64_t active_ms;      /* mono ms of the last input */
    uint8_t auth_refusal;    /* why the failed AUTH failed: enum req_refusal */
    uint8_t tls_eof;         /* TLS: the peer ended the stream; close once input is handled */
    uint8_t tls_up;          /* TLS: the handshake completed */
};

/* The connection that embeds rq. */
static inline struct conn *
conn_of(struct req *rq)
{
    return (struct conn *)(void *)((char *)rq - offsetof(struct conn, req));
}

/* The request layer's way back to connections (req/req.h): server.c gives it to the
 * struct req_server every connection's req points to. */
extern const struct req_ops conn_req_ops;

/* Take ownership of fd (closed on failure too) and start reading; with tls, through a TLS
 * handshake first (tls.c). */
void conn_accept(struct server *s, int fd, const char *peer, int tls);
/* Close now: requeue in-flight deliveries, drop waiters, free everything. */
void conn_close(struct conn *c);
/* The broker is stopping: answer waiting FETCHes and subscriptions and tell the client
 * (ERR_SHUTDOWN), stop reading; c closes once its output is written (conn_drain_all). */
void conn_shutdown(struct conn *c);
/* After conn_shutdown() of every connection: write what each has, closing those done; the
 * rest close as their output drains. Breaks the loop when none is left. */
void conn_drain_all(struct server *s);
/* Flush what is pending once the current callback returns control to the loop. */
void conn_want_write(struct conn *c);
/* Write what is pending now if the socket takes it (a long-poll reply should not wait for
 * the loop to turn); whatever is left, or a write error, is handled by the write event.
 * Never closes c, so it is safe while another connection is being served. */
void conn_try_write(struct conn *c);
/* Like conn_try_write(), for pushes: while another connection's frames are being handled,
 * c is written once they all are (in the same callback, before that connection's own
 * replies), so the pushes made for a batch of PUBLISHes leave in one write. Never closes c. */
void conn_write_batched(struct conn *c);
/* Resume connections paused for a full store ring, if it has room again. */
void conn_resume_store(struct server *s);
/* Resume connections paused at the memory limit, while the broker is under it. */
void conn_resume_memory(struct server *s);
/* Send what is pending, then close (after an error reply). */
void conn_close_after_write(struct conn *c);
/* Stop reading c for good: a failed AUTH, closed later by conn_close_with_error(). */
void conn_hold(struct conn *c);
/* From outside the connection's own callbacks (a timer): write the error reply
 * [op, rid, code, message], then close once it is written. c may be freed on return. */
void conn_close_with_error(struct conn *c, uint64_t op, uint64_t rid, unsigned code,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif /* SLABMQ_BROKER_NET_CONN_H */
