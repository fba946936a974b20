/* SPDX-License-Identifier: MIT */
/* Test harness implementation; see t.h. */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "slabmq.h"
#include "spawn.h"

#define T_MAX_BROKERS 8

static struct t_broker *running[T_MAX_BROKERS];
const char *t_broker_preload;
int t_broker_default_bind;

void
t_temp_dir(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "/tmp/slabmq-%s.XXXXXX", name);
    T_ASSERT(mkdtemp(dir) != NULL);
}

void
t_remove_dir(const char *dir)
{
    char cmd[4200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int64_t
t_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
t_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

static void
print_log_tail(const struct t_broker *b)
{
    char path[128];
    char buf[4096];
    FILE *f;
    long size;
    size_t n;

    snprintf(path, sizeof(path), "%s/stderr.log", b->dir);
    f = fopen(path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- slabmqd stderr (%s) ---\n%s--- end ---\n", path, buf);
}

void
t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    for (int i = 0; i < T_MAX_BROKERS; i++) {
        if (running[i]) {
            print_log_tail(running[i]);
            kill(running[i]->pid, SIGKILL);
            waitpid(running[i]->pid, NULL, 0);
        }
    }
    exit(1);
}

int
t_main(const struct t_case *cases, int argc, char **argv)
{
    int ran = 0;

    signal(SIGPIPE, SIG_IGN);
    for (const struct t_case *c = cases; c->name; c++) {
        const char *bare = strncmp(c->name, "test_", 5) == 0 ? c->name + 5 : c->name;
        if (argc > 1 && strcmp(argv[1], c->name) != 0 && strcmp(argv[1], bare) != 0)
            continue;
        fprintf(stderr, "RUN  %s\n", c->name);
        c->fn();
        fprintf(stderr, "OK   %s\n", c->name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test case named %s\n", argc > 1 ? argv[1] : "(any)");
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Brokers                                                                                   */

static void
track(struct t_broker *b, int on)
{
    for (int i = 0; i < T_MAX_BROKERS; i++) {
        if (on && !running[i]) {
            running[i] = b;
            return;
        }
        if (!on && running[i] == b) {
            running[i] = NULL;
            return;
        }
    }
}

void
t_broker_start(struct t_broker *b, ...)
{
    char *args[64];
    char errlog[128];
    int n = 0;
    va_list ap;
    char *a;
    struct spawn sp;
    struct spawn_ports ports;

    snprintf(b->dir, sizeof(b->dir), "/tmp/slabmq-test.XXXXXX");
    T_ASSERT(mkdtemp(b->dir) != NULL);
    if (getenv("SLABMQ_TEST_VALGRIND")) { /* any error or leak makes the exit status 99 */
        args[n++] = "/usr/bin/valgrind";
        args[n++] = "--quiet";
        args[n++] = "--leak-check=full";
        args[n++] = "--errors-for-leak-kinds=definite,indirect";
        args[n++] = "--error-exitcode=99";
    }
    args[n++] = SLABMQD_PATH;
    args[n++] = "--port";
    args[n++] = "0";
    if (!t_broker_default_bind) {
        args[n++] = "--bind";
        args[n++] = "127.0.0.1";
    }
    va_start(ap, b);
    while ((a = va_arg(ap, char *)) != NULL && n < 62)
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    snprintf(errlog, sizeof(errlog), "%s/stderr.log", b->dir);
    /* the spawner of the benchmarks (tools/bench/spawn.c), with the harness's 30 s for valgrind */
    if (spawn_exec(&sp, args, t_broker_preload, errlog, 30000, &ports)) {
        b->pid = 0;
        print_log_tail(b);
        t_fail(__FILE__, __LINE__, "slabmqd did not print 'listening on' within 30 s");
    }
    /* its stdout is not read after the ports: closed, as before, so it does not fill */
    close(sp.out);
    b->pid = sp.pid;
    b->port = sp.port;
    b->http_port = ports.http;
    b->tls_port = ports.tls;
    track(b, 1);
}

long
t_broker_status_kb(const struct t_broker *b, const char *field)
{
    long kb = spawn_status_kb(b->pid, field);

    T_ASSERT(kb != -2); /* /proc/PID/status readable: the broker is there */
    return kb;
}

long
t_broker_rss_kb(const struct t_broker *b)
{
    return t_broker_status_kb(b, "VmRSS");
}

int
t_broker_alive(const struct t_broker *b)
{
    return waitpid(b->pid, NULL, WNOHANG) == 0;
}

void
t_broker_stop(struct t_broker *b)
{
    struct spawn sp = {b->pid, b->port, -1};
    int killed;
    int status = spawn_stop_within(&sp, 30000, &killed);

    track(b, 0);
    if (killed) {
        print_log_tail(b);
        t_fail(__FILE__, __LINE__, "slabmqd did not stop within 30 s of SIGTERM");
    }
    if (status != 0) {
        print_log_tail(b);
        t_fail(__FILE__, __LINE__, "slabmqd exited with status %d%s", status,
               status > 128 ? " (128 + the signal that ended it)" : "");
    }
    t_remove_dir(b->dir);
}

void
t_broker_reaped(struct t_broker *b)
{

    track(b, 0);
    t_remove_dir(b->dir);
}

void
t_broker_kill(struct t_broker *b)
{
    int status;

    kill(b->pid, SIGKILL);
    waitpid(b->pid, &status, 0);
    track(b, 0);
    t_remove_dir(b->dir);
}

uint64_t
t_stat(struct slabmq_client *c, const char *queue, const char *name)
{
    slabmq_stats *s = NULL;
    uint64_t v = 0;

    T_OK(c, slabmq_stats_get(c, queue, &s));
    if (!slabmq_stats_find(s, name, &v))
        t_fail(__FILE__, __LINE__, "STATS%s%s has no %s", queue ? " of " : "",
               queue ? queue : "", name);
    slabmq_stats_free(s);
    return v;
}

struct slabmq_client *
t_client(const struct t_broker *b)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c = NULL;
    char err[256] = "";
    slabmq_status st;

    o.port = (uint16_t)b->port;
    o.timeout_ms = 10000;
    st = slabmq_client_connect_errbuf(&o, &c, err, sizeof(err));
    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__, "connect to port %d: %s (%s)", b->port,
               slabmq_status_name(st), err);
    return c;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw sockets                                                                               */

int
t_raw_connect(int port)
{
    return t_raw_connect_rcvbuf(port, 0);
}

int
t_raw_connect_rcvbuf(int port, int rcvbuf)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    T_ASSERT(fd >= 0);
    if (rcvbuf > 0)
        T_ASSERT(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) == 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

void
t_raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the peer may have closed on purpose; callers check */
        b += w;
        n -= (size_t)w;
    }
}

/* Read exactly n bytes within the deadline: 0, -1 closed, -2 timeout. */
static int
recv_exact(int fd, uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        int64_t left = deadline - t_now_ms();
        ssize_t r;
        if (left <= 0)
            return -2;
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        r = recv(fd, p, n, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return -1;
        if (r < 0)
            continue;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

long
t_raw_recv_frame(int fd, uint8_t *buf, size_t cap, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint8_t h[4];
    uint32_t len;
    int rc = recv_exact(fd, h, 4, deadline);

    if (rc)
        return rc;
    len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (len > cap)
        t_fail(__FILE__, __LINE__, "reply frame of %u bytes exceeds test buffer", len);
    rc = recv_exact(fd, buf, len, deadline);
    return rc ? rc : (long)len;
}

int
t_raw_wait_closed(int fd, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint8_t buf[4096];

    while (t_now_ms() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&pf, 1, 50) <= 0)
            continue;
        r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
            return 1;
    }
    return 0;
}

void
t_raw_hello(int fd)
{
    /* [1, 1, 1, "raw"] */
    static const uint8_t hello[] = {0, 0, 0, 8, 0x94, 0x01, 0x01, 0x01, 0xa3, 'r', 'a', 'w'};
    uint8_t buf[256];
    long n;

    t_raw_send(fd, hello, sizeof(hello));
    n = t_raw_recv_frame(fd, buf, sizeof(buf), 5000);
    T_ASSERT(n > 4);
    /* [1, 1, 0, ...]: array header, op 1, rid 1, status 0 */
    T_EQ_INT(buf[1], 0x01);
    T_EQ_INT(buf[2], 0x01);
    T_EQ_INT(buf[3], 0x00);
}

/* ---------------------------------------------------------------------------------------- */
/* Running programs                                                                          */

static void
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        T_ASSERT(*buf != NULL);
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int
t_run(char *const argv[], const char *stdin_data, size_t stdin_len, char **out, size_t *out_len,
      char **err, int ms)
{
    int in[2], o[2], e[2];
    pid_t pid;
    size_t olen = 0, ocap = 0, elen = 0, ecap = 0, sent = 0;
    char *obuf = NULL, *ebuf = NULL;
    int64_t deadline = t_now_ms() + ms;
    int status = 0;
    int open_fds = 2;

    T_ASSERT(pipe(in) == 0 && pipe(o) == 0 && pipe(e) == 0);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(in[1]);
        close(o[0]);
        close(e[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    close(e[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (!stdin_data || stdin_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    append(&obuf, &olen, &ocap, "", 0);
    append(&ebuf, &elen, &ecap, "", 0);
    while (open_fds > 0 && t_now_ms() < deadline) {
        struct pollfd p[3] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
        char buf[65536];
        if (poll(p, in[1] >= 0 ? 3 : 2, 50) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            ssize_t n;
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            n = read(p[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(p[i].fd);
                if (i == 0)
                    o[0] = -1;
                else
                    e[0] = -1;
                open_fds--;
            } else if (i == 0) {
                append(&obuf, &olen, &ocap, buf, (size_t)n);
            } else {
                append(&ebuf, &elen, &ecap, buf, (size_t)n);
            }
        }
        if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], stdin_data + sent, stdin_len - sent);
            if (w > 0)
                sent += (size_t)w;
            if (w < 0 || sent == stdin_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    if (o[0] >= 0)
        close(o[0]);
    if (e[0] >= 0)
        close(e[0]);
    if (open_fds > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "%s timed out after %d ms; stderr: %s\n", argv[0], ms, ebuf);
        free(obuf);
        free(ebuf);
        return -1;
    }
    waitpid(pid, &status, 0);
    if (out)
        *out = obuf;
    else
        free(obuf);
    if (out_len)
        *out_len = olen;
    if (err)
        *err = ebuf;
    else
        free(ebuf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
t_password_hash(const char *pw, const char *opt, char *out, size_t len)
{
    char *argv[] = {(char *)SLABMQD_PATH, (char *)(opt ? opt : "--hash-password"), NULL};
    char in[256];
    char *o = NULL;
    char *e = NULL;
    size_t olen = 0;
    int rc;

    snprintf(in, sizeof(in), "%s\n", pw);
    rc = t_run(argv, in, strlen(in), &o, &olen, &e, 60000); /* 1,000,000 iterations, valgrind */
    if (rc != 0 || !o || strncmp(o, "pbkdf2-sha256$", 14) != 0)
        t_fail(__FILE__, __LINE__, "slabmqd %s: status %d, out '%s', err '%s'", argv[1], rc,
               o ? o : "", e ? e : "");
    o[strcspn(o, "\n")] = '\0';
    snprintf(out, len, "%s", o);
    free(o);
    free(e);
}
