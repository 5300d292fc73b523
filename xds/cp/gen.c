/* Generation of Istio-shaped Envoy v3 resources from the mesh. Each resource is written in
 * Envoy's own JSON shape (so this file reads like the config istiod sends), loaded into its
 * protobuf-c message through the project's loader, which checks every field against the real
 * descriptor, and serialized. Names follow istiod: outbound|<port>|<subset>|<host>,
 * inbound|<port>||, 0.0.0.0_<port> with RDS "<port>", virtualOutbound, virtualInbound. */
#include "xds/cp/gen.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/doc.h"
#include "xds/pbload.h"
#include "xds/pbutil.h"
#include "xds/registry.h"

#define TYPE_PREFIX "type.googleapis.com/"
#define HCM_TYPE                                                                                   \
    TYPE_PREFIX "envoy.extensions.filters.network.http_connection_manager.v3."                     \
                "HttpConnectionManager"
#define TCP_PROXY_TYPE TYPE_PREFIX "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#define ROUTER_TYPE TYPE_PREFIX "envoy.extensions.filters.http.router.v3.Router"
#define ORIGINAL_DST_TYPE                                                                          \
    TYPE_PREFIX "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
#define HTTP_OPTIONS_TYPE TYPE_PREFIX "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
#define UPSTREAM_TLS_TYPE TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWNSTREAM_TLS_TYPE                                                                        \
    TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define RAW_BUFFER_TYPE TYPE_PREFIX "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
#define TLS_INSPECTOR_TYPE                                                                         \
    TYPE_PREFIX "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
#define HTTP_INSPECTOR_TYPE                                                                        \
    TYPE_PREFIX "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"
#define FILE_LOG_TYPE TYPE_PREFIX "envoy.extensions.access_loggers.file.v3.FileAccessLog"

/* The access log line (options.access_log): Istio's default text format, shortened to what
 * Ringside's formatter has, plus the client's SPIFFE identity, which is what an mTLS mesh's
 * server side wants to see. */
#define ACCESS_LOG_FORMAT                                                                          \
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% "  \
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% "             \
    "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% peer=%DOWNSTREAM_PEER_URI_SAN%\n"

#define OUTBOUND_CAPTURE_PORT 15001
#define INBOUND_CAPTURE_PORT 15006

static const char *const type_urls[CP_NTYPES] = {
    [CP_CDS] = TYPE_PREFIX "envoy.config.cluster.v3.Cluster",
    [CP_EDS] = TYPE_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment",
    [CP_LDS] = TYPE_PREFIX "envoy.config.listener.v3.Listener",
    [CP_RDS] = TYPE_PREFIX "envoy.config.route.v3.RouteConfiguration",
    [CP_SDS] = TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret",
};

static const char *const type_short[CP_NTYPES] = {"CDS", "EDS", "LDS", "RDS", "SDS"};

const char *cp_type_url(enum cp_type t)
{
    return type_urls[t];
}
const char *cp_type_short(enum cp_type t)
{
    return type_short[t];
}

int cp_type_from_url(const char *url)
{
    for (int t = 0; t < CP_NTYPES; t++)
        if (strcmp(url, type_urls[t]) == 0) return t;
    return -1;
}

void cp_hash_hex(const void *data, size_t len, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    snprintf(out, 17, "%016" PRIx64, h);
}

int cp_node_parse(const char *id, struct cp_node *out)
{
    memset(out, 0, sizeof *out);
    /* sidecar~<IP>~<POD>.<NS>~<NS>.svc.cluster.local */
    const char *f[4];
    size_t flen[4], n = 0;
    const char *s = id;
    while (n < 4) {
        const char *t = strchr(s, '~');
        f[n] = s;
        flen[n] = t ? (size_t)(t - s) : strlen(s);
        n++;
        if (!t) break;
        s = t + 1;
    }
    if (n != 4 || strchr(f[3], '~')) return -1;
    if (flen[0] != 7 || strncmp(f[0], "sidecar", 7) != 0) return -1;
    const char *dot = memchr(f[2], '.', flen[2]);
    if (!flen[1] || flen[1] >= sizeof out->ip || !dot || dot == f[2]) return -1;
    size_t pod_len = (size_t)(dot - f[2]), ns_len = flen[2] - pod_len - 1;
    if (pod_len >= sizeof out->pod || ns_len == 0 || ns_len >= sizeof out->ns) return -1;
    if (flen[3] < ns_len + 1 || strncmp(f[3], dot + 1, ns_len) != 0 || f[3][ns_len] != '.')
        return -1;
    memcpy(out->ip, f[1], flen[1]);
    memcpy(out->pod, f[2], pod_len);
    memcpy(out->ns, dot + 1, ns_len);
    out->sidecar = 1;
    return 0;
}

/* ---- the generator --------------------------------------------------------------------------- */

struct gen {
    const struct cp_mesh *m;
    const struct cp_workload *self; /* the node's workload, or NULL */
    const char *ns;                 /* the node's namespace: short host names resolve in it */
    const char *bind;               /* the address the node's listeners bind to */
    uint32_t off;                   /* the node's listener port offset */
    struct cp_resources *out;
    size_t cap[CP_NTYPES];
    char *err;
    size_t errlen;
    int failed;
};

static json_t *str_printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_string(buf);
}

static json_t *duration(uint64_t ms)
{
    return str_printf("%" PRIu64 ".%03" PRIu64 "s", ms / 1000, ms % 1000);
}

static json_t *ads_source(void)
{
    return json_pack("{s:{},s:s}", "ads", "resource_api_version", "V3");
}

/* Loads j (consumed) into a new message of type t, serializes it and appends it to the output. */
static void add(struct gen *g, enum cp_type t, const char *name, json_t *j, int wildcard)
{
    if (!j || g->failed) {
        if (!j && !g->failed)
            snprintf(g->err, g->errlen, "%s %s: building JSON failed", type_short[t], name);
        g->failed = 1;
        json_decref(j);
        return;
    }
    const ProtobufCMessageDescriptor *d = xds_registry_find(type_urls[t]);
    struct xds_doc *doc = xds_doc_from_json(j);
    json_decref(j);
    ProtobufCMessage *msg = xds_message_new(d);
    char lerr[256];
    if (xds_load_doc_into(msg, doc, 0, lerr, sizeof lerr) < 0) {
        snprintf(g->err, g->errlen, "%s %s: %s", type_short[t], name, lerr);
        g->failed = 1;
    }
    xds_doc_free(doc);
    if (!g->failed) {
        struct cp_resources *o = g->out;
        if (o->n[t] == g->cap[t]) {
            g->cap[t] = g->cap[t] ? g->cap[t] * 2 : 16;
            o->v[t] = realloc(o->v[t], g->cap[t] * sizeof *o->v[t]);
            if (!o->v[t]) abort(); /* control path */
        }
        struct cp_resource *r = &o->v[t][o->n[t]++];
        r->name = strdup(name);
        r->len = protobuf_c_message_get_packed_size(msg);
        r->bytes = malloc(r->len ? r->len : 1);
        if (!r->name || !r->bytes) abort();
        protobuf_c_message_pack(msg, r->bytes);
        cp_hash_hex(r->bytes, r->len, r->version);
        r->wildcard = wildcard;
    }
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void cluster_name(char *buf, size_t len, uint32_t port, const char *subset, const char *host)
{
    snprintf(buf, len, "outbound|%u|%s|%s", port, subset ? subset : "", host);
}

/* The port a workload's application listens on for a service port. */
static uint32_t target_port(const struct cp_workload *w, const struct cp_port *port)
{
    return w->port ? w->port : port->port;
}

/* Where the service's clients connect for this workload: its application, or with ingress
 * listeners its sidecar's inbound listener on the same address. */
static uint32_t endpoint_port(const struct gen *g, const struct cp_workload *w,
                              const struct cp_port *port)
{
    if (g->m->options.ingress == CP_INGRESS_LISTENERS) return port->port + w->port_offset;
    return target_port(w, port);
}

static int backs(const struct cp_workload *w, size_t svc)
{
    for (size_t i = 0; i < w->n_services; i++)
        if (w->services[i] == svc) return 1;
    return 0;
}

/* ---- CDS and EDS ----------------------------------------------------------------------------- */

static json_t *lb_policy(enum cp_lb lb)
{
    return json_string(lb == CP_LB_LEAST_REQUEST ? "LEAST_REQUEST"
                       : lb == CP_LB_RANDOM      ? "RANDOM"
                                                 : "ROUND_ROBIN");
}

/* ---- auto-mTLS (options.mtls) ------------------------------------------------------------- */

/* An SDS reference over ADS, as the secrets ringside-cp serves: `default` and `ROOTCA`. */
static json_t *sds_secret(const char *name)
{
    return json_pack("{s:s,s:o}", "name", name, "sds_config", ads_source());
}

/* The CommonTlsContext of both directions: our certificate, the mesh root, and (outbound) the
 * SPIFFE IDs the peer may present. */
static json_t *common_tls(json_t *alpn, json_t *sans)
{
    json_t *dvc = json_object();
    if (sans) json_object_set_new(dvc, "match_typed_subject_alt_names", sans);
    return json_pack("{s:o,s:[o],s:{s:o,s:o}}", "alpn_protocols", alpn,
                     "tls_certificate_sds_secret_configs", sds_secret("default"),
                     "combined_validation_context", "default_validation_context", dvc,
                     "validation_context_sds_secret_config", sds_secret("ROOTCA"));
}

/* The identities of the workloads backing svc, as Istio's cluster SAN list (any of them). */
static json_t *service_sans(const struct gen *g, const struct cp_service *svc)
{
    json_t *sans = json_array();
    size_t si = (size_t)(svc - g->m->services);
    for (size_t i = 0; i < g->m->n_workloads; i++) {
        const struct cp_workload *w = &g->m->workloads[i];
        if (!backs(w, si)) continue;
        char id[512];
        snprintf(id, sizeof id, "spiffe://%s/ns/%s/sa/%s", g->m->options.trust_domain, w->ns,
                 w->service_account);
        int dup = 0;
        size_t k;
        json_t *e;
        json_array_foreach(sans, k, e)
        {
            dup |=
                strcmp(json_string_value(json_object_get(json_object_get(e, "matcher"), "exact")),
                       id) == 0;
        }
        if (!dup)
            json_array_append_new(
                sans, json_pack("{s:s,s:{s:s}}", "san_type", "URI", "matcher", "exact", id));
    }
    if (json_array_size(sans) == 0) {
        json_decref(sans);
        return NULL;
    }
    return sans;
}

/* The ALPN a client sidecar offers to a server sidecar. istiod puts istio-peer-exchange, istio
 * (and h2 for HTTP/2 clusters) in the cluster and, for HTTP, lets the istio.alpn filter replace
 * them per request with istio-http/1.0, istio-http/1.1 or istio-h2, which is what the server's
 * HTTP chains match on. Ringside skips istio.alpn (its upstream HTTP is HTTP/1.1), so an HTTP
 * port's cluster carries the override's result directly: the same bytes on the wire. */
static json_t *upstream_alpn(enum cp_proto proto)
{
    switch (proto) {
    case CP_PROTO_HTTP:
        return json_pack("[s,s]", "istio-http/1.1", "istio");
    case CP_PROTO_GRPC:
        return json_pack("[s,s]", "istio-h2", "istio");
    case CP_PROTO_TCP:
        break;
    }
    return json_pack("[s,s]", "istio-peer-exchange", "istio");
}

/* Istio's auto-mTLS: endpoints labelled tlsMode=istio get mutual TLS with SNI
 * outbound_.<port>_.<subset>_.<host>, the others plaintext. */
static json_t *transport_socket_matches(const struct gen *g, const struct cp_service *svc,
                                        const struct cp_port *port, const char *subset)
{
    json_t *alpn = upstream_alpn(port->proto);
    char sni[600];
    snprintf(sni, sizeof sni, "outbound_.%u_.%s_.%s", port->port, subset ? subset : "", svc->host);
    json_t *tls = json_pack("{s:s,s:o,s:s}", "@type", UPSTREAM_TLS_TYPE, "common_tls_context",
                            common_tls(alpn, service_sans(g, svc)), "sni", sni);
    return json_pack("[{s:s,s:{s:s},s:{s:s,s:o}},{s:s,s:{},s:{s:s,s:{s:s}}}]", "name",
                     "tlsMode-istio", "match", "tlsMode", "istio", "transport_socket", "name",
                     "envoy.transport_sockets.tls", "typed_config", tls, "name", "tlsMode-disabled",
                     "match", "transport_socket", "name", "envoy.transport_sockets.raw_buffer",
                     "typed_config", "@type", RAW_BUFFER_TYPE);
}

/* An inbound mTLS chain's transport socket: our certificate, a client certificate required and
 * verified against the mesh root, its URI SAN in the mesh's trust domain. */
static json_t *downstream_tls(const struct gen *g, enum cp_proto proto)
{
    json_t *alpn = proto == CP_PROTO_TCP ? json_pack("[s,s]", "istio-peer-exchange", "istio")
                                         : json_pack("[s,s]", "h2", "http/1.1");
    json_t *sans = json_pack("[{s:s,s:{s:o}}]", "san_type", "URI", "matcher", "prefix",
                             str_printf("spiffe://%s/", g->m->options.trust_domain));
    return json_pack("{s:s,s:{s:s,s:o,s:b}}", "name", "envoy.transport_sockets.tls", "typed_config",
                     "@type", DOWNSTREAM_TLS_TYPE, "common_tls_context", common_tls(alpn, sans),
                     "require_client_certificate", 1);
}

static void outbound_cluster(struct gen *g, const struct cp_service *svc,
                             const struct cp_port *port, const char *subset)
{
    char name[512];
    cluster_name(name, sizeof name, port->port, subset, svc->host);
    json_t *c = json_pack("{s:s,s:s,s:{s:o,s:s},s:o,s:o}", "name", name, "type", "EDS",
                          "eds_cluster_config", "eds_config", ads_source(), "service_name", name,
                          "connect_timeout", duration(svc->connect_timeout_ms), "lb_policy",
                          lb_policy(svc->lb));
    if (svc->breakers.set) {
        const struct cp_breakers *b = &svc->breakers;
        json_object_set_new(c, "circuit_breakers",
                            json_pack("{s:[{s:I,s:I,s:I,s:I}]}", "thresholds", "max_connections",
                                      (json_int_t)b->max_connections, "max_pending_requests",
                                      (json_int_t)b->max_pending_requests, "max_requests",
                                      (json_int_t)b->max_requests, "max_retries",
                                      (json_int_t)b->max_retries));
    }
    if (svc->outlier.set) {
        const struct cp_outlier *o = &svc->outlier;
        json_t *od = json_pack("{s:I,s:o,s:o,s:I}", "consecutive_5xx",
                               (json_int_t)o->consecutive_5xx, "interval", duration(o->interval_ms),
                               "base_ejection_time", duration(o->base_ejection_time_ms),
                               "max_ejection_percent", (json_int_t)o->max_ejection_percent);
        if (o->consecutive_gateway_errors) {
            json_object_set_new(od, "consecutive_gateway_failure",
                                json_integer(o->consecutive_gateway_errors));
            json_object_set_new(od, "enforcing_consecutive_gateway_failure", json_integer(100));
        }
        json_object_set_new(c, "outlier_detection", od);
    }
    if (g->m->options.mtls)
        json_object_set_new(c, "transport_socket_matches",
                            transport_socket_matches(g, svc, port, subset));
    if (port->proto == CP_PROTO_GRPC) /* gRPC needs HTTP/2 upstream, as istiod marks it */
        json_object_set_new(c, "typed_extension_protocol_options",
                            json_pack("{s:{s:s,s:{s:{}}}}",
                                      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                                      "@type", HTTP_OPTIONS_TYPE, "explicit_http_config",
                                      "http2_protocol_options"));
    add(g, CP_CDS, name, c, 1);
}

static json_t *socket_address(const char *ip, uint32_t port)
{
    return json_pack("{s:{s:s,s:I}}", "socket_address", "address", ip, "port_value",
                     (json_int_t)port);
}

/* The endpoints of svc:port, restricted to a subset's labels, grouped by locality. */
static void load_assignment(struct gen *g, size_t si, const struct cp_port *port,
                            const struct cp_subset *subset)
{
    const struct cp_service *svc = &g->m->services[si];
    char name[512];
    cluster_name(name, sizeof name, port->port, subset ? subset->name : NULL, svc->host);
    json_t *groups = json_array();
    for (size_t i = 0; i < g->m->n_workloads; i++) {
        const struct cp_workload *w = &g->m->workloads[i];
        if (!backs(w, si) || (subset && !cp_labels_match(&subset->labels, &w->labels))) continue;
        json_t *ep =
            json_pack("{s:{s:o},s:I,s:s}", "endpoint", "address",
                      socket_address(w->address, endpoint_port(g, w, port)),
                      "load_balancing_weight", (json_int_t)w->weight, "health_status", "HEALTHY");
        if (g->m->options.tls_mode_label || g->m->options.mtls)
            json_object_set_new(ep, "metadata",
                                json_pack("{s:{s:{s:s}}}", "filter_metadata",
                                          "envoy.transport_socket_match", "tlsMode", "istio"));
        /* One group per locality; gRPC ignores a locality without a weight, so each has one. */
        json_t *grp = NULL;
        size_t k;
        json_array_foreach(groups, k, grp)
        {
            json_t *loc = json_object_get(grp, "locality");
            if (strcmp(json_string_value(json_object_get(loc, "region")), w->region) == 0 &&
                strcmp(json_string_value(json_object_get(loc, "zone")), w->zone) == 0 &&
                strcmp(json_string_value(json_object_get(loc, "sub_zone")), w->subzone) == 0)
                break;
            grp = NULL;
        }
        if (!grp) {
            grp = json_pack("{s:{s:s,s:s,s:s},s:I,s:[]}", "locality", "region", w->region, "zone",
                            w->zone, "sub_zone", w->subzone, "load_balancing_weight", (json_int_t)0,
                            "lb_endpoints");
            json_array_append_new(groups, grp);
        }
        json_t *lw = json_object_get(grp, "load_balancing_weight");
        json_integer_set(lw, json_integer_value(lw) + w->weight);
        json_array_append_new(json_object_get(grp, "lb_endpoints"), ep);
    }
    add(g, CP_EDS, name, json_pack("{s:s,s:o}", "cluster_name", name, "endpoints", groups), 1);
}

static json_t *static_cluster(const char *name, const char *ip, uint32_t port, uint64_t ct_ms)
{
    json_t *eps = json_array();
    if (ip)
        json_array_append_new(eps, json_pack("{s:[{s:{s:o}}]}", "lb_endpoints", "endpoint",
                                             "address", socket_address(ip, port)));
    return json_pack("{s:s,s:s,s:o,s:{s:s,s:o}}", "name", name, "type", "STATIC", "connect_timeout",
                     duration(ct_ms), "load_assignment", "cluster_name", name, "endpoints", eps);
}

static void clusters(struct gen *g)
{
    const struct cp_mesh *m = g->m;
    for (size_t i = 0; i < m->n_services; i++) {
        const struct cp_service *svc = &m->services[i];
        for (size_t p = 0; p < svc->n_ports; p++) {
            outbound_cluster(g, svc, &svc->ports[p], NULL);
            load_assignment(g, i, &svc->ports[p], NULL);
            for (size_t s = 0; s < svc->n_subsets; s++) {
                outbound_cluster(g, svc, &svc->ports[p], svc->subsets[s].name);
                load_assignment(g, i, &svc->ports[p], &svc->subsets[s]);
            }
        }
    }
    uint64_t ct = m->options.connect_timeout_ms;
    add(g, CP_CDS, "PassthroughCluster",
        json_pack("{s:s,s:s,s:o,s:s}", "name", "PassthroughCluster", "type", "ORIGINAL_DST",
                  "connect_timeout", duration(ct), "lb_policy", "CLUSTER_PROVIDED"),
        1);
    add(g, CP_CDS, "BlackHoleCluster", static_cluster("BlackHoleCluster", NULL, 0, ct), 1);
}

/* The node's inbound ports: each distinct service port its workload serves, with the port its
 * application listens on for it (inbound|<port>|| is named after that one) and a protocol. */
struct inbound_port {
    uint32_t port;    /* the application's */
    uint32_t service; /* the service port: an ingress listener's */
    enum cp_proto proto;
};

static size_t inbound_ports(const struct gen *g, struct inbound_port *out, size_t max)
{
    size_t n = 0;
    if (!g->self) return 0;
    for (size_t i = 0; i < g->self->n_services; i++) {
        const struct cp_service *svc = &g->m->services[g->self->services[i]];
        for (size_t p = 0; p < svc->n_ports; p++) {
            size_t k = 0;
            while (k < n && out[k].service != svc->ports[p].port) k++;
            if (k == n && n < max)
                out[n++] = (struct inbound_port){target_port(g->self, &svc->ports[p]),
                                                 svc->ports[p].port, svc->ports[p].proto};
        }
    }
    return n;
}

/* True if an earlier entry of ports has the same application port (one cluster, one chain). */
static int app_port_seen(const struct inbound_port *ports, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (ports[k].port == ports[i].port) return 1;
    return 0;
}

/* inbound|<port>||: where the sidecar hands inbound traffic to its own application, which
 * listens on loopback, or on the workload's address when listeners bind to it. */
static void inbound_clusters(struct gen *g, const struct inbound_port *ports, size_t n)
{
    if (!g->self) return; /* a node without a workload has no inbound side */
    const char *app = g->m->options.bind == CP_BIND_WORKLOAD ? g->self->address : "127.0.0.1";
    for (size_t i = 0; i < n; i++) {
        if (app_port_seen(ports, i)) continue;
        char name[64];
        snprintf(name, sizeof name, "inbound|%u||", ports[i].port);
        add(g, CP_CDS, name,
            static_cluster(name, app, ports[i].port, g->m->options.connect_timeout_ms), 1);
    }
}

/* ---- RDS ------------------------------------------------------------------------------------- */

static json_t *header_matcher(const struct cp_header_match *h)
{
    if (h->kind == CP_MATCH_PRESENT)
        return json_pack("{s:s,s:b}", "name", h->name, "present_match", 1);
    json_t *sm = h->kind == CP_MATCH_EXACT ? json_pack("{s:s}", "exact", h->value)
                 : h->kind == CP_MATCH_PREFIX
                     ? json_pack("{s:s}", "prefix", h->value)
                     : json_pack("{s:{s:s}}", "safe_regex", "regex", h->value);
    return json_pack("{s:s,s:o}", "name", h->name, "string_match", sm);
}

static json_t *route_json(const struct cp_service *svc, const struct cp_route *r, uint32_t port)
{
    json_t *match = json_pack("{s:s}", "prefix", r->prefix);
    if (r->n_headers) {
        json_t *hs = json_array();
        for (size_t i = 0; i < r->n_headers; i++)
            json_array_append_new(hs, header_matcher(&r->headers[i]));
        json_object_set_new(match, "headers", hs);
    }
    char name[512];
    json_t *action = json_object();
    if (r->n_dests == 1) {
        cluster_name(name, sizeof name, port, r->dests[0].subset, svc->host);
        json_object_set_new(action, "cluster", json_string(name));
    } else {
        json_t *cs = json_array();
        for (size_t i = 0; i < r->n_dests; i++) {
            cluster_name(name, sizeof name, port, r->dests[i].subset, svc->host);
            json_array_append_new(
                cs, json_pack("{s:s,s:I}", "name", name, "weight", (json_int_t)r->dests[i].weight));
        }
        json_object_set_new(action, "weighted_clusters", json_pack("{s:o}", "clusters", cs));
    }
    /* istiod writes timeout 0s (no timeout) unless one is configured. */
    uint64_t timeout = r->timeout_ms ? r->timeout_ms : svc->timeout_ms;
    json_object_set_new(action, "timeout", duration(timeout));
    if (r->retries.set) {
        json_t *rp = json_pack("{s:s,s:I}", "retry_on", r->retries.retry_on, "num_retries",
                               (json_int_t)r->retries.attempts);
        if (r->retries.per_try_timeout_ms)
            json_object_set_new(rp, "per_try_timeout", duration(r->retries.per_try_timeout_ms));
        json_object_set_new(action, "retry_policy", rp);
    }
    return json_pack("{s:s,s:o,s:o}", "name", r->name, "match", match, "route", action);
}

static json_t *service_routes(const struct cp_service *svc, uint32_t port)
{
    json_t *routes = json_array();
    for (size_t r = 0; r < svc->n_routes; r++)
        json_array_append_new(routes, route_json(svc, &svc->routes[r], port));
    return routes;
}

static void add_domain(json_t *domains, const char *host, uint32_t port)
{
    json_array_append_new(domains, json_string(host));
    json_array_append_new(domains, str_printf("%s:%u", host, port));
}

/* Istio's domain list: the FQDN, <name>.<ns>.svc, <name>.<ns>, and <name> for a service in the
 * node's own namespace (elsewhere the short name would mean another service), each also with
 * ":<port>". Domains must be unique across a route configuration's virtual hosts. */
static json_t *domains(const struct gen *g, const struct cp_service *svc, uint32_t port)
{
    json_t *d = json_array();
    char buf[256];
    add_domain(d, svc->host, port);
    snprintf(buf, sizeof buf, "%s.%s.svc", svc->name, svc->ns);
    add_domain(d, buf, port);
    snprintf(buf, sizeof buf, "%s.%s", svc->name, svc->ns);
    add_domain(d, buf, port);
    if (strcmp(svc->ns, g->ns) == 0) add_domain(d, svc->name, port);
    return d;
}

static const struct cp_port *service_port(const struct cp_service *svc, uint32_t port)
{
    for (size_t p = 0; p < svc->n_ports; p++)
        if (svc->ports[p].port == port) return &svc->ports[p];
    return NULL;
}

static void route_configuration(struct gen *g, uint32_t port)
{
    json_t *vhosts = json_array();
    for (size_t i = 0; i < g->m->n_services; i++) {
        const struct cp_service *svc = &g->m->services[i];
        if (!service_port(svc, port)) continue;
        json_array_append_new(vhosts, json_pack("{s:o,s:o,s:o}", "name",
                                                str_printf("%s:%u", svc->host, port), "domains",
                                                domains(g, svc, port), "routes",
                                                service_routes(svc, port)));
    }
    /* istiod's allow_any: unknown hosts pass through to their original destination. */
    json_array_append_new(vhosts, json_pack("{s:s,s:[s],s:[{s:s,s:{s:s},s:{s:s,s:s}}]}", "name",
                                            "allow_any", "domains", "*", "routes", "name",
                                            "allow_any", "match", "prefix", "/", "route", "cluster",
                                            "PassthroughCluster", "timeout", "0s"));
    char name[16];
    snprintf(name, sizeof name, "%u", port);
    add(g, CP_RDS, name,
        json_pack("{s:s,s:o,s:b}", "name", name, "virtual_hosts", vhosts, "validate_clusters", 0),
        1);
}

/* ---- LDS ------------------------------------------------------------------------------------- */

static json_t *router_filters(void)
{
    return json_pack("[{s:s,s:{s:s}}]", "name", "envoy.filters.http.router", "typed_config",
                     "@type", ROUTER_TYPE);
}

/* An HCM filter with the router; route_spec (consumed) goes under route_key ("rds" or
 * "route_config"). */
/* The access_log list of an HCM or tcp_proxy (options.access_log, Istio's accessLogFile), or
 * NULL without one. */
static json_t *access_log(const struct gen *g)
{
    if (!g->m->options.access_log) return NULL;
    return json_pack("[{s:s,s:{s:s,s:s,s:{s:{s:s}}}}]", "name", "envoy.access_loggers.file",
                     "typed_config", "@type", FILE_LOG_TYPE, "path", g->m->options.access_log,
                     "log_format", "text_format_source", "inline_string", ACCESS_LOG_FORMAT);
}

static json_t *hcm_filter(const struct gen *g, const char *stat_prefix, json_t *route_spec,
                          const char *route_key, int inbound)
{
    json_t *hcm = json_pack("{s:s,s:s,s:s,s:o}", "@type", HCM_TYPE, "stat_prefix", stat_prefix,
                            "codec_type", "AUTO", "http_filters", router_filters());
    json_object_set_new(hcm, route_key, route_spec);
    /* x-forwarded-client-cert as istiod sets it: inbound appends this hop (the client's
     * certificate: subject, URI and DNS SANs) so the application sees who called; outbound
     * replaces whatever the application sent with what its connection proves (nothing). */
    if (inbound)
        json_object_set_new(hcm, "forward_client_cert_details", json_string("APPEND_FORWARD"));
    else
        json_object_set_new(hcm, "forward_client_cert_details", json_string("SANITIZE_SET"));
    if (inbound)
        json_object_set_new(hcm, "set_current_client_cert_details",
                            json_pack("{s:b,s:b,s:b}", "subject", 1, "dns", 1, "uri", 1));
    json_t *al = access_log(g);
    if (al) json_object_set_new(hcm, "access_log", al);
    return json_pack("{s:s,s:o}", "name", "envoy.filters.network.http_connection_manager",
                     "typed_config", hcm);
}

static json_t *tcp_proxy_filter(const struct gen *g, const char *cluster)
{
    json_t *tp = json_pack("{s:s,s:s,s:s}", "@type", TCP_PROXY_TYPE, "stat_prefix", cluster,
                           "cluster", cluster);
    json_t *al = access_log(g);
    if (al) json_object_set_new(tp, "access_log", al);
    return json_pack("{s:s,s:o}", "name", "envoy.filters.network.tcp_proxy", "typed_config", tp);
}

static json_t *listener(const struct gen *g, const char *name, uint32_t port, json_t *chains,
                        const char *direction)
{
    return json_pack("{s:s,s:{s:{s:s,s:I}},s:o,s:s}", "name", name, "address", "socket_address",
                     "address", g->bind, "port_value", (json_int_t)(port + g->off), "filter_chains",
                     chains, "traffic_direction", direction);
}

/* 0.0.0.0_<port>: HTTP ports share one listener and the route configuration "<port>"; a tcp port
 * belongs to one service (the mesh checks it) and proxies to its cluster. */
static void outbound_listener(struct gen *g, uint32_t port)
{
    const struct cp_service *tcp_svc = NULL;
    for (size_t i = 0; i < g->m->n_services; i++) {
        const struct cp_port *p = service_port(&g->m->services[i], port);
        if (p && p->proto == CP_PROTO_TCP) tcp_svc = &g->m->services[i];
    }
    char name[128], prefix[160];
    snprintf(name, sizeof name, "%s_%u", g->bind, port);
    json_t *filter;
    if (tcp_svc) {
        char cluster[512];
        cluster_name(cluster, sizeof cluster, port, NULL, tcp_svc->host);
        filter = tcp_proxy_filter(g, cluster);
    } else {
        snprintf(prefix, sizeof prefix, "outbound_%s", name);
        json_t *rds = json_pack("{s:o,s:o}", "config_source", ads_source(), "route_config_name",
                                str_printf("%u", port));
        filter = hcm_filter(g, prefix, rds, "rds", 0);
    }
    json_t *l = listener(g, name, port, json_pack("[{s:[o]}]", "filters", filter), "OUTBOUND");
    /* With iptables capture (Istio's setup) these listeners do not bind: virtualOutbound hands
     * them the connections redirected to 15001. */
    if (g->m->options.capture) json_object_set_new(l, "bind_to_port", json_false());
    add(g, CP_LDS, name, l, 1);
}

static json_t *original_dst_filters(void)
{
    return json_pack("[{s:s,s:{s:s}}]", "name", "envoy.filters.listener.original_dst",
                     "typed_config", "@type", ORIGINAL_DST_TYPE);
}

static void virtual_outbound(struct gen *g)
{
    json_t *chains = json_pack("[{s:s,s:[o]}]", "name", "virtualOutbound-catchall-tcp", "filters",
                               tcp_proxy_filter(g, "PassthroughCluster"));
    json_t *l = listener(g, "virtualOutbound", OUTBOUND_CAPTURE_PORT, chains, "OUTBOUND");
    if (g->m->options.capture) {
        json_object_set_new(l, "use_original_dst", json_true());
        json_object_set_new(l, "listener_filters", original_dst_filters());
    }
    add(g, CP_LDS, "virtualOutbound", l, 1);
}

/* The filter handing an inbound connection to the application: inbound|<port>||. */
static json_t *inbound_filter(const struct gen *g, const struct inbound_port *p)
{
    char cluster[64];
    snprintf(cluster, sizeof cluster, "inbound|%u||", p->port);
    if (p->proto == CP_PROTO_TCP) return tcp_proxy_filter(g, cluster);
    json_t *rc = json_pack("{s:s,s:[{s:o,s:[s],s:[{s:s,s:{s:s},s:{s:s,s:s}}]}],s:b}", "name",
                           cluster, "virtual_hosts", "name", str_printf("inbound|http|%u", p->port),
                           "domains", "*", "routes", "name", "default", "match", "prefix", "/",
                           "route", "cluster", cluster, "timeout", "0s", "validate_clusters", 0);
    return hcm_filter(g, cluster, rc, "route_config", 1);
}

/* A filter_chain_match: the destination port when dport is not 0 (virtualInbound), the
 * transport protocol when given, the ALPN list (NULL-terminated) when given. */
static json_t *chain_match(uint32_t dport, const char *transport, const char *const *alpn)
{
    json_t *m = json_object();
    if (dport) json_object_set_new(m, "destination_port", json_integer(dport));
    if (transport) json_object_set_new(m, "transport_protocol", json_string(transport));
    if (alpn) {
        json_t *a = json_array();
        for (size_t i = 0; alpn[i]; i++) json_array_append_new(a, json_string(alpn[i]));
        json_object_set_new(m, "application_protocols", a);
    }
    return m;
}

/* What a client sidecar offers (upstream_alpn, with istiod's istio.alpn variants) and what a
 * plaintext HTTP client is seen as by the HTTP inspector. */
static const char *const mtls_http_alpn[] = {"istio-http/1.0", "istio-http/1.1", "istio-h2", NULL};
static const char *const mtls_tcp_alpn[] = {"istio-peer-exchange", "istio", NULL};
static const char *const plain_http_alpn[] = {"http/1.1", "http/1.0", "h2c", NULL};

/* Istio's inbound filter chains for one port, appended to chains. mTLS off: one plaintext chain.
 * On: a chain for TLS offering the mesh's ALPN, which terminates mutual TLS (Istio's STRICT);
 * PERMISSIVE adds a plaintext chain (raw_buffer, for HTTP the versions the HTTP inspector
 * reports). Under STRICT a plaintext client or a TLS client not speaking the mesh's ALPN finds
 * no chain and is closed. dport: match on the original destination port (virtualInbound). */
static void inbound_chains(const struct gen *g, json_t *chains, const char *name, uint32_t dport,
                           const struct inbound_port *p)
{
    int tcp = p->proto == CP_PROTO_TCP;
    enum cp_mtls mode = g->m->options.mtls;
    if (mode == CP_MTLS_OFF) {
        json_t *fc = json_pack("{s:s,s:[o]}", "name", name, "filters", inbound_filter(g, p));
        if (dport) json_object_set_new(fc, "filter_chain_match", chain_match(dport, NULL, NULL));
        json_array_append_new(chains, fc);
        return;
    }
    json_array_append_new(chains,
                          json_pack("{s:s,s:o,s:o,s:[o]}", "name", name, "filter_chain_match",
                                    chain_match(dport, "tls", tcp ? mtls_tcp_alpn : mtls_http_alpn),
                                    "transport_socket", downstream_tls(g, p->proto), "filters",
                                    inbound_filter(g, p)));
    if (mode == CP_MTLS_PERMISSIVE)
        json_array_append_new(
            chains, json_pack("{s:o,s:o,s:[o]}", "name", str_printf("%s-plaintext", name),
                              "filter_chain_match",
                              chain_match(dport, "raw_buffer", tcp ? NULL : plain_http_alpn),
                              "filters", inbound_filter(g, p)));
}

/* listener_filters of an inbound listener: original_dst under capture, and with mTLS the TLS
 * inspector (transport protocol, ALPN) and, when it serves HTTP, the HTTP inspector. NULL if
 * none. */
static json_t *inbound_listener_filters(const struct gen *g, int capture, int http)
{
    json_t *lf = capture ? original_dst_filters() : json_array();
    if (g->m->options.mtls != CP_MTLS_OFF) {
        json_array_append_new(lf, json_pack("{s:s,s:{s:s}}", "name",
                                            "envoy.filters.listener.tls_inspector", "typed_config",
                                            "@type", TLS_INSPECTOR_TYPE));
        if (http)
            json_array_append_new(lf, json_pack("{s:s,s:{s:s}}", "name",
                                                "envoy.filters.listener.http_inspector",
                                                "typed_config", "@type", HTTP_INSPECTOR_TYPE));
    }
    if (json_array_size(lf) == 0) {
        json_decref(lf);
        return NULL;
    }
    return lf;
}

static void virtual_inbound(struct gen *g, const struct inbound_port *ports, size_t n)
{
    json_t *chains = json_array();
    int http = 0;
    for (size_t i = 0; i < n; i++) {
        if (app_port_seen(ports, i)) continue;
        char chain[64];
        snprintf(chain, sizeof chain, "0.0.0.0_%u", ports[i].port);
        inbound_chains(g, chains, chain, ports[i].port, &ports[i]);
        http |= ports[i].proto != CP_PROTO_TCP;
    }
    json_array_append_new(chains, json_pack("{s:s,s:[o]}", "name", "InboundPassthroughFilterChain",
                                            "filters", tcp_proxy_filter(g, "PassthroughCluster")));
    json_t *l = listener(g, "virtualInbound", INBOUND_CAPTURE_PORT, chains, "INBOUND");
    if (g->m->options.capture) json_object_set_new(l, "use_original_dst", json_true());
    json_t *lf = inbound_listener_filters(g, g->m->options.capture, http);
    if (lf) json_object_set_new(l, "listener_filters", lf);
    add(g, CP_LDS, "virtualInbound", l, 1);
}

/* options.ingress: listeners. Istio's Sidecar ingress listener with captureMode NONE: bound to
 * the workload's address and the service port (+ port_offset), named <address>_<port> like the
 * outbound listener it replaces on this node, and the endpoint the service's clients reach. */
static void ingress_listener(struct gen *g, const struct inbound_port *p)
{
    char name[128];
    snprintf(name, sizeof name, "%s_%u", g->bind, p->service);
    json_t *chains = json_array();
    inbound_chains(g, chains, name, 0, p);
    json_t *l = listener(g, name, p->service, chains, "INBOUND");
    json_t *lf = inbound_listener_filters(g, 0, p->proto != CP_PROTO_TCP);
    if (lf) json_object_set_new(l, "listener_filters", lf);
    add(g, CP_LDS, name, l, 1);
}

/* The node serves port through an ingress listener (so it has no outbound listener there). */
static int ingress_port(const struct gen *g, const struct inbound_port *ports, size_t n,
                        uint32_t port)
{
    if (g->m->options.ingress != CP_INGRESS_LISTENERS) return 0;
    for (size_t i = 0; i < n; i++)
        if (ports[i].service == port) return 1;
    return 0;
}

/* Proxyless gRPC (@grpc/grpc-js-xds, grpc-go...): the client asks LDS for the name in its target,
 * xds:///<host>:<port>, and expects an api_listener whose HCM routes it. As istiod does, every
 * host form a client may write gets its listener; routes are inline so one LDS answer suffices. */
static void api_listeners(struct gen *g, const struct cp_service *svc, const struct cp_port *port)
{
    char forms[5][256];
    size_t n = 0;
    snprintf(forms[n++], sizeof forms[0], "%s", svc->host);
    snprintf(forms[n++], sizeof forms[0], "%s.%s.svc", svc->name, svc->ns);
    snprintf(forms[n++], sizeof forms[0], "%s.%s", svc->name, svc->ns);
    if (strcmp(svc->ns, g->ns) == 0) snprintf(forms[n++], sizeof forms[0], "%s", svc->name);
    for (size_t i = 0; i < n; i++)
        for (int with_port = 0; with_port < 2; with_port++) {
            /* A target without a port means the service's only (first) port. */
            if (!with_port && port != &svc->ports[0]) continue;
            char name[1300];
            if (with_port)
                snprintf(name, sizeof name, "%s:%u", forms[i], port->port);
            else
                snprintf(name, sizeof name, "%s", forms[i]);
            json_t *rc =
                json_pack("{s:s,s:[{s:s,s:[s],s:o}]}", "name", name, "virtual_hosts", "name", name,
                          "domains", "*", "routes", service_routes(svc, port->port));
            json_t *hcm = hcm_filter(g, name, rc, "route_config", 0);
            json_t *api = json_object_get(hcm, "typed_config");
            json_object_del(api, "codec_type");
            json_object_del(api, "access_log"); /* a proxyless client logs nothing */
            json_object_del(api, "forward_client_cert_details");
            json_t *l =
                json_pack("{s:s,s:{s:O}}", "name", name, "api_listener", "api_listener", api);
            json_decref(hcm);
            add(g, CP_LDS, name, l, 0);
        }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Every distinct service port in the mesh, sorted. */
static size_t mesh_ports(const struct cp_mesh *m, uint32_t **out)
{
    size_t n = 0, cap = 0;
    uint32_t *v = NULL;
    for (size_t i = 0; i < m->n_services; i++)
        for (size_t p = 0; p < m->services[i].n_ports; p++) {
            uint32_t port = m->services[i].ports[p].port;
            size_t k = 0;
            while (k < n && v[k] != port) k++;
            if (k < n) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                v = realloc(v, cap * sizeof *v);
                if (!v) abort();
            }
            v[n++] = port;
        }
    if (n) qsort(v, n, sizeof *v, cmp_u32);
    *out = v;
    return n;
}

static int cmp_resource(const void *a, const void *b)
{
    return strcmp(((const struct cp_resource *)a)->name, ((const struct cp_resource *)b)->name);
}

static void finish_type(struct cp_resources *r, int t)
{
    if (r->n[t]) qsort(r->v[t], r->n[t], sizeof *r->v[t], cmp_resource);
    /* The type's version: a hash over names and versions, so it changes with any of them. */
    size_t len = 0;
    for (size_t i = 0; i < r->n[t]; i++) len += strlen(r->v[t][i].name) + 18;
    char *buf = malloc(len + 1), *p = buf;
    if (!buf) abort();
    for (size_t i = 0; i < r->n[t]; i++)
        p += sprintf(p, "%s %s\n", r->v[t][i].name, r->v[t][i].version);
    cp_hash_hex(buf, (size_t)(p - buf), r->version[t]);
    free(buf);
}

static void finish(struct cp_resources *r)
{
    for (int t = 0; t < CP_NTYPES; t++) finish_type(r, t);
}

void cp_resources_set(struct cp_resources *r, enum cp_type t, struct cp_resource *v, size_t n)
{
    for (size_t i = 0; i < r->n[t]; i++) {
        free(r->v[t][i].name);
        free(r->v[t][i].bytes);
    }
    free(r->v[t]);
    r->v[t] = v;
    r->n[t] = n;
    for (size_t i = 0; i < n; i++) cp_hash_hex(v[i].bytes, v[i].len, v[i].version);
    finish_type(r, t);
}

struct cp_resources *cp_generate(const struct cp_mesh *m, const struct cp_node *node, char *err,
                                 size_t errlen)
{
    struct gen g = {.m = m, .ns = "default", .bind = "0.0.0.0", .err = err, .errlen = errlen};
    g.out = calloc(1, sizeof *g.out);
    if (!g.out) abort();
    if (node && node->ip[0]) g.self = cp_mesh_workload_by_ip(m, node->ip);
    if (node && node->ns[0]) g.ns = node->ns;
    if (g.self) {
        g.off = g.self->port_offset;
        if (m->options.bind == CP_BIND_WORKLOAD) g.bind = g.self->address;
    }
    struct inbound_port in[64];
    size_t n_in = inbound_ports(&g, in, 64);
    clusters(&g);
    inbound_clusters(&g, in, n_in);
    uint32_t *ports;
    size_t n_ports = mesh_ports(m, &ports);
    for (size_t i = 0; i < n_ports; i++) {
        /* istiod, too, drops an outbound listener that conflicts with an inbound one */
        if (!ingress_port(&g, in, n_in, ports[i])) outbound_listener(&g, ports[i]);
        int http = 0;
        for (size_t s = 0; s < m->n_services; s++) {
            const struct cp_port *p = service_port(&m->services[s], ports[i]);
            if (p && p->proto != CP_PROTO_TCP) http = 1;
        }
        if (http) route_configuration(&g, ports[i]);
    }
    free(ports);
    virtual_outbound(&g);
    virtual_inbound(&g, in, n_in);
    if (m->options.ingress == CP_INGRESS_LISTENERS)
        for (size_t i = 0; i < n_in; i++) ingress_listener(&g, &in[i]);
    for (size_t s = 0; s < m->n_services; s++)
        for (size_t p = 0; p < m->services[s].n_ports; p++)
            if (m->services[s].ports[p].proto != CP_PROTO_TCP)
                api_listeners(&g, &m->services[s], &m->services[s].ports[p]);
    if (g.failed) {
        cp_resources_free(g.out);
        return NULL;
    }
    finish(g.out);
    return g.out;
}

void cp_resources_free(struct cp_resources *r)
{
    if (!r) return;
    for (int t = 0; t < CP_NTYPES; t++) {
        for (size_t i = 0; i < r->n[t]; i++) {
            free(r->v[t][i].name);
            free(r->v[t][i].bytes);
        }
        free(r->v[t]);
    }
    free(r);
}

const struct cp_resource *cp_resources_find(const struct cp_resources *r, enum cp_type t,
                                            const char *name)
{
    size_t lo = 0, hi = r->n[t];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->v[t][mid].name, name);
        if (c == 0) return &r->v[t][mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
