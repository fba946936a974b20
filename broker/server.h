/* SPDX-License-Identifier: MIT */
/* The network side of slabmqd: one libevent event_base, the listener, signals and the
 * broker's single timer. Everything runs on one thread (docs/architecture.md says why). */
#ifndef SLABMQ_BROKER_SERVER_H
#define SLABMQ_BROKER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "dlist.h"

struct event_base;
struct event;
struct evconnlistener;

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
    size_t store_ring;         /* bytes of the store's operation ring */
};

struct server {
    struct server_config cfg;
    struct broker b;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *sig_term;
    struct event *sig_int;
    struct event *timer;        /* fires at the timer heap's earliest due time */
    struct event *accept_retry; /* re-enables accepting after EMFILE */
    uint64_t timer_due;         /* when 'timer' is armed for (mono ms), 0 if not */
    struct dlink conns;         /* every open connection */
    struct dlink mem_paused;    /* connections paused at the memory limit (conn.plink) */
    struct dlink store_paused;  /* connections paused for the store's ring (conn.stlink) */
    struct dlink confirm_conns; /* connections with replies held for the store */
    struct event *store_ev;     /* the store's progress notifications */
    uint32_t nconns;
    uint64_t conns_total;       /* accepted, total */
    uint64_t conns_refused;     /* refused at max_connections, total */
    uint64_t protocol_errors;   /* malformed frames and bodies, total */
    uint64_t slow_closed;       /* connections closed for unread replies over the limit */
    uint64_t next_conn_id;
    uint64_t started_ms;        /* monotonic ms at start */
    int port;                   /* port actually bound */
    int stopping;
};

void server_config_defaults(struct server_config *c);
/* Run until SIGTERM/SIGINT. Returns the process exit status. */
int server_run(const struct server_config *c);
/* Arm the timer if the heap's earliest due time is earlier than what it is armed for. */
void server_arm_timer(struct server *s);

#endif /* SLABMQ_BROKER_SERVER_H */
