/* SPDX-License-Identifier: MIT */
/* Fuzz target "cluster": the cluster file parser (broker/cluster/cfile.c), which reads a file
 * an operator wrote, and the queue-name-to-partition mapping (broker/cluster/slot.c).
 *
 * Input: the bytes of a cluster file. Checked:
 *   - a refusal says "c.conf" (and so where), never is empty, and fits its buffer;
 *   - an accepted file holds what docs/cluster.md promises: a name of the allowed alphabet,
 *     1 <= partitions <= 1024, replicas 1, 3 or 5 and at most the nodes, 1 to 64 nodes with
 *     ids 1-65535 rising (no repeat), every address "a.b.c.d:port" once; and its digest
 *     does not depend on the order of the lines (the file with its lines reversed gives the
 *     same cluster and digest);
 *   - the input as a queue name: its slot is below 1024 and its partition below P, and its
 *     key a prefix of it. */
#include <string.h>

#include "cluster/cfile.h"
#include "cluster/slot.h"
#include "fuzz.h"

static void
check_accepted(const struct cfile *cf)
{
    size_t n = strlen(cf->name);

    FUZZ_CHECK(n >= 1 && n <= CFILE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char ch = cf->name[i];
        FUZZ_CHECK((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                   || ch == '.' || ch == '_' || ch == '-');
    }
    FUZZ_CHECK(cf->partitions >= 1 && cf->partitions <= 1024);
    FUZZ_CHECK(cf->replicas == 1 || cf->replicas == 3 || cf->replicas == 5);
    FUZZ_CHECK(cf->nnodes >= 1 && cf->nnodes <= CFILE_MAX_NODES && cf->replicas <= cf->nnodes);
    for (unsigned i = 0; i < cf->nnodes; i++) {
        const struct cfile_node *a = &cf->nodes[i];
        FUZZ_CHECK(a->id >= 1 && a->id <= 65535);
        FUZZ_CHECK(i == 0 || cf->nodes[i - 1].id < a->id);
        FUZZ_CHECK(strchr(a->client, ':') && strchr(a->raft, ':') && strcmp(a->client, a->raft));
        for (unsigned j = 0; j < i; j++) {
            const struct cfile_node *b = &cf->nodes[j];
            FUZZ_CHECK(strcmp(a->client, b->client) && strcmp(a->client, b->raft)
                       && strcmp(a->raft, b->client) && strcmp(a->raft, b->raft));
        }
    }
}

/* The lines of data in reverse order (each keeping its bytes), into out. */
static size_t
reversed(const uint8_t *data, size_t size, uint8_t *out)
{
    size_t o = 0;
    size_t end = size;

    while (end > 0) {
        size_t start = end;
        while (start > 0 && data[start - 1] != '\n')
            start--;
        memcpy(out + o, data + start, end - start);
        o += end - start;
        out[o++] = '\n';
        end = start > 0 ? start - 1 : 0;
    }
    return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cfile cf;
    static struct cfile again;
    static uint8_t rev[CFILE_MAX_BYTES * 2 + 2];
    char err[256];
    size_t keylen;
    uint32_t slot;

    if (size > CFILE_MAX_BYTES)
        return 0;
    memset(err, 0, sizeof(err));
    if (cfile_parse((const char *)data, size, "c.conf", &cf, err, sizeof(err)) != 0) {
        FUZZ_CHECK(strncmp(err, "c.conf", 6) == 0 && strlen(err) > 8);
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    } else {
        check_accepted(&cf);
        /* no NUL inside lines was accepted, so reversing the lines is the same file */
        size_t n = reversed(data, size, rev);
        FUZZ_CHECK(cfile_parse((const char *)rev, n, "c.conf", &again, err, sizeof(err)) == 0);
        FUZZ_CHECK(again.digest == cf.digest && again.nnodes == cf.nnodes);
        FUZZ_CHECK(memcmp(again.nodes, cf.nodes, sizeof(cf.nodes[0]) * cf.nnodes) == 0);
    }
    slot = slot_of((const char *)data, size);
    FUZZ_CHECK(slot < SLOT_COUNT);
    FUZZ_CHECK(slot_partition(slot, 6) < 6 && slot_partition(slot, 1024) < 1024);
    slot_key((const char *)data, size, &keylen);
    FUZZ_CHECK(keylen <= size && (keylen > 0 || size == 0));
    return 0;
}
