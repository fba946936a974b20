/* SPDX-License-Identifier: MIT */
/* Output of the slabmq CLI: exit codes, one-line error messages, JSON strings and message
 * payloads. Everything writes to stdio; nothing here talks to the broker. */
#ifndef SLABMQ_TOOLS_CLI_OUT_H
#define SLABMQ_TOOLS_CLI_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "slabmq.h"

/* Exit codes; `slabmq --help` documents them and scripts rely on them. */
enum cli_exit {
    CLI_EXIT_OK = 0,     /* success */
    CLI_EXIT_FAIL = 1,   /* the broker refused the request, or output could not be written */
    CLI_EXIT_USAGE = 2,  /* bad option, argument or queue name; nothing was sent */
    CLI_EXIT_CONN = 3,   /* cannot connect, connection lost, or timed out */
    CLI_EXIT_EMPTY = 4   /* consume found no message within --wait */
};

/* Print "slabmq: <message>" and a newline on stderr. */
void cli_out_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "s" unless n is 1, for counts in messages. */
const char *cli_out_plural(uint64_t n);

/* Digits of v in decimal, for column widths. */
int cli_out_digits(uint64_t v);

/* The exit code for a failed library call. */
enum cli_exit cli_out_exit_code(slabmq_status st);

/* The detail of the failure st of the last call on c, without the generic text the library
 * puts before the broker's own message ("no queue named foo"). Valid until the next call on
 * c. */
const char *cli_out_detail(const slabmq_client *c, slabmq_status st);

/* Report the failure st of the last call on c and return its exit code. */
enum cli_exit cli_out_status(const slabmq_client *c, slabmq_status st);

/* 1 if p[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF), else 0. */
int cli_out_utf8_valid(const uint8_t *p, size_t n);

/* Write p[0..n) as a quoted JSON string. p must be valid UTF-8: bytes from 0x80 up are
 * copied as they are, control characters, '"' and '\' are escaped. */
void cli_out_json_string(FILE *f, const void *p, size_t n);

/* Write one message: its raw payload and a newline, or with json one object
 * {"id":N,"deliveries":N,"payload":"..."} on its own line, where a payload that is not
 * valid UTF-8 appears as "payload_base64" (RFC 4648, padded) instead of "payload". A dead
 * letter's payload comes after "[REASON from QUEUE after N deliveries] ", and its JSON
 * object has "dead_letter":{...} (cli_out_dead_json) before the payload. */
void cli_out_message(FILE *f, const slabmq_message *m, int json);

/* Write a dead letter's info as {"reason":"...","queue":"...","deliveries":N}. */
void cli_out_dead_json(FILE *f, const slabmq_dead_letter *d);

#endif /* SLABMQ_TOOLS_CLI_OUT_H */
