/* SPDX-License-Identifier: MIT */
/* Fuzz target "frame": the frame decoder and the msgpack cursor that reads every body.
 *
 * Input: one byte choosing the maximum body length (so that TOO_BIG is reachable with small
 * inputs), then a byte stream split into frames by smq_frame_decode exactly as the broker and
 * the client split theirs. Checked:
 *   - every outcome of smq_frame_decode against the 4-byte header it was given;
 *   - each body through the request-header reader the broker uses (smq_read_header);
 *   - differentially against msgpack-c: whatever the cursor accepts as one whole value,
 *     msgpack_unpack must accept too, with the same bytes consumed and the same values (types,
 *     integers, str and bin contents, container sizes), and each typed reader must accept
 *     exactly the types it is documented to take. msgpack-c is only called on bodies the
 *     cursor accepted, because on others it may allocate from declared counts (issue #1013);
 *     the cursor bounds every count by the bytes left, so those calls stay small. */
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "frame.h"
#include "fuzz.h"
#include "mpread.h"

#define MAX_DEPTH 16 /* below msgpack-c's own nesting limit of 32 */

/* smq_name_valid's rule, written out the slow way. */
static int
name_valid_ref(const char *s, size_t len)
{
    if (len == 0 || len > SMQ_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
              || ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Every typed reader on a copy of r: only those for o's type may succeed. */
static void
check_readers(const struct smq_mpr *r, const msgpack_object *o)
{
    struct smq_mpr t;
    uint64_t u;
    int b;
    const char *s;
    const uint8_t *bin;
    uint32_t n;

    t = *r;
    FUZZ_CHECK((smq_mpr_uint(&t, &u) == 0) == (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER));
    t = *r;
    FUZZ_CHECK((smq_mpr_bool(&t, &b) == 0) == (o->type == MSGPACK_OBJECT_BOOLEAN));
    t = *r;
    FUZZ_CHECK((smq_mpr_nil(&t) == 0) == (o->type == MSGPACK_OBJECT_NIL));
    t = *r;
    FUZZ_CHECK((smq_mpr_str(&t, &s, &n) == 0) == (o->type == MSGPACK_OBJECT_STR));
    t = *r;
    FUZZ_CHECK((smq_mpr_bin(&t, &bin, &n) == 0) == (o->type == MSGPACK_OBJECT_BIN));
    t = *r;
    FUZZ_CHECK((smq_mpr_array(&t, &n) == 0) == (o->type == MSGPACK_OBJECT_ARRAY));
    t = *r;
    FUZZ_CHECK((smq_mpr_map(&t, &n) == 0) == (o->type == MSGPACK_OBJECT_MAP));
}

/* Read the value at r with the cursor and compare it with msgpack-c's object o. */
static void
compare(struct smq_mpr *r, const msgpack_object *o)
{
    const uint8_t *start = r->p;
    uint64_t u;
    int b;
    const char *s;
    const uint8_t *bin;
    uint32_t n;

    check_readers(r, o);
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        FUZZ_CHECK(smq_mpr_uint(r, &u) == 0 && u == o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_NINT && smq_mpr_skip(r, 0) == 0);
        break;
    case MSGPACK_OBJECT_NIL:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_NIL && smq_mpr_nil(r) == 0);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        FUZZ_CHECK(smq_mpr_bool(r, &b) == 0 && b == (int)o->via.boolean);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_FLOAT && smq_mpr_skip(r, 0) == 0);
        break;
    case MSGPACK_OBJECT_STR:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_STR && smq_mpr_str(r, &s, &n) == 0);
        FUZZ_CHECK(n == o->via.str.size && (n == 0 || memcmp(s, o->via.str.ptr, n) == 0));
        FUZZ_CHECK(smq_name_valid(s, n) == name_valid_ref(s, n));
        break;
    case MSGPACK_OBJECT_BIN:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_BIN && smq_mpr_bin(r, &bin, &n) == 0);
        FUZZ_CHECK(n == o->via.bin.size && (n == 0 || memcmp(bin, o->via.bin.ptr, n) == 0));
        break;
    case MSGPACK_OBJECT_EXT:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_EXT && smq_mpr_skip(r, 0) == 0);
        break;
    case MSGPACK_OBJECT_ARRAY:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_ARRAY && smq_mpr_array(r, &n) == 0);
        FUZZ_CHECK(n == o->via.array.size);
        for (uint32_t i = 0; i < n; i++)
            compare(r, &o->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        FUZZ_CHECK(smq_mpr_peek(r) == SMQ_MP_MAP && smq_mpr_map(r, &n) == 0);
        FUZZ_CHECK(n == o->via.map.size);
        for (uint32_t i = 0; i < n; i++) {
            compare(r, &o->via.map.ptr[i].key);
            compare(r, &o->via.map.ptr[i].val);
        }
        break;
    default:
        FUZZ_CHECK(!"msgpack-c returned an unknown type");
    }
    FUZZ_CHECK(!r->err && r->p > start);
}

/* The request header as the broker reads it must agree with the whole-body view. */
static void
check_header(const uint8_t *body, uint32_t len, const msgpack_object *o)
{
    struct smq_mpr r;
    uint64_t op;
    uint64_t rid;
    uint32_t nargs;
    int ok;

    smq_mpr_init(&r, body, len);
    ok = smq_read_header(&r, &op, &rid, &nargs) == 0;
    FUZZ_CHECK(ok == (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size >= 2
                      && o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                      && o->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER));
    if (ok) {
        FUZZ_CHECK(op == o->via.array.ptr[0].via.u64 && rid == o->via.array.ptr[1].via.u64);
        FUZZ_CHECK(nargs == o->via.array.size - 2);
    }
}

static void
check_body(const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return ret;

    smq_mpr_init(&r, body, len);
    if (smq_mpr_skip(&r, MAX_DEPTH) != 0 || smq_mpr_left(&r) != 0) {
        /* Rejected (or trailing bytes): the header reader must not read past the body. */
        uint64_t op;
        uint64_t rid;
        uint32_t nargs;
        smq_mpr_init(&r, body, len);
        if (smq_read_header(&r, &op, &rid, &nargs) == 0)
            FUZZ_CHECK(r.p <= body + len);
        return;
    }
    msgpack_zone_init(&zone, 4096);
    ret = msgpack_unpack((const char *)body, len, &off, &zone, &obj);
    /* msgpack-c refuses a zero-length ext body, which the cursor (never asked to read ext)
     * skips: the one known difference, and ext is never valid in a request. */
    if (ret != MSGPACK_UNPACK_SUCCESS) {
        FUZZ_CHECK(memchr(body, 0xc7, len) || memchr(body, 0xc8, len) || memchr(body, 0xc9, len));
        msgpack_zone_destroy(&zone);
        return;
    }
    FUZZ_CHECK(off == len);
    smq_mpr_init(&r, body, len);
    compare(&r, &obj);
    FUZZ_CHECK(smq_mpr_left(&r) == 0);
    check_header(body, len, &obj);
    msgpack_zone_destroy(&zone);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t maxes[4] = {8, 1024 + 64, 1049600, UINT32_MAX};
    uint32_t max_body;
    size_t off = 0;

    if (size < 1)
        return 0;
    max_body = maxes[data[0] & 3];
    data++;
    size--;
    for (;;) {
        const uint8_t *in = data + off;
        size_t left = size - off;
        const uint8_t *body = NULL;
        uint32_t blen = 0;
        size_t total = 99;
        uint32_t hdr;
        uint8_t again[4];
        enum smq_frame_result fr = smq_frame_decode(in, left, max_body, &body, &blen, &total);

        if (left < SMQ_FRAME_HEADER) {
            FUZZ_CHECK(fr == SMQ_FRAME_NEED_MORE && total == 0);
            break;
        }
        hdr = (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
        FUZZ_CHECK(blen == hdr);
        smq_frame_put_header(again, blen);
        FUZZ_CHECK(memcmp(again, in, 4) == 0);
        if (hdr == 0) {
            FUZZ_CHECK(fr == SMQ_FRAME_EMPTY && total == 0);
            break;
        }
        if (hdr > max_body) {
            FUZZ_CHECK(fr == SMQ_FRAME_TOO_BIG && total == 0);
            break;
        }
        FUZZ_CHECK(total == SMQ_FRAME_HEADER + (size_t)hdr);
        if (left < total) {
            FUZZ_CHECK(fr == SMQ_FRAME_NEED_MORE);
            break;
        }
        FUZZ_CHECK(fr == SMQ_FRAME_OK && body == in + SMQ_FRAME_HEADER);
        check_body(body, blen);
        off += total;
    }
    return 0;
}
