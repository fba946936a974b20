/* SPDX-License-Identifier: MIT */
/* `slabmq top`: a live view of the queues from STATS samples (cli_top.c). */
#ifndef SLABMQ_TOOLS_CLI_TOP_H
#define SLABMQ_TOOLS_CLI_TOP_H

struct cli;

/* Sample every queue's statistics each cli->interval_ms and print one frame per interval
 * with depth, in flight and rates per second from the last two samples: redrawn in place
 * (ANSI) on a terminal, appended as plain text (or one JSON object a line with --json)
 * otherwise. Stops after cli->count frames (0: never). */
int cli_top_show(struct cli *cli);

#endif /* SLABMQ_TOOLS_CLI_TOP_H */
