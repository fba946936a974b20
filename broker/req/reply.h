/* SPDX-License-Identifier: MIT */
/* Writing replies into a connection's output: [op, request_id, status, results...] packed by
 * msgpack-rq straight into the output chain. */
#ifndef SLABMQ_BROKER_REQ_REPLY_H
#define SLABMQ_BROKER_REQ_REPLY_H

#include <stdint.h>

#include <msgpack.h>

#include "frame.h"
#include "mpwrite.h"
#include "mem/obuf.h"

struct req;
struct delivery;
struct msgref;

struct reply {
    struct req *rq;
    msgpack_packer pk;    /* packs into rq->out */
    struct obuf_frame f;
};

/* Start a success reply with nresults results to follow (packed by the caller with r->pk). */
void reply_begin(struct reply *r, struct req *rq, uint64_t op, uint64_t rid, uint32_t nresults);
void reply_end(struct reply *r);
/* A success reply written in place, without msgpack-rq (the hot path): reserve room for up
 * to 'room' bytes of results, write [op, rid, 0, ...] with nresults results to follow, and
 * return where the results go (NULL if no buffer could be had: the connection is closed by
 * its flush). *start is for reply_direct_end(), called with the end of the results. */
static inline uint8_t *
reply_direct_begin(struct obuf *out, size_t room, uint64_t op, uint64_t rid,
                   uint32_t nresults, uint8_t **start)
{
    uint8_t *p = obuf_reserve(out, SMQ_FRAME_HEADER + 1 + 3 * SMQ_MPW_MAX_HDR + room);

    *start = p;
    if (!p)
        return NULL;
    p = smq_mpw_array(p + SMQ_FRAME_HEADER, 3 + nresults);
    p = smq_mpw_uint(p, op);
    p = smq_mpw_uint(p, rid);
    *p++ = 0; /* status OK */
    return p;
}

static inline void
reply_direct_end(struct obuf *out, uint8_t *start, const uint8_t *end)
{
    smq_frame_put_header(start, (uint32_t)(end - start - SMQ_FRAME_HEADER));
    obuf_commit(out, (size_t)(end - start));
}

/* A success reply whose one result is an unsigned integer (PUBLISH id, ACK count), written
 * without msgpack-rq: the hot path. */
void reply_uint(struct req *rq, uint64_t op, uint64_t rid, uint64_t v);
/* A success reply whose one result is a bool. */
void reply_bool(struct req *rq, uint64_t op, uint64_t rid, int v);
/* A success reply with no results. */
void reply_ok(struct req *rq, uint64_t op, uint64_t rid);
/* An error reply: [op, rid, code, message]. */
void reply_error(struct req *rq, uint64_t op, uint64_t rid, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A success reply whose one result is [[id, deliveries, payload (, info)], ...]. */
void reply_deliveries(struct req *rq, uint64_t op, uint64_t rid, struct delivery **d,
                      uint32_t n);
/* The same, with_queue: plus a second result, q's name (nil if q is NULL): the reply to a
 * FETCH from several queues. Also the DELIVER push ([20, subscription, 0, messages]). */
struct queue;
void reply_deliveries_from(struct req *rq, uint64_t op, uint64_t rid, struct delivery **d,
                           uint32_t n, int with_queue, const struct queue *q);
void reply_msgrefs(struct req *rq, uint64_t op, uint64_t rid, const struct msgref *m,
                   uint32_t n);
/* Pack a str. */
void reply_str(struct reply *r, const char *s);

#endif /* SLABMQ_BROKER_REQ_REPLY_H */
