/* SPDX-License-Identifier: MIT */
/* Command-line flags -> struct server_config. */
#ifndef SLABMQ_BROKER_CONFIG_H
#define SLABMQ_BROKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct server_config;

enum config_result {
    CONFIG_RUN,   /* start the broker */
    CONFIG_EXIT,  /* --help or --version printed: exit 0 */
    CONFIG_ERROR  /* a bad flag: message printed, exit 2 */
};

enum config_result config_parse(struct server_config *c, int argc, char **argv);

/* Parse "256MiB", "1GiB", "64k", "1000000" into bytes. K/M/G and KiB/MiB/GiB are powers of
 * 1024; KB/MB/GB powers of 1000. Returns 0, or -1 on a malformed or overflowing size. */
int config_parse_size(const char *s, uint64_t *out);

#endif /* SLABMQ_BROKER_CONFIG_H */
