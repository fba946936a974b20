/* SPDX-License-Identifier: MIT */
/* Slab allocator; the scheme and its costs are described in slab.h. */
#include "mem/slab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mem/mem.h"

/* ---------------------------------------------------------------------------------------- */
/* Intrusive doubly linked page lists                                                        */

static void
list_push(struct slab_page **head, struct slab_page *p)
{
    p->prev = NULL;
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
}

static void
list_unlink(struct slab_page **head, struct slab_page *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static uint8_t *
page_base(const struct slab *s, const struct slab_page *p)
{
    return s->arena + (size_t)(p - s->pages) * s->page_size;
}

/* ---------------------------------------------------------------------------------------- */
/* Set-up                                                                                    */

static void
build_classes(struct slab *s, double factor)
{
    double size = SLAB_MIN_CHUNK;
    int n = 0;

    while (n < SLAB_MAX_CLASSES - 1 && size <= (double)s->page_size / 2) {
        uint32_t sz = ((uint32_t)size + 7u) & ~7u;
        if (n == 0 || sz > s->cls[n - 1].size) {
            s->cls[n].size = sz;
            s->cls[n].per_page = (uint32_t)(s->page_size / sz);
            n++;
        }
        size *= factor;
    }
    s->cls[n].size = (uint32_t)s->page_size;
    s->cls[n].per_page = 1;
    s->nclasses = n + 1;
    for (int ci = 0, i = 0; i <= SLAB_SMALL_MAX / 8; i++) {
        while (s->cls[ci].size < (uint32_t)i * 8)
            ci++;
        s->small[i] = (uint8_t)ci;
    }
}

int
slab_init(struct slab *s, struct mem *m, size_t arena_bytes, size_t page_size, double factor)
{
    size_t npages = (arena_bytes + page_size - 1) / page_size;
    void *a;

    memset(s, 0, sizeof(*s));
    if (npages == 0 || npages > UINT32_MAX || factor < 1.05 || page_size < 4096) {
        errno = EINVAL;
        return -1;
    }
    a = mmap(NULL, npages * page_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a == MAP_FAILED)
        return -1;
    s->pages = calloc(npages, sizeof(*s->pages));
    if (!s->pages) {
        munmap(a, npages * page_size);
        errno = ENOMEM;
        return -1;
    }
    s->mem = m;
    s->arena = a;
    s->page_size = page_size;
    s->npages = (uint32_t)npages;
    for (size_t i = 0; i < npages; i++)
        s->pages[i].cls = -1;
    build_classes(s, factor);
    return 0;
}

void
slab_deinit(struct slab *s)
{
    if (!s->arena)
        return;
    mem_release(s->mem, slab_pages_resident(s) * s->page_size);
    munmap(s->arena, (size_t)s->npages * s->page_size);
    free(s->pages);
    s->arena = NULL;
    s->pages = NULL;
}

int
slab_class_for(const struct slab *s, size_t size)
{
    int lo = 0;
    int hi = s->nclasses - 1;

    if (size <= SLAB_SMALL_MAX)
        return s->small[(size + 7) / 8];
    if (size > s->cls[hi].size)
        return -1;
    while (lo < hi) { /* smallest class with size >= request */
        int mid = (lo + hi) / 2;
        if (s->cls[mid].size >= size)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---------------------------------------------------------------------------------------- */
/* Pages                                                                                     */

/* An empty page for a class: from the pool (resident first), else a fresh one from the
 * arena. NULL when the budget is exhausted. */
static int
reserve_page(struct slab *s, int reserved)
{
    return reserved ? mem_reserve(s->mem, s->page_size) : mem_reserve_bulk(s->mem, s->page_size);
}

static struct slab_page *
page_get(struct slab *s, int reserved)
{
    struct slab_page *p = s->pool;

    if (p) {
        if (!p->resident && reserve_page(s, reserved))
            return NULL;
        if (p->resident && !reserved && mem_free_bytes(s->mem) < s->mem->headroom)
            return NULL; /* resident pool pages are part of the headroom when it is short */
        list_unlink(&s->pool, p);
        s->pool_len--;
        if (p->resident)
            s->pool_resident--;
        p->resident = 1;
        s->pages_reused++;
        return p;
    }
    if (s->nfresh == s->npages || reserve_page(s, reserved))
        return NULL;
    p = &s->pages[s->nfresh++];
    p->resident = 1;
    return p;
}

/* Return an empty page to the pool: resident pages go to the front while the pool keeps
 * fewer than SLAB_POOL_KEEP of them; the rest are given back to the kernel and the budget.
 * Out of line, like class_page_new(): slab_free() then saves fewer registers. */
__attribute__((noinline)) static void
page_put(struct slab *s, struct slab_page *p)
{
    p->cls = -1;
    p->free = NULL;
    p->used = 0;
    p->carved = 0;
    if (s->pool_resident >= SLAB_POOL_KEEP) {
        madvise(page_base(s, p), s->page_size, MADV_DONTNEED);
        mem_release(s->mem, s->page_size);
        p->resident = 0;
        /* append after the resident pages: walk is bounded by SLAB_POOL_KEEP */
        struct slab_page **at = &s->pool;
        struct slab_page *prev = NULL;
        while (*at && (*at)->resident) {
            prev = *at;
            at = &(*at)->next;
        }
        p->prev = prev;
        p->next = *at;
        if (*at)
            (*at)->prev = p;
        *at = p;
    } else {
        list_push(&s->pool, p);
        s->pool_resident++;
    }
    s->pool_len++;
}

/* ---------------------------------------------------------------------------------------- */
/* Chunks                                                                                    */

/* A page for class ci, which has no partial one. Out of line: the usual allocation takes a
 * chunk of a partial page and, without this inlined, saves half the registers (a delivery
 * record's allocation and free went from 116 to 103 instructions, callgrind). */
__attribute__((noinline)) static struct slab_page *
class_page_new(struct slab *s, int ci, int reserved)
{
    struct slab_class *c = &s->cls[ci];
    struct slab_page *p = page_get(s, reserved);

    if (!p) {
        c->fails++;
        return NULL;
    }
    p->cls = ci;
    c->pages++;
    list_push(&c->partial, p);
    return p;
}

static void *
alloc(struct slab *s, size_t size, int reserved)
{
    int ci = slab_class_for(s, size);
    struct slab_class *c;
    struct slab_page *p;
    void *chunk;

    if (ci < 0)
        return NULL;
    c = &s->cls[ci];
    p = c->partial;
    if (!p && !(p = class_page_new(s, ci, reserved)))
        return NULL;
    if (p->free) {
        chunk = p->free;
        memcpy(&p->free, chunk, sizeof(void *));
    } else {
        chunk = page_base(s, p) + (size_t)p->carved * c->size;
        p->carved++;
    }
    p->used++;
    if (p->used == c->per_page)
        list_unlink(&c->partial, p);
    c->used++;
    c->requested += size;
    c->allocs++;
    return chunk;
}

void *
slab_alloc(struct slab *s, size_t size)
{
    return alloc(s, size, 0);
}

void *
slab_alloc_reserved(struct slab *s, size_t size)
{
    return alloc(s, size, 1);
}

void
slab_free(struct slab *s, void *chunk, size_t size)
{
    size_t idx;
    struct slab_page *p;
    struct slab_class *c;

    if (!chunk)
        return;
    idx = (size_t)((uint8_t *)chunk - s->arena) / s->page_size;
    p = &s->pages[idx];
    c = &s->cls[p->cls];
    if (p->used == c->per_page)
        list_push(&c->partial, p);
    memcpy(chunk, &p->free, sizeof(void *));
    p->free = chunk;
    p->used--;
    c->used--;
    c->requested -= size;
    if (p->used == 0) {
        list_unlink(&c->partial, p);
        c->pages--;
        page_put(s, p);
    }
}

int
slab_has_room(const struct slab *s, size_t size)
{
    int ci = slab_class_for(s, size);

    if (ci < 0)
        return 0;
    if (s->cls[ci].partial || (s->pool && s->pool->resident))
        return 1;
    return (s->pool || s->nfresh < s->npages) && mem_fits(s->mem, s->page_size, 0);
}

size_t
slab_chunk_size(const struct slab *s, const void *chunk)
{
    size_t idx = (size_t)((const uint8_t *)chunk - s->arena) / s->page_size;
    return s->cls[s->pages[idx].cls].size;
}

size_t
slab_trim_pool(struct slab *s)
{
    size_t freed = 0;

    for (struct slab_page *p = s->pool; p && p->resident; p = p->next) {
        madvise(page_base(s, p), s->page_size, MADV_DONTNEED);
        mem_release(s->mem, s->page_size);
        p->resident = 0;
        freed += s->page_size;
    }
    s->pool_resident = 0;
    return freed;
}

uint64_t
slab_pages_resident(const struct slab *s)
{
    uint64_t n = s->pool_resident;

    for (int i = 0; i < s->nclasses; i++)
        n += s->cls[i].pages;
    return n;
}
