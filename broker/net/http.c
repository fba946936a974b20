/* SPDX-License-Identifier: MIT */
/* evhttp on the broker's event loop; see http.h. Limits: GET and HEAD only, request
 * headers up to HTTP_MAX_HEADERS bytes, no body, HTTP_TIMEOUT_S seconds for a request to
 * arrive and its reply to leave. libevent 2.1 has no connection limit for evhttp, which is
 * one reason the default address is loopback. */
#include "net/http.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "core/broker.h"
#include "core/delivery.h"
#include "util/log.h"
#include "net/metrics.h"
#include "core/queue.h"
#include "mem/segment.h"
#include "net/server.h"
#include "store/store.h"
#include "req/sub.h"

#define HTTP_MAX_HEADERS 8192
#define HTTP_MAX_BODY 1024
#define HTTP_TIMEOUT_S 5
#define DLQ_MAX 100     /* dead letters per /api/deadletters request, at most */
#define PREVIEW_MAX 128 /* payload bytes shown per dead letter */

/* The dashboard page, generated from dashboard.html at build time (cmake/embed.cmake). */
extern const unsigned char dashboard_html[];
extern const size_t dashboard_html_len;

struct http {
    struct evhttp *eh;
};

/* ---------------------------------------------------------------------------------------- */
/* Replies                                                                                   */

static void
send_text(struct evhttp_request *req, int code, const char *reason, const char *type,
          struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void
send_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    struct evbuffer *b = evbuffer_new();

    if (b)
        evbuffer_add_printf(b, "{\"error\":\"%s\"}\n", msg);
    send_text(req, code, reason, "application/json", b);
    evbuffer_free(b);
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes as they are
 * (queue names are UTF-8; payload previews replace non-ASCII bytes with '.'). */
static void
json_str(struct evbuffer *b, const char *s, size_t n, int ascii)
{
    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(b, "\\u%04x", ch);
        else if (ascii && ch >= 0x7f)
            evbuffer_add(b, ".", 1);
        else
            evbuffer_add(b, &s[i], 1);
    }
    evbuffer_add(b, "\"", 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Endpoints                                                                                 */

static void
serve_metrics(struct evhttp_request *req, struct server *s)
{
    struct evbuffer *b = evbuffer_new();

    if (!b || metrics_write(b, s)) {
        evbuffer_free(b);
        send_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    send_text(req, 200, "OK", METRICS_CONTENT_TYPE, b);
    evbuffer_free(b);
}

static void
json_queue(struct evbuffer *b, const struct queue *q)
{
    char dlq[SMQ_NAME_MAX + 1];
    uint32_t dlen = queue_dlq_name(q, dlq);

    evbuffer_add(b, "{\"name\":", 8);
    json_str(b, q->name, q->name_len, 0);
    evbuffer_add_printf(b,
                        ",\"ready\":%" PRIu64 ",\"inflight\":%" PRIu64 ",\"delayed\":%" PRIu64
                        ",\"bytes\":%" PRIu64 ",\"subscriptions\":%u,\"paused\":%u"
                        ",\"published\":%" PRIu64 ",\"delivered\":%" PRIu64
                        ",\"acked\":%" PRIu64 ",\"redelivered\":%" PRIu64
                        ",\"dead_lettered\":%" PRIu64 ",\"dead_letter\":",
                        queue_ready(q), q->ninflight, q->ndelayed, q->bytes,
                        (unsigned)sub_count(q), (unsigned)q->paused, q->c.published,
                        q->c.delivered, q->c.acked, q->c.redelivered, q->c.dead_lettered);
    json_str(b, dlq, dlen, 0);
    evbuffer_add(b, "}", 1);
}

static void
json_slab(struct evbuffer *b, const struct slab *sl)
{
    int first = 1;

    evbuffer_add_printf(b, "\"slab\":{\"page_size\":%zu,\"pages\":%u,\"classes\":[",
                        sl->page_size, sl->npages);
    for (int i = 0; i < sl->nclasses; i++) {
        const struct slab_class *c = &sl->cls[i];
        if (c->pages == 0)
            continue;
        evbuffer_add_printf(b,
                            "%s{\"class\":%d,\"chunk_size\":%u,\"pages\":%" PRIu64
                            ",\"used\":%" PRIu64 ",\"used_bytes\":%" PRIu64 "}",
                            first ? "" : ",", i, c->size, c->pages, c->used,
                            c->used * c->size);
        first = 0;
    }
    evbuffer_add(b, "]}", 2);
}

static void
json_broker(struct evbuffer *b, const struct server *s)
{
    const struct broker *br = &s->b;

    evbuffer_add_printf(b,
                        "\"now_ms\":%" PRIu64 ",\"uptime_ms\":%" PRIu64 ",\"connections\":%u"
                        ",\"queue_count\":%zu,\"messages\":%" PRIu64
                        ",\"memory\":{\"used\":%zu,\"limit\":%zu,\"peak\":%zu}"
                        ",\"reservoir\":{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64
                        ",\"overflows\":%" PRIu64 ",\"bytes\":%zu,\"idle_bytes\":%zu},",
                        br->now_ms, br->now_ms - s->rs.n.started_ms, s->rs.n.nconns,
                        (size_t)br->nqueues, br->messages, br->mem.used, br->mem.limit,
                        br->mem.peak, br->res.hits, br->res.misses, br->res.overflows,
                        br->res.bytes, br->res.idle_bytes);
    if (br->store)
        evbuffer_add_printf(b, "\"store\":{\"lag\":%" PRIu64 ",\"sync_lag\":%" PRIu64 "},",
                            store_appended(br->store) - store_committed(br->store),
                            store_committed(br->store) - store_synced(br->store));
    else
        evbuffer_add(b, "\"store\":null,", 13);
}

static void
serve_stats(struct evhttp_request *req, struct server *s)
{
    struct evbuffer *b = evbuffer_new();
    const struct broker *br = &s->b;
    const struct queue *q;
    int first = 1;

    if (!b) {
        send_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    evbuffer_add(b, "{", 1);
    json_broker(b, s);
    json_slab(b, &br->slab);
    evbuffer_add(b, ",\"queues\":[", 11);
    for (size_t pos = 0; (q = broker_queue_next(br, &pos));) {
        if (!first)
            evbuffer_add(b, ",", 1);
        json_queue(b, q);
        first = 0;
    }
    evbuffer_add(b, "]}\n", 3);
    send_text(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void
json_dead_letter(struct evbuffer *b, const struct msgref *m)
{
    char preview[PREVIEW_MAX];
    struct seg_rec rec;
    uint32_t n;

    seg_read(m->seg, m->off, &rec);
    n = seg_copy_to(m->seg, m->off, preview, sizeof(preview));
    evbuffer_add_printf(b, "{\"id\":%" PRIu64 ",\"deliveries\":%u,\"bytes\":%u,\"reason\":",
                        m->id, m->deliveries, rec.len);
    if (m->ext && m->ext->reason) {
        json_str(b, dl_reason_name(m->ext->reason), strlen(dl_reason_name(m->ext->reason)), 0);
        evbuffer_add(b, ",\"source\":", 10);
        json_str(b, m->ext->src, m->ext->srclen, 0);
        evbuffer_add_printf(b, ",\"source_deliveries\":%u", m->ext->dl_deliveries);
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add(b, ",\"preview\":", 11);
    json_str(b, preview, n, 1);
    evbuffer_add(b, "}", 1);
}

/* /api/deadletters?queue=NAME[&max=N]: PEEK at NAME's dead-letter queue, read-only. */
static void
serve_dead_letters(struct evhttp_request *req, struct server *s)
{
    struct msgref refs[DLQ_MAX];
    struct evkeyvalq args;
    /* the URI is there: http_request_cb checked it */
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    const char *name;
    const char *maxs;
    struct queue *q;
    struct queue *dq = NULL;
    char dlq[SMQ_NAME_MAX + 1];
    uint32_t dlen;
    uint32_t n = 0;
    long max = 20;
    struct evbuffer *b;

    if (!query || evhttp_parse_query_str(query, &args)) { /* it initialises args */
        send_error(req, 400, "Bad Request", "expected ?queue=NAME[&max=N]");
        return;
    }
    if (!(name = evhttp_find_header(&args, "queue"))) {
        evhttp_clear_headers(&args);
        send_error(req, 400, "Bad Request", "expected ?queue=NAME[&max=N]");
        return;
    }
    if ((maxs = evhttp_find_header(&args, "max")))
        max = strtol(maxs, NULL, 10);
    if (max < 1 || max > DLQ_MAX)
        max = DLQ_MAX;
    q = broker_queue_find(&s->b, name, strlen(name));
    evhttp_clear_headers(&args);
    if (!q) {
        send_error(req, 404, "Not Found", "no such queue");
        return;
    }
    dlen = queue_dlq_name(q, dlq);
    if (dlen && (dq = broker_queue_find(&s->b, dlq, dlen)))
        n = queue_peek(dq, 0, (uint32_t)max, s->b.cfg.max_fetch_bytes, refs);
    if (!(b = evbuffer_new())) {
        send_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    evbuffer_add(b, "{\"queue\":", 9);
    json_str(b, q->name, q->name_len, 0);
    evbuffer_add(b, ",\"dead_letter\":", 15);
    json_str(b, dlq, dlen, 0);
    evbuffer_add_printf(b, ",\"count\":%" PRIu64 ",\"messages\":[", dq ? queue_ready(dq) : 0);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            evbuffer_add(b, ",", 1);
        json_dead_letter(b, &refs[i]);
    }
    evbuffer_add(b, "]}\n", 3);
    send_text(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void
serve_dashboard(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();

    if (b)
        evbuffer_add_reference(b, dashboard_html, dashboard_html_len, NULL, NULL);
    send_text(req, 200, "OK", "text/html; charset=utf-8", b);
    evbuffer_free(b);
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;

    broker_tick(&s->b);
    if (http_authorize(req, s) == HTTP_AUTH_OK)
        http_serve(req, s);
}

void
http_serve(struct evhttp_request *req, struct server *s)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

    if (!path)
        send_error(req, 400, "Bad Request", "no path");
    else if (strcmp(path, "/metrics") == 0)
        serve_metrics(req, s);
    else if (strcmp(path, "/api/stats") == 0)
        serve_stats(req, s);
    else if (strcmp(path, "/api/deadletters") == 0)
        serve_dead_letters(req, s);
    else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        serve_dashboard(req);
    else
        send_error(req, 404, "Not Found", "not found");
}

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

int
http_parse_addr(const char *arg, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(arg, ':');
    const char *p = colon ? colon + 1 : arg;
    size_t hl = colon ? (size_t)(colon - arg) : 0;
    struct in6_addr a6; /* room for either family */
    char *end;
    long v;

    if (*p < '0' || *p > '9')
        return -1;
    v = strtol(p, &end, 10);
    if (*end || v < 0 || v > 65535)
        return -1;
    if (hl >= 2 && arg[0] == '[' && arg[hl - 1] == ']') { /* [IPv6] */
        arg++;
        hl -= 2;
    }
    if (hl == 0) {
        arg = HTTP_DEFAULT_HOST;
        hl = strlen(arg);
    }
    if (hl >= hostlen)
        return -1;
    memcpy(host, arg, hl);
    host[hl] = '\0';
    *port = (int)v;
    return inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1 ? 0 : -1;
}

/* "ADDR:PORT" of the bound socket. */
static void
bound_name(struct evhttp_bound_socket *bs, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];

    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl)
        || getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                       NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, len, "?");
        return;
    }
    snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

int
http_start(struct server *s)
{
    char host[80];
    char where[128];
    int port;
    struct evhttp_bound_socket *bs;

    if (http_parse_addr(s->cfg.http, host, sizeof(host), &port)) {
        fprintf(stderr, "slabmqd: invalid --http '%s' (ADDR:PORT)\n", s->cfg.http);
        return -1;
    }
    if (!(s->http = calloc(1, sizeof(*s->http))) || !(s->http->eh = evhttp_new(s->base))) {
        fprintf(stderr, "slabmqd: cannot start the HTTP server\n");
        return -1;
    }
    evhttp_set_allowed_methods(s->http->eh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(s->http->eh, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(s->http->eh, HTTP_MAX_BODY);
    evhttp_set_timeout(s->http->eh, HTTP_TIMEOUT_S);
    evhttp_set_gencb(s->http->eh, http_request_cb, s);
    bs = evhttp_bind_socket_with_handle(s->http->eh, host, (uint16_t)port);
    if (!bs) {
        fprintf(stderr, "slabmqd: cannot listen for HTTP on %s port %d\n", host, port);
        return -1;
    }
    server_keepalive(s, evhttp_bound_socket_get_fd(bs));
    bound_name(bs, where, sizeof(where));
    printf("http on %s\n", where);
    if (fflush(stdout)) /* how scripts and tests find the port */
        log_warn("cannot write the http line: %s", strerror(errno));
    log_info("http on %s (/metrics, /api/stats, /api/deadletters, /)", where);
    return 0;
}

void
http_stop(struct server *s)
{
    if (!s->http)
        return;
    http_auth_stop(s);
    if (s->http->eh)
        evhttp_free(s->http->eh);
    free(s->http);
    s->http = NULL;
}
