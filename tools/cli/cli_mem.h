/* SPDX-License-Identifier: MIT */
/* `slabmq memory`: the broker's memory statistics as a summary and a table of slab
 * classes, or as one JSON object. */
#ifndef SLABMQ_TOOLS_CLI_MEM_H
#define SLABMQ_TOOLS_CLI_MEM_H

#include "cli_cmd.h"

/* Fetch the broker's STATS and print the memory view of them on stdout. Returns an exit
 * code from enum cli_exit. */
int cli_mem_show(struct cli *cli);

#endif /* SLABMQ_TOOLS_CLI_MEM_H */
