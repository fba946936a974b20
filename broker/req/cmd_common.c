/* SPDX-License-Identifier: MIT */
/* Argument helpers shared by the handlers, and the connection-level ops HELLO and PING. */
#include <stdio.h>
#include <string.h>

#include "core/broker.h"
#include "req/cmd.h"
#include "codec.h"
#include "req/req.h"
#include "frame.h"
#include "util/log.h"
#include "core/queue.h"
#include "req/reply.h"
#include "slabmq_protocol.h"

int
cmd_expect_args(struct req *rq, unsigned op, uint64_t rid, uint32_t nargs, uint32_t lo,
                uint32_t hi)
{
    if (nargs >= lo && nargs <= hi)
        return 0;
    if (lo == hi)
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "%s takes %u argument%s, got %u",
                    smq_op_name(op), lo, lo == 1 ? "" : "s", nargs);
    else
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "%s takes %u to %u arguments, got %u",
                    smq_op_name(op), lo, hi, nargs);
    return -1;
}

struct queue *
cmd_cached_queue(struct req *rq, const char *name, uint32_t len)
{
    struct queue *q = rq->qcache;

    if (q && q == rq->hint_q && name == rq->hint_name && len == q->name_len
        && rq->qcache_gen == rq->b->qgen)
        return q; /* found by this very name in this frame: cmd_read_name() compared it */
    if (q && rq->qcache_gen == rq->b->qgen && q->name_len == len
        && (name != rq->hint_name || len != rq->hint_len || q->hash == rq->hint_hash)
        /* a name hashed already whose hash differs is another queue: no memcmp */
        && memcmp(q->name, name, len) == 0)
        return q;
    return NULL;
}

void
cmd_cache_queue(struct req *rq, struct queue *q)
{
    rq->qcache = q;
    rq->qcache_gen = rq->b->qgen;
}

int
cmd_read_name(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, const char **name,
              uint32_t *len)
{
    struct queue *q;

    if (smq_mpr_str(r, name, len)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "queue name must be a msgpack str");
        return -1;
    }
    /* A name in the registry is valid: the lookup, which the handler needs anyway, goes
     * first and leaves the queue in the cache (over many queues the cache misses, and
     * checking each name's bytes cost 60 instructions a publish). */
    if (cmd_cached_queue(rq, *name, *len))
        return 0;
    q = *name == rq->hint_name && *len == rq->hint_len
            ? broker_queue_find_hashed(rq->b, *name, *len, rq->hint_hash)
            : broker_queue_find(rq->b, *name, *len);
    if (q) {
        cmd_cache_queue(rq, q);
        if (*name == rq->hint_name)
            rq->hint_q = q;
        return 0;
    }
    if (!smq_name_valid(*name, *len)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_NAME,
                    "queue names are 1-%d bytes of A-Z a-z 0-9 . _ : -", SMQ_NAME_MAX);
        return -1;
    }
    return 0;
}

int
cmd_read_uint(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, const char *what,
              uint64_t lo, uint64_t hi, uint64_t *v)
{
    if (smq_mpr_uint(r, v)) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "%s must be a non-negative integer",
                    what);
        return -1;
    }
    if (*v < lo || *v > hi) {
        reply_error(rq, op, rid, SLABMQ_ERR_BAD_REQUEST, "%s must be between %llu and %llu",
                    what, (unsigned long long)lo, (unsigned long long)hi);
        return -1;
    }
    return 0;
}

int
cmd_args_end(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r)
{
    if (r->err || smq_mpr_left(r) != 0) {
        reply_error(rq, op, rid, SLABMQ_ERR_PROTOCOL, "trailing or malformed bytes in body");
        return -1;
    }
    return 0;
}

struct queue *
cmd_find_queue(struct req *rq, unsigned op, uint64_t rid, const char *name, uint32_t len)
{
    struct queue *q = broker_queue_find(rq->b, name, len);

    if (!q)
        reply_error(rq, op, rid, SLABMQ_ERR_NOT_FOUND, "no queue named %.*s", (int)len, name);
    return q;
}

/* [version, client_name] ->
 *     [version, server, max_message_size, max_frame, max_fetch_bytes, max_inflight,
 *      auth_required, features] */
void
cmd_hello(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct broker *b = rq->b;
    uint64_t version;
    const char *name;
    uint32_t nlen;
    struct reply rep;

    if (cmd_expect_args(rq, SMQ_OP_HELLO, rid, nargs, 2, 2)
        || cmd_read_uint(rq, SMQ_OP_HELLO, rid, r, "version", 0, UINT32_MAX, &version))
        goto out_close;
    if (smq_mpr_str(r, &name, &nlen) || nlen > 64) {
        reply_error(rq, SMQ_OP_HELLO, rid, SLABMQ_ERR_BAD_REQUEST,
                    "client name must be a str of at most 64 bytes");
        goto out_close;
    }
    if (cmd_args_end(rq, SMQ_OP_HELLO, rid, r))
        goto out_close;
    if (version != SLABMQ_PROTOCOL_VERSION) {
        reply_error(rq, SMQ_OP_HELLO, rid, SLABMQ_ERR_VERSION,
                    "protocol version %llu not supported; this broker speaks %d",
                    (unsigned long long)version, SLABMQ_PROTOCOL_VERSION);
        req_close_after_write(rq); /* whatever it says next is in a language we do not speak */
        return;
    }
    rq->hello = 1;
    if (!rq->srv->auth && !rq->ready) /* without users, HELLO is the whole handshake */
        rq->srv->ops->handshake_done(rq);
    log_debug("connection %llu from %s: hello from '%.*s'", (unsigned long long)rq->id, rq->peer,
              (int)nlen, name);
    reply_begin(&rep, rq, SMQ_OP_HELLO, rid, 8);
    msgpack_pack_uint32(&rep.pk, SLABMQ_PROTOCOL_VERSION);
    reply_str(&rep, "slabmqd " SLABMQ_VERSION_STRING);
    msgpack_pack_uint32(&rep.pk, b->cfg.max_message_size);
    msgpack_pack_uint32(&rep.pk, b->cfg.max_message_size + SMQ_FRAME_SLACK);
    msgpack_pack_uint64(&rep.pk, b->cfg.max_fetch_bytes);
    msgpack_pack_uint32(&rep.pk, b->cfg.max_inflight);
    if (rq->srv->auth) /* auth_required: AUTH must come next */
        msgpack_pack_true(&rep.pk);
    else
        msgpack_pack_false(&rep.pk);
    msgpack_pack_uint32(&rep.pk, SMQ_FEATURES);
    reply_end(&rep);
    return;
out_close:
    if (!rq->ready) /* before the handshake is done, any error ends the connection */
        req_close_after_write(rq);
}

void
cmd_ping(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    if (cmd_expect_args(rq, SMQ_OP_PING, rid, nargs, 0, 0) || cmd_args_end(rq, SMQ_OP_PING, rid, r))
        return;
    reply_ok(rq, SMQ_OP_PING, rid);
}
