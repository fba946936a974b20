/* SPDX-License-Identifier: MIT */
/* The operations of the slabmq wire protocol, one list (docs/protocol.md is normative).
 *
 * Each entry is X(code, NAME, name): the numeric op code sent in every request and echoed in
 * its reply, the enum suffix, and the lower-case name used for handlers (cmd_<name>), logs
 * and the CLI. The broker's handler table and the
 * client's names are generated from this list, so they cannot drift apart. */
#ifndef SLABMQ_PROTOCOL_OPS_H
#define SLABMQ_PROTOCOL_OPS_H

#define SMQ_OPS_MAP(X)                      \
    X(1, HELLO, hello)                      \
    X(2, PING, ping)                        \
    X(3, DECLARE, declare)                  \
    X(4, DELETE, delete)                    \
    X(5, PURGE, purge)                      \
    X(6, LIST, list)                        \
    X(7, STATS, stats)                      \
    X(8, PUBLISH, publish)                  \
    X(9, PUBLISH_BATCH, publish_batch)      \
    X(10, FETCH, fetch)                     \
    X(11, ACK, ack)                         \
    X(12, NACK, nack)                       \
    X(13, PEEK, peek)                       \
    X(14, TOUCH, touch)                     \
    X(15, PAUSE, pause)                     \
    X(16, RESUME, resume)                   \
    X(17, TERM, term)                       \
    X(18, SUBSCRIBE, subscribe)             \
    X(19, UNSUBSCRIBE, unsubscribe)         \
    X(21, AUTH, auth)

enum smq_op {
    SMQ_OP_NONE = 0, /* used in replies to frames whose op could not be read */
#define SMQ_OP_ENUM_(code, name, lname) SMQ_OP_##name = (code),
    SMQ_OPS_MAP(SMQ_OP_ENUM_)
#undef SMQ_OP_ENUM_
    SMQ_OP_MAX,
    /* Sent only by the broker (a subscription's push, docs/protocol.md 6.20); not in the
     * map, so the broker has no handler for it and answers ERR_UNKNOWN_OP if a client sends
     * it. */
    SMQ_OP_DELIVER = 20
};

/* ACK's flags (docs/protocol.md 6.11): QUIET, no reply when every id was acked; a reply to
 * any later request of the connection then says it succeeded (requests run in order). An
 * error still gets its reply. */
#define SMQ_ACK_QUIET 1u
/* CONFIRMED: the reply (or, QUIET, the next reply of the connection) waits until what the
 * ACK changed in durable queues is committed to the store; at once when it changed none. */
#define SMQ_ACK_CONFIRMED 2u

/* HELLO's features result (docs/protocol.md 5): what this broker takes beyond version 1's
 * first form, so a client knows before it asks. */
#define SMQ_FEATURE_QUIET_ACK 1u     /* ACK takes flags, SMQ_ACK_QUIET among them */
#define SMQ_FEATURE_CONFIRMED_ACK 2u /* ACK takes SMQ_ACK_CONFIRMED */
#define SMQ_FEATURES (SMQ_FEATURE_QUIET_ACK | SMQ_FEATURE_CONFIRMED_ACK)

/* Name of an op code, or NULL for codes not in the list. */
const char *smq_op_name(unsigned op);

/* Message text of a status code from SLABMQ_STATUS_MAP (slabmq_protocol.h); "unknown status"
 * else. */
const char *smq_status_message(unsigned code);
/* Its name without the SLABMQ_ prefix, or "UNKNOWN". */
const char *smq_status_name(unsigned code);

#endif /* SLABMQ_PROTOCOL_OPS_H */
