/* SPDX-License-Identifier: MIT */
/* Zero heap allocations per message: a real slabmqd runs with an LD_PRELOAD shim that counts
 * every malloc, calloc, realloc and free of the process (tests/alloc/alloc_count.c) and
 * reports them in STATS. Not built under sanitizers, which own malloc. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "raw.h"
#include "slabmq.h"
#include "t.h"

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
    before = t_stat(c, NULL, "heap_allocs") + t_stat(c, NULL, "heap_reallocs");
    run_workers(b.port, per_conn);
    after = t_stat(c, NULL, "heap_allocs") + t_stat(c, NULL, "heap_reallocs");
    fprintf(stderr, "heap allocations for %d messages over %d connections: %llu\n",
            per_conn * ALLOC_CONNS, ALLOC_CONNS, (unsigned long long)(after - before));
    /* below 0.001 per message; connecting 4 clients itself costs a few */
    T_ASSERT((after - before) * 1000 < (uint64_t)per_conn * ALLOC_CONNS);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* The same with the work-queue features in use                                              */

/* The ids of a FETCH/DELIVER result [message, ...], dead letters (4 elements) included. */
static uint32_t
ids_of(struct rep *p, uint64_t *ids, uint32_t cap)
{
    uint32_t n;

    if (smq_mpr_array(&p->r, &n) || n > cap)
        t_fail(__FILE__, __LINE__, "bad message array");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        if (smq_mpr_array(&p->r, &k) || (k != 3 && k != 4) || smq_mpr_uint(&p->r, &ids[i]))
            t_fail(__FILE__, __LINE__, "bad message %u", i);
        for (uint32_t j = 1; j < k; j++)
            if (smq_mpr_skip(&p->r, 4))
                t_fail(__FILE__, __LINE__, "bad message %u", i);
    }
    return n;
}

/* Send a request and read frames until its reply; DELIVER frames on the way are collected
 * into push_ids (their count into *npush). Returns the reply's first result's array or
 * count as parsed by the caller through p. */
static void
call(int fd, struct mb *m, uint64_t op, uint64_t rid, struct rep *p, uint64_t *push_ids,
     uint32_t *npush)
{
    send_mb(fd, m);
    for (int frames = 0; frames < 1000; frames++) {
        recv_rep(__FILE__, __LINE__, fd, p);
        if (p->op == op && p->rid == rid) {
            if (p->status != 0)
                t_fail(__FILE__, __LINE__, "op %llu failed: %.*s", (unsigned long long)op,
                       (int)p->msglen, p->msg);
            return;
        }
        if (p->op != SMQ_OP_DELIVER || p->status != 0)
            t_fail(__FILE__, __LINE__, "unexpected frame op %llu", (unsigned long long)p->op);
        *npush += ids_of(p, push_ids + *npush, 64 - *npush);
    }
    t_fail(__FILE__, __LINE__, "no reply among 1000 frames");
}

/* One round: 10 publishes with options (priorities, TTLs, producer ids, a short delay) to
 * "feat", a FETCH of ["feat", "feat.dlq"] that acks, NACKs and TERMs (dead letters), 8
 * publishes to "push" and the pushes of a subscription with credit 8 acked. */
static void
feature_round(int fd, int sfd, uint64_t *rid, uint64_t round, uint64_t *pending,
              uint32_t *npending)
{
    struct mb m = {0};
    struct rep p;
    uint64_t ids[64];
    uint64_t push[64];
    uint32_t npush = 0;
    uint32_t n;
    char pid[24];

    for (int i = 0; i < 10; i++) {
        mb_req(&m, SMQ_OP_PUBLISH, ++*rid, 3);
        mb_str(&m, "feat");
        mb_bin(&m, "0123456789abcdef0123456789abcdef", 32);
        mb_map(&m, 3);
        mb_str(&m, "priority");
        mb_uint(&m, (uint64_t)i % 10);
        mb_str(&m, i == 9 ? "delay_ms" : "ttl_ms");
        mb_uint(&m, i == 9 ? 1 : 600000);
        mb_str(&m, "id");
        snprintf(pid, sizeof(pid), "r%llu-%d", (unsigned long long)round, i);
        mb_str(&m, pid);
        call(fd, &m, SMQ_OP_PUBLISH, *rid, &p, push, &npush);
    }
    for (int pass = 0; pass < 2; pass++) { /* the queue first, then its dead letters */
        mb_req(&m, SMQ_OP_FETCH, ++*rid, 3);
        mb_arr(&m, 2);
        mb_str(&m, pass ? "feat.dlq" : "feat");
        mb_str(&m, pass ? "feat" : "feat.dlq");
        mb_uint(&m, 12);
        mb_uint(&m, pass ? 0 : 1000);
        call(fd, &m, SMQ_OP_FETCH, *rid, &p, push, &npush);
        n = ids_of(&p, ids, 64);
        for (uint32_t i = 0; i < n; i++) { /* ack most, NACK some (delayed), TERM some */
            unsigned op = pass || i % 5 < 3 ? SMQ_OP_ACK : i % 5 == 3 ? SMQ_OP_NACK
                                                                      : SMQ_OP_TERM;
            mb_req(&m, op, ++*rid, op == SMQ_OP_NACK ? 2 : 1);
            mb_arr(&m, 1);
            mb_uint(&m, ids[i]);
            if (op == SMQ_OP_NACK)
                mb_uint(&m, 1);
            call(fd, &m, op, *rid, &p, push, &npush);
        }
    }
    for (int i = 0; i < 8; i++) {
        mb_req(&m, SMQ_OP_PUBLISH, ++*rid, 2);
        mb_str(&m, "push");
        mb_bin(&m, "x", 1);
        call(fd, &m, SMQ_OP_PUBLISH, *rid, &p, push, &npush);
    }
    /* the subscriber acks whatever it was pushed, and what is still pending */
    npush = 0;
    while (*npending + npush < 8) {
        recv_rep(__FILE__, __LINE__, sfd, &p);
        if (p.op != SMQ_OP_DELIVER)
            t_fail(__FILE__, __LINE__, "expected a DELIVER, got op %llu",
                   (unsigned long long)p.op);
        npush += ids_of(&p, push + npush, 64 - npush);
    }
    mb_req(&m, SMQ_OP_ACK, ++*rid, 1);
    mb_arr(&m, *npending + npush);
    for (uint32_t i = 0; i < *npending; i++)
        mb_uint(&m, pending[i]);
    for (uint32_t i = 0; i < npush; i++)
        mb_uint(&m, push[i]);
    *npending = 0;
    call(sfd, &m, SMQ_OP_ACK, *rid, &p, pending, npending); /* pushes made by this ACK */
    mb_free(&m);
}

static void
test_zero_allocs_with_features(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct rep p;
    uint64_t before;
    uint64_t after;
    uint64_t rid = 10;
    uint64_t pending[64];
    uint32_t npending = 0;
    const int rounds = 3000;
    int fd;
    int sfd;

    t_broker_preload = SLABMQ_ALLOC_SHIM;
    t_broker_start(&b, NULL);
    t_broker_preload = NULL;
    c = t_client(&b);
    fd = raw_session(&b);
    sfd = raw_session(&b);
    mb_req(&m, SMQ_OP_DECLARE, ++rid, 2);
    mb_str(&m, "feat");
    mb_map(&m, 1);
    mb_str(&m, "max_deliveries");
    mb_uint(&m, 2);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_DECLARE, rid, &p);
    mb_req(&m, SMQ_OP_SUBSCRIBE, ++rid, 2);
    mb_str(&m, "push");
    mb_uint(&m, 8);
    send_mb(sfd, &m);
    EXPECT_OK(sfd, SMQ_OP_SUBSCRIBE, rid, &p);
    mb_free(&m);
    for (int r = 0; r < 300; r++) /* warm-up: queues, pools, tables, the dedup window */
        feature_round(fd, sfd, &rid, (uint64_t)r, pending, &npending);
    before = t_stat(c, NULL, "heap_allocs") + t_stat(c, NULL, "heap_reallocs");
    for (int r = 300; r < 300 + rounds; r++)
        feature_round(fd, sfd, &rid, (uint64_t)r, pending, &npending);
    after = t_stat(c, NULL, "heap_allocs") + t_stat(c, NULL, "heap_reallocs");
    fprintf(stderr,
            "heap allocations for %d messages with priorities, TTLs, delays, producer ids, "
            "dead letters, multi-queue FETCH and a subscription: %llu\n",
            rounds * 18, (unsigned long long)(after - before));
    T_ASSERT(t_stat(c, NULL, "messages") < 2000); /* the rounds do drain what they publish */
    T_ASSERT((after - before) * 1000 < (uint64_t)rounds * 18);
    close(fd);
    close(sfd);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_zero_allocs_per_message),
    T_CASE(test_zero_allocs_with_features),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
