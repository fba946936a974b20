/* SPDX-License-Identifier: MIT */
/* The summary of a slabmq-bench run: throughput per side (produce: first publish to last
 * confirmation; consume: first to last message received), end-to-end latency percentiles
 * from the merged histograms, the verification counts, and for 'hold' the broker's RSS per
 * message. Text for people, or one JSON object on stdout for scripts (--json). */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* Widen s to cover worker w: its count, its first and last event. */
static void
add_side(struct bench_side *s, const struct bench_worker *w)
{
    s->messages += atomic_load(&w->done);
    if (w->first_ns && (!s->first_ns || w->first_ns < s->first_ns))
        s->first_ns = w->first_ns;
    if (w->last_ns > s->last_ns)
        s->last_ns = w->last_ns;
}

/* Print w's error, if any, and count it. */
static void
collect_error(const struct bench_worker *w, const char *role, struct bench_report *r)
{
    if (!w->err[0])
        return;
    fprintf(stderr, "slabmq-bench: %s %d: %s\n", role, w->index, w->err);
    r->errors++;
}

void
bench_report_collect(struct bench *b, struct bench_worker *pw, int np, struct bench_worker *cw,
                     int nc, struct bench_report *r)
{
    uint64_t *sent = calloc((size_t)b->p.producers, sizeof(*sent));

    for (int i = 0; i < np; i++) {
        add_side(&r->produce, &pw[i]);
        r->refused += pw[i].failed;
        collect_error(&pw[i], "producer", r);
    }
    for (int i = 0; i < nc; i++) {
        add_side(&r->consume, &cw[i]);
        hist_merge(r->lat, cw[i].h);
        r->refused += cw[i].failed;
        r->acked += cw[i].acked;
        r->redelivered += cw[i].redelivered;
        r->corrupt += cw[i].corrupt;
        r->duplicates += cw[i].duplicates;
        collect_error(&cw[i], "consumer", r);
    }
    r->expected = np ? r->produce.messages : b->p.count ? b->p.count : UINT64_MAX;
    for (int i = 0; sent && i < b->p.producers; i++)
        sent[i] = np ? pw[i].sent : b->p.count ? bench_share(&b->p, i) : UINT64_MAX;
    if (sent && b->p.verify)
        bench_seen_count(b, sent, &r->tally);
    free(sent);
}

/* Messages expected but never received (by count; by sequence with --verify). */
static uint64_t
missing(const struct bench *b, const struct bench_report *r)
{
    uint64_t got = b->p.verify ? r->tally.unique : r->consume.messages;

    if (r->expected == UINT64_MAX || got >= r->expected)
        return 0;
    return r->expected - got;
}

int
bench_report_failed(const struct bench *b, const struct bench_report *r)
{
    if (!r->ran || r->interrupted || r->errors || r->refused || r->broker_status > 0)
        return 1;
    if (!bench_has_consumers(b->p.workload))
        return 0;
    if (b->p.ack != BENCH_ACK_NONE && r->acked != r->consume.messages)
        return 1;
    return missing(b, r) > 0 || r->corrupt || r->duplicates || r->tally.stray;
}

static double
seconds(const struct bench_side *s)
{
    return s->last_ns > s->first_ns ? (double)(s->last_ns - s->first_ns) / 1e9 : 0.0;
}

static double
per_s(const struct bench_side *s, double units)
{
    double t = seconds(s);

    return t > 0 ? (double)s->messages * units / t : 0.0;
}

/* Broker CPU per message of a side, us; -1 when unknown. */
static double
cpu_us(const struct bench_side *s)
{
    return s->broker_cpu_ns >= 0 && s->messages ? (double)s->broker_cpu_ns / 1e3
                                                      / (double)s->messages
                                                : -1.0;
}

static void
print_side(const struct bench *b, const char *label, const struct bench_side *s,
           const char *span)
{
    printf("%-9s%" PRIu64 " msgs in %.3f s: %.0f msg/s, %.2f MB/s (%s)", label, s->messages,
           seconds(s), per_s(s, 1.0), per_s(s, (double)b->p.size / 1e6), span);
    if (cpu_us(s) >= 0)
        printf("; broker CPU %.3f us/msg", cpu_us(s));
    printf("\n");
}

/* The line that repeats the parameters. */
static void
print_params(const struct bench_params *p)
{
    printf("slabmq-bench: %s, %d producer(s), %d consumer(s), ", bench_workload_name(p->workload),
           bench_has_producers(p->workload) ? p->producers : 0,
           bench_has_consumers(p->workload) ? p->consumers : 0);
    if (p->spread)
        printf("round-robin over %u queues, ", p->spread);
    else
        printf("%d queue(s), ", p->queues);
    printf("%zu B messages, ", p->size);
    if (p->duration_s > 0 && p->count)
        printf("%.1f s (%" PRIu64 " messages)", p->duration_s, p->count);
    else if (p->duration_s > 0)
        printf("%.1f s", p->duration_s);
    else if (p->count)
        printf("%" PRIu64 " messages", p->count);
    else
        printf("until empty");
    if (p->rate > 0)
        printf(", rate %.0f/s", p->rate);
    else
        printf(", rate max");
    printf(", window %u, publish batch %u, fetch batch %u (%u ahead), ack %s\n", p->window,
           p->batch_publish ? p->batch_publish : 1, p->fetch_batch, p->fetch_ahead,
           bench_ack_name(p->ack));
}

/* Consume side, latency, acks and verification. */
static void
print_consumers(const struct bench *b, const struct bench_report *r, int fill_drain)
{
    const struct hist *h = r->lat;

    print_side(b, fill_drain ? "drain:" : "consume:", &r->consume,
               "first to last message received");
    printf("latency: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f us (mean %.1f, "
           "%" PRIu64 " samples%s)\n", hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
           hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max_ns / 1e3,
           hist_mean(h) / 1e3, h->total,
           fill_drain ? "; includes the time queued during the fill" : "");
    if (b->p.ack != BENCH_ACK_NONE)
        printf("acks:    %" PRIu64 " settled, %" PRIu64 " redelivered\n", r->acked,
               r->redelivered);
    if (b->p.verify)
        printf("verify:  %" PRIu64 " received exactly once, %" PRIu64 " duplicates, %" PRIu64
               " missing, %" PRIu64 " corrupt, %" PRIu64 " unexpected\n",
               r->tally.unique - r->tally.repeated, r->duplicates, missing(b, r), r->corrupt,
               r->tally.stray);
}

/* Broker RSS per message held beyond the payload, bytes. */
static double
hold_overhead(const struct bench *b, const struct bench_report *r)
{
    return (double)(r->rss_full_kb - r->rss_empty_kb) * 1024.0 / (double)r->produce.messages
           - (double)b->p.size;
}

static void
print_text(const struct bench *b, const struct bench_report *r)
{
    const struct bench_params *p = &b->p;
    int fill_drain = p->workload == BENCH_FILL_DRAIN;

    print_params(p);
    if (bench_has_producers(p->workload))
        print_side(b, fill_drain ? "fill:" : "produce:", &r->produce,
                   "first publish to last confirmation");
    if (bench_has_consumers(p->workload))
        print_consumers(b, r, fill_drain);
    if (p->workload == BENCH_HOLD && r->produce.messages)
        printf("hold:    %" PRIu64 " x %zu B: broker RSS %.1f MiB before, %.1f MiB after: "
               "%.1f bytes per message beyond the payload\n", r->produce.messages, p->size,
               r->rss_empty_kb / 1024.0, r->rss_full_kb / 1024.0, hold_overhead(b, r));
    printf("result:  %s%s\n", bench_report_failed(b, r) ? "FAILED" : "ok",
           r->interrupted ? " (interrupted)" : "");
}

static void
json_side(const struct bench *b, const char *name, const struct bench_side *s)
{
    printf("\"%s\":{\"messages\":%" PRIu64 ",\"seconds\":%.6f,\"msg_per_s\":%.1f,"
           "\"mb_per_s\":%.3f,\"broker_cpu_us_per_msg\":", name, s->messages, seconds(s),
           per_s(s, 1.0), per_s(s, (double)b->p.size / 1e6));
    if (cpu_us(s) >= 0)
        printf("%.4f},", cpu_us(s));
    else
        printf("null},");
}

static void
json_params(const struct bench_params *p)
{
    printf("\"params\":{\"server\":\"%s:%u\",\"spawned\":%s,\"workload\":\"%s\","
           "\"producers\":%d,\"consumers\":%d,\"size\":%zu,\"count\":%" PRIu64 ","
           "\"duration_s\":%.3f,\"rate\":%.1f,\"window\":%u,\"batch_publish\":%u,"
           "\"fetch_batch\":%u,\"fetch_ahead\":%u,\"ack\":\"%s\",\"queues\":%d,\"spread\":%u,"
           "\"queue_prefix\":\"%s\",\"verify\":%s},", p->host, p->port,
           p->spawn ? "true" : "false", bench_workload_name(p->workload), p->producers,
           p->consumers, p->size, p->count, p->duration_s, p->rate, p->window,
           p->batch_publish ? p->batch_publish : 1, p->fetch_batch, p->fetch_ahead,
           bench_ack_name(p->ack), p->queues, p->spread, p->prefix, p->verify ? "true" : "false");
}

static void
print_json(const struct bench *b, const struct bench_report *r)
{
    const struct hist *h = r->lat;

    printf("{\"tool\":\"slabmq-bench\",");
    json_params(&b->p);
    if (bench_has_producers(b->p.workload))
        json_side(b, "produce", &r->produce);
    if (bench_has_consumers(b->p.workload)) {
        json_side(b, "consume", &r->consume);
        printf("\"latency_us\":{\"samples\":%" PRIu64 ",\"mean\":%.3f,\"p50\":%.3f,"
               "\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f},", h->total,
               hist_mean(h) / 1e3, hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
               hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max_ns / 1e3);
        printf("\"acked\":%" PRIu64 ",\"redelivered\":%" PRIu64 ",", r->acked, r->redelivered);
    }
    if (b->p.verify && bench_has_consumers(b->p.workload))
        printf("\"verify\":{\"exactly_once\":%" PRIu64 ",\"duplicates\":%" PRIu64
               ",\"missing\":%" PRIu64 ",\"corrupt\":%" PRIu64 ",\"unexpected\":%" PRIu64 "},",
               r->tally.unique - r->tally.repeated, r->duplicates, missing(b, r), r->corrupt,
               r->tally.stray);
    if (b->p.workload == BENCH_HOLD && r->produce.messages)
        printf("\"hold\":{\"messages\":%" PRIu64 ",\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
               "\"bytes_per_message_overhead\":%.2f},", r->produce.messages, r->rss_empty_kb,
               r->rss_full_kb, hold_overhead(b, r));
    printf("\"refused\":%" PRIu64 ",\"errors\":%d,\"interrupted\":%s,\"broker_exit\":%d,"
           "\"ok\":%s}\n", r->refused, r->errors, r->interrupted ? "true" : "false",
           r->broker_status, bench_report_failed(b, r) ? "false" : "true");
}

/* ---------------------------------------------------------------------------------------- */

void
bench_report_print(const struct bench *b, const struct bench_report *r)
{
    if (b->p.json)
        print_json(b, r);
    else
        print_text(b, r);
}
