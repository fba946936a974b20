/* SPDX-License-Identifier: MIT */
/* slabmq-bench: throughput and end-to-end latency of a slabmq broker, measured with real
 * producer and consumer connections, one thread and one client each.
 *
 *   concurrent   producers and consumers at once (the default)
 *   fill-drain   producers publish everything (confirmed), then consumers drain it; the two
 *                phases are reported separately
 *   fill         producers only: the messages stay for a later 'drain'
 *   drain        consumers only: take what a 'fill' with the same -p/-n/--queues left
 *   hold         fill, then report the broker's RSS per message held (needs its PID)
 *
 * --spread N makes each producer publish round-robin over N queues (one message to each in
 * turn; with --batch-publish, one batch to each) and each consumer fetch round-robin over
 * them: what one producer spreading its load over many queues costs the broker. The N
 * queues are declared before the clock starts, so creating them is not measured.
 *
 * This file parses the options and runs the workloads (threads in bench_run.c, a broker of
 * our own in spawn.c, the summary in bench_report.c, as text or JSON). Exit status:
 * 0 when every message arrived once and byte-exact (as far as checked), 1 on any error or
 * failed check, 2 on a usage error. */
#include "bench.h"
#include "spawn.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The run's stop flag, for the SIGINT/SIGTERM handler, and whether it fired: the tool's
 * only globals. */
static atomic_int *stop_flag;
static volatile sig_atomic_t interrupted;

static const char *const workload_names[] = {"concurrent", "fill-drain", "fill", "drain", "hold"};
static const char *const ack_names[] = {"each", "batch", "none"};

int
bench_has_producers(enum bench_workload w)
{
    return w != BENCH_DRAIN;
}

int
bench_has_consumers(enum bench_workload w)
{
    return w == BENCH_CONCURRENT || w == BENCH_FILL_DRAIN || w == BENCH_DRAIN;
}

const char *
bench_workload_name(enum bench_workload w)
{
    return workload_names[w];
}

const char *
bench_ack_name(enum bench_ack a)
{
    return ack_names[a];
}

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                   */

static void
usage(FILE *f)
{
    fputs("usage: slabmq-bench [options]\n"
          "  -s, --server HOST:PORT    broker to use (default 127.0.0.1:7654)\n"
          "      --spawn PATH          start this slabmqd on 127.0.0.1, port 0, and stop it at "
          "the end\n"
          "      --broker-arg ARG      extra slabmqd flag for --spawn (repeatable)\n"
          "      --broker-pid PID      the broker's PID, for RSS (hold) without --spawn\n"
          "      --workload W          concurrent (default), fill-drain, fill, drain, hold\n"
          "  -p, --producers N         producer threads (default 1)\n"
          "  -c, --consumers N         consumer threads (default 1)\n"
          "      --size BYTES          payload size, at least 16 (default 100)\n"
          "  -n, --count N             messages in total (default 100000)\n"
          "  -d, --duration SECONDS    publish for this long instead\n"
          "      --rate R              total msg/s, paced on a fixed schedule (default 0: as "
          "fast as possible)\n"
          "      --window W            unconfirmed messages per producer (default 1024)\n"
          "      --batch-publish K     K messages per PUBLISH_BATCH frame (default 1: PUBLISH)\n"
          "      --confirm LEVEL       memory, written or synced: publish with that confirmation\n"
          "                            level (against a broker run with --durability sqlite)\n"
          "      --fetch-batch B       FETCH max, 1-10000 (default 1024)\n"
          "      --fetch-ahead D       FETCHes kept ahead (slabmq_client_set_fetch_ahead),\n"
          "                            0-64 (default 1; with --spread 15); 0: one at a time\n"
          "      --subscribe CREDIT    consumers SUBSCRIBE (pushed messages, at most CREDIT\n"
          "                            unacked) instead of fetching; acks as --ack says\n"
          "      --ack MODE            each (default), batch, or none (FETCH_NOACK)\n"
          "      --queues Q            producer i publishes to queue i %% Q, consumer j reads "
          "queue j %% Q\n"
          "      --queue-prefix NAME   queue names are NAME.0, NAME.1, ... (default bench)\n"
          "      --idle-queues N       first create N other queues (NAME.idle.<i>) holding one\n"
          "                            message each: how cost grows with the number of queues\n"
          "      --spread N            one producer (and consumer) uses N queues round-robin,\n"
          "                            NAME.0 .. NAME.<N-1>, declared before the run (needs\n"
          "                            --queues 1)\n"
          "      --spread-group G      --spread consumers name G queues a FETCH (1-16,\n"
          "                            default 16), the first with messages answering\n"
          "      --verify              check every byte and that each message arrives once\n"
          "      --tls-ca FILE         connect with TLS (slabmqd --tls-port), trusting the CA\n"
          "                            in FILE; with --spawn, give the broker its TLS flags\n"
          "                            and --port=off through --broker-arg\n"
          "      --json                print one JSON object on stdout instead of the text\n"
          "      --quiet               no progress line on stderr\n",
          f);
}

static int
parse_count(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int
parse_server(struct bench_params *p, const char *s)
{
    const char *colon = strrchr(s, ':');
    uint64_t port;
    size_t hlen;

    if (!colon || parse_count(colon + 1, 1, 65535, &port))
        return -1;
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(p->host))
        return -1;
    memcpy(p->host, s, hlen);
    p->host[hlen] = '\0';
    p->port = (uint16_t)port;
    return 0;
}

static int
parse_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Apply one option; 0 or -1 after printing why. */
static int
apply(struct bench_params *p, int opt, const char *arg)
{
    uint64_t v = 0;
    int bad = 0;
    int i;

    switch (opt) {
    case 's': bad = parse_server(p, arg); break;
    case 'S': p->spawn = arg; break;
    case 'A':
        bad = p->nbroker_args >= BENCH_MAX_BROKER_ARGS - 1;
        if (!bad)
            p->broker_args[p->nbroker_args++] = (char *)arg;
        break;
    case 'P': bad = parse_count(arg, 1, INT32_MAX, &v); p->broker_pid = (pid_t)v; break;
    case 'w':
        bad = (i = parse_name(arg, workload_names, 5)) < 0;
        p->workload = (enum bench_workload)(bad ? 0 : i);
        break;
    case 'p': bad = parse_count(arg, 1, 1024, &v); p->producers = (int)v; break;
    case 'c': bad = parse_count(arg, 1, 1024, &v); p->consumers = (int)v; break;
    case 'b': bad = parse_count(arg, BENCH_MIN_SIZE, 256u << 20, &v); p->size = (size_t)v; break;
    case 'n': bad = parse_count(arg, 1, (uint64_t)1 << 40, &p->count); break;
    case 'd': bad = parse_double(arg, 0.001, 86400.0 * 7, &p->duration_s); break;
    case 'r': bad = parse_double(arg, 0.0, 1e9, &p->rate); break;
    case 'W': bad = parse_count(arg, 1, 1000000, &v); p->window = (uint32_t)v; break;
    case 'K': bad = parse_count(arg, 1, 100000, &v); p->batch_publish = (uint32_t)v; break;
    case 'C': {
        static const char *const levels[] = {"memory", "written", "synced"};
        bad = (i = parse_name(arg, levels, 3)) < 0;
        p->confirm = bad ? 0 : i + 1;
        break;
    }
    case 'B': bad = parse_count(arg, 1, 10000, &v); p->fetch_batch = (uint32_t)v; break;
    case 'F':
        bad = parse_count(arg, 0, SLABMQ_FETCH_AHEAD_MAX, &v);
        p->fetch_ahead = (uint32_t)v;
        break;
    case 'U': bad = parse_count(arg, 1, 10000, &v); p->subscribe = (uint32_t)v; break;
    case 'a':
        bad = (i = parse_name(arg, ack_names, 3)) < 0;
        p->ack = (enum bench_ack)(bad ? 0 : i);
        break;
    case 'q': bad = parse_count(arg, 1, 1024, &v); p->queues = (int)v; break;
    case 'Q': p->prefix = arg; bad = strlen(arg) == 0 || strlen(arg) > 190; break;
    case 'T': p->tls_ca = arg; break;
    case 'I': bad = parse_count(arg, 1, 10000000, &p->idle_queues); break;
    case 'N': bad = parse_count(arg, 1, 10000000, &v); p->spread = (uint32_t)v; break;
    case 'G':
        bad = parse_count(arg, 1, SLABMQ_FETCH_QUEUES_MAX, &v);
        p->spread_group = (uint32_t)v;
        break;
    default: return -1;
    }
    if (bad)
        fprintf(stderr, "slabmq-bench: invalid value '%s' (see --help)\n", arg ? arg : "");
    return bad ? -1 : 0;
}

/* Cross-checks once every option is known; 0 or -1 after printing why. */
static int
check_params(struct bench_params *p, int count_given)
{
    const char *why = NULL;

    if (count_given && p->duration_s > 0)
        why = "give -n or -d, not both";
    else if (p->workload == BENCH_HOLD && !p->spawn && !p->broker_pid)
        why = "hold reads the broker's RSS: give --spawn or --broker-pid";
    else if (bench_has_consumers(p->workload) && p->consumers < p->queues
             && p->consumers < p->producers)
        why = "a queue that gets messages has no consumer: give at least min(-p, --queues) "
              "consumers";
    else if (p->spread && p->queues != 1)
        why = "--spread N names its own queues: leave --queues at 1";
    else if (p->spread && p->subscribe && bench_has_consumers(p->workload))
        why = "--spread consumers fetch round-robin: no --subscribe";
    else if (p->workload == BENCH_DRAIN && p->duration_s > 0)
        why = "drain takes -n (what the fill published) or nothing (until empty), not -d";
    if (why) {
        fprintf(stderr, "slabmq-bench: %s\n", why);
        return -1;
    }
    if (bench_has_producers(p->workload) && p->queues > p->producers && !p->quiet
        && !p->spread)
        fprintf(stderr, "slabmq-bench: note: %d of the %d queues get no producer (producer i "
                "publishes to queue i %% Q) and stay idle\n", p->queues - p->producers,
                p->queues);
    /* not given: what docs/performance.md recommends; with --spread one fewer than a group
     * of queues (bench_run.c), so that no FETCH sent ahead finds its group empty */
    if (p->fetch_ahead == UINT32_MAX)
        p->fetch_ahead = p->spread ? p->spread_group - 1 : 1;
    if (!count_given && p->duration_s == 0 && p->workload != BENCH_DRAIN)
        p->count = 100000;
    if (p->duration_s > 0 && p->rate > 0) { /* paced: the count follows from the schedule */
        p->count = (uint64_t)(p->rate * p->duration_s + 0.5);
        if (p->count < (uint64_t)p->producers)
            p->count = (uint64_t)p->producers;
    }
    if (p->count && p->count / (uint64_t)p->producers >= (uint64_t)BENCH_SEEN_CHUNKS
                                                            << BENCH_SEEN_CHUNK_BITS) {
        fprintf(stderr, "slabmq-bench: at most 2^32 messages per producer\n");
        return -1;
    }
    return 0;
}

static int
parse_args(struct bench_params *p, int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},     {"spawn", required_argument, NULL, 'S'},
        {"broker-arg", required_argument, NULL, 'A'}, {"broker-pid", required_argument, NULL, 'P'},
        {"workload", required_argument, NULL, 'w'},   {"producers", required_argument, NULL, 'p'},
        {"consumers", required_argument, NULL, 'c'},  {"size", required_argument, NULL, 'b'},
        {"count", required_argument, NULL, 'n'},      {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},       {"window", required_argument, NULL, 'W'},
        {"batch-publish", required_argument, NULL, 'K'},
        {"confirm", required_argument, NULL, 'C'},
        {"fetch-batch", required_argument, NULL, 'B'},
        {"fetch-ahead", required_argument, NULL, 'F'},
        {"subscribe", required_argument, NULL, 'U'},
        {"ack", required_argument, NULL, 'a'},        {"queues", required_argument, NULL, 'q'},
        {"queue-prefix", required_argument, NULL, 'Q'},
        {"idle-queues", required_argument, NULL, 'I'},
        {"spread", required_argument, NULL, 'N'},
        {"spread-group", required_argument, NULL, 'G'},
        {"verify", no_argument, NULL, 'V'},           {"json", no_argument, NULL, 'j'},
        {"tls-ca", required_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'z'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int count_given = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "s:p:c:n:d:h", opts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == 'V' || opt == 'j' || opt == 'z') {
            *(opt == 'V' ? &p->verify : opt == 'j' ? &p->json : &p->quiet) = 1;
            continue;
        }
        count_given |= opt == 'n';
        if (opt == '?' || apply(p, opt, optarg))
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "slabmq-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return check_params(p, count_given);
}

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                   */

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (stop_flag)
        atomic_store(stop_flag, 1);
}

static uint64_t
sum_done(struct bench_worker *ws, int n)
{
    uint64_t s = 0;

    for (int i = 0; i < n; i++)
        s += atomic_load_explicit(&ws[i].done, memory_order_relaxed);
    return s;
}

/* Wait for every running thread, printing a progress line each second unless --quiet. */
static void
progress(struct bench *b, struct bench_worker *pw, int np, struct bench_worker *cw, int nc)
{
    int64_t t0 = bench_now_ns();
    int64_t last = t0;
    uint64_t last_pub = sum_done(pw, np);
    uint64_t last_con = sum_done(cw, nc);
    int tty = isatty(2);
    int printed = 0;

    while (atomic_load(&b->running) > 0) {
        int64_t now;
        usleep(20000);
        now = bench_now_ns();
        if (b->p.quiet || now - last < 1000000000)
            continue;
        uint64_t pub = sum_done(pw, np);
        uint64_t con = sum_done(cw, nc);
        double dt = (double)(now - last) / 1e9;
        fprintf(stderr, "%s[%6.1f s] published %" PRIu64 " (%.0f/s)  consumed %" PRIu64
                " (%.0f/s)%s", tty ? "\r" : "", (double)(now - t0) / 1e9, pub,
                (double)(pub - last_pub) / dt, con, (double)(con - last_con) / dt,
                tty ? "   " : "\n");
        printed = 1;
        last = now;
        last_pub = pub;
        last_con = con;
    }
    if (printed && tty)
        fputc('\n', stderr);
}

/* Start one thread per worker; -1 (with b->stop set) if one cannot be created. */
static int
start(struct bench *b, struct bench_worker *ws, int n, void *(*fn)(void *))
{
    for (int i = 0; i < n; i++) {
        atomic_fetch_add(&b->running, 1);
        if (pthread_create(&ws[i].th, NULL, fn, &ws[i])) {
            atomic_fetch_sub(&b->running, 1);
            atomic_store(&b->stop, 1);
            fprintf(stderr, "slabmq-bench: cannot start a thread\n");
            for (int j = 0; j < i; j++)
                pthread_join(ws[j].th, NULL);
            return -1;
        }
    }
    return 0;
}

static void
join(struct bench_worker *ws, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(ws[i].th, NULL);
}

/* CPU time of the broker's event-loop (main) thread, ns: the first field of
 * /proc/PID/schedstat, which counts in ns where /proc/PID/stat counts in 10 ms ticks. The
 * store's writer thread is not in it. -1 when unknown (no PID, or not Linux). */
static int64_t
broker_cpu_ns(pid_t pid)
{
    char path[64];
    char line[128];
    char *end;
    long long ns;
    FILE *f;
    int got;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    got = fgets(line, sizeof(line), f) != NULL;
    (void)fclose(f); /* read-only: nothing to lose */
    if (!got)
        return -1;
    ns = strtoll(line, &end, 10);
    return end == line || ns < 0 ? -1 : (int64_t)ns;
}

/* Run producers and/or consumers (n = 0 for none) to completion; the broker's CPU time
 * meanwhile goes to the sides that ran. */
static int
run_phase(struct bench *b, struct bench_worker *pw, int np, struct bench_worker *cw, int nc,
          struct bench_report *r)
{
    int64_t cpu0 = broker_cpu_ns(b->p.broker_pid);
    int64_t cpu;

    if (np && b->p.count == 0)
        b->end_ns = bench_now_ns() + (int64_t)(b->p.duration_s * 1e9);
    if (start(b, cw, nc, bench_consumer_main))
        return -1;
    if (start(b, pw, np, bench_producer_main)) {
        join(cw, nc);
        return -1;
    }
    progress(b, pw, np, cw, nc);
    join(pw, np);
    join(cw, nc);
    cpu = broker_cpu_ns(b->p.broker_pid);
    cpu = cpu0 >= 0 && cpu >= cpu0 ? cpu - cpu0 : -1;
    if (np)
        r->produce.broker_cpu_ns = cpu;
    if (nc)
        r->consume.broker_cpu_ns = cpu;
    return 0;
}

/* A worker with its own connection, or -1. */
static int
worker_init(struct bench *b, struct bench_worker *w, int index, int queue, const char *role)
{
    char name[64];

    snprintf(name, sizeof(name), "slabmq-bench %s %d", role, index);
    w->b = b;
    w->index = index;
    w->q = &b->queues[queue];
    atomic_init(&w->done, 0);
    w->share = bench_share(&b->p, index);
    /* spread workers start apart, so several do not all hit the same queue at once */
    w->cursor = b->p.spread ? (uint32_t)((uint64_t)index * b->p.spread
                                         / (uint64_t)(role[0] == 'p' ? b->p.producers
                                                                     : b->p.consumers))
                            : 0;
    w->c = bench_connect(b, name);
    return w->c ? 0 : -1;
}

/* Delete the run's queues, so leftovers of an earlier run do not count. */
static int
delete_queues(struct bench *b, slabmq_client *admin)
{
    for (int i = 0; i < b->p.queues; i++) {
        slabmq_status st = slabmq_delete(admin, b->queues[i].name, NULL);
        if (st != SLABMQ_OK && st != SLABMQ_ERR_NOT_FOUND) {
            fprintf(stderr, "slabmq-bench: delete %s: %s\n", b->queues[i].name,
                    slabmq_client_errmsg(admin));
            return -1;
        }
    }
    return 0;
}

/* Name the queues and set what each expects from its producers. */
static void
init_queues(struct bench *b)
{
    const struct bench_params *p = &b->p;

    for (int i = 0; i < p->queues; i++) {
        struct bench_queue *q = &b->queues[i];
        snprintf(q->name, sizeof(q->name), "%s.%d", p->prefix, i);
        q->expected = 0;
        atomic_init(&q->producers_left, 0);
        atomic_init(&q->confirmed, 0);
        atomic_init(&q->consumed, 0);
    }
    for (int i = 0; i < p->producers; i++) {
        struct bench_queue *q = &b->queues[i % p->queues];
        if (p->workload == BENCH_DRAIN)
            q->expected += p->count ? bench_share(p, i) : 0;
        else
            atomic_fetch_add(&q->producers_left, 1);
    }
    for (int i = 0; p->workload == BENCH_DRAIN && i < p->queues; i++) {
        struct bench_queue *q = &b->queues[i];
        if (!p->count)
            q->expected = UINT64_MAX; /* until the queue is empty */
        atomic_store(&q->confirmed, q->expected);
    }
}

/* Hold: touch the broker's pools with a small publish and drain, so the "empty" RSS is
 * that of a warm broker, as slabmq-membench measures it. */
static int
warm_up(struct bench *b, slabmq_client *admin)
{
    const char *q = b->queues[0].name;
    char *body = calloc(1, b->p.size);
    slabmq_payload pl[100];
    long left = 1000;

    for (int i = 0; body && i < 100; i++)
        pl[i] = (slabmq_payload){body, b->p.size};
    while (body && left > 0) {
        slabmq_batch *bt;
        uint64_t ids[100];
        size_t n;
        if (slabmq_publish_batch(admin, q, pl, 100, NULL) || slabmq_fetch(admin, q, 100, 1000, &bt))
            break;
        n = slabmq_batch_count(bt);
        for (size_t i = 0; i < n; i++)
            ids[i] = slabmq_batch_get(bt, i)->id;
        slabmq_batch_free(bt);
        if (n == 0 || slabmq_ack_batch(admin, ids, n, NULL))
            break;
        left -= (long)n;
    }
    free(body);
    if (left > 0)
        fprintf(stderr, "slabmq-bench: warm-up failed: %s\n", slabmq_client_errmsg(admin));
    return left > 0 ? -1 : 0;
}

/* Run the workload with connected workers. */
static int
run_workload(struct bench *b, slabmq_client *admin, struct bench_worker *pw,
             struct bench_worker *cw, struct bench_report *r)
{
    const struct bench_params *p = &b->p;
    int np = bench_has_producers(p->workload) ? p->producers : 0;
    int nc = bench_has_consumers(p->workload) ? p->consumers : 0;

    switch (p->workload) {
    case BENCH_CONCURRENT:
        return run_phase(b, pw, np, cw, nc, r);
    case BENCH_FILL_DRAIN:
        if (run_phase(b, pw, np, NULL, 0, r) || atomic_load(&b->stop))
            return -1;
        return run_phase(b, NULL, 0, cw, nc, r);
    case BENCH_FILL:
        return run_phase(b, pw, np, NULL, 0, r);
    case BENCH_DRAIN:
        return run_phase(b, NULL, 0, cw, nc, r);
    case BENCH_HOLD:
        if (warm_up(b, admin))
            return -1;
        r->rss_empty_kb = spawn_rss_kb(p->broker_pid);
        if (run_phase(b, pw, np, NULL, 0, r))
            return -1;
        r->rss_full_kb = spawn_rss_kb(p->broker_pid);
        return 0;
    }
    return -1;
}


/* The broker's limits, learnt at HELLO, against --size and --batch-publish. */
static int
check_limits(const struct bench *b, const slabmq_client *admin)
{
    uint64_t k = b->p.batch_publish > 1 ? b->p.batch_publish : 1;
    uint64_t frame = k * (b->p.size + 5) + 256; /* payloads, their msgpack headers, the rest */

    if (b->p.size > slabmq_client_max_message_size(admin)) {
        fprintf(stderr, "slabmq-bench: --size %zu exceeds the broker's maximum message of %" PRIu64
                " bytes\n", b->p.size, slabmq_client_max_message_size(admin));
        return -1;
    }
    if (k > 1 && frame > slabmq_client_max_frame_size(admin)) {
        fprintf(stderr, "slabmq-bench: %" PRIu64 " messages of %zu bytes do not fit in one "
                "frame of at most %" PRIu64 " bytes\n", k, b->p.size,
                slabmq_client_max_frame_size(admin));
        return -1;
    }
    return 0;
}

/* Create p->idle_queues queues of one message each, pipelined, before the workload. */
static int
fill_idle(struct bench *b, slabmq_client *admin)
{
    char name[256];

    for (uint64_t i = 0; i < b->p.idle_queues; i++) {
        snprintf(name, sizeof(name), "%s.idle.%llu", b->p.prefix, (unsigned long long)i);
        if (slabmq_publish_async(admin, name, "idle-queue-filler", 17, NULL) != SLABMQ_OK)
            break;
    }
    if (slabmq_flush(admin) != SLABMQ_OK) {
        fprintf(stderr, "slabmq-bench: creating idle queues: %s\n", slabmq_client_errmsg(admin));
        return -1;
    }
    return 0;
}

/* --spread: name the N queues (one allocation for all the names) and, unless draining what
 * a fill left, declare each, empty: one left by an earlier run is deleted and declared
 * again, so its messages do not count. One round trip per queue (two for a leftover),
 * before the clock starts. */
static int
spread_queues(struct bench *b, slabmq_client *admin, int declare)
{
    uint32_t n = b->p.spread;
    size_t width = strlen(b->p.prefix) + 12; /* ".", up to 10 digits, NUL */
    char *buf = malloc((size_t)n * width);
    const char **names = malloc((size_t)n * sizeof(*names));

    if (!buf || !names) {
        fprintf(stderr, "slabmq-bench: out of memory\n");
        free(buf);
        free(names);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        snprintf(buf + (size_t)i * width, width, "%s.%u", b->p.prefix, i);
        names[i] = buf + (size_t)i * width;
    }
    b->spread_names = names; /* freed by spread_free(), buf through names[0] */
    for (uint32_t i = 0; declare && i < n; i++) {
        int created = 0;
        slabmq_status st = slabmq_declare(admin, names[i], NULL, &created);
        if (st == SLABMQ_OK && !created && (st = slabmq_delete(admin, names[i], NULL)) == SLABMQ_OK)
            st = slabmq_declare(admin, names[i], NULL, &created);
        if (st != SLABMQ_OK) {
            fprintf(stderr, "slabmq-bench: declare %s: %s\n", names[i],
                    slabmq_client_errmsg(admin));
            return -1;
        }
    }
    return 0;
}

static void
spread_free(struct bench *b)
{
    if (b->spread_names)
        free((void *)b->spread_names[0]);
    free(b->spread_names);
    b->spread_names = NULL;
}

/* Connect the workers and the admin client, run, collect. -1 if it could not run. */
static int
bench_run(struct bench *b, struct bench_report *r)
{
    const struct bench_params *p = &b->p;
    int np = bench_has_producers(p->workload) ? p->producers : 0;
    int nc = bench_has_consumers(p->workload) ? p->consumers : 0;
    struct bench_worker *pw = calloc((size_t)p->producers, sizeof(*pw));
    struct bench_worker *cw = calloc((size_t)p->consumers, sizeof(*cw));
    slabmq_client *admin = bench_connect(b, "slabmq-bench admin");
    int rc = -1;

    if (!pw || !cw || !admin || check_limits(b, admin))
        goto out;
    init_queues(b);
    if (p->workload != BENCH_DRAIN && delete_queues(b, admin))
        goto out;
    if (p->idle_queues && fill_idle(b, admin))
        goto out;
    if (p->spread && spread_queues(b, admin, p->workload != BENCH_DRAIN))
        goto out;
    for (int i = 0; i < np; i++)
        if (worker_init(b, &pw[i], i, i % p->queues, "producer"))
            goto out_close;
    for (int i = 0; i < nc; i++) {
        if (worker_init(b, &cw[i], i, i % p->queues, "consumer"))
            goto out_close;
        cw[i].h = malloc(sizeof(*cw[i].h));
        if (!cw[i].h)
            goto out_close;
        hist_init(cw[i].h);
    }
    r->ran = 1;
    r->produce.broker_cpu_ns = r->consume.broker_cpu_ns = -1;
    rc = run_workload(b, admin, pw, cw, r);
    bench_report_collect(b, pw, np, cw, nc, r);
    if (p->workload == BENCH_HOLD)
        delete_queues(b, admin); /* do not leave a million messages on someone's broker */
out_close:
    for (int i = 0; i < np; i++)
        slabmq_client_close(pw[i].c);
    for (int i = 0; i < nc; i++) {
        slabmq_client_close(cw[i].c);
        free(cw[i].h);
    }
out:
    slabmq_client_close(admin);
    free(pw);
    free(cw);
    return rc;
}

static int
spawn_broker(struct bench_params *p, struct spawn *bb)
{
    p->broker_args[p->nbroker_args] = NULL;
    if (spawn_start(bb, p->spawn, NULL, p->broker_args)) {
        fprintf(stderr, "slabmq-bench: cannot start %s\n", p->spawn);
        return -1;
    }
    snprintf(p->host, sizeof(p->host), "127.0.0.1");
    p->port = (uint16_t)bb->port;
    p->broker_pid = bb->pid;
    return 0;
}

int
main(int argc, char **argv)
{
    static struct bench b; /* large (the verification bitmap index); zeroed */
    struct spawn bb = {0, 0, -1};
    struct bench_report r = {0};
    struct sigaction sa = {0};
    int rc;

    b.p = (struct bench_params){.host = "127.0.0.1", .port = SLABMQ_DEFAULT_PORT,
                                .producers = 1, .consumers = 1, .size = 100, .window = 1024,
                                .fetch_batch = 1024, .fetch_ahead = UINT32_MAX,
                                .spread_group = SLABMQ_FETCH_QUEUES_MAX,
                                .queues = 1, .prefix = "bench"};
    if (parse_args(&b.p, argc, argv))
        return 2;
    r.broker_status = -1;
    r.lat = malloc(sizeof(*r.lat));
    b.queues = calloc((size_t)b.p.queues, sizeof(*b.queues));
    b.seen = b.p.verify ? calloc((size_t)b.p.producers, sizeof(*b.seen)) : NULL;
    if (!r.lat || !b.queues || (b.p.verify && !b.seen)) {
        fprintf(stderr, "slabmq-bench: out of memory\n");
        free(r.lat);
        free(b.queues);
        free(b.seen);
        return 1;
    }
    hist_init(r.lat);
    stop_flag = &b.stop;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    (void)signal(SIGPIPE, SIG_IGN); /* cannot fail: a valid signal and handler */
    if (b.p.spawn && spawn_broker(&b.p, &bb))
        return 1;
    rc = bench_run(&b, &r);
    if (bb.pid > 0 && (r.broker_status = spawn_stop(&bb)) != 0)
        fprintf(stderr, "slabmq-bench: the broker exited with status %d\n", r.broker_status);
    r.interrupted = interrupted;
    if (r.ran)
        bench_report_print(&b, &r);
    bench_seen_free(&b);
    spread_free(&b);
    free(b.queues);
    free(r.lat);
    return rc || bench_report_failed(&b, &r) ? 1 : 0;
}
