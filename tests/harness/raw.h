/* SPDX-License-Identifier: MIT */
/* Raw-socket helpers for the hostile-input tests (test_bad_frames.c, test_bad_requests.c,
 * test_hostile_clients.c).
 *
 * Every case starts a broker, connects a well-behaved library client ("the other client")
 * BEFORE the bad input, sends the bad input on a raw socket, checks the exact reply (or that
 * the connection was closed), and then checks that the other client still gets served (PING,
 * publish + fetch + ack round trip), that the broker process is alive, and that no
 * connection record is left behind. t_broker_stop() finally asserts a clean exit status,
 * which under -DSLABMQ_SANITIZE=address,undefined also catches leaks and memory errors.
 *
 * Requests are packed by hand with the mb_* writer so that any byte sequence can be
 * produced; replies are decoded with protocol/mpread.h's cursor (linked through
 * slabmq_static). Every wait is bounded. Checks take the caller's file and line (the
 * UPPER_CASE macros pass them) and fail the test through t_fail(). */
#ifndef SLABMQ_TESTS_RAW_H
#define SLABMQ_TESTS_RAW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "slabmq.h"
#include "t.h"

#include "../../protocol/frame.h"
#include "../../protocol/mpread.h"
#include "../../protocol/ops.h"

#define MIB ((size_t)1 << 20)
#define DEFAULT_MAX_MSG ((uint32_t)1 << 20)
#define DEFAULT_MAX_BODY (DEFAULT_MAX_MSG + SMQ_FRAME_SLACK) /* 1 MiB + 1024 */
#define REPLY_MS 5000                                          /* wait for one reply */
#define CLOSE_MS 5000                                          /* wait for a close */
#define OTHER_Q "bad_input.other" /* the other client's queue */

/* ---------------------------------------------------------------------------------------- */
/* A tiny msgpack writer: any bytes, valid or not                                            */

struct mb {
    uint8_t *p; /* bytes written so far (heap, NULL when empty) */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
};

/* Append n raw bytes. */
void mb_put(struct mb *b, const void *d, size_t n);
/* Append one raw byte. */
void mb_byte(struct mb *b, uint8_t x);
/* Append v big-endian in the given number of bytes. */
void mb_be(struct mb *b, uint64_t v, int bytes);
/* Array header for n elements (fixarray, array16 or array32). */
void mb_arr(struct mb *b, uint32_t n);
/* Map header for n pairs (fixmap, map16 or map32). */
void mb_map(struct mb *b, uint32_t n);
/* Unsigned integer in its shortest encoding. */
void mb_uint(struct mb *b, uint64_t v);
/* A negative integer (negative fixint or int64). */
void mb_neg(struct mb *b, int64_t v);
/* A float64. */
void mb_f64(struct mb *b, double x);
/* nil. */
void mb_nil(struct mb *b);
/* A string of n bytes in its shortest header. */
void mb_strn(struct mb *b, const char *s, size_t n);
/* A NUL-terminated string. */
void mb_str(struct mb *b, const char *s);
/* A bin of n bytes in its shortest header. */
void mb_bin(struct mb *b, const void *d, size_t n);
/* [op, rid, ...nargs arguments follow] */
void mb_req(struct mb *b, unsigned op, uint64_t rid, uint32_t nargs);
/* Append one frame holding body[0..n) to a byte stream. */
void mb_frame(struct mb *stream, const void *body, size_t n);
/* Release the buffer; b is empty and reusable afterwards. */
void mb_free(struct mb *b);

/* Send body[0..n) as one frame with one send() call. */
void send_frame(int fd, const void *body, size_t n);
/* Send without blocking for more than ms in all (the peer may have stopped reading).
 * Returns the bytes sent. */
size_t send_bounded(int fd, const void *p, size_t n, int ms);
/* Send the body built in b as one frame, then empty b for the next request. */
void send_mb(int fd, struct mb *b);

/* ---------------------------------------------------------------------------------------- */
/* Replies                                                                                   */

struct rep {
    uint64_t op;
    uint64_t rid;
    uint64_t status;
    uint32_t n;      /* elements of the reply array */
    const char *msg; /* error message when status != 0 */
    uint32_t msglen;
    struct smq_mpr r; /* positioned on the first result */
};

/* The receive buffer of recv_rep() and the checks (64 KiB); p.msg and p.r point into it. */
extern uint8_t rep_buf[1 << 16];

/* Decode [op, rid, status, ...]; an error reply must be exactly [op, rid, code, str]. */
void parse_rep(const char *file, int line, const uint8_t *body, size_t len, struct rep *p);
/* Receive one reply frame into buf (cap bytes, within ms) and decode it. */
void recv_rep_buf(const char *file, int line, int fd, uint8_t *buf, size_t cap, int ms,
                  struct rep *p);
/* Receive one reply frame into rep_buf within REPLY_MS and decode it. */
void recv_rep(const char *file, int line, int fd, struct rep *p);
/* The next reply must be the error [op, rid, code, message]. */
void raw_expect_err(const char *file, int line, int fd, uint64_t op, uint64_t rid,
                    unsigned code);
/* The next reply must be a success for (op, rid); p receives it. */
void raw_expect_ok(const char *file, int line, int fd, uint64_t op, uint64_t rid,
                   struct rep *p);
/* The broker must close fd without sending anything more. */
void raw_expect_eof(const char *file, int line, int fd);
/* fd must still be open: nothing to read, no EOF, for ms. */
void raw_expect_open(const char *file, int line, int fd, int ms);
/* PING on fd must still work (the connection survived an error). */
void raw_expect_ping(const char *file, int line, int fd);
/* After an error whose effect on the connection docs/protocol.md and the broker disagree
 * about: closed, or still usable with a PING answered with want_status. Returns 1 if open. */
int raw_closed_or_usable(const char *file, int line, int fd, unsigned want_status);
/* Send the request in b (emptied), expect [op, rid, code, msg] and a usable connection. */
void raw_req_err(const char *file, int line, int fd, struct mb *b, uint64_t op, uint64_t rid,
                 unsigned code);

#define EXPECT_ERR(fd, op, rid, code) raw_expect_err(__FILE__, __LINE__, fd, op, rid, code)
#define EXPECT_OK(fd, op, rid, p) raw_expect_ok(__FILE__, __LINE__, fd, op, rid, p)
#define EXPECT_EOF(fd) raw_expect_eof(__FILE__, __LINE__, fd)
#define EXPECT_OPEN(fd, ms) raw_expect_open(__FILE__, __LINE__, fd, ms)
#define EXPECT_PING(fd) raw_expect_ping(__FILE__, __LINE__, fd)
#define CLOSED_OR_USABLE(fd, want) raw_closed_or_usable(__FILE__, __LINE__, fd, want)
#define REQ_ERR(fd, b, op, rid, code) raw_req_err(__FILE__, __LINE__, fd, b, op, rid, code)

/* ---------------------------------------------------------------------------------------- */
/* Connections and the other client                                                         */

/* A raw connection that has done HELLO (request id 1). */
int raw_session(const struct t_broker *b);
/* Segments carrying data that have come in on the TCP socket fd so far (TCP_INFO
 * tcpi_data_segs_in): over loopback, one per send()/writev() of the peer that was small
 * enough for one segment, however the two processes were scheduled. */
uint32_t raw_data_segs_in(int fd);
/* A raw connection with a small receive buffer, so the broker's output backs up. */
int raw_connect_small(int port, int rcvbuf);
/* Close with an immediate RST instead of a FIN. */
void close_reset(int fd);
/* One statistic of the broker (queue NULL) or of a queue, over the library client. */
uint64_t raw_stat_get(const char *file, int line, slabmq_client *c, const char *queue,
                      const char *name);
/* Poll a statistic until it equals want (bounded by ms); fails with the last value. */
void raw_wait_stat(const char *file, int line, slabmq_client *c, const char *queue,
                   const char *name, uint64_t want, int ms);
/* The other client still gets served: the broker is alive, PING works and a message makes
 * a publish + fetch + ack round trip on OTHER_Q. */
void raw_other_works(const char *file, int line, const struct t_broker *b, slabmq_client *c);
/* End of a case: the other client works, only it is still connected, nothing is in flight;
 * closes it and stops the broker cleanly. */
void raw_finish(const char *file, int line, struct t_broker *b, slabmq_client *other);
/* Bytes sent on a fresh connection (after HELLO if hello) must draw the connection-level
 * error [0, 0, code, msg], and then the broker must close the connection. */
void raw_expect_fatal(const char *file, int line, const struct t_broker *b, int hello,
                      const void *bytes, size_t n, unsigned code);
/* Memory figures of a process from /proc/PID/status, in KiB (0 if absent). */
uint64_t proc_kib(pid_t pid, const char *field);
/* Parse a FETCH/PEEK result [[id, deliveries, payload], ...]; ids[] gets up to cap ids.
 * Returns the number of messages. */
uint32_t parse_messages(const char *file, int line, struct rep *p, uint64_t *ids,
                        uint32_t cap);
/* FETCH [queue, max] on a raw session; returns the count, ids[] the first cap ids. */
uint32_t raw_fetch(const char *file, int line, int fd, uint64_t rid, const char *queue,
                   uint32_t max, uint64_t *ids, uint32_t cap);
/* Send ACK [ids] on a raw session; the reply is left to read. */
void raw_ack_send(int fd, uint64_t rid, const uint64_t *ids, uint32_t n);
/* A successful ACK/NACK reply [op, rid, 0, count]; returns count. */
uint64_t raw_expect_count(const char *file, int line, int fd, uint64_t op, uint64_t rid);

#define STAT(c, queue, name) raw_stat_get(__FILE__, __LINE__, c, queue, name)
#define WAIT_STAT(c, queue, name, want, ms)                                                     \
    raw_wait_stat(__FILE__, __LINE__, c, queue, name, want, ms)
#define OTHER_WORKS(b, c) raw_other_works(__FILE__, __LINE__, b, c)
#define FINISH(b, other) raw_finish(__FILE__, __LINE__, b, other)
#define EXPECT_FATAL(b, hello, bytes, n, code)                                                  \
    raw_expect_fatal(__FILE__, __LINE__, b, hello, bytes, n, code)
#define RAW_FETCH(fd, rid, q, max, ids, cap)                                                    \
    raw_fetch(__FILE__, __LINE__, fd, rid, q, max, ids, cap)
#define EXPECT_COUNT(fd, op, rid) raw_expect_count(__FILE__, __LINE__, fd, op, rid)

#endif /* SLABMQ_TESTS_RAW_H */
