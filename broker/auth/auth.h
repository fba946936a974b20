/* SPDX-License-Identifier: MIT */
/* Users of the broker, from the file named by --auth-file (or $SLABMQ_AUTH_FILE): their
 * secrets, stored as salted PBKDF2-HMAC-SHA256 hashes, and their permissions, glob patterns of
 * queue names per kind of access. docs/security.md describes the file format for operators.
 *
 * The file is read once at start-up; a struct auth then lives as long as the broker, and the
 * users it holds are borrowed by the connections that authenticated as them. Checking a
 * password costs one PBKDF2 (its iteration count, 10000 by default: about 4 ms) the first time
 * a user's password is verified after start-up, and one HMAC-SHA256 after that; a failed check
 * costs PBKDF2 at the file's largest count (auth_check). Permission checks are a linear walk over the user's patterns, each a glob
 * match of O(pattern + name) in practice. This is the only file that includes OpenSSL. */
#ifndef SLABMQ_BROKER_AUTH_AUTH_H
#define SLABMQ_BROKER_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Kinds of access, as bits. */
#define AUTH_PUBLISH 1u /* PUBLISH, PUBLISH_BATCH */
#define AUTH_CONSUME 2u /* FETCH, PEEK, SUBSCRIBE */
#define AUTH_ADMIN 4u   /* DECLARE, DELETE, PURGE, PAUSE, RESUME; on "*": LIST, broker STATS */
#define AUTH_ANY (AUTH_PUBLISH | AUTH_CONSUME | AUTH_ADMIN)

#define AUTH_NAME_MAX 64          /* bytes of a user name */
#define AUTH_PASSWORD_MAX 1024    /* bytes of a password */
#define AUTH_DEFAULT_ITERATIONS 10000
#define AUTH_MIN_ITERATIONS 1000
#define AUTH_MAX_ITERATIONS 1000000

struct auth;
struct auth_user;

/* Read the users file at path. Returns a new struct auth (free with auth_free()), or NULL
 * after writing "PATH:LINE: reason" into err. A file that others than its owner may read is
 * loaded, with a warning written into warn (warn[0] is '\0' otherwise). */
struct auth *auth_load(const char *path, char *err, size_t errlen, char *warn, size_t warnlen);
void auth_free(struct auth *a);
/* Number of users. */
uint32_t auth_count(const struct auth *a);

/* Checking a password is split so that its PBKDF2 runs off the event loop (verify.c):
 * auth_lookup, auth_cached and auth_remember run on the loop's thread; auth_check on any
 * thread, concurrently with them and with itself (it reads only what auth_load wrote, and the
 * loop writes only a user's cache). */

/* The user named name[0..nlen), or NULL: unknown or malformed. Borrowed from a. */
const struct auth_user *auth_lookup(const struct auth *a, const char *name, size_t nlen);
/* 1 if u has verified since start and pw is the password that did (one HMAC-SHA256 under a
 * per-process key, compared in constant time); 0 otherwise, which says nothing: the full
 * check decides. */
int auth_cached(const struct auth *a, const struct auth_user *u, const uint8_t *pw,
                size_t pwlen);
/* The full check: 1 if pw is u's password, with the digest auth_remember() keeps written into
 * digest; 0 otherwise. u NULL (an unknown name) fails. Every failure costs the same PBKDF2
 * work, auth_max_iterations() of them, whoever u is and whatever its own count, so a failure's
 * time does not tell whether the name exists; a success costs u's own count. Thread-safe. */
#define AUTH_DIGEST_LEN 32
int auth_check(const struct auth *a, const struct auth_user *u, const uint8_t *pw, size_t pwlen,
               uint8_t digest[AUTH_DIGEST_LEN]);
/* Keep the digest of a successful auth_check() so later checks of u cost one HMAC. Loop only. */
void auth_remember(struct auth *a, const struct auth_user *u,
                   const uint8_t digest[AUTH_DIGEST_LEN]);
/* The largest iteration count of the file (at least AUTH_MIN_ITERATIONS). */
uint32_t auth_max_iterations(const struct auth *a);
/* Is name[0..len) a well-formed user name (1-64 bytes of A-Z a-z 0-9 . _ @ -)? */
int auth_name_valid(const char *name, size_t len);
/* The user's name, NUL-terminated. */
const char *auth_user_name(const struct auth_user *u);
/* Does u hold any of the access bits 'perms' on the queue name[0..len)? */
int auth_allows(const struct auth_user *u, unsigned perms, const char *name, size_t len);
/* Does u hold any of 'perms' on every queue (a pattern of only '*')? */
int auth_allows_all(const struct auth_user *u, unsigned perms);

/* Read a password (the first line of in, without its line ending; with no echo when in is a
 * terminal, after a prompt on stderr) and print its hash, as the secret field of an auth
 * file line, to out. iterations: 0 for the default. Returns 0, or -1 after printing why. */
int auth_hash_cli(FILE *in, FILE *out, unsigned iterations);

#endif /* SLABMQ_BROKER_AUTH_AUTH_H */
