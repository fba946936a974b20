/* SPDX-License-Identifier: MIT */
/* slabmq-spreadfloor: the floor under "one producer spreading its publishes over many
 * queues" (docs/performance.md, issue 17): only the memory work any publish must do, in one
 * thread, no network, no parsing, no broker code. Per publish: hash the queue's name, probe
 * an open-addressing table of 16-byte (hash, pointer) slots, compare the name and bump the
 * counters in the queue's struct, and append a 24-byte record (16-byte payload and an 8-byte
 * header) to the queue's tail buffer. Laid out as slabmqd lays them out: structs of
 * QUEUE_SIZE bytes packed at 16-byte alignment, the name at byte 120 after the counters,
 * buffers of 1 KiB carved in turn from fresh anonymous memory (so the kernel clears pages
 * as it does for the broker's segments), a table at most 3/4 full. With --ahead, the slot of
 * the publish D ahead and the queue of the publish D/3 ahead are prefetched, as the broker's
 * connection does. --broker-lines adds what slabmqd's publish touches beyond that floor: the
 * published counter, the latency checkpoint's bookkeeping and, once per queue's publish here,
 * a checkpoint written in the ring, and the segment header's line; the offsets are struct
 * queue's own (offsetof), so they follow its layout. What it reports: thread CPU ns per publish over 1 queue and over N, and
 * their ratio: how much of the broker's difference is the memory itself.
 *
 *   slabmq-spreadfloor [-n COUNT] [--queues N] [--reps R] [--ahead D]
 *
 * Bounded: COUNT publishes per run, R runs per queue count; memory COUNT x 24 bytes of
 * records plus N x (QUEUE_SIZE + 1 KiB), freed after each run. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/broker.h" /* broker_queue_hash(): the registry's own hash, not a copy */
#include "core/queue.h"  /* struct queue: the offsets --broker-lines touches */

#define QUEUE_SIZE 1168 /* struct queue's slab chunk in slabmqd (docs/memory.md: class 13) */
_Static_assert(sizeof(struct queue) <= QUEUE_SIZE, "struct queue outgrew its chunk: see memory.md");
#define OFF_PUBLISHED offsetof(struct queue, c.published)
#define OFF_LAT_BASE_MS offsetof(struct queue, lat.base_ms)
#define OFF_LAT_LAST_MS offsetof(struct queue, lat.last_ms)
#define OFF_RING offsetof(struct queue, lat.ring)
#define BUF_SIZE 1024   /* a new queue's first segment (SEG_MIN_SIZE) */
#define REC 24          /* 8-byte record header + 16-byte payload */

struct fq { /* the fields a publish touches, where struct queue has them */
    uint64_t nfresh;
    uint64_t bytes;
    uint64_t published;
    uint8_t *tail; /* current buffer */
    uint32_t used; /* bytes of it used */
    uint32_t size; /* its size */
    uint32_t hash;
    uint32_t name_len;
};

struct slot {
    uint32_t hash;
    uint8_t *q;
};

struct run {
    struct slot *tab;
    size_t mask;
    uint8_t *queues; /* nq x QUEUE_SIZE */
    uint8_t *arena;  /* buffers, carved in turn */
    size_t arena_size;
    size_t arena_used;
    char *names; /* nq x 16 */
    uint32_t nq;
    int broker_lines; /* also touch the lines slabmqd's publish touches beyond the floor's */
};

static struct fq *
fq_of(uint8_t *q)
{
    return (struct fq *)q;
}

static char *
qname(uint8_t *q)
{
    return (char *)q + offsetof(struct queue, name);
}

static int
setup(struct run *r, uint32_t nq, long count)
{
    size_t slots = 64;

    while (slots * 3 < (size_t)nq * 4)
        slots *= 2;
    memset(r, 0, sizeof(*r));
    r->nq = nq;
    r->mask = slots - 1;
    r->tab = calloc(slots, sizeof(*r->tab));
    r->queues = aligned_alloc(64, ((size_t)nq * QUEUE_SIZE + 64 + 63) / 64 * 64);
    r->names = malloc((size_t)nq * 16);
    /* every record, and a buffer's worth of slack per queue */
    r->arena_size = (size_t)count * REC + (size_t)nq * BUF_SIZE * 2 + 2 * 64 * 1024;
    r->arena = mmap(NULL, r->arena_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (!r->tab || !r->queues || !r->names || r->arena == MAP_FAILED)
        return -1;
    memset(r->queues, 0, (size_t)nq * QUEUE_SIZE);
    for (uint32_t i = 0; i < nq; i++) {
        uint8_t *q = r->queues + 16 + (size_t)i * QUEUE_SIZE; /* 16-byte aligned, as the slab */
        char *n = r->names + (size_t)i * 16;
        size_t len = (size_t)snprintf(n, 16, "bench.%u", i);
        size_t at;
        if (len < 8) /* the hash reads 8 bytes: pad short names as the tool names them */
            len = (size_t)snprintf(n, 16, "bench.%05u", i);
        fq_of(q)->name_len = (uint32_t)len;
        fq_of(q)->hash = broker_queue_hash(n, len);
        memcpy(qname(q), n, len + 1);
        for (at = fq_of(q)->hash & r->mask; r->tab[at].q; at = (at + 1) & r->mask)
            ;
        r->tab[at] = (struct slot){fq_of(q)->hash, q};
    }
    return 0;
}

static void
teardown(struct run *r)
{
    free(r->tab);
    free(r->queues);
    free(r->names);
    if (r->arena && r->arena != MAP_FAILED)
        munmap(r->arena, r->arena_size);
}

static uint8_t *
lookup(struct run *r, const char *name, size_t len, uint32_t h)
{
    for (size_t i = h & r->mask, n = 0; n <= r->mask; i = (i + 1) & r->mask, n++) {
        struct slot *e = &r->tab[i];
        if (!e->q)
            return NULL;
        if (e->hash == h && fq_of(e->q)->name_len == len && memcmp(qname(e->q), name, len) == 0)
            return e->q;
    }
    return NULL; /* a full table (setup() keeps a quarter free) */
}

static void
prefetch_queue(const struct run *r, uint32_t h)
{
    for (size_t i = h & r->mask;; i = (i + 1) & r->mask) {
        const struct slot *e = &r->tab[i];
        if (!e->q)
            return;
        if (e->hash == h) {
            __builtin_prefetch(e->q);
            __builtin_prefetch(e->q + 64);
            __builtin_prefetch(e->q + 135);
            if (r->broker_lines) { /* as queue_prefetch() adds them */
                __builtin_prefetch(e->q + OFF_LAT_BASE_MS);
                __builtin_prefetch(e->q + OFF_PUBLISHED);
            }
            return;
        }
    }
}

/* count publishes round-robin; thread CPU ns per publish */
static double
publish_all(struct run *r, long count, int ahead)
{
    struct timespec t0;
    struct timespec t1;
    uint8_t payload[16] = "0123456789abcdef";
    uint32_t hashes[256];
    uint32_t qa = ahead / 3 ? (uint32_t)(ahead / 3) : 1;

    if (ahead > 255)
        ahead = 255;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long i = 0; i < count; i++) {
        uint32_t qi = (uint32_t)(i % r->nq);
        const char *name = r->names + (size_t)qi * 16;
        size_t len = strlen(name);
        uint32_t h;
        uint8_t *q;
        struct fq *f;
        if (ahead && r->nq > 1) {
            if (i == 0) /* prime the look-ahead */
                for (int k = 0; k < ahead; k++) {
                    const char *nk = r->names + (size_t)((uint32_t)k % r->nq) * 16;
                    hashes[k] = broker_queue_hash(nk, strlen(nk));
                }
            {
                const char *nk = r->names + (size_t)((uint32_t)((i + ahead) % r->nq)) * 16;
                hashes[(i + ahead) & 255] = broker_queue_hash(nk, strlen(nk));
                __builtin_prefetch(&r->tab[hashes[(i + ahead) & 255] & r->mask]);
                prefetch_queue(r, hashes[(i + qa) & 255]);

            }
            h = hashes[i & 255];
        } else {
            h = broker_queue_hash(name, len);
        }
        q = lookup(r, name, len, h); // NOLINT(clang-analyzer-unix.Malloc): r owns r->names until teardown(); the analyzer loses track of it here (it reported this before lookup() was bounded, with the old hash too)
        if (!q)
            abort(); /* every name was put in the table by setup() */
        f = fq_of(q);
        if (!f->tail || f->used + REC > f->size) { /* a fresh buffer, as seg_new does */
            f->size = r->nq == 1 ? 64 * 1024 : BUF_SIZE; /* one queue's segments grow */
            if (r->arena_used + f->size > r->arena_size)
                abort(); /* sized in setup(): cannot happen */
            f->tail = r->arena + r->arena_used;
            r->arena_used += f->size;
            f->used = 0;
        }
        memcpy(f->tail + f->used, &i, 8);
        memcpy(f->tail + f->used + 8, payload, 16);
        f->used += REC;
        f->nfresh++;
        f->bytes += 16;
        f->published++;
        if (r->broker_lines) { /* what slabmqd touches beyond these (see --broker-lines) */
            uint64_t *pub = (uint64_t *)(q + OFF_PUBLISHED);
            uint32_t *lat = (uint32_t *)(q + OFF_LAT_LAST_MS);
            (*pub)++;
            if (*lat + 1 <= (uint32_t)i) { /* a checkpoint: each queue's publishes are apart */
                *lat = (uint32_t)i;
                memcpy(q + OFF_RING + (size_t)(f->published & 31) * 8, &i, 8);
            }
            __asm__ volatile("" : : "r"(*(volatile uint32_t *)f->tail)); /* seg_fits: header */
        }
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)count;
}

/* A whole decimal option value, or -1 (refused by the range checks after the options). */
static long long
number(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);

    return *s && !*end && v >= 0 && v <= 100000000 ? v : -1;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    long count = 3000000;
    uint32_t nq = 100000;
    int reps = 5;
    int ahead = 0;
    int broker_lines = 0;
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'},
                                         {"queues", required_argument, NULL, 'q'},
                                         {"reps", required_argument, NULL, 'r'},
                                         {"ahead", required_argument, NULL, 'a'},
                                         {"broker-lines", no_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    double one[64];
    double many[64];

    while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n': count = (long)number(optarg); break;
        case 'q': nq = (uint32_t)number(optarg); break;
        case 'r': reps = (int)number(optarg); break;
        case 'a': ahead = (int)number(optarg); break;
        case 'b': broker_lines = 1; break;
        default:
            fprintf(opt == 'h' ? stdout : stderr,
                    "usage: slabmq-spreadfloor [-n COUNT] [--queues N] [--reps R] [--ahead D]\n"
                    "                          [--broker-lines]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (count < 1 || count > 100000000 || nq < 1 || nq > 10000000 || reps < 1 || reps > 64
        || ahead < 0 || ahead > 255) {
        fprintf(stderr, "slabmq-spreadfloor: -n 1..1e8, --queues 1..1e7, --reps 1..64, "
                        "--ahead 0..255\n");
        return 2;
    }
    for (int k = 0; k < reps; k++) { /* alternated: 1 queue, N queues, 1, N, ... */
        for (int m = 0; m < 2; m++) {
            struct run r;
            int bad = setup(&r, m ? nq : 1, count);
            r.broker_lines = broker_lines;
            if (bad) {
                fprintf(stderr, "slabmq-spreadfloor: out of memory\n");
                teardown(&r);
                return 1;
            }
            (m ? many : one)[k] = publish_all(&r, count, ahead);
            teardown(&r);
        }
    }
    qsort(one, (size_t)reps, sizeof(double), cmp_double);
    qsort(many, (size_t)reps, sizeof(double), cmp_double);
    printf("publishes %ld, look-ahead %d, runs %d%s (median, thread CPU)\n", count, ahead, reps,
           broker_lines ? ", with slabmqd's other lines" : "");
    printf("  1 queue:       %.1f ns/publish\n", one[reps / 2]);
    printf("  %u queues: %.1f ns/publish\n", nq, many[reps / 2]);
    printf("  difference %.1f ns, ratio %.2f\n", many[reps / 2] - one[reps / 2],
           many[reps / 2] / one[reps / 2]);
    return 0;
}
