/* SPDX-License-Identifier: MIT */
/* Replies that wait for the store: a publish to a durable queue is confirmed only once its
 * operation reached the level asked for (store.h).
 *
 * The reply is written into the connection's output at once, in request order like every
 * other reply, but the output is not sent past the first reply still waiting (obuf.limit).
 * Each connection keeps a FIFO of (sequence, position, level), 64 entries doubled as needed
 * up to 2,048; when the writer thread reports progress, satisfied entries are dropped and the
 * limit moves on. A full FIFO merges its last entries (the hold then lasts until the later one
 * is satisfied), so the memory per connection is bounded. While the disk is full, held
 * PUBLISH replies at the front are overwritten with ERR_STORAGE_FULL (same length) and sent:
 * they cannot be confirmed, and the refusals behind them must not wait. If the store fails for
 * good, connections with replies still held are closed without them: those publishes were
 * never confirmed. */
#ifndef SLABMQ_BROKER_REQ_CONFIRM_H
#define SLABMQ_BROKER_REQ_CONFIRM_H

#include <stdint.h>

struct req;
struct req_server;

/* The reply about to be written to rq must wait for the store's sequence number seq at
 * level (enum store_level); publish: it is one PUBLISH or PUBLISH_BATCH success reply, which
 * becomes ERR_STORAGE_FULL should the disk fill before it is confirmed (0: another reply, or
 * none, which then waits for room). Returns 0, or -1 at the memory limit (the caller then
 * answers with an error instead). */
int confirm_hold(struct req *rq, uint64_t seq, unsigned level, int publish);
/* The store made progress (or failed): release what it allows. */
void confirm_progress(struct req_server *s);
/* rq is closing: forget its held replies. */
void confirm_req_gone(struct req *rq);

#endif /* SLABMQ_BROKER_REQ_CONFIRM_H */
