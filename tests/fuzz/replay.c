/* SPDX-License-Identifier: MIT */
/* Corpus replay: calls a fuzz target's LLVMFuzzerTestOneInput on every file of the
 * directories (or files) given, in name order, so the checked-in corpus runs as a ctest with
 * any compiler and under the ASan+UBSan build. Each input is copied into a buffer of exactly
 * its size, so an over-read is caught by ASan as it is under libFuzzer. Under ASan a single
 * allocation of FUZZ_MALLOC_LIMIT_MB or more aborts, as libFuzzer's -malloc_limit_mb does. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif

#ifdef REPLAY_ASAN
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static void
malloc_limit_hook(const volatile void *p, size_t n)
{
    (void)p;
    if (n >= (size_t)FUZZ_MALLOC_LIMIT_MB << 20) {
        fprintf(stderr, "replay: malloc(%zu) exceeds the fuzz limit of %d MiB\n", n,
                FUZZ_MALLOC_LIMIT_MB);
        abort();
    }
}

/* The sanitizer installs the hooks only as a pair. */
static void
free_hook(const volatile void *p)
{
    (void)p;
}
#endif

/* Run one file. Returns 0, or -1 if it cannot be read. */
static int
run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;
    size_t n;

    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    n = (size_t)st.st_size;
    buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int
skip_entry(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
    size_t runs = 0;

#ifdef REPLAY_ASAN
    if (!__sanitizer_install_malloc_and_free_hooks(malloc_limit_hook, free_hook))
        fprintf(stderr, "replay: cannot install the allocation limit\n");
#endif
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_entry, alphasort);
        if (n < 0) { /* not a directory: a single input */
            if (run_file(argv[i]))
                return 1;
            runs++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
            if (run_file(path))
                return 1;
            runs++;
            free(names[k]);
        }
        free(names);
    }
    if (runs == 0) {
        fprintf(stderr, "replay: no inputs\n");
        return 1;
    }
    printf("replay: %zu inputs, no finding\n", runs);
    return 0;
}
