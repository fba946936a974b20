/* SPDX-License-Identifier: MIT */
/* The commands of the slabmq CLI. Each runs against a connected client with arguments
 * already checked by main.c (count, queue name, option ranges), prints its result on
 * stdout and returns an exit code from enum cli_exit. */
#ifndef SLABMQ_TOOLS_CLI_CMD_H
#define SLABMQ_TOOLS_CLI_CMD_H

#include <stddef.h>
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
    int waits;                  /* --wait was given */
    slabmq_queue_options queue; /* declare's --visibility (ms), --max-messages, --max-bytes
                                   (bytes), --overflow, --backoff, --max-deliveries,
                                   --dead-letter, --ttl, --dedup-window; 0 when not given */
    slabmq_publish_options pub; /* publish's --delay, --at, --ttl, --priority, --id */
    uint64_t skip;              /* peek's and dlq's --skip */
    uint32_t credit;            /* subscribe's --credit; 0 when not given */
    uint32_t interval_ms;       /* top's --interval, ms */
    unsigned ack_flags;         /* consume's and subscribe's --confirmed-ack */
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

/* After messages were printed: flush stdout, then ack the n ids, so a message is never
 * acked before it left this process. Returns an exit code, after reporting a failure. */
int cli_cmd_ack_printed(struct cli *cli, const uint64_t *ids, size_t n);

/* The work-queue commands, in cli_work.c. */
int cli_work_dlq(struct cli *cli);
int cli_work_move(struct cli *cli);
int cli_work_subscribe(struct cli *cli);
int cli_work_why(struct cli *cli);

#endif /* SLABMQ_TOOLS_CLI_CMD_H */
