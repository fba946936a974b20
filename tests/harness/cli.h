/* SPDX-License-Identifier: MIT */
/* The slabmq CLI run as a program by the CLI tests (test_cli.c, test_cli_semantics.c): one
 * run's exit status and output, exact-output checks, and statistics read back through
 * libslabmq, independently of the CLI. */
#ifndef SLABMQ_TESTS_CLI_H
#define SLABMQ_TESTS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "t.h"

/* How long one CLI run may take, ms. */
#define RUN_MS 30000

/* What one CLI run left behind. */
struct cli_run {
    int rc;         /* exit status, -1 if it was killed */
    char *out;      /* stdout, NUL-terminated */
    size_t out_len; /* stdout bytes (payloads may hold NULs) */
    char *err;      /* stderr, NUL-terminated */
};

/* Run the CLI with args (NULL-terminated), after "-s 127.0.0.1:port" unless port is 0,
 * feeding it in[0..in_len) (in may be NULL). Free the result with cli_run_free(). */
struct cli_run cli_run_argv(int port, const char *in, size_t in_len, const char *const *args);

#define RUN(port, ...) cli_run_argv((port), NULL, 0, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_IN(port, in, ...)                                                                   \
    cli_run_argv((port), (in), strlen(in), (const char *const[]){__VA_ARGS__, NULL})

void cli_run_free(struct cli_run *r);

/* Assert a run's exit status and exact stdout, then free it. */
void cli_expect(struct cli_run r, int rc, const char *out);

/* Assert a failed run: its status, empty stdout, and exactly the one-line error err. */
void cli_expect_error(struct cli_run r, int rc, const char *err);

/* An integer statistic read through the library: of queue, or of the broker when queue is
 * NULL. Fails the test if it is absent. */
uint64_t cli_stat(const struct t_broker *b, const char *queue, const char *name);

#endif /* SLABMQ_TESTS_CLI_H */
