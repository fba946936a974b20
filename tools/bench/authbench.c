/* SPDX-License-Identifier: MIT */
/* slabmq-authbench: how a logged-in client's PINGs fare while many connections guess
 * passwords (docs/security.md section 7, issue 15). It starts a slabmqd of its own with two
 * users, "app" (10,000 iterations) and "slow" (1,000,000, the maximum), logs in as app, then
 * keeps --conns connections guessing wrong passwords, alternately for slow and for names
 * that do not exist, each reconnecting as soon as the broker refuses and closes it, while the
 * app connection sends one PING every --ping-ms and times its reply. Guessers connect from
 * their own loopback addresses (127.1.X.Y; --one-source: all from 127.0.0.1). The app client
 * runs on a thread of its own: what the guessers cost this process must not count as the
 * broker's latency. A PING whose reply has not come when the run ends is waited for.
 *
 *   slabmq-authbench [--broker PATH] [--conns N] [--seconds S] [--ping-ms MS] [--one-source]
 *
 * Everything is on 127.0.0.1; the broker is stopped by PID; the users file is written with
 * hashes made here (the format of auth.c, with OpenSSL's PBKDF2). Needs an open-file limit above
 * --conns plus a few dozen. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hist.h"
#include "spawn.h"

#define OP_HELLO 1
#define OP_PING 2
#define OP_AUTH 21
#define PW_APP "app-secret"
#define CONNS_MAX 10000

struct guesser {
    int fd;
    int sent; /* HELLO and AUTH are written; -1: not connected */
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* Frames: just enough msgpack for HELLO, AUTH and PING                                      */

static size_t
put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s); /* every string here is under 32 bytes: fixstr */

    p[0] = (uint8_t)(0xa0 | n);
    memcpy(p + 1, s, n);
    return n + 1;
}

/* A frame [op, rid, args...] with string arguments (HELLO's version is put by the caller). */
static size_t
frame(uint8_t *out, unsigned op, unsigned rid, const char *a, const char *b, int hello)
{
    uint8_t *p = out + 4;
    uint32_t len;

    *p++ = (uint8_t)(0x90 | (2 + (a ? 1 : 0) + (b ? 1 : 0) + (hello ? 1 : 0)));
    *p++ = (uint8_t)op;
    *p++ = (uint8_t)rid;
    if (hello)
        *p++ = 1; /* protocol version */
    if (a)
        p += put_str(p, a);
    if (b)
        p += put_str(p, b);
    len = (uint32_t)(p - out - 4);
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return (size_t)(p - out);
}

/* HELLO then AUTH [user, pw] into out. */
static size_t
hello_auth(uint8_t *out, const char *user, const char *pw)
{
    size_t n = frame(out, OP_HELLO, 1, "authbench", NULL, 1);

    return n + frame(out + n, OP_AUTH, 2, user, pw, 0);
}

/* Read one whole frame body from a blocking fd into buf. Returns its length, or -1. */
static long
read_frame(int fd, uint8_t *buf, size_t cap)
{
    uint8_t h[4];
    size_t got = 0;
    uint32_t len;

    while (got < 4) {
        ssize_t r = read(fd, h + got, 4 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len > cap)
        return -1;
    for (got = 0; got < len;) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return (long)len;
}

/* ---------------------------------------------------------------------------------------- */
/* Connections                                                                               */

/* A TCP connection to 127.0.0.1:port from src (NULL: any), non-blocking when nb. */
static int
dial(int port, const char *src, int nb)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_in me = {0};
        me.sin_family = AF_INET;
        inet_pton(AF_INET, src, &me.sin_addr);
        if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
            close(fd);
            return -1;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nb)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Start guesser g's next attempt (number k). */
static void
guess(struct guesser *g, int port, unsigned long k, int one_source)
{
    char src[32];

    snprintf(src, sizeof(src), "127.1.%lu.%lu", (k / 250) % 250, k % 250 + 1);
    g->fd = dial(port, one_source ? NULL : src, 1);
    g->sent = g->fd < 0 ? -1 : 0;
}

/* Write g's HELLO and AUTH once it is connected; a wrong password, for "slow" or for a name
 * that does not exist. */
static void
guess_send(struct guesser *g, unsigned long k)
{
    uint8_t buf[128];
    char name[32];
    size_t n;

    snprintf(name, sizeof(name), "nobody%lu", k % 1000);
    n = hello_auth(buf, k % 2 ? "slow" : name, "wrong-password");
    g->sent = write(g->fd, buf, n) == (ssize_t)n ? 1 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Set-up                                                                                    */

/* The users-file secret of pw at iterations (what `slabmqd --hash-password=N` prints, with a
 * random salt) into out (at least SECRET_MAX bytes). Returns 0, or -1. */
#define SECRET_MAX 160
static int
secret_of(const char *pw, unsigned iterations, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t salt[16];
    uint8_t hash[32];
    int n;

    if (RAND_bytes(salt, sizeof(salt)) != 1
        || PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, sizeof(salt), (int)iterations,
                             EVP_sha256(), sizeof(hash), hash) != 1)
        return -1;
    n = snprintf(out, SECRET_MAX, "pbkdf2-sha256$%u$", iterations);
    for (size_t i = 0; i < sizeof(salt); i++, n += 2) {
        out[n] = hex[salt[i] >> 4];
        out[n + 1] = hex[salt[i] & 15];
    }
    out[n++] = '$';
    for (size_t i = 0; i < sizeof(hash); i++, n += 2) {
        out[n] = hex[hash[i] >> 4];
        out[n + 1] = hex[hash[i] & 15];
    }
    out[n] = '\0';
    return 0;
}

/* Write the users file dir/users: app and slow. Returns 0, or -1. */
static int
write_users(const char *dir, char *path, size_t len)
{
    char h1[SECRET_MAX];
    char h2[SECRET_MAX];
    FILE *f;

    if (secret_of(PW_APP, 10000, h1) || secret_of("the slow one's secret", 1000000, h2))
        return -1;
    snprintf(path, len, "%s/users", dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "app %s all\nslow %s all\n", h1, h2);
    if (fclose(f) != 0)
        return -1;
    return chmod(path, 0600);
}

/* Log in as app on a blocking connection. Returns the fd, or -1. */
static int
login(int port)
{
    uint8_t buf[4096];
    size_t n = hello_auth(buf, "app", PW_APP);
    int fd = dial(port, NULL, 0);

    if (fd < 0 || write(fd, buf, n) != (ssize_t)n || read_frame(fd, buf, sizeof(buf)) < 3
        || read_frame(fd, buf, sizeof(buf)) < 3 || buf[3] != 0) { /* [op, rid, status] */
        fprintf(stderr, "authbench: cannot log in as app\n");
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------------------------------- */
/* The run                                                                                   */

struct opts {
    const char *broker;
    int conns;
    int seconds;
    int ping_ms;
    int one_source;
};

/* The app client, on a thread of its own so that the guessers' work in this process does not
 * delay the reading of its replies: one PING every ping_ms until stop, each reply timed. */
struct pinger {
    int fd;
    int ping_ms;
    uint64_t end_ns;     /* stop sending then */
    struct hist h;       /* round trips, ns */
};

static void *
pinger_main(void *arg)
{
    struct pinger *p = arg;
    uint8_t buf[4096];
    uint64_t start = now_ns();

    for (uint64_t i = 0; now_ns() < p->end_ns; i++) {
        uint64_t due = start + i * (uint64_t)p->ping_ms * 1000000u;
        uint64_t t;
        size_t n = frame(buf, OP_PING, 3, NULL, NULL, 0);
        while ((t = now_ns()) < due) {
            struct timespec ts = {0, (long)(due - t)};
            nanosleep(&ts, NULL);
        }
        if (write(p->fd, buf, n) != (ssize_t)n || read_frame(p->fd, buf, sizeof(buf)) < 0)
            break;
        hist_record(&p->h, now_ns() - t);
    }
    return NULL;
}

/* Start guesser i's next attempt and watch it on ep (for writable: connected). */
static void
guess_watch(int ep, struct guesser *g, int i, int port, unsigned long k, int one_source)
{
    struct epoll_event e = {EPOLLOUT, {.u32 = (uint32_t)i}};

    guess(&g[i], port, k, one_source);
    if (g[i].fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, g[i].fd, &e) != 0) {
        close(g[i].fd);
        g[i].fd = -1;
    }
}

/* Guess on every connection until end_ns (epoll: this thread's cost must not grow with the
 * number of connections, or it would take the cores the broker and the pinger need).
 * Returns the number of guesses started. */
static unsigned long
run(const struct opts *o, int port, uint64_t end_ns, struct guesser *g)
{
    struct epoll_event ev[256];
    unsigned long k = 0;
    uint8_t buf[4096];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0)
        return 0;
    for (int i = 0; i < o->conns; i++)
        guess_watch(ep, g, i, port, k++, o->one_source);
    while (now_ns() < end_ns) {
        int n = epoll_wait(ep, ev, 256, 10);
        for (int i = 0; i < o->conns && n == 0; i++) /* could not connect: try again */
            if (g[i].fd < 0)
                guess_watch(ep, g, i, port, k++, o->one_source);
        for (int j = 0; j < n; j++) {
            struct guesser *gi = &g[ev[j].data.u32];
            struct epoll_event in = {EPOLLIN, {.u32 = ev[j].data.u32}};
            if (gi->sent == 0 && (ev[j].events & EPOLLOUT)) {
                guess_send(gi, k);
                if (gi->sent > 0 && epoll_ctl(ep, EPOLL_CTL_MOD, gi->fd, &in) == 0)
                    continue;
            } else if (gi->sent > 0 && read(gi->fd, buf, sizeof(buf)) > 0) {
                continue;
            }
            close(gi->fd); /* refused and closed (or failed): guess again */
            guess_watch(ep, g, (int)ev[j].data.u32, port, k++, o->one_source);
        }
    }
    close(ep);
    return k;
}

static void
report(const struct opts *o, const struct hist *h, unsigned long guesses)
{
    printf("{\"conns\":%d,\"seconds\":%d,\"one_source\":%d,\"guesses\":%lu,\"pings\":%llu,"
           "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"p999_ms\":%.2f,\"max_ms\":%.2f}\n",
           o->conns, o->seconds, o->one_source, guesses, (unsigned long long)h->total,
           hist_percentile(h, 50) / 1e6, hist_percentile(h, 99) / 1e6,
           hist_percentile(h, 99.9) / 1e6, (double)h->max_ns / 1e6);
}

/* A decimal number from 1 to 1000000, or 0 if s is not one. */
static int
number(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    return end != s && *end == '\0' && v >= 1 && v <= 1000000 ? (int)v : 0;
}

static int
parse(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"broker", required_argument, NULL, 'b'}, {"conns", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'}, {"ping-ms", required_argument, NULL, 'p'},
        {"one-source", no_argument, NULL, 'o'},   {NULL, 0, NULL, 0},
    };
    int ch;

    *o = (struct opts){spawn_default_broker(), 1000, 10, 10, 0};
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (ch == 'b')
            o->broker = optarg;
        else if (ch == 'c')
            o->conns = number(optarg);
        else if (ch == 's')
            o->seconds = number(optarg);
        else if (ch == 'p')
            o->ping_ms = number(optarg);
        else if (ch == 'o')
            o->one_source = 1;
        else
            return -1;
    }
    return o->conns >= 1 && o->conns <= CONNS_MAX && o->seconds >= 1 && o->ping_ms >= 1 ? 0
                                                                                          : -1;
}

int
main(int argc, char **argv)
{
    struct opts o;
    char dir[] = "/tmp/slabmq-authbench.XXXXXX";
    char users[256];
    char *args[] = {"--auth-file", users, "--max-connections", "20000", NULL};
    struct spawn s;
    static struct pinger p;
    pthread_t pt;
    struct guesser *g;
    unsigned long guesses;
    int app;
    int rc = 1;

    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: slabmq-authbench [--broker PATH] [--conns 1-%d] [--seconds S] "
                        "[--ping-ms MS] [--one-source]\n", CONNS_MAX);
        return 2;
    }
    g = calloc((size_t)o.conns, sizeof(*g));
    if (!g || !mkdtemp(dir) || write_users(dir, users, sizeof(users))
        || spawn_start(&s, o.broker, NULL, args)) {
        fprintf(stderr, "authbench: cannot set up the broker %s\n", o.broker);
        free(g);
        return 1;
    }
    hist_init(&p.h);
    app = login(s.port);
    if (app >= 0) {
        p.fd = app;
        p.ping_ms = o.ping_ms;
        p.end_ns = now_ns() + (uint64_t)o.seconds * 1000000000u;
        if (pthread_create(&pt, NULL, pinger_main, &p) == 0) {
            guesses = run(&o, s.port, p.end_ns, g);
            pthread_join(pt, NULL);
            report(&o, &p.h, guesses);
            rc = 0;
        }
        close(app);
    }
    for (int i = 0; i < o.conns; i++)
        if (g[i].fd >= 0)
            close(g[i].fd);
    spawn_stop(&s);
    unlink(users);
    rmdir(dir);
    free(g);
    return rc;
}
