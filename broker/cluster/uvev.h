/* SPDX-License-Identifier: MIT */
/* libraft's libuv loop run inside slabmqd's libevent loop, on the same thread: libuv's own
 * embedding technique (its test-embed): libevent watches uv_backend_fd() (libuv's epoll fd,
 * readable when any of its handles has an event) and a timer set from uv_backend_timeout()
 * (libuv's next timer, 0 when callbacks are pending); either runs uv_run(UV_RUN_NOWAIT),
 * which does what is due without blocking, and then the timer is set again.
 *
 * Why embedded and not a thread of its own: libraft calls the state machine's apply from its
 * loop, and the queues it changes live on the broker's thread; embedded, no hand-off and no
 * lock stand between a commit and a delivery (slabmq-raftbench measured the two,
 * docs/cluster.md). The cost: libraft's work (checksums, encoding, TCP to the followers)
 * is done on the broker's thread; its disk writes are not (raft_uv writes from libuv's
 * thread pool or with kernel AIO).
 *
 * Code that calls into libuv from outside its callbacks (raft_apply() from a request
 * handler) may leave callbacks pending that no fd event would run: it calls uvev_kick(),
 * which sets the timer again (to 0 if anything is pending). */
#ifndef SLABMQ_BROKER_CLUSTER_UVEV_H
#define SLABMQ_BROKER_CLUSTER_UVEV_H

#include <uv.h>

struct event_base;
struct uvev;

/* Run loop inside base. NULL when out of memory. */
struct uvev *uvev_new(struct event_base *base, uv_loop_t *loop);

/* After calling into libuv from outside its callbacks: have what became due run. */
void uvev_kick(struct uvev *e);

/* Stop driving the loop (its handles are the caller's to close, by running it). */
void uvev_free(struct uvev *e);

#endif /* SLABMQ_BROKER_CLUSTER_UVEV_H */
