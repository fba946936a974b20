/* SPDX-License-Identifier: MIT */
/* Writing the few msgpack headers of hot-path replies straight into a buffer.
 *
 * msgpack-c packs through a write callback per value, which costs an indirect call and a
 * bounds check per byte run; a reply to PUBLISH or ACK is a handful of bytes, so the broker
 * spent more instructions packing it than storing the message (callgrind, docs/performance.md).
 * These inline writers emit exactly the bytes msgpack-c would (smallest encoding, the same
 * choices: tests/unit/test_mpwrite.c compares them) into space the caller has reserved:
 * at most SMQ_MPW_MAX_HDR bytes each. Everything else is still packed by msgpack-c. */
#ifndef SLABMQ_PROTOCOL_MPWRITE_H
#define SLABMQ_PROTOCOL_MPWRITE_H

#include <stdint.h>

#define SMQ_MPW_MAX_HDR 9 /* the longest header or integer: 0xcf + 8 bytes */

static inline uint8_t *
smq_mpw_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

/* A non-negative integer, as msgpack_pack_uint64 writes it. */
static inline uint8_t *
smq_mpw_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p = (uint8_t)v;
        return p + 1;
    }
    if (v < 256) {
        *p = 0xcc;
        return smq_mpw_be(p + 1, v, 1);
    }
    if (v < 65536) {
        *p = 0xcd;
        return smq_mpw_be(p + 1, v, 2);
    }
    if (v <= UINT32_MAX) {
        *p = 0xce;
        return smq_mpw_be(p + 1, v, 4);
    }
    *p = 0xcf;
    return smq_mpw_be(p + 1, v, 8);
}

/* Array header for n elements. */
static inline uint8_t *
smq_mpw_array(uint8_t *p, uint32_t n)
{
    if (n < 16) {
        *p = (uint8_t)(0x90 | n);
        return p + 1;
    }
    if (n < 65536) {
        *p = 0xdc;
        return smq_mpw_be(p + 1, n, 2);
    }
    *p = 0xdd;
    return smq_mpw_be(p + 1, n, 4);
}

/* bin header for n bytes (the bytes follow). */
static inline uint8_t *
smq_mpw_bin(uint8_t *p, uint32_t n)
{
    if (n < 256) {
        *p = 0xc4;
        return smq_mpw_be(p + 1, n, 1);
    }
    if (n < 65536) {
        *p = 0xc5;
        return smq_mpw_be(p + 1, n, 2);
    }
    *p = 0xc6;
    return smq_mpw_be(p + 1, n, 4);
}

/* str header for n bytes (the bytes follow), with msgpack-c's str8 for 32..255. */
static inline uint8_t *
smq_mpw_str(uint8_t *p, uint32_t n)
{
    if (n < 32) {
        *p = (uint8_t)(0xa0 | n);
        return p + 1;
    }
    if (n < 256) {
        *p = 0xd9;
        return smq_mpw_be(p + 1, n, 1);
    }
    if (n < 65536) {
        *p = 0xda;
        return smq_mpw_be(p + 1, n, 2);
    }
    *p = 0xdb;
    return smq_mpw_be(p + 1, n, 4);
}

#endif /* SLABMQ_PROTOCOL_MPWRITE_H */
