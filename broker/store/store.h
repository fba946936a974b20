/* SPDX-License-Identifier: MIT */
/* Durability: durable queues mirrored into SQLite by a writer thread (docs/durability.md).
 *
 * The event-loop thread never calls SQLite after start-up. It appends operations (a queue
 * declared or deleted, a message inserted, updated or deleted) to a bounded byte ring,
 * numbered by a sequence; the writer thread takes everything pending, runs it in one
 * transaction (group commit: many publishes and acks per commit, prepared statements
 * reused, WAL) and publishes how far it got: 'committed' (the transaction is in the
 * database file, so it survives the broker process crashing) and 'synced' (committed with
 * the WAL fsynced, so it survives a power loss). The loop learns of it through an eventfd
 * and releases the replies that waited for those sequence numbers (confirm.c).
 *
 * Ring: single producer (loop), single consumer (writer), C11 atomics; an operation never
 * wraps (a skip marker fills the end). A full ring stops the loop from reading frames that
 * would add to it (conn.c), so memory stays bounded when the disk is slow. */
#ifndef SLABMQ_BROKER_STORE_STORE_H
#define SLABMQ_BROKER_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

struct broker;
struct journal;

/* The levels a publish can be confirmed at, weakest first. */
enum store_level {
    STORE_MEMORY = 0,  /* in the broker's memory only */
    STORE_WRITTEN = 1, /* committed to the database: survives a broker crash */
    STORE_SYNCED = 2   /* committed and fsynced: survives a power loss */
};

/* Sticky state of the store. */
enum store_state {
    STORE_OK = 0,
    STORE_FULL = 1,  /* the disk is full: durable publishes refused, commits retried */
    STORE_FAILED = 2 /* an I/O error: durable publishes refused until restart */
};

struct store;

/* The store's operation ring for a memory limit and largest message, bytes: an eighth of the
 * limit, at most STORE_RING_MAX, and at least STORE_RING_MSGS largest messages (each
 * operation may carry one). It comes out of the limit; store_ring_check() says whether the
 * limit leaves enough for messages. */
#define STORE_RING_MAX ((size_t)64 << 20)
#define STORE_RING_MSGS 3u
size_t store_ring_bytes(size_t max_memory, size_t max_message_size);
/* 0 when the ring for these settings is at most a quarter of max_memory; else -1 with what
 * to do in err. */
int store_ring_check(size_t max_memory, size_t max_message_size, char *err, size_t errlen);

/* Open (creating if missing) DIR/slabmq.db, check it (quick_check), and load every durable
 * queue and message into b. Unless ignore_corrupt, a database that fails the check stops the
 * start (-1 with the reason in err); with it, the database is renamed aside and the broker
 * starts empty. Then start the writer thread. Returns the store, or NULL (err set). */
struct store *store_open(struct broker *b, const char *dir, size_t ring_bytes,
                         int ignore_corrupt, char *err, size_t errlen);
/* Stop the writer after it has committed and synced everything appended (blocks until it
 * has). */
void store_stop(struct store *st);
/* Stop if not stopped, and close (NULL is fine). */
void store_close(struct store *st);
/* The eventfd that becomes readable when the writer made progress (for the loop). */
int store_event_fd(const struct store *st);
/* Called by the loop when store_event_fd() is readable: consume the notification. */
void store_drain_event(struct store *st);
/* A reply waits for seq at the synced level: make the writer sync up to it. */
void store_want_sync(struct store *st, uint64_t seq);

/* Operations appended and not yet committed beyond which the loop reads no more requests
 * (while the store is STORE_OK): what a crash can take back of the acks, which are not held,
 * is bounded by this many operations plus those of the one request being read, and in time
 * by the writer's two transactions of at most half as many (docs/durability.md). */
#define STORE_LAG_OPS 16384u

/* Room for an operation carrying 'body' payload bytes? The loop reads no frame that could
 * not be appended (the frame is left buffered until the writer catches up), nor any while
 * STORE_LAG_OPS operations wait for a commit. */
int store_has_room(const struct store *st, size_t body);
/* The state, and sequence numbers: the last appended, committed and synced. */
enum store_state store_state(const struct store *st);
uint64_t store_appended(const struct store *st);
uint64_t store_committed(const struct store *st);
uint64_t store_synced(const struct store *st);
/* Bytes of the database and its WAL on disk, and of free pages inside the database (dead
 * space SQLite reuses), as of the writer's last look. */
void store_disk_bytes(const struct store *st, uint64_t *db, uint64_t *wal, uint64_t *free_bytes);
uint64_t store_commits(const struct store *st);
/* Packs of messages stored as one row (docs/durability.md): how many, the payload bytes of
 * their messages still stored, and of those acked but still inside a pack (dead). */
void store_pack_stats(const struct store *st, uint64_t *packs, uint64_t *live, uint64_t *dead);

/* The journal (core/journal.h) whose records the store appends as operations, to be set
 * as b->journal once store_open() has loaded the broker (NULL for NULL). */
struct journal *store_journal(struct store *st);

/* Test hooks, from the environment (unset normally): SLABMQ_STORE_COMMIT_DELAY_MS, the writer
 * sleeps this long before each COMMIT (sync-before-confirm); SLABMQ_STORE_FAIL_AFTER_COMMITS,
 * the commit after that many fails as with an I/O error. */

#endif /* SLABMQ_BROKER_STORE_STORE_H */
