/* Protobuf merge and deep copy over any protobuf-c message, driven by its descriptor. */
#ifndef XDS_PBMERGE_H
#define XDS_PBMERGE_H

#include <protobuf-c/protobuf-c.h>

/* Merges src into dst with protobuf's MergeFrom semantics: set scalars overwrite, repeated fields
 * append (map entries with an existing key replace it), set messages merge recursively, a oneof
 * member set in src replaces dst's member. Both must have the same descriptor; src is unchanged.
 * Returns 0, or -1 if the descriptors differ. */
int xds_merge(ProtobufCMessage *dst, const ProtobufCMessage *src);

/* A deep copy of m (freed with protobuf_c_message_free_unpacked). */
ProtobufCMessage *xds_copy(const ProtobufCMessage *m);

#endif
