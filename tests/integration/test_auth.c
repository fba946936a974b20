/* SPDX-License-Identifier: MIT */
/* Authentication, permissions and connection limits against a real slabmqd (docs/security.md,
 * docs/protocol.md section 5.1): a broker without users behaves as before; with users, AUTH
 * must follow HELLO, wrong credentials are refused after a delay and the connection closed,
 * anything else before AUTH is refused and closes, frames before the handshake are capped,
 * and each user's permissions hold per queue pattern. Also the handshake deadline, the idle
 * timeout, the warning for a public address without users, the loopback default, the users
 * file's errors, --hash-password, the CLI's credentials, and running out of file descriptors.
 *
 * The users file is written per case with hashes made by `slabmqd --hash-password`. Every
 * wait is bounded; everything connects to 127.0.0.1 (the 0.0.0.0 case too). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"
#include "raw.h"

#define PW_ROOT "root secret with spaces"
#define PW_PUB "pub-secret"
#define PW_CONS "cons-secret"
#define PW_QADMIN "qadmin-secret"
#define PW_WRONG "not-the-password-42"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */

/* A users file in its own temp dir. */
struct users {
    char dir[64];
    char path[128];
};

/* Write text as the users file u (a new temp dir), mode 0600. */
static void
users_write(struct users *u, const char *text)
{
    FILE *f;

    snprintf(u->dir, sizeof(u->dir), "/tmp/slabmq-users.XXXXXX");
    T_ASSERT(mkdtemp(u->dir) != NULL);
    snprintf(u->path, sizeof(u->path), "%s/users", u->dir);
    f = fopen(u->path, "w");
    T_ASSERT(f != NULL);
    fputs(text, f);
    T_ASSERT(fclose(f) == 0);
    T_ASSERT(chmod(u->path, 0600) == 0);
}

/* The standard users: root (all), pub (publish=orders.*), cons (consume=orders.*,jobs) and
 * qadmin (admin=orders.*). */
static void
users_make(struct users *u)
{
    char h[4][256];
    char text[2048];

    t_password_hash(PW_ROOT, NULL, h[0], sizeof(h[0]));
    t_password_hash(PW_PUB, NULL, h[1], sizeof(h[1]));
    t_password_hash(PW_CONS, "--hash-password=2000", h[2], sizeof(h[2]));
    t_password_hash(PW_QADMIN, NULL, h[3], sizeof(h[3]));
    snprintf(text, sizeof(text),
             "# slabmq users for test_auth\n"
             "\n"
             "root   %s  all\n"
             "pub\t%s\tpublish=orders.*\n"
             "  cons %s consume=orders.*,jobs\n"
             "qadmin %s admin=orders.*\n",
             h[0], h[1], h[2], h[3]);
    users_write(u, text);
}

static void
users_remove(struct users *u)
{
    unlink(u->path);
    rmdir(u->dir);
}

/* Connect as user (NULL: from the environment) with password pw. */
static slabmq_status
connect_as(const struct t_broker *b, const char *user, const char *pw, slabmq_client **c,
           char *err, size_t errlen)
{
    slabmq_options o = SLABMQ_OPTIONS_INIT;

    o.port = (uint16_t)b->port;
    o.timeout_ms = 10000;
    o.user = user;
    o.password = pw;
    return slabmq_client_connect_errbuf(&o, c, err, errlen);
}

/* A client authenticated as user; fails the test otherwise. */
static slabmq_client *
client_as(const struct t_broker *b, const char *user, const char *pw)
{
    slabmq_client *c = NULL;
    char err[256] = "";
    slabmq_status st = connect_as(b, user, pw, &c, err, sizeof(err));

    if (st != SLABMQ_OK)
        t_fail(__FILE__, __LINE__, "connect as %s: %s (%s)", user ? user : "(env)",
               slabmq_status_name(st), err);
    return c;
}

/* Send HELLO on a fresh raw connection; returns its auth_required result. */
static int
raw_hello_auth(int fd)
{
    struct mb m = {0};
    struct rep p;
    int auth = -1;

    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 1);
    mb_str(&m, "test_auth");
    send_mb(fd, &m);
    mb_free(&m);
    EXPECT_OK(fd, SMQ_OP_HELLO, 1, &p);
    T_EQ_INT(p.n, 11); /* op, id, status and eight results */
    for (int i = 0; i < 6; i++)
        T_ASSERT(smq_mpr_skip(&p.r, 4) == 0);
    T_ASSERT(smq_mpr_bool(&p.r, &auth) == 0);
    return auth;
}

/* Append AUTH [user, pw] to b. */
static void
mb_auth(struct mb *b, uint64_t rid, const char *user, const char *pw)
{
    mb_req(b, SMQ_OP_AUTH, rid, 2);
    mb_str(b, user);
    mb_str(b, pw);
}

static void
raw_auth_send(int fd, uint64_t rid, const char *user, const char *pw)
{
    struct mb m = {0};

    mb_auth(&m, rid, user, pw);
    send_mb(fd, &m);
    mb_free(&m);
}

/* A new raw connection with HELLO (request 1), AUTH (2) and a PUBLISH of "m" to queue
 * (3) sent in one send; the replies are left to read. */
static int
send_hello_auth_publish(int port, const char *user, const char *pw, const char *queue)
{
    int fd = t_raw_connect(port);
    struct mb m = {0};
    struct mb s = {0};

    mb_req(&m, SMQ_OP_HELLO, 1, 2);
    mb_uint(&m, 1);
    mb_str(&m, "pipelined");
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_auth(&m, 2, user, pw);
    mb_frame(&s, m.p, m.len);
    m.len = 0;
    mb_req(&m, SMQ_OP_PUBLISH, 3, 2);
    mb_str(&m, queue);
    mb_bin(&m, "m", 1);
    mb_frame(&s, m.p, m.len);
    t_raw_send(fd, s.p, s.len);
    mb_free(&m);
    mb_free(&s);
    return fd;
}

/* A raw connection that did HELLO and AUTH (request ids 1 and 2). */
static int
raw_user(const struct t_broker *b, const char *user, const char *pw)
{
    int fd = t_raw_connect(b->port);
    struct rep p;

    T_EQ_INT(raw_hello_auth(fd), 1);
    raw_auth_send(fd, 2, user, pw);
    EXPECT_OK(fd, SMQ_OP_AUTH, 2, &p);
    T_EQ_INT(p.n, 3);
    return fd;
}

/* The next frame on fd must be the connection-level error [0, 0, code, ...], within ms,
 * followed by the close. Returns when it arrived, ms after t0. */
static int64_t
expect_fatal_within(int fd, unsigned code, int ms, int64_t t0)
{
    struct rep p;
    long n = t_raw_recv_frame(fd, rep_buf, sizeof(rep_buf), ms);

    if (n < 0)
        t_fail(__FILE__, __LINE__, "no error frame within %d ms (%s)", ms,
               n == -1 ? "closed" : "timeout");
    parse_rep(__FILE__, __LINE__, rep_buf, (size_t)n, &p);
    T_EQ_U64(p.op, SMQ_OP_NONE);
    T_EQ_U64(p.rid, 0);
    T_EQ_U64(p.status, code);
    T_ASSERT(t_raw_wait_closed(fd, CLOSE_MS));
    return t_now_ms() - t0;
}

/* The broker's stderr so far, NUL-terminated; free it. */
static char *
broker_log(const struct t_broker *b)
{
    char path[128];
    char *buf;
    FILE *f;
    long size;

    snprintf(path, sizeof(path), "%s/stderr.log", b->dir);
    f = fopen(path, "r");
    T_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)size + 1);
    T_ASSERT(buf != NULL);
    T_EQ_INT(fread(buf, 1, (size_t)size, f), size);
    fclose(f);
    return buf;
}

/* Does the broker's log contain s? */
static int
log_has(const struct t_broker *b, const char *s)
{
    char *log = broker_log(b);
    int found = strstr(log, s) != NULL;

    free(log);
    return found;
}

/* Wait up to ms for the broker's log to contain s. */
static int
log_wait(const struct t_broker *b, const char *s, int ms)
{
    int64_t deadline = t_now_ms() + ms;

    while (!log_has(b, s)) {
        if (t_now_ms() > deadline)
            return 0;
        t_sleep_ms(20);
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Without users                                                                             */

/* A broker without --auth-file: HELLO says no AUTH is needed, everything works without it, an
 * AUTH is refused without closing, and a client that has credentials does not send them. */
static void
test_without_users_nothing_changes(void)
{
    struct t_broker b;
    slabmq_client *c;
    int fd;
    uint64_t id;

    t_broker_start(&b, NULL);
    fd = t_raw_connect(b.port);
    T_EQ_INT(raw_hello_auth(fd), 0);
    EXPECT_PING(fd);
    raw_auth_send(fd, 5, "root", PW_ROOT);
    EXPECT_ERR(fd, SMQ_OP_AUTH, 5, SLABMQ_ERR_AUTH);
    EXPECT_PING(fd);
    close(fd);
    c = client_as(&b, "someone", "anything");
    T_OK(c, slabmq_publish(c, "jobs", "x", 1, &id));
    T_OK(c, slabmq_delete(c, "jobs", NULL));
    slabmq_client_close(c);
    T_ASSERT(!log_has(&b, "WARNING"));
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* Authentication                                                                            */

/* Wrong credentials get ERR_AUTH after the delay and the connection is closed; nothing sent
 * after them runs; the failure is logged with the peer and the user, never the password. */
static void
test_wrong_password_refused_and_closed(void)
{
    struct users u;
    struct t_broker b;
    slabmq_client *root;
    slabmq_client *c = NULL;
    slabmq_stats *st = NULL;
    char err[256];
    static const char *const tries[][2] = {
        {"pub", PW_WRONG}, {"pub", PW_ROOT}, {"nobody", PW_PUB}, {"bad name!", PW_PUB},
        {"pub", ""},       {"PUB", PW_PUB},
    };

    users_make(&u);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    root = client_as(&b, "root", PW_ROOT);
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        int fd = t_raw_connect(b.port);
        int64_t t0;
        T_EQ_INT(raw_hello_auth(fd), 1);
        t0 = t_now_ms();
        raw_auth_send(fd, 2, tries[i][0], tries[i][1]);
        EXPECT_ERR(fd, SMQ_OP_AUTH, 2, SLABMQ_ERR_AUTH);
        T_ASSERT(t_now_ms() - t0 >= 150); /* the failure delay */
        EXPECT_EOF(fd);
        close(fd);
    }
    /* requests pipelined behind a failed AUTH never run */
    {
        int fd = send_hello_auth_publish(b.port, "pub", PW_WRONG, "orders.sneaky");
        struct rep p;
        EXPECT_OK(fd, SMQ_OP_HELLO, 1, &p);
        EXPECT_ERR(fd, SMQ_OP_AUTH, 2, SLABMQ_ERR_AUTH);
        EXPECT_EOF(fd);
        close(fd);
        T_EQ_INT(slabmq_stats_get(root, "orders.sneaky", &st), SLABMQ_ERR_NOT_FOUND);
    }
    /* the library reports it */
    T_EQ_INT(connect_as(&b, "pub", PW_WRONG, &c, err, sizeof(err)), SLABMQ_ERR_AUTH);
    T_ASSERT(c == NULL);
    T_ASSERT(strstr(err, "wrong user name or password") != NULL);
    unsetenv("SLABMQ_USER");
    T_EQ_INT(connect_as(&b, NULL, NULL, &c, err, sizeof(err)), SLABMQ_ERR_AUTH);
    T_ASSERT(strstr(err, "requires authentication") != NULL);
    /* logged at warn level with the peer address and the user, never the password */
    T_ASSERT(log_wait(&b, "level=warn msg=\"connection", 5000));
    T_ASSERT(log_has(&b, "from 127.0.0.1:"));
    T_ASSERT(log_has(&b, "authentication failed for user 'pub'"));
    T_ASSERT(log_has(&b, "authentication failed for user 'nobody'"));
    T_ASSERT(log_has(&b, "authentication failed (malformed user name)"));
    T_ASSERT(!log_has(&b, PW_WRONG));
    T_ASSERT(!log_has(&b, PW_PUB));
    /* counted: 6 tries, the pipelined one and the library's; root's AUTH succeeded */
    T_EQ_U64(t_stat(root, NULL, "auth_failures"), 8);
    T_EQ_U64(t_stat(root, NULL, "auth_ok"), 1);
    T_OK(root, slabmq_ping(root));
    slabmq_client_close(root);
    t_broker_stop(&b);
    users_remove(&u);
}

/* The right password works: through the options, the environment, a raw AUTH (str or bin
 * password) pipelined with HELLO and a first request; a second AUTH is refused. */
static void
test_right_password_works(void)
{
    struct users u;
    struct t_broker b;
    slabmq_client *pub;
    slabmq_client *cons;
    slabmq_client *c = NULL;
    slabmq_batch *bt = NULL;
    char err[256];
    uint64_t id;

    users_make(&u);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    pub = client_as(&b, "pub", PW_PUB);
    T_OK(pub, slabmq_publish(pub, "orders.eu", "o1", 2, &id));
    cons = client_as(&b, "cons", PW_CONS);
    T_OK(cons, slabmq_fetch(cons, "orders.eu", 1, 1000, &bt));
    T_EQ_INT(slabmq_batch_count(bt), 1);
    T_EQ_U64(slabmq_batch_get(bt, 0)->id, id);
    T_OK(cons, slabmq_ack(cons, id));
    slabmq_batch_free(bt);
    /* from the environment, and "" for no credentials at all */
    setenv("SLABMQ_USER", "cons", 1);
    setenv("SLABMQ_PASSWORD", PW_CONS, 1);
    T_EQ_INT(connect_as(&b, NULL, NULL, &c, err, sizeof(err)), SLABMQ_OK);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    T_EQ_INT(connect_as(&b, "", NULL, &c, err, sizeof(err)), SLABMQ_ERR_AUTH);
    T_EQ_INT(connect_as(&b, "cons", NULL, &c, err, sizeof(err)), SLABMQ_OK); /* env password */
    slabmq_client_close(c);
    unsetenv("SLABMQ_USER");
    unsetenv("SLABMQ_PASSWORD");
    /* HELLO, AUTH and a PUBLISH in one send */
    {
        int fd = send_hello_auth_publish(b.port, "pub", PW_PUB, "orders.eu");
        struct mb m = {0};
        struct rep p;
        EXPECT_OK(fd, SMQ_OP_HELLO, 1, &p);
        EXPECT_OK(fd, SMQ_OP_AUTH, 2, &p);
        EXPECT_OK(fd, SMQ_OP_PUBLISH, 3, &p);
        /* a second AUTH: refused, the connection stays as it was */
        raw_auth_send(fd, 4, "root", PW_ROOT);
        EXPECT_ERR(fd, SMQ_OP_AUTH, 4, SLABMQ_ERR_AUTH);
        EXPECT_PING(fd);
        mb_req(&m, SMQ_OP_LIST, 5, 0); /* still pub, not root */
        REQ_ERR(fd, &m, SMQ_OP_LIST, 5, SLABMQ_ERR_FORBIDDEN);
        close(fd);
        mb_free(&m);
    }
    /* the password as a bin */
    {
        int fd = t_raw_connect(b.port);
        struct mb m = {0};
        struct rep p;
        T_EQ_INT(raw_hello_auth(fd), 1);
        mb_req(&m, SMQ_OP_AUTH, 2, 2);
        mb_str(&m, "pub");
        mb_bin(&m, PW_PUB, strlen(PW_PUB));
        send_mb(fd, &m);
        EXPECT_OK(fd, SMQ_OP_AUTH, 2, &p);
        EXPECT_PING(fd);
        close(fd);
        mb_free(&m);
    }
    T_EQ_U64(STAT(pub, "orders.eu", "ready"), 1);
    T_ASSERT(log_has(&b, "authenticated as 'pub'"));
    slabmq_client_close(pub);
    slabmq_client_close(cons);
    t_broker_stop(&b);
    users_remove(&u);
}

/* Before AUTH only HELLO and AUTH are allowed: anything else gets ERR_AUTH and the close,
 * and has no effect; AUTH before HELLO gets ERR_HELLO_REQUIRED; a malformed AUTH before the
 * handshake closes too. */
static void
test_requests_before_auth_refused(void)
{
    struct users u;
    struct t_broker b;
    slabmq_client *root;
    slabmq_stats *st = NULL;
    struct mb m = {0};
    static const unsigned ops[] = {SMQ_OP_PING,    SMQ_OP_LIST,  SMQ_OP_STATS,
                                   SMQ_OP_PUBLISH, SMQ_OP_FETCH, SMQ_OP_DECLARE,
                                   SMQ_OP_ACK,     SMQ_OP_DELETE};

    users_make(&u);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    root = client_as(&b, "root", PW_ROOT);
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        int fd = t_raw_connect(b.port);
        T_EQ_INT(raw_hello_auth(fd), 1);
        switch (ops[i]) {
        case SMQ_OP_PUBLISH:
            mb_req(&m, ops[i], 7, 2);
            mb_str(&m, "orders.pre");
            mb_bin(&m, "x", 1);
            break;
        case SMQ_OP_FETCH:
            mb_req(&m, ops[i], 7, 2);
            mb_str(&m, "orders.pre");
            mb_uint(&m, 1);
            break;
        case SMQ_OP_DECLARE:
        case SMQ_OP_DELETE:
            mb_req(&m, ops[i], 7, 1);
            mb_str(&m, "orders.pre");
            break;
        case SMQ_OP_ACK:
            mb_req(&m, ops[i], 7, 1);
            mb_arr(&m, 0);
            break;
        default:
            mb_req(&m, ops[i], 7, 0);
        }
        send_mb(fd, &m);
        EXPECT_ERR(fd, ops[i], 7, SLABMQ_ERR_AUTH);
        EXPECT_EOF(fd);
        close(fd);
    }
    T_EQ_INT(slabmq_stats_get(root, "orders.pre", &st), SLABMQ_ERR_NOT_FOUND);
    /* an unknown op or a body that is not a request, after HELLO but before AUTH: the error,
     * then the close, as before HELLO */
    for (int k = 0; k < 2; k++) {
        static const uint8_t c1[] = {0xc1};
        int fd = t_raw_connect(b.port);
        T_EQ_INT(raw_hello_auth(fd), 1);
        if (k == 0) {
            mb_req(&m, 99, 8, 0);
            send_mb(fd, &m);
            EXPECT_ERR(fd, 99, 8, SLABMQ_ERR_UNKNOWN_OP);
        } else {
            send_frame(fd, c1, 1);
            EXPECT_ERR(fd, SMQ_OP_NONE, 0, SLABMQ_ERR_PROTOCOL);
        }
        EXPECT_EOF(fd);
        close(fd);
    }
    /* AUTH before HELLO */
    {
        int fd = t_raw_connect(b.port);
        raw_auth_send(fd, 3, "root", PW_ROOT);
        EXPECT_ERR(fd, SMQ_OP_AUTH, 3, SLABMQ_ERR_HELLO_REQUIRED);
        EXPECT_EOF(fd);
        close(fd);
    }
    /* malformed AUTHs before the handshake: BAD_REQUEST, closed */
    for (int k = 0; k < 3; k++) {
        int fd = t_raw_connect(b.port);
        T_EQ_INT(raw_hello_auth(fd), 1);
        if (k == 0) { /* one argument */
            mb_req(&m, SMQ_OP_AUTH, 4, 1);
            mb_str(&m, "root");
        } else if (k == 1) { /* user as an integer */
            mb_req(&m, SMQ_OP_AUTH, 4, 2);
            mb_uint(&m, 1);
            mb_str(&m, PW_ROOT);
        } else { /* password over 1024 bytes */
            char big[1100];
            memset(big, 'p', sizeof(big));
            mb_req(&m, SMQ_OP_AUTH, 4, 2);
            mb_str(&m, "root");
            mb_strn(&m, big, sizeof(big));
        }
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_AUTH, 4, SLABMQ_ERR_BAD_REQUEST);
        EXPECT_EOF(fd);
        close(fd);
    }
    T_OK(root, slabmq_ping(root));
    T_EQ_U64(STAT(root, NULL, "connections"), 1);
    mb_free(&m);
    slabmq_client_close(root);
    t_broker_stop(&b);
    users_remove(&u);
}

/* Until the handshake is done a frame may hold at most 4096 bytes: one over is refused from
 * its header and the connection closed, before or after HELLO, with or without users; after
 * the handshake the usual maximum applies. */
static void
test_frames_before_handshake_capped(void)
{
    struct users u;
    struct t_broker b;
    uint8_t hdr[8] = {0, 0, 0x10, 0x01, 0x93, 0x02, 0x07, 0xc0}; /* 4097 bytes announced */
    uint8_t *pad = calloc(1, 70000);
    struct mb m = {0};
    struct rep p;

    T_ASSERT(pad != NULL);
    users_make(&u);
    for (int with_users = 0; with_users <= 1; with_users++) {
        slabmq_client *c;
        int fd;
        if (with_users)
            t_broker_start(&b, "--auth-file", u.path, NULL);
        else
            t_broker_start(&b, NULL);
        c = with_users ? client_as(&b, "root", PW_ROOT) : t_client(&b);
        EXPECT_FATAL(&b, 0, hdr, sizeof(hdr), SLABMQ_ERR_FRAME_TOO_BIG);
        if (with_users) /* after HELLO, before AUTH */
            EXPECT_FATAL(&b, 1, hdr, sizeof(hdr), SLABMQ_ERR_FRAME_TOO_BIG);
        /* exactly 4096 bytes pass the size check (and, being a PING before HELLO, are
         * refused for that) */
        fd = t_raw_connect(b.port);
        mb_req(&m, SMQ_OP_PING, 7, 1);
        mb_bin(&m, pad, 4090);
        T_EQ_INT(m.len, 4096);
        send_mb(fd, &m);
        EXPECT_ERR(fd, SMQ_OP_PING, 7, SLABMQ_ERR_HELLO_REQUIRED);
        EXPECT_EOF(fd);
        close(fd);
        /* after the handshake, a 64 KiB publish is fine */
        fd = with_users ? raw_user(&b, "pub", PW_PUB) : raw_session(&b);
        mb_req(&m, SMQ_OP_PUBLISH, 9, 2);
        mb_str(&m, "orders.big");
        mb_bin(&m, pad, 65536);
        send_mb(fd, &m);
        EXPECT_OK(fd, SMQ_OP_PUBLISH, 9, &p);
        close(fd);
        T_EQ_U64(STAT(c, "orders.big", "ready"), 1);
        slabmq_client_close(c);
        t_broker_stop(&b);
    }
    free(pad);
    mb_free(&m);
    users_remove(&u);
}

/* ---------------------------------------------------------------------------------------- */
/* Permissions                                                                               */

/* Expect status from call and a usable connection (PING) after it. */
#define EXPECT_ST(c, call, status)                                                              \
    do {                                                                                        \
        slabmq_status st_ = (call);                                                             \
        if (st_ != (status))                                                                    \
            t_fail(__FILE__, __LINE__, "%s: %s, expected %s (%s)", #call,                      \
                   slabmq_status_name(st_), slabmq_status_name(status),                         \
                   slabmq_client_errmsg(c));                                                    \
        T_OK(c, slabmq_ping(c));                                                                \
    } while (0)

/* pub may publish to orders.* only, and nothing else; a refusal leaves the connection
 * usable and stores nothing. */
static void
check_publisher(slabmq_client *root, slabmq_client *c)
{
    slabmq_payload two[2] = {{"a", 1}, {"b", 1}};
    slabmq_batch *bt = NULL;
    slabmq_stats *st = NULL;
    slabmq_queue_info *list = NULL;
    uint64_t id;
    size_t n;

    EXPECT_ST(c, slabmq_publish(c, "orders.eu", "x", 1, &id), SLABMQ_OK);
    EXPECT_ST(c, slabmq_publish_batch(c, "orders.us", two, 2, &id), SLABMQ_OK);
    EXPECT_ST(c, slabmq_publish(c, "jobs", "x", 1, &id), SLABMQ_ERR_FORBIDDEN);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "may not publish to queue 'jobs'") != NULL);
    EXPECT_ST(c, slabmq_publish_batch(c, "jobs", two, 2, &id), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_publish(c, "orders", "x", 1, &id), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_fetch(c, "orders.eu", 1, 0, &bt), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_peek(c, "orders.eu", 1, &bt), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_subscribe(c, "orders.eu", 1, &id), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_declare(c, "orders.eu", NULL, NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_purge(c, "orders.eu", NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_pause(c, "orders.eu", NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_delete(c, "orders.eu", NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_list(c, &list, &n), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_stats_get(c, NULL, &st), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_stats_get(c, "jobs", &st), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_stats_get(c, "orders.eu", &st), SLABMQ_OK); /* any access will do */
    slabmq_stats_free(st);
    st = NULL;
    EXPECT_ST(c, slabmq_publish(c, "bad name", "x", 1, &id), SLABMQ_ERR_BAD_NAME);
    T_EQ_INT(slabmq_stats_get(root, "jobs", &st), SLABMQ_ERR_NOT_FOUND);
    T_EQ_U64(STAT(root, "orders.eu", "ready"), 1);
    T_EQ_U64(STAT(root, "orders.us", "ready"), 2);
}

/* cons may consume from orders.* and jobs, settle what it holds, and nothing else. */
static void
check_consumer(slabmq_client *root, slabmq_client *c)
{
    const char *const both[] = {"jobs", "orders.eu"};
    const char *const some[] = {"orders.eu", "secret"};
    slabmq_batch *bt = NULL;
    slabmq_stats *st = NULL;
    uint64_t ids[3];
    uint64_t id;
    uint64_t n;

    EXPECT_ST(c, slabmq_publish(c, "orders.eu", "x", 1, &id), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_declare(c, "jobs", NULL, NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_peek(c, "orders.us", 10, &bt), SLABMQ_OK);
    T_EQ_INT(slabmq_batch_count(bt), 2);
    slabmq_batch_free(bt);
    EXPECT_ST(c, slabmq_fetch(c, "orders.us", 2, 0, &bt), SLABMQ_OK);
    T_EQ_INT(slabmq_batch_count(bt), 2);
    ids[0] = slabmq_batch_get(bt, 0)->id;
    ids[1] = slabmq_batch_get(bt, 1)->id;
    slabmq_batch_free(bt);
    EXPECT_ST(c, slabmq_touch(c, ids, 2, &n), SLABMQ_OK);
    EXPECT_ST(c, slabmq_nack(c, ids[0], 0), SLABMQ_OK);
    EXPECT_ST(c, slabmq_ack(c, ids[1]), SLABMQ_OK);
    /* several queues: consume on each */
    EXPECT_ST(c, slabmq_fetch_any(c, both, 2, 1, 0, 0, &bt), SLABMQ_OK);
    T_EQ_INT(slabmq_batch_count(bt), 1); /* orders.eu's message */
    ids[2] = slabmq_batch_get(bt, 0)->id;
    slabmq_batch_free(bt);
    EXPECT_ST(c, slabmq_fetch_any(c, some, 2, 1, 0, 0, &bt), SLABMQ_ERR_FORBIDDEN);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "'secret'") != NULL);
    T_EQ_INT(slabmq_stats_get(root, "secret", &st), SLABMQ_ERR_NOT_FOUND); /* not created */
    /* TERM of its own delivery: the dead letter lands in orders.eu.dlq, which it may read */
    EXPECT_ST(c, slabmq_term(c, &ids[2], 1, &n), SLABMQ_OK);
    EXPECT_ST(c, slabmq_peek(c, "orders.eu.dlq", 10, &bt), SLABMQ_OK);
    T_EQ_INT(slabmq_batch_count(bt), 1);
    slabmq_batch_free(bt);
    EXPECT_ST(c, slabmq_subscribe(c, "jobs", 1, &id), SLABMQ_OK);
    EXPECT_ST(c, slabmq_unsubscribe(c, id), SLABMQ_OK);
    EXPECT_ST(c, slabmq_fetch(c, "jobsx", 1, 0, &bt), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_stats_get(c, NULL, &st), SLABMQ_ERR_FORBIDDEN);
    T_EQ_U64(STAT(root, "orders.us", "ready"), 1);
}

/* qadmin may administer orders.* only, and not read or write messages. */
static void
check_queue_admin(slabmq_client *root, slabmq_client *c)
{
    slabmq_batch *bt = NULL;
    slabmq_stats *st = NULL;
    slabmq_queue_info *list = NULL;
    uint64_t id;
    size_t n;
    int created = -1;

    EXPECT_ST(c, slabmq_declare(c, "orders.new", NULL, &created), SLABMQ_OK);
    T_EQ_INT(created, 1);
    EXPECT_ST(c, slabmq_pause(c, "orders.eu", NULL), SLABMQ_OK);
    EXPECT_ST(c, slabmq_resume(c, "orders.eu", NULL), SLABMQ_OK);
    EXPECT_ST(c, slabmq_purge(c, "orders.us", NULL), SLABMQ_OK);
    EXPECT_ST(c, slabmq_delete(c, "orders.new", NULL), SLABMQ_OK);
    EXPECT_ST(c, slabmq_stats_get(c, "orders.eu", &st), SLABMQ_OK);
    slabmq_stats_free(st);
    st = NULL;
    EXPECT_ST(c, slabmq_declare(c, "jobs", NULL, NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_delete(c, "jobs", NULL), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_list(c, &list, &n), SLABMQ_ERR_FORBIDDEN);
    T_ASSERT(strstr(slabmq_client_errmsg(c), "admin=*") != NULL);
    EXPECT_ST(c, slabmq_stats_get(c, NULL, &st), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_publish(c, "orders.eu", "x", 1, &id), SLABMQ_ERR_FORBIDDEN);
    EXPECT_ST(c, slabmq_fetch(c, "orders.eu", 1, 0, &bt), SLABMQ_ERR_FORBIDDEN);
    T_EQ_U64(STAT(root, "orders.us", "ready"), 0);
}

static void
test_permissions_per_queue_pattern(void)
{
    struct users u;
    struct t_broker b;
    slabmq_client *root;
    slabmq_client *c;
    slabmq_queue_info *list = NULL;
    size_t n = 0;

    users_make(&u);
    t_broker_start(&b, "--auth-file", u.path, NULL);
    root = client_as(&b, "root", PW_ROOT);
    c = client_as(&b, "pub", PW_PUB);
    check_publisher(root, c);
    slabmq_client_close(c);
    c = client_as(&b, "cons", PW_CONS);
    check_consumer(root, c);
    slabmq_client_close(c);
    c = client_as(&b, "qadmin", PW_QADMIN);
    check_queue_admin(root, c);
    slabmq_client_close(c);
    /* root may do everything */
    T_OK(root, slabmq_list(root, &list, &n));
    T_ASSERT(n >= 3);
    slabmq_queue_list_free(list);
    T_OK(root, slabmq_delete(root, "orders.eu.dlq", NULL));
    /* a name that is not a queue name is refused as such, not as forbidden */
    {
        uint64_t forbidden = t_stat(root, NULL, "forbidden");
        int fd = raw_user(&b, "pub", PW_PUB);
        struct mb m = {0};
        mb_req(&m, SMQ_OP_PUBLISH, 3, 2);
        mb_str(&m, "not a name");
        mb_bin(&m, "x", 1);
        REQ_ERR(fd, &m, SMQ_OP_PUBLISH, 3, SLABMQ_ERR_BAD_NAME);
        mb_req(&m, SMQ_OP_PUBLISH, 4, 2);
        mb_uint(&m, 5);
        mb_bin(&m, "x", 1);
        REQ_ERR(fd, &m, SMQ_OP_PUBLISH, 4, SLABMQ_ERR_BAD_REQUEST);
        mb_req(&m, SMQ_OP_STATS, 5, 1); /* STATS nil: broker-wide */
        mb_nil(&m);
        REQ_ERR(fd, &m, SMQ_OP_STATS, 5, SLABMQ_ERR_FORBIDDEN);
        close(fd);
        mb_free(&m);
        T_ASSERT(forbidden > 0); /* the checks above were refused too */
        T_EQ_U64(t_stat(root, NULL, "forbidden"), forbidden + 1); /* STATS only */
    }
    T_ASSERT(log_has(&b, "user 'pub' refused publish on jobs"));
    slabmq_client_close(root);
    t_broker_stop(&b);
    users_remove(&u);
}

/* ---------------------------------------------------------------------------------------- */
/* Deadlines                                                                                 */

/* --handshake-timeout: a connection that says nothing, or does HELLO but no AUTH, is closed
 * at the deadline with an error frame; finished handshakes are not affected. */
static void
test_handshake_deadline(void)
{
    struct users u;
    struct t_broker b;

    users_make(&u);
    for (int with_users = 0; with_users <= 1; with_users++) {
        slabmq_client *c;
        int silent;
        int hello;
        int done;
        int64_t t0;
        int64_t took;
        if (with_users)
            t_broker_start(&b, "--auth-file", u.path, "--handshake-timeout", "300", NULL);
        else
            t_broker_start(&b, "--handshake-timeout", "300", NULL);
        c = with_users ? client_as(&b, "root", PW_ROOT) : t_client(&b);
        t0 = t_now_ms();
        silent = t_raw_connect(b.port);
        hello = t_raw_connect(b.port);
        T_EQ_INT(raw_hello_auth(hello), with_users);
        done = with_users ? raw_user(&b, "cons", PW_CONS) : raw_session(&b);
        took = expect_fatal_within(silent, SLABMQ_ERR_HELLO_REQUIRED, 5000, t0);
        T_ASSERT(took >= 250);
        if (with_users) {
            took = expect_fatal_within(hello, SLABMQ_ERR_AUTH, 5000, t0);
            T_ASSERT(took >= 250);
        }
        EXPECT_OPEN(done, 500);
        EXPECT_PING(done);
        if (!with_users) {
            EXPECT_OPEN(hello, 10);
            EXPECT_PING(hello);
        }
        close(silent);
        close(hello);
        close(done);
        T_OK(c, slabmq_ping(c));
        T_EQ_U64(t_stat(c, NULL, "handshake_timeouts"), with_users ? 2 : 1);
        T_ASSERT(log_has(&b, "handshake not done within 300 ms"));
        slabmq_client_close(c);
        t_broker_stop(&b);
    }
    users_remove(&u);
}

/* --idle-timeout: a connection that sends nothing is closed with an error frame; one that
 * keeps talking, waits in a FETCH or holds a message in flight is not. */
static void
test_idle_timeout(void)
{
    struct t_broker b;
    struct mb m = {0};
    struct rep p;
    uint64_t ids[1];
    int idle;
    int talker;
    int waiter;
    int holder;
    int64_t t0;

    t_broker_start(&b, "--idle-timeout", "300", NULL);
    t0 = t_now_ms();
    idle = raw_session(&b);
    talker = raw_session(&b);
    waiter = raw_session(&b);
    holder = raw_session(&b);
    mb_req(&m, SMQ_OP_PUBLISH, 2, 2);
    mb_str(&m, "idleq");
    mb_bin(&m, "m", 1);
    send_mb(holder, &m);
    EXPECT_OK(holder, SMQ_OP_PUBLISH, 2, &p);
    T_EQ_INT(RAW_FETCH(holder, 3, "idleq", 1, ids, 1), 1);
    mb_req(&m, SMQ_OP_FETCH, 2, 3); /* waits 1500 ms on an empty queue */
    mb_str(&m, "idleq.empty");
    mb_uint(&m, 1);
    mb_uint(&m, 1500);
    send_mb(waiter, &m);
    for (int i = 0; i < 10; i++) { /* one second of PINGs every 100 ms */
        EXPECT_PING(talker);
        t_sleep_ms(100);
    }
    T_ASSERT(expect_fatal_within(idle, SLABMQ_ERR_LIMIT, 10, t0) >= 250); /* arrived already */
    EXPECT_OPEN(holder, 10);
    EXPECT_OK(waiter, SMQ_OP_FETCH, 2, &p); /* the FETCH's own (empty) reply */
    T_EQ_INT(parse_messages(__FILE__, __LINE__, &p, ids + 0, 0), 0);
    /* once nothing is outstanding, the waiter and the holder become idle too */
    raw_ack_send(holder, 4, ids, 1);
    T_EQ_U64(EXPECT_COUNT(holder, SMQ_OP_ACK, 4), 1);
    t0 = t_now_ms();
    T_ASSERT(expect_fatal_within(waiter, SLABMQ_ERR_LIMIT, 5000, t0) < 2000);
    T_ASSERT(expect_fatal_within(holder, SLABMQ_ERR_LIMIT, 5000, t0) >= 250);
    close(idle);
    close(talker);
    close(waiter);
    close(holder);
    mb_free(&m);
    /* the library reports the close at the next call, then the connection is unusable */
    {
        slabmq_client *c = t_client(&b);
        t_sleep_ms(700);
        T_EQ_INT(slabmq_ping(c), SLABMQ_ERR_LIMIT);
        T_ASSERT(strstr(slabmq_client_errmsg(c), "--idle-timeout") != NULL);
        T_EQ_INT(slabmq_ping(c), SLABMQ_ERR_CLOSED);
        slabmq_client_close(c);
    }
    T_ASSERT(log_has(&b, "idle for 300 ms; closing"));
    {
        slabmq_client *c = t_client(&b);
        /* idle, talker (once its PINGs stopped), waiter, holder and the library's client */
        T_EQ_U64(t_stat(c, NULL, "idle_closed"), 5);
        slabmq_client_close(c);
    }
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* The HTTP port                                                                             */

/* GET path from the HTTP port with Basic credentials user:pw (user NULL: none); returns the
 * status code, and the response (headers and body) in out. */
static int
http_status(int port, const char *path, const char *user, const char *pw, char *out,
            size_t cap)
{
    char cred[256];
    unsigned char b64[400];
    char req[1024];
    size_t len = 0;
    int fd;
    int n;
    int64_t end = t_now_ms() + 10000;

    if (user) {
        n = snprintf(cred, sizeof(cred), "%s:%s", user, pw);
        EVP_EncodeBlock(b64, (const unsigned char *)cred, n);
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic %s\r\n"
                     "Connection: close\r\n\r\n", path, b64);
    } else {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                     path);
    }
    fd = t_raw_connect(port);
    t_raw_send(fd, req, (size_t)n);
    while (len + 1 < cap && t_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&p, 1, 100) <= 0)
            continue;
        r = read(fd, out + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    out[len] = '\0';
    T_ASSERT(strncmp(out, "HTTP/1.1 ", 9) == 0);
    return atoi(out + 9);
}

/* With users, the HTTP port (metrics, the API, the dashboard) asks for Basic credentials of
 * a user with admin on every queue: none or wrong ones get 401 with a challenge, a user
 * without that right 403, root the page. Without users it stays open. */
static void
test_http_needs_admin(void)
{
    struct users u;
    struct t_broker b;
    static char out[1 << 16];
    static const char *const paths[] = {"/metrics", "/api/stats", "/", "/api/deadletters?queue=q"};
    slabmq_client *root;

    users_make(&u);
    t_broker_start(&b, "--auth-file", u.path, "--http", "0", NULL);
    T_ASSERT(b.http_port > 0);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        T_EQ_INT(http_status(b.http_port, paths[i], NULL, NULL, out, sizeof(out)), 401);
        T_ASSERT(strstr(out, "WWW-Authenticate: Basic realm=\"slabmq\"") != NULL);
        T_EQ_INT(http_status(b.http_port, paths[i], "root", PW_WRONG, out, sizeof(out)), 401);
        T_EQ_INT(http_status(b.http_port, paths[i], "nobody", PW_ROOT, out, sizeof(out)), 401);
        T_EQ_INT(http_status(b.http_port, paths[i], "qadmin", PW_QADMIN, out, sizeof(out)),
                 403); /* admin on orders.* only */
        T_EQ_INT(http_status(b.http_port, paths[i], "root", PW_ROOT, out, sizeof(out)),
                 i == 3 ? 404 : 200); /* no queue q: found out only once let in */
    }
    T_EQ_INT(http_status(b.http_port, "/metrics", "root", PW_ROOT, out, sizeof(out)), 200);
    T_ASSERT(strstr(out, "slabmq_connections") != NULL);
    T_ASSERT(log_has(&b, "http from 127.0.0.1:"));
    T_ASSERT(!log_has(&b, PW_WRONG));
    root = client_as(&b, "root", PW_ROOT);
    T_EQ_U64(t_stat(root, NULL, "auth_failures"), 8);
    T_EQ_U64(t_stat(root, NULL, "forbidden"), 4);
    slabmq_client_close(root);
    t_broker_stop(&b);
    /* no users: open, as documented (loopback by default) */
    t_broker_start(&b, "--http", "0", NULL);
    T_EQ_INT(http_status(b.http_port, "/metrics", NULL, NULL, out, sizeof(out)), 200);
    t_broker_stop(&b);
    users_remove(&u);
}

/* ---------------------------------------------------------------------------------------- */
/* Listening address                                                                         */

/* Listening on 0.0.0.0 without users warns loudly on stderr; with users, or on loopback, it
 * does not. Clients still connect through 127.0.0.1. */
static void
test_public_address_warning(void)
{
    static const char warning[] = "WARNING: listening on 0.0.0.0 without authentication";
    struct users u;
    struct t_broker b;
    slabmq_client *c;

    t_broker_start(&b, "--bind", "0.0.0.0", NULL);
    T_ASSERT(log_has(&b, warning));
    c = t_client(&b);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);

    users_make(&u);
    t_broker_start(&b, "--bind", "0.0.0.0", "--auth-file", u.path, NULL);
    c = client_as(&b, "root", PW_ROOT);
    T_OK(c, slabmq_ping(c));
    T_ASSERT(!log_has(&b, "WARNING"));
    slabmq_client_close(c);
    t_broker_stop(&b);
    users_remove(&u);

    t_broker_start(&b, "--bind", "127.0.0.2", NULL); /* all of 127/8 is loopback */
    T_ASSERT(!log_has(&b, "WARNING"));
    t_broker_stop(&b);
}

/* Without --bind the broker listens on 127.0.0.1. */
static void
test_default_address_is_loopback(void)
{
    struct t_broker b;
    slabmq_client *c;

    t_broker_default_bind = 1;
    t_broker_start(&b, NULL);
    t_broker_default_bind = 0;
    T_ASSERT(log_wait(&b, "listening on 127.0.0.1:", 5000));
    T_ASSERT(!log_has(&b, "WARNING"));
    c = t_client(&b);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* ---------------------------------------------------------------------------------------- */
/* The users file and --hash-password                                                        */

/* Run slabmqd with args; returns its exit status, *err its stderr (free it). */
static int
run_broker(const char *const *args, char **err)
{
    char *argv[16];
    char *out = NULL;
    size_t olen = 0;
    int n = 0;
    int rc;

    argv[n++] = (char *)SLABMQD_PATH;
    argv[n++] = (char *)"--port";
    argv[n++] = (char *)"0";
    for (; *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    rc = t_run(argv, NULL, 0, &out, &olen, err, 10000);
    free(out);
    return rc;
}

/* $SLABMQ_AUTH_FILE turns authentication on like --auth-file; a users file that others may
 * read is loaded with a warning. */
static void
test_auth_file_from_environment(void)
{
    struct users u;
    struct t_broker b;
    slabmq_client *c;
    int fd;

    users_make(&u);
    T_ASSERT(chmod(u.path, 0644) == 0);
    setenv("SLABMQ_AUTH_FILE", u.path, 1);
    t_broker_start(&b, NULL);
    unsetenv("SLABMQ_AUTH_FILE");
    fd = t_raw_connect(b.port);
    T_EQ_INT(raw_hello_auth(fd), 1);
    close(fd);
    c = client_as(&b, "root", PW_ROOT);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    T_ASSERT(log_has(&b, "authentication on: 4 users"));
    T_ASSERT(log_has(&b, "chmod 600"));
    t_broker_stop(&b);
    users_remove(&u);
}

/* A users file with a mistake stops the broker at start with the file, line and reason. */
static void
test_auth_file_errors(void)
{
    static const struct {
        const char *text; /* '@': a valid hash */
        const char *why;
    } cases[] = {
        {"alice secret all\n", ":1: the secret must be a hash"},
        {"# ok\nalice @\n", ":2: no permission given"},
        {"alice @ read=*\n", ":1: unknown permission"},
        {"alice @ publish=or/ders\n", ":1: a pattern may hold only"},
        {"alice @ publish=a,,b\n", ":1: a pattern is 1 to 256"},
        {"alice @ all\nalice @ all\n", ":2: this user is already defined"},
        {"al:ice @ all\n", ":1: a user name is"},
        {"alice pbkdf2-sha256$10$00112233445566778899aabbccddeeff$00 all\n", ":1: iterations"},
        {"alice pbkdf2-sha256$1000$00$00 all\n", ":1: the salt must be"},
        {"alice pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$0011 all\n",
         ":1: the hash must be 32 bytes"},
        {"# nobody\n\n", ": no users"},
    };
    char hash[256];
    char *err = NULL;

    t_password_hash("pw", "--hash-password=1000", hash, sizeof(hash));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct users u;
        char text[1024];
        const char *args[] = {"--auth-file", NULL, NULL};
        size_t len = 0;
        for (const char *t = cases[i].text; *t && len < sizeof(text) - sizeof(hash); t++) {
            if (*t == '@')
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", hash);
            else
                text[len++] = *t;
        }
        text[len] = '\0';
        users_write(&u, text);
        args[1] = u.path;
        T_EQ_INT(run_broker(args, &err), 1);
        if (!strstr(err, "cannot load --auth-file") || !strstr(err, u.path)
            || !strstr(err, cases[i].why))
            t_fail(__FILE__, __LINE__, "case %zu: stderr '%s', expected '%s'", i, err,
                   cases[i].why);
        free(err);
        users_remove(&u);
    }
    {
        const char *missing[] = {"--auth-file", "/nonexistent/users", NULL};
        const char *empty[] = {"--auth-file", "", NULL};
        T_EQ_INT(run_broker(missing, &err), 1);
        T_ASSERT(strstr(err, "/nonexistent/users: No such file") != NULL);
        free(err);
        T_EQ_INT(run_broker(empty, &err), 2);
        free(err);
    }
}

/* --hash-password reads the password from stdin and prints a fresh salted hash; the
 * iteration count can be chosen; an empty password is refused. */
static void
test_hash_password(void)
{
    char *argv[] = {(char *)SLABMQD_PATH, (char *)"--hash-password", NULL};
    char *argv5[] = {(char *)SLABMQD_PATH, (char *)"--hash-password=5", NULL};
    char a[256];
    char b[256];
    char *out = NULL;
    char *err = NULL;
    size_t olen = 0;
    const char *p;

    t_password_hash("same", NULL, a, sizeof(a));
    t_password_hash("same", NULL, b, sizeof(b));
    T_ASSERT(strcmp(a, b) != 0); /* a new salt each time */
    T_ASSERT(strncmp(a, "pbkdf2-sha256$10000$", 20) == 0);
    p = a + 20;
    T_EQ_INT(strspn(p, "0123456789abcdef"), 32);
    T_EQ_INT(p[32], '$');
    T_EQ_INT(strspn(p + 33, "0123456789abcdef"), 64);
    T_EQ_INT(strlen(p + 33), 64);
    t_password_hash("same", "--hash-password=123456", a, sizeof(a));
    T_ASSERT(strncmp(a, "pbkdf2-sha256$123456$", 21) == 0);
    T_EQ_INT(t_run(argv, "\n", 1, &out, &olen, &err, 10000), 2);
    T_ASSERT(strstr(err, "empty") != NULL);
    T_EQ_INT(olen, 0);
    free(out);
    free(err);
    T_EQ_INT(t_run(argv5, "pw\n", 3, &out, &olen, &err, 10000), 2);
    free(out);
    free(err);
}

/* ---------------------------------------------------------------------------------------- */
/* The CLI                                                                                   */

/* The CLI takes credentials from --credentials FILE, $SLABMQ_CREDENTIALS, or $SLABMQ_USER and
 * $SLABMQ_PASSWORD; without them, or with wrong ones, it exits 3; a refused request exits 1. */
static void
test_cli_credentials(void)
{
    struct users u;
    struct users cred;
    struct users bad;
    struct t_broker b;
    struct cli_run r;

    users_make(&u);
    users_write(&cred, "# who\n" "cons:" PW_CONS "\n");
    users_write(&bad, "cons:" PW_WRONG "\n");
    t_broker_start(&b, "--auth-file", u.path, NULL);
    unsetenv("SLABMQ_USER");
    r = RUN(b.port, "--credentials", cred.path, "consume", "jobs");
    T_EQ_INT(r.rc, 4); /* connected, nothing to consume */
    cli_run_free(&r);
    r = RUN(b.port, "--credentials", cred.path, "publish", "jobs", "x");
    T_EQ_INT(r.rc, 1);
    T_ASSERT(strstr(r.err, "may not publish to queue 'jobs'") != NULL);
    cli_run_free(&r);
    r = RUN(b.port, "ping");
    T_EQ_INT(r.rc, 3);
    T_ASSERT(strstr(r.err, "requires authentication") != NULL);
    cli_run_free(&r);
    r = RUN(b.port, "--credentials", bad.path, "ping");
    T_EQ_INT(r.rc, 3);
    T_ASSERT(strstr(r.err, "wrong user name or password") != NULL);
    cli_run_free(&r);
    r = RUN(b.port, "--credentials", "/nonexistent/cred", "ping");
    T_EQ_INT(r.rc, 2);
    cli_run_free(&r);
    setenv("SLABMQ_CREDENTIALS", cred.path, 1);
    r = RUN(b.port, "ping");
    T_EQ_INT(r.rc, 0);
    cli_run_free(&r);
    unsetenv("SLABMQ_CREDENTIALS");
    setenv("SLABMQ_USER", "root", 1);
    setenv("SLABMQ_PASSWORD", PW_ROOT, 1);
    r = RUN(b.port, "queues");
    T_EQ_INT(r.rc, 0);
    cli_run_free(&r);
    unsetenv("SLABMQ_USER");
    unsetenv("SLABMQ_PASSWORD");
    t_broker_stop(&b);
    users_remove(&bad);
    users_remove(&cred);
    users_remove(&u);
}

/* ---------------------------------------------------------------------------------------- */
/* File descriptors                                                                          */

/* CPU seconds (user + system) the process has used, in clock ticks. */
static long
cpu_ticks(pid_t pid)
{
    char path[64];
    char buf[1024];
    unsigned long ut = 0;
    unsigned long st = 0;
    FILE *f;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    T_ASSERT(f != NULL);
    T_ASSERT(fgets(buf, sizeof(buf), f) != NULL);
    fclose(f);
    p = strrchr(buf, ')'); /* after the command name: state is field 3, utime 14, stime 15 */
    T_ASSERT(p != NULL);
    T_EQ_INT(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (long)(ut + st);
}

#define FD_LIMIT 64
#define FD_CONNS 100

/* Has the broker answered on fd? Reads the whole reply once its first byte is there. */
static int
answered_now(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};

    if (poll(&p, 1, 0) != 1)
        return 0;
    if (t_raw_recv_frame(fd, rep_buf, sizeof(rep_buf), REPLY_MS) <= 0)
        t_fail(__FILE__, __LINE__, "no complete reply to a HELLO");
    return 1;
}

/* Out of file descriptors, the broker stops accepting for a while instead of spinning on
 * the error, keeps serving the connections it has, and accepts the waiting ones once
 * descriptors are free again. */
static void
test_out_of_descriptors_pauses_accepting(void)
{
    struct t_broker b;
    struct rlimit old;
    struct rlimit low;
    slabmq_client *c;
    static const uint8_t hello[] = {0, 0, 0, 8, 0x94, 0x01, 0x01, 0x01, 0xa3, 'r', 'a', 'w'};
    int fds[FD_CONNS];
    int answered[FD_CONNS] = {0};
    int got = 0;
    long cpu0;
    long cpu;
    int64_t deadline;

    T_ASSERT(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    low.rlim_cur = FD_LIMIT; /* the broker inherits it; this process gets its own back */
    T_ASSERT(setrlimit(RLIMIT_NOFILE, &low) == 0);
    t_broker_start(&b, NULL);
    T_ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);
    c = t_client(&b);
    for (int i = 0; i < FD_CONNS; i++) {
        fds[i] = t_raw_connect(b.port); /* completes in the listen backlog */
        t_raw_send(fds[i], hello, sizeof(hello));
    }
    /* those accepted answer; the rest wait */
    deadline = t_now_ms() + 3000;
    while (t_now_ms() < deadline) {
        for (int i = 0; i < FD_CONNS; i++) {
            if (!answered[i] && answered_now(fds[i])) {
                answered[i] = 1;
                got++;
            }
        }
        t_sleep_ms(50);
    }
    if (got == 0 || got >= FD_CONNS)
        t_fail(__FILE__, __LINE__, "%d of %d connections answered under a limit of %d fds",
               got, FD_CONNS, FD_LIMIT);
    T_ASSERT(log_wait(&b, "pausing accepts", 5000));
    /* no busy loop on the accept error: well under half a CPU second over a second */
    cpu0 = cpu_ticks(b.pid);
    t_sleep_ms(1000);
    cpu = cpu_ticks(b.pid) - cpu0;
    if (cpu > sysconf(_SC_CLK_TCK) / 2)
        t_fail(__FILE__, __LINE__, "the broker used %ld ticks in 1 s while out of fds", cpu);
    T_OK(c, slabmq_ping(c));
    /* free the accepted ones: every waiting connection gets its answer */
    for (int i = 0; i < FD_CONNS; i++) {
        if (answered[i]) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    deadline = t_now_ms() + 20000;
    while (got < FD_CONNS && t_now_ms() < deadline) {
        for (int i = 0; i < FD_CONNS; i++) {
            if (!answered[i] && answered_now(fds[i])) {
                answered[i] = 1;
                got++;
                close(fds[i]); /* make room for the next ones */
                fds[i] = -1;
            }
        }
        t_sleep_ms(20);
    }
    T_EQ_INT(got, FD_CONNS);
    T_OK(c, slabmq_ping(c));
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static const struct t_case cases[] = {
    T_CASE(test_without_users_nothing_changes),
    T_CASE(test_wrong_password_refused_and_closed),
    T_CASE(test_right_password_works),
    T_CASE(test_requests_before_auth_refused),
    T_CASE(test_frames_before_handshake_capped),
    T_CASE(test_permissions_per_queue_pattern),
    T_CASE(test_handshake_deadline),
    T_CASE(test_idle_timeout),
    T_CASE(test_http_needs_admin),
    T_CASE(test_public_address_warning),
    T_CASE(test_default_address_is_loopback),
    T_CASE(test_auth_file_from_environment),
    T_CASE(test_auth_file_errors),
    T_CASE(test_hash_password),
    T_CASE(test_cli_credentials),
    T_CASE(test_out_of_descriptors_pauses_accepting),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
