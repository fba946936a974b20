/* SPDX-License-Identifier: MIT */
/* Producing and consuming: PUBLISH, PUBLISH_BATCH, FETCH, PEEK, ACK, NACK, and batches. */
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "mpwrite.h"
#include "codec.h"
#include "ops.h"

struct slabmq_batch {
    size_t n;
    slabmq_message *msgs; /* n entries; data points into 'bytes' */
    uint8_t *bytes;       /* copy of the reply's payloads */
};

SLABMQ_API slabmq_status
slabmq_publish(slabmq_client *c, const char *queue, const void *data, size_t len, uint64_t *id)
{
    slabmq_payload p = {data, len};

    return slabmq_publish_batch(c, queue, &p, 1, id);
}

/* Check a batch and build its PUBLISH (n == 1) or PUBLISH_BATCH request. Returns the op, or
 * 0 after recording why the batch is refused. */
static unsigned
build_publish(slabmq_client *c, const char *queue, const slabmq_payload *msgs, size_t n)
{
    if (smq_check_queue(c, queue))
        return 0;
    if (n == 0 || !msgs || n > UINT32_MAX) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "empty batch");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].len > c->max_message) {
            smq_client_fail(c, SLABMQ_ERR_TOO_LARGE,
                            "message of %zu bytes exceeds the broker's maximum of %u",
                            msgs[i].len, c->max_message);
            return 0;
        }
    }
    if (n == 1) { /* PUBLISH [queue, payload] -> [id], written directly: the hot path */
        size_t qlen = strlen(queue);
        uint8_t *p = smq_req_reserve(c, 1 + 2 * SMQ_MPW_MAX_HDR + 2 * 5 + qlen + msgs[0].len);
        if (!p) {
            smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
            return 0;
        }
        p = smq_mpw_array(p, 4);
        p = smq_mpw_uint(p, SMQ_OP_PUBLISH);
        p = smq_mpw_uint(p, c->next_rid);
        p = smq_mpw_str(p, (uint32_t)qlen);
        memcpy(p, queue, qlen);
        p = smq_mpw_bin(p + qlen, (uint32_t)msgs[0].len);
        if (msgs[0].len)
            memcpy(p, msgs[0].data, msgs[0].len);
        smq_req_wrote(c, p + msgs[0].len);
        return SMQ_OP_PUBLISH;
    }
    smq_req_begin(c, SMQ_OP_PUBLISH_BATCH, 2); /* [queue, [payload...]] -> [first_id, count] */
    smq_pack_str(c, queue);
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_bin_with_body(&c->pk, msgs[i].data, msgs[i].len);
    return SMQ_OP_PUBLISH_BATCH;
}

SLABMQ_API slabmq_status
slabmq_publish_batch(slabmq_client *c, const char *queue, const slabmq_payload *msgs, size_t n,
                     uint64_t *first_id)
{
    struct smq_mpr r;
    uint32_t nres;
    uint64_t id;
    uint64_t count;
    unsigned op = build_publish(c, queue, msgs, n);
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    if (op == 0)
        return (slabmq_status)c->last;
    st = smq_call(c, op, 0, &r, &nres);
    if (st)
        return st;
    if (nres < 1 || smq_mpr_uint(&r, &id)
        || (op == SMQ_OP_PUBLISH_BATCH
            && (nres < 2 || smq_mpr_uint(&r, &count) || count != n)))
        return smq_bad_reply(c, "PUBLISH");
    if (first_id)
        *first_id = id;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_publish_async(slabmq_client *c, const char *queue, const void *data, size_t len,
                     uint64_t *request)
{
    slabmq_payload p = {data, len};

    return slabmq_publish_batch_async(c, queue, &p, 1, request);
}

SLABMQ_API slabmq_status
slabmq_publish_batch_async(slabmq_client *c, const char *queue, const slabmq_payload *msgs,
                           size_t n, uint64_t *request)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (build_publish(c, queue, msgs, n) == 0)
        return (slabmq_status)c->last;
    return smq_req_async(c, request);
}

/* Decode [[id, deliveries, payload], ...] into a new batch. */
static slabmq_status
read_batch(slabmq_client *c, struct smq_mpr *r, uint32_t nres, slabmq_batch **out)
{
    uint32_t n;
    struct smq_mpr scan;
    size_t bytes = 0;
    slabmq_batch *b;
    uint8_t *p;

    if (nres < 1 || smq_mpr_array(r, &n))
        return smq_bad_reply(c, "message list");
    scan = *r; /* first pass: validate and size */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t id;
        uint64_t dl;
        const uint8_t *d;
        uint32_t len;
        if (smq_mpr_array(&scan, &k) || k != 3 || smq_mpr_uint(&scan, &id)
            || smq_mpr_uint(&scan, &dl) || dl > UINT32_MAX || smq_mpr_bin(&scan, &d, &len))
            return smq_bad_reply(c, "message entry");
        bytes += len;
    }
    b = calloc(1, sizeof(*b));
    if (b) {
        b->msgs = calloc(n ? n : 1, sizeof(*b->msgs));
        b->bytes = malloc(bytes ? bytes : 1);
    }
    if (!b || !b->msgs || !b->bytes) {
        slabmq_batch_free(b);
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for %u messages", n);
    }
    p = b->bytes;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t dl;
        const uint8_t *d;
        uint32_t len;
        smq_mpr_array(r, &k);
        smq_mpr_uint(r, &b->msgs[i].id);
        smq_mpr_uint(r, &dl);
        smq_mpr_bin(r, &d, &len);
        b->msgs[i].deliveries = (uint32_t)dl;
        if (len)
            memcpy(p, d, len);
        b->msgs[i].data = p;
        b->msgs[i].len = len;
        p += len;
    }
    b->n = n;
    *out = b;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_fetch(slabmq_client *c, const char *queue, uint32_t max, uint32_t wait_ms,
             slabmq_batch **out)
{
    return slabmq_fetch_flags(c, queue, max, wait_ms, 0, out);
}

SLABMQ_API slabmq_status
slabmq_fetch_flags(slabmq_client *c, const char *queue, uint32_t max, uint32_t wait_ms,
                   unsigned flags, slabmq_batch **out)
{
    struct smq_mpr r;
    uint32_t nres;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    if (!out || max == 0)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "fetch needs max >= 1 and an out pointer");
    *out = NULL;
    smq_req_begin(c, SMQ_OP_FETCH, flags ? 4 : 3);
    smq_pack_str(c, queue);
    msgpack_pack_uint32(&c->pk, max);
    msgpack_pack_uint32(&c->pk, wait_ms);
    if (flags)
        msgpack_pack_uint32(&c->pk, flags);
    st = smq_call(c, SMQ_OP_FETCH, (int)(wait_ms > 3600000 ? 3600000 : wait_ms), &r, &nres);
    return st ? st : read_batch(c, &r, nres, out);
}

SLABMQ_API slabmq_status
slabmq_peek(slabmq_client *c, const char *queue, uint32_t max, slabmq_batch **out)
{
    struct smq_mpr r;
    uint32_t nres;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    if (!out || max == 0)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "peek needs max >= 1 and an out pointer");
    *out = NULL;
    smq_req_begin(c, SMQ_OP_PEEK, 2);
    smq_pack_str(c, queue);
    msgpack_pack_uint32(&c->pk, max);
    st = smq_call(c, SMQ_OP_PEEK, 0, &r, &nres);
    return st ? st : read_batch(c, &r, nres, out);
}

SLABMQ_API size_t
slabmq_batch_count(const slabmq_batch *b)
{
    return b ? b->n : 0;
}

SLABMQ_API const slabmq_message *
slabmq_batch_get(const slabmq_batch *b, size_t i)
{
    return b && i < b->n ? &b->msgs[i] : NULL;
}

SLABMQ_API void
slabmq_batch_free(slabmq_batch *b)
{
    if (!b)
        return;
    free(b->msgs);
    free(b->bytes);
    free(b);
}

/* Build ACK or NACK: [[id...] (, delay_ms)] -> [count]. Returns 0, or -1 after recording
 * why. */
static int
build_settle(slabmq_client *c, unsigned op, const uint64_t *ids, size_t n, uint32_t delay)
{
    if (n == 0 || !ids || n > UINT32_MAX) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "no ids given");
        return -1;
    }
    if (n == 1 && op == SMQ_OP_ACK) { /* [11, rid, [id]], written directly: the hot path */
        uint8_t *p = smq_req_reserve(c, 2 + 3 * SMQ_MPW_MAX_HDR);
        if (!p) {
            smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
            return -1;
        }
        p = smq_mpw_array(p, 3);
        p = smq_mpw_uint(p, SMQ_OP_ACK);
        p = smq_mpw_uint(p, c->next_rid);
        p = smq_mpw_array(p, 1);
        smq_req_wrote(c, smq_mpw_uint(p, ids[0]));
        return 0;
    }
    smq_req_begin(c, op, op == SMQ_OP_NACK ? 2 : 1);
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&c->pk, ids[i]);
    if (op == SMQ_OP_NACK)
        msgpack_pack_uint32(&c->pk, delay);
    return 0;
}

static slabmq_status
settle(slabmq_client *c, unsigned op, const uint64_t *ids, size_t n, uint32_t delay,
       uint64_t *done)
{
    struct smq_mpr r;
    uint32_t nres;
    uint64_t count;
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    if (done)
        *done = 0;
    if (build_settle(c, op, ids, n, delay))
        return (slabmq_status)c->last;
    st = smq_call(c, op, 0, &r, &nres);
    if (st)
        return st;
    if (nres < 1 || smq_mpr_uint(&r, &count))
        return smq_bad_reply(c, "ACK/NACK");
    if (done)
        *done = count;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_ack_async(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *request)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (build_settle(c, SMQ_OP_ACK, ids, n, 0))
        return (slabmq_status)c->last;
    return smq_req_async(c, request);
}

SLABMQ_API slabmq_status
slabmq_nack_async(slabmq_client *c, const uint64_t *ids, size_t n, uint32_t delay_ms,
                  uint64_t *request)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (build_settle(c, SMQ_OP_NACK, ids, n, delay_ms))
        return (slabmq_status)c->last;
    return smq_req_async(c, request);
}

SLABMQ_API slabmq_status
slabmq_ack(slabmq_client *c, uint64_t id)
{
    return settle(c, SMQ_OP_ACK, &id, 1, 0, NULL);
}

SLABMQ_API slabmq_status
slabmq_ack_batch(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *acked)
{
    return settle(c, SMQ_OP_ACK, ids, n, 0, acked);
}

SLABMQ_API slabmq_status
slabmq_touch(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *touched)
{
    return settle(c, SMQ_OP_TOUCH, ids, n, 0, touched);
}

SLABMQ_API slabmq_status
slabmq_nack(slabmq_client *c, uint64_t id, uint32_t delay_ms)
{
    return settle(c, SMQ_OP_NACK, &id, 1, delay_ms, NULL);
}

SLABMQ_API slabmq_status
slabmq_nack_batch(slabmq_client *c, const uint64_t *ids, size_t n, uint32_t delay_ms,
                  uint64_t *nacked)
{
    return settle(c, SMQ_OP_NACK, ids, n, delay_ms, nacked);
}
