/* SPDX-License-Identifier: MIT */
/* slabmq-natscheck: the nats-js produce and drain of slabmq-peerbench written as a nats.c
 * user writes them, so the hand-written JetStream driver of peerbench can be checked against
 * the official C client on the same server:
 *
 *   produce  js_PublishAsync with PublishAsync.MaxPending = --depth, then
 *            js_PublishAsyncComplete; natsOptions_SetSendAsap unless --flusher (without it
 *            nats.c's flusher thread batches writes and can hold one for about 1 ms)
 *   drain    a durable pull subscription (AckExplicit, MaxAckPending 1,000,000, as
 *            peerbench's), natsSubscription_Fetch of --batch at a time (one pull in flight:
 *            Fetch is synchronous), natsMsg_Ack each message, a flush at the end so the
 *            server has every ack before the clock stops
 *
 * The stream (memory storage, work-queue retention) is named like peerbench's for the same
 * --queue; produce deletes and creates it. Payloads carry the sequence in bytes 8-15; the
 * drain checks length and order. Only 127.0.0.1 is contacted; every wait is bounded (stall
 * wait, fetch timeout, flush timeout) and the run by --timeout. Prints one JSON line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000                 /* bound on one stall, fetch or flush */

struct check_opts {
    int port;
    int drain;
    int flusher;              /* leave SendAsap off */
    uint64_t n;
    size_t size;
    int64_t depth;
    int batch;
    const char *queue;
    double timeout_s;
    char stream[64];
    char subject[80];
};

static atomic_ulong pub_errors;

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pub_err_cb(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    if (atomic_fetch_add(&pub_errors, 1) == 0)
        fprintf(stderr, "slabmq-natscheck: publish: %s\n", pae->ErrText ? pae->ErrText : "?");
}

static int
failed(const char *what, natsStatus s)
{
    fprintf(stderr, "slabmq-natscheck: %s: %s (%s)\n", what, natsStatus_GetText(s),
            nats_GetLastError(NULL));
    return -1;
}

/* Delete and create the stream, untimed. */
static int
make_stream(jsCtx *js, const struct check_opts *o)
{
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    const char *subjects[] = {o->subject};
    natsStatus s;

    js_DeleteStream(js, o->stream, NULL, NULL);
    jsStreamConfig_Init(&cfg);
    cfg.Name = o->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    cfg.Retention = js_WorkQueuePolicy;
    s = js_AddStream(&si, js, &cfg, NULL, NULL);
    jsStreamInfo_Destroy(si);
    return s == NATS_OK ? 0 : failed("add stream", s);
}

static int
produce(jsCtx *js, const struct check_opts *o, int64_t *t0, int64_t *t1)
{
    char *buf = malloc(o->size);
    jsPubOptions po;
    natsStatus s = NATS_OK;

    if (!buf || make_stream(js, o)) {
        free(buf);
        return -1;
    }
    memset(buf, 'x', o->size);
    *t0 = now_ns();
    for (uint64_t i = 0; i < o->n && s == NATS_OK; i++) {
        memcpy(buf + 8, &i, sizeof(i));
        s = js_PublishAsync(js, o->subject, buf, (int)o->size, NULL);
    }
    free(buf);
    if (s != NATS_OK)
        return failed("publish", s);
    jsPubOptions_Init(&po);
    po.MaxWait = (int64_t)(o->timeout_s * 1000);
    /* under LeakSanitizer, about one run in three ends with one natsMsg of a
     * js_PublishAsync (libnats 3.4.1's own allocation, freed by its PubAck handler) still
     * allocated; it is the library's, which its PubAck handler frees, and this call
     * apparently can return before that. Closing the connection first did not change it. */
    if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
        return failed("publish complete", s);
    *t1 = now_ns();
    return atomic_load(&pub_errors) ? -1 : 0;
}

static int
drain(natsConnection *nc, jsCtx *js, const struct check_opts *o, int64_t *t0, int64_t *t1,
      uint64_t *bad)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    uint64_t got = 0;
    uint64_t next = 0;
    int64_t deadline;
    natsStatus s;
    int rc = -1;

    jsSubOptions_Init(&so);
    so.Stream = o->stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 1000000;
    so.Config.AckWait = 120 * (int64_t)1000000000;
    if ((s = js_PullSubscribe(&sub, js, o->subject, "C", NULL, &so, NULL)) != NATS_OK)
        return failed("pull subscribe", s);
    *t0 = now_ns();
    deadline = *t0 + (int64_t)(o->timeout_s * 1e9);
    while (got < o->n) {
        natsMsgList list = {0};
        uint64_t want = o->n - got < (uint64_t)o->batch ? o->n - got : (uint64_t)o->batch;
        s = natsSubscription_Fetch(&list, sub, (int)want, WAIT_MS, NULL);
        if (s != NATS_OK) {
            natsMsgList_Destroy(&list);
            failed("fetch", s);
            goto out;
        }
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            uint64_t seq;
            if ((size_t)natsMsg_GetDataLength(m) != o->size) {
                (*bad)++;
            } else {
                memcpy(&seq, natsMsg_GetData(m) + 8, sizeof(seq));
                *bad += seq != next;
                next = seq + 1;
            }
            natsMsg_Ack(m, NULL);
        }
        got += (uint64_t)list.Count;
        natsMsgList_Destroy(&list);
        if (now_ns() > deadline) {
            fprintf(stderr, "slabmq-natscheck: deadline passed\n");
            goto out;
        }
    }
    if ((s = natsConnection_FlushTimeout(nc, WAIT_MS)) != NATS_OK) {
        failed("flush", s);
        goto out;
    }
    *t1 = now_ns();
    rc = 0;
out:
    natsSubscription_Destroy(sub);
    return rc;
}

/* A decimal in [lo, hi] into *out; -1 when optarg is not one. */
static int
parse_num(const char *arg, unsigned long long lo, unsigned long long hi, unsigned long long *out)
{
    char *end;

    errno = 0;
    *out = strtoull(arg, &end, 10);
    return errno || end == arg || *end || *out < lo || *out > hi ? -1 : 0;
}

static int
parse_args(int argc, char **argv, struct check_opts *o)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},  {"workload", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 's'},  {"depth", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'}, {"flusher", no_argument, NULL, 'F'},
        {"queue", required_argument, NULL, 'q'}, {"timeout", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    unsigned long long v = 0;
    char *end;
    int opt;
    int bad = 0;
    int have_workload = 0;
    size_t i;

    while (!bad && (opt = getopt_long(argc, argv, "n:", longopts, NULL)) != -1) {
        const char *arg = optarg ? optarg : "";
        switch (opt) {
        case 'p': bad = parse_num(arg, 1, 65535, &v); o->port = (int)v; break;
        case 'w':
            have_workload = 1;
            o->drain = strcmp(arg, "drain") == 0;
            bad = !o->drain && strcmp(arg, "produce") != 0;
            break;
        case 'n': bad = parse_num(arg, 1, 1ull << 40, &v); o->n = v; break;
        case 's': bad = parse_num(arg, 16, 1 << 20, &v); o->size = v; break;
        case 'd': bad = parse_num(arg, 1, 1 << 20, &v); o->depth = (int64_t)v; break;
        case 'b': bad = parse_num(arg, 1, 1 << 20, &v); o->batch = (int)v; break;
        case 'F': o->flusher = 1; break;
        case 'q': o->queue = arg; bad = strlen(arg) == 0 || strlen(arg) > 60; break;
        case 'T':
            errno = 0;
            o->timeout_s = strtod(arg, &end);
            bad = errno || end == arg || *end || o->timeout_s <= 0;
            break;
        default: bad = 1;
        }
    }
    if (bad || !have_workload || o->port == 0 || optind != argc) {
        fputs("usage: slabmq-natscheck --port P --workload produce|drain [-n N] [--size N]\n"
              "       [--depth N] [--batch N] [--flusher] [--queue NAME] [--timeout S]\n",
              stderr);
        return -1;
    }
    /* the stream and subject peerbench uses for the same queue name */
    for (i = 0; o->queue[i]; i++) {
        char ch = o->queue[i];
        o->stream[i] = (ch == '.' || ch == '*' || ch == '>' || ch == ' ') ? '_' : ch;
    }
    o->stream[i] = '\0';
    snprintf(o->subject, sizeof(o->subject), "pb.%s", o->stream);
    return 0;
}

int
main(int argc, char **argv)
{
    struct check_opts o = {0, 0, 0, 1000000, 16, 1024, 512, "natscheck", 300, "", ""};
    natsOptions *nopts = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    char url[64];
    uint64_t bad = 0;
    int64_t t0 = 0;
    int64_t t1 = 0;
    int rc = -1;
    natsStatus s;

    if (parse_args(argc, argv, &o))
        return 2;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", o.port);
    if ((s = natsOptions_Create(&nopts)) != NATS_OK || (s = natsOptions_SetURL(nopts, url)) ||
        (s = natsOptions_SetSendAsap(nopts, !o.flusher)) ||
        (s = natsOptions_SetMaxReconnect(nopts, 0)) ||
        (s = natsConnection_Connect(&nc, nopts)) != NATS_OK) {
        failed("connect", s);
        goto out;
    }
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = o.depth;
    jo.PublishAsync.ErrHandler = pub_err_cb;
    jo.PublishAsync.StallWait = WAIT_MS;
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
        failed("jetstream", s);
        goto out;
    }
    rc = o.drain ? drain(nc, js, &o, &t0, &t1, &bad) : produce(js, &o, &t0, &t1);
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(nopts);
    nats_CloseAndWait(WAIT_MS);
    if (rc)
        return 1;
    printf("{\"target\":\"natsc-js\",\"workload\":\"%s\",\"size\":%zu,\"n\":%" PRIu64
           ",\"depth\":%" PRId64 ",\"batch\":%d,\"send_asap\":%d,\"seconds\":%.6f,"
           "\"msgs_per_s\":%.1f,\"bad\":%" PRIu64 "}\n",
           o.drain ? "drain" : "produce", o.size, o.n, o.depth, o.batch, !o.flusher,
           (double)(t1 - t0) / 1e9, (double)o.n / ((double)(t1 - t0) / 1e9), bad);
    return bad ? 1 : 0;
}
