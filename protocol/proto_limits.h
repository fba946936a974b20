/* SPDX-License-Identifier: MIT */
/* The protocol's limits: the numbers a request must stay within, written once for the broker
 * that enforces them, the client that checks before sending and the CLI that reports a usage
 * error before connecting (docs/protocol.md section 10). A limit changed here changes on all
 * three sides at the next build; the public copies in slabmq.h (SLABMQ_PRIORITY_MAX and the
 * like) are checked against these by static asserts in client/api.c. Not named limits.h:
 * with -I protocol, that would shadow the system <limits.h>. */
#ifndef SLABMQ_PROTOCOL_PROTO_LIMITS_H
#define SLABMQ_PROTOCOL_PROTO_LIMITS_H

/* Frames: a 4-byte big-endian body length, then the body. */
#define SMQ_FRAME_HEADER 4u
/* Bytes a frame may add around one message of the maximum size (request header, queue
 * name, msgpack headers). The broker's maximum frame body is max_message_size + this. */
#define SMQ_FRAME_SLACK 1024u

/* Queue names: 1..SMQ_NAME_MAX bytes of the alphabet SMQ_NAME_RULE describes (the byte table
 * is smq_name_valid's, protocol/codec.c). */
#define SMQ_NAME_MAX 200
#define SMQ_NAME_RULE "A-Z a-z 0-9 . _ : -"

#define SMQ_PRIO_MAX 9                     /* priorities 0..9 */
#define SMQ_TIME_MAX_MS 3153600000000ULL   /* delays and TTLs: 100 years */
#define SMQ_FETCH_QUEUES_MAX 16            /* queues in one FETCH */
#define SMQ_FETCH_MAX 10000u               /* messages in one FETCH */
#define SMQ_PEEK_MAX 256u                  /* messages in one PEEK */
#define SMQ_WAIT_MAX_MS (3600u * 1000)     /* longest long-poll wait of a FETCH: an hour */
#define SMQ_PRODUCER_ID_MAX 128            /* bytes of a producer message id */

/* Queue settings' ranges that are not plain integer types (protocol/settings.h). */
#define SMQ_VISIBILITY_MAX_MS (7u * 24 * 3600 * 1000) /* visibility and backoffs: a week */
#define SMQ_MAX_DELIVERIES_MAX 1000000u
#define SMQ_DEDUP_WINDOW_MIN 1024u         /* bytes, when not 0 (off) */
#define SMQ_DEDUP_WINDOW_MAX (64u << 20)

#endif
