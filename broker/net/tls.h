/* SPDX-License-Identifier: MIT */
/* TLS for client connections (--tls-port): the OpenSSL context built from --tls-cert,
 * --tls-key and --tls-ca, re-read on SIGHUP, and the libevent OpenSSL bufferevent each TLS
 * connection does its I/O through (conn.c bridges it to the same frame loop as a plain
 * socket; docs/security.md section 8). */
#ifndef SLABMQ_BROKER_NET_TLS_H
#define SLABMQ_BROKER_NET_TLS_H

#include <stddef.h>

struct bufferevent;
struct server;
struct server_config;
struct ssl_ctx_st;

/* Build the context from s->cfg. Returns 0, or -1 with a one-line reason in err. */
int tls_init(struct server *s, char *err, size_t errlen);
/* Build a context from c's files without installing it: for --check-config and SIGHUP. */
struct ssl_ctx_st *tls_context_new(const struct server_config *c, char *err, size_t errlen);
/* Accepts NULL. */
void tls_context_free(struct ssl_ctx_st *ctx);
void tls_deinit(struct server *s);
/* SIGHUP: re-read the certificate, key and CA files named in 'next' (possibly renewed in
 * place) for connections accepted from now on; open connections keep theirs. On an error
 * the running context stays and the reason is logged. */
void tls_reload(struct server *s, const struct server_config *next);
/* A bufferevent doing the server side of TLS on fd (owned by it from now on, closed on
 * failure too), or NULL. Callbacks are deferred to the loop, so a flush never re-enters
 * the connection's code. */
struct bufferevent *tls_accept(struct server *s, int fd);
/* Best effort close_notify, then free bev and its socket. */
void tls_close(struct bufferevent *bev);
/* The OpenSSL reason for a failed handshake or I/O on bev, for logs. */
const char *tls_error(struct bufferevent *bev, char *buf, size_t len);

#endif /* SLABMQ_BROKER_NET_TLS_H */
