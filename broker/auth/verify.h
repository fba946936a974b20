/* SPDX-License-Identifier: MIT */
/* Password checks off the event loop: the AUTH op (cmd_auth.c) and HTTP Basic (http_auth.c)
 * hand a name and password here and get the user, or a failure, through a callback on the
 * loop's thread.
 *
 * A check whose password is in the success cache (auth_cached) finishes at once. Any other
 * takes one of VERIFY_SLOTS slots, which bounds the checks pending in all (memory: 1.3 KiB a
 * slot, fixed at start); with none free the caller is told VERIFY_BUSY and refuses the
 * attempt. The slot waits first for the throttle (throttle.h: failures per source address and
 * per name), on a timer, then joins a FIFO served by VERIFY_WORKERS hash threads, which run
 * auth_check (PBKDF2: milliseconds to a second) at a lower scheduling priority than the loop.
 * A thread puts the finished slot on a done list and writes an eventfd; the loop's callback
 * records the result in the throttle and the success cache and calls the owner back.
 *
 * Who owns what: the loop owns a slot except between verify's submit and the worker's done
 * push, when only the worker touches its input and output fields; the FIFO and the done list
 * are under one mutex. An owner that goes away (a connection closed, an HTTP request
 * abandoned) calls verify_cancel(): no callback comes, a check still queued is skipped (a
 * brute-forcer that closes at once costs no hash), and the slot is freed once the thread has
 * let go of it. */
#ifndef SLABMQ_BROKER_AUTH_VERIFY_H
#define SLABMQ_BROKER_AUTH_VERIFY_H

#include <stddef.h>
#include <stdint.h>

struct auth;
struct auth_user;
struct event_base;
struct verify;
struct verify_slot;

#define VERIFY_SLOTS 64  /* checks pending at once (throttle waits, queued, running) */
#define VERIFY_WORKERS 1 /* hash threads; on a 2-core machine the loop keeps the other core */

enum verify_result {
    VERIFY_OK,        /* cached: *user is set, no callback */
    VERIFY_PENDING,   /* the callback comes later, unless verify_cancel() is called first */
    VERIFY_BUSY,      /* every slot is taken: refuse the attempt (no callback) */
    VERIFY_THROTTLED  /* too many recent failures for this address or name (no callback) */
};

/* Start the hash threads for the users of a (borrowed; it must outlive the struct verify).
 * Returns a new struct verify (free with verify_free()), or NULL. */
struct verify *verify_new(struct event_base *base, struct auth *a);
/* Stop the threads (a check running finishes first; queued ones are dropped without their
 * callbacks) and free every slot. Accepts NULL. */
void verify_free(struct verify *v);

/* Check password pw[0..pwlen) for name[0..nlen) on behalf of owner, from source address addr
 * ("host:port" as logged). pw is copied; one longer than AUTH_PASSWORD_MAX fails. On VERIFY_PENDING *slot identifies the check for
 * verify_cancel(); cb(owner, user, name) comes later, from the loop, exactly once, with user
 * NULL if the check failed, and name the name asked for ("" if it was malformed; valid only
 * during the call). */
enum verify_result verify_start(struct verify *v, const char *addr, const char *name,
                                size_t nlen, const uint8_t *pw, size_t pwlen,
                                const struct auth_user **user,
                                void (*cb)(void *owner, const struct auth_user *user,
                                           const char *name),
                                void *owner, struct verify_slot **slot);
/* The owner of slot is gone: no callback will come. */
void verify_cancel(struct verify *v, struct verify_slot *slot);

/* Counters, for STATS and metrics; all 0 when v is NULL (no users). */
struct verify_stats {
    uint64_t checks;     /* full checks run by the threads, total */
    uint64_t busy;       /* attempts refused with every slot taken, total */
    uint64_t throttled;  /* attempts refused by the throttle, total */
    uint32_t pending;    /* slots in use now */
};
void verify_get_stats(const struct verify *v, struct verify_stats *out);

#endif /* SLABMQ_BROKER_AUTH_VERIFY_H */
