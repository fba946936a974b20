/* SPDX-License-Identifier: MIT */
/* Failed-password throttle; see throttle.h. */
#include "auth/throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* FNV-1a over the seed and the bytes, with a tag byte so an address and a name never share a
 * key, then a splitmix64 finish so the set index uses well-mixed bits. Never 0 (free). */
static uint64_t
hash_key(uint64_t seed, char tag, const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull ^ seed;

    h = (h ^ (unsigned char)tag) * 1099511628211ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h ? h : 1;
}

void
throttle_init(struct throttle *t, uint64_t seed)
{
    memset(t->e, 0, sizeof(t->e));
    t->seed = seed;
}

/* The address part of addr: without "[...]" and ":port". Writes at most cap - 1 bytes. */
static void
strip_port(const char *addr, char *out, size_t cap)
{
    const char *end;
    size_t n;

    if (addr[0] == '[') {
        addr++;
        end = strchr(addr, ']');
    } else {
        end = strchr(addr, ':');
        if (end && strchr(end + 1, ':')) /* a bare IPv6 address: no port */
            end = NULL;
    }
    n = end ? (size_t)(end - addr) : strlen(addr);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, addr, n);
    out[n] = '\0';
}

struct throttle_keys
throttle_keys_of(const struct throttle *t, const char *addr, const char *name, size_t nlen)
{
    char host[64];
    struct in6_addr a6;
    struct throttle_keys k;

    strip_port(addr, host, sizeof(host));
    if (inet_pton(AF_INET6, host, &a6) == 1 && !IN6_IS_ADDR_V4MAPPED(&a6))
        k.addr = hash_key(t->seed, 'a', a6.s6_addr, 8); /* the /64 */
    else
        k.addr = hash_key(t->seed, 'a', host, strlen(host));
    k.name = hash_key(t->seed, 'n', name, nlen);
    return k;
}

/* The entry of key, made (evicting the set's least recently used) if absent, with failures
 * older than THROTTLE_FORGET_MS forgotten. */
static struct throttle_entry *
entry_of(struct throttle *t, uint64_t key, uint64_t now_ms)
{
    struct throttle_entry *set = &t->e[(key % THROTTLE_SETS) * THROTTLE_WAYS];
    struct throttle_entry *victim = &set[0];
    struct throttle_entry *e = NULL;

    for (uint32_t i = 0; i < THROTTLE_WAYS && !e; i++) {
        if (set[i].key == key)
            e = &set[i];
        else if (set[i].key == 0 || (victim->key && set[i].last_ms < victim->last_ms))
            victim = &set[i];
    }
    if (!e) {
        e = victim;
        memset(e, 0, sizeof(*e));
        e->key = key;
    }
    if (e->failures && e->next_ms <= now_ms && now_ms - e->last_ms > THROTTLE_FORGET_MS)
        e->failures = 0;
    e->last_ms = now_ms;
    return e;
}

/* The wait after f failures. */
static uint64_t
step_ms(uint32_t f)
{
    if (f == 0)
        return 0;
    if (f > 16) /* 100 << 15 is far past the cap already */
        f = 16;
    return (uint64_t)THROTTLE_BASE_MS << (f - 1) < THROTTLE_MAX_MS
               ? (uint64_t)THROTTLE_BASE_MS << (f - 1)
               : THROTTLE_MAX_MS;
}

long
throttle_book(struct throttle *t, struct throttle_keys k, uint64_t now_ms)
{
    struct throttle_entry *ea = entry_of(t, k.addr, now_ms);
    struct throttle_entry *en = entry_of(t, k.name, now_ms);
    uint64_t start = now_ms;

    if (ea->next_ms > start)
        start = ea->next_ms;
    if (en->next_ms > start)
        start = en->next_ms;
    if (start - now_ms > THROTTLE_MAX_MS)
        return -1;
    /* checks that overlap after failures are spaced, so many connections at once from one
     * address (or for one name) get one check per step, not one each */
    ea->next_ms = start + step_ms(ea->failures);
    en->next_ms = start + step_ms(en->failures);
    return (long)(start - now_ms);
}

void
throttle_result(struct throttle *t, struct throttle_keys k, int ok, uint64_t now_ms)
{
    struct throttle_entry *e[2] = {entry_of(t, k.addr, now_ms), entry_of(t, k.name, now_ms)};

    for (int i = 0; i < 2; i++) {
        if (ok) {
            e[i]->failures = 0;
            e[i]->next_ms = 0;
            continue;
        }
        e[i]->failures++;
        if (e[i]->next_ms < now_ms + step_ms(e[i]->failures))
            e[i]->next_ms = now_ms + step_ms(e[i]->failures);
    }
}
