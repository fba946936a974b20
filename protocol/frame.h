/* SPDX-License-Identifier: MIT */
/* Length-prefixed frames: a 4-byte big-endian body length, then that many bytes of msgpack.
 *
 * The decoder looks only at the header, so a caller can refuse an oversized frame before
 * reading or allocating anything for its body. No I/O, no allocation. */
#ifndef SLABMQ_PROTOCOL_FRAME_H
#define SLABMQ_PROTOCOL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h" /* SMQ_FRAME_HEADER, SMQ_FRAME_SLACK */

enum smq_frame_result {
    SMQ_FRAME_OK,        /* a whole frame is present */
    SMQ_FRAME_NEED_MORE, /* header or body incomplete; read more */
    SMQ_FRAME_EMPTY,     /* declared body length 0: a protocol error */
    SMQ_FRAME_TOO_BIG    /* declared body length over the maximum */
};

/* Decode the frame at the front of in[0..len). On SMQ_FRAME_OK, *body points into 'in' and
 * *body_len is its length; *total is header + body (bytes to consume). On NEED_MORE with a
 * complete header, *total is the full frame size still expected (else 0). On TOO_BIG and
 * EMPTY, *body_len holds the declared length. Borrows 'in'. */
enum smq_frame_result smq_frame_decode(const uint8_t *in, size_t len, uint32_t max_body,
                                       const uint8_t **body, uint32_t *body_len,
                                       size_t *total);

/* Write the 4-byte header for a body of body_len bytes into out. */
void smq_frame_put_header(uint8_t *out, uint32_t body_len);

#endif /* SLABMQ_PROTOCOL_FRAME_H */
