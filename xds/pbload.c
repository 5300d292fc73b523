/* The descriptor-driven loader: walks an xds_node tree (doc.h) and a message descriptor side by
 * side. Every allocation is attached to the message before anything that can fail, so on error
 * the caller frees the whole message with protobuf_c_message_free_unpacked and nothing leaks. */
#include "xds/pbload.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "xds/doc.h"
#include "xds/pbutil.h"
#include "xds/registry.h"

#define MAX_DEPTH 100

struct ctx {
    unsigned flags;
    char *err;
    size_t errlen;
    size_t budget; /* node visits left: bounds the work YAML aliases can multiply */
    int depth;
    size_t plen;
    char path[1024];
};

static int load_message(struct ctx *c, const struct xds_node *n, ProtobufCMessage *m);
static int load_field(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m,
                      const ProtobufCFieldDescriptor *f);

__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->plen)
        snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
    else
        snprintf(c->err, c->errlen, "%s", msg);
    return -1;
}

/* Path segments are appended while descending and cut back to the saved length on return. */
static size_t path_push(struct ctx *c, const char *fmt, const char *s, size_t i)
{
    size_t mark = c->plen;
    int n = strcmp(fmt, "[]") == 0
                ? snprintf(c->path + mark, sizeof c->path - mark, "[%zu]", i)
                : snprintf(c->path + mark, sizeof c->path - mark, "%s%s", mark ? "." : "", s);
    c->plen = n < 0 ? mark : mark + (size_t)n;
    if (c->plen >= sizeof c->path) c->plen = sizeof c->path - 1;
    return mark;
}

static void path_pop(struct ctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = '\0';
}

static const char *kind_name(const struct xds_node *n)
{
    return n->kind == XDS_NODE_MAP ? "a mapping" : n->kind == XDS_NODE_SEQ ? "a list" : "a scalar";
}

static int is_null(const struct xds_node *n)
{
    return n->kind == XDS_NODE_SCALAR && n->style == XDS_PLAIN &&
           (n->len == 0 || strcmp(n->text, "null") == 0 || strcmp(n->text, "~") == 0 ||
            strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0);
}

static const char *type_name(ProtobufCType t)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "message",
    };
    return (unsigned)t < sizeof names / sizeof names[0] && names[t] ? names[t] : "?";
}

/* ---- scalars ---- */

static int parse_double(const char *s, double *out)
{
    static const struct {
        const char *text;
        double v;
    } special[] = {{"Infinity", INFINITY}, {"-Infinity", -INFINITY}, {"NaN", NAN},
                   {".inf", INFINITY},     {"-.inf", -INFINITY},     {".nan", NAN},
                   {".Inf", INFINITY},     {"-.Inf", -INFINITY},     {".NaN", NAN}};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (strcmp(s, special[i].text) == 0) {
            *out = special[i].v;
            return 0;
        }
    }
    if (!*s || *s == ' ') return -1;
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *end || errno == ERANGE ? -1 : 0;
}

/* Integers as JSON numbers or strings; an integral float ("1e3", "5.0") is accepted too. */
static int parse_int(const char *s, int is_signed, long long lo, unsigned long long hi,
                     unsigned long long *out)
{
    char *end;
    if (!*s || *s == ' ' || *s == '+') return -1;
    errno = 0;
    if (is_signed) {
        long long v = strtoll(s, &end, 10);
        if (!*end && !errno) {
            if (v < lo || (v > 0 && (unsigned long long)v > hi)) return -1;
            *out = (unsigned long long)v;
            return 0;
        }
    } else if (*s != '-') {
        unsigned long long v = strtoull(s, &end, 10);
        if (!*end && !errno) {
            if (v > hi) return -1;
            *out = v;
            return 0;
        }
    }
    double d;
    if (parse_double(s, &d) < 0 || d != floor(d) || d < (double)lo || d > (double)hi) return -1;
    if (d < 0) {
        *out = (unsigned long long)(long long)d;
    } else {
        if (d >= 18446744073709551616.0) return -1;
        *out = (unsigned long long)d;
    }
    return 0;
}

static int parse_bool(const char *s, protobuf_c_boolean *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Parses scalar node v as type f->type into *dst (one element of that type). Strings and bytes
 * are allocated; dst is overwritten without freeing. */
static int parse_scalar(struct ctx *c, const struct xds_node *v, const ProtobufCFieldDescriptor *f,
                        void *dst)
{
    if (v->kind != XDS_NODE_SCALAR)
        return fail(c, "expected %s, got %s",
                    f->type == PROTOBUF_C_TYPE_ENUM
                        ? ((const ProtobufCEnumDescriptor *)f->descriptor)->name
                        : type_name(f->type),
                    kind_name(v));
    unsigned long long u;
    double d;
    const char *s = v->text;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (parse_int(s, 1, INT32_MIN, INT32_MAX, &u) < 0) goto bad;
        *(int32_t *)dst = (int32_t)(long long)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (parse_int(s, 1, INT64_MIN, INT64_MAX, &u) < 0) goto bad;
        *(int64_t *)dst = (int64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (parse_int(s, 0, 0, UINT32_MAX, &u) < 0) goto bad;
        *(uint32_t *)dst = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (parse_int(s, 0, 0, UINT64_MAX, &u) < 0) goto bad;
        *(uint64_t *)dst = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (parse_double(s, &d) < 0) goto bad;
        *(float *)dst = (float)d;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (parse_double(s, &d) < 0) goto bad;
        *(double *)dst = d;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (parse_bool(s, dst) < 0) goto bad;
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (!ev && parse_int(s, 1, INT32_MIN, INT32_MAX, &u) == 0)
            ev = protobuf_c_enum_descriptor_get_value(ed, (int)(long long)u);
        if (!ev) return fail(c, "unknown enum value \"%s\" for %s", s, ed->name);
        *(int *)dst = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING:
        *(char **)dst = xds_strndup(s, v->len);
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = dst;
        if (xds_base64_decode(s, v->len, &b->data, &b->len) < 0)
            return fail(c, "bad base64 value \"%s\"", s);
        return 0;
    }
    default:
        return fail(c, "unsupported field type");
    }
bad:
    return fail(c, "bad %s value \"%s\"", type_name(f->type), s);
}

/* ---- well-known types ---- */

static int parse_duration(const char *s, int64_t *secs, int32_t *nanos)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') neg = 1, p++;
    if (*p < '0' || *p > '9') return -1;
    int64_t sec = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (sec > 315576000000LL) return -1; /* the range Duration allows, about 10,000 years */
        sec = sec * 10 + (*p - '0');
    }
    int32_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9) ns = ns * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 9; digits++) ns *= 10;
    }
    if (strcmp(p, "s") != 0 || sec > 315576000000LL) return -1;
    *secs = neg ? -sec : sec;
    *nanos = neg ? -ns : ns;
    return 0;
}

static int parse_timestamp(const char *s, int64_t *secs, int32_t *nanos)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -1;
    const char *p = s + 11;
    if (sscanf(p, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 8)
        return -1;
    p += 8;
    int32_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9) ns = ns * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 9; digits++) ns *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5) return -1;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *secs = (int64_t)timegm(&tm) - off;
    *nanos = ns;
    return 0;
}

static int load_value(struct ctx *c, const struct xds_node *v, Google__Protobuf__Value *val)
{
    const ProtobufCMessageDescriptor *d = val->base.descriptor;
    ProtobufCMessage *m = &val->base;
    if (v->kind == XDS_NODE_MAP)
        return load_field(c, v, m, protobuf_c_message_descriptor_get_field(d, 5));
    if (v->kind == XDS_NODE_SEQ)
        return load_field(c, v, m, protobuf_c_message_descriptor_get_field(d, 6));
    xds_field_clear(
        m, protobuf_c_message_descriptor_get_field(d, val->kind_case ? val->kind_case : 1));
    double num;
    protobuf_c_boolean b;
    if (v->style == XDS_QUOTED) {
        val->string_value = xds_strndup(v->text, v->len);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    } else if (is_null(v)) {
        val->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    } else if (parse_bool(v->text, &b) == 0) {
        val->bool_value = b;
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    } else if (parse_double(v->text, &num) == 0) {
        val->number_value = num;
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    } else {
        val->string_value = xds_strndup(v->text, v->len);
        val->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    }
    return 0;
}

static const struct xds_node *map_get(const struct xds_node *n, const char *key)
{
    for (size_t i = 0; i + 1 < n->n_kids; i += 2)
        if (n->kids[i]->kind == XDS_NODE_SCALAR && strcmp(n->kids[i]->text, key) == 0)
            return n->kids[i + 1];
    return NULL;
}

static int load_pairs(struct ctx *c, const struct xds_node *n, ProtobufCMessage *m, int is_any);

static int load_any(struct ctx *c, const struct xds_node *v, Google__Protobuf__Any *any)
{
    if (v->kind != XDS_NODE_MAP)
        return fail(c, "expected a mapping for google.protobuf.Any, got %s", kind_name(v));
    const struct xds_node *t = map_get(v, "@type");
    if (!t || t->kind != XDS_NODE_SCALAR) return fail(c, "google.protobuf.Any without \"@type\"");
    const ProtobufCMessageDescriptor *d = xds_registry_find_n(t->text, t->len);
    if (!d || memchr(t->text, '/', t->len) == NULL) return fail(c, "unknown @type \"%s\"", t->text);
    ProtobufCMessage *inner = xds_message_new(d);
    int rc;
    enum xds_wkt wkt = xds_wkt_of(d);
    if (wkt != XDS_WKT_NONE) {
        /* proto3 JSON: a well-known type inside Any is {"@type": ..., "value": <its JSON>}. */
        const struct xds_node *val = map_get(v, "value");
        rc = val ? load_message(c, val, inner) : 0;
    } else {
        rc = load_pairs(c, v, inner, 1);
    }
    if (rc == 0) {
        size_t len = protobuf_c_message_get_packed_size(inner);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) abort();
        protobuf_c_message_pack(inner, buf);
        const ProtobufCMessageDescriptor *ad = any->base.descriptor;
        xds_field_clear(&any->base, &ad->fields[0]);
        xds_field_clear(&any->base, &ad->fields[1]);
        any->type_url = xds_strndup(t->text, t->len);
        any->value.data = buf;
        any->value.len = len;
    }
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

/* Returns 1 if the message was loaded as a well-known type, 0 if it is an ordinary message,
 * -1 on error. */
static int load_wkt(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    enum xds_wkt wkt = xds_wkt_of(d);
    if (wkt == XDS_WKT_NONE) return 0;
    if (wkt == XDS_WKT_ANY) return load_any(c, v, (Google__Protobuf__Any *)m) < 0 ? -1 : 1;
    if (wkt == XDS_WKT_VALUE) return load_value(c, v, (Google__Protobuf__Value *)m) < 0 ? -1 : 1;
    if (wkt == XDS_WKT_STRUCT) {
        if (v->kind != XDS_NODE_MAP)
            return fail(c, "expected a mapping for google.protobuf.Struct, got %s", kind_name(v));
        return load_field(c, v, m, &d->fields[0]) < 0 ? -1 : 1;
    }
    if (wkt == XDS_WKT_LIST) {
        if (v->kind != XDS_NODE_SEQ)
            return fail(c, "expected a list for google.protobuf.ListValue, got %s", kind_name(v));
        return load_field(c, v, m, &d->fields[0]) < 0 ? -1 : 1;
    }
    if (v->kind != XDS_NODE_SCALAR) return 0; /* the plain message form, e.g. {seconds: 5} */
    if (wkt == XDS_WKT_WRAPPER) return load_field(c, v, m, &d->fields[0]) < 0 ? -1 : 1;
    if (wkt == XDS_WKT_DURATION || wkt == XDS_WKT_TIMESTAMP) {
        Google__Protobuf__Duration *t = (Google__Protobuf__Duration *)m; /* same layout */
        int rc = wkt == XDS_WKT_DURATION ? parse_duration(v->text, &t->seconds, &t->nanos)
                                         : parse_timestamp(v->text, &t->seconds, &t->nanos);
        if (rc < 0)
            return fail(c, "bad %s \"%s\"", wkt == XDS_WKT_DURATION ? "duration" : "timestamp",
                        v->text);
        return 1;
    }
    /* FieldMask: "a.b,fooBar" with lowerCamel path components. */
    const char *p = v->text;
    while (*p) {
        size_t n = strcspn(p, ",");
        char *path = malloc(2 * n + 1), *w = path;
        if (!path) abort();
        for (size_t i = 0; i < n; i++) {
            if (p[i] >= 'A' && p[i] <= 'Z') {
                *w++ = '_';
                *w++ = (char)(p[i] - 'A' + 'a');
            } else {
                *w++ = p[i];
            }
        }
        *w = '\0';
        *(char **)xds_repeated_push(m, &d->fields[0]) = path;
        p += n + (p[n] == ',');
    }
    return 1;
}

/* ---- messages and fields ---- */

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (f) return f;
    char json[256];
    for (unsigned i = 0; i < d->n_fields; i++) {
        xds_json_name(d->fields[i].name, json, sizeof json);
        if (strcmp(json, key) == 0) return &d->fields[i];
    }
    /* Fields renamed at generation time to dodge C clashes (Runtime.base -> base_). */
    size_t n = strlen(key);
    if (n + 2 <= sizeof json) {
        memcpy(json, key, n);
        memcpy(json + n, "_", 2);
        return protobuf_c_message_descriptor_get_field_by_name(d, json);
    }
    return NULL;
}

/* Sets the oneof case to f, failing if another member of the same oneof is already set. */
static int claim_oneof(struct ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    uint32_t *cs = xds_quant_ptr(m, f);
    if (*cs == f->id) {
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) xds_field_clear(m, f);
    } else if (*cs != 0) {
        const ProtobufCFieldDescriptor *other =
            protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)*cs);
        return fail(c, "conflicts with \"%s\": both are members of one oneof",
                    other ? other->name : "?");
    }
    return 0;
}

static int load_single(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m,
                       const ProtobufCFieldDescriptor *f)
{
    int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    if (oneof && claim_oneof(c, m, f) < 0) return -1;
    void *p = xds_field_ptr(m, f);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **sub = p;
        if (!*sub) *sub = xds_message_new(f->descriptor);
        if (oneof) *(uint32_t *)xds_quant_ptr(m, f) = f->id;
        return load_message(c, v, *sub);
    }
    union {
        uint64_t u64;
        double d;
        char *s;
        ProtobufCBinaryData b;
    } tmp = {0};
    if (parse_scalar(c, v, f, &tmp) < 0) return -1;
    if (!oneof) xds_field_clear(m, f);
    memcpy(p, &tmp, xds_elem_size(f->type));
    if (oneof)
        *(uint32_t *)xds_quant_ptr(m, f) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)xds_quant_ptr(m, f) = 1;
    return 0;
}

static int load_elem(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m,
                     const ProtobufCFieldDescriptor *f)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *sub = xds_message_new(f->descriptor);
        *(ProtobufCMessage **)xds_repeated_push(m, f) = sub;
        return load_message(c, v, sub);
    }
    union {
        uint64_t u64;
        double d;
        char *s;
        ProtobufCBinaryData b;
    } tmp = {0};
    if (parse_scalar(c, v, f, &tmp) < 0) return -1;
    memcpy(xds_repeated_push(m, f), &tmp, xds_elem_size(f->type));
    return 0;
}

static int load_map(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m,
                    const ProtobufCFieldDescriptor *f)
{
    if (v->kind != XDS_NODE_MAP) return fail(c, "expected a mapping, got %s", kind_name(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    for (size_t i = 0; i + 1 < v->n_kids; i += 2) {
        const struct xds_node *k = v->kids[i], *val = v->kids[i + 1];
        size_t mark = path_push(c, ".", k->kind == XDS_NODE_SCALAR ? k->text : "?", 0);
        ProtobufCMessage *entry = xds_message_new(ed);
        *(ProtobufCMessage **)xds_repeated_push(m, f) = entry;
        int rc = load_single(c, k, entry, &ed->fields[0]);
        if (rc == 0 && (!is_null(val) || ed->fields[1].type == PROTOBUF_C_TYPE_MESSAGE))
            rc = load_single(c, val, entry, &ed->fields[1]);
        path_pop(c, mark);
        if (rc < 0) return -1;
    }
    return 0;
}

static int load_field(struct ctx *c, const struct xds_node *v, ProtobufCMessage *m,
                      const ProtobufCFieldDescriptor *f)
{
    if (c->budget == 0) return fail(c, "document too large (aliases expand too far)");
    c->budget--;
    int is_value = f->type == PROTOBUF_C_TYPE_MESSAGE && xds_wkt_of(f->descriptor) == XDS_WKT_VALUE;
    /* proto3 JSON: null means "not set", except for a google.protobuf.Value (null_value). */
    if (is_null(v) && !is_value) return 0;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return load_single(c, v, m, f);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && xds_is_map_entry(f->descriptor))
        return load_map(c, v, m, f);
    if (v->kind != XDS_NODE_SEQ) return fail(c, "expected a list, got %s", kind_name(v));
    for (size_t i = 0; i < v->n_kids; i++) {
        size_t mark = path_push(c, "[]", NULL, i);
        int rc = load_elem(c, v->kids[i], m, f);
        path_pop(c, mark);
        if (rc < 0) return -1;
    }
    return 0;
}

static int load_pairs(struct ctx *c, const struct xds_node *n, ProtobufCMessage *m, int is_any)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* a field given twice (the same key, or its name and its json_name) is refused: a YAML
     * loader keeping the last one lets a typo silently drop a block */
    uint64_t seen_small[4] = {0}, *seen = seen_small;
    if (d->n_fields > 256 && !(seen = calloc((d->n_fields + 63) / 64, sizeof *seen)))
        return fail(c, "out of memory");
    int ret = 0;
    for (size_t i = 0; i + 1 < n->n_kids && ret == 0; i += 2) {
        const struct xds_node *k = n->kids[i], *v = n->kids[i + 1];
        if (k->kind != XDS_NODE_SCALAR) {
            ret = fail(c, "mapping key is %s", kind_name(k));
            break;
        }
        if (is_any && strcmp(k->text, "@type") == 0) continue;
        if (k->style == XDS_PLAIN && strcmp(k->text, "<<") == 0) {
            /* YAML merge key: the merged mappings' fields load as if written here (keys written
             * here may then override them: they are counted apart) */
            if (v->kind == XDS_NODE_SEQ)
                for (size_t j = 0; j < v->n_kids && ret == 0; j++)
                    ret = load_message(c, v->kids[j], m);
            else
                ret = load_message(c, v, m);
            continue;
        }
        const ProtobufCFieldDescriptor *f = find_field(d, k->text);
        size_t mark = path_push(c, ".", k->text, 0);
        if (f) {
            size_t fi = (size_t)(f - d->fields);
            if (seen[fi / 64] >> (fi % 64) & 1)
                ret = fail(c, "field \"%s\" given twice", f->name);
            else
                ret = load_field(c, v, m, f);
            seen[fi / 64] |= 1ull << (fi % 64);
        } else if (!(c->flags & XDS_LOAD_ALLOW_UNKNOWN)) {
            ret = fail(c, "unknown field \"%s\" in %s", k->text, d->name);
        }
        path_pop(c, mark);
    }
    if (seen != seen_small) free(seen);
    return ret < 0 ? -1 : 0;
}

static int load_message(struct ctx *c, const struct xds_node *n, ProtobufCMessage *m)
{
    if (c->depth >= MAX_DEPTH) return fail(c, "nesting deeper than %d", MAX_DEPTH);
    if (c->budget == 0) return fail(c, "document too large (aliases expand too far)");
    c->budget--;
    c->depth++;
    int rc = load_wkt(c, n, m);
    if (rc == 0) {
        if (n->kind != XDS_NODE_MAP)
            rc = fail(c, "expected a mapping for %s, got %s%s%s%s", m->descriptor->name,
                      kind_name(n), n->kind == XDS_NODE_SCALAR ? " \"" : "",
                      n->kind == XDS_NODE_SCALAR ? n->text : "",
                      n->kind == XDS_NODE_SCALAR ? "\"" : "");
        else
            rc = load_pairs(c, n, m, 0);
    }
    c->depth--;
    return rc < 0 ? -1 : 0;
}

int xds_load_doc_into(ProtobufCMessage *msg, const struct xds_doc *doc, unsigned flags, char *err,
                      size_t errlen)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->flags = flags;
    c->err = err;
    c->errlen = errlen;
    /* Aliases share nodes, so a small document can describe a huge tree: cap the visits at a
     * multiple of the nodes actually parsed. */
    c->budget = 16 * xds_doc_node_count(doc) + 10000;
    const struct xds_node *root = xds_doc_root(doc);
    int rc = is_null(root) ? 0 : load_message(c, root, msg);
    free(c);
    return rc;
}

typedef struct xds_doc *(*parse_fn)(const char *, size_t, char *, size_t);

static int load_into(parse_fn parse, ProtobufCMessage *msg, const char *text, size_t len,
                     unsigned flags, char *err, size_t errlen)
{
    struct xds_doc *doc = parse(text, len, err, errlen);
    if (!doc) return -1;
    int rc = xds_load_doc_into(msg, doc, flags, err, errlen);
    xds_doc_free(doc);
    return rc;
}

int xds_load_yaml_into(ProtobufCMessage *msg, const char *text, size_t len, unsigned flags,
                       char *err, size_t errlen)
{
    return load_into(xds_doc_parse_yaml, msg, text, len, flags, err, errlen);
}

int xds_load_json_into(ProtobufCMessage *msg, const char *text, size_t len, unsigned flags,
                       char *err, size_t errlen)
{
    return load_into(xds_doc_parse_json, msg, text, len, flags, err, errlen);
}

static ProtobufCMessage *load_new(parse_fn parse, const ProtobufCMessageDescriptor *d,
                                  const char *text, size_t len, unsigned flags, char *err,
                                  size_t errlen)
{
    ProtobufCMessage *m = xds_message_new(d);
    if (load_into(parse, m, text, len, flags, err, errlen) < 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

ProtobufCMessage *xds_load_yaml(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                                unsigned flags, char *err, size_t errlen)
{
    return load_new(xds_doc_parse_yaml, d, text, len, flags, err, errlen);
}

ProtobufCMessage *xds_load_json(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                                unsigned flags, char *err, size_t errlen)
{
    return load_new(xds_doc_parse_json, d, text, len, flags, err, errlen);
}
