/* Bootstrap loading: file reading and format choice on top of the generic loader. */
#include "xds/bootstrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/pbmerge.h"

#define MAX_BOOTSTRAP_BYTES (64u << 20)

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) goto fail;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > MAX_BOOTSTRAP_BYTES) {
                errno = EFBIG;
                goto fail;
            }
            char *nb = realloc(buf, cap + 1);
            if (!nb) abort();
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) goto fail;
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno ? errno : EIO));
    if (f) fclose(f);
    free(buf);
    return NULL;
}

static int is_json_path(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

xds_bootstrap *xds_bootstrap_load_file(const char *path, unsigned flags, char *err, size_t errlen)
{
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return NULL;
    const ProtobufCMessageDescriptor *d = &envoy__config__bootstrap__v3__bootstrap__descriptor;
    ProtobufCMessage *m = is_json_path(path) ? xds_load_json(d, text, len, flags, err, errlen)
                                             : xds_load_yaml(d, text, len, flags, err, errlen);
    free(text);
    return (xds_bootstrap *)m;
}

xds_bootstrap *xds_bootstrap_load_yaml_string(const char *yaml, unsigned flags, char *err,
                                              size_t errlen)
{
    return (xds_bootstrap *)xds_load_yaml(&envoy__config__bootstrap__v3__bootstrap__descriptor,
                                          yaml, strlen(yaml), flags, err, errlen);
}

xds_bootstrap *xds_bootstrap_load(const char *path, const char *config_yaml, unsigned flags,
                                  char *err, size_t errlen)
{
    if (!path && !config_yaml) {
        snprintf(err, errlen, "no bootstrap: give a file or a YAML string");
        return NULL;
    }
    xds_bootstrap *b = path ? xds_bootstrap_load_file(path, flags, err, errlen) : NULL;
    if (path && !b) return NULL;
    if (!config_yaml) return b;
    xds_bootstrap *over = xds_bootstrap_load_yaml_string(config_yaml, flags, err, errlen);
    if (!over || !b) {
        xds_bootstrap_free(b);
        return over;
    }
    xds_bootstrap_merge(b, over);
    xds_bootstrap_free(over);
    return b;
}

void xds_bootstrap_merge(xds_bootstrap *dst, const xds_bootstrap *src)
{
    xds_merge(&dst->base, &src->base);
}

void xds_bootstrap_free(xds_bootstrap *b)
{
    if (b) protobuf_c_message_free_unpacked(&b->base, NULL);
}
