/* SPDX-License-Identifier: MIT */
/* Packs: runs of plain durable messages stored as one row (see store_int.h for why).
 *
 * Tables (schema version 2, store.c):
 *   pack(first INTEGER PRIMARY KEY, body BLOB)  one row per pack; body is its entries, in
 *       id order, each: off (u8, id - first), sid (u64 LE), len (u32 LE), then len bytes
 *   gone(id INTEGER PRIMARY KEY)                 members of a live pack that are gone
 * A message is stored if it has a row in msg, or is an entry of a pack with no gone row.
 * Every change below happens inside the writer's transaction, so a crash leaves either the
 * state before the commit or after it. */
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "store/store.h"
#include "store/store_int.h"

/* ---------------------------------------------------------------------------------------- */
/* The index                                                                                 */

/* An array of n elements of elem bytes with room for one more: v, or v moved by realloc()
 * (*cap doubled, from 256), or NULL without memory (v and *cap left as they were). */
static void *
room(void *v, size_t n, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 256;
    void *nv;

    if (n < *cap)
        return v;
    if (!(nv = realloc(v, ncap * elem)))
        return NULL;
    *cap = ncap;
    return nv;
}

struct pack_ref *
pack_index_add(struct pack_index *ix, uint64_t first)
{
    struct pack_ref *r;
    struct pack_ref *v;

    if (ix->n && ix->v[ix->n - 1].first >= first)
        return NULL; /* kept sorted: the caller checks, this is the backstop */
    if (!(v = room(ix->v, ix->n, &ix->cap, sizeof(*v))))
        return NULL;
    ix->v = v;
    r = &ix->v[ix->n++];
    memset(r, 0, sizeof(*r));
    r->first = first;
    return r;
}

/* The pack whose members may include id: the last one starting at or before it. */
struct pack_ref *
pack_index_find(struct pack_index *ix, uint64_t id)
{
    size_t lo = 0;
    size_t hi = ix->n;

    if (!ix->n || id < ix->v[0].first)
        return NULL;
    if (id >= ix->v[ix->n - 1].first) /* the usual case: a recent message */
        lo = ix->n - 1;
    else
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (ix->v[mid].first <= id)
                lo = mid;
            else
                hi = mid;
        }
    return id - ix->v[lo].first < PACK_SPAN ? &ix->v[lo] : NULL;
}

int
pack_live(const struct pack_ref *r, uint64_t id)
{
    uint64_t bit = (uint64_t)1 << (id - r->first);

    return (r->members & bit) && !(r->gone & bit);
}

/* Drop the entries of empty packs once they are a quarter of the index (a FIFO queue
 * empties packs from the front: dropping each at once would move the whole array). */
static void
pack_index_tidy(struct pack_index *ix)
{
    size_t w = 0;

    if (ix->empty * 4 < ix->n || ix->empty < 64)
        return;
    for (size_t i = 0; i < ix->n; i++)
        if (ix->v[i].members != ix->v[i].gone)
            ix->v[w++] = ix->v[i];
    ix->n = w;
    ix->empty = 0;
}

void
pack_index_free(struct pack_index *ix)
{
    free(ix->v);
    free(ix->undo);
    memset(ix, 0, sizeof(*ix));
}

/* ---------------------------------------------------------------------------------------- */
/* The body                                                                                  */

static void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int
pack_entry_next(const uint8_t *blob, size_t len, size_t *pos, uint64_t first,
                struct pack_entry *e)
{
    size_t at = *pos;

    if (len - at < PACK_ENTRY_HEAD || at >= len)
        return 0;
    e->id = first + blob[at];
    e->sid = get_le(blob + at + 1, 8);
    e->len = (uint32_t)get_le(blob + at + 9, 4);
    if (blob[at] >= PACK_SPAN || e->len > PACK_MAX_BODY || e->len > len - at - PACK_ENTRY_HEAD)
        return 0;
    e->body = blob + at + PACK_ENTRY_HEAD;
    *pos = at + PACK_ENTRY_HEAD + e->len;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Transactions: the index follows the database                                              */

void
pack_begin(struct store *st)
{
    struct pack_index *ix = &st->packs;

    ix->nundo = 0;
    ix->n0 = ix->n;
    ix->empty0 = ix->empty;
    ix->live0 = ix->live_bytes;
    ix->dead0 = ix->dead_bytes;
    ix->count0 = ix->count;
}

void
pack_commit(struct store *st)
{
    struct pack_index *ix = &st->packs;

    ix->nundo = 0;
    pack_index_tidy(ix);
    ix->n0 = ix->n;
    atomic_store(&st->pk_live_bytes, ix->live_bytes);
    atomic_store(&st->pk_dead_bytes, ix->dead_bytes);
    atomic_store(&st->pk_count, ix->count);
}

void
pack_rollback(struct store *st)
{
    struct pack_index *ix = &st->packs;

    while (ix->nundo) {
        const struct pack_undo *u = &ix->undo[--ix->nundo];
        ix->v[u->at] = u->old;
    }
    ix->n = ix->n0;
    ix->empty = ix->empty0;
    ix->live_bytes = ix->live0;
    ix->dead_bytes = ix->dead0;
    ix->count = ix->count0;
}

/* r is about to change: remember how it was, unless this transaction added it. NULL when
 * there is no memory to remember it (the transaction then fails). */
static struct pack_ref *
change(struct pack_index *ix, struct pack_ref *r)
{
    size_t at = (size_t)(r - ix->v);
    struct pack_undo *u;

    if (at >= ix->n0)
        return r;
    if (!(u = room(ix->undo, ix->nundo, &ix->capundo, sizeof(*u))))
        return NULL;
    ix->undo = u;
    ix->undo[ix->nundo].at = at;
    ix->undo[ix->nundo].old = *r;
    ix->nundo++;
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

int
pack_prepare(struct store *st)
{
    sqlite3 *db = st->db;

    st->pk_buf = malloc(PACK_MAX_BYTES);
    return !st->pk_buf
           || store_prep(db, "INSERT INTO pack(first, body) VALUES(?1, ?2)", &st->pk_ins)
           || store_prep(db, "SELECT body FROM pack WHERE first=?1", &st->pk_get)
           || store_prep(db, "DELETE FROM pack WHERE first=?1", &st->pk_del)
           || store_prep(db, "INSERT INTO gone(id) VALUES(?1)", &st->gone_ins)
           || store_prep(db, "DELETE FROM gone WHERE id BETWEEN ?1 AND ?2", &st->gone_del);
}

void
pack_finalize(struct store *st)
{
    sqlite3_finalize(st->pk_ins);
    sqlite3_finalize(st->pk_get);
    sqlite3_finalize(st->pk_del);
    sqlite3_finalize(st->gone_ins);
    sqlite3_finalize(st->gone_del);
    st->pk_ins = st->pk_get = st->pk_del = st->gone_ins = st->gone_del = NULL;
    free(st->pk_buf);
    st->pk_buf = NULL;
    pack_index_free(&st->packs);
}

/* The highest id in r. */
static uint64_t
last_member(const struct pack_ref *r)
{
    return r->members ? r->first + 63 - (uint64_t)__builtin_clzll(r->members) : r->first;
}

/* Bind a plain insert's id, queue and payload to parameters at, at+1, at+2 of s. The payload
 * stays in the ring until the statement has been stepped and reset. */
static void
bind_plain(sqlite3_stmt *s, int at, const struct op *o)
{
    sqlite3_bind_int64(s, at, (sqlite3_int64)o->id);
    sqlite3_bind_int64(s, at + 1, (sqlite3_int64)o->sid);
    sqlite3_bind_blob(s, at + 2, o->blen ? (const void *)(o + 1) : "", (int)o->blen,
                      SQLITE_STATIC);
}

/* Insert plain messages as rows: INS_ROWS of them in one statement (one statement
 * execution, one cursor, instead of one each), fewer one by one. */
static int
insert_rows(struct store *st, const struct op *const *rows, unsigned n)
{
    int rc = SQLITE_DONE;

    if (n == INS_ROWS) {
        for (unsigned i = 0; i < n; i++)
            bind_plain(st->ins_rows, (int)(3 * i + 1), rows[i]);
        return store_run(st->ins_rows);
    }
    for (unsigned i = 0; i < n && rc == SQLITE_DONE; i++) {
        bind_plain(st->ins_plain, 1, rows[i]);
        rc = store_run(st->ins_plain);
    }
    return rc;
}

/* How many of rows[0..n) can go into one pack starting with rows[0]: ids rising, within
 * PACK_SPAN of the first and past the newest pack (a fresh publish, not an old id). */
static unsigned
pack_run(const struct store *st, const struct op *const *rows, unsigned n)
{
    const struct pack_index *ix = &st->packs;
    uint64_t first = rows[0]->id;
    unsigned k = 0;

    if (ix->n && first <= last_member(&ix->v[ix->n - 1]))
        return 0;
    while (k < n && rows[k]->blen <= PACK_MAX_BODY && rows[k]->id - first < PACK_SPAN
           && (k == 0 || rows[k]->id > rows[k - 1]->id))
        k++;
    return k;
}

/* Store rows[0..n) as one pack. */
static int
insert_pack(struct store *st, const struct op *const *rows, unsigned n)
{
    struct pack_index *ix = &st->packs;
    struct pack_ref *r;
    size_t at = 0;
    uint32_t bytes = 0;
    int rc;

    for (unsigned i = 0; i < n; i++) {
        const struct op *o = rows[i];
        st->pk_buf[at] = (uint8_t)(o->id - rows[0]->id);
        put_le(st->pk_buf + at + 1, o->sid, 8);
        put_le(st->pk_buf + at + 9, o->blen, 4);
        memcpy(st->pk_buf + at + PACK_ENTRY_HEAD, (const void *)(o + 1), o->blen);
        at += PACK_ENTRY_HEAD + o->blen;
        bytes += o->blen;
    }
    sqlite3_bind_int64(st->pk_ins, 1, (sqlite3_int64)rows[0]->id);
    sqlite3_bind_blob(st->pk_ins, 2, st->pk_buf, (int)at, SQLITE_STATIC);
    if ((rc = store_run(st->pk_ins)) != SQLITE_DONE)
        return rc;
    if (!(r = pack_index_add(ix, rows[0]->id)))
        return SQLITE_NOMEM;
    for (unsigned i = 0; i < n; i++)
        r->members |= (uint64_t)1 << (rows[i]->id - r->first);
    r->bytes = bytes;
    ix->live_bytes += bytes;
    ix->count++;
    return SQLITE_DONE;
}

int
pack_flush(struct store *st)
{
    const struct op *rest[INS_ROWS];
    unsigned nrest = 0;
    unsigned n = st->nrows;
    int rc = SQLITE_DONE;

    st->nrows = 0;
    for (unsigned i = 0; i < n && rc == SQLITE_DONE;) {
        unsigned k = pack_run(st, st->rows + i, n - i);
        if (k >= PACK_MIN) {
            rc = insert_pack(st, st->rows + i, k);
            i += k;
        } else {
            rest[nrest++] = st->rows[i++];
        }
    }
    return rc == SQLITE_DONE ? insert_rows(st, rest, nrest) : rc;
}

/* Delete r's gone rows: its ids only (first .. its last member), never the next pack's,
 * which may start within PACK_SPAN of r's first. */
static int
drop_gone(struct store *st, const struct pack_ref *r)
{
    sqlite3_bind_int64(st->gone_del, 1, (sqlite3_int64)r->first);
    sqlite3_bind_int64(st->gone_del, 2, (sqlite3_int64)last_member(r));
    return store_run(st->gone_del);
}

/* Delete the pack r (every member gone or leaving) and its gone rows. */
static int
drop_pack(struct store *st, struct pack_ref *r)
{
    struct pack_index *ix = &st->packs;
    int rc;

    sqlite3_bind_int64(st->pk_del, 1, (sqlite3_int64)r->first);
    if ((rc = store_run(st->pk_del)) != SQLITE_DONE)
        return rc;
    if ((rc = drop_gone(st, r)) != SQLITE_DONE)
        return rc;
    if (!change(ix, r))
        return SQLITE_NOMEM;
    ix->live_bytes -= r->bytes - r->dead;
    ix->dead_bytes -= r->dead;
    ix->count--;
    ix->empty++;
    r->gone = r->members;
    r->dead = r->bytes;
    return SQLITE_DONE;
}

/* Member id (len payload bytes) of r is gone: acked, dropped or moved out. The last one
 * takes the pack with it. */
static int
mark_gone(struct store *st, struct pack_ref *r, uint64_t id, uint32_t len)
{
    struct pack_index *ix = &st->packs;
    uint64_t bit = (uint64_t)1 << (id - r->first);
    int rc;

    if ((r->gone | bit) == r->members)
        return drop_pack(st, r);
    sqlite3_bind_int64(st->gone_ins, 1, (sqlite3_int64)id);
    if ((rc = store_run(st->gone_ins)) != SQLITE_DONE)
        return rc;
    if (!change(ix, r))
        return SQLITE_NOMEM;
    r->gone |= bit;
    r->dead += len;
    ix->live_bytes -= len;
    ix->dead_bytes += len;
    return SQLITE_DONE;
}

/* Read r's body into st->pk_buf (the statement is reset: nothing stays borrowed from
 * SQLite); its length, or -1 with SQLite's result in *rc. */
static long
read_pack(struct store *st, const struct pack_ref *r, int *rc)
{
    long len = -1;

    sqlite3_bind_int64(st->pk_get, 1, (sqlite3_int64)r->first);
    if ((*rc = sqlite3_step(st->pk_get)) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st->pk_get, 0);
        const void *p = sqlite3_column_blob(st->pk_get, 0);
        if (n >= 0 && (size_t)n <= PACK_MAX_BYTES) {
            memcpy(st->pk_buf, p ? p : "", (size_t)n);
            len = n;
        }
        *rc = len < 0 ? SQLITE_CORRUPT : SQLITE_DONE;
        if (len < 0)
            log_error("store: the pack of message %llu is larger than a pack can be",
                      (unsigned long long)r->first);
    } else if (*rc == SQLITE_DONE) {
        *rc = SQLITE_CORRUPT; /* the index has a pack the database has not */
        log_error("store: the pack of message %llu is missing from the database",
                  (unsigned long long)r->first);
    }
    sqlite3_reset(st->pk_get);
    return len;
}

/* Find member id in a body read by read_pack(). 1 and *e, or 0. */
static int
find_entry(const struct store *st, long len, uint64_t first, uint64_t id,
           struct pack_entry *e)
{
    size_t pos = 0;

    while (pack_entry_next(st->pk_buf, (size_t)len, &pos, first, e))
        if (e->id == id)
            return 1;
    return 0;
}

int
pack_delete(struct store *st, const struct op *o, int *done)
{
    struct pack_ref *r = pack_index_find(&st->packs, o->id);

    *done = r && pack_live(r, o->id);
    return *done ? mark_gone(st, r, o->id, o->len) : SQLITE_DONE;
}

/* A packed message changed: it moves into a row of its own in msg (the op's state with the
 * pack's payload), and is gone from its pack. */
int
pack_update(struct store *st, const struct op *o, int *done)
{
    struct pack_ref *r = pack_index_find(&st->packs, o->id);
    struct pack_entry e;
    union { /* the row's operation, aligned as one */
        struct op o;
        uint8_t b[sizeof(struct op) + PACK_MAX_BODY + 256];
    } tmp;
    struct op *row = &tmp.o;
    long len;
    int rc;

    *done = r && pack_live(r, o->id);
    if (!*done)
        return SQLITE_DONE;
    if ((len = read_pack(st, r, &rc)) < 0)
        return rc;
    if (!find_entry(st, len, r->first, o->id, &e) || e.len > PACK_MAX_BODY || o->slen > 255) {
        log_error("store: message %llu is not in the pack of message %llu (malformed?)",
                  (unsigned long long)o->id, (unsigned long long)r->first);
        return SQLITE_CORRUPT;
    }
    *row = *o;
    row->type = OP_INS;
    row->blen = e.len;
    memcpy(tmp.b + sizeof(*row), e.body, e.len);
    memcpy(tmp.b + sizeof(*row) + e.len, (const uint8_t *)(o + 1) + o->blen, o->slen);
    if ((rc = store_exec_op(st, row)) != SQLITE_DONE)
        return rc;
    return mark_gone(st, r, o->id, e.len);
}

/* A durable queue was deleted: its messages in packs are gone. Reads every pack with live
 * members, as deleting its rows from msg scans that table. */
int
pack_drop_queue(struct store *st, uint64_t sid)
{
    struct pack_index *ix = &st->packs;

    for (size_t i = 0; i < ix->n; i++) {
        struct pack_ref *r = &ix->v[i];
        struct pack_entry e;
        uint64_t ids[PACK_SPAN];
        uint32_t lens[PACK_SPAN];
        unsigned k = 0;
        size_t pos = 0;
        long len;
        int rc;

        if (r->gone == r->members)
            continue;
        if ((len = read_pack(st, r, &rc)) < 0)
            return rc;
        while (pack_entry_next(st->pk_buf, (size_t)len, &pos, r->first, &e))
            if (e.sid == sid && pack_live(r, e.id) && k < PACK_SPAN) {
                ids[k] = e.id;
                lens[k++] = e.len;
            }
        for (unsigned j = 0; j < k; j++)
            if ((rc = mark_gone(st, r, ids[j], lens[j])) != SQLITE_DONE)
                return rc;
    }
    return SQLITE_DONE;
}

/* Move the live members of r into rows of msg and delete r. */
static int
empty_pack(struct store *st, struct pack_ref *r)
{
    struct pack_entry e;
    size_t pos = 0;
    long len;
    int rc;

    if ((len = read_pack(st, r, &rc)) < 0)
        return rc;
    while (pack_entry_next(st->pk_buf, (size_t)len, &pos, r->first, &e)) {
        if (!pack_live(r, e.id))
            continue;
        sqlite3_bind_int64(st->ins_plain, 1, (sqlite3_int64)e.id);
        sqlite3_bind_int64(st->ins_plain, 2, (sqlite3_int64)e.sid);
        sqlite3_bind_blob(st->ins_plain, 3, e.len ? (const void *)e.body : "", (int)e.len,
                          SQLITE_STATIC);
        if ((rc = store_run(st->ins_plain)) != SQLITE_DONE)
            return rc;
    }
    return drop_pack(st, r);
}

/* A pack with at most a quarter of its members left. */
static int
sparse(const struct pack_ref *r)
{
    unsigned live = (unsigned)__builtin_popcountll(r->members & ~r->gone);

    return live && live * 4 <= (unsigned)__builtin_popcountll(r->members);
}

#define COMPACT_MIN_DEAD (16u << 20) /* dead bytes in packs worth compacting, at least */
#define COMPACT_PACKS 1024u          /* packs emptied per compaction transaction, at most */

unsigned
pack_compact(struct store *st)
{
    struct pack_index *ix = &st->packs;
    unsigned done = 0;
    int rc = SQLITE_DONE;

    if (ix->dead_bytes < COMPACT_MIN_DEAD || ix->dead_bytes < ix->live_bytes
        || ix->dead_bytes < ix->futile_dead + COMPACT_MIN_DEAD / 4
        || atomic_load(&st->state) != STORE_OK)
        return 0;
    for (size_t i = 0; i < ix->n && !done; i++)
        done = sparse(&ix->v[i]);
    if (!done) { /* dead bytes in packs more than a quarter live: wait for more acks */
        ix->futile_dead = ix->dead_bytes;
        return 0;
    }
    done = 0;
    store_run(st->synced_data ? st->sync_full : st->sync_off); /* as a checkpoint would */
    if (store_run(st->begin) != SQLITE_DONE)
        return 0;
    pack_begin(st);
    for (size_t i = 0; i < ix->n && done < COMPACT_PACKS && rc == SQLITE_DONE; i++) {
        struct pack_ref *r = &ix->v[i];
        if (sparse(r)) {
            rc = empty_pack(st, r);
            done++;
        }
    }
    if (rc == SQLITE_DONE && (rc = store_run(st->commit)) == SQLITE_DONE) {
        pack_commit(st);
        ix->futile_dead = 0;
        log_debug("store: compacted %u packs", done);
        return done;
    }
    log_warn("store: compacting packs: %s", store_errmsg(st, rc));
    store_run(st->rollback);
    pack_rollback(st);
    return 0;
}

int
pack_delete_empty(struct store *st)
{
    struct pack_index *ix = &st->packs;
    int rc = SQLITE_DONE;

    size_t w = 0;

    for (size_t i = 0; i < ix->n && rc == SQLITE_DONE; i++) {
        struct pack_ref *r = &ix->v[i];
        if (r->gone != r->members) {
            ix->v[w++] = *r;
            continue;
        }
        sqlite3_bind_int64(st->pk_del, 1, (sqlite3_int64)r->first);
        if ((rc = store_run(st->pk_del)) == SQLITE_DONE) {
            rc = drop_gone(st, r);
        }
        ix->dead_bytes -= r->dead;
        ix->count--;
    }
    if (rc == SQLITE_DONE)
        ix->n = w;
    ix->empty = 0;
    pack_commit(st);
    return rc;
}
