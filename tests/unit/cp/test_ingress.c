/* Inbound without capture (options.ingress: listeners) and the mTLS shapes on both sides: each
 * workload's sidecar gets an inbound listener on <address>:<service port> that replaces its
 * outbound listener there and forwards to its application; the service's endpoints become those
 * listeners, labelled tlsMode: istio; with mtls STRICT/PERMISSIVE the inbound chains are Istio's
 * (TLS inspector, HTTP inspector, ALPN and transport matches, DownstreamTlsContext from SDS with
 * a required client certificate in the trust domain, a plaintext chain only when PERMISSIVE);
 * outbound clusters carry Istio's SNI, ALPN and SANs. Mesh errors name the field. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "xds/cp/gen.h"
#include "xds/pbjson.h"
#include "xds/registry.h"

#define REVIEWS "reviews.default.svc.cluster.local"
#define R1_NODE "sidecar~10.0.0.2~r1.default~default.svc.cluster.local"
#define PP_NODE "sidecar~10.0.0.1~pp.default~default.svc.cluster.local"

/* reviews (http 9080, subsets v1/v2) and db (tcp 5432); productpage calls, r1/r2/db-1 serve. */
static const char *mesh_body =
    "services:\n"
    "  - name: reviews\n"
    "    ports: [{port: 9080}]\n"
    "    subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
    "  - name: db\n"
    "    ports: [{port: 5432, protocol: tcp}]\n"
    "workloads:\n"
    "  - {name: pp, address: 10.0.0.1, service_account: productpage}\n"
    "  - {name: r1, address: 10.0.0.2, service_account: rev, labels: {version: v1},\n"
    "     services: [reviews], port: 19080}\n"
    "  - {name: r2, address: 10.0.0.3, service_account: rev2, labels: {version: v2},\n"
    "     services: [reviews], port: 19080, port_offset: 100}\n"
    "  - {name: db-1, address: 10.0.0.4, services: [db], port: 15432}\n";

static char err[512];

static struct cp_mesh *mesh_with(const char *options)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "options: {%s}\n%s", options, mesh_body);
    struct cp_mesh *m = cp_mesh_parse(yaml, strlen(yaml), "m.yaml", err, sizeof err);
    if (!m) fprintf(stderr, "  %s\n", err);
    return m;
}

static struct cp_resources *gen_for(const struct cp_mesh *m, const char *node_id)
{
    struct cp_node node;
    if (!m || cp_node_parse(node_id, &node) < 0) return NULL;
    struct cp_resources *r = cp_generate(m, &node, err, sizeof err);
    if (!r) fprintf(stderr, "  generate: %s\n", err);
    return r;
}

/* Resource t/name as Envoy's JSON (lowerCamel keys), or NULL. */
static json_t *resource(const struct cp_resources *r, enum cp_type t, const char *name)
{
    const struct cp_resource *res = r ? cp_resources_find(r, t, name) : NULL;
    if (!res) {
        fprintf(stderr, "  no %s \"%s\"\n", cp_type_short(t), name);
        return NULL;
    }
    ProtobufCMessage *m =
        protobuf_c_message_unpack(xds_registry_find(cp_type_url(t)), NULL, res->len, res->bytes);
    json_t *j = m ? xds_to_json(m) : NULL;
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return j;
}

/* j at a path of object keys and array indexes ("filterChains/0/name"), or NULL. */
static json_t *at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, "/", &save); j && k; k = strtok_r(NULL, "/", &save))
        j = json_is_array(j) ? json_array_get(j, strtoul(k, NULL, 10)) : json_object_get(j, k);
    return j;
}

static const char *str_at(json_t *j, const char *path)
{
    const char *s = json_string_value(at(j, path));
    return s ? s : "(none)";
}

/* The strings of the array at path joined by ',' into buf. */
static const char *list_at(json_t *j, const char *path, char *buf, size_t len)
{
    json_t *a = at(j, path), *v;
    size_t i, used = 0;
    buf[0] = '\0';
    json_array_foreach(a, i, v)
    {
        int n = snprintf(buf + used, len - used, "%s%s", i ? "," : "", json_string_value(v));
        if (n > 0 && (size_t)n < len - used) used += (size_t)n;
    }
    return buf;
}

/* The first filter's typed_config of chain i. */
static json_t *chain_filter(json_t *l, size_t i)
{
    char path[64];
    snprintf(path, sizeof path, "filterChains/%zu/filters/0/typedConfig", i);
    return at(l, path);
}

static void test_ingress_listener_strict_http(void)
{
    struct cp_mesh *m = mesh_with("bind: workload, ingress: listeners, mtls: STRICT, "
                                  "trust_domain: td.test, access_log: /dev/stdout");
    struct cp_resources *r = gen_for(m, R1_NODE);
    CHECK(r != NULL);
    char buf[512];
    json_t *l = resource(r, CP_LDS, "10.0.0.2_9080");
    CHECK_STR(str_at(l, "address/socketAddress/address"), "10.0.0.2");
    CHECK_EQ_INT(json_integer_value(at(l, "address/socketAddress/portValue")), 9080);
    CHECK_STR(str_at(l, "trafficDirection"), "INBOUND"); /* it replaced the outbound 9080 */
    CHECK_STR(str_at(l, "listenerFilters/0/name"), "envoy.filters.listener.tls_inspector");
    CHECK_STR(str_at(l, "listenerFilters/1/name"), "envoy.filters.listener.http_inspector");
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 1); /* STRICT: no plaintext chain */
    CHECK_STR(str_at(l, "filterChains/0/filterChainMatch/transportProtocol"), "tls");
    CHECK_STR(list_at(l, "filterChains/0/filterChainMatch/applicationProtocols", buf, sizeof buf),
              "istio-http/1.0,istio-http/1.1,istio-h2");
    json_t *tls = at(l, "filterChains/0/transportSocket/typedConfig");
    CHECK(json_is_true(at(tls, "requireClientCertificate")));
    CHECK_STR(str_at(tls, "commonTlsContext/tlsCertificateSdsSecretConfigs/0/name"), "default");
    CHECK(at(tls, "commonTlsContext/tlsCertificateSdsSecretConfigs/0/sdsConfig/ads") != NULL);
    json_t *cvc = at(tls, "commonTlsContext/combinedValidationContext");
    CHECK_STR(str_at(cvc, "validationContextSdsSecretConfig/name"), "ROOTCA");
    CHECK_STR(str_at(cvc, "defaultValidationContext/matchTypedSubjectAltNames/0/sanType"), "URI");
    CHECK_STR(str_at(cvc, "defaultValidationContext/matchTypedSubjectAltNames/0/matcher/prefix"),
              "spiffe://td.test/");
    json_t *hcm = chain_filter(l, 0);
    CHECK_STR(str_at(hcm, "routeConfig/virtualHosts/0/routes/0/route/cluster"), "inbound|19080||");
    CHECK_STR(str_at(hcm, "accessLog/0/typedConfig/path"), "/dev/stdout");
    /* istiod's XFCC: the application learns the client's identity */
    CHECK_STR(str_at(hcm, "forwardClientCertDetails"), "APPEND_FORWARD");
    CHECK(json_is_true(at(hcm, "setCurrentClientCertDetails/uri")));
    CHECK(json_is_true(at(hcm, "setCurrentClientCertDetails/subject")));
    CHECK(strstr(str_at(hcm, "accessLog/0/typedConfig/logFormat/textFormatSource/inlineString"),
                 "peer=%DOWNSTREAM_PEER_URI_SAN%") != NULL);
    json_decref(l);
    /* The application behind it, on the workload's address and its own port. */
    json_t *c = resource(r, CP_CDS, "inbound|19080||");
    CHECK_STR(str_at(c, "loadAssignment/endpoints/0/lbEndpoints/0/endpoint/address/"
                        "socketAddress/address"),
              "10.0.0.2");
    CHECK_EQ_INT(json_integer_value(at(c, "loadAssignment/endpoints/0/lbEndpoints/0/endpoint/"
                                          "address/socketAddress/portValue")),
                 19080);
    json_decref(c);
    /* The node still calls the other services through its outbound listeners. */
    l = resource(r, CP_LDS, "10.0.0.2_5432");
    CHECK_STR(str_at(l, "trafficDirection"), "OUTBOUND");
    json_decref(l);
    cp_resources_free(r);
    /* A client node keeps its outbound 9080 and has no inbound listener. */
    r = gen_for(m, PP_NODE);
    l = resource(r, CP_LDS, "10.0.0.1_9080");
    CHECK_STR(str_at(l, "trafficDirection"), "OUTBOUND");
    CHECK_STR(str_at(chain_filter(l, 0), "forwardClientCertDetails"), "SANITIZE_SET");
    json_decref(l);
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_endpoints_are_the_sidecars(void)
{
    struct cp_mesh *m = mesh_with("bind: workload, ingress: listeners, mtls: true");
    CHECK(m && m->options.mtls == CP_MTLS_STRICT);
    struct cp_resources *r = gen_for(m, PP_NODE);
    json_t *e = resource(r, CP_EDS, "outbound|9080||" REVIEWS);
    json_t *eps = at(e, "endpoints/0/lbEndpoints");
    CHECK_EQ_INT(json_array_size(eps), 2);
    CHECK_STR(str_at(eps, "0/endpoint/address/socketAddress/address"), "10.0.0.2");
    CHECK_EQ_INT(json_integer_value(at(eps, "0/endpoint/address/socketAddress/portValue")), 9080);
    CHECK_STR(str_at(eps, "0/metadata/filterMetadata/envoy.transport_socket_match/tlsMode"),
              "istio");
    /* r2's sidecar has port_offset 100: its listener, so its endpoint, is on 9180 */
    CHECK_EQ_INT(json_integer_value(at(eps, "1/endpoint/address/socketAddress/portValue")), 9180);
    json_decref(e);
    cp_resources_free(r);
    r = gen_for(m, "sidecar~10.0.0.3~r2.default~default.svc.cluster.local");
    json_t *l = resource(r, CP_LDS, "10.0.0.3_9080");
    CHECK_EQ_INT(json_integer_value(at(l, "address/socketAddress/portValue")), 9180);
    json_decref(l);
    cp_resources_free(r);
    cp_mesh_free(m);
    /* Without ingress listeners the endpoints stay the applications. */
    m = mesh_with("bind: workload, mtls: true");
    r = gen_for(m, PP_NODE);
    e = resource(r, CP_EDS, "outbound|9080||" REVIEWS);
    CHECK_EQ_INT(json_integer_value(at(e, "endpoints/0/lbEndpoints/0/endpoint/address/"
                                          "socketAddress/portValue")),
                 19080);
    json_decref(e);
    cp_resources_free(r);
    r = gen_for(m, R1_NODE);
    l = resource(r, CP_LDS, "10.0.0.2_9080");
    CHECK_STR(str_at(l, "trafficDirection"), "OUTBOUND");
    json_decref(l);
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_permissive_tcp_and_http(void)
{
    struct cp_mesh *m = mesh_with("bind: workload, ingress: listeners, mtls: PERMISSIVE");
    CHECK(m && m->options.mtls == CP_MTLS_PERMISSIVE);
    struct cp_resources *r = gen_for(m, "sidecar~10.0.0.4~db-1.default~default.svc.cluster.local");
    char buf[256];
    json_t *l = resource(r, CP_LDS, "10.0.0.4_5432");
    CHECK_STR(str_at(l, "trafficDirection"), "INBOUND");
    CHECK_EQ_INT(json_array_size(at(l, "listenerFilters")), 1); /* tcp: no HTTP inspector */
    CHECK_STR(str_at(l, "listenerFilters/0/name"), "envoy.filters.listener.tls_inspector");
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 2);
    CHECK_STR(str_at(l, "filterChains/0/filterChainMatch/transportProtocol"), "tls");
    CHECK_STR(list_at(l, "filterChains/0/filterChainMatch/applicationProtocols", buf, sizeof buf),
              "istio-peer-exchange,istio");
    CHECK_STR(str_at(chain_filter(l, 0), "cluster"), "inbound|15432||");
    CHECK_STR(str_at(l, "filterChains/1/filterChainMatch/transportProtocol"), "raw_buffer");
    CHECK(at(l, "filterChains/1/filterChainMatch/applicationProtocols") == NULL);
    CHECK(at(l, "filterChains/1/transportSocket") == NULL);
    CHECK_STR(str_at(chain_filter(l, 1), "cluster"), "inbound|15432||");
    CHECK(at(chain_filter(l, 1), "accessLog") == NULL); /* no access_log option */
    json_decref(l);
    cp_resources_free(r);
    r = gen_for(m, R1_NODE);
    l = resource(r, CP_LDS, "10.0.0.2_9080");
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 2);
    CHECK_STR(str_at(l, "filterChains/1/filterChainMatch/transportProtocol"), "raw_buffer");
    CHECK_STR(list_at(l, "filterChains/1/filterChainMatch/applicationProtocols", buf, sizeof buf),
              "http/1.1,http/1.0,h2c");
    json_decref(l);
    /* virtualInbound has the same chains, matched on the application's port */
    l = resource(r, CP_LDS, "virtualInbound");
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 3); /* tls, plaintext, passthrough */
    CHECK_EQ_INT(json_integer_value(at(l, "filterChains/0/filterChainMatch/destinationPort")),
                 19080);
    CHECK_STR(str_at(l, "filterChains/0/filterChainMatch/transportProtocol"), "tls");
    CHECK_STR(str_at(l, "filterChains/2/name"), "InboundPassthroughFilterChain");
    CHECK_STR(str_at(l, "listenerFilters/0/name"), "envoy.filters.listener.tls_inspector");
    json_decref(l);
    cp_resources_free(r);
    cp_mesh_free(m);
}

/* Under capture the inspectors follow original_dst, and there are no ingress listeners. */
static void test_capture_inbound_filters(void)
{
    struct cp_mesh *m = mesh_with("capture: iptables, mtls: STRICT");
    struct cp_resources *r = gen_for(m, R1_NODE);
    json_t *l = resource(r, CP_LDS, "virtualInbound");
    CHECK(json_is_true(at(l, "useOriginalDst")));
    CHECK_EQ_INT(json_array_size(at(l, "listenerFilters")), 3);
    CHECK_STR(str_at(l, "listenerFilters/0/name"), "envoy.filters.listener.original_dst");
    CHECK_STR(str_at(l, "listenerFilters/1/name"), "envoy.filters.listener.tls_inspector");
    CHECK_STR(str_at(l, "listenerFilters/2/name"), "envoy.filters.listener.http_inspector");
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 2); /* STRICT chain, passthrough */
    json_decref(l);
    l = resource(r, CP_LDS, "0.0.0.0_9080");
    CHECK_STR(str_at(l, "trafficDirection"), "OUTBOUND");
    json_decref(l);
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_mtls_off_is_plaintext(void)
{
    struct cp_mesh *m = mesh_with("bind: workload, ingress: listeners");
    struct cp_resources *r = gen_for(m, R1_NODE);
    json_t *l = resource(r, CP_LDS, "10.0.0.2_9080");
    CHECK_STR(str_at(l, "trafficDirection"), "INBOUND");
    CHECK(at(l, "listenerFilters") == NULL);
    CHECK_EQ_INT(json_array_size(at(l, "filterChains")), 1);
    CHECK(at(l, "filterChains/0/filterChainMatch") == NULL);
    CHECK(at(l, "filterChains/0/transportSocket") == NULL);
    json_decref(l);
    cp_resources_free(r);
    r = gen_for(m, PP_NODE);
    json_t *e = resource(r, CP_EDS, "outbound|9080||" REVIEWS);
    CHECK(at(e, "endpoints/0/lbEndpoints/0/metadata") == NULL);
    json_decref(e);
    json_t *c = resource(r, CP_CDS, "outbound|9080|v1|" REVIEWS);
    CHECK(at(c, "transportSocketMatches") == NULL);
    json_decref(c);
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_outbound_tls_shapes(void)
{
    struct cp_mesh *m = mesh_with("bind: workload, ingress: listeners, mtls: STRICT");
    struct cp_resources *r = gen_for(m, PP_NODE);
    char buf[512];
    json_t *c = resource(r, CP_CDS, "outbound|9080|v1|" REVIEWS);
    json_t *tsm = at(c, "transportSocketMatches");
    CHECK_STR(str_at(tsm, "0/name"), "tlsMode-istio");
    CHECK_STR(str_at(tsm, "0/match/tlsMode"), "istio");
    json_t *tls = at(tsm, "0/transportSocket/typedConfig");
    CHECK_STR(str_at(tls, "sni"), "outbound_.9080_.v1_." REVIEWS);
    CHECK_STR(list_at(tls, "commonTlsContext/alpnProtocols", buf, sizeof buf),
              "istio-http/1.1,istio");
    /* the service's workloads' identities, each once; not the caller's */
    json_t *sans = at(tls, "commonTlsContext/combinedValidationContext/defaultValidationContext/"
                           "matchTypedSubjectAltNames");
    CHECK_EQ_INT(json_array_size(sans), 2);
    CHECK_STR(str_at(sans, "0/matcher/exact"), "spiffe://cluster.local/ns/default/sa/rev");
    CHECK_STR(str_at(sans, "1/matcher/exact"), "spiffe://cluster.local/ns/default/sa/rev2");
    CHECK_STR(str_at(tsm, "1/name"), "tlsMode-disabled");
    json_decref(c);
    c = resource(r, CP_CDS, "outbound|5432||db.default.svc.cluster.local");
    tls = at(c, "transportSocketMatches/0/transportSocket/typedConfig");
    CHECK_STR(str_at(tls, "sni"), "outbound_.5432_._.db.default.svc.cluster.local");
    CHECK_STR(list_at(tls, "commonTlsContext/alpnProtocols", buf, sizeof buf),
              "istio-peer-exchange,istio");
    CHECK_STR(str_at(tls, "commonTlsContext/combinedValidationContext/defaultValidationContext/"
                          "matchTypedSubjectAltNames/0/matcher/exact"),
              "spiffe://cluster.local/ns/default/sa/default");
    json_decref(c);
    cp_resources_free(r);
    cp_mesh_free(m);
}

/* `make run`'s mesh loads, has the shapes the demo relies on, and generates for every node. */
static void test_demo_mesh(void)
{
    char path[1024];
    const char *file = __FILE__, *cut = strstr(file, "tests/unit/cp/");
    snprintf(path, sizeof path, "%.*sexamples/mesh-demo.yaml", (int)(cut ? cut - file : 0), file);
    struct cp_mesh *m = cp_mesh_load(path, err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK(m->options.bind == CP_BIND_WORKLOAD && m->options.ingress == CP_INGRESS_LISTENERS);
    CHECK(m->options.mtls == CP_MTLS_STRICT);
    CHECK(m->options.access_log && strcmp(m->options.access_log, "/dev/stdout") == 0);
    CHECK_EQ_INT(m->n_workloads, 4);
    for (size_t i = 0; i < m->n_workloads; i++) {
        char id[256];
        snprintf(id, sizeof id, "sidecar~%s~%s.default~default.svc.cluster.local",
                 m->workloads[i].address, m->workloads[i].name);
        struct cp_resources *r = gen_for(m, id);
        CHECK(r != NULL);
        cp_resources_free(r);
    }
    cp_mesh_free(m);
}

static void test_mesh_errors(void)
{
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"options: {ingress: listeners}\n",
         "m.yaml:1: options.ingress: listeners needs bind: workload and capture: none"},
        {"options: {bind: workload, capture: iptables, ingress: listeners}\n",
         "m.yaml:1: options.ingress: listeners needs bind: workload and capture: none"},
        {"options: {bind: workload, ingress: sidecar}\n",
         "m.yaml:1: options.ingress: must be none or listeners (got \"sidecar\")"},
        {"options: {mtls: strict}\n", "m.yaml:1: options.mtls: must be true, false, STRICT, "
                                      "PERMISSIVE or DISABLE (got \"strict\")"},
        {"options: {bind: workload, ingress: listeners}\n"
         "services: [{name: a, ports: [{port: 80}]}]\n"
         "workloads:\n  - {name: w, address: 10.0.0.9, services: [a]}\n",
         "m.yaml:4: workloads[0].port: the application must listen on another port than its "
         "sidecar's inbound listener 10.0.0.9:80 (options.ingress: listeners)"},
        {"options: {bind: workload, ingress: listeners}\n"
         "services: [{name: a, ports: [{port: 80}]}]\n"
         "workloads:\n  - {name: w, address: 10.0.0.9, services: [a], port: 180,\n"
         "     port_offset: 100}\n",
         "m.yaml:4: workloads[0].port: the application must listen on another port than its "
         "sidecar's inbound listener 10.0.0.9:180 (options.ingress: listeners)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cp_mesh *m =
            cp_mesh_parse(cases[i].yaml, strlen(cases[i].yaml), "m.yaml", err, sizeof err);
        CHECK(m == NULL);
        cp_mesh_free(m);
        if (!m) CHECK_STR(err, cases[i].want);
    }
    struct cp_mesh *m = mesh_with("mtls: DISABLE, access_log: \"\"");
    CHECK(m && m->options.mtls == CP_MTLS_OFF && m->options.access_log == NULL);
    cp_mesh_free(m);
}

RUN_TESTS(TEST_CASE(test_ingress_listener_strict_http), TEST_CASE(test_endpoints_are_the_sidecars),
          TEST_CASE(test_permissive_tcp_and_http), TEST_CASE(test_capture_inbound_filters),
          TEST_CASE(test_mtls_off_is_plaintext), TEST_CASE(test_outbound_tls_shapes),
          TEST_CASE(test_demo_mesh), TEST_CASE(test_mesh_errors))
