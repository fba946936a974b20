/* SPDX-License-Identifier: MIT */
/* libuv inside libevent; see uvev.h. */
#include "cluster/uvev.h"

#include <event2/event.h>
#include <stdlib.h>

struct uvev {
    uv_loop_t *loop;
    struct event *io;    /* uv_backend_fd() readable */
    struct event *timer; /* uv_backend_timeout() */
};

/* Set the timer to libuv's next deadline (none: -1). A loop with nothing left to run (every
 * handle closed) says 0, which would spin: no timer then. */
static void
arm(struct uvev *e)
{
    int t = uv_loop_alive(e->loop) ? uv_backend_timeout(e->loop) : -1;

    if (t >= 0) {
        struct timeval tv = {t / 1000, (t % 1000) * 1000};
        evtimer_add(e->timer, &tv);
    } else {
        evtimer_del(e->timer);
    }
}

static void
on_uv(evutil_socket_t fd, short what, void *arg)
{
    struct uvev *e = arg;

    (void)fd;
    (void)what;
    uv_run(e->loop, UV_RUN_NOWAIT);
    arm(e);
}

struct uvev *
uvev_new(struct event_base *base, uv_loop_t *loop)
{
    struct uvev *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->loop = loop;
    e->io = event_new(base, uv_backend_fd(loop), EV_READ | EV_PERSIST, on_uv, e);
    e->timer = evtimer_new(base, on_uv, e);
    if (!e->io || !e->timer || event_add(e->io, NULL) != 0) {
        uvev_free(e);
        return NULL;
    }
    uvev_kick(e);
    return e;
}

void
uvev_kick(struct uvev *e)
{
    arm(e);
}

void
uvev_free(struct uvev *e)
{
    if (!e)
        return;
    if (e->io)
        event_free(e->io);
    if (e->timer)
        event_free(e->timer);
    free(e);
}
