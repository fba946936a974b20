/* SPDX-License-Identifier: MIT */
/* The CLI test helpers; see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slabmq.h"

struct cli_run
cli_run_argv(int port, const char *in, size_t in_len, const char *const *args)
{
    char *argv[64];
    char addr[32];
    int n = 0;
    struct cli_run r;

    argv[n++] = SLABMQ_CLI_PATH;
    if (port) {
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
        argv[n++] = "-s";
        argv[n++] = addr;
    }
    for (; *args && n < 63; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    r.rc = t_run(argv, in, in_len, &r.out, &r.out_len, &r.err, RUN_MS);
    T_ASSERT(r.rc >= 0);
    return r;
}

void
cli_run_free(struct cli_run *r)
{
    free(r->out);
    free(r->err);
}

void
cli_expect(struct cli_run r, int rc, const char *out)
{
    if (r.rc != rc || strcmp(r.out, out) != 0)
        fprintf(stderr, "stdout: %s\nstderr: %s\n", r.out, r.err);
    T_EQ_INT(r.rc, rc);
    T_EQ_STR(r.out, out);
    cli_run_free(&r);
}

void
cli_expect_error(struct cli_run r, int rc, const char *err)
{
    T_EQ_INT(r.rc, rc);
    T_EQ_STR(r.out, "");
    T_EQ_STR(r.err, err);
    cli_run_free(&r);
}

uint64_t
cli_stat(const struct t_broker *b, const char *queue, const char *name)
{
    slabmq_client *c = t_client(b);
    slabmq_stats *s;
    uint64_t v = UINT64_MAX;

    T_OK(c, slabmq_stats_get(c, queue, &s));
    if (!slabmq_stats_find(s, name, &v))
        t_fail(__FILE__, __LINE__, "no statistic %s of %s", name, queue ? queue : "the broker");
    slabmq_stats_free(s);
    slabmq_client_close(c);
    return v;
}
