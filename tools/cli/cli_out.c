/* SPDX-License-Identifier: MIT */
/* Output helpers of the slabmq CLI; see cli_out.h. JSON is written by hand: the shapes are
 * tiny and fixed, and the only subtle part, payload bytes that are not UTF-8, needs a
 * decision a general library would not make for us. */
#include "cli_out.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

void
cli_out_error(const char *fmt, ...)
{
    va_list ap;

    fputs("slabmq: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

const char *
cli_out_plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

int
cli_out_digits(uint64_t v)
{
    int n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

enum cli_exit
cli_out_exit_code(slabmq_status st)
{
    switch (st) {
    case SLABMQ_OK:
        return CLI_EXIT_OK;
    case SLABMQ_ERR_IO:
    case SLABMQ_ERR_TIMEOUT:
    case SLABMQ_ERR_CONNECT:
    case SLABMQ_ERR_CLOSED:
    case SLABMQ_ERR_BAD_REPLY:
    case SLABMQ_ERR_VERSION:
    case SLABMQ_ERR_SHUTDOWN:
    case SLABMQ_ERR_AUTH:
    case SLABMQ_ERR_TLS:
        return CLI_EXIT_CONN;
    default:
        return CLI_EXIT_FAIL;
    }
}

/* The library words a broker error as "<generic text>: <broker's message>"; the broker's
 * message alone is the clearer line. */
const char *
cli_out_detail(const slabmq_client *c, slabmq_status st)
{
    const char *msg = slabmq_client_errmsg(c);
    const char *generic = slabmq_strerror(st);
    size_t n = strlen(generic);

    if (strncmp(msg, generic, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' && msg[n + 2])
        return msg + n + 2;
    return *msg ? msg : generic;
}

enum cli_exit
cli_out_status(const slabmq_client *c, slabmq_status st)
{
    cli_out_error("%s", cli_out_detail(c, st));
    return cli_out_exit_code(st);
}

/* Length of the well-formed UTF-8 sequence at p (1-4 bytes), or 0 if there is none. The
 * lead byte fixes the length and the allowed range of the second byte (Unicode table 3-7),
 * which is what excludes overlong forms, surrogates and code points past U+10FFFF. */
static size_t
utf8_sequence(const uint8_t *p, size_t left)
{
    uint8_t c = p[0];
    uint8_t lo = 0x80;
    uint8_t hi = 0xbf;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* E0 80..9F would be overlong */
        hi = c == 0xed ? 0x9f : 0xbf; /* ED A0..BF are surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* F4 90.. is past U+10FFFF */
    } else {
        return 0;                     /* continuation byte, C0, C1 or F5.. */
    }
    if (left < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

int
cli_out_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t k = utf8_sequence(p + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/* The short JSON escape of c, or NULL when it has none. */
static const char *
json_escape(uint8_t c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

void
cli_out_json_string(FILE *f, const void *p, size_t n)
{
    const uint8_t *s = p;

    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        const char *e = json_escape(s[i]);
        if (e)
            fputs(e, f);
        else if (s[i] < 0x20)
            fprintf(f, "\\u%04x", s[i]);
        else
            putc(s[i], f);
    }
    putc('"', f);
}

/* Write p[0..n) as padded base64 (RFC 4648 section 4), quoted. */
static void
put_base64(FILE *f, const uint8_t *p, size_t n)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    putc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t k = n - i < 3 ? n - i : 3;
        if (k > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (k > 2)
            v |= p[i + 2];
        putc(digits[v >> 18 & 63], f);
        putc(digits[v >> 12 & 63], f);
        putc(k > 1 ? digits[v >> 6 & 63] : '=', f);
        putc(k > 2 ? digits[v & 63] : '=', f);
    }
    putc('"', f);
}

/* "[REASON from QUEUE after N deliveries] ", the text prefix of a dead letter. */
static void
put_dead_prefix(FILE *f, const slabmq_dead_letter *d)
{
    fprintf(f, "[%s from %s after %" PRIu64 " deliver%s] ", *d->reason ? d->reason : "dead letter",
            *d->queue ? d->queue : "?", d->deliveries, d->deliveries == 1 ? "y" : "ies");
}

void
cli_out_dead_json(FILE *f, const slabmq_dead_letter *d)
{
    fputs("{\"reason\":", f);
    cli_out_json_string(f, d->reason, strlen(d->reason));
    fputs(",\"queue\":", f);
    cli_out_json_string(f, d->queue, strlen(d->queue));
    fprintf(f, ",\"deliveries\":%" PRIu64 "}", d->deliveries);
}

void
cli_out_message(FILE *f, const slabmq_message *m, int json)
{
    if (!json) {
        if (m->dead)
            put_dead_prefix(f, m->dead);
        /* a short write sets the stream's error, which main() turns into a failure */
        (void)fwrite(m->data, 1, m->len, f);
        putc('\n', f);
        return;
    }
    fprintf(f, "{\"id\":%" PRIu64 ",\"deliveries\":%" PRIu32 ",", m->id, m->deliveries);
    if (m->dead) {
        fputs("\"dead_letter\":", f);
        cli_out_dead_json(f, m->dead);
        putc(',', f);
    }
    if (cli_out_utf8_valid(m->data, m->len)) {
        fputs("\"payload\":", f);
        cli_out_json_string(f, m->data, m->len);
    } else {
        fputs("\"payload_base64\":", f);
        put_base64(f, m->data, m->len);
    }
    fputs("}\n", f);
}
