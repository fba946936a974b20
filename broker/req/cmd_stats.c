/* SPDX-License-Identifier: MIT */
/* STATS: [queue | nil] -> [{name: uint, ...}], a flat map of counters and gauges. The names
 * are listed in docs/protocol.md; slab classes appear as slab.<class>.<field> for classes
 * that own pages. O(classes) or O(1) for a queue. */
#include <stdio.h>
#include <string.h>

#include "core/broker.h"
#include "req/cmd.h"
#include "req/req.h"
#include "core/dedup.h"
#include "core/queue.h"
#include "req/reply.h"
#include "settings.h"
#include "slabmq_protocol.h"
#include "store/store.h"
#include "req/sub.h"
#include "auth/verify.h"

#define STATS_MAX 512

/* Provided only when tests/alloc's counting shim is preloaded (LD_PRELOAD): every heap
 * call of the whole process, libraries included. Weak: absent in normal runs. */
extern void smq_alloc_counts(uint64_t out[3]) __attribute__((weak));

struct stat_kv {
    char name[40];
    uint64_t v;
};

struct stat_list {
    struct stat_kv kv[STATS_MAX];
    uint32_t n;
};

static void
add(struct stat_list *l, const char *name, uint64_t v)
{
    if (l->n == STATS_MAX)
        return;
    snprintf(l->kv[l->n].name, sizeof(l->kv[l->n].name), "%s", name);
    l->kv[l->n].v = v;
    l->n++;
}

/* The STATS rows of queue settings first..last (protocol/settings.h), named as the table
 * says. STATS runs the table in three stretches, with other rows between, to keep the order
 * its replies have always had; a new setting lands in the last stretch. A row added to the
 * table and not wired here fails to compile (-Wswitch). */
static void
setting_rows(struct stat_list *l, const struct queue *q, int first, int last)
{
    for (int s = first; s <= last; s++) {
        const char *row = smq_settings[s].stats;
        switch ((enum smq_setting)s) {
        case SMQ_SET_VISIBILITY:
            add(l, row, q->visibility_ms);
            break;
        case SMQ_SET_BACKOFF:
            add(l, row, q->backoff_ms);
            break;
        case SMQ_SET_BACKOFF_MAX:
            add(l, row, q->backoff_max_ms);
            break;
        case SMQ_SET_MAX_MESSAGES:
            add(l, row, q->max_messages);
            break;
        case SMQ_SET_MAX_BYTES:
            add(l, row, q->max_bytes);
            break;
        case SMQ_SET_OVERFLOW: /* a 0/1 row for each policy but the default */
            add(l, "overflow_drop_oldest", q->overflow == QUEUE_DROP_OLDEST);
            add(l, "overflow_dead_letter", q->overflow == QUEUE_DEAD_LETTER);
            break;
        case SMQ_SET_MAX_DELIVERIES:
            add(l, row, q->max_deliveries);
            break;
        case SMQ_SET_TTL:
            add(l, row, q->ttl_ms);
            break;
        case SMQ_SET_DEDUP_WINDOW:
            add(l, row, q->dedup_window);
            break;
        case SMQ_SET_DURABLE:
            add(l, row, q->durable);
            break;
        case SMQ_SET_CONFIRM:
            add(l, row, q->durable ? q->confirm : 0);
            break;
        case SMQ_SET_DEAD_LETTER: /* the one str value, after the integers (cmd_stats) */
        case SMQ_SETTING_COUNT:
            break;
        }
    }
}

static void
queue_stats(struct stat_list *l, const struct queue *q, uint64_t now_ms)
{
    uint64_t waiters = 0;
    uint64_t due = queue_next_due(q);

    for (const struct dlink *w = q->waiters.next; w != &q->waiters; w = w->next)
        waiters++;
    add(l, "ready", queue_ready(q));
    add(l, "inflight", q->ninflight);
    add(l, "delayed", q->ndelayed);
    add(l, "bytes", q->bytes);
    add(l, "waiters", waiters);
    setting_rows(l, q, SMQ_SET_VISIBILITY, SMQ_SET_VISIBILITY);
    add(l, "paused", q->paused);
    setting_rows(l, q, SMQ_SET_BACKOFF, SMQ_SET_DEDUP_WINDOW);
    add(l, "dedup_bytes", dedup_bytes(q));
    add(l, "subscriptions", sub_count(q));
    add(l, "credit", sub_credit(q));
    if (due)
        add(l, "next_due_ms", due > now_ms ? due - now_ms : 0);
    add(l, "priority_ready", q->nprio);
    setting_rows(l, q, SMQ_SET_DURABLE, SMQ_SETTING_COUNT - 1);
    add(l, "published", q->c.published);
    add(l, "delivered", q->c.delivered);
    add(l, "redelivered", q->c.redelivered);
    add(l, "acked", q->c.acked);
    add(l, "nacked", q->c.nacked);
    add(l, "timeouts", q->c.timeouts);
    add(l, "purged", q->c.purged);
    add(l, "dropped", q->c.dropped);
    add(l, "rejected", q->c.rejected);
    add(l, "compactions", q->c.compactions);
    add(l, "moved", q->c.moved);
    add(l, "dead_lettered", q->c.dead_lettered);
    add(l, "dead_discarded", q->c.dead_discarded);
    add(l, "dead_letter_failed", q->c.dead_letter_failed);
    add(l, "expired", q->c.expired);
    add(l, "terminated", q->c.terminated);
    add(l, "delivery_limit", q->c.delivery_limit);
    add(l, "duplicates", q->c.duplicates);
    add(l, "memory_held", q->mem_held);
    add(l, "memory_stalls", q->c.memory_stalls);
}

/* One slab's rows, named after 'pre': the message slab is "slab", the record slab "rec". */
static void
slab_stats(struct stat_list *l, const struct slab *s, const char *pre)
{
    char name[40];

    snprintf(name, sizeof(name), "%s_page_size", pre);
    add(l, name, s->page_size);
    snprintf(name, sizeof(name), "%s_pages_total", pre);
    add(l, name, s->npages);
    snprintf(name, sizeof(name), "%s_pages_resident", pre);
    add(l, name, slab_pages_resident(s));
    snprintf(name, sizeof(name), "%s_pages_pooled", pre);
    add(l, name, s->pool_len);
    snprintf(name, sizeof(name), "%s_pages_reused", pre);
    add(l, name, s->pages_reused);
    for (int i = 0; i < s->nclasses; i++) {
        const struct slab_class *sc = &s->cls[i];
        if (sc->pages == 0)
            continue;
        snprintf(name, sizeof(name), "%s.%d.chunk_size", pre, i);
        add(l, name, sc->size);
        snprintf(name, sizeof(name), "%s.%d.pages", pre, i);
        add(l, name, sc->pages);
        snprintf(name, sizeof(name), "%s.%d.used", pre, i);
        add(l, name, sc->used);
        snprintf(name, sizeof(name), "%s.%d.free", pre, i);
        add(l, name, sc->pages * sc->per_page - sc->used);
        snprintf(name, sizeof(name), "%s.%d.wasted", pre, i);
        add(l, name, sc->used * sc->size - sc->requested);
        snprintf(name, sizeof(name), "%s.%d.fails", pre, i);
        add(l, name, sc->fails);
    }
}

static void
broker_stats(struct stat_list *l, const struct req_server *s)
{
    const struct broker *b = s->b;
    struct verify_stats vs;
    uint64_t inflight = 0;
    const struct queue *q;

    for (size_t pos = 0; (q = broker_queue_next(b, &pos));)
        inflight += q->ninflight;

    verify_get_stats(s->verify, &vs);
    add(l, "uptime_ms", b->now_ms - s->n.started_ms);
    add(l, "connections", s->n.nconns);
    add(l, "connections_total", s->n.conns_total);
    add(l, "connections_refused", s->n.conns_refused);
    add(l, "protocol_errors", s->n.protocol_errors);
    add(l, "auth_ok", s->n.auth_ok);
    add(l, "auth_failures", s->n.auth_failures);
    add(l, "auth_unchecked", vs.busy + vs.throttled);
    add(l, "auth_checks_pending", vs.pending);
    add(l, "forbidden", s->n.forbidden);
    add(l, "handshake_timeouts", s->n.handshake_timeouts);
    add(l, "idle_closed", s->n.idle_closed);
    add(l, "tls_connections", s->n.tls_conns);
    add(l, "tls_handshake_failures", s->n.tls_handshake_failures);
    add(l, "slow_consumers_closed", s->n.slow_closed);
    add(l, "queues", b->nqueues);
    add(l, "messages", b->messages);
    add(l, "inflight", inflight);
    add(l, "deliveries", b->dels.count);
    add(l, "timers", b->timers.n);
    add(l, "next_id", b->next_id);
    add(l, "durability", b->store != NULL);
    if (b->store) {
        uint64_t db, wal, fr, packs, live, dead;
        store_disk_bytes(b->store, &db, &wal, &fr);
        store_pack_stats(b->store, &packs, &live, &dead);
        add(l, "store_state", store_state(b->store));
        add(l, "store_appended", store_appended(b->store));
        add(l, "store_committed", store_committed(b->store));
        add(l, "store_synced", store_synced(b->store));
        add(l, "store_lag", store_appended(b->store) - store_committed(b->store));
        add(l, "store_sync_lag", store_committed(b->store) - store_synced(b->store));
        add(l, "store_commits", store_commits(b->store));
        add(l, "store_db_bytes", db);
        add(l, "store_wal_bytes", wal);
        add(l, "store_free_bytes", fr);
        add(l, "store_packs", packs);
        add(l, "store_packed_bytes", live);
        add(l, "store_packed_dead_bytes", dead);
    }
    add(l, "max_message_size", b->cfg.max_message_size);
    add(l, "memory_limit", b->mem.limit);
    add(l, "memory_used", b->mem.used);
    add(l, "memory_peak", b->mem.peak);
    add(l, "memory_denied", b->mem.denied);
    add(l, "memory_reserve", b->mem.headroom);
    add(l, "reservoir_hits", b->res.hits);
    add(l, "reservoir_misses", b->res.misses);
    add(l, "reservoir_overflows", b->res.overflows);
    add(l, "reservoir_denied", b->res.denied);
    add(l, "reservoir_bytes", b->res.bytes);
    add(l, "reservoir_idle_bytes", b->res.idle_bytes);
    for (int i = 0; i < b->res.nclasses; i++) {
        const struct res_class *rc = &b->res.cls[i];
        char name[40];
        if (rc->peak_out == 0)
            continue;
        snprintf(name, sizeof(name), "reservoir.%u.capacity", rc->size);
        add(l, name, rc->cap);
        snprintf(name, sizeof(name), "reservoir.%u.idle", rc->size);
        add(l, name, rc->nidle);
        snprintf(name, sizeof(name), "reservoir.%u.out", rc->size);
        add(l, name, rc->out);
        snprintf(name, sizeof(name), "reservoir.%u.peak_out", rc->size);
        add(l, name, rc->peak_out);
    }
    if (smq_alloc_counts) {
        uint64_t n[3];
        smq_alloc_counts(n);
        add(l, "heap_allocs", n[0]);
        add(l, "heap_reallocs", n[1]);
        add(l, "heap_frees", n[2]);
    }
    slab_stats(l, &b->slab, "slab");
    slab_stats(l, &b->rec, "rec");
}

void
cmd_stats(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct stat_list l; /* 24 KiB of stack */
    const char *name = NULL;
    uint32_t len = 0;
    struct queue *q = NULL;
    struct reply rep;

    if (cmd_expect_args(rq, SMQ_OP_STATS, rid, nargs, 0, 1))
        return;
    if (nargs == 1 && smq_mpr_peek(r) == SMQ_MP_NIL)
        smq_mpr_nil(r);
    else if (nargs == 1 && cmd_read_name(rq, SMQ_OP_STATS, rid, r, &name, &len))
        return;
    if (cmd_args_end(rq, SMQ_OP_STATS, rid, r))
        return;
    if (name && !(q = cmd_find_queue(rq, SMQ_OP_STATS, rid, name, len)))
        return;
    l.n = 0;
    if (q)
        queue_stats(&l, q, rq->b->now_ms);
    else
        broker_stats(&l, rq->srv);
    reply_begin(&rep, rq, SMQ_OP_STATS, rid, 1);
    msgpack_pack_map(&rep.pk, l.n + (q ? 1 : 0));
    for (uint32_t i = 0; i < l.n; i++) {
        reply_str(&rep, l.kv[i].name);
        msgpack_pack_uint64(&rep.pk, l.kv[i].v);
    }
    if (q) { /* the one str value */
        char dlq[SMQ_NAME_MAX + 1];
        queue_dlq_name(q, dlq);
        reply_str(&rep, "dead_letter");
        reply_str(&rep, dlq);
    }
    reply_end(&rep);
}
