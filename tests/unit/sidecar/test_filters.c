/* The filter decision table: what is implemented, skipped and refused, for each filter istiod
 * and pilot-agent send, including opaque (Istio-only) types and TypedStruct-wrapped ones. */
#include <stdlib.h>

#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "sidecar/filters.h"
#include "test.h"
#include "xds/pbload.h"

/* Decides a filter given as {"name": ..., "typed_config": {...}} JSON. */
static enum rs_filter_verdict decide_json(enum rs_filter_kind kind, const char *json,
                                          struct rs_filter_decision *d)
{
    char err[256];
    ProtobufCMessage *m = xds_load_json(&envoy__config__listener__v3__filter__descriptor, json,
                                        strlen(json), 0, err, sizeof err);
    if (!m) {
        fprintf(stderr, "  load: %s\n", err);
        d->verdict = RS_FILTER_REFUSED;
        snprintf(d->reason, sizeof d->reason, "LOAD FAILED");
        return RS_FILTER_REFUSED;
    }
    const Envoy__Config__Listener__V3__Filter *f = (const void *)m;
    rs_filter_decide(kind, f->name, f->typed_config, false, d);
    protobuf_c_message_free_unpacked(m, NULL);
    return d->verdict;
}

/* An opaque Any as the ADS client hands it over: a type URL Ringside has no .proto for. */
static enum rs_filter_verdict decide_opaque(enum rs_filter_kind kind, const char *name,
                                            const char *type_url, size_t len,
                                            struct rs_filter_decision *d)
{
    static uint8_t bytes[8] = {0x0a, 0x03, 'a', 'b', 'c'};
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = (char *)type_url;
    any.value.data = bytes;
    any.value.len = len;
    rs_filter_decide(kind, name, &any, false, d);
    return d->verdict;
}

#define TC(t) "\"typed_config\": {\"@type\": \"type.googleapis.com/" t "\""

static void test_implemented(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(decide_json(RS_FILTER_HTTP,
                             "{\"name\": \"envoy.filters.http.router\", " TC(
                                 "envoy.extensions.filters.http.router.v3.Router") "}}",
                             &d),
                 RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(d.id, RS_FID_ROUTER);
    CHECK_EQ_INT(
        decide_json(RS_FILTER_LISTENER,
                    "{\"name\": \"envoy.filters.listener.original_dst\", " TC(
                        "envoy.extensions.filters.listener.original_dst.v3.OriginalDst") "}}",
                    &d),
        RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(d.id, RS_FID_ORIGINAL_DST);
    /* the type decides, not the name */
    CHECK_EQ_INT(
        decide_json(RS_FILTER_NETWORK,
                    "{\"name\": \"anything\", " TC("envoy.extensions.filters.network.tcp_proxy.v3."
                                                   "TcpProxy") ", \"cluster\": \"c\"}}",
                    &d),
        RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(d.id, RS_FID_TCP_PROXY);
}

static void test_skipped_telemetry(void)
{
    struct rs_filter_decision d;
    /* opaque Istio types, by type URL */
    CHECK_EQ_INT(decide_opaque(RS_FILTER_HTTP, "istio.stats",
                               "type.googleapis.com/stats.PluginConfig", 5, &d),
                 RS_FILTER_SKIPPED);
    CHECK(strstr(d.reason, "telemetry") != NULL);
    CHECK_STR(d.type, "stats.PluginConfig");
    CHECK_EQ_INT(decide_opaque(RS_FILTER_HTTP, "io.istio.http.peer_metadata",
                               "type.googleapis.com/io.istio.http.peer_metadata.Config", 0, &d),
                 RS_FILTER_SKIPPED);
    CHECK_EQ_INT(
        decide_opaque(RS_FILTER_NETWORK, "istio.metadata_exchange",
                      "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange", 5,
                      &d),
        RS_FILTER_SKIPPED);
    /* istio.alpn is run (its names go on upstream TLS connections) */
    CHECK_EQ_INT(
        decide_opaque(
            RS_FILTER_HTTP, "istio.alpn",
            "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig", 5, &d),
        RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(d.id, RS_FID_ISTIO_ALPN);
    /* TypedStruct-wrapped: the wrapped type decides */
    CHECK_EQ_INT(
        decide_json(RS_FILTER_HTTP,
                    "{\"name\": \"istio.metadata_exchange\", " TC(
                        "udpa.type.v1.TypedStruct") ", \"type_url\": "
                                                    "\"type.googleapis.com/"
                                                    "io.istio.http.metadata_exchange.Config\", "
                                                    "\"value\": {\"protocol\": \"istio-peer-"
                                                    "exchange\"}}}",
                    &d),
        RS_FILTER_SKIPPED);
    CHECK_STR(d.type, "io.istio.http.metadata_exchange.Config");
    CHECK_EQ_INT(
        decide_json(RS_FILTER_HTTP,
                    "{\"name\": \"envoy.filters.http.grpc_stats\", " TC(
                        "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig") ", "
                                                                                    "\"emit_filter_"
                                                                                    "state\": "
                                                                                    "true}}",
                    &d),
        RS_FILTER_SKIPPED);
    CHECK_EQ_INT(
        decide_json(
            RS_FILTER_HTTP,
            "{\"name\": \"envoy.filters.http.compressor\", " TC(
                "envoy.extensions.filters.http.compressor.v3.Compressor") ", "
                                                                          "\"compressor_"
                                                                          "library\": "
                                                                          "{\"name\": "
                                                                          "\"gzip\", "
                                                                          "\"typed_config\": "
                                                                          "{\"@type\": "
                                                                          "\"type."
                                                                          "googleapis.com/"
                                                                          "envoy."
                                                                          "extensions."
                                                                          "compression."
                                                                          "gzip."
                                                                          "compressor.v3."
                                                                          "Gzip\"}}}}",
            &d),
        RS_FILTER_SKIPPED);
    CHECK_EQ_INT(decide_json(RS_FILTER_HTTP,
                             "{\"name\": \"envoy.filters.http.cors\", " TC(
                                 "envoy.extensions.filters.http.cors.v3.Cors") "}}",
                             &d),
                 RS_FILTER_SKIPPED);
}

static void test_fault(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(decide_json(RS_FILTER_HTTP,
                             "{\"name\": \"envoy.filters.http.fault\", " TC(
                                 "envoy.extensions.filters.http.fault.v3.HTTPFault") "}}",
                             &d),
                 RS_FILTER_SKIPPED);
    CHECK_EQ_INT(decide_json(RS_FILTER_ROUTE,
                             "{\"name\": \"envoy.filters.http.fault\", " TC(
                                 "envoy.extensions.filters.http.fault.v3.HTTPFault") ", "
                                                                                     "\"abort\": "
                                                                                     "{\"http_"
                                                                                     "status\": "
                                                                                     "503, "
                                                                                     "\"percentage"
                                                                                     "\": "
                                                                                     "{\"numerator"
                                                                                     "\": 10}}}}",
                             &d),
                 RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "abort: fault injection is not implemented") != NULL);
}

static void test_authorization_never_skipped(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(decide_json(RS_FILTER_HTTP,
                             "{\"name\": \"envoy.filters.http.ext_authz\", " TC(
                                 "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz") "}}",
                             &d),
                 RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "authorization") != NULL);
    /* even when marked optional */
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
    rs_filter_decide(RS_FILTER_HTTP, "x", &any, true, &d);
    CHECK_EQ_INT(d.verdict, RS_FILTER_REFUSED);
    /* RBAC is enforced: implemented, whatever its rules */
    CHECK_EQ_INT(
        decide_json(RS_FILTER_HTTP,
                    "{\"name\": \"envoy.filters.http.rbac\", " TC(
                        "envoy.extensions.filters.http.rbac.v3.RBAC") ", \"rules\": {\"action\": "
                                                                      "\"ALLOW\"}}}",
                    &d),
        RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(d.id, RS_FID_RBAC);
    CHECK_EQ_INT(
        decide_json(RS_FILTER_NETWORK,
                    "{\"name\": \"envoy.filters.network.rbac\", " TC(
                        "envoy.extensions.filters.network.rbac.v3.RBAC") ", "
                                                                         "\"stat_prefix\": "
                                                                         "\"tcp.\", "
                                                                         "\"shadow_rules\":"
                                                                         " {}}}",
                    &d),
        RS_FILTER_IMPLEMENTED);
    /* ... except the unified matcher form: refused by name, never skipped */
    CHECK_EQ_INT(
        decide_json(RS_FILTER_NETWORK,
                    "{\"name\": \"envoy.filters.network.rbac\", " TC(
                        "envoy.extensions.filters.network.rbac.v3.RBAC") ", "
                                                                         "\"stat_prefix\": "
                                                                         "\"tcp.\", "
                                                                         "\"shadow_matcher\":"
                                                                         " {}}}",
                    &d),
        RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "shadow_matcher: the unified matcher form of RBAC") != NULL);
    CHECK_EQ_INT(decide_opaque(RS_FILTER_HTTP, "envoy.filters.http.wasm",
                               "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", 0,
                               &d),
                 RS_FILTER_REFUSED);
    /* istio_authn: empty is skipped, a policy is refused */
    CHECK_EQ_INT(decide_opaque(RS_FILTER_NETWORK, "istio_authn",
                               "type.googleapis.com/io.istio.network.authn.Config", 0, &d),
                 RS_FILTER_SKIPPED);
    CHECK_EQ_INT(decide_opaque(RS_FILTER_NETWORK, "istio_authn",
                               "type.googleapis.com/io.istio.network.authn.Config", 5, &d),
                 RS_FILTER_REFUSED);
}

static void test_set_filter_state(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(
        decide_json(
            RS_FILTER_NETWORK,
            "{\"name\": \"envoy.filters.network.set_filter_state\", " TC(
                "envoy.extensions.filters.network.set_filter_state.v3.Config") ", "
                                                                               "\"on_new_"
                                                                               "connection"
                                                                               "\": "
                                                                               "[{\"object_"
                                                                               "key\": "
                                                                               "\"io.istio."
                                                                               "peer_"
                                                                               "principal\"}"
                                                                               "]}}",
            &d),
        RS_FILTER_SKIPPED);
    CHECK_EQ_INT(
        decide_json(
            RS_FILTER_NETWORK,
            "{\"name\": \"envoy.filters.network.set_filter_state\", " TC(
                "envoy.extensions.filters.network.set_filter_state.v3.Config") ", "
                                                                               "\"on_new_"
                                                                               "connection"
                                                                               "\": "
                                                                               "[{\"object_"
                                                                               "key\": "
                                                                               "\"envoy.tcp_"
                                                                               "proxy."
                                                                               "cluster\"}]"
                                                                               "}}",
            &d),
        RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "envoy.tcp_proxy.cluster") != NULL);
}

static void test_unknown_and_optional(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(
        decide_opaque(RS_FILTER_HTTP, "acme.magic", "type.googleapis.com/acme.Magic", 5, &d),
        RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "HTTP filter acme.magic of type acme.Magic is not supported") != NULL);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/acme.Magic";
    rs_filter_decide(RS_FILTER_HTTP, "acme.magic", &any, true, &d);
    CHECK_EQ_INT(d.verdict, RS_FILTER_SKIPPED);
    /* a known type whose bytes are garbage: a clean refusal */
    static uint8_t junk[] = {0xff, 0xff, 0xff};
    any.type_url = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";
    any.value.data = junk;
    any.value.len = sizeof junk;
    rs_filter_decide(RS_FILTER_HTTP, "envoy.filters.http.fault", &any, false, &d);
    CHECK_EQ_INT(d.verdict, RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "typed_config: malformed") != NULL);
}

static void test_route_configs(void)
{
    struct rs_filter_decision d;
    CHECK_EQ_INT(
        decide_json(RS_FILTER_ROUTE,
                    "{\"name\": \"envoy.filters.http.cors\", " TC(
                        "envoy.extensions.filters.http.cors.v3.CorsPolicy") ", "
                                                                            "\"allow_methods\": "
                                                                            "\"GET\"}}",
                    &d),
        RS_FILTER_REFUSED);
    CHECK(strstr(d.reason, "CORS policies") != NULL);
    CHECK_EQ_INT(decide_json(RS_FILTER_ROUTE,
                             "{\"name\": \"envoy.filters.http.rbac\", " TC(
                                 "envoy.extensions.filters.http.rbac.v3.RBACPerRoute") "}}",
                             &d),
                 RS_FILTER_IMPLEMENTED);
    CHECK_EQ_INT(
        decide_json(
            RS_FILTER_ROUTE,
            "{\"name\": \"envoy.filters.http.ext_authz\", " TC(
                "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute") ", "
                                                                               "\"disabled\""
                                                                               ": true}}",
            &d),
        RS_FILTER_SKIPPED);
    /* FilterConfig wrapper: disabled → skipped; wrapping an active fault → refused */
    CHECK_EQ_INT(
        decide_json(RS_FILTER_ROUTE,
                    "{\"name\": \"acme.x\", " TC("envoy.config.route.v3.FilterConfig") ", "
                                                                                       "\"d"
                                                                                       "isa"
                                                                                       "ble"
                                                                                       "d\""
                                                                                       ": "
                                                                                       "tru"
                                                                                       "e}"
                                                                                       "}",
                    &d),
        RS_FILTER_SKIPPED);
}

int main(void)
{
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_implemented),
        TEST_CASE(test_skipped_telemetry),
        TEST_CASE(test_fault),
        TEST_CASE(test_authorization_never_skipped),
        TEST_CASE(test_set_filter_state),
        TEST_CASE(test_unknown_and_optional),
        TEST_CASE(test_route_configs),
    };
    return rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
}
