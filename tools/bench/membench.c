/* SPDX-License-Identifier: MIT */
/* slabmq-membench: measures the memory claims of docs/memory.md against real brokers it
 * starts itself on 127.0.0.1 (port 0) and stops by PID.
 *
 *   allocs       heap allocations of the whole slabmqd process per message in steady state
 *                (publish, fetch, ack over several connections; needs the counting shim)
 *   overhead     (RSS holding N messages - RSS empty) / N - payload size
 *   limit        producers publishing 1 KiB messages with no consumer: refused cleanly,
 *                RSS stays within the limit plus a fixed overhead, draining restores it
 *   calcify      fill with 100-byte messages, drain, then fill with 64 KiB messages
 *
 * Every loop is bounded in count and time. Exit status 0 when every measured claim holds. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slabmq.h"
#include "spawn.h"

struct bench {
    const char *slabmqd;  /* broker binary */
    const char *shim;     /* allocation-counting shim (LD_PRELOAD), or NULL */
    long messages;        /* messages for allocs and overhead */
    int size;             /* payload bytes for allocs and overhead */
    int conns;            /* connections for allocs and limit */
    const char *limit;    /* --max-memory for the limit and calcify runs */
    int failed;           /* a claim did not hold */
};


/* ---------------------------------------------------------------------------------------- */
/* Brokers                                                                                   */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static slabmq_client *
connect_to(const struct spawn *b)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c = NULL;
    char err[256];

    o.port = (uint16_t)b->port;
    o.timeout_ms = 30000;
    if (slabmq_client_connect_errbuf(&o, &c, err, sizeof(err)) != SLABMQ_OK) {
        fprintf(stderr, "slabmq-membench: %s\n", err);
        exit(1);
    }
    return c;
}

static uint64_t
stat_u64(slabmq_client *c, const char *name)
{
    slabmq_stats *s;
    uint64_t v = 0;

    if (slabmq_stats_get(c, NULL, &s) == SLABMQ_OK) {
        slabmq_stats_find(s, name, &v);
        slabmq_stats_free(s);
    }
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Workloads                                                                                 */

/* Publish n messages of size bytes to q in batches of up to 100. Returns how many were stored
 * before the first ERR_NOMEM (or n). */
static long
publish_n(slabmq_client *c, const char *q, long n, int size)
{
    static char body[65536];
    slabmq_payload p[100];
    long done = 0;
    int per = size >= 16384 ? 1 : 100;

    for (int i = 0; i < per; i++)
        p[i] = (slabmq_payload){body, (size_t)size};
    while (done < n) {
        int k = n - done < per ? (int)(n - done) : per;
        slabmq_status st = slabmq_publish_batch(c, q, p, (size_t)k, NULL);
        if (st == SLABMQ_ERR_NOMEM && per > 1) {
            per = 1; /* the batch does not fit: finish one by one */
            continue;
        }
        if (st != SLABMQ_OK)
            break;
        done += k;
    }
    return done;
}

/* Fetch and ack n messages of q in batches of up to 1000; returns how many. */
static long
drain_n(slabmq_client *c, const char *q, long n)
{
    uint64_t ids[1000];
    long done = 0;

    while (done < n) {
        slabmq_batch *b;
        size_t k;
        if (slabmq_fetch(c, q, 1000, 1000, &b) != SLABMQ_OK)
            break;
        k = slabmq_batch_count(b);
        for (size_t i = 0; i < k; i++)
            ids[i] = slabmq_batch_get(b, i)->id;
        if (k)
            slabmq_ack_batch(c, ids, k, NULL);
        slabmq_batch_free(b);
        if (k == 0)
            break;
        done += (long)k;
    }
    return done;
}

struct worker {
    const struct spawn *b;
    long messages;
    int id;
    int size;
};

/* One connection: publish, fetch and ack its share, 100 at a time, on its own queue. */
static void *
cycle_worker(void *p)
{
    struct worker *w = p;
    slabmq_client *c = connect_to(w->b);
    char q[32];

    snprintf(q, sizeof(q), "membench%d", w->id);
    for (long done = 0; done < w->messages;) {
        long k = w->messages - done < 100 ? w->messages - done : 100;
        if (publish_n(c, q, k, w->size) != k || drain_n(c, q, k) != k)
            break;
        done += k;
    }
    slabmq_client_close(c);
    return NULL;
}

static void
run_cycle(const struct spawn *b, int conns, long messages, int size)
{
    pthread_t th[64];
    struct worker w[64];

    for (int i = 0; i < conns; i++) {
        w[i] = (struct worker){.b = b, .messages = messages / conns, .id = i, .size = size};
        pthread_create(&th[i], NULL, cycle_worker, &w[i]);
    }
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Claims                                                                                    */

static void
bench_allocs(struct bench *bn)
{
    struct spawn b;
    slabmq_client *c;
    uint64_t before;
    uint64_t after;
    double t0;
    double per;

    if (!bn->shim) {
        printf("allocs: skipped (no --shim)\n");
        return;
    }
    if (spawn_start(&b, bn->slabmqd, bn->shim, NULL)) {
        fprintf(stderr, "slabmq-membench: cannot start %s\n", bn->slabmqd);
        exit(1);
    }
    c = connect_to(&b);
    run_cycle(&b, bn->conns, 100000, bn->size); /* warm-up */
    before = stat_u64(c, "heap_allocs") + stat_u64(c, "heap_reallocs");
    t0 = now_s();
    run_cycle(&b, bn->conns, bn->messages, bn->size);
    after = stat_u64(c, "heap_allocs") + stat_u64(c, "heap_reallocs");
    per = (double)(after - before) / (double)bn->messages;
    printf("allocs: %ld messages of %d B published, fetched and acked over %d connections in "
           "%.1f s: %llu heap allocations in slabmqd, %.6f per message (target < 0.001)\n",
           bn->messages, bn->size, bn->conns, now_s() - t0,
           (unsigned long long)(after - before), per);
    bn->failed |= per >= 0.001;
    slabmq_client_close(c);
    spawn_stop(&b);
}

static void
bench_overhead(struct bench *bn)
{
    static char *args[] = {(char *)"--max-memory", (char *)"8GiB", NULL};
    struct spawn b;
    slabmq_client *c;
    long empty;
    long full;
    long held;
    double per;

    if (spawn_start(&b, bn->slabmqd, NULL, args))
        exit(1);
    c = connect_to(&b);
    drain_n(c, "overhead", publish_n(c, "overhead", 1000, bn->size)); /* touch the pools */
    empty = spawn_rss_kb(b.pid);
    held = publish_n(c, "overhead", bn->messages, bn->size);
    full = spawn_rss_kb(b.pid);
    per = ((double)(full - empty) * 1024.0) / (double)held - bn->size;
    printf("overhead: %ld messages of %d B held in one queue: RSS %.1f MiB empty, %.1f MiB "
           "full: %.2f bytes per message beyond the payload (target <= 16)\n",
           held, bn->size, empty / 1024.0, full / 1024.0, per);
    bn->failed |= held != bn->messages || per > 16.0;
    slabmq_client_close(c);
    spawn_stop(&b);
}

struct producer {
    const struct spawn *b;
    int id;
    long stored;
    long refusals;
};

/* Publish 1 KiB messages as fast as possible until refused 100 times in a row. */
static void *
limit_producer(void *p)
{
    struct producer *pr = p;
    slabmq_client *c = connect_to(pr->b);
    static char body[1024];
    double deadline = now_s() + 120;

    while (pr->refusals < 100 && now_s() < deadline) {
        slabmq_status st = slabmq_publish(c, "limit", body, sizeof(body), NULL);
        if (st == SLABMQ_OK) {
            pr->stored++;
            pr->refusals = 0;
        } else if (st == SLABMQ_ERR_NOMEM) {
            pr->refusals++;
        } else {
            break;
        }
    }
    slabmq_client_close(c);
    return NULL;
}

static void
bench_limit(struct bench *bn)
{
    char *args[] = {(char *)"--max-memory", (char *)bn->limit, NULL};
    struct spawn b;
    struct producer pr[16];
    pthread_t th[16];
    slabmq_client *c;
    long stored = 0;
    long peak = 0;
    long limit_kb;
    long drained;
    int done = 0;

    if (spawn_start(&b, bn->slabmqd, NULL, args))
        exit(1);
    c = connect_to(&b);
    limit_kb = (long)(stat_u64(c, "memory_limit") / 1024);
    for (int i = 0; i < bn->conns && i < 16; i++) {
        pr[i] = (struct producer){&b, i, 0, 0};
        pthread_create(&th[i], NULL, limit_producer, &pr[i]);
    }
    while (!done) { /* sample RSS while they push */
        long r = spawn_rss_kb(b.pid);
        if (r > peak)
            peak = r;
        usleep(20000);
        done = 1;
        for (int i = 0; i < bn->conns && i < 16; i++)
            done &= pr[i].refusals >= 100;
        if (kill(b.pid, 0) != 0)
            break;
    }
    for (int i = 0; i < bn->conns && i < 16; i++) {
        pthread_join(th[i], NULL);
        stored += pr[i].stored;
    }
    if (spawn_rss_kb(b.pid) > peak)
        peak = spawn_rss_kb(b.pid);
    drained = drain_n(c, "limit", 10000);
    printf("limit: --max-memory %s, %d producers of 1 KiB messages, no consumer: %ld stored, "
           "then refused with ERR_NOMEM; broker alive; peak RSS %.1f MiB = limit %+.1f MiB "
           "(target: limit + 16 MiB); after draining %ld, publishing %s\n",
           bn->limit, bn->conns, stored, peak / 1024.0, (peak - limit_kb) / 1024.0, drained,
           publish_n(c, "limit", 1000, 1024) == 1000 ? "works again" : "STILL REFUSED");
    bn->failed |= peak > limit_kb + 16 * 1024 || drained != 10000;
    slabmq_client_close(c);
    spawn_stop(&b);
}

static void
bench_calcify(struct bench *bn)
{
    char *args[] = {(char *)"--max-memory", (char *)bn->limit, NULL};
    struct spawn b;
    slabmq_client *c;
    long small;
    long large;
    double limit;

    if (spawn_start(&b, bn->slabmqd, NULL, args))
        exit(1);
    c = connect_to(&b);
    limit = (double)stat_u64(c, "memory_limit");
    small = publish_n(c, "calcify", 100000000, 100);
    drain_n(c, "calcify", small);
    large = publish_n(c, "calcify", 1000000, 65536);
    printf("calcify: --max-memory %s: %ld x 100 B until refused (%.1f%% of the limit in "
           "payload), drained, then %ld x 64 KiB (%.1f%% of the limit in payload)\n",
           bn->limit, small, 100.0 * (double)small * 100 / limit, large,
           100.0 * (double)large * 65536 / limit);
    bn->failed |= (double)large * 65536 < 0.8 * limit;
    slabmq_client_close(c);
    spawn_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */

/* The whole of 's' as a decimal number from 0 to 'max', or -1 if it is not one (what atol
 * would have turned into 0 or a prefix's value). */
static long
parse_count(const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    return errno || end == s || *end || v < 0 || v > max ? -1 : v;
}

static void
usage(FILE *f)
{
    fputs("usage: slabmq-membench [options] [allocs|overhead|limit|calcify]...\n"
          "  --slabmqd PATH     broker binary (default: ../broker/slabmqd next to this tool)\n"
          "  --shim PATH        allocation-counting LD_PRELOAD shim (needed for allocs)\n"
          "  --messages N       messages for allocs and overhead (default 1000000)\n"
          "  --size B           payload bytes for allocs and overhead (default 100)\n"
          "  --conns N          connections for allocs and limit (default 4)\n"
          "  --limit SIZE       --max-memory for limit and calcify (default 256MiB)\n"
          "With no workload named, runs all four. Exit status 1 if a claim fails.\n",
          f);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"slabmqd", required_argument, NULL, 'd'}, {"shim", required_argument, NULL, 's'},
        {"messages", required_argument, NULL, 'n'}, {"size", required_argument, NULL, 'b'},
        {"conns", required_argument, NULL, 'c'},    {"limit", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    struct bench bn = {NULL, NULL, 1000000, 100, 4, "256MiB", 0};
    int opt;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': bn.slabmqd = optarg; break;
        case 's': bn.shim = optarg; break;
        case 'n': bn.messages = parse_count(optarg, LONG_MAX); break;
        case 'b': bn.size = (int)parse_count(optarg, 65536); break;
        case 'c': bn.conns = (int)parse_count(optarg, 16); break;
        case 'l': bn.limit = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bn.messages < 1000 || bn.size < 0 || bn.size > 65536 || bn.conns < 1 || bn.conns > 16) {
        usage(stderr);
        return 2;
    }
    if (!bn.slabmqd)
        bn.slabmqd = spawn_default_broker();
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail: a valid signal and handler */
    for (int i = optind; i <= argc; i++) {
        const char *w = i < argc ? argv[i] : NULL;
        if (i == argc && optind < argc)
            break;
        if (!w || strcmp(w, "allocs") == 0)
            bench_allocs(&bn);
        if (!w || strcmp(w, "overhead") == 0)
            bench_overhead(&bn);
        if (!w || strcmp(w, "limit") == 0)
            bench_limit(&bn);
        if (!w || strcmp(w, "calcify") == 0)
            bench_calcify(&bn);
    }
    return bn.failed ? 1 : 0;
}
