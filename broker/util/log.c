/* SPDX-License-Identifier: MIT */
/* logfmt or JSON lines on stderr; see log.h. One fprintf per line, so a line is never split
 * by another writer of the same stream. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum log_level log_threshold = LOG_INFO;
enum log_format log_format = LOG_FORMAT_LOGFMT;

const char *const log_level_names[LOG_ERROR + 1] = {"debug", "info", "warn", "error"};
const char *const log_format_names[2] = {"logfmt", "json"};

/* logfmt: double quotes and newlines become single quotes (the message is one quoted
 * value). */
static void
escape_logfmt(char *msg)
{
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
}

/* JSON string body of msg into out (cap bytes, always terminated): quotes, backslashes and
 * control characters escaped; a character that would not fit is dropped with the rest. */
static void
escape_json(const char *msg, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            out[n++] = '\\';
            out[n++] = 'u';
            out[n++] = '0';
            out[n++] = '0';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
}

static void
write_json(const char *ts, long ms, enum log_level lvl, const char *msg, const char *file,
           int line)
{
    char esc[1024];

    escape_json(msg, esc, sizeof(esc));
    /* lvl is an enum log_level, LOG_DEBUG..LOG_ERROR: cppcheck cannot know the range */
    if (lvl >= LOG_WARN)
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\",\"at\":\"%s:%d\"}\n",
                // cppcheck-suppress arrayIndexOutOfBoundsCond
                ts, ms, log_level_names[lvl], esc, file, line);
    else
        fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts, ms,
                log_level_names[lvl], esc);
}

void
log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
    char ts[32];
    char msg[512];
    struct timespec now;
    struct tm tm;
    va_list ap;
    long ms;

    if (lvl < log_threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        ts[0] = '\0'; /* the contents are indeterminate then; cannot happen in 32 bytes */
    ms = now.tv_nsec / 1000000;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_format == LOG_FORMAT_JSON) {
        write_json(ts, ms, lvl, msg, file, line);
        return;
    }
    escape_logfmt(msg);
    if (lvl >= LOG_WARN)
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=\"%s\" at=%s:%d\n", ts, ms,
                // cppcheck-suppress arrayIndexOutOfBoundsCond
                log_level_names[lvl], msg, file, line);
    else
        fprintf(stderr, "ts=%s.%03ldZ level=%s msg=\"%s\"\n", ts, ms, log_level_names[lvl], msg);
}
