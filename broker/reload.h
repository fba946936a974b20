/* SPDX-License-Identifier: MIT */
/* SIGHUP: re-read the configuration (the --config file and the original flags), check all of
 * it, then apply the settings that can change while running and name those that need a
 * restart. A file with a mistake changes nothing. */
#ifndef SLABMQ_BROKER_RELOAD_H
#define SLABMQ_BROKER_RELOAD_H

/* libevent signal callback; arg is the struct server. */
void reload_signal_cb(int sig, short what, void *arg);

#endif /* SLABMQ_BROKER_RELOAD_H */
