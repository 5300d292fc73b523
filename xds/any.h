/* Reading google.protobuf.Any: how the data plane reads typed_config; and copying messages. */
#ifndef XDS_ANY_H
#define XDS_ANY_H

#include <stddef.h>

#include "google/protobuf/any.pb-c.h"

/* Unpacks any into a new message of its registered type. A udpa.type.v1.TypedStruct or
 * xds.type.v3.TypedStruct is unwrapped: its Struct value is loaded into the message its type_url
 * names, as the loader would load YAML. If expected is not NULL the (unwrapped) type must be it.
 * Returns the message (caller frees with protobuf_c_message_free_unpacked(msg, NULL)) or NULL
 * with a message in err. */
ProtobufCMessage *xds_any_unpack(const Google__Protobuf__Any *any,
                                 const ProtobufCMessageDescriptor *expected, char *err,
                                 size_t errlen);

/* A deep copy of m, through its serialized form (free it with
 * protobuf_c_message_free_unpacked(copy, NULL)). Aborts when out of memory. */
ProtobufCMessage *xds_message_clone(const ProtobufCMessage *m);

#endif
