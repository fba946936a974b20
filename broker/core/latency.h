/* SPDX-License-Identifier: MIT */
/* Latency histograms of a queue: publish to first delivery, and delivery to ack.
 *
 * Neither a message's 8-byte record header nor its 104-byte struct delivery has room for a
 * timestamp (delivery.h), so publish times are kept per queue as a small ring of
 * checkpoints (message id, ms): one is added by a publish when at least 'step' ms have
 * passed since the last. Ids grow with time, so the checkpoint at or before an id gives its
 * publish time to within 'step'. When the ring is full every other checkpoint is dropped
 * and the step doubles; checkpoints older than the queue's read cursor are pruned on
 * delivery, and the step halves again when few are left. An id older than the oldest
 * checkpoint (possible for a message of a long backlog published with a priority) is
 * measured from that checkpoint: a lower bound. Delivery-to-ack comes from the delivery's
 * visibility deadline (due_ms minus the queue's visibility timeout): it runs from the
 * delivery or from the last TOUCH.
 * Size: 512 bytes per queue, embedded in struct queue. A checkpoint holds its id and time as
 * 32-bit offsets from a per-queue base (8 bytes, not 16), which is what keeps struct queue
 * within the 1,168-byte slab class instead of the 1,456-byte one (docs/metrics.md); it
 * fills that class exactly, so 8 more bytes in struct queue put it back in the larger one.
 * A checkpoint whose offsets would not fit (2^32 ids or about 49.7 days after the oldest one)
 * moves the base up to the oldest checkpoint that keeps them in range, dropping older ones:
 * messages older than that are then measured from the oldest checkpoint kept, as above.
 * Costs: no allocation; publish O(1) (O(ring) once per step doubling or base move), lookup
 * O(log ring), observe O(buckets). */
#ifndef SLABMQ_BROKER_CORE_LATENCY_H
#define SLABMQ_BROKER_CORE_LATENCY_H

#include <stdint.h>

#define LAT_RING 32      /* checkpoints per queue */
#define LAT_BUCKETS 12   /* finite histogram buckets; the +Inf bucket is 'count' */

/* Upper bounds of the finite buckets, ms (the same for every histogram). */
extern const uint32_t latency_bounds_ms[LAT_BUCKETS];

struct lat_hist {
    uint64_t bucket[LAT_BUCKETS]; /* observations <= latency_bounds_ms[i], not cumulative */
    uint64_t count;               /* observations, total */
    uint64_t sum_ms;              /* sum of the observations, ms */
};

struct lat_mark {
    uint32_t id; /* first message id published at or after ms, minus the base id */
    uint32_t ms; /* monotonic ms, minus the base ms */
};

/* What a publish reads (base_ms to last_ms) comes last: struct queue puts its counters right
 * after, so that these and c.published share a line or two instead of two or three. */
struct latency {
    struct lat_mark ring[LAT_RING]; /* checkpoints, oldest at 'head' */
    struct lat_hist to_deliver;     /* publish to first delivery */
    struct lat_hist to_ack;         /* delivery (or last TOUCH) to ack */
    uint64_t base_id;               /* message id the checkpoints' ids count from */
    uint64_t base_ms;               /* monotonic ms the checkpoints' times count from */
    uint32_t head;                  /* index of the oldest checkpoint */
    uint32_t n;                     /* checkpoints held */
    uint32_t step_ms;               /* least gap between checkpoints, ms (>= 1) */
    uint32_t last_ms;               /* the newest checkpoint's ms, minus base_ms (n > 0): a
                                       publish compares with it on the line of head and n
                                       rather than load the ring's line that holds it */
};

/* A zeroed struct latency is ready to use. */
void latency_published(struct latency *l, uint64_t id, uint64_t now_ms);
/* First deliveries of one queue at one instant (one FETCH's batch, one push), observed as
 * runs: the ids below the next checkpoint's share their publish time, so their wait, and a
 * run counts them with a compare each instead of a lookup and a bucket search each (71 of a
 * drained message's 975 instructions, callgrind-hotpath.sh). Start zeroed; call
 * latency_run_add() for each first delivery, then latency_run_end() before the ring can
 * change (a publish). */
struct lat_run {
    uint64_t upto;   /* ids below this are in the run */
    uint64_t ms;     /* their wait */
    uint64_t n;      /* deliveries in the run, not yet observed */
    int measured;    /* 0: the queue had no checkpoint, nothing is observed */
};

/* The first delivery of message id, outside the current run: observe the run, drop the
 * checkpoints that only older messages need, and start a run with id. */
void latency_run_next(struct latency *l, struct lat_run *r, uint64_t id, uint64_t now_ms);
void latency_run_end(struct latency *l, struct lat_run *r);
/* A run of one (tests; the broker observes runs). */
void latency_delivered(struct latency *l, uint64_t id, uint64_t now_ms);

static inline void
latency_run_add(struct latency *l, struct lat_run *r, uint64_t id, uint64_t now_ms)
{
    if (id < r->upto)
        r->n++;
    else
        latency_run_next(l, r, id, now_ms);
}
/* An ack 'ms' after delivery. */
void latency_acked(struct latency *l, uint64_t ms);
void lat_hist_observe(struct lat_hist *h, uint64_t ms);
/* n observations of ms. */
void lat_hist_observe_n(struct lat_hist *h, uint64_t ms, uint64_t n);

#endif /* SLABMQ_BROKER_CORE_LATENCY_H */
