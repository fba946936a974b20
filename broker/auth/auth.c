/* SPDX-License-Identifier: MIT */
/* The users file, password hashes and permission patterns; see auth.h.
 *
 * Format (docs/security.md is the reference for operators), one user per line, fields
 * separated by spaces or tabs; blank lines and lines starting with '#' are skipped:
 *
 *   NAME  pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX  PERMISSION...
 *
 * PERMISSION is "all" or KIND[=PATTERN,...] with KIND publish, consume or admin; a KIND
 * without patterns means "*". A pattern is 1-256 bytes of queue-name characters and '*', which
 * matches any run of characters. Every line needs at least one permission.
 *
 * How to change this format: add new secret schemes as new "scheme$..." prefixes and new
 * permission kinds as new KIND words; a broker refuses a file with words it does not know,
 * so an old broker never silently grants less or more than a new file says. */
#include "auth/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SCHEME "pbkdf2-sha256"
#define HASH_LEN 32          /* SHA-256 */
#define SALT_LEN 16          /* salt of new hashes */
#define SALT_MAX 64          /* longest salt accepted in the file */
#define PATTERN_MAX 256      /* bytes of one pattern */
#define LINE_MAX_BYTES 4096  /* longest line of the file */
#define USERS_MAX 100000

struct auth_rule {
    unsigned perms; /* AUTH_* bits this pattern grants */
    int any;        /* the pattern is only '*': every queue */
    size_t len;
    char *pattern;  /* owned, NUL-terminated */
};

struct auth_user {
    char name[AUTH_NAME_MAX + 1];
    uint32_t iterations;          /* PBKDF2 iterations */
    uint32_t salt_len;
    uint8_t salt[SALT_MAX];
    uint8_t hash[HASH_LEN];       /* PBKDF2-HMAC-SHA256(password, salt, iterations) */
    uint8_t verified[HASH_LEN];   /* HMAC-SHA256(auth.key, password) once one verified */
    int has_verified;
    struct auth_rule *rules;      /* owned */
    uint32_t nrules;
};

struct auth {
    struct auth_user *users;      /* owned, nusers of them */
    uint32_t nusers;
    uint8_t key[HASH_LEN];        /* random per process: keys the verified-password HMACs */
    struct auth_user dummy;       /* stands in for unknown names; its iterations are the
                                     largest of the file, which every failure costs */
};

/* ---------------------------------------------------------------------------------------- */
/* Names, patterns, matching                                                                 */

static int
queue_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
           || ch == '.' || ch == '_' || ch == ':' || ch == '-';
}

int
auth_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
              || ch == '.' || ch == '_' || ch == '@' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Glob match: '*' matches any run of bytes, everything else itself. Backtracks only to the
 * last '*', so it is O(len(p) * len(s)) at worst and linear for the usual one-star pattern. */
static int
glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0;
    size_t si = 0;
    size_t star = SIZE_MAX;
    size_t mark = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < plen && p[pi] == s[si]) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

int
auth_allows(const struct auth_user *u, unsigned perms, const char *name, size_t len)
{
    for (uint32_t i = 0; i < u->nrules; i++) {
        const struct auth_rule *r = &u->rules[i];
        if ((r->perms & perms) && (r->any || glob_match(r->pattern, r->len, name, len)))
            return 1;
    }
    return 0;
}

int
auth_allows_all(const struct auth_user *u, unsigned perms)
{
    for (uint32_t i = 0; i < u->nrules; i++)
        if ((u->rules[i].perms & perms) && u->rules[i].any)
            return 1;
    return 0;
}

const char *
auth_user_name(const struct auth_user *u)
{
    return u->name;
}

uint32_t
auth_count(const struct auth *a)
{
    return a->nusers;
}

/* ---------------------------------------------------------------------------------------- */
/* Hashes                                                                                    */

static int
pbkdf2(const uint8_t *pw, size_t pwlen, const uint8_t *salt, size_t saltlen, uint32_t iter,
       uint8_t out[HASH_LEN])
{
    static const char empty = 0; /* OpenSSL wants a non-NULL pointer even for 0 bytes */

    return PKCS5_PBKDF2_HMAC(pwlen ? (const char *)pw : &empty, (int)pwlen, salt, (int)saltlen,
                             (int)iter, EVP_sha256(), HASH_LEN, out) == 1
               ? 0
               : -1;
}

static int
keyed_digest(const uint8_t key[HASH_LEN], const uint8_t *pw, size_t pwlen, uint8_t out[HASH_LEN])
{
    unsigned int n = HASH_LEN;
    static const uint8_t empty = 0;

    return HMAC(EVP_sha256(), key, HASH_LEN, pwlen ? pw : &empty, pwlen, out, &n) && n == HASH_LEN
               ? 0
               : -1;
}

const struct auth_user *
auth_lookup(const struct auth *a, const char *name, size_t nlen)
{
    if (!auth_name_valid(name, nlen))
        return NULL;
    for (uint32_t i = 0; i < a->nusers; i++)
        if (strlen(a->users[i].name) == nlen && memcmp(a->users[i].name, name, nlen) == 0)
            return &a->users[i];
    return NULL;
}

int
auth_cached(const struct auth *a, const struct auth_user *u, const uint8_t *pw, size_t pwlen)
{
    uint8_t got[HASH_LEN];
    int ok;

    if (!u->has_verified)
        return 0;
    ok = keyed_digest(a->key, pw, pwlen, got) == 0
         && CRYPTO_memcmp(got, u->verified, HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* Thread-safe: reads only what auth_load wrote. A failure costs PBKDF2 at the file's largest
 * iteration count whoever u is: the user's own count, then the rest as padding on the dummy
 * salt (PBKDF2 is linear in its count, so the sum costs what one run at the maximum does,
 * give or take one key set-up, a microsecond). */
int
auth_check(const struct auth *a, const struct auth_user *u, const uint8_t *pw, size_t pwlen,
           uint8_t digest[AUTH_DIGEST_LEN])
{
    const struct auth_user *h = u ? u : &a->dummy;
    uint8_t got[HASH_LEN];
    int ok;

    ok = pbkdf2(pw, pwlen, h->salt, h->salt_len, h->iterations, got) == 0
         && CRYPTO_memcmp(got, h->hash, HASH_LEN) == 0 && u != NULL;
    if (!ok && a->dummy.iterations > h->iterations)
        (void)pbkdf2(pw, pwlen, a->dummy.salt, a->dummy.salt_len,
                     a->dummy.iterations - h->iterations, got);
    OPENSSL_cleanse(got, sizeof(got));
    return ok && keyed_digest(a->key, pw, pwlen, digest) == 0;
}

void
auth_remember(struct auth *a, const struct auth_user *u, const uint8_t digest[AUTH_DIGEST_LEN])
{
    struct auth_user *w = &a->users[u - a->users]; /* a owns its users: no const to cast */

    memcpy(w->verified, digest, HASH_LEN);
    w->has_verified = 1;
}

uint32_t
auth_max_iterations(const struct auth *a)
{
    return a->dummy.iterations;
}

static int
hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decode hex s[0..len) into out (at most cap bytes). Returns the byte count, or -1. */
static long
unhex(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval(s[i]);
        int lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

static void
tohex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Parse "pbkdf2-sha256$ITER$SALT$HASH" into u. Returns NULL or the reason it is wrong. */
static const char *
parse_secret(const char *s, struct auth_user *u)
{
    const char *p = s;
    const char *d1;
    const char *d2;
    char *end;
    unsigned long iter;
    long n;

    if (strncmp(p, SCHEME "$", sizeof(SCHEME)) != 0)
        return "the secret must be a hash: " SCHEME "$ITERATIONS$SALT$HASH (slabmqd "
               "--hash-password makes one); plain passwords are not accepted";
    p += sizeof(SCHEME);
    errno = 0;
    iter = strtoul(p, &end, 10);
    if (end == p || *end != '$' || errno || iter < AUTH_MIN_ITERATIONS
        || iter > AUTH_MAX_ITERATIONS)
        return "iterations must be a number from 1000 to 1000000";
    d1 = end + 1;
    d2 = strchr(d1, '$');
    if (!d2)
        return "missing $HASH after the salt";
    n = unhex(d1, (size_t)(d2 - d1), u->salt, SALT_MAX);
    if (n < 8)
        return "the salt must be 8 to 64 bytes in hex";
    u->salt_len = (uint32_t)n;
    if (unhex(d2 + 1, strlen(d2 + 1), u->hash, HASH_LEN) != HASH_LEN)
        return "the hash must be 32 bytes (64 hex digits)";
    u->iterations = (uint32_t)iter;
    return NULL;
}

int
auth_hash_cli(FILE *in, FILE *out, unsigned iterations)
{
    char pw[AUTH_PASSWORD_MAX + 2];
    uint8_t salt[SALT_LEN];
    uint8_t hash[HASH_LEN];
    char salthex[2 * SALT_LEN + 1];
    char hashhex[2 * HASH_LEN + 1];
    struct termios saved;
    int tty = isatty(fileno(in)) && tcgetattr(fileno(in), &saved) == 0;
    size_t len;
    char *got;

    if (iterations == 0)
        iterations = AUTH_DEFAULT_ITERATIONS;
    if (tty) {
        struct termios quiet = saved;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        fputs("password (not echoed): ", stderr);
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
    }
    got = fgets(pw, sizeof(pw), in);
    if (tty) {
        tcsetattr(fileno(in), TCSAFLUSH, &saved);
        fputc('\n', stderr);
    }
    len = got ? strcspn(pw, "\r\n") : 0;
    if (got && len == strlen(pw) && len > AUTH_PASSWORD_MAX) {
        fprintf(stderr, "slabmqd: password longer than %d bytes\n", AUTH_PASSWORD_MAX);
        return -1;
    }
    if (len == 0) {
        fprintf(stderr, "slabmqd: --hash-password reads the password from the first line of "
                        "standard input; it was empty\n");
        return -1;
    }
    if (RAND_bytes(salt, sizeof(salt)) != 1
        || pbkdf2((const uint8_t *)pw, len, salt, sizeof(salt), iterations, hash)) {
        OPENSSL_cleanse(pw, sizeof(pw));
        fprintf(stderr, "slabmqd: cannot compute the hash (OpenSSL failed)\n");
        return -1;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    tohex(salt, sizeof(salt), salthex);
    tohex(hash, sizeof(hash), hashhex);
    fprintf(out, SCHEME "$%u$%s$%s\n", iterations, salthex, hashhex);
    return fflush(out) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                   */

static int
add_rule(struct auth_user *u, unsigned perms, const char *pat, size_t len)
{
    struct auth_rule *r = realloc(u->rules, (u->nrules + 1) * sizeof(*r));
    size_t stars = 0;

    if (!r)
        return -1;
    u->rules = r;
    r = &u->rules[u->nrules];
    r->pattern = malloc(len + 1);
    if (!r->pattern)
        return -1;
    memcpy(r->pattern, pat, len);
    r->pattern[len] = '\0';
    r->len = len;
    r->perms = perms;
    while (stars < len && pat[stars] == '*')
        stars++;
    r->any = stars == len;
    u->nrules++;
    return 0;
}

/* Parse one permission word into u's rules. Returns NULL or the reason it is wrong. */
static const char *
parse_permission(const char *w, struct auth_user *u)
{
    static const struct {
        const char *word;
        unsigned perms;
    } kinds[] = {{"publish", AUTH_PUBLISH}, {"consume", AUTH_CONSUME}, {"admin", AUTH_ADMIN}};
    const char *eq = strchr(w, '=');
    size_t klen = eq ? (size_t)(eq - w) : strlen(w);
    unsigned perms = 0;
    const char *p;

    if (strcmp(w, "all") == 0)
        return add_rule(u, AUTH_ANY, "*", 1) ? "out of memory" : NULL;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strlen(kinds[i].word) == klen && strncmp(w, kinds[i].word, klen) == 0)
            perms = kinds[i].perms;
    if (!perms)
        return "unknown permission: expected all, publish[=PATTERNS], consume[=PATTERNS] or "
               "admin[=PATTERNS]";
    if (!eq)
        return add_rule(u, perms, "*", 1) ? "out of memory" : NULL;
    p = eq + 1;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > PATTERN_MAX)
            return "a pattern is 1 to 256 characters, patterns separated by single commas";
        for (size_t i = 0; i < len; i++)
            if (p[i] != '*' && !queue_char((unsigned char)p[i]))
                return "a pattern may hold only A-Z a-z 0-9 . _ : - and *";
        if (add_rule(u, perms, p, len))
            return "out of memory";
        if (p[len] == '\0')
            return NULL;
        p += len + 1;
    }
}

static void
user_free_rules(struct auth_user *u)
{
    for (uint32_t i = 0; i < u->nrules; i++)
        free(u->rules[i].pattern);
    free(u->rules);
    u->rules = NULL;
    u->nrules = 0;
}

/* Parse the fields of one line into a new user at the end of a->users. Returns NULL or the
 * reason the line is wrong. */
static const char *
parse_line(struct auth *a, char *line)
{
    static const char sep[] = " \t";
    char *save = NULL;
    char *name = strtok_r(line, sep, &save);
    char *secret = strtok_r(NULL, sep, &save);
    char *w;
    struct auth_user *u;
    const char *why;

    if (!secret)
        return "expected NAME SECRET PERMISSION...";
    if (!auth_name_valid(name, strlen(name)))
        return "a user name is 1 to 64 characters of A-Z a-z 0-9 . _ @ -";
    for (uint32_t i = 0; i < a->nusers; i++)
        if (strcmp(a->users[i].name, name) == 0)
            return "this user is already defined above";
    if (a->nusers >= USERS_MAX)
        return "too many users";
    u = realloc(a->users, (a->nusers + 1) * sizeof(*u));
    if (!u)
        return "out of memory";
    a->users = u;
    u = &a->users[a->nusers++];
    memset(u, 0, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    why = parse_secret(secret, u);
    while (!why && (w = strtok_r(NULL, sep, &save)) != NULL)
        why = parse_permission(w, u);
    if (!why && u->nrules == 0)
        why = "no permission given: add all, or publish=..., consume=..., admin=...";
    return why;
}

/* Read every line of f into a. Returns 0, or -1 after writing the reason into err. */
static int
read_users(struct auth *a, FILE *f, const char *path, char *err, size_t errlen)
{
    char line[LINE_MAX_BYTES + 2];
    unsigned lineno = 0;

    while (fgets(line, sizeof(line), f)) {
        size_t len = strcspn(line, "\r\n");
        const char *why;
        char *p = line;
        lineno++;
        if (line[len] == '\0' && !feof(f)) {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", path, lineno,
                     LINE_MAX_BYTES);
            return -1;
        }
        line[len] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        why = parse_line(a, p);
        if (why) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            return -1;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    if (a->nusers == 0) {
        snprintf(err, errlen, "%s: no users: nobody could connect", path);
        return -1;
    }
    return 0;
}

struct auth *
auth_load(const char *path, char *err, size_t errlen, char *warn, size_t warnlen)
{
    struct auth *a = calloc(1, sizeof(*a));
    FILE *f;
    struct stat st;
    int rc;

    warn[0] = '\0';
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(a);
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        snprintf(warn, warnlen, "%s can be read by users other than its owner (mode %03o); "
                 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    rc = read_users(a, f, path, err, errlen);
    (void)fclose(f); /* read only: nothing to lose */
    if (rc == 0
        && (RAND_bytes(a->key, sizeof(a->key)) != 1 || RAND_bytes(a->dummy.salt, SALT_LEN) != 1)) {
        snprintf(err, errlen, "cannot get random bytes from OpenSSL");
        rc = -1;
    }
    if (rc) {
        auth_free(a);
        return NULL;
    }
    a->dummy.salt_len = SALT_LEN;
    a->dummy.iterations = AUTH_MIN_ITERATIONS;
    for (uint32_t i = 0; i < a->nusers; i++) /* failures all cost the largest count */
        if (a->users[i].iterations > a->dummy.iterations)
            a->dummy.iterations = a->users[i].iterations;
    return a;
}

void
auth_free(struct auth *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < a->nusers; i++)
        user_free_rules(&a->users[i]);
    if (a->users)
        OPENSSL_cleanse(a->users, a->nusers * sizeof(*a->users));
    free(a->users);
    OPENSSL_cleanse(a->key, sizeof(a->key));
    free(a);
}
