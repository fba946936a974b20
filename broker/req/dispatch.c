/* SPDX-License-Identifier: MIT */
/* Frame dispatch; see dispatch.h. O(1) per frame besides the handler (and, for a connection
 * authenticated as a user, the permission check: O(the user's patterns)). */
#include "req/dispatch.h"

#include <stdarg.h>
#include <stdio.h>

#include "req/cmd.h"
#include "codec.h"
#include "net/conn.h"
#include "util/log.h"
#include "req/reply.h"
#include "net/server.h"
#include "slabmq_protocol.h"

static const cmd_fn handlers[SMQ_OP_MAX] = {
#define HANDLER_(code, name, lname) [code] = cmd_##lname,
    SMQ_OPS_MAP(HANDLER_)
#undef HANDLER_
};

void
dispatch_fatal(struct conn *c, unsigned code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->srv->protocol_errors++;
    log_info("connection %llu from %s: %s; closing", (unsigned long long)c->id, c->peer, msg);
    reply_error(c, SMQ_OP_NONE, 0, code, "%s", msg);
    conn_close_after_write(c);
}

void
dispatch_frame(struct conn *c, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    uint64_t op;
    uint64_t rid;
    uint32_t nargs;

    smq_mpr_init(&r, body, len);
    if (smq_read_header(&r, &op, &rid, &nargs)) {
        c->srv->protocol_errors++;
        reply_error(c, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL,
                    "body is not a msgpack array [op, request_id, ...]");
        if (!c->ready) /* not a slabmq client: nothing more to say to it */
            conn_close_after_write(c);
        return;
    }
    if (op == 0 || op >= SMQ_OP_MAX || !handlers[op]) {
        c->srv->protocol_errors++;
        reply_error(c, op, rid, SLABMQ_ERR_UNKNOWN_OP, "unknown operation %llu",
                    (unsigned long long)op);
        if (!c->ready)
            conn_close_after_write(c);
        return;
    }
    if (!c->hello && op != SMQ_OP_HELLO) {
        c->srv->protocol_errors++;
        reply_error(c, op, rid, SLABMQ_ERR_HELLO_REQUIRED,
                    "HELLO must be the first request on a connection");
        conn_close_after_write(c);
        return;
    }
    if (!c->ready && op != SMQ_OP_HELLO && op != SMQ_OP_AUTH) {
        log_info("connection %llu from %s: %s before AUTH; closing", (unsigned long long)c->id,
                 c->peer, smq_op_name((unsigned)op));
        reply_error(c, op, rid, SLABMQ_ERR_AUTH,
                    "authentication required: AUTH must follow HELLO on this broker");
        conn_close_after_write(c);
        return;
    }
    if (c->user && !cmd_permitted(c, (unsigned)op, rid, r, nargs))
        return;
    handlers[op](c, rid, &r, nargs);
}
