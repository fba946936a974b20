/* SPDX-License-Identifier: MIT */
/* The test harness: assertions that print file:line and both values and fail the process,
 * a table of cases run one per process by ctest, and helpers to run a real slabmqd. */
#ifndef SLABMQ_TESTS_T_H
#define SLABMQ_TESTS_T_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

void t_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define T_ASSERT(cond)                                                         \
    do {                                                                       \
        if (!(cond))                                                           \
            t_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);         \
    } while (0)

#define T_EQ_INT(a, b)                                                                          \
    do {                                                                                        \
        long long t_a_ = (long long)(a);                                                        \
        long long t_b_ = (long long)(b);                                                        \
        if (t_a_ != t_b_)                                                                       \
            t_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, t_a_, t_b_);           \
    } while (0)

#define T_EQ_U64(a, b)                                                                          \
    do {                                                                                        \
        uint64_t t_a_ = (uint64_t)(a);                                                          \
        uint64_t t_b_ = (uint64_t)(b);                                                          \
        if (t_a_ != t_b_)                                                                       \
            t_fail(__FILE__, __LINE__, "%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, t_a_,       \
                   t_b_);                                                                       \
    } while (0)

#define T_EQ_STR(a, b)                                                                          \
    do {                                                                                        \
        const char *t_a_ = (a);                                                                 \
        const char *t_b_ = (b);                                                                 \
        if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0)                                          \
            t_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                   \
                   t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                             \
    } while (0)

#define T_EQ_MEM(a, b, n)                                                                       \
    do {                                                                                        \
        if (memcmp((a), (b), (n)) != 0)                                                         \
            t_fail(__FILE__, __LINE__, "%s and %s differ in their first %zu bytes", #a, #b,     \
                   (size_t)(n));                                                                \
    } while (0)

/* A slabmq call that must succeed: prints the status and the client's message otherwise. */
#define T_OK(c, call)                                                                           \
    do {                                                                                        \
        slabmq_status t_st_ = (call);                                                           \
        if (t_st_ != SLABMQ_OK)                                                                 \
            t_fail(__FILE__, __LINE__, "%s: %s (%s)", #call, slabmq_status_name(t_st_),        \
                   slabmq_client_errmsg(c));                                                    \
    } while (0)

struct t_case {
    const char *name;
    void (*fn)(void);
};

/* One entry of a file's case table; CMake scans these lines to register one ctest each. */
#define T_CASE(fn) {#fn, fn}

/* Run the case named argv[1] (with or without its test_ prefix), or every case. */
int t_main(const struct t_case *cases, int argc, char **argv);

/* A new directory /tmp/slabmq-NAME.XXXXXX into dir (cap bytes); fails the test if it cannot
 * be made. */
void t_temp_dir(char *dir, size_t cap, const char *name);
/* rm -rf dir (a complaint on stderr if that fails). */
void t_remove_dir(const char *dir);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t t_now_ms(void);
/* Milliseconds since the Unix epoch (the wall clock, as PUBLISH's at_ms takes it). */
int64_t t_wall_ms(void);
void t_sleep_ms(int ms);

/* ---------------------------------------------------------------------------------------- */
/* A real broker on a loopback port                                                          */

struct t_broker {
    pid_t pid;          /* slabmqd's process id */
    int port;           /* port it listens on (it picked it: --port 0) */
    char dir[64];       /* its temp dir: stderr.log lives there */
    int http_port;      /* port of its "http on ADDR:PORT" line (--http), else 0 */
    int tls_port;       /* port of its "tls on ADDR:PORT" line (--tls-port), else 0 */
};

/* Start slabmqd --port 0 plus extra args (NULL-terminated), wait up to 30 s for its
 * "listening on" line. Fails the test if it does not come up. With SLABMQ_TEST_VALGRIND set
 * in the environment the broker runs under valgrind (memcheck, leaks checked at exit). */
void t_broker_start(struct t_broker *b, ...) __attribute__((sentinel));
/* SIGTERM, wait up to 30 s (then SIGKILL and fail); asserts a clean exit status 0, which
 * also catches sanitizer, valgrind and leak reports at shutdown. */
void t_broker_stop(struct t_broker *b);
/* The test reaped the broker itself (waitpid): forget it and remove its temp dir. */
void t_broker_reaped(struct t_broker *b);
/* kill -9: no shutdown at all, as in a crash (reaped, its temp dir removed). */
void t_broker_kill(struct t_broker *b);
/* A shared library to LD_PRELOAD into brokers started from now on (NULL: none). */
extern const char *t_broker_preload;
/* Non-zero: brokers started from now on get no "--bind 127.0.0.1", so they listen on their
 * default address (the test of that default). */
extern int t_broker_default_bind;
/* The broker's resident set size, in KiB (from /proc/PID/status). */
long t_broker_rss_kb(const struct t_broker *b);
/* Any "Field: N kB" line of the broker's /proc/PID/status ("VmHWM": its peak RSS), in KiB;
 * -1 if there is no such line. */
long t_broker_status_kb(const struct t_broker *b, const char *field);
/* Is the process still running? */
int t_broker_alive(const struct t_broker *b);

/* Write test certificates (PEM, P-256, valid from yesterday for 30 days) into dir:
 * ca.crt/.key (a CA), server.crt/.key (signed by it, for localhost and 127.0.0.1),
 * client.crt/.key (signed by it), other-ca.crt/.key (an unrelated CA), stranger.crt/.key
 * (a client signed by other-ca), server-other.crt/.key (for localhost, by other-ca), and
 * expired.crt/.key (by ca, expired yesterday). */
void t_certs_make(const char *dir);

/* Connect a client (fails the test on error). */
struct slabmq_client;
struct slabmq_client *t_client(const struct t_broker *b);
/* A statistic from STATS through c: of queue, or of the broker when queue is NULL (fails the
 * test if there is no such name). */
uint64_t t_stat(struct slabmq_client *c, const char *queue, const char *name);

/* Raw sockets to 127.0.0.1:port, for bad-input tests. Every receive is bounded by ms. */
int t_raw_connect(int port);
/* The same with SO_RCVBUF set to rcvbuf bytes before connecting (0: the default). */
int t_raw_connect_rcvbuf(int port, int rcvbuf);
void t_raw_send(int fd, const void *p, size_t n);
/* Read one frame body into buf (cap bytes). Returns its length, -1 if the peer closed, -2 on
 * timeout. */
long t_raw_recv_frame(int fd, uint8_t *buf, size_t cap, int ms);
/* Wait up to ms for the peer to close. Returns 1 if it closed (EOF or reset). */
int t_raw_wait_closed(int fd, int ms);
/* Send a HELLO on a raw socket and read its reply; fails the test if it is not OK. */
void t_raw_hello(int fd);

/* The hash of pw made by `slabmqd --hash-password` (opt: that flag with its iterations, e.g.
 * "--hash-password=2000"; NULL: the default count), into out; fails the test otherwise. */
void t_password_hash(const char *pw, const char *opt, char *out, size_t len);
/* Run a program with argv, feeding stdin_data (may be NULL), capturing stdout (and stderr
 * into err when not NULL), with a timeout of ms. Returns the exit status (-1 if killed). */
int t_run(char *const argv[], const char *stdin_data, size_t stdin_len, char **out,
          size_t *out_len, char **err, int ms);

#endif /* SLABMQ_TESTS_T_H */
