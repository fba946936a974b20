/* SPDX-License-Identifier: MIT */
/* msgpack cursor reader; every read is O(1) except smq_mpr_skip, O(size of the value). */
#include "mpread.h"

#include <string.h>

void
smq_mpr_init(struct smq_mpr *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->err = 0;
}

static int
fail(struct smq_mpr *r)
{
    r->err = 1;
    return -1;
}

/* Read an n-byte big-endian unsigned integer; n is 1, 2, 4 or 8. */
static int
read_be(struct smq_mpr *r, unsigned n, uint64_t *v)
{
    uint64_t x = 0;

    if (smq_mpr_left(r) < n)
        return fail(r);
    for (unsigned i = 0; i < n; i++)
        x = x << 8 | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

enum smq_mp_type
smq_mpr_peek(const struct smq_mpr *r)
{
    uint8_t b;

    if (r->err || r->p >= r->end)
        return SMQ_MP_INVALID;
    b = *r->p;
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf))
        return SMQ_MP_UINT;
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3))
        return SMQ_MP_NINT; /* may still hold a non-negative value; smq_mpr_uint checks */
    if (b <= 0x8f || b == 0xde || b == 0xdf)
        return SMQ_MP_MAP;
    if (b <= 0x9f || b == 0xdc || b == 0xdd)
        return SMQ_MP_ARRAY;
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
        return SMQ_MP_STR;
    switch (b) {
    case 0xc0:
        return SMQ_MP_NIL;
    case 0xc2:
    case 0xc3:
        return SMQ_MP_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return SMQ_MP_BIN;
    case 0xca:
    case 0xcb:
        return SMQ_MP_FLOAT;
    case 0xc1:
        return SMQ_MP_INVALID;
    default:
        return SMQ_MP_EXT; /* c7-c9, d4-d8 */
    }
}

/* Read a container header: fix range [fix_lo, fix_lo+15], 16- and 32-bit forms. Each entry
 * needs at least per_item bytes, so a count the remaining input cannot hold is rejected. */
static int
read_container(struct smq_mpr *r, uint8_t fix_lo, uint8_t b16, uint8_t b32, unsigned per_item,
               uint32_t *n)
{
    uint64_t v;
    uint8_t b;

    if (r->err || r->p >= r->end)
        return fail(r);
    b = *r->p++;
    if (b >= fix_lo && b <= fix_lo + 15)
        v = b - fix_lo;
    else if (b == b16) {
        if (read_be(r, 2, &v))
            return -1;
    } else if (b == b32) {
        if (read_be(r, 4, &v))
            return -1;
    } else
        return fail(r);
    if (v * per_item > smq_mpr_left(r))
        return fail(r);
    *n = (uint32_t)v;
    return 0;
}

int
smq_mpr_array_slow(struct smq_mpr *r, uint32_t *n)
{
    return read_container(r, 0x90, 0xdc, 0xdd, 1, n);
}

int
smq_mpr_map(struct smq_mpr *r, uint32_t *n)
{
    return read_container(r, 0x80, 0xde, 0xdf, 2, n);
}

int
smq_mpr_uint_slow(struct smq_mpr *r, uint64_t *v)
{
    uint64_t x;
    uint8_t b;

    if (r->err || r->p >= r->end)
        return fail(r);
    b = *r->p;
    if (b <= 0x7f) {
        r->p++;
        *v = b;
        return 0;
    }
    if (b >= 0xcc && b <= 0xcf) {
        r->p++;
        return read_be(r, 1u << (b - 0xcc), v);
    }
    if (b >= 0xd0 && b <= 0xd3) { /* signed encodings of non-negative values are accepted */
        unsigned n = 1u << (b - 0xd0);
        r->p++;
        if (read_be(r, n, &x))
            return -1;
        if (x >> (n * 8 - 1))
            return fail(r);
        *v = x;
        return 0;
    }
    return fail(r);
}

int
smq_mpr_bool(struct smq_mpr *r, int *v)
{
    if (r->err || r->p >= r->end || (*r->p != 0xc2 && *r->p != 0xc3))
        return fail(r);
    *v = *r->p++ == 0xc3;
    return 0;
}

int
smq_mpr_nil(struct smq_mpr *r)
{
    if (r->err || r->p >= r->end || *r->p != 0xc0)
        return fail(r);
    r->p++;
    return 0;
}

/* Consume len bytes as a view. */
static int
take(struct smq_mpr *r, uint64_t len, const uint8_t **out, uint32_t *out_len)
{
    if (len > smq_mpr_left(r))
        return fail(r);
    *out = r->p;
    *out_len = (uint32_t)len;
    r->p += len;
    return 0;
}

int
smq_mpr_str(struct smq_mpr *r, const char **s, uint32_t *len)
{
    uint64_t n;
    uint8_t b;

    if (r->err || r->p >= r->end)
        return fail(r);
    b = *r->p++;
    if (b >= 0xa0 && b <= 0xbf)
        n = b - 0xa0;
    else if (b >= 0xd9 && b <= 0xdb) {
        if (read_be(r, 1u << (b - 0xd9), &n))
            return -1;
    } else
        return fail(r);
    return take(r, n, (const uint8_t **)s, len);
}

int
smq_mpr_bin(struct smq_mpr *r, const uint8_t **bp, uint32_t *len)
{
    uint64_t n;
    uint8_t b;

    if (r->err || r->p >= r->end)
        return fail(r);
    b = *r->p++;
    if (b < 0xc4 || b > 0xc6)
        return fail(r);
    if (read_be(r, 1u << (b - 0xc4), &n))
        return -1;
    return take(r, n, bp, len);
}

/* Skip the body of an ext value whose type byte is b (already consumed). */
static int
skip_ext(struct smq_mpr *r, uint8_t b)
{
    uint64_t n;
    const uint8_t *v;
    uint32_t vl;

    if (b >= 0xd4 && b <= 0xd8)
        n = 1u << (b - 0xd4);
    else if (read_be(r, 1u << (b - 0xc7), &n))
        return -1;
    return take(r, n + 1, &v, &vl); /* +1: the ext type byte */
}

int
smq_mpr_skip(struct smq_mpr *r, int max_depth) // NOLINT(misc-no-recursion): max_depth bounds it
{
    uint32_t n;
    uint64_t u;
    const uint8_t *v;
    uint32_t vl;
    enum smq_mp_type t = smq_mpr_peek(r);

    switch (t) {
    case SMQ_MP_NIL:
    case SMQ_MP_BOOL:
        r->p++;
        return 0;
    case SMQ_MP_UINT:
    case SMQ_MP_NINT:
        if (*r->p >= 0xe0) {
            r->p++;
            return 0;
        }
        if (*r->p >= 0xd0) {
            unsigned w = 1u << (*r->p - 0xd0);
            r->p++;
            return read_be(r, w, &u);
        }
        return smq_mpr_uint(r, &u);
    case SMQ_MP_FLOAT:
        return read_be(r, *r->p++ == 0xca ? 4 : 8, &u);
    case SMQ_MP_STR:
        return smq_mpr_str(r, (const char **)&v, &vl);
    case SMQ_MP_BIN:
        return smq_mpr_bin(r, &v, &vl);
    case SMQ_MP_EXT:
        return skip_ext(r, *r->p++);
    case SMQ_MP_ARRAY:
    case SMQ_MP_MAP:
        if (max_depth <= 0)
            return fail(r);
        if (t == SMQ_MP_ARRAY ? smq_mpr_array(r, &n) : smq_mpr_map(r, &n))
            return -1;
        for (uint64_t i = 0; i < (uint64_t)n * (t == SMQ_MP_MAP ? 2 : 1); i++)
            if (smq_mpr_skip(r, max_depth - 1))
                return -1;
        return 0;
    default:
        return fail(r);
    }
}

size_t
smq_mp_uint_size(uint64_t v)
{
    if (v < 128)
        return 1;
    if (v < 256)
        return 2;
    if (v < 65536)
        return 3;
    if (v <= UINT32_MAX)
        return 5;
    return 9;
}

size_t
smq_mp_array_hdr_size(uint32_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

size_t
smq_mp_map_hdr_size(uint32_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

size_t
smq_mp_bin_hdr_size(uint32_t n)
{
    return n < 256 ? 2 : n < 65536 ? 3 : 5;
}

size_t
smq_mp_str_hdr_size(uint32_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}
