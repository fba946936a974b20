/* SPDX-License-Identifier: MIT */
/* Segments: a queue's messages packed one after another in slab chunks.
 *
 * A record is 8 bytes of header then the payload, unaligned:
 *     u32 id_delta   message id minus the segment's base_id
 *     u32 lenflags   payload length (low 30 bits), SEG_DEAD, SEG_CHUNKED
 * A payload longer than SEG_INLINE_MAX is stored in a chain of slab chunks and the record
 * holds an 8-byte pointer to the chain instead, so large messages cost no more than a
 * chunk's rounding and never need a contiguous region bigger than a segment.
 * A record moved by compaction (SEG_MOVED, only in a queue's "moved" segments) carries its
 * full 8-byte id after the header, since its id is unrelated to the segment's base_id.
 * A waiting message thus costs 8 bytes of overhead; per-delivery state lives elsewhere
 * (delivery.h) and only for messages that have been delivered.
 * A segment is freed by its queue once every record in it is dead (live == 0). */
#ifndef SLABMQ_BROKER_MEM_SEGMENT_H
#define SLABMQ_BROKER_MEM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct slab;
struct obuf;

#define SEG_REC_HDR 8u
#define SEG_INLINE_MAX (8u * 1024)     /* larger payloads go to a chunk chain */
#define SEG_CHUNK_SIZE (64u * 1024)    /* chain chunk size for large payloads */
#define SEG_MIN_SIZE 1024u             /* a new queue's first segment */
#define SEG_MAX_SIZE (60u * 1024)      /* segments grow up to this: the 64,624-byte class
                                          fills 98.6% of a page */
#define SEG_OFF_LIMIT 65536u          /* segments are smaller: offsets fit in 16 bits */
#define SEG_DEAD 0x80000000u
#define SEG_CHUNKED 0x40000000u
#define SEG_MOVED 0x20000000u
#define SEG_LEN_MASK 0x1fffffffu /* payloads up to 512 MiB (the flag ceiling is 256 MiB) */

struct segment {
    struct segment *prev; /* older segment of the queue */
    struct segment *next; /* newer segment */
    uint64_t base_id;     /* id of the first record; ids of others are base_id + delta */
    uint32_t size;        /* chunk size, bytes */
    uint32_t used;        /* bytes used from data[0] */
    uint32_t live;        /* records not yet dead */
    uint32_t nrec;        /* records appended */
    uint32_t seq;         /* position in the queue's list: older segments have smaller seq */
    uint32_t moved;       /* 1: holds records moved by compaction (never read by the cursor) */
    uint8_t data[];
};

/* A record decoded in place. */
struct seg_rec {
    uint64_t id;
    uint32_t len;    /* payload bytes */
    uint32_t flags;  /* SEG_DEAD | SEG_CHUNKED */
    uint32_t size;   /* record bytes in the segment, header included */
};

/* Bytes a payload of len needs inside a segment (plus 8 for a moved record's id). */
static inline uint32_t
seg_rec_size(uint32_t len)
{
    return SEG_REC_HDR + (len > SEG_INLINE_MAX ? (uint32_t)sizeof(void *) : len);
}

/* Whether a moved record of len payload bytes fits at the end of g. */
int seg_fits_moved_len(const struct segment *g, uint32_t len);
/* Append a record carrying its full id, as a moved one does (for messages published with
 * a delivery record: they live in the moved-record segments). Returns the offset or -1 as
 * seg_append does. */
long seg_append_moved(struct slab *s, struct segment *g, uint64_t id, const void *data,
                      uint32_t len);
/* Whether a moved copy of the record at off fits at the end of g. */
int seg_fits_moved(const struct segment *g, const struct segment *from, uint32_t off);
/* Move the record at (from, off) to the end of g: its payload (or chain pointer) is copied,
 * the original is marked dead without freeing the chain, which now belongs to the copy.
 * Returns the new offset in g. from->live drops by one. */
uint32_t seg_move(struct segment *g, struct segment *from, uint32_t off, uint64_t id);

/* A new empty segment of exactly one slab chunk of at least 'size' bytes. NULL at the limit. */
struct segment *seg_new(struct slab *s, uint32_t size);
void seg_free(struct slab *s, struct segment *g);

/* Whether a record for 'len' payload bytes with this id fits at the end of g. */
int seg_fits(const struct segment *g, uint64_t id, uint32_t len);

/* Append a record; seg_fits() must have said yes. For a chunked payload the chain is
 * allocated from the slab first. Returns the record's offset, or -1 (nothing appended) if
 * the chain could not be allocated. */
long seg_append(struct slab *s, struct segment *g, uint64_t id, const void *data,
                uint32_t len);

/* Decode the record at off. Inline, as seg_body() and seg_body_off(): a delivery decodes
 * its record twice (taken, then packed), and the calls were 50 of a drained message's 884
 * instructions (callgrind). */
static inline void
seg_read(const struct segment *g, uint32_t off, struct seg_rec *r)
{
    uint32_t delta;
    uint32_t lf;

    memcpy(&delta, g->data + off, 4);
    memcpy(&lf, g->data + off + 4, 4);
    r->id = g->base_id + delta;
    r->len = lf & SEG_LEN_MASK;
    r->flags = lf & ~SEG_LEN_MASK;
    r->size = seg_rec_size(r->len);
    if (lf & SEG_MOVED) {
        memcpy(&r->id, g->data + off + SEG_REC_HDR, 8);
        r->size += 8;
    }
}

/* Offset of the payload (or chain pointer) of the record at off. */
static inline uint32_t
seg_body_off(const struct segment *g, uint32_t off)
{
    uint32_t lf;

    memcpy(&lf, g->data + off + 4, 4);
    return off + SEG_REC_HDR + (lf & SEG_MOVED ? 8 : 0);
}

/* Mark the record at off dead and free its chain. Returns the segment's remaining live
 * count. */
uint32_t seg_kill(struct slab *s, struct segment *g, uint32_t off);

/* The payload of the record at off, r its seg_read(), when it is in the segment itself (not
 * chunked); NULL for a chunked one (seg_copy_out). Valid until the record dies. */
static inline const uint8_t *
seg_body(const struct segment *g, uint32_t off, const struct seg_rec *r)
{
    return r->flags & SEG_CHUNKED ? NULL : g->data + seg_body_off(g, off);
}

/* Append the payload of the record at off to an output chain (one copy). */
void seg_copy_out(const struct segment *g, uint32_t off, struct obuf *o);

/* Copy up to n bytes of the payload at off into dst; for tests and tools. */
uint32_t seg_copy_to(const struct segment *g, uint32_t off, void *dst, uint32_t n);

/* Slab bytes held by chain chunks of a payload of len bytes (0 when inline). */
size_t seg_chain_bytes(const struct slab *s, uint32_t len);

#endif /* SLABMQ_BROKER_MEM_SEGMENT_H */
