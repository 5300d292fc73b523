/* The sidecar's ADS client: the xDS protocol state machine (state of the world and delta), the
 * accepted-resource state it hands to the sidecar, its stats, its cache file, and the binding to
 * the gRPC transport of xds/grpc.h.
 *
 * Layers:
 *   - struct xds_state: an immutable, refcounted view of every accepted resource. Built by the
 *     client, handed to the sidecar through the apply callback; the sidecar translates it into a
 *     data-plane snapshot and may keep references.
 *   - struct xds_ads: the protocol core. It consumes serialized (Delta)DiscoveryResponses and
 *     emits serialized (Delta)DiscoveryRequests through a send callback, so it runs without a
 *     socket in the unit tests and the fuzz target. xds_ads_start binds it to a gRPC stream on an
 *     xds_loop, with reconnect and backoff.
 *
 * Threading: everything runs on one thread (the control-plane loop's), except xds_ads_stats
 * (atomic counters any thread may read) and xds_state_ref/xds_state_unref (atomic refcounts:
 * a state may be released on any thread). */
#ifndef XDS_ADS_H
#define XDS_ADS_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "xds/bootstrap.h"

/* ---- resource types ----------------------------------------------------------------------- */

/* In Envoy's startup order. */
enum xds_type {
    XDS_CDS, /* envoy.config.cluster.v3.Cluster, wildcard */
    XDS_EDS, /* envoy.config.endpoint.v3.ClusterLoadAssignment, named by the EDS clusters */
    XDS_LDS, /* envoy.config.listener.v3.Listener, wildcard */
    XDS_RDS, /* envoy.config.route.v3.RouteConfiguration, named by the listeners' HCMs */
    XDS_SDS, /* envoy.extensions.transport_sockets.tls.v3.Secret, named by transport sockets */
    XDS_NTYPES
};

/* "type.googleapis.com/envoy.config.cluster.v3.Cluster", ... */
const char *xds_type_url(enum xds_type t);
/* "cds", "eds", "lds", "rds", "sds". */
const char *xds_type_short(enum xds_type t);
/* The type of a type URL, or -1. */
int xds_type_from_url(const char *url);

/* ---- accepted state ----------------------------------------------------------------------- */

/* One accepted resource. Immutable once built, shared by every state that holds it. */
struct xds_resource {
    atomic_int refs;
    char *name;
    char *version;         /* per resource in delta; the response's version_info in SotW */
    ProtobufCMessage *msg; /* decoded (Cluster, ClusterLoadAssignment, ...) */
    uint8_t *bytes;        /* the resource's serialized message (Any.value) */
    size_t len;
    int64_t last_updated_ms; /* wall clock, Unix epoch milliseconds */
    /* Names this CDS/LDS resource refers to (EDS cluster, RDS route config, SDS secret), with
     * their types: how the client derives its EDS/RDS/SDS subscriptions. */
    size_t n_deps;
    char **deps;
    uint8_t *dep_types;
};

/* Warming status of a name a non-wildcard type (EDS, RDS, SDS) is subscribed to. */
enum xds_watch_status {
    XDS_WATCH_PENDING,   /* subscribed; no response has named it yet (warming) */
    XDS_WATCH_ARRIVED,   /* a response named it (in resources, or removed in delta: absent) */
    XDS_WATCH_TIMED_OUT, /* initial_fetch_timeout passed first: use it as empty */
};

struct xds_watch {
    char *name;
    enum xds_watch_status status;
    uint64_t deadline_ms; /* monotonic; 0: no timeout */
};

/* One type's accepted resources, sorted by name; shared between states while unchanged. */
struct xds_type_table {
    atomic_int refs;
    char *version_info; /* the type's last accepted version_info ("" before any) */
    size_t n;
    struct xds_resource **res;
};

struct xds_state {
    atomic_int refs;
    struct xds_type_table *types[XDS_NTYPES]; /* never NULL */
    /* Subscribed names for EDS, RDS and SDS (sorted), derived from the accepted CDS and LDS
     * resources; empty for CDS and LDS (wildcard). */
    size_t n_watch[XDS_NTYPES];
    struct xds_watch *watch[XDS_NTYPES];
    /* CDS/LDS: the first response arrived or initial_fetch_timeout passed. */
    bool type_initialized[XDS_NTYPES];
    bool cds_initialized; /* CDS initialized and no EDS cluster still warming: LDS may start */
    bool from_cache;      /* rebuilt from the cache file, not (yet) confirmed by a server */
};

struct xds_state *xds_state_ref(struct xds_state *s);
void xds_state_unref(struct xds_state *s);

/* The accepted resource of `type` named `name`, or NULL (binary search). */
const struct xds_resource *xds_state_find(const struct xds_state *s, enum xds_type type,
                                          const char *name);

/* The watch status of `name` for EDS/RDS/SDS; -1 when not subscribed. The translation uses it
 * for warming: PENDING means leave the cluster (EDS) or listener (RDS) out; TIMED_OUT or
 * ARRIVED-without-resource means use it as empty. */
int xds_state_watch_status(const struct xds_state *s, enum xds_type type, const char *name);

/* ---- stats -------------------------------------------------------------------------------- */

/* Counters as Envoy publishes them; the sidecar reads them from any thread (relaxed atomics) and
 * names them: control_plane.connected_state (gauge), cluster_manager.cds.<c>,
 * cluster_manager.eds.<c> (simplified from cluster.<name>.update_*), listener_manager.lds.<c>,
 * rds.<c> (simplified from http.<prefix>.rds.<route>.<c>), sds.<c>; and
 * control_plane.{rq_total, rq_ack, rq_nack, rx_bytes, stream_reconnects, rx_malformed}. */
struct xds_ads_type_stats {
    atomic_uint_fast64_t update_attempt;  /* responses received for the type */
    atomic_uint_fast64_t update_success;  /* accepted (ACKed) */
    atomic_uint_fast64_t update_rejected; /* NACKed */
    atomic_uint_fast64_t update_failure;  /* stream failures while the type was subscribed */
    atomic_uint_fast64_t init_fetch_timeout;
    atomic_uint_fast64_t update_time; /* wall clock ms of the last accepted update (gauge) */
    atomic_uint_fast64_t version;     /* gauge: 64-bit FNV-1a of the accepted version_info */
};

struct xds_ads_stats {
    atomic_uint_fast64_t connected_state; /* gauge: 1 while a stream is answered by the server */
    atomic_uint_fast64_t rq_total;        /* requests sent (ACKs, NACKs, subscriptions) */
    atomic_uint_fast64_t rq_nack;
    atomic_uint_fast64_t rx_bytes;
    atomic_uint_fast64_t rx_malformed; /* responses that did not decode (stream reset) */
    atomic_uint_fast64_t stream_reconnects;
    atomic_uint_fast64_t cache_write_fail;
    struct xds_ads_type_stats type[XDS_NTYPES];
};

/* ---- the client --------------------------------------------------------------------------- */

typedef struct xds_ads xds_ads;

/* Called with a candidate state after a response for changed_type was validated (and after an
 * initial fetch timeout changed a watch). Return 0 to accept: the client ACKs and makes the
 * candidate current (the callee may xds_state_ref it to keep it). Non-zero rejects: the client
 * NACKs with err as error_detail (name the resource and field) and keeps the previous state.
 * The candidate is valid during the call only unless referenced. */
typedef int (*xds_ads_apply_fn)(void *arg, struct xds_state *candidate, int changed_type, char *err,
                                size_t errlen);
/* The stream came up (the server sent its response headers or a first response) or went down. */
typedef void (*xds_ads_connected_fn)(void *arg, bool up);
/* The core's output: one serialized DiscoveryRequest or DeltaDiscoveryRequest. 0 or -errno. */
typedef int (*xds_ads_send_fn)(void *arg, const uint8_t *msg, size_t len);

struct xds_ads_config {
    bool delta;                          /* DeltaAggregatedResources (DELTA_GRPC) instead of SotW */
    bool node_first_only;                /* set_node_on_first_message_only */
    Envoy__Config__Core__V3__Node *node; /* copied; see xds_ads_node_build */
    /* initial_fetch_timeout per type in ms; 0: wait forever. xds_ads_config_from_bootstrap takes
     * CDS, EDS, SDS from cds_config and LDS, RDS from lds_config (Envoy's default 15 s). */
    uint32_t initial_fetch_timeout_ms[XDS_NTYPES];
    size_t max_msg; /* largest response accepted; 0: 4 MiB */
    /* The gRPC target ("host:port" or "unix:/path"), from the static cluster ads_config names. */
    char target[512];
    char cluster_name[128]; /* that cluster's name ("xds-grpc") */
    /* Bearer token file sent as "authorization: Bearer <token>" (Istio: a projected token at
     * /var/run/secrets/tokens/istio-token). Set by the caller (CLI); xds_ads_config_from_bootstrap
     * takes the environment variable RINGSIDE_XDS_TOKEN_FILE. "" for none. */
    char token_file[512];
    xds_ads_apply_fn apply;
    xds_ads_connected_fn connected;
    void *arg;
    /* Monotonic clock for timeouts (tests); NULL: CLOCK_MONOTONIC. */
    uint64_t (*now_ms)(void);
    /* A secrets-only client (Istio's sds-grpc: pilot-agent's SecretDiscoveryService on a Unix
     * socket): one SotW StreamSecrets call carrying SDS alone, subscribed to the names given with
     * xds_ads_set_sds_names instead of names derived from CDS/LDS. delta must be false. */
    bool sds_only;
};

/* Fills cfg from a loaded bootstrap: dynamic_resources.ads_config (GRPC or DELTA_GRPC) and the
 * static cluster its grpc_services[0].envoy_grpc.cluster_name names (first endpoint: socket
 * address or pipe), timeouts, set_node_on_first_message_only. The node is not set here (see
 * xds_ads_node_build). 0, or -1 with a message in err (no ads_config, unsupported api_type,
 * cluster missing or without an address). */
int xds_ads_config_from_bootstrap(struct xds_ads_config *cfg, const xds_bootstrap *b, char *err,
                                  size_t errlen);

/* The gRPC target of static cluster `name`: its first endpoint, "unix:<path>" for a pipe or
 * "host:port". 0, or -1 with err (no such cluster, no address). */
int xds_bootstrap_cluster_target(const xds_bootstrap *b, const char *name, char *out, size_t outlen,
                                 char *err, size_t errlen);

/* Istio's node identity: a copy of the bootstrap's node, with id built as
 * sidecar~<INSTANCE_IP>~<POD_NAME>.<POD_NAMESPACE>~<POD_NAMESPACE>.svc.cluster.local when absent,
 * and metadata from the environment as pilot-agent fills it: NAME (POD_NAME), NAMESPACE
 * (POD_NAMESPACE), INSTANCE_IPS (INSTANCE_IPS, else INSTANCE_IP), LABELS (the JSON object in
 * ISTIO_METAJSON_LABELS), ISTIO_VERSION, CLUSTER_ID, SERVICE_ACCOUNT, WORKLOAD_NAME,
 * INTERCEPTION_MODE (same-named variables), and every ISTIO_META_<X> as <X> (these win over the
 * same-named plain variables). A key the bootstrap's node.metadata already sets is kept: the
 * bootstrap wins, since pilot-agent renders it from the same variables and an operator's
 * explicit value must not be overridden. envp: NULL for environ. Returns a message to free with
 * protobuf_c_message_free_unpacked(msg, NULL), or NULL with err when there is no id and the
 * environment lacks INSTANCE_IP, POD_NAME or POD_NAMESPACE. */
Envoy__Config__Core__V3__Node *xds_ads_node_build(const Envoy__Config__Core__V3__Node *boot_node,
                                                  char *const *envp, char *err, size_t errlen);

/* A client in the "no stream" state. Copies cfg (and the node). NULL on out-of-memory. */
xds_ads *xds_ads_new(const struct xds_ads_config *cfg);
void xds_ads_free(xds_ads *a);

/* The current accepted state (never NULL; an empty one at first). Borrowed: ref it to keep it. */
struct xds_state *xds_ads_current(const xds_ads *a);
const struct xds_ads_stats *xds_ads_stats(const xds_ads *a);
/* True while the current state is the one rebuilt from the cache file. */
bool xds_ads_state_from_cache(const xds_ads *a);

/* After each accepted update, write the state to path atomically (temp file, fsync, rename).
 * NULL stops. The path is copied. */
void xds_ads_set_cache(xds_ads *a, const char *path);

/* Rebuilds a state from the cache file and offers it to apply (changed_type -1). 0 when applied,
 * -1 with err (missing, corrupt, or rejected). The state keeps from_cache until a server's
 * response replaces a type. */
int xds_ads_load_cache(xds_ads *a, const char *path, char *err, size_t errlen);

/* ---- the protocol core (transport-agnostic; used by the binding, the tests, the fuzzer) ---- */

/* A stream is open: send the initial requests (node on the first; CDS wildcard, and every other
 * type already subscribed, with versions/initial_resource_versions from the current state). */
void xds_ads_stream_open(xds_ads *a, xds_ads_send_fn send, void *send_arg);

/* One response message from the stream. 0, or -1 when it is malformed (does not decode, or
 * over max_msg): the caller resets the stream. A response the state machine rejects is NACKed
 * and returns 0. */
int xds_ads_on_message(xds_ads *a, const uint8_t *msg, size_t len);

/* The stream ended (any reason); requests stop until the next xds_ads_stream_open. */
void xds_ads_stream_closed(xds_ads *a);

/* Expires initial fetch timeouts due at now; returns the next deadline (monotonic ms, 0: none). */
uint64_t xds_ads_on_timer(xds_ads *a);

/* ---- the gRPC binding ---------------------------------------------------------------------- */

struct xds_loop;

/* Connects to cfg.target on `loop` and keeps a stream open: reconnect with exponential backoff
 * and full jitter (base 500 ms, cap 30 s; reset after a stream that got a response), the state
 * serving meanwhile. 0 or -errno. Call on the loop's thread (or before it runs). */
int xds_ads_start(xds_ads *a, struct xds_loop *loop);

/* A secrets-only client's subscription: the SDS names[0..n) (copied). Sends the new subscription
 * when it changed and a stream is open; names no longer listed are dropped from the state. */
void xds_ads_set_sds_names(xds_ads *a, const char *const *names, size_t n);

/* Stops the stream and timers (before xds_ads_free, on the loop's thread). */
void xds_ads_stop(xds_ads *a);

/* The backoff delay before reconnect attempt n (0-based): uniform in [0, min(cap, base*2^n)].
 * rnd is a uniform 64-bit random number. Exposed for tests. */
uint64_t xds_ads_backoff_ms(unsigned attempt, uint64_t rnd);

/* Where the client's warnings go (stream failures, malformed responses, cache write errors):
 * by default "ringside: <message>" on stderr. Set once, before any client starts. */
void xds_ads_set_logger(void (*fn)(const char *msg));

#endif
