/* SPDX-License-Identifier: MIT */
/* Push consumers: SUBSCRIBE with a credit (docs/protocol.md 6.18-6.20).
 *
 * A subscription is a slab object on its queue's list (served in turn, least recently served
 * first) and in its connection's table of REQ_MAX_SUBS slots. Each delivery it makes
 * carries the slot (delivery.sub), and the connection's holder counts the slot's messages in
 * flight (holder.sub_out), so settling a message gives its credit back in O(1) wherever it
 * is settled (ACK, NACK, TERM, timeout). A subscription gets nothing while its credit is used
 * up or its connection has more than SUB_OUT_MAX bytes of output unsent: a slow consumer is
 * held back, never disconnected for being slow, and never grows the broker's buffers. */
#ifndef SLABMQ_BROKER_REQ_SUB_H
#define SLABMQ_BROKER_REQ_SUB_H

#include <stddef.h>
#include <stdint.h>

struct req;
struct queue;
struct req_server;

#define SUB_OUT_MAX (1u << 20) /* no push while a connection has more output unsent */

/* Subscribe rq to q with the given credit. Returns the subscription id (> 0), 0 when rq has
 * REQ_MAX_SUBS already, or -1 at the memory limit. */
int64_t sub_start(struct req *rq, struct queue *q, uint32_t credit);
/* End rq's subscription id. Returns 0, or -1 if rq has none with that id. */
int sub_stop(struct req *rq, uint64_t id);
/* Push q's ready messages to its subscriptions that have credit. */
void sub_serve(struct req_server *s, struct queue *q);
/* q is being deleted: its subscriptions end with a DELIVER error frame. */
void sub_queue_gone(struct queue *q);
/* rq's output drained below SUB_OUT_MAX after a push was held back for it: serve again. */
void sub_req_drained(struct req *rq);
/* rq is closing: end its subscriptions without frames (before its deliveries go back). */
void sub_cancel_req(struct req *rq);
/* The broker is stopping: each of rq's subscriptions gets a DELIVER ERR_SHUTDOWN frame. */
void sub_shutdown_req(struct req *rq);
/* Free credit of q's subscriptions: what could be pushed now. */
uint64_t sub_credit(const struct queue *q);
/* Number of q's subscriptions. */
uint64_t sub_count(const struct queue *q);
/* Number of rq's subscriptions. */
uint32_t sub_req_count(const struct req *rq);

#endif /* SLABMQ_BROKER_REQ_SUB_H */
