/* SPDX-License-Identifier: MIT */
/* Flag parsing with getopt_long; see config.h. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "log.h"
#include "server.h"
#include "slabmq.h"

#define MIN_MEMORY ((uint64_t)16 << 20)
#define MAX_MESSAGE_CEILING ((uint64_t)256 << 20)

static const char usage[] =
    "usage: slabmqd [options]\n"
    "\n"
    "  --bind ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 TCP port (default 7654; 0 picks a free one)\n"
    "  --max-memory SIZE        cap on memory that grows with traffic (default 1GiB)\n"
    "  --max-message-size SIZE  largest message accepted (default 1MiB, at most 256MiB)\n"
    "  --visibility-ms MS       default redelivery timeout of new queues (default 30000)\n"
    "  --max-connections N      connections served at once (default 10000)\n"
    "  --max-inflight N         unacked messages one connection may hold (default 10000)\n"
    "  --frame-timeout MS       a frame once started must arrive within MS (default 30000)\n"
    "  --reservoir-capacity N   idle I/O buffers kept for reuse per size class; 0 (the\n"
    "                           default) keeps 120% of the most ever in use at once\n"
    "  --durability MODE        none (the default: in memory only) or sqlite: queues are\n"
    "                           durable unless declared not, kept in DIR/slabmq.db\n"
    "  --data-dir DIR           where --durability sqlite keeps its database\n"
    "                           (default ./slabmq-data)\n"
    "  --ignore-corrupt-data    start even if the database fails its integrity check: it is\n"
    "                           renamed aside and the broker starts empty\n"
    "  --log-level LEVEL        debug, info, warn or error (default info)\n"
    "  -h, --help               this help\n"
    "  -V, --version            print the version\n"
    "\n"
    "SIZE takes K/M/G or KiB/MiB/GiB (powers of 1024) or KB/MB/GB (powers of 1000).\n"
    "The broker prints 'listening on ADDR:PORT' once it accepts connections.\n";


static int
parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
bad(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "slabmqd: invalid %s '%s': %s (see --help)\n", flag, value ? value : "",
            why);
    return -1;
}

static int
parse_log_level(const char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            log_threshold = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* Apply one option; returns 0 or -1 after printing why. */
static int
apply(struct server_config *c, int opt, const char *arg)
{
    uint64_t v;

    switch (opt) {
    case 'b':
        if (strlen(arg) >= sizeof(c->bind))
            return bad("--bind", arg, "too long");
        snprintf(c->bind, sizeof(c->bind), "%s", arg);
        return 0;
    case 'p':
        if (parse_uint(arg, 0, 65535, &v))
            return bad("--port", arg, "expected 0-65535");
        c->port = (int)v;
        return 0;
    case 'm':
        if (smq_parse_size(arg, &v) || v < MIN_MEMORY)
            return bad("--max-memory", arg, "expected a size of at least 16MiB");
        c->broker.max_memory = v;
        return 0;
    case 's':
        if (smq_parse_size(arg, &v) || v > MAX_MESSAGE_CEILING)
            return bad("--max-message-size", arg, "expected a size up to 256MiB");
        c->broker.max_message_size = (uint32_t)v;
        return 0;
    case 'v':
        if (parse_uint(arg, 1, 7ull * 24 * 3600 * 1000, &v))
            return bad("--visibility-ms", arg, "expected 1 ms to 7 days");
        c->broker.visibility_ms = (uint32_t)v;
        return 0;
    case 'c':
        if (parse_uint(arg, 1, 1000000, &v))
            return bad("--max-connections", arg, "expected 1-1000000");
        c->max_connections = (uint32_t)v;
        return 0;
    case 'i':
        if (parse_uint(arg, 1, 10000000, &v))
            return bad("--max-inflight", arg, "expected 1-10000000");
        c->broker.max_inflight = (uint32_t)v;
        return 0;
    case 'f':
        if (parse_uint(arg, 10, 3600000, &v))
            return bad("--frame-timeout", arg, "expected 10 ms to an hour");
        c->frame_timeout_ms = (uint32_t)v;
        return 0;
    case 'r':
        if (parse_uint(arg, 0, 65536, &v))
            return bad("--reservoir-capacity", arg, "expected 0-65536");
        c->broker.reservoir_capacity = (uint32_t)v;
        return 0;
    case 'D':
        if (strcmp(arg, "none") == 0)
            c->durability = 0;
        else if (strcmp(arg, "sqlite") == 0)
            c->durability = 1;
        else
            return bad("--durability", arg, "expected none or sqlite");
        return 0;
    case 'd':
        if (strlen(arg) == 0 || strlen(arg) >= sizeof(c->data_dir))
            return bad("--data-dir", arg, "expected a directory path");
        snprintf(c->data_dir, sizeof(c->data_dir), "%s", arg);
        return 0;
    case 'I':
        c->ignore_corrupt = 1;
        return 0;
    case 'l':
        if (parse_log_level(arg))
            return bad("--log-level", arg, "expected debug, info, warn or error");
        return 0;
    default:
        return -1;
    }
}

enum config_result
config_parse(struct server_config *c, int argc, char **argv)
{
    static const struct option opts[] = {{"bind", required_argument, NULL, 'b'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"max-memory", required_argument, NULL, 'm'},
                                         {"max-message-size", required_argument, NULL, 's'},
                                         {"visibility-ms", required_argument, NULL, 'v'},
                                         {"max-connections", required_argument, NULL, 'c'},
                                         {"max-inflight", required_argument, NULL, 'i'},
                                         {"frame-timeout", required_argument, NULL, 'f'},
                                         {"reservoir-capacity", required_argument, NULL, 'r'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"durability", required_argument, NULL, 'D'},
                                         {"data-dir", required_argument, NULL, 'd'},
                                         {"ignore-corrupt-data", no_argument, NULL, 'I'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    int opt;

    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return CONFIG_EXIT;
        }
        if (opt == 'V') {
            printf("slabmqd %s (protocol %d)\n", SLABMQ_VERSION_STRING, SLABMQ_PROTOCOL_VERSION);
            return CONFIG_EXIT;
        }
        if (opt == '?' || opt == ':') {
            fprintf(stderr, "slabmqd: %s option '%s' (see --help)\n",
                    opt == '?' ? "unknown" : "missing value for", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (apply(c, opt, optarg))
            return CONFIG_ERROR;
    }
    if (optind < argc) {
        fprintf(stderr, "slabmqd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return CONFIG_ERROR;
    }
    if ((uint64_t)c->broker.max_message_size * 4 > c->broker.max_memory) {
        fprintf(stderr, "slabmqd: --max-message-size must be at most a quarter of --max-memory\n");
        return CONFIG_ERROR;
    }
    return CONFIG_RUN;
}
