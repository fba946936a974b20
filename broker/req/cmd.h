/* SPDX-License-Identifier: MIT */
/* Request handlers, one per op in protocol/ops.h, named cmd_<name>. A handler reads its
 * arguments from r (nargs of them, after op and request id), validates all of them before
 * changing any state, and writes exactly one reply (or registers a waiter that will). */
#ifndef SLABMQ_BROKER_REQ_CMD_H
#define SLABMQ_BROKER_REQ_CMD_H

#include <stdint.h>

#include "mpread.h"
#include "ops.h"
#include "req/req.h"

typedef void (*cmd_fn)(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs);

#define CMD_DECLARE_(code, name, lname) \
    void cmd_##lname(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs);
SMQ_OPS_MAP(CMD_DECLARE_)
#undef CMD_DECLARE_

/* Shared argument helpers for handlers. Each replies BAD_REQUEST or BAD_NAME itself and
 * returns -1 when the argument is wrong. */
struct queue;
int cmd_expect_args(struct req *rq, unsigned op, uint64_t rid, uint32_t nargs, uint32_t lo,
                    uint32_t hi);
/* Read a queue name; name and len view the frame. */
int cmd_read_name(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r,
                  const char **name, uint32_t *len);
/* Read an unsigned integer in [lo, hi]; 'what' names it in the error. */
int cmd_read_uint(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r,
                  const char *what, uint64_t lo, uint64_t hi, uint64_t *v);
/* Check that the body was consumed exactly. */
int cmd_args_end(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r);
/* Answer FETCH request rid with the n deliveries in the broker's scratch array; noack:
 * at-most-once, settle them once the reply is written; multi: the FETCH named several
 * queues, so the reply names q, the one they came from (nil when n is 0). */
void cmd_deliver(struct req *rq, uint64_t rid, uint32_t n, int noack, int multi,
                 const struct queue *q);
/* The queue this connection named last, if 'name' is it and no queue was deleted since:
 * a producer or consumer names the same queue in every request, and this skips the name
 * check and the registry lookup for it. NULL otherwise. */
struct queue *cmd_cached_queue(struct req *rq, const char *name, uint32_t len);
/* Remember q as the queue this connection named last. */
void cmd_cache_queue(struct req *rq, struct queue *q);
/* On a broker with users: may rq's user make this request (op, its nargs arguments in r, which
 * is not moved)? Returns 1, or 0 after replying ERR_FORBIDDEN. Arguments that are not queue
 * names where names belong are left to the handler to refuse. */
int cmd_permitted(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr r, uint32_t nargs);
/* The named queue, or NULL after replying NOT_FOUND. */
struct queue *cmd_find_queue(struct req *rq, unsigned op, uint64_t rid, const char *name,
                             uint32_t len);

#endif /* SLABMQ_BROKER_REQ_CMD_H */
