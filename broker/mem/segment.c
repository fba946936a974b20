/* SPDX-License-Identifier: MIT */
/* Segments and their records; see segment.h. Append, read and kill are O(1) for inline
 * payloads and O(chunks) for chained ones. */
#include "mem/segment.h"

#include <string.h>

#include "mem/obuf.h"
#include "mem/slab.h"

/* A link of a large payload's chain. */
struct chunk {
    struct chunk *next;
    uint32_t cap; /* payload bytes this chunk holds */
    uint32_t pad;
    uint8_t data[];
};

struct segment *
seg_new(struct slab *s, uint32_t size)
{
    int ci = slab_class_for(s, size);
    struct segment *g;
    uint32_t csize;

    if (ci < 0)
        return NULL;
    csize = slab_class_size(s, ci);
    if (csize > SEG_OFF_LIMIT)
        return NULL; /* record offsets must fit a delivery's 16-bit field */
    g = slab_alloc(s, csize);
    if (!g)
        return NULL;
    g->prev = g->next = NULL;
    g->base_id = 0;
    g->size = csize;
    g->used = 0;
    g->live = 0;
    g->nrec = 0;
    g->seq = 0;
    g->moved = 0;
    return g;
}

void
seg_free(struct slab *s, struct segment *g)
{
    if (g)
        slab_free(s, g, g->size);
}

int
seg_fits(const struct segment *g, uint64_t id, uint32_t len)
{
    if (g->nrec && id - g->base_id > UINT32_MAX)
        return 0;
    return (size_t)g->used + seg_rec_size(len) <= g->size - sizeof(*g);
}

static void
free_chain(struct slab *s, struct chunk *c)
{
    while (c) {
        struct chunk *n = c->next;
        slab_free(s, c, sizeof(*c) + c->cap);
        c = n;
    }
}

/* Size of the next chunk of a chain with len bytes left: the whole rest in the smallest
 * class that holds it, if that class is at most SEG_CHUNK_SIZE; else the largest class not
 * above SEG_CHUNK_SIZE, used in full. Classes up to 64 KiB fill their pages to within 2%, so
 * a chain wastes little more than its last chunk's rounding. */
static uint32_t
chunk_size_for(const struct slab *s, uint32_t len)
{
    int ci = slab_class_for(s, (size_t)len + sizeof(struct chunk));
    int max = slab_class_for(s, SEG_CHUNK_SIZE);

    if (slab_class_size(s, max) > SEG_CHUNK_SIZE)
        max--;
    if (ci >= 0 && ci <= max)
        return slab_class_size(s, ci);
    return slab_class_size(s, max);
}

/* Build a chain holding len bytes of data. NULL if the slab refuses. */
static struct chunk *
make_chain(struct slab *s, const uint8_t *data, uint32_t len)
{
    struct chunk *head = NULL;
    struct chunk **link = &head;

    while (len > 0) {
        uint32_t cap = chunk_size_for(s, len) - (uint32_t)sizeof(struct chunk);
        struct chunk *c;
        if (cap > len)
            cap = len;
        c = slab_alloc(s, sizeof(*c) + cap); /* the same class chunk_size_for chose */
        if (!c) {
            free_chain(s, head);
            return NULL;
        }
        c->next = NULL;
        c->cap = cap;
        c->pad = 0;
        memcpy(c->data, data, c->cap);
        data += c->cap;
        len -= c->cap;
        *link = c;
        link = &c->next;
    }
    return head;
}

size_t
seg_chain_bytes(const struct slab *s, uint32_t len)
{
    size_t total = 0;

    if (len <= SEG_INLINE_MAX)
        return 0;
    while (len > 0) {
        uint32_t sz = chunk_size_for(s, len);
        uint32_t cap = sz - (uint32_t)sizeof(struct chunk);
        total += sz;
        len -= cap < len ? cap : len;
    }
    return total;
}

/* Append a record: a main-list one (id as a delta from base_id) or, with 'moved', one that
 * carries its full id after the header. */
static long
append(struct slab *s, struct segment *g, uint64_t id, const void *data, uint32_t len,
       int moved)
{
    uint8_t *rec = g->data + g->used;
    uint8_t *body = rec + SEG_REC_HDR + (moved ? 8 : 0);
    uint32_t delta = 0;
    uint32_t lenflags = len | (moved ? SEG_MOVED : 0);
    long off = (long)g->used;

    if (!moved) {
        if (g->nrec == 0)
            g->base_id = id;
        delta = (uint32_t)(id - g->base_id);
    }
    if (len > SEG_INLINE_MAX) {
        struct chunk *c = make_chain(s, data, len);
        if (!c)
            return -1;
        lenflags |= SEG_CHUNKED;
        memcpy(body, &c, sizeof(c));
    } else if (len) {
        memcpy(body, data, len);
    }
    memcpy(rec, &delta, 4);
    memcpy(rec + 4, &lenflags, 4);
    if (moved)
        memcpy(rec + SEG_REC_HDR, &id, 8);
    g->used += seg_rec_size(len) + (moved ? 8 : 0);
    g->nrec++;
    g->live++;
    return off;
}

long
seg_append(struct slab *s, struct segment *g, uint64_t id, const void *data, uint32_t len)
{
    return append(s, g, id, data, len, 0);
}

long
seg_append_moved(struct slab *s, struct segment *g, uint64_t id, const void *data,
                 uint32_t len)
{
    return append(s, g, id, data, len, 1);
}

int
seg_fits_moved_len(const struct segment *g, uint32_t len)
{
    return (size_t)g->used + seg_rec_size(len) + 8 <= g->size - sizeof(*g);
}

static struct chunk *
rec_chain(const struct segment *g, uint32_t off)
{
    struct chunk *c;

    memcpy(&c, g->data + seg_body_off(g, off), sizeof(c));
    return c;
}

int
seg_fits_moved(const struct segment *g, const struct segment *from, uint32_t off)
{
    struct seg_rec r;

    seg_read(from, off, &r);
    return seg_fits_moved_len(g, r.len);
}

uint32_t
seg_move(struct segment *g, struct segment *from, uint32_t off, uint64_t id)
{
    struct seg_rec r;
    uint32_t at = g->used;
    uint32_t zero = 0;
    uint32_t lf;
    uint32_t body;

    seg_read(from, off, &r);
    body = seg_rec_size(r.len) - SEG_REC_HDR;
    lf = r.len | (r.flags & SEG_CHUNKED) | SEG_MOVED;
    memcpy(g->data + at, &zero, 4);
    memcpy(g->data + at + 4, &lf, 4);
    memcpy(g->data + at + SEG_REC_HDR, &id, 8);
    memcpy(g->data + at + SEG_REC_HDR + 8, from->data + seg_body_off(from, off), body);
    g->used += SEG_REC_HDR + 8 + body;
    g->nrec++;
    g->live++;
    lf = r.len | r.flags | SEG_DEAD; /* the chain, if any, now belongs to the copy */
    memcpy(from->data + off + 4, &lf, 4);
    from->live--;
    return at;
}

uint32_t
seg_kill(struct slab *s, struct segment *g, uint32_t off)
{
    uint32_t lf;

    memcpy(&lf, g->data + off + 4, 4);
    if (lf & SEG_DEAD)
        return g->live;
    if (lf & SEG_CHUNKED)
        free_chain(s, rec_chain(g, off));
    lf |= SEG_DEAD;
    memcpy(g->data + off + 4, &lf, 4);
    return --g->live;
}

void
seg_copy_out(const struct segment *g, uint32_t off, struct obuf *o)
{
    struct seg_rec r;

    seg_read(g, off, &r);
    if (!(r.flags & SEG_CHUNKED)) {
        obuf_write(o, g->data + seg_body_off(g, off), r.len);
        return;
    }
    for (struct chunk *c = rec_chain(g, off); c; c = c->next)
        obuf_write(o, c->data, c->cap);
}

uint32_t
seg_copy_to(const struct segment *g, uint32_t off, void *dst, uint32_t n)
{
    struct seg_rec r;
    uint8_t *d = dst;
    uint32_t done = 0;

    seg_read(g, off, &r);
    if (n > r.len)
        n = r.len;
    if (!(r.flags & SEG_CHUNKED)) {
        memcpy(d, g->data + seg_body_off(g, off), n);
        return n;
    }
    for (struct chunk *c = rec_chain(g, off); c && done < n; c = c->next) {
        uint32_t k = c->cap < n - done ? c->cap : n - done;
        memcpy(d + done, c->data, k);
        done += k;
    }
    return done;
}
