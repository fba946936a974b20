/* SPDX-License-Identifier: MIT */
/* slabmq: the command-line client of slabmqd.
 *
 * This file parses the command line, prints help, connects, and hands over to one command in
 * cli_cmd.c. Options are parsed in one getopt_long pass over the whole line, so they may come
 * before or after the command name; each command then says which of the command-specific
 * options it accepts. Everything is checked before connecting, so a usage error (exit 2)
 * never sends anything to the broker. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_cmd.h"
#include "cli_mem.h"
#include "cli_out.h"
#include "cli_top.h"
#include "codec.h"
#include "settings.h"
#include "slabmq.h"

#define DEFAULT_TIMEOUT_MS 5000

/* Command-specific options, as bits of struct command.opts and struct parsed.seen. */
#define OPT_COUNT (1u << 0)
#define OPT_WAIT (1u << 1)
#define OPT_VISIBILITY (1u << 2)
#define OPT_MAX_MESSAGES (1u << 3)
#define OPT_MAX_BYTES (1u << 4)
#define OPT_OVERFLOW (1u << 5)
#define OPT_BACKOFF (1u << 6)
#define OPT_MAX_DELIVERIES (1u << 7)
#define OPT_DEAD_LETTER (1u << 8)
#define OPT_TTL (1u << 9)
#define OPT_DEDUP (1u << 10)
#define OPT_DELAY (1u << 11)
#define OPT_AT (1u << 12)
#define OPT_PRIORITY (1u << 13)
#define OPT_ID (1u << 14)
#define OPT_SKIP (1u << 15)
#define OPT_CREDIT (1u << 16)
#define OPT_DURABLE (1u << 17)
#define OPT_CONFIRM (1u << 18)
#define OPT_INTERVAL (1u << 19)
#define OPT_CONFIRMED_ACK (1u << 20)
#define OPT_QUEUE (OPT_VISIBILITY | OPT_MAX_MESSAGES | OPT_MAX_BYTES | OPT_OVERFLOW | OPT_BACKOFF \
                   | OPT_MAX_DELIVERIES | OPT_DEAD_LETTER | OPT_TTL | OPT_DEDUP | OPT_DURABLE \
                   | OPT_CONFIRM)
#define OPT_PUBLISH (OPT_DELAY | OPT_AT | OPT_TTL | OPT_PRIORITY | OPT_ID | OPT_CONFIRM)

/* getopt_long values of the long-only options. */
#define OPT_VAL_VISIBILITY 256
#define OPT_VAL_MAX_MESSAGES 257
#define OPT_VAL_MAX_BYTES 258
#define OPT_VAL_OVERFLOW 259
#define OPT_VAL_BACKOFF 260
#define OPT_VAL_BACKOFF_MAX 261
#define OPT_VAL_MAX_DELIVERIES 262
#define OPT_VAL_DEAD_LETTER 263
#define OPT_VAL_TTL 264
#define OPT_VAL_DEDUP 265
#define OPT_VAL_DELAY 266
#define OPT_VAL_AT 267
#define OPT_VAL_PRIORITY 268
#define OPT_VAL_ID 269
#define OPT_VAL_SKIP 270
#define OPT_VAL_CREDIT 271
#define OPT_VAL_DURABLE 272
#define OPT_VAL_CONFIRM 273
#define OPT_VAL_CREDENTIALS 274
#define OPT_VAL_INTERVAL 275
#define OPT_VAL_TLS 276
#define OPT_VAL_TLS_CA 277
#define OPT_VAL_TLS_CERT 278
#define OPT_VAL_TLS_KEY 279
#define OPT_VAL_TLS_NAME 280
#define OPT_VAL_TLS_INSECURE 281
#define OPT_VAL_CONFIRMED_ACK 282

#define TOP_INTERVAL_DEFAULT_MS 1000u
#define TOP_INTERVAL_MAX_MS 3600000u

/* The command line after option parsing. */
struct parsed {
    const char *server;         /* -s, or NULL */
    const char *credentials;    /* --credentials, or NULL */
    int tls;                    /* --tls, or implied by another --tls-* option */
    slabmq_tls_options tlso;    /* --tls-ca, --tls-cert, --tls-key, --tls-server-name,
                                   --tls-insecure */
    int timeout_ms;             /* --timeout */
    int json;                   /* --json */
    int help;                   /* --help */
    int version;                /* --version */
    unsigned seen;              /* OPT_* bits given */
    uint32_t count;             /* -n; 0 when not given */
    uint32_t wait_ms;           /* --wait */
    slabmq_queue_options queue; /* --visibility, --max-messages, --max-bytes, --overflow,
                                   --backoff, --max-deliveries, --dead-letter, --dedup-window;
                                   0 when not given */
    slabmq_publish_options pub; /* --delay, --at, --priority, --id; 0 when not given */
    uint64_t ttl_ms;            /* --ttl: declare's or publish's */
    uint64_t skip;              /* --skip */
    uint32_t credit;            /* --credit; 0 when not given */
    uint32_t interval_ms;       /* --interval */
    unsigned ack_flags;         /* --confirmed-ack: SLABMQ_ACK_CONFIRMED */
    char **args;                /* positional arguments: the command name, then its own */
    int nargs;
};

/* One entry of the command table. */
struct command {
    const char *name;
    int (*run)(struct cli *cli);
    int min_args;       /* positional arguments after the name; the first is a queue name */
    int max_args;
    unsigned opts;      /* OPT_* bits it accepts */
    uint32_t max_count; /* largest -n */
    const char *usage;  /* synopsis */
    const char *help;   /* the rest of `slabmq help NAME` */
    /* Checks of this command's arguments beyond the common ones, or NULL: returns 0 or
     * an exit code after reporting the usage error. */
    int (*check)(const struct command *cmd, const struct parsed *p);
};

/* ---------------------------------------------------------------------------------------- */
/* Help                                                                                      */

static const char general_help[] =
    "usage: slabmq [-s HOST:PORT] [--timeout MS] [--json] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n"
    "  queues                            list queues: NAME READY INFLIGHT\n"
    "  stats [QUEUE]                     broker statistics, or one queue's\n"
    "  publish QUEUE [MESSAGE | -]       publish MESSAGE, or one message per line of stdin\n"
    "                                    (--delay, --at, --ttl, --priority, --id)\n"
    "  consume QUEUE [-n N] [--wait MS]  take up to N messages, print and acknowledge them\n"
    "  subscribe QUEUE [--credit N]      receive pushed messages, print and acknowledge them\n"
    "  peek QUEUE [-n N] [--skip N]      show up to N ready messages without taking them\n"
    "  dlq QUEUE [-n N] [--skip N]       browse the dead letters of QUEUE, with their reasons\n"
    "  move SRC DST [-n N]               move messages (say, dead letters) from SRC to DST\n"
    "  why QUEUE                         explain why the consumers of QUEUE get nothing\n"
    "  purge QUEUE                       discard the ready messages of QUEUE\n"
    "  pause QUEUE / resume QUEUE        stop / restart deliveries (publishes still accepted)\n"
    "  delete QUEUE                      delete QUEUE and all its messages\n"
    "  declare QUEUE [OPTIONS]           create QUEUE, or change its settings\n"
    "  memory                            the broker's memory: use, slab classes, buffers\n"
    "  ping                              measure the round trip to the broker\n"
    "  top [--interval MS] [-n FRAMES]   live view of the queues: depth, in flight, rates\n"
    "  help [COMMAND]                    this text, or the details of COMMAND\n"
    "\n"
    "Options (before or after the command):\n"
    "  -s, --server HOST:PORT  broker address; HOST, :PORT and [IPv6]:PORT work too\n"
    "                          (default: $SLABMQ_SERVER, else 127.0.0.1:7654)\n"
    "  --credentials FILE      for a broker with users: USER:PASSWORD, the first line\n"
    "                          of FILE (default: $SLABMQ_CREDENTIALS, else the user\n"
    "                          $SLABMQ_USER with the password $SLABMQ_PASSWORD).\n"
    "                          No option takes a password: others could read it\n"
    "  --tls                   connect with TLS (slabmqd --tls-port), verifying the\n"
    "                          broker's certificate against the system's CAs\n"
    "                          (default: on when $SLABMQ_TLS is 1)\n"
    "  --tls-ca FILE           ... against the CAs in FILE instead ($SLABMQ_TLS_CA)\n"
    "  --tls-cert FILE         client certificate, for a broker that requires one\n"
    "  --tls-key FILE          its private key ($SLABMQ_TLS_CERT, $SLABMQ_TLS_KEY)\n"
    "  --tls-server-name NAME  the name the certificate must be for (default: HOST)\n"
    "  --tls-insecure          do not verify the certificate (tests only)\n"
    "  -t, --timeout MS        connect and per-request timeout (default 5000; 0: none)\n"
    "  -j, --json              print JSON instead of text\n"
    "  -h, --help              print help (for COMMAND when one is given)\n"
    "  -V, --version           print the version\n"
    "  --                      end of options: `slabmq publish jobs -- -1`\n"
    "\n"
    "Output:\n"
    "  consume and peek print each payload as raw bytes and a newline, so `publish -`\n"
    "  and `consume` round-trip lines of text. With --json they print one object per\n"
    "  line, {\"id\":N,\"deliveries\":N,\"payload\":\"...\"}; a payload that is not valid\n"
    "  UTF-8 comes as \"payload_base64\":\"...\" (padded RFC 4648 base64) instead.\n"
    "  A dead letter (a message of a dead-letter queue) is printed after\n"
    "  \"[REASON from QUEUE after N deliveries] \", and in JSON with\n"
    "  \"dead_letter\":{\"reason\":\"...\",\"queue\":\"...\",\"deliveries\":N}.\n"
    "  Errors go to stderr as one line starting with \"slabmq: \".\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  the broker returned an error (e.g. no such queue, queue full), or output\n"
    "     failed\n"
    "  2  usage error: bad option, argument or queue name (nothing was sent)\n"
    "  3  cannot connect, authentication failed, connection lost, or timed out\n"
    "  4  consume, subscribe: no message was available within --wait;\n"
    "     why: no message can be delivered now\n";

static const char queues_help[] =
    "List every queue, sorted by name, with its ready and in-flight message counts:\n"
    "\n"
    "  NAME  READY  INFLIGHT\n"
    "  jobs      3         1\n"
    "\n"
    "--json prints one array: [{\"name\":\"jobs\",\"ready\":3,\"inflight\":1}]\n";

static const char stats_help[] =
    "Without QUEUE, print the broker's statistics; with QUEUE, that queue's (ready,\n"
    "inflight, published, delivered, acked, ...): one \"name value\" pair per line, the\n"
    "values aligned. The names are those of docs/protocol.md. Values are numbers, except\n"
    "dead_letter, the name of the queue's dead-letter queue (\"\" when it has none).\n"
    "\n"
    "--json prints one object: {\"ready\":3,\"inflight\":0,...,\"dead_letter\":\"jobs.dlq\"}\n"
    "Exit status 1 if QUEUE does not exist.\n";

static const char publish_help[] =
    "Publish MESSAGE to QUEUE, creating the queue if needed.\n"
    "\n"
    "With - (or without MESSAGE), publish one message per line of standard input: the\n"
    "trailing newline is stripped, an empty line is a 0-byte message, and a last line\n"
    "without a newline counts too. Lines travel in batches of up to 1000 lines or\n"
    "512 KiB, one round trip each, and the broker stores each batch all or nothing; on\n"
    "an error the message says how many leading lines were published.\n"
    "\n"
    "Prints \"published N messages to QUEUE (first id ID)\"; --json prints\n"
    "{\"published\":N,\"first_id\":ID} (first_id is null when the input was empty).\n"
    "A MESSAGE starting with '-' goes after '--': slabmq publish jobs -- -1\n"
    "\n"
    "Options, for every message published:\n"
    "  --delay MS       deliver no sooner than MS milliseconds from now\n"
    "  --at UNIX_MS     deliver no sooner than this time, milliseconds since 1970 (with\n"
    "                   --delay, the later of the two wins; a past time: no delay)\n"
    "  --ttl MS         time to live: a message still waiting after MS milliseconds goes\n"
    "                   to the dead-letter queue as \"expired\" (default and 0: the\n"
    "                   queue's TTL, see `slabmq help declare`)\n"
    "  --priority N     0-9, higher first (default 0)\n"
    "  --id ID          producer message id, 1-128 bytes, for one MESSAGE: a queue that\n"
    "                   remembers ID stores nothing, and the command prints\n"
    "                   \"duplicate: QUEUE already has ID (message N); nothing published\"\n"
    "                   (exit status 0). With --id, --json adds \"duplicate\":true|false.\n"
    "  --confirm LEVEL  memory, written or synced: how far a message to a durable queue\n"
    "                   must get before the broker confirms it (default: the queue's)\n"
    "Delays and TTLs go up to 100 years.\n";

static const char consume_help[] =
    "Take up to N messages from QUEUE, print each one and acknowledge it once printed.\n"
    "If none is ready, wait up to MS milliseconds for one. Stops when N messages were\n"
    "consumed, or when a fetch comes back empty after waiting. Like any fetch, it\n"
    "creates QUEUE if it does not exist.\n"
    "\n"
    "  -n, --count N  messages to consume, at least 1 (default 1)\n"
    "  -w, --wait MS  how long to wait when none is ready, 0-3600000 (default 0)\n"
    "  --confirmed-ack  each ack returns only once the broker has committed it to its\n"
    "                 store, so an acked message never comes back after a broker crash\n"
    "                 (durable queues; costs a commit's wait per batch)\n"
    "\n"
    "Each payload is printed as raw bytes and a newline; --json prints one object per\n"
    "line: {\"id\":N,\"deliveries\":N,\"payload\":\"...\"} (\"payload_base64\" instead when\n"
    "the payload is not valid UTF-8). Messages are acknowledged only after their output\n"
    "was flushed; if writing fails they stay unacknowledged and the broker redelivers\n"
    "them. A dead letter is printed after \"[REASON from QUEUE after N deliveries] \"\n"
    "(JSON: \"dead_letter\":{\"reason\":...,\"queue\":...,\"deliveries\":N}).\n"
    "\n"
    "Exit status 4, with nothing on stdout, when no message was available, so a script\n"
    "can loop: while slabmq consume jobs --wait 5000; do :; done\n";

static const char peek_help[] =
    "Show up to N ready messages of QUEUE, oldest first, without taking them: they stay\n"
    "ready for consumers.\n"
    "\n"
    "  -n, --count N  messages to show, 1-256 (default 10)\n"
    "  --skip N       skip the first N ready messages: page through a queue with\n"
    "                 --skip 0, 10, 20, ... (pages shift if the queue changes meanwhile)\n"
    "\n"
    "Output as for consume, dead letters with their reasons; with --json, \"deliveries\"\n"
    "counts the deliveries so far (0 for a message never fetched). Delayed and in-flight\n"
    "messages are not shown. Exit status 0 when the queue is empty, 1 when it does not\n"
    "exist.\n";

static const char purge_help[] =
    "Discard the ready messages of QUEUE; messages in flight are kept.\n"
    "Prints \"purged N messages from QUEUE\"; --json prints {\"purged\":N}.\n"
    "Exit status 1 if QUEUE does not exist.\n";

static const char pause_help[] =
    "Stop delivering from QUEUE: publishes are still accepted, consumers get nothing (their\n"
    "FETCHes wait) until `slabmq resume QUEUE`. Prints \"paused QUEUE\"; --json prints\n"
    "{\"queue\":...,\"paused\":true,\"was_paused\":...}. Exit status 1 if QUEUE does not exist.\n";

static const char resume_help[] =
    "Deliver from QUEUE again after `slabmq pause`; waiting consumers are served at once.\n"
    "Prints \"resumed QUEUE\"; --json as for pause. Exit status 1 if QUEUE does not exist.\n";

static const char delete_help[] =
    "Delete QUEUE with all its messages, ready or in flight.\n"
    "Prints \"deleted queue QUEUE (N messages dropped)\"; --json prints {\"dropped\":N}.\n"
    "Exit status 1 if QUEUE does not exist.\n";

static const char declare_help[] =
    "Create QUEUE if it does not exist, then apply the settings given, to a new or an\n"
    "existing queue. Settings left out keep their value (for a new queue, the default).\n"
    "\n"
    "  --visibility MS         redelivery timeout: how long a fetched message may stay\n"
    "                          unacknowledged before it is delivered again (broker\n"
    "                          default 30000, at most a week)\n"
    "  --max-messages N        most messages the queue holds, ready, in flight or\n"
    "  --max-length N          delayed; at least 1 (default: no limit)\n"
    "  --max-bytes SIZE        most payload bytes the queue holds (default: no limit)\n"
    "  --overflow reject|drop-oldest|dead-letter\n"
    "                          what a publish does at a limit: reject (the default for a\n"
    "                          new queue) refuses it, and `slabmq publish` exits 1 with\n"
    "                          \"queue QUEUE is full ...\"; drop-oldest discards ready\n"
    "                          messages from the head of the queue to make room, and\n"
    "                          refuses the publish only when no ready message is left;\n"
    "                          dead-letter moves them to the dead-letter queue instead\n"
    "                          (reason \"max-length\")\n"
    "  --max-deliveries N      deliveries after which a message that comes back (NACK,\n"
    "                          timeout, closed connection) goes to the dead-letter queue\n"
    "                          (reason \"delivery-limit\"); 0: unlimited (default 20)\n"
    "  --dead-letter NAME      the queue that receives dead letters (default QUEUE.dlq);\n"
    "                          \"\" discards them\n"
    "  --ttl MS                time to live of messages published without their own\n"
    "                          --ttl; 0: none (the default)\n"
    "  --dedup-window SIZE     memory for remembering producer ids (publish --id),\n"
    "                          1KiB to 64MiB (default 1MiB); 0 turns de-duplication off\n"
    "  --backoff MS            retry backoff: a message NACKed without a delay, or not\n"
    "                          acked in time, is redelivered after MS * 2^(deliveries-1)\n"
    "                          ms (less up to 20% jitter); 0 turns it off (the default)\n"
    "  --backoff-max MS        the most a backoff waits (default 60000)\n"
    "  --durable yes|no        with a broker run with --durability sqlite: keep the queue\n"
    "                          in its database (the default there) or in memory only;\n"
    "                          changes only while the queue is empty\n"
    "  --confirm LEVEL         memory, written (the default) or synced: how far a publish\n"
    "                          to the queue must get before it is confirmed\n"
    "\n"
    "SIZE is a number of bytes, optionally followed by K/M/G or KiB/MiB/GiB (powers of\n"
    "1024) or KB/MB/GB (powers of 1000), in any case: 65536, 64KiB, 10MB. A limit can be\n"
    "changed but not removed. A message larger than --max-bytes is always refused.\n"
    "`slabmq stats QUEUE` shows the settings as max_messages, max_bytes (0: no limit),\n"
    "overflow_drop_oldest and overflow_dead_letter (0 or 1), max_deliveries, dead_letter,\n"
    "ttl_ms and dedup_window.\n"
    "\n"
    "Prints \"declared QUEUE (created)\", or \"declared QUEUE (updated)\" when it existed;\n"
    "--json prints {\"queue\":\"QUEUE\",\"created\":true} (false when it existed).\n";

static const char memory_help[] =
    "Show the broker's memory, from its statistics (`slabmq stats` lists them raw):\n"
    "\n"
    "  memory     3.0 MiB used of 64.0 MiB (4.7%), peak 3.1 MiB, 0 denied\n"
    "  slab       3 pages resident (1 pooled) of 64, 1.0 MiB each; 2 reused\n"
    "  reservoir  40 hits, 8 misses (hit ratio 83.3%), 0 overflows, 0 denied; 80.0 KiB\n"
    "\n"
    "  CLASS  CHUNK  PAGES  USED  FREE  WASTED  FAILS\n"
    "     10    600      1     4  1743     424      0\n"
    "     13   1168      1     2   895       0      0\n"
    "\n"
    "memory: bytes of the memory limit in use, the limit, the highest use so far and\n"
    "how many reservations the limit refused. slab: pages held by size classes or kept\n"
    "empty in the pool, out of all the limit allows, and how often a class took a page\n"
    "from the pool. reservoir: the pool of I/O buffers: requests served from it (hits)\n"
    "or allocated (misses), buffers freed because the pool was full (overflows) or\n"
    "refused by the limit (denied), and the bytes of all buffers. A \"heap\" line of\n"
    "malloc counts appears only when the broker runs with the test allocation shim.\n"
    "\n"
    "The table has one row per slab size class that owns pages: its index, chunk size in\n"
    "bytes, pages, chunks used and free, bytes lost to rounding in the used chunks, and\n"
    "allocations the limit refused. A value the broker did not send shows as \"-\".\n"
    "\n"
    "--json prints one object: {\"memory\":{\"used\":N,\"limit\":N,\"peak\":N,\"denied\":N,\n"
    "\"used_ratio\":0.0469},\"slab\":{\"page_size\":N,\"pages_total\":N,\"pages_resident\":N,\n"
    "\"pages_pooled\":N,\"pages_reused\":N,\"classes\":[{\"class\":10,\"chunk_size\":600,\n"
    "\"pages\":1,\"used\":4,\"free\":1743,\"wasted\":424,\"fails\":0},...]},\"reservoir\":\n"
    "{\"hits\":N,\"misses\":N,\"overflows\":N,\"denied\":N,\"bytes\":N,\"hit_ratio\":0.8333}}\n"
    "(plus \"heap\":{\"allocs\":N,\"reallocs\":N,\"frees\":N} with the shim). A ratio is\n"
    "null when it has no denominator; a value the broker did not send is left out.\n";

static const char dlq_help[] =
    "Show the dead letters of QUEUE: the queue's dead-letter queue (the dead_letter of\n"
    "`slabmq stats QUEUE`, by default QUEUE.dlq) is peeked, so nothing is taken.\n"
    "\n"
    "  -n, --count N  dead letters to show, 1-256 (default 10)\n"
    "  --skip N       skip the first N of them, to page through\n"
    "\n"
    "  dead letters of jobs in jobs.dlq: 2 ready\n"
    "  ID  REASON          FROM  DELIVERIES  PAYLOAD\n"
    "   7  rejected        jobs           1  resize photo 2\n"
    "   9  delivery-limit  jobs          20  resize photo 4\n"
    "\n"
    "REASON is delivery-limit (too many deliveries), rejected (a consumer gave up on it:\n"
    "TERM), expired (its time to live passed) or max-length (pushed out by overflow\n"
    "dead-letter). FROM is the queue it came from, DELIVERIES its deliveries there.\n"
    "Control characters in payloads are shown as \\xNN. --json prints one object per\n"
    "dead letter, as peek does. Exit status 1 if QUEUE does not exist or has no\n"
    "dead-letter queue. `slabmq move QUEUE.dlq QUEUE` sends them back for another try.\n";

static const char move_help[] =
    "Move up to N ready messages from SRC to DST (default: all that are ready), in\n"
    "batches: fetch from SRC, publish to DST, then acknowledge them in SRC. Typically\n"
    "sends dead letters back for another try: slabmq move jobs.dlq jobs\n"
    "\n"
    "  -n, --count N  messages to move, at least 1 (default: every ready one)\n"
    "\n"
    "The messages are published anew: DST gives them new ids and deliveries start from\n"
    "0; their dead-letter reasons are not carried over. Delivery is at least once: a\n"
    "message is acknowledged in SRC only after DST has stored it, so none is lost, but\n"
    "if the connection fails between the two it is in both queues (SRC delivers it again\n"
    "after its visibility timeout). If DST refuses a batch, it is returned to SRC at\n"
    "once (NACK). Prints \"moved N messages from SRC to DST\"; --json prints\n"
    "{\"moved\":N}. Exit status 1 when a publish or acknowledgement failed; the message\n"
    "says how many were moved before.\n";

static const char subscribe_help[] =
    "Subscribe to QUEUE: the broker pushes its messages as long as the subscription has\n"
    "credit, and each is printed (as by consume) and then acknowledged, which gives its\n"
    "credit back. Runs until N messages were received, --wait passes without one, or\n"
    "SIGINT/SIGTERM; then it ends the subscription and still prints and acknowledges\n"
    "what had been pushed before.\n"
    "\n"
    "  --credit N     most messages pushed and not yet acknowledged (default 100, at most\n"
    "                 1000); never more than the messages -n still wants, so nothing is\n"
    "                 pushed only to be given back (which would count as a delivery)\n"
    "  -n, --count N  stop after N messages (default: no limit)\n"
    "  -w, --wait MS  stop when no message arrives for MS milliseconds\n"
    "  --confirmed-ack  each ack returns only once the broker has committed it\n"
    "\n"
    "Several subscribers of one queue share its messages in turn. Exit status 0 when\n"
    "stopped by -n, a signal or --wait after at least one message; 4 when --wait passed\n"
    "without any; 1 when the subscription ended because QUEUE was deleted.\n";

static const char why_help[] =
    "Explain from the statistics of QUEUE why its consumers get nothing, with the\n"
    "numbers: the first of these that applies.\n"
    "\n"
    "  paused        the queue is paused (`slabmq resume QUEUE`)\n"
    "  no-consumers  messages are ready but nobody fetches or is subscribed\n"
    "  no-credit     messages are ready but every subscription holds its whole credit in\n"
    "                flight, and no fetch is waiting\n"
    "  memory        messages are ready for consumers, but the broker's memory limit\n"
    "                leaves no room to hold more in flight: consumers must ack\n"
    "  deliverable   messages are ready and consumers are there: they get them\n"
    "  delayed       only delayed messages are left; says when the next is due\n"
    "  inflight      every message is in flight, held by consumers until acked or timed out\n"
    "  empty         the queue holds nothing\n"
    "\n"
    "The second line gives ready, inflight, delayed, waiters (waiting fetches),\n"
    "subscriptions, credit (free credit of the subscriptions), paused and, when a\n"
    "message is delayed, next_due_ms. --json prints one object: {\"queue\":...,\n"
    "\"cause\":\"delayed\",\"deliverable\":false,\"ready\":0,...,\"next_due_ms\":N}.\n"
    "Exit status 0 when messages can be delivered now (paused is not), 4 when none can,\n"
    "1 if QUEUE does not exist.\n";

static const char ping_help[] =
    "Send one PING and print the round trip, connecting not included:\n"
    "\"pong from HOST:PORT in 0.123 ms\"; --json prints {\"ms\":0.123}.\n";

static const char top_help[] =
    "A live view of every queue, refreshed each --interval MS (default 1000, at least\n"
    "10): READY (depth), INFLIGHT, DELAYED, PUB/S, DELIV/S and ACK/S (per second, from the\n"
    "last two samples of each queue's statistics; '-' for a queue new since the last\n"
    "sample) and DEAD (dead-lettered, total), under a line with the connections and the\n"
    "memory in use. On a terminal the view is redrawn in place (ANSI) and cut to its\n"
    "height; otherwise frames are appended, a blank line apart. --json prints one object\n"
    "a frame: {\"connections\":N,\"memory_used\":N,\"memory_limit\":N,\"queues\":[{\"name\":\n"
    "...,\"ready\":N,...,\"publish_rate\":R,\"deliver_rate\":R,\"ack_rate\":R}]} (-1: no\n"
    "rate yet). -n FRAMES stops after that many frames; without it, top runs until\n"
    "interrupted.\n";

static int check_publish(const struct command *cmd, const struct parsed *p);
static int check_move(const struct command *cmd, const struct parsed *p);

static const struct command commands[] = {
    {"queues", cli_cmd_queues, 0, 0, 0, 0, "queues", queues_help, NULL},
    {"stats", cli_cmd_stats, 0, 1, 0, 0, "stats [QUEUE]", stats_help, NULL},
    {"publish", cli_cmd_publish, 1, 2, OPT_PUBLISH, 0,
     "publish QUEUE [MESSAGE | -]\n"
     "              [--delay MS] [--at UNIX_MS] [--ttl MS] [--priority N] [--id ID]\n"
     "              [--confirm memory|written|synced]",
     publish_help, check_publish},
    {"consume", cli_cmd_consume, 1, 1, OPT_COUNT | OPT_WAIT | OPT_CONFIRMED_ACK, UINT32_MAX,
     "consume QUEUE [-n N] [--wait MS] [--confirmed-ack]", consume_help, NULL},
    {"subscribe", cli_work_subscribe, 1, 1, OPT_COUNT | OPT_WAIT | OPT_CREDIT | OPT_CONFIRMED_ACK,
     UINT32_MAX, "subscribe QUEUE [--credit N]\n              [-n N] [--wait MS] [--confirmed-ack]",
     subscribe_help, NULL},
    {"peek", cli_cmd_peek, 1, 1, OPT_COUNT | OPT_SKIP, SMQ_PEEK_MAX, "peek QUEUE [-n N] [--skip N]",
     peek_help, NULL},
    {"dlq", cli_work_dlq, 1, 1, OPT_COUNT | OPT_SKIP, SMQ_PEEK_MAX, "dlq QUEUE [-n N] [--skip N]",
     dlq_help, NULL},
    {"move", cli_work_move, 2, 2, OPT_COUNT, UINT32_MAX, "move SRC DST [-n N]", move_help,
     check_move},
    {"why", cli_work_why, 1, 1, 0, 0, "why QUEUE", why_help, NULL},
    {"purge", cli_cmd_purge, 1, 1, 0, 0, "purge QUEUE", purge_help, NULL},
    {"pause", cli_cmd_pause, 1, 1, 0, 0, "pause QUEUE", pause_help, NULL},
    {"resume", cli_cmd_resume, 1, 1, 0, 0, "resume QUEUE", resume_help, NULL},
    {"delete", cli_cmd_delete, 1, 1, 0, 0, "delete QUEUE", delete_help, NULL},
    {"declare", cli_cmd_declare, 1, 1, OPT_QUEUE, 0,
     "declare QUEUE\n"
     "              [--visibility MS] [--max-messages N] [--max-bytes SIZE]\n"
     "              [--overflow reject|drop-oldest|dead-letter] [--backoff MS]\n"
     "              [--backoff-max MS] [--max-deliveries N] [--dead-letter NAME]\n"
     "              [--ttl MS] [--dedup-window SIZE] [--durable yes|no]\n"
     "              [--confirm memory|written|synced]",
     declare_help, NULL},
    {"memory", cli_mem_show, 0, 0, 0, 0, "memory", memory_help, NULL},
    {"ping", cli_cmd_ping, 0, 0, 0, 0, "ping", ping_help, NULL},
    {"top", cli_top_show, 0, 0, OPT_COUNT | OPT_INTERVAL, UINT32_MAX,
     "top [--interval MS] [-n FRAMES]", top_help, NULL},
    {NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL}};

static const struct command *
find_command(const char *name)
{
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Print the help of cmd, or the general help when cmd is NULL. */
static int
print_help(const struct command *cmd)
{
    if (!cmd)
        fputs(general_help, stdout);
    else
        printf("usage: slabmq [-s HOST:PORT] [--timeout MS] [--json] %s\n\n%s", cmd->usage,
               cmd->help);
    return CLI_EXIT_OK;
}

/* Report a usage error, pointing at the help of cmd (or the general help), and return 2. */
static int
usage_error(const struct command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage_error(const struct command *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("slabmq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): va_start is above; a clang 14 defect (llvm/llvm-project#40656)
    va_end(ap);
    if (cmd)
        fprintf(stderr, " (see 'slabmq help %s')\n", cmd->name);
    else
        fputs(" (see 'slabmq --help')\n", stderr);
    return CLI_EXIT_USAGE;
}

/* `slabmq help [COMMAND]` */
static int
run_help(const struct parsed *p)
{
    const struct command *cmd;

    if (p->nargs > 2)
        return usage_error(NULL, "help takes at most one command name");
    if (p->nargs == 1)
        return print_help(NULL);
    cmd = find_command(p->args[1]);
    if (!cmd && strcmp(p->args[1], "help") != 0)
        return usage_error(NULL, "unknown command '%s'", p->args[1]);
    return cmd ? print_help(cmd) : print_help(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Parsing                                                                                   */

/* Parse a decimal number, digits only, into *v; *end receives what follows the digits.
 * 0 or -1 (no digits, or over UINT64_MAX). */
static int
parse_digits(const char *s, uint64_t *v, const char **end)
{
    char *e;
    unsigned long long n;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    n = strtoull(s, &e, 10);
    if (errno)
        return -1;
    *v = n;
    *end = e;
    return 0;
}

/* Parse a decimal number in [lo, hi]. 0 or -1. */
static int
parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    const char *end;
    uint64_t v;

    if (parse_digits(s, &v, &end) || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int
parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v;

    if (parse_u64(s, lo, hi, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int
valid_queue_name(const char *s)
{
    return smq_name_valid(s, strlen(s));
}

/* Parse a number option in [lo, hi] into *dst and mark it seen. 0, or an exit code after
 * reporting the usage error. */
static int
number_option(struct parsed *p, unsigned bit, const char *name, const char *arg, uint64_t lo,
              uint64_t hi, uint64_t *dst)
{
    if (parse_u64(arg, lo, hi, dst))
        return usage_error(NULL, "invalid %s '%s': expected a number from %" PRIu64 " to %" PRIu64,
                           name, arg, lo, hi);
    p->seen |= bit;
    return 0;
}

/* Apply one of the options of publish, peek and subscribe, or --ttl (declare's or
 * publish's). Returns 0 or an exit code. */
static int
apply_message_option(struct parsed *p, int opt, const char *arg)
{
    slabmq_publish_options *o = &p->pub;
    uint64_t v;

    switch (opt) {
    case OPT_VAL_TTL:
        return number_option(p, OPT_TTL, "--ttl", arg, 0, SLABMQ_TIME_MAX_MS, &p->ttl_ms);
    case OPT_VAL_DELAY:
        return number_option(p, OPT_DELAY, "--delay", arg, 0, SLABMQ_TIME_MAX_MS, &o->delay_ms);
    case OPT_VAL_AT:
        return number_option(p, OPT_AT, "--at", arg, 0, INT64_MAX, &o->at_ms);
    case OPT_VAL_PRIORITY:
        if (number_option(p, OPT_PRIORITY, "--priority", arg, 0, SLABMQ_PRIORITY_MAX, &v))
            return CLI_EXIT_USAGE;
        o->priority = (unsigned)v;
        return 0;
    case OPT_VAL_ID:
        if (*arg == '\0' || strlen(arg) > SLABMQ_PRODUCER_ID_MAX)
            return usage_error(NULL, "invalid --id: expected 1 to %d bytes",
                               SLABMQ_PRODUCER_ID_MAX);
        o->id = arg;
        p->seen |= OPT_ID;
        return 0;
    case OPT_VAL_SKIP:
        return number_option(p, OPT_SKIP, "--skip", arg, 0, UINT64_MAX, &p->skip);
    case OPT_VAL_CREDIT:
        if (number_option(p, OPT_CREDIT, "--credit", arg, 1, UINT32_MAX, &v))
            return CLI_EXIT_USAGE;
        p->credit = (uint32_t)v;
        return 0;
    case OPT_VAL_CONFIRMED_ACK:
        p->ack_flags = SLABMQ_ACK_CONFIRMED;
        p->seen |= OPT_CONFIRMED_ACK;
        return 0;
    case OPT_VAL_INTERVAL:
        if (number_option(p, OPT_INTERVAL, "--interval", arg, 10, TOP_INTERVAL_MAX_MS, &v))
            return CLI_EXIT_USAGE;
        p->interval_ms = (uint32_t)v;
        return 0;
    default:
        return usage_error(NULL, "unexpected option");
    }
}

/* Apply one of the queue settings of declare. Returns 0 or an exit code. */
static int
apply_queue_option(struct parsed *p, int opt, const char *arg)
{
    slabmq_queue_options *q = &p->queue;
    int v;

    switch (opt) {
    case OPT_VAL_VISIBILITY:
        if (parse_u32(arg, 1, UINT32_MAX, &q->visibility_ms))
            return usage_error(NULL, "invalid --visibility '%s': expected milliseconds >= 1",
                               arg);
        p->seen |= OPT_VISIBILITY;
        return 0;
    case OPT_VAL_MAX_MESSAGES:
        if (parse_u64(arg, 1, UINT64_MAX, &q->max_messages))
            return usage_error(NULL, "invalid --max-messages '%s': expected a count of at "
                                     "least 1", arg);
        p->seen |= OPT_MAX_MESSAGES;
        return 0;
    case OPT_VAL_MAX_BYTES:
        if (smq_parse_size(arg, &q->max_bytes) || q->max_bytes == 0)
            return usage_error(NULL, "invalid --max-bytes '%s': expected a size of at least "
                                     "1 byte, such as 65536, 64KiB or 10MB", arg);
        p->seen |= OPT_MAX_BYTES;
        return 0;
    case OPT_VAL_OVERFLOW: /* the API's values are the table's indexes + 1 */
        v = smq_setting_value(SMQ_SET_OVERFLOW, arg, (uint32_t)strlen(arg));
        if (v < 0)
            return usage_error(NULL, "invalid --overflow '%s': expected reject, drop-oldest or "
                                     "dead-letter", arg);
        q->overflow = (slabmq_overflow)(v + 1);
        p->seen |= OPT_OVERFLOW;
        return 0;
    case OPT_VAL_MAX_DELIVERIES:
        if (number_option(p, OPT_MAX_DELIVERIES, "--max-deliveries", arg, 0, SMQ_MAX_DELIVERIES_MAX,
                          &q->max_deliveries))
            return CLI_EXIT_USAGE;
        if (q->max_deliveries == 0)
            q->max_deliveries = SLABMQ_NO_LIMIT; /* 0 on the command line: unlimited */
        return 0;
    case OPT_VAL_DEAD_LETTER:
        if (*arg && !valid_queue_name(arg))
            return usage_error(NULL, "invalid --dead-letter '%s': expected a queue name, or "
                                     "\"\" for none", arg);
        q->dead_letter = arg;
        p->seen |= OPT_DEAD_LETTER;
        return 0;
    case OPT_VAL_DEDUP:
        if (smq_parse_size(arg, &q->dedup_window) || q->dedup_window > SMQ_DEDUP_WINDOW_MAX
            || (q->dedup_window > 0 && q->dedup_window < SMQ_DEDUP_WINDOW_MIN))
            return usage_error(NULL, "invalid --dedup-window '%s': expected a size from 1KiB "
                                     "to 64MiB, such as 1MiB; 0 turns de-duplication off", arg);
        if (q->dedup_window == 0)
            q->dedup_window = SLABMQ_DEDUP_OFF;
        p->seen |= OPT_DEDUP;
        return 0;
    case OPT_VAL_DURABLE:
        if (strcmp(arg, "yes") == 0)
            q->durable = SLABMQ_DURABLE_YES;
        else if (strcmp(arg, "no") == 0)
            q->durable = SLABMQ_DURABLE_NO;
        else
            return usage_error(NULL, "invalid --durable '%s': expected yes or no", arg);
        p->seen |= OPT_DURABLE;
        return 0;
    case OPT_VAL_CONFIRM:
        v = smq_setting_value(SMQ_SET_CONFIRM, arg, (uint32_t)strlen(arg));
        if (v < 0)
            return usage_error(NULL, "invalid --confirm '%s': expected memory, written or "
                                     "synced", arg);
        q->confirm = (slabmq_confirm_level)(v + 1);
        p->pub.confirm = q->confirm;
        p->seen |= OPT_CONFIRM;
        return 0;
    case OPT_VAL_BACKOFF:
    case OPT_VAL_BACKOFF_MAX: {
        uint32_t *field =
            opt == OPT_VAL_BACKOFF ? &q->retry_backoff_ms : &q->retry_backoff_max_ms;
        if (parse_u32(arg, opt == OPT_VAL_BACKOFF ? 0 : 1, 604800000, field))
            return usage_error(NULL, "invalid %s '%s': expected milliseconds up to a week",
                               opt == OPT_VAL_BACKOFF ? "--backoff" : "--backoff-max", arg);
        if (opt == OPT_VAL_BACKOFF && *field == 0)
            *field = SLABMQ_NO_BACKOFF; /* 0 on the command line: turn it off */
        p->seen |= OPT_BACKOFF;
        return 0;
    }
    default:
        return apply_message_option(p, opt, arg);
    }
}

/* Apply one option from getopt_long. Returns 0 or an exit code. */
static int
apply_option(struct parsed *p, int opt, const char *arg)
{
    uint32_t v;

    switch (opt) {
    case 's':
        p->server = arg;
        return 0;
    case OPT_VAL_CREDENTIALS:
        p->credentials = arg;
        return 0;
    case OPT_VAL_TLS:
    case OPT_VAL_TLS_CA:
    case OPT_VAL_TLS_CERT:
    case OPT_VAL_TLS_KEY:
    case OPT_VAL_TLS_NAME:
    case OPT_VAL_TLS_INSECURE:
        p->tls = 1; /* every --tls-* option implies --tls */
        if (opt == OPT_VAL_TLS_CA)
            p->tlso.ca_file = arg;
        else if (opt == OPT_VAL_TLS_CERT)
            p->tlso.cert_file = arg;
        else if (opt == OPT_VAL_TLS_KEY)
            p->tlso.key_file = arg;
        else if (opt == OPT_VAL_TLS_NAME)
            p->tlso.server_name = arg;
        else if (opt == OPT_VAL_TLS_INSECURE)
            p->tlso.insecure = 1;
        return 0;
    case 'j':
        p->json = 1;
        return 0;
    case 'h':
        p->help = 1;
        return 0;
    case 'V':
        p->version = 1;
        return 0;
    case 't':
        if (parse_u32(arg, 0, INT32_MAX, &v))
            return usage_error(NULL, "invalid --timeout '%s': expected milliseconds", arg);
        p->timeout_ms = (int)v;
        return 0;
    case 'n':
        if (parse_u32(arg, 1, UINT32_MAX, &p->count))
            return usage_error(NULL, "invalid -n '%s': expected a count of at least 1", arg);
        p->seen |= OPT_COUNT;
        return 0;
    case 'w':
        if (parse_u32(arg, 0, SMQ_WAIT_MAX_MS, &p->wait_ms))
            return usage_error(NULL, "invalid --wait '%s': expected 0-%u ms", arg, SMQ_WAIT_MAX_MS);
        p->seen |= OPT_WAIT;
        return 0;
    default:
        return apply_queue_option(p, opt, arg);
    }
}

/* Name the option getopt_long just refused: the word for a long option, else the letter
 * (which may sit inside a group such as -jx). */
static int
bad_option(int opt, char **argv)
{
    const char *what = opt == ':' ? "option needs a value" : "bad option";
    const char *word = argv[optind - 1];

    if (optopt > 0 && optopt < 256 && strncmp(word, "--", 2) != 0)
        return usage_error(NULL, "%s: '-%c'", what, optopt);
    return usage_error(NULL, "%s: '%s'", what, word);
}

static int
parse_options(int argc, char **argv, struct parsed *p)
{
    static const struct option longs[] = {{"server", required_argument, NULL, 's'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {"version", no_argument, NULL, 'V'},
                                          {"count", required_argument, NULL, 'n'},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"visibility", required_argument, NULL,
                                           OPT_VAL_VISIBILITY},
                                          {"max-messages", required_argument, NULL,
                                           OPT_VAL_MAX_MESSAGES},
                                          {"max-length", required_argument, NULL,
                                           OPT_VAL_MAX_MESSAGES},
                                          {"max-deliveries", required_argument, NULL,
                                           OPT_VAL_MAX_DELIVERIES},
                                          {"dead-letter", required_argument, NULL,
                                           OPT_VAL_DEAD_LETTER},
                                          {"ttl", required_argument, NULL, OPT_VAL_TTL},
                                          {"dedup-window", required_argument, NULL,
                                           OPT_VAL_DEDUP},
                                          {"delay", required_argument, NULL, OPT_VAL_DELAY},
                                          {"at", required_argument, NULL, OPT_VAL_AT},
                                          {"priority", required_argument, NULL,
                                           OPT_VAL_PRIORITY},
                                          {"id", required_argument, NULL, OPT_VAL_ID},
                                          {"skip", required_argument, NULL, OPT_VAL_SKIP},
                                          {"interval", required_argument, NULL,
                                           OPT_VAL_INTERVAL},
                                          {"credit", required_argument, NULL, OPT_VAL_CREDIT},
                                          {"confirmed-ack", no_argument, NULL,
                                           OPT_VAL_CONFIRMED_ACK},
                                          {"durable", required_argument, NULL,
                                           OPT_VAL_DURABLE},
                                          {"confirm", required_argument, NULL,
                                           OPT_VAL_CONFIRM},
                                          {"credentials", required_argument, NULL,
                                           OPT_VAL_CREDENTIALS},
                                          {"tls", no_argument, NULL, OPT_VAL_TLS},
                                          {"tls-ca", required_argument, NULL, OPT_VAL_TLS_CA},
                                          {"tls-cert", required_argument, NULL,
                                           OPT_VAL_TLS_CERT},
                                          {"tls-key", required_argument, NULL, OPT_VAL_TLS_KEY},
                                          {"tls-server-name", required_argument, NULL,
                                           OPT_VAL_TLS_NAME},
                                          {"tls-insecure", no_argument, NULL,
                                           OPT_VAL_TLS_INSECURE},
                                          {"max-bytes", required_argument, NULL,
                                           OPT_VAL_MAX_BYTES},
                                          {"overflow", required_argument, NULL,
                                           OPT_VAL_OVERFLOW},
                                          {"backoff", required_argument, NULL, OPT_VAL_BACKOFF},
                                          {"backoff-max", required_argument, NULL,
                                           OPT_VAL_BACKOFF_MAX},
                                          {NULL, 0, NULL, 0}};
    int opt;
    int rc;

    memset(p, 0, sizeof(*p));
    p->timeout_ms = DEFAULT_TIMEOUT_MS;
    opterr = 0; /* our own messages, prefixed "slabmq: " whatever argv[0] is */
    while ((opt = getopt_long(argc, argv, ":s:t:jhVn:w:", longs, NULL)) != -1) {
        if (opt == '?' || opt == ':')
            return bad_option(opt, argv);
        rc = apply_option(p, opt, optarg);
        if (rc)
            return rc;
    }
    p->args = argv + optind;
    p->nargs = argc - optind;
    return 0;
}

/* The name of the first of the command-specific options in stray. */
static const char *
stray_option(unsigned stray)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{OPT_COUNT, "-n/--count"},
                 {OPT_WAIT, "--wait"},
                 {OPT_VISIBILITY, "--visibility"},
                 {OPT_MAX_MESSAGES, "--max-messages"},
                 {OPT_MAX_BYTES, "--max-bytes"},
                 {OPT_OVERFLOW, "--overflow"},
                 {OPT_BACKOFF, "--backoff/--backoff-max"},
                 {OPT_MAX_DELIVERIES, "--max-deliveries"},
                 {OPT_DEAD_LETTER, "--dead-letter"},
                 {OPT_TTL, "--ttl"},
                 {OPT_DEDUP, "--dedup-window"},
                 {OPT_DELAY, "--delay"},
                 {OPT_AT, "--at"},
                 {OPT_PRIORITY, "--priority"},
                 {OPT_ID, "--id"},
                 {OPT_SKIP, "--skip"},
                 {OPT_CREDIT, "--credit"},
                 {OPT_DURABLE, "--durable"},
                 {OPT_CONFIRM, "--confirm"},
                 {OPT_CONFIRMED_ACK, "--confirmed-ack"}};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (stray & names[i].bit)
            return names[i].name;
    return "that option";
}

/* Everything about the command line that can be checked without the broker. */
static int
check_command(const struct command *cmd, const struct parsed *p)
{
    int n = p->nargs - 1;
    unsigned stray = p->seen & ~cmd->opts;

    if (stray)
        return usage_error(cmd, "%s does not take %s", cmd->name, stray_option(stray));
    if (n < cmd->min_args && cmd->min_args > 1)
        return usage_error(cmd, "%s needs %d queue names", cmd->name, cmd->min_args);
    if (n < cmd->min_args)
        return usage_error(cmd, "%s needs a queue name", cmd->name);
    if (n > cmd->max_args)
        return usage_error(cmd, "unexpected argument '%s' for %s", p->args[cmd->max_args + 1],
                           cmd->name);
    if (n > 0 && !valid_queue_name(p->args[1]))
        return usage_error(cmd, "invalid queue name '%s': 1-%d bytes of " SMQ_NAME_RULE,
                           p->args[1], SMQ_NAME_MAX);
    if ((p->seen & OPT_COUNT) && p->count > cmd->max_count)
        return usage_error(cmd, "-n must be at most %u for %s", cmd->max_count, cmd->name);
    return cmd->check ? cmd->check(cmd, p) : 0;
}

/* publish: a producer id names one message, given on the command line. */
static int
check_publish(const struct command *cmd, const struct parsed *p)
{
    if ((p->seen & OPT_ID) && (p->nargs < 3 || strcmp(p->args[2], "-") == 0))
        return usage_error(cmd, "--id names one message: give it as MESSAGE, not on stdin");
    return 0;
}

/* move: a second queue name, not the first. */
static int
check_move(const struct command *cmd, const struct parsed *p)
{
    if (!valid_queue_name(p->args[2]))
        return usage_error(cmd, "invalid queue name '%s': 1-%d bytes of " SMQ_NAME_RULE,
                           p->args[2], SMQ_NAME_MAX);
    if (strcmp(p->args[1], p->args[2]) == 0)
        return usage_error(cmd, "move needs two different queues");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Connecting and running                                                                    */

/* Split "HOST:PORT", "[IPV6]:PORT", "[IPV6]", "HOST" or ":PORT" into host and port; a bare
 * address with several colons is an IPv6 host. 0 or -1. */
static int
split_server(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hlen;
    uint32_t v = SLABMQ_DEFAULT_PORT;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] && close[1] != ':'))
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close[1] ? close + 1 : NULL;
    } else if (colon && strchr(s, ':') != colon) {
        hlen = strlen(s);
        colon = NULL;
    } else {
        hlen = colon ? (size_t)(colon - s) : strlen(s);
    }
    if (colon && parse_u32(colon + 1, 1, 65535, &v))
        return -1;
    if (hlen >= hostlen || (hlen == 0 && s[0] == '['))
        return -1;
    if (hlen == 0)
        snprintf(host, hostlen, "127.0.0.1");
    else
        snprintf(host, hostlen, "%.*s", (int)hlen, h);
    *port = (uint16_t)v;
    return 0;
}

/* Read USER:PASSWORD from the first line of the file at path (blank lines and lines starting
 * with '#' skipped) into buf, pointing *user and *pw into it. 0, or an exit code after saying
 * why. */
static int
read_credentials(const char *path, char *buf, size_t len, const char **user, const char **pw)
{
    FILE *f = fopen(path, "r");
    char *colon = NULL;

    if (!f) {
        cli_out_error("cannot read credentials from %s: %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    while (fgets(buf, (int)len, f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (buf[0] && buf[0] != '#') {
            colon = strchr(buf, ':');
            break;
        }
    }
    (void)fclose(f); /* read only: nothing to lose */
    if (!colon || colon == buf) {
        cli_out_error("no USER:PASSWORD line in %s", path);
        return CLI_EXIT_USAGE;
    }
    *colon = '\0';
    *user = buf;
    *pw = colon + 1;
    return 0;
}

/* Connect to the broker named by -s or $SLABMQ_SERVER. *out is closed by the caller. */
static int
connect_broker(const struct parsed *p, char *server, size_t len, slabmq_client **out)
{
    const char *addr = p->server ? p->server : getenv("SLABMQ_SERVER");
    const char *cred = p->credentials ? p->credentials : getenv("SLABMQ_CREDENTIALS");
    slabmq_options o = SLABMQ_OPTIONS_INIT;
    slabmq_tls_options tls = p->tlso;
    char host[256];
    char err[512] = "";
    char secret[1200];
    slabmq_status st;

    if (addr && *addr && split_server(addr, host, sizeof(host), &o.port))
        return usage_error(NULL, "invalid %s '%s': expected HOST:PORT",
                           p->server ? "--server" : "SLABMQ_SERVER", addr);
    if (cred && *cred && read_credentials(cred, secret, sizeof(secret), &o.user, &o.password))
        return CLI_EXIT_USAGE;
    o.host = addr && *addr ? host : "127.0.0.1";
    o.timeout_ms = p->timeout_ms;
    o.client_name = "slabmq-cli";
    const char *env_tls = getenv("SLABMQ_TLS");

    if (p->tls || (env_tls && strcmp(env_tls, "1") == 0)
        || getenv("SLABMQ_TLS_CA")) { /* the environment fills what no option gave */
        if (!tls.ca_file)
            tls.ca_file = getenv("SLABMQ_TLS_CA");
        if (!tls.cert_file)
            tls.cert_file = getenv("SLABMQ_TLS_CERT");
        if (!tls.key_file)
            tls.key_file = getenv("SLABMQ_TLS_KEY");
        o.tls = &tls;
    }
    snprintf(server, len, strchr(o.host, ':') ? "[%s]:%u" : "%s:%u", o.host, o.port);
    st = slabmq_client_connect_errbuf(&o, out, err, sizeof(err));
    memset(secret, 0, sizeof(secret));
    if (st == SLABMQ_OK)
        return 0;
    if (strncmp(err, "cannot connect", 14) == 0)
        cli_out_error("%s (is slabmqd running?)", err);
    else if (st == SLABMQ_ERR_TLS || st == SLABMQ_ERR_CLOSED || st == SLABMQ_ERR_IO)
        cli_out_error("cannot connect to %s: %s%s", server, err,
                      o.tls ? "" : " (a TLS port? then add --tls)");
    else if (strncmp(err, "cannot ", 7) == 0)
        cli_out_error("%s", err);
    else
        cli_out_error("cannot connect to %s: %s", server, err[0] ? err : slabmq_strerror(st));
    return st == SLABMQ_ERR_CONNECT ? CLI_EXIT_CONN : cli_out_exit_code(st);
}

static int
run_command(const struct command *cmd, const struct parsed *p)
{
    char server[300];
    struct cli cli = {0};
    int rc = connect_broker(p, server, sizeof(server), &cli.c);

    if (rc)
        return rc;
    cli.server = server;
    cli.args = p->args + 1;
    cli.nargs = p->nargs - 1;
    cli.json = p->json;
    cli.count = p->count;
    cli.wait_ms = p->wait_ms;
    cli.waits = (p->seen & OPT_WAIT) != 0;
    cli.queue = p->queue;
    cli.pub = p->pub;
    cli.skip = p->skip;
    cli.credit = p->credit;
    cli.interval_ms = p->interval_ms ? p->interval_ms : TOP_INTERVAL_DEFAULT_MS;
    cli.ack_flags = p->ack_flags;
    if (p->seen & OPT_TTL) { /* 0: declare removes the queue's TTL, publish uses it */
        cli.queue.ttl_ms = p->ttl_ms ? p->ttl_ms : SLABMQ_NO_TTL;
        cli.pub.ttl_ms = p->ttl_ms;
    }
    rc = cmd->run(&cli);
    slabmq_client_close(cli.c);
    return rc;
}

/* Flush stdout and turn a failed write (full disk, closed pipe) into exit status 1, unless
 * the command already failed and said why: one error line is enough. */
static int
finish_output(int rc)
{
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == CLI_EXIT_OK) {
        cli_out_error("cannot write output: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return rc;
}

int
main(int argc, char **argv)
{
    struct parsed p;
    const struct command *cmd;
    int rc = parse_options(argc, argv, &p);

    if (rc)
        return rc;
    if (p.version) {
        printf("slabmq %s (protocol %d)\n", SLABMQ_VERSION_STRING, SLABMQ_PROTOCOL_VERSION);
        return finish_output(CLI_EXIT_OK);
    }
    if (p.nargs == 0)
        return p.help ? finish_output(print_help(NULL)) : usage_error(NULL, "missing command");
    if (strcmp(p.args[0], "help") == 0)
        return finish_output(run_help(&p));
    cmd = find_command(p.args[0]);
    if (!cmd)
        return usage_error(NULL, "unknown command '%s'", p.args[0]);
    if (p.help)
        return finish_output(print_help(cmd));
    rc = check_command(cmd, &p);
    return rc ? rc : finish_output(run_command(cmd, &p));
}
