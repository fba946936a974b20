/* SPDX-License-Identifier: MIT */
/* The SQLite store and its writer thread; see store.h. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "codec.h"
#include "core/broker.h"
#include "core/journal.h"
#include "util/log.h"
#include "mem/segment.h"
#include "store/store_int.h"

/* ---------------------------------------------------------------------------------------- */
/* Time                                                                                      */

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A monotonic due time as wall-clock ms, so that it means the same after a restart. */
static int64_t
to_wall(uint64_t mono_due, uint64_t now_mono)
{
    if (mono_due == 0)
        return 0;
    return wall_ms() + (int64_t)mono_due - (int64_t)now_mono;
}

/* ---------------------------------------------------------------------------------------- */
/* The loop's side of the ring                                                               */

static size_t
op_size(size_t blen, size_t slen)
{
    return (sizeof(struct op) + blen + slen + 7) & ~(size_t)7;
}

size_t
store_ring_bytes(size_t max_memory, size_t max_message_size)
{
    size_t ring = max_memory / 8 < STORE_RING_MAX ? max_memory / 8 : STORE_RING_MAX;
    size_t least = STORE_RING_MSGS * (op_size(max_message_size, SMQ_NAME_MAX));

    return ring > least ? ring : least;
}

int
store_ring_check(size_t max_memory, size_t max_message_size, char *err, size_t errlen)
{
    size_t ring = store_ring_bytes(max_memory, max_message_size);

    if (ring <= max_memory / 4)
        return 0;
    snprintf(err, errlen, "the store's write ring needs %zu MiB (%u messages of "
             "--max-message-size), more than a quarter of --max-memory (%zu MiB): raise "
             "--max-memory to at least %zu MiB or lower --max-message-size to at most %zu KiB",
             (ring + (1u << 20) - 1) >> 20, STORE_RING_MSGS, max_memory >> 20,
             (4 * ring + (1u << 20) - 1) >> 20,
             (max_memory / 4 / STORE_RING_MSGS - op_size(0, SMQ_NAME_MAX)) >> 10);
    return -1;
}

int
store_has_room(const struct store *st, size_t body)
{
    uint64_t used = atomic_load_explicit(&st->head, memory_order_relaxed)
                    - atomic_load_explicit(&st->tail, memory_order_acquire);
    uint64_t lag = atomic_load_explicit(&st->appended, memory_order_relaxed)
                   - atomic_load_explicit(&st->committed, memory_order_relaxed);

    /* Bound what a crash can take back (acks are not held): no more than STORE_LAG_OPS
     * operations wait for a commit, while the writer can commit (a full disk lets them
     * queue, so that consumers can still drain) */
    if (lag >= STORE_LAG_OPS && atomic_load_explicit(&st->state, memory_order_relaxed) == STORE_OK)
        return 0;
    /* the worst case: a skip at the end of the ring and the operation itself */
    return used + 2 * op_size(body, SMQ_NAME_MAX) <= st->cap;
}

_Static_assert(offsetof(struct op, type) < 8, "a skip's size and type fit the ring's last 8 bytes");

/* Room for an operation at the head: a pointer to write it at, or NULL if the ring is full
 * (the caller then loses durability for it: see append()). */
static struct op *
reserve(struct store *st, size_t size)
{
    uint64_t head = atomic_load_explicit(&st->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&st->tail, memory_order_acquire);
    size_t at = (size_t)(head % st->cap);
    size_t to_end = st->cap - at;

    if (size > to_end) { /* an operation never wraps: skip to the start */
        if (head + to_end + size - tail > st->cap)
            return NULL;
        /* The end may hold as little as 8 bytes (operations are multiples of 8): a skip is
         * its size and type, the first 8 bytes of struct op, and nothing past the ring's end
         * may be written. The writer reads only those two fields of a skip. */
        struct op *skip = (struct op *)(void *)(st->ring + at);
        memset(skip, 0, to_end < sizeof(*skip) ? to_end : sizeof(*skip));
        skip->size = (uint32_t)to_end;
        skip->type = OP_SKIP;
        head += to_end;
        atomic_store_explicit(&st->head, head, memory_order_release);
        at = 0;
    }
    if (head + size - tail > st->cap)
        return NULL;
    return (struct op *)(void *)(st->ring + at);
}

/* Fill in and publish an operation. Returns its sequence number. The ring is checked before
 * any frame that can append is read (store_has_room), so it is never full here; if it
 * still were, the operation is lost loudly rather than blocking the loop. */
static uint64_t
append_from(struct store *st, struct op *tmpl, const void *body, const void *src,
            const struct segment *seg, uint32_t off)
{
    size_t size = op_size(tmpl->blen, tmpl->slen);
    struct op *o = reserve(st, size);
    uint64_t seq = atomic_load_explicit(&st->appended, memory_order_relaxed) + 1;

    if (!o) {
        log_error("store: operation ring full; an update of message %llu is not durable",
                  (unsigned long long)tmpl->id);
        return 0;
    }
    tmpl->size = (uint32_t)size;
    tmpl->seq = seq;
    memcpy(o, tmpl, sizeof(*o));
    if (tmpl->blen && seg)
        seg_copy_to(seg, off, (uint8_t *)(o + 1), tmpl->blen);
    else if (tmpl->blen && body) /* a held delivery with a body always has its segment */
        memcpy((uint8_t *)(o + 1), body, tmpl->blen);
    if (tmpl->slen)
        memcpy((uint8_t *)(o + 1) + tmpl->blen, src, tmpl->slen);
    atomic_store_explicit(&st->appended, seq, memory_order_relaxed);
    atomic_store(&st->head, atomic_load_explicit(&st->head, memory_order_relaxed) + size);
    if (atomic_load(&st->idle)) { /* one wake-up per idle spell, not one per operation */
        uint64_t one = 1;
        atomic_store(&st->idle, 0);
        if (write(st->efd_work, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_error("store: cannot wake the writer: %s", strerror(errno));
    }
    return seq;
}

static uint64_t
append(struct store *st, struct op *tmpl, const void *body, const void *src)
{
    return append_from(st, tmpl, body, src, NULL, 0);
}

/* The journal's records into ring operations (journal.h). The core checked that the queue
 * is durable; the ring never fails the core (append_from). */
static void
put_queue(struct store *st, const struct journal_rec *r)
{
    struct op o = {0};

    o.type = OP_QPUT;
    o.id = r->sid;
    o.blen = (uint32_t)sizeof(*r->qs);
    o.slen = r->name_len;
    append(st, &o, r->qs, r->name);
}

/* The message state of r into o (inserts and updates). */
static void
describe(struct op *o, const struct journal_rec *r)
{
    o->prio = r->prio;
    o->deliveries = r->deliveries;
    o->due_wall = to_wall(r->due_ms, r->now_ms);
    o->exp_wall = to_wall(r->expires_ms, r->now_ms);
    o->reason = r->reason;
    o->dl_deliveries = r->dl_deliveries;
    o->slen = r->srclen;
}

static void
take_record(void *ctx, const struct journal_rec *r)
{
    struct store *st = ctx;
    struct op o = {0};

    switch (r->kind) {
    case JOURNAL_QUEUE_PUT:
        put_queue(st, r);
        return;
    case JOURNAL_QUEUE_DEL:
        o.type = OP_QDEL;
        o.id = r->sid;
        append(st, &o, NULL, NULL);
        return;
    case JOURNAL_MSG_PUT:
        o.type = OP_INS;
        o.id = r->id;
        o.sid = r->sid;
        o.blen = r->len;
        describe(&o, r);
        append_from(st, &o, r->data, r->src, r->data ? NULL : r->seg, r->off);
        return;
    case JOURNAL_MSG_SET:
        o.type = OP_UPD;
        o.id = r->id;
        o.sid = r->sid;
        describe(&o, r);
        append(st, &o, NULL, r->src);
        return;
    case JOURNAL_MSG_DEL:
        o.type = OP_DEL;
        o.id = r->id;
        o.len = r->len;
        append(st, &o, NULL, NULL);
        return;
    case JOURNAL_DEDUP: /* not stored: windows start empty after a restart (durability.md) */
        return;
    }
}

static const struct journal_ops journal_ops = {take_record};

struct journal *
store_journal(struct store *st)
{
    return st ? &st->journal : NULL;
}

void
store_want_sync(struct store *st, uint64_t seq)
{
    if (st && seq > atomic_load_explicit(&st->sync_upto, memory_order_relaxed))
        atomic_store_explicit(&st->sync_upto, seq, memory_order_relaxed);
}

int
store_event_fd(const struct store *st)
{
    return st->efd_done;
}

void
store_drain_event(struct store *st)
{
    uint64_t v;

    while (read(st->efd_done, &v, sizeof(v)) == sizeof(v))
        ;
}

enum store_state
store_state(const struct store *st)
{
    return (enum store_state)atomic_load(&st->state);
}

uint64_t
store_appended(const struct store *st)
{
    return atomic_load(&st->appended);
}

uint64_t
store_committed(const struct store *st)
{
    return atomic_load(&st->committed);
}

uint64_t
store_synced(const struct store *st)
{
    return atomic_load(&st->synced);
}

uint64_t
store_commits(const struct store *st)
{
    return atomic_load(&st->commits);
}

void
store_pack_stats(const struct store *st, uint64_t *packs, uint64_t *live, uint64_t *dead)
{
    *packs = atomic_load(&st->pk_count);
    *live = atomic_load(&st->pk_live_bytes);
    *dead = atomic_load(&st->pk_dead_bytes);
}

void
store_disk_bytes(const struct store *st, uint64_t *db, uint64_t *wal, uint64_t *free_bytes)
{
    *db = atomic_load(&st->db_bytes);
    *wal = atomic_load(&st->wal_bytes);
    *free_bytes = atomic_load(&st->free_bytes);
}

/* ---------------------------------------------------------------------------------------- */
/* The writer thread                                                                         */

int
store_prep(sqlite3 *db, const char *sql, sqlite3_stmt **s)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, NULL);
}

const char *
store_errmsg(struct store *st, int rc)
{
    if (rc == SQLITE_IOERR_WRITE && st->fail_after)
        return "injected I/O error";
    return sqlite3_extended_errcode(st->db) == rc ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
}

/* Run a prepared statement that returns no rows; SQLite's result code. */
int
store_run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

int
store_exec_op(struct store *st, const struct op *o)
{
    const uint8_t *body = (const uint8_t *)(o + 1);
    sqlite3_stmt *s;
    int done;
    int rc;

    switch (o->type) {
    case OP_QPUT:
        s = st->qput;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)o->id);
        sqlite3_bind_text(s, 2, (const char *)body + o->blen, (int)o->slen, SQLITE_STATIC);
        sqlite3_bind_blob(s, 3, body, (int)o->blen, SQLITE_STATIC);
        return store_run(s);
    case OP_QDEL:
        sqlite3_bind_int64(st->qdelmsg, 1, (sqlite3_int64)o->id);
        if (store_run(st->qdelmsg) != SQLITE_DONE)
            return sqlite3_errcode(st->db);
        if ((rc = pack_drop_queue(st, o->id)) != SQLITE_DONE)
            return rc;
        sqlite3_bind_int64(st->qdel, 1, (sqlite3_int64)o->id);
        return store_run(st->qdel);
    case OP_UPD: /* a packed message moves into a row; one in a row is updated there */
        if ((rc = pack_update(st, o, &done)) != SQLITE_DONE || done)
            return rc;
        /* fall through */
    case OP_INS:
        s = o->type == OP_INS ? st->ins : st->upd;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)o->id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)o->sid);
        sqlite3_bind_int(s, 3, o->prio);
        sqlite3_bind_int64(s, 4, o->deliveries);
        sqlite3_bind_int64(s, 5, o->due_wall);
        sqlite3_bind_int64(s, 6, o->exp_wall);
        if (o->reason) {
            uint8_t dl[5 + 255];
            dl[0] = o->reason;
            memcpy(dl + 1, &o->dl_deliveries, 4);
            memcpy(dl + 5, body + o->blen, o->slen);
            sqlite3_bind_blob(s, 7, dl, (int)(5 + o->slen), SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_null(s, 7);
        }
        if (o->type == OP_INS)
            sqlite3_bind_blob(s, 8, o->blen ? (const void *)body : "", (int)o->blen,
                              SQLITE_STATIC);
        return store_run(s);
    case OP_DEL:
        if ((rc = pack_delete(st, o, &done)) != SQLITE_DONE || done)
            return rc;
        sqlite3_bind_int64(st->del, 1, (sqlite3_int64)o->id);
        return store_run(st->del);
    default:
        return SQLITE_DONE;
    }
}

/* Most messages are inserted with only id, queue and payload, the rest their defaults. */
static int
is_plain(const struct op *o)
{
    return o->type == OP_INS && !o->prio && !o->deliveries && !o->due_wall && !o->exp_wall
           && !o->reason;
}

/* Execute one operation in order: a plain insert is gathered (the gathered ones run when
 * INS_ROWS are there or before any other operation). SQLite's result. */
static int
exec_gather(struct store *st, const struct op *o)
{
    int rc;

    if (is_plain(o)) {
        st->rows[st->nrows++] = o;
        return st->nrows == INS_ROWS ? pack_flush(st) : SQLITE_DONE;
    }
    if (st->nrows && (rc = pack_flush(st)) != SQLITE_DONE)
        return rc;
    return store_exec_op(st, o);
}

static void
notify_loop(struct store *st)
{
    uint64_t one = 1;

    if (write(st->efd_done, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("store: cannot notify the event loop: %s", strerror(errno));
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void
look_at_disk(struct store *st)
{
    struct stat sb;
    char wal[4096 + 8];
    sqlite3_stmt *s;

    if (stat(st->path, &sb) == 0)
        atomic_store(&st->db_bytes, (uint64_t)sb.st_size);
    snprintf(wal, sizeof(wal), "%s-wal", st->path);
    atomic_store(&st->wal_bytes, stat(wal, &sb) == 0 ? (uint64_t)sb.st_size : 0);
    if (sqlite3_prepare_v2(st->db, "PRAGMA freelist_count", -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            atomic_store(&st->free_bytes, (uint64_t)sqlite3_column_int64(s, 0) * st->page_size);
        sqlite3_finalize(s);
    }
}

/* Acked messages leave free pages that SQLite reuses; when they are more than a quarter of
 * the file (and at least 16 MiB), give some back to the file system. */
static void
give_back_space(struct store *st)
{
    uint64_t db = atomic_load(&st->db_bytes);
    uint64_t fr = atomic_load(&st->free_bytes);

    char sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%u)", VACUUM_BYTES / st->page_size);
    if (fr >= VACUUM_BYTES && fr * 4 > db
        && sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        log_warn("store: incremental vacuum: %s", sqlite3_errmsg(st->db));
}

/* fsync the database file (not the WAL): what checkpoints without a sync wrote to it.
 * SQLite's result. */
static int
sync_db_file(struct store *st)
{
    sqlite3_file *f = NULL;

    if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f
        || !f->pMethods)
        return SQLITE_IOERR_FSYNC;
    return f->pMethods->xSync(f, SQLITE_SYNC_FULL);
}

/* Commit everything from tail up to (a snapshot of) head, in transactions of at most
 * BATCH_OPS operations. Returns 0, or -1 when the batch failed (state set; the operations
 * stay in the ring to be tried again). */
static int
commit_pending(struct store *st)
{
    uint64_t tail = atomic_load_explicit(&st->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&st->head, memory_order_acquire);
    uint64_t last = 0;
    uint64_t pos = tail;
    uint32_t nops = 0;
    size_t bytes = 0;
    int want_sync;
    int rc;

    { /* the loop may have asked ahead of an operation it then did not append */
        uint64_t upto = atomic_load(&st->sync_upto);
        uint64_t appended = atomic_load(&st->appended);
        want_sync = (upto < appended ? upto : appended) > atomic_load(&st->synced);
    }
    /* a full disk with nothing to write (as at a start on it): a write to see if it has room */
    if (tail == head && !want_sync && atomic_load(&st->state) != STORE_FULL)
        return 0;
    if (want_sync && !st->synced_data && (rc = sync_db_file(st)) != SQLITE_OK)
        goto failed; /* the first synced commit: what unsynced checkpoints wrote, on disk */
    store_run(want_sync ? st->sync_full : st->sync_off);
    if ((rc = store_run(st->begin)) != SQLITE_DONE)
        goto failed;
    pack_begin(st);
    if (tail == head && (rc = store_run(st->touch)) != SQLITE_DONE)
        goto rollback; /* nothing pending but a sync: a write for the commit to sync */
    if (want_sync && !st->synced_data && (rc = store_run(st->mark_synced)) != SQLITE_DONE)
        goto rollback;
    while (pos < head && nops < BATCH_OPS && bytes < BATCH_BYTES) {
        const struct op *o = (const struct op *)(const void *)(st->ring + pos % st->cap);
        if (o->type != OP_SKIP) {
            if ((rc = exec_gather(st, o)) != SQLITE_DONE)
                goto rollback;
            last = o->seq;
            nops++;
            bytes += o->blen;
        }
        pos += o->size;
    }
    if (st->nrows && (rc = pack_flush(st)) != SQLITE_DONE)
        goto rollback;
    if (st->delay_ms)
        sleep_ms((int)st->delay_ms);
    if (st->fail_after && atomic_load(&st->commits) >= st->fail_after) {
        rc = SQLITE_IOERR_WRITE; /* injected: what a failing disk returns */
        goto rollback;
    }
    if ((rc = store_run(st->commit)) != SQLITE_DONE)
        goto rollback;
    pack_commit(st);
    atomic_store_explicit(&st->tail, pos, memory_order_release);
    st->synced_data |= want_sync;
    if (last) {
        atomic_store(&st->committed, last);
        if (want_sync)
            atomic_store(&st->synced, last);
    } else if (want_sync) { /* only skips: what was committed before is synced now */
        atomic_store(&st->synced, atomic_load(&st->committed));
    }
    atomic_fetch_add(&st->commits, 1);
    if (atomic_load(&st->state) == STORE_FULL) {
        log_warn("store: committing again: the disk has room");
        atomic_store(&st->state, STORE_OK);
    }
    notify_loop(st);
    return 0;
rollback:
    st->nrows = 0;
    store_run(st->rollback);
    pack_rollback(st);
failed:
    if ((rc & 0xff) == SQLITE_BUSY) {
        log_warn("store: database busy (locked by another process?); retrying");
        return -1;
    }
    if ((rc & 0xff) == SQLITE_FULL) {
        if (atomic_load(&st->state) != STORE_FULL)
            log_error("store: disk full; durable publishes refused until there is room");
        atomic_store(&st->state, STORE_FULL);
        notify_loop(st);
        return -1;
    }
    log_error("store: %s (%d); durable publishes are refused and not confirmed until the "
              "broker restarts", store_errmsg(st, rc), rc);
    atomic_store(&st->state, STORE_FAILED);
    notify_loop(st);
    return -1;
}

/* SQLite's WAL hook, called after each commit with the number of frames in the WAL.
 * Installing it turns the automatic checkpoint off: checkpoint() runs instead. */
static int
note_wal_size(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct store *st = arg;

    (void)db;
    (void)name;
    st->wal_frames = (uint32_t)frames;
    return SQLITE_OK;
}

/* Copy the WAL back into the database once it holds CKPT_BYTES. Here, after the loop has
 * been told of the commit, rather than inside COMMIT as SQLite's automatic checkpoint
 * would, so that no confirmation waits for it; and early (1 MiB), so that the WAL the
 * commits write and the checkpoint reads back stays in the CPU's caches.
 *
 * Synced, or not: the next commit after a complete checkpoint starts the WAL over,
 * overwriting frames that only the database file then holds. If that file was not fsynced
 * after the checkpoint, a power loss can leave it torn, losing what was in those frames and
 * possibly corrupting pages that older messages share. That is allowed for what was only
 * 'written', not for a message confirmed 'synced': so once the database may hold one
 * (synced_data), every checkpoint runs with synchronous=FULL (the WAL fsynced before, the
 * database after), and the first synced commit fsyncs the database file before it starts.
 * A database that holds only 'written' messages pays no fsync. */
static void
checkpoint(struct store *st)
{
    int log = 0;
    int done = 0;
    int rc;

    if ((uint64_t)st->wal_frames * st->page_size
        < (st->synced_data ? CKPT_SYNCED_BYTES : CKPT_BYTES))
        return;
    store_run(st->synced_data ? st->sync_full : st->sync_off);
    rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY && rc != st->ckpt_rc)
        log_warn("store: checkpoint: %s (the WAL grows until one succeeds)",
                 sqlite3_errmsg(st->db));
    st->ckpt_rc = rc; /* said once, not after every commit (a full disk) */
    st->wal_frames = 0; /* the next commit says again how large the WAL is */
}

static void *
writer_main(void *arg)
{
    struct store *st = arg;
    uint64_t looked = 0;

    for (;;) {
        uint64_t v;
        int stop = atomic_load(&st->stop);
        if (atomic_load(&st->state) == STORE_FAILED) {
            if (stop)
                break;
            sleep_ms(RETRY_MS);
            continue;
        }
        if (commit_pending(st) < 0) {
            if (stop && atomic_load(&st->state) != STORE_OK)
                break; /* at shutdown, nothing more can be done */
            sleep_ms(RETRY_MS);
            continue;
        }
        checkpoint(st);
        if (atomic_load(&st->commits) - looked >= 64 || looked == 0) {
            looked = atomic_load(&st->commits);
            pack_compact(st);
            look_at_disk(st);
            give_back_space(st);
        }
        if (atomic_load_explicit(&st->tail, memory_order_relaxed)
            != atomic_load_explicit(&st->head, memory_order_acquire))
            continue;
        if (stop)
            break;
        if (pack_compact(st)) /* acks that came last may have left packs to compact: */
            continue;         /* more may be left, and work may have arrived meanwhile */
        atomic_store(&st->idle, 1);
        if (atomic_load(&st->tail) != atomic_load(&st->head) || atomic_load(&st->stop)) {
            atomic_store(&st->idle, 0); /* work arrived meanwhile */
            continue;
        }
        if (read(st->efd_work, &v, sizeof(v)) < 0 && errno != EINTR && errno != EAGAIN)
            sleep_ms(10);
        atomic_store(&st->idle, 0);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening, recovery, closing                                                                */

/* The schema, version SCHEMA_VERSION (PRAGMA user_version; 0 is a new, empty file).
 *
 * Changing it: bump SCHEMA_VERSION, write the new schema here, and in migrate() add the
 * step from the previous version (ALTER TABLE ..., a copy into a new table), which runs in
 * one transaction at start, before loading. A database whose version is newer than
 * SCHEMA_VERSION stops the start: it may hold what this broker would misread or destroy.
 * What is not the schema needs no bump: the page size (each database keeps the one it was
 * created with) and the keys in meta. */
#define SCHEMA_VERSION 2

static const char schema[] =
    /* these two take effect in a new database (before its tables). 16 KiB pages: a quarter
     * of the b-tree pages, cells and WAL frames per message that 4 KiB pages need */
    "PRAGMA page_size=16384;"
    "PRAGMA auto_vacuum=INCREMENTAL;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA journal_size_limit=67108864;"
    "CREATE TABLE IF NOT EXISTS queue("
    "  sid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, settings BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS msg("
    "  id INTEGER PRIMARY KEY,"     /* the broker's message id: appends at the right edge */
    "  sid INTEGER NOT NULL,"       /* queue.sid */
    "  prio INTEGER NOT NULL DEFAULT 0,"
    "  deliveries INTEGER NOT NULL DEFAULT 0,"
    "  due_ms INTEGER NOT NULL DEFAULT 0,"  /* delayed until (ms since the epoch); 0: ready */
    "  exp_ms INTEGER NOT NULL DEFAULT 0,"  /* expires at; 0: never */
    "  dl BLOB,"                    /* dead letter: reason, deliveries, source queue name */
    "  body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER);"
    /* version 2: packs of plain messages (store_pack.c) */
    "CREATE TABLE IF NOT EXISTS pack(first INTEGER PRIMARY KEY, body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS gone(id INTEGER PRIMARY KEY);";

/* The statement inserting INS_ROWS plain messages. OR ROLLBACK, not the default ABORT: a
 * statement of several rows that could abort halfway needs a statement journal (a temporary
 * file receiving a copy of every page the statement changes); a failure rolls the whole
 * transaction back anyway. */
static int
prepare_rows(struct store *st)
{
    char sql[64 + INS_ROWS * 24];
    size_t at = (size_t)snprintf(sql, sizeof(sql),
                                 "INSERT OR ROLLBACK INTO msg(id,sid,body) VALUES");

    for (unsigned i = 0; i < INS_ROWS; i++)
        at += (size_t)snprintf(sql + at, sizeof(sql) - at, "%s(?%u,?%u,?%u)", i ? "," : "",
                               3 * i + 1, 3 * i + 2, 3 * i + 3);
    return store_prep(st->db, sql, &st->ins_rows);
}

static int
prepare_all(struct store *st)
{
    sqlite3 *db = st->db;

    return prepare_rows(st)
           || store_prep(db,
                   "INSERT INTO msg(id,sid,prio,deliveries,due_ms,exp_ms,dl,body) "
                   "VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                   &st->ins)
           || store_prep(db, "INSERT INTO msg(id,sid,body) VALUES(?1,?2,?3)", &st->ins_plain)
           || store_prep(db,
                   "UPDATE msg SET sid=?2,prio=?3,deliveries=?4,due_ms=?5,exp_ms=?6,dl=?7 "
                   "WHERE id=?1",
                   &st->upd)
           || store_prep(db, "DELETE FROM msg WHERE id=?1", &st->del)
           || store_prep(db, "INSERT OR REPLACE INTO queue(sid,name,settings) VALUES(?1,?2,?3)",
                   &st->qput)
           || store_prep(db, "DELETE FROM queue WHERE sid=?1", &st->qdel)
           || store_prep(db, "DELETE FROM msg WHERE sid=?1", &st->qdelmsg)
           || store_prep(db, "BEGIN IMMEDIATE", &st->begin) || store_prep(db, "COMMIT", &st->commit)
           || store_prep(db, "ROLLBACK", &st->rollback)
           || store_prep(db, "PRAGMA synchronous=FULL", &st->sync_full)
           || store_prep(db, "PRAGMA synchronous=OFF", &st->sync_off)
           || store_prep(db, "INSERT OR REPLACE INTO meta(k, v) VALUES('synced', 1)", &st->touch)
           || store_prep(db, "INSERT OR REPLACE INTO meta(k, v) VALUES('synced_data', 1)",
                   &st->mark_synced)
           || pack_prepare(st);
}

static void
finalize_all(struct store *st)
{
    sqlite3_stmt *all[] = {st->ins, st->ins_plain, st->upd,      st->del,    st->qput,
                           st->qdel,   st->qdelmsg,  st->begin,  st->commit,
                           st->rollback, st->sync_full, st->sync_off, st->touch, st->ins_rows,
                           st->mark_synced};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    pack_finalize(st);
}

/* The integer a query returns (a PRAGMA's value), or -1. */
static int64_t
query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int
quick_check(sqlite3 *db, char *why, size_t len)
{
    sqlite3_stmt *s;
    int ok = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, len, "%s", sqlite3_errmsg(db));
        return -1;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        ok = r && strcmp(r, "ok") == 0;
        snprintf(why, len, "%s", r ? r : "no result");
    } else {
        snprintf(why, len, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    return ok ? 0 : -1;
}

/* May the database hold a message confirmed 'synced' (see checkpoint())? Yes if it holds
 * messages and does not say otherwise: one written before the 'synced_data' mark existed
 * says nothing. An empty database is marked as holding none. */
static int
holds_synced(sqlite3 *db)
{
    if (query_int(db, "SELECT EXISTS(SELECT 1 FROM msg) OR EXISTS(SELECT 1 FROM pack)") == 0) {
        if (sqlite3_exec(db, "INSERT OR REPLACE INTO meta(k, v) VALUES('synced_data', 0)", NULL,
                         NULL, NULL) != SQLITE_OK)
            log_warn("store: cannot mark the database empty: %s", sqlite3_errmsg(db));
        return 0;
    }
    return query_int(db, "SELECT v FROM meta WHERE k='synced_data'") != 0;
}

static void
store_free(struct store *st)
{
    if (!st)
        return;
    finalize_all(st);
    if (st->db) { /* closing checkpoints and removes the WAL: the database must be on disk */
        sqlite3_exec(st->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
        sqlite3_close_v2(st->db);
    }
    if (st->efd_work >= 0)
        close(st->efd_work);
    if (st->efd_done >= 0)
        close(st->efd_done);
    if (st->ring) {
        mem_release(&st->b->mem, st->cap);
        free(st->ring);
    }
    free(st);
}

/* What open_db() found. */
enum store_open_result {
    STORE_OPEN_OK = 0,
    STORE_OPEN_BROKEN = 1, /* cannot be opened or set up, or fails its check */
    STORE_OPEN_NEWER = 2,  /* a schema version newer than this broker's */
    STORE_OPEN_FULL = 3    /* a new or older database on a full disk: cannot be set up */
};

/* Bring a database of an older schema version up to SCHEMA_VERSION, in one transaction.
 * 0 is a new file (the schema creates everything); 1 -> 2 added the tables pack and gone,
 * which the schema's CREATE TABLE IF NOT EXISTS has just made (empty: version 1's messages
 * stay rows of msg). 0, or -1 with SQLite's message in the database handle. */
static int
migrate(sqlite3 *db, int64_t version)
{
    char sql[64];

    if (version == SCHEMA_VERSION)
        return 0;
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", SCHEMA_VERSION);
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Open the database file, check it and set it up. On failure err says why; a file of a
 * newer schema (STORE_OPEN_NEWER) is left as it is, never set aside. */
static enum store_open_result
open_db(struct store *st, char *err, size_t errlen)
{
    char why[256];
    int64_t version;
    int64_t ps;

    if (sqlite3_open_v2(st->path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", st->path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return STORE_OPEN_BROKEN;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 1000);
    if (quick_check(st->db, why, sizeof(why))) {
        snprintf(err, errlen, "%s failed its integrity check (%s)", st->path, why);
        return STORE_OPEN_BROKEN;
    }
    version = query_int(st->db, "PRAGMA user_version");
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "%s has schema version %lld, newer than this slabmqd's %d: it was "
                 "written by a newer slabmqd; run that one, or restore the copy of the data "
                 "directory made before the upgrade", st->path, (long long)version,
                 SCHEMA_VERSION);
        return STORE_OPEN_NEWER;
    }
    if (sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK
        || migrate(st->db, version)) {
        int full = (sqlite3_errcode(st->db) & 0xff) == SQLITE_FULL;
        if (full && version == SCHEMA_VERSION) { /* its schema is there: start read-only */
            st->start_full = 1;
            sqlite3_exec(st->db, "PRAGMA journal_size_limit=67108864", NULL, NULL, NULL);
            goto done;
        }
        snprintf(err, errlen, "cannot set up %s: %s%s", st->path, sqlite3_errmsg(st->db),
                 full ? " (free some space on its file system and start again)" : "");
        return full ? STORE_OPEN_FULL : STORE_OPEN_BROKEN;
    }
done:
    ps = query_int(st->db, "PRAGMA page_size");
    st->page_size = ps >= 512 && ps <= 65536 ? (uint32_t)ps : 4096;
    return STORE_OPEN_OK;
}

/* Delete the packs recovery found empty, in one transaction. 0; 1 when the disk is full
 * (start_full set: they are left, to be found empty again at the next start); -1 else. */
static int
delete_empty_packs(struct store *st)
{
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    if (rc == SQLITE_OK && (rc = pack_delete_empty(st)) == SQLITE_DONE)
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK || rc == SQLITE_DONE)
        return 0;
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    if ((rc & 0xff) != SQLITE_FULL)
        return -1;
    st->start_full = 1;
    return 0;
}

struct store *
store_open(struct broker *b, const char *dir, size_t ring_bytes, int ignore_corrupt,
           char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof(*st));
    const char *delay = getenv("SLABMQ_STORE_COMMIT_DELAY_MS");
    const char *fail = getenv("SLABMQ_STORE_FAIL_AFTER_COMMITS");
    enum store_open_result opened;

    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->b = b;
    st->journal.ops = &journal_ops;
    st->journal.ctx = st;
    st->journal.confirm = STORE_WRITTEN;
    st->efd_work = st->efd_done = -1;
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        store_free(st);
        return NULL;
    }
    snprintf(st->path, sizeof(st->path), "%s/slabmq.db", dir);
    if ((opened = open_db(st, err, errlen)) != STORE_OPEN_OK) {
        char aside[4200];
        if (!ignore_corrupt || !st->db || opened == STORE_OPEN_NEWER || opened == STORE_OPEN_FULL) {
            store_free(st);
            return NULL;
        }
        sqlite3_close_v2(st->db);
        st->db = NULL;
        snprintf(aside, sizeof(aside), "%s.corrupt-%lld", st->path, (long long)wall_ms());
        log_error("store: %s; --ignore-corrupt-data: moved aside to %s, starting empty", err,
                  aside);
        if (rename(st->path, aside) < 0 || open_db(st, err, errlen) != STORE_OPEN_OK) {
            store_free(st);
            return NULL;
        }
    }
    if (prepare_all(st)) {
        snprintf(err, errlen, "cannot prepare statements: %s", sqlite3_errmsg(st->db));
        store_free(st);
        return NULL;
    }
    if (store_recover(b, st->db, &st->packs, err, errlen)) {
        store_free(st);
        return NULL;
    }
    if (!st->start_full && delete_empty_packs(st)) {
        snprintf(err, errlen, "cannot delete empty packs: %s", sqlite3_errmsg(st->db));
        store_free(st);
        return NULL;
    }
    if (st->start_full) {
        log_warn("store: the disk holding %s is full; durable publishes are refused until "
                 "there is room (consumers can drain; checked every %d ms)", st->path,
                 RETRY_MS);
        atomic_store(&st->state, STORE_FULL);
    }
    st->synced_data = holds_synced(st->db);
    sqlite3_wal_hook(st->db, note_wal_size, st);
    st->cap = ring_bytes & ~(size_t)7; /* operations are multiples of 8: so is the end */
    if (mem_reserve(&b->mem, st->cap) || !(st->ring = malloc(st->cap))) {
        if (!st->ring && st->cap)
            mem_release(&b->mem, st->cap);
        st->cap = 0;
        snprintf(err, errlen, "cannot reserve %zu MiB for the store's write ring: the "
                 "messages loaded left too little of --max-memory (%zu MiB); raise --max-memory",
                 (ring_bytes + (1u << 20) - 1) >> 20, b->mem.limit >> 20);
        store_free(st);
        return NULL;
    }
    st->efd_work = eventfd(0, EFD_CLOEXEC);
    st->efd_done = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    st->delay_ms = delay ? strtoull(delay, NULL, 10) : 0;
    st->fail_after = fail ? strtoull(fail, NULL, 10) : 0;
    look_at_disk(st); /* the last use of the database on this thread */
    if (st->efd_work < 0 || st->efd_done < 0
        || pthread_create(&st->thread, NULL, writer_main, st) != 0) {
        snprintf(err, errlen, "cannot start the store's writer thread");
        store_free(st);
        return NULL;
    }
    st->started = 1;
    return st;
}

void
store_stop(struct store *st)
{
    uint64_t one = 1;

    if (st->started) {
        store_want_sync(st, atomic_load(&st->appended)); /* everything, synced */
        atomic_store(&st->stop, 1);
        if (write(st->efd_work, &one, sizeof(one)) < 0)
            log_error("store: cannot stop the writer: %s", strerror(errno));
        pthread_join(st->thread, NULL);
        if (atomic_load(&st->tail) != atomic_load(&st->head))
            log_error("store: %llu bytes of operations could not be committed at shutdown",
                      (unsigned long long)(atomic_load(&st->head) - atomic_load(&st->tail)));
        st->started = 0;
    }
}

void
store_close(struct store *st)
{
    if (!st)
        return;
    store_stop(st);
    store_free(st);
}
