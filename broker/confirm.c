/* SPDX-License-Identifier: MIT */
/* Held replies; see confirm.h. */
#include "confirm.h"

#include <string.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "store.h"

#define CONFIRM_MAX 64 /* entries per connection before they are merged */

struct pend {
    uint64_t seq;
    uint64_t pos;  /* absolute output position of the reply */
    uint8_t level; /* enum store_level */
};

struct confirmq {
    struct conn *owner;
    struct pend e[CONFIRM_MAX];
    uint32_t head;
    uint32_t n;
    struct dlink link; /* in the server's list of connections with held replies */
};

static int
satisfied(const struct store *st, uint64_t seq, unsigned level)
{
    return level == STORE_SYNCED ? store_synced(st) >= seq : store_committed(st) >= seq;
}

int
confirm_hold(struct conn *c, uint64_t seq, unsigned level)
{
    struct server *s = c->srv;
    struct store *st = s->b.store;
    struct confirmq *cq = c->confirm;
    struct pend *last;

    if (!st || seq == 0 || level == STORE_MEMORY)
        return 0;
    if (level == STORE_SYNCED)
        store_want_sync(st, seq);
    if (satisfied(st, seq, level) && (!cq || cq->n == 0))
        return 0;
    if (!cq) {
        if (!(cq = slab_alloc_reserved(&s->b.rec, sizeof(*cq))))
            return -1;
        memset(cq, 0, sizeof(*cq));
        cq->owner = c;
        dlist_init(&cq->link);
        c->confirm = cq;
    }
    if (cq->n == CONFIRM_MAX) { /* merge: the last hold now ends at this later one */
        last = &cq->e[(cq->head + cq->n - 1) % CONFIRM_MAX];
        last->seq = seq;
        if (level > last->level)
            last->level = (uint8_t)level;
        return 0;
    }
    cq->e[(cq->head + cq->n) % CONFIRM_MAX] =
        (struct pend){seq, obuf_position(&c->out), (uint8_t)level};
    if (cq->n++ == 0) {
        c->out.limit = obuf_position(&c->out);
        dlist_push_back(&s->confirm_conns, &cq->link);
    }
    return 0;
}

static void
release(struct conn *c, const struct store *st)
{
    struct confirmq *cq = c->confirm;

    while (cq->n && satisfied(st, cq->e[cq->head].seq, cq->e[cq->head].level)) {
        cq->head = (cq->head + 1) % CONFIRM_MAX;
        cq->n--;
    }
    if (cq->n) {
        c->out.limit = cq->e[cq->head].pos;
    } else {
        c->out.limit = UINT64_MAX;
        dlist_unlink(&cq->link);
    }
}

void
confirm_progress(struct server *s)
{
    struct store *st = s->b.store;
    struct dlink *l = s->confirm_conns.next;

    while (l != &s->confirm_conns) {
        struct confirmq *cq = DLIST_ENTRY(l, struct confirmq, link);
        struct conn *c;
        l = l->next;
        c = cq->owner;
        if (store_state(st) == STORE_FAILED) {
            log_warn("connection %llu from %s: closing; its durable publishes were not "
                     "confirmed (the store failed)", (unsigned long long)c->id, c->peer);
            conn_close(c);
            continue;
        }
        release(c, st);
        conn_try_write(c);
        conn_want_write(c);
    }
}

void
confirm_conn_gone(struct conn *c)
{
    if (!c->confirm)
        return;
    dlist_unlink(&c->confirm->link);
    slab_free(&c->srv->b.rec, c->confirm, sizeof(*c->confirm));
    c->confirm = NULL;
    c->out.limit = UINT64_MAX;
}
