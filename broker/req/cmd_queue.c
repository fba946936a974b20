/* SPDX-License-Identifier: MIT */
/* Queue administration: DECLARE, DELETE, PURGE, LIST, STATS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "core/broker.h"
#include "req/cmd.h"
#include "core/dedup.h"
#include "core/journal.h"
#include "req/req.h"
#include "frame.h"
#include "util/log.h"
#include "mem/mem.h"
#include "core/queue.h"
#include "req/reply.h"
#include "settings.h"
#include "slabmq_protocol.h"
#include "store/store.h"

/* Queue settings in a DECLARE options map; fields not given keep the queue's value. */
struct declare_opts {
    uint64_t visibility_ms; /* 0: unchanged */
    uint64_t backoff_ms;
    uint64_t backoff_max_ms;
    uint8_t has_backoff;
    uint8_t has_backoff_max;
    uint64_t max_messages;
    uint64_t max_bytes;
    int overflow;           /* enum queue_overflow, or -1: unchanged */
    uint8_t has_max_messages;
    uint8_t has_max_bytes;
    uint8_t has_max_deliveries;
    uint8_t has_dlq;
    uint8_t has_ttl;
    uint8_t has_dedup;
    uint8_t has_confirm;
    uint64_t max_deliveries;
    uint64_t ttl_ms;
    uint64_t dedup_window;
    const char *dlq;        /* has_dlq: the name, "" for none (views the frame) */
    uint32_t dlq_len;
    int durable;            /* -1: unchanged */
    int confirm;            /* enum store_level, -1: unchanged */
};

/* The value of "dead_letter": a queue name or "" (none). */
static int
read_dlq(struct req *rq, uint64_t rid, struct smq_mpr *r, struct declare_opts *o)
{
    if (smq_mpr_str(r, &o->dlq, &o->dlq_len)
        || (o->dlq_len && !smq_name_valid(o->dlq, o->dlq_len))) {
        reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                    "dead_letter must be a valid queue name, or \"\" for none");
        return -1;
    }
    o->has_dlq = 1;
    return 0;
}

/* The table's ENUM values are in the order of these enums (protocol/settings.c). */
_Static_assert(QUEUE_REJECT == 0 && QUEUE_DROP_OLDEST == 1 && QUEUE_DEAD_LETTER == 2,
               "overflow's values and enum queue_overflow differ");
_Static_assert(STORE_MEMORY == 0 && STORE_WRITTEN == 1 && STORE_SYNCED == 2,
               "confirm's values and enum store_level differ");

/* The value of setting id (protocol/settings.h: its kind, range and error texts) into o.
 * The switch at the end is where a setting meets its field: a row added to the table and
 * not wired here fails to compile (-Wswitch). */
static int
read_opt(struct req *rq, uint64_t rid, struct smq_mpr *r, enum smq_setting id,
         struct declare_opts *o)
{
    const struct smq_setting_info *s = &smq_settings[id];
    uint64_t v = 0;
    int b = 0;
    const char *str;
    uint32_t len;
    char choices[96];

    switch (s->kind) {
    case SMQ_SETTING_UINT:
        if (cmd_read_uint(rq, SMQ_OP_DECLARE, rid, r, s->key, s->min, s->max, &v))
            return -1;
        break;
    case SMQ_SETTING_ENUM:
        b = smq_mpr_str(r, &str, &len) == 0 ? smq_setting_value(id, str, len) : -1;
        if (b < 0) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST, "%s must be %s", s->key,
                        smq_setting_choices(id, choices, sizeof(choices)));
            return -1;
        }
        break;
    case SMQ_SETTING_BOOL:
        if (smq_mpr_bool(r, &b)) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST, "%s must be a bool",
                        s->key);
            return -1;
        }
        break;
    case SMQ_SETTING_NAME:
        return read_dlq(rq, rid, r, o); /* the one NAME: dead_letter */
    }
    switch (id) {
    case SMQ_SET_VISIBILITY:
        o->visibility_ms = v; /* at least 1: 0 stays "unchanged" */
        break;
    case SMQ_SET_BACKOFF:
        o->backoff_ms = v;
        o->has_backoff = 1;
        break;
    case SMQ_SET_BACKOFF_MAX:
        o->backoff_max_ms = v;
        o->has_backoff_max = 1;
        break;
    case SMQ_SET_MAX_MESSAGES:
        o->max_messages = v;
        o->has_max_messages = 1;
        break;
    case SMQ_SET_MAX_BYTES:
        o->max_bytes = v;
        o->has_max_bytes = 1;
        break;
    case SMQ_SET_OVERFLOW:
        o->overflow = b;
        break;
    case SMQ_SET_MAX_DELIVERIES:
        o->max_deliveries = v;
        o->has_max_deliveries = 1;
        break;
    case SMQ_SET_TTL:
        o->ttl_ms = v;
        o->has_ttl = 1;
        break;
    case SMQ_SET_DEDUP_WINDOW:
        if (v && v < SMQ_DEDUP_WINDOW_MIN) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                        "dedup_window must be 0 (off) or %u to %u bytes", SMQ_DEDUP_WINDOW_MIN,
                        SMQ_DEDUP_WINDOW_MAX);
            return -1;
        }
        o->dedup_window = v;
        o->has_dedup = 1;
        break;
    case SMQ_SET_DURABLE:
        o->durable = b;
        if (o->durable && !rq->b->store) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                        "the broker runs without durability (--durability sqlite)");
            return -1;
        }
        break;
    case SMQ_SET_CONFIRM:
        o->confirm = b;
        o->has_confirm = 1;
        break;
    case SMQ_SET_DEAD_LETTER:
    case SMQ_SETTING_COUNT:
        break;
    }
    return 0;
}

static int
read_opts(struct req *rq, uint64_t rid, struct smq_mpr *r, struct declare_opts *o)
{
    uint32_t n;

    if (smq_mpr_map(r, &n)) {
        reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                    "options must be a msgpack map");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        int id;
        if (smq_mpr_str(r, &k, &klen)) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                        "option names must be str");
            return -1;
        }
        id = smq_setting_find(k, klen);
        if (id < 0) {
            reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST, "unknown option '%.*s'",
                        (int)(klen > 64 ? 64 : klen), k);
            return -1;
        }
        if (read_opt(rq, rid, r, (enum smq_setting)id, o))
            return -1;
    }
    return 0;
}

/* An explicit dead_letter target names a queue that every dead letter of this one will be
 * written into: the declaring user must be allowed to publish there, or dead_letter would be
 * a way into any queue (TTL, delivery limit, TERM, overflow). Checked here, at DECLARE, so
 * that dead-lettering itself never fails later. The default QUEUE.dlq and "" (none) need
 * nothing. Returns 0, or -1 after replying ERR_FORBIDDEN. */
static int
dlq_permitted(struct req *rq, uint64_t rid, const struct declare_opts *o)
{
    const char *user;

    if (!rq->user || !o->has_dlq || !o->dlq_len
        || auth_allows(rq->user, AUTH_PUBLISH, o->dlq, o->dlq_len))
        return 0;
    user = auth_user_name(rq->user);
    rq->srv->n.forbidden++;
    log_info("connection %llu from %s: user '%s' refused declare with dead_letter %.*s",
             (unsigned long long)rq->id, rq->peer, user, (int)o->dlq_len, o->dlq);
    reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_FORBIDDEN,
                "user '%s' may not publish to queue '%.*s', so may not make it a dead-letter "
                "queue", user, (int)(o->dlq_len > 100 ? 100 : o->dlq_len), o->dlq);
    return -1;
}

/* [queue, options] -> [created] */
void
cmd_declare(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct declare_opts o = {.overflow = -1, .durable = -1, .confirm = -1};
    const char *name;
    uint32_t len;
    int created;
    struct queue *q;

    if (cmd_expect_args(rq, SMQ_OP_DECLARE, rid, nargs, 1, 2)
        || cmd_read_name(rq, SMQ_OP_DECLARE, rid, r, &name, &len)
        || (nargs == 2 && read_opts(rq, rid, r, &o)) || cmd_args_end(rq, SMQ_OP_DECLARE, rid, r)
        || dlq_permitted(rq, rid, &o))
        return;
    if (o.has_dlq && o.dlq_len == len && memcmp(o.dlq, name, len) == 0) {
        reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                    "a queue cannot be its own dead-letter queue");
        return;
    }
    q = broker_queue_find(rq->b, name, len);
    if (q && o.durable >= 0 && o.durable != q->durable && queue_held(q) > 0) {
        reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST,
                    "queue %s holds messages: its durability can change only while it is "
                    "empty", q->name);
        return;
    }
    q = broker_queue_get(rq->b, name, len, &created);
    if (!q || (o.has_dlq && queue_set_dlq(rq->b, q, o.dlq, o.dlq_len))) {
        if (q && created)
            broker_queue_delete(rq->b, q);
        reply_error(rq, SMQ_OP_DECLARE, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
        return;
    }
    if (o.has_max_deliveries)
        q->max_deliveries = (uint32_t)o.max_deliveries;
    if (o.has_ttl)
        q->ttl_ms = o.ttl_ms;
    if (o.has_dedup && o.dedup_window != q->dedup_window) {
        dedup_free(rq->b, q);
        q->dedup_window = (uint32_t)o.dedup_window;
    }
    if (o.has_confirm)
        q->confirm = (uint8_t)o.confirm;
    if (o.durable >= 0 && o.durable != q->durable) {
        if (!o.durable)
            journal_queue_del(rq->b, q);
        q->durable = (uint8_t)o.durable;
    }
    if (o.visibility_ms)
        q->visibility_ms = (uint32_t)o.visibility_ms;
    if (o.has_max_messages)
        q->max_messages = o.max_messages;
    if (o.has_max_bytes)
        q->max_bytes = o.max_bytes;
    if (o.overflow >= 0)
        q->overflow = (uint8_t)o.overflow;
    if (o.has_backoff)
        q->backoff_ms = (uint32_t)o.backoff_ms;
    if (o.has_backoff_max)
        q->backoff_max_ms = (uint32_t)o.backoff_max_ms;
    journal_queue_put(rq->b, q); /* the settings as they are now */
    reply_bool(rq, SMQ_OP_DECLARE, rid, created);
}

/* The one argument of DELETE, PURGE, PAUSE and RESUME: an existing queue. NULL after
 * replying with the error. */
static struct queue *
only_queue_arg(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    const char *name;
    uint32_t len;

    if (cmd_expect_args(rq, op, rid, nargs, 1, 1) || cmd_read_name(rq, op, rid, r, &name, &len)
        || cmd_args_end(rq, op, rid, r))
        return NULL;
    return cmd_find_queue(rq, op, rid, name, len);
}

/* Shared shape of DELETE and PURGE: [queue] -> [count]. */
static void
drop_cmd(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct queue *q = only_queue_arg(rq, op, rid, r, nargs);
    uint64_t n;
    struct reply rep;

    if (!q)
        return;
    if (op == SMQ_OP_DELETE)
        n = broker_queue_delete(rq->b, q);
    else
        n = queue_purge(rq->b, q);
    reply_begin(&rep, rq, op, rid, 1);
    msgpack_pack_uint64(&rep.pk, n);
    reply_end(&rep);
}

void
cmd_delete(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    drop_cmd(rq, SMQ_OP_DELETE, rid, r, nargs);
}

void
cmd_purge(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    drop_cmd(rq, SMQ_OP_PURGE, rid, r, nargs);
}

/* PAUSE and RESUME: [queue] -> [was_paused]. A paused queue accepts publishes and delivers
 * nothing (FETCHes wait or come back empty); RESUME serves its waiters at once. */
static void
pause_cmd(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct queue *q = only_queue_arg(rq, op, rid, r, nargs);
    int was;

    if (!q)
        return;
    was = q->paused;
    q->paused = op == SMQ_OP_PAUSE;
    if (was != q->paused)
        journal_queue_put(rq->b, q);
    reply_bool(rq, op, rid, was);
    if (!q->paused)
        queue_wake(rq->b, q);
}

void
cmd_pause(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    pause_cmd(rq, SMQ_OP_PAUSE, rid, r, nargs);
}

void
cmd_resume(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    pause_cmd(rq, SMQ_OP_RESUME, rid, r, nargs);
}

/* Bytes of LIST's reply for the queues in all[0..n), at most: per queue a 3-array, the name
 * with its str header (up to 2 bytes for SMQ_NAME_MAX) and two uint64 of up to 9 bytes each;
 * plus the reply's own header and array header. */
static size_t
list_reply_size(struct queue *const *all, size_t n)
{
    size_t bytes = SMQ_FRAME_HEADER + 32;

    for (size_t i = 0; i < n; i++)
        bytes += 1 + 2 + all[i]->name_len + 2 * 9;
    return bytes;
}

/* [] -> [[name, ready, inflight], ...] sorted by name
 *
 * The reply grows with the queues (about 3 MB for 15,000 queues of 200-byte names), so unlike
 * the replies of message operations it is not bounded by max_fetch_bytes. Replies pass the
 * memory limit (they are owed), so a LIST is executed only if its reply fits under the limit
 * (idle pooled memory reclaimed first); otherwise ERR_NOMEM. Pipelined unread LISTs thus
 * cannot push the broker past its limit (docs/memory.md, Measurements). */
void
cmd_list(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    struct queue **all;
    struct reply rep;
    size_t need;

    if (cmd_expect_args(rq, SMQ_OP_LIST, rid, nargs, 0, 0) || cmd_args_end(rq, SMQ_OP_LIST, rid, r))
        return;
    all = malloc((b->nqueues ? b->nqueues : 1) * sizeof(*all)); /* admin op, not per message */
    if (!all) {
        reply_error(rq, SMQ_OP_LIST, rid, SLABMQ_ERR_NOMEM, "out of memory listing queues");
        return;
    }
    broker_queue_list(b, all);
    need = list_reply_size(all, b->nqueues);
    if (!mem_make_room(&b->mem, need, 0)) {
        free(all);
        reply_error(rq, SMQ_OP_LIST, rid, SLABMQ_ERR_NOMEM,
                    "memory limit reached: no room for the %zu-byte list of %zu queues; retry "
                    "later", need, b->nqueues);
        return;
    }
    reply_begin(&rep, rq, SMQ_OP_LIST, rid, 1);
    msgpack_pack_array(&rep.pk, b->nqueues);
    for (size_t i = 0; i < b->nqueues; i++) {
        msgpack_pack_array(&rep.pk, 3);
        reply_str(&rep, all[i]->name);
        msgpack_pack_uint64(&rep.pk, queue_ready(all[i]));
        msgpack_pack_uint64(&rep.pk, all[i]->ninflight);
    }
    reply_end(&rep);
    free(all);
}
