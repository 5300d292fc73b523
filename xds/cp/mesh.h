/* The mesh model of ringside-cp: services, workloads, subsets and traffic policy, parsed and
 * validated from the declarative mesh file (schema in xds/cp/README.md). A mesh is immutable once
 * parsed; the control plane swaps whole meshes, so a rejected file leaves the previous one. */
#ifndef XDS_CP_MESH_H
#define XDS_CP_MESH_H

#include <stddef.h>
#include <stdint.h>

enum cp_proto { CP_PROTO_HTTP, CP_PROTO_TCP, CP_PROTO_GRPC };

struct cp_label {
    const char *key, *value;
};

struct cp_labels {
    struct cp_label *v;
    size_t n;
};

struct cp_port {
    uint32_t port;
    enum cp_proto proto;
    const char *name; /* "http-9080" when not given, as Istio names unnamed ports */
};

struct cp_subset {
    const char *name;
    struct cp_labels labels;
};

enum cp_match_kind { CP_MATCH_EXACT, CP_MATCH_PREFIX, CP_MATCH_REGEX, CP_MATCH_PRESENT };

struct cp_header_match {
    const char *name;
    enum cp_match_kind kind;
    const char *value; /* NULL for CP_MATCH_PRESENT */
};

/* One weighted destination of a route: a subset of the service, or the whole service. */
struct cp_dest {
    const char *subset; /* NULL: the whole service */
    uint32_t weight;
};

struct cp_retries {
    int set;
    uint32_t attempts;
    uint64_t per_try_timeout_ms; /* 0: none */
    const char *retry_on;        /* Envoy's retry_on list, e.g. "5xx,connect-failure" */
};

struct cp_outlier {
    int set;
    uint32_t consecutive_5xx;
    uint32_t consecutive_gateway_errors;
    uint64_t interval_ms;
    uint64_t base_ejection_time_ms;
    uint32_t max_ejection_percent;
};

struct cp_breakers {
    int set;
    uint32_t max_connections, max_pending_requests, max_requests, max_retries;
};

struct cp_route {
    const char *name;
    const char *prefix; /* path prefix ("/" when not given) */
    struct cp_header_match *headers;
    size_t n_headers;
    struct cp_dest *dests;
    size_t n_dests;
    struct cp_retries retries; /* the service's when not set on the route */
    uint64_t timeout_ms;       /* 0: the service's (0 there too: Envoy's default) */
};

enum cp_lb { CP_LB_ROUND_ROBIN, CP_LB_LEAST_REQUEST, CP_LB_RANDOM };

struct cp_service {
    const char *name, *ns;
    char *host; /* <name>.<ns>.svc.cluster.local */
    struct cp_port *ports;
    size_t n_ports;
    struct cp_subset *subsets;
    size_t n_subsets;
    struct cp_route *routes; /* never empty: one default route to the whole service if none */
    size_t n_routes;
    struct cp_retries retries;
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    enum cp_lb lb;
    struct cp_outlier outlier;
    struct cp_breakers breakers;
};

struct cp_workload {
    const char *name, *ns, *service_account;
    const char *address; /* IPv4 or IPv6 literal, unique in the mesh: it identifies the node */
    struct cp_labels labels;
    size_t *services; /* indexes into mesh->services */
    size_t n_services;
    uint32_t port;        /* the port it listens on; 0: each service port */
    uint32_t port_offset; /* added to every listener port of this workload's sidecar */
    uint32_t weight;      /* endpoint load-balancing weight (1) */
    const char *region, *zone, *subzone;
};

enum cp_bind { CP_BIND_ANY, CP_BIND_WORKLOAD };

/* Istio's PeerAuthentication modes for the whole mesh: OFF (no mTLS shapes), STRICT (inbound
 * accepts mutual TLS only), PERMISSIVE (inbound accepts mutual TLS and plaintext). */
enum cp_mtls { CP_MTLS_OFF, CP_MTLS_STRICT, CP_MTLS_PERMISSIVE };

/* How a server's sidecar receives its inbound traffic. NONE: the service's endpoints are the
 * applications themselves (capture, or no server-side sidecar). LISTENERS (bind: workload only):
 * each workload's sidecar listens on <address>:<service port> and is the service's endpoint, as
 * Istio's Sidecar resource binds ingress listeners with captureMode NONE. */
enum cp_ingress { CP_INGRESS_NONE, CP_INGRESS_LISTENERS };

struct cp_options {
    enum cp_bind bind;  /* where a node's listeners bind: 0.0.0.0, or its workload's address */
    int capture;        /* 1: iptables capture as in Istio (service listeners not bound) */
    int tls_mode_label; /* endpoint metadata envoy.transport_socket_match {tlsMode: istio} */
    uint64_t connect_timeout_ms;
    const char *trust_domain; /* SPIFFE trust domain of workload identities ("cluster.local") */
    uint64_t cert_ttl_ms;     /* workload certificate validity (1h; at least 1s) */
    const char *ca_dir;       /* the CA's directory as written (relative: to the mesh file's) */
    enum cp_mtls mtls;        /* Istio's auto-mTLS shapes in generated clusters and listeners */
    enum cp_ingress ingress;  /* inbound listeners on the workloads' addresses */
    const char *access_log;   /* Istio's accessLogFile ("/dev/stdout"), or NULL: no access log */
};

struct cp_mesh {
    struct cp_options options;
    struct cp_service *services;
    size_t n_services;
    struct cp_workload *workloads;
    size_t n_workloads;
    struct cp_mesh_mem *mem; /* private: the parsed document and the arena everything lives in */
};

/* Parses and validates a mesh file's text. Returns the mesh (free with cp_mesh_free) or NULL
 * with a message naming the file, line and field in err, e.g.
 *   mesh.yaml:7: services[0].ports[1].protocol: must be http, tcp or grpc (got "udp"). */
struct cp_mesh *cp_mesh_parse(const char *text, size_t len, const char *filename, char *err,
                              size_t errlen);

/* Reads and parses a file; same contract (err also says why the file could not be read). */
struct cp_mesh *cp_mesh_load(const char *path, char *err, size_t errlen);

void cp_mesh_free(struct cp_mesh *mesh);

/* The workload whose address is ip, or NULL. */
const struct cp_workload *cp_mesh_workload_by_ip(const struct cp_mesh *mesh, const char *ip);

/* The subset named name of svc, or NULL. */
const struct cp_subset *cp_service_subset(const struct cp_service *svc, const char *name);

/* True if every label of sel is among labels. */
int cp_labels_match(const struct cp_labels *sel, const struct cp_labels *labels);

/* Protocol name ("http", "tcp", "grpc"). */
const char *cp_proto_name(enum cp_proto p);

#endif
