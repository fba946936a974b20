/* SPDX-License-Identifier: MIT */
/* Frame header codec. See frame.h; cost O(1). */
#include "frame.h"

#include "ops.h"
#include "slabmq_protocol.h"

void
smq_frame_put_header(uint8_t *out, uint32_t body_len)
{
    out[0] = (uint8_t)(body_len >> 24);
    out[1] = (uint8_t)(body_len >> 16);
    out[2] = (uint8_t)(body_len >> 8);
    out[3] = (uint8_t)body_len;
}

enum smq_frame_result
smq_frame_decode(const uint8_t *in, size_t len, uint32_t max_body, const uint8_t **body,
                 uint32_t *body_len, size_t *total)
{
    uint32_t n;

    *total = 0;
    if (len < SMQ_FRAME_HEADER)
        return SMQ_FRAME_NEED_MORE;
    n = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
    *body_len = n;
    if (n == 0)
        return SMQ_FRAME_EMPTY;
    if (n > max_body)
        return SMQ_FRAME_TOO_BIG;
    *total = SMQ_FRAME_HEADER + (size_t)n;
    if (len < *total)
        return SMQ_FRAME_NEED_MORE;
    *body = in + SMQ_FRAME_HEADER;
    return SMQ_FRAME_OK;
}

const char *
smq_op_name(unsigned op)
{
    switch (op) {
#define SMQ_OP_NAME_(code, name, lname) \
    case code:                          \
        return #lname;
        SMQ_OPS_MAP(SMQ_OP_NAME_)
#undef SMQ_OP_NAME_
    case SMQ_OP_DELIVER:
        return "deliver";
    default:
        return NULL;
    }
}

const char *
smq_status_message(unsigned code)
{
    switch (code) {
#define SMQ_STATUS_MSG_(code, name, msg) \
    case code:                           \
        return msg;
        SLABMQ_STATUS_MAP(SMQ_STATUS_MSG_)
#undef SMQ_STATUS_MSG_
    default:
        return "unknown status";
    }
}

const char *
smq_status_name(unsigned code)
{
    switch (code) {
#define SMQ_STATUS_NAME_(code, name, msg) \
    case code:                            \
        return #name;
        SLABMQ_STATUS_MAP(SMQ_STATUS_NAME_)
#undef SMQ_STATUS_NAME_
    default:
        return "UNKNOWN";
    }
}
