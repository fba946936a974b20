/* SPDX-License-Identifier: MIT */
/* The static cluster file (slabmqd --cluster FILE --node ID): the brokers of a cluster, the
 * number of partitions and of replicas. The same file on every broker; its digest goes into
 * every Raft connection's preamble (cluster/rnet.h) and the data directory's identity
 * (cluster/ident.h), so a broker started with another file is refused, not half-joined.
 *
 *   # comments and blank lines are ignored
 *   cluster prod-eu1          # the cluster's name: 1-63 of A-Z a-z 0-9 . _ -
 *   partitions 6              # P, 1-1024, fixed when the cluster is made (default 6)
 *   replicas 3                # R: 1, 3 or 5, at most the number of nodes (default 3)
 *   node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481
 *   node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481
 *   node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481
 *
 * Node ids are 1 .. 65535, each once; addresses are IPv4 "a.b.c.d:port" (port 1-65535), each
 * used once in the file. The digest is of the file's meaning, not its bytes: the lines
 * above written out in one canonical form (nodes by id), FNV-1a 64; so comments, spacing
 * and the order of the lines do not count, anything else does. */
#ifndef SLABMQ_BROKER_CLUSTER_CFILE_H
#define SLABMQ_BROKER_CLUSTER_CFILE_H

#include <stddef.h>
#include <stdint.h>

#define CFILE_NAME_MAX 63
#define CFILE_ADDR_MAX 24  /* "255.255.255.255:65535" and the NUL */
#define CFILE_MAX_NODES 64
#define CFILE_MAX_BYTES (64 * 1024)
#define CFILE_DEFAULT_PARTITIONS 6
#define CFILE_DEFAULT_REPLICAS 3

struct cfile_node {
    uint32_t id;
    char client[CFILE_ADDR_MAX]; /* where clients connect */
    char raft[CFILE_ADDR_MAX];   /* where the other brokers' Raft traffic comes in */
};

struct cfile {
    char name[CFILE_NAME_MAX + 1];
    uint32_t partitions;
    uint32_t replicas;
    unsigned nnodes;
    struct cfile_node nodes[CFILE_MAX_NODES]; /* by id, rising */
    uint64_t digest;
};

/* Parse len bytes of a cluster file named path (for messages). 0, or -1 with err set to
 * "PATH:LINE: what is wrong" (or "PATH: ..." for what no line shows, such as a missing
 * node). */
int cfile_parse(const char *text, size_t len, const char *path, struct cfile *cf, char *err,
                size_t errlen);

/* Read and parse the file at path (at most CFILE_MAX_BYTES). As cfile_parse(). */
int cfile_load(const char *path, struct cfile *cf, char *err, size_t errlen);

/* The node with this id, or NULL. */
const struct cfile_node *cfile_node(const struct cfile *cf, uint32_t id);

#endif /* SLABMQ_BROKER_CLUSTER_CFILE_H */
