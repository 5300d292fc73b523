/* Rendering any protobuf-c message as proto3 JSON (for the admin /config_dump). */
#ifndef XDS_PBJSON_H
#define XDS_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A new JSON object for m: lowerCamel keys, enums by name, 64-bit integers as strings, durations
 * as "0.5s", wrappers as plain values, Struct/Value as JSON, Any with "@type" and the fields of
 * the message it holds (resolved through the registry; an unknown type keeps "value" as base64).
 * Only set fields are written. The caller owns the result (json_decref). */
json_t *xds_to_json(const ProtobufCMessage *m);

#endif
