/* SPDX-License-Identifier: MIT */
/* TLS contexts and connections; see tls.h. OpenSSL does the cryptography and libevent's
 * OpenSSL bufferevent drives the non-blocking handshake, reads and writes (with their
 * WANT_READ/WANT_WRITE cross-waits), so none of that is written here. */
#include "net/tls.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/log.h"
#include "net/server.h"

#define TLS_MAX_SINGLE_IO (64 * 1024) /* bytes a bufferevent reads or writes per event */

/* Why the last OpenSSL call failed, as one line ("no reason" when the queue is empty). */
static const char *
last_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (!e)
        snprintf(buf, len, "no reason given");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

SSL_CTX *
tls_context_new(const struct server_config *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[256];
    static const unsigned char sid[] = "slabmq";

    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context: %s", last_error(why, sizeof(why)));
        return NULL;
    }
    /* TLS 1.2 at least (1.3 with --tls-min-version 1.3); no renegotiation, which only ever
     * served attacks on a server like this one; idle connections give their 34 KiB of
     * record buffers back, so thousands of idle TLS clients stay cheap. A client that
     * closes (or half-closes) without close_notify has ended its stream: OpenSSL 3 reports
     * that as an error ("unexpected eof while reading"), which libevent's dirty-shutdown
     * setting does not recognise, so the connection was dropped with its input unread and
     * its replies unsent; IGNORE_UNEXPECTED_EOF makes it the end of stream it is. */
    SSL_CTX_set_min_proto_version(ctx, c->tls_min_version == 13 ? TLS1_3_VERSION
                                                                  : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE
                                 | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        snprintf(err, errlen, "cannot load --tls-cert '%s': %s", c->tls_cert,
                 last_error(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1
        && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        snprintf(err, errlen, "cannot load --tls-key '%s': %s", c->tls_key,
                 last_error(why, sizeof(why)));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) { /* also what a mismatch above comes to */
        snprintf(err, errlen, "--tls-key '%s' does not match --tls-cert '%s'", c->tls_key,
                 c->tls_cert);
        ERR_clear_error();
        goto fail;
    }
    if (c->tls_ca[0]) { /* client certificates: required, and signed by this CA */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->tls_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1) {
            snprintf(err, errlen, "cannot load --tls-ca '%s': %s", c->tls_ca,
                     last_error(why, sizeof(why)));
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void
tls_context_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

int
tls_init(struct server *s, char *err, size_t errlen)
{
    s->tls_ctx = tls_context_new(&s->cfg, err, errlen);
    return s->tls_ctx ? 0 : -1;
}

void
tls_deinit(struct server *s)
{
    SSL_CTX_free(s->tls_ctx);
    s->tls_ctx = NULL;
}

void
tls_reload(struct server *s, const struct server_config *next)
{
    char err[512];
    SSL_CTX *ctx;

    if (!s->tls_ctx)
        return; /* no TLS listener: --tls-port needs a restart, which reload.c says */
    ctx = tls_context_new(next, err, sizeof(err));
    if (!ctx) {
        log_error("reload: TLS unchanged: %s", err);
        return;
    }
    SSL_CTX_free(s->tls_ctx); /* connections hold references to the contexts they use */
    s->tls_ctx = ctx;
    snprintf(s->cfg.tls_cert, sizeof(s->cfg.tls_cert), "%s", next->tls_cert);
    snprintf(s->cfg.tls_key, sizeof(s->cfg.tls_key), "%s", next->tls_key);
    snprintf(s->cfg.tls_ca, sizeof(s->cfg.tls_ca), "%s", next->tls_ca);
    s->cfg.tls_min_version = next->tls_min_version;
    log_info("reload: TLS certificate, key and CA re-read for new connections (%s)",
             s->cfg.tls_cert);
}

struct bufferevent *
tls_accept(struct server *s, int fd)
{
    SSL *ssl = SSL_new(s->tls_ctx);
    struct bufferevent *bev;

    if (!ssl) {
        ERR_clear_error();
        close(fd);
        return NULL;
    }
    /* On failure libevent frees ssl and, with CLOSE_ON_FREE, closes fd. */
    bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        return NULL;
    /* Clients often close without close_notify: that is an end of stream, not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    /* libevent reads 16 KiB (one TLS record) per call by default: a pipelining client
     * fills far more than that between two turns of the loop */
    bufferevent_set_max_single_read(bev, TLS_MAX_SINGLE_IO);
    bufferevent_set_max_single_write(bev, TLS_MAX_SINGLE_IO);
    return bev;
}

void
tls_close(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    /* One non-blocking try: a peer that is gone or slow just does not get it. Only after a
     * completed handshake; OpenSSL refuses it (and queues an error) otherwise. */
    if (ssl && SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    ERR_clear_error();
    bufferevent_free(bev);
}

const char *
tls_error(struct bufferevent *bev, char *buf, size_t len)
{
    unsigned long e = bufferevent_get_openssl_error(bev);

    if (!e)
        return "no TLS error (the peer reset or closed the connection)";
    ERR_error_string_n(e, buf, len);
    while (bufferevent_get_openssl_error(bev)) /* drain the rest: they are kept per bev */
        ;
    return buf;
}
