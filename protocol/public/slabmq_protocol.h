/* SPDX-License-Identifier: MIT */
/*
 * What libslabmq and slabmqd share and a program using the library sees: the versions, the
 * default port and the one list of status codes. It lives in protocol/ so that the broker
 * reaches it without the client's header, and is installed next to slabmq.h, which includes
 * it (a second installed header rather than one generated into slabmq.h at build time: the
 * header in the tree is the header installed, and no build step sits between an edit and
 * the compiler). Include slabmq.h, not this file.
 */
#ifndef SLABMQ_PROTOCOL_H
#define SLABMQ_PROTOCOL_H

#define SLABMQ_VERSION_STRING "0.2.0"
/** The protocol version this library speaks in HELLO. */
#define SLABMQ_PROTOCOL_VERSION 1
/** The broker's default port. */
#define SLABMQ_DEFAULT_PORT 7654

/**
 * The one list of status codes: code, name, message. It generates the ::slabmq_status enum,
 * slabmq_strerror() and the broker's error replies, and is copied into docs/protocol.md.
 */
#define SLABMQ_STATUS_MAP(X)                                                                     \
    X(0, OK, "success")                                                                          \
    X(1, ERR_PROTOCOL, "malformed frame or msgpack body")                                        \
    X(2, ERR_FRAME_TOO_BIG, "frame longer than the broker's maximum")                            \
    X(3, ERR_VERSION, "unsupported protocol version")                                            \
    X(4, ERR_HELLO_REQUIRED, "HELLO must be the first request on a connection")                  \
    X(5, ERR_UNKNOWN_OP, "unknown operation")                                                    \
    X(6, ERR_BAD_REQUEST, "wrong number or type of arguments")                                   \
    X(7, ERR_BAD_NAME, "invalid queue name")                                                     \
    X(8, ERR_TOO_LARGE, "message larger than the broker's maximum message size")                 \
    X(9, ERR_NOMEM, "broker memory limit reached")                                               \
    X(10, ERR_NOT_FOUND, "no such queue or subscription")                                        \
    X(11, ERR_UNKNOWN_ID, "unknown message id, or not held by this connection")                  \
    X(12, ERR_QUEUE_FULL, "queue length or byte limit reached")                                  \
    X(13, ERR_QUEUE_DELETED, "queue deleted while waiting")                                      \
    X(14, ERR_LIMIT, "per-connection limit reached")                                             \
    X(15, ERR_SHUTDOWN, "broker is shutting down")                                               \
    X(16, ERR_AUTH, "authentication required or failed")                                         \
    X(17, ERR_FORBIDDEN, "not permitted for this user")                                          \
    X(20, ERR_STORAGE, "durable storage failed; durable publishes are refused")                  \
    X(21, ERR_STORAGE_FULL, "durable storage is full; durable publishes are refused")            \
    X(100, ERR_IO, "network read or write failed")                                               \
    X(101, ERR_TIMEOUT, "timed out")                                                             \
    X(102, ERR_CONNECT, "could not connect to the broker")                                       \
    X(103, ERR_CLOSED, "connection closed by the broker")                                        \
    X(104, ERR_ARG, "invalid argument")                                                          \
    X(105, ERR_CLIENT_NOMEM, "client out of memory")                                             \
    X(106, ERR_BAD_REPLY, "malformed reply from the broker")                                     \
    X(107, ERR_TLS, "TLS handshake failed or the broker's certificate was not accepted")

/** Result of every fallible call. */
typedef enum slabmq_status {
#define SLABMQ_STATUS_ENUM_(code, name, msg) SLABMQ_##name = (code),
    SLABMQ_STATUS_MAP(SLABMQ_STATUS_ENUM_)
#undef SLABMQ_STATUS_ENUM_
} slabmq_status;

#endif
