/* SPDX-License-Identifier: MIT */
/* The optional HTTP side of slabmqd (--http ADDR:PORT): libevent's evhttp on the broker's
 * own event loop, serving /metrics (Prometheus text, metrics.c), the JSON endpoints
 * /api/stats and /api/deadletters, and the live dashboard at / (dashboard.html, built in).
 * Read-only: no request changes broker state. With users (--auth-file), only a user with
 * admin on every queue gets in, by HTTP Basic authentication (http_auth.c). Requests are small and bounded (header size,
 * no body, a timeout); each costs O(queues + slab classes), or O(max) for dead letters.
 * docs/metrics.md documents the endpoints. */
#ifndef SLABMQ_BROKER_NET_HTTP_H
#define SLABMQ_BROKER_NET_HTTP_H

#include <stddef.h>

struct evhttp_request;
struct server;

#define HTTP_DEFAULT_HOST "127.0.0.1"

/* Split a --http value: "PORT", ":PORT", "ADDR:PORT" or "[IPv6]:PORT" (numeric addresses
 * only; loopback when none is given). Returns 0, or -1 if it is not one of those. */
int http_parse_addr(const char *arg, char *host, size_t hostlen, int *port);
/* Bind s->cfg.http and start serving; prints "http on ADDR:PORT" on stdout. Returns 0, or
 * -1 after printing one line on stderr. */
int http_start(struct server *s);
/* Stop serving and free everything (no-op when not started). */
void http_stop(struct server *s);
enum http_auth {
    HTTP_AUTH_OK,       /* serve it now */
    HTTP_AUTH_ANSWERED, /* refused: 401, 403, 429 or 503 sent */
    HTTP_AUTH_PENDING   /* its password is being checked: http_serve() or a refusal follows */
};
/* May req be served? Always without users; with users, only with Basic credentials of a user
 * with admin on "*" (http_auth.c). */
enum http_auth http_authorize(struct evhttp_request *req, struct server *s);
/* Answer every request still waiting for its check (503) and forget them: before stopping. */
void http_auth_stop(struct server *s);
/* Serve an authorized request: route it by path (http.c). */
void http_serve(struct evhttp_request *req, struct server *s);

#endif /* SLABMQ_BROKER_NET_HTTP_H */
