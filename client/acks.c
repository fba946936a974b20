/* SPDX-License-Identifier: MIT */
/* Pipelined ACKs, coalesced: consecutive slabmq_ack_async() calls share one ACK frame.
 *
 * A consumer acking each message with slabmq_ack_async(c, &id, 1, NULL) made one frame per
 * message: the client built, framed and accounted a request per id (about 336 of its 839
 * instructions per message drained, callgrind) and the broker dispatched a frame per id
 * (about 433 instructions more per message than ids sharing a frame). ACK takes many ids
 * ([11, rid, [id, ...], flags], docs/protocol.md 6.11), so while the request queued last is
 * a QUIET ACK with the same flags that has not been sent, a call of one id appends it: the
 * ids are an array32, whose count is patched in place, and the trailing flags byte moves
 * after the new id. The frame is one request: one request id (every call that joined it
 * gets it), one place in the settlement limit (which counts requests: replies owed). Each
 * call still gets its own confirmation (client.c, notify_quiet), with that request id and
 * its count, so a program that pairs its calls with confirmations keeps working.
 *
 * Only QUIET ACKs take more ids: a plain ACK's reply carries one count, which could not be
 * shared out among calls were it to fail partly. Only calls of one id join one (the idiom
 * this is for; a batch ack is one frame anyway), so the calls' counts are the first call's
 * and then 1 each (struct smq_quiet). The QUIET run counts ids (smq_quiet_reserve()): an
 * ACK stops taking ids once SMQ_QUIET_RUN have gone QUIET in a row, and the next call is a
 * plain ACK, whose reply confirms the run; so a push consumer's acks are confirmed as often
 * as before. Anything queued after it (a publish, a NACK, a FETCH) or a send ends it, so
 * the wire keeps the calls' order. Costs 4 bytes per frame (array32 instead of fixarray).
 * NACK and TERM are left alone: a NACK carries its delay, and neither is a consumer's
 * per-message idiom the way an ack is.
 *
 * On a connection with subscriptions, the plain ACK that closes a full QUIET run is sent at
 * once with everything queued before it, instead of waiting for the next slabmq_receive():
 * the credit those SMQ_QUIET_RUN acks give back lets the broker push the next messages
 * while the consumer still works through the rest of what it was pushed. Without it a
 * subscriber with a credit of 512 waited out a whole round trip per 512 messages (a drain
 * at about 80% of a credit of 4,096's rate); it costs one send per SMQ_QUIET_RUN + 1 acks.
 * A FETCH consumer gains nothing from early acks (nothing is delivered before its next
 * FETCH), so its acks still leave with that FETCH, in one write. */
#include <stdint.h>

#include "client-internal.h"
#include "frame.h"
#include "mpwrite.h"
#include "ops.h"

/* Room before the ids: fixarray, op, request id, the ids' array32 header. */
#define ACK_HEAD (2 + SMQ_MPW_MAX_HDR + 5)

/* The ring entry of the ACK queued last if it takes the id of a call of n ids with these
 * flags, else NULL: n is 1, it is QUIET, still the last request and unsent, with the same
 * flags, still the QUIET ACKs' ring's last entry (a broken or hostile broker's reply naming
 * it, read before it was sent, takes it off), the QUIET run not yet full, and its body
 * within the broker's frame limit with one more id however large. The run bounds what an
 * ACK takes to SMQ_QUIET_RUN ids: a body of 2.3 KiB at most, far under the smallest frame
 * a broker takes (max_message_size + SMQ_FRAME_SLACK), but the limit is checked all the
 * same. */
static struct smq_quiet *
ackq_takes(struct slabmq_client *c, size_t n, unsigned flags)
{
    const struct smq_ackq *a = &c->ackq;
    uint32_t last;

    if (n != 1 || a->end != c->wlen || a->end == 0 || a->rid + 1 != c->next_rid
        || a->flags != flags || !(a->wire & SMQ_ACK_QUIET) || c->qids >= c->qrun_max
        || c->qlen == 0 || a->end - a->frame - SMQ_FRAME_HEADER + SMQ_MPW_MAX_HDR > c->max_frame)
        return NULL;
    last = c->qhead + c->qlen - 1; /* both below qcap: no division */
    if (last >= c->qcap)
        last -= c->qcap;
    return c->quiet[last].rid == a->rid ? &c->quiet[last] : NULL;
}

/* Append one id to the queued QUIET ACK, whose ring entry is q. Its ids' count and its
 * frame length are left: smq_ack_seal() writes them once, when the frame leaves, rather
 * than each call. On failure (out of memory) the frame is as it was. */
static slabmq_status
ackq_append(struct slabmq_client *c, struct smq_quiet *q, uint64_t id, uint64_t *request)
{
    struct smq_ackq *a = &c->ackq;
    uint8_t *p;

    /* the flags byte is rewritten, not added */
    if (c->wcap - c->wlen < SMQ_MPW_MAX_HDR && smq_wbuf_room(c, SMQ_MPW_MAX_HDR))
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
    p = smq_mpw_uint(c->wbuf + a->end - 1, id);
    *p++ = a->wire;
    a->n++;
    a->end = c->wlen = (size_t)(p - c->wbuf);
    q->n++;
    q->calls++;
    c->qids++;
    if (request)
        *request = a->rid;
    return c->wlen >= 65536 ? smq_req_grew(c) : SLABMQ_OK;
}

/* Queue a new ACK of n ids, QUIET when the run allows, that later calls may append to. */
static slabmq_status
ackq_new(struct slabmq_client *c, const uint64_t *ids, size_t n, unsigned flags,
         uint64_t *request)
{
    int quiet = !smq_quiet_reserve(c);
    /* a plain ACK because a QUIET run is full (not because the broker has no QUIET) */
    int closes_run = !quiet && (c->features & SMQ_FEATURE_QUIET_ACK) && c->qrun_max > 0
                     && (c->qrun >= c->qrun_max || c->qids >= c->qrun_max);
    unsigned wire = flags | (quiet ? SMQ_ACK_QUIET : 0);
    uint8_t *p = smq_req_reserve(c, ACK_HEAD + n * SMQ_MPW_MAX_HDR + 1);
    size_t at;
    slabmq_status st;

    if (!p)
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
    p = smq_mpw_array(p, wire ? 4 : 3);
    p = smq_mpw_uint(p, SMQ_OP_ACK);
    p = smq_mpw_uint(p, c->next_rid);
    at = (size_t)(p - c->wbuf);
    *p = 0xdd; /* array32 even when short: later calls patch its count */
    p = smq_mpw_be(p + 1, n, 4);
    for (size_t i = 0; i < n; i++)
        p = smq_mpw_uint(p, ids[i]);
    if (wire)
        *p++ = (uint8_t)wire; /* SMQ_ACK_* are below 128: one byte */
    smq_req_wrote(c, p);
    if (c->ackq.end) /* an older one still queued: it takes no more ids */
        smq_ack_seal(c);
    c->ackq = (struct smq_ackq){c->wstart, at, c->wlen, c->next_rid, (uint32_t)n,
                                (uint8_t)wire, (uint8_t)flags};
    st = quiet ? smq_req_async_quiet(c, request, n) : smq_req_async_settle(c, request);
    if (st) /* dropped unqueued, or queued and a send failed: nothing to append to */
        c->ackq.end = 0;
    else if (closes_run && c->nsubs > 0)
        st = smq_send_now(c); /* the run is full: give a subscriber's credit back now */
    return st;
}

slabmq_status
smq_ack_async(struct slabmq_client *c, const uint64_t *ids, size_t n, unsigned flags,
              uint64_t *request)
{
    struct smq_quiet *q;

    if (n == 0 || !ids)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "no ids given");
    if (n > UINT32_MAX || n > (SIZE_MAX - ACK_HEAD - 1) / SMQ_MPW_MAX_HDR)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "too many ids in one ACK");
    if (c->broken)
        return smq_client_fail(c, SLABMQ_ERR_CLOSED,
                               "connection unusable after an earlier error; reconnect");
    q = ackq_takes(c, n, flags);
    if (q)
        return ackq_append(c, q, ids[0], request);
    return ackq_new(c, ids, n, flags, request);
}
