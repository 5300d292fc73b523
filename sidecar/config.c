/* Compiles an Envoy v3 bootstrap into the immutable snapshot the workers read: clusters with
 * their host sets and stats, listeners with filter chains, HTTP connection managers with compiled
 * route tables, TCP proxies, access logs. Anything that would change behaviour and is not
 * implemented is an error naming its field, never silently ignored. */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/un.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "envoy/extensions/filters/http/buffer/v3/buffer.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/connection_limit/v3/connection_limit.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "sidecar/access_log.h"
#include "sidecar/config_impl.h"
#include "sidecar/dns.h"
#include "sidecar/log.h"
#include "sidecar/router.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "xds/any.h"

/* Envoy still accepts its deprecated fields (format, text_format, cluster-level protocol
 * options), so configs in the wild use them: reading them is deliberate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;
typedef Envoy__Config__Accesslog__V3__AccessLog AccessLog;
typedef Envoy__Config__Core__V3__SubstitutionFormatString FormatString;

uint32_t rs_duration_ms(const void *duration, uint32_t dflt)
{
    const Google__Protobuf__Duration *d = duration;
    if (!d) return dflt;
    uint64_t ms = (uint64_t)(d->seconds < 0 ? 0 : d->seconds) * 1000 +
                  (uint64_t)(d->nanos < 0 ? 0 : d->nanos) / 1000000;
    if (ms == 0 && d->nanos > 0) ms = 1;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

void rs_addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, cap, "%s", ((const struct sockaddr_un *)sa)->sun_path);
    } else {
        snprintf(out, cap, "unknown");
    }
}

int rs_cfg_ip_port(const char *ip, uint32_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (void *)ss;
    struct sockaddr_in6 *in6 = (void *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof *in;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

static int socket_address(struct cctx *cx, const Envoy__Config__Core__V3__Address *a,
                          const char *field, bool need_ip,
                          const Envoy__Config__Core__V3__SocketAddress **out)
{
    if (!a || a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return fail(cx, field,
                    "a socket_address is required (pipe and internal addresses are "
                    "not supported)");
    const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
    if (sa->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP)
        return fail(cx, field, "only TCP socket addresses are supported");
    if (sa->port_specifier_case !=
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE ||
        sa->port_value > 65535)
        return fail(cx, field, "port_value (0-65535) is required");
    if (!sa->address || !sa->address[0]) return fail(cx, field, "address is required");
    struct sockaddr_storage ss;
    socklen_t len;
    if (need_ip && rs_cfg_ip_port(sa->address, sa->port_value, &ss, &len) != 0)
        return fail(cx, field, "\"%s\" is not an IP address", sa->address);
    *out = sa;
    return 0;
}

/* ---- host sets ---------------------------------------------------------------------------- */

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A smooth weighted round-robin order (each step: every endpoint gains its weight, the largest
 * current value is picked and loses the total), so weights 5:1:1 interleave as a,a,b,a,c,a,a
 * rather than bunching. Workers walk the order with their own cursor. */
struct rs_hostset *rs_hostset_new(const struct rs_endpoint *eps, uint32_t n)
{
    struct rs_hostset *h = xcalloc(1, sizeof *h);
    h->refs = 1;
    h->n = n;
    h->eps = xcalloc(n, sizeof *h->eps);
    if (n) memcpy(h->eps, eps, n * sizeof *eps);
    if (n == 0) return h;
    uint32_t g = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (h->eps[i].weight == 0) h->eps[i].weight = 1;
        g = gcd(g, h->eps[i].weight);
    }
    uint32_t *w = xcalloc(n, sizeof *w);
    for (uint32_t i = 0; i < n; i++) total += (w[i] = h->eps[i].weight / g);
    /* bound the order's length; scaling keeps proportions to within one part in 4096 */
    const uint64_t cap = 4096 > n ? 4096 : n;
    if (total > cap) {
        uint64_t t2 = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t s = (uint64_t)w[i] * cap / total;
            t2 += (w[i] = s ? (uint32_t)s : 1);
        }
        total = t2;
    }
    h->nshards = (uint32_t)rs_stats_nshards();
    h->hstats = xcalloc((size_t)h->nshards * n * RS_HS_COUNT, sizeof *h->hstats);
    h->order_len = (uint32_t)total;
    h->order = xcalloc(total, sizeof *h->order);
    int64_t *cur = xcalloc(n, sizeof *cur);
    for (uint32_t k = 0; k < total; k++) {
        uint32_t best = 0;
        for (uint32_t i = 0; i < n; i++) {
            cur[i] += w[i];
            if (cur[i] > cur[best]) best = i;
        }
        cur[best] -= (int64_t)total;
        h->order[k] = best;
    }
    free(cur);
    free(w);
    return h;
}

void rs_hostset_unref(struct rs_hostset *h)
{
    if (!h || __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    free(h->eps);
    free(h->order);
    free(h->hstats);
    free(h);
}

uint64_t rs_host_stat_value(const struct rs_hostset *h, uint32_t idx, enum rs_host_stat s)
{
    uint64_t sum = 0;
    for (uint32_t sh = 0; h->hstats && sh < h->nshards; sh++)
        sum += __atomic_load_n(&h->hstats[((size_t)sh * h->n + idx) * RS_HS_COUNT + s],
                               __ATOMIC_RELAXED);
    return sum;
}

void rs_host_ref_take(struct rs_host_ref *dst, struct rs_hostset *hs, uint32_t idx)
{
    __atomic_add_fetch(&hs->refs, 1, __ATOMIC_RELAXED);
    dst->hs = hs;
    dst->idx = idx;
}

void rs_host_ref_release(struct rs_host_ref *r)
{
    rs_hostset_unref(r->hs);
    r->hs = NULL;
}

/* A new host set keeps the counters of the hosts it shares with the old one (a DNS refresh that
 * adds one address must not zero the others). */
static void carry_host_stats(struct rs_hostset *to, const struct rs_hostset *from)
{
    if (!from || !to || !to->hstats || !from->hstats || to->nshards != from->nshards) return;
    for (uint32_t i = 0; i < to->n; i++)
        for (uint32_t j = 0; j < from->n; j++) {
            if (to->eps[i].addrlen != from->eps[j].addrlen ||
                memcmp(&to->eps[i].addr, &from->eps[j].addr, to->eps[i].addrlen) != 0)
                continue;
            for (uint32_t sh = 0; sh < to->nshards; sh++)
                memcpy(&to->hstats[((size_t)sh * to->n + i) * RS_HS_COUNT],
                       &from->hstats[((size_t)sh * from->n + j) * RS_HS_COUNT],
                       RS_HS_COUNT * sizeof *to->hstats);
            break;
        }
}

/* Readers take a reference under a tiny spin so that a concurrent swap cannot free the set
 * between the pointer load and the increment. Updates are rare (DNS refresh), reads are per
 * worker per host-set change, not per request. */
static uint32_t hosts_lock;

struct rs_hostset *rs_cluster_hosts(struct rs_cluster *c)
{
    while (__atomic_exchange_n(&hosts_lock, 1, __ATOMIC_ACQUIRE)) {
    }
    struct rs_hostset *h = __atomic_load_n(&c->hosts, __ATOMIC_ACQUIRE);
    if (h) __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&hosts_lock, 0, __ATOMIC_RELEASE);
    return h;
}

void rs_cluster_set_hosts(struct rs_cluster *c, struct rs_hostset *h)
{
    while (__atomic_exchange_n(&hosts_lock, 1, __ATOMIC_ACQUIRE)) {
    }
    carry_host_stats(h, __atomic_load_n(&c->hosts, __ATOMIC_ACQUIRE));
    struct rs_hostset *old = __atomic_exchange_n(&c->hosts, h, __ATOMIC_ACQ_REL);
    __atomic_store_n(&hosts_lock, 0, __ATOMIC_RELEASE);
    rs_stat_set(c->st.membership_total, h ? h->n : 0);
    rs_stat_set(c->st.membership_healthy, h ? h->n : 0);
    rs_hostset_unref(old);
}

/* ---- clusters ------------------------------------------------------------------------------ */

static rs_stat_id stat(const char *prefix, const char *name, const char *leaf,
                       enum rs_stat_kind kind)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s.%s", prefix, name, leaf);
    return rs_stats_register(full, kind);
}

static void cluster_stats(struct rs_cluster *c)
{
    struct rs_cluster_stats *s = &c->st;
    /* Envoy's alt_stat_name replaces the name in the cluster's stats */
    const char *n = c->stat_name ? c->stat_name : c->name;
#define C(f) s->f = stat("cluster", n, #f, RS_STAT_COUNTER)
#define G(f) s->f = stat("cluster", n, #f, RS_STAT_GAUGE)
#define H(f) s->f = stat("cluster", n, #f, RS_STAT_HISTOGRAM)
    C(upstream_cx_total), G(upstream_cx_active), C(upstream_cx_connect_fail);
    C(upstream_cx_connect_timeout), C(upstream_cx_destroy), C(upstream_cx_destroy_local);
    C(upstream_cx_destroy_remote), C(upstream_cx_rx_bytes_total), C(upstream_cx_tx_bytes_total);
    C(upstream_cx_none_healthy), C(upstream_cx_idle_timeout), C(upstream_cx_overflow);
    C(upstream_cx_protocol_error), C(upstream_rq_total), G(upstream_rq_active);
    C(upstream_rq_completed), C(upstream_rq_1xx), C(upstream_rq_2xx), C(upstream_rq_3xx);
    C(upstream_rq_4xx), C(upstream_rq_5xx), C(upstream_rq_timeout), C(upstream_rq_pending_total);
    G(upstream_rq_pending_active), C(upstream_rq_pending_overflow), C(upstream_rq_rx_reset);
    C(upstream_rq_tx_reset), G(membership_total), G(membership_healthy), C(update_attempt);
    C(update_success), C(update_failure), C(lb_healthy_panic);
    H(upstream_cx_connect_ms), H(upstream_rq_time);
#undef C
#undef G
#undef H
}

int rs_cfg_transport_is_tls(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool *tls)
{
    *tls = false;
    if (!ts) return 0;
    size_t old = path_push(cx, "%s", field);
    int ret = 0;
    if (ts->config_type_case !=
        ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG) {
        ret = fail(cx, "typed_config", "is required");
        goto out;
    }
    char err[256];
    ProtobufCMessage *m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err);
    if (!m) {
        ret = fail(cx, "typed_config", "%s", err);
        goto out;
    }
    bool raw = m->descriptor ==
               &envoy__extensions__transport_sockets__raw_buffer__v3__raw_buffer__descriptor;
    *tls = m->descriptor ==
               &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor ||
           m->descriptor ==
               &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor;
    protobuf_c_message_free_unpacked(m, NULL);
    if (!raw && !*tls) ret = fail(cx, "typed_config", "unsupported transport socket %s", ts->name);
out:
    path_pop(cx, old);
    return ret;
}

static const char TLS_NOT_YET[] = "TLS transport socket not implemented yet (it comes with the "
                                  "mutual-TLS work)";

/* A transport socket that will carry traffic: TLS validates but is refused in serve mode. */
static int check_transport_socket(struct cctx *cx,
                                  const Envoy__Config__Core__V3__TransportSocket *ts,
                                  const char *field)
{
    bool tls;
    if (rs_cfg_transport_is_tls(cx, ts, field, &tls)) return -1;
    if (tls && cx->serve) {
        size_t old = path_push(cx, "%s", field);
        fail(cx, "typed_config", "%s", TLS_NOT_YET);
        path_pop(cx, old);
        return -1;
    }
    return 0;
}

/* A Unix-socket endpoint (Istio's xds-grpc and sds-grpc clusters: ./etc/istio/proxy/XDS and
 * the SDS socket), for the control-plane clients; the data plane does not route to them. */
static int pipe_endpoint(struct cctx *cx, const char *field, const Envoy__Config__Core__V3__Pipe *p,
                         struct rs_endpoint **eps, uint32_t *n, uint32_t *cap)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (!p->path || !p->path[0] || strlen(p->path) >= sizeof un.sun_path)
        return fail(cx, field, "pipe.path is required (at most %zu bytes)", sizeof un.sun_path - 1);
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *eps = realloc(*eps, *cap * sizeof **eps);
        if (!*eps) abort(); /* control path */
    }
    struct rs_endpoint *e = &(*eps)[(*n)++];
    memset(e, 0, sizeof *e);
    memcpy(un.sun_path, p->path, strlen(p->path));
    memcpy(&e->addr, &un, sizeof un);
    e->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(p->path) + 1);
    e->weight = 1;
    e->ts_match = -1;
    snprintf(e->name, sizeof e->name, "%s", p->path);
    return 0;
}

/* A static cluster the control-plane clients use: named by dynamic_resources.ads_config's
 * envoy_grpc, or pilot-agent's sds-grpc (named by the SDS config sources of xDS resources).
 * They may use Unix-socket endpoints, HTTP/2 and TCP keepalive: the gRPC client (nghttp2)
 * speaks to them, not the data plane. */
static bool control_plane_cluster(const struct cctx *cx, const char *name)
{
    if (strcmp(name, "sds-grpc") == 0 || strcmp(name, "xds-grpc") == 0) return true;
    const Envoy__Config__Bootstrap__V3__Bootstrap *bs = cx->snap->bootstrap;
    const Envoy__Config__Core__V3__ApiConfigSource *ads =
        bs && bs->dynamic_resources ? bs->dynamic_resources->ads_config : NULL;
    for (size_t i = 0; ads && i < ads->n_grpc_services; i++) {
        const Envoy__Config__Core__V3__GrpcService *g = ads->grpc_services[i];
        if (g->target_specifier_case ==
                ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC &&
            g->envoy_grpc->cluster_name && strcmp(g->envoy_grpc->cluster_name, name) == 0)
            return true;
    }
    return false;
}

static int compile_endpoints(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = pc->load_assignment;
    struct rs_endpoint *eps = NULL;
    uint32_t neps = 0, cap = 0;
    int ret = 0;
    size_t old = path_push(cx, "load_assignment");
    for (size_t i = 0; la && i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
        if (lle->priority != 0 && !cx->serve) continue;
        if (lle->priority != 0) {
            ret = fail(cx, "endpoints", "[%zu].priority %u: only priority 0 is supported", i,
                       lle->priority);
            goto out;
        }
        for (size_t j = 0; j < lle->n_lb_endpoints; j++) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *lbe = lle->lb_endpoints[j];
            char field[96];
            snprintf(field, sizeof field, "endpoints[%zu].lb_endpoints[%zu].endpoint.address", i,
                     j);
            if (lbe->host_identifier_case !=
                    ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
                !lbe->endpoint) {
                ret = fail(cx, field, "is required");
                goto out;
            }
            if (c->control_plane && c->type == RS_CLUSTER_STATIC && lbe->endpoint->address &&
                lbe->endpoint->address->address_case ==
                    ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_PIPE) {
                if (pipe_endpoint(cx, field, lbe->endpoint->address->pipe, &eps, &neps, &cap)) {
                    ret = -1;
                    goto out;
                }
                continue;
            }
            const Envoy__Config__Core__V3__SocketAddress *sa;
            if (socket_address(cx, lbe->endpoint->address, field, c->type == RS_CLUSTER_STATIC,
                               &sa)) {
                ret = -1;
                goto out;
            }
            uint32_t weight = lbe->load_balancing_weight ? lbe->load_balancing_weight->value : 1;
            if (lbe->load_balancing_weight && weight == 0) {
                ret = fail(cx, field, "load_balancing_weight must be at least 1");
                goto out;
            }
            if (c->type == RS_CLUSTER_STRICT_DNS) {
                c->dns = realloc(c->dns, (c->ndns + 1) * sizeof *c->dns);
                if (!c->dns) abort();
                c->dns[c->ndns++] = (struct rs_dns_slot){.cluster = c,
                                                         .hostname = xstrdup(sa->address),
                                                         .port = (uint16_t)sa->port_value,
                                                         .weight = weight,
                                                         .id = -1};
                continue;
            }
            if (neps == cap) {
                cap = cap ? cap * 2 : 8;
                eps = realloc(eps, cap * sizeof *eps);
                if (!eps) abort();
            }
            struct rs_endpoint *e = &eps[neps++];
            memset(e, 0, sizeof *e);
            e->ts_match = -1;
            rs_cfg_ip_port(sa->address, sa->port_value, &e->addr, &e->addrlen);
            e->weight = weight;
            rs_addr_str((struct sockaddr *)&e->addr, e->name, sizeof e->name);
        }
    }
    if (c->type == RS_CLUSTER_STATIC) rs_cluster_set_hosts(c, rs_hostset_new(eps, neps));
out:
    free(eps);
    path_pop(cx, old);
    return ret;
}

static int cluster_type(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    if (pc->cluster_discovery_type_case ==
        ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE)
        return fail(cx, "cluster_type", "custom cluster types are not supported");
    switch (pc->type) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
        c->type = RS_CLUSTER_STATIC;
        return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
        c->type = RS_CLUSTER_STRICT_DNS;
        return 0;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS: {
        const Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig *e = pc->eds_cluster_config;
        if (!cx->xds) return fail(cx, "type", "EDS clusters need xDS (dynamic_resources with ADS)");
        if (e && e->eds_config &&
            e->eds_config->config_source_specifier_case !=
                ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
            return fail(cx, "eds_cluster_config.eds_config", "only ads: {} is supported");
        c->type = RS_CLUSTER_EDS;
        c->eds_name =
            xstrdup(e && e->service_name && e->service_name[0] ? e->service_name : pc->name);
        return 0;
    }
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST:
        c->type = RS_CLUSTER_ORIGINAL_DST;
        if (pc->load_assignment && pc->load_assignment->n_endpoints)
            return fail(cx, "load_assignment", "ORIGINAL_DST clusters take no endpoints");
        return 0;
    default:
        return fail(cx, "type", "LOGICAL_DNS clusters are not supported (use STRICT_DNS)");
    }
}

/* lb_policy is compiled; CLUSTER_PROVIDED only goes with ORIGINAL_DST (Envoy's rule). The
 * common_lb_config fields that are hints without active health checks or a local cluster are
 * accepted; the ones that would change behaviour are refused. */
static int cluster_lb(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    switch (pc->lb_policy) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
        c->lb_policy = RS_LB_ROUND_ROBIN;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
        c->lb_policy = RS_LB_LEAST_REQUEST;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
        c->lb_policy = RS_LB_RANDOM;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED:
        if (c->type != RS_CLUSTER_ORIGINAL_DST)
            return fail(cx, "lb_policy", "CLUSTER_PROVIDED is only valid for ORIGINAL_DST");
        c->lb_policy = RS_LB_CLUSTER_PROVIDED;
        break;
    default:
        return fail(cx, "lb_policy",
                    "only ROUND_ROBIN, LEAST_REQUEST, RANDOM and (ORIGINAL_DST) CLUSTER_PROVIDED "
                    "are supported");
    }
    switch (pc->lb_config_case) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG__NOT_SET:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG:
        break; /* choice_count, slow start, active request bias: tuning of the picker */
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ORIGINAL_DST_LB_CONFIG:
        if (pc->original_dst_lb_config->use_http_header ||
            pc->original_dst_lb_config->upstream_port_override ||
            pc->original_dst_lb_config->metadata_key)
            return fail(cx, "original_dst_lb_config",
                        "only the connection's original destination is supported");
        break;
    default:
        return fail(cx, "lb_config", "does not match a supported lb_policy");
    }
    const Envoy__Config__Cluster__V3__Cluster__CommonLbConfig *cl = pc->common_lb_config;
    if (cl && cl->close_connections_on_host_set_change)
        return fail(cx, "common_lb_config.close_connections_on_host_set_change",
                    "is not supported");
    if (cl && cl->override_host_status)
        return fail(cx, "common_lb_config.override_host_status", "is not supported");
    /* healthy_panic_threshold, ignore_new_hosts_until_first_hc (no health checks: every host
     * in a set is healthy), update_merge_window, consistent_hashing_lb_config (no hash LB),
     * locality_weighted_lb_config (locality weights are always applied) and zone_aware_lb_config
     * (no local cluster, so Envoy disables it too) are accepted as hints. */
    return 0;
}

static int cluster_bind(struct cctx *cx, struct rs_cluster *c,
                        const Envoy__Config__Core__V3__BindConfig *b)
{
    size_t old = path_push(cx, "upstream_bind_config");
    int ret = 0;
    if ((b->freebind && b->freebind->value) || b->n_socket_options || b->n_extra_source_addresses ||
        b->n_additional_source_addresses || b->local_address_selector)
        ret = fail(cx, "", "only source_address is supported");
    else if (!b->source_address ||
             rs_cfg_ip_port(b->source_address->address, b->source_address->port_value,
                            &c->bind_addr, &c->bind_addrlen) != 0)
        ret = fail(cx, "source_address", "an IP address is required");
    if (!ret) path_pop(cx, old);
    return ret;
}

/* Upstream network filters: Istio's metadata exchange (telemetry) is skipped; any other is
 * decided by the filter table like a listener's network filter. */
static int cluster_filters(struct cctx *cx, const Cluster *pc)
{
    for (size_t i = 0; i < pc->n_filters; i++) {
        const Envoy__Config__Cluster__V3__Filter *f = pc->filters[i];
        struct rs_filter_decision d;
        rs_filter_decide(RS_FILTER_NETWORK, f->name, f->typed_config, false, &d);
        if (d.verdict == RS_FILTER_SKIPPED) {
            char where[600];
            snprintf(where, sizeof where, "%s%sfilters[%zu]", cx->path,
                     cfg_sep(cx, strlen(cx->path)), i);
            rs_skipped_add(&cx->snap->skipped, where, f->name, &d);
            continue;
        }
        return fail(cx, "", "filters[%zu] (%s): %s", i, f->name,
                    d.verdict == RS_FILTER_REFUSED ? d.reason
                                                   : "upstream network filters are not supported");
    }
    return 0;
}

/* transport_socket and transport_socket_matches (Istio: tlsMode-istio → TLS, tlsMode-disabled
 * → raw_buffer). The TLS entries compile; a host that would use one is refused in serve mode
 * when its assignment is applied (EDS), so a cluster whose endpoints all select raw_buffer
 * serves. A STATIC/DNS cluster uses transport_socket (or an entry with an empty match). */
static int cluster_transport(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    if (rs_cfg_transport_is_tls(cx, pc->transport_socket, "transport_socket", &c->tls)) return -1;
    c->n_ts_matches = (uint32_t)pc->n_transport_socket_matches;
    c->ts_matches = xcalloc(c->n_ts_matches, sizeof *c->ts_matches);
    for (uint32_t i = 0; i < c->n_ts_matches; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *m =
            pc->transport_socket_matches[i];
        struct rs_ts_match *t = &c->ts_matches[i];
        size_t old = path_push(cx, "transport_socket_matches[%u]", i);
        t->name = xstrdup(m->name);
        if (!m->transport_socket) return fail(cx, "transport_socket", "is required");
        if (rs_cfg_transport_is_tls(cx, m->transport_socket, "transport_socket", &t->tls))
            return -1;
        size_t n = m->match ? m->match->n_fields : 0;
        t->keys = xcalloc(n, sizeof *t->keys);
        t->values = xcalloc(n, sizeof *t->values);
        for (size_t k = 0; k < n; k++) {
            const Google__Protobuf__Value *v = m->match->fields[k]->value;
            if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
                return fail(cx, "match", "value of \"%s\" must be a string",
                            m->match->fields[k]->key);
            t->keys[k] = xstrdup(m->match->fields[k]->key);
            t->values[k] = xstrdup(v->string_value);
            t->nkv++;
        }
        path_pop(cx, old);
    }
    if (c->type == RS_CLUSTER_EDS || c->type == RS_CLUSTER_ORIGINAL_DST) {
        /* ORIGINAL_DST hosts have no metadata: the entry with an empty match, else the
         * cluster's transport socket (EDS hosts are decided per host) */
        if (c->type == RS_CLUSTER_ORIGINAL_DST && cx->serve) {
            bool tls = c->tls;
            for (uint32_t i = 0; i < c->n_ts_matches; i++)
                if (c->ts_matches[i].nkv == 0) {
                    tls = c->ts_matches[i].tls;
                    break;
                }
            if (tls) return fail(cx, "transport_socket.typed_config", "%s", TLS_NOT_YET);
        }
        return 0;
    }
    bool tls = c->tls;
    for (uint32_t i = 0; i < c->n_ts_matches; i++)
        if (c->ts_matches[i].nkv == 0) {
            tls = c->ts_matches[i].tls;
            break;
        }
    if (tls && cx->serve) return fail(cx, "transport_socket.typed_config", "%s", TLS_NOT_YET);
    return 0;
}

static uint32_t u32v(const Google__Protobuf__UInt32Value *v, uint32_t dflt)
{
    return v ? v->value : dflt;
}

/* outlier_detection: carried with Envoy's defaults for the resilience work (not enforced yet:
 * hosts are never ejected). */
static int cluster_outlier(struct cctx *cx, struct rs_cluster *c,
                           const Envoy__Config__Cluster__V3__OutlierDetection *o)
{
    (void)cx;
    struct rs_outlier_cfg *r = &c->outlier;
    r->configured = c->outlier_configured = true;
    r->consecutive_5xx = u32v(o->consecutive_5xx, 5);
    r->consecutive_gateway_failure = u32v(o->consecutive_gateway_failure, 5);
    r->consecutive_local_origin_failure = u32v(o->consecutive_local_origin_failure, 5);
    r->interval_ms = rs_duration_ms(o->interval, 10000);
    r->base_ejection_time_ms = rs_duration_ms(o->base_ejection_time, 30000);
    r->max_ejection_time_ms = rs_duration_ms(o->max_ejection_time, 300000);
    r->max_ejection_percent = u32v(o->max_ejection_percent, 10);
    r->enforcing_consecutive_5xx = u32v(o->enforcing_consecutive_5xx, 100);
    r->enforcing_consecutive_gateway_failure = u32v(o->enforcing_consecutive_gateway_failure, 0);
    r->enforcing_success_rate = u32v(o->enforcing_success_rate, 100);
    r->split_external_local_origin_errors = o->split_external_local_origin_errors;
    return 0;
}

struct rs_cluster *rs_cfg_cluster_new(void)
{
    struct rs_cluster *c = xcalloc(1, sizeof *c);
    c->refs = 1;
    return c;
}

int rs_cfg_cluster(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    if (!pc->name || !pc->name[0]) return fail(cx, "name", "is required");
    c->name = xstrdup(pc->name);
    pthread_mutex_init(&c->dns_lock, NULL);
    c->stat_name = pc->alt_stat_name && pc->alt_stat_name[0] ? xstrdup(pc->alt_stat_name) : NULL;
    cluster_stats(c);
    if (pc->cluster_discovery_type_case ==
        ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE)
        return fail(cx, "cluster_type", "custom cluster types are not supported");
    if (cluster_type(cx, c, pc) || cluster_lb(cx, c, pc)) return -1;
    if (pc->n_health_checks)
        return fail(cx, "health_checks", "active health checks are not supported yet");
    if (pc->lb_subset_config)
        return fail(cx, "lb_subset_config", "subset load balancing is not supported");
    if (pc->upstream_bind_config && cluster_bind(cx, c, pc->upstream_bind_config)) return -1;
    if (cluster_filters(cx, pc)) return -1;
    if (pc->load_balancing_policy) return fail(cx, "load_balancing_policy", "is not supported");
    if (pc->http2_protocol_options)
        return fail(cx, "http2_protocol_options", "HTTP/2 upstreams are not supported yet");
    if (pc->upstream_http_protocol_options)
        return fail(cx, "upstream_http_protocol_options",
                    "comes with the TLS work (auto_sni/auto_san)");
    /* only a bootstrap cluster can be a control-plane cluster (root 0: not an xDS resource) */
    c->control_plane = cx->root == 0 && control_plane_cluster(cx, c->name);
    if (pc->upstream_connection_options && !c->control_plane)
        return fail(cx, "upstream_connection_options",
                    "TCP keepalive settings are not supported yet");
    if (pc->connection_pool_per_downstream_connection)
        return fail(cx, "connection_pool_per_downstream_connection", "is not supported");
    if (pc->lrs_server) return fail(cx, "lrs_server", "load reporting is not supported");
    if (pc->n_dns_resolvers || pc->dns_resolution_config || pc->typed_dns_resolver_config ||
        pc->use_tcp_for_dns_lookups)
        return fail(cx, "typed_dns_resolver_config", "only the system resolver is supported");
    if (pc->upstream_config) return fail(cx, "upstream_config", "is not supported");
    if (cluster_transport(cx, c, pc)) return -1;
    c->connect_timeout_ms = rs_duration_ms(pc->connect_timeout, 5000);
    c->per_connection_buffer_limit = pc->per_connection_buffer_limit_bytes
                                         ? pc->per_connection_buffer_limit_bytes->value
                                         : 1024 * 1024;
    c->idle_timeout_ms = 3600 * 1000;
    c->max_connections = c->max_pending_requests = c->max_requests = 1024; /* Envoy's defaults */
    if (pc->circuit_breakers) {
        for (size_t i = 0; i < pc->circuit_breakers->n_thresholds; i++) {
            const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t =
                pc->circuit_breakers->thresholds[i];
            if (t->priority != ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT) continue;
            if (t->max_connections) c->max_connections = t->max_connections->value;
            if (t->max_pending_requests) c->max_pending_requests = t->max_pending_requests->value;
            if (t->max_requests) c->max_requests = t->max_requests->value;
        }
    }
    for (size_t i = 0; i < pc->n_typed_extension_protocol_options; i++) {
        const char *key = pc->typed_extension_protocol_options[i]->key;
        size_t old = path_push(cx, "typed_extension_protocol_options[\"%s\"]", key);
        char err[256];
        ProtobufCMessage *m =
            pc->typed_extension_protocol_options[i]->value
                ? xds_any_unpack(
                      pc->typed_extension_protocol_options[i]->value,
                      &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor,
                      err, sizeof err)
                : NULL;
        if (!m) {
            int r =
                fail(cx, "", "%s",
                     pc->typed_extension_protocol_options[i]->value ? err : "value is required");
            path_pop(cx, old);
            return r;
        }
        const Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions *hpo = (const void *)m;
        const char *bad = NULL;
        if (hpo->upstream_protocol_options_case ==
                ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG &&
            hpo->explicit_http_config->protocol_config_case !=
                ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP_PROTOCOL_OPTIONS &&
            !c->control_plane)
            bad = "explicit_http_config: HTTP/2 upstreams are not implemented yet (only HTTP/1.1; "
                  "use_downstream_protocol_config and auto_config select HTTP/1.1)";
        else if (hpo->n_http_filters)
            bad = "http_filters: upstream HTTP filters are not supported";
        else if (hpo->upstream_http_protocol_options)
            bad = "upstream_http_protocol_options: comes with the TLS work";
        if (bad) {
            protobuf_c_message_free_unpacked(m, NULL);
            int r = fail(cx, "", "%s", bad);
            path_pop(cx, old);
            return r;
        }
        const Envoy__Config__Core__V3__HttpProtocolOptions *o = hpo->common_http_protocol_options;
        if (o) {
            c->idle_timeout_ms = rs_duration_ms(o->idle_timeout, c->idle_timeout_ms);
            if (o->max_requests_per_connection)
                c->max_requests_per_cx = o->max_requests_per_connection->value;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        path_pop(cx, old);
    }
    if (pc->common_http_protocol_options) {
        const Envoy__Config__Core__V3__HttpProtocolOptions *o = pc->common_http_protocol_options;
        c->idle_timeout_ms = rs_duration_ms(o->idle_timeout, c->idle_timeout_ms);
        if (o->max_requests_per_connection)
            c->max_requests_per_cx = o->max_requests_per_connection->value;
    }
    if (pc->max_requests_per_connection)
        c->max_requests_per_cx = pc->max_requests_per_connection->value;
    if (pc->outlier_detection && cluster_outlier(cx, c, pc->outlier_detection)) return -1;
    switch (pc->dns_lookup_family) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_ONLY:
        c->dns_family = RS_DNS_V4_ONLY;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V6_ONLY:
        c->dns_family = RS_DNS_V6_ONLY;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_PREFERRED:
        c->dns_family = RS_DNS_V4_PREFERRED;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__ALL:
        c->dns_family = RS_DNS_ALL;
        break;
    default:
        c->dns_family = RS_DNS_AUTO;
    }
    c->dns_refresh_ms = rs_duration_ms(pc->dns_refresh_rate, 5000);
    c->dns_failure_refresh_ms =
        pc->dns_failure_refresh_rate
            ? rs_duration_ms(pc->dns_failure_refresh_rate->base_interval, c->dns_refresh_ms)
            : c->dns_refresh_ms;
    /* no hosts until the assignment (EDS) or ever (ORIGINAL_DST: the data path connects to
     * the original destination): an empty set, so readers never see NULL */
    if (c->type == RS_CLUSTER_ORIGINAL_DST) rs_cluster_set_hosts(c, rs_hostset_new(NULL, 0));
    if (c->type == RS_CLUSTER_EDS || c->type == RS_CLUSTER_ORIGINAL_DST) return 0;
    return compile_endpoints(cx, c, pc);
}

int rs_config_cluster_index(const struct rs_snapshot *s, const char *name)
{
    for (uint32_t i = 0; i < s->nclusters; i++)
        if (s->clusters[i] && s->clusters[i]->name && strcmp(s->clusters[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- access logs --------------------------------------------------------------------------- */

static struct rs_access_log *format_log(struct cctx *cx, enum rs_access_sink sink, const char *path,
                                        const FormatString *fs, const char *legacy_text)
{
    char err[256];
    const char *text = legacy_text && legacy_text[0] ? legacy_text : NULL;
    const char **keys = NULL, **formats = NULL;
    size_t njson = 0;
    struct rs_access_log *log = NULL;
    if (fs) {
        if (fs->n_formatters) {
            fail(cx, "log_format.formatters", "custom formatters are not supported");
            return NULL;
        }
        switch (fs->format_case) {
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT:
            text = fs->text_format;
            break;
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE:
            if (fs->text_format_source->specifier_case !=
                ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING) {
                fail(cx, "log_format.text_format_source", "only inline_string is supported");
                return NULL;
            }
            text = fs->text_format_source->inline_string;
            break;
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT: {
            const Google__Protobuf__Struct *st = fs->json_format;
            njson = st->n_fields;
            keys = xcalloc(njson, sizeof *keys);
            formats = xcalloc(njson, sizeof *formats);
            for (size_t i = 0; i < njson; i++) {
                const Google__Protobuf__Value *v = st->fields[i]->value;
                if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE) {
                    fail(cx, "log_format.json_format", "value of \"%s\" must be a string",
                         st->fields[i]->key);
                    goto out;
                }
                keys[i] = st->fields[i]->key;
                formats[i] = v->string_value;
            }
            break;
        }
        default:
            break;
        }
    }
    log = rs_access_log_create(sink, path, text, keys, formats, njson, err, sizeof err);
    if (!log) fail(cx, "log_format", "%s", err);
out:
    free(keys);
    free(formats);
    return log;
}

static int compile_access_logs(struct cctx *cx, AccessLog **als, size_t n,
                               struct rs_access_log ***out_logs, uint32_t **out_idx,
                               uint32_t *out_n)
{
    struct rs_snapshot *s = cx->snap;
    *out_logs = xcalloc(n, sizeof **out_logs);
    *out_idx = xcalloc(n, sizeof **out_idx);
    for (size_t i = 0; i < n; i++) {
        const AccessLog *al = als[i];
        size_t old = path_push(cx, "access_log[%zu]", i);
        if (al->filter) {
            fail(cx, "filter", "access log filters are not supported yet");
            return -1;
        }
        if (al->config_type_case !=
            ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG) {
            fail(cx, "typed_config", "is required");
            return -1;
        }
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(al->typed_config, NULL, err, sizeof err);
        if (!m) {
            fail(cx, "typed_config", "%s", err);
            return -1;
        }
        struct rs_access_log *log = NULL;
        const ProtobufCMessageDescriptor *d = m->descriptor;
        if (d == &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *f = (const void *)m;
            const FormatString *fs = NULL;
            const char *legacy = NULL;
            if (f->access_log_format_case ==
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT)
                fs = f->log_format;
            else if (
                f->access_log_format_case ==
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_FORMAT)
                legacy = f->format;
            else if (
                f->access_log_format_case !=
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT__NOT_SET)
                fail(cx, "typed_config", "use log_format for JSON access logs");
            bool is_stdout = strcmp(f->path, "/dev/stdout") == 0;
            bool is_stderr = strcmp(f->path, "/dev/stderr") == 0;
            if (!cx->err[0])
                log = format_log(cx,
                                 is_stdout   ? RS_ACCESS_SINK_STDOUT
                                 : is_stderr ? RS_ACCESS_SINK_STDERR
                                             : RS_ACCESS_SINK_FILE,
                                 f->path, fs, legacy);
        } else if (d ==
                   &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog *f =
                (const void *)m;
            log = format_log(cx, RS_ACCESS_SINK_STDOUT, NULL, f->log_format, NULL);
        } else if (d ==
                   &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__Stream__V3__StderrAccessLog *f =
                (const void *)m;
            log = format_log(cx, RS_ACCESS_SINK_STDERR, NULL, f->log_format, NULL);
        } else {
            fail(cx, "typed_config", "unsupported access logger %s", d->name);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (!log) return -1;
        if (s->nlogs == s->logs_cap) {
            s->logs_cap = s->logs_cap ? s->logs_cap * 2 : 8;
            s->logs = realloc(s->logs, s->logs_cap * sizeof *s->logs);
            if (!s->logs) abort();
        }
        (*out_idx)[i] = s->nlogs;
        s->logs[s->nlogs++] = log;
        (*out_logs)[i] = log;
        (*out_n)++;
        path_pop(cx, old);
    }
    return 0;
}

/* ---- network filters ----------------------------------------------------------------------- */

static void hcm_stats(struct rs_hcm_cfg *h)
{
    struct rs_hcm_stats *s = &h->st;
#define C(f) s->f = stat("http", h->stat_prefix, #f, RS_STAT_COUNTER)
#define G(f) s->f = stat("http", h->stat_prefix, #f, RS_STAT_GAUGE)
#define H(f) s->f = stat("http", h->stat_prefix, #f, RS_STAT_HISTOGRAM)
    C(downstream_cx_total), G(downstream_cx_active), C(downstream_cx_http1_total);
    C(downstream_cx_destroy), C(downstream_cx_destroy_remote), C(downstream_cx_destroy_local);
    C(downstream_cx_protocol_error), C(downstream_cx_idle_timeout), C(downstream_cx_rx_bytes_total);
    C(downstream_cx_tx_bytes_total), C(downstream_cx_drain_close), C(downstream_rq_total);
    C(downstream_cx_max_duration_reached);
    C(downstream_rq_http1_total), G(downstream_rq_active), C(downstream_rq_1xx);
    C(downstream_rq_2xx), C(downstream_rq_3xx), C(downstream_rq_4xx), C(downstream_rq_5xx);
    C(downstream_rq_completed), C(downstream_rq_timeout), C(downstream_rq_header_timeout);
    C(downstream_rq_too_large), C(downstream_rq_idle_timeout), C(downstream_rq_rx_reset);
    C(downstream_rq_tx_reset), C(downstream_rq_non_relative_path), C(rq_direct_response);
    C(rq_total), C(no_route), C(no_cluster), C(rq_header_too_large);
    H(downstream_rq_time), H(downstream_cx_length_ms);
#undef C
#undef G
#undef H
}

/* Records a skipped filter at the current path + field, for /config_dump. */
static void skip_record(struct cctx *cx, const char *field, const char *name,
                        const struct rs_filter_decision *d)
{
    char where[700];
    size_t plen = strlen(cx->path);
    snprintf(where, sizeof where, "%s%s%s", cx->path, field[0] ? cfg_sep(cx, plen) : "", field);
    rs_skipped_add(&cx->snap->skipped, where, name, d);
}

static int compile_http_filters(struct cctx *cx, struct rs_hcm_cfg *h, const Hcm *pm)
{
    if (pm->n_http_filters == 0)
        return fail(cx, "http_filters", "must end with envoy.filters.http.router");
    for (size_t i = 0; i < pm->n_http_filters; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
            pm->http_filters[i];
        char field[64];
        snprintf(field, sizeof field, "http_filters[%zu]", i);
        bool last = i + 1 == pm->n_http_filters;
        if (f->config_type_case !=
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG)
            return fail(cx, field, "typed_config is required (%s)", f->name);
        /* Disabled filters are decided too: a route may enable them (FilterConfig), so an
         * authorization filter is refused even when disabled by default. */
        struct rs_filter_decision d;
        rs_filter_decide(RS_FILTER_HTTP, f->name, f->typed_config, f->is_optional, &d);
        if (d.verdict == RS_FILTER_REFUSED)
            return fail(cx, field, "%s: %s", f->name ? f->name : "", d.reason);
        if (last && d.id != RS_FID_ROUTER)
            return fail(cx, field, "the last HTTP filter must be envoy.filters.http.router");
        if (d.verdict == RS_FILTER_SKIPPED) {
            skip_record(cx, field, f->name, &d);
            continue;
        }
        if (d.id == RS_FID_ROUTER) {
            if (!last) return fail(cx, field, "envoy.filters.http.router must be the last filter");
            continue;
        }
        if (d.id != RS_FID_BUFFER || f->disabled) continue;
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(f->typed_config, NULL, err, sizeof err);
        if (!m) return fail(cx, field, "%s", err);
        const Envoy__Extensions__Filters__Http__Buffer__V3__Buffer *b = (const void *)m;
        h->max_request_bytes = b->max_request_bytes ? b->max_request_bytes->value : 0;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return 0;
}

/* typed_per_filter_config of routes, virtual hosts and route configurations: decided by the
 * filter table (RS_FILTER_ROUTE); skipped ones are recorded. */
struct route_ctx {
    struct cctx *cx;
};

static int per_filter_cb(void *ctx, const char *filter, const void *any, char *why, size_t len)
{
    struct route_ctx *rc = ctx;
    struct rs_filter_decision d;
    rs_filter_decide(RS_FILTER_ROUTE, filter, any, false, &d);
    if (d.verdict == RS_FILTER_REFUSED) {
        snprintf(why, len, "%s", d.reason);
        return -1;
    }
    char field[300];
    snprintf(field, sizeof field, "typed_per_filter_config[\"%s\"]", filter);
    if (d.verdict == RS_FILTER_SKIPPED) skip_record(rc->cx, field, filter, &d);
    return 0;
}

static int route_cluster_cb(void *ctx, const char *name)
{
    struct route_ctx *rc = ctx;
    return rs_config_cluster_index(rc->cx->snap, name);
}

/* The RouteConfiguration an HCM names through rds, from the xDS input; NULL when it has not
 * arrived (the caller then decides between warming and empty). */
static const Envoy__Config__Route__V3__RouteConfiguration *rds_find(struct cctx *cx,
                                                                    const char *name)
{
    const struct rs_xds_input *in = cx->in;
    for (size_t i = 0; in && i < in->n[RS_XDS_RDS]; i++)
        if (strcmp(in->res[RS_XDS_RDS][i].name, name) == 0)
            return (const void *)in->res[RS_XDS_RDS][i].msg;
    return NULL;
}

/* upgrade_configs: istiod lists websocket on every HCM. HTTP/1 upgrades are answered 403 until
 * they are implemented; refusing the whole listener would refuse all of istiod's HTTP
 * listeners, so a websocket upgrade config is accepted and recorded as skipped (shown on
 * /config_dump). Upgrade filters or other upgrade types are refused. */
static int hcm_upgrades(struct cctx *cx, const Hcm *pm)
{
    for (size_t i = 0; i < pm->n_upgrade_configs; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig
            *u = pm->upgrade_configs[i];
        char field[48];
        snprintf(field, sizeof field, "upgrade_configs[%zu]", i);
        if (!u->upgrade_type || strcasecmp(u->upgrade_type, "websocket") != 0 || u->n_filters)
            return fail(cx, field, "only websocket upgrades without filters are accepted");
        if (u->enabled && !u->enabled->value) continue;
        struct rs_filter_decision d = {.verdict = RS_FILTER_SKIPPED, .type = ""};
        snprintf(d.reason, sizeof d.reason,
                 "HTTP/1 upgrades are not implemented yet: upgrade requests are answered 403");
        skip_record(cx, field, "websocket", &d);
    }
    return 0;
}

static int compile_hcm(struct cctx *cx, struct rs_filter_chain *fc, const Hcm *pm, uint16_t port)
{
    struct rs_hcm_cfg *h = fc->hcm = xcalloc(1, sizeof *h);
    h->stat_prefix = xstrdup(pm->stat_prefix);
    if (!pm->stat_prefix || !pm->stat_prefix[0]) return fail(cx, "stat_prefix", "is required");
    hcm_stats(h);
    if (pm->codec_type ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2 ||
        pm->codec_type ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP3)
        return fail(cx, "codec_type", "only HTTP/1.1 is served so far (HTTP/2 comes next)");
    if (hcm_upgrades(cx, pm)) return -1;
    /* Behaviour-changing HCM fields not implemented yet are refused by name; hints
     * (delayed_close_timeout, request_id_extension with UUIDs,
     * stream_error_on_invalid_http_message, HTTP/2 and HTTP/3 options on an HTTP/1.1 codec) are
     * accepted. */
    if (pm->path_normalization_options)
        return fail(cx, "path_normalization_options", "is not supported yet");
    h->path.normalize = pm->normalize_path && pm->normalize_path->value;
    h->path.merge_slashes = pm->merge_slashes;
    switch (pm->path_with_escaped_slashes_action) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__REJECT_REQUEST:
        h->path.escaped_slashes = RS_PATH_SLASHES_REJECT;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_REDIRECT:
        h->path.escaped_slashes = RS_PATH_SLASHES_UNESCAPE_AND_REDIRECT;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_FORWARD:
        h->path.escaped_slashes = RS_PATH_SLASHES_UNESCAPE_AND_FORWARD;
        break;
    default: /* IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED in Envoy */
        h->path.escaped_slashes = RS_PATH_SLASHES_KEEP;
    }
    if (pm->via && pm->via[0]) return fail(cx, "via", "is not supported yet");
    if (pm->add_user_agent && pm->add_user_agent->value)
        return fail(cx, "add_user_agent", "is not supported");
    if (pm->proxy_100_continue)
        return fail(cx, "proxy_100_continue", "100-continue is answered by the proxy itself");
    if (pm->internal_address_config) return fail(cx, "internal_address_config", "is not supported");
    if (pm->scheme_header_transformation)
        return fail(cx, "scheme_header_transformation", "is not supported");
    if (pm->append_x_forwarded_port) return fail(cx, "append_x_forwarded_port", "is not supported");
    if (pm->n_early_header_mutation_extensions)
        return fail(cx, "early_header_mutation_extensions", "are not supported");
    if (pm->typed_header_validation_config)
        return fail(cx, "typed_header_validation_config", "is not supported");
    if (pm->proxy_status_config) return fail(cx, "proxy_status_config", "is not supported");
    if (pm->strip_trailing_host_dot) return fail(cx, "strip_trailing_host_dot", "is not supported");
    if (pm->represent_ipv4_remote_address_as_ipv4_mapped_ipv6)
        return fail(cx, "represent_ipv4_remote_address_as_ipv4_mapped_ipv6", "is not supported");
    /* set_current_client_cert_details: without TLS there is no client certificate to
     * describe, so it is a hint until the mutual-TLS work */
    if (pm->http_protocol_options) {
        const Envoy__Config__Core__V3__Http1ProtocolOptions *h1 = pm->http_protocol_options;
        if (h1->allow_absolute_url && !h1->allow_absolute_url->value)
            return fail(cx, "http_protocol_options.allow_absolute_url", "false is not supported");
        if (h1->header_key_format)
            return fail(cx, "http_protocol_options.header_key_format", "is not supported");
        if (h1->enable_trailers)
            return fail(cx, "http_protocol_options.enable_trailers", "is not supported yet");
        if (h1->allow_chunked_length)
            return fail(cx, "http_protocol_options.allow_chunked_length", "is not supported");
        if (h1->send_fully_qualified_url)
            return fail(cx, "http_protocol_options.send_fully_qualified_url", "is not supported");
        if (h1->allow_custom_methods)
            return fail(cx, "http_protocol_options.allow_custom_methods", "is not supported");
    }
    h->always_set_request_id_in_response = pm->always_set_request_id_in_response;
    /* istiod sets tracing (sampling percentages) on every HCM; with no provider no span can
     * be emitted, so it is a hint. A provider is refused. */
    if (pm->tracing && pm->tracing->provider)
        return fail(cx, "tracing.provider", "tracing providers are not supported");
    if (pm->request_id_extension && pm->request_id_extension->typed_config &&
        !strstr(pm->request_id_extension->typed_config->type_url,
                "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"))
        return fail(cx, "request_id_extension", "only UuidRequestIdConfig is supported");
    if (pm->local_reply_config) return fail(cx, "local_reply_config", "is not supported");
    if (pm->n_original_ip_detection_extensions)
        return fail(cx, "original_ip_detection_extensions", "are not supported");
    /* forward_client_cert_details: every mode differs only by what is appended from the
     * client certificate, and there is none without TLS: accepted (istiod: APPEND_FORWARD
     * inbound, SANITIZE_SET outbound) */
    h->max_request_headers_kb = pm->max_request_headers_kb ? pm->max_request_headers_kb->value : 60;
    if (h->max_request_headers_kb == 0 || h->max_request_headers_kb > 8192)
        return fail(cx, "max_request_headers_kb", "must be 1..8192");
    const Envoy__Config__Core__V3__HttpProtocolOptions *o = pm->common_http_protocol_options;
    h->max_headers_count = o && o->max_headers_count ? o->max_headers_count->value : 100;
    h->idle_timeout_ms = o ? rs_duration_ms(o->idle_timeout, 3600 * 1000) : 3600 * 1000;
    h->max_connection_duration_ms = o ? rs_duration_ms(o->max_connection_duration, 0) : 0;
    if (o &&
        o->headers_with_underscores_action !=
            ENVOY__CONFIG__CORE__V3__HTTP_PROTOCOL_OPTIONS__HEADERS_WITH_UNDERSCORES_ACTION__ALLOW)
        return fail(cx, "common_http_protocol_options.headers_with_underscores_action",
                    "only ALLOW is supported");
    h->request_headers_timeout_ms = rs_duration_ms(pm->request_headers_timeout, 0);
    h->request_timeout_ms = rs_duration_ms(pm->request_timeout, 0);
    h->stream_idle_timeout_ms = rs_duration_ms(pm->stream_idle_timeout, 300 * 1000);
    h->drain_timeout_ms = rs_duration_ms(pm->drain_timeout, 5000);
    h->use_remote_address = pm->use_remote_address && pm->use_remote_address->value;
    h->xff_num_trusted_hops = pm->xff_num_trusted_hops;
    h->skip_xff_append = pm->skip_xff_append;
    h->generate_request_id = !pm->generate_request_id || pm->generate_request_id->value;
    h->preserve_external_request_id = pm->preserve_external_request_id;
    h->server_name = xstrdup(pm->server_name && pm->server_name[0] ? pm->server_name : "envoy");
    h->server_header_pass_through =
        pm->server_header_transformation ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__SERVER_HEADER_TRANSFORMATION__PASS_THROUGH;
    if (pm->http_protocol_options) {
        h->accept_http_10 = pm->http_protocol_options->accept_http_10;
        if (pm->http_protocol_options->default_host_for_http_10 &&
            pm->http_protocol_options->default_host_for_http_10[0])
            h->default_host_for_http_10 =
                xstrdup(pm->http_protocol_options->default_host_for_http_10);
    }
    if (compile_http_filters(cx, h, pm)) return -1;
    if (compile_access_logs(cx, pm->access_log, pm->n_access_log, &h->logs, &h->log_index,
                            &h->nlogs))
        return -1;
    h->strip_any_host_port =
        pm->strip_port_mode_case ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__STRIP_PORT_MODE_STRIP_ANY_HOST_PORT &&
        pm->strip_any_host_port;
    struct route_ctx rctx = {.cx = cx};
    struct rs_route_compile_opts ro = {
        .cluster_index = route_cluster_cb,
        .ctx = &rctx,
        .validate_clusters = true,
        .strip_any_host_port = h->strip_any_host_port,
        .strip_matching_host_port = pm->strip_matching_host_port,
        .listener_port = port,
        .per_filter = per_filter_cb,
    };
    const Envoy__Config__Route__V3__RouteConfiguration *rc = pm->route_config;
    Envoy__Config__Route__V3__RouteConfiguration empty =
        ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
    const char *field = "route_config";
    if (pm->route_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
        const char *name = pm->rds->route_config_name;
        if (!cx->xds) return fail(cx, "rds", "RDS needs xDS (dynamic_resources with ADS)");
        if (!name || !name[0]) return fail(cx, "rds.route_config_name", "is required");
        if (pm->rds->config_source &&
            pm->rds->config_source->config_source_specifier_case !=
                ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
            return fail(cx, "rds.config_source", "only ads: {} is supported");
        h->rds_name = xstrdup(name);
        rc = rds_find(cx, name);
        int st = cx->in->watch ? cx->in->watch(cx->in->ctx, RS_XDS_RDS, name) : -1;
        if (!rc && (st == RS_XDS_PENDING || (st < 0 && !cx->in->watch))) {
            cx->warming = true; /* listener warming: left out until its routes arrive */
            return 0;
        }
        if (!rc) rc = &empty; /* timed out or removed: no routes (404 NR), as Envoy */
        /* Envoy's default for RDS: validate_clusters false (503 NC for an unknown cluster) */
        ro.validate_clusters = false;
        size_t old = strlen(cx->path), oroot = cx->root;
        char saved[sizeof cx->path];
        memcpy(saved, cx->path, sizeof saved);
        snprintf(cx->path, sizeof cx->path, "RouteConfiguration \"%s\"", name);
        cx->root = strlen(cx->path);
        char err[512];
        h->routes = rs_route_table_compile(rc, &ro, err, sizeof err);
        int ret = h->routes ? 0 : fail(cx, "", "%s", err);
        memcpy(cx->path, saved, sizeof saved);
        cx->path[old] = '\0';
        cx->root = oroot;
        return ret;
    }
    if (pm->route_specifier_case !=
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG)
        return fail(cx, "route_config", "an inline route_config or rds is required");
    char err[512];
    h->routes = rs_route_table_compile(rc, &ro, err, sizeof err);
    if (!h->routes) return fail(cx, field, "%s", err);
    return 0;
}

static int tcp_cluster(struct cctx *cx, const char *name, const char *field, uint32_t *out)
{
    int idx = rs_config_cluster_index(cx->snap, name);
    if (idx < 0 && cx->xds && name && name[0]) {
        /* Envoy: a tcp_proxy naming a missing (or still warming) cluster closes its
         * connections (downstream_cx_no_route); not a config error */
        *out = RS_CLUSTER_NONE;
        return 0;
    }
    if (idx < 0) return fail(cx, field, "unknown cluster \"%s\"", name);
    *out = (uint32_t)idx;
    return 0;
}

static int compile_tcp(struct cctx *cx, struct rs_filter_chain *fc, const TcpProxy *pt)
{
    struct rs_tcp_cfg *t = fc->tcp = xcalloc(1, sizeof *t);
    if (!pt->stat_prefix || !pt->stat_prefix[0]) return fail(cx, "stat_prefix", "is required");
    t->stat_prefix = xstrdup(pt->stat_prefix);
    struct rs_tcp_stats *s = &t->st;
    s->downstream_cx_total = stat("tcp", t->stat_prefix, "downstream_cx_total", RS_STAT_COUNTER);
    s->downstream_cx_no_route =
        stat("tcp", t->stat_prefix, "downstream_cx_no_route", RS_STAT_COUNTER);
    s->downstream_cx_rx_bytes_total =
        stat("tcp", t->stat_prefix, "downstream_cx_rx_bytes_total", RS_STAT_COUNTER);
    s->downstream_cx_tx_bytes_total =
        stat("tcp", t->stat_prefix, "downstream_cx_tx_bytes_total", RS_STAT_COUNTER);
    s->idle_timeout = stat("tcp", t->stat_prefix, "idle_timeout", RS_STAT_COUNTER);
    s->upstream_flush_total = stat("tcp", t->stat_prefix, "upstream_flush_total", RS_STAT_COUNTER);
    s->max_downstream_connection_duration =
        stat("tcp", t->stat_prefix, "max_downstream_connection_duration", RS_STAT_COUNTER);
    if (pt->tunneling_config) return fail(cx, "tunneling_config", "is not supported");
    if (pt->n_hash_policy) return fail(cx, "hash_policy", "is not supported");
    if (pt->metadata_match) return fail(cx, "metadata_match", "is not supported");
    if (pt->on_demand) return fail(cx, "on_demand", "is not supported");
    t->idle_timeout_ms = rs_duration_ms(pt->idle_timeout, 3600 * 1000);
    t->max_connect_attempts = pt->max_connect_attempts ? pt->max_connect_attempts->value : 1;
    if (pt->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
        t->nclusters = 1;
        t->clusters = xcalloc(1, sizeof *t->clusters);
        t->weights = xcalloc(1, sizeof *t->weights);
        t->weights[0] = 1;
        t->total_weight = 1;
        if (tcp_cluster(cx, pt->cluster, "cluster", &t->clusters[0])) return -1;
    } else if (
        pt->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) {
        const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster *w =
            pt->weighted_clusters;
        t->nclusters = (uint32_t)w->n_clusters;
        t->clusters = xcalloc(w->n_clusters, sizeof *t->clusters);
        t->weights = xcalloc(w->n_clusters, sizeof *t->weights);
        for (size_t i = 0; i < w->n_clusters; i++) {
            char field[64];
            snprintf(field, sizeof field, "weighted_clusters.clusters[%zu]", i);
            if (w->clusters[i]->metadata_match)
                return fail(cx, field, "metadata_match is not supported");
            if (tcp_cluster(cx, w->clusters[i]->name, field, &t->clusters[i])) return -1;
            t->weights[i] = w->clusters[i]->weight;
            t->total_weight += w->clusters[i]->weight;
        }
        if (t->total_weight == 0) return fail(cx, "weighted_clusters", "weights sum to 0");
    } else {
        return fail(cx, "cluster", "cluster or weighted_clusters is required");
    }
    return compile_access_logs(cx, pt->access_log, pt->n_access_log, &t->logs, &t->log_index,
                               &t->nlogs);
}

static int compile_filters(struct cctx *cx, struct rs_filter_chain *fc,
                           const Envoy__Config__Listener__V3__FilterChain *pfc, uint16_t port)
{
    /* A chain that only matches TLS connections never matches (no TLS inspection yet): its
     * DownstreamTlsContext is validated, not refused. */
    bool tls;
    if (fc->m.tls) {
        if (rs_cfg_transport_is_tls(cx, pfc->transport_socket, "transport_socket", &tls)) return -1;
    } else if (pfc->transport_socket &&
               check_transport_socket(cx, pfc->transport_socket, "transport_socket")) {
        return -1;
    }
    for (size_t i = 0; i < pfc->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = pfc->filters[i];
        size_t old = path_push(cx, "filters[%zu]", i);
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
            return fail(cx, "typed_config", "is required (%s)", f->name);
        struct rs_filter_decision dec;
        rs_filter_decide(RS_FILTER_NETWORK, f->name, f->typed_config, false, &dec);
        if (dec.verdict == RS_FILTER_REFUSED)
            return fail(cx, "", "%s: %s", f->name ? f->name : "", dec.reason);
        if (dec.verdict == RS_FILTER_SKIPPED) {
            skip_record(cx, "", f->name, &dec);
            path_pop(cx, old);
            continue;
        }
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(f->typed_config, NULL, err, sizeof err);
        if (!m) return fail(cx, "typed_config", "%s", err);
        const ProtobufCMessageDescriptor *d = m->descriptor;
        bool terminal = fc->hcm || fc->tcp;
        int ret = 0;
        if (terminal) {
            ret = fail(cx, "", "no filter may follow the terminal filter");
        } else if (
            d ==
            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor) {
            size_t o2 = path_push(cx, "typed_config");
            ret = compile_hcm(cx, fc, (const void *)m, port);
            if (!ret) path_pop(cx, o2);
        } else if (d ==
                   &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor) {
            size_t o2 = path_push(cx, "typed_config");
            ret = compile_tcp(cx, fc, (const void *)m);
            if (!ret) path_pop(cx, o2);
        } else if (
            d ==
            &envoy__extensions__filters__network__connection_limit__v3__connection_limit__descriptor) {
            const Envoy__Extensions__Filters__Network__ConnectionLimit__V3__ConnectionLimit *cl =
                (const void *)m;
            if (cl->delay)
                ret = fail(cx, "typed_config.delay", "is not supported");
            else if (!cl->max_connections || cl->max_connections->value == 0)
                ret = fail(cx, "typed_config.max_connections", "must be at least 1");
            else {
                fc->max_cx = cl->max_connections->value;
                fc->active_cx = xcalloc(1, sizeof *fc->active_cx);
                fc->limited_connections = stat("connection_limit", cl->stat_prefix,
                                               "limited_connections", RS_STAT_COUNTER);
                fc->active_connections =
                    stat("connection_limit", cl->stat_prefix, "active_connections", RS_STAT_GAUGE);
            }
        } else {
            ret = fail(cx, "typed_config", "unsupported network filter %s (%s)", f->name, d->name);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (ret) return ret;
        path_pop(cx, old);
    }
    if (!fc->hcm && !fc->tcp)
        return fail(cx, "filters",
                    "a terminal filter (http_connection_manager or tcp_proxy) is required");
    return 0;
}

static int compile_chain(struct cctx *cx, struct rs_filter_chain *fc,
                         const Envoy__Config__Listener__V3__FilterChain *pfc, uint16_t port)
{
    fc->name = xstrdup(pfc->name);
    const Envoy__Config__Listener__V3__FilterChainMatch *m = pfc->filter_chain_match;
    if (m) {
        size_t old = path_push(cx, "filter_chain_match");
        if (rs_cfg_chain_match(cx, &fc->m, m)) return -1;
        path_pop(cx, old);
        fc->dst_port = m->destination_port ? m->destination_port->value : 0;
    }
    return compile_filters(cx, fc, pfc, port);
}

/* Listener filters, decided by the filter table: the TLS inspector classifies every connection
 * as raw_buffer, original_dst sets a flag the data path honours, the HTTP inspector is skipped
 * (application protocols are never detected). */
static int listener_filters(struct cctx *cx, struct rs_listener *l, const Listener *pl)
{
    for (size_t i = 0; i < pl->n_listener_filters; i++) {
        const Envoy__Config__Listener__V3__ListenerFilter *f = pl->listener_filters[i];
        char field[48];
        snprintf(field, sizeof field, "listener_filters[%zu]", i);
        if (f->filter_disabled)
            return fail(cx, field, "filter_disabled is not supported (%s)", f->name);
        struct rs_filter_decision d;
        rs_filter_decide(RS_FILTER_LISTENER, f->name, f->typed_config, false, &d);
        if (d.verdict == RS_FILTER_REFUSED) return fail(cx, field, "%s: %s", f->name, d.reason);
        if (d.verdict == RS_FILTER_SKIPPED) skip_record(cx, field, f->name, &d);
        if (d.id == RS_FID_ORIGINAL_DST) l->original_dst = true;
    }
    return 0;
}

/* FNV-1a of a message's wire form: equal definitions, equal hashes (how an update tells a
 * changed listener from an unchanged one). */
static uint64_t message_hash(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xcalloc(1, n + 1);
    protobuf_c_message_pack(m, buf);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    free(buf);
    return h;
}

int rs_cfg_listener(struct cctx *cx, struct rs_listener *l, const Listener *pl)
{
    const Envoy__Config__Core__V3__SocketAddress *sa;
    if (socket_address(cx, pl->address, "address", true, &sa)) return -1;
    rs_cfg_ip_port(sa->address, sa->port_value, &l->addr, &l->addrlen);
    rs_addr_str((struct sockaddr *)&l->addr, l->addr_str, sizeof l->addr_str);
    l->name = xstrdup(pl->name && pl->name[0] ? pl->name : l->addr_str);
    l->hash = message_hash(&pl->base);
    if (listener_filters(cx, l, pl)) return -1;
    /* Istio's virtualOutbound: hand each connection to the listener of its original
     * destination (data path: SO_ORIGINAL_DST at accept) */
    l->use_original_dst = pl->use_original_dst && pl->use_original_dst->value;
    if (pl->udp_listener_config || pl->api_listener)
        return fail(cx, "", "only TCP listeners are supported");
    if (pl->n_additional_addresses) return fail(cx, "additional_addresses", "is not supported");
    /* Fields that change what a listener does are refused until implemented; drain_type,
     * traffic_direction, metadata, stat_prefix and the accept-batching knobs are hints. */
    if (pl->n_socket_options) return fail(cx, "socket_options", "is not supported");
    if ((pl->transparent && pl->transparent->value) || (pl->freebind && pl->freebind->value))
        return fail(cx, "transparent", "transparent/freebind listeners come with traffic capture");
    /* Istio's outbound listeners (0.0.0.0_9080) do not bind: virtualOutbound hands them its
     * connections (use_original_dst) */
    l->bind_to_port = !pl->bind_to_port || pl->bind_to_port->value;
    if (pl->enable_reuse_port && !pl->enable_reuse_port->value)
        return fail(cx, "enable_reuse_port", "false is not supported: each worker owns its socket");
    if (pl->connection_balance_config)
        return fail(cx, "connection_balance_config", "is not supported");
    if (pl->enable_mptcp) return fail(cx, "enable_mptcp", "is not supported");
    if (pl->listener_specifier_case ==
        ENVOY__CONFIG__LISTENER__V3__LISTENER__LISTENER_SPECIFIER_INTERNAL_LISTENER)
        return fail(cx, "internal_listener", "is not supported");
    if (pl->n_access_log)
        return fail(cx, "access_log", "listener-level access logs are not supported yet");
    l->backlog = pl->tcp_backlog_size ? pl->tcp_backlog_size->value : 4096;
    l->tcp_fast_open = pl->tcp_fast_open_queue_length ? pl->tcp_fast_open_queue_length->value : 0;
    l->per_connection_buffer_limit = pl->per_connection_buffer_limit_bytes
                                         ? pl->per_connection_buffer_limit_bytes->value
                                         : 1024 * 1024;
    /* Envoy's listener stat scope: listener.<address with ':' as '_'> */
    char scope[96];
    const char *prefix = pl->stat_prefix && pl->stat_prefix[0] ? pl->stat_prefix : l->addr_str;
    snprintf(scope, sizeof scope, "%s", prefix);
    for (char *p = scope; *p; p++)
        if (*p == ':') *p = '_';
    l->st.downstream_cx_total = stat("listener", scope, "downstream_cx_total", RS_STAT_COUNTER);
    l->st.downstream_cx_active = stat("listener", scope, "downstream_cx_active", RS_STAT_GAUGE);
    l->st.downstream_cx_destroy = stat("listener", scope, "downstream_cx_destroy", RS_STAT_COUNTER);
    l->st.downstream_cx_overflow =
        stat("listener", scope, "downstream_cx_overflow", RS_STAT_COUNTER);
    l->st.no_filter_chain_match = stat("listener", scope, "no_filter_chain_match", RS_STAT_COUNTER);
    l->st.downstream_cx_length_ms =
        stat("listener", scope, "downstream_cx_length_ms", RS_STAT_HISTOGRAM);
    uint16_t port = (uint16_t)sa->port_value;
    l->nchains = (uint32_t)pl->n_filter_chains;
    l->chains = xcalloc(l->nchains + 1, sizeof *l->chains);
    for (uint32_t i = 0; i < l->nchains; i++) {
        size_t old = path_push(cx, "filter_chains[%u]", i);
        if (compile_chain(cx, &l->chains[i], pl->filter_chains[i], port)) return -1;
        path_pop(cx, old);
    }
    if (pl->default_filter_chain) {
        size_t old = path_push(cx, "default_filter_chain");
        if (compile_chain(cx, &l->chains[l->nchains], pl->default_filter_chain, port)) return -1;
        l->default_chain = &l->chains[l->nchains];
        path_pop(cx, old);
    }
    if (l->nchains == 0 && !l->default_chain)
        return fail(cx, "filter_chains", "at least one filter chain is required");
    if (pl->filter_chain_matcher && rs_cfg_fcm(cx, l, pl)) return -1;
    /* the routes an HCM takes from RDS are part of what the listener serves */
    for (uint32_t i = 0; i < l->nchains + (l->default_chain ? 1 : 0); i++) {
        const char *rds = l->chains[i].hcm ? l->chains[i].hcm->rds_name : NULL;
        for (size_t k = 0; rds && cx->in && k < cx->in->n[RS_XDS_RDS]; k++) {
            const struct rs_xds_resource *r = &cx->in->res[RS_XDS_RDS][k];
            if (strcmp(r->name, rds) != 0) continue;
            for (size_t b = 0; b < r->len; b++)
                l->hash = (l->hash ^ r->bytes[b]) * 0x100000001b3ull;
        }
    }
    return 0;
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static void free_logs_refs(struct rs_access_log **logs, uint32_t *idx)
{
    free(logs);
    free(idx);
}

static void free_chain(struct rs_filter_chain *fc)
{
    free(fc->name);
    rs_cfg_chain_match_free(&fc->m);
    free(fc->active_cx);
    if (fc->hcm) {
        if (fc->hcm->routes) rs_route_table_free(fc->hcm->routes);
        free(fc->hcm->stat_prefix);
        free(fc->hcm->rds_name);
        free(fc->hcm->server_name);
        free(fc->hcm->default_host_for_http_10);
        free_logs_refs(fc->hcm->logs, fc->hcm->log_index);
        free(fc->hcm);
    }
    if (fc->tcp) {
        free(fc->tcp->stat_prefix);
        free(fc->tcp->clusters);
        free(fc->tcp->weights);
        free_logs_refs(fc->tcp->logs, fc->tcp->log_index);
        free(fc->tcp);
    }
}

static void cluster_free(struct rs_cluster *c)
{
    for (uint32_t j = 0; j < c->ndns; j++) {
        free(c->dns[j].hostname);
        free(c->dns[j].eps);
    }
    free(c->dns);
    rs_hostset_unref(c->hosts);
    for (uint32_t w = 0; w < c->nwc; w++) rs_hostset_unref(c->wc[w].hosts);
    free(c->wc);
    if (c->name) pthread_mutex_destroy(&c->dns_lock);
    free(c->name);
    free(c->stat_name);
    for (uint32_t i = 0; i < c->n_ts_matches; i++) {
        struct rs_ts_match *t = &c->ts_matches[i];
        for (uint32_t k = 0; k < t->nkv; k++) {
            free(t->keys[k]);
            free(t->values[k]);
        }
        free(t->keys);
        free(t->values);
        free(t->name);
    }
    free(c->ts_matches);
    free(c->eds_name);
    free(c->cla_bytes);
    free(c->def);
    free(c);
}

void rs_cluster_ref(struct rs_cluster *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void rs_cluster_unref(struct rs_cluster *c)
{
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) cluster_free(c);
}

int rs_snapshot_set_workers(struct rs_snapshot *s, uint32_t nworkers)
{
    for (uint32_t i = 0; i < s->nclusters; i++) {
        struct rs_cluster *c = s->clusters[i];
        if (c->wc) continue;
        c->wc = aligned_alloc(64, nworkers * sizeof *c->wc);
        if (!c->wc) return -ENOMEM;
        memset(c->wc, 0, nworkers * sizeof *c->wc);
        c->nwc = nworkers;
    }
    for (uint32_t i = 0; i < s->nlogs; i++)
        if (rs_access_log_set_workers(s->logs[i], nworkers)) return -ENOMEM;
    return 0;
}

void rs_cfg_listener_free(struct rs_listener *l)
{
    rs_fcm_free(l->matcher);
    for (uint32_t j = 0; j < l->nchains + 1 && l->chains; j++) free_chain(&l->chains[j]);
    free(l->chains);
    free(l->name);
}

static void snapshot_free(struct rs_snapshot *s)
{
    for (uint32_t i = 0; i < s->nlisteners; i++) rs_cfg_listener_free(&s->listeners[i]);
    free(s->listeners);
    for (uint32_t i = 0; i < s->nclusters; i++) rs_cluster_unref(s->clusters[i]);
    free(s->clusters);
    for (uint32_t i = 0; i < s->nlogs; i++) rs_access_log_destroy(s->logs[i]);
    free(s->logs);
    free(s->node_id);
    free(s->node_cluster);
    free(s->admin_access_log_path);
    if (s->bootstrap && !s->bootstrap_borrowed)
        protobuf_c_message_free_unpacked(&s->bootstrap->base, NULL);
    rs_skipped_free(&s->skipped);
    if (s->xds && s->xds_release) s->xds_release(s->xds);
    free(s);
}

void rs_cfg_snapshot_free(struct rs_snapshot *s)
{
    snapshot_free(s);
}

void rs_snapshot_ref(struct rs_snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void rs_snapshot_unref(struct rs_snapshot *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) snapshot_free(s);
}

int rs_cfg_bootstrap_head(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    struct rs_snapshot *s = cx->snap;
    if (bs->node) {
        s->node_id = xstrdup(bs->node->id);
        s->node_cluster = xstrdup(bs->node->cluster);
    }
    if (bs->admin && bs->admin->address) {
        size_t old = path_push(cx, "admin");
        const Envoy__Config__Core__V3__SocketAddress *sa;
        if (socket_address(cx, bs->admin->address, "address", true, &sa)) return -1;
        rs_cfg_ip_port(sa->address, sa->port_value, &s->admin_addr, &s->admin_addrlen);
        s->has_admin = true;
        path_pop(cx, old);
    }
    return 0;
}

static int compile_bootstrap(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    struct rs_snapshot *s = cx->snap;
    if (rs_cfg_bootstrap_head(cx, bs)) return -1;
    if (bs->dynamic_resources && cx->serve)
        return fail(cx, "dynamic_resources",
                    "needs the ADS client: compile with rs_config_compile_xds");
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = bs->static_resources;
    if (!sr) return 0;
    if (sr->n_secrets && cx->serve)
        return fail(cx, "static_resources.secrets", "comes with the mutual-TLS work");
    s->nclusters = (uint32_t)sr->n_clusters;
    s->clusters = xcalloc(s->nclusters, sizeof *s->clusters);
    for (uint32_t i = 0; i < s->nclusters; i++) {
        struct rs_cluster *c = s->clusters[i] = xcalloc(1, sizeof *c);
        c->refs = 1;
        size_t old = path_push(cx, "static_resources.clusters[%u]", i);
        if (rs_cfg_cluster(cx, c, sr->clusters[i])) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(s->clusters[j]->name, c->name) == 0)
                return fail(cx, "name", "duplicate cluster name \"%s\"", c->name);
        path_pop(cx, old);
    }
    s->nlisteners = (uint32_t)sr->n_listeners;
    s->listeners = xcalloc(s->nlisteners, sizeof *s->listeners);
    for (uint32_t i = 0; i < s->nlisteners; i++) {
        s->listeners[i].index = i;
        size_t old = path_push(cx, "static_resources.listeners[%u]", i);
        if (rs_cfg_listener(cx, &s->listeners[i], sr->listeners[i])) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(s->listeners[j].name, s->listeners[i].name) == 0)
                return fail(cx, "name", "duplicate listener name \"%s\"", s->listeners[i].name);
        path_pop(cx, old);
    }
    return 0;
}

struct rs_snapshot *rs_config_compile(Envoy__Config__Bootstrap__V3__Bootstrap *bs, bool serve,
                                      char *err, size_t errlen)
{
    struct rs_snapshot *s = xcalloc(1, sizeof *s);
    s->refs = 1;
    s->bootstrap = bs;
    struct cctx cx = {.snap = s, .serve = serve, .err = err, .errlen = errlen};
    err[0] = '\0';
    if (compile_bootstrap(&cx, bs) != 0) {
        snapshot_free(s);
        return NULL;
    }
    return s;
}

/* ---- DNS ------------------------------------------------------------------------------------ */

/* Called on the resolver thread: merge this target's addresses with the cluster's other
 * targets' last results and publish a new host set. */
static void on_dns(void *ctx, const struct sockaddr_storage *addrs, size_t n, int error)
{
    struct rs_dns_slot *slot = ctx;
    struct rs_cluster *c = slot->cluster;
    struct rs_stats_shard *sh = rs_stats_shard(-1);
    rs_stat_inc(sh, c->st.update_attempt);
    if (error) {
        rs_stat_inc(sh, c->st.update_failure);
        rs_warn("cluster %s: DNS resolution of %s failed (%s); keeping %u previous addresses",
                c->name, slot->hostname, gai_strerror(error), slot->n);
        return;
    }
    rs_stat_inc(sh, c->st.update_success);
    pthread_mutex_lock(&c->dns_lock);
    struct rs_endpoint *eps = xcalloc(n, sizeof *eps);
    for (size_t i = 0; i < n; i++) {
        eps[i].addr = addrs[i];
        eps[i].addrlen = addrs[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in);
        eps[i].weight = slot->weight;
        eps[i].ts_match = -1;
        rs_addr_str((const struct sockaddr *)&addrs[i], eps[i].name, sizeof eps[i].name);
    }
    free(slot->eps);
    slot->eps = eps;
    slot->n = (uint32_t)n;
    uint32_t total = 0;
    for (uint32_t i = 0; i < c->ndns; i++) total += c->dns[i].n;
    struct rs_endpoint *all = xcalloc(total, sizeof *all);
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->ndns; i++)
        for (uint32_t j = 0; j < c->dns[i].n; j++) all[k++] = c->dns[i].eps[j];
    rs_cluster_set_hosts(c, rs_hostset_new(all, total));
    pthread_mutex_unlock(&c->dns_lock);
    free(all);
    rs_debug("cluster %s: %s resolved to %zu addresses", c->name, slot->hostname, n);
}

int rs_config_start_dns(struct rs_snapshot *s, struct rs_dns *dns)
{
    for (uint32_t i = 0; i < s->nclusters; i++) {
        struct rs_cluster *c = s->clusters[i];
        for (uint32_t j = 0; j < c->ndns; j++) {
            if (c->dns[j].id >= 0) continue; /* a cluster reused from an earlier snapshot */
            struct rs_dns_target t = {
                .hostname = c->dns[j].hostname,
                .port = c->dns[j].port,
                .family = (enum rs_dns_family)c->dns_family,
                .refresh_ms = c->dns_refresh_ms,
                .failure_refresh_ms = c->dns_failure_refresh_ms,
            };
            c->dns[j].id = rs_dns_add(dns, &t, on_dns, &c->dns[j]);
            if (c->dns[j].id < 0) return c->dns[j].id;
        }
    }
    return 0;
}
