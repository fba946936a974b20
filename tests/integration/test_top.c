/* SPDX-License-Identifier: MIT */
/* `slabmq top` against a real broker: bounded by -n, plain frames when stdout is not a
 * terminal (no ANSI), depth and in flight as STATS has them, rates from two samples while a
 * producer publishes, --json frames, and bad --interval values. */
#include <pthread.h>

#include "cli.h"
#include "slabmq.h"
#include "t.h"

static void
test_plain_frames(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *batch;
    struct cli_run r;
    uint64_t id;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    for (int i = 0; i < 5; i++)
        T_OK(c, slabmq_publish(c, "jobs", "x", 1, &id));
    T_OK(c, slabmq_fetch(c, "jobs", 2, 0, &batch));
    r = RUN(b.port, "top", "-n", "2", "--interval", "50");
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strchr(r.out, '\033') == NULL);
    T_ASSERT(strstr(r.out, "QUEUE") != NULL);
    /* two frames, each with the queue's row: name, READY 3, INFLIGHT 2, DELAYED 0 */
    {
        const char *p = strstr(r.out, "\njobs ");
        int ready = -1, inflight = -1, delayed = -1;
        T_ASSERT(p != NULL);
        T_EQ_INT(sscanf(p + 5, "%d %d %d", &ready, &inflight, &delayed), 3);
        T_EQ_INT(ready, 3);
        T_EQ_INT(inflight, 2);
        T_EQ_INT(delayed, 0);
        T_ASSERT(strstr(p + 1, "\njobs ") != NULL);
    }
    cli_run_free(&r);
    slabmq_batch_free(batch);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

struct producer {
    const struct t_broker *b;
    volatile int stop;
};

static void *
produce(void *arg)
{
    struct producer *p = arg;
    slabmq_client *c = t_client(p->b);
    uint64_t id;

    while (!p->stop) {
        T_OK(c, slabmq_publish(c, "busy", "y", 1, &id));
        t_sleep_ms(2);
    }
    slabmq_client_close(c);
    return NULL;
}

static void
test_rates_json(void)
{
    struct t_broker b;
    struct producer p;
    pthread_t th;
    struct cli_run r;
    const char *at;
    double rate = -2;

    t_broker_start(&b, NULL);
    p.b = &b;
    p.stop = 0;
    T_EQ_INT(pthread_create(&th, NULL, produce, &p), 0);
    t_sleep_ms(100);
    r = RUN(b.port, "--json", "top", "-n", "2", "--interval", "300");
    p.stop = 1;
    pthread_join(th, NULL);
    T_EQ_INT(r.rc, 0);
    T_ASSERT(strchr(r.out, '\033') == NULL);
    at = strrchr(r.out, '{'); /* the last frame's queue object */
    T_ASSERT(at && strstr(at, "\"name\":\"busy\"") != NULL);
    T_ASSERT((at = strstr(at, "\"publish_rate\":")) != NULL);
    rate = strtod(at + 15, NULL);
    T_ASSERT(rate > 10); /* ~one publish every 2 ms plus the round trip */
    cli_run_free(&r);
    t_broker_stop(&b);
}

static void
test_bad_interval(void)
{
    struct cli_run r = RUN(0, "top", "--interval", "0");

    T_EQ_INT(r.rc, 2);
    cli_run_free(&r);
    r = RUN(0, "top", "--interval", "x");
    T_EQ_INT(r.rc, 2);
    cli_run_free(&r);
}

static const struct t_case cases[] = {
    T_CASE(test_plain_frames),
    T_CASE(test_rates_json),
    T_CASE(test_bad_interval),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
