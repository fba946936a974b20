/* SPDX-License-Identifier: MIT */
/* The bounded byte-buffer reservoir: reusable scratch and I/O buffers.
 *
 * Buffers come in capacity classes that double from 16 KiB (32, 64, 128 KiB ...), the last
 * exactly the largest frame. Each class keeps at most 'cap' idle buffers on a stack.
 *   get(n):  pop an idle buffer of the smallest class holding n bytes (a hit), or allocate a
 *            fresh one (a miss; bytes reserved from the budget).
 *   put(b):  push it back (O(1)), or free it if the class's stack is full (an overflow).
 * A request larger than the largest class gets an exact-size buffer that is never pooled.
 * Capacity: fixed per class when configured; by default ("auto") each class keeps 120% of the
 * most buffers it ever had out at once (at least RES_AUTO_MIN), the usual sizing for object
 * pools: a repeat of the worst burst is served from the pool, a bigger one falls back.
 * Costs: get and put are O(1); only misses and overflows call malloc/free.
 * Connections take their read and write buffers from here, so idle connections hold none. */
#ifndef SLABMQ_BROKER_MEM_RESERVOIR_H
#define SLABMQ_BROKER_MEM_RESERVOIR_H

#include <stddef.h>
#include <stdint.h>

struct mem;

#define RES_MIN_SIZE (16u * 1024)
#define RES_MAX_CLASSES 12
#define RES_AUTO_MIN 4 /* idle buffers an auto-sized class may always keep */

struct rbuf {
    struct rbuf *next; /* link in an output chain or an idle stack */
    uint32_t cap;      /* bytes at data */
    uint32_t start;    /* first unconsumed byte */
    uint32_t len;      /* end of valid data */
    int8_t cls;        /* class index, -1 for an exact-size buffer */
    uint8_t data[];
};

struct res_class {
    uint32_t size;      /* buffer capacity, bytes */
    uint32_t cap;       /* idle buffers kept at most */
    uint32_t nidle;     /* idle buffers on the stack */
    uint32_t out;       /* buffers handed out now */
    uint32_t peak_out;  /* most handed out at once */
    struct rbuf *idle;  /* stack of idle buffers */
};

struct reservoir {
    struct mem *mem;  /* budget; borrowed */
    int autosize;     /* capacity follows 120% of peak use */
    int nclasses;
    struct res_class cls[RES_MAX_CLASSES];
    uint64_t hits;      /* gets served from the pool */
    uint64_t misses;    /* gets that allocated */
    uint64_t overflows; /* puts that freed because the pool was full */
    uint64_t denied;    /* gets refused by the memory limit */
    size_t bytes;       /* bytes allocated now, idle and out */
    size_t idle_bytes;  /* of which idle in the pool, ready for reuse */
};

/* Classes from RES_MIN_SIZE doubling up to max_size (the last exactly max_size); class 0
 * keeps 'capacity' idle buffers, each larger class half as many (at least 2). capacity 0:
 * auto-sized. */
void reservoir_init(struct reservoir *r, struct mem *m, size_t max_size, uint32_t capacity);
/* Free every idle buffer. Buffers still out must be put back first. */
void reservoir_deinit(struct reservoir *r);

/* A buffer with cap >= n, start = len = 0. NULL if the memory limit refuses a new one (or
 * malloc fails); with force, the budget may be exceeded (for replies already owed). */
struct rbuf *reservoir_get(struct reservoir *r, size_t n, int force);
/* Give b back. Accepts NULL. */
void reservoir_put(struct reservoir *r, struct rbuf *b);
/* Free idle buffers, largest classes first, until 'want' bytes are released or none is left,
 * and (with glibc) return the freed pages to the kernel with malloc_trim(0). Returns the
 * bytes released. */
size_t reservoir_trim(struct reservoir *r, size_t want);

#endif /* SLABMQ_BROKER_MEM_RESERVOIR_H */
