/* The pilot-agent bootstrap and istiod-shaped CDS/EDS/LDS/RDS resources (tests/data/istio/):
 * accepted in serve mode, with the skipped filters recorded; and each resource decided NACK
 * refused with its reason. */
#include <arpa/inet.h>

#include <unistd.h>

#include "sidecar/chain_match.h"
#include "test.h"
#include "test_tls_util.h"
#include "xds/bootstrap.h"
#include "xds_input.h"

static const char *data(const char *name)
{
    static char buf[1024];
    const char *file = __FILE__, *cut = strstr(file, "tests/unit/sidecar/");
    snprintf(buf, sizeof buf, "%.*stests/data/istio/%s", (int)(cut ? cut - file : 0), file, name);
    return buf;
}

static xds_bootstrap *bootstrap(void)
{
    char err[512];
    xds_bootstrap *bs = xds_bootstrap_load_file(data("bootstrap.json"), 0, err, sizeof err);
    if (!bs) fprintf(stderr, "  bootstrap: %s\n", err);
    return bs;
}

static int load_all(struct tin *t)
{
    tin_init(t);
    return tin_file(t, data("cds.json")) || tin_file(t, data("eds.json")) ||
           tin_file(t, data("lds.json")) || tin_file(t, data("rds.json"));
}

/* pilot-agent's secrets on sds-grpc: `default` (workload certificate and key) and `ROOTCA`, as
 * files in a temporary directory. */
static void agent_secrets(struct tin *g, char *dir, size_t cap)
{
    (void)test_rsa_key;
    snprintf(dir, cap, "/tmp/rs-istio-sds-XXXXXX");
    if (!mkdtemp(dir)) abort();
    struct test_cert ca = test_cert_make("root", NULL, NULL, -1, 30);
    struct test_cert w = test_cert_make(
        "w", &ca, "URI:spiffe://cluster.local/ns/default/sa/bookinfo-reviews", -1, 1);
    test_cert_write(&ca, dir, "root");
    test_cert_write(&w, dir, "w");
    test_cert_free(&ca);
    test_cert_free(&w);
    tin_init(g);
    char y[1024];
    snprintf(y, sizeof y,
             "name: default\ntls_certificate: { certificate_chain: { filename: %s/w.pem }, "
             "private_key: { filename: %s/w.key } }\n",
             dir, dir);
    CHECK(tin_yaml(g, RS_XDS_SDS, y) == 0);
    snprintf(y, sizeof y,
             "name: ROOTCA\nvalidation_context: { trusted_ca: { filename: %s/root.pem } }\n", dir);
    CHECK(tin_yaml(g, RS_XDS_SDS, y) == 0);
}

static void agent_secrets_free(struct tin *g, const char *dir)
{
    tin_free(g);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static bool skipped(const struct rs_snapshot *s, const char *name, const char *where_part)
{
    for (uint32_t i = 0; i < s->skipped.n; i++)
        if (strcmp(s->skipped.v[i].name, name) == 0 &&
            (!where_part || strstr(s->skipped.v[i].where, where_part)))
            return true;
    return false;
}

static const struct rs_listener *listener(const struct rs_snapshot *s, const char *name)
{
    for (uint32_t i = 0; i < s->nlisteners; i++)
        if (strcmp(s->listeners[i].name, name) == 0) return &s->listeners[i];
    return NULL;
}

static void test_bootstrap_alone_serves(void)
{
    xds_bootstrap *bs = bootstrap();
    CHECK(bs != NULL);
    if (!bs) return;
    char err[512];
    struct rs_snapshot *s = rs_config_compile_xds(bs, NULL, NULL, true, err, sizeof err);
    if (!s) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(s->nclusters, 4);
        CHECK_EQ_INT(s->nlisteners, 2); /* 15090 prometheus, 15021 readiness */
        int xds = rs_config_cluster_index(s, "xds-grpc");
        CHECK(xds >= 0 && s->clusters[xds]->control_plane);
        struct rs_hostset *h = xds >= 0 ? rs_cluster_hosts(s->clusters[xds]) : NULL;
        CHECK(h && h->n == 1 && h->eps[0].addr.ss_family == AF_UNIX);
        if (h) CHECK_STR(h->eps[0].name, "./etc/istio/proxy/XDS");
        rs_hostset_unref(h);
        /* the compressor on the Prometheus listener is skipped, and said so */
        CHECK(skipped(s, "envoy.filters.http.compressor", "static_resources.listeners[0]"));
    }
    rs_snapshot_unref(s);
    /* and the static path (--mode validate) accepts it too */
    struct rs_snapshot *v = rs_config_compile(bs, false, err, sizeof err);
    if (!v) fprintf(stderr, "  %s\n", err);
    CHECK(v != NULL);
    rs_snapshot_unref(v); /* frees bs */
}

static void test_istiod_resources_serve(void)
{
    xds_bootstrap *bs = bootstrap();
    struct tin t, g;
    char dir[64];
    CHECK(load_all(&t) == 0);
    char err[1024];
    /* before pilot-agent sent the secrets: the clusters and the listener with mTLS warm */
    struct rs_snapshot *s =
        bs ? rs_config_compile_xds(bs, &t.in, NULL, true, err, sizeof err) : NULL;
    CHECK(s && rs_config_cluster_index(s, "outbound|9080||reviews.default.svc.cluster.local") < 0);
    CHECK(s && listener(s, "virtualInbound") == NULL);
    rs_snapshot_unref(s);
    agent_secrets(&g, dir, sizeof dir);
    t.in.grpc_ctx = &g;
    s = bs ? rs_config_compile_xds(bs, &t.in, NULL, true, err, sizeof err) : NULL;
    if (!s) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    if (s) {
        /* the EDS cluster whose assignment is pending is warming: left out */
        CHECK(rs_config_cluster_index(s, "outbound|80||pending.default.svc.cluster.local") < 0);
        CHECK_EQ_INT(s->nclusters, 4 + 7);
        /* the listener whose RDS "80" has not arrived is warming too */
        CHECK(listener(s, "0.0.0.0_80") == NULL);
        const struct rs_listener *vo = listener(s, "virtualOutbound");
        const struct rs_listener *vi = listener(s, "virtualInbound");
        const struct rs_listener *o9080 = listener(s, "0.0.0.0_9080");
        CHECK(vo && vo->use_original_dst && vo->bind_to_port);
        CHECK(vi && vi->original_dst && vi->matcher);
        CHECK(o9080 && !o9080->bind_to_port && o9080->chains[0].hcm &&
              o9080->chains[0].hcm->rds_name);
        /* istio.alpn: HTTP/1.1 upstream connections offer its HTTP11 names */
        const struct rs_hcm_cfg *hc = o9080 ? o9080->chains[0].hcm : NULL;
        CHECK(hc && hc->n_upstream_alpn == 3 &&
              strcmp(hc->upstream_alpn[0], "istio-http/1.1") == 0 &&
              strcmp(hc->upstream_alpn[2], "http/1.1") == 0);
        /* skipped filters, recorded where they are */
        CHECK(skipped(s, "istio.stats", "Listener \"virtualInbound\": filter_chains[0]"));
        CHECK(skipped(s, "istio.metadata_exchange", "Cluster \"PassthroughCluster\": filters[0]"));
        CHECK(skipped(s, "io.istio.http.peer_metadata", NULL));
        CHECK(skipped(s, "envoy.filters.http.cors", NULL));
        CHECK(skipped(s, "envoy.filters.http.fault", NULL));
        CHECK(skipped(s, "envoy.filters.http.grpc_stats", NULL));
        /* RBAC is enforced (here: shadow rules only, counted) */
        CHECK(!skipped(s, "envoy.filters.http.rbac", NULL));
        CHECK(!skipped(s, "envoy.filters.network.rbac", NULL));
        CHECK(vi && vi->chains[1].nrbac == 1 && vi->chains[3].hcm && vi->chains[3].hcm->nrbac == 1);
        CHECK(skipped(s, "istio_authn", NULL));
        CHECK(skipped(s, "envoy.filters.network.set_filter_state", NULL));
        /* an inactive per-route fault config is recorded against the route configuration */
        CHECK(skipped(s, "envoy.filters.http.fault", "RouteConfiguration \"9080\""));
        /* reviews: locality weights x endpoint weights, unhealthy/draining out, priority 1
         * unused while priority 0 has a healthy host */
        int r = rs_config_cluster_index(s, "outbound|9080||reviews.default.svc.cluster.local");
        struct rs_hostset *h = r >= 0 ? rs_cluster_hosts(s->clusters[r]) : NULL;
        CHECK(h && h->n == 2);
        if (h && h->n == 2) {
            CHECK_STR(h->eps[0].name, "10.244.1.11:9080");
            CHECK_EQ_INT(h->eps[0].weight, 3);
            CHECK_EQ_INT(h->eps[0].ts_match, 1); /* no metadata: tlsMode-disabled (empty match) */
            CHECK_STR(h->eps[1].name, "10.244.2.21:9080");
            CHECK_EQ_INT(h->eps[1].weight, 2);
        }
        rs_hostset_unref(h);
        CHECK(r >= 0 && s->clusters[r]->lb_policy == RS_LB_LEAST_REQUEST);
        /* mysql: priority 0 has no healthy host, so priority 1 serves */
        int m = rs_config_cluster_index(s, "outbound|3306||mysql.default.svc.cluster.local");
        h = m >= 0 ? rs_cluster_hosts(s->clusters[m]) : NULL;
        CHECK(h && h->n == 1 && strcmp(h->eps[0].name, "10.244.3.41:3306") == 0);
        rs_hostset_unref(h);
        CHECK(m >= 0 && s->clusters[m]->lb_policy == RS_LB_RANDOM);
        int v2 = rs_config_cluster_index(s, "outbound|9080|v2|reviews.default.svc.cluster.local");
        CHECK(v2 >= 0 && s->clusters[v2]->outlier.configured &&
              s->clusters[v2]->outlier.consecutive_5xx == 3 &&
              s->clusters[v2]->max_requests_per_cx == 100);
        int ib = rs_config_cluster_index(s, "InboundPassthroughCluster");
        CHECK(ib >= 0 && s->clusters[ib]->type == RS_CLUSTER_ORIGINAL_DST &&
              s->clusters[ib]->bind_addrlen > 0);
        /* virtualInbound's matcher: port 9080 plaintext → its HTTP chain; another port → the
         * TCP catch-all when nothing was inspected; 15006 → blackhole */
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(9080)};
        struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
        inet_pton(AF_INET, "10.244.1.7", &local.sin_addr);
        inet_pton(AF_INET, "10.244.9.9", &remote.sin_addr);
        const struct rs_filter_chain *fc =
            vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "0.0.0.0_9080") == 0 && fc->hcm);
        local.sin_port = htons(7070);
        fc = vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualInbound-catchall-tcp") == 0 && fc->tcp);
        /* what the inspectors find: plaintext HTTP → the HTTP catch-all; mTLS (on any port,
         * 9080 too) → the TLS chain, whose certificates come from SDS */
        const char *h11[] = {"http/1.1"}, *istio[] = {"istio-peer-exchange", "istio"};
        struct rs_conn_meta http = {.app_protocols = h11, .napp_protocols = 1};
        struct rs_conn_meta mtls = {.tls = true, .app_protocols = istio, .napp_protocols = 2};
        fc = vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, &http) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualInbound-catchall-http") == 0 && fc->hcm);
        fc = vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, &mtls) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualInbound-catchall-tls") == 0 && fc->tls_ctx);
        local.sin_port = htons(9080);
        fc = vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, &mtls) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualInbound-catchall-tls") == 0);
        local.sin_port = htons(7070);
        local.sin_port = htons(15006);
        fc = vi ? rs_listener_pick_chain(vi, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualInbound-blackhole") == 0);
        /* virtualOutbound: to the pod's own IP → blackhole; elsewhere → passthrough */
        local.sin_port = htons(80);
        fc = vo ? rs_listener_pick_chain(vo, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualOutbound-blackhole") == 0);
        inet_pton(AF_INET, "10.96.0.10", &local.sin_addr);
        fc = vo ? rs_listener_pick_chain(vo, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "virtualOutbound-catchall-tcp") == 0);
        /* the outbound HTTP listener's chain needs http/1.1 detection, else its default chain */
        fc = o9080 ? rs_listener_pick_chain(o9080, (void *)&local, (void *)&remote, NULL) : NULL;
        CHECK(fc && strcmp(fc->name, "PassthroughFilterChain") == 0);
        fc = o9080 ? rs_listener_pick_chain(o9080, (void *)&local, (void *)&remote, &http) : NULL;
        CHECK(fc && fc->hcm && strcmp(fc->name, "PassthroughFilterChain") != 0);
    }
    rs_snapshot_unref(s);
    tin_free(&t);
    agent_secrets_free(&g, dir);
    xds_bootstrap_free(bs);
}

/* Each refusal: the file's resources added to (or replacing) the accepted set. */
static void test_istiod_refusals(void)
{
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"lds-ext-authz.json",
         "Listener \"0.0.0.0_9999\": filter_chains[0].filters[0].typed_config.http_filters[0]: "
         "envoy.filters.http.ext_authz: an authorization filter Ringside cannot enforce"},
        {"lds-wasm.json", "http_filters[0]: envoy.filters.http.wasm: Wasm plugins are not "
                          "supported"},
        {"lds-rbac-http.json", "http_filters[0].typed_config: rules.policies[\"ns[default]-policy["
                               "reviews-viewer]-rule[0]\"].principals[0].metadata: not supported"},
        {"lds-rbac-network.json", "Listener \"0.0.0.0_9999\": filter_chains[0].filters[0]."
                                  "typed_config: rules.policies[\"ns[default]-policy[deny-mysql]-"
                                  "rule[0]\"].condition: not supported: CEL expressions"},
        {"lds-set-filter-state.json", "object_key \"envoy.tcp_proxy.cluster\""},
        {"lds-istio-authn.json", "istio_authn: carries an authentication policy"},
        {"rds-fault.json", "RouteConfiguration \"9080\": virtual_hosts[0].routes[0]."
                           "typed_per_filter_config: [\"envoy.filters.http.fault\"]: delay: "
                           "fault injection is not implemented yet"},
        {"rds-cors.json", "typed_per_filter_config: [\"envoy.filters.http.cors\"]: CORS policies "
                          "are not implemented yet"},
        {"cds-http2.json", "Cluster \"outbound|50051||grpc.default.svc.cluster.local\": "
                           "typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3."
                           "HttpProtocolOptions\"]: explicit_http_config: HTTP/2 upstreams are "
                           "not implemented yet"},
    };
    xds_bootstrap *bs = bootstrap();
    if (!bs) {
        CHECK(0);
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tin t;
        char path[64], err[1024];
        snprintf(path, sizeof path, "nack/%s", cases[i].file);
        CHECK(load_all(&t) == 0);
        CHECK(tin_file(&t, data(path)) == 0);
        struct rs_snapshot *s = rs_config_compile_xds(bs, &t.in, NULL, true, err, sizeof err);
        CHECK(s == NULL);
        if (s) {
            fprintf(stderr, "  %s was accepted\n", cases[i].file);
            rs_snapshot_unref(s);
        } else if (!strstr(err, cases[i].want)) {
            fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", cases[i].file, err, cases[i].want);
            CHECK(0);
        }
        tin_free(&t);
    }
    xds_bootstrap_free(bs);
}

int main(void)
{
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_bootstrap_alone_serves),
        TEST_CASE(test_istiod_resources_serve),
        TEST_CASE(test_istiod_refusals),
    };
    return rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
}
