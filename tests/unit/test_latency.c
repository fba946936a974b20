/* SPDX-License-Identifier: MIT */
/* latency.c: histogram buckets, exact publish times while the queue is short, a bounded
 * error once a long backlog makes the checkpoint ring thin out, the step coming back
 * down when the backlog drains, and checkpoints (32-bit offsets from a base) 2^32 ids or
 * ms apart. */
#include "core/latency.h"

#include <string.h>
#include "t.h"

static void
test_buckets(void)
{
    struct lat_hist h = {0};

    lat_hist_observe(&h, 0);
    lat_hist_observe(&h, 1);
    lat_hist_observe(&h, 2);
    lat_hist_observe(&h, 300000);
    lat_hist_observe(&h, 300001);
    T_EQ_U64(h.bucket[0], 2); /* <= 1 ms */
    T_EQ_U64(h.bucket[1], 1); /* <= 5 ms */
    T_EQ_U64(h.bucket[LAT_BUCKETS - 1], 1);
    T_EQ_U64(h.count, 5);
    T_EQ_U64(h.sum_ms, 600004);
}

static void
test_exact_when_short(void)
{
    struct latency l = {0};

    for (uint64_t id = 1; id <= 10; id++)
        latency_published(&l, id, 1000 + id * 3);
    latency_delivered(&l, 4, 1100); /* published at 1012 */
    T_EQ_U64(l.to_deliver.count, 1);
    T_EQ_U64(l.to_deliver.sum_ms, 88);
    latency_delivered(&l, 10, 1100); /* published at 1030 */
    T_EQ_U64(l.to_deliver.sum_ms, 88 + 70);
}

/* One message a ms for 100 s, none delivered: the ring thins; every estimate stays within
 * the step reached, which stays within 1/16 of the backlog. */
static void
test_long_backlog(void)
{
    struct latency l = {0};
    const uint64_t n = 100000;
    uint64_t now = n + 1000;
    uint32_t step;

    for (uint64_t id = 1; id <= n; id++)
        latency_published(&l, id, id);
    T_ASSERT(l.n <= LAT_RING);
    T_ASSERT(l.step_ms <= n / 16);
    step = l.step_ms; /* the gaps the checkpoints have; the step shrinks as they go */
    for (uint64_t id = 1; id <= n; id += 997) {
        uint64_t before = l.to_deliver.sum_ms;
        uint64_t got;
        uint64_t want = now - id;
        latency_delivered(&l, id, now);
        got = l.to_deliver.sum_ms - before;
        if (got < want || got > want + step)
            t_fail(__FILE__, __LINE__, "id %llu: %llu ms, want %llu (step %u)",
                   (unsigned long long)id, (unsigned long long)got,
                   (unsigned long long)want, step);
    }
    /* drained: the step halves again as checkpoints go */
    latency_delivered(&l, n, now);
    for (int i = 0; i < 40; i++)
        latency_delivered(&l, n, now);
    T_EQ_INT(l.step_ms, 1);
}

static void
test_unknown_before_first_checkpoint(void)
{
    struct latency l = {0};

    latency_delivered(&l, 5, 100); /* nothing published since start: not observed */
    T_EQ_U64(l.to_deliver.count, 0);
    latency_acked(&l, 7);
    T_EQ_U64(l.to_ack.count, 1);
    T_EQ_U64(l.to_ack.bucket[2], 1); /* <= 10 ms */
}

/* Checkpoints further apart than their 32-bit offsets reach, in ids and then in time: the
 * base moves up, the new checkpoint is exact, an older message is measured from the oldest
 * checkpoint kept (a lower bound). Also from a first id above 2^32, as on a broker that has
 * run long. */
static void
test_far_apart(void)
{
    const uint64_t big = (uint64_t)1 << 32;
    struct latency l = {0};

    latency_published(&l, big + 1, 1000);
    latency_published(&l, big + 10, 1010);
    latency_published(&l, 2 * big, 1020); /* 2^32 - 1 ids after the first: fits */
    T_EQ_INT(l.n, 3);
    latency_published(&l, 2 * big + 5, 1030); /* 2^32 + 4 after the first: drops it */
    T_EQ_INT(l.n, 3);
    T_EQ_U64(l.base_id, big + 10);
    latency_delivered(&l, big + 1, 1100); /* older than every checkpoint: from big + 10 */
    T_EQ_U64(l.to_deliver.sum_ms, 90);
    latency_delivered(&l, 2 * big + 5, 1100);
    T_EQ_U64(l.to_deliver.sum_ms, 90 + 70);

    latency_published(&l, 2 * big + 6, 1040 + big); /* 2^32 ms later: only it is left */
    T_EQ_INT(l.n, 1);
    T_EQ_U64(l.base_ms, 1040 + big);
    latency_published(&l, 2 * big + 7, 1050 + big);
    latency_delivered(&l, 2 * big + 7, 1060 + big);
    T_EQ_U64(l.to_deliver.sum_ms, 90 + 70 + 10);
    T_EQ_U64(l.to_deliver.count, 3);
}

/* The per-delivery algorithm as it was before runs (f1d90a1's latency_delivered), kept here
 * as the oracle the runs are held to: a bug shared by latency_run_next() and the broker's
 * latency_delivered() (now a run of one) could not hide behind a comparison of the two. */
static uint64_t
ref_mark_id(const struct latency *l, uint32_t i)
{
    return l->base_id + l->ring[(l->head + i) % LAT_RING].id;
}

static uint64_t
ref_mark_ms(const struct latency *l, uint32_t i)
{
    return l->base_ms + l->ring[(l->head + i) % LAT_RING].ms;
}

static void
ref_delivered(struct latency *l, uint64_t id, uint64_t now_ms)
{
    uint64_t at;

    if (l->n == 0)
        return;
    if (l->n == 1 || ref_mark_id(l, 1) > id) {
        at = ref_mark_ms(l, 0);
    } else {
        uint32_t lo = 0;
        uint32_t hi = l->n;
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (ref_mark_id(l, mid) <= id)
                lo = mid;
            else
                hi = mid;
        }
        at = ref_mark_ms(l, lo);
        while (l->n > 1 && ref_mark_id(l, 1) <= id) {
            l->head = (l->head + 1) % LAT_RING;
            l->n--;
        }
    }
    lat_hist_observe(&l->to_deliver, now_ms > at ? now_ms - at : 0);
    if (l->n < LAT_RING / 4 && l->step_ms > 1)
        l->step_ms /= 2;
}

/* A run (queue_take's batch) observes exactly what the old call per delivery did (the
 * oracle above): the same struct latency, byte for byte, over random publishes and
 * batches that mix in-order ids, retries of older ids and checkpoint crossings. */
static void
test_runs_match_single(void)
{
    struct latency a;
    struct latency b;
    uint64_t next_id = 1;
    uint64_t next_del = 1;
    uint64_t now = 1000;
    uint32_t seed = 12345;
    uint32_t max_step = 0;

    memset(&a, 0, sizeof(a)); /* padding too: the structs are compared whole */
    memset(&b, 0, sizeof(b));
    for (int round = 0; round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        now += r % 7 == 0 ? (r >> 4) % 300 : r % 3;
        /* now and then a backlog: the ring thins and the step grows, to come down as it
         * drains */
        for (uint32_t k = round % 2000 == 0 ? 30000 : (r >> 10) % 20; k > 0; k--) {
            now += round % 2000 == 0;
            latency_published(&a, next_id, now);
            latency_published(&b, next_id, now);
            next_id++;
        }
        struct lat_run run = {0};
        for (uint32_t k = (r >> 14) % 80; k > 0 && next_del < next_id; k--) {
            seed = seed * 1103515245u + 12345u;
            uint64_t id = (seed >> 20) % 9 == 0 && next_del > 50 ? next_del - 1 - (seed >> 8) % 50
                                                                  : next_del++;
            ref_delivered(&a, id, now);
            latency_run_add(&b, &run, id, now);
        }
        latency_run_end(&b, &run);
        T_ASSERT(memcmp(&a, &b, sizeof(a)) == 0); /* histograms, ring, base and step */
        if (a.step_ms > max_step)
            max_step = a.step_ms;
    }
    T_ASSERT(a.to_deliver.count > 100000);
    T_ASSERT(max_step >= 64); /* the backlogs did thin the ring */
    T_ASSERT(a.to_deliver.bucket[0] > 0 && a.to_deliver.bucket[3] > 0);
}

static const struct t_case cases[] = {
    T_CASE(test_buckets),
    T_CASE(test_exact_when_short),
    T_CASE(test_long_backlog),
    T_CASE(test_unknown_before_first_checkpoint),
    T_CASE(test_far_apart),
    T_CASE(test_runs_match_single),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
