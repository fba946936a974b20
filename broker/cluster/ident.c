/* SPDX-License-Identifier: MIT */
/* A cluster broker's data directory identity; see ident.h. */
#include "cluster/ident.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDENT_VERSION 1
#define IDENT_MAX_BYTES 1024
#define PATH_BYTES 4096

struct ident {
    char name[CFILE_NAME_MAX + 1];
    uint64_t digest;
    uint32_t node;
    uint32_t partitions;
    uint32_t replicas;
};

static int
exists(const char *dir, const char *name)
{
    char path[PATH_BYTES];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name); /* dir is short enough: ident_check */
    return stat(path, &st) == 0;
}

/* The value of line l if it is "key VALUE" with VALUE a number in base (the whole rest of
 * the line, at most max); 0 or -1. */
static int
field(const char *l, const char *key, int base, uint64_t max, uint64_t *v)
{
    size_t k = strlen(key);
    char *end;

    if (strncmp(l, key, k) != 0 || l[k] != ' ' || !isxdigit((unsigned char)l[k + 1]))
        return -1;
    errno = 0;
    *v = strtoull(l + k + 1, &end, base);
    return *end || errno || *v > max ? -1 : 0;
}

/* Parse the identity file's text; 0 or -1 (not an identity file of this version). */
static int
ident_parse(char *text, struct ident *id)
{
    uint64_t version = 0;
    uint64_t v;
    unsigned fields = 0; /* a bit each */
    char *save = NULL;

    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (field(l, "slabmq-cluster", 10, UINT32_MAX, &version) == 0) {
            fields |= 1;
        } else if (strncmp(l, "cluster ", 8) == 0 && strlen(l + 8) <= CFILE_NAME_MAX) {
            snprintf(id->name, sizeof(id->name), "%s", l + 8);
            fields |= 2;
        } else if (field(l, "digest", 16, UINT64_MAX, &id->digest) == 0) {
            fields |= 4;
        } else if (field(l, "node", 10, UINT32_MAX, &v) == 0) {
            id->node = (uint32_t)v;
            fields |= 8;
        } else if (field(l, "partitions", 10, UINT32_MAX, &v) == 0) {
            id->partitions = (uint32_t)v;
            fields |= 16;
        } else if (field(l, "replicas", 10, UINT32_MAX, &v) == 0) {
            id->replicas = (uint32_t)v;
            fields |= 32;
        } else {
            return -1;
        }
    }
    return version == IDENT_VERSION && fields == 63 ? 0 : -1;
}

static int
ident_read(const char *path, struct ident *id, char *err, size_t errlen)
{
    char buf[IDENT_MAX_BYTES + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    n = read(fd, buf, IDENT_MAX_BYTES);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    buf[n] = '\0';
    memset(id, 0, sizeof(*id));
    if (ident_parse(buf, id) != 0) {
        snprintf(err, errlen, "%s: not a slabmq cluster identity (version %d) file; it was "
                 "not written by this slabmqd: move it away only if the directory is not a "
                 "cluster broker's", path, IDENT_VERSION);
        return -1;
    }
    return 0;
}

/* Write the identity: a temporary file, fsync, rename, fsync the directory. */
static int
ident_write(const char *dir, const char *path, const struct cfile *cf, uint32_t node, char *err,
            size_t errlen)
{
    char tmp[PATH_BYTES + 8];
    char text[IDENT_MAX_BYTES];
    int len = snprintf(text, sizeof(text),
                       "slabmq-cluster %d\ncluster %s\ndigest %016" PRIx64 "\nnode %" PRIu32
                       "\npartitions %" PRIu32 "\nreplicas %" PRIu32 "\n",
                       IDENT_VERSION, cf->name, cf->digest, node, cf->partitions, cf->replicas);
    int fd;
    int dfd;
    int ok;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    close(dfd);
    return 0;
}

int
ident_check(const char *dir, const struct cfile *cf, uint32_t node, char *err, size_t errlen)
{
    char path[PATH_BYTES];
    struct ident id;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, IDENT_FILE);

    if (n < 0 || (size_t)n >= sizeof(path) - 16) { /* room for any name exists() builds */
        snprintf(err, errlen, "data directory path longer than %d bytes", PATH_BYTES - 32);
        return -1;
    }
    if (!exists(dir, IDENT_FILE)) {
        if (exists(dir, "slabmq.db")) {
            snprintf(err, errlen, "%s holds a single-node broker's store (slabmq.db): start "
                     "that broker without --cluster, or give this one another --data-dir",
                     dir);
            return -1;
        }
        return ident_write(dir, path, cf, node, err, errlen);
    }
    if (ident_read(path, &id, err, errlen) != 0)
        return -1;
    if (strcmp(id.name, cf->name) != 0) {
        snprintf(err, errlen, "%s belongs to cluster '%s', not '%s' (the cluster file's): "
                 "give this broker its own --data-dir", dir, id.name, cf->name);
        return -1;
    }
    if (id.node != node) {
        snprintf(err, errlen, "%s belongs to node %" PRIu32 " of cluster '%s', not node %" PRIu32
                 ": start it with --node %" PRIu32 ", or give node %" PRIu32 " its own "
                 "--data-dir (a wiped node rejoins under a new id)", dir, id.node, id.name,
                 node, id.node, node);
        return -1;
    }
    if (id.partitions != cf->partitions || id.replicas != cf->replicas) {
        snprintf(err, errlen, "%s was made with partitions %" PRIu32 " and replicas %" PRIu32
                 ", the cluster file says partitions %" PRIu32 " and replicas %" PRIu32
                 ": these are fixed when a cluster is made", dir, id.partitions, id.replicas,
                 cf->partitions, cf->replicas);
        return -1;
    }
    if (id.digest != cf->digest) {
        snprintf(err, errlen, "%s was made with another cluster file (digest %016" PRIx64
                 ", this one %016" PRIx64 "): every broker must be given the same file", dir,
                 id.digest, cf->digest);
        return -1;
    }
    return 0;
}
