/* Fuzzes the bootstrap loader: the same bytes as YAML and as JSON, and the to_json renderer on
 * whatever loads. Every result is freed, so leaks show up under ASan. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "xds/bootstrap.h"
#include "xds/pbjson.h"
#include "xds/pbload.h"

static void render(ProtobufCMessage *m)
{
    if (!m) return;
    json_t *j = xds_to_json(m);
    char *s = json_dumps(j, JSON_COMPACT);
    free(s);
    json_decref(j);
    protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *d = &envoy__config__bootstrap__v3__bootstrap__descriptor;
    char err[256];
    const char *text = (const char *)data;
    render(xds_load_yaml(d, text, size, 0, err, sizeof err));
    render(xds_load_yaml(d, text, size, XDS_LOAD_ALLOW_UNKNOWN, err, sizeof err));
    render(xds_load_json(d, text, size, 0, err, sizeof err));
    return 0;
}
