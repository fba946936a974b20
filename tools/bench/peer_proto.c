/* SPDX-License-Identifier: MIT */
/* The peer brokers' wire protocols for slabmq-peerbench (peer_proto.h), over a peer_conn:
 *
 *   redis-list    LPUSH, one value each or --push-values at once, to one list or round-robin
 *                 over --spread lists; RPOP key COUNT (BLMPOP ... COUNT when blocking), or
 *                 RPOP (BRPOP) per message with a batch of 1. Lists have no acks: a pop is the
 *                 settlement.
 *   redis-stream  XADD; XREADGROUP COUNT (BLOCK when blocking) in a group, and one XACK
 *                 naming every entry of a reply once the consumer has handled them
 *   beanstalkd    put; reserve-with-timeout 0 (1 when blocking), one delete per job
 *   nats-js       JetStream, memory storage, work-queue retention: PUB with a reply subject
 *                 (the PubAck), a durable pull consumer fed by $JS.API.CONSUMER.MSG.NEXT,
 *                 one +ACK per message (NATS acks have no reply: a PING/PONG at the end
 *                 makes sure the server has taken them all before the clock stops)
 *
 * Requests are appended to the output buffer and replies parsed from the input buffer as
 * they arrive, so any number can be in flight. Redis answers in request order: a ring of the
 * outstanding commands (kind, and how many messages each asked for, settled or carried) says
 * how to read each reply. A RESP reply is parsed
 * into a flat token array in one pass, O(bytes), and re-parsed from the start when it has not
 * all arrived. NATS pull requests are numbered in their reply subjects; a message is counted
 * against the oldest open one, and a status other than a heartbeat ends the one it names. Setup
 * exchanges are synchronous, each bounded by SETUP_NS; everything else never blocks. */
#include "peer_proto.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SETUP_NS 10000000000ll        /* bound on each setup exchange */
#define NATS_SID_API 1                /* JetStream API replies */
#define NATS_SID_ACK 2                /* PubAcks */
#define NATS_SID_PULL 3               /* pulled messages and pull statuses */
#define BLOCK_S 1                     /* blocking requests time out after this, seconds */
#define REDIS_KEY_MAX 240             /* a queue name (< 200) and ":" and a list number */
#define DEL_KEYS 1000                 /* lists one DEL of a spread run's setup names */

/* What one request asked Redis for, kept in request order so replies can be decoded. */
enum req_kind { RK_RPOP, RK_BRPOP, RK_RPOPN, RK_BLMPOP, RK_XREAD, RK_XACK, RK_PUSH };

static atomic_uint inbox_seq;         /* numbers the NATS inboxes of this process */

/* One token of a flat RESP reply. */
struct peer_resp_tok {
    char type;                /* '+', '-', ':', '$' or '*' */
    long long n;              /* integer, bulk length or array count; -1 for nil */
    const char *p;            /* bulk data or simple string */
};

/* ---------------------------------------------------------------------------------------- */
/* Text and synchronous exchanges                                                            */

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

/* "LEN\r\nPAYLOAD\r\n" at q, the tail of a beanstalkd put and of a NATS PUB; returns its end. */
static char *
put_sized(char *q, const char *p, size_t len)
{
    q += put_u64(q, len);
    memcpy(q, "\r\n", 2);
    memcpy(q + 2, p, len);
    memcpy(q + 2 + len, "\r\n", 2);
    return q + 4 + len;
}

/* One wait step of a synchronous exchange; -1 past the deadline or on error. */
static int
sync_step(struct peer_session *s, int64_t deadline)
{
    if (peer_net_now_ns() > deadline) {
        peer_net_set_err(&s->c, "no reply within %lld s", SETUP_NS / 1000000000);
        return -1;
    }
    return peer_net_io(&s->c, 50) < 0 ? -1 : 0;
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
/* RESP (Redis)                                                                              */

static int
resp_push(struct peer_resp_reply *r, char type, long long n, const char *p)
{
    if (r->nt == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        struct peer_resp_tok *t = realloc(r->t, cap * sizeof(*t));
        if (!t)
            return -1;
        r->t = t;
        r->cap = cap;
    }
    r->t[r->nt++] = (struct peer_resp_tok){type, n, p};
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

/* Parse one complete reply from buf: PEER_OK with its size in *used, PEER_NEED, or PEER_ERR. Flat,
 * without recursion: 'need' counts the elements still to read. */
static enum peer_parse
resp_parse(struct peer_resp_reply *r, const char *buf, size_t len, size_t *used)
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
            return PEER_NEED;
        pos = (size_t)(e + 2 - buf);
        if (*b == ':' || *b == '$' || *b == '*')
            n = parse_ll(b + 1, e);
        else if (*b == '+' || *b == '-')
            n = e - p;
        else
            return PEER_ERR;
        if (*b == '$' && n >= 0) {
            p = buf + pos;
            if (pos + (size_t)n + 2 > len)
                return PEER_NEED;
            pos += (size_t)n + 2;
        }
        if (*b == '*' && n > 0)
            need += n;
        need--;
        if (resp_push(r, *b, n, p))
            return PEER_ERR;
    }
    *used = pos;
    return PEER_OK;
}

/* Append the header of a command of argc arguments; resp_arg() appends each argument. */
static void
resp_head(struct peer_conn *c, uint64_t argc)
{
    char *d = peer_net_out_space(c, 24);
    size_t k;

    if (!d)
        return;
    d[0] = '*';
    k = 1 + put_u64(d + 1, argc);
    d[k] = '\r';
    d[k + 1] = '\n';
    c->olen += k + 2;
}

static void
resp_arg(struct peer_conn *c, const char *p, size_t len)
{
    char *d = peer_net_out_space(c, len + 24);
    size_t k;

    if (!d)
        return;
    d[0] = '$';
    k = 1 + put_u64(d + 1, len);
    d[k] = '\r';
    d[k + 1] = '\n';
    memcpy(d + k + 2, p, len);
    d[k + 2 + len] = '\r';
    d[k + 3 + len] = '\n';
    c->olen += k + 4 + len;
}

/* Append a command from argc arguments (len -1: NUL-terminated). */
static void
resp_cmd(struct peer_conn *c, int argc, const char *const *argv, const long *lens)
{
    resp_head(c, (uint64_t)argc);
    for (int i = 0; i < argc; i++)
        resp_arg(c, argv[i], lens[i] < 0 ? strlen(argv[i]) : (size_t)lens[i]);
}

/* Wait for the reply at the front of the input (setup only); 0, or -1 on an error reply. */
static int
redis_wait(struct peer_session *s, const char *what)
{
    int64_t deadline = peer_net_now_ns() + SETUP_NS;
    size_t used;
    enum peer_parse r;

    while ((r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos, &used)) ==
           PEER_NEED)
        if (sync_step(s, deadline))
            return -1;
    if (r == PEER_ERR || s->rr.t[0].type == '-') {
        peer_net_set_err(&s->c, "%s: %.*s", what, r == PEER_ERR ? 9 : (int)s->rr.t[0].n,
                         r == PEER_ERR ? "bad reply" : s->rr.t[0].p);
        return -1;
    }
    s->c.ipos += used;
    return 0;
}

/* Send a command and wait for its reply (setup only); 0, or -1 on an error reply. */
static int
redis_call(struct peer_session *s, int argc, const char *const *argv)
{
    long lens[8] = {-1, -1, -1, -1, -1, -1, -1, -1};

    resp_cmd(&s->c, argc, argv, lens);
    return redis_wait(s, argv[0]);
}

/* The name of list i in d (REDIS_KEY_MAX bytes): the queue itself, or "queue:i" when the
 * run spreads over several lists; returns its length. */
static size_t
redis_key(const struct peer_session *s, uint32_t i, char *d)
{
    size_t k = strlen(s->o->queue);

    memcpy(d, s->o->queue, k);
    if (s->o->spread <= 1)
        return k;
    d[k] = ':';
    return k + 1 + put_u64(d + k + 1, i);
}

/* Messages list i holds when the producer spread o->n over o->spread lists round-robin. */
static uint64_t
redis_share(const struct peer_opts *o, uint32_t i)
{
    return o->n / o->spread + (i < o->n % o->spread);
}

static int
ring_push(struct peer_session *s, uint32_t count, enum req_kind kind)
{
    if (s->ring_len == s->ring_cap) {
        peer_net_set_err(&s->c, "more than %u requests in flight", s->ring_cap);
        return -1;
    }
    s->ring[(s->ring_head + s->ring_len++) % s->ring_cap] = count | (uint32_t)kind << 24;
    return 0;
}

static uint32_t
ring_pop(struct peer_session *s)
{
    uint32_t req = s->ring[s->ring_head];

    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    s->ring_len--;
    return req;
}

/* Delete the o->spread lists of a spread run, DEL_KEYS to a command, all in flight at once
 * (setup: 100,000 lists are 100 commands). */
static int
redis_del_spread(struct peer_session *s)
{
    uint32_t cmds = 0;
    char key[REDIS_KEY_MAX];

    for (uint32_t i = 0; i < s->o->spread; i += DEL_KEYS) {
        uint32_t k = s->o->spread - i < DEL_KEYS ? s->o->spread - i : DEL_KEYS;
        resp_head(&s->c, k + 1);
        resp_arg(&s->c, "DEL", 3);
        for (uint32_t j = 0; j < k; j++)
            resp_arg(&s->c, key, redis_key(s, i + j, key));
        cmds++;
    }
    while (cmds-- > 0)
        if (redis_wait(s, "DEL"))
            return -1;
    return 0;
}

static int
redis_setup(struct peer_session *s, int consumer, int fresh)
{
    const char *del[] = {"DEL", s->o->queue};
    const char *grp[] = {"XGROUP", "CREATE", s->o->queue, "g", "0", "MKSTREAM"};

    (void)consumer;
    /* requests are at most one per message of the window, and a consumer adds at most one
     * XACK per request */
    s->ring_cap = 2 * s->o->depth + 8;
    s->ring = calloc(s->ring_cap, sizeof(*s->ring));
    if (!s->ring) {
        peer_net_set_err(&s->c, "out of memory");
        return -1;
    }
    if (fresh && (s->o->spread > 1 ? redis_del_spread(s) : redis_call(s, 2, del)))
        return -1;
    if (fresh && strcmp(s->t->name, "redis-stream") == 0 && redis_call(s, 6, grp))
        return -1;
    return 0;
}

/* One value of an LPUSH. With o->push_values > 1 the first value of a group opens an LPUSH
 * of that many values (fewer for the last group: o->n in all) and the next ones fill it; a
 * group may wait for window room half-written, which is safe because push_values <= depth.
 * With o->spread > 1 (push_values 1) each message goes to the next list. */
static void
redis_list_put(struct peer_session *s, const char *p, size_t len)
{
    const struct peer_opts *o = s->o;

    if (s->push_left == 0) {
        char key[REDIS_KEY_MAX];
        uint64_t left = o->n - s->puts;
        uint32_t k = left < o->push_values ? (uint32_t)left : o->push_values;
        if (ring_push(s, k, RK_PUSH)) {
            s->c.oom = 1; /* stops the run at the next peer_net_io(); the error text is set */
            return;
        }
        resp_head(&s->c, (uint64_t)k + 2);
        resp_arg(&s->c, "LPUSH", 5);
        resp_arg(&s->c, key, redis_key(s, s->key_at, key));
        s->push_left = k;
        if (o->spread > 1)
            s->key_at = (s->key_at + 1) % o->spread;
    }
    resp_arg(&s->c, p, len);
    s->push_left--;
    s->puts++;
}

static void
redis_stream_put(struct peer_session *s, const char *p, size_t len)
{
    const char *argv[] = {"XADD", s->o->queue, "*", "d", p};
    long lens[] = {4, -1, 1, 1, (long)len};

    resp_cmd(&s->c, 5, argv, lens);
}

static enum peer_parse
redis_put_reply(struct peer_session *s, uint32_t *confirmed)
{
    size_t used;
    enum peer_parse r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos, &used);

    if (r == PEER_OK && s->rr.t[0].type == '-') {
        peer_net_set_err(&s->c, "publish: %.*s", (int)s->rr.t[0].n, s->rr.t[0].p);
        return PEER_ERR;
    }
    if (r == PEER_ERR)
        peer_net_set_err(&s->c, "publish: malformed reply");
    if (r != PEER_OK)
        return r;
    s->c.ipos += used;
    *confirmed = 1; /* an XADD */
    if (s->t->put == redis_list_put) {
        if (s->ring_len == 0 || s->rr.t[0].type != ':') {
            peer_net_set_err(&s->c, "publish: a reply no LPUSH asked for");
            return PEER_ERR;
        }
        *confirmed = ring_pop(s) & 0xffffff;
    }
    return PEER_OK;
}

/* Pop up to 'want' (at most o->batch, the caller's bound): RPOP / BRPOP when the batch is 1,
 * RPOP key COUNT (not blocking) or BLMPOP ... COUNT (blocking) otherwise. A spread run asks
 * each list in turn for what it holds, so a short answer still means the lists ran dry. */
static uint32_t
redis_list_request(struct peer_session *s, uint32_t want, int block)
{
    const struct peer_opts *o = s->o;
    char key[REDIS_KEY_MAX];
    char cnt[24];
    char tmo[24];
    uint32_t k = want;
    enum req_kind kind = o->batch > 1 ? (block ? RK_BLMPOP : RK_RPOPN)
                                      : (block ? RK_BRPOP : RK_RPOP);
    size_t kl = redis_key(s, s->key_at, key);
    const char *rpop[] = {"RPOP", key, cnt};
    const char *brpop[] = {"BRPOP", key, tmo};
    const char *blmpop[] = {"BLMPOP", tmo, "1", key, "RIGHT", "COUNT", cnt};
    long lens[] = {-1, -1, -1, -1, -1, -1, -1};

    key[kl] = '\0';
    if (o->spread > 1 && k > redis_share(o, s->key_at) - s->key_asked)
        k = (uint32_t)(redis_share(o, s->key_at) - s->key_asked);
    if (k == 0 || ring_push(s, k, kind))
        return 0;
    if (o->spread > 1 && (s->key_asked += k) == redis_share(o, s->key_at)) {
        s->key_at = (s->key_at + 1) % o->spread;
        s->key_asked = 0;
    }
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
redis_stream_request(struct peer_session *s, uint32_t want, int block)
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
redis_locate(struct peer_session *s)
{
    const struct peer_resp_tok *t = s->rr.t;
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
    case RK_XREAD: /* [[key, [[id, [f, v]], ...]]] */
        if (t[0].type != '*' || nt < 4 || t[3].type != '*')
            return -1;
        s->first = 4;
        s->nent = (size_t)t[3].n;
        return nt == 4 + 5 * s->nent ? 0 : -1;
    default:
        return -1;
    }
}

/* Start handing out the reply at the front of the input; an XACK reply becomes PEER_EV_ACKED
 * for as many messages as it named, which it must have settled all. */
static enum peer_parse
redis_begin_reply(struct peer_session *s, struct peer_event *ev)
{
    const struct peer_resp_tok *t0;
    uint32_t req;
    enum peer_parse r = resp_parse(&s->rr, s->c.in + s->c.ipos, s->c.ilen - s->c.ipos,
                              &s->reply_used);

    if (r != PEER_OK) {
        if (r == PEER_ERR)
            peer_net_set_err(&s->c, "malformed reply");
        return r;
    }
    t0 = &s->rr.t[0];
    if (t0->type == '-') {
        peer_net_set_err(&s->c, "consume: %.*s", (int)t0->n, t0->p);
        return PEER_ERR;
    }
    if (s->ring_len == 0) {
        peer_net_set_err(&s->c, "reply without a request");
        return PEER_ERR;
    }
    req = ring_pop(s);
    s->kind = (int)(req >> 24);
    if (s->kind == RK_XACK) {
        if (t0->type != ':' || t0->n != (long long)(req & 0xffffff)) {
            peer_net_set_err(&s->c, "XACK of %u entries settled %lld", req & 0xffffff,
                             t0->type == ':' ? t0->n : -1);
            return PEER_ERR;
        }
        s->c.ipos += s->reply_used;
        ev->type = PEER_EV_ACKED;
        ev->count = req & 0xffffff;
        return PEER_OK;
    }
    if (redis_locate(s) || s->nent > (req & 0xffffff)) {
        peer_net_set_err(&s->c, "unexpected reply shape (%zu tokens)", s->rr.nt);
        return PEER_ERR;
    }
    s->unfilled = (req & 0xffffff) - (uint32_t)s->nent;
    s->in_reply = 1;
    s->cur = 0;
    return PEER_NEED; /* caller goes on to hand out entries */
}

/* Settle every entry of the XREADGROUP reply just handed out with one XACK naming their
 * ids, which are still in the input buffer: one command and one reply per batch, as a
 * Streams consumer does, instead of one per entry. */
static int
redis_stream_ack_reply(struct peer_session *s)
{
    const struct peer_resp_tok *t = &s->rr.t[s->first];

    if (ring_push(s, (uint32_t)s->nent, RK_XACK))
        return -1;
    resp_head(&s->c, 3 + s->nent);
    resp_arg(&s->c, "XACK", 4);
    resp_arg(&s->c, s->o->queue, strlen(s->o->queue));
    resp_arg(&s->c, "g", 1);
    for (size_t i = 0; i < s->nent; i++)
        resp_arg(&s->c, t[5 * i + 1].p, (size_t)t[5 * i + 1].n);
    return 0;
}

static enum peer_parse
redis_next_event(struct peer_session *s, struct peer_event *ev)
{
    if (!s->in_reply) {
        enum peer_parse r = redis_begin_reply(s, ev);
        if (r != PEER_NEED || !s->in_reply)
            return r;
    }
    if (s->cur < s->nent) {
        const struct peer_resp_tok *t = &s->rr.t[s->first];
        ev->type = PEER_EV_MSG;
        if (s->kind == RK_XREAD) {
            t += 5 * s->cur;
            if (t[0].n != 2 || t[1].type != '$' || t[2].n != 2 || t[4].type != '$') {
                peer_net_set_err(&s->c, "stream entry with an unexpected shape");
                return PEER_ERR;
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
        return PEER_OK;
    }
    if (s->kind == RK_XREAD && s->nent > 0 && redis_stream_ack_reply(s))
        return PEER_ERR;
    s->in_reply = 0;
    s->c.ipos += s->reply_used;
    ev->type = PEER_EV_END;
    ev->unfilled = s->unfilled;
    return PEER_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* beanstalkd                                                                                */

/* Send a command line and check the reply line starts with 'expect' (setup only). */
static int
bs_call(struct peer_session *s, const char *cmd, const char *expect)
{
    int64_t deadline = peer_net_now_ns() + SETUP_NS;
    const char *l;
    size_t len;

    peer_net_out_str(&s->c, cmd);
    while (!(l = peer_net_line_at(&s->c, &len)))
        if (sync_step(s, deadline))
            return -1;
    if (len < strlen(expect) || memcmp(l, expect, strlen(expect)) != 0) {
        peer_net_set_err(&s->c, "%.*s: %.*s", (int)strcspn(cmd, "\r"), cmd, (int)len, l);
        return -1;
    }
    peer_net_skip_line(&s->c, l);
    return 0;
}

static int
bs_setup(struct peer_session *s, int consumer, int fresh)
{
    char cmd[300];

    if (strlen(s->o->queue) > 200) {
        peer_net_set_err(&s->c, "tube name too long");
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
bs_put(struct peer_session *s, const char *p, size_t len)
{
    char *d = peer_net_out_space(&s->c, len + 48);
    char *q = d;

    if (!d)
        return;
    memcpy(q, "put 0 0 120 ", 12);
    q += 12;
    s->c.olen += (size_t)(put_sized(q, p, len) - d);
}

/* Consume the line at the front; the error text is kept when it is not 'ok_prefix'. */
static enum peer_parse
bs_line(struct peer_session *s, const char *ok_prefix, const char **l, size_t *len)
{
    size_t k = strlen(ok_prefix);

    *l = peer_net_line_at(&s->c, len);
    if (!*l)
        return PEER_NEED;
    if (*len < k || memcmp(*l, ok_prefix, k) != 0) {
        peer_net_set_err(&s->c, "beanstalkd: %.*s", (int)*len, *l);
        return PEER_ERR;
    }
    return PEER_OK;
}

static enum peer_parse
bs_put_reply(struct peer_session *s, uint32_t *confirmed)
{
    const char *l;
    size_t len;
    enum peer_parse r = bs_line(s, "INSERTED ", &l, &len);

    if (r == PEER_OK)
        peer_net_skip_line(&s->c, l);
    *confirmed = 1;
    return r;
}

static uint32_t
bs_request(struct peer_session *s, uint32_t want, int block)
{
    peer_net_out_str(&s->c, block ? "reserve-with-timeout 1\r\n" : "reserve-with-timeout 0\r\n");
    return 1;
}

static enum peer_parse
bs_next_event(struct peer_session *s, struct peer_event *ev)
{
    size_t len;
    const char *l = peer_net_line_at(&s->c, &len);
    size_t lb;

    if (!l)
        return PEER_NEED;
    lb = peer_net_line_bytes(&s->c, l);
    if (len >= 9 && memcmp(l, "RESERVED ", 9) == 0) {
        const char *id = l + 9;
        const char *sp = memchr(id, ' ', len - 9);
        long long bytes = sp ? parse_ll(sp + 1, l + len) : -1;
        if (bytes < 0) {
            peer_net_set_err(&s->c, "beanstalkd: %.*s", (int)len, l);
            return PEER_ERR;
        }
        if (s->c.ipos + lb + (size_t)bytes + 2 > s->c.ilen)
            return PEER_NEED;
        *ev = (struct peer_event){PEER_EV_MSG, l + lb, (size_t)bytes, id, (size_t)(sp - id), 0, 0};
        s->c.ipos += lb + (size_t)bytes + 2;
        return PEER_OK;
    }
    s->c.ipos += lb;
    if (len == 7 && memcmp(l, "DELETED", 7) == 0) {
        ev->type = PEER_EV_ACKED;
        ev->count = 1;
        return PEER_OK;
    }
    if ((len == 9 && memcmp(l, "TIMED_OUT", 9) == 0) ||
        (len == 13 && memcmp(l, "DEADLINE_SOON", 13) == 0)) {
        ev->type = PEER_EV_END;
        ev->unfilled = 1;
        return PEER_OK;
    }
    peer_net_set_err(&s->c, "beanstalkd: %.*s", (int)len, l);
    return PEER_ERR;
}

static void
bs_ack(struct peer_session *s, const struct peer_event *ev)
{
    char *d = peer_net_out_space(&s->c, ev->acklen + 10);

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
static enum peer_parse
nats_decode(struct peer_session *s, const char *l, size_t len, size_t lb,
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
        peer_net_set_err(&s->c, "nats: bad line %.*s", (int)len, l);
        return PEER_ERR;
    }
    if (s->c.ipos + lb + (size_t)total + 2 > s->c.ilen)
        return PEER_NEED;
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
    return PEER_OK;
}

/* Parse protocol messages at the front of the input until a MSG or HMSG, answering PING
 * and skipping INFO, PONG and +OK on the way. */
static enum peer_parse
nats_next(struct peer_session *s, struct nats_msg *m)
{
    for (;;) {
        size_t len;
        const char *l = peer_net_line_at(&s->c, &len);
        size_t lb;
        if (!l)
            return PEER_NEED;
        lb = peer_net_line_bytes(&s->c, l);
        if ((len > 4 && memcmp(l, "MSG ", 4) == 0) || (len > 5 && memcmp(l, "HMSG ", 5) == 0))
            return nats_decode(s, l, len, lb, m);
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            peer_net_set_err(&s->c, "nats: %.*s", (int)len, l);
            return PEER_ERR;
        }
        s->c.ipos += lb;
        if (len == 4 && memcmp(l, "PING", 4) == 0)
            peer_net_out_str(&s->c, "PONG\r\n");
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
nats_api(struct peer_session *s, const char *subject, const char *json, int quiet)
{
    int64_t deadline = peer_net_now_ns() + SETUP_NS;
    struct nats_msg m;
    enum peer_parse r;

    peer_net_out_fmt(&s->c, "PUB %s %s.api %zu\r\n%s\r\n", subject, s->inbox, strlen(json), json);
    for (;;) {
        while ((r = nats_next(s, &m)) == PEER_NEED)
            if (sync_step(s, deadline))
                return -1;
        if (r == PEER_ERR)
            return -1;
        if (m.sid == NATS_SID_API)
            break;
    }
    if (nats_status(&m) >= 0 || contains(m.data, m.len, "\"error\"")) {
        if (!quiet)
            peer_net_set_err(&s->c, "%s: %.*s", subject, (int)(m.len ? m.len : m.hdrlen),
                             m.len ? m.data : m.hdr);
        return -1;
    }
    return 0;
}

/* Delete and create the stream and its durable pull consumer. */
static int
nats_create(struct peer_session *s)
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
nats_setup(struct peer_session *s, int consumer, int fresh)
{
    int64_t deadline = peer_net_now_ns() + SETUP_NS;
    char subj[160];
    size_t i;
    size_t len;
    const char *l;

    for (i = 0; i < sizeof(s->stream) - 1 && s->o->queue[i]; i++) {
        char ch = s->o->queue[i];
        s->stream[i] = (ch == '.' || ch == '*' || ch == '>' || ch == ' ') ? '_' : ch;
    }
    s->stream[i] = '\0';
    snprintf(s->subject, sizeof(s->subject), "pb.%s", s->stream);
    /* a connection's own inbox: the pairs of one run share a process and must not share
     * an inbox, where each would take the other's API replies */
    snprintf(s->inbox, sizeof(s->inbox), "_INBOX.pb%ld%c%u", (long)getpid(), consumer ? 'c' : 'p',
             atomic_fetch_add(&inbox_seq, 1));
    peer_net_out_str(&s->c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"peerbench\","
                            "\"lang\":\"c\",\"version\":\"0.1\",\"protocol\":1,\"headers\":true,"
                            "\"no_responders\":true}\r\nPING\r\n");
    for (;;) { /* INFO, then PONG */
        while (!(l = peer_net_line_at(&s->c, &len)))
            if (sync_step(s, deadline))
                return -1;
        peer_net_skip_line(&s->c, l);
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            peer_net_set_err(&s->c, "nats: %.*s", (int)len, l);
            return -1;
        }
        if (len == 4 && memcmp(l, "PONG", 4) == 0)
            break;
    }
    peer_net_out_fmt(&s->c, "SUB %s.api %d\r\nSUB %s.%s %d\r\n", s->inbox, NATS_SID_API,
                     s->inbox, consumer ? "pull.*" : "ack",
                     consumer ? NATS_SID_PULL : NATS_SID_ACK);
    if (fresh)
        return nats_create(s);
    /* a pull for a consumer that does not exist is dropped without an answer: check first */
    snprintf(subj, sizeof(subj), "$JS.API.CONSUMER.INFO.%s.C", s->stream);
    return consumer ? nats_api(s, subj, "", 0) : 0;
}

static void
nats_put(struct peer_session *s, const char *p, size_t len)
{
    size_t sl = strlen(s->subject);
    size_t il = strlen(s->inbox);
    char *d = peer_net_out_space(&s->c, sl + il + len + 64);
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
    s->c.olen += (size_t)(put_sized(q, p, len) - d);
}

static enum peer_parse
nats_put_reply(struct peer_session *s, uint32_t *confirmed)
{
    struct nats_msg m;
    enum peer_parse r = nats_next(s, &m);

    *confirmed = 1;
    if (r != PEER_OK)
        return r;
    if (m.sid != NATS_SID_ACK || nats_status(&m) >= 0 ||
        contains(m.data, m.len, "\"error\"")) {
        peer_net_set_err(&s->c, "publish: %.*s", (int)(m.len ? m.len : m.hdrlen),
                         m.len ? m.data : m.hdr);
        return PEER_ERR;
    }
    return PEER_OK;
}

static uint32_t
nats_request(struct peer_session *s, uint32_t want, int block)
{
    struct peer_nats_req *q = NULL;
    char json[96];

    for (int i = 0; i < PEER_NATS_REQS && !q; i++)
        if (!s->reqs[i].open)
            q = &s->reqs[i];
    if (!q)
        return 0;
    *q = (struct peer_nats_req){++s->next_req, want, 0, 1};
    if (block)
        snprintf(json, sizeof(json), "{\"batch\":%u,\"expires\":%lld}", want,
                 (long long)BLOCK_S * 1000000000);
    else
        snprintf(json, sizeof(json), "{\"batch\":%u,\"no_wait\":true}", want);
    peer_net_out_fmt(&s->c, "PUB $JS.API.CONSUMER.MSG.NEXT.%s.C %s.pull.%" PRIu64 " %zu\r\n%s\r\n",
                     s->stream, s->inbox, q->no, strlen(json), json);
    return want;
}

/* The oldest open pull request (the server serves waiting requests in order). */
static struct peer_nats_req *
nats_oldest(struct peer_session *s)
{
    struct peer_nats_req *best = NULL;

    for (int i = 0; i < PEER_NATS_REQS; i++)
        if (s->reqs[i].open && (!best || s->reqs[i].no < best->no))
            best = &s->reqs[i];
    return best;
}

/* A status on a pull inbox ends that request: PEER_EV_END with what it did not deliver. */
static int
nats_pull_status(struct peer_session *s, const struct nats_msg *m, struct peer_event *ev)
{
    const char *dot = m->subj + m->subjlen;
    uint64_t no;
    int code = nats_status(m);

    while (dot > m->subj && dot[-1] != '.')
        dot--;
    no = (uint64_t)parse_ll(dot, m->subj + m->subjlen);
    if (code == 100)
        return 0; /* heartbeat */
    for (int i = 0; i < PEER_NATS_REQS; i++) {
        struct peer_nats_req *q = &s->reqs[i];
        if (q->open && q->no == no) {
            q->open = 0;
            ev->type = PEER_EV_END;
            ev->unfilled = q->asked - q->got;
            return 1;
        }
    }
    return 0; /* for a request that had already delivered everything */
}

static enum peer_parse
nats_next_event(struct peer_session *s, struct peer_event *ev)
{
    for (;;) {
        struct nats_msg m;
        struct peer_nats_req *q;
        enum peer_parse r = nats_next(s, &m);
        if (r != PEER_OK)
            return r;
        if (m.sid != NATS_SID_PULL) {
            peer_net_set_err(&s->c, "nats: message on unexpected subscription %" PRIu64, m.sid);
            return PEER_ERR;
        }
        if (nats_status(&m) >= 0) {
            if (nats_pull_status(s, &m, ev))
                return PEER_OK;
            continue;
        }
        q = nats_oldest(s);
        if (q && ++q->got == q->asked)
            q->open = 0;
        *ev = (struct peer_event){PEER_EV_MSG, m.data, m.len, m.reply, m.replylen, 0, 0};
        return PEER_OK;
    }
}

static void
nats_ack(struct peer_session *s, const struct peer_event *ev)
{
    char *d = peer_net_out_space(&s->c, ev->acklen + 16);

    if (!d || !ev->ack)
        return;
    memcpy(d, "PUB ", 4);
    memcpy(d + 4, ev->ack, ev->acklen);
    memcpy(d + 4 + ev->acklen, " 0\r\n\r\n", 6);
    s->c.olen += ev->acklen + 10;
}

/* PING and wait for PONG: every ack sent before has been processed. */
static int
nats_finish(struct peer_session *s)
{
    int64_t deadline = peer_net_now_ns() + SETUP_NS;
    size_t len;
    const char *l;

    peer_net_out_str(&s->c, "PING\r\n");
    for (;;) {
        while (!(l = peer_net_line_at(&s->c, &len)))
            if (sync_step(s, deadline))
                return -1;
        peer_net_skip_line(&s->c, l);
        if (len == 4 && memcmp(l, "PONG", 4) == 0)
            return 0;
        if (len >= 4 && memcmp(l, "-ERR", 4) == 0) {
            peer_net_set_err(&s->c, "nats: %.*s", (int)len, l);
            return -1;
        }
    }
}

static const struct peer_target targets[] = {
    {"redis-list", 1, 0, redis_setup, redis_list_put, redis_put_reply, redis_list_request,
     redis_next_event, NULL, NULL},
    {"redis-stream", 1, 1, redis_setup, redis_stream_put, redis_put_reply, redis_stream_request,
     redis_next_event, NULL, NULL},
    {"beanstalkd", 0, 1, bs_setup, bs_put, bs_put_reply, bs_request, bs_next_event, bs_ack,
     NULL},
    {"nats-js", 1, 0, nats_setup, nats_put, nats_put_reply, nats_request, nats_next_event,
     nats_ack, nats_finish},
};

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                  */

const struct peer_target *
peer_proto_find(const char *name)
{
    const struct peer_target *t = NULL;

    for (size_t i = 0; name && i < sizeof(targets) / sizeof(targets[0]); i++)
        if (strcmp(name, targets[i].name) == 0)
            t = &targets[i];
    return t;
}

int
peer_proto_open(struct peer_session *s, const struct peer_target *t,
                const struct peer_opts *o, atomic_int *stop, int consumer, int fresh)
{
    memset(s, 0, sizeof(*s));
    s->t = t;
    s->o = o;
    s->stop = stop;
    s->deadline_ns = peer_net_now_ns() + (int64_t)(o->timeout_s * 1e9);
    if (peer_net_open(&s->c, o->port) || t->setup(s, consumer, fresh))
        return -1;
    return 0;
}

void
peer_proto_close(struct peer_session *s)
{
    peer_net_close(&s->c);
    free(s->rr.t);
    free(s->ring);
}
