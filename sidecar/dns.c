/* The resolver thread behind STRICT_DNS clusters.
 *
 * One thread owns every target. Lookups run through glibc's getaddrinfo_a (GAI_NOWAIT), so a
 * slow name never holds up the others: the thread starts each due lookup, and while any is in
 * flight it wakes every POLL_MS to collect finished ones with gai_error() and to abandon those
 * past their timeout. Polling rather than a SIGEV_THREAD notification keeps glibc's helper
 * threads from ever touching our state, so nothing dangles if we stop first. A lookup that
 * glibc could not cancel stays allocated (a "zombie") until glibc is done with it: the thread
 * reaps zombies as they finish, and at stop hands the rest to a detached reaper thread so that
 * rs_dns_stop never waits on the network. All waits are timed waits on one condition variable
 * over CLOCK_MONOTONIC, so rs_dns_add, rs_dns_resolve_now and rs_dns_stop take effect at once.
 *
 * Known limit: ThreadSanitizer cannot run this file, because glibc starts getaddrinfo_a's helper
 * threads with an internal pthread_create that TSan does not intercept (ASan/UBSan are fine). */
#include "sidecar/dns.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 10
#define DEFAULT_REFRESH_MS 5000
#define DEFAULT_TIMEOUT_MS 5000
#define IDLE_WAIT_MS 3600000

/* One getaddrinfo_a request; glibc owns it from submission until gai_error() stops returning
 * EAI_INPROGRESS. */
struct lookup {
    struct gaicb req;
    struct addrinfo hints;
    struct lookup *next; /* zombie list */
    char host[];
};

struct target {
    struct target *next;
    int id;
    char *host;
    uint16_t port;
    enum rs_dns_family family;
    uint32_t refresh_ms, failure_refresh_ms, timeout_ms;
    rs_dns_cb cb;
    void *ctx;
    int64_t due_ms;      /* next lookup, monotonic */
    int64_t deadline_ms; /* of the lookup in flight */
    struct lookup *inflight;
    struct sockaddr_storage *last; /* last delivered set, sorted; NULL before the first */
    size_t nlast;
    bool removed;
};

struct rs_dns {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the thread; also signals the end of a callback */
    pthread_t thread;
    bool stop;
    struct target *targets;
    int next_id;
    struct lookup *zombies;
    const struct target *in_cb; /* target whose callback runs now */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lookup_free(struct lookup *l)
{
    if (l->req.ar_result) freeaddrinfo(l->req.ar_result);
    free(l);
}

/* Cancels l, or parks it on the zombie list when glibc is already running it. */
static void lookup_abandon(struct rs_dns *dns, struct lookup *l)
{
    if (gai_cancel(&l->req) == EAI_NOTCANCELED) {
        l->next = dns->zombies;
        dns->zombies = l;
    } else {
        lookup_free(l);
    }
}

static void reap_zombies(struct rs_dns *dns)
{
    for (struct lookup **pp = &dns->zombies; *pp;) {
        struct lookup *l = *pp;
        if (gai_error(&l->req) == EAI_INPROGRESS) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        lookup_free(l);
    }
}

/* Submits a lookup for t; returns 0 or an EAI_* code. */
static int lookup_start(struct target *t, int64_t now)
{
    size_t hl = strlen(t->host) + 1;
    struct lookup *l = calloc(1, sizeof *l + hl);
    if (!l) return EAI_MEMORY;
    memcpy(l->host, t->host, hl);
    l->hints.ai_family = t->family == RS_DNS_V4_ONLY   ? AF_INET
                         : t->family == RS_DNS_V6_ONLY ? AF_INET6
                                                       : AF_UNSPEC;
    /* One entry per address rather than one per socket type. No AI_ADDRCONFIG: in a pod with
     * only loopback configured it would hide the loopback names we may be asked for. */
    l->hints.ai_socktype = SOCK_STREAM;
    l->hints.ai_protocol = IPPROTO_TCP;
    l->req.ar_name = l->host;
    l->req.ar_request = &l->hints;
    struct gaicb *list[1] = {&l->req};
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    if (rc != 0) {
        free(l);
        return rc;
    }
    t->inflight = l;
    t->deadline_ms = now + t->timeout_ms;
    return 0;
}

static int cmp_addr(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct sockaddr_storage));
}

static bool wanted(int family, enum rs_dns_family policy, bool have4, bool have6)
{
    switch (policy) {
    case RS_DNS_V4_ONLY:
        return family == AF_INET;
    case RS_DNS_V6_ONLY:
        return family == AF_INET6;
    case RS_DNS_AUTO:
        return family == (have6 ? AF_INET6 : AF_INET);
    case RS_DNS_V4_PREFERRED:
        return family == (have4 ? AF_INET : AF_INET6);
    case RS_DNS_ALL:
        return true;
    }
    return false;
}

/* Turns a getaddrinfo result into the addresses the family policy selects, port set,
 * duplicates removed, in the resolver's order. Returns the count (0 = none), or -1 on ENOMEM. */
static ssize_t select_addrs(const struct target *t, const struct addrinfo *res,
                            struct sockaddr_storage **out)
{
    bool have4 = false, have6 = false;
    size_t cap = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next, cap++) {
        have4 |= ai->ai_family == AF_INET;
        have6 |= ai->ai_family == AF_INET6;
    }
    struct sockaddr_storage *v = calloc(cap ? cap : 1, sizeof *v);
    if (!v) return -1;
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!wanted(ai->ai_family, t->family, have4, have6)) continue;
        if (ai->ai_addrlen > sizeof *v) continue;
        struct sockaddr_storage a;
        memset(&a, 0, sizeof a);
        memcpy(&a, ai->ai_addr, ai->ai_addrlen);
        if (a.ss_family == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = htons(t->port);
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = htons(t->port);
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++) dup = cmp_addr(&v[i], &a) == 0;
        if (!dup) v[n++] = a;
    }
    *out = v;
    return (ssize_t)n;
}

/* Calls t's callback with the lock released; rs_dns_remove waits for in_cb to clear. */
static void deliver(struct rs_dns *dns, struct target *t, const struct sockaddr_storage *addrs,
                    size_t n, int error)
{
    if (t->removed) return;
    dns->in_cb = t;
    pthread_mutex_unlock(&dns->mu);
    t->cb(t->ctx, addrs, n, error);
    pthread_mutex_lock(&dns->mu);
    dns->in_cb = NULL;
    pthread_cond_broadcast(&dns->cv);
}

/* Handles the end of t's lookup (error != 0 for failure or timeout) and schedules the next. */
static void on_lookup_done(struct rs_dns *dns, struct target *t, int error, int64_t now)
{
    struct sockaddr_storage *addrs = NULL;
    ssize_t n = 0;
    if (error == 0) {
        n = select_addrs(t, t->inflight->req.ar_result, &addrs);
        error = n < 0 ? EAI_MEMORY : n == 0 ? EAI_NODATA : 0;
    }
    if (t->inflight) {
        lookup_free(t->inflight);
        t->inflight = NULL;
    }
    if (error) {
        t->due_ms = now + (t->failure_refresh_ms ? t->failure_refresh_ms : t->refresh_ms);
        deliver(dns, t, NULL, 0, error);
        free(addrs);
        return;
    }
    t->due_ms = now + t->refresh_ms;
    /* Compare as sets: a resolver that rotates its answers is not a change of hosts. */
    struct sockaddr_storage *sorted = malloc((size_t)n * sizeof *sorted);
    if (sorted) {
        memcpy(sorted, addrs, (size_t)n * sizeof *sorted);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_addr);
        if (t->last && t->nlast == (size_t)n && memcmp(t->last, sorted, n * sizeof *sorted) == 0) {
            free(sorted);
            free(addrs);
            return;
        }
        free(t->last);
        t->last = sorted;
        t->nlast = (size_t)n;
    }
    deliver(dns, t, addrs, (size_t)n, 0);
    free(addrs);
}

/* Advances t: starts a due lookup, collects a finished one, abandons one past its deadline.
 * Returns when t next needs attention. */
static int64_t service_target(struct rs_dns *dns, struct target *t, int64_t now)
{
    if (!t->inflight && t->due_ms <= now) {
        int rc = lookup_start(t, now);
        if (rc) on_lookup_done(dns, t, rc, now);
    }
    if (t->inflight) {
        int rc = gai_error(&t->inflight->req);
        if (rc == EAI_INPROGRESS && now < t->deadline_ms) return now + POLL_MS;
        if (rc == EAI_INPROGRESS) { /* timed out: glibc keeps going, we stop waiting */
            lookup_abandon(dns, t->inflight);
            t->inflight = NULL;
            rc = EAI_AGAIN;
        }
        on_lookup_done(dns, t, rc, now_ms());
    }
    return t->due_ms;
}

static void target_free(struct rs_dns *dns, struct target *t)
{
    if (t->inflight) lookup_abandon(dns, t->inflight);
    free(t->last);
    free(t->host);
    free(t);
}

/* Frees removed targets; only this thread frees, so list walks across callbacks stay valid. */
static void sweep_removed(struct rs_dns *dns)
{
    for (struct target **pp = &dns->targets; *pp;) {
        struct target *t = *pp;
        if (!t->removed) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        target_free(dns, t);
    }
}

static void *reaper_main(void *arg)
{
    struct lookup *zombies = arg;
    while (zombies) {
        struct timespec ts = {.tv_sec = 1};
        const struct gaicb *one[1] = {&zombies->req};
        gai_suspend(one, 1, &ts);
        if (gai_error(&zombies->req) == EAI_INPROGRESS) continue;
        struct lookup *next = zombies->next;
        lookup_free(zombies);
        zombies = next;
    }
    return NULL;
}

/* Hands lookups glibc still runs to a detached thread that frees them once glibc is done. */
static void hand_off_zombies(struct rs_dns *dns)
{
    reap_zombies(dns);
    if (!dns->zombies) return;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, reaper_main, dns->zombies) != 0) {
        /* Cannot free memory glibc may still write to: leaking a few hundred bytes at
         * shutdown is the safe choice. */
    }
    pthread_attr_destroy(&attr);
    dns->zombies = NULL;
}

static void *resolver_main(void *arg)
{
    struct rs_dns *dns = arg;
    pthread_mutex_lock(&dns->mu);
    while (!dns->stop) {
        int64_t now = now_ms(), wake = now + IDLE_WAIT_MS;
        for (struct target *t = dns->targets; t && !dns->stop; t = t->next) {
            if (t->removed) continue;
            int64_t next = service_target(dns, t, now);
            if (next < wake) wake = next;
        }
        sweep_removed(dns);
        reap_zombies(dns);
        if (dns->zombies && now + POLL_MS * 10 < wake) wake = now + POLL_MS * 10;
        if (dns->stop || wake <= now_ms()) continue;
        struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
        pthread_cond_timedwait(&dns->cv, &dns->mu, &ts);
    }
    for (struct target *t = dns->targets; t; t = t->next) t->removed = true;
    sweep_removed(dns);
    hand_off_zombies(dns);
    pthread_mutex_unlock(&dns->mu);
    return NULL;
}

struct rs_dns *rs_dns_start(void)
{
    struct rs_dns *dns = calloc(1, sizeof *dns);
    pthread_condattr_t ca;
    if (!dns) return NULL;
    pthread_mutex_init(&dns->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dns->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&dns->thread, NULL, resolver_main, dns);
    if (rc != 0) {
        pthread_cond_destroy(&dns->cv);
        pthread_mutex_destroy(&dns->mu);
        free(dns);
        errno = rc;
        return NULL;
    }
    return dns;
}

int rs_dns_add(struct rs_dns *dns, const struct rs_dns_target *tc, rs_dns_cb cb, void *ctx)
{
    if (!tc || !tc->hostname || !*tc->hostname || !cb || tc->family > RS_DNS_ALL) return -EINVAL;
    struct target *t = calloc(1, sizeof *t);
    if (!t || !(t->host = strdup(tc->hostname))) {
        free(t);
        return -ENOMEM;
    }
    t->port = tc->port;
    t->family = tc->family;
    t->refresh_ms = tc->refresh_ms ? tc->refresh_ms : DEFAULT_REFRESH_MS;
    t->failure_refresh_ms = tc->failure_refresh_ms;
    t->timeout_ms = tc->timeout_ms ? tc->timeout_ms : DEFAULT_TIMEOUT_MS;
    t->cb = cb;
    t->ctx = ctx;
    t->due_ms = 0; /* resolve at once */
    pthread_mutex_lock(&dns->mu);
    t->id = dns->next_id++;
    t->next = dns->targets;
    dns->targets = t;
    pthread_cond_broadcast(&dns->cv);
    pthread_mutex_unlock(&dns->mu);
    return t->id;
}

static struct target *find_target(struct rs_dns *dns, int id)
{
    for (struct target *t = dns->targets; t; t = t->next)
        if (t->id == id && !t->removed) return t;
    return NULL;
}

int rs_dns_remove(struct rs_dns *dns, int id)
{
    pthread_mutex_lock(&dns->mu);
    struct target *t = find_target(dns, id);
    if (t) {
        t->removed = true;
        bool on_resolver = pthread_equal(pthread_self(), dns->thread);
        while (dns->in_cb == t && !on_resolver) pthread_cond_wait(&dns->cv, &dns->mu);
        pthread_cond_broadcast(&dns->cv);
    }
    pthread_mutex_unlock(&dns->mu);
    return t ? 0 : -ENOENT;
}

int rs_dns_resolve_now(struct rs_dns *dns, int id)
{
    int found = 0;
    pthread_mutex_lock(&dns->mu);
    for (struct target *t = dns->targets; t; t = t->next) {
        if (t->removed || (id >= 0 && t->id != id)) continue;
        if (!t->inflight) t->due_ms = 0;
        found = 1;
    }
    pthread_cond_broadcast(&dns->cv);
    pthread_mutex_unlock(&dns->mu);
    return found || id < 0 ? 0 : -ENOENT;
}

void rs_dns_stop(struct rs_dns *dns)
{
    if (!dns) return;
    pthread_mutex_lock(&dns->mu);
    dns->stop = true;
    pthread_cond_broadcast(&dns->cv);
    pthread_mutex_unlock(&dns->mu);
    pthread_join(dns->thread, NULL);
    pthread_cond_destroy(&dns->cv);
    pthread_mutex_destroy(&dns->mu);
    free(dns);
}
