/* SPDX-License-Identifier: MIT */
/* cluster/rnet.c against real libraft groups: three nodes in this process, on one uv loop,
 * each with one hub (one port) and a raft_uv store per partition in a temporary directory;
 * two partitions, so six Raft instances talk over three ports. Each partition elects a
 * leader and commits entries on every replica; connections with a garbage preamble, another
 * cluster's digest, an unknown node id or a partition not served are closed and counted, and
 * the groups go on committing; everything closes without a leak (ASan, valgrind). */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cluster/rnet.h"
#include "cluster/uvev.h"
#include "t.h"

/* libraft allocates a message's buffer from the length its header claims: the garbage test's
 * huge lengths make that malloc fail, which libraft handles (it drops the connection). Under
 * AddressSanitizer such a request aborts unless the allocator may return NULL, as the C
 * library's does; so this test binary asks for that. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

#define NODES 3
#define PARTS 2
#define DIGEST 0x5eedfeedcafef00dull

struct replica {
    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft_uv_transport transport;
    uint64_t applied;
    int closed;
};

struct world {
    uv_loop_t loop;
    char dir[64];
    struct rnet_node nodes[NODES];
    struct rnet *hub[NODES];
    struct replica rep[NODES][PARTS];
    int hubs_closed;
    uint64_t committed;
};

static int
fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct replica *r = fsm->data;

    (void)buf;
    r->applied++;
    *result = NULL;
    return 0;
}

static int
fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    (void)bufs;
    (void)n;
    return RAFT_NOTFOUND; /* the test never reaches a snapshot threshold */
}

static int
fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

/* A free TCP port on 127.0.0.1 (bound then closed: the test's own, for a moment). */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port;

    T_ASSERT(fd >= 0);
    T_ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    T_ASSERT(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void
world_start(struct world *w)
{
    struct raft_configuration conf;

    memset(w, 0, sizeof(*w));
    T_ASSERT(uv_loop_init(&w->loop) == 0);
    snprintf(w->dir, sizeof(w->dir), "/tmp/slabmq-rnet.XXXXXX");
    T_ASSERT(mkdtemp(w->dir) != NULL);
    for (int i = 0; i < NODES; i++) {
        w->nodes[i].id = (raft_id)(i + 1);
        snprintf(w->nodes[i].address, sizeof(w->nodes[i].address), "127.0.0.1:%d",
                 free_port());
    }
    raft_configuration_init(&conf);
    for (int i = 0; i < NODES; i++)
        T_ASSERT(raft_configuration_add(&conf, w->nodes[i].id, w->nodes[i].address,
                                        RAFT_VOTER) == 0);
    for (int i = 0; i < NODES; i++) {
        w->hub[i] = rnet_new(&w->loop, DIGEST, w->nodes, NODES, w->nodes[i].id, PARTS);
        T_ASSERT(w->hub[i] != NULL);
        T_ASSERT(rnet_listen(w->hub[i], NULL) == 0);
        for (int p = 0; p < PARTS; p++) {
            struct replica *r = &w->rep[i][p];
            char dir[128];
            snprintf(dir, sizeof(dir), "%s/n%d-p%d", w->dir, i + 1, p);
            T_ASSERT(mkdir(dir, 0700) == 0);
            T_ASSERT(rnet_transport(w->hub[i], (uint32_t)p, &r->transport) == 0);
            T_ASSERT(raft_uv_init(&r->io, &w->loop, dir, &r->transport) == 0);
            r->fsm = (struct raft_fsm){.version = 1, .data = r, .apply = fsm_apply,
                                       .snapshot = fsm_snapshot, .restore = fsm_restore};
            T_ASSERT(raft_init(&r->raft, &r->io, &r->fsm, w->nodes[i].id,
                               w->nodes[i].address) == 0);
            r->raft.data = r;
            T_ASSERT(raft_bootstrap(&r->raft, &conf) == 0);
            raft_set_election_timeout(&r->raft, 300);
            raft_set_heartbeat_timeout(&r->raft, 50);
            raft_set_pre_vote(&r->raft, true);
            T_ASSERT(raft_start(&r->raft) == 0);
        }
    }
    raft_configuration_close(&conf);
}

/* When set, the uv loop is driven from this libevent loop (cluster/uvev.c), as slabmqd
 * will drive it, instead of by uv_run(). */
static struct event_base *evbase;
static struct uvev *embed;

/* Run the loop until pred(w) or ms pass; whether pred held. */
static int
run_until(struct world *w, int (*pred)(struct world *), int ms)
{
    struct timespec t0;
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (pred(w))
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            return 0;
        if (evbase)
            event_base_loop(evbase, EVLOOP_ONCE);
        else
            uv_run(&w->loop, UV_RUN_ONCE);
    }
}

static struct raft *
leader_of(struct world *w, int p)
{
    for (int i = 0; i < NODES; i++)
        if (raft_state(&w->rep[i][p].raft) == RAFT_LEADER)
            return &w->rep[i][p].raft;
    return NULL;
}

static int
all_led(struct world *w)
{
    for (int p = 0; p < PARTS; p++)
        if (!leader_of(w, p))
            return 0;
    return 1;
}

static void
apply_cb(struct raft_apply *req, int status, void *result)
{
    struct world *w = req->data;

    (void)result;
    if (status == 0)
        w->committed++;
    raft_free(req);
}

/* n entries on every partition's leader. */
static void
apply_entries(struct world *w, int n)
{
    for (int p = 0; p < PARTS; p++) {
        struct raft *leader = leader_of(w, p);
        T_ASSERT(leader != NULL);
        for (int k = 0; k < n; k++) {
            struct raft_apply *req = raft_malloc(sizeof(*req));
            struct raft_buffer buf = {.len = 64, .base = raft_malloc(64)};
            T_ASSERT(req && buf.base);
            memset(buf.base, 'e', 64);
            req->data = w;
            T_ASSERT(raft_apply(leader, req, &buf, 1, apply_cb) == 0);
        }
    }
    if (embed)
        uvev_kick(embed); /* called into libuv from outside its callbacks */
}

static uint64_t want_applied;

/* Every replica has applied want_applied entries of its own (plus the bootstrap
 * configuration and the leaders' no-op barriers, which the FSM does not see). */
static int
all_applied(struct world *w)
{
    for (int i = 0; i < NODES; i++)
        for (int p = 0; p < PARTS; p++)
            if (w->rep[i][p].applied < want_applied)
                return 0;
    return 1;
}

static void
replica_closed(struct raft *raft)
{
    struct replica *r = raft->data;

    raft_uv_close(&r->io);
    r->closed = 1;
}

static void
hub_closed(void *arg)
{
    struct world *w = arg;

    w->hubs_closed++;
}

static int
all_closed(struct world *w)
{
    for (int i = 0; i < NODES; i++)
        for (int p = 0; p < PARTS; p++)
            if (!w->rep[i][p].closed)
                return 0;
    return 1;
}

static int
hubs_closed(struct world *w)
{
    return w->hubs_closed == NODES;
}

static void
world_stop(struct world *w)
{
    char cmd[128];

    for (int i = 0; i < NODES; i++)
        for (int p = 0; p < PARTS; p++)
            raft_close(&w->rep[i][p].raft, replica_closed);
    T_ASSERT(run_until(w, all_closed, 10000));
    for (int i = 0; i < NODES; i++)
        rnet_close(w->hub[i], hub_closed, w);
    T_ASSERT(run_until(w, hubs_closed, 10000));
    T_ASSERT(uv_run(&w->loop, UV_RUN_NOWAIT) == 0); /* nothing left on the loop */
    T_ASSERT(uv_loop_close(&w->loop) == 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
    T_ASSERT(system(cmd) == 0);
}

static void
test_partitions_share_a_port(void)
{
    static struct world w;

    world_start(&w);
    T_ASSERT(run_until(&w, all_led, 15000));
    apply_entries(&w, 100);
    want_applied = 100;
    T_ASSERT(run_until(&w, all_applied, 15000));
    T_EQ_U64(w.committed, 100 * PARTS);
    for (int i = 0; i < NODES; i++) /* every group's peers came in through the hubs */
        T_ASSERT(rnet_stats(w.hub[i])->accepted >= 2);
    world_stop(&w);
}

/* A raw connection to node 1's hub sending this preamble, then waiting for the hub to close
 * it (bounded); the close is what the test checks, by reading EOF. */
static void
send_preamble(const struct world *w, const uint8_t pre[RNET_PREAMBLE], struct world *run)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const char *colon = strrchr(w->nodes[0].address, ':');
    uint8_t b;
    ssize_t r = -1;

    T_ASSERT(fd >= 0);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    for (int k = 0; k < 200; k++) { /* connect completes while the loop runs */
        uv_run(&run->loop, UV_RUN_NOWAIT);
        if (send(fd, pre, RNET_PREAMBLE, MSG_NOSIGNAL) == RNET_PREAMBLE)
            break;
        usleep(5000);
    }
    for (int k = 0; k < 400; k++) {
        uv_run(&run->loop, UV_RUN_NOWAIT);
        r = recv(fd, &b, 1, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        usleep(5000);
    }
    T_ASSERT(r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)));
    close(fd);
}

static void
preamble(uint8_t *p, const char *magic, uint64_t digest, uint32_t part, uint32_t node)
{
    memcpy(p, magic, 8);
    for (int i = 0; i < 8; i++)
        p[8 + i] = (uint8_t)(digest >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) {
        p[16 + i] = (uint8_t)(part >> (24 - 8 * i));
        p[20 + i] = (uint8_t)(node >> (24 - 8 * i));
    }
    memset(p + 24, 0, 8);
}

static void
test_bad_peers_are_dropped(void)
{
    static struct world w;
    uint8_t pre[RNET_PREAMBLE];
    const struct rnet_stats *st;

    world_start(&w);
    T_ASSERT(run_until(&w, all_led, 15000));
    st = rnet_stats(w.hub[0]);
    memset(pre, 0x41, sizeof(pre));
    send_preamble(&w, pre, &w);
    T_EQ_U64(st->bad_preamble, 1);
    preamble(pre, "SMQRAFT1", DIGEST ^ 1, 0, 2);
    send_preamble(&w, pre, &w);
    T_EQ_U64(st->bad_cluster, 1);
    preamble(pre, "SMQRAFT1", DIGEST, 0, 9); /* not in the table */
    send_preamble(&w, pre, &w);
    preamble(pre, "SMQRAFT1", DIGEST, 0, 1); /* the node itself */
    send_preamble(&w, pre, &w);
    T_EQ_U64(st->bad_node, 2);
    preamble(pre, "SMQRAFT1", DIGEST, PARTS, 2);
    send_preamble(&w, pre, &w);
    T_EQ_U64(st->bad_partition, 1);
    /* the groups never saw them, and still commit */
    apply_entries(&w, 20);
    want_applied = 20;
    T_ASSERT(run_until(&w, all_applied, 15000));
    world_stop(&w);
}

/* Garbage after a valid preamble reaches libraft's own decoder (a peer claiming to be node
 * 2 from its address: in this test every node is 127.0.0.1): many connections of random
 * bytes, some shaped like a message header with huge lengths, to every hub and partition.
 * libraft drops them; the groups keep committing; nothing leaks (valgrind, ASan). */
static void
test_garbage_after_preamble(void)
{
    static struct world w;
    static uint8_t junk[RNET_PREAMBLE + 4096];
    uint32_t seed = 777;

    uint64_t accepted = 0;

    world_start(&w);
    T_ASSERT(run_until(&w, all_led, 15000));
    for (int i = 0; i < NODES; i++)
        accepted += rnet_stats(w.hub[i])->accepted;
    for (int round = 0; round < 60; round++) {
        int node = round % NODES;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        const char *colon = strrchr(w.nodes[node].address, ':');
        size_t len = RNET_PREAMBLE + 8 + (size_t)(round * 67) % 4000;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        size_t sent = 0;

        T_ASSERT(fd >= 0);
        preamble(junk, "SMQRAFT1", DIGEST, (uint32_t)(round % PARTS),
                 (uint32_t)w.nodes[(node + 1) % NODES].id);
        for (size_t i = RNET_PREAMBLE; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            junk[i] = (uint8_t)(seed >> 16);
        }
        if (round % 3 == 0) /* a message header: protocol 1, a type, then a huge length */
            memcpy(junk + RNET_PREAMBLE, "\x01\0\0\0\0\0\0\0\x03\0\0\0\xff\xff\xff\x7f", 16);
        sa.sin_port = htons((uint16_t)atoi(colon + 1));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        for (int k = 0; k < 400 && sent < len; k++) {
            ssize_t r;
            uv_run(&w.loop, UV_RUN_NOWAIT);
            r = send(fd, junk + sent, len - sent, MSG_NOSIGNAL);
            if (r > 0)
                sent += (size_t)r;
            else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS
                     && errno != ENOTCONN)
                break; /* closed on us: fine */
            else
                usleep(1000);
        }
        for (int k = 0; k < 20; k++)
            uv_run(&w.loop, UV_RUN_NOWAIT);
        close(fd);
    }
    for (int i = 0; i < NODES; i++) /* every one got past the preamble, to libraft */
        accepted -= rnet_stats(w.hub[i])->accepted;
    T_ASSERT((uint64_t)0 - accepted >= 60);
    apply_entries(&w, 20);
    want_applied = 20;
    T_ASSERT(run_until(&w, all_applied, 15000));
    world_stop(&w);
}

/* The same groups with libuv driven only by a libevent loop (cluster/uvev.c): elections,
 * replication and commits happen with event_base_loop() as the only thing that runs. */
static void
test_embedded_in_libevent(void)
{
    static struct world w;

    world_start(&w);
    evbase = event_base_new();
    T_ASSERT(evbase != NULL);
    embed = uvev_new(evbase, &w.loop);
    T_ASSERT(embed != NULL);
    T_ASSERT(run_until(&w, all_led, 15000));
    apply_entries(&w, 200);
    want_applied = 200;
    T_ASSERT(run_until(&w, all_applied, 15000));
    T_EQ_U64(w.committed, 200 * PARTS);
    uvev_free(embed);
    embed = NULL;
    event_base_free(evbase);
    evbase = NULL;
    world_stop(&w);
}

static const struct t_case cases[] = {
    T_CASE(test_partitions_share_a_port),
    T_CASE(test_bad_peers_are_dropped),
    T_CASE(test_garbage_after_preamble),
    T_CASE(test_embedded_in_libevent),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
