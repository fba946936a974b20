/* SPDX-License-Identifier: MIT */
/**
 * @file slabmq.h
 * @brief libslabmq: the C client library of the slabmq message broker.
 *
 * A short tour:
 *
 * @code
 *   slabmq_options o;
 *   slabmq_options_init(&o);                      // 127.0.0.1:7654, 5 s timeout
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
 * A push consumer subscribes instead of fetching, and the broker sends messages as long as
 * the subscription has credit (messages pushed and not yet settled):
 *
 * @code
 *   uint64_t sub;
 *   slabmq_subscribe(c, "jobs", 16, &sub);          // at most 16 unacked at a time
 *   for (;;) {
 *       slabmq_batch *b;
 *       if (slabmq_receive(c, 1000, &b) != SLABMQ_OK) { slabmq_batch_free(b); break; }
 *       for (size_t i = 0; i < slabmq_batch_count(b); i++) {
 *           const slabmq_message *m = slabmq_batch_get(b, i);
 *           if (work(m->data, m->len) == 0)
 *               slabmq_ack(c, m->id);
 *           else
 *               slabmq_term(c, &m->id, 1, NULL);   // to the dead-letter queue
 *       }
 *       slabmq_batch_free(b);
 *   }
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

/* Versions, the default port and the status list: the facts the broker shares with this
 * library, kept in protocol/ and installed next to this header. */
#include "slabmq_protocol.h"

/**
 * @param s any status
 * @return a static, human-readable description of @p s ("unknown status" for codes not in
 * the list). Thread-safe.
 */
SLABMQ_API const char *slabmq_strerror(slabmq_status s);

/**
 * @param s any status
 * @return the symbolic name of @p s without the SLABMQ_ prefix, e.g. "ERR_NOMEM".
 */
SLABMQ_API const char *slabmq_status_name(slabmq_status s);

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                */

/** An open connection to one broker. Opaque. */
typedef struct slabmq_client slabmq_client;

/** TLS settings, for slabmq_options::tls (docs/security.md). Fill with
 * slabmq_tls_options_init() (or zero-initialise), then set what you need: by default the
 * broker's certificate is verified against the system's trust store
 * and must be issued for the @c host option. */
typedef struct slabmq_tls_options {
    const char *ca_file;     /**< PEM file of the CAs that may sign the broker's certificate;
                                  NULL: the system's default trust store */
    const char *cert_file;   /**< client certificate chain (PEM), for a broker that requires
                                  one (slabmqd --tls-ca); NULL: none */
    const char *key_file;    /**< its private key (PEM); NULL: read from @c cert_file */
    const char *server_name; /**< the name (or IP address) the broker's certificate must be
                                  for, also sent as SNI; NULL: the @c host option */
    int insecure;            /**< non-zero: do not verify the broker's certificate. For tests
                                  only: anyone on the path can then read and alter traffic */
} slabmq_tls_options;

/** Connection options. Fill with slabmq_options_init() (or #SLABMQ_OPTIONS_INIT)
 * and change what you need.
 *
 * Credentials: a broker started with users (docs/security.md) needs a user name and a
 * password, sent in an AUTH request right after HELLO. When @c user is NULL the library takes
 * them from the environment variables SLABMQ_USER and SLABMQ_PASSWORD, if SLABMQ_USER is set
 * and not empty; set @c user to "" to use no credentials at all. Against a broker without
 * users the credentials are not sent. */
typedef struct slabmq_options {
    const char *host;        /**< numeric IPv4/IPv6 address or host name; default "127.0.0.1" */
    uint16_t port;           /**< TCP port; default #SLABMQ_DEFAULT_PORT */
    int timeout_ms;          /**< connect and per-call I/O timeout, ms; <= 0 waits forever */
    const char *client_name; /**< sent in HELLO, shown in broker logs; may be NULL */
    const char *user;        /**< user name, 1-64 bytes; NULL: $SLABMQ_USER; "": none */
    const char *password;    /**< its password, at most 1024 bytes; NULL: $SLABMQ_PASSWORD
                                  (or "" if that is unset too). Borrowed for the connect
                                  call only: the library keeps no copy */
    const slabmq_tls_options *tls; /**< connect with TLS (slabmqd --tls-port); NULL: plain
                                        TCP. Borrowed for the connect call only */
} slabmq_options;

/*
 * Initializers. Each options struct has an init function that sets every field to its
 * default: slabmq_options_init(), slabmq_tls_options_init(), slabmq_queue_options_init(),
 * slabmq_publish_options_init(). Use them in new code: they keep setting every field when a
 * later version adds one, in C and in C++ alike (designated initializers would need C++20).
 * The *_INIT macros below are kept for the code that uses them: they are positional, so they
 * stay correct only because fields are added at the end, and only in C they leave the
 * added fields zero without a warning. They will go in a version that changes the soname.
 *
 * ABI: a struct that gains a field changes its size, so the soname changes with it (the
 * library would read the new field beyond the end of an older program's struct). Adding a
 * function does not; libslabmq.so.1 has been the soname since 0.2 (docs/operations.md).
 */

/** The defaults as a positional initializer; prefer slabmq_options_init(). */
#define SLABMQ_OPTIONS_INIT {"127.0.0.1", SLABMQ_DEFAULT_PORT, 5000, NULL, NULL, NULL, NULL}

/**
 * Set every field of @p o to its default: host "127.0.0.1", port #SLABMQ_DEFAULT_PORT, a
 * 5 s timeout, no client name, credentials from the environment, plain TCP.
 * @param o  the options to fill; not NULL.
 */
SLABMQ_API void slabmq_options_init(slabmq_options *o);

/**
 * Set every field of @p t to its default (all zero: the system's trust store, no client
 * certificate, the broker's certificate verified for the @c host option).
 * @param t  the TLS options to fill; not NULL.
 */
SLABMQ_API void slabmq_tls_options_init(slabmq_tls_options *t);

/**
 * Connect to a broker and perform the HELLO handshake, then AUTH if the broker requires it.
 * @param o    options, borrowed for the call; NULL: the defaults of slabmq_options_init().
 * @param out  not NULL; receives a new client on success; close it with slabmq_client_close().
 *            On
 *             failure *out is set to NULL, and the detail of the failure goes with it: call
 *             slabmq_client_connect_errbuf() to get it.
 * @return #SLABMQ_OK, #SLABMQ_ERR_CONNECT, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_VERSION,
 *         #SLABMQ_ERR_AUTH (the broker requires credentials and none were given, or it
 *         refused them), #SLABMQ_ERR_TLS (with slabmq_options::tls: the handshake failed,
 *         e.g. the certificate is not trusted or not for that name), #SLABMQ_ERR_ARG (a
 *         client name over 64 bytes), #SLABMQ_ERR_CLIENT_NOMEM.
 */
SLABMQ_API slabmq_status slabmq_client_connect(const slabmq_options *o, slabmq_client **out);

/**
 * slabmq_client_connect() that also says why it failed: on failure it writes a one-line
 * reason (what slabmq_client_errmsg() would have said) into @p errbuf.
 * @param o       options, borrowed for the call; NULL: the defaults.
 * @param out     not NULL; receives a new client on success, NULL on failure.
 * @param errbuf  receives the reason on failure, always NUL-terminated when @p errlen > 0;
 *                untouched on success. May be NULL when @p errlen is 0.
 * @param errlen  size of @p errbuf in bytes; the reason is truncated to fit.
 * @return as slabmq_client_connect().
 */
SLABMQ_API slabmq_status slabmq_client_connect_errbuf(const slabmq_options *o,
                                                      slabmq_client **out, char *errbuf,
                                                      size_t errlen);

#if defined(__GNUC__) && !defined(SLABMQ_BUILDING_LIBRARY)
#define SLABMQ_DEPRECATED(why) __attribute__((deprecated(why)))
#else
#define SLABMQ_DEPRECATED(why)
#endif

/**
 * The name slabmq_client_connect_errbuf() had until 0.2; the same function, kept so that
 * programs linked against libslabmq.so.1 keep running. It goes when the soname changes.
 * @param o, out, errbuf, errlen  as for slabmq_client_connect_errbuf().
 * @return as slabmq_client_connect_errbuf().
 */
SLABMQ_API slabmq_status slabmq_client_connect2(const slabmq_options *o, slabmq_client **out,
                                                char *errbuf, size_t errlen)
    SLABMQ_DEPRECATED("renamed slabmq_client_connect_errbuf");

/**
 * Close the connection and free @p c. Accepts NULL. Unacked fetched messages are requeued
 * by the broker.
 * @param c the connection; may be NULL
 */
SLABMQ_API void slabmq_client_close(slabmq_client *c);

/**
 * @param c the connection
 * @return the detail of the last failure on @p c (never NULL; "" when none). Valid until
 * the next call on @p c.
 */
SLABMQ_API const char *slabmq_client_errmsg(const slabmq_client *c);

/**
 * The broker's largest message, learnt at HELLO.
 * @param c the connection; may be NULL
 * @return the size in bytes; 0 for a NULL @p c
 */
SLABMQ_API uint64_t slabmq_client_max_message_size(const slabmq_client *c);
/**
 * The broker's largest request frame body, learnt at HELLO: a batch must fit in it (it is
 * the message limit plus 1024 bytes).
 * @param c the connection; may be NULL
 * @return the size in bytes; 0 for a NULL @p c
 */
SLABMQ_API uint64_t slabmq_client_max_frame_size(const slabmq_client *c);

/**
 * Round trip to the broker.
 * @param c the connection
 * @return #SLABMQ_OK, #SLABMQ_ERR_ARG for a NULL @p c, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_ping(slabmq_client *c);

/* ------------------------------------------------------------------------------------------ */
/* Queues                                                                                     */

/** What a queue at its limits does with a new message. */
typedef enum slabmq_overflow {
    SLABMQ_OVERFLOW_UNCHANGED = 0,   /**< keep the queue's policy (new queues: reject) */
    SLABMQ_OVERFLOW_REJECT = 1,      /**< refuse the publish with #SLABMQ_ERR_QUEUE_FULL */
    SLABMQ_OVERFLOW_DROP_OLDEST = 2, /**< drop ready messages from the head to make room */
    SLABMQ_OVERFLOW_DEAD_LETTER = 3  /**< as drop-oldest, but the messages taken from the head
                                          go to the dead-letter queue (reason "max-length") */
} slabmq_overflow;

/** Set max_messages, max_bytes or max_deliveries to this to remove that limit. */
#define SLABMQ_NO_LIMIT UINT64_MAX

/** The longest delay, time to live or NACK delay the broker takes: 100 years, in ms. */
#define SLABMQ_TIME_MAX_MS 3153600000000ULL
/** The highest message priority (0, the default, is the lowest). */
#define SLABMQ_PRIORITY_MAX 9
/** The most queues one slabmq_fetch_any() may name. */
#define SLABMQ_FETCH_QUEUES_MAX 16
/** The longest producer message id, in bytes. */
#define SLABMQ_PRODUCER_ID_MAX 128

/** How far a publish must get before the broker confirms it (docs/durability.md). */
typedef enum slabmq_confirm_level {
    SLABMQ_CONFIRM_DEFAULT = 0, /**< the queue's level */
    SLABMQ_CONFIRM_MEMORY = 1,  /**< stored in the broker's memory */
    SLABMQ_CONFIRM_WRITTEN = 2, /**< committed to the database: survives a broker crash */
    SLABMQ_CONFIRM_SYNCED = 3   /**< committed and synced to disk: survives a power loss */
} slabmq_confirm_level;

/** Queue settings for slabmq_declare(). Zero fields (and NULL dead_letter) keep the queue's
 *  current value (for a new queue, the broker's default); #SLABMQ_NO_LIMIT removes a limit.
 *  Fill with slabmq_queue_options_init() (or
 *  #SLABMQ_QUEUE_OPTIONS_INIT, or a zeroed struct), so that fields added in later
 *  versions are zero too. A limit lowered below what the queue holds refuses (or, with
 *  drop-oldest or dead-letter, trims at) the next publish; nothing is dropped at DECLARE. */
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
    uint64_t max_deliveries;  /**< deliveries after which a message that comes back (NACK,
                                   visibility timeout, closed connection) is dead-lettered
                                   with reason "delivery-limit", 1-1000000; default 20;
                                   #SLABMQ_NO_LIMIT: unlimited */
    const char *dead_letter;  /**< the queue that receives this queue's dead letters; ""
                                   discards them (counted in dead_discarded); NULL keeps the
                                   current one. Default: the queue's name plus ".dlq" */
    uint64_t ttl_ms;          /**< time to live of messages published without their own,
                                   ms, up to #SLABMQ_TIME_MAX_MS; #SLABMQ_NO_TTL: none (the
                                   default). Applies to messages published after the change */
    uint64_t dedup_window;    /**< bytes remembered of producer message ids, 1 KiB to
                                   64 MiB; default 1 MiB; #SLABMQ_DEDUP_OFF turns
                                   de-duplication off. A change forgets the ids remembered
                                   so far */
    int durable;              /**< with a broker run with --durability sqlite:
                                   #SLABMQ_DURABLE_YES keeps the queue in the database (the
                                   default there), #SLABMQ_DURABLE_NO in memory only; 0
                                   leaves it. Changes only while the queue is empty */
    slabmq_confirm_level confirm; /**< the level publishes to the queue are confirmed at
                                   unless they ask for another; #SLABMQ_CONFIRM_DEFAULT
                                   leaves it (a durable queue starts at "written") */
} slabmq_queue_options;

/** A ::slabmq_queue_options that changes nothing; prefer slabmq_queue_options_init(). */
#define SLABMQ_QUEUE_OPTIONS_INIT                                                              \
    {0, 0, 0, SLABMQ_OVERFLOW_UNCHANGED, 0, 0, 0, NULL, 0, 0, 0, SLABMQ_CONFIRM_DEFAULT}
/**
 * Set every field of @p o to "leave the queue's setting as it is" (what a NULL options
 * pointer to slabmq_declare() means).
 * @param o  the queue options to fill; not NULL.
 */
SLABMQ_API void slabmq_queue_options_init(slabmq_queue_options *o);

/** durable values: keep the queue in the database, or in memory only. */
#define SLABMQ_DURABLE_YES 1
#define SLABMQ_DURABLE_NO 2

/** retry_backoff_ms value that turns a queue's backoff off. */
#define SLABMQ_NO_BACKOFF UINT32_MAX
/** ttl_ms value that removes a queue's default time to live. */
#define SLABMQ_NO_TTL UINT64_MAX
/** dedup_window value that turns de-duplication off. */
#define SLABMQ_DEDUP_OFF UINT64_MAX

/**
 * Create @p queue if it does not exist and apply @p opts (may be NULL) to it.
 * Queue names are 1-200 bytes of [A-Za-z0-9._:-].
 * @param created  if not NULL, set to 1 if the queue was created by this call, else 0.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param opts settings to apply, NULL to change nothing; borrowed for the call
 * @return #SLABMQ_OK, #SLABMQ_ERR_BAD_NAME, #SLABMQ_ERR_BAD_REQUEST (a setting out of range),
 *         #SLABMQ_ERR_FORBIDDEN, or an I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT,
 *         #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_declare(slabmq_client *c, const char *queue,
                                        const slabmq_queue_options *opts, int *created);

/**
 * Delete @p queue with all its messages, in flight or not. #SLABMQ_ERR_NOT_FOUND if absent.
 * @param dropped if not NULL, receives the number of messages discarded.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, #SLABMQ_ERR_FORBIDDEN, or an I/O error
 *         (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_delete(slabmq_client *c, const char *queue, uint64_t *dropped);

/**
 * Stop delivering from @p queue (publishes are still accepted; FETCHes wait or return
 * nothing) until slabmq_resume(). @param was if not NULL, set to 1 if it was already paused.
 * #SLABMQ_ERR_NOT_FOUND if the queue does not exist.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_pause(slabmq_client *c, const char *queue, int *was);
/**
 * Deliver from @p queue again; waiting FETCHes are served at once. @param was as above.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_resume(slabmq_client *c, const char *queue, int *was);

/**
 * Discard the ready messages of @p queue (in-flight ones are kept).
 * @param purged if not NULL, receives the number discarded.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_purge(slabmq_client *c, const char *queue, uint64_t *purged);

/** One row of slabmq_list(). */
typedef struct slabmq_queue_info {
    const char *name;  /**< NUL-terminated; owned by the list */
    uint64_t ready;    /**< messages waiting to be fetched */
    uint64_t inflight; /**< fetched, not yet acked */
} slabmq_queue_info;

/**
 * List every queue. @param out receives an array of @p n rows (sorted by name); free it with
 * slabmq_queue_list_free().
 * @param c the connection
 * @param n receives the number of rows
 * @return #SLABMQ_OK, #SLABMQ_ERR_CLIENT_NOMEM, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_list(slabmq_client *c, slabmq_queue_info **out, size_t *n);
/**
 * Free a list that slabmq_list() returned.
 * @param list what slabmq_list() returned; may be NULL
 */
SLABMQ_API void slabmq_queue_list_free(slabmq_queue_info *list);

/** Statistics: name/value pairs, flat, names as in docs/protocol.md (e.g. "ready",
 *  "memory_used", "slab.3.chunk_size"). Values are unsigned integers, except a few strings
 *  (the queue statistic "dead_letter"); entries of any other type a newer broker may send
 *  are left out. Opaque. */
typedef struct slabmq_stats slabmq_stats;

/**
 * Fetch broker statistics (@p queue NULL) or one queue's. Free with slabmq_stats_free().
 * @param c the connection
 * @param queue the queue's name, or NULL for the broker's statistics; borrowed for the call
 * @param out receives the statistics; free them with slabmq_stats_free()
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND (no such queue), #SLABMQ_ERR_CLIENT_NOMEM, or an
 *         I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_stats_get(slabmq_client *c, const char *queue,
                                          slabmq_stats **out);
/**
 * The number of entries.
 * @param s the statistics; may be NULL
 * @return how many entries @p s holds; 0 for NULL
 */
SLABMQ_API size_t slabmq_stats_count(const slabmq_stats *s);
/**
 * @param s the statistics
 * @param i the index, from 0
 * @return the i-th name (borrowed from @p s) or NULL when out of range.
 */
SLABMQ_API const char *slabmq_stats_name(const slabmq_stats *s, size_t i);
/**
 * @param s the statistics
 * @param i the index, from 0
 * @return the i-th value, 0 when out of range or when the value is a string.
 */
SLABMQ_API uint64_t slabmq_stats_value(const slabmq_stats *s, size_t i);
/**
 * @param s the statistics
 * @param i the index, from 0
 * @return the i-th value if it is a string (NUL-terminated, borrowed from @p s), NULL when
 * it is an integer or out of range.
 */
SLABMQ_API const char *slabmq_stats_str(const slabmq_stats *s, size_t i);
/**
 * Look an integer value up by name. @return 1 and sets *v if present, else 0 (also for a
 * string value).
 * @param s the statistics
 * @param name the statistic's name
 * @param v receives its value when found
 */
SLABMQ_API int slabmq_stats_find(const slabmq_stats *s, const char *name, uint64_t *v);
/**
 * Look a string value up by name, e.g. "dead_letter" ("" when the queue has none).
 * @param s the statistics
 * @param name the statistic's name
 * @return the string, borrowed from @p s, or NULL if absent or not a string.
 */
SLABMQ_API const char *slabmq_stats_find_str(const slabmq_stats *s, const char *name);
/**
 * Free statistics that slabmq_stats_get() returned.
 * @param s what slabmq_stats_get() returned; may be NULL
 */
SLABMQ_API void slabmq_stats_free(slabmq_stats *s);

/* ------------------------------------------------------------------------------------------ */
/* Producing                                                                                  */

/**
 * Publish one message of @p len bytes (0 to the broker's maximum, 1 MiB by default) to
 * @p queue, creating the queue if needed. Returns once the broker has stored it.
 * @param id if not NULL, receives the message id the broker assigned.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param data the payload, @p len bytes; borrowed for the call
 * @param len the payload's length in bytes
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
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param msgs the messages; borrowed for the call
 * @param n how many, at least 1
 * @return as slabmq_publish(); also #SLABMQ_ERR_ARG if the batch does not fit in one frame.
 */
SLABMQ_API slabmq_status slabmq_publish_batch(slabmq_client *c, const char *queue,
                                              const slabmq_payload *msgs, size_t n,
                                              uint64_t *first_id);

/** Per-message options of slabmq_publish_opts() and slabmq_publish_batch_opts(). Zero fields
 *  are left out of the request. Fill with slabmq_publish_options_init() (or
 *  #SLABMQ_PUBLISH_OPTIONS_INIT, or a zeroed struct). */
typedef struct slabmq_publish_options {
    uint64_t delay_ms;  /**< not delivered before now plus this, ms (0 to #SLABMQ_TIME_MAX_MS);
                             the message is "delayed" until then */
    uint64_t at_ms;     /**< not delivered before this wall-clock time, ms since the Unix
                             epoch (a time in the past: no delay); with delay_ms, the later
                             of the two wins */
    uint64_t ttl_ms;    /**< time to live from now, ms (1 to #SLABMQ_TIME_MAX_MS); overrides
                             the queue's; a message still ready or delayed then is
                             dead-lettered with reason "expired". 0: the queue's TTL */
    unsigned priority;  /**< 0 (default) to #SLABMQ_PRIORITY_MAX; higher is delivered first */
    const char *id;     /**< producer message id for de-duplication, NUL-terminated, 1 to
                             #SLABMQ_PRODUCER_ID_MAX bytes, sent as a msgpack str; a queue
                             that remembers it stores nothing (the "duplicate" result). NULL:
                             none. Single messages only */
    slabmq_confirm_level confirm; /**< the level to be confirmed at; default: the queue's.
                             A queue that is not durable confirms at the memory level */
} slabmq_publish_options;

/** A ::slabmq_publish_options with every option left out; prefer
 *  slabmq_publish_options_init(). */
#define SLABMQ_PUBLISH_OPTIONS_INIT {0, 0, 0, 0, NULL, SLABMQ_CONFIRM_DEFAULT}

/**
 * Set every field of @p o to "left out": no delay, the queue's TTL, priority 0, no producer
 * id, the queue's confirm level.
 * @param o  the publish options to fill; not NULL.
 */
SLABMQ_API void slabmq_publish_options_init(slabmq_publish_options *o);

/**
 * The level the last slabmq_publish_opts() on @p c was confirmed at
 * (#SLABMQ_CONFIRM_MEMORY, #SLABMQ_CONFIRM_WRITTEN or #SLABMQ_CONFIRM_SYNCED), or
 * #SLABMQ_CONFIRM_DEFAULT if the broker did not say.
 * @param c the connection
 * @return the level, as above
 */
SLABMQ_API slabmq_confirm_level slabmq_last_confirm_level(const slabmq_client *c);

/**
 * slabmq_publish() with options (@p opts may be NULL: none).
 * @param id        if not NULL, receives the message id; for a duplicate, the id of the
 *                 message first published with the producer id.
 * @param duplicate if not NULL, set to 1 when the queue's de-duplication window already held
 *                 opts->id: nothing was stored (and the queue's limits were not checked).
 *                 Otherwise 0.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param data the payload, @p len bytes; borrowed for the call
 * @param len the payload's length in bytes
 * @param opts options, NULL for none; borrowed for the call
 * @return as slabmq_publish(); #SLABMQ_ERR_ARG for a priority over #SLABMQ_PRIORITY_MAX or a
 *        producer id of 0 or more than #SLABMQ_PRODUCER_ID_MAX bytes (nothing is sent);
 *        #SLABMQ_ERR_BAD_REQUEST when the broker refuses an option's range.
 */
SLABMQ_API slabmq_status slabmq_publish_opts(slabmq_client *c, const char *queue,
                                             const void *data, size_t len,
                                             const slabmq_publish_options *opts, uint64_t *id,
                                             int *duplicate);

/**
 * slabmq_publish_batch() with options that apply to every message (@p opts may be NULL).
 * A producer id names one message, so opts->id must be NULL (#SLABMQ_ERR_ARG otherwise).
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param msgs the messages; borrowed for the call
 * @param n how many, at least 1
 * @param opts options for every message, NULL for none; opts->id must be NULL
 * @param first_id if not NULL, receives the id of msgs[0]; msgs[i] has first_id + i
 * @return as slabmq_publish_batch(); #SLABMQ_ERR_ARG for a producer id or an option out of
 *         range (nothing sent)
 */
SLABMQ_API slabmq_status slabmq_publish_batch_opts(slabmq_client *c, const char *queue,
                                                   const slabmq_payload *msgs, size_t n,
                                                   const slabmq_publish_options *opts,
                                                   uint64_t *first_id);

/* ------------------------------------------------------------------------------------------ */
/* Pipelining                                                                                 */

/*
 * How pipelining works. The *_async calls build their request into the client's send buffer
 * and return; nothing is written yet. Queued requests leave together, in one send(2) when
 * the socket takes them all, when any of these comes first:
 *  - 64 KiB of requests are queued (the call that queues past it sends them all);
 *  - a limit below is reached (the call sends, then reads confirmations);
 *  - slabmq_send(), slabmq_flush() or slabmq_receive() is called;
 *  - any synchronous call is made: its request goes in the same write, after them, so a
 *    consumer's acks of one batch leave with its next slabmq_fetch();
 *  - on a connection with a subscription, a full QUIET run of acks (256 ids) is closed by a
 *    plain ACK: the run and that ACK leave at once, so the broker can push into the credit
 *    they give back while the consumer works through the rest of its push.
 * Confirmations are read when a call needs room, by slabmq_send() (those already arrived),
 * slabmq_receive(), slabmq_flush() and every synchronous call (which reads all of them
 * before its own reply), and handed to the callbacks in request order.
 *
 * Acks coalesce. A slabmq_ack_async() or slabmq_ack_flags_async() of one id whose request
 * would directly follow a QUIET ACK still queued (not yet sent) with the same flags adds
 * its id to that ACK instead of queuing a request of its own: a consumer acking each
 * message of a batch sends an ACK per 256 messages, not one per message. The calls that
 * joined one ACK get the same request id, and each call still gets its own confirmation
 * (in call order, with that request id and the call's count). Anything queued in between
 * (a publish, a NACK, a TERM, an ack with other flags), a send (slabmq_send(), a
 * synchronous call, slabmq_receive() when it reads) or a full QUIET run (256 ids; see
 * slabmq_ack_async()) ends the ACK, so requests still leave in the order of the calls.
 * NACK and TERM do not coalesce.
 *
 * Two limits, counted in requests (an ACK of coalesced calls is one), bound what is
 * unconfirmed:
 *  - the window (slabmq_client_set_window(), default 1024) counts publishes (and every
 *    other pipelined request that is not a settlement). When it is full, the call that
 *    filled it sends and reads confirmations until half of it is free;
 *  - settlements (slabmq_ack_async(), slabmq_ack_flags_async(), slabmq_nack_async(),
 *    slabmq_term_async()) do not count against the window. Their limit sizes itself: the
 *    broker's in-flight limit (max_inflight, announced at HELLO: slabmqd --max-inflight,
 *    default 10000; 10000 from a broker that does not announce it), or the window if that
 *    is larger. A connection cannot hold more unsettled messages than the broker's limit,
 *    so a consumer can queue an ack per message of any batch it fetched, whatever the
 *    window, and none of those calls stops to read a reply: they all leave with its next
 *    request. Only beyond that limit (settlements of ids it no longer holds, or several
 *    fetches without a synchronous call between) does the call read confirmations until
 *    half of it is free.
 *
 * Refusals (the sticky error). A refused pipelined request is reported to the confirmation
 * callbacks, if any is set, and by the next slabmq_flush() (the first failure since the
 * last flush). A refused publish that no callback was told of (none was set when its reply
 * was read) is also kept as the client's sticky error: from then on, every publish *_async
 * call (slabmq_publish_async() and its batch and opts forms) returns it at once, queuing
 * nothing, and slabmq_send() returns it after sending what is queued (also when the
 * refusal arrived during that call), until slabmq_client_take_error() or slabmq_flush()
 * clears it; slabmq_client_errmsg() says which request failed and why. So a producer
 * without a callback, pacing itself with slabmq_send(), learns of the refusal
 * (#SLABMQ_ERR_NOMEM at the broker's memory limit, #SLABMQ_ERR_QUEUE_FULL, ...) from its
 * next call, not only at its flush. Settlements, synchronous calls and slabmq_receive() do
 * not return the sticky error: holding back an ack would only cause a redelivery. Only the
 * first refusal is kept; the publishes queued after it may be refused as well (each is told
 * to the callbacks, when set, and the flush counts only the first).
 */

/**
 * Called once per pipelined request when its reply is read, in request order; for acks
 * that coalesced into one request ("How pipelining works" above), once per call, in call
 * order, each with the request id their calls all returned. It does not say what the
 * request was:
 * ::slabmq_confirmation_cb (slabmq_client_on_confirmation()) does.
 * @param request the id the *_async call returned.
 * @param status  #SLABMQ_OK or the broker's error for that request.
 * @param value   on success: the message id of a publish (the first id of a batch), or the
 *                number of messages an ack/nack settled.
 * Runs inside a libslabmq call on the same thread; it must not call back into the client.
 */
typedef void (*slabmq_confirm_cb)(void *arg, uint64_t request, slabmq_status status,
                                  uint64_t value);

/** Everything a pipelined request's reply says, for slabmq_client_on_confirm_ex(). */
typedef struct slabmq_confirm {
    uint64_t request;     /**< the id the *_async call returned */
    slabmq_status status; /**< #SLABMQ_OK or the broker's error for that request */
    uint64_t value;       /**< as for ::slabmq_confirm_cb */
    int duplicate;        /**< 1 for a slabmq_publish_opts_async() whose producer id the
                               queue already had: nothing was stored, and value is the id of
                               the first message published with it */
    slabmq_confirm_level level; /**< for slabmq_publish_opts_async(): the level it was
                               confirmed at; else #SLABMQ_CONFIRM_DEFAULT */
} slabmq_confirm;

/** Called like ::slabmq_confirm_cb, with the whole confirmation (borrowed for the call). */
typedef void (*slabmq_confirm_ex_cb)(void *arg, const slabmq_confirm *cf);

/** What a pipelined request was, in a ::slabmq_confirmation. */
typedef enum slabmq_async_op {
    SLABMQ_ASYNC_PUBLISH = 1, /**< slabmq_publish_async() and the batch and opts variants */
    SLABMQ_ASYNC_ACK = 2,     /**< slabmq_ack_async(), slabmq_ack_flags_async() */
    SLABMQ_ASYNC_NACK = 3,    /**< slabmq_nack_async() */
    SLABMQ_ASYNC_TERM = 4     /**< slabmq_term_async() */
} slabmq_async_op;

/** A pipelined request's confirmation, saying which operation it confirms, for
 *  slabmq_client_on_confirmation(). The library fills it and lends it to the callback for
 *  the call; callers only read it, so fields may be added at the end in later versions
 *  without a new soname. */
typedef struct slabmq_confirmation {
    slabmq_async_op op;         /**< what the request was */
    slabmq_status status;       /**< #SLABMQ_OK or the broker's error for that request */
    uint64_t request;           /**< the id the *_async call returned */
    uint64_t id;                /**< a publish's message id (of a batch: its first message's,
                                     the others follow it); 0 for settlements and failures */
    uint64_t count;             /**< on success, the messages the request covered: 1 for a
                                     publish, a batch's size, or how many an ack, NACK or
                                     TERM settled; 0 on failure (a partly failed ack says
                                     how many in the error message only) */
    int duplicate;              /**< as in ::slabmq_confirm */
    slabmq_confirm_level level; /**< as in ::slabmq_confirm */
    void *user;                 /**< the @p user given to slabmq_client_on_confirmation() */
} slabmq_confirmation;

/** Called once per pipelined request when its reply is read, in request order, with the
 *  confirmation (borrowed for the call). Runs inside a libslabmq call on the same thread;
 *  it must not call back into the client. */
typedef void (*slabmq_confirmation_cb)(const slabmq_confirmation *cf);

/**
 * Publish without waiting for the broker's confirmation. Requests are queued and sent
 * together (one send per 64 KiB of requests, see "How pipelining works" above); when the
 * window is full (slabmq_client_set_window(), default 1024 unconfirmed publishes), the call
 * reads confirmations until half the window is free. Confirmations are handed to the
 * callbacks, if set, and a failure is reported by the next slabmq_flush(); a refusal no
 * callback was told of is also the sticky error, returned by the next call (above). Any
 * synchronous call on the client first sends what is queued and reads all outstanding
 * confirmations.
 * @param request if not NULL, receives the request id the confirmation will carry.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param data the payload, @p len bytes; borrowed for the call
 * @param len the payload's length in bytes
 * @return #SLABMQ_OK when queued; the sticky error, the refusal of an earlier publish
 *         (nothing queued); an I/O error, or an argument error (nothing queued).
 */
SLABMQ_API slabmq_status slabmq_publish_async(slabmq_client *c, const char *queue,
                                              const void *data, size_t len, uint64_t *request);
/**
 * Pipelined slabmq_publish_batch().
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param msgs the messages; borrowed for the call
 * @param n how many, at least 1
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return as slabmq_publish_async()
 */
SLABMQ_API slabmq_status slabmq_publish_batch_async(slabmq_client *c, const char *queue,
                                                    const slabmq_payload *msgs, size_t n,
                                                    uint64_t *request);
/**
 * Pipelined slabmq_publish_opts(). Whether it was a duplicate is told to the
 * slabmq_confirm_ex_cb (slabmq_client_on_confirm_ex()); the plain callback gets the id.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param data the payload, @p len bytes; borrowed for the call
 * @param len the payload's length in bytes
 * @param opts options, NULL for none; borrowed for the call
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return as slabmq_publish_async(); #SLABMQ_ERR_ARG as for slabmq_publish_opts() (nothing
 *         queued)
 */
SLABMQ_API slabmq_status slabmq_publish_opts_async(slabmq_client *c, const char *queue,
                                                   const void *data, size_t len,
                                                   const slabmq_publish_options *opts,
                                                   uint64_t *request);
/**
 * Pipelined slabmq_publish_batch_opts().
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param msgs the messages; borrowed for the call
 * @param n how many, at least 1
 * @param opts options for every message, NULL for none; opts->id must be NULL
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return as slabmq_publish_async(); #SLABMQ_ERR_ARG as for slabmq_publish_batch_opts()
 *         (nothing queued)
 */
SLABMQ_API slabmq_status slabmq_publish_batch_opts_async(slabmq_client *c, const char *queue,
                                                         const slabmq_payload *msgs, size_t n,
                                                         const slabmq_publish_options *opts,
                                                         uint64_t *request);
/**
 * Pipelined slabmq_ack_batch(): the ACK goes out with the next send (for a consumer, in the
 * same write as its next slabmq_fetch(), unless 64 KiB of requests are queued first). It
 * does not count against the window: settlements have their own limit, the broker's
 * in-flight limit, so a consumer acking each message of a batch larger than the window
 * does not stop to read replies ("How pipelining works" above).
 *
 * Against a broker that takes it, the ACK is sent QUIET (docs/protocol.md 6.11), but never
 * more than 256 ids (or a quarter of the settlements' limit, if smaller) in a row: once
 * that many went QUIET, the next call is a plain ACK, whose reply confirms them. The broker
 * answers a QUIET ACK only on failure; its confirmation (#SLABMQ_OK, value n) is handed to
 * the callback when the reply to a later request arrives, such as that of the next fetch
 * or of the next plain ACK, or at slabmq_flush(). A push consumer acking each message
 * therefore has its acks confirmed every 257 or so, read by slabmq_receive().
 *
 * Consecutive calls of one id coalesce: while the QUIET ACK queued last is not sent and
 * nothing was queued after it, a call with the same flags and n = 1 adds its id to it and
 * returns that ACK's request id, so a consumer acking each message sends one ACK per 256
 * messages, which the broker settles in one go. Each call is still confirmed on its own
 * (value 1 for a call that joined, in call order).
 *
 * Failures are per request: when any id of a coalesced ACK is unknown (not in flight on
 * this connection: acked twice, timed out, ...), the broker still acks the known ids and
 * answers the whole request #SLABMQ_ERR_UNKNOWN_ID, so every call that joined it is
 * confirmed with that error (count 0), and slabmq_flush() reports it once; its message
 * (slabmq_client_errmsg() after the flush) says how many ids were unknown, the first of
 * them, and how many were settled. To learn exactly which id failed, ack it with
 * slabmq_ack(), or send each ack as its own request (slabmq_send() after each call).
 * @param c the connection
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return #SLABMQ_OK when queued; an argument or I/O error (nothing queued)
 */
SLABMQ_API slabmq_status slabmq_ack_async(slabmq_client *c, const uint64_t *ids, size_t n,
                                          uint64_t *request);
/**
 * Pipelined slabmq_nack_batch().
 * @param c the connection
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @param delay_ms not redelivered before now plus this, ms (0 to #SLABMQ_TIME_MAX_MS)
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return #SLABMQ_OK when queued; an argument or I/O error (nothing queued)
 */
SLABMQ_API slabmq_status slabmq_nack_async(slabmq_client *c, const uint64_t *ids, size_t n,
                                           uint64_t delay_ms, uint64_t *request);
/**
 * Pipelined slabmq_term().
 * @param c the connection
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @return #SLABMQ_OK when queued; an argument or I/O error (nothing queued)
 */
SLABMQ_API slabmq_status slabmq_term_async(slabmq_client *c, const uint64_t *ids, size_t n,
                                           uint64_t *request);
/**
 * Send what is queued now, without waiting for confirmations (for a producer at a fixed
 * rate, where latency matters more than batching); confirmations that have already arrived
 * are read and handed to the callback. Never blocks on the broker's replies.
 * @param c the connection
 * @return #SLABMQ_OK; the sticky error, if a publish was refused and no callback was told
 *         (it may have arrived in this call; what was queued has been sent all the same);
 *         or an I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED). Other
 *         failures of requests are reported by slabmq_flush().
 */
SLABMQ_API slabmq_status slabmq_send(slabmq_client *c);

/**
 * Send everything queued and wait for every outstanding confirmation. Clears the sticky
 * error.
 * @param c the connection
 * @return #SLABMQ_OK if every pipelined request since the last flush succeeded; otherwise
 * the status of the first that failed (slabmq_client_errmsg() says which and why), or an
 * I/O error.
 */
SLABMQ_API slabmq_status slabmq_flush(slabmq_client *c);
/**
 * Unconfirmed pipelined publishes allowed (at least 1; default 1024). Settlements (the ack,
 * NACK and TERM *_async calls) are not counted: their limit is the broker's in-flight limit,
 * or this window if larger ("How pipelining works" above).
 * @param c the connection
 * @param window the most unconfirmed requests; 0 counts as 1
 */
SLABMQ_API void slabmq_client_set_window(slabmq_client *c, uint32_t window);
/**
 * Set (or clear, with NULL) the confirmation callback.
 * @param c the connection
 * @param cb the callback, or NULL for none
 * @param arg passed to @p cb as is
 */
SLABMQ_API void slabmq_client_on_confirm(slabmq_client *c, slabmq_confirm_cb cb, void *arg);
/**
 * Set (or clear, with NULL) the extended confirmation callback; it is called after the
 * plain one when both are set. Kept for the programs that use it;
 * slabmq_client_on_confirmation() also says what each request was.
 * @param c the connection
 * @param cb the callback, or NULL for none
 * @param arg passed to @p cb as is
 */
SLABMQ_API void slabmq_client_on_confirm_ex(slabmq_client *c, slabmq_confirm_ex_cb cb,
                                            void *arg);
/**
 * Set (or clear, with NULL) the confirmation callback that says which operation each
 * confirmation is for (publish, ack, NACK, TERM) with its message id or count. It is called
 * after the ::slabmq_confirm_cb and ::slabmq_confirm_ex_cb when those are set too; any of
 * them set means refusals are told, so none becomes the sticky error.
 * @param c the connection
 * @param cb the callback, or NULL for none
 * @param user handed to @p cb as slabmq_confirmation::user
 */
SLABMQ_API void slabmq_client_on_confirmation(slabmq_client *c, slabmq_confirmation_cb cb,
                                              void *user);
/**
 * Pipelined requests not yet confirmed, settlements included; ack calls coalesced into one
 * ACK count once. QUIET acks stay counted until a later request's reply confirms them: to wait
 * for every confirmation, call slabmq_flush().
 * @param c the connection
 * @return the number of pipelined requests not yet confirmed
 */
SLABMQ_API uint64_t slabmq_client_outstanding(const slabmq_client *c);

/**
 * Read and clear the sticky error: the first pipelined publish refused since it was last
 * cleared that no confirmation callback was told of ("How pipelining works" above). After
 * it the publish *_async calls queue again. Sends nothing and waits for nothing; requests
 * queued after the refused one are still outstanding, and a later refusal among them
 * becomes the sticky error in turn. slabmq_flush() clears it too.
 * @param c the connection; may be NULL
 * @return the refused publish's status (slabmq_client_errmsg() then says which request and
 *         why), or #SLABMQ_OK when there is none (also for a NULL @p c)
 */
SLABMQ_API slabmq_status slabmq_client_take_error(slabmq_client *c);

/* ------------------------------------------------------------------------------------------ */
/* Consuming                                                                                  */

/** Why and where from a message was dead-lettered (docs/protocol.md section 7.6). Owned by
 *  the batch its message came in. */
typedef struct slabmq_dead_letter {
    const char *reason;  /**< "delivery-limit", "rejected" (TERM), "expired" (TTL) or
                              "max-length" (overflow dead-letter); a newer broker may add
                              reasons; "" if the broker sent none */
    const char *queue;   /**< the queue it was dead-lettered from ("" if not sent) */
    uint64_t deliveries; /**< its deliveries in that queue when it was dead-lettered */
} slabmq_dead_letter;

/** A delivered message. The data pointer is owned by the batch it came in. Fields may be
 *  added at the end in later versions: the library allocates messages, callers only read
 *  them. */
typedef struct slabmq_message {
    uint64_t id;         /**< broker-wide unique id; pass it to slabmq_ack() */
    uint32_t deliveries; /**< 1 on first delivery, more on redelivery */
    const void *data;    /**< payload, @p len bytes (not NUL-terminated) */
    size_t len;
    const slabmq_dead_letter *dead; /**< NULL, unless the message is a dead letter taken
                                         from a dead-letter queue */
} slabmq_message;

/** Messages from one fetch, peek or subscription push. Opaque. */
typedef struct slabmq_batch slabmq_batch;

/**
 * Fetch up to @p max messages from @p queue. If none is ready, wait up to @p wait_ms for one
 * (0 returns at once); returns as soon as at least one is available. An empty batch on
 * timeout is a success. Fetched messages must be acked within the queue's visibility
 * timeout or they are redelivered; they are also requeued when this connection closes.
 * @param out receives a batch; free it with slabmq_batch_free().
 * The call's socket timeout is extended by @p wait_ms.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param max the most messages to take, at least 1. For throughput, 512, with one FETCH
 *        kept ahead (slabmq_client_set_fetch_ahead(c, 1)), as slabmq-bench does: without
 *        read-ahead each FETCH is a round trip the broker and the client wait for in turn
 *        (some 10 µs of broker CPU on small machines), so a batch of 512 ran slower than one
 *        of 1,024 (docs/performance.md); a subscription (slabmq_subscribe()) has no round
 *        trip per batch either. Smaller batches trade throughput for fairness between
 *        consumers.
 * @param wait_ms how long to wait for a message, ms; 0 returns at once
 * @return #SLABMQ_OK (also for an empty batch), #SLABMQ_ERR_BAD_NAME, #SLABMQ_ERR_QUEUE_DELETED
 *         (deleted while waiting), #SLABMQ_ERR_CLIENT_NOMEM, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_fetch(slabmq_client *c, const char *queue, uint32_t max,
                                      uint32_t wait_ms, slabmq_batch **out);

/** Flags for slabmq_fetch_flags(). */
#define SLABMQ_FETCH_NOACK 1u /**< at-most-once: messages are removed when the broker
                                    replies, no ack needed */

/**
 * slabmq_fetch() with flags: #SLABMQ_FETCH_NOACK delivers at most once (like Redis LPOP or
 * an auto-ack consumer): nothing to ack, nothing redelivered if the consumer fails. The
 * messages are removed when the broker puts them into its reply, so a connection that
 * closes before the reply is read loses them (docs/protocol.md 6.10).
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param max the most messages to take, at least 1
 * @param wait_ms how long to wait for a message, ms; 0 returns at once
 * @param flags 0 or #SLABMQ_FETCH_NOACK
 * @param out receives a batch; free it with slabmq_batch_free()
 * @return as slabmq_fetch(); #SLABMQ_ERR_ARG for an unknown flag
 */
SLABMQ_API slabmq_status slabmq_fetch_flags(slabmq_client *c, const char *queue, uint32_t max,
                                            uint32_t wait_ms, unsigned flags,
                                            slabmq_batch **out);

/**
 * Fetch from the first of @p n queues (1 to #SLABMQ_FETCH_QUEUES_MAX) that has a ready
 * message, and from that one only, like Redis's BLPOP on several keys. If none has one,
 * wait up to @p wait_ms on all of them; the first to get a message answers. Every queue is
 * created if missing. slabmq_batch_queue() tells which queue the messages came from (NULL
 * for an empty batch). @p flags as for slabmq_fetch_flags().
 * @param c the connection
 * @param queues the queues' names; borrowed for the call
 * @param n how many queues, 1 to #SLABMQ_FETCH_QUEUES_MAX
 * @param max the most messages to take, at least 1
 * @param wait_ms how long to wait for a message, ms; 0 returns at once
 * @param flags 0 or #SLABMQ_FETCH_NOACK
 * @param out receives a batch; free it with slabmq_batch_free()
 * @return as slabmq_fetch_flags(); #SLABMQ_ERR_ARG for @p n out of range
 */
SLABMQ_API slabmq_status slabmq_fetch_any(slabmq_client *c, const char *const *queues,
                                          size_t n, uint32_t max, uint32_t wait_ms,
                                          unsigned flags, slabmq_batch **out);

/** The most FETCHes slabmq_client_set_fetch_ahead() keeps ahead. */
#define SLABMQ_FETCH_AHEAD_MAX 64

/**
 * FETCH read-ahead: keep @p depth FETCHes on their way, so that slabmq_fetch(),
 * slabmq_fetch_flags() and slabmq_fetch_any() usually find their batch already read or
 * arriving instead of waiting a round trip for it. Off (0) by default. Since libslabmq 1.3.
 *
 * What the calls do with a depth over 0:
 *  - A call hands out the oldest batch fetched ahead (by an earlier call) that holds
 *    messages, waiting for its reply if it has not arrived. A batch "suggests more are
 *    waiting" when it holds the call's @p max messages, or the call names several queues.
 *    If the previous batch handed out did, the call first sends one more FETCH with its own
 *    arguments (queue or queues, max, flags; wait 0) in the same write as everything queued
 *    since the last call (the acks of the previous batch among them), then waits; if not,
 *    it sends that FETCH after it has the batch, only if that batch suggests more. So while
 *    batches come full the broker always has the next FETCH, and fills it while the
 *    application works.
 *  - Without a batch ahead (the first call, or after the ones ahead came back empty or
 *    failed) the call makes its own FETCH as without read-ahead, with its @p wait_ms (the
 *    only long poll: FETCHes sent ahead never wait), and sends @p depth FETCHes ahead
 *    after it when its batch suggests more are waiting (as above). After a short batch of
 *    one queue none is sent: a consumer that keeps up with its producer long-polls rather
 *    than polling the broker with FETCHes that come back nearly empty.
 *  - Fetched-ahead messages are delivered (in flight, their deliveries counted, their
 *    visibility timeout running, counted against the broker's in-flight limit) when the
 *    broker answers the FETCH sent ahead, before the application asks for them: a queue's
 *    visibility timeout must cover working through @p depth + 1 batches, not one.
 *  - A call hands out a batch fetched ahead whatever queue and flags it names: the batch
 *    fetched ahead by an earlier call, with that call's queue (slabmq_batch_queue() names
 *    it) and flags (without #SLABMQ_FETCH_NOACK its messages must be acked). With a smaller
 *    @p max than the batch, it hands out @p max messages and the rest stays first, in
 *    order. An application that fetches from different queues in turn and must get each
 *    call's queue leaves read-ahead off; one that drains many queues can name groups of
 *    them in turn with slabmq_fetch_any() and keep up to one fewer FETCHes ahead than a
 *    group has queues, so that none finds its group empty.
 *  - A FETCH sent ahead that fails (its queue deleted, the in-flight limit reached) is not
 *    reported: the call that would have handed it out goes on to the next one ahead, or makes
 *    its own FETCH, which reports the failure if it lasts. I/O errors are reported by the
 *    call that meets them, as always.
 *  - On slabmq_client_close() (or a lost connection) the broker requeues every message this
 *    connection holds, those fetched ahead and never handed out included (with
 *    #SLABMQ_FETCH_NOACK they are gone once the broker answered: lost). They come back at
 *    once with this delivery counted (dead-lettered if that was the queue's last), as after
 *    any consumer's close.
 *  - Other synchronous calls (slabmq_ping(), slabmq_flush(), ...) read the replies to FETCHes
 *    sent ahead and keep them for the next fetch call; a FETCH sent ahead counts against
 *    the window (slabmq_client_set_window()) like a pipelined publish.
 * Lowering the depth (or 0) stops sending more; those already sent are still handed out
 * first. Recommended for a consumer that fetches one queue in batches and acks with
 * slabmq_ack_async(): 1 (what slabmq-bench uses); more helps when each batch is small (a
 * few messages) and the round trip dominates.
 * @param c the connection
 * @param depth FETCHes to keep ahead, 0 to #SLABMQ_FETCH_AHEAD_MAX
 * @return #SLABMQ_OK, #SLABMQ_ERR_ARG (a NULL @p c or @p depth over the maximum),
 *         #SLABMQ_ERR_CLIENT_NOMEM
 */
SLABMQ_API slabmq_status slabmq_client_set_fetch_ahead(slabmq_client *c, uint32_t depth);

/**
 * Look at up to @p max ready messages of @p queue without taking them (deliveries is the
 * count so far). Free the batch with slabmq_batch_free().
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param max the most messages to take, at least 1
 * @param out receives a batch (empty when the queue has no ready message); free it with
 *            slabmq_batch_free()
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, #SLABMQ_ERR_CLIENT_NOMEM, or an I/O error
 *         (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_peek(slabmq_client *c, const char *queue, uint32_t max,
                                     slabmq_batch **out);

/**
 * slabmq_peek() after skipping the first @p skip ready messages: to browse a queue page by
 * page, pass the number already seen. The broker walks past the skipped ones, and a page
 * can shift when the queue changes between calls.
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param max the most messages to take, at least 1
 * @param skip ready messages to skip from the head
 * @param out receives a batch; free it with slabmq_batch_free()
 * @return as slabmq_peek()
 */
SLABMQ_API slabmq_status slabmq_peek_skip(slabmq_client *c, const char *queue, uint32_t max,
                                          uint64_t skip, slabmq_batch **out);

/**
 * The number of messages in a batch.
 * @param b the batch; may be NULL
 * @return the number of messages in @p b; 0 for NULL
 */
SLABMQ_API size_t slabmq_batch_count(const slabmq_batch *b);
/**
 * @param b the batch
 * @param i the index, from 0
 * @return the i-th message, valid until slabmq_batch_free(); NULL when out of range.
 */
SLABMQ_API const slabmq_message *slabmq_batch_get(const slabmq_batch *b, size_t i);
/**
 * @param b the batch
 * @return the queue the batch's messages are from (borrowed from @p b): the queue fetched
 * or peeked, the one slabmq_fetch_any() took from, or the subscription's queue; NULL when
 * unknown (an empty slabmq_fetch_any() batch).
 */
SLABMQ_API const char *slabmq_batch_queue(const slabmq_batch *b);
/**
 * @param b the batch
 * @return the subscription a slabmq_receive() batch belongs to; 0 for other batches.
 */
SLABMQ_API uint64_t slabmq_batch_subscription(const slabmq_batch *b);
/**
 * Free a batch, with its messages and their data.
 * @param b the batch; may be NULL
 */
SLABMQ_API void slabmq_batch_free(slabmq_batch *b);

/**
 * Acknowledge one message: the broker forgets it. #SLABMQ_ERR_UNKNOWN_ID if this connection
 * does not hold it (never fetched, already acked, or redelivered after its timeout).
 * @param c the connection that fetched the message
 * @param id the message's id, as delivered
 * @return #SLABMQ_OK, #SLABMQ_ERR_UNKNOWN_ID, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_ack(slabmq_client *c, uint64_t id);

/**
 * Acknowledge @p n messages in one frame. Known ids are acked even when some are unknown,
 * in which case the call returns #SLABMQ_ERR_UNKNOWN_ID and slabmq_client_errmsg() says how
 * many were unknown and how many were acked.
 * @param acked if not NULL, receives how many were acked (on #SLABMQ_OK: n).
 * @param c the connection that fetched the messages
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @return #SLABMQ_OK when all were acked, #SLABMQ_ERR_UNKNOWN_ID when some were not, or an I/O
 *         error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_ack_batch(slabmq_client *c, const uint64_t *ids, size_t n,
                                          uint64_t *acked);

/** ACK flag of slabmq_ack_flags() and slabmq_ack_flags_async(): the reply waits until the
 *  broker has committed the ACK to its store, so the message never comes back after a crash
 *  of the broker (docs/durability.md, "Confirmed acks"; JetStream's synchronous ack). Costs a
 *  commit's wait (about a millisecond, more when the writer is busy) on acks of durable
 *  queues; on in-memory queues and brokers without durability the reply is immediate. */
#define SLABMQ_ACK_CONFIRMED 2u

/**
 * slabmq_ack_batch() with flags.
 * @param c       the connection that fetched the messages
 * @param ids     the messages' ids; borrowed for the call
 * @param n       how many (at least 1)
 * @param flags   0 or #SLABMQ_ACK_CONFIRMED
 * @param acked   if not NULL, receives how many were acked (on #SLABMQ_OK: n)
 * @return #SLABMQ_OK once acked (with #SLABMQ_ACK_CONFIRMED: and committed); errors as for
 *         slabmq_ack_batch(); #SLABMQ_ERR_ARG for an unknown flag, or #SLABMQ_ACK_CONFIRMED
 *         when the broker does not announce it (HELLO features bit 1), nothing sent.
 * Not thread-safe on one @p c, like every call on a connection.
 */
SLABMQ_API slabmq_status slabmq_ack_flags(slabmq_client *c, const uint64_t *ids, size_t n,
                                          unsigned flags, uint64_t *acked);

/**
 * Pipelined slabmq_ack_flags(), as slabmq_ack_async(). With #SLABMQ_ACK_CONFIRMED the
 * confirmation handed to the callback (and the reply to any later request on @p c, as the
 * ACK may go QUIET) comes only after the broker has committed the ACK.
 * @param request if not NULL, receives the request id the confirmation callback will name
 * @param c the connection that fetched the messages
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @param flags 0 or #SLABMQ_ACK_CONFIRMED
 * @return #SLABMQ_OK when queued; #SLABMQ_ERR_ARG as for slabmq_ack_flags().
 */
SLABMQ_API slabmq_status slabmq_ack_flags_async(slabmq_client *c, const uint64_t *ids,
                                                size_t n, unsigned flags, uint64_t *request);

/**
 * Still working on these: restart the visibility timeout of @p n messages this connection
 * holds (like beanstalkd's touch or JetStream's in-progress). Partial success as for
 * slabmq_ack_batch(). @param touched if not NULL, receives how many were extended.
 * @param c the connection that holds the messages
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @return #SLABMQ_OK when all were extended, #SLABMQ_ERR_UNKNOWN_ID when some were not, or an
 *         I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_touch(slabmq_client *c, const uint64_t *ids, size_t n,
                                      uint64_t *touched);

/**
 * Return one message to its queue for redelivery, not before @p delay_ms from now (up to
 * #SLABMQ_TIME_MAX_MS). A message that has reached its queue's max_deliveries is
 * dead-lettered instead, whatever the delay.
 * @param c the connection that fetched the message
 * @param id the message's id, as delivered
 * @param delay_ms not redelivered before now plus this, ms (0 to #SLABMQ_TIME_MAX_MS)
 * @return #SLABMQ_OK, #SLABMQ_ERR_UNKNOWN_ID, #SLABMQ_ERR_BAD_REQUEST (delay out of range), or
 *         an I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_nack(slabmq_client *c, uint64_t id, uint64_t delay_ms);

/**
 * NACK @p n messages; partial success as for slabmq_ack_batch().
 * @param c the connection that fetched the messages
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @param delay_ms not redelivered before now plus this, ms (0 to #SLABMQ_TIME_MAX_MS)
 * @param nacked if not NULL, receives how many were NACKed
 * @return as slabmq_ack_batch()
 */
SLABMQ_API slabmq_status slabmq_nack_batch(slabmq_client *c, const uint64_t *ids, size_t n,
                                           uint64_t delay_ms, uint64_t *nacked);

/**
 * Give up on @p n messages this connection holds: each is dead-lettered at once with reason
 * "rejected", without further retries (or discarded if its queue has no dead-letter queue).
 * Partial success as for slabmq_ack_batch().
 * @param terminated if not NULL, receives how many were terminated.
 * @param c the connection that holds the messages
 * @param ids the messages' ids; borrowed for the call
 * @param n how many, at least 1
 * @return #SLABMQ_OK when all were terminated, #SLABMQ_ERR_UNKNOWN_ID when some were not, or an
 *         I/O error (#SLABMQ_ERR_IO, #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_term(slabmq_client *c, const uint64_t *ids, size_t n,
                                     uint64_t *terminated);

/* ------------------------------------------------------------------------------------------ */
/* Subscriptions                                                                              */

/**
 * Subscribe to @p queue (created if missing): the broker pushes its messages to this
 * connection, without further requests, while the subscription has credit: at most
 * @p credit (1 to the broker's in-flight window) of the messages pushed through it are
 * unsettled at once. Acking, NACKing, terminating a pushed message (or its timing out)
 * gives its credit back. Pushed messages are in flight exactly as if fetched. Read them
 * with slabmq_receive(). Several subscribers of one queue share its messages in turn.
 * @param subscription receives the subscription's id (positive, unique on the connection).
 * @param c the connection
 * @param queue the queue's name; borrowed for the call
 * @param credit the most messages pushed and not yet settled, 1 to the broker's window. For
 *        throughput, 1,024: acked one by one with slabmq_ack_async(), every 257 acks leave
 *        at once and give their credit back while the rest of a push is worked through, so
 *        the broker pushes again before the consumer asks; with 512 the broker waits out a
 *        round trip per half of it (a 16-byte drain at 7.2-7.4M msg/s against 11.3-12.5M
 *        with 1,024 and 12.6-13.2M with 2,048, docs/performance.md)
 * @return #SLABMQ_ERR_LIMIT at the broker's 64 subscriptions per connection, ...
 */
SLABMQ_API slabmq_status slabmq_subscribe(slabmq_client *c, const char *queue, uint32_t credit,
                                          uint64_t *subscription);

/**
 * End a subscription. Nothing more is pushed for it after this returns, but pushes that
 * arrived before are still handed out by slabmq_receive(), and its messages stay in
 * flight to be settled as usual. #SLABMQ_ERR_NOT_FOUND if the connection has no such
 * subscription.
 * @param c the connection
 * @param subscription the id slabmq_subscribe() gave
 * @return #SLABMQ_OK, #SLABMQ_ERR_NOT_FOUND, or an I/O error (#SLABMQ_ERR_IO,
 *         #SLABMQ_ERR_TIMEOUT, #SLABMQ_ERR_CLOSED)
 */
SLABMQ_API slabmq_status slabmq_unsubscribe(slabmq_client *c, uint64_t subscription);

/**
 * The next batch of messages the broker pushed for one of this connection's subscriptions,
 * waiting up to @p timeout_ms for it (0: return at once; negative: no limit).
 *
 * Pushes that arrive while another call waits for its reply are kept, in order, for
 * slabmq_receive(); they are bounded by the subscriptions' credit, since every pushed
 * message stays in flight until settled. Before reading from the broker, slabmq_receive()
 * sends the pipelined requests queued (such as a slabmq_ack_async() of the previous batch)
 * and hands the confirmations that arrive to the callback; pushes already received are
 * handed out first, so the acks of all the pushes that came in one read leave in one send.
 * Acks sent QUIET (slabmq_ack_async()) have no reply of their own: they are confirmed by
 * the reply to a later request, or by slabmq_flush().
 *
 * A batch is one push of the broker, as large as the subscription's credit allowed at the
 * time: to take at most N at a time, use slabmq_receive_max().
 *
 * @param out receives a batch; slabmq_batch_subscription() and slabmq_batch_queue() say
 *           whose it is. An empty batch (subscription 0) when nothing arrived in time or a
 *           signal interrupted the wait: a success, as for slabmq_fetch().
 * @param c the connection
 * @param timeout_ms how long to wait, ms; 0: not at all; negative: no limit
 * @return #SLABMQ_OK; or, when the broker ended a subscription, its reason:
 *        #SLABMQ_ERR_QUEUE_DELETED (its queue was deleted) or #SLABMQ_ERR_SHUTDOWN, and
 *        then *out is also set, to an empty batch naming the subscription, to be freed
 *        like any; slabmq_client_errmsg() says which ended and why. On any other failure
 *        *out is NULL.
 */
SLABMQ_API slabmq_status slabmq_receive(slabmq_client *c, int timeout_ms, slabmq_batch **out);

/**
 * slabmq_receive() that hands out at most @p max messages: when the oldest push holds more,
 * the first @p max of it are copied into the batch returned and the rest stay first in line
 * for the next call (in order, from the same subscription). Costs a copy of the messages
 * handed out of a push that is split; none when a push fits.
 * @param c the connection
 * @param timeout_ms as for slabmq_receive()
 * @param max the most messages in the batch; 0: no limit (slabmq_receive())
 * @param out as for slabmq_receive()
 * @return as slabmq_receive()
 */
SLABMQ_API slabmq_status slabmq_receive_max(slabmq_client *c, int timeout_ms, size_t max,
                                            slabmq_batch **out);

#ifdef __cplusplus
}
#endif
#endif /* SLABMQ_H */
