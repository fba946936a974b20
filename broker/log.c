/* SPDX-License-Identifier: MIT */
/* logfmt lines on stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
    char ts[32];
    char msg[512];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (lvl < log_threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    if (lvl >= LOG_WARN)
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=\"%s\" at=%s:%d\n", ts, now.tv_nsec / 1000000,
                level_names[lvl], msg, file, line);
    else
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=\"%s\"\n", ts, now.tv_nsec / 1000000,
                level_names[lvl], msg);
}
