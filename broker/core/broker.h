/* SPDX-License-Identifier: MIT */
/* The broker's state without the network: memory (budget, slab, reservoir), the queue
 * registry, the delivery index and the timer heap. One struct, passed explicitly, so tests
 * can run several brokers in one process and the unit tests need no sockets.
 * Single-threaded: everything here runs on the event-loop thread (docs/architecture.md). */
#ifndef SLABMQ_BROKER_CORE_BROKER_H
#define SLABMQ_BROKER_CORE_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "core/delivery.h"
#include "mem/mem.h"
#include "mem/reservoir.h"
#include "mem/slab.h"
#include "proto_limits.h"

struct queue;
struct journal;
struct store;

struct broker_config {
    size_t max_memory;              /* --max-memory, bytes */
    uint32_t max_message_size;      /* --max-message-size, bytes */
    uint32_t visibility_ms;         /* default visibility timeout of new queues */
    uint32_t reservoir_capacity;    /* idle buffers kept in the reservoir's smallest class */
    size_t page_size;               /* slab page size, bytes */
    double growth;                  /* slab class growth factor */
    size_t max_fetch_bytes;         /* payload bytes one FETCH reply carries at most */
    uint32_t max_inflight;          /* unacked deliveries one connection may hold */
};

#define BROKER_MAX_FETCH SMQ_FETCH_MAX /* messages per FETCH or PEEK, at most (proto_limits.h) */
/* Pages of the record slab. Small, so that the drain reserve (mem.headroom) holds one fresh
 * page for each of its classes, whatever the classes messages and other consumers hold: 29
 * classes (64 bytes to 32 KiB by 1.25, and a whole page) x 64 KiB = 1.8 MiB. Smaller pages
 * would cost more page changes per delivered message (one every ~630 deliveries at 64 KiB). */
#define BROKER_REC_PAGE ((size_t)64 << 10)
/* Reserve growth room for the delivery index and the timer heap, which double. */
#define BROKER_INDEX_ROOM ((size_t)256 << 10)

struct broker_hooks {
    /* q (from the wake list) may have messages for its waiters or subscriptions. */
    void (*queue_ready)(void *ctx, struct queue *q);
    /* q is about to be deleted; its waiters must go. */
    void (*queue_gone)(void *ctx, struct queue *q);
    void *ctx;
};

/* A registry slot: the name's hash beside the queue, so a lookup reads one slot line and
 * touches a queue only when the hash matches (q NULL: empty). */
struct broker_slot {
    uint32_t hash;
    struct queue *q;
};

struct broker {
    struct broker_config cfg;
    struct broker_hooks hooks;
    struct mem mem;
    struct slab slab;             /* message bytes (segments) and queues: 1 MiB pages */
    struct slab rec;              /* records: deliveries, their extensions, connections,
                                   * waiters, subscriptions, held confirmations: small pages,
                                   * so the drain reserve holds a page for every class */
    struct reservoir res;
    struct dtable dels;           /* every live delivery, by message id */
    struct theap timers;          /* INFLIGHT and DELAYED deliveries by due time */
    struct broker_slot *qb;       /* registry: open addressing, linear probing */
    size_t qmask;                 /* slots - 1 */
    size_t nqueues;
    uint64_t next_id;             /* next message id */
    uint64_t next_sid;            /* next queue store id */
    struct journal *journal;      /* where durable changes go (journal.h); NULL: nowhere */
    struct store *store;          /* the SQLite store behind the journal, for the layers
                                   * above (confirmations, stats); the core never uses it */
    uint64_t now_ms;              /* monotonic clock, ms, refreshed by broker_tick() */
    uint64_t messages;            /* messages held in all queues */
    uint64_t qgen;                /* bumped by every queue deletion: invalidates caches */
    uint64_t rng;                 /* xorshift state for backoff jitter */
    struct delivery **scratch;    /* BROKER_MAX_FETCH slots for FETCH */
    struct dlink wake;            /* queues whose waiters are to be served (queue.wake) */
    struct dlink mem_wait;        /* queues whose last take stopped at the memory limit
                                   * (queue.wake): back to 'wake' once records fit again */
    int defer_wake;               /* >0: requeues collect queues in 'wake' instead of serving */
};

/* Defaults for every field. */
void broker_config_defaults(struct broker_config *c);
/* Returns 0, or -1 with a reason in err. */
int broker_init(struct broker *b, const struct broker_config *c, char *err, size_t errlen);
void broker_deinit(struct broker *b);

/* Memory in use, not counting idle pooled buffers and pages (which are ready for reuse),
 * has reached the limit: stop taking work that needs memory until it drains. Only forced
 * output (replies to work already done) can push it there. */
int broker_over_limit(const struct broker *b);
/* Memory in use less idle pooled buffers and pages, bytes. */
size_t broker_mem_busy(const struct broker *b);

/* Refresh now_ms. */
void broker_tick(struct broker *b);

/* Registry. Names must be valid (smq_name_valid). */
struct queue *broker_queue_find(struct broker *b, const char *name, size_t len);
/* The same for a name whose broker_queue_hash() is known already (conn.c's look-ahead). */
struct queue *broker_queue_find_hashed(struct broker *b, const char *name, size_t len,
                                       uint32_t hash);
/* Find or create; NULL at the memory limit. *created says which. */
struct queue *broker_queue_get(struct broker *b, const char *name, size_t len, int *created);
/* Delete q and everything in it. Returns the messages dropped. */
uint64_t broker_queue_delete(struct broker *b, struct queue *q);
/* Queues sorted by name into out (n = b->nqueues entries, caller-sized). */
void broker_queue_list(struct broker *b, struct queue **out);
/* Every queue, in no order: start with *pos = 0, NULL at the end. The registry must not
 * change during the walk. */
static inline struct queue *
broker_queue_next(const struct broker *b, size_t *pos)
{
    while (*pos <= b->qmask)
        if (b->qb[(*pos)++].q)
            return b->qb[*pos - 1].q;
    return NULL;
}

/* Prefetching for a run of requests (conn.c): their queues' cache misses overlap instead of
 * following one another. broker_queue_hash() is the registry's hash of a name;
 * broker_prefetch_slot() starts loading its slot; broker_prefetch_queue(), called once the
 * slot has had time to arrive, starts loading the lines of the queue a publish touches.
 * Hints only: nothing is read that a lookup would not read. */
uint32_t broker_queue_hash(const char *name, size_t len);
void broker_prefetch_slot(const struct broker *b, uint32_t hash);
void broker_prefetch_queue(const struct broker *b, uint32_t hash);

/* Requeues between these two calls wake each queue's waiters once, at the end, so a waiter
 * gets every message that became ready together (a closed consumer's, expired ones). */
void broker_defer_wake(struct broker *b);
void broker_flush_wake(struct broker *b);
/* Serve the waiters of queues collected in 'wake' (deferred, or parked at the memory limit). */
void broker_serve_wake(struct broker *b);

/* Handle every delivery whose due time has passed. Returns the earliest remaining due time
 * (ms), or 0 when none is pending. */
uint64_t broker_run_timers(struct broker *b);

#endif /* SLABMQ_BROKER_CORE_BROKER_H */
