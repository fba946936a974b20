/* SPDX-License-Identifier: MIT */
/* Example consumer: fetch messages (waiting up to a second for each batch), print them,
 * ack each once it is handled; stop after COUNT messages or when the queue stays empty.
 *
 *   consumer HOST PORT QUEUE COUNT */
#include <stdio.h>
#include <stdlib.h>

#include <slabmq.h>

int
main(int argc, char **argv)
{
    slabmq_options opts;
    slabmq_client *client;
    char err[256];
    long want;
    long got = 0;

    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT QUEUE COUNT\n", argv[0]);
        return 2;
    }
    slabmq_options_init(&opts); /* every field, also those a later version adds */
    opts.host = argv[1];
    opts.port = (uint16_t)atoi(argv[2]);
    opts.client_name = "example-consumer";
    want = atol(argv[4]);
    if (slabmq_client_connect_errbuf(&opts, &client, err, sizeof(err)) != SLABMQ_OK) {
        fprintf(stderr, "connect: %s\n", err);
        return 1;
    }
    while (got < want) {
        slabmq_batch *batch;
        size_t n;
        if (slabmq_fetch(client, argv[3], 100, 1000, &batch) != SLABMQ_OK) {
            fprintf(stderr, "fetch: %s\n", slabmq_client_errmsg(client));
            break;
        }
        n = slabmq_batch_count(batch);
        for (size_t i = 0; i < n; i++) {
            const slabmq_message *m = slabmq_batch_get(batch, i);
            printf("%.*s\n", (int)m->len, (const char *)m->data); /* "process" it */
            if (slabmq_ack(client, m->id) != SLABMQ_OK)
                fprintf(stderr, "ack: %s\n", slabmq_client_errmsg(client));
            got++;
        }
        slabmq_batch_free(batch);
        if (n == 0)
            break; /* nothing arrived within a second */
    }
    slabmq_client_close(client);
    return got == want ? 0 : 1;
}
