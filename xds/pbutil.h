/* Descriptor-level helpers shared by the loader, the merger and the JSON renderer. Internal to
 * xds/. Memory follows protobuf-c's unpacker (system allocator), so a message built here is
 * freed with protobuf_c_message_free_unpacked(msg, NULL). */
#ifndef XDS_PBUTIL_H
#define XDS_PBUTIL_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* Well-known types that the proto3 JSON mapping writes in a special form. */
enum xds_wkt {
    XDS_WKT_NONE,
    XDS_WKT_ANY,
    XDS_WKT_DURATION,
    XDS_WKT_TIMESTAMP,
    XDS_WKT_WRAPPER,
    XDS_WKT_STRUCT,
    XDS_WKT_VALUE,
    XDS_WKT_LIST,
    XDS_WKT_FIELDMASK,
};

enum xds_wkt xds_wkt_of(const ProtobufCMessageDescriptor *d);

/* A map<> field's entry type: a nested *Entry message with fields key = 1, value = 2. */
int xds_is_map_entry(const ProtobufCMessageDescriptor *d);

/* The proto3 JSON name of a field (lowerCamel, trailing '_' dropped). */
void xds_json_name(const char *name, char *out, size_t outlen);

/* Where a field lives in a message, and its repeated count / has_ flag / oneof case. */
static inline void *xds_field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->offset;
}
static inline void *xds_quant_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (char *)m + f->quantifier_offset;
}

/* Size of one element of a repeated field of this type. */
size_t xds_elem_size(ProtobufCType type);

/* True if the field is set (proto3: non-default; oneof: selected; repeated: non-empty). */
int xds_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* Frees whatever the field holds and resets it to its default (clears the oneof case too). */
void xds_field_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* A new, initialised message of type d (aborts on OOM: a control path). */
ProtobufCMessage *xds_message_new(const ProtobufCMessageDescriptor *d);

/* Grows a repeated field by one zeroed element and returns it. */
void *xds_repeated_push(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* Copies of strings and bytes in malloc'd memory. */
char *xds_strndup(const char *s, size_t len);

/* Base64 (standard or URL-safe, padding optional) into malloc'd bytes; -1 if malformed. */
int xds_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);
/* Standard base64 with padding into a malloc'd NUL-terminated string. */
char *xds_base64_encode(const uint8_t *data, size_t len);

#endif
