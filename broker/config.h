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


#endif /* SLABMQ_BROKER_CONFIG_H */
