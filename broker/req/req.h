/* SPDX-License-Identifier: MIT */
/* A request context: what a handler needs of one client, without the socket.
 *
 * The network layer (net/conn.c) owns sockets, reading, batching and deadlines; the request
 * layer (dispatch, cmd_*, wait, sub, confirm) owns what the bytes mean. They meet here. A
 * struct conn embeds one struct req and gets back to itself with container_of; handlers see
 * only the req: its output buffer, its user, the broker, the request-level state of the
 * connection (held deliveries, long-poll waiters, subscriptions, held confirmations, the
 * cached queue) and 'next', what the connection must do once the frame is handled.
 *
 * Two ways back to the network layer, by cost:
 * - 'next' is a plain field a handler sets (close after the write, or hold further frames);
 *   conn.c reads it after each frame. No call at all.
 * - struct req_ops, a table of functions net/ fills in, for what must happen now or outside
 *   a frame (write a long-poll reply at once, batch pushes, close from the store's callback,
 *   the handshake is done). One indirect call per reply or per batch of pushes, never per
 *   message in a batch; publish, FETCH and ACK make none of their own.
 * The alternative, req/ including net/conn.h, made the handlers depend on libevent, sockets
 * and 40 fields they never read, and made a handler untestable without a socket
 * (tests/unit/test_handlers.c runs them with a null ops table).
 *
 * struct req_server is what handlers share: the broker, the users, the counters STATS
 * reports (the network layer bumps its own there too), and the connections with held
 * confirmations. net/server.c embeds one. */
#ifndef SLABMQ_BROKER_REQ_REQ_H
#define SLABMQ_BROKER_REQ_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "core/broker.h"
#include "core/delivery.h"
#include "mem/obuf.h"
#include "util/dlist.h"

struct auth;
struct auth_user;
struct event_base;
struct confirmq;
struct queue;
struct req;
struct subtab;
struct verify;
struct verify_slot;

#define REQ_MAX_WAITS 64 /* pending long-poll FETCHes per connection */
#define REQ_MAX_SUBS 64  /* subscriptions per connection */

/* What the connection does once the current frame is handled (req.next). */
enum req_next {
    REQ_GO_ON = 0,          /* read the next frame */
    REQ_CLOSE_AFTER_WRITE,  /* write what is pending, then close (an error before the
                               handshake, a fatal protocol error) */
    REQ_HOLD                /* handle no more frames (they stay buffered, in order) until
                               ops->check_done: AUTH's password check is pending */
};

/* Why an AUTH failed. Each is answered after a delay (net/guard.c), so that a client refused
 * at once cannot come back at once: REQ_REFUSE_WRONG after GUARD_AUTH_FAIL_DELAY_MS, the
 * others after GUARD_AUTH_REFUSE_DELAY_MS. */
enum req_refusal {
    REQ_REFUSE_WRONG = 0, /* checked: wrong name or password (ERR_AUTH) */
    REQ_REFUSE_THROTTLED, /* not checked: too many recent failures (ERR_AUTH, own message) */
    REQ_REFUSE_BUSY       /* not checked: every check slot taken (ERR_LIMIT) */
};

/* The network layer's side, filled in by net/ (conn.c). None of them frees the req, except
 * close. A unit test may leave a member NULL only for what its handlers never reach. */
struct req_ops {
    /* Flush the output once the current callback returns control to the loop. */
    void (*want_write)(struct req *rq);
    /* Write the output now if the socket takes it (a long-poll reply should not wait for the
     * loop to turn). Never closes. */
    void (*try_write)(struct req *rq);
    /* Like try_write, for pushes: while another connection's frames are being handled, write
     * once they all are, so the pushes of a batch of PUBLISHes leave in one write. */
    void (*write_batched)(struct req *rq);
    /* Close now, from outside the req's own frames (the store's progress callback). Frees
     * rq. */
    void (*close)(struct req *rq);
    /* The check REQ_HOLD waited for is over: handle what the client sent meanwhile. */
    void (*check_done)(struct req *rq);
    /* The handshake is done (HELLO without users, AUTH with them): no more deadline. */
    void (*handshake_done)(struct req *rq);
    /* AUTH request rid failed: read rq no more; after the delay of why, reply and close. */
    void (*auth_failed)(struct req *rq, uint64_t rid, enum req_refusal why);
    /* Log a refusal made without a check, rate-limited (a crowd of guessers must not make
     * the log the bottleneck). */
    void (*log_refusal)(struct req *rq, const char *line);
};

/* Counters STATS and the metrics page report. The request layer bumps the first four, the
 * network layer the rest; both read them. */
struct req_counters {
    uint64_t protocol_errors;    /* malformed frames and bodies, total */
    uint64_t auth_ok;            /* successful AUTHs, total */
    uint64_t auth_failures;      /* refused AUTHs (wrong user or password, throttled, or
                                    every check slot taken), total */
    uint64_t forbidden;          /* requests refused for the user's permissions, total */
    uint32_t nconns;             /* open connections */
    uint32_t tls_conns;          /* open TLS connections (of nconns) */
    uint64_t conns_total;        /* accepted, total */
    uint64_t conns_refused;      /* refused at max_connections, total */
    uint64_t slow_closed;        /* connections closed for unread replies over the limit */
    uint64_t handshake_timeouts; /* connections closed at --handshake-timeout, total */
    uint64_t idle_closed;        /* connections closed at --idle-timeout, total */
    uint64_t tls_handshake_failures; /* TLS connections that failed before their handshake
                                        completed, total */
    uint64_t started_ms;         /* monotonic ms at start */
};

/* What every req of one broker shares. Owned by whoever runs the broker (net/server.c, or a
 * test); everything it points to is borrowed. */
struct req_server {
    struct broker *b;            /* the broker */
    const struct req_ops *ops;   /* the network layer's side */
    struct auth *auth;           /* users of --auth-file; NULL when authentication is off */
    struct verify *verify;       /* password checks off the loop, with auth */
    struct event_base *base;     /* the loop: long-poll waiters' timers (wait.c) */
    struct dlink confirm_reqs;   /* reqs with replies held for the store (confirmq.link) */
    struct req_counters n;       /* counters */
};

/* One client's request-level state. Embedded in struct conn (or a test's fixture); set up
 * with req_init(). */
struct req {
    struct broker *b;             /* = srv->b, one load on the hot path instead of two */
    struct req_server *srv;       /* shared state */
    struct obuf out;              /* pending output: replies are packed straight into it */
    struct holder held;           /* deliveries this consumer holds */
    struct dlink waits;           /* long-poll waiters (waiter.clink) */
    uint32_t nwaits;
    struct subtab *subs;          /* subscriptions (sub.c), NULL until the first SUBSCRIBE */
    struct confirmq *confirm;     /* replies held for the store (confirm.c), or NULL */
    struct queue *qcache;         /* the queue this client named last (weak: see qcache_gen) */
    uint64_t qcache_gen;          /* broker qgen when cached; a deletion since makes it stale */
    const char *hint_name;        /* set by the network layer around one frame: the queue
                                     name at this address in it has broker_queue_hash() */
    uint32_t hint_len;            /* its length */
    uint32_t hint_hash;           /* hint_name's hash (conn.c's look-ahead computed it) */
    struct queue *hint_q;         /* the queue cmd_read_name() found by that name, compared
                                     in full: the handler's next look needs no compare */
    const struct auth_user *user; /* authenticated as; NULL before AUTH, or without auth */
    struct verify_slot *auth_slot; /* the pending check of AUTH (verify.c), or NULL */
    uint64_t auth_rid;            /* request id of a pending or failed AUTH */
    uint64_t id;                  /* connection number, for logs */
    uint8_t hello;                /* HELLO done */
    uint8_t ready;                /* handshake done: HELLO, and AUTH when the broker has users */
    uint8_t closing;              /* set by the network layer: being closed, write no more */
    uint8_t sub_blocked;          /* a push was held back for output backlog (sub.c) */
    uint8_t next;                 /* enum req_next, reset by the network layer per frame */
    char peer[64];                /* "addr:port", for logs */
};

/* The network layer's side, called through the table (see the file comment for the cost). */
static inline void
req_want_write(struct req *rq)
{
    rq->srv->ops->want_write(rq);
}

static inline void
req_try_write(struct req *rq)
{
    rq->srv->ops->try_write(rq);
}

static inline void
req_write_batched(struct req *rq)
{
    rq->srv->ops->write_batched(rq);
}

/* Write what is pending, then close: acted on by the network layer once the frame is
 * handled. */
static inline void
req_close_after_write(struct req *rq)
{
    rq->next = REQ_CLOSE_AFTER_WRITE;
}

/* How many more deliveries rq may hold: --max-inflight less what it holds (0 when full,
 * also after a reload lowered the limit below what it holds). The one place the window is
 * computed: FETCH, long-poll waiters and subscriptions all ask here. */
static inline uint32_t
req_window(const struct req *rq)
{
    uint32_t max = rq->b->cfg.max_inflight;

    return rq->held.n < max ? max - rq->held.n : 0;
}

/* Set up rq for a new client of srv: empty output (of srv->b's reservoir and budget), no
 * user, no state. */
void req_init(struct req *rq, struct req_server *srv, uint64_t id, const char *peer);
/* rq's client is gone: cancel its AUTH check, drop its held confirmations, waiters and
 * subscriptions, requeue the deliveries it holds, free its output. */
void req_deinit(struct req *rq);
/* Broker hook (struct broker_hooks, ctx the struct req_server): q has ready messages for
 * its consumers; waiting FETCHes first, then subscriptions. */
void req_serve_queue(void *ctx, struct queue *q);
/* Broker hook: q is being deleted; its waiters and subscribers are told. */
void req_queue_gone(void *ctx, struct queue *q);
/* Set up srv for broker b, with ops (set srv->base before the first long-poll FETCH); no users, counters at zero. */
void req_server_init(struct req_server *srv, struct broker *b, const struct req_ops *ops);

#endif /* SLABMQ_BROKER_REQ_REQ_H */
