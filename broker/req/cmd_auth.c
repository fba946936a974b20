/* SPDX-License-Identifier: MIT */
/* AUTH, and the permission check that dispatch makes before each request of a connection
 * authenticated as a user: which kind of access each op needs on which queue. Both apply only
 * on a broker started with users (--auth-file); docs/protocol.md section 5.1 and
 * docs/security.md describe them. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "core/broker.h"
#include "req/cmd.h"
#include "codec.h"
#include "req/req.h"
#include "util/log.h"
#include "req/reply.h"
#include "slabmq_protocol.h"
#include "auth/verify.h"

/* What an op needs. An op missing from the table needs admin on every queue, so an op added
 * later is refused to all but full administrators until it gets its entry here. */
enum need {
    NEED_ADMIN_ALL = 0, /* admin on every queue: "admin", "admin=*" or "all" */
    NEED_NOTHING,       /* connection ops, and ops on the connection's own deliveries and
                           subscriptions (which it got through consume access) */
    NEED_PUBLISH,       /* publish on the queue named by the first argument */
    NEED_CONSUME,       /* consume on that queue, or on each queue of an array (FETCH) */
    NEED_ADMIN,         /* admin on that queue */
    NEED_STATS          /* a queue named: any access to it; none or nil: NEED_ADMIN_ALL */
};

static const uint8_t needs[SMQ_OP_MAX] = {
    [SMQ_OP_HELLO] = NEED_NOTHING,     [SMQ_OP_PING] = NEED_NOTHING,
    [SMQ_OP_AUTH] = NEED_NOTHING,      [SMQ_OP_ACK] = NEED_NOTHING,
    [SMQ_OP_NACK] = NEED_NOTHING,      [SMQ_OP_TOUCH] = NEED_NOTHING,
    [SMQ_OP_TERM] = NEED_NOTHING,      [SMQ_OP_UNSUBSCRIBE] = NEED_NOTHING,
    [SMQ_OP_PUBLISH] = NEED_PUBLISH,   [SMQ_OP_PUBLISH_BATCH] = NEED_PUBLISH,
    [SMQ_OP_FETCH] = NEED_CONSUME,     [SMQ_OP_PEEK] = NEED_CONSUME,
    [SMQ_OP_SUBSCRIBE] = NEED_CONSUME, [SMQ_OP_DECLARE] = NEED_ADMIN,
    [SMQ_OP_DELETE] = NEED_ADMIN,      [SMQ_OP_PURGE] = NEED_ADMIN,
    [SMQ_OP_PAUSE] = NEED_ADMIN,       [SMQ_OP_RESUME] = NEED_ADMIN,
    [SMQ_OP_STATS] = NEED_STATS,       [SMQ_OP_LIST] = NEED_ADMIN_ALL,
};

/* ---------------------------------------------------------------------------------------- */
/* Permissions                                                                               */

static const char *
access_words(unsigned perms)
{
    switch (perms) {
    case AUTH_PUBLISH:
        return "publish to";
    case AUTH_CONSUME:
        return "consume from";
    case AUTH_ADMIN:
        return "administer";
    default:
        return "use";
    }
}

/* Reply ERR_FORBIDDEN; returns 0 for cmd_permitted. name NULL: a broker-wide request. */
static int
forbid(struct req *rq, unsigned op, uint64_t rid, unsigned perms, const char *name,
       uint32_t len)
{
    const char *user = auth_user_name(rq->user);

    rq->srv->n.forbidden++;
    log_info("connection %llu from %s: user '%s' refused %s%s%.*s", (unsigned long long)rq->id,
             rq->peer, user, smq_op_name(op), name ? " on " : "", name ? (int)len : 0,
             name ? name : "");
    if (name)
        reply_error(rq, op, rid, SLABMQ_ERR_FORBIDDEN, "user '%s' may not %s queue '%.*s'", user,
                    access_words(perms), (int)(len > 100 ? 100 : len), name);
    else
        reply_error(rq, op, rid, SLABMQ_ERR_FORBIDDEN,
                    "user '%s' may not %s: it needs admin on every queue (admin=*)", user,
                    smq_op_name(op));
    return 0;
}

/* Check 'perms' on the queue name at r. A value that is not a valid queue name passes: the
 * handler refuses the request before it has any effect. */
static int
check_name(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r, unsigned perms)
{
    const char *name;
    uint32_t len;

    if (smq_mpr_str(r, &name, &len) || !smq_name_valid(name, len))
        return 1;
    return auth_allows(rq->user, perms, name, len) ? 1 : forbid(rq, op, rid, perms, name, len);
}

/* FETCH's array of queues: consume on each. Arrays the handler refuses pass. */
static int
check_names(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr *r)
{
    uint32_t n;

    if (smq_mpr_array(r, &n) || n == 0 || n > SMQ_FETCH_QUEUES_MAX)
        return 1;
    for (uint32_t i = 0; i < n; i++) {
        const char *name;
        uint32_t len;
        if (smq_mpr_str(r, &name, &len) || !smq_name_valid(name, len))
            return 1;
        if (!auth_allows(rq->user, AUTH_CONSUME, name, len))
            return forbid(rq, op, rid, AUTH_CONSUME, name, len);
    }
    return 1;
}

int
cmd_permitted(struct req *rq, unsigned op, uint64_t rid, struct smq_mpr r, uint32_t nargs)
{
    enum need need = op < SMQ_OP_MAX ? (enum need)needs[op] : NEED_ADMIN_ALL;

    if (need == NEED_NOTHING)
        return 1;
    if (need == NEED_STATS && (nargs == 0 || smq_mpr_peek(&r) == SMQ_MP_NIL))
        need = NEED_ADMIN_ALL;
    if (need == NEED_ADMIN_ALL)
        return auth_allows_all(rq->user, AUTH_ADMIN) ? 1 : forbid(rq, op, rid, AUTH_ADMIN, NULL, 0);
    if (nargs == 0)
        return 1; /* the handler refuses the missing name */
    switch (need) {
    case NEED_PUBLISH:
        return check_name(rq, op, rid, &r, AUTH_PUBLISH);
    case NEED_CONSUME:
        if (op == SMQ_OP_FETCH && smq_mpr_peek(&r) == SMQ_MP_ARRAY)
            return check_names(rq, op, rid, &r);
        return check_name(rq, op, rid, &r, AUTH_CONSUME);
    case NEED_ADMIN:
        return check_name(rq, op, rid, &r, AUTH_ADMIN);
    default:
        return check_name(rq, op, rid, &r, AUTH_ANY);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* AUTH                                                                                      */

/* The password: a str or a bin, of at most AUTH_PASSWORD_MAX bytes. */
static int
read_password(struct smq_mpr *r, const uint8_t **pw, uint32_t *len)
{
    const char *s;

    if (smq_mpr_peek(r) == SMQ_MP_BIN)
        return smq_mpr_bin(r, pw, len) || *len > AUTH_PASSWORD_MAX;
    if (smq_mpr_str(r, &s, len))
        return -1;
    *pw = (const uint8_t *)s;
    return *len > AUTH_PASSWORD_MAX;
}

/* Hand a refusal's log line to the network layer, which rate-limits such lines. */
static void
log_refusal(struct req *rq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
log_refusal(struct req *rq, const char *fmt, ...)
{
    char line[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    rq->srv->ops->log_refusal(rq, line);
}

/* A failed AUTH: logged with the peer (never the password), answered after a delay. name is
 * "" when it was malformed. Checked failures are each logged (the hash thread bounds their
 * rate); refusals without a check, at most one line a second. */
static void
auth_refused(struct req *rq, uint64_t rid, const char *name, enum req_refusal why)
{
    static const char *const whys[] = {
        [REQ_REFUSE_WRONG] = "",
        [REQ_REFUSE_THROTTLED] = " (throttled: too many recent failures)",
        [REQ_REFUSE_BUSY] = " (not checked: every password-check slot taken)",
    };
    const char *who = name[0] ? "for user '" : "(malformed user name)";

    rq->srv->n.auth_failures++;
    if (why == REQ_REFUSE_WRONG)
        log_warn("connection %llu from %s: authentication failed %s%s%s",
                 (unsigned long long)rq->id, rq->peer, who, name, name[0] ? "'" : "");
    else
        log_refusal(rq, "connection %llu from %s: authentication failed %s%s%s%s",
                    (unsigned long long)rq->id, rq->peer, who, name, name[0] ? "'" : "",
                    whys[why]);
    rq->srv->ops->auth_failed(rq, rid, why);
}

/* AUTH succeeded (at once, or when its check came back). */
static void
auth_accepted(struct req *rq, uint64_t rid, const struct auth_user *u)
{
    rq->user = u;
    rq->srv->n.auth_ok++;
    rq->srv->ops->handshake_done(rq);
    log_info("connection %llu from %s: authenticated as '%s'", (unsigned long long)rq->id,
             rq->peer, auth_user_name(u));
    reply_ok(rq, SMQ_OP_AUTH, rid);
}

/* The check of rq's AUTH came back (verify.c), from the loop. */
static void
auth_checked(void *owner, const struct auth_user *u, const char *name)
{
    struct req *rq = owner;

    broker_tick(rq->b); /* the failure's delay counts from now */
    rq->auth_slot = NULL;
    if (rq->closing) /* the handshake deadline passed meanwhile: it is being closed */
        return;
    if (u)
        auth_accepted(rq, rq->auth_rid, u);
    else
        auth_refused(rq, rq->auth_rid, name, REQ_REFUSE_WRONG);
    rq->srv->ops->check_done(rq); /* reads on after a success; a failure holds rq until the delay */
    req_try_write(rq);
}

/* [user, password] -> [] */
void
cmd_auth(struct req *rq, uint64_t rid, struct smq_mpr *r, uint32_t nargs)
{
    struct req_server *s = rq->srv;
    const char *user;
    uint32_t ulen;
    const uint8_t *pw;
    uint32_t pwlen;
    const struct auth_user *u = NULL;
    enum verify_result vr;

    if (cmd_expect_args(rq, SMQ_OP_AUTH, rid, nargs, 2, 2))
        goto out_close;
    if (smq_mpr_str(r, &user, &ulen) || ulen > AUTH_NAME_MAX) {
        reply_error(rq, SMQ_OP_AUTH, rid, SLABMQ_ERR_BAD_REQUEST,
                    "user must be a str of at most %d bytes", AUTH_NAME_MAX);
        goto out_close;
    }
    if (read_password(r, &pw, &pwlen)) {
        reply_error(rq, SMQ_OP_AUTH, rid, SLABMQ_ERR_BAD_REQUEST,
                    "password must be a str or bin of at most %d bytes", AUTH_PASSWORD_MAX);
        goto out_close;
    }
    if (cmd_args_end(rq, SMQ_OP_AUTH, rid, r))
        goto out_close;
    if (!s->auth) {
        reply_error(rq, SMQ_OP_AUTH, rid, SLABMQ_ERR_AUTH,
                    "authentication is not enabled on this broker (no --auth-file)");
        return;
    }
    if (rq->user) {
        reply_error(rq, SMQ_OP_AUTH, rid, SLABMQ_ERR_AUTH, "already authenticated as '%s'",
                    auth_user_name(rq->user));
        return;
    }
    if (rq->auth_slot) { /* can't happen: reading waits for the check */
        reply_error(rq, SMQ_OP_AUTH, rid, SLABMQ_ERR_AUTH, "AUTH already in progress");
        return;
    }
    vr = verify_start(s->verify, rq->peer, user, ulen, pw, pwlen, &u, auth_checked, rq,
                     &rq->auth_slot);
    switch (vr) {
    case VERIFY_OK:
        auth_accepted(rq, rid, u);
        return;
    case VERIFY_PENDING:
        rq->auth_rid = rid;
        rq->next = REQ_HOLD;
        return;
    case VERIFY_THROTTLED:
    case VERIFY_BUSY: {
        char name[AUTH_NAME_MAX + 1] = "";
        if (auth_name_valid(user, ulen))
            snprintf(name, sizeof(name), "%.*s", (int)ulen, user);
        auth_refused(rq, rid, name, vr == VERIFY_BUSY ? REQ_REFUSE_BUSY : REQ_REFUSE_THROTTLED);
        return;
    }
    }
out_close:
    if (!rq->ready) /* as for HELLO: an error before the handshake ends the connection */
        req_close_after_write(rq);
}
