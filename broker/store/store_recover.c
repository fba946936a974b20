/* SPDX-License-Identifier: MIT */
/* Loading the store at start: every durable queue with its settings, then every message in
 * id order (so each queue's publish order), with its priority, delivery count, delay and
 * expiry turned back from wall-clock into monotonic time, and dead-letter info. Messages
 * that were in flight when the broker stopped are simply ready again.
 *
 * Each row becomes the journal record that would have written it (QUEUE_PUT, MSG_PUT) and
 * is replayed into the core (journal_replay_queue, journal_replay_msg): recovery does not
 * set queue or delivery fields itself. It reads the net effect of the other records (a
 * MSG_SET is the row as it is now, a MSG_DEL or QUEUE_DEL a row that is not there or a gone
 * id), so those are not replayed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/broker.h"
#include "codec.h"
#include "core/journal.h"
#include "util/log.h"
#include "core/queue.h"
#include "store/store.h"
#include "store/store_int.h"

struct sidmap {
    uint64_t sid;
    struct queue *q;
};

static int
cmp_sid(const void *a, const void *b)
{
    uint64_t x = ((const struct sidmap *)a)->sid;
    uint64_t y = ((const struct sidmap *)b)->sid;

    return x < y ? -1 : x > y;
}

static int64_t
now_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Load the queues; *map gets sid -> queue sorted by sid. */
static int
load_queues(struct broker *b, sqlite3 *db, struct sidmap **map, size_t *n, char *err,
            size_t errlen)
{
    sqlite3_stmt *s;
    size_t cap = 0;
    int rc;

    *map = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(db, "SELECT sid, name, settings FROM queue ORDER BY sid", -1, &s,
                           NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot read queues: %s", sqlite3_errmsg(db));
        return -1;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t sid = (uint64_t)sqlite3_column_int64(s, 0);
        const char *name = (const char *)sqlite3_column_text(s, 1);
        int nlen = sqlite3_column_bytes(s, 1);
        struct journal_qsettings qs;
        struct journal_rec r = {0};
        struct queue *q = NULL;
        if (sid >= b->next_sid) /* not to be given to a new queue: see store_recover() */
            b->next_sid = sid + 1;
        if (!name || !smq_name_valid(name, (size_t)nlen)) {
            log_error("store: skipping a queue with an invalid name (sid %llu)",
                      (unsigned long long)sid);
            continue;
        }
        r.kind = JOURNAL_QUEUE_PUT;
        r.sid = sid;
        r.name = name;
        r.name_len = (uint32_t)nlen;
        r.qs = &qs;
        r.now_ms = b->now_ms;
        if (sqlite3_column_bytes(s, 2) == (int)sizeof(qs)) {
            memcpy(&qs, sqlite3_column_blob(s, 2), sizeof(qs));
            q = journal_replay_queue(b, &r);
        }
        if (!q) {
            snprintf(err, errlen, "cannot load queue %.*s (memory limit, or settings of an "
                     "unknown layout)", nlen, name);
            break;
        }
        if (*n == cap) {
            struct sidmap *m = realloc(*map, (cap = cap ? cap * 2 : 64) * sizeof(**map));
            if (!m) {
                snprintf(err, errlen, "out of memory");
                break;
            }
            *map = m;
        }
        (*map)[(*n)++] = (struct sidmap){sid, q};
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        if (rc != SQLITE_ROW)
            snprintf(err, errlen, "cannot read queues: %s", sqlite3_errmsg(db));
        free(*map); /* the caller has nothing to free on failure */
        *map = NULL;
        *n = 0;
        return -1;
    }
    if (*n)
        qsort(*map, *n, sizeof(**map), cmp_sid);
    return 0;
}

/* One stored message into q, with the id it had: replayed as its MSG_PUT. */
static int
load_message(struct broker *b, struct queue *q, sqlite3_stmt *s, int64_t now)
{
    unsigned prio = (unsigned)sqlite3_column_int(s, 2);
    const uint8_t *dl = sqlite3_column_blob(s, 6);
    int dllen = sqlite3_column_bytes(s, 6);
    int64_t due = sqlite3_column_int64(s, 4);
    int64_t exp = sqlite3_column_int64(s, 5);
    struct journal_rec r = {0};

    r.kind = JOURNAL_MSG_PUT;
    r.id = (uint64_t)sqlite3_column_int64(s, 0);
    r.sid = q->sid;
    r.now_ms = b->now_ms;
    r.prio = (uint8_t)(prio > SMQ_PRIO_MAX ? SMQ_PRIO_MAX : prio);
    r.deliveries = (uint32_t)sqlite3_column_int64(s, 3);
    /* wall-clock ms since the epoch back into the broker's clock: a due time passed is
     * none (ready now), an expiry passed is 1 ms away (it expires at the first timer) */
    r.due_ms = due > now ? b->now_ms + (uint64_t)(due - now) : 0;
    r.expires_ms = exp ? (exp > now ? b->now_ms + (uint64_t)(exp - now) : b->now_ms + 1) : 0;
    r.data = sqlite3_column_blob(s, 7);
    r.len = (uint32_t)sqlite3_column_bytes(s, 7);
    if (dl && dllen >= 5) {
        r.reason = dl[0];
        memcpy(&r.dl_deliveries, dl + 1, 4);
        r.src = (const char *)dl + 5;
        r.srclen = (uint32_t)(dllen - 5);
    }
    return journal_replay_msg(b, q, &r);
}

/* The three sorted streams recovery merges: rows of msg by id, the entries of packs (packs
 * by first, entries in id order, and packs never overlap, so ids rise), and gone ids. */
struct streams {
    sqlite3_stmt *msg, *pack, *gone;
    int has_msg, has_gone;
    uint64_t msg_id, gone_id;
    uint64_t last_e; /* the id of the last pack entry read: ids must rise through packs */
    uint64_t orphans;    /* messages of queues not stored (deleted), skipped */
    uint64_t orphan_sid; /* the highest sid of those queues */
    /* the pack being read */
    struct pack_ref *r;
    const uint8_t *blob;
    size_t len, pos;
    struct pack_entry e;
    int has_e;
};

static int
step_msg(struct streams *s)
{
    int rc = sqlite3_step(s->msg);

    s->has_msg = rc == SQLITE_ROW;
    if (s->has_msg)
        s->msg_id = (uint64_t)sqlite3_column_int64(s->msg, 0);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
step_gone(struct streams *s)
{
    int rc = sqlite3_step(s->gone);

    s->has_gone = rc == SQLITE_ROW;
    if (s->has_gone)
        s->gone_id = (uint64_t)sqlite3_column_int64(s->gone, 0);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* The reason a pack stops the start, into err; -1. */
static int
malformed(char *err, size_t errlen, int64_t first)
{
    snprintf(err, errlen, "the pack of message %lld is malformed", (long long)first);
    return -1;
}

/* The next pack entry into s->e (s->has_e), reading the next pack when one is done and
 * adding it to the index. -1 on a read error or a malformed pack (err says which): an entry
 * cut short or too long, a pack with no entry, or ids that do not rise from entry to entry
 * and from pack to pack (a duplicate, or packs that overlap), which the writer's index and
 * the merge with the rows of msg rely on. */
static int
step_entry(struct streams *s, struct pack_index *ix, char *err, size_t errlen)
{
    for (;;) {
        int64_t first;
        int rc;
        if (s->r && s->pos < s->len) {
            if (!pack_entry_next(s->blob, s->len, &s->pos, s->r->first, &s->e)
                || s->e.id <= s->last_e)
                return malformed(err, errlen, (int64_t)s->r->first);
            s->last_e = s->e.id;
            s->r->members |= (uint64_t)1 << (s->e.id - s->r->first);
            s->r->bytes += s->e.len;
            s->has_e = 1;
            return 0;
        }
        s->r = NULL;
        s->has_e = 0;
        if ((rc = sqlite3_step(s->pack)) == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW) {
            snprintf(err, errlen, "cannot read messages: %s",
                     sqlite3_errmsg(sqlite3_db_handle(s->pack)));
            return -1;
        }
        first = sqlite3_column_int64(s->pack, 0);
        s->blob = sqlite3_column_blob(s->pack, 1);
        s->len = (size_t)sqlite3_column_bytes(s->pack, 1);
        s->pos = 0;
        if (first <= 0 || first > INT64_MAX - (int64_t)PACK_SPAN || s->len == 0)
            return malformed(err, errlen, first);
        if (!(s->r = pack_index_add(ix, (uint64_t)first))) {
            snprintf(err, errlen, "not enough memory for the index of packs");
            return -1;
        }
        ix->count++;
    }
}

static int
prepare_streams(sqlite3 *db, struct streams *s)
{
    memset(s, 0, sizeof(*s));
    return sqlite3_prepare_v2(db,
                              "SELECT id, sid, prio, deliveries, due_ms, exp_ms, dl, body "
                              "FROM msg ORDER BY id", -1, &s->msg, NULL) != SQLITE_OK
           || sqlite3_prepare_v2(db, "SELECT first, body FROM pack ORDER BY first", -1,
                                 &s->pack, NULL) != SQLITE_OK
           || sqlite3_prepare_v2(db, "SELECT id FROM gone ORDER BY id", -1, &s->gone, NULL)
                  != SQLITE_OK;
}

static void
finish_streams(struct streams *s)
{
    sqlite3_finalize(s->msg); /* no read transaction left open: checkpoints can run */
    sqlite3_finalize(s->pack);
    sqlite3_finalize(s->gone);
}

static struct queue *
queue_of(struct sidmap *map, size_t nq, uint64_t sid)
{
    struct sidmap key = {sid, NULL};
    struct sidmap *m = nq ? bsearch(&key, map, nq, sizeof(*map), cmp_sid) : NULL;

    return m ? m->q : NULL;
}

/* A message of queue sid, which is not stored (deleted), is skipped. */
static void
orphan(struct streams *s, uint64_t sid)
{
    s->orphans++;
    if (sid > s->orphan_sid)
        s->orphan_sid = sid;
}

/* The current pack entry: loaded, or gone (a gone row, or its queue was deleted: then it is
 * gone in the index only, and the pack is deleted once its other members are). 1 if
 * loaded, 0 if gone, -1 without memory. */
static int
load_entry(struct broker *b, struct streams *s, struct pack_index *ix, struct sidmap *map,
           size_t nq)
{
    const struct pack_entry *e = &s->e;
    struct queue *q = queue_of(map, nq, e->sid);
    struct journal_rec r = {0};
    int gone;

    while (s->has_gone && s->gone_id < e->id)
        if (step_gone(s))
            return -1;
    gone = s->has_gone && s->gone_id == e->id;
    if (!q && !gone)
        orphan(s, e->sid);
    if (!q || gone) {
        s->r->gone |= (uint64_t)1 << (e->id - s->r->first);
        s->r->dead += e->len;
        ix->dead_bytes += e->len;
        return 0;
    }
    ix->live_bytes += e->len;
    r.kind = JOURNAL_MSG_PUT; /* a plain message */
    r.id = e->id;
    r.sid = e->sid;
    r.now_ms = b->now_ms;
    r.data = e->body;
    r.len = e->len;
    return journal_replay_msg(b, q, &r) ? -1 : 1;
}

int
store_recover(struct broker *b, sqlite3 *db, struct pack_index *ix, char *err, size_t errlen)
{
    struct sidmap *map;
    struct streams s;
    size_t nq;
    uint64_t n = 0;
    uint64_t packed = 0;
    uint64_t max_id = 0;
    int64_t now = now_wall();
    int rc = 0;

    if (load_queues(b, db, &map, &nq, err, errlen))
        return -1;
    if (prepare_streams(db, &s) || step_msg(&s) || step_gone(&s)) {
        snprintf(err, errlen, "cannot read messages: %s", sqlite3_errmsg(db));
        finish_streams(&s);
        free(map);
        return -1;
    }
    if (step_entry(&s, ix, err, errlen))
        rc = -1;
    while (rc == 0 && (s.has_msg || s.has_e)) {
        int loaded;
        if (s.has_msg && (!s.has_e || s.msg_id < s.e.id)) {
            uint64_t sid = (uint64_t)sqlite3_column_int64(s.msg, 1);
            struct queue *q = queue_of(map, nq, sid);
            max_id = s.msg_id > max_id ? s.msg_id : max_id;
            loaded = q ? (load_message(b, q, s.msg, now) ? -1 : 1) : 0;
            if (!q)
                orphan(&s, sid);
            if (loaded >= 0 && step_msg(&s)) {
                snprintf(err, errlen, "cannot read messages: %s", sqlite3_errmsg(db));
                rc = -1;
            }
        } else {
            max_id = s.e.id > max_id ? s.e.id : max_id;
            loaded = load_entry(b, &s, ix, map, nq);
            packed += loaded == 1;
            if (loaded == 1 && s.has_msg && s.msg_id == s.e.id) {
                /* moving a message out of its pack marks it gone in the same transaction */
                snprintf(err, errlen, "message %llu is stored twice (a row, and in the pack of "
                         "message %llu)", (unsigned long long)s.e.id,
                         (unsigned long long)s.r->first);
                rc = -1;
            } else if (loaded >= 0 && step_entry(&s, ix, err, errlen)) {
                rc = -1;
            }
        }
        if (loaded < 0) {
            snprintf(err, errlen, "not enough memory to load the stored messages (%llu loaded); "
                     "raise --max-memory", (unsigned long long)n);
            rc = -1;
        }
        n += loaded == 1;
    }
    finish_streams(&s);
    free(map);
    if (rc)
        return -1;
    if (max_id + 1 > b->next_id)
        b->next_id = max_id + 1;
    /* Skipped messages stay stored (in a pack they are gone in the index only): a new queue
     * given their queue's sid would get them back at the next start. */
    if (s.orphans && s.orphan_sid >= b->next_sid)
        b->next_sid = s.orphan_sid + 1;
    log_info("store: recovered %zu durable queues and %llu messages (%llu in %llu packs)%s", nq,
             (unsigned long long)n,
             (unsigned long long)packed, (unsigned long long)ix->count,
             s.orphans ? " (messages of deleted queues skipped)" : "");
    return 0;
}
