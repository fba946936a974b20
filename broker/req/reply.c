/* SPDX-License-Identifier: MIT */
/* Reply encoding; see reply.h. Payloads are copied once, from the slab into the output. */
#include "req/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "req/req.h"
#include "frame.h"
#include "mpwrite.h"
#include "core/delivery.h"
#include "core/queue.h"
#include "mem/segment.h"

void
reply_begin(struct reply *r, struct req *rq, uint64_t op, uint64_t rid, uint32_t nresults)
{
    r->rq = rq;
    msgpack_packer_init(&r->pk, &rq->out, obuf_pack_cb);
    obuf_frame_begin(&rq->out, &r->f);
    msgpack_pack_array(&r->pk, 3 + nresults);
    msgpack_pack_uint64(&r->pk, op);
    msgpack_pack_uint64(&r->pk, rid);
    msgpack_pack_uint64(&r->pk, 0);
}

void
reply_end(struct reply *r)
{
    obuf_frame_end(&r->rq->out, &r->f);
}

void
reply_uint(struct req *rq, uint64_t op, uint64_t rid, uint64_t v)
{
    uint8_t *start;
    uint8_t *p = reply_direct_begin(&rq->out, SMQ_MPW_MAX_HDR, op, rid, 1, &start);

    if (p)
        reply_direct_end(&rq->out, start, smq_mpw_uint(p, v));
}

void
reply_bool(struct req *rq, uint64_t op, uint64_t rid, int v)
{
    struct reply r;

    reply_begin(&r, rq, op, rid, 1);
    if (v)
        msgpack_pack_true(&r.pk);
    else
        msgpack_pack_false(&r.pk);
    reply_end(&r);
}

void
reply_ok(struct req *rq, uint64_t op, uint64_t rid)
{
    struct reply r;

    reply_begin(&r, rq, op, rid, 0);
    reply_end(&r);
}

void
reply_str(struct reply *r, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(&r->pk, n);
    msgpack_pack_str_body(&r->pk, s, n);
}

void
reply_error(struct req *rq, uint64_t op, uint64_t rid, unsigned code, const char *fmt, ...)
{
    struct reply r;
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r.rq = rq;
    msgpack_packer_init(&r.pk, &rq->out, obuf_pack_cb);
    obuf_frame_begin(&rq->out, &r.f);
    msgpack_pack_array(&r.pk, 4);
    msgpack_pack_uint64(&r.pk, op);
    msgpack_pack_uint64(&r.pk, rid);
    msgpack_pack_uint64(&r.pk, code);
    reply_str(&r, msg);
    reply_end(&r);
}

static void
pack_strn(struct reply *r, const char *s, size_t n)
{
    msgpack_pack_str(&r->pk, n);
    msgpack_pack_str_body(&r->pk, s, n);
}

/* Payloads up to this many bytes are copied into the reply with their header (one reserve);
 * larger ones by seg_copy_out(), which spreads them over pooled buffers. */
#define PACK_INLINE_MAX 1024u

/* A dead-lettered message's fourth element: why, from where, after how many deliveries.
 * Out of line so the usual message does not pay for the registers it needs (pack_message()
 * saved six: 22 instructions a message). */
__attribute__((noinline)) static void
pack_dead(struct reply *r, const struct msg_ext *e)
{
    msgpack_pack_map(&r->pk, 3);
    reply_str(r, "reason");
    reply_str(r, dl_reason_name(e->reason));
    reply_str(r, "queue");
    pack_strn(r, e->src, e->srclen);
    reply_str(r, "deliveries");
    msgpack_pack_uint32(&r->pk, e->dl_deliveries);
}

/* [id, deliveries, payload] for the record at (g, off): the header written directly, the
 * payload copied once from the slab. A dead letter gets a fourth element, its info map. */
static void
pack_message(struct reply *r, uint64_t id, uint32_t deliveries, const struct segment *g,
             uint32_t off, const struct msg_ext *e)
{
    struct seg_rec rec;
    const uint8_t *body;
    uint8_t *start;
    uint8_t *p;
    int dead = e && e->reason;

    seg_read(g, off, &rec);
    body = rec.len <= PACK_INLINE_MAX ? seg_body(g, off, &rec) : NULL;
    /* a small payload goes with its header in one reservation: one buffer check and a copy,
     * where a second record decode and an obuf_write() cost 100 instructions a message */
    start = obuf_reserve(&r->rq->out, 1 + 3 * SMQ_MPW_MAX_HDR + (body ? rec.len : 0));
    if (!start)
        return;
    p = smq_mpw_array(start, dead ? 4 : 3);
    p = smq_mpw_uint(p, id);
    p = smq_mpw_uint(p, deliveries);
    p = smq_mpw_bin(p, rec.len);
    if (body) {
        memcpy(p, body, rec.len);
        obuf_commit(&r->rq->out, (size_t)(p - start) + rec.len);
    } else {
        obuf_commit(&r->rq->out, (size_t)(p - start));
        seg_copy_out(g, off, &r->rq->out);
    }
    if (dead)
        pack_dead(r, e);
}

void
reply_deliveries(struct req *rq, uint64_t op, uint64_t rid, struct delivery **d, uint32_t n)
{
    reply_deliveries_from(rq, op, rid, d, n, 0, NULL);
}

void
reply_deliveries_from(struct req *rq, uint64_t op, uint64_t rid, struct delivery **d,
                      uint32_t n, int with_queue, const struct queue *q)
{
    struct reply r;

    reply_begin(&r, rq, op, rid, with_queue ? 2 : 1);
    msgpack_pack_array(&r.pk, n);
    for (uint32_t i = 0; i < n; i++)
        pack_message(&r, d[i]->id, d[i]->deliveries, d[i]->seg, d[i]->off, d[i]->ext);
    if (with_queue && q)
        pack_strn(&r, q->name, q->name_len);
    else if (with_queue)
        msgpack_pack_nil(&r.pk);
    reply_end(&r);
}

void
reply_msgrefs(struct req *rq, uint64_t op, uint64_t rid, const struct msgref *m, uint32_t n)
{
    struct reply r;

    reply_begin(&r, rq, op, rid, 1);
    msgpack_pack_array(&r.pk, n);
    for (uint32_t i = 0; i < n; i++)
        pack_message(&r, m[i].id, m[i].deliveries, m[i].seg, m[i].off, m[i].ext);
    reply_end(&r);
}
