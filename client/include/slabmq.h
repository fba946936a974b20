/* SPDX-License-Identifier: MIT */
/**
 * @file slabmq.h
 * @brief libslabmq: the C client library of the slabmq message broker.
 *
 * A short tour:
 *
 * @code
 *   slabmq_options o = SLABMQ_OPTIONS_INIT;       // 127.0.0.1:7654, 5 s timeout
 *   slabmq_client *c;
 *   if (slabmq_client_connect(&o, &c) != SLABMQ_OK) { ... }
 *
 *   uint64_t id;
 *   slabmq_publish(c, "jobs", "hello", 5, &id);    // producer
 *
 *   slabmq_batch *b;                               // consumer
 *   if (slabmq_fetch(c, "jobs", 10, 1000, &b) == SLABMQ_OK) {
 *       for (size_t i = 0; i < slabmq_batch_count(b); i++) {
 *           const slabmq_message *m = slabmq_batch_get(b, i);
 *           work(m->data, m->len);
 *           slabmq_ack(c, m->id);
 *       }
 *       slabmq_batch_free(b);
 *   }
 *   slabmq_client_close(c);
 * @endcode
 *
 * Every fallible call returns a ::slabmq_status; #SLABMQ_OK is 0. Results come back through
 * out-parameters placed last. slabmq_strerror() names a status; slabmq_client_errmsg() gives
 * the detail of the last failure on a handle, including the broker's own error message.
 *
 * Status codes below 100 are the wire error codes of docs/protocol.md: the broker sends them
 * and the library passes them through unchanged. Codes from 100 up arise in the library only.
 *
 * Threading: a ::slabmq_client is not thread-safe; use one per thread, or serialise calls to
 * it. Distinct clients may be used from distinct threads concurrently. The library never
 * raises SIGPIPE (it sends with MSG_NOSIGNAL).
 *
 * Ownership: strings and buffers passed in are borrowed for the duration of the call.
 * Objects returned through out-parameters belong to the caller and are released with the
 * matching *_free function, each of which accepts NULL.
 */
#ifndef SLABMQ_H
#define SLABMQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SLABMQ_BUILDING_LIBRARY)
#define SLABMQ_API __attribute__((visibility("default")))
#else
#define SLABMQ_API
#endif

#define SLABMQ_VERSION_STRING "0.1.0"
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
    X(10, ERR_NOT_FOUND, "no such queue")                                                        \
    X(11, ERR_UNKNOWN_ID, "unknown message id, or not held by this connection")                  \
    X(12, ERR_QUEUE_FULL, "queue length or byte limit reached")                                  \
    X(13, ERR_QUEUE_DELETED, "queue deleted while waiting")                                      \
    X(14, ERR_LIMIT, "per-connection limit reached")                                             \
    X(15, ERR_SHUTDOWN, "broker is shutting down")                                               \
    X(100, ERR_IO, "network read or write failed")                                               \
    X(101, ERR_TIMEOUT, "timed out")                                                             \
    X(102, ERR_CONNECT, "could not connect to the broker")                                       \
    X(103, ERR_CLOSED, "connection closed by the broker")                                        \
    X(104, ERR_ARG, "invalid argument")                                                          \
    X(105, ERR_CLIENT_NOMEM, "client out of memory")                                             \
    X(106, ERR_BAD_REPLY, "malformed reply from the broker")

/** Result of every fallible call. */
typedef enum slabmq_status {
#define SLABMQ_STATUS_ENUM_(code, name, msg) SLABMQ_##name = code,
    SLABMQ_STATUS_MAP(SLABMQ_STATUS_ENUM_)
#undef SLABMQ_STATUS_ENUM_
} slabmq_status;

/**
 * @return a static, human-readable description of @p s ("unknown status" for codes not in
 * the list). Thread-safe.
 */
SLABMQ_API const char *slabmq_strerror(slabmq_status s);

/** @return the symbolic name of @p s without the SLABMQ_ prefix, e.g. "ERR_NOMEM". */
SLABMQ_API const char *slabmq_status_name(slabmq_status s);

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                */

/** An open connection to one broker. Opaque. */
typedef struct slabmq_client slabmq_client;

/** Connection options. Start from #SLABMQ_OPTIONS_INIT and change what you need. */
typedef struct slabmq_options {
    const char *host;        /**< numeric IPv4/IPv6 address or host name; default "127.0.0.1" */
    uint16_t port;           /**< TCP port; default #SLABMQ_DEFAULT_PORT */
    int timeout_ms;          /**< connect and per-call I/O timeout, ms; <= 0 waits forever */
    const char *client_name; /**< sent in HELLO, shown in broker logs; may be NULL */
} slabmq_options;

#define SLABMQ_OPTIONS_INIT {"127.0.0.1", SLABMQ_DEFAULT_PORT, 5000, NULL}

/**
 * Connect to a broker and perform the HELLO handshake.
 * @param o    options; borrowed for the call.
 * @param out  receives a new client on success; close it with slabmq_client_close(). On
 *             failure *out is set to NULL and the detail is lost with it, so the error
 *             message is printed into @p errbuf when given.
 * @return #SLABMQ_OK, #SLABMQ_ERR_CONNECT, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_VERSION, ...
 */
SLABMQ_API slabmq_status slabmq_client_connect(const slabmq_options *o, slabmq_client **out);

/**
 * Like slabmq_client_connect(), and on failure writes a one-line reason into @p errbuf
 * (always NUL-terminated when @p errlen > 0).
 */
SLABMQ_API slabmq_status slabmq_client_connect2(const slabmq_options *o, slabmq_client **out,
                                                char *errbuf, size_t errlen);

/** Close the connection and free @p c. Accepts NULL. Unacked fetched messages are requeued
 *  by the broker. */
SLABMQ_API void slabmq_client_close(slabmq_client *c);

/** @return the detail of the last failure on @p c (never NULL; "" when none). Valid until
 *  the next call on @p c. */
SLABMQ_API const char *slabmq_client_errmsg(const slabmq_client *c);

/** Broker limits learnt at HELLO (0 for a NULL client): the largest message, and the largest
 *  request frame body (a batch must fit in it; it is the message limit plus 1024 bytes). */
SLABMQ_API uint64_t slabmq_client_max_message_size(const slabmq_client *c);
SLABMQ_API uint64_t slabmq_client_max_frame_size(const slabmq_client *c);

/** Round trip to the broker. */
SLABMQ_API slabmq_status slabmq_ping(slabmq_client *c);

/* ------------------------------------------------------------------------------------------ */
/* Queues                                                                                     */

/** What a queue at its limits does with a new message. */
typedef enum slabmq_overflow {
    SLABMQ_OVERFLOW_UNCHANGED = 0,   /**< keep the queue's policy (new queues: reject) */
    SLABMQ_OVERFLOW_REJECT = 1,      /**< refuse the publish with #SLABMQ_ERR_QUEUE_FULL */
    SLABMQ_OVERFLOW_DROP_OLDEST = 2  /**< drop ready messages from the head to make room */
} slabmq_overflow;

/** Set max_messages or max_bytes to this to remove that limit. */
#define SLABMQ_NO_LIMIT UINT64_MAX

/** Queue settings for slabmq_declare(). Zero fields keep the queue's current value (for a new
 *  queue, the broker's default); #SLABMQ_NO_LIMIT removes a limit. Start from a zeroed struct.
 *  A limit lowered below what the queue holds refuses (or, with drop-oldest, trims at) the
 *  next publish; nothing is dropped at DECLARE. */
typedef struct slabmq_queue_options {
    uint32_t visibility_ms;   /**< redelivery timeout for fetched, unacked messages, ms;
                                   default 30000 */
    uint64_t max_messages;    /**< most messages held (ready, in flight, delayed); default
                                   unlimited */
    uint64_t max_bytes;       /**< most payload bytes held; default unlimited */
    slabmq_overflow overflow; /**< policy when a limit is reached */
    uint32_t retry_backoff_ms;     /**< redeliveries after a NACK without delay or a visibility
                                        timeout wait base * 2^(deliveries-1) ms, capped, minus
                                        up to 20% jitter; default 0 (at once). Set
                                        #SLABMQ_NO_BACKOFF to turn it off again. */
    uint32_t retry_backoff_max_ms; /**< the cap; default 60000 */
} slabmq_queue_options;

/** retry_backoff_ms value that turns a queue's backoff off. */
#define SLABMQ_NO_BACKOFF UINT32_MAX

/**
 * Create @p queue if it does not exist and apply @p opts (may be NULL) to it.
 * Queue names are 1-200 bytes of [A-Za-z0-9._:-].
 * @param created  if not NULL, set to 1 if the queue was created by this call, else 0.
 */
SLABMQ_API slabmq_status slabmq_declare(slabmq_client *c, const char *queue,
                                        const slabmq_queue_options *opts, int *created);

/** Delete @p queue with all its messages, in flight or not. #SLABMQ_ERR_NOT_FOUND if absent.
 *  @param dropped if not NULL, receives the number of messages discarded. */
SLABMQ_API slabmq_status slabmq_delete(slabmq_client *c, const char *queue, uint64_t *dropped);

/** Stop delivering from @p queue (publishes are still accepted; FETCHes wait or return
 *  nothing) until slabmq_resume(). @param was if not NULL, set to 1 if it was already paused.
 *  #SLABMQ_ERR_NOT_FOUND if the queue does not exist. */
SLABMQ_API slabmq_status slabmq_pause(slabmq_client *c, const char *queue, int *was);
/** Deliver from @p queue again; waiting FETCHes are served at once. @param was as above. */
SLABMQ_API slabmq_status slabmq_resume(slabmq_client *c, const char *queue, int *was);

/** Discard the ready messages of @p queue (in-flight ones are kept).
 *  @param purged if not NULL, receives the number discarded. */
SLABMQ_API slabmq_status slabmq_purge(slabmq_client *c, const char *queue, uint64_t *purged);

/** One row of slabmq_list(). */
typedef struct slabmq_queue_info {
    const char *name;  /**< NUL-terminated; owned by the list */
    uint64_t ready;    /**< messages waiting to be fetched */
    uint64_t inflight; /**< fetched, not yet acked */
} slabmq_queue_info;

/** List every queue. @param out receives an array of @p n rows (sorted by name); free it with
 *  slabmq_queue_list_free(). */
SLABMQ_API slabmq_status slabmq_list(slabmq_client *c, slabmq_queue_info **out, size_t *n);
SLABMQ_API void slabmq_queue_list_free(slabmq_queue_info *list);

/** Statistics: name/value pairs, flat, names as in docs/protocol.md (e.g. "ready",
 *  "memory_used", "slab.3.chunk_size"). Opaque. */
typedef struct slabmq_stats slabmq_stats;

/** Fetch broker statistics (@p queue NULL) or one queue's. Free with slabmq_stats_free(). */
SLABMQ_API slabmq_status slabmq_stats_get(slabmq_client *c, const char *queue,
                                          slabmq_stats **out);
SLABMQ_API size_t slabmq_stats_count(const slabmq_stats *s);
/** @return the i-th name (borrowed from @p s) or NULL when out of range. */
SLABMQ_API const char *slabmq_stats_name(const slabmq_stats *s, size_t i);
/** @return the i-th value, 0 when out of range. */
SLABMQ_API uint64_t slabmq_stats_value(const slabmq_stats *s, size_t i);
/** Look a value up by name. @return 1 and sets *v if present, else 0. */
SLABMQ_API int slabmq_stats_find(const slabmq_stats *s, const char *name, uint64_t *v);
SLABMQ_API void slabmq_stats_free(slabmq_stats *s);

/* ------------------------------------------------------------------------------------------ */
/* Producing                                                                                  */

/**
 * Publish one message of @p len bytes (0 to the broker's maximum, 1 MiB by default) to
 * @p queue, creating the queue if needed. Returns once the broker has stored it.
 * @param id if not NULL, receives the message id the broker assigned.
 * @return #SLABMQ_ERR_TOO_LARGE, #SLABMQ_ERR_NOMEM (memory limit; retry later), ...
 */
SLABMQ_API slabmq_status slabmq_publish(slabmq_client *c, const char *queue, const void *data,
                                        size_t len, uint64_t *id);

/** A message body for slabmq_publish_batch(); borrowed. */
typedef struct slabmq_payload {
    const void *data;
    size_t len;
} slabmq_payload;

/**
 * Publish @p n messages in one frame with one reply. The broker stores all or none of them,
 * and their ids are consecutive.
 * @param first_id if not NULL, receives the id of msgs[0]; msgs[i] has first_id + i.
 * @return as slabmq_publish(); also #SLABMQ_ERR_ARG if the batch does not fit in one frame.
 */
SLABMQ_API slabmq_status slabmq_publish_batch(slabmq_client *c, const char *queue,
                                              const slabmq_payload *msgs, size_t n,
                                              uint64_t *first_id);

/* ------------------------------------------------------------------------------------------ */
/* Pipelining                                                                                 */

/**
 * Called once per pipelined request when its reply is read, in request order.
 * @param request the id the *_async call returned.
 * @param status  #SLABMQ_OK or the broker's error for that request.
 * @param value   on success: the message id of a publish (the first id of a batch), or the
 *                number of messages an ack/nack settled.
 * Runs inside a libslabmq call on the same thread; it must not call back into the client.
 */
typedef void (*slabmq_confirm_cb)(void *arg, uint64_t request, slabmq_status status,
                                  uint64_t value);

/**
 * Publish without waiting for the broker's confirmation. Requests are queued and sent
 * together (one send per 64 KiB of requests); when @p window requests are unconfirmed
 * (slabmq_client_set_window(), default 1024), the call reads confirmations until half the
 * window is free. Confirmations are handed to the slabmq_confirm_cb, if set, and a failure
 * is reported by the next slabmq_flush(). Any synchronous call on the client first sends
 * what is queued and reads all outstanding confirmations.
 * @param request if not NULL, receives the request id the confirmation will carry.
 * @return #SLABMQ_OK when queued; an I/O error, or an argument error (nothing queued).
 */
SLABMQ_API slabmq_status slabmq_publish_async(slabmq_client *c, const char *queue,
                                              const void *data, size_t len, uint64_t *request);
/** Pipelined slabmq_publish_batch(). */
SLABMQ_API slabmq_status slabmq_publish_batch_async(slabmq_client *c, const char *queue,
                                                    const slabmq_payload *msgs, size_t n,
                                                    uint64_t *request);
/** Pipelined slabmq_ack_batch(): the ACK goes out with the next send (for a consumer, in the
 *  same write as its next slabmq_fetch()). */
SLABMQ_API slabmq_status slabmq_ack_async(slabmq_client *c, const uint64_t *ids, size_t n,
                                          uint64_t *request);
/** Pipelined slabmq_nack_batch(). */
SLABMQ_API slabmq_status slabmq_nack_async(slabmq_client *c, const uint64_t *ids, size_t n,
                                           uint32_t delay_ms, uint64_t *request);
/**
 * Send what is queued now, without waiting for confirmations (for a producer at a fixed
 * rate, where latency matters more than batching); confirmations that have already arrived
 * are read and handed to the callback. Never blocks on the broker's replies.
 */
SLABMQ_API slabmq_status slabmq_send(slabmq_client *c);

/**
 * Send everything queued and wait for every outstanding confirmation.
 * @return #SLABMQ_OK if every pipelined request since the last flush succeeded; otherwise
 * the status of the first that failed (slabmq_client_errmsg() says which and why), or an
 * I/O error.
 */
SLABMQ_API slabmq_status slabmq_flush(slabmq_client *c);
/** Unconfirmed pipelined requests allowed (at least 1; default 1024). */
SLABMQ_API void slabmq_client_set_window(slabmq_client *c, uint32_t window);
/** Set (or clear, with NULL) the confirmation callback. */
SLABMQ_API void slabmq_client_on_confirm(slabmq_client *c, slabmq_confirm_cb cb, void *arg);
/** Pipelined requests not yet confirmed. */
SLABMQ_API uint64_t slabmq_client_outstanding(const slabmq_client *c);

/* ------------------------------------------------------------------------------------------ */
/* Consuming                                                                                  */

/** A delivered message. The data pointer is owned by the batch it came in. */
typedef struct slabmq_message {
    uint64_t id;         /**< broker-wide unique id; pass it to slabmq_ack() */
    uint32_t deliveries; /**< 1 on first delivery, more on redelivery */
    const void *data;    /**< payload, @p len bytes (not NUL-terminated) */
    size_t len;
} slabmq_message;

/** Messages from one fetch or peek. Opaque. */
typedef struct slabmq_batch slabmq_batch;

/**
 * Fetch up to @p max messages from @p queue. If none is ready, wait up to @p wait_ms for one
 * (0 returns at once); returns as soon as at least one is available. An empty batch on
 * timeout is a success. Fetched messages must be acked within the queue's visibility
 * timeout or they are redelivered; they are also requeued when this connection closes.
 * @param out receives a batch; free it with slabmq_batch_free().
 * The call's socket timeout is extended by @p wait_ms.
 */
SLABMQ_API slabmq_status slabmq_fetch(slabmq_client *c, const char *queue, uint32_t max,
                                      uint32_t wait_ms, slabmq_batch **out);

/** Flags for slabmq_fetch_flags(). */
#define SLABMQ_FETCH_NOACK 1u /**< at-most-once: messages are removed when sent, no ack needed */

/** slabmq_fetch() with flags: #SLABMQ_FETCH_NOACK delivers at most once (like Redis LPOP or
 *  an auto-ack consumer): nothing to ack, nothing redelivered if the consumer fails. */
SLABMQ_API slabmq_status slabmq_fetch_flags(slabmq_client *c, const char *queue, uint32_t max,
                                            uint32_t wait_ms, unsigned flags,
                                            slabmq_batch **out);

/** Look at up to @p max ready messages of @p queue without taking them (deliveries is the
 *  count so far). Free the batch with slabmq_batch_free(). */
SLABMQ_API slabmq_status slabmq_peek(slabmq_client *c, const char *queue, uint32_t max,
                                     slabmq_batch **out);

SLABMQ_API size_t slabmq_batch_count(const slabmq_batch *b);
/** @return the i-th message, valid until slabmq_batch_free(); NULL when out of range. */
SLABMQ_API const slabmq_message *slabmq_batch_get(const slabmq_batch *b, size_t i);
SLABMQ_API void slabmq_batch_free(slabmq_batch *b);

/** Acknowledge one message: the broker forgets it. #SLABMQ_ERR_UNKNOWN_ID if this connection
 *  does not hold it (never fetched, already acked, or redelivered after its timeout). */
SLABMQ_API slabmq_status slabmq_ack(slabmq_client *c, uint64_t id);

/** Acknowledge @p n messages in one frame. Known ids are acked even when some are unknown,
 *  in which case the call returns #SLABMQ_ERR_UNKNOWN_ID and slabmq_client_errmsg() says how
 *  many were unknown and how many were acked.
 *  @param acked if not NULL, receives how many were acked (on #SLABMQ_OK: n). */
SLABMQ_API slabmq_status slabmq_ack_batch(slabmq_client *c, const uint64_t *ids, size_t n,
                                          uint64_t *acked);

/** Still working on these: restart the visibility timeout of @p n messages this connection
 *  holds (like beanstalkd's touch or JetStream's in-progress). Partial success as for
 *  slabmq_ack_batch(). @param touched if not NULL, receives how many were extended. */
SLABMQ_API slabmq_status slabmq_touch(slabmq_client *c, const uint64_t *ids, size_t n,
                                      uint64_t *touched);

/** Return one message to its queue for redelivery, not before @p delay_ms from now. */
SLABMQ_API slabmq_status slabmq_nack(slabmq_client *c, uint64_t id, uint32_t delay_ms);

/** NACK @p n messages; partial success as for slabmq_ack_batch(). */
SLABMQ_API slabmq_status slabmq_nack_batch(slabmq_client *c, const uint64_t *ids, size_t n,
                                           uint32_t delay_ms, uint64_t *nacked);

#ifdef __cplusplus
}
#endif
#endif /* SLABMQ_H */
