// SPDX-License-Identifier: MIT
// slabmq.h from C++: the public header compiles as C++11 (-Wall -Wextra -pedantic, warnings
// are errors), links against the C library, and its init functions fill every field with
// the documented defaults. Designated initializers would need C++20; the init functions are
// what C++ programs use, so this checks they work there. One run, no broker.
#include <slabmq.h>

#include <cstdio>
#include <cstring>

static int failures = 0;

static void
check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "FAIL %s\n", what);
        failures++;
    }
}

int
main()
{
    slabmq_options o;
    std::memset(&o, 0xa5, sizeof(o));
    slabmq_options_init(&o);
    check(o.host && std::strcmp(o.host, "127.0.0.1") == 0, "options host");
    check(o.port == SLABMQ_DEFAULT_PORT, "options port");
    check(o.timeout_ms == 5000, "options timeout");
    check(!o.client_name && !o.user && !o.password && !o.tls, "options pointers NULL");

    slabmq_tls_options t;
    std::memset(&t, 0xa5, sizeof(t));
    slabmq_tls_options_init(&t);
    check(!t.ca_file && !t.cert_file && !t.key_file && !t.server_name && t.insecure == 0,
          "tls options zero");

    slabmq_queue_options q;
    std::memset(&q, 0xa5, sizeof(q));
    slabmq_queue_options_init(&q);
    check(q.visibility_ms == 0 && q.max_messages == 0 && q.max_bytes == 0
              && q.overflow == SLABMQ_OVERFLOW_UNCHANGED && q.retry_backoff_ms == 0
              && q.retry_backoff_max_ms == 0 && q.max_deliveries == 0 && !q.dead_letter
              && q.ttl_ms == 0 && q.dedup_window == 0 && q.durable == 0
              && q.confirm == SLABMQ_CONFIRM_DEFAULT,
          "queue options change nothing");

    slabmq_publish_options p;
    std::memset(&p, 0xa5, sizeof(p));
    slabmq_publish_options_init(&p);
    check(p.delay_ms == 0 && p.at_ms == 0 && p.ttl_ms == 0 && p.priority == 0 && !p.id
              && p.confirm == SLABMQ_CONFIRM_DEFAULT,
          "publish options left out");

    // the enum and the status names are usable from C++ too
    check(std::strcmp(slabmq_status_name(SLABMQ_ERR_NOMEM), "ERR_NOMEM") == 0, "status name");

    // nothing listens on port 1: the new name reports why, through the buffer
    char err[128] = "";
    slabmq_client *c = nullptr;
    o.port = 1;
    o.timeout_ms = 2000;
    check(slabmq_client_connect_errbuf(&o, &c, err, sizeof(err)) == SLABMQ_ERR_CONNECT,
          "connect to a closed port fails");
    check(c == nullptr && err[0] != '\0', "the reason is in errbuf");

    if (failures == 0)
        std::fprintf(stderr, "OK   slabmq.h from C++\n");
    return failures ? 1 : 0;
}
