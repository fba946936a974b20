/* SPDX-License-Identifier: MIT */
/* Durability (--durability sqlite, docs/durability.md) against real brokers, killed with
 * SIGKILL and restarted on the same data directory:
 *   - recovery: messages in order with their priority, delivery count, delay, TTL and
 *     dead-letter info, queue settings, ids continuing, in-memory queues gone;
 *   - the confirmation waits for the commit (an injected commit delay must delay it), while
 *     PING and in-memory queues stay fast; the same with another process holding the
 *     database's write lock;
 *   - crash rounds: kill -9 at random moments under publish and ack load at the synced
 *     level; every confirmed message survives or was acked, nothing is invented. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "slabmq.h"
#include "t.h"

/* A fresh data directory for a case. */
static void
data_dir(char *dir, size_t n)
{
    t_temp_dir(dir, n, "durable");
}

static void
start(struct t_broker *b, const char *dir)
{
    t_broker_start(b, "--durability", "sqlite", "--data-dir", dir, NULL);
}

static void
publish_opts(slabmq_client *c, const char *q, const char *body, slabmq_publish_options o)
{
    T_OK(c, slabmq_publish_opts(c, q, body, strlen(body), &o, NULL, NULL));
}

/* Fetch one message; its payload into out. Returns its id (0 if none). */
static uint64_t
fetch1(slabmq_client *c, const char *q, char *out, size_t cap, uint64_t *deliveries)
{
    slabmq_batch *b;
    uint64_t id = 0;

    T_OK(c, slabmq_fetch(c, q, 1, 0, &b));
    out[0] = '\0';
    if (slabmq_batch_count(b) == 1) {
        const slabmq_message *m = slabmq_batch_get(b, 0);
        size_t n = m->len < cap - 1 ? m->len : cap - 1;
        memcpy(out, m->data, n);
        out[n] = '\0';
        id = m->id;
        if (deliveries)
            *deliveries = m->deliveries;
    }
    slabmq_batch_free(b);
    return id;
}

/* ---------------------------------------------------------------------------------------- */

static void
test_recovery_after_kill(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_queue_options qo = SLABMQ_QUEUE_OPTIONS_INIT;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    char dir[64];
    char body[64];
    uint64_t id;
    uint64_t last_id;
    uint64_t deliveries;
    static const char *want[] = {"m0", "ttl", "m1", "m2", "m3"};

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    qo.max_deliveries = 3;
    qo.visibility_ms = 4000;
    T_OK(c, slabmq_declare(c, "orders", &qo, NULL));
    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof(body), "m%d", i);
        T_OK(c, slabmq_publish(c, "orders", body, strlen(body), NULL));
    }
    po.priority = 5;
    publish_opts(c, "orders", "p5", po);
    po = (slabmq_publish_options)SLABMQ_PUBLISH_OPTIONS_INIT;
    po.delay_ms = 60000;
    publish_opts(c, "orders", "late", po);
    /* p5 first: acked; m0 NACKed once, then delivered again and left in flight */
    id = fetch1(c, "orders", body, sizeof(body), NULL);
    T_EQ_STR(body, "p5");
    T_OK(c, slabmq_ack(c, id));
    id = fetch1(c, "orders", body, sizeof(body), NULL);
    T_EQ_STR(body, "m0");
    T_OK(c, slabmq_nack(c, id, 0));
    id = fetch1(c, "orders", body, sizeof(body), &deliveries);
    T_EQ_STR(body, "m0");
    T_EQ_U64(deliveries, 2);
    po = (slabmq_publish_options)SLABMQ_PUBLISH_OPTIONS_INIT;
    po.ttl_ms = 600000;
    publish_opts(c, "orders", "ttl", po);
    /* a dead letter, and a queue kept in memory only */
    qo = (slabmq_queue_options)SLABMQ_QUEUE_OPTIONS_INIT;
    qo.max_deliveries = 1;
    T_OK(c, slabmq_declare(c, "bad", &qo, NULL));
    T_OK(c, slabmq_publish(c, "bad", "poison", 6, NULL));
    id = fetch1(c, "bad", body, sizeof(body), NULL);
    T_OK(c, slabmq_nack(c, id, 0));
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(c, slabmq_declare(c, "scratch", &mem, NULL));
    T_OK(c, slabmq_publish(c, "scratch", "gone", 4, NULL));
    T_EQ_U64(t_stat(c, "scratch", "durable"), 0);
    T_EQ_U64(t_stat(c, "orders", "durable"), 1);
    /* a written-level publish after all that: once confirmed, all of it is committed */
    po = (slabmq_publish_options)SLABMQ_PUBLISH_OPTIONS_INIT;
    po.confirm = SLABMQ_CONFIRM_WRITTEN;
    T_OK(c, slabmq_publish_opts(c, "marker", "x", 1, &po, &last_id, NULL));
    T_EQ_INT(slabmq_last_confirm_level(c), SLABMQ_CONFIRM_WRITTEN);
    t_broker_kill(&b); /* with m0 still in flight (closing first would requeue it) */
    slabmq_client_close(c);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "orders", "max_deliveries"), 3);
    T_EQ_U64(t_stat(c, "orders", "visibility_ms"), 4000);
    T_EQ_U64(t_stat(c, "orders", "ready"), 5); /* m0 (was in flight), ttl, m1-m3 */
    T_EQ_U64(t_stat(c, "orders", "delayed"), 1);
    T_ASSERT(t_stat(c, "orders", "next_due_ms") > 50000);
    {
        slabmq_stats *st = NULL;
        T_EQ_INT(slabmq_stats_get(c, "scratch", &st), SLABMQ_ERR_NOT_FOUND); /* not kept */
        slabmq_stats_free(st);
    }
    for (int i = 0; i < 5; i++) {
        id = fetch1(c, "orders", body, sizeof(body), &deliveries);
        T_EQ_STR(body, want[i]);
        T_ASSERT(id < last_id);
        T_EQ_U64(deliveries, i == 0 ? 2 : 1); /* the NACK's count was kept */
        T_OK(c, slabmq_ack(c, id));
    }
    {
        slabmq_batch *bt;
        const slabmq_message *m;
        T_OK(c, slabmq_peek(c, "bad.dlq", 10, &bt));
        T_EQ_U64(slabmq_batch_count(bt), 1);
        m = slabmq_batch_get(bt, 0);
        T_ASSERT(m->dead != NULL);
        T_EQ_STR(m->dead->reason, "delivery-limit");
        T_EQ_STR(m->dead->queue, "bad");
        slabmq_batch_free(bt);
    }
    T_OK(c, slabmq_publish(c, "orders", "new", 3, &id));
    T_ASSERT(id > last_id); /* ids go on from the stored ones */
    slabmq_client_close(c);
    t_broker_stop(&b); /* a clean stop, and a clean start after it */
    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "orders", "ready"), 1);
    T_EQ_U64(t_stat(c, NULL, "store_state"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */

static void
test_confirm_waits_for_the_commit(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *other;
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    char dir[64];
    int64_t t0;
    int64_t took;

    data_dir(dir, sizeof(dir));
    setenv("SLABMQ_STORE_COMMIT_DELAY_MS", "400", 1); /* the writer sleeps before COMMIT */
    start(&b, dir);
    unsetenv("SLABMQ_STORE_COMMIT_DELAY_MS");
    p = t_client(&b);
    other = t_client(&b);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(other, slabmq_declare(other, "fast", &mem, NULL));
    T_OK(p, slabmq_declare(p, "slow", NULL, NULL)); /* creating it is a commit too */
    for (int level = SLABMQ_CONFIRM_WRITTEN; level <= SLABMQ_CONFIRM_SYNCED; level++) {
        po.confirm = (slabmq_confirm_level)level;
        t0 = t_now_ms();
        T_OK(p, slabmq_publish_opts_async(p, "slow", "x", 1, &po, NULL));
        T_OK(p, slabmq_send(p));
        t_sleep_ms(50);
        /* the event loop is not waiting for SQLite: PING and a memory queue are quick */
        {
            int64_t t1 = t_now_ms();
            slabmq_batch *bt;
            T_OK(other, slabmq_ping(other));
            T_OK(other, slabmq_publish(other, "fast", "y", 1, NULL));
            T_OK(other, slabmq_fetch(other, "fast", 1, 0, &bt));
            T_EQ_U64(slabmq_batch_count(bt), 1);
            T_OK(other, slabmq_ack(other, slabmq_batch_get(bt, 0)->id));
            slabmq_batch_free(bt);
            T_ASSERT(t_now_ms() - t1 < 200);
        }
        T_EQ_U64(slabmq_client_outstanding(p), 1); /* not confirmed yet */
        T_OK(p, slabmq_flush(p));
        took = t_now_ms() - t0;
        fprintf(stderr, "confirm at level %d took %lld ms (commit delay 400 ms)\n", level,
                (long long)took);
        T_ASSERT(took >= 400); /* the confirmation came after the (delayed) commit */
    }
    /* the memory level does not wait */
    po.confirm = SLABMQ_CONFIRM_MEMORY;
    t0 = t_now_ms();
    T_OK(p, slabmq_publish_opts(p, "slow", "z", 1, &po, NULL, NULL));
    T_ASSERT(t_now_ms() - t0 < 200);
    T_EQ_INT(slabmq_last_confirm_level(p), SLABMQ_CONFIRM_MEMORY);
    slabmq_client_close(p);
    slabmq_client_close(other);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

static void
test_outside_write_lock(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *other;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    char dir[64];
    char path[128];
    sqlite3 *db;
    int64_t t0;

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    p = t_client(&b);
    other = t_client(&b);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(other, slabmq_declare(other, "fast", &mem, NULL));
    T_OK(p, slabmq_publish(p, "durable", "before", 6, NULL));
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    t0 = t_now_ms();
    T_OK(p, slabmq_publish_async(p, "durable", "locked", 6, NULL));
    T_OK(p, slabmq_send(p));
    for (int i = 0; i < 10; i++) { /* 1.5 s with the lock held by "another process" */
        int64_t t1 = t_now_ms();
        slabmq_batch *bt;
        T_OK(other, slabmq_ping(other));
        T_OK(other, slabmq_publish(other, "fast", "y", 1, NULL));
        T_OK(other, slabmq_fetch(other, "fast", 1, 0, &bt));
        T_OK(other, slabmq_ack(other, slabmq_batch_get(bt, 0)->id));
        slabmq_batch_free(bt);
        T_ASSERT(t_now_ms() - t1 < 200);
        t_sleep_ms(150);
    }
    T_EQ_U64(slabmq_client_outstanding(p), 1); /* cannot commit: not confirmed */
    T_EQ_INT(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    T_OK(p, slabmq_flush(p)); /* confirmed once the lock is gone */
    T_ASSERT(t_now_ms() - t0 >= 1500);
    slabmq_client_close(p);
    slabmq_client_close(other);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Crash rounds                                                                              */

#define ROUNDS 50
#define PER_ROUND 4096 /* tags per round */
#define NTAGS (ROUNDS * PER_ROUND)

enum { T_SENT = 1, T_CONFIRMED = 2, T_ACK_SENT = 4, T_ACK_CONFIRMED = 8, T_SEEN = 16 };

struct crash {
    uint8_t tag[NTAGS];        /* what happened to each tag */
    uint64_t req_tag[1 << 16]; /* request id -> tag + 1, for the confirm callback */
    pthread_mutex_t mu;
    int port;
    uint64_t invented;
    uint64_t revived; /* acked (confirmed) messages that came back after a crash */
};

static struct crash cr;

static void
on_confirm(void *arg, const slabmq_confirm *cf)
{
    (void)arg;
    if (cf->status == SLABMQ_OK && cf->request < (1u << 16) && cr.req_tag[cf->request]) {
        pthread_mutex_lock(&cr.mu);
        cr.tag[cr.req_tag[cf->request] - 1] |= T_CONFIRMED;
        pthread_mutex_unlock(&cr.mu);
    }
}

struct producer_arg {
    int round;
};

static void *
producer(void *arg)
{
    struct producer_arg *a = arg;
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_client *c;
    char body[32];

    o.port = (uint16_t)cr.port;
    o.timeout_ms = 5000;
    if (slabmq_client_connect(&o, &c) != SLABMQ_OK)
        return NULL;
    slabmq_client_on_confirm_ex(c, on_confirm, NULL);
    slabmq_client_set_window(c, 256);
    po.confirm = SLABMQ_CONFIRM_SYNCED; /* the strictest level */
    for (int i = 0; i < PER_ROUND; i++) {
        uint32_t tag = (uint32_t)(a->round * PER_ROUND + i);
        uint64_t req;
        snprintf(body, sizeof(body), "%u", tag);
        pthread_mutex_lock(&cr.mu);
        cr.tag[tag] |= T_SENT;
        pthread_mutex_unlock(&cr.mu);
        if (slabmq_publish_opts_async(c, "crash", body, strlen(body), &po, &req) != SLABMQ_OK)
            break;
        if (req < (1u << 16))
            cr.req_tag[req] = tag + 1;
        if (i % 64 == 63 && slabmq_send(c) != SLABMQ_OK)
            break;
    }
    slabmq_flush(c);
    slabmq_client_close(c);
    return NULL;
}

/* Take what is there and ack it; in 'drain' mode (right after a restart) check each. */
static int
consume(slabmq_client *c, int drain, int wait_ms)
{
    slabmq_batch *b;
    uint64_t ids[256];
    uint32_t tags[256];
    size_t n;

    if (slabmq_fetch(c, "crash", 256, wait_ms, &b) != SLABMQ_OK)
        return -1;
    n = slabmq_batch_count(b);
    pthread_mutex_lock(&cr.mu);
    for (size_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        char s[32];
        size_t k = m->len < 31 ? m->len : 31;
        unsigned long t;
        memcpy(s, m->data, k);
        s[k] = '\0';
        t = strtoul(s, NULL, 10);
        ids[i] = m->id;
        tags[i] = (uint32_t)(t < NTAGS ? t : 0);
        if (t >= NTAGS || !(cr.tag[t] & T_SENT))
            cr.invented++;
        else if (drain && (cr.tag[t] & T_ACK_CONFIRMED))
            cr.revived++;
        if (t < NTAGS) {
            cr.tag[t] |= T_SEEN | T_ACK_SENT;
        }
    }
    pthread_mutex_unlock(&cr.mu);
    slabmq_batch_free(b);
    if (n == 0)
        return 0;
    if (slabmq_ack_batch(c, ids, n, NULL) != SLABMQ_OK)
        return -1;
    pthread_mutex_lock(&cr.mu);
    for (size_t i = 0; i < n; i++)
        cr.tag[tags[i]] |= T_ACK_CONFIRMED;
    pthread_mutex_unlock(&cr.mu);
    return (int)n;
}

static void *
consumer(void *arg)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c;
    int64_t end = t_now_ms() + 3000;

    (void)arg;
    o.port = (uint16_t)cr.port;
    o.timeout_ms = 5000;
    if (slabmq_client_connect(&o, &c) != SLABMQ_OK)
        return NULL;
    while (t_now_ms() < end && consume(c, 0, 50) >= 0)
        ;
    slabmq_client_close(c);
    return NULL;
}

static void
test_crash_rounds(void)
{
    struct t_broker b;
    char dir[64];
    uint64_t lost = 0;
    uint64_t confirmed = 0;
    unsigned seed = (unsigned)t_now_ms();

    memset(&cr, 0, sizeof(cr));
    pthread_mutex_init(&cr.mu, NULL);
    data_dir(dir, sizeof(dir));
    for (int round = 0; round <= ROUNDS; round++) {
        slabmq_client *c;
        struct producer_arg pa = {round};
        pthread_t pt;
        pthread_t ct;
        start(&b, dir);
        cr.port = b.port;
        c = t_client(&b);
        while (consume(c, 1, 0) > 0) /* what survived the last crash */
            ;
        slabmq_client_close(c);
        if (round == ROUNDS) {
            t_broker_stop(&b);
            break;
        }
        memset(cr.req_tag, 0, sizeof(cr.req_tag));
        pthread_create(&pt, NULL, producer, &pa);
        pthread_create(&ct, NULL, consumer, NULL);
        t_sleep_ms(30 + (int)(rand_r(&seed) % 250)); /* a random moment under load */
        t_broker_kill(&b);
        pthread_join(pt, NULL);
        pthread_join(ct, NULL);
    }
    for (uint32_t t = 0; t < NTAGS; t++) {
        if (!(cr.tag[t] & T_CONFIRMED))
            continue;
        confirmed++;
        if (!(cr.tag[t] & (T_SEEN | T_ACK_SENT)))
            lost++;
    }
    fprintf(stderr,
            "crash rounds: %d kills; %llu publishes confirmed (synced), %llu of them lost, "
            "%llu messages invented, %llu acked messages came back after a crash\n",
            ROUNDS, (unsigned long long)confirmed, (unsigned long long)lost,
            (unsigned long long)cr.invented, (unsigned long long)cr.revived);
    T_ASSERT(confirmed > ROUNDS); /* the rounds did put load on it */
    T_EQ_U64(lost, 0);
    T_EQ_U64(cr.invented, 0);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Disk full                                                                                 */

static int full_ok;
static int full_refused;
static int full_other;

static void
count_confirm(void *arg, const slabmq_confirm *cf)
{
    (void)arg;
    if (cf->status == SLABMQ_OK)
        full_ok++;
    else if (cf->status == SLABMQ_ERR_STORAGE_FULL)
        full_refused++;
    else
        full_other++;
}

static int
mount_tmpfs(const char *dir, const char *size)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=%s tmpfs '%s' 2>/dev/null", size, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_disk_full(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *mon;
    slabmq_client *n;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    char dir[64];
    char cmd[256];
    static char kib[1024];
    int sent = 0;
    int64_t end;
    slabmq_batch *bt;

    data_dir(dir, sizeof(dir));
    if (mount_tmpfs(dir, "1m")) {
        fprintf(stderr, "SKIP: cannot mount a small tmpfs here (needs root and mount "
                        "privileges); the disk-full behaviour is not checked\n");
        t_remove_dir(dir);
        return;
    }
    memset(kib, 'f', sizeof(kib));
    start(&b, dir);
    p = t_client(&b);
    mon = t_client(&b);
    n = t_client(&b);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(n, slabmq_declare(n, "memory-only", &mem, NULL));
    slabmq_client_set_window(p, 64);
    slabmq_client_on_confirm_ex(p, count_confirm, NULL);
    end = t_now_ms() + 20000;
    while (sent < 20000 && t_now_ms() < end && t_stat(mon, NULL, "store_state") == 0) {
        /* never a full window: a publish would then wait for confirmations held back */
        for (int i = 0; i < 16 && slabmq_client_outstanding(p) < 48; i++, sent++)
            T_OK(p, slabmq_publish_async(p, "big", kib, sizeof(kib), NULL));
        T_OK(p, slabmq_send(p));
        t_sleep_ms(2);
    }
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 1); /* full, after about a MiB */
    fprintf(stderr, "disk full after %d publishes of 1 KiB\n", sent);
    /* new durable publishes are refused at once, clearly; memory queues and consumers go on */
    T_EQ_INT(slabmq_publish(n, "big", "x", 1, NULL), SLABMQ_ERR_STORAGE_FULL);
    T_OK(n, slabmq_publish(n, "memory-only", "y", 1, NULL));
    T_OK(mon, slabmq_fetch(mon, "big", 10, 0, &bt));
    T_ASSERT(slabmq_batch_count(bt) > 0);
    for (size_t i = 0; i < slabmq_batch_count(bt); i++)
        T_OK(mon, slabmq_ack(mon, slabmq_batch_get(bt, i)->id));
    slabmq_batch_free(bt);
    T_OK(mon, slabmq_ping(mon));
    /* room again: the writer's retry commits, held confirmations go out, publishing works */
    snprintf(cmd, sizeof(cmd), "mount -o remount,size=64m '%s'", dir);
    T_EQ_INT(system(cmd), 0);
    end = t_now_ms() + 10000;
    while (t_now_ms() < end && t_stat(mon, NULL, "store_state") != 0)
        t_sleep_ms(50);
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 0);
    {
        slabmq_status st = slabmq_flush(p); /* every publish answered: stored or refused */
        T_ASSERT(st == SLABMQ_OK || st == SLABMQ_ERR_STORAGE_FULL);
    }
    fprintf(stderr, "%d confirmed, %d refused with ERR_STORAGE_FULL, %d other\n", full_ok,
            full_refused, full_other);
    T_EQ_INT(full_ok + full_refused, sent);
    T_EQ_INT(full_other, 0);
    T_ASSERT(full_ok > 0);
    /* what was confirmed is there (less the 10 or so acked above) */
    T_ASSERT(t_stat(mon, "big", "ready") + 10 >= (uint64_t)full_ok);
    T_OK(n, slabmq_publish(n, "big", "x", 1, NULL));
    slabmq_client_close(p);
    slabmq_client_close(mon);
    slabmq_client_close(n);
    t_broker_stop(&b);
    snprintf(cmd, sizeof(cmd), "umount '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not unmount %s\n", dir);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* A damaged database                                                                        */

static void
test_corrupt_database_stops_the_start(void)
{
    char dir[64];
    char path[128];
    char ddir[80];
    char *out = NULL;
    char *err = NULL;
    size_t outlen;
    FILE *f;
    struct t_broker b;
    slabmq_client *c;
    int rc;

    data_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    f = fopen(path, "wb");
    T_ASSERT(f != NULL);
    for (int i = 0; i < 4096; i++) /* not a database at all */
        fputc("slabmq"[i % 6], f);
    fclose(f);
    snprintf(ddir, sizeof(ddir), "%s", dir);
    {
        char *argv[] = {SLABMQD_PATH, "--port", "0", "--durability", "sqlite", "--data-dir",
                        ddir, NULL};
        rc = t_run(argv, NULL, 0, &out, &outlen, &err, 10000);
    }
    T_EQ_INT(rc, 1); /* refuses to start, and says why */
    T_ASSERT(err && strstr(err, "slabmq.db") && strstr(err, "integrity"));
    fprintf(stderr, "slabmqd said: %s", err);
    free(out);
    free(err);
    /* the explicit option: the file goes aside, the broker starts empty */
    t_broker_start(&b, "--durability", "sqlite", "--data-dir", dir, "--ignore-corrupt-data",
                   NULL);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, NULL, "queues"), 0);
    T_OK(c, slabmq_publish(c, "fresh", "x", 1, NULL));
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* A database of a newer schema version (a newer slabmqd wrote it) stops the start, naming
 * both versions, even with --ignore-corrupt-data; the file is left as it was. */
static void
test_newer_schema_stops_the_start(void)
{
    char dir[64];
    char path[128];
    char *out = NULL;
    char *err = NULL;
    size_t outlen;
    sqlite3 *db;
    sqlite3_stmt *s;
    int rc;

    data_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL;"
                          "CREATE TABLE msg(id INTEGER PRIMARY KEY, future BLOB);"
                          "INSERT INTO msg VALUES(1, x'00');"
                          "PRAGMA user_version=7;",
                          NULL, NULL, NULL),
             SQLITE_OK);
    sqlite3_close(db);
    for (int ignore = 0; ignore <= 1; ignore++) {
        char *argv[] = {SLABMQD_PATH, "--port", "0", "--durability", "sqlite", "--data-dir",
                        dir, ignore ? "--ignore-corrupt-data" : NULL, NULL};
        rc = t_run(argv, NULL, 0, &out, &outlen, &err, 10000);
        T_EQ_INT(rc, 1); /* refuses to start, and says why */
        T_ASSERT(err && strstr(err, "slabmq.db") && strstr(err, "schema version 7")
                 && strstr(err, "newer than this slabmqd's 2"));
        fprintf(stderr, "slabmqd said: %s", err);
        free(out);
        free(err);
        out = err = NULL;
    }
    /* untouched: still version 7, its row still there */
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM msg), user_version FROM "
                                    "pragma_user_version", -1, &s, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(s), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(s, 0), 1);
    T_EQ_INT(sqlite3_column_int(s, 1), 7);
    sqlite3_finalize(s);
    sqlite3_close(db);
    t_remove_dir(dir);
}

/* An I/O error: durable publishes refused (ERR_STORAGE), waiting producers closed without a
 * confirmation, and it stays so; memory queues go on. */
static void
test_io_error_stops_confirming(void)
{
    struct t_broker b;
    slabmq_client *p;
    slabmq_client *mon;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    char dir[64];
    slabmq_status st;

    data_dir(dir, sizeof(dir));
    setenv("SLABMQ_STORE_FAIL_AFTER_COMMITS", "3", 1);
    start(&b, dir);
    unsetenv("SLABMQ_STORE_FAIL_AFTER_COMMITS");
    p = t_client(&b);
    mon = t_client(&b);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(mon, slabmq_declare(mon, "memory-only", &mem, NULL));
    st = SLABMQ_OK;
    for (int i = 0; i < 20 && st == SLABMQ_OK; i++) /* a few commits pass, then one fails */
        st = slabmq_publish(p, "durable", "x", 1, NULL);
    /* the publish in the failed commit was never confirmed: its connection is closed */
    T_ASSERT(st == SLABMQ_ERR_CLOSED || st == SLABMQ_ERR_IO);
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 2);
    slabmq_client_close(p);
    p = t_client(&b);
    T_EQ_INT(slabmq_publish(p, "durable", "y", 1, NULL), SLABMQ_ERR_STORAGE);
    T_OK(p, slabmq_publish(p, "memory-only", "z", 1, NULL));
    T_OK(p, slabmq_ping(p));
    t_sleep_ms(700); /* the writer does not quietly come back */
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 2);
    T_EQ_INT(slabmq_publish(p, "durable", "y", 1, NULL), SLABMQ_ERR_STORAGE);
    slabmq_client_close(p);
    slabmq_client_close(mon);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

static const struct t_case cases[] = {
    T_CASE(test_recovery_after_kill),
    T_CASE(test_confirm_waits_for_the_commit),
    T_CASE(test_outside_write_lock),
    T_CASE(test_crash_rounds),
    T_CASE(test_disk_full),
    T_CASE(test_corrupt_database_stops_the_start),
    T_CASE(test_newer_schema_stops_the_start),
    T_CASE(test_io_error_stops_confirming),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
