/* SPDX-License-Identifier: MIT */
/* From a frame body to a handler: reads [op, request_id, ...], enforces HELLO first and, on a
 * broker with users, AUTH next and the user's permissions, and calls the op's handler from a
 * table generated from protocol/ops.h. */
#ifndef SLABMQ_BROKER_REQ_DISPATCH_H
#define SLABMQ_BROKER_REQ_DISPATCH_H

#include <stdint.h>

struct req;

/* Handle one frame body. Borrows body for the call. */
void dispatch_frame(struct req *rq, const uint8_t *body, uint32_t len);
/* Reply with an error to no particular request (op 0, id 0) and close after writing. */
void dispatch_fatal(struct req *rq, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SLABMQ_BROKER_REQ_DISPATCH_H */
