/* Descriptor-driven MergeFrom: how --config-yaml is layered over the bootstrap file. */
#include "xds/pbmerge.h"

#include <stdlib.h>
#include <string.h>

#include "xds/pbutil.h"

/* Copies one element of type f->type from src to dst (dst holds nothing that needs freeing). */
static void copy_value(void *dst, const void *src, const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)src;
        *(char **)dst = s == f->default_value ? (char *)s : xds_strndup(s, strlen(s));
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *s = src;
        ProtobufCBinaryData *d = dst;
        d->len = s->len;
        d->data = malloc(s->len ? s->len : 1);
        if (!d->data) abort();
        if (s->len) memcpy(d->data, s->data, s->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *s = *(ProtobufCMessage *const *)src;
        *(ProtobufCMessage **)dst = s ? xds_copy(s) : NULL;
        break;
    }
    default:
        memcpy(dst, src, xds_elem_size(f->type));
    }
}

static int same_key(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    const ProtobufCFieldDescriptor *k = &a->descriptor->fields[0];
    const void *pa = xds_field_ptr(a, k), *pb = xds_field_ptr(b, k);
    if (k->type == PROTOBUF_C_TYPE_STRING) {
        const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;
        return strcmp(sa ? sa : "", sb ? sb : "") == 0;
    }
    return memcmp(pa, pb, xds_elem_size(k->type)) == 0;
}

static void merge_repeated(ProtobufCMessage *dst, const ProtobufCMessage *src,
                           const ProtobufCFieldDescriptor *f)
{
    size_t n = *(const size_t *)xds_quant_ptr(src, f);
    const char *arr = *(char *const *)xds_field_ptr(src, f);
    size_t sz = xds_elem_size(f->type);
    int is_map = f->type == PROTOBUF_C_TYPE_MESSAGE && xds_is_map_entry(f->descriptor);
    for (size_t i = 0; i < n; i++) {
        const void *elem = arr + i * sz;
        if (is_map) {
            const ProtobufCMessage *e = *(ProtobufCMessage *const *)elem;
            size_t dn = *(const size_t *)xds_quant_ptr(dst, f);
            ProtobufCMessage **darr = *(ProtobufCMessage ***)xds_field_ptr(dst, f);
            size_t j = 0;
            while (j < dn && !same_key(darr[j], e)) j++;
            if (j < dn) {
                protobuf_c_message_free_unpacked(darr[j], NULL);
                darr[j] = xds_copy(e);
                continue;
            }
        }
        copy_value(xds_repeated_push(dst, f), elem, f);
    }
}

static void merge_field(ProtobufCMessage *dst, const ProtobufCMessage *src,
                        const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        merge_repeated(dst, src, f);
        return;
    }
    void *dp = xds_field_ptr(dst, f);
    const void *sp = xds_field_ptr(src, f);
    int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    if (oneof) {
        uint32_t *dc = xds_quant_ptr(dst, f);
        if (*dc != f->id && *dc != 0) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(dst->descriptor, *dc);
            if (other) xds_field_clear(dst, other);
        }
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage **)dp &&
        (!oneof || *(uint32_t *)xds_quant_ptr(dst, f) == f->id)) {
        xds_merge(*(ProtobufCMessage **)dp, *(ProtobufCMessage *const *)sp);
        return;
    }
    if (!oneof || *(uint32_t *)xds_quant_ptr(dst, f) == f->id) xds_field_clear(dst, f);
    copy_value(dp, sp, f);
    if (oneof)
        *(uint32_t *)xds_quant_ptr(dst, f) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)xds_quant_ptr(dst, f) = 1;
}

int xds_merge(ProtobufCMessage *dst, const ProtobufCMessage *src)
{
    if (!dst || !src || dst->descriptor != src->descriptor) return -1;
    const ProtobufCMessageDescriptor *d = src->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (xds_field_present(src, &d->fields[i])) merge_field(dst, src, &d->fields[i]);
    return 0;
}

ProtobufCMessage *xds_copy(const ProtobufCMessage *m)
{
    ProtobufCMessage *c = xds_message_new(m->descriptor);
    xds_merge(c, m);
    return c;
}
