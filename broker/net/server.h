/* SPDX-License-Identifier: MIT */
/* The network side of slabmqd: one libevent event_base, the listener, signals and the
 * broker's single timer. Everything here runs on one thread; the SQLite writer (store.c) and
 * the password-hash thread (verify.c) touch none of it (docs/architecture.md says why). */
#ifndef SLABMQ_BROKER_NET_SERVER_H
#define SLABMQ_BROKER_NET_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/broker.h"
#include "req/req.h"
#include "util/dlist.h"

struct event_base;
struct event;
struct evconnlistener;
struct http;
struct server;
struct ssl_ctx_st;
struct verify;

struct server_config {
    struct broker_config broker;
    char bind[64];             /* --bind, numeric address */
    int port;                  /* --port; 0 picks a free one */
    uint32_t max_connections;  /* --max-connections */
    size_t output_cap;         /* pending output at which a connection stops being read */
    uint32_t frame_timeout_ms; /* --frame-timeout: a started frame must be complete by then */
    int durability;            /* --durability: 0 none, 1 sqlite */
    char data_dir[1024];       /* --data-dir */
    int ignore_corrupt;        /* --ignore-corrupt-data */
    size_t store_ring;         /* bytes of the store's operation ring; 0: store_ring_bytes() */
    /* Authentication and connection deadlines (guard.c, docs/security.md) */
    const char *auth_file;          /* --auth-file or $SLABMQ_AUTH_FILE; NULL: no auth */
    uint32_t handshake_timeout_ms;  /* --handshake-timeout: HELLO (and AUTH) done by then */
    uint32_t idle_timeout_ms;       /* --idle-timeout: close after this long without input;
                                       0: never */
    uint32_t tcp_keepalive_s;       /* --tcp-keepalive: idle seconds before TCP keepalive
                                       probes (every s/6, 6 of them); 0: off */
    /* Configuration file, logging and lifecycle (config.c, reload.c, docs/operations.md) */
    char config_file[1024];         /* --config FILE; "" without */
    char auth_path[1024];           /* auth-file as the config file gave it (auth_file) */
    int check_config;               /* --check-config: validate, print a verdict, exit */
    int log_level;                  /* --log-level: enum log_level */
    int log_format;                 /* --log-format: enum log_format */
    uint32_t shutdown_timeout_ms;   /* --shutdown-timeout: replies drain this long at SIGTERM */
    int argc;                       /* the command line, kept for SIGHUP to re-read */
    void (*reload)(struct server *s); /* SIGHUP: re-read and apply the configuration; set by
                                       the program on top (main.c: reload.c), which the net
                                       layer does not include; NULL: SIGHUP is ignored */
    char **argv;
    char http[96];                  /* --http ADDR:PORT (http.c); "" = no HTTP server */
    /* TLS (tls.c, docs/security.md) */
    int plain;                      /* the plain listener is on; --port off: TLS only */
    int tls_port;                   /* --tls-port, on --bind; 0 picks a free one; -1: off */
    char tls_cert[1024];            /* --tls-cert: PEM certificate chain */
    char tls_key[1024];             /* --tls-key: PEM private key */
    char tls_ca[1024];              /* --tls-ca: client certificates must be signed by it;
                                       "": none asked for */
    int tls_min_version;            /* --tls-min-version: 12 or 13 */
};

struct server {
    struct server_config cfg;
    struct broker b;
    struct req_server rs;       /* what the handlers share: &b, the users (auth, verify),
                                   the counters, the held confirmations (req/req.h) */
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sig_term;
    struct event *sig_int;
    struct event *sig_hup;      /* SIGHUP: re-read the configuration (reload.c) */
    struct event *drain;        /* the --shutdown-timeout deadline once stopping */
    struct event *timer;        /* fires at the timer heap's earliest due time */
    struct event *accept_retry; /* re-enables accepting after EMFILE */
    uint64_t timer_due;         /* when 'timer' is armed for (mono ms), 0 if not */
    struct dlink conns;         /* every open connection */
    struct dlink mem_paused;    /* connections paused at the memory limit (conn.plink) */
    struct dlink store_paused;  /* connections paused for the store's ring (conn.stlink) */
    struct dlink batched;       /* connections with pushes to write once the frames being
                                   handled are done (conn.blink) */
    uint8_t batching;           /* inside conn_process: conn_write_batched() defers */
    struct event *store_ev;     /* the store's progress notifications */
    uint64_t next_conn_id;
    int port;                   /* port actually bound */
    int stopping;
    /* Test seam: when set, connections read their input with this instead of read(2) (the
     * fuzz harness in tests/fuzz feeds bytes from memory); same contract as read(2). */
    ssize_t (*read_fn)(void *ctx, int fd, void *buf, size_t len);
    void *read_ctx;
    /* Authentication and connection deadlines (guard.c) */
    struct event *guard_timer;  /* fires at the earliest deadline of the three lists below */
    uint64_t guard_due;         /* when guard_timer is armed for (mono ms), 0 if not */
    struct dlink handshaking;   /* connections before their handshake ends, oldest first */
    struct dlink auth_failed;   /* connections whose AUTH failed, waiting out the delay */
    struct dlink auth_refused;  /* connections whose AUTH was refused unchecked (throttled,
                                   no check slot), waiting out the longer delay */
    struct dlink idle;          /* connections by last input, least recent first (with
                                   --idle-timeout) */
    uint64_t refusal_log_ms;    /* mono ms of the last refusal logged (guard_log_refusal) */
    uint64_t refusals_unlogged; /* refusals held back from the log since then */
    struct http *http;          /* --http: metrics and dashboard (http.c); NULL if off */
    struct dlink http_checks;   /* HTTP requests whose credentials are being checked, or whose
                                   refusal waits out its delay (http_auth.c) */
    /* TLS (tls.c) */
    struct ssl_ctx_st *tls_ctx;         /* for connections accepted from now on; NULL: off */
    struct evconnlistener *tls_listener; /* --tls-port */
    int tls_port;                       /* port actually bound, 0 if none */
};

void server_config_defaults(struct server_config *c);
/* Run until SIGTERM/SIGINT. Returns the process exit status. */
int server_run(const struct server_config *c);
/* The broker (with its store when c->durability, its users when c->auth_file), its event loop,
 * timers and connection guards, without listener or signals: what server_run serves, and what a
 * test drives in-process. Returns a new server (free with server_free()), or NULL with a reason
 * in err (empty when it has already been printed). */
struct server *server_new(const struct server_config *c, char *err, size_t errlen);
/* Close every connection and free s and all it owns. Accepts NULL. */
void server_free(struct server *s);
/* Arm the timer if the heap's earliest due time is earlier than what it is armed for. */
void server_arm_timer(struct server *s);
/* Set TCP keepalive on listening socket fd as --tcp-keepalive says (off when it is 0); the
 * connections it accepts inherit it. A failure is logged, not fatal. */
void server_keepalive(const struct server *s, int fd);

#endif /* SLABMQ_BROKER_NET_SERVER_H */
