/* SPDX-License-Identifier: MIT */
/* slabmq-bench internals shared by its files: the parameters, the per-queue and per-thread
 * state, and the four parts (bench.c: options and workloads; bench_run.c: producer and
 * consumer threads, payloads and verification; bench_report.c: the summary, text or JSON;
 * spawn.c: a broker of our own and its RSS). Never installed. */
#ifndef SLABMQ_TOOLS_BENCH_H
#define SLABMQ_TOOLS_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hist.h"
#include "slabmq.h"

#define BENCH_MIN_SIZE 16            /* timestamp + sequence */
#define BENCH_STALL_NS 30000000000ll /* no progress for this long aborts the run */
#define BENCH_TIMEOUT_MS 30000       /* per-call client timeout */
#define BENCH_MAX_BROKER_ARGS 32
#define BENCH_SEQ_BITS 48            /* sequence = producer << 48 | n */
#define BENCH_SEEN_CHUNK_BITS 20     /* verification bitmap chunk: 2^20 sequences */
#define BENCH_SEEN_CHUNKS 4096       /* chunks per producer: 2^32 sequences */

enum bench_workload {
    BENCH_CONCURRENT, /* producers and consumers at once */
    BENCH_FILL_DRAIN, /* producers publish everything, then consumers drain it */
    BENCH_FILL,       /* producers only; the messages stay */
    BENCH_DRAIN,      /* consumers only: drain what a 'fill' left */
    BENCH_HOLD        /* fill, and report the broker's RSS per message */
};

enum bench_ack {
    BENCH_ACK_EACH,  /* one pipelined ACK per message */
    BENCH_ACK_BATCH, /* one pipelined ACK per fetched batch */
    BENCH_ACK_NONE   /* FETCH with SLABMQ_FETCH_NOACK */
};

struct bench_params {
    char host[256];                             /* broker address */
    uint16_t port;                              /* broker port */
    const char *spawn;                          /* slabmqd to start, or NULL */
    char *broker_args[BENCH_MAX_BROKER_ARGS];   /* extra slabmqd flags */
    int nbroker_args;
    pid_t broker_pid;                           /* for RSS; 0: unknown */
    enum bench_workload workload;
    int producers;
    int consumers;
    size_t size;                                /* payload bytes */
    uint64_t count;                             /* total messages; 0: by duration */
    double duration_s;                          /* publishing time when count is 0 */
    double rate;                                /* total msg/s; 0: as fast as possible */
    uint32_t window;                            /* publish window */
    uint32_t batch_publish;                     /* messages per PUBLISH_BATCH; 0 or 1: single */
    int confirm;                                /* slabmq_confirm_level; 0: plain publishes */
    uint32_t fetch_batch;                       /* FETCH max */
    uint32_t fetch_ahead;                       /* slabmq_client_set_fetch_ahead() depth of
                                                   FETCH consumers; 0: one FETCH at a time */
    uint32_t subscribe;                         /* consumers SUBSCRIBE with this credit
                                                   instead of fetching; 0: FETCH */
    enum bench_ack ack;
    int queues;
    const char *prefix;                         /* queue names are <prefix>.<i> */
    uint64_t idle_queues;                       /* other queues to create, one message each */
    uint32_t spread;                            /* >0: each producer publishes round-robin over
                                                   NAME.0..NAME.spread-1 (declared first), and
                                                   consumers fetch round-robin over them */
    uint32_t spread_group;                      /* --spread consumers name this many queues
                                                   a FETCH (slabmq_fetch_any), 1-16 */
    int verify;
    int json;
    int quiet;
    const char *tls_ca;                         /* --tls-ca: connect with TLS, trusting it */
};

/* One queue and what its producers and consumers know of each other. */
struct bench_queue {
    char name[208];
    uint64_t expected;              /* drain: messages to expect; UINT64_MAX: until empty */
    atomic_int producers_left;      /* producers still publishing to it */
    atomic_uint_fast64_t confirmed; /* messages confirmed by producers that have finished */
    atomic_uint_fast64_t consumed;  /* messages received from it, duplicates included */
};

/* Which sequences of one producer were received (and which more than once): chunked
 * bitmaps, each chunk allocated on first use so a run by duration needs no bound. */
struct bench_seen {
    _Atomic(atomic_uint_fast64_t *) chunks[BENCH_SEEN_CHUNKS]; /* received at least once */
    _Atomic(atomic_uint_fast64_t *) dups[BENCH_SEEN_CHUNKS];   /* received more than once */
};

/* What the bitmaps say at the end. */
struct bench_tally {
    uint64_t unique;   /* distinct sequences received that producers sent */
    uint64_t repeated; /* of which received more than once */
    uint64_t stray;    /* distinct sequences received that no producer reports sending */
};

/* State every thread shares. */
struct bench {
    struct bench_params p;
    struct bench_queue *queues;     /* p.queues entries */
    struct bench_seen *seen;        /* p.producers entries when verifying */
    const char **spread_names;      /* --spread: p.spread queue names, or NULL */
    atomic_int stop;                /* set on an error or a signal: every thread winds down */
    atomic_int running;             /* threads started and not yet finished */
    int64_t end_ns;                 /* duration runs: when producers stop, CLOCK_MONOTONIC */
};

/* One producer or consumer thread. Counters read by the progress line are atomic; the
 * rest is read only after the thread is joined. */
struct bench_worker {
    struct bench *b;
    int index;                      /* producer or consumer number */
    struct bench_queue *q;          /* with --spread: only its counts (every worker shares
                                       queue 0's); messages go to b->spread_names */
    uint32_t cursor;                /* --spread: index of the next queue to use */
    slabmq_client *c;               /* owned by this thread once started */
    pthread_t th;
    atomic_uint_fast64_t done;      /* producer: confirmed; consumer: received */
    uint64_t share;                 /* producer: messages to publish (count runs) */
    uint64_t sent;                  /* producer: messages handed to the library */
    uint64_t failed;                /* producer: messages refused; consumer: acks refused */
    uint64_t acked;                 /* consumer: messages the broker settled */
    uint64_t corrupt;               /* consumer, --verify: bad length, pattern or sequence */
    uint64_t duplicates;            /* consumer, --verify: sequences seen before */
    uint64_t redelivered;           /* consumer: messages with deliveries > 1 */
    int64_t first_ns;               /* first publish / first message received */
    int64_t last_ns;                /* last confirmation / last message received */
    uint32_t *fifo;                 /* producer: messages per outstanding request */
    uint32_t fifo_cap;
    uint32_t fifo_head;
    uint32_t fifo_len;
    struct hist *h;                 /* consumer: end-to-end latency */
    char err[320];                  /* first error, "" when none */
};

/* One side's throughput: messages between its first and last event. */
struct bench_side {
    uint64_t messages;
    int64_t first_ns;               /* CLOCK_MONOTONIC ns; 0: none */
    int64_t last_ns;
    int64_t broker_cpu_ns;          /* CPU time of the broker's event-loop thread during the
                                       phase (both sides of 'concurrent'); -1: unknown */
};

/* Everything the summary reports. */
struct bench_report {
    struct bench_side produce;
    struct bench_side consume;
    struct hist *lat;               /* end-to-end latency, all consumers merged */
    uint64_t refused;               /* publishes and acks the broker refused */
    uint64_t acked;                 /* messages settled by acks */
    uint64_t redelivered;           /* messages received with deliveries > 1 */
    uint64_t corrupt;
    uint64_t duplicates;            /* receipts of a sequence already received */
    struct bench_tally tally;
    uint64_t expected;              /* messages the consumers should receive; UINT64_MAX: ? */
    long rss_empty_kb;              /* hold: broker RSS before the fill, KiB */
    long rss_full_kb;               /* hold: and after, KiB */
    int broker_status;              /* spawned broker's exit status, -1 when none */
    int ran;                        /* the workload started (else there is nothing to report) */
    int interrupted;                /* stopped by SIGINT or SIGTERM */
    int errors;                     /* thread errors (printed as they are collected) */
};

/* What a workload runs, and the names of workloads and ack modes (bench.c). */
int bench_has_producers(enum bench_workload w);
int bench_has_consumers(enum bench_workload w);
const char *bench_workload_name(enum bench_workload w);
const char *bench_ack_name(enum bench_ack a);

/* Gather the counts of joined workers (np producers, nc consumers) into r (bench_report.c). */
void bench_report_collect(struct bench *b, struct bench_worker *pw, int np,
                          struct bench_worker *cw, int nc, struct bench_report *r);
/* 1 when the run counts as a failure: an error, a refusal, a message missing, corrupt or
 * duplicated, a broker that exited badly. */
int bench_report_failed(const struct bench *b, const struct bench_report *r);
/* The summary on stdout: text, or one JSON object with --json. */
void bench_report_print(const struct bench *b, const struct bench_report *r);

/* CLOCK_MONOTONIC in ns. */
int64_t bench_now_ns(void);

/* Connect to the broker of b->p (30 s timeout); NULL after printing why. */
slabmq_client *bench_connect(const struct bench *b, const char *name);

/* Thread bodies; arg is a struct bench_worker. */
void *bench_producer_main(void *arg);
void *bench_consumer_main(void *arg);

/* Messages of producer i (count runs): the count split evenly, the first ones one more. */
uint64_t bench_share(const struct bench_params *p, int i);

/* Verification totals, given how many sequences producer i sent in sent[i] (UINT64_MAX:
 * unknown). */
void bench_seen_count(const struct bench *b, const uint64_t *sent, struct bench_tally *t);
void bench_seen_free(struct bench *b);

/* A broker of our own on 127.0.0.1, port 0. */
#endif /* SLABMQ_TOOLS_BENCH_H */
