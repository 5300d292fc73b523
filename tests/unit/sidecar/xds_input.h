/* Test helper: builds the xDS input the translation reads (struct rs_xds_input) from YAML
 * resources or from DiscoveryResponse JSON files, as the ADS client would hand them over
 * (decoded message plus its serialized bytes). A resource added under an existing name replaces
 * it, as an update does. Names can be marked timed out (initial_fetch_timeout passed). */
#ifndef RS_TEST_XDS_INPUT_H
#define RS_TEST_XDS_INPUT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "sidecar/config.h"
#include "xds/any.h"
#include "xds/pbload.h"

#define TIN_MAX 64

struct tin {
    struct rs_xds_input in;
    struct rs_xds_resource res[RS_XDS_NTYPES][TIN_MAX];
    ProtobufCMessage *msg[RS_XDS_NTYPES][TIN_MAX];
    uint8_t *bytes[RS_XDS_NTYPES][TIN_MAX];
    const char *timed_out[RS_XDS_NTYPES][8];
    int n_timed_out[RS_XDS_NTYPES];
};

static const ProtobufCMessageDescriptor *tin_desc(enum rs_xds_type t)
{
    switch (t) {
    case RS_XDS_CDS:
        return &envoy__config__cluster__v3__cluster__descriptor;
    case RS_XDS_EDS:
        return &envoy__config__endpoint__v3__cluster_load_assignment__descriptor;
    case RS_XDS_LDS:
        return &envoy__config__listener__v3__listener__descriptor;
    case RS_XDS_RDS:
        return &envoy__config__route__v3__route_configuration__descriptor;
    case RS_XDS_SDS:
        return &envoy__extensions__transport_sockets__tls__v3__secret__descriptor;
    default:
        return NULL;
    }
}

static const char *tin_name(enum rs_xds_type t, const ProtobufCMessage *m)
{
    switch (t) {
    case RS_XDS_CDS:
        return ((const Envoy__Config__Cluster__V3__Cluster *)m)->name;
    case RS_XDS_EDS:
        return ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name;
    case RS_XDS_LDS:
        return ((const Envoy__Config__Listener__V3__Listener *)m)->name;
    case RS_XDS_RDS:
        return ((const Envoy__Config__Route__V3__RouteConfiguration *)m)->name;
    case RS_XDS_SDS:
        return ((const Envoy__Extensions__TransportSockets__Tls__V3__Secret *)m)->name;
    default:
        return "";
    }
}

static int tin_watch(void *ctx, enum rs_xds_type t, const char *name)
{
    struct tin *ti = ctx;
    for (int i = 0; i < ti->n_timed_out[t]; i++)
        if (strcmp(ti->timed_out[t][i], name) == 0) return RS_XDS_TIMED_OUT;
    return RS_XDS_PENDING;
}

/* A secret "sent" by any separate SDS server: the SDS table of another tin set as in.grpc_ctx. */
static const struct rs_xds_resource *tin_grpc_secret(void *ctx, const char *cluster,
                                                     const char *name)
{
    (void)cluster;
    struct tin *g = ctx;
    for (size_t i = 0; g && i < g->in.n[RS_XDS_SDS]; i++)
        if (strcmp(g->res[RS_XDS_SDS][i].name, name) == 0) return &g->res[RS_XDS_SDS][i];
    return NULL;
}

static void tin_init(struct tin *t)
{
    memset(t, 0, sizeof *t);
    for (int k = 0; k < RS_XDS_NTYPES; k++) t->in.res[k] = t->res[k];
    t->in.watch = tin_watch;
    t->in.ctx = t;
    t->in.grpc_secret = tin_grpc_secret;
}

/* Takes ownership of m. */
static void tin_put(struct tin *t, enum rs_xds_type type, ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(len + 1);
    protobuf_c_message_pack(m, b);
    const char *name = tin_name(type, m);
    size_t i;
    for (i = 0; i < t->in.n[type]; i++)
        if (strcmp(t->res[type][i].name, name) == 0) break;
    if (i == t->in.n[type]) {
        if (i == TIN_MAX) abort();
        t->in.n[type]++;
    } else {
        protobuf_c_message_free_unpacked(t->msg[type][i], NULL);
        free(t->bytes[type][i]);
    }
    t->msg[type][i] = m;
    t->bytes[type][i] = b;
    t->res[type][i] = (struct rs_xds_resource){.name = name, .msg = m, .bytes = b, .len = len};
}

__attribute__((unused)) static void tin_remove(struct tin *t, enum rs_xds_type type,
                                               const char *name)
{
    for (size_t i = 0; i < t->in.n[type]; i++) {
        if (strcmp(t->res[type][i].name, name) != 0) continue;
        protobuf_c_message_free_unpacked(t->msg[type][i], NULL);
        free(t->bytes[type][i]);
        size_t last = --t->in.n[type];
        t->msg[type][i] = t->msg[type][last];
        t->bytes[type][i] = t->bytes[type][last];
        t->res[type][i] = t->res[type][last];
        return;
    }
}

/* One resource from YAML; returns 0, or -1 printing the loader's error. */
__attribute__((unused)) static int tin_yaml(struct tin *t, enum rs_xds_type type, const char *yaml)
{
    char err[512];
    ProtobufCMessage *m = xds_load_yaml(tin_desc(type), yaml, strlen(yaml), 0, err, sizeof err);
    if (!m) {
        fprintf(stderr, "  load: %s\n", err);
        return -1;
    }
    tin_put(t, type, m);
    return 0;
}

static char *tin_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* A DiscoveryResponse file: every resource is decoded from its Any as the ADS client does. */
__attribute__((unused)) static int tin_file(struct tin *t, const char *path)
{
    size_t len;
    char *text = tin_slurp(path, &len);
    if (!text) {
        fprintf(stderr, "  cannot read %s\n", path);
        return -1;
    }
    char err[512];
    ProtobufCMessage *m =
        xds_load_json(&envoy__service__discovery__v3__discovery_response__descriptor, text, len, 0,
                      err, sizeof err);
    free(text);
    if (!m) {
        fprintf(stderr, "  %s: %s\n", path, err);
        return -1;
    }
    const Envoy__Service__Discovery__V3__DiscoveryResponse *r = (const void *)m;
    int ret = 0;
    for (size_t i = 0; i < r->n_resources && !ret; i++) {
        enum rs_xds_type type = RS_XDS_NTYPES;
        for (int k = 0; k < RS_XDS_SDS; k++)
            if (strstr(r->resources[i]->type_url, tin_desc((enum rs_xds_type)k)->name)) type = k;
        ProtobufCMessage *res =
            type < RS_XDS_NTYPES ? xds_any_unpack(r->resources[i], tin_desc(type), err, sizeof err)
                                 : NULL;
        if (!res) {
            fprintf(stderr, "  %s: resources[%zu]: %s\n", path, i, err);
            ret = -1;
        } else {
            tin_put(t, type, res);
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ret;
}

static void tin_free(struct tin *t)
{
    for (int k = 0; k < RS_XDS_NTYPES; k++)
        for (size_t i = 0; i < t->in.n[k]; i++) {
            protobuf_c_message_free_unpacked(t->msg[k][i], NULL);
            free(t->bytes[k][i]);
        }
    memset(t->in.n, 0, sizeof t->in.n);
}

#endif
