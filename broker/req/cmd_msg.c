/* SPDX-License-Identifier: MIT */
/* Message ops: PUBLISH, PUBLISH_BATCH, FETCH, ACK, NACK, TOUCH, TERM, PEEK. Nothing here
 * allocates from the heap: messages go to the slab, replies to pooled output buffers. (A
 * queue's de-duplication window is allocated once, at its first producer id.) */
#include <string.h>
#include <time.h>

#include "core/broker.h"
#include "req/cmd.h"
#include "req/confirm.h"
#include "req/req.h"
#include "core/dedup.h"
#include "core/delivery.h"
#include "core/queue.h"
#include "req/reply.h"
#include "slabmq_protocol.h"
#include "store/store.h"
#include "req/wait.h"


/* The queue for a publish or fetch, created on first use. NULL after replying NOMEM. */
static struct queue *
use_queue(struct req *rq, unsigned op, uint64_t rid, const char *name, uint32_t len)
{
    int created;
    struct queue *q = cmd_cached_queue(rq, name, len);

    if (q)
        return q;
    q = broker_queue_get(rq->b, name, len, &created);
    if (!q)
        reply_error(rq, op, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
    else
        cmd_cache_queue(rq, q);
    return q;
}

/* Read one payload, enforcing the maximum message size. */
static int
read_payload(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, const uint8_t **p,
             uint32_t *len)
{
    uint32_t max = rq->b->cfg.max_message_size;

    if (smq_mpr_bin(r, p, len)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "payload must be a msgpack bin");
        return -1;
    }
    if (*len > max) {
        reply_error(rq, op, rid, SLABMQ_ERR_TOO_LARGE,
                    "message of %u bytes exceeds the maximum message size of %u bytes", *len,
                    max);
        return -1;
    }
    return 0;
}

/* A queue's own limits refuse the publish: say which limit and where the queue stands. */
static void
reply_full(struct req *rq, unsigned op, uint64_t rid, const struct queue *q)
{
    char lim[96] = "";

    if (q->max_messages)
        snprintf(lim, sizeof(lim), "max_messages %llu", (unsigned long long)q->max_messages);
    if (q->max_bytes)
        snprintf(lim + strlen(lim), sizeof(lim) - strlen(lim), "%smax_bytes %llu",
                 q->max_messages ? ", " : "", (unsigned long long)q->max_bytes);
    reply_error(rq, op, rid, SLABMQ_ERR_QUEUE_FULL,
                "queue %s is full: it holds %llu message%s of %llu bytes (%s)%s", q->name,
                (unsigned long long)queue_held(q), queue_held(q) == 1 ? "" : "s",
                (unsigned long long)q->bytes, lim,
                q->overflow == QUEUE_DROP_OLDEST
                    ? "; drop-oldest cannot make room: in-flight and delayed messages are "
                      "never dropped, or the message alone exceeds max_bytes"
                    : "");
}

/* Is k[0..klen) the string literal lit? Its length is known at compile time, so this is a
 * few inline instructions, not strlen and memcmp calls: options are read on every PUBLISH
 * that has them. */
#define KEY_IS(k, klen, lit)                                                                   \
    ((klen) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* Wall clock, ms since the epoch: only to turn an "at_ms" into a delay. */
static uint64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The options map of PUBLISH (pid: the producer id, if allowed) or PUBLISH_BATCH (pid
 * NULL: an "id" is refused). */
static const char *const level_names[] = {"memory", "written", "synced"};

/* A confirmation level by name: 0, or -1 after replying. */
static int
read_level(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, int *level)
{
    const char *v;
    uint32_t vlen;

    if (smq_mpr_str(r, &v, &vlen) == 0) { /* level_names, in order */
        int i = KEY_IS(v, vlen, "memory")    ? 0
                : KEY_IS(v, vlen, "written") ? 1
                : KEY_IS(v, vlen, "synced")  ? 2
                                             : -1;
        if (i >= 0) {
            *level = i;
            return 0;
        }
    }
    reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST,
                "confirm must be \"memory\", \"written\" or \"synced\"");
    return -1;
}

static int
read_pub_opts(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r,
              struct pub_opts *o, const uint8_t **pid, uint32_t *pidlen, int *confirm)
{
    uint32_t n;
    uint64_t at = 0;
    uint64_t prio = 0;

    if (smq_mpr_map(r, &n)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "options must be a msgpack map");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        if (smq_mpr_str(r, &k, &klen)) {
            reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "option names must be str");
            return -1;
        }
        if (KEY_IS(k, klen, "delay_ms")) {
            if (cmd_read_uint(rq, op, rid, r, "delay_ms", 0, SMQ_TIME_MAX_MS, &o->delay_ms))
                return -1;
        } else if (KEY_IS(k, klen, "at_ms")) {
            if (cmd_read_uint(rq, op, rid, r, "at_ms", 0, INT64_MAX, &at))
                return -1;
        } else if (KEY_IS(k, klen, "ttl_ms")) {
            if (cmd_read_uint(rq, op, rid, r, "ttl_ms", 1, SMQ_TIME_MAX_MS, &o->ttl_ms))
                return -1;
        } else if (KEY_IS(k, klen, "priority")) {
            if (cmd_read_uint(rq, op, rid, r, "priority", 0, SMQ_PRIO_MAX, &prio))
                return -1;
            o->prio = (uint8_t)prio;
        } else if (KEY_IS(k, klen, "confirm")) {
            if (read_level(rq, op, rid, r, confirm))
                return -1;
        } else if (KEY_IS(k, klen, "id") && pid) {
            if ((smq_mpr_peek(r) == SMQ_MP_STR ? smq_mpr_str(r, (const char **)pid, pidlen)
                                                : smq_mpr_bin(r, pid, pidlen))
                || *pidlen == 0 || *pidlen > SMQ_PRODUCER_ID_MAX) {
                reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST,
                            "id must be a str or bin of 1 to %u bytes", SMQ_PRODUCER_ID_MAX);
                return -1;
            }
        } else {
            reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "unknown option '%.*s'%s",
                        (int)(klen > 64 ? 64 : klen), k,
                        KEY_IS(k, klen, "id") ? " (a batch cannot carry producer ids)" : "");
            return -1;
        }
    }
    if (at) { /* the later of the two times wins */
        uint64_t now = wall_ms();
        uint64_t d = at > now ? at - now : 0;
        if (d > SMQ_TIME_MAX_MS)
            d = SMQ_TIME_MAX_MS;
        if (d > o->delay_ms)
            o->delay_ms = d;
    }
    return 0;
}

static void
reply_nomem(struct req *rq, unsigned op, uint64_t rid)
{
    struct broker *b = rq->b;

    reply_error(rq, op, rid, SLABMQ_ERR_NOMEM,
                "memory limit reached (%zu of %zu bytes in use); retry later", b->mem.used,
                b->mem.limit);
}

/* [id, duplicate, level], PUBLISH's reply when it had options. Written in place, as
 * reply_uint() writes a plain PUBLISH's: through the packer's callback it took 8 buffer
 * appends, a fifth of the event loop's work for a durable publish (callgrind). */
static void
reply_published(struct req *rq, uint64_t rid, uint64_t id, int duplicate, int level)
{
    const char *name = level_names[level];
    size_t nlen = strlen(name);
    uint8_t *start;
    uint8_t *p =
        reply_direct_begin(&rq->out, SMQ_MPW_MAX_HDR + 2 + nlen, SMQ_OP_PUBLISH, rid, 3, &start);

    if (!p)
        return;
    p = smq_mpw_uint(p, id);
    *p++ = duplicate ? 0xc3 : 0xc2; /* true, false */
    p = smq_mpw_str(p, (uint32_t)nlen);
    memcpy(p, name, nlen);
    reply_direct_end(&rq->out, start, p + nlen);
}

/* A durable queue refuses publishes while the store cannot take them. 0, or -1 after
 * replying. */
static int
store_gate(struct req *rq, unsigned op, uint64_t rid, const struct queue *q)
{
    struct store *st = rq->b->store;

    if (!st || !q->durable || store_state(st) == STORE_OK)
        return 0;
    if (store_state(st) == STORE_FULL)
        reply_error(rq, op, rid, SLABMQ_ERR_STORAGE_FULL,
                    "the disk holding the store is full; durable queue %s refuses publishes "
                    "until there is room (consumers can still drain it)", q->name);
    else
        reply_error(rq, op, rid, SLABMQ_ERR_STORAGE,
                    "the store failed (see the broker's log); durable queue %s refuses "
                    "publishes until the broker restarts", q->name);
    return -1;
}

/* A publish to q about to be appended is to be synced: tell the writer first, so the batch
 * that carries it syncs (confirm_hold() says it again, exactly, once it is appended). */
static void
want_sync_next(struct broker *b, const struct queue *q, int asked)
{
    if (b->store && q->durable && (asked >= 0 ? asked : q->confirm) == STORE_SYNCED)
        store_want_sync(b->store, store_appended(b->store) + 1);
}

/* The level a publish to q is confirmed at (asked: the request's "confirm", or -1), and
 * hold the reply about to be written until the store gets there. Returns the level, or -1
 * after replying at the memory limit. */
static int
confirm_level(struct req *rq, unsigned op, uint64_t rid, const struct queue *q, int asked)
{
    struct store *st = rq->b->store;
    int level = !st || !q->durable ? STORE_MEMORY : asked >= 0 ? asked : q->confirm;

    if (level != STORE_MEMORY && confirm_hold(rq, store_appended(st), (unsigned)level, 1)) {
        reply_error(rq, op, rid, SLABMQ_ERR_NOMEM,
                    "stored, but memory to track its confirmation is short: a retry may "
                    "store it twice");
        return -1;
    }
    return level;
}

/* [queue, payload (, options)] -> [id (, duplicate)] */
void
cmd_publish(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    const unsigned op = SMQ_OP_PUBLISH;
    struct pub_opts o = {0};
    const uint8_t *pid = NULL;
    uint32_t pidlen = 0;
    int asked = -1;
    int level;
    const char *name;
    uint32_t nlen;
    const uint8_t *p;
    uint32_t len;
    struct queue *q;
    uint64_t id;

    if (cmd_expect_args(rq, op, rid, nargs, 2, 3) || cmd_read_name(rq, op, rid, r, &name, &nlen)
        || read_payload(rq, op, rid, r, &p, &len)
        || (nargs == 3 && read_pub_opts(rq, op, rid, r, &o, &pid, &pidlen, &asked))
        || cmd_args_end(rq, op, rid, r) || !(q = use_queue(rq, op, rid, name, nlen))
        || store_gate(rq, op, rid, q))
        return;
    if (pid && q->dedup_window && dedup_find(q, pid, pidlen, &id)) {
        q->c.duplicates++; /* confirmed once what was appended before it (the first) is */
        if ((level = confirm_level(rq, op, rid, q, asked)) >= 0)
            reply_published(rq, rid, id, 1, level);
        return;
    }
    if (queue_admit(q, 1, len, len)) {
        reply_full(rq, op, rid, q);
        return;
    }
    want_sync_next(b, q, asked);
    if (queue_publish_opts(b, q, p, len, nargs == 3 ? &o : NULL, &id)) {
        reply_nomem(rq, op, rid);
        return;
    }
    /* Remembering the id can fail only at the memory limit; the message stays (it was
     * accepted), it just cannot be recognised as a duplicate later. */
    if (pid && q->dedup_window)
        (void)dedup_insert(b, q, pid, pidlen, id);
    queue_trim(b, q);
    if ((level = confirm_level(rq, op, rid, q, asked)) < 0)
        return;
    if (nargs == 3)
        reply_published(rq, rid, id, 0, level);
    else
        reply_uint(rq, op, rid, id);
    if (!dlist_empty(&q->waiters) || !dlist_empty(&q->subs))
        queue_wake(b, q);
}

/* [queue, [payload, ...] (, options)] -> [first_id, count]; all or nothing. */
void
cmd_publish_batch(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    const unsigned op = SMQ_OP_PUBLISH_BATCH;
    const char *name;
    uint32_t nlen;
    uint32_t n;
    struct smq_mpr items;
    struct queue *q;
    struct queue_mark mark;
    uint64_t first = 0;
    uint64_t total = 0;
    uint32_t largest = 0;
    struct pub_opts o = {0};
    int asked = -1;
    struct reply rep;

    if (cmd_expect_args(rq, op, rid, nargs, 2, 3) || cmd_read_name(rq, op, rid, r, &name, &nlen))
        return;
    if (smq_mpr_array(r, &n)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "payloads must be a msgpack array");
        return;
    }
    items = *r; /* first pass validates every payload; nothing is stored unless all are good */
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t len;
        if (read_payload(rq, op, rid, r, &p, &len))
            return;
        total += len;
        if (len > largest)
            largest = len;
    }
    if ((nargs == 3 && read_pub_opts(rq, op, rid, r, &o, NULL, NULL, &asked))
        || cmd_args_end(rq, op, rid, r) || !(q = use_queue(rq, op, rid, name, nlen))
        || store_gate(rq, op, rid, q))
        return;
    if (queue_admit(q, n, total, largest)) {
        reply_full(rq, op, rid, q);
        return;
    }
    want_sync_next(b, q, asked);
    queue_mark(q, &mark);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p;
        uint32_t len;
        uint64_t id;
        smq_mpr_bin(&items, &p, &len);
        if (queue_publish_opts(b, q, p, len, &o, &id)) {
            queue_rollback(b, q, &mark);
            reply_error(rq, op, rid, SLABMQ_ERR_NOMEM,
                        "memory limit reached after %u of %u messages; none stored", i, n);
            return;
        }
        if (i == 0)
            first = id;
    }
    queue_trim(b, q);
    if (confirm_level(rq, op, rid, q, asked) < 0)
        return;
    reply_begin(&rep, rq, op, rid, 2);
    msgpack_pack_uint64(&rep.pk, first);
    msgpack_pack_uint32(&rep.pk, n);
    reply_end(&rep);
    if (n)
        queue_wake(b, q);
}

#define FETCH_NOACK 1u /* flags: at-most-once, the messages are gone once sent */

void
cmd_deliver(struct req *rq, uint64_t rid, uint32_t n, int noack, int multi,
            const struct queue *q)
{
    struct broker *b = rq->b;

    reply_deliveries_from(rq, SMQ_OP_FETCH, rid, b->scratch, n, multi, n ? q : NULL);
    for (uint32_t i = 0; noack && i < n; i++)
        queue_ack(b, b->scratch[i]);
}

/* FETCH's first argument: one queue name, or an array of 1 to SMQ_FETCH_QUEUES_MAX names
 * (multi). Fills names/lens; returns the count, or 0 after replying. Duplicates are dropped
 * by cmd_fetch() once the names are queues. */
static unsigned
read_fetch_queues(struct req *rq, uint64_t rid, struct smq_mpr *r, const char **names,
                  uint32_t *lens, int *multi)
{
    const unsigned op = SMQ_OP_FETCH;
    uint32_t n;

    *multi = smq_mpr_peek(r) == SMQ_MP_ARRAY;
    if (!*multi)
        return cmd_read_name(rq, op, rid, r, &names[0], &lens[0]) ? 0 : 1;
    smq_mpr_array(r, &n);
    if (n == 0 || n > SMQ_FETCH_QUEUES_MAX) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST,
                    "a FETCH names 1 to %d queues, not %u", SMQ_FETCH_QUEUES_MAX, n);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (cmd_read_name(rq, op, rid, r, &names[i], &lens[i]))
            return 0;
    return n;
}

/* Drop repeated queues from qs (keeping the first of each, in order); the count left. By
 * pointer once looked up: comparing the names pairwise was 120 memcmp()s a 16-name FETCH,
 * 16% of the broker's instructions draining 100,000 queues in groups (callgrind). */
static unsigned
distinct_queues(struct queue **qs, unsigned n)
{
    unsigned k = 0;

    for (unsigned i = 0; i < n; i++) {
        unsigned j = 0;
        while (j < k && qs[j] != qs[i])
            j++;
        if (j == k)
            qs[k++] = qs[i];
    }
    return k;
}

/* [queue or [queue, ...], max, wait_ms, flags] -> [[message, ...] (, queue)] */
void
cmd_fetch(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    const unsigned op = SMQ_OP_FETCH;
    const char *names[SMQ_FETCH_QUEUES_MAX];
    uint32_t lens[SMQ_FETCH_QUEUES_MAX];
    struct queue *qs[SMQ_FETCH_QUEUES_MAX];
    unsigned nq;
    int multi;
    uint64_t max;
    uint64_t wait_ms = 0;
    uint64_t flags = 0;
    uint32_t n = 0;
    unsigned i;

    if (cmd_expect_args(rq, op, rid, nargs, 2, 4)
        || !(nq = read_fetch_queues(rq, rid, r, names, lens, &multi))
        || cmd_read_uint(rq, op, rid, r, "max", 1, BROKER_MAX_FETCH, &max)
        || (nargs >= 3 && cmd_read_uint(rq, op, rid, r, "wait_ms", 0, SMQ_WAIT_MAX_MS, &wait_ms))
        || (nargs == 4 && cmd_read_uint(rq, op, rid, r, "flags", 0, FETCH_NOACK, &flags))
        || cmd_args_end(rq, op, rid, r))
        return;
    if (req_window(rq) == 0) {
        reply_error(rq, op, rid, SLABMQ_ERR_LIMIT,
                    "in-flight window full: this connection holds %u unacked messages "
                    "(--max-inflight); ack or nack some first", rq->held.n);
        return;
    }
    for (i = 0; i < nq; i++)
        if (!(qs[i] = use_queue(rq, op, rid, names[i], lens[i])))
            return;
    nq = distinct_queues(qs, nq);
    if (max > req_window(rq))
        max = req_window(rq);
    /* The first queue with messages; earlier waiters of a queue come first: a new FETCH
     * never overtakes them. */
    for (i = 0; i < nq && n == 0; i++)
        if (dlist_empty(&qs[i]->waiters))
            n = queue_take(b, qs[i], &rq->held, (uint32_t)max, b->cfg.max_fetch_bytes,
                           b->scratch);
    if (n > 0 || wait_ms == 0) {
        cmd_deliver(rq, rid, n, flags & FETCH_NOACK, multi, n ? qs[i - 1] : NULL);
        return;
    }
    if (rq->nwaits >= REQ_MAX_WAITS) {
        reply_error(rq, op, rid, SLABMQ_ERR_LIMIT, "at most %d waiting FETCHes per connection",
                    REQ_MAX_WAITS);
        return;
    }
    if (wait_start(rq, qs, nq, multi, rid, (uint32_t)max, (uint32_t)wait_ms,
                   flags & FETCH_NOACK))
        reply_error(rq, op, rid, SLABMQ_ERR_NOMEM, "memory limit reached");
}

/* A CONFIRMED ACK: the reply about to be written (or the next one) waits until the store
 * has committed what the ACK appended after sequence number appended0; nothing to wait for
 * when it appended nothing (no store, in-memory queues). 0, or -1 after replying at the
 * memory limit. */
static int
hold_settled(struct req *rq, unsigned op, uint64_t rid, uint64_t appended0)
{
    struct store *st = rq->b->store;

    if (!st || store_appended(st) == appended0
        || !confirm_hold(rq, store_appended(st), STORE_WRITTEN, 0))
        return 0;
    reply_error(rq, op, rid, SLABMQ_ERR_NOMEM,
                "acked, but memory to track the commit is short: it may come back after a "
                "crash");
    return -1;
}

/* Ids the first pass keeps, so the second does not decode them again (about 15
 * instructions an id): a coalesced ACK of libslabmq carries at most SMQ_QUIET_RUN (256);
 * larger ones (slabmq_ack_batch) decode the rest twice, as before. */
#define SETTLE_KEEP 320

/* Shared body of ACK, NACK, TOUCH and TERM: [[id, ...] (, delay_ms for NACK, flags for ACK)]
 * -> [count]. Known ids are settled even when some are unknown; then the reply is
 * ERR_UNKNOWN_ID. A QUIET ACK that settles every id gets no reply: a consumer pipelines its
 * ACK with its next FETCH, and the FETCH's reply is enough to know the ACK went through, so
 * the broker writes (and the consumer wakes for) one reply per message, not two. A
 * CONFIRMED ACK that changed a durable queue holds its reply (or, QUIET, the next one) until
 * the store has committed the change, as a publish's confirmation is held. */
static void
settle(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    uint32_t n;
    uint64_t delay = 0;
    uint64_t flags = 0;
    uint64_t done = 0;
    uint64_t unknown = 0;
    uint64_t first_unknown = 0;
    uint64_t appended0;
    struct smq_mpr ids;
    struct delivery *next = NULL; /* the in-flight delivery after the last one settled */
    uint64_t kept[SETTLE_KEEP];   /* the first ids, decoded once */

    if (cmd_expect_args(rq, op, rid, nargs, 1, op == SMQ_OP_NACK || op == SMQ_OP_ACK ? 2 : 1))
        return;
    if (smq_mpr_array(r, &n)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "ids must be a msgpack array");
        return;
    }
    ids = *r;
    for (uint32_t i = 0; i < n; i++) { /* first pass: all valid, or nothing is settled */
        uint64_t id;
        if (i == SETTLE_KEEP)
            ids = *r; /* the second pass decodes the rest from here */
        if (smq_mpr_uint(r, i < SETTLE_KEEP ? &kept[i] : &id)) {
            reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST,
                        "message ids must be non-negative integers");
            return;
        }
    }
    if ((nargs == 2 && op == SMQ_OP_NACK
         && cmd_read_uint(rq, op, rid, r, "delay_ms", 0, SMQ_TIME_MAX_MS, &delay))
        || (nargs == 2 && op == SMQ_OP_ACK
            && cmd_read_uint(rq, op, rid, r, "flags", 0, SMQ_ACK_QUIET | SMQ_ACK_CONFIRMED,
                             &flags))
        || cmd_args_end(rq, op, rid, r))
        return;
    appended0 = b->store ? store_appended(b->store) : 0;
    broker_defer_wake(b); /* waiters get NACKed messages after the whole list is settled */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id;
        struct delivery *d;
        if (i < SETTLE_KEEP)
            id = kept[i];
        else
            smq_mpr_uint(&ids, &id);
        d = next && next->id == id ? next : dtable_find(&b->dels, id);
        if (!d || d->state != DLV_INFLIGHT || d->owner != &rq->held) {
            if (unknown++ == 0)
                first_unknown = id;
            next = NULL;
            continue;
        }
        /* A consumer acks in the order it was delivered to, so the next id is usually the
         * delivery after this one in the connection's in-flight list: found without the
         * table (a lookup and its probe, 21 of a drained message's instructions). Only for
         * ACK: queue_ack() frees only d, no other delivery is freed or unlinked from this
         * list (wakes are deferred; compaction moves records, not deliveries), so next
         * stays valid; its state and owner are checked again all the same. A NACK or TERM
         * may dead-letter, which is more than this needs to reason about. */
        next = op == SMQ_OP_ACK && d->slink.next != &rq->held.list
                   ? DLIST_ENTRY(d->slink.next, struct delivery, slink)
                   : NULL;
        if (op == SMQ_OP_ACK)
            queue_ack(b, d);
        else if (op == SMQ_OP_TOUCH)
            queue_touch(b, d);
        else if (op == SMQ_OP_TERM)
            queue_term(b, d);
        else
            queue_nack(b, d, delay);
        done++;
    }
    broker_flush_wake(b);
    if ((flags & SMQ_ACK_CONFIRMED) && hold_settled(rq, op, rid, appended0))
        return;
    if (unknown) {
        reply_error(rq, op, rid, SLABMQ_ERR_UNKNOWN_ID,
                    "%llu of %u ids unknown or not held by this connection (first: %llu); "
                    "%llu settled",
                    (unsigned long long)unknown, n, (unsigned long long)first_unknown,
                    (unsigned long long)done);
        return;
    }
    if (!(flags & SMQ_ACK_QUIET))
        reply_uint(rq, op, rid, done);
}

void
cmd_ack(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(rq, SMQ_OP_ACK, rid, r, nargs);
}

void
cmd_nack(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(rq, SMQ_OP_NACK, rid, r, nargs);
}

/* [[id, ...]] -> [count]: still working on these, restart their visibility timeouts. */
void
cmd_touch(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(rq, SMQ_OP_TOUCH, rid, r, nargs);
}

/* [[id, ...]] -> [count]: give up on these, dead-letter them now. */
void
cmd_term(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    settle(rq, SMQ_OP_TERM, rid, r, nargs);
}

/* [queue, max (, skip)] -> [[message, ...]] without taking them */
void
cmd_peek(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct msgref refs[SMQ_PEEK_MAX];
    const unsigned op = SMQ_OP_PEEK;
    const char *name;
    uint32_t nlen;
    uint64_t max;
    uint64_t skip = 0;
    struct queue *q;

    if (cmd_expect_args(rq, op, rid, nargs, 2, 3) || cmd_read_name(rq, op, rid, r, &name, &nlen)
        || cmd_read_uint(rq, op, rid, r, "max", 1, SMQ_PEEK_MAX, &max)
        || (nargs == 3 && cmd_read_uint(rq, op, rid, r, "skip", 0, UINT64_MAX, &skip))
        || cmd_args_end(rq, op, rid, r) || !(q = cmd_find_queue(rq, op, rid, name, nlen)))
        return;
    reply_msgrefs(rq, op, rid, refs,
                  queue_peek(q, skip, (uint32_t)max, rq->b->cfg.max_fetch_bytes, refs));
}
