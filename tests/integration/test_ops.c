/* SPDX-License-Identifier: MIT */
/* Operations: the --config file (good, bad, overridden by flags), --check-config, the log
 * format, SIGHUP reload, and the graceful shutdown with its drain timeout
 * (docs/operations.md). Real brokers on 127.0.0.1 port 0, stopped by PID. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raw.h"
#include "slabmq.h"
#include "t.h"

#define WAIT_MS 10000

/* A temp dir for config files; removed by rm_dir(). */
static void
make_dir(char *dir, size_t cap)
{
    t_temp_dir(dir, cap, "ops");
}

static void
rm_dir(const char *dir)
{
    t_remove_dir(dir);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    T_ASSERT(f != NULL);
    T_ASSERT(fputs(text, f) >= 0);
    T_EQ_INT(fclose(f), 0);
}

/* Returns the broker's stderr so far (malloc'd, NUL-terminated). */
static char *
broker_log(const struct t_broker *b)
{
    char path[128];
    char *buf = calloc(1, 1 << 20);
    FILE *f;
    size_t n;

    T_ASSERT(buf != NULL);
    snprintf(path, sizeof(path), "%s/stderr.log", b->dir);
    f = fopen(path, "r");
    if (f) {
        n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Does the broker's log contain 'text' (now, or within ms)? */
static int
log_has(const struct t_broker *b, const char *text, int ms)
{
    int64_t deadline = t_now_ms() + ms;

    for (;;) {
        char *log = broker_log(b);
        int found = strstr(log, text) != NULL;
        free(log);
        if (found || t_now_ms() >= deadline)
            return found;
        t_sleep_ms(10);
    }
}

/* One connection that says HELLO and closes: a debug line each way. */
static void
connect_once(const struct t_broker *b)
{
    slabmq_client_close(t_client(b));
}

/* slabmqd with args; returns its exit status, stdout and stderr in out/err (free them). */
static int
run_slabmqd(char **out, char **err, const char *a1, const char *a2, const char *a3,
            const char *a4, const char *a5)
{
    char *argv[] = {SLABMQD_PATH, (char *)a1, (char *)a2, (char *)a3, (char *)a4, (char *)a5,
                    NULL};

    return t_run(argv, NULL, 0, out, NULL, err, WAIT_MS);
}

/* ---------------------------------------------------------------------------------------- */

static void
test_config_file_applies(void)
{
    char dir[64];
    char conf[128];
    struct t_broker b;

    make_dir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/slabmqd.conf", dir);
    write_file(conf, "# a comment\n\n  log-level = debug   # trailing comment\n"
                     "log-format = \"json\"\nmax-memory = 64MiB\nshutdown-timeout = 1000\n");
    t_broker_start(&b, "--config", conf, NULL);
    connect_once(&b);
    T_ASSERT(log_has(&b, "{\"ts\":\"", WAIT_MS));
    T_ASSERT(log_has(&b, "\"level\":\"debug\",\"msg\":\"connection 1 open from", WAIT_MS));
    T_ASSERT(log_has(&b, "max memory 67108864 bytes", 0));
    t_broker_stop(&b);
    rm_dir(dir);
}

static void
test_flags_override_file(void)
{
    char dir[64];
    char conf[128];
    struct t_broker b;

    make_dir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/slabmqd.conf", dir);
    write_file(conf, "log-level = debug\nmax-memory = 64MiB\n");
    t_broker_start(&b, "--log-level", "info", "--config", conf, "--max-memory", "32MiB", NULL);
    connect_once(&b);
    T_ASSERT(log_has(&b, "max memory 33554432 bytes", WAIT_MS));
    t_sleep_ms(100);
    T_ASSERT(!log_has(&b, "open from", 0)); /* debug from the file, info from the flag */
    t_broker_stop(&b);
    rm_dir(dir);
}

static void
test_bad_file_stops_start(void)
{
    char dir[64];
    char conf[128];
    char *out = NULL;
    char *err = NULL;

    make_dir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
    write_file(conf, "port = 0\n# fine so far\nmax-memroy = 1GiB\nmax-memory = lots\n"
                     "no equals sign\nlog-level = \"debug\n");
    T_EQ_INT(run_slabmqd(&out, &err, "--config", conf, NULL, NULL, NULL), 2);
    T_ASSERT(strstr(err, "bad.conf:3: unknown setting 'max-memroy'") != NULL);
    T_ASSERT(strstr(err, "bad.conf:4: invalid max-memory 'lots'") != NULL);
    T_ASSERT(strstr(err, "bad.conf:5: expected 'key = value'") != NULL);
    T_ASSERT(strstr(err, "bad.conf:6: log-level: unterminated quote") != NULL);
    T_ASSERT(strstr(out, "listening") == NULL);
    free(out);
    free(err);
    /* a file that cannot be read, and keys that make no sense in a file */
    T_EQ_INT(run_slabmqd(&out, &err, "--config", "/nonexistent/slabmqd.conf", NULL, NULL, NULL),
             2);
    T_ASSERT(strstr(err, "cannot read --config") != NULL);
    free(out);
    free(err);
    write_file(conf, "config = /etc/other.conf\n");
    T_EQ_INT(run_slabmqd(&out, &err, "--config", conf, NULL, NULL, NULL), 2);
    T_ASSERT(strstr(err, "unknown setting 'config'") != NULL);
    free(out);
    free(err);
    rm_dir(dir);
}

static void
test_check_config(void)
{
    char dir[64];
    char conf[128];
    char *out = NULL;
    char *err = NULL;

    make_dir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/slabmqd.conf", dir);
    write_file(conf, "port = 7\nmax-memory = 2GiB\ndurability = sqlite\n");
    T_EQ_INT(run_slabmqd(&out, &err, "--config", conf, "--check-config", NULL, NULL), 0);
    T_ASSERT(strstr(out, "is valid") != NULL);
    T_ASSERT(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    free(out);
    free(err);
    /* the flags are checked as well */
    T_EQ_INT(run_slabmqd(&out, &err, "--check-config", "--config", conf, "--port", "x"), 1);
    T_ASSERT(strstr(out, "is NOT valid") != NULL);
    T_ASSERT(strstr(err, "invalid --port 'x'") != NULL);
    free(out);
    free(err);
    write_file(conf, "durability = disk\n");
    T_EQ_INT(run_slabmqd(&out, &err, "--check-config", "--config", conf, NULL, NULL), 1);
    T_ASSERT(strstr(err, "slabmqd.conf:1: invalid durability 'disk'") != NULL);
    free(out);
    free(err);
    /* without a file: the flags alone */
    T_EQ_INT(run_slabmqd(&out, &err, "--check-config", "--max-memory", "1GiB", NULL, NULL), 0);
    free(out);
    free(err);
    rm_dir(dir);
}

static void
test_sighup_reloads_log_level(void)
{
    char dir[64];
    char conf[128];
    struct t_broker b;

    make_dir(dir, sizeof(dir));
    snprintf(conf, sizeof(conf), "%s/slabmqd.conf", dir);
    write_file(conf, "log-level = info\nmax-memory = 64MiB\n");
    t_broker_start(&b, "--config", conf, NULL);
    connect_once(&b);
    write_file(conf, "log-level = debug\nmax-memory = 128MiB\nmax-connections = 5\n");
    T_EQ_INT(kill(b.pid, SIGHUP), 0);
    T_ASSERT(log_has(&b, "reload: applied: log-level, max-connections; changed but need a "
                         "restart: max-memory", WAIT_MS));
    T_ASSERT(!log_has(&b, "connection 1 open", 0)); /* at info, before the reload */
    connect_once(&b);
    T_ASSERT(log_has(&b, "connection 2 open from", WAIT_MS));
    /* a bad file changes nothing, and the broker keeps running */
    write_file(conf, "log-level = info\nmax-memory = 64MiB\nbogus = 1\n");
    T_EQ_INT(kill(b.pid, SIGHUP), 0);
    T_ASSERT(log_has(&b, "slabmqd.conf:3: unknown setting 'bogus'", WAIT_MS));
    T_ASSERT(log_has(&b, "nothing changed", WAIT_MS));
    connect_once(&b);
    T_ASSERT(log_has(&b, "connection 3 open from", WAIT_MS)); /* still at debug */
    t_broker_stop(&b);
    rm_dir(dir);
}

/* A client that never reads: a FETCH of a few MiB stays in the broker's output. */
static int
stuck_reader(const struct t_broker *b)
{
    static char payload[256 * 1024];
    slabmq_client *c = t_client(b);
    struct mb m = {0};
    uint64_t id;
    int fd;

    for (int i = 0; i < 64; i++)
        T_OK(c, slabmq_publish(c, "drain", payload, sizeof(payload), &id));
    slabmq_client_close(c);
    fd = t_raw_connect_rcvbuf(b->port, 4096);
    t_raw_hello(fd);
    for (uint64_t rid = 1; rid <= 16; rid++) { /* 16 MiB of replies, whatever a FETCH caps */
        struct mb body = {0};
        mb_req(&body, SMQ_OP_FETCH, rid, 2);
        mb_str(&body, "drain");
        mb_uint(&body, 4);
        mb_frame(&m, body.p, body.len);
        mb_free(&body);
    }
    t_raw_send(fd, m.p, m.len);
    mb_free(&m);
    return fd;
}

/* SIGTERM and wait for the exit; returns the milliseconds it took (status must be 0). */
static int64_t
term_and_wait(struct t_broker *b)
{
    int64_t t0 = t_now_ms();
    int status = 0;
    pid_t r = 0;

    T_EQ_INT(kill(b->pid, SIGTERM), 0);
    while (t_now_ms() - t0 < 30000 && (r = waitpid(b->pid, &status, WNOHANG)) == 0)
        t_sleep_ms(5);
    T_EQ_INT(r, b->pid);
    T_ASSERT(WIFEXITED(status));
    T_EQ_INT(WEXITSTATUS(status), 0);
    return t_now_ms() - t0;
}

static void
test_shutdown_waits_for_drain_timeout(void)
{
    struct t_broker b;
    int64_t took;
    int fd;

    t_broker_start(&b, "--shutdown-timeout", "1500", NULL);
    fd = stuck_reader(&b);
    t_sleep_ms(200); /* the FETCH is answered into the broker's output */
    took = term_and_wait(&b);
    /* the deadline is a timer: never early; the margin is for a loaded machine */
    T_ASSERT(took >= 1400);
    T_ASSERT(took < 10000);
    T_ASSERT(log_has(&b, "closing 1 connections with replies still unwritten", 0));
    close(fd);
    t_broker_reaped(&b);
}

static void
test_shutdown_quick_when_drained(void)
{
    struct t_broker b;
    slabmq_client *c;
    int64_t took;
    uint64_t id;

    t_broker_start(&b, "--shutdown-timeout", "20000", NULL);
    c = t_client(&b);
    T_OK(c, slabmq_publish(c, "q", "x", 1, &id));
    /* an idle client: nothing to drain, so the broker need not wait out the timeout */
    took = term_and_wait(&b);
    T_ASSERT(took < 10000);
    slabmq_client_close(c);
    t_broker_reaped(&b);
}

static void
test_shutdown_timeout_zero_closes_at_once(void)
{
    struct t_broker b;
    int64_t took;
    int fd;

    t_broker_start(&b, "--shutdown-timeout", "0", NULL);
    fd = stuck_reader(&b);
    t_sleep_ms(200);
    took = term_and_wait(&b);
    T_ASSERT(took < 10000);
    close(fd);
    t_broker_reaped(&b);
}

/* Unacked messages go back to their queue at shutdown: a durable queue has them after a
 * restart, ready again. */
static void
test_shutdown_requeues_unacked(void)
{
    char dir[64];
    char data[128];
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt = NULL;
    uint64_t id;

    make_dir(dir, sizeof(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    t_broker_start(&b, "--durability", "sqlite", "--data-dir", data, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_publish(c, "keep", "one", 3, &id));
    T_OK(c, slabmq_fetch(c, "keep", 1, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    slabmq_batch_free(bt);
    t_broker_stop(&b); /* not acked */
    slabmq_client_close(c);
    t_broker_start(&b, "--durability", "sqlite", "--data-dir", data, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_fetch(c, "keep", 1, 5000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
    rm_dir(dir);
}

static const struct t_case cases[] = {
    T_CASE(test_config_file_applies),
    T_CASE(test_flags_override_file),
    T_CASE(test_bad_file_stops_start),
    T_CASE(test_check_config),
    T_CASE(test_sighup_reloads_log_level),
    T_CASE(test_shutdown_waits_for_drain_timeout),
    T_CASE(test_shutdown_quick_when_drained),
    T_CASE(test_shutdown_timeout_zero_closes_at_once),
    T_CASE(test_shutdown_requeues_unacked),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
