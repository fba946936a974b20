/* SPDX-License-Identifier: MIT */
/* slabmq-loopbench: what slabmqd would pay per message with more than one event loop
 * (docs/architecture.md, "More than one loop"). slabmqd is one loop today; the design it
 * would grow into is memcached's: N loops, each owning its connections and a share of the
 * queues, a publish to a queue another loop owns handed over to that loop, and the memory
 * limit shared. This measures the two primitives that design adds to the path of a message,
 * with threads pinned to different CPUs as the loops would be:
 *
 *   handoff  loop A passes N message references to loop B through a bounded single-producer
 *            single-consumer ring, K per batch (a batch is what one read of a connection's
 *            frames yields: 28 to 550 frames per read in slabmq-bench runs), and B answers
 *            each batch through a second ring with one confirmation, which A must turn into
 *            the replies. B sleeps on an eventfd when its ring is empty and A writes the
 *            eventfd only when B has said it sleeps (the usual Dekker-style handshake), so
 *            wake-ups are counted, not assumed. Reported: CPU ns per message on each side
 *            and wake-ups per batch. The baseline row is the same loop with A and B on one
 *            thread (what the single loop pays for the same queueing: nearly nothing).
 *   budget   T threads charge N 64-byte records each to one memory limit: one atomic add per
 *            record on the shared counter, against leases of 256 KiB taken from it (a loop
 *            charges locally and goes to the shared counter once per lease), against the
 *            single loop's plain counter.
 *
 * No sockets: these are the costs the design adds on top of today's per-message work
 * (about 100 ns of broker CPU per published message, docs/performance.md). Every loop is
 * bounded by its count; a hand-off that makes no progress for 10 s aborts. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define RING_SLOTS 4096u               /* power of two; one broker read fits many times */
#define LEASE_BYTES (256u * 1024u)
#define RECORD_BYTES 64u
#define STALL_NS 10000000000ll

static int64_t
clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Pin the calling thread to cpu (modulo the CPUs there are); a no-op where it fails. */
static void
pin(int cpu)
{
    cpu_set_t set;
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    CPU_ZERO(&set);
    CPU_SET(cpu % (n > 0 ? (int)n : 1), &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---------------------------------------------------------------------------------------- */
/* A single-producer single-consumer ring of 64-bit words. head and tail sit on their own
 * cache lines: the producer writes tail, the consumer head, and each reads the other's only
 * when its cached copy says the ring looks full or empty. */

struct ring {
    _Alignas(64) _Atomic uint64_t tail;  /* written by the producer */
    uint64_t head_seen;                  /* producer's copy of head */
    _Alignas(64) _Atomic uint64_t head;  /* written by the consumer */
    uint64_t tail_seen;                  /* consumer's copy of tail */
    _Alignas(64) uint64_t slot[RING_SLOTS];
};

/* Room for n more words? */
static int
ring_room(struct ring *r, uint64_t n)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    if (t + n - r->head_seen <= RING_SLOTS)
        return 1;
    r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
    return t + n - r->head_seen <= RING_SLOTS;
}

/* Write v at position tail + i; published by ring_publish. */
static void
ring_put(struct ring *r, uint64_t i, uint64_t v)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    r->slot[(t + i) & (RING_SLOTS - 1)] = v;
}

static void
ring_publish(struct ring *r, uint64_t n)
{
    atomic_fetch_add_explicit(&r->tail, n, memory_order_release);
}

/* Words ready to read (refreshing the consumer's copy of tail when it says none). */
static uint64_t
ring_ready(struct ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);

    if (r->tail_seen == h)
        r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->tail_seen - h;
}

static uint64_t
ring_get(struct ring *r, uint64_t i)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);

    return r->slot[(h + i) & (RING_SLOTS - 1)];
}

static void
ring_consume(struct ring *r, uint64_t n)
{
    atomic_fetch_add_explicit(&r->head, n, memory_order_release);
}

/* ---------------------------------------------------------------------------------------- */
/* handoff */

struct handoff {
    struct ring *to_b;          /* message references, A -> B */
    struct ring *to_a;          /* confirmations (a count per batch), B -> A */
    int efd;                    /* B's wake-up */
    int efd_a;                  /* A's wake-up (pingpong) */
    _Atomic int b_sleeping;     /* B is about to block, or blocked, on efd */
    _Atomic int a_sleeping;     /* A is about to block, or blocked, on efd_a */
    int pingpong;               /* A waits for each batch's confirmation, asleep */
    uint64_t n;                 /* messages */
    uint64_t k;                 /* per batch */
    uint64_t sum;               /* B: sum of the references seen (checked) */
    uint64_t wakes;             /* A: eventfd writes */
    uint64_t b_wakes;           /* B: eventfd writes */
    int64_t b_cpu_ns;
};

/* Loop B: take every reference ready, confirm each batch, sleep when there is none. */
static void *
handoff_b(void *arg)
{
    struct handoff *h = arg;
    uint64_t got = 0;
    int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    int64_t idle_since = clock_ns(CLOCK_MONOTONIC);

    pin(1);
    while (got < h->n) {
        uint64_t ready = ring_ready(h->to_b);

        if (ready == 0) {
            uint64_t v;

            atomic_store(&h->b_sleeping, 1);         /* then a full fence: pairs with A's */
            atomic_thread_fence(memory_order_seq_cst);
            if (ring_ready(h->to_b) == 0 && read(h->efd, &v, sizeof(v)) < 0 &&
                errno != EINTR)
                break;
            atomic_store(&h->b_sleeping, 0);
            if (clock_ns(CLOCK_MONOTONIC) - idle_since > STALL_NS)
                break;
            continue;
        }
        idle_since = clock_ns(CLOCK_MONOTONIC);
        for (uint64_t i = 0; i < ready; i++)
            h->sum += ring_get(h->to_b, i);
        ring_consume(h->to_b, ready);
        while (!ring_room(h->to_a, 1))
            sched_yield();
        ring_put(h->to_a, 0, ready);
        ring_publish(h->to_a, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load(&h->a_sleeping)) {
            uint64_t one = 1;

            if (write(h->efd_a, &one, sizeof(one)) == (ssize_t)sizeof(one))
                h->b_wakes++;
        }
        got += ready;
    }
    h->b_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return NULL;
}

/* Loop A: hand the references over K at a time, reading confirmations as they come. Returns
 * A's CPU ns, or -1 on a stall. */
static int64_t
handoff_a(struct handoff *h)
{
    uint64_t sent = 0, confirmed = 0;
    int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    int64_t last = clock_ns(CLOCK_MONOTONIC);

    pin(0);
    while (confirmed < h->n) {
        uint64_t k = h->n - sent < h->k ? h->n - sent : h->k;
        uint64_t c;

        if (k > 0 && ring_room(h->to_b, k)) {
            for (uint64_t i = 0; i < k; i++)
                ring_put(h->to_b, i, sent + i + 1);
            ring_publish(h->to_b, k);                 /* release; then a seq_cst load */
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load(&h->b_sleeping)) {
                uint64_t one = 1;

                if (write(h->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
                    h->wakes++;
            }
            sent += k;
        }
        c = ring_ready(h->to_a);
        if (h->pingpong && c == 0 && sent > confirmed) {
            uint64_t v;

            atomic_store(&h->a_sleeping, 1);
            atomic_thread_fence(memory_order_seq_cst);
            if (ring_ready(h->to_a) == 0 && read(h->efd_a, &v, sizeof(v)) < 0 &&
                errno != EINTR)
                return -1;
            atomic_store(&h->a_sleeping, 0);
            c = ring_ready(h->to_a);
        }
        for (uint64_t i = 0; i < c; i++)
            confirmed += ring_get(h->to_a, i);
        if (c > 0) {
            ring_consume(h->to_a, c);
            last = clock_ns(CLOCK_MONOTONIC);
        } else if (!h->pingpong && (k == 0 || !ring_room(h->to_b, k))) {
            if (clock_ns(CLOCK_MONOTONIC) - last > STALL_NS)
                return -1;
            sched_yield();
        }
    }
    return clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

/* One thread doing both sides of the same rings: the queueing without the crossing. */
static int64_t
handoff_local(uint64_t n, uint64_t k, struct ring *to_b, struct ring *to_a, uint64_t *sum)
{
    int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    pin(0);
    for (uint64_t sent = 0; sent < n;) {
        uint64_t m = n - sent < k ? n - sent : k, ready;

        for (uint64_t i = 0; i < m; i++)
            ring_put(to_b, i, sent + i + 1);
        ring_publish(to_b, m);
        ready = ring_ready(to_b);
        for (uint64_t i = 0; i < ready; i++)
            *sum += ring_get(to_b, i);
        ring_consume(to_b, ready);
        ring_put(to_a, 0, ready);
        ring_publish(to_a, 1);
        (void)ring_ready(to_a);
        ring_consume(to_a, 1);
        sent += m;
    }
    return clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

static struct ring *
ring_new(void)
{
    struct ring *r = aligned_alloc(64, sizeof(*r));

    if (r == NULL) {
        fprintf(stderr, "slabmq-loopbench: out of memory\n");
        exit(1);
    }
    memset(r, 0, sizeof(*r));
    return r;
}

static int
run_handoff(uint64_t n, uint64_t k, int pingpong)
{
    struct handoff h = {.n = n, .k = k, .pingpong = pingpong};
    pthread_t b;
    int64_t wall0, wall, a_cpu, local_cpu;
    uint64_t local_sum = 0, want = n * (n + 1) / 2;
    struct ring *to_b = ring_new(), *to_a = ring_new();

    local_cpu = handoff_local(n, k, to_b, to_a, &local_sum);
    free(to_b);
    free(to_a);
    h.to_b = ring_new();
    h.to_a = ring_new();
    h.efd = eventfd(0, EFD_CLOEXEC);
    h.efd_a = eventfd(0, EFD_CLOEXEC);
    if (h.efd < 0 || h.efd_a < 0 || pthread_create(&b, NULL, handoff_b, &h) != 0) {
        perror("slabmq-loopbench: eventfd/pthread_create");
        return 1;
    }
    wall0 = clock_ns(CLOCK_MONOTONIC);
    a_cpu = handoff_a(&h);
    wall = clock_ns(CLOCK_MONOTONIC) - wall0;
    if (a_cpu < 0) {                      /* B is stuck: wake it so it can see the stall */
        uint64_t one = 1;

        fprintf(stderr, "slabmq-loopbench: hand-off stalled\n");
        (void)write(h.efd, &one, sizeof(one));
    }
    pthread_join(b, NULL);
    close(h.efd);
    close(h.efd_a);
    free(h.to_b);
    free(h.to_a);
    if (a_cpu < 0 || h.sum != want || local_sum != want) {
        fprintf(stderr, "slabmq-loopbench: hand-off lost references (%" PRIu64 " != %" PRIu64
                ")\n", h.sum, want);
        return 1;
    }
    printf("| %s | %" PRIu64 " | %.1f | %.1f | %.1f | %.1f | %.3f |\n",
           pingpong ? "handoff, each batch waited for" : "handoff, streaming", k,
           (double)local_cpu / (double)n, (double)a_cpu / (double)n,
           (double)h.b_cpu_ns / (double)n, (double)wall / (double)n,
           (double)(h.wakes + h.b_wakes) * (double)k / (double)n);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* budget */

struct budget {
    _Alignas(64) _Atomic uint64_t used;   /* the shared limit's counter */
    uint64_t limit;
};

struct charger {
    struct budget *b;
    uint64_t n;
    int lease;                 /* 0: an atomic add per record; 1: leases of LEASE_BYTES */
    int cpu;
    int64_t cpu_ns;
    uint64_t refused;
};

static void *
charge(void *arg)
{
    struct charger *c = arg;
    uint64_t local = 0;         /* lease bytes not yet charged to a record */
    int64_t cpu0;

    pin(c->cpu);
    cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (uint64_t i = 0; i < c->n; i++) {
        if (c->lease) {
            if (local < RECORD_BYTES) {
                uint64_t was = atomic_fetch_add_explicit(&c->b->used, LEASE_BYTES,
                                                         memory_order_relaxed);

                if (was + LEASE_BYTES > c->b->limit) {
                    atomic_fetch_sub_explicit(&c->b->used, LEASE_BYTES, memory_order_relaxed);
                    c->refused++;
                    continue;
                }
                local += LEASE_BYTES;
            }
            local -= RECORD_BYTES;
        } else {
            uint64_t was = atomic_fetch_add_explicit(&c->b->used, RECORD_BYTES,
                                                     memory_order_relaxed);

            if (was + RECORD_BYTES > c->b->limit) {
                atomic_fetch_sub_explicit(&c->b->used, RECORD_BYTES, memory_order_relaxed);
                c->refused++;
            }
        }
    }
    c->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    return NULL;
}

/* The single loop's accounting: a plain counter and a compare, as mem.h does it. volatile
 * keeps the compiler from folding the loop into one addition. */
static int64_t
charge_plain(uint64_t n, uint64_t limit)
{
    volatile uint64_t used = 0;
    int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    pin(0);
    for (uint64_t i = 0; i < n; i++)
        if (used + RECORD_BYTES <= limit)
            used = used + RECORD_BYTES;
    return clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
}

static int
run_budget(uint64_t n, int threads)
{
    static const char *const mode[] = {"atomic per record", "lease of 256 KiB"};
    int64_t plain = charge_plain(n, UINT64_MAX);

    printf("| budget | single loop, plain counter | 1 | %.2f | 0 |\n",
           (double)plain / (double)n);
    for (int lease = 0; lease < 2; lease++) {
        struct budget b = {.limit = UINT64_MAX / 2};
        struct charger c[8];
        pthread_t t[8];
        int64_t cpu = 0;
        uint64_t refused = 0;

        for (int i = 0; i < threads; i++) {
            c[i] = (struct charger){.b = &b, .n = n, .lease = lease, .cpu = i};
            if (pthread_create(&t[i], NULL, charge, &c[i]) != 0) {
                perror("slabmq-loopbench: pthread_create");
                return 1;
            }
        }
        for (int i = 0; i < threads; i++) {
            pthread_join(t[i], NULL);
            cpu += c[i].cpu_ns;
            refused += c[i].refused;
        }
        printf("| budget | %s | %d | %.2f | %" PRIu64 " |\n", mode[lease], threads,
               (double)cpu / (double)(n * (uint64_t)threads), refused);
    }
    return 0;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: slabmq-loopbench [-n MESSAGES] [--batches K,K,...] [--threads T]\n"
               "  -n N         messages per hand-off run and records per thread (default "
               "20000000)\n"
               "  --batches L  batch sizes for the hand-off (default 1,32,512)\n"
               "  --threads T  threads charging the shared budget, 2-8 (default 2)\n");
}

int
main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"batches", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t n = 20000000;
    const char *batches = "1,32,512";
    int threads = 2, o;
    char *list, *save = NULL;

    while ((o = getopt_long(argc, argv, "n:h", longs, NULL)) != -1) {
        switch (o) {
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'b': batches = optarg; break;
        case 't': threads = (int)strtol(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (n == 0 || n > 1000000000 || threads < 2 || threads > 8) {
        usage(stderr);
        return 2;
    }
    printf("| primitive | K (batch) | one thread, ns/msg | loop A CPU ns/msg | loop B CPU "
           "ns/msg | wall ns/msg | wake-ups per batch (both sides) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    list = strdup(batches);
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t k = strtoull(tok, NULL, 10);

        if (k == 0 || k > RING_SLOTS) {
            fprintf(stderr, "slabmq-loopbench: batch %s: 1-%u\n", tok, RING_SLOTS);
            free(list);
            return 2;
        }
        for (int pp = 0; pp < 2; pp++) {
            /* waiting for each batch is slow at K=1: a tenth of the messages is plenty */
            uint64_t m = pp && n / k > 200000 ? 200000 * k : n;

            if (run_handoff(m, k, pp) != 0) {
                free(list);
                return 1;
            }
        }
    }
    free(list);
    printf("\n| primitive | accounting | threads | CPU ns per 64-byte record | refused |\n"
           "|---|---|---:|---:|---:|\n");
    return run_budget(n, threads);
}
