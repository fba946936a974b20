/* SPDX-License-Identifier: MIT */
/* The dashboard at / in headless Chromium against a real broker: the page's script polls
 * /api/stats and fills the queue table, so the DOM Chromium dumps after running it must show
 * each queue's depth, and the new depth after more publishes; ?queue=NAME lists that queue's
 * dead letters with their reasons. Screenshots are kept in the build directory
 * (dashboard-*.png). Chromium is optional (scripts/deps.sh installs it only with
 * SLABMQ_DEPS_CHROMIUM=1): without it every case prints SKIP and exits 77, which ctest
 * reports as skipped. $SLABMQ_CHROMIUM names another binary. */
#include <pthread.h>
#include <unistd.h>

#include "slabmq.h"
#include "t.h"

#define SKIP_CODE 77
#define CHROMIUM_MS 90000 /* one Chromium run; about 5 s on an idle machine */

static const char *
chromium(void)
{
    static const char *const paths[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                                        "/usr/bin/google-chrome"};
    const char *env = getenv("SLABMQ_CHROMIUM");

    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static const char *
need_chromium(void)
{
    const char *c = chromium();

    if (!c) {
        printf("SKIP: chromium not found (install it with SLABMQ_DEPS_CHROMIUM=1 "
               "scripts/deps.sh, or set SLABMQ_CHROMIUM)\n");
        fflush(stdout);
        exit(SKIP_CODE);
    }
    return c;
}

/* Load url in headless Chromium, let its script run (virtual time: the page's timers and
 * fetches, no real waiting), and return the DOM it ends with; also save a screenshot. */
static char *
load(const char *url, const char *shot)
{
    char profile[] = "/tmp/slabmq-chromium.XXXXXX";
    char prof_arg[64];
    char shot_arg[512];
    char *dom = NULL;
    char *err = NULL;
    size_t len;
    int rc;

    T_ASSERT(mkdtemp(profile) != NULL);
    snprintf(prof_arg, sizeof(prof_arg), "--user-data-dir=%s", profile);
    {
        char *argv[] = {(char *)need_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run", prof_arg,
                        "--virtual-time-budget=3000", "--dump-dom", (char *)url, NULL};
        rc = t_run(argv, NULL, 0, &dom, &len, &err, CHROMIUM_MS);
        if (rc != 0)
            t_fail(__FILE__, __LINE__, "chromium exited %d: %s", rc, err ? err : "");
        free(err);
    }
    snprintf(shot_arg, sizeof(shot_arg), "--screenshot=%s/%s", SLABMQ_ARTIFACT_DIR, shot);
    {
        char *argv[] = {(char *)need_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run", prof_arg,
                        "--hide-scrollbars", "--window-size=1280,1000",
                        "--virtual-time-budget=3000", shot_arg, (char *)url, NULL};
        char *out = NULL;
        /* The screenshot is an artifact for people; the DOM above is what the test checks.
         * On a loaded machine Chromium has now and then hung taking it at the end of the
         * virtual time budget (a real-time --timeout instead shot the page before its
         * script ran), so a missing screenshot is a warning, not a failure. */
        if (t_run(argv, NULL, 0, &out, &len, &err, CHROMIUM_MS) != 0)
            printf("WARNING: no screenshot %s (chromium failed or timed out)\n", shot);
        free(out);
        free(err);
    }
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", profile);
        T_EQ_INT(system(cmd), 0);
    }
    return dom;
}

/* The queue table's row for name: "<td>name</td><td>READY</td><td>INFLIGHT</td>". */
static int
shows(const char *dom, const char *name, int ready, int inflight)
{
    char row[256];

    snprintf(row, sizeof(row), "<td>%s</td><td>%d</td><td>%d</td>", name, ready, inflight);
    return strstr(dom, row) != NULL;
}

static void
publish_n(slabmq_client *c, const char *q, int n)
{
    uint64_t id;

    for (int i = 0; i < n; i++)
        T_OK(c, slabmq_publish(c, q, "dashboard", 9, &id));
}

static void
test_depth_follows_publishes(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *batch;
    char url[128];
    char *dom;

    need_chromium();
    t_broker_start(&b, "--http", "127.0.0.1:0", NULL);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/?interval=200", b.http_port);
    c = t_client(&b);
    publish_n(c, "dash.orders", 7);
    T_OK(c, slabmq_fetch(c, "dash.orders", 2, 0, &batch));
    dom = load(url, "dashboard-before.png");
    if (!shows(dom, "dash.orders", 5, 2))
        t_fail(__FILE__, __LINE__, "the page does not show depth 5, 2 in flight:\n%s", dom);
    T_ASSERT(strstr(dom, "id=\"status\" class=\"\">live<") != NULL);
    free(dom);

    publish_n(c, "dash.orders", 4);
    publish_n(c, "dash.other", 1);
    dom = load(url, "dashboard-after.png");
    if (!shows(dom, "dash.orders", 9, 2) || !shows(dom, "dash.other", 1, 0))
        t_fail(__FILE__, __LINE__, "the page does not show the new depths:\n%s", dom);
    free(dom);
    slabmq_batch_free(batch);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_dead_letters_with_reasons(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_batch *batch;
    char url[128];
    char *dom;
    uint64_t id;

    need_chromium();
    t_broker_start(&b, "--http", "127.0.0.1:0", NULL);
    c = t_client(&b);
    publish_n(c, "dash.work", 1);
    T_OK(c, slabmq_fetch(c, "dash.work", 1, 0, &batch));
    id = slabmq_batch_get(batch, 0)->id;
    T_OK(c, slabmq_term(c, &id, 1, NULL));
    slabmq_batch_free(batch);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/?queue=dash.work", b.http_port);
    dom = load(url, "dashboard-dead-letters.png");
    if (!strstr(dom, "<td>rejected</td><td>dash.work</td>") || !strstr(dom, "dashboard</pre>"))
        t_fail(__FILE__, __LINE__, "the page does not list the dead letter:\n%s", dom);
    free(dom);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

struct producer {
    const struct t_broker *b;
    volatile int stop;
    int sent;
};

static void *
produce(void *arg)
{
    struct producer *p = arg;
    slabmq_client *c = t_client(p->b);

    while (!p->stop) {
        publish_n(c, "dash.live", 1);
        p->sent++;
        t_sleep_ms(5);
    }
    slabmq_client_close(c);
    return NULL;
}

/* One page load while a producer publishes: the depth the page polled (its chart's
 * data-history, total ready per poll) must rise during the load, without a reload. */
static void
test_live_update_in_one_load(void)
{
    struct t_broker b;
    struct producer p = {0};
    pthread_t th;
    char url[128];
    char *dom;
    const char *h;
    long first;
    long last = -1;
    int polls = 0;

    need_chromium();
    t_broker_start(&b, "--http", "127.0.0.1:0", NULL);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/?interval=100", b.http_port);
    p.b = &b;
    T_EQ_INT(pthread_create(&th, NULL, produce, &p), 0);
    dom = load(url, "dashboard-live.png");
    p.stop = 1;
    pthread_join(th, NULL);
    h = strstr(dom, "data-history=\"");
    if (!h)
        t_fail(__FILE__, __LINE__, "no depth history in the page:\n%s", dom);
    h += strlen("data-history=\"");
    first = strtol(h, NULL, 10);
    for (char *e; *h && *h != '"'; h = *e == ',' ? e + 1 : e) {
        last = strtol(h, &e, 10);
        polls++;
        if (e == h)
            break;
    }
    printf("%d polls, depth %ld -> %ld, %d published\n", polls, first, last, p.sent);
    T_ASSERT(polls >= 2);
    T_ASSERT(last > first);
    free(dom);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_live_update_in_one_load),
    T_CASE(test_depth_follows_publishes),
    T_CASE(test_dead_letters_with_reasons),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
