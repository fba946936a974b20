/* SPDX-License-Identifier: MIT */
/* Frame dispatch; see dispatch.h. O(1) per frame besides the handler (and, for a connection
 * authenticated as a user, the permission check: O(the user's patterns)). */
#include "req/dispatch.h"

#include <stdarg.h>
#include <stdio.h>

#include "req/cmd.h"
#include "codec.h"
#include "frame.h"
#include "mem/mem.h"
#include "req/req.h"
#include "util/log.h"
#include "req/reply.h"
#include "slabmq_protocol.h"

static const cmd_fn handlers[SMQ_OP_MAX] = {
#define HANDLER_(code, name, lname) [code] = cmd_##lname,
    SMQ_OPS_MAP(HANDLER_)
#undef HANDLER_
};

void
dispatch_fatal(struct req *rq, unsigned code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rq->srv->n.protocol_errors++;
    log_info("connection %llu from %s: %s; closing", (unsigned long long)rq->id, rq->peer, msg);
    reply_error(rq, SMQ_OP_NONE, 0, code, "%s", msg);
    req_close_after_write(rq);
}

/* Only the encodings clients send ([fixarray, fixint op, uint id, str8 or fixstr name]) are
 * recognised: a miss only costs a prefetch. */
int
dispatch_queue_name(const uint8_t *body, uint32_t len, const char **name, uint32_t *nlen)
{
    static const uint8_t id_bytes[4] = {2, 3, 5, 9}; /* 0xcc..0xcf: marker + 1, 2, 4, 8 */
    uint32_t at = 2;
    uint32_t n;

    if (len < 4 || body[0] < 0x93 || body[0] > 0x9f
        || (body[1] != SMQ_OP_PUBLISH && body[1] != SMQ_OP_PUBLISH_BATCH
            && body[1] != SMQ_OP_FETCH))
        return 0;
    if (body[2] >= 0xcc && body[2] <= 0xcf)
        at += id_bytes[body[2] - 0xcc];
    else if (body[2] < 0x80)
        at++;
    else
        return 0;
    if (at + 2 > len)
        return 0;
    if (body[at] >= 0xa1 && body[at] <= 0xbf) {
        n = body[at] - 0xa0u;
        at++;
    } else if (body[at] == 0xd9) {
        n = body[at + 1];
        at += 2;
    } else {
        return 0;
    }
    if (n == 0 || n > len - at)
        return 0;
    *name = (const char *)body + at;
    *nlen = n;
    return 1;
}

void
dispatch_frame(struct req *rq, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    uint64_t op;
    uint64_t rid;
    uint32_t nargs;

    smq_mpr_init(&r, body, len);
    if (smq_read_header(&r, &op, &rid, &nargs)) {
        rq->srv->n.protocol_errors++;
        reply_error(rq, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL,
                    "body is not a msgpack array [op, request_id, ...]");
        if (!rq->ready) /* not a slabmq client: nothing more to say to it */
            req_close_after_write(rq);
        return;
    }
    if (op == 0 || op >= SMQ_OP_MAX || !handlers[op]) {
        rq->srv->n.protocol_errors++;
        reply_error(rq, op, rid, SLABMQ_ERR_UNKNOWN_OP, "unknown operation %llu",
                    (unsigned long long)op);
        if (!rq->ready)
            req_close_after_write(rq);
        return;
    }
    if (!rq->hello && op != SMQ_OP_HELLO) {
        rq->srv->n.protocol_errors++;
        reply_error(rq, op, rid, SLABMQ_ERR_HELLO_REQUIRED,
                    "HELLO must be the first request on a connection");
        req_close_after_write(rq);
        return;
    }
    if (!rq->ready && op != SMQ_OP_HELLO && op != SMQ_OP_AUTH) {
        log_info("connection %llu from %s: %s before AUTH; closing", (unsigned long long)rq->id,
                 rq->peer, smq_op_name((unsigned)op));
        reply_error(rq, op, rid, SLABMQ_ERR_AUTH,
                    "authentication required: AUTH must follow HELLO on this broker");
        req_close_after_write(rq);
        return;
    }
    if (rq->user && !cmd_permitted(rq, (unsigned)op, rid, r, nargs))
        return;
    handlers[op](rq, rid, &r, nargs);
}

int
dispatch_admit(struct req *rq, const uint8_t *body, size_t have, uint32_t blen)
{
    struct broker *b = rq->b;
    struct smq_mpr r;
    uint64_t op;
    uint64_t rid;
    uint32_t nargs;
    int publish;

    smq_mpr_init(&r, body, have);
    if (!rq->hello || smq_read_header(&r, &op, &rid, &nargs))
        return 0;
    publish = op == SMQ_OP_PUBLISH || op == SMQ_OP_PUBLISH_BATCH;
    if (mem_make_room(&b->mem, (size_t)blen + SMQ_FRAME_HEADER, publish ? b->mem.headroom : 0))
        return 0;
    reply_error(rq, op, rid, SLABMQ_ERR_NOMEM,
                "memory limit reached: %zu of %zu bytes in use, frame of %u bytes refused "
                "before reading it; retry later%s", b->mem.used, b->mem.limit, blen,
                publish ? "" : ", or send smaller batches");
    return 1;
}
