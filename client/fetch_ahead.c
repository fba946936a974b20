/* SPDX-License-Identifier: MIT */
/* FETCH read-ahead (slabmq_client_set_fetch_ahead): slabmq_fetch() hands out the reply of a
 * FETCH an earlier call sent, and sends the next one in the same write as the acks queued
 * since, so the broker fills the next batch while the application works through this one.
 * Without it, one FETCH is in flight: the broker idles while the client works and the
 * client idles for the round trip (some 10 us of broker CPU and a wake-up each).
 *
 * The FETCHes sent ahead are pipelined requests (they count against the window) with wait
 * 0: the broker answers them at once, so their replies keep the order of the connection's
 * other replies, which the pipelining relies on (a waiting FETCH is answered after the
 * requests behind it). A long poll is made only by a call that found no message ahead, as
 * one round trip (smq_fetch_sync). FETCHes go ahead only after a full batch (more_waiting):
 * after a short one they would come back with a few messages each, a FETCH per handful,
 * which is what a consumer keeping up with its producer would otherwise send. The client
 * spends nothing more per message (callgrind-client.sh: 345 instructions at 16 B either
 * way); the ring and one flag per connection are all it keeps. */
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "ops.h"

#define AHEAD_CAP (SLABMQ_FETCH_AHEAD_MAX + 1) /* depth, plus the one a call adds */

SLABMQ_API slabmq_status
slabmq_client_set_fetch_ahead(slabmq_client *c, uint32_t depth)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (depth > SLABMQ_FETCH_AHEAD_MAX)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "fetch-ahead depth %u over %d", depth,
                               SLABMQ_FETCH_AHEAD_MAX);
    if (depth && !c->ahead) {
        c->ahead = calloc(AHEAD_CAP, sizeof(*c->ahead));
        if (!c->ahead)
            return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
    }
    c->ahead_depth = depth;
    return SLABMQ_OK;
}

static struct smq_ahead *
slot(const struct slabmq_client *c, uint32_t i)
{
    return &c->ahead[(c->ahead_head + i) % AHEAD_CAP];
}

int
smq_ahead_expects(const struct slabmq_client *c, uint64_t rid)
{
    return c->ahead_len > c->ahead_replied && slot(c, c->ahead_replied)->rid == rid;
}

slabmq_status
smq_ahead_reply(struct slabmq_client *c, const struct smq_head *h, struct smq_mpr *r)
{
    struct smq_ahead *a = slot(c, c->ahead_replied);
    struct slabmq_batch *b = NULL;
    slabmq_status st;

    a->replied = 1;
    a->batch = NULL;
    c->ahead_replied++;
    if (h->status != SLABMQ_OK) /* not reported: the call that finds it makes its own FETCH,
                                   which reports the failure if it lasts */
        return SLABMQ_OK;
    if (h->op != SMQ_OP_FETCH)
        return smq_bad_reply(c, "reply to a FETCH sent ahead names another op");
    st = smq_read_batch(c, r, h->n - 3, &b);
    if (st == SLABMQ_OK && a->qname[0])
        smq_batch_set_queue(b, a->qname, strlen(a->qname));
    else if (st == SLABMQ_OK)
        st = smq_fetch_read_name(c, r, h->n - 3, b);
    if (st || b->n == 0) {
        slabmq_batch_free(b);
        return st;
    }
    a->batch = b;
    return SLABMQ_OK;
}

void
smq_ahead_free(struct slabmq_client *c)
{
    for (uint32_t i = 0; i < c->ahead_len; i++)
        slabmq_batch_free(slot(c, i)->batch);
    free(c->ahead);
    c->ahead = NULL;
    c->ahead_len = c->ahead_replied = 0;
}

/* Queue a FETCH for q, wait 0, as pipelined, and remember it. */
static slabmq_status
queue_one(struct slabmq_client *c, const struct smq_fetch_req *q)
{
    struct smq_ahead *a;
    uint64_t rid = 0; /* request ids start at 1: 0 says it was not queued */
    slabmq_status st;

    if (c->ahead_len == AHEAD_CAP)
        return SLABMQ_OK; /* a depth lowered and raised again: enough are on their way */
    if (smq_fetch_pack(c, q, 0))
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
    /* the slot first: replies to it may be read inside smq_req_async() (window full) */
    a = slot(c, c->ahead_len);
    a->rid = c->next_rid;
    a->batch = NULL;
    a->replied = 0;
    if (q->queue)
        memcpy(a->qname, q->queue, strlen(q->queue) + 1); /* checked: at most SMQ_NAME_MAX */
    else
        a->qname[0] = '\0';
    c->ahead_len++;
    st = smq_req_async(c, &rid);
    if (st && rid != a->rid) /* not queued (building it failed): forget it */
        c->ahead_len--;
    return st;
}

static int64_t
deadline_now(const struct slabmq_client *c)
{
    return c->timeout_ms > 0 ? smq_now_ms() + c->timeout_ms : 0;
}

/* Whether a batch of n messages for q says more are probably waiting, so that a FETCH sent
 * ahead would find some: a full batch, or any batch of a FETCH of several queues (a short one
 * says only that the queue that answered ran dry). After a short batch of one queue the next
 * call makes its own FETCH and long-polls: a consumer that keeps up with its producer does
 * not poll the broker with FETCHes that come back nearly empty, which cost both sides CPU
 * that the producer would use. */
static int
more_waiting(const struct smq_fetch_req *q, size_t n)
{
    return n > 0 && (n >= q->max || !q->queue);
}

/* Send a FETCH for q ahead when more_waiting(); a failure comes back from the next call. */
static void
send_ahead(struct slabmq_client *c, const struct smq_fetch_req *q, uint32_t count)
{
    slabmq_status st = SLABMQ_OK;

    for (uint32_t i = 0; i < count && st == SLABMQ_OK; i++)
        st = queue_one(c, q);
    if (st == SLABMQ_OK)
        smq_send_now(c); /* with the acks queued since the last call: one write */
}

slabmq_status
smq_fetch_ahead(struct slabmq_client *c, const struct smq_fetch_req *q, slabmq_batch **out)
{
    slabmq_status st;
    int sent = 0;

    if (c->ahead_len > 0 && c->ahead_depth > 0 && c->ahead_more) {
        /* the last batch was full: this call's FETCH goes ahead at once, in the same write as
         * the acks queued so far, so the broker has it before we wait for the one ahead */
        send_ahead(c, q, 1);
        sent = 1;
    }
    while (c->ahead_len > 0) {
        struct smq_ahead *a = slot(c, 0);
        while (!a->replied) { /* sent when queued: its reply is on its way */
            st = smq_read_confirm(c, deadline_now(c));
            if (st)
                return st;
        }
        if (!a->batch) { /* nothing, or a failure: the next one, or a FETCH of our own */
            c->ahead_head = (c->ahead_head + 1) % AHEAD_CAP;
            c->ahead_len--;
            c->ahead_replied--;
            continue;
        }
        if (a->batch->n > q->max) { /* the call asked for fewer: the rest stays first */
            *out = smq_batch_take(a->batch, q->max);
            if (!*out)
                return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
        } else {
            *out = a->batch;
            a->batch = NULL;
            c->ahead_head = (c->ahead_head + 1) % AHEAD_CAP;
            c->ahead_len--;
            c->ahead_replied--;
        }
        c->ahead_more = more_waiting(q, (*out)->n);
        if (!sent && c->ahead_depth > 0 && c->ahead_more)
            send_ahead(c, q, 1); /* with the acks queued so far */
        return SLABMQ_OK;
    }
    /* nothing ahead had a message: a FETCH of our own with the call's wait; depth FETCHes go
     * ahead after it when more are probably waiting */
    st = smq_fetch_sync(c, q, out);
    c->ahead_more = st == SLABMQ_OK && more_waiting(q, (*out)->n);
    if (c->ahead_more && c->ahead_depth > 0 && c->ahead_len == 0)
        send_ahead(c, q, c->ahead_depth);
    return st;
}
