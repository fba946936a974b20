/* SPDX-License-Identifier: MIT */
/* Who may use the HTTP port; see http.h. On a broker with users (--auth-file) every request
 * must carry HTTP Basic credentials of a user with admin rights on every queue: the pages show
 * every queue's counters and dead letters' payloads, which over the protocol is what
 * broker-wide STATS and LIST need (cmd_auth.c). Passwords are checked by auth_verify(), as
 * for AUTH: constant time, and cached after the first success, so a scraper that sends the
 * same credentials every few seconds costs one PBKDF2 in all. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "auth.h"
#include "http.h"
#include "log.h"
#include "server.h"

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

/* "addr:port" of the client, for logs. */
static const char *
peer_of(struct evhttp_request *req, char *out, size_t len)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;

    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(out, len, "%s:%u", addr ? addr : "?", (unsigned)port);
    return out;
}

int
http_authorize(struct evhttp_request *req, struct server *s)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    char buf[BASIC_MAX];
    const struct auth_user *u;
    const char *colon;
    int len;

    if (!s->auth)
        return 1;
    if (!h) {
        refuse(req, 401, "Unauthorized",
               "this broker has users (--auth-file): send HTTP Basic credentials of a user with "
               "admin=*");
        return 0;
    }
    len = decode_basic(h, buf, sizeof(buf));
    colon = len > 0 ? memchr(buf, ':', (size_t)len) : NULL;
    u = colon ? auth_verify(s->auth, buf, (size_t)(colon - buf), (const uint8_t *)colon + 1,
                            (size_t)(len - (colon + 1 - buf)))
              : NULL;
    if (!u) {
        s->auth_failures++;
        log_warn("http from %s: authentication failed", peer_of(req, buf, sizeof(buf)));
        memset(buf, 0, sizeof(buf));
        refuse(req, 401, "Unauthorized", "wrong user name or password");
        return 0;
    }
    memset(buf, 0, sizeof(buf));
    if (!auth_allows_all(u, AUTH_ADMIN)) {
        s->forbidden++;
        refuse(req, 403, "Forbidden",
               "the HTTP pages show every queue: they need a user with admin=*");
        return 0;
    }
    return 1;
}
