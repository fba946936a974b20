/* SPDX-License-Identifier: MIT */
/* Store internals shared by store.c (the writer) and store_recover.c (loading at start). */
#ifndef SLABMQ_BROKER_STORE_INT_H
#define SLABMQ_BROKER_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct broker;
struct queue;
struct store;

/* A durable queue's settings as stored (queue.settings): fixed-size, little-endian as the
 * machine writes it; 'version' guards the layout. */
struct store_qsettings {
    uint32_t version; /* STORE_QSETTINGS_VERSION */
    uint32_t visibility_ms;
    uint32_t backoff_ms;
    uint32_t backoff_max_ms;
    uint32_t max_deliveries;
    uint32_t dedup_window;
    uint64_t ttl_ms;
    uint64_t max_messages;
    uint64_t max_bytes;
    uint8_t overflow;
    uint8_t paused;
    uint8_t dlq_mode;
    uint8_t dlq_len;
    uint8_t confirm;    /* enum store_level: default confirmation of publishes */
    char dlq_name[200]; /* SMQ_NAME_MAX */
};
#define STORE_QSETTINGS_VERSION 1u

void store_qsettings_from(const struct queue *q, struct store_qsettings *qs);
/* Load every stored queue and message into b (the store is not attached yet, so nothing is
 * written back). 0, or -1 with the reason in err. */
int store_recover(struct broker *b, sqlite3 *db, char *err, size_t errlen);

#endif /* SLABMQ_BROKER_STORE_INT_H */
