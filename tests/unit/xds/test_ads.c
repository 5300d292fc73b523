/* The ADS protocol core driven without a socket: responses in, the requests it emits checked
 * (startup order, ACK/NACK contents, delta subscriptions and removals, reconnect versions),
 * warming and initial fetch timeouts, the cache file, node identity, bootstrap config. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "test.h"
#include "xds/ads.h"
#include "xds/bootstrap.h"
#include "xds/pbload.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest Request;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest DeltaRequest;

/* ---- fake transport, clock, sidecar ---------------------------------------------------------- */

#define MAX_RQ 64
static struct {
    uint8_t *buf[MAX_RQ];
    size_t len[MAX_RQ];
    int n;
} sent;
static uint64_t fake_now = 1000;
static int apply_calls, apply_reject_type = -3, last_changed = -2;
static struct xds_state *last_candidate;

static uint64_t clock_fn(void)
{
    return fake_now;
}

static int send_fn(void *arg, const uint8_t *msg, size_t len)
{
    (void)arg;
    if (sent.n == MAX_RQ) return -1;
    sent.buf[sent.n] = malloc(len + 1);
    memcpy(sent.buf[sent.n], msg, len);
    sent.len[sent.n++] = len;
    return 0;
}

static void sent_clear(void)
{
    for (int i = 0; i < sent.n; i++) free(sent.buf[i]);
    sent.n = 0;
}

static int apply_fn(void *arg, struct xds_state *cand, int changed, char *err, size_t errlen)
{
    (void)arg;
    apply_calls++;
    last_changed = changed;
    xds_state_unref(last_candidate);
    last_candidate = xds_state_ref(cand);
    if (changed == apply_reject_type) {
        snprintf(err, errlen, "listener \"l80\": filter_chains[0]: unsupported field");
        return 1;
    }
    return 0;
}

static void reset_fakes(void)
{
    sent_clear();
    apply_calls = 0;
    apply_reject_type = -3;
    last_changed = -2;
    xds_state_unref(last_candidate);
    last_candidate = NULL;
    fake_now = 1000;
}

static Envoy__Config__Core__V3__Node test_node;

static xds_ads *client(bool delta, bool first_only, uint32_t timeout_ms)
{
    reset_fakes();
    envoy__config__core__v3__node__init(&test_node);
    test_node.id = "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local";
    test_node.cluster = "svc.ns";
    struct xds_ads_config cfg = {.delta = delta,
                                 .node_first_only = first_only,
                                 .node = &test_node,
                                 .apply = apply_fn,
                                 .now_ms = clock_fn};
    for (int t = 0; t < XDS_NTYPES; t++) cfg.initial_fetch_timeout_ms[t] = timeout_ms;
    return xds_ads_new(&cfg);
}

static Request *rq(int i)
{
    return i < sent.n ? envoy__service__discovery__v3__discovery_request__unpack(NULL, sent.len[i],
                                                                                 sent.buf[i])
                      : NULL;
}

static DeltaRequest *drq(int i)
{
    return i < sent.n ? envoy__service__discovery__v3__delta_discovery_request__unpack(
                            NULL, sent.len[i], sent.buf[i])
                      : NULL;
}

/* ---- resources from YAML ------------------------------------------------------------------ */

struct blob {
    uint8_t *data;
    size_t len;
};

static struct blob pack_yaml(const ProtobufCMessageDescriptor *d, const char *yaml)
{
    char err[256];
    ProtobufCMessage *m = xds_load_yaml(d, yaml, strlen(yaml), 0, err, sizeof err);
    if (!m) {
        fprintf(stderr, "yaml: %s\n", err);
        abort();
    }
    struct blob b = {malloc(protobuf_c_message_get_packed_size(m) + 1), 0};
    b.len = protobuf_c_message_pack(m, b.data);
    protobuf_c_message_free_unpacked(m, NULL);
    return b;
}

static struct blob eds_cluster(const char *name, const char *service)
{
    char y[512];
    snprintf(y, sizeof y,
             "name: %s\ntype: EDS\nconnect_timeout: 1s\neds_cluster_config: {service_name: '%s', "
             "eds_config: {ads: {}}}\n",
             name, service);
    return pack_yaml(&envoy__config__cluster__v3__cluster__descriptor, y);
}

static struct blob static_cluster(const char *name)
{
    char y[512];
    snprintf(y, sizeof y, "name: %s\ntype: STATIC\nconnect_timeout: 2s\n", name);
    return pack_yaml(&envoy__config__cluster__v3__cluster__descriptor, y);
}

static struct blob cla(const char *name, int port)
{
    char y[512];
    snprintf(y, sizeof y,
             "cluster_name: %s\nendpoints: [{lb_endpoints: [{endpoint: {address: "
             "{socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]\n",
             name, port);
    return pack_yaml(&envoy__config__endpoint__v3__cluster_load_assignment__descriptor, y);
}

static struct blob rds_listener(const char *name, const char *route)
{
    char y[1024];
    snprintf(
        y, sizeof y,
        "name: %s\naddress: {socket_address: {address: 0.0.0.0, port_value: 80}}\n"
        "filter_chains:\n- filters:\n  - name: envoy.filters.network.http_connection_manager\n"
        "    typed_config:\n      '@type': type.googleapis.com/"
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
        "      stat_prefix: p\n      rds: {route_config_name: '%s', config_source: {ads: {}}}\n"
        "      http_filters: [{name: envoy.filters.http.router, typed_config: {'@type': "
        "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]\n",
        name, route);
    return pack_yaml(&envoy__config__listener__v3__listener__descriptor, y);
}

static struct blob route(const char *name, const char *cluster)
{
    char y[512];
    snprintf(y, sizeof y,
             "name: %s\nvirtual_hosts: [{name: vh, domains: ['*'], routes: [{match: {prefix: /}, "
             "route: {cluster: %s}}]}]\n",
             name, cluster);
    return pack_yaml(&envoy__config__route__v3__route_configuration__descriptor, y);
}

/* A SotW response of type t from blobs (freed here). */
static int respond(xds_ads *a, enum xds_type t, const char *version, const char *nonce,
                   struct blob *res, size_t n)
{
    Envoy__Service__Discovery__V3__DiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    Google__Protobuf__Any anys[8], *ap[8];
    for (size_t i = 0; i < n; i++) {
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)xds_type_url(t);
        anys[i].value.data = res[i].data;
        anys[i].value.len = res[i].len;
        ap[i] = &anys[i];
    }
    r.version_info = (char *)version;
    r.nonce = (char *)nonce;
    r.type_url = (char *)xds_type_url(t);
    r.n_resources = n;
    r.resources = ap;
    uint8_t buf[16384];
    size_t len = protobuf_c_message_pack(&r.base, buf);
    for (size_t i = 0; i < n; i++) free(res[i].data);
    return xds_ads_on_message(a, buf, len);
}

/* A delta response: resources named by their blobs with version, and removals. */
static int respond_delta(xds_ads *a, enum xds_type t, const char *nonce, const char **names,
                         const char *version, struct blob *res, size_t n, char **removed,
                         size_t n_removed)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse r =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    Envoy__Service__Discovery__V3__Resource w[8], *wp[8];
    Google__Protobuf__Any anys[8];
    for (size_t i = 0; i < n; i++) {
        envoy__service__discovery__v3__resource__init(&w[i]);
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)xds_type_url(t);
        anys[i].value.data = res[i].data;
        anys[i].value.len = res[i].len;
        w[i].name = (char *)names[i];
        w[i].version = (char *)version;
        w[i].resource = &anys[i];
        wp[i] = &w[i];
    }
    r.nonce = (char *)nonce;
    r.system_version_info = "ignored";
    r.type_url = (char *)xds_type_url(t);
    r.n_resources = n;
    r.resources = wp;
    r.n_removed_resources = n_removed;
    r.removed_resources = removed;
    uint8_t buf[16384];
    size_t len = protobuf_c_message_pack(&r.base, buf);
    for (size_t i = 0; i < n; i++) free(res[i].data);
    return xds_ads_on_message(a, buf, len);
}

#define CHECK_RQ(r, type, version, nonce)                                                          \
    do {                                                                                           \
        CHECK((r) != NULL);                                                                        \
        if (r) {                                                                                   \
            CHECK_STR((r)->type_url, xds_type_url(type));                                          \
            CHECK_STR((r)->version_info, version);                                                 \
            CHECK_STR((r)->response_nonce, nonce);                                                 \
        }                                                                                          \
    } while (0)

/* ---- state of the world ------------------------------------------------------------------- */

static void test_sotw_startup_order(void)
{
    xds_ads *a = client(false, true, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    CHECK_EQ_INT(sent.n, 1);
    Request *r = rq(0);
    CHECK_RQ(r, XDS_CDS, "", "");
    CHECK(r && r->node && strcmp(r->node->id, test_node.id) == 0);
    CHECK(r && r->n_resource_names == 0);
    CHECK(r && !r->error_detail);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    sent_clear();

    /* CDS: one EDS cluster, one static: ACK, then EDS for the service name; no LDS yet. */
    struct blob c[] = {eds_cluster("outbound|80||a", "svc-a"), static_cluster("blackhole")};
    CHECK_EQ_INT(respond(a, XDS_CDS, "c1", "n1", c, 2), 0);
    CHECK_EQ_INT(apply_calls, 1);
    CHECK_EQ_INT(last_changed, XDS_CDS);
    CHECK_EQ_INT(xds_state_watch_status(last_candidate, XDS_EDS, "svc-a"), XDS_WATCH_PENDING);
    CHECK(!last_candidate->cds_initialized);
    CHECK_EQ_INT(sent.n, 2);
    r = rq(0);
    CHECK_RQ(r, XDS_CDS, "c1", "n1");
    CHECK(r && !r->node); /* set_node_on_first_message_only */
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    r = rq(1);
    CHECK_RQ(r, XDS_EDS, "", "");
    CHECK(r && r->n_resource_names == 1 && strcmp(r->resource_names[0], "svc-a") == 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    sent_clear();

    /* EDS arrives: the cluster is warm, LDS starts. */
    struct blob e[] = {cla("svc-a", 8080)};
    CHECK_EQ_INT(respond(a, XDS_EDS, "e1", "n2", e, 1), 0);
    CHECK_EQ_INT(sent.n, 2);
    r = rq(0);
    CHECK_RQ(r, XDS_EDS, "e1", "n2");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    r = rq(1);
    CHECK_RQ(r, XDS_LDS, "", "");
    CHECK(r && r->n_resource_names == 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    CHECK(xds_ads_current(a)->cds_initialized);
    CHECK(xds_state_find(xds_ads_current(a), XDS_EDS, "svc-a") != NULL);
    sent_clear();

    /* LDS with an RDS name: ACK, then RDS for it; the route is pending (listener warming). */
    struct blob l[] = {rds_listener("0.0.0.0_80", "80")};
    CHECK_EQ_INT(respond(a, XDS_LDS, "l1", "n3", l, 1), 0);
    CHECK_EQ_INT(sent.n, 2);
    r = rq(1);
    CHECK_RQ(r, XDS_RDS, "", "");
    CHECK(r && r->n_resource_names == 1 && strcmp(r->resource_names[0], "80") == 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    CHECK_EQ_INT(xds_state_watch_status(xds_ads_current(a), XDS_RDS, "80"), XDS_WATCH_PENDING);
    sent_clear();

    struct blob rt[] = {route("80", "outbound|80||a")};
    CHECK_EQ_INT(respond(a, XDS_RDS, "r1", "n4", rt, 1), 0);
    CHECK_EQ_INT(sent.n, 1);
    r = rq(0);
    CHECK_RQ(r, XDS_RDS, "r1", "n4");
    CHECK(r && r->n_resource_names == 1);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    CHECK_EQ_INT(xds_state_watch_status(xds_ads_current(a), XDS_RDS, "80"), XDS_WATCH_ARRIVED);

    const struct xds_ads_stats *st = xds_ads_stats(a);
    CHECK_EQ_INT(st->connected_state, 1);
    CHECK_EQ_INT(st->type[XDS_CDS].update_success, 1);
    CHECK_EQ_INT(st->type[XDS_RDS].update_attempt, 1);
    CHECK(st->type[XDS_LDS].version != 0);
    xds_ads_free(a);
    reset_fakes();
}

/* Drives a SotW client to accepted CDS (no EDS clusters) and LDS. */
static xds_ads *sotw_with_lds(bool first_only)
{
    xds_ads *a = client(false, first_only, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    struct blob c[] = {static_cluster("s")};
    respond(a, XDS_CDS, "c1", "n1", c, 1);
    struct blob l[] = {rds_listener("l80", "80")};
    respond(a, XDS_LDS, "l1", "n2", l, 1);
    sent_clear();
    return a;
}

static void test_sotw_node_every_request(void)
{
    xds_ads *a = client(false, false, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    struct blob c[] = {static_cluster("s")};
    respond(a, XDS_CDS, "c1", "n1", c, 1);
    CHECK_EQ_INT(sent.n, 3); /* initial CDS, CDS ACK, LDS (no EDS cluster: CDS warm at once) */
    for (int i = 0; i < sent.n; i++) {
        Request *r = rq(i);
        CHECK(r && r->node && strcmp(r->node->cluster, "svc.ns") == 0);
        envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    }
    xds_ads_free(a);
    reset_fakes();
}

static void test_sotw_nack_keeps_previous(void)
{
    xds_ads *a = sotw_with_lds(true);
    struct xds_state *before = xds_ads_current(a);
    apply_reject_type = XDS_LDS;
    struct blob l[] = {rds_listener("l80", "81")};
    CHECK_EQ_INT(respond(a, XDS_LDS, "l2", "n3", l, 1), 0);
    CHECK_EQ_INT(sent.n, 1); /* the NACK; RDS subscription unchanged */
    Request *r = rq(0);
    CHECK_RQ(r, XDS_LDS, "l1", "n3"); /* previous version, this nonce */
    CHECK(r && r->error_detail && r->error_detail->code == 3);
    CHECK(r && r->error_detail && strstr(r->error_detail->message, "l80"));
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    CHECK(xds_ads_current(a) == before);
    CHECK(xds_state_watch_status(xds_ads_current(a), XDS_RDS, "81") < 0);
    CHECK_EQ_INT(xds_ads_stats(a)->type[XDS_LDS].update_rejected, 1);
    sent_clear();

    /* Fixed: accepted, RDS follows the new name. */
    apply_reject_type = -3;
    struct blob l2[] = {rds_listener("l80", "81")};
    respond(a, XDS_LDS, "l3", "n4", l2, 1);
    CHECK_EQ_INT(sent.n, 2);
    r = rq(0);
    CHECK_RQ(r, XDS_LDS, "l3", "n4");
    CHECK(r && !r->error_detail);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    r = rq(1);
    CHECK(r && r->n_resource_names == 1 && strcmp(r->resource_names[0], "81") == 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    xds_ads_free(a);
    reset_fakes();
}

static void test_sotw_bad_resources_nacked(void)
{
    xds_ads *a = sotw_with_lds(true);
    int calls = apply_calls;
    /* Bytes that are not a Listener. */
    struct blob bad[] = {{malloc(4), 4}};
    memcpy(bad[0].data, "\xff\xff\xff\xff", 4);
    CHECK_EQ_INT(respond(a, XDS_LDS, "l2", "n3", bad, 1), 0);
    CHECK_EQ_INT(apply_calls, calls);
    Request *r = rq(0);
    CHECK(r && r->error_detail && strstr(r->error_detail->message, "resources[0]"));
    CHECK_RQ(r, XDS_LDS, "l1", "n3");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    sent_clear();
    /* Duplicate names. */
    struct blob dup[] = {rds_listener("x", "1"), rds_listener("x", "2")};
    respond(a, XDS_LDS, "l3", "n4", dup, 2);
    r = rq(0);
    CHECK(r && r->error_detail && strstr(r->error_detail->message, "duplicate"));
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    sent_clear();
    /* A cluster in an LDS response. */
    struct blob wrong[] = {static_cluster("c")};
    Envoy__Service__Discovery__V3__DiscoveryResponse resp =
        ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT, *ap = &any;
    any.type_url = (char *)xds_type_url(XDS_CDS);
    any.value.data = wrong[0].data;
    any.value.len = wrong[0].len;
    resp.type_url = (char *)xds_type_url(XDS_LDS);
    resp.version_info = "l4";
    resp.nonce = "n5";
    resp.n_resources = 1;
    resp.resources = &ap;
    uint8_t buf[1024];
    size_t len = protobuf_c_message_pack(&resp.base, buf);
    free(wrong[0].data);
    xds_ads_on_message(a, buf, len);
    r = rq(0);
    CHECK(r && r->error_detail && strstr(r->error_detail->message, "Cluster"));
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* Garbage: malformed, the binding resets the stream. */
    CHECK_EQ_INT(xds_ads_on_message(a, (const uint8_t *)"\x0a\xff", 2), -1);
    CHECK_EQ_INT(xds_ads_stats(a)->rx_malformed, 1);
    CHECK(xds_state_find(xds_ads_current(a), XDS_LDS, "l80") != NULL);
    xds_ads_free(a);
    reset_fakes();
}

static void test_sotw_reconnect_versions_and_sharing(void)
{
    xds_ads *a = sotw_with_lds(true);
    struct blob rt[] = {route("80", "s")};
    respond(a, XDS_RDS, "r1", "n3", rt, 1);
    struct xds_state *s1 = xds_state_ref(xds_ads_current(a));
    struct blob rt2[] = {route("80", "t")};
    respond(a, XDS_RDS, "r2", "n4", rt2, 1);
    struct xds_state *s2 = xds_ads_current(a);
    /* Unchanged types are shared, not copied. */
    CHECK(s1->types[XDS_CDS] == s2->types[XDS_CDS]);
    CHECK(s1->types[XDS_LDS] == s2->types[XDS_LDS]);
    CHECK(s1->types[XDS_RDS] != s2->types[XDS_RDS]);
    xds_state_unref(s1);
    /* Unchanged bytes keep the resource (and its version). */
    struct blob l[] = {rds_listener("l80", "80")};
    const struct xds_resource *lr = xds_state_find(xds_ads_current(a), XDS_LDS, "l80");
    respond(a, XDS_LDS, "l9", "n5", l, 1);
    CHECK(xds_state_find(xds_ads_current(a), XDS_LDS, "l80") == lr);
    CHECK_STR(lr->version, "l1");
    sent_clear();

    xds_ads_stream_closed(a);
    CHECK_EQ_INT(xds_ads_stats(a)->connected_state, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    CHECK_EQ_INT(sent.n, 3); /* CDS, LDS, RDS with the versions held, no nonces */
    Request *r = rq(0);
    CHECK_RQ(r, XDS_CDS, "c1", "");
    CHECK(r && r->node);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    r = rq(1);
    CHECK_RQ(r, XDS_LDS, "l9", "");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    r = rq(2);
    CHECK_RQ(r, XDS_RDS, "r2", "");
    CHECK(r && r->n_resource_names == 1);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    xds_ads_free(a);
    reset_fakes();
}

static void test_sotw_cluster_removed_unsubscribes_eds(void)
{
    xds_ads *a = client(false, true, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    struct blob c[] = {eds_cluster("a", "a"), eds_cluster("b", "")};
    respond(a, XDS_CDS, "c1", "n1", c, 2);
    struct blob e[] = {cla("a", 1), cla("b", 2)};
    respond(a, XDS_EDS, "e1", "n2", e, 2);
    CHECK(xds_state_find(xds_ads_current(a), XDS_EDS, "b") != NULL);
    sent_clear();
    struct blob c2[] = {eds_cluster("a", "a")};
    respond(a, XDS_CDS, "c2", "n3", c2, 1);
    CHECK(xds_state_find(xds_ads_current(a), XDS_CDS, "b") == NULL);
    CHECK(xds_state_find(xds_ads_current(a), XDS_EDS, "b") == NULL);
    CHECK_EQ_INT(sent.n, 2);
    Request *r = rq(1);
    CHECK_RQ(r, XDS_EDS, "e1", "n2");
    CHECK(r && r->n_resource_names == 1 && strcmp(r->resource_names[0], "a") == 0);
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    xds_ads_free(a);
    reset_fakes();
}

/* ---- warming and timeouts ----------------------------------------------------------------- */

static void test_initial_fetch_timeout(void)
{
    xds_ads *a = client(false, true, 5000);
    xds_ads_stream_open(a, send_fn, NULL);
    CHECK_EQ_INT(xds_ads_on_timer(a), 6000); /* CDS's own timeout */
    struct blob c[] = {eds_cluster("a", "a")};
    respond(a, XDS_CDS, "c1", "n1", c, 1);
    CHECK_EQ_INT(xds_ads_on_timer(a), 6000); /* svc "a" subscribed at t=1000 */
    sent_clear();
    fake_now = 5999;
    xds_ads_on_timer(a);
    CHECK_EQ_INT(sent.n, 0);
    fake_now = 6000;
    CHECK_EQ_INT(xds_ads_on_timer(a), 11000); /* LDS, requested now, has its own timeout */
    CHECK_EQ_INT(xds_state_watch_status(xds_ads_current(a), XDS_EDS, "a"), XDS_WATCH_TIMED_OUT);
    CHECK(xds_ads_current(a)->cds_initialized);
    CHECK_EQ_INT(xds_ads_stats(a)->type[XDS_EDS].init_fetch_timeout, 1);
    CHECK_EQ_INT(sent.n, 1);
    Request *r = rq(0);
    CHECK_RQ(r, XDS_LDS, "", "");
    envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* A late arrival still counts. */
    struct blob e[] = {cla("a", 1)};
    respond(a, XDS_EDS, "e1", "n2", e, 1);
    CHECK_EQ_INT(xds_state_watch_status(xds_ads_current(a), XDS_EDS, "a"), XDS_WATCH_ARRIVED);
    xds_ads_free(a);
    reset_fakes();
}

/* ---- delta -------------------------------------------------------------------------------- */

static void test_delta_flow(void)
{
    xds_ads *a = client(true, true, 0);
    xds_ads_stream_open(a, send_fn, NULL);
    CHECK_EQ_INT(sent.n, 1);
    DeltaRequest *d = drq(0);
    CHECK(d && strcmp(d->type_url, xds_type_url(XDS_CDS)) == 0);
    CHECK(d && d->node && d->n_resource_names_subscribe == 0 &&
          d->n_initial_resource_versions == 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    sent_clear();

    const char *cn[] = {"a", "s"};
    struct blob c[] = {eds_cluster("a", "svc-a"), static_cluster("s")};
    CHECK_EQ_INT(respond_delta(a, XDS_CDS, "d1", cn, "v1", c, 2, NULL, 0), 0);
    CHECK_EQ_INT(sent.n, 2);
    d = drq(0); /* ACK: nonce, no error */
    CHECK(d && strcmp(d->response_nonce, "d1") == 0 && !d->error_detail && !d->node);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    d = drq(1);
    CHECK(d && strcmp(d->type_url, xds_type_url(XDS_EDS)) == 0);
    CHECK(d && d->n_resource_names_subscribe == 1 &&
          strcmp(d->resource_names_subscribe[0], "svc-a") == 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    CHECK_STR(xds_state_find(xds_ads_current(a), XDS_CDS, "a")->version, "v1");
    sent_clear();

    /* A resource whose body is not a Cluster: NACK with error_detail, state kept. */
    const char *bn[] = {"zz"};
    struct blob bad[] = {{malloc(2), 2}};
    memcpy(bad[0].data, "\x0a\xff", 2);
    respond_delta(a, XDS_CDS, "d2", bn, "v2", bad, 1, NULL, 0);
    d = drq(0);
    CHECK(d && strcmp(d->response_nonce, "d2") == 0 && d->error_detail &&
          d->error_detail->code == 3 && strstr(d->error_detail->message, "zz"));
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    CHECK(xds_state_find(xds_ads_current(a), XDS_CDS, "a") != NULL);
    sent_clear();

    /* Removal honoured: cluster a goes, its EDS is unsubscribed. */
    char *rm[] = {"a"};
    respond_delta(a, XDS_CDS, "d3", NULL, NULL, NULL, 0, rm, 1);
    CHECK(xds_state_find(xds_ads_current(a), XDS_CDS, "a") == NULL);
    CHECK(xds_state_find(xds_ads_current(a), XDS_CDS, "s") != NULL);
    CHECK_EQ_INT(sent.n, 3); /* ACK, EDS unsubscribe, LDS now that no cluster is warming */
    d = drq(1);
    CHECK(d && d->n_resource_names_unsubscribe == 1 &&
          strcmp(d->resource_names_unsubscribe[0], "svc-a") == 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    d = drq(2);
    CHECK(d && strcmp(d->type_url, xds_type_url(XDS_LDS)) == 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    sent_clear();

    /* Reconnect: initial_resource_versions carry what we hold. */
    xds_ads_stream_closed(a);
    xds_ads_stream_open(a, send_fn, NULL);
    d = drq(0);
    CHECK(d && d->node && d->n_initial_resource_versions == 1);
    CHECK(d && d->n_initial_resource_versions == 1 &&
          strcmp(d->initial_resource_versions[0]->key, "s") == 0 &&
          strcmp(d->initial_resource_versions[0]->value, "v1") == 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    xds_ads_free(a);
    reset_fakes();
}

/* ---- cache -------------------------------------------------------------------------------- */

static void test_cache_round_trip(void)
{
    char path[] = "/tmp/rs-ads-cache-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    xds_ads *a = sotw_with_lds(true);
    xds_ads_set_cache(a, path);
    struct blob rt[] = {route("80", "s")};
    respond(a, XDS_RDS, "r1", "n3", rt, 1);
    xds_ads_free(a);

    xds_ads *b = client(true, true, 0);
    char err[256];
    err[0] = '\0';
    CHECK_EQ_INT(xds_ads_load_cache(b, path, err, sizeof err), 0);
    if (err[0]) fprintf(stderr, "  cache: %s\n", err);
    CHECK_EQ_INT(apply_calls, 1);
    CHECK_EQ_INT(last_changed, -1);
    CHECK(xds_ads_state_from_cache(b));
    struct xds_state *s = xds_ads_current(b);
    CHECK(xds_state_find(s, XDS_CDS, "s") != NULL);
    CHECK(xds_state_find(s, XDS_RDS, "80") != NULL);
    CHECK_STR(s->types[XDS_LDS]->version_info, "l1");
    CHECK_EQ_INT(xds_state_watch_status(s, XDS_RDS, "80"), XDS_WATCH_ARRIVED);
    /* A (delta) stream after the cache asks for everything it holds. */
    xds_ads_stream_open(b, send_fn, NULL);
    CHECK_EQ_INT(sent.n, 3);
    DeltaRequest *d = drq(2);
    CHECK(d && strcmp(d->type_url, xds_type_url(XDS_RDS)) == 0 &&
          d->n_initial_resource_versions == 1);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(d, NULL);
    xds_ads_free(b);

    /* Corrupt files are refused cleanly. */
    FILE *f = fopen(path, "wb");
    fwrite("RSXDSC1\n\x00\x00\x10\x00garbage", 1, 19, f);
    fclose(f);
    xds_ads *c = client(false, true, 0);
    CHECK(xds_ads_load_cache(c, path, err, sizeof err) < 0);
    CHECK(strstr(err, "truncated") != NULL);
    CHECK(xds_ads_load_cache(c, "/nonexistent/x", err, sizeof err) < 0);
    CHECK_EQ_INT(apply_calls, 0);
    xds_ads_free(c);
    unlink(path);
    reset_fakes();
}

/* ---- node and bootstrap ------------------------------------------------------------------- */

static const char *md_string(const Envoy__Config__Core__V3__Node *n, const char *key)
{
    for (size_t i = 0; n->metadata && i < n->metadata->n_fields; i++)
        if (strcmp(n->metadata->fields[i]->key, key) == 0)
            return n->metadata->fields[i]->value->kind_case ==
                           GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
                       ? n->metadata->fields[i]->value->string_value
                       : "(non-string)";
    return NULL;
}

static void test_node_identity(void)
{
    char *env[] = {"INSTANCE_IP=10.1.2.3",
                   "POD_NAME=web-1",
                   "POD_NAMESPACE=shop",
                   "SERVICE_ACCOUNT=web",
                   "ISTIO_META_CLUSTER_ID=Kubernetes",
                   "ISTIO_META_MESH_ID=mesh1",
                   "ISTIO_METAJSON_LABELS={\"app\":\"web\"}",
                   "INTERCEPTION_MODE=REDIRECT",
                   NULL};
    char err[256];
    Envoy__Config__Core__V3__Node *n = xds_ads_node_build(NULL, env, err, sizeof err);
    CHECK(n != NULL);
    if (!n) return;
    CHECK_STR(n->id, "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local");
    CHECK_STR(md_string(n, "NAMESPACE"), "shop");
    CHECK_STR(md_string(n, "INSTANCE_IPS"), "10.1.2.3");
    CHECK_STR(md_string(n, "SERVICE_ACCOUNT"), "web");
    CHECK_STR(md_string(n, "CLUSTER_ID"), "Kubernetes");
    CHECK_STR(md_string(n, "MESH_ID"), "mesh1");
    CHECK_STR(md_string(n, "INTERCEPTION_MODE"), "REDIRECT");
    CHECK_STR(md_string(n, "LABELS"), "(non-string)");
    protobuf_c_message_free_unpacked(&n->base, NULL);

    /* The bootstrap's id and metadata win. */
    char err2[256];
    const char *y = "id: router~1~x~y\nmetadata: {NAMESPACE: boot}\n";
    Envoy__Config__Core__V3__Node *bn = (Envoy__Config__Core__V3__Node *)xds_load_yaml(
        &envoy__config__core__v3__node__descriptor, y, strlen(y), 0, err2, sizeof err2);
    n = xds_ads_node_build(bn, env, err, sizeof err);
    CHECK(n && strcmp(n->id, "router~1~x~y") == 0);
    CHECK(n && strcmp(md_string(n, "NAMESPACE"), "boot") == 0);
    if (n) protobuf_c_message_free_unpacked(&n->base, NULL);
    protobuf_c_message_free_unpacked(&bn->base, NULL);

    char *bare[] = {"POD_NAME=x", NULL};
    CHECK(xds_ads_node_build(NULL, bare, err, sizeof err) == NULL);
    CHECK(strstr(err, "INSTANCE_IP") != NULL);
}

static void test_config_from_bootstrap(void)
{
    const char *y =
        "dynamic_resources:\n"
        "  ads_config: {api_type: DELTA_GRPC, transport_api_version: V3, "
        "set_node_on_first_message_only: true,\n"
        "    grpc_services: [{envoy_grpc: {cluster_name: xds-grpc}}]}\n"
        "  cds_config: {ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}\n"
        "  lds_config: {ads: {}, initial_fetch_timeout: 2.5s, resource_api_version: V3}\n"
        "static_resources:\n"
        "  clusters:\n"
        "  - name: xds-grpc\n"
        "    type: STATIC\n"
        "    load_assignment: {cluster_name: xds-grpc, endpoints: [{lb_endpoints: [{endpoint: "
        "{address: {pipe: {path: ./etc/istio/proxy/XDS}}}}]}]}\n";
    char err[256];
    xds_bootstrap *b = xds_bootstrap_load_yaml_string(y, 0, err, sizeof err);
    CHECK(b != NULL);
    if (!b) return;
    struct xds_ads_config cfg = {0};
    CHECK_EQ_INT(xds_ads_config_from_bootstrap(&cfg, b, err, sizeof err), 0);
    CHECK(cfg.delta);
    CHECK(cfg.node_first_only);
    CHECK_STR(cfg.target, "unix:./etc/istio/proxy/XDS");
    CHECK_STR(cfg.cluster_name, "xds-grpc");
    CHECK_EQ_INT(cfg.initial_fetch_timeout_ms[XDS_CDS], 0);
    CHECK_EQ_INT(cfg.initial_fetch_timeout_ms[XDS_RDS], 2500);
    xds_bootstrap_free(b);

    b = xds_bootstrap_load_yaml_string(
        "dynamic_resources: {ads_config: {api_type: GRPC, grpc_services: [{envoy_grpc: "
        "{cluster_name: nope}}]}}\n",
        0, err, sizeof err);
    CHECK(b && xds_ads_config_from_bootstrap(&cfg, b, err, sizeof err) < 0);
    CHECK(strstr(err, "nope") != NULL);
    xds_bootstrap_free(b);
    b = xds_bootstrap_load_yaml_string("admin: {}\n", 0, err, sizeof err);
    CHECK(b && xds_ads_config_from_bootstrap(&cfg, b, err, sizeof err) < 0);
    xds_bootstrap_free(b);
}

/* A secrets-only client (pilot-agent's socket): SDS alone, the names it is given, a changed
 * subscription re-sent, secrets nobody names dropped, a rejected secret NACKed. */
static void test_sds_only_client(void)
{
    reset_fakes();
    struct xds_ads_config cfg = {
        .sds_only = true, .node = &test_node, .apply = apply_fn, .now_ms = clock_fn};
    xds_ads *a = xds_ads_new(&cfg);
    xds_ads_stream_open(a, send_fn, NULL);
    CHECK_EQ_INT(sent.n, 1); /* no CDS/LDS wildcard: SDS, with no names yet */
    Request *r = rq(0);
    CHECK(r && strcmp(r->type_url, xds_type_url(XDS_SDS)) == 0 && r->n_resource_names == 0);
    if (r) envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    const char *names[] = {"ROOTCA", "default"};
    xds_ads_set_sds_names(a, names, 2);
    CHECK_EQ_INT(sent.n, 2);
    r = rq(1);
    CHECK(r && r->n_resource_names == 2 && strcmp(r->resource_names[0], "ROOTCA") == 0 &&
          strcmp(r->resource_names[1], "default") == 0);
    if (r) envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    xds_ads_set_sds_names(a, names, 2); /* unchanged: nothing sent */
    CHECK_EQ_INT(sent.n, 2);
    const char *secret =
        "name: default\ntls_certificate: { certificate_chain: { inline_string: x } }\n";
    struct blob b[2] = {
        pack_yaml(&envoy__extensions__transport_sockets__tls__v3__secret__descriptor, secret),
        pack_yaml(&envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
                  "name: ROOTCA\nvalidation_context: { trusted_ca: { inline_string: y } }\n")};
    CHECK(respond(a, XDS_SDS, "v1", "n1", b, 2) == 0);
    CHECK_EQ_INT(apply_calls, 1);
    CHECK(xds_state_find(xds_ads_current(a), XDS_SDS, "default") != NULL);
    r = rq(sent.n - 1); /* the ACK */
    CHECK(r && strcmp(r->version_info, "v1") == 0 && !r->error_detail);
    if (r) envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* the sidecar refuses the next one: NACK, the previous secrets stay */
    apply_reject_type = XDS_SDS;
    struct blob c = pack_yaml(&envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
                              "name: default\ntls_certificate: { certificate_chain: { "
                              "inline_string: z } }\n");
    CHECK(respond(a, XDS_SDS, "v2", "n2", &c, 1) == 0);
    r = rq(sent.n - 1);
    CHECK(r && r->error_detail && strcmp(r->version_info, "v1") == 0);
    if (r) envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    /* a name dropped from the subscription: re-sent, and its secret pruned */
    xds_ads_set_sds_names(a, names, 1);
    r = rq(sent.n - 1);
    CHECK(r && r->n_resource_names == 1 && strcmp(r->resource_names[0], "ROOTCA") == 0);
    if (r) envoy__service__discovery__v3__discovery_request__free_unpacked(r, NULL);
    CHECK(xds_state_find(xds_ads_current(a), XDS_SDS, "default") == NULL);
    CHECK(xds_state_find(xds_ads_current(a), XDS_SDS, "ROOTCA") != NULL);
    xds_ads_free(a);
    reset_fakes();
}

static void test_backoff(void)
{
    CHECK(xds_ads_backoff_ms(0, 12345) <= 500);
    CHECK(xds_ads_backoff_ms(3, ~0ull) <= 4000);
    CHECK(xds_ads_backoff_ms(40, ~0ull) <= 30000);
    CHECK_EQ_INT(xds_ads_backoff_ms(40, 30000), 30000);
    CHECK_EQ_INT(xds_ads_backoff_ms(1, 0), 0);
}

RUN_TESTS(TEST_CASE(test_sotw_startup_order), TEST_CASE(test_sotw_node_every_request),
          TEST_CASE(test_sotw_nack_keeps_previous), TEST_CASE(test_sotw_bad_resources_nacked),
          TEST_CASE(test_sotw_reconnect_versions_and_sharing),
          TEST_CASE(test_sotw_cluster_removed_unsubscribes_eds),
          TEST_CASE(test_initial_fetch_timeout), TEST_CASE(test_delta_flow),
          TEST_CASE(test_cache_round_trip), TEST_CASE(test_node_identity),
          TEST_CASE(test_config_from_bootstrap), TEST_CASE(test_backoff),
          TEST_CASE(test_sds_only_client))
