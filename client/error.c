/* SPDX-License-Identifier: MIT */
/* Status strings, generated from SLABMQ_STATUS_MAP through the protocol module. */
#include "ops.h"
#include "slabmq.h"

const char *
slabmq_strerror(slabmq_status s)
{
    return smq_status_message((unsigned)s);
}

const char *
slabmq_status_name(slabmq_status s)
{
    return smq_status_name((unsigned)s);
}
