/* SPDX-License-Identifier: MIT */
/* Building the journal's records from queues and deliveries; see journal.h. */
#include "core/journal.h"

#include <string.h>

#include "codec.h"
#include "core/broker.h"
#include "core/delivery.h"
#include "core/queue.h"
#include "settings.h"

/* The stored blob's layout (store.c keeps it in the database) must not move with the name
 * limit. */
_Static_assert(sizeof(((struct journal_qsettings *)0)->dlq_name) == SMQ_NAME_MAX,
               "journal_qsettings.dlq_name holds a queue name");

static void
emit(struct broker *b, struct journal_rec *r)
{
    r->now_ms = b->now_ms;
    b->journal->ops->record(b->journal->ctx, r);
}

void
journal_queue_put(struct broker *b, const struct queue *q)
{
    struct journal_qsettings qs;
    struct journal_rec r = {0};

    if (!b->journal || !q->durable)
        return;
    journal_qsettings_from(q, &qs);
    r.kind = JOURNAL_QUEUE_PUT;
    r.sid = q->sid;
    r.name = q->name;
    r.name_len = q->name_len;
    r.qs = &qs;
    emit(b, &r);
}

void
journal_queue_del(struct broker *b, const struct queue *q)
{
    struct journal_rec r = {0};

    if (!b->journal || !q->durable)
        return;
    r.kind = JOURNAL_QUEUE_DEL;
    r.sid = q->sid;
    emit(b, &r);
}

/* The message state of d into r (MSG_PUT with a delivery record, and MSG_SET). */
static void
describe(struct journal_rec *r, const struct delivery *d)
{
    r->prio = d->prio;
    r->deliveries = d->deliveries;
    if (d->state == DLV_DELAYED)
        r->due_ms = d->due_ms;
    if (d->ext && d->ext->expires_ms)
        r->expires_ms = d->ext->expires_ms;
    if (d->ext && d->ext->reason) {
        r->reason = d->ext->reason;
        r->dl_deliveries = d->ext->dl_deliveries;
        r->src = d->ext->src;
        r->srclen = d->ext->srclen;
    }
}

void
journal_msg_put(struct broker *b, const struct queue *q, uint64_t id, const void *data,
                uint32_t len, const struct delivery *d)
{
    struct journal_rec r = {0};

    if (!b->journal || !q->durable)
        return;
    r.kind = JOURNAL_MSG_PUT;
    r.sid = q->sid;
    r.id = id;
    r.len = len;
    r.data = data;
    if (d)
        describe(&r, d);
    emit(b, &r);
}

void
journal_msg_held(struct broker *b, const struct delivery *d)
{
    struct journal_rec r = {0};

    if (!b->journal || !d->q->durable)
        return;
    r.kind = JOURNAL_MSG_PUT;
    r.sid = d->q->sid;
    r.id = d->id;
    r.len = d->len;
    r.seg = d->seg;
    r.off = d->off;
    describe(&r, d);
    emit(b, &r);
}

void
journal_msg_set(struct broker *b, const struct delivery *d)
{
    struct journal_rec r = {0};

    if (!b->journal || !d->q->durable)
        return;
    r.kind = JOURNAL_MSG_SET;
    r.sid = d->q->sid;
    r.id = d->id;
    describe(&r, d);
    emit(b, &r);
}

void
journal_msg_del(struct broker *b, const struct queue *q, uint64_t id, uint32_t len)
{
    struct journal_rec r = {0};

    if (!b->journal)
        return;
    r.kind = JOURNAL_MSG_DEL;
    r.sid = q->sid;
    r.id = id;
    r.len = len;
    emit(b, &r);
}

struct queue *
journal_replay_queue(struct broker *b, const struct journal_rec *r)
{
    int created;
    struct queue *q = broker_queue_get(b, r->name, r->name_len, &created);

    if (r->sid >= b->next_sid) /* never given to a new queue */
        b->next_sid = r->sid + 1;
    if (!q || journal_qsettings_apply(b, q, r->qs))
        return NULL;
    q->durable = 1;
    q->sid = r->sid;
    return q;
}

int
journal_replay_msg(struct broker *b, struct queue *q, const struct journal_rec *r)
{
    const void *data = r->len ? r->data : "";
    struct pub_opts o = {0, 0, 0, 1, 1}; /* exactly the record's TTL; a delivery record */
    struct delivery *d;
    uint64_t got;

    b->next_id = r->id;
    o.prio = r->prio > SMQ_PRIO_MAX ? SMQ_PRIO_MAX : r->prio;
    o.delay_ms = r->due_ms > r->now_ms ? r->due_ms - r->now_ms : 0;
    o.ttl_ms = r->expires_ms ? (r->expires_ms > r->now_ms ? r->expires_ms - r->now_ms : 1) : 0;
    if (!r->reason && r->deliveries == 0 && o.prio == 0 && o.delay_ms == 0 && o.ttl_ms == 0)
        return queue_publish(b, q, data, r->len, &got);
    if (queue_publish_opts(b, q, data, r->len, &o, &got) || !(d = dtable_find(&b->dels, got)))
        return -1;
    d->deliveries = r->deliveries;
    if (r->reason)
        return queue_restore_dead(b, d, r->reason, r->dl_deliveries, r->src, r->srclen);
    return 0;
}

void
journal_dedup(struct broker *b, const struct queue *q, const void *pid, uint32_t len,
              uint64_t id)
{
    struct journal_rec r = {0};

    if (!b->journal)
        return;
    r.kind = JOURNAL_DEDUP;
    r.sid = q->sid;
    r.id = id;
    r.pid = pid;
    r.pid_len = len;
    emit(b, &r);
}

void
journal_qsettings_from(const struct queue *q, struct journal_qsettings *qs)
{
    char dlq[SMQ_NAME_MAX + 1];

    memset(qs, 0, sizeof(*qs));
    qs->version = JOURNAL_QSETTINGS_VERSION;
    qs->visibility_ms = q->visibility_ms;
    qs->backoff_ms = q->backoff_ms;
    qs->backoff_max_ms = q->backoff_max_ms;
    qs->max_deliveries = q->max_deliveries;
    qs->dedup_window = q->dedup_window;
    qs->ttl_ms = q->ttl_ms;
    qs->max_messages = q->max_messages;
    qs->max_bytes = q->max_bytes;
    qs->overflow = q->overflow;
    qs->paused = q->paused;
    qs->dlq_mode = q->dlq_mode;
    qs->confirm = q->confirm;
    if (q->dlq_mode == QUEUE_DLQ_NAMED) {
        qs->dlq_len = (uint8_t)queue_dlq_name(q, dlq);
        memcpy(qs->dlq_name, dlq, qs->dlq_len);
    }
}

/* The saved settings hold every queue setting of protocol/settings.h (plus paused and the
 * dead-letter mode). A setting added there must be saved here too: add it to struct
 * journal_qsettings (bumping JOURNAL_QSETTINGS_VERSION), to the copies in this file, then
 * this count. */
_Static_assert(SMQ_SETTING_COUNT == 12, "a queue setting the journal does not carry");

int
journal_qsettings_apply(struct broker *b, struct queue *q, const struct journal_qsettings *qs)
{
    if (qs->version != JOURNAL_QSETTINGS_VERSION || qs->dlq_len > SMQ_NAME_MAX)
        return -1;
    q->visibility_ms = qs->visibility_ms;
    q->backoff_ms = qs->backoff_ms;
    q->backoff_max_ms = qs->backoff_max_ms;
    q->max_deliveries = qs->max_deliveries;
    q->dedup_window = qs->dedup_window;
    q->ttl_ms = qs->ttl_ms;
    q->max_messages = qs->max_messages;
    q->max_bytes = qs->max_bytes;
    q->overflow = qs->overflow;
    q->paused = qs->paused;
    q->confirm = qs->confirm;
    if (qs->dlq_mode == QUEUE_DLQ_NAMED)
        return queue_set_dlq(b, q, qs->dlq_name, qs->dlq_len);
    return queue_set_dlq(b, q, qs->dlq_mode == QUEUE_DLQ_NONE ? "" : NULL, 0);
}
