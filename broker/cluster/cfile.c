/* SPDX-License-Identifier: MIT */
/* The cluster file; see cfile.h. */
#include "cluster/cfile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 8
#define LINE_MAX_BYTES 1024

struct parse {
    const char *path;
    unsigned line;
    char *err;
    size_t errlen;
    int seen_cluster;
    int seen_partitions;
    int seen_replicas;
};

__attribute__((format(printf, 2, 3))) static int
fail(struct parse *ps, const char *fmt, ...)
{
    va_list ap;
    int n = ps->line ? snprintf(ps->err, ps->errlen, "%s:%u: ", ps->path, ps->line)
                     : snprintf(ps->err, ps->errlen, "%s: ", ps->path);

    if (n < 0 || (size_t)n >= ps->errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A decimal in [lo, hi], the whole token. */
static int
number(const char *s, unsigned long lo, unsigned long hi, unsigned long *v)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *v = strtoul(s, &end, 10);
    return *end || errno || *v < lo || *v > hi ? -1 : 0;
}

/* "a.b.c.d:port", port 1-65535, into out (canonical: as inet_ntop writes it). */
static int
address(const char *s, char out[CFILE_ADDR_MAX])
{
    const char *colon = strrchr(s, ':');
    char ip[INET_ADDRSTRLEN];
    struct in_addr a;
    unsigned long port;

    if (!colon || (size_t)(colon - s) >= sizeof(ip) || colon == s)
        return -1;
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = '\0';
    if (inet_pton(AF_INET, ip, &a) != 1 || number(colon + 1, 1, 65535, &port) != 0
        || !inet_ntop(AF_INET, &a, ip, sizeof(ip)))
        return -1;
    snprintf(out, CFILE_ADDR_MAX, "%s:%lu", ip, port);
    return 0;
}

static int
name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CFILE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int
node_line(struct parse *ps, struct cfile *cf, char **tok, int ntok)
{
    struct cfile_node nd = {0};
    unsigned long id;
    int have_client = 0;
    int have_raft = 0;

    if (ntok < 2 || number(tok[1], 1, 65535, &id) != 0)
        return fail(ps, "node: expected 'node ID client=IP:PORT raft=IP:PORT' with ID 1-65535");
    nd.id = (uint32_t)id;
    for (int i = 2; i < ntok; i++) {
        if (strncmp(tok[i], "client=", 7) == 0 && !have_client) {
            if (address(tok[i] + 7, nd.client) != 0)
                return fail(ps, "node %lu: client address '%s' is not IPv4 a.b.c.d:port", id,
                            tok[i] + 7);
            have_client = 1;
        } else if (strncmp(tok[i], "raft=", 5) == 0 && !have_raft) {
            if (address(tok[i] + 5, nd.raft) != 0)
                return fail(ps, "node %lu: raft address '%s' is not IPv4 a.b.c.d:port", id,
                            tok[i] + 5);
            have_raft = 1;
        } else {
            return fail(ps, "node %lu: unexpected '%s' (each of client= and raft= once)", id,
                        tok[i]);
        }
    }
    if (!have_client || !have_raft)
        return fail(ps, "node %lu: needs both client=IP:PORT and raft=IP:PORT", id);
    for (unsigned i = 0; i < cf->nnodes; i++) {
        const struct cfile_node *o = &cf->nodes[i];
        if (o->id == nd.id)
            return fail(ps, "node %lu: listed twice", id);
        if (!strcmp(o->client, nd.client) || !strcmp(o->raft, nd.client)
            || !strcmp(o->client, nd.raft) || !strcmp(o->raft, nd.raft))
            return fail(ps, "node %lu: an address of node %u again: each address once", id,
                        o->id);
    }
    if (!strcmp(nd.client, nd.raft))
        return fail(ps, "node %lu: client and raft addresses must differ", id);
    if (cf->nnodes == CFILE_MAX_NODES)
        return fail(ps, "more than %d nodes", CFILE_MAX_NODES);
    cf->nodes[cf->nnodes++] = nd;
    return 0;
}

static int
line(struct parse *ps, struct cfile *cf, char *s)
{
    char *tok[MAX_TOKENS];
    int ntok = 0;
    char *hash = strchr(s, '#');
    char *save = NULL;
    unsigned long v;

    if (hash)
        *hash = '\0';
    for (char *t = strtok_r(s, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (ntok == MAX_TOKENS)
            return fail(ps, "too many words");
        tok[ntok++] = t;
    }
    if (ntok == 0)
        return 0;
    if (!strcmp(tok[0], "cluster")) {
        if (ps->seen_cluster++)
            return fail(ps, "cluster: given twice");
        if (ntok != 2 || !name_ok(tok[1]))
            return fail(ps, "cluster: expected one name of 1-%d of A-Z a-z 0-9 . _ -",
                        CFILE_NAME_MAX);
        snprintf(cf->name, sizeof(cf->name), "%s", tok[1]);
        return 0;
    }
    if (!strcmp(tok[0], "partitions")) {
        if (ps->seen_partitions++)
            return fail(ps, "partitions: given twice");
        if (ntok != 2 || number(tok[1], 1, 1024, &v) != 0)
            return fail(ps, "partitions: expected a number from 1 to 1024");
        cf->partitions = (uint32_t)v;
        return 0;
    }
    if (!strcmp(tok[0], "replicas")) {
        if (ps->seen_replicas++)
            return fail(ps, "replicas: given twice");
        if (ntok != 2 || number(tok[1], 1, 5, &v) != 0 || v % 2 == 0)
            return fail(ps, "replicas: expected 1, 3 or 5 (an odd number: a majority must "
                            "be able to outvote the rest)");
        cf->replicas = (uint32_t)v;
        return 0;
    }
    if (!strcmp(tok[0], "node"))
        return node_line(ps, cf, tok, ntok);
    return fail(ps, "unknown setting '%s' (cluster, partitions, replicas, node)", tok[0]);
}

static int
by_id(const void *a, const void *b)
{
    const struct cfile_node *x = a;
    const struct cfile_node *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}

/* FNV-1a 64, continued from h. */
static uint64_t
fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The digest of the canonical form: every setting, nodes by id. */
static uint64_t
digest(const struct cfile *cf)
{
    char buf[128];
    uint64_t h = 0xcbf29ce484222325ull;

    snprintf(buf, sizeof(buf), "cluster %s\npartitions %u\nreplicas %u\n", cf->name,
             cf->partitions, cf->replicas);
    h = fnv(h, buf);
    for (unsigned i = 0; i < cf->nnodes; i++) {
        snprintf(buf, sizeof(buf), "node %u client=%s raft=%s\n", cf->nodes[i].id,
                 cf->nodes[i].client, cf->nodes[i].raft);
        h = fnv(h, buf);
    }
    return h;
}

int
cfile_parse(const char *text, size_t len, const char *path, struct cfile *cf, char *err,
            size_t errlen)
{
    struct parse ps = {path, 0, err, errlen, 0, 0, 0};
    size_t at = 0;

    memset(cf, 0, sizeof(*cf));
    cf->partitions = CFILE_DEFAULT_PARTITIONS;
    cf->replicas = CFILE_DEFAULT_REPLICAS;
    while (at < len) {
        char buf[LINE_MAX_BYTES + 1];
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        ps.line++;
        if (n > LINE_MAX_BYTES)
            return fail(&ps, "line longer than %d bytes", LINE_MAX_BYTES);
        if (memchr(text + at, '\0', n))
            return fail(&ps, "a NUL byte: not a text file");
        memcpy(buf, text + at, n);
        buf[n] = '\0';
        if (line(&ps, cf, buf) != 0)
            return -1;
        at += n + (nl ? 1 : 0);
    }
    ps.line = 0;
    if (!ps.seen_cluster)
        return fail(&ps, "no 'cluster NAME' line");
    if (cf->nnodes == 0)
        return fail(&ps, "no 'node' lines");
    if (cf->replicas > cf->nnodes)
        return fail(&ps, "replicas %u but only %u node%s: list more nodes or set 'replicas 1'",
                    cf->replicas, cf->nnodes, cf->nnodes == 1 ? "" : "s");
    qsort(cf->nodes, cf->nnodes, sizeof(cf->nodes[0]), by_id);
    cf->digest = digest(cf);
    return 0;
}

int
cfile_load(const char *path, struct cfile *cf, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int rv;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(CFILE_MAX_BYTES + 1);
    if (!buf) {
        (void)fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    n = fread(buf, 1, CFILE_MAX_BYTES + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rv = -1;
    } else if (n > CFILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CFILE_MAX_BYTES);
        rv = -1;
    } else {
        rv = cfile_parse(buf, n, path, cf, err, errlen);
    }
    free(buf);
    (void)fclose(f); /* read only: nothing to lose */
    return rv;
}

const struct cfile_node *
cfile_node(const struct cfile *cf, uint32_t id)
{
    for (unsigned i = 0; i < cf->nnodes; i++)
        if (cf->nodes[i].id == id)
            return &cf->nodes[i];
    return NULL;
}
