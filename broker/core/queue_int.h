/* SPDX-License-Identifier: MIT */
/* Queue internals shared by queue.c (storage, delivery, settling) and queue_dead.c (dead
 * letters). Not for other modules: they use queue.h. */
#ifndef SLABMQ_BROKER_CORE_QUEUE_INT_H
#define SLABMQ_BROKER_CORE_QUEUE_INT_H

#include <stdint.h>

struct broker;
struct queue;
struct segment;
struct delivery;

/* A moved-record segment of q with room for a record of len payload bytes; NULL at the
 * memory limit. */
struct segment *queue_moved_tail(struct broker *b, struct queue *q, uint32_t len);
/* A record in g died, live are left: free or compact g if it is due. */
void queue_segment_died(struct broker *b, struct queue *q, struct segment *g, uint32_t live);
/* Take d out of its state's list and counts (it is then in no state). */
void queue_leave_state(struct broker *b, struct delivery *d);
/* Forget d, in no state, and its message. */
void queue_destroy(struct broker *b, struct delivery *d);
/* d, in no state, joins its ready list. */
void queue_make_ready(struct broker *b, struct delivery *d);
/* d, in no state, is delayed by delay_ms (> 0). */
void queue_delay(struct broker *b, struct delivery *d, uint64_t delay_ms);
/* A delivery record for the fresh message at q's cursor, in no state; NULL at the limit. */
struct delivery *queue_take_fresh(struct broker *b, struct queue *q);
void queue_free_ext(struct broker *b, struct delivery *d);
/* d, in no state, leaves its queue for the dead-letter queue (or is deleted when there is
 * none). At the memory limit it stays, ready, and the failure is counted. */
void queue_dead_letter(struct broker *b, struct delivery *d, unsigned reason);

#endif /* SLABMQ_BROKER_CORE_QUEUE_INT_H */
