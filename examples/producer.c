/* SPDX-License-Identifier: MIT */
/* Example producer: publish each argument (or N numbered messages) to a queue.
 *
 *   producer HOST PORT QUEUE MESSAGE...
 *
 * Build against the installed library with either
 *   cc producer.c $(pkg-config --cflags --libs slabmq) -o producer
 * or the CMake project in this directory (find_package(slabmq)). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slabmq.h>

int
main(int argc, char **argv)
{
    slabmq_options opts;
    slabmq_client *client;
    char err[256];
    slabmq_status st;

    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT QUEUE MESSAGE...\n", argv[0]);
        return 2;
    }
    slabmq_options_init(&opts); /* every field, also those a later version adds */
    opts.host = argv[1];
    opts.port = (uint16_t)atoi(argv[2]);
    opts.client_name = "example-producer";
    st = slabmq_client_connect_errbuf(&opts, &client, err, sizeof(err));
    if (st != SLABMQ_OK) {
        fprintf(stderr, "connect: %s\n", err);
        return 1;
    }
    for (int i = 4; i < argc; i++) {
        uint64_t id;
        st = slabmq_publish(client, argv[3], argv[i], strlen(argv[i]), &id);
        if (st != SLABMQ_OK) {
            fprintf(stderr, "publish: %s\n", slabmq_client_errmsg(client));
            slabmq_client_close(client);
            return 1;
        }
        printf("published id %llu\n", (unsigned long long)id);
    }
    slabmq_client_close(client);
    return 0;
}
