/* SPDX-License-Identifier: MIT */
/* slabmq-redischeck: the redis-list workloads of slabmq-peerbench written as a plain hiredis
 * user writes them, so the peer tool's Redis figures can be checked against a client that
 * is not ours (issue 17: a client, not Redis, had set the old figures). Blocking hiredis
 * context, pipelining through redisAppendCommandArgv and redisGetReply:
 *
 *   produce  LPUSH, --push-values values a command (1: one LPUSH per message), at most
 *            --depth messages unconfirmed: a command is appended whenever the window has
 *            room for it, and hiredis writes what is appended when it runs out of replies
 *   drain    LMPOP 1 key RIGHT COUNT --batch (or RPOP key COUNT with --rpop), as many
 *            requests in flight as --depth allows; the first short answer ends the run
 *
 * Payloads are 16 bytes or more of 'x' with the sequence in bytes 8-15, like peerbench's;
 * the drain checks each one's length and order. Only 127.0.0.1 is contacted; every read and
 * write is bounded by a 10 s socket timeout and the run by --timeout. Prints one JSON line
 * with the fields bench-peers.sh reads (target, workload, msgs_per_s). */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define MAX_VALUES 65536              /* values one LPUSH takes at most here */

struct check_opts {
    int port;
    int drain;
    int rpop;                 /* drain with RPOP key COUNT instead of LMPOP */
    uint64_t n;
    size_t size;
    uint64_t depth;
    uint64_t batch;
    uint64_t push_values;
    const char *queue;
    double timeout_s;
};

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One reply, which must not be an error; NULL (said on stderr) on an error or a lost
 * connection. */
static redisReply *
get_reply(redisContext *c)
{
    void *r = NULL;

    if (redisGetReply(c, &r) != REDIS_OK || !r) {
        fprintf(stderr, "slabmq-redischeck: %s\n", c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "slabmq-redischeck: %s\n", ((redisReply *)r)->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* LPUSH o->n messages, push_values at a time, o->depth unconfirmed at most. The argv of
 * every command is built once and only the sequences change. */
static int
produce(redisContext *c, const struct check_opts *o, int64_t deadline)
{
    uint64_t maxv = o->push_values;
    const char **argv = calloc(maxv + 2, sizeof(*argv));
    size_t *lens = calloc(maxv + 2, sizeof(*lens));
    char *vals = malloc(maxv * o->size);
    uint64_t sent = 0;
    uint64_t done = 0;
    uint64_t *inflight = calloc(o->depth, sizeof(*inflight)); /* values of each command */
    uint64_t head = 0;
    uint64_t cmds = 0;
    int rc = -1;

    if (!argv || !lens || !vals || !inflight)
        goto out;
    memset(vals, 'x', maxv * o->size);
    argv[0] = "LPUSH";
    lens[0] = 5;
    argv[1] = o->queue;
    lens[1] = strlen(o->queue);
    for (uint64_t i = 0; i < maxv; i++) {
        argv[i + 2] = vals + i * o->size;
        lens[i + 2] = o->size;
    }
    while (done < o->n) {
        redisReply *r;
        while (sent < o->n) {
            uint64_t k = o->n - sent < o->push_values ? o->n - sent : o->push_values;
            if (sent - done + k > o->depth)
                break;
            for (uint64_t i = 0; i < k; i++) {
                uint64_t seq = sent + i;
                memcpy(vals + i * o->size + 8, &seq, sizeof(seq));
            }
            redisAppendCommandArgv(c, (int)(k + 2), argv, lens);
            inflight[(head + cmds++) % o->depth] = k;
            sent += k;
        }
        if (!(r = get_reply(c)))
            goto out;
        freeReplyObject(r);
        done += inflight[head];
        head = (head + 1) % o->depth;
        cmds--;
        if (now_ns() > deadline) {
            fprintf(stderr, "slabmq-redischeck: deadline passed\n");
            goto out;
        }
    }
    rc = 0;
out:
    free(argv);
    free(lens);
    free(vals);
    free(inflight);
    return rc;
}

/* Check the elements of one pop reply; returns how many it held, -1 when its shape is
 * wrong. */
static int64_t
pop_elements(const redisReply *r, const struct check_opts *o, uint64_t *next, uint64_t *bad)
{
    const redisReply *arr = r;

    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (!o->rpop) { /* LMPOP: [key, [values]] */
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            return -1;
        arr = r->element[1];
    }
    if (arr->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        uint64_t seq;
        if (e->type != REDIS_REPLY_STRING || e->len != o->size) {
            (*bad)++;
            continue;
        }
        memcpy(&seq, e->str + 8, sizeof(seq));
        *bad += seq != *next;
        *next = seq + 1;
    }
    return (int64_t)arr->elements;
}

/* Pop o->n messages, o->depth asked for and not yet received at most, in requests of
 * o->batch; a short answer means the list ran dry. */
static int
drain(redisContext *c, const struct check_opts *o, int64_t deadline, uint64_t *bad)
{
    char cnt[24];
    const char *lmpop[] = {"LMPOP", "1", o->queue, "RIGHT", "COUNT", cnt};
    const char *rpop[] = {"RPOP", o->queue, cnt};
    size_t lens[6];
    uint64_t got = 0;
    uint64_t asked = 0;
    uint64_t next = 0;
    uint64_t *inflight = calloc(o->depth, sizeof(*inflight));
    uint64_t head = 0;
    uint64_t cmds = 0;
    int dry = 0;
    int rc = -1;

    if (!inflight)
        return -1;
    while ((got < o->n && !dry) || cmds > 0) {
        redisReply *r;
        int64_t k;
        while (!dry && asked < o->n) {
            uint64_t want = o->n - asked < o->batch ? o->n - asked : o->batch;
            if (asked - got + want > o->depth)
                break;
            const char **cmd = o->rpop ? rpop : lmpop;
            int nargs = o->rpop ? 3 : 6;
            snprintf(cnt, sizeof(cnt), "%" PRIu64, want);
            for (int i = 0; i < nargs; i++)
                lens[i] = strlen(cmd[i]);
            redisAppendCommandArgv(c, nargs, cmd, lens);
            inflight[(head + cmds++) % o->depth] = want;
            asked += want;
        }
        if (!(r = get_reply(c)))
            goto out;
        k = pop_elements(r, o, &next, bad);
        freeReplyObject(r);
        if (k < 0 || (uint64_t)k > inflight[head]) {
            fprintf(stderr, "slabmq-redischeck: unexpected pop reply\n");
            goto out;
        }
        got += (uint64_t)k;
        dry |= (uint64_t)k < inflight[head];
        asked -= inflight[head] - (uint64_t)k;
        head = (head + 1) % o->depth;
        cmds--;
        if (now_ns() > deadline) {
            fprintf(stderr, "slabmq-redischeck: deadline passed\n");
            goto out;
        }
    }
    if (got < o->n) {
        fprintf(stderr, "slabmq-redischeck: the list ran dry after %" PRIu64 " of %" PRIu64
                " messages\n", got, o->n);
        goto out;
    }
    rc = 0;
out:
    free(inflight);
    return rc;
}

static void
usage(FILE *f)
{
    fputs("usage: slabmq-redischeck --port P --workload produce|drain [options]\n"
          "  -n N             messages (default 1000000)\n"
          "  --size N         payload bytes, >= 16 (default 16)\n"
          "  --depth N        messages unconfirmed / asked for at most (default 1024)\n"
          "  --batch N        drain: COUNT of each pop (default 512)\n"
          "  --push-values N  produce: values per LPUSH, <= depth (default 512)\n"
          "  --rpop           drain with RPOP key COUNT instead of LMPOP\n"
          "  --queue NAME     the list (default redischeck)\n"
          "  --timeout S      whole-run deadline, seconds (default 300)\n",
          f);
}

static int
parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_args(int argc, char **argv, struct check_opts *o)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},   {"workload", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},   {"depth", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},  {"push-values", required_argument, NULL, 'V'},
        {"rpop", no_argument, NULL, 'R'},         {"queue", required_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}};
    uint64_t v = 0;
    int opt;
    int bad = 0;
    int have_workload = 0;
    char *end;

    while (!bad && (opt = getopt_long(argc, argv, "n:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': bad = parse_u64(optarg, 1, 65535, &v); o->port = (int)v; break;
        case 'w':
            have_workload = 1;
            o->drain = strcmp(optarg, "drain") == 0;
            bad = !o->drain && strcmp(optarg, "produce") != 0;
            break;
        case 'n': bad = parse_u64(optarg, 1, 1ull << 40, &o->n); break;
        case 's': bad = parse_u64(optarg, 16, 1 << 20, &v); o->size = v; break;
        case 'd': bad = parse_u64(optarg, 1, 1 << 20, &o->depth); break;
        case 'b': bad = parse_u64(optarg, 1, 1 << 20, &o->batch); break;
        case 'V': bad = parse_u64(optarg, 1, MAX_VALUES, &o->push_values); break;
        case 'R': o->rpop = 1; break;
        case 'q': o->queue = optarg; bad = strlen(optarg) == 0; break;
        case 'T':
            errno = 0;
            o->timeout_s = strtod(optarg, &end);
            bad = errno || end == optarg || *end || o->timeout_s <= 0;
            break;
        default: bad = 1;
        }
    }
    if (bad || !have_workload || o->port == 0 || optind != argc || o->push_values > o->depth ||
        o->batch > o->depth) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct check_opts o = {0, 0, 0, 1000000, 16, 1024, 512, 512, "redischeck", 300};
    struct timeval tv = {10, 0};
    redisContext *c;
    uint64_t bad = 0;
    int64_t t0;
    int64_t t1;
    int rc;

    if (parse_args(argc, argv, &o))
        return 2;
    c = redisConnectWithTimeout("127.0.0.1", o.port, tv);
    if (!c || c->err) {
        fprintf(stderr, "slabmq-redischeck: connect: %s\n", c ? c->errstr : "out of memory");
        redisFree(c);
        return 1;
    }
    redisSetTimeout(c, tv);
    if (!o.drain) { /* a fresh list, untimed */
        redisReply *r = redisCommand(c, "DEL %s", o.queue);
        if (!r) {
            fprintf(stderr, "slabmq-redischeck: DEL: %s\n", c->errstr);
            redisFree(c);
            return 1;
        }
        freeReplyObject(r);
    }
    t0 = now_ns();
    rc = o.drain ? drain(c, &o, t0 + (int64_t)(o.timeout_s * 1e9), &bad)
                 : produce(c, &o, t0 + (int64_t)(o.timeout_s * 1e9));
    t1 = now_ns();
    redisFree(c);
    if (rc)
        return 1;
    printf("{\"target\":\"hiredis-list\",\"workload\":\"%s\",\"size\":%zu,\"n\":%" PRIu64
           ",\"depth\":%" PRIu64 ",\"batch\":%" PRIu64 ",\"push_values\":%" PRIu64
           ",\"pop\":\"%s\",\"seconds\":%.6f,\"msgs_per_s\":%.1f,\"bad\":%" PRIu64 "}\n",
           o.drain ? "drain" : "produce", o.size, o.n, o.depth, o.batch, o.push_values,
           o.rpop ? "RPOP" : "LMPOP", (double)(t1 - t0) / 1e9,
           (double)o.n / ((double)(t1 - t0) / 1e9), bad);
    return bad ? 1 : 0;
}
