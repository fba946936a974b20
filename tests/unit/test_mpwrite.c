/* SPDX-License-Identifier: MIT */
/* The hot-path msgpack writers produce exactly msgpack-c's bytes, at every width boundary. */
#include <msgpack.h>

#include "codec.h"
#include "mpwrite.h"
#include "t.h"

static size_t
ref_pack(uint8_t *buf, size_t cap, int kind, uint64_t v)
{
    struct smq_lbuf lb = {buf, cap, 0, 0};
    msgpack_packer pk;

    msgpack_packer_init(&pk, &lb, smq_lbuf_write);
    if (kind == 0)
        msgpack_pack_uint64(&pk, v);
    else if (kind == 1)
        msgpack_pack_array(&pk, (size_t)v);
    else if (kind == 2)
        msgpack_pack_bin(&pk, (size_t)v);
    else
        msgpack_pack_str(&pk, (size_t)v);
    return lb.len;
}

static void
test_same_bytes_as_msgpack_c(void)
{
    static const uint64_t values[] = {0, 1, 15, 16, 31, 32, 127, 128, 255, 256, 65535, 65536,
                                      UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX};

    for (int kind = 0; kind < 4; kind++) {
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            uint8_t want[16];
            uint8_t got[16];
            uint8_t *end;
            size_t n;
            if (kind > 0 && values[i] > UINT32_MAX)
                continue;
            n = ref_pack(want, sizeof(want), kind, values[i]);
            if (kind == 0)
                end = smq_mpw_uint(got, values[i]);
            else if (kind == 1)
                end = smq_mpw_array(got, (uint32_t)values[i]);
            else if (kind == 2)
                end = smq_mpw_bin(got, (uint32_t)values[i]);
            else
                end = smq_mpw_str(got, (uint32_t)values[i]);
            T_EQ_INT((size_t)(end - got), n);
            T_ASSERT(n <= SMQ_MPW_MAX_HDR);
            T_EQ_MEM(got, want, n);
        }
    }
}

static const struct t_case cases[] = {
    T_CASE(test_same_bytes_as_msgpack_c),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
