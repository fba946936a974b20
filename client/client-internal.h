/* SPDX-License-Identifier: MIT */
/* Internals of libslabmq shared by its files; never installed. */
#ifndef SLABMQ_CLIENT_INTERNAL_H
#define SLABMQ_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "codec.h"
#include "mpread.h"
#include "slabmq.h"

/* Largest reply frame accepted; bounds what a broken or hostile server can make us buffer. */
#define SMQ_CLIENT_MAX_REPLY ((uint32_t)1 << 30)

/* A batch of messages: the reply to a FETCH or PEEK, or one DELIVER push. */
struct slabmq_batch {
    size_t n;
    slabmq_message *msgs;      /* n entries; data points into 'bytes' */
    slabmq_dead_letter *dead;  /* the infos of the dead letters among them; msgs[i].dead
                                  points here */
    uint8_t *bytes;            /* copy of the reply's payloads and info strings */
    const char *queue;         /* the messages' queue (in 'bytes' or 'qname'), or NULL */
    char qname[SMQ_NAME_MAX + 1]; /* the queue named by the caller or the subscription */
    uint64_t subscription;     /* DELIVER only: its subscription, else 0 */
    slabmq_status status;      /* DELIVER only: non-zero when the push ended the subscription */
    char *error;               /* the broker's message with that status; NULL otherwise */
    struct slabmq_batch *next; /* the client's list of pushes not yet received */
};

/* A subscription of this connection, known by its id, for naming its queue in pushes. */
struct smq_sub {
    uint64_t id;                 /* the broker's subscription id */
    char queue[SMQ_NAME_MAX + 1];
};

/* A QUIET ACK not yet confirmed: its request id, how many ids it acks, and how many
 * slabmq_ack_async() calls it carries (acks.c coalesces calls of one id into it: the first
 * call's n - (calls - 1) ids, then one id per call). Each call gets its own confirmation. */
struct smq_quiet {
    uint64_t rid;
    uint64_t n;
    uint64_t calls;
};

/* The pipelined ACK in wbuf, not yet sent, that the next slabmq_ack_async() with the same
 * flags appends its id to (acks.c) while end == wlen (nothing was queued after it) and rid
 * is the last request id. end is not 0 while it is queued: smq_send_queued() then writes
 * its count and length, which appending leaves, and sets end to 0. */
struct smq_ackq {
    size_t frame;   /* offset in wbuf of its frame header */
    size_t ids;     /* offset of its ids' array32 header */
    size_t end;     /* offset just past it */
    uint64_t rid;   /* its request id */
    uint32_t n;     /* ids in it */
    uint8_t wire;   /* the flags byte it ends with (SMQ_ACK_*), 0: none written */
    uint8_t flags;  /* the caller's flags (SLABMQ_ACK_*) */
};

/* A FETCH's arguments: what messages.c packs, and what fetch_ahead.c repeats ahead. */
struct smq_fetch_req {
    const char *queue;         /* the queue, or NULL for the list in queues */
    const char *const *queues; /* slabmq_fetch_any(): n names */
    size_t n;
    uint32_t max;
    uint32_t wait_ms;
    unsigned flags;
};

/* A FETCH sent ahead (fetch_ahead.c): queued pipelined, wait 0, its reply kept here until a
 * slabmq_fetch() hands it out. */
struct smq_ahead {
    uint64_t rid;               /* its request id */
    struct slabmq_batch *batch; /* once replied: its messages; NULL if it had none or failed */
    int replied;
    char qname[SMQ_NAME_MAX + 1]; /* the queue it named ("" for a list: the reply names it) */
};

struct ssl_st;

struct slabmq_client {
    int fd;                 /* connected socket, non-blocking */
    struct ssl_st *ssl;     /* TLS over fd (io.c), or NULL */
    short io_events;        /* poll events the last I/O that returned EAGAIN waits for */
    int rdrained;           /* the last receive on the plain socket took all there was (a
                               short read or EAGAIN): a caller about to wait polls first
                               rather than spend a receive that would find nothing; cleared
                               by a poll that says readable, never set for TLS */
    char io_reason[160];    /* the TLS reason of the last EPROTO (smq_io_strerror) */
    int timeout_ms;         /* per call; <= 0: none */
    uint64_t next_rid;      /* request id of the next request */
    uint32_t max_message;   /* from HELLO */
    uint32_t max_frame;     /* from HELLO: largest request body the broker takes */
    uint8_t *wbuf;          /* queued pipelined frames, then the request being built */
    size_t wcap;
    size_t wlen;            /* bytes in wbuf */
    size_t wstart;          /* where the request being built starts */
    uint32_t window;        /* pipelined requests other than settlements allowed without
                               their replies */
    uint32_t outstanding;   /* pipelined requests queued or sent, replies not yet read */
    uint32_t settling;      /* of which settlements (ACK, NACK, TERM): they have their own
                               limit, slimit, not the window */
    uint32_t slimit;        /* smq_settle_window(), worked out when it can change */
    uint32_t qrun_max;      /* QUIET ACKs, and ids acked QUIET, allowed in a row
                               (smq_quiet_reserve) */
    uint64_t first_async;   /* request id of the oldest outstanding pipelined request */
    slabmq_confirm_cb on_confirm;  /* called for each pipelined reply; may be NULL */
    void *confirm_arg;
    slabmq_status async_err;       /* first failure of a pipelined request since slabmq_flush */
    char async_msg[256];           /* its detail */
    slabmq_status sticky;          /* first refused pipelined publish no callback was told of:
                                      the publish *_async calls and slabmq_send return it
                                      until slabmq_client_take_error or slabmq_flush */
    char sticky_msg[256];          /* its detail */
    uint8_t *rbuf;          /* bytes read and not yet consumed */
    size_t rcap;
    size_t rstart;
    size_t rlen;
    msgpack_packer pk;      /* packs into wbuf */
    uint64_t max_fetch;     /* from HELLO: payload bytes per FETCH reply (0: not announced) */
    uint32_t max_inflight;  /* from HELLO: unacked messages per connection (0: not announced) */
    int wfail;              /* building the request ran out of memory */
    int broken;             /* an I/O error or a bad reply: every later call fails */
    char err[256];          /* detail of the last failure */
    int last;               /* status of the last failure (slabmq_status) */
    int last_level;         /* slabmq_confirm_level of the last publish with options */
    slabmq_confirm_ex_cb on_confirm_ex; /* called for each pipelined reply; may be NULL */
    void *confirm_ex_arg;
    slabmq_confirmation_cb on_confirmation; /* the same, with the request's op; may be NULL */
    void *confirmation_arg;
    struct smq_sub *subs;   /* the open subscriptions, nsubs of them (at most 64 on a broker) */
    size_t nsubs;
    struct slabmq_batch *pushed;      /* DELIVER frames read but not yet received, oldest
                                         first; as many messages as the subscriptions' credit
                                         at most */
    struct slabmq_batch **pushed_end; /* where the next one is linked */
    uint32_t features;      /* from HELLO: SMQ_FEATURE_* (0 from brokers that do not say) */
    /* Pipelined ACKs go QUIET when the broker takes it (docs/protocol.md 6.11): no reply on
     * success, so the reply to any later request confirms them. The outstanding ones, oldest
     * first, in a ring of qcap (at most smq_settle_window()'s worth). */
    struct smq_quiet *quiet;
    uint32_t qcap;
    uint32_t qhead;
    uint32_t qlen;
    uint32_t qrun;          /* QUIET ACKs at the end of the outstanding requests */
    uint64_t qids;          /* the ids they ack: coalescing (acks.c) puts many in one */
    uint64_t ping_rid;      /* the PING sent to have trailing QUIET ACKs confirmed, until its
                               reply (0: none); its reply goes to no callback */
    struct smq_ackq ackq;   /* the pipelined ACK queued last and not yet sent, which may take
                               more ids (acks.c) */
    /* FETCHes sent ahead (fetch_ahead.c), oldest first, in a ring of SLABMQ_FETCH_AHEAD_MAX
     * + 1 allocated by the first slabmq_client_set_fetch_ahead(); the first ahead_replied
     * of them have their replies. */
    struct smq_ahead *ahead;
    uint32_t ahead_depth;   /* slabmq_client_set_fetch_ahead(); 0: none sent */
    uint32_t ahead_head;
    uint32_t ahead_len;
    uint32_t ahead_replied;
    int ahead_more;         /* the last batch handed out suggested more were waiting: the
                               next call sends its FETCH ahead before it waits */
};

/* A client without a connection (fd -1): slabmq_client_connect_errbuf()'s first step, and what the fuzz harness
 * (tests/fuzz) gives a socket of its own. Free with slabmq_client_close(). NULL when out of
 * memory. */
struct slabmq_client *smq_client_new(int timeout_ms);
/* Say HELLO on c's socket and take the broker's limits from the reply; *auth receives the
 * broker's auth_required (0 from brokers that do not say). */
slabmq_status smq_client_hello(struct slabmq_client *c, const char *name, int *auth);

/* Set the detail message and return st. */
slabmq_status smq_client_fail(struct slabmq_client *c, slabmq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Start a request [op, rid, <nargs args>]; pack the arguments with c->pk. */
void smq_req_begin(struct slabmq_client *c, unsigned op, uint32_t nargs);

/* The hot requests (a PUBLISH of one message, an ACK or NACK of one id) are written with
 * protocol/mpwrite.h straight into wbuf instead of through msgpack-c's callback per value:
 * smq_req_reserve() returns room for n bytes after a new request's frame header (NULL when
 * out of memory), smq_req_wrote() records how far the request got. */
uint8_t *smq_req_reserve(struct slabmq_client *c, size_t n);
void smq_req_wrote(struct slabmq_client *c, const uint8_t *end);

/* Queue the request built since smq_req_begin as a pipelined one: its reply is read later
 * and handed to the confirm callback. Sends when the queue is large, and reads replies when
 * the window is full. *rid receives its request id. */
slabmq_status smq_req_async(struct slabmq_client *c, uint64_t *rid);
/* smq_req_async() for a settlement (a plain ACK, NACK or TERM): counted against
 * smq_settle_window(), not the window. */
slabmq_status smq_req_async_settle(struct slabmq_client *c, uint64_t *rid);
/* The most settlements outstanding: the broker's in-flight limit (HELLO's max_inflight, 10000
 * when it does not say), or the window if that is larger. A connection cannot hold more
 * unsettled messages than the broker's limit, so the settlements of everything a consumer
 * holds fit without reading a reply. */
uint32_t smq_settle_window(const struct slabmq_client *c);
/* Return the sticky error (a refused pipelined publish) after recording its detail, or
 * SLABMQ_OK: the publish *_async calls and slabmq_send check it. */
slabmq_status smq_sticky(struct slabmq_client *c);
/* QUIET ACKs in a row at most, and ids acked QUIET in a row (a QUIET ACK takes more ids by
 * coalescing only while fewer have been), so that a push consumer, which makes no
 * synchronous call, still has its acks confirmed every so often: the plain ACK after them
 * gets a reply, which confirms them. Costs the broker one small reply frame per this many
 * acked ids at most (one per 256 acks of one id, as before coalescing); a consumer that
 * fetches resets the run with each FETCH's reply. */
#define SMQ_QUIET_RUN 256

/* Whether the next pipelined ACK may go QUIET, with room kept for it so that
 * smq_req_async_quiet() cannot fail for want of it: 0, or -1 (the caller then sends a plain
 * ACK). Not when the broker does not take it, when out of memory, nor for more than
 * SMQ_QUIET_RUN or a quarter of smq_settle_window() in a row (requests, or ids acked in
 * them, whichever reaches it first): with that limit reached, the
 * reply to a plain request among the older half then frees half of it, and a request is
 * never confirmed inside the call that queued it (a limit under 4 has no QUIET ACKs). */
int smq_quiet_reserve(struct slabmq_client *c);
/* smq_req_async() for a QUIET ACK of n ids, after smq_quiet_reserve(). */
slabmq_status smq_req_async_quiet(struct slabmq_client *c, uint64_t *rid, uint64_t n);
void smq_pack_str(struct slabmq_client *c, const char *s);
/* Make room for n more bytes at the end of wbuf: 0, or -1 when out of memory (wfail set). */
int smq_wbuf_room(struct slabmq_client *c, size_t n);
/* Write the ids' count and the frame length of c->ackq, the ACK that calls coalesced into
 * (acks.c appends ids without them): once per frame, when it leaves (smq_send_queued()) or
 * when a newer ACK takes its place, not once per call. */
void smq_ack_seal(struct slabmq_client *c);
/* Bytes were appended to the last queued request (acks.c): send once 64 KiB are queued, as
 * smq_req_async() does. */
slabmq_status smq_req_grew(struct slabmq_client *c);

/* slabmq_ack_flags_async(): append the id of a call of one id to the QUIET ACK queued last
 * when it takes it, else queue a new ACK (QUIET when smq_quiet_reserve() allows). flags are
 * checked already. */
slabmq_status smq_ack_async(struct slabmq_client *c, const uint64_t *ids, size_t n,
                            unsigned flags, uint64_t *request);

/* Send the request built since smq_req_begin and read its reply. On SLABMQ_OK, *r is
 * positioned on the first result and *nresults says how many there are; the views stay valid
 * until the next call on c. extra_ms extends the call's deadline (long-poll FETCH). */
slabmq_status smq_call(struct slabmq_client *c, unsigned op, int extra_ms, struct smq_mpr *r,
                       uint32_t *nresults);

/* Checks shared by every call naming a queue: a client, and a valid name. */
slabmq_status smq_check_queue(struct slabmq_client *c, const char *queue);
/* "memory", "written" or "synced" for a level (SLABMQ_CONFIRM_MEMORY..SYNCED). */
const char *smq_confirm_name(int level);
/* A confirmation level result (a str) at r; SLABMQ_CONFIRM_DEFAULT if it is none. */
int smq_read_level(struct smq_mpr *r);

/* Mark a reply malformed. */
slabmq_status smq_bad_reply(struct slabmq_client *c, const char *what);

/* The head of a frame from the broker: [op, request_id or subscription_id, status, ...]. */
struct smq_head {
    uint32_t n;      /* elements in the frame's array */
    uint64_t op;
    uint64_t id;     /* request id; a subscription id in a DELIVER */
    uint64_t status;
    const char *msg; /* on a non-zero status: the error message ("" if none), a view */
    uint32_t mlen;
};

/* Read the head of the frame at r; on a non-zero status also its message. After it, r is on
 * the first result. 0, or -1 when the frame does not start that way. */
int smq_read_head(struct smq_mpr *r, struct smq_head *h);

/* Decode a message list [message, ...], the first of nres results at r, into a new batch
 * (free with slabmq_batch_free()). Messages are [id, deliveries, payload] or, for dead
 * letters, [id, deliveries, payload, info]; info keys and elements this library does not
 * know are skipped. */
slabmq_status smq_read_batch(struct slabmq_client *c, struct smq_mpr *r, uint32_t nres,
                             struct slabmq_batch **out);

/* Returns a new batch holding copies of b's first max messages (0 < max < b->n), which are
 * taken off b (b keeps the rest, in order); free it with slabmq_batch_free(). NULL when out
 * of memory, b unchanged. */
struct slabmq_batch *smq_batch_take(struct slabmq_batch *b, size_t max);

/* Pack a FETCH for q with wait_ms (messages.c): 0, or -1 when out of memory. */
int smq_fetch_pack(struct slabmq_client *c, const struct smq_fetch_req *q, uint32_t wait_ms);
/* The FETCH q as one round trip (messages.c): pack it, send it with what is queued, read the
 * reply into *out. */
slabmq_status smq_fetch_sync(struct slabmq_client *c, const struct smq_fetch_req *q,
                             struct slabmq_batch **out);
/* A reply to a FETCH of several queues names the queue (its second result, str or nil):
 * read it at r into b's queue. */
slabmq_status smq_fetch_read_name(struct slabmq_client *c, struct smq_mpr *r, uint32_t nres,
                                  struct slabmq_batch *b);
/* Name b's queue (len bytes of name; NULL: none). */
void smq_batch_set_queue(struct slabmq_batch *b, const char *name, size_t len);

/* fetch_ahead.c: the FETCH q through the FETCHes sent ahead (slabmq_client_set_fetch_ahead). */
slabmq_status smq_fetch_ahead(struct slabmq_client *c, const struct smq_fetch_req *q,
                              struct slabmq_batch **out);
/* 1 if rid is the FETCH sent ahead whose reply comes next, else 0. */
int smq_ahead_expects(const struct slabmq_client *c, uint64_t rid);
/* Keep the reply (head h, results at r) to the FETCH sent ahead that smq_ahead_expects(). */
slabmq_status smq_ahead_reply(struct slabmq_client *c, const struct smq_head *h,
                              struct smq_mpr *r);
/* Free what the FETCHes sent ahead brought and was never handed out (at close). */
void smq_ahead_free(struct slabmq_client *c);
/* Read one reply (pushes go to slabmq_receive()) and hand it to smq_confirm(). */
slabmq_status smq_read_confirm(struct slabmq_client *c, int64_t deadline);

/* 1 if the frame body is a DELIVER push [20, subscription, status, ...], else 0. */
int smq_is_deliver(const uint8_t *body, uint32_t len);

/* Decode a DELIVER push and append it to c->pushed, for slabmq_receive(). */
slabmq_status smq_push_deliver(struct slabmq_client *c, const uint8_t *body, uint32_t len);

/* Free the pushes not received and the subscription table (at close). */
void smq_subs_free(struct slabmq_client *c);

/* Non-blocking I/O for slabmq_receive and slabmq_send: take the next complete frame from
 * rbuf (1, consumed; the body views rbuf until the next read), or say that more bytes are
 * needed (0), or fail (-1, recorded). */
int smq_next_buffered(struct slabmq_client *c, const uint8_t **body, uint32_t *len);
/* Read what has arrived without waiting: SLABMQ_OK (possibly nothing), or the failure. */
slabmq_status smq_recv_some(struct slabmq_client *c);
/* Send the queued pipelined requests now. */
slabmq_status smq_send_queued(struct slabmq_client *c, int64_t deadline);
/* smq_send_queued() with the connection's call timeout. */
slabmq_status smq_send_now(struct slabmq_client *c);
/* Decode one pipelined reply and hand it to the confirmation callbacks. */
slabmq_status smq_confirm(struct slabmq_client *c, const uint8_t *body, uint32_t len);
/* Wait until fd is readable or the deadline (ms of CLOCK_MONOTONIC; 0: none) passes:
 * 1 readable, 0 timed out, -1 error, -2 interrupted by a signal. */
int smq_wait_readable(struct slabmq_client *c, int64_t deadline);
/* Milliseconds of CLOCK_MONOTONIC. */
int64_t smq_now_ms(void);

/* The transport (io.c): a plain socket or TLS over it. send/recv look like send(2) and
 * recv(2) (-1 with errno; EAGAIN: wait for c->io_events); smq_io_buffered says whether
 * bytes are readable without the socket (TLS keeps decrypted bytes); smq_io_strerror is
 * strerror with the TLS reason for EPROTO. */
slabmq_status smq_io_tls_start(struct slabmq_client *c, const slabmq_tls_options *t,
                               const char *host, int64_t deadline);
ssize_t smq_io_send(struct slabmq_client *c, const void *p, size_t n);
ssize_t smq_io_recv(struct slabmq_client *c, void *p, size_t n);
int smq_io_buffered(const struct slabmq_client *c);
const char *smq_io_strerror(const struct slabmq_client *c, int err);
/* Close the transport (close_notify first for TLS); fd becomes -1. */
void smq_io_close(struct slabmq_client *c);
/* Wait for fd to be ready for events until the deadline (0: forever): 1 ready, 0 timed out,
 * -1 error. */
int smq_wait_fd(int fd, short events, int64_t deadline);

#endif /* SLABMQ_CLIENT_INTERNAL_H */
