/* SPDX-License-Identifier: MIT */
/* SIGHUP: re-read the configuration (the --config file and the original flags), check all of
 * it, then apply the settings that can change while running and name those that need a
 * restart. A file with a mistake changes nothing. */
#ifndef SLABMQ_BROKER_RELOAD_H
#define SLABMQ_BROKER_RELOAD_H

struct server;

/* Re-read and apply: the server's SIGHUP hook (server_config.reload, set by main.c). */
void reload_server(struct server *s);

#endif /* SLABMQ_BROKER_RELOAD_H */
