/* SPDX-License-Identifier: MIT */
/* Intrusive circular doubly linked lists (a sentinel head), O(1) everything. */
#ifndef SLABMQ_BROKER_UTIL_DLIST_H
#define SLABMQ_BROKER_UTIL_DLIST_H

#include <stddef.h>

struct dlink {
    struct dlink *prev;
    struct dlink *next;
};

static inline void
dlist_init(struct dlink *h)
{
    h->prev = h->next = h;
}

static inline int
dlist_empty(const struct dlink *h)
{
    return h->next == h;
}

static inline void
dlist_push_back(struct dlink *h, struct dlink *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static inline void
dlist_unlink(struct dlink *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define DLIST_ENTRY(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif /* SLABMQ_BROKER_UTIL_DLIST_H */
