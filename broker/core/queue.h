/* SPDX-License-Identifier: MIT */
/* A named queue: its messages packed in segments, the read cursor over them, the retry FIFO
 * of messages to deliver again, and counters.
 *
 * Order of delivery: by priority, highest first; within priority 0, messages to deliver
 * again (NACKed, timed out, left by a closed connection, or at the end of a delay) first, in
 * the order they became ready again, then fresh messages in publish order. Priorities above
 * 0 have one FIFO each, of messages that all have a delivery record. Network-agnostic: consumers are opaque owners with a list head for their in-flight
 * deliveries; long-poll waiters are kept here but served by the server (wait.c).
 * Costs: publish O(1) (plus chain chunks for large payloads), take O(1) per message plus a
 * heap insert per batch, ack O(1) (a heap removal for the last of its batch); purge and free
 * O(messages). */
#ifndef SLABMQ_BROKER_CORE_QUEUE_H
#define SLABMQ_BROKER_CORE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "util/dlist.h"
#include "core/latency.h"

struct broker;
struct delivery;
struct segment;

struct queue_counters {
    uint64_t published;   /* messages accepted, total */
    uint64_t delivered;   /* deliveries made, first and repeated, total */
    uint64_t redelivered; /* deliveries of a message delivered before, total */
    uint64_t acked;       /* messages acked, total */
    uint64_t nacked;      /* messages NACKed, total */
    uint64_t timeouts;    /* visibility timeouts expired, total */
    uint64_t purged;      /* messages removed by PURGE, total */
    uint64_t dropped;     /* oldest messages dropped by the drop-oldest policy, total */
    uint64_t rejected;    /* publishes refused by the queue's limits, total */
    uint64_t compactions; /* sparse segments compacted, total */
    uint64_t moved;       /* records moved by compaction, total */
    uint64_t dead_lettered;      /* messages moved to the dead-letter queue, total */
    uint64_t dead_discarded;     /* dead letters deleted: no dead-letter queue, total */
    uint64_t dead_letter_failed; /* dead-letterings refused by the memory limit, total */
    uint64_t expired;            /* TTLs that passed, total */
    uint64_t terminated;         /* messages TERMinated, total */
    uint64_t delivery_limit;     /* messages that reached max_deliveries, total */
    uint64_t duplicates;         /* PUBLISHes found to be duplicates, total */
    uint64_t memory_stalls;      /* deliveries stopped by the memory limit, total */
};

/* What a full queue does with a new message. */
enum queue_overflow {
    QUEUE_REJECT = 0,     /* refuse the publish with ERR_QUEUE_FULL */
    QUEUE_DROP_OLDEST = 1, /* drop ready messages from the head to make room */
    QUEUE_DEAD_LETTER = 2  /* as drop-oldest, but dead-letter them (reason max-length) */
};

/* Where a queue's dead letters go. */
enum queue_dlq {
    QUEUE_DLQ_DEFAULT = 0, /* the queue's name + ".dlq" */
    QUEUE_DLQ_NONE = 1,    /* nowhere: deleted and counted */
    QUEUE_DLQ_NAMED = 2    /* dlq_name */
};

#define QUEUE_MAX_DELIVERIES_DEFAULT 20u
#define QUEUE_DEDUP_DEFAULT (1u << 20)

/* Per-message options of a publish. All zero: a plain message (8 bytes of overhead). */
struct pub_opts {
    uint64_t delay_ms;    /* not ready before now + this; 0: at once */
    uint64_t ttl_ms;      /* time to live; 0: the queue's ttl_ms */
    uint8_t prio;         /* 0 to SMQ_PRIO_MAX */
    uint8_t no_queue_ttl; /* ttl_ms 0 means none, not the queue's (recovery) */
    uint8_t record;       /* give it a delivery record even without options (recovery) */
};

struct dedup;

/* Field order is a cost: with many queues every queue a publish names is a cache miss, so
 * what a publish reads (the hot block, then the name's first bytes) comes first, in as few
 * lines as the slab's 16-byte alignment allows, and broker_prefetch_queue() loads exactly
 * those lines (queue_prefetch). Measured with slabmq-bench --spread (bench-scaling.sh). */
struct queue {
    /* hot: read or written by every publish (cmd_publish, queue_admit, queue_publish) */
    struct dlink waiters;       /* long-poll FETCHes waiting (server's struct waiter) */
    struct dlink subs;          /* subscriptions (server's struct sub), least recently
                                   served first */
    struct segment *tail;       /* segment being appended to */
    uint64_t nfresh;            /* ready messages never delivered */
    uint64_t nretry;            /* ready messages with a delivery record (any priority) */
    uint64_t ninflight;         /* delivered, not acked */
    uint64_t ndelayed;          /* NACKed with a delay, not yet ready */
    uint64_t bytes;             /* payload bytes of every message held */
    uint64_t max_messages;      /* limit on messages held (ready, in flight, delayed); 0: none */
    uint64_t max_bytes;         /* limit on payload bytes held; 0: none */
    uint64_t ttl_ms;            /* default time to live; 0: none */
    uint8_t overflow;           /* enum queue_overflow */
    uint8_t clearing;           /* being emptied: no compaction */
    uint8_t paused;             /* PAUSE: accept publishes, deliver nothing until RESUME */
    uint8_t dlq_mode;           /* enum queue_dlq */
    uint8_t durable;            /* its changes go to the journal (journal.h) */
    uint8_t confirm;            /* default confirmation of publishes (journal.confirm) */
    uint8_t dlq_len;            /* QUEUE_DLQ_NAMED: bytes of dlq_name */
    uint8_t no_compact;         /* queue_rollback: no segment may be freed by compaction */
    uint32_t hash;              /* of the name (broker_queue_hash), also in its registry slot */
    uint32_t name_len;
    char name[SMQ_NAME_MAX + 1]; /* right after the hot block: a short name shares its line */
    uint8_t mem_held;           /* the last take stopped at the memory limit (slabmq why) */
    uint32_t dedup_window;      /* bytes of producer ids remembered; 0: no de-duplication */
    /* the rest */
    struct segment *head;       /* oldest segment */
    struct segment *mhead;      /* oldest segment of records moved by compaction */
    struct segment *mtail;      /* moved-record segment being appended to */
    struct segment *sparse;     /* a sparse segment to compact at the next death elsewhere
                                   (queue_segment_died), or NULL */
    struct segment *rseg;       /* read cursor: segment of the next fresh message */
    uint32_t roff;              /* read cursor: offset in rseg */
    uint32_t next_seg;          /* size of the next segment to allocate, bytes */
    uint32_t visibility_ms;     /* redelivery timeout */
    uint32_t backoff_ms;        /* retry backoff base: 0 = redeliver at once */
    uint32_t backoff_max_ms;    /* retry backoff ceiling */
    uint32_t max_deliveries;    /* dead-letter a message coming back after this many; 0: no */
    uint64_t sid;               /* the queue's id in the store; unique, never reused */
    char *dlq_name;             /* QUEUE_DLQ_NAMED: slab copy, NUL-terminated; else NULL */
    struct dedup *dedup;        /* producer ids remembered; NULL until the first one */
    struct dlink *plists;       /* ready FIFOs of priorities 1..SMQ_PRIO_MAX ([p - 1]), or
                                   NULL until a message with a priority is published */
    uint64_t nprio;             /* ready deliveries in plists (counted in nretry too) */
    uint64_t pinned_bytes;      /* of which in flight or delayed (never dropped) */
    struct dlink retry;         /* DLV_RETRY deliveries, FIFO */
    struct dlink deliveries;    /* every delivery of this queue */
    struct dlink wake;          /* in broker->wake while its waiters are due a wake-up */
    uint32_t next_seq;          /* seq of the next segment of the main list */
    struct latency lat;         /* publish-time checkpoints and latency histograms */
    struct queue_counters c;    /* c.published: also read by every publish, right after
                                   lat's last fields, which it reads too */
};
/* A queue is one slab object: past 1,168 bytes it moves to the 1,456-byte class and every
 * declared queue costs 288 bytes more (latency.h, docs/metrics.md). */
_Static_assert(sizeof(struct queue) <= 1168, "struct queue grew past its slab class");
_Static_assert(offsetof(struct queue, name) == 120, "the hot block changed: see queue_prefetch");

/* Start loading the lines of q a publish touches: the hot block and the name's first 16 bytes,
 * and the latency ring's bookkeeping, base_ms to last_ms, with the published counter right
 * after it (32 bytes, on one line or two: queues are 16-byte aligned). */
static inline void
queue_prefetch(const struct queue *q)
{
    __builtin_prefetch(q);
    __builtin_prefetch((const char *)q + 64);
    __builtin_prefetch(q->name + 15);
    __builtin_prefetch(&q->lat.base_ms);
    __builtin_prefetch(&q->c.published);
}

/* A view of one message for PEEK. */
struct msgref {
    uint64_t id;
    struct segment *seg;
    const struct msg_ext *ext; /* dead-letter origin, or NULL */
    uint32_t deliveries;
    uint32_t off;
};
struct msg_ext;

static inline uint64_t
queue_ready(const struct queue *q)
{
    return q->nfresh + q->nretry;
}

/* Store one message. Returns 0 and its id, or -1 at the memory limit (nothing stored). */
int queue_publish(struct broker *b, struct queue *q, const void *data, uint32_t len,
                  uint64_t *id);
/* The same with per-message options (o may be NULL). A message with a delay, a TTL (its own
 * or the queue's) or a priority gets a delivery record at once. */
int queue_publish_opts(struct broker *b, struct queue *q, const void *data, uint32_t len,
                       const struct pub_opts *o, uint64_t *id);

static inline uint64_t
queue_held(const struct queue *q)
{
    return q->nfresh + q->nretry + q->ninflight + q->ndelayed;
}

/* May n more messages of 'bytes' payload (the largest 'largest' bytes) be published to q
 * under its limits? reject: only if they fit. drop-oldest: if at least the newest message
 * can be kept, since in-flight and delayed messages are never dropped. Returns 0, or -1
 * (counted in c.rejected). Nothing is dropped here: see queue_trim. */
int queue_admit(struct queue *q, uint64_t n, uint64_t bytes, uint32_t largest);
/* After publishing to a drop-oldest queue: drop ready messages from the head (oldest
 * first, the new ones too if a batch alone exceeds a limit) until within the limits, or
 * until only in-flight and delayed messages are left. */
void queue_trim(struct broker *b, struct queue *q);

/* Undo point for a batch: everything appended after it can be removed again. */
struct queue_mark {
    struct dlink *dlast; /* the last delivery record of the queue then */
    struct segment *tail;
    uint32_t used;
    uint32_t nrec;
    uint64_t nfresh;
    uint64_t bytes;
};
void queue_mark(const struct queue *q, struct queue_mark *m);
/* Remove every message published since m (none of them can have been delivered yet). */
void queue_rollback(struct broker *b, struct queue *q, const struct queue_mark *m);

/* Deliver up to max ready messages (and about max_bytes of payload, at least one) to the
 * consumer h. Fills out[] and returns the count; fewer than asked if the queue runs dry or
 * the memory limit stops new delivery records. */
struct holder;
uint32_t queue_take(struct broker *b, struct queue *q, struct holder *h, uint32_t max,
                    size_t max_bytes, struct delivery **out);

/* Acknowledge: the message is gone. */
void queue_ack(struct broker *b, struct delivery *d);
/* TERM: dead-letter d now (reason rejected). */
void queue_term(struct broker *b, struct delivery *d);
/* Extend an in-flight delivery's visibility deadline to now + the queue's timeout. */
void queue_touch(struct broker *b, struct delivery *d);
/* Make d ready again now (delay_ms 0, or the queue's backoff if it has one) or after
 * delay_ms; or dead-letter it if it reached max_deliveries or its TTL. */
void queue_nack(struct broker *b, struct delivery *d, uint64_t delay_ms);
/* d's visibility timeout passed: ready again after the queue's backoff (at once without),
 * or dead-lettered as for NACK. */
void queue_expire(struct broker *b, struct delivery *d);
/* d's owner went away: ready again at once, or dead-lettered as for NACK. */
void queue_requeue(struct broker *b, struct delivery *d);
/* d's due time passed while DELAYED (its delay ended, or its TTL) or RETRY (its TTL). */
void queue_due(struct broker *b, struct delivery *d);

/* The queue's dead-letter queue name into buf (SMQ_NAME_MAX + 1 bytes); returns its length,
 * 0 when dead letters are discarded. */
uint32_t queue_dlq_name(const struct queue *q, char *buf);
/* Set the dead-letter queue: NULL for the default, "" for none. Returns 0, or -1 at the
 * memory limit (nothing changed). */
int queue_set_dlq(struct broker *b, struct queue *q, const char *name, uint32_t len);
/* Recovery: make d a dead letter from src (reason, deliveries there). 0, or -1 at the memory
 * limit. */
int queue_restore_dead(struct broker *b, struct delivery *d, unsigned reason,
                       uint32_t deliveries, const char *src, uint32_t srclen);
/* A queue's gauges that need a walk: earliest due time of its delayed messages (0: none). */
uint64_t queue_next_due(const struct queue *q);
/* q may have messages for its consumers (waiters, subscriptions): put it on the broker's
 * wake list, served once the current request or timer sweep is done; a no-op when it has
 * none. */
void queue_wake(struct broker *b, struct queue *q);
/* Put q on the broker's wake list unless it is there: queue_wake() without its check for
 * consumers, for the request layer's waiters and subscriptions that are to be served again
 * (memory freed, output drained). O(1). */
void queue_park(struct broker *b, struct queue *q);

/* Remove ready and delayed messages; in-flight ones stay. Returns the count removed. */
uint64_t queue_purge(struct broker *b, struct queue *q);
/* Up to max ready messages in delivery order after the first 'skip' (and about max_bytes of
 * payload, at least one), without taking them. */
uint32_t queue_peek(const struct queue *q, uint64_t skip, uint32_t max, size_t max_bytes,
                    struct msgref *out);
/* Free every message and delivery and the segments. Returns how many messages were held.
 * Waiters must have been removed. */
uint64_t queue_clear(struct broker *b, struct queue *q);

#endif /* SLABMQ_BROKER_CORE_QUEUE_H */
