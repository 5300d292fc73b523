/* libFuzzer target for sidecar/http_inspect.c: a plaintext connection's first bytes, from a heap
 * buffer of exactly their length (ASan sees any read past it). Aborts when a property breaks: a
 * decision is stable once made (more bytes never undo it), and a detected HTTP/1 protocol comes
 * from a line that really ends in the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/http_inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    const char *proto, *again;
    enum rs_http_peek r = rs_http_peek_protocol(buf, size, &proto);
    if (r == RS_HTTP_PEEK_DONE) {
        if (proto && strcmp(proto, "h2c") != 0 && !memchr(buf, '\n', size)) abort();
        /* the same bytes plus one more decide the same way */
        char *more = malloc(size + 1);
        if (!more) abort();
        memcpy(more, buf, size);
        more[size] = '\n';
        if (rs_http_peek_protocol(more, size + 1, &again) != RS_HTTP_PEEK_DONE || again != proto)
            abort();
        free(more);
    } else if (r != RS_HTTP_PEEK_NEED_MORE || proto || size >= RS_HTTP_INSPECT_MAX) {
        abort();
    }
    free(buf);
    return 0;
}
