/* SPDX-License-Identifier: MIT */
/* Password checks off the loop; see verify.h. */
#include "auth/verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "util/log.h"
#include "auth/throttle.h"

#define WORKER_NICE 10 /* the loop's latency matters more than a password check's */

/* Where a slot is (loop's view): which list holds it, who may touch which fields. */
enum slot_state {
    SLOT_FREE,    /* on v->free */
    SLOT_WAITING, /* its timer runs out the throttle's wait */
    SLOT_QUEUED   /* on the FIFO, on a thread, or on the done list: input and output fields
                     are the thread's until the loop takes it off the done list */
};

struct verify_slot {
    /* loop only */
    struct verify *v;
    struct verify_slot *next;        /* on free, the FIFO or the done list */
    enum slot_state state;
    struct event timer;              /* the throttle's wait */
    void (*cb)(void *owner, const struct auth_user *user, const char *name);
    void *owner;                     /* NULL once cancelled */
    struct throttle_keys keys;
    char name[AUTH_NAME_MAX + 1];    /* as asked for, for the owner's log; "" if malformed */
    /* input: written by the loop before the FIFO, read by the thread */
    const struct auth_user *user;    /* NULL: an unknown name */
    uint32_t pwlen;
    uint8_t pw[AUTH_PASSWORD_MAX];   /* cleansed when the slot is freed */
    int cancelled;                   /* under lock: the owner left; the thread skips it */
    /* output: written by the thread, read by the loop after the done list */
    int ok;                          /* 1 right, 0 wrong, -1 skipped (cancelled) */
    uint8_t digest[AUTH_DIGEST_LEN];
};

struct verify {
    struct auth *auth;               /* borrowed */
    struct event_base *base;
    struct throttle *throttle;       /* owned */
    struct verify_slot *slots;       /* owned, VERIFY_SLOTS of them */
    struct verify_slot *free;        /* loop only */
    struct event *done_ev;           /* efd readable */
    int efd;                         /* eventfd: a thread finished a check */
    pthread_t threads[VERIFY_WORKERS];
    uint32_t nthreads;               /* started */
    struct verify_stats stats;       /* loop only */
    /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t work;             /* the FIFO is not empty, or stop */
    struct verify_slot *fifo_head;
    struct verify_slot **fifo_tail;
    struct verify_slot *done;        /* LIFO; the loop takes it whole */
    uint64_t checks;                 /* full checks run */
    int stop;
};

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------------------------------------------------------------------------------------- */
/* The threads                                                                               */

static void *
worker_main(void *arg)
{
    struct verify *v = arg;
    uint64_t one = 1;

    /* Linux nices threads one by one; elsewhere this fails and the thread keeps the loop's
     * priority */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
    pthread_mutex_lock(&v->lock);
    for (;;) {
        struct verify_slot *sl;
        while (!v->fifo_head && !v->stop)
            pthread_cond_wait(&v->work, &v->lock);
        if (v->stop)
            break;
        sl = v->fifo_head;
        v->fifo_head = sl->next;
        if (!v->fifo_head)
            v->fifo_tail = &v->fifo_head;
        if (sl->cancelled) { /* nobody waits for it: spend no hash on it */
            sl->ok = -1;
        } else {
            pthread_mutex_unlock(&v->lock);
            sl->ok = auth_check(v->auth, sl->user, sl->pw, sl->pwlen, sl->digest);
            pthread_mutex_lock(&v->lock);
        }
        sl->next = v->done;
        v->done = sl;
        v->checks++;
        if (write(v->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_error("verify: cannot notify the event loop: %s", strerror(errno));
    }
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

static void
submit(struct verify *v, struct verify_slot *sl)
{
    sl->state = SLOT_QUEUED;
    sl->next = NULL;
    pthread_mutex_lock(&v->lock);
    *v->fifo_tail = sl;
    v->fifo_tail = &sl->next;
    pthread_cond_signal(&v->work);
    pthread_mutex_unlock(&v->lock);
}

/* ---------------------------------------------------------------------------------------- */
/* The loop's side                                                                           */

static void
slot_put(struct verify *v, struct verify_slot *sl)
{
    OPENSSL_cleanse(sl->pw, sizeof(sl->pw));
    OPENSSL_cleanse(sl->digest, sizeof(sl->digest));
    sl->owner = NULL;
    sl->cb = NULL;
    sl->cancelled = 0; /* no thread holds it: the lock is not needed */
    sl->state = SLOT_FREE;
    sl->next = v->free;
    v->free = sl;
    v->stats.pending--;
}

/* The throttle's wait is over. */
static void
verify_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct verify_slot *sl = arg;

    (void)fd;
    (void)what;
    submit(sl->v, sl);
}

/* Threads finished checks: record each, call its owner back, free its slot. */
static void
verify_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct verify *v = arg;
    struct verify_slot *sl;
    uint64_t n;

    (void)what;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_error("verify: cannot read the notification: %s", strerror(errno));
    pthread_mutex_lock(&v->lock);
    sl = v->done;
    v->done = NULL;
    v->stats.checks = v->checks;
    pthread_mutex_unlock(&v->lock);
    while (sl) {
        struct verify_slot *next = sl->next;
        const struct auth_user *u = sl->ok > 0 ? sl->user : NULL;
        if (sl->ok >= 0) /* a skipped check tested nothing */
            throttle_result(v->throttle, sl->keys, sl->ok, mono_ms());
        if (u)
            auth_remember(v->auth, u, sl->digest);
        if (sl->owner)
            sl->cb(sl->owner, u, sl->name);
        slot_put(v, sl);
        sl = next;
    }
}

enum verify_result
verify_start(struct verify *v, const char *addr, const char *name, size_t nlen,
             const uint8_t *pw, size_t pwlen, const struct auth_user **user,
             void (*cb)(void *owner, const struct auth_user *user, const char *name), void *owner,
             struct verify_slot **slot)
{
    /* a password longer than any the users file can hold fails, at the cost of any failure */
    const struct auth_user *u = pwlen <= AUTH_PASSWORD_MAX ? auth_lookup(v->auth, name, nlen)
                                                           : NULL;
    struct throttle_keys keys = throttle_keys_of(v->throttle, addr, name, nlen);
    uint64_t now = mono_ms();
    struct verify_slot *sl = v->free;
    long wait;

    if (u && auth_cached(v->auth, u, pw, pwlen)) {
        throttle_result(v->throttle, keys, 1, now);
        *user = u;
        return VERIFY_OK;
    }
    if (!sl) {
        v->stats.busy++;
        return VERIFY_BUSY;
    }
    wait = throttle_book(v->throttle, keys, now);
    if (wait < 0) {
        v->stats.throttled++;
        return VERIFY_THROTTLED;
    }
    v->free = sl->next;
    v->stats.pending++;
    sl->cb = cb;
    sl->owner = owner;
    sl->keys = keys;
    sl->user = u;
    if (auth_name_valid(name, nlen))
        memcpy(sl->name, name, nlen);
    sl->name[auth_name_valid(name, nlen) ? nlen : 0] = '\0';
    sl->pwlen = (uint32_t)(pwlen < sizeof(sl->pw) ? pwlen : sizeof(sl->pw));
    memcpy(sl->pw, pw, sl->pwlen);
    *slot = sl;
    if (wait > 0) {
        struct timeval tv = {wait / 1000, (wait % 1000) * 1000};
        sl->state = SLOT_WAITING;
        evtimer_add(&sl->timer, &tv);
    } else {
        submit(v, sl);
    }
    return VERIFY_PENDING;
}

void
verify_cancel(struct verify *v, struct verify_slot *sl)
{
    if (sl->state == SLOT_WAITING) { /* never reached a thread: free it now */
        event_del(&sl->timer);
        slot_put(v, sl);
        return;
    }
    sl->owner = NULL; /* verify_done_cb frees it */
    pthread_mutex_lock(&v->lock);
    sl->cancelled = 1;
    pthread_mutex_unlock(&v->lock);
}

void
verify_get_stats(const struct verify *v, struct verify_stats *out)
{
    static const struct verify_stats none;

    *out = v ? v->stats : none;
}

/* ---------------------------------------------------------------------------------------- */
/* Lifecycle                                                                                 */

/* Start the threads. Returns 0, or -1 if none could start. */
static int
start_threads(struct verify *v)
{
    for (uint32_t i = 0; i < VERIFY_WORKERS; i++) {
        if (pthread_create(&v->threads[i], NULL, worker_main, v) != 0)
            break;
        v->nthreads++;
    }
    return v->nthreads ? 0 : -1;
}

struct verify *
verify_new(struct event_base *base, struct auth *a)
{
    struct verify *v = calloc(1, sizeof(*v));
    uint64_t seed = 0;

    if (!v)
        return NULL;
    v->auth = a;
    v->base = base;
    v->efd = -1;
    v->fifo_tail = &v->fifo_head;
    pthread_mutex_init(&v->lock, NULL);
    pthread_cond_init(&v->work, NULL);
    v->throttle = malloc(sizeof(*v->throttle));
    v->slots = calloc(VERIFY_SLOTS, sizeof(*v->slots));
    if (!v->throttle || !v->slots || RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        goto out_free;
    throttle_init(v->throttle, seed);
    for (uint32_t i = VERIFY_SLOTS; i-- > 0;) {
        struct verify_slot *sl = &v->slots[i];
        sl->v = v;
        evtimer_assign(&sl->timer, base, verify_timer_cb, sl);
        sl->next = v->free;
        v->free = sl;
    }
    v->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (v->efd < 0)
        goto out_free;
    v->done_ev = event_new(base, v->efd, EV_READ | EV_PERSIST, verify_done_cb, v);
    if (!v->done_ev || event_add(v->done_ev, NULL) || start_threads(v))
        goto out_free;
    return v;
out_free:
    verify_free(v);
    return NULL;
}

void
verify_free(struct verify *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->lock);
    v->stop = 1;
    pthread_cond_broadcast(&v->work);
    pthread_mutex_unlock(&v->lock);
    for (uint32_t i = 0; i < v->nthreads; i++)
        pthread_join(v->threads[i], NULL);
    if (v->slots)
        for (uint32_t i = 0; i < VERIFY_SLOTS; i++) {
            if (v->slots[i].state == SLOT_WAITING)
                event_del(&v->slots[i].timer);
            OPENSSL_cleanse(v->slots[i].pw, sizeof(v->slots[i].pw));
        }
    if (v->done_ev)
        event_free(v->done_ev);
    if (v->efd >= 0)
        close(v->efd);
    pthread_cond_destroy(&v->work);
    pthread_mutex_destroy(&v->lock);
    free(v->slots);
    free(v->throttle);
    free(v);
}
