/* The ADS protocol core without a network: a fake transport records responses, the tests play
 * the client. Node checks, SotW subscribe/ACK/NACK/stale nonce, pushes only on change, delta
 * diffs, removals, resume with initial_resource_versions, unsubscribe. */
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "test.h"
#include "xds/cp/ads_server.h"
#include "xds/cp/gen.h"
#include "xds/cp/log.h"
#include "xds/grpc.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest SotwRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse SotwResponse;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest DeltaRequest;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DeltaResponse;
typedef Envoy__Config__Core__V3__Node Node;

#define NODE_ID "sidecar~10.0.0.1~client-1.default~default.svc.cluster.local"

/* The fake transport: the last response, how many, and how the stream finished. */
struct fake {
    int delta;
    int n_sent;
    uint8_t *last;
    size_t last_len;
    int finished, status;
    char message[256];
};

static int fake_send(void *ctx, const uint8_t *msg, size_t len)
{
    struct fake *f = ctx;
    free(f->last);
    f->last = malloc(len ? len : 1);
    memcpy(f->last, msg, len);
    f->last_len = len;
    f->n_sent++;
    return 0;
}

static void fake_finish(void *ctx, int status, const char *message)
{
    struct fake *f = ctx;
    f->finished = 1;
    f->status = status;
    snprintf(f->message, sizeof f->message, "%s", message ? message : "");
}

static const struct cp_ads_io fake_io = {fake_send, fake_finish};

static struct cp_mesh *mesh_text(const char *yaml)
{
    char err[512];
    struct cp_mesh *m = cp_mesh_parse(yaml, strlen(yaml), "m", err, sizeof err);
    if (!m) fprintf(stderr, "  %s\n", err);
    return m;
}

static const char *mesh_two_subsets =
    "services:\n  - name: a\n    ports: [{port: 80}]\n"
    "    subsets: [{name: x, labels: {v: x}}, {name: y, labels: {v: y}}]\n"
    "workloads:\n  - {name: client, address: 10.0.0.1}\n"
    "  - {name: ax, address: 10.0.0.2, labels: {v: x}, services: [a]}\n";
static const char *mesh_one_subset = "services:\n  - name: a\n    ports: [{port: 80}]\n"
                                     "    subsets: [{name: x, labels: {v: x}}]\n"
                                     "workloads:\n  - {name: client, address: 10.0.0.1}\n"
                                     "  - {name: ax, address: 10.0.0.2, labels: {v: x}, "
                                     "services: [a]}\n";

static void send_sotw(struct cp_ads_stream *s, const char *node_id, enum cp_type t, char **names,
                      size_t n, const char *nonce, const char *nack)
{
    SotwRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Node node;
    envoy__config__core__v3__node__init(&node); /* the INIT macro names deprecated fields */
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    if (node_id) {
        node.id = (char *)node_id;
        rq.node = &node;
    }
    rq.type_url = (char *)cp_type_url(t);
    rq.resource_names = names;
    rq.n_resource_names = n;
    if (nonce) rq.response_nonce = (char *)nonce;
    if (nack) {
        st.code = 3;
        st.message = (char *)nack;
        rq.error_detail = &st;
    }
    uint8_t buf[4096];
    size_t len = protobuf_c_message_pack(&rq.base, buf);
    cp_ads_stream_request(s, buf, len);
}

static SotwResponse *last_sotw(const struct fake *f)
{
    return envoy__service__discovery__v3__discovery_response__unpack(NULL, f->last_len, f->last);
}

static void test_first_request_needs_a_node(void)
{
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_two_subsets));
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, 0, "test", &fake_io, &f);
    send_sotw(s, NULL, CP_CDS, NULL, 0, NULL, NULL);
    CHECK(f.finished);
    CHECK_EQ_INT(f.status, XDS_GRPC_INVALID_ARGUMENT);
    CHECK(strstr(f.message, "must carry a node") != NULL);
    CHECK_EQ_INT(cp_ads_stats(ads)->streams_active, 0); /* closed by the finish */
    struct fake g = {0};
    s = cp_ads_stream_open(ads, 0, "test", &fake_io, &g);
    send_sotw(s, "proxy-7", CP_CDS, NULL, 0, NULL, NULL);
    CHECK(g.finished && g.status == XDS_GRPC_INVALID_ARGUMENT);
    CHECK(strstr(g.message, "proxy-7") != NULL);
    CHECK_EQ_INT(cp_ads_stats(ads)->bad_requests, 2);
    /* Garbage is a clean error too. */
    struct fake h = {0};
    s = cp_ads_stream_open(ads, 0, "test", &fake_io, &h);
    cp_ads_stream_request(s, (const uint8_t *)"\xff\xff\xff", 3);
    CHECK(h.finished && h.status == XDS_GRPC_INVALID_ARGUMENT);
    cp_ads_free(ads);
    free(f.last);
    free(g.last);
    free(h.last);
}

static void test_sotw_ack_nack_stale_and_push(void)
{
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_two_subsets));
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, 0, "test", &fake_io, &f);
    send_sotw(s, NODE_ID, CP_CDS, NULL, 0, NULL, NULL);
    CHECK(!f.finished);
    CHECK_EQ_INT(f.n_sent, 1);
    SotwResponse *r = last_sotw(&f);
    CHECK(r && r->n_resources == 5); /* a, a|x, a|y, Passthrough, BlackHole */
    CHECK(r && strcmp(r->type_url, cp_type_url(CP_CDS)) == 0);
    char nonce[32], version[32];
    snprintf(nonce, sizeof nonce, "%s", r ? r->nonce : "");
    snprintf(version, sizeof version, "%s", r ? r->version_info : "");
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    /* ACK: no new response. */
    send_sotw(s, NULL, CP_CDS, NULL, 0, nonce, NULL);
    CHECK_EQ_INT(f.n_sent, 1);
    CHECK_EQ_INT(cp_ads_stats(ads)->acks, 1);
    /* EDS by name: only what is asked. */
    char *names[] = {"outbound|80|x|a.default.svc.cluster.local", "outbound|80||nope"};
    send_sotw(s, NULL, CP_EDS, names, 2, NULL, NULL);
    CHECK_EQ_INT(f.n_sent, 2);
    r = last_sotw(&f);
    CHECK(r && r->n_resources == 1);
    char eds_nonce[32];
    snprintf(eds_nonce, sizeof eds_nonce, "%s", r ? r->nonce : "");
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    /* NACK: counted, nothing resent. A stale nonce: ignored. */
    send_sotw(s, NULL, CP_EDS, names, 2, eds_nonce, "bad endpoint");
    CHECK_EQ_INT(cp_ads_stats(ads)->nacks, 1);
    send_sotw(s, NULL, CP_CDS, NULL, 0, "0", NULL);
    CHECK_EQ_INT(cp_ads_stats(ads)->stale_nonces, 1);
    CHECK_EQ_INT(f.n_sent, 2);
    /* The same mesh again: nothing changed, nothing pushed. */
    cp_ads_set_mesh(ads, mesh_text(mesh_two_subsets));
    CHECK_EQ_INT(f.n_sent, 2);
    /* Subset y goes: CDS is pushed (the whole set, new version); EDS x did not change. */
    cp_ads_set_mesh(ads, mesh_text(mesh_one_subset));
    CHECK_EQ_INT(f.n_sent, 3);
    r = last_sotw(&f);
    CHECK(r && r->n_resources == 4);
    CHECK(r && strcmp(r->version_info, version) != 0);
    CHECK(r && strcmp(r->type_url, cp_type_url(CP_CDS)) == 0);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    cp_ads_stream_close(s);
    cp_ads_free(ads);
    free(f.last);
}

static void send_delta(struct cp_ads_stream *s, int with_node, enum cp_type t, char **sub,
                       size_t n_sub, char **unsub, size_t n_unsub, const char *nonce,
                       const char *known_name, const char *known_version)
{
    DeltaRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Node node;
    envoy__config__core__v3__node__init(&node); /* the INIT macro names deprecated fields */
    node.id = NODE_ID;
    if (with_node) rq.node = &node;
    rq.type_url = (char *)cp_type_url(t);
    rq.resource_names_subscribe = sub;
    rq.n_resource_names_subscribe = n_sub;
    rq.resource_names_unsubscribe = unsub;
    rq.n_resource_names_unsubscribe = n_unsub;
    if (nonce) rq.response_nonce = (char *)nonce;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry e =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INITIAL_RESOURCE_VERSIONS_ENTRY__INIT;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *ep = &e;
    if (known_name) {
        e.key = (char *)known_name;
        e.value = (char *)known_version;
        rq.initial_resource_versions = &ep;
        rq.n_initial_resource_versions = 1;
    }
    uint8_t buf[4096];
    size_t len = protobuf_c_message_pack(&rq.base, buf);
    cp_ads_stream_request(s, buf, len);
}

static DeltaResponse *last_delta(const struct fake *f)
{
    return envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, f->last_len,
                                                                           f->last);
}

static void test_delta(void)
{
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_two_subsets));
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, 1, "test", &fake_io, &f);
    /* Resume: the client says it has the x cluster at its current version, and a gone one. */
    struct cp_node node;
    cp_node_parse(NODE_ID, &node);
    char err[256];
    struct cp_mesh *m = mesh_text(mesh_two_subsets);
    struct cp_resources *res = cp_generate(m, &node, err, sizeof err);
    const struct cp_resource *x =
        cp_resources_find(res, CP_CDS, "outbound|80|x|a.default.svc.cluster.local");
    send_delta(s, 1, CP_CDS, NULL, 0, NULL, 0, NULL, x->name, x->version);
    DeltaResponse *r = last_delta(&f);
    CHECK(r && r->n_resources == 4); /* everything but x */
    for (size_t i = 0; r && i < r->n_resources; i++) {
        CHECK(strcmp(r->resources[i]->name, x->name) != 0);
        CHECK_EQ_INT(strlen(r->resources[i]->version), 16);
    }
    CHECK(r && r->n_removed_resources == 0);
    char nonce[32];
    snprintf(nonce, sizeof nonce, "%s", r ? r->nonce : "");
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    send_delta(s, 0, CP_CDS, NULL, 0, NULL, 0, nonce, NULL, NULL);
    CHECK_EQ_INT(cp_ads_stats(ads)->acks, 1);
    CHECK_EQ_INT(f.n_sent, 1);
    /* Subscribe to two EDS names, one unknown: the known one comes. */
    char *sub[] = {"outbound|80|y|a.default.svc.cluster.local",
                   "outbound|80||a.default.svc.cluster.local"};
    send_delta(s, 0, CP_EDS, sub, 2, NULL, 0, NULL, NULL, NULL);
    CHECK_EQ_INT(f.n_sent, 2);
    r = last_delta(&f);
    CHECK(r && r->n_resources == 2);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    /* Subset y goes: CDS gets a removal only; EDS y is removed too. */
    cp_ads_set_mesh(ads, mesh_text(mesh_one_subset));
    CHECK_EQ_INT(f.n_sent, 4);
    r = last_delta(&f); /* the EDS push, after the CDS one */
    CHECK(r && strcmp(r->type_url, cp_type_url(CP_EDS)) == 0);
    CHECK(r && r->n_resources == 0 && r->n_removed_resources == 1);
    if (r && r->n_removed_resources == 1)
        CHECK_STR(r->removed_resources[0], "outbound|80|y|a.default.svc.cluster.local");
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    /* Unsubscribe: no response needed, and later changes to it are not sent. */
    char *unsub[] = {"outbound|80||a.default.svc.cluster.local"};
    send_delta(s, 0, CP_EDS, NULL, 0, unsub, 1, NULL, NULL, NULL);
    int before = f.n_sent;
    cp_ads_set_mesh(ads, mesh_text("services:\n  - name: a\n    ports: [{port: 80}]\n"
                                   "    subsets: [{name: x, labels: {v: x}}]\n"
                                   "workloads:\n  - {name: client, address: 10.0.0.1}\n"));
    /* The clusters themselves did not change (endpoints are EDS), and the endpoints that did
     * are no longer subscribed: nothing is sent. */
    CHECK_EQ_INT(f.n_sent, before);
    cp_resources_free(res);
    cp_mesh_free(m);
    cp_ads_stream_close(s);
    cp_ads_free(ads);
    free(f.last);
}

int main(void)
{
    cp_log_set_level(CP_LOG_OFF);
    static const struct rs_test_case cases[] = {TEST_CASE(test_first_request_needs_a_node),
                                                TEST_CASE(test_sotw_ack_nack_stale_and_push),
                                                TEST_CASE(test_delta)};
    return rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
}
