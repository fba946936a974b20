/* SPDX-License-Identifier: MIT */
/* The delivery index and the timer heap; see delivery.h. */
#include "core/delivery.h"

#include <stdlib.h>

#include "mem/mem.h"

#define DTABLE_MIN 1024

/* ---------------------------------------------------------------------------------------- */
/* Id hash table                                                                             */

static size_t
hash_id(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

int
dtable_init(struct dtable *t, struct mem *m)
{
    t->mem = m;
    t->count = 0;
    t->mask = DTABLE_MIN - 1;
    if (mem_reserve(m, DTABLE_MIN * sizeof(*t->b)))
        return -1;
    t->b = calloc(DTABLE_MIN, sizeof(*t->b));
    if (!t->b) {
        mem_release(m, DTABLE_MIN * sizeof(*t->b));
        return -1;
    }
    return 0;
}

void
dtable_deinit(struct dtable *t)
{
    if (!t->b)
        return;
    mem_release(t->mem, (t->mask + 1) * sizeof(*t->b));
    free(t->b);
    t->b = NULL;
}

/* Double the bucket array; on failure keep the old one. */
static void
grow(struct dtable *t)
{
    size_t n = (t->mask + 1) * 2;
    struct delivery **nb;

    if (mem_reserve(t->mem, n * sizeof(*nb)))
        return;
    nb = calloc(n, sizeof(*nb));
    if (!nb) {
        mem_release(t->mem, n * sizeof(*nb));
        return;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        struct delivery *d = t->b[i];
        while (d) {
            struct delivery *next = d->hnext;
            size_t j = hash_id(d->id) & (n - 1);
            d->hnext = nb[j];
            nb[j] = d;
            d = next;
        }
    }
    mem_release(t->mem, (t->mask + 1) * sizeof(*t->b));
    free(t->b);
    t->b = nb;
    t->mask = n - 1;
}

void
dtable_insert(struct dtable *t, struct delivery *d)
{
    size_t i;

    if (t->count > t->mask)
        grow(t);
    i = hash_id(d->id) & t->mask;
    d->hnext = t->b[i];
    t->b[i] = d;
    t->count++;
}

struct delivery *
dtable_find(const struct dtable *t, uint64_t id)
{
    struct delivery *d = t->b[hash_id(id) & t->mask];

    while (d && d->id != id)
        d = d->hnext;
    return d;
}

void
dtable_remove(struct dtable *t, struct delivery *d)
{
    struct delivery **p = &t->b[hash_id(d->id) & t->mask];

    while (*p && *p != d)
        p = &(*p)->hnext;
    if (*p) {
        *p = d->hnext;
        t->count--;
    }
    d->hnext = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Timer heap                                                                                */

void
theap_init(struct theap *h, struct mem *m)
{
    h->a = NULL;
    h->n = h->cap = h->held = 0;
    h->mem = m;
}

void
theap_deinit(struct theap *h)
{
    mem_release(h->mem, (size_t)h->cap * sizeof(*h->a));
    free(h->a);
    h->a = NULL;
    h->n = h->cap = h->held = 0;
}

static void
place(struct theap *h, uint32_t i, struct delivery *d)
{
    h->a[i] = d;
    d->heap_idx = i;
}

static void
sift_up(struct theap *h, uint32_t i)
{
    struct delivery *d = h->a[i];

    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (h->a[p]->due_ms <= d->due_ms)
            break;
        place(h, i, h->a[p]);
        i = p;
    }
    place(h, i, d);
}

static void
sift_down(struct theap *h, uint32_t i)
{
    struct delivery *d = h->a[i];

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->a[c + 1]->due_ms < h->a[c]->due_ms)
            c++;
        if (d->due_ms <= h->a[c]->due_ms)
            break;
        place(h, i, h->a[c]);
        i = c;
    }
    place(h, i, d);
}

int
theap_reserve(struct theap *h, uint32_t n)
{
    uint32_t ncap = h->cap ? h->cap : 1024;
    struct delivery **na;

    if (h->n + h->held + n <= h->cap)
        return 0;
    while (ncap < h->n + h->held + n)
        ncap *= 2;
    if (mem_reserve(h->mem, (size_t)(ncap - h->cap) * sizeof(*na)))
        return -1;
    na = realloc(h->a, (size_t)ncap * sizeof(*na));
    if (!na) {
        mem_release(h->mem, (size_t)(ncap - h->cap) * sizeof(*na));
        return -1;
    }
    h->a = na;
    h->cap = ncap;
    return 0;
}

int
theap_push(struct theap *h, struct delivery *d)
{
    if (theap_reserve(h, 1) < 0)
        return -1;
    h->a[h->n] = d;
    d->heap_idx = h->n;
    h->n++;
    sift_up(h, h->n - 1);
    return 0;
}

void
theap_remove(struct theap *h, struct delivery *d)
{
    uint32_t i = d->heap_idx;

    if (i == DLV_NO_HEAP)
        return;
    d->heap_idx = DLV_NO_HEAP;
    h->n--;
    if (i == h->n)
        return;
    place(h, i, h->a[h->n]);
    theap_update(h, h->a[i]);
}

void
theap_update(struct theap *h, struct delivery *d)
{
    uint32_t i = d->heap_idx;

    if (i > 0 && h->a[(i - 1) / 2]->due_ms > d->due_ms)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void
theap_hand_over(struct theap *h, struct delivery *from, struct delivery *to)
{
    place(h, from->heap_idx, to);
    from->heap_idx = DLV_NO_HEAP;
    h->held--;
}
