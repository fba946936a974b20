/* SPDX-License-Identifier: MIT */
/* The commands of the slabmq CLI; see cli_cmd.h. Each is one or a few library calls plus
 * formatting. The two that move many messages batch them: `publish -` sends up to
 * CLI_BATCH_MAX lines per PUBLISH_BATCH and `consume` fetches and acks up to CLI_BATCH_MAX per
 * round trip, so their cost is one round trip per batch, not per message. */
#include "cli_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "cli_out.h"

/* Bytes a PUBLISH_BATCH frame spends on one payload besides the payload: its msgpack bin
 * header. The request header and queue name fit in the broker's frame slack. */
#define MSG_OVERHEAD 5

/* ---------------------------------------------------------------------------------------- */
/* Queues and statistics                                                                     */

/* NAME READY INFLIGHT, columns as wide as their widest cell. */
static void
print_queue_table(const slabmq_queue_info *q, size_t n)
{
    int wname = 4;
    int wready = 5;
    int winflight = 8;

    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(q[i].name);
        wname = len > wname ? len : wname;
        wready = cli_out_digits(q[i].ready) > wready ? cli_out_digits(q[i].ready) : wready;
        if (cli_out_digits(q[i].inflight) > winflight)
            winflight = cli_out_digits(q[i].inflight);
    }
    printf("%-*s  %*s  %*s\n", wname, "NAME", wready, "READY", winflight, "INFLIGHT");
    for (size_t i = 0; i < n; i++)
        printf("%-*s  %*" PRIu64 "  %*" PRIu64 "\n", wname, q[i].name, wready, q[i].ready,
               winflight, q[i].inflight);
}

static void
print_queue_json(const slabmq_queue_info *q, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
        cli_out_json_string(stdout, q[i].name, strlen(q[i].name));
        printf(",\"ready\":%" PRIu64 ",\"inflight\":%" PRIu64 "}", q[i].ready, q[i].inflight);
    }
    puts("]");
}

int
cli_cmd_queues(struct cli *cli)
{
    slabmq_queue_info *list;
    size_t n;
    slabmq_status st = slabmq_list(cli->c, &list, &n);

    if (st)
        return cli_out_status(cli->c, st);
    if (cli->json)
        print_queue_json(list, n);
    else
        print_queue_table(list, n);
    slabmq_queue_list_free(list);
    return CLI_EXIT_OK;
}

/* "name value" lines with the values in one column, or one JSON object. */
static void
print_stats(const slabmq_stats *s, int json)
{
    size_t n = slabmq_stats_count(s);
    int width = 0;

    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(slabmq_stats_name(s, i));
        width = len > width ? len : width;
    }
    if (json)
        putchar('{');
    for (size_t i = 0; i < n; i++) {
        const char *name = slabmq_stats_name(s, i);
        const char *str = slabmq_stats_str(s, i); /* dead_letter: a queue name, or "" */
        if (!json && str) {
            printf("%-*s  %s\n", width, name, *str ? str : "\"\"");
            continue;
        }
        if (!json) {
            printf("%-*s  %" PRIu64 "\n", width, name, slabmq_stats_value(s, i));
            continue;
        }
        if (i)
            putchar(',');
        cli_out_json_string(stdout, name, strlen(name));
        putchar(':');
        if (str)
            cli_out_json_string(stdout, str, strlen(str));
        else
            printf("%" PRIu64, slabmq_stats_value(s, i));
    }
    if (json)
        puts("}");
}

int
cli_cmd_stats(struct cli *cli)
{
    slabmq_stats *s;
    slabmq_status st = slabmq_stats_get(cli->c, cli->nargs ? cli->args[0] : NULL, &s);

    if (st)
        return cli_out_status(cli->c, st);
    print_stats(s, cli->json);
    slabmq_stats_free(s);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Publishing                                                                                */

/* The publish options given on the command line, or NULL when none was: then the requests
 * are those of a broker without the work-queue options. */
static const slabmq_publish_options *
publish_options(const struct cli *cli)
{
    const slabmq_publish_options *o = &cli->pub;

    return o->delay_ms || o->at_ms || o->ttl_ms || o->priority || o->id || o->confirm ? o
                                                                                   : NULL;
}

/* Lines of input waiting to go out as one PUBLISH_BATCH. */
struct pub {
    slabmq_client *c;                   /* borrowed */
    const char *queue;                  /* borrowed */
    const slabmq_publish_options *opts; /* for every message, or NULL; borrowed */
    size_t budget;                      /* frame bytes one batch may take, overheads included */
    char *buf;                          /* the pending payloads, back to back */
    size_t cap;                         /* bytes allocated at buf */
    size_t used;                        /* budget taken by the pending payloads */
    size_t n;                           /* pending payloads */
    size_t off[CLI_BATCH_MAX + 1];      /* where each starts in buf; off[n] is where next goes */
    slabmq_payload msgs[CLI_BATCH_MAX]; /* views built at flush time (buf may move before) */
    uint64_t line;                      /* lines read so far */
    uint64_t published;                 /* messages the broker has stored */
    uint64_t first_id;                  /* id of the first of them */
};

/* Returns a new struct pub; free it with free_pub(). NULL when out of memory. */
static struct pub *
new_pub(struct cli *cli)
{
    struct pub *p = calloc(1, sizeof(*p));
    uint64_t max = slabmq_client_max_message_size(cli->c);

    if (!p)
        return NULL;
    /* The broker takes frames of max_message_size plus slack, so a batch of that many
     * payload bytes fits even when the broker was started with small messages. */
    p->budget = max < CLI_BATCH_BYTES ? (size_t)max : CLI_BATCH_BYTES;
    p->cap = 65536;
    p->buf = malloc(p->cap);
    if (!p->buf) {
        free(p);
        return NULL;
    }
    p->c = cli->c;
    p->queue = cli->args[0];
    p->opts = publish_options(cli);
    return p;
}

static void
free_pub(struct pub *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

/* Publish the pending lines in one request; the broker stores all of them or none. */
static slabmq_status
flush_pub(struct pub *p)
{
    uint64_t id;
    slabmq_status st;

    if (p->n == 0)
        return SLABMQ_OK;
    for (size_t i = 0; i < p->n; i++) {
        p->msgs[i].data = p->buf + p->off[i];
        p->msgs[i].len = p->off[i + 1] - p->off[i];
    }
    st = slabmq_publish_batch_opts(p->c, p->queue, p->msgs, p->n, p->opts, &id);
    if (st)
        return st;
    if (p->published == 0)
        p->first_id = id;
    p->published += p->n;
    p->n = 0;
    p->used = 0;
    return SLABMQ_OK;
}

/* Report a failure while publishing lines, with how many made it before it: batches are
 * stored all or nothing, so those are exactly the first lines of the input, unless the
 * connection failed and the fate of the batch in flight is unknown. */
static int
fail_pub(const struct pub *p, slabmq_status st)
{
    int rc = cli_out_exit_code(st);

    cli_out_error("%s (the first %" PRIu64 " line%s published%s)", cli_out_detail(p->c, st),
                  p->published, p->published == 1 ? " was" : "s were",
                  rc == CLI_EXIT_CONN ? "; the next batch may have been too" : "");
    return rc;
}

/* Make room for len more bytes in buf. 0 or -1 when out of memory. */
static int
reserve_pub(struct pub *p, size_t len)
{
    size_t need = p->off[p->n] + len;
    size_t cap = p->cap;
    char *nb;

    if (need <= cap)
        return 0;
    while (cap < need)
        cap *= 2;
    nb = realloc(p->buf, cap);
    if (!nb)
        return -1;
    p->buf = nb;
    p->cap = cap;
    return 0;
}

/* Queue one line for publishing, sending the pending batch first when this line would not
 * fit in it. Returns an exit code. */
static int
add_line(struct pub *p, const char *line, size_t len)
{
    uint64_t max = slabmq_client_max_message_size(p->c);
    slabmq_status st = SLABMQ_OK;

    p->line++;
    if (p->n == CLI_BATCH_MAX || len > max
        || (p->n > 0 && p->used + len + MSG_OVERHEAD > p->budget))
        st = flush_pub(p);
    if (st)
        return fail_pub(p, st);
    if (len > max) {
        cli_out_error("line %" PRIu64 " is %zu bytes, over the broker's maximum message size "
                      "of %" PRIu64 " bytes; the %" PRIu64 " line%s before it %s published",
                      p->line, len, max, p->published, cli_out_plural(p->published),
                      p->published == 1 ? "was" : "were");
        return CLI_EXIT_FAIL;
    }
    if (reserve_pub(p, len)) {
        cli_out_error("out of memory reading line %" PRIu64, p->line);
        return CLI_EXIT_FAIL;
    }
    memcpy(p->buf + p->off[p->n], line, len);
    p->off[p->n + 1] = p->off[p->n] + len;
    p->n++;
    p->used += len + MSG_OVERHEAD;
    return CLI_EXIT_OK;
}

static void
report_published(const struct cli *cli, uint64_t n, uint64_t first_id)
{
    if (cli->json && n == 0)
        puts("{\"published\":0,\"first_id\":null}");
    else if (cli->json)
        printf("{\"published\":%" PRIu64 ",\"first_id\":%" PRIu64 "}\n", n, first_id);
    else if (n == 0)
        printf("published 0 messages to %s\n", cli->args[0]);
    else if (n == 1)
        printf("published 1 message to %s (id %" PRIu64 ")\n", cli->args[0], first_id);
    else
        printf("published %" PRIu64 " messages to %s (first id %" PRIu64 ")\n", n,
               cli->args[0], first_id);
}

/* Publish one message per line of in; see `slabmq help publish`. */
static int
publish_lines(struct cli *cli, FILE *in)
{
    struct pub *p = new_pub(cli);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = CLI_EXIT_OK;

    if (!p) {
        cli_out_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    while (rc == CLI_EXIT_OK && (got = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        rc = add_line(p, line, len);
    }
    if (rc == CLI_EXIT_OK && ferror(in)) {
        cli_out_error("cannot read standard input: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (rc == CLI_EXIT_OK) {
        slabmq_status st = flush_pub(p);
        rc = st ? fail_pub(p, st) : CLI_EXIT_OK;
    }
    if (rc == CLI_EXIT_OK)
        report_published(cli, p->published, p->first_id);
    free(line);
    free_pub(p);
    return rc;
}

/* The outcome of a publish with --id: stored, or a duplicate of message id. */
static void
report_with_id(const struct cli *cli, uint64_t id, int duplicate)
{
    if (cli->json)
        printf("{\"published\":%d,\"first_id\":%" PRIu64 ",\"duplicate\":%s}\n",
               !duplicate, id, duplicate ? "true" : "false");
    else if (duplicate)
        printf("duplicate: %s already has %s (message %" PRIu64 "); nothing published\n",
               cli->args[0], cli->pub.id, id);
    else
        report_published(cli, 1, id);
}

int
cli_cmd_publish(struct cli *cli)
{
    const char *msg = cli->nargs > 1 ? cli->args[1] : "-";
    uint64_t id;
    int duplicate = 0;
    slabmq_status st;

    if (strcmp(msg, "-") == 0)
        return publish_lines(cli, stdin);
    st = slabmq_publish_opts(cli->c, cli->args[0], msg, strlen(msg), publish_options(cli), &id,
                             &duplicate);
    if (st)
        return cli_out_status(cli->c, st);
    if (cli->pub.id)
        report_with_id(cli, id, duplicate);
    else
        report_published(cli, 1, id);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Consuming and peeking                                                                     */

int
cli_cmd_ack_printed(struct cli *cli, const uint64_t *ids, size_t n)
{
    slabmq_status st;

    if (fflush(stdout) != 0) {
        cli_out_error("cannot write output: %s; %zu message%s left unacknowledged for "
                      "redelivery", strerror(errno), n, cli_out_plural(n));
        return CLI_EXIT_FAIL;
    }
    st = slabmq_ack_flags(cli->c, ids, n, cli->ack_flags, NULL);
    return st ? cli_out_status(cli->c, st) : CLI_EXIT_OK;
}

/* Fetch up to max messages, print them, and ack them once the output is flushed, so a
 * message is never acked before it left this process. *got receives how many were
 * fetched. Returns an exit code. */
static int
consume_batch(struct cli *cli, uint32_t max, uint32_t *got)
{
    uint64_t ids[CLI_BATCH_MAX];
    slabmq_batch *b;
    size_t n;
    slabmq_status st;

    *got = 0;
    st = slabmq_fetch(cli->c, cli->args[0], max < CLI_BATCH_MAX ? max : CLI_BATCH_MAX,
                      cli->wait_ms, &b);
    if (st)
        return cli_out_status(cli->c, st);
    n = slabmq_batch_count(b);
    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        cli_out_message(stdout, m, cli->json);
        ids[i] = m->id;
    }
    slabmq_batch_free(b);
    *got = (uint32_t)n;
    return n ? cli_cmd_ack_printed(cli, ids, n) : CLI_EXIT_OK;
}

int
cli_cmd_consume(struct cli *cli)
{
    uint32_t want = cli->count ? cli->count : 1;
    uint32_t done = 0;
    uint32_t got = 1;
    int rc = CLI_EXIT_OK;

    while (rc == CLI_EXIT_OK && done < want && got > 0) {
        rc = consume_batch(cli, want - done, &got);
        done += got;
    }
    if (rc == CLI_EXIT_OK && done == 0) {
        cli_out_error("nothing to consume in %s", cli->args[0]);
        return CLI_EXIT_EMPTY;
    }
    return rc;
}

int
cli_cmd_peek(struct cli *cli)
{
    slabmq_batch *b;
    slabmq_status st =
        slabmq_peek_skip(cli->c, cli->args[0], cli->count ? cli->count : 10, cli->skip, &b);

    if (st)
        return cli_out_status(cli->c, st);
    for (size_t i = 0; i < slabmq_batch_count(b); i++)
        cli_out_message(stdout, slabmq_batch_get(b, i), cli->json);
    slabmq_batch_free(b);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Administration                                                                            */

int
cli_cmd_purge(struct cli *cli)
{
    uint64_t n;
    slabmq_status st = slabmq_purge(cli->c, cli->args[0], &n);

    if (st)
        return cli_out_status(cli->c, st);
    if (cli->json)
        printf("{\"purged\":%" PRIu64 "}\n", n);
    else
        printf("purged %" PRIu64 " message%s from %s\n", n, cli_out_plural(n), cli->args[0]);
    return CLI_EXIT_OK;
}

/* pause and resume: the same shape, the library call differs. */
static int
pause_or_resume(struct cli *cli, int pause)
{
    int was = 0;
    slabmq_status st = pause ? slabmq_pause(cli->c, cli->args[0], &was)
                             : slabmq_resume(cli->c, cli->args[0], &was);

    if (st)
        return cli_out_status(cli->c, st);
    if (cli->json)
        printf("{\"queue\":\"%s\",\"paused\":%s,\"was_paused\":%s}\n", cli->args[0],
               pause ? "true" : "false", was ? "true" : "false");
    else if (pause)
        printf("paused %s%s\n", cli->args[0], was ? " (it already was)" : "");
    else
        printf("resumed %s%s\n", cli->args[0], was ? "" : " (it was not paused)");
    return CLI_EXIT_OK;
}

int
cli_cmd_pause(struct cli *cli)
{
    return pause_or_resume(cli, 1);
}

int
cli_cmd_resume(struct cli *cli)
{
    return pause_or_resume(cli, 0);
}

int
cli_cmd_delete(struct cli *cli)
{
    uint64_t n;
    slabmq_status st = slabmq_delete(cli->c, cli->args[0], &n);

    if (st)
        return cli_out_status(cli->c, st);
    if (cli->json)
        printf("{\"dropped\":%" PRIu64 "}\n", n);
    else
        printf("deleted queue %s (%" PRIu64 " message%s dropped)\n", cli->args[0], n,
               cli_out_plural(n));
    return CLI_EXIT_OK;
}

int
cli_cmd_declare(struct cli *cli)
{
    const char *queue = cli->args[0];
    int created;
    slabmq_status st = slabmq_declare(cli->c, queue, &cli->queue, &created);

    if (st)
        return cli_out_status(cli->c, st);
    if (!cli->json) {
        printf("declared %s (%s)\n", queue, created ? "created" : "updated");
        return CLI_EXIT_OK;
    }
    fputs("{\"queue\":", stdout);
    cli_out_json_string(stdout, queue, strlen(queue));
    printf(",\"created\":%s}\n", created ? "true" : "false");
    return CLI_EXIT_OK;
}

int
cli_cmd_ping(struct cli *cli)
{
    struct timespec t0;
    struct timespec t1;
    double ms;
    slabmq_status st;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = slabmq_ping(cli->c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st)
        return cli_out_status(cli->c, st);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (cli->json)
        printf("{\"ms\":%.3f}\n", ms);
    else
        printf("pong from %s in %.3f ms\n", cli->server, ms);
    return CLI_EXIT_OK;
}
