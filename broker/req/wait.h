/* SPDX-License-Identifier: MIT */
/* Long-poll FETCH: a waiter parks on an empty queue until messages arrive or its wait ends.
 * Waiters of a queue are served in arrival order and each message goes to exactly one of
 * them. A FETCH of several queues waits on each of them and is answered by the first that
 * has messages. A waiter is a slab object with an embedded timer event (no allocation per
 * wait). */
#ifndef SLABMQ_BROKER_REQ_WAIT_H
#define SLABMQ_BROKER_REQ_WAIT_H

#include <stdint.h>

struct req;
struct queue;

/* Park a FETCH of up to max messages from the first of the nq queues qs that has any, for
 * wait_ms; multi: the reply names the queue. Returns 0, or -1 at the memory limit. */
int wait_start(struct req *rq, struct queue **qs, unsigned nq, int multi, uint64_t rid,
               uint32_t max, uint32_t wait_ms, int noack);
/* Hand q's ready messages to its waiters (broker hook queue_ready; ctx is the struct req_server). */
void wait_serve(void *ctx, struct queue *q);
/* q is being deleted: each waiter gets ERR_QUEUE_DELETED (hook queue_gone). */
void wait_queue_gone(void *ctx, struct queue *q);
/* rq is closing: drop its waiters without replies. */
void wait_cancel_req(struct req *rq);
/* The broker is stopping: each of rq's waiters gets ERR_SHUTDOWN. */
void wait_shutdown_req(struct req *rq);

#endif /* SLABMQ_BROKER_REQ_WAIT_H */
