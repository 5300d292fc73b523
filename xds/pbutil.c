/* Descriptor-level helpers: well-known type detection, JSON names, field presence, clearing and
 * growth, base64. */
#include "xds/pbutil.h"

#include <stdlib.h>
#include <string.h>

enum xds_wkt xds_wkt_of(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum xds_wkt wkt;
    } table[] = {
        {"google.protobuf.Any", XDS_WKT_ANY},
        {"google.protobuf.Duration", XDS_WKT_DURATION},
        {"google.protobuf.Timestamp", XDS_WKT_TIMESTAMP},
        {"google.protobuf.Struct", XDS_WKT_STRUCT},
        {"google.protobuf.Value", XDS_WKT_VALUE},
        {"google.protobuf.ListValue", XDS_WKT_LIST},
        {"google.protobuf.FieldMask", XDS_WKT_FIELDMASK},
        {"google.protobuf.DoubleValue", XDS_WKT_WRAPPER},
        {"google.protobuf.FloatValue", XDS_WKT_WRAPPER},
        {"google.protobuf.Int64Value", XDS_WKT_WRAPPER},
        {"google.protobuf.UInt64Value", XDS_WKT_WRAPPER},
        {"google.protobuf.Int32Value", XDS_WKT_WRAPPER},
        {"google.protobuf.UInt32Value", XDS_WKT_WRAPPER},
        {"google.protobuf.BoolValue", XDS_WKT_WRAPPER},
        {"google.protobuf.StringValue", XDS_WKT_WRAPPER},
        {"google.protobuf.BytesValue", XDS_WKT_WRAPPER},
    };
    if (strncmp(d->name, "google.protobuf.", 16) != 0) return XDS_WKT_NONE;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(d->name, table[i].name) == 0) return table[i].wkt;
    return XDS_WKT_NONE;
}

int xds_is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->short_name);
    return n > 5 && strcmp(d->short_name + n - 5, "Entry") == 0 && d->n_fields == 2 &&
           d->fields[0].id == 1 && strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
           strcmp(d->fields[1].name, "value") == 0;
}

void xds_json_name(const char *name, char *out, size_t outlen)
{
    size_t w = 0;
    int upper = 0;
    for (; *name && w + 1 < outlen; name++) {
        if (*name == '_') {
            upper = 1;
            continue;
        }
        out[w++] = upper && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
        upper = 0;
    }
    out[w] = '\0';
}

size_t xds_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

static int scalar_nonzero(const void *p, ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p != 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p != 0;
    default: {
        size_t sz = xds_elem_size(type);
        static const uint8_t zero[8];
        return memcmp(p, zero, sz) != 0;
    }
    }
}

int xds_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *p = xds_field_ptr(m, f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)xds_quant_ptr(m, f) != 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)xds_quant_ptr(m, f) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return *(ProtobufCMessage *const *)p != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_REQUIRED) {
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(char *const *)p != NULL && *(char *const *)p != f->default_value;
        if (f->label == PROTOBUF_C_LABEL_REQUIRED) return 1;
        return *(const protobuf_c_boolean *)xds_quant_ptr(m, f);
    }
    return scalar_nonzero(p, f->type);
}

static void free_value(void *p, const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char *s = *(char **)p;
        if (s && s != f->default_value) free(s);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data && (!def || def->data != b->data)) free(b->data);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        protobuf_c_message_free_unpacked(*(ProtobufCMessage **)p, NULL);
        break;
    default:
        break;
    }
}

static void set_default(void *p, const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        *(const char **)p = f->default_value;
        return;
    case PROTOBUF_C_TYPE_BYTES:
        if (f->default_value)
            *(ProtobufCBinaryData *)p = *(const ProtobufCBinaryData *)f->default_value;
        else
            *(ProtobufCBinaryData *)p = (ProtobufCBinaryData){0, NULL};
        return;
    case PROTOBUF_C_TYPE_MESSAGE:
        *(void **)p = NULL;
        return;
    default:
        if (f->default_value)
            memcpy(p, f->default_value, xds_elem_size(f->type));
        else
            memset(p, 0, xds_elem_size(f->type));
    }
}

void xds_field_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *p = xds_field_ptr(m, f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = xds_quant_ptr(m, f);
        char *arr = *(char **)p;
        size_t sz = xds_elem_size(f->type);
        for (size_t i = 0; i < *n; i++) free_value(arr + i * sz, f);
        free(arr);
        *(void **)p = NULL;
        *n = 0;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *c = xds_quant_ptr(m, f);
        if (*c != f->id) return;
        *c = 0;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset) {
        *(protobuf_c_boolean *)xds_quant_ptr(m, f) = 0;
    }
    free_value(p, f);
    set_default(p, f);
}

ProtobufCMessage *xds_message_new(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m) abort();
    d->message_init(m);
    return m;
}

void *xds_repeated_push(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    size_t *n = xds_quant_ptr(m, f);
    char **arr = xds_field_ptr(m, f);
    size_t sz = xds_elem_size(f->type);
    char *na = realloc(*arr, (*n + 1) * sz);
    if (!na) abort();
    *arr = na;
    memset(na + *n * sz, 0, sz);
    return na + (*n)++ * sz;
}

char *xds_strndup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) abort();
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int xds_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
    while (len && s[len - 1] == '=') len--;
    if (len % 4 == 1) return -1;
    uint8_t *buf = malloc(len * 3 / 4 + 1);
    if (!buf) abort();
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[w++] = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *outlen = w;
    return 0;
}

char *xds_base64_encode(const uint8_t *data, size_t len)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1), *w = out;
    if (!out) abort();
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len) v |= data[i + 2];
        *w++ = alpha[(v >> 18) & 63];
        *w++ = alpha[(v >> 12) & 63];
        *w++ = i + 1 < len ? alpha[(v >> 6) & 63] : '=';
        *w++ = i + 2 < len ? alpha[v & 63] : '=';
    }
    *w = '\0';
    return out;
}
