/* SPDX-License-Identifier: MIT */
/* The msgpack cursor reader against msgpack-c's own packer (the reference), plus the inputs
 * that make msgpack-c's unpacker allocate gigabytes, which the reader must refuse. */
#include <msgpack.h>

#include "codec.h"
#include "mpread.h"
#include "t.h"

struct packed {
    uint8_t buf[4096];
    struct smq_lbuf lb;
    msgpack_packer pk;
};

static void
packed_init(struct packed *p)
{
    p->lb = (struct smq_lbuf){p->buf, sizeof(p->buf), 0, 0};
    msgpack_packer_init(&p->pk, &p->lb, smq_lbuf_write);
}

static void
test_uints_every_width(void)
{
    static const uint64_t values[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                      (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    struct packed p;
    struct smq_mpr r;

    packed_init(&p);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        msgpack_pack_uint64(&p.pk, values[i]);
    msgpack_pack_int8(&p.pk, 5); /* a signed encoding of a non-negative value is accepted */
    smq_mpr_init(&r, p.buf, p.lb.len);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t v;
        size_t before = smq_mpr_left(&r);
        T_EQ_INT(smq_mpr_uint(&r, &v), 0);
        T_EQ_U64(v, values[i]);
        /* the size function predicts exactly what msgpack-c wrote */
        T_EQ_U64(before - smq_mpr_left(&r), smq_mp_uint_size(values[i]));
    }
    {
        uint64_t v;
        T_EQ_INT(smq_mpr_uint(&r, &v), 0);
        T_EQ_U64(v, 5);
    }
    T_EQ_INT(smq_mpr_left(&r), 0);
}

static void
test_negative_and_wrong_types_fail(void)
{
    struct packed p;
    struct smq_mpr r;
    uint64_t v;

    packed_init(&p);
    msgpack_pack_int64(&p.pk, -1);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_mpr_uint(&r, &v), -1);
    T_ASSERT(r.err);
    T_EQ_INT(smq_mpr_nil(&r), -1); /* sticky */

    packed_init(&p);
    msgpack_pack_double(&p.pk, 1.0);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_mpr_peek(&r), SMQ_MP_FLOAT);
    T_EQ_INT(smq_mpr_uint(&r, &v), -1);
}

static void
test_str_bin_views(void)
{
    struct packed p;
    struct smq_mpr r;
    const char *s;
    const uint8_t *b;
    uint32_t len;
    char big[300];

    memset(big, 'x', sizeof(big));
    packed_init(&p);
    msgpack_pack_str_with_body(&p.pk, "jobs", 4);
    msgpack_pack_str_with_body(&p.pk, big, sizeof(big)); /* str16 */
    msgpack_pack_bin_with_body(&p.pk, "\0\1\2", 3);
    msgpack_pack_bin_with_body(&p.pk, "", 0);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_mpr_str(&r, &s, &len), 0);
    T_EQ_INT(len, 4);
    T_EQ_MEM(s, "jobs", 4);
    T_ASSERT(s == (const char *)p.buf + 1); /* a view, not a copy */
    T_EQ_INT(smq_mpr_str(&r, &s, &len), 0);
    T_EQ_INT(len, 300);
    T_EQ_INT(smq_mpr_bin(&r, &b, &len), 0);
    T_EQ_INT(len, 3);
    T_EQ_MEM(b, "\0\1\2", 3);
    T_EQ_INT(smq_mpr_bin(&r, &b, &len), 0);
    T_EQ_INT(len, 0);
    T_EQ_INT(smq_mpr_left(&r), 0);
}

static void
test_header_sizes_match_msgpack_c(void)
{
    static const uint32_t counts[] = {0, 15, 16, 31, 32, 255, 256, 65535, 65536};

    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct packed p;
        packed_init(&p);
        msgpack_pack_array(&p.pk, counts[i]);
        T_EQ_INT(p.lb.len, smq_mp_array_hdr_size(counts[i]));
        packed_init(&p);
        msgpack_pack_map(&p.pk, counts[i]);
        T_EQ_INT(p.lb.len, smq_mp_map_hdr_size(counts[i]));
        packed_init(&p);
        msgpack_pack_bin(&p.pk, counts[i]);
        T_EQ_INT(p.lb.len, smq_mp_bin_hdr_size(counts[i]));
        packed_init(&p);
        msgpack_pack_str(&p.pk, counts[i]);
        T_EQ_INT(p.lb.len, smq_mp_str_hdr_size(counts[i]));
    }
}

/* Inputs that ask msgpack-c for gigabytes (msgpack-c issue #1013) are refused from the count
 * alone, before anything is read. */
static void
test_allocation_bombs_refused(void)
{
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0x10, 0x00, 0x00, 0x00};
    static const uint8_t nested[] = {0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0x24};
    struct smq_mpr r;
    uint32_t n;

    smq_mpr_init(&r, arr32, sizeof(arr32));
    T_EQ_INT(smq_mpr_array(&r, &n), -1);
    smq_mpr_init(&r, map32, sizeof(map32));
    T_EQ_INT(smq_mpr_map(&r, &n), -1);
    smq_mpr_init(&r, nested, sizeof(nested));
    T_EQ_INT(smq_mpr_skip(&r, 8), -1);
}

static void
test_skip_and_depth(void)
{
    uint8_t deep[64];
    struct smq_mpr r;
    struct packed p;

    memset(deep, 0x91, 40);
    deep[40] = 0xc0;
    smq_mpr_init(&r, deep, 41);
    T_EQ_INT(smq_mpr_skip(&r, 8), -1); /* 40 levels > 8 */
    smq_mpr_init(&r, deep + 35, 6);
    T_EQ_INT(smq_mpr_skip(&r, 8), 0);
    T_EQ_INT(smq_mpr_left(&r), 0);

    packed_init(&p);
    msgpack_pack_map(&p.pk, 2);
    msgpack_pack_str_with_body(&p.pk, "a", 1);
    msgpack_pack_double(&p.pk, 2.5);
    msgpack_pack_str_with_body(&p.pk, "b", 1);
    msgpack_pack_ext(&p.pk, 2, 7);
    msgpack_pack_ext_body(&p.pk, "zz", 2);
    msgpack_pack_int32(&p.pk, -100000);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_mpr_skip(&r, 4), 0);
    T_EQ_INT(smq_mpr_skip(&r, 4), 0);
    T_EQ_INT(smq_mpr_left(&r), 0);
}

static void
test_truncated_and_c1(void)
{
    static const uint8_t c1[] = {0xc1};
    static const uint8_t short_str[] = {0xa5, 'a', 'b'};
    static const uint8_t short_u32[] = {0xce, 0, 0};
    struct smq_mpr r;
    const char *s;
    uint32_t len;
    uint64_t v;

    smq_mpr_init(&r, c1, 1);
    T_EQ_INT(smq_mpr_peek(&r), SMQ_MP_INVALID);
    T_EQ_INT(smq_mpr_skip(&r, 4), -1);
    smq_mpr_init(&r, short_str, sizeof(short_str));
    T_EQ_INT(smq_mpr_str(&r, &s, &len), -1);
    smq_mpr_init(&r, short_u32, sizeof(short_u32));
    T_EQ_INT(smq_mpr_uint(&r, &v), -1);
    smq_mpr_init(&r, NULL, 0);
    T_EQ_INT(smq_mpr_uint(&r, &v), -1);
}

static void
test_names_and_header(void)
{
    struct packed p;
    struct smq_mpr r;
    uint64_t op;
    uint64_t rid;
    uint32_t nargs;
    char long_name[SMQ_NAME_MAX + 1];

    T_ASSERT(smq_name_valid("jobs.high-prio:v1_x", 19));
    T_ASSERT(!smq_name_valid("", 0));
    T_ASSERT(!smq_name_valid("a b", 3));
    T_ASSERT(!smq_name_valid("a/b", 3));
    memset(long_name, 'a', sizeof(long_name));
    T_ASSERT(smq_name_valid(long_name, SMQ_NAME_MAX));
    T_ASSERT(!smq_name_valid(long_name, SMQ_NAME_MAX + 1));

    packed_init(&p);
    msgpack_pack_array(&p.pk, 3);
    msgpack_pack_uint8(&p.pk, 8);
    msgpack_pack_uint64(&p.pk, 1ull << 40);
    msgpack_pack_nil(&p.pk);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_read_header(&r, &op, &rid, &nargs), 0);
    T_EQ_U64(op, 8);
    T_EQ_U64(rid, 1ull << 40);
    T_EQ_INT(nargs, 1);

    packed_init(&p);
    msgpack_pack_array(&p.pk, 1);
    msgpack_pack_uint8(&p.pk, 8);
    smq_mpr_init(&r, p.buf, p.lb.len);
    T_EQ_INT(smq_read_header(&r, &op, &rid, &nargs), -1);
}

static const struct t_case cases[] = {
    T_CASE(test_uints_every_width),
    T_CASE(test_negative_and_wrong_types_fail),
    T_CASE(test_str_bin_views),
    T_CASE(test_header_sizes_match_msgpack_c),
    T_CASE(test_allocation_bombs_refused),
    T_CASE(test_skip_and_depth),
    T_CASE(test_truncated_and_c1),
    T_CASE(test_names_and_header),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
