/* libFuzzer target for sidecar/path.c: the input is a request-target, normalized under every
 * combination of normalize_path, merge_slashes and path_with_escaped_slashes_action into a heap
 * buffer of exactly len bytes (and of half that), so ASan sees any write past cap and libFuzzer's
 * exact-size input any read past len. Aborts when a property breaks: cap >= len never gives
 * TOO_LONG, the output is no longer than the input and starts with '/', the query is unchanged,
 * no dot-segment (normalize) or double slash (merge) is left, UNCHANGED means equal, and a second
 * pass over the output changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/path.h"

static void check_segments(const char *p, size_t n, const struct rs_path_opts *o)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/') continue;
        if (o->merge_slashes && i + 1 < n && p[i + 1] == '/') abort();
        if (!o->normalize) continue;
        size_t s = i + 1, e = s;
        while (e < n && p[e] != '/') e++;
        if (e - s == 1 && p[s] == '.') abort();
        if (e - s == 2 && p[s] == '.' && p[s + 1] == '.') abort();
    }
}

static void check(const char *in, size_t len, const struct rs_path_opts *o)
{
    char *out = malloc(len ? len : 1), *again = malloc(len ? len : 1);
    if (!out || !again) abort();
    size_t n = 0, n2 = 0;
    enum rs_path_result r = rs_path_normalize(in, len, o, out, len, &n);
    if (r == RS_PATH_TOO_LONG) abort();
    if (r == RS_PATH_REJECT) goto done;
    if (n > len || n == 0 || out[0] != '/') abort();
    bool same = n == len && memcmp(out, in, n) == 0;
    if ((r == RS_PATH_UNCHANGED) != same && r != RS_PATH_REDIRECT) abort();
    /* %3F is never decoded, so the output's first '?' is where its query starts. */
    const char *q = memchr(out, '?', n), *qin = memchr(in, '?', len);
    size_t path = q ? (size_t)(q - out) : n, in_path = qin ? (size_t)(qin - in) : len;
    if (n - path != len - in_path || memcmp(out + path, in + in_path, n - path) != 0) abort();
    check_segments(out, path, o);
    if (rs_path_normalize(out, n, o, again, n, &n2) != RS_PATH_UNCHANGED) abort();
done:
    free(out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    for (int m = 0; m < 16; m++) {
        struct rs_path_opts o = {m & 1, (m >> 1) & 1, (enum rs_path_slashes)(m >> 2)};
        check(in, size, &o);
        /* A short buffer: whatever comes back, nothing is written past it. */
        size_t cap = size / 2, n = 0;
        char *small = malloc(cap ? cap : 1);
        if (!small) abort();
        enum rs_path_result r = rs_path_normalize(in, size, &o, small, cap, &n);
        if ((r == RS_PATH_OK || r == RS_PATH_UNCHANGED || r == RS_PATH_REDIRECT) && n > cap)
            abort();
        free(small);
    }
    return 0;
}
