/* SPDX-License-Identifier: MIT */
/* The public operations of libslabmq: each packs its request, calls smq_call and decodes the
 * results into caller-owned objects. */
#include <stdlib.h>
#include <string.h>

#include "client-internal.h"
#include "codec.h"
#include "ops.h"
#include "settings.h"

/* The public header states the protocol's limits for users; they must be protocol/'s. */
_Static_assert(SLABMQ_TIME_MAX_MS == SMQ_TIME_MAX_MS, "slabmq.h and proto_limits.h differ");
_Static_assert(SLABMQ_PRIORITY_MAX == SMQ_PRIO_MAX, "slabmq.h and proto_limits.h differ");
_Static_assert(SLABMQ_FETCH_QUEUES_MAX == SMQ_FETCH_QUEUES_MAX,
               "slabmq.h and proto_limits.h differ");
_Static_assert(SLABMQ_PRODUCER_ID_MAX == SMQ_PRODUCER_ID_MAX, "slabmq.h and proto_limits.h differ");

/* Read one uint result into *out (if out is not NULL). */
static slabmq_status
one_uint(slabmq_client *c, struct smq_mpr *r, uint32_t n, uint64_t *out)
{
    uint64_t v;

    if (n < 1 || smq_mpr_uint(r, &v))
        return smq_bad_reply(c, "expected an integer result");
    if (out)
        *out = v;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_ping(slabmq_client *c)
{
    struct smq_mpr r;
    uint32_t n;

    if (!c)
        return SLABMQ_ERR_ARG;
    smq_req_begin(c, SMQ_OP_PING, 0);
    return smq_call(c, SMQ_OP_PING, 0, &r, &n);
}

/* The wire value of a setting whose "none" has its own sentinel in the API: 0 on the wire. */
static uint64_t
wire(uint64_t v, uint64_t none)
{
    return v == none ? 0 : v;
}

/* The index among an ENUM setting's values (protocol/settings.c) of an API enum whose 0 is
 * "unchanged" and whose 1..count are the values; anything else sends the first. */
static uint64_t
enum_index(int v, int count)
{
    return v >= 1 && v <= count ? (uint64_t)(v - 1) : 0;
}

/* The API's enums are the table's ENUM indexes + 1, 0 being "unchanged" (the CLI relies on
 * it too). */
_Static_assert(SLABMQ_OVERFLOW_REJECT == 1 && SLABMQ_OVERFLOW_DROP_OLDEST == 2
                   && SLABMQ_OVERFLOW_DEAD_LETTER == 3,
               "slabmq_overflow and overflow's values (protocol/settings.c) differ");
_Static_assert(SLABMQ_CONFIRM_MEMORY == 1 && SLABMQ_CONFIRM_WRITTEN == 2
                   && SLABMQ_CONFIRM_SYNCED == 3,
               "slabmq_confirm_level and confirm's values (protocol/settings.c) differ");

/* The order this library has always sent the options in (the broker takes any). */
static const enum smq_setting wire_order[] = {
    SMQ_SET_VISIBILITY, SMQ_SET_MAX_MESSAGES,   SMQ_SET_MAX_BYTES, SMQ_SET_BACKOFF,
    SMQ_SET_BACKOFF_MAX, SMQ_SET_MAX_DELIVERIES, SMQ_SET_TTL,       SMQ_SET_DEDUP_WINDOW,
    SMQ_SET_DEAD_LETTER, SMQ_SET_DURABLE,        SMQ_SET_CONFIRM,   SMQ_SET_OVERFLOW,
};
_Static_assert(sizeof(wire_order) / sizeof(wire_order[0]) == SMQ_SETTING_COUNT,
               "a queue setting (protocol/settings.h) that slabmq_declare does not send");

/* Setting s of o: 1 with its wire value in *v (or *str for a NAME), 0 if o leaves it
 * unchanged. A row added to the table and not wired here fails to compile (-Wswitch). */
static int
option_value(const slabmq_queue_options *o, enum smq_setting s, uint64_t *v, const char **str)
{
    switch (s) {
    case SMQ_SET_VISIBILITY:
        *v = o->visibility_ms;
        return o->visibility_ms != 0;
    case SMQ_SET_BACKOFF:
        *v = wire(o->retry_backoff_ms, SLABMQ_NO_BACKOFF);
        return o->retry_backoff_ms != 0;
    case SMQ_SET_BACKOFF_MAX:
        *v = o->retry_backoff_max_ms;
        return o->retry_backoff_max_ms != 0;
    case SMQ_SET_MAX_MESSAGES: /* on the wire 0 means "no limit" */
        *v = wire(o->max_messages, SLABMQ_NO_LIMIT);
        return o->max_messages != 0;
    case SMQ_SET_MAX_BYTES:
        *v = wire(o->max_bytes, SLABMQ_NO_LIMIT);
        return o->max_bytes != 0;
    case SMQ_SET_OVERFLOW:
        *v = enum_index((int)o->overflow, 3);
        return o->overflow != SLABMQ_OVERFLOW_UNCHANGED;
    case SMQ_SET_MAX_DELIVERIES:
        *v = wire(o->max_deliveries, SLABMQ_NO_LIMIT);
        return o->max_deliveries != 0;
    case SMQ_SET_TTL:
        *v = wire(o->ttl_ms, SLABMQ_NO_TTL);
        return o->ttl_ms != 0;
    case SMQ_SET_DEDUP_WINDOW:
        *v = wire(o->dedup_window, SLABMQ_DEDUP_OFF);
        return o->dedup_window != 0;
    case SMQ_SET_DURABLE:
        *v = o->durable == SLABMQ_DURABLE_YES;
        return o->durable != 0;
    case SMQ_SET_CONFIRM:
        *v = enum_index((int)o->confirm, 3);
        return o->confirm != SLABMQ_CONFIRM_DEFAULT;
    case SMQ_SET_DEAD_LETTER:
        *str = o->dead_letter;
        return o->dead_letter != NULL;
    case SMQ_SETTING_COUNT:
        break;
    }
    return 0;
}

/* The DECLARE options map: only the fields that are set, keys and kinds from the table. */
static void
pack_queue_options(slabmq_client *c, const slabmq_queue_options *o)
{
    static const slabmq_queue_options none = SLABMQ_QUEUE_OPTIONS_INIT;
    uint64_t v[SMQ_SETTING_COUNT];
    const char *str = NULL;
    int set[SMQ_SETTING_COUNT];
    size_t n = 0;

    if (!o)
        o = &none;
    for (size_t i = 0; i < SMQ_SETTING_COUNT; i++)
        n += (size_t)(set[i] = option_value(o, wire_order[i], &v[i], &str));
    msgpack_pack_map(&c->pk, n);
    for (size_t i = 0; i < SMQ_SETTING_COUNT; i++) {
        const struct smq_setting_info *s = &smq_settings[wire_order[i]];
        if (!set[i])
            continue;
        smq_pack_str(c, s->key);
        switch (s->kind) {
        case SMQ_SETTING_UINT:
            msgpack_pack_uint64(&c->pk, v[i]);
            break;
        case SMQ_SETTING_ENUM:
            smq_pack_str(c, s->values[v[i]]);
            break;
        case SMQ_SETTING_BOOL:
            if (v[i])
                msgpack_pack_true(&c->pk);
            else
                msgpack_pack_false(&c->pk);
            break;
        case SMQ_SETTING_NAME:
            smq_pack_str(c, str);
            break;
        }
    }
}

SLABMQ_API void
slabmq_queue_options_init(slabmq_queue_options *o)
{
    /* all zero is "change nothing"; written out so a non-zero default would show here */
    memset(o, 0, sizeof(*o));
    o->overflow = SLABMQ_OVERFLOW_UNCHANGED;
    o->confirm = SLABMQ_CONFIRM_DEFAULT;
}

SLABMQ_API void
slabmq_publish_options_init(slabmq_publish_options *o)
{
    memset(o, 0, sizeof(*o));
    o->confirm = SLABMQ_CONFIRM_DEFAULT;
}

SLABMQ_API slabmq_status
slabmq_declare(slabmq_client *c, const char *queue, const slabmq_queue_options *opts,
               int *created)
{
    struct smq_mpr r;
    uint32_t n;
    int v;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    if (opts && opts->dead_letter && opts->dead_letter[0]
        && !smq_name_valid(opts->dead_letter, strlen(opts->dead_letter)))
        return smq_client_fail(c, SLABMQ_ERR_BAD_NAME, "invalid dead-letter queue name: 1-%d "
                               "bytes of " SMQ_NAME_RULE ", or \"\" for none", SMQ_NAME_MAX);
    smq_req_begin(c, SMQ_OP_DECLARE, 2);
    smq_pack_str(c, queue);
    pack_queue_options(c, opts);
    st = smq_call(c, SMQ_OP_DECLARE, 0, &r, &n);
    if (st)
        return st;
    if (n < 1 || smq_mpr_bool(&r, &v))
        return smq_bad_reply(c, "DECLARE");
    if (created)
        *created = v;
    return SLABMQ_OK;
}

/* DELETE and PURGE: [queue] -> [count] */
static slabmq_status
drop(slabmq_client *c, unsigned op, const char *queue, uint64_t *count)
{
    struct smq_mpr r;
    uint32_t n;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    smq_req_begin(c, op, 1);
    smq_pack_str(c, queue);
    st = smq_call(c, op, 0, &r, &n);
    return st ? st : one_uint(c, &r, n, count);
}

/* PAUSE and RESUME: [queue] -> [was_paused] */
static slabmq_status
pause_resume(slabmq_client *c, unsigned op, const char *queue, int *was)
{
    struct smq_mpr r;
    uint32_t n;
    int v;
    slabmq_status st = smq_check_queue(c, queue);

    if (st)
        return st;
    smq_req_begin(c, op, 1);
    smq_pack_str(c, queue);
    st = smq_call(c, op, 0, &r, &n);
    if (st)
        return st;
    if (n < 1 || smq_mpr_bool(&r, &v))
        return smq_bad_reply(c, op == SMQ_OP_PAUSE ? "PAUSE" : "RESUME");
    if (was)
        *was = v;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_pause(slabmq_client *c, const char *queue, int *was)
{
    return pause_resume(c, SMQ_OP_PAUSE, queue, was);
}

SLABMQ_API slabmq_status
slabmq_resume(slabmq_client *c, const char *queue, int *was)
{
    return pause_resume(c, SMQ_OP_RESUME, queue, was);
}

SLABMQ_API slabmq_status
slabmq_delete(slabmq_client *c, const char *queue, uint64_t *dropped)
{
    return drop(c, SMQ_OP_DELETE, queue, dropped);
}

SLABMQ_API slabmq_status
slabmq_purge(slabmq_client *c, const char *queue, uint64_t *purged)
{
    return drop(c, SMQ_OP_PURGE, queue, purged);
}

/* ---------------------------------------------------------------------------------------- */
/* LIST and STATS                                                                            */

SLABMQ_API slabmq_status
slabmq_list(slabmq_client *c, slabmq_queue_info **out, size_t *count)
{
    struct smq_mpr r;
    uint32_t n;
    uint32_t rows;
    slabmq_queue_info *list;
    char *names;
    slabmq_status st;

    if (!c || !out || !count)
        return SLABMQ_ERR_ARG;
    *out = NULL;
    *count = 0;
    smq_req_begin(c, SMQ_OP_LIST, 0);
    st = smq_call(c, SMQ_OP_LIST, 0, &r, &n);
    if (st)
        return st;
    if (n < 1 || smq_mpr_array(&r, &rows))
        return smq_bad_reply(c, "LIST");
    /* One allocation: the rows, then their NUL-terminated names. */
    list = malloc((size_t)rows * sizeof(*list) + (size_t)rows * (SMQ_NAME_MAX + 1) + 1);
    if (!list)
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
    names = (char *)(list + rows);
    for (uint32_t i = 0; i < rows; i++) {
        uint32_t k;
        const char *name;
        uint32_t len;
        if (smq_mpr_array(&r, &k) || k < 3 || smq_mpr_str(&r, &name, &len) || len > SMQ_NAME_MAX
            || smq_mpr_uint(&r, &list[i].ready) || smq_mpr_uint(&r, &list[i].inflight)) {
            free(list);
            return smq_bad_reply(c, "LIST row");
        }
        for (uint32_t j = 3; j < k; j++)
            smq_mpr_skip(&r, 4); /* newer brokers may add columns */
        memcpy(names, name, len);
        names[len] = '\0';
        list[i].name = names;
        names += len + 1;
    }
    *out = list;
    *count = rows;
    return SLABMQ_OK;
}

SLABMQ_API void
slabmq_queue_list_free(slabmq_queue_info *list)
{
    free(list);
}

struct slabmq_stats {
    size_t n;
    char **names;
    uint64_t *values; /* 0 for a string value */
    char **strs;      /* the string values; NULL for an integer */
};

SLABMQ_API void
slabmq_stats_free(slabmq_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->strs[i]);
    }
    free(s->names);
    free(s->values);
    free(s->strs);
    free(s);
}

/* Returns a new, empty statistics object with room for n entries; NULL when out of memory. */
static slabmq_stats *
new_stats(uint32_t n)
{
    slabmq_stats *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->names = calloc(n ? n : 1, sizeof(*s->names));
    s->values = calloc(n ? n : 1, sizeof(*s->values));
    s->strs = calloc(n ? n : 1, sizeof(*s->strs));
    if (!s->names || !s->values || !s->strs) {
        slabmq_stats_free(s);
        return NULL;
    }
    return s;
}

/* Read one name/value pair into the next entry of s. An unsigned integer or a str is kept;
 * a value of any other type is skipped (names are added within a protocol version, and a
 * client MUST ignore what it does not know). 0, or the failure. */
static slabmq_status
read_stat(slabmq_client *c, struct smq_mpr *r, slabmq_stats *s)
{
    const char *k;
    uint32_t klen;
    const char *v = NULL;
    uint32_t vlen = 0;
    enum smq_mp_type t;

    if (smq_mpr_str(r, &k, &klen))
        return smq_bad_reply(c, "STATS name");
    t = smq_mpr_peek(r);
    if (t == SMQ_MP_UINT ? smq_mpr_uint(r, &s->values[s->n])
        : t == SMQ_MP_STR ? smq_mpr_str(r, &v, &vlen)
                          : smq_mpr_skip(r, 16))
        return smq_bad_reply(c, "STATS value");
    if (t != SMQ_MP_UINT && t != SMQ_MP_STR)
        return SLABMQ_OK;
    s->names[s->n] = strndup(k, klen);
    if (v)
        s->strs[s->n] = strndup(v, vlen);
    if (!s->names[s->n] || (v && !s->strs[s->n])) {
        free(s->names[s->n]);
        s->names[s->n] = NULL;
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
    }
    s->n++;
    return SLABMQ_OK;
}

SLABMQ_API slabmq_status
slabmq_stats_get(slabmq_client *c, const char *queue, slabmq_stats **out)
{
    struct smq_mpr r;
    uint32_t n;
    uint32_t pairs;
    slabmq_stats *s;
    slabmq_status st = queue ? smq_check_queue(c, queue) : (c ? SLABMQ_OK : SLABMQ_ERR_ARG);

    if (st)
        return st;
    if (!out)
        return smq_client_fail(c, SLABMQ_ERR_ARG, "stats needs an out pointer");
    *out = NULL;
    smq_req_begin(c, SMQ_OP_STATS, 1);
    if (queue)
        smq_pack_str(c, queue);
    else
        msgpack_pack_nil(&c->pk);
    st = smq_call(c, SMQ_OP_STATS, 0, &r, &n);
    if (st)
        return st;
    if (n < 1 || smq_mpr_map(&r, &pairs))
        return smq_bad_reply(c, "STATS");
    s = new_stats(pairs);
    if (!s)
        return smq_client_fail(c, SLABMQ_ERR_CLIENT_NOMEM, "out of memory");
    for (uint32_t i = 0; i < pairs && st == SLABMQ_OK; i++)
        st = read_stat(c, &r, s);
    if (st) {
        slabmq_stats_free(s);
        return st;
    }
    *out = s;
    return SLABMQ_OK;
}

SLABMQ_API size_t
slabmq_stats_count(const slabmq_stats *s)
{
    return s ? s->n : 0;
}

SLABMQ_API const char *
slabmq_stats_name(const slabmq_stats *s, size_t i)
{
    return s && i < s->n ? s->names[i] : NULL;
}

SLABMQ_API uint64_t
slabmq_stats_value(const slabmq_stats *s, size_t i)
{
    return s && i < s->n ? s->values[i] : 0;
}

SLABMQ_API const char *
slabmq_stats_str(const slabmq_stats *s, size_t i)
{
    return s && i < s->n ? s->strs[i] : NULL;
}

/* Index of the entry called name, or -1. */
static long
stats_index(const slabmq_stats *s, const char *name)
{
    for (size_t i = 0; s && name && i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return (long)i;
    return -1;
}

SLABMQ_API int
slabmq_stats_find(const slabmq_stats *s, const char *name, uint64_t *v)
{
    long i = stats_index(s, name);

    if (i < 0 || s->strs[i])
        return 0;
    if (v)
        *v = s->values[i];
    return 1;
}

SLABMQ_API const char *
slabmq_stats_find_str(const slabmq_stats *s, const char *name)
{
    long i = stats_index(s, name);

    return i < 0 ? NULL : s->strs[i];
}
