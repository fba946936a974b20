/* SPDX-License-Identifier: MIT */
/* The connection's transport: a plain non-blocking socket, or TLS over it (OpenSSL).
 *
 * Both look like send(2)/recv(2) to client.c: bytes moved, or -1 with errno EAGAIN when the
 * caller must wait, for the poll events smq_io_events() says; TLS may need to read while
 * writing (and the reverse), which is why the caller asks instead of assuming.
 *
 * OpenSSL's own socket BIO writes with write(2), so a broker that closes would raise SIGPIPE
 * and kill an application that did not ignore it; a library must not do that. The BIO below
 * is a socket BIO whose writes use send(MSG_NOSIGNAL), as the plain path does (libpq does
 * the same). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "client-internal.h"

/* ---------------------------------------------------------------------------------------- */
/* A socket BIO that never raises SIGPIPE                                                    */

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int
nosig_fd(BIO *b)
{
    return *(const int *)BIO_get_data(b); /* the client's fd, which outlives the SSL */
}

static int
nosig_write(BIO *b, const char *p, int n)
{
    ssize_t w = send(nosig_fd(b), p, (size_t)n, MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)w;
}

static int
nosig_read(BIO *b, char *p, int n)
{
    ssize_t r = recv(nosig_fd(b), p, (size_t)n, 0);

    BIO_clear_retry_flags(b);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    if (r == 0) /* for BIO_CTRL_EOF, as OpenSSL's socket BIO does */
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)r;
}

static int
nosig_puts(BIO *b, const char *s)
{
    return nosig_write(b, s, (int)strlen(s));
}

static long
nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    /* OpenSSL asks for EOF when a read returns 0: only then does SSL_OP_IGNORE_UNEXPECTED_EOF
     * make a close without close_notify the end of stream (SSL_ERROR_ZERO_RETURN, so
     * SLABMQ_ERR_CLOSED as on a plain socket) rather than a reset */
    if (cmd == BIO_CTRL_EOF)
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* nothing is buffered here */
}

static int
nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void
nosig_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "slabmq socket");

    if (m && (!BIO_meth_set_write(m, nosig_write) || !BIO_meth_set_read(m, nosig_read)
              || !BIO_meth_set_puts(m, nosig_puts) || !BIO_meth_set_ctrl(m, nosig_ctrl)
              || !BIO_meth_set_create(m, nosig_create))) {
        BIO_meth_free(m);
        m = NULL;
    }
    nosig_method = m; /* lives as long as the process, as OpenSSL's own methods do */
}

static BIO *
nosig_bio(int *fd)
{
    BIO *b;

    pthread_once(&nosig_once, nosig_init);
    if (!nosig_method || !(b = BIO_new(nosig_method)))
        return NULL;
    BIO_set_data(b, fd);
    return b;
}

/* ---------------------------------------------------------------------------------------- */
/* Handshake                                                                                 */

/* The last OpenSSL error as text, and the error queue emptied (it is per thread, and a
 * stale entry would be blamed on the next unrelated failure). */
static const char *
ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
    return buf;
}

static SSL_CTX *
client_context(struct slabmq_client *c, const slabmq_tls_options *t)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];

    if (!ctx) {
        smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "TLS: %s", ssl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* SSL_write may take part of a buffer, and be retried with the rest at another address:
     * send_all() works like that with send(2) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* a broker that closes without close_notify has closed, not attacked: its replies are
     * framed, so a truncated one is caught by the framing */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (!t->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (t->ca_file ? SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1
                       : SSL_CTX_set_default_verify_paths(ctx) != 1) {
            smq_client_fail(c, SLABMQ_ERR_TLS, "TLS: cannot load the CA file %s: %s",
                            t->ca_file ? t->ca_file : "(system default)",
                            ssl_reason(why, sizeof(why)));
            goto fail;
        }
    }
    if (t->cert_file) {
        const char *key = t->key_file ? t->key_file : t->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1) {
            smq_client_fail(c, SLABMQ_ERR_TLS, "TLS: cannot load the certificate %s: %s",
                            t->cert_file, ssl_reason(why, sizeof(why)));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            smq_client_fail(c, SLABMQ_ERR_TLS, "TLS: cannot load the key %s for %s: %s", key,
                            t->cert_file, ssl_reason(why, sizeof(why)));
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* What the certificate must be for: an IP address is matched as one (and never sent as
 * SNI, which takes host names only); a name is matched and sent as SNI. */
static int
set_peer_name(SSL *ssl, const char *name, int verify)
{
    unsigned char addr[16];
    int ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;

    if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        return -1;
    if (!verify)
        return 0;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    return SSL_set1_host(ssl, name) == 1 ? 0 : -1;
}

slabmq_status
smq_io_tls_start(struct slabmq_client *c, const slabmq_tls_options *t, const char *host,
                 int64_t deadline)
{
    SSL_CTX *ctx = client_context(c, t);
    const char *name = t->server_name ? t->server_name : host;
    char why[256];
    BIO *bio;
    SSL *ssl;

    if (!ctx)
        return (slabmq_status)c->last;
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* ssl holds its own reference */
    bio = ssl ? nosig_bio(&c->fd) : NULL;
    if (!bio) {
        SSL_free(ssl);
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "TLS: %s",
                               ssl_reason(why, sizeof(why)));
    }
    SSL_set_bio(ssl, bio, bio);
    c->ssl = ssl;
    if (set_peer_name(ssl, name, !t->insecure))
        return smq_client_fail(c, SLABMQ_ERR_TLS, "TLS: bad server name '%s'", name);
    for (;;) {
        int rc = SSL_connect(ssl);
        int err;
        int ready;
        if (rc == 1)
            return SLABMQ_OK;
        err = SSL_get_error(ssl, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            long v = SSL_get_verify_result(ssl);
            if (v != X509_V_OK)
                return smq_client_fail(c, SLABMQ_ERR_TLS,
                                       "TLS: the broker's certificate was not accepted: %s "
                                       "(expected a certificate for '%s'%s%s)",
                                       X509_verify_cert_error_string(v), name,
                                       t->ca_file ? " signed by a CA in " : "",
                                       t->ca_file ? t->ca_file : "");
            return smq_client_fail(c, SLABMQ_ERR_TLS,
                                   "TLS handshake failed: %s (is it the broker's TLS port, "
                                   "slabmqd --tls-port?)", ssl_reason(why, sizeof(why)));
        }
        ready = smq_wait_fd(c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (ready == 0)
            return smq_client_fail(c, SLABMQ_ERR_TIMEOUT, "timed out in the TLS handshake");
        if (ready < 0)
            return smq_client_fail(c, SLABMQ_ERR_IO, "TLS handshake: poll failed: %s",
                                   strerror(errno));
    }
}

void
smq_io_close(struct slabmq_client *c)
{
    if (c->ssl) {
        /* one non-blocking try at close_notify; a broker that is gone just does not get it */
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl); /* frees the BIO, not the socket */
        ERR_clear_error();
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading and writing                                                                       */

/* After an SSL_read or SSL_write that did not move bytes: errno and the events to wait for,
 * as send(2)/recv(2) would leave them. Returns -1, or 0 for a clean end of stream. */
static ssize_t
ssl_failed(struct slabmq_client *c, int rc, short dflt)
{
    int err = SSL_get_error(c->ssl, rc);

    c->io_events = dflt;
    switch (err) {
    case SSL_ERROR_WANT_READ:
        c->io_events = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->io_events = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (!errno)
            errno = ECONNRESET;
        ERR_clear_error();
        return -1;
    default: /* a protocol error: its reason goes with EPROTO (smq_io_strerror) */
        ssl_reason(c->io_reason, sizeof(c->io_reason));
        errno = EPROTO;
        return -1;
    }
}

ssize_t
smq_io_send(struct slabmq_client *c, const void *p, size_t n)
{
    int rc;

    c->io_events = POLLOUT;
    if (!c->ssl)
        return send(c->fd, p, n, MSG_NOSIGNAL);
    errno = 0;
    rc = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (rc > 0)
        return rc;
    rc = (int)ssl_failed(c, rc, POLLOUT);
    if (rc == 0) { /* the broker ended the stream: a write to it fails as on a socket */
        errno = EPIPE;
        return -1;
    }
    return rc;
}

ssize_t
smq_io_recv(struct slabmq_client *c, void *p, size_t n)
{
    int rc;

    c->io_events = POLLIN;
    if (!c->ssl) {
        ssize_t got = recv(c->fd, p, n, 0);
        c->rdrained = got < 0 ? errno == EAGAIN || errno == EWOULDBLOCK : (size_t)got < n;
        return got;
    }
    errno = 0;
    rc = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
    if (rc > 0)
        return rc;
    return ssl_failed(c, rc, POLLIN);
}

int
smq_io_buffered(const struct slabmq_client *c)
{
    /* decrypted bytes only: SSL_has_pending is also true for part of a record, which
     * needs the socket, so a caller that polled no more would spin until the rest came */
    return c->ssl && SSL_pending(c->ssl) > 0;
}

const char *
smq_io_strerror(const struct slabmq_client *c, int err)
{
    return err == EPROTO && c->ssl && c->io_reason[0] ? c->io_reason : strerror(err);
}
