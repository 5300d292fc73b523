/* Request path normalization (see path.h). Three passes over the caller's output buffer, each
 * writing at or behind where it reads, so no scratch memory is needed:
 *
 *   1. decode:   in -> out. Escaped slashes per path_with_escaped_slashes_action; with
 *                normalize_path, %XX of unreserved characters decoded, other %xx upper-cased,
 *                '\\' taken for '/', malformed %-encoding and %00 rejected.
 *   2. dots:     in place, RFC 3986 §5.2.4 remove_dot_segments (normalize_path only).
 *   3. merge:    in place, runs of '/' collapsed (merge_slashes only).
 *
 * then the query is appended untouched. Envoy applies the same steps in the same order
 * (escaped slashes, then normalize_path, then merge_slashes), which matters: "/a//../b" is
 * "/a/b" in that order and would be "/b" if slashes were merged first. */
#include "sidecar/path.h"

#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static char hex_upper(char c)
{
    return c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
}

/* RFC 3986 §2.3: the characters whose percent-encoding is equivalent to the character itself. */
static bool is_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* The character an escaped slash at p stands for ('/' for %2F, '\\' for %5C, either case), or 0.
 * p points at a '%' with at least `left` bytes from it. */
static char escaped_slash(const char *p, size_t left)
{
    if (left < 3) return 0;
    if (p[1] == '2' && (p[2] | 0x20) == 'f') return '/';
    if (p[1] == '5' && (p[2] | 0x20) == 'c') return '\\';
    return 0;
}

struct decoder {
    const char *in;
    size_t len;
    const struct rs_path_opts *o;
    char *out;
    size_t cap, n;
    bool saw_escaped_slash;
    bool overflow; /* out filled up: decoding goes on only to find a reason to reject */
};

static void put(struct decoder *d, char c)
{
    if (d->n == d->cap)
        d->overflow = true;
    else
        d->out[d->n++] = c;
}

/* Decodes the %-sequence at in[*i] into out, advancing *i; fails only with RS_PATH_REJECT. */
static enum rs_path_result decode_percent(struct decoder *d, size_t *i)
{
    const char *p = d->in + *i;
    size_t left = d->len - *i;
    char slash = escaped_slash(p, left);
    if (slash && d->o->escaped_slashes == RS_PATH_SLASHES_REJECT) return RS_PATH_REJECT;
    if (slash && d->o->escaped_slashes != RS_PATH_SLASHES_KEEP) {
        d->saw_escaped_slash = true;
        *i += 3;
        /* An unescaped %5C is a backslash like any other: normalize_path turns it into '/'. */
        if (slash == '\\' && d->o->normalize) slash = '/';
        put(d, slash);
        return RS_PATH_OK;
    }
    if (!d->o->normalize) {
        *i += 1;
        put(d, '%');
        return RS_PATH_OK;
    }
    int hi = left >= 3 ? hex_value((unsigned char)p[1]) : -1;
    int lo = left >= 3 ? hex_value((unsigned char)p[2]) : -1;
    /* A '%' not followed by two hex digits cannot be normalized; %00 would end the path for a
     * C upstream and Istio documents it as always rejected. */
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return RS_PATH_REJECT;
    *i += 3;
    int c = hi << 4 | lo;
    if (is_unreserved(c)) {
        put(d, (char)c);
        return RS_PATH_OK;
    }
    /* §6.2.2.1: hex digits of an encoding that stays are upper case. */
    put(d, '%');
    put(d, hex_upper(p[1]));
    put(d, hex_upper(p[2]));
    return RS_PATH_OK;
}

static enum rs_path_result decode(struct decoder *d)
{
    for (size_t i = 0; i < d->len;) {
        char c = d->in[i];
        if (c == '%') {
            enum rs_path_result r = decode_percent(d, &i);
            if (r != RS_PATH_OK) return r;
            continue;
        }
        /* Envoy's normalize_path canonicalizes as browsers do for http URLs, where '\\' is a
         * path separator (Istio's BASE normalization documents "/some\\data" -> "/some/data"). */
        if (c == '\\' && d->o->normalize) c = '/';
        put(d, c);
        i++;
    }
    /* A malformed path is a 400 whatever the buffer, so capacity is reported only now. */
    return d->overflow ? RS_PATH_TOO_LONG : RS_PATH_OK;
}

/* Drops the last segment of p[0..w) and the '/' before it; returns the new length. */
static size_t pop_segment(const char *p, size_t w)
{
    while (w > 0 && p[w - 1] != '/') w--;
    return w > 0 ? w - 1 : 0;
}

/* RFC 3986 §5.2.4 on p[0..n), which starts with '/'. Segment by segment: "." is dropped, ".."
 * drops the segment before it (never above the root), and either one at the end leaves a
 * trailing '/' ("/a/." -> "/a/", "/a/b/.." -> "/a/"). Returns the new length. */
static size_t remove_dot_segments(char *p, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        const char *slash = memchr(p + r + 1, '/', n - r - 1);
        size_t e = slash ? (size_t)(slash - p) : n; /* the segment is p[r+1..e) */
        size_t seg = e - r - 1;
        bool dot = seg == 1 && p[r + 1] == '.';
        bool dotdot = seg == 2 && p[r + 1] == '.' && p[r + 2] == '.';
        if (dot || dotdot) {
            if (dotdot) w = pop_segment(p, w);
            if (e == n) p[w++] = '/';
        } else {
            memmove(p + w, p + r, e - r);
            w += e - r;
        }
        r = e;
    }
    return w;
}

static size_t merge_slashes(char *p, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++)
        if (!(p[r] == '/' && w > 0 && p[w - 1] == '/')) p[w++] = p[r];
    return w;
}

enum rs_path_result rs_path_normalize(const char *in, size_t len, const struct rs_path_opts *o,
                                      char *out, size_t cap, size_t *out_len)
{
    if (len == 0 || in[0] != '/') return RS_PATH_REJECT;
    const char *q = memchr(in, '?', len);
    size_t path_len = q ? (size_t)(q - in) : len;
    size_t query_len = len - path_len;

    struct decoder d = {.in = in, .len = path_len, .o = o, .out = out, .cap = cap};
    enum rs_path_result r = decode(&d);
    if (r != RS_PATH_OK) return r;
    size_t n = d.n;
    if (o->normalize) n = remove_dot_segments(out, n);
    if (o->merge_slashes) n = merge_slashes(out, n);
    if (query_len > cap - n) return RS_PATH_TOO_LONG;
    memcpy(out + n, in + path_len, query_len);
    *out_len = n + query_len;

    /* Envoy redirects only when there was something to unescape; otherwise the request goes on
     * with whatever normalization did. */
    if (d.saw_escaped_slash && o->escaped_slashes == RS_PATH_SLASHES_UNESCAPE_AND_REDIRECT)
        return RS_PATH_REDIRECT;
    if (n == path_len && memcmp(out, in, n) == 0) return RS_PATH_UNCHANGED;
    return RS_PATH_OK;
}
