/* SPDX-License-Identifier: MIT */
/* Failed-password throttle: per source address and per user name, a count of recent failures
 * and the earliest time the next check may start. After f failures the next check of that key
 * waits THROTTLE_BASE_MS << (f - 1), at most THROTTLE_MAX_MS, counted from the failure; checks
 * that overlap are spaced by the same step. A success clears both keys; a key with no attempt
 * for THROTTLE_FORGET_MS starts again from zero. Unknown names are counted exactly like known
 * ones, so the throttle says nothing about which names exist.
 *
 * Memory is fixed: THROTTLE_SETS sets of THROTTLE_WAYS entries, a key hashed (keyed FNV-1a
 * with a random seed, so nobody can aim keys at one set) to one set, the least recently
 * touched entry of the set evicted for a new key. Many addresses can therefore push a
 * throttled key out and reset it; they cannot grow the table. Every operation is O(ways).
 * Loop thread only. */
#ifndef SLABMQ_BROKER_AUTH_THROTTLE_H
#define SLABMQ_BROKER_AUTH_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define THROTTLE_BASE_MS 100u      /* wait after the first failure */
#define THROTTLE_MAX_MS 5000u      /* longest wait, and how far ahead a check may be booked */
#define THROTTLE_FORGET_MS 60000u  /* a key quiet this long has its failures forgotten */
#define THROTTLE_SETS 512u
#define THROTTLE_WAYS 8u

struct throttle_entry {
    uint64_t key;      /* keyed hash of the address or name; 0: free */
    uint64_t next_ms;  /* mono ms: no check of this key starts earlier */
    uint64_t last_ms;  /* mono ms of the last failure or booking (for eviction, forgetting) */
    uint32_t failures; /* failed checks since the last success (or forgetting) */
};

struct throttle {
    uint64_t seed;                                        /* random: keys the hash */
    struct throttle_entry e[THROTTLE_SETS * THROTTLE_WAYS]; /* 128 KiB */
};

/* The two keys of one attempt: its source address and the user name it claims. */
struct throttle_keys {
    uint64_t addr;
    uint64_t name;
};

/* Start with an empty table keyed by seed. */
void throttle_init(struct throttle *t, uint64_t seed);
/* The keys of an attempt from address addr (a numeric IPv4 or IPv6 address, optionally with
 * ":port" or as "[v6]:port"; an IPv6 address counts by its /64, which one host usually
 * holds whole) for the name name[0..nlen). */
struct throttle_keys throttle_keys_of(const struct throttle *t, const char *addr,
                                      const char *name, size_t nlen);
/* Book a check of keys at now_ms. Returns the ms to wait before it may start (0: at once), or
 * -1 when that wait would pass THROTTLE_MAX_MS: the attempt is refused without a check. */
long throttle_book(struct throttle *t, struct throttle_keys k, uint64_t now_ms);
/* The booked check ended: failed (ok 0) or succeeded. */
void throttle_result(struct throttle *t, struct throttle_keys k, int ok, uint64_t now_ms);

#endif /* SLABMQ_BROKER_AUTH_THROTTLE_H */
