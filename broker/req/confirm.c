/* SPDX-License-Identifier: MIT */
/* Held replies; see confirm.h. */
#include "req/confirm.h"

#include <string.h>

#include "core/broker.h"
#include "req/req.h"
#include "util/log.h"
#include "ops.h"
#include "mem/obuf.h"
#include "slabmq_protocol.h"
#include "store/store.h"

#define CONFIRM_MIN 64    /* entries per connection at first; doubled as needed, */
#define CONFIRM_MAX 2048  /* up to this many (48 KiB: a record-slab page holds it whole), then
                           * the last entries are merged */

struct pend {
    uint64_t seq;
    uint64_t pos;     /* absolute output position of the reply */
    uint8_t level;    /* enum store_level */
    uint8_t publish;  /* 1: one PUBLISH (or PUBLISH_BATCH) success reply starts at pos */
};

struct confirmq {
    struct req *owner;
    struct pend *e;    /* a ring of cap entries (a power of two) */
    uint32_t cap;
    uint32_t head;
    uint32_t n;
    struct dlink link; /* in req_server.confirm_reqs while replies are held */
};

static int
satisfied(const struct store *st, uint64_t seq, unsigned level)
{
    return level == STORE_SYNCED ? store_synced(st) >= seq : store_committed(st) >= seq;
}

static struct confirmq *
confirmq_new(struct req *rq)
{
    struct slab *sl = &rq->b->rec;
    struct confirmq *cq = slab_alloc_reserved(sl, sizeof(*cq));

    if (!cq)
        return NULL;
    memset(cq, 0, sizeof(*cq));
    if (!(cq->e = slab_alloc_reserved(sl, CONFIRM_MIN * sizeof(*cq->e)))) {
        slab_free(sl, cq, sizeof(*cq));
        return NULL;
    }
    cq->cap = CONFIRM_MIN;
    cq->owner = rq;
    dlist_init(&cq->link);
    return cq;
}

/* Double the ring (in order, from index 0). 0, or -1 at CONFIRM_MAX or the memory limit. */
static int
grow(struct slab *sl, struct confirmq *cq)
{
    struct pend *e;

    if (cq->cap >= CONFIRM_MAX || !(e = slab_alloc_reserved(sl, 2 * cq->cap * sizeof(*e))))
        return -1;
    for (uint32_t i = 0; i < cq->n; i++)
        e[i] = cq->e[(cq->head + i) & (cq->cap - 1)];
    slab_free(sl, cq->e, cq->cap * sizeof(*e));
    cq->e = e;
    cq->cap *= 2;
    cq->head = 0;
    return 0;
}

int
confirm_hold(struct req *rq, uint64_t seq, unsigned level, int publish)
{
    struct req_server *s = rq->srv;
    struct store *st = s->b->store;
    struct confirmq *cq = rq->confirm;
    struct pend *last;

    if (!st || seq == 0 || level == STORE_MEMORY)
        return 0;
    if (level == STORE_SYNCED)
        store_want_sync(st, seq);
    if (satisfied(st, seq, level) && (!cq || cq->n == 0))
        return 0;
    if (!cq) {
        if (!(cq = confirmq_new(rq)))
            return -1;
        rq->confirm = cq;
    }
    if (cq->n == cq->cap && grow(&s->b->rec, cq)) {
        /* merge: the last hold now ends at this later one, and covers several replies */
        last = &cq->e[(cq->head + cq->n - 1) & (cq->cap - 1)];
        last->seq = seq;
        last->publish = 0;
        if (level > last->level)
            last->level = (uint8_t)level;
        return 0;
    }
    cq->e[(cq->head + cq->n) & (cq->cap - 1)] =
        (struct pend){seq, obuf_position(&rq->out), (uint8_t)level, (uint8_t)(publish != 0)};
    if (cq->n++ == 0) {
        rq->out.limit = obuf_position(&rq->out);
        dlist_push_back(&s->confirm_reqs, &cq->link);
    }
    return 0;
}

/* The text of a refusal written over a reply of room bytes of results. */
static const char *
refusal_text(size_t room)
{
    static const char *const texts[] = {"disk full; not confirmed", "disk full", "full", ""};

    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        if (strlen(texts[i]) < room)
            return texts[i];
    return "";
}

/* Overwrite the held PUBLISH (or PUBLISH_BATCH) success reply at pos, [op, rid, 0, results],
 * with ERR_STORAGE_FULL of the same length, [op, rid, 21, text]. 0, or -1 if it is not such
 * a reply (nothing changed). */
static int
refuse_reply(struct obuf *o, uint64_t pos)
{
    uint8_t b[64];
    uint32_t len;
    size_t rid;
    size_t room;
    const char *text;

    if (obuf_peek(o, pos, b, 4) || (len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16
                                           | (uint32_t)b[2] << 8 | b[3]) > sizeof(b)
        || len < 5 || obuf_peek(o, pos + 4, b, len) || b[0] < 0x94 || b[0] > 0x96
        || (b[1] != SMQ_OP_PUBLISH && b[1] != SMQ_OP_PUBLISH_BATCH))
        return -1;
    rid = b[2] < 0x80 ? 1 : b[2] == 0xcc ? 2 : b[2] == 0xcd ? 3 : b[2] == 0xce ? 5
          : b[2] == 0xcf ? 9 : 0; /* the request id's msgpack uint */
    if (!rid || 3 + rid >= len || b[2 + rid] != 0)
        return -1;
    room = len - 3 - rid; /* for the text and its header (fixstr: room < 33) */
    if (room < 1 || room > 32)
        return -1;
    text = refusal_text(room);
    b[0] = 0x94;
    b[2 + rid] = SLABMQ_ERR_STORAGE_FULL;
    b[3 + rid] = (uint8_t)(0xa0 | (room - 1));
    memset(b + 4 + rid, ' ', room - 1);
    memcpy(b + 4 + rid, text, strlen(text));
    return obuf_patch(o, pos + 4, b, len);
}

/* The disk is full: no held PUBLISH reply can be confirmed while it is. Each one at the front
 * becomes ERR_STORAGE_FULL and goes out, so that the replies behind it (refusals of later
 * publishes) are not held either; a hold that is not one PUBLISH reply (a CONFIRMED ACK, a
 * merged entry) stops this and waits for room. */
static void
refuse_held(struct req *rq, const struct store *st)
{
    struct confirmq *cq = rq->confirm;

    while (cq->n) {
        struct pend *p = &cq->e[cq->head];
        if (!satisfied(st, p->seq, p->level)
            && (!p->publish || refuse_reply(&rq->out, p->pos)))
            break;
        cq->head = (cq->head + 1) & (cq->cap - 1);
        cq->n--;
    }
}

static void
release(struct req *rq, const struct store *st)
{
    struct confirmq *cq = rq->confirm;

    while (cq->n && satisfied(st, cq->e[cq->head].seq, cq->e[cq->head].level)) {
        cq->head = (cq->head + 1) & (cq->cap - 1);
        cq->n--;
    }
    if (cq->n) {
        rq->out.limit = cq->e[cq->head].pos;
    } else {
        rq->out.limit = UINT64_MAX;
        dlist_unlink(&cq->link);
    }
}

void
confirm_progress(struct req_server *s)
{
    struct store *st = s->b->store;
    struct dlink *l = s->confirm_reqs.next;

    while (l != &s->confirm_reqs) {
        struct confirmq *cq = DLIST_ENTRY(l, struct confirmq, link);
        struct req *rq;
        l = l->next;
        rq = cq->owner;
        if (store_state(st) == STORE_FAILED) {
            log_warn("connection %llu from %s: closing; its durable publishes were not "
                     "confirmed (the store failed)", (unsigned long long)rq->id, rq->peer);
            rq->srv->ops->close(rq);
            continue;
        }
        if (store_state(st) == STORE_FULL)
            refuse_held(rq, st);
        release(rq, st);
        req_try_write(rq);
        req_want_write(rq);
    }
}

void
confirm_req_gone(struct req *rq)
{
    if (!rq->confirm)
        return;
    dlist_unlink(&rq->confirm->link);
    slab_free(&rq->b->rec, rq->confirm->e, rq->confirm->cap * sizeof(*rq->confirm->e));
    slab_free(&rq->b->rec, rq->confirm, sizeof(*rq->confirm));
    rq->confirm = NULL;
    rq->out.limit = UINT64_MAX;
}
