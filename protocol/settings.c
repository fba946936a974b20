/* SPDX-License-Identifier: MIT */
/* The queue-settings table (settings.h) as data, and lookups over it. Used when a DECLARE is
 * parsed or encoded and by the CLI, never per message. */
#include <stdio.h>
#include <string.h>

#include "settings.h"

/* The names of the ENUM settings, in the order of their wire meaning (the broker's enum
 * queue_overflow and enum store_level, the client's enums minus their "unchanged" 0). */
static const char *const overflow_values[] = {"reject", "drop-oldest", "dead-letter", NULL};
static const char *const confirm_values[] = {"memory", "written", "synced", NULL};
#define VALUES_VISIBILITY NULL
#define VALUES_BACKOFF NULL
#define VALUES_BACKOFF_MAX NULL
#define VALUES_MAX_MESSAGES NULL
#define VALUES_MAX_BYTES NULL
#define VALUES_OVERFLOW overflow_values
#define VALUES_MAX_DELIVERIES NULL
#define VALUES_TTL NULL
#define VALUES_DEDUP_WINDOW NULL
#define VALUES_DURABLE NULL
#define VALUES_CONFIRM confirm_values
#define VALUES_DEAD_LETTER NULL

const struct smq_setting_info smq_settings[SMQ_SETTING_COUNT] = {
#define SMQ_SETTING_ROW_(id, key, kind, min, max, def, cli, stats, doc)                        \
    [SMQ_SET_##id] = {key, SMQ_SETTING_##kind, min, max, def, cli, stats, doc, VALUES_##id},
    SMQ_SETTINGS_MAP(SMQ_SETTING_ROW_)
#undef SMQ_SETTING_ROW_
};

int
smq_setting_find(const char *k, uint32_t klen)
{
    for (int i = 0; i < SMQ_SETTING_COUNT; i++)
        if (strlen(smq_settings[i].key) == klen && memcmp(smq_settings[i].key, k, klen) == 0)
            return i;
    return -1;
}

int
smq_setting_value(enum smq_setting s, const char *v, uint32_t vlen)
{
    const char *const *names = smq_settings[s].values;

    for (int i = 0; names && names[i]; i++)
        if (strlen(names[i]) == vlen && memcmp(names[i], v, vlen) == 0)
            return i;
    return -1;
}

const char *
smq_setting_choices(enum smq_setting s, char *buf, size_t size)
{
    const char *const *names = smq_settings[s].values;
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; names && names[i] && used < size; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
        int n = snprintf(buf + used, size - used, "%s\"%s\"", sep, names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}
