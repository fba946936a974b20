/* SPDX-License-Identifier: MIT */
/* slabmqd: flags -> server_run(), with SIGHUP's reload (reload.c) as the server's hook. */
#include "config.h"
#include "net/server.h"
#include "reload.h"

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
    cfg.reload = reload_server; /* after config_parse, which starts from the defaults */
    return server_run(&cfg);
}
