/* Loading YAML or JSON onto any protobuf-c message through its descriptor, following the proto3
 * JSON mapping as Envoy applies it to its bootstrap: snake_case or lowerCamel keys, enums by
 * name, 64-bit integers as numbers or strings, "1.5s" durations, RFC 3339 timestamps, wrappers
 * as plain scalars, Struct/Value from any value, Any by "@type" through the registry. */
#ifndef XDS_PBLOAD_H
#define XDS_PBLOAD_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Unknown fields are skipped instead of failing (Envoy's --allow-unknown-static-fields). */
#define XDS_LOAD_ALLOW_UNKNOWN 0x1u

/* Parses text and loads it into a new message of type d. Returns the message, owned by the caller
 * and freed with protobuf_c_message_free_unpacked(msg, NULL); or NULL with a message in err
 * naming the field path, e.g.
 *   static_resources.clusters[0].connect_timeout: bad duration "5 parsecs". */
ProtobufCMessage *xds_load_yaml(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                                unsigned flags, char *err, size_t errlen);
ProtobufCMessage *xds_load_json(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                                unsigned flags, char *err, size_t errlen);

/* Loads text into an existing message with merge semantics (scalars overwrite, repeated fields
 * append, messages merge). On error returns -1; msg is left valid (freeable) but partly loaded. */
int xds_load_yaml_into(ProtobufCMessage *msg, const char *text, size_t len, unsigned flags,
                       char *err, size_t errlen);
int xds_load_json_into(ProtobufCMessage *msg, const char *text, size_t len, unsigned flags,
                       char *err, size_t errlen);

struct xds_doc;
/* Loads an already parsed document (see doc.h; used for TypedStruct). Same contract. */
int xds_load_doc_into(ProtobufCMessage *msg, const struct xds_doc *doc, unsigned flags, char *err,
                      size_t errlen);

#endif
