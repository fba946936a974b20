/* SPDX-License-Identifier: MIT */
/* Which partition a queue lives in: queue name -> partition key -> slot -> partition.
 *
 * The key is the name without a trailing ".dlq", so a queue and its default dead-letter
 * queue land together; then, if what is left contains "::", only what comes before the
 * first "::" (so "tenant7::jobs" and "tenant7::mail" land together, the way a Redis hash
 * tag does; ':' is in the queue name alphabet, '{' is not). The slot is CRC-16/XMODEM of
 * the key (Redis Cluster's CRC16: poly 0x1021, init 0) modulo SLOT_COUNT, and slots are cut
 * into P ranges as equal as integers allow: partition = slot * P / SLOT_COUNT. Clients may
 * compute it the same way (docs/cluster.md) but need not: a broker redirects.
 * Costs: one pass over the name, table-free CRC (8 shifts a byte; names are short). */
#ifndef SLABMQ_BROKER_CLUSTER_SLOT_H
#define SLABMQ_BROKER_CLUSTER_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define SLOT_COUNT 1024u
#define SLOT_MAX_PARTITIONS SLOT_COUNT

/* CRC-16/XMODEM of n bytes. */
uint16_t slot_crc16(const void *data, size_t n);

/* The partition key of a queue name of n bytes: its start is the name's, *keylen its
 * length. */
void slot_key(const char *name, size_t n, size_t *keylen);

/* The slot of a queue name (0 .. SLOT_COUNT - 1). */
uint32_t slot_of(const char *name, size_t n);

/* The partition of a slot among partitions (1 .. SLOT_MAX_PARTITIONS). */
uint32_t slot_partition(uint32_t slot, uint32_t partitions);

#endif /* SLABMQ_BROKER_CLUSTER_SLOT_H */
