/* Descriptor-driven protobuf -> JSON, the inverse of pbload.c: what this writes loads back into
 * an equal message. */
#include "xds/pbjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "xds/pbutil.h"
#include "xds/registry.h"

static json_t *message_json(const ProtobufCMessage *m);

static json_t *double_json(double d)
{
    if (isnan(d)) return json_string("NaN");
    if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *scalar_json(const void *p, const ProtobufCFieldDescriptor *f)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT:
        return double_json(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return double_json(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return json_stringn(s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *enc = xds_base64_encode(b->data, b->len);
        json_t *j = json_string(enc);
        free(enc);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        return sub ? message_json(sub) : json_null();
    }
    }
    return json_null();
}

/* "1.5s", with 0, 3, 6 or 9 fractional digits as proto3 JSON prints them. */
static json_t *duration_json(int64_t secs, int32_t nanos)
{
    char buf[48];
    const char *sign = secs < 0 || nanos < 0 ? "-" : "";
    uint64_t s = secs < 0 ? (uint64_t)0 - (uint64_t)secs : (uint64_t)secs;
    uint32_t ns = nanos < 0 ? (uint32_t)-nanos : (uint32_t)nanos;
    if (ns == 0)
        snprintf(buf, sizeof buf, "%s%" PRIu64 "s", sign, s);
    else if (ns % 1000000 == 0)
        snprintf(buf, sizeof buf, "%s%" PRIu64 ".%03us", sign, s, ns / 1000000);
    else if (ns % 1000 == 0)
        snprintf(buf, sizeof buf, "%s%" PRIu64 ".%06us", sign, s, ns / 1000);
    else
        snprintf(buf, sizeof buf, "%s%" PRIu64 ".%09us", sign, s, ns);
    return json_string(buf);
}

static json_t *timestamp_json(int64_t secs, int32_t nanos)
{
    char buf[64], frac[16] = "";
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return json_null();
    if (nanos) snprintf(frac, sizeof frac, ".%09d", nanos);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return json_string(buf);
}

static json_t *value_json(const Google__Protobuf__Value *v)
{
    switch (v->kind_case) {
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
        return double_json(v->number_value);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
        return json_string(v->string_value ? v->string_value : "");
    case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
        return json_boolean(v->bool_value);
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return v->struct_value ? message_json(&v->struct_value->base) : json_object();
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
        return v->list_value ? message_json(&v->list_value->base) : json_array();
    default:
        return json_null();
    }
}

static json_t *any_json(const Google__Protobuf__Any *any)
{
    json_t *o = json_object();
    const char *url = any->type_url ? any->type_url : "";
    json_object_set_new(o, "@type", json_string(url));
    const ProtobufCMessageDescriptor *d = xds_registry_find(url);
    ProtobufCMessage *inner =
        d ? protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data) : NULL;
    if (!inner) {
        char *enc = xds_base64_encode(any->value.data, any->value.len);
        json_object_set_new(o, "value", json_string(enc));
        free(enc);
        return o;
    }
    json_t *body = message_json(inner);
    if (xds_wkt_of(d) != XDS_WKT_NONE)
        json_object_set_new(o, "value", body);
    else {
        json_object_update(o, body);
        json_decref(body);
    }
    protobuf_c_message_free_unpacked(inner, NULL);
    return o;
}

static json_t *wkt_json(const ProtobufCMessage *m, enum xds_wkt wkt)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    switch (wkt) {
    case XDS_WKT_ANY:
        return any_json((const Google__Protobuf__Any *)m);
    case XDS_WKT_DURATION:
    case XDS_WKT_TIMESTAMP: {
        const Google__Protobuf__Duration *t = (const Google__Protobuf__Duration *)m;
        return wkt == XDS_WKT_DURATION ? duration_json(t->seconds, t->nanos)
                                       : timestamp_json(t->seconds, t->nanos);
    }
    case XDS_WKT_WRAPPER:
        return scalar_json(xds_field_ptr(m, &d->fields[0]), &d->fields[0]);
    case XDS_WKT_VALUE:
        return value_json((const Google__Protobuf__Value *)m);
    case XDS_WKT_STRUCT: {
        const Google__Protobuf__Struct *s = (const Google__Protobuf__Struct *)m;
        json_t *o = json_object();
        for (size_t i = 0; i < s->n_fields; i++)
            json_object_set_new(o, s->fields[i]->key ? s->fields[i]->key : "",
                                s->fields[i]->value ? value_json(s->fields[i]->value)
                                                    : json_null());
        return o;
    }
    case XDS_WKT_LIST: {
        const Google__Protobuf__ListValue *l = (const Google__Protobuf__ListValue *)m;
        json_t *a = json_array();
        for (size_t i = 0; i < l->n_values; i++) json_array_append_new(a, value_json(l->values[i]));
        return a;
    }
    case XDS_WKT_FIELDMASK: {
        const Google__Protobuf__FieldMask *fm = (const Google__Protobuf__FieldMask *)m;
        size_t len = 1;
        for (size_t i = 0; i < fm->n_paths; i++) len += strlen(fm->paths[i]) + 1;
        char *buf = calloc(1, len), *w = buf;
        if (!buf) abort();
        for (size_t i = 0; i < fm->n_paths; i++) {
            if (i) *w++ = ',';
            xds_json_name(fm->paths[i], w, len - (size_t)(w - buf));
            w += strlen(w);
        }
        json_t *j = json_string(buf);
        free(buf);
        return j;
    }
    default:
        return NULL;
    }
}

static json_t *map_json(const ProtobufCMessage *const *entries, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageDescriptor *ed = entries[i]->descriptor;
        json_t *k = scalar_json(xds_field_ptr(entries[i], &ed->fields[0]), &ed->fields[0]);
        char buf[32];
        const char *key = buf;
        if (json_is_string(k))
            key = json_string_value(k);
        else if (json_is_integer(k))
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
        else
            snprintf(buf, sizeof buf, "%s", json_is_true(k) ? "true" : "false");
        json_object_set_new(o, key,
                            scalar_json(xds_field_ptr(entries[i], &ed->fields[1]), &ed->fields[1]));
        json_decref(k);
    }
    return o;
}

static json_t *field_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *p = xds_field_ptr(m, f);
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return scalar_json(p, f);
    size_t n = *(const size_t *)xds_quant_ptr(m, f);
    const char *arr = *(char *const *)p;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && xds_is_map_entry(f->descriptor))
        return map_json((const ProtobufCMessage *const *)arr, n);
    json_t *a = json_array();
    size_t sz = xds_elem_size(f->type);
    for (size_t i = 0; i < n; i++) json_array_append_new(a, scalar_json(arr + i * sz, f));
    return a;
}

static json_t *message_json(const ProtobufCMessage *m)
{
    enum xds_wkt wkt = xds_wkt_of(m->descriptor);
    if (wkt != XDS_WKT_NONE) return wkt_json(m, wkt);
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char name[256];
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!xds_field_present(m, f)) continue;
        xds_json_name(f->name, name, sizeof name);
        json_object_set_new(o, name, field_json(m, f));
    }
    return o;
}

json_t *xds_to_json(const ProtobufCMessage *m)
{
    return m ? message_json(m) : json_null();
}
