/* SPDX-License-Identifier: MIT */
/* Request header, queue names and the bounded packer buffer; all O(length of input). */
#include "codec.h"

#include <string.h>

int
smq_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > SMQ_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                 || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok)
            return 0;
    }
    return 1;
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
