/* SPDX-License-Identifier: MIT */
/* From a frame body to a handler: reads [op, request_id, ...], enforces HELLO first and, on a
 * broker with users, AUTH next and the user's permissions, and calls the op's handler from a
 * table generated from protocol/ops.h. */
#ifndef SLABMQ_BROKER_REQ_DISPATCH_H
#define SLABMQ_BROKER_REQ_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

struct req;

/* Admission from the header, for a frame larger than the connection's read buffer: 'have'
 * bytes of its body (of blen) are buffered. A PUBLISH whose size does not fit in the memory
 * left for messages, or any other frame for whose buffer there is no memory at all, is
 * refused now, before its body is read: the error reply is written and 1 returned, and the
 * network layer skips the frame's bytes as they arrive (the connection stays usable: a large
 * ACK list at the limit gets an error instead of waiting forever for memory that only its
 * own ACKs could free). Before HELLO, or when the header is not readable yet, returns 0: the
 * frame takes its normal path. */
int dispatch_admit(struct req *rq, const uint8_t *body, size_t have, uint32_t blen);

/* Whether a frame's wake-ups may wait for the frames after it in the same read: a settle
 * (ACK, NACK, TOUCH, TERM), whose credit given back is best spent on one push, or a publish
 * (PUBLISH, PUBLISH_BATCH), whose messages are best handed to a waiting FETCH or a
 * subscriber together (served after each publish, a waiter took one message per reply).
 * From the array header and the op after it (a positive fixint). Only decides when woken
 * queues are served (net/conn.c); dispatch_frame checks the frame. Inline: the frame loop
 * asks for every frame. */
static inline int
dispatch_defers_wake(const uint8_t *body, uint32_t len)
{
    uint32_t at = body[0] >= 0x90 && body[0] <= 0x9f ? 1
                  : body[0] == 0xdc                  ? 3
                  : body[0] == 0xdd                  ? 5
                                                     : 0;
    unsigned op;

    if (at == 0 || len <= at)
        return 0;
    op = body[at];
    return op == SMQ_OP_ACK || op == SMQ_OP_NACK || op == SMQ_OP_TOUCH || op == SMQ_OP_TERM
           || op == SMQ_OP_PUBLISH || op == SMQ_OP_PUBLISH_BATCH;
}

/* The queue a frame names, for prefetching ahead of handling (net/conn.c): PUBLISH,
 * PUBLISH_BATCH and FETCH carry it first. Returns 1 with the name (borrowed from body, not
 * checked), or 0. Reads no further than the name; dispatch_frame checks everything. */
int dispatch_queue_name(const uint8_t *body, uint32_t len, const char **name, uint32_t *nlen);

/* Handle one frame body. Borrows body for the call. */
void dispatch_frame(struct req *rq, const uint8_t *body, uint32_t len);
/* Reply with an error to no particular request (op 0, id 0) and close after writing. */
void dispatch_fatal(struct req *rq, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SLABMQ_BROKER_REQ_DISPATCH_H */
