/* SPDX-License-Identifier: MIT */
/* The commands of the slabmq CLI. Each runs against a connected client with arguments
 * already checked by slabmq.c (count, queue name, option ranges), prints its result on
 * stdout and returns an exit code from enum cli_exit. */
#ifndef SLABMQ_TOOLS_CLI_CMD_H
#define SLABMQ_TOOLS_CLI_CMD_H

#include <stdint.h>

#include "slabmq.h"

/* Most messages one consume fetches, and one publish batch carries, per request. */
#define CLI_BATCH_MAX 1000
/* Payload bytes one publish batch carries at most (less if the broker's frames are smaller). */
#define CLI_BATCH_BYTES ((size_t)512 << 10)

/* One invocation, as the commands see it. */
struct cli {
    slabmq_client *c;           /* connected client, borrowed */
    const char *server;         /* "HOST:PORT" as connected to, for messages */
    char **args;                /* positional arguments after the command name */
    int nargs;
    int json;                   /* --json */
    uint32_t count;             /* -n; 0 when not given */
    uint32_t wait_ms;           /* --wait, ms */
    slabmq_queue_options queue; /* declare's --visibility (ms), --max-messages, --max-bytes
                                   (bytes), --overflow; 0 when not given */
};

int cli_cmd_queues(struct cli *cli);
int cli_cmd_stats(struct cli *cli);
int cli_cmd_publish(struct cli *cli);
int cli_cmd_consume(struct cli *cli);
int cli_cmd_peek(struct cli *cli);
int cli_cmd_purge(struct cli *cli);
int cli_cmd_pause(struct cli *cli);
int cli_cmd_resume(struct cli *cli);
int cli_cmd_delete(struct cli *cli);
int cli_cmd_declare(struct cli *cli);
int cli_cmd_ping(struct cli *cli);

#endif /* SLABMQ_TOOLS_CLI_CMD_H */
