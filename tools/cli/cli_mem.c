/* SPDX-License-Identifier: MIT */
/* The memory view of the slabmq CLI; see cli_mem.h. One STATS request fills a struct
 * mem_view: the summary values through a fixed table of names, and the slab.<N>.<field>
 * entries into one row per class N, sorted by N. Names it does not know are skipped, and a
 * value the broker did not send shows as "-" in text and is left out of JSON, so a broker
 * with more or fewer statistics still gets a view (docs/protocol.md section 11 asks clients
 * to ignore unknown names). Reading costs O(stats x classes); both are a few hundred at
 * most. */
#include "cli_mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_out.h"

/* The summary values: enum value, the group it belongs to, and its stat name, which is the
 * group's name, '_' and the value's field name in JSON. */
#define MEM_KEYS(X)                                                                             \
    X(MEM_USED, MEM_IN_MEMORY, "memory_used")                                                   \
    X(MEM_LIMIT, MEM_IN_MEMORY, "memory_limit")                                                 \
    X(MEM_PEAK, MEM_IN_MEMORY, "memory_peak")                                                   \
    X(MEM_RESERVE, MEM_IN_MEMORY, "memory_reserve")                                             \
    X(MEM_DENIED, MEM_IN_MEMORY, "memory_denied")                                               \
    X(MEM_PAGE_SIZE, MEM_IN_SLAB, "slab_page_size")                                             \
    X(MEM_PAGES_TOTAL, MEM_IN_SLAB, "slab_pages_total")                                         \
    X(MEM_PAGES_RESIDENT, MEM_IN_SLAB, "slab_pages_resident")                                   \
    X(MEM_PAGES_POOLED, MEM_IN_SLAB, "slab_pages_pooled")                                       \
    X(MEM_PAGES_REUSED, MEM_IN_SLAB, "slab_pages_reused")                                       \
    X(MEM_REC_PAGE_SIZE, MEM_IN_REC, "rec_page_size")                                           \
    X(MEM_REC_PAGES_TOTAL, MEM_IN_REC, "rec_pages_total")                                       \
    X(MEM_REC_PAGES_RESIDENT, MEM_IN_REC, "rec_pages_resident")                                 \
    X(MEM_REC_PAGES_POOLED, MEM_IN_REC, "rec_pages_pooled")                                     \
    X(MEM_RES_HITS, MEM_IN_RESERVOIR, "reservoir_hits")                                         \
    X(MEM_RES_MISSES, MEM_IN_RESERVOIR, "reservoir_misses")                                     \
    X(MEM_RES_OVERFLOWS, MEM_IN_RESERVOIR, "reservoir_overflows")                               \
    X(MEM_RES_DENIED, MEM_IN_RESERVOIR, "reservoir_denied")                                     \
    X(MEM_RES_BYTES, MEM_IN_RESERVOIR, "reservoir_bytes")                                       \
    X(MEM_HEAP_ALLOCS, MEM_IN_HEAP, "heap_allocs")                                              \
    X(MEM_HEAP_REALLOCS, MEM_IN_HEAP, "heap_reallocs")                                          \
    X(MEM_HEAP_FREES, MEM_IN_HEAP, "heap_frees")

/* The fields of one slab class: enum value, name after "slab.<N>.", table header. */
#define CLASS_FIELDS(X)                                                                         \
    X(CLASS_CHUNK_SIZE, "chunk_size", "CHUNK")                                                  \
    X(CLASS_PAGES, "pages", "PAGES")                                                            \
    X(CLASS_USED, "used", "USED")                                                               \
    X(CLASS_FREE, "free", "FREE")                                                               \
    X(CLASS_WASTED, "wasted", "WASTED")                                                         \
    X(CLASS_FAILS, "fails", "FAILS")

/* The groups of the summary: one text line and one JSON object each. */
enum mem_group {
    MEM_IN_MEMORY,
    MEM_IN_SLAB,
    MEM_IN_RESERVOIR,
    MEM_IN_HEAP,
    MEM_IN_REC,
    MEM_NGROUPS
};

enum mem_key {
#define MEM_KEY_ENUM_(key, group, name) key,
    MEM_KEYS(MEM_KEY_ENUM_)
#undef MEM_KEY_ENUM_
    MEM_NKEYS
};

enum class_field {
#define CLASS_FIELD_ENUM_(field, name, header) field,
    CLASS_FIELDS(CLASS_FIELD_ENUM_)
#undef CLASS_FIELD_ENUM_
    CLASS_NFIELDS
};

static const char *const group_names[MEM_NGROUPS] = {"memory", "slab", "reservoir", "heap",
                                                             "rec"};

static const struct {
    enum mem_group group;
    const char *name;
} keys[MEM_NKEYS] = {
#define MEM_KEY_ROW_(key, group, name) {group, name},
    MEM_KEYS(MEM_KEY_ROW_)
#undef MEM_KEY_ROW_
};

static const struct {
    const char *name;
    const char *header;
} fields[CLASS_NFIELDS] = {
#define CLASS_FIELD_ROW_(field, name, header) {name, header},
    CLASS_FIELDS(CLASS_FIELD_ROW_)
#undef CLASS_FIELD_ROW_
};

/* Bytes of a formatted value: "18446744073709551615", "1023.9 KiB", "100.0%". */
#define NUM 32

/* One slab class, from its slab.<index>.* statistics. */
struct mem_class {
    uint32_t index;            /* N of slab.N.* */
    unsigned have;             /* bit (1 << field) per enum class_field received */
    uint64_t v[CLASS_NFIELDS]; /* by enum class_field; bytes or counts as in protocol.md */
};

/* What `slabmq memory` shows, read from one STATS reply. */
struct mem_view {
    uint64_t v[MEM_NKEYS];  /* by enum mem_key */
    uint32_t have;          /* bit (1 << key) per enum mem_key received */
    struct mem_class *cls;  /* sorted by index; owned */
    size_t ncls;
};

/* ---------------------------------------------------------------------------------------- */
/* Reading the statistics                                                                    */

/* The enum mem_key named name, or -1. */
static int
find_key(const char *name)
{
    for (int k = 0; k < MEM_NKEYS; k++)
        if (strcmp(keys[k].name, name) == 0)
            return k;
    return -1;
}

/* Split "slab.<N>.<field>" into N and a known field. 0, or -1 for any other name. */
static int
split_class_name(const char *name, uint32_t *index, int *field)
{
    const char *p = name + 5;
    uint64_t n = 0;

    if (strncmp(name, "slab.", 5) != 0 || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > UINT32_MAX)
            return -1;
    }
    if (*p != '.')
        return -1;
    for (int f = 0; f < CLASS_NFIELDS; f++) {
        if (strcmp(p + 1, fields[f].name) == 0) {
            *index = (uint32_t)n;
            *field = f;
            return 0;
        }
    }
    return -1;
}

/* The class of m with this index, added if new; m->cls has room for one per statistic. */
static struct mem_class *
class_of(struct mem_view *m, uint32_t index)
{
    for (size_t i = 0; i < m->ncls; i++)
        if (m->cls[i].index == index)
            return &m->cls[i];
    m->cls[m->ncls].index = index;
    return &m->cls[m->ncls++];
}

static int
compare_classes(const void *a, const void *b)
{
    uint32_t x = ((const struct mem_class *)a)->index;
    uint32_t y = ((const struct mem_class *)b)->index;

    return (x > y) - (x < y);
}

/* Fill m from s. m->cls must be freed by the caller, also on failure. 0, or -1 when out of
 * memory. */
static int
read_view(const slabmq_stats *s, struct mem_view *m)
{
    size_t n = slabmq_stats_count(s);

    memset(m, 0, sizeof(*m));
    m->cls = calloc(n ? n : 1, sizeof(*m->cls));
    if (!m->cls)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *name = slabmq_stats_name(s, i);
        uint64_t v = slabmq_stats_value(s, i);
        int key = find_key(name);
        uint32_t index;
        int field;
        if (key >= 0) {
            m->v[key] = v;
            m->have |= 1u << key;
        } else if (split_class_name(name, &index, &field) == 0) {
            struct mem_class *c = class_of(m, index);
            c->v[field] = v;
            c->have |= 1u << field;
        }
    }
    qsort(m->cls, m->ncls, sizeof(*m->cls), compare_classes);
    return 0;
}

static int
has(const struct mem_view *m, enum mem_key k)
{
    return (m->have >> k) & 1;
}

/* 1 if any value of group g was received. */
static int
has_group(const struct mem_view *m, enum mem_group g)
{
    for (int k = 0; k < MEM_NKEYS; k++)
        if (keys[k].group == g && has(m, k))
            return 1;
    return 0;
}

/* The two ratios of the view. Each sets *r and returns 0, or returns -1 when a value is
 * missing or the denominator is 0. */

/* memory_used / memory_limit */
static int
used_ratio(const struct mem_view *m, double *r)
{
    if (!has(m, MEM_USED) || !has(m, MEM_LIMIT) || m->v[MEM_LIMIT] == 0)
        return -1;
    *r = (double)m->v[MEM_USED] / (double)m->v[MEM_LIMIT];
    return 0;
}

/* reservoir_hits / (reservoir_hits + reservoir_misses) */
static int
hit_ratio(const struct mem_view *m, double *r)
{
    double hits = (double)m->v[MEM_RES_HITS];
    double all = hits + (double)m->v[MEM_RES_MISSES];

    if (!has(m, MEM_RES_HITS) || !has(m, MEM_RES_MISSES) || all == 0)
        return -1;
    *r = hits / all;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Text                                                                                      */

/* Value k of m in decimal, or "-" when the broker did not send it. Returns buf. */
static const char *
fmt_count(char *buf, size_t len, const struct mem_view *m, enum mem_key k)
{
    if (has(m, k))
        snprintf(buf, len, "%" PRIu64, m->v[k]);
    else
        snprintf(buf, len, "-");
    return buf;
}

/* Value k of m as bytes, "512 B" or "1.5 MiB" (powers of 1024), or "-". Returns buf. */
static const char *
fmt_size(char *buf, size_t len, const struct mem_view *m, enum mem_key k)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double d;
    int u = 0;

    if (!has(m, k))
        return fmt_count(buf, len, m, k);
    if (m->v[k] < 1024) {
        snprintf(buf, len, "%" PRIu64 " B", m->v[k]);
        return buf;
    }
    d = (double)m->v[k] / 1024;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f %s", d, units[u]);
    return buf;
}

/* A ratio of m as "4.7%", or "-". Returns buf. */
static const char *
fmt_percent(char *buf, size_t len, const struct mem_view *m,
            int (*ratio)(const struct mem_view *, double *))
{
    double r;

    if (ratio(m, &r))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.1f%%", r * 100);
    return buf;
}

/* The summary lines; the heap line only when the broker sent heap counts. */
static void
print_summary(const struct mem_view *m)
{
    char a[NUM];
    char b[NUM];
    char c[NUM];
    char d[NUM];
    char e[NUM];
    char f[NUM];

    printf("memory     %s used of %s (%s), peak %s, %s denied\n",
           fmt_size(a, NUM, m, MEM_USED), fmt_size(b, NUM, m, MEM_LIMIT),
           fmt_percent(c, NUM, m, used_ratio), fmt_size(d, NUM, m, MEM_PEAK),
           fmt_count(e, NUM, m, MEM_DENIED));
    printf("slab       %s pages resident (%s pooled) of %s, %s each; %s reused\n",
           fmt_count(a, NUM, m, MEM_PAGES_RESIDENT), fmt_count(b, NUM, m, MEM_PAGES_POOLED),
           fmt_count(c, NUM, m, MEM_PAGES_TOTAL), fmt_size(d, NUM, m, MEM_PAGE_SIZE),
           fmt_count(e, NUM, m, MEM_PAGES_REUSED));
    if (has_group(m, MEM_IN_REC)) /* a broker before 0.3 has one slab */
        printf("records    %s pages resident (%s pooled) of %s, %s each; reserve %s\n",
               fmt_count(a, NUM, m, MEM_REC_PAGES_RESIDENT),
               fmt_count(b, NUM, m, MEM_REC_PAGES_POOLED), fmt_count(c, NUM, m, MEM_REC_PAGES_TOTAL),
               fmt_size(d, NUM, m, MEM_REC_PAGE_SIZE), fmt_size(e, NUM, m, MEM_RESERVE));
    printf("reservoir  %s hits, %s misses (hit ratio %s), %s overflows, %s denied; %s\n",
           fmt_count(a, NUM, m, MEM_RES_HITS), fmt_count(b, NUM, m, MEM_RES_MISSES),
           fmt_percent(c, NUM, m, hit_ratio), fmt_count(d, NUM, m, MEM_RES_OVERFLOWS),
           fmt_count(e, NUM, m, MEM_RES_DENIED), fmt_size(f, NUM, m, MEM_RES_BYTES));
    if (has_group(m, MEM_IN_HEAP))
        printf("heap       %s allocs, %s reallocs, %s frees\n",
               fmt_count(a, NUM, m, MEM_HEAP_ALLOCS), fmt_count(b, NUM, m, MEM_HEAP_REALLOCS),
               fmt_count(c, NUM, m, MEM_HEAP_FREES));
}

/* Cell col of the class table for c: column 0 is the class index, column 1 + f is field
 * f, "-" when not received. Returns its width. */
static int
class_cell(char *buf, size_t len, const struct mem_class *c, int col)
{
    if (col == 0)
        return snprintf(buf, len, "%" PRIu32, c->index);
    if (!((c->have >> (col - 1)) & 1))
        return snprintf(buf, len, "-");
    return snprintf(buf, len, "%" PRIu64, c->v[col - 1]);
}

/* CLASS CHUNK PAGES USED FREE WASTED FAILS, right-aligned, columns as wide as their widest
 * cell, two spaces apart. */
static void
print_classes(const struct mem_view *m)
{
    int width[1 + CLASS_NFIELDS];
    char cell[24];

    for (int col = 0; col <= CLASS_NFIELDS; col++) {
        width[col] = (int)strlen(col ? fields[col - 1].header : "CLASS");
        for (size_t i = 0; i < m->ncls; i++) {
            int w = class_cell(cell, sizeof(cell), &m->cls[i], col);
            width[col] = w > width[col] ? w : width[col];
        }
    }
    for (int col = 0; col <= CLASS_NFIELDS; col++)
        printf("%s%*s", col ? "  " : "", width[col], col ? fields[col - 1].header : "CLASS");
    putchar('\n');
    for (size_t i = 0; i < m->ncls; i++) {
        for (int col = 0; col <= CLASS_NFIELDS; col++) {
            class_cell(cell, sizeof(cell), &m->cls[i], col);
            printf("%s%*s", col ? "  " : "", width[col], cell);
        }
        putchar('\n');
    }
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                      */

/* The members of group g that were received, as "field":value, each preceded by a comma
 * except the first. Returns how many it wrote. */
static int
json_group_members(const struct mem_view *m, enum mem_group g)
{
    size_t skip = strlen(group_names[g]) + 1;
    int n = 0;

    for (int k = 0; k < MEM_NKEYS; k++) {
        if (keys[k].group != g || !has(m, k))
            continue;
        printf("%s\"%s\":%" PRIu64, n++ ? "," : "", keys[k].name + skip, m->v[k]);
    }
    return n;
}

/* ,"name":0.1234 or ,"name":null; the comma only after other members. */
static void
json_ratio(const struct mem_view *m, int after, const char *name,
           int (*ratio)(const struct mem_view *, double *))
{
    double r;

    printf("%s\"%s\":", after ? "," : "", name);
    if (ratio(m, &r))
        fputs("null", stdout);
    else
        printf("%.4f", r);
}

static void
json_classes(const struct mem_view *m, int after)
{
    printf("%s\"classes\":[", after ? "," : "");
    for (size_t i = 0; i < m->ncls; i++) {
        const struct mem_class *c = &m->cls[i];
        printf("%s{\"class\":%" PRIu32, i ? "," : "", c->index);
        for (int f = 0; f < CLASS_NFIELDS; f++)
            if ((c->have >> f) & 1)
                printf(",\"%s\":%" PRIu64, fields[f].name, c->v[f]);
        putchar('}');
    }
    putchar(']');
}

/* {"memory":{...},"slab":{...,"classes":[...]},"reservoir":{...}[,"heap":{...}]} */
static void
print_json(const struct mem_view *m)
{
    int n;

    fputs("{\"memory\":{", stdout);
    n = json_group_members(m, MEM_IN_MEMORY);
    json_ratio(m, n, "used_ratio", used_ratio);
    fputs("},\"slab\":{", stdout);
    n = json_group_members(m, MEM_IN_SLAB);
    json_classes(m, n);
    fputs("},\"reservoir\":{", stdout);
    n = json_group_members(m, MEM_IN_RESERVOIR);
    json_ratio(m, n, "hit_ratio", hit_ratio);
    putchar('}');
    if (has_group(m, MEM_IN_REC)) {
        fputs(",\"rec\":{", stdout);
        json_group_members(m, MEM_IN_REC);
        putchar('}');
    }
    if (has_group(m, MEM_IN_HEAP)) {
        fputs(",\"heap\":{", stdout);
        json_group_members(m, MEM_IN_HEAP);
        putchar('}');
    }
    puts("}");
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                               */

int
cli_mem_show(struct cli *cli)
{
    slabmq_stats *s;
    struct mem_view m;
    int rc = CLI_EXIT_OK;
    slabmq_status st = slabmq_stats_get(cli->c, NULL, &s);

    if (st)
        return cli_out_status(cli->c, st);
    if (read_view(s, &m)) {
        cli_out_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out_free;
    }
    if (cli->json) {
        print_json(&m);
    } else {
        print_summary(&m);
        putchar('\n');
        print_classes(&m);
    }
out_free:
    free(m.cls);
    slabmq_stats_free(s);
    return rc;
}
