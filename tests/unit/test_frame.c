/* SPDX-License-Identifier: MIT */
/* Frame codec: every outcome of smq_frame_decode, inputs placed against a PROT_NONE page so
 * an over-read crashes the test instead of passing silently. */
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"
#include "t.h"

/* Copy n bytes so they end exactly at an inaccessible page. */
static uint8_t *
guarded(const void *src, size_t n)
{
    static uint8_t *region;
    long page = sysconf(_SC_PAGESIZE);

    if (!region) {
        region = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        T_ASSERT(region != MAP_FAILED);
        T_ASSERT(mprotect(region + page, (size_t)page, PROT_NONE) == 0);
    }
    T_ASSERT(n <= (size_t)page);
    memcpy(region + page - n, src, n);
    return region + page - n;
}

static void
test_header_roundtrip(void)
{
    uint8_t h[4];

    smq_frame_put_header(h, 0x01020304);
    T_EQ_INT(h[0], 1);
    T_EQ_INT(h[3], 4);
    smq_frame_put_header(h, 0xFFFFFFFFu);
    T_EQ_INT(h[0], 0xff);
}

static void
test_need_more(void)
{
    const uint8_t *body;
    uint32_t len;
    size_t total;
    static const uint8_t partial_hdr[] = {0, 0};
    static const uint8_t partial_body[] = {0, 0, 0, 5, 0x91, 0x01};

    T_EQ_INT(smq_frame_decode(guarded(partial_hdr, 2), 2, 100, &body, &len, &total),
             SMQ_FRAME_NEED_MORE);
    T_EQ_INT(total, 0);
    T_EQ_INT(smq_frame_decode(guarded(partial_body, 6), 6, 100, &body, &len, &total),
             SMQ_FRAME_NEED_MORE);
    T_EQ_INT(total, 9); /* the whole frame is known once the header is */
}

static void
test_ok_and_consumed(void)
{
    static const uint8_t two[] = {0, 0, 0, 2, 0x91, 0x01, 0, 0, 0, 1, 0xc0};
    const uint8_t *in = guarded(two, sizeof(two));
    const uint8_t *body;
    uint32_t len;
    size_t total;

    T_EQ_INT(smq_frame_decode(in, sizeof(two), 100, &body, &len, &total), SMQ_FRAME_OK);
    T_EQ_INT(len, 2);
    T_EQ_INT(total, 6);
    T_ASSERT(body == in + 4);
    T_EQ_INT(smq_frame_decode(in + total, sizeof(two) - total, 100, &body, &len, &total),
             SMQ_FRAME_OK);
    T_EQ_INT(len, 1);
    T_EQ_INT(body[0], 0xc0);
}

static void
test_empty_and_too_big(void)
{
    static const uint8_t empty[] = {0, 0, 0, 0};
    static const uint8_t big[] = {0, 0, 0, 101};
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t exact[] = {0, 0, 0, 100};
    const uint8_t *body;
    uint32_t len;
    size_t total;

    T_EQ_INT(smq_frame_decode(guarded(empty, 4), 4, 100, &body, &len, &total), SMQ_FRAME_EMPTY);
    T_EQ_INT(smq_frame_decode(guarded(big, 4), 4, 100, &body, &len, &total), SMQ_FRAME_TOO_BIG);
    T_EQ_INT(len, 101);
    T_EQ_INT(smq_frame_decode(guarded(huge, 4), 4, 100, &body, &len, &total),
             SMQ_FRAME_TOO_BIG);
    T_EQ_U64(len, 0xFFFFFFFFu);
    /* exactly the maximum is allowed: decided from the header alone */
    T_EQ_INT(smq_frame_decode(guarded(exact, 4), 4, 100, &body, &len, &total),
             SMQ_FRAME_NEED_MORE);
    T_EQ_INT(total, 104);
}

static const struct t_case cases[] = {
    T_CASE(test_header_roundtrip),
    T_CASE(test_need_more),
    T_CASE(test_ok_and_consumed),
    T_CASE(test_empty_and_too_big),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
