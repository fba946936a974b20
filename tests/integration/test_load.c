/* SPDX-License-Identifier: MIT */
/* The bounded load test: 1,000 concurrent connections to one slabmqd on 127.0.0.1, 500
 * producers and 500 consumers over 50 queues, with fixed counts and a deadline on every
 * wait. Consumers FETCH or SUBSCRIBE; some NACK, some hold messages past a short visibility
 * timeout, some close abruptly with messages in flight, and a few producers close with
 * publishes unconfirmed. Every payload carries its (producer, sequence) tag, and a checker
 * holds the broker to at-least-once delivery (docs/protocol.md section 7.2):
 *
 * - every message whose publish was confirmed is acked, and no message is acked twice;
 * - nothing is received that was not published: the tag names a producer of that queue and
 *   a sequence it sent, and every byte of the payload is the one it sent;
 * - every repeat delivery is flagged: a tag is received at most once with deliveries 1,
 *   never twice with the same deliveries count, and first deliveries reach a connection in
 *   publish order;
 * - the broker ends empty, nothing in flight, and its STATS add up (per queue: published =
 *   acked = the tags acked; delivered - redelivered = published; acked and nacked match what
 *   the clients were told);
 * - once every client has gone, the broker's open file descriptors are back to where they
 *   started, and its resident memory too, up to the pools it keeps on purpose
 *   (docs/memory.md: idle I/O buffers and empty slab pages); a second wave of 1,000
 *   connections brings the descriptors back again and adds next to no memory.
 *
 * Eight threads drive the connections, 125 each: four run producers, four consumers. Each
 * turns round its connections with the non-blocking parts of the client library (pipelined
 * publishes, acks and nacks, FETCH without waiting, slabmq_receive() with a zero timeout),
 * so 1,000 connections need no 1,000 threads on a 2-core machine. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <unistd.h>

#include "slabmq.h"
#include "t.h"

#define LOAD_QUEUES 50
#define LOAD_PRODUCERS 500
#define LOAD_CONSUMERS 500
#define LOAD_CONNECTIONS (LOAD_PRODUCERS + LOAD_CONSUMERS)
#define LOAD_PER_QUEUE (LOAD_PRODUCERS / LOAD_QUEUES) /* producers (and consumers) per queue */
#define LOAD_THREADS 4              /* producer threads, and as many consumer threads */
#define LOAD_PER_PRODUCER 1000      /* messages each producer publishes */
#define LOAD_TAGS (LOAD_PRODUCERS * LOAD_PER_PRODUCER)
#define LOAD_CHUNK 8                /* messages a producer publishes per turn */
#define LOAD_ROUND_MS 50            /* a producer thread's turn takes at least this long */
#define LOAD_SHORT_QUEUES 5         /* queues 0-4 have a short visibility timeout */
#define LOAD_VISIBILITY_MS 1000     /* ... of this, ms */
#define LOAD_HOLD_MS 1500           /* how long a sleeper holds a first delivery, ms */
#define LOAD_HELD_MAX 4             /* messages a sleeper holds at once */
#define LOAD_QUITS 5                /* abrupt closes per quitting consumer */
#define LOAD_QUIT_EVERY 150         /* receipts between two of them */
#define LOAD_RING 512               /* pipelined requests a connection tracks */
#define LOAD_WINDOW 256             /* unconfirmed publishes the library allows, and the
                                       broker's in-flight limit, which bounds a consumer's
                                       unconfirmed acks and NACKs: the ring holds either */
#define LOAD_WINDOW_STR "256"
#define LOAD_CALL_MS 10000          /* the client's timeout on every call */
#define LOAD_SETUP_MS 30000         /* every connection open within this */
#define LOAD_RUN_MS 45000           /* everything published and acked within this */
#define LOAD_SETTLE_MS 10000        /* fds back to their start within this */
#define LOAD_MAGIC 0x4c4f4144u      /* "LOAD", the first payload word */
#define LOAD_HEADER 16              /* magic, producer, sequence, length: 4 bytes each */
#define LOAD_NOFILE (LOAD_CONNECTIONS + 256) /* descriptors this process and the broker need */
#define LOAD_SKIP 77                /* exit status ctest reads as "skipped" */
/* Resident memory the broker may keep after the load beyond its own pools (malloc's arenas),
 * and what a second wave of connections may add to it, KiB. */
#define LOAD_RSS_SLACK_KB (6 * 1024)
#define LOAD_RSS_WAVE_KB 1024

/* What the clients learnt about one tag (producer p, sequence s: tags[p * PER + s]). */
struct tag {
    atomic_uint receipts;      /* times a consumer received it */
    atomic_uint firsts;        /* of which with deliveries 1 */
    atomic_uint acked;         /* ACKs of it the broker confirmed */
    atomic_uint_fast64_t seen; /* bit d-1 set once a receipt had deliveries d (d <= 64) */
    uint8_t confirmed;         /* its publish was confirmed (written by its producer only) */
};

/* Per-queue counts the clients keep, compared with the queue's STATS at the end. */
struct queue_count {
    atomic_uint_fast64_t acked;      /* ACKs confirmed */
    atomic_uint_fast64_t nacked;     /* NACKs confirmed */
    atomic_uint_fast64_t receipts;   /* messages received */
    atomic_uint_fast64_t redelivered; /* of which with deliveries > 1 */
    atomic_uint_fast64_t ack_lost;   /* ACKs and NACKs refused: the message had timed out */
};

/* A pipelined request awaiting its confirmation: a publish of n tags from first, or an ACK
 * or NACK of tag first. */
enum req_kind { REQ_PUBLISH, REQ_ACK, REQ_NACK };

struct req {
    uint64_t rid;       /* the request id the library returned */
    enum req_kind kind;
    uint32_t first;     /* sequence (publish) or tag index (ack, nack) */
    uint32_t n;         /* tags published */
};

/* The requests of one connection in request order: confirmations come back in that order. */
struct ring {
    struct req r[LOAD_RING];
    uint32_t head;
    uint32_t len;
};

struct producer {
    int index;
    int queue;                 /* index % LOAD_QUEUES */
    int aborts;                /* closes half-way with publishes unconfirmed */
    int batches;               /* publishes with PUBLISH_BATCH */
    slabmq_client *c;          /* NULL once closed */
    struct ring ring;
    atomic_uint sent;          /* sequences below this may have been stored */
    uint32_t confirmed;        /* publishes confirmed */
    int done;
};

enum role {
    ROLE_FETCH,      /* FETCH, ack everything */
    ROLE_SUBSCRIBE,  /* SUBSCRIBE with credit, ack everything */
    ROLE_NACK,       /* NACKs a third of the first deliveries, with or without a delay */
    ROLE_SLEEPER,    /* FETCH, holds first deliveries past the visibility timeout */
    ROLE_QUITTER     /* closes with messages in flight every LOAD_QUIT_EVERY receipts */
};

struct consumer {
    int index;
    int queue;                 /* index % LOAD_QUEUES */
    enum role role;
    int push;                  /* subscribes instead of fetching */
    uint32_t fetch_max;        /* FETCH max, or the subscription's credit */
    slabmq_client *c;
    struct ring ring;
    uint64_t rng;              /* xorshift state: which first deliveries to NACK */
    int64_t next_ms;           /* a FETCH that got nothing waits until then */
    int idle_ms;               /* and the next one twice as long, up to 16 ms */
    uint32_t last_first[LOAD_PER_QUEUE]; /* per producer of the queue: sequence + 1 of the
                                            last first delivery on this connection */
    uint64_t held_ids[LOAD_HELD_MAX];    /* sleeper: messages held */
    uint32_t held_tags[LOAD_HELD_MAX];
    int nheld;
    int64_t hold_until;        /* sleeper: acks them then */
    int quits;                 /* quitter: abrupt closes so far */
    uint32_t since_quit;       /* receipts since the last */
};

/* The broker's open descriptors and memory at one moment. */
struct usage {
    int fds;                   /* entries of /proc/PID/fd */
    long rss_kb;               /* resident set, KiB */
    uint64_t kept;             /* pools it keeps on purpose (kept_bytes()), bytes */
};

struct worker {
    struct load *l;
    int index;                 /* thread number within its kind */
};

/* Everything the test and its threads share. */
struct load {
    struct t_broker broker;
    slabmq_client *mon;        /* the main thread's connection: STATS */
    struct usage base;         /* with only mon connected */
    struct usage peak;         /* highest fds and RSS seen during the load */
    pthread_t th[2 * LOAD_THREADS];     /* producer threads, then consumer threads */
    struct worker w[2 * LOAD_THREADS];
    struct tag *tags;
    struct queue_count queues[LOAD_QUEUES];
    struct producer producers[LOAD_PRODUCERS];
    struct consumer consumers[LOAD_CONSUMERS];
    atomic_int ready;          /* threads with their connections open */
    atomic_int go;             /* start the traffic */
    atomic_int stop;           /* everything published and acked: wind down */
    atomic_int producers_done;
    atomic_uint_fast64_t quits;
    _Atomic int64_t deadline_ms; /* CLOCK_MONOTONIC ms after which a thread gives up */
};

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* t_fail from any thread; the first caller reports, the others wait for exit. */
#define LOAD_FAIL(...)                                                                          \
    do {                                                                                        \
        pthread_mutex_lock(&fail_lock);                                                         \
        t_fail(__FILE__, __LINE__, __VA_ARGS__);                                                \
    } while (0)

#define LOAD_OK(c, call)                                                                        \
    do {                                                                                        \
        slabmq_status load_st_ = (call);                                                        \
        if (load_st_ != SLABMQ_OK)                                                              \
            LOAD_FAIL("%s: %s (%s)", #call, slabmq_status_name(load_st_),                       \
                      slabmq_client_errmsg(c));                                                 \
    } while (0)

/* ---------------------------------------------------------------------------------------- */
/* Payloads                                                                                  */

/* The payload length of a tag: 16 to 271 bytes, and every 97th 3 KiB more, so messages
 * span several slab classes. */
static uint32_t
payload_len(uint32_t p, uint32_t s)
{
    uint32_t len = LOAD_HEADER + (p * 7 + s * 13) % 256;

    return (p + s) % 97 == 0 ? len + 3072 : len;
}

static uint8_t
payload_byte(uint32_t p, uint32_t s, uint32_t i)
{
    return (uint8_t)(p * 131 + s * 7 + i * 13);
}

static void
put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Write the payload of tag (p, s) into buf (room for 4 KiB); returns its length. */
static uint32_t
payload_make(uint8_t *buf, uint32_t p, uint32_t s)
{
    uint32_t len = payload_len(p, s);

    put32(buf, LOAD_MAGIC);
    put32(buf + 4, p);
    put32(buf + 8, s);
    put32(buf + 12, len);
    for (uint32_t i = LOAD_HEADER; i < len; i++)
        buf[i] = payload_byte(p, s, i);
    return len;
}

/* The tag index of a message received from queue q, after checking that it is a message
 * some producer of q published: the tag's producer publishes to q and had sent it, and every
 * byte is the one it sent. Fails the test otherwise. */
static uint32_t
payload_check(struct load *l, int q, const slabmq_message *m)
{
    const uint8_t *d = m->data;
    uint32_t p;
    uint32_t s;

    if (m->len < LOAD_HEADER || get32(d) != LOAD_MAGIC)
        LOAD_FAIL("message %llu of %zu bytes from queue %d has no tag",
                  (unsigned long long)m->id, m->len, q);
    p = get32(d + 4);
    s = get32(d + 8);
    if (p >= LOAD_PRODUCERS || (int)(p % LOAD_QUEUES) != q)
        LOAD_FAIL("message %llu from queue %d names producer %u, which never published there",
                  (unsigned long long)m->id, q, p);
    if (s >= atomic_load(&l->producers[p].sent))
        LOAD_FAIL("message %llu: producer %u never sent sequence %u (it sent %u)",
                  (unsigned long long)m->id, p, s, atomic_load(&l->producers[p].sent));
    if (get32(d + 12) != payload_len(p, s) || m->len != payload_len(p, s))
        LOAD_FAIL("message %llu (%u, %u): %zu bytes, published %u", (unsigned long long)m->id,
                  p, s, m->len, payload_len(p, s));
    for (uint32_t i = LOAD_HEADER; i < m->len; i++)
        if (d[i] != payload_byte(p, s, i))
            LOAD_FAIL("message %llu (%u, %u): byte %u differs", (unsigned long long)m->id, p,
                      s, i);
    return p * LOAD_PER_PRODUCER + s;
}

/* ---------------------------------------------------------------------------------------- */
/* Pipelined requests and their confirmations                                                */

static void
ring_push(struct ring *r, uint64_t rid, enum req_kind kind, uint32_t first, uint32_t n)
{
    if (r->len == LOAD_RING)
        LOAD_FAIL("more than %d pipelined requests on one connection", LOAD_RING);
    r->r[(r->head + r->len) % LOAD_RING] = (struct req){rid, kind, first, n};
    r->len++;
}

/* The request a confirmation is for: the oldest outstanding, which must carry its id. */
static struct req
ring_pop(struct ring *r, uint64_t rid)
{
    struct req q;

    if (r->len == 0 || r->r[r->head].rid != rid)
        LOAD_FAIL("confirmation of request %llu, expected %llu", (unsigned long long)rid,
                  r->len ? (unsigned long long)r->r[r->head].rid : 0ULL);
    q = r->r[r->head];
    r->head = (r->head + 1) % LOAD_RING;
    r->len--;
    return q;
}

struct producer_cb {
    struct load *l;
    struct producer *p;
};

static struct producer_cb producer_cbs[LOAD_PRODUCERS];

static void
producer_confirm(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    struct producer_cb *cb = arg;
    struct producer *p = cb->p;
    struct req q = ring_pop(&p->ring, request);

    (void)value;
    if (status != SLABMQ_OK)
        LOAD_FAIL("producer %d: publish of sequences %u-%u refused: %s", p->index, q.first,
                  q.first + q.n - 1, slabmq_status_name(status));
    for (uint32_t i = 0; i < q.n; i++)
        cb->l->tags[(uint32_t)p->index * LOAD_PER_PRODUCER + q.first + i].confirmed = 1;
    p->confirmed += q.n;
}

struct consumer_cb {
    struct load *l;
    struct consumer *k;
};

static struct consumer_cb consumer_cbs[LOAD_CONSUMERS];

/* An ACK or NACK of a message the connection still holds succeeds; one of a message whose
 * visibility timeout passed gets ERR_UNKNOWN_ID, which only the short-timeout queues may
 * see. An ACK the broker confirms removes the message, so a second is a bug. */
static void
consumer_confirm(void *arg, uint64_t request, slabmq_status status, uint64_t value)
{
    struct consumer_cb *cb = arg;
    struct consumer *k = cb->k;
    struct queue_count *qc = &cb->l->queues[k->queue];
    struct req q = ring_pop(&k->ring, request);

    if (status == SLABMQ_ERR_UNKNOWN_ID && k->queue < LOAD_SHORT_QUEUES) {
        atomic_fetch_add(&qc->ack_lost, 1);
        return;
    }
    if (status != SLABMQ_OK || value != 1)
        LOAD_FAIL("consumer %d (queue %d): %s of tag %u: %s, count %llu", k->index, k->queue,
                  q.kind == REQ_ACK ? "ACK" : "NACK", q.first, slabmq_status_name(status),
                  (unsigned long long)value);
    if (q.kind == REQ_NACK) {
        atomic_fetch_add(&qc->nacked, 1);
        return;
    }
    atomic_fetch_add(&qc->acked, 1);
    if (atomic_fetch_add(&cb->l->tags[q.first].acked, 1) != 0)
        LOAD_FAIL("tag %u (producer %u, sequence %u) acked twice", q.first,
                  q.first / LOAD_PER_PRODUCER, q.first % LOAD_PER_PRODUCER);
}

/* ---------------------------------------------------------------------------------------- */
/* Connections                                                                               */

static slabmq_client *
load_connect(const struct load *l, const char *kind, int index)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c = NULL;
    char name[32];
    char err[256] = "";
    slabmq_status st;

    snprintf(name, sizeof(name), "load-%s%d", kind, index);
    o.port = (uint16_t)l->broker.port;
    o.timeout_ms = LOAD_CALL_MS;
    o.client_name = name;
    st = slabmq_client_connect_errbuf(&o, &c, err, sizeof(err));
    if (st != SLABMQ_OK)
        LOAD_FAIL("connection %s: %s (%s)", name, slabmq_status_name(st), err);
    slabmq_client_set_window(c, LOAD_WINDOW);
    return c;
}

static void
queue_name(char *buf, size_t cap, int q)
{
    snprintf(buf, cap, "load.%02d", q);
}

/* Open a consumer's connection and, for a push consumer, subscribe. A new connection is a
 * new consumer: its first deliveries are ordered afresh. */
static void
consumer_open(struct load *l, struct consumer *k)
{
    char q[32];

    k->c = load_connect(l, "c", k->index);
    slabmq_client_on_confirm(k->c, consumer_confirm, &consumer_cbs[k->index]);
    memset(k->last_first, 0, sizeof(k->last_first));
    k->ring.head = k->ring.len = 0;
    if (k->push) {
        queue_name(q, sizeof(q), k->queue);
        LOAD_OK(k->c, slabmq_subscribe(k->c, q, k->fetch_max, NULL));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Producers                                                                                 */

static void
producer_publish(struct producer *p, uint32_t n)
{
    static _Thread_local uint8_t bufs[LOAD_CHUNK][4096];
    slabmq_payload msgs[LOAD_CHUNK];
    uint32_t first = atomic_load(&p->sent);
    char q[32];
    uint64_t rid;

    queue_name(q, sizeof(q), p->queue);
    for (uint32_t i = 0; i < n; i++)
        msgs[i] = (slabmq_payload){bufs[i], payload_make(bufs[i], (uint32_t)p->index,
                                                         first + i)};
    atomic_store(&p->sent, first + n); /* before a consumer can see them */
    if (p->batches) {
        LOAD_OK(p->c, slabmq_publish_batch_async(p->c, q, msgs, n, &rid));
        ring_push(&p->ring, rid, REQ_PUBLISH, first, n);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        LOAD_OK(p->c, slabmq_publish_async(p->c, q, msgs[i].data, msgs[i].len, &rid));
        ring_push(&p->ring, rid, REQ_PUBLISH, first + i, 1);
    }
}

/* One turn of a producer: publish a chunk and send it; at the end, wait for every
 * confirmation. An aborting producer closes half-way right after sending a chunk, without
 * reading its confirmations: those messages may or may not be stored. */
static void
producer_step(struct load *l, struct producer *p)
{
    uint32_t sent = atomic_load(&p->sent);
    uint32_t n = LOAD_PER_PRODUCER - sent < LOAD_CHUNK ? LOAD_PER_PRODUCER - sent : LOAD_CHUNK;

    if (p->done)
        return;
    producer_publish(p, n);
    LOAD_OK(p->c, slabmq_send(p->c));
    if (p->aborts && atomic_load(&p->sent) >= LOAD_PER_PRODUCER / 2) {
        slabmq_client_close(p->c);
        p->c = NULL;
        p->done = 1;
        atomic_fetch_add(&l->producers_done, 1);
        return;
    }
    if (atomic_load(&p->sent) == LOAD_PER_PRODUCER) {
        LOAD_OK(p->c, slabmq_flush(p->c));
        if (p->confirmed != LOAD_PER_PRODUCER)
            LOAD_FAIL("producer %d: %u of %d confirmed after its flush", p->index, p->confirmed,
                      LOAD_PER_PRODUCER);
        p->done = 1;
        atomic_fetch_add(&l->producers_done, 1);
    }
}

/* Wait for the main thread's start signal, within the set-up deadline. */
static void
wait_for_go(struct load *l)
{
    atomic_fetch_add(&l->ready, 1);
    while (!atomic_load(&l->go)) {
        if (t_now_ms() > atomic_load(&l->deadline_ms))
            LOAD_FAIL("no start signal");
        t_sleep_ms(1);
    }
}

static void *
producer_main(void *arg)
{
    struct worker *w = arg;
    struct load *l = w->l;
    int done = 0;

    for (int i = w->index; i < LOAD_PRODUCERS; i += LOAD_THREADS)
        l->producers[i].c = load_connect(l, "p", i);
    for (int i = w->index; i < LOAD_PRODUCERS; i += LOAD_THREADS)
        slabmq_client_on_confirm(l->producers[i].c, producer_confirm, &producer_cbs[i]);
    wait_for_go(l);
    while (!done) {
        int64_t start = t_now_ms();
        if (start > atomic_load(&l->deadline_ms))
            LOAD_FAIL("producers not done within %d ms", LOAD_RUN_MS);
        done = 1;
        for (int i = w->index; i < LOAD_PRODUCERS; i += LOAD_THREADS) {
            producer_step(l, &l->producers[i]);
            done &= l->producers[i].done;
        }
        if (!done && t_now_ms() - start < LOAD_ROUND_MS)
            t_sleep_ms((int)(LOAD_ROUND_MS - (t_now_ms() - start)));
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Consumers                                                                                 */

static uint64_t
xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Record one receipt and check its flags: deliveries 1 at most once per tag and in publish
 * order on this connection, and no two receipts of a tag with the same deliveries count.
 * Returns the tag index. */
static uint32_t
receipt(struct load *l, struct consumer *k, const slabmq_message *m)
{
    uint32_t t = payload_check(l, k->queue, m);
    uint32_t p = t / LOAD_PER_PRODUCER;
    uint32_t s = t % LOAD_PER_PRODUCER;
    struct tag *tg = &l->tags[t];
    struct queue_count *qc = &l->queues[k->queue];

    atomic_fetch_add(&tg->receipts, 1);
    atomic_fetch_add(&qc->receipts, 1);
    if (m->deliveries == 0)
        LOAD_FAIL("tag (%u, %u) delivered with deliveries 0", p, s);
    if (m->deliveries == 1) {
        if (atomic_fetch_add(&tg->firsts, 1) != 0)
            LOAD_FAIL("tag (%u, %u) received again with deliveries 1: a redelivery not "
                      "flagged", p, s);
        if (s + 1 <= k->last_first[p / LOAD_QUEUES])
            LOAD_FAIL("consumer %d: first delivery of (%u, %u) after sequence %u", k->index, p,
                      s, k->last_first[p / LOAD_QUEUES] - 1);
        k->last_first[p / LOAD_QUEUES] = s + 1;
    } else {
        atomic_fetch_add(&qc->redelivered, 1);
    }
    if (m->deliveries <= 64) {
        uint64_t bit = (uint64_t)1 << (m->deliveries - 1);
        if (atomic_fetch_or(&tg->seen, bit) & bit)
            LOAD_FAIL("tag (%u, %u) received twice with deliveries %u", p, s, m->deliveries);
    }
    return t;
}

static void
settle(struct consumer *k, const slabmq_message *m, uint32_t t, enum req_kind kind)
{
    uint64_t rid;

    if (kind == REQ_ACK) {
        LOAD_OK(k->c, slabmq_ack_async(k->c, &m->id, 1, &rid));
    } else {
        /* half at once (the retry list), half after a delay (delayed, then ready) */
        uint64_t delay = xorshift(&k->rng) % 2 ? 0 : 25;
        LOAD_OK(k->c, slabmq_nack_async(k->c, &m->id, 1, delay, &rid));
    }
    ring_push(&k->ring, rid, kind, t, 1);
}

/* What the consumer's role does with a message it received. */
static void
handle(struct load *l, struct consumer *k, const slabmq_message *m)
{
    uint32_t t = receipt(l, k, m);

    if (k->role == ROLE_NACK && m->deliveries == 1 && xorshift(&k->rng) % 3 == 0) {
        settle(k, m, t, REQ_NACK);
    } else if (k->role == ROLE_SLEEPER && m->deliveries == 1 && k->nheld < LOAD_HELD_MAX) {
        k->held_ids[k->nheld] = m->id;
        k->held_tags[k->nheld++] = t;
        k->hold_until = t_now_ms() + LOAD_HOLD_MS;
    } else {
        settle(k, m, t, REQ_ACK);
    }
}

/* Take what is there: one FETCH without waiting, or the pushes that have arrived. */
static slabmq_batch *
take(struct consumer *k, uint32_t max)
{
    slabmq_batch *b = NULL;
    char q[32];

    if (k->push) {
        LOAD_OK(k->c, slabmq_receive(k->c, 0, &b));
        return b;
    }
    queue_name(q, sizeof(q), k->queue);
    LOAD_OK(k->c, slabmq_fetch(k->c, q, max, 0, &b));
    return b;
}

/* Wait for every confirmation of the consumer's pipelined requests. slabmq_flush() reports
 * the first refused one; consumer_confirm() has vetted each already (a timed-out message
 * on a short-timeout queue). */
static void
consumer_flush(struct consumer *k)
{
    slabmq_status st = slabmq_flush(k->c);

    if (st == SLABMQ_ERR_UNKNOWN_ID && k->queue < LOAD_SHORT_QUEUES)
        st = SLABMQ_OK;
    LOAD_OK(k->c, st);
    if (k->ring.len != 0)
        LOAD_FAIL("consumer %d: %u requests unconfirmed after its flush", k->index, k->ring.len);
}

/* A quitter's abrupt close: every settled message confirmed first (so the clients know
 * exactly what was acked), then one more batch taken and left unsettled, and the
 * connection closed with it in flight (for a subscriber, often with pushes unread). */
static void
quit(struct load *l, struct consumer *k)
{
    slabmq_batch *b;

    consumer_flush(k);
    b = take(k, 8);
    for (size_t i = 0; i < slabmq_batch_count(b); i++)
        receipt(l, k, slabmq_batch_get(b, i));
    slabmq_batch_free(b);
    slabmq_client_close(k->c);
    k->quits++;
    k->since_quit = 0;
    atomic_fetch_add(&l->quits, 1);
    consumer_open(l, k);
}

/* One turn of a consumer; returns the messages it handled. */
static size_t
consumer_step(struct load *l, struct consumer *k)
{
    int64_t now = k->push ? 0 : t_now_ms();
    slabmq_batch *b;
    size_t n;

    if (k->nheld > 0) {
        if (t_now_ms() < k->hold_until)
            return 0;
        for (int i = 0; i < k->nheld; i++) {
            uint64_t rid;
            LOAD_OK(k->c, slabmq_ack_async(k->c, &k->held_ids[i], 1, &rid));
            ring_push(&k->ring, rid, REQ_ACK, k->held_tags[i], 1);
        }
        k->nheld = 0;
    }
    if (now < k->next_ms)
        return 0;
    b = take(k, k->fetch_max);
    n = slabmq_batch_count(b);
    for (size_t i = 0; i < n; i++)
        handle(l, k, slabmq_batch_get(b, i));
    slabmq_batch_free(b);
    if (!k->push) {
        k->idle_ms = n ? 1 : (k->idle_ms < 16 ? k->idle_ms * 2 : 16);
        k->next_ms = n ? 0 : now + k->idle_ms;
    }
    k->since_quit += (uint32_t)n;
    if (k->role == ROLE_QUITTER && k->quits < LOAD_QUITS && k->since_quit >= LOAD_QUIT_EVERY)
        quit(l, k);
    return n;
}

static void *
consumer_main(void *arg)
{
    struct worker *w = arg;
    struct load *l = w->l;

    for (int i = w->index; i < LOAD_CONSUMERS; i += LOAD_THREADS)
        consumer_open(l, &l->consumers[i]);
    wait_for_go(l);
    while (!atomic_load(&l->stop)) {
        size_t got = 0;
        if (t_now_ms() > atomic_load(&l->deadline_ms))
            LOAD_FAIL("consumers still running after %d ms", LOAD_RUN_MS);
        for (int i = w->index; i < LOAD_CONSUMERS; i += LOAD_THREADS)
            got += consumer_step(l, &l->consumers[i]);
        if (got == 0)
            t_sleep_ms(1);
    }
    for (int i = w->index; i < LOAD_CONSUMERS; i += LOAD_THREADS)
        consumer_flush(&l->consumers[i]);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The broker's resources                                                                    */

/* Open file descriptors of the broker (/proc/PID/fd). */
static int
broker_fds(const struct t_broker *b)
{
    char path[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)b->pid);
    d = opendir(path);
    T_ASSERT(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The broker's soft limit on open files (/proc/PID/limits). */
static unsigned long long
broker_nofile(const struct t_broker *b)
{
    char path[64];
    char line[256];
    unsigned long long soft = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/limits", (int)b->pid);
    f = fopen(path, "r");
    T_ASSERT(f != NULL);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Max open files", 14) == 0) {
            if (strncmp(line + 14 + strspn(line + 14, " "), "unlimited", 9) == 0)
                soft = ~0ULL;
            else
                soft = strtoull(line + 14, NULL, 10);
        }
    fclose(f);
    return soft;
}

/* This process and the broker it starts (which inherits the limit) each need a descriptor
 * per connection: raise the soft limit if it is lower, or skip the test when the hard
 * limit does not allow it. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    T_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= LOAD_NOFILE)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < LOAD_NOFILE) {
        fprintf(stderr, "SKIP: %d connections need %d open files, and the hard limit "
                        "(ulimit -Hn) is %llu\n", LOAD_CONNECTIONS, LOAD_NOFILE,
                (unsigned long long)rl.rlim_max);
        exit(LOAD_SKIP);
    }
    fprintf(stderr, "raising the open-file soft limit from %llu to %d\n",
            (unsigned long long)rl.rlim_cur, LOAD_NOFILE);
    rl.rlim_cur = LOAD_NOFILE;
    T_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* Wait until the broker counts n connections: it sees a close when it reads it. */
static void
wait_connections(slabmq_client *mon, uint64_t n)
{
    int64_t deadline = t_now_ms() + LOAD_SETTLE_MS;
    uint64_t have;

    while ((have = t_stat(mon, NULL, "connections")) != n && t_now_ms() < deadline)
        t_sleep_ms(20);
    T_EQ_U64(have, n);
}

/* Wait until the broker has n descriptors open. */
static void
wait_fds(const struct t_broker *b, int n)
{
    int64_t deadline = t_now_ms() + LOAD_SETTLE_MS;
    int have;

    while ((have = broker_fds(b)) != n && t_now_ms() < deadline)
        t_sleep_ms(20);
    T_EQ_INT(have, n);
}

/* Memory the broker keeps on purpose once idle (docs/memory.md): idle pooled I/O buffers,
 * and the empty slab pages its pool keeps resident, which are the resident pages no size
 * class owns (slab_pages_pooled also counts pooled pages already given back). */
static uint64_t
kept_bytes(slabmq_client *c)
{
    slabmq_stats *s;
    uint64_t idle = 0;
    uint64_t resident = 0;
    uint64_t page = 0;
    uint64_t owned = 0;

    T_OK(c, slabmq_stats_get(c, NULL, &s));
    T_ASSERT(slabmq_stats_find(s, "reservoir_idle_bytes", &idle));
    T_ASSERT(slabmq_stats_find(s, "slab_pages_resident", &resident));
    T_ASSERT(slabmq_stats_find(s, "slab_page_size", &page));
    for (size_t i = 0; i < slabmq_stats_count(s); i++) {
        const char *name = slabmq_stats_name(s, i);
        size_t len = strlen(name);
        if (strncmp(name, "slab.", 5) == 0 && len > 6 && strcmp(name + len - 6, ".pages") == 0)
            owned += slabmq_stats_value(s, i);
    }
    slabmq_stats_free(s);
    T_ASSERT(owned <= resident);
    return idle + (resident - owned) * page;
}

/* ---------------------------------------------------------------------------------------- */
/* Set-up                                                                                    */

/* Queues 0-4 time out unacked messages after LOAD_VISIBILITY_MS; none dead-letters, however
 * often a message comes back. */
static void
declare_queues(slabmq_client *c)
{
    for (int q = 0; q < LOAD_QUEUES; q++) {
        slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
        char name[32];
        queue_name(name, sizeof(name), q);
        o.max_deliveries = SLABMQ_NO_LIMIT;
        if (q < LOAD_SHORT_QUEUES)
            o.visibility_ms = LOAD_VISIBILITY_MS;
        T_OK(c, slabmq_declare(c, name, &o, NULL));
    }
}

/* Consumer j serves queue j % 50; the ten of a queue (k = j / 50) are three fetchers
 * (a sleeper instead of the third on the short-timeout queues), three subscribers, a
 * fetching and a subscribing NACKer, and a fetching and a subscribing quitter. Producers:
 * every third of a queue's ten uses PUBLISH_BATCH, and the last on five queues aborts. */
static void
assign_roles(struct load *l)
{
    static const enum role roles[LOAD_PER_QUEUE] = {
        ROLE_FETCH, ROLE_FETCH, ROLE_FETCH, ROLE_SUBSCRIBE, ROLE_SUBSCRIBE,
        ROLE_SUBSCRIBE, ROLE_NACK, ROLE_NACK, ROLE_QUITTER, ROLE_QUITTER};
    static const int push[LOAD_PER_QUEUE] = {0, 0, 0, 1, 1, 1, 0, 1, 0, 1};
    static const uint32_t max[LOAD_PER_QUEUE] = {16, 32, 64, 8, 16, 32, 16, 16, 16, 16};

    for (int j = 0; j < LOAD_CONSUMERS; j++) {
        struct consumer *k = &l->consumers[j];
        int r = j / LOAD_QUEUES;
        k->index = j;
        k->queue = j % LOAD_QUEUES;
        k->role = roles[r];
        k->push = push[r];
        k->fetch_max = max[r];
        k->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(j + 1) * 0x2545f4914f6cdd1dULL;
        k->idle_ms = 1;
        if (r == 2 && k->queue < LOAD_SHORT_QUEUES) {
            k->role = ROLE_SLEEPER;
            k->fetch_max = LOAD_HELD_MAX;
        }
        consumer_cbs[j] = (struct consumer_cb){l, k};
    }
    for (int i = 0; i < LOAD_PRODUCERS; i++) {
        struct producer *p = &l->producers[i];
        p->index = i;
        p->queue = i % LOAD_QUEUES;
        p->batches = (i / LOAD_QUEUES) % 3 == 1;
        p->aborts = i / LOAD_QUEUES == LOAD_PER_QUEUE - 1 && p->queue % 10 == 3;
        producer_cbs[i] = (struct producer_cb){l, p};
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The checker                                                                               */

struct tally {
    uint64_t sent;           /* tags handed to the library */
    uint64_t confirmed;      /* of which confirmed */
    uint64_t stored_unconfirmed; /* unconfirmed (aborted producers) but delivered and acked */
    uint64_t receipts;       /* messages received */
    uint64_t redelivered;    /* receipts with deliveries > 1 */
    uint64_t repeated;       /* tags received more than once */
    uint64_t acked[LOAD_QUEUES]; /* tags acked, per queue */
    uint64_t nacked;         /* NACKs confirmed */
    uint64_t ack_lost;       /* ACKs and NACKs refused after a visibility timeout */
    uint64_t timeouts;       /* visibility timeouts, from STATS */
};

/* Every tag: confirmed ones acked exactly once, received ones acked (the broker ends empty
 * and nothing leaves a queue but by ACK), unconfirmed ones only from aborted producers. */
static void
check_tags(struct load *l, struct tally *t)
{
    memset(t, 0, sizeof(*t));
    for (int p = 0; p < LOAD_PRODUCERS; p++) {
        uint32_t sent = atomic_load(&l->producers[p].sent);
        t->sent += sent;
        for (uint32_t s = 0; s < sent; s++) {
            struct tag *tg = &l->tags[(uint32_t)p * LOAD_PER_PRODUCER + s];
            unsigned acked = atomic_load(&tg->acked);
            unsigned receipts = atomic_load(&tg->receipts);
            if (tg->confirmed && acked != 1)
                t_fail(__FILE__, __LINE__, "confirmed tag (%d, %u) acked %u times (received "
                       "%u times)", p, s, acked, receipts);
            if (!tg->confirmed && !l->producers[p].aborts)
                t_fail(__FILE__, __LINE__, "tag (%d, %u) never confirmed", p, s);
            if (receipts > 0 && acked != 1)
                t_fail(__FILE__, __LINE__, "tag (%d, %u) received %u times, acked %u times", p,
                       s, receipts, acked);
            t->confirmed += tg->confirmed;
            t->stored_unconfirmed += !tg->confirmed && acked;
            t->repeated += receipts > 1;
            t->acked[p % LOAD_QUEUES] += acked;
        }
    }
    for (int q = 0; q < LOAD_QUEUES; q++) {
        t->receipts += atomic_load(&l->queues[q].receipts);
        t->redelivered += atomic_load(&l->queues[q].redelivered);
        t->nacked += atomic_load(&l->queues[q].nacked);
        t->ack_lost += atomic_load(&l->queues[q].ack_lost);
    }
}

/* Each queue's STATS against what the clients saw: empty, published = acked = the tags
 * acked, every message delivered once for the first time, no dead letters. */
static void
check_queue_stats(struct load *l, slabmq_client *c, struct tally *t)
{
    for (int q = 0; q < LOAD_QUEUES; q++) {
        struct queue_count *qc = &l->queues[q];
        char name[32];
        uint64_t published;
        uint64_t delivered;
        uint64_t redelivered;
        queue_name(name, sizeof(name), q);
        published = t_stat(c, name, "published");
        delivered = t_stat(c, name, "delivered");
        redelivered = t_stat(c, name, "redelivered");
        T_EQ_U64(t_stat(c, name, "ready"), 0);
        T_EQ_U64(t_stat(c, name, "inflight"), 0);
        T_EQ_U64(t_stat(c, name, "delayed"), 0);
        T_EQ_U64(t_stat(c, name, "bytes"), 0);
        T_EQ_U64(t_stat(c, name, "dead_lettered"), 0);
        T_EQ_U64(t_stat(c, name, "acked"), published);
        T_EQ_U64(atomic_load(&qc->acked), published);
        T_EQ_U64(t->acked[q], published);
        T_EQ_U64(t_stat(c, name, "nacked"), atomic_load(&qc->nacked));
        T_EQ_U64(delivered - redelivered, published);
        T_ASSERT(atomic_load(&qc->receipts) <= delivered);
        T_ASSERT(atomic_load(&qc->redelivered) <= redelivered);
        t->timeouts += t_stat(c, name, "timeouts");
        if (q >= LOAD_SHORT_QUEUES)
            T_EQ_U64(t_stat(c, name, "timeouts"), 0);
    }
}

/* The broker as a whole: nothing held, every connection but the aborted producers' still
 * open, and no queue but ours (no dead-letter queue). */
static void
check_broker_stats(slabmq_client *c, int connections)
{
    slabmq_queue_info *list;
    size_t n;

    T_EQ_U64(t_stat(c, NULL, "messages"), 0);
    T_EQ_U64(t_stat(c, NULL, "inflight"), 0);
    T_EQ_U64(t_stat(c, NULL, "deliveries"), 0);
    wait_connections(c, (uint64_t)connections);
    T_OK(c, slabmq_list(c, &list, &n));
    T_EQ_INT(n, LOAD_QUEUES);
    slabmq_queue_list_free(list);
}

/* ---------------------------------------------------------------------------------------- */
/* The test                                                                                  */

static void
usage_of(struct load *l, struct usage *u)
{
    u->fds = broker_fds(&l->broker);
    u->rss_kb = t_broker_rss_kb(&l->broker);
    u->kept = kept_bytes(l->mon);
}

/* A broker allowed enough descriptors, its queues, the roles, and where it starts from. */
static void
load_start(struct load *l)
{
    raise_nofile();
    /* no consumer holds more than 68 (a FETCH of 64, a sleeper's 4) */
    t_broker_start(&l->broker, "--log-level", "warn", "--max-inflight", LOAD_WINDOW_STR, NULL);
    if (broker_nofile(&l->broker) < LOAD_NOFILE)
        t_fail(__FILE__, __LINE__, "the broker may open %llu files, fewer than %d",
               broker_nofile(&l->broker), LOAD_NOFILE);
    l->tags = calloc(LOAD_TAGS, sizeof(*l->tags));
    T_ASSERT(l->tags != NULL);
    l->mon = t_client(&l->broker);
    declare_queues(l->mon);
    assign_roles(l);
    usage_of(l, &l->base);
}

/* The threads open their connections; all 1,000 are open at once, each with its socket in
 * the broker, before any traffic starts. */
static void
load_open(struct load *l)
{
    atomic_store(&l->deadline_ms, t_now_ms() + LOAD_SETUP_MS);
    for (int i = 0; i < 2 * LOAD_THREADS; i++) {
        l->w[i] = (struct worker){l, i % LOAD_THREADS};
        T_EQ_INT(pthread_create(&l->th[i], NULL,
                                i < LOAD_THREADS ? producer_main : consumer_main, &l->w[i]),
                 0);
    }
    while (atomic_load(&l->ready) < 2 * LOAD_THREADS
           && t_now_ms() < atomic_load(&l->deadline_ms))
        t_sleep_ms(10);
    T_EQ_INT(atomic_load(&l->ready), 2 * LOAD_THREADS);
    T_EQ_U64(t_stat(l->mon, NULL, "connections"), LOAD_CONNECTIONS + 1);
    T_ASSERT(broker_fds(&l->broker) >= l->base.fds + LOAD_CONNECTIONS);
}

/* Wait until every producer is done and the broker holds no message, sampling the broker's
 * descriptors and resident set; fails at the deadline with what is left. */
static void
wait_drained(struct load *l)
{
    for (;;) {
        struct usage u = {broker_fds(&l->broker), t_broker_rss_kb(&l->broker), 0};
        l->peak.fds = u.fds > l->peak.fds ? u.fds : l->peak.fds;
        l->peak.rss_kb = u.rss_kb > l->peak.rss_kb ? u.rss_kb : l->peak.rss_kb;
        /* twice in a row: an aborted producer's last publishes, sent before it closed, may
         * still be unread when the broker answers the first */
        if (atomic_load(&l->producers_done) == LOAD_PRODUCERS
            && t_stat(l->mon, NULL, "messages") == 0) {
            t_sleep_ms(50);
            if (t_stat(l->mon, NULL, "messages") == 0)
                return;
        }
        if (t_now_ms() > atomic_load(&l->deadline_ms)) {
            for (int q = 0; q < LOAD_QUEUES; q++) {
                char name[32];
                queue_name(name, sizeof(name), q);
                fprintf(stderr, "%s: ready %llu inflight %llu delayed %llu\n", name,
                        (unsigned long long)t_stat(l->mon, name, "ready"),
                        (unsigned long long)t_stat(l->mon, name, "inflight"),
                        (unsigned long long)t_stat(l->mon, name, "delayed"));
            }
            LOAD_FAIL("not drained within %d ms: %d of %d producers done, %llu messages left",
                      LOAD_RUN_MS, atomic_load(&l->producers_done), LOAD_PRODUCERS,
                      (unsigned long long)t_stat(l->mon, NULL, "messages"));
        }
        t_sleep_ms(50);
    }
}

/* Start the traffic, wait until it is all published and acked, stop the threads. Returns
 * how long it took, ms. */
static int64_t
load_run(struct load *l)
{
    int64_t start = t_now_ms();

    atomic_store(&l->deadline_ms, start + LOAD_RUN_MS);
    atomic_store(&l->go, 1);
    wait_drained(l);
    atomic_store(&l->stop, 1);
    for (int i = 0; i < 2 * LOAD_THREADS; i++)
        pthread_join(l->th[i], NULL);
    return t_now_ms() - start;
}

static void
report(const struct load *l, const struct tally *t, int64_t ms)
{
    fprintf(stderr, "load: %d connections (%d producers, %d consumers, %d queues) in %lld ms: "
            "%llu sent, %llu confirmed, %llu stored unconfirmed; %llu received, %llu of them "
            "redelivered (deliveries > 1), %llu tags more than once; %llu abrupt closes, %llu "
            "NACKs, %llu visibility timeouts (%llu acks too late)\n",
            LOAD_CONNECTIONS, LOAD_PRODUCERS, LOAD_CONSUMERS, LOAD_QUEUES, (long long)ms,
            (unsigned long long)t->sent, (unsigned long long)t->confirmed,
            (unsigned long long)t->stored_unconfirmed, (unsigned long long)t->receipts,
            (unsigned long long)t->redelivered, (unsigned long long)t->repeated,
            (unsigned long long)atomic_load(&l->quits), (unsigned long long)t->nacked,
            (unsigned long long)t->timeouts, (unsigned long long)t->ack_lost);
}

/* Close every client and wait for the broker to close its side: back to the descriptors it
 * had with only the monitoring connection open. */
static void
close_all(struct load *l)
{
    for (int i = 0; i < LOAD_PRODUCERS; i++)
        slabmq_client_close(l->producers[i].c);
    for (int i = 0; i < LOAD_CONSUMERS; i++)
        slabmq_client_close(l->consumers[i].c);
    wait_fds(&l->broker, l->base.fds);
    wait_connections(l->mon, 1);
}

/* A second wave: 1,000 connections again, half publishing one message each and half
 * fetching and acking one, then all closed. The broker's pools were sized by the first
 * wave, so its descriptors come back to the start and its resident memory stays put
 * (checked by the caller). */
static void
second_wave(struct load *l)
{
    static slabmq_client *c[LOAD_CONNECTIONS];
    char q[32];

    for (int i = 0; i < LOAD_CONNECTIONS; i++)
        c[i] = load_connect(l, "w", i);
    wait_connections(l->mon, LOAD_CONNECTIONS + 1);
    for (int i = 0; i < LOAD_PRODUCERS; i++) {
        queue_name(q, sizeof(q), i % LOAD_QUEUES);
        T_OK(c[i], slabmq_publish(c[i], q, "wave", 4, NULL));
    }
    for (int i = LOAD_PRODUCERS; i < LOAD_CONNECTIONS; i++) {
        slabmq_batch *b;
        const slabmq_message *m;
        queue_name(q, sizeof(q), i % LOAD_QUEUES);
        T_OK(c[i], slabmq_fetch(c[i], q, 1, 1000, &b));
        T_EQ_INT(slabmq_batch_count(b), 1);
        m = slabmq_batch_get(b, 0);
        T_ASSERT(m->len == 4 && memcmp(m->data, "wave", 4) == 0 && m->deliveries == 1);
        T_OK(c[i], slabmq_ack(c[i], m->id));
        slabmq_batch_free(b);
    }
    for (int i = 0; i < LOAD_CONNECTIONS; i++)
        slabmq_client_close(c[i]);
    wait_fds(&l->broker, l->base.fds);
    wait_connections(l->mon, 1);
    T_EQ_U64(t_stat(l->mon, NULL, "messages"), 0);
}

/* After the clients have gone, the broker's descriptors are back to the start (checked by
 * close_all() and second_wave()), and its resident set is back too, up to the pools it
 * keeps on purpose; a second wave of as many connections adds nothing. */
static void
check_usage(const struct load *l, const struct usage *end, const struct usage *wave)
{
    fprintf(stderr, "broker fds: %d at start, %d at peak, %d at the end, %d after a second "
            "wave; RSS: %ld KiB at start, %ld at peak, %ld at the end (pools kept on purpose: "
            "%llu KiB, %llu at start), %ld after a second wave\n", l->base.fds, l->peak.fds,
            end->fds, wave->fds, l->base.rss_kb, l->peak.rss_kb, end->rss_kb,
            (unsigned long long)(end->kept >> 10), (unsigned long long)(l->base.kept >> 10),
            wave->rss_kb);
#ifndef SLABMQ_SANITIZED /* shadow memory and quarantine are not the broker's */
    T_ASSERT(end->rss_kb
             <= l->base.rss_kb + (long)((end->kept - l->base.kept) >> 10) + LOAD_RSS_SLACK_KB);
    T_ASSERT(wave->rss_kb <= end->rss_kb + LOAD_RSS_WAVE_KB);
#endif
}

static void
test_thousand_connections(void)
{
    static struct load l;
    struct tally t;
    struct usage end;
    struct usage wave;
    int64_t ms;
    int aborted = 0;

    load_start(&l);
    load_open(&l);
    ms = load_run(&l);
    for (int i = 0; i < LOAD_PRODUCERS; i++)
        aborted += l.producers[i].aborts;
    check_tags(&l, &t);
    check_queue_stats(&l, l.mon, &t);
    check_broker_stats(l.mon, LOAD_CONNECTIONS - aborted + 1);
    report(&l, &t, ms);
    close_all(&l);
    usage_of(&l, &end);
    second_wave(&l);
    usage_of(&l, &wave);
    check_usage(&l, &end, &wave);
    slabmq_client_close(l.mon);
    t_broker_stop(&l.broker);
    free(l.tags);
}

int
main(int argc, char **argv)
{
    static const struct t_case cases[] = {
        T_CASE(test_thousand_connections),
        {NULL, NULL},
    };

    return t_main(cases, argc, argv);
}
