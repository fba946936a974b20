/* SPDX-License-Identifier: MIT */
/* Shared pieces of request and reply bodies: the request header, queue-name rules and a
 * msgpack-c packer over a bounded linear buffer. Requests are msgpack arrays
 * [op, request_id, args...]; replies are [op, request_id, status, results...]. */
#ifndef SLABMQ_PROTOCOL_CODEC_H
#define SLABMQ_PROTOCOL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "proto_limits.h"
#include "mpread.h"

/* 1 if s[0..len) is a queue name (proto_limits.h: SMQ_NAME_MAX, SMQ_NAME_RULE), else 0. */
int smq_name_valid(const char *s, size_t len);

/* Parse a size as slabmqd's flags and the CLI take it: decimal digits and an optional unit,
 * any case: B; K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024); KB, MB, GB, TB (powers of 1000).
 * Returns 0, or -1 if malformed or over UINT64_MAX. */
int smq_parse_size(const char *s, uint64_t *out);

/* Read [op, request_id, ...] from the front of a body. On success *nargs is the number of
 * arguments that follow. Returns 0, or -1 when the body does not start that way. */
int smq_read_header(struct smq_mpr *r, uint64_t *op, uint64_t *rid, uint32_t *nargs);

/* A bounded linear output buffer for msgpack_packer. Writes past cap fail and set
 * 'overflow'; the caller must then discard the buffer (msgpack-c may have written part of a
 * value before failing). */
struct smq_lbuf {
    uint8_t *p;   /* storage, borrowed */
    size_t cap;   /* bytes available at p */
    size_t len;   /* bytes written */
    int overflow; /* set once a write did not fit */
};

/* msgpack_packer_write callback; data is a struct smq_lbuf. */
int smq_lbuf_write(void *data, const char *buf, size_t len);

#endif /* SLABMQ_PROTOCOL_CODEC_H */
