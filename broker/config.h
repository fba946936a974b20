/* SPDX-License-Identifier: MIT */
/* Command-line flags and the --config file -> struct server_config. The file is read
 * first, then the flags override it; both are checked completely before anything runs. */
#ifndef SLABMQ_BROKER_CONFIG_H
#define SLABMQ_BROKER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct server_config;

enum config_result {
    CONFIG_RUN,   /* start the broker */
    CONFIG_EXIT,  /* --help or --version printed: exit 0 */
    CONFIG_ERROR,  /* a bad flag or setting: message printed, exit 2 */
    CONFIG_INVALID /* --check-config found a mistake: verdict printed, exit 1 */
};

/* Fill c (already holding the defaults) from argv and the file it names. Keeps argv in c
 * (for config_reload); c->auth_file may point into argv or into c itself. */
enum config_result config_parse(struct server_config *c, int argc, char **argv);


#endif /* SLABMQ_BROKER_CONFIG_H */
