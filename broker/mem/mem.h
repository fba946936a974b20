/* SPDX-License-Identifier: MIT */
/* The memory budget: one counter for everything that grows with traffic (slab pages,
 * reservoir buffers, index tables), checked against --max-memory before memory is taken.
 * Every module that allocates on behalf of traffic reserves here first, so the limit is
 * decided in one place and STATS can say where the bytes are. O(1). */
#ifndef SLABMQ_BROKER_MEM_MEM_H
#define SLABMQ_BROKER_MEM_MEM_H

#include <stddef.h>
#include <stdint.h>

struct mem {
    /* Give back idle memory (pooled buffers, resident empty pages) when a reservation would
     * fail; returns the bytes released. Set by the broker; may be NULL. */
    size_t (*reclaim)(void *ctx, size_t want);
    void *reclaim_ctx;
    size_t limit;    /* --max-memory, bytes */
    size_t headroom; /* bytes kept free for draining: stored messages may not use them */
    size_t used;     /* bytes reserved by all modules */
    size_t peak;     /* highest 'used' seen, bytes */
    uint64_t denied; /* reservations refused */
};

static inline void
mem_init(struct mem *m, size_t limit)
{
    m->reclaim = NULL;
    m->reclaim_ctx = NULL;
    m->limit = limit;
    m->headroom = 0;
    m->used = 0;
    m->peak = 0;
    m->denied = 0;
}

/* Whether n more bytes fit under the limit, keeping 'keep' bytes free. */
static inline int
mem_fits(const struct mem *m, size_t n, size_t keep)
{
    return m->used <= m->limit && n + keep <= m->limit - m->used; /* used > limit: mem_force */
}

/* Make n bytes fit (keeping 'keep' free) by reclaiming idle memory if need be. */
static inline int
mem_make_room(struct mem *m, size_t n, size_t keep)
{
    if (mem_fits(m, n, keep))
        return 1;
    if (m->reclaim) {
        size_t over = m->used + n + keep > m->limit ? m->used + n + keep - m->limit : 0;
        m->reclaim(m->reclaim_ctx, over);
    }
    return mem_fits(m, n, keep);
}

/* Reserve n bytes. Returns 0, or -1 (and counts a denial) when the limit would be passed. */
static inline int
mem_reserve(struct mem *m, size_t n)
{
    if (!mem_make_room(m, n, 0)) {
        m->denied++;
        return -1;
    }
    m->used += n;
    if (m->used > m->peak)
        m->peak = m->used;
    return 0;
}

/* Reserve n bytes for new message storage: refused unless 'headroom' bytes stay free, so
 * that consumers can always fetch, ack and connect while producers are refused (delivery
 * records, I/O buffers and connections use mem_reserve and may dip into the headroom). */
static inline int
mem_reserve_bulk(struct mem *m, size_t n)
{
    if (!mem_make_room(m, n, m->headroom)) {
        m->denied++;
        return -1;
    }
    return mem_reserve(m, n);
}

/* Reserve n bytes even past the limit; for memory that must exist for the broker to keep
 * its promises (a reply to a request already executed). Callers bound how much. */
static inline void
mem_force(struct mem *m, size_t n)
{
    m->used += n;
    if (m->used > m->peak)
        m->peak = m->used;
}

static inline void
mem_release(struct mem *m, size_t n)
{
    m->used -= n;
}

static inline size_t
mem_free_bytes(const struct mem *m)
{
    return m->used >= m->limit ? 0 : m->limit - m->used;
}

#endif /* SLABMQ_BROKER_MEM_MEM_H */
