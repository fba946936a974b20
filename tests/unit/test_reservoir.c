/* SPDX-License-Identifier: MIT */
/* The bounded byte-buffer reservoir: hits in steady state, misses in a burst beyond its
 * capacity, overflows freed on return, budget accounting back to zero (ASan checks leaks). */
#include "mem/mem.h"
#include "mem/reservoir.h"
#include "t.h"

static void
test_steady_state_hits(void)
{
    struct mem m;
    struct reservoir r;

    mem_init(&m, 64 << 20);
    reservoir_init(&r, &m, 1 << 20, 4);
    for (int i = 0; i < 1000; i++) {
        struct rbuf *b = reservoir_get(&r, 100, 0);
        T_ASSERT(b && b->cap >= 100);
        b->data[99] = 1;
        reservoir_put(&r, b);
    }
    T_EQ_U64(r.misses, 1);
    T_EQ_U64(r.hits, 999);
    T_EQ_U64(r.overflows, 0);
    reservoir_deinit(&r);
    T_EQ_U64(m.used, 0);
}

static void
test_burst_misses_then_overflows(void)
{
    struct mem m;
    struct reservoir r;
    struct rbuf *held[10];

    mem_init(&m, 64 << 20);
    reservoir_init(&r, &m, 1 << 20, 4);
    for (int i = 0; i < 10; i++)
        T_ASSERT((held[i] = reservoir_get(&r, RES_MIN_SIZE, 0)) != NULL);
    T_EQ_U64(r.misses, 10); /* a burst of 10 with an empty pool: all fresh allocations */
    for (int i = 0; i < 10; i++)
        reservoir_put(&r, held[i]);
    T_EQ_U64(r.overflows, 6); /* capacity 4: the other 6 are freed */
    T_EQ_INT(r.cls[0].nidle, 4);
    T_EQ_INT(r.cls[0].peak_out, 10);
    for (int i = 0; i < 4; i++)
        held[i] = reservoir_get(&r, 1, 0);
    T_EQ_U64(r.hits, 4);
    for (int i = 0; i < 4; i++)
        reservoir_put(&r, held[i]);
    reservoir_deinit(&r);
    T_EQ_U64(m.used, 0);
}

static void
test_classes_and_oversize(void)
{
    struct mem m;
    struct reservoir r;
    struct rbuf *a;
    struct rbuf *b;

    mem_init(&m, 64 << 20);
    reservoir_init(&r, &m, 1 << 20, 8);
    a = reservoir_get(&r, RES_MIN_SIZE + 1, 0);
    T_EQ_U64(a->cap, 2 * RES_MIN_SIZE); /* classes double */
    T_EQ_U64(r.cls[r.nclasses - 1].size, 1 << 20); /* the last is exactly the largest frame */
    b = reservoir_get(&r, (2 << 20), 0); /* beyond the largest class: exact, never pooled */
    T_ASSERT(b && b->cap == (2u << 20) && b->cls == -1);
    reservoir_put(&r, b);
    T_EQ_U64(r.overflows, 1);
    reservoir_put(&r, a);
    reservoir_deinit(&r);
    T_EQ_U64(m.used, 0);
}

static void
test_budget_denies_and_force(void)
{
    struct mem m;
    struct reservoir r;
    struct rbuf *a;
    struct rbuf *b;

    mem_init(&m, RES_MIN_SIZE + 1024);
    reservoir_init(&r, &m, 1 << 20, 8);
    a = reservoir_get(&r, 10, 0);
    T_ASSERT(a != NULL);
    T_ASSERT(reservoir_get(&r, 10, 0) == NULL);
    T_EQ_U64(r.denied, 1);
    b = reservoir_get(&r, 10, 1); /* forced: a reply that is owed */
    T_ASSERT(b != NULL);
    T_ASSERT(m.used > m.limit);
    reservoir_put(&r, a);
    reservoir_put(&r, b);
    reservoir_deinit(&r);
    T_EQ_U64(m.used, 0);
}

/* Auto-sized: after a burst of 20 at once, 24 (120%) stay pooled, so the same burst again is
 * all hits; the rest of a bigger burst falls back to fresh allocations. */
static void
test_auto_capacity_follows_peak(void)
{
    struct mem m;
    struct reservoir r;
    struct rbuf *held[30];

    mem_init(&m, 64 << 20);
    reservoir_init(&r, &m, 1 << 20, 0);
    T_EQ_INT(r.cls[0].cap, RES_AUTO_MIN);
    for (int i = 0; i < 20; i++)
        held[i] = reservoir_get(&r, 1, 0);
    T_EQ_INT(r.cls[0].cap, 25); /* 20 * 1.2 + 1 */
    for (int i = 0; i < 20; i++)
        reservoir_put(&r, held[i]);
    T_EQ_U64(r.overflows, 0);
    for (int i = 0; i < 20; i++)
        held[i] = reservoir_get(&r, 1, 0);
    T_EQ_U64(r.hits, 20);
    T_EQ_U64(r.misses, 20);
    for (int i = 0; i < 20; i++)
        reservoir_put(&r, held[i]);
    reservoir_deinit(&r);
    T_EQ_U64(m.used, 0);
}

static const struct t_case cases[] = {
    T_CASE(test_auto_capacity_follows_peak),
    T_CASE(test_steady_state_hits),
    T_CASE(test_burst_misses_then_overflows),
    T_CASE(test_classes_and_oversize),
    T_CASE(test_budget_denies_and_force),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
