/* SDS from the mesh CA, on a fake clock and a fake transport: a workload's node gets `default`
 * (its certificate and key) and `ROOTCA`, only as subscribed; rotation re-issues at 2/3 of
 * cert_ttl (or every rotate_every) and pushes a new `default` version; an identity change in the
 * mesh re-issues at once; a node that is no workload gets ROOTCA only; the SDS-only stream
 * ignores other types. */
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "test.h"
#include "xds/pbjson.h"
#include "xds/registry.h"
#include "xds/cp/ads_server.h"
#include "xds/cp/ca.h"
#include "xds/cp/gen.h"
#include "xds/cp/sds.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest SotwRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse SotwResponse;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Config__Core__V3__Node Node;

#define NODE_ID "sidecar~10.0.0.2~reviews-1.default~default.svc.cluster.local"

static uint64_t fake_now = 1000000;
static uint64_t fake_clock(void)
{
    return fake_now;
}

struct fake {
    int n_sent;
    uint8_t *last;
    size_t last_len;
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
    (void)ctx, (void)status, (void)message;
}

static const struct cp_ads_io fake_io = {fake_send, fake_finish};

static const char *mesh_yaml = "options: {cert_ttl: 30s}\n"
                               "services:\n  - name: reviews\n    ports: [{port: 9080}]\n"
                               "workloads:\n  - {name: reviews-1, address: 10.0.0.2, "
                               "service_account: bookinfo-reviews, services: [reviews]}\n";
static const char *mesh_yaml_other_sa = "options: {cert_ttl: 30s, trust_domain: example.org}\n"
                                        "services:\n  - name: reviews\n    ports: [{port: 9080}]\n"
                                        "workloads:\n  - {name: reviews-1, address: 10.0.0.2, "
                                        "service_account: other, services: [reviews]}\n";

static struct cp_mesh *mesh_text(const char *yaml)
{
    char err[512];
    struct cp_mesh *m = cp_mesh_parse(yaml, strlen(yaml), "m", err, sizeof err);
    if (!m) fprintf(stderr, "  %s\n", err);
    return m;
}

static char tmpdir[256];

static struct cp_ca *new_ca(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rs_test_ca_sds.XXXXXX");
    if (!mkdtemp(tmpdir)) abort();
    char dir[300], err[512];
    snprintf(dir, sizeof dir, "%s/ca", tmpdir);
    struct cp_ca_opts o = {.dir = dir};
    struct cp_ca *ca = cp_ca_open(&o, err, sizeof err);
    if (!ca) fprintf(stderr, "  %s\n", err);
    return ca;
}

static void drop_ca(struct cp_ca *ca)
{
    cp_ca_free(ca);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", tmpdir);
}

static void request(struct cp_ads_stream *s, int with_node, const char *type_url, char **names,
                    size_t n, const char *nonce)
{
    SotwRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Node node;
    envoy__config__core__v3__node__init(&node);
    node.id = NODE_ID;
    if (with_node) rq.node = &node;
    rq.type_url = (char *)type_url;
    rq.resource_names = names;
    rq.n_resource_names = n;
    if (nonce) rq.response_nonce = (char *)nonce;
    uint8_t buf[4096];
    size_t len = protobuf_c_message_pack(&rq.base, buf);
    cp_ads_stream_request(s, buf, len);
}

/* The last response's secrets: how many, the default's certificate PEM (copied) and the
 * response's version and nonce. */
struct got {
    size_t n;
    int has_root;
    char cert[4096], version[32], nonce[32];
};

static struct got last_secrets(const struct fake *f)
{
    struct got g = {0};
    SotwResponse *r =
        envoy__service__discovery__v3__discovery_response__unpack(NULL, f->last_len, f->last);
    if (!r) return g;
    g.n = r->n_resources;
    snprintf(g.version, sizeof g.version, "%s", r->version_info);
    snprintf(g.nonce, sizeof g.nonce, "%s", r->nonce);
    for (size_t i = 0; i < r->n_resources; i++) {
        Secret *sec = envoy__extensions__transport_sockets__tls__v3__secret__unpack(
            NULL, r->resources[i]->value.len, r->resources[i]->value.data);
        if (!sec) continue;
        if (strcmp(sec->name, CP_SDS_DEFAULT) == 0 && sec->tls_certificate &&
            sec->tls_certificate->certificate_chain && sec->tls_certificate->private_key) {
            const ProtobufCBinaryData *d = &sec->tls_certificate->certificate_chain->inline_bytes;
            snprintf(g.cert, sizeof g.cert, "%.*s", (int)d->len, (const char *)d->data);
        }
        if (strcmp(sec->name, CP_SDS_ROOTCA) == 0 && sec->validation_context &&
            sec->validation_context->trusted_ca &&
            sec->validation_context->trusted_ca->inline_bytes.len > 0)
            g.has_root = 1;
        envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(sec, NULL);
    }
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    return g;
}

static int cert_has_uri(const char *pem, const char *uri)
{
    BIO *b = BIO_new_mem_buf(pem, (int)strlen(pem));
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    int found = 0;
    GENERAL_NAMES *gens = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
    for (size_t i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type == GEN_URI &&
            (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier) == strlen(uri) &&
            memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), uri, strlen(uri)) == 0)
            found = 1;
    }
    GENERAL_NAMES_free(gens);
    X509_free(x);
    return found;
}

static void test_sds_over_ads_and_rotation(void)
{
    struct cp_ca *ca = new_ca();
    CHECK(ca != NULL);
    if (!ca) return;
    struct cp_sds *sds = cp_sds_new(ca, 0);
    cp_sds_set_clock(sds, fake_clock);
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_yaml));
    cp_ads_set_sds(ads, sds);
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, CP_ADS_SOTW, "test", &fake_io, &f);
    /* Only what is subscribed: ROOTCA alone first. */
    char *root_only[] = {CP_SDS_ROOTCA};
    request(s, 1, cp_type_url(CP_SDS), root_only, 1, NULL);
    CHECK_EQ_INT(f.n_sent, 1);
    struct got g = last_secrets(&f);
    CHECK_EQ_INT(g.n, 1);
    CHECK(g.has_root && !g.cert[0]);
    char *both[] = {CP_SDS_DEFAULT, CP_SDS_ROOTCA};
    request(s, 0, cp_type_url(CP_SDS), both, 2, g.nonce);
    CHECK_EQ_INT(f.n_sent, 2);
    g = last_secrets(&f);
    CHECK_EQ_INT(g.n, 2);
    CHECK(g.has_root);
    CHECK(cert_has_uri(g.cert, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
    CHECK_EQ_INT(cp_sds_stats(sds)->issued, 1);
    struct got first = g;
    request(s, 0, cp_type_url(CP_SDS), both, 2, g.nonce); /* ACK */
    /* Before 2/3 of the 30 s: nothing re-issued, nothing pushed. */
    fake_now += 19000;
    cp_ads_tick(ads);
    CHECK_EQ_INT(f.n_sent, 2);
    CHECK_EQ_INT(cp_sds_stats(sds)->rotated, 0);
    /* At 2/3: a new certificate, pushed with a new version. */
    fake_now += 1000;
    cp_ads_tick(ads);
    CHECK_EQ_INT(cp_sds_stats(sds)->rotated, 1);
    CHECK_EQ_INT(f.n_sent, 3);
    g = last_secrets(&f);
    CHECK_EQ_INT(g.n, 2);
    CHECK(strcmp(g.version, first.version) != 0);
    CHECK(strcmp(g.cert, first.cert) != 0);
    CHECK(cert_has_uri(g.cert, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
    /* The workload's identity changes in the mesh: re-issued at once, pushed. */
    cp_ads_set_mesh(ads, mesh_text(mesh_yaml_other_sa));
    CHECK_EQ_INT(f.n_sent, 4);
    g = last_secrets(&f);
    CHECK(cert_has_uri(g.cert, "spiffe://example.org/ns/default/sa/other"));
    CHECK_EQ_INT(cp_sds_stats(sds)->issued, 3);
    cp_ads_stream_close(s);
    cp_ads_free(ads);
    cp_sds_free(sds);
    free(f.last);
    drop_ca(ca);
}

static void test_rotate_every_and_unknown_node(void)
{
    struct cp_ca *ca = new_ca();
    CHECK(ca != NULL);
    if (!ca) return;
    struct cp_sds *sds = cp_sds_new(ca, 1000);
    cp_sds_set_clock(sds, fake_clock);
    struct cp_mesh *m = mesh_text(mesh_yaml);
    struct cp_resources r = {0};
    cp_sds_fill(sds, m, &m->workloads[0], &r);
    CHECK_EQ_INT(r.n[CP_SDS], 2);
    CHECK(cp_resources_find(&r, CP_SDS, CP_SDS_DEFAULT) != NULL);
    char v1[17];
    snprintf(v1, sizeof v1, "%s", cp_resources_find(&r, CP_SDS, CP_SDS_DEFAULT)->version);
    CHECK_EQ_INT(cp_sds_rotate(sds, m), 0);
    fake_now += 1000;
    CHECK_EQ_INT(cp_sds_rotate(sds, m), 1);
    cp_sds_fill(sds, m, &m->workloads[0], &r);
    CHECK(strcmp(cp_resources_find(&r, CP_SDS, CP_SDS_DEFAULT)->version, v1) != 0);
    /* A node that is no workload: the root only, no certificate for an undeclared identity. */
    cp_sds_fill(sds, m, NULL, &r);
    CHECK_EQ_INT(r.n[CP_SDS], 1);
    CHECK(cp_resources_find(&r, CP_SDS, CP_SDS_ROOTCA) != NULL);
    /* A workload gone from the mesh is forgotten. */
    struct cp_mesh *empty = mesh_text("services: []\n");
    CHECK(cp_sds_cert(sds, "10.0.0.2") != NULL);
    cp_sds_rotate(sds, empty);
    CHECK(cp_sds_cert(sds, "10.0.0.2") == NULL);
    cp_resources_set(&r, CP_SDS, NULL, 0);
    cp_mesh_free(empty);
    cp_mesh_free(m);
    cp_sds_free(sds);
    drop_ca(ca);
}

/* Delta: each secret has its own version; a rotation sends `default` alone, with a new one. */
static void test_delta_rotation(void)
{
    struct cp_ca *ca = new_ca();
    CHECK(ca != NULL);
    if (!ca) return;
    struct cp_sds *sds = cp_sds_new(ca, 1000);
    cp_sds_set_clock(sds, fake_clock);
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_yaml));
    cp_ads_set_sds(ads, sds);
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, CP_ADS_DELTA, "test", &fake_io, &f);
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest rq =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Node node;
    envoy__config__core__v3__node__init(&node);
    node.id = NODE_ID;
    rq.node = &node;
    rq.type_url = (char *)cp_type_url(CP_SDS);
    char *both[] = {CP_SDS_DEFAULT, CP_SDS_ROOTCA};
    rq.resource_names_subscribe = both;
    rq.n_resource_names_subscribe = 2;
    uint8_t buf[1024];
    cp_ads_stream_request(s, buf, protobuf_c_message_pack(&rq.base, buf));
    CHECK_EQ_INT(f.n_sent, 1);
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r =
        envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, f.last_len, f.last);
    CHECK(r && r->n_resources == 2);
    char v0[32] = "";
    for (size_t i = 0; r && i < r->n_resources; i++)
        if (strcmp(r->resources[i]->name, CP_SDS_DEFAULT) == 0)
            snprintf(v0, sizeof v0, "%s", r->resources[i]->version);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    fake_now += 1000;
    cp_ads_tick(ads);
    CHECK_EQ_INT(f.n_sent, 2);
    r = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, f.last_len, f.last);
    CHECK(r && r->n_resources == 1 && r->n_removed_resources == 0);
    CHECK(r && r->n_resources == 1 && strcmp(r->resources[0]->name, CP_SDS_DEFAULT) == 0);
    CHECK(r && r->n_resources == 1 && v0[0] && strcmp(r->resources[0]->version, v0) != 0);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    cp_ads_stream_close(s);
    cp_ads_free(ads);
    cp_sds_free(sds);
    free(f.last);
    drop_ca(ca);
}

static void test_sds_only_stream(void)
{
    struct cp_ca *ca = new_ca();
    CHECK(ca != NULL);
    if (!ca) return;
    struct cp_sds *sds = cp_sds_new(ca, 0);
    struct cp_ads *ads = cp_ads_new(mesh_text(mesh_yaml));
    cp_ads_set_sds(ads, sds);
    struct fake f = {0};
    struct cp_ads_stream *s = cp_ads_stream_open(ads, CP_ADS_SDS, "test", &fake_io, &f);
    /* Clusters are not served on the secrets socket. */
    request(s, 1, cp_type_url(CP_CDS), NULL, 0, NULL);
    CHECK_EQ_INT(f.n_sent, 0);
    CHECK_EQ_INT(cp_ads_stats(ads)->unknown_types, 1);
    char *def[] = {CP_SDS_DEFAULT};
    request(s, 0, "", def, 1, NULL); /* no type: SDS on this socket */
    CHECK_EQ_INT(f.n_sent, 1);
    struct got g = last_secrets(&f);
    CHECK_EQ_INT(g.n, 1);
    CHECK(cert_has_uri(g.cert, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
    cp_ads_stream_close(s);
    cp_ads_free(ads);
    cp_sds_free(sds);
    free(f.last);
    drop_ca(ca);
}

/* Resource name of type t as Envoy JSON text (malloc'd), or NULL. */
static char *resource_json(const struct cp_resources *r, enum cp_type t, const char *name)
{
    const struct cp_resource *res = cp_resources_find(r, t, name);
    if (!res) return NULL;
    const ProtobufCMessageDescriptor *d = xds_registry_find(cp_type_url(t));
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, res->len, res->bytes);
    json_t *j = m ? xds_to_json(m) : NULL;
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    protobuf_c_message_free_unpacked(m, NULL);
    return text;
}

static void test_mtls_shapes(void)
{
    static const char *yaml = "options: {mtls: true, trust_domain: td.test}\n"
                              "services:\n  - name: reviews\n    ports: [{port: 9080}]\n"
                              "workloads:\n  - {name: pp, address: 10.0.0.1}\n"
                              "  - {name: r1, address: 10.0.0.2, service_account: rev, "
                              "services: [reviews]}\n";
    char err[512];
    struct cp_node node;
    CHECK(cp_node_parse("sidecar~10.0.0.2~r1.default~default.svc.cluster.local", &node) == 0);
    struct cp_mesh *m = mesh_text(yaml);
    struct cp_resources *r = m ? cp_generate(m, &node, err, sizeof err) : NULL;
    CHECK(r != NULL);
    if (!r) return;
    char *c = resource_json(r, CP_CDS, "outbound|9080||reviews.default.svc.cluster.local");
    CHECK(c && strstr(c, "\"name\":\"tlsMode-istio\",\"match\":{\"tlsMode\":\"istio\"}"));
    CHECK(c && strstr(c, "\"sni\":\"outbound_.9080_._.reviews.default.svc.cluster.local\""));
    CHECK(c && strstr(c, "\"exact\":\"spiffe://td.test/ns/default/sa/rev\""));
    CHECK(c && strstr(c, "\"name\":\"ROOTCA\""));
    CHECK(c && strstr(c, "\"name\":\"tlsMode-disabled\",\"match\":{}"));
    free(c);
    char *e = resource_json(r, CP_EDS, "outbound|9080||reviews.default.svc.cluster.local");
    CHECK(e && strstr(e, "\"envoy.transport_socket_match\":{\"tlsMode\":\"istio\"}"));
    free(e);
    char *l = resource_json(r, CP_LDS, "virtualInbound");
    CHECK(l && strstr(l, "DownstreamTlsContext"));
    CHECK(l && strstr(l, "\"requireClientCertificate\":true"));
    free(l);
    cp_resources_free(r);
    cp_mesh_free(m);
    /* Off by default: no TLS anywhere. */
    m = mesh_text(mesh_yaml);
    r = m ? cp_generate(m, &node, err, sizeof err) : NULL;
    c = r ? resource_json(r, CP_CDS, "outbound|9080||reviews.default.svc.cluster.local") : NULL;
    CHECK(c && !strstr(c, "tlsMode"));
    free(c);
    l = r ? resource_json(r, CP_LDS, "virtualInbound") : NULL;
    CHECK(l && !strstr(l, "TlsContext"));
    free(l);
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_mesh_ca_options(void)
{
    char err[512];
    const char *bad_ttl = "options: {cert_ttl: 500ms}\n";
    CHECK(cp_mesh_parse(bad_ttl, strlen(bad_ttl), "m.yaml", err, sizeof err) == NULL);
    CHECK_STR(err, "m.yaml:1: options.cert_ttl: must be at least 1s (certificates count whole "
                   "seconds)");
    const char *bad_td = "options: {trust_domain: Cluster/Local}\n";
    CHECK(cp_mesh_parse(bad_td, strlen(bad_td), "m.yaml", err, sizeof err) == NULL);
    CHECK(strstr(err, "options.trust_domain: must be lower-case") != NULL);
    const char *ok = "options: {cert_ttl: 10s, ca_dir: ca, mtls: false}\n";
    struct cp_mesh *m = cp_mesh_parse(ok, strlen(ok), "m.yaml", err, sizeof err);
    CHECK(m && m->options.cert_ttl_ms == 10000 && strcmp(m->options.ca_dir, "ca") == 0);
    CHECK(m && strcmp(m->options.trust_domain, "cluster.local") == 0);
    cp_mesh_free(m);
}

RUN_TESTS(TEST_CASE(test_mtls_shapes), TEST_CASE(test_mesh_ca_options),
          TEST_CASE(test_sds_over_ads_and_rotation), TEST_CASE(test_rotate_every_and_unknown_node),
          TEST_CASE(test_sds_only_stream), TEST_CASE(test_delta_rotation))
