/* SPDX-License-Identifier: MIT */
/* Raw-socket helpers for the hostile-input tests: a msgpack writer that can produce any bytes,
 * reply decoding and checks, and the "another client still works" checks. See raw.h. Every
 * wait is bounded; every check fails the test at the caller's file and line. */
#include "raw.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* A tiny msgpack writer: any bytes, valid or not                                            */


void
mb_put(struct mb *b, const void *d, size_t n)
{
    if (b->cap - b->len < n) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len < n)
            ncap *= 2;
        b->p = realloc(b->p, ncap);
        T_ASSERT(b->p != NULL);
        b->cap = ncap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

void
mb_byte(struct mb *b, uint8_t x)
{
    mb_put(b, &x, 1);
}

void
mb_be(struct mb *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        mb_byte(b, (uint8_t)(v >> (8 * i)));
}

void
mb_arr(struct mb *b, uint32_t n)
{
    if (n < 16) {
        mb_byte(b, (uint8_t)(0x90 | n));
    } else if (n < 65536) {
        mb_byte(b, 0xdc);
        mb_be(b, n, 2);
    } else {
        mb_byte(b, 0xdd);
        mb_be(b, n, 4);
    }
}

void
mb_map(struct mb *b, uint32_t n)
{
    if (n < 16) {
        mb_byte(b, (uint8_t)(0x80 | n));
    } else if (n < 65536) {
        mb_byte(b, 0xde);
        mb_be(b, n, 2);
    } else {
        mb_byte(b, 0xdf);
        mb_be(b, n, 4);
    }
}

void
mb_uint(struct mb *b, uint64_t v)
{
    if (v < 128) {
        mb_byte(b, (uint8_t)v);
    } else if (v < 256) {
        mb_byte(b, 0xcc);
        mb_be(b, v, 1);
    } else if (v < 65536) {
        mb_byte(b, 0xcd);
        mb_be(b, v, 2);
    } else if (v <= UINT32_MAX) {
        mb_byte(b, 0xce);
        mb_be(b, v, 4);
    } else {
        mb_byte(b, 0xcf);
        mb_be(b, v, 8);
    }
}

/* A negative integer. */
void
mb_neg(struct mb *b, int64_t v)
{
    if (v >= -32) {
        mb_byte(b, (uint8_t)(int8_t)v);
    } else {
        mb_byte(b, 0xd3);
        mb_be(b, (uint64_t)v, 8);
    }
}

void
mb_f64(struct mb *b, double x)
{
    uint64_t bits;

    memcpy(&bits, &x, sizeof(bits));
    mb_byte(b, 0xcb);
    mb_be(b, bits, 8);
}

void
mb_nil(struct mb *b)
{
    mb_byte(b, 0xc0);
}

void
mb_strn(struct mb *b, const char *s, size_t n)
{
    if (n < 32) {
        mb_byte(b, (uint8_t)(0xa0 | n));
    } else if (n < 256) {
        mb_byte(b, 0xd9);
        mb_be(b, n, 1);
    } else if (n < 65536) {
        mb_byte(b, 0xda);
        mb_be(b, n, 2);
    } else {
        mb_byte(b, 0xdb);
        mb_be(b, n, 4);
    }
    mb_put(b, s, n);
}

void
mb_str(struct mb *b, const char *s)
{
    mb_strn(b, s, strlen(s));
}

void
mb_bin(struct mb *b, const void *d, size_t n)
{
    if (n < 256) {
        mb_byte(b, 0xc4);
        mb_be(b, n, 1);
    } else if (n < 65536) {
        mb_byte(b, 0xc5);
        mb_be(b, n, 2);
    } else {
        mb_byte(b, 0xc6);
        mb_be(b, n, 4);
    }
    mb_put(b, d, n);
}

/* [op, rid, ...nargs arguments follow] */
void
mb_req(struct mb *b, unsigned op, uint64_t rid, uint32_t nargs)
{
    mb_arr(b, 2 + nargs);
    mb_uint(b, op);
    mb_uint(b, rid);
}

/* Append one frame holding body[0..n) to a byte stream. */
void
mb_frame(struct mb *stream, const void *body, size_t n)
{
    uint8_t h[4];

    smq_frame_put_header(h, (uint32_t)n);
    mb_put(stream, h, 4);
    mb_put(stream, body, n);
}

void
mb_free(struct mb *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Send body[0..n) as one frame with one send() call. */
void
send_frame(int fd, const void *body, size_t n)
{
    struct mb s = {0};

    mb_frame(&s, body, n);
    t_raw_send(fd, s.p, s.len);
    mb_free(&s);
}

/* Send without blocking for more than ms in all (the peer may have stopped reading).
 * Returns the bytes sent. */
size_t
send_bounded(int fd, const void *p, size_t n, int ms)
{
    const uint8_t *b = p;
    size_t done = 0;
    int64_t deadline = t_now_ms() + ms;

    while (done < n && t_now_ms() < deadline) {
        struct pollfd pf = {fd, POLLOUT, 0};
        ssize_t w;
        if (poll(&pf, 1, 20) <= 0)
            continue;
        w = send(fd, b + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
    }
    return done;
}

/* Send the body built in b as one frame, then empty b for the next request. */
void
send_mb(int fd, struct mb *b)
{
    send_frame(fd, b->p, b->len);
    b->len = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Replies                                                                                   */


uint8_t rep_buf[1 << 16];

static const char *
hex(const uint8_t *p, size_t n)
{
    static char out[3 * 24 + 8];
    size_t k = 0;

    for (size_t i = 0; i < n && i < 24; i++)
        k += (size_t)snprintf(out + k, sizeof(out) - k, "%02x ", p[i]);
    if (n > 24)
        snprintf(out + k, sizeof(out) - k, "...");
    return out;
}

/* Decode [op, rid, status, ...]; an error reply must be exactly [op, rid, code, str]. */
void
parse_rep(const char *file, int line, const uint8_t *body, size_t len, struct rep *p)
{
    memset(p, 0, sizeof(*p));
    smq_mpr_init(&p->r, body, len);
    if (smq_mpr_array(&p->r, &p->n) || p->n < 3 || smq_mpr_uint(&p->r, &p->op)
        || smq_mpr_uint(&p->r, &p->rid) || smq_mpr_uint(&p->r, &p->status))
        t_fail(file, line, "reply is not [op, request_id, status, ...]: %s", hex(body, len));
    if (p->status != 0
        && (p->n != 4 || smq_mpr_str(&p->r, &p->msg, &p->msglen) || smq_mpr_left(&p->r) != 0))
        t_fail(file, line, "error reply is not [op, request_id, code, message]: %s",
               hex(body, len));
}

/* Receive one reply frame into buf and decode it. */
void
recv_rep_buf(const char *file, int line, int fd, uint8_t *buf, size_t cap, int ms, struct rep *p)
{
    long n = t_raw_recv_frame(fd, buf, cap, ms);

    if (n == -1)
        t_fail(file, line, "connection closed while waiting for a reply");
    if (n == -2)
        t_fail(file, line, "no reply within %d ms", ms);
    if (n == 0)
        t_fail(file, line, "reply frame of length 0");
    parse_rep(file, line, buf, (size_t)n, p);
}

void
recv_rep(const char *file, int line, int fd, struct rep *p)
{
    recv_rep_buf(file, line, fd, rep_buf, sizeof(rep_buf), REPLY_MS, p);
}

/* The next reply must be the error [op, rid, code, message]. */
void
raw_expect_err(const char *file, int line, int fd, uint64_t op, uint64_t rid, unsigned code)
{
    struct rep p;

    recv_rep(file, line, fd, &p);
    if (p.status != code || p.op != op || p.rid != rid)
        t_fail(file, line,
               "expected error [op %llu, rid %llu, %s], got [op %llu, rid %llu, %s] \"%.*s\"",
               (unsigned long long)op, (unsigned long long)rid,
               slabmq_status_name((slabmq_status)code), (unsigned long long)p.op,
               (unsigned long long)p.rid, slabmq_status_name((slabmq_status)p.status),
               (int)p.msglen, p.msg ? p.msg : "");
    if (p.msglen == 0)
        t_fail(file, line, "error reply without a message");
}

/* The next reply must be a success for (op, rid); p receives it. */
void
raw_expect_ok(const char *file, int line, int fd, uint64_t op, uint64_t rid, struct rep *p)
{
    recv_rep(file, line, fd, p);
    if (p->status != 0 || p->op != op || p->rid != rid)
        t_fail(file, line,
               "expected OK [op %llu, rid %llu], got [op %llu, rid %llu, %s] \"%.*s\"",
               (unsigned long long)op, (unsigned long long)rid, (unsigned long long)p->op,
               (unsigned long long)p->rid, slabmq_status_name((slabmq_status)p->status),
               (int)p->msglen, p->msg ? p->msg : "");
}

/* The broker must close fd without sending anything more. */
void
raw_expect_eof(const char *file, int line, int fd)
{
    long n = t_raw_recv_frame(fd, rep_buf, sizeof(rep_buf), CLOSE_MS);

    if (n == -2)
        t_fail(file, line, "connection still open %d ms after a fatal error", CLOSE_MS);
    if (n >= 0)
        t_fail(file, line, "expected the connection to close, got another frame: %s",
               hex(rep_buf, (size_t)n));
}

/* fd must still be open: nothing to read, no EOF, for ms. */
void
raw_expect_open(const char *file, int line, int fd, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int rc = poll(&pf, 1, ms);

    if (rc != 0) {
        uint8_t c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        t_fail(file, line, "connection not idle: %s",
               r == 0 ? "closed by the broker" : r > 0 ? "unexpected data" : strerror(errno));
    }
}

/* PING on fd must still work (the connection survived an error). */
void
raw_expect_ping(const char *file, int line, int fd)
{
    static uint64_t rid = 50000;
    struct mb m = {0};
    struct rep p;

    rid++;
    mb_req(&m, SMQ_OP_PING, rid, 0);
    send_mb(fd, &m);
    mb_free(&m);
    raw_expect_ok(file, line, fd, SMQ_OP_PING, rid, &p);
    if (p.n != 3)
        t_fail(file, line, "PING reply has %u elements", p.n);
}

/* After an error whose effect on the connection docs/protocol.md and the broker disagree
 * about (see the notes at the cases): the connection must either be closed, or still be
 * usable, with a PING answered with want_status (0 after HELLO, ERR_HELLO_REQUIRED before).
 * Returns 1 if it was still open. Either way nothing else (no garbage, no hang). */
int
raw_closed_or_usable(const char *file, int line, int fd, unsigned want_status)
{
    static const uint8_t ping[] = {0, 0, 0, 4, 0x92, 0x02, 0xcc, 0xfe}; /* [2, 254] */
    long n;
    struct rep p;

    t_raw_send(fd, ping, sizeof(ping));
    n = t_raw_recv_frame(fd, rep_buf, sizeof(rep_buf), CLOSE_MS);
    if (n == -1)
        return 0;
    if (n == -2)
        t_fail(file, line, "neither closed nor answering a PING within %d ms", CLOSE_MS);
    parse_rep(file, line, rep_buf, (size_t)n, &p);
    if (p.op != SMQ_OP_PING || p.rid != 254 || p.status != want_status)
        t_fail(file, line, "PING after the error: got [op %llu, rid %llu, %s]",
               (unsigned long long)p.op, (unsigned long long)p.rid,
               slabmq_status_name((slabmq_status)p.status));
    return 1;
}

/* Send the request in b (emptied), expect [op, rid, code, msg] and a usable connection. */
void
raw_req_err(const char *file, int line, int fd, struct mb *b, uint64_t op, uint64_t rid,
            unsigned code)
{
    send_mb(fd, b);
    raw_expect_err(file, line, fd, op, rid, code);
    raw_expect_ping(file, line, fd);
}

/* ---------------------------------------------------------------------------------------- */
/* Connections and the other client                                                         */

/* A raw connection that has done HELLO (request id 1). */
int
raw_session(const struct t_broker *b)
{
    int fd = t_raw_connect(b->port);

    t_raw_hello(fd);
    return fd;
}

uint32_t
raw_data_segs_in(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    T_ASSERT(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
    T_ASSERT(len >= offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof(ti.tcpi_data_segs_in));
    return ti.tcpi_data_segs_in;
}

/* A raw connection with a small receive buffer, so the broker's output backs up. */
int
raw_connect_small(int port, int rcvbuf)
{
    return t_raw_connect_rcvbuf(port, rcvbuf);
}

/* Close with an immediate RST instead of a FIN. */
void
close_reset(int fd)
{
    struct linger l = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

/* One statistic of the broker (queue NULL) or of a queue, over the library client. */
uint64_t
raw_stat_get(const char *file, int line, slabmq_client *c, const char *queue, const char *name)
{
    slabmq_stats *s = NULL;
    uint64_t v = 0;
    slabmq_status st = slabmq_stats_get(c, queue, &s);

    if (st != SLABMQ_OK)
        t_fail(file, line, "STATS %s: %s (%s)", queue ? queue : "(broker)",
               slabmq_status_name(st), slabmq_client_errmsg(c));
    if (!slabmq_stats_find(s, name, &v))
        t_fail(file, line, "STATS has no '%s'", name);
    slabmq_stats_free(s);
    return v;
}

/* Poll a statistic until it equals want (bounded); fails with the last value otherwise. */
void
raw_wait_stat(const char *file, int line, slabmq_client *c, const char *queue,
              const char *name, uint64_t want, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    uint64_t v;

    for (;;) {
        v = raw_stat_get(file, line, c, queue, name);
        if (v == want)
            return;
        if (t_now_ms() >= deadline)
            break;
        t_sleep_ms(20);
    }
    t_fail(file, line, "STATS %s %s: %llu, want %llu (waited %d ms)",
           queue ? queue : "(broker)", name, (unsigned long long)v, (unsigned long long)want,
           ms);
}

/* The other client still gets served: the broker is alive, PING works and a message makes
 * a publish + fetch + ack round trip. */
void
raw_other_works(const char *file, int line, const struct t_broker *b, slabmq_client *c)
{
    static unsigned seq;
    char payload[64];
    uint64_t id = 0;
    slabmq_batch *bt = NULL;
    const slabmq_message *m;
    slabmq_status st;
    int64_t t0 = t_now_ms();

    if (!t_broker_alive(b))
        t_fail(file, line, "slabmqd is no longer running");
    if ((st = slabmq_ping(c)) != SLABMQ_OK)
        t_fail(file, line, "PING from the other client: %s (%s)", slabmq_status_name(st),
               slabmq_client_errmsg(c));
    snprintf(payload, sizeof(payload), "other-client-check-%u", ++seq);
    if ((st = slabmq_publish(c, OTHER_Q, payload, strlen(payload), &id)) != SLABMQ_OK)
        t_fail(file, line, "PUBLISH from the other client: %s (%s)",
               slabmq_status_name(st), slabmq_client_errmsg(c));
    if ((st = slabmq_fetch(c, OTHER_Q, 1, 2000, &bt)) != SLABMQ_OK)
        t_fail(file, line, "FETCH from the other client: %s (%s)", slabmq_status_name(st),
               slabmq_client_errmsg(c));
    if (slabmq_batch_count(bt) != 1)
        t_fail(file, line, "other client fetched %zu messages, want 1",
               slabmq_batch_count(bt));
    m = slabmq_batch_get(bt, 0);
    if (m->id != id || m->len != strlen(payload) || memcmp(m->data, payload, m->len) != 0)
        t_fail(file, line, "other client fetched the wrong message (id %llu, want %llu)",
               (unsigned long long)m->id, (unsigned long long)id);
    slabmq_batch_free(bt);
    if ((st = slabmq_ack(c, id)) != SLABMQ_OK)
        t_fail(file, line, "ACK from the other client: %s (%s)", slabmq_status_name(st),
               slabmq_client_errmsg(c));
    if (t_now_ms() - t0 > 3000)
        t_fail(file, line, "other client round trip took %lld ms",
               (long long)(t_now_ms() - t0));
    if (!t_broker_alive(b))
        t_fail(file, line, "slabmqd is no longer running");
}

/* End of a case: the other client works, only it is still connected (no connection record
 * leaked), and the broker stops cleanly (sanitizer reports fail the exit status). */
void
raw_finish(const char *file, int line, struct t_broker *b, slabmq_client *other)
{
    raw_other_works(file, line, b, other);
    raw_wait_stat(file, line, other, NULL, "connections", 1, 5000);
    raw_wait_stat(file, line, other, NULL, "inflight", 0, 5000);
    slabmq_client_close(other);
    t_broker_stop(b);
}

/* Bytes sent on a fresh connection (after HELLO if hello) must draw the connection-level
 * error [0, 0, code, msg], and then the broker must close the connection. */
void
raw_expect_fatal(const char *file, int line, const struct t_broker *b, int hello,
                 const void *bytes, size_t n, unsigned code)
{
    int fd = hello ? raw_session(b) : t_raw_connect(b->port);

    t_raw_send(fd, bytes, n);
    raw_expect_err(file, line, fd, SMQ_OP_NONE, 0, code);
    raw_expect_eof(file, line, fd);
    close(fd);
}

/* Memory figures of a process from /proc/PID/status, in KiB (0 if absent). */
uint64_t
proc_kib(pid_t pid, const char *field)
{
    char path[64];
    char line[256];
    uint64_t v = 0;
    size_t flen = strlen(field);
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            v = strtoull(line + flen + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Parse a FETCH/PEEK result [[id, deliveries, payload], ...]; ids[] gets up to cap ids. */
uint32_t
parse_messages(const char *file, int line, struct rep *p, uint64_t *ids, uint32_t cap)
{
    uint32_t n;

    if (p->n != 4 || smq_mpr_array(&p->r, &n))
        t_fail(file, line, "FETCH reply is not [op, rid, 0, [messages]]");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        uint64_t id;
        uint64_t deliveries;
        const uint8_t *data;
        uint32_t len;
        if (smq_mpr_array(&p->r, &k) || k != 3 || smq_mpr_uint(&p->r, &id)
            || smq_mpr_uint(&p->r, &deliveries) || smq_mpr_bin(&p->r, &data, &len))
            t_fail(file, line, "message %u of a FETCH reply is not [id, deliveries, bin]", i);
        if (i < cap)
            ids[i] = id;
    }
    if (smq_mpr_left(&p->r) != 0)
        t_fail(file, line, "trailing bytes in a FETCH reply");
    return n;
}

/* FETCH [queue, max] on a raw session; returns the count, ids[] the first cap ids. */
uint32_t
raw_fetch(const char *file, int line, int fd, uint64_t rid, const char *queue, uint32_t max,
          uint64_t *ids, uint32_t cap)
{
    struct mb m = {0};
    struct rep p;
    uint32_t n;

    mb_req(&m, SMQ_OP_FETCH, rid, 2);
    mb_str(&m, queue);
    mb_uint(&m, max);
    send_mb(fd, &m);
    mb_free(&m);
    raw_expect_ok(file, line, fd, SMQ_OP_FETCH, rid, &p);
    n = parse_messages(file, line, &p, ids, cap);
    return n;
}

/* ACK [ids] on a raw session; returns the reply (status may be an error). */
void
raw_ack_send(int fd, uint64_t rid, const uint64_t *ids, uint32_t n)
{
    struct mb m = {0};

    mb_req(&m, SMQ_OP_ACK, rid, 1);
    mb_arr(&m, n);
    for (uint32_t i = 0; i < n; i++)
        mb_uint(&m, ids[i]);
    send_mb(fd, &m);
    mb_free(&m);
}

/* A successful ACK/NACK reply [op, rid, 0, count]; returns count. */
uint64_t
raw_expect_count(const char *file, int line, int fd, uint64_t op, uint64_t rid)
{
    struct rep p;
    uint64_t v;

    raw_expect_ok(file, line, fd, op, rid, &p);
    if (p.n != 4 || smq_mpr_uint(&p.r, &v))
        t_fail(file, line, "reply is not [op, rid, 0, count]");
    return v;
}
