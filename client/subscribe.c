/* SPDX-License-Identifier: MIT */
/* Subscriptions: SUBSCRIBE, UNSUBSCRIBE, and the DELIVER frames the broker pushes for them.
 *
 * A push can arrive at any point between replies (docs/protocol.md 6.20): while a
 * synchronous call waits for its reply, while pipelined confirmations are read, or in
 * slabmq_receive(). Wherever it is read, it is decoded at once into a batch and appended to
 * the client's list of pushes (c->pushed), which slabmq_receive() hands out oldest first.
 * The list needs no bound of its own: every message pushed stays in flight, counted against
 * its subscription's credit, until the application settles it, so the list holds at most as
 * many messages as the subscriptions have credit, plus one end-of-subscription entry each.
 *
 * The subscription table maps ids to queue names so each batch can say where its messages
 * come from; a connection holds at most 64 subscriptions, so a linear scan is enough. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "ops.h"

/* ---------------------------------------------------------------------------------------- */
/* The subscription table                                                                    */

static struct smq_sub *
find_sub(struct slabmq_client *c, uint64_t id)
{
    for (size_t i = 0; i < c->nsubs; i++)
        if (c->subs[i].id == id)
            return &c->subs[i];
    return NULL;
}

/* Remember subscription id on queue. 0, or -1 when out of memory. */
static int
add_sub(struct slabmq_client *c, uint64_t id, const char *queue)
{
    struct smq_sub *subs = realloc(c->subs, (c->nsubs + 1) * sizeof(*subs));

    if (!subs)
        return -1;
    c->subs = subs;
    subs[c->nsubs].id = id;
    snprintf(subs[c->nsubs].queue, sizeof(subs[c->nsubs].queue), "%s", queue);
    c->nsubs++;
    return 0;
}

static void
remove_sub(struct slabmq_client *c, uint64_t id)
{
    struct smq_sub *s = find_sub(c, id);

    if (s)
        *s = c->subs[--c->nsubs];
}

void
smq_subs_free(struct slabmq_client *c)
{
    while (c->pushed) {
        struct slabmq_batch *b = c->pushed;
        c->pushed = b->next;
        slabmq_batch_free(b);
    }
    c->pushed_end = &c->pushed;
    free(c->subs);
    c->subs = NULL;
    c->nsubs = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Pushes                                                                                    */

int
smq_is_deliver(const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    uint32_t n;
    uint64_t op;

    smq_mpr_init(&r, body, len);
    return smq_mpr_array(&r, &n) == 0 && n >= 3 && smq_mpr_uint(&r, &op) == 0
           && op == SMQ_OP_DELIVER;
}

/* Returns a new empty batch that reports the end of a subscription: its status and the
 * broker's message. NULL when out of memory. */
static struct slabmq_batch *
end_batch(slabmq_status status, const char *msg, uint32_t mlen)
{
    struct slabmq_batch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->status = status;
    b->error = strndup(msg, mlen);
    if (!b->error) {
        free(b);
        return NULL;
    }
    return b;
}

slabmq_status
smq_push_deliver(struct slabmq_client *c, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    struct smq_head h;
    struct slabmq_batch *b = NULL;
    struct smq_sub *s;
    slabmq_status st = SLABMQ_OK;

    smq_mpr_init(&r, body, len);
    if (smq_read_head(&r, &h))
        return smq_bad_reply(c, "DELIVER");
    if (h.status == SLABMQ_OK) {
        st = smq_read_batch(c, &r, h.n - 3, &b);
    } else {
        b = end_batch((slabmq_status)h.status, h.msg, h.mlen);
        if (!b)
            st = smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for a push");
    }
    if (st)
        return st;
    b->subscription = h.id;
    s = find_sub(c, h.id);
    if (s) {
        snprintf(b->qname, sizeof(b->qname), "%s", s->queue);
        b->queue = b->qname;
    }
    if (h.status != SLABMQ_OK)
        remove_sub(c, h.id); /* the broker ended it */
    *c->pushed_end = b;
    c->pushed_end = &b->next;
    return SLABMQ_OK;
}

/* Take the oldest push from the list. */
static struct slabmq_batch *
pop_push(struct slabmq_client *c)
{
    struct slabmq_batch *b = c->pushed;

    c->pushed = b->next;
    if (!c->pushed)
        c->pushed_end = &c->pushed;
    b->next = NULL;
    return b;
}

/* Hand out the oldest push: a batch of messages (at most max of them, 0: no limit; a
 * larger push stays first in line with the rest), or the end of a subscription. */
static slabmq_status
hand_out(struct slabmq_client *c, size_t max, slabmq_batch **out)
{
    struct slabmq_batch *b;

    if (max && c->pushed->status == SLABMQ_OK && c->pushed->n > max) {
        *out = smq_batch_take(c->pushed, max);
        return *out ? SLABMQ_OK
                    : smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for a batch");
    }
    b = pop_push(c);
    *out = b;
    if (b->status == SLABMQ_OK)
        return SLABMQ_OK;
    return smq_client_fail(c, b->status, "subscription %llu%s%s ended: %s: %s",
                           (unsigned long long)b->subscription, b->queue ? " to " : "",
                           b->queue ? b->queue : "", smq_status_message(b->status),
                           b->error ? b->error : "");
}

/* An empty batch for a receive that got nothing in time. */
static slabmq_status
nothing(struct slabmq_client *c, slabmq_batch **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? SLABMQ_OK : smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
}

/* Handle one frame read by slabmq_receive(): a push joins the list, a pipelined reply goes
 * to the confirmation callbacks, anything else is an error. */
static slabmq_status
receive_frame(struct slabmq_client *c, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    struct smq_head h;

    if (smq_is_deliver(body, len))
        return smq_push_deliver(c, body, len);
    if (c->outstanding > 0)
        return smq_confirm(c, body, len);
    smq_mpr_init(&r, body, len);
    if (smq_read_head(&r, &h) || h.op != SMQ_OP_NONE || h.status == SLABMQ_OK)
        return smq_bad_reply(c, "a reply to no request");
    smq_client_fail(c, (slabmq_status)h.status, "%s: %.*s",
                    smq_status_message((unsigned)h.status), (int)h.mlen, h.msg);
    c->broken = 1; /* a connection-level error: the broker closes */
    return (slabmq_status)h.status;
}

SLABMQ_API slabmq_status
slabmq_receive(slabmq_client *c, int timeout_ms, slabmq_batch **out)
{
    return slabmq_receive_max(c, timeout_ms, 0, out);
}

SLABMQ_API slabmq_status
slabmq_receive_max(slabmq_client *c, int timeout_ms, size_t max, slabmq_batch **out)
{
    int64_t deadline;
    slabmq_status st;

    if (!c || !out)
        return SLABMQ_ERR_ARG;
    *out = NULL;
    if (c->pushed)
        return hand_out(c, max, out);
    if (c->broken)
        return smq_client_fail(c, SLABMQ_ERR_CLOSED,
                               "connection unusable after an earlier error; reconnect");
    deadline = timeout_ms > 0 ? smq_now_ms() + timeout_ms : 0;
    st = SLABMQ_OK;
    while (st == SLABMQ_OK && !c->pushed) {
        const uint8_t *body;
        uint32_t len;
        size_t avail = c->rlen - c->rstart;
        int got = smq_next_buffered(c, &body, &len);
        if (got < 0)
            return (slabmq_status)c->last;
        if (got > 0) {
            st = receive_frame(c, body, len);
            continue;
        }
        /* Only now, with nothing complete left to hand out, do the queued requests go
         * out: the acks of every push that came in one read then leave in one send. */
        if (c->wlen > 0)
            st = smq_send_queued(c, c->timeout_ms > 0 ? smq_now_ms() + c->timeout_ms : 0);
        if (st == SLABMQ_OK)
            st = smq_recv_some(c);
        if (st || c->rlen - c->rstart > avail)
            continue;
        if (timeout_ms == 0)
            return nothing(c, out);
        got = smq_wait_readable(c, deadline);
        if (got == 0 || got == -2)
            return nothing(c, out); /* timed out, or interrupted by a signal */
        if (got < 0)
            st = smq_client_fail(c, SLABMQ_ERR_IO, "poll failed");
    }
    return st ? st : hand_out(c, max, out);
}

/* ---------------------------------------------------------------------------------------- */
/* SUBSCRIBE and UNSUBSCRIBE                                                                 */

SLABMQ_API slabmq_status
slabmq_subscribe(slabmq_client *c, const char *queue, uint32_t credit, uint64_t *subscription)
{
    struct smq_mpr r;
    uint32_t n;
    uint64_t id;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    if (credit == 0)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "a subscription needs a credit of at least 1");
    smq_req_begin(c, SMQ_OP_SUBSCRIBE, 2);
    smq_pack_str(c, queue);
    msgpack_pack_uint32(&c->pk, credit);
    st = smq_call(c, SMQ_OP_SUBSCRIBE, 0, &r, &n);
    if (st)
        return st;
    if (n < 1 || smq_mpr_uint(&r, &id) || id == 0)
        return smq_bad_reply(c, "SUBSCRIBE");
    if (add_sub(c, id, queue))
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
    if (subscription)
        *subscription = id;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_unsubscribe(slabmq_client *c, uint64_t subscription)
{
    struct smq_mpr r;
    uint32_t n;
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    smq_req_begin(c, SMQ_OP_UNSUBSCRIBE, 1);
    msgpack_pack_uint64(&c->pk, subscription);
    st = smq_call(c, SMQ_OP_UNSUBSCRIBE, 0, &r, &n);
    if (st == SLABMQ_OK || st == SLABMQ_ERR_NOT_FOUND)
        remove_sub(c, subscription);
    return st;
}
