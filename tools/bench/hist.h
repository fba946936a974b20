/* SPDX-License-Identifier: MIT */
/* A latency histogram in the manner of HdrHistogram: log-linear buckets over nanoseconds.
 * Values below 128 ns have a bucket each; above, every power of two is split into 128 equal
 * buckets, so a bucket is at most 1/128 (0.78%) of the values it holds wide. The range
 * covers 1 ns to 100 s (HIST_MAX_NS); larger values are counted at HIST_MAX_NS and in
 * 'clamped'. Fixed memory (HIST_BUCKETS counters, about 31 KiB), hist_record() is O(1),
 * hist_percentile() walks the buckets once. Not thread-safe: keep one per thread and
 * hist_merge() them at the end. */
#ifndef SLABMQ_TOOLS_HIST_H
#define SLABMQ_TOOLS_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7                              /* 128 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_NS 100000000000ull                  /* 100 s */
#define HIST_MAX_EXP 36                              /* 2^36 <= HIST_MAX_NS < 2^37 */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB + HIST_SUB)

struct hist {
    uint64_t counts[HIST_BUCKETS]; /* values per bucket */
    uint64_t total;                /* values recorded */
    uint64_t min_ns;               /* smallest value recorded, ns (UINT64_MAX when empty) */
    uint64_t max_ns;               /* largest value recorded (after clamping), ns */
    uint64_t clamped;              /* values above HIST_MAX_NS, counted at HIST_MAX_NS */
    double sum_ns;                 /* sum of the values, ns, for the mean */
};

/* Empty h. */
void hist_init(struct hist *h);

/* Count one value of ns nanoseconds. */
void hist_record(struct hist *h, uint64_t ns);

/* Add every value counted in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at or below which pct percent (0-100) of the values lie, ns: the highest value
 * of the bucket holding that rank, like HdrHistogram's highestEquivalentValue, capped at the
 * largest value recorded. 0 when h is empty. */
uint64_t hist_percentile(const struct hist *h, double pct);

/* The mean, ns; 0 when empty. */
double hist_mean(const struct hist *h);

#endif /* SLABMQ_TOOLS_HIST_H */
