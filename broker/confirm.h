/* SPDX-License-Identifier: MIT */
/* Replies that wait for the store: a publish to a durable queue is confirmed only once its
 * operation reached the level asked for (store.h).
 *
 * The reply is written into the connection's output at once, in request order like every
 * other reply, but the output is not sent past the first reply still waiting (obuf.limit).
 * Each connection keeps a small FIFO of (sequence, position, level); when the writer thread
 * reports progress, satisfied entries are dropped and the limit moves on. A full FIFO merges
 * its last entries (the hold then lasts until the later one is satisfied), so the memory per
 * connection is fixed. If the store fails for good, connections with replies still held are
 * closed without them: those publishes were never confirmed. */
#ifndef SLABMQ_BROKER_CONFIRM_H
#define SLABMQ_BROKER_CONFIRM_H

#include <stdint.h>

struct conn;
struct server;

/* The reply about to be written to c must wait for the store's sequence number seq at
 * level (enum store_level). Returns 0, or -1 at the memory limit (the caller then answers
 * with an error instead). */
int confirm_hold(struct conn *c, uint64_t seq, unsigned level);
/* The store made progress (or failed): release what it allows. */
void confirm_progress(struct server *s);
/* c is closing: forget its held replies. */
void confirm_conn_gone(struct conn *c);

#endif /* SLABMQ_BROKER_CONFIRM_H */
