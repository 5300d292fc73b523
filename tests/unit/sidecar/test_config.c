/* Bootstrap → snapshot compilation: what is served, what is refused and how the refusal reads,
 * and the weighted round-robin order of host sets. */
#include <arpa/inet.h>

#include "sidecar/config.h"
#include "test.h"
#include "xds/bootstrap.h"

static const char *base_cluster = "  clusters:\n"
                                  "  - name: app\n"
                                  "    connect_timeout: 0.25s\n"
                                  "    type: STATIC\n"
                                  "    load_assignment:\n"
                                  "      cluster_name: app\n"
                                  "      endpoints:\n"
                                  "      - lb_endpoints:\n"
                                  "        - endpoint: { address: { socket_address: { address: "
                                  "127.0.0.1, port_value: 8080 } } }\n"
                                  "          load_balancing_weight: 3\n"
                                  "        - endpoint: { address: { socket_address: { address: "
                                  "127.0.0.2, port_value: 8080 } } }\n";

static struct rs_snapshot *compile(const char *yaml, bool serve, char *err, size_t errlen)
{
    xds_bootstrap *bs = xds_bootstrap_load_yaml_string(yaml, 0, err, errlen);
    if (!bs) return NULL;
    return rs_config_compile(bs, serve, err, errlen);
}

static char *with_listener(const char *filters_yaml, const char *clusters)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "static_resources:\n"
             "  listeners:\n"
             "  - name: l0\n"
             "    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
             "    filter_chains:\n"
             "    - filters:\n%s%s",
             filters_yaml, clusters);
    return buf;
}

static const char *tcp_to(const char *cluster)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "      - name: envoy.filters.network.tcp_proxy\n"
             "        typed_config:\n"
             "          \"@type\": "
             "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
             "          stat_prefix: t\n"
             "          cluster: %s\n",
             cluster);
    return buf;
}

static const char *hcm_with_filters(const char *filters)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "      - name: envoy.filters.network.http_connection_manager\n"
             "        typed_config:\n"
             "          \"@type\": "
             "type.googleapis.com/"
             "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
             "          stat_prefix: h\n"
             "          http_filters:\n%s"
             "          route_config:\n"
             "            virtual_hosts:\n"
             "            - name: v\n"
             "              domains: [\"*\"]\n"
             "              routes: [ { match: { prefix: / }, route: { cluster: app } } ]\n",
             filters);
    return buf;
}

#define ROUTER                                                                                     \
    "          - name: envoy.filters.http.router\n"                                                \
    "            typed_config: { \"@type\": "                                                      \
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n"

static void test_serves_tcp_and_http(void)
{
    char err[512];
    char yaml[16384];
    snprintf(yaml, sizeof yaml, "%s", with_listener(tcp_to("app"), base_cluster));
    struct rs_snapshot *s = compile(yaml, true, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(s->nclusters, 1);
    CHECK_EQ_INT(s->nlisteners, 1);
    CHECK(s->listeners[0].chains[0].tcp != NULL);
    CHECK_EQ_INT(s->clusters[0]->connect_timeout_ms, 250);
    struct rs_hostset *h = rs_cluster_hosts(s->clusters[0]);
    CHECK(h && h->n == 2);
    if (h) CHECK_EQ_INT(h->eps[0].weight, 3);
    rs_hostset_unref(h);
    rs_snapshot_unref(s);

    snprintf(yaml, sizeof yaml, "%s", with_listener(hcm_with_filters(ROUTER), base_cluster));
    s = compile(yaml, true, err, sizeof err);
    CHECK(s && s->listeners[0].chains[0].hcm && s->listeners[0].chains[0].hcm->routes);
    if (s) {
        const struct rs_hcm_cfg *hc = s->listeners[0].chains[0].hcm;
        CHECK_EQ_INT(hc->max_request_headers_kb, 60); /* Envoy's defaults */
        CHECK_EQ_INT(hc->max_headers_count, 100);
        CHECK_EQ_INT(hc->stream_idle_timeout_ms, 300000);
        CHECK(hc->generate_request_id);
    }
    rs_snapshot_unref(s);
}

static void expect_error(const char *yaml, bool serve, const char *want)
{
    char err[512];
    struct rs_snapshot *s = compile(yaml, serve, err, sizeof err);
    CHECK(s == NULL);
    if (s) {
        rs_snapshot_unref(s);
        return;
    }
    if (!strstr(err, want)) {
        fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, want);
        CHECK(0);
    }
}

static void test_refusals_name_the_field(void)
{
    char yaml[16384];
    snprintf(yaml, sizeof yaml, "%s", with_listener(tcp_to("nope"), base_cluster));
    expect_error(yaml, true,
                 "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster: "
                 "unknown cluster \"nope\"");
    snprintf(yaml, sizeof yaml, "%s",
             with_listener(
                 hcm_with_filters("          - name: envoy.filters.http.ext_authz\n"
                                  "            typed_config: { \"@type\": "
                                  "type.googleapis.com/"
                                  "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz }\n" ROUTER),
                 base_cluster));
    expect_error(yaml, true,
                 "http_filters[0]: envoy.filters.http.ext_authz: an authorization filter Ringside "
                 "cannot enforce");
    snprintf(yaml, sizeof yaml, "%s",
             with_listener(
                 hcm_with_filters(
                     ROUTER "          - name: envoy.filters.http.buffer\n"
                            "            typed_config: { \"@type\": "
                            "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, "
                            "max_request_bytes: 10 }\n"),
                 base_cluster));
    expect_error(yaml, true, "envoy.filters.http.router must be the last filter");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    type: EDS\n", true,
                 "static_resources.clusters[0].type: EDS clusters need xDS");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    lb_policy: MAGLEV\n", true,
                 "static_resources.clusters[0].lb_policy");
    expect_error("static_resources:\n  clusters:\n  - name: a\n  - name: a\n", true,
                 "duplicate cluster name \"a\"");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    load_assignment:\n"
                 "      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: "
                 "{ address: not-an-ip, port_value: 1 } } } } ] } ]\n",
                 true, "\"not-an-ip\" is not an IP address");
}

static void test_upstream_tls_is_served_static_secret_named(void)
{
    const char *yaml =
        "static_resources:\n"
        "  clusters:\n"
        "  - name: up\n"
        "    type: STRICT_DNS\n"
        "    load_assignment: { endpoints: [ { lb_endpoints: [ { endpoint: { address: { "
        "socket_address: { address: api.internal.svc, port_value: 8080 } } } } ] } ] }\n"
        "    transport_socket:\n"
        "      name: envoy.transport_sockets.tls\n"
        "      typed_config: { \"@type\": "
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, sni: "
        "api.internal.svc }\n";
    char err[512];
    struct rs_snapshot *s = compile(yaml, false, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(s->clusters[0]->ndns, 1);
        CHECK_STR(s->clusters[0]->dns[0].hostname, "api.internal.svc");
    }
    rs_snapshot_unref(s);
    s = compile(yaml, true, err, sizeof err); /* served: the context is built */
    CHECK(s != NULL && s->clusters[0]->tls_ctx != NULL);
    rs_snapshot_unref(s);
    char sds[2048];
    snprintf(sds, sizeof sds,
             "%.*s, common_tls_context: { tls_certificate_sds_secret_configs: [ "
             "{ name: default } ] } }\n",
             (int)(strlen(yaml) - 3), yaml);
    expect_error(sds, true,
                 "static_resources.clusters[0].transport_socket.typed_config.common_tls_context."
                 "tls_certificate_sds_secret_configs[0]: no static secret named \"default\"");
}

static void test_weighted_round_robin_order(void)
{
    struct rs_endpoint eps[3] = {{.weight = 5}, {.weight = 1}, {.weight = 1}};
    struct rs_hostset *h = rs_hostset_new(eps, 3);
    CHECK_EQ_INT(h->order_len, 7);
    int count[3] = {0}, run = 0, longest = 0;
    for (uint32_t i = 0; i < h->order_len; i++) {
        count[h->order[i]]++;
        run = i && h->order[i] == h->order[i - 1] ? run + 1 : 1;
        if (run > longest) longest = run;
    }
    CHECK_EQ_INT(count[0], 5);
    CHECK_EQ_INT(count[1], 1);
    CHECK_EQ_INT(count[2], 1);
    CHECK(longest <= 3); /* smooth: the heavy host is interleaved, not bunched */
    rs_hostset_unref(h);

    /* large weights are reduced by their gcd, and proportions survive scaling */
    struct rs_endpoint big[2] = {{.weight = 900000}, {.weight = 100000}};
    h = rs_hostset_new(big, 2);
    CHECK_EQ_INT(h->order_len, 10);
    rs_hostset_unref(h);
    struct rs_endpoint odd[2] = {{.weight = 999983}, {.weight = 7}};
    h = rs_hostset_new(odd, 2);
    CHECK(h->order_len <= 4096);
    int c1 = 0;
    for (uint32_t i = 0; i < h->order_len; i++) c1 += h->order[i] == 1;
    CHECK_EQ_INT(c1, 1); /* a small weight keeps at least one slot */
    rs_hostset_unref(h);
}

static void test_stats_names_follow_envoy(void)
{
    char err[512];
    char yaml[16384];
    snprintf(yaml, sizeof yaml, "%s", with_listener(hcm_with_filters(ROUTER), base_cluster));
    struct rs_snapshot *s = compile(yaml, true, err, sizeof err);
    CHECK(s != NULL);
    const char *want[] = {"cluster.app.upstream_rq_total", "cluster.app.upstream_cx_connect_fail",
                          "http.h.downstream_rq_2xx", "listener.127.0.0.1_0.downstream_cx_total"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        enum rs_stat_kind k;
        rs_stat_id id;
        for (size_t i = 0; i < rs_stats_count(); i++) {
            const char *n = rs_stats_name(i, &k, &id);
            if (n && strcmp(n, want[w]) == 0) found = 1;
        }
        if (!found) fprintf(stderr, "  missing stat %s\n", want[w]);
        CHECK(found);
    }
    rs_snapshot_unref(s);
}

RUN_TESTS(TEST_CASE(test_serves_tcp_and_http), TEST_CASE(test_refusals_name_the_field),
          TEST_CASE(test_upstream_tls_is_served_static_secret_named),
          TEST_CASE(test_weighted_round_robin_order), TEST_CASE(test_stats_names_follow_envoy))
