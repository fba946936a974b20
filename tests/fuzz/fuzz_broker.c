/* SPDX-License-Identifier: MIT */
/* Fuzz target "broker": the bytes clients send, split at fuzzer-chosen points, through the
 * broker's real per-connection input path: conn_read_cb's buffer management, frame assembly,
 * header admission at the memory limit, dispatch, every handler, replies and closing.
 *
 * The broker is the one slabmqd runs (server_new: broker state, event loop, timers, connection
 * guards), minus the listener. Each connection is accepted on the write end of a pipe, so its
 * replies can be read back and checked; its input comes from memory through the server's
 * read_fn seam instead of read(2). The harness drives the event loop itself, one turn per
 * chunk, so write events, resumed reads and expiring timers run the real callbacks.
 *
 * Input layout:
 *   byte 0      flags: bit 0 a second connection; bit 1 HELLO sent first on each connection;
 *               bit 2 max message size 512 (instead of 1 MiB); bit 3 in-flight window of 3;
 *               bits 4-5 memory already in use when the input starts (none, all but the
 *               drain reserve and 256 KiB, all but 32 KiB, over the limit), released at the
 *               end of the input so paused connections resume; bit 6 output cap of 4 KiB
 *               (reading pauses while more replies than that are unsent); bit 7 the first
 *               client sends the rest of its stream at once half way through the input and
 *               closes its socket, so the broker reads end-of-file and its writes fail.
 *   bytes 1-8   chunk sizes, used in turn: low 7 bits the size (0: the rest of the input),
 *               top bit the connection the chunk goes to.
 *   the rest    the byte streams of the connections, chunk after chunk.
 * At the end every connection reads end-of-file, as when a client hangs up.
 *
 * The server runs as slabmqd does by default, without durability (no store, no writer thread)
 * and without users (no --auth-file: HELLO says auth_required false, AUTH is refused).
 *
 * Checked: no sanitizer finding, and every frame the broker writes is one frame holding
 * [op, request_id, status, ...] with the results docs/protocol.md gives for the op (or a
 * 4-element error with a known status and a message of at most 255 bytes): HELLO's eight,
 * PUBLISH's id (with options also duplicate and a level name), FETCH's messages (from a list
 * of queues also the queue's name, or nil when none), messages of 3 elements or 4 for a dead
 * letter (its info map), STATS values unsigned but a queue's dead_letter str, TERM's count,
 * SUBSCRIBE's positive id, UNSUBSCRIBE's and AUTH's none; and DELIVER pushes between the
 * replies, [20, subscription_id, 0, [message, ...]] with at least one message. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/broker.h"
#include "net/conn.h"
#include "frame.h"
#include "fuzz.h"
#include "util/log.h"
#include "mem/mem.h"
#include "mpread.h"
#include "ops.h"
#include "net/server.h"
#include "slabmq_protocol.h"

#define NCONN 2
#define TURNS 8 /* event-loop turns per chunk, at most */

#define F_TWO_CONNS 0x01
#define F_HELLO 0x02
#define F_SMALL_MSG 0x04
#define F_SMALL_WINDOW 0x08
#define F_BALLAST_SHIFT 4
#define F_SMALL_OUTPUT 0x40
#define F_HANGUP 0x80

struct feed {
    uint64_t id;     /* the broker's connection id; 0 once it is closed */
    int wfd;         /* the broker's end of the pipe: its socket */
    int rfd;         /* our end: replies read back; -1 once closed (hang_up) */
    uint8_t *in;     /* this connection's input, in arrival order */
    size_t total;    /* bytes of 'in' */
    size_t avail;    /* bytes of 'in' delivered so far */
    size_t pos;      /* bytes of 'in' the broker has read */
    int eof;         /* all delivered: read returns 0 */
    uint8_t *out;    /* reply bytes not yet checked */
    size_t out_len;
    size_t out_cap;
};

struct harness {
    struct server *s;
    struct feed f[NCONN];
    int n;
    int verbose;     /* FUZZ_VERBOSE set: print each reply's op, id and status */
};

/* ---------------------------------------------------------------------------------------- */
/* Reply checks                                                                              */

/* A dead letter's info map (docs/protocol.md 7.6): str keys; reason and queue strs,
 * deliveries an integer. */
static void
check_info(struct smq_mpr *r)
{
    uint32_t n;
    const char *s;
    uint32_t len;
    uint64_t u;

    FUZZ_CHECK(smq_mpr_map(r, &n) == 0 && n > 0);
    for (uint32_t i = 0; i < n; i++) {
        FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0);
        if ((len == 6 && memcmp(s, "reason", 6) == 0) || (len == 5 && memcmp(s, "queue", 5) == 0))
            FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0 && len > 0);
        else if (len == 10 && memcmp(s, "deliveries", 10) == 0)
            FUZZ_CHECK(smq_mpr_uint(r, &u) == 0);
        else
            FUZZ_CHECK(!"unknown key in a dead letter's info");
    }
}

/* [message, ...]: each [message_id, deliveries, payload] or, for a dead letter, with its
 * info map as a fourth element. Returns how many. */
static uint32_t
check_messages(struct smq_mpr *r)
{
    uint32_t n;
    uint32_t k;
    uint64_t u;
    const uint8_t *b;
    uint32_t len;

    FUZZ_CHECK(smq_mpr_array(r, &n) == 0);
    for (uint32_t i = 0; i < n; i++) {
        FUZZ_CHECK(smq_mpr_array(r, &k) == 0 && (k == 3 || k == 4));
        FUZZ_CHECK(smq_mpr_uint(r, &u) == 0 && u > 0); /* message ids start at 1 */
        FUZZ_CHECK(smq_mpr_uint(r, &u) == 0);
        FUZZ_CHECK(smq_mpr_bin(r, &b, &len) == 0);
        if (k == 4)
            check_info(r);
    }
    return n;
}

/* A confirmation level's name (docs/protocol.md 7.10). */
static int
is_level(const char *s, uint32_t len)
{
    return (len == 6 && memcmp(s, "memory", 6) == 0) || (len == 7 && memcmp(s, "written", 7) == 0)
           || (len == 6 && memcmp(s, "synced", 6) == 0);
}

/* The results of a success reply to op, nres of them (docs/protocol.md section 6). */
static void
check_results(struct smq_mpr *r, uint64_t op, uint32_t nres)
{
    uint64_t u;
    int v;
    const char *s;
    uint32_t len;
    uint32_t n;
    uint32_t k;

    switch (op) {
    case SMQ_OP_HELLO:
        FUZZ_CHECK(nres == 8);
        FUZZ_CHECK(smq_mpr_uint(r, &u) == 0 && u == SLABMQ_PROTOCOL_VERSION);
        FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0);
        for (int i = 0; i < 4; i++)
            FUZZ_CHECK(smq_mpr_uint(r, &u) == 0);
        FUZZ_CHECK(smq_mpr_bool(r, &v) == 0 && v == 0); /* the harness has no users */
        FUZZ_CHECK(smq_mpr_uint(r, &u) == 0 && u == SMQ_FEATURES);
        break;
    case SMQ_OP_PING:
    case SMQ_OP_UNSUBSCRIBE:
    case SMQ_OP_AUTH:
        FUZZ_CHECK(nres == 0);
        break;
    case SMQ_OP_DECLARE:
    case SMQ_OP_PAUSE:
    case SMQ_OP_RESUME:
        FUZZ_CHECK(nres == 1 && smq_mpr_bool(r, &v) == 0);
        break;
    case SMQ_OP_DELETE:
    case SMQ_OP_PURGE:
    case SMQ_OP_ACK:
    case SMQ_OP_NACK:
    case SMQ_OP_TOUCH:
    case SMQ_OP_TERM:
        FUZZ_CHECK(nres == 1 && smq_mpr_uint(r, &u) == 0);
        break;
    case SMQ_OP_SUBSCRIBE:
        FUZZ_CHECK(nres == 1 && smq_mpr_uint(r, &u) == 0 && u > 0);
        break;
    case SMQ_OP_PUBLISH: /* id; with options also duplicate and level */
        FUZZ_CHECK((nres == 1 || nres == 3) && smq_mpr_uint(r, &u) == 0 && u > 0);
        if (nres == 3) {
            FUZZ_CHECK(smq_mpr_bool(r, &v) == 0);
            FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0 && is_level(s, len));
        }
        break;
    case SMQ_OP_PUBLISH_BATCH:
        FUZZ_CHECK(nres == 2 && smq_mpr_uint(r, &u) == 0 && smq_mpr_uint(r, &u) == 0);
        break;
    case SMQ_OP_LIST:
        FUZZ_CHECK(nres == 1 && smq_mpr_array(r, &n) == 0);
        for (uint32_t i = 0; i < n; i++) {
            FUZZ_CHECK(smq_mpr_array(r, &k) == 0 && k == 3);
            FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0 && len >= 1 && len <= 200);
            FUZZ_CHECK(smq_mpr_uint(r, &u) == 0 && smq_mpr_uint(r, &u) == 0);
        }
        break;
    case SMQ_OP_STATS: /* unsigned values, but a queue's dead_letter, a str */
        FUZZ_CHECK(nres == 1 && smq_mpr_map(r, &n) == 0 && n > 0);
        for (uint32_t i = 0; i < n; i++) {
            FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0);
            if (len == 11 && memcmp(s, "dead_letter", 11) == 0)
                FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0 && len <= 200);
            else
                FUZZ_CHECK(smq_mpr_uint(r, &u) == 0);
        }
        break;
    case SMQ_OP_FETCH: /* messages; from a list of queues also the queue's name, or nil */
        FUZZ_CHECK(nres == 1 || nres == 2);
        n = check_messages(r);
        if (nres == 2 && n > 0)
            FUZZ_CHECK(smq_mpr_str(r, &s, &len) == 0 && len >= 1 && len <= 200);
        else if (nres == 2)
            FUZZ_CHECK(smq_mpr_nil(r) == 0);
        break;
    case SMQ_OP_PEEK:
        FUZZ_CHECK(nres == 1);
        check_messages(r);
        break;
    default:
        FUZZ_CHECK(!"success reply to an op that does not exist");
    }
}

static void
check_reply(const struct harness *h, int conn, const uint8_t *body, uint32_t len)
{
    struct smq_mpr r;
    uint32_t n;
    uint64_t op;
    uint64_t rid;
    uint64_t status;

    smq_mpr_init(&r, body, len);
    FUZZ_CHECK(smq_mpr_array(&r, &n) == 0 && n >= 3);
    FUZZ_CHECK(smq_mpr_uint(&r, &op) == 0 && smq_mpr_uint(&r, &rid) == 0);
    FUZZ_CHECK(smq_mpr_uint(&r, &status) == 0);
    if (status == SLABMQ_OK && op == SMQ_OP_DELIVER) {
        /* a push: [20, subscription_id, 0, [message, ...]], at least one message. (Its
         * error form, ERR_QUEUE_DELETED or ERR_SHUTDOWN, is checked like any error: a
         * client that sends op 20 gets ERR_UNKNOWN_OP with op 20 too.) */
        FUZZ_CHECK(rid > 0);
        FUZZ_CHECK(n == 4 && check_messages(&r) > 0);
    } else if (status == SLABMQ_OK) {
        check_results(&r, op, n - 3);
    } else {
        const char *msg;
        uint32_t mlen;
        FUZZ_CHECK(status < 100 && strcmp(smq_status_name((unsigned)status), "UNKNOWN") != 0);
        FUZZ_CHECK(n == 4 && smq_mpr_str(&r, &msg, &mlen) == 0 && mlen <= 255);
    }
    FUZZ_CHECK(!r.err && smq_mpr_left(&r) == 0);
    if (h->verbose)
        fprintf(stderr, "conn %d: reply op %llu id %llu status %llu, %u bytes\n", conn,
                (unsigned long long)op, (unsigned long long)rid, (unsigned long long)status,
                len);
}

/* Read what the broker wrote to f and check every whole frame. */
static void
drain(struct harness *h, int conn)
{
    struct feed *f = &h->f[conn];
    size_t off = 0;

    if (f->rfd < 0)
        return;
    for (;;) {
        ssize_t k;
        if (f->out_cap - f->out_len < 65536) {
            f->out_cap = f->out_cap ? f->out_cap * 2 : 65536 * 2;
            f->out = realloc(f->out, f->out_cap);
            FUZZ_CHECK(f->out);
        }
        k = read(f->rfd, f->out + f->out_len, f->out_cap - f->out_len);
        if (k <= 0)
            break;
        f->out_len += (size_t)k;
    }
    while (f->out_len - off >= SMQ_FRAME_HEADER) {
        const uint8_t *body;
        uint32_t blen;
        size_t total;
        enum smq_frame_result fr = smq_frame_decode(f->out + off, f->out_len - off, UINT32_MAX,
                                                    &body, &blen, &total);
        FUZZ_CHECK(fr != SMQ_FRAME_EMPTY);
        if (fr != SMQ_FRAME_OK)
            break;
        check_reply(h, conn, body, blen);
        off += total;
    }
    memmove(f->out, f->out + off, f->out_len - off);
    f->out_len -= off;
}

/* ---------------------------------------------------------------------------------------- */
/* Driving the broker                                                                        */

/* server.read_fn: the connection's next bytes from memory. */
static ssize_t
feed_read(void *ctx, int fd, void *buf, size_t len)
{
    struct harness *h = ctx;

    for (int i = 0; i < h->n; i++) {
        struct feed *f = &h->f[i];
        size_t k = f->avail - f->pos;
        if (!f->id || f->wfd != fd)
            continue;
        if (k == 0) {
            if (f->eof)
                return 0;
            errno = EAGAIN;
            return -1;
        }
        if (k > len)
            k = len;
        memcpy(buf, f->in + f->pos, k);
        f->pos += k;
        return (ssize_t)k;
    }
    errno = EBADF;
    return -1;
}

/* f's connection, or NULL once the broker has closed it. */
static struct conn *
find_conn(struct harness *h, struct feed *f)
{
    for (struct dlink *l = h->s->conns.next; f->id && l != &h->s->conns; l = l->next) {
        struct conn *c = DLIST_ENTRY(l, struct conn, link);
        if (c->req.id == f->id)
            return c;
    }
    f->id = 0;
    return NULL;
}

/* One turn: tell every connection with input waiting that it is readable (as epoll would),
 * run the loop once, read the replies back. */
static void
turn(struct harness *h)
{
    for (int i = 0; i < h->n; i++) {
        struct conn *c = find_conn(h, &h->f[i]);
        if (c && !c->paused && !c->req.closing && (h->f[i].pos < h->f[i].avail || h->f[i].eof))
            event_active(&c->rev, EV_READ, 0);
    }
    event_base_loop(h->s->base, EVLOOP_NONBLOCK);
    for (int i = 0; i < h->n; i++)
        drain(h, i);
}

/* Deliver n more bytes of f's stream and let the broker take them. */
static void
deliver(struct harness *h, struct feed *f, size_t n)
{
    f->avail += n;
    for (int t = 0; t < TURNS; t++) {
        turn(h);
        if (f->pos == f->avail || !find_conn(h, f))
            break;
    }
}

/* The client sent what it had and closed its socket: the broker can still read what was
 * sent, then end-of-file, and its writes fail (EPIPE). */
static void
hang_up(struct feed *f)
{
    f->avail = f->total;
    f->eof = 1;
    close(f->rfd);
    f->rfd = -1;
}

/* Chunk k of the input, with 'left' bytes still to go: its size in *n, and its connection. */
static int
chunk(const uint8_t split[8], size_t k, size_t left, int nconn, size_t *n)
{
    uint8_t b = split[k % 8];

    *n = (b & 0x7f) && (size_t)(b & 0x7f) < left ? (size_t)(b & 0x7f) : left;
    return nconn == 2 ? b >> 7 : 0;
}

static const uint8_t hello_frame[] = {0, 0, 0, 12, 0x94, 0x01, 0x00, 0x01,
                                      0xa7, 'f', 'u', 'z', 'z', 'i', 'n', 'g'};

/* Accept connection i on a fresh pipe; room for len input bytes. */
static void
open_feed(struct harness *h, int i, size_t len)
{
    struct feed *f = &h->f[i];
    int p[2];
    uint64_t before = h->s->next_conn_id;

    FUZZ_CHECK(pipe(p) == 0);
    FUZZ_CHECK(fcntl(p[0], F_SETFL, O_NONBLOCK) == 0 && fcntl(p[1], F_SETFL, O_NONBLOCK) == 0);
    f->rfd = p[0];
    f->wfd = p[1];
    f->in = malloc(len + sizeof(hello_frame) + 1);
    FUZZ_CHECK(f->in);
    conn_accept(h->s, f->wfd, "fuzz", 0);
    f->id = h->s->next_conn_id != before ? h->s->next_conn_id : 0;
}

/* Memory already in use when the input starts: level 0-3 (see the file comment). */
static size_t
ballast(struct mem *m, unsigned level)
{
    size_t want;

    switch (level) {
    case 1:
        want = m->limit - m->headroom - (256u << 10);
        break;
    case 2:
        want = m->limit - (32u << 10);
        break;
    case 3:
        want = m->limit + 1;
        break;
    default:
        return 0;
    }
    if (want <= m->used)
        return 0;
    want -= m->used;
    mem_force(m, want);
    return want;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct harness h;
    struct server_config cfg;
    char err[256];
    uint8_t flags;
    const uint8_t *split;
    const uint8_t *stream;
    size_t slen;
    size_t held;
    size_t used_before;

    if (size < 9)
        return 0;
    flags = data[0];
    split = data + 1;
    stream = data + 9;
    slen = size - 9;
    log_threshold = LOG_ERROR;
    signal(SIGPIPE, SIG_IGN); /* as slabmqd does */
    memset(&h, 0, sizeof(h));
    h.verbose = getenv("FUZZ_VERBOSE") != NULL;
    server_config_defaults(&cfg);
    cfg.broker.max_memory = (size_t)16 << 20; /* the least slabmqd takes: limits are near */
    if (flags & F_SMALL_MSG)
        cfg.broker.max_message_size = 512;
    if (flags & F_SMALL_WINDOW)
        cfg.broker.max_inflight = 3;
    if (flags & F_SMALL_OUTPUT)
        cfg.output_cap = 4096;
    h.s = server_new(&cfg, err, sizeof(err));
    FUZZ_CHECK(h.s);
    h.s->read_fn = feed_read;
    h.s->read_ctx = &h;
    h.n = flags & F_TWO_CONNS ? 2 : 1;
    for (int i = 0; i < h.n; i++)
        open_feed(&h, i, slen);

    used_before = h.s->b.mem.used;
    held = ballast(&h.s->b.mem, (flags >> F_BALLAST_SHIFT) & 3);
    FUZZ_CHECK(h.s->b.mem.used - used_before == held);
    if (flags & F_HELLO) {
        for (int i = 0; i < h.n; i++) {
            memcpy(h.f[i].in, hello_frame, sizeof(hello_frame));
            h.f[i].total = sizeof(hello_frame);
            deliver(&h, &h.f[i], sizeof(hello_frame));
        }
    }
    /* Lay each connection's stream out first, then deliver it chunk by chunk. */
    for (size_t off = 0, k = 0, n; off < slen; off += n, k++) {
        struct feed *f = &h.f[chunk(split, k, slen - off, h.n, &n)];
        memcpy(f->in + f->total, stream + off, n);
        f->total += n;
    }
    for (size_t off = 0, k = 0, n; off < slen; off += n, k++) {
        struct feed *f = &h.f[chunk(split, k, slen - off, h.n, &n)];
        deliver(&h, f, f->eof ? 0 : n);
        if ((flags & F_HANGUP) && !h.f[0].eof && off + n >= slen / 2)
            hang_up(&h.f[0]);
    }
    /* The memory others held is given back: paused connections resume and finish. */
    mem_release(&h.s->b.mem, held);
    conn_resume_memory(h.s);
    for (int i = 0; i < h.n; i++)
        deliver(&h, &h.f[i], 0);
    /* Every client hangs up. */
    for (int i = 0; i < h.n; i++)
        h.f[i].eof = 1;
    for (int t = 0; t < TURNS; t++)
        turn(&h);
    server_free(h.s);
    for (int i = 0; i < h.n; i++) {
        drain(&h, i);
        if (h.f[i].rfd >= 0)
            close(h.f[i].rfd); /* wfd was the broker's: it closed it */
        free(h.f[i].in);
        free(h.f[i].out);
    }
    return 0;
}
