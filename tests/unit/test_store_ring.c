/* SPDX-License-Identifier: MIT */
/* The store's write ring (broker/store/store.c) at its end: an operation that does not fit
 * in the bytes left before the end is preceded by a skip, and the end may hold as little as
 * 8 bytes. The skip must not be written past the ring (it was, up to 56 bytes: a heap
 * overflow ASan reports). Drives the store directly, without a network. */
#include <stdatomic.h>
#include <unistd.h>

#include "core/broker.h"
#include "core/journal.h"
#include "core/queue.h"
#include "store/store.h"
#include "store/store_int.h"
#include "t.h"

static void
wait_committed(struct store *st)
{
    for (int i = 0; i < 5000 && store_committed(st) < store_appended(st); i++)
        usleep(1000);
    T_EQ_U64(store_committed(st), store_appended(st));
}

/* Leave exactly 'left' bytes between the ring's head and its end, then publish a message
 * whose operation does not fit there: the skip goes into those bytes. */
static void
skip_in(size_t left)
{
    struct broker b;
    struct broker_config c;
    char dir[64];
    char err[256];
    int created;
    uint64_t id;
    static char payload[8192];

    t_temp_dir(dir, sizeof(dir), "ring");
    broker_config_defaults(&c);
    c.max_memory = (size_t)64 << 20;
    T_EQ_INT(broker_init(&b, &c, err, sizeof(err)), 0);
    struct store *st = store_open(&b, dir, 4096, 0, err, sizeof(err));
    if (!st)
        t_fail(__FILE__, __LINE__, "store_open: %s", err);
    b.store = st;
    b.journal = store_journal(st);
    struct queue *q = broker_queue_get(&b, "q", 1, &created);
    T_ASSERT(q && q->durable);
    wait_committed(st);
    size_t at = (size_t)(atomic_load(&st->head) % st->cap);
    size_t to_end = st->cap - at;
    T_ASSERT(to_end >= sizeof(struct op) + left + 8);
    /* one operation of exactly to_end - left bytes: a header and the payload, 8-aligned */
    T_EQ_INT(queue_publish(&b, q, payload, (uint32_t)(to_end - left - sizeof(struct op)), &id),
             0);
    wait_committed(st);
    T_EQ_U64(st->cap - (size_t)(atomic_load(&st->head) % st->cap), left);
    T_EQ_INT(queue_publish(&b, q, "x", 1, &id), 0); /* does not fit: a skip of 'left' bytes */
    wait_committed(st);
    T_EQ_U64(atomic_load(&st->head) % st->cap, (uint64_t)sizeof(struct op) + 8);
    b.journal = NULL;
    store_close(st);
    b.store = NULL;
    broker_deinit(&b);
    t_remove_dir(dir);
}

static void
test_skip_in_the_last_8_bytes(void)
{
    skip_in(8);
}

static void
test_skip_in_the_last_56_bytes(void)
{
    skip_in(56);
}

static const struct t_case cases[] = {
    T_CASE(test_skip_in_the_last_8_bytes),
    T_CASE(test_skip_in_the_last_56_bytes),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
