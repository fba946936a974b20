/* SPDX-License-Identifier: MIT */
/* Work-queue semantics on the wire (docs/protocol.md 6.8-6.20, 7.3-7.9): dead letters with
 * their reasons, TERM, TTL, delayed and prioritised publishes, de-duplication, FETCH from
 * several queues, SUBSCRIBE with credit, PEEK skip, and the errors of their options.
 *
 * Each case drives a real slabmqd over raw frames (tests/harness/raw.h), so the bytes the
 * spec describes are what is checked, independently of the client library. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raw.h"

/* A message of a FETCH, PEEK or DELIVER result, info included. */
struct msg {
    uint64_t id;
    uint64_t deliveries;
    char payload[64];
    char reason[32];   /* "" unless a dead letter */
    char from[64];     /* source queue of a dead letter */
    uint64_t dl_deliveries;
};

static void
copy_str(char *dst, size_t cap, const char *s, uint32_t n)
{
    if (n >= cap)
        n = (uint32_t)cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Parse [message, ...] at p->r into out (cap entries). Returns the count. */
static uint32_t
read_msgs(struct rep *p, struct msg *out, uint32_t cap)
{
    uint32_t n;

    T_ASSERT(smq_mpr_array(&p->r, &n) == 0);
    T_ASSERT(n <= cap);
    for (uint32_t i = 0; i < n; i++) {
        struct msg *m = &out[i];
        uint32_t k;
        const uint8_t *data;
        uint32_t len;
        memset(m, 0, sizeof(*m));
        T_ASSERT(smq_mpr_array(&p->r, &k) == 0 && (k == 3 || k == 4));
        T_ASSERT(smq_mpr_uint(&p->r, &m->id) == 0);
        T_ASSERT(smq_mpr_uint(&p->r, &m->deliveries) == 0);
        T_ASSERT(smq_mpr_bin(&p->r, &data, &len) == 0);
        copy_str(m->payload, sizeof(m->payload), (const char *)data, len);
        if (k == 4) {
            uint32_t pairs;
            T_ASSERT(smq_mpr_map(&p->r, &pairs) == 0 && pairs == 3);
            for (uint32_t j = 0; j < pairs; j++) {
                const char *key;
                const char *v;
                uint32_t klen;
                uint32_t vlen;
                T_ASSERT(smq_mpr_str(&p->r, &key, &klen) == 0);
                if (klen == 10 && memcmp(key, "deliveries", 10) == 0) {
                    T_ASSERT(smq_mpr_uint(&p->r, &m->dl_deliveries) == 0);
                    continue;
                }
                T_ASSERT(smq_mpr_str(&p->r, &v, &vlen) == 0);
                if (klen == 6 && memcmp(key, "reason", 6) == 0)
                    copy_str(m->reason, sizeof(m->reason), v, vlen);
                else if (klen == 5 && memcmp(key, "queue", 5) == 0)
                    copy_str(m->from, sizeof(m->from), v, vlen);
                else
                    T_ASSERT(!"unknown info key");
            }
        }
    }
    return n;
}

/* PUBLISH with an options map built by the caller after this call (nopts pairs). */
static void
pub_begin(struct mb *m, uint64_t rid, const char *q, const char *payload, uint32_t nopts)
{
    mb_req(m, SMQ_OP_PUBLISH, rid, 3);
    mb_str(m, q);
    mb_bin(m, payload, strlen(payload));
    mb_map(m, nopts);
}

/* Send a PUBLISH with options already built; returns the id, *dup the duplicate flag. */
static uint64_t
pub_end(int fd, struct mb *m, uint64_t rid, int *dup)
{
    struct rep p;
    uint64_t id;
    int d;

    send_mb(fd, m);
    EXPECT_OK(fd, SMQ_OP_PUBLISH, rid, &p);
    T_EQ_U64(p.n, 6);
    T_ASSERT(smq_mpr_uint(&p.r, &id) == 0);
    T_ASSERT(smq_mpr_bool(&p.r, &d) == 0);
    {
        const char *lvl;
        uint32_t llen;
        T_ASSERT(smq_mpr_str(&p.r, &lvl, &llen) == 0); /* no durability: "memory" */
        T_ASSERT(llen == 6 && memcmp(lvl, "memory", 6) == 0);
    }
    if (dup)
        *dup = d;
    return id;
}

/* A plain PUBLISH; returns the id. */
static uint64_t
pub(int fd, uint64_t rid, const char *q, const char *payload)
{
    struct mb m = {0};
    struct rep p;
    uint64_t id;

    mb_req(&m, SMQ_OP_PUBLISH, rid, 2);
    mb_str(&m, q);
    mb_bin(&m, payload, strlen(payload));
    send_mb(fd, &m);
    mb_free(&m);
    EXPECT_OK(fd, SMQ_OP_PUBLISH, rid, &p);
    T_ASSERT(smq_mpr_uint(&p.r, &id) == 0);
    return id;
}

/* FETCH [q, max, wait_ms]; the messages into out. */
static uint32_t
fetch(int fd, uint64_t rid, const char *q, uint32_t max, uint32_t wait_ms, struct msg *out,
      uint32_t cap)
{
    struct mb m = {0};
    struct rep p;

    mb_req(&m, SMQ_OP_FETCH, rid, 3);
    mb_str(&m, q);
    mb_uint(&m, max);
    mb_uint(&m, wait_ms);
    send_mb(fd, &m);
    mb_free(&m);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), (int)wait_ms + REPLY_MS, &p);
    T_EQ_U64(p.op, SMQ_OP_FETCH);
    T_EQ_U64(p.rid, rid);
    T_EQ_U64(p.status, 0);
    return read_msgs(&p, out, cap);
}

/* PEEK [q, max, skip]. */
static uint32_t
peek(int fd, uint64_t rid, const char *q, uint32_t max, uint64_t skip, struct msg *out,
     uint32_t cap)
{
    struct mb m = {0};
    struct rep p;

    mb_req(&m, SMQ_OP_PEEK, rid, 3);
    mb_str(&m, q);
    mb_uint(&m, max);
    mb_uint(&m, skip);
    send_mb(fd, &m);
    mb_free(&m);
    EXPECT_OK(fd, SMQ_OP_PEEK, rid, &p);
    return read_msgs(&p, out, cap);
}

/* ACK, NACK (delay), TERM or TOUCH of one id; expects success. */
static void
settle1(int fd, unsigned op, uint64_t rid, uint64_t id)
{
    struct mb m = {0};

    mb_req(&m, op, rid, 1);
    mb_arr(&m, 1);
    mb_uint(&m, id);
    send_mb(fd, &m);
    mb_free(&m);
    T_EQ_U64(EXPECT_COUNT(fd, op, rid), 1);
}

/* DECLARE q with the options map the caller appends (nopts pairs); sent by declare_end. */
static void
declare_begin(struct mb *m, uint64_t rid, const char *q, uint32_t nopts)
{
    mb_req(m, SMQ_OP_DECLARE, rid, 2);
    mb_str(m, q);
    mb_map(m, nopts);
}

static void
declare_end(int fd, struct mb *m, uint64_t rid)
{
    struct rep p;

    send_mb(fd, m);
    EXPECT_OK(fd, SMQ_OP_DECLARE, rid, &p);
}

/* ---------------------------------------------------------------------------------------- */
/* Dead letters                                                                              */

static void
test_delivery_limit_dead_letters(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[4];
    uint64_t rid = 10;
    uint64_t id;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    declare_begin(&m, ++rid, "jobs", 1);
    mb_str(&m, "max_deliveries");
    mb_uint(&m, 2);
    declare_end(fd, &m, rid);
    id = pub(fd, ++rid, "jobs", "poison");
    for (int i = 1; i <= 2; i++) {
        T_EQ_U64(fetch(fd, ++rid, "jobs", 10, 0, got, 4), 1);
        T_EQ_U64(got[0].id, id);
        T_EQ_U64(got[0].deliveries, (uint64_t)i);
        settle1(fd, SMQ_OP_NACK, ++rid, id);
    }
    /* the second NACK reached max_deliveries: the message is in jobs.dlq now */
    T_EQ_U64(fetch(fd, ++rid, "jobs", 10, 0, got, 4), 0);
    T_EQ_U64(STAT(c, "jobs", "dead_lettered"), 1);
    T_EQ_U64(STAT(c, "jobs", "delivery_limit"), 1);
    T_EQ_U64(STAT(c, "jobs", "bytes"), 0);
    T_EQ_U64(STAT(c, "jobs.dlq", "ready"), 1);
    T_EQ_U64(STAT(c, "jobs.dlq", "max_deliveries"), 0);
    T_EQ_U64(peek(fd, ++rid, "jobs.dlq", 10, 0, got, 4), 1);
    T_EQ_U64(got[0].id, id);
    T_EQ_U64(got[0].deliveries, 0);
    T_EQ_STR(got[0].payload, "poison");
    T_EQ_STR(got[0].reason, "delivery-limit");
    T_EQ_STR(got[0].from, "jobs");
    T_EQ_U64(got[0].dl_deliveries, 2);
    /* a dead letter is an ordinary message of its queue: fetched, acked */
    T_EQ_U64(fetch(fd, ++rid, "jobs.dlq", 10, 0, got, 4), 1);
    T_EQ_STR(got[0].reason, "delivery-limit");
    T_EQ_U64(got[0].deliveries, 1);
    settle1(fd, SMQ_OP_ACK, ++rid, id);
    T_EQ_U64(STAT(c, NULL, "messages"), 0);
    /* the default limit is 20, and the default dead-letter queue is the name + ".dlq" */
    declare_begin(&m, ++rid, "plain", 0);
    declare_end(fd, &m, rid);
    T_EQ_U64(STAT(c, "plain", "max_deliveries"), 20);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_term_and_dead_letter_targets(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[4];
    uint64_t rid = 10;
    uint64_t id;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    /* a named dead-letter queue */
    declare_begin(&m, ++rid, "orders", 1);
    mb_str(&m, "dead_letter");
    mb_str(&m, "graveyard");
    declare_end(fd, &m, rid);
    id = pub(fd, ++rid, "orders", "bad order");
    T_EQ_U64(fetch(fd, ++rid, "orders", 1, 0, got, 4), 1);
    settle1(fd, SMQ_OP_TERM, ++rid, id);
    T_EQ_U64(STAT(c, "orders", "terminated"), 1);
    T_EQ_U64(STAT(c, "orders", "dead_lettered"), 1);
    T_EQ_U64(peek(fd, ++rid, "graveyard", 10, 0, got, 4), 1);
    T_EQ_STR(got[0].reason, "rejected");
    T_EQ_STR(got[0].from, "orders");
    T_EQ_U64(got[0].dl_deliveries, 1);
    /* TERM of something not held: ERR_UNKNOWN_ID */
    mb_req(&m, SMQ_OP_TERM, ++rid, 1);
    mb_arr(&m, 1);
    mb_uint(&m, id);
    REQ_ERR(fd, &m, SMQ_OP_TERM, rid, SLABMQ_ERR_UNKNOWN_ID);
    /* no dead-letter queue: discarded and counted */
    declare_begin(&m, ++rid, "fire-and-forget", 1);
    mb_str(&m, "dead_letter");
    mb_str(&m, "");
    declare_end(fd, &m, rid);
    id = pub(fd, ++rid, "fire-and-forget", "x");
    T_EQ_U64(fetch(fd, ++rid, "fire-and-forget", 1, 0, got, 4), 1);
    settle1(fd, SMQ_OP_TERM, ++rid, id);
    T_EQ_U64(STAT(c, "fire-and-forget", "dead_discarded"), 1);
    T_EQ_U64(STAT(c, "fire-and-forget", "dead_lettered"), 0);
    T_EQ_U64(STAT(c, NULL, "queues"), 3); /* orders, graveyard, fire-and-forget */
    /* a 200-byte name ending in ".dlq" is its own default dead-letter queue (the name cut
     * to 196 bytes plus ".dlq"): it has none, its dead letters are discarded */
    {
        char longname[201];
        memset(longname, 'q', 196);
        memcpy(longname + 196, ".dlq", 5);
        id = pub(fd, ++rid, longname, "x");
        T_EQ_U64(fetch(fd, ++rid, longname, 1, 0, got, 4), 1);
        settle1(fd, SMQ_OP_TERM, ++rid, id);
        T_EQ_U64(STAT(c, longname, "dead_discarded"), 1);
        T_EQ_U64(STAT(c, longname, "ready"), 0);
    }
    /* a queue cannot dead-letter into itself; bad names are refused */
    declare_begin(&m, ++rid, "loop", 1);
    mb_str(&m, "dead_letter");
    mb_str(&m, "loop");
    REQ_ERR(fd, &m, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST);
    declare_begin(&m, ++rid, "loop", 1);
    mb_str(&m, "dead_letter");
    mb_str(&m, "bad name");
    REQ_ERR(fd, &m, SMQ_OP_DECLARE, rid, SLABMQ_ERR_BAD_REQUEST);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_overflow_dead_letter(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[8];
    uint64_t rid = 10;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    declare_begin(&m, ++rid, "capped", 2);
    mb_str(&m, "max_messages");
    mb_uint(&m, 2);
    mb_str(&m, "overflow");
    mb_str(&m, "dead-letter");
    declare_end(fd, &m, rid);
    pub(fd, ++rid, "capped", "m1");
    pub(fd, ++rid, "capped", "m2");
    pub(fd, ++rid, "capped", "m3");
    pub(fd, ++rid, "capped", "m4");
    T_EQ_U64(STAT(c, "capped", "ready"), 2);
    T_EQ_U64(STAT(c, "capped", "overflow_dead_letter"), 1);
    T_EQ_U64(STAT(c, "capped", "dropped"), 0);
    T_EQ_U64(STAT(c, "capped", "dead_lettered"), 2);
    T_EQ_U64(peek(fd, ++rid, "capped", 10, 0, got, 8), 2);
    T_EQ_STR(got[0].payload, "m3");
    T_EQ_STR(got[1].payload, "m4");
    T_EQ_U64(peek(fd, ++rid, "capped.dlq", 10, 0, got, 8), 2);
    T_EQ_STR(got[0].payload, "m1");
    T_EQ_STR(got[0].reason, "max-length");
    T_EQ_STR(got[1].payload, "m2");
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Time: TTL and delays                                                                      */

static void
test_ttl_expires_to_dead_letters(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[4];
    uint64_t rid = 10;
    uint64_t held;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    pub_begin(&m, ++rid, "ttl", "short-lived", 1);
    mb_str(&m, "ttl_ms");
    mb_uint(&m, 150);
    pub_end(fd, &m, rid, NULL);
    pub_begin(&m, ++rid, "ttl", "held", 1); /* in flight when its TTL passes */
    mb_str(&m, "ttl_ms");
    mb_uint(&m, 150);
    held = pub_end(fd, &m, rid, NULL);
    pub(fd, ++rid, "ttl", "forever");
    T_EQ_U64(fetch(fd, ++rid, "ttl", 2, 0, got, 4), 2); /* publish order */
    T_EQ_STR(got[0].payload, "short-lived");
    T_EQ_U64(got[1].id, held);
    settle1(fd, SMQ_OP_NACK, ++rid, got[0].id); /* ready again, its TTL still running */
    WAIT_STAT(c, "ttl", "expired", 1, 3000); /* the ready one expires on its own */
    T_EQ_U64(STAT(c, "ttl", "inflight"), 1); /* the held one is not taken away */
    t_sleep_ms(200);
    T_EQ_U64(STAT(c, "ttl", "expired"), 1);
    settle1(fd, SMQ_OP_NACK, ++rid, held); /* it comes back after its TTL: expired now */
    T_EQ_U64(STAT(c, "ttl", "expired"), 2);
    T_EQ_U64(STAT(c, "ttl", "ready"), 1);
    T_EQ_U64(peek(fd, ++rid, "ttl.dlq", 10, 0, got, 4), 2);
    T_EQ_STR(got[0].reason, "expired");
    T_EQ_STR(got[0].payload, "short-lived");
    T_EQ_STR(got[1].reason, "expired");
    T_EQ_STR(got[1].payload, "held");
    /* the queue's own TTL applies to publishes without one */
    declare_begin(&m, ++rid, "ttlq", 1);
    mb_str(&m, "ttl_ms");
    mb_uint(&m, 100);
    declare_end(fd, &m, rid);
    pub(fd, ++rid, "ttlq", "a");
    WAIT_STAT(c, "ttlq", "expired", 1, 3000);
    T_EQ_U64(STAT(c, "ttlq.dlq", "ready"), 1);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_delayed_publish(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[4];
    uint64_t rid = 10;
    int64_t t0;
    int64_t waited;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    t0 = t_now_ms();
    pub_begin(&m, ++rid, "later", "in 400 ms", 1);
    mb_str(&m, "delay_ms");
    mb_uint(&m, 400);
    pub_end(fd, &m, rid, NULL);
    pub_begin(&m, ++rid, "later", "in a year", 1);
    mb_str(&m, "delay_ms");
    mb_uint(&m, 365ull * 24 * 3600 * 1000); /* past the old 49-day cap */
    pub_end(fd, &m, rid, NULL);
    T_EQ_U64(STAT(c, "later", "delayed"), 2);
    T_EQ_U64(STAT(c, "later", "ready"), 0);
    T_ASSERT(STAT(c, "later", "next_due_ms") <= 400);
    T_EQ_U64(peek(fd, ++rid, "later", 10, 0, got, 4), 0);
    T_EQ_U64(fetch(fd, ++rid, "later", 10, 3000, got, 4), 1); /* woken at its time */
    waited = t_now_ms() - t0;
    T_EQ_STR(got[0].payload, "in 400 ms");
    T_EQ_U64(got[0].deliveries, 1);
    /* not before its time; the tolerance is loose for a loaded 2-core machine */
    T_ASSERT(waited >= 400);
    T_ASSERT(waited < 400 + 1000);
    T_EQ_U64(STAT(c, "later", "delayed"), 1);
    /* at_ms in the past is no delay */
    pub_begin(&m, ++rid, "now", "x", 1);
    mb_str(&m, "at_ms");
    mb_uint(&m, 1000);
    pub_end(fd, &m, rid, NULL);
    T_EQ_U64(STAT(c, "now", "ready"), 1);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Order, identity                                                                           */

static void
test_priority_order(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[8];
    static const struct {
        const char *payload;
        unsigned prio;
    } in[] = {{"a0", 0}, {"b5", 5}, {"c9", 9}, {"d5", 5}, {"e0", 0}, {"f1", 1}};
    static const char *want[] = {"c9", "b5", "d5", "f1", "a0", "e0"};
    uint64_t rid = 10;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        pub_begin(&m, ++rid, "prio", in[i].payload, 1);
        mb_str(&m, "priority");
        mb_uint(&m, in[i].prio);
        pub_end(fd, &m, rid, NULL);
    }
    T_EQ_U64(STAT(c, "prio", "priority_ready"), 4);
    T_EQ_U64(peek(fd, ++rid, "prio", 10, 0, got, 8), 6);
    for (int i = 0; i < 6; i++)
        T_EQ_STR(got[i].payload, want[i]);
    /* PEEK pages: skip 2, then 2 */
    T_EQ_U64(peek(fd, ++rid, "prio", 2, 2, got, 8), 2);
    T_EQ_STR(got[0].payload, "d5");
    T_EQ_STR(got[1].payload, "f1");
    T_EQ_U64(peek(fd, ++rid, "prio", 10, 5, got, 8), 1);
    T_EQ_STR(got[0].payload, "e0");
    T_EQ_U64(peek(fd, ++rid, "prio", 10, 6, got, 8), 0);
    /* delivery in the same order; a NACKed one goes back to its priority's FIFO */
    T_EQ_U64(fetch(fd, ++rid, "prio", 2, 0, got, 8), 2);
    T_EQ_STR(got[0].payload, "c9");
    settle1(fd, SMQ_OP_NACK, ++rid, got[1].id); /* b5 back */
    settle1(fd, SMQ_OP_ACK, ++rid, got[0].id);
    T_EQ_U64(fetch(fd, ++rid, "prio", 10, 0, got, 8), 5);
    T_EQ_STR(got[0].payload, "d5");
    T_EQ_STR(got[1].payload, "b5");
    T_EQ_STR(got[2].payload, "f1");
    T_EQ_STR(got[3].payload, "a0");
    T_EQ_STR(got[4].payload, "e0");
    /* priority 10 is out of range */
    pub_begin(&m, ++rid, "prio", "x", 1);
    mb_str(&m, "priority");
    mb_uint(&m, 10);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_BAD_REQUEST);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_dedup_window(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    uint64_t rid = 10;
    uint64_t first;
    uint64_t id;
    int dup;
    int fd;
    char pid[32];

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    pub_begin(&m, ++rid, "dd", "once", 1);
    mb_str(&m, "id");
    mb_str(&m, "order-17");
    first = pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 0);
    pub_begin(&m, ++rid, "dd", "once again", 1);
    mb_str(&m, "id");
    mb_str(&m, "order-17");
    id = pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 1);
    T_EQ_U64(id, first);
    T_EQ_U64(STAT(c, "dd", "ready"), 1);
    T_EQ_U64(STAT(c, "dd", "duplicates"), 1);
    T_ASSERT(STAT(c, "dd", "dedup_bytes") >= 1u << 20);
    /* a bin id is the same bytes as a str id */
    pub_begin(&m, ++rid, "dd", "bin", 1);
    mb_str(&m, "id");
    mb_bin(&m, "order-17", 8);
    T_EQ_U64(pub_end(fd, &m, rid, &dup), first);
    T_EQ_U64(dup, 1);
    /* a small window forgets the oldest ids: 1024 bytes hold 32 ids of 10 bytes (32 B each) */
    declare_begin(&m, ++rid, "small", 1);
    mb_str(&m, "dedup_window");
    mb_uint(&m, 1024);
    declare_end(fd, &m, rid);
    for (int i = 0; i < 32; i++) {
        snprintf(pid, sizeof(pid), "id-%07d", i);
        pub_begin(&m, ++rid, "small", "m", 1);
        mb_str(&m, "id");
        mb_str(&m, pid);
        pub_end(fd, &m, rid, &dup);
        T_EQ_U64(dup, 0);
    }
    pub_begin(&m, ++rid, "small", "m", 1); /* all 32 still remembered */
    mb_str(&m, "id");
    mb_str(&m, "id-0000000");
    pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 1);
    pub_begin(&m, ++rid, "small", "m", 1); /* a 33rd pushes out the oldest */
    mb_str(&m, "id");
    mb_str(&m, "id-0000032");
    pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 0);
    pub_begin(&m, ++rid, "small", "m", 1);
    mb_str(&m, "id");
    mb_str(&m, "id-0000000");
    pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 0); /* forgotten: beyond the window */
    pub_begin(&m, ++rid, "small", "m", 1);
    mb_str(&m, "id");
    mb_str(&m, "id-0000031");
    pub_end(fd, &m, rid, &dup);
    T_EQ_U64(dup, 1);
    /* ids are 1-128 bytes; batches cannot carry them */
    pub_begin(&m, ++rid, "dd", "x", 1);
    mb_str(&m, "id");
    mb_str(&m, "");
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_BAD_REQUEST);
    mb_req(&m, SMQ_OP_PUBLISH_BATCH, ++rid, 3);
    mb_str(&m, "dd");
    mb_arr(&m, 1);
    mb_bin(&m, "x", 1);
    mb_map(&m, 1);
    mb_str(&m, "id");
    mb_str(&m, "a");
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH_BATCH, rid, SLABMQ_ERR_BAD_REQUEST);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_batch_options_and_rollback(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct rep p;
    uint64_t rid = 10;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    mb_req(&m, SMQ_OP_PUBLISH_BATCH, ++rid, 3);
    mb_str(&m, "batch");
    mb_arr(&m, 3);
    mb_bin(&m, "a", 1);
    mb_bin(&m, "b", 1);
    mb_bin(&m, "c", 1);
    mb_map(&m, 2);
    mb_str(&m, "priority");
    mb_uint(&m, 3);
    mb_str(&m, "delay_ms");
    mb_uint(&m, 60000);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_PUBLISH_BATCH, rid, &p);
    T_EQ_U64(STAT(c, "batch", "delayed"), 3);
    T_EQ_U64(STAT(c, "batch", "published"), 3);
    /* unknown option: nothing stored */
    mb_req(&m, SMQ_OP_PUBLISH_BATCH, ++rid, 3);
    mb_str(&m, "batch");
    mb_arr(&m, 1);
    mb_bin(&m, "d", 1);
    mb_map(&m, 1);
    mb_str(&m, "colour");
    mb_str(&m, "blue");
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH_BATCH, rid, SLABMQ_ERR_BAD_REQUEST);
    T_EQ_U64(STAT(c, "batch", "published"), 3);
    /* options of the wrong type */
    pub_begin(&m, ++rid, "batch", "x", 1);
    mb_str(&m, "ttl_ms");
    mb_str(&m, "soon");
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_BAD_REQUEST);
    pub_begin(&m, ++rid, "batch", "x", 1);
    mb_str(&m, "ttl_ms");
    mb_uint(&m, 0);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_BAD_REQUEST);
    mb_req(&m, SMQ_OP_PUBLISH, ++rid, 3);
    mb_str(&m, "batch");
    mb_bin(&m, "x", 1);
    mb_arr(&m, 0);
    REQ_ERR(fd, &m, SMQ_OP_PUBLISH, rid, SLABMQ_ERR_BAD_REQUEST);
    /* payloads at and around the inline limit (8 KiB) and a chained one, with a priority:
     * they live in the queue's moved-record segments; byte-exact round trip */
    {
        static const uint32_t sizes[] = {8150, 8192, 8193, 70000};
        static uint8_t big[70000];
        for (uint32_t i = 0; i < sizeof(big); i++)
            big[i] = (uint8_t)(i * 7 + 3);
        for (int i = 0; i < 4; i++) {
            slabmq_batch *bt;
            mb_req(&m, SMQ_OP_PUBLISH, ++rid, 3);
            mb_str(&m, "sizes");
            mb_bin(&m, big, sizes[i]);
            mb_map(&m, 1);
            mb_str(&m, "priority");
            mb_uint(&m, 2);
            pub_end(fd, &m, rid, NULL);
            T_OK(c, slabmq_fetch(c, "sizes", 1, 0, &bt));
            T_EQ_U64(slabmq_batch_count(bt), 1);
            T_EQ_U64(slabmq_batch_get(bt, 0)->len, sizes[i]);
            T_ASSERT(memcmp(slabmq_batch_get(bt, 0)->data, big, sizes[i]) == 0);
            T_OK(c, slabmq_ack(c, slabmq_batch_get(bt, 0)->id));
            slabmq_batch_free(bt);
        }
    }
    /* purge takes delayed messages too */
    mb_req(&m, SMQ_OP_PURGE, ++rid, 1);
    mb_str(&m, "batch");
    send_mb(fd, &m);
    T_EQ_U64(EXPECT_COUNT(fd, SMQ_OP_PURGE, rid), 3);
    T_EQ_U64(STAT(c, NULL, "messages"), 0);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Consumers                                                                                 */

/* FETCH [[queues...], max, wait_ms]: returns the count; *from the queue name or "". */
static uint32_t
fetch_multi(int fd, uint64_t rid, const char **qs, uint32_t nq, uint32_t wait_ms,
            struct msg *out, uint32_t cap, char *from, size_t fromcap)
{
    struct mb m = {0};
    struct rep p;
    uint32_t n;
    const char *s;
    uint32_t len;

    mb_req(&m, SMQ_OP_FETCH, rid, 3);
    mb_arr(&m, nq);
    for (uint32_t i = 0; i < nq; i++)
        mb_str(&m, qs[i]);
    mb_uint(&m, 10);
    mb_uint(&m, wait_ms);
    send_mb(fd, &m);
    mb_free(&m);
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), (int)wait_ms + REPLY_MS, &p);
    T_EQ_U64(p.op, SMQ_OP_FETCH);
    T_EQ_U64(p.status, 0);
    T_EQ_U64(p.n, 5);
    n = read_msgs(&p, out, cap);
    if (smq_mpr_peek(&p.r) == SMQ_MP_NIL) {
        smq_mpr_nil(&p.r);
        from[0] = '\0';
    } else {
        T_ASSERT(smq_mpr_str(&p.r, &s, &len) == 0);
        copy_str(from, fromcap, s, len);
    }
    return n;
}

static void
test_fetch_several_queues(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct msg got[4];
    const char *qs[] = {"urgent", "normal", "urgent"};
    char from[64];
    uint64_t rid = 10;
    int fd;
    int fd2;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    fd2 = raw_session(&b);
    T_EQ_U64(fetch_multi(fd, ++rid, qs, 3, 0, got, 4, from, sizeof(from)), 0);
    T_EQ_STR(from, "");
    pub(fd2, 2, "normal", "n1");
    T_EQ_U64(fetch_multi(fd, ++rid, qs, 2, 0, got, 4, from, sizeof(from)), 1);
    T_EQ_STR(from, "normal");
    T_EQ_STR(got[0].payload, "n1");
    pub(fd2, 3, "normal", "n2");
    pub(fd2, 4, "urgent", "u1");
    T_EQ_U64(fetch_multi(fd, ++rid, qs, 2, 0, got, 4, from, sizeof(from)), 1);
    T_EQ_STR(from, "urgent"); /* first in the list wins, and only one queue */
    /* a waiting FETCH of both is answered by the second queue's publish */
    mb_req(&m, SMQ_OP_FETCH, ++rid, 3);
    mb_arr(&m, 2);
    mb_str(&m, "urgent");
    mb_str(&m, "idle");
    mb_uint(&m, 10);
    mb_uint(&m, 5000);
    send_mb(fd, &m);
    EXPECT_OPEN(fd, 100);
    T_EQ_U64(STAT(c, "idle", "waiters"), 1);
    T_EQ_U64(STAT(c, "urgent", "waiters"), 1);
    pub(fd2, 5, "idle", "i1");
    {
        struct rep p;
        const char *s;
        uint32_t len;
        EXPECT_OK(fd, SMQ_OP_FETCH, rid, &p);
        T_EQ_U64(read_msgs(&p, got, 4), 1);
        T_EQ_STR(got[0].payload, "i1");
        T_ASSERT(smq_mpr_str(&p.r, &s, &len) == 0 && len == 4 && memcmp(s, "idle", 4) == 0);
    }
    T_EQ_U64(STAT(c, "idle", "waiters"), 0);
    T_EQ_U64(STAT(c, "urgent", "waiters"), 0);
    /* more than 16 queues is refused */
    mb_req(&m, SMQ_OP_FETCH, ++rid, 2);
    mb_arr(&m, 17);
    for (int i = 0; i < 17; i++)
        mb_str(&m, "q");
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_FETCH, rid, SLABMQ_ERR_BAD_REQUEST);
    mb_req(&m, SMQ_OP_FETCH, ++rid, 2);
    mb_arr(&m, 0);
    mb_uint(&m, 1);
    REQ_ERR(fd, &m, SMQ_OP_FETCH, rid, SLABMQ_ERR_BAD_REQUEST);
    close(fd);
    close(fd2);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Settle one id (op) on a subscriber's connection: the pushes that the freed credit causes
 * may come before the reply (docs/protocol.md 6.20); their ids are appended to ids. */
static uint32_t
settle_sub(int fd, unsigned op, uint64_t rid, uint64_t id, uint64_t sub, uint64_t *ids,
           uint32_t cap)
{
    struct mb m = {0};
    uint32_t got = 0;

    mb_req(&m, op, rid, 1);
    mb_arr(&m, 1);
    mb_uint(&m, id);
    send_mb(fd, &m);
    mb_free(&m);
    for (int frames = 0; frames < 64; frames++) {
        struct rep p;
        struct msg msgs[16];
        uint32_t n;
        uint64_t count;
        recv_rep(__FILE__, __LINE__, fd, &p);
        if (p.op == op) {
            T_EQ_U64(p.rid, rid);
            T_EQ_U64(p.status, 0);
            T_ASSERT(smq_mpr_uint(&p.r, &count) == 0 && count == 1);
            return got;
        }
        T_EQ_U64(p.op, SMQ_OP_DELIVER);
        T_EQ_U64(p.rid, sub);
        n = read_msgs(&p, msgs, 16);
        for (uint32_t i = 0; i < n && got < cap; i++)
            ids[got++] = msgs[i].id;
    }
    t_fail(__FILE__, __LINE__, "no reply to the settle among 64 frames");
}

/* Read DELIVER frames for up to ms (stops early once want messages came); ids appended. */
static uint32_t
read_pushes(int fd, uint64_t sub, uint32_t want, int ms, uint64_t *ids, uint32_t cap)
{
    uint32_t got = 0;
    int64_t end = t_now_ms() + ms;

    while (t_now_ms() < end && got < cap) {
        struct rep p;
        struct msg msgs[16];
        uint32_t n;
        if (got >= want) {
            EXPECT_OPEN(fd, (int)(end - t_now_ms() > 0 ? end - t_now_ms() : 1));
            break;
        }
        recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), (int)(end - t_now_ms()) + 1,
                     &p);
        T_EQ_U64(p.op, SMQ_OP_DELIVER);
        T_EQ_U64(p.rid, sub);
        T_EQ_U64(p.status, 0);
        n = read_msgs(&p, msgs, 16);
        T_ASSERT(n > 0);
        for (uint32_t i = 0; i < n && got < cap; i++)
            ids[got++] = msgs[i].id;
    }
    return got;
}

static void
test_subscribe_credit(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct rep p;
    uint64_t rid = 10;
    uint64_t sub;
    uint64_t ids[16];
    int fd;
    int fd2;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    fd2 = raw_session(&b);
    mb_req(&m, SMQ_OP_SUBSCRIBE, ++rid, 2);
    mb_str(&m, "push");
    mb_uint(&m, 3);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_SUBSCRIBE, rid, &p);
    T_ASSERT(smq_mpr_uint(&p.r, &sub) == 0 && sub > 0);
    T_EQ_U64(STAT(c, "push", "subscriptions"), 1);
    T_EQ_U64(STAT(c, "push", "credit"), 3);
    for (int i = 0; i < 10; i++)
        pub(fd2, (uint64_t)(100 + i), "push", "work");
    /* exactly the credit, and nothing more while unsettled */
    T_EQ_U64(read_pushes(fd, sub, 3, 400, ids, 16), 3);
    T_EQ_U64(STAT(c, "push", "inflight"), 3);
    T_EQ_U64(STAT(c, "push", "credit"), 0);
    {
        uint64_t more[16];
        uint32_t k = settle_sub(fd, SMQ_OP_ACK, ++rid, ids[0], sub, more, 16);
        k += settle_sub(fd, SMQ_OP_TERM, ++rid, ids[1], sub, more + k, 16 - k);
        /* any settling gives credit back: two more, and no more than that */
        T_EQ_U64(k + read_pushes(fd, sub, 2 - (k < 2 ? k : 2), 400, more + k, 16 - k), 2);
        ids[0] = more[0];
    }
    T_EQ_U64(STAT(c, "push", "inflight"), 3);
    /* a FETCH on the same connection is separate from the subscription's credit */
    /* UNSUBSCRIBE: nothing more is pushed, the messages in flight stay held */
    mb_req(&m, SMQ_OP_UNSUBSCRIBE, ++rid, 1);
    mb_uint(&m, sub);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_UNSUBSCRIBE, rid, &p);
    settle1(fd, SMQ_OP_ACK, ++rid, ids[0]);
    EXPECT_OPEN(fd, 200);
    T_EQ_U64(STAT(c, "push", "subscriptions"), 0);
    T_EQ_U64(STAT(c, "push", "inflight"), 2);
    mb_req(&m, SMQ_OP_UNSUBSCRIBE, ++rid, 1);
    mb_uint(&m, sub);
    REQ_ERR(fd, &m, SMQ_OP_UNSUBSCRIBE, rid, SLABMQ_ERR_NOT_FOUND);
    /* a client may not send DELIVER */
    mb_req(&m, SMQ_OP_DELIVER, ++rid, 0);
    REQ_ERR(fd, &m, SMQ_OP_DELIVER, rid, SLABMQ_ERR_UNKNOWN_OP);
    /* closing returns the held messages */
    close(fd);
    WAIT_STAT(c, "push", "inflight", 0, 3000);
    T_EQ_U64(STAT(c, "push", "ready"), 7);
    close(fd2);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* Acks sent together give their credit back together: the next pushes come in one DELIVER
 * frame after the acks' replies, not one frame per ack (a subscriber acking each push used
 * to be fed one message at a time, and drained at half the speed of FETCH). */
static void
test_acks_together_push_together(void)
{
    struct t_broker b;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    struct msg msgs[16];
    uint64_t rid = 10;
    uint64_t sub;
    uint64_t ids[16];
    uint32_t replies = 0;
    uint32_t pushed = 0;
    uint32_t frames = 0;
    int fd;
    int fd2;

    t_broker_start(&b, NULL);
    fd = raw_session(&b);
    fd2 = raw_session(&b);
    mb_req(&m, SMQ_OP_SUBSCRIBE, ++rid, 2);
    mb_str(&m, "together");
    mb_uint(&m, 4);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_SUBSCRIBE, rid, &p);
    T_ASSERT(smq_mpr_uint(&p.r, &sub) == 0 && sub > 0);
    for (int i = 0; i < 8; i++)
        pub(fd2, (uint64_t)(100 + i), "together", "work");
    T_EQ_U64(read_pushes(fd, sub, 4, 2000, ids, 16), 4);
    for (int i = 0; i < 4; i++) { /* four ACKs, one id each, in one send */
        mb_req(&m, SMQ_OP_ACK, 20 + (uint64_t)i, 1);
        mb_arr(&m, 1);
        mb_uint(&m, ids[i]);
        mb_frame(&stream, m.p, m.len);
        m.len = 0;
    }
    T_EQ_INT(send(fd, stream.p, stream.len, 0), (long)stream.len);
    while (replies < 4 || pushed < 4) { /* bounded: each read waits at most REPLY_MS */
        recv_rep(__FILE__, __LINE__, fd, &p);
        if (p.op == SMQ_OP_DELIVER) {
            T_EQ_U64(replies, 4); /* after every ack's reply */
            pushed += read_msgs(&p, msgs, 16);
            frames++;
            continue;
        }
        T_EQ_U64(p.op, SMQ_OP_ACK);
        T_EQ_U64(p.rid, 20 + replies);
        replies++;
    }
    T_EQ_U64(pushed, 4);
    T_EQ_U64(frames, 1);
    mb_free(&m);
    mb_free(&stream);
    close(fd);
    close(fd2);
    t_broker_stop(&b);
}

/* Publishes that arrive in one read are handed to a waiting FETCH together, in one reply:
 * serving the waiter after each PUBLISH gave it one message per reply, and a consumer whose
 * batch was below the producer's window drained at two thirds of the rate (issue 17). */
static void
test_publishes_together_fetch_together(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    struct msg msgs[16];
    uint32_t replies = 0;
    int fd;
    int fd2;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_session(&b);
    fd2 = raw_session(&b);
    mb_req(&m, SMQ_OP_FETCH, 10, 3); /* waits: the queue is empty */
    mb_str(&m, "gather");
    mb_uint(&m, 16);
    mb_uint(&m, 5000);
    send_mb(fd, &m);
    m.len = 0;
    WAIT_STAT(c, "gather", "waiters", 1, 2000);
    for (int i = 0; i < 8; i++) { /* eight PUBLISH frames in one send */
        mb_req(&m, SMQ_OP_PUBLISH, 100 + (uint64_t)i, 2);
        mb_str(&m, "gather");
        mb_bin(&m, "work", 4);
        mb_frame(&stream, m.p, m.len);
        m.len = 0;
    }
    T_EQ_INT(send(fd2, stream.p, stream.len, 0), (long)stream.len);
    while (replies < 8) { /* bounded: each read waits at most REPLY_MS */
        recv_rep(__FILE__, __LINE__, fd2, &p);
        T_EQ_U64(p.op, SMQ_OP_PUBLISH);
        T_EQ_U64(p.rid, 100 + replies);
        replies++;
    }
    recv_rep_buf(__FILE__, __LINE__, fd, rep_buf, sizeof(rep_buf), REPLY_MS, &p);
    T_EQ_U64(p.op, SMQ_OP_FETCH);
    T_EQ_U64(p.rid, 10);
    T_EQ_U64(read_msgs(&p, msgs, 16), 8); /* all eight; before: the first one alone */
    mb_free(&m);
    mb_free(&stream);
    close(fd);
    close(fd2);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A fatal frame error right after a run of settles is the last frame the connection gets
 * (section 2): the FETCH reply a NACK of the run made possible comes before it, not after.
 * Serving the run's woken queues after the loop wrote it after the error, to a connection
 * already closing. */
static void
test_settle_run_then_fatal_error(void)
{
    static const uint8_t empty[4] = {0, 0, 0, 0};
    struct t_broker b;
    struct mb m = {0};
    struct mb stream = {0};
    struct rep p;
    struct msg msgs[4];
    uint64_t id;
    uint32_t fetched = 0;
    int nack = 0;
    int fd;

    t_broker_start(&b, NULL);
    fd = raw_session(&b);
    pub(fd, 10, "runfatal", "one");
    T_EQ_U64(fetch(fd, 11, "runfatal", 1, 0, msgs, 4), 1);
    id = msgs[0].id;
    mb_req(&m, SMQ_OP_FETCH, 12, 3); /* parked: nothing is ready */
    mb_str(&m, "runfatal");
    mb_uint(&m, 1);
    mb_uint(&m, 10000);
    send_mb(fd, &m);
    EXPECT_OPEN(fd, 100);
    mb_req(&m, SMQ_OP_NACK, 13, 1); /* NACK, then an empty frame, in one send */
    mb_arr(&m, 1);
    mb_uint(&m, id);
    mb_frame(&stream, m.p, m.len);
    mb_put(&stream, empty, sizeof(empty));
    T_EQ_INT(send(fd, stream.p, stream.len, 0), (long)stream.len);
    while (!nack || !fetched) { /* the NACK's reply and the FETCH's, in either order */
        recv_rep(__FILE__, __LINE__, fd, &p);
        T_ASSERT(p.op == SMQ_OP_NACK || p.op == SMQ_OP_FETCH);
        T_EQ_U64(p.status, 0);
        if (p.op == SMQ_OP_NACK) {
            T_EQ_U64(p.rid, 13);
            nack = 1;
        } else {
            T_EQ_U64(p.rid, 12);
            fetched = read_msgs(&p, msgs, 4);
            T_EQ_U64(fetched, 1);
        }
    }
    EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL); /* then the fatal error, last */
    EXPECT_EOF(fd);
    close(fd);
    mb_free(&m);
    mb_free(&stream);
    t_broker_stop(&b);
}

static void
test_subscribers_share_and_queue_deleted(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct rep p;
    uint64_t rid = 10;
    uint64_t sub[2];
    uint64_t ids[32];
    int fd[2];
    int prod;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    prod = raw_session(&b);
    for (int i = 0; i < 2; i++) {
        fd[i] = raw_session(&b);
        mb_req(&m, SMQ_OP_SUBSCRIBE, ++rid, 2);
        mb_str(&m, "shared");
        mb_uint(&m, 4);
        send_mb(fd[i], &m);
        EXPECT_OK(fd[i], SMQ_OP_SUBSCRIBE, rid, &p);
        T_ASSERT(smq_mpr_uint(&p.r, &sub[i]) == 0);
    }
    for (int i = 0; i < 8; i++)
        pub(prod, (uint64_t)(100 + i), "shared", "job");
    /* 8 messages, credit 4 each: both get 4 */
    T_EQ_U64(read_pushes(fd[0], sub[0], 4, 400, ids, 32), 4);
    T_EQ_U64(read_pushes(fd[1], sub[1], 4, 400, ids, 32), 4);
    T_EQ_U64(STAT(c, "shared", "ready"), 0);
    /* deleting the queue ends both subscriptions with ERR_QUEUE_DELETED */
    mb_req(&m, SMQ_OP_DELETE, ++rid, 1);
    mb_str(&m, "shared");
    send_mb(prod, &m);
    T_EQ_U64(EXPECT_COUNT(prod, SMQ_OP_DELETE, rid), 8);
    for (int i = 0; i < 2; i++) {
        EXPECT_ERR(fd[i], SMQ_OP_DELIVER, sub[i], SLABMQ_ERR_QUEUE_DELETED);
        EXPECT_PING(fd[i]);
        close(fd[i]);
    }
    close(prod);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}


/* A subscriber that does not read: pushes stop once about 1 MiB waits unsent for it (plus
 * what its socket took), whatever its credit, and resume as it reads. */
static void
test_subscriber_that_does_not_read(void)
{
    struct t_broker b;
    slabmq_client *c;
    struct mb m = {0};
    struct rep p;
    static uint8_t kib[1024];
    uint64_t rid = 10;
    uint64_t sub;
    uint64_t inflight;
    uint64_t got = 0;
    int64_t end;
    int fd;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    fd = raw_connect_small(b.port, 4096);
    t_raw_hello(fd);
    mb_req(&m, SMQ_OP_SUBSCRIBE, ++rid, 2);
    mb_str(&m, "firehose");
    mb_uint(&m, 10000);
    send_mb(fd, &m);
    EXPECT_OK(fd, SMQ_OP_SUBSCRIBE, rid, &p);
    T_ASSERT(smq_mpr_uint(&p.r, &sub) == 0);
    for (int i = 0; i < 8000; i++) /* 8 MiB for a subscriber with credit for all of it */
        T_OK(c, slabmq_publish(c, "firehose", kib, sizeof(kib), NULL));
    t_sleep_ms(200);
    inflight = STAT(c, "firehose", "inflight");
    /* held back by its unsent output: 1 MiB, one push of about 1 MiB, socket buffers */
    T_ASSERT(inflight > 0);
    T_ASSERT(inflight < 4000);
    T_EQ_U64(STAT(c, "firehose", "ready") + inflight, 8000);
    T_EQ_U64(STAT(c, NULL, "connections"), 2); /* not disconnected for being slow */
    /* reading (no acks: the credit covers it all) lets every message come */
    end = t_now_ms() + 20000;
    while (got < 8000 && t_now_ms() < end) {
        static uint8_t big[2u << 20]; /* a push holds up to max_fetch_bytes + a message */
        uint32_t n;
        recv_rep_buf(__FILE__, __LINE__, fd, big, sizeof(big), 5000, &p);
        T_EQ_U64(p.op, SMQ_OP_DELIVER);
        T_ASSERT(smq_mpr_array(&p.r, &n) == 0);
        got += n;
    }
    T_EQ_U64(got, 8000);
    T_EQ_U64(STAT(c, "firehose", "inflight"), 8000);
    close(fd);
    mb_free(&m);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_delivery_limit_dead_letters),
    T_CASE(test_term_and_dead_letter_targets),
    T_CASE(test_overflow_dead_letter),
    T_CASE(test_ttl_expires_to_dead_letters),
    T_CASE(test_delayed_publish),
    T_CASE(test_priority_order),
    T_CASE(test_dedup_window),
    T_CASE(test_batch_options_and_rollback),
    T_CASE(test_fetch_several_queues),
    T_CASE(test_subscribe_credit),
    T_CASE(test_acks_together_push_together),
    T_CASE(test_publishes_together_fetch_together),
    T_CASE(test_settle_run_then_fatal_error),
    T_CASE(test_subscribers_share_and_queue_deleted),
    T_CASE(test_subscriber_that_does_not_read),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
