/* SPDX-License-Identifier: MIT */
/* What every fuzz target defines, and the checks they share. Each target is one file with
 * LLVMFuzzerTestOneInput(); it links either with libFuzzer (clang, -DSLABMQ_FUZZ=ON) or with
 * replay.c (any compiler), which runs the checked-in corpus as a regression test. */
#ifndef SLABMQ_TESTS_FUZZ_H
#define SLABMQ_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The largest single allocation a target may make, MiB: the fuzzers run with
 * -malloc_limit_mb at this value and the replay driver enforces it under ASan, so an
 * allocation sized from a declared length instead of received bytes is a finding. */
#define FUZZ_MALLOC_LIMIT_MB 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: say which and abort, which both libFuzzer and ctest report. */
#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif /* SLABMQ_TESTS_FUZZ_H */
