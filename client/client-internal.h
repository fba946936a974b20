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
    uint8_t *wbuf;          /* request being built: 4-byte header, then the body */
    size_t wcap;
    size_t wlen;
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
};

/* Set the detail message and return st. */
slabmq_status smq_client_fail(struct slabmq_client *c, slabmq_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Start a request [op, rid, <nargs args>]; pack the arguments with c->pk. */
void smq_req_begin(struct slabmq_client *c, unsigned op, uint32_t nargs);
void smq_pack_str(struct slabmq_client *c, const char *s);

/* Send the request built since smq_req_begin and read its reply. On SLABMQ_OK, *r is
 * positioned on the first result and *nresults says how many there are; the views stay valid
 * until the next call on c. extra_ms extends the call's deadline (long-poll FETCH). */
slabmq_status smq_call(struct slabmq_client *c, unsigned op, int extra_ms, struct smq_mpr *r,
                       uint32_t *nresults);

/* Mark a reply malformed. */
slabmq_status smq_bad_reply(struct slabmq_client *c, const char *what);

#endif /* SLABMQ_CLIENT_INTERNAL_H */
