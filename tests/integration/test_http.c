/* SPDX-License-Identifier: MIT */
/* slabmqd --http against a real broker: /metrics parses as Prometheus text (a strict checker
 * below: names, labels and their escapes, values, HELP/TYPE before and around contiguous
 * families, no duplicate series, cumulative histograms ending in +Inf = _count) and follows
 * a publish, delivery and ack; the JSON endpoints (a small strict JSON checker); 404s and
 * refused methods; huge headers and a slow client do not hurt the broker; the default
 * address is loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "slabmq.h"
#include "t.h"

/* ---------------------------------------------------------------------------------------- */
/* A minimal HTTP/1.1 client                                                                 */

struct resp {
    int status;   /* 0: no status line (the connection closed first) */
    char *head;   /* status line and headers, NUL-terminated */
    char *body;   /* NUL-terminated */
    size_t len;   /* body bytes */
};

static int
http_connect(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    T_ASSERT(fd >= 0);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    return fd;
}

/* Read until the peer closes or ms pass; returns the bytes (NUL-terminated). */
static char *
read_all(int fd, size_t *len, int ms)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    int64_t deadline = t_now_ms() + ms;

    T_ASSERT(buf != NULL);
    *len = 0;
    while (t_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (*len + 4096 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            T_ASSERT(buf != NULL);
        }
        n = read(fd, buf + *len, cap - *len - 1);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    buf[*len] = '\0';
    return buf;
}

static void
parse_resp(char *raw, size_t len, struct resp *r)
{
    char *sep = strstr(raw, "\r\n\r\n");

    memset(r, 0, sizeof(*r));
    r->head = raw;
    if (!sep) {
        r->body = raw + len;
        return;
    }
    *sep = '\0';
    r->body = sep + 4;
    r->len = len - (size_t)(r->body - raw);
    if (strncmp(raw, "HTTP/1.1 ", 9) == 0 || strncmp(raw, "HTTP/1.0 ", 9) == 0)
        r->status = atoi(raw + 9);
}

/* Send a raw request and read the whole reply. */
static void
http_raw(int port, const char *req, size_t reqlen, struct resp *r)
{
    int fd = http_connect(port);
    size_t len;
    char *raw;

    t_raw_send(fd, req, reqlen);
    raw = read_all(fd, &len, 10000);
    close(fd);
    parse_resp(raw, len, r);
}

static void
http_get(int port, const char *path, struct resp *r)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);

    http_raw(port, req, (size_t)n, r);
}

static void
resp_free(struct resp *r)
{
    free(r->head);
    r->head = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* A strict checker of the Prometheus text format 0.0.4                                     */

#define PROM_MAX_SERIES 4096

struct prom {
    char *series[PROM_MAX_SERIES]; /* "name{labels}" as written */
    double value[PROM_MAX_SERIES];
    int n;
};

static int
name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int
name_char(int c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Length of the metric name at p (0 if none). */
static size_t
metric_name(const char *p)
{
    size_t n = 0;

    if (!name_start((unsigned char)p[0]))
        return 0;
    while (name_char((unsigned char)p[n]))
        n++;
    return n;
}

/* The family a sample name belongs to, given the current TYPE. */
static int
in_family(const char *name, size_t n, const char *fam, const char *type)
{
    static const char *const hsuf[] = {"_bucket", "_sum", "_count"};
    size_t fl = strlen(fam);

    if (n == fl && strncmp(name, fam, n) == 0)
        return strcmp(type, "histogram") != 0;
    if (strcmp(type, "histogram") != 0 || n <= fl || strncmp(name, fam, fl) != 0)
        return 0;
    for (int i = 0; i < 3; i++)
        if (n - fl == strlen(hsuf[i]) && strncmp(name + fl, hsuf[i], n - fl) == 0)
            return 1;
    return 0;
}

/* Labels at p ("{...}"); fails the test on a bad one. Returns the end. Sets le (the value
 * of an le label, or NULL) into lebuf. */
static const char *
check_labels(const char *p, int line, char *lebuf, size_t lecap, int *has_le)
{
    *has_le = 0;
    if (*p != '{')
        return p;
    p++;
    while (*p != '}') {
        const char *ln = p;
        size_t n = 0;
        char val[64];
        size_t vn = 0;
        if (!(name_start((unsigned char)*p) && *p != ':'))
            t_fail(__FILE__, __LINE__, "line %d: bad label name at '%.20s'", line, p);
        while (name_char((unsigned char)p[n]) && p[n] != ':')
            n++;
        p += n;
        if (p[0] != '=' || p[1] != '"')
            t_fail(__FILE__, __LINE__, "line %d: expected =\" after a label name", line);
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                t_fail(__FILE__, __LINE__, "line %d: unterminated label value", line);
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    t_fail(__FILE__, __LINE__, "line %d: bad escape \\%c", line, p[1]);
                p++;
            }
            if (vn < sizeof(val) - 1)
                val[vn++] = *p;
            p++;
        }
        val[vn] = '\0';
        p++;
        if (n == 2 && strncmp(ln, "le", 2) == 0) {
            snprintf(lebuf, lecap, "%s", val);
            *has_le = 1;
        }
        if (*p == ',')
            p++;
        else if (*p != '}')
            t_fail(__FILE__, __LINE__, "line %d: expected , or } in labels", line);
    }
    return p + 1;
}

static double
check_value(const char *p, const char *end, int line)
{
    char buf[64];
    char *e;
    double v;
    size_t n = (size_t)(end - p);

    if (n == 0 || n >= sizeof(buf))
        t_fail(__FILE__, __LINE__, "line %d: bad value length", line);
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (strcmp(buf, "+Inf") == 0)
        return INFINITY;
    if (strcmp(buf, "-Inf") == 0)
        return -INFINITY;
    if (strcmp(buf, "NaN") == 0)
        return NAN;
    v = strtod(buf, &e);
    if (*e)
        t_fail(__FILE__, __LINE__, "line %d: value '%s' is not a number", line, buf);
    return v;
}

struct hist_state {
    double last_le;
    double last_cum;
    double inf;
};

/* One sample line: name, labels, value; checked against the family and recorded. */
static void
check_sample(struct prom *pr, const char *line, size_t len, int ln, const char *fam,
             const char *type, struct hist_state *h)
{
    char le[64];
    int has_le;
    size_t n = metric_name(line);
    const char *p;
    double v;

    if (!n)
        t_fail(__FILE__, __LINE__, "line %d: no metric name: '%.40s'", ln, line);
    if (!fam[0] || !in_family(line, n, fam, type))
        t_fail(__FILE__, __LINE__, "line %d: sample '%.*s' outside its family (%s)", ln, (int)n,
               line, fam);
    p = check_labels(line + n, ln, le, sizeof(le), &has_le);
    if (*p != ' ')
        t_fail(__FILE__, __LINE__, "line %d: expected a space before the value", ln);
    v = check_value(p + 1, line + len, ln);
    if (strcmp(type, "counter") == 0 && (v < 0 || strcmp(fam + strlen(fam) - 6, "_total")))
        t_fail(__FILE__, __LINE__, "line %d: counter %s must be >= 0 and end in _total", ln,
               fam);
    if (strcmp(type, "histogram") == 0 && n > 7 && strncmp(line + n - 7, "_bucket", 7) == 0) {
        double bound;
        if (!has_le)
            t_fail(__FILE__, __LINE__, "line %d: bucket without le", ln);
        bound = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
        if (bound < h->last_le && h->last_le != INFINITY)
            t_fail(__FILE__, __LINE__, "line %d: le not increasing", ln);
        if (h->last_le != INFINITY && v < h->last_cum)
            t_fail(__FILE__, __LINE__, "line %d: buckets not cumulative", ln);
        h->last_le = bound == INFINITY ? INFINITY : bound;
        h->last_cum = v;
        if (bound == INFINITY) {
            h->inf = v;
            h->last_le = -1; /* the next series' buckets start again */
            h->last_cum = 0;
        }
    }
    if (strcmp(type, "histogram") == 0 && n > 6 && strncmp(line + n - 6, "_count", 6) == 0
        && v != h->inf)
        t_fail(__FILE__, __LINE__, "line %d: _count %g != +Inf bucket %g", ln, v, h->inf);
    for (int i = 0; i < pr->n; i++)
        if (strlen(pr->series[i]) == (size_t)(p - line)
            && strncmp(pr->series[i], line, (size_t)(p - line)) == 0)
            t_fail(__FILE__, __LINE__, "line %d: duplicate series %s", ln, pr->series[i]);
    T_ASSERT(pr->n < PROM_MAX_SERIES);
    pr->series[pr->n] = strndup(line, (size_t)(p - line));
    pr->value[pr->n++] = v;
}

/* # HELP / # TYPE lines; a TYPE opens a family, which must be new. */
static void
check_comment(const char *line, size_t len, int ln, char *fam, char *type, char (*seen)[96],
              int *nseen)
{
    char name[96];
    char kind[32];

    if (strncmp(line, "# HELP ", 7) == 0) {
        size_t n = metric_name(line + 7);
        if (!n || (line[7 + n] != ' ' && 7 + n != len))
            t_fail(__FILE__, __LINE__, "line %d: bad HELP", ln);
        return;
    }
    if (strncmp(line, "# TYPE ", 7) != 0)
        return; /* another comment */
    if (sscanf(line + 7, "%95s %31s", name, kind) != 2 || metric_name(name) != strlen(name))
        t_fail(__FILE__, __LINE__, "line %d: bad TYPE", ln);
    if (strcmp(kind, "counter") && strcmp(kind, "gauge") && strcmp(kind, "histogram")
        && strcmp(kind, "summary") && strcmp(kind, "untyped"))
        t_fail(__FILE__, __LINE__, "line %d: unknown type %s", ln, kind);
    if (strncmp(name, "slabmq_", 7) != 0)
        t_fail(__FILE__, __LINE__, "line %d: %s lacks the slabmq_ prefix", ln, name);
    for (int i = 0; i < *nseen; i++)
        if (strcmp(seen[i], name) == 0)
            t_fail(__FILE__, __LINE__, "line %d: family %s appears twice", ln, name);
    T_ASSERT(*nseen < 512);
    snprintf(seen[(*nseen)++], 96, "%s", name);
    snprintf(fam, 96, "%s", name);
    snprintf(type, 32, "%s", kind);
}

static void
prom_parse(const char *text, size_t len, struct prom *pr)
{
    static char seen[512][96];
    int nseen = 0;
    char fam[96] = "";
    char type[32] = "";
    struct hist_state h = {-1, 0, 0};
    const char *p = text;
    int ln = 0;

    pr->n = 0;
    T_ASSERT(len > 0 && text[len - 1] == '\n');
    while (p < text + len) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t l = (size_t)(nl - p);
        char *line = strndup(p, l);
        ln++;
        if (l == 0)
            ; /* blank lines are allowed */
        else if (line[0] == '#')
            check_comment(line, l, ln, fam, type, seen, &nseen);
        else
            check_sample(pr, line, l, ln, fam, type, &h);
        free(line);
        p = nl + 1;
    }
}

/* The value of one series, written exactly as in the output; fails if absent. */
static double
prom_get(const struct prom *pr, const char *series)
{
    for (int i = 0; i < pr->n; i++)
        if (strcmp(pr->series[i], series) == 0)
            return pr->value[i];
    t_fail(__FILE__, __LINE__, "no series %s", series);
}

static int
prom_has(const struct prom *pr, const char *series)
{
    for (int i = 0; i < pr->n; i++)
        if (strcmp(pr->series[i], series) == 0)
            return 1;
    return 0;
}

static void
prom_free(struct prom *pr)
{
    for (int i = 0; i < pr->n; i++)
        free(pr->series[i]);
    pr->n = 0;
}

/* The reference parser too, when Debian's python3-prometheus-client is installed
 * (scripts/deps.sh test installs it; run without it, the checker above is the test). */
static void
reference_parse(const char *text, size_t len)
{
    static const char prog[] =
        "import sys\n"
        "try:\n"
        "    from prometheus_client.parser import text_string_to_metric_families as f\n"
        "except ImportError:\n"
        "    print('python3-prometheus-client not installed: no reference check')\n"
        "    sys.exit(0)\n"
        "n = sum(len(m.samples) for m in f(sys.stdin.read()))\n"
        "print('reference parser: %d samples' % n)\n";
    char *argv[] = {"/usr/bin/python3", "-c", (char *)prog, NULL};
    char *out = NULL;
    char *err = NULL;
    size_t olen;
    int rc;

    if (access(argv[0], X_OK) != 0)
        return;
    rc = t_run(argv, text, len, &out, &olen, &err, 30000);
    if (rc != 0)
        t_fail(__FILE__, __LINE__, "prometheus_client rejects the output (%d): %s", rc,
               err ? err : "");
    printf("%s", out);
    free(out);
    free(err);
}

static void
get_metrics(const struct t_broker *b, struct prom *pr)
{
    struct resp r;

    http_get(b->http_port, "/metrics", &r);
    T_EQ_INT(r.status, 200);
    T_ASSERT(strstr(r.head, "Content-Type: text/plain; version=0.0.4") != NULL);
    prom_parse(r.body, r.len, pr);
    reference_parse(r.body, r.len);
    resp_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* A strict JSON syntax checker (RFC 8259, no extensions)                                   */

static const char *json_value(const char *p, int depth);

static const char *
json_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

static const char *
json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return p + 1;
}

static const char *
json_number(const char *p)
{
    const char *s = p;

    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

/* Members of an object (obj) or elements of an array, after the opening bracket. */
static const char *
json_items(const char *p, int obj, int depth)
{
    char close = obj ? '}' : ']';

    p = json_ws(p);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (obj) {
            if (!(p = json_string(json_ws(p))))
                return NULL;
            p = json_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if (!(p = json_value(p, depth + 1)))
            return NULL;
        p = json_ws(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *
json_value(const char *p, int depth)
{
    if (depth > 32)
        return NULL;
    p = json_ws(p);
    if (*p == '{' || *p == '[')
        return json_items(p + 1, *p == '{', depth);
    if (*p == '"')
        return json_string(p);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    return json_number(p);
}

static void
json_check(const char *text)
{
    const char *end = json_value(text, 0);

    if (!end || *json_ws(end) != '\0')
        t_fail(__FILE__, __LINE__, "not valid JSON near offset %ld: %.200s",
               end ? (long)(end - text) : -1L, text);
}

static void
get_json(const struct t_broker *b, const char *path, int status, struct resp *r)
{
    http_get(b->http_port, path, r);
    T_EQ_INT(r->status, status);
    T_ASSERT(strstr(r->head, "Content-Type: application/json") != NULL);
    json_check(r->body);
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */

static void
start(struct t_broker *b)
{
    t_broker_start(b, "--http", "127.0.0.1:0", NULL);
    T_ASSERT(b->http_port > 0);
}

static void
publish_n(slabmq_client *c, const char *q, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t id;
        char body[32];
        int len = snprintf(body, sizeof(body), "message %d", i);
        T_OK(c, slabmq_publish(c, q, body, (size_t)len, &id));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Cases                                                                                     */

static void
test_metrics_parse_and_follow(void)
{
    struct t_broker b;
    struct prom pr;
    slabmq_client *c;
    slabmq_batch *batch;

    start(&b);
    c = t_client(&b);
    publish_n(c, "orders.eu:1", 3);
    T_OK(c, slabmq_fetch(c, "orders.eu:1", 2, 0, &batch));
    T_EQ_INT(slabmq_batch_count(batch), 2);
    t_sleep_ms(20);
    T_OK(c, slabmq_ack(c, slabmq_batch_get(batch, 0)->id));
    slabmq_batch_free(batch);

    get_metrics(&b, &pr);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_ready_messages{queue=\"orders.eu:1\"}"), 1);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_inflight_messages{queue=\"orders.eu:1\"}"), 1);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_delayed_messages{queue=\"orders.eu:1\"}"), 0);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_published_total{queue=\"orders.eu:1\"}"), 3);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_delivered_total{queue=\"orders.eu:1\"}"), 2);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_acked_total{queue=\"orders.eu:1\"}"), 1);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_redelivered_total{queue=\"orders.eu:1\"}"), 0);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_dead_lettered_total{queue=\"orders.eu:1\"}"), 0);
    T_EQ_INT(prom_get(&pr,
                      "slabmq_queue_publish_to_deliver_seconds_count{queue=\"orders.eu:1\"}"),
             2);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_deliver_to_ack_seconds_count{queue=\"orders.eu:1\"}"),
             1);
    T_ASSERT(prom_get(&pr, "slabmq_queue_deliver_to_ack_seconds_sum{queue=\"orders.eu:1\"}")
             >= 0.015);
    T_EQ_INT(prom_get(&pr, "slabmq_connections"), 1);
    T_EQ_INT(prom_get(&pr, "slabmq_queues"), 1);
    T_EQ_INT(prom_get(&pr, "slabmq_messages"), 2);
    T_ASSERT(prom_get(&pr, "slabmq_memory_used_bytes") > 0);
    T_EQ_INT(prom_get(&pr, "slabmq_memory_limit_bytes"), 1 << 30);
    T_ASSERT(prom_get(&pr, "slabmq_reservoir_hits_total")
                 + prom_get(&pr, "slabmq_reservoir_misses_total")
             > 0);
    T_EQ_INT(prom_get(&pr, "slabmq_durability_enabled"), 0);
    T_ASSERT(!prom_has(&pr, "slabmq_store_lag_operations"));
    prom_free(&pr);

    /* the last ack, then the counters move and the gauges fall */
    T_OK(c, slabmq_fetch(c, "orders.eu:1", 10, 0, &batch));
    T_EQ_INT(slabmq_batch_count(batch), 1);
    T_OK(c, slabmq_ack(c, slabmq_batch_get(batch, 0)->id));
    slabmq_batch_free(batch);
    get_metrics(&b, &pr);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_ready_messages{queue=\"orders.eu:1\"}"), 0);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_acked_total{queue=\"orders.eu:1\"}"), 2);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_publish_to_deliver_seconds_bucket{queue=\"orders.eu:"
                           "1\",le=\"+Inf\"}"),
             3);
    prom_free(&pr);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_metrics_slab_classes_and_store(void)
{
    struct t_broker b;
    struct prom pr;
    slabmq_client *c;
    char dir[128];
    int found = 0;

    snprintf(dir, sizeof(dir), "/tmp/slabmq-http-store.XXXXXX");
    T_ASSERT(mkdtemp(dir) != NULL);
    t_broker_start(&b, "--http", "0", "--durability", "sqlite", "--data-dir", dir, NULL);
    c = t_client(&b);
    publish_n(c, "durable", 10);
    get_metrics(&b, &pr);
    T_EQ_INT(prom_get(&pr, "slabmq_durability_enabled"), 1);
    T_ASSERT(prom_get(&pr, "slabmq_store_lag_operations") >= 0);
    T_ASSERT(prom_get(&pr, "slabmq_store_appended_total") >= 10);
    for (int i = 0; i < pr.n; i++)
        if (strncmp(pr.series[i], "slabmq_slab_class_chunks_used{class=\"", 37) == 0
            && pr.value[i] > 0)
            found++;
    T_ASSERT(found > 0);
    prom_free(&pr);
    slabmq_client_close(c);
    t_broker_stop(&b);
    t_remove_dir(dir);
}

static void
test_api_stats(void)
{
    struct t_broker b;
    struct resp r;
    slabmq_client *c;

    start(&b);
    c = t_client(&b);
    publish_n(c, "jobs", 4);
    publish_n(c, "other", 1);
    get_json(&b, "/api/stats", 200, &r);
    T_ASSERT(strstr(r.body, "{\"name\":\"jobs\",\"ready\":4,") != NULL);
    T_ASSERT(strstr(r.body, "{\"name\":\"other\",\"ready\":1,") != NULL);
    T_ASSERT(strstr(r.body, "\"dead_letter\":\"jobs.dlq\"") != NULL);
    T_ASSERT(strstr(r.body, "\"memory\":{\"used\":") != NULL);
    T_ASSERT(strstr(r.body, "\"reservoir\":{\"hits\":") != NULL);
    T_ASSERT(strstr(r.body, "\"classes\":[{\"class\":") != NULL);
    resp_free(&r);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_api_dead_letters(void)
{
    struct t_broker b;
    struct resp r;
    slabmq_client *c;
    slabmq_batch *batch;
    uint64_t id;

    start(&b);
    c = t_client(&b);
    publish_n(c, "work", 2);
    T_OK(c, slabmq_fetch(c, "work", 1, 0, &batch));
    id = slabmq_batch_get(batch, 0)->id;
    T_OK(c, slabmq_term(c, &id, 1, NULL));
    slabmq_batch_free(batch);

    get_json(&b, "/api/deadletters?queue=work", 200, &r);
    T_ASSERT(strstr(r.body, "\"dead_letter\":\"work.dlq\",\"count\":1,") != NULL);
    T_ASSERT(strstr(r.body, "\"reason\":\"rejected\",\"source\":\"work\"") != NULL);
    T_ASSERT(strstr(r.body, "\"preview\":\"message 0\"") != NULL);
    resp_free(&r);
    /* read-only: the dead letter is still there, the source queue unchanged */
    get_json(&b, "/api/deadletters?queue=work&max=1", 200, &r);
    T_ASSERT(strstr(r.body, "\"count\":1,") != NULL);
    resp_free(&r);
    get_json(&b, "/api/stats", 200, &r);
    T_ASSERT(strstr(r.body, "{\"name\":\"work\",\"ready\":1,") != NULL);
    resp_free(&r);
    get_json(&b, "/api/deadletters?queue=nope", 404, &r);
    resp_free(&r);
    get_json(&b, "/api/deadletters", 400, &r);
    resp_free(&r);
    get_json(&b, "/api/deadletters?max=3", 400, &r);
    resp_free(&r);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

static void
test_not_found_and_methods(void)
{
    struct t_broker b;
    struct resp r;
    static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                               "Connection: close\r\n\r\nhi";

    start(&b);
    get_json(&b, "/nope", 404, &r);
    resp_free(&r);
    get_json(&b, "/metrics/extra", 404, &r);
    resp_free(&r);
    http_get(b.http_port, "/", &r);
    T_EQ_INT(r.status, 200);
    T_ASSERT(strstr(r.head, "Content-Type: text/html") != NULL);
    T_ASSERT(strstr(r.body, "<html") != NULL);
    resp_free(&r);
    http_raw(b.http_port, post, sizeof(post) - 1, &r);
    T_ASSERT(r.status == 405 || r.status == 501);
    resp_free(&r);
    http_raw(b.http_port, "garbage\r\n\r\n", 11, &r);
    T_ASSERT(r.status == 0 || r.status == 400);
    resp_free(&r);
    t_broker_stop(&b);
}

/* Headers over the limit are refused; the broker serves everyone else as before. */
static void
test_huge_headers(void)
{
    struct t_broker b;
    struct resp r;
    struct prom pr;
    size_t n = 256 * 1024;
    char *req = malloc(n + 64);
    size_t len;
    slabmq_client *c;

    start(&b);
    len = (size_t)snprintf(req, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
    memset(req + len, 'a', n);
    len += n;
    memcpy(req + len, "\r\n\r\n", 4);
    len += 4;
    {
        int fd = http_connect(b.http_port);
        size_t got;
        char *raw;
        (void)!send(fd, req, len, MSG_NOSIGNAL); /* the broker may close before all of it */
        raw = read_all(fd, &got, 10000);
        parse_resp(raw, got, &r);
        T_ASSERT(r.status == 0 || r.status == 400 || r.status == 413 || r.status == 431);
        resp_free(&r);
        close(fd);
    }
    free(req);
    T_ASSERT(t_broker_alive(&b));
    c = t_client(&b);
    publish_n(c, "still", 1);
    get_metrics(&b, &pr);
    T_EQ_INT(prom_get(&pr, "slabmq_queue_ready_messages{queue=\"still\"}"), 1);
    prom_free(&pr);
    slabmq_client_close(c);
    t_broker_stop(&b);
}

/* A client that stops halfway through its request is closed after the timeout, and does
 * not hold up others meanwhile. */
static void
test_slow_client(void)
{
    struct t_broker b;
    struct resp r;
    int slow[8];
    int64_t t0;

    start(&b);
    for (int i = 0; i < 8; i++) {
        slow[i] = http_connect(b.http_port);
        t_raw_send(slow[i], "GET /metr", 9);
    }
    t0 = t_now_ms();
    http_get(b.http_port, "/metrics", &r);
    T_EQ_INT(r.status, 200);
    T_ASSERT(t_now_ms() - t0 < 3000); /* served well before the slow ones time out (5 s) */
    resp_free(&r);
    for (int i = 0; i < 8; i++) {
        T_ASSERT(t_raw_wait_closed(slow[i], 15000));
        close(slow[i]);
    }
    T_ASSERT(t_now_ms() - t0 < 15000);
    T_ASSERT(t_broker_alive(&b));
    t_broker_stop(&b);
}

/* "--http PORT" listens on 127.0.0.1 only: the machine's other addresses refuse. */
static void
test_loopback_only(void)
{
    struct t_broker b;
    struct ifaddrs *ifs;
    struct resp r;
    int tried = 0;

    t_broker_start(&b, "--http", "0", NULL);
    T_ASSERT(b.http_port > 0);
    http_get(b.http_port, "/metrics", &r);
    T_EQ_INT(r.status, 200);
    resp_free(&r);
    T_EQ_INT(getifaddrs(&ifs), 0);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        struct sockaddr_in a;
        int fd;
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        memcpy(&a, i->ifa_addr, sizeof(a));
        if ((ntohl(a.sin_addr.s_addr) >> 24) == 127)
            continue;
        a.sin_port = htons((uint16_t)b.http_port);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        T_ASSERT(fd >= 0);
        T_ASSERT(connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0);
        T_EQ_INT(errno, ECONNREFUSED);
        close(fd);
        tried++;
    }
    freeifaddrs(ifs);
    printf("tried %d non-loopback addresses\n", tried);
    t_broker_stop(&b);
}

static void
test_bad_flag(void)
{
    char *argv1[] = {SLABMQD_PATH, "--http", "localhost:80", NULL};
    char *argv2[] = {SLABMQD_PATH, "--http", "127.0.0.1:99999", NULL};
    char *out = NULL;
    char *err = NULL;
    size_t len;

    T_EQ_INT(t_run(argv1, NULL, 0, &out, &len, &err, 10000), 2);
    T_ASSERT(strstr(err, "--http") != NULL);
    free(out);
    free(err);
    T_EQ_INT(t_run(argv2, NULL, 0, &out, &len, &err, 10000), 2);
    free(out);
    free(err);
}

/* The checker itself: what it must refuse (each in a child, since a refusal fails it). */
static void
test_checker_rejects(void)
{
    static const char *const bad[] = {
        "slabmq_x 1\n",                                             /* no TYPE */
        "# TYPE slabmq_x gauge\nslabmq_x{a=\"b} 1\n",              /* open label */
        "# TYPE slabmq_x gauge\nslabmq_x{a=\"\\q\"} 1\n",       /* bad escape */
        "# TYPE slabmq_x gauge\nslabmq_x one\n",                   /* value */
        "# TYPE slabmq_x counter\nslabmq_x 1\n",                   /* no _total */
        "# TYPE slabmq_x gauge\nslabmq_x 1\nslabmq_x 2\n",         /* duplicate */
        "# TYPE slabmq_x gauge\n# TYPE slabmq_y gauge\nslabmq_x 1\n", /* not contiguous */
        "# TYPE slabmq_h histogram\nslabmq_h_bucket{le=\"1\"} 2\n"
        "slabmq_h_bucket{le=\"+Inf\"} 1\nslabmq_h_count 1\n",      /* not cumulative */
        "# TYPE slabmq_h histogram\nslabmq_h_bucket{le=\"+Inf\"} 2\nslabmq_h_count 1\n",
        "# TYPE slabmq_x gauge\nslabmq_x 1",                         /* no final newline */
    };
    static const char good[] = "# HELP slabmq_x a\n# TYPE slabmq_x gauge\nslabmq_x{q=\"a\\\"b\"} 1.5\n"
                               "# TYPE slabmq_h histogram\nslabmq_h_bucket{le=\"1\"} 1\n"
                               "slabmq_h_bucket{le=\"+Inf\"} 2\nslabmq_h_sum 3\nslabmq_h_count 2\n";
    struct prom pr;

    prom_parse(good, strlen(good), &pr);
    T_EQ_INT(pr.n, 5);
    prom_free(&pr);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st;
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            freopen("/dev/null", "w", stderr);
            prom_parse(bad[i], strlen(bad[i]), &pr);
            _exit(0);
        }
        T_ASSERT(waitpid(pid, &st, 0) == pid);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            t_fail(__FILE__, __LINE__, "the checker accepted bad input %zu: %s", i, bad[i]);
    }
}

static const struct t_case cases[] = {
    T_CASE(test_checker_rejects),
    T_CASE(test_metrics_parse_and_follow),
    T_CASE(test_metrics_slab_classes_and_store),
    T_CASE(test_api_stats),
    T_CASE(test_api_dead_letters),
    T_CASE(test_not_found_and_methods),
    T_CASE(test_huge_headers),
    T_CASE(test_slow_client),
    T_CASE(test_loopback_only),
    T_CASE(test_bad_flag),
    {NULL, NULL},
};

int
main(int argc, char **argv)
{
    return t_main(cases, argc, argv);
}
