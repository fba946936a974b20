/* SPDX-License-Identifier: MIT */
/* Request header, queue names and the bounded packer buffer; all O(length of input). */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes allowed in queue names: A-Z a-z 0-9 . _ : - */
static const uint8_t name_ok[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

int
smq_name_valid(const char *s, size_t len)
{
    unsigned ok = 1;

    if (len == 0 || len > SMQ_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        ok &= name_ok[(unsigned char)s[i]];
    return (int)ok;
}

int
smq_read_header(struct smq_mpr *r, uint64_t *op, uint64_t *rid, uint32_t *nargs)
{
    uint32_t n;

    if (smq_mpr_array(r, &n) || n < 2)
        return -1;
    if (smq_mpr_uint(r, op) || smq_mpr_uint(r, rid))
        return -1;
    *nargs = n - 2;
    return 0;
}

int
smq_lbuf_write(void *data, const char *buf, size_t len)
{
    struct smq_lbuf *b = data;

    if (b->overflow || len > b->cap - b->len) {
        b->overflow = 1;
        return -1;
    }
    memcpy(b->p + b->len, buf, len);
    b->len += len;
    return 0;
}

int
smq_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1ull << 10},
                 {"kib", 1ull << 10},
                 {"kb", 1000ull},
                 {"m", 1ull << 20},
                 {"mib", 1ull << 20},
                 {"mb", 1000000ull},
                 {"g", 1ull << 30},
                 {"gib", 1ull << 30},
                 {"gb", 1000000000ull},
                 {"t", 1ull << 40},
                 {"tib", 1ull << 40},
                 {"tb", 1000000000000ull}};
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return -1;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}
