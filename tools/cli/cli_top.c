/* SPDX-License-Identifier: MIT */
/* `slabmq top`; see cli_top.h. A frame costs one LIST, one broker STATS and one STATS per
 * queue; rates are (counter now - counter before) / elapsed, so a frame needs two samples
 * and the first frame comes after the first interval. */
#include "cli_top.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli_cmd.h"
#include "cli_out.h"
#include "slabmq.h"

enum { F_READY, F_INFLIGHT, F_DELAYED, F_PUBLISHED, F_DELIVERED, F_ACKED, F_DEAD, F_N };

static const char *const fields[F_N] = {"ready",     "inflight", "delayed",      "published",
                                        "delivered", "acked",    "dead_lettered"};

struct qsample {
    char *name;
    uint64_t v[F_N];
};

struct sample {
    struct qsample *q; /* sorted by name, as LIST returns them */
    size_t n;
    uint64_t conns;
    uint64_t mem_used;
    uint64_t mem_limit;
    double t;          /* monotonic seconds */
};

static double
mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sample_free(struct sample *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->q[i].name);
    free(s->q);
    memset(s, 0, sizeof(*s));
}

/* One sample of every queue. A queue deleted between LIST and STATS is left out. Returns
 * 0 or an exit code after reporting. */
static int
take_sample(slabmq_client *c, struct sample *s)
{
    slabmq_queue_info *list;
    slabmq_stats *st;
    size_t n;
    slabmq_status rc = slabmq_list(c, &list, &n);

    memset(s, 0, sizeof(*s));
    if (rc)
        return cli_out_status(c, rc);
    s->q = calloc(n ? n : 1, sizeof(*s->q));
    if (!s->q) {
        slabmq_queue_list_free(list);
        cli_out_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        struct qsample *q = &s->q[s->n];
        if (slabmq_stats_get(c, list[i].name, &st))
            continue;
        for (int f = 0; f < F_N; f++)
            slabmq_stats_find(st, fields[f], &q->v[f]);
        slabmq_stats_free(st);
        if ((q->name = strdup(list[i].name)))
            s->n++;
    }
    slabmq_queue_list_free(list);
    if ((rc = slabmq_stats_get(c, NULL, &st))) {
        sample_free(s); /* its queues are filled in already */
        return cli_out_status(c, rc);
    }
    slabmq_stats_find(st, "connections", &s->conns);
    slabmq_stats_find(st, "memory_used", &s->mem_used);
    slabmq_stats_find(st, "memory_limit", &s->mem_limit);
    slabmq_stats_free(st);
    s->t = mono_s();
    return 0;
}

static const struct qsample *
find_prev(const struct sample *prev, const char *name)
{
    for (size_t i = 0; i < prev->n; i++)
        if (strcmp(prev->q[i].name, name) == 0)
            return &prev->q[i];
    return NULL;
}

/* Per second; -1 when the queue is new or its counter went back (deleted and re-created). */
static double
rate(const struct qsample *now, const struct qsample *before, int f, double dt)
{
    if (!before || now->v[f] < before->v[f] || dt <= 0)
        return -1;
    return (double)(now->v[f] - before->v[f]) / dt;
}

static void
put_rate(double r)
{
    if (r < 0)
        printf(" %10s", "-");
    else
        printf(" %10.1f", r);
}

static void
print_json(const struct sample *s, const struct sample *prev)
{
    double dt = s->t - prev->t;

    printf("{\"connections\":%" PRIu64 ",\"memory_used\":%" PRIu64 ",\"memory_limit\":%" PRIu64
           ",\"queues\":[",
           s->conns, s->mem_used, s->mem_limit);
    for (size_t i = 0; i < s->n; i++) {
        const struct qsample *q = &s->q[i];
        const struct qsample *b = find_prev(prev, q->name);
        printf("%s{\"name\":", i ? "," : "");
        cli_out_json_string(stdout, q->name, strlen(q->name));
        printf(",\"ready\":%" PRIu64 ",\"inflight\":%" PRIu64 ",\"delayed\":%" PRIu64
               ",\"dead_lettered\":%" PRIu64 ",\"publish_rate\":%.3f,\"deliver_rate\":%.3f"
               ",\"ack_rate\":%.3f}",
               q->v[F_READY], q->v[F_INFLIGHT], q->v[F_DELAYED], q->v[F_DEAD],
               rate(q, b, F_PUBLISHED, dt), rate(q, b, F_DELIVERED, dt),
               rate(q, b, F_ACKED, dt));
    }
    printf("]}\n");
}

/* Rows the terminal has (TERM_ROWS_UNKNOWN if it does not say), or 0 when stdout is not
 * one. */
#define TERM_ROWS_UNKNOWN 100000
static int
term_rows(void)
{
    struct winsize ws;

    if (!isatty(STDOUT_FILENO))
        return 0;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) || ws.ws_row == 0)
        return TERM_ROWS_UNKNOWN;
    return ws.ws_row;
}

static void
print_table(const struct sample *s, const struct sample *prev, const char *server, int rows)
{
    double dt = s->t - prev->t;
    size_t shown = s->n;

    if (rows) {
        printf("\033[H\033[2J"); /* home, clear: redraw in place */
        if (rows > 4 && shown > (size_t)(rows - 4))
            shown = (size_t)(rows - 4);
    }
    printf("slabmq %s  connections %" PRIu64 "  memory %.1f/%.1f MiB  queues %zu\n", server,
           s->conns, (double)s->mem_used / 1048576.0, (double)s->mem_limit / 1048576.0, s->n);
    printf("%-24s %10s %10s %10s %10s %10s %10s %10s\n", "QUEUE", "READY", "INFLIGHT",
           "DELAYED", "PUB/S", "DELIV/S", "ACK/S", "DEAD");
    for (size_t i = 0; i < shown; i++) {
        const struct qsample *q = &s->q[i];
        const struct qsample *b = find_prev(prev, q->name);
        printf("%-24s %10" PRIu64 " %10" PRIu64 " %10" PRIu64, q->name, q->v[F_READY],
               q->v[F_INFLIGHT], q->v[F_DELAYED]);
        put_rate(rate(q, b, F_PUBLISHED, dt));
        put_rate(rate(q, b, F_DELIVERED, dt));
        put_rate(rate(q, b, F_ACKED, dt));
        printf(" %10" PRIu64 "\n", q->v[F_DEAD]);
    }
    if (shown < s->n)
        printf("(%zu more)\n", s->n - shown);
    if (!rows)
        putchar('\n'); /* frames apart when appended */
}

int
cli_top_show(struct cli *cli)
{
    struct sample prev;
    struct sample now;
    int rc = take_sample(cli->c, &prev);

    for (uint32_t frame = 0; rc == 0 && (cli->count == 0 || frame < cli->count); frame++) {
        struct timespec ts = {(time_t)(cli->interval_ms / 1000),
                              (long)(cli->interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if ((rc = take_sample(cli->c, &now)))
            break;
        if (cli->json)
            print_json(&now, &prev);
        else
            print_table(&now, &prev, cli->server, term_rows());
        if (fflush(stdout)) {
            rc = CLI_EXIT_FAIL;
            sample_free(&now);
            break;
        }
        sample_free(&prev);
        prev = now;
    }
    sample_free(&prev);
    return rc;
}
