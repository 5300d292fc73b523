/* Clusters: compiling Cluster resources (static, STRICT_DNS, EDS, ORIGINAL_DST; load balancing,
 * circuit breakers, outlier settings, transport sockets and their matches, protocol options,
 * upstream filters), their host sets with the weighted round-robin order and per-host counters,
 * the refcounted cluster objects snapshots share, and DNS resolution of STRICT_DNS clusters. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/un.h>

#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "sidecar/config_impl.h"
#include "sidecar/secrets.h"
#include "sidecar/tls.h"
#include "sidecar/dns.h"
#include "sidecar/log.h"
#include "xds/any.h"

/* Envoy still accepts deprecated cluster-level protocol options: reading them is deliberate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

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

/* A cluster's stats, in struct rs_cluster_stats: C counter, G gauge, H histogram. */
/* clang-format off */
#define CLUSTER_STATS(C, G, H)                                                                     \
    C(upstream_cx_total) G(upstream_cx_active) C(upstream_cx_connect_fail)                         \
    C(upstream_cx_connect_timeout) C(upstream_cx_destroy) C(upstream_cx_destroy_local)             \
    C(upstream_cx_destroy_remote) C(upstream_cx_rx_bytes_total) C(upstream_cx_tx_bytes_total)      \
    C(upstream_cx_none_healthy) C(upstream_cx_idle_timeout) C(upstream_cx_overflow)                \
    C(upstream_cx_protocol_error) C(upstream_rq_total) G(upstream_rq_active)                       \
    C(upstream_rq_completed) C(upstream_rq_1xx) C(upstream_rq_2xx) C(upstream_rq_3xx)              \
    C(upstream_rq_4xx) C(upstream_rq_5xx) C(upstream_rq_timeout) C(upstream_rq_pending_total)      \
    G(upstream_rq_pending_active) C(upstream_rq_pending_overflow) C(upstream_rq_rx_reset)          \
    C(upstream_rq_tx_reset) G(membership_total) G(membership_healthy) C(update_attempt)            \
    C(update_success) C(update_failure) C(lb_healthy_panic) H(upstream_cx_connect_ms)              \
    H(upstream_rq_time)
/* clang-format on */

#define SPEC_C(f) {#f, RS_STAT_COUNTER},
#define SPEC_G(f) {#f, RS_STAT_GAUGE},
#define SPEC_H(f) {#f, RS_STAT_HISTOGRAM},
#define OFF(f) offsetof(struct rs_cluster_stats, f),
static const struct rs_stat_spec cluster_specs[] = {CLUSTER_STATS(SPEC_C, SPEC_G, SPEC_H)};
static const size_t cluster_offs[] = {CLUSTER_STATS(OFF, OFF, OFF)};
#undef SPEC_C
#undef SPEC_G
#undef SPEC_H
#undef OFF
#define NSPECS (sizeof cluster_specs / sizeof cluster_specs[0])
_Static_assert(sizeof(struct rs_cluster_stats) == NSPECS * sizeof(rs_stat_id),
               "every field of rs_cluster_stats is in CLUSTER_STATS");

/* cluster.<name>.ssl.* of a cluster that may originate TLS (enum rs_tls_stat's order). */
static const struct rs_stat_spec cluster_ssl_specs[RS_TLS_NSTATS] = {
    {"ssl.handshake", RS_STAT_COUNTER},         {"ssl.session_reused", RS_STAT_COUNTER},
    {"ssl.connection_error", RS_STAT_COUNTER},  {"ssl.fail_verify_no_cert", RS_STAT_COUNTER},
    {"ssl.fail_verify_error", RS_STAT_COUNTER}, {"ssl.fail_verify_san", RS_STAT_COUNTER},
    {"ssl.handshake_timeout", RS_STAT_COUNTER},
};

static void cluster_stats(struct rs_cluster *c, const Cluster *pc)
{
    /* Envoy's alt_stat_name replaces the name in the cluster's stats */
    char prefix[512];
    snprintf(prefix, sizeof prefix, "cluster.%s", c->stat_name ? c->stat_name : c->name);
    rs_stat_id ids[NSPECS];
    rs_stats_register_block(prefix, cluster_specs, NSPECS, ids);
    for (size_t i = 0; i < NSPECS; i++)
        memcpy((char *)&c->st + cluster_offs[i], &ids[i], sizeof ids[i]);
    /* as Envoy, only a cluster with a transport socket has ssl.* stats */
    c->ssl_stats = pc->transport_socket || pc->n_transport_socket_matches;
    if (c->ssl_stats) rs_stats_register_block(prefix, cluster_ssl_specs, RS_TLS_NSTATS, c->ssl);
}

/* The transport_socket_matches entry an endpoint's envoy.transport_socket_match metadata
 * selects (Envoy: the first whose every key/value the metadata holds), or -1. Only string values
 * are compared (Istio's tlsMode). For EDS, STATIC and STRICT_DNS hosts alike: a static endpoint
 * with tlsMode istio must not fall through to the plaintext entry. */
int rs_cfg_ts_match(const struct rs_cluster *c, const Envoy__Config__Core__V3__Metadata *md)
{
    const Google__Protobuf__Struct *st = NULL;
    for (size_t i = 0; md && i < md->n_filter_metadata; i++)
        if (strcmp(md->filter_metadata[i]->key, "envoy.transport_socket_match") == 0)
            st = md->filter_metadata[i]->value;
    for (uint32_t m = 0; m < c->n_ts_matches; m++) {
        const struct rs_ts_match *t = &c->ts_matches[m];
        uint32_t hit = 0;
        for (uint32_t k = 0; k < t->nkv; k++)
            for (size_t f = 0; st && f < st->n_fields; f++) {
                const Google__Protobuf__Value *v = st->fields[f]->value;
                if (strcmp(st->fields[f]->key, t->keys[k]) == 0 && v &&
                    v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE &&
                    strcmp(v->string_value, t->values[k]) == 0) {
                    hit++;
                    break;
                }
            }
        if (hit == t->nkv) return (int)m;
    }
    return -1;
}

static int8_t ts_match_of(const struct rs_cluster *c, const Envoy__Config__Core__V3__Metadata *md)
{
    int m = rs_cfg_ts_match(c, md);
    return (int8_t)(m > 127 ? 127 : m);
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
            if (rs_cfg_socket_address(cx, lbe->endpoint->address, field,
                                      c->type == RS_CLUSTER_STATIC, &sa)) {
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
                                                         .ts_match = ts_match_of(c, lbe->metadata),
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
            e->ts_match = ts_match_of(c, lbe->metadata);
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

/* The client contexts of a cluster's transport_socket and of each transport_socket_matches
 * entry, with the secrets they name substituted. */
int rs_cfg_cluster_tls(struct cctx *cx, const Cluster *pc, struct rs_cluster_tls *t)
{
    bool tls;
    t->n = (uint32_t)pc->n_transport_socket_matches;
    t->match = xcalloc(t->n, sizeof *t->match);
    if (rs_cfg_transport_client(cx, pc->transport_socket, "transport_socket", &tls, &t->ctx, &t->r))
        return -1;
    for (uint32_t i = 0; i < t->n; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *m =
            pc->transport_socket_matches[i];
        size_t old = path_push(cx, "transport_socket_matches[%u]", i);
        if (!m->transport_socket) return fail(cx, "transport_socket", "is required");
        if (rs_cfg_transport_client(cx, m->transport_socket, "transport_socket", &tls, &t->match[i],
                                    &t->r))
            return -1;
        path_pop(cx, old);
    }
    return 0;
}

void rs_cfg_cluster_tls_drop(struct rs_cluster_tls *t)
{
    rs_tls_ctx_unref(t->ctx);
    for (uint32_t i = 0; i < t->n; i++) rs_tls_ctx_unref(t->match[i]);
    free(t->match);
    memset(t, 0, sizeof *t);
}

/* transport_socket and transport_socket_matches (Istio: tlsMode-istio → TLS, tlsMode-disabled
 * → raw_buffer), chosen per host by rs_cluster_host_tls. A context whose SDS secrets have not
 * arrived sets cx->warming: the cluster is compiled but not served until they do (Envoy's SDS
 * init target). */
static int cluster_transport(struct cctx *cx, struct rs_cluster *c, const Cluster *pc)
{
    struct rs_cluster_tls t = {0};
    if (rs_cfg_cluster_tls(cx, pc, &t)) {
        rs_cfg_cluster_tls_drop(&t);
        return -1;
    }
    if (t.r.pending) cx->warming = true;
    c->tls_fp = t.r.fp;
    rs_cfg_transport_is_tls(cx, pc->transport_socket, "transport_socket", &c->tls);
    c->tls_ctx = t.ctx;
    c->n_ts_matches = t.n;
    c->ts_matches = xcalloc(c->n_ts_matches, sizeof *c->ts_matches);
    for (uint32_t i = 0; i < c->n_ts_matches; i++) c->ts_matches[i].tls_ctx = t.match[i];
    free(t.match);
    for (uint32_t i = 0; i < c->n_ts_matches; i++) {
        const Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *m =
            pc->transport_socket_matches[i];
        struct rs_ts_match *tm = &c->ts_matches[i];
        size_t old = path_push(cx, "transport_socket_matches[%u]", i);
        tm->name = xstrdup(m->name);
        rs_cfg_transport_is_tls(cx, m->transport_socket, "transport_socket", &tm->tls);
        size_t n = m->match ? m->match->n_fields : 0;
        tm->keys = xcalloc(n, sizeof *tm->keys);
        tm->values = xcalloc(n, sizeof *tm->values);
        for (size_t k = 0; k < n; k++) {
            const Google__Protobuf__Value *v = m->match->fields[k]->value;
            if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
                return fail(cx, "match", "value of \"%s\" must be a string",
                            m->match->fields[k]->key);
            tm->keys[k] = xstrdup(m->match->fields[k]->key);
            tm->values[k] = xstrdup(v->string_value);
            tm->nkv++;
        }
        path_pop(cx, old);
    }
    return 0;
}

/* Swapping in place (a reused cluster whose secrets or certificate files rotated): workers read
 * the pointers with rs_cluster_host_tls and take their own reference in rs_tls_attach within the
 * same batch, so an old context may only be released after every worker has finished the batches
 * that could have read it. It is retired (rs_secrets_retire), and the control thread releases it
 * once every worker runs on the publication that follows the swap (rs_secrets_reap). Connections
 * already established keep the reference they took. */
void rs_cfg_cluster_tls_swap(struct rs_cluster *c, struct rs_cluster_tls *t)
{
    rs_secrets_retire(__atomic_exchange_n(&c->tls_ctx, t->ctx, __ATOMIC_ACQ_REL));
    for (uint32_t i = 0; i < c->n_ts_matches && i < t->n; i++)
        rs_secrets_retire(
            __atomic_exchange_n(&c->ts_matches[i].tls_ctx, t->match[i], __ATOMIC_ACQ_REL));
    c->tls_fp = t->r.fp;
    free(t->match);
    memset(t, 0, sizeof *t);
}

struct rs_tls_ctx *rs_cluster_host_tls(const struct rs_cluster *c, const struct rs_endpoint *ep)
{
    /* acquire: a context swapped in by rs_cfg_cluster_tls_swap is seen fully built */
    if (ep && ep->ts_match >= 0 && (uint32_t)ep->ts_match < c->n_ts_matches)
        return __atomic_load_n(&c->ts_matches[ep->ts_match].tls_ctx, __ATOMIC_ACQUIRE);
    /* no host (original destinations) or no metadata matched: an entry with an empty
     * match, else the cluster's transport socket */
    for (uint32_t i = 0; i < c->n_ts_matches; i++)
        if (c->ts_matches[i].nkv == 0)
            return __atomic_load_n(&c->ts_matches[i].tls_ctx, __ATOMIC_ACQUIRE);
    return __atomic_load_n(&c->tls_ctx, __ATOMIC_ACQUIRE);
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
    cluster_stats(c, pc);
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
    /* before the endpoints: a static host picks its transport_socket_matches entry */
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

static uint32_t name_hash(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

/* Open addressing, linear probing, at most half full: a mesh's thousands of clusters are looked
 * up by name once per route target while compiling. */
static uint32_t *slot_of(const struct rs_snapshot *s, const char *name)
{
    uint32_t mask = s->cluster_slots_cap - 1;
    for (uint32_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t *slot = &s->cluster_slots[i];
        if (!*slot || strcmp(s->clusters[*slot - 1]->name, name) == 0) return slot;
    }
}

int rs_config_cluster_index(const struct rs_snapshot *s, const char *name)
{
    if (!s->cluster_slots) { /* snapshots not built with rs_snapshot_add_cluster (tests) */
        for (uint32_t i = 0; i < s->nclusters; i++)
            if (s->clusters[i] && s->clusters[i]->name && strcmp(s->clusters[i]->name, name) == 0)
                return (int)i;
        return -1;
    }
    uint32_t v = *slot_of(s, name);
    return v ? (int)v - 1 : -1;
}

int rs_snapshot_add_cluster(struct rs_snapshot *s, struct rs_cluster *c)
{
    if ((s->nclusters + 1) * 2 > s->cluster_slots_cap) {
        uint32_t cap = s->cluster_slots_cap ? s->cluster_slots_cap * 2 : 64;
        while ((s->nclusters + 1) * 2 > cap) cap *= 2;
        free(s->cluster_slots);
        s->cluster_slots = calloc(cap, sizeof *s->cluster_slots);
        if (!s->cluster_slots) abort(); /* as xcalloc */
        s->cluster_slots_cap = cap;
        for (uint32_t i = 0; i < s->nclusters; i++) *slot_of(s, s->clusters[i]->name) = i + 1;
    }
    uint32_t *slot = slot_of(s, c->name ? c->name : "");
    if (*slot) return -1;
    s->clusters[s->nclusters++] = c;
    *slot = s->nclusters;
    return 0;
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
        rs_tls_ctx_unref(t->tls_ctx);
    }
    free(c->ts_matches);
    rs_tls_ctx_unref(c->tls_ctx);
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
        eps[i].ts_match = slot->ts_match;
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

int rs_config_update_dns(const struct rs_snapshot *prev, struct rs_snapshot *next,
                         struct rs_dns *dns)
{
    for (uint32_t i = 0; prev && i < prev->nclusters; i++) {
        struct rs_cluster *c = prev->clusters[i];
        bool kept = false;
        for (uint32_t k = 0; k < next->nclusters && !kept; k++) kept = next->clusters[k] == c;
        if (kept) continue;
        /* the resolver holds no reference: stop it before the cluster can be freed */
        for (uint32_t j = 0; j < c->ndns; j++)
            if (c->dns[j].id >= 0) {
                rs_dns_remove(dns, c->dns[j].id);
                c->dns[j].id = -1;
            }
    }
    return rs_config_start_dns(next, dns);
}
