/* SPDX-License-Identifier: MIT */
/* Raft traffic of every partition of a broker over one TCP port: a libraft transport
 * (struct raft_uv_transport) per partition, all served by one listener, the hub.
 *
 * libraft's own TCP transport (raft_uv_tcp) listens on one address per Raft group, so P
 * partitions would take P ports per broker and P entries in the cluster file. Here each
 * connection starts with a 32-byte preamble naming the cluster (the cluster file's digest,
 * cluster/cfile.h), the partition and the connecting node, so one port carries them all, and a peer
 * is checked before libraft sees a byte of it:
 *
 *   offset size  field (big-endian)
 *        0    8  magic "SMQRAFT1"
 *        8    8  cluster digest: the same cluster file on every broker
 *       16    4  partition
 *       20    4  the connecting node's id
 *       24    8  0 (reserved)
 *
 * An accepted connection whose preamble does not arrive within RNET_HANDSHAKE_MS, has
 * another magic or digest, names a node not in the table or a partition not served here,
 * or comes from an IP address other than that node's, is closed and counted (struct
 * rnet_stats); the group never sees it. What follows the preamble is libraft's own stream
 * (its messages are checksummed and bounded by libraft).
 *
 * Threads: everything runs on the uv loop given to rnet_new(). Memory: streams handed to
 * libraft are raft_malloc()ed, as libraft frees them with raft_free(). */
#ifndef SLABMQ_BROKER_CLUSTER_RNET_H
#define SLABMQ_BROKER_CLUSTER_RNET_H

#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <uv.h>

#define RNET_PREAMBLE 32
#define RNET_HANDSHAKE_MS 5000
#define RNET_ADDR_MAX 64 /* "a.b.c.d:port" and room to spare */

/* A broker of the cluster as the hub knows it: its Raft address (IPv4 "a.b.c.d:port"). */
struct rnet_node {
    raft_id id;
    char address[RNET_ADDR_MAX];
};

/* Connections refused at the preamble, by cause. */
struct rnet_stats {
    uint64_t accepted;      /* handed to a partition's group */
    uint64_t bad_preamble;  /* wrong magic, or closed or silent before 32 bytes */
    uint64_t bad_cluster;   /* another cluster file's digest */
    uint64_t bad_node;      /* a node id not in the table, or from another IP */
    uint64_t bad_partition; /* a partition not served here (yet) */
};

struct rnet;

/* A hub for node self of the n nodes (copied), on loop. NULL when out of memory or when
 * self is not among the nodes. */
struct rnet *rnet_new(uv_loop_t *loop, uint64_t digest, const struct rnet_node *nodes,
                      unsigned n, raft_id self, uint32_t partitions);

/* Fill t (struct raft_uv_transport, version 1) as partition's transport through h, for
 * raft_uv_init(). 0, or RAFT_INVALID for a partition out of range or already taken. */
int rnet_transport(struct rnet *h, uint32_t partition, struct raft_uv_transport *t);

/* Listen on self's address (or bind, "a.b.c.d:port", when not NULL: in a container the
 * address peers dial may not be one of this host's). 0 or a libuv error. */
int rnet_listen(struct rnet *h, const char *bind);

/* The listener's port (0 if not listening): for tests that listen on port 0. */
int rnet_port(const struct rnet *h);

const struct rnet_stats *rnet_stats(const struct rnet *h);

/* Stop listening and drop connections still in their preamble; cb(arg) runs on the loop
 * once every handle of the hub is closed, and the hub is freed after it. Each partition's
 * transport must have been closed (by raft_close()) first. */
void rnet_close(struct rnet *h, void (*cb)(void *arg), void *arg);

#endif /* SLABMQ_BROKER_CLUSTER_RNET_H */
