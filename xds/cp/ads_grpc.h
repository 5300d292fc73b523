/* ADS on gRPC: registers StreamAggregatedResources and DeltaAggregatedResources on a gRPC server
 * and runs each stream through the ADS protocol (ads_server.h). */
#ifndef XDS_CP_ADS_GRPC_H
#define XDS_CP_ADS_GRPC_H

#include "xds/cp/ads_server.h"
#include "xds/grpc.h"

#define CP_ADS_SOTW_METHOD                                                                         \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define CP_ADS_DELTA_METHOD                                                                        \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

/* Registers both ADS methods on srv, served by ads (which must outlive srv). 0 or -errno. */
int cp_ads_grpc_register(xds_grpc_server *srv, struct cp_ads *ads);

#endif
