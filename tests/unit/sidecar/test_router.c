/* Router tests: configs are written in Envoy YAML and loaded with the xds loader, compiled, then
 * matched against request views. */
#include "sidecar/router.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "envoy/config/route/v3/route.pb-c.h"
#include "tests/unit/test.h"
#include "xds/pbload.h"

typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;

static const char *const clusters[] = {"a", "b", "c", "v1", "v2", NULL};

static int cluster_index(void *ctx, const char *name)
{
    (void)ctx;
    for (int i = 0; clusters[i]; i++)
        if (!strcmp(clusters[i], name)) return i;
    return -1;
}

static struct rs_route_compile_opts opts(void)
{
    return (struct rs_route_compile_opts){.cluster_index = cluster_index,
                                          .validate_clusters = true};
}

static struct rs_route_table *compile_o(const char *yaml, const struct rs_route_compile_opts *o,
                                        char *err, size_t errlen)
{
    ProtobufCMessage *m = xds_load_yaml(&envoy__config__route__v3__route_configuration__descriptor,
                                        yaml, strlen(yaml), 0, err, errlen);
    if (!m) {
        fprintf(stderr, "  yaml load failed: %s\n", err);
        return NULL;
    }
    struct rs_route_table *t = rs_route_table_compile((RouteConfiguration *)m, o, err, errlen);
    protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

static struct rs_route_table *compile(const char *yaml)
{
    char err[512];
    struct rs_route_compile_opts o = opts();
    struct rs_route_table *t = compile_o(yaml, &o, err, sizeof err);
    if (!t) fprintf(stderr, "  compile failed: %s\n", err);
    return t;
}

/* Compiles a config expected to fail; returns whether err contains `want`. */
static bool fails_with(const char *yaml, const char *want)
{
    char err[512] = "";
    struct rs_route_compile_opts o = opts();
    struct rs_route_table *t = compile_o(yaml, &o, err, sizeof err);
    if (t) {
        rs_route_table_free(t);
        fprintf(stderr, "  compiled, expected error containing \"%s\"\n", want);
        return false;
    }
    if (!strstr(err, want)) {
        fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, want);
        return false;
    }
    return true;
}

struct hdr {
    const char *name, *value;
};

static bool get_header(void *ctx, const char *lname, size_t len, const char **v, size_t *vl)
{
    for (const struct hdr *h = ctx; h && h->name; h++)
        if (strlen(h->name) == len && !memcmp(h->name, lname, len)) {
            *v = h->value;
            *vl = strlen(h->value);
            return true;
        }
    return false;
}

static const struct rs_route *match_h(const struct rs_route_table *t, const char *method,
                                      const char *host, const char *path, const struct hdr *h)
{
    struct rs_route_request rq = {method, strlen(method), path,       strlen(path),
                                  host,   strlen(host),   get_header, (void *)h};
    return rs_route_match(t, &rq);
}

static const struct rs_route *match(const struct rs_route_table *t, const char *path)
{
    return match_h(t, "GET", "x", path, NULL);
}

static const char *route_name(const struct rs_route_table *t, const char *path)
{
    const struct rs_route *r = match(t, path);
    return r ? r->name : "(none)";
}

static const char *vhost_of(const struct rs_route_table *t, const char *host)
{
    const struct rs_vhost *v = rs_route_find_vhost(t, host, strlen(host));
    return v ? v->name : "(none)";
}

/* ---- virtual hosts -----------------------------------------------------------------------------
 */

#define R "routes: [{match: {prefix: /}, route: {cluster: a}}]"
static const char domains_yaml[] =
    "virtual_hosts:\n"
    "- {name: exact, domains: [www.example.com, Other.Example.COM], " R "}\n"
    "- {name: suffix, domains: ['*.example.com'], " R "}\n"
    "- {name: suffix_long, domains: ['*.api.example.com'], " R "}\n"
    "- {name: suffix_dash, domains: ['*-bar.example.org'], " R "}\n"
    "- {name: prefix, domains: ['www.*'], " R "}\n"
    "- {name: prefix_long, domains: ['www.example.*'], " R "}\n"
    "- {name: port, domains: ['example.com:8080'], " R "}\n"
    "- {name: any, domains: ['*'], " R "}\n";

static void test_domain_precedence(void)
{
    struct rs_route_table *t = compile(domains_yaml);
    CHECK(t);
    if (!t) return;
    CHECK_STR(vhost_of(t, "www.example.com"), "exact");
    CHECK_STR(vhost_of(t, "WWW.EXAMPLE.com"), "exact");
    CHECK_STR(vhost_of(t, "other.example.com"), "exact");
    CHECK_STR(vhost_of(t, "x.api.example.com"), "suffix_long");
    CHECK_STR(vhost_of(t, "a.example.com"), "suffix");
    CHECK_STR(vhost_of(t, "A.Example.Com"), "suffix");
    CHECK_STR(vhost_of(t, "foo-bar.example.org"), "suffix_dash");
    CHECK_STR(vhost_of(t, "-bar.example.org"), "any"); /* a wildcard never matches "" */
    CHECK_STR(vhost_of(t, ".example.com"), "any");
    CHECK_STR(vhost_of(t, "www.example.org"), "prefix_long");
    CHECK_STR(vhost_of(t, "www.foo"), "prefix");
    CHECK_STR(vhost_of(t, "www."), "any");
    CHECK_STR(vhost_of(t, "nothing.test"), "any");
    /* The port is part of the host unless a strip option is set (Envoy's default). */
    CHECK_STR(vhost_of(t, "example.com:8080"), "port");
    CHECK_STR(vhost_of(t, "www.example.com:8080"), "prefix_long");
    CHECK_STR(vhost_of(t, "a.example.com:80"), "any");
    const struct rs_route *r = match_h(t, "GET", "A.EXAMPLE.COM", "/", NULL);
    CHECK(r && !strcmp(r->vhost->name, "suffix"));
    rs_route_table_free(t);
}

static void test_domain_ports(void)
{
    char err[256];
    struct rs_route_compile_opts o = opts();
    o.strip_any_host_port = true;
    struct rs_route_table *t = compile_o(domains_yaml, &o, err, sizeof err);
    CHECK(t);
    if (!t) return;
    CHECK_STR(vhost_of(t, "www.example.com:8080"), "exact");
    CHECK_STR(vhost_of(t, "a.example.com:80"), "suffix");
    CHECK_STR(vhost_of(t, "example.com:8080"), "any"); /* stripped to example.com */
    rs_route_table_free(t);

    o = opts();
    o.strip_matching_host_port = true;
    o.listener_port = 8080;
    t = compile_o(domains_yaml, &o, err, sizeof err);
    CHECK(t);
    if (!t) return;
    CHECK_STR(vhost_of(t, "www.example.com:8080"), "exact");
    CHECK_STR(vhost_of(t, "www.example.com:9090"), "prefix_long");
    rs_route_table_free(t);

    t = compile("ignore_port_in_host_matching: true\n"
                "virtual_hosts:\n"
                "- {name: v6, domains: ['[::1]'], " R "}\n"
                "- {name: h, domains: [h.test], " R "}\n");
    CHECK(t);
    if (!t) return;
    CHECK_STR(vhost_of(t, "[::1]:15001"), "v6");
    CHECK_STR(vhost_of(t, "[::1]"), "v6");
    CHECK_STR(vhost_of(t, "H.test:1"), "h");
    CHECK_STR(vhost_of(t, "other"), "(none)");
    CHECK(match_h(t, "GET", "other", "/", NULL) == NULL);
    rs_route_table_free(t);
}

static void test_domain_errors(void)
{
    CHECK(fails_with("virtual_hosts:\n"
                     "- {name: one, domains: [a.com], " R "}\n"
                     "- {name: two, domains: [A.COM], " R "}\n",
                     "virtual_hosts: duplicate domain 'a.com' (in virtual hosts 'one' and 'two')"));
    CHECK(fails_with("virtual_hosts:\n"
                     "- {name: one, domains: ['*'], " R "}\n"
                     "- {name: two, domains: ['*'], " R "}\n",
                     "only a single wildcard domain"));
    CHECK(fails_with("virtual_hosts:\n"
                     "- {name: one, domains: ['*.a.com', '*.a.com'], " R "}\n",
                     "duplicate domain '*.a.com'"));
    CHECK(fails_with("virtual_hosts:\n- {name: one, " R "}\n",
                     "virtual_hosts[0].domains: at least one domain required"));
}

/* ---- path matching -----------------------------------------------------------------------------
 */

static void test_path_kinds(void)
{
    struct rs_route_table *t = compile(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  routes:\n"
        "  - {name: exact, match: {path: /exact}, route: {cluster: a}}\n"
        "  - {name: regex, match: {safe_regex: {regex: '/api/v[0-9]+'}}, route: {cluster: a}}\n"
        "  - {name: sep, match: {path_separated_prefix: /sep}, route: {cluster: a}}\n"
        "  - {name: icase, match: {prefix: /Case/, case_sensitive: false}, route: {cluster: a}}\n"
        "  - {name: ipath, match: {path: /IP, case_sensitive: false}, route: {cluster: a}}\n"
        "  - {name: pre, match: {prefix: /p}, route: {cluster: a}}\n");
    CHECK(t);
    if (!t) return;
    CHECK_STR(route_name(t, "/exact"), "exact");
    CHECK_STR(route_name(t, "/exact?q=1"), "exact");
    CHECK_STR(route_name(t, "/exact#frag"), "exact");
    CHECK_STR(route_name(t, "/exact/"), "(none)");
    CHECK_STR(route_name(t, "/Exact"), "(none)");
    CHECK_STR(route_name(t, "/api/v12"), "regex");
    CHECK_STR(route_name(t, "/api/v12?x=/y"), "regex"); /* query not part of the regex subject */
    CHECK_STR(route_name(t, "/api/v12/x"), "(none)");   /* full match, not a search */
    CHECK_STR(route_name(t, "/x/api/v1"), "(none)");
    CHECK_STR(route_name(t, "/sep"), "sep");
    CHECK_STR(route_name(t, "/sep/a/b"), "sep");
    CHECK_STR(route_name(t, "/sep?x"), "sep");
    CHECK_STR(route_name(t, "/separate"), "(none)");
    CHECK_STR(route_name(t, "/case/x"), "icase");
    CHECK_STR(route_name(t, "/CASE/x"), "icase");
    CHECK_STR(route_name(t, "/ip"), "ipath");
    CHECK_STR(route_name(t, "/iP?z"), "ipath");
    CHECK_STR(route_name(t, "/p"), "pre");
    CHECK_STR(route_name(t, "/pq/r"), "pre");
    CHECK_STR(route_name(t, "/P"), "(none)");
    rs_route_table_free(t);
}

static void test_first_match_wins(void)
{
    struct rs_route_table *t =
        compile("virtual_hosts:\n"
                "- name: v\n"
                "  domains: ['*']\n"
                "  routes:\n"
                "  - {name: one, match: {prefix: /a}, route: {cluster: a}}\n"
                "  - {name: two, match: {prefix: /ab}, route: {cluster: b}}\n"
                "  - {name: all, match: {prefix: ''}, route: {cluster: c}}\n");
    CHECK(t);
    if (!t) return;
    CHECK_STR(route_name(t, "/abc"), "one");
    CHECK_STR(route_name(t, "/b"), "all");
    CHECK_STR(route_name(t, "/"), "all");
    rs_route_table_free(t);
}

/* ---- header and query matching
 * ------------------------------------------------------------------- */

static const char headers_yaml[] =
    "virtual_hosts:\n"
    "- name: v\n"
    "  domains: ['*']\n"
    "  routes:\n"
    "  - name: exact\n"
    "    match: {prefix: /exact, headers: [{name: X-Env, exact_match: prod}]}\n"
    "    route: {cluster: a}\n"
    "  - name: prefix\n"
    "    match: {prefix: /prefix, headers: [{name: x-env, prefix_match: pr}]}\n"
    "    route: {cluster: a}\n"
    "  - name: suffix\n"
    "    match: {prefix: /suffix, headers: [{name: x-env, suffix_match: od}]}\n"
    "    route: {cluster: a}\n"
    "  - name: contains\n"
    "    match: {prefix: /contains, headers: [{name: x-env, contains_match: ro}]}\n"
    "    route: {cluster: a}\n"
    "  - name: regex\n"
    "    match: {prefix: /regex, headers: [{name: x-env, safe_regex_match: {regex: 'p.o'}}]}\n"
    "    route: {cluster: a}\n"
    "  - name: present\n"
    "    match: {prefix: /present, headers: [{name: x-env, present_match: true}]}\n"
    "    route: {cluster: a}\n"
    "  - name: absent\n"
    "    match: {prefix: /absent, headers: [{name: x-env, present_match: false}]}\n"
    "    route: {cluster: a}\n"
    "  - name: range\n"
    "    match: {prefix: /range, headers: [{name: x-n, range_match: {start: -10, end: 0}}]}\n"
    "    route: {cluster: a}\n"
    "  - name: invert\n"
    "    match: {prefix: /invert, headers: [{name: x-env, exact_match: prod, invert_match: "
    "true}]}\n"
    "    route: {cluster: a}\n"
    "  - name: empty\n"
    "    match: {prefix: /empty, headers: [{name: x-env, string_match: {exact: ''}, "
    "treat_missing_header_as_empty: true}]}\n"
    "    route: {cluster: a}\n"
    "  - name: sm_icase\n"
    "    match: {prefix: /sm, headers: [{name: x-env, string_match: {prefix: PR, ignore_case: "
    "true}}]}\n"
    "    route: {cluster: a}\n"
    "  - name: sm_regex\n"
    "    match: {prefix: /smre, headers: [{name: x-env, string_match: {safe_regex: {regex: "
    "'[a-z]+'}}}]}\n"
    "    route: {cluster: a}\n"
    "  - name: method\n"
    "    match: {prefix: /m, headers: [{name: ':method', exact_match: POST}, {name: "
    "':authority', suffix_match: '.test'}]}\n"
    "    route: {cluster: a}\n"
    "  - name: path\n"
    "    match: {prefix: /q, headers: [{name: ':path', contains_match: 'debug=1'}]}\n"
    "    route: {cluster: a}\n";

static const char *hname(const struct rs_route_table *t, const char *path, const char *name,
                         const char *value)
{
    struct hdr h[2] = {{name, value}, {NULL, NULL}};
    const struct rs_route *r = match_h(t, "GET", "x", path, name ? h : NULL);
    return r ? r->name : "(none)";
}

static void test_header_match(void)
{
    struct rs_route_table *t = compile(headers_yaml);
    CHECK(t);
    if (!t) return;
    CHECK_STR(hname(t, "/exact", "x-env", "prod"), "exact");
    CHECK_STR(hname(t, "/exact", "x-env", "Prod"), "(none)");
    CHECK_STR(hname(t, "/exact", NULL, NULL), "(none)");
    CHECK_STR(hname(t, "/prefix", "x-env", "prod"), "prefix");
    CHECK_STR(hname(t, "/prefix", "x-env", "dev"), "(none)");
    CHECK_STR(hname(t, "/suffix", "x-env", "prod"), "suffix");
    CHECK_STR(hname(t, "/suffix", "x-env", "prodx"), "(none)");
    CHECK_STR(hname(t, "/contains", "x-env", "prod"), "contains");
    CHECK_STR(hname(t, "/contains", "x-env", "pod"), "(none)");
    CHECK_STR(hname(t, "/regex", "x-env", "pro"), "regex");
    CHECK_STR(hname(t, "/regex", "x-env", "prod"), "(none)"); /* full match */
    CHECK_STR(hname(t, "/present", "x-env", ""), "present");
    CHECK_STR(hname(t, "/present", NULL, NULL), "(none)");
    CHECK_STR(hname(t, "/absent", NULL, NULL), "absent");
    CHECK_STR(hname(t, "/absent", "x-env", "x"), "(none)");
    CHECK_STR(hname(t, "/range", "x-n", "-1"), "range");
    CHECK_STR(hname(t, "/range", "x-n", "-10"), "range");
    CHECK_STR(hname(t, "/range", "x-n", "0"), "(none)");
    CHECK_STR(hname(t, "/range", "x-n", "-1x"), "(none)");
    CHECK_STR(hname(t, "/range", "x-n", ""), "(none)");
    CHECK_STR(hname(t, "/range", "x-n", "-99999999999999999999"), "(none)");
    CHECK_STR(hname(t, "/invert", "x-env", "dev"), "invert");
    CHECK_STR(hname(t, "/invert", "x-env", "prod"), "(none)");
    CHECK_STR(hname(t, "/invert", NULL, NULL), "(none)"); /* missing never matches */
    CHECK_STR(hname(t, "/empty", NULL, NULL), "empty");
    CHECK_STR(hname(t, "/empty", "x-env", "x"), "(none)");
    CHECK_STR(hname(t, "/sm", "x-env", "pRoD"), "sm_icase");
    CHECK_STR(hname(t, "/sm", "x-env", "dev"), "(none)");
    CHECK_STR(hname(t, "/smre", "x-env", "abc"), "sm_regex");
    CHECK_STR(hname(t, "/smre", "x-env", "abc1"), "(none)");
    const struct rs_route *r = match_h(t, "POST", "a.test", "/m", NULL);
    CHECK(r && !strcmp(r->name, "method"));
    CHECK(match_h(t, "GET", "a.test", "/m", NULL) == NULL);
    CHECK(match_h(t, "POST", "a.other", "/m", NULL) == NULL);
    CHECK_STR(route_name(t, "/q?debug=1"), "path");
    CHECK_STR(route_name(t, "/q?debug=0"), "(none)");
    rs_route_table_free(t);
}

static void test_query_params(void)
{
    struct rs_route_table *t = compile(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  routes:\n"
        "  - name: str\n"
        "    match: {prefix: /s, query_parameters: [{name: user, string_match: {exact: 'a b'}}]}\n"
        "    route: {cluster: a}\n"
        "  - name: icase\n"
        "    match: {prefix: /i, query_parameters: [{name: k, string_match: {prefix: AB, "
        "ignore_case: true}}]}\n"
        "    route: {cluster: a}\n"
        "  - name: present\n"
        "    match: {prefix: /p, query_parameters: [{name: debug, present_match: true}]}\n"
        "    route: {cluster: a}\n");
    CHECK(t);
    if (!t) return;
    CHECK_STR(route_name(t, "/s?user=a%20b"), "str");
    CHECK_STR(route_name(t, "/s?x=1&user=a%20b&user=zz"), "str");
    CHECK_STR(route_name(t, "/s?user=zz&user=a%20b"), "(none)"); /* first value counts */
    CHECK_STR(route_name(t, "/s?user=a+b"), "(none)");
    CHECK_STR(route_name(t, "/s"), "(none)");
    CHECK_STR(route_name(t, "/s?us%65r=a%20b"), "str");
    CHECK_STR(route_name(t, "/i?k=abc"), "icase");
    CHECK_STR(route_name(t, "/i?k=xab"), "(none)");
    CHECK_STR(route_name(t, "/p?debug"), "present");
    CHECK_STR(route_name(t, "/p?a=1&debug=&b"), "present");
    CHECK_STR(route_name(t, "/p?debugx=1"), "(none)");
    CHECK_STR(route_name(t, "/p#debug"), "(none)");
    rs_route_table_free(t);
}

/* ---- actions -----------------------------------------------------------------------------------
 */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void test_weighted_clusters(void)
{
    struct rs_route_table *t =
        compile("virtual_hosts:\n"
                "- name: v\n"
                "  domains: ['*']\n"
                "  routes:\n"
                "  - match: {prefix: /}\n"
                "    route:\n"
                "      weighted_clusters:\n"
                "        clusters:\n"
                "        - {name: v1, weight: 90}\n"
                "        - name: v2\n"
                "          weight: 10\n"
                "          host_rewrite_literal: canary.test\n"
                "          request_headers_to_add: [{header: {key: x-canary, value: '1'}}]\n");
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/x");
    CHECK(r && r->weighted && r->n_clusters == 2 && r->total_weight == 100);
    if (!r) goto out;
    uint64_t seed = 42;
    int counts[2] = {0, 0};
    for (int i = 0; i < 10000; i++) {
        const struct rs_route_cluster *c = rs_route_pick_cluster(r, splitmix(&seed));
        counts[c == &r->clusters[1]]++;
    }
    CHECK(counts[0] > 8800 && counts[0] < 9200);
    CHECK_EQ_INT(counts[0] + counts[1], 10000);
    CHECK_STR(rs_route_pick_cluster(r, 89)->name, "v1");
    CHECK_STR(rs_route_pick_cluster(r, 90)->name, "v2");
    CHECK_STR(rs_route_pick_cluster(r, 199)->name, "v2");
    CHECK_EQ_INT(rs_route_pick_cluster(r, 5)->index, 3);
    const struct rs_route_cluster *c2 = rs_route_pick_cluster(r, 95);
    CHECK_STR(rs_route_host_rewrite(r, c2), "canary.test");
    CHECK(rs_route_host_rewrite(r, rs_route_pick_cluster(r, 0)) == NULL);
    const struct rs_header_edits *lv[4];
    CHECK_EQ_INT(rs_route_request_edits(t, r, c2, lv), 1);
    CHECK_STR(lv[0]->add[0].name, "x-canary");
    CHECK_EQ_INT(rs_route_request_edits(t, r, rs_route_pick_cluster(r, 0), lv), 0);
out:
    rs_route_table_free(t);
}

static void test_rewrites(void)
{
    struct rs_route_table *t = compile(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  routes:\n"
        "  - match: {prefix: /api/}\n"
        "    route: {cluster: a, prefix_rewrite: /v2/, host_rewrite_literal: api.internal}\n"
        "  - match: {prefix: /UP/, case_sensitive: false}\n"
        "    route: {cluster: a, prefix_rewrite: /}\n"
        "  - match: {path: /old}\n"
        "    route: {cluster: a, prefix_rewrite: /new, auto_host_rewrite: true}\n"
        "  - match: {prefix: /service/}\n"
        "    route:\n"
        "      cluster: b\n"
        "      regex_rewrite:\n"
        "        pattern: {regex: '^/service/([^/]+)(/.*)$'}\n"
        "        substitution: '\\2/instance/\\1'\n"
        "  - match: {prefix: /dollar}\n"
        "    route: {cluster: b, regex_rewrite: {pattern: {regex: 'o'}, substitution: '$0'}}\n"
        "  - match: {prefix: /}\n"
        "    route: {cluster: c}\n");
    CHECK(t);
    if (!t) return;
    char out[128];
    const char *p = "/api/users?id=1";
    const struct rs_route *r = match(t, p);
    ssize_t n = r ? rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) : -1;
    CHECK(n > 0 && (size_t)n == strlen("/v2/users?id=1") && !memcmp(out, "/v2/users?id=1", n));
    CHECK_STR(rs_route_host_rewrite(r, rs_route_pick_cluster(r, 0)), "api.internal");
    CHECK(!r->auto_host_rewrite);
    CHECK_EQ_INT(rs_route_rewrite_path(r, p, strlen(p), out, 5), -ENOSPC);

    p = "/uP/x";
    r = match(t, p);
    n = r ? rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) : -1;
    CHECK(n == 2 && !memcmp(out, "/x", 2));

    p = "/old?a=b";
    r = match(t, p);
    n = r ? rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) : -1;
    CHECK(n == 8 && !memcmp(out, "/new?a=b", 8));
    CHECK(r && r->auto_host_rewrite);

    p = "/service/foo/v1/api?x=1";
    r = match(t, p);
    n = r ? rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) : -1;
    CHECK(n == (ssize_t)strlen("/v1/api/instance/foo?x=1") &&
          !memcmp(out, "/v1/api/instance/foo?x=1", (size_t)n));
    CHECK_EQ_INT(rs_route_rewrite_path(r, p, strlen(p), out, 4), -ENOSPC);

    p = "/dollar";
    r = match(t, p);
    n = r ? rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) : -1;
    CHECK(n == 8 && !memcmp(out, "/d$0llar", 8));

    p = "/other";
    r = match(t, p);
    CHECK(r && rs_route_rewrite_path(r, p, strlen(p), out, sizeof out) == -ENOENT);
    rs_route_table_free(t);
}

static const char edits_yaml_fmt[] =
    "%s"
    "request_headers_to_add: [{header: {key: x-level, value: config}}]\n"
    "response_headers_to_add: [{header: {key: x-resp, value: config}}]\n"
    "request_headers_to_remove: [x-drop-config]\n"
    "virtual_hosts:\n"
    "- name: v\n"
    "  domains: ['*']\n"
    "  request_headers_to_add: [{header: {key: x-level, value: vhost}, append_action: "
    "OVERWRITE_IF_EXISTS_OR_ADD}]\n"
    "  response_headers_to_remove: [server]\n"
    "  routes:\n"
    "  - match: {prefix: /}\n"
    "    route: {cluster: a}\n"
    "    request_headers_to_add:\n"
    "    - {header: {key: X-Level, value: route}, append_action: ADD_IF_ABSENT}\n"
    "    - {header: {key: x-old, value: v}, append: false}\n"
    "    - {header: {key: x-old2, value: v}, append: true}\n"
    "    - {header: {key: x-only, value: v}, append_action: OVERWRITE_IF_EXISTS}\n"
    "    - {header: {key: x-client, value: "
    "'%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%%/%%PROTOCOL%%'}}\n"
    "    - {header: {key: x-pct, value: '100%%%%'}, keep_empty_value: true}\n"
    "    request_headers_to_remove: [X-Remove]\n";

static void test_header_edit_order(void)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, edits_yaml_fmt, "");
    struct rs_route_table *t = compile(yaml);
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/");
    const struct rs_header_edits *lv[4];
    CHECK_EQ_INT(rs_route_request_edits(t, r, rs_route_pick_cluster(r, 0), lv), 3);
    CHECK(lv[0] == &r->req && lv[1] == &r->vhost->req && lv[2] == rs_route_table_req_edits(t));
    const struct rs_header_add *a = r->req.add;
    CHECK_EQ_INT(r->req.n_add, 6);
    CHECK_STR(a[0].name, "x-level");
    CHECK_STR(a[0].value, "route");
    CHECK_EQ_INT(a[0].action, RS_HDR_ADD_IF_ABSENT);
    CHECK(!a[0].has_format);
    CHECK_EQ_INT(a[1].action, RS_HDR_OVERWRITE_IF_EXISTS_OR_ADD);
    CHECK_EQ_INT(a[2].action, RS_HDR_APPEND_IF_EXISTS_OR_ADD);
    CHECK_EQ_INT(a[3].action, RS_HDR_OVERWRITE_IF_EXISTS);
    CHECK_EQ_INT(r->vhost->req.add[0].action, RS_HDR_OVERWRITE_IF_EXISTS_OR_ADD);
    CHECK_EQ_INT(rs_route_table_req_edits(t)->add[0].action, RS_HDR_APPEND_IF_EXISTS_OR_ADD);
    CHECK_EQ_INT(r->req.n_remove, 1);
    CHECK_STR(r->req.remove[0].name, "x-remove");
    CHECK_STR(rs_route_table_req_edits(t)->remove[0].name, "x-drop-config");

    /* Format specifiers. */
    CHECK(a[4].has_format);
    char out[128];
    struct rs_route_format_vars vars = {.downstream_remote_address = "10.1.2.3:5555",
                                        .protocol = "HTTP/1.1"};
    ssize_t n = rs_route_format_value(&a[4], &vars, out, sizeof out);
    CHECK(n == (ssize_t)strlen("10.1.2.3/HTTP/1.1") && !memcmp(out, "10.1.2.3/HTTP/1.1", n));
    vars.downstream_remote_address = "[fd00::1]:443";
    n = rs_route_format_value(&a[4], &vars, out, sizeof out);
    CHECK(n == (ssize_t)strlen("fd00::1/HTTP/1.1") && !memcmp(out, "fd00::1/HTTP/1.1", n));
    CHECK_EQ_INT(rs_route_format_value(&a[4], &vars, out, 3), -ENOSPC);
    CHECK(a[5].has_format && a[5].keep_empty_value);
    n = rs_route_format_value(&a[5], &vars, out, sizeof out);
    CHECK(n == 4 && !memcmp(out, "100%", 4));

    /* Responses: the route has none; vhost then config. */
    CHECK_EQ_INT(rs_route_response_edits(t, r, NULL, lv), 2);
    CHECK(lv[0] == &r->vhost->resp && lv[1] == rs_route_table_resp_edits(t));
    CHECK_STR(lv[0]->remove[0].name, "server");
    rs_route_table_free(t);

    snprintf(yaml, sizeof yaml, edits_yaml_fmt, "most_specific_header_mutations_wins: true\n");
    t = compile(yaml);
    CHECK(t);
    if (!t) return;
    r = match(t, "/");
    CHECK_EQ_INT(rs_route_request_edits(t, r, NULL, lv), 3);
    CHECK(lv[0] == rs_route_table_req_edits(t) && lv[1] == &r->vhost->req && lv[2] == &r->req);
    rs_route_table_free(t);
}

static void test_direct_response(void)
{
    char fname[] = "/tmp/rs_router_bodyXXXXXX";
    int fd = mkstemp(fname);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, "from file\n", 10) == 10);
    close(fd);
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "virtual_hosts:\n"
             "- name: v\n"
             "  domains: ['*']\n"
             "  routes:\n"
             "  - match: {path: /str}\n"
             "    direct_response: {status: 200, body: {inline_string: hello}}\n"
             "  - match: {path: /bytes}\n"
             "    direct_response: {status: 503, body: {inline_bytes: aGk=}}\n"
             "  - match: {path: /file}\n"
             "    direct_response: {status: 404, body: {filename: %s}}\n"
             "  - match: {path: /empty}\n"
             "    direct_response: {status: 204}\n"
             "    response_headers_to_add: [{header: {key: x-d, value: '1'}}]\n",
             fname);
    struct rs_route_table *t = compile(yaml);
    unlink(fname);
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/str");
    CHECK(r && r->kind == RS_ROUTE_DIRECT_RESPONSE && r->direct_status == 200);
    CHECK(r && r->direct_body_len == 5 && !memcmp(r->direct_body, "hello", 5));
    CHECK(r && rs_route_pick_cluster(r, 0) == NULL);
    r = match(t, "/bytes");
    CHECK(r && r->direct_status == 503 && r->direct_body_len == 2 &&
          !memcmp(r->direct_body, "hi", 2));
    r = match(t, "/file");
    CHECK(r && r->direct_status == 404 && r->direct_body_len == 10 &&
          !memcmp(r->direct_body, "from file\n", 10));
    r = match(t, "/empty");
    CHECK(r && r->direct_status == 204 && r->direct_body == NULL && r->resp.n_add == 1);
    rs_route_table_free(t);
}

static void test_timeouts_and_retry(void)
{
    struct rs_route_table *t = compile(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  retry_policy: {retry_on: 5xx, num_retries: 3}\n"
        "  routes:\n"
        "  - match: {path: /default}\n"
        "    route: {cluster: a}\n"
        "  - match: {path: /off}\n"
        "    route: {cluster: a, timeout: 0s, idle_timeout: 0s}\n"
        "  - match: {path: /set}\n"
        "    route:\n"
        "      cluster: a\n"
        "      timeout: 2.5s\n"
        "      idle_timeout: 60s\n"
        "      max_stream_duration: {grpc_timeout_header_max: 0s}\n"
        "      retry_policy:\n"
        "        retry_on: connect-failure,refused-stream,retriable-status-codes\n"
        "        num_retries: 2\n"
        "        per_try_timeout: 0.5s\n"
        "        retry_back_off: {base_interval: 0.1s}\n"
        "        retriable_status_codes: [503, 504]\n"
        "        host_selection_retry_max_attempts: 5\n"
        "        retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts}]\n");
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/default");
    CHECK(r && r->timeout_ms == 15000 && r->idle_timeout_ms == -1);
    CHECK(r && r->retry && r->retry == r->vhost->retry && r->retry->num_retries == 3);
    CHECK(r && r->retry && !strcmp(r->retry->retry_on, "5xx") && r->retry->backoff_base_ms == 25 &&
          r->retry->backoff_max_ms == 250);
    r = match(t, "/off");
    CHECK(r && r->timeout_ms == 0 && r->idle_timeout_ms == 0);
    r = match(t, "/set");
    CHECK(r && r->timeout_ms == 2500 && r->idle_timeout_ms == 60000);
    const struct rs_retry_policy *p = r ? r->retry : NULL;
    CHECK(p && p != r->vhost->retry);
    if (p) {
        CHECK_STR(p->retry_on, "connect-failure,refused-stream,retriable-status-codes");
        CHECK_EQ_INT(p->num_retries, 2);
        CHECK_EQ_INT(p->per_try_timeout_ms, 500);
        CHECK_EQ_INT(p->backoff_base_ms, 100);
        CHECK_EQ_INT(p->backoff_max_ms, 1000);
        CHECK_EQ_INT(p->n_retriable_status_codes, 2);
        CHECK_EQ_INT(p->retriable_status_codes[1], 504);
        CHECK_EQ_INT(p->host_selection_retry_max_attempts, 5);
        CHECK(p->previous_hosts);
    }
    rs_route_table_free(t);
}

static void test_unknown_cluster_unvalidated(void)
{
    struct rs_route_table *t =
        compile("validate_clusters: false\n"
                "virtual_hosts:\n"
                "- name: v\n"
                "  domains: ['*']\n"
                "  routes: [{match: {prefix: /}, route: {cluster: nope}}]\n");
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/");
    CHECK(r && rs_route_pick_cluster(r, 0)->index == RS_ROUTE_CLUSTER_UNKNOWN);
    rs_route_table_free(t);
}

/* ---- compile errors ----------------------------------------------------------------------------
 */

#define VH "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
#define RT(match, action) VH "  - {match: " match ", " action "}\n"
#define OK_ACTION "route: {cluster: a}"

static const struct {
    const char *yaml, *want;
} errors[] = {
    {RT("{safe_regex: {regex: 'a(b'}}", OK_ACTION),
     "virtual_hosts[0].routes[0].match.safe_regex.regex: missing closing parenthesis at offset 3"},
    {RT("{prefix: /}", "redirect: {path_redirect: /x}"),
     "virtual_hosts[0].routes[0].redirect: not supported"},
    {RT("{prefix: /, grpc: {}}", OK_ACTION), "routes[0].match.grpc: not supported"},
    {RT("{prefix: /, tls_context: {presented: true}}", OK_ACTION),
     "match.tls_context: not supported"},
    {RT("{prefix: /, dynamic_metadata: [{filter: f, path: [{key: k}], value: {present_match: "
        "true}}]}",
        OK_ACTION),
     "match.dynamic_metadata: not supported"},
    {RT("{prefix: /, runtime_fraction: {default_value: {numerator: 1}}}", OK_ACTION),
     "match.runtime_fraction: not supported"},
    {RT("{connect_matcher: {}}", OK_ACTION), "match.connect_matcher: not supported"},
    {RT("{headers: [{name: x, exact_match: y}]}", OK_ACTION),
     "routes[0].match: one of prefix, path, safe_regex, path_separated_prefix is required"},
    {RT("{path_separated_prefix: /a/}", OK_ACTION), "match.path_separated_prefix: must start"},
    {RT("{prefix: /, headers: [{name: x, safe_regex_match: {regex: '['}}]}", OK_ACTION),
     "match.headers[0].safe_regex_match.regex: missing terminating ] for character class at "
     "offset 1"},
    {RT("{prefix: /, headers: [{name: x, string_match: {safe_regex: {regex: '*'}}}]}", OK_ACTION),
     "match.headers[0].string_match.safe_regex.regex: quantifier does not follow a repeatable "
     "item at offset 0"},
    {RT("{prefix: /, headers: [{name: x, string_match: {prefix: ''}}]}", OK_ACTION),
     "match.headers[0].string_match: empty prefix"},
    {RT("{prefix: /, headers: [{name: x, string_match: {}}]}", OK_ACTION),
     "match.headers[0].string_match: one of exact"},
    {RT("{prefix: /, headers: [{exact_match: y}]}", OK_ACTION), "match.headers[0].name: required"},
    {RT("{prefix: /, headers: [{name: x, range_match: {start: 5, end: 5}}]}", OK_ACTION),
     "match.headers[0].range_match: start must be below end"},
    {RT("{prefix: /, query_parameters: [{name: q, string_match: {safe_regex: {regex: '('}}}]}",
        OK_ACTION),
     "match.query_parameters[0].string_match.safe_regex.regex: missing closing parenthesis"},
    {RT("{prefix: /}", "route: {cluster: nope}"),
     "virtual_hosts[0].routes[0].route.cluster: unknown cluster 'nope'"},
    {RT("{prefix: /}", "route: {cluster_header: x-cluster}"),
     "routes[0].route.cluster_header: not supported"},
    {RT("{prefix: /}", "route: {timeout: 1s}"),
     "routes[0].route: one of cluster, weighted_clusters is required"},
    {RT("{prefix: /}", "route: {weighted_clusters: {clusters: [{name: a, weight: 0}]}}"),
     "route.weighted_clusters: sum of weights must be greater than 0"},
    {RT("{prefix: /}", "route: {weighted_clusters: {clusters: [{name: a, weight: 1}, {name: x, "
                       "weight: 1}]}}"),
     "route.weighted_clusters.clusters[1].name: unknown cluster 'x'"},
    {RT("{prefix: /}", "route: {weighted_clusters: {clusters: [{cluster_header: h, weight: 1}]}}"),
     "weighted_clusters.clusters[0].cluster_header: not supported"},
    {RT("{prefix: /}", "route: {weighted_clusters: {clusters: [{name: a, weight: 1}], "
                       "runtime_key_prefix: k}}"),
     "weighted_clusters.runtime_key_prefix: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, prefix_rewrite: /x, regex_rewrite: {pattern: {regex: "
                       "a}, substitution: b}}"),
     "route: only one of prefix_rewrite and regex_rewrite"},
    {RT("{prefix: /}",
        "route: {cluster: a, regex_rewrite: {pattern: {regex: a}, substitution: '\\1'}}"),
     "route.regex_rewrite.substitution: \\1 refers to a missing group"},
    {RT("{prefix: /}", "route: {cluster: a, regex_rewrite: {pattern: {regex: 'a)'}}}"),
     "route.regex_rewrite.pattern.regex: "},
    {RT("{prefix: /}", "route: {cluster: a, hash_policy: [{header: {header_name: x}}]}"),
     "route.hash_policy: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, request_mirror_policies: [{cluster: b}]}"),
     "route.request_mirror_policies: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, host_rewrite_header: x-host}"),
     "route.host_rewrite_header: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, max_stream_duration: {max_stream_duration: 5s}}"),
     "route.max_stream_duration: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, retry_policy: {retry_priority: {name: p}}}"),
     "route.retry_policy.retry_priority: not supported"},
    {RT("{prefix: /}", "route: {cluster: a, retry_policy: {retry_host_predicate: [{name: x}]}}"),
     "route.retry_policy.retry_host_predicate: predicate x not supported"},
    {RT("{prefix: /}",
        "route: {cluster: a, retry_policy: {retry_back_off: {base_interval: 1s, max_interval: "
        "0.5s}}}"),
     "retry_back_off.max_interval: must be >= base_interval"},
    {RT("{prefix: /}", "direct_response: {status: 100}"),
     "routes[0].direct_response.status: 100 is not in [200, 600)"},
    {RT("{prefix: /}", "direct_response: {status: 200, body: {filename: /nonexistent/rs}}"),
     "routes[0].direct_response.body.filename: cannot open /nonexistent/rs"},
    {"max_direct_response_body_size_bytes: 2\n" RT(
         "{prefix: /}", "direct_response: {status: 200, body: {inline_string: abc}}"),
     "direct_response.body: response body is 3 bytes, over the maximum of 2"},
    {RT("{prefix: /}", "route: {cluster: a}, request_headers_to_add: [{header: {key: ':path', "
                       "value: x}}]"),
     "routes[0].request_headers_to_add[0].header.key: ':'-prefixed or host headers"},
    {RT("{prefix: /}", "route: {cluster: a}, request_headers_to_remove: [Host]"),
     "routes[0].request_headers_to_remove[0]: ':'-prefixed or host headers"},
    {RT("{prefix: /}", "route: {cluster: a}, response_headers_to_add: [{header: {key: x, value: "
                       "'%START_TIME%'}}]"),
     "response_headers_to_add[0].header.value: format specifier %START_TIME% not supported"},
    {RT("{prefix: /}", "route: {cluster: a}, response_headers_to_add: [{header: {key: x, value: "
                       "'50%'}}]"),
     "response_headers_to_add[0].header.value: unterminated % at offset 2"},
    {RT("{prefix: /}", "route: {cluster: a}, request_headers_to_add: [{header: {key: x, value: "
                       "y}, append: true, append_action: ADD_IF_ABSENT}]"),
     "request_headers_to_add[0].append: both append and append_action are set"},
    {RT("{prefix: /}", "route: {cluster: a}, typed_per_filter_config: {f: {'@type': "
                       "type.googleapis.com/google.protobuf.Empty}}"),
     "routes[0].typed_per_filter_config: not supported"},
    {VH "  - {match: {prefix: /}}\n", "routes[0]: one of route, direct_response is required"},
    {VH "  - {match: {prefix: /}, route: {cluster: a}}\n"
        "  cors: {allow_credentials: true}\n",
     "virtual_hosts[0].cors: not supported"},
    {VH "  - {match: {prefix: /}, route: {cluster: a}}\n"
        "  require_tls: ALL\n",
     "virtual_hosts[0].require_tls: not supported"},
    {VH "  - {match: {prefix: /}, route: {cluster: a}}\n"
        "  rate_limits: [{actions: [{generic_key: {descriptor_value: x}}]}]\n",
     "virtual_hosts[0].rate_limits: not supported"},
    {"vhds: {config_source: {ads: {}}}\n", "vhds: not supported"},
    {"internal_only_headers: [x-internal]\n", "internal_only_headers: not supported"},
    {"ignore_path_parameters_in_path_matching: true\n",
     "ignore_path_parameters_in_path_matching: not supported"},
};

static void test_compile_errors(void)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        if (!fails_with(errors[i].yaml, errors[i].want)) {
            fprintf(stderr, "  (error case %zu)\n", i);
            rs_test_current_failed = 1;
        }
    }
}

static void test_hints_accepted(void)
{
    (void)rs_test_failures; /* test.h declares it; nothing here uses it */
    struct rs_route_table *t =
        compile("name: local_route\n"
                "virtual_hosts:\n"
                "- name: v\n"
                "  domains: ['*']\n"
                "  include_request_attempt_count: true\n"
                "  virtual_clusters: [{name: vc, headers: [{name: ':path', exact_match: /x}]}]\n"
                "  routes:\n"
                "  - name: r\n"
                "    stat_prefix: sp\n"
                "    decorator: {operation: op}\n"
                "    metadata: {filter_metadata: {istio: {config: x}}}\n"
                "    match: {prefix: /}\n"
                "    route: {cluster: a}\n");
    CHECK(t);
    if (!t) return;
    const struct rs_route *r = match(t, "/");
    CHECK(r && r->vhost->include_request_attempt_count);
    rs_route_table_free(t);
}

RUN_TESTS(TEST_CASE(test_domain_precedence), TEST_CASE(test_domain_ports),
          TEST_CASE(test_domain_errors), TEST_CASE(test_path_kinds),
          TEST_CASE(test_first_match_wins), TEST_CASE(test_header_match),
          TEST_CASE(test_query_params), TEST_CASE(test_weighted_clusters), TEST_CASE(test_rewrites),
          TEST_CASE(test_header_edit_order), TEST_CASE(test_direct_response),
          TEST_CASE(test_timeouts_and_retry), TEST_CASE(test_unknown_cluster_unvalidated),
          TEST_CASE(test_compile_errors), TEST_CASE(test_hints_accepted))
