/* SPDX-License-Identifier: MIT */
/* slabmq-peerbench: the workloads of slabmq-bench run against the peer brokers, speaking
 * their wire protocols directly over TCP to 127.0.0.1, so docs/performance.md can give
 * slabmq's figures as ratios to peers measured minutes apart on the same machine.
 *
 *   redis-list    LPUSH; RPOP (BRPOP when blocking), or RPOP/BLMPOP COUNT with --pop-batch.
 *                 Lists have no acks: a pop is the settlement.
 *   redis-stream  XADD; XREADGROUP COUNT (BLOCK when blocking) in a group, one XACK per entry
 *   beanstalkd    put; reserve-with-timeout 0 (1 when blocking), one delete per job
 *   nats-js       JetStream, memory storage, work-queue retention: PUB with a reply subject
 *                 (the PubAck), a durable pull consumer fed by $JS.API.CONSUMER.MSG.NEXT,
 *                 one +ACK per message (NATS acks have no reply: a PING/PONG at the end
 *                 makes sure the server has taken them all before the clock stops)
 *
 * Workloads, all on one producer connection and one consumer connection:
 *   produce     publish n messages, pipelined --depth deep (sliding window); they stay
 *   drain       consume and ack n messages that a 'produce' left (same --queue)
 *   concurrent  a producer thread and a consumer at once, blocking consumer requests
 *   latency     as concurrent with the producer paced at --rate on an absolute schedule
 *
 * Payload (as slabmq-bench): bytes 0-7 the publish time (CLOCK_MONOTONIC ns, native order;
 * with --rate the intended send time, so a stalled producer shows as latency), bytes 8-15
 * the sequence, then filler. The consumer records now - publish time into an HDR-style
 * histogram (hist.h) and checks length and FIFO order.
 *
 * I/O is non-blocking with poll(): output and input are buffered, so a pipeline cannot
 * deadlock on full socket buffers. Every loop ends on its count, the --timeout deadline, a
 * stall of STALL_NS or an error. Only 127.0.0.1 is ever contacted. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#define MIN_SIZE 16                   /* timestamp + sequence */
#define STALL_NS 30000000000ll        /* no progress for this long aborts the run */
#define SETUP_NS 10000000000ll        /* bound on each setup exchange */
#define IN_CHUNK (1u << 20)           /* input buffer grows by this */
#define NATS_REQS 8                   /* pull requests in flight at most */
#define NATS_SID_API 1                /* JetStream API replies */
#define NATS_SID_ACK 2                /* PubAcks */
#define NATS_SID_PULL 3               /* pulled messages and pull statuses */
#define BLOCK_S 1                     /* blocking requests time out after this, seconds */

enum parse { P_OK, P_NEED, P_ERR };
enum workload { W_PRODUCE, W_DRAIN, W_CONCURRENT, W_LATENCY };
enum ev_type { EV_MSG, EV_ACKED, EV_END };

/* What one request asked Redis for, kept in request order so replies can be decoded. */
enum req_kind { RK_RPOP, RK_BRPOP, RK_RPOPN, RK_BLMPOP, RK_XREAD };

struct opts {
    const char *target;       /* redis-list, redis-stream, beanstalkd, nats-js */
    int port;                 /* broker port on 127.0.0.1 */
    enum workload workload;
    size_t size;              /* payload bytes */
    uint64_t n;               /* messages */
    double rate;              /* msg/s for latency; 0: as fast as possible */
    uint32_t depth;           /* pipelining depth */
    uint32_t pop_batch;       /* redis-list: pop with COUNT this many; 0: one per message */
    const char *queue;        /* key / tube / stream name */
    int consumer_poll;        /* concurrent, latency: non-blocking requests, retried */
    double timeout_s;         /* whole-run deadline */
    int json;
};

/* A non-blocking TCP connection with an output buffer and an input buffer. Bytes in
 * in[ipos, ilen) are unread; views into it stay valid until the next conn_io(). */
struct conn {
    int fd;
    char *out;                /* pending output out[opos, olen) */
    size_t opos;
    size_t olen;
    size_t ocap;
    char *in;
    size_t ipos;
    size_t ilen;
    size_t icap;
    int oom;                  /* an append could not grow the buffer */
    int64_t progress_ns;      /* last byte moved, CLOCK_MONOTONIC ns */
    char err[256];            /* first error, "" when none */
};

/* A flat RESP reply: tokens in pre-order. Views point into the input buffer. */
struct resp_tok {
    char type;                /* '+', '-', ':', '$' or '*' */
    long long n;              /* integer, bulk length or array count; -1 for nil */
    const char *p;            /* bulk data or simple string */
};

struct resp_reply {
    struct resp_tok *t;
    size_t nt;
    size_t cap;
};

/* One JetStream pull request: its number (last token of its reply subject) and progress. */
struct nats_req {
    uint64_t no;
    uint32_t asked;
    uint32_t got;
    int open;
};

/* Something the consumer side learns from the broker. */
struct event {
    enum ev_type type;
    const char *data;         /* EV_MSG: payload */
    size_t len;
    const char *ack;          /* EV_MSG: what the ack needs (entry id, job id, reply subject) */
    size_t acklen;
    uint32_t unfilled;        /* EV_END: messages asked for that did not come */
};

struct session;

/* One peer's protocol. put appends a publish; put_reply parses one publish reply; request
 * appends a consumer request for up to 'want' messages and returns how many it asked for
 * (0: cannot now); next_event parses what comes back; ack appends the settlement. */
struct target {
    const char *name;
    int batched;              /* a request asks for many messages */
    int ack_replies;          /* each ack gets a reply */
    int (*setup)(struct session *s, int consumer, int fresh);
    void (*put)(struct session *s, const char *p, size_t len);
    enum parse (*put_reply)(struct session *s);
    uint32_t (*request)(struct session *s, uint32_t want, int block);
    enum parse (*next_event)(struct session *s, struct event *ev);
    void (*ack)(struct session *s, const struct event *ev);
    int (*finish)(struct session *s);
};

struct session {
    struct conn c;
    const struct target *t;
    const struct opts *o;
    atomic_int *stop;         /* shared: set on any error */
    int64_t deadline_ns;
    /* Redis */
    struct resp_reply rr;
    uint32_t *ring;           /* outstanding requests: count | kind << 24, oldest first */
    uint32_t ring_cap;
    uint32_t ring_head;
    uint32_t ring_len;
    int in_reply;             /* entries of rr are being handed out */
    size_t reply_used;        /* bytes of that reply */
    size_t first;             /* token of the first entry */
    size_t nent;              /* entries in the reply */
    size_t cur;               /* next entry */
    int kind;                 /* enum req_kind of that reply */
    uint32_t unfilled;
    /* NATS */
    struct nats_req reqs[NATS_REQS];
    uint64_t next_req;
    char stream[64];
    char subject[80];
    char inbox[48];           /* this connection's own reply subjects start with this */
};

/* What a producer or consumer loop did. */
struct side {
    uint64_t done;            /* producer: confirmed; consumer: received */
    uint64_t acked;           /* consumer: settled */
    uint64_t bad_len;         /* consumer: wrong payload length */
    uint64_t reordered;       /* consumer: sequence not the one expected next */
    int64_t start_ns;
    int64_t end_ns;
    int64_t late_max_ns;      /* producer, paced: worst send behind schedule */
    struct hist *h;           /* consumer: latency, or NULL */
    int failed;
};

/* ---------------------------------------------------------------------------------------- */
/* Time, buffers and the connection                                                          */

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sleep_until(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};

    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void
set_err(struct conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

/* Room for n more output bytes; NULL (and c->oom) when it cannot grow. */
static char *
out_space(struct conn *c, size_t n)
{
    if (c->opos == c->olen)
        c->opos = c->olen = 0;
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap : 65536;
        char *p;
        while (cap < c->olen + n)
            cap *= 2;
        p = realloc(c->out, cap);
        if (!p) {
            c->oom = 1;
            return NULL;
        }
        c->out = p;
        c->ocap = cap;
    }
    return c->out + c->olen;
}

static void
out_add(struct conn *c, const void *p, size_t n)
{
    char *d = out_space(c, n);

    if (d) {
        memcpy(d, p, n);
        c->olen += n;
    }
}

static void
out_str(struct conn *c, const char *s)
{
    out_add(c, s, strlen(s));
}

static void
out_fmt(struct conn *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (k > 0 && (size_t)k < sizeof(buf))
        out_add(c, buf, (size_t)k);
    else
        c->oom = 1;
}

/* Decimal digits of v at d, no terminator; returns their count. */
static size_t
put_u64(char *d, uint64_t v)
{
    char tmp[24];
    size_t k = 0;
    size_t i;

    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < k; i++)
        d[i] = tmp[k - 1 - i];
    return k;
}

/* Connect to 127.0.0.1:port, non-blocking with TCP_NODELAY; 0 or -1 with c->err. */
static int
conn_open(struct conn *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    memset(c, 0, sizeof(*c));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        set_err(c, "connect 127.0.0.1:%d: %s", port, strerror(errno));
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->icap = IN_CHUNK;
    c->in = malloc(c->icap);
    c->progress_ns = now_ns();
    if (!c->in) {
        set_err(c, "out of memory");
        return -1;
    }
    return 0;
}

static void
conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
}

/* Write what is pending; 1 if bytes moved, 0 if none could, -1 on error. */
static int
conn_write(struct conn *c)
{
    int moved = 0;

    while (c->opos < c->olen) {
        ssize_t w = send(c->fd, c->out + c->opos, c->olen - c->opos, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            set_err(c, "send: %s", strerror(errno));
            return -1;
        }
        c->opos += (size_t)w;
        moved = 1;
    }
    return moved;
}

/* Read what has arrived, after moving unread bytes to the front (this invalidates views)
 * and growing the buffer when it is full; 1 if bytes came, 0 if none, -1 on error or EOF. */
static int
conn_read(struct conn *c)
{
    ssize_t r;

    if (c->ipos > 0) {
        memmove(c->in, c->in + c->ipos, c->ilen - c->ipos);
        c->ilen -= c->ipos;
        c->ipos = 0;
    }
    if (c->ilen == c->icap) {
        char *p = realloc(c->in, c->icap + IN_CHUNK);
        if (!p) {
            set_err(c, "out of memory");
            return -1;
        }
        c->in = p;
        c->icap += IN_CHUNK;
    }
    do
        r = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (r <= 0) {
        set_err(c, "%s", r == 0 ? "connection closed by the broker" : strerror(errno));
        return -1;
    }
    c->ilen += (size_t)r;
    return 1;
}

/* Move bytes both ways; when nothing moves, wait up to wait_ms for the socket and try once
 * more. 1 if bytes moved, 0 if not, -1 on error (c->err set), including a stall. */
static int
conn_io(struct conn *c, int wait_ms)
{
    int w;
    int r;
    struct pollfd p = {c->fd, POLLIN, 0};

    if (c->oom) {
        set_err(c, "out of memory");
        return -1;
    }
    w = conn_write(c);
    r = w < 0 ? -1 : conn_read(c);
    if (w < 0 || r < 0)
        return -1;
    if (w == 0 && r == 0 && wait_ms > 0) {
        if (c->opos < c->olen)
            p.events |= POLLOUT;
        if (poll(&p, 1, wait_ms) > 0) {
            w = conn_write(c);
            r = w < 0 ? -1 : conn_read(c);
            if (w < 0 || r < 0)
                return -1;
        }
    }
    if (w > 0 || r > 0) {
        c->progress_ns = now_ns();
        return 1;
    }
    if (now_ns() - c->progress_ns > STALL_NS) {
        set_err(c, "stalled: nothing moved for %lld s", STALL_NS / 1000000000);
        return -1;
    }
    return 0;
}

/* One wait step of a synchronous exchange; -1 past the deadline or on error. */
static int
sync_step(struct session *s, int64_t deadline)
{
    if (now_ns() > deadline) {
        set_err(&s->c, "no reply within %lld s", SETUP_NS / 1000000000);
        return -1;
    }
    return conn_io(&s->c, 50) < 0 ? -1 : 0;
}

/* The bytes of the line at the front of the input and the length of its terminator-free
 * part; NULL when no complete line has arrived. */
static const char *
line_at(struct conn *c, size_t *len)
{
    const char *b = c->in + c->ipos;
    const char *e = memchr(b, '\n', c->ilen - c->ipos);

    if (!e)
        return NULL;
    *len = (size_t)(e - b);
    if (*len > 0 && b[*len - 1] == '\r')
        (*len)--;
    return b;
}

/* Bytes of the line that starts at l (returned by line_at), terminator included. */
static size_t
line_bytes(const struct conn *c, const char *l)
{
    return (size_t)((const char *)memchr(l, '\n', c->ilen - c->ipos) - l) + 1;
}

/* Consume the line that starts at l. */
static void
skip_line(struct conn *c, const char *l)
{
    c->ipos += line_bytes(c, l);
}

/* Whether [p, p + len) contains the string 'needle'. */
static int
contains(const char *p, size_t len, const char *needle)
{
    size_t k = strlen(needle);

    for (size_t i = 0; i + k <= len; i++)
        if (p[i] == needle[0] && memcmp(p + i, needle, k) == 0)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Payloads                                                                                  */

static void
payload_stamp(char *p, int64_t ts, uint64_t seq)
{
    memcpy(p, &ts, sizeof(ts));
    memcpy(p + 8, &seq, sizeof(seq));
}

static int64_t
payload_ts(const char *p)
{
    int64_t ts;

    memcpy(&ts, p, sizeof(ts));
    return ts;
}

static uint64_t
payload_seq(const char *p)
{
    uint64_t seq;

    memcpy(&seq, p + 8, sizeof(seq));
    return seq;
}

/* ---------------------------------------------------------------------------------------- */
/* RESP (Redis)                                                                              */

static int
resp_push(struct resp_reply *r, char type, long long n, const char *p)
{
    if (r->nt == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        struct resp_tok *t = realloc(r->t, cap * sizeof(*t));
        if (!t)
            return -1;
        r->t = t;
        r->cap = cap;
    }
    r->t[r->nt++] = (struct resp_tok){type, n, p};
    return 0;
}

/* Parse a signed decimal from b up to e; -1 when it is not one (callers only accept -1
 * where RESP allows it). */
static long long
parse_ll(const char *b, const char *e)
{
    long long v = 0;
    int neg = b < e && *b == '-';

    for (b += neg; b < e && *b >= '0' && *b <= '9'; b++)
        v = v * 10 + (*b - '0');
    return b == e ? (neg ? -v : v) : -1;
}

/* Parse one complete reply from buf: P_OK with its size in *used, P_NEED, or P_ERR. Flat,
 * without recursion: 'need' counts the elements still to read. */
static enum parse
resp_parse(struct resp_reply *r, const char *buf, size_t len, size_t *used)
{
    size_t pos = 0;
    long long need = 1;

    r->nt = 0;
    while (need > 0) {
        const char *b = buf + pos;
        const char *e = memchr(b, '\r', len - pos);
        long long n = 0;
        const char *p = b + 1;
        if (!e || (size_t)(e + 2 - buf) > len)
            return P_NEED;
        pos = (size_t)(e + 2 - buf);
        if (*b == ':' || *b == '$' || *b == '*')
            n = parse_ll(b + 1, e);
        else if (*b == '+' || *b == '-')
            n = e - p;
        else
            return P_ERR;
        if (*b == '$' && n >= 0) {
            p = buf + pos;
            if (pos + (size_t)n + 2 > len)
                return P_NEED;
            pos += (size_t)n + 2;
        }
        if (*b == '*' && n > 0)
            need += n;
        need--;
        if (resp_push(r, *b, n, p))
            return P_ERR;
    }
    *used = pos;
    return P_OK;
}

/* Append a command from argc arguments (len -1: NUL-terminated). */
static void
resp_cmd(struct conn *c, int argc, const char *const *argv, const long *lens)
{
    size_t total = 16;
    char *d;
    char *p;

    for (int i = 0; i < argc; i++)
        total += (lens[i] < 0 ? strlen(argv[i]) : (size_t)lens[i]) + 24;
    d = p = out_space(c, total);
    if (!d)
        return;
    *p++ = '*';
    p += put_u64(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t l = lens[i] < 0 ? strlen(argv[i]) : (size_t)lens[i];
        *p++ = '$';
        p += put_u64(p, l);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], l);
        p += l;
        *p++ = '\r';
        *p++ = '\n';
    }
    c->olen += (size_t)(p - d);
}

/* Send a command and wait for its reply (setup only); 0, or -1 on an error reply. */
static int
redis_call(struct session *s, int argc, const char *const *argv)
{
    long lens[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int64_t deadline = now_ns() + SETUP_NS;
    size_t used;
    enum parse r;

    resp_cmd(&s->c, argc, argv, lens);
    while ((r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos, &used)) ==
           P_NEED)
        if (sync_step(s, deadline))
            return -1;
    if (r == P_ERR || s->rr.t[0].type == '-') {
        set_err(&s->c, "%s: %.*s", argv[0], r == P_ERR ? 9 : (int)s->rr.t[0].n,
                r == P_ERR ? "bad reply" : s->rr.t[0].p);
        return -1;
    }
    s->c.ipos += used;
    return 0;
}

static int
ring_push(struct session *s, uint32_t count, enum req_kind kind)
{
    if (s->ring_len == s->ring_cap)
        return -1;
    s->ring[(s->ring_head + s->ring_len++) % s->ring_cap] = count | (uint32_t)kind << 24;
    return 0;
}

static int
redis_setup(struct session *s, int consumer, int fresh)
{
    const char *del[] = {"DEL", s->o->queue};
    const char *grp[] = {"XGROUP", "CREATE", s->o->queue, "g", "0", "MKSTREAM"};

    s->ring_cap = s->o->depth + 8;
    s->ring = calloc(s->ring_cap, sizeof(*s->ring));
    if (!s->ring) {
        set_err(&s->c, "out of memory");
        return -1;
    }
    if (fresh && redis_call(s, 2, del))
        return -1;
    if (fresh && strcmp(s->t->name, "redis-stream") == 0 && redis_call(s, 6, grp))
        return -1;
    return 0;
}

static void
redis_list_put(struct session *s, const char *p, size_t len)
{
    const char *argv[] = {"LPUSH", s->o->queue, p};
    long lens[] = {5, -1, (long)len};

    resp_cmd(&s->c, 3, argv, lens);
}

static void
redis_stream_put(struct session *s, const char *p, size_t len)
{
    const char *argv[] = {"XADD", s->o->queue, "*", "d", p};
    long lens[] = {4, -1, 1, 1, (long)len};

    resp_cmd(&s->c, 5, argv, lens);
}

static enum parse
redis_put_reply(struct session *s)
{
    size_t used;
    enum parse r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos, &used);

    if (r == P_OK && s->rr.t[0].type == '-') {
        set_err(&s->c, "publish: %.*s", (int)s->rr.t[0].n, s->rr.t[0].p);
        return P_ERR;
    }
    if (r == P_ERR)
        set_err(&s->c, "publish: malformed reply");
    if (r == P_OK)
        s->c.ipos += used;
    return r;
}

static uint32_t
redis_list_request(struct session *s, uint32_t want, int block)
{
    char cnt[24];
    char tmo[24];
    uint32_t k = s->o->pop_batch ? (want < s->o->pop_batch ? want : s->o->pop_batch) : 1;
    enum req_kind kind = s->o->pop_batch ? (block ? RK_BLMPOP : RK_RPOPN)
                                         : (block ? RK_BRPOP : RK_RPOP);
    const char *rpop[] = {"RPOP", s->o->queue, cnt};
    const char *brpop[] = {"BRPOP", s->o->queue, tmo};
    const char *blmpop[] = {"BLMPOP", tmo, "1", s->o->queue, "RIGHT", "COUNT", cnt};
    long lens[] = {-1, -1, -1, -1, -1, -1, -1};

    if (ring_push(s, k, kind))
        return 0;
    snprintf(cnt, sizeof(cnt), "%u", k);
    snprintf(tmo, sizeof(tmo), "%d", BLOCK_S);
    if (kind == RK_RPOP || kind == RK_RPOPN)
        resp_cmd(&s->c, kind == RK_RPOP ? 2 : 3, rpop, lens);
    else if (kind == RK_BRPOP)
        resp_cmd(&s->c, 3, brpop, lens);
    else
        resp_cmd(&s->c, 7, blmpop, lens);
    return k;
}

static uint32_t
redis_stream_request(struct session *s, uint32_t want, int block)
{
    char cnt[24];
    const char *rd[] = {"XREADGROUP", "GROUP", "g", "c", "COUNT", cnt, "BLOCK", "1000",
                        "STREAMS", s->o->queue, ">"};
    const char *nb[] = {"XREADGROUP", "GROUP", "g", "c", "COUNT", cnt,
                        "STREAMS", s->o->queue, ">"};
    long lens[] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

    if (ring_push(s, want, RK_XREAD))
        return 0;
    snprintf(cnt, sizeof(cnt), "%u", want);
    if (block)
        resp_cmd(&s->c, 11, rd, lens);
    else
        resp_cmd(&s->c, 9, nb, lens);
    return want;
}

/* Locate the entries of a pop or read reply in s->rr: s->first, s->nent. -1 if its shape
 * is not the one the request asks for. */
static int
redis_locate(struct session *s)
{
    const struct resp_tok *t = s->rr.t;
    size_t nt = s->rr.nt;

    s->first = 0;
    s->nent = 0;
    if ((t[0].type == '$' || t[0].type == '*') && t[0].n < 0)
        return 0; /* nil: nothing there (or the block timed out) */
    switch (s->kind) {
    case RK_RPOP:
        s->nent = t[0].type == '$';
        return t[0].type == '$' ? 0 : -1;
    case RK_BRPOP:
        s->first = 2;
        s->nent = 1;
        return t[0].type == '*' && t[0].n == 2 && nt == 3 ? 0 : -1;
    case RK_RPOPN:
        s->first = 1;
        s->nent = (size_t)t[0].n;
        return t[0].type == '*' && nt == s->nent + 1 ? 0 : -1;
    case RK_BLMPOP:
        if (t[0].type != '*' || nt < 3 || t[2].type != '*')
            return -1;
        s->first = 3;
        s->nent = (size_t)t[2].n;
        return nt == s->nent + 3 ? 0 : -1;
    default: /* XREADGROUP: [[key, [[id, [f, v]], ...]]] */
        if (t[0].type != '*' || nt < 4 || t[3].type != '*')
            return -1;
        s->first = 4;
        s->nent = (size_t)t[3].n;
        return nt == 4 + 5 * s->nent ? 0 : -1;
    }
}

/* Start handing out the reply at the front of the input; an XACK reply becomes EV_ACKED. */
static enum parse
redis_begin_reply(struct session *s, struct event *ev)
{
    const struct resp_tok *t0;
    uint32_t req;
    enum parse r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos,
                              &s->reply_used);

    if (r != P_OK) {
        if (r == P_ERR)
            set_err(&s->c, "malformed reply");
        return r;
    }
    t0 = &s->rr.t[0];
    if (t0->type == '-') {
        set_err(&s->c, "consume: %.*s", (int)t0->n, t0->p);
        return P_ERR;
    }
    if (t0->type == ':') { /* XACK */
        s->c.ipos += s->reply_used;
        ev->type = EV_ACKED;
        return P_OK;
    }
    if (s->ring_len == 0) {
        set_err(&s->c, "reply without a request");
        return P_ERR;
    }
    req = s->ring[s->ring_head];
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    s->ring_len--;
    s->kind = (int)(req >> 24);
    if (redis_locate(s) || s->nent > (req & 0xffffff)) {
        set_err(&s->c, "unexpected reply shape (%zu tokens)", s->rr.nt);
        return P_ERR;
    }
    s->unfilled = (req & 0xffffff) - (uint32_t)s->nent;
    s->in_reply = 1;
    s->cur = 0;
    return P_NEED; /* caller goes on to hand out entries */
}

static enum parse
redis_next_event(struct session *s, struct event *ev)
{
    if (!s->in_reply) {
        enum parse r = redis_begin_reply(s, ev);
        if (r != P_NEED || !s->in_reply)
            return r;
    }
    if (s->cur < s->nent) {
        const struct resp_tok *t = &s->rr.t[s->first];
        ev->type = EV_MSG;
        if (s->kind == RK_XREAD) {
            t += 5 * s->cur;
            if (t[0].n != 2 || t[1].type != '$' || t[2].n != 2 || t[4].type != '$') {
                set_err(&s->c, "stream entry with an unexpected shape");
                return P_ERR;
            }
            ev->ack = t[1].p;
            ev->acklen = (size_t)t[1].n;
            t += 4;
        } else {
            t += s->cur;
        }
        ev->data = t->p;
        ev->len = t->n < 0 ? 0 : (size_t)t->n;
        s->cur++;
        return P_OK;
    }
    s->in_reply = 0;
    s->c.ipos += s->reply_used;
    ev->type = EV_END;
    ev->unfilled = s->unfilled;
    return P_OK;
}

static void
redis_stream_ack(struct session *s, const struct event *ev)
{
    const char *argv[] = {"XACK", s->o->queue, "g", ev->ack};
    long lens[] = {4, -1, 1, (long)ev->acklen};

    resp_cmd(&s->c, 4, argv, lens);
}

/* ---------------------------------------------------------------------------------------- */
/* beanstalkd                                                                                */

/* Send a command line and check the reply line starts with 'expect' (setup only). */
static int
bs_call(struct session *s, const char *cmd, const char *expect)
{
    int64_t deadline = now_ns() + SETUP_NS;
    const char *l;
    size_t len;

    out_str(&s->c, cmd);
    while (!(l = line_at(&s->c, &len)))
        if (sync_step(s, deadline))
            return -1;
    if (len < strlen(expect) || memcmp(l, expect, strlen(expect)) != 0) {
        set_err(&s->c, "%.*s: %.*s", (int)strcspn(cmd, "\r"), cmd, (int)len, l);
        return -1;
    }
    skip_line(&s->c, l);
    return 0;
}

static int
bs_setup(struct session *s, int consumer, int fresh)
{
    char cmd[300];

    if (strlen(s->o->queue) > 200) {
        set_err(&s->c, "tube name too long");
        return -1;
    }
    snprintf(cmd, sizeof(cmd), consumer ? "watch %s\r\n" : "use %s\r\n", s->o->queue);
    if (bs_call(s, cmd, consumer ? "WATCHING" : "USING"))
        return -1;
    if (consumer && strcmp(s->o->queue, "default") != 0 &&
        bs_call(s, "ignore default\r\n", "WATCHING"))
        return -1;
    return 0;
}

static void
bs_put(struct session *s, const char *p, size_t len)
{
    char *d = out_space(&s->c, len + 48);
    char *q = d;

    if (!d)
        return;
    memcpy(q, "put 0 0 120 ", 12);
    q += 12;
    q += put_u64(q, len);
    memcpy(q, "\r\n", 2);
    memcpy(q + 2, p, len);
    memcpy(q + 2 + len, "\r\n", 2);
    s->c.olen += (size_t)(q + 4 + len - d);
}

/* Consume the line at the front; the error text is kept when it is not 'ok_prefix'. */
static enum parse
bs_line(struct session *s, const char *ok_prefix, const char **l, size_t *len)
{
    size_t k = strlen(ok_prefix);

    *l = line_at(&s->c, len);
    if (!*l)
        return P_NEED;
    if (*len < k || memcmp(*l, ok_prefix, k) != 0) {
        set_err(&s->c, "beanstalkd: %.*s", (int)*len, *l);
        return P_ERR;
    }
    return P_OK;
}

static enum parse
bs_put_reply(struct session *s)
{
    const char *l;
    size_t len;
    enum parse r = bs_line(s, "INSERTED ", &l, &len);

    if (r == P_OK)
        skip_line(&s->c, l);
    return r;
}

static uint32_t
bs_request(struct session *s, uint32_t want, int block)
{
    out_str(&s->c, block ? "reserve-with-timeout 1\r\n" : "reserve-with-timeout 0\r\n");
    return 1;
}

static enum parse
bs_next_event(struct session *s, struct event *ev)
{
    size_t len;
    const char *l = line_at(&s->c, &len);
    size_t lb;

    if (!l)
        return P_NEED;
    lb = line_bytes(&s->c, l);
    if (len >= 9 && memcmp(l, "RESERVED ", 9) == 0) {
        const char *id = l + 9;
        const char *sp = memchr(id, ' ', len - 9);
        long long bytes = sp ? parse_ll(sp + 1, l + len) : -1;
        if (bytes < 0) {
            set_err(&s->c, "beanstalkd: %.*s", (int)len, l);
            return P_ERR;
        }
        if (s->c.ipos + lb + (size_t)bytes + 2 > s->c.ilen)
            return P_NEED;
        *ev = (struct event){EV_MSG, l + lb, (size_t)bytes, id, (size_t)(sp - id), 0};
        s->c.ipos += lb + (size_t)bytes + 2;
        return P_OK;
    }
    s->c.ipos += lb;
    if (len == 7 && memcmp(l, "DELETED", 7) == 0) {
        ev->type = EV_ACKED;
        return P_OK;
    }
    if ((len == 9 && memcmp(l, "TIMED_OUT", 9) == 0) ||
        (len == 13 && memcmp(l, "DEADLINE_SOON", 13) == 0)) {
        ev->type = EV_END;
        ev->unfilled = 1;
        return P_OK;
    }
    set_err(&s->c, "beanstalkd: %.*s", (int)len, l);
    return P_ERR;
}

static void
bs_ack(struct session *s, const struct event *ev)
{
    char *d = out_space(&s->c, ev->acklen + 10);

    if (!d)
        return;
    memcpy(d, "delete ", 7);
    memcpy(d + 7, ev->ack, ev->acklen);
    memcpy(d + 7 + ev->acklen, "\r\n", 2);
    s->c.olen += ev->acklen + 9;
}

/* ---------------------------------------------------------------------------------------- */
/* NATS JetStream                                                                            */

/* One protocol message from the server, views into the input buffer. */
struct nats_msg {
    int hmsg;                 /* HMSG: headers present */
    uint64_t sid;
    const char *subj;
    size_t subjlen;
    const char *reply;        /* NULL when none */
    size_t replylen;
    const char *hdr;          /* HMSG: header block */
    size_t hdrlen;
    const char *data;
    size_t len;
};

/* Split the line [b, e) at spaces into at most max tokens; returns their count. */
static int
split_line(const char *b, const char *e, const char **tok, size_t *tl, int max)
{
    int n = 0;

    while (b < e && n < max) {
        const char *sp;
        while (b < e && *b == ' ')
            b++;
        if (b == e)
            break;
        sp = memchr(b, ' ', (size_t)(e - b));
        if (!sp)
            sp = e;
        tok[n] = b;
        tl[n++] = (size_t)(sp - b);
        b = sp;
    }
    return n;
}

/* Decode a MSG or HMSG whose header line is [l, l + len) and lb long. */
static enum parse
nats_decode(struct session *s, const char *l, size_t len, size_t lb,
            struct nats_msg *m)
{
    const char *tok[7];
    size_t tl[7];
    int hmsg = l[0] == 'H';
    int n = split_line(l, l + len, tok, tl, 7);
    int has_reply = n == (hmsg ? 6 : 5);
    long long total = n >= 4 ? parse_ll(tok[n - 1], tok[n - 1] + tl[n - 1]) : -1;
    long long hdr = hmsg && n >= 5 ? parse_ll(tok[n - 2], tok[n - 2] + tl[n - 2]) : 0;

    if (total < 0 || hdr < 0 || hdr > total || n < (hmsg ? 5 : 4)) {
        set_err(&s->c, "nats: bad line %.*s", (int)len, l);
        return P_ERR;
    }
    if (s->c.ipos + lb + (size_t)total + 2 > s->c.ilen)
        return P_NEED;
    m->hmsg = hmsg;
    m->subj = tok[1];
    m->subjlen = tl[1];
    m->sid = (uint64_t)parse_ll(tok[2], tok[2] + tl[2]);
    m->reply = has_reply ? tok[3] : NULL;
    m->replylen = has_reply ? tl[3] : 0;
    m->hdr = l + lb;
    m->hdrlen = (size_t)hdr;
    m->data = m->hdr + hdr;
    m->len = (size_t)(total - hdr);
    s->c.ipos += lb + (size_t)total + 2;
    return P_OK;
}

/* Parse protocol messages at the front of the input until a MSG or HMSG, answering PING
 * and skipping INFO, PONG and +OK on the way. */
static enum parse
nats_next(struct session *s, struct nats_msg *m)
{
    for (;;) {
        size_t len;
        const char *l = line_at(&s->c, &len);
        size_t lb;
        if (!l)
            return P_NEED;
        lb = line_bytes(&s->c, l);
        if ((len > 4 && memcmp(l, "MSG ", 4) == 0) || (len > 5 && memcmp(l, "HMSG ", 5) == 0))
            return nats_decode(s, l, len, lb, m);
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            set_err(&s->c, "nats: %.*s", (int)len, l);
            return P_ERR;
        }
        s->c.ipos += lb;
        if (len == 4 && memcmp(l, "PING", 4) == 0)
            out_str(&s->c, "PONG\r\n");
    }
}

/* The status code of an HMSG header block ("NATS/1.0 404 No Messages"), -1 if none. */
static int
nats_status(const struct nats_msg *m)
{
    if (!m->hmsg || m->hdrlen < 12 || memcmp(m->hdr, "NATS/1.0 ", 9) != 0)
        return -1;
    return (int)parse_ll(m->hdr + 9, m->hdr + 12);
}

/* A JetStream API request (setup only): publish json to subject and wait for the reply on
 * the API inbox. 0 when it carries no "error", -1 otherwise (c->err set) unless 'quiet'. */
static int
nats_api(struct session *s, const char *subject, const char *json, int quiet)
{
    int64_t deadline = now_ns() + SETUP_NS;
    struct nats_msg m;
    enum parse r;

    out_fmt(&s->c, "PUB %s %s.api %zu\r\n%s\r\n", subject, s->inbox, strlen(json), json);
    for (;;) {
        while ((r = nats_next(s, &m)) == P_NEED)
            if (sync_step(s, deadline))
                return -1;
        if (r == P_ERR)
            return -1;
        if (m.sid == NATS_SID_API)
            break;
    }
    if (nats_status(&m) >= 0 || contains(m.data, m.len, "\"error\"")) {
        if (!quiet)
            set_err(&s->c, "%s: %.*s", subject, (int)(m.len ? m.len : m.hdrlen),
                    m.len ? m.data : m.hdr);
        return -1;
    }
    return 0;
}

/* Delete and create the stream and its durable pull consumer. */
static int
nats_create(struct session *s)
{
    char subj[160];
    char json[512];

    snprintf(subj, sizeof(subj), "$JS.API.STREAM.DELETE.%s", s->stream);
    nats_api(s, subj, "", 1);
    snprintf(subj, sizeof(subj), "$JS.API.STREAM.CREATE.%s", s->stream);
    snprintf(json, sizeof(json),
             "{\"name\":\"%s\",\"subjects\":[\"%s\"],\"retention\":\"workqueue\","
             "\"storage\":\"memory\",\"num_replicas\":1,\"discard\":\"old\"}",
             s->stream, s->subject);
    if (nats_api(s, subj, json, 0))
        return -1;
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.DURABLE.CREATE.%s.C", s->stream);
    snprintf(json, sizeof(json),
             "{\"stream_name\":\"%s\",\"config\":{\"durable_name\":\"C\","
             "\"deliver_policy\":\"all\",\"ack_policy\":\"explicit\","
             "\"ack_wait\":120000000000,\"max_ack_pending\":1000000,\"max_waiting\":512}}",
             s->stream);
    return nats_api(s, subj, json, 0);
}

static int
nats_setup(struct session *s, int consumer, int fresh)
{
    int64_t deadline = now_ns() + SETUP_NS;
    char subj[160];
    size_t i;
    size_t len;
    const char *l;

    for (i = 0; s->o->queue[i] && i < sizeof(s->stream) - 1; i++) {
        char ch = s->o->queue[i];
        s->stream[i] = (ch == '.' || ch == '*' || ch == '>' || ch == ' ') ? '_' : ch;
    }
    s->stream[i] = '\0';
    snprintf(s->subject, sizeof(s->subject), "pb.%s", s->stream);
    snprintf(s->inbox, sizeof(s->inbox), "_INBOX.pb%ld%c", (long)getpid(), consumer ? 'c' : 'p');
    out_str(&s->c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"peerbench\","
                   "\"lang\":\"c\",\"version\":\"0.1\",\"protocol\":1,\"headers\":true,"
                   "\"no_responders\":true}\r\nPING\r\n");
    for (;;) { /* INFO, then PONG */
        while (!(l = line_at(&s->c, &len)))
            if (sync_step(s, deadline))
                return -1;
        skip_line(&s->c, l);
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            set_err(&s->c, "nats: %.*s", (int)len, l);
            return -1;
        }
        if (len == 4 && memcmp(l, "PONG", 4) == 0)
            break;
    }
    out_fmt(&s->c, "SUB %s.api %d\r\nSUB %s.%s %d\r\n", s->inbox, NATS_SID_API, s->inbox,
            consumer ? "pull.*" : "ack", consumer ? NATS_SID_PULL : NATS_SID_ACK);
    if (fresh)
        return nats_create(s);
    /* a pull for a consumer that does not exist is dropped without an answer: check first */
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.INFO.%s.C", s->stream);
    return consumer ? nats_api(s, subj, "", 0) : 0;
}

static void
nats_put(struct session *s, const char *p, size_t len)
{
    size_t sl = strlen(s->subject);
    size_t il = strlen(s->inbox);
    char *d = out_space(&s->c, sl + il + len + 64);
    char *q = d;

    if (!d)
        return;
    memcpy(q, "PUB ", 4);
    memcpy(q + 4, s->subject, sl);
    q += 4 + sl;
    *q++ = ' ';
    memcpy(q, s->inbox, il);
    memcpy(q + il, ".ack ", 5);
    q += il + 5;
    q += put_u64(q, len);
    memcpy(q, "\r\n", 2);
    memcpy(q + 2, p, len);
    memcpy(q + 2 + len, "\r\n", 2);
    s->c.olen += (size_t)(q + 4 + len - d);
}

static enum parse
nats_put_reply(struct session *s)
{
    struct nats_msg m;
    enum parse r = nats_next(s, &m);

    if (r != P_OK)
        return r;
    if (m.sid != NATS_SID_ACK || nats_status(&m) >= 0 ||
        contains(m.data, m.len, "\"error\"")) {
        set_err(&s->c, "publish: %.*s", (int)(m.len ? m.len : m.hdrlen),
                m.len ? m.data : m.hdr);
        return P_ERR;
    }
    return P_OK;
}

static uint32_t
nats_request(struct session *s, uint32_t want, int block)
{
    struct nats_req *q = NULL;
    char json[96];

    for (int i = 0; i < NATS_REQS && !q; i++)
        if (!s->reqs[i].open)
            q = &s->reqs[i];
    if (!q)
        return 0;
    *q = (struct nats_req){++s->next_req, want, 0, 1};
    if (block)
        snprintf(json, sizeof(json), "{\"batch\":%u,\"expires\":%lld}", want,
                 (long long)BLOCK_S * 1000000000);
    else
        snprintf(json, sizeof(json), "{\"batch\":%u,\"no_wait\":true}", want);
    out_fmt(&s->c, "PUB $JS.API.CONSUMER.MSG.NEXT.%s.C %s.pull.%" PRIu64 " %zu\r\n%s\r\n",
            s->stream, s->inbox, q->no, strlen(json), json);
    return want;
}

/* The oldest open pull request (the server serves waiting requests in order). */
static struct nats_req *
nats_oldest(struct session *s)
{
    struct nats_req *best = NULL;

    for (int i = 0; i < NATS_REQS; i++)
        if (s->reqs[i].open && (!best || s->reqs[i].no < best->no))
            best = &s->reqs[i];
    return best;
}

/* A status on a pull inbox ends that request: EV_END with what it did not deliver. */
static int
nats_pull_status(struct session *s, const struct nats_msg *m, struct event *ev)
{
    const char *dot = m->subj + m->subjlen;
    uint64_t no;
    int code = nats_status(m);

    while (dot > m->subj && dot[-1] != '.')
        dot--;
    no = (uint64_t)parse_ll(dot, m->subj + m->subjlen);
    if (code == 100)
        return 0; /* heartbeat */
    for (int i = 0; i < NATS_REQS; i++) {
        struct nats_req *q = &s->reqs[i];
        if (q->open && q->no == no) {
            q->open = 0;
            ev->type = EV_END;
            ev->unfilled = q->asked - q->got;
            return 1;
        }
    }
    return 0; /* for a request that had already delivered everything */
}

static enum parse
nats_next_event(struct session *s, struct event *ev)
{
    for (;;) {
        struct nats_msg m;
        struct nats_req *q;
        enum parse r = nats_next(s, &m);
        if (r != P_OK)
            return r;
        if (m.sid != NATS_SID_PULL) {
            set_err(&s->c, "nats: message on unexpected subscription %" PRIu64, m.sid);
            return P_ERR;
        }
        if (nats_status(&m) >= 0) {
            if (nats_pull_status(s, &m, ev))
                return P_OK;
            continue;
        }
        q = nats_oldest(s);
        if (q && ++q->got == q->asked)
            q->open = 0;
        *ev = (struct event){EV_MSG, m.data, m.len, m.reply, m.replylen, 0};
        return P_OK;
    }
}

static void
nats_ack(struct session *s, const struct event *ev)
{
    char *d = out_space(&s->c, ev->acklen + 16);

    if (!d || !ev->ack)
        return;
    memcpy(d, "PUB ", 4);
    memcpy(d + 4, ev->ack, ev->acklen);
    memcpy(d + 4 + ev->acklen, " 0\r\n\r\n", 6);
    s->c.olen += ev->acklen + 10;
}

/* PING and wait for PONG: every ack sent before has been processed. */
static int
nats_finish(struct session *s)
{
    int64_t deadline = now_ns() + SETUP_NS;
    size_t len;
    const char *l;

    out_str(&s->c, "PING\r\n");
    for (;;) {
        while (!(l = line_at(&s->c, &len)))
            if (sync_step(s, deadline))
                return -1;
        skip_line(&s->c, l);
        if (len == 4 && memcmp(l, "PONG", 4) == 0)
            return 0;
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            set_err(&s->c, "nats: %.*s", (int)len, l);
            return -1;
        }
    }
}

static const struct target targets[] = {
    {"redis-list", 0, 0, redis_setup, redis_list_put, redis_put_reply, redis_list_request,
     redis_next_event, NULL, NULL},
    {"redis-stream", 1, 1, redis_setup, redis_stream_put, redis_put_reply, redis_stream_request,
     redis_next_event, redis_stream_ack, NULL},
    {"beanstalkd", 0, 1, bs_setup, bs_put, bs_put_reply, bs_request, bs_next_event, bs_ack,
     NULL},
    {"nats-js", 1, 0, nats_setup, nats_put, nats_put_reply, nats_request, nats_next_event,
     nats_ack, nats_finish},
};

/* ---------------------------------------------------------------------------------------- */
/* Producer and consumer loops                                                               */

/* Fail the session: report its error once and stop the other side. */
static int
fail(struct session *s, struct side *sd, const char *what)
{
    sd->failed = 1;
    atomic_store(s->stop, 1);
    fprintf(stderr, "slabmq-peerbench: %s %s: %s\n", s->t->name, what,
            s->c.err[0] ? s->c.err : "stopped");
    return -1;
}

/* Append every message now due (paced) or up to the window, stamped with the intended
 * (paced) or actual send time; returns how many. Paced, it keeps the worst lateness of a
 * send behind its schedule in sd->late_max_ns. */
static uint64_t
produce_fill(struct session *s, struct side *sd, char *buf, uint64_t sent, int64_t interval)
{
    const struct opts *o = s->o;
    int64_t now = now_ns();
    uint64_t k = 0;

    while (sent + k < o->n && sent + k - sd->done < o->depth) {
        int64_t due = sd->start_ns + (int64_t)(sent + k) * interval;
        if (interval && due > now)
            break;
        if (interval && now - due > sd->late_max_ns)
            sd->late_max_ns = now - due;
        payload_stamp(buf, interval ? due : now, sent + k);
        s->t->put(s, buf, o->size);
        k++;
    }
    return k;
}

/* Nothing to send and nothing arrived: sleep until the next message is due (paced, at most
 * 1 ms) or wait for the socket. */
static int
produce_wait(struct session *s, uint64_t sent, uint64_t done, int64_t start, int64_t interval)
{
    const struct opts *o = s->o;
    int64_t due = start + (int64_t)sent * interval;
    int64_t cap = now_ns() + 1000000;

    if (interval && sent < o->n && sent - done < o->depth && s->c.opos == s->c.olen) {
        sleep_until(due < cap ? due : cap);
        return 0;
    }
    return conn_io(&s->c, 100) < 0 ? -1 : 0;
}

/* Publish o->n messages within the window, paced at o->rate when set. */
static int
produce(struct session *s, struct side *sd)
{
    const struct opts *o = s->o;
    int64_t interval = o->rate > 0 ? (int64_t)(1e9 / o->rate) : 0;
    char *buf = malloc(o->size);
    uint64_t sent = 0;
    int rc = -1;

    if (!buf)
        return fail(s, sd, "produce");
    memset(buf, 'x', o->size);
    if (o->rate > 0 && interval < 1)
        interval = 1;
    sd->start_ns = now_ns();
    while (sd->done < o->n && !atomic_load(s->stop)) {
        uint64_t k = produce_fill(s, sd, buf, sent, interval);
        uint64_t before = sd->done;
        enum parse r = P_NEED;
        int io = conn_io(&s->c, 0);
        sent += k;
        while (io >= 0 && (r = s->t->put_reply(s)) == P_OK)
            sd->done++;
        if (io < 0 || r == P_ERR)
            goto out;
        if (now_ns() > s->deadline_ns) {
            set_err(&s->c, "deadline passed with %" PRIu64 " confirmed", sd->done);
            goto out;
        }
        if (k == 0 && io == 0 && sd->done == before && sd->done < o->n &&
            produce_wait(s, sent, sd->done, sd->start_ns, interval))
            goto out;
    }
    sd->end_ns = now_ns();
    rc = atomic_load(s->stop) ? -1 : 0;
out:
    free(buf);
    return rc ? fail(s, sd, "produce") : 0;
}

/* Check and time one received payload. */
static void
consume_msg(struct side *sd, const struct opts *o, const struct event *ev, uint64_t *next)
{
    int64_t now;

    if (ev->len != o->size || ev->len < MIN_SIZE) {
        sd->bad_len++;
        return;
    }
    if (payload_seq(ev->data) != *next)
        sd->reordered++;
    *next = payload_seq(ev->data) + 1;
    if (sd->h) {
        now = now_ns();
        int64_t ts = payload_ts(ev->data);
        hist_record(sd->h, now > ts ? (uint64_t)(now - ts) : 0);
    }
}

/* Ask for more while under the depth and the count; batched protocols ask only for at
 * least half the depth at a time, except for the last messages. */
static void
consume_request(struct session *s, uint64_t received, uint64_t *outstanding, int block)
{
    const struct opts *o = s->o;

    while (*outstanding < o->depth && received + *outstanding < o->n) {
        uint64_t left = o->n - received - *outstanding;
        uint64_t want = o->depth - *outstanding;
        uint32_t k;
        if (want > left)
            want = left;
        if (s->t->batched && want < o->depth / 2 && want < left)
            break;
        k = s->t->request(s, (uint32_t)want, block);
        if (k == 0)
            break;
        *outstanding += k;
    }
}

/* Receive and settle o->n messages. With 'until_dry' (drain) the first empty answer ends
 * it: the queue holds fewer messages than expected. */
static int
consume(struct session *s, struct side *sd, int block, int until_dry)
{
    const struct opts *o = s->o;
    uint64_t outstanding = 0;
    uint64_t pending_acks = 0;
    uint64_t next = 0;
    int dry = 0;

    sd->start_ns = sd->start_ns ? sd->start_ns : now_ns();
    while ((sd->done < o->n && !dry) || pending_acks > 0 || outstanding > 0) {
        struct event ev;
        enum parse r;
        if (atomic_load(s->stop))
            return fail(s, sd, "consume");
        if (now_ns() > s->deadline_ns) {
            set_err(&s->c, "deadline passed with %" PRIu64 " received", sd->done);
            return fail(s, sd, "consume");
        }
        if (!dry)
            consume_request(s, sd->done, &outstanding, block);
        r = s->t->next_event(s, &ev);
        if (r == P_ERR)
            return fail(s, sd, "consume");
        if (r == P_NEED) {
            if (conn_io(&s->c, 100) < 0)
                return fail(s, sd, "consume");
            continue;
        }
        if (ev.type == EV_ACKED) {
            if (pending_acks == 0) {
                set_err(&s->c, "an ack reply nothing asked for");
                return fail(s, sd, "consume");
            }
            pending_acks--;
            sd->acked++;
        } else if (ev.type == EV_END) {
            outstanding -= ev.unfilled < outstanding ? ev.unfilled : outstanding;
            dry |= until_dry && ev.unfilled > 0;
        } else {
            sd->done++;
            outstanding -= outstanding > 0;
            consume_msg(sd, o, &ev, &next);
            if (s->t->ack)
                s->t->ack(s, &ev);
            pending_acks += s->t->ack_replies;
            sd->acked += !s->t->ack_replies;
        }
    }
    if (s->t->finish && s->t->finish(s))
        return fail(s, sd, "consume");
    while (s->c.opos < s->c.olen && conn_io(&s->c, 100) >= 0 && now_ns() < s->deadline_ns)
        ;
    sd->end_ns = now_ns();
    if (sd->done < o->n) {
        set_err(&s->c, "the queue ran dry after %" PRIu64 " of %" PRIu64 " messages", sd->done,
                o->n);
        return fail(s, sd, "drain");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Workloads and the report                                                                  */

static int
session_open(struct session *s, const struct target *t, const struct opts *o, atomic_int *stop,
             int consumer, int fresh)
{
    memset(s, 0, sizeof(*s));
    s->t = t;
    s->o = o;
    s->stop = stop;
    s->deadline_ns = now_ns() + (int64_t)(o->timeout_s * 1e9);
    if (conn_open(&s->c, o->port) || t->setup(s, consumer, fresh)) {
        fprintf(stderr, "slabmq-peerbench: %s setup: %s\n", t->name, s->c.err);
        return -1;
    }
    return 0;
}

static void
session_close(struct session *s)
{
    conn_close(&s->c);
    free(s->rr.t);
    free(s->ring);
}

struct producer_arg {
    struct session *s;
    struct side *sd;
};

static void *
producer_main(void *arg)
{
    struct producer_arg *a = arg;

    produce(a->s, a->sd);
    return NULL;
}

/* Producer thread and consumer (this thread) at once; the clock starts when the producer
 * is started. */
static int
run_both(struct session *ps, struct side *pd, struct session *cs, struct side *cd)
{
    pthread_t th;
    struct producer_arg a = {ps, pd};
    int rc;

    cd->start_ns = now_ns();
    if (pthread_create(&th, NULL, producer_main, &a) != 0) {
        fprintf(stderr, "slabmq-peerbench: cannot start the producer thread\n");
        return -1;
    }
    rc = consume(cs, cd, !cs->o->consumer_poll, 0);
    pthread_join(th, NULL);
    return rc || pd->failed ? -1 : 0;
}

static void
report(const struct opts *o, const struct side *pd, const struct side *cd)
{
    const struct side *main_side = o->workload == W_PRODUCE ? pd : cd;
    double secs = (double)(main_side->end_ns - main_side->start_ns) / 1e9;
    double rate = secs > 0 ? (double)o->n / secs : 0;
    static const char *const names[] = {"produce", "drain", "concurrent", "latency"};
    const struct hist *h = cd->h;
    double p50 = h ? (double)hist_percentile(h, 50) / 1e3 : 0;
    double p99 = h ? (double)hist_percentile(h, 99) / 1e3 : 0;
    double p999 = h ? (double)hist_percentile(h, 99.9) / 1e3 : 0;
    double pmax = h ? (double)h->max_ns / 1e3 : 0;

    if (o->json) {
        printf("{\"target\":\"%s\",\"workload\":\"%s\",\"size\":%zu,\"n\":%" PRIu64
               ",\"depth\":%u,\"pop_batch\":%u,\"consumer_poll\":%d,\"rate_target\":%.1f,"
               "\"seconds\":%.6f,"
               "\"msgs_per_s\":%.1f,\"bad_len\":%" PRIu64 ",\"reordered\":%" PRIu64,
               o->target, names[o->workload], o->size, o->n, o->depth, o->pop_batch,
               o->consumer_poll, o->rate,
               secs, rate, cd->bad_len, cd->reordered);
        if (h)
            printf(",\"lat_count\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f,"
                   "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
                   "\"send_late_max_us\":%.1f",
                   h->total, p50, p99, p999, pmax, hist_mean(h) / 1e3,
                   (double)pd->late_max_ns / 1e3);
        printf("}\n");
        return;
    }
    printf("%s %s size=%zu n=%" PRIu64 " depth=%u: %.0f msg/s (%.3f s)", o->target,
           names[o->workload], o->size, o->n, o->depth, rate, secs);
    if (cd->bad_len || cd->reordered)
        printf(" [bad length %" PRIu64 ", out of order %" PRIu64 "]", cd->bad_len,
               cd->reordered);
    if (h)
        printf("\n  latency at %.0f msg/s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us"
               " (sends at most %.1f us behind schedule)",
               o->rate, p50, p99, p999, pmax, (double)pd->late_max_ns / 1e3);
    printf("\n");
}

static int
run(const struct target *t, const struct opts *o)
{
    atomic_int stop = 0;
    struct session ps;
    struct session cs;
    struct side pd = {0};
    struct side cd = {0};
    int need_p = o->workload != W_DRAIN;
    int need_c = o->workload != W_PRODUCE;
    int rc = -1;

    if (o->workload == W_LATENCY && !(cd.h = malloc(sizeof(*cd.h))))
        return -1;
    if (cd.h)
        hist_init(cd.h);
    memset(&ps, 0, sizeof(ps));
    memset(&cs, 0, sizeof(cs));
    ps.c.fd = cs.c.fd = -1;
    if (need_p && session_open(&ps, t, o, &stop, 0, 1))
        goto out;
    if (need_c && session_open(&cs, t, o, &stop, 1, 0))
        goto out;
    if (o->workload == W_PRODUCE)
        rc = produce(&ps, &pd);
    else if (o->workload == W_DRAIN)
        rc = consume(&cs, &cd, 0, 1);
    else
        rc = run_both(&ps, &pd, &cs, &cd);
    if (rc == 0)
        report(o, &pd, &cd);
out:
    session_close(&ps);
    session_close(&cs);
    free(cd.h);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Options                                                                                   */

static void
usage(FILE *f)
{
    fputs("usage: slabmq-peerbench --target T --port P --workload W [options]\n"
          "       slabmq-peerbench --free-port\n"
          "  --target T       redis-list | redis-stream | beanstalkd | nats-js\n"
          "  --port P         broker port on 127.0.0.1\n"
          "  --workload W     produce | drain | concurrent | latency\n"
          "  --size N         payload bytes, >= 16 (default 16)\n"
          "  -n N             messages (default 100000)\n"
          "  --rate R         latency: msg/s on a fixed schedule (default 45000)\n"
          "  --depth N        pipelining depth (default 1024)\n"
          "  --pop-batch N    redis-list: pop with COUNT N (RPOP / BLMPOP) (default 0: one\n"
          "                   RPOP / BRPOP per message)\n"
          "  --queue NAME     key, tube or stream (default peerbench); 'drain' reads what\n"
          "                   'produce' left under the same name\n"
          "  --timeout S      whole-run deadline, seconds (default 300)\n"
          "  --consumer-poll  concurrent, latency: the consumer polls (RPOP, XREADGROUP\n"
          "                   without BLOCK, reserve-with-timeout 0, no_wait pulls) and\n"
          "                   retries empty answers, instead of blocking requests\n"
          "  --json           one JSON object per run\n"
          "  --free-port      print a free loopback TCP port and exit\n",
          f);
}

/* Bind 127.0.0.1:0 and print the port the kernel chose. */
static int
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        perror("slabmq-peerbench: free port");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

static int
parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_workload(const char *s, enum workload *w)
{
    static const char *const names[] = {"produce", "drain", "concurrent", "latency"};

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *w = (enum workload)i;
            return 0;
        }
    return -1;
}

/* Apply one option; -1 when its value is bad. */
static int
set_opt(struct opts *o, int opt, const char *arg)
{
    uint64_t v = 0;
    char *end;

    switch (opt) {
    case 't': o->target = arg; return 0;
    case 'p': if (parse_u64(arg, 1, 65535, &v)) return -1; o->port = (int)v; return 0;
    case 'w': return parse_workload(arg, &o->workload);
    case 's': if (parse_u64(arg, MIN_SIZE, 1 << 20, &v)) return -1; o->size = v; return 0;
    case 'n': return parse_u64(arg, 1, 1ull << 40, &o->n);
    case 'd': if (parse_u64(arg, 1, 1 << 20, &v)) return -1; o->depth = (uint32_t)v; return 0;
    case 'b': if (parse_u64(arg, 0, 1 << 20, &v)) return -1; o->pop_batch = (uint32_t)v;
              return 0;
    case 'q': o->queue = arg; return strlen(arg) > 0 && strlen(arg) < 200 ? 0 : -1;
    case 'j': o->json = 1; return 0;
    case 'P': o->consumer_poll = 1; return 0;
    case 'r':
    case 'T':
        errno = 0;
        *(opt == 'r' ? &o->rate : &o->timeout_s) = strtod(arg, &end);
        return errno || end == arg || *end || (opt == 'T' && o->timeout_s <= 0) ||
               o->rate < 0 ? -1 : 0;
    default: return -1;
    }
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},   {"port", required_argument, NULL, 'p'},
        {"workload", required_argument, NULL, 'w'}, {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},     {"depth", required_argument, NULL, 'd'},
        {"pop-batch", required_argument, NULL, 'b'}, {"queue", required_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 'T'},  {"json", no_argument, NULL, 'j'},
        {"free-port", no_argument, NULL, 'F'},      {"help", no_argument, NULL, 'h'},
        {"consumer-poll", no_argument, NULL, 'P'},
        {NULL, 0, NULL, 0}};
    struct opts o = {NULL, 0, W_PRODUCE, MIN_SIZE, 100000, 0, 1024, 0, "peerbench", 0, 300, 0};
    const struct target *t = NULL;
    int opt;
    int rate_set = 0;

    while ((opt = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        if (opt == 'h' || opt == 'F' || opt == '?') {
            if (opt == 'F')
                return free_port();
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
        rate_set |= opt == 'r';
        if (set_opt(&o, opt, optarg)) {
            const struct option *lo = longopts;
            while (lo->name && lo->val != opt)
                lo++;
            fprintf(stderr, "slabmq-peerbench: bad value for %s%s: %s\n", lo->name ? "--" : "-",
                    lo->name ? lo->name : "n", optarg);
            return 2;
        }
    }
    for (size_t i = 0; o.target && i < sizeof(targets) / sizeof(targets[0]); i++)
        if (strcmp(o.target, targets[i].name) == 0)
            t = &targets[i];
    if (!t || o.port == 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o.workload == W_LATENCY && !rate_set)
        o.rate = 45000;
    if (o.workload != W_LATENCY)
        o.rate = 0;
    return run(t, &o) ? 1 : 0;
}
