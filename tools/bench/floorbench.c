/* SPDX-License-Identifier: MIT */
/* slabmq-floorbench: the latency floor of this machine for the peer table's latency row
 * (docs/performance.md, "The machine's floor").
 *
 * The latency workload of slabmq-bench and slabmq-peerbench, with a broker that does nothing:
 * a producer paced on an absolute schedule (1 ns timer slack, every message due sent at
 * once, the intended send time stamped in the payload, as both benchmarks pace), a relay
 * thread that moves bytes from one loopback TCP connection to another (epoll, read of up to
 * 64 KiB, write), and a consumer that reads them and records each message's latency. Three
 * threads and two connections, as with any broker; no parsing, no queue, no replies. What it
 * measures is what scheduling, wake-ups and loopback TCP cost here, the part of every
 * broker's latency no broker can remove: a broker's figure is read against it, measured in
 * the same session. Every loop is bounded in count and time; only 127.0.0.1 is used. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#define RELAY_BUF 65536
#define BATCH_MAX 1024      /* messages in one send when the producer is late */
#define IDLE_MS 10000       /* a reader that sees nothing for this long gives up */

struct floor {
    double rate;            /* msg/s */
    double seconds;         /* how long the producer publishes */
    uint32_t size;          /* bytes per message, at least 16: send time and sequence */
    int json;
    uint64_t n;             /* messages in all */
    int prod_fd;            /* producer -> relay */
    int relay_in;
    int relay_out;          /* relay -> consumer */
    int cons_fd;
    int64_t late_max_ns;    /* producer: worst send behind schedule */
    uint64_t received;      /* consumer */
    uint64_t reordered;
    struct hist h;
    const char *failed;     /* first failure, or NULL */
};

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

/* A connected pair of loopback TCP sockets, Nagle off on both: *a connects, *b accepts. */
static int
tcp_pair(int *a, int *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);

    *a = *b = -1;
    if (l < 0 || bind(l, (struct sockaddr *)&sa, len) || listen(l, 1)
        || getsockname(l, (struct sockaddr *)&sa, &len))
        goto fail;
    *a = socket(AF_INET, SOCK_STREAM, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, len))
        goto fail;
    *b = accept(l, NULL, NULL);
    if (*b < 0)
        goto fail;
    close(l);
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
fail:
    if (l >= 0)
        close(l);
    if (*a >= 0)
        close(*a);
    *a = -1;
    return -1;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Send every message as it comes due; then end the stream. */
static void *
producer_main(void *arg)
{
    struct floor *f = arg;
    int64_t interval = (int64_t)(1e9 / f->rate);
    uint8_t *buf = calloc(BATCH_MAX, f->size);
    int64_t start;
    uint64_t sent = 0;

    if (!buf) {
        f->failed = "out of memory";
        goto out;
    }
    if (interval < 1)
        interval = 1;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on schedule, as the benchmarks do */
    start = now_ns();
    while (sent < f->n) {
        int64_t due = start + (int64_t)sent * interval;
        int64_t now = now_ns();
        uint64_t m;
        if (due > now) {
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            now = now_ns();
        }
        if (now - due > f->late_max_ns)
            f->late_max_ns = now - due;
        m = (uint64_t)((now - start) / interval) + 1 - sent; /* every message now due */
        if (m > BATCH_MAX)
            m = BATCH_MAX;
        if (m > f->n - sent)
            m = f->n - sent;
        for (uint64_t i = 0; i < m; i++) {
            put64(buf + i * f->size, (uint64_t)(start + (int64_t)(sent + i) * interval));
            put64(buf + i * f->size + 8, sent + i);
        }
        if (write_all(f->prod_fd, buf, m * f->size)) {
            f->failed = "producer: write failed";
            break;
        }
        sent += m;
    }
out:
    shutdown(f->prod_fd, SHUT_WR);
    free(buf);
    return NULL;
}

/* Move bytes from relay_in to relay_out until the producer's stream ends. */
static void *
relay_main(void *arg)
{
    struct floor *f = arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = f->relay_in};
    uint8_t *buf = malloc(RELAY_BUF);
    int ep = epoll_create1(0);
    int64_t idle_since = now_ns();

    if (!buf || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, f->relay_in, &ev)) {
        f->failed = "relay: setup failed";
        goto out;
    }
    for (;;) {
        ssize_t n;
        int k = epoll_wait(ep, &ev, 1, 1000);
        if (k < 0 && errno != EINTR) {
            f->failed = "relay: epoll_wait failed";
            break;
        }
        if (k <= 0) {
            if (now_ns() - idle_since > (int64_t)IDLE_MS * 1000000) {
                f->failed = "relay: nothing arrived for 10 s";
                break;
            }
            continue;
        }
        idle_since = now_ns();
        n = read(f->relay_in, buf, RELAY_BUF);
        if (n == 0)
            break; /* the producer is done */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || write_all(f->relay_out, buf, (size_t)n)) {
            f->failed = "relay: read or write failed";
            break;
        }
    }
out:
    shutdown(f->relay_out, SHUT_WR);
    if (ep >= 0)
        close(ep);
    free(buf);
    return NULL;
}

/* Read the messages, record each one's latency from its intended send time. */
static void
consume(struct floor *f)
{
    size_t cap = RELAY_BUF + f->size;
    uint8_t *buf = malloc(cap);
    size_t have = 0;
    uint64_t next = 0;

    if (!buf) {
        f->failed = "out of memory";
        return;
    }
    for (;;) {
        struct pollfd p = {.fd = f->cons_fd, .events = POLLIN};
        ssize_t n;
        size_t off = 0;
        int rc = poll(&p, 1, IDLE_MS);
        if (rc == 0) {
            f->failed = "consumer: nothing arrived for 10 s";
            break;
        }
        if (rc < 0 && errno == EINTR)
            continue;
        n = rc < 0 ? -1 : read(f->cons_fd, buf + have, cap - have);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            f->failed = "consumer: read failed";
            break;
        }
        have += (size_t)n;
        for (; have - off >= f->size; off += f->size) {
            int64_t sent = (int64_t)get64(buf + off);
            int64_t now = now_ns();
            hist_record(&f->h, now > sent ? (uint64_t)(now - sent) : 0);
            if (get64(buf + off + 8) != next)
                f->reordered++;
            next = get64(buf + off + 8) + 1;
            f->received++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    free(buf);
}

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: slabmq-floorbench [--rate MSG_PER_S] [--duration SECONDS] [--size BYTES] "
            "[--json]\n"
            "  a paced producer, a relay that only moves bytes, and a consumer, over two\n"
            "  loopback TCP connections: the latency no broker can go below on this machine\n"
            "  --rate R       msg/s on a fixed schedule (default 45000)\n"
            "  --duration S   seconds of publishing (default 6)\n"
            "  --size B       bytes per message, at least 16 (default 256)\n"
            "  --json         one JSON object on stdout\n");
}

static int
parse(int argc, char **argv, struct floor *f)
{
    static const struct option longopts[] = {
        {"rate", required_argument, NULL, 'r'},  {"duration", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    int opt;

    f->rate = 45000;
    f->seconds = 6;
    f->size = 256;
    while ((opt = getopt_long(argc, argv, "r:d:s:jh", longopts, NULL)) != -1) {
        char *end = NULL;
        double v = 0;
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (opt == 'j') {
            f->json = 1;
            continue;
        }
        if (opt == '?')
            return -1;
        v = strtod(optarg, &end);
        if (!end || *end || v <= 0) {
            fprintf(stderr, "slabmq-floorbench: bad value '%s'\n", optarg);
            return -1;
        }
        if (opt == 'r')
            f->rate = v;
        else if (opt == 'd')
            f->seconds = v;
        else
            f->size = v > 1048576 ? 0 : (uint32_t)v;
    }
    if (optind < argc || f->size < 16 || f->rate > 1e7 || f->seconds > 3600) {
        usage(stderr);
        return -1;
    }
    f->n = (uint64_t)(f->rate * f->seconds);
    return f->n ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static struct floor f; /* the histogram is ~31 KiB */
    pthread_t prod;
    pthread_t relay;
    double us[5];
    static const double pct[5] = {50, 90, 99, 99.9, 100};

    if (parse(argc, argv, &f))
        return 2;
    hist_init(&f.h);
    if (tcp_pair(&f.prod_fd, &f.relay_in) || tcp_pair(&f.relay_out, &f.cons_fd)) {
        perror("slabmq-floorbench: loopback connection");
        return 1;
    }
    if (pthread_create(&relay, NULL, relay_main, &f)) {
        fprintf(stderr, "slabmq-floorbench: cannot start a thread\n");
        return 1;
    }
    if (pthread_create(&prod, NULL, producer_main, &f)) {
        fprintf(stderr, "slabmq-floorbench: cannot start a thread\n");
        shutdown(f.relay_in, SHUT_RDWR); /* the relay sees the end and stops */
        pthread_join(relay, NULL);
        return 1;
    }
    consume(&f);
    pthread_join(prod, NULL);
    pthread_join(relay, NULL);
    if (!f.failed && f.received != f.n)
        f.failed = "messages missing";
    for (int i = 0; i < 5; i++)
        us[i] = (double)hist_percentile(&f.h, pct[i]) / 1e3;
    if (f.json)
        printf("{\"tool\":\"slabmq-floorbench\",\"params\":{\"rate\":%.1f,\"duration_s\":%.3f,"
               "\"size\":%u},\"messages\":%" PRIu64 ",\"reordered\":%" PRIu64
               ",\"latency_us\":{\"samples\":%" PRIu64 ",\"mean\":%.3f,\"p50\":%.3f,"
               "\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f},"
               "\"send_late_max_us\":%.1f,\"ok\":%s}\n",
               f.rate, f.seconds, f.size, f.received, f.reordered, f.h.total,
               hist_mean(&f.h) / 1e3, us[0], us[1], us[2], us[3], us[4],
               (double)f.late_max_ns / 1e3, f.failed ? "false" : "true");
    else
        printf("floor at %.0f msg/s, %u B, %" PRIu64 " messages: p50 %.1f  p90 %.1f  p99 %.1f  "
               "p99.9 %.1f  max %.1f us; producer late by up to %.1f us\n",
               f.rate, f.size, f.received, us[0], us[1], us[2], us[3], us[4],
               (double)f.late_max_ns / 1e3);
    if (f.failed) {
        fprintf(stderr, "slabmq-floorbench: %s (%" PRIu64 " of %" PRIu64 " received)\n",
                f.failed, f.received, f.n);
        return 1;
    }
    return 0;
}
