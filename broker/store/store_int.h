/* SPDX-License-Identifier: MIT */
/* Store internals shared by store.c (the writer) and store_recover.c (loading at start). */
#ifndef SLABMQ_BROKER_STORE_STORE_INT_H
#define SLABMQ_BROKER_STORE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "core/journal.h"

struct broker;
struct queue;
struct store;

/* A durable queue's settings are stored (queue.settings) as struct journal_qsettings:
 * fixed-size, little-endian as the machine writes it; 'version' guards the layout. */

/* ---------------------------------------------------------------------------------------- */
/* Packs (store_pack.c): plain messages published together stored as one row.
 *
 * A row per message costs SQLite a b-tree seek, a cell, a record and a VDBE program run
 * each (about 4,200 instructions per 256-byte message); most durable messages are "plain"
 * (no priority, delay, TTL or delivery count) and arrive in bursts, so the writer stores a
 * run of 8 to 64 of them, with ids within 64 of the first, as one row of table pack. An
 * ACK of a packed message records its id in table gone; when every message of a pack is
 * gone, the pack and its gone rows are deleted. A message that changes (NACK, delay,
 * dead-lettering) moves out of its pack into a row of its own. The writer keeps an index
 * of the packs (32 bytes per pack, at most 4 per stored message) to know, without reading
 * the database, whether an id is in a pack. */

#define PACK_SPAN 64u          /* the ids of a pack: first .. first + 63 */
#define PACK_MIN 8u            /* fewer plain inserts in a run are stored as rows */
#define PACK_MAX_BODY 1024u    /* larger messages are stored as rows */
#define PACK_ENTRY_HEAD 13u    /* off u8, sid u64 LE, len u32 LE */
#define PACK_MAX_BYTES (PACK_SPAN * (PACK_ENTRY_HEAD + PACK_MAX_BODY))

struct pack_ref {
    uint64_t first;   /* id of its first message, the row's key */
    uint64_t members; /* bit i: message first + i is in the pack */
    uint64_t gone;    /* bit i: ... and was acked, dropped or moved out */
    uint32_t bytes;   /* payload bytes of all members */
    uint32_t dead;    /* payload bytes of the gone ones */
};

/* What a transaction changed in the index, to be undone if it rolls back. */
struct pack_undo {
    size_t at;
    struct pack_ref old;
};

struct pack_index {
    struct pack_ref *v; /* sorted by first; [first, last member] ranges never overlap */
    size_t n, cap;
    size_t empty;       /* entries whose members are all gone (removed by pack_index_tidy) */
    uint64_t live_bytes, dead_bytes, count; /* payload bytes in packs, and packs */
    uint64_t futile_dead; /* dead_bytes when compaction last found no sparse pack */
    /* the transaction in progress: the state at its start and the entries it changed */
    struct pack_undo *undo;
    size_t nundo, capundo;
    size_t n0, empty0;
    uint64_t live0, dead0, count0;
};

/* ---------------------------------------------------------------------------------------- */
/* The writer (store.c) */

#define BATCH_OPS 8192u           /* operations per transaction, at most (STORE_LAG_OPS / 2) */
#define BATCH_BYTES (16u << 20)   /* payload bytes per transaction, about */
#define INS_ROWS 64u              /* plain inserts bound to one INSERT statement */
#define CKPT_BYTES (1u << 20)     /* checkpoint once the WAL holds this much, */
#define CKPT_SYNCED_BYTES (16u << 20) /* or this much when each checkpoint costs two fsyncs */
#define VACUUM_BYTES (16u << 20)  /* given back to the file system per incremental vacuum step */
#define RETRY_MS 500              /* after SQLITE_FULL or SQLITE_BUSY, try again after */

enum op_type { OP_SKIP = 0, OP_QPUT, OP_QDEL, OP_INS, OP_UPD, OP_DEL };

/* One operation in the ring, followed by 'blen' body bytes and 'slen' source-name bytes. */
struct op {
    uint32_t size; /* bytes of the whole operation, a multiple of 8 */
    uint8_t type;  /* enum op_type */
    uint8_t prio;
    uint8_t reason; /* dead-letter reason; 0: not a dead letter */
    uint8_t pad;
    uint64_t seq;
    uint64_t id;       /* message id; for queue operations the queue's store id */
    uint64_t sid;      /* the message's queue's store id */
    int64_t due_wall;  /* delayed until, ms since the epoch; 0: ready */
    int64_t exp_wall;  /* expires at, ms since the epoch; 0: never */
    union {
        uint32_t deliveries; /* OP_INS, OP_UPD */
        uint32_t len;        /* OP_DEL: the payload's length (a pack's dead bytes) */
    };
    uint32_t dl_deliveries;
    uint32_t blen;
    uint32_t slen;
};

struct store {
    struct broker *b;
    struct journal journal; /* what the core writes to: records into ring operations */
    sqlite3 *db;
    char path[4096];
    pthread_t thread;
    int started;
    int efd_work;        /* loop -> writer: operations appended */
    int efd_done;        /* writer -> loop: progress */
    uint8_t *ring;
    size_t cap;
    _Atomic uint64_t head;      /* bytes appended, absolute (loop writes) */
    _Atomic uint64_t tail;      /* bytes consumed, absolute (writer writes) */
    _Atomic uint64_t appended;  /* last sequence number appended (loop writes) */
    _Atomic uint64_t committed; /* last sequence number committed (writer writes) */
    _Atomic uint64_t synced;    /* last sequence number committed and synced */
    _Atomic uint64_t sync_upto; /* the loop wants a sync up to this sequence number */
    _Atomic int state;          /* enum store_state */
    _Atomic int stop;
    _Atomic int idle;           /* the writer is (about to be) blocked waiting for work */
    _Atomic uint64_t db_bytes, wal_bytes, free_bytes, commits;
    uint64_t delay_ms;          /* test hook: sleep before each commit */
    uint64_t fail_after;        /* test hook: the commit after this many fails (I/O error) */
    sqlite3_stmt *ins, *ins_plain, *upd, *del, *qput, *qdel, *qdelmsg, *begin, *commit, *rollback;
    sqlite3_stmt *sync_full, *sync_off, *touch;
    sqlite3_stmt *ins_rows;          /* INS_ROWS plain inserts in one statement */
    const struct op *rows[INS_ROWS]; /* plain inserts gathered for ins_rows, in ring order */
    unsigned nrows;                  /* how many are gathered */
    uint32_t page_size;              /* the database's page size, bytes */
    uint32_t wal_frames;             /* frames in the WAL after the last commit */
    int ckpt_rc;                     /* SQLite's result of the last checkpoint */
    int synced_data;                 /* the database may hold a message confirmed synced */
    int start_full;                  /* started on a full disk: in STORE_FULL from the start */
    sqlite3_stmt *mark_synced;       /* meta 'synced_data' = 1 */
    /* packs (store_pack.c) */
    struct pack_index packs;
    sqlite3_stmt *pk_ins, *pk_get, *pk_del, *gone_ins, *gone_del;
    uint8_t *pk_buf; /* a pack being built, PACK_MAX_BYTES */
    _Atomic uint64_t pk_live_bytes, pk_dead_bytes, pk_count; /* for STATS */
};

/* One entry of a pack's body, as pack_entry_next() reads it. */
struct pack_entry {
    uint64_t id;
    uint64_t sid;
    const uint8_t *body;
    uint32_t len;
};

/* The index. pack_index_find: the pack that may hold id (check with pack_live). */
struct pack_ref *pack_index_add(struct pack_index *ix, uint64_t first);
struct pack_ref *pack_index_find(struct pack_index *ix, uint64_t id);
void pack_index_free(struct pack_index *ix);
int pack_live(const struct pack_ref *r, uint64_t id); /* id is in r and not gone */
/* The next entry of a pack's body at *pos; 1, or 0 at the end or on a malformed entry. */
int pack_entry_next(const uint8_t *blob, size_t len, size_t *pos, uint64_t first,
                    struct pack_entry *e);

/* The writer's side (store_pack.c), on the writer thread inside a transaction; each returns
 * SQLite's result (SQLITE_DONE when all went well). */
int pack_prepare(struct store *st);
void pack_finalize(struct store *st);
/* The writer's transaction began, committed (the index's changes stand, STATS sees them) or
 * rolled back (the index is put back as it was at the start). */
void pack_begin(struct store *st);
void pack_commit(struct store *st);
void pack_rollback(struct store *st);
int pack_flush(struct store *st);                  /* the gathered plain inserts */
int pack_delete(struct store *st, const struct op *o, int *done);   /* OP_DEL */
int pack_update(struct store *st, const struct op *o, int *done);   /* OP_UPD */
int pack_drop_queue(struct store *st, uint64_t sid);                /* OP_QDEL */
/* Outside a transaction: when dead bytes inside packs outgrow the live ones, move the live
 * messages of sparse packs into rows and delete the packs (at most COMPACT_PACKS at a
 * time). Returns how many packs it emptied; 0 also when there was none to empty (it then
 * waits for 4 MiB more dead bytes before it looks again). */
unsigned pack_compact(struct store *st);
/* At start, after recovery: delete the packs recovery found empty. */
int pack_delete_empty(struct store *st);

/* SQLite helpers shared by store.c and store_pack.c. */
int store_prep(sqlite3 *db, const char *sql, sqlite3_stmt **s);
int store_run(sqlite3_stmt *s);
int store_exec_op(struct store *st, const struct op *o);
/* What went wrong, for the log: SQLite's message when rc is its last error, else the text of
 * rc (a result of our own, as SQLITE_CORRUPT from a pack that does not match the index). */
const char *store_errmsg(struct store *st, int rc);

/* Load every stored queue and message into b (the store is not attached yet, so nothing is
 * written back), and build the index of packs. 0, or -1 with the reason in err. */
int store_recover(struct broker *b, sqlite3 *db, struct pack_index *packs, char *err,
                  size_t errlen);

#endif /* SLABMQ_BROKER_STORE_STORE_INT_H */
