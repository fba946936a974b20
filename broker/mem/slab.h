/* SPDX-License-Identifier: MIT */
/* The slab allocator: one virtual arena, carved into pages, pages carved into equal chunks
 * by size class, each page with its own free list.
 *
 * Scheme (after memcached slabs.c, with its calcification fixed):
 *   - The arena is reserved once (virtual, MAP_NORESERVE) at the size of the memory limit;
 *     a page becomes resident only when first used, and only if the budget (mem.h) allows.
 *   - Classes grow from 64 bytes by a factor (default 1.25), 8-byte aligned, up to half a
 *     page, plus one class of a whole page. slab_class_for() picks the smallest that fits.
 *   - Each page belongs to at most one class at a time and keeps its own free list, so a page
 *     whose last chunk is freed leaves its class in O(1) and returns to a global pool, from
 *     which any class can take it: a workload that moves from small to large messages is
 *     served from the same memory (no "slab calcification").
 *   - The pool keeps a few pages resident for reuse; beyond that, freed pages are given back
 *     to the kernel (madvise) and to the budget.
 * Costs: alloc and free are O(1): no search, no system call except when a page changes hands
 * with the kernel. Page descriptors live outside the pages, so a whole page can be a chunk. */
#ifndef SLABMQ_BROKER_MEM_SLAB_H
#define SLABMQ_BROKER_MEM_SLAB_H

#include <stddef.h>
#include <stdint.h>

struct mem;

#define SLAB_MAX_CLASSES 64
#define SLAB_MIN_CHUNK 64
#define SLAB_POOL_KEEP 4 /* empty pages kept resident in the pool */
#define SLAB_SMALL_MAX 1024 /* sizes whose class comes from a table, not a search */

struct slab_page {
    void *free;             /* free chunks of this page, linked through their first word */
    uint32_t used;          /* chunks handed out */
    uint32_t carved;        /* chunks ever carved from the page's start (lazy carving) */
    int cls;                /* owning class, -1 while in the pool or never used */
    int resident;           /* 1 once touched and not yet given back with madvise */
    struct slab_page *prev; /* neighbours in the class's partial list or the pool */
    struct slab_page *next;
};

struct slab_class {
    uint32_t size;             /* chunk size, bytes */
    uint32_t per_page;         /* chunks per page */
    struct slab_page *partial; /* pages of this class with at least one free chunk */
    uint64_t pages;            /* pages owned */
    uint64_t used;             /* chunks handed out */
    uint64_t requested;        /* bytes callers asked for in those chunks */
    uint64_t allocs;           /* successful allocations, total */
    uint64_t fails;            /* allocations refused by the memory limit, total */
};

struct slab {
    struct mem *mem;              /* budget the pages are reserved from; borrowed */
    uint8_t *arena;               /* base of the reserved virtual range */
    size_t page_size;             /* bytes per page */
    uint32_t npages;              /* pages in the arena */
    uint32_t nfresh;              /* pages never used yet: arena[nfresh..] */
    struct slab_page *pages;      /* descriptors, one per page */
    struct slab_page *pool;       /* empty pages (resident ones first) */
    uint32_t pool_len;            /* pages in the pool */
    uint32_t pool_resident;       /* of which still resident */
    int nclasses;
    struct slab_class cls[SLAB_MAX_CLASSES];
    uint8_t small[SLAB_SMALL_MAX / 8 + 1]; /* class of each size up to SLAB_SMALL_MAX, by 8s */
    uint64_t pages_reused;        /* pages taken from the pool by a class, total */
};

/* Reserve an arena of arena_bytes (rounded up to pages) and build the classes. Returns 0 or
 * -1 (errno set) if the address range cannot be reserved. */
int slab_init(struct slab *s, struct mem *m, size_t arena_bytes, size_t page_size,
              double factor);
/* Release the arena. Every chunk must have been freed or be abandoned with it. */
void slab_deinit(struct slab *s);

/* Smallest class whose chunks hold size bytes, or -1 if size exceeds a page. */
int slab_class_for(const struct slab *s, size_t size);
static inline uint32_t
slab_class_size(const struct slab *s, int cls)
{
    return s->cls[cls].size;
}

/* A chunk of at least size bytes for message storage, or NULL when the limit (less the
 * budget's headroom) is reached or size > page. Free it with slab_free(s, p, size) passing
 * the same size. */
void *slab_alloc(struct slab *s, size_t size);
/* The same for records that draining needs (deliveries, waiters, connections): may use the
 * headroom. */
void *slab_alloc_reserved(struct slab *s, size_t size);
void slab_free(struct slab *s, void *p, size_t size);

/* Whether slab_alloc_reserved(s, size) would succeed now: a free chunk in the class, a page
 * in the pool, or budget for a fresh page. O(1). */
int slab_has_room(const struct slab *s, size_t size);

/* Bytes of the chunk p (its class size). */
size_t slab_chunk_size(const struct slab *s, const void *p);

/* Give the pool's resident empty pages back to the kernel and the budget. Returns bytes. */
size_t slab_trim_pool(struct slab *s);

/* Pages currently resident (owned by classes or kept in the pool). */
uint64_t slab_pages_resident(const struct slab *s);

#endif /* SLABMQ_BROKER_MEM_SLAB_H */
