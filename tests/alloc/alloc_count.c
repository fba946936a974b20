/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD shim that counts every heap call of the process it is loaded into: malloc,
 * calloc, realloc, free and the aligned variants, libevent's and msgpack-c's included.
 * It forwards to glibc's own entry points (__libc_malloc ...), so it needs no dlsym and
 * no bootstrap allocator. slabmqd reads the counters through the weak symbol
 * smq_alloc_counts() and reports them in STATS (heap_allocs, heap_frees), which is how the
 * zero-allocations-per-message proof measures the whole process from outside. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t k);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

static uint64_t n_alloc;   /* malloc, calloc, realloc(NULL,...), aligned allocations */
static uint64_t n_realloc; /* realloc of an existing block */
static uint64_t n_free;    /* free of a non-NULL pointer */

#define BUMP(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)

void smq_alloc_counts(uint64_t out[3]);

/* out[0] allocations, out[1] reallocations, out[2] frees, since the process started. */
void
smq_alloc_counts(uint64_t out[3])
{
    out[0] = __atomic_load_n(&n_alloc, __ATOMIC_RELAXED);
    out[1] = __atomic_load_n(&n_realloc, __ATOMIC_RELAXED);
    out[2] = __atomic_load_n(&n_free, __ATOMIC_RELAXED);
}

void *
malloc(size_t n)
{
    BUMP(n_alloc);
    return __libc_malloc(n);
}

void *
calloc(size_t n, size_t k)
{
    BUMP(n_alloc);
    return __libc_calloc(n, k);
}

void *
realloc(void *p, size_t n)
{
    if (p)
        BUMP(n_realloc);
    else
        BUMP(n_alloc);
    return __libc_realloc(p, n);
}

void
free(void *p)
{
    if (p)
        BUMP(n_free);
    __libc_free(p);
}

void *
memalign(size_t align, size_t n)
{
    BUMP(n_alloc);
    return __libc_memalign(align, n);
}

void *
aligned_alloc(size_t align, size_t n)
{
    BUMP(n_alloc);
    return __libc_memalign(align, n);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
    void *p;

    BUMP(n_alloc);
    p = __libc_memalign(align, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}
