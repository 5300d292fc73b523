/* The type registry: every message generated into xds_proto, found by full name
 * ("envoy.config.cluster.v3.Cluster") or type URL ("type.googleapis.com/envoy...."). This is how
 * google.protobuf.Any's @type / type_url is resolved. */
#ifndef XDS_REGISTRY_H
#define XDS_REGISTRY_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* The descriptor for a full message name or a type URL (anything up to the last '/' is ignored),
 * or NULL when no generated message has that name. Thread-safe; the table is built once. */
const ProtobufCMessageDescriptor *xds_registry_find(const char *name_or_url);

/* Same, for a name that is not NUL-terminated. */
const ProtobufCMessageDescriptor *xds_registry_find_n(const char *name_or_url, size_t len);

/* Number of registered messages, and the i-th in name order (for listings and tests). */
size_t xds_registry_count(void);
const ProtobufCMessageDescriptor *xds_registry_at(size_t i);

#endif
