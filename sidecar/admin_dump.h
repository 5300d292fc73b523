/* /config_dump: the configuration a snapshot was compiled from, in Envoy's ConfigDump shape. */
#ifndef RS_ADMIN_DUMP_H
#define RS_ADMIN_DUMP_H

#include <jansson.h>

struct rs_snapshot;

/* {"configs": [BootstrapConfigDump, ClustersConfigDump, EndpointsConfigDump (xDS),
 * ListenersConfigDump, RoutesConfigDump (xDS), SecretsConfigDump (xDS, keys redacted), and a
 * google.protobuf.Struct listing the filters Ringside accepted but does not run]}. */
json_t *rs_admin_config_dump_json(const struct rs_snapshot *snap);

#endif
