/* xDS resources → snapshot: resource shapes, refusals naming resource and field, warming,
 * reuse of unchanged clusters across compiles, EDS-only updates, filter chain selection, and
 * RDS semantics (unknown clusters, retry policies carried). */
#include <arpa/inet.h>
#include <errno.h>

#include "sidecar/chain_match.h"
#include "sidecar/dns.h"
#include "sidecar/router.h"
#include "test.h"
#include "xds/ads.h"
#include "xds/bootstrap.h"
#include "xds_input.h"

static xds_bootstrap *empty_bootstrap(void)
{
    char err[256];
    return xds_bootstrap_load_yaml_string("node: { id: n, cluster: c }\n", 0, err, sizeof err);
}

/* An EDS cluster; extra fields are added, and a connect_timeout in them replaces the 1s. */
static const char *eds_cluster(const char *name, const char *extra)
{
    static char buf[2048];
    extra = extra ? extra : "";
    snprintf(buf, sizeof buf,
             "name: %s\ntype: EDS\n%seds_cluster_config: { eds_config: { ads: {} } }\n%s", name,
             strstr(extra, "connect_timeout:") ? "" : "connect_timeout: 1s\n", extra);
    return buf;
}

static const char *cla(const char *name, const char *endpoints_yaml)
{
    static char buf[2048];
    snprintf(buf, sizeof buf, "cluster_name: %s\nendpoints:\n%s", name, endpoints_yaml);
    return buf;
}

#define EP(ip, port)                                                                               \
    "{ endpoint: { address: { socket_address: { address: " ip ", port_value: " port " } } } }"

static const char *http_listener(const char *name, int port, const char *route)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "name: %s\n"
             "address: { socket_address: { address: 127.0.0.1, port_value: %d } }\n"
             "filter_chains:\n"
             "- filters:\n"
             "  - name: envoy.filters.network.http_connection_manager\n"
             "    typed_config:\n"
             "      \"@type\": type.googleapis.com/"
             "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
             "      stat_prefix: %s\n"
             "      rds: { route_config_name: \"%s\", config_source: { ads: {} } }\n"
             "      http_filters:\n"
             "      - name: envoy.filters.http.router\n"
             "        typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n",
             name, port, name, route);
    return buf;
}

static const char *route_to(const char *name, const char *cluster, const char *route_extra)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "name: \"%s\"\n"
             "virtual_hosts:\n"
             "- name: vh\n"
             "  domains: [\"*\"]\n"
             "  routes:\n"
             "  - match: { prefix: / }\n"
             "    route: { cluster: \"%s\" %s }\n",
             name, cluster, route_extra ? route_extra : "");
    return buf;
}

static struct rs_snapshot *compile(xds_bootstrap *bs, struct tin *t, struct rs_snapshot *prev,
                                   char *err, size_t len)
{
    struct rs_snapshot *s = rs_config_compile_xds(bs, &t->in, prev, true, err, len);
    if (!s) fprintf(stderr, "  compile: %s\n", err);
    return s;
}

static void expect_nack(xds_bootstrap *bs, struct tin *t, const char *want)
{
    char err[1024];
    struct rs_snapshot *s = rs_config_compile_xds(bs, &t->in, NULL, true, err, sizeof err);
    CHECK(s == NULL);
    if (s) {
        fprintf(stderr, "  accepted, wanted \"%s\"\n", want);
        rs_snapshot_unref(s);
    } else if (!strstr(err, want)) {
        fprintf(stderr, "  \"%s\" lacks \"%s\"\n", err, want);
        CHECK(0);
    }
}

static struct rs_cluster *cluster(const struct rs_snapshot *s, const char *name)
{
    int i = rs_config_cluster_index(s, name);
    return i >= 0 ? s->clusters[i] : NULL;
}

static uint32_t nhosts(struct rs_cluster *c)
{
    struct rs_hostset *h = c ? rs_cluster_hosts(c) : NULL;
    uint32_t n = h ? h->n : UINT32_MAX;
    rs_hostset_unref(h);
    return n;
}

static void test_eds_warming_and_timeout(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("a", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("b", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") "]\n")) == 0);
    char err[1024];
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nclusters == 1 && cluster(s, "a") && !cluster(s, "b")); /* b warms */
    CHECK_EQ_INT(nhosts(s ? cluster(s, "a") : NULL), 1);
    rs_snapshot_unref(s);
    /* b's initial_fetch_timeout passes: used with no hosts */
    t.timed_out[RS_XDS_EDS][t.n_timed_out[RS_XDS_EDS]++] = "b";
    s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nclusters == 2);
    CHECK_EQ_INT(nhosts(s ? cluster(s, "b") : NULL), 0);
    rs_snapshot_unref(s);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void test_rds_warming_and_semantics(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("a", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") "]\n")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_LDS, http_listener("l1", 10001, "r1")) == 0);
    char err[1024];
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 0); /* r1 not there yet: l1 warms */
    rs_snapshot_unref(s);
    /* r1 arrives, with a route to a cluster that does not exist (RDS: 503 NC at request time,
     * not a config error) and a retry policy carried into the route */
    CHECK(
        tin_yaml(&t, RS_XDS_RDS,
                 "name: r1\n"
                 "virtual_hosts:\n"
                 "- name: vh\n"
                 "  domains: [\"*\"]\n"
                 "  retry_policy: { retry_on: connect-failure, num_retries: 1 }\n"
                 "  routes:\n"
                 "  - match: { prefix: /missing }\n"
                 "    route: { cluster: nope }\n"
                 "  - match: { prefix: / }\n"
                 "    route:\n"
                 "      cluster: a\n"
                 "      timeout: 3s\n"
                 "      retry_policy: { retry_on: \"5xx,reset\", num_retries: 3, per_try_timeout: "
                 "0.5s, retriable_status_codes: [503], retry_back_off: { base_interval: 0.1s, "
                 "max_interval: 1s } }\n") == 0);
    s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 1);
    const struct rs_hcm_cfg *h = s && s->nlisteners ? s->listeners[0].chains[0].hcm : NULL;
    CHECK(h && h->routes && strcmp(h->rds_name, "r1") == 0);
    if (h && h->routes) {
        struct rs_route_request rq = {
            .method = "GET", .method_len = 3, .authority = "x", .authority_len = 1};
        rq.path = "/missing";
        rq.path_len = 8;
        const struct rs_route *r = rs_route_match(h->routes, &rq);
        CHECK(r && r->clusters[0].index == RS_ROUTE_CLUSTER_UNKNOWN);
        rq.path = "/x";
        rq.path_len = 2;
        r = rs_route_match(h->routes, &rq);
        CHECK(r && r->timeout_ms == 3000 && r->retry);
        if (r && r->retry) {
            CHECK_STR(r->retry->retry_on, "5xx,reset");
            CHECK_EQ_INT(r->retry->num_retries, 3);
            CHECK_EQ_INT(r->retry->per_try_timeout_ms, 500);
            CHECK_EQ_INT(r->retry->backoff_base_ms, 100);
            CHECK_EQ_INT(r->retry->n_retriable_status_codes, 1);
        }
    }
    rs_snapshot_unref(s);
    /* an RDS name that timed out: served with no routes */
    CHECK(tin_yaml(&t, RS_XDS_LDS, http_listener("l2", 10002, "r2")) == 0);
    t.timed_out[RS_XDS_RDS][t.n_timed_out[RS_XDS_RDS]++] = "r2";
    s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 2);
    rs_snapshot_unref(s);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void test_cluster_reuse_and_eds_update(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("a", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("b", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") "]\n")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("b", "- lb_endpoints: [" EP("10.0.0.2", "80") "]\n")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_LDS, http_listener("l1", 10001, "r1")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_RDS, route_to("r1", "a", NULL)) == 0);
    char err[1024];
    struct rs_snapshot *s1 = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s1 != NULL);
    if (!s1) goto out;
    struct rs_cluster *a1 = cluster(s1, "a"), *b1 = cluster(s1, "b");
    struct rs_hostset *ha1 = rs_cluster_hosts(a1);
    /* a route-only push: same cluster objects, same host sets */
    CHECK(tin_yaml(&t, RS_XDS_RDS, route_to("r1", "b", NULL)) == 0);
    struct rs_snapshot *s2 = compile(bs, &t, s1, err, sizeof err);
    CHECK(s2 && cluster(s2, "a") == a1 && cluster(s2, "b") == b1);
    struct rs_hostset *ha2 = a1 ? rs_cluster_hosts(a1) : NULL;
    CHECK(ha2 == ha1);
    rs_hostset_unref(ha2);
    /* the listener's hash changes with its routes */
    CHECK(s2 && s2->nlisteners == 1 && s2->listeners[0].hash != s1->listeners[0].hash);
    /* a changed cluster definition is a new object; the unchanged one is kept */
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("b", "connect_timeout: 2s\n")) == 0);
    struct rs_snapshot *s3 = s2 ? compile(bs, &t, s2, err, sizeof err) : NULL;
    CHECK(s3 && cluster(s3, "a") == a1 && cluster(s3, "b") != b1);
    CHECK(s3 && cluster(s3, "b") && cluster(s3, "b")->connect_timeout_ms == 2000);
    /* EDS-only: host sets swapped into the live clusters, no new snapshot */
    CHECK(tin_yaml(&t, RS_XDS_EDS,
                   cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") ", " EP("10.0.0.3",
                                                                             "80") "]\n")) == 0);
    int n = s3 ? rs_config_apply_eds(s3, &t.in, true, err, sizeof err) : -1;
    CHECK_EQ_INT(n, 1); /* only a's assignment changed */
    CHECK_EQ_INT(nhosts(a1), 2);
    /* a bad assignment changes nothing and says why */
    CHECK(tin_yaml(&t, RS_XDS_EDS,
                   cla("a", "- lb_endpoints: [{ endpoint: { address: { socket_address: { "
                            "address: not-ip, port_value: 80 } } } }]\n")) == 0);
    n = s3 ? rs_config_apply_eds(s3, &t.in, true, err, sizeof err) : 0;
    CHECK_EQ_INT(n, -1);
    CHECK(strstr(err, "ClusterLoadAssignment \"a\": endpoints[0].lb_endpoints[0].endpoint."
                      "address.socket_address: an IP address") != NULL);
    CHECK_EQ_INT(nhosts(a1), 2);
    /* an assignment that is gone but still pending keeps the hosts; once the client says it
     * arrived (removed), the cluster has none */
    tin_remove(&t, RS_XDS_EDS, "a");
    n = s3 ? rs_config_apply_eds(s3, &t.in, true, err, sizeof err) : -1;
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(nhosts(a1), 2);
    t.timed_out[RS_XDS_EDS][t.n_timed_out[RS_XDS_EDS]++] = "a";
    n = s3 ? rs_config_apply_eds(s3, &t.in, true, err, sizeof err) : -1;
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(nhosts(a1), 0);
    rs_hostset_unref(ha1);
    rs_snapshot_unref(s3);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s1);
out:
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void test_refusals_name_resource_and_field(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, "name: m\nlb_policy: MAGLEV\n") == 0);
    expect_nack(bs, &t, "Cluster \"m\": lb_policy: only ROUND_ROBIN, LEAST_REQUEST, RANDOM");
    tin_remove(&t, RS_XDS_CDS, "m");
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   "name: o\ntype: ORIGINAL_DST\nlb_policy: CLUSTER_PROVIDED\n"
                   "load_assignment: { endpoints: [ { lb_endpoints: [" EP("1.1.1.1",
                                                                          "1") "] } ] }\n") == 0);
    expect_nack(bs, &t, "Cluster \"o\": load_assignment: ORIGINAL_DST clusters take no endpoints");
    tin_remove(&t, RS_XDS_CDS, "o");
    CHECK(tin_yaml(&t, RS_XDS_CDS, "name: p\nlb_policy: CLUSTER_PROVIDED\n") == 0);
    expect_nack(bs, &t,
                "Cluster \"p\": lb_policy: CLUSTER_PROVIDED is only valid for ORIGINAL_DST");
    tin_remove(&t, RS_XDS_CDS, "p");
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   eds_cluster("c", "common_lb_config: { close_connections_on_host_set_change: "
                                    "true }\n")) == 0);
    expect_nack(bs, &t, "Cluster \"c\": common_lb_config.close_connections_on_host_set_change");
    tin_remove(&t, RS_XDS_CDS, "c");
    /* a listener's TLS context on a cluster is a mistake, named */
    CHECK(
        tin_yaml(&t, RS_XDS_CDS,
                 "name: d\ntype: STATIC\ntransport_socket: { name: tls, typed_config: { \"@type\": "
                 "type.googleapis.com/"
                 "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext } }\n") == 0);
    expect_nack(bs, &t,
                "Cluster \"d\": transport_socket.typed_config: a cluster's transport socket is "
                "raw_buffer or an UpstreamTlsContext, not "
                "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    tin_remove(&t, RS_XDS_CDS, "d");
    /* a TLS-only cluster whose certificates come from SDS (Istio's shape) */
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   "name: s\ntype: STATIC\n"
                   "transport_socket: { name: tls, typed_config: { \"@type\": "
                   "type.googleapis.com/"
                   "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, "
                   "common_tls_context: { tls_certificate_sds_secret_configs: [ { name: default, "
                   "sds_config: { ads: {} } } ] } } }\n") == 0);
    {
        /* its secret has not arrived: warming (left out), not refused */
        char err[512];
        xds_bootstrap *ads = xds_bootstrap_load_yaml_string(
            "node: { id: n, cluster: c }\ndynamic_resources: { ads_config: { api_type: GRPC, "
            "grpc_services: [ { envoy_grpc: { cluster_name: xds-grpc } } ] } }\n",
            0, err, sizeof err);
        struct rs_snapshot *s =
            ads ? rs_config_compile_xds(ads, &t.in, NULL, true, err, sizeof err) : NULL;
        CHECK(s != NULL && rs_config_cluster_index(s, "s") < 0);
        rs_snapshot_unref(s);
        xds_bootstrap_free(ads);
        /* and without ADS, a secret over ADS is refused */
        expect_nack(bs, &t, "an SDS secret over ADS needs dynamic_resources");
    }
    tin_remove(&t, RS_XDS_CDS, "s");
    /* duplicate listener names across static and dynamic are refused too; a listener filter
     * Ringside does not know is refused by name */
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   "name: lf\naddress: { socket_address: { address: 127.0.0.1, port_value: 1 } }\n"
                   "listener_filters: [ { name: acme.sniffer, typed_config: { \"@type\": "
                   "type.googleapis.com/google.protobuf.Empty } } ]\n"
                   "filter_chains: [ { filters: [ { name: t, typed_config: { \"@type\": "
                   "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "
                   "stat_prefix: t, cluster: x } } ] } ]\n") == 0);
    expect_nack(bs, &t,
                "Listener \"lf\": listener_filters[0]: acme.sniffer: listener filter "
                "acme.sniffer of type google.protobuf.Empty is not supported");
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void test_tcp_proxy_to_missing_cluster(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   "name: t\naddress: { socket_address: { address: 127.0.0.1, port_value: 1 } }\n"
                   "filter_chains: [ { filters: [ { name: t, typed_config: { \"@type\": "
                   "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "
                   "stat_prefix: t, cluster: warming } } ] } ]\n") == 0);
    char err[1024];
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 1 && s->listeners[0].chains[0].tcp &&
          s->listeners[0].chains[0].tcp->clusters[0] == RS_CLUSTER_NONE);
    rs_snapshot_unref(s);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static struct rs_filter_chain *pick(const struct rs_listener *l, const char *lip, int lport,
                                    const char *rip, int rport)
{
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rport)};
    inet_pton(AF_INET, lip, &local.sin_addr);
    inet_pton(AF_INET, rip, &remote.sin_addr);
    return rs_listener_pick_chain(l, (void *)&local, (void *)&remote, NULL);
}

#define TCP_TO(c)                                                                                  \
    "filters: [ { name: t, typed_config: { \"@type\": "                                            \
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: "    \
    "t, cluster: " c " } } ]"

static void test_filter_chain_match_precedence(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(
              &t, RS_XDS_LDS,
              "name: m\naddress: { socket_address: { address: 0.0.0.0, port_value: 1 } }\n"
              "filter_chains:\n"
              "- name: wide\n"
              "  filter_chain_match: { prefix_ranges: [ { address_prefix: 10.0.0.0, "
              "prefix_len: 8 } ] }\n"
              "  " TCP_TO(
                  "x") "\n"
                       "- name: narrow\n"
                       "  filter_chain_match: { prefix_ranges: [ { address_prefix: 10.1.0.0, "
                       "prefix_len: 16 } ] }\n"
                       "  " TCP_TO(
                           "x") "\n"
                                "- name: port\n"
                                "  filter_chain_match: { destination_port: 8080 }\n"
                                "  " TCP_TO(
                                    "x") "\n"
                                         "- name: local-src\n"
                                         "  filter_chain_match: { destination_port: 9090, "
                                         "source_type: "
                                         "SAME_IP_OR_LOOPBACK }\n"
                                         "  " TCP_TO(
                                             "x") "\n"
                                                  "- name: any-src\n"
                                                  "  filter_chain_match: { destination_port: 9090, "
                                                  "source_ports: [ 1234 ] }\n"
                                                  "  " TCP_TO("x") "\n"
                                                                   "- name: tls-only\n"
                                                                   "  filter_chain_match: { "
                                                                   "destination_port: 7070, "
                                                                   "transport_protocol: tls }\n"
                                                                   "  " TCP_TO(
                                                                       "x") "\n"
                                                                            "default_filter_chain: "
                                                                            "{ name: dflt, " TCP_TO(
                                                                                "x") " }\n") == 0);
    char err[1024];
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 1);
    if (s && s->nlisteners == 1) {
        const struct rs_listener *l = &s->listeners[0];
        struct rs_filter_chain *fc;
        /* destination port first: an exact port beats the prefix chains */
        fc = pick(l, "10.1.2.3", 8080, "192.168.0.1", 5000);
        CHECK(fc && strcmp(fc->name, "port") == 0);
        /* then the longest destination prefix */
        fc = pick(l, "10.1.2.3", 80, "192.168.0.1", 5000);
        CHECK(fc && strcmp(fc->name, "narrow") == 0);
        fc = pick(l, "10.2.2.3", 80, "192.168.0.1", 5000);
        CHECK(fc && strcmp(fc->name, "wide") == 0);
        fc = pick(l, "172.16.0.1", 80, "192.168.0.1", 5000);
        CHECK(fc && strcmp(fc->name, "dflt") == 0);
        /* source type before source port */
        fc = pick(l, "172.16.0.1", 9090, "127.0.0.1", 1234);
        CHECK(fc && strcmp(fc->name, "local-src") == 0);
        fc = pick(l, "172.16.0.1", 9090, "192.168.0.1", 1234);
        CHECK(fc && strcmp(fc->name, "any-src") == 0);
        fc = pick(l, "172.16.0.1", 9090, "192.168.0.1", 999);
        CHECK(fc && strcmp(fc->name, "dflt") == 0);
        /* a TLS-only chain never matches plaintext */
        fc = pick(l, "172.16.0.1", 7070, "192.168.0.1", 999);
        CHECK(fc && strcmp(fc->name, "dflt") == 0);
    }
    rs_snapshot_unref(s);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static struct rs_filter_chain *pick_meta(const struct rs_listener *l, int lport, bool tls,
                                         const char *sni, const char *alpn)
{
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "10.0.0.1", &local.sin_addr);
    inet_pton(AF_INET, "10.0.0.2", &remote.sin_addr);
    const char *protos[1] = {alpn};
    struct rs_conn_meta m = {
        .tls = tls, .server_name = sni, .app_protocols = protos, .napp_protocols = alpn ? 1 : 0};
    return rs_listener_pick_chain(l, (void *)&local, (void *)&remote, &m);
}

/* What the inspectors find decides between chains: SNI (exact before the longest wildcard),
 * then the transport protocol, then application protocols (Envoy's order). */
static void test_filter_chain_match_inspected(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
#define CHAIN(name, match) "- name: " name "\n  filter_chain_match: " match "\n  " TCP_TO("x") "\n"
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   "name: m\naddress: { socket_address: { address: 0.0.0.0, port_value: 1 } }\n"
                   "filter_chains:\n" CHAIN("exact", "{ server_names: [ a.example.com ] }")
                       CHAIN("wild", "{ server_names: [ \"*.example.com\" ] }")
                           CHAIN("wilder", "{ server_names: [ \"*.com\" ] }")
                               CHAIN("mtls-http", "{ transport_protocol: tls, "
                                                  "application_protocols: [ istio-http/1.1 ] }")
                                   CHAIN("mtls", "{ transport_protocol: tls }") CHAIN(
                                       "plain-http", "{ transport_protocol: raw_buffer, "
                                                     "application_protocols: [ http/1.1 ] }")
                                       CHAIN("plain", "{ transport_protocol: raw_buffer }")) == 0);
#undef CHAIN
    char err[1024];
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && s->nlisteners == 1);
    if (s && s->nlisteners == 1) {
        const struct rs_listener *l = &s->listeners[0];
        struct rs_filter_chain *fc;
        fc = pick_meta(l, 1, true, "a.example.com", NULL);
        CHECK(fc && strcmp(fc->name, "exact") == 0);
        fc = pick_meta(l, 1, true, "b.a.example.com", NULL);
        CHECK(fc && strcmp(fc->name, "wild") == 0);
        fc = pick_meta(l, 1, true, "x.org.com", NULL);
        CHECK(fc && strcmp(fc->name, "wilder") == 0);
        fc = pick_meta(l, 1, true, "example.org", "istio-http/1.1");
        CHECK(fc && strcmp(fc->name, "mtls-http") == 0);
        fc = pick_meta(l, 1, true, NULL, "istio");
        CHECK(fc && strcmp(fc->name, "mtls") == 0);
        fc = pick_meta(l, 1, false, NULL, "http/1.1");
        CHECK(fc && strcmp(fc->name, "plain-http") == 0);
        fc = pick_meta(l, 1, false, NULL, NULL);
        CHECK(fc && strcmp(fc->name, "plain") == 0);
        fc = pick(l, "10.0.0.1", 1, "10.0.0.2", 4000); /* not inspected: raw_buffer */
        CHECK(fc && strcmp(fc->name, "plain") == 0);
    }
    rs_snapshot_unref(s);
    tin_free(&t);
    /* a malformed server name is refused by name */
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   "name: m\naddress: { socket_address: { address: 0.0.0.0, port_value: 1 } }\n"
                   "filter_chains:\n- filter_chain_match: { server_names: [ \"a.*.com\" ] }\n"
                   "  " TCP_TO("x") "\n") == 0);
    expect_nack(bs, &t, "server_names: [0]: \"a.*.com\" is neither a name nor \"*.suffix\"");
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void test_static_and_dynamic_together(void)
{
    char err[1024];
    xds_bootstrap *bs = xds_bootstrap_load_yaml_string(
        "static_resources:\n"
        "  clusters:\n"
        "  - name: local\n"
        "    load_assignment: { endpoints: [ { lb_endpoints: [" EP("127.0.0.1", "8080") "] } ] }\n",
        0, err, sizeof err);
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, "name: local\n") == 0);
    expect_nack(bs, &t, "Cluster \"local\": name: duplicate cluster name \"local\"");
    tin_free(&t);
    /* the static cluster is reused across compiles like a dynamic one */
    struct rs_snapshot *s1 = compile(bs, &t, NULL, err, sizeof err);
    struct rs_snapshot *s2 = s1 ? compile(bs, &t, s1, err, sizeof err) : NULL;
    CHECK(s1 && s2 && s1->clusters[0] == s2->clusters[0]);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s1);
    xds_bootstrap_free(bs);
}

/* The ADS client's state (xds/ads.h) as input: resources, warming status, and the state kept
 * by the snapshot (referenced, released with it). Built by hand here. */
static void test_input_from_ads_state(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("a", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("b", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") "]\n")) == 0);
    struct xds_resource r[3] = {
        {.name = "a",
         .msg = t.msg[RS_XDS_CDS][0],
         .bytes = t.bytes[RS_XDS_CDS][0],
         .len = t.res[RS_XDS_CDS][0].len},
        {.name = "b",
         .msg = t.msg[RS_XDS_CDS][1],
         .bytes = t.bytes[RS_XDS_CDS][1],
         .len = t.res[RS_XDS_CDS][1].len},
        {.name = "a",
         .msg = t.msg[RS_XDS_EDS][0],
         .bytes = t.bytes[RS_XDS_EDS][0],
         .len = t.res[RS_XDS_EDS][0].len},
    };
    struct xds_resource *cds[2] = {&r[0], &r[1]}, *eds[1] = {&r[2]};
    struct xds_type_table tables[XDS_NTYPES] = {{.n = 2, .res = cds}, {.n = 1, .res = eds}};
    struct xds_watch w[2] = {{.name = "a", .status = XDS_WATCH_ARRIVED},
                             {.name = "b", .status = XDS_WATCH_TIMED_OUT}};
    struct xds_state st = {.n_watch = {[XDS_EDS] = 2}, .watch = {[XDS_EDS] = w}};
    atomic_init(&st.refs, 1);
    for (int k = 0; k < XDS_NTYPES; k++) st.types[k] = &tables[k];
    struct rs_xds_input *in = rs_xds_input_from_state(&st);
    char err[1024];
    struct rs_snapshot *s = rs_config_compile_xds(bs, in, NULL, true, err, sizeof err);
    CHECK(s && s->nclusters == 2 && s->xds == &st);
    CHECK_EQ_INT(atomic_load(&st.refs), 2);
    CHECK_EQ_INT(nhosts(s ? cluster(s, "a") : NULL), 1);
    CHECK_EQ_INT(nhosts(s ? cluster(s, "b") : NULL), 0); /* timed out: empty */
    rs_snapshot_unref(s);
    CHECK_EQ_INT(atomic_load(&st.refs), 1);
    /* b still pending: warming */
    w[1].status = XDS_WATCH_PENDING;
    s = rs_config_compile_xds(bs, in, NULL, true, err, sizeof err);
    CHECK(s && s->nclusters == 1);
    rs_snapshot_unref(s);
    rs_xds_input_free(in);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

/* A STRICT_DNS cluster reused across compiles keeps its resolver target; one that an update
 * removes has its target stopped before the old snapshot goes. */
static void test_dns_across_updates(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   "name: d\ntype: STRICT_DNS\nload_assignment: { endpoints: [ { lb_endpoints: "
                   "[" EP("localhost", "80") "] } ] }\n") == 0);
    char err[1024];
    struct rs_dns *dns = rs_dns_start();
    CHECK(dns != NULL);
    struct rs_snapshot *s1 = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s1 && dns && rs_config_start_dns(s1, dns) == 0);
    struct rs_cluster *d = s1 ? cluster(s1, "d") : NULL;
    int id = d ? d->dns[0].id : -1;
    CHECK(id >= 0);
    struct rs_snapshot *s2 = s1 ? compile(bs, &t, s1, err, sizeof err) : NULL;
    CHECK(s2 && dns && rs_config_update_dns(s1, s2, dns) == 0);
    CHECK(d && d->dns[0].id == id); /* same object, same target */
    tin_remove(&t, RS_XDS_CDS, "d");
    struct rs_snapshot *s3 = s2 ? compile(bs, &t, s2, err, sizeof err) : NULL;
    CHECK(s3 && dns && rs_config_update_dns(s2, s3, dns) == 0);
    CHECK(d && d->dns[0].id == -1);
    CHECK(dns && rs_dns_remove(dns, id) == -ENOENT); /* already gone */
    rs_snapshot_unref(s1);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s3);
    if (dns) rs_dns_stop(dns);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

static void *keep_retain(void *keep)
{
    return keep;
}

static void keep_release(void *keep)
{
    (void)keep;
}

static const struct rs_route_table *routes_of(const struct rs_snapshot *s)
{
    return s && s->nlisteners == 1 && s->listeners[0].chains[0].hcm
               ? s->listeners[0].chains[0].hcm->routes
               : NULL;
}

static const char *routed_cluster(const struct rs_snapshot *s)
{
    const struct rs_route_table *rt = routes_of(s);
    struct rs_route_request rq = {.authority = "x",
                                  .authority_len = 1,
                                  .path = "/",
                                  .path_len = 1,
                                  .method = "GET",
                                  .method_len = 3};
    const struct rs_route *r = rt ? rs_route_match(rt, &rq) : NULL;
    if (!r || r->n_clusters != 1 || r->clusters[0].index < 0) return NULL;
    return s->clusters[r->clusters[0].index]->name;
}

/* A route table is shared by the next snapshot when its RouteConfiguration resource is the
 * same and the clusters keep their names and order; anything else compiles it again. */
static void test_route_table_reuse(void)
{
    xds_bootstrap *bs = empty_bootstrap();
    struct tin t;
    tin_init(&t);
    int keep;
    t.in.keep = &keep; /* the snapshot holds the input's state: its resources stay put */
    t.in.retain = keep_retain;
    t.in.release = keep_release;
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("a", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("bb", NULL)) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("a", "- lb_endpoints: [" EP("10.0.0.1", "80") "]\n")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_EDS, cla("bb", "- lb_endpoints: [" EP("10.0.0.2", "80") "]\n")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_LDS, http_listener("l1", 10001, "r1")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_RDS, route_to("r1", "a", NULL)) == 0);
    char err[1024];
    struct rs_snapshot *s1 = compile(bs, &t, NULL, err, sizeof err);
    CHECK(routes_of(s1) != NULL);
    /* a cluster definition changes (CDS push): the route table is shared */
    CHECK(tin_yaml(&t, RS_XDS_CDS, eds_cluster("bb", "connect_timeout: 2s\n")) == 0);
    struct rs_snapshot *s2 = s1 ? compile(bs, &t, s1, err, sizeof err) : NULL;
    CHECK(routes_of(s2) && routes_of(s2) == routes_of(s1));
    CHECK(routed_cluster(s2) && strcmp(routed_cluster(s2), "a") == 0);
    /* the route configuration changes: compiled again, routing to the new cluster */
    CHECK(tin_yaml(&t, RS_XDS_RDS, route_to("r1", "bb", NULL)) == 0);
    struct rs_snapshot *s3 = s2 ? compile(bs, &t, s2, err, sizeof err) : NULL;
    CHECK(routes_of(s3) && routes_of(s3) != routes_of(s2));
    CHECK(routed_cluster(s3) && strcmp(routed_cluster(s3), "bb") == 0);
    /* a cluster ahead of the routed one goes away: the indices move, compiled again */
    tin_remove(&t, RS_XDS_CDS, "a");
    tin_remove(&t, RS_XDS_EDS, "a");
    struct rs_snapshot *s4 = s3 ? compile(bs, &t, s3, err, sizeof err) : NULL;
    CHECK(routes_of(s4) && routes_of(s4) != routes_of(s3));
    CHECK(routed_cluster(s4) && strcmp(routed_cluster(s4), "bb") == 0);
    /* the older snapshots go first: the shared table lives on in the newest */
    rs_snapshot_unref(s1);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s3);
    CHECK(routed_cluster(s4) && strcmp(routed_cluster(s4), "bb") == 0);
    rs_snapshot_unref(s4);
    tin_free(&t);
    xds_bootstrap_free(bs);
}

int main(void)
{
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_eds_warming_and_timeout),
        TEST_CASE(test_rds_warming_and_semantics),
        TEST_CASE(test_cluster_reuse_and_eds_update),
        TEST_CASE(test_refusals_name_resource_and_field),
        TEST_CASE(test_tcp_proxy_to_missing_cluster),
        TEST_CASE(test_filter_chain_match_precedence),
        TEST_CASE(test_filter_chain_match_inspected),
        TEST_CASE(test_static_and_dynamic_together),
        TEST_CASE(test_input_from_ads_state),
        TEST_CASE(test_dns_across_updates),
        TEST_CASE(test_route_table_reuse),
    };
    return rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
}
