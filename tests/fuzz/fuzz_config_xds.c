/* libFuzzer target for the xDS translation (sidecar/config_xds.c, config.c, chain_match.c,
 * filters.c): the first byte picks a resource type (CDS, EDS, LDS, RDS), the rest is that
 * resource's serialized bytes, as the ADS client would hand them over. The resource is decoded
 * and compiled next to a small fixed set (an EDS cluster, its assignment, an RDS listener and
 * its routes) in serve and validate mode, then applied as an EDS-only update; any chain of a
 * compiled listener is then picked for a few addresses. Every outcome must be a snapshot or an
 * error string, never a crash or a leak. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "sidecar/chain_match.h"
#include "sidecar/config.h"

static const ProtobufCMessageDescriptor *const descs[4] = {
    &envoy__config__cluster__v3__cluster__descriptor,
    &envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
    &envoy__config__listener__v3__listener__descriptor,
    &envoy__config__route__v3__route_configuration__descriptor,
};

static const char *name_of(int t, const ProtobufCMessage *m)
{
    const char *n =
        t == 0   ? ((const Envoy__Config__Cluster__V3__Cluster *)m)->name
        : t == 1 ? ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name
        : t == 2 ? ((const Envoy__Config__Listener__V3__Listener *)m)->name
                 : ((const Envoy__Config__Route__V3__RouteConfiguration *)m)->name;
    return n ? n : "";
}

static int watch_all_timed_out(void *ctx, enum rs_xds_type t, const char *name)
{
    (void)ctx, (void)t, (void)name;
    return RS_XDS_TIMED_OUT;
}

static void pick_some(const struct rs_snapshot *s)
{
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(9080)};
    struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "10.0.0.1", &local.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
    for (uint32_t i = 0; i < s->nlisteners; i++) {
        rs_listener_pick_chain(&s->listeners[i], (void *)&local, (void *)&remote, NULL);
        local.sin_port = htons(15006);
        rs_listener_pick_chain(&s->listeners[i], (void *)&local, (void *)&remote, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int t = data[0] % 4;
    ProtobufCMessage *m = protobuf_c_message_unpack(descs[t], NULL, size - 1, data + 1);
    if (!m) return 0;
    Envoy__Config__Bootstrap__V3__Bootstrap bs;
    envoy__config__bootstrap__v3__bootstrap__init(&bs);
    struct rs_xds_resource r = {
        .name = name_of(t, m), .msg = m, .bytes = data + 1, .len = size - 1};
    struct rs_xds_input in = {.watch = watch_all_timed_out};
    in.res[t] = &r;
    in.n[t] = 1;
    char err[1024];
    for (int serve = 0; serve < 2; serve++) {
        struct rs_snapshot *s = rs_config_compile_xds(&bs, &in, NULL, serve, err, sizeof err);
        if (!s) {
            if (!err[0]) abort(); /* an error always says why */
            continue;
        }
        pick_some(s);
        struct rs_snapshot *s2 = rs_config_compile_xds(&bs, &in, s, serve, err, sizeof err);
        if (s2) rs_config_apply_eds(s2, &in, serve, err, sizeof err);
        rs_snapshot_unref(s2);
        rs_snapshot_unref(s);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
