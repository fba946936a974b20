/* SPDX-License-Identifier: MIT */
/* Who may use the HTTP port; see http.h. On a broker with users (--auth-file) every request
 * must carry HTTP Basic credentials of a user with admin rights on every queue: the pages show
 * every queue's counters and dead letters' payloads, which over the protocol is what
 * broker-wide STATS and LIST need (cmd_auth.c). Passwords are checked as for AUTH (verify.c):
 * off the loop, throttled per address and name, a failure costing the same whatever the name
 * and answered 200 ms after its check; and cached after the first success, so a scraper that
 * sends the same credentials every few seconds costs one PBKDF2 in all. A request waiting for
 * its check is answered later; one whose client went away meanwhile is still answered (into
 * the void: libevent then frees it). Pending requests cost one small record each, bounded by
 * VERIFY_SLOTS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "core/broker.h"
#include "util/dlist.h"
#include "net/guard.h"
#include "net/http.h"
#include "util/log.h"
#include "net/server.h"
#include "auth/verify.h"

#define BASIC_MAX 1500 /* base64 of "user:password" at their maximum lengths, and some */

static void
refuse(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    struct evbuffer *b = evbuffer_new();

    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"slabmq\", charset=\"UTF-8\"");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    if (b)
        evbuffer_add_printf(b, "%s\n", msg);
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

/* Decode "Basic BASE64" into out (NUL-terminated). Returns its length, or -1. */
static int
decode_basic(const char *h, char *out, size_t cap)
{
    size_t n;
    int len;

    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return -1;
    h += 6;
    while (*h == ' ')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0 || n % 4 != 0 || n > BASIC_MAX || n / 4 * 3 + 1 > cap)
        return -1;
    len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)h, (int)n);
    if (len < 0)
        return -1;
    if (h[n - 1] == '=') /* EVP_DecodeBlock counts the padding as decoded zero bytes */
        len -= h[n - 2] == '=' ? 2 : 1;
    out[len] = '\0';
    return len;
}

/* The client's address: without its port for the throttle, "addr:port" for logs. */
static const char *
client_of(struct evhttp_request *req, int with_port, char *out, size_t len)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;

    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    if (with_port)
        snprintf(out, len, "%s:%u", addr ? addr : "?", (unsigned)port);
    else
        snprintf(out, len, "%s", addr ? addr : "?");
    return out;
}

/* A request whose credentials are being checked, or whose failure waits out its delay. */
struct http_check {
    struct dlink link;             /* in s->http_checks */
    struct server *s;
    struct evhttp_request *req;    /* valid until answered: libevent keeps a request the
                                      program has not answered even if its client left */
    struct verify_slot *slot;      /* the pending check, or NULL */
    struct event *delay;           /* the refusal's delay */
    int code;                      /* the refusal, once decided: status, reason, text */
    const char *reason;
    const char *msg;
};

static void
check_free(struct http_check *hc)
{
    dlist_unlink(&hc->link);
    if (hc->delay)
        event_free(hc->delay);
    free(hc);
}

/* A refusal's delay is over: answer it. */
static void
http_auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_check *hc = arg;

    (void)fd;
    (void)what;
    refuse(hc->req, hc->code, hc->reason, hc->msg);
    check_free(hc);
}

/* Refuse hc's request later, as AUTH is (guard.h says why and how long: code 401 is a wrong
 * password, any other a refusal without a check), and log it. */
static void
refuse_later(struct http_check *hc, int code, const char *reason, const char *msg)
{
    struct server *s = hc->s;
    uint32_t ms = code == 401 ? GUARD_AUTH_FAIL_DELAY_MS : GUARD_AUTH_REFUSE_DELAY_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    char peer[96];

    s->rs.n.auth_failures++;
    if (code == 401)
        log_warn("http from %s: authentication failed", client_of(hc->req, 1, peer, sizeof(peer)));
    else
        guard_log_refusal(s, "http from %s: authentication failed (not checked: %s)",
                          client_of(hc->req, 1, peer, sizeof(peer)), reason);
    hc->code = code;
    hc->reason = reason;
    hc->msg = msg;
    hc->delay = evtimer_new(s->base, http_auth_delay_cb, hc);
    if (!hc->delay || evtimer_add(hc->delay, &tv)) { /* no timer: answer now */
        refuse(hc->req, code, reason, msg);
        check_free(hc);
    }
}

/* Is u allowed the pages? Answers 403 if not. */
static int
admitted(struct evhttp_request *req, struct server *s, const struct auth_user *u)
{
    if (auth_allows_all(u, AUTH_ADMIN))
        return 1;
    s->rs.n.forbidden++;
    refuse(req, 403, "Forbidden", "the HTTP pages show every queue: they need a user with admin=*");
    return 0;
}

/* The check came back (verify.c). */
static void
http_auth_checked(void *owner, const struct auth_user *u, const char *name)
{
    struct http_check *hc = owner;
    struct server *s = hc->s;

    (void)name;
    broker_tick(&s->b);
    hc->slot = NULL;
    if (!u) {
        refuse_later(hc, 401, "Unauthorized", "wrong user name or password");
        return;
    }
    if (admitted(hc->req, s, u))
        http_serve(hc->req, s);
    check_free(hc);
}

/* Start the check of name:pw for req. */
static enum http_auth
start_check(struct evhttp_request *req, struct server *s, const char *name, size_t nlen,
            const char *pw, size_t pwlen)
{
    struct http_check *hc = calloc(1, sizeof(*hc));
    const struct auth_user *u = NULL;
    char addr[64];

    if (!hc) {
        refuse(req, 503, "Service Unavailable", "out of memory");
        return HTTP_AUTH_ANSWERED;
    }
    hc->s = s;
    hc->req = req;
    dlist_push_back(&s->http_checks, &hc->link);
    switch (verify_start(s->rs.verify, client_of(req, 0, addr, sizeof(addr)), name, nlen,
                         (const uint8_t *)pw, pwlen, &u, http_auth_checked, hc, &hc->slot)) {
    case VERIFY_PENDING:
        return HTTP_AUTH_PENDING;
    case VERIFY_OK:
        check_free(hc);
        return admitted(req, s, u) ? HTTP_AUTH_OK : HTTP_AUTH_ANSWERED;
    case VERIFY_THROTTLED:
        refuse_later(hc, 429, "Too Many Requests",
                     "too many failed attempts from this address or for this user; try again in "
                     "a few seconds");
        return HTTP_AUTH_PENDING;
    case VERIFY_BUSY:
        refuse_later(hc, 503, "Service Unavailable",
                     "too many password checks pending on the broker; try again shortly");
        return HTTP_AUTH_PENDING;
    }
    check_free(hc);
    return HTTP_AUTH_ANSWERED;
}

enum http_auth
http_authorize(struct evhttp_request *req, struct server *s)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    char buf[BASIC_MAX];
    const char *colon;
    enum http_auth r;
    int len;

    if (!s->rs.auth)
        return HTTP_AUTH_OK;
    if (!h) {
        refuse(req, 401, "Unauthorized",
               "this broker has users (--auth-file): send HTTP Basic credentials of a user with "
               "admin=*");
        return HTTP_AUTH_ANSWERED;
    }
    len = decode_basic(h, buf, sizeof(buf));
    colon = len > 0 ? memchr(buf, ':', (size_t)len) : NULL;
    if (!colon) {
        s->rs.n.auth_failures++;
        refuse(req, 401, "Unauthorized", "wrong user name or password");
        memset(buf, 0, sizeof(buf));
        return HTTP_AUTH_ANSWERED;
    }
    r = start_check(req, s, buf, (size_t)(colon - buf), colon + 1,
                    (size_t)(len - (colon + 1 - buf)));
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}

void
http_auth_stop(struct server *s)
{
    struct dlink *l = s->http_checks.next;

    while (l != &s->http_checks) {
        struct http_check *hc = DLIST_ENTRY(l, struct http_check, link);
        l = l->next; /* check_free frees hc, and with it its link */
        if (hc->slot)
            verify_cancel(s->rs.verify, hc->slot);
        refuse(hc->req, 503, "Service Unavailable", "the broker is stopping");
        check_free(hc);
    }
}
