/* SPDX-License-Identifier: MIT */
/* The memory claims against a real slabmqd: the limit holding with producers refused and consumers draining, no calcification when the
 * message size changes, admission from the frame header, per-queue limits, the per-consumer
 * in-flight window, and the reservoir's hits, misses and overflows. The allocation count is
 * test_alloc.c (it needs a malloc shim that cannot run under ASan). */
#include <pthread.h>
#include <unistd.h>

#include "raw.h"
#include "slabmq.h"
#include "t.h"

/* ---------------------------------------------------------------------------------------- */
/* The limit                                                                                 */

/* Publish batches of 'size'-byte messages to q until the broker refuses with ERR_NOMEM.
 * Returns how many were stored. */
static uint64_t
fill(slabmq_client *c, const char *q, size_t size)
{
    static uint8_t body[65536];
    slabmq_payload p[64];
    uint64_t n = 0;
    size_t per = size >= 16384 ? 1 : 64;

    for (size_t i = 0; i < per; i++)
        p[i] = (slabmq_payload){body, size};
    for (int i = 0; i < 10000000; i++) {
        slabmq_status st = slabmq_publish_batch(c, q, p, per, NULL);
        if (st == SLABMQ_ERR_NOMEM && per == 1)
            return n;
        if (st == SLABMQ_ERR_NOMEM) { /* the batch does not fit: finish one at a time */
            per = 1;
            continue;
        }
        T_OK(c, st);
        n += per;
    }
    t_fail(__FILE__, __LINE__, "the broker never refused");
}

static void
drain(slabmq_client *c, const char *q, uint64_t count)
{
    uint64_t ids[1000];
    uint64_t got = 0;

    while (got < count) {
        slabmq_batch *b;
        size_t n;
        T_OK(c, slabmq_fetch(c, q, 1000, 1000, &b));
        n = slabmq_batch_count(b);
        T_ASSERT(n > 0);
        for (size_t i = 0; i < n; i++)
            ids[i] = slabmq_batch_get(b, i)->id;
        T_OK(c, slabmq_ack_batch(c, ids, n, NULL));
        slabmq_batch_free(b);
        got += n;
    }
}

static void
test_limit_holds_and_recovers(void)
{
    struct t_broker b;
    slabmq_client *prod;
    slabmq_client *cons;
    uint64_t stored = 0;
    long rss_kb;
    uint64_t id;
    static uint8_t big[1024];

    t_broker_start(&b, "--max-memory", "32MiB", NULL);
    prod = t_client(&b);
    cons = t_client(&b);
    stored = fill(prod, "full", 1024);
    /* 32 MiB less the draining headroom and the pages small classes take */
    T_ASSERT(stored > 20000);
    T_ASSERT(t_stat(prod, NULL, "memory_used") <= 32u << 20);
    rss_kb = t_broker_rss_kb(&b);
    fprintf(stderr, "stored %llu x 1 KiB; broker RSS %ld KiB\n", (unsigned long long)stored,
            rss_kb);
#ifndef SLABMQ_SANITIZED
    T_ASSERT(rss_kb < (32 + 16) * 1024); /* the limit plus a fixed overhead */
#endif
    /* refused cleanly, the producer's connection stays usable */
    T_EQ_INT(slabmq_publish(prod, "full", big, sizeof(big), &id), SLABMQ_ERR_NOMEM);
    T_ASSERT(strstr(slabmq_client_errmsg(prod), "memory limit") != NULL);
    T_OK(prod, slabmq_ping(prod));
    /* consumers drain while producers are refused, then publishing works again */
    drain(cons, "full", 5000);
    T_OK(prod, slabmq_publish(prod, "full", big, sizeof(big), &id));
    drain(cons, "full", stored - 5000 + 1);
    T_EQ_U64(t_stat(cons, "full", "ready"), 0);
    slabmq_client_close(prod);
    slabmq_client_close(cons);
    t_broker_stop(&b);
}

/* Fill with 100-byte messages, drain, then 64 KiB messages must get the memory back. */
static void
test_no_calcification(void)
{
    struct t_broker b;
    slabmq_client *c;
    uint64_t small;
    uint64_t large;

    t_broker_start(&b, "--max-memory", "64MiB", NULL);
    c = t_client(&b);
    small = fill(c, "shift", 100);
    T_ASSERT(small > 400000);
    drain(c, "shift", small);
    large = fill(c, "shift", 65536);
    fprintf(stderr, "%llu x 100 B, then %llu x 64 KiB\n", (unsigned long long)small,
            (unsigned long long)large);
    /* 64 MiB less 2 MiB headroom and a few pages of small classes: at least 80% */
    T_ASSERT(large * 65536 >= (uint64_t)(64u << 20) * 8 / 10);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A large PUBLISH is refused from its header: the reply comes before the body is sent, and
 * the body is skipped, so the same connection keeps working. */
static void
test_admission_from_header(void)
{
    struct t_broker b;
    slabmq_client *c;
    static uint8_t chunk[65536];
    uint8_t reply[512];
    uint32_t size = 3u << 20; /* bin32 of 3 MiB */
    uint32_t blen = 7 + 5 + size; /* [8, 7, "adm", bin32 header] then the payload */
    uint8_t head[4 + 12] = {(uint8_t)(blen >> 24), (uint8_t)(blen >> 16), (uint8_t)(blen >> 8),
                            (uint8_t)blen, 0x94, 0x08, 0x07, 0xa3, 'a', 'd', 'm', 0xc6,
                            (uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                            (uint8_t)size};
    static const uint8_t ping[] = {0, 0, 0, 3, 0x92, 0x02, 0x09};
    long n;
    int fd;

    t_broker_start(&b, "--max-memory", "32MiB", "--max-message-size", "4MiB", NULL);
    c = t_client(&b);
    fill(c, "adm", 1024);
    fd = t_raw_connect(b.port);
    t_raw_hello(fd);
    t_raw_send(fd, head, 16);
    t_raw_send(fd, chunk, 100); /* the header and the start of the body, nothing more */
    n = t_raw_recv_frame(fd, reply, sizeof(reply), 5000);
    T_ASSERT(n > 4);
    T_EQ_INT(reply[1], 0x08); /* [8, 7, ERR_NOMEM, "memory limit ..."] */
    T_EQ_INT(reply[2], 0x07);
    T_EQ_INT(reply[3], SLABMQ_ERR_NOMEM);
    for (uint32_t sent = 100; sent < size; sent += sizeof(chunk) < size - sent ? sizeof(chunk)
                                                                               : size - sent)
        t_raw_send(fd, chunk, sizeof(chunk) < size - sent ? sizeof(chunk) : size - sent);
    t_raw_send(fd, ping, sizeof(ping));
    n = t_raw_recv_frame(fd, reply, sizeof(reply), 5000);
    T_EQ_INT(n, 4); /* [2, 9, 0]: the body was skipped, the stream is in step */
    T_EQ_INT(reply[2], 0x09);
    T_EQ_INT(reply[3], 0);
    close(fd);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Per-queue limits and the per-consumer window                                             */

static void
test_queue_limits(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_queue_options rej = {.max_messages = 3, .overflow = SLABMQ_OVERFLOW_REJECT};
    slabmq_queue_options drop = {.max_messages = 3, .overflow = SLABMQ_OVERFLOW_DROP_OLDEST};
    slabmq_queue_options bytes = {.max_bytes = 10};
    slabmq_batch *bt;
    char msg[8];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_declare(c, "rej", &rej, NULL));
    T_OK(c, slabmq_declare(c, "drop", &drop, NULL));
    T_OK(c, slabmq_declare(c, "bytes", &bytes, NULL));
    for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof(msg), "m%d", i);
        T_EQ_INT(slabmq_publish(c, "rej", msg, 2, NULL), i < 3 ? SLABMQ_OK : SLABMQ_ERR_QUEUE_FULL);
        T_OK(c, slabmq_publish(c, "drop", msg, 2, NULL));
    }
    T_ASSERT(strstr(slabmq_client_errmsg(c), "full") != NULL);
    T_EQ_U64(t_stat(c, "rej", "ready"), 3);
    T_EQ_U64(t_stat(c, "rej", "rejected"), 2);
    T_EQ_U64(t_stat(c, "drop", "ready"), 3);
    T_EQ_U64(t_stat(c, "drop", "dropped"), 2);
    T_OK(c, slabmq_peek(c, "drop", 10, &bt)); /* the oldest two went */
    T_EQ_INT(slabmq_batch_count(bt), 3);
    T_EQ_MEM(slabmq_batch_get(bt, 0)->data, "m2", 2);
    T_EQ_MEM(slabmq_batch_get(bt, 2)->data, "m4", 2);
    slabmq_batch_free(bt);
    T_OK(c, slabmq_publish(c, "bytes", "0123456789", 10, NULL));
    T_EQ_INT(slabmq_publish(c, "bytes", "x", 1, NULL), SLABMQ_ERR_QUEUE_FULL);
    {
        /* a batch larger than a drop-oldest limit keeps its newest messages */
        slabmq_payload five[5] = {{"b0", 2}, {"b1", 2}, {"b2", 2}, {"b3", 2}, {"b4", 2}};
        slabmq_queue_options unlimited = {.max_bytes = SLABMQ_NO_LIMIT};
        T_OK(c, slabmq_publish_batch(c, "drop", five, 5, NULL));
        T_OK(c, slabmq_peek(c, "drop", 10, &bt));
        T_EQ_INT(slabmq_batch_count(bt), 3);
        T_EQ_MEM(slabmq_batch_get(bt, 0)->data, "b2", 2);
        slabmq_batch_free(bt);
        /* a limit can be removed again */
        T_OK(c, slabmq_declare(c, "bytes", &unlimited, NULL));
        T_EQ_U64(t_stat(c, "bytes", "max_bytes"), 0);
        T_OK(c, slabmq_publish(c, "bytes", "x", 1, NULL));
    }
    {
        /* drop-oldest never drops in-flight messages: with all 3 taken, a publish is refused
         * and nothing is lost */
        slabmq_batch *taken;
        T_OK(c, slabmq_fetch(c, "drop", 3, 0, &taken));
        T_EQ_INT(slabmq_batch_count(taken), 3);
        T_EQ_INT(slabmq_publish(c, "drop", "new", 3, NULL), SLABMQ_ERR_QUEUE_FULL);
        T_EQ_U64(t_stat(c, "drop", "inflight"), 3);
        slabmq_batch_free(taken);
    }
    {
        /* by bytes too: 8 bytes in flight under max_bytes 10 leave room for 2, not 5 */
        slabmq_queue_options dropb = {.max_bytes = 10, .overflow = SLABMQ_OVERFLOW_DROP_OLDEST};
        slabmq_batch *taken;
        T_OK(c, slabmq_declare(c, "dropb", &dropb, NULL));
        T_OK(c, slabmq_publish(c, "dropb", "12345678", 8, NULL));
        T_OK(c, slabmq_fetch(c, "dropb", 1, 0, &taken));
        T_EQ_INT(slabmq_batch_count(taken), 1);
        T_EQ_INT(slabmq_publish(c, "dropb", "abcde", 5, NULL), SLABMQ_ERR_QUEUE_FULL);
        T_OK(c, slabmq_publish(c, "dropb", "ab", 2, NULL));
        T_EQ_U64(t_stat(c, "dropb", "ready"), 1);
        T_EQ_U64(t_stat(c, "dropb", "dropped"), 0);
        slabmq_batch_free(taken);
    }
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_inflight_window(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;

    t_broker_start(&b, "--max-inflight", "5", NULL);
    c = t_client(&b);
    for (int i = 0; i < 10; i++)
        T_OK(c, slabmq_publish(c, "win", "w", 1, NULL));
    slabmq_batch *none = NULL;

    T_OK(c, slabmq_fetch(c, "win", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 5); /* the window, not the 10 asked for */
    slabmq_batch_free(bt);
    T_EQ_INT(slabmq_fetch(c, "win", 10, 0, &none), SLABMQ_ERR_LIMIT);
    T_ASSERT(none == NULL);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "window") != NULL);
    T_EQ_INT(slabmq_fetch(c, "win", 1, 1000, &none), SLABMQ_ERR_LIMIT); /* no waiting either */
    slabmq_client_close(c); /* requeues the 5 */
    c = t_client(&b);
    T_OK(c, slabmq_fetch(c, "win", 10, 1000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 5);
    T_OK(c, slabmq_ack(c, slabmq_batch_get(bt, 0)->id));
    slabmq_batch_free(bt);
    T_OK(c, slabmq_fetch(c, "win", 10, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1); /* one slot freed by the ack */
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* The reservoir                                                                             */

static void
test_reservoir_hits_misses_overflows(void)
{
    struct t_broker b;
    slabmq_client *c;
    int fds[8];
    uint8_t part[4 + 200];
    uint8_t reply[64];
    uint64_t misses0;
    uint64_t hits0;
    uint64_t misses1;
    uint64_t overflows;

    t_broker_start(&b, "--reservoir-capacity", "2", NULL);
    c = t_client(&b);
    T_OK(c, slabmq_ping(c));
    misses0 = t_stat(c, NULL, "reservoir_misses");
    hits0 = t_stat(c, NULL, "reservoir_hits");
    for (int i = 0; i < 50; i++) /* steady state: every buffer comes from the pool */
        T_OK(c, slabmq_publish(c, "res", "r", 1, NULL));
    T_EQ_U64(t_stat(c, NULL, "reservoir_misses"), misses0);
    T_ASSERT(t_stat(c, NULL, "reservoir_hits") >= hits0 + 100);
    /* a burst: 8 connections each holding a partial 100 KiB frame at once */
    memset(part, 0, sizeof(part));
    part[1] = 0x01; /* length 0x019000 = 102,400 */
    part[2] = 0x90;
    for (int i = 0; i < 8; i++) {
        fds[i] = t_raw_connect(b.port);
        t_raw_hello(fds[i]);
        t_raw_send(fds[i], part, sizeof(part));
    }
    t_sleep_ms(200);
    misses1 = t_stat(c, NULL, "reservoir_misses");
    T_ASSERT(misses1 >= misses0 + 8); /* beyond the pool: fresh allocations */
    for (int i = 0; i < 8; i++) { /* they go away; their buffers come back */
        close(fds[i]);
    }
    t_sleep_ms(200);
    overflows = t_stat(c, NULL, "reservoir_overflows");
    T_ASSERT(overflows >= 6); /* capacity 2 per class: the rest were freed */
    T_OK(c, slabmq_publish(c, "res", "r", 1, NULL));
    (void)reply;
    slabmq_client_close(c);
    t_broker_stop(&b); /* under ASan: nothing leaked */
}

/* ---------------------------------------------------------------------------------------- */
/* Unread replies, then a refill                                                             */

#define LISTQ_N 5000   /* queues with 190-byte names: a LIST reply of about 1 MB */
#define LIST_CONNS 8   /* connections pipelining LISTs they never read */
#define LIST_REQS 100  /* LISTs each */

/* Wait up to 5 s for the broker's memory_used to stop changing (the same in 4 reads 50 ms
 * apart); returns it. */
static uint64_t
used_settled(slabmq_client *c)
{
    int64_t deadline = t_now_ms() + 5000;
    uint64_t last = t_stat(c, NULL, "memory_used");
    int same = 0;

    while (same < 3 && t_now_ms() < deadline) {
        uint64_t v;
        t_sleep_ms(50);
        v = t_stat(c, NULL, "memory_used");
        same = v == last ? same + 1 : 0;
        last = v;
    }
    return last;
}

/* Issue 15: LISTs pipelined and never read on 8 connections, then the connections close and
 * producers refill the broker. A LIST reply grows with the queues and is not bounded like a
 * FETCH reply, so each connection's LISTs ran until the limit was passed (memory_used 34.9 MB
 * at a 33.6 MB limit); and the pooled buffers freed for the refill stayed resident in the
 * heap while the slab took their budget: VmHWM 58,228 KiB, the limit + 24.9 MiB. Now a LIST
 * runs only if its reply fits under the limit, and freed pooled buffers go back to the
 * kernel: the budget stays under the limit and VmHWM under the limit + 16 MiB
 * (docs/memory.md). */
static void
test_unread_list_then_refill(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_queue_info *list = NULL;
    struct mb m = {0};
    struct mb s = {0};
    char name[200];
    int fds[LIST_CONNS];
    uint64_t used;
    uint64_t stored;
    size_t n = 0;
    long hwm;

    t_broker_start(&b, "--max-memory", "32MiB", NULL);
    c = t_client(&b);
    memset(name, 'q', sizeof(name));
    for (int i = 0; i < LISTQ_N; i++) {
        snprintf(name + 180, sizeof(name) - 180, "%010d", i);
        T_OK(c, slabmq_declare(c, name, NULL, NULL));
    }
    for (unsigned i = 0; i < LIST_REQS; i++) {
        m.len = 0;
        mb_req(&m, SMQ_OP_LIST, 10 + i, 0);
        mb_frame(&s, m.p, m.len);
    }
    for (int k = 0; k < LIST_CONNS; k++) {
        fds[k] = raw_connect_small(b.port, 4096);
        t_raw_hello(fds[k]);
    }
    for (int k = 0; k < LIST_CONNS; k++)
        t_raw_send(fds[k], s.p, s.len);
    used = used_settled(c);
    for (int k = 0; k < LIST_CONNS; k++)
        close(fds[k]);
    stored = fill(c, "refill", 1024);
    hwm = t_broker_status_kb(&b, "VmHWM");
    fprintf(stderr, "memory_used %llu with unread LISTs; refill %llu x 1 KiB: RSS %ld KiB, "
            "VmHWM %ld KiB\n", (unsigned long long)used, (unsigned long long)stored,
            t_broker_rss_kb(&b), hwm);
    if (used > (32u << 20))
        t_fail(__FILE__, __LINE__, "memory_used %llu with unread LISTs: past the 32 MiB limit",
               (unsigned long long)used);
#ifndef SLABMQ_SANITIZED
    if (hwm >= (32 + 16) * 1024)
        t_fail(__FILE__, __LINE__, "VmHWM %ld KiB: the limit + 16 MiB is %d KiB", hwm,
               (32 + 16) * 1024);
#endif
    T_ASSERT(stored > 10000);
    drain(c, "refill", stored);
    T_OK(c, slabmq_list(c, &list, &n)); /* LIST works again below the limit */
    T_EQ_U64(n, LISTQ_N + 1);
    slabmq_queue_list_free(list);
    mb_free(&m);
    mb_free(&s);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_limit_holds_and_recovers),
    T_CASE(test_no_calcification),
    T_CASE(test_admission_from_header),
    T_CASE(test_queue_limits),
    T_CASE(test_inflight_window),
    T_CASE(test_reservoir_hits_misses_overflows),
    T_CASE(test_unread_list_then_refill),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
