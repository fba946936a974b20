/* SPDX-License-Identifier: MIT */
/* Guards on connections beyond conn.c's per-frame limits: the users of --auth-file, the
 * handshake deadline (--handshake-timeout), the delay before a failed AUTH is answered, the
 * idle timeout (--idle-timeout), and the start-up warning about listening on a public
 * address without authentication. docs/security.md lists every limit and its default.
 *
 * Deadlines: a connection waits in up to two of four server lists (handshaking, auth_failed
 * or auth_refused, and idle), each ordered by the time its deadline counts from; all deadlines of
 * a list have the same length, so the head of each list is its first due and one libevent
 * timer armed at the earliest head serves them all. Adding, removing and marking a
 * connection active are O(1); a timer run is O(connections expired). */
#ifndef SLABMQ_BROKER_NET_GUARD_H
#define SLABMQ_BROKER_NET_GUARD_H

#include <stdint.h>

#include "req/req.h"

struct conn;
struct server;

/* The largest request body a connection may send before its handshake is done (HELLO, and
 * AUTH when the broker has users): HELLO and AUTH need far less. */
#define GUARD_HANDSHAKE_FRAME_MAX 4096u
/* How long a failed AUTH waits before its error reply and the close. */
#define GUARD_AUTH_FAIL_DELAY_MS 200u
/* How long an AUTH refused without a check (throttled, or no check slot free) waits: longer,
 * since its client is one of a crowd, and each reconnection costs the loop. */
#define GUARD_AUTH_REFUSE_DELAY_MS 1000u

/* Load the users file if configured, set up the timer and lists, and warn loudly when the
 * broker is about to listen on a non-loopback address without authentication. Returns 0, or
 * -1 after printing one line on stderr. */
int guard_init(struct server *s);
/* Free what guard_init made; safe after a failed or skipped guard_init. */
void guard_deinit(struct server *s);
/* A new connection: its handshake deadline starts now. */
void guard_conn_open(struct conn *c);
/* c is closing: take it off every list. */
void guard_conn_close(struct conn *c);
/* Bytes arrived on c: its idle time starts again. */
void guard_conn_input(struct conn *c);
/* c finished its handshake (HELLO without auth, AUTH with it): no more deadline, the
 * handshake frame limit no longer applies. */
void guard_handshake_done(struct conn *c);
/* AUTH request rid failed on c: c is read no more, and after the delay of why it gets its
 * error and is closed. */
void guard_auth_failed(struct conn *c, uint64_t rid, enum req_refusal why);
/* Log a refusal of AUTH or HTTP credentials made without a check (throttled, or no check
 * slot) at warn level, at most one line a second: a crowd of guessers must not turn the log
 * into the bottleneck. fmt is the line; the lines held back since the last are counted in the
 * next. */
void guard_log_refusal(struct server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* SLABMQ_BROKER_NET_GUARD_H */
