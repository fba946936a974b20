/* SPDX-License-Identifier: MIT */
/* Cluster mode's configuration: the cluster file (cluster/cfile.c) and its digest, the queue
 * name to partition mapping (cluster/slot.c), and the data directory's identity
 * (cluster/ident.c), which refuses a directory of another node, cluster or shape and changes
 * nothing on disk when it does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cfile.h"
#include "cluster/ident.h"
#include "cluster/slot.h"
#include "t.h"

static const char EXAMPLE[] = "# three brokers\n"
                              "cluster prod-eu1\n"
                              "partitions 6\n"
                              "replicas 3\n"
                              "node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
                              "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481   # spare\n"
                              "node 3 raft=10.0.0.3:7481 client=10.0.0.3:7480\n";

static int
parse(const char *text, struct cfile *cf, char *err, size_t errlen)
{
    return cfile_parse(text, strlen(text), "c.conf", cf, err, errlen);
}

static void
test_parses_the_example(void)
{
    struct cfile cf;
    char err[256];

    T_EQ_INT(parse(EXAMPLE, &cf, err, sizeof(err)), 0);
    T_EQ_STR(cf.name, "prod-eu1");
    T_EQ_INT(cf.partitions, 6);
    T_EQ_INT(cf.replicas, 3);
    T_EQ_INT(cf.nnodes, 3);
    T_EQ_STR(cfile_node(&cf, 3)->client, "10.0.0.3:7480");
    T_EQ_STR(cfile_node(&cf, 2)->raft, "10.0.0.2:7481");
    T_ASSERT(cfile_node(&cf, 4) == NULL);
    /* the digest's definition is part of the format (docs/cluster.md shows this one): a
     * change would split clusters whose brokers run different versions */
    T_EQ_U64(cf.digest, 0xfaccfdbb23658ba6ull);
}

/* The digest is of the meaning: comments, spacing and line order do not change it; every
 * setting does. */
static void
test_digest_is_of_the_meaning(void)
{
    static const char same[] = "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n"
                               "replicas 3\n\n   cluster   prod-eu1 # the name\n"
                               "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
                               "node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
                               "partitions 6";
    static const char *const differ[] = {
        "cluster prod-eu2\nnode 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
        "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
        "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n",
        "cluster prod-eu1\npartitions 7\nnode 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
        "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
        "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n",
        "cluster prod-eu1\nreplicas 1\nnode 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
        "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
        "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n",
        "cluster prod-eu1\nnode 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
        "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
        "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7482\n",
        "cluster prod-eu1\nnode 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
        "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
        "node 4 client=10.0.0.3:7480 raft=10.0.0.3:7481\n",
    };
    struct cfile a;
    struct cfile b;
    char err[256];

    T_EQ_INT(parse(EXAMPLE, &a, err, sizeof(err)), 0);
    T_EQ_INT(parse(same, &b, err, sizeof(err)), 0);
    T_EQ_U64(a.digest, b.digest);
    for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
        T_EQ_INT(parse(differ[i], &b, err, sizeof(err)), 0);
        if (a.digest == b.digest)
            t_fail(__FILE__, __LINE__, "variant %zu has the example's digest", i);
    }
}

/* Each mistake gets the file, the line and what is wrong. */
static void
test_errors_name_file_and_line(void)
{
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\nreplicas 2\n",
         "c.conf:3: replicas: expected 1, 3 or 5"},
        {"cluster a b\n", "c.conf:1: cluster: expected one name"},
        {"cluster a/b\n", "c.conf:1: cluster: expected one name"},
        {"cluster a\ncluster b\n", "c.conf:2: cluster: given twice"},
        {"cluster a\npartitions 0\n", "c.conf:2: partitions: expected a number from 1 to 1024"},
        {"cluster a\npartitions 1025\n", "c.conf:2: partitions: expected"},
        {"cluster a\nnode 0 client=1.2.3.4:1 raft=1.2.3.4:2\n", "c.conf:2: node: expected"},
        {"cluster a\nnode 1 client=1.2.3:1 raft=1.2.3.4:2\n",
         "c.conf:2: node 1: client address '1.2.3:1' is not IPv4"},
        {"cluster a\nnode 1 client=1.2.3.4:0 raft=1.2.3.4:2\n", "is not IPv4 a.b.c.d:port"},
        {"cluster a\nnode 1 client=1.2.3.4:1\n", "c.conf:2: node 1: needs both"},
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:1\n", "must differ"},
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\n"
         "node 1 client=1.2.3.5:1 raft=1.2.3.5:2\n",
         "c.conf:3: node 1: listed twice"},
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\n"
         "node 2 client=1.2.3.5:1 raft=1.2.3.4:2\n",
         "c.conf:3: node 2: an address of node 1 again"},
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2 x=1\n", "unexpected 'x=1'"},
        {"cluster a\nshards 4\n", "c.conf:2: unknown setting 'shards'"},
        {"node 1 client=1.2.3.4:1 raft=1.2.3.4:2\n", "c.conf: no 'cluster NAME' line"},
        {"cluster a\n", "c.conf: no 'node' lines"},
        {"cluster a\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\n",
         "c.conf: replicas 3 but only 1 node: list more nodes or set 'replicas 1'"},
    };
    struct cfile cf;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        T_EQ_INT(parse(bad[i].text, &cf, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].want))
            t_fail(__FILE__, __LINE__, "case %zu: '%s' does not contain '%s'", i, err,
                   bad[i].want);
    }
    /* a NUL byte, and the load path's own errors */
    T_EQ_INT(cfile_parse("cluster a\0", 10, "c.conf", &cf, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "NUL") != NULL);
    T_EQ_INT(cfile_load("/nonexistent/c.conf", &cf, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "/nonexistent/c.conf: No such file") != NULL);
}

static void
test_slots(void)
{
    size_t k;
    unsigned per[6] = {0};
    unsigned slots_per[7] = {0};
    char name[32];

    T_EQ_INT(slot_crc16("123456789", 9), 0x31c3); /* CRC-16/XMODEM's check value */
    slot_key("orders.dlq", 10, &k);
    T_EQ_U64(k, 6);
    T_EQ_INT(slot_of("orders.dlq", 10), slot_of("orders", 6));
    slot_key("tenant7::jobs", 13, &k);
    T_EQ_U64(k, 7);
    T_EQ_INT(slot_of("tenant7::jobs", 13), slot_of("tenant7::mail.dlq", 17));
    slot_key("::jobs", 6, &k); /* no empty key */
    T_EQ_U64(k, 6);
    slot_key(".dlq", 4, &k);
    T_EQ_U64(k, 4);
    slot_key("a:b", 3, &k);
    T_EQ_U64(k, 3);
    /* slots cut into P ranges of 1024 / P rounded, covering every partition */
    for (uint32_t s = 0; s < SLOT_COUNT; s++) {
        uint32_t p = slot_partition(s, 7);
        T_ASSERT(p < 7);
        if (s > 0)
            T_ASSERT(p >= slot_partition(s - 1, 7));
        slots_per[p]++;
    }
    for (int p = 0; p < 7; p++)
        T_ASSERT(slots_per[p] == SLOT_COUNT / 7 || slots_per[p] == SLOT_COUNT / 7 + 1);
    T_EQ_INT(slot_partition(SLOT_COUNT - 1, SLOT_MAX_PARTITIONS), SLOT_COUNT - 1);
    /* names spread: 60,000 names over 6 partitions, each within 5% of a sixth */
    for (int i = 0; i < 60000; i++) {
        int n = snprintf(name, sizeof(name), "q%d", i);
        per[slot_partition(slot_of(name, (size_t)n), 6)]++;
    }
    for (int p = 0; p < 6; p++)
        T_ASSERT(per[p] > 9500 && per[p] < 10500);
}

static char *
read_all(const char *path)
{
    static char buf[2048];
    FILE *f = fopen(path, "r");
    size_t n;

    T_ASSERT(f != NULL);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
test_identity(void)
{
    char dir[] = "/tmp/slabmq-ident.XXXXXX";
    char path[256];
    char before[2048];
    char err[512];
    struct cfile cf;
    struct cfile other;
    FILE *f;

    T_ASSERT(mkdtemp(dir) != NULL);
    T_EQ_INT(parse(EXAMPLE, &cf, err, sizeof(err)), 0);
    T_EQ_INT(ident_check(dir, &cf, 2, err, sizeof(err)), 0); /* first start: written */
    snprintf(path, sizeof(path), "%s/%s", dir, IDENT_FILE);
    snprintf(before, sizeof(before), "%s", read_all(path));
    T_ASSERT(strstr(before, "node 2\n") != NULL);
    T_EQ_INT(ident_check(dir, &cf, 2, err, sizeof(err)), 0); /* and again */

    T_EQ_INT(ident_check(dir, &cf, 3, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "belongs to node 2 of cluster 'prod-eu1', not node 3") != NULL);
    T_EQ_INT(parse("cluster prod-eu1\npartitions 12\n"
                   "node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
                   "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
                   "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n",
                   &other, err, sizeof(err)),
             0);
    T_EQ_INT(ident_check(dir, &other, 2, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "made with partitions 6 and replicas 3, the cluster file says "
                         "partitions 12") != NULL);
    T_EQ_INT(parse("cluster prod-eu1\n"
                   "node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
                   "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
                   "node 3 client=10.0.0.9:7480 raft=10.0.0.3:7481\n",
                   &other, err, sizeof(err)),
             0);
    T_EQ_INT(ident_check(dir, &other, 2, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "made with another cluster file") != NULL);
    T_EQ_INT(parse("cluster test\n"
                   "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\nreplicas 1\n",
                   &other, err, sizeof(err)),
             0);
    T_EQ_INT(ident_check(dir, &other, 2, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "belongs to cluster 'prod-eu1', not 'test'") != NULL);
    T_EQ_STR(read_all(path), before); /* refusals change nothing */

    f = fopen(path, "w"); /* not ours */
    T_ASSERT(f != NULL);
    fputs("hello\n", f);
    fclose(f);
    T_EQ_INT(ident_check(dir, &cf, 2, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "not a slabmq cluster identity") != NULL);
    T_EQ_STR(read_all(path), "hello\n");
    unlink(path);

    snprintf(path, sizeof(path), "%s/slabmq.db", dir); /* a single-node store */
    f = fopen(path, "w");
    T_ASSERT(f != NULL);
    fclose(f);
    T_EQ_INT(ident_check(dir, &cf, 2, err, sizeof(err)), -1);
    T_ASSERT(strstr(err, "single-node broker's store") != NULL);
    snprintf(path, sizeof(path), "%s/%s", dir, IDENT_FILE);
    T_ASSERT(access(path, F_OK) != 0); /* not written */
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    T_ASSERT(system(path) == 0);
}

static const struct t_case cases[] = {
    T_CASE(test_parses_the_example),
    T_CASE(test_digest_is_of_the_meaning),
    T_CASE(test_errors_name_file_and_line),
    T_CASE(test_slots),
    T_CASE(test_identity),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
