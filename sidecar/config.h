/* The data plane's configuration: an immutable snapshot compiled from the Envoy v3 bootstrap
 * (static_resources today; xDS resources later), read by every worker without locks.
 *
 * A snapshot owns its clusters, listeners, filter chains and route tables. Workers hold a
 * reference while anything of theirs points into it; the last reference frees it. Cluster host
 * sets change independently (DNS re-resolution) and are published with an atomic pointer swap. */
#ifndef RS_CONFIG_H
#define RS_CONFIG_H

#include <netinet/in.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sidecar/filters.h"
#include "sidecar/path.h"
#include "sidecar/stats.h"

struct rs_route_table;
struct rs_access_log;
struct rs_upstream;     /* a pooled upstream HTTP connection (hcm.c) */
struct rs_tls_ctx;      /* sidecar/tls.h */
#define RS_TLS_NSTATS 7 /* enum rs_tls_stat's RS_TLS_STAT_COUNT (checked in tls_ctx.c) */
struct rs_dns;
struct rs_rbac_stage; /* sidecar/rbac.h */
struct Envoy__Config__Bootstrap__V3__Bootstrap;

struct rs_dns_slot {
    struct rs_cluster *cluster;
    char *hostname;
    uint16_t port;
    uint32_t weight;
    int8_t ts_match;         /* the transport_socket_matches entry its metadata selects, or -1 */
    int id;                  /* resolver target id */
    struct rs_endpoint *eps; /* last good result (under cluster->dns_lock) */
    uint32_t n;
};

struct rs_endpoint {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t weight;
    /* EDS: the cluster's transport_socket_matches entry the host's
     * envoy.transport_socket_match metadata selects; -1 = the cluster's transport_socket */
    int8_t ts_match;
    char name[64]; /* "ip:port", as Envoy prints hosts */
};

/* Per-host counters Envoy shows on /clusters, in its (sorted) order. */
enum rs_host_stat {
    RS_HS_CX_ACTIVE,
    RS_HS_CX_CONNECT_FAIL,
    RS_HS_CX_TOTAL,
    RS_HS_RQ_ACTIVE,
    RS_HS_RQ_ERROR,
    RS_HS_RQ_SUCCESS,
    RS_HS_RQ_TIMEOUT,
    RS_HS_RQ_TOTAL,
    RS_HS_COUNT
};

/* The endpoints of a cluster at one moment, with a precomputed weighted round-robin order and
 * per-host counters in one slice per stats shard (each worker writes only its own). */
struct rs_hostset {
    uint32_t refs; /* atomic */
    uint32_t n;
    struct rs_endpoint *eps;
    uint32_t *order; /* smooth weighted round-robin schedule of endpoint indexes */
    uint32_t order_len;
    uint32_t nshards;
    uint64_t *hstats; /* [shard][host][RS_HS_COUNT] */
};

/* A referenced host of a host set: what an upstream connection holds. */
struct rs_host_ref {
    struct rs_hostset *hs;
    uint32_t idx;
};

static inline void rs_host_stat_add(const struct rs_host_ref *r, int shard, enum rs_host_stat s,
                                    int64_t d)
{
    if (!r->hs) return;
    uint64_t *v = &r->hs->hstats[((size_t)shard * r->hs->n + r->idx) * RS_HS_COUNT + s];
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + (uint64_t)d, __ATOMIC_RELAXED);
}
/* A host's counter summed over shards (admin). */
uint64_t rs_host_stat_value(const struct rs_hostset *h, uint32_t idx, enum rs_host_stat s);
void rs_host_ref_take(struct rs_host_ref *dst, struct rs_hostset *hs, uint32_t idx);
void rs_host_ref_release(struct rs_host_ref *r);

enum rs_cluster_type {
    RS_CLUSTER_STATIC,
    RS_CLUSTER_STRICT_DNS,
    RS_CLUSTER_EDS,          /* host sets from ClusterLoadAssignments (rs_config_apply_eds) */
    RS_CLUSTER_ORIGINAL_DST, /* no host set: connect to the downstream's original destination */
};

/* Cluster.lb_policy. Compiled; the workers pick with weighted round robin for all three so far
 * (LEAST_REQUEST and RANDOM are carried for the load-balancer work). */
enum rs_lb_policy { RS_LB_ROUND_ROBIN, RS_LB_LEAST_REQUEST, RS_LB_RANDOM, RS_LB_CLUSTER_PROVIDED };

/* Cluster.outlier_detection, carried for the resilience work (not enforced yet). Envoy's
 * defaults where unset. */
struct rs_outlier_cfg {
    bool configured;
    uint32_t consecutive_5xx, consecutive_gateway_failure, consecutive_local_origin_failure;
    uint32_t interval_ms, base_ejection_time_ms, max_ejection_time_ms;
    uint32_t max_ejection_percent;
    uint32_t enforcing_consecutive_5xx, enforcing_consecutive_gateway_failure,
        enforcing_success_rate;
    bool split_external_local_origin_errors;
};

/* One Cluster.transport_socket_matches entry: an endpoint whose envoy.transport_socket_match
 * metadata holds every key/value of `match` uses this transport socket (an empty match takes
 * every endpoint). Only string values are compared (Istio's tlsMode). */
struct rs_ts_match {
    char *name;
    char **keys, **values;
    uint32_t nkv;
    bool tls; /* TLS transport socket */
    /* its client context (UpstreamTlsContext), or NULL; atomic: swapped in place when its
     * secrets or certificate files rotate (read with rs_cluster_host_tls) */
    struct rs_tls_ctx *tls_ctx;
};

/* A cluster as one worker sees it: its cached host set and its idle upstream connections. Only
 * that worker touches it, so each sits on its own cache lines. */
struct rs_worker_cluster {
    struct rs_hostset *hosts; /* cached reference, refreshed when the cluster's set changes */
    uint32_t cursor;          /* weighted round-robin position */
    uint32_t nidle;
    struct rs_upstream *idle; /* idle keep-alive connections, most recently used first */
} __attribute__((aligned(64)));

struct rs_cluster_stats {
    rs_stat_id upstream_cx_total, upstream_cx_active, upstream_cx_connect_fail,
        upstream_cx_connect_timeout, upstream_cx_destroy, upstream_cx_destroy_local,
        upstream_cx_destroy_remote, upstream_cx_rx_bytes_total, upstream_cx_tx_bytes_total,
        upstream_cx_none_healthy, upstream_cx_idle_timeout, upstream_cx_overflow,
        upstream_cx_protocol_error;
    rs_stat_id upstream_rq_total, upstream_rq_active, upstream_rq_completed, upstream_rq_1xx,
        upstream_rq_2xx, upstream_rq_3xx, upstream_rq_4xx, upstream_rq_5xx, upstream_rq_timeout,
        upstream_rq_pending_total, upstream_rq_pending_active, upstream_rq_pending_overflow,
        upstream_rq_rx_reset, upstream_rq_tx_reset;
    rs_stat_id membership_total, membership_healthy, update_attempt, update_success, update_failure,
        lb_healthy_panic;
    rs_stat_id upstream_cx_connect_ms, upstream_rq_time; /* histograms */
};

/* A cluster is its own refcounted object, so successive snapshots share it while its definition
 * is unchanged: its host set, connection pools and circuit-breaker gauges carry over. Snapshots,
 * upstream connections and in-flight requests hold references. */
struct rs_cluster {
    uint32_t refs; /* atomic */
    bool removed;  /* atomic: no longer in the published snapshot; pools stop keeping connections */
    char *name;
    char *stat_name;              /* alt_stat_name, or NULL */
    struct rs_worker_cluster *wc; /* [nwc], one per worker, set when a server adopts it */
    uint32_t nwc;
    enum rs_cluster_type type;
    uint32_t connect_timeout_ms;
    uint32_t idle_timeout_ms;     /* pooled upstream connection idle timeout */
    uint32_t max_requests_per_cx; /* 0 = unlimited */
    uint32_t max_connections, max_pending_requests, max_requests; /* circuit breakers */
    uint32_t per_connection_buffer_limit;
    struct rs_hostset *hosts; /* atomic: read with rs_cluster_hosts() */
    struct rs_cluster_stats st;
    /* cluster.<name>.ssl.* (enum rs_tls_stat), registered when ssl_stats: counted by its
     * upstream TLS connections (rs_tls_opts.stats) */
    bool ssl_stats;
    rs_stat_id ssl[RS_TLS_NSTATS];
    int64_t active_cx, pending_rq, active_rq; /* circuit-breaker gauges, atomic */
    /* STRICT_DNS: one resolver target per configured endpoint; results merged into `hosts` */
    struct rs_dns_slot *dns;
    uint32_t ndns;
    int dns_family; /* enum rs_dns_family */
    uint32_t dns_refresh_ms, dns_failure_refresh_ms;
    pthread_mutex_t dns_lock;
    bool outlier_configured;
    struct rs_outlier_cfg outlier;
    enum rs_lb_policy lb_policy;
    struct rs_ts_match *ts_matches;
    uint32_t n_ts_matches;
    bool tls;                   /* its transport_socket is TLS */
    struct rs_tls_ctx *tls_ctx; /* that transport socket's client context, or NULL; atomic */
    /* Fingerprint of the secrets and certificate-file generation its contexts were built from:
     * a reused cluster whose fingerprint changed gets new contexts swapped in place. */
    uint64_t tls_fp;
    bool control_plane; /* a static cluster of the control-plane clients (xds-grpc, sds-grpc) */
    /* upstream_bind_config.source_address (Istio's inbound passthrough: 127.0.0.6): the data path
     * binds upstream sockets to it before connecting; addrlen 0 = none */
    struct sockaddr_storage bind_addr;
    socklen_t bind_addrlen;
    /* EDS: the ClusterLoadAssignment's name (eds_cluster_config.service_name, else the cluster
     * name) and the serialized assignment its host set was built from (an unchanged assignment is
     * not rebuilt). */
    char *eds_name;
    uint8_t *cla_bytes;
    size_t cla_len;
    bool cla_seen;
    /* The serialized Cluster it was compiled from: a later compile reuses this object (pools,
     * host sets, gauges) when the definition is byte-identical. */
    uint8_t *def;
    size_t def_len;
};

/* HTTP connection manager settings (envoy.filters.network.http_connection_manager). */
struct rs_hcm_stats {
    rs_stat_id downstream_cx_total, downstream_cx_active, downstream_cx_http1_total,
        downstream_cx_destroy, downstream_cx_destroy_remote, downstream_cx_destroy_local,
        downstream_cx_protocol_error, downstream_cx_idle_timeout, downstream_cx_rx_bytes_total,
        downstream_cx_tx_bytes_total, downstream_cx_drain_close, downstream_cx_max_duration_reached;
    rs_stat_id downstream_rq_total, downstream_rq_http1_total, downstream_rq_active,
        downstream_rq_1xx, downstream_rq_2xx, downstream_rq_3xx, downstream_rq_4xx,
        downstream_rq_5xx, downstream_rq_completed, downstream_rq_timeout,
        downstream_rq_header_timeout, downstream_rq_too_large, downstream_rq_idle_timeout,
        downstream_rq_rx_reset, downstream_rq_tx_reset, downstream_rq_non_relative_path,
        rq_direct_response, rq_total, no_route, no_cluster, rq_header_too_large;
    rs_stat_id downstream_rq_time, downstream_cx_length_ms; /* histograms */
};

#define RS_HCM_LOG_HDRS_MAX 16 /* distinct request headers an HCM's access logs may name */

struct rs_hcm_cfg {
    char *stat_prefix;
    struct rs_route_table *routes;
    char *rds_name; /* rds.route_config_name, or NULL for an inline route_config */
    uint32_t max_request_headers_kb, max_headers_count;
    uint64_t max_request_bytes; /* envoy.filters.http.buffer max_request_bytes; 0 = none */
    uint32_t request_headers_timeout_ms, request_timeout_ms, stream_idle_timeout_ms,
        idle_timeout_ms, drain_timeout_ms, max_connection_duration_ms;
    uint32_t xff_num_trusted_hops;
    bool accept_http_10, always_set_request_id_in_response;
    char *default_host_for_http_10;
    bool use_remote_address, skip_xff_append, generate_request_id, preserve_external_request_id,
        strip_any_host_port;
    struct rs_path_opts path; /* normalize_path, merge_slashes, path_with_escaped_slashes_action */
    char *server_name;
    bool server_header_pass_through; /* server_header_transformation PASS_THROUGH */
    struct rs_access_log **logs;
    uint32_t *log_index;
    uint32_t nlogs;
    /* request headers the logs name beyond those a stream keeps anyway (hcm.c): kept per
     * stream for %REQ(X)%; pointers into the logs' formats */
    const char *log_hdrs[RS_HCM_LOG_HDRS_MAX];
    uint32_t nlog_hdrs;
    struct rs_hcm_stats st;
    /* envoy.filters.http.rbac filters, in http_filters order, run after the route match */
    struct rs_rbac_stage *rbac;
    uint32_t nrbac;
    /* x-forwarded-client-cert: forward_client_cert_details (enum rs_xfcc_mode) and
     * set_current_client_cert_details (RS_XFCC_* bits) */
    uint8_t xfcc_mode, xfcc_set;
    /* istio.alpn: what upstream TLS connections offer as ALPN (its HTTP11 entry), or none */
    char **upstream_alpn;
    uint32_t n_upstream_alpn;
    uint64_t upstream_alpn_hash; /* of the names (pooled connections are matched on it); 0: none */
};

enum rs_xfcc_mode {
    RS_XFCC_SANITIZE, /* Envoy's default: the header is removed */
    RS_XFCC_FORWARD_ONLY,
    RS_XFCC_APPEND_FORWARD,
    RS_XFCC_SANITIZE_SET,
    RS_XFCC_ALWAYS_FORWARD_ONLY,
};
enum {
    RS_XFCC_SUBJECT = 1,
    RS_XFCC_URI = 2,
    RS_XFCC_DNS = 4,
    RS_XFCC_CERT = 8,
    RS_XFCC_CHAIN = 16,
};

/* TCP proxy settings (envoy.filters.network.tcp_proxy). */
struct rs_tcp_stats {
    rs_stat_id downstream_cx_total, downstream_cx_no_route, downstream_cx_rx_bytes_total,
        downstream_cx_tx_bytes_total, idle_timeout, upstream_flush_total,
        max_downstream_connection_duration;
};

#define RS_CLUSTER_NONE UINT32_MAX /* xDS: a tcp_proxy cluster not in the snapshot (no route) */

struct rs_tcp_cfg {
    char *stat_prefix;
    uint32_t *clusters, *weights; /* cluster indexes (or RS_CLUSTER_NONE); weights */
    uint32_t nclusters;
    uint64_t total_weight;
    uint32_t idle_timeout_ms; /* default 1 h; 0 = none */
    uint32_t max_connect_attempts;
    struct rs_access_log **logs;
    uint32_t *log_index;
    uint32_t nlogs;
    struct rs_tcp_stats st;
};

struct rs_cidr {
    struct sockaddr_storage addr; /* family and address (port unused) */
    uint32_t len;                 /* prefix length */
};

/* FilterChainMatch, decided at accept time (see rs_listener_pick_chain). */
struct rs_chain_match {
    struct rs_cidr *dst, *src, *direct_src; /* prefix_ranges, source_prefix_ranges, ... */
    uint32_t ndst, nsrc, ndirect_src;
    uint32_t *src_ports;
    uint32_t nsrc_ports;
    uint8_t source_type; /* 0 ANY, 1 SAME_IP_OR_LOOPBACK, 2 EXTERNAL */
    char **server_names; /* exact ("a.b") or wildcard ("*.b"); only TLS connections have one */
    uint32_t nserver_names;
    char **app_protocols; /* ALPN (TLS) or what the HTTP inspector detected */
    uint32_t napp_protocols;
    bool tls;        /* transport_protocol "tls" */
    bool raw_buffer; /* transport_protocol "raw_buffer" */
};

/* What the listener filters (TLS and HTTP inspectors) learned of a connection before a chain is
 * picked. Without inspection: raw_buffer, no server name, no application protocols. */
struct rs_conn_meta {
    bool tls;
    const char *server_name; /* NULL: none */
    const char *const *app_protocols;
    uint32_t napp_protocols;
};

struct rs_filter_chain {
    char *name;
    uint32_t dst_port; /* filter_chain_match.destination_port; 0 = any */
    struct rs_chain_match m;
    int64_t *active_cx; /* connection_limit filter: shared counter (atomic), or NULL */
    uint64_t max_cx;
    rs_stat_id limited_connections, active_connections;
    struct rs_hcm_cfg *hcm;
    struct rs_tcp_cfg *tcp;
    /* envoy.filters.network.rbac filters, in order: evaluated once per connection when the peer
     * is known (at accept for plaintext, at the end of the TLS handshake) */
    struct rs_rbac_stage *rbac;
    uint32_t nrbac;
    /* transport_socket DownstreamTlsContext: connections are TLS, terminated with this server
     * context (NULL: plaintext) within transport_socket_connect_timeout (0: no limit) */
    struct rs_tls_ctx *tls_ctx;
    uint32_t handshake_timeout_ms;
};

struct rs_listener_stats {
    rs_stat_id downstream_cx_total, downstream_cx_active, downstream_cx_destroy,
        downstream_cx_overflow, no_filter_chain_match, downstream_cx_length_ms,
        downstream_pre_cx_active, downstream_pre_cx_timeout;
    rs_stat_id ssl[RS_TLS_NSTATS]; /* listener.<scope>.ssl.* (enum rs_tls_stat) */
};

struct rs_fcm; /* compiled filter_chain_matcher (chain_match.c) */

struct rs_listener {
    char *name;
    struct rs_access_log **logs; /* listener-level access logs */
    uint32_t *log_index;
    uint32_t nlogs;
    bool bind_to_port;     /* false: reached only through a use_original_dst listener */
    bool use_original_dst; /* hand connections to the listener of their original destination */
    bool original_dst; /* envoy.filters.listener.original_dst: local address = SO_ORIGINAL_DST */
    /* envoy.filters.listener.tls_inspector / http_inspector: the first bytes are read before a
     * chain is picked, for at most inspect_timeout_ms (listener_filters_timeout; 0: no limit),
     * then the connection closes unless continue_on_listener_filters_timeout */
    bool tls_inspector, http_inspector, inspect_continue;
    uint32_t inspect_timeout_ms;
    struct rs_fcm *matcher; /* filter_chain_matcher, or NULL (filter_chain_match decides) */
    uint64_t hash; /* of its definition: an update keeps connections of an unchanged listener */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char addr_str[64];
    uint32_t per_connection_buffer_limit; /* default 1 MiB */
    uint32_t backlog, tcp_fast_open;      /* tcp_backlog_size, tcp_fast_open_queue_length */
    struct rs_filter_chain *chains;
    uint32_t nchains;
    struct rs_filter_chain *default_chain;
    struct rs_listener_stats st;
    uint32_t index;
};

struct rs_snapshot {
    uint32_t refs; /* atomic */
    struct rs_cluster **clusters;
    uint32_t
        *cluster_slots; /* name hash index: cluster index + 1, 0 empty (rs_snapshot_add_cluster) */
    uint32_t cluster_slots_cap;
    uint32_t nclusters;
    struct rs_listener *listeners;
    uint32_t nlisteners;
    struct rs_access_log **logs; /* every access log of the snapshot; workers index buffers */
    uint32_t nlogs, logs_cap;
    struct Envoy__Config__Bootstrap__V3__Bootstrap *bootstrap; /* for /config_dump */
    char *node_id, *node_cluster;
    struct sockaddr_storage admin_addr;
    socklen_t admin_addrlen;
    bool has_admin;
    char *admin_access_log_path;
    uint64_t version;
    bool bootstrap_borrowed;        /* xDS snapshots share the caller's bootstrap */
    struct rs_skipped_list skipped; /* filters accepted but not run, for /config_dump */
    /* xDS: the input this snapshot was compiled from, for /config_dump and the mTLS work (secrets);
     * NULL for a static bootstrap. Owned: released with `xds_release(xds)`. */
    void *xds;
    void (*xds_release)(void *xds);
    /* The states of the separate SDS servers (xds/ads.h's struct xds_state, one per server) whose
     * secrets it was compiled with, for /config_dump; each released with sds_release. */
    void **sds_states;
    uint32_t n_sds_states;
    void (*sds_release)(void *state);
};

/* Compiles a bootstrap. On error returns NULL and writes "field.path: reason" to err. The
 * bootstrap's ownership passes to the snapshot (success or not). `serve` also rejects what can be
 * validated but not yet served (e.g. TLS transport sockets). */
struct rs_snapshot *rs_config_compile(struct Envoy__Config__Bootstrap__V3__Bootstrap *bs,
                                      bool serve, char *err, size_t errlen);

void rs_snapshot_ref(struct rs_snapshot *s);
void rs_snapshot_unref(struct rs_snapshot *s);

int rs_config_cluster_index(const struct rs_snapshot *s, const char *name);
/* Appends a cluster (clusters[] must have room) and indexes its name. -1 (nothing added) when a
 * cluster of that name is already there. */
int rs_snapshot_add_cluster(struct rs_snapshot *s, struct rs_cluster *c);

void rs_cluster_ref(struct rs_cluster *c);
void rs_cluster_unref(struct rs_cluster *c);
/* Gives every cluster of the snapshot its per-worker state (once per cluster object). */
int rs_snapshot_set_workers(struct rs_snapshot *s, uint32_t nworkers);

/* Starts DNS resolution of the snapshot's STRICT_DNS clusters on resolver thread `dns` (clusters
 * reused from an earlier snapshot keep the resolution they have). */
int rs_config_start_dns(struct rs_snapshot *s, struct rs_dns *dns);

/* When `next` replaces `prev` (xDS update): stops the resolution of prev's STRICT_DNS clusters
 * that next does not hold (the resolver keeps no cluster reference, so this must happen before
 * prev is released) and starts next's new ones. */
int rs_config_update_dns(const struct rs_snapshot *prev, struct rs_snapshot *next,
                         struct rs_dns *dns);

/* The current host set of a cluster, referenced: release with rs_hostset_unref. */
struct rs_hostset *rs_cluster_hosts(struct rs_cluster *c);
void rs_hostset_unref(struct rs_hostset *h);

/* The TLS client context a connection to host ep of cluster c uses (transport_socket_matches on
 * the host's metadata, else the cluster's transport_socket), or NULL for plaintext. Borrowed: a
 * rotation may swap it out, and it stays valid only until the calling worker's batch ends, so
 * take the reference (rs_tls_attach does) in the same callback. */
struct rs_tls_ctx *rs_cluster_host_tls(const struct rs_cluster *c, const struct rs_endpoint *ep);

/* Builds a host set with its weighted round-robin order (weights default to 1). */
struct rs_hostset *rs_hostset_new(const struct rs_endpoint *eps, uint32_t n);
/* Replaces a cluster's host set (any thread); the old one is freed with its last reference. */
void rs_cluster_set_hosts(struct rs_cluster *c, struct rs_hostset *h);

/* ---- xDS ------------------------------------------------------------------------------------ */

/* Resource types, in xds/ads.h's order (enum xds_type). */
enum rs_xds_type { RS_XDS_CDS, RS_XDS_EDS, RS_XDS_LDS, RS_XDS_RDS, RS_XDS_SDS, RS_XDS_NTYPES };

/* Warming status of an EDS/RDS name (xds/ads.h's enum xds_watch_status). */
enum rs_xds_watch { RS_XDS_PENDING, RS_XDS_ARRIVED, RS_XDS_TIMED_OUT };

struct rs_xds_resource {
    const char *name;
    const ProtobufCMessage *msg; /* Cluster, ClusterLoadAssignment, Listener, ... */
    const uint8_t *bytes;        /* its serialized form (change detection) */
    size_t len;
};

/* The accepted xDS resources a snapshot is compiled from. The caller keeps them alive while the
 * compile runs; the snapshot keeps nothing of them except through `keep` (below). */
struct rs_xds_input {
    const struct rs_xds_resource *res[RS_XDS_NTYPES];
    size_t n[RS_XDS_NTYPES];
    bool sorted; /* each res[] is sorted by name (strcmp): looked up by binary search */
    /* Warming: the status of an EDS/RDS name (enum rs_xds_watch), or -1 when not subscribed.
     * NULL: a present resource has arrived, an absent one is pending. */
    int (*watch)(void *ctx, enum rs_xds_type type, const char *name);
    void *ctx;
    /* Optional: what the resources belong to (e.g. an xds_state). A snapshot compiled from
     * the input keeps retain(keep) in its `xds` and calls release on it when freed;
     * /config_dump and the mTLS work (secrets) read it. */
    void *keep;
    void *(*retain)(void *keep);
    void (*release)(void *keep);
    /* Secrets from separate SDS servers (SdsSecretConfig.sds_config.api_config_source naming a
     * cluster: Istio's sds-grpc): the secret `name` server `cluster` sent, or NULL while it has
     * not (the cluster or listener needing it warms). NULL callback: none has arrived. */
    const struct rs_xds_resource *(*grpc_secret)(void *ctx, const char *cluster, const char *name);
    void *grpc_ctx;
};

/* An input over xds/ads.h's accepted state (struct xds_state): resources, warming status, and
 * the state itself as `keep`. Free with rs_xds_input_free (the state is not released). */
struct xds_state;
struct rs_xds_input *rs_xds_input_from_state(struct xds_state *st);
void rs_xds_input_free(struct rs_xds_input *in);

/* Compiles the bootstrap's static resources plus the xDS resources. `bs` stays the caller's
 * (it must outlive the snapshot). Clusters of `prev` whose definition is byte-identical are
 * reused (their host sets, pools and gauges carry over; a reused cluster whose secrets or
 * certificate files changed gets new TLS contexts swapped in place, the old ones retired with
 * rs_secrets_retire). Warming as Envoy: an EDS cluster whose assignment is pending is left out,
 * as is a listener whose RDS route configuration is pending, and a cluster or listener whose SDS
 * secrets have not arrived.
 * On error returns NULL with err naming the resource and field:
 *   Listener "0.0.0.0_9080": filter_chains[0].filters[0].typed_config.x: reason
 * (what the ADS client sends as the NACK's error_detail). */
struct rs_snapshot *rs_config_compile_xds(const struct Envoy__Config__Bootstrap__V3__Bootstrap *bs,
                                          const struct rs_xds_input *in,
                                          const struct rs_snapshot *prev, bool serve, char *err,
                                          size_t errlen);

/* An EDS-only update: builds host sets from the input's ClusterLoadAssignments and swaps them
 * into the snapshot's EDS clusters (rs_cluster_set_hosts), leaving everything else. Returns the
 * number of clusters whose host set changed, or -1 with err (nothing is swapped then). */
int rs_config_apply_eds(struct rs_snapshot *s, const struct rs_xds_input *in, bool serve, char *err,
                        size_t errlen);

/* Envoy's Duration to ms, saturating. */
uint32_t rs_duration_ms(const void *duration, uint32_t dflt);

/* Formats an address as Envoy does ("1.2.3.4:80", "[::1]:80"). */
void rs_addr_str(const struct sockaddr *sa, char *out, size_t cap);

#endif
