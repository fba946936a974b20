/* SPDX-License-Identifier: MIT */
/* slabmq-peerbench: the workloads of slabmq-bench run against the peer brokers, speaking
 * their wire protocols directly over TCP to 127.0.0.1, so docs/performance.md can give
 * slabmq's figures as ratios to peers measured minutes apart on the same machine.
 *
 * Targets (peer_proto.c has their protocols), each driven by default with the fastest idiom
 * its users would pick, so a comparison is not made against a weak client: redis-list
 * (LPUSH of --batch values at once, pipelined; RPOP key COUNT --batch, BLMPOP ... COUNT when
 * blocking; no acks),
 * redis-stream (pipelined XADD; XREADGROUP COUNT --batch in a group and one XACK for all of
 * a reply's entries), beanstalkd (pipelined put; reserve-with-timeout and delete, one job
 * each: the protocol has no batch) and nats-js (JetStream PUB with a PubAck, --depth
 * unconfirmed, written at once rather than on a flush timer; pulls of --batch from a
 * durable consumer and +ACK). --batch 1 gives the one-pop-per-message idioms.
 *
 * Workloads, each on one producer connection and one consumer connection per pair:
 *   produce     publish n messages, pipelined --depth deep (sliding window); they stay
 *   drain       consume and ack n messages that a 'produce' left (same --queue)
 *   concurrent  a producer thread and a consumer at once, blocking consumer requests
 *   latency     as concurrent with the producer paced at --rate on an absolute schedule
 * The consumer keeps --depth messages asked for and not yet received, in requests of
 * --batch: several requests are in flight, so the broker never waits for the client.
 * --pairs N runs N producer/consumer pairs at once, each on its own queue (name-0 ...), n
 * split between them; --spread N (redis-list, produce and drain) puts message i on list
 * i % N and drains the N lists in turn.
 *
 * Payload (as slabmq-bench): bytes 0-7 the publish time (CLOCK_MONOTONIC ns, native order;
 * with --rate the intended send time, so a stalled producer shows as latency), bytes 8-15
 * the sequence, then filler. The consumer records now - publish time into an HDR-style
 * histogram (hist.h) and checks length and FIFO order.
 *
 * This file has the options, the producer and consumer loops with their pacing, and the
 * report. I/O is non-blocking with poll() (peer_net.c): output and input are buffered, so a
 * pipeline cannot deadlock on full socket buffers. Every loop ends on its count, the
 * --timeout deadline, a stall of PEER_NET_STALL_NS or an error. Only 127.0.0.1 is ever
 * contacted. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "peer_net.h"
#include "peer_proto.h"

#define MIN_SIZE 16                   /* timestamp + sequence */

/* What a producer or consumer loop did. */
struct side {
    uint64_t done;            /* producer: confirmed; consumer: received */
    uint64_t acked;           /* consumer: settled */
    uint64_t bad_len;         /* consumer: wrong payload length */
    uint64_t reordered;       /* consumer: sequence not the one expected next */
    int64_t start_ns;
    int64_t end_ns;
    int64_t late_max_ns;      /* producer, paced: worst send behind schedule */
    struct hist *h;           /* consumer: latency, or NULL */
    int failed;
};

/* ---------------------------------------------------------------------------------------- */
/* Time and payloads                                                                         */

/* Sleep until t, CLOCK_MONOTONIC ns. */
static void
sleep_until(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};

    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void
payload_stamp(char *p, int64_t ts, uint64_t seq)
{
    memcpy(p, &ts, sizeof(ts));
    memcpy(p + 8, &seq, sizeof(seq));
}

static int64_t
payload_ts(const char *p)
{
    int64_t ts;

    memcpy(&ts, p, sizeof(ts));
    return ts;
}

static uint64_t
payload_seq(const char *p)
{
    uint64_t seq;

    memcpy(&seq, p + 8, sizeof(seq));
    return seq;
}

/* ---------------------------------------------------------------------------------------- */
/* Producer and consumer loops                                                               */

/* Fail the session: report its error once and stop the other side. */
static int
fail(struct peer_session *s, struct side *sd, const char *what)
{
    sd->failed = 1;
    atomic_store(s->stop, 1);
    fprintf(stderr, "slabmq-peerbench: %s %s: %s\n", s->t->name, what,
            s->c.err[0] ? s->c.err : "stopped");
    return -1;
}

/* Append every message now due (paced) or up to the window, stamped with the intended
 * (paced) or actual send time; returns how many. Paced, it keeps the worst lateness of a
 * send behind its schedule in sd->late_max_ns. */
static uint64_t
produce_fill(struct peer_session *s, struct side *sd, char *buf, uint64_t sent, int64_t interval)
{
    const struct peer_opts *o = s->o;
    int64_t now = peer_net_now_ns();
    uint64_t k = 0;

    while (sent + k < o->n && sent + k - sd->done < o->depth) {
        int64_t due = sd->start_ns + (int64_t)(sent + k) * interval;
        if (interval && due > now)
            break;
        if (interval && now - due > sd->late_max_ns)
            sd->late_max_ns = now - due;
        payload_stamp(buf, interval ? due : now, sent + k);
        s->t->put(s, buf, o->size);
        k++;
    }
    return k;
}

/* Nothing to send and nothing arrived: sleep until the next message is due (paced, at most
 * 1 ms) or wait for the socket. */
static int
produce_wait(struct peer_session *s, uint64_t sent, uint64_t done, int64_t start, int64_t interval)
{
    const struct peer_opts *o = s->o;
    int64_t due = start + (int64_t)sent * interval;
    int64_t cap = peer_net_now_ns() + 1000000;

    if (interval && sent < o->n && sent - done < o->depth && s->c.opos == s->c.olen) {
        sleep_until(due < cap ? due : cap);
        return 0;
    }
    return peer_net_io(&s->c, 100) < 0 ? -1 : 0;
}

/* Publish o->n messages within the window, paced at o->rate when set. */
static int
produce(struct peer_session *s, struct side *sd)
{
    const struct peer_opts *o = s->o;
    int64_t interval = o->rate > 0 ? (int64_t)(1e9 / o->rate) : 0;
    char *buf = malloc(o->size);
    uint64_t sent = 0;
    int rc = -1;

    if (!buf)
        return fail(s, sd, "produce");
    memset(buf, 'x', o->size);
    if (o->rate > 0 && interval < 1)
        interval = 1;
    /* wake on schedule, as slabmq-bench's producer does: with the default 50 us timer slack
     * the sleeps end late and several messages leave together, which the latencies (from
     * the intended send time) would count, and the two tools would not pace alike */
    if (interval)
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    sd->start_ns = peer_net_now_ns();
    while (sd->done < o->n && !atomic_load(s->stop)) {
        uint64_t k = produce_fill(s, sd, buf, sent, interval);
        uint64_t before = sd->done;
        enum peer_parse r = PEER_NEED;
        uint32_t confirmed = 0;
        int io = peer_net_io(&s->c, 0);
        sent += k;
        while (io >= 0 && (r = s->t->put_reply(s, &confirmed)) == PEER_OK)
            sd->done += confirmed;
        if (io < 0 || r == PEER_ERR)
            goto out;
        if (peer_net_now_ns() > s->deadline_ns) {
            peer_net_set_err(&s->c, "deadline passed with %" PRIu64 " confirmed", sd->done);
            goto out;
        }
        if (k == 0 && io == 0 && sd->done == before && sd->done < o->n &&
            produce_wait(s, sent, sd->done, sd->start_ns, interval))
            goto out;
    }
    sd->end_ns = peer_net_now_ns();
    rc = atomic_load(s->stop) ? -1 : 0;
out:
    free(buf);
    return rc ? fail(s, sd, "produce") : 0;
}

/* Check and time one received payload. */
static void
consume_msg(struct side *sd, const struct peer_opts *o, const struct peer_event *ev, uint64_t *next)
{
    int64_t now;

    if (ev->len != o->size || ev->len < MIN_SIZE) {
        sd->bad_len++;
        return;
    }
    /* spread over several lists, the order holds within a list only: not checked */
    if (payload_seq(ev->data) != *next && o->spread <= 1)
        sd->reordered++;
    *next = payload_seq(ev->data) + 1;
    if (sd->h) {
        now = peer_net_now_ns();
        int64_t ts = payload_ts(ev->data);
        hist_record(sd->h, now > ts ? (uint64_t)(now - ts) : 0);
    }
}

/* Keep up to o->depth messages asked for, in requests of o->batch (1 where the protocol
 * has no batch), except the last, smaller one. A request goes out only when a whole batch
 * fits: refilling the window as each message arrives would send requests for one message
 * each, which is what made the old --pop-batch a one-RPOP-per-message client. */
static void
consume_request(struct peer_session *s, uint64_t received, uint64_t *outstanding, int block)
{
    const struct peer_opts *o = s->o;
    uint32_t batch = s->t->batched ? o->batch : 1;

    if (batch > o->depth)
        batch = o->depth;
    while (received + *outstanding < o->n) {
        uint64_t left = o->n - received - *outstanding;
        uint32_t want = left < batch ? (uint32_t)left : batch;
        uint32_t k;
        if (*outstanding + want > o->depth)
            break;
        k = s->t->request(s, want, block);
        if (k == 0)
            break;
        *outstanding += k;
    }
}

/* Receive and settle o->n messages. With 'until_dry' (drain) the first empty answer ends
 * it: the queue holds fewer messages than expected. */
static int
consume(struct peer_session *s, struct side *sd, int block, int until_dry)
{
    const struct peer_opts *o = s->o;
    uint64_t outstanding = 0;
    uint64_t pending_acks = 0;
    uint64_t next = 0;
    int dry = 0;

    sd->start_ns = sd->start_ns ? sd->start_ns : peer_net_now_ns();
    while ((sd->done < o->n && !dry) || pending_acks > 0 || outstanding > 0) {
        struct peer_event ev;
        enum peer_parse r = s->t->next_event(s, &ev);
        if (r == PEER_ERR)
            return fail(s, sd, "consume");
        /* all input handled: check, ask for more and move bytes. Only here, not for every
         * message: requests leave at the next peer_net_io() anyway, and a clock read and a
         * request check per message were a third of the client's instructions at 10M/s */
        if (r == PEER_NEED) {
            if (atomic_load(s->stop))
                return fail(s, sd, "consume");
            if (peer_net_now_ns() > s->deadline_ns) {
                peer_net_set_err(&s->c, "deadline passed with %" PRIu64 " received", sd->done);
                return fail(s, sd, "consume");
            }
            if (!dry)
                consume_request(s, sd->done, &outstanding, block);
            if (peer_net_io(&s->c, 100) < 0)
                return fail(s, sd, "consume");
            continue;
        }
        if (ev.type == PEER_EV_ACKED) {
            if (ev.count > pending_acks) {
                peer_net_set_err(&s->c, "an ack reply nothing asked for");
                return fail(s, sd, "consume");
            }
            pending_acks -= ev.count;
            sd->acked += ev.count;
        } else if (ev.type == PEER_EV_END) {
            outstanding -= ev.unfilled < outstanding ? ev.unfilled : outstanding;
            dry |= until_dry && ev.unfilled > 0;
        } else {
            sd->done++;
            outstanding -= outstanding > 0;
            consume_msg(sd, o, &ev, &next);
            if (s->t->ack)
                s->t->ack(s, &ev);
            pending_acks += s->t->ack_replies;
            sd->acked += !s->t->ack_replies;
        }
    }
    if (s->t->finish && s->t->finish(s))
        return fail(s, sd, "consume");
    while (s->c.opos < s->c.olen && peer_net_io(&s->c, 100) >= 0 &&
           peer_net_now_ns() < s->deadline_ns)
        ;
    sd->end_ns = peer_net_now_ns();
    if (sd->done < o->n) {
        peer_net_set_err(&s->c, "the queue ran dry after %" PRIu64 " of %" PRIu64 " messages",
                         sd->done, o->n);
        return fail(s, sd, "drain");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Workloads and the report                                                                  */

/* Open a producer (consumer 0) or consumer session; on failure say why on stderr. */
static int
session_open(struct peer_session *s, const struct peer_target *t, const struct peer_opts *o,
             atomic_int *stop, int consumer, int fresh)
{
    if (peer_proto_open(s, t, o, stop, consumer, fresh)) {
        fprintf(stderr, "slabmq-peerbench: %s setup: %s\n", t->name, s->c.err);
        return -1;
    }
    return 0;
}

struct producer_arg {
    struct peer_session *s;
    struct side *sd;
};

static void *
producer_main(void *arg)
{
    struct producer_arg *a = arg;

    produce(a->s, a->sd);
    return NULL;
}

/* Producer thread and consumer (this thread) at once; the clock starts when the producer
 * is started. */
static int
run_both(struct peer_session *ps, struct side *pd, struct peer_session *cs, struct side *cd)
{
    pthread_t th;
    struct producer_arg a = {ps, pd};
    int rc;

    cd->start_ns = peer_net_now_ns();
    if (pthread_create(&th, NULL, producer_main, &a) != 0) {
        fprintf(stderr, "slabmq-peerbench: cannot start the producer thread\n");
        return -1;
    }
    rc = consume(cs, cd, !cs->o->consumer_poll, 0);
    pthread_join(th, NULL);
    return rc || pd->failed ? -1 : 0;
}

/* One producer/consumer pair: its own queue, its share of the messages, its sessions. */
struct pair {
    struct peer_opts o;
    char queue[224];
    struct peer_session ps;
    struct peer_session cs;
    struct side pd;
    struct side cd;
    const struct peer_target *t;
    atomic_int *stop;
    pthread_t th;
    int rc;
};

/* Give pair i of o->pairs its queue ("name-i" when there are several) and its share of
 * o->n, and open the sessions its workload needs; 0, or -1 said on stderr. */
static int
pair_open(struct pair *p, const struct peer_target *t, const struct peer_opts *o,
          atomic_int *stop, uint32_t i)
{
    p->o = *o;
    p->t = t;
    p->stop = stop;
    p->rc = -1;
    p->ps.c.fd = p->cs.c.fd = -1;
    if (o->pairs > 1) {
        snprintf(p->queue, sizeof(p->queue), "%s-%u", o->queue, i);
        p->o.queue = p->queue;
        p->o.n = o->n / o->pairs + (i < o->n % o->pairs);
    }
    if (o->workload != PEER_DRAIN && session_open(&p->ps, t, &p->o, stop, 0, 1))
        return -1;
    if (o->workload != PEER_PRODUCE && session_open(&p->cs, t, &p->o, stop, 1, 0))
        return -1;
    return 0;
}

static void *
pair_main(void *arg)
{
    struct pair *p = arg;

    if (p->o.workload == PEER_PRODUCE)
        p->rc = produce(&p->ps, &p->pd);
    else if (p->o.workload == PEER_DRAIN)
        p->rc = consume(&p->cs, &p->cd, 0, 1);
    else
        p->rc = run_both(&p->ps, &p->pd, &p->cs, &p->cd);
    return NULL;
}

/* All pairs' counts in one side: from the first start to the last end. */
static void
pairs_total(const struct pair *p, uint32_t np, int producer, struct side *sum)
{
    for (uint32_t i = 0; i < np; i++) {
        const struct side *sd = producer ? &p[i].pd : &p[i].cd;
        if (i == 0 || sd->start_ns < sum->start_ns)
            sum->start_ns = sd->start_ns;
        if (sd->end_ns > sum->end_ns)
            sum->end_ns = sd->end_ns;
        if (sd->late_max_ns > sum->late_max_ns)
            sum->late_max_ns = sd->late_max_ns;
        sum->bad_len += sd->bad_len;
        sum->reordered += sd->reordered;
    }
}

static void
report(const struct peer_opts *o, const struct side *pd, const struct side *cd)
{
    const struct side *main_side = o->workload == PEER_PRODUCE ? pd : cd;
    double secs = (double)(main_side->end_ns - main_side->start_ns) / 1e9;
    double rate = secs > 0 ? (double)o->n / secs : 0;
    static const char *const names[] = {"produce", "drain", "concurrent", "latency"};
    const struct hist *h = cd->h;
    double p50 = h ? (double)hist_percentile(h, 50) / 1e3 : 0;
    double p99 = h ? (double)hist_percentile(h, 99) / 1e3 : 0;
    double p999 = h ? (double)hist_percentile(h, 99.9) / 1e3 : 0;
    double pmax = h ? (double)h->max_ns / 1e3 : 0;

    if (o->json) {
        printf("{\"target\":\"%s\",\"workload\":\"%s\",\"size\":%zu,\"n\":%" PRIu64
               ",\"depth\":%u,\"batch\":%u,\"push_values\":%u,\"spread\":%u,\"pairs\":%u,"
               "\"consumer_poll\":%d,\"rate_target\":%.1f,\"seconds\":%.6f,"
               "\"msgs_per_s\":%.1f,\"bad_len\":%" PRIu64 ",\"reordered\":%" PRIu64,
               o->target, names[o->workload], o->size, o->n, o->depth, o->batch,
               o->push_values, o->spread, o->pairs, o->consumer_poll, o->rate,
               secs, rate, cd->bad_len, cd->reordered);
        if (h)
            printf(",\"lat_count\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f,"
                   "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
                   "\"send_late_max_us\":%.1f",
                   h->total, p50, p99, p999, pmax, hist_mean(h) / 1e3,
                   (double)pd->late_max_ns / 1e3);
        printf("}\n");
        return;
    }
    printf("%s %s size=%zu n=%" PRIu64 " depth=%u batch=%u", o->target, names[o->workload],
           o->size, o->n, o->depth, o->batch);
    if (o->push_values > 1 && o->workload != PEER_DRAIN)
        printf(" push-values=%u", o->push_values);
    if (o->spread > 1)
        printf(" spread=%u", o->spread);
    if (o->pairs > 1)
        printf(" pairs=%u", o->pairs);
    printf(": %.0f msg/s (%.3f s)", rate, secs);
    if (cd->bad_len || cd->reordered)
        printf(" [bad length %" PRIu64 ", out of order %" PRIu64 "]", cd->bad_len,
               cd->reordered);
    if (h)
        printf("\n  latency at %.0f msg/s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us"
               " (sends at most %.1f us behind schedule)",
               o->rate, p50, p99, p999, pmax, (double)pd->late_max_ns / 1e3);
    printf("\n");
}

/* Open every pair's sessions first (setup is not timed), then run the pairs at once, one
 * thread each (none for a single pair), and report them as one. */
static int
run(const struct peer_target *t, const struct peer_opts *o)
{
    atomic_int stop = 0;
    struct pair *p = calloc(o->pairs, sizeof(*p));
    struct side pd = {0};
    struct side cd = {0};
    uint32_t opened = 0;
    uint32_t started = 0;
    int rc = -1;

    if (!p)
        return -1;
    if (o->workload == PEER_LATENCY && !(p[0].cd.h = malloc(sizeof(*p[0].cd.h))))
        goto out;
    if (p[0].cd.h)
        hist_init(p[0].cd.h);
    for (; opened < o->pairs; opened++)
        if (pair_open(&p[opened], t, o, &stop, opened)) {
            opened++;
            goto out;
        }
    if (o->pairs == 1) {
        pair_main(&p[0]);
    } else {
        for (; started < o->pairs; started++)
            if (pthread_create(&p[started].th, NULL, pair_main, &p[started]) != 0) {
                fprintf(stderr, "slabmq-peerbench: cannot start pair %u\n", started);
                atomic_store(&stop, 1);
                break;
            }
        for (uint32_t i = 0; i < started; i++)
            pthread_join(p[i].th, NULL);
        if (started < o->pairs)
            goto out;
    }
    for (uint32_t i = 0; i < o->pairs; i++)
        if (p[i].rc)
            goto out;
    pairs_total(p, o->pairs, 1, &pd);
    pairs_total(p, o->pairs, 0, &cd);
    cd.h = p[0].cd.h;
    report(o, &pd, &cd);
    rc = 0;
out:
    for (uint32_t i = 0; i < opened; i++) {
        peer_proto_close(&p[i].ps);
        peer_proto_close(&p[i].cs);
    }
    free(p[0].cd.h);
    free(p);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                   */

static void
usage(FILE *f)
{
    fputs("usage: slabmq-peerbench --target T --port P --workload W [options]\n"
          "       slabmq-peerbench --free-port\n"
          "  --target T       redis-list | redis-stream | beanstalkd | nats-js\n"
          "  --port P         broker port on 127.0.0.1\n"
          "  --workload W     produce | drain | concurrent | latency\n"
          "  --size N         payload bytes, >= 16 (default 16)\n"
          "  -n N             messages (default 100000)\n"
          "  --rate R         latency: msg/s on a fixed schedule (default 45000)\n"
          "  --depth N        window: messages published and not confirmed, and messages\n"
          "                   asked for and not received (default 1024)\n"
          "  --batch N        messages one consumer request asks for: RPOP / BLMPOP COUNT,\n"
          "                   XREADGROUP COUNT (one XACK per reply), a JetStream pull\n"
          "                   (default 512; 1: RPOP / BRPOP, XREADGROUP COUNT 1 per message)\n"
          "  --push-values N  redis-list: values per LPUSH, N <= depth (default: the batch;\n"
          "                   1: one LPUSH per message, pipelined)\n"
          "  --spread N       redis-list, produce and drain: message i goes to list\n"
          "                   NAME:(i %% N), and the drain empties the N lists in turn\n"
          "  --pairs N        N producer/consumer pairs at once, on queues NAME-0 ...\n"
          "                   NAME-(N-1), -n split between them (not with latency)\n"
          "  --queue NAME     key, tube or stream (default peerbench); 'drain' reads what\n"
          "                   'produce' left under the same name\n"
          "  --timeout S      whole-run deadline, seconds (default 300)\n"
          "  --consumer-poll  concurrent, latency: the consumer polls (RPOP, XREADGROUP\n"
          "                   without BLOCK, reserve-with-timeout 0, no_wait pulls) and\n"
          "                   retries empty answers, instead of blocking requests\n"
          "  --json           one JSON object per run\n"
          "  --free-port      print a free loopback TCP port and exit\n",
          f);
}

/* Bind 127.0.0.1:0 and print the port the kernel chose. */
static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        perror("slabmq-peerbench: free port");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

static int
parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_workload(const char *s, enum peer_workload *w)
{
    static const char *const names[] = {"produce", "drain", "concurrent", "latency"};

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *w = (enum peer_workload)i;
            return 0;
        }
    return -1;
}

/* Apply one option; -1 when its value is bad. */
static int
set_opt(struct peer_opts *o, int opt, const char *arg)
{
    uint64_t v = 0;
    char *end;

    switch (opt) {
    case 't': o->target = arg; return 0;
    case 'p': if (parse_u64(arg, 1, 65535, &v)) return -1; o->port = (int)v; return 0;
    case 'w': return parse_workload(arg, &o->workload);
    case 's': if (parse_u64(arg, MIN_SIZE, 1 << 20, &v)) return -1; o->size = v; return 0;
    case 'n': return parse_u64(arg, 1, 1ull << 40, &o->n);
    case 'd': if (parse_u64(arg, 1, 1 << 20, &v)) return -1; o->depth = (uint32_t)v; return 0;
    case 'b': if (parse_u64(arg, 1, 1 << 20, &v)) return -1; o->batch = (uint32_t)v; return 0;
    case 'V': if (parse_u64(arg, 1, 1 << 20, &v)) return -1; o->push_values = (uint32_t)v;
              return 0;
    case 'S': if (parse_u64(arg, 1, 10000000, &v)) return -1; o->spread = (uint32_t)v; return 0;
    case 'A': if (parse_u64(arg, 1, 256, &v)) return -1; o->pairs = (uint32_t)v; return 0;
    case 'q': o->queue = arg; return strlen(arg) > 0 && strlen(arg) < 200 ? 0 : -1;
    case 'j': o->json = 1; return 0;
    case 'P': o->consumer_poll = 1; return 0;
    case 'r':
    case 'T':
        errno = 0;
        *(opt == 'r' ? &o->rate : &o->timeout_s) = strtod(arg, &end);
        return errno || end == arg || *end || (opt == 'T' && o->timeout_s <= 0) ||
               o->rate < 0 ? -1 : 0;
    default: return -1;
    }
}

/* The combinations the loops support; 0, or -1 said on stderr. */
static int
check_opts(const struct peer_opts *o, const struct peer_target *t)
{
    const char *why = NULL;
    int list = strcmp(t->name, "redis-list") == 0;

    if (o->push_values > 1 && (!list || o->push_values > o->depth))
        why = "--push-values is for redis-list and at most --depth (a larger LPUSH would "
              "wait for a window that cannot open)";
    else if (o->spread > 1 && (!list || o->pairs > 1 || o->push_values > 1 ||
                               (o->workload != PEER_PRODUCE && o->workload != PEER_DRAIN)))
        why = "--spread is for redis-list produce and drain, one pair, one value per LPUSH";
    else if (o->spread > o->n)
        why = "--spread is more lists than messages";
    else if (o->pairs > 1 && (o->workload == PEER_LATENCY || o->pairs > o->n))
        why = "--pairs is for throughput workloads and at most -n";
    if (why)
        fprintf(stderr, "slabmq-peerbench: %s\n", why);
    return why ? -1 : 0;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},   {"port", required_argument, NULL, 'p'},
        {"workload", required_argument, NULL, 'w'}, {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},     {"depth", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},    {"queue", required_argument, NULL, 'q'},
        {"push-values", required_argument, NULL, 'V'}, {"spread", required_argument, NULL, 'S'},
        {"pairs", required_argument, NULL, 'A'},
        {"timeout", required_argument, NULL, 'T'},  {"json", no_argument, NULL, 'j'},
        {"free-port", no_argument, NULL, 'F'},      {"help", no_argument, NULL, 'h'},
        {"consumer-poll", no_argument, NULL, 'P'},
        {NULL, 0, NULL, 0}};
    struct peer_opts o = {NULL, 0, PEER_PRODUCE, MIN_SIZE, 100000, 0, 1024, 512, 0, 1, 1,
                          "peerbench", 0, 300, 0};
    const struct peer_target *t;
    int opt;
    int rate_set = 0;

    while ((opt = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        if (opt == 'h' || opt == 'F' || opt == '?') {
            if (opt == 'F')
                return free_port();
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
        rate_set |= opt == 'r';
        if (set_opt(&o, opt, optarg)) {
            const struct option *lo = longopts;
            while (lo->name && lo->val != opt)
                lo++;
            fprintf(stderr, "slabmq-peerbench: bad value for %s%s: %s\n", lo->name ? "--" : "-",
                    lo->name ? lo->name : "n", optarg);
            return 2;
        }
    }
    t = peer_proto_find(o.target);
    if (!t || o.port == 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    /* by default an LPUSH carries a batch (a Redis user enqueueing many jobs passes them all
     * to one LPUSH: 3x the messages per second of one LPUSH each, pipelined); a spread run
     * sends each message to the next list, and a paced producer sends each message when it
     * is due (an LPUSH waiting for 512 of them would hold the first for 11 ms at 45,000/s),
     * so one value each */
    if (o.push_values == 0)
        o.push_values = strcmp(t->name, "redis-list") == 0 && o.spread <= 1 &&
                                o.workload != PEER_LATENCY
                            ? (o.batch < o.depth ? o.batch : o.depth)
                            : 1;
    if (check_opts(&o, t))
        return 2;
    if (o.workload == PEER_LATENCY && !rate_set)
        o.rate = 45000;
    if (o.workload != PEER_LATENCY)
        o.rate = 0;
    return run(t, &o) ? 1 : 0;
}
