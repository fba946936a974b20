/* SPDX-License-Identifier: MIT */
/* The log-linear latency histogram of slabmq-bench; see hist.h for the bucket scheme.
 *
 * Index of a value v: below 2^7 it is v itself. Otherwise, with e = floor(log2 v) and
 * shift = e - 7, the top eight bits of v (sub, 128 to 255) choose the bucket:
 * index = shift * 128 + sub. Bucket i >= 128 therefore starts at (i % 128 + 128) << shift
 * with shift = i / 128 - 1 and is 2^shift wide. */
#include "hist.h"

#include <string.h>

static unsigned
bucket_of(uint64_t v)
{
    unsigned e;
    unsigned shift;

    if (v < HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    shift = e - HIST_SUB_BITS;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* Highest value that falls in bucket i. */
static uint64_t
bucket_top(unsigned i)
{
    unsigned shift;
    uint64_t lo;

    if (i < HIST_SUB)
        return i;
    shift = i / HIST_SUB - 1;
    lo = (uint64_t)(i % HIST_SUB + HIST_SUB) << shift;
    return lo + ((uint64_t)1 << shift) - 1;
}

void
hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

void
hist_record(struct hist *h, uint64_t ns)
{
    if (ns > HIST_MAX_NS) {
        ns = HIST_MAX_NS;
        h->clamped++;
    }
    h->counts[bucket_of(ns)]++;
    h->total++;
    h->sum_ns += (double)ns;
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->clamped += src->clamped;
    dst->sum_ns += src->sum_ns;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t
hist_percentile(const struct hist *h, double pct)
{
    uint64_t rank;
    uint64_t seen = 0;

    if (h->total == 0)
        return 0;
    if (pct >= 100.0)
        return h->max_ns;
    rank = (uint64_t)(pct / 100.0 * (double)h->total + 0.999999999);
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max_ns ? top : h->max_ns;
        }
    }
    return h->max_ns;
}

double
hist_mean(const struct hist *h)
{
    return h->total ? h->sum_ns / (double)h->total : 0.0;
}
