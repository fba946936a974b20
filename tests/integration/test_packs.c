/* SPDX-License-Identifier: MIT */
/* Packs (docs/durability.md): plain durable messages published together are stored several
 * to a row. Against real brokers killed with SIGKILL and restarted on the same data
 * directory:
 *   - packed messages come back in order; acked ones do not; NACKed ones move out of their
 *     pack and keep their delivery count; once all are acked no pack is left;
 *   - deleting a queue whose messages share packs with another queue's keeps the other's;
 *   - packs left mostly acked are compacted (their live messages moved into rows);
 *   - a version 1 database (no packs) is upgraded in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "slabmq.h"
#include "t.h"

#define N 300 /* messages per queue */

static void
data_dir(char *dir, size_t n)
{
    t_temp_dir(dir, n, "packs");
}

/* A broker whose writer pauses before each commit, so that pipelined publishes gather into
 * packs whatever the machine's speed. */
static void
start(struct t_broker *b, const char *dir)
{
    setenv("SLABMQ_STORE_COMMIT_DELAY_MS", "20", 1);
    t_broker_start(b, "--durability", "sqlite", "--data-dir", dir, NULL);
    unsetenv("SLABMQ_STORE_COMMIT_DELAY_MS");
}

/* Pipelined publishes of "<q>-<i>", n per queue, alternating between the queues (so that
 * their messages share packs), then one confirmed 'written': everything before it is
 * committed once it returns. size pads the payloads to that many bytes. */
static void
publish_all(slabmq_client *c, const char *const *queues, int nq, int n, size_t size)
{
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    char *body = calloc(1, size + 32);

    T_ASSERT(body != NULL);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < nq; k++) {
            int len = snprintf(body, 32, "%s-%05d", queues[k], i);
            if ((size_t)len < size) {
                memset(body + len, 'x', size - (size_t)len);
                len = (int)size;
            }
            T_OK(c, slabmq_publish_async(c, queues[k], body, (size_t)len, NULL));
        }
    T_OK(c, slabmq_flush(c));
    po.confirm = SLABMQ_CONFIRM_WRITTEN;
    T_OK(c, slabmq_publish_opts(c, "marker", "m", 1, &po, NULL, NULL));
    free(body);
}

/* Everything appended so far is committed (the marker's confirmation comes after it). */
static void
committed(slabmq_client *c)
{
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    uint64_t id;

    po.confirm = SLABMQ_CONFIRM_WRITTEN;
    T_OK(c, slabmq_publish_opts(c, "marker", "m", 1, &po, &id, NULL));
}

/* Fetch q to the end, expecting "<q>-<from..to-1>" in order, each delivered 'deliveries'
 * times (twice for ids in [twice_from, twice_to)); ack them all (ack != 0). */
static void
expect_in_order(slabmq_client *c, const char *q, int from, int to, int twice_from,
                int twice_to, int ack)
{
    int next = from;

    while (next < to) {
        slabmq_batch *b;
        size_t n;
        T_OK(c, slabmq_fetch(c, q, 100, 0, &b));
        n = slabmq_batch_count(b);
        T_ASSERT(n > 0);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(b, i);
            char want[32];
            int wl = snprintf(want, sizeof(want), "%s-%05d", q, next);
            T_ASSERT(m->len >= (size_t)wl);
            T_EQ_MEM(m->data, want, (size_t)wl);
            T_EQ_U64(m->deliveries, next >= twice_from && next < twice_to ? 2u : 1u);
            if (ack)
                T_OK(c, slabmq_ack(c, m->id));
            next++;
        }
        slabmq_batch_free(b);
    }
    T_EQ_INT(next, to);
}

static void
test_packed_messages_recover_in_order(void)
{
    static const char *const qs[] = {"a", "b"};
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    uint64_t ids[50];
    char dir[64];

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    publish_all(c, qs, 2, N, 0);
    T_ASSERT(t_stat(c, NULL, "store_packs") > 0);
    T_ASSERT(t_stat(c, NULL, "store_packed_bytes") > (uint64_t)N * 7);
    /* a-0..39 acked, a-40..49 NACKed: they move out of their packs, delivered once */
    T_OK(c, slabmq_fetch(c, "a", 50, 0, &bt));
    T_EQ_U64(slabmq_batch_count(bt), 50);
    for (int i = 0; i < 50; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    T_OK(c, slabmq_ack_batch(c, ids, 40, NULL));
    T_OK(c, slabmq_nack_batch(c, ids + 40, 10, 0, NULL));
    committed(c);
    /* the writer's first commit may take the first few messages alone, as rows */
    T_ASSERT(t_stat(c, NULL, "store_packed_dead_bytes") >= 40 * 7);
    t_broker_kill(&b);
    slabmq_client_close(c);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "a", "ready"), N - 40);
    T_EQ_U64(t_stat(c, "b", "ready"), N);
    expect_in_order(c, "a", 40, N, 40, 50, 1);
    expect_in_order(c, "b", 0, N, 0, 0, 1);
    committed(c);
    T_EQ_U64(t_stat(c, NULL, "store_packs"), 0); /* every member acked: no pack left */
    T_EQ_U64(t_stat(c, NULL, "store_packed_bytes"), 0);
    T_EQ_U64(t_stat(c, NULL, "store_packed_dead_bytes"), 0);
    t_broker_kill(&b);
    slabmq_client_close(c);

    start(&b, dir); /* and the acks stuck: nothing comes back */
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "a", "ready"), 0);
    T_EQ_U64(t_stat(c, "b", "ready"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

static void
test_queue_delete_keeps_the_other_queues_packed_messages(void)
{
    static const char *const qs[] = {"gone", "kept"};
    struct t_broker b;
    slabmq_client *c;
    char dir[64];

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    publish_all(c, qs, 2, N, 0);
    T_ASSERT(t_stat(c, NULL, "store_packs") > 0);
    T_OK(c, slabmq_delete(c, "gone", NULL));
    committed(c);
    t_broker_kill(&b);
    slabmq_client_close(c);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "kept", "ready"), N);
    {
        slabmq_stats *s;
        T_EQ_INT(slabmq_stats_get(c, "gone", &s), SLABMQ_ERR_NOT_FOUND);
    }
    expect_in_order(c, "kept", 0, N, 0, 0, 1);
    committed(c);
    /* the deleted queue's members were counted gone: the packs went with kept's last ack */
    T_EQ_U64(t_stat(c, NULL, "store_packs"), 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* Bursts of 20 committed one after the other make packs that start less than 64 ids apart:
 * emptying one must not take the next one's gone rows with it. */
static void
test_acks_in_adjacent_packs_stay_acked(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    slabmq_batch *bt;
    uint64_t ids[100];
    char dir[64];

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    po.confirm = SLABMQ_CONFIRM_WRITTEN;
    for (int burst = 0; burst < 5; burst++) {
        for (int i = 0; i < 20; i++) {
            char body[16];
            int len = snprintf(body, sizeof(body), "q-%05d", burst * 20 + i);
            T_OK(c, slabmq_publish_opts_async(c, "q", body, (size_t)len, &po, NULL));
        }
        T_OK(c, slabmq_flush(c)); /* committed before the next burst */
    }
    T_ASSERT(t_stat(c, NULL, "store_packs") >= 3);
    T_OK(c, slabmq_fetch(c, "q", 100, 0, &bt));
    T_EQ_U64(slabmq_batch_count(bt), 100);
    for (int i = 0; i < 100; i++)
        ids[i] = slabmq_batch_get(bt, (size_t)i)->id;
    slabmq_batch_free(bt);
    T_OK(c, slabmq_ack_batch(c, ids + 20, 10, NULL)); /* half of the second burst, */
    T_OK(c, slabmq_ack_batch(c, ids, 20, NULL));      /* then the whole first one */
    committed(c);
    t_broker_kill(&b);
    slabmq_client_close(c);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "q", "ready"), 70);
    expect_in_order(c, "q", 30, 100, 0, 0, 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* 24,000 messages of 1,000 bytes, three in four acked: 18 MB dead inside packs against 6 MB
 * live, past the 16 MiB at which packs are compacted. */
static void
test_sparse_packs_are_compacted(void)
{
    static const char *const qs[] = {"big"};
    enum { COUNT = 24000 };
    struct t_broker b;
    uint64_t packs;
    slabmq_client *c;
    uint64_t *keep = calloc(COUNT, sizeof(*keep));
    size_t nkeep = 0;
    char dir[64];
    int seen = 0;

    T_ASSERT(keep != NULL);
    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    publish_all(c, qs, 1, COUNT, 1000);
    packs = t_stat(c, NULL, "store_packs");
    T_ASSERT(packs >= COUNT / 64);
    while (seen < COUNT) {
        slabmq_batch *bt;
        uint64_t ack[1000];
        size_t nack = 0;
        T_OK(c, slabmq_fetch(c, "big", 1000, 0, &bt));
        T_ASSERT(slabmq_batch_count(bt) > 0);
        for (size_t i = 0; i < slabmq_batch_count(bt); i++, seen++) {
            uint64_t id = slabmq_batch_get(bt, i)->id;
            if (seen % 4 == 0)
                keep[nkeep++] = id;
            else
                ack[nack++] = id;
        }
        slabmq_batch_free(bt);
        T_OK(c, slabmq_ack_batch(c, ack, nack, NULL));
    }
    committed(c);
    /* Compaction starts once 16 MiB of acked payload sit in packs (about 6 in 7 of the
     * acks) and empties every pack then a quarter live; the packs the last acks make sparse
     * may stay, as their dead bytes are under 16 MiB. So: well under half of the packs are
     * left, and under 16 MiB dead in them. Without compaction: every pack, 18 MB dead. */
    for (int i = 0; i < 100 && t_stat(c, NULL, "store_packs") > packs / 2; i++)
        t_sleep_ms(50); /* the writer compacts when it has nothing else to do */
    T_ASSERT(t_stat(c, NULL, "store_packs") <= packs / 2);
    T_ASSERT(t_stat(c, NULL, "store_packed_dead_bytes") < (16u << 20));
    t_broker_kill(&b); /* the kept ones were in flight: ready again after the restart */
    slabmq_client_close(c);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "big", "ready"), nkeep);
    for (size_t k = 0; k < nkeep;) {
        slabmq_batch *bt;
        T_OK(c, slabmq_fetch(c, "big", 1000, 0, &bt));
        T_ASSERT(slabmq_batch_count(bt) > 0);
        for (size_t i = 0; i < slabmq_batch_count(bt); i++, k++) {
            const slabmq_message *m = slabmq_batch_get(bt, i);
            char want[32];
            snprintf(want, sizeof(want), "big-%05d", (int)(k * 4));
            T_EQ_U64(m->id, keep[k]);
            T_EQ_U64(m->len, 1000);
            T_EQ_MEM(m->data, want, strlen(want));
        }
        slabmq_batch_free(bt);
    }
    slabmq_client_close(c);
    t_broker_stop(&b);
    free(keep);
    t_remove_dir(dir);
}

/* A database of schema version 1 (before packs) is upgraded at start, its messages kept. */
static void
test_version1_database_is_upgraded(void)
{
    struct t_broker b;
    slabmq_client *c;
    sqlite3 *db;
    sqlite3_stmt *s;
    char dir[64];
    char path[96];

    data_dir(dir, sizeof(dir));
    t_broker_start(&b, "--durability", "sqlite", "--data-dir", dir, NULL);
    c = t_client(&b);
    for (int i = 0; i < 5; i++) /* one at a time: rows, not packs */
        T_OK(c, slabmq_publish(c, "old", "v1", 2, NULL));
    slabmq_client_close(c);
    t_broker_stop(&b);
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_exec(db, "DROP TABLE pack; DROP TABLE gone; PRAGMA user_version=1;", NULL,
                          NULL, NULL),
             SQLITE_OK);
    sqlite3_close(db);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "old", "ready"), 5);
    publish_all(c, (const char *const[]){"old"}, 1, 100, 0);
    T_ASSERT(t_stat(c, NULL, "store_packs") > 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_prepare_v2(db, "SELECT user_version FROM pragma_user_version", -1, &s, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(s), SQLITE_ROW);
    T_EQ_INT(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    sqlite3_close(db);
    t_remove_dir(dir);
}

/* The bytes of the file at path into *buf (malloc'd, with a NUL after them); its length. */
static size_t
read_all(const char *path, char **buf)
{
    FILE *f = fopen(path, "rb");
    long n;

    T_ASSERT(f != NULL);
    T_ASSERT(fseek(f, 0, SEEK_END) == 0);
    n = ftell(f);
    T_ASSERT(n > 0);
    rewind(f);
    *buf = malloc((size_t)n + 1);
    T_ASSERT(*buf != NULL);
    T_EQ_U64(fread(*buf, 1, (size_t)n, f), (uint64_t)n);
    (*buf)[n] = '\0';
    fclose(f);
    return (size_t)n;
}

static void
write_all(const char *path, const char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");

    T_ASSERT(f != NULL);
    T_EQ_U64(fwrite(buf, 1, n, f), n);
    T_EQ_INT(fclose(f), 0);
}

/* The first and the body of the second pack of the database at path (the first may be a
 * short one). */
static void
second_pack(const char *path, int64_t *first, uint8_t *body, int *len)
{
    sqlite3 *db;
    sqlite3_stmt *s;

    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_prepare_v2(db, "SELECT first, body FROM pack ORDER BY first LIMIT 1 "
                                "OFFSET 1", -1, &s, NULL),
             SQLITE_OK);
    T_EQ_INT(sqlite3_step(s), SQLITE_ROW);
    *first = sqlite3_column_int64(s, 0);
    *len = sqlite3_column_bytes(s, 1);
    T_ASSERT(*len > 40 && *len <= 4096);
    memcpy(body, sqlite3_column_blob(s, 1), (size_t)*len);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Run sql on the database at path with ?1 bound to first and ?2 to the blob body[0..len). */
static void
db_run(const char *path, const char *sql, int64_t first, const uint8_t *body, int len)
{
    sqlite3 *db;
    sqlite3_stmt *s;

    T_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    T_EQ_INT(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, first);
    if (sqlite3_bind_parameter_count(s) >= 2)
        sqlite3_bind_blob(s, 2, len ? (const void *)body : "", len, SQLITE_TRANSIENT);
    T_EQ_INT(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* slabmqd refuses to start on dir, and its message on stderr has want in it. */
static void
start_fails(const char *dir, const char *want)
{
    char ddir[64];
    char *out = NULL;
    char *err = NULL;
    size_t outlen;
    int rc;

    snprintf(ddir, sizeof(ddir), "%s", dir);
    {
        char *argv[] = {SLABMQD_PATH, "--port", "0", "--durability", "sqlite", "--data-dir",
                        ddir, NULL};
        rc = t_run(argv, NULL, 0, &out, &outlen, &err, 5000);
    }
    fprintf(stderr, "slabmqd said: %s", err ? err : "(nothing)\n");
    T_EQ_INT(rc, 1);
    T_ASSERT(err && strstr(err, want));
    free(out);
    free(err);
}

/* Packs whose ids do not rise (an entry repeated, entries out of order, a pack that starts
 * inside the one before), a pack with no entry, and a message both in a row and in a pack
 * stop the start with a clear message: loading them would give two messages one id, put a
 * queue out of order or drop the pack's messages without a word. */
static void
test_malformed_packs_stop_the_start(void)
{
    struct t_broker b;
    slabmq_client *c;
    char dir[64];
    char path[96];
    char *orig;
    size_t size;
    int64_t first;
    uint8_t body[4096];
    uint8_t bad[4096];
    int len;

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    publish_all(c, (const char *const[]){"q"}, 1, N, 0); /* entries of 13 + 7 bytes */
    T_ASSERT(t_stat(c, NULL, "store_packs") >= 3);
    slabmq_client_close(c);
    t_broker_stop(&b); /* closing checkpoints: everything is in slabmq.db */
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    size = read_all(path, &orig);
    second_pack(path, &first, body, &len);

    memcpy(bad, body, (size_t)len); /* the second entry has the first's id */
    bad[20] = bad[0];
    db_run(path, "UPDATE pack SET body=?2 WHERE first=?1", first, bad, len);
    start_fails(dir, "is malformed");
    write_all(path, orig, size);

    memcpy(bad, body + 20, 20); /* the first two entries swapped */
    memcpy(bad + 20, body, 20);
    memcpy(bad + 40, body + 40, (size_t)len - 40);
    db_run(path, "UPDATE pack SET body=?2 WHERE first=?1", first, bad, len);
    start_fails(dir, "is malformed");
    write_all(path, orig, size);

    db_run(path, "UPDATE pack SET body=?2 WHERE first=?1", first, body, 0); /* no entry */
    start_fails(dir, "is malformed");
    write_all(path, orig, size);

    /* the next pack starts inside this one */
    db_run(path, "UPDATE pack SET first=?1 + 1 WHERE first=(SELECT MIN(first) FROM pack "
                 "WHERE first > ?1)", first, NULL, 0);
    start_fails(dir, "is malformed");
    write_all(path, orig, size);

    db_run(path, "INSERT INTO msg(id, sid, body) SELECT ?1 + 3, sid, x'00' FROM queue "
                 "WHERE name='q'", first, NULL, 0);
    start_fails(dir, "stored twice");
    write_all(path, orig, size);

    start(&b, dir); /* the file as it was loads whole */
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "q", "ready"), N);
    expect_in_order(c, "q", 0, N, 0, 0, 1);
    slabmq_client_close(c);
    t_broker_stop(&b);
    free(orig);
    t_remove_dir(dir);
}

/* Messages whose queue is not stored (its row lost: here deleted by hand) are skipped at
 * start and stay in the database, packed or not; a queue declared afterwards must not get
 * their queue's sid, or they would come back into it at the next start. */
static void
test_skipped_messages_stay_out_of_a_new_queue(void)
{
    static const char *const qs[] = {"x", "y"};
    struct t_broker b;
    slabmq_client *c;
    slabmq_publish_options po = SLABMQ_PUBLISH_OPTIONS_INIT;
    char dir[64];
    char path[96];

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    committed(c); /* "marker" first: y gets the highest sid */
    publish_all(c, qs, 2, N, 0);
    po.priority = 1; /* and a row of y's */
    T_OK(c, slabmq_publish_opts(c, "y", "row", 3, &po, NULL, NULL));
    T_ASSERT(t_stat(c, NULL, "store_packs") > 0);
    slabmq_client_close(c);
    t_broker_stop(&b);
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    db_run(path, "DELETE FROM queue WHERE name='y' AND ?1", 1, NULL, 0);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "x", "ready"), N);
    T_OK(c, slabmq_declare(c, "z", NULL, NULL));
    committed(c);
    slabmq_client_close(c);
    t_broker_kill(&b);

    start(&b, dir);
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "z", "ready"), 0);
    expect_in_order(c, "x", 0, N, 0, 0, 1);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* A pack that no longer holds what the writer's index says (changed under the broker here)
 * fails the store when a member moves out of it, and the log says which pack: before, it
 * said "not an error (11)". */
static void
test_a_pack_that_does_not_match_is_logged(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *bt;
    char dir[64];
    char path[96];
    char *log = NULL;
    int64_t first;
    uint8_t body[4096];
    int len;

    data_dir(dir, sizeof(dir));
    start(&b, dir);
    c = t_client(&b);
    publish_all(c, (const char *const[]){"q"}, 1, N, 0);
    snprintf(path, sizeof(path), "%s/slabmq.db", dir);
    second_pack(path, &first, body, &len);
    db_run(path, "UPDATE pack SET body=x'00' WHERE first=?1", first, NULL, 0);
    T_OK(c, slabmq_fetch(c, "q", N, 0, &bt));
    T_EQ_U64(slabmq_batch_count(bt), N);
    for (size_t i = 0; i < N; i++)
        if (slabmq_batch_get(bt, i)->id == (uint64_t)first)
            T_OK(c, slabmq_nack(c, (uint64_t)first, 0)); /* moves it out of its pack */
    slabmq_batch_free(bt);
    for (int i = 0; i < 100 && t_stat(c, NULL, "store_state") != 2; i++)
        t_sleep_ms(20);
    T_EQ_U64(t_stat(c, NULL, "store_state"), 2); /* failed */
    {
        char logpath[128];
        snprintf(logpath, sizeof(logpath), "%s/stderr.log", b.dir);
        read_all(logpath, &log);
    }
    T_ASSERT(strstr(log, "is not in the pack of message") != NULL);
    T_ASSERT(strstr(log, "database disk image is malformed (11)") != NULL);
    T_ASSERT(strstr(log, "not an error") == NULL);
    free(log);
    slabmq_client_close(c);
    t_broker_kill(&b);
    t_remove_dir(dir);
}

static const struct t_case cases[] = {
    T_CASE(test_packed_messages_recover_in_order),
    T_CASE(test_queue_delete_keeps_the_other_queues_packed_messages),
    T_CASE(test_acks_in_adjacent_packs_stay_acked),
    T_CASE(test_sparse_packs_are_compacted),
    T_CASE(test_version1_database_is_upgraded),
    T_CASE(test_malformed_packs_stop_the_start),
    T_CASE(test_skipped_messages_stay_out_of_a_new_queue),
    T_CASE(test_a_pack_that_does_not_match_is_logged),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
