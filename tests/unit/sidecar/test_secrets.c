/* SDS secrets in TLS contexts: substitution from static_resources.secrets, ADS and a separate SDS
 * server (combined validation merged as Envoy's MergeFrom), warming of clusters and listeners
 * whose secrets have not arrived, every refusal naming its field, in-place rotation of a reused
 * cluster's contexts (secret changed, certificate files changed) with the old context retired,
 * and the names walked for separate SDS servers. */
#include <unistd.h>

#include "sidecar/admin_dump.h"
#include "sidecar/config_impl.h"
#include "sidecar/secrets.h"
#include "test.h"
#include "test_tls_util.h"
#include "xds/bootstrap.h"
#include "xds/pbload.h"
#include "xds_input.h"

/* Istio (and this test) still use the deprecated match_subject_alt_names */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;

static char dir[] = "/tmp/rs-secrets-test-XXXXXX";

/* root.pem, a.pem/a.key and b.pem/b.key (two workload certificates of the same root). */
static void make_certs(void)
{
    (void)test_rsa_key;
    if (!mkdtemp(dir)) abort();
    struct test_cert ca = test_cert_make("root", NULL, NULL, -1, 30);
    struct test_cert a = test_cert_make("a", &ca, "URI:spiffe://td/ns/default/sa/a", -1, 1);
    struct test_cert b = test_cert_make("b", &ca, "URI:spiffe://td/ns/default/sa/b", -1, 1);
    test_cert_write(&ca, dir, "root");
    test_cert_write(&a, dir, "a");
    test_cert_write(&b, dir, "b");
    test_cert_free(&ca);
    test_cert_free(&a);
    test_cert_free(&b);
}

/* A Secret: `default` with certificate NAME (a or b), or `ROOTCA`. */
static const char *cert_secret(const char *secret, const char *name)
{
    static char y[1024];
    snprintf(y, sizeof y,
             "name: %s\ntls_certificate: { certificate_chain: { filename: %s/%s.pem }, "
             "private_key: { filename: %s/%s.key } }\n",
             secret, dir, name, dir, name);
    return y;
}

static const char *root_secret(void)
{
    static char y[512];
    snprintf(y, sizeof y,
             "name: ROOTCA\nvalidation_context: { trusted_ca: { filename: %s/root.pem } }\n", dir);
    return y;
}

#define GRPC_SDS(n)                                                                                \
    "{ name: " n ", sds_config: { api_config_source: { api_type: GRPC, grpc_services: [ { "        \
    "envoy_grpc: { cluster_name: sds-grpc } } ] } } }"
#define ADS_SDS(n) "{ name: " n ", sds_config: { ads: {} } }"

/* A STATIC cluster originating TLS with the given common_tls_context body. */
static const char *tls_cluster(const char *name, const char *common)
{
    static char y[2048];
    snprintf(y, sizeof y,
             "name: %s\ntype: STATIC\nconnect_timeout: 1s\n"
             "load_assignment: { cluster_name: %s, endpoints: [ { lb_endpoints: [ { endpoint: { "
             "address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ] }\n"
             "transport_socket: { name: tls, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, "
             "common_tls_context: { %s } } }\n",
             name, name, common);
    return y;
}

static const char *tls_listener(const char *common)
{
    static char y[2048];
    snprintf(y, sizeof y,
             "name: in\naddress: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
             "filter_chains: [ { transport_socket: { name: tls, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, "
             "common_tls_context: { %s } } }, filters: [ { name: t, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, "
             "stat_prefix: t, cluster: x } } ] } ]\n",
             common);
    return y;
}

static xds_bootstrap *bootstrap(const char *yaml)
{
    char err[512];
    xds_bootstrap *bs = xds_bootstrap_load_yaml_string(yaml, 0, err, sizeof err);
    if (!bs) fprintf(stderr, "  bootstrap: %s\n", err);
    return bs;
}

static struct rs_snapshot *compile(xds_bootstrap *bs, struct tin *t, struct rs_snapshot *prev,
                                   char *err, size_t errlen)
{
    struct rs_snapshot *s = rs_config_compile_xds(bs, &t->in, prev, true, err, errlen);
    if (!s) fprintf(stderr, "  compile: %s\n", err);
    return s;
}

static struct rs_cluster *cluster(struct rs_snapshot *s, const char *name)
{
    int i = s ? rs_config_cluster_index(s, name) : -1;
    return i >= 0 ? s->clusters[i] : NULL;
}

/* ---- substitution ---------------------------------------------------------------------------- */

static void test_static_secrets_by_name(void)
{
    char y[4096];
    snprintf(y, sizeof y,
             "static_resources:\n"
             "  secrets:\n"
             "  - name: default\n"
             "    tls_certificate: { certificate_chain: { filename: %s/a.pem }, private_key: { "
             "filename: %s/a.key } }\n"
             "  - name: ROOTCA\n"
             "    validation_context: { trusted_ca: { filename: %s/root.pem } }\n"
             "  - name: unused\n"
             "    tls_certificate: { certificate_chain: { inline_string: chain }, private_key: { "
             "inline_string: KEYMATERIAL } }\n"
             "  clusters:\n"
             "  - name: up\n"
             "    type: STATIC\n"
             "    load_assignment: { cluster_name: up, endpoints: [ { lb_endpoints: [ { endpoint: "
             "{ address: { socket_address: { address: 127.0.0.1, port_value: 1 } } } } ] } ] }\n"
             "    transport_socket: { name: tls, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, "
             "common_tls_context: { tls_certificate_sds_secret_configs: [ { name: default } ], "
             "validation_context_sds_secret_config: { name: ROOTCA } } } }\n",
             dir, dir, dir);
    char err[512];
    xds_bootstrap *bs = bootstrap(y);
    struct rs_snapshot *s = bs ? rs_config_compile(bs, true, err, sizeof err) : NULL;
    if (!s) fprintf(stderr, "  %s\n", err);
    CHECK(s && s->clusters[0]->tls_ctx != NULL); /* the static path resolves them too */
    /* /config_dump lists them with the private keys redacted */
    json_t *dump = s ? rs_admin_config_dump_json(s) : NULL;
    char *text = dump ? json_dumps(dump, JSON_COMPACT) : NULL;
    CHECK(text && strstr(text, "\"static_secrets\"") && strstr(text, "\"unused\""));
    CHECK(text && strstr(text, "\"privateKey\":{\"inlineString\":\"[redacted]\"}"));
    CHECK(text && !strstr(text, "KEYMATERIAL")); /* nor in the bootstrap */
    CHECK(text && strstr(text, "a.key"));        /* a file name is no secret */
    free(text);
    json_decref(dump);
    rs_snapshot_unref(s); /* frees bs */
}

#define ADS_BOOTSTRAP                                                                              \
    "node: { id: n, cluster: c }\n"                                                                \
    "dynamic_resources: { ads_config: { api_type: GRPC, grpc_services: [ { envoy_grpc: { "         \
    "cluster_name: xds-grpc } } ] } }\n"

static void test_ads_and_grpc_secrets(void)
{
    xds_bootstrap *bs = bootstrap(ADS_BOOTSTRAP);
    struct tin t, g;
    tin_init(&t);
    tin_init(&g);
    t.in.grpc_ctx = &g;
    CHECK(tin_yaml(
              &t, RS_XDS_CDS,
              tls_cluster(
                  "ads",
                  "tls_certificate_sds_secret_configs: [ " ADS_SDS(
                      "default") " ], validation_context_sds_secret_config: " ADS_SDS("ROOTCA"))) ==
          0);
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   tls_cluster("grpc",
                               "tls_certificate_sds_secret_configs: [ " GRPC_SDS(
                                   "default") " ], combined_validation_context: { "
                                              "default_validation_context: { "
                                              "match_subject_alt_names: [ { exact: "
                                              "\"spiffe://td/ns/default/sa/b\" } ] }, "
                                              "validation_context_sds_secret_config: " GRPC_SDS(
                                                  "ROOTCA") " }")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   tls_listener(
                       "tls_certificate_sds_secret_configs: [ " GRPC_SDS("default") " ]")) == 0);
    char err[1024];
    /* nothing arrived: both clusters and the listener warm (compiled, not served, no NACK) */
    struct rs_snapshot *s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && !cluster(s, "ads") && !cluster(s, "grpc") && s->nlisteners == 0);
    rs_snapshot_unref(s);
    /* ADS's arrive: that cluster serves; the separate server's have not */
    CHECK(tin_yaml(&t, RS_XDS_SDS, cert_secret("default", "a")) == 0);
    CHECK(tin_yaml(&t, RS_XDS_SDS, root_secret()) == 0);
    s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && cluster(s, "ads") && cluster(s, "ads")->tls_ctx && !cluster(s, "grpc"));
    CHECK(s && s->nlisteners == 0);
    rs_snapshot_unref(s);
    /* the separate server's arrive: everything serves */
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "b")) == 0);
    CHECK(tin_yaml(&g, RS_XDS_SDS, root_secret()) == 0);
    s = compile(bs, &t, NULL, err, sizeof err);
    CHECK(s && cluster(s, "grpc") && cluster(s, "grpc")->tls_ctx);
    CHECK(s && s->nlisteners == 1 && s->listeners[0].chains[0].tls_ctx);
    /* compiled again with nothing changed: the listener keeps its server context (its session
     * tickets stay valid); a rotated secret gives it a new one */
    struct rs_snapshot *s2 = compile(bs, &t, s, err, sizeof err);
    CHECK(s && s2 && s2->listeners[0].chains[0].tls_ctx == s->listeners[0].chains[0].tls_ctx);
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "a")) == 0);
    struct rs_snapshot *s3 = compile(bs, &t, s2, err, sizeof err);
    CHECK(s2 && s3 && s3->listeners[0].chains[0].tls_ctx &&
          s3->listeners[0].chains[0].tls_ctx != s2->listeners[0].chains[0].tls_ctx);
    rs_snapshot_unref(s3);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s);
    CHECK_EQ_INT(rs_secrets_reap(UINT64_MAX), 1); /* cluster "grpc" rotated in place too */
    tin_free(&t);
    tin_free(&g);
    xds_bootstrap_free(bs);
}

/* Istio's combined validation: the SAN matchers of the default, the root of the secret. */
static void test_combined_validation_merge(void)
{
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(&t, RS_XDS_SDS, root_secret()) == 0);
    struct rs_snapshot snap = {0};
    char err[512];
    struct cctx cx = {.snap = &snap, .xds = true, .in = &t.in, .err = err, .errlen = sizeof err};
    char y[1024];
    snprintf(y, sizeof y,
             "combined_validation_context: { default_validation_context: { "
             "match_subject_alt_names: [ { exact: \"spiffe://td/ns/default/sa/b\" } ] }, "
             "validation_context_sds_secret_config: %s }\n",
             "{ name: ROOTCA, sds_config: { api_config_source: { api_type: GRPC, grpc_services: [ "
             "{ envoy_grpc: { cluster_name: sds-grpc } } ] } } }");
    CommonTlsContext *c = (CommonTlsContext *)xds_load_yaml(
        &envoy__extensions__transport_sockets__tls__v3__common_tls_context__descriptor, y,
        strlen(y), 0, err, sizeof err);
    CHECK(c != NULL);
    if (!c) return;
    /* the separate server has not sent it: pending, c untouched */
    struct rs_tls_subst u;
    uint64_t fp = 0;
    CHECK_EQ_INT(rs_secrets_subst(&cx, c, &u, &fp), 1);
    /* sent (the test's input answers any cluster with its SDS table) */
    t.in.grpc_ctx = &t;
    CHECK_EQ_INT(rs_secrets_subst(&cx, c, &u, &fp), 0);
    CHECK(
        c->validation_context_type_case ==
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT);
    CHECK(c->validation_context->trusted_ca &&
          strstr(c->validation_context->trusted_ca->filename, "root.pem"));
    CHECK(c->validation_context->n_match_subject_alt_names == 1);
    CHECK(fp != 0);
    rs_secrets_undo(c, &u);
    CHECK(
        c->validation_context_type_case ==
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    tin_free(&t);
}

/* ---- refusals -------------------------------------------------------------------------------- */

static void expect_nack(xds_bootstrap *bs, const char *cluster_yaml, struct tin *secrets,
                        const char *want)
{
    struct tin t;
    tin_init(&t);
    t.in.grpc_ctx = secrets;
    CHECK(tin_yaml(&t, RS_XDS_CDS, cluster_yaml) == 0);
    char err[1024];
    struct rs_snapshot *s = rs_config_compile_xds(bs, &t.in, NULL, true, err, sizeof err);
    CHECK(s == NULL);
    if (s) fprintf(stderr, "  accepted, wanted: %s\n", want);
    if (!s && !strstr(err, want)) fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, want);
    CHECK(!s && strstr(err, want));
    rs_snapshot_unref(s);
    tin_free(&t);
}

static void test_refusals_name_the_field(void)
{
    xds_bootstrap *bs = bootstrap("node: { id: n, cluster: c }\n");
    struct tin g;
    tin_init(&g);
    CHECK(tin_yaml(&g, RS_XDS_SDS, root_secret()) == 0);
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "a")) == 0);
    /* a validation secret where a certificate is expected, and the other way round */
    expect_nack(
        bs, tls_cluster("c", "tls_certificate_sds_secret_configs: [ " GRPC_SDS("ROOTCA") " ]"), &g,
        "Cluster \"c\": transport_socket.typed_config.common_tls_context."
        "tls_certificate_sds_secret_configs[0]: secret \"ROOTCA\" is not a "
        "tls_certificate");
    expect_nack(bs, tls_cluster("c", "validation_context_sds_secret_config: " GRPC_SDS("default")),
                &g,
                "validation_context_sds_secret_config: secret \"default\" is not a "
                "validation_context");
    /* a name-only config needs a static secret */
    expect_nack(bs, tls_cluster("c", "tls_certificate_sds_secret_configs: [ { name: nope } ]"),
                NULL, "no static secret named \"nope\"");
    /* sources other than ADS and a gRPC cluster */
    expect_nack(bs,
                tls_cluster("c", "tls_certificate_sds_secret_configs: [ { name: x, sds_config: { "
                                 "path_config_source: { path: /etc/x.yaml } } } ]"),
                NULL, "sds_config: only ads and api_config_source");
    /* ADS secrets without ADS */
    expect_nack(bs,
                tls_cluster("c", "tls_certificate_sds_secret_configs: [ " ADS_SDS("default") " ]"),
                NULL, "an SDS secret over ADS needs dynamic_resources");
    /* two certificates */
    expect_nack(bs,
                tls_cluster("c", "tls_certificate_sds_secret_configs: [ " GRPC_SDS(
                                     "default") ", " GRPC_SDS("default") " ]"),
                &g, "2 secrets: only one certificate per context is supported");
    /* a secret whose certificate does not parse: the context's own error */
    struct tin bad;
    tin_init(&bad);
    CHECK(tin_yaml(&bad, RS_XDS_SDS,
                   "name: default\ntls_certificate: { certificate_chain: { inline_string: nope }, "
                   "private_key: { inline_string: nope } }\n") == 0);
    expect_nack(bs,
                tls_cluster("c", "tls_certificate_sds_secret_configs: [ " GRPC_SDS("default") " ]"),
                &bad, "tls_certificates[0].certificate_chain");
    tin_free(&bad);
    tin_free(&g);
    xds_bootstrap_free(bs);
    /* the static compile (no control thread) refuses a separate server's secret */
    char err[512];
    char y[2048];
    snprintf(y, sizeof y, "static_resources:\n  clusters:\n  - %s",
             "name: c\n    type: STATIC\n    transport_socket: { name: tls, typed_config: { "
             "\"@type\": type.googleapis.com/"
             "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, common_tls_context: "
             "{ tls_certificate_sds_secret_configs: [ " GRPC_SDS("default") " ] } } }\n");
    xds_bootstrap *sb = bootstrap(y);
    struct rs_snapshot *s = sb ? rs_config_compile(sb, true, err, sizeof err) : NULL;
    CHECK(s == NULL && strstr(err, "an SDS secret needs the control thread"));
    rs_snapshot_unref(s);
}

/* ---- rotation -------------------------------------------------------------------------------- */

static void test_rotation_in_place(void)
{
    xds_bootstrap *bs = bootstrap("node: { id: n, cluster: c }\n");
    struct tin t, g;
    tin_init(&t);
    tin_init(&g);
    t.in.grpc_ctx = &g;
    CHECK(tin_yaml(&t, RS_XDS_CDS,
                   tls_cluster("up", "tls_certificate_sds_secret_configs: [ " GRPC_SDS(
                                         "default") " ]")) == 0);
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "a")) == 0);
    char err[1024];
    struct rs_snapshot *s1 = compile(bs, &t, NULL, err, sizeof err);
    struct rs_cluster *c = cluster(s1, "up");
    CHECK(c && c->tls_ctx);
    struct rs_tls_ctx *ctx1 = c ? c->tls_ctx : NULL;
    /* nothing changed: same object, same context */
    struct rs_snapshot *s2 = compile(bs, &t, s1, err, sizeof err);
    CHECK(cluster(s2, "up") == c && c && c->tls_ctx == ctx1);
    /* the secret rotates: the same cluster object (pools, hosts) with a new context */
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "b")) == 0);
    struct rs_snapshot *s3 = compile(bs, &t, s2, err, sizeof err);
    CHECK(cluster(s3, "up") == c && c && c->tls_ctx && c->tls_ctx != ctx1);
    struct rs_tls_ctx *ctx2 = c ? c->tls_ctx : NULL;
    /* the old one is retired until every worker is past the publication that follows */
    rs_secrets_seal(7);
    CHECK_EQ_INT(rs_secrets_reap(6), 0);
    CHECK_EQ_INT(rs_secrets_reap(7), 1);
    /* the secret goes away: the cluster keeps what it has (Envoy keeps the last secret) */
    tin_remove(&g, RS_XDS_SDS, "default");
    struct rs_snapshot *s4 = compile(bs, &t, s3, err, sizeof err);
    CHECK(cluster(s4, "up") == c && c && c->tls_ctx == ctx2);
    /* a certificate file changed: contexts read from files are rebuilt in place */
    CHECK(tin_yaml(&g, RS_XDS_SDS, cert_secret("default", "b")) == 0);
    struct rs_snapshot *s5 = compile(bs, &t, s4, err, sizeof err);
    CHECK(c && c->tls_ctx == ctx2);
    rs_secrets_files_changed();
    struct rs_snapshot *s6 = compile(bs, &t, s5, err, sizeof err);
    CHECK(cluster(s6, "up") == c && c && c->tls_ctx && c->tls_ctx != ctx2);
    /* a rotation whose new context fails to build is refused whole: nothing swapped */
    struct rs_tls_ctx *ctx3 = c ? c->tls_ctx : NULL;
    CHECK(tin_yaml(&g, RS_XDS_SDS,
                   "name: default\ntls_certificate: { certificate_chain: { inline_string: x }, "
                   "private_key: { inline_string: y } }\n") == 0);
    struct rs_snapshot *s7 = rs_config_compile_xds(bs, &t.in, s6, true, err, sizeof err);
    CHECK(s7 == NULL && c && c->tls_ctx == ctx3);
    rs_secrets_seal(8);
    CHECK_EQ_INT(rs_secrets_reap(UINT64_MAX), 1);
    /* the watched files were noted */
    char **paths;
    bool *dirs;
    size_t n = rs_secrets_files(&paths, &dirs), found = 0;
    for (size_t i = 0; i < n; i++) {
        found += strstr(paths[i], "/b.pem") || strstr(paths[i], "/b.key");
        free(paths[i]);
    }
    free(paths);
    free(dirs);
    CHECK_EQ_INT(found, 2);
    rs_snapshot_unref(s1);
    rs_snapshot_unref(s2);
    rs_snapshot_unref(s3);
    rs_snapshot_unref(s4);
    rs_snapshot_unref(s5);
    rs_snapshot_unref(s6);
    tin_free(&t);
    tin_free(&g);
    xds_bootstrap_free(bs);
}

/* A STATIC host's metadata picks its transport_socket_matches entry, as an EDS host's does
 * (tlsMode istio must not fall through to the plaintext entry). */
static void test_static_host_transport_socket_match(void)
{
    char y[4096];
    snprintf(y, sizeof y,
             "static_resources:\n"
             "  clusters:\n"
             "  - name: up\n"
             "    type: STATIC\n"
             "    load_assignment: { cluster_name: up, endpoints: [ { lb_endpoints: [ { endpoint: "
             "{ address: { socket_address: { address: 127.0.0.1, port_value: 1 } } }, metadata: "
             "{ filter_metadata: { envoy.transport_socket_match: { tlsMode: istio } } } }, { "
             "endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 2 } } } "
             "} ] } ] }\n"
             "    transport_socket_matches:\n"
             "    - name: tlsMode-istio\n"
             "      match: { tlsMode: istio }\n"
             "      transport_socket: { name: tls, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext, "
             "common_tls_context: { tls_certificates: [ { certificate_chain: { filename: %s/a.pem "
             "}, private_key: { filename: %s/a.key } } ] } } }\n"
             "    - name: tlsMode-disabled\n"
             "      match: {}\n"
             "      transport_socket: { name: raw, typed_config: { \"@type\": "
             "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer } "
             "}\n",
             dir, dir);
    char err[512];
    xds_bootstrap *bs = bootstrap(y);
    struct rs_snapshot *s = bs ? rs_config_compile(bs, true, err, sizeof err) : NULL;
    if (!s) fprintf(stderr, "  %s\n", err);
    CHECK(s != NULL);
    if (s) {
        struct rs_cluster *c = s->clusters[0];
        struct rs_hostset *h = rs_cluster_hosts(c);
        CHECK(h && h->n == 2);
        if (h && h->n == 2) {
            CHECK_EQ_INT(h->eps[0].ts_match, 0);
            CHECK(rs_cluster_host_tls(c, &h->eps[0]) == c->ts_matches[0].tls_ctx &&
                  c->ts_matches[0].tls_ctx);
            CHECK_EQ_INT(h->eps[1].ts_match, 1); /* no metadata: the empty match, plaintext */
            CHECK(rs_cluster_host_tls(c, &h->eps[1]) == NULL);
        }
        rs_hostset_unref(h);
    }
    rs_snapshot_unref(s);
}

/* ---- names for separate servers ------------------------------------------------------------- */

struct names {
    char v[8][64];
    int n;
};

static void collect(void *arg, const char *cluster, const char *name, uint32_t timeout_ms)
{
    struct names *n = arg;
    if (n->n < 8) snprintf(n->v[n->n++], 64, "%s/%s/%u", cluster, name, timeout_ms);
}

static void test_grpc_names(void)
{
    struct tin t;
    tin_init(&t);
    CHECK(tin_yaml(
              &t, RS_XDS_CDS,
              tls_cluster(
                  "c",
                  "tls_certificate_sds_secret_configs: [ " GRPC_SDS(
                      "default") " ], validation_context_sds_secret_config: " ADS_SDS("ROOTCA"))) ==
          0);
    CHECK(tin_yaml(&t, RS_XDS_LDS,
                   tls_listener("tls_certificate_sds_secret_configs: [ " GRPC_SDS(
                       "default") " ], combined_validation_context: { "
                                  "validation_context_sds_secret_config: { name: ROOTCA, "
                                  "sds_config: { initial_fetch_timeout: 0s, api_config_source: { "
                                  "api_type: GRPC, grpc_services: [ { envoy_grpc: { "
                                  "cluster_name: sds-grpc } } ] } } } }")) == 0);
    struct names n = {0};
    rs_secrets_grpc_names(t.res[RS_XDS_CDS][0].msg, collect, &n);
    CHECK_EQ_INT(n.n, 1);                        /* the ADS one is the ADS client's */
    CHECK_STR(n.v[0], "sds-grpc/default/15000"); /* Envoy's default initial_fetch_timeout */
    n.n = 0;
    rs_secrets_grpc_names(t.res[RS_XDS_LDS][0].msg, collect, &n);
    CHECK_EQ_INT(n.n, 2);
    CHECK_STR(n.v[0], "sds-grpc/default/15000");
    CHECK_STR(n.v[1], "sds-grpc/ROOTCA/0"); /* Istio's 0s: none */
    tin_free(&t);
}

int main(void)
{
    make_certs();
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_static_secrets_by_name),
        TEST_CASE(test_ads_and_grpc_secrets),
        TEST_CASE(test_combined_validation_merge),
        TEST_CASE(test_refusals_name_the_field),
        TEST_CASE(test_rotation_in_place),
        TEST_CASE(test_static_host_transport_socket_match),
        TEST_CASE(test_grpc_names),
    };
    int rc = rs_run_tests(cases, (int)(sizeof cases / sizeof cases[0]));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
