/* SPDX-License-Identifier: MIT */
/* Per-delivery state, kept only for messages that have been delivered at least once.
 *
 * A message's states and owners (one at a time):
 *
 *   state           where it is                              owner
 *   (ready, fresh)  a record in a segment at/after the       the queue's segments; no
 *                   queue's read cursor                      struct delivery exists
 *   DLV_INFLIGHT    the consumer's in-flight list, the       the consuming connection
 *                   timer heap (visibility deadline; or
 *                   a follower of its run's entry, below)
 *   DLV_RETRY       a ready list of the queue: the retry     the queue
 *                   FIFO (priority 0) or the FIFO of its
 *                   priority; also in the timer heap if it
 *                   has a TTL (its expiry)
 *   DLV_DELAYED     the timer heap (NACK or PUBLISH delay,   the queue
 *                   retry backoff)
 *   (gone)          record marked dead, delivery freed       nobody
 *
 * A message published with a delay, a TTL (its own or its queue's) or a priority above 0
 * gets its delivery at publish time (its record goes to the queue's moved-record segments, which
 * the read cursor never visits), and so does a dead letter: those options need per-message
 * state that the 8-byte record header has no room for.
 *
 * Deliveries are slab objects, found by id in a hash table (for ACK/NACK) and ordered by
 * due time in one binary heap shared by every queue: visibility deadlines and NACK delays
 * alike, so there is no libevent timer per message. Costs: lookup O(1) expected, heap
 * insert and remove O(log n).
 *
 * Runs: the messages of one take have the same deadline and sit one after another in their
 * consumer's in-flight list. A run is a longest stretch of that list with one queue and one
 * due_ms; only its first delivery needs a heap entry (the others are "followers", with
 * heap_idx DLV_NO_HEAP), and when that one leaves (acked, NACKed, timed out) or is TOUCHed
 * its entry passes to the next follower, which has the same due time, so the heap needs no
 * sift: O(1). Every message keeps its own due_ms and times out exactly when it did with an
 * entry each; the heap just holds one entry per batch instead of per message (a drain acking
 * each in order spent a push, a root removal and a sift-down per message). The heap keeps a
 * slot in reserve for each follower (theap.held), so turning one into an entry never needs
 * memory. */
#ifndef SLABMQ_BROKER_CORE_DELIVERY_H
#define SLABMQ_BROKER_CORE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "util/dlist.h"

struct queue;
struct segment;
struct mem;
struct slab;

/* Why a message was dead-lettered (docs/protocol.md 7.6). */
enum dl_reason {
    DL_NONE = 0,
    DL_DELIVERY_LIMIT,
    DL_REJECTED,
    DL_EXPIRED,
    DL_MAX_LENGTH
};

/* The rarely needed part of a message's state, a slab object of msg_ext_size() bytes, only
 * for messages with a TTL or that were dead-lettered. */
struct msg_ext {
    uint64_t expires_ms;    /* TTL end, monotonic ms; 0: never */
    uint32_t dl_deliveries; /* deliveries in the source queue when dead-lettered */
    uint8_t reason;         /* enum dl_reason; DL_NONE: not a dead letter */
    uint8_t srclen;         /* bytes of src */
    char src[];             /* source queue name, not NUL-terminated */
};

static inline size_t
msg_ext_size(const struct msg_ext *e)
{
    return sizeof(*e) + e->srclen;
}

/* Name of a dead-letter reason as the protocol spells it. */
const char *dl_reason_name(unsigned reason);

/* A consumer's in-flight deliveries (embedded in its connection). */
struct holder {
    struct dlink list;  /* DLV_INFLIGHT deliveries, delivery.slink */
    uint32_t n;         /* how many */
    uint32_t *sub_out;  /* per subscription slot: its deliveries in flight; NULL if the
                           consumer has never subscribed */
};

enum dlv_state {
    DLV_INFLIGHT = 1,
    DLV_RETRY,
    DLV_DELAYED
};

#define DLV_NO_HEAP UINT32_MAX

struct delivery {
    uint64_t id;              /* message id */
    uint64_t due_ms;          /* INFLIGHT: redelivery deadline; DELAYED: ready time (mono ms) */
    struct queue *q;          /* queue the message belongs to */
    struct segment *seg;      /* segment holding the record */
    struct holder *owner;     /* consumer while INFLIGHT, else NULL */
    struct delivery *hnext;   /* next in the id hash bucket */
    struct dlink qlink;       /* in q->deliveries: every delivery of the queue */
    struct dlink slink;       /* INFLIGHT: owner's list; RETRY: q->retry; else unlinked */
    struct msg_ext *ext;      /* TTL and dead-letter origin, or NULL */
    uint32_t len;             /* payload bytes */
    uint32_t deliveries;      /* times delivered */
    uint32_t heap_idx;        /* position in the timer heap, or DLV_NO_HEAP */
    uint16_t off;             /* record offset in seg (segments are below 64 KiB) */
    uint8_t state : 4;        /* enum dlv_state */
    uint8_t prio : 4;         /* priority, 0 to SMQ_PRIO_MAX */
    uint8_t sub;              /* INFLIGHT: subscription slot + 1 in the owner; 0: fetched */
};
/* 104 bytes: exactly a slab class (64, 80, 104, 128...); one more byte would cost 24. */

/* Id -> delivery hash table; chained, power-of-two buckets, grown by doubling. */
struct dtable {
    struct delivery **b; /* buckets */
    size_t mask;         /* buckets - 1 */
    size_t count;        /* entries */
    struct mem *mem;     /* budget for the bucket array; borrowed */
};

int dtable_init(struct dtable *t, struct mem *m);
void dtable_deinit(struct dtable *t);
/* Insert d (its id must not be present). Growing may fail at the memory limit; the entry
 * is inserted anyway and the table just gets longer chains. */
void dtable_insert(struct dtable *t, struct delivery *d);
struct delivery *dtable_find(const struct dtable *t, uint64_t id);
void dtable_remove(struct dtable *t, struct delivery *d);

/* Min-heap of deliveries by due_ms. */
struct theap {
    struct delivery **a; /* heap array */
    uint32_t n;          /* entries */
    uint32_t held;       /* slots kept free for followers (in-flight deliveries whose run's
                            first delivery has the entry) */
    uint32_t cap;        /* slots */
    struct mem *mem;     /* budget for the array; borrowed */
};

void theap_init(struct theap *h, struct mem *m);
void theap_deinit(struct theap *h);
/* Make room for n more entries besides those held for followers. Returns 0, or -1 at the
 * memory limit. */
int theap_reserve(struct theap *h, uint32_t n);
/* Whether a slot is free for one more entry or follower without growing. */
static inline int
theap_has_room(const struct theap *h)
{
    return h->n + h->held < h->cap;
}
/* Returns 0, or -1 if the array could not grow (memory limit). */
int theap_push(struct theap *h, struct delivery *d);
void theap_remove(struct theap *h, struct delivery *d);
static inline struct delivery *
theap_min(const struct theap *h)
{
    return h->n ? h->a[0] : NULL;
}
/* Re-position d after its due_ms changed. */
void theap_update(struct theap *h, struct delivery *d);
/* Follower 'to' (same due_ms as 'from') takes from's entry; from is then out of the heap.
 * O(1): no sift. */
void theap_hand_over(struct theap *h, struct delivery *from, struct delivery *to);

#endif /* SLABMQ_BROKER_CORE_DELIVERY_H */
