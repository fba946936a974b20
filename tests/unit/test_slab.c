/* SPDX-License-Identifier: MIT */
/* The slab allocator: classes, reuse, the memory limit, and pages moving between classes
 * through the global pool (no calcification). */
#include "mem/mem.h"
#include "mem/slab.h"
#include "t.h"

#define MiB ((size_t)1 << 20)

static void
setup(struct mem *m, struct slab *s, size_t limit)
{
    mem_init(m, limit);
    T_EQ_INT(slab_init(s, m, limit, MiB, 1.25), 0);
}

static void
test_classes(void)
{
    struct mem m;
    struct slab s;

    setup(&m, &s, 16 * MiB);
    T_EQ_INT(slab_class_size(&s, 0), SLAB_MIN_CHUNK);
    for (int i = 1; i < s.nclasses; i++) {
        T_ASSERT(slab_class_size(&s, i) > slab_class_size(&s, i - 1));
        T_EQ_INT(slab_class_size(&s, i) % 8, 0);
    }
    T_EQ_U64(slab_class_size(&s, s.nclasses - 1), MiB); /* a whole page is a class */
    T_EQ_INT(slab_class_for(&s, 1), 0);
    T_EQ_INT(slab_class_for(&s, 64), 0);
    T_EQ_INT(slab_class_for(&s, 65), 1);
    T_EQ_INT(slab_class_for(&s, MiB), s.nclasses - 1);
    T_EQ_INT(slab_class_for(&s, MiB + 1), -1);
    slab_deinit(&s);
    T_EQ_U64(m.used, 0);
}

static void
test_alloc_free_reuse(void)
{
    struct mem m;
    struct slab s;
    void *a;
    void *b;

    setup(&m, &s, 16 * MiB);
    a = slab_alloc(&s, 100);
    b = slab_alloc(&s, 100);
    T_ASSERT(a && b && a != b);
    T_EQ_U64(slab_chunk_size(&s, a), slab_class_size(&s, slab_class_for(&s, 100)));
    memset(a, 0xaa, 100);
    memset(b, 0xbb, 100);
    slab_free(&s, a, 100);
    T_ASSERT(slab_alloc(&s, 100) == a); /* the page's free list hands it back */
    T_EQ_U64(m.used, MiB);            /* one page resident */
    slab_free(&s, a, 100);
    slab_free(&s, b, 100);
    T_EQ_U64(slab_pages_resident(&s), 1); /* kept in the pool for reuse */
    T_EQ_U64(s.pool_len, 1);
    slab_deinit(&s);
}

static void
test_limit_refuses_then_recovers(void)
{
    struct mem m;
    struct slab s;
    void *chunks[64];
    int n = 0;
    int ci;

    setup(&m, &s, 16 * MiB);
    ci = slab_class_for(&s, 512 * 1024);
    while (n < 64 && (chunks[n] = slab_alloc(&s, 512 * 1024)) != NULL)
        n++;
    T_EQ_INT(n, 16 * (int)s.cls[ci].per_page); /* every page of the arena, no more */
    T_EQ_U64(m.used, 16 * MiB);
    T_ASSERT(slab_alloc(&s, 64) == NULL); /* every class refused at the limit */
    T_EQ_U64(s.cls[0].fails, 1);
    slab_free(&s, chunks[--n], 512 * 1024);
    slab_free(&s, chunks[--n], 512 * 1024);
    T_ASSERT((chunks[n++] = slab_alloc(&s, 64)) != NULL);
    slab_free(&s, chunks[--n], 64); /* the small one is last */
    while (n > 0) {
        n--;
        slab_free(&s, chunks[n], 512 * 1024);
    }
    slab_deinit(&s);
}

/* Fill memory with small chunks, free them all, then large chunks must get the pages. */
static void
test_no_calcification(void)
{
    struct mem m;
    struct slab s;
    static void *small[300000];
    void *large[32];
    size_t n = 0;
    int nl = 0;

    setup(&m, &s, 16 * MiB);
    while (n < 300000 && (small[n] = slab_alloc(&s, 100)) != NULL)
        n++;
    T_ASSERT(n > 100000);
    T_ASSERT(n < 300000);
    while (n > 0)
        slab_free(&s, small[--n], 100);
    T_EQ_U64(s.cls[slab_class_for(&s, 100)].pages, 0);
    while (nl < 32 && (large[nl] = slab_alloc(&s, 64 * 1024 - 64)) != NULL)
        nl++;
    T_EQ_INT(nl, 32); /* all of them fit: 16 pages x 16 chunks = 256 >= 32 */
    T_ASSERT(s.pages_reused > 0);
    while (nl > 0)
        slab_free(&s, large[--nl], 64 * 1024 - 64);
    /* pages beyond the resident pool were given back to the budget */
    T_ASSERT(m.used <= SLAB_POOL_KEEP * MiB);
    slab_deinit(&s);
    T_EQ_U64(m.used, 0);
}

static void
test_stats_track_waste(void)
{
    struct mem m;
    struct slab s;
    int ci;
    void *p;

    setup(&m, &s, 16 * MiB);
    ci = slab_class_for(&s, 70);
    p = slab_alloc(&s, 70);
    T_EQ_U64(s.cls[ci].used, 1);
    T_EQ_U64(s.cls[ci].requested, 70);
    T_EQ_U64(s.cls[ci].used * s.cls[ci].size - s.cls[ci].requested, slab_class_size(&s, ci) - 70);
    slab_free(&s, p, 70);
    T_EQ_U64(s.cls[ci].used, 0);
    T_EQ_U64(s.cls[ci].requested, 0);
    slab_deinit(&s);
}

static const struct t_case cases[] = {
    T_CASE(test_classes),
    T_CASE(test_alloc_free_reuse),
    T_CASE(test_limit_refuses_then_recovers),
    T_CASE(test_no_calcification),
    T_CASE(test_stats_track_waste),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
