/* SPDX-License-Identifier: MIT */
/* The broker's statistics in the Prometheus text exposition format, version 0.0.4, for the
 * HTTP endpoint /metrics (http.c); docs/metrics.md lists every metric. Read-only: walks the
 * queues and the slab classes, O(queues * families + classes), no allocation beyond the
 * output buffer. */
#ifndef SLABMQ_BROKER_NET_METRICS_H
#define SLABMQ_BROKER_NET_METRICS_H

struct evbuffer;
struct server;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Append the whole exposition to out. Returns 0, or -1 if out could not grow. */
int metrics_write(struct evbuffer *out, const struct server *s);

#endif /* SLABMQ_BROKER_NET_METRICS_H */
