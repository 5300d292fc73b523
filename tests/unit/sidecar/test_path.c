/* Tests for sidecar/path.c: RFC 3986 §5.4 reference resolutions that apply to a path, Envoy's and
 * Istio's documented normalizations, every option combination, malformed %-encodings, the query
 * left alone, output capacity, and properties over random inputs. */
#include "sidecar/path.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define KEEP RS_PATH_SLASHES_KEEP
#define REJ RS_PATH_SLASHES_REJECT
#define FWD RS_PATH_SLASHES_UNESCAPE_AND_FORWARD
#define RED RS_PATH_SLASHES_UNESCAPE_AND_REDIRECT

/* normalize_path only: Istio's default BASE. */
/* clang-format off */
#define NORM {true, false, KEEP}
/* clang-format on */

struct path_case {
    struct rs_path_opts o;
    const char *in;
    enum rs_path_result want;
    const char *out; /* for OK, UNCHANGED and REDIRECT */
};

/* RFC 3986 §5.4, base "http://a/b/c/d;p?q": each reference merged with the base path ("/b/c/" +
 * ref, §5.2.3) and then normalized must give the RFC's target path. */
static const struct path_case rfc_cases[] = {
    {NORM, "/b/c/g", RS_PATH_UNCHANGED, "/b/c/g"},
    {NORM, "/b/c/./g", RS_PATH_OK, "/b/c/g"},
    {NORM, "/b/c/g/", RS_PATH_UNCHANGED, "/b/c/g/"},
    {NORM, "/b/c/g?y", RS_PATH_UNCHANGED, "/b/c/g?y"},
    {NORM, "/b/c/;x", RS_PATH_UNCHANGED, "/b/c/;x"},
    {NORM, "/b/c/g;x?y", RS_PATH_UNCHANGED, "/b/c/g;x?y"},
    {NORM, "/b/c/.", RS_PATH_OK, "/b/c/"},
    {NORM, "/b/c/./", RS_PATH_OK, "/b/c/"},
    {NORM, "/b/c/..", RS_PATH_OK, "/b/"},
    {NORM, "/b/c/../", RS_PATH_OK, "/b/"},
    {NORM, "/b/c/../g", RS_PATH_OK, "/b/g"},
    {NORM, "/b/c/../..", RS_PATH_OK, "/"},
    {NORM, "/b/c/../../", RS_PATH_OK, "/"},
    {NORM, "/b/c/../../g", RS_PATH_OK, "/g"},
    /* §5.4.2 abnormal examples: ".." above the root is dropped. */
    {NORM, "/b/c/../../../g", RS_PATH_OK, "/g"},
    {NORM, "/b/c/../../../../g", RS_PATH_OK, "/g"},
    {NORM, "/./g", RS_PATH_OK, "/g"},
    {NORM, "/../g", RS_PATH_OK, "/g"},
    {NORM, "/b/c/g.", RS_PATH_UNCHANGED, "/b/c/g."},
    {NORM, "/b/c/.g", RS_PATH_UNCHANGED, "/b/c/.g"},
    {NORM, "/b/c/g..", RS_PATH_UNCHANGED, "/b/c/g.."},
    {NORM, "/b/c/..g", RS_PATH_UNCHANGED, "/b/c/..g"},
    {NORM, "/b/c/./../g", RS_PATH_OK, "/b/g"},
    {NORM, "/b/c/./g/.", RS_PATH_OK, "/b/c/g/"},
    {NORM, "/b/c/g/./h", RS_PATH_OK, "/b/c/g/h"},
    {NORM, "/b/c/g/../h", RS_PATH_OK, "/b/c/h"},
    {NORM, "/b/c/g;x=1/./y", RS_PATH_OK, "/b/c/g;x=1/y"},
    {NORM, "/b/c/g;x=1/../y", RS_PATH_OK, "/b/c/y"},
    {NORM, "/b/c/g?y/./x", RS_PATH_UNCHANGED, "/b/c/g?y/./x"},
    {NORM, "/b/c/g?y/../x", RS_PATH_UNCHANGED, "/b/c/g?y/../x"},
    /* §5.2.4's own walk-throughs. */
    {NORM, "/a/b/c/./../../g", RS_PATH_OK, "/a/g"},
    {NORM, "/mid/content=5/../6", RS_PATH_OK, "/mid/6"},
};

static const struct path_case envoy_cases[] = {
    /* Istio's normalization page: BASE decodes unreserved escapes, takes '\' for '/', and
     * resolves dot-segments. */
    {NORM, "/some\\data", RS_PATH_OK, "/some/data"},
    {NORM, "/public/./data/abc/../xyz", RS_PATH_OK, "/public/data/xyz"},
    {NORM, "/%61%62%63", RS_PATH_OK, "/abc"},
    {NORM, "/%2d%2E%5f%7e%30%5A", RS_PATH_OK, "/-._~0Z"},
    /* §6.2.2.1: encodings that stay get upper-case hex. */
    {NORM, "/a%3ab%2fc%5c", RS_PATH_OK, "/a%3Ab%2Fc%5C"},
    {NORM, "/a%3Ab", RS_PATH_UNCHANGED, "/a%3Ab"},
    {NORM, "/%25", RS_PATH_UNCHANGED, "/%25"},
    {NORM, "/%252e", RS_PATH_UNCHANGED, "/%252e"}, /* decoded once only */
    /* Encoded dots are dots (§6.2.2.2 decodes before §6.2.2.3 removes). */
    {NORM, "/a/%2e%2E/b", RS_PATH_OK, "/b"},
    {NORM, "/a/.%2e", RS_PATH_OK, "/"},
    {NORM, "/a/%2e/b", RS_PATH_OK, "/a/b"},
    {NORM, "/a\\..\\b", RS_PATH_OK, "/b"},
    {NORM, "/", RS_PATH_UNCHANGED, "/"},
    {NORM, "/..", RS_PATH_OK, "/"},
    {NORM, "/.", RS_PATH_OK, "/"},
    {NORM, "/a/..?x=/../y", RS_PATH_OK, "/?x=/../y"},
    /* Without merge_slashes empty segments are segments: ".." removes one. */
    {NORM, "/a//../b", RS_PATH_OK, "/a/b"},
    {NORM, "//a", RS_PATH_UNCHANGED, "//a"},
    /* merge_slashes alone (Envoy's "//dir///file" example); dots and escapes left as they are. */
    {{false, true, KEEP}, "//dir///file", RS_PATH_OK, "/dir/file"},
    {{false, true, KEEP}, "/some//data///abc", RS_PATH_OK, "/some/data/abc"},
    {{false, true, KEEP}, "/a/./b/%2e%2e/%zz", RS_PATH_UNCHANGED, "/a/./b/%2e%2e/%zz"},
    {{false, true, KEEP}, "/a//b?c//d", RS_PATH_OK, "/a/b?c//d"},
    {{false, true, KEEP}, "/a\\\\b", RS_PATH_UNCHANGED, "/a\\\\b"},
    /* Both: normalization runs before merging, as in Envoy. */
    {{true, true, KEEP}, "/a//../b", RS_PATH_OK, "/a/b"},
    {{true, true, KEEP}, "//a//./b///", RS_PATH_OK, "/a/b/"},
    {{true, true, KEEP}, "/a\\\\b", RS_PATH_OK, "/a/b"},
    /* Nothing on: only the leading '/' is checked. */
    {{false, false, KEEP}, "/a/../%zz//b", RS_PATH_UNCHANGED, "/a/../%zz//b"},
    {{false, false, KEEP}, "x", RS_PATH_REJECT, NULL},
    /* Escaped slashes: KEEP leaves them (upper-cased by normalize_path). */
    {{false, false, KEEP}, "/a%2fb%5Cc", RS_PATH_UNCHANGED, "/a%2fb%5Cc"},
    {{true, true, KEEP}, "/a%2f..%2f..", RS_PATH_OK, "/a%2F..%2F.."},
    /* REJECT: any case of %2F or %5C in the path, none in the query. */
    {{false, false, REJ}, "/a%2Fb", RS_PATH_REJECT, NULL},
    {{false, false, REJ}, "/a%5cb", RS_PATH_REJECT, NULL},
    {{true, false, REJ}, "/a%2fb", RS_PATH_REJECT, NULL},
    {{false, false, REJ}, "/a%%2fb", RS_PATH_REJECT, NULL},
    {{true, false, REJ}, "/a?b=%2F", RS_PATH_UNCHANGED, "/a?b=%2F"},
    /* UNESCAPE_AND_FORWARD decodes before normalizing: Istio's DECODE_AND_MERGE_SLASHES. */
    {{true, true, FWD}, "/some%2fdata/%61%62%63", RS_PATH_OK, "/some/data/abc"},
    {{true, false, FWD}, "/a%2F..%2Fb", RS_PATH_OK, "/b"},
    {{true, false, FWD}, "/a%5cb", RS_PATH_OK, "/a/b"},
    {{false, false, FWD}, "/a%5cb%2F", RS_PATH_OK, "/a\\b/"},
    {{false, true, FWD}, "/a%2F%2f/b", RS_PATH_OK, "/a/b"},
    {{false, false, FWD}, "/a?%2F", RS_PATH_UNCHANGED, "/a?%2F"},
    {{false, false, FWD}, "/a%2", RS_PATH_UNCHANGED, "/a%2"},
    /* UNESCAPE_AND_REDIRECT: 307 to the unescaped, normalized path; forward when there was
     * nothing to unescape; a malformed path is still 400. */
    {{true, true, RED}, "/a%2F%2Fb/./c?q=%2f", RS_PATH_REDIRECT, "/a/b/c?q=%2f"},
    {{true, false, RED}, "/a%5C../b", RS_PATH_REDIRECT, "/b"},
    {{false, false, RED}, "/a%2fb", RS_PATH_REDIRECT, "/a/b"},
    {{true, false, RED}, "/a/./b", RS_PATH_OK, "/a/b"},
    {{true, false, RED}, "/a/b", RS_PATH_UNCHANGED, "/a/b"},
    {{true, false, RED}, "/a%2fb%zz", RS_PATH_REJECT, NULL},
};

/* Malformed input under normalize_path, and the leading '/' under every option. */
static const struct path_case reject_cases[] = {
    {NORM, "/%zz", RS_PATH_REJECT, NULL},
    {NORM, "/%4", RS_PATH_REJECT, NULL},
    {NORM, "/a%", RS_PATH_REJECT, NULL},
    {NORM, "/%g0", RS_PATH_REJECT, NULL},
    {NORM, "/%0g", RS_PATH_REJECT, NULL},
    {NORM, "/%00", RS_PATH_REJECT, NULL},
    {NORM, "/a%4?x", RS_PATH_REJECT, NULL}, /* '?' ends the path, so %4 is truncated */
    {NORM, "", RS_PATH_REJECT, NULL},
    {NORM, "a/b", RS_PATH_REJECT, NULL},
    {NORM, "?a", RS_PATH_REJECT, NULL},
    {NORM, "\\a", RS_PATH_REJECT, NULL},
    {{true, true, FWD}, "%2Fa", RS_PATH_REJECT, NULL},
    {{false, true, KEEP}, ".", RS_PATH_REJECT, NULL},
    /* The query is not checked: malformed escapes there are the application's business. */
    {NORM, "/a?%zz%", RS_PATH_UNCHANGED, "/a?%zz%"},
};

static void run_cases(const struct path_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char out[256];
        size_t out_len = 0;
        size_t len = strlen(c[i].in);
        enum rs_path_result r = rs_path_normalize(c[i].in, len, &c[i].o, out, sizeof out, &out_len);
        if (r != c[i].want) {
            fprintf(stderr, "  case \"%s\": result %d, want %d\n", c[i].in, r, c[i].want);
            CHECK_EQ_INT(r, c[i].want);
            continue;
        }
        if (!c[i].out) continue;
        out[out_len] = '\0';
        if (strcmp(out, c[i].out) != 0) fprintf(stderr, "  case \"%s\":\n", c[i].in);
        CHECK_STR(out, c[i].out);
    }
}

#define RUN(cases) run_cases(cases, sizeof cases / sizeof cases[0])

static void rfc3986_examples(void)
{
    RUN(rfc_cases);
}

static void envoy_behaviour(void)
{
    RUN(envoy_cases);
}

static void rejects(void)
{
    RUN(reject_cases);
}

static void capacity(void)
{
    struct rs_path_opts o = {true, true, FWD};
    const char *in = "/a/./b?q=1";
    size_t len = strlen(in), out_len = 0;
    char out[16];
    /* Exactly enough for the result, and one byte short of it. */
    CHECK_EQ_INT(rs_path_normalize(in, len, &o, out, 8, &out_len), RS_PATH_OK);
    CHECK_EQ_INT(out_len, 8);
    CHECK(memcmp(out, "/a/b?q=1", 8) == 0);
    CHECK_EQ_INT(rs_path_normalize(in, len, &o, out, 7, &out_len), RS_PATH_TOO_LONG);
    CHECK_EQ_INT(rs_path_normalize(in, len, &o, out, 0, &out_len), RS_PATH_TOO_LONG);
    /* An unchanged path still needs room for its copy. */
    CHECK_EQ_INT(rs_path_normalize("/abc", 4, &o, out, 3, &out_len), RS_PATH_TOO_LONG);
    CHECK_EQ_INT(rs_path_normalize("/abc", 4, &o, out, 4, &out_len), RS_PATH_UNCHANGED);
    /* Rejection is reported before capacity. */
    CHECK_EQ_INT(rs_path_normalize("/%zz", 4, &o, out, 0, &out_len), RS_PATH_REJECT);
    /* cap == len always suffices, whatever the options. */
    const char *long_in = "/%61%62/%2e%2E/x%2f%5c//y?%%";
    size_t l = strlen(long_in);
    for (int m = 0; m < 16; m++) {
        struct rs_path_opts om = {m & 1, (m >> 1) & 1, (enum rs_path_slashes)(m >> 2)};
        char exact[64];
        CHECK(rs_path_normalize(long_in, l, &om, exact, l, &out_len) != RS_PATH_TOO_LONG);
    }
}

/* Reads only in[0..len): the byte after the input is a '%' that would complete an escape, and a
 * '?' that would end the path, if it were read. */
static void bounded_read(void)
{
    const char buf[] = "/a%2?";
    char out[8];
    size_t out_len = 0;
    struct rs_path_opts o = {true, false, REJ};
    CHECK_EQ_INT(rs_path_normalize(buf, 4, &o, out, sizeof out, &out_len), RS_PATH_REJECT);
    o.normalize = false;
    CHECK_EQ_INT(rs_path_normalize(buf, 4, &o, out, sizeof out, &out_len), RS_PATH_UNCHANGED);
    CHECK_EQ_INT(out_len, 4);
}

/* The checks the fuzz target makes, on one input under one option set; returns what broke. */
static const char *property_violation(const char *in, size_t len, const struct rs_path_opts *o)
{
    char out[128], again[128];
    size_t n = 0, n2 = 0;
    enum rs_path_result r = rs_path_normalize(in, len, o, out, sizeof out, &n);
    if (r == RS_PATH_TOO_LONG) return "TOO_LONG with cap >= len";
    if (r == RS_PATH_REJECT) return NULL;
    if (n > len) return "output longer than input";
    if (n == 0 || out[0] != '/') return "output does not start with '/'";
    if (r == RS_PATH_UNCHANGED && (n != len || memcmp(out, in, n) != 0)) return "UNCHANGED lies";
    if (r == RS_PATH_OK && n == len && memcmp(out, in, n) == 0) return "OK but unchanged";
    /* %3F is never decoded, so the first '?' of the output is where the query starts. */
    const char *q = memchr(out, '?', n), *qin = memchr(in, '?', len);
    size_t path = q ? (size_t)(q - out) : n, in_path = qin ? (size_t)(qin - in) : len;
    if (n - path != len - in_path || memcmp(out + path, in + in_path, n - path) != 0)
        return "query changed";
    if (o->normalize) {
        for (size_t i = 0; i < path; i++) {
            if (out[i] != '/') continue;
            size_t s = i + 1, e = s;
            while (e < path && out[e] != '/') e++;
            if ((e - s == 1 && out[s] == '.') || (e - s == 2 && out[s] == '.' && out[s + 1] == '.'))
                return "dot-segment left";
        }
    }
    if (o->merge_slashes)
        for (size_t i = 1; i < path; i++)
            if (out[i] == '/' && out[i - 1] == '/') return "double slash left";
    enum rs_path_result r2 = rs_path_normalize(out, n, o, again, sizeof again, &n2);
    if (r2 != RS_PATH_UNCHANGED) return "second pass not UNCHANGED";
    return NULL;
}

static void properties(void)
{
    static const char alphabet[] = "/./.%2fF5cCeE0a\\?z%";
    uint32_t seed = 12345;
    char in[64];
    int violations = 0;
    for (int iter = 0; iter < 100000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + (seed >> 16) % 40;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        if ((seed >> 8) % 8) in[0] = '/';
        for (int m = 0; m < 16; m++) {
            struct rs_path_opts o = {m & 1, (m >> 1) & 1, (enum rs_path_slashes)(m >> 2)};
            const char *why = property_violation(in, len, &o);
            if (why && violations++ < 5)
                fprintf(stderr, "  \"%.*s\" opts %d: %s\n", (int)len, in, m, why);
        }
    }
    CHECK_EQ_INT(violations, 0);
}

RUN_TESTS(TEST_CASE(rfc3986_examples), TEST_CASE(envoy_behaviour), TEST_CASE(rejects),
          TEST_CASE(capacity), TEST_CASE(bounded_read), TEST_CASE(properties))
