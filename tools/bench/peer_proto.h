/* SPDX-License-Identifier: MIT */
/* The peer brokers' wire protocols as slabmq-peerbench speaks them (peer_proto.c): one
 * struct peer_target per target (redis-list, redis-stream, beanstalkd, nats-js), each a
 * table of functions that append requests to a session's connection and parse its replies
 * without blocking, plus the session that carries a connection and each protocol's state.
 * The producer and consumer loops (peerbench.c) drive a session through its target and know
 * nothing of any protocol. Never installed. */
#ifndef SLABMQ_TOOLS_PEER_PROTO_H
#define SLABMQ_TOOLS_PEER_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "peer_net.h"

#define PEER_NATS_REQS 8              /* pull requests in flight at most */

/* What a parse of the input found. */
enum peer_parse {
    PEER_OK,                  /* a complete reply or event */
    PEER_NEED,                /* not all of it has arrived */
    PEER_ERR                  /* an error reply or malformed input (s->c.err set) */
};

enum peer_workload { PEER_PRODUCE, PEER_DRAIN, PEER_CONCURRENT, PEER_LATENCY };

/* What the consumer side learns from the broker. */
enum peer_ev_type {
    PEER_EV_MSG,              /* a message */
    PEER_EV_ACKED,            /* the reply to an ack: 'count' messages settled */
    PEER_EV_END               /* a request has ended: it delivered all it will */
};

/* The parameters of a run. The protocols read queue, depth, batch, push_values and spread. */
struct peer_opts {
    const char *target;       /* redis-list, redis-stream, beanstalkd, nats-js */
    int port;                 /* broker port on 127.0.0.1 */
    enum peer_workload workload;
    size_t size;              /* payload bytes */
    uint64_t n;               /* messages */
    double rate;              /* msg/s for latency; 0: as fast as possible */
    uint32_t depth;           /* pipelining depth */
    uint32_t batch;           /* messages one consumer request asks for (1: one each) */
    uint32_t push_values;     /* redis-list: values per LPUSH (1: one LPUSH each) */
    uint32_t spread;          /* redis-list: round-robin over this many lists (1: one) */
    uint32_t pairs;           /* producer/consumer pairs, each on its own queue */
    const char *queue;        /* key / tube / stream name */
    int consumer_poll;        /* concurrent, latency: non-blocking requests, retried */
    double timeout_s;         /* whole-run deadline */
    int json;
};

/* A flat RESP reply: tokens in pre-order (struct peer_resp_tok is private to
 * peer_proto.c). Views point into the input buffer. */
struct peer_resp_reply {
    struct peer_resp_tok *t;
    size_t nt;
    size_t cap;
};

/* One JetStream pull request: its number (last token of its reply subject) and progress. */
struct peer_nats_req {
    uint64_t no;
    uint32_t asked;
    uint32_t got;
    int open;
};

/* Something the consumer side learns from the broker. The views point into the input
 * buffer and are valid until the next peer_net_io(). */
struct peer_event {
    enum peer_ev_type type;
    const char *data;         /* PEER_EV_MSG: payload */
    size_t len;
    const char *ack;          /* PEER_EV_MSG: what the ack needs (entry id, job id, reply) */
    size_t acklen;
    uint32_t unfilled;        /* PEER_EV_END: messages asked for that did not come */
    uint32_t count;           /* PEER_EV_ACKED: messages that reply settled */
};

struct peer_session;

/* One peer's protocol. setup readies a new session ('fresh', the producer's: delete and
 * recreate the queue where the peer has one to create); put appends a publish; put_reply
 * parses one publish reply and says in *confirmed how many publishes it confirms (an LPUSH
 * of many values confirms them all); request appends a consumer request for up to 'want'
 * messages and returns how many it asked for (0: cannot now); next_event parses what comes
 * back; ack appends the settlement of one message (NULL: none, or settled by the protocol
 * itself, as redis-stream's one XACK per reply); finish waits until the broker has taken
 * every ack (NULL: nothing to wait for). */
struct peer_target {
    const char *name;
    int batched;              /* a request can ask for many messages (o->batch) */
    int ack_replies;          /* settling a message gets a reply (PEER_EV_ACKED) */
    int (*setup)(struct peer_session *s, int consumer, int fresh);
    void (*put)(struct peer_session *s, const char *p, size_t len);
    enum peer_parse (*put_reply)(struct peer_session *s, uint32_t *confirmed);
    uint32_t (*request)(struct peer_session *s, uint32_t want, int block);
    enum peer_parse (*next_event)(struct peer_session *s, struct peer_event *ev);
    void (*ack)(struct peer_session *s, const struct peer_event *ev);
    int (*finish)(struct peer_session *s);
};

/* One connection to a peer as producer or consumer, and the state of its protocol. */
struct peer_session {
    struct peer_conn c;
    const struct peer_target *t;
    const struct peer_opts *o;
    atomic_int *stop;         /* shared: set on any error */
    int64_t deadline_ns;
    /* Redis */
    struct peer_resp_reply rr;
    uint32_t *ring;           /* commands awaiting replies (pops, reads, XACKs, LPUSHes):
                               * messages | kind << 24, oldest first */
    uint32_t ring_cap;
    uint32_t ring_head;
    uint32_t ring_len;
    int in_reply;             /* entries of rr are being handed out */
    size_t reply_used;        /* bytes of that reply */
    size_t first;             /* token of the first entry */
    size_t nent;              /* entries in the reply */
    size_t cur;               /* next entry */
    int kind;                 /* request kind of that reply (private to peer_proto.c) */
    uint32_t unfilled;
    uint32_t push_left;       /* producer: values the open LPUSH still takes */
    uint64_t puts;            /* producer: values put so far */
    uint32_t key_at;          /* spread: list the next put or pop goes to */
    uint64_t key_asked;       /* spread, consumer: pops already asked of that list */
    /* NATS */
    struct peer_nats_req reqs[PEER_NATS_REQS];
    uint64_t next_req;
    char stream[64];
    char subject[80];
    char inbox[48];           /* this connection's own reply subjects start with this */
};

/* The target called 'name', or NULL when there is none. The returned target is static. */
const struct peer_target *peer_proto_find(const char *name);

/* Open s as a producer (consumer 0) or consumer session of target t: connect to o->port and
 * run t->setup. Borrows t, o and stop, which must outlive s; the run deadline starts now.
 * 0, or -1 with s->c.err set. Call peer_proto_close() afterwards in either case. */
int peer_proto_open(struct peer_session *s, const struct peer_target *t,
                    const struct peer_opts *o, atomic_int *stop, int consumer, int fresh);

/* Close the connection of s and free its protocol state; harmless on a session that was
 * zeroed with its c.fd set to -1 and never opened. */
void peer_proto_close(struct peer_session *s);

#endif
