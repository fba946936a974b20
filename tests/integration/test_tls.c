/* SPDX-License-Identifier: MIT */
/* TLS against a real slabmqd (--tls-port, docs/security.md section 8): the library and the
 * CLI over TLS, plain and TLS listeners side by side on one broker, certificate checks on
 * both sides (untrusted CA, wrong name, expired, client certificates), the wrong kind of
 * client on each port, a stalled handshake, bulk pipelined traffic and pushes through the
 * bufferevent, AUTH over TLS, certificate reload on SIGHUP, TLS only, and configuration
 * errors. Certificates are made by the test (harness/certs.c). Every wait is bounded;
 * everything connects to 127.0.0.1. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <openssl/ssl.h>

#include "cli.h"
#include "raw.h"
#include "slabmq.h"
#include "t.h"

static char certs[64];

/* Make the certificates once per process, in a temp dir removed at exit. */
static void
rm_certs(void)
{
    t_remove_dir(certs);
}

static const char *
cert(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];

    if (!certs[0]) {
        snprintf(certs, sizeof(certs), "/tmp/slabmq-certs.XXXXXX");
        T_ASSERT(mkdtemp(certs) != NULL);
        atexit(rm_certs);
        t_certs_make(certs);
    }
    snprintf(p, 128, "%s/%s", certs, name);
    return p;
}

/* A broker with a TLS listener next to the plain one, plus up to four extra args (the
 * first NULL ends them). */
static void
start_tls(struct t_broker *b, const char *a1, const char *a2, const char *a3, const char *a4)
{
    t_broker_start(b, "--tls-port", "0", "--tls-cert", cert("server.crt"), "--tls-key",
                   cert("server.key"), a1, a2, a3, a4, NULL);
    T_ASSERT(b->tls_port > 0);
    T_ASSERT(b->tls_port != b->port);
}

/* Connect over TLS; returns the status, *out the client (NULL on failure), err the reason. */
static slabmq_status
tls_connect(int port, const slabmq_tls_options *t, const char *host, slabmq_client **out,
            char *err, size_t errlen)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;

    o.port = (uint16_t)port;
    o.timeout_ms = 10000;
    o.user = "";
    o.tls = t;
    if (host)
        o.host = host;
    return slabmq_client_connect_errbuf(&o, out, err, errlen);
}

/* A TLS client trusting the test CA (fails the test on error). */
static slabmq_client *
tls_client(int port)
{
    slabmq_tls_options t = {0};
    slabmq_client *c = NULL;
    char err[512] = "";
    slabmq_status st;

    t.ca_file = cert("ca.crt");
    st = tls_connect(port, &t, NULL, &c, err, sizeof(err));
    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__, "TLS connect to %d: %s (%s)", port, slabmq_status_name(st),
               err);
    return c;
}

/* The broker's open file descriptors. */
static int
fd_count(const struct t_broker *b)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)b->pid);
    d = opendir(path);
    T_ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Wait up to ms for the broker's fd count to come back to want. */
static void
expect_fds(const struct t_broker *b, int want, int ms)
{
    int64_t end = t_now_ms() + ms;
    int n;

    while ((n = fd_count(b)) != want && t_now_ms() < end)
        t_sleep_ms(20);
    if (n != want)
        t_fail(__FILE__, __LINE__, "broker has %d file descriptors, expected %d", n, want);
}

/* Payload i: its index in the first 4 bytes, then a pattern of it, len bytes in all. */
static void
fill(uint8_t *p, size_t len, uint32_t i)
{
    for (size_t k = 0; k < len; k++)
        p[k] = (uint8_t)(i * 31 + k * 7);
    if (len >= 4)
        memcpy(p, &i, 4);
}

static size_t
size_of(uint32_t i)
{
    if (i % 1000 == 999)
        return 400 * 1024; /* now and then a large one: many TLS records, chunked output */
    return 4 + (i * 37) % 3000;
}

/* Check a received message against fill()/size_of(); returns its index. */
static uint32_t
check_msg(const slabmq_message *m)
{
    static uint8_t want[400 * 1024];
    uint32_t i;

    T_ASSERT(m->len >= 4);
    memcpy(&i, m->data, 4);
    T_EQ_U64(m->len, size_of(i));
    fill(want, m->len, i);
    T_EQ_MEM(m->data, want, m->len);
    return i;
}

/* ---------------------------------------------------------------------------------------- */
/* A raw TLS connection: any bytes, in records of the test's choosing                        */

struct traw {
    int fd;
    SSL *ssl;
};

/* TLS over the connected socket fd (blocking, every receive bounded by 5 s), handshake
 * done. */
static void
traw_start(struct traw *t, int fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    struct timeval tv = {5, 0};

    t->fd = fd;
    T_ASSERT(ctx != NULL);
    T_EQ_INT(setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    t->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    T_ASSERT(t->ssl != NULL);
    SSL_set_fd(t->ssl, t->fd);
    T_EQ_INT(SSL_connect(t->ssl), 1);
}

/* Connect to the TLS port, handshake done. */
static void
traw_open(struct traw *t, int port)
{
    traw_start(t, t_raw_connect(port));
}

/* Send p as one TLS record (or several of OpenSSL's size when larger). */
static void
traw_send(struct traw *t, const void *p, size_t n)
{
    T_EQ_INT(SSL_write(t->ssl, p, (int)n), (int)n);
}

/* Read exactly n bytes; 0, or -1 on close or timeout. */
static int
traw_read(struct traw *t, uint8_t *p, size_t n)
{
    while (n > 0) {
        int r = SSL_read(t->ssl, p, (int)n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One frame's body into buf; its length, or -1 on close or timeout. */
static long
traw_frame(struct traw *t, uint8_t *buf, size_t cap)
{
    uint8_t h[4];
    uint32_t len;

    if (traw_read(t, h, 4))
        return -1;
    len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    T_ASSERT(len <= cap);
    return traw_read(t, buf, len) ? -1 : (long)len;
}

static void
traw_close(struct traw *t)
{
    SSL_free(t->ssl);
    close(t->fd);
}

/* [1, rid, 1, "raw"] and [2, rid]: HELLO and PING frames. */
static const uint8_t raw_hello[] = {0, 0, 0, 8, 0x94, 0x01, 0x01, 0x01, 0xa3, 'r', 'a', 'w'};

static void
ping_frame(uint8_t out[7], uint8_t rid)
{
    static const uint8_t ping[] = {0, 0, 0, 3, 0x92, 0x02, 0x00};

    memcpy(out, ping, sizeof(ping));
    out[6] = rid & 0x7f;
}

/* Expect an OK reply [op, rid, 0, ...] as the next frame. */
static void
traw_expect_ok(struct traw *t, uint8_t op, uint8_t rid)
{
    uint8_t buf[256];
    long n = traw_frame(t, buf, sizeof(buf));

    T_ASSERT(n >= 4);
    T_EQ_INT(buf[1], op);
    T_EQ_INT(buf[2], rid);
    T_EQ_INT(buf[3], 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                     */

/* One broker, both listeners: what a TLS client publishes a plain client consumes, and the
 * other way round; STATS counts the TLS connections. */
static void
test_side_by_side(void)
{
    struct t_broker b;
    slabmq_client *tc;
    slabmq_client *pc;
    slabmq_batch *batch = NULL;
    uint64_t id;

    start_tls(&b, NULL, NULL, NULL, NULL);
    tc = tls_client(b.tls_port);
    pc = t_client(&b);
    T_OK(tc, slabmq_ping(tc));
    T_OK(tc, slabmq_publish(tc, "jobs", "over tls", 8, &id));
    T_OK(pc, slabmq_fetch(pc, "jobs", 10, 1000, &batch));
    T_EQ_INT(slabmq_batch_count(batch), 1);
    T_EQ_INT(slabmq_batch_get(batch, 0)->len, 8);
    T_EQ_MEM(slabmq_batch_get(batch, 0)->data, "over tls", 8);
    T_OK(pc, slabmq_ack(pc, slabmq_batch_get(batch, 0)->id));
    slabmq_batch_free(batch);
    T_OK(pc, slabmq_publish(pc, "jobs", "in plain", 8, &id));
    T_OK(tc, slabmq_fetch(tc, "jobs", 10, 1000, &batch));
    T_EQ_INT(slabmq_batch_count(batch), 1);
    T_EQ_MEM(slabmq_batch_get(batch, 0)->data, "in plain", 8);
    T_OK(tc, slabmq_ack(tc, slabmq_batch_get(batch, 0)->id));
    slabmq_batch_free(batch);
    T_EQ_U64(t_stat(pc, NULL, "tls_connections"), 1);
    T_EQ_U64(t_stat(tc, NULL, "connections"), 2);
    slabmq_client_close(tc);
    slabmq_client_close(pc);
    t_broker_stop(&b);
}

/* 20,000 pipelined publishes of 1 B to 3 KB (and every thousandth 400 KiB) over TLS, then
 * consumed over TLS by a subscription with acks in batches: every message arrives once,
 * byte-exact, in order. The replies and pushes go through the bufferevent in 64 KiB
 * chunks, and a 400 KiB message spans many TLS records. */
static void
test_bulk_pipelined_and_pushed(void)
{
    enum { N = 20000 };
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *c;
    static uint8_t buf[400 * 1024];
    static uint8_t seen[N];
    uint64_t sub;
    uint32_t got = 0;
    uint32_t next = 0;
    int64_t end;

    start_tls(&b, NULL, NULL, NULL, NULL);
    p = tls_client(b.tls_port);
    for (uint32_t i = 0; i < N; i++) {
        size_t len = size_of(i);
        fill(buf, len, i);
        T_OK(p, slabmq_publish_async(p, "bulk", buf, len, NULL));
    }
    T_OK(p, slabmq_flush(p));
    c = tls_client(b.tls_port);
    T_OK(c, slabmq_subscribe(c, "bulk", 500, &sub));
    end = t_now_ms() + 60000;
    while (got < N && t_now_ms() < end) {
        slabmq_batch *batch = NULL;
        uint64_t ids[512];
        size_t n;
        T_OK(c, slabmq_receive(c, 1000, &batch));
        n = slabmq_batch_count(batch);
        T_ASSERT(n <= 512);
        for (size_t k = 0; k < n; k++) {
            const slabmq_message *m = slabmq_batch_get(batch, k);
            uint32_t i = check_msg(m);
            T_ASSERT(i < N);
            T_EQ_INT(seen[i], 0);
            T_EQ_U64(i, next); /* one producer, one consumer: in order */
            T_EQ_INT(m->deliveries, 1);
            seen[i] = 1;
            next++;
            ids[k] = m->id;
        }
        got += (uint32_t)n;
        if (n)
            T_OK(c, slabmq_ack_async(c, ids, n, NULL));
        slabmq_batch_free(batch);
    }
    T_EQ_U64(got, N);
    T_OK(c, slabmq_flush(c));
    T_EQ_U64(cli_stat(&b, "bulk", "ready"), 0);
    T_EQ_U64(cli_stat(&b, "bulk", "acked"), N);
    slabmq_client_close(p);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Framing is independent of TLS records: HELLO sent one byte per record, then 1,000 PINGs
 * in one record, are answered like on a plain socket. */
static void
test_records_and_frames(void)
{
    struct t_broker b;
    struct traw t;
    uint8_t many[1000 * 7];

    start_tls(&b, NULL, NULL, NULL, NULL);
    traw_open(&t, b.tls_port);
    for (size_t i = 0; i < sizeof(raw_hello); i++)
        traw_send(&t, raw_hello + i, 1);
    traw_expect_ok(&t, 1, 1);
    for (int i = 0; i < 1000; i++)
        ping_frame(many + i * 7, (uint8_t)(i % 100 + 2));
    traw_send(&t, many, sizeof(many));
    for (int i = 0; i < 1000; i++)
        traw_expect_ok(&t, 2, (uint8_t)(i % 100 + 2));
    traw_close(&t);
    t_broker_stop(&b);
}

/* A frame started inside TLS and never finished is closed at --frame-timeout (a slowloris
 * behind encryption), with an error frame; the other clients are served meanwhile. */
static void
test_stalled_frame_inside_tls(void)
{
    struct t_broker b;
    struct traw t;
    slabmq_client *c;
    uint8_t buf[256];
    long n;
    int64_t t0;

    start_tls(&b, "--frame-timeout", "500", NULL, NULL);
    traw_open(&t, b.tls_port);
    traw_send(&t, raw_hello, sizeof(raw_hello));
    traw_expect_ok(&t, 1, 1);
    t0 = t_now_ms();
    traw_send(&t, "\0\0\0\x10\x93", 5); /* 16 bytes announced, 1 sent */
    c = tls_client(b.tls_port);
    T_OK(c, slabmq_ping(c));
    n = traw_frame(&t, buf, sizeof(buf)); /* the error, then the close */
    T_ASSERT(n > 4);
    T_EQ_INT(buf[3], SLABMQ_ERR_PROTOCOL);
    T_ASSERT(t_now_ms() - t0 >= 450);
    T_ASSERT(traw_frame(&t, buf, sizeof(buf)) == -1);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    traw_close(&t);
    t_broker_stop(&b);
}

/* A client that sends its requests and then ends its side (with close_notify, or with a
 * bare TCP half-close, which OpenSSL 3 calls an unexpected EOF) gets every reply before the
 * broker closes, on the TLS port and on the plain one: more replies than the socket
 * buffers hold, read only after the end was sent. */
static void
test_half_close_gets_replies(void)
{
    enum { NPING = 700000 };
    static uint8_t many[NPING * 7];
    struct t_broker b;
    uint8_t buf[256];

    for (int i = 0; i < NPING; i++)
        ping_frame(many + i * 7, (uint8_t)(i % 100 + 2));
    start_tls(&b, NULL, NULL, NULL, NULL);
    for (int notify = 0; notify < 2; notify++) {
        struct traw t;
        long n;
        traw_start(&t, t_raw_connect_rcvbuf(b.tls_port, 16384)); /* replies back up */
        traw_send(&t, raw_hello, sizeof(raw_hello));
        traw_send(&t, many, sizeof(many));
        if (notify)
            T_EQ_INT(SSL_shutdown(t.ssl), 0); /* close_notify sent, the broker's not yet */
        else
            T_EQ_INT(shutdown(t.fd, SHUT_WR), 0);
        usleep(300 * 1000); /* the broker sees the end before the client reads */
        traw_expect_ok(&t, 1, 1);
        for (int i = 0; i < NPING; i++)
            traw_expect_ok(&t, 2, (uint8_t)(i % 100 + 2));
        n = traw_frame(&t, buf, sizeof(buf)); /* then the end */
        T_ASSERT(n == -1);
        traw_close(&t);
    }
    { /* and the plain port, which used to close at the end of the stream with its
         replies unsent */
        int fd = t_raw_connect_rcvbuf(b.port, 16384);
        t_raw_send(fd, raw_hello, sizeof(raw_hello));
        t_raw_send(fd, many, sizeof(many));
        T_EQ_INT(shutdown(fd, SHUT_WR), 0);
        usleep(300 * 1000);
        T_ASSERT(t_raw_recv_frame(fd, buf, sizeof(buf), 5000) > 3 && buf[1] == 1);
        for (int i = 0; i < NPING; i++) {
            T_ASSERT(t_raw_recv_frame(fd, buf, sizeof(buf), 5000) > 3);
            T_EQ_INT(buf[1], 2);
            T_EQ_INT(buf[2], i % 100 + 2);
            T_EQ_INT(buf[3], 0);
        }
        T_EQ_INT(t_raw_recv_frame(fd, buf, sizeof(buf), 5000), -1);
        close(fd);
    }
    t_broker_stop(&b);
}

/* A broker that goes away without close_notify (killed) has closed the connection, as on
 * a plain socket: SLABMQ_ERR_CLOSED, not a reset (the library's socket BIO answers
 * BIO_CTRL_EOF, which SSL_OP_IGNORE_UNEXPECTED_EOF needs). */
static void
test_broker_gone_is_closed(void)
{
    struct t_broker b;
    slabmq_client *c;

    start_tls(&b, NULL, NULL, NULL, NULL);
    c = tls_client(b.tls_port);
    T_OK(c, slabmq_ping(c));
    t_broker_kill(&b);
    T_EQ_INT(slabmq_ping(c), SLABMQ_ERR_CLOSED);
    slabmq_client_close(c);
}

/* A proxy (child process) between a client on *port and the broker's TLS port: once sent
 * SIGUSR1 it passes each chunk from the broker as its first 7 bytes (a record header and 2
 * bytes) and the rest a second later, so the client holds part of a record meanwhile. */
static volatile sig_atomic_t split_armed;

static void
split_arm(int sig)
{
    (void)sig;
    split_armed = 1;
}

static pid_t
split_proxy(int broker_port, int *port)
{
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    pid_t pid;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_EQ_INT(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    T_EQ_INT(listen(l, 1), 0);
    T_EQ_INT(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    signal(SIGUSR1, split_arm);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        int c = accept(l, NULL, NULL);
        int s = t_raw_connect(broker_port);
        char buf[65536];
        alarm(20);
        for (;;) {
            struct pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
            ssize_t n;
            if (poll(p, 2, -1) < 0 && errno != EINTR)
                _exit(1);
            if (p[0].revents
                && ((n = read(c, buf, sizeof(buf))) <= 0 || write(s, buf, (size_t)n) != n))
                _exit(0);
            if (p[1].revents) {
                if ((n = read(s, buf, sizeof(buf))) <= 0)
                    _exit(0);
                if (split_armed && n > 7) {
                    if (write(c, buf, 7) != 7)
                        _exit(0);
                    sleep(1);
                    if (write(c, buf + 7, (size_t)n - 7) != n - 7)
                        _exit(0);
                } else if (write(c, buf, (size_t)n) != n) {
                    _exit(0);
                }
            }
        }
    }
    close(l);
    return pid;
}

/* A consumer waiting in slabmq_receive while part of a TLS record has arrived waits for the
 * socket, instead of spinning on OpenSSL's buffered bytes (SSL_has_pending) until the rest
 * comes. */
static void
test_receive_waits_for_a_whole_record(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_client *p;
    slabmq_batch *batch = NULL;
    struct rusage r0;
    struct rusage r1;
    uint64_t sub;
    uint64_t id;
    int64_t t0;
    int port;
    pid_t pid;
    long cpu_ms;

    start_tls(&b, NULL, NULL, NULL, NULL);
    pid = split_proxy(b.tls_port, &port);
    c = tls_client(port);
    T_OK(c, slabmq_subscribe(c, "splitq", 16, &sub));
    T_EQ_INT(kill(pid, SIGUSR1), 0);
    usleep(100 * 1000);
    p = t_client(&b);
    T_OK(p, slabmq_publish(p, "splitq", "x", 1, &id));
    t0 = t_now_ms();
    getrusage(RUSAGE_SELF, &r0);
    T_OK(c, slabmq_receive(c, 5000, &batch));
    getrusage(RUSAGE_SELF, &r1);
    T_EQ_INT(slabmq_batch_count(batch), 1);
    T_ASSERT(t_now_ms() - t0 >= 900); /* the record was split */
    cpu_ms = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec)
                 * 1000
             + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec
                - r0.ru_stime.tv_usec) / 1000;
    T_ASSERT(cpu_ms < 300);
    slabmq_batch_free(batch);
    slabmq_client_close(c);
    slabmq_client_close(p);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    signal(SIGUSR1, SIG_DFL);
    t_broker_stop(&b);
}

/* The client refuses a broker it cannot verify, and says why. */
static void
test_certificate_checks(void)
{
    struct t_broker b;
    struct t_broker old;
    slabmq_tls_options t = {0};
    slabmq_client *c = NULL;
    char err[512];
    slabmq_status st;

    start_tls(&b, NULL, NULL, NULL, NULL);
    /* signed by a CA the client does not trust */
    t.ca_file = cert("other-ca.crt");
    st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
    T_EQ_INT(st, SLABMQ_ERR_TLS);
    T_ASSERT(c == NULL);
    T_ASSERT(strstr(err, "not accepted") != NULL);
    /* trusted, but for another name */
    t.ca_file = cert("ca.crt");
    t.server_name = "broker.example.com";
    st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
    T_EQ_INT(st, SLABMQ_ERR_TLS);
    T_ASSERT(strstr(err, "hostname mismatch") != NULL);
    T_ASSERT(strstr(err, "broker.example.com") != NULL);
    /* the right name: the certificate's DNS name as the server name (the host, 127.0.0.1,
     * matched its IP address entry in every other case; "localhost" as the host would need
     * an /etc/hosts a minimal root may not have) */
    t.server_name = "localhost";
    T_EQ_INT(tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err)), SLABMQ_OK);
    slabmq_client_close(c);
    t.server_name = NULL;
    /* not verifying at all connects to anything (and is documented as for tests only) */
    memset(&t, 0, sizeof(t));
    t.insecure = 1;
    t.ca_file = cert("other-ca.crt");
    T_EQ_INT(tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err)), SLABMQ_OK);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);

    /* a broker whose certificate expired yesterday */
    t_broker_start(&old, "--tls-port", "0", "--tls-cert", cert("expired.crt"), "--tls-key",
                   cert("expired.key"), NULL);
    memset(&t, 0, sizeof(t));
    t.ca_file = cert("ca.crt");
    st = tls_connect(old.tls_port, &t, NULL, &c, err, sizeof(err));
    T_EQ_INT(st, SLABMQ_ERR_TLS);
    T_ASSERT(strstr(err, "expired") != NULL);
    t_broker_stop(&old);
}

/* A plain client on the TLS port, a TLS client on the plain port, and an HTTP request and
 * garbage on the TLS port: each fails cleanly, counted as a failed handshake, and nothing
 * leaks; the broker goes on serving both ports. */
static void
test_wrong_kind_of_client(void)
{
    struct t_broker b;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_tls_options t = {0};
    slabmq_client *c = NULL;
    slabmq_client *ok;
    char err[512];
    slabmq_status st;
    int fds;
    int fd;

    start_tls(&b, NULL, NULL, NULL, NULL);
    ok = t_client(&b);
    fds = fd_count(&b);
    /* plain HELLO to the TLS port: OpenSSL sees no ClientHello and closes */
    o.port = (uint16_t)b.tls_port;
    o.timeout_ms = 5000;
    o.user = "";
    st = slabmq_client_connect_errbuf(&o, &c, err, sizeof(err));
    T_ASSERT(st != SLABMQ_OK && st != SLABMQ_ERR_TIMEOUT);
    T_ASSERT(c == NULL);
    /* a ClientHello to the plain port: the frame is refused from its header */
    t.ca_file = cert("ca.crt");
    st = tls_connect(b.port, &t, NULL, &c, err, sizeof(err));
    T_EQ_INT(st, SLABMQ_ERR_TLS);
    T_ASSERT(strstr(err, "TLS port") != NULL);
    /* HTTP, and random bytes, to the TLS port */
    fd = t_raw_connect(b.tls_port);
    t_raw_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    T_ASSERT(t_raw_wait_closed(fd, 5000));
    close(fd);
    fd = t_raw_connect(b.tls_port);
    t_raw_send(fd, "\x16\x03\x01\xff\xff garbage that is not a ClientHello", 40);
    T_ASSERT(t_raw_wait_closed(fd, 5000));
    close(fd);
    expect_fds(&b, fds, 5000);
    T_EQ_U64(t_stat(ok, NULL, "tls_handshake_failures"), 3);
    T_EQ_U64(t_stat(ok, NULL, "tls_connections"), 0);
    T_OK(ok, slabmq_ping(ok));
    c = tls_client(b.tls_port);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    slabmq_client_close(ok);
    t_broker_stop(&b);
}

/* --tls-ca: a client must present a certificate signed by that CA. */
static void
test_client_certificates(void)
{
    struct t_broker b;
    slabmq_tls_options t = {0};
    slabmq_client *c = NULL;
    char err[512];
    slabmq_status st;

    start_tls(&b, "--tls-ca", cert("ca.crt"), NULL, NULL);
    t.ca_file = cert("ca.crt");
    /* none: refused (in TLS 1.3 the client learns it on its first read, HELLO's reply) */
    st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
    T_ASSERT(st != SLABMQ_OK);
    T_ASSERT(c == NULL);
    /* signed by another CA: refused */
    t.cert_file = cert("stranger.crt");
    t.key_file = cert("stranger.key");
    st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
    T_ASSERT(st != SLABMQ_OK);
    /* a key that is not the certificate's: the client says so before connecting */
    t.cert_file = cert("client.crt");
    st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
    T_EQ_INT(st, SLABMQ_ERR_TLS);
    T_ASSERT(strstr(err, "cannot load the key") != NULL);
    /* the right one */
    t.key_file = cert("client.key");
    T_EQ_INT(tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err)), SLABMQ_OK);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A TLS connection that never completes its handshake is closed at --handshake-timeout, as
 * a plain one that never says HELLO is; others are served meanwhile. */
static void
test_stalled_handshake(void)
{
    struct t_broker b;
    slabmq_client *c;
    int silent;
    int partial;
    int fds;
    int64_t t0;

    /* long enough for a TLS handshake with the broker under valgrind */
    start_tls(&b, "--handshake-timeout", "3000", NULL, NULL);
    c = t_client(&b);
    fds = fd_count(&b);
    t0 = t_now_ms();
    silent = t_raw_connect(b.tls_port);
    partial = t_raw_connect(b.tls_port);
    t_raw_send(partial, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    c = tls_client(b.tls_port);
    T_OK(c, slabmq_ping(c));
    T_ASSERT(t_raw_wait_closed(silent, 15000));
    T_ASSERT(t_raw_wait_closed(partial, 15000));
    T_ASSERT(t_now_ms() - t0 >= 2900);
    T_ASSERT(t_now_ms() - t0 < 4500); /* at the deadline, not after the 2 s close grace */
    close(silent);
    close(partial);
    slabmq_client_close(c);
    expect_fds(&b, fds - 1, 5000); /* the plain client is gone too */
    t_broker_stop(&b);
}

/* A broker with users: AUTH goes over the encrypted connection like any request. */
static void
test_auth_over_tls(void)
{
    struct t_broker b;
    char dir[64] = "/tmp/slabmq-tlsauth.XXXXXX";
    char path[128];
    char cmd[192];
    char *argv[] = {(char *)SLABMQD_PATH, (char *)"--hash-password=1000", NULL};
    char *hash = NULL;
    size_t hlen = 0;
    FILE *f;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_tls_options t = {0};
    slabmq_client *c = NULL;
    char err[512];

    T_ASSERT(mkdtemp(dir) != NULL);
    T_EQ_INT(t_run(argv, "tls-pw\n", 7, &hash, &hlen, NULL, 30000), 0);
    hash[strcspn(hash, "\n")] = '\0';
    snprintf(path, sizeof(path), "%s/users", dir);
    f = fopen(path, "w");
    T_ASSERT(f != NULL);
    fprintf(f, "alice %s all\n", hash);
    fclose(f);
    T_EQ_INT(chmod(path, 0600), 0);
    free(hash);
    start_tls(&b, "--auth-file", path, NULL, NULL);
    t.ca_file = cert("ca.crt");
    o.port = (uint16_t)b.tls_port;
    o.tls = &t;
    o.user = "alice";
    o.password = "wrong";
    T_EQ_INT(slabmq_client_connect_errbuf(&o, &c, err, sizeof(err)), SLABMQ_ERR_AUTH);
    o.password = "tls-pw";
    T_EQ_INT(slabmq_client_connect_errbuf(&o, &c, err, sizeof(err)), SLABMQ_OK);
    T_OK(c, slabmq_publish(c, "q", "x", 1, NULL));
    slabmq_client_close(c);
    t_broker_stop(&b);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    T_EQ_INT(system(cmd), 0);
}

/* The CLI: --tls-ca, the environment, and a clear error without --tls. */
static void
test_cli_over_tls(void)
{
    struct t_broker b;
    char addr[32];
    struct cli_run r;

    start_tls(&b, NULL, NULL, NULL, NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.tls_port);
    cli_expect(RUN(0, "-s", addr, "--tls-ca", cert("ca.crt"), "publish", "q", "hello"), 0,
               "published 1 message to q (id 1)\n");
    cli_expect(RUN(0, "-s", addr, "--tls-ca", cert("ca.crt"), "consume", "q"), 0, "hello\n");
    r = RUN(0, "-s", addr, "ping");
    T_EQ_INT(r.rc, 3);
    T_ASSERT(strstr(r.err, "add --tls") != NULL);
    cli_run_free(&r);
    r = RUN(0, "-s", addr, "--tls-ca", cert("other-ca.crt"), "ping");
    T_EQ_INT(r.rc, 3);
    T_ASSERT(strstr(r.err, "certificate was not accepted") != NULL);
    cli_run_free(&r);
    setenv("SLABMQ_TLS_CA", cert("ca.crt"), 1);
    r = RUN(0, "-s", addr, "ping");
    unsetenv("SLABMQ_TLS_CA");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, "pong") != NULL);
    cli_run_free(&r);
    t_broker_stop(&b);
}

/* SIGHUP re-reads the certificate files (renewed in place): new connections get the new
 * certificate, the open one goes on with the old. */
static void
test_reload_certificate(void)
{
    struct t_broker b;
    char srv[160];
    char key[160];
    char cmd[512];
    slabmq_tls_options t = {0};
    slabmq_client *old;
    slabmq_client *c = NULL;
    char err[512];
    int64_t end;
    slabmq_status st = SLABMQ_OK;

    snprintf(srv, sizeof(srv), "%s/live.crt", cert(""));
    snprintf(key, sizeof(key), "%s/live.key", cert(""));
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp '%s' '%s'", cert("server.crt"), srv,
             cert("server.key"), key);
    T_EQ_INT(system(cmd), 0);
    t_broker_start(&b, "--tls-port", "0", "--tls-cert", srv, "--tls-key", key, NULL);
    old = tls_client(b.tls_port);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp '%s' '%s'", cert("server-other.crt"), srv,
             cert("server-other.key"), key);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(kill(b.pid, SIGHUP), 0);
    t.ca_file = cert("other-ca.crt");
    end = t_now_ms() + 10000;
    do { /* the signal is handled at the loop's next turn */
        st = tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err));
        if (st != SLABMQ_OK)
            t_sleep_ms(50);
    } while (st != SLABMQ_OK && t_now_ms() < end);
    T_EQ_INT(st, SLABMQ_OK);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t.ca_file = cert("ca.crt"); /* the old CA no longer vouches for the new certificate */
    T_EQ_INT(tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err)), SLABMQ_ERR_TLS);
    T_OK(old, slabmq_ping(old));
    slabmq_client_close(old);
    /* a broken file on the next SIGHUP: the running certificate stays */
    snprintf(cmd, sizeof(cmd), "echo broken > '%s'", srv);
    T_EQ_INT(system(cmd), 0);
    T_EQ_INT(kill(b.pid, SIGHUP), 0);
    t_sleep_ms(200);
    t.ca_file = cert("other-ca.crt");
    T_EQ_INT(tls_connect(b.tls_port, &t, NULL, &c, err, sizeof(err)), SLABMQ_OK);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* --port off: only TLS, and "listening on" says so. Mistakes in the TLS settings stop the
 * start with a message naming them. */
static void
test_tls_only_and_config_errors(void)
{
    struct t_broker b;
    slabmq_client *c;
    char *out = NULL;
    char *err = NULL;
    size_t olen = 0;

    t_broker_start(&b, "--port", "off", "--tls-port", "0", "--tls-cert", cert("server.crt"),
                   "--tls-key", cert("server.key"), NULL);
    T_EQ_INT(b.port, b.tls_port);
    c = tls_client(b.port);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);

    {
        char *argv[] = {(char *)SLABMQD_PATH, (char *)"--tls-port", (char *)"0", NULL};
        T_EQ_INT(t_run(argv, NULL, 0, &out, &olen, &err, 10000), 2);
        T_ASSERT(strstr(err, "--tls-port needs --tls-cert and --tls-key") != NULL);
        free(out);
        free(err);
    }
    {
        char *argv[] = {(char *)SLABMQD_PATH, (char *)"--port", (char *)"0", (char *)"--tls-port",
                        (char *)"0", (char *)"--tls-cert", (char *)cert("server.crt"),
                        (char *)"--tls-key", (char *)cert("client.key"), NULL};
        T_EQ_INT(t_run(argv, NULL, 0, &out, &olen, &err, 10000), 1);
        T_ASSERT(strstr(err, "does not match") != NULL);
        free(out);
        free(err);
    }
    {
        char *argv[] = {(char *)SLABMQD_PATH, (char *)"--tls-port", (char *)"0",
                        (char *)"--tls-cert", (char *)"/nonexistent/cert.pem",
                        (char *)"--tls-key", (char *)cert("server.key"),
                        (char *)"--check-config", NULL};
        T_EQ_INT(t_run(argv, NULL, 0, &out, &olen, &err, 10000), 1);
        T_ASSERT(strstr(err, "cannot load --tls-cert '/nonexistent/cert.pem'") != NULL);
        T_ASSERT(strstr(out, "NOT valid") != NULL);
        free(out);
        free(err);
    }
    {
        char *argv[] = {(char *)SLABMQD_PATH, (char *)"--port", (char *)"off", NULL};
        T_EQ_INT(t_run(argv, NULL, 0, &out, &olen, &err, 10000), 2);
        T_ASSERT(strstr(err, "no listener") != NULL);
        free(out);
        free(err);
    }
}

int
main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_side_by_side),
        T_CASE(test_bulk_pipelined_and_pushed),
        T_CASE(test_records_and_frames),
        T_CASE(test_stalled_frame_inside_tls),
        T_CASE(test_half_close_gets_replies),
        T_CASE(test_broker_gone_is_closed),
        T_CASE(test_receive_waits_for_a_whole_record),
        T_CASE(test_certificate_checks),
        T_CASE(test_wrong_kind_of_client),
        T_CASE(test_client_certificates),
        T_CASE(test_stalled_handshake),
        T_CASE(test_auth_over_tls),
        T_CASE(test_cli_over_tls),
        T_CASE(test_reload_certificate),
        T_CASE(test_tls_only_and_config_errors),
        {NULL, NULL},
    };

    signal(SIGPIPE, SIG_IGN);
    return t_main(cases, argc, argv);
}
