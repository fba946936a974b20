/* SPDX-License-Identifier: MIT */
/* The work-queue commands of the slabmq CLI (see cli_cmd.h): `dlq` browses a queue's dead
 * letters, `move` sends messages from one queue to another, `subscribe` prints what the
 * broker pushes, and `why` explains from a queue's statistics why its consumers get
 * nothing. `slabmq help COMMAND` is their user documentation. */
#include "cli_cmd.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_out.h"

/* Bytes a PUBLISH_BATCH frame spends on one payload besides the payload: its msgpack bin
 * header (as in cli_cmd.c). */
#define MSG_OVERHEAD 5
/* How long subscribe waits for a push before it looks at its stop conditions again, ms. */
#define RECEIVE_SLICE_MS 200
/* Default credit of `slabmq subscribe`. */
#define DEFAULT_CREDIT 100

/* A queue statistic, 0 when the broker did not send it. */
static uint64_t
stat_or_0(const slabmq_stats *s, const char *name)
{
    uint64_t v = 0;

    slabmq_stats_find(s, name, &v);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* dlq                                                                                       */

/* The name of queue's dead-letter queue into dlq (SLABMQ_NAME_MAX + 1 bytes). Returns 0, or
 * an exit code after reporting why there is none. */
static int
dead_letter_queue(struct cli *cli, const char *queue, char *dlq, size_t len)
{
    slabmq_stats *s;
    const char *name;
    int rc = CLI_EXIT_FAIL;
    slabmq_status st = slabmq_stats_get(cli->c, queue, &s);

    if (st)
        return cli_out_status(cli->c, st);
    name = slabmq_stats_find_str(s, "dead_letter");
    if (!name) {
        cli_out_error("the broker does not report a dead-letter queue for %s (a broker "
                      "without dead letters?)", queue);
    } else if (!*name) {
        cli_out_error("%s has no dead-letter queue: its dead letters are discarded", queue);
    } else {
        snprintf(dlq, len, "%s", name);
        rc = CLI_EXIT_OK;
    }
    slabmq_stats_free(s);
    return rc;
}

/* Write p[0..n) on one line of text: control bytes and backslashes as \xNN. */
static void
put_escaped(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
            printf("\\x%02x", p[i]);
        else
            putchar(p[i]);
    }
}

/* The column widths of the dlq table. */
struct dlq_widths {
    int id;
    int reason;
    int from;
};

static int
max_int(int a, int b)
{
    return a > b ? a : b;
}

/* ID REASON FROM DELIVERIES PAYLOAD; "-" for a message that is not a dead letter. */
static void
print_dlq_table(const slabmq_batch *b)
{
    struct dlq_widths w = {2, 6, 4};
    size_t n = slabmq_batch_count(b);

    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        w.id = max_int(w.id, cli_out_digits(m->id));
        if (m->dead) {
            w.reason = max_int(w.reason, (int)strlen(m->dead->reason));
            w.from = max_int(w.from, (int)strlen(m->dead->queue));
        }
    }
    printf("%*s  %-*s  %-*s  DELIVERIES  PAYLOAD\n", w.id, "ID", w.reason, "REASON", w.from,
           "FROM");
    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        const slabmq_dead_letter *d = m->dead;
        printf("%*" PRIu64 "  %-*s  %-*s  ", w.id, m->id, w.reason, d ? d->reason : "-", w.from,
               d ? d->queue : "-");
        if (d)
            printf("%10" PRIu64 "  ", d->deliveries);
        else
            printf("%10s  ", "-");
        put_escaped(m->data, m->len);
        putchar('\n');
    }
}

int
cli_work_dlq(struct cli *cli)
{
    char dlq[256];
    slabmq_batch *b = NULL;
    slabmq_stats *s = NULL;
    uint64_t ready = 0;
    int rc = dead_letter_queue(cli, cli->args[0], dlq, sizeof(dlq));
    slabmq_status st;

    if (rc)
        return rc;
    st = slabmq_stats_get(cli->c, dlq, &s);
    if (st == SLABMQ_OK) {
        ready = stat_or_0(s, "ready");
        slabmq_stats_free(s);
        st = slabmq_peek_skip(cli->c, dlq, cli->count ? cli->count : 10, cli->skip, &b);
    }
    if (st && st != SLABMQ_ERR_NOT_FOUND) /* a dead-letter queue is created with its first */
        return cli_out_status(cli->c, st);
    if (cli->json) {
        for (size_t i = 0; i < slabmq_batch_count(b); i++)
            cli_out_message(stdout, slabmq_batch_get(b, i), 1);
    } else {
        printf("dead letters of %s in %s: %" PRIu64 " ready", cli->args[0], dlq, ready);
        if (slabmq_batch_count(b) > 0 && slabmq_batch_count(b) < ready)
            printf(", showing %" PRIu64 "-%" PRIu64, cli->skip + 1,
                   cli->skip + slabmq_batch_count(b));
        putchar('\n');
        if (slabmq_batch_count(b) > 0)
            print_dlq_table(b);
    }
    slabmq_batch_free(b);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* move                                                                                      */

/* Publish the messages of b to dst, in as few PUBLISH_BATCH requests as the broker's frames
 * allow. */
static slabmq_status
publish_all(struct cli *cli, const char *dst, const slabmq_batch *b)
{
    slabmq_payload msgs[CLI_BATCH_MAX];
    uint64_t max = slabmq_client_max_message_size(cli->c);
    size_t budget = max < CLI_BATCH_BYTES ? (size_t)max : CLI_BATCH_BYTES;
    size_t n = slabmq_batch_count(b);
    size_t k = 0;
    size_t used = 0;

    for (size_t i = 0; i <= n; i++) {
        const slabmq_message *m = i < n ? slabmq_batch_get(b, i) : NULL;
        if (k > 0 && (!m || k == CLI_BATCH_MAX || used + m->len + MSG_OVERHEAD > budget)) {
            slabmq_status st = slabmq_publish_batch(cli->c, dst, msgs, k, NULL);
            if (st)
                return st;
            k = 0;
            used = 0;
        }
        if (m) {
            msgs[k].data = m->data;
            msgs[k++].len = m->len;
            used += m->len + MSG_OVERHEAD;
        }
    }
    return SLABMQ_OK;
}

/* The ids of the messages of b into ids (CLI_BATCH_MAX of them at most). */
static size_t
batch_ids(const slabmq_batch *b, uint64_t *ids)
{
    size_t n = slabmq_batch_count(b);

    for (size_t i = 0; i < n; i++)
        ids[i] = slabmq_batch_get(b, i)->id;
    return n;
}

/* Move one batch of up to max messages. *moved grows by the number moved; *got receives the
 * number fetched (0: SRC has no ready message). Returns an exit code. */
static int
move_batch(struct cli *cli, uint32_t max, uint64_t *moved, size_t *got)
{
    uint64_t ids[CLI_BATCH_MAX];
    slabmq_batch *b;
    size_t n;
    slabmq_status st = slabmq_fetch(cli->c, cli->args[0], max, 0, &b);

    *got = 0;
    if (st)
        return cli_out_status(cli->c, st);
    n = batch_ids(b, ids);
    *got = n;
    st = n ? publish_all(cli, cli->args[1], b) : SLABMQ_OK;
    slabmq_batch_free(b);
    if (st) { /* DST refused: SRC gets the whole batch back at once */
        int rc = cli_out_exit_code(st);
        cli_out_error("%s (%" PRIu64 " message%s moved before; the last batch was returned "
                      "to %s, part of it may also be in %s)", cli_out_detail(cli->c, st),
                      *moved, cli_out_plural(*moved), cli->args[0], cli->args[1]);
        slabmq_nack_batch(cli->c, ids, n, 0, NULL);
        return rc;
    }
    if (n == 0)
        return CLI_EXIT_OK;
    st = slabmq_ack_batch(cli->c, ids, n, NULL);
    if (st) {
        cli_out_error("%s (%" PRIu64 " message%s moved; the last %zu are in %s but could not "
                      "be acknowledged in %s, which delivers them again)",
                      cli_out_detail(cli->c, st), *moved, cli_out_plural(*moved), n, cli->args[1],
                      cli->args[0]);
        return cli_out_exit_code(st);
    }
    *moved += n;
    return CLI_EXIT_OK;
}

int
cli_work_move(struct cli *cli)
{
    uint32_t want = cli->count ? cli->count : UINT32_MAX;
    uint64_t moved = 0;
    size_t got = 1;
    int rc = CLI_EXIT_OK;

    while (rc == CLI_EXIT_OK && moved < want && got > 0) {
        uint64_t left = want - moved;
        rc = move_batch(cli, left < CLI_BATCH_MAX ? (uint32_t)left : CLI_BATCH_MAX, &moved, &got);
    }
    if (rc)
        return rc;
    if (cli->json)
        printf("{\"moved\":%" PRIu64 "}\n", moved);
    else
        printf("moved %" PRIu64 " message%s from %s to %s\n", moved, cli_out_plural(moved),
               cli->args[0], cli->args[1]);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* subscribe                                                                                 */

static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Catch SIGINT and SIGTERM without restarting system calls, so a wait for a push ends at
 * once; old receives the previous actions. */
static void
catch_stop_signals(struct sigaction old[2])
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A subscriber's progress.
 *
 * Every message pushed costs a delivery, and one given back counts as one (a message can be
 * dead-lettered for it), so `subscribe -n N` never lets the broker push more than it will
 * print: the subscription's credit stays at most the number of messages still wanted.
 * Credit is fixed at SUBSCRIBE, so when an ack would free more credit than is still wanted,
 * the subscription is ended first, the pushes that came before that are received and
 * printed (they are wanted: they fitted in the old credit), and a new subscription with the
 * smaller credit takes over. */
struct sub_run {
    uint64_t id;       /* the subscription; 0 while there is none */
    uint32_t credit;   /* its credit */
    uint32_t base;     /* --credit, capped */
    uint64_t want;     /* stop after this many messages; 0: no limit */
    uint64_t got;      /* messages printed */
    int64_t last_ms;   /* when the last message arrived (or the subscribing began) */
};

/* Subscribe with the credit still wanted. Returns an exit code. */
static int
open_sub(struct cli *cli, struct sub_run *run)
{
    slabmq_status st;

    run->credit = run->base;
    if (run->want && run->want - run->got < run->credit)
        run->credit = (uint32_t)(run->want - run->got);
    st = slabmq_subscribe(cli->c, cli->args[0], run->credit, &run->id);
    return st ? cli_out_status(cli->c, st) : CLI_EXIT_OK;
}

/* End the subscription, if any; its earlier pushes are still received afterwards. */
static int
close_sub(struct cli *cli, struct sub_run *run)
{
    slabmq_status st = run->id ? slabmq_unsubscribe(cli->c, run->id) : SLABMQ_OK;

    run->id = 0;
    return st ? cli_out_status(cli->c, st) : CLI_EXIT_OK;
}

/* Print the messages of b that are still wanted and ack them, ending the subscription
 * first when the ack would free credit that is not wanted. Messages beyond -n (none, while
 * the credit rule holds) go back to the queue. Returns an exit code. */
static int
print_and_ack(struct cli *cli, struct sub_run *run, const slabmq_batch *b)
{
    uint64_t ids[CLI_BATCH_MAX];
    size_t n = slabmq_batch_count(b);
    size_t print = n;
    int rc = CLI_EXIT_OK;

    if (run->want && run->want - run->got < print)
        print = (size_t)(run->want - run->got);
    for (size_t i = 0; i < n && i < CLI_BATCH_MAX; i++)
        ids[i] = slabmq_batch_get(b, i)->id;
    for (size_t i = 0; i < print; i++)
        cli_out_message(stdout, slabmq_batch_get(b, i), cli->json);
    if (print < n)
        slabmq_nack_batch(cli->c, ids + print, n - print, 0, NULL);
    if (print == 0)
        return CLI_EXIT_OK;
    run->got += print;
    run->last_ms = mono_ms();
    if (run->id && run->want && run->credit > run->want - run->got)
        rc = close_sub(cli, run);
    return rc ? rc : cli_cmd_ack_printed(cli, ids, print);
}

/* The next batch: a push of the subscription, waiting up to a slice, or, while there is no
 * subscription, what the last one pushed before it ended (an empty batch once that is all
 * received, and then the next subscription begins). Returns an exit code. */
static int
next_batch(struct cli *cli, struct sub_run *run, slabmq_batch **b)
{
    int64_t idle = mono_ms() - run->last_ms;
    int slice = RECEIVE_SLICE_MS;
    slabmq_status st;

    if (!run->id)
        slice = 0;
    else if (cli->waits && cli->wait_ms - idle < slice)
        slice = idle >= cli->wait_ms ? 0 : (int)(cli->wait_ms - idle);
    st = slabmq_receive(cli->c, slice, b);
    if (st) { /* the end of the subscription comes with a batch naming it */
        slabmq_batch_free(*b);
        *b = NULL;
        return cli_out_status(cli->c, st);
    }
    if (!run->id && slabmq_batch_count(*b) == 0)
        return open_sub(cli, run);
    return CLI_EXIT_OK;
}

/* Receive and print until a stop condition. Returns an exit code. */
static int
subscribe_loop(struct cli *cli, struct sub_run *run)
{
    int rc = open_sub(cli, run);

    while (rc == CLI_EXIT_OK && !stop_requested && (!run->want || run->got < run->want)) {
        slabmq_batch *b = NULL;
        rc = next_batch(cli, run, &b);
        if (rc == CLI_EXIT_OK)
            rc = print_and_ack(cli, run, b);
        slabmq_batch_free(b);
        if (cli->waits && mono_ms() - run->last_ms >= cli->wait_ms)
            break;
    }
    return rc;
}

/* End the subscription and print and ack what it pushed before that. */
static int
finish_sub(struct cli *cli, struct sub_run *run)
{
    slabmq_batch *b = NULL;
    int rc = close_sub(cli, run);

    while (rc == CLI_EXIT_OK && slabmq_receive(cli->c, 0, &b) == SLABMQ_OK
           && slabmq_batch_count(b) > 0) {
        rc = print_and_ack(cli, run, b);
        slabmq_batch_free(b);
        b = NULL;
    }
    slabmq_batch_free(b);
    return rc;
}

int
cli_work_subscribe(struct cli *cli)
{
    struct sub_run run = {0, 0, cli->credit ? cli->credit : DEFAULT_CREDIT, cli->count, 0,
                          mono_ms()};
    struct sigaction old[2];
    int rc;

    if (run.base > CLI_BATCH_MAX)
        run.base = CLI_BATCH_MAX; /* one push never exceeds the ids arrays */
    stop_requested = 0;
    catch_stop_signals(old);
    rc = subscribe_loop(cli, &run);
    if (rc == CLI_EXIT_OK)
        rc = finish_sub(cli, &run);
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
    if (rc == CLI_EXIT_OK && run.got == 0 && cli->waits && !stop_requested) {
        cli_out_error("nothing received from %s", cli->args[0]);
        return CLI_EXIT_EMPTY;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* why                                                                                       */

/* What why reads from a queue's statistics. */
struct why {
    uint64_t ready, inflight, delayed, waiters, subscriptions, credit, paused, visibility_ms;
    uint64_t next_due_ms, memory_held;
    int has_due;        /* next_due_ms was sent: something is delayed */
    const char *cause;  /* one of the causes of `slabmq help why` */
    int deliverable;    /* a consumer that fetches now gets a message */
};

static void
why_read(struct why *w, const slabmq_stats *s)
{
    w->ready = stat_or_0(s, "ready");
    w->inflight = stat_or_0(s, "inflight");
    w->delayed = stat_or_0(s, "delayed");
    w->waiters = stat_or_0(s, "waiters");
    w->subscriptions = stat_or_0(s, "subscriptions");
    w->credit = stat_or_0(s, "credit");
    w->paused = stat_or_0(s, "paused");
    w->visibility_ms = stat_or_0(s, "visibility_ms");
    w->memory_held = stat_or_0(s, "memory_held");
    w->has_due = slabmq_stats_find(s, "next_due_ms", &w->next_due_ms);
}

/* The first cause that applies, in the order of `slabmq help why`. */
static void
why_decide(struct why *w)
{
    w->deliverable = !w->paused && w->ready > 0;
    if (w->paused)
        w->cause = "paused";
    else if (w->ready > 0 && w->waiters == 0 && w->subscriptions == 0)
        w->cause = "no-consumers";
    else if (w->ready > 0 && w->waiters == 0 && w->credit == 0)
        w->cause = "no-credit";
    else if (w->ready > 0 && w->memory_held) {
        w->cause = "memory";
        w->deliverable = 0;
    } else if (w->ready > 0)
        w->cause = "deliverable";
    else if (w->delayed > 0)
        w->cause = "delayed";
    else if (w->inflight > 0)
        w->cause = "inflight";
    else
        w->cause = "empty";
}

/* The sentence for w's cause. */
static void
why_explain(const struct why *w, const char *q)
{
    const char *c = w->cause;

    if (strcmp(c, "paused") == 0 && w->ready > 0)
        printf("%s is paused: %" PRIu64 " ready message%s held until `slabmq resume %s`\n", q,
               w->ready, cli_out_plural(w->ready), q);
    else if (strcmp(c, "paused") == 0)
        printf("%s is paused (`slabmq resume %s`), and holds no ready message\n", q, q);
    else if (strcmp(c, "no-consumers") == 0)
        printf("%s has %" PRIu64 " ready message%s but no consumers: no fetch is waiting and "
               "nobody is subscribed\n", q, w->ready, cli_out_plural(w->ready));
    else if (strcmp(c, "no-credit") == 0)
        printf("%s has %" PRIu64 " ready message%s, but its %" PRIu64 " subscription%s %s no "
               "credit left: their consumers must ack what they hold (%" PRIu64 " in flight) "
               "to get more\n", q, w->ready, cli_out_plural(w->ready), w->subscriptions,
               cli_out_plural(w->subscriptions), w->subscriptions == 1 ? "has" : "have",
               w->inflight);
    else if (strcmp(c, "memory") == 0)
        printf("%s has %" PRIu64 " ready message%s for its consumers, but the broker's memory "
               "limit holds deliveries back: it has no room for more messages in flight (%"
               PRIu64 " now); consumers must ack what they hold (or the broker needs a larger "
               "--max-memory)\n", q, w->ready, cli_out_plural(w->ready), w->inflight);
    else if (strcmp(c, "deliverable") == 0)
        printf("%s has %" PRIu64 " ready message%s for its consumers (%" PRIu64 " waiting "
               "fetch%s, %" PRIu64 " subscription%s with %" PRIu64 " credit)\n", q, w->ready,
               cli_out_plural(w->ready), w->waiters, w->waiters == 1 ? "" : "es", w->subscriptions,
               cli_out_plural(w->subscriptions), w->credit);
    else if (strcmp(c, "delayed") == 0 && w->has_due)
        printf("%s has only delayed messages: %" PRIu64 " delayed, the next due in %" PRIu64
               " ms\n", q, w->delayed, w->next_due_ms);
    else if (strcmp(c, "delayed") == 0)
        printf("%s has only delayed messages: %" PRIu64 " delayed\n", q, w->delayed);
    else if (strcmp(c, "inflight") == 0)
        printf("every message of %s is in flight: %" PRIu64 " held by consumers, none ready "
               "(each comes back if not acked within %" PRIu64 " ms)\n", q, w->inflight,
               w->visibility_ms);
    else
        printf("%s is empty: no message ready, in flight or delayed\n", q);
}

static void
why_print(const struct why *w, const char *q, int json)
{
    if (json) {
        fputs("{\"queue\":", stdout);
        cli_out_json_string(stdout, q, strlen(q));
        printf(",\"cause\":\"%s\",\"deliverable\":%s,\"ready\":%" PRIu64 ",\"inflight\":%" PRIu64
               ",\"delayed\":%" PRIu64 ",\"waiters\":%" PRIu64 ",\"subscriptions\":%" PRIu64
               ",\"credit\":%" PRIu64 ",\"paused\":%s,\"next_due_ms\":", w->cause,
               w->deliverable ? "true" : "false", w->ready, w->inflight, w->delayed, w->waiters,
               w->subscriptions, w->credit, w->paused ? "true" : "false");
        if (w->has_due)
            printf("%" PRIu64 "}\n", w->next_due_ms);
        else
            puts("null}");
        return;
    }
    why_explain(w, q);
    printf("ready=%" PRIu64 " inflight=%" PRIu64 " delayed=%" PRIu64 " waiters=%" PRIu64
           " subscriptions=%" PRIu64 " credit=%" PRIu64 " paused=%" PRIu64, w->ready,
           w->inflight, w->delayed, w->waiters, w->subscriptions, w->credit, w->paused);
    if (w->has_due)
        printf(" next_due_ms=%" PRIu64, w->next_due_ms);
    putchar('\n');
}

int
cli_work_why(struct cli *cli)
{
    struct why w;
    slabmq_stats *s;
    slabmq_status st = slabmq_stats_get(cli->c, cli->args[0], &s);

    if (st)
        return cli_out_status(cli->c, st);
    memset(&w, 0, sizeof(w));
    why_read(&w, s);
    slabmq_stats_free(s);
    why_decide(&w);
    why_print(&w, cli->args[0], cli->json);
    return w.deliverable ? CLI_EXIT_OK : CLI_EXIT_EMPTY;
}
