/* SPDX-License-Identifier: MIT */
/* One port for every partition's Raft traffic; see rnet.h. */
#include "cluster/rnet.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t MAGIC[8] = {'S', 'M', 'Q', 'R', 'A', 'F', 'T', '1'};

struct outgoing;

/* One partition's transport. */
struct part {
    struct rnet *h;
    uint32_t partition;
    struct raft_uv_transport *t;  /* NULL until rnet_transport() */
    raft_uv_accept_cb accept_cb;  /* from listen(): NULL until then and once closing */
    int closing;
    raft_uv_transport_close_cb close_cb;
    struct outgoing *outgoing;    /* connects under way */
};

/* An outgoing connection until its preamble is written. */
struct outgoing {
    struct part *p;
    struct raft_uv_connect *req;
    uv_tcp_t *tcp;                /* raft_malloc()ed: handed to libraft on success */
    uv_connect_t conn;
    uv_write_t write;
    uint8_t preamble[RNET_PREAMBLE];
    int canceled;
    struct outgoing *next;
    struct outgoing *prev;
};

/* An accepted connection until its preamble is read and checked. */
struct incoming {
    struct rnet *h;
    uv_tcp_t *tcp;                /* raft_malloc()ed: handed to libraft on success */
    uv_timer_t timer;             /* RNET_HANDSHAKE_MS to send the preamble */
    uint8_t buf[RNET_PREAMBLE];
    size_t nread;
    int handles;                  /* of tcp and timer, not yet closed */
    struct incoming *next;
    struct incoming *prev;
};

struct rnet {
    uv_loop_t *loop;
    uint64_t digest;
    struct rnet_node *nodes;
    unsigned n;
    raft_id self;
    const char *self_address;
    uint32_t npart;
    struct part *parts;
    uv_tcp_t listener;
    int listening;
    struct incoming *incoming;
    struct rnet_stats stats;
    int closing;
    int handles;                  /* the listener and incoming connections' handles */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void
put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static const struct rnet_node *
node_find(const struct rnet *h, raft_id id)
{
    for (unsigned i = 0; i < h->n; i++)
        if (h->nodes[i].id == id)
            return &h->nodes[i];
    return NULL;
}

/* "a.b.c.d:port" into sa; 0 or a libuv error. */
static int
parse_address(const char *address, struct sockaddr_in *sa)
{
    char ip[RNET_ADDR_MAX];
    const char *colon = strrchr(address, ':');
    size_t iplen;
    char *end;
    long port;

    if (!colon || (iplen = (size_t)(colon - address)) == 0 || iplen >= sizeof(ip))
        return UV_EINVAL;
    port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535)
        return UV_EINVAL;
    memcpy(ip, address, iplen);
    ip[iplen] = '\0';
    return uv_ip4_addr(ip, (int)port, sa);
}

static void
maybe_closed(struct rnet *h)
{
    if (h->closing && h->handles == 0) {
        void (*cb)(void *) = h->close_cb;
        void *arg = h->close_arg;
        free(h->parts);
        free(h->nodes);
        free(h);
        if (cb)
            cb(arg);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Outgoing                                                                                    */

static void
part_maybe_closed(struct part *p)
{
    if (p->closing && !p->outgoing && p->close_cb) {
        raft_uv_transport_close_cb cb = p->close_cb;
        p->close_cb = NULL;
        cb(p->t);
    }
}

static void
outgoing_unlink(struct outgoing *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        o->p->outgoing = o->next;
    if (o->next)
        o->next->prev = o->prev;
}

/* The connection failed or was canceled: tell libraft, close the socket, forget o. */
static void
outgoing_fail(struct outgoing *o, int status)
{
    struct part *p = o->p;

    outgoing_unlink(o);
    if (!o->canceled) /* canceling closed it already */
        uv_close((uv_handle_t *)o->tcp, (uv_close_cb)raft_free);
    o->req->cb(o->req, NULL, o->canceled ? RAFT_CANCELED : status);
    free(o);
    part_maybe_closed(p);
}

static void
on_written(uv_write_t *w, int status)
{
    struct outgoing *o = w->data;
    struct part *p = o->p;

    if (status != 0 || o->canceled) {
        outgoing_fail(o, RAFT_NOCONNECTION);
        return;
    }
    outgoing_unlink(o);
    o->req->cb(o->req, (uv_stream_t *)o->tcp, 0); /* libraft owns the stream now */
    free(o);
    part_maybe_closed(p);
}

static void
on_connected(uv_connect_t *c, int status)
{
    struct outgoing *o = c->data;
    uv_buf_t buf = uv_buf_init((char *)o->preamble, RNET_PREAMBLE);

    if (status != 0 || o->canceled) {
        outgoing_fail(o, RAFT_NOCONNECTION);
        return;
    }
    o->write.data = o;
    if (uv_write(&o->write, (uv_stream_t *)o->tcp, &buf, 1, on_written) != 0)
        outgoing_fail(o, RAFT_NOCONNECTION);
}

static int
t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
          const char *address, raft_uv_connect_cb cb)
{
    struct part *p = t->impl;
    struct rnet *h = p->h;
    struct sockaddr_in sa;
    struct outgoing *o;
    int rv;

    (void)id;
    if (p->closing)
        return RAFT_CANCELED;
    if (parse_address(address, &sa) != 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "bad Raft address '%s'", address);
        return RAFT_NOCONNECTION;
    }
    o = calloc(1, sizeof(*o));
    if (!o)
        return RAFT_NOMEM;
    o->tcp = raft_malloc(sizeof(*o->tcp));
    if (!o->tcp) {
        free(o);
        return RAFT_NOMEM;
    }
    o->p = p;
    o->req = req;
    req->cb = cb;
    memcpy(o->preamble, MAGIC, 8);
    put_be(o->preamble + 8, h->digest, 8);
    put_be(o->preamble + 16, p->partition, 4);
    put_be(o->preamble + 20, h->self, 4);
    uv_tcp_init(h->loop, o->tcp);
    uv_tcp_nodelay(o->tcp, 1);
    o->conn.data = o;
    rv = uv_tcp_connect(&o->conn, o->tcp, (const struct sockaddr *)&sa, on_connected);
    if (rv != 0) {
        uv_close((uv_handle_t *)o->tcp, (uv_close_cb)raft_free);
        free(o);
        return RAFT_NOCONNECTION;
    }
    o->next = p->outgoing;
    if (o->next)
        o->next->prev = o;
    p->outgoing = o;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Incoming                                                                                    */

static void
incoming_handle_closed(uv_handle_t *handle)
{
    struct incoming *in = handle->data;
    struct rnet *h = in->h;

    if (handle == (uv_handle_t *)in->tcp)
        raft_free(in->tcp);
    h->handles--;
    if (--in->handles == 0) {
        free(in);
        maybe_closed(h);
    }
}

/* Done with the preamble: unlink in, close its timer and, unless handed over, its socket. */
static void
incoming_end(struct incoming *in, int handed_over)
{
    struct rnet *h = in->h;

    if (in->prev)
        in->prev->next = in->next;
    else
        h->incoming = in->next;
    if (in->next)
        in->next->prev = in->prev;
    uv_close((uv_handle_t *)&in->timer, incoming_handle_closed);
    if (handed_over) {
        in->handles--; /* the socket is libraft's */
        h->handles--;
    } else {
        uv_close((uv_handle_t *)in->tcp, incoming_handle_closed);
    }
}

/* Whether the peer's IP is node's. */
static int
peer_is(const struct incoming *in, const struct rnet_node *node)
{
    struct sockaddr_storage ss;
    struct sockaddr_in want;
    int len = sizeof(ss);

    if (uv_tcp_getpeername(in->tcp, (struct sockaddr *)&ss, &len) != 0
        || ss.ss_family != AF_INET || parse_address(node->address, &want) != 0)
        return 0;
    return ((struct sockaddr_in *)&ss)->sin_addr.s_addr == want.sin_addr.s_addr;
}

static void
preamble_check(struct incoming *in)
{
    struct rnet *h = in->h;
    uint32_t partition = (uint32_t)get_be(in->buf + 16, 4);
    raft_id id = get_be(in->buf + 20, 4);
    const struct rnet_node *node = node_find(h, id);
    struct part *p;

    if (memcmp(in->buf, MAGIC, 8) != 0 || get_be(in->buf + 24, 8) != 0) {
        h->stats.bad_preamble++;
    } else if (get_be(in->buf + 8, 8) != h->digest) {
        h->stats.bad_cluster++;
    } else if (!node || id == h->self || !peer_is(in, node)) {
        h->stats.bad_node++;
    } else if (partition >= h->npart || !(p = &h->parts[partition])->accept_cb) {
        h->stats.bad_partition++;
    } else {
        uv_tcp_t *tcp = in->tcp;
        h->stats.accepted++;
        incoming_end(in, 1);
        p->accept_cb(p->t, id, node->address, (uv_stream_t *)tcp);
        return;
    }
    incoming_end(in, 0);
}

static void
incoming_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct incoming *in = handle->data;

    (void)suggested; /* no more than the preamble: what follows is libraft's */
    *buf = uv_buf_init((char *)in->buf + in->nread, (unsigned)(RNET_PREAMBLE - in->nread));
}

static void
incoming_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct incoming *in = stream->data;

    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        in->h->stats.bad_preamble++;
        incoming_end(in, 0);
        return;
    }
    in->nread += (size_t)nread;
    if (in->nread < RNET_PREAMBLE)
        return;
    uv_read_stop(stream);
    preamble_check(in);
}

static void
incoming_timeout(uv_timer_t *timer)
{
    struct incoming *in = timer->data;

    in->h->stats.bad_preamble++;
    incoming_end(in, 0);
}

static void
on_connection(uv_stream_t *listener, int status)
{
    struct rnet *h = listener->data;
    struct incoming *in;

    if (status != 0 || h->closing)
        return;
    in = calloc(1, sizeof(*in));
    if (!in || !(in->tcp = raft_malloc(sizeof(*in->tcp)))) {
        free(in);
        return; /* the connection waits in the backlog; the peer retries */
    }
    in->h = h;
    uv_tcp_init(h->loop, in->tcp);
    in->tcp->data = in;
    if (uv_accept(listener, (uv_stream_t *)in->tcp) != 0) {
        in->handles = 1;
        h->handles++;
        uv_close((uv_handle_t *)in->tcp, (uv_close_cb)raft_free);
        h->handles--;
        free(in);
        return;
    }
    uv_tcp_nodelay(in->tcp, 1);
    uv_timer_init(h->loop, &in->timer);
    in->timer.data = in;
    in->handles = 2;
    h->handles += 2;
    in->next = h->incoming;
    if (in->next)
        in->next->prev = in;
    h->incoming = in;
    uv_timer_start(&in->timer, incoming_timeout, RNET_HANDSHAKE_MS, 0);
    uv_read_start((uv_stream_t *)in->tcp, incoming_alloc, incoming_read);
}

/* ------------------------------------------------------------------------------------------ */
/* The transport interface                                                                    */

static int
t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct part *p = t->impl;

    (void)address;
    if (id != p->h->self) {
        snprintf(t->errmsg, sizeof(t->errmsg), "Raft id %llu is not this node's (%llu)",
                 (unsigned long long)id, (unsigned long long)p->h->self);
        return RAFT_INVALID;
    }
    return 0;
}

static int
t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct part *p = t->impl;

    p->accept_cb = cb; /* the hub's listener serves every partition */
    return 0;
}

static void
t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct part *p = t->impl;

    p->closing = 1;
    p->accept_cb = NULL;
    p->close_cb = cb;
    for (struct outgoing *o = p->outgoing; o; o = o->next) {
        if (!o->canceled) {
            o->canceled = 1; /* its pending callback fails it (ECANCELED) */
            uv_close((uv_handle_t *)o->tcp, (uv_close_cb)raft_free);
        }
    }
    part_maybe_closed(p);
}

int
rnet_transport(struct rnet *h, uint32_t partition, struct raft_uv_transport *t)
{
    struct part *p;

    if (partition >= h->npart || h->parts[partition].t)
        return RAFT_INVALID;
    p = &h->parts[partition];
    p->t = t;
    t->version = 1;
    t->impl = p;
    t->init = t_init;
    t->listen = t_listen;
    t->connect = t_connect;
    t->close = t_close;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The hub                                                                                     */

struct rnet *
rnet_new(uv_loop_t *loop, uint64_t digest, const struct rnet_node *nodes, unsigned n,
         raft_id self, uint32_t partitions)
{
    struct rnet *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->nodes = malloc((size_t)n * sizeof(*nodes));
    h->parts = calloc(partitions ? partitions : 1, sizeof(*h->parts));
    if (!h->nodes || !h->parts) {
        free(h->nodes);
        free(h->parts);
        free(h);
        return NULL;
    }
    memcpy(h->nodes, nodes, (size_t)n * sizeof(*nodes));
    h->loop = loop;
    h->digest = digest;
    h->n = n;
    h->self = self;
    h->npart = partitions;
    for (uint32_t i = 0; i < partitions; i++) {
        h->parts[i].h = h;
        h->parts[i].partition = i;
    }
    if (!node_find(h, self)) {
        free(h->nodes);
        free(h->parts);
        free(h);
        return NULL;
    }
    h->self_address = node_find(h, self)->address;
    return h;
}

int
rnet_listen(struct rnet *h, const char *bind)
{
    struct sockaddr_in sa;
    int rv = parse_address(bind ? bind : h->self_address, &sa);

    if (rv != 0)
        return rv;
    uv_tcp_init(h->loop, &h->listener);
    h->listener.data = h;
    h->handles++;
    h->listening = 1;
    if ((rv = uv_tcp_bind(&h->listener, (const struct sockaddr *)&sa, 0)) != 0
        || (rv = uv_listen((uv_stream_t *)&h->listener, 128, on_connection)) != 0)
        return rv; /* rnet_close() closes the handle */
    return 0;
}

int
rnet_port(const struct rnet *h)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (!h->listening
        || uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

const struct rnet_stats *
rnet_stats(const struct rnet *h)
{
    return &h->stats;
}

static void
listener_closed(uv_handle_t *handle)
{
    struct rnet *h = handle->data;

    h->handles--;
    maybe_closed(h);
}

void
rnet_close(struct rnet *h, void (*cb)(void *arg), void *arg)
{
    h->closing = 1;
    h->close_cb = cb;
    h->close_arg = arg;
    while (h->incoming)
        incoming_end(h->incoming, 0);
    if (h->listening)
        uv_close((uv_handle_t *)&h->listener, listener_closed);
    else
        maybe_closed(h);
}
