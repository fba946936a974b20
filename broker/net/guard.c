/* SPDX-License-Identifier: MIT */
/* Connection guards; see guard.h. */
#include "net/guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>

#include <event2/event.h>

#include "auth/auth.h"
#include "net/conn.h"
#include "util/log.h"
#include "ops.h"
#include "net/server.h"
#include "slabmq_protocol.h"
#include "req/sub.h"
#include "auth/verify.h"

#define GUARD_ANSWER_BATCH 16 /* failed AUTHs answered per timer run */

/* ---------------------------------------------------------------------------------------- */
/* The timer                                                                                 */

/* The earliest deadline of the four lists, or 0 when they are empty. */
static uint64_t
first_due(const struct server *s)
{
    uint64_t due = 0;

    if (!dlist_empty(&s->handshaking)) {
        const struct conn *c = DLIST_ENTRY(s->handshaking.next, struct conn, glink);
        due = c->guard_since + s->cfg.handshake_timeout_ms;
    }
    if (!dlist_empty(&s->auth_failed)) {
        const struct conn *c = DLIST_ENTRY(s->auth_failed.next, struct conn, glink);
        uint64_t t = c->guard_since + GUARD_AUTH_FAIL_DELAY_MS;
        due = due && due < t ? due : t;
    }
    if (!dlist_empty(&s->auth_refused)) {
        const struct conn *c = DLIST_ENTRY(s->auth_refused.next, struct conn, glink);
        uint64_t t = c->guard_since + GUARD_AUTH_REFUSE_DELAY_MS;
        due = due && due < t ? due : t;
    }
    if (!dlist_empty(&s->idle)) {
        const struct conn *c = DLIST_ENTRY(s->idle.next, struct conn, ilink);
        uint64_t t = c->active_ms + s->cfg.idle_timeout_ms;
        due = due && due < t ? due : t;
    }
    return due;
}

/* Arm the timer for the earliest deadline unless it is armed for one as early. A deadline
 * that moved later (its connection left or was active) only makes the timer fire early, and
 * that run re-arms it. */
static void
guard_arm(struct server *s)
{
    uint64_t due = first_due(s);
    uint64_t wait;
    struct timeval tv;

    if (!due || !s->guard_timer || (s->guard_due && s->guard_due <= due))
        return;
    wait = due > s->b.now_ms ? due - s->b.now_ms : 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
    s->guard_due = due;
    event_add(s->guard_timer, &tv);
}

/* Close connections whose handshake is overdue: no HELLO, or (with users) no AUTH. */
static void
expire_handshakes(struct server *s)
{
    uint32_t t = s->cfg.handshake_timeout_ms;

    while (!dlist_empty(&s->handshaking)) {
        struct conn *c = DLIST_ENTRY(s->handshaking.next, struct conn, glink);
        if (c->guard_since + t > s->b.now_ms)
            return;
        dlist_unlink(&c->glink);
        if (c->req.closing)
            continue;
        s->rs.n.handshake_timeouts++;
        log_info("connection %llu from %s: handshake not done within %u ms; closing",
                 (unsigned long long)c->req.id, c->req.peer, t);
        if (c->req.hello)
            conn_close_with_error(c, SMQ_OP_NONE, 0, SLABMQ_ERR_AUTH,
                                  "no AUTH within %u ms (--handshake-timeout)", t);
        else
            conn_close_with_error(c, SMQ_OP_NONE, 0, SLABMQ_ERR_HELLO_REQUIRED,
                                  "no HELLO within %u ms (--handshake-timeout)", t);
    }
}

/* Answer failed AUTHs of list (waiting delay_ms) whose delay is over, and close their
 * connections: at most *budget of them, the timer then firing again at once, so that the
 * thousand refusals a crowd of guessers has due together are interleaved with other clients'
 * requests instead of holding the loop for tens of ms. */
static void
answer_failed_auths(struct server *s, struct dlink *list, uint32_t delay_ms, int *budget)
{
    for (; *budget > 0 && !dlist_empty(list); --*budget) {
        struct conn *c = DLIST_ENTRY(list->next, struct conn, glink);
        if (c->guard_since + delay_ms > s->b.now_ms)
            return;
        dlist_unlink(&c->glink);
        if (c->auth_refusal == REQ_REFUSE_THROTTLED)
            conn_close_with_error(c, SMQ_OP_AUTH, c->req.auth_rid, SLABMQ_ERR_AUTH,
                                  "too many failed attempts from this address or for this "
                                  "user; try again in a few seconds");
        else if (c->auth_refusal == REQ_REFUSE_BUSY)
            conn_close_with_error(c, SMQ_OP_AUTH, c->req.auth_rid, SLABMQ_ERR_LIMIT,
                                  "too many password checks pending on the broker; try again "
                                  "shortly");
        else
            conn_close_with_error(c, SMQ_OP_AUTH, c->req.auth_rid, SLABMQ_ERR_AUTH,
                                  "wrong user name or password");
    }
}

/* Has c work outstanding that makes silence normal: a waiting FETCH, a subscription,
 * messages in flight, or replies not yet written? */
static int
conn_busy(const struct conn *c)
{
    return c->req.nwaits || sub_req_count(&c->req) || !dlist_empty(&c->req.held.list) || c->req.out.len
           || c->req.closing || (c->paused & (CONN_PAUSE_AUTH | CONN_PAUSE_CHECK));
}

/* Close connections that sent nothing for --idle-timeout and have nothing outstanding;
 * those with work outstanding count as active now. */
static void
expire_idle(struct server *s)
{
    uint32_t t = s->cfg.idle_timeout_ms;

    while (!dlist_empty(&s->idle)) {
        struct conn *c = DLIST_ENTRY(s->idle.next, struct conn, ilink);
        if (c->active_ms + t > s->b.now_ms)
            return;
        if (conn_busy(c)) {
            guard_conn_input(c);
            continue;
        }
        dlist_unlink(&c->ilink);
        s->rs.n.idle_closed++;
        log_info("connection %llu from %s: idle for %u ms; closing", (unsigned long long)c->req.id,
                 c->req.peer, t);
        conn_close_with_error(c, SMQ_OP_NONE, 0, SLABMQ_ERR_LIMIT,
                              "no request for %u ms (--idle-timeout); closing", t);
    }
}

static void
guard_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    int budget = GUARD_ANSWER_BATCH;

    (void)fd;
    (void)what;
    s->guard_due = 0;
    broker_tick(&s->b);
    expire_handshakes(s);
    answer_failed_auths(s, &s->auth_failed, GUARD_AUTH_FAIL_DELAY_MS, &budget);
    answer_failed_auths(s, &s->auth_refused, GUARD_AUTH_REFUSE_DELAY_MS, &budget);
    expire_idle(s);
    guard_arm(s);
    conn_resume_memory(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Connections                                                                               */

void
guard_conn_open(struct conn *c)
{
    struct server *s = c->srv;

    c->guard_since = s->b.now_ms;
    c->active_ms = s->b.now_ms;
    dlist_push_back(&s->handshaking, &c->glink);
    dlist_init(&c->ilink);
    if (s->cfg.idle_timeout_ms)
        dlist_push_back(&s->idle, &c->ilink);
    guard_arm(s);
}

void
guard_conn_close(struct conn *c)
{
    dlist_unlink(&c->glink);
    dlist_unlink(&c->ilink);
}

void
guard_conn_input(struct conn *c)
{
    struct server *s = c->srv;

    if (!s->cfg.idle_timeout_ms)
        return;
    c->active_ms = s->b.now_ms;
    dlist_unlink(&c->ilink);
    dlist_push_back(&s->idle, &c->ilink);
}

void
guard_handshake_done(struct conn *c)
{
    c->req.ready = 1;
    dlist_unlink(&c->glink);
}

void
guard_auth_failed(struct conn *c, uint64_t rid, enum req_refusal why)
{
    struct server *s = c->srv;

    conn_hold(c);
    c->req.auth_rid = rid;
    c->auth_refusal = (uint8_t)why;
    c->guard_since = s->b.now_ms;
    dlist_unlink(&c->glink);
    dlist_push_back(why == REQ_REFUSE_WRONG ? &s->auth_failed : &s->auth_refused, &c->glink);
    guard_arm(s);
}

void
guard_log_refusal(struct server *s, const char *fmt, ...)
{
    char line[256];
    va_list ap;

    if (s->refusal_log_ms && s->b.now_ms < s->refusal_log_ms + 1000) {
        s->refusals_unlogged++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is above; a clang 14 defect (llvm/llvm-project#40656)
    va_end(ap);
    if (s->refusals_unlogged)
        log_warn("%s (and %llu more refused credentials in the second before, not logged)",
                 line, (unsigned long long)s->refusals_unlogged);
    else
        log_warn("%s", line);
    s->refusal_log_ms = s->b.now_ms;
    s->refusals_unlogged = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up                                                                                  */

/* Is addr a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z)? Anything else, including
 * what does not parse, counts as public. */
static int
is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

/* Load the users file named in the configuration. Returns 0, or -1 after printing why. */
static int
load_users(struct server *s)
{
    char err[512];
    char warn[512];

    s->rs.auth = auth_load(s->cfg.auth_file, err, sizeof(err), warn, sizeof(warn));
    if (!s->rs.auth) {
        fprintf(stderr, "slabmqd: cannot load --auth-file: %s\n", err);
        return -1;
    }
    if (warn[0])
        log_warn("%s", warn);
    log_info("authentication on: %u users from %s", auth_count(s->rs.auth), s->cfg.auth_file);
    return 0;
}

int
guard_init(struct server *s)
{
    dlist_init(&s->handshaking);
    dlist_init(&s->auth_failed);
    dlist_init(&s->auth_refused);
    dlist_init(&s->idle);
    if (s->cfg.auth_file && load_users(s))
        return -1;
    if (s->rs.auth && !(s->rs.verify = verify_new(s->base, s->rs.auth))) {
        fprintf(stderr, "slabmqd: cannot start the password-check thread\n");
        return -1;
    }
    s->guard_timer = evtimer_new(s->base, guard_timer_cb, s);
    if (!s->guard_timer) {
        fprintf(stderr, "slabmqd: cannot set up events\n");
        return -1;
    }
    if (!s->rs.auth && !is_loopback(s->cfg.bind))
        fprintf(stderr,
                "slabmqd: WARNING: listening on %s without authentication (no --auth-file): "
                "anyone who can reach this address can publish, consume, purge and delete "
                "every queue. Add users (docs/security.md) or listen on 127.0.0.1.\n",
                s->cfg.bind);
    return 0;
}

void
guard_deinit(struct server *s)
{
    if (s->guard_timer)
        event_free(s->guard_timer);
    s->guard_timer = NULL;
    verify_free(s->rs.verify); /* first: its threads read the users */
    s->rs.verify = NULL;
    auth_free(s->rs.auth);
    s->rs.auth = NULL;
}
