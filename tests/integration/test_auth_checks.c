/* SPDX-License-Identifier: MIT */
/* Password checks against a real slabmqd (issue 15, item 3; docs/security.md section 7): the
 * hash runs off the event loop, so a legitimate client's PINGs stay fast while others guess
 * passwords; a failed AUTH or HTTP Basic check takes the same time whether the name exists or
 * not, whatever its iteration count; failures are throttled per source address and per name
 * with a growing delay; a connection that closes while its check is pending costs nothing and
 * breaks nothing.
 *
 * Guessers connect from distinct loopback addresses (127.0.X.Y: Linux routes all of 127/8 to
 * lo) where a case must get past the per-address throttle. Timing bounds are loose enough for
 * a loaded 2-core machine and far from what the old broker, which hashed on the loop,
 * produced (each bound says both). Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"
#include "raw.h"

#define PW_ROOT "root-secret"
#define PW_WRONG "not-the-password"
#define REPLY_WAIT_MS 20000 /* a refused AUTH waits out the throttle (5 s at most) and more */

/* ---------------------------------------------------------------------------------------- */
/* Users                                                                                     */

struct users {
    char dir[64];
    char path[128];
};

/* A users file: root (admin, 1000 iterations: fast to accept), then each name[i] with
 * iterations[i], all with password PW_ROOT. */
/* The hash of pw at iterations (slabmqd --hash-password=N), into out. */
static void
hash_at(const char *pw, unsigned iterations, char *out, size_t len)
{
    char opt[64];

    snprintf(opt, sizeof(opt), "--hash-password=%u", iterations);
    t_password_hash(pw, opt, out, len);
}

static void
users_make(struct users *u, const char *const *names, const unsigned *iterations, int n)
{
    char h[256];
    FILE *f;

    snprintf(u->dir, sizeof(u->dir), "/tmp/slabmq-users.XXXXXX");
    T_ASSERT(mkdtemp(u->dir) != NULL);
    snprintf(u->path, sizeof(u->path), "%s/users", u->dir);
    f = fopen(u->path, "w");
    T_ASSERT(f != NULL);
    hash_at(PW_ROOT, 1000, h, sizeof(h));
    fprintf(f, "root %s all\n", h);
    for (int i = 0; i < n; i++) {
        hash_at(PW_ROOT, iterations[i], h, sizeof(h));
        fprintf(f, "%s %s all\n", names[i], h);
    }
    T_ASSERT(fclose(f) == 0);
    T_ASSERT(chmod(u->path, 0600) == 0);
}

static void
users_remove(struct users *u)
{
    unlink(u->path);
    rmdir(u->dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Raw attempts                                                                              */

/* A TCP connection to 127.0.0.1:port from the loopback address src ("127.0.X.Y"; NULL: the
 * kernel's choice, 127.0.0.1). */
static int
connect_from(int port, const char *src)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    T_ASSERT(fd >= 0);
    if (src) {
        struct sockaddr_in me = {0};
        me.sin_family = AF_INET;
        T_ASSERT(inet_pton(AF_INET, src, &me.sin_addr) == 1);
        if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0)
            t_fail(__FILE__, __LINE__, "bind %s: %s", src, strerror(errno));
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        t_fail(__FILE__, __LINE__, "connect from %s: %s", src ? src : "-", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Send HELLO (request 1) and AUTH [user, pw] (request 2) in one write. */
static void
send_hello_auth(int fd, const char *user, const char *pw)
{
    struct mb m = {0};
    struct mb s = {0};

    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 1);
    mb_str(&m, "test_auth_checks");
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_AUTH, 2, 2);
    mb_str(&m, user);
    mb_str(&m, pw);
    mb_frame(&s, m.p, m.len);
    t_raw_send(fd, s.p, s.len);
    mb_free(&m);
    mb_free(&s);
}

/* One AUTH attempt from src: returns its status (0, or the error code) and how long the AUTH
 * reply took (*ms, from the send); the connection is closed. */
static unsigned
attempt(int port, const char *src, const char *user, const char *pw, int64_t *ms)
{
    int fd = connect_from(port, src);
    int64_t t0 = t_now_ms();
    struct rep p;

    send_hello_auth(fd, user, pw);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), REPLY_WAIT_MS, &p);
    T_EQ_U64(p.op, SMQ_OP_HELLO);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), REPLY_WAIT_MS, &p);
    *ms = t_now_ms() - t0;
    T_EQ_U64(p.op, SMQ_OP_AUTH);
    T_EQ_U64(p.rid, 2);
    close(fd);
    return (unsigned)p.status;
}

/* A raw connection from 127.0.0.1 authenticated as root. */
static int
root_session(int port)
{
    int64_t ms;
    int fd = connect_from(port, NULL);
    struct rep p;

    (void)ms;
    send_hello_auth(fd, "root", PW_ROOT);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), REPLY_WAIT_MS, &p);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), REPLY_WAIT_MS, &p);
    T_EQ_U64(p.op, SMQ_OP_AUTH);
    T_EQ_U64(p.status, 0);
    return fd;
}

/* The k-th loopback source address of group g: 127.g.(k / 250).(k % 250 + 1). */
static const char *
source(int g, int k, char *buf, size_t len)
{
    snprintf(buf, len, "127.%d.%d.%d", g, k / 250, k % 250 + 1);
    return buf;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int64_t
median(int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    return v[n / 2];
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                      */

/* GET /metrics with Basic user:pw from src; returns the status code, *ms how long it took. */
static int
http_get(int port, const char *src, const char *user, const char *pw, int64_t *ms)
{
    char cred[256];
    char b64[400];
    char req[600];
    char resp[256];
    size_t got = 0;
    int fd = connect_from(port, src);
    int64_t t0 = t_now_ms();
    int64_t deadline = t0 + REPLY_WAIT_MS;
    int code = 0;

    snprintf(cred, sizeof(cred), "%s:%s", user, pw);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cred, (int)strlen(cred));
    snprintf(req, sizeof(req),
             "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
             "Connection: close\r\n\r\n",
             b64);
    t_raw_send(fd, req, strlen(req));
    while (got < 12 && t_now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&pf, 1, 50) <= 0)
            continue;
        r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *ms = t_now_ms() - t0;
    resp[got] = '\0';
    if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0)
        code = atoi(resp + 9);
    close(fd);
    if (!code)
        t_fail(__FILE__, __LINE__, "no HTTP status within %d ms: '%s'", REPLY_WAIT_MS, resp);
    return code;
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                     */

/* While 80 connections at a time guess the password of a user hashed at the maximum of
 * 1,000,000 iterations, each from its own address, a logged-in client's PINGs stay fast
 * (and the guesses refused for want of a check slot, 16 at least of the first 80 since
 * there are 64 slots, show in STATS auth_unchecked).
 * The old broker hashed on the loop: every guess stopped it for a few hundred ms (PING max
 * over 300 ms, p99 the same); here the loop only parses and the bound is p99 under 100 ms, no
 * PING over 250 ms. */
static void
test_ping_fast_while_guessing(void)
{
    enum { GUESSERS = 80, GUESS_MS = 3000, PING_EVERY_MS = 5, MAX_PINGS = 2000 };
    static const char *const names[] = {"slow"};
    static const unsigned iters[] = {1000000};
    struct users u;
    struct t_broker b;
    struct pollfd pf[GUESSERS + 1];
    static int64_t rtt[MAX_PINGS];
    int npings = 0;
    int attempts = 0;
    int64_t sent_at = 0;
    int64_t end;
    char src[32];
    uint8_t junk[4096];

    users_make(&u, names, iters, 1);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    pf[0].fd = root_session(b.port);
    pf[0].events = POLLIN;
    for (int i = 1; i <= GUESSERS; i++) {
        pf[i].fd = connect_from(b.port, source(10, attempts, src, sizeof(src)));
        pf[i].events = POLLIN;
        send_hello_auth(pf[i].fd, attempts % 2 ? "slow" : "nobody", PW_WRONG);
        attempts++;
    }
    end = t_now_ms() + GUESS_MS;
    while (t_now_ms() < end && npings < MAX_PINGS) {
        if (!sent_at && t_now_ms() >= end - GUESS_MS + (int64_t)npings * PING_EVERY_MS) {
            struct mb m = {0};
            mb_req(&m, SMQ_OP_PING, 100 + (uint64_t)npings, 0);
            send_mb(pf[0].fd, &m);
            mb_free(&m);
            sent_at = t_now_ms();
        }
        if (poll(pf, GUESSERS + 1, 1) <= 0)
            continue;
        if (pf[0].revents) {
            struct rep p;
            recv_rep(__FILE__, __LINE__, pf[0].fd, &p);
            T_EQ_U64(p.op, SMQ_OP_PING);
            rtt[npings++] = t_now_ms() - sent_at;
            sent_at = 0;
        }
        for (int i = 1; i <= GUESSERS; i++) {
            if (!pf[i].revents || recv(pf[i].fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
                continue;
            close(pf[i].fd); /* refused and closed: guess again from a new address */
            pf[i].fd = connect_from(b.port, source(10, attempts, src, sizeof(src)));
            send_hello_auth(pf[i].fd, attempts % 2 ? "slow" : "nobody", PW_WRONG);
            attempts++;
        }
    }
    if (sent_at) /* still unanswered: it counts as long as it has waited */
        rtt[npings++] = t_now_ms() - sent_at;
    for (int i = 0; i <= GUESSERS; i++)
        close(pf[i].fd);
    {
        int64_t p99;
        int64_t max;
        qsort(rtt, (size_t)npings, sizeof(rtt[0]), cmp_i64);
        p99 = rtt[npings * 99 / 100];
        max = rtt[npings - 1];
        printf("%d PINGs while %d guesses: p50 %lld ms, p99 %lld ms, max %lld ms\n", npings,
               attempts, (long long)rtt[npings / 2], (long long)p99, (long long)max);
        T_ASSERT(p99 < 100);
        T_ASSERT(max < 250);
        T_ASSERT(npings >= 100);
    }
    /* the guesses that found every check slot taken were refused unchecked, and counted */
    {
        slabmq_options opt = SLABMQ_OPTIONS_INIT;
        slabmq_client *c = NULL;
        char err[256] = "";
        opt.port = (uint16_t)b.port;
        opt.timeout_ms = 10000;
        opt.user = "root";
        opt.password = PW_ROOT;
        T_EQ_INT(slabmq_client_connect_errbuf(&opt, &c, err, sizeof(err)), SLABMQ_OK);
        printf("auth_unchecked %llu, auth_failures %llu\n",
               (unsigned long long)t_stat(c, NULL, "auth_unchecked"),
               (unsigned long long)t_stat(c, NULL, "auth_failures"));
        T_ASSERT(t_stat(c, NULL, "auth_unchecked") > 0);
        slabmq_client_close(c);
    }
    t_broker_stop(&b);
    users_remove(&u);
}

/* A failed AUTH takes as long for a name that does not exist as for users hashed at 10,000
 * and 600,000 iterations. The old broker answered an unknown name after 10,000 iterations and
 * a user after its own count: about 120 ms apart on this machine for the 600,000 user. The
 * bound: medians of 5 within 50 ms, or within a quarter of the check itself when a loaded
 * machine stretches it (the old gap was all of the extra hash, so it cannot pass). */
static void
test_failure_time_same_for_any_name(void)
{
    enum { ROUNDS = 5 };
    static const char *const names[] = {"fast", "slow", "ghost"}; /* ghost: not a user */
    static const unsigned iters[] = {10000, 600000};
    struct users u;
    struct t_broker b;
    int64_t t[3][ROUNDS];
    int64_t med[3];
    int64_t slack;
    char src[32];

    users_make(&u, names, iters, 2);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    for (int r = 0; r < ROUNDS; r++) {
        /* past every name's throttle wait (100 ms << failures - 1, twice over: a booking
         * can push it one step further), so that what is timed is
         * the check and the reply delay, not where a name's turn fell in the round */
        if (r > 0)
            t_sleep_ms((100 << r) + 50);
        for (int j = 0; j < 3; j++) {
            int who = (j + r) % 3; /* rotate the order so drift hits each name alike */
            T_EQ_INT(attempt(b.port, source(20 + who, r, src, sizeof(src)), names[who], PW_WRONG,
                             &t[who][r]),
                     SLABMQ_ERR_AUTH);
        }
    }
    for (int j = 0; j < 3; j++)
        med[j] = median(t[j], ROUNDS);
    fprintf(stderr, "median failure: fast %lld ms, slow %lld ms, unknown %lld ms\n",
            (long long)med[0], (long long)med[1], (long long)med[2]);
    slack = (med[2] - 200) / 4 > 50 ? (med[2] - 200) / 4 : 50;
    T_ASSERT(llabs(med[1] - med[2]) <= slack);
    T_ASSERT(llabs(med[0] - med[2]) <= slack);
    t_broker_stop(&b);
    users_remove(&u);
}

/* Failures from one address, and failures for one name from many addresses, are answered
 * later and later (100 ms << failures, counted from the last failure, at most 5 s); a success
 * clears the name's count. The old broker answered every failure after 200 ms. */
static void
test_throttle_delays_repeated_failures(void)
{
    enum { N = 7 };
    static const char *const names[] = {"fast"};
    static const unsigned iters[] = {1000};
    struct users u;
    struct t_broker b;
    int64_t t[N];
    char name[32];
    char src[32];

    users_make(&u, names, iters, 1);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    /* one address, a new name each time */
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "nobody%d", i);
        T_EQ_INT(attempt(b.port, "127.0.30.1", name, PW_WRONG, &t[i]), SLABMQ_ERR_AUTH);
    }
    printf("one address: first %lld ms, last %lld ms\n", (long long)t[0], (long long)t[N - 1]);
    T_ASSERT(t[0] < 1000);
    T_ASSERT(t[N - 1] >= 1500 && t[N - 1] >= t[0] + 1000);
    /* one name, a new address each time */
    for (int i = 0; i < N; i++)
        T_EQ_INT(attempt(b.port, source(31, i, src, sizeof(src)), "fast", PW_WRONG, &t[i]),
                 SLABMQ_ERR_AUTH);
    printf("one name: first %lld ms, last %lld ms\n", (long long)t[0], (long long)t[N - 1]);
    T_ASSERT(t[0] < 1000);
    T_ASSERT(t[N - 1] >= 1500 && t[N - 1] >= t[0] + 1000);
    /* the right password still gets in, after the wait; then the name starts afresh */
    T_EQ_INT(attempt(b.port, source(32, 0, src, sizeof(src)), "fast", PW_ROOT, &t[0]), 0);
    T_EQ_INT(attempt(b.port, source(32, 1, src, sizeof(src)), "fast", PW_WRONG, &t[1]),
             SLABMQ_ERR_AUTH);
    T_ASSERT(t[1] < 1000);
    t_broker_stop(&b);
    users_remove(&u);
}

/* HTTP Basic on the metrics port gets the same treatment: a failure is answered after the
 * delay (the old broker answered at once) and takes as long for an unknown name as for a
 * user hashed at 600,000 iterations (the old gap: about 120 ms); the right credentials work. */
static void
test_http_basic_same_treatment(void)
{
    enum { ROUNDS = 5 };
    static const char *const names[] = {"slow", "ghost"};
    static const unsigned iters[] = {600000};
    struct users u;
    struct t_broker b;
    int64_t t[2][ROUNDS];
    int64_t med[2];
    int64_t ms;
    int64_t slack;
    char src[32];

    users_make(&u, names, iters, 1);
    t_broker_start(&b, "--auth-file", u.path, "--http", "127.0.0.1:0", NULL);
    T_ASSERT(b.http_port > 0);
    T_EQ_INT(http_get(b.http_port, NULL, "root", PW_ROOT, &ms), 200);
    for (int r = 0; r < ROUNDS; r++) {
        if (r > 0) /* past the throttle's waits, as in failure_time_same_for_any_name */
            t_sleep_ms((100 << r) + 50);
        for (int j = 0; j < 2; j++) {
            int who = (j + r) % 2;
            T_EQ_INT(http_get(b.http_port, source(40 + who, r, src, sizeof(src)), names[who],
                              PW_WRONG, &t[who][r]),
                     401);
            T_ASSERT(t[who][r] >= 150);
        }
    }
    med[0] = median(t[0], ROUNDS);
    med[1] = median(t[1], ROUNDS);
    fprintf(stderr, "median HTTP failure: slow %lld ms, unknown %lld ms\n", (long long)med[0],
           (long long)med[1]);
    slack = (med[1] - 200) / 4 > 50 ? (med[1] - 200) / 4 : 50;
    T_ASSERT(llabs(med[0] - med[1]) <= slack);
    /* the right password of a user hashed at 600,000 iterations works too */
    T_EQ_INT(http_get(b.http_port, source(42, 0, src, sizeof(src)), "slow", PW_ROOT, &ms), 200);
    t_broker_stop(&b);
    users_remove(&u);
}

/* Connections that close while their checks are pending (queued behind each other, or
 * waiting out the throttle) are forgotten safely: no callback into freed memory (the
 * sanitizer builds would catch it), their checks are skipped, a new client gets in at once,
 * and the broker stops cleanly. The old broker ran the 20 guesses at 1,000,000 iterations on
 * the loop as they arrived: the new client waited for all of them (several seconds). */
static void
test_close_while_check_pending(void)
{
    enum { PENDING = 20, WAITING = 5 };
    static const char *const names[] = {"slow"};
    static const unsigned iters[] = {1000000};
    struct users u;
    struct t_broker b;
    int fds[PENDING + WAITING];
    int64_t ms;
    char src[32];
    int fd;

    users_make(&u, names, iters, 1);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    for (int i = 0; i < PENDING; i++) {
        fds[i] = connect_from(b.port, source(50, i, src, sizeof(src)));
        send_hello_auth(fds[i], "slow", PW_WRONG);
    }
    /* these wait for the throttle: one address that has failures queued ahead of it */
    for (int i = 0; i < WAITING; i++) {
        fds[PENDING + i] = connect_from(b.port, "127.0.51.1");
        send_hello_auth(fds[PENDING + i], "nobody", PW_WRONG);
    }
    t_sleep_ms(100);
    for (int i = 0; i < PENDING + WAITING; i++)
        close_reset(fds[i]);
    {
        int64_t t0 = t_now_ms();
        fd = root_session(b.port);
        ms = t_now_ms() - t0;
    }
    printf("login after %d abandoned checks: %lld ms\n", PENDING + WAITING, (long long)ms);
    T_ASSERT(ms < 2000);
    EXPECT_PING(fd);
    close(fd);
    /* one more check left pending at shutdown */
    fd = connect_from(b.port, source(52, 0, src, sizeof(src)));
    send_hello_auth(fd, "slow", PW_WRONG);
    t_sleep_ms(50);
    t_broker_stop(&b);
    close(fd);
    users_remove(&u);
}

static const struct t_case cases[] = {
    T_CASE(test_ping_fast_while_guessing),
    T_CASE(test_failure_time_same_for_any_name),
    T_CASE(test_throttle_delays_repeated_failures),
    T_CASE(test_http_basic_same_treatment),
    T_CASE(test_close_while_check_pending),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
