/* SPDX-License-Identifier: MIT */
/* Logging: one line per event on stderr, either logfmt ("ts=... level=... msg=...") or one
 * JSON object per line (--log-format json), with the source location for warnings and
 * errors. Never per message. */
#ifndef SLABMQ_BROKER_UTIL_LOG_H
#define SLABMQ_BROKER_UTIL_LOG_H

enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR
};

enum log_format {
    LOG_FORMAT_LOGFMT,
    LOG_FORMAT_JSON
};

/* Lowest level written and the line format; set at start-up and on SIGHUP (reload.c). */
extern enum log_level log_threshold;
extern enum log_format log_format;

/* Names as --log-level and --log-format take them, indexed by the enums. */
extern const char *const log_level_names[LOG_ERROR + 1];
extern const char *const log_format_names[2];

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

#endif /* SLABMQ_BROKER_UTIL_LOG_H */
