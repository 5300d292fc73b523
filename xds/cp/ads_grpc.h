/* ADS on gRPC: registers StreamAggregatedResources and DeltaAggregatedResources (and SDS's
 * StreamSecrets) on a gRPC server and runs each stream through the ADS protocol (ads_server.h). */
#ifndef XDS_CP_ADS_GRPC_H
#define XDS_CP_ADS_GRPC_H

#include "xds/cp/ads_server.h"
#include "xds/grpc.h"

#define CP_ADS_SOTW_METHOD                                                                         \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define CP_ADS_DELTA_METHOD                                                                        \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

#define CP_SDS_METHOD "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"

/* Registers both ADS methods on srv, served by ads (which must outlive srv). 0 or -errno. */
int cp_ads_grpc_register(xds_grpc_server *srv, struct cp_ads *ads);

/* Registers SDS alone (StreamSecrets, state of the world), as Istio's agent serves it on its
 * workload socket, served by ads. 0 or -errno. */
int cp_sds_grpc_register(xds_grpc_server *srv, struct cp_ads *ads);

#endif
