/* SPDX-License-Identifier: MIT */
/* The producer and consumer threads of slabmq-bench, their payloads and the verification
 * of what consumers receive.
 *
 * Payload (--size >= 16 bytes): bytes 0-7 the publish time (CLOCK_MONOTONIC ns, native byte
 * order; with --rate the intended send time, so a stalled producer shows up as latency
 * instead of hiding it), bytes 8-15 the sequence (producer index << 48 | n), and from byte
 * 16 a pattern generated from the sequence, so a consumer can check every byte without
 * knowing anything else.
 *
 * Each thread owns its client. Producers publish with slabmq_publish_async() (or
 * slabmq_publish_batch_async()) inside the window and learn of confirmations through the
 * confirm callback; consumers fetch in batches and ack with slabmq_ack_async(), which goes
 * out in the same write as the next FETCH. Every loop ends on its count, its deadline, a
 * stall of BENCH_STALL_NS, or b->stop. */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define SEEN_CHUNK_WORDS ((size_t)1 << (BENCH_SEEN_CHUNK_BITS - 6))

int64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

slabmq_client *
bench_connect(const struct bench *b, const char *name)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_tls_options tls = {0};
    slabmq_client *c = NULL;
    char err[512];

    if (b->p.tls_ca) {
        tls.ca_file = b->p.tls_ca;
        o.tls = &tls;
    }
    o.host = b->p.host;
    o.port = b->p.port;
    o.timeout_ms = BENCH_TIMEOUT_MS;
    o.client_name = name;
    if (slabmq_client_connect_errbuf(&o, &c, err, sizeof(err)) != SLABMQ_OK) {
        fprintf(stderr, "slabmq-bench: %s\n", err);
        return NULL;
    }
    return c;
}

uint64_t
bench_share(const struct bench_params *p, int i)
{
    uint64_t n = (uint64_t)p->producers;

    return p->count / n + ((uint64_t)i < p->count % n ? 1 : 0);
}

/* Record the first error of w and make every thread wind down. */
static void __attribute__((format(printf, 2, 3)))
fail(struct bench_worker *w, const char *fmt, ...)
{
    va_list ap;

    if (!w->err[0]) {
        va_start(ap, fmt);
        vsnprintf(w->err, sizeof(w->err), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is above; a clang 14 defect (llvm/llvm-project#40656)
        va_end(ap);
    }
    atomic_store(&w->b->stop, 1);
}

/* The queue of w's next request: its own, or with --spread the next one in turn. */
static const char *
next_queue(struct bench_worker *w)
{
    const struct bench *b = w->b;
    const char *name;

    if (!b->spread_names)
        return w->q->name;
    name = b->spread_names[w->cursor];
    if (++w->cursor == b->p.spread)
        w->cursor = 0;
    return name;
}

/* --spread consumers: the next group of up to --spread-group queues in turn, for
 * one slabmq_fetch_any() (it takes from the first of them with a message); its size. */
static size_t
next_group(struct bench_worker *w, const char **names)
{
    const struct bench *b = w->b;
    size_t k = b->p.spread < b->p.spread_group ? b->p.spread : b->p.spread_group;

    for (size_t i = 0; i < k; i++)
        names[i] = next_queue(w);
    return k;
}

/* ---------------------------------------------------------------------------------------- */
/* Payloads                                                                                  */

/* The pattern word after x (xorshift64*); the state never becomes 0. */
static uint64_t
pattern_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static uint64_t
pattern_seed(uint64_t seq)
{
    return seq * 0x9E3779B97F4A7C15ull | 1;
}

static void
payload_fill(uint8_t *p, size_t size, int64_t ts, uint64_t seq)
{
    uint64_t x = pattern_seed(seq);

    memcpy(p, &ts, 8);
    memcpy(p + 8, &seq, 8);
    for (size_t off = 16; off < size; off += 8) {
        uint64_t v = pattern_next(&x);
        memcpy(p + off, &v, size - off < 8 ? size - off : 8);
    }
}

/* 1 if the bytes after the header are the pattern of seq. */
static int
payload_ok(const uint8_t *p, size_t size, uint64_t seq)
{
    uint64_t x = pattern_seed(seq);

    for (size_t off = 16; off < size; off += 8) {
        uint64_t v = pattern_next(&x);
        if (memcmp(p + off, &v, size - off < 8 ? size - off : 8) != 0)
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Producers                                                                                 */

/* Confirm callback: pops the message count of the oldest outstanding request (they are
 * confirmed in order) and counts it as published or refused. */
static void
producer_confirm(void *arg, uint64_t request, slabmq_status st, uint64_t value)
{
    struct bench_worker *w = arg;
    uint32_t m = 1;

    if (w->fifo_len > 0) {
        m = w->fifo[w->fifo_head];
        w->fifo_head = (w->fifo_head + 1) % w->fifo_cap;
        w->fifo_len--;
    }
    if (st == SLABMQ_OK) {
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + m,
                              memory_order_relaxed);
        return;
    }
    w->failed += m;
    fail(w, "publish refused by the broker: %s", slabmq_status_name(st));
}

/* Hand m payloads of buf to the library as one request. */
static int
publish(struct bench_worker *w, uint8_t *buf, slabmq_payload *pl, uint32_t m)
{
    size_t size = w->b->p.size;
    const char *name = next_queue(w);
    slabmq_status st;

    w->fifo[(w->fifo_head + w->fifo_len) % w->fifo_cap] = m;
    w->fifo_len++;
    if (w->b->p.confirm) { /* durability: publishes that say how far to get */
        slabmq_publish_options o = SLABMQ_PUBLISH_OPTIONS_INIT;
        o.confirm = (slabmq_confirm_level)w->b->p.confirm;
        for (uint32_t i = 0; i < m; i++)
            pl[i] = (slabmq_payload){buf + (size_t)i * size, size};
        st = m == 1 ? slabmq_publish_opts_async(w->c, name, buf, size, &o, NULL)
                    : slabmq_publish_batch_opts_async(w->c, name, pl, m, &o, NULL);
    } else if (m == 1) {
        st = slabmq_publish_async(w->c, name, buf, size, NULL);
    } else {
        for (uint32_t i = 0; i < m; i++)
            pl[i] = (slabmq_payload){buf + (size_t)i * size, size};
        st = slabmq_publish_batch_async(w->c, name, pl, m, NULL);
    }
    if (st != SLABMQ_OK) {
        fail(w, "publish: %s", slabmq_client_errmsg(w->c));
        return -1;
    }
    w->sent += m;
    return w->failed ? -1 : 0;
}

/* Send what is queued and wait for every confirmation. */
static int
flush(struct bench_worker *w)
{
    slabmq_status st = slabmq_flush(w->c);

    if (st != SLABMQ_OK) {
        fail(w, "publish: %s", slabmq_client_errmsg(w->c));
        return -1;
    }
    return 0;
}

/* Paced runs: wait until 'due', sending what is queued first (slabmq_send: no wait for
 * confirmations) so it goes out now rather than when 64 KiB have piled up. Sleeps at most
 * 100 ms at a time to notice b->stop. */
static int
wait_until(struct bench_worker *w, int64_t due)
{
    if (slabmq_send(w->c) != SLABMQ_OK) {
        fail(w, "publish: %s", slabmq_client_errmsg(w->c));
        return -1;
    }
    if (w->failed)
        return -1;
    for (int64_t now = bench_now_ns(); now < due && !atomic_load(&w->b->stop);
         now = bench_now_ns()) {
        int64_t until = due - now > 100000000 ? now + 100000000 : due;
        struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    return 0;
}

/* How many messages to put in the next request: all that are due (paced) or a full batch,
 * within what is left. 0 when the producer is done. *now receives the clock reading, the
 * publish time of unpaced messages (one reading per request: at ~25 ns each they are a
 * visible share of a 16-byte publish). */
static uint32_t
next_batch(struct bench_worker *w, uint64_t n, int64_t start, int64_t interval, uint32_t k,
           int64_t *now)
{
    const struct bench *b = w->b;
    uint64_t left = b->p.count ? w->share - n : UINT64_MAX;
    uint64_t m = k;

    if (left == 0 || atomic_load_explicit(&b->stop, memory_order_relaxed))
        return 0;
    *now = bench_now_ns();
    if (!b->p.count && *now >= b->end_ns)
        return 0;
    if (interval) {
        int64_t due = start + (int64_t)n * interval;
        if (due > *now) {
            if (wait_until(w, due) || atomic_load(&b->stop))
                return 0;
            *now = bench_now_ns();
        }
        m = (uint64_t)((*now - start) / interval) + 1 - n; /* every message now due */
        if (m > k)
            m = k;
    }
    return (uint32_t)(m < left ? m : left);
}

/* Publish this producer's share (or until b->end_ns), paced when --rate is set. */
static void
produce(struct bench_worker *w, uint8_t *buf, slabmq_payload *pl, uint32_t k)
{
    const struct bench_params *p = &w->b->p;
    int64_t interval = p->rate > 0 ? (int64_t)(1e9 * p->producers / p->rate) : 0;
    int64_t start = bench_now_ns() + (p->producers > 1 ? interval * w->index / p->producers : 0);
    uint64_t base = (uint64_t)w->index << BENCH_SEQ_BITS;
    uint64_t n = 0;
    uint32_t m;
    int64_t now = 0;

    if (p->rate > 0 && interval < 1)
        interval = 1;
    if (interval) /* wake on schedule: the default 50 us timer slack would count as latency */
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    w->first_ns = interval ? start : bench_now_ns();
    while ((m = next_batch(w, n, start, interval, k, &now)) > 0) {
        for (uint32_t i = 0; i < m; i++) {
            int64_t ts = interval ? start + (int64_t)(n + i) * interval : now;
            payload_fill(buf + (size_t)i * p->size, p->size, ts, base + n + i);
        }
        if (publish(w, buf, pl, m))
            return;
        n += m;
    }
    if (!atomic_load(&w->b->stop))
        flush(w);
}

void *
bench_producer_main(void *arg)
{
    struct bench_worker *w = arg;
    const struct bench_params *p = &w->b->p;
    uint32_t k = p->batch_publish > 1 ? p->batch_publish : 1;
    uint8_t *buf = malloc((size_t)k * p->size);
    slabmq_payload *pl = malloc((size_t)k * sizeof(*pl));

    w->fifo_cap = p->window + 2;
    w->fifo = malloc(w->fifo_cap * sizeof(*w->fifo));
    if (!buf || !pl || !w->fifo) {
        fail(w, "%s", "out of memory");
        goto out;
    }
    /* --window counts messages; the library's window counts requests */
    slabmq_client_set_window(w->c, p->window / k ? p->window / k : 1);
    slabmq_client_on_confirm(w->c, producer_confirm, w);
    produce(w, buf, pl, k);
    w->last_ns = bench_now_ns();
    /* what this producer got confirmed becomes visible to the consumers of its queue */
    atomic_fetch_add(&w->q->confirmed, atomic_load(&w->done));
out:
    atomic_fetch_sub(&w->q->producers_left, 1);
    slabmq_client_on_confirm(w->c, NULL, NULL);
    free(buf);
    free(pl);
    free(w->fifo);
    w->fifo = NULL;
    atomic_fetch_sub(&w->b->running, 1);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Verification                                                                              */

/* Set bit n of a chunked bitmap, allocating its chunk on first use; 1 if it was set
 * already, -1 when out of memory. */
static int
bitmap_set(_Atomic(atomic_uint_fast64_t *) *chunks, uint64_t n)
{
    _Atomic(atomic_uint_fast64_t *) *slot = &chunks[n >> BENCH_SEEN_CHUNK_BITS];
    atomic_uint_fast64_t *chunk = atomic_load(slot);
    uint64_t bit = n & (((uint64_t)1 << BENCH_SEEN_CHUNK_BITS) - 1);
    uint64_t mask = (uint64_t)1 << (bit & 63);

    if (!chunk) {
        atomic_uint_fast64_t *fresh = calloc(SEEN_CHUNK_WORDS, sizeof(*fresh));
        atomic_uint_fast64_t *expected = NULL;
        if (!fresh)
            return -1;
        if (atomic_compare_exchange_strong(slot, &expected, fresh)) {
            chunk = fresh;
        } else {
            free(fresh);
            chunk = expected;
        }
    }
    return (atomic_fetch_or_explicit(&chunk[bit >> 6], mask, memory_order_relaxed) & mask) != 0;
}

/* Mark sequence n of producer as received; 1 if it was already (it is then also marked
 * in the duplicate bitmap), -1 when out of memory. */
static int
seen_mark(struct bench *b, uint64_t producer, uint64_t n)
{
    int r = bitmap_set(b->seen[producer].chunks, n);

    if (r == 1 && bitmap_set(b->seen[producer].dups, n) < 0)
        return -1;
    return r;
}

/* Check one message: length, sequence, pattern, and whether it came before. */
static void
verify(struct bench_worker *w, const slabmq_message *m)
{
    struct bench *b = w->b;
    uint64_t seq;
    uint64_t producer;
    uint64_t n;
    int r;

    if (m->len != b->p.size) {
        w->corrupt++;
        return;
    }
    memcpy(&seq, (const uint8_t *)m->data + 8, 8);
    producer = seq >> BENCH_SEQ_BITS;
    n = seq & (((uint64_t)1 << BENCH_SEQ_BITS) - 1);
    if (producer >= (uint64_t)b->p.producers
        || n >= (uint64_t)BENCH_SEEN_CHUNKS << BENCH_SEEN_CHUNK_BITS
        || !payload_ok(m->data, m->len, seq)) {
        w->corrupt++;
        return;
    }
    r = seen_mark(b, producer, n);
    if (r < 0)
        fail(w, "%s", "out of memory for the verification bitmap");
    else if (r > 0)
        w->duplicates++;
}

/* Popcount of the bits of word 'bits' whose sequence (base + bit) is below 'limit'. */
static void
count_word(uint64_t bits, uint64_t base, uint64_t limit, uint64_t *below, uint64_t *above)
{
    uint64_t low = bits;

    if (base >= limit)
        low = 0;
    else if (limit - base < 64)
        low = bits & (((uint64_t)1 << (limit - base)) - 1);
    *below += (uint64_t)__builtin_popcountll(low);
    *above += (uint64_t)__builtin_popcountll(bits & ~low);
}

/* Count the bits of one chunked bitmap below and from 'limit'. */
static void
count_bitmap(_Atomic(atomic_uint_fast64_t *) *chunks, uint64_t limit, uint64_t *below,
             uint64_t *above)
{
    for (uint64_t ch = 0; ch < BENCH_SEEN_CHUNKS; ch++) {
        atomic_uint_fast64_t *chunk = atomic_load(&chunks[ch]);
        for (size_t wd = 0; chunk && wd < SEEN_CHUNK_WORDS; wd++)
            count_word(atomic_load(&chunk[wd]), (ch << BENCH_SEEN_CHUNK_BITS) + wd * 64, limit,
                       below, above);
    }
}

void
bench_seen_count(const struct bench *b, const uint64_t *sent, struct bench_tally *t)
{
    uint64_t ignored = 0;

    t->unique = t->stray = t->repeated = 0;
    for (int i = 0; b->seen && i < b->p.producers; i++) {
        count_bitmap(b->seen[i].chunks, sent[i], &t->unique, &t->stray);
        count_bitmap(b->seen[i].dups, sent[i], &t->repeated, &ignored);
    }
}

void
bench_seen_free(struct bench *b)
{
    for (int i = 0; b->seen && i < b->p.producers; i++) {
        for (int ch = 0; ch < BENCH_SEEN_CHUNKS; ch++) {
            free(atomic_load(&b->seen[i].chunks[ch]));
            free(atomic_load(&b->seen[i].dups[ch]));
        }
    }
    free(b->seen);
    b->seen = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Consumers                                                                                 */

/* Confirm callback of a consumer's pipelined ACKs: value is how many were settled. */
static void
consumer_confirm(void *arg, uint64_t request, slabmq_status st, uint64_t value)
{
    struct bench_worker *w = arg;

    if (st == SLABMQ_OK) {
        w->acked += value;
        return;
    }
    w->failed++;
    fail(w, "ack refused by the broker: %s", slabmq_status_name(st));
}

/* 1 once the queue has delivered every message its producers got confirmed. */
static int
queue_drained(const struct bench_queue *q)
{
    if (atomic_load(&q->producers_left) > 0)
        return 0;
    return atomic_load(&q->consumed) >= atomic_load(&q->confirmed);
}

/* Take in one fetched batch received at 'now': latency, checks, acks. */
static int
consume_batch(struct bench_worker *w, const slabmq_batch *bt, int64_t now, uint64_t *ids)
{
    const struct bench_params *p = &w->b->p;
    size_t n = slabmq_batch_count(bt);

    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(bt, i);
        int64_t ts;
        if (m->len >= 8) {
            memcpy(&ts, m->data, 8);
            hist_record(w->h, now > ts ? (uint64_t)(now - ts) : 0);
        }
        if (m->deliveries > 1)
            w->redelivered++;
        if (p->verify)
            verify(w, m);
        ids[i] = m->id;
        if (p->ack == BENCH_ACK_EACH && slabmq_ack_async(w->c, &m->id, 1, NULL) != SLABMQ_OK) {
            fail(w, "ack: %s", slabmq_client_errmsg(w->c));
            return -1;
        }
    }
    if (p->ack == BENCH_ACK_BATCH && slabmq_ack_async(w->c, ids, n, NULL) != SLABMQ_OK) {
        fail(w, "ack: %s", slabmq_client_errmsg(w->c));
        return -1;
    }
    return 0;
}

/* Fetch (or with --subscribe, take pushed batches) until the queue is drained, b->stop, or
 * nothing arrives for BENCH_STALL_NS. A subscriber's acks of one batch go out when
 * slabmq_receive() next waits, a fetcher's with its next FETCH. FETCHes are kept ahead as
 * --fetch-ahead says (default 1: the next batch is on its way while this one is taken in).
 * With --spread each FETCH names the next 16 queues in turn (slabmq_fetch_any: the first
 * with a message) without waiting, with 15 kept ahead by default (one fewer than the group: none sent ahead finds its group empty): a FETCH per queue, several
 * in flight, as a Redis client keeps several RPOP key COUNT in flight; "until empty" means
 * a whole round of empty groups. */
static void
consume(struct bench_worker *w, uint64_t *ids)
{
    struct bench *b = w->b;
    unsigned flags = b->p.ack == BENCH_ACK_NONE ? SLABMQ_FETCH_NOACK : 0;
    uint32_t wait_ms = b->p.spread ? 0 : w->q->expected == UINT64_MAX ? 1000 : 100;
    int64_t stall = bench_now_ns() + BENCH_STALL_NS;
    uint32_t empty = 0; /* empty fetches in a row */
    uint32_t rounds = 1; /* empty fetches that make a round */
    uint64_t sub;
    const char *group[SLABMQ_FETCH_QUEUES_MAX];

    if (b->p.subscribe && slabmq_subscribe(w->c, w->q->name, b->p.subscribe, &sub)) {
        fail(w, "subscribe: %s", slabmq_client_errmsg(w->c));
        return;
    }
    if (!b->p.subscribe && slabmq_client_set_fetch_ahead(w->c, b->p.fetch_ahead)) {
        fail(w, "fetch ahead: %s", slabmq_client_errmsg(w->c));
        return;
    }
    if (b->p.spread)
        rounds = (b->p.spread + b->p.spread_group - 1) / b->p.spread_group;
    while (!atomic_load(&b->stop) && !queue_drained(w->q)) {
        slabmq_batch *bt = NULL;
        int64_t now;
        size_t n;
        int rc;
        if (b->p.subscribe ? slabmq_receive(w->c, (int)wait_ms, &bt)
            : b->p.spread  ? slabmq_fetch_any(w->c, group, next_group(w, group),
                                              b->p.fetch_batch, wait_ms, flags, &bt)
                           : slabmq_fetch_flags(w->c, next_queue(w), b->p.fetch_batch,
                                                wait_ms, flags, &bt)) {
            fail(w, "%s: %s", b->p.subscribe ? "receive" : "fetch", slabmq_client_errmsg(w->c));
            slabmq_batch_free(bt);
            return;
        }
        now = bench_now_ns();
        n = slabmq_batch_count(bt);
        if (n == 0) {
            slabmq_batch_free(bt);
            if (w->q->expected == UINT64_MAX && ++empty >= rounds)
                return; /* drain until empty: it is */
            if (now > stall) {
                fail(w, "%s", "no message for 30 s: giving up");
                return;
            }
            continue;
        }
        stall = now + BENCH_STALL_NS;
        empty = 0;
        if (!w->first_ns)
            w->first_ns = now;
        w->last_ns = now;
        rc = consume_batch(w, bt, now, ids);
        slabmq_batch_free(bt);
        atomic_fetch_add(&w->q->consumed, n);
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + n,
                              memory_order_relaxed);
        if (rc || w->failed)
            return;
    }
}

void *
bench_consumer_main(void *arg)
{
    struct bench_worker *w = arg;
    const struct bench_params *p = &w->b->p;
    uint32_t most = p->subscribe > p->fetch_batch ? p->subscribe : p->fetch_batch;
    uint64_t *ids = malloc(most * sizeof(*ids));

    if (!ids) {
        fail(w, "%s", "out of memory");
        atomic_fetch_sub(&w->b->running, 1);
        return NULL;
    }
    /* no window to set: acks are not counted against it (their limit is the broker's
     * in-flight limit), so a whole batch of them goes out with the next FETCH */
    slabmq_client_on_confirm(w->c, consumer_confirm, w);
    consume(w, ids);
    if (p->ack != BENCH_ACK_NONE && !w->err[0] && slabmq_flush(w->c) != SLABMQ_OK)
        fail(w, "ack: %s", slabmq_client_errmsg(w->c));
    slabmq_client_on_confirm(w->c, NULL, NULL);
    free(ids);
    atomic_fetch_sub(&w->b->running, 1);
    return NULL;
}
