/* SPDX-License-Identifier: MIT */
/* Flags and the --config file; see config.h. One table of long options (opts) serves both:
 * a file key is a long flag without "--", and apply() checks a value the same way wherever
 * it came from, so a new flag is a file key too. Order: --config is found first, the file
 * applied, then every flag over it; reload.c runs the same parse again on SIGHUP. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "net/http.h"
#include "codec.h"
#include "util/log.h"
#include "net/server.h"
#include "slabmq_protocol.h"
#include "store/store.h"
#include "net/tls.h"

#define MIN_MEMORY ((uint64_t)16 << 20)
#define MAX_MESSAGE_CEILING ((uint64_t)256 << 20)

static const char usage[] =
    "usage: slabmqd [options]\n"
    "\n"
    "  --bind ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 TCP port (default 7654; 0 picks a free one; off: no plain\n"
    "                           listener, TLS only)\n"
    "  --max-memory SIZE        cap on memory that grows with traffic (default 1GiB)\n"
    "  --max-message-size SIZE  largest message accepted (default 1MiB, at most 256MiB)\n"
    "  --visibility-ms MS       default redelivery timeout of new queues (default 30000)\n"
    "  --max-connections N      connections served at once (default 10000)\n"
    "  --max-inflight N         unacked messages one connection may hold (default 10000)\n"
    "  --frame-timeout MS       a frame once started must arrive within MS (default 30000)\n"
    "  --auth-file PATH         users, password hashes and permissions (docs/security.md);\n"
    "                           also $SLABMQ_AUTH_FILE. Without either: no authentication\n"
    "  --hash-password[=N]      read a password from stdin, print its hash for the auth\n"
    "                           file (N PBKDF2 iterations, default 10000) and exit\n"
    "  --handshake-timeout MS   close a connection that has not done HELLO (and AUTH)\n"
    "                           within MS of connecting (default 10000)\n"
    "  --idle-timeout MS        close a connection that sends nothing for MS and has no\n"
    "                           waiting FETCH, subscription or unacked message (default 0:\n"
    "                           never)\n"
    "  --tcp-keepalive S        TCP keepalive on client connections: probes after S seconds\n"
    "                           without traffic, every S/6 s, 6 of them (default 60;\n"
    "                           0: off)\n"
    "  --reservoir-capacity N   idle I/O buffers kept for reuse per size class; 0 (the\n"
    "                           default) keeps 120% of the most ever in use at once\n"
    "  --durability MODE        none (the default: in memory only) or sqlite: queues are\n"
    "                           durable unless declared not, kept in DIR/slabmq.db\n"
    "  --data-dir DIR           where --durability sqlite keeps its database\n"
    "                           (default ./slabmq-data)\n"
    "                           Its write ring comes out of --max-memory: an eighth of it,\n"
    "                           at most 64MiB, at least 3 x --max-message-size, never more\n"
    "                           than a quarter (so --max-memory must be over 12 x\n"
    "                           --max-message-size). Left for messages: 87.5% of the limit\n"
    "                           or more (at least 75% with messages over a 24th of it)\n"
    "  --ignore-corrupt-data    start even if the database fails its integrity check: it is\n"
    "                           renamed aside and the broker starts empty\n"
    "  --tls-port N             also accept TLS connections on port N of --bind (0 picks\n"
    "                           a free one; the broker prints 'tls on ADDR:PORT').\n"
    "                           Default: no TLS (docs/security.md)\n"
    "  --tls-cert FILE          the broker's certificate chain, PEM (with --tls-port)\n"
    "  --tls-key FILE           its private key, PEM\n"
    "  --tls-ca FILE            require client certificates signed by this CA (PEM)\n"
    "  --tls-min-version V      1.2 (the default) or 1.3\n"
    "                           SIGHUP re-reads the certificate, key and CA files\n"
    "  --http ADDR:PORT         serve /metrics (Prometheus), /api/stats and a live\n"
    "                           dashboard at / over HTTP; PORT alone listens on 127.0.0.1\n"
    "                           (docs/metrics.md). Default: off\n"
    "  --log-level LEVEL        debug, info, warn or error (default info)\n"
    "  --log-format FORMAT      logfmt (the default) or json: one object per line\n"
    "  --shutdown-timeout MS    on SIGTERM, how long replies may take to drain before the\n"
    "                           connections are closed (default 5000; 0: at once)\n"
    "  --config FILE            read settings from FILE: 'key = value' lines, a key for\n"
    "                           every long flag above; flags given too override it.\n"
    "                           SIGHUP re-reads it (docs/operations.md)\n"
    "  --check-config           check the file and the flags, print a verdict, exit 0 or 1\n"
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

/* Where a setting came from: the command line (file NULL) or FILE:LINE of --config. */
struct origin {
    const char *file;
    unsigned line;
};

static int
bad(const struct origin *o, const char *flag, const char *value, const char *why)
{
    if (o && o->file)
        fprintf(stderr, "slabmqd: %s:%u: invalid %s '%s': %s\n", o->file, o->line, flag + 2,
                value ? value : "", why);
    else
        fprintf(stderr, "slabmqd: invalid %s '%s': %s (see --help)\n", flag, value ? value : "",
                why);
    return -1;
}

/* Index of s in names[0..n-1], or -1. */
static int
lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int
parse_bool(const char *s)
{
    static const char *const names[] = {"false", "true", "no", "yes", "off", "on", "0", "1"};
    int i = lookup(s, names, 8);

    return i < 0 ? -1 : i % 2;
}

/* --hash-password[=N]: print the hash of the password on stdin (never one on the command
 * line, where other users see it) and exit. */
static enum config_result
hash_password(const char *arg)
{
    uint64_t v = 0;

    if (arg && parse_uint(arg, AUTH_MIN_ITERATIONS, AUTH_MAX_ITERATIONS, &v)) {
        bad(NULL, "--hash-password", arg, "expected 1000 to 1000000 iterations");
        return CONFIG_ERROR;
    }
    return auth_hash_cli(stdin, stdout, (unsigned)v) ? CONFIG_ERROR : CONFIG_EXIT;
}

/* Apply one option from o; returns 0 or -1 after printing why. */
static int
apply(struct server_config *c, const struct origin *o, int opt, const char *arg)
{
    uint64_t v;
    int i;

    switch (opt) {
    case 'b':
        if (strlen(arg) >= sizeof(c->bind))
            return bad(o, "--bind", arg, "too long");
        snprintf(c->bind, sizeof(c->bind), "%s", arg);
        return 0;
    case 'p':
        c->plain = strcmp(arg, "off") != 0;
        if (!c->plain)
            return 0;
        if (parse_uint(arg, 0, 65535, &v))
            return bad(o, "--port", arg, "expected 0-65535, or off");
        c->port = (int)v;
        return 0;
    case 't':
        if (parse_uint(arg, 0, 65535, &v))
            return bad(o, "--tls-port", arg, "expected 0-65535");
        c->tls_port = (int)v;
        return 0;
    case 'e':
    case 'k':
    case 'a': {
        char *dst = opt == 'e' ? c->tls_cert : opt == 'k' ? c->tls_key : c->tls_ca;
        const char *flag = opt == 'e' ? "--tls-cert" : opt == 'k' ? "--tls-key" : "--tls-ca";
        if (!*arg || strlen(arg) >= sizeof(c->tls_cert))
            return bad(o, flag, arg, "expected a file path");
        snprintf(dst, sizeof(c->tls_cert), "%s", arg);
        return 0;
    }
    case 'M':
        if (strcmp(arg, "1.2") != 0 && strcmp(arg, "1.3") != 0)
            return bad(o, "--tls-min-version", arg, "expected 1.2 or 1.3");
        c->tls_min_version = arg[2] == '3' ? 13 : 12;
        return 0;
    case 'm':
        if (smq_parse_size(arg, &v) || v < MIN_MEMORY)
            return bad(o, "--max-memory", arg, "expected a size of at least 16MiB");
        c->broker.max_memory = v;
        return 0;
    case 's':
        if (smq_parse_size(arg, &v) || v > MAX_MESSAGE_CEILING)
            return bad(o, "--max-message-size", arg, "expected a size up to 256MiB");
        c->broker.max_message_size = (uint32_t)v;
        return 0;
    case 'v':
        if (parse_uint(arg, 1, 7ull * 24 * 3600 * 1000, &v))
            return bad(o, "--visibility-ms", arg, "expected 1 ms to 7 days");
        c->broker.visibility_ms = (uint32_t)v;
        return 0;
    case 'c':
        if (parse_uint(arg, 1, 1000000, &v))
            return bad(o, "--max-connections", arg, "expected 1-1000000");
        c->max_connections = (uint32_t)v;
        return 0;
    case 'i':
        if (parse_uint(arg, 1, 10000000, &v))
            return bad(o, "--max-inflight", arg, "expected 1-10000000");
        c->broker.max_inflight = (uint32_t)v;
        return 0;
    case 'f':
        if (parse_uint(arg, 10, 3600000, &v))
            return bad(o, "--frame-timeout", arg, "expected 10 ms to an hour");
        c->frame_timeout_ms = (uint32_t)v;
        return 0;
    case 'A':
        if (!*arg || strlen(arg) >= sizeof(c->auth_path))
            return bad(o, "--auth-file", arg, "expected a path");
        if (o->file) { /* the file's text is gone after parsing: keep a copy */
            snprintf(c->auth_path, sizeof(c->auth_path), "%s", arg);
            arg = c->auth_path;
        }
        c->auth_file = arg;
        return 0;
    case 'T':
        if (parse_uint(arg, 10, 3600000, &v))
            return bad(o, "--handshake-timeout", arg, "expected 10 ms to an hour");
        c->handshake_timeout_ms = (uint32_t)v;
        return 0;
    case 'J':
        if (parse_uint(arg, 0, 7ull * 24 * 3600 * 1000, &v) || (v > 0 && v < 10))
            return bad(o, "--idle-timeout", arg, "expected 0 (never) or 10 ms to 7 days");
        c->idle_timeout_ms = (uint32_t)v;
        return 0;
    case 'E':
        if (parse_uint(arg, 0, 32767, &v))
            return bad(o, "--tcp-keepalive", arg, "expected 0 (off) or 1 to 32767 seconds");
        c->tcp_keepalive_s = (uint32_t)v;
        return 0;
    case 'r':
        if (parse_uint(arg, 0, 65536, &v))
            return bad(o, "--reservoir-capacity", arg, "expected 0-65536");
        c->broker.reservoir_capacity = (uint32_t)v;
        return 0;
    case 'D':
        if (strcmp(arg, "none") == 0)
            c->durability = 0;
        else if (strcmp(arg, "sqlite") == 0)
            c->durability = 1;
        else
            return bad(o, "--durability", arg, "expected none or sqlite");
        return 0;
    case 'd':
        if (strlen(arg) == 0 || strlen(arg) >= sizeof(c->data_dir))
            return bad(o, "--data-dir", arg, "expected a directory path");
        snprintf(c->data_dir, sizeof(c->data_dir), "%s", arg);
        return 0;
    case 'I':
        if (arg && (i = parse_bool(arg)) < 0)
            return bad(o, "--ignore-corrupt-data", arg, "expected true or false");
        c->ignore_corrupt = arg ? i : 1;
        return 0;
    case 'W': { /* --http */
        char host[80];
        int port;
        if (strlen(arg) >= sizeof(c->http) || http_parse_addr(arg, host, sizeof(host), &port))
            return bad(o, "--http", arg, "expected PORT or ADDR:PORT (a numeric address)");
        snprintf(c->http, sizeof(c->http), "%s", arg);
        return 0;
    }
    case 'l':
        if ((i = lookup(arg, log_level_names, 4)) < 0)
            return bad(o, "--log-level", arg, "expected debug, info, warn or error");
        c->log_level = i;
        return 0;
    case 'L':
        if ((i = lookup(arg, log_format_names, 2)) < 0)
            return bad(o, "--log-format", arg, "expected logfmt or json");
        c->log_format = i;
        return 0;
    case 'S':
        if (parse_uint(arg, 0, 3600000, &v))
            return bad(o, "--shutdown-timeout", arg, "expected 0 to 3600000 ms");
        c->shutdown_timeout_ms = (uint32_t)v;
        return 0;
    default:
        return -1;
    }
}

static const struct option opts[] = {{"bind", required_argument, NULL, 'b'},
                                     {"port", required_argument, NULL, 'p'},
                                     {"max-memory", required_argument, NULL, 'm'},
                                     {"max-message-size", required_argument, NULL, 's'},
                                     {"visibility-ms", required_argument, NULL, 'v'},
                                     {"max-connections", required_argument, NULL, 'c'},
                                     {"max-inflight", required_argument, NULL, 'i'},
                                     {"frame-timeout", required_argument, NULL, 'f'},
                                     {"auth-file", required_argument, NULL, 'A'},
                                     {"hash-password", optional_argument, NULL, 'H'},
                                     {"handshake-timeout", required_argument, NULL, 'T'},
                                     {"idle-timeout", required_argument, NULL, 'J'},
                                     {"tcp-keepalive", required_argument, NULL, 'E'},
                                     {"reservoir-capacity", required_argument, NULL, 'r'},
                                     {"log-level", required_argument, NULL, 'l'},
                                     {"log-format", required_argument, NULL, 'L'},
                                     {"shutdown-timeout", required_argument, NULL, 'S'},
                                     {"durability", required_argument, NULL, 'D'},
                                     {"data-dir", required_argument, NULL, 'd'},
                                     {"ignore-corrupt-data", no_argument, NULL, 'I'},
                                     {"http", required_argument, NULL, 'W'},
                                     {"tls-port", required_argument, NULL, 't'},
                                     {"tls-cert", required_argument, NULL, 'e'},
                                     {"tls-key", required_argument, NULL, 'k'},
                                     {"tls-ca", required_argument, NULL, 'a'},
                                     {"tls-min-version", required_argument, NULL, 'M'},
                                     {"config", required_argument, NULL, 'C'},
                                     {"check-config", no_argument, NULL, 'K'},
                                     {"help", no_argument, NULL, 'h'},
                                     {"version", no_argument, NULL, 'V'},
                                     {NULL, 0, NULL, 0}};

/* ---------------------------------------------------------------------------------------- */
/* The configuration file: "key = value" lines, keys are the long flags without "--"        */

/* Options that have no place in a file: they act once, or name the file itself. */
static int
file_key_ok(int val)
{
    return val != 'H' && val != 'C' && val != 'K' && val != 'h' && val != 'V';
}

static char *
trim(char *p)
{
    char *e;

    while (*p == ' ' || *p == '\t')
        p++;
    e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return p;
}

/* Split value text: a "quoted" value keeps everything inside the quotes; otherwise a '#'
 * after a space starts a comment. Returns the value or NULL for a bad quote. */
static char *
file_value(char *v)
{
    char *q;

    if (*v == '"') {
        q = strchr(v + 1, '"');
        if (!q || *trim(q + 1) != '\0')
            return NULL;
        *q = '\0';
        return v + 1;
    }
    for (q = v; *q; q++) {
        if (*q == '#' && q > v && (q[-1] == ' ' || q[-1] == '\t')) {
            *q = '\0';
            break;
        }
    }
    return trim(v);
}

/* Apply one "key = value" line; returns 0 or -1 after printing FILE:LINE and why. */
static int
file_line(struct server_config *c, const struct origin *o, char *line)
{
    char *eq = strchr(line, '=');
    char *key;
    char *val;

    if (!eq) {
        fprintf(stderr, "slabmqd: %s:%u: expected 'key = value'\n", o->file, o->line);
        return -1;
    }
    *eq = '\0';
    key = trim(line);
    val = file_value(trim(eq + 1));
    for (const struct option *op = opts; op->name; op++) {
        if (strcmp(op->name, key) != 0 || !file_key_ok(op->val))
            continue;
        if (!val) {
            fprintf(stderr, "slabmqd: %s:%u: %s: unterminated quote\n", o->file, o->line, key);
            return -1;
        }
        return apply(c, o, op->val, val);
    }
    fprintf(stderr, "slabmqd: %s:%u: unknown setting '%s'\n", o->file, o->line, key);
    return -1;
}

/* Read --config FILE into c; every line is checked, so one run reports every mistake. */
static int
read_file(struct server_config *c, const char *path)
{
    struct origin o = {path, 0};
    char line[2048];
    int rc = 0;
    FILE *f = fopen(path, "r");

    if (!f) {
        fprintf(stderr, "slabmqd: cannot read --config '%s': %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = trim(line);
        o.line++;
        if (*p == '\0' || *p == '#')
            continue;
        if (file_line(c, &o, p))
            rc = -1;
    }
    if (ferror(f)) {
        fprintf(stderr, "slabmqd: cannot read --config '%s': %s\n", path, strerror(errno));
        rc = -1;
    }
    (void)fclose(f); /* read only: nothing to lose */
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Command line                                                                              */

/* First pass: only --config and --check-config, so the file is read before the flags that
 * override it. Errors are left to the second pass. */
static int
find_config(struct server_config *c, int argc, char **argv)
{
    int opt;

    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
        if (opt == 'C') {
            if (!*optarg || strlen(optarg) >= sizeof(c->config_file))
                return bad(NULL, "--config", optarg, "expected a file path");
            snprintf(c->config_file, sizeof(c->config_file), "%s", optarg);
        } else if (opt == 'K') {
            c->check_config = 1;
        }
    }
    return 0;
}

/* Second pass: every other flag, over the file's values. */
static enum config_result
parse_flags(struct server_config *c, int argc, char **argv)
{
    const struct origin cmdline = {NULL, 0};
    int opt;

    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return CONFIG_EXIT;
        }
        if (opt == 'V') {
            printf("slabmqd %s (protocol %d)\n", SLABMQ_VERSION_STRING, SLABMQ_PROTOCOL_VERSION);
            return CONFIG_EXIT;
        }
        if (opt == 'H')
            return hash_password(optarg);
        if (opt == '?' || opt == ':') {
            fprintf(stderr, "slabmqd: %s option '%s' (see --help)\n",
                    opt == '?' ? "unknown" : "missing value for", argv[optind - 1]);
            return CONFIG_ERROR;
        }
        if (opt != 'C' && opt != 'K' && apply(c, &cmdline, opt, optarg))
            return CONFIG_ERROR;
    }
    if (optind < argc) {
        fprintf(stderr, "slabmqd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_RUN;
}

/* Checks across settings, after the file and the flags. */
static int
check_whole(struct server_config *c)
{
    const char *env = getenv("SLABMQ_AUTH_FILE");

    if (!c->auth_file && env && *env)
        c->auth_file = env;
    if ((uint64_t)c->broker.max_message_size * 4 > c->broker.max_memory) {
        fprintf(stderr, "slabmqd: --max-message-size must be at most a quarter of --max-memory\n");
        return -1;
    }
    if (c->durability) {
        char why[256];
        if (store_ring_check(c->broker.max_memory, c->broker.max_message_size, why,
                             sizeof(why))) {
            fprintf(stderr, "slabmqd: --durability sqlite: %s\n", why);
            return -1;
        }
    }
    if (c->tls_port >= 0 && (!c->tls_cert[0] || !c->tls_key[0])) {
        fprintf(stderr, "slabmqd: --tls-port needs --tls-cert and --tls-key\n");
        return -1;
    }
    if (c->tls_port < 0 && (c->tls_cert[0] || c->tls_key[0] || c->tls_ca[0])) {
        fprintf(stderr, "slabmqd: --tls-cert, --tls-key and --tls-ca need --tls-port\n");
        return -1;
    }
    if (!c->plain && c->tls_port < 0) {
        fprintf(stderr, "slabmqd: --port off leaves no listener: add --tls-port\n");
        return -1;
    }
    if (c->plain && c->tls_port == c->port && c->port != 0) {
        fprintf(stderr, "slabmqd: --tls-port and --port are both %d\n", c->port);
        return -1;
    }
    return 0;
}

/* --check-config: can the users file be read as well? One verdict line on stdout. */
static enum config_result
check_verdict(const struct server_config *c, int ok)
{
    char err[256] = "";
    char warn[256] = "";
    struct auth *a;

    if (ok && c->auth_file) {
        a = auth_load(c->auth_file, err, sizeof(err), warn, sizeof(warn));
        if (!a) {
            fprintf(stderr, "slabmqd: --auth-file: %s\n", err);
            ok = 0;
        }
        auth_free(a);
    }
    if (ok && c->tls_port >= 0) { /* the certificate, key and CA load and match */
        struct ssl_ctx_st *ctx = tls_context_new(c, err, sizeof(err));
        if (!ctx) {
            fprintf(stderr, "slabmqd: %s\n", err);
            ok = 0;
        }
        tls_context_free(ctx);
    }
    if (!ok) {
        printf("slabmqd: configuration %s is NOT valid\n",
               c->config_file[0] ? c->config_file : "(flags only)");
        return CONFIG_INVALID;
    }
    printf("slabmqd: configuration %s is valid\n",
           c->config_file[0] ? c->config_file : "(flags only)");
    return CONFIG_EXIT;
}

enum config_result
config_parse(struct server_config *c, int argc, char **argv)
{
    enum config_result r;
    int ok;

    c->argc = argc;
    c->argv = argv;
    if (find_config(c, argc, argv))
        return CONFIG_ERROR;
    ok = !c->config_file[0] || read_file(c, c->config_file) == 0;
    r = parse_flags(c, argc, argv);
    if (r == CONFIG_EXIT)
        return r;
    ok = ok && r == CONFIG_RUN && check_whole(c) == 0;
    if (c->check_config)
        return check_verdict(c, ok);
    return ok ? CONFIG_RUN : CONFIG_ERROR;
}
