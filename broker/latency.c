/* SPDX-License-Identifier: MIT */
/* Publish-time checkpoints and fixed-bucket histograms; see latency.h. */
#include "latency.h"

const uint32_t latency_bounds_ms[LAT_BUCKETS] = {1,    5,    10,    50,    100,   500,
                                                 1000, 5000, 10000, 30000, 60000, 300000};

void
lat_hist_observe(struct lat_hist *h, uint64_t ms)
{
    for (int i = 0; i < LAT_BUCKETS; i++) {
        if (ms <= latency_bounds_ms[i]) {
            h->bucket[i]++;
            break;
        }
    }
    h->count++;
    h->sum_ms += ms;
}

static struct lat_mark *
mark_at(struct latency *l, uint32_t i)
{
    return &l->ring[(l->head + i) % LAT_RING];
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

void
latency_published(struct latency *l, uint64_t id, uint64_t now_ms)
{
    if (l->step_ms == 0)
        l->step_ms = 1;
    if (l->n && now_ms < mark_at(l, l->n - 1)->ms + l->step_ms)
        return;
    if (l->n == LAT_RING)
        thin(l);
    *mark_at(l, l->n) = (struct lat_mark){id, now_ms};
    l->n++;
}

/* Publish time of id by the checkpoint at or before it (the oldest if none is). */
static uint64_t
published_ms(struct latency *l, uint64_t id)
{
    uint32_t lo = 0;
    uint32_t hi = l->n;

    while (hi - lo > 1) { /* invariant: mark lo is the answer unless a later one is */
        uint32_t mid = lo + (hi - lo) / 2;
        if (mark_at(l, mid)->id <= id)
            lo = mid;
        else
            hi = mid;
    }
    return mark_at(l, lo)->ms;
}

void
latency_delivered(struct latency *l, uint64_t id, uint64_t now_ms)
{
    uint64_t at;

    if (l->n == 0)
        return; /* published before the broker kept checkpoints: not measured */
    if (l->n == 1 || mark_at(l, 1)->id > id) {
        /* the oldest checkpoint is its own (a queue consumed as it fills): no search */
        at = mark_at(l, 0)->ms;
    } else {
        at = published_ms(l, id);
        while (l->n > 1 && mark_at(l, 1)->id <= id) {
            l->head = (l->head + 1) % LAT_RING;
            l->n--;
        }
    }
    lat_hist_observe(&l->to_deliver, now_ms > at ? now_ms - at : 0);
    if (l->n < LAT_RING / 4 && l->step_ms > 1)
        l->step_ms /= 2;
}

void
latency_acked(struct latency *l, uint64_t ms)
{
    lat_hist_observe(&l->to_ack, ms);
}
