/* Any unpacking with TypedStruct unwrapping. */
#include "xds/any.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udpa/type/v1/typed_struct.pb-c.h"
#include "xds/doc.h"
#include "xds/pbjson.h"
#include "xds/pbload.h"
#include "xds/pbutil.h"
#include "xds/registry.h"
#include "xds/type/v3/typed_struct.pb-c.h"

static const ProtobufCMessageDescriptor *find_type(const char *url, char *err, size_t errlen)
{
    const ProtobufCMessageDescriptor *d = url ? xds_registry_find(url) : NULL;
    if (!d) snprintf(err, errlen, "unknown type URL \"%s\"", url ? url : "");
    return d;
}

static int check_expected(const ProtobufCMessageDescriptor *d,
                          const ProtobufCMessageDescriptor *expected, char *err, size_t errlen)
{
    if (!expected || d == expected || strcmp(d->name, expected->name) == 0) return 0;
    snprintf(err, errlen, "expected %s, got %s", expected->name, d->name);
    return -1;
}

/* A TypedStruct's value is a Struct: render it as JSON and load that into the named message, so
 * its field names, enums and durations follow the same rules as the bootstrap. */
static ProtobufCMessage *from_typed_struct(const char *type_url, const Google__Protobuf__Struct *s,
                                           const ProtobufCMessageDescriptor *expected, char *err,
                                           size_t errlen)
{
    const ProtobufCMessageDescriptor *d = find_type(type_url, err, errlen);
    if (!d || check_expected(d, expected, err, errlen) < 0) return NULL;
    json_t *j = s ? xds_to_json(&s->base) : json_object();
    struct xds_doc *doc = xds_doc_from_json(j);
    json_decref(j);
    if (!doc) {
        snprintf(err, errlen, "TypedStruct value too deeply nested");
        return NULL;
    }
    ProtobufCMessage *m = xds_message_new(d);
    if (xds_load_doc_into(m, doc, 0, err, errlen) < 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    xds_doc_free(doc);
    return m;
}

ProtobufCMessage *xds_any_unpack(const Google__Protobuf__Any *any,
                                 const ProtobufCMessageDescriptor *expected, char *err,
                                 size_t errlen)
{
    const ProtobufCMessageDescriptor *d = find_type(any->type_url, err, errlen);
    if (!d) return NULL;
    int udpa = d == &udpa__type__v1__typed_struct__descriptor;
    if (udpa || d == &xds__type__v3__typed_struct__descriptor) {
        ProtobufCMessage *ts = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
        if (!ts) {
            snprintf(err, errlen, "malformed %s", d->name);
            return NULL;
        }
        /* The two TypedStructs have the same fields: type_url = 1, value = 2. */
        ProtobufCMessage *m = udpa
                                  ? from_typed_struct(((Udpa__Type__V1__TypedStruct *)ts)->type_url,
                                                      ((Udpa__Type__V1__TypedStruct *)ts)->value,
                                                      expected, err, errlen)
                                  : from_typed_struct(((Xds__Type__V3__TypedStruct *)ts)->type_url,
                                                      ((Xds__Type__V3__TypedStruct *)ts)->value,
                                                      expected, err, errlen);
        protobuf_c_message_free_unpacked(ts, NULL);
        return m;
    }
    if (check_expected(d, expected, err, errlen) < 0) return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
    if (!m) snprintf(err, errlen, "malformed %s in Any", d->name);
    return m;
}

ProtobufCMessage *xds_message_clone(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    if (!buf) abort();
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
    free(buf);
    if (!c) abort(); /* what we packed unpacks, unless memory ran out */
    return c;
}
