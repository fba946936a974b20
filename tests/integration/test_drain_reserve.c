/* SPDX-License-Identifier: MIT */
/* Draining is always possible at the memory limit (docs/memory.md, "The limit"): a queue is
 * filled until the broker refuses publishes, an unrelated SUBSCRIBE or DECLARE is made at
 * the full limit and kept, and then each kind of consumer must take, hold and ack the whole
 * queue, byte for byte, after which publishing works again. The matrix: limits 16, 64, 128
 * and 256 MiB x FETCH, long-poll FETCH, SUBSCRIBE with credit 1 and 1000, multi-queue FETCH
 * x the unrelated SUBSCRIBE or DECLARE. And `slabmq why` names memory when it is what holds
 * deliveries back.
 *
 * Messages are limit/16384 bytes (1 KiB at 16 MiB ... 16 KiB at 256 MiB), so every case
 * moves about 16,000 of them whatever the limit, and the sizes cover several slab classes. */
#include <pthread.h>

#include "slabmq.h"
#include "t.h"

#define QUEUE "work"
#define DEADLINE_MS 120000 /* a whole drain, at most (ASan, a loaded machine) */

enum kind { FETCH, LONGPOLL, SUB1, SUB1000, MULTI };
enum extra { SUBSCRIBE, DECLARE };

/* The payload of message i: its index, then bytes that depend on both i and the position,
 * so that a message swapped, cut or shifted is caught. */
static void
payload_of(uint64_t i, uint8_t *p, size_t size)
{
    memcpy(p, &i, sizeof(i));
    for (size_t j = sizeof(i); j < size; j++)
        p[j] = (uint8_t)(i * 131 + j * 7);
}

/* Publish numbered messages until the broker refuses one with ERR_NOMEM. Returns how many
 * were stored. */
static uint64_t
fill(slabmq_client *c, size_t size)
{
    static uint8_t body[64][16384];
    slabmq_payload p[64];
    uint64_t n = 0;
    size_t per = 64;

    while (n < 1000000) {
        for (size_t k = 0; k < per; k++) {
            payload_of(n + k, body[k], size);
            p[k] = (slabmq_payload){body[k], size};
        }
        slabmq_status st = slabmq_publish_batch(c, QUEUE, p, per, NULL);
        if (st == SLABMQ_ERR_NOMEM && per == 1)
            return n;
        if (st == SLABMQ_ERR_NOMEM) { /* the batch does not fit: none of it is stored */
            per = 1;
            continue;
        }
        T_OK(c, st);
        n += per;
    }
    t_fail(__FILE__, __LINE__, "the broker never refused");
}

/* What a drain saw. */
struct seen {
    uint64_t next;  /* index expected next (one consumer of one queue: FIFO) */
    size_t size;
    uint8_t want[16384];
};

static void
check(struct seen *s, const slabmq_message *m)
{
    uint64_t i;

    if (m->len != s->size)
        t_fail(__FILE__, __LINE__, "message %" PRIu64 ": %zu bytes, not %zu", s->next, m->len,
               s->size);
    memcpy(&i, m->data, sizeof(i));
    if (i != s->next)
        t_fail(__FILE__, __LINE__, "message %" PRIu64 " came where %" PRIu64 " was due", i,
               s->next);
    payload_of(i, s->want, s->size);
    T_EQ_MEM(m->data, s->want, s->size);
    s->next++;
}

/* One FETCH-style batch: check each message, ack them all. Returns the count. */
static size_t
take_batch(slabmq_client *c, slabmq_batch *b, struct seen *s)
{
    uint64_t ids[1000];
    size_t n = slabmq_batch_count(b);

    T_ASSERT(n <= 1000);
    for (size_t i = 0; i < n; i++) {
        check(s, slabmq_batch_get(b, i));
        ids[i] = slabmq_batch_get(b, i)->id;
    }
    if (n)
        T_OK(c, slabmq_ack_batch(c, ids, n, NULL));
    slabmq_batch_free(b);
    return n;
}

struct resumer {
    const struct t_broker *broker;
};

/* Long-poll: the queue is paused, so the first FETCH has to wait (a waiter record made at
 * the full limit); RESUME, from another connection 200 ms later, must wake it. */
static void *
resume_later(void *arg)
{
    struct resumer *r = arg;
    slabmq_client *c = t_client(r->broker);

    t_sleep_ms(200);
    T_OK(c, slabmq_resume(c, QUEUE, NULL));
    slabmq_client_close(c);
    return NULL;
}

static void
drain_fetch(slabmq_client *c, const struct t_broker *br, enum kind k, struct seen *s,
            uint64_t count)
{
    static const char *const qs[] = {"empty.a", QUEUE, "empty.b"};
    int64_t end = t_now_ms() + DEADLINE_MS;
    pthread_t th;
    struct resumer r = {br};

    if (k == LONGPOLL) {
        T_OK(c, slabmq_pause(c, QUEUE, NULL));
        T_ASSERT(pthread_create(&th, NULL, resume_later, &r) == 0);
    }
    while (s->next < count) {
        slabmq_batch *b;
        if (t_now_ms() > end)
            t_fail(__FILE__, __LINE__, "drained %" PRIu64 " of %" PRIu64 " in %d ms", s->next,
                   count, DEADLINE_MS);
        if (k == MULTI)
            T_OK(c, slabmq_fetch_any(c, qs, 3, 100, 1000, 0, &b));
        else
            T_OK(c, slabmq_fetch(c, QUEUE, 100, k == LONGPOLL ? 5000 : 1000, &b));
        if (take_batch(c, b, s) == 0)
            t_fail(__FILE__, __LINE__, "a fetch got nothing after %" PRIu64 " of %" PRIu64,
                   s->next, count);
    }
    if (k == LONGPOLL)
        T_ASSERT(pthread_join(th, NULL) == 0);
}

static void
drain_push(slabmq_client *c, uint32_t credit, struct seen *s, uint64_t count)
{
    int64_t end = t_now_ms() + DEADLINE_MS;
    uint64_t sub;

    T_OK(c, slabmq_subscribe(c, QUEUE, credit, &sub));
    while (s->next < count) {
        slabmq_batch *b;
        size_t n;
        if (t_now_ms() > end)
            t_fail(__FILE__, __LINE__, "drained %" PRIu64 " of %" PRIu64 " in %d ms", s->next,
                   count, DEADLINE_MS);
        T_OK(c, slabmq_receive(c, 2000, &b));
        n = slabmq_batch_count(b);
        if (n == 0)
            t_fail(__FILE__, __LINE__, "no push in 2 s after %" PRIu64 " of %" PRIu64, s->next,
                   count);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(b, i);
            check(s, m);
            T_OK(c, slabmq_ack_async(c, &m->id, 1, NULL));
        }
        slabmq_batch_free(b);
    }
    T_OK(c, slabmq_unsubscribe(c, sub));
    T_OK(c, slabmq_flush(c));
}

static void
run_case(unsigned limit_mib, enum kind k, enum extra x)
{
    struct t_broker br;
    char limit[16];
    slabmq_client *prod;
    slabmq_client *other;
    slabmq_client *cons;
    static struct seen s;
    uint64_t stored;
    uint64_t sub;
    slabmq_status st;

    snprintf(limit, sizeof(limit), "%uMiB", limit_mib);
    t_broker_start(&br, "--max-memory", limit, NULL);
    prod = t_client(&br);
    other = t_client(&br);
    cons = t_client(&br);
    memset(&s, 0, sizeof(s));
    s.size = (size_t)limit_mib * 64; /* limit / 16384 */
    stored = fill(prod, s.size);
    fprintf(stderr, "%u MiB: stored %" PRIu64 " x %zu B; memory_used %" PRIu64 "\n", limit_mib,
            stored, s.size, t_stat(prod, NULL, "memory_used"));
    T_ASSERT(stored * s.size >= (uint64_t)limit_mib * (1u << 20) / 2);

    /* at the full limit, from another connection, kept for the whole drain */
    if (x == SUBSCRIBE) {
        T_OK(other, slabmq_subscribe(other, "unrelated", 10, &sub));
    } else {
        slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
        o.max_deliveries = 3;
        o.ttl_ms = 60000;
        st = slabmq_declare(other, "unrelated", &o, NULL);
        T_ASSERT(st == SLABMQ_OK || st == SLABMQ_ERR_NOMEM); /* bookkeeping may be refused */
    }

    if (k == SUB1 || k == SUB1000)
        drain_push(cons, k == SUB1 ? 1 : 1000, &s, stored);
    else
        drain_fetch(cons, &br, k, &s, stored);
    T_EQ_U64(s.next, stored);
    T_EQ_U64(t_stat(prod, QUEUE, "ready"), 0);
    T_EQ_U64(t_stat(prod, QUEUE, "inflight"), 0);

    /* and publishing works again: as much as the first time, less a little */
    uint64_t again = fill(prod, s.size);
    fprintf(stderr, "stored %" PRIu64 " again\n", again);
    T_ASSERT(again >= stored - stored / 20);
    slabmq_client_close(cons);
    slabmq_client_close(other);
    slabmq_client_close(prod);
    t_broker_stop(&br);
}

#define MATRIX(lim, kname, k)                                                                  \
    static void test_##kname##_##lim##_subscribe(void) { run_case(lim, k, SUBSCRIBE); }       \
    static void test_##kname##_##lim##_declare(void) { run_case(lim, k, DECLARE); }
#define LIMITS(kname, k) MATRIX(16, kname, k) MATRIX(64, kname, k) MATRIX(128, kname, k)     \
    MATRIX(256, kname, k)
LIMITS(fetch, FETCH)
LIMITS(longpoll, LONGPOLL)
LIMITS(sub1, SUB1)
LIMITS(sub1000, SUB1000)
LIMITS(multi, MULTI)

/* ---------------------------------------------------------------------------------------- */
/* slabmq why                                                                                */

/* Consumers that hold as many small messages of one queue as they may, without acking, fill
 * the reserve with delivery records. A subscriber of another queue then gets nothing, and
 * `slabmq why` must say that memory is the reason. Once the holders leave, the subscriber
 * is served without doing anything. */
/* Messages pushed to c until none comes for ms (none acked). */
static uint64_t
receive_all(slabmq_client *c, int ms)
{
    uint64_t n = 0;

    for (int i = 0; i < 10000; i++) {
        slabmq_batch *b;
        size_t k;
        T_OK(c, slabmq_receive(c, ms, &b));
        k = slabmq_batch_count(b);
        slabmq_batch_free(b);
        if (k == 0)
            return n;
        n += k;
    }
    return n;
}

static void
test_why_names_memory(void)
{
    struct t_broker br;
    char port[16];
    char *out = NULL;
    size_t out_len = 0;
    slabmq_client *prod;
    slabmq_client *holders[8];
    slabmq_client *sc;
    uint64_t stored;
    uint64_t held = 0;
    uint64_t pushed;
    uint64_t more;
    uint64_t sub;
    slabmq_batch *b;
    int rc;

    t_broker_start(&br, "--max-memory", "16MiB", NULL);
    prod = t_client(&br);
    sc = t_client(&br);
    for (int i = 0; i < 100; i++) {
        slabmq_payload p[100];
        for (int k = 0; k < 100; k++)
            p[k] = (slabmq_payload){"job", 3};
        T_OK(prod, slabmq_publish_batch(prod, "other", p, 100, NULL));
    }
    T_OK(prod, slabmq_pause(prod, "other", NULL));
    T_OK(sc, slabmq_subscribe(sc, "other", 10000, &sub));
    stored = fill(prod, 16);
    T_ASSERT(stored > 100000);
    for (int i = 0; i < 8; i++)
        holders[i] = t_client(&br);
    /* take until a whole round gets nothing (idle buffers given back on the way); 8 x the
     * per-connection window of 10,000 is more than the memory allows */
    for (int round = 0, got = 1; got && round < 100; round++) {
        got = 0;
        for (int i = 0; i < 8; i++) {
            T_OK(holders[i], slabmq_fetch(holders[i], QUEUE, 1000, 0, &b));
            got += (int)slabmq_batch_count(b);
            slabmq_batch_free(b);
        }
        held += (uint64_t)got;
    }
    fprintf(stderr, "stored %" PRIu64 ", held %" PRIu64 "\n", stored, held);
    T_ASSERT(held < 80000); /* the reserve ran out before every holder was served */
    T_ASSERT(t_stat(prod, QUEUE, "memory_stalls") > 0);

    /* what idle buffers give back holds a few hundred records, not 10,000 */
    T_OK(prod, slabmq_resume(prod, "other", NULL));
    pushed = receive_all(sc, 300);
    fprintf(stderr, "pushed %" PRIu64 " of 10000 at the limit\n", pushed);
    T_ASSERT(pushed < 5000);
    T_EQ_U64(t_stat(prod, "other", "memory_held"), 1);

    snprintf(port, sizeof(port), ":%d", br.port);
    char *const argv[] = {SLABMQ_CLI_PATH, "-s", port, "why", "other", NULL};
    rc = t_run(argv, NULL, 0, &out, &out_len, NULL, 10000);
    fprintf(stderr, "%s", out);
    T_EQ_INT(rc, 4); /* nothing can be delivered now */
    T_ASSERT(strstr(out, "memory limit holds deliveries back") != NULL);
    free(out);
    char *const jargv[] = {SLABMQ_CLI_PATH, "-s", port, "why", "other", "--json", NULL};
    rc = t_run(jargv, NULL, 0, &out, &out_len, NULL, 10000);
    T_EQ_INT(rc, 4);
    T_ASSERT(strstr(out, "\"cause\":\"memory\"") != NULL);
    free(out);

    /* their messages go back to the queue, with their records; a drain of that queue frees
     * records, and the subscriber is then served without asking again */
    for (int i = 0; i < 8; i++)
        slabmq_client_close(holders[i]);
    holders[0] = t_client(&br);
    for (int j = 0; j < 20; j++) {
        uint64_t ids[1000];
        size_t n;
        T_OK(holders[0], slabmq_fetch(holders[0], QUEUE, 1000, 0, &b));
        n = slabmq_batch_count(b);
        for (size_t i = 0; i < n; i++)
            ids[i] = slabmq_batch_get(b, i)->id;
        if (n)
            T_OK(holders[0], slabmq_ack_batch(holders[0], ids, n, NULL));
        slabmq_batch_free(b);
    }
    slabmq_client_close(holders[0]);
    more = receive_all(sc, 1000);
    fprintf(stderr, "then %" PRIu64 " more\n", more);
    T_EQ_U64(pushed + more, 10000);
    T_EQ_U64(t_stat(prod, "other", "memory_held"), 0);
    slabmq_client_close(sc);
    slabmq_client_close(prod);
    t_broker_stop(&br);
}

static const struct t_case cases[] = {
    T_CASE(test_fetch_16_subscribe),    T_CASE(test_fetch_16_declare),
    T_CASE(test_fetch_64_subscribe),    T_CASE(test_fetch_64_declare),
    T_CASE(test_fetch_128_subscribe),   T_CASE(test_fetch_128_declare),
    T_CASE(test_fetch_256_subscribe),   T_CASE(test_fetch_256_declare),
    T_CASE(test_longpoll_16_subscribe), T_CASE(test_longpoll_16_declare),
    T_CASE(test_longpoll_64_subscribe), T_CASE(test_longpoll_64_declare),
    T_CASE(test_longpoll_128_subscribe), T_CASE(test_longpoll_128_declare),
    T_CASE(test_longpoll_256_subscribe), T_CASE(test_longpoll_256_declare),
    T_CASE(test_sub1_16_subscribe),     T_CASE(test_sub1_16_declare),
    T_CASE(test_sub1_64_subscribe),     T_CASE(test_sub1_64_declare),
    T_CASE(test_sub1_128_subscribe),    T_CASE(test_sub1_128_declare),
    T_CASE(test_sub1_256_subscribe),    T_CASE(test_sub1_256_declare),
    T_CASE(test_sub1000_16_subscribe),  T_CASE(test_sub1000_16_declare),
    T_CASE(test_sub1000_64_subscribe),  T_CASE(test_sub1000_64_declare),
    T_CASE(test_sub1000_128_subscribe), T_CASE(test_sub1000_128_declare),
    T_CASE(test_sub1000_256_subscribe), T_CASE(test_sub1000_256_declare),
    T_CASE(test_multi_16_subscribe),    T_CASE(test_multi_16_declare),
    T_CASE(test_multi_64_subscribe),    T_CASE(test_multi_64_declare),
    T_CASE(test_multi_128_subscribe),   T_CASE(test_multi_128_declare),
    T_CASE(test_multi_256_subscribe),   T_CASE(test_multi_256_declare),
    T_CASE(test_why_names_memory),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
