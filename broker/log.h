/* SPDX-License-Identifier: MIT */
/* Logging: one line per event on stderr, "ts=... level=... msg=..." (logfmt), with the
 * source location for warnings and errors. Never per message. */
#ifndef SLABMQ_BROKER_LOG_H
#define SLABMQ_BROKER_LOG_H

enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR
};

/* Lowest level written; set once at start-up from --log-level. */
extern enum log_level log_threshold;

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

#endif /* SLABMQ_BROKER_LOG_H */
