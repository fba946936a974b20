/* SPDX-License-Identifier: MIT */
/* The queue-settings table (protocol/settings.h) against what is written elsewhere by hand:
 * every row's option in the CLI's declare help, the man page and the bash completion, its
 * values where it has a fixed set, and its STATS rows (with the table's default) in a live
 * broker's STATS of a new queue. A setting added to the table and not wired into all of
 * them fails here. Starts one broker and runs the CLI (no broker needed for help). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings.h"
#include "slabmq.h"
#include "t.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            t_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
    } while (0)

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    T_ASSERT(f != NULL);
    T_ASSERT(fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0);
    buf = malloc((size_t)n + 1);
    T_ASSERT(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The text between the first 'from' and the next 'to' after it, as a new string. */
static char *
between(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from);
    const char *b;
    char *out;

    T_ASSERT(a != NULL);
    a += strlen(from);
    b = strstr(a, to);
    T_ASSERT(b != NULL);
    out = malloc((size_t)(b - a) + 1);
    T_ASSERT(out != NULL);
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = '\0';
    return out;
}

/* Is word in text with neither side touching another option character? */
static int
has_word(const char *text, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
        char before = p == text ? ' ' : p[-1];
        char after = p[n];
        if (!strchr("-abcdefghijklmnopqrstuvwxyz_", before)
            && !strchr("-abcdefghijklmnopqrstuvwxyz_", after ? after : ' '))
            return 1;
    }
    return 0;
}

static void
test_cli_help_and_man(void)
{
    struct cli_run h = RUN(0, "help", "declare");
    char *man = slurp(SLABMQ_SOURCE_DIR "/man/slabmq.1");

    T_EQ_INT(h.rc, 0);
    for (int i = 0; i < SMQ_SETTING_COUNT; i++) {
        const struct smq_setting_info *s = &smq_settings[i];
        char want[64], roff[64];
        size_t k = 0;

        snprintf(want, sizeof(want), "[%s ", s->cli); /* the synopsis */
        CHECK(strstr(h.out, want), "%s is not in slabmq help declare's synopsis", s->cli);
        snprintf(want, sizeof(want), "\n  %s ", s->cli); /* the option list */
        CHECK(strstr(h.out, want), "%s is not described in slabmq help declare", s->cli);
        for (const char *p = s->cli; *p && k + 2 < sizeof(roff); p++) {
            if (*p == '-')
                roff[k++] = '\\';
            roff[k++] = *p;
        }
        roff[k] = '\0';
        CHECK(strstr(man, roff), "%s is not in man/slabmq.1", s->cli);
        for (int j = 0; s->values && s->values[j]; j++)
            CHECK(has_word(h.out, s->values[j]), "%s's value %s is not in the help",
                         s->cli, s->values[j]);
    }
    free(man);
    cli_run_free(&h);
}

static void
test_bash_completion(void)
{
    char *file = slurp(SLABMQ_SOURCE_DIR "/packaging/completion/slabmq.bash");
    char *declare = between(file, "\n    declare)\n", ";;");
    char *takes_arg = between(file, "case $prev in\n", ")\n");

    for (int i = 0; i < SMQ_SETTING_COUNT; i++) {
        const struct smq_setting_info *s = &smq_settings[i];

        CHECK(has_word(declare, s->cli), "%s is not among declare's completions",
                     s->cli);
        if (s->kind == SMQ_SETTING_UINT)
            CHECK(has_word(takes_arg, s->cli),
                         "%s takes a number: the completion must offer nothing after it",
                         s->cli);
        if (s->values) {
            char from[64];
            char *offered;
            snprintf(from, sizeof(from), "\n    %s)\n", s->cli);
            offered = between(file, from, ";;");
            for (int j = 0; s->values[j]; j++)
                CHECK(has_word(offered, s->values[j]),
                             "the completion of %s does not offer %s", s->cli, s->values[j]);
            free(offered);
        }
    }
    free(takes_arg);
    free(declare);
    free(file);
}

/* Does STATS list row 'name'? Its integer value in *v (0 for the str row). */
static int
stats_row(const slabmq_stats *st, const char *name, uint64_t *v)
{
    for (size_t i = 0; i < slabmq_stats_count(st); i++)
        if (strcmp(slabmq_stats_name(st, i), name) == 0) {
            *v = slabmq_stats_str(st, i) ? 0 : slabmq_stats_value(st, i);
            return 1;
        }
    return 0;
}

static void
test_stats_rows_and_defaults(void)
{
    struct t_broker b;
    slabmq_client *c;
    slabmq_stats *st;

    t_broker_start(&b, NULL);
    c = t_client(&b);
    T_OK(c, slabmq_declare(c, "settings", NULL, NULL));
    T_OK(c, slabmq_stats_get(c, "settings", &st));
    for (int i = 0; i < SMQ_SETTING_COUNT; i++) {
        const struct smq_setting_info *s = &smq_settings[i];
        char rows[128];
        int nrows = 0;
        uint64_t v = 0;

        snprintf(rows, sizeof(rows), "%s", s->stats);
        for (char *save, *row = strtok_r(rows, " ", &save); row;
             row = strtok_r(NULL, " ", &save), nrows++)
            CHECK(stats_row(st, row, &v), "STATS has no row %s (setting %s)", row,
                         s->key);
        CHECK(nrows > 0, "setting %s names no STATS row", s->key);
        if (s->kind == SMQ_SETTING_UINT) /* one row: the value, a new queue's default */
            CHECK(v == s->def, "%s of a new queue is %llu, the table says %llu", s->key,
                         (unsigned long long)v, (unsigned long long)s->def);
    }
    slabmq_stats_free(st);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* The lookups the broker, the client and the CLI share. */
static void
test_lookups(void)
{
    char buf[96];

    T_EQ_INT(smq_setting_find("ttl_ms", 6), SMQ_SET_TTL);
    T_EQ_INT(smq_setting_find("ttl_m", 5), -1);
    T_EQ_INT(smq_setting_value(SMQ_SET_OVERFLOW, "dead-letter", 11), 2);
    T_EQ_INT(smq_setting_value(SMQ_SET_OVERFLOW, "dead", 4), -1);
    T_EQ_INT(smq_setting_value(SMQ_SET_TTL, "x", 1), -1);
    T_EQ_STR(smq_setting_choices(SMQ_SET_CONFIRM, buf, sizeof(buf)),
             "\"memory\", \"written\" or \"synced\"");
    for (int i = 0; i < SMQ_SETTING_COUNT; i++)
        CHECK(smq_settings[i].key && smq_settings[i].doc[0] && smq_settings[i].min
                         <= smq_settings[i].max,
                     "setting %d is incomplete", i);
}

static const struct t_case cases[] = {
    T_CASE(test_cli_help_and_man),
    T_CASE(test_bash_completion),
    T_CASE(test_stats_rows_and_defaults),
    T_CASE(test_lookups),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
