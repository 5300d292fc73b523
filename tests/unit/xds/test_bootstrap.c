/* The bootstrap loader: the brief's Envoy examples as written, every error message, YAML/JSON
 * equivalence, Any/TypedStruct, Struct, merge and the to_json round trip. */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "test.h"
#include "xds/any.h"
#include "xds/bootstrap.h"
#include "xds/pbjson.h"
#include "xds/pbload.h"
#include "xds/pbmerge.h"
#include "xds/registry.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap Bootstrap;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
#define BOOTSTRAP_DESC (&envoy__config__bootstrap__v3__bootstrap__descriptor)

static char err[512];

/* tests/data/brief/, found from this file's own path so the test runs from any directory. */
static const char *data_path(const char *name)
{
    static char buf[1024];
    const char *file = __FILE__, *cut = strstr(file, "tests/unit/xds/");
    snprintf(buf, sizeof buf, "%.*stests/data/brief/%s", (int)(cut ? cut - file : 0), file, name);
    return buf;
}

static Bootstrap *yaml(const char *text)
{
    err[0] = '\0';
    return (Bootstrap *)xds_load_yaml(BOOTSTRAP_DESC, text, strlen(text), 0, err, sizeof err);
}

static Bootstrap *json(const char *text)
{
    err[0] = '\0';
    return (Bootstrap *)xds_load_json(BOOTSTRAP_DESC, text, strlen(text), 0, err, sizeof err);
}

/* Packs both messages and compares the bytes: equal messages pack identically. */
static int same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
    if (la != lb) return 0;
    uint8_t *ba = malloc(la + 1), *bb = malloc(lb + 1);
    protobuf_c_message_pack(a, ba);
    protobuf_c_message_pack(b, bb);
    int same = memcmp(ba, bb, la) == 0;
    free(ba);
    free(bb);
    return same;
}

static void expect_error(const char *text, const char *want)
{
    Bootstrap *b = yaml(text);
    CHECK(b == NULL);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "  for: %s\n  got:  %s\n  want: %s\n", text, err, want);
    CHECK_STR(err, want);
    xds_bootstrap_free(b);
}

static void test_brief_bootstrap(void)
{
    Bootstrap *b = xds_bootstrap_load_file(data_path("envoy-bootstrap.yaml"), 0, err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(b->admin && b->admin->address && b->admin->address->socket_address);
    CHECK_STR(b->admin->address->socket_address->address, "127.0.0.1");
    CHECK_EQ_INT(b->admin->address->socket_address->port_value, 9901);
    CHECK_EQ_INT(b->static_resources->n_clusters, 1);
    Cluster *c = b->static_resources->clusters[0];
    CHECK_STR(c->name, "upstream_service");
    CHECK_EQ_INT(c->connect_timeout->seconds, 0);
    CHECK_EQ_INT(c->connect_timeout->nanos, 500000000);
    CHECK_EQ_INT(c->cluster_discovery_type_case,
                 ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
    CHECK_EQ_INT(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
    CHECK_EQ_INT(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
    CHECK_STR(c->load_assignment->cluster_name, "upstream_service");
    Envoy__Config__Endpoint__V3__LbEndpoint *ep = c->load_assignment->endpoints[0]->lb_endpoints[0];
    CHECK_STR(ep->endpoint->address->socket_address->address, "api.internal.svc");
    CHECK_EQ_INT(ep->endpoint->address->socket_address->port_value, 8080);
    CHECK_STR(c->transport_socket->name, "envoy.transport_sockets.tls");
    CHECK_STR(c->transport_socket->typed_config->type_url,
              "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    ProtobufCMessage *tls = xds_any_unpack(
        c->transport_socket->typed_config,
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor, err,
        sizeof err);
    CHECK(tls != NULL);
    if (tls)
        CHECK_STR(((Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *)tls)->sni,
                  "api.internal.svc");
    protobuf_c_message_free_unpacked(tls, NULL);
    /* The wrong expected type is refused. */
    tls = xds_any_unpack(c->transport_socket->typed_config, BOOTSTRAP_DESC, err, sizeof err);
    CHECK(tls == NULL);
    CHECK_STR(err, "expected envoy.config.bootstrap.v3.Bootstrap, got "
                   "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    xds_bootstrap_free(b);
}

static void test_brief_outlier(void)
{
    Bootstrap *b = xds_bootstrap_load_file(data_path("envoy-outlier-circuit-breaking.yaml"), 0, err,
                                           sizeof err);
    CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    Cluster *c = b->static_resources->clusters[0];
    CHECK_STR(c->name, "resilient_upstream");
    CHECK_EQ_INT(c->circuit_breakers->n_thresholds, 1);
    Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t = c->circuit_breakers->thresholds[0];
    CHECK_EQ_INT(t->priority, ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT);
    CHECK_EQ_INT(t->max_connections->value, 1000);
    CHECK_EQ_INT(t->max_pending_requests->value, 500);
    CHECK_EQ_INT(t->max_retries->value, 3);
    Envoy__Config__Cluster__V3__OutlierDetection *od = c->outlier_detection;
    CHECK_EQ_INT(od->consecutive_5xx->value, 5);
    CHECK_EQ_INT(od->interval->seconds, 10);
    CHECK_EQ_INT(od->base_ejection_time->seconds, 30);
    CHECK_EQ_INT(od->max_ejection_percent->value, 50);
    CHECK_EQ_INT(od->enforcing_consecutive_5xx->value, 100);
    xds_bootstrap_free(b);
}

static void test_errors(void)
{
    expect_error("static_resources:\n  clusters:\n  - name: a\n    connect_timeout: 5 parsecs\n",
                 "static_resources.clusters[0].connect_timeout: bad duration \"5 parsecs\"");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    type: STRICT_DNZ\n",
                 "static_resources.clusters[0].type: unknown enum value \"STRICT_DNZ\" for "
                 "envoy.config.cluster.v3.Cluster.DiscoveryType");
    expect_error("static_resources:\n  clusterz: []\n",
                 "static_resources.clusterz: unknown field \"clusterz\" in "
                 "envoy.config.bootstrap.v3.Bootstrap.StaticResources");
    expect_error("admin:\n  address:\n    socket_address: { address: 1.2.3.4, port_value: abc }\n",
                 "admin.address.socket_address.port_value: bad uint32 value \"abc\"");
    expect_error("admin:\n  address:\n    socket_address: { port_value: -1 }\n",
                 "admin.address.socket_address.port_value: bad uint32 value \"-1\"");
    expect_error("admin:\n  address:\n    socket_address: { port_value: [1] }\n",
                 "admin.address.socket_address.port_value: expected uint32, got a list");
    expect_error("admin: 5\n",
                 "admin: expected a mapping for envoy.config.bootstrap.v3.Admin, got a scalar "
                 "\"5\"");
    expect_error("static_resources:\n  clusters: {name: a}\n",
                 "static_resources.clusters: expected a list, got a mapping");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    type: STATIC\n"
                 "    cluster_type: {name: x}\n",
                 "static_resources.clusters[0].cluster_type: conflicts with \"type\": both are "
                 "members of one oneof");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    transport_socket:\n"
                 "      name: t\n      typed_config:\n"
                 "        \"@type\": type.googleapis.com/envoy.Nope\n",
                 "static_resources.clusters[0].transport_socket.typed_config: unknown @type "
                 "\"type.googleapis.com/envoy.Nope\"");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    transport_socket:\n"
                 "      name: t\n      typed_config: {sni: x}\n",
                 "static_resources.clusters[0].transport_socket.typed_config: "
                 "google.protobuf.Any without \"@type\"");
    expect_error("static_resources:\n  clusters:\n  - name: a\n    transport_socket:\n"
                 "      name: t\n      typed_config:\n        \"@type\": type.googleapis.com/"
                 "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
                 "        snii: x\n",
                 "static_resources.clusters[0].transport_socket.typed_config.snii: unknown field "
                 "\"snii\" in envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    expect_error("admin:\n  address: [\n",
                 "YAML syntax error at line 3, column 1: did not find expected node content "
                 "while parsing a flow node");
    expect_error("node: {id: a\n", "YAML syntax error at line 2, column 1: did not find expected "
                                   "',' or '}' while parsing a flow mapping");
    expect_error("stats_flush_interval: 1.5\n", "stats_flush_interval: bad duration \"1.5\"");
    expect_error("node:\n  metadata: [1, 2]\n",
                 "node.metadata: expected a mapping for google.protobuf.Struct, got a list");
    expect_error("admin:\n  address:\n    pipe: {path: /x}\n    socket_address: {port_value: 1}\n",
                 "admin.address.socket_address: conflicts with \"pipe\": both are members of one "
                 "oneof");
    /* a field given twice, by the same key or by its name and json_name, is not a silent "last
     * one wins" */
    expect_error("node:\n  id: a\n  cluster: c\n  id: b\n", "node.id: field \"id\" given twice");
    expect_error("node: {user_agent_name: a, userAgentName: b}\n",
                 "node.userAgentName: field \"user_agent_name\" given twice");

    Bootstrap *b = json("{\"admin\": {\"address\": }");
    CHECK(b == NULL);
    CHECK(strncmp(err, "JSON syntax error at line 1, column ", 36) == 0);
    b = json("{\"admin\": {\"accessLogPath\": 5, \"profilePath\": true}, \"nodee\": 1}");
    CHECK(b == NULL);
    CHECK_STR(err, "nodee: unknown field \"nodee\" in envoy.config.bootstrap.v3.Bootstrap");
}

static void test_allow_unknown(void)
{
    const char *text = "nodee: {x: 1}\nnode: {id: n1, unknown_thing: 3}\n";
    Bootstrap *b = (Bootstrap *)xds_load_yaml(BOOTSTRAP_DESC, text, strlen(text),
                                              XDS_LOAD_ALLOW_UNKNOWN, err, sizeof err);
    CHECK(b != NULL);
    if (b) CHECK_STR(b->node->id, "n1");
    xds_bootstrap_free(b);
}

static const char full_yaml[] =
    "node:\n"
    "  id: sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local\n"
    "  cluster: svc\n"
    "  metadata: {ISTIO_VERSION: '1.22', LABELS: {app: web}, PORTS: [80, 443], ON: true, "
    "NOTHING: null}\n"
    "admin:\n"
    "  address: {socket_address: {address: 127.0.0.1, port_value: 15000}}\n"
    "stats_flush_interval: 5s\n"
    "layered_runtime:\n"
    "  layers:\n"
    "  - name: static\n"
    "    static_layer: {overload.global_downstream_max_connections: 50000}\n"
    "static_resources:\n"
    "  listeners:\n"
    "  - name: inbound\n"
    "    address: {socket_address: {address: 0.0.0.0, port_value: 15006}}\n"
    "    listener_filters:\n"
    "    - name: envoy.filters.listener.tls_inspector\n"
    "      typed_config:\n"
    "        '@type': type.googleapis.com/"
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n"
    "    filter_chains:\n"
    "    - filters:\n"
    "      - name: envoy.filters.network.tcp_proxy\n"
    "        typed_config:\n"
    "          '@type': type.googleapis.com/"
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
    "          stat_prefix: tcp\n"
    "          cluster: backend\n"
    "          idle_timeout: 1.5s\n"
    "          max_connect_attempts: 3\n"
    "  - name: http\n"
    "    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}\n"
    "    filter_chains:\n"
    "    - filters:\n"
    "      - name: envoy.filters.network.http_connection_manager\n"
    "        typed_config:\n"
    "          '@type': type.googleapis.com/envoy.extensions.filters.network."
    "http_connection_manager.v3.HttpConnectionManager\n"
    "          stat_prefix: ingress\n"
    "          codec_type: AUTO\n"
    "          route_config:\n"
    "            name: local\n"
    "            virtual_hosts:\n"
    "            - name: all\n"
    "              domains: ['*']\n"
    "              routes:\n"
    "              - match: {prefix: /api}\n"
    "                route: {cluster: backend, timeout: 0.25s}\n"
    "          http_filters:\n"
    "          - name: envoy.filters.http.router\n"
    "            typed_config:\n"
    "              '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"
    "  clusters:\n"
    "  - name: backend\n"
    "    connect_timeout: 1s\n"
    "    type: STATIC\n"
    "    lb_policy: LEAST_REQUEST\n"
    "    per_connection_buffer_limit_bytes: 32768\n"
    "    metadata:\n"
    "      filter_metadata:\n"
    "        istio: {config: /apis/x, weight: 2.5}\n"
    "    typed_extension_protocol_options:\n"
    "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
    "        '@type': type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
    "        explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 100}}\n"
    "    load_assignment:\n"
    "      cluster_name: backend\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 9000}}}\n"
    "          load_balancing_weight: 3\n"
    "dynamic_resources:\n"
    "  ads_config:\n"
    "    api_type: GRPC\n"
    "    transport_api_version: V3\n"
    "    grpc_services:\n"
    "    - envoy_grpc: {cluster_name: xds}\n"
    "  cds_config: {ads: {}, resource_api_version: V3}\n";

static const char full_json[] =
    "{\"node\": {\"id\": \"sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local\", \"cluster\": \"svc\",\n"
    "  \"metadata\": {\"ISTIO_VERSION\": \"1.22\", \"LABELS\": {\"app\": \"web\"},\n"
    "    \"PORTS\": [80, 443], \"ON\": true, \"NOTHING\": null}},\n"
    " \"admin\": {\"address\": {\"socketAddress\": {\"address\": \"127.0.0.1\", "
    "\"portValue\": 15000}}},\n"
    " \"statsFlushInterval\": \"5s\",\n"
    " \"layeredRuntime\": {\"layers\": [{\"name\": \"static\", \"staticLayer\": "
    "{\"overload.global_downstream_max_connections\": 50000}}]},\n"
    " \"staticResources\": {\n"
    "  \"listeners\": [\n"
    "   {\"name\": \"inbound\", \"address\": {\"socketAddress\": {\"address\": \"0.0.0.0\", "
    "\"portValue\": 15006}},\n"
    "    \"listenerFilters\": [{\"name\": \"envoy.filters.listener.tls_inspector\", "
    "\"typedConfig\": {\"@type\": \"type.googleapis.com/"
    "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\"}}],\n"
    "    \"filterChains\": [{\"filters\": [{\"name\": \"envoy.filters.network.tcp_proxy\",\n"
    "      \"typedConfig\": {\"@type\": \"type.googleapis.com/"
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\",\n"
    "       \"statPrefix\": \"tcp\", \"cluster\": \"backend\", \"idleTimeout\": \"1.5s\", "
    "\"maxConnectAttempts\": 3}}]}]},\n"
    "   {\"name\": \"http\", \"address\": {\"socketAddress\": {\"address\": \"0.0.0.0\", "
    "\"portValue\": 8080}},\n"
    "    \"filterChains\": [{\"filters\": [{\"name\": "
    "\"envoy.filters.network.http_connection_manager\",\n"
    "      \"typedConfig\": {\"@type\": \"type.googleapis.com/envoy.extensions.filters.network."
    "http_connection_manager.v3.HttpConnectionManager\",\n"
    "       \"statPrefix\": \"ingress\", \"codecType\": \"AUTO\",\n"
    "       \"routeConfig\": {\"name\": \"local\", \"virtualHosts\": [{\"name\": \"all\", "
    "\"domains\": [\"*\"],\n"
    "         \"routes\": [{\"match\": {\"prefix\": \"/api\"}, \"route\": {\"cluster\": "
    "\"backend\", \"timeout\": \"0.25s\"}}]}]},\n"
    "       \"httpFilters\": [{\"name\": \"envoy.filters.http.router\", \"typedConfig\": "
    "{\"@type\": \"type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\"}}]}}]}]}"
    "],\n"
    "  \"clusters\": [{\"name\": \"backend\", \"connectTimeout\": \"1s\", \"type\": \"STATIC\", "
    "\"lbPolicy\": \"LEAST_REQUEST\",\n"
    "   \"perConnectionBufferLimitBytes\": 32768,\n"
    "   \"metadata\": {\"filterMetadata\": {\"istio\": {\"config\": \"/apis/x\", \"weight\": "
    "2.5}}},\n"
    "   \"typedExtensionProtocolOptions\": {\"envoy.extensions.upstreams.http.v3."
    "HttpProtocolOptions\": {\"@type\": \"type.googleapis.com/"
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions\",\n"
    "     \"explicitHttpConfig\": {\"http2ProtocolOptions\": {\"maxConcurrentStreams\": 100}}}},\n"
    "   \"loadAssignment\": {\"clusterName\": \"backend\", \"endpoints\": [{\"lbEndpoints\": "
    "[{\"endpoint\": {\"address\": {\"socketAddress\": {\"address\": \"10.0.0.2\", "
    "\"portValue\": 9000}}}, \"loadBalancingWeight\": 3}]}]}}]},\n"
    " \"dynamicResources\": {\"adsConfig\": {\"apiType\": \"GRPC\", \"transportApiVersion\": "
    "\"V3\", \"grpcServices\": [{\"envoyGrpc\": {\"clusterName\": \"xds\"}}]},\n"
    "   \"cdsConfig\": {\"ads\": {}, \"resourceApiVersion\": \"V3\"}}}\n";

static void test_yaml_equals_json(void)
{
    Bootstrap *y = yaml(full_yaml);
    if (!y) fprintf(stderr, "  yaml: %s\n", err);
    Bootstrap *j = json(full_json);
    if (!j) fprintf(stderr, "  json: %s\n", err);
    CHECK(y && j);
    if (y && j) CHECK(same_message(&y->base, &j->base));
    xds_bootstrap_free(y);
    xds_bootstrap_free(j);
}

static void test_typed_configs(void)
{
    Bootstrap *b = yaml(full_yaml);
    CHECK(b != NULL);
    if (!b) return;
    Envoy__Config__Listener__V3__Listener *l0 = b->static_resources->listeners[0];
    ProtobufCMessage *m =
        xds_any_unpack(l0->filter_chains[0]->filters[0]->typed_config,
                       &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
                       err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *tp = (void *)m;
        CHECK_STR(tp->stat_prefix, "tcp");
        CHECK_STR(tp->cluster, "backend");
        CHECK_EQ_INT(tp->idle_timeout->seconds, 1);
        CHECK_EQ_INT(tp->idle_timeout->nanos, 500000000);
        CHECK_EQ_INT(tp->max_connect_attempts->value, 3);
    }
    protobuf_c_message_free_unpacked(m, NULL);

    Envoy__Config__Listener__V3__Listener *l1 = b->static_resources->listeners[1];
    m = xds_any_unpack(l1->filter_chains[0]->filters[0]->typed_config, NULL, err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm =
            (void *)m;
        CHECK_STR(hcm->stat_prefix, "ingress");
        CHECK(hcm->route_config != NULL);
        CHECK_STR(hcm->route_config->virtual_hosts[0]->domains[0], "*");
        Envoy__Config__Route__V3__Route *r = hcm->route_config->virtual_hosts[0]->routes[0];
        CHECK_STR(r->match->prefix, "/api");
        CHECK_STR(r->route->cluster, "backend");
        CHECK_EQ_INT(r->route->timeout->nanos, 250000000);
        CHECK_EQ_INT(hcm->n_http_filters, 1);
        CHECK_STR(hcm->http_filters[0]->typed_config->type_url,
                  "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router");
    }
    protobuf_c_message_free_unpacked(m, NULL);

    Cluster *c = b->static_resources->clusters[0];
    CHECK_EQ_INT(c->n_typed_extension_protocol_options, 1);
    CHECK_STR(c->typed_extension_protocol_options[0]->key,
              "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    CHECK_EQ_INT(c->per_connection_buffer_limit_bytes->value, 32768);
    CHECK_EQ_INT(c->load_assignment->endpoints[0]->lb_endpoints[0]->load_balancing_weight->value,
                 3);
    CHECK_EQ_INT(b->dynamic_resources->ads_config->api_type,
                 ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC);
    CHECK_EQ_INT(b->dynamic_resources->cds_config->config_source_specifier_case,
                 ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
    xds_bootstrap_free(b);
}

static void test_struct(void)
{
    Bootstrap *b = yaml(full_yaml);
    CHECK(b != NULL);
    if (!b) return;
    Google__Protobuf__Struct *md = b->node->metadata;
    CHECK_EQ_INT(md->n_fields, 5);
    CHECK_STR(md->fields[0]->key, "ISTIO_VERSION");
    CHECK_EQ_INT(md->fields[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    CHECK_STR(md->fields[0]->value->string_value, "1.22");
    CHECK_EQ_INT(md->fields[1]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE);
    CHECK_STR(md->fields[1]->value->struct_value->fields[0]->value->string_value, "web");
    CHECK_EQ_INT(md->fields[2]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    CHECK_EQ_INT(md->fields[2]->value->list_value->n_values, 2);
    CHECK(md->fields[2]->value->list_value->values[1]->number_value == 443);
    CHECK_EQ_INT(md->fields[3]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    CHECK_EQ_INT(md->fields[3]->value->bool_value, 1);
    CHECK_EQ_INT(md->fields[4]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    xds_bootstrap_free(b);
}

static void test_typed_struct(void)
{
    static const char *const urls[] = {"type.googleapis.com/udpa.type.v1.TypedStruct",
                                       "type.googleapis.com/xds.type.v3.TypedStruct"};
    for (int i = 0; i < 2; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n"
                 "    - filters:\n      - name: tcp\n        typed_config:\n"
                 "          '@type': %s\n"
                 "          type_url: type.googleapis.com/"
                 "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                 "          value: {stat_prefix: ts, cluster: c1, idleTimeout: 2s,"
                 " max_connect_attempts: 4}\n",
                 urls[i]);
        Bootstrap *b = yaml(text);
        CHECK(b != NULL);
        if (!b) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        const Google__Protobuf__Any *any =
            b->static_resources->listeners[0]->filter_chains[0]->filters[0]->typed_config;
        Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *tp = (void *)xds_any_unpack(
            any, &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor, err,
            sizeof err);
        CHECK(tp != NULL);
        if (tp) {
            CHECK_STR(tp->stat_prefix, "ts");
            CHECK_STR(tp->cluster, "c1");
            CHECK_EQ_INT(tp->idle_timeout->seconds, 2);
            CHECK_EQ_INT(tp->max_connect_attempts->value, 4);
        }
        protobuf_c_message_free_unpacked(&tp->base, NULL);
        xds_bootstrap_free(b);
    }
    /* A TypedStruct whose value does not fit its type reports the field. */
    Bootstrap *b = yaml("static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n"
                        "    - filters:\n      - name: tcp\n        typed_config:\n"
                        "          '@type': type.googleapis.com/xds.type.v3.TypedStruct\n"
                        "          type_url: type.googleapis.com/"
                        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
                        "          value: {idle_timeout: soon}\n");
    CHECK(b != NULL);
    if (b) {
        ProtobufCMessage *m = xds_any_unpack(
            b->static_resources->listeners[0]->filter_chains[0]->filters[0]->typed_config, NULL,
            err, sizeof err);
        CHECK(m == NULL);
        CHECK_STR(err, "idle_timeout: bad duration \"soon\"");
        xds_bootstrap_free(b);
    }
}

static void test_camel_and_scalars(void)
{
    Bootstrap *b = yaml("statsFlushInterval: 0.001s\n"
                        "layered_runtime: {layers: [{name: a, staticLayer: {k: v}}]}\n"
                        "admin: {address: {socketAddress: {portValue: '15000', ipv4Compat: "
                        "true}}}\n"
                        "node: {userAgentBuildVersion: {version: {majorNumber: 1}}}\n"
                        "overload_manager: {refresh_interval: 0.25s}\n"
                        "stats_config: {use_all_default_tags: false}\n"
                        "watchdogs: {main_thread_watchdog: {multikill_threshold: {value: 12.5}}}\n"
                        "header_prefix: x-rs\n");
    CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->stats_flush_interval->nanos, 1000000);
    CHECK_EQ_INT(b->admin->address->socket_address->port_value, 15000);
    CHECK_EQ_INT(b->admin->address->socket_address->ipv4_compat, 1);
    CHECK_EQ_INT(b->node->user_agent_build_version->version->major_number, 1);
    CHECK_EQ_INT(b->overload_manager->refresh_interval->nanos, 250000000);
    CHECK(b->stats_config->use_all_default_tags && !b->stats_config->use_all_default_tags->value);
    CHECK(b->watchdogs->main_thread_watchdog->multikill_threshold->value == 12.5);
    CHECK_STR(b->header_prefix, "x-rs");
    xds_bootstrap_free(b);
}

static void test_runtime_base(void)
{
    /* Runtime.base is generated as base_ (protobuf-c's own `base` member); the key stays "base". */
    const char *text = "{symlink_root: /srv, base: {health_check.min_interval: 5}}";
    Envoy__Config__Bootstrap__V3__Runtime *rt = (void *)xds_load_yaml(
        &envoy__config__bootstrap__v3__runtime__descriptor, text, strlen(text), 0, err, sizeof err);
    CHECK(rt != NULL);
    if (!rt) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_STR(rt->symlink_root, "/srv");
    CHECK(rt->base_ != NULL);
    if (rt->base_) CHECK_STR(rt->base_->fields[0]->key, "health_check.min_interval");
    json_t *j = xds_to_json(&rt->base);
    CHECK(json_object_get(j, "base") != NULL);
    json_decref(j);
    protobuf_c_message_free_unpacked(&rt->base, NULL);
}

static void test_int64_bytes_timestamp(void)
{
    const char *text = "\"2024-02-29T12:30:45.5+01:00\"";
    Google__Protobuf__Timestamp *ts = (void *)xds_load_json(
        &google__protobuf__timestamp__descriptor, text, strlen(text), 0, err, sizeof err);
    CHECK(ts != NULL);
    if (ts) {
        CHECK_EQ_INT(ts->seconds, 1709206245);
        CHECK_EQ_INT(ts->nanos, 500000000);
    }
    protobuf_c_message_free_unpacked(&ts->base, NULL);

    /* int64 as string or number; bytes as base64 (DataSource.inline_bytes). */
    Bootstrap *b = yaml("stats_config: {histogram_bucket_settings: []}\n"
                        "static_resources:\n  secrets:\n  - name: s\n    generic_secret:\n"
                        "      secret: {inline_bytes: aGVsbG8=}\n"
                        "  clusters:\n  - name: c\n    dns_refresh_rate: 3s\n"
                        "    max_requests_per_connection: 7\n");
    CHECK(b != NULL);
    if (b) {
        ProtobufCBinaryData *bytes =
            &b->static_resources->secrets[0]->generic_secret->secret->inline_bytes;
        CHECK_EQ_INT(bytes->len, 5);
        CHECK(bytes->len == 5 && memcmp(bytes->data, "hello", 5) == 0);
    }
    xds_bootstrap_free(b);
    b = yaml("overload_manager:\n  resource_monitors: []\n"
             "stats_server_version_override: '123456789012'\n");
    CHECK(b != NULL);
    if (b) CHECK_EQ_INT(b->stats_server_version_override->value, 123456789012LL);
    xds_bootstrap_free(b);
    b = json("{\"stats_server_version_override\": 42}");
    CHECK(b != NULL);
    if (b) CHECK_EQ_INT(b->stats_server_version_override->value, 42);
    xds_bootstrap_free(b);
}

static void test_merge(void)
{
    Bootstrap *b =
        xds_bootstrap_load(data_path("envoy-bootstrap.yaml"),
                           "admin: {address: {socket_address: {port_value: 15000}}}\n"
                           "node: {id: n2}\n"
                           "static_resources:\n  clusters:\n  - name: extra\n    type: STATIC\n",
                           0, err, sizeof err);
    CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->admin->address->socket_address->port_value, 15000);
    CHECK_STR(b->admin->address->socket_address->address, "127.0.0.1");
    CHECK_STR(b->node->id, "n2");
    CHECK_EQ_INT(b->static_resources->n_clusters, 2);
    CHECK_STR(b->static_resources->clusters[0]->name, "upstream_service");
    CHECK_STR(b->static_resources->clusters[1]->name, "extra");
    xds_bootstrap_free(b);

    /* A oneof member set by the overlay replaces the base's; map keys replace, not repeat. */
    Bootstrap *dst = yaml("admin: {address: {pipe: {path: /tmp/a}}}\n"
                          "node: {metadata: {a: 1, b: 2}}\n");
    Bootstrap *src = yaml("admin: {address: {socket_address: {port_value: 1}}}\n"
                          "node: {metadata: {b: 3, c: 4}}\n");
    CHECK(dst && src);
    if (dst && src) {
        xds_bootstrap_merge(dst, src);
        CHECK_EQ_INT(dst->admin->address->address_case,
                     ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS);
        CHECK_EQ_INT(dst->admin->address->socket_address->port_value, 1);
        CHECK_EQ_INT(dst->node->metadata->n_fields, 3);
        CHECK(dst->node->metadata->fields[1]->value->number_value == 3);
        Bootstrap *copy = (Bootstrap *)xds_copy(&dst->base);
        CHECK(same_message(&copy->base, &dst->base));
        xds_bootstrap_free(copy);
    }
    xds_bootstrap_free(dst);
    xds_bootstrap_free(src);

    /* An error in the overlay is reported and nothing leaks. */
    b = xds_bootstrap_load(data_path("envoy-bootstrap.yaml"), "node: {idd: x}\n", 0, err,
                           sizeof err);
    CHECK(b == NULL);
    CHECK_STR(err, "node.idd: unknown field \"idd\" in envoy.config.core.v3.Node");
    b = xds_bootstrap_load("/nonexistent/x.yaml", NULL, 0, err, sizeof err);
    CHECK(b == NULL);
    CHECK_STR(err, "cannot read /nonexistent/x.yaml: No such file or directory");
}

static void test_to_json_round_trip(void)
{
    Bootstrap *b = yaml(full_yaml);
    CHECK(b != NULL);
    if (!b) return;
    json_t *j = xds_to_json(&b->base);
    char *text = json_dumps(j, JSON_COMPACT);
    Bootstrap *again = json(text);
    if (!again) fprintf(stderr, "  %s\n  in %s\n", err, text);
    CHECK(again != NULL);
    if (again) CHECK(same_message(&b->base, &again->base));
    /* proto3 JSON forms. */
    CHECK_STR(json_string_value(json_object_get(j, "statsFlushInterval")), "5s");
    json_t *c0 =
        json_array_get(json_object_get(json_object_get(j, "staticResources"), "clusters"), 0);
    CHECK_STR(json_string_value(json_object_get(c0, "lbPolicy")), "LEAST_REQUEST");
    CHECK_EQ_INT(json_integer_value(json_object_get(c0, "perConnectionBufferLimitBytes")), 32768);
    json_t *tc = json_object_get(
        json_array_get(
            json_object_get(
                json_array_get(
                    json_object_get(
                        json_array_get(
                            json_object_get(json_object_get(j, "staticResources"), "listeners"), 0),
                        "filterChains"),
                    0),
                "filters"),
            0),
        "typedConfig");
    CHECK_STR(json_string_value(json_object_get(tc, "@type")),
              "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy");
    CHECK_STR(json_string_value(json_object_get(tc, "idleTimeout")), "1.500s");
    CHECK_EQ_INT(json_integer_value(json_object_get(tc, "maxConnectAttempts")), 3);
    free(text);
    json_decref(j);
    xds_bootstrap_free(again);
    xds_bootstrap_free(b);
}

static void test_registry(void)
{
    CHECK(xds_registry_count() > 500);
    CHECK(xds_registry_find("envoy.config.cluster.v3.Cluster") ==
          &envoy__config__cluster__v3__cluster__descriptor);
    CHECK(xds_registry_find("type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap") ==
          BOOTSTRAP_DESC);
    CHECK(xds_registry_find("type.googleapis.com/google.protobuf.Duration") != NULL);
    CHECK(xds_registry_find("envoy.config.cluster.v3.Cluste") == NULL);
    CHECK(xds_registry_find("envoy.config.cluster.v3.Cluster.X") == NULL);
    CHECK(xds_registry_find("") == NULL);
    for (size_t i = 1; i < xds_registry_count(); i++)
        CHECK(strcmp(xds_registry_at(i - 1)->name, xds_registry_at(i)->name) < 0);
    static const char *const must[] = {
        "envoy.extensions.filters.http.cors.v3.Cors",
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "envoy.extensions.filters.http.rbac.v3.RBAC",
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        "envoy.extensions.filters.http.wasm.v3.Wasm",
        "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        "envoy.extensions.compression.gzip.compressor.v3.Gzip",
        "envoy.extensions.compression.brotli.compressor.v3.Brotli",
        "envoy.extensions.compression.zstd.compressor.v3.Zstd",
        "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "envoy.extensions.transport_sockets.tls.v3.Secret",
        "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer",
        "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
        "envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
        "envoy.extensions.filters.network.set_filter_state.v3.Config",
        "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput",
        "xds.type.matcher.v3.Matcher",
        "envoy.service.discovery.v3.DiscoveryRequest",
        "envoy.service.discovery.v3.DeltaDiscoveryResponse",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!xds_registry_find(must[i])) fprintf(stderr, "  missing %s\n", must[i]);
        CHECK(xds_registry_find(must[i]) != NULL);
    }
}

static void test_yaml_features(void)
{
    /* Anchors, aliases and merge keys, as hand-written bootstraps use them. */
    Bootstrap *b = yaml("static_resources:\n  clusters:\n"
                        "  - &base {name: a, connect_timeout: 2s, type: STRICT_DNS}\n"
                        "  - <<: *base\n    name: b\n"
                        "---\nignored: second document\n");
    CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(b->static_resources->n_clusters, 2);
    CHECK_STR(b->static_resources->clusters[1]->name, "b");
    CHECK_EQ_INT(b->static_resources->clusters[1]->connect_timeout->seconds, 2);
    xds_bootstrap_free(b);
    b = yaml("");
    CHECK(b != NULL);
    xds_bootstrap_free(b);
    b = yaml("# just a comment\n");
    CHECK(b != NULL);
    xds_bootstrap_free(b);
    /* An alias bomb is cut off, not expanded. */
    b = yaml("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
             "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
             "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
             "node: {metadata: {x: *f}}\n");
    CHECK(b == NULL);
}

RUN_TESTS(TEST_CASE(test_brief_bootstrap), TEST_CASE(test_brief_outlier), TEST_CASE(test_errors),
          TEST_CASE(test_allow_unknown), TEST_CASE(test_yaml_equals_json),
          TEST_CASE(test_typed_configs), TEST_CASE(test_struct), TEST_CASE(test_typed_struct),
          TEST_CASE(test_camel_and_scalars), TEST_CASE(test_runtime_base),
          TEST_CASE(test_int64_bytes_timestamp), TEST_CASE(test_merge),
          TEST_CASE(test_to_json_round_trip), TEST_CASE(test_registry),
          TEST_CASE(test_yaml_features))
