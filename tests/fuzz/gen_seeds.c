/* SPDX-License-Identifier: MIT */
/* Writes the seed corpus of the fuzz targets from the shapes in docs/protocol.md: a valid
 * request (or reply) for every op, whole sessions, and the malformed inputs of the bad-input
 * tests. Run as
 *     fuzz_gen_seeds DIR          write DIR/frame, DIR/broker, DIR/client, DIR/cluster
 *     fuzz_gen_seeds --check DIR  fail if any file it would write differs or is missing
 * Files found by fuzzing and kept as regressions live beside these under other names.
 *
 * Values are packed by msgpack-c from a small format: u uint64, i int64, s str, S str with
 * length, b bin (from a str), B bin with length, n nil, t/f bools, d double, [..] array,
 * {..} map (pairs), x raw bytes with length (malformed on purpose). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "ops.h"
#include "slabmq.h"

struct out {
    uint8_t buf[1 << 18];
    size_t len;
};

static const char *root;
static int checking;
static int failures;

static void
put(struct out *o, const void *p, size_t n)
{
    if (n > sizeof(o->buf) - o->len) {
        fprintf(stderr, "gen_seeds: seed too large\n");
        exit(1);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void
put_byte(struct out *o, uint8_t b)
{
    put(o, &b, 1);
}

static void
put_header(struct out *o, uint32_t n)
{
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};

    put(o, h, 4);
}

/* Items at this level of fmt (up to the matching close bracket). */
static unsigned
count_items(const char *f)
{
    unsigned n = 0;
    int depth = 0;

    for (; *f && !(depth == 0 && (*f == ']' || *f == '}')); f++) {
        if (depth == 0)
            n++;
        if (*f == '[' || *f == '{')
            depth++;
        else if (*f == ']' || *f == '}')
            depth--;
    }
    return n;
}

static const char *
pack(msgpack_packer *pk, const char *f, va_list *ap)
{
    while (*f && *f != ']' && *f != '}') {
        char ch = *f++;
        const char *s;
        size_t n;
        switch (ch) {
        case 'u':
            msgpack_pack_uint64(pk, va_arg(*ap, uint64_t));
            break;
        case 'i':
            msgpack_pack_int64(pk, va_arg(*ap, int64_t));
            break;
        case 's':
            s = va_arg(*ap, const char *);
            msgpack_pack_str_with_body(pk, s, strlen(s));
            break;
        case 'S':
            s = va_arg(*ap, const char *);
            n = va_arg(*ap, size_t);
            msgpack_pack_str_with_body(pk, s, n);
            break;
        case 'b':
            s = va_arg(*ap, const char *);
            msgpack_pack_bin_with_body(pk, s, strlen(s));
            break;
        case 'B':
            s = va_arg(*ap, const char *);
            n = va_arg(*ap, size_t);
            msgpack_pack_bin_with_body(pk, s, n);
            break;
        case 'x':
            s = va_arg(*ap, const char *);
            n = va_arg(*ap, size_t);
            msgpack_sbuffer_write(pk->data, s, n);
            break;
        case 'n':
            msgpack_pack_nil(pk);
            break;
        case 't':
            msgpack_pack_true(pk);
            break;
        case 'f':
            msgpack_pack_false(pk);
            break;
        case 'd':
            msgpack_pack_double(pk, va_arg(*ap, double));
            break;
        case '[':
            msgpack_pack_array(pk, count_items(f));
            f = pack(pk, f, ap) + 1;
            break;
        case '{':
            msgpack_pack_map(pk, count_items(f) / 2);
            f = pack(pk, f, ap) + 1;
            break;
        default:
            fprintf(stderr, "gen_seeds: bad format '%c'\n", ch);
            exit(1);
        }
    }
    return f;
}

/* Append one frame whose body is the value(s) fmt describes. */
static void
frame(struct out *o, const char *fmt, ...)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    va_list ap;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    va_start(ap, fmt);
    pack(&pk, fmt, &ap);
    va_end(ap);
    put_header(o, (uint32_t)sb.size);
    put(o, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Write (or compare) DIR/target/name. */
static void
emit(const char *target, const char *name, const struct out *o)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (!checking && mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_seeds: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    if (checking) {
        static uint8_t have[1 << 18];
        size_t n = 0;
        f = fopen(path, "rb");
        if (f) {
            n = fread(have, 1, sizeof(have), f);
            fclose(f);
        }
        if (!f || n != o->len || memcmp(have, o->buf, n) != 0) {
            fprintf(stderr, "gen_seeds: %s is %s; run fuzz_gen_seeds %s\n", path,
                    f ? "out of date" : "missing", root);
            failures++;
        }
        return;
    }
    f = fopen(path, "wb");
    if (!f || fwrite(o->buf, 1, o->len, f) != o->len || fclose(f) != 0) {
        fprintf(stderr, "gen_seeds: cannot write %s\n", path);
        exit(1);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                  */

#define REQ_HELLO(o, rid) frame(o, "[uuus]", (uint64_t)SMQ_OP_HELLO, (uint64_t)(rid), \
                                (uint64_t)1, "seed")

/* One valid request of each op (after a HELLO), rids from 2. */
static void
requests_every_op(struct out *o)
{
    frame(o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)2);
    frame(o, "[uus{sususususs}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)3, "jobs",
          "visibility_ms", (uint64_t)1, "max_messages", (uint64_t)3, "max_bytes",
          (uint64_t)100, "retry_backoff_ms", (uint64_t)0, "overflow", "drop-oldest");
    frame(o, "[uus]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)4, "other");
    frame(o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)5, "jobs", "hello");
    frame(o, "[uus[bbb]]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)6, "jobs", "a", "",
          "ccc");
    frame(o, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)7, "jobs", (uint64_t)2, (uint64_t)0);
    frame(o, "[uu[uu]]", (uint64_t)SMQ_OP_ACK, (uint64_t)8, (uint64_t)1, (uint64_t)2);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)9, "jobs", (uint64_t)10);
    frame(o, "[uu[u]]", (uint64_t)SMQ_OP_TOUCH, (uint64_t)10, (uint64_t)3);
    frame(o, "[uu[uu]u]", (uint64_t)SMQ_OP_NACK, (uint64_t)11, (uint64_t)3, (uint64_t)4,
          (uint64_t)0);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_PEEK, (uint64_t)12, "jobs", (uint64_t)5);
    frame(o, "[uus]", (uint64_t)SMQ_OP_PAUSE, (uint64_t)13, "jobs");
    frame(o, "[uusuuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)14, "jobs", (uint64_t)1,
          (uint64_t)0, (uint64_t)1);
    frame(o, "[uus]", (uint64_t)SMQ_OP_RESUME, (uint64_t)15, "jobs");
    frame(o, "[uusuuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)16, "jobs", (uint64_t)1,
          (uint64_t)0, (uint64_t)1);
    frame(o, "[uun]", (uint64_t)SMQ_OP_STATS, (uint64_t)17);
    frame(o, "[uu]", (uint64_t)SMQ_OP_STATS, (uint64_t)18);
    frame(o, "[uus]", (uint64_t)SMQ_OP_STATS, (uint64_t)19, "jobs");
    frame(o, "[uu]", (uint64_t)SMQ_OP_LIST, (uint64_t)20);
    frame(o, "[uus]", (uint64_t)SMQ_OP_PURGE, (uint64_t)21, "jobs");
    frame(o, "[uus]", (uint64_t)SMQ_OP_DELETE, (uint64_t)22, "other");
    frame(o, "[uu[u]u]", (uint64_t)SMQ_OP_NACK, (uint64_t)23, (uint64_t)99,
          (uint64_t)4294967295u);
}

/* The work-queue ops and options (after a HELLO), rids from 2: options maps of DECLARE and
 * PUBLISH, FETCH from a list of queues, TERM into a dead-letter queue and dead letters read
 * back (4-element messages), SUBSCRIBE with its DELIVER pushes, UNSUBSCRIBE, AUTH on a broker
 * without users, a subscription ended by DELETE, overflow to a dead-letter queue. Message ids
 * are those a fresh broker gives: 1, 2, ... */
static void
requests_work_queue(struct out *o)
{
    frame(o, "[uus{susssususssusu}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)2, "jobs",
          "max_deliveries", (uint64_t)2, "dead_letter", "dead", "ttl_ms", (uint64_t)60000,
          "dedup_window", (uint64_t)1024, "confirm", "memory", "retry_backoff_ms",
          (uint64_t)0, "retry_backoff_max_ms", (uint64_t)100);
    frame(o, "[uusb{sssususs}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)3, "jobs", "one", "id",
          "p1", "priority", (uint64_t)3, "ttl_ms", (uint64_t)1000, "confirm", "memory");
    frame(o, "[uusb{sB}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, "jobs", "dup", "id", "p1",
          (size_t)2);
    frame(o, "[uusb{susu}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)5, "jobs", "later",
          "delay_ms", (uint64_t)0, "at_ms", (uint64_t)1);
    frame(o, "[uus[bb]{su}]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)6, "jobs", "a", "b",
          "priority", (uint64_t)1);
    frame(o, "[uu[ss]uu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)7, "other", "jobs", (uint64_t)2,
          (uint64_t)0);
    frame(o, "[uu[uu]]", (uint64_t)SMQ_OP_TERM, (uint64_t)8, (uint64_t)1, (uint64_t)3);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)9, "dead", (uint64_t)5);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)10, "jobs", (uint64_t)2);
    frame(o, "[uu[uuu]]", (uint64_t)SMQ_OP_ACK, (uint64_t)11, (uint64_t)2, (uint64_t)3,
          (uint64_t)4);
    frame(o, "[uu[u]]", (uint64_t)SMQ_OP_TOUCH, (uint64_t)12, (uint64_t)2);
    frame(o, "[uuu]", (uint64_t)SMQ_OP_UNSUBSCRIBE, (uint64_t)13, (uint64_t)1);
    frame(o, "[uuu]", (uint64_t)SMQ_OP_UNSUBSCRIBE, (uint64_t)14, (uint64_t)99);
    frame(o, "[uus]", (uint64_t)SMQ_OP_STATS, (uint64_t)15, "jobs");
    frame(o, "[uuss]", (uint64_t)SMQ_OP_AUTH, (uint64_t)16, "user", "password");
    frame(o, "[uu[ss]uu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)17, "a", "b", (uint64_t)1,
          (uint64_t)0);
    frame(o, "[uus{st}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)18, "x", "durable");
    frame(o, "[uusu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)19, "jobs", (uint64_t)1);
    frame(o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)20, "jobs", "pushed");
    frame(o, "[uu[u]u]", (uint64_t)SMQ_OP_NACK, (uint64_t)21, (uint64_t)6, (uint64_t)0);
    frame(o, "[uus]", (uint64_t)SMQ_OP_DELETE, (uint64_t)22, "jobs");
    frame(o, "[uus{sssu}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)23, "q2", "overflow",
          "dead-letter", "max_messages", (uint64_t)1);
    frame(o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)24, "q2", "a");
    frame(o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)25, "q2", "b");
    frame(o, "[uusu]", (uint64_t)SMQ_OP_PEEK, (uint64_t)26, "q2.dlq", (uint64_t)5);
    frame(o, "[uu[s]uuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)27, "q2.dlq", (uint64_t)1,
          (uint64_t)0, (uint64_t)1);
    frame(o, "[uus]", (uint64_t)SMQ_OP_STATS, (uint64_t)28, "q2");
    frame(o, "[uu]", (uint64_t)SMQ_OP_STATS, (uint64_t)29);
}

/* The work-queue ops with wrong arguments (each gets an error reply, connection open). */
static void
requests_work_queue_wrong_args(struct out *o)
{
    frame(o, "[uus]", (uint64_t)SMQ_OP_TERM, (uint64_t)2, "x");
    frame(o, "[uu[i]]", (uint64_t)SMQ_OP_TERM, (uint64_t)3, (int64_t)-1);
    frame(o, "[uu[u]]", (uint64_t)SMQ_OP_TERM, (uint64_t)4, (uint64_t)7);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)5, "jobs", (uint64_t)0);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)6, "jobs", (uint64_t)1 << 40);
    frame(o, "[uus]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)7, "jobs");
    frame(o, "[uus]", (uint64_t)SMQ_OP_UNSUBSCRIBE, (uint64_t)8, "x");
    frame(o, "[uuuu]", (uint64_t)SMQ_OP_AUTH, (uint64_t)9, (uint64_t)1, (uint64_t)2);
    frame(o, "[uu[]u]", (uint64_t)SMQ_OP_FETCH, (uint64_t)10, (uint64_t)1);
    frame(o, "[uu[ssssssssssssssssss]u]", (uint64_t)SMQ_OP_FETCH, (uint64_t)11, "a", "b", "c",
          "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
          (uint64_t)1);
    frame(o, "[uu[su]u]", (uint64_t)SMQ_OP_FETCH, (uint64_t)12, "a", (uint64_t)1, (uint64_t)1);
    frame(o, "[uusb{ss}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)13, "jobs", "x", "id", "");
    frame(o, "[uusb{su}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)14, "jobs", "x", "priority",
          (uint64_t)10);
    frame(o, "[uusb{ss}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)15, "jobs", "x", "confirm",
          "never");
    frame(o, "[uusb{uu}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)16, "jobs", "x", (uint64_t)1,
          (uint64_t)1);
    frame(o, "[uusbu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)17, "jobs", "x", (uint64_t)1);
    frame(o, "[uus[b]{ss}]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)18, "jobs", "x", "id",
          "p");
    frame(o, "[uus{ss}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)19, "jobs", "dead_letter",
          "jobs");
    frame(o, "[uus{su}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)20, "jobs", "dedup_window",
          (uint64_t)5);
    frame(o, "[uus{ss}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)21, "jobs", "confirm", "disk");
    frame(o, "[uuu[]]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)22, (uint64_t)0);
}

/* The malformed bodies and frames of tests/integration/test_bad_*.c, one per seed. */
struct bad {
    const char *name;
    const char *bytes; /* the whole frame(s), header included */
    size_t len;
};

#define BAD(name, lit) {name, lit, sizeof(lit) - 1}
static const struct bad bad_inputs[] = {
    BAD("len0", "\x00\x00\x00\x00"),
    BAD("len_max_plus1", "\x00\x10\x04\x01"),
    BAD("len_ffffffff", "\xff\xff\xff\xff"),
    BAD("http_get", "GET / HTTP/1.1\r\n\r\n"),
    BAD("tls_hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    BAD("truncated_array", "\x00\x00\x00\x01\x91"),
    BAD("truncated_map", "\x00\x00\x00\x03\x82\xa1\x74"),
    BAD("trailing_byte", "\x00\x00\x00\x03\x92\x02\x07\x00"),
    BAD("c1", "\x00\x00\x00\x01\xc1"),
    BAD("array32_huge", "\x00\x00\x00\x05\xdd\xff\xff\xff\xff"),
    BAD("map32_huge", "\x00\x00\x00\x05\xdf\x10\x00\x00\x00"),
    BAD("array32_dd", "\x00\x00\x00\x07\xdd\xdd\xdd\xdd\xdd\xdd\x24"),
    BAD("not_array", "\x00\x00\x00\x01\x07"),
    BAD("one_element", "\x00\x00\x00\x02\x91\x02"),
    BAD("negative_op", "\x00\x00\x00\x03\x92\xff\x01"),
    BAD("float_rid", "\x00\x00\x00\x0b\x92\x02\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
    BAD("ext_body", "\x00\x00\x00\x05\x93\x02\x01\xd4\x01"),
    BAD("partial_header", "\x00\x00"),
};

/* 40 nested arrays around a PING. */
static void
nested(struct out *o)
{
    put_header(o, 42);
    for (int i = 0; i < 40; i++)
        put_byte(o, 0x91);
    put_byte(o, 0x02);
    put_byte(o, 0x01);
}

/* Requests with every kind of wrong argument (each gets an error reply, connection open). */
static void
requests_wrong_args(struct out *o)
{
    static const char long_name[201] =
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaa";

    frame(o, "[uuus]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, (uint64_t)5, "x");
    frame(o, "[uuss]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)3, "jobs", "str payload");
    frame(o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, "bad name", "x");
    frame(o, "[uuSb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)5, long_name, (size_t)201, "x");
    frame(o, "[uuSb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)6, "", (size_t)0, "x");
    frame(o, "[uuss]", (uint64_t)SMQ_OP_FETCH, (uint64_t)7, "jobs", "10");
    frame(o, "[uusu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)8, "jobs", (uint64_t)0);
    frame(o, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)9, "jobs", (uint64_t)1,
          (uint64_t)3600001);
    frame(o, "[uusuuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)10, "jobs", (uint64_t)1,
          (uint64_t)0, (uint64_t)2);
    frame(o, "[uus{su}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)11, "jobs", "unknown",
          (uint64_t)1);
    frame(o, "[uus{ss}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)12, "jobs", "overflow", "drop");
    frame(o, "[uus{su}]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)13, "jobs", "visibility_ms",
          (uint64_t)0);
    frame(o, "[uus[u]]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)14, "jobs", (uint64_t)1);
    frame(o, "[uu[i]]", (uint64_t)SMQ_OP_ACK, (uint64_t)15, (int64_t)-1);
    frame(o, "[uuu]", (uint64_t)SMQ_OP_ACK, (uint64_t)16, (uint64_t)1);
    frame(o, "[uu[u]u]", (uint64_t)SMQ_OP_NACK, (uint64_t)17, (uint64_t)1,
          (uint64_t)4294967296u);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_PEEK, (uint64_t)18, "nope", (uint64_t)1);
    frame(o, "[uusu]", (uint64_t)SMQ_OP_PEEK, (uint64_t)19, "jobs", (uint64_t)257);
    frame(o, "[uut]", (uint64_t)SMQ_OP_STATS, (uint64_t)20);
    frame(o, "[uuss]", (uint64_t)SMQ_OP_STATS, (uint64_t)21, "jobs", "extra");
    frame(o, "[uus]", (uint64_t)SMQ_OP_DELETE, (uint64_t)22, "nope");
    frame(o, "[uus]", (uint64_t)SMQ_OP_PAUSE, (uint64_t)23, "nope");
    frame(o, "[uu]", (uint64_t)0, (uint64_t)24);
    frame(o, "[uu]", (uint64_t)99, (uint64_t)25);
    frame(o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)26, (uint64_t)1);
    frame(o, "[uuus]", (uint64_t)SMQ_OP_HELLO, (uint64_t)27, (uint64_t)1, "x");
    frame(o, "[uuuu]", (uint64_t)SMQ_OP_HELLO, (uint64_t)28, (uint64_t)1, (uint64_t)1);
    frame(o, "[uux]", (uint64_t)SMQ_OP_PING, (uint64_t)29, "\xc1", (size_t)1);
    frame(o, "[uuud]", (uint64_t)SMQ_OP_FETCH, (uint64_t)30, (uint64_t)1, 1.5);
    frame(o, "[uu]x", (uint64_t)SMQ_OP_PING, (uint64_t)31, "\x00", (size_t)1);
    frame(o, "[uus[bs]]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)32, "jobs", "a", "b");
    frame(o, "[uusu]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)33, "jobs", (uint64_t)1);
}

/* ---------------------------------------------------------------------------------------- */
/* Broker seeds: flags, 8 chunk sizes, the streams                                           */

#define F_TWO_CONNS 0x01
#define F_HELLO 0x02
#define F_SMALL_MSG 0x04
#define F_SMALL_WINDOW 0x08
#define F_SMALL_OUTPUT 0x40
#define F_HANGUP 0x80

static void
broker_head(struct out *o, uint8_t flags, const uint8_t split[8])
{
    o->len = 0;
    put_byte(o, flags);
    put(o, split, 8);
}

static const uint8_t whole[8] = {0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t bytewise[8] = {1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t ragged[8] = {3, 17, 1, 64, 5, 2, 100, 9};

static void
broker_seeds(void)
{
    struct out o;
    struct out body;
    char name[64];

    /* Every op, valid, in one stream: whole, byte by byte, ragged; also with small limits. */
    broker_head(&o, 0, whole);
    REQ_HELLO(&o, 1);
    requests_every_op(&o);
    emit("broker", "session_whole", &o);
    broker_head(&o, 0, bytewise);
    REQ_HELLO(&o, 1);
    requests_every_op(&o);
    emit("broker", "session_bytewise", &o);
    broker_head(&o, F_SMALL_MSG | F_SMALL_WINDOW, ragged);
    REQ_HELLO(&o, 1);
    requests_every_op(&o);
    emit("broker", "session_small_limits", &o);
    /* Wrong arguments after HELLO (auto HELLO from the flags). */
    broker_head(&o, F_HELLO, ragged);
    requests_wrong_args(&o);
    emit("broker", "wrong_args", &o);
    /* ACK's flags: QUIET (no reply when every id is acked; an error reply when one is not),
     * an unknown bit, a str, one argument too many, 0 (a reply), then a PING. */
    broker_head(&o, F_HELLO, ragged);
    for (uint64_t i = 0; i < 3; i++)
        frame(&o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, 2 + i, "jobs", "q");
    frame(&o, "[uusu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)5, "jobs", (uint64_t)3);
    frame(&o, "[uu[u]u]", (uint64_t)SMQ_OP_ACK, (uint64_t)6, (uint64_t)1, (uint64_t)1);
    frame(&o, "[uu[uu]u]", (uint64_t)SMQ_OP_ACK, (uint64_t)7, (uint64_t)1, (uint64_t)2,
          (uint64_t)1);
    frame(&o, "[uu[u]u]", (uint64_t)SMQ_OP_ACK, (uint64_t)8, (uint64_t)3, (uint64_t)2);
    frame(&o, "[uu[u]s]", (uint64_t)SMQ_OP_ACK, (uint64_t)9, (uint64_t)3, "1");
    frame(&o, "[uu[u]uu]", (uint64_t)SMQ_OP_ACK, (uint64_t)10, (uint64_t)3, (uint64_t)1,
          (uint64_t)1);
    frame(&o, "[uu[u]u]", (uint64_t)SMQ_OP_ACK, (uint64_t)11, (uint64_t)3, (uint64_t)0);
    frame(&o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)12);
    emit("broker", "ack_flags", &o);
    /* The malformed frames, each after a HELLO, and once before any HELLO. */
    for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
        broker_head(&o, F_HELLO, whole);
        put(&o, bad_inputs[i].bytes, bad_inputs[i].len);
        frame(&o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)2);
        snprintf(name, sizeof(name), "bad_%s", bad_inputs[i].name);
        emit("broker", name, &o);
    }
    broker_head(&o, 0, whole);
    put(&o, bad_inputs[3].bytes, bad_inputs[3].len);
    emit("broker", "bad_before_hello", &o);
    broker_head(&o, F_HELLO, whole);
    nested(&o);
    emit("broker", "bad_nested", &o);
    /* Before HELLO: another op, a wrong version. */
    broker_head(&o, 0, whole);
    frame(&o, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)1, "jobs", "x");
    emit("broker", "hello_required", &o);
    broker_head(&o, 0, whole);
    frame(&o, "[uuus]", (uint64_t)SMQ_OP_HELLO, (uint64_t)1, (uint64_t)2, "v2");
    emit("broker", "hello_version", &o);
    /* Two connections: a long-poll FETCH served by the other's PUBLISH; in-flight messages
     * requeued when the holder hangs up. Chunk sizes pick the connection (top bit). */
    {
        struct out a;
        uint8_t split[8];
        int k = 0;
        a.len = 0;
        /* one frame per chunk: its size in the low bits, the connection in the top bit */
#define TWO(conn, ...)                                                                   \
    do {                                                                                 \
        size_t before = a.len;                                                           \
        frame(&a, __VA_ARGS__);                                                          \
        split[k++] = (uint8_t)((conn) << 7 | (a.len - before));                          \
    } while (0)
        TWO(0, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)2, "jobs", (uint64_t)5,
            (uint64_t)60000);
        TWO(1, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, "jobs", "wake");
        TWO(0, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)3, "jobs", (uint64_t)1,
            (uint64_t)1);
        TWO(1, "[uus]", (uint64_t)SMQ_OP_DELETE, (uint64_t)3, "jobs");
        TWO(0, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)4, "jobs", (uint64_t)1,
            (uint64_t)60000);
        TWO(1, "[uusb]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, "jobs", "again");
        TWO(0, "[uu]", (uint64_t)SMQ_OP_LIST, (uint64_t)5);
        TWO(1, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)5, "jobs", (uint64_t)1,
            (uint64_t)0);
#undef TWO
        broker_head(&o, F_TWO_CONNS | F_HELLO, split);
        put(&o, a.buf, a.len);
        emit("broker", "two_conns_long_poll", &o);
    }
    /* Memory: a PUBLISH frame announced at 1 MiB (only its head sent) at each ballast level,
     * refused from its header and skipped; and an ordinary session over the limit. */
    body.len = 0;
    frame(&body, "[uusB]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, "jobs",
          "0123456789012345678901234567890123456789", (size_t)40);
    for (unsigned level = 0; level < 4; level++) {
        static const uint8_t big[4] = {0x00, 0x10, 0x00, 0x00}; /* body of 1 MiB */
        broker_head(&o, (uint8_t)(F_HELLO | level << 4), ragged);
        put(&o, big, 4);
        put(&o, "\x94\x08\x02\xa4jobs\xc6\x00\x0f\xff\xf3", 13);
        put(&o, body.buf + 4, body.len - 4); /* some of its payload */
        frame(&o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)3);
        snprintf(name, sizeof(name), "memory_big_publish_%u", level);
        emit("broker", name, &o);
        broker_head(&o, (uint8_t)(level << 4), ragged);
        REQ_HELLO(&o, 1);
        requests_every_op(&o);
        snprintf(name, sizeof(name), "memory_session_%u", level);
        emit("broker", name, &o);
    }
    /* A PUBLISH larger than the 64 KiB read buffer (16 KiB when memory is short): the buffer
     * grows to the frame, then shrinks back; a PING after it shares its last chunk. */
    for (unsigned level = 0; level < 3; level += 2) {
        static char payload[66000];
        memset(payload, 'p', sizeof(payload));
        broker_head(&o, (uint8_t)(F_HELLO | level << 4), whole);
        frame(&o, "[uusB]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, "big", payload,
              sizeof(payload));
        frame(&o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)3);
        snprintf(name, sizeof(name), "large_publish_%u", level);
        emit("broker", name, &o);
    }
    /* 66 KiB of PINGs in one chunk: the 64 KiB read buffer ends inside a frame, which moves
     * to the front; and once more with the client gone half way, so replies hit EPIPE. */
    for (int hang = 0; hang < 2; hang++) {
        broker_head(&o, (uint8_t)(F_HELLO | (hang ? F_HANGUP : 0)), hang ? ragged : whole);
        for (unsigned i = 0; i < (hang ? 300u : 9500u); i++)
            frame(&o, "[uu]", (uint64_t)SMQ_OP_PING, (uint64_t)(i % 100));
        emit("broker", hang ? "client_hangs_up" : "read_buffer_compaction", &o);
    }
    /* Many pipelined requests in one chunk; again with a 4 KiB output cap, so reading pauses
     * until the replies are written. */
    for (int cap = 0; cap < 2; cap++) {
        broker_head(&o, (uint8_t)(F_HELLO | (cap ? F_SMALL_OUTPUT : 0)), whole);
        for (unsigned i = 0; i < 300; i++)
            frame(&o, "[uu]", (uint64_t)(i % 10 ? SMQ_OP_PING : SMQ_OP_STATS),
                  (uint64_t)i + 2);
        emit("broker", cap ? "pipelined_output_cap" : "pipelined_pings", &o);
    }
    /* The work-queue ops: whole, ragged with a small window (credit and FETCH limited), and
     * their wrong arguments. */
    broker_head(&o, 0, whole);
    REQ_HELLO(&o, 1);
    requests_work_queue(&o);
    emit("broker", "work_queue_whole", &o);
    broker_head(&o, F_SMALL_WINDOW, ragged);
    REQ_HELLO(&o, 1);
    requests_work_queue(&o);
    emit("broker", "work_queue_ragged", &o);
    broker_head(&o, F_HELLO, ragged);
    requests_work_queue_wrong_args(&o);
    emit("broker", "work_queue_wrong_args", &o);
    /* Two connections: one subscribes, the other publishes (DELIVER pushes between replies),
     * the subscriber TERMs and ACKs, then the queue is deleted under the subscription. */
    {
        struct out a;
        uint8_t split[8];
        int k = 0;
        a.len = 0;
#define TWO(conn, ...)                                                                   \
    do {                                                                                 \
        size_t before = a.len;                                                           \
        frame(&a, __VA_ARGS__);                                                          \
        split[k++] = (uint8_t)((conn) << 7 | (a.len - before));                          \
    } while (0)
        TWO(0, "[uusu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)2, "jobs", (uint64_t)2);
        TWO(1, "[uus[bbb]]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)2, "jobs", "a", "b",
            "c");
        TWO(0, "[uu[u]]", (uint64_t)SMQ_OP_TERM, (uint64_t)3, (uint64_t)1);
        TWO(1, "[uusuu]", (uint64_t)SMQ_OP_FETCH, (uint64_t)3, "jobs.dlq", (uint64_t)1,
            (uint64_t)60000);
        TWO(0, "[uu[uu]]", (uint64_t)SMQ_OP_ACK, (uint64_t)4, (uint64_t)2, (uint64_t)3);
        TWO(1, "[uusb{su}]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, "jobs", "d", "priority",
            (uint64_t)9);
        TWO(1, "[uus]", (uint64_t)SMQ_OP_DELETE, (uint64_t)5, "jobs");
        TWO(0, "[uuu]", (uint64_t)SMQ_OP_UNSUBSCRIBE, (uint64_t)5, (uint64_t)1);
#undef TWO
        broker_head(&o, F_TWO_CONNS | F_HELLO, split);
        put(&o, a.buf, a.len);
        emit("broker", "two_conns_subscribe", &o);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Frame seeds: a byte choosing the maximum body, then frames                                */

static void
frame_seeds(void)
{
    struct out o;
    char name[64];

    o.len = 0;
    put_byte(&o, 2);
    REQ_HELLO(&o, 1);
    requests_every_op(&o);
    emit("frame", "requests", &o);
    o.len = 0;
    put_byte(&o, 2);
    requests_wrong_args(&o);
    emit("frame", "requests_wrong_args", &o);
    /* The replies of docs/protocol.md section 9, byte for byte. */
    o.len = 0;
    put_byte(&o, 3);
    put(&o, "\x00\x00\x00\x25\x99\x01\x01\x00\x01\xad" "slabmqd 0.1.0"
            "\xce\x00\x10\x00\x00\xce\x00\x10\x04\x00\xce\x00\x10\x00\x00\xcd\x27\x10", 41);
    put(&o, "\x00\x00\x00\x05\x94\x08\x02\x00\x01", 9);
    put(&o, "\x00\x00\x00\x19\x94\x0a\x04\x00\x92\x93\x01\x01\xc4\x05hello\x93\x02\x01\xc4\x05"
            "world", 29);
    put(&o, "\x00\x00\x00\x1b\x94\x00\x00\x01\xb6" "empty frame (length 0)", 31);
    emit("frame", "replies_spec", &o);
    for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
        o.len = 0;
        put_byte(&o, (uint8_t)(i & 3));
        put(&o, bad_inputs[i].bytes, bad_inputs[i].len);
        snprintf(name, sizeof(name), "bad_%s", bad_inputs[i].name);
        emit("frame", name, &o);
    }
    o.len = 0;
    put_byte(&o, 2);
    nested(&o);
    emit("frame", "bad_nested", &o);
    /* Every msgpack format once, in one array (ext, float, negative, str/bin widths). */
    o.len = 0;
    put_byte(&o, 3);
    frame(&o, "[uiiiiddntfsSB]", (uint64_t)UINT64_MAX, (int64_t)-1, (int64_t)-200,
          (int64_t)-40000, (int64_t)INT64_MIN, 1.5, 2.25, "str",
          "0123456789012345678901234567890123", (size_t)34, "\x01\x02", (size_t)2);
    frame(&o, "x", "\x94\xd4\x01\x02\xc7\x01\x05\x07\xd0\x05\xd1\x00\x05", (size_t)13);
    emit("frame", "every_format", &o);
    o.len = 0;
    put_byte(&o, 2);
    requests_work_queue(&o);
    requests_work_queue_wrong_args(&o);
    emit("frame", "requests_work_queue", &o);
}

/* ---------------------------------------------------------------------------------------- */
/* Client seeds: flags, 8 calls, the broker's bytes                                          */

enum call {
    C_PING, C_DECLARE, C_DELETE, C_PURGE, C_LIST, C_STATS, C_STATS_Q, C_PUBLISH, C_BATCH,
    C_FETCH, C_PEEK, C_ACK, C_NACK, C_TOUCH, C_PAUSE_RESUME, C_ASYNC_FLUSH, C_ASYNC_SEND,
    C_HELLO, C_SUBSCRIBE, C_RECEIVE, C_RECEIVE_WAIT, C_UNSUBSCRIBE, C_FETCH_ANY, C_PUBLISH_OPTS,
    C_TERM, C_ASYNC_OPTS, C_QUIET_FETCH, C_QUIET_SEND
};

static void
client_head(struct out *o, int hello, const uint8_t calls[8])
{
    o->len = 0;
    put_byte(o, hello ? 1 : 0);
    put(o, calls, 8);
    if (hello)
        frame(o, "[uuuusuuuu]", (uint64_t)SMQ_OP_HELLO, (uint64_t)1, (uint64_t)0, (uint64_t)1,
              "slabmqd 0.1.0", (uint64_t)1048576, (uint64_t)1049600, (uint64_t)1048576,
              (uint64_t)10000);
}

/* As client_head, with the 7-result HELLO of brokers with authentication (auth_required
 * false). */
static void
client_head7(struct out *o, const uint8_t calls[8])
{
    o->len = 0;
    put_byte(o, 1);
    put(o, calls, 8);
    frame(o, "[uuuusuuuuf]", (uint64_t)SMQ_OP_HELLO, (uint64_t)1, (uint64_t)0, (uint64_t)1,
          "slabmqd 0.2.0", (uint64_t)1048576, (uint64_t)1049600, (uint64_t)1048576,
          (uint64_t)10000);
}

/* As client_head, with the 8-result HELLO of brokers that announce features (QUIET ACK);
 * flags: byte 0 of the input (bit 0, HELLO, is set here; bit 2: a window of 4). */
static void
client_head8(struct out *o, uint8_t flags, const uint8_t calls[8])
{
    o->len = 0;
    put_byte(o, (uint8_t)(flags | 1));
    put(o, calls, 8);
    frame(o, "[uuuusuuuufu]", (uint64_t)SMQ_OP_HELLO, (uint64_t)1, (uint64_t)0, (uint64_t)1,
          "slabmqd 0.2.0", (uint64_t)1048576, (uint64_t)1049600, (uint64_t)1048576,
          (uint64_t)10000, (uint64_t)1);
}

/* QUIET ACKs: confirmed by the reply to a later request (a FETCH, the NACK between them,
 * the PING of a flush), their errors read first; with a window of 4, one ack in two plain;
 * then replies that confirm nothing: to a request never sent, a refused PING, a
 * connection-level error while they are outstanding. */
static void
client_quiet_seeds(void)
{
    struct out o;

    {
        static const uint8_t c[8] = {C_QUIET_FETCH, C_ASYNC_FLUSH, C_QUIET_SEND, C_PING,
                                     C_QUIET_FETCH, C_PING, C_PING, C_PING};
        client_head8(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)5, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)6, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)8, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_NACK, (uint64_t)10, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_ACK, (uint64_t)11, (uint64_t)11,
              "1 of 2 ids unknown");
        emit("client", "quiet_acks", &o);
    }
    {
        static const uint8_t c[8] = {C_QUIET_FETCH, C_QUIET_FETCH, C_ASYNC_FLUSH, C_PING,
                                     C_PING, C_PING, C_PING, C_PING};
        client_head8(&o, 4, c);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_ACK, (uint64_t)2, (uint64_t)11,
              "1 of 1 ids unknown");
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_ACK, (uint64_t)3, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)5, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_ACK, (uint64_t)7, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_ACK, (uint64_t)8, (uint64_t)11,
              "1 of 2 ids unknown");
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)9, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)10, (uint64_t)0, (uint64_t)5);
        frame(&o, "[uuus]", (uint64_t)0, (uint64_t)0, (uint64_t)15, "broker is shutting down");
        emit("client", "quiet_ack_errors_window_4", &o);
    }
    {
        static const uint8_t c[8] = {C_QUIET_FETCH, C_PING, C_PING, C_PING, C_PING, C_PING,
                                     C_PING, C_PING};
        client_head8(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)9, (uint64_t)0);
        emit("client", "quiet_bad_reply_id", &o);
        client_head8(&o, 0, c);
        frame(&o, "[u]", (uint64_t)SMQ_OP_FETCH);
        emit("client", "quiet_bad_reply_head", &o);
    }
    {
        static const uint8_t c[8] = {C_ASYNC_FLUSH, C_PING, C_PING, C_PING, C_PING, C_PING,
                                     C_PING, C_PING};
        client_head8(&o, 4, c);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_PING, (uint64_t)4, (uint64_t)6, "refused");
        emit("client", "quiet_ping_refused", &o);
    }
}

static void
client_seeds(void)
{
    struct out o;
    char name[64];

    /* Each call with its success reply (rid 2 after HELLO's 1). */
    {
        static const uint8_t c[8] = {C_PING, C_DECLARE, C_DELETE, C_PURGE, C_PUBLISH, C_BATCH,
                                     C_ACK, C_NACK};
        client_head(&o, 1, c);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)2, (uint64_t)0);
        frame(&o, "[uuut]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)3, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_DELETE, (uint64_t)4, (uint64_t)0, (uint64_t)7);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PURGE, (uint64_t)5, (uint64_t)0, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)6, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuuuu]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)7, (uint64_t)0,
              (uint64_t)2, (uint64_t)3);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_ACK, (uint64_t)8, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_NACK, (uint64_t)9, (uint64_t)0, (uint64_t)3);
        emit("client", "calls_ok", &o);
    }
    {
        static const uint8_t c[8] = {C_FETCH, C_PEEK, C_STATS, C_STATS_Q, C_LIST, C_TOUCH,
                                     C_PAUSE_RESUME, C_PING};
        client_head(&o, 1, c);
        frame(&o, "[uuu[[uub][uub][uuB]]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)2, (uint64_t)0,
              (uint64_t)1, (uint64_t)1, "hello", (uint64_t)2, (uint64_t)3, "world",
              (uint64_t)70000, (uint64_t)1, "", (size_t)0);
        frame(&o, "[uuu[[uub]]]", (uint64_t)SMQ_OP_PEEK, (uint64_t)3, (uint64_t)0, (uint64_t)4,
              (uint64_t)0, "peeked");
        frame(&o, "[uuu{susususu}]", (uint64_t)SMQ_OP_STATS, (uint64_t)4, (uint64_t)0,
              "uptime_ms", (uint64_t)5, "queues", (uint64_t)1, "memory_used",
              (uint64_t)1 << 33, "slab.13.chunk_size", (uint64_t)2048);
        frame(&o, "[uuu{susu}]", (uint64_t)SMQ_OP_STATS, (uint64_t)5, (uint64_t)0, "ready",
              (uint64_t)2, "inflight", (uint64_t)0);
        frame(&o, "[uuu[[suu][suuu]]]", (uint64_t)SMQ_OP_LIST, (uint64_t)6, (uint64_t)0, "a",
              (uint64_t)1, (uint64_t)0, "q", (uint64_t)0, (uint64_t)2, (uint64_t)9);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_TOUCH, (uint64_t)7, (uint64_t)0, (uint64_t)2);
        frame(&o, "[uuuf]", (uint64_t)SMQ_OP_PAUSE, (uint64_t)8, (uint64_t)0);
        frame(&o, "[uuut]", (uint64_t)SMQ_OP_RESUME, (uint64_t)9, (uint64_t)0);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)10, (uint64_t)0);
        emit("client", "results", &o);
    }
    {
        static const uint8_t c[8] = {C_ASYNC_FLUSH, C_ASYNC_SEND, C_ASYNC_FLUSH, C_HELLO,
                                     C_PING, C_PING, C_PING, C_PING};
        client_head(&o, 1, c);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)2, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_ACK, (uint64_t)3, (uint64_t)11,
              "1 of 1 ids unknown");
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (uint64_t)2);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)5, (uint64_t)0, (uint64_t)3);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_ACK, (uint64_t)6, (uint64_t)9, "memory");
        frame(&o, "[uuuusuu]", (uint64_t)SMQ_OP_HELLO, (uint64_t)7, (uint64_t)0, (uint64_t)1,
              "old broker", (uint64_t)512, (uint64_t)1536);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)8, (uint64_t)0);
        emit("client", "pipelined", &o);
    }
    /* Every wire error code as the reply to a PING, then the connection-level ones. */
    for (uint64_t code = 1; code <= 15; code++) {
        static const uint8_t c[8] = {C_PING, C_PING, C_PING, C_PING, C_PING, C_PING, C_PING,
                                     C_PING};
        client_head(&o, 1, c);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_PING, (uint64_t)2, code, "error text");
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)3, code);
        frame(&o, "[uuus]", (uint64_t)0, (uint64_t)0, code, "connection-level");
        snprintf(name, sizeof(name), "error_%02u", (unsigned)code);
        emit("client", name, &o);
    }
    /* Replies that are wrong: mismatched ids and ops, short or mistyped results, frames with
     * lengths 0, over 1 GiB, and a header announcing 1 GiB with nothing after it. */
    {
        static const uint8_t c[8] = {C_FETCH, C_STATS, C_LIST, C_PUBLISH, C_BATCH, C_DECLARE,
                                     C_HELLO, C_PING};
        client_head(&o, 0, c);
        frame(&o, "[uuu[[uus]]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0,
              (uint64_t)1, (uint64_t)1, "str, not bin");
        emit("client", "bad_fetch_entry", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0);
        frame(&o, "[uuu{uu}]", (uint64_t)SMQ_OP_STATS, (uint64_t)2, (uint64_t)0, (uint64_t)1,
              (uint64_t)2);
        emit("client", "bad_stats_key", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)9, (uint64_t)0);
        emit("client", "bad_rid", &o);
        client_head(&o, 0, c);
        put(&o, "\x00\x00\x00\x00", 4);
        emit("client", "bad_len0", &o);
        client_head(&o, 0, c);
        put(&o, "\x40\x00\x00\x01", 4);
        emit("client", "bad_len_over_1gib", &o);
        client_head(&o, 0, c);
        put(&o, "\x40\x00\x00\x00\x94\x0a\x01\x00", 8);
        emit("client", "bad_len_1gib_announced", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0);
        frame(&o, "[uuu{}]", (uint64_t)SMQ_OP_STATS, (uint64_t)2, (uint64_t)0);
        frame(&o, "[uuu[[uuu]]]", (uint64_t)SMQ_OP_LIST, (uint64_t)3, (uint64_t)0, (uint64_t)1,
              (uint64_t)2, (uint64_t)3);
        emit("client", "bad_list_row", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0);
        frame(&o, "[uuu{}]", (uint64_t)SMQ_OP_STATS, (uint64_t)2, (uint64_t)0);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_LIST, (uint64_t)3, (uint64_t)0);
        frame(&o, "[uuui]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (int64_t)-1);
        emit("client", "bad_publish_id", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0);
        frame(&o, "[uuu{}]", (uint64_t)SMQ_OP_STATS, (uint64_t)2, (uint64_t)0);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_LIST, (uint64_t)3, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuuuu]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)5, (uint64_t)0,
              (uint64_t)2, (uint64_t)2);
        emit("client", "bad_batch_count", &o);
        client_head(&o, 0, c);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_FETCH, (uint64_t)1, (uint64_t)0);
        frame(&o, "[uuu{}]", (uint64_t)SMQ_OP_STATS, (uint64_t)2, (uint64_t)0);
        frame(&o, "[uuu[]]", (uint64_t)SMQ_OP_LIST, (uint64_t)3, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuuuu]", (uint64_t)SMQ_OP_PUBLISH_BATCH, (uint64_t)5, (uint64_t)0,
              (uint64_t)2, (uint64_t)3);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_DECLARE, (uint64_t)6, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuuusuuuu]", (uint64_t)SMQ_OP_HELLO, (uint64_t)7, (uint64_t)0, (uint64_t)1,
              "x", (uint64_t)1 << 32, (uint64_t)1, (uint64_t)1, (uint64_t)1);
        emit("client", "bad_declare_hello", &o);
    }
    /* Subscriptions: DELIVER pushes after the SUBSCRIBE reply and before other replies (kept
     * for receive), a dead letter among them, the push that ends a subscription. */
    {
        static const uint8_t c[8] = {C_SUBSCRIBE, C_RECEIVE, C_PING, C_RECEIVE, C_UNSUBSCRIBE,
                                     C_RECEIVE_WAIT, C_TERM, C_PING};
        client_head7(&o, c);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)2, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu[[uub][uub]]]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)1, (uint64_t)0,
              (uint64_t)5, (uint64_t)1, "m", (uint64_t)6, (uint64_t)2, "n");
        frame(&o, "[uuu[[uub{sssssu}]]]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)1, (uint64_t)0,
              (uint64_t)7, (uint64_t)1, "dl", "reason", "rejected", "queue", "q", "deliveries",
              (uint64_t)3);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)3, (uint64_t)0);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_UNSUBSCRIBE, (uint64_t)4, (uint64_t)0);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)1, (uint64_t)13,
              "queue deleted while waiting");
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_TERM, (uint64_t)5, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)6, (uint64_t)0);
        emit("client", "subscribe_receive", &o);
    }
    /* FETCH from several queues (the queue's name, or nil), PUBLISH with options (duplicate
     * and level; also the 1-result reply of an older broker), pipelined with options, str
     * STATS values, TERM's partial success. */
    {
        static const uint8_t c[8] = {C_FETCH_ANY, C_PUBLISH_OPTS, C_ASYNC_OPTS, C_STATS_Q,
                                     C_FETCH_ANY, C_PUBLISH_OPTS, C_TERM, C_PING};
        client_head7(&o, c);
        frame(&o, "[uuu[[uub][uub{sssssu}]]s]", (uint64_t)SMQ_OP_FETCH, (uint64_t)2,
              (uint64_t)0, (uint64_t)1, (uint64_t)1, "a", (uint64_t)2, (uint64_t)2, "b",
              "reason", "expired", "queue", "q", "deliveries", (uint64_t)0, "r");
        frame(&o, "[uuuuts]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)3, (uint64_t)0, (uint64_t)7,
              "memory");
        frame(&o, "[uuuufs]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (uint64_t)8,
              "synced");
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_TERM, (uint64_t)5, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu{suss}]", (uint64_t)SMQ_OP_STATS, (uint64_t)6, (uint64_t)0, "ready",
              (uint64_t)1, "dead_letter", "q.dlq");
        frame(&o, "[uuu[]n]", (uint64_t)SMQ_OP_FETCH, (uint64_t)7, (uint64_t)0);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)8, (uint64_t)0, (uint64_t)9);
        frame(&o, "[uuus]", (uint64_t)SMQ_OP_TERM, (uint64_t)9, (uint64_t)11,
              "1 of 3 ids unknown");
        frame(&o, "[uuu]", (uint64_t)SMQ_OP_PING, (uint64_t)10, (uint64_t)0);
        emit("client", "work_queue_results", &o);
    }
    /* Wrong work-queue replies: a push for no subscription, messages that are not an array,
     * an info that is not a map, a queue name that is not a str, an unknown level, a
     * duplicate that is not a bool, a STATS value of another type. */
    {
        static const uint8_t c[8] = {C_SUBSCRIBE, C_RECEIVE, C_FETCH_ANY, C_PUBLISH_OPTS,
                                     C_PUBLISH_OPTS, C_STATS_Q, C_RECEIVE, C_FETCH_ANY};
        client_head7(&o, c);
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_SUBSCRIBE, (uint64_t)2, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu[[uub]]]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)9, (uint64_t)0,
              (uint64_t)1, (uint64_t)1, "x");
        frame(&o, "[uuuu]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)1, (uint64_t)0, (uint64_t)1);
        frame(&o, "[uuu[[uubu]]u]", (uint64_t)SMQ_OP_FETCH, (uint64_t)3, (uint64_t)0,
              (uint64_t)1, (uint64_t)1, "x", (uint64_t)1, (uint64_t)2);
        frame(&o, "[uuuuts]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)4, (uint64_t)0, (uint64_t)1,
              "bogus");
        frame(&o, "[uuuuus]", (uint64_t)SMQ_OP_PUBLISH, (uint64_t)5, (uint64_t)0, (uint64_t)1,
              (uint64_t)1, "memory");
        frame(&o, "[uuu{sdsn}]", (uint64_t)SMQ_OP_STATS, (uint64_t)6, (uint64_t)0, "ready", 1.5,
              "dead_letter");
        frame(&o, "[uuu[[uub{uu}]]]", (uint64_t)SMQ_OP_DELIVER, (uint64_t)1, (uint64_t)0,
              (uint64_t)2, (uint64_t)1, "y", (uint64_t)1, (uint64_t)2);
        frame(&o, "[uuu[[uub{ss}]]s]", (uint64_t)SMQ_OP_FETCH, (uint64_t)7, (uint64_t)0,
              (uint64_t)3, (uint64_t)1, "z", "reason", "rejected", "r");
        emit("client", "bad_work_queue", &o);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Cluster files (fuzz target "cluster"): docs/cluster.md's example, and one mistake each of
 * test_cluster_file.errors_name_file_and_line's kinds. */

static void
text_seed(const char *name, const char *text)
{
    struct out o;

    o.len = 0;
    put(&o, text, strlen(text));
    emit("cluster", name, &o);
}

static void
cluster_seeds(void)
{
    static const char nodes[] = "node 1 client=10.0.0.1:7480 raft=10.0.0.1:7481\n"
                                "node 2 client=10.0.0.2:7480 raft=10.0.0.2:7481\n"
                                "node 3 client=10.0.0.3:7480 raft=10.0.0.3:7481\n";
    char buf[1024];

    snprintf(buf, sizeof(buf), "# three brokers\ncluster prod-eu1\npartitions 6\nreplicas 3\n%s",
             nodes);
    text_seed("example", buf);
    text_seed("one_node", "cluster solo\nreplicas 1\nnode 7 client=127.0.0.1:7480 "
                          "raft=127.0.0.1:7481 # alone\n");
    snprintf(buf, sizeof(buf), "cluster a\nreplicas 2\n%s", nodes);
    text_seed("bad_replicas", buf);
    snprintf(buf, sizeof(buf), "cluster a\npartitions 1025\n%s", nodes);
    text_seed("bad_partitions", buf);
    text_seed("bad_address", "cluster a\nreplicas 1\nnode 1 client=1.2.3:1 raft=1.2.3.4:2\n");
    text_seed("dup_node", "cluster a\nreplicas 1\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\n"
                          "node 1 client=1.2.3.5:1 raft=1.2.3.5:2\n");
    text_seed("dup_address", "cluster a\nreplicas 1\nnode 1 client=1.2.3.4:1 raft=1.2.3.4:2\n"
                             "node 2 client=1.2.3.5:1 raft=1.2.3.4:2\n");
    text_seed("unknown", "cluster a\nshards 4\n");
    text_seed("queue_names", "tenant7::jobs.dlq");
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        checking = 1;
        root = argv[2];
    } else if (argc == 2) {
        root = argv[1];
        if (mkdir(root, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "gen_seeds: mkdir %s: %s\n", root, strerror(errno));
            return 1;
        }
    } else {
        fprintf(stderr, "usage: %s [--check] CORPUS_DIR\n", argv[0]);
        return 2;
    }
    frame_seeds();
    broker_seeds();
    client_seeds();
    client_quiet_seeds();
    cluster_seeds();
    if (failures)
        return 1;
    printf("gen_seeds: corpus %s\n", checking ? "up to date" : "written");
    return 0;
}
