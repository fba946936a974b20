/* SPDX-License-Identifier: MIT */
/* A bounds-checked msgpack reader over one frame body: a cursor that decodes values in place.
 *
 * Why not msgpack_unpack: msgpack-c's unpacker allocates n * 24 bytes as soon as it reads a
 * container header, before any element is present (a 5-byte input asks for 16 GiB; msgpack-c
 * issue #1013), and builds a tree in a zone the broker would then walk a second time. This
 * cursor allocates nothing, rejects counts that exceed the bytes left, and lets the request
 * decoders read straight into C values. msgpack-c still packs every frame (see the codec and
 * the broker's output buffer) and is the reference these functions are tested against.
 *
 * Errors are sticky: after the first failure every call fails, so a decoder may read all its
 * fields and check r->err once. str and bin views point into the input buffer. */
#ifndef SLABMQ_PROTOCOL_MPREAD_H
#define SLABMQ_PROTOCOL_MPREAD_H

#include <stddef.h>
#include <stdint.h>

enum smq_mp_type {
    SMQ_MP_INVALID, /* truncated input, the never-used byte 0xc1 */
    SMQ_MP_NIL,
    SMQ_MP_BOOL,
    SMQ_MP_UINT,   /* non-negative integer, any width */
    SMQ_MP_NINT,   /* negative integer */
    SMQ_MP_FLOAT,
    SMQ_MP_STR,
    SMQ_MP_BIN,
    SMQ_MP_ARRAY,
    SMQ_MP_MAP,
    SMQ_MP_EXT
};

struct smq_mpr {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte of the body */
    int err;            /* sticky: 0 until a read fails */
};

/* Bytes not yet read. */
static inline size_t
smq_mpr_left(const struct smq_mpr *r)
{
    return (size_t)(r->end - r->p);
}

void smq_mpr_init(struct smq_mpr *r, const void *data, size_t len);
/* Type of the next value without consuming it. */
enum smq_mp_type smq_mpr_peek(const struct smq_mpr *r);
int smq_mpr_array_slow(struct smq_mpr *r, uint32_t *n);
int smq_mpr_map(struct smq_mpr *r, uint32_t *n);
int smq_mpr_uint_slow(struct smq_mpr *r, uint64_t *v);

/* Array header. Inline for the common fixarray (the count is still checked against the
 * bytes left, as for every container). */
static inline int
smq_mpr_array(struct smq_mpr *r, uint32_t *n)
{
    if (!r->err && r->p < r->end && (*r->p & 0xf0) == 0x90
        && (size_t)(*r->p & 0x0f) < (size_t)(r->end - r->p)) {
        *n = *r->p++ & 0x0f;
        return 0;
    }
    return smq_mpr_array_slow(r, n);
}

/* Non-negative integer of any msgpack integer width; inline for a positive fixint and the
 * unsigned 8/16/32/64-bit forms (request and message ids), the rest out of line. */
static inline int
smq_mpr_uint(struct smq_mpr *r, uint64_t *v)
{
    if (!r->err && r->p < r->end) {
        uint8_t b = *r->p;
        if (b < 0x80) {
            *v = b;
            r->p++;
            return 0;
        }
        if (b >= 0xcc && b <= 0xcf) {
            unsigned n = 1u << (b - 0xcc);
            if ((size_t)(r->end - r->p) > n) {
                const uint8_t *q = r->p + 1;
                switch (n) { /* big-endian loads the compiler turns into one bswap each */
                case 1:
                    *v = q[0];
                    break;
                case 2:
                    *v = (uint64_t)q[0] << 8 | q[1];
                    break;
                case 4:
                    *v = (uint64_t)q[0] << 24 | (uint64_t)q[1] << 16 | (uint64_t)q[2] << 8 | q[3];
                    break;
                default:
                    *v = (uint64_t)q[0] << 56 | (uint64_t)q[1] << 48 | (uint64_t)q[2] << 40
                       | (uint64_t)q[3] << 32 | (uint64_t)q[4] << 24 | (uint64_t)q[5] << 16
                       | (uint64_t)q[6] << 8 | q[7];
                }
                r->p += 1 + n;
                return 0;
            }
        }
    }
    return smq_mpr_uint_slow(r, v);
}
int smq_mpr_bool(struct smq_mpr *r, int *v);
int smq_mpr_nil(struct smq_mpr *r);
/* View of a str; valid as long as the input buffer. */
int smq_mpr_str(struct smq_mpr *r, const char **s, uint32_t *len);
/* View of a bin. */
int smq_mpr_bin(struct smq_mpr *r, const uint8_t **b, uint32_t *len);
/* Skip one value of any type, nested at most max_depth levels. */
int smq_mpr_skip(struct smq_mpr *r, int max_depth);

/* Size in bytes of msgpack headers as msgpack-c packs them: lets a writer compute a frame's
 * length before writing it. */
size_t smq_mp_uint_size(uint64_t v);
size_t smq_mp_array_hdr_size(uint32_t n);
size_t smq_mp_map_hdr_size(uint32_t n);
size_t smq_mp_bin_hdr_size(uint32_t n);
size_t smq_mp_str_hdr_size(uint32_t n);

#endif /* SLABMQ_PROTOCOL_MPREAD_H */
