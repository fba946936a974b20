/* SPDX-License-Identifier: MIT */
/* The bounds of durability (docs/durability.md, "Acks and the crash window", "Faults"),
 * against real brokers killed with SIGKILL and restarted on the same data directory:
 *   - acks are written within a bounded window: kill -9 during a full-speed drain of a
 *     recovered backlog brings back no more acked messages than the documented count,
 *     and none whose ACK reply is older than the documented time;
 *   - a CONFIRMED ack's reply waits for the commit: after it, kill -9 never brings the
 *     message back (libslabmq, pipelined, and the CLI's consume --confirmed-ack). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "slabmq.h"
#include "t.h"

/* The documented bounds (docs/durability.md): operations appended and not yet committed
 * when the loop stops reading requests, plus the ids of the one request being read. */
#define LAG_OPS 16384
#define ACKS_PER_REQUEST 256
/* The time bound asserted: the documented one is 250 ms on a release build; sanitizer builds
 * (ASan, TSan) run the writer several times slower. */
#ifndef ACK_WINDOW_MS
#define ACK_WINDOW_MS 250
#endif

static void
start(struct t_broker *b, const char *dir)
{
    t_broker_start(b, "--durability", "sqlite", "--data-dir", dir, NULL);
}

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The tag a test message carries as its payload (decimal). */
static uint32_t
tag_of(const slabmq_message *m)
{
    char s[16];
    size_t k = m->len < sizeof(s) - 1 ? m->len : sizeof(s) - 1;

    memcpy(s, m->data, k);
    s[k] = '\0';
    return (uint32_t)strtoul(s, NULL, 10);
}

/* Publish n messages of 'size' bytes (at most 256), "0" .. "n-1" padded with spaces, to q,
 * 1,000 to a batch, each batch confirmed written. */
static void
publish_tags(slabmq_client *c, const char *q, uint32_t n, size_t size)
{
    static char text[1000][256];
    slabmq_payload pl[1000];

    memset(text, ' ', sizeof(text));
    for (uint32_t at = 0; at < n; at += 1000) {
        uint32_t k = n - at < 1000 ? n - at : 1000;
        for (uint32_t i = 0; i < k; i++) {
            int len = snprintf(text[i], sizeof(text[i]), "%u", at + i);
            text[i][len] = ' ';
            pl[i] = (slabmq_payload){text[i], size};
        }
        T_OK(c, slabmq_publish_batch(c, q, pl, k, NULL));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The ack window                                                                            */

#define BACKLOG 200000

static int64_t acked_at[BACKLOG]; /* when the ACK reply of each tag arrived; 0: not acked */

/* Fetch and ack (each ACK waiting for its reply) until kill_after ms have passed or most of
 * the backlog is gone; then kill -9. Returns the time of the kill. */
static int64_t
drain_and_kill(struct t_broker *b, slabmq_client *c, int kill_after, uint32_t *acked)
{
    int64_t t0 = t_now_ms();
    uint64_t ids[ACKS_PER_REQUEST];
    uint32_t tags[ACKS_PER_REQUEST];
    int64_t killed;

    *acked = 0;
    while (t_now_ms() - t0 < kill_after && *acked < BACKLOG * 3 / 4) {
        slabmq_batch *bt;
        size_t n;
        int64_t now;
        T_OK(c, slabmq_fetch(c, "backlog", ACKS_PER_REQUEST, 0, &bt));
        n = slabmq_batch_count(bt);
        for (size_t i = 0; i < n; i++) {
            ids[i] = slabmq_batch_get(bt, i)->id;
            tags[i] = tag_of(slabmq_batch_get(bt, i));
        }
        slabmq_batch_free(bt);
        T_ASSERT(n > 0);
        T_OK(c, slabmq_ack_batch(c, ids, n, NULL));
        now = t_now_ms();
        for (size_t i = 0; i < n; i++)
            if (tags[i] < BACKLOG)
                acked_at[tags[i]] = now;
        *acked += (uint32_t)n;
    }
    killed = t_now_ms();
    t_broker_kill(b);
    fprintf(stderr, "drained %u in %lld ms\n", *acked, (long long)(killed - t0));
    return killed;
}

static void
test_ack_window_is_bounded(void)
{
    struct t_broker b;
    char dir[64];
    slabmq_client *c;
    uint32_t acked;
    uint32_t seen = 0;
    uint32_t revived = 0;
    int64_t oldest = 0;
    int64_t killed;
    static uint8_t present[BACKLOG];

    t_temp_dir(dir, sizeof(dir), "ackwindow");
    start(&b, dir);
    c = t_client(&b);
    publish_tags(c, "backlog", BACKLOG, 256);
    slabmq_client_close(c);
    t_broker_stop(&b);
    start(&b, dir); /* the backlog, recovered */
    c = t_client(&b);
    killed = drain_and_kill(&b, c, 600, &acked);
    slabmq_client_close(c);
    start(&b, dir);
    c = t_client(&b);
    for (;;) {
        slabmq_batch *bt;
        size_t n;
        uint64_t ids[ACKS_PER_REQUEST];
        T_OK(c, slabmq_fetch(c, "backlog", ACKS_PER_REQUEST, 0, &bt));
        n = slabmq_batch_count(bt);
        for (size_t i = 0; i < n; i++) {
            uint32_t t = tag_of(slabmq_batch_get(bt, i));
            ids[i] = slabmq_batch_get(bt, i)->id;
            T_ASSERT(t < BACKLOG && !present[t]); /* nothing invented, nothing twice */
            present[t] = 1;
            seen++;
            if (acked_at[t]) {
                revived++;
                if (killed - acked_at[t] > oldest)
                    oldest = killed - acked_at[t];
            }
        }
        slabmq_batch_free(bt);
        if (n == 0)
            break;
        T_OK(c, slabmq_ack_batch(c, ids, n, NULL));
    }
    fprintf(stderr,
            "ack window: %u acked in a drain of a recovered backlog of %d, then kill -9; "
            "%u acked messages came back, their ACK replies up to %lld ms old "
            "(bounds: %d messages, %d ms)\n",
            acked, BACKLOG, revived, (long long)oldest, LAG_OPS + ACKS_PER_REQUEST,
            ACK_WINDOW_MS);
    T_ASSERT(acked > 10000); /* the drain did run at speed */
    T_EQ_U64(seen, BACKLOG - acked + revived); /* at-least-once: every unacked one is back */
    T_ASSERT(revived <= LAG_OPS + ACKS_PER_REQUEST);
    T_ASSERT(oldest <= ACK_WINDOW_MS);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Confirmed acks                                                                            */

/* Fetch n messages of q; their ids into ids. */
static void
fetch_ids(slabmq_client *c, const char *q, uint64_t *ids, size_t n)
{
    slabmq_batch *bt;

    T_OK(c, slabmq_fetch(c, q, (uint32_t)n, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), n);
    for (size_t i = 0; i < n; i++)
        ids[i] = slabmq_batch_get(bt, i)->id;
    slabmq_batch_free(bt);
}

/* With the writer sleeping 300 ms before each COMMIT: a CONFIRMED ack (plain, pipelined,
 * through the CLI) answers only after its commit and its message never comes back after
 * kill -9; a plain ack answers at once and, killed right after, its message comes back; a
 * CONFIRMED ack of an in-memory queue answers at once. */
static void
test_confirmed_ack_survives_a_crash(void)
{
    struct t_broker b;
    char dir[64];
    slabmq_client *c;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    slabmq_payload pl[5] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}};
    uint64_t ids[4];
    uint64_t acked = 0;
    int64_t t0;
    slabmq_batch *bt;

    t_temp_dir(dir, sizeof(dir), "confack");
    setenv("SLABMQ_STORE_COMMIT_DELAY_MS", "300", 1);
    start(&b, dir);
    unsetenv("SLABMQ_STORE_COMMIT_DELAY_MS");
    c = t_client(&b);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(c, slabmq_declare(c, "mem", &mem, NULL));
    T_OK(c, slabmq_publish(c, "mem", "m", 1, NULL));
    T_OK(c, slabmq_publish_batch(c, "cq", pl, 5, NULL));
    fetch_ids(c, "cq", ids, 4);
    t0 = t_now_ms();
    T_OK(c, slabmq_ack_flags(c, ids, 1, SLABMQ_ACK_CONFIRMED, &acked));
    T_EQ_U64(acked, 1);
    fprintf(stderr, "confirmed ack: %lld ms\n", (long long)(t_now_ms() - t0));
    T_ASSERT(t_now_ms() - t0 >= 250);
    t0 = t_now_ms();
    T_OK(c, slabmq_ack_flags_async(c, ids + 1, 1, SLABMQ_ACK_CONFIRMED, NULL));
    T_OK(c, slabmq_flush(c));
    T_ASSERT(t_now_ms() - t0 >= 250);
    {
        struct cli_run r = RUN(b.port, "consume", "cq", "--confirmed-ack");
        T_EQ_INT(r.rc, 0);
        T_EQ_STR(r.out, "e\n"); /* c and d are held by c: e is the one left */
        cli_run_free(&r);
    }
    fetch_ids(c, "mem", ids + 2, 1); /* (c's id is not needed) */
    t0 = t_now_ms();
    T_OK(c, slabmq_ack_flags(c, ids + 2, 1, SLABMQ_ACK_CONFIRMED, NULL));
    T_ASSERT(t_now_ms() - t0 < 250); /* nothing to commit */
    T_ASSERT(slabmq_ack_flags(c, ids, 1, 4, NULL) == SLABMQ_ERR_ARG);
    t0 = t_now_ms();
    T_OK(c, slabmq_ack(c, ids[3])); /* "d", plain: replied before its commit */
    T_ASSERT(t_now_ms() - t0 < 250);
    t_broker_kill(&b);
    slabmq_client_close(c);
    start(&b, dir);
    c = t_client(&b);
    T_OK(c, slabmq_fetch(c, "cq", 10, 0, &bt));
    /* a, b and e were acked CONFIRMED: gone; c was never acked; d's ack was not committed */
    T_EQ_INT(slabmq_batch_count(bt), 2);
    T_EQ_MEM(slabmq_batch_get(bt, 0)->data, "c", 1);
    T_EQ_MEM(slabmq_batch_get(bt, 1)->data, "d", 1);
    slabmq_batch_free(bt);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* The write ring and --max-memory                                                           */

/* --max-memory 64MiB with durability starts, and most of it holds messages (the ring is an
 * eighth of the limit there); a limit too small for the ring stops the start, saying what to
 * do. */
static void
test_ring_is_sized_from_the_limit(void)
{
    struct t_broker b;
    char dir[64];
    slabmq_client *c;
    static char kib[1024];
    slabmq_payload pl[256];
    uint64_t stored = 0;
    slabmq_status st = SLABMQ_OK;
    char *out = NULL;
    char *err = NULL;
    size_t outlen;

    t_temp_dir(dir, sizeof(dir), "ring");
    memset(kib, 'r', sizeof(kib));
    for (int i = 0; i < 256; i++)
        pl[i] = (slabmq_payload){kib, sizeof(kib)};
    t_broker_start(&b, "--durability", "sqlite", "--data-dir", dir, "--max-memory", "64MiB",
                   NULL);
    c = t_client(&b);
    while (st == SLABMQ_OK && stored < ((uint64_t)64 << 20)) {
        st = slabmq_publish_batch(c, "fill", pl, 256, NULL);
        if (st == SLABMQ_OK)
            stored += 256 * sizeof(kib);
    }
    T_EQ_INT(st, SLABMQ_ERR_NOMEM);
    fprintf(stderr, "--max-memory 64MiB, durable: %llu KiB of 1 KiB messages stored (%.0f%%)\n",
            (unsigned long long)(stored >> 10), 100.0 * (double)stored / (64 << 20));
    T_ASSERT(stored >= (uint64_t)40 << 20); /* the ring took no more than an eighth */
    slabmq_client_close(c);
    t_broker_stop(&b);
    {
        char *argv[] = {SLABMQD_PATH, "--port", "0", "--durability", "sqlite", "--data-dir", dir,
                        "--max-memory", "16MiB", "--max-message-size", "4MiB", NULL};
        T_EQ_INT(t_run(argv, NULL, 0, &out, &outlen, &err, 10000), 2); /* a config error */
    }
    fprintf(stderr, "slabmqd said: %s", err ? err : "(nothing)\n");
    T_ASSERT(err && strstr(err, "--max-memory") && strstr(err, "--max-message-size")
             && strstr(err, "ring"));
    free(out);
    free(err);
    t_remove_dir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Disk full (a small tmpfs, mounted by the test: needs root; skipped otherwise)             */

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

/* The tmpfs a case has mounted, so that a failing case (t_fail exits, after killing its
 * brokers) leaves no mount behind: unmounted and removed at exit. */
static char mounted[128];

static void
unmount_at_exit(void)
{
    char cmd[2 * sizeof(mounted) + 32];

    if (!mounted[0])
        return;
    snprintf(cmd, sizeof(cmd), "umount '%s' && rm -rf '%s'", mounted, mounted);
    if (system(cmd) != 0)
        fprintf(stderr, "could not unmount %s\n", mounted);
}

/* Mount a tmpfs of size on dir; 0, or -1 after saying the case is skipped. */
static int
mount_tmpfs(const char *dir, const char *size)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=%s tmpfs '%s' 2>/dev/null", size, dir);
    if (system(cmd) == 0) {
        snprintf(mounted, sizeof(mounted), "%s", dir);
        atexit(unmount_at_exit);
        return 0;
    }
    fprintf(stderr, "SKIP: cannot mount a small tmpfs here (needs root and mount privileges); "
                    "the disk-full behaviour is not checked\n");
    return -1;
}

static void
remount(const char *dir, const char *size)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "mount -o remount,size=%s '%s'", size, dir);
    T_EQ_INT(system(cmd), 0);
}

static void
unmount(const char *dir)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "umount '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not unmount %s\n", dir);
    mounted[0] = '\0';
}

/* Publish 1 KiB messages pipelined through p (window 1024, the default) until the store says
 * the disk is full. Returns how many were sent. A p without a confirmation callback may learn
 * of it first, from a refusal read during a call (the sticky error, slabmq.h): that ends the
 * filling too, and the error is taken. */
static int
fill_disk(slabmq_client *p, slabmq_client *mon)
{
    static char kib[1024];
    int sent = 0;
    int full = 0;
    int64_t end = t_now_ms() + 20000;
    slabmq_status st;

    memset(kib, 'f', sizeof(kib));
    while (!full && t_now_ms() < end && t_stat(mon, NULL, "store_state") == 0) {
        for (int i = 0; i < 16 && !full; i++) {
            st = slabmq_publish_async(p, "big", kib, sizeof(kib), NULL);
            full = st == SLABMQ_ERR_STORAGE_FULL; /* refused: not queued */
            if (!full) {
                T_OK(p, st);
                sent++;
            }
        }
        st = full ? SLABMQ_ERR_STORAGE_FULL : slabmq_send(p);
        full = st == SLABMQ_ERR_STORAGE_FULL;
        if (!full)
            T_OK(p, st);
        t_sleep_ms(1);
    }
    if (full)
        T_EQ_INT(slabmq_client_take_error(p), SLABMQ_ERR_STORAGE_FULL);
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 1);
    return sent;
}

/* A producer pipelining publishes while the disk is full gets ERR_STORAGE_FULL for each one
 * that cannot be confirmed, promptly (its refusals do not wait behind held confirmations),
 * as a new connection does; once there is room, publishing resumes. */
static void
test_pipelined_publishes_refused_when_full(void)
{
    struct t_broker b;
    char dir[64];
    slabmq_client *p;
    slabmq_client *mon;
    slabmq_client *n;
    int sent;
    int64_t t0;
    int64_t one_us;
    int64_t held_us;
    int64_t burst_us;
    slabmq_status st;

    t_temp_dir(dir, sizeof(dir), "fullpipe");
    if (mount_tmpfs(dir, "1m")) {
        t_remove_dir(dir);
        return;
    }
    start(&b, dir);
    p = t_client(&b);
    mon = t_client(&b);
    n = t_client(&b);
    slabmq_client_on_confirm_ex(p, count_confirm, NULL);
    sent = fill_disk(p, mon);
    t0 = now_us();
    T_EQ_INT(slabmq_publish(n, "big", "x", 1, NULL), SLABMQ_ERR_STORAGE_FULL);
    one_us = now_us() - t0;
    t0 = now_us();
    st = slabmq_flush(p); /* those held when the disk filled: answered, not waiting for room */
    held_us = now_us() - t0;
    t0 = now_us();
    for (int i = 0; i < 256; i++, sent++)
        T_OK(p, slabmq_publish_async(p, "big", "y", 1, NULL));
    if (st == SLABMQ_OK || st == SLABMQ_ERR_STORAGE_FULL)
        st = slabmq_flush(p); /* and 256 more, pipelined */
    burst_us = now_us() - t0;
    fprintf(stderr,
            "disk full: a new connection's publish refused in %lld us; a pipelining producer: "
            "%d sent, %d confirmed, %d refused with ERR_STORAGE_FULL, %d other; the rest of "
            "its window answered in %lld us, 256 more pipelined in %lld us (%.1f us each)\n",
            (long long)one_us, sent, full_ok, full_refused, full_other, (long long)held_us,
            (long long)burst_us, (double)burst_us / 256);
    T_ASSERT(st == SLABMQ_OK || st == SLABMQ_ERR_STORAGE_FULL);
    T_EQ_INT(full_ok + full_refused, sent);
    T_EQ_INT(full_other, 0);
    T_ASSERT(full_refused >= 256);
    T_ASSERT(held_us < 2000000 && burst_us < 2000000);
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 1); /* still full: nothing waited for room */
    remount(dir, "64m");
    t0 = t_now_ms();
    while (t_now_ms() - t0 < 10000 && t_stat(mon, NULL, "store_state") != 0)
        t_sleep_ms(20);
    T_EQ_U64(t_stat(mon, NULL, "store_state"), 0);
    T_OK(n, slabmq_publish(n, "big", "x", 1, NULL));
    T_ASSERT(t_stat(mon, "big", "ready") >= (uint64_t)full_ok + 1);
    slabmq_client_close(p);
    slabmq_client_close(mon);
    slabmq_client_close(n);
    t_broker_stop(&b);
    unmount(dir);
    t_remove_dir(dir);
}

/* Fill what is left of the file system of dir with a file. */
static void
fill_rest(const char *dir)
{
    char path[128];
    static char blk[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/filler", dir);
    T_ASSERT((f = fopen(path, "a")) != NULL); /* a second call adds to the first */
    setvbuf(f, NULL, _IONBF, 0);
    while (fwrite(blk, 1, sizeof(blk), f) == sizeof(blk))
        ;
    while (fwrite(blk, 1, 1, f) == 1)
        ;
    fclose(f);
}

/* A broker that crashed with the disk full starts again on the still-full disk, refusing
 * durable publishes (ERR_STORAGE_FULL) but serving FETCH and ACK from what is stored, and
 * resumes by itself once there is room; the acks taken meanwhile are then committed. */
static void
test_restart_on_a_full_disk(void)
{
    struct t_broker b;
    char dir[64];
    slabmq_client *p;
    slabmq_client *c;
    slabmq_queue_options mem = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t ids[10];
    uint64_t ready;
    int64_t t0;

    t_temp_dir(dir, sizeof(dir), "fullstart");
    if (mount_tmpfs(dir, "1m")) {
        t_remove_dir(dir);
        return;
    }
    start(&b, dir);
    p = t_client(&b);
    c = t_client(&b);
    fill_disk(p, c);
    t_broker_kill(&b); /* a crash while the disk is full */
    slabmq_client_close(p);
    slabmq_client_close(c);
    fill_rest(dir); /* to the last byte: SQLite found a few when its commit failed */
    start(&b, dir); /* the disk is still full */
    /* the start's WAL checkpoint may have given blocks back (how many depends on where the
     * kill landed): take them again, so that the probe below meets a full disk every time */
    fill_rest(dir);
    c = t_client(&b);
    ready = t_stat(c, "big", "ready");
    fprintf(stderr, "restarted on a full disk with %llu messages, store_state %llu\n",
            (unsigned long long)ready, (unsigned long long)t_stat(c, NULL, "store_state"));
    T_ASSERT(ready >= 10);
    /* refused at once, or (when starting needed no write) when its commit fails */
    T_EQ_INT(slabmq_publish(c, "probe", "x", 1, NULL), SLABMQ_ERR_STORAGE_FULL);
    T_EQ_U64(t_stat(c, NULL, "store_state"), 1);
    T_EQ_INT(slabmq_publish(c, "big", "x", 1, NULL), SLABMQ_ERR_STORAGE_FULL);
    mem.durable = SLABMQ_DURABLE_NO;
    T_OK(c, slabmq_declare(c, "memory-only", &mem, NULL));
    T_OK(c, slabmq_publish(c, "memory-only", "y", 1, NULL));
    fetch_ids(c, "big", ids, 10);
    T_OK(c, slabmq_ack_batch(c, ids, 10, NULL));
    remount(dir, "64m");
    t0 = t_now_ms();
    while (t_now_ms() - t0 < 10000 && t_stat(c, NULL, "store_state") != 0)
        t_sleep_ms(20);
    fprintf(stderr, "room again: publishing resumed after %lld ms\n",
            (long long)(t_now_ms() - t0));
    T_EQ_U64(t_stat(c, NULL, "store_state"), 0);
    T_OK(c, slabmq_publish(c, "big", "x", 1, NULL));
    slabmq_client_close(c);
    t_broker_stop(&b);
    start(&b, dir); /* the acks taken on the full disk were committed */
    c = t_client(&b);
    T_EQ_U64(t_stat(c, "big", "ready"), ready - 10 + 1);
    slabmq_client_close(c);
    t_broker_stop(&b);
    unmount(dir);
    t_remove_dir(dir);
}

static const struct t_case cases[] = {
    T_CASE(test_ack_window_is_bounded),
    T_CASE(test_confirmed_ack_survives_a_crash),
    T_CASE(test_ring_is_sized_from_the_limit),
    T_CASE(test_pipelined_publishes_refused_when_full),
    T_CASE(test_restart_on_a_full_disk),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
