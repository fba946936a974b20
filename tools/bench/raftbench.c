/* SPDX-License-Identifier: MIT */
/* slabmq-raftbench: how libraft's libuv loop should live with slabmqd's libevent loop, by
 * measurement (issue 18: "choose ... by measurement, and record the figures").
 *
 * Three (--nodes) libraft servers on 127.0.0.1, each a process forked by this one, each with
 * its own data directory under --dir (libraft's raft_uv: checksummed segments written with
 * O_DSYNC) and the TCP transport. Every server runs a libevent loop, as slabmqd does, and
 * its Raft in one of two ways:
 *   embed   libuv inside the libevent loop, as slabmqd will run it (broker/cluster/uvev.c:
 *           an event on uv_backend_fd() and a timer from uv_backend_timeout(), each running
 *           uv_run(UV_RUN_NOWAIT)); raft_apply() is called from libevent callbacks and the
 *           apply callback runs there too: no hand-off, one thread;
 *   thread  libuv on a thread of its own (as slabmqd's SQLite writer has one): entries go
 *           to it through a mutex-guarded queue and a uv_async_t, results come back through
 *           another queue and an eventfd the libevent loop watches.
 * The leader's libevent side keeps --window entries of --batch messages of --size bytes in
 * flight (a read batch's records as one entry, as issue 18 designs it) for --seconds and
 * prints one line: entries and messages committed per second, commit latency p50/p99 (from
 * the libevent side's submit to its seeing the result), and the leader's CPU per message
 * (all its threads, getrusage). The parent forks the servers, waits for the leader's line,
 * and stops every server by PID.
 *
 *   slabmq-raftbench --mode embed --seconds 5 --size 256 --batch 64 --window 4 --dir /tmp/x
 *
 * A prototype measurement, not the cluster: no snapshots (threshold left high), no
 * membership changes, no failure handling beyond a bounded wait for a leader. */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/uvev.h"
#include "hist.h"

#define MAX_NODES 5
#define LEADER_WAIT_S 20 /* bound on the wait for an elected leader */

struct opts {
    int embed;
    int nodes;
    int seconds;
    uint32_t size;
    uint32_t batch;
    uint32_t window;
    const char *dir;
    int base_port;
};

/* One entry on its way: submitted by the libevent side, applied (or failed) by Raft. */
struct job {
    struct raft_apply req;
    struct raft_buffer buf;
    uint64_t t0_ns;
    int status;
    struct job *next;
    struct server *s;
};

struct server {
    struct opts o;
    unsigned id;
    char address[64];
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    uint64_t applied;             /* entries applied by the FSM */
    /* libevent side */
    struct event_base *base;
    struct uvev *embed;           /* embed: the uv loop driven from libevent (cluster/uvev.c) */
    struct event *done_ev;        /* thread: the eventfd results come back on */
    struct event *tick;           /* leader check, load start and stop */
    int efd;
    /* thread mode hand-off */
    pthread_t th;
    uv_async_t submit_async;
    uv_async_t stop_async;
    pthread_mutex_t mu;
    struct job *to_uv;            /* submitted by libevent, not yet taken by uv */
    struct job *from_uv;          /* results of uv, not yet seen by libevent */
    /* the load (leader only) */
    int running;
    int finished;
    uint32_t inflight;
    uint64_t committed;
    uint64_t failed;
    uint64_t start_ns;
    uint64_t stop_ns;
    struct rusage ru0;
    struct hist h;
};

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* The state machine: counts what it applies (the broker's would apply journal records)      */

static int
fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct server *s = fsm->data;

    (void)buf;
    s->applied++;
    *result = NULL;
    return 0;
}

static int
fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct server *s = fsm->data;

    *bufs = raft_malloc(sizeof(**bufs));
    if (!*bufs)
        return RAFT_NOMEM;
    (*bufs)[0].len = sizeof(uint64_t);
    (*bufs)[0].base = raft_malloc(sizeof(uint64_t));
    if (!(*bufs)[0].base) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    memcpy((*bufs)[0].base, &s->applied, sizeof(uint64_t));
    *n_bufs = 1;
    return 0;
}

static int
fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct server *s = fsm->data;

    if (buf->len != sizeof(uint64_t))
        return RAFT_MALFORMED;
    memcpy(&s->applied, buf->base, sizeof(uint64_t));
    raft_free(buf->base);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The load, on the libevent side                                                             */

static void submit_more(struct server *s);

/* A result seen by the libevent side. */
static void
job_done(struct server *s, struct job *j)
{
    uint64_t t = now_ns();

    s->inflight--;
    if (j->status == 0) {
        s->committed++;
        hist_record(&s->h, t - j->t0_ns);
    } else {
        s->failed++;
    }
    free(j);
    if (s->running && t >= s->stop_ns) {
        s->running = 0;
        s->stop_ns = t;
    }
    if (s->running)
        submit_more(s);
}

static void
apply_cb(struct raft_apply *req, int status, void *result)
{
    struct job *j = req->data;
    struct server *s = j->s;

    (void)result;
    j->status = status;
    if (s->o.embed) {
        job_done(s, j);
        return;
    }
    pthread_mutex_lock(&s->mu); /* thread mode: back to the libevent side */
    j->next = s->from_uv;
    s->from_uv = j;
    pthread_mutex_unlock(&s->mu);
    uint64_t one = 1;
    if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        perror("raftbench: eventfd write");
}

/* Hand j to Raft: directly (embed), or through the queue to the uv thread. 0, or a libraft
 * error with j freed (embed: this server is not the leader any more). */
static int
job_apply(struct server *s, struct job *j)
{
    int rv;

    if (!s->o.embed) {
        pthread_mutex_lock(&s->mu);
        j->next = s->to_uv;
        s->to_uv = j;
        pthread_mutex_unlock(&s->mu);
        uv_async_send(&s->submit_async);
        return 0;
    }
    rv = raft_apply(&s->raft, &j->req, &j->buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(j->buf.base);
        free(j);
    }
    return rv;
}

static void
submit_more(struct server *s)
{
    while (s->running && s->inflight < s->o.window) {
        struct job *j = calloc(1, sizeof(*j));
        size_t len = (size_t)s->o.size * s->o.batch;
        if (!j)
            return;
        j->s = s;
        j->req.data = j;
        j->buf.len = len;
        j->buf.base = raft_malloc(len);
        if (!j->buf.base) {
            free(j);
            return;
        }
        memset(j->buf.base, 'm', len);
        j->t0_ns = now_ns();
        if (job_apply(s, j) != 0) {
            s->failed++;
            s->running = 0; /* not the leader any more: the run ends here */
            s->stop_ns = now_ns();
            return;
        }
        s->inflight++;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Thread mode: the uv thread                                                                 */

/* The uv thread takes what the libevent side queued (in its order) and applies it. */
static void
on_submit(uv_async_t *a)
{
    struct server *s = a->data;
    struct job *list;
    struct job *rev = NULL;

    pthread_mutex_lock(&s->mu);
    list = s->to_uv;
    s->to_uv = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) { /* pushed at the front: reverse to submission order */
        struct job *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct job *j = rev;
        int rv;
        rev = rev->next;
        rv = raft_apply(&s->raft, &j->req, &j->buf, 1, apply_cb);
        if (rv != 0) {
            raft_free(j->buf.base);
            j->req.data = j;
            apply_cb(&j->req, rv, NULL);
        }
    }
}

static void
raft_closed(struct raft *r)
{
    struct server *s = r->data;

    raft_uv_close(&s->io);
    raft_uv_tcp_close(&s->transport);
    uv_close((uv_handle_t *)&s->submit_async, NULL);
    uv_close((uv_handle_t *)&s->stop_async, NULL);
}

static void
on_stop(uv_async_t *a)
{
    struct server *s = a->data;

    raft_close(&s->raft, raft_closed);
}

static void *
uv_thread_main(void *arg)
{
    struct server *s = arg;

    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* libevent side of thread mode: results are back. */
static void
on_done(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    uint64_t n;
    struct job *list;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&s->mu);
    list = s->from_uv;
    s->from_uv = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        struct job *n2 = list->next;
        job_done(s, list);
        list = n2;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The server                                                                                  */

static void
report(struct server *s)
{
    struct rusage ru;
    double secs = (double)(s->stop_ns - s->start_ns) / 1e9;
    double cpu_us;
    uint64_t msgs = s->committed * s->o.batch;

    getrusage(RUSAGE_SELF, &ru);
    cpu_us = (double)(ru.ru_utime.tv_sec - s->ru0.ru_utime.tv_sec) * 1e6
           + (double)(ru.ru_utime.tv_usec - s->ru0.ru_utime.tv_usec)
           + (double)(ru.ru_stime.tv_sec - s->ru0.ru_stime.tv_sec) * 1e6
           + (double)(ru.ru_stime.tv_usec - s->ru0.ru_stime.tv_usec);
    printf("{\"mode\":\"%s\",\"nodes\":%d,\"size\":%u,\"batch\":%u,\"window\":%u,"
           "\"seconds\":%.2f,\"entries_per_s\":%.0f,\"msgs_per_s\":%.0f,\"p50_us\":%.0f,"
           "\"p99_us\":%.0f,\"leader_cpu_us_per_msg\":%.3f,\"failed\":%llu}\n",
           s->o.embed ? "embed" : "thread", s->o.nodes, s->o.size, s->o.batch, s->o.window,
           secs, (double)s->committed / secs, (double)msgs / secs,
           (double)hist_percentile(&s->h, 50) / 1e3, (double)hist_percentile(&s->h, 99) / 1e3,
           msgs ? cpu_us / (double)msgs : 0.0, (unsigned long long)s->failed);
    (void)fflush(stdout); /* the parent reads it through the pipe before stopping us */
}

/* Every 50 ms: once leader, start the load; when it has run its time and drained, report
 * and exit. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    if (!s->running && !s->finished && s->start_ns == 0 && raft_state(&s->raft) == RAFT_LEADER) {
        /* let the followers' connections settle, then go */
        s->start_ns = now_ns();
        s->stop_ns = s->start_ns + (uint64_t)s->o.seconds * 1000000000u;
        getrusage(RUSAGE_SELF, &s->ru0);
        hist_init(&s->h);
        s->running = 1;
        submit_more(s);
        if (s->embed)
            uvev_kick(s->embed); /* raft_apply() from outside libuv's callbacks */
        return;
    }
    if (s->start_ns && !s->running && !s->finished && s->inflight == 0) {
        s->finished = 1;
        report(s);
        event_base_loopbreak(s->base);
    }
    if (s->running && now_ns() > s->stop_ns + 10000000000ull) {
        fprintf(stderr, "raftbench: node %u: entries stuck for 10 s after the run\n", s->id);
        s->running = 0;
    }
}

static int
server_run(const struct opts *o, unsigned id)
{
    struct server *s = calloc(1, sizeof(*s));
    struct raft_configuration conf;
    char dir[512];
    struct timeval tick = {0, 50000};
    int rv;

    if (!s)
        return 1;
    s->o = *o;
    s->id = id;
    snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", o->base_port + (int)id);
    snprintf(dir, sizeof(dir), "%s/n%u", o->dir, id);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        perror(dir);
        free(s);
        return 1;
    }
    uv_loop_init(&s->loop);
    s->transport.version = 1;
    if ((rv = raft_uv_tcp_init(&s->transport, &s->loop)) != 0
        || (rv = raft_uv_init(&s->io, &s->loop, dir, &s->transport)) != 0) {
        fprintf(stderr, "raftbench: node %u: raft_uv init: %s\n", id, raft_strerror(rv));
        _exit(1); /* the loop holds s's handles: nothing to tidy in a child that ends */
    }
    s->fsm.version = 1;
    s->fsm.data = s;
    s->fsm.apply = fsm_apply;
    s->fsm.snapshot = fsm_snapshot;
    s->fsm.restore = fsm_restore;
    if (raft_init(&s->raft, &s->io, &s->fsm, id, s->address) != 0) {
        fprintf(stderr, "raftbench: node %u: raft_init: %s\n", id, raft_errmsg(&s->raft));
        _exit(1);
    }
    s->raft.data = s;
    raft_configuration_init(&conf);
    for (int i = 1; i <= o->nodes; i++) {
        char a[64];
        snprintf(a, sizeof(a), "127.0.0.1:%d", o->base_port + i);
        raft_configuration_add(&conf, (raft_id)i, a, RAFT_VOTER);
    }
    rv = raft_bootstrap(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        fprintf(stderr, "raftbench: node %u: bootstrap: %s\n", id, raft_strerror(rv));
        _exit(1);
    }
    raft_set_pre_vote(&s->raft, true);
    raft_set_election_timeout(&s->raft, 1000);
    raft_set_heartbeat_timeout(&s->raft, 100);
    raft_set_snapshot_threshold(&s->raft, 1u << 30); /* not measured here */
    if (raft_start(&s->raft) != 0) {
        fprintf(stderr, "raftbench: node %u: raft_start: %s\n", id, raft_errmsg(&s->raft));
        _exit(1);
    }
    s->base = event_base_new();
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    event_add(s->tick, &tick);
    if (o->embed) {
        s->embed = uvev_new(s->base, &s->loop);
        if (!s->embed)
            _exit(1);
    } else {
        pthread_mutex_init(&s->mu, NULL);
        s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        s->done_ev = event_new(s->base, s->efd, EV_READ | EV_PERSIST, on_done, s);
        event_add(s->done_ev, NULL);
        uv_async_init(&s->loop, &s->submit_async, on_submit);
        uv_async_init(&s->loop, &s->stop_async, on_stop);
        s->submit_async.data = s;
        s->stop_async.data = s;
        pthread_create(&s->th, NULL, uv_thread_main, s);
    }
    event_base_dispatch(s->base);
    /* the leader reported, or the parent stops us: either way the process ends here (the
     * parent kills followers by PID; the data directory goes with --dir) */
    _exit(0);
}

static void
on_alarm(int sig)
{
    (void)sig; /* interrupts the read of the leader's line */
}

static void
usage(void)
{
    fprintf(stderr, "usage: slabmq-raftbench --mode embed|thread --dir DIR [--nodes N] "
                    "[--seconds S] [--size B] [--batch K] [--window W] [--port P]\n");
    exit(2);
}

/* A whole decimal argument in [lo, hi], else usage. */
static long
arg_num(const char *v, long lo, long hi)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (*v == '\0' || *end || n < lo || n > hi)
        usage();
    return n;
}

int
main(int argc, char **argv)
{
    struct opts o = {1, 3, 5, 256, 64, 4, NULL, 19400};
    pid_t pids[MAX_NODES];
    int out[2];
    char line[1024];
    FILE *f;
    int got = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--mode"))
            o.embed = !strcmp(v, "embed") ? 1 : !strcmp(v, "thread") ? 0 : (usage(), 0);
        else if (!strcmp(a, "--dir"))
            o.dir = v;
        else if (!strcmp(a, "--nodes"))
            o.nodes = (int)arg_num(v, 1, MAX_NODES);
        else if (!strcmp(a, "--seconds"))
            o.seconds = (int)arg_num(v, 1, 3600);
        else if (!strcmp(a, "--size"))
            o.size = (uint32_t)arg_num(v, 1, 1 << 20);
        else if (!strcmp(a, "--batch"))
            o.batch = (uint32_t)arg_num(v, 1, 1 << 16);
        else if (!strcmp(a, "--window"))
            o.window = (uint32_t)arg_num(v, 1, 1 << 16);
        else if (!strcmp(a, "--port"))
            o.base_port = (int)arg_num(v, 1024, 65535 - MAX_NODES);
        else
            usage();
        i++;
    }
    if (!o.dir || o.nodes < 1 || o.nodes > MAX_NODES || o.seconds < 1 || o.size < 1
        || o.batch < 1 || o.window < 1)
        usage();
    if (mkdir(o.dir, 0700) != 0 && errno != EEXIST) {
        perror(o.dir);
        return 1;
    }
    if (pipe(out) != 0)
        return 1;
    for (int i = 0; i < o.nodes; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(out[0]);
            dup2(out[1], STDOUT_FILENO);
            return server_run(&o, (unsigned)i + 1);
        }
    }
    close(out[1]);
    /* the leader's line, or nothing if no leader was elected in time */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm; /* no SA_RESTART: fgets returns, the servers are stopped */
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)(LEADER_WAIT_S + o.seconds + 15));
    f = fdopen(out[0], "r");
    if (f && fgets(line, sizeof(line), f)) {
        fputs(line, stdout);
        got = 1;
    }
    for (int i = 0; i < o.nodes; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    if (!got)
        fprintf(stderr, "raftbench: no result (no leader, or it failed)\n");
    return got ? 0 : 1;
}
