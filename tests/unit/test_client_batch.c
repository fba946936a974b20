/* SPDX-License-Identifier: MIT */
/* The client's reading of a message list (client/messages.c smq_read_batch: the list of a
 * FETCH or PEEK reply or a DELIVER push) against a reference: the generic two-pass reader
 * it used for every list before the one-pass path for plain entries, kept here verbatim in
 * what it accepts and rejects. For generated lists of every entry shape and integer
 * encoding the protocol allows (dead letters' info maps, extra elements, signed encodings of
 * ids, deliveries over 32 bits), cut short, with a byte changed, or with counts that lie,
 * both must accept the same lists with the same messages and leave the reader at the same
 * place, and reject the same lists with the same message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "slabmq.h"
#include "t.h"

/* ---------------------------------------------------------------------------------------- */
/* The reference                                                                             */

struct ref_entry {
    uint64_t id;
    uint64_t deliveries;
    const uint8_t *data;
    uint32_t len;
    int dead;
    const char *reason;
    uint32_t reason_len;
    const char *queue;
    uint32_t queue_len;
    uint64_t dead_deliveries;
};

static int
key_is(const char *k, uint32_t klen, const char *want)
{
    return strlen(want) == klen && memcmp(k, want, klen) == 0;
}

static int
ref_info(struct smq_mpr *r, struct ref_entry *e)
{
    uint32_t pairs;

    if (smq_mpr_map(r, &pairs))
        return -1;
    e->dead = 1;
    for (uint32_t i = 0; i < pairs; i++) {
        const char *k = "";
        uint32_t klen = 0;
        enum smq_mp_type t;
        int rc;
        if (smq_mpr_peek(r) == SMQ_MP_STR ? smq_mpr_str(r, &k, &klen) : smq_mpr_skip(r, 16))
            return -1;
        t = smq_mpr_peek(r);
        if (t == SMQ_MP_STR && key_is(k, klen, "reason"))
            rc = smq_mpr_str(r, &e->reason, &e->reason_len);
        else if (t == SMQ_MP_STR && key_is(k, klen, "queue"))
            rc = smq_mpr_str(r, &e->queue, &e->queue_len);
        else if (t == SMQ_MP_UINT && key_is(k, klen, "deliveries"))
            rc = smq_mpr_uint(r, &e->dead_deliveries);
        else
            rc = smq_mpr_skip(r, 16);
        if (rc)
            return -1;
    }
    return 0;
}

static int
ref_entry(struct smq_mpr *r, struct ref_entry *e)
{
    uint32_t k;

    memset(e, 0, sizeof(*e));
    if (smq_mpr_array(r, &k) || k < 3 || smq_mpr_uint(r, &e->id)
        || smq_mpr_uint(r, &e->deliveries) || e->deliveries > UINT32_MAX
        || smq_mpr_bin(r, &e->data, &e->len))
        return -1;
    for (uint32_t j = 3; j < k; j++) {
        int rc = j == 3 && smq_mpr_peek(r) == SMQ_MP_MAP ? ref_info(r, e) : smq_mpr_skip(r, 16);
        if (rc)
            return -1;
    }
    return 0;
}

/* 0 and the entries in e[] (room for max), r past the list; 1: a bad list header; 2: a bad
 * entry. */
static int
ref_read(struct smq_mpr *r, struct ref_entry *e, uint32_t max, uint32_t *n)
{
    if (smq_mpr_array(r, n))
        return 1;
    T_ASSERT(*n <= max);
    for (uint32_t i = 0; i < *n; i++)
        if (ref_entry(r, &e[i]))
            return 2;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Generated lists                                                                           */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int plain; /* this list is written as the broker writes messages that are not dead
                     letters: minimal encodings, three elements */

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Below n. */
static uint32_t
below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

struct out {
    uint8_t buf[1 << 16];
    size_t len;
};

static void
put(struct out *o, uint64_t v, unsigned w) /* w bytes, big-endian */
{
    for (unsigned i = 0; i < w; i++)
        o->buf[o->len++] = (uint8_t)(v >> (8 * (w - 1 - i)));
}

/* A value that may need any width. */
static uint64_t
any_value(void)
{
    static const uint64_t tops[] = {128, 256, 65536, 1ull << 32, 0};
    uint64_t top = tops[below(5)];

    return top ? rnd() % top : rnd();
}

/* An integer: mostly as msgpack-c packs it, else in a wider unsigned or signed form, or a
 * negative or non-integer value. */
static void
put_int(struct out *o, uint64_t v)
{
    unsigned k = plain ? 48 : below(48);

    if (k == 0) {
        put(o, 0xcf, 1);
        put(o, v, 8);
    } else if (k == 1) {
        unsigned w = 1u << below(4); /* d0-d3: signed; negative when the top bit is set */
        put(o, 0xd0 + (w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3), 1);
        put(o, v, w);
    } else if (k == 2) {
        put(o, 0xe0 | below(32), 1); /* negative fixint */
    } else if (k == 3) {
        put(o, below(2) ? 0xc0 : 0xca, 1); /* nil, or a float32 */
        if (o->buf[o->len - 1] == 0xca)
            put(o, rnd(), 4);
    } else if (v < 128) {
        put(o, v, 1);
    } else if (v < 256) {
        put(o, 0xcc, 1);
        put(o, v, 1);
    } else if (v < 65536) {
        put(o, 0xcd, 1);
        put(o, v, 2);
    } else if (v <= UINT32_MAX) {
        put(o, 0xce, 1);
        put(o, v, 4);
    } else {
        put(o, 0xcf, 1);
        put(o, v, 8);
    }
}

static void
put_str(struct out *o, const char *s)
{
    size_t n = strlen(s);

    put(o, 0xa0 | n, 1);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* A payload: bin8/16/32 whatever its length, sometimes a str instead. */
static void
put_payload(struct out *o)
{
    uint32_t len = below(8) == 0 ? below(600) : below(40);
    unsigned k = plain ? 12 : below(12);

    if (k == 0) {
        put(o, 0xa0 | (len & 31), 1);
        len &= 31;
    } else if (k == 1 || len >= 65536) {
        put(o, 0xc6, 1);
        put(o, len, 4);
    } else if (k == 2 || len >= 256) {
        put(o, 0xc5, 1);
        put(o, len, 2);
    } else {
        put(o, 0xc4, 1);
        put(o, len, 1);
    }
    for (uint32_t i = 0; i < len; i++)
        o->buf[o->len++] = (uint8_t)rnd();
}

/* An element after the payload: an info map (known keys, unknown ones, wrong types), or
 * anything else. */
static void
put_extra(struct out *o, int first)
{
    if (first && below(4)) {
        unsigned n = below(4);
        put(o, 0x80 | n, 1);
        for (unsigned i = 0; i < n; i++) {
            static const char *const keys[] = {"reason", "queue", "deliveries", "future"};
            put_str(o, keys[below(4)]);
            if (below(3))
                put_str(o, below(2) ? "rejected" : "jobs");
            else
                put_int(o, any_value());
        }
        return;
    }
    if (below(2))
        put(o, 0xc0, 1);
    else
        put_int(o, any_value());
}

/* One entry: [id, deliveries, payload (, extras)], mostly as the broker writes it. */
static void
put_entry(struct out *o)
{
    unsigned k = plain || below(10) < 7 ? 3 : below(6);

    if (!plain && below(20) == 0) {
        put(o, 0xdc, 1); /* array16 of a small count */
        put(o, k, 2);
    } else {
        put(o, 0x90 | k, 1);
    }
    if (k == 0)
        return;
    put_int(o, any_value());
    if (k == 1)
        return;
    put_int(o, below(10) ? below(1000) : any_value());
    if (k == 2)
        return;
    put_payload(o);
    for (unsigned j = 3; j < k; j++)
        put_extra(o, j == 3);
}

/* A list of n entries (its count may lie), then maybe a queue name as FETCH of several
 * queues adds. Returns the count written. */
static uint32_t
put_list(struct out *o)
{
    uint32_t n = below(8) == 0 ? below(200) : below(12);
    uint32_t said = below(16) == 0 ? n + below(3) - 1 : n;

    plain = below(2);

    if (said < 16) {
        put(o, 0x90 | said, 1);
    } else {
        put(o, 0xdc, 1);
        put(o, said, 2);
    }
    for (uint32_t i = 0; i < n; i++)
        put_entry(o);
    if (below(3) == 0)
        put_str(o, "jobs");
    return said;
}

/* Read o->buf[0..len) both ways and compare. */
static void
compare(slabmq_client *c, const uint8_t *buf, size_t len, int *accepted)
{
    static struct ref_entry e[65536];
    struct smq_mpr ref;
    struct smq_mpr r;
    uint32_t n = 0;
    slabmq_batch *b = NULL;
    int want;
    slabmq_status st;

    smq_mpr_init(&ref, buf, len);
    want = ref_read(&ref, e, 65536, &n);
    smq_mpr_init(&r, buf, len);
    st = smq_read_batch(c, &r, 1, &b);
    if (want) {
        T_EQ_INT(st, SLABMQ_ERR_BAD_REPLY);
        T_ASSERT(b == NULL);
        T_ASSERT(strstr(slabmq_client_errmsg(c), want == 1 ? "message list" : "message entry"));
        return;
    }
    (*accepted)++;
    T_EQ_INT(st, SLABMQ_OK);
    T_ASSERT(b != NULL);
    T_ASSERT(r.p == ref.p && r.err == 0);
    T_EQ_U64(slabmq_batch_count(b), n);
    for (uint32_t i = 0; i < n; i++) {
        const slabmq_message *m = slabmq_batch_get(b, i);
        T_EQ_U64(m->id, e[i].id);
        T_EQ_U64(m->deliveries, e[i].deliveries);
        T_EQ_U64(m->len, e[i].len);
        T_EQ_MEM(m->data, e[i].data, e[i].len);
        T_ASSERT(!m->data || (const uint8_t *)m->data < buf || (const uint8_t *)m->data >= buf + len);
        T_EQ_INT(m->dead != NULL, e[i].dead);
        if (m->dead) {
            T_EQ_U64(strlen(m->dead->reason), e[i].reason_len);
            T_EQ_MEM(m->dead->reason, e[i].reason ? e[i].reason : "", e[i].reason_len);
            T_EQ_U64(strlen(m->dead->queue), e[i].queue_len);
            T_EQ_MEM(m->dead->queue, e[i].queue ? e[i].queue : "", e[i].queue_len);
            T_EQ_U64(m->dead->deliveries, e[i].dead_deliveries);
        }
    }
    slabmq_batch_free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                     */

/* Lists as generated: both readers take the same ones. */
static void
test_generated_lists_agree(void)
{
    static struct out o;
    slabmq_client *c = smq_client_new(1000);
    int accepted = 0;

    T_ASSERT(c != NULL);
    for (int i = 0; i < 100000; i++) {
        o.len = 0;
        put_list(&o);
        compare(c, o.buf, o.len, &accepted);
    }
    printf("%d of 100000 lists accepted\n", accepted);
    T_ASSERT(accepted > 40000); /* and they are not all rejected */
    slabmq_client_close(c);
}

/* The same lists cut short at every length, or with one byte changed. */
static void
test_cut_and_changed_lists_agree(void)
{
    static struct out o;
    static uint8_t copy[sizeof(o.buf)];
    slabmq_client *c = smq_client_new(1000);
    int accepted = 0;

    T_ASSERT(c != NULL);
    for (int i = 0; i < 3000; i++) {
        o.len = 0;
        put_list(&o);
        if (o.len > 400)
            continue;
        for (size_t cut = 0; cut < o.len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1); /* its own size: ASan sees reads past it */
            T_ASSERT(p != NULL);
            memcpy(p, o.buf, cut);
            compare(c, p, cut, &accepted);
            free(p);
        }
        for (int k = 0; k < 20 && o.len; k++) {
            memcpy(copy, o.buf, o.len);
            copy[below((uint32_t)o.len)] = (uint8_t)rnd();
            compare(c, copy, o.len, &accepted);
        }
    }
    printf("%d cut or changed lists accepted\n", accepted);
    T_ASSERT(accepted > 1000);
    slabmq_client_close(c);
}

/* Plain entries as the broker writes them, ids and deliveries of every width, payloads
 * of 0 to 300 bytes, at the end of the reply: every one is read, to the last byte. */
static void
test_plain_entries_of_every_width(void)
{
    static struct out o;
    static const uint64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                    1ull << 32, UINT64_MAX};
    slabmq_client *c = smq_client_new(1000);
    int accepted = 0;

    T_ASSERT(c != NULL);
    for (size_t a = 0; a < sizeof(vals) / sizeof(vals[0]); a++) {
        for (size_t d = 0; d < 9; d++) { /* deliveries up to UINT32_MAX */
            for (uint32_t len = 0; len <= 300; len += 23) {
                uint8_t *cut;
                o.len = 0;
                put(&o, 0x92, 1);
                for (int k = 0; k < 2; k++) {
                    put(&o, 0x93, 1);
                    if (vals[a] < 128)
                        put(&o, vals[a], 1);
                    else {
                        unsigned w = vals[a] < 256 ? 1 : vals[a] < 65536 ? 2
                                     : vals[a] <= UINT32_MAX ? 4 : 8;
                        put(&o, 0xcc + (w == 1 ? 0 : w == 2 ? 1 : w == 4 ? 2 : 3), 1);
                        put(&o, vals[a], w);
                    }
                    put(&o, vals[d] < 128 ? vals[d] : vals[d] < 256 ? 0xcc
                                                     : vals[d] < 65536 ? 0xcd : 0xce, 1);
                    if (vals[d] >= 128)
                        put(&o, vals[d], vals[d] < 256 ? 1 : vals[d] < 65536 ? 2 : 4);
                    put(&o, len < 256 ? 0xc4 : 0xc5, 1);
                    put(&o, len, len < 256 ? 1 : 2);
                    for (uint32_t i = 0; i < len; i++)
                        o.buf[o.len++] = (uint8_t)(i * 7 + k);
                }
                cut = malloc(o.len); /* exactly the reply: ASan sees any read past it */
                T_ASSERT(cut != NULL);
                memcpy(cut, o.buf, o.len);
                compare(c, cut, o.len, &accepted);
                free(cut);
            }
        }
    }
    T_EQ_INT(accepted, (int)(sizeof(vals) / sizeof(vals[0])) * 9 * 14);
    slabmq_client_close(c);
}

static const struct t_case cases[] = {
    T_CASE(test_generated_lists_agree),
    T_CASE(test_cut_and_changed_lists_agree),
    T_CASE(test_plain_entries_of_every_width),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
