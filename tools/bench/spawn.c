/* SPDX-License-Identifier: MIT */
/* Benchmark brokers; see spawn.h. */
#include "spawn.h"

#include <errno.h>
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

/* The port at the end of the broker's "listening on HOST:PORT" line, or -1. */
static int
parse_port(const char *line)
{
    const char *colon = strrchr(line, ':');
    char *end;
    long port;

    if (!colon)
        return -1;
    port = strtol(colon + 1, &end, 10);
    return end == colon + 1 || *end || port < 1 || port > 65535 ? -1 : (int)port;
}

/* Read the child's stdout until the port appears or 10 s pass; the port or -1. */
static int
read_port(int fd)
{
    char buf[512];
    size_t len = 0;
    long long deadline = now_ms() + 10000;

    while (now_ms() < deadline && len < sizeof(buf) - 1) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r;
        char *at;
        if (poll(&p, 1, 100) <= 0)
            continue;
        r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        at = strstr(buf, "listening on ");
        if (at && strchr(at, '\n')) {
            *strchr(at, '\n') = '\0';
            return parse_port(at);
        }
    }
    return -1;
}

int
spawn_start(struct spawn *bb, const char *path, const char *preload, char *const *args)
{
    char *argv[SPAWN_MAX_ARGS + 8] = {(char *)"slabmqd", (char *)"--bind", (char *)"127.0.0.1",
                                      (char *)"--port", (char *)"0", (char *)"--log-level",
                                      (char *)"warn"};
    int n = 7;
    int out[2];

    bb->out = -1;
    for (int i = 0; args && args[i] && n < SPAWN_MAX_ARGS + 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (pipe(out))
        return -1;
    bb->pid = fork();
    if (bb->pid < 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (bb->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed benchmark */
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        execv(path, argv);
        fprintf(stderr, "cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    bb->out = out[0];
    bb->port = read_port(out[0]);
    if (bb->port <= 0) {
        spawn_stop(bb);
        return -1;
    }
    return 0;
}

int
spawn_stop(struct spawn *bb)
{
    int status = 0;
    pid_t r = 0;

    if (bb->pid <= 0)
        return -1;
    kill(bb->pid, SIGTERM);
    for (int i = 0; i < 1000 && (r = waitpid(bb->pid, &status, WNOHANG)) == 0; i++)
        usleep(10000);
    if (r == 0) {
        kill(bb->pid, SIGKILL);
        r = waitpid(bb->pid, &status, 0);
    }
    bb->pid = 0;
    if (bb->out >= 0)
        close(bb->out);
    bb->out = -1;
    if (r < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

long
spawn_rss_kb(pid_t pid)
{
    char path[64];
    char line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end;
            long v = strtol(line + 6, &end, 10);
            kb = end == line + 6 || v < 0 ? -1 : v;
            break;
        }
    }
    (void)fclose(f); /* read only: nothing to lose */
    return kb;
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
