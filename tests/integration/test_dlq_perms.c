/* SPDX-License-Identifier: MIT */
/* Issue 15 item 2: a user must not reach a queue it may not publish to through another
 * queue's dead_letter setting (docs/protocol.md 5.1.1, docs/security.md section 6). A
 * DECLARE that names an explicit dead_letter target needs publish on the target; each way a
 * message reaches a dead-letter queue (TTL, delivery limit, TERM, overflow dead-letter) is
 * tried with a refused target and with a permitted one, and `slabmq move` into a queue the
 * user may not publish to is refused too. The default QUEUE.dlq and "" need nothing.
 *
 * Users: root (all) and app (admin, publish and consume on orders.*); the target the app
 * must not reach is "payments". Every wait is bounded; everything runs on 127.0.0.1. */
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "slabmq.h"
#include "t.h"

#define PW_ROOT "root-secret"
#define PW_APP "app-secret"

/* One case's broker, users file and clients. */
struct fix {
    char dir[64];        /* temp dir of the users file */
    char users[128];     /* the users file */
    struct t_broker b;   /* the broker, --auth-file users */
    slabmq_client *root; /* user root: all */
    slabmq_client *app;  /* user app: admin, publish, consume on orders.* */
};

static slabmq_client *
client_as(const struct t_broker *b, const char *user, const char *pw)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_client *c = NULL;
    char err[256] = "";
    slabmq_status st;

    o.port = (uint16_t)b->port;
    o.timeout_ms = 10000;
    o.user = user;
    o.password = pw;
    st = slabmq_client_connect_errbuf(&o, &c, err, sizeof(err));
    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__, "connect as %s: %s (%s)", user, slabmq_status_name(st), err);
    return c;
}

static void
fix_start(struct fix *f)
{
    char h[2][256];
    FILE *fp;

    t_password_hash(PW_ROOT, "--hash-password=1000", h[0], sizeof(h[0]));
    t_password_hash(PW_APP, "--hash-password=1000", h[1], sizeof(h[1]));
    t_temp_dir(f->dir, sizeof(f->dir), "dlqperms");
    snprintf(f->users, sizeof(f->users), "%s/users", f->dir);
    fp = fopen(f->users, "w");
    T_ASSERT(fp != NULL);
    fprintf(fp, "root %s all\napp %s admin=orders.* publish=orders.* consume=orders.*\n", h[0],
            h[1]);
    T_ASSERT(fclose(fp) == 0);
    T_ASSERT(chmod(f->users, 0600) == 0);
    t_broker_start(&f->b, "--auth-file", f->users, NULL);
    f->root = client_as(&f->b, "root", PW_ROOT);
    f->app = client_as(&f->b, "app", PW_APP);
}

/* Nothing reached payments (it was not even created), then stop everything. */
static void
fix_stop(struct fix *f)
{
    slabmq_stats *st = NULL;

    T_EQ_INT(slabmq_stats_get(f->root, "payments", &st), SLABMQ_ERR_NOT_FOUND);
    slabmq_client_close(f->app);
    slabmq_client_close(f->root);
    t_broker_stop(&f->b);
    t_remove_dir(f->dir);
}

/* app's DECLARE of queue with opts, dead_letter "payments", is refused with ERR_FORBIDDEN,
 * counted, leaves the connection usable and has no effect: the queue is not created. Then
 * the same with dead_letter dlq (in orders.*) succeeds. */
static void
declare_both(struct fix *f, const char *queue, slabmq_queue_options *opts, const char *dlq)
{
    uint64_t forbidden = t_stat(f->root, NULL, "forbidden");
    slabmq_stats *st = NULL;
    slabmq_status s;

    opts->dead_letter = "payments";
    s = slabmq_declare(f->app, queue, opts, NULL);
    if (s != SLABMQ_ERR_FORBIDDEN)
        t_fail(__FILE__, __LINE__, "declare %s dead_letter payments: %s, expected FORBIDDEN",
               queue, slabmq_status_name(s));
    T_ASSERT(strstr(slabmq_client_errmsg(f->app), "may not publish to queue 'payments'") != NULL);
    T_EQ_U64(t_stat(f->root, NULL, "forbidden"), forbidden + 1);
    T_OK(f->app, slabmq_ping(f->app));
    T_EQ_INT(slabmq_stats_get(f->root, queue, &st), SLABMQ_ERR_NOT_FOUND);
    opts->dead_letter = dlq;
    T_OK(f->app, slabmq_declare(f->app, queue, opts, NULL));
}

/* Wait up to 5 s for queue's ready count to reach n (read as root). */
static void
wait_ready(struct fix *f, const char *queue, uint64_t n)
{
    int64_t deadline = t_now_ms() + 5000;
    uint64_t v = 0;

    for (int i = 0; i < 500; i++) {
        slabmq_stats *st = NULL;
        if (slabmq_stats_get(f->root, queue, &st) == SLABMQ_OK) {
            int found = slabmq_stats_find(st, "ready", &v);
            slabmq_stats_free(st);
            if (found && v == n)
                return;
        }
        if (t_now_ms() > deadline)
            break;
        t_sleep_ms(10);
    }
    t_fail(__FILE__, __LINE__, "%s: ready %llu, expected %llu", queue, (unsigned long long)v,
           (unsigned long long)n);
}

/* The one message fetched from queue by app; its id. */
static uint64_t
fetch_one(struct fix *f, const char *queue)
{
    slabmq_batch *bt = NULL;
    uint64_t id;

    T_OK(f->app, slabmq_fetch(f->app, queue, 1, 0, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    id = slabmq_batch_get(bt, 0)->id;
    slabmq_batch_free(bt);
    return id;
}

/* ---------------------------------------------------------------------------------------- */
/* Each way into a dead-letter queue                                                         */

/* TTL: an expired message goes to the dead-letter queue. */
static void
test_ttl_target_needs_publish(void)
{
    struct fix f;
    slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t id;

    fix_start(&f);
    o.ttl_ms = 1;
    declare_both(&f, "orders.ttl", &o, "orders.dead");
    T_OK(f.app, slabmq_publish(f.app, "orders.ttl", "secret", 6, &id));
    wait_ready(&f, "orders.dead", 1);
    fix_stop(&f);
}

/* Delivery limit: a message NACKed after its last allowed delivery. */
static void
test_delivery_limit_target_needs_publish(void)
{
    struct fix f;
    slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t id;

    fix_start(&f);
    o.max_deliveries = 1;
    declare_both(&f, "orders.lim", &o, "orders.dead");
    T_OK(f.app, slabmq_publish(f.app, "orders.lim", "secret", 6, &id));
    T_EQ_U64(fetch_one(&f, "orders.lim"), id);
    T_OK(f.app, slabmq_nack(f.app, id, 0));
    wait_ready(&f, "orders.dead", 1);
    fix_stop(&f);
}

/* TERM: the consumer sends its delivery to the dead-letter queue. */
static void
test_term_target_needs_publish(void)
{
    struct fix f;
    slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t id;
    uint64_t n = 0;

    fix_start(&f);
    declare_both(&f, "orders.term", &o, "orders.dead");
    T_OK(f.app, slabmq_publish(f.app, "orders.term", "secret", 6, &id));
    T_EQ_U64(fetch_one(&f, "orders.term"), id);
    T_OK(f.app, slabmq_term(f.app, &id, 1, &n));
    T_EQ_U64(n, 1);
    wait_ready(&f, "orders.dead", 1);
    fix_stop(&f);
}

/* Overflow dead-letter: the oldest message of a full queue goes to the dead-letter queue. */
static void
test_overflow_target_needs_publish(void)
{
    struct fix f;
    slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t id;

    fix_start(&f);
    o.max_messages = 1;
    o.overflow = SLABMQ_OVERFLOW_DEAD_LETTER;
    declare_both(&f, "orders.full", &o, "orders.dead");
    T_OK(f.app, slabmq_publish(f.app, "orders.full", "secret", 6, &id));
    T_OK(f.app, slabmq_publish(f.app, "orders.full", "pushes", 6, &id));
    wait_ready(&f, "orders.dead", 1);
    fix_stop(&f);
}

/* A queue that exists keeps its dead-letter queue when a change to one the user may not
 * publish to is refused; root may name any queue, and app the default and "" (none). */
static void
test_redeclare_and_allowed_targets(void)
{
    struct fix f;
    slabmq_queue_options o = SLABMQ_QUEUE_OPTIONS_INIT;
    slabmq_stats *st = NULL;

    fix_start(&f);
    o.dead_letter = "orders.dead";
    T_OK(f.app, slabmq_declare(f.app, "orders.q", &o, NULL));
    o.dead_letter = "payments";
    o.ttl_ms = 1;
    T_EQ_INT(slabmq_declare(f.app, "orders.q", &o, NULL), SLABMQ_ERR_FORBIDDEN);
    T_OK(f.root, slabmq_stats_get(f.root, "orders.q", &st));
    T_EQ_STR(slabmq_stats_find_str(st, "dead_letter"), "orders.dead");
    slabmq_stats_free(st);
    T_EQ_U64(t_stat(f.root, "orders.q", "ttl_ms"), 0); /* no part of it applied */
    o.ttl_ms = 0;
    o.dead_letter = "";
    T_OK(f.app, slabmq_declare(f.app, "orders.q", &o, NULL));
    o.dead_letter = "orders.q.dlq";
    T_OK(f.app, slabmq_declare(f.app, "orders.q", &o, NULL));
    o.dead_letter = "payments.dlq";
    T_OK(f.root, slabmq_declare(f.root, "orders.r", &o, NULL)); /* root may publish anywhere */
    fix_stop(&f);
}

/* `slabmq move SRC DST` consumes from SRC and publishes to DST: with DST one the user may not
 * publish to, it fails, DST gets nothing and SRC keeps the message. (This held before the fix
 * too: move is a FETCH and a PUBLISH, each checked.) */
static void
test_move_target_needs_publish(void)
{
    struct fix f;
    struct cli_run r;
    uint64_t id;

    fix_start(&f);
    T_OK(f.app, slabmq_publish(f.app, "orders.dead", "secret", 6, &id));
    setenv("SLABMQ_USER", "app", 1);
    setenv("SLABMQ_PASSWORD", PW_APP, 1);
    r = RUN(f.b.port, "move", "orders.dead", "payments");
    T_EQ_INT(r.rc, 1);
    T_ASSERT(strstr(r.err, "may not publish to queue 'payments'") != NULL);
    cli_run_free(&r);
    cli_expect(RUN(f.b.port, "move", "orders.dead", "orders.back"), 0,
               "moved 1 message from orders.dead to orders.back\n");
    unsetenv("SLABMQ_USER");
    unsetenv("SLABMQ_PASSWORD");
    T_EQ_U64(t_stat(f.root, "orders.dead", "ready"), 0);
    T_EQ_U64(t_stat(f.root, "orders.back", "ready"), 1);
    fix_stop(&f);
}

static const struct t_case cases[] = {
    T_CASE(test_ttl_target_needs_publish),
    T_CASE(test_delivery_limit_target_needs_publish),
    T_CASE(test_term_target_needs_publish),
    T_CASE(test_overflow_target_needs_publish),
    T_CASE(test_redeclare_and_allowed_targets),
    T_CASE(test_move_target_needs_publish),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
