/* Asynchronous DNS for STRICT_DNS / LOGICAL_DNS clusters: one resolver thread per process (never
 * a data-plane worker) that resolves each registered target at start and then periodically, and
 * tells the owner through a callback when the address set changes or a lookup fails. */
#ifndef RS_SIDECAR_DNS_H
#define RS_SIDECAR_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Envoy's Cluster.dns_lookup_family. */
enum rs_dns_family {
    RS_DNS_AUTO,         /* IPv6 addresses if there are any, else IPv4 */
    RS_DNS_V4_ONLY,      /* IPv4 only */
    RS_DNS_V6_ONLY,      /* IPv6 only */
    RS_DNS_V4_PREFERRED, /* IPv4 addresses if there are any, else IPv6 */
    RS_DNS_ALL,          /* both, in the resolver's order */
};

struct rs_dns_target {
    const char *hostname; /* copied by rs_dns_add */
    uint16_t port;        /* set on every returned address */
    enum rs_dns_family family;
    uint32_t refresh_ms;         /* Envoy's dns_refresh_rate; 0 = 5000 */
    uint32_t failure_refresh_ms; /* dns_failure_refresh_rate base_interval; 0 = refresh_ms */
    uint32_t timeout_ms;         /* per-lookup limit; 0 = 5000 */
    /* Envoy's respect_dns_ttl. Ignored: getaddrinfo does not expose record TTLs, so the refresh
     * interval always applies. */
    bool respect_dns_ttl;
};

/* Called on the resolver thread, with no lock held (it may call any rs_dns_ function):
 * - error == 0: the first result, or a result whose address set differs from the previous one;
 *   addrs holds n >= 1 addresses, valid only during the call.
 * - error != 0: a failed lookup (a getaddrinfo EAI_* code; EAI_AGAIN also for a lookup that
 *   passed timeout_ms), with addrs == NULL and n == 0. The previous result stays in force; the
 *   owner counts update_failure. Reported on every failed attempt. */
typedef void (*rs_dns_cb)(void *ctx, const struct sockaddr_storage *addrs, size_t n, int error);

struct rs_dns;

/* Starts the resolver thread. Returns NULL on failure (errno set). */
struct rs_dns *rs_dns_start(void);

/* Registers a target and schedules its first lookup now. Returns its id (>= 0) or -EINVAL /
 * -ENOMEM. */
int rs_dns_add(struct rs_dns *dns, const struct rs_dns_target *t, rs_dns_cb cb, void *ctx);

/* Unregisters a target. On return its callback is not running (unless called from that very
 * callback) and will not be called again. Returns 0 or -ENOENT. */
int rs_dns_remove(struct rs_dns *dns, int id);

/* Schedules an immediate lookup of one target (id >= 0) or of all (id < 0); a target with a
 * lookup in flight keeps that one. Returns 0 or -ENOENT. */
int rs_dns_resolve_now(struct rs_dns *dns, int id);

/* Stops and joins the thread promptly, even in the middle of a wait or a lookup, and frees
 * everything. No callback runs after it returns. */
void rs_dns_stop(struct rs_dns *dns);

#endif
