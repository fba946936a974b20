/* SPDX-License-Identifier: MIT */
/* The dashboard at / in headless Chromium against a real broker: the page's script polls
 * /api/stats and fills the queue table, so the DOM Chromium dumps after running it must show
 * each queue's depth, and the new depth after more publishes; ?queue=NAME lists that queue's
 * dead letters with their reasons. Each load also takes a screenshot of the page it checks,
 * kept as an artifact in the build tree (SLABMQ_ARTIFACT_DIR/artifacts/dashboard*.png; each
 * case prints the paths). scripts/test.sh installs Chromium (scripts/deps.sh test); without
 * it every case prints SKIP and exits 77, which ctest reports as skipped. $SLABMQ_CHROMIUM
 * names another binary.
 *
 * Chromium runs as root in containers, so: --no-sandbox, --headless=new, --disable-gpu,
 * /tmp instead of /dev/shm, and a fresh --user-data-dir per load, removed afterwards. It
 * runs in a process group of its own, and whatever is left of that group when the browser
 * exits or times out (zygotes, the crash handler) is killed by the group's id: no process
 * outlives a load, and nothing is ever killed by name. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slabmq.h"
#include "t.h"

#define SKIP_CODE 77
#define CHROMIUM_MS 60000 /* one Chromium run; 1-5 s on an idle machine */
#define TRIES 2           /* a run that times out or crashes is tried once more */
#define ERR_TAIL 2000     /* bytes of Chromium's stderr shown on failure */

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
        printf("SKIP: chromium not found (scripts/deps.sh test installs it; or set "
               "SLABMQ_CHROMIUM)\n");
        fflush(stdout);
        exit(SKIP_CODE);
    }
    return c;
}

/* ---------------------------------------------------------------------------------------- */
/* Running Chromium                                                                          */

/* What one run produced. */
struct run {
    char *out;      /* stdout: the DOM; malloc'd, NUL-terminated */
    size_t out_len; /* bytes in out */
    char *err;      /* stderr; malloc'd, NUL-terminated */
    size_t err_len; /* bytes in err */
    int status;     /* exit code, 128 + signal, or -1: timed out */
    int64_t ms;     /* wall time of the run, ms */
};

static void
append(char **buf, size_t *len, const char *p, size_t n)
{
    char *nb = realloc(*buf, *len + n + 1);

    T_ASSERT(nb != NULL);
    memcpy(nb + *len, p, n);
    *len += n;
    nb[*len] = '\0';
    *buf = nb;
}

/* Read what is there on fds[0] (stdout) and fds[1] (stderr) into r, waiting up to ms;
 * a descriptor at EOF becomes -1. */
static void
drain(int fds[2], struct run *r, int ms)
{
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    char buf[65536];

    if (poll(p, 2, ms) <= 0)
        return;
    for (int i = 0; i < 2; i++) {
        ssize_t n;
        if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = read(fds[i], buf, sizeof(buf));
        if (n > 0 && i == 0)
            append(&r->out, &r->out_len, buf, (size_t)n);
        else if (n > 0)
            append(&r->err, &r->err_len, buf, (size_t)n);
        else if (n == 0 || errno != EINTR) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/* Start argv in a new process group with stdout and stderr on pipes. Returns its pid. */
static pid_t
spawn(char *const argv[], int fds[2])
{
    int o[2];
    int e[2];
    pid_t pid;

    T_ASSERT(pipe(o) == 0 && pipe(e) == 0);
    pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]);
        close(e[0]);
        close(o[1]);
        close(e[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so the group exists before the parent relies on it */
    close(o[1]);
    close(e[1]);
    fds[0] = o[0];
    fds[1] = e[0];
    return pid;
}

/* Run argv for at most ms. Once the browser has exited, or at the deadline, its process
 * group is killed by its id (before the browser is reaped, so that id cannot have been
 * reused): stragglers that still hold the pipes die with it. */
static void
run(char *const argv[], int ms, struct run *r)
{
    int64_t start = t_now_ms();
    int fds[2];
    pid_t pid = spawn(argv, fds);
    siginfo_t si;
    int status = 0;
    int exited = 0;

    memset(r, 0, sizeof(*r));
    append(&r->out, &r->out_len, "", 0);
    append(&r->err, &r->err_len, "", 0);
    while (!exited && t_now_ms() < start + ms) {
        drain(fds, r, 50);
        memset(&si, 0, sizeof(si));
        exited = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                 si.si_pid == pid;
    }
    kill(-pid, SIGKILL);
    for (int64_t end = t_now_ms() + 5000; (fds[0] >= 0 || fds[1] >= 0) && t_now_ms() < end;)
        drain(fds, r, 50); /* the rest of what the browser wrote before it exited */
    waitpid(pid, &status, 0);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    r->ms = t_now_ms() - start;
    if (!exited)
        r->status = -1;
    else
        r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The last ERR_TAIL bytes of s. */
static const char *
tail(const char *s, size_t len)
{
    return len > ERR_TAIL ? s + len - ERR_TAIL : s;
}

static void
remove_tree(const char *dir)
{
    t_remove_dir(dir);
}

/* A file that starts with the PNG signature. */
static int
is_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return 0;
    n = fread(head, 1, sizeof(head), f);
    fclose(f);
    return n == sizeof(head) && memcmp(head, sig, sizeof(sig)) == 0;
}

/* One headless run on url in a fresh profile: dump the DOM once the page's script has run
 * (virtual time: its timers and fetches, no real waiting) and screenshot the same page to
 * shot. Returns 0, or -1 if the run did not give both. */
static int
load_once(const char *url, const char *shot, struct run *r)
{
    char profile[] = "/tmp/slabmq-chromium.XXXXXX";
    char prof_arg[64];
    char shot_arg[PATH_MAX + 16];
    char *argv[] = {(char *)need_chromium(), "--headless=new", "--no-sandbox",
                    "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--no-default-browser-check", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    prof_arg, "--hide-scrollbars", "--window-size=1280,1000",
                    "--virtual-time-budget=3000", "--dump-dom", shot_arg, (char *)url, NULL};

    T_ASSERT(mkdtemp(profile) != NULL);
    snprintf(prof_arg, sizeof(prof_arg), "--user-data-dir=%s", profile);
    snprintf(shot_arg, sizeof(shot_arg), "--screenshot=%s", shot);
    unlink(shot);
    run(argv, CHROMIUM_MS, r);
    remove_tree(profile);
    return r->status == 0 && strstr(r->out, "</html>") && is_png(shot) ? 0 : -1;
}

/* Load url (see load_once), trying once more if Chromium times out, crashes or gives no
 * DOM or screenshot; fail the case if the second run does too. The screenshot goes to
 * SLABMQ_ARTIFACT_DIR/artifacts/name. Returns the DOM; free it. */
static char *
load(const char *url, const char *name)
{
    const char *dir = SLABMQ_ARTIFACT_DIR "/artifacts";
    char shot[PATH_MAX];
    struct run r;

    T_ASSERT(mkdir(dir, 0755) == 0 || errno == EEXIST);
    T_ASSERT((size_t)snprintf(shot, sizeof(shot), "%s/%s", dir, name) < sizeof(shot));
    for (int i = 1;; i++) {
        if (load_once(url, shot, &r) == 0)
            break;
        fprintf(stderr, "chromium run %d of %d on %s: %s after %lld ms, %zu bytes of DOM, "
                "%s; its stderr ends:\n%s\n", i, TRIES, url,
                r.status < 0 ? "timed out" : "exited", (long long)r.ms, r.out_len,
                is_png(shot) ? "screenshot taken" : "no screenshot", tail(r.err, r.err_len));
        if (i == TRIES && r.status < 0)
            t_fail(__FILE__, __LINE__, "chromium did not finish loading %s within %d ms, "
                   "%d times (killed)", url, CHROMIUM_MS, TRIES);
        if (i == TRIES)
            t_fail(__FILE__, __LINE__, "chromium gave no page and screenshot of %s in %d "
                   "runs (the last exited with status %d)", url, TRIES, r.status);
        free(r.out);
        free(r.err);
    }
    printf("artifact: %s (chromium %lld ms)\n", shot, (long long)r.ms);
    fflush(stdout);
    free(r.err);
    return r.out;
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
    dom = load(url, "dashboard.png");
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
