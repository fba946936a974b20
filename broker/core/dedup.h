/* SPDX-License-Identifier: MIT */
/* De-duplication window of a queue: producer message ids remembered in a ring of a fixed
 * number of bytes, oldest forgotten first (docs/protocol.md 7.8).
 *
 * An entry is [u32 next in bucket | u32 hash | u64 message id | u8 len | id bytes], padded
 * to 8 bytes: the id's length plus 17, rounded up. The ring never splits an entry; a hash
 * index of ring offsets (one u32 per 64 ring bytes) finds them. Memory is the window plus a
 * sixteenth, reserved from the broker's budget when the queue's first id arrives, and
 * nothing per message after that. Lookup and insert are O(1) expected; the hash is seeded
 * per window so that ids chosen by a client cannot be made to collide on purpose cheaply. */
#ifndef SLABMQ_BROKER_CORE_DEDUP_H
#define SLABMQ_BROKER_CORE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h"

struct broker;
struct queue;

#define DEDUP_WINDOW_MIN SMQ_DEDUP_WINDOW_MIN /* proto_limits.h */
#define DEDUP_WINDOW_MAX SMQ_DEDUP_WINDOW_MAX

/* The message id remembered for producer id (id, len) in q's window: 1 and *msg_id, or 0. */
int dedup_find(const struct queue *q, const void *id, uint32_t len, uint64_t *msg_id);
/* Remember (id, len) -> msg_id, forgetting the oldest ids to make room; creates the window
 * on first use. Returns 0, or -1 at the memory limit (nothing remembered). */
int dedup_insert(struct broker *b, struct queue *q, const void *id, uint32_t len,
                 uint64_t msg_id);
/* Bytes the window holds (ring and index), 0 if none. */
size_t dedup_bytes(const struct queue *q);
/* Free the window (a new one is made at the next id, with the queue's dedup_window). */
void dedup_free(struct broker *b, struct queue *q);

#endif /* SLABMQ_BROKER_CORE_DEDUP_H */
