/* SPDX-License-Identifier: MIT */
/* slabmq-timerbench: what a million delayed messages cost (docs/performance.md, "Timers").
 *
 * Against a broker of its own (tools/bench/spawn.c), it
 *   1. measures the round trip of a PUBLISH + FETCH + ACK on another queue ("live"): the
 *      baseline;
 *   2. publishes N delayed messages to "timers", each due at a random time in
 *      [min-delay, min-delay + spread) (so the timer heap sees them in random order), and
 *      reads the broker's memory before and after: bytes per delayed message;
 *   3. measures the "live" round trip again with the N messages waiting;
 *   4. consumes "timers" as the messages come due, and reports how late each one arrived
 *      after its time (and how many arrived early: must be none), while a second thread
 *      measures the "live" round trip during the firing.
 * The "live" figures are reported as ratios to the baseline of the same run, since absolute
 * figures on a shared 2-core machine drift from run to run. Every loop is bounded in count
 * and time; the broker listens on 127.0.0.1 only. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "slabmq.h"
#include "spawn.h"

struct opts {
    const char *slabmqd;
    uint64_t n;           /* delayed messages */
    uint32_t size;        /* payload bytes (at least 8: the due time) */
    uint64_t min_delay;   /* ms */
    uint64_t spread;      /* ms */
    uint32_t probes;      /* round trips per "live" measurement */
    const char *max_memory;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
die(const char *what, slabmq_client *c, slabmq_status st)
{
    fprintf(stderr, "slabmq-timerbench: %s: %s (%s)\n", what, slabmq_strerror(st),
            c ? slabmq_client_errmsg(c) : "");
    exit(1);
}

static slabmq_client *
connect_to(int port)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c;
    slabmq_status st;

    o.port = (uint16_t)port;
    o.timeout_ms = 30000;
    if ((st = slabmq_client_connect(&o, &c)) != SLABMQ_OK)
        die("connect", NULL, st);
    return c;
}

static uint64_t
stat_of(slabmq_client *c, const char *queue, const char *name)
{
    slabmq_stats *s;
    uint64_t v = 0;
    slabmq_status st;

    if ((st = slabmq_stats_get(c, queue, &s)) != SLABMQ_OK)
        die("STATS", c, st);
    slabmq_stats_find(s, name, &v);
    slabmq_stats_free(s);
    return v;
}

/* count round trips on "live": PUBLISH, FETCH (long-poll), ACK; the PUBLISH-to-FETCH time of
 * each into h. Stops early at deadline_ns (0: none). Returns the round trips made. */
static uint32_t
probe(slabmq_client *c, uint32_t count, uint64_t deadline_ns, struct hist *h)
{
    static const char body[16] = "probe";
    uint32_t i;

    for (i = 0; i < count && (!deadline_ns || mono_ns() < deadline_ns); i++) {
        slabmq_batch *b;
        slabmq_status st;
        uint64_t t0 = mono_ns();
        if ((st = slabmq_publish(c, "live", body, sizeof(body), NULL)) != SLABMQ_OK)
            die("PUBLISH live", c, st);
        if ((st = slabmq_fetch(c, "live", 1, 5000, &b)) != SLABMQ_OK)
            die("FETCH live", c, st);
        hist_record(h, mono_ns() - t0);
        if (slabmq_batch_count(b) != 1)
            die("FETCH live: no message", c, SLABMQ_ERR_BAD_REPLY);
        if ((st = slabmq_ack(c, slabmq_batch_get(b, 0)->id)) != SLABMQ_OK)
            die("ACK live", c, st);
        slabmq_batch_free(b);
    }
    return i;
}

struct firing_probe {
    int port;
    uint32_t count;
    uint64_t deadline_ns;
    struct hist h;
    uint32_t done;
};

static void *
firing_probe_main(void *arg)
{
    struct firing_probe *f = arg;
    slabmq_client *c = connect_to(f->port);

    f->done = probe(c, f->count, f->deadline_ns, &f->h);
    slabmq_client_close(c);
    return NULL;
}

static void
print_hist(const char *name, const struct hist *h, double unit, const char *uname)
{
    printf("  %-34s p50 %8.1f  p99 %8.1f  p99.9 %8.1f  max %8.1f %s  (%" PRIu64 ")\n", name,
           (double)hist_percentile(h, 50) / unit, (double)hist_percentile(h, 99) / unit,
           (double)hist_percentile(h, 99.9) / unit, (double)h->max_ns / unit, uname, h->total);
}

static void
usage(FILE *f)
{
    fputs("usage: slabmq-timerbench [options]\n"
          "  --slabmqd PATH      broker binary (default: ../broker/slabmqd next to this tool)\n"
          "  -n N                delayed messages (default 1000000)\n"
          "  --size BYTES        payload bytes, at least 8 (default 100)\n"
          "  --min-delay MS      earliest due time after publishing (default 10000)\n"
          "  --spread MS         due times spread over this long (default 10000)\n"
          "  --probes N          round trips per latency measurement (default 5000)\n"
          "  --max-memory SIZE   the broker's --max-memory (default 2GiB)\n",
          f);
}

int
main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"slabmqd", required_argument, NULL, 'b'}, {"size", required_argument, NULL, 's'},
        {"min-delay", required_argument, NULL, 'd'}, {"spread", required_argument, NULL, 'w'},
        {"probes", required_argument, NULL, 'p'}, {"max-memory", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct opts o = {NULL, 1000000, 100, 10000, 10000, 5000, "2GiB"};
    struct spawn sp;
    char *args[] = {"--max-memory", NULL, "--max-inflight", "100000", NULL};
    slabmq_client *prod;
    slabmq_client *cons;
    slabmq_client *live;
    struct hist base, waiting, late;
    struct firing_probe fp;
    pthread_t th;
    uint64_t mem0, mem1, rss0, rss1, t0, t1, rng = 0x9e3779b97f4a7c15ull;
    uint64_t got = 0, early = 0, deadline;
    uint8_t *body;
    int ch;

    while ((ch = getopt_long(argc, argv, "n:h", longs, NULL)) != -1) {
        switch (ch) {
        case 'b': o.slabmqd = optarg; break;
        case 'n': o.n = strtoull(optarg, NULL, 10); break;
        case 's': o.size = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'd': o.min_delay = strtoull(optarg, NULL, 10); break;
        case 'w': o.spread = strtoull(optarg, NULL, 10); break;
        case 'p': o.probes = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': o.max_memory = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || o.size < 8 || o.n == 0 || o.spread == 0 || o.probes == 0) {
        usage(stderr);
        return 2;
    }
    if (!o.slabmqd)
        o.slabmqd = spawn_default_broker();
    args[1] = (char *)o.max_memory;
    if (spawn_start(&sp, o.slabmqd, NULL, args)) {
        fprintf(stderr, "slabmq-timerbench: cannot start %s\n", o.slabmqd);
        return 1;
    }
    prod = connect_to(sp.port);
    cons = connect_to(sp.port);
    live = connect_to(sp.port);
    body = calloc(1, o.size);
    hist_init(&base);
    hist_init(&waiting);
    hist_init(&late);
    hist_init(&fp.h);

    /* 1. baseline */
    probe(live, o.probes / 5, 0, &base); /* warm-up */
    hist_init(&base);
    probe(live, o.probes, 0, &base);

    /* 2. publish the delayed messages: the due time (client monotonic ms) in the payload */
    mem0 = stat_of(prod, NULL, "memory_used");
    rss0 = (uint64_t)spawn_rss_kb(sp.pid);
    slabmq_client_set_window(prod, 1024);
    t0 = mono_ns();
    for (uint64_t i = 0; i < o.n; i++) {
        slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
        uint64_t due;
        slabmq_status st;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        po.delay_ms = o.min_delay + rng % o.spread;
        due = mono_ns() / 1000000 + po.delay_ms;
        memcpy(body, &due, 8);
        if ((st = slabmq_publish_opts_async(prod, "timers", body, o.size, &po, NULL))
            != SLABMQ_OK)
            die("PUBLISH timers", prod, st);
    }
    {
        slabmq_status st = slabmq_flush(prod);
        if (st != SLABMQ_OK)
            die("flush", prod, st);
    }
    t1 = mono_ns();
    mem1 = stat_of(prod, NULL, "memory_used");
    rss1 = (uint64_t)spawn_rss_kb(sp.pid);
    printf("slabmq-timerbench: %" PRIu64 " delayed messages of %u bytes, due %" PRIu64
           "-%" PRIu64 " ms after publishing\n",
           o.n, o.size, o.min_delay, o.min_delay + o.spread);
    printf("  published in %.2f s (%.0f msg/s), delayed %" PRIu64 ", timers %" PRIu64 "\n",
           (double)(t1 - t0) / 1e9, (double)o.n / ((double)(t1 - t0) / 1e9),
           stat_of(prod, "timers", "delayed"), stat_of(prod, NULL, "timers"));
    printf("  broker memory: %.1f bytes per delayed message (budget), %.1f (RSS); "
           "payload %u\n",
           (double)(mem1 - mem0) / (double)o.n, (double)(rss1 - rss0) * 1024.0 / (double)o.n,
           o.size);

    /* 3. the "live" queue with the messages waiting (before the first is due) */
    deadline = t0 + o.min_delay * 1000000u;
    if (probe(live, o.probes, deadline, &waiting) < o.probes)
        fprintf(stderr, "slabmq-timerbench: warning: the first messages came due during the "
                        "waiting probe; raise --min-delay\n");

    /* 4. consume as they come due, with "live" probed alongside */
    fp.port = sp.port;
    fp.count = UINT32_MAX;
    fp.deadline_ns = t0 + (o.min_delay + o.spread) * 1000000u;
    fp.done = 0;
    pthread_create(&th, NULL, firing_probe_main, &fp);
    deadline = mono_ns() + (o.min_delay + o.spread + 60000) * 1000000u;
    while (got < o.n && mono_ns() < deadline) {
        slabmq_batch *b;
        uint64_t ids[1000];
        size_t n;
        slabmq_status st = slabmq_fetch(cons, "timers", 1000, 1000, &b);
        uint64_t now_ms = mono_ns() / 1000000;
        if (st != SLABMQ_OK)
            die("FETCH timers", cons, st);
        n = slabmq_batch_count(b);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(b, i);
            uint64_t due;
            memcpy(&due, m->data, 8);
            if (now_ms < due)
                early++;
            else
                hist_record(&late, (now_ms - due) * 1000000u);
            ids[i] = m->id;
        }
        if (n && (st = slabmq_ack_batch(cons, ids, n, NULL)) != SLABMQ_OK)
            die("ACK timers", cons, st);
        got += n;
        slabmq_batch_free(b);
    }
    pthread_join(th, NULL);
    printf("  received %" PRIu64 " of %" PRIu64 ", early: %" PRIu64 "\n", got, o.n, early);
    print_hist("lateness after the due time", &late, 1e6, "ms");
    printf("  round trip PUBLISH+FETCH on another queue (\"live\"):\n");
    print_hist("baseline", &base, 1e3, "us");
    print_hist("with the messages waiting", &waiting, 1e3, "us");
    print_hist("while they fire", &fp.h, 1e3, "us");
    printf("  ratios to the baseline (p50 / p99): waiting %.2f / %.2f, firing %.2f / %.2f\n",
           (double)hist_percentile(&waiting, 50) / (double)hist_percentile(&base, 50),
           (double)hist_percentile(&waiting, 99) / (double)hist_percentile(&base, 99),
           (double)hist_percentile(&fp.h, 50) / (double)hist_percentile(&base, 50),
           (double)hist_percentile(&fp.h, 99) / (double)hist_percentile(&base, 99));
    slabmq_client_close(prod);
    slabmq_client_close(cons);
    slabmq_client_close(live);
    free(body);
    if (spawn_stop(&sp) != 0 || got != o.n || early) {
        fprintf(stderr, "slabmq-timerbench: FAILED (received %" PRIu64 ", early %" PRIu64
                        ", or the broker did not stop cleanly)\n",
                got, early);
        return 1;
    }
    return 0;
}
