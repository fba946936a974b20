/* SPDX-License-Identifier: MIT */
/* Prometheus text exposition of the broker's statistics; see metrics.h. The numbers are the
 * ones STATS returns (cmd_stats.c, docs/protocol.md section 11) in base units (seconds,
 * bytes), counters named *_total, plus the latency histograms of latency.h. Each family is
 * written whole (HELP, TYPE, samples) as the format requires. */
#include "net/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <event2/buffer.h>

#include "core/broker.h"
#include "core/latency.h"
#include "core/queue.h"
#include "net/server.h"
#include "store/store.h"
#include "req/sub.h"
#include "auth/verify.h"

enum qval {
    QV_READY,
    QV_FIELD /* a uint64_t at 'off' in struct queue */
};

struct qmetric {
    const char *name; /* without the slabmq_queue_ prefix */
    const char *type;
    const char *help;
    enum qval how;
    size_t off;
};

#define QF(f) QV_FIELD, offsetof(struct queue, f)

static const struct qmetric qmetrics[] = {
    {"ready_messages", "gauge", "Messages ready for delivery (the queue's depth).", QV_READY, 0},
    {"inflight_messages", "gauge", "Messages delivered and not yet acked.", QF(ninflight)},
    {"delayed_messages", "gauge", "Messages waiting for a delay, backoff or NACK delay.",
     QF(ndelayed)},
    {"bytes", "gauge", "Payload bytes of every message the queue holds.", QF(bytes)},
    {"published_total", "counter", "Messages published.", QF(c.published)},
    {"delivered_total", "counter", "Deliveries, first and repeated.", QF(c.delivered)},
    {"redelivered_total", "counter", "Deliveries of messages delivered before.",
     QF(c.redelivered)},
    {"acked_total", "counter", "Messages acked.", QF(c.acked)},
    {"nacked_total", "counter", "Messages NACKed.", QF(c.nacked)},
    {"timeouts_total", "counter", "Visibility timeouts that expired.", QF(c.timeouts)},
    {"dead_lettered_total", "counter", "Messages moved to the dead-letter queue.",
     QF(c.dead_lettered)},
    {"dead_discarded_total", "counter", "Dead letters deleted (no dead-letter queue).",
     QF(c.dead_discarded)},
    {"expired_total", "counter", "Messages whose TTL passed.", QF(c.expired)},
    {"dropped_total", "counter", "Ready messages dropped by the drop-oldest policy.",
     QF(c.dropped)},
    {"rejected_total", "counter", "Publish requests refused with ERR_QUEUE_FULL.",
     QF(c.rejected)},
    {"purged_total", "counter", "Messages removed by PURGE.", QF(c.purged)},
    {"memory_stalls_total", "counter", "Deliveries stopped by the memory limit.",
     QF(c.memory_stalls)},
};

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

struct out {
    struct evbuffer *b;
    int err; /* an append failed */
};

static void
put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (evbuffer_add_vprintf(o->b, fmt, ap) < 0)
        o->err = 1;
    va_end(ap);
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One unlabelled sample with its HELP and TYPE lines. */
static void
single(struct out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    family(o, name, type, help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

/* The queue's name as a label value: backslash, double quote and newline escaped. */
static void
put_label(struct out *o, const char *s)
{
    char buf[2 * (SMQ_NAME_MAX + 1)];
    size_t n = 0;

    for (; *s && n < sizeof(buf) - 2; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[n++] = '\\';
            buf[n++] = *s == '\n' ? 'n' : *s;
        } else {
            buf[n++] = *s;
        }
    }
    if (evbuffer_add(o->b, buf, n) < 0)
        o->err = 1;
}

static uint64_t
qvalue(const struct qmetric *m, const struct queue *q)
{
    if (m->how == QV_READY)
        return queue_ready(q);
    return *(const uint64_t *)(const void *)((const char *)q + m->off);
}

/* NOLINTBEGIN(bugprone-macro-parentheses): q names the variable the macro declares */
#define EACH_QUEUE(b, q)                                                                       \
    for (size_t i_ = 0, once_ = 1; once_; once_ = 0)                                           \
        for (const struct queue *q; (q = broker_queue_next((b), &i_));)
/* NOLINTEND(bugprone-macro-parentheses) */

static void
queue_families(struct out *o, const struct broker *b)
{
    for (size_t m = 0; m < sizeof(qmetrics) / sizeof(qmetrics[0]); m++) {
        char name[80];
        snprintf(name, sizeof(name), "slabmq_queue_%s", qmetrics[m].name);
        family(o, name, qmetrics[m].type, qmetrics[m].help);
        EACH_QUEUE(b, q) {
            put(o, "%s{queue=\"", name);
            put_label(o, q->name);
            put(o, "\"} %llu\n", (unsigned long long)qvalue(&qmetrics[m], q));
        }
    }
}

/* Seconds from ms, exactly: ms/1000 with three decimals. */
static void
put_seconds(struct out *o, uint64_t ms)
{
    put(o, "%llu.%03llu", (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
}

static void
histogram_samples(struct out *o, const char *name, const char *qname, const struct lat_hist *h)
{
    uint64_t cum = 0;

    for (int i = 0; i < LAT_BUCKETS; i++) {
        cum += h->bucket[i];
        put(o, "%s_bucket{queue=\"", name);
        put_label(o, qname);
        put(o, "\",le=\"");
        put_seconds(o, latency_bounds_ms[i]);
        put(o, "\"} %llu\n", (unsigned long long)cum);
    }
    put(o, "%s_bucket{queue=\"", name);
    put_label(o, qname);
    put(o, "\",le=\"+Inf\"} %llu\n%s_sum{queue=\"", (unsigned long long)h->count, name);
    put_label(o, qname);
    put(o, "\"} ");
    put_seconds(o, h->sum_ms);
    put(o, "\n%s_count{queue=\"", name);
    put_label(o, qname);
    put(o, "\"} %llu\n", (unsigned long long)h->count);
}

static void
latency_families(struct out *o, const struct broker *b)
{
    static const char pd[] = "slabmq_queue_publish_to_deliver_seconds";
    static const char da[] = "slabmq_queue_deliver_to_ack_seconds";

    family(o, pd, "histogram",
           "Time from publish to first delivery (to within the queue's checkpoint step).");
    EACH_QUEUE(b, q)
        histogram_samples(o, pd, q->name, &q->lat.to_deliver);
    family(o, da, "histogram", "Time from delivery (or the last TOUCH) to ack.");
    EACH_QUEUE(b, q)
        histogram_samples(o, da, q->name, &q->lat.to_ack);
}

/* One family over the slab classes that own pages; field picks the value. */
static void
slab_family(struct out *o, const struct slab *s, const char *name, const char *type,
            const char *help, int field)
{
    family(o, name, type, help);
    for (int i = 0; i < s->nclasses; i++) {
        const struct slab_class *c = &s->cls[i];
        uint64_t v;
        if (c->pages == 0)
            continue;
        switch (field) {
        case 0: v = c->pages; break;
        case 1: v = c->used; break;
        case 2: v = c->pages * c->per_page - c->used; break;
        case 3: v = c->used * c->size; break;
        case 4: v = c->used * c->size - c->requested; break;
        default: v = c->fails; break;
        }
        put(o, "%s{class=\"%d\",chunk_size=\"%u\"} %llu\n", name, i, c->size,
            (unsigned long long)v);
    }
}

static void
slab_families(struct out *o, const struct slab *s)
{
    single(o, "slabmq_slab_page_size_bytes", "gauge", "Bytes per slab page.", s->page_size);
    single(o, "slabmq_slab_pages", "gauge", "Pages in the slab arena.", s->npages);
    single(o, "slabmq_slab_pages_resident", "gauge", "Pages in use by classes or pooled.",
           slab_pages_resident(s));
    single(o, "slabmq_slab_pages_pooled", "gauge", "Empty pages in the pool.", s->pool_len);
    slab_family(o, s, "slabmq_slab_class_pages", "gauge", "Pages owned by the class.", 0);
    slab_family(o, s, "slabmq_slab_class_chunks_used", "gauge", "Chunks in use.", 1);
    slab_family(o, s, "slabmq_slab_class_chunks_free", "gauge",
                "Free chunks in the class's pages.", 2);
    slab_family(o, s, "slabmq_slab_class_used_bytes", "gauge",
                "Bytes of the class's chunks in use.", 3);
    slab_family(o, s, "slabmq_slab_class_wasted_bytes", "gauge",
                "Bytes lost to rounding in chunks in use.", 4);
    slab_family(o, s, "slabmq_slab_class_alloc_failures_total", "counter",
                "Allocations refused by the memory limit.", 5);
}

static void
store_families(struct out *o, struct store *st)
{
    uint64_t db, wal, fr, packs, live, dead;

    store_disk_bytes(st, &db, &wal, &fr);
    store_pack_stats(st, &packs, &live, &dead);
    single(o, "slabmq_store_state", "gauge", "0 ok, 1 disk full, 2 failed.", store_state(st));
    single(o, "slabmq_store_appended_total", "counter",
           "Operations handed to the store's writer.", store_appended(st));
    single(o, "slabmq_store_commits_total", "counter", "Transactions committed.",
           store_commits(st));
    single(o, "slabmq_store_lag_operations", "gauge",
           "Operations handed over and not yet committed.",
           store_appended(st) - store_committed(st));
    single(o, "slabmq_store_sync_lag_operations", "gauge",
           "Operations committed and not yet synced.", store_committed(st) - store_synced(st));
    single(o, "slabmq_store_db_bytes", "gauge", "Size of the database file.", db);
    single(o, "slabmq_store_wal_bytes", "gauge", "Size of the write-ahead log.", wal);
    single(o, "slabmq_store_free_bytes", "gauge", "Free pages inside the database, bytes.", fr);
    single(o, "slabmq_store_packs", "gauge", "Packs: rows holding several messages.", packs);
    single(o, "slabmq_store_packed_bytes", "gauge", "Payload bytes of messages stored in packs.",
           live);
    single(o, "slabmq_store_packed_dead_bytes", "gauge",
           "Payload bytes of acked messages still inside packs.", dead);
}

static void
broker_families(struct out *o, const struct server *s)
{
    const struct broker *b = &s->b;
    struct verify_stats vs;

    verify_get_stats(s->rs.verify, &vs);
    family(o, "slabmq_uptime_seconds", "gauge", "Time since the broker started.");
    put(o, "slabmq_uptime_seconds ");
    put_seconds(o, b->now_ms - s->rs.n.started_ms);
    put(o, "\n");
    single(o, "slabmq_connections", "gauge", "Client connections open.", s->rs.n.nconns);
    single(o, "slabmq_connections_accepted_total", "counter", "Connections accepted.",
           s->rs.n.conns_total);
    single(o, "slabmq_connections_refused_total", "counter",
           "Connections refused at --max-connections.", s->rs.n.conns_refused);
    single(o, "slabmq_protocol_errors_total", "counter", "Requests rejected as malformed.",
           s->rs.n.protocol_errors);
    single(o, "slabmq_slow_consumers_closed_total", "counter",
           "Connections closed for unread replies over the memory limit.", s->rs.n.slow_closed);
    single(o, "slabmq_auth_ok_total", "counter", "Successful AUTHs.", s->rs.n.auth_ok);
    single(o, "slabmq_auth_failures_total", "counter",
           "Refused credentials, over the protocol and HTTP.", s->rs.n.auth_failures);
    single(o, "slabmq_auth_unchecked_total", "counter",
           "Credentials refused without a check: throttled, or every check slot taken.",
           vs.busy + vs.throttled);
    single(o, "slabmq_auth_checks_pending", "gauge",
           "Password checks waiting for the throttle, queued or running.", vs.pending);
    single(o, "slabmq_forbidden_total", "counter",
           "Requests refused for the user's permissions.", s->rs.n.forbidden);
    single(o, "slabmq_handshake_timeouts_total", "counter",
           "Connections closed at --handshake-timeout.", s->rs.n.handshake_timeouts);
    single(o, "slabmq_idle_closed_total", "counter", "Connections closed at --idle-timeout.",
           s->rs.n.idle_closed);
    single(o, "slabmq_tls_connections", "gauge", "Open TLS connections.", s->rs.n.tls_conns);
    single(o, "slabmq_tls_handshake_failures_total", "counter",
           "TLS connections closed before their handshake completed.",
           s->rs.n.tls_handshake_failures);
    single(o, "slabmq_queues", "gauge", "Queues that exist.", b->nqueues);
    single(o, "slabmq_messages", "gauge", "Messages held in all queues.", b->messages);
    single(o, "slabmq_memory_used_bytes", "gauge", "Bytes of the memory budget in use.",
           b->mem.used);
    single(o, "slabmq_memory_limit_bytes", "gauge", "The memory limit (--max-memory).",
           b->mem.limit);
    single(o, "slabmq_memory_peak_bytes", "gauge", "Highest memory use so far.", b->mem.peak);
    single(o, "slabmq_memory_reserve_bytes", "gauge",
           "Bytes kept for consumers: message storage may not use them.", b->mem.headroom);
    single(o, "slabmq_record_pages_resident", "gauge",
           "Pages of the record slab (deliveries, connections, subscriptions) in use or pooled.",
           slab_pages_resident(&b->rec));
    single(o, "slabmq_memory_denied_total", "counter",
           "Memory reservations refused by the limit.", b->mem.denied);
    single(o, "slabmq_reservoir_hits_total", "counter", "I/O buffers served from the pool.",
           b->res.hits);
    single(o, "slabmq_reservoir_misses_total", "counter", "I/O buffer requests that allocated.",
           b->res.misses);
    single(o, "slabmq_reservoir_overflows_total", "counter",
           "Buffers freed because their pool was full.", b->res.overflows);
    single(o, "slabmq_reservoir_denied_total", "counter",
           "Buffer requests refused by the memory limit.", b->res.denied);
    single(o, "slabmq_reservoir_bytes", "gauge", "Bytes of I/O buffers, idle and in use.",
           b->res.bytes);
    single(o, "slabmq_reservoir_idle_bytes", "gauge", "Bytes of idle pooled I/O buffers.",
           b->res.idle_bytes);
    single(o, "slabmq_durability_enabled", "gauge", "1 with --durability sqlite, else 0.",
           b->store != NULL);
    if (b->store)
        store_families(o, b->store);
}

int
metrics_write(struct evbuffer *out, const struct server *s)
{
    struct out o = {out, 0};

    broker_families(&o, s);
    slab_families(&o, &s->b.slab);
    queue_families(&o, &s->b);
    latency_families(&o, &s->b);
    return o.err ? -1 : 0;
}
