/* SPDX-License-Identifier: MIT */
/* The slabmq CLI (tools/) run as a program against a real slabmqd: exact output of every
 * command in text and JSON, round trips of stdin lines through publish and consume, acks,
 * exit codes and error lines. Batching is checked on the wire: a relay process between the
 * CLI and the broker counts the request frames, so no test depends on timing. Facts about
 * the broker's state are read back through libslabmq, independently of the CLI. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "slabmq.h"
#include "t.h"

/* The value on the "name value" line of text stats output, or -1 if there is none. */
static long long
text_stat(const char *out, const char *name)
{
    size_t n = strlen(name);

    for (const char *l = out; *l; l++) {
        if ((l == out || l[-1] == '\n') && strncmp(l, name, n) == 0 && l[n] == ' ')
            return strtoll(l + n, NULL, 10);
    }
    return -1;
}

/* Assert that every line of text stats output is a name, spaces and a number (for
 * dead_letter, a queue name or ""), with the values in one column two spaces after the
 * longest name. */
static void
expect_aligned(const char *out)
{
    const char *l = out;
    size_t longest = 0;
    size_t column = 0;

    T_ASSERT(*out != '\0');
    while (*l) {
        size_t name = strcspn(l, " \n");
        size_t value = name + strspn(l + name, " ");
        const char *end = strchr(l, '\n');
        T_ASSERT(end != NULL && name > 0);
        if (name == 11 && strncmp(l, "dead_letter", 11) == 0) {
            T_ASSERT(l[value] != ' ' && l[value] != '\n');
            T_EQ_U64(strcspn(l + value, " \n"), (size_t)(end - l) - value);
        } else {
            T_ASSERT(l[value] >= '0' && l[value] <= '9');
            T_EQ_U64(strspn(l + value, "0123456789"), (size_t)(end - l) - value);
        }
        if (column == 0)
            column = value;
        T_EQ_U64(value, column);
        longest = name > longest ? name : longest;
        l = end + 1;
    }
    T_EQ_U64(column, longest + 2);
}

/* Assert that text stats output has one line per broker statistic, every name the library
 * reads included (slab.<N>.* among them), in the library's order. */
static void
expect_every_stat(const struct t_broker *b, const char *out)
{
    slabmq_client *c = t_client(b);
    slabmq_stats *s;
    const char *l = out;
    size_t n;

    T_OK(c, slabmq_stats_get(c, NULL, &s));
    n = slabmq_stats_count(s);
    T_ASSERT(n > 0);
    for (size_t i = 0; i < n; i++) {
        const char *name = slabmq_stats_name(s, i);
        size_t len = strlen(name);
        T_ASSERT(strncmp(l, name, len) == 0 && l[len] == ' ');
        l = strchr(l, '\n') + 1;
    }
    T_EQ_STR(l, "");
    T_ASSERT(strstr(out, "\nslab_page_size ") && strstr(out, "\nmemory_used "));
    T_ASSERT(strstr(out, ".chunk_size "));
    slabmq_stats_free(s);
    slabmq_client_close(c);
}

/* A port with nothing listening on it: bound once by us, then released. */
static int
free_port(void)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    T_ASSERT(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    T_ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* A listening socket on 127.0.0.1 that nobody accepts from; *port receives its port. */
static int
listen_loopback(int *port)
{
    struct sockaddr_in sa = {0};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    T_ASSERT(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    T_ASSERT(listen(fd, 16) == 0);
    T_ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* "message-00000\n" ... for n lines; the caller frees it. */
static char *
numbered_lines(int n)
{
    char *s = malloc((size_t)n * 16 + 1);
    size_t len = 0;

    T_ASSERT(s != NULL);
    s[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "message-%05d\n", i);
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* A frame-counting relay                                                                    */

struct relay {
    pid_t pid;  /* the relay process */
    int port;   /* where the CLI connects instead of the broker */
    int result; /* read end of a pipe; the relay writes its frame count there at the end */
};

/* Bytes of the client-to-broker stream, cut into frames by their 4-byte length headers. */
struct frame_counter {
    uint8_t hdr[4];
    size_t have;   /* header bytes seen */
    uint64_t skip; /* body bytes still to pass */
    long frames;   /* headers completed */
};

static void
count_frames(struct frame_counter *fc, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t k;
        if (fc->skip == 0) {
            fc->hdr[fc->have++] = *p++;
            n--;
            if (fc->have == 4) {
                fc->skip = (uint64_t)fc->hdr[0] << 24 | (uint64_t)fc->hdr[1] << 16
                           | (uint64_t)fc->hdr[2] << 8 | fc->hdr[3];
                fc->have = 0;
                fc->frames++;
            }
            continue;
        }
        k = n < fc->skip ? n : (size_t)fc->skip;
        fc->skip -= k;
        p += k;
        n -= k;
    }
}

static int
send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The relay process: one connection, both ways, until the CLI hangs up. It must not use
 * T_ASSERT: t_fail would kill the parent's broker from here. */
static void
relay_main(int lfd, int broker_port, int wfd)
{
    struct pollfd p[2] = {{lfd, POLLIN, 0}, {-1, POLLIN, 0}};
    struct frame_counter fc = {{0}, 0, 0, 0};
    uint8_t buf[65536];
    struct sockaddr_in sa = {0};

    if (poll(p, 1, 20000) != 1 || (p[0].fd = accept(lfd, NULL, NULL)) < 0)
        _exit(1);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)broker_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p[1].fd = socket(AF_INET, SOCK_STREAM, 0);
    if (p[1].fd < 0 || connect(p[1].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        _exit(1);
    while (poll(p, 2, 30000) > 0) {
        int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
        ssize_t n = recv(p[from].fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        if (from == 0)
            count_frames(&fc, buf, (size_t)n);
        if (send_all(p[1 - from].fd, buf, (size_t)n))
            break;
    }
    _exit(write(wfd, &fc.frames, sizeof(fc.frames)) == sizeof(fc.frames) ? 0 : 1);
}

static void
relay_start(struct relay *r, int broker_port)
{
    int lfd = listen_loopback(&r->port);
    int fds[2];

    T_ASSERT(pipe(fds) == 0);
    r->pid = fork();
    T_ASSERT(r->pid >= 0);
    if (r->pid == 0) {
        close(fds[0]);
        relay_main(lfd, broker_port, fds[1]);
    }
    close(lfd);
    close(fds[1]);
    r->result = fds[0];
}

/* Wait for the relay to see the CLI hang up; returns the request frames it carried. */
static long
relay_frames(struct relay *r)
{
    struct pollfd p = {r->result, POLLIN, 0};
    long frames = -1;
    int status = 0;

    T_ASSERT(poll(&p, 1, 10000) == 1);
    T_EQ_INT(read(r->result, &frames, sizeof(frames)), sizeof(frames));
    close(r->result);
    T_EQ_INT(waitpid(r->pid, &status, 0), r->pid);
    T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return frames;
}

/* ---------------------------------------------------------------------------------------- */
/* Publish and consume                                                                       */

static void
test_publish_lines_roundtrip(void)
{
    /* An empty line, spaces, a tab, UTF-8, and a last line without its newline. */
    static const char in[] = "first line\n\n  spaced  \ntab\there\nh\xc3\xa9llo\nno newline";
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, in, "publish", "lines", "-"), 0,
               "published 6 messages to lines (first id 1)\n");
    T_EQ_U64(cli_stat(&b, "lines", "ready"), 6);
    T_EQ_U64(cli_stat(&b, "lines", "bytes"), strlen(in) - 5);
    r = RUN(b.port, "consume", "lines", "-n", "6");
    T_EQ_INT(r.rc, 0);
    T_EQ_U64(r.out_len, strlen(in) + 1);
    T_EQ_MEM(r.out, in, strlen(in));
    T_EQ_INT(r.out[strlen(in)], '\n');
    T_EQ_STR(r.err, "");
    cli_run_free(&r);
    T_EQ_U64(cli_stat(&b, "lines", "ready"), 0);
    t_broker_stop(&b);
}

static void
test_publish_single_and_empty_input(void)
{
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "publish", "one", "hello world"), 0,
               "published 1 message to one (id 1)\n");
    cli_expect(RUN(b.port, "publish", "one", "second", "--json"), 0,
               "{\"published\":1,\"first_id\":2}\n");
    cli_expect(RUN(b.port, "publish", "one", "--", "-1"), 0, "published 1 message to one (id 3)\n");
    cli_expect(RUN(b.port, "consume", "one", "-n", "3"), 0, "hello world\nsecond\n-1\n");
    /* Empty input publishes nothing and creates nothing. */
    cli_expect(RUN(b.port, "publish", "none", "-"), 0, "published 0 messages to none\n");
    cli_expect(RUN(b.port, "--json", "publish", "none", "-"), 0,
               "{\"published\":0,\"first_id\":null}\n");
    T_EQ_U64(cli_stat(&b, NULL, "queues"), 1);
    t_broker_stop(&b);
}

static void
test_consume_acks(void)
{
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, "a\nb\nc\nd\n", "publish", "acks", "-"), 0,
               "published 4 messages to acks (first id 1)\n");
    cli_expect(RUN(b.port, "consume", "acks"), 0, "a\n"); /* -n defaults to 1 */
    cli_expect(RUN(b.port, "consume", "acks", "-n", "2"), 0, "b\nc\n");
    cli_expect(RUN(b.port, "consume", "acks", "-n", "50"), 0, "d\n"); /* stops when empty */
    cli_expect_error(RUN(b.port, "consume", "acks", "--wait", "100"), 4,
                 "slabmq: nothing to consume in acks\n");
    cli_expect_error(RUN(b.port, "consume", "acks", "--json"), 4,
                     "slabmq: nothing to consume in acks\n");
    r = RUN(b.port, "stats", "acks");
    T_EQ_INT(r.rc, 0);
    T_EQ_INT(text_stat(r.out, "acked"), 4);
    T_EQ_INT(text_stat(r.out, "delivered"), 4);
    T_EQ_INT(text_stat(r.out, "redelivered"), 0);
    T_EQ_INT(text_stat(r.out, "inflight"), 0);
    T_EQ_INT(text_stat(r.out, "ready"), 0);
    cli_run_free(&r);
    t_broker_stop(&b);
}

static void
test_consume_waits_for_message(void)
{
    struct t_broker b;
    int status = 0;
    pid_t pid;

    t_broker_start(&b, NULL);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) { /* a late producer; no T_ macros in a child */
        slabmq_options o = SLABMQ_OPTIONS_INIT;
        slabmq_client *c;
        t_sleep_ms(1000);
        o.port = (uint16_t)b.port;
        if (slabmq_client_connect(&o, &c) || slabmq_publish(c, "late", "news", 4, NULL))
            _exit(1);
        slabmq_client_close(c);
        _exit(0);
    }
    cli_expect(RUN(b.port, "consume", "late", "--wait", "20000"), 0, "news\n");
    T_EQ_INT(waitpid(pid, &status, 0), pid);
    T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    T_EQ_U64(cli_stat(&b, "late", "acked"), 1);
    t_broker_stop(&b);
}

/* Output that cannot be written must leave the messages unacked, for redelivery. */
static void
test_consume_unacked_when_output_fails(void)
{
    struct t_broker b;
    char addr[32];
    char *argv[] = {"/bin/sh", "-c", "exec \"$0\" -s \"$1\" consume keep -n 3 >/dev/full",
                    SLABMQ_CLI_PATH, addr, NULL};
    char *err;
    int rc;

    t_broker_start(&b, NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
    cli_expect(RUN_IN(b.port, "x\ny\nz\n", "publish", "keep", "-"), 0,
               "published 3 messages to keep (first id 1)\n");
    rc = t_run(argv, NULL, 0, NULL, NULL, &err, RUN_MS);
    T_EQ_INT(rc, 1);
    T_ASSERT(strncmp(err, "slabmq: cannot write output: ", 29) == 0);
    T_ASSERT(strstr(err, "3 messages left unacknowledged") != NULL);
    free(err);
    T_EQ_U64(cli_stat(&b, "keep", "acked"), 0);
    T_EQ_U64(cli_stat(&b, "keep", "delivered"), 3);
    /* The broker requeues them when it notices the closed connection. */
    for (int i = 0; i < 200 && cli_stat(&b, "keep", "ready") != 3; i++)
        t_sleep_ms(10);
    T_EQ_U64(cli_stat(&b, "keep", "ready"), 3);
    cli_expect(RUN(b.port, "consume", "keep", "-n", "3"), 0, "x\ny\nz\n");
    t_broker_stop(&b);
}

static void
test_peek_does_not_consume(void)
{
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, "p1\np2\np3\n", "publish", "pk", "-"), 0,
               "published 3 messages to pk (first id 1)\n");
    cli_expect(RUN(b.port, "peek", "pk"), 0, "p1\np2\np3\n");
    cli_expect(RUN(b.port, "peek", "pk", "-n", "2"), 0, "p1\np2\n");
    cli_expect(RUN(b.port, "peek", "pk", "-n", "256"), 0, "p1\np2\np3\n");
    T_EQ_U64(cli_stat(&b, "pk", "ready"), 3);
    T_EQ_U64(cli_stat(&b, "pk", "delivered"), 0);
    cli_expect(RUN(b.port, "consume", "pk", "-n", "3", "--json"), 0,
               "{\"id\":1,\"deliveries\":1,\"payload\":\"p1\"}\n"
               "{\"id\":2,\"deliveries\":1,\"payload\":\"p2\"}\n"
               "{\"id\":3,\"deliveries\":1,\"payload\":\"p3\"}\n");
    cli_expect(RUN(b.port, "peek", "pk"), 0, ""); /* empty is not an error for peek */
    cli_expect_error(RUN(b.port, "peek", "missing"), 1, "slabmq: no queue named missing\n");
    t_broker_stop(&b);
}

/* Escapes, UTF-8 kept as is, and byte strings that are not UTF-8 (invalid lead byte,
 * overlong form, surrogate, past U+10FFFF) as base64. */
static void
test_json_messages(void)
{
    static const char in[] = "say \"hi\"\nback\\slash\ttab\n\x01\x1f"
                             "ctl\nh\xc3\xa9llo \xe2\x82\xac\n"
                             "\xff\xfe\n\xc0\xaf\n\xed\xa0\x80\n\xf4\x90\x80\x80\n\n";
    static const char want[] =
        "{\"id\":1,\"deliveries\":0,\"payload\":\"say \\\"hi\\\"\"}\n"
        "{\"id\":2,\"deliveries\":0,\"payload\":\"back\\\\slash\\ttab\"}\n"
        "{\"id\":3,\"deliveries\":0,\"payload\":\"\\u0001\\u001fctl\"}\n"
        "{\"id\":4,\"deliveries\":0,\"payload\":\"h\xc3\xa9llo \xe2\x82\xac\"}\n"
        "{\"id\":5,\"deliveries\":0,\"payload_base64\":\"//4=\"}\n"
        "{\"id\":6,\"deliveries\":0,\"payload_base64\":\"wK8=\"}\n"
        "{\"id\":7,\"deliveries\":0,\"payload_base64\":\"7aCA\"}\n"
        "{\"id\":8,\"deliveries\":0,\"payload_base64\":\"9JCAgA==\"}\n"
        "{\"id\":9,\"deliveries\":0,\"payload\":\"\"}\n";
    char consumed[sizeof(want)];
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, in, "publish", "js", "-", "--json"), 0,
               "{\"published\":9,\"first_id\":1}\n");
    cli_expect(RUN(b.port, "peek", "js", "--json"), 0, want);
    /* Consumed, the same objects say "deliveries":1. */
    strcpy(consumed, want);
    for (char *at = consumed; (at = strstr(at, "\"deliveries\":0")) != NULL; at++)
        at[13] = '1';
    cli_expect(RUN(b.port, "-j", "consume", "js", "-n", "9"), 0, consumed);
    t_broker_stop(&b);
}

static void
test_publish_5000_lines_batched(void)
{
    char *in = numbered_lines(5000);
    struct t_broker b;
    struct relay rl;
    struct cli_run r;

    t_broker_start(&b, NULL);
    relay_start(&rl, b.port);
    cli_expect(RUN_IN(rl.port, in, "publish", "bulk", "-", "--json"), 0,
               "{\"published\":5000,\"first_id\":1}\n");
    /* HELLO plus a few batches; one request per line would be 5001. */
    T_ASSERT(relay_frames(&rl) <= 11);
    T_EQ_U64(cli_stat(&b, "bulk", "published"), 5000);
    T_EQ_U64(cli_stat(&b, "bulk", "ready"), 5000);
    T_EQ_U64(cli_stat(&b, NULL, "next_id"), 5001);
    relay_start(&rl, b.port);
    r = RUN(rl.port, "consume", "bulk", "-n", "5000");
    /* HELLO plus a FETCH and an ACK per batch of up to 1000. */
    T_ASSERT(relay_frames(&rl) <= 21);
    T_EQ_INT(r.rc, 0);
    T_EQ_U64(r.out_len, strlen(in));
    T_EQ_STR(r.out, in);
    cli_run_free(&r);
    T_EQ_U64(cli_stat(&b, "bulk", "acked"), 5000);
    T_EQ_U64(cli_stat(&b, "bulk", "ready"), 0);
    free(in);
    t_broker_stop(&b);
}

/* Batches must fit the broker's frames, which shrink with --max-message-size. */
static void
test_publish_respects_small_frames(void)
{
    char line[1001];
    char *in = malloc(50 * sizeof(line) + 1);
    char *big = malloc(6000);
    struct t_broker b;
    struct cli_run r;

    T_ASSERT(in && big);
    in[0] = '\0';
    for (int i = 0; i < 50; i++) {
        snprintf(line, sizeof(line), "%04d%0996d", i, 0);
        strcat(strcat(in, line), "\n");
    }
    t_broker_start(&b, "--max-message-size", "4K", NULL);
    cli_expect(RUN_IN(b.port, in, "publish", "small", "-"), 0,
               "published 50 messages to small (first id 1)\n");
    cli_expect(RUN(b.port, "consume", "small", "-n", "50"), 0, in);
    snprintf(big, 6000, "a\nb\n%05000d\nc\n", 0);
    r = RUN_IN(b.port, big, "publish", "over", "-");
    cli_expect_error(r, 1, "slabmq: line 3 is 5000 bytes, over the broker's maximum message size "
                       "of 4096 bytes; the 2 lines before it were published\n");
    T_EQ_U64(cli_stat(&b, "over", "ready"), 2);
    free(in);
    free(big);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Queues, stats, admin                                                                      */

static void
test_queues_table_and_json(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *batch;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "queues"), 0, "NAME  READY  INFLIGHT\n");
    cli_expect(RUN(b.port, "queues", "--json"), 0, "[]\n");
    cli_expect(RUN(b.port, "publish", "alpha", "one"), 0, "published 1 message to alpha (id 1)\n");
    cli_expect(RUN(b.port, "publish", "alpha", "two"), 0, "published 1 message to alpha (id 2)\n");
    cli_expect(RUN(b.port, "declare", "b.long-queue:name"), 0,
               "declared b.long-queue:name (created)\n");
    c = t_client(&b); /* hold one message in flight while the CLI looks */
    T_OK(c, slabmq_fetch(c, "alpha", 1, 0, &batch));
    T_EQ_INT(slabmq_batch_count(batch), 1);
    slabmq_batch_free(batch);
    cli_expect(RUN(b.port, "queues"), 0,
               "NAME               READY  INFLIGHT\n"
               "alpha                  1         1\n"
               "b.long-queue:name      0         0\n");
    cli_expect(RUN(b.port, "queues", "--json"), 0,
               "[{\"name\":\"alpha\",\"ready\":1,\"inflight\":1},"
               "{\"name\":\"b.long-queue:name\",\"ready\":0,\"inflight\":0}]\n");
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_stats_queue_and_broker(void)
{
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, "1\n2\n3\n", "publish", "st", "-"), 0,
               "published 3 messages to st (first id 1)\n");
    r = RUN(b.port, "stats", "st");
    T_EQ_INT(r.rc, 0);
    expect_aligned(r.out);
    T_EQ_INT(text_stat(r.out, "ready"), 3);
    T_EQ_INT(text_stat(r.out, "inflight"), 0);
    T_EQ_INT(text_stat(r.out, "published"), 3);
    T_EQ_INT(text_stat(r.out, "visibility_ms"), 30000);
    T_ASSERT(strstr(r.out, "\ndead_letter ") != NULL);
    T_ASSERT(strstr(r.out, "  st.dlq\n") != NULL); /* the str statistic, as it is */
    cli_run_free(&r);
    r = RUN(b.port, "stats", "st", "--json");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strncmp(r.out, "{\"ready\":3,\"inflight\":0,", 24) == 0);
    T_ASSERT(strstr(r.out, ",\"published\":3,") != NULL);
    T_ASSERT(strstr(r.out, "\"dead_letter\":\"st.dlq\"") != NULL);
    T_ASSERT(strcmp(r.out + r.out_len - 2, "}\n") == 0);
    cli_run_free(&r);
    r = RUN(b.port, "stats");
    T_EQ_INT(r.rc, 0);
    expect_aligned(r.out);
    T_EQ_INT(text_stat(r.out, "queues"), 1);
    T_EQ_INT(text_stat(r.out, "next_id"), 4);
    T_ASSERT(text_stat(r.out, "uptime_ms") >= 0);
    expect_every_stat(&b, r.out);
    cli_run_free(&r);
    r = RUN(b.port, "--json", "stats");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(r.out[0] == '{' && strstr(r.out, "\"queues\":1,") && strstr(r.out, "\"next_id\":4"));
    cli_run_free(&r);
    cli_expect_error(RUN(b.port, "stats", "missing"), 1, "slabmq: no queue named missing\n");
    t_broker_stop(&b);
}

static void
test_pause_and_resume(void)
{
    struct t_broker b;

    t_broker_start(&b, NULL);
    cli_expect_error(RUN(b.port, "pause", "pr"), 1, "slabmq: no queue named pr\n");
    cli_expect(RUN(b.port, "publish", "pr", "held"), 0, "published 1 message to pr (id 1)\n");
    cli_expect(RUN(b.port, "pause", "pr"), 0, "paused pr\n");
    cli_expect(RUN(b.port, "pause", "pr"), 0, "paused pr (it already was)\n");
    T_EQ_U64(cli_stat(&b, "pr", "paused"), 1);
    cli_expect_error(RUN(b.port, "consume", "pr", "--wait", "100"), 4,
                     "slabmq: nothing to consume in pr\n");
    cli_expect(RUN(b.port, "resume", "pr", "--json"), 0,
               "{\"queue\":\"pr\",\"paused\":false,\"was_paused\":true}\n");
    cli_expect(RUN(b.port, "consume", "pr"), 0, "held\n");
    cli_expect(RUN(b.port, "resume", "pr"), 0, "resumed pr (it was not paused)\n");
    t_broker_stop(&b);
}

static void
test_purge_and_delete(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *batch;

    t_broker_start(&b, NULL);
    cli_expect(RUN_IN(b.port, "1\n2\n3\n4\n", "publish", "pd", "-"), 0,
               "published 4 messages to pd (first id 1)\n");
    cli_expect(RUN(b.port, "purge", "pd"), 0, "purged 4 messages from pd\n");
    T_EQ_U64(cli_stat(&b, "pd", "ready"), 0);
    cli_expect(RUN_IN(b.port, "5\n6\n7\n", "publish", "pd", "-"), 0,
               "published 3 messages to pd (first id 5)\n");
    c = t_client(&b); /* one in flight: purge keeps it, delete drops it */
    T_OK(c, slabmq_fetch(c, "pd", 1, 0, &batch));
    slabmq_batch_free(batch);
    cli_expect(RUN(b.port, "purge", "pd", "--json"), 0, "{\"purged\":2}\n");
    T_EQ_U64(cli_stat(&b, "pd", "inflight"), 1);
    cli_expect(RUN(b.port, "publish", "pd", "8"), 0, "published 1 message to pd (id 8)\n");
    cli_expect(RUN(b.port, "delete", "pd"), 0, "deleted queue pd (2 messages dropped)\n");
    cli_expect_error(RUN(b.port, "delete", "pd"), 1, "slabmq: no queue named pd\n");
    cli_expect_error(RUN(b.port, "purge", "pd"), 1, "slabmq: no queue named pd\n");
    cli_expect(RUN(b.port, "publish", "pd2", "x"), 0, "published 1 message to pd2 (id 9)\n");
    cli_expect(RUN(b.port, "purge", "pd2"), 0, "purged 1 message from pd2\n");
    cli_expect(RUN(b.port, "publish", "pd2", "y"), 0, "published 1 message to pd2 (id 10)\n");
    cli_expect(RUN(b.port, "delete", "pd2"), 0, "deleted queue pd2 (1 message dropped)\n");
    cli_expect(RUN(b.port, "publish", "pd3", "z"), 0, "published 1 message to pd3 (id 11)\n");
    cli_expect(RUN(b.port, "delete", "pd3", "--json"), 0, "{\"dropped\":1}\n");
    cli_expect(RUN(b.port, "queues", "--json"), 0, "[]\n");
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_declare_visibility(void)
{
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "vq", "--visibility", "1500"), 0, "declared vq (created)\n");
    T_EQ_U64(cli_stat(&b, "vq", "visibility_ms"), 1500);
    cli_expect(RUN(b.port, "declare", "vq", "--json"), 0, "{\"queue\":\"vq\",\"created\":false}\n");
    cli_expect(RUN(b.port, "declare", "vq", "--visibility", "2500"), 0, "declared vq (updated)\n");
    T_EQ_U64(cli_stat(&b, "vq", "visibility_ms"), 2500);
    cli_expect(RUN(b.port, "--json", "declare", "new"), 0,
               "{\"queue\":\"new\",\"created\":true}\n");
    /* Over the broker's week: the broker says no, with its reason. */
    r = RUN(b.port, "declare", "vq", "--visibility", "700000000");
    T_EQ_INT(r.rc, 1);
    T_ASSERT(strncmp(r.err, "slabmq: visibility_ms must be between", 37) == 0);
    cli_run_free(&r);
    T_EQ_U64(cli_stat(&b, "vq", "visibility_ms"), 2500);
    t_broker_stop(&b);
}

/* Limits set by declare, read back through `stats QUEUE --json`, with SIZE units. */
static void
test_declare_limits(void)
{
    static const struct {
        const char *arg;
        uint64_t bytes;
    } sizes[] = {{"65536", 65536},          {"64KiB", 65536},       {"64k", 65536},
                 {"10MiB", 10u << 20},      {"10M", 10u << 20},     {"10MB", 10000000},
                 {"1GiB", 1u << 30},        {"1g", 1u << 30},       {"2GB", 2000000000},
                 {"3KB", 3000},             {"512B", 512}};
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "lim", "--max-messages", "100", "--max-bytes", "64KiB",
               "--overflow", "reject"),
               0, "declared lim (created)\n");
    r = RUN(b.port, "stats", "lim", "--json");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, ",\"max_messages\":100,") != NULL);
    T_ASSERT(strstr(r.out, ",\"max_bytes\":65536,") != NULL);
    T_ASSERT(strstr(r.out, ",\"overflow_drop_oldest\":0,") != NULL);
    cli_run_free(&r);
    /* Settings left out stay; the ones given change. */
    cli_expect(RUN(b.port, "--json", "declare", "lim", "--overflow", "drop-oldest"), 0,
               "{\"queue\":\"lim\",\"created\":false}\n");
    r = RUN(b.port, "stats", "lim", "--json");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, ",\"max_messages\":100,\"max_bytes\":65536,"
                           "\"overflow_drop_oldest\":1,") != NULL);
    cli_run_free(&r);
    cli_expect(RUN(b.port, "declare", "lim", "--max-messages", "7", "--visibility", "900"), 0,
               "declared lim (updated)\n");
    T_EQ_U64(cli_stat(&b, "lim", "max_messages"), 7);
    T_EQ_U64(cli_stat(&b, "lim", "max_bytes"), 65536);
    T_EQ_U64(cli_stat(&b, "lim", "overflow_drop_oldest"), 1);
    T_EQ_U64(cli_stat(&b, "lim", "visibility_ms"), 900);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cli_expect(RUN(b.port, "declare", "sz", "--max-bytes", sizes[i].arg), 0,
                   i ? "declared sz (updated)\n" : "declared sz (created)\n");
        T_EQ_U64(cli_stat(&b, "sz", "max_bytes"), sizes[i].bytes);
    }
    /* A new queue without settings has no limits and rejects. */
    cli_expect(RUN(b.port, "declare", "plain"), 0, "declared plain (created)\n");
    T_EQ_U64(cli_stat(&b, "plain", "max_messages"), 0);
    T_EQ_U64(cli_stat(&b, "plain", "max_bytes"), 0);
    T_EQ_U64(cli_stat(&b, "plain", "overflow_drop_oldest"), 0);
    t_broker_stop(&b);
}

/* At a reject limit the publish fails with exit status 1 and the broker's "full" line, and
 * nothing is stored. */
static void
test_publish_over_reject_limit(void)
{
    struct t_broker b;
    struct cli_run r;

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "rq", "--max-messages", "2"), 0, "declared rq (created)\n");
    cli_expect(RUN(b.port, "publish", "rq", "one"), 0, "published 1 message to rq (id 1)\n");
    cli_expect(RUN(b.port, "publish", "rq", "two"), 0, "published 1 message to rq (id 2)\n");
    cli_expect_error(RUN(b.port, "publish", "rq", "three"), 1,
                     "slabmq: queue rq is full: it holds 2 messages of 6 bytes (max_messages 2)\n");
    T_EQ_U64(cli_stat(&b, "rq", "ready"), 2);
    T_EQ_U64(cli_stat(&b, "rq", "rejected"), 1);
    cli_expect(RUN(b.port, "peek", "rq"), 0, "one\ntwo\n");
    /* Lines from stdin: the batch is refused whole, and the message says none went in. */
    r = RUN_IN(b.port, "x\ny\n", "publish", "rq", "-");
    T_EQ_INT(r.rc, 1);
    T_EQ_STR(r.out, "");
    T_ASSERT(strncmp(r.err, "slabmq: queue rq is full", 24) == 0);
    T_ASSERT(strstr(r.err, "(the first 0 lines were published)\n") != NULL);
    cli_run_free(&r);
    T_EQ_U64(cli_stat(&b, "rq", "ready"), 2);
    /* A byte limit, explicitly rejecting. */
    cli_expect(RUN(b.port, "declare", "bq", "--max-bytes", "10", "--overflow", "reject"), 0,
               "declared bq (created)\n");
    cli_expect(RUN(b.port, "publish", "bq", "12345678"), 0, "published 1 message to bq (id 3)\n");
    r = RUN(b.port, "publish", "bq", "abc");
    T_EQ_INT(r.rc, 1);
    T_EQ_STR(r.out, "");
    T_ASSERT(strncmp(r.err, "slabmq: queue bq is full: ", 26) == 0);
    T_ASSERT(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
    cli_run_free(&r);
    cli_expect(RUN(b.port, "publish", "bq", "ab"), 0, "published 1 message to bq (id 4)\n");
    T_EQ_U64(cli_stat(&b, "bq", "bytes"), 10);
    t_broker_stop(&b);
}

/* drop-oldest makes room by discarding from the head: the newest messages stay. */
static void
test_drop_oldest_keeps_newest(void)
{
    static const char *const bodies[] = {"aaaa", "bbbb", "cccc"};
    struct t_broker b;
    char msg[8];

    t_broker_start(&b, NULL);
    cli_expect(RUN(b.port, "declare", "dq", "--max-messages", "3", "--overflow", "drop-oldest"), 0,
               "declared dq (created)\n");
    for (int i = 1; i <= 5; i++) {
        char want[64];
        snprintf(msg, sizeof(msg), "m%d", i);
        snprintf(want, sizeof(want), "published 1 message to dq (id %d)\n", i);
        cli_expect(RUN(b.port, "publish", "dq", msg), 0, want);
    }
    cli_expect(RUN(b.port, "peek", "dq"), 0, "m3\nm4\nm5\n");
    T_EQ_U64(cli_stat(&b, "dq", "dropped"), 2);
    T_EQ_U64(cli_stat(&b, "dq", "rejected"), 0);
    /* A batch that fits under the limit pushes out as many old ones as it needs. */
    cli_expect(RUN_IN(b.port, "m6\nm7\n", "publish", "dq", "-"), 0,
               "published 2 messages to dq (first id 6)\n");
    cli_expect(RUN(b.port, "peek", "dq"), 0, "m5\nm6\nm7\n");
    /* By bytes: room for two 4-byte messages. */
    cli_expect(RUN(b.port, "declare", "db", "--max-bytes", "8", "--overflow", "drop-oldest"), 0,
               "declared db (created)\n");
    for (int i = 0; i < 3; i++) {
        struct cli_run r = RUN(b.port, "publish", "db", bodies[i]);
        T_EQ_INT(r.rc, 0);
        cli_run_free(&r);
    }
    cli_expect(RUN(b.port, "peek", "db"), 0, "bbbb\ncccc\n");
    T_EQ_U64(cli_stat(&b, "db", "bytes"), 8);
    T_EQ_U64(cli_stat(&b, "db", "dropped"), 1);
    t_broker_stop(&b);
}

/* |a - b| < eps, for numbers printed rounded. */
static int
near(double a, double b, double eps)
{
    return a - b < eps && b - a < eps;
}

/* Field i (0-6) of a row of the class table: CLASS CHUNK PAGES USED FREE WASTED FAILS. */
static uint64_t
row_field(const char *row, int i)
{
    char *end = (char *)row;
    uint64_t v = 0;

    for (int k = 0; k <= i; k++) {
        v = strtoull(end, &end, 10);
        T_ASSERT(*end == ' ' || *end == '\n');
    }
    return v;
}

/* The summary lines and a table whose rows agree with slab.<N>.* read through the
 * library. */
static void
test_memory_view(void)
{
    static const char *const fields[] = {"chunk_size", "pages", "used", "free", "wasted",
                                         "fails"};
    struct t_broker b;
    struct cli_run r;
    const char *row;
    size_t width;
    int rows = 0;
    uint64_t hits;
    uint64_t misses;
    double pct;

    t_broker_start(&b, "--max-memory", "64MiB", NULL);
    cli_expect(RUN_IN(b.port, "a\nbb\nccc\n", "publish", "mem", "-"), 0,
               "published 3 messages to mem (first id 1)\n");
    r = RUN(b.port, "memory");
    T_EQ_INT(r.rc, 0);
    T_EQ_STR(r.err, "");
    T_ASSERT(strncmp(r.out, "memory     ", 11) == 0);
    T_ASSERT(strstr(r.out, " used of 64.0 MiB (") != NULL);
    T_ASSERT(strstr(r.out, "\nslab       ") && strstr(r.out, " pages resident ("));
    T_ASSERT(strstr(r.out, " of 64, 1.0 MiB each; "));
    T_ASSERT(strstr(r.out, "\nreservoir  ") && strstr(r.out, " misses (hit ratio "));
    T_ASSERT(strstr(r.out, "\nheap ") == NULL); /* no allocation shim in this broker */
    T_EQ_INT(sscanf(strstr(r.out, "\nreservoir  "), "\nreservoir  %" SCNu64 " hits, %" SCNu64
                    " misses (hit ratio %lf%%)", &hits, &misses, &pct), 3);
    T_ASSERT(hits + misses > 0);
    T_ASSERT(near(pct, 100.0 * (double)hits / (double)(hits + misses), 0.051));
    row = strstr(r.out, "\n\nCLASS  CHUNK  PAGES  USED  FREE  WASTED  FAILS");
    T_ASSERT(row != NULL);
    row += 2;
    width = strcspn(row, "\n"); /* right-aligned columns: every row is as long as the header */
    for (row = row + width + 1; *row; row = strchr(row, '\n') + 1) {
        char name[48];
        uint64_t cls = row_field(row, 0);
        T_EQ_U64(strcspn(row, "\n"), width);
        T_ASSERT(row[width - 1] >= '0' && row[width - 1] <= '9');
        for (int i = 0; i < 6; i++) {
            snprintf(name, sizeof(name), "slab.%" PRIu64 ".%s", cls, fields[i]);
            T_EQ_U64(row_field(row, i + 1), cli_stat(&b, NULL, name));
        }
        rows++;
    }
    T_ASSERT(rows >= 1);
    cli_run_free(&r);
    t_broker_stop(&b);
}

static void
test_memory_json(void)
{
    struct t_broker b;
    struct cli_run r;
    int depth = 0;
    uint64_t used;
    double ratio;

    t_broker_start(&b, "--max-memory", "64MiB", NULL);
    cli_expect(RUN(b.port, "publish", "mem", "hello"), 0, "published 1 message to mem (id 1)\n");
    r = RUN(b.port, "memory", "--json");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strncmp(r.out, "{\"memory\":{\"used\":", 18) == 0);
    T_ASSERT(strstr(r.out, ",\"limit\":67108864,\"peak\":"));
    T_ASSERT(strstr(r.out, ",\"denied\":0,\"used_ratio\":0."));
    T_ASSERT(strstr(r.out, "},\"slab\":{\"page_size\":1048576,\"pages_total\":64,"
                           "\"pages_resident\":"));
    T_ASSERT(strstr(r.out, ",\"pages_pooled\":") && strstr(r.out, ",\"pages_reused\":"));
    T_ASSERT(strstr(r.out, ",\"classes\":[{\"class\":"));
    T_ASSERT(strstr(r.out, ",\"chunk_size\":") && strstr(r.out, ",\"wasted\":"));
    T_ASSERT(strstr(r.out, ",\"fails\":0}"));
    T_ASSERT(strstr(r.out, "]},\"reservoir\":{\"hits\":"));
    T_ASSERT(strstr(r.out, ",\"misses\":") && strstr(r.out, ",\"overflows\":0,\"denied\":0,"));
    T_ASSERT(strstr(r.out, ",\"bytes\":") && strstr(r.out, ",\"hit_ratio\":"));
    T_ASSERT(strstr(r.out, "heap") == NULL);
    T_ASSERT(strcmp(r.out + r.out_len - 3, "}}\n") == 0);
    T_EQ_INT(sscanf(r.out, "{\"memory\":{\"used\":%" SCNu64, &used), 1);
    T_EQ_INT(sscanf(strstr(r.out, "\"used_ratio\":"), "\"used_ratio\":%lf", &ratio), 1);
    T_ASSERT(used > 0 && near(ratio, (double)used / 67108864.0, 0.00006));
    for (const char *p = r.out; *p; p++) {
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        T_ASSERT(depth >= 0 && (depth > 0 || p[1] == '\n' || p[1] == '\0'));
    }
    T_EQ_INT(depth, 0);
    T_EQ_STR(strchr(r.out, '\n'), "\n");
    cli_run_free(&r);
    t_broker_stop(&b);
}

/* With the counting allocator preloaded, the broker reports heap counts and `memory` shows
 * them. The shim is built beside this test in non-sanitizer builds only. */
static void
test_memory_heap_counts(void)
{
    static const char daemon[] = SLABMQD_PATH;
    const char *bin = strstr(daemon, "/broker/slabmqd");
    char shim[sizeof(daemon) + 64];
    struct t_broker b;
    struct cli_run r;

    T_ASSERT(bin != NULL);
    snprintf(shim, sizeof(shim), "%.*s/tests/libslabmq_alloccount.so", (int)(bin - daemon),
             daemon);
    if (access(shim, R_OK) != 0) {
        fprintf(stderr, "skipped: no %s (sanitizer build)\n", shim);
        return;
    }
    t_broker_preload = shim;
    t_broker_start(&b, NULL);
    t_broker_preload = NULL;
    r = RUN(b.port, "memory");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, "\nheap       ") && strstr(r.out, " allocs, "));
    T_ASSERT(strstr(r.out, " reallocs, ") && strstr(r.out, " frees\n"));
    cli_run_free(&r);
    r = RUN(b.port, "memory", "--json");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strstr(r.out, "},\"heap\":{\"allocs\":") && strstr(r.out, ",\"frees\":"));
    cli_run_free(&r);
    t_broker_stop(&b);
}

static void
test_ping(void)
{
    struct t_broker b;
    struct cli_run r;
    char want[64];
    double ms = -1;
    int end = 0;

    t_broker_start(&b, NULL);
    r = RUN(b.port, "ping");
    snprintf(want, sizeof(want), "pong from 127.0.0.1:%d in ", b.port);
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strncmp(r.out, want, strlen(want)) == 0);
    T_ASSERT(strcmp(r.out + r.out_len - 4, " ms\n") == 0);
    cli_run_free(&r);
    r = RUN(b.port, "ping", "--json");
    T_EQ_INT(r.rc, 0);
    T_EQ_INT(sscanf(r.out, "{\"ms\":%lf}%n", &ms, &end), 1);
    T_EQ_U64(end, r.out_len - 1);
    T_ASSERT(ms >= 0 && ms < RUN_MS);
    cli_run_free(&r);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Connections, usage, help                                                                  */

static void
test_no_broker_exits_3(void)
{
    int port = free_port();
    char want[128];

    snprintf(want, sizeof(want),
             "slabmq: cannot connect to 127.0.0.1:%d: Connection refused (is slabmqd running?)\n",
             port);
    cli_expect_error(RUN(port, "ping"), 3, want);
    cli_expect_error(RUN(port, "queues", "--json"), 3, want);
    cli_expect_error(RUN_IN(port, "a\n", "publish", "q", "-"), 3, want);
}

/* A server that accepts the connection (the kernel does) but never answers HELLO. */
static void
test_timeout_exits_3(void)
{
    int port;
    int fd = listen_loopback(&port);
    struct cli_run r = RUN(port, "--timeout", "300", "ping");

    T_EQ_INT(r.rc, 3);
    T_EQ_STR(r.out, "");
    T_ASSERT(strncmp(r.err, "slabmq: ", 8) == 0);
    T_ASSERT(strstr(r.err, "timed out") != NULL);
    T_ASSERT(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
    cli_run_free(&r);
    close(fd);
}

static void
test_server_from_env(void)
{
    struct t_broker b;
    char addr[32];
    char want[64];
    struct cli_run r;

    t_broker_start(&b, NULL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
    snprintf(want, sizeof(want), "pong from %s in ", addr);
    T_ASSERT(setenv("SLABMQ_SERVER", addr, 1) == 0);
    r = RUN(0, "ping");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strncmp(r.out, want, strlen(want)) == 0);
    cli_run_free(&r);
    /* -s wins over the environment. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    T_ASSERT(setenv("SLABMQ_SERVER", addr, 1) == 0);
    r = RUN(b.port, "ping");
    T_EQ_INT(r.rc, 0);
    cli_run_free(&r);
    r = RUN(0, "ping");
    T_EQ_INT(r.rc, 3);
    cli_run_free(&r);
    T_ASSERT(setenv("SLABMQ_SERVER", "127.0.0.1:notaport", 1) == 0);
    cli_expect_error(RUN(0, "ping"), 2,
                     "slabmq: invalid SLABMQ_SERVER '127.0.0.1:notaport': expected HOST:PORT "
                     "(see 'slabmq --help')\n");
    T_ASSERT(unsetenv("SLABMQ_SERVER") == 0);
    t_broker_stop(&b);
}

/* Every usage error exits 2 with one line on stderr, before connecting: the port has no
 * broker, so an attempt to connect would exit 3 instead. */
static void
test_usage_errors(void)
{
    static const char *const cases[][8] = {
        {"--bogus", "ping", NULL},
        {"-x", "ping", NULL},
        {NULL},
        {"frobnicate", NULL},
        {"consume", NULL},
        {"consume", "q", "-n", "abc", NULL},
        {"consume", "q", "-n", "0", NULL},
        {"consume", "q", "--wait", NULL},
        {"consume", "q", "--wait", "3600001", NULL},
        {"publish", "q", "a", "b", NULL},
        {"publish", "bad name", "x", NULL},
        {"publish", "q", "-n", "2", "x", NULL},
        {"peek", "q", "-n", "257", NULL},
        {"peek", "q", "--wait", "10", NULL},
        {"declare", "q", "--visibility", "0", NULL},
        {"declare", "q", "--max-messages", "0", NULL},
        {"declare", "q", "--max-messages", "-1", NULL},
        {"declare", "q", "--max-bytes", "0", NULL},
        {"declare", "q", "--max-bytes", "10XB", NULL},
        {"declare", "q", "--max-bytes", "KiB", NULL},
        {"declare", "q", "--max-bytes", "99999999999999999999", NULL},
        {"declare", "q", "--max-bytes", "20000000TiB", NULL},
        {"declare", "q", "--overflow", "sideways", NULL},
        {"declare", "q", "--overflow", NULL},
        {"publish", "q", "--max-messages", "5", "x", NULL},
        {"memory", "extra", NULL},
        {"memory", "--overflow", "reject", NULL},
        {"ping", "extra", NULL},
        {"--timeout", "soon", "ping", NULL},
        {"-s", "127.0.0.1:99999", "ping", NULL},
        {"help", "nope", NULL},
    };
    int port = free_port();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_run r = cli_run_argv(port, NULL, 0, cases[i]);
        if (r.rc != 2)
            fprintf(stderr, "case %zu: stderr %s", i, r.err);
        T_EQ_INT(r.rc, 2);
        T_EQ_STR(r.out, "");
        T_ASSERT(strncmp(r.err, "slabmq: ", 8) == 0);
        T_ASSERT(strchr(r.err, '\n') == r.err + strlen(r.err) - 1);
        cli_run_free(&r);
    }
    cli_expect_error(RUN(port, "publish", "q", "-n", "2", "x"), 2,
                     "slabmq: publish does not take -n/--count (see 'slabmq help publish')\n");
    cli_expect_error(RUN(port, "--bogus"), 2,
                     "slabmq: bad option: '--bogus' (see 'slabmq --help')\n");
    cli_expect_error(RUN(port, "-jx", "ping"), 2,
                     "slabmq: bad option: '-x' (see 'slabmq --help')\n");
    cli_expect_error(RUN(port, "ping", "--json=1"), 2,
                     "slabmq: bad option: '--json=1' (see 'slabmq --help')\n");
    cli_expect_error(RUN(port, "consume", "q", "--wait"), 2,
                     "slabmq: option needs a value: '--wait' (see 'slabmq --help')\n");
    cli_expect_error(RUN(port, "declare", "q", "--overflow", "drop-newest"), 2,
                     "slabmq: invalid --overflow 'drop-newest': expected reject, drop-oldest or "
                     "dead-letter (see 'slabmq --help')\n");
    cli_expect_error(RUN(port, "peek", "q", "--overflow", "reject"), 2,
                     "slabmq: peek does not take --overflow (see 'slabmq help peek')\n");
}

static void
test_help_and_version(void)
{
    static const char *const names[] = {"queues",  "stats",     "publish", "consume",
                                        "peek",    "purge",     "delete",  "declare",
                                        "memory",  "ping",      "dlq",     "move",
                                        "subscribe", "why"};
    struct cli_run r = RUN(0, "--help");
    struct cli_run h;

    T_EQ_INT(r.rc, 0);
    T_ASSERT(strncmp(r.out, "usage: slabmq ", 14) == 0);
    T_ASSERT(strstr(r.out, "Exit status:\n  0  success\n  1  the broker returned an error"));
    T_ASSERT(strstr(r.out, "  4  consume, subscribe: no message"));
    T_ASSERT(strstr(r.out, "payload_base64"));
    cli_expect(RUN(0, "help"), 0, r.out);
    cli_run_free(&r);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char want[64];
        h = RUN(0, "help", names[i]);
        snprintf(want, sizeof(want), "[--json] %s", names[i]);
        T_EQ_INT(h.rc, 0);
        T_ASSERT(strncmp(h.out, "usage: slabmq ", 14) == 0 && strstr(h.out, want));
        cli_expect(RUN(0, names[i], "--help"), 0, h.out);
        cli_expect(RUN(0, "-h", names[i]), 0, h.out);
        cli_run_free(&h);
    }
    cli_expect(RUN(0, "--version"), 0, "slabmq " SLABMQ_VERSION_STRING " (protocol 1)\n");
}

static const struct t_case cases[] = {
    T_CASE(test_publish_lines_roundtrip),
    T_CASE(test_publish_single_and_empty_input),
    T_CASE(test_consume_acks),
    T_CASE(test_consume_waits_for_message),
    T_CASE(test_consume_unacked_when_output_fails),
    T_CASE(test_peek_does_not_consume),
    T_CASE(test_json_messages),
    T_CASE(test_publish_5000_lines_batched),
    T_CASE(test_publish_respects_small_frames),
    T_CASE(test_queues_table_and_json),
    T_CASE(test_stats_queue_and_broker),
    T_CASE(test_pause_and_resume),
    T_CASE(test_purge_and_delete),
    T_CASE(test_declare_visibility),
    T_CASE(test_declare_limits),
    T_CASE(test_publish_over_reject_limit),
    T_CASE(test_drop_oldest_keeps_newest),
    T_CASE(test_memory_view),
    T_CASE(test_memory_json),
    T_CASE(test_memory_heap_counts),
    T_CASE(test_ping),
    T_CASE(test_no_broker_exits_3),
    T_CASE(test_timeout_exits_3),
    T_CASE(test_server_from_env),
    T_CASE(test_usage_errors),
    T_CASE(test_help_and_version),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
