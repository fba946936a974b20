/* SPDX-License-Identifier: MIT */
/* The queue settings of DECLARE: the one table of their names, wire keys, kinds, ranges,
 * defaults, CLI options and STATS rows.
 *
 * From it come the broker's DECLARE parser (broker/req/cmd_queue.c: key lookup, ranges and
 * error texts), the order and names of the STATS rows (broker/req/cmd_stats.c) and the keys
 * the client sends (client/api.c). What is not generated is checked: a switch over enum
 * smq_setting in the broker (parser, STATS) and the client (encoder) fails to compile
 * (-Wswitch) until a new row is wired; the store's saved settings carry a static assert on
 * SMQ_SETTING_COUNT; tests/unit/test_settings.c fails until the row's option is in the CLI's
 * declare help and the bash completion, and its STATS rows in a live broker's STATS. So a
 * new setting touches this table, the feature, and its test.
 *
 * X(ID, key, kind, min, max, default, cli option, STATS rows, doc)
 *   key      the DECLARE options map key (docs/protocol.md 6.3)
 *   kind     how the value travels: UINT (msgpack uint in [min, max]), ENUM (a str, one of
 *            its values in settings.c; min..max are their indexes), NAME (a queue name, or ""
 *            for none), BOOL
 *   default  a new queue's value: ENUM an index, NAME 0 for QUEUE.dlq; VISIBILITY's is
 *            slabmqd's --visibility-ms default, DURABLE's 1 under --durability sqlite
 *   stats    the STATS rows that show it, separated by spaces ("" for none)
 * Keep the order: STATS shows the rows in it (with other rows between, cmd_stats.c). A new
 * setting goes at the end. */
#ifndef SLABMQ_PROTOCOL_SETTINGS_H
#define SLABMQ_PROTOCOL_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "proto_limits.h"

#define SMQ_SETTINGS_MAP(X)                                                                     \
    X(VISIBILITY, "visibility_ms", UINT, 1, SMQ_VISIBILITY_MAX_MS, 30000,            \
      "--visibility", "visibility_ms", "redelivery timeout of a fetched message, ms")           \
    X(BACKOFF, "retry_backoff_ms", UINT, 0, SMQ_VISIBILITY_MAX_MS, 0, "--backoff",            \
      "retry_backoff_ms", "retry backoff base, ms; 0: redeliver at once")                       \
    X(BACKOFF_MAX, "retry_backoff_max_ms", UINT, 1, SMQ_VISIBILITY_MAX_MS, 60000,             \
      "--backoff-max", "retry_backoff_max_ms", "retry backoff ceiling, ms")                     \
    X(MAX_MESSAGES, "max_messages", UINT, 0, UINT64_MAX, 0, "--max-messages", "max_messages", \
      "most messages held; 0: no limit")                                                        \
    X(MAX_BYTES, "max_bytes", UINT, 0, UINT64_MAX, 0, "--max-bytes", "max_bytes",             \
      "most payload bytes held; 0: no limit")                                                   \
    X(OVERFLOW, "overflow", ENUM, 0, 2, 0, "--overflow",                                 \
      "overflow_drop_oldest overflow_dead_letter", "what a publish to a full queue does")       \
    X(MAX_DELIVERIES, "max_deliveries", UINT, 0, SMQ_MAX_DELIVERIES_MAX, 20,                  \
      "--max-deliveries", "max_deliveries", "deliveries before dead-lettering; 0: no limit")    \
    X(TTL, "ttl_ms", UINT, 0, SMQ_TIME_MAX_MS, 0, "--ttl", "ttl_ms",                          \
      "time to live of messages published without one, ms; 0: none")                           \
    X(DEDUP_WINDOW, "dedup_window", UINT, 0, SMQ_DEDUP_WINDOW_MAX, (1u << 20), "--dedup-window", \
      "dedup_window", "bytes of producer ids remembered; 0 or at least 1024")                   \
    X(DURABLE, "durable", BOOL, 0, 1, 0, "--durable", "durable",                         \
      "keep the queue in the store (slabmqd --durability sqlite)")                              \
    X(CONFIRM, "confirm", ENUM, 0, 2, 1, "--confirm", "confirm_level",                  \
      "how far a publish must get before it is confirmed")                                      \
    X(DEAD_LETTER, "dead_letter", NAME, 0, SMQ_NAME_MAX, 0, "--dead-letter",          \
      "dead_letter", "the queue that receives dead letters; \"\": none")

enum smq_setting_kind { SMQ_SETTING_UINT, SMQ_SETTING_ENUM, SMQ_SETTING_NAME, SMQ_SETTING_BOOL };

enum smq_setting {
#define SMQ_SETTING_ENUM_(id, key, kind, min, max, def, cli, stats, doc) SMQ_SET_##id,
    SMQ_SETTINGS_MAP(SMQ_SETTING_ENUM_)
#undef SMQ_SETTING_ENUM_
    SMQ_SETTING_COUNT
};

struct smq_setting_info {
    const char *key;            /* the DECLARE options key */
    enum smq_setting_kind kind;
    uint64_t min, max;          /* UINT: the range; ENUM: the indexes of its values */
    uint64_t def;               /* a new queue's value (see the table's comment) */
    const char *cli;            /* the slabmq declare option */
    const char *stats;          /* STATS rows, space-separated */
    const char *doc;            /* one line */
    const char *const *values;  /* ENUM: its names, index = the wire order, NULL-terminated */
};

/* Indexed by enum smq_setting. */
extern const struct smq_setting_info smq_settings[SMQ_SETTING_COUNT];

/* The setting whose key is k[0..klen), or -1. */
int smq_setting_find(const char *k, uint32_t klen);

/* The index of v[0..vlen) among the values of ENUM setting s, or -1. */
int smq_setting_value(enum smq_setting s, const char *v, uint32_t vlen);

/* The text "\"a\", \"b\" or \"c\"" of ENUM setting s's values into buf (error replies and
 * usage errors). Returns buf. */
const char *smq_setting_choices(enum smq_setting s, char *buf, size_t size);

#endif
