/* Tests for sidecar/dns.c: real lookups of loopback names through the resolver thread, family
 * policies, failures, change detection, and prompt shutdown. Waits poll with a deadline. */
#include "sidecar/dns.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* What the callback saw, guarded by mu. */
struct seen {
    pthread_mutex_t mu;
    int results, failures, last_error;
    size_t n;
    struct sockaddr_storage addrs[16];
};

#define SEEN_INIT                                                                                  \
    {                                                                                              \
        .mu = PTHREAD_MUTEX_INITIALIZER                                                            \
    }

static void on_result(void *ctx, const struct sockaddr_storage *addrs, size_t n, int error)
{
    struct seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (error) {
        s->failures++;
        s->last_error = error;
    } else {
        s->results++;
        s->n = n < 16 ? n : 16;
        memcpy(s->addrs, addrs, s->n * sizeof *addrs);
    }
    pthread_mutex_unlock(&s->mu);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls until the callback has run at least `calls` times in total, or timeout_ms passes. */
static bool wait_calls(struct seen *s, int calls, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int got = s->results + s->failures;
        pthread_mutex_unlock(&s->mu);
        if (got >= calls) return true;
        if (mono_ms() > deadline) return false;
        struct timespec ts = {.tv_nsec = 2000000};
        nanosleep(&ts, NULL);
    }
}

static bool is_v4(const struct sockaddr_storage *a, const char *ip, uint16_t port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    struct in_addr want;
    inet_pton(AF_INET, ip, &want);
    return a->ss_family == AF_INET && in->sin_addr.s_addr == want.s_addr &&
           ntohs(in->sin_port) == port;
}

static void test_numeric(void)
{
    (void)rs_test_failures; /* the harness declares it; keep -Werror quiet */
    struct rs_dns *dns = rs_dns_start();
    CHECK(dns != NULL);
    struct seen s = SEEN_INIT;
    struct rs_dns_target t = {.hostname = "127.0.0.1", .port = 8080, .refresh_ms = 60000};
    CHECK(rs_dns_add(dns, &t, on_result, &s) >= 0);
    CHECK(wait_calls(&s, 1, 5000));
    CHECK_EQ_INT(s.results, 1);
    CHECK_EQ_INT(s.n, 1);
    CHECK(is_v4(&s.addrs[0], "127.0.0.1", 8080));
    rs_dns_stop(dns);
}

static void test_localhost_v4(void)
{
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT, s4 = SEEN_INIT;
    struct rs_dns_target t = {.hostname = "localhost", .port = 9000, .refresh_ms = 60000};
    CHECK(rs_dns_add(dns, &t, on_result, &s) >= 0);
    t.family = RS_DNS_V4_ONLY;
    CHECK(rs_dns_add(dns, &t, on_result, &s4) >= 0);
    CHECK(wait_calls(&s, 1, 5000) && wait_calls(&s4, 1, 5000));
    /* AUTO: v6 when the name has any v6 address, otherwise v4; never both. */
    CHECK_EQ_INT(s.results, 1);
    for (size_t i = 1; i < s.n; i++) CHECK(s.addrs[i].ss_family == s.addrs[0].ss_family);
    CHECK_EQ_INT(s4.results, 1);
    CHECK(s4.n >= 1);
    bool loopback = false;
    for (size_t i = 0; i < s4.n; i++) {
        CHECK(s4.addrs[i].ss_family == AF_INET);
        loopback |= is_v4(&s4.addrs[i], "127.0.0.1", 9000);
    }
    CHECK(loopback);
    rs_dns_stop(dns);
}

static void test_localhost_v6_only(void)
{
    /* Whether localhost has an IPv6 address depends on /etc/hosts; either way no IPv4 address
     * may come back, and a miss is a reported failure. */
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT;
    struct rs_dns_target t = {
        .hostname = "localhost", .port = 1, .family = RS_DNS_V6_ONLY, .refresh_ms = 60000};
    CHECK(rs_dns_add(dns, &t, on_result, &s) >= 0);
    CHECK(wait_calls(&s, 1, 6000));
    CHECK_EQ_INT(s.results + s.failures, 1);
    for (size_t i = 0; i < s.n; i++) {
        CHECK(s.addrs[i].ss_family == AF_INET6);
        CHECK_EQ_INT(ntohs(((struct sockaddr_in6 *)&s.addrs[i])->sin6_port), 1);
    }
    struct seen s6 = SEEN_INIT;
    t.hostname = "::1";
    CHECK(rs_dns_add(dns, &t, on_result, &s6) >= 0);
    CHECK(wait_calls(&s6, 1, 5000));
    CHECK_EQ_INT(s6.results, 1);
    CHECK(s6.n == 1 && s6.addrs[0].ss_family == AF_INET6);
    rs_dns_stop(dns);
}

static void test_unresolvable_and_refresh(void)
{
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT;
    struct rs_dns_target t = {.hostname = "nonexistent.invalid",
                              .port = 80,
                              .refresh_ms = 60000,
                              .failure_refresh_ms = 20,
                              .timeout_ms = 2000};
    CHECK(rs_dns_add(dns, &t, on_result, &s) >= 0);
    /* Failures are reported each time, and retried at the failure rate, not the refresh rate. */
    CHECK(wait_calls(&s, 2, 10000));
    CHECK_EQ_INT(s.results, 0);
    CHECK(s.failures >= 2 && s.last_error != 0);
    rs_dns_stop(dns);
}

static void test_unchanged_result_not_redelivered(void)
{
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT, other = SEEN_INIT;
    struct rs_dns_target t = {.hostname = "127.0.0.1", .port = 1, .refresh_ms = 60000};
    int id = rs_dns_add(dns, &t, on_result, &s);
    CHECK(wait_calls(&s, 1, 5000));
    /* Force more lookups; a second target serves as the "resolver has run" barrier. */
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(rs_dns_resolve_now(dns, id), 0);
    t.hostname = "127.0.0.2";
    CHECK(rs_dns_add(dns, &t, on_result, &other) >= 0);
    CHECK(wait_calls(&other, 1, 5000));
    CHECK_EQ_INT(rs_dns_resolve_now(dns, id), 0);
    CHECK_EQ_INT(rs_dns_resolve_now(dns, -1), 0);
    CHECK_EQ_INT(rs_dns_resolve_now(dns, 9999), -ENOENT);
    CHECK_EQ_INT(rs_dns_remove(dns, id), 0);
    CHECK_EQ_INT(rs_dns_remove(dns, id), -ENOENT);
    CHECK_EQ_INT(s.results, 1);
    CHECK_EQ_INT(s.failures, 0);
    rs_dns_stop(dns);
}

static void test_invalid_args(void)
{
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT;
    struct rs_dns_target t = {.hostname = ""};
    CHECK_EQ_INT(rs_dns_add(dns, &t, on_result, &s), -EINVAL);
    t.hostname = "localhost";
    CHECK_EQ_INT(rs_dns_add(dns, &t, NULL, &s), -EINVAL);
    CHECK_EQ_INT(rs_dns_add(dns, NULL, on_result, &s), -EINVAL);
    rs_dns_stop(dns);
}

static void test_stop_is_prompt(void)
{
    /* One target waiting on a long refresh, one whose lookup may be in flight. */
    struct rs_dns *dns = rs_dns_start();
    struct seen s = SEEN_INIT, f = SEEN_INIT;
    struct rs_dns_target t = {.hostname = "127.0.0.1", .refresh_ms = 3600000};
    CHECK(rs_dns_add(dns, &t, on_result, &s) >= 0);
    CHECK(wait_calls(&s, 1, 5000));
    t.hostname = "nonexistent.invalid";
    t.timeout_ms = 60000;
    CHECK(rs_dns_add(dns, &t, on_result, &f) >= 0);
    int64_t t0 = mono_ms();
    rs_dns_stop(dns);
    CHECK(mono_ms() - t0 < 500);
}

RUN_TESTS(TEST_CASE(test_numeric), TEST_CASE(test_localhost_v4), TEST_CASE(test_localhost_v6_only),
          TEST_CASE(test_unresolvable_and_refresh),
          TEST_CASE(test_unchanged_result_not_redelivered), TEST_CASE(test_invalid_args),
          TEST_CASE(test_stop_is_prompt))
