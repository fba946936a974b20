/* SPDX-License-Identifier: MIT */
/* Publish-time checkpoints and fixed-bucket histograms; see latency.h. */
#include "core/latency.h"

#include <stdint.h>

const uint32_t latency_bounds_ms[LAT_BUCKETS] = {1,    5,    10,    50,    100,   500,
                                                 1000, 5000, 10000, 30000, 60000, 300000};

/* A scan from the first bound, or from the middle one for waits past it: a queue drained
 * after filling up observes hundreds of ms per delivery, for which the full scan cost 30 of
 * a delivery's 1,400 instructions (callgrind); a bisection costs more for the usual 0-1 ms. */
void
lat_hist_observe_n(struct lat_hist *h, uint64_t ms, uint64_t n)
{
    for (int i = ms > latency_bounds_ms[LAT_BUCKETS / 2] ? LAT_BUCKETS / 2 + 1 : 0;
         i < LAT_BUCKETS; i++) {
        if (ms <= latency_bounds_ms[i]) {
            h->bucket[i] += n;
            break;
        }
    }
    h->count += n;
    h->sum_ms += ms * n;
}

void
lat_hist_observe(struct lat_hist *h, uint64_t ms)
{
    lat_hist_observe_n(h, ms, 1);
}

static struct lat_mark *
mark_at(struct latency *l, uint32_t i)
{
    return &l->ring[(l->head + i) % LAT_RING];
}

/* The message id of checkpoint i (0: the oldest). */
static uint64_t
mark_id(struct latency *l, uint32_t i)
{
    return l->base_id + mark_at(l, i)->id;
}

/* The monotonic ms of checkpoint i. */
static uint64_t
mark_ms(struct latency *l, uint32_t i)
{
    return l->base_ms + mark_at(l, i)->ms;
}

/* Make room for a checkpoint (id, ms) whose offsets from the base do not fit in 32 bits:
 * drop the oldest checkpoints until the oldest left is within range of it, and count from
 * that one. Ids and times only grow, so the ring may end up empty, never out of order. */
static void
rebase(struct latency *l, uint64_t id, uint64_t ms)
{
    uint64_t bid;
    uint64_t bms;

    while (l->n && (id - mark_id(l, 0) > UINT32_MAX || ms - mark_ms(l, 0) > UINT32_MAX)) {
        l->head = (l->head + 1) % LAT_RING;
        l->n--;
    }
    bid = l->n ? mark_id(l, 0) : id;
    bms = l->n ? mark_ms(l, 0) : ms;
    for (uint32_t i = 0; i < l->n; i++) {
        struct lat_mark *m = mark_at(l, i);
        m->id = (uint32_t)(l->base_id + m->id - bid);
        m->ms = (uint32_t)(l->base_ms + m->ms - bms);
    }
    l->base_id = bid;
    l->base_ms = bms;
}

/* Full ring: keep every other checkpoint (the oldest stays) and double the step. */
static void
thin(struct latency *l)
{
    struct lat_mark keep[LAT_RING / 2];
    uint32_t n = 0;

    for (uint32_t i = 0; i < l->n; i += 2)
        keep[n++] = *mark_at(l, i);
    for (uint32_t i = 0; i < n; i++)
        l->ring[i] = keep[i];
    l->head = 0;
    l->n = n;
    l->step_ms = l->step_ms ? l->step_ms * 2 : 2;
}

/* Add checkpoint (id, now_ms), thinning the ring or moving its base first if needed. Kept
 * out of line (GCC and Clang) so that the usual publish, which adds none, does not pay for
 * the registers this one saves (publish 1,122 -> 1,100 instructions, callgrind-hotpath.sh). */
__attribute__((noinline)) static void
add_mark(struct latency *l, uint64_t id, uint64_t now_ms)
{
    if (l->step_ms == 0)
        l->step_ms = 1;
    if (l->n == LAT_RING)
        thin(l);
    if (l->n == 0 || id - l->base_id > UINT32_MAX || now_ms - l->base_ms > UINT32_MAX)
        rebase(l, id, now_ms);
    l->last_ms = (uint32_t)(now_ms - l->base_ms);
    *mark_at(l, l->n) = (struct lat_mark){(uint32_t)(id - l->base_id), l->last_ms};
    l->n++;
}

/* The newest checkpoint's time is l->last_ms, not read from the ring: with many queues each
 * publish is a cache miss on its queue, and the ring line holding the newest checkpoint
 * (one of four, known only after reading head and n) was a further one (6% of the broker's
 * time publishing round-robin over 100,000 queues, docs/performance.md). Only add_mark
 * adds checkpoints and latency_delivered never drops the newest, so it stays exact. */
void
latency_published(struct latency *l, uint64_t id, uint64_t now_ms)
{
    if (l->n && now_ms < l->base_ms + l->last_ms + l->step_ms)
        return; /* the usual case: the newest checkpoint is less than a step old */
    add_mark(l, id, now_ms);
}

/* Publish time of id by the checkpoint at or before it (the oldest if none is). */
static uint64_t
published_ms(struct latency *l, uint64_t id)
{
    uint32_t lo = 0;
    uint32_t hi = l->n;

    while (hi - lo > 1) { /* invariant: mark lo is the answer unless a later one is */
        uint32_t mid = lo + (hi - lo) / 2;
        if (mark_id(l, mid) <= id)
            lo = mid;
        else
            hi = mid;
    }
    return mark_ms(l, lo);
}

/* Observe the run's waits, all at once. The step halves as it did once per delivery: the
 * ring does not change during a run, so the condition holds for all of them or none. */
static void
run_flush(struct latency *l, struct lat_run *r)
{
    if (r->n == 0 || !r->measured)
        return;
    lat_hist_observe_n(&l->to_deliver, r->ms, r->n);
    for (uint64_t k = 0; k < r->n && l->n < LAT_RING / 4 && l->step_ms > 1; k++)
        l->step_ms /= 2;
}

void
latency_run_next(struct latency *l, struct lat_run *r, uint64_t id, uint64_t now_ms)
{
    uint64_t at;

    run_flush(l, r);
    r->n = 1;
    r->measured = l->n > 0;
    if (!r->measured) { /* published before the broker kept checkpoints: not measured */
        r->upto = UINT64_MAX; /* nor is anything else until a publish adds one */
        return;
    }
    if (l->n > 1 && mark_id(l, 1) <= id) {
        at = published_ms(l, id);
        while (l->n > 1 && mark_id(l, 1) <= id) { /* only older messages need these */
            l->head = (l->head + 1) % LAT_RING;
            l->n--;
        }
    } else {
        /* the oldest checkpoint is its own (a queue consumed as it fills): no search */
        at = mark_ms(l, 0);
    }
    /* the oldest checkpoint is now id's (or id is older than every checkpoint): every id
     * below the next checkpoint's gets the same publish time, so the same wait */
    r->upto = l->n > 1 ? mark_id(l, 1) : UINT64_MAX;
    r->ms = now_ms > at ? now_ms - at : 0;
}

void
latency_run_end(struct latency *l, struct lat_run *r)
{
    run_flush(l, r);
    r->n = 0;
    r->upto = 0;
}

void
latency_delivered(struct latency *l, uint64_t id, uint64_t now_ms)
{
    struct lat_run r = {0};

    latency_run_add(l, &r, id, now_ms);
    latency_run_end(l, &r);
}

void
latency_acked(struct latency *l, uint64_t ms)
{
    lat_hist_observe(&l->to_ack, ms);
}
