/* SPDX-License-Identifier: MIT */
/* Zero heap allocations per message: a real slabmqd runs with an LD_PRELOAD shim that counts
 * every malloc, calloc, realloc and free of the process (tests/alloc/alloc_count.c) and
 * reports them in STATS. Not built under sanitizers, which own malloc. */
#include <pthread.h>

#include "slabmq.h"
#include "t.h"

static uint64_t
stat_of(slabmq_client *c, const char *name)
{
    slabmq_stats *s;
    uint64_t v = UINT64_MAX;

    T_OK(c, slabmq_stats_get(c, NULL, &s));
    if (!slabmq_stats_find(s, name, &v))
        t_fail(__FILE__, __LINE__, "no stat named %s (is the shim preloaded?)", name);
    slabmq_stats_free(s);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Zero heap allocations per message in steady state                                        */

#define ALLOC_CONNS 4

struct alloc_arg {
    int port;
    int id;
    int messages;
    int failed;
};

/* Publish, fetch and ack 'messages' 100-byte messages one at a time, then in batches. */
static void *
alloc_worker(void *p)
{
    struct alloc_arg *a = p;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c;
    char q[16];
    uint8_t body[100];
    slabmq_payload batch[50];
    uint64_t ids[50];

    memset(body, 'm', sizeof(body));
    for (int i = 0; i < 50; i++)
        batch[i] = (slabmq_payload){body, sizeof(body)};
    snprintf(q, sizeof(q), "alloc%d", a->id);
    o.port = (uint16_t)a->port;
    if (slabmq_client_connect(&o, &c) != SLABMQ_OK) {
        a->failed = 1;
        return NULL;
    }
    for (int done = 0; done < a->messages && !a->failed;) {
        int single = done < a->messages / 4;
        slabmq_batch *b;
        size_t n;
        if ((single ? slabmq_publish(c, q, body, sizeof(body), NULL)
                    : slabmq_publish_batch(c, q, batch, 50, NULL))
                != SLABMQ_OK
            || slabmq_fetch(c, q, 50, 1000, &b) != SLABMQ_OK) {
            a->failed = 1;
            break;
        }
        n = slabmq_batch_count(b);
        for (size_t i = 0; i < n; i++)
            ids[i] = slabmq_batch_get(b, i)->id;
        if (n == 0 || slabmq_ack_batch(c, ids, n, NULL) != SLABMQ_OK)
            a->failed = 1;
        done += (int)n;
        slabmq_batch_free(b);
    }
    slabmq_client_close(c);
    return NULL;
}

static void
run_workers(int port, int messages)
{
    struct alloc_arg a[ALLOC_CONNS];
    pthread_t th[ALLOC_CONNS];

    for (int i = 0; i < ALLOC_CONNS; i++) {
        a[i] = (struct alloc_arg){port, i, messages, 0};
        T_EQ_INT(pthread_create(&th[i], NULL, alloc_worker, &a[i]), 0);
    }
    for (int i = 0; i < ALLOC_CONNS; i++) {
        pthread_join(th[i], NULL);
        T_EQ_INT(a[i].failed, 0);
    }
}

static void
test_zero_allocs_per_message(void)
{
    struct t_broker b;
    slabmq_client *c;
    uint64_t before;
    uint64_t after;
    const int per_conn = 25000;

    t_broker_preload = SLABMQ_ALLOC_SHIM;
    t_broker_start(&b, NULL);
    t_broker_preload = NULL;
    c = t_client(&b);
    run_workers(b.port, 2000); /* warm-up: connections, queues, pools, tables */
    before = stat_of(c, "heap_allocs") + stat_of(c, "heap_reallocs");
    run_workers(b.port, per_conn);
    after = stat_of(c, "heap_allocs") + stat_of(c, "heap_reallocs");
    fprintf(stderr, "heap allocations for %d messages over %d connections: %llu\n",
            per_conn * ALLOC_CONNS, ALLOC_CONNS, (unsigned long long)(after - before));
    /* below 0.001 per message; connecting 4 clients itself costs a few */
    T_ASSERT((after - before) * 1000 < (uint64_t)per_conn * ALLOC_CONNS);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_zero_allocs_per_message),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
