/* SPDX-License-Identifier: MIT */
/* Event loop, listener, signals and the timer; see server.h. The shape follows libevent's
 * sample/hello-world.c: set up in order, tear down in reverse. */
#include "net/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "codec.h"
#include "net/conn.h"
#include "frame.h"
#include "net/guard.h"
#include "net/http.h"
#include "util/log.h"
#include "net/tls.h"
#include "ops.h"
#include "slabmq_protocol.h"
#include "req/confirm.h"
#include "store/store.h"

#define ACCEPT_RETRY_MS 100

void
server_config_defaults(struct server_config *c)
{
    memset(c, 0, sizeof(*c));
    broker_config_defaults(&c->broker);
    snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
    c->port = SLABMQ_DEFAULT_PORT;
    c->max_connections = 10000;
    c->output_cap = (size_t)16 << 20;
    c->frame_timeout_ms = 30000;
    c->handshake_timeout_ms = 10000; /* auth_file and idle_timeout_ms: off */
    c->tcp_keepalive_s = 60;
    snprintf(c->data_dir, sizeof(c->data_dir), "slabmq-data");
    c->log_level = LOG_INFO;
    c->log_format = LOG_FORMAT_LOGFMT;
    c->shutdown_timeout_ms = 5000;
    c->plain = 1;
    c->tls_port = -1;
    c->tls_min_version = 12;
}

/* Set on the listening socket, keepalive is inherited by every socket it accepts (Linux
 * copies SO_KEEPALIVE and the TCP_KEEP* values into the new socket and starts its timer),
 * which covers the plain, TLS and HTTP listeners alike, the last opened by libevent's evhttp.
 * After tcp_keepalive_s seconds without a segment the kernel probes every tcp_keepalive_s / 6
 * seconds (at least 1) and resets the connection after 6 unanswered probes: a half-open
 * connection is gone about 2 * tcp_keepalive_s after its last byte. 0 turns keepalive off,
 * also on the HTTP listener, where evhttp turns it on with the kernel's defaults (2 hours). */
void
server_keepalive(const struct server *s, int fd)
{
    int idle = (int)s->cfg.tcp_keepalive_s;
    int on = idle != 0;
    int intvl = idle / 6 > 0 ? idle / 6 : 1;
    int cnt = 6;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on))) /* evhttp turns it on */
        log_warn("cannot set TCP keepalive: %s", strerror(errno));
    else if (idle
             && (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle))
                 || setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl))
                 || setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt))))
        log_warn("cannot turn TCP keepalive on: %s; half-open connections stay until "
                 "--idle-timeout", strerror(errno));
}

/* ---------------------------------------------------------------------------------------- */
/* Timer                                                                                     */

void
server_arm_timer(struct server *s)
{
    struct delivery *d = theap_min(&s->b.timers);
    struct timeval tv;
    uint64_t wait;

    if (!d || (s->timer_due && s->timer_due <= d->due_ms))
        return;
    wait = d->due_ms > s->b.now_ms ? d->due_ms - s->b.now_ms : 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
    s->timer_due = d->due_ms;
    event_add(s->timer, &tv);
}

static void
server_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    s->timer_due = 0;
    broker_tick(&s->b);
    broker_run_timers(&s->b);
    server_arm_timer(s);
    conn_resume_memory(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Accepting                                                                                 */

static void
format_peer(const struct sockaddr *sa, char *out, size_t len)
{
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    socklen_t salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);

    if (getnameinfo(sa, salen, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, len, "?");
        return;
    }
    snprintf(out, len, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* Tell a client over the connection limit why, without buffering: one small send. */
static void
refuse(int fd)
{
    uint8_t buf[128];
    struct smq_lbuf lb = {buf + SMQ_FRAME_HEADER, sizeof(buf) - SMQ_FRAME_HEADER, 0, 0};
    msgpack_packer pk;
    static const char msg[] = "too many connections";

    msgpack_packer_init(&pk, &lb, smq_lbuf_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, SMQ_OP_NONE);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, SLABMQ_ERR_LIMIT);
    msgpack_pack_str_with_body(&pk, msg, sizeof(msg) - 1);
    smq_frame_put_header(buf, (uint32_t)lb.len);
    (void)!send(fd, buf, SMQ_FRAME_HEADER + lb.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                 void *arg)
{
    struct server *s = arg;
    char peer[64];

    (void)salen;
    format_peer(sa, peer, sizeof(peer));
    if (s->rs.n.nconns >= s->cfg.max_connections) {
        s->rs.n.conns_refused++;
        log_info("refusing connection from %s: %u connections open (--max-connections)", peer,
                 s->rs.n.nconns);
        if (l == s->tls_listener)
            close(fd); /* it expects a TLS handshake: a plain error frame would be noise */
        else
            refuse(fd);
        return;
    }
    broker_tick(&s->b);
    conn_accept(s, fd, peer, l == s->tls_listener);
}

/* Enable or disable every listener. */
static void
listeners_enable(struct server *s, int on)
{
    struct evconnlistener *ls[2] = {s->listener, s->tls_listener};

    for (int i = 0; i < 2; i++)
        if (ls[i])
            (on ? evconnlistener_enable : evconnlistener_disable)(ls[i]);
}

static void
server_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    if (!s->stopping)
        listeners_enable(s, 1);
}

/* Out of file descriptors: stop accepting for a while instead of spinning on the error. */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};

    (void)l;
    log_warn("accept failed: %s; pausing accepts for %d ms", strerror(err), ACCEPT_RETRY_MS);
    listeners_enable(s, 0);
    event_add(s->accept_retry, &tv);
}

/* Create, bind and listen on port of --bind; *out gets the listener, *bound the port.
 * 'what' names it in errors. Returns -1 after printing why. */
static int
open_listener(struct server *s, int port, const char *what, struct evconnlistener **out,
              int *bound, char *where, size_t wlen)
{
    struct addrinfo hints = {0};
    struct addrinfo *ai;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char pstr[16];
    int fd;
    int one = 1;
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(pstr, sizeof(pstr), "%d", port);
    rc = getaddrinfo(s->cfg.bind, pstr, &hints, &ai);
    if (rc) {
        fprintf(stderr, "slabmqd: invalid --bind '%s': %s (a numeric IPv4 or IPv6 address)\n",
                s->cfg.bind, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))
        || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
        fprintf(stderr, "slabmqd: cannot listen on %s %s %d: %s\n", s->cfg.bind, what, port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    server_keepalive(s, fd);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    *out = evconnlistener_new(s->base, server_accept_cb, s,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!*out) {
        fprintf(stderr, "slabmqd: cannot start the listener\n");
        close(fd);
        return -1;
    }
    evconnlistener_set_error_cb(*out, server_accept_error_cb);
    format_peer((struct sockaddr *)&ss, where, wlen);
    return 0;
}

/* The TLS listener (with --tls-port), then the plain one; "listening on ADDR:PORT" comes
 * last, once every listener accepts, so a script can wait for that one line. */
static int
open_listeners(struct server *s)
{
    char where[96];
    char err[512];

    if (s->cfg.tls_port >= 0) {
        if (tls_init(s, err, sizeof(err))) {
            fprintf(stderr, "slabmqd: %s\n", err);
            return -1;
        }
        if (open_listener(s, s->cfg.tls_port, "--tls-port", &s->tls_listener, &s->tls_port,
                          where, sizeof(where)))
            return -1;
        printf("tls on %s\n", where);
        log_info("TLS on %s (certificate %s%s%s)", where, s->cfg.tls_cert,
                 s->cfg.tls_ca[0] ? ", client certificates required, signed by " : "",
                 s->cfg.tls_ca);
    }
    if (s->cfg.plain
        && open_listener(s, s->cfg.port, "port", &s->listener, &s->port, where, sizeof(where)))
        return -1;
    printf("listening on %s%s\n", where, s->cfg.plain ? "" : " (TLS only)");
    if (fflush(stdout)) /* how scripts and tests find the port */
        log_warn("cannot write the listening line: %s", strerror(errno));
    log_info("listening on %s%s (max memory %zu bytes, max message %u bytes)", where,
             s->cfg.plain ? "" : " (TLS only)", s->b.cfg.max_memory, s->b.cfg.max_message_size);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

/* The drain deadline passed, or a second signal came: close what is left and stop. */
static void
server_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    if (s->rs.n.nconns)
        log_info("shutdown: closing %u connections with replies still unwritten", s->rs.n.nconns);
    while (!dlist_empty(&s->conns))
        conn_close(DLIST_ENTRY(s->conns.next, struct conn, link));
    event_base_loopbreak(s->base);
}

/* SIGTERM or SIGINT: stop accepting, answer waiting FETCHes and subscriptions with
 * ERR_SHUTDOWN, let each connection write what it has (replies the store held included)
 * for up to --shutdown-timeout, then close; unacked messages go back to their queues as
 * each connection closes. A second signal stops at once. */
static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    struct timeval tv = {s->cfg.shutdown_timeout_ms / 1000,
                         (suseconds_t)(s->cfg.shutdown_timeout_ms % 1000) * 1000};

    (void)what;
    if (s->stopping) {
        log_info("signal %d again: stopping now", (int)sig);
        server_drain_cb(-1, 0, s);
        return;
    }
    log_info("signal %d: shutting down (%u connections, up to %u ms to drain)", (int)sig,
             s->rs.n.nconns, s->cfg.shutdown_timeout_ms);
    s->stopping = 1;
    listeners_enable(s, 0);
    if (s->b.store) { /* commit and sync what was accepted, then confirm it */
        store_stop(s->b.store);
        confirm_progress(&s->rs);
    }
    for (struct dlink *l = s->conns.next; l != &s->conns; l = l->next)
        conn_shutdown(DLIST_ENTRY(l, struct conn, link));
    if (!s->cfg.shutdown_timeout_ms || !s->drain) {
        server_drain_cb(-1, 0, s);
        return;
    }
    event_add(s->drain, &tv);
    conn_drain_all(s); /* may close every connection and stop the loop */
}

/* SIGHUP: the reload the program on top gave (server_config.reload). */
static void
server_hup_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;

    (void)sig;
    (void)what;
    if (s->cfg.reload)
        s->cfg.reload(s);
    else
        log_info("SIGHUP: no reload configured; ignored");
}

void
server_free(struct server *s)
{
    if (!s)
        return;
    while (!dlist_empty(&s->conns))
        conn_close(DLIST_ENTRY(s->conns.next, struct conn, link));
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->tls_listener)
        evconnlistener_free(s->tls_listener);
    if (s->accept_retry)
        event_free(s->accept_retry);
    if (s->timer)
        event_free(s->timer);
    if (s->sig_term)
        event_free(s->sig_term);
    if (s->sig_int)
        event_free(s->sig_int);
    if (s->sig_hup)
        event_free(s->sig_hup);
    if (s->drain)
        event_free(s->drain);
    http_stop(s); /* --http; before guard_deinit: it cancels its pending password checks */
    guard_deinit(s);
    if (s->store_ev)
        event_free(s->store_ev);
    s->b.journal = NULL;
    store_close(s->b.store);
    s->b.store = NULL;
    broker_deinit(&s->b);
    if (s->base)
        event_base_free(s->base);
    tls_deinit(s); /* after the connections: each holds a reference to the context */
    free(s);
}

/* The store's writer made progress: release held replies, resume paused readers. */
static void
server_store_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    broker_tick(&s->b);
    store_drain_event(s->b.store);
    confirm_progress(&s->rs);
    conn_resume_store(s);
}

struct server *
server_new(const struct server_config *c, char *err, size_t errlen)
{
    struct server *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *c;
    log_threshold = (enum log_level)c->log_level;
    log_format = (enum log_format)c->log_format;
    dlist_init(&s->conns);
    dlist_init(&s->mem_paused);
    dlist_init(&s->store_paused);
    req_server_init(&s->rs, &s->b, &conn_req_ops);
    dlist_init(&s->batched);
    dlist_init(&s->http_checks);
    if (broker_init(&s->b, &c->broker, err, errlen)) {
        free(s);
        return NULL;
    }
    s->b.hooks = (struct broker_hooks){req_serve_queue, req_queue_gone, &s->rs};
    if (c->durability) { /* loads the durable queues before anyone can connect */
        char why[256];
        size_t ring = c->store_ring ? c->store_ring
                                    : store_ring_bytes(c->broker.max_memory,
                                                       c->broker.max_message_size);
        struct store *st = store_open(&s->b, c->data_dir, ring, c->ignore_corrupt,
                                      why, sizeof(why));
        if (!st) {
            snprintf(err, errlen, "durability: %s", why);
            server_free(s);
            return NULL;
        }
        s->b.store = st;
        s->b.journal = store_journal(st); /* from now on durable changes are written */
    }
    s->rs.n.started_ms = s->b.now_ms;
    s->base = event_base_new();
    s->rs.base = s->base;
    if (s->base)
        s->timer = evtimer_new(s->base, server_timer_cb, s);
    if (!s->base || !s->timer) {
        snprintf(err, errlen, "cannot create the event loop");
        server_free(s);
        return NULL;
    }
    if (s->b.store) {
        s->store_ev = event_new(s->base, store_event_fd(s->b.store), EV_READ | EV_PERSIST,
                                server_store_cb, s);
        if (!s->store_ev || event_add(s->store_ev, NULL)) {
            snprintf(err, errlen, "cannot set up events");
            server_free(s);
            return NULL;
        }
    }
    if (guard_init(s)) { /* it has printed why */
        if (errlen)
            err[0] = '\0';
        server_free(s);
        return NULL;
    }
    return s;
}

int
server_run(const struct server_config *c)
{
    char err[256];
    struct server *s;
    int rc = 1;

    (void)signal(SIGPIPE, SIG_IGN); /* a peer that closes must not kill the broker */
    s = server_new(c, err, sizeof(err));
    if (!s) {
        if (err[0])
            fprintf(stderr, "slabmqd: %s\n", err);
        return 1;
    }
    s->accept_retry = evtimer_new(s->base, server_accept_retry_cb, s);
    s->sig_term = evsignal_new(s->base, SIGTERM, server_signal_cb, s);
    s->sig_int = evsignal_new(s->base, SIGINT, server_signal_cb, s);
    s->sig_hup = evsignal_new(s->base, SIGHUP, server_hup_cb, s);
    s->drain = evtimer_new(s->base, server_drain_cb, s);
    if (!s->accept_retry || !s->sig_term || !s->sig_int || !s->sig_hup || !s->drain
        || event_add(s->sig_term, NULL) || event_add(s->sig_int, NULL)
        || event_add(s->sig_hup, NULL)) {
        fprintf(stderr, "slabmqd: cannot set up events\n");
        goto out;
    }
    if (s->cfg.http[0] && http_start(s)) /* --http: before "listening on" */
        goto out;
    if (open_listeners(s))
        goto out;
    event_base_dispatch(s->base);
    log_info("stopped");
    rc = 0;
out:
    server_free(s);
    libevent_global_shutdown();
    return rc;
}
