/* SPDX-License-Identifier: MIT */
/* Internals of libslabmq shared by its files; never installed. */
#ifndef SLABMQ_CLIENT_INTERNAL_H
#define SLABMQ_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "mpread.h"
#include "slabmq.h"

/* Largest reply frame accepted; bounds what a broken or hostile server can make us buffer. */
#define SMQ_CLIENT_MAX_REPLY ((uint32_t)1 << 30)

struct slabmq_client {
    int fd;                 /* connected socket, non-blocking */
    int timeout_ms;         /* per call; <= 0: none */
    uint64_t next_rid;      /* request id of the next request */
    uint32_t max_message;   /* from HELLO */
    uint32_t max_frame;     /* from HELLO: largest request body the broker takes */
    uint8_t *wbuf;          /* queued pipelined frames, then the request being built */
    size_t wcap;
    size_t wlen;            /* bytes in wbuf */
    size_t wstart;          /* where the request being built starts */
    uint32_t window;        /* pipelined requests allowed without their replies */
    uint32_t outstanding;   /* pipelined requests queued or sent, replies not yet read */
    uint64_t first_async;   /* request id of the oldest outstanding pipelined request */
    slabmq_confirm_cb on_confirm;  /* called for each pipelined reply; may be NULL */
    void *confirm_arg;
    slabmq_status async_err;       /* first failure of a pipelined request since slabmq_flush */
    char async_msg[256];           /* its detail */
    uint8_t *rbuf;          /* bytes read and not yet consumed */
    size_t rcap;
    size_t rstart;
    size_t rlen;
    msgpack_packer pk;      /* packs into wbuf */
    uint64_t max_fetch;     /* from HELLO: payload bytes per FETCH reply (0: not announced) */
    uint32_t max_inflight;  /* from HELLO: unacked messages per connection (0: not announced) */
    int wfail;              /* building the request ran out of memory */
    int broken;             /* an I/O error or a bad reply: every later call fails */
    char err[256];          /* detail of the last failure */
    int last;               /* status of the last failure (slabmq_status) */
};

/* A client without a connection (fd -1): connect2's first step, and what the fuzz harness
 * (tests/fuzz) gives a socket of its own. Free with slabmq_client_close(). NULL when out of
 * memory. */
struct slabmq_client *smq_client_new(int timeout_ms);
/* Say HELLO on c's socket and take the broker's limits from the reply. */
slabmq_status smq_client_hello(struct slabmq_client *c, const char *name);

/* Set the detail message and return st. */
slabmq_status smq_client_fail(struct slabmq_client *c, slabmq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Start a request [op, rid, <nargs args>]; pack the arguments with c->pk. */
void smq_req_begin(struct slabmq_client *c, unsigned op, uint32_t nargs);

/* The hot requests (a PUBLISH of one message, an ACK or NACK of one id) are written with
 * protocol/mpwrite.h straight into wbuf instead of through msgpack-c's callback per value:
 * smq_req_reserve() returns room for n bytes after a new request's frame header (NULL when
 * out of memory), smq_req_wrote() records how far the request got. */
uint8_t *smq_req_reserve(struct slabmq_client *c, size_t n);
void smq_req_wrote(struct slabmq_client *c, const uint8_t *end);

/* Queue the request built since smq_req_begin as a pipelined one: its reply is read later
 * and handed to the confirm callback. Sends when the queue is large, and reads replies when
 * the window is full. *rid receives its request id. */
slabmq_status smq_req_async(struct slabmq_client *c, uint64_t *rid);
void smq_pack_str(struct slabmq_client *c, const char *s);

/* Send the request built since smq_req_begin and read its reply. On SLABMQ_OK, *r is
 * positioned on the first result and *nresults says how many there are; the views stay valid
 * until the next call on c. extra_ms extends the call's deadline (long-poll FETCH). */
slabmq_status smq_call(struct slabmq_client *c, unsigned op, int extra_ms, struct smq_mpr *r,
                       uint32_t *nresults);

/* Checks shared by every call naming a queue: a client, and a valid name. */
slabmq_status smq_check_queue(struct slabmq_client *c, const char *queue);

/* Mark a reply malformed. */
slabmq_status smq_bad_reply(struct slabmq_client *c, const char *what);

#endif /* SLABMQ_CLIENT_INTERNAL_H */
