/* libFuzzer target for the HTTP/1.1 codec: the input is parsed as a request stream whole, then
 * split in two at a point taken from its first byte (resuming on every pause, as the data plane
 * does with pipelined requests), then as a response stream ended by the peer closing. Checks that
 * body bytes always point into the current input buffer and that consumed never exceeds it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/http1.h"

struct bounds {
    const char *lo, *hi;
    int heads;
};

static int on_head(void *ud, const struct rs_h1_head *h)
{
    struct bounds *b = ud;
    for (uint32_t i = 0; i < h->nheaders; i++)
        if (h->headers[i].name_len + h->headers[i].value_len > h->header_bytes) abort();
    b->heads++;
    /* Exercise both answers: skip the body of every other response. */
    return (b->heads & 1) && h->status ? RS_H1_SKIP_BODY : 0;
}

static int on_body(void *ud, const char *at, size_t len)
{
    struct bounds *b = ud;
    if (at < b->lo || at + len > b->hi) abort();
    return 0;
}

static int on_complete(void *ud)
{
    return ((struct bounds *)ud)->heads % 3 == 0 ? RS_H1_PAUSE : 0;
}

static const struct rs_h1_callbacks cbs = {on_head, on_body, on_complete};

/* Feeds [data, data+len) in pieces split at `cut`, each in its own heap buffer so that ASan sees
 * any read past a piece. */
static void run(enum rs_h1_kind kind, const uint8_t *data, size_t len, size_t cut)
{
    static const struct rs_h1_limits lim = {4096, 32, 1 << 20};
    struct bounds b = {0};
    struct rs_h1_parser p;
    rs_h1_init(&p, kind, &lim, &cbs, &b);
    size_t off = 0;
    while (off < len) {
        size_t end = off < cut ? cut : len;
        size_t n = end - off, used = 0;
        char *piece = malloc(n ? n : 1);
        memcpy(piece, data + off, n);
        b.lo = piece;
        b.hi = piece + n;
        enum rs_h1_status st = rs_h1_execute(&p, piece, n, &used);
        free(piece);
        if (used > n) abort();
        off += used;
        if (st == RS_H1_PAUSED && !rs_h1_upgraded(&p)) {
            rs_h1_resume(&p);
            continue;
        }
        if (st != RS_H1_OK) break;
    }
    rs_h1_finish(&p);
    rs_h1_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size ? (size_t)data[0] * size / 256 : 0;
    run(RS_H1_REQUEST, data, size, size);
    run(RS_H1_REQUEST, data, size, cut);
    run(RS_H1_RESPONSE, data, size, cut);
    return 0;
}
