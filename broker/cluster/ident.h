/* SPDX-License-Identifier: MIT */
/* Whose a cluster broker's data directory is. A Raft log written as node 2 of one cluster
 * and read as node 3, or with another number of partitions, would be taken as the truth by
 * its group: the worst kind of data loss, silent. So the directory records, on the first
 * start, in DIR/CLUSTER:
 *
 *   slabmq-cluster 1
 *   cluster NAME
 *   digest HEX16        (cfile.h: the cluster file's meaning)
 *   node ID
 *   partitions P
 *   replicas R
 *
 * and every later start compares them with the cluster file and --node, and refuses with a
 * message naming the directory, the field, both values and what to do, changing nothing on
 * disk. A directory holding a single-node broker's store (slabmq.db) is refused as well; the
 * single-node store refuses a directory with a CLUSTER file (store.c). */
#ifndef SLABMQ_BROKER_CLUSTER_IDENT_H
#define SLABMQ_BROKER_CLUSTER_IDENT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cfile.h"

#define IDENT_FILE "CLUSTER"

/* Check dir against the cluster file and node id, writing the identity (fsynced, with the
 * directory) when dir has none and holds nothing else of a broker. 0, or -1 with err set. */
int ident_check(const char *dir, const struct cfile *cf, uint32_t node, char *err,
                size_t errlen);

#endif /* SLABMQ_BROKER_CLUSTER_IDENT_H */
