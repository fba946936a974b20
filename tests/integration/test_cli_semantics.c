/* SPDX-License-Identifier: MIT */
/* The work-queue side of the slabmq CLI against a real slabmqd: declare's dead-letter, TTL,
 * de-duplication and length options; publish's delay, time, TTL, priority and producer id;
 * dlq listings with reasons after TERM and the delivery limit; moving dead letters back;
 * peek pages and dead-letter info in peek and consume; subscribe's credit, stop conditions
 * and SIGINT; why for each cause; and the usage errors of the new options. Broker state is
 * set up and read back through libslabmq, independently of the CLI. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "slabmq.h"
#include "t.h"

/* Poll an integer statistic until it equals want, for at most ms. */
static void
wait_stat(const struct t_broker *b, const char *queue, const char *name, uint64_t want, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint64_t v;

    while ((v = cli_stat(b, queue, name)) != want && t_now_ms() < deadline)
        t_sleep_ms(10);
    if (v != want)
        t_fail(__FILE__, __LINE__, "%s of %s stayed %" PRIu64 ", not %" PRIu64, name, queue, v,
               want);
}

/* A string statistic of queue, copied into buf. */
static const char *
str_stat(const struct t_broker *b, const char *queue, const char *name, char *buf, size_t len)
{
    slabmq_client *c = t_client(b);
    slabmq_stats *s;
    const char *v;

    T_OK(c, slabmq_stats_get(c, queue, &s));
    v = slabmq_stats_find_str(s, name);
    T_ASSERT(v != NULL);
    snprintf(buf, len, "%s", v);
    slabmq_stats_free(s);
    slabmq_client_close(c);
    return buf;
}

/* Fetch every ready message of queue on c (held in flight by c); returns how many, ids
 * receives up to cap of their ids. */
static size_t
take_all(slabmq_client *c, const char *queue, uint64_t *ids, size_t cap)
{
    slabmq_batch *bt;
    size_t n;

    T_OK(c, slabmq_fetch(c, queue, (uint32_t)cap, 0, &bt));
    n = slabmq_batch_count(bt);
    for (size_t i = 0; i < n; i++)
        ids[i] = slabmq_batch_get(bt, i)->id;
    slabmq_batch_free(bt);
    return n;
}

/* Two dead letters in jobs.dlq: "bad input" TERMinated after one delivery, then "poison"
 * dead-lettered by the delivery limit (max_deliveries 1) after a NACK. Returns their ids. */
static void
make_dead_letters(const struct t_broker *b, uint64_t ids[2])
{
    slabmq_client *c = t_client(b);
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t held[4];

    qo.max_deliveries = 1;
    T_OK(c, slabmq_declare(c, "jobs", &qo, NULL));
    T_OK(c, slabmq_publish(c, "jobs", "bad input", 9, &ids[0]));
    T_OK(c, slabmq_publish(c, "jobs", "poison", 6, &ids[1]));
    T_EQ_INT(take_all(c, "jobs", held, 4), 2);
    T_OK(c, slabmq_term(c, &ids[0], 1, NULL));
    T_OK(c, slabmq_nack(c, ids[1], 0));
    T_EQ_U64(cli_stat(b, "jobs", "dead_lettered"), 2);
    slabmq_client_close(c);
}

/* ---------------------------------------------------------------------------------------- */
/* declare and publish                                                                       */

static void
test_declare_work_queue_options(void)
{
    struct t_broker b;
    struct cli_run r;
    char buf[256];

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "wq", "--max-deliveries", "3", "--dead-letter", "graveyard",
                   "--ttl", "60000", "--dedup-window", "64KiB", "--max-length", "50",
                   "--overflow", "dead-letter"),
               0, "declared wq (created)\n");
    T_EQ_U64(cli_stat(&b, "wq", "max_deliveries"), 3);
    T_EQ_STR(str_stat(&b, "wq", "dead_letter", buf, sizeof(buf)), "graveyard");
    T_EQ_U64(cli_stat(&b, "wq", "ttl_ms"), 60000);
    T_EQ_U64(cli_stat(&b, "wq", "dedup_window"), 65536);
    T_EQ_U64(cli_stat(&b, "wq", "max_messages"), 50);
    T_EQ_U64(cli_stat(&b, "wq", "overflow_dead_letter"), 1);
    r = RUN(b.port, "stats", "wq");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, "\ndead_letter ") && strstr(r.out, "  graveyard\n"));
    cli_run_free(&r);
    /* 0 and "" remove what they set */
    cli_expect(RUN(b.port, "declare", "wq", "--max-deliveries", "0", "--dead-letter", "",
                   "--ttl", "0", "--dedup-window", "0"),
               0, "declared wq (updated)\n");
    T_EQ_U64(cli_stat(&b, "wq", "max_deliveries"), 0);
    T_EQ_STR(str_stat(&b, "wq", "dead_letter", buf, sizeof(buf)), "");
    T_EQ_U64(cli_stat(&b, "wq", "ttl_ms"), 0);
    T_EQ_U64(cli_stat(&b, "wq", "dedup_window"), 0);
    T_EQ_U64(cli_stat(&b, "wq", "max_messages"), 50); /* left out: kept */
    r = RUN(b.port, "stats", "wq", "--json");
    T_ASSERT(strstr(r.out, "\"dead_letter\":\"\"") != NULL);
    cli_run_free(&r);
    /* the broker's own check: not its own dead-letter queue */
    r = RUN(b.port, "declare", "wq", "--dead-letter", "wq");
    T_EQ_INT(r.rc, 1);
    T_EQ_STR(r.out, "");
    T_ASSERT(strncmp(r.err, "slabmq: ", 8) == 0);
    cli_run_free(&r);
    t_broker_stop(&b);
}

/* Priorities reorder, delays and times hold messages back (peek does not show them), a TTL
 * sends a message to the dead-letter queue, and options apply to every line of stdin. */
static void
test_publish_options(void)
{
    struct t_broker b;
    struct cli_run r;
    char at[32];

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "publish", "p", "low"), 0, "published 1 message to p (id 1)\n");
    cli_expect(RUN(b.port, "publish", "p", "high", "--priority", "9"), 0,
               "published 1 message to p (id 2)\n");
    cli_expect(RUN_IN(b.port, "mid 1\nmid 2\n", "publish", "p", "-", "--priority", "5"), 0,
               "published 2 messages to p (first id 3)\n");
    T_EQ_U64(cli_stat(&b, "p", "priority_ready"), 3);
    cli_expect(RUN(b.port, "peek", "p"), 0, "high\nmid 1\nmid 2\nlow\n");
    cli_expect(RUN(b.port, "publish", "p", "later", "--delay", "60000"), 0,
               "published 1 message to p (id 5)\n");
    snprintf(at, sizeof(at), "%" PRId64, t_wall_ms() + 3600 * 1000);
    cli_expect(RUN(b.port, "publish", "p", "in an hour", "--at", at), 0,
               "published 1 message to p (id 6)\n");
    cli_expect(RUN(b.port, "publish", "p", "at once", "--at", "1000"), 0, /* in the past */
               "published 1 message to p (id 7)\n");
    T_EQ_U64(cli_stat(&b, "p", "delayed"), 2);
    T_EQ_U64(cli_stat(&b, "p", "ready"), 5);
    r = RUN(b.port, "consume", "p", "-n", "10");
    T_EQ_INT(r.rc, 0); /* priority 0 keeps no order between "low" and "at once" (7.3) */
    T_ASSERT(strncmp(r.out, "high\nmid 1\nmid 2\n", 17) == 0);
    T_ASSERT(strstr(r.out + 17, "low\n") && strstr(r.out + 17, "at once\n"));
    T_EQ_U64(r.out_len, 17 + 4 + 8);
    cli_run_free(&r);
    /* a TTL: dead-lettered as expired */
    cli_expect(RUN(b.port, "publish", "t", "brief", "--ttl", "100"), 0,
               "published 1 message to t (id 8)\n");
    wait_stat(&b, "t", "expired", 1, 3000);
    cli_expect(RUN(b.port, "peek", "t.dlq"), 0, "[expired from t after 0 deliveries] brief\n");
    t_broker_stop(&b);
}

static void
test_publish_duplicate(void)
{
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "publish", "orders", "first", "--id", "order-1"), 0,
               "published 1 message to orders (id 1)\n");
    cli_expect(RUN(b.port, "publish", "orders", "second", "--id", "order-1"), 0,
               "duplicate: orders already has order-1 (message 1); nothing published\n");
    cli_expect(RUN(b.port, "publish", "orders", "third", "--id", "order-1", "--json"), 0,
               "{\"published\":0,\"first_id\":1,\"duplicate\":true}\n");
    cli_expect(RUN(b.port, "--json", "publish", "orders", "other", "--id", "order-2"), 0,
               "{\"published\":1,\"first_id\":2,\"duplicate\":false}\n");
    T_EQ_U64(cli_stat(&b, "orders", "duplicates"), 2);
    T_EQ_U64(cli_stat(&b, "orders", "ready"), 2);
    cli_expect(RUN(b.port, "consume", "orders", "-n", "5"), 0, "first\nother\n");
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* dlq, move, peek                                                                           */

static void
test_dlq_lists_reasons(void)
{
    struct t_broker b;
    uint64_t ids[2];
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "jobs"), 0, "declared jobs (created)\n");
    cli_expect(RUN(b.port, "dlq", "jobs"), 0, "dead letters of jobs in jobs.dlq: 0 ready\n");
    make_dead_letters(&b, ids);
    cli_expect(RUN(b.port, "dlq", "jobs"), 0,
               "dead letters of jobs in jobs.dlq: 2 ready\n"
               "ID  REASON          FROM  DELIVERIES  PAYLOAD\n"
               " 1  rejected        jobs           1  bad input\n"
               " 2  delivery-limit  jobs           1  poison\n");
    cli_expect(RUN(b.port, "dlq", "jobs", "-n", "1", "--skip", "1"), 0,
               "dead letters of jobs in jobs.dlq: 2 ready, showing 2-2\n"
               "ID  REASON          FROM  DELIVERIES  PAYLOAD\n"
               " 2  delivery-limit  jobs           1  poison\n");
    cli_expect(RUN(b.port, "dlq", "jobs", "--json"), 0,
               "{\"id\":1,\"deliveries\":0,\"dead_letter\":{\"reason\":\"rejected\","
               "\"queue\":\"jobs\",\"deliveries\":1},\"payload\":\"bad input\"}\n"
               "{\"id\":2,\"deliveries\":0,\"dead_letter\":{\"reason\":\"delivery-limit\","
               "\"queue\":\"jobs\",\"deliveries\":1},\"payload\":\"poison\"}\n");
    /* peek and consume show the same info in front of the payload */
    cli_expect(RUN(b.port, "peek", "jobs.dlq"), 0,
               "[rejected from jobs after 1 delivery] bad input\n"
               "[delivery-limit from jobs after 1 delivery] poison\n");
    cli_expect(RUN(b.port, "consume", "jobs.dlq"), 0,
               "[rejected from jobs after 1 delivery] bad input\n");
    /* nothing left to show, no dead-letter queue, no queue */
    cli_expect(RUN(b.port, "declare", "nodlq", "--dead-letter", ""), 0,
               "declared nodlq (created)\n");
    cli_expect_error(RUN(b.port, "dlq", "nodlq"), 1,
                     "slabmq: nodlq has no dead-letter queue: its dead letters are discarded\n");
    cli_expect_error(RUN(b.port, "dlq", "missing"), 1, "slabmq: no queue named missing\n");
    /* control characters stay on one line */
    r = RUN(b.port, "publish", "jobs.dlq", "two\nlines\\");
    cli_run_free(&r);
    cli_expect(RUN(b.port, "dlq", "jobs", "--skip", "1"), 0,
               "dead letters of jobs in jobs.dlq: 2 ready, showing 2-2\n"
               "ID  REASON  FROM  DELIVERIES  PAYLOAD\n"
               " 3  -       -              -  two\\x0alines\\x5c\n");
    t_broker_stop(&b);
}

/* Dead letters go back for another try: published anew to the queue, acked in the
 * dead-letter queue. A refusing destination gets nothing and the source keeps them. */
static void
test_move_back_from_dlq(void)
{
    struct t_broker b;
    uint64_t ids[2];
    struct cli_run r;

    t_broker_start(&b, NULL);
    make_dead_letters(&b, ids);
    cli_expect(RUN(b.port, "move", "jobs.dlq", "jobs", "-n", "1"), 0,
               "moved 1 message from jobs.dlq to jobs\n");
    T_EQ_U64(cli_stat(&b, "jobs.dlq", "ready"), 1);
    T_EQ_U64(cli_stat(&b, "jobs.dlq", "acked"), 1);
    cli_expect(RUN(b.port, "move", "jobs.dlq", "jobs", "--json"), 0, "{\"moved\":1}\n");
    cli_expect(RUN(b.port, "move", "jobs.dlq", "jobs"), 0,
               "moved 0 messages from jobs.dlq to jobs\n");
    T_EQ_U64(cli_stat(&b, "jobs.dlq", "ready"), 0);
    T_EQ_U64(cli_stat(&b, "jobs.dlq", "inflight"), 0);
    /* fresh messages: no dead-letter info, deliveries from the start */
    cli_expect(RUN(b.port, "consume", "jobs", "-n", "5", "--json"), 0,
               "{\"id\":3,\"deliveries\":1,\"payload\":\"bad input\"}\n"
               "{\"id\":4,\"deliveries\":1,\"payload\":\"poison\"}\n");
    /* a destination that refuses: the batch goes back to the source at once */
    cli_expect(RUN(b.port, "declare", "full", "--max-messages", "1"), 0,
               "declared full (created)\n");
    cli_expect(RUN(b.port, "publish", "full", "occupant"), 0,
               "published 1 message to full (id 5)\n");
    cli_expect(RUN_IN(b.port, "a\nb\nc\n", "publish", "src", "-"), 0,
               "published 3 messages to src (first id 6)\n");
    r = RUN(b.port, "move", "src", "full");
    T_EQ_INT(r.rc, 1);
    T_EQ_STR(r.out, "");
    T_ASSERT(strncmp(r.err, "slabmq: queue full is full", 26) == 0);
    T_ASSERT(strstr(r.err, "(0 messages moved before; the last batch was returned to src") != NULL);
    cli_run_free(&r);
    T_EQ_U64(cli_stat(&b, "src", "ready"), 3);
    T_EQ_U64(cli_stat(&b, "src", "inflight"), 0);
    T_EQ_U64(cli_stat(&b, "full", "ready"), 1);
    cli_expect(RUN(b.port, "move", "missing-src", "dst"), 0,
               "moved 0 messages from missing-src to dst\n"); /* FETCH creates queues */
    t_broker_stop(&b);
}

static void
test_peek_skip_pages(void)
{
    struct t_broker b;
    char *in = malloc(25 * 4 + 1);
    char want[3][64];

    T_ASSERT(in != NULL);
    in[0] = '\0';
    for (int i = 0; i < 25; i++)
        sprintf(in + strlen(in), "m%02d\n", i);
    for (int p = 0; p < 3; p++) {
        want[p][0] = '\0';
        for (int i = p * 10; i < 25 && i < p * 10 + 10; i++)
            sprintf(want[p] + strlen(want[p]), "m%02d\n", i);
    }
    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, in, "publish", "pages", "-"), 0,
               "published 25 messages to pages (first id 1)\n");
    cli_expect(RUN(b.port, "peek", "pages", "-n", "10"), 0, want[0]);
    cli_expect(RUN(b.port, "peek", "pages", "-n", "10", "--skip", "10"), 0, want[1]);
    cli_expect(RUN(b.port, "peek", "pages", "-n", "10", "--skip", "20"), 0, want[2]);
    cli_expect(RUN(b.port, "peek", "pages", "--skip", "25"), 0, "");
    cli_expect(RUN(b.port, "peek", "pages", "-n", "1", "--skip", "24", "--json"), 0,
               "{\"id\":25,\"deliveries\":0,\"payload\":\"m24\"}\n");
    T_EQ_U64(cli_stat(&b, "pages", "ready"), 25);
    free(in);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* subscribe                                                                                 */

/* -n N takes exactly N, never more: a queue with max_deliveries 1 would dead-letter any
 * message pushed and given back. --wait ends an idle subscription. */
static void
test_subscribe_takes_exactly_n(void)
{
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "s", "--max-deliveries", "1"), 0, "declared s (created)\n");
    cli_expect(RUN_IN(b.port, "1\n2\n3\n4\n5\n6\n", "publish", "s", "-"), 0,
               "published 6 messages to s (first id 1)\n");
    cli_expect(RUN(b.port, "subscribe", "s", "-n", "1"), 0, "1\n");
    cli_expect(RUN(b.port, "subscribe", "s", "-n", "2", "--credit", "10", "--json"), 0,
               "{\"id\":2,\"deliveries\":1,\"payload\":\"2\"}\n"
               "{\"id\":3,\"deliveries\":1,\"payload\":\"3\"}\n");
    T_EQ_U64(cli_stat(&b, "s", "delivered"), 3);
    T_EQ_U64(cli_stat(&b, "s", "acked"), 3);
    T_EQ_U64(cli_stat(&b, "s", "dead_lettered"), 0);
    T_EQ_U64(cli_stat(&b, "s", "ready"), 3);
    cli_expect(RUN(b.port, "subscribe", "s", "--wait", "1000", "--credit", "2"), 0, "4\n5\n6\n");
    T_EQ_U64(cli_stat(&b, "s", "acked"), 6);
    T_EQ_U64(cli_stat(&b, "s", "subscriptions"), 0);
    cli_expect_error(RUN(b.port, "subscribe", "s", "--wait", "200"), 4,
                     "slabmq: nothing received from s\n");
    t_broker_stop(&b);
}

/* Start the CLI in the background with stdout to a file; returns its pid. */
static pid_t
spawn_cli(int port, const char *out_path, const char *const *args)
{
    char addr[32];
    char *argv[16];
    int n = 0;
    pid_t pid;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    argv[n++] = SLABMQ_CLI_PATH;
    argv[n++] = "-s";
    argv[n++] = addr;
    for (; *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait (bounded) for pid to exit; returns its exit status, -1 if it did not exit. */
static int
reap(pid_t pid, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    int status;

    while (t_now_ms() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        t_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    T_ASSERT(f != NULL && buf != NULL);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Without -n, subscribe prints and acks as messages come, until SIGINT; then it ends the
 * subscription and exits 0. Deleting the queue ends it with exit status 1. */
static void
test_subscribe_until_sigint_or_delete(void)
{
    struct t_broker b;
    char path[96];
    char *out;
    pid_t pid;

    t_broker_start(&b, NULL);
    snprintf(path, sizeof(path), "%s/subscribe.out", b.dir);
    cli_expect(RUN(b.port, "declare", "live"), 0, "declared live (created)\n");
    pid = spawn_cli(b.port, path, (const char *const[]){"subscribe", "live", "--credit", "2",
                                                        NULL});
    wait_stat(&b, "live", "subscriptions", 1, 5000);
    cli_expect(RUN_IN(b.port, "a\nb\nc\nd\ne\n", "publish", "live", "-"), 0,
               "published 5 messages to live (first id 1)\n");
    wait_stat(&b, "live", "acked", 5, 5000);
    T_ASSERT(kill(pid, SIGINT) == 0);
    T_EQ_INT(reap(pid, 5000), 0);
    out = slurp(path);
    T_EQ_STR(out, "a\nb\nc\nd\ne\n");
    free(out);
    T_EQ_U64(cli_stat(&b, "live", "subscriptions"), 0);
    T_EQ_U64(cli_stat(&b, "live", "inflight"), 0);
    /* the queue deleted under a subscriber */
    pid = spawn_cli(b.port, path, (const char *const[]){"subscribe", "live", NULL});
    wait_stat(&b, "live", "subscriptions", 1, 5000);
    cli_expect(RUN(b.port, "delete", "live"), 0, "deleted queue live (0 messages dropped)\n");
    T_EQ_INT(reap(pid, 5000), 1);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* why                                                                                       */

/* Run why on queue: its exit status, and the first line of its output starts with first. */
static void
expect_why(const struct t_broker *b, const char *queue, int rc, const char *first,
           const char *numbers)
{
    struct cli_run r = RUN(b->port, "why", queue);
    const char *second;

    if (r.rc != rc || strncmp(r.out, first, strlen(first)) != 0)
        fprintf(stderr, "why %s: rc %d, out: %s, err: %s\n", queue, r.rc, r.out, r.err);
    T_EQ_INT(r.rc, rc);
    T_ASSERT(strncmp(r.out, first, strlen(first)) == 0);
    second = strchr(r.out, '\n');
    T_ASSERT(second != NULL);
    T_ASSERT(strncmp(second + 1, numbers, strlen(numbers)) == 0);
    T_EQ_STR(r.err, "");
    cli_run_free(&r);
}

static void
test_why_each_cause(void)
{
    struct t_broker b;
    slabmq_client *c;
    uint64_t sub;
    uint64_t ids[4];
    struct cli_run r;
    unsigned long long due = 0;
    const char *json = "{\"queue\":\"q\",\"cause\":\"delayed\",\"deliverable\":false,\"ready\":0,"
                       "\"inflight\":0,\"delayed\":1,\"waiters\":0,\"subscriptions\":0,"
                       "\"credit\":0,\"paused\":false,\"next_due_ms\":";

    t_broker_start(&b, NULL);
    c = t_client(&b);
    cli_expect_error(RUN(b.port, "why", "missing"), 1, "slabmq: no queue named missing\n");
    cli_expect(RUN(b.port, "declare", "q"), 0, "declared q (created)\n");
    expect_why(&b, "q", 4, "q is empty: no message ready, in flight or delayed\n",
               "ready=0 inflight=0 delayed=0 waiters=0 subscriptions=0 credit=0 paused=0\n");
    T_OK(c, slabmq_publish(c, "q", "one", 3, NULL));
    expect_why(&b, "q", 0, "q has 1 ready message but no consumers: no fetch is waiting and "
                           "nobody is subscribed\n",
               "ready=1 inflight=0 delayed=0 waiters=0 subscriptions=0 credit=0 paused=0\n");
    T_OK(c, slabmq_pause(c, "q", NULL));
    expect_why(&b, "q", 4, "q is paused: 1 ready message held until `slabmq resume q`\n",
               "ready=1 inflight=0 delayed=0 waiters=0 subscriptions=0 credit=0 paused=1\n");
    T_OK(c, slabmq_resume(c, "q", NULL));
    T_EQ_INT(take_all(c, "q", ids, 4), 1);
    expect_why(&b, "q", 4, "every message of q is in flight: 1 held by consumers, none ready "
                           "(each comes back if not acked within 30000 ms)\n",
               "ready=0 inflight=1 delayed=0");
    T_OK(c, slabmq_ack(c, ids[0]));
    /* a subscription without credit left: it holds its one message, one more waits */
    T_OK(c, slabmq_subscribe(c, "q", 1, &sub));
    T_OK(c, slabmq_publish(c, "q", "two", 3, NULL));
    T_OK(c, slabmq_publish(c, "q", "three", 5, NULL));
    wait_stat(&b, "q", "inflight", 1, 3000);
    expect_why(&b, "q", 0, "q has 1 ready message, but its 1 subscription has no credit left: "
                           "their consumers must ack what they hold (1 in flight) to get more\n",
               "ready=1 inflight=1 delayed=0 waiters=0 subscriptions=1 credit=0 paused=0\n");
    slabmq_client_close(c); /* the pushed message comes back */
    wait_stat(&b, "q", "inflight", 0, 3000);
    cli_expect(RUN(b.port, "purge", "q"), 0, "purged 2 messages from q\n");
    /* only delayed messages */
    cli_expect(RUN(b.port, "publish", "q", "later", "--delay", "60000"), 0,
               "published 1 message to q (id 4)\n");
    r = RUN(b.port, "why", "q");
    T_EQ_INT(r.rc, 4);
    T_ASSERT(sscanf(r.out, "q has only delayed messages: 1 delayed, the next due in %llu ms\n",
                    &due) == 1);
    T_ASSERT(due > 50000 && due <= 60000);
    T_ASSERT(strstr(r.out, "\nready=0 inflight=0 delayed=1 waiters=0 subscriptions=0 credit=0 "
                           "paused=0 next_due_ms=") != NULL);
    cli_run_free(&r);
    r = RUN(b.port, "why", "q", "--json");
    T_EQ_INT(r.rc, 4);
    T_ASSERT(strncmp(r.out, json, strlen(json)) == 0);
    T_ASSERT(strcmp(r.out + strlen(r.out) - 2, "}\n") == 0);
    cli_run_free(&r);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Usage                                                                                     */

/* Every usage error of the new options exits 2 with one line, before connecting. */
static void
test_work_queue_usage_errors(void)
{
    static const char *const cases[][10] = {
        {"publish", "q", "x", "--priority", "10", NULL},
        {"publish", "q", "x", "--delay", "-1", NULL},
        {"publish", "q", "x", "--delay", "3153600000001", NULL},
        {"publish", "q", "x", "--ttl", "3153600000001", NULL},
        {"publish", "q", "x", "--at", "9223372036854775808", NULL},
        {"publish", "q", "-", "--id", "abc", NULL},
        {"publish", "q", "--id", "abc", NULL},
        {"publish", "q", "x", "--id", "", NULL},
        {"publish", "q", "x", "--credit", "1", NULL},
        {"declare", "q", "--max-deliveries", "1000001", NULL},
        {"declare", "q", "--dead-letter", "bad name", NULL},
        {"declare", "q", "--dedup-window", "65MiB", NULL},
        {"declare", "q", "--dedup-window", "1023", NULL},
        {"declare", "q", "--overflow", "dead", NULL},
        {"declare", "q", "--delay", "5", NULL},
        {"move", "a", "a", NULL},
        {"move", "a", NULL},
        {"move", "a", "bad name", NULL},
        {"move", "a", "b", "c", NULL},
        {"subscribe", "q", "--credit", "0", NULL},
        {"subscribe", "q", "--skip", "1", NULL},
        {"peek", "q", "--skip", "x", NULL},
        {"dlq", "q", "-n", "257", NULL},
        {"dlq", "q", "--wait", "5", NULL},
        {"why", "q", "extra", NULL},
        {"why", "q", "-n", "1", NULL},
    };
    char id[140];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_run r = cli_run_argv(1, NULL, 0, cases[i]); /* port 1: nothing listens */
        if (r.rc != 2)
            fprintf(stderr, "case %zu: stderr %s", i, r.err);
        T_EQ_INT(r.rc, 2);
        T_EQ_STR(r.out, "");
        T_ASSERT(strncmp(r.err, "slabmq: ", 8) == 0);
        T_ASSERT(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
        cli_run_free(&r);
    }
    memset(id, 'i', 129);
    id[129] = '\0';
    cli_expect_error(RUN(1, "publish", "q", "x", "--id", id), 2,
                     "slabmq: invalid --id: expected 1 to 128 bytes (see 'slabmq --help')\n");
    cli_expect_error(RUN(1, "move", "a", "a"), 2,
                     "slabmq: move needs two different queues (see 'slabmq help move')\n");
    cli_expect_error(RUN(1, "publish", "q", "-", "--id", "k"), 2,
                     "slabmq: --id names one message: give it as MESSAGE, not on stdin "
                     "(see 'slabmq help publish')\n");
    cli_expect_error(RUN(1, "declare", "q", "--priority", "1"), 2,
                     "slabmq: declare does not take --priority (see 'slabmq help declare')\n");
    cli_expect_error(RUN(1, "publish", "q", "x", "--priority", "10"), 2,
                     "slabmq: invalid --priority '10': expected a number from 0 to 9 "
                     "(see 'slabmq --help')\n");
}

static const struct t_case cases[] = {
    T_CASE(test_declare_work_queue_options),
    T_CASE(test_publish_options),
    T_CASE(test_publish_duplicate),
    T_CASE(test_dlq_lists_reasons),
    T_CASE(test_move_back_from_dlq),
    T_CASE(test_peek_skip_pages),
    T_CASE(test_subscribe_takes_exactly_n),
    T_CASE(test_subscribe_until_sigint_or_delete),
    T_CASE(test_why_each_cause),
    T_CASE(test_work_queue_usage_errors),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
