/* SPDX-License-Identifier: MIT */
/* A slabmqd of a benchmark's own: started on 127.0.0.1 with port 0, its port read from its
 * "listening on ADDR:PORT" line, stopped by PID (SIGTERM, bounded wait, SIGKILL), its
 * resident set read from /proc. Shared by slabmq-bench and slabmq-membench. */
#ifndef SLABMQ_TOOLS_SPAWN_H
#define SLABMQ_TOOLS_SPAWN_H

#include <sys/types.h>

struct spawn {
    pid_t pid;
    int port;
    int out; /* its stdout, kept open until it stops */
};

/* Start the slabmqd at path with args (NULL-terminated, may be NULL), with LD_PRELOAD set to
 * preload when not NULL. 0 once it printed its port (within 10 s), else -1. */
int spawn_start(struct spawn *s, const char *path, const char *preload, char *const *args);
/* SIGTERM, up to 10 s, then SIGKILL. Returns its exit status as a shell would (128 + signal
 * when killed), -1 if it could not be reaped. */
int spawn_stop(struct spawn *s);
/* The slabmqd of the same build: ../broker/slabmqd next to the running tool. */
const char *spawn_default_broker(void);
/* Resident set of a process, KiB; -1 if unreadable. */
long spawn_rss_kb(pid_t pid);

#endif /* SLABMQ_TOOLS_SPAWN_H */
