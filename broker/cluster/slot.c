/* SPDX-License-Identifier: MIT */
/* Queue name to partition; see slot.h. */
#include "cluster/slot.h"

#include <string.h>

#define DLQ_SUFFIX ".dlq"
#define DLQ_SUFFIX_LEN 4

uint16_t
slot_crc16(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

void
slot_key(const char *name, size_t n, size_t *keylen)
{
    /* "x.dlq" -> "x"; ".dlq" alone is a name of its own, not a dead-letter queue of "" */
    if (n > DLQ_SUFFIX_LEN && memcmp(name + n - DLQ_SUFFIX_LEN, DLQ_SUFFIX, DLQ_SUFFIX_LEN) == 0)
        n -= DLQ_SUFFIX_LEN;
    for (size_t i = 0; i + 1 < n; i++) {
        if (name[i] == ':' && name[i + 1] == ':' && i > 0) {
            n = i; /* "::x" keeps its whole name: an empty key would gather every such queue */
            break;
        }
    }
    *keylen = n;
}

uint32_t
slot_of(const char *name, size_t n)
{
    size_t k;

    slot_key(name, n, &k);
    return slot_crc16(name, k) % SLOT_COUNT;
}

uint32_t
slot_partition(uint32_t slot, uint32_t partitions)
{
    return (uint32_t)((uint64_t)slot * partitions / SLOT_COUNT);
}
