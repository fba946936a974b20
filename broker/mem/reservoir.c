/* SPDX-License-Identifier: MIT */
/* Bounded buffer reservoir; see reservoir.h. */
#include "mem/reservoir.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "mem/mem.h"

void
reservoir_init(struct reservoir *r, struct mem *m, size_t max_size, uint32_t capacity)
{
    uint32_t size = RES_MIN_SIZE;
    uint32_t cap = capacity;

    *r = (struct reservoir){.mem = m, .autosize = capacity == 0};
    for (int i = 0; i < RES_MAX_CLASSES; i++) {
        r->cls[i].size = size;
        r->cls[i].cap = r->autosize ? RES_AUTO_MIN : cap;
        r->nclasses = i + 1;
        if (size >= max_size || size > UINT32_MAX / 2)
            break;
        /* doubling, and the last class exactly the largest frame: a maximum-size frame
         * takes a buffer of its own size, not the next power of two */
        size = size * 2 >= max_size || i == RES_MAX_CLASSES - 2 ? (uint32_t)max_size : size * 2;
        cap = cap / 2 < 2 ? 2 : cap / 2;
    }
}

static void
release(struct reservoir *r, struct rbuf *b)
{
    mem_release(r->mem, sizeof(*b) + b->cap);
    r->bytes -= sizeof(*b) + b->cap;
    free(b);
}

void
reservoir_deinit(struct reservoir *r)
{
    for (int i = 0; i < r->nclasses; i++) {
        struct res_class *c = &r->cls[i];
        while (c->idle) {
            struct rbuf *b = c->idle;
            c->idle = b->next;
            r->idle_bytes -= sizeof(*b) + b->cap;
            release(r, b);
        }
        c->nidle = 0;
    }
}

static int
class_for(const struct reservoir *r, size_t n)
{
    for (int i = 0; i < r->nclasses; i++)
        if (r->cls[i].size >= n)
            return i;
    return -1;
}

struct rbuf *
reservoir_get(struct reservoir *r, size_t n, int force)
{
    int ci = class_for(r, n);
    struct res_class *c = NULL;
    size_t cap = n;
    struct rbuf *b;

    if (ci >= 0) {
        c = &r->cls[ci];
        cap = c->size;
    }
    if (c && c->idle) {
        b = c->idle;
        c->idle = b->next;
        c->nidle--;
        r->idle_bytes -= sizeof(*b) + b->cap;
        r->hits++;
    } else {
        if (force)
            mem_force(r->mem, sizeof(*b) + cap);
        else if (mem_reserve(r->mem, sizeof(*b) + cap)) {
            r->denied++;
            return NULL;
        }
        b = malloc(sizeof(*b) + cap);
        if (!b) {
            mem_release(r->mem, sizeof(*b) + cap);
            r->denied++;
            return NULL;
        }
        b->cap = (uint32_t)cap;
        b->cls = (int8_t)ci;
        r->bytes += sizeof(*b) + cap;
        r->misses++;
    }
    if (c && ++c->out > c->peak_out) {
        c->peak_out = c->out;
        if (r->autosize && c->peak_out * 6 / 5 + 1 > c->cap)
            c->cap = c->peak_out * 6 / 5 + 1; /* 120% of the peak, rounded up */
    }
    b->next = NULL;
    b->start = b->len = 0;
    return b;
}

size_t
reservoir_trim(struct reservoir *r, size_t want)
{
    size_t freed = 0;

    for (int i = r->nclasses - 1; i >= 0 && freed < want; i--) {
        struct res_class *c = &r->cls[i];
        while (c->idle && freed < want) {
            struct rbuf *b = c->idle;
            c->idle = b->next;
            c->nidle--;
            r->idle_bytes -= sizeof(*b) + b->cap;
            freed += sizeof(*b) + b->cap;
            release(r, b);
        }
    }
#ifdef __GLIBC__
    /* The memory is wanted for something else, slab pages most often, which do not come from
     * malloc: hand the freed buffers' pages back to the kernel now. glibc keeps free chunks
     * below the top of its heap resident, so otherwise the pages the budget now gives to the
     * slab would add to them, and a refill after a burst of unread replies peaked at the
     * limit + 23 MiB (docs/memory.md). O(heap) once per trim, which runs only when a
     * reservation would fail and idle buffers are there to free. */
    if (freed)
        malloc_trim(0);
#endif
    return freed;
}

void
reservoir_put(struct reservoir *r, struct rbuf *b)
{
    struct res_class *c;

    if (!b)
        return;
    if (b->cls < 0) {
        r->overflows++;
        release(r, b);
        return;
    }
    c = &r->cls[b->cls];
    c->out--;
    if (c->nidle >= c->cap) {
        r->overflows++;
        release(r, b);
        return;
    }
    b->next = c->idle;
    c->idle = b;
    c->nidle++;
    r->idle_bytes += sizeof(*b) + b->cap;
}
