/* SPDX-License-Identifier: MIT */
/* Producing and consuming: PUBLISH and PUBLISH_BATCH (with their options), FETCH (of one queue
 * or several), PEEK, the settling ops ACK, NACK, TOUCH and TERM, and the batches of messages
 * that FETCH, PEEK and subscription pushes return. */
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "mpwrite.h"
#include "codec.h"
#include "ops.h"

/* ---------------------------------------------------------------------------------------- */
/* Publishing                                                                                */

SLABMQ_API slabmq_status
slabmq_publish(slabmq_client *c, const char *queue, const void *data, size_t len, uint64_t *id)
{
    slabmq_payload p = {data, len};

    return slabmq_publish_batch(c, queue, &p, 1, id);
}

/* Check publish options before anything is built: 0, or -1 after recording why. */
static int
check_publish_options(slabmq_client *c, const slabmq_publish_options *o, size_t n)
{
    size_t idlen = o->id ? strlen(o->id) : 0;

    if (o->priority > SLABMQ_PRIORITY_MAX) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "priority %u is over %d", o->priority,
                        SLABMQ_PRIORITY_MAX);
        return -1;
    }
    if (o->id && (idlen == 0 || idlen > SLABMQ_PRODUCER_ID_MAX)) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "a producer message id has 1 to %d bytes",
                        SLABMQ_PRODUCER_ID_MAX);
        return -1;
    }
    if (o->id && n != 1) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "a producer message id names one message, not a batch");
        return -1;
    }
    return 0;
}

/* Pack one integer option of the PUBLISH options map. */
static void
pack_uint_option(slabmq_client *c, const char *key, uint64_t v)
{
    smq_pack_str(c, key);
    msgpack_pack_uint64(&c->pk, v);
}

/* The PUBLISH / PUBLISH_BATCH options map: only the options that are set. */
static void
pack_publish_options(slabmq_client *c, const slabmq_publish_options *o)
{
    size_t n = (size_t)!!o->delay_ms + !!o->at_ms + !!o->ttl_ms + !!o->priority + !!o->id
               + (o->confirm != SLABMQ_CONFIRM_DEFAULT);

    msgpack_pack_map(&c->pk, n);
    if (o->delay_ms)
        pack_uint_option(c, "delay_ms", o->delay_ms);
    if (o->at_ms)
        pack_uint_option(c, "at_ms", o->at_ms);
    if (o->ttl_ms)
        pack_uint_option(c, "ttl_ms", o->ttl_ms);
    if (o->priority)
        pack_uint_option(c, "priority", o->priority);
    if (o->id) {
        smq_pack_str(c, "id");
        smq_pack_str(c, o->id);
    }
    if (o->confirm != SLABMQ_CONFIRM_DEFAULT) {
        smq_pack_str(c, "confirm");
        smq_pack_str(c, smq_confirm_name(o->confirm));
    }
}

/* A key or string value of the options map, written directly. */
static uint8_t *
put_str(uint8_t *p, const char *str, size_t n)
{
    p = smq_mpw_str(p, (uint32_t)n);
    memcpy(p, str, n);
    return p + n;
}

/* Bytes the options map of put_publish_options() takes at most: a fixmap header, four
 * integer options (key of at most 8 bytes, uint64), "id" and its value, "confirm" and a
 * level name (at most 7 bytes). */
static size_t
publish_options_room(const slabmq_publish_options *o)
{
    return 1 + 4 * (1 + 8 + 9) + (1 + 2 + 5 + (o->id ? strlen(o->id) : 0)) + (1 + 7 + 1 + 7);
}

/* The options map of pack_publish_options(), written directly (one message with options:
 * a producer asking for a confirmation level on every publish takes this path). */
static uint8_t *
put_publish_options(uint8_t *p, const slabmq_publish_options *o)
{
    unsigned n = (unsigned)!!o->delay_ms + !!o->at_ms + !!o->ttl_ms + !!o->priority + !!o->id
                 + (o->confirm != SLABMQ_CONFIRM_DEFAULT);

    *p++ = (uint8_t)(0x80 | n); /* fixmap: at most 6 entries */
    if (o->delay_ms)
        p = smq_mpw_uint(put_str(p, "delay_ms", 8), o->delay_ms);
    if (o->at_ms)
        p = smq_mpw_uint(put_str(p, "at_ms", 5), o->at_ms);
    if (o->ttl_ms)
        p = smq_mpw_uint(put_str(p, "ttl_ms", 6), o->ttl_ms);
    if (o->priority)
        p = smq_mpw_uint(put_str(p, "priority", 8), o->priority);
    if (o->id)
        p = put_str(put_str(p, "id", 2), o->id, strlen(o->id));
    if (o->confirm != SLABMQ_CONFIRM_DEFAULT) {
        const char *name = smq_confirm_name(o->confirm);
        p = put_str(put_str(p, "confirm", 7), name, strlen(name));
    }
    return p;
}

/* Check a batch and build its PUBLISH (n == 1) or PUBLISH_BATCH request, with the options
 * map when opts is not NULL. Returns the op, or 0 after recording why the batch is
 * refused. */
static unsigned
build_publish(slabmq_client *c, const char *queue, const slabmq_payload *msgs, size_t n,
              const slabmq_publish_options *opts)
{
    unsigned op = n == 1 ? SMQ_OP_PUBLISH : SMQ_OP_PUBLISH_BATCH;

    if (smq_check_queue(c, queue))
        return 0;
    if (n == 0 || !msgs || n > UINT32_MAX) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "empty batch");
        return 0;
    }
    if (opts && check_publish_options(c, opts, n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].len > c->max_message) {
            smq_client_fail(c, SLABMQ_ERR_TOO_LARGE,
                            "message of %zu bytes exceeds the broker's maximum of %u",
                            msgs[i].len, c->max_message);
            return 0;
        }
    }
    if (opts && n > 1) { /* [queue, [payload, ...], options] */
        smq_req_begin(c, op, 3);
        smq_pack_str(c, queue);
        if (op == SMQ_OP_PUBLISH_BATCH)
            msgpack_pack_array(&c->pk, n);
        for (size_t i = 0; i < n; i++)
            msgpack_pack_bin_with_body(&c->pk, msgs[i].data, msgs[i].len);
        pack_publish_options(c, opts);
        return op;
    }
    if (n == 1) { /* PUBLISH [queue, payload (, options)], written directly: the hot path */
        size_t qlen = strlen(queue);
        uint8_t *p = smq_req_reserve(c, 1 + 2 * SMQ_MPW_MAX_HDR + 2 * 5 + qlen + msgs[0].len
                                            + (opts ? publish_options_room(opts) : 0));
        if (!p) {
            smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
            return 0;
        }
        p = smq_mpw_array(p, opts ? 5 : 4);
        p = smq_mpw_uint(p, SMQ_OP_PUBLISH);
        p = smq_mpw_uint(p, c->next_rid);
        p = put_str(p, queue, qlen);
        p = smq_mpw_bin(p, (uint32_t)msgs[0].len);
        if (msgs[0].len)
            memcpy(p, msgs[0].data, msgs[0].len);
        p += msgs[0].len;
        smq_req_wrote(c, opts ? put_publish_options(p, opts) : p);
        return SMQ_OP_PUBLISH;
    }
    smq_req_begin(c, SMQ_OP_PUBLISH_BATCH, 2); /* [queue, [payload...]] -> [first_id, count] */
    smq_pack_str(c, queue);
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_bin_with_body(&c->pk, msgs[i].data, msgs[i].len);
    return SMQ_OP_PUBLISH_BATCH;
}

/* Publish and read the reply: [id] for PUBLISH, [id, duplicate] for PUBLISH with options,
 * [first_id, count] for PUBLISH_BATCH. */
static slabmq_status
publish(slabmq_client *c, const char *queue, const slabmq_payload *msgs, size_t n,
        const slabmq_publish_options *opts, uint64_t *first_id, int *duplicate)
{
    struct smq_mpr r;
    uint32_t nres;
    uint64_t id;
    uint64_t count;
    int dup = 0;
    unsigned op = build_publish(c, queue, msgs, n, opts);
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
            && (nres < 2 || smq_mpr_uint(&r, &count) || count != n))
        || (op == SMQ_OP_PUBLISH && opts && (nres < 2 || smq_mpr_bool(&r, &dup))))
        return smq_bad_reply(c, "PUBLISH");
    c->last_level = SLABMQ_CONFIRM_DEFAULT;
    if (op == SMQ_OP_PUBLISH && opts && nres >= 3)
        c->last_level = smq_read_level(&r);
    if (first_id)
        *first_id = id;
    if (duplicate)
        *duplicate = dup;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_publish_batch(slabmq_client *c, const char *queue, const slabmq_payload *msgs, size_t n,
                     uint64_t *first_id)
{
    return publish(c, queue, msgs, n, NULL, first_id, NULL);
}

SLABMQ_API slabmq_status
slabmq_publish_opts(slabmq_client *c, const char *queue, const void *data, size_t len,
                    const slabmq_publish_options *opts, uint64_t *id, int *duplicate)
{
    slabmq_payload p = {data, len};

    if (duplicate)
        *duplicate = 0;
    return publish(c, queue, &p, 1, opts, id, duplicate);
}

SLABMQ_API slabmq_status
slabmq_publish_batch_opts(slabmq_client *c, const char *queue, const slabmq_payload *msgs,
                          size_t n, const slabmq_publish_options *opts, uint64_t *first_id)
{
    return publish(c, queue, msgs, n, opts, first_id, NULL);
}

SLABMQ_API slabmq_status
slabmq_publish_async(slabmq_client *c, const char *queue, const void *data, size_t len,
                     uint64_t *request)
{
    slabmq_payload p = {data, len};

    return slabmq_publish_batch_opts_async(c, queue, &p, 1, NULL, request);
}

SLABMQ_API slabmq_status
slabmq_publish_batch_async(slabmq_client *c, const char *queue, const slabmq_payload *msgs,
                           size_t n, uint64_t *request)
{
    return slabmq_publish_batch_opts_async(c, queue, msgs, n, NULL, request);
}

SLABMQ_API slabmq_status
slabmq_publish_opts_async(slabmq_client *c, const char *queue, const void *data, size_t len,
                          const slabmq_publish_options *opts, uint64_t *request)
{
    slabmq_payload p = {data, len};

    return slabmq_publish_batch_opts_async(c, queue, &p, 1, opts, request);
}

SLABMQ_API slabmq_status
slabmq_publish_batch_opts_async(slabmq_client *c, const char *queue, const slabmq_payload *msgs,
                                size_t n, const slabmq_publish_options *opts,
                                uint64_t *request)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (c->sticky) /* an earlier publish was refused and nobody was told: say so first */
        return smq_sticky(c);
    if (build_publish(c, queue, msgs, n, opts) == 0)
        return (slabmq_status)c->last;
    return smq_req_async(c, request);
}

/* ---------------------------------------------------------------------------------------- */
/* Message lists and batches                                                                 */

/* One message entry of a reply, as views into it. */
struct entry {
    uint64_t id;
    uint64_t deliveries;
    const uint8_t *data;
    uint32_t len;
    int dead;                 /* it had an info map: a dead letter */
    const char *reason;       /* the info's "reason", or NULL */
    uint32_t reason_len;
    const char *queue;        /* the info's "queue", or NULL */
    uint32_t queue_len;
    uint64_t dead_deliveries; /* the info's "deliveries" */
};

/* Nesting skipped inside values this library does not know. */
#define SKIP_DEPTH 16

static int
key_is(const char *k, uint32_t klen, const char *want)
{
    return strlen(want) == klen && memcmp(k, want, klen) == 0;
}

/* Read a dead letter's info map into e. Keys this library does not know, and known keys
 * with a value of another type, are skipped (clients MUST ignore unknown keys). */
static int
read_info(struct smq_mpr *r, struct entry *e)
{
    uint32_t pairs;

    if (smq_mpr_map(r, &pairs))
        return -1;
    e->dead = 1;
    for (uint32_t i = 0; i < pairs; i++) {
        const char *k = "";
        uint32_t klen = 0;
        enum smq_mp_type t;
        int rc;
        if (smq_mpr_peek(r) == SMQ_MP_STR ? smq_mpr_str(r, &k, &klen) : smq_mpr_skip(r, SKIP_DEPTH))
            return -1;
        t = smq_mpr_peek(r);
        if (t == SMQ_MP_STR && key_is(k, klen, "reason"))
            rc = smq_mpr_str(r, &e->reason, &e->reason_len);
        else if (t == SMQ_MP_STR && key_is(k, klen, "queue"))
            rc = smq_mpr_str(r, &e->queue, &e->queue_len);
        else if (t == SMQ_MP_UINT && key_is(k, klen, "deliveries"))
            rc = smq_mpr_uint(r, &e->dead_deliveries);
        else
            rc = smq_mpr_skip(r, SKIP_DEPTH);
        if (rc)
            return -1;
    }
    return 0;
}

/* Read one message: [id, deliveries, payload] or [id, deliveries, payload, info]; elements
 * after those (a later protocol's) are skipped. 0 or -1. */
static int
read_entry(struct smq_mpr *r, struct entry *e)
{
    uint32_t k;

    memset(e, 0, sizeof(*e));
    if (smq_mpr_array(r, &k) || k < 3 || smq_mpr_uint(r, &e->id)
        || smq_mpr_uint(r, &e->deliveries) || e->deliveries > UINT32_MAX
        || smq_mpr_bin(r, &e->data, &e->len))
        return -1;
    for (uint32_t j = 3; j < k; j++) {
        int rc = j == 3 && smq_mpr_peek(r) == SMQ_MP_MAP ? read_info(r, e)
                                                         : smq_mpr_skip(r, SKIP_DEPTH);
        if (rc)
            return -1;
    }
    return 0;
}

/* Returns a new batch with room for n messages, ndead infos and 'bytes' bytes of copies, in
 * one allocation (the batch, then the messages, the infos and the bytes: one malloc and one
 * free per FETCH or push instead of four, a quarter of a one-message consumer's
 * instructions); free it with slabmq_batch_free(). Only the batch itself is zeroed: its
 * callers write every field of every message and info (zeroing them first cost 2-3
 * instructions a message). NULL when out of memory. */
static struct slabmq_batch *
new_batch(size_t n, size_t ndead, size_t bytes)
{
    struct slabmq_batch *b;
    size_t head = sizeof(*b);
    size_t arrays;

    if (n > (SIZE_MAX / 2) / sizeof(*b->msgs) || ndead > (SIZE_MAX / 2) / sizeof(*b->dead)
        || bytes > SIZE_MAX / 4)
        return NULL;
    arrays = n * sizeof(*b->msgs) + ndead * sizeof(*b->dead);
    b = malloc(head + arrays + bytes + 1);
    if (!b)
        return NULL;
    memset(b, 0, head); /* every sizeof here is a multiple of 8: all aligned */
    b->msgs = (slabmq_message *)(b + 1);
    b->dead = (slabmq_dead_letter *)(b->msgs + n);
    b->bytes = (uint8_t *)(b->dead + ndead);
    return b;
}

/* Copy len bytes of s to *p as a NUL-terminated string; returns it and advances *p. */
static const char *
copy_str(uint8_t **p, const char *s, uint32_t len)
{
    char *d = (char *)*p;

    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    *p += len + 1;
    return d;
}

/* Fill message m from entry e, copying its bytes to *p and its info to *dead. */
static void
put_entry(slabmq_message *m, const struct entry *e, uint8_t **p, slabmq_dead_letter **dead)
{
    m->id = e->id;
    m->deliveries = (uint32_t)e->deliveries;
    if (e->len)
        memcpy(*p, e->data, e->len);
    m->data = *p;
    m->len = e->len;
    m->dead = NULL;
    *p += e->len;
    if (!e->dead)
        return;
    (*dead)->reason = copy_str(p, e->reason ? e->reason : "", e->reason_len);
    (*dead)->queue = copy_str(p, e->queue ? e->queue : "", e->queue_len);
    (*dead)->deliveries = e->dead_deliveries;
    m->dead = (*dead)++;
}

/* The smallest entry read_plain() takes: fixarray, fixint id, fixint deliveries, bin8 of 0
 * bytes. */
#define PLAIN_MIN 5
/* Bytes from an entry's start that plain_head_wide() may read: the longest header
 * (fixarray, uint64 id, uint32 deliveries, bin32 header: 20 bytes) with 8 bytes read after
 * each tag, whatever its width. */
#define PLAIN_READ 24

/* A big-endian integer of w bytes (1, 2, 4 or 8) at q, read as 8 bytes (at least 8 must be
 * readable at q): one load and one bswap, no branch on w. */
static inline uint64_t
load_be8(const uint8_t *q, unsigned w)
{
    uint64_t x = (uint64_t)q[0] << 56 | (uint64_t)q[1] << 48 | (uint64_t)q[2] << 40
                 | (uint64_t)q[3] << 32 | (uint64_t)q[4] << 24 | (uint64_t)q[5] << 16
                 | (uint64_t)q[6] << 8 | q[7];

    return x >> (64 - 8 * w);
}

/* A big-endian integer of w bytes (1, 2, 4 or 8) at q, reading no further. */
static inline uint64_t
load_be(const uint8_t *q, unsigned w)
{
    switch (w) {
    case 1:
        return q[0];
    case 2:
        return (uint64_t)q[0] << 8 | q[1];
    case 4:
        return (uint64_t)q[0] << 24 | (uint64_t)q[1] << 16 | (uint64_t)q[2] << 8 | q[3];
    default:
        return load_be8(q, 8);
    }
}

/* An integer of a plain entry at q: a positive fixint, or uint8 up to the tag last (uint64
 * for an id, uint32 for deliveries: at most UINT32_MAX). Returns q past it, or NULL when it
 * is in another form or runs past end. */
static const uint8_t *
plain_uint(const uint8_t *q, const uint8_t *end, uint8_t last, uint64_t *v)
{
    unsigned w;

    if (q >= end)
        return NULL;
    if (q[0] < 0x80) {
        *v = q[0];
        return q + 1;
    }
    if (q[0] < 0xcc || q[0] > last)
        return NULL;
    w = 1u << (q[0] - 0xcc);
    if ((size_t)(end - q) <= w)
        return NULL;
    *v = load_be(q + 1, w);
    return q + 1 + w;
}

/* The header of a plain entry at q: [id, deliveries, bin header] into m and *len. Returns q
 * at the payload, or NULL when the entry is off the shape or its header runs past end.
 * Reads no byte past end: for the last entries of a reply. */
static const uint8_t *
plain_head(const uint8_t *q, const uint8_t *end, slabmq_message *m, uint32_t *len)
{
    uint64_t v;
    unsigned w;

    if (q >= end || q[0] != 0x93)
        return NULL;
    q = plain_uint(q + 1, end, 0xcf, &v);
    if (!q)
        return NULL;
    m->id = v;
    q = plain_uint(q, end, 0xce, &v);
    if (!q)
        return NULL;
    m->deliveries = (uint32_t)v;
    if (q >= end || q[0] < 0xc4 || q[0] > 0xc6)
        return NULL;
    w = 1u << (q[0] - 0xc4);
    if ((size_t)(end - q) <= w)
        return NULL;
    *len = (uint32_t)load_be(q + 1, w);
    return q + 1 + w;
}

/* plain_head() where PLAIN_READ bytes are readable at q (every entry but the last few of
 * a reply): no bound to check, each integer read as one 8-byte load. */
static inline const uint8_t *
plain_head_wide(const uint8_t *q, slabmq_message *m, uint32_t *len)
{
    unsigned w;

    if (q[0] != 0x93)
        return NULL;
    q++;
    if (q[0] < 0x80) { /* id */
        m->id = q[0];
        q++;
    } else if (q[0] >= 0xcc && q[0] <= 0xcf) {
        w = 1u << (q[0] - 0xcc);
        m->id = load_be8(q + 1, w);
        q += 1 + w;
    } else
        return NULL;
    if (q[0] < 0x80) { /* deliveries */
        m->deliveries = q[0];
        q++;
    } else if (q[0] >= 0xcc && q[0] <= 0xce) {
        w = 1u << (q[0] - 0xcc);
        m->deliveries = (uint32_t)load_be8(q + 1, w);
        q += 1 + w;
    } else
        return NULL;
    if (q[0] < 0xc4 || q[0] > 0xc6)
        return NULL;
    w = 1u << (q[0] - 0xc4);
    *len = (uint32_t)load_be8(q + 1, w);
    return q + 1 + w;
}

/* The n entries of a message list at r, read in one pass when every one has the shape the
 * broker writes for a message that is not a dead letter (broker/req/reply.c pack_message):
 * fixarray of 3, id and deliveries as positive fixint or uint8/16/32(/64 for the id), bin
 * payload. Returns the batch, r past the list; or NULL with r unchanged when an entry has
 * any other shape (a dead letter, extra elements, other integer encodings, a short or
 * malformed one) or memory is short: read_any() then reads the list, accepting and rejecting
 * exactly what it always did. Only entries it would accept with these values are taken
 * here, so the two agree (tests/unit/test_client_batch.c checks it).
 *
 * Why: read_any() decodes every entry twice through the generic reader (once to validate
 * and size, once to fill) and copies each payload by itself; at 16 bytes that was about
 * half of a draining consumer's instructions. Here each entry is decoded once, straight into
 * its message, with no per-entry dispatch on types it cannot have, and, but for the last
 * few bytes of the reply, its integers read as one load each.
 *
 * What it costs: the batch is allocated before the entries are checked, for as many
 * messages as the list says (at most one per PLAIN_MIN bytes left) and as many bytes as are
 * left in the reply (the payloads' total is less: their headers are not copied): no more
 * than a valid reply of that size takes, and freed at the first entry off the shape. */
static slabmq_batch *
read_plain(struct smq_mpr *r, uint32_t n)
{
    const uint8_t *end = r->end;
    const uint8_t *q = r->p;
    size_t left = (size_t)(end - q);
    slabmq_batch *b;
    uint8_t *p;

    if (n == 0 || left / PLAIN_MIN < n)
        return NULL;
    b = new_batch(n, 0, left);
    if (!b)
        return NULL;
    p = b->bytes;
    for (uint32_t i = 0; i < n; i++) {
        slabmq_message *m = &b->msgs[i];
        uint32_t len;
        q = end - q >= PLAIN_READ ? plain_head_wide(q, m, &len) : plain_head(q, end, m, &len);
        if (!q || len > (size_t)(end - q))
            goto off_shape;
        memcpy(p, q, len);
        m->data = p;
        m->len = len;
        m->dead = NULL;
        p += len;
        q += len;
    }
    b->n = n;
    r->p = q;
    return b;
off_shape:
    free(b);
    return NULL;
}

/* Read a list of any entries the protocol allows: validated and sized first, then copied. */
static slabmq_status
read_any(slabmq_client *c, struct smq_mpr *r, uint32_t n, slabmq_batch **out)
{
    struct smq_mpr scan;
    struct entry e;
    size_t bytes = 0;
    size_t ndead = 0;
    slabmq_batch *b;
    uint8_t *p;
    slabmq_dead_letter *dead;

    scan = *r; /* first pass: validate and size */
    for (uint32_t i = 0; i < n; i++) {
        if (read_entry(&scan, &e))
            return smq_bad_reply(c, "message entry");
        bytes += e.len;
        if (e.dead) {
            ndead++;
            bytes += (size_t)e.reason_len + e.queue_len + 2;
        }
    }
    b = new_batch(n, ndead, bytes);
    if (!b)
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory for %u messages", n);
    p = b->bytes;
    dead = b->dead;
    for (uint32_t i = 0; i < n; i++) {
        read_entry(r, &e);
        put_entry(&b->msgs[i], &e, &p, &dead);
    }
    b->n = n;
    *out = b;
    return SLABMQ_OK;
}

slabmq_status
smq_read_batch(slabmq_client *c, struct smq_mpr *r, uint32_t nres, slabmq_batch **out)
{
    uint32_t n;

    if (nres < 1 || smq_mpr_array(r, &n)) {
        smq_bad_reply(c, "message list");
        return SLABMQ_ERR_BAD_REPLY; /* said here: callers use *out whenever it is OK */
    }
    *out = read_plain(r, n);
    return *out ? SLABMQ_OK : read_any(c, r, n, out);
}

/* Name the batch's queue: a copy of name, or NULL. */
static void
set_queue(slabmq_batch *b, const char *name, size_t len)
{
    if (!name || len > SMQ_NAME_MAX) {
        b->queue = NULL;
        return;
    }
    memcpy(b->qname, name, len);
    b->qname[len] = '\0';
    b->queue = b->qname;
}

struct slabmq_batch *
smq_batch_take(struct slabmq_batch *b, size_t max)
{
    size_t bytes = 0;
    size_t ndead = 0;
    struct slabmq_batch *nb;
    uint8_t *p;
    slabmq_dead_letter *dead;

    for (size_t i = 0; i < max; i++) {
        const slabmq_message *m = &b->msgs[i];
        bytes += m->len;
        if (m->dead) {
            ndead++;
            bytes += strlen(m->dead->reason) + strlen(m->dead->queue) + 2;
        }
    }
    nb = new_batch(max, ndead, bytes);
    if (!nb)
        return NULL;
    p = nb->bytes;
    dead = nb->dead;
    for (size_t i = 0; i < max; i++) { /* not put_entry(): that stays inlined in the hot path */
        const slabmq_message *m = &b->msgs[i];
        slabmq_message *t = &nb->msgs[i];
        *t = *m;
        if (m->len)
            memcpy(p, m->data, m->len);
        t->data = p;
        p += m->len;
        if (m->dead) {
            dead->reason = copy_str(&p, m->dead->reason, (uint32_t)strlen(m->dead->reason));
            dead->queue = copy_str(&p, m->dead->queue, (uint32_t)strlen(m->dead->queue));
            dead->deliveries = m->dead->deliveries;
            t->dead = dead++;
        }
    }
    nb->n = max;
    nb->subscription = b->subscription;
    set_queue(nb, b->queue, b->queue ? strlen(b->queue) : 0);
    b->msgs += max; /* still inside b's block, which slabmq_batch_free(b) frees */
    b->n -= max;
    return nb;
}

SLABMQ_API slabmq_status
slabmq_fetch(slabmq_client *c, const char *queue, uint32_t max, uint32_t wait_ms,
             slabmq_batch **out)
{
    return slabmq_fetch_flags(c, queue, max, wait_ms, 0, out);
}

void
smq_batch_set_queue(slabmq_batch *b, const char *name, size_t len)
{
    set_queue(b, name, len);
}

int
smq_fetch_pack(struct slabmq_client *c, const struct smq_fetch_req *q, uint32_t wait_ms)
{
    if (q->queue) { /* [10, rid, queue, max, wait_ms (, flags)], written directly: a
                       consumer's every call */
        size_t qlen = strlen(q->queue);
        uint8_t *p = smq_req_reserve(c, 1 + 5 * SMQ_MPW_MAX_HDR + qlen);
        if (!p)
            return -1;
        p = smq_mpw_array(p, q->flags ? 6 : 5);
        p = smq_mpw_uint(p, SMQ_OP_FETCH);
        p = smq_mpw_uint(p, c->next_rid);
        p = put_str(p, q->queue, qlen);
        p = smq_mpw_uint(p, q->max);
        p = smq_mpw_uint(p, wait_ms);
        smq_req_wrote(c, q->flags ? smq_mpw_uint(p, q->flags) : p);
        return 0;
    }
    smq_req_begin(c, SMQ_OP_FETCH, q->flags ? 4 : 3); /* [10, rid, [queue, ...], ...] */
    msgpack_pack_array(&c->pk, (uint32_t)q->n);
    for (size_t i = 0; i < q->n; i++)
        smq_pack_str(c, q->queues[i]);
    msgpack_pack_uint32(&c->pk, q->max);
    msgpack_pack_uint32(&c->pk, wait_ms);
    if (q->flags)
        msgpack_pack_uint32(&c->pk, q->flags);
    return c->wfail ? -1 : 0;
}

slabmq_status
smq_fetch_read_name(struct slabmq_client *c, struct smq_mpr *r, uint32_t nres,
                    slabmq_batch *b)
{
    const char *name = NULL;
    uint32_t nlen = 0;

    if (nres >= 2 && smq_mpr_peek(r) == SMQ_MP_STR
        && (smq_mpr_str(r, &name, &nlen) || nlen == 0 || nlen > SMQ_NAME_MAX))
        return smq_bad_reply(c, "FETCH queue name");
    set_queue(b, name, nlen);
    return SLABMQ_OK;
}

slabmq_status
smq_fetch_sync(struct slabmq_client *c, const struct smq_fetch_req *q, slabmq_batch **out)
{
    struct smq_mpr r;
    uint32_t nres;
    slabmq_status st;

    if (smq_fetch_pack(c, q, q->wait_ms))
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
    st = smq_call(c, SMQ_OP_FETCH, (int)(q->wait_ms > 3600000 ? 3600000 : q->wait_ms), &r,
                  &nres);
    if (st == SLABMQ_OK)
        st = smq_read_batch(c, &r, nres, out);
    if (st)
        return st;
    if (q->queue) {
        set_queue(*out, q->queue, strlen(q->queue));
        return SLABMQ_OK;
    }
    st = smq_fetch_read_name(c, &r, nres, *out); /* several queues: the reply names it */
    if (st) {
        slabmq_batch_free(*out);
        *out = NULL;
    }
    return st;
}

/* A FETCH: straight to the broker, or through the FETCHes sent ahead (fetch_ahead.c). */
static slabmq_status
fetch_go(slabmq_client *c, const struct smq_fetch_req *q, slabmq_batch **out)
{
    if (c->ahead_depth || c->ahead_len)
        return smq_fetch_ahead(c, q, out);
    return smq_fetch_sync(c, q, out);
}

SLABMQ_API slabmq_status
slabmq_fetch_flags(slabmq_client *c, const char *queue, uint32_t max, uint32_t wait_ms,
                   unsigned flags, slabmq_batch **out)
{
    slabmq_status st = smq_check_queue(c, queue);
    struct smq_fetch_req q = {queue, NULL, 1, max, wait_ms, flags};

    if (st)
        return st;
    if (!out || max == 0)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "fetch needs max >= 1 and an out pointer");
    *out = NULL;
    return fetch_go(c, &q, out);
}

SLABMQ_API slabmq_status
slabmq_fetch_any(slabmq_client *c, const char *const *queues, size_t n, uint32_t max,
                 uint32_t wait_ms, unsigned flags, slabmq_batch **out)
{
    struct smq_fetch_req q = {NULL, queues, n, max, wait_ms, flags};

    if (!c)
        return SLABMQ_ERR_ARG;
    if (!out || max == 0 || !queues || n == 0 || n > SLABMQ_FETCH_QUEUES_MAX)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "fetch needs 1 to %d queues, max >= 1 and an "
                               "out pointer", SLABMQ_FETCH_QUEUES_MAX);
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        slabmq_status st = smq_check_queue(c, queues[i]);
        if (st)
            return st;
    }
    return fetch_go(c, &q, out);
}

SLABMQ_API slabmq_status
slabmq_peek(slabmq_client *c, const char *queue, uint32_t max, slabmq_batch **out)
{
    return slabmq_peek_skip(c, queue, max, 0, out);
}

SLABMQ_API slabmq_status
slabmq_peek_skip(slabmq_client *c, const char *queue, uint32_t max, uint64_t skip,
                 slabmq_batch **out)
{
    struct smq_mpr r;
    uint32_t nres;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    if (!out || max == 0)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "peek needs max >= 1 and an out pointer");
    *out = NULL;
    smq_req_begin(c, SMQ_OP_PEEK, skip ? 3 : 2); /* [queue, max (, skip)] */
    smq_pack_str(c, queue);
    msgpack_pack_uint32(&c->pk, max);
    if (skip)
        msgpack_pack_uint64(&c->pk, skip);
    st = smq_call(c, SMQ_OP_PEEK, 0, &r, &nres);
    if (st == SLABMQ_OK)
        st = smq_read_batch(c, &r, nres, out);
    if (st == SLABMQ_OK)
        set_queue(*out, queue, strlen(queue));
    return st;
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

SLABMQ_API const char *
slabmq_batch_queue(const slabmq_batch *b)
{
    return b ? b->queue : NULL;
}

SLABMQ_API uint64_t
slabmq_batch_subscription(const slabmq_batch *b)
{
    return b ? b->subscription : 0;
}

SLABMQ_API void
slabmq_batch_free(slabmq_batch *b)
{
    if (!b)
        return;
    free(b->error); /* msgs, dead and bytes live in b's own block (new_batch) */
    free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Settling                                                                                  */

/* Build ACK, NACK, TOUCH or TERM: [[id...] (, delay_ms)] -> [count]; an ACK with flags
 * (SMQ_ACK_QUIET, SMQ_ACK_CONFIRMED) is [[id...], flags]. Returns 0, or -1 after recording
 * why. */
static int
build_settle(slabmq_client *c, unsigned op, const uint64_t *ids, size_t n, uint64_t delay,
             unsigned flags)
{
    if (n == 0 || !ids || n > UINT32_MAX) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "no ids given");
        return -1;
    }
    if (n == 1 && op == SMQ_OP_ACK) { /* [11, rid, [id] (, 1)], written directly: the hot path */
        uint8_t *p = smq_req_reserve(c, 3 + 3 * SMQ_MPW_MAX_HDR);
        if (!p) {
            smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory building a request");
            return -1;
        }
        p = smq_mpw_array(p, flags ? 4 : 3);
        p = smq_mpw_uint(p, SMQ_OP_ACK);
        p = smq_mpw_uint(p, c->next_rid);
        p = smq_mpw_array(p, 1);
        p = smq_mpw_uint(p, ids[0]);
        smq_req_wrote(c, flags ? smq_mpw_uint(p, flags) : p);
        return 0;
    }
    smq_req_begin(c, op, op == SMQ_OP_NACK || flags ? 2 : 1);
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&c->pk, ids[i]);
    if (op == SMQ_OP_NACK)
        msgpack_pack_uint64(&c->pk, delay);
    if (flags)
        msgpack_pack_uint32(&c->pk, flags);
    return 0;
}

/* The ACK flags of the public API (SLABMQ_ACK_*) as sent: 0, or -1 after recording why
 * (unknown flags, or CONFIRMED to a broker that does not take it). */
static int
check_ack_flags(slabmq_client *c, unsigned flags)
{
    if (flags & ~(unsigned)SLABMQ_ACK_CONFIRMED) {
        smq_client_fail(c, SLABMQ_ERR_ARG, "unknown ack flags 0x%x", flags);
        return -1;
    }
    if ((flags & SLABMQ_ACK_CONFIRMED) && !(c->features & SMQ_FEATURE_CONFIRMED_ACK)) {
        smq_client_fail(c, SLABMQ_ERR_ARG,
                        "this broker does not take confirmed acks (HELLO features bit 1); "
                        "upgrade it, or ack without SLABMQ_ACK_CONFIRMED");
        return -1;
    }
    return 0;
}

static slabmq_status
settle(slabmq_client *c, unsigned op, const uint64_t *ids, size_t n, uint64_t delay,
       unsigned flags, uint64_t *done)
{
    struct smq_mpr r;
    uint32_t nres;
    uint64_t count;
    slabmq_status st;

    if (!c)
        return SLABMQ_ERR_ARG;
    if (done)
        *done = 0;
    if (check_ack_flags(c, flags) || build_settle(c, op, ids, n, delay, flags))
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

/* Pipelined settle(): the count comes to the confirmation callback. An ACK goes QUIET when
 * the broker takes it: the reply to the request after it (for a consumer, its next FETCH)
 * confirms it, so the consumer wakes once per FETCH rather than twice. Settlements count
 * against their own limit (smq_settle_window()), not the publishes' window, and do not
 * return the sticky error. */
static slabmq_status
settle_async(slabmq_client *c, unsigned op, const uint64_t *ids, size_t n, uint64_t delay,
             unsigned flags, uint64_t *request)
{
    if (!c)
        return SLABMQ_ERR_ARG;
    if (check_ack_flags(c, flags))
        return (slabmq_status)c->last;
    if (op == SMQ_OP_ACK) /* coalesced with the ACK queued before it when it can be (acks.c) */
        return smq_ack_async(c, ids, n, flags, request);
    if (build_settle(c, op, ids, n, delay, 0))
        return (slabmq_status)c->last;
    return smq_req_async_settle(c, request);
}

SLABMQ_API slabmq_status
slabmq_ack_async(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *request)
{
    return settle_async(c, SMQ_OP_ACK, ids, n, 0, 0, request);
}

SLABMQ_API slabmq_status
slabmq_ack_flags_async(slabmq_client *c, const uint64_t *ids, size_t n, unsigned flags,
                       uint64_t *request)
{
    return settle_async(c, SMQ_OP_ACK, ids, n, 0, flags, request);
}

SLABMQ_API slabmq_status
slabmq_ack_flags(slabmq_client *c, const uint64_t *ids, size_t n, unsigned flags,
                 uint64_t *acked)
{
    return settle(c, SMQ_OP_ACK, ids, n, 0, flags, acked);
}

SLABMQ_API slabmq_status
slabmq_nack_async(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t delay_ms,
                  uint64_t *request)
{
    return settle_async(c, SMQ_OP_NACK, ids, n, delay_ms, 0, request);
}

SLABMQ_API slabmq_status
slabmq_term_async(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *request)
{
    return settle_async(c, SMQ_OP_TERM, ids, n, 0, 0, request);
}

SLABMQ_API slabmq_status
slabmq_ack(slabmq_client *c, uint64_t id)
{
    return settle(c, SMQ_OP_ACK, &id, 1, 0, 0, NULL);
}

SLABMQ_API slabmq_status
slabmq_ack_batch(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *acked)
{
    return settle(c, SMQ_OP_ACK, ids, n, 0, 0, acked);
}

SLABMQ_API slabmq_status
slabmq_touch(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *touched)
{
    return settle(c, SMQ_OP_TOUCH, ids, n, 0, 0, touched);
}

SLABMQ_API slabmq_status
slabmq_nack(slabmq_client *c, uint64_t id, uint64_t delay_ms)
{
    return settle(c, SMQ_OP_NACK, &id, 1, delay_ms, 0, NULL);
}

SLABMQ_API slabmq_status
slabmq_nack_batch(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t delay_ms,
                  uint64_t *nacked)
{
    return settle(c, SMQ_OP_NACK, ids, n, delay_ms, 0, nacked);
}

SLABMQ_API slabmq_status
slabmq_term(slabmq_client *c, const uint64_t *ids, size_t n, uint64_t *terminated)
{
    return settle(c, SMQ_OP_TERM, ids, n, 0, 0, terminated);
}

const char *
smq_confirm_name(int level)
{
    return level == SLABMQ_CONFIRM_SYNCED    ? "synced"
           : level == SLABMQ_CONFIRM_WRITTEN ? "written"
                                             : "memory";
}

int
smq_read_level(struct smq_mpr *r)
{
    const char *s;
    uint32_t n;

    if (smq_mpr_str(r, &s, &n))
        return SLABMQ_CONFIRM_DEFAULT;
    if (n == 6 && memcmp(s, "synced", 6) == 0)
        return SLABMQ_CONFIRM_SYNCED;
    if (n == 7 && memcmp(s, "written", 7) == 0)
        return SLABMQ_CONFIRM_WRITTEN;
    if (n == 6 && memcmp(s, "memory", 6) == 0)
        return SLABMQ_CONFIRM_MEMORY;
    return SLABMQ_CONFIRM_DEFAULT;
}

SLABMQ_API slabmq_confirm_level
slabmq_last_confirm_level(const slabmq_client *c)
{
    return c ? (slabmq_confirm_level)c->last_level : SLABMQ_CONFIRM_DEFAULT;
}
