/* Resource generation: a mesh and a node in, Istio-shaped Envoy v3 resources out (clusters,
 * endpoints, listeners, routes), each serialized as the bytes of a google.protobuf.Any value with
 * a version that is a hash of those bytes. */
#ifndef XDS_CP_GEN_H
#define XDS_CP_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "xds/cp/mesh.h"

enum cp_type { CP_CDS, CP_EDS, CP_LDS, CP_RDS, CP_SDS, CP_NTYPES };

/* "type.googleapis.com/envoy.config.cluster.v3.Cluster", ... */
const char *cp_type_url(enum cp_type t);
/* "CDS", "EDS", ... for logs. */
const char *cp_type_short(enum cp_type t);
/* The type for a type URL, or -1 when ringside-cp serves no such type. */
int cp_type_from_url(const char *url);

struct cp_resource {
    char *name;
    uint8_t *bytes; /* the serialized resource (an Any's value) */
    size_t len;
    char version[17]; /* hex FNV-1a 64 of bytes */
    int wildcard;     /* part of a wildcard subscription (api_listeners are only sent by name) */
};

/* One node's resources, sorted by name within each type. */
struct cp_resources {
    struct cp_resource *v[CP_NTYPES];
    size_t n[CP_NTYPES];
    char version[CP_NTYPES][17]; /* SotW version_info: a hash of the type's names and versions */
};

/* What the node id says. Istio's sidecar form is sidecar~<IP>~<POD>.<NS>~<NS>.svc.cluster.local. */
struct cp_node {
    int sidecar; /* the id has Istio's four-part form */
    char ip[64], pod[128], ns[64];
};

/* Parses a node id: 0 with out filled when it is Istio's four-part sidecar form, -1 otherwise
 * (out->sidecar = 0). */
int cp_node_parse(const char *id, struct cp_node *out);

/* Generates the resources for a node (NULL: a node the mesh does not know, e.g. a proxyless
 * gRPC client: outbound resources only). Returns NULL with err set only if a generated resource
 * fails to load into its Envoy message (a bug; the mesh was validated). */
struct cp_resources *cp_generate(const struct cp_mesh *mesh, const struct cp_node *node, char *err,
                                 size_t errlen);

void cp_resources_free(struct cp_resources *r);

/* The resource of type t named name, or NULL. */
const struct cp_resource *cp_resources_find(const struct cp_resources *r, enum cp_type t,
                                            const char *name);

/* Replaces r's resources of type t with v[0..n) (taken over: malloc'd array, names and bytes),
 * computing each version and the type's version. For resources made outside the generator
 * (SDS secrets). */
void cp_resources_set(struct cp_resources *r, enum cp_type t, struct cp_resource *v, size_t n);

/* FNV-1a 64 of bytes as 16 hex digits. */
void cp_hash_hex(const void *data, size_t len, char out[17]);

#endif
