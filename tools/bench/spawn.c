/* SPDX-License-Identifier: MIT */
/* Brokers of benchmarks and tests; see spawn.h. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPAWN_MAX_ARGS 64

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The port of the broker's "listening on HOST:PORT[ (note)]" line, or -1. */
static int
parse_port(const char *line)
{
    const char *colon = strrchr(line, ':');
    char *end;
    long port;

    if (!colon)
        return -1;
    port = strtol(colon + 1, &end, 10);
    /* "listening on ADDR:PORT (TLS only)" with --port off */
    return end == colon + 1 || (*end && *end != ' ') || port < 1 || port > 65535 ? -1
                                                                                : (int)port;
}

/* The port of the "WHAT on ADDR:PORT" line that starts in buf before end, or 0. */
static int
port_before(char *buf, const char *end, const char *what)
{
    char *at = strstr(buf, what);
    char *nl = at ? strchr(at, '\n') : NULL;
    int port;

    if (!at || at >= end || !nl)
        return 0;
    *nl = '\0';
    port = parse_port(at);
    *nl = '\n';
    return port < 0 ? 0 : port;
}

/* Read the child's stdout until the port appears or timeout_ms pass; the port or -1. The
 * "http on" and "tls on" lines come before it (slabmqd opens those listeners first). */
static int
read_port(int fd, int timeout_ms, struct spawn_ports *ports)
{
    char buf[1024];
    size_t len = 0;
    long long deadline = now_ms() + timeout_ms;

    while (now_ms() < deadline && len < sizeof(buf) - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r;
        char *at;
        char *nl;
        if (poll(&p, 1, 100) <= 0)
            continue;
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        at = strstr(buf, "listening on ");
        nl = at ? strchr(at, '\n') : NULL;
        if (nl) {
            if (ports) {
                ports->http = port_before(buf, at, "http on ");
                ports->tls = port_before(buf, at, "tls on ");
            }
            *nl = '\0';
            return parse_port(at);
        }
    }
    return -1;
}

int
spawn_exec(struct spawn *bb, char *const *argv, const char *preload, const char *err_path,
           int timeout_ms, struct spawn_ports *ports)
{
    int out[2];

    bb->out = -1;
    bb->port = 0;
    if (ports)
        ports->http = ports->tls = 0;
    if (pipe(out))
        return -1;
    bb->pid = fork();
    if (bb->pid < 0) {
        close(out[0]);
        close(out[1]);
        bb->pid = 0;
        return -1;
    }
    if (bb->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed benchmark or test */
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (err_path) {
            int errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (errfd >= 0) {
                dup2(errfd, 2);
                close(errfd);
            }
        }
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    bb->out = out[0];
    bb->port = read_port(out[0], timeout_ms, ports);
    if (bb->port <= 0) {
        spawn_stop_within(bb, 1000, NULL);
        return -1;
    }
    return 0;
}

int
spawn_start(struct spawn *bb, const char *path, const char *preload, char *const *args)
{
    char *argv[SPAWN_MAX_ARGS + 8] = {(char *)path, (char *)"--bind", (char *)"127.0.0.1",
                                      (char *)"--port", (char *)"0", (char *)"--log-level",
                                      (char *)"warn"};
    int n = 7;

    for (int i = 0; args && args[i] && n < SPAWN_MAX_ARGS + 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return spawn_exec(bb, argv, preload, NULL, 10000, NULL);
}

int
spawn_stop_within(struct spawn *bb, int timeout_ms, int *killed)
{
    long long deadline = now_ms() + timeout_ms;
    int status = 0;
    pid_t r = 0;

    if (killed)
        *killed = 0;
    if (bb->pid <= 0)
        return -1;
    kill(bb->pid, SIGTERM);
    while ((r = waitpid(bb->pid, &status, WNOHANG)) == 0 && now_ms() < deadline)
        usleep(10000);
    if (r == 0) {
        kill(bb->pid, SIGKILL);
        r = waitpid(bb->pid, &status, 0);
        if (killed)
            *killed = 1;
    }
    bb->pid = 0;
    if (bb->out >= 0)
        close(bb->out);
    bb->out = -1;
    if (r < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
spawn_stop(struct spawn *bb)
{
    return spawn_stop_within(bb, 10000, NULL);
}

long
spawn_status_kb(pid_t pid, const char *field)
{
    char path[64];
    char line[256];
    size_t n = strlen(field);
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -2;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            char *end;
            long v = strtol(line + n + 1, &end, 10);
            kb = end == line + n + 1 || v < 0 ? -1 : v;
            break;
        }
    }
    (void)fclose(f); /* read only: nothing to lose */
    return kb;
}

long
spawn_rss_kb(pid_t pid)
{
    long kb = spawn_status_kb(pid, "VmRSS");

    return kb < 0 ? -1 : kb;
}

const char *
spawn_default_broker(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    char *slash;

    path[n > 0 ? n : 0] = '\0';
    slash = strrchr(path, '/');
    if (slash) /* fits: 32 bytes were kept free, the name and its NUL take 19 */
        memcpy(slash, "/../broker/slabmqd", sizeof("/../broker/slabmqd"));
    return path;
}
