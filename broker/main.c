/* SPDX-License-Identifier: MIT */
/* slabmqd: flags -> server_run(). */
#include "config.h"
#include "net/server.h"

int
main(int argc, char **argv)
{
    struct server_config cfg;

    server_config_defaults(&cfg);
    switch (config_parse(&cfg, argc, argv)) {
    case CONFIG_EXIT:
        return 0;
    case CONFIG_ERROR:
        return 2;
    case CONFIG_INVALID:
        return 1;
    case CONFIG_RUN:
        break;
    }
    return server_run(&cfg);
}
