/* SPDX-License-Identifier: MIT */
/* Configuration reload on SIGHUP; see reload.h. What can change at run time, and why:
 *   log-level, log-format    read by every log_write()
 *   max-connections          checked at each accept; open connections above it stay
 *   visibility-ms            copied into each queue when it is created: new queues only
 *   frame-timeout            read whenever a partial frame's deadline is checked or armed
 *   shutdown-timeout         read when SIGTERM arrives
 *   tls-cert, -key, -ca,     the TLS context is rebuilt from the files on every SIGHUP
 *   tls-min-version          (renewed in place or renamed) for new connections (tls.c)
 * Everything else is sized or opened once at start-up (the slab, the listener, the store,
 * the users file, the guard lists), so a changed value is logged as needing a restart. */
#include "reload.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "util/log.h"
#include "net/server.h"
#include "net/tls.h"

/* One setting: its key, and how to compare, apply and print it. */
enum kind {
    KIND_U32, /* a uint32_t */
    KIND_U64, /* a size_t or uint64_t */
    KIND_INT, /* an int */
    KIND_STR  /* a char array, or a const char * when 'ptr' */
};

struct setting {
    const char *key; /* as in the file and the flags */
    size_t off;      /* offset in struct server_config */
    enum kind kind;
    int ptr;         /* KIND_STR: a const char * field */
    int live;        /* can change while running */
};

#define CFG(f) offsetof(struct server_config, f)

static const struct setting settings[] = {
    {"log-level", CFG(log_level), KIND_INT, 0, 1},
    {"log-format", CFG(log_format), KIND_INT, 0, 1},
    {"max-connections", CFG(max_connections), KIND_U32, 0, 1},
    {"visibility-ms", CFG(broker.visibility_ms), KIND_U32, 0, 1},
    {"frame-timeout", CFG(frame_timeout_ms), KIND_U32, 0, 1},
    {"shutdown-timeout", CFG(shutdown_timeout_ms), KIND_U32, 0, 1},
    {"bind", CFG(bind), KIND_STR, 0, 0},
    {"port", CFG(port), KIND_INT, 0, 0},
    {"max-memory", CFG(broker.max_memory), KIND_U64, 0, 0},
    {"max-message-size", CFG(broker.max_message_size), KIND_U32, 0, 0},
    {"max-inflight", CFG(broker.max_inflight), KIND_U32, 0, 0},
    {"reservoir-capacity", CFG(broker.reservoir_capacity), KIND_U32, 0, 0},
    {"auth-file", CFG(auth_file), KIND_STR, 1, 0},
    {"handshake-timeout", CFG(handshake_timeout_ms), KIND_U32, 0, 0},
    {"idle-timeout", CFG(idle_timeout_ms), KIND_U32, 0, 0},
    {"tcp-keepalive", CFG(tcp_keepalive_s), KIND_U32, 0, 0},
    {"durability", CFG(durability), KIND_INT, 0, 0},
    {"data-dir", CFG(data_dir), KIND_STR, 0, 0},
    {"ignore-corrupt-data", CFG(ignore_corrupt), KIND_INT, 0, 0},
    {"http", CFG(http), KIND_STR, 0, 0},
    {"tls-port", CFG(tls_port), KIND_INT, 0, 0},
    {"port", CFG(plain), KIND_INT, 0, 0}, /* "off" */
};

static const char *
str_of(const struct server_config *c, const struct setting *st)
{
    const char *p = (const char *)c + st->off;

    if (st->ptr)
        p = *(const char *const *)(const void *)p;
    return p ? p : "";
}

static int
differs(const struct server_config *a, const struct server_config *b,
        const struct setting *st)
{
    const char *pa = (const char *)a + st->off;
    const char *pb = (const char *)b + st->off;

    switch (st->kind) {
    case KIND_U32:
        return memcmp(pa, pb, sizeof(uint32_t)) != 0;
    case KIND_U64:
        return memcmp(pa, pb, sizeof(size_t)) != 0;
    case KIND_INT:
        return memcmp(pa, pb, sizeof(int)) != 0;
    case KIND_STR:
        return strcmp(str_of(a, st), str_of(b, st)) != 0;
    }
    return 0;
}

/* Copy a live setting from 'from' into the running 'to'. */
static void
apply_live(struct server_config *to, const struct server_config *from,
           const struct setting *st)
{
    size_t n = st->kind == KIND_U32 ? sizeof(uint32_t)
             : st->kind == KIND_U64 ? sizeof(size_t) : sizeof(int);

    memcpy((char *)to + st->off, (const char *)from + st->off, n);
}

/* Append key to a comma-separated list in out (cap bytes). */
static void
add_name(char *out, size_t cap, const char *key)
{
    size_t n = strlen(out);

    if (n + strlen(key) + 3 < cap)
        snprintf(out + n, cap - n, "%s%s", n ? ", " : "", key);
}

/* Compare the re-read configuration with the running one and apply what can change. */
static void
apply_changes(struct server *s, const struct server_config *next)
{
    char applied[512] = "";
    char restart[512] = "";

    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        const struct setting *st = &settings[i];
        if (!differs(&s->cfg, next, st))
            continue;
        if (st->live) {
            apply_live(&s->cfg, next, st);
            add_name(applied, sizeof(applied), st->key);
        } else {
            add_name(restart, sizeof(restart), st->key);
        }
    }
    s->b.cfg.visibility_ms = s->cfg.broker.visibility_ms;
    log_threshold = (enum log_level)s->cfg.log_level;
    log_format = (enum log_format)s->cfg.log_format;
    log_info("reload: applied: %s; changed but need a restart: %s",
             applied[0] ? applied : "nothing", restart[0] ? restart : "nothing");
    if (restart[0])
        log_warn("reload: restart slabmqd to apply %s", restart);
}

void
reload_server(struct server *s)
{
    struct server_config next;

    log_info("SIGHUP: re-reading %s", s->cfg.config_file[0] ? s->cfg.config_file
                                                           : "the command line (no --config)");
    server_config_defaults(&next);
    if (config_parse(&next, s->cfg.argc, s->cfg.argv) != CONFIG_RUN) {
        log_error("reload: the configuration has mistakes (above); nothing changed");
        return;
    }
    apply_changes(s, &next);
    tls_reload(s, &next);
}
