/* SPDX-License-Identifier: MIT */
/* A slabmqd of our own, for the benchmarks and for the test harness (tests/harness/t.c),
 * which link it as the static library slabmq_spawn: started with its port read from its
 * "listening on ADDR:PORT" line (and the "http on" / "tls on" lines before it), stopped by
 * PID (SIGTERM, bounded wait, SIGKILL), its memory read from /proc. One copy, so a change
 * in how slabmqd announces itself is fixed once. */
#ifndef SLABMQ_TOOLS_SPAWN_H
#define SLABMQ_TOOLS_SPAWN_H

#include <sys/types.h>

struct spawn {
    pid_t pid;
    int port;
    int out; /* its stdout, kept open until it stops (-1: closed) */
};

/* The other ports slabmqd announced before "listening on"; 0 when it did not. */
struct spawn_ports {
    int http; /* "http on ADDR:PORT" (--http) */
    int tls;  /* "tls on ADDR:PORT" (--tls-port) */
};

/* Run argv (NULL-terminated; argv[0] the program: slabmqd, or valgrind running it) with its
 * stdout on a pipe, its stderr into err_path when not NULL, LD_PRELOAD set to preload when
 * not NULL, and the parent's death sending it SIGTERM. Wait up to timeout_ms for its
 * "listening on" line. 0 with s->port (and *ports when not NULL) set; -1 when it did not
 * come up, after stopping it (s->pid is then 0). */
int spawn_exec(struct spawn *s, char *const *argv, const char *preload, const char *err_path,
               int timeout_ms, struct spawn_ports *ports);
/* Start the slabmqd at path on 127.0.0.1, port 0, log level warn, plus args (NULL-terminated,
 * may be NULL), with LD_PRELOAD set to preload when not NULL. 0 once it printed its port
 * (within 10 s), else -1. */
int spawn_start(struct spawn *s, const char *path, const char *preload, char *const *args);
/* SIGTERM, up to timeout_ms, then SIGKILL (and *killed set to 1, when killed is not NULL).
 * Returns its exit status as a shell would (128 + signal when killed), -1 if it could not be
 * reaped. */
int spawn_stop_within(struct spawn *s, int timeout_ms, int *killed);
/* spawn_stop_within() 10 s. */
int spawn_stop(struct spawn *s);
/* The slabmqd of the same build: ../broker/slabmqd next to the running tool. */
const char *spawn_default_broker(void);
/* Any "Field: N kB" line of /proc/PID/status, in KiB: "VmRSS" (resident set), "VmHWM" (its
 * peak). -1 if there is no such line, -2 if the file cannot be read (no such process). */
long spawn_status_kb(pid_t pid, const char *field);
/* Resident set of a process, KiB; -1 if unreadable. */
long spawn_rss_kb(pid_t pid);

#endif /* SLABMQ_TOOLS_SPAWN_H */
