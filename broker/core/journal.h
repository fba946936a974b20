/* SPDX-License-Identifier: MIT */
/* The journal: the one place where the core's durable changes leave it (docs/architecture.md,
 * "The journal").
 *
 * Every change to a durable queue or to a message in one is handed, as a plain record, to
 * b->journal; the SQLite store is one implementation (store.c translates records into its
 * ring operations), a replicated log is meant to be the next. b->journal is NULL when nothing
 * is durable; the core emits only for queues with q->durable set, so the in-memory path costs
 * the one `if (q->durable)` it always did and never reaches this file.
 *
 * Why records say what the state became, not which verb made it: a NACK's backoff has jitter,
 * a delivery limit or an expiry is decided against the clock, a dead letter's target queue
 * depends on settings. The core decides once; a record carries the outcome (delivery count,
 * due time, queue, dead-letter reason and source), so whoever applies it (recovery, a
 * follower) gets the same state without deciding again. Hence five kinds, not one per
 * command: which commands emit which kind is listed in docs/architecture.md.
 *
 * Costs: a record is built on the stack (no allocation) and the payload is a view (into the
 * request's frame, or into the segment holding the message), never copied here; the store
 * copies it into its ring as before. A record is valid only during the call. */
#ifndef SLABMQ_BROKER_CORE_JOURNAL_H
#define SLABMQ_BROKER_CORE_JOURNAL_H

#include <stdint.h>

#include "proto_limits.h"

struct broker;
struct delivery;
struct queue;
struct segment;

enum journal_kind {
    JOURNAL_QUEUE_PUT = 1, /* a durable queue declared, or its settings changed */
    JOURNAL_QUEUE_DEL = 2, /* a durable queue deleted, or made not durable */
    JOURNAL_MSG_PUT = 3,   /* a message stored in a durable queue */
    JOURNAL_MSG_SET = 4,   /* a stored message's state or queue changed */
    JOURNAL_MSG_DEL = 5,   /* a stored message gone */
    JOURNAL_DEDUP = 6      /* a producer id remembered in a durable queue's window */
};

/* A queue's settings, as JOURNAL_QUEUE_PUT carries them. Plain and fixed-size: the store
 * keeps it as a blob (its layout is in the database: change it only with the version). */
struct journal_qsettings {
    uint32_t version; /* JOURNAL_QSETTINGS_VERSION */
    uint32_t visibility_ms;
    uint32_t backoff_ms;
    uint32_t backoff_max_ms;
    uint32_t max_deliveries;
    uint32_t dedup_window;
    uint64_t ttl_ms;
    uint64_t max_messages;
    uint64_t max_bytes;
    uint8_t overflow;
    uint8_t paused;
    uint8_t dlq_mode;
    uint8_t dlq_len;
    uint8_t confirm;    /* the journal's confirmation level publishes default to */
    char dlq_name[SMQ_NAME_MAX];
};
#define JOURNAL_QSETTINGS_VERSION 1u

/* One durable change. Fields a kind does not use are 0 / NULL. Times are the broker's
 * monotonic clock (b->now_ms), with now_ms to turn them into wall-clock time. */
struct journal_rec {
    enum journal_kind kind;
    uint64_t sid;        /* the queue's store id (every kind) */
    uint64_t id;         /* message id (MSG_*) */
    uint64_t now_ms;     /* the broker's clock when emitted */
    /* QUEUE_PUT */
    const char *name;    /* the queue's name, name_len bytes */
    uint32_t name_len;
    const struct journal_qsettings *qs;
    /* MSG_PUT: the payload, len bytes: at data, or (data NULL) in seg at off, which may
     * be a chain (seg_copy_to). MSG_DEL: len alone (the store counts dead pack bytes). */
    uint32_t len;
    const void *data;
    const struct segment *seg;
    uint32_t off;
    /* MSG_PUT and MSG_SET: the message's state (all 0 for a plain publish) */
    uint8_t prio;
    uint8_t reason;         /* dead-letter reason (enum dl_reason); 0: not a dead letter */
    uint32_t deliveries;    /* delivery count */
    uint64_t due_ms;        /* delayed until; 0: ready */
    uint64_t expires_ms;    /* TTL end; 0: never */
    uint32_t dl_deliveries; /* a dead letter's deliveries in its source queue */
    const char *src;        /* a dead letter's source queue name, srclen bytes */
    uint32_t srclen;
    /* DEDUP: the producer id, pid_len bytes, remembered for message id */
    const void *pid;
    uint32_t pid_len;
};

struct journal_ops {
    /* Take r (durably, in order; may not fail the core: a writer that cannot keep up
     * refuses new work above the core, as store_has_room does). */
    void (*record)(void *ctx, const struct journal_rec *r);
};

struct journal {
    const struct journal_ops *ops;
    void *ctx;
    uint8_t confirm; /* the level a new durable queue's publishes are confirmed at */
};

/* Emitting, for the core's operations (queue.c, queue_dead.c, broker.c) and the requests
 * that change a queue's settings. Each does nothing when b->journal is NULL; those given a
 * queue or delivery also when its queue is not durable. d describes a message's state, or
 * for a plain message NULL. */
void journal_queue_put(struct broker *b, const struct queue *q);
void journal_queue_del(struct broker *b, const struct queue *q);
void journal_msg_put(struct broker *b, const struct queue *q, uint64_t id, const void *data,
                     uint32_t len, const struct delivery *d);
/* MSG_PUT of d's message with its payload in its segment (a dead letter arriving from a
 * queue that is not durable). */
void journal_msg_held(struct broker *b, const struct delivery *d);
void journal_msg_set(struct broker *b, const struct delivery *d);
/* The message id (len payload bytes) of queue q is gone; q must be durable. */
void journal_msg_del(struct broker *b, const struct queue *q, uint64_t id, uint32_t len);
/* Producer id (pid, len) now names message id in q's window (dedup_insert); q durable. */
void journal_dedup(struct broker *b, const struct queue *q, const void *pid, uint32_t len,
                   uint64_t id);

/* Replaying records into the core through the operations that made them (recovery; a
 * follower's log later). Nothing is emitted while b->journal is NULL, as during recovery.
 * Times are taken relative to r->now_ms.
 * A QUEUE_PUT finds or creates the queue, applies its settings and gives it the record's sid
 * (durable); returns it, or NULL at the memory limit or for settings of another version.
 * A MSG_PUT into its queue q (the caller maps r->sid) publishes the message with the
 * record's id and state, ids in rising order (b->next_id follows them); 0, or -1 at the
 * memory limit. QUEUE_DEL, MSG_SET and MSG_DEL are not replayed yet: recovery reads their
 * net effect from the store (docs/architecture.md, "The journal"). */
struct queue *journal_replay_queue(struct broker *b, const struct journal_rec *r);
int journal_replay_msg(struct broker *b, struct queue *q, const struct journal_rec *r);

/* Settings of q into qs, and back: applying is what replaying a QUEUE_PUT does to the queue
 * (0, or -1 at the memory limit or for settings of another version). */
void journal_qsettings_from(const struct queue *q, struct journal_qsettings *qs);
int journal_qsettings_apply(struct broker *b, struct queue *q,
                            const struct journal_qsettings *qs);

#endif /* SLABMQ_BROKER_CORE_JOURNAL_H */
