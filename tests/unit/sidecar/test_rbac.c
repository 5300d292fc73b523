/* The RBAC engine on the shapes Istio's AuthorizationPolicy compiles to (ALLOW and DENY policies,
 * principals, not_id, source ranges, paths, methods, ports), Envoy's edge semantics (no policies,
 * missing headers, network evaluation without headers, policy order, LOG, shadow rules), and
 * every refusal with its message. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "sidecar/rbac.h"
#include "test.h"
#include "xds/pbload.h"

static char err[1024];

static ProtobufCMessage *load(const ProtobufCMessageDescriptor *d, const char *yaml)
{
    err[0] = 0;
    ProtobufCMessage *m = xds_load_yaml(d, yaml, strlen(yaml), 0, err, sizeof err);
    if (!m) fprintf(stderr, "  yaml: %s\n", err);
    return m;
}

/* Compiles RBAC rules from YAML; NULL (message in err) when refused. */
static struct rs_rbac *rbac(const char *yaml)
{
    ProtobufCMessage *m = load(&envoy__config__rbac__v3__rbac__descriptor, yaml);
    if (!m) return NULL;
    struct rs_rbac *r = rs_rbac_compile((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

static struct rs_rbac_filter *http_filter(const char *yaml)
{
    ProtobufCMessage *m = load(&envoy__extensions__filters__http__rbac__v3__rbac__descriptor, yaml);
    if (!m) return NULL;
    struct rs_rbac_filter *f = rs_rbac_filter_http((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    return f;
}

static struct rs_rbac_filter *net_filter(const char *yaml)
{
    ProtobufCMessage *m =
        load(&envoy__extensions__filters__network__rbac__v3__rbac__descriptor, yaml);
    if (!m) return NULL;
    struct rs_rbac_filter *f = rs_rbac_filter_network((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    return f;
}

/* ---- inputs ---------------------------------------------------------------------------------- */

struct hdr {
    const char *name, *value;
};

/* A request: up to 4 extra headers besides :method/:path/:authority. */
struct req {
    struct sockaddr_storage src, rem, dst;
    struct hdr h[4];
    struct rs_rbac_input in;
};

static bool lookup(void *ctx, const char *lname, size_t len, const char **v, size_t *vlen)
{
    const struct req *r = ctx;
    for (int i = 0; i < 4 && r->h[i].name; i++)
        if (strlen(r->h[i].name) == len && !memcmp(r->h[i].name, lname, len)) {
            *v = r->h[i].value, *vlen = strlen(r->h[i].value);
            return true;
        }
    return false;
}

static void set_addr(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET, a4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6, a6->sin6_port = htons((uint16_t)port);
    } else {
        abort();
    }
}

/* A connection from `src` (peer principal `who`, NULL = plaintext) to 10.0.0.9:`port`. */
static struct req *conn(struct req *r, const char *who, const char *src, unsigned port)
{
    memset(r, 0, sizeof *r);
    set_addr(&r->src, src, 40000);
    set_addr(&r->dst, "10.0.0.9", port);
    r->in.peer_principal = who;
    r->in.source = (const struct sockaddr *)&r->src;
    r->in.destination = (const struct sockaddr *)&r->dst;
    return r;
}

/* An HTTP request on conn(). */
static struct req *http(struct req *r, const char *who, const char *method, const char *path)
{
    conn(r, who, "10.1.2.3", 8080);
    r->in.http = true;
    r->in.method = method, r->in.method_len = strlen(method);
    r->in.path = path, r->in.path_len = strlen(path);
    r->in.authority = "reviews:9080", r->in.authority_len = strlen("reviews:9080");
    r->in.header = lookup, r->in.ctx = r;
    return r;
}

static enum rs_rbac_result eval(const struct rs_rbac *rb, struct req *r, const char **pol)
{
    return rs_rbac_eval(rb, &r->in, pol);
}

#define BAR "spiffe://cluster.local/ns/foo/sa/bar"
#define OTHER "spiffe://cluster.local/ns/foo/sa/other"

/* ---- Istio shapes ---------------------------------------------------------------------------- */

/* AuthorizationPolicy ALLOW: from principals [foo/bar], to paths ["/api/" prefix] methods [GET]. */
static const char *istio_allow =
    "action: ALLOW\n"
    "policies:\n"
    "  ns[foo]-policy[viewer]-rule[0]:\n"
    "    permissions:\n"
    "    - and_rules:\n"
    "        rules:\n"
    "        - or_rules: { rules: [ { url_path: { path: { prefix: /api/ } } } ] }\n"
    "        - or_rules: { rules: [ { header: { name: ':method', string_match: { exact: GET } } } "
    "] }\n"
    "    principals:\n"
    "    - and_ids:\n"
    "        ids:\n"
    "        - or_ids: { ids: [ { authenticated: { principal_name: { exact: '" BAR "' } } } ] }\n";

static void test_istio_allow_principal_path_method(void)
{
    struct rs_rbac *rb = rbac(istio_allow);
    CHECK(rb != NULL);
    if (!rb) return;
    CHECK_EQ_INT(rs_rbac_action(rb), RS_RBAC_ACTION_ALLOW);
    CHECK_EQ_INT(rs_rbac_policy_count(rb), 1);
    struct req r;
    const char *pol = "x";
    CHECK_EQ_INT(eval(rb, http(&r, BAR, "GET", "/api/books"), &pol), RS_RBAC_ALLOWED);
    CHECK_STR(pol, "ns[foo]-policy[viewer]-rule[0]");
    /* url_path ignores the query and fragment; :path keeps them. */
    CHECK_EQ_INT(eval(rb, http(&r, BAR, "GET", "/api/books?x=1#f"), &pol), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, http(&r, BAR, "GET", "/x?next=/api/"), &pol), RS_RBAC_DENIED);
    CHECK(pol == NULL);
    CHECK_EQ_INT(eval(rb, http(&r, BAR, "GET", "/apix"), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, http(&r, BAR, "POST", "/api/books"), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, http(&r, OTHER, "GET", "/api/books"), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, http(&r, NULL, "GET", "/api/books"), NULL), RS_RBAC_DENIED);
    /* The same policy on the network filter: no path, no method, so nothing is allowed. */
    CHECK_EQ_INT(eval(rb, conn(&r, BAR, "10.1.2.3", 8080), NULL), RS_RBAC_DENIED);
    rs_rbac_free(rb);
}

/* AuthorizationPolicy DENY: from namespaces [bad] (Istio: a regex on the principal), to any. */
static void test_istio_deny_namespace(void)
{
    struct rs_rbac *rb =
        rbac("action: DENY\n"
             "policies:\n"
             "  ns[foo]-policy[deny-bad]-rule[0]:\n"
             "    permissions: [ { any: true } ]\n"
             "    principals:\n"
             "    - and_ids:\n"
             "        ids:\n"
             "        - or_ids: { ids: [ { authenticated: { principal_name: { safe_regex: { "
             "regex: '.*/ns/bad/.*' } } } } ] }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    const char *pol = NULL;
    CHECK_EQ_INT(eval(rb, conn(&r, "spiffe://cluster.local/ns/bad/sa/x", "10.1.2.3", 80), &pol),
                 RS_RBAC_DENIED);
    CHECK_STR(pol, "ns[foo]-policy[deny-bad]-rule[0]");
    CHECK_EQ_INT(eval(rb, conn(&r, BAR, "10.1.2.3", 80), &pol), RS_RBAC_ALLOWED);
    CHECK(pol == NULL);
    /* Full match: the regex must cover the whole principal. */
    CHECK_EQ_INT(eval(rb, conn(&r, "spiffe://cluster.local/ns/badder/sa/x", "10.1.2.3", 80), NULL),
                 RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* notPrincipals [foo/bar] and a principal prefix: Istio's not_id inside and_ids. */
static void test_istio_not_principal(void)
{
    struct rs_rbac *rb = rbac(
        "action: ALLOW\n"
        "policies:\n"
        "  ns[foo]-policy[not-bar]-rule[0]:\n"
        "    permissions: [ { and_rules: { rules: [ { any: true } ] } } ]\n"
        "    principals:\n"
        "    - and_ids:\n"
        "        ids:\n"
        "        - or_ids: { ids: [ { authenticated: { principal_name: { prefix: "
        "'spiffe://cluster.local/' } } } ] }\n"
        "        - not_id: { or_ids: { ids: [ { authenticated: { principal_name: { exact: '" BAR
        "' } } } ] } }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    CHECK_EQ_INT(eval(rb, conn(&r, OTHER, "10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, conn(&r, "spiffe://other.domain/ns/a/sa/b", "10.1.2.3", 80), NULL),
                 RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), NULL), RS_RBAC_DENIED);
    rs_rbac_free(rb);
}

/* ipBlocks [10.0.0.0/8] and remoteIpBlocks [2001:db8::/32]; notIpBlocks [10.9.0.0/16]. */
static void test_istio_source_ip_ranges(void)
{
    struct rs_rbac *rb =
        rbac("action: ALLOW\n"
             "policies:\n"
             "  ns[foo]-policy[ips]-rule[0]:\n"
             "    permissions: [ { any: true } ]\n"
             "    principals:\n"
             "    - and_ids:\n"
             "        ids:\n"
             "        - or_ids: { ids: [ { direct_remote_ip: { address_prefix: 10.7.7.7, "
             "prefix_len: 8 } }, { remote_ip: { address_prefix: '2001:db8::', prefix_len: 32 } } ] "
             "}\n"
             "        - not_id: { or_ids: { ids: [ { source_ip: { address_prefix: 10.9.0.0, "
             "prefix_len: 16 } } ] } }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "11.0.0.1", 80), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.9.1.1", 80), NULL), RS_RBAC_DENIED);
    /* A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6. */
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "::ffff:10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "2001:db8:1::5", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "2001:db9::5", 80), NULL), RS_RBAC_DENIED);
    /* remote_ip reads the remote address (x-forwarded-for) when the caller has one. */
    conn(&r, NULL, "192.168.1.1", 80);
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_DENIED);
    set_addr(&r.rem, "2001:db8::1", 0);
    r.in.remote = (const struct sockaddr *)&r.rem;
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* to: ports [8080, 9000-9009 as Istio never does, but Envoy can], notPorts via not_rule. */
static void test_destination_ports_and_ip(void)
{
    struct rs_rbac *rb = rbac(
        "action: ALLOW\n"
        "policies:\n"
        "  ports:\n"
        "    permissions:\n"
        "    - and_rules:\n"
        "        rules:\n"
        "        - or_rules: { rules: [ { destination_port: 8080 }, { destination_port_range: "
        "{ start: 9000, end: 9010 } } ] }\n"
        "        - not_rule: { destination_ip: { address_prefix: 10.0.0.1, prefix_len: 31 } }\n"
        "    principals: [ { any: true } ]\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 8080), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 9000), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 9009), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 9010), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 8081), NULL), RS_RBAC_DENIED);
    conn(&r, NULL, "10.1.2.3", 8080);
    set_addr(&r.dst, "10.0.0.1", 8080);
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_DENIED);
    set_addr(&r.dst, "10.0.0.0", 8080); /* the prefix's host bit is ignored */
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_DENIED);
    set_addr(&r.dst, "10.0.0.2", 8080);
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* ---- Envoy's semantics ----------------------------------------------------------------------- */

static void test_no_policies(void)
{
    struct req r;
    struct rs_rbac *rb = rbac("action: ALLOW\n");
    CHECK(rb && eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL) == RS_RBAC_DENIED);
    rs_rbac_free(rb);
    rb = rbac("action: DENY\n");
    CHECK(rb && eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL) == RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
    rb = rbac("action: LOG\n");
    CHECK(rb && eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL) == RS_RBAC_NOT_LOGGED);
    rs_rbac_free(rb);
}

/* url_path compares the path without query and fragment; a :path header rule sees it all. */
static void test_url_path_strips_query(void)
{
    struct rs_rbac *rb = rbac("policies: { p: { permissions: [ { url_path: { path: { exact: "
                              "/books } } } ], principals: [ { any: true } ] } }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    CHECK_EQ_INT(eval(rb, http(&r, NULL, "GET", "/books"), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, http(&r, NULL, "GET", "/books?id=1"), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, http(&r, NULL, "GET", "/books#top"), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, http(&r, NULL, "GET", "/books/1"), NULL), RS_RBAC_DENIED);
    rs_rbac_free(rb);
}

/* A policy name given twice (two documents merged: map entries append) keeps its last value. */
static void test_repeated_policy_name_last_wins(void)
{
    const char *a = "policies: { p: { permissions: [ { destination_port: 80 } ], principals: [ { "
                    "any: true } ] } }\n";
    const char *b = "policies: { p: { permissions: [ { destination_port: 81 } ], principals: [ { "
                    "any: true } ] } }\n";
    ProtobufCMessage *m = load(&envoy__config__rbac__v3__rbac__descriptor, a);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_INT(xds_load_yaml_into(m, b, strlen(b), 0, err, sizeof err), 0);
    CHECK_EQ_INT(((Envoy__Config__Rbac__V3__RBAC *)m)->n_policies, 2);
    struct rs_rbac *rb = rs_rbac_compile((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    CHECK(rb != NULL);
    if (!rb) return;
    CHECK_EQ_INT(rs_rbac_policy_count(rb), 1);
    struct req r;
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), NULL), RS_RBAC_DENIED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 81), NULL), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* Policies are tried in name order (Envoy's std::map); LOG never denies. */
static void test_policy_order_and_log(void)
{
    struct rs_rbac *rb = rbac("action: LOG\n"
                              "policies:\n"
                              "  zeta: { permissions: [ { any: true } ], principals: [ { any: true "
                              "} ] }\n"
                              "  alpha: { permissions: [ { destination_port: 80 } ], principals: [ "
                              "{ any: true } ] }\n"
                              "  beta: { permissions: [ { any: true } ], principals: [ { any: true "
                              "} ] }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    const char *pol = NULL;
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), &pol), RS_RBAC_LOGGED);
    CHECK_STR(pol, "alpha");
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 81), &pol), RS_RBAC_LOGGED);
    CHECK_STR(pol, "beta");
    rs_rbac_free(rb);
}

static const char *one_header_rule(const char *header_yaml)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "action: ALLOW\n"
             "policies:\n"
             "  h: { permissions: [ { header: %s } ], principals: [ { any: true } ] }\n",
             header_yaml);
    return buf;
}

/* Result of one header rule on a request with the given extra header (NULL: none). */
static enum rs_rbac_result on_header(const char *rule, const char *name, const char *value)
{
    struct rs_rbac *rb = rbac(one_header_rule(rule));
    if (!rb) return (enum rs_rbac_result) - 1;
    struct req r;
    http(&r, BAR, "GET", "/");
    r.h[0] = (struct hdr){name, value};
    enum rs_rbac_result res = eval(rb, &r, NULL);
    rs_rbac_free(rb);
    return res;
}

static void test_header_matchers(void)
{
    const enum rs_rbac_result A = RS_RBAC_ALLOWED, D = RS_RBAC_DENIED;
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { exact: alice } }", "x-user", "alice"),
                 A);
    CHECK_EQ_INT(on_header("{ name: X-User, string_match: { exact: alice } }", "x-user", "alice"),
                 A);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { exact: alice } }", "x-user", "Alice"),
                 D);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { exact: ALICE, ignore_case: true } }",
                           "x-user", "aLiCe"),
                 A);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { suffix: ice } }", "x-user", "alice"),
                 A);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { contains: lic } }", "x-user", "alice"),
                 A);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { contains: lix } }", "x-user", "alice"),
                 D);
    CHECK_EQ_INT(
        on_header("{ name: x-user, safe_regex_match: { regex: 'a.*e' } }", "x-user", "alice"), A);
    CHECK_EQ_INT(
        on_header("{ name: x-user, safe_regex_match: { regex: 'a.*c' } }", "x-user", "alice"), D);
    CHECK_EQ_INT(on_header("{ name: x-user, prefix_match: al }", "x-user", "alice"), A);
    CHECK_EQ_INT(on_header("{ name: x-n, range_match: { start: 10, end: 20 } }", "x-n", "19"), A);
    CHECK_EQ_INT(on_header("{ name: x-n, range_match: { start: 10, end: 20 } }", "x-n", "20"), D);
    CHECK_EQ_INT(on_header("{ name: x-n, range_match: { start: 10, end: 20 } }", "x-n", "1x"), D);
    /* Presence; a missing header matches nothing, even inverted, unless treated as empty. */
    CHECK_EQ_INT(on_header("{ name: x-user, present_match: true }", "x-user", ""), A);
    CHECK_EQ_INT(on_header("{ name: x-user, present_match: true }", NULL, NULL), D);
    CHECK_EQ_INT(on_header("{ name: x-user, present_match: false }", NULL, NULL), A);
    CHECK_EQ_INT(on_header("{ name: x-user, present_match: true, invert_match: true }", NULL, NULL),
                 A);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { exact: a }, invert_match: true }",
                           "x-user", "b"),
                 A);
    CHECK_EQ_INT(
        on_header("{ name: x-user, string_match: { exact: a }, invert_match: true }", NULL, NULL),
        D);
    CHECK_EQ_INT(on_header("{ name: x-user, string_match: { exact: '' }, "
                           "treat_missing_header_as_empty: true }",
                           NULL, NULL),
                 A);
    /* Pseudo headers come from the request line. */
    CHECK_EQ_INT(
        on_header("{ name: ':authority', string_match: { prefix: 'reviews' } }", NULL, NULL), A);
    CHECK_EQ_INT(on_header("{ name: ':path', string_match: { exact: '/' } }", NULL, NULL), A);
    /* No specifier: presence. */
    CHECK_EQ_INT(on_header("{ name: x-user }", "x-user", "v"), A);
    CHECK_EQ_INT(on_header("{ name: x-user }", NULL, NULL), D);
}

/* The network filter evaluates with no headers: only "absent" header rules can match. */
static void test_network_has_no_headers(void)
{
    struct rs_rbac *rb = rbac(one_header_rule("{ name: ':method', string_match: { exact: GET } }"));
    struct req r;
    CHECK(rb && eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL) == RS_RBAC_DENIED);
    rs_rbac_free(rb);
    rb = rbac(one_header_rule("{ name: ':method', present_match: false }"));
    CHECK(rb && eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL) == RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

static void test_requested_server_name(void)
{
    struct rs_rbac *rb =
        rbac("action: DENY\n"
             "policies:\n"
             "  sni:\n"
             "    permissions:\n"
             "    - requested_server_name: { safe_regex: { regex: '.*\\.internal' } }\n"
             "    - requested_server_name: { exact: '' }\n"
             "    principals: [ { any: true } ]\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    conn(&r, BAR, "10.1.2.3", 443);
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_DENIED); /* no SNI is "" */
    r.in.server_name = "db.internal";
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_DENIED);
    r.in.server_name = "db.internal.example.com";
    CHECK_EQ_INT(eval(rb, &r, NULL), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* authenticated without principal_name: any TLS peer; plaintext never. */
static void test_authenticated_any(void)
{
    struct rs_rbac *rb = rbac("policies: { tls: { permissions: [ { any: true } ], principals: [ { "
                              "authenticated: {} } ] } }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    struct req r;
    CHECK_EQ_INT(eval(rb, conn(&r, "", "10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, BAR, "10.1.2.3", 80), NULL), RS_RBAC_ALLOWED);
    CHECK_EQ_INT(eval(rb, conn(&r, NULL, "10.1.2.3", 80), NULL), RS_RBAC_DENIED);
    rs_rbac_free(rb);
}

/* A regex PCRE2 gives up on (match limit) decides nothing: the evaluation fails closed, even
 * for a DENY policy whose failing to match would have allowed. */
static void test_regex_failure_fails_closed(void)
{
    struct rs_rbac *rb =
        rbac("action: DENY\n"
             "policies:\n"
             "  evil: { permissions: [ { header: { name: x-v, safe_regex_match: { "
             "regex: '(a|aa)+(b|c)\\1' } } } ], principals: [ { any: true } ] }\n");
    CHECK(rb != NULL);
    if (!rb) return;
    char v[200];
    memset(v, 'a', sizeof v - 2);
    v[sizeof v - 2] = 'd', v[sizeof v - 1] = 0;
    struct req r;
    http(&r, BAR, "GET", "/");
    r.h[0] = (struct hdr){"x-v", v};
    const char *pol = "x";
    CHECK_EQ_INT(eval(rb, &r, &pol), RS_RBAC_DENIED);
    CHECK(pol == NULL);
    r.h[0] = (struct hdr){"x-v", "ab"};
    CHECK_EQ_INT(eval(rb, &r, &pol), RS_RBAC_ALLOWED);
    rs_rbac_free(rb);
}

/* ---- filters --------------------------------------------------------------------------------- */

static void test_http_filter_rules_and_shadow(void)
{
    struct rs_rbac_filter *f =
        http_filter("rules_stat_prefix: 'istio_'\n"
                    "rules:\n"
                    "  action: DENY\n"
                    "  policies: { admin: { permissions: [ { url_path: { path: { prefix: /admin } "
                    "} } ], principals: [ { any: true } ] } }\n"
                    "shadow_rules_stat_prefix: 'dry_'\n"
                    "shadow_rules:\n"
                    "  policies: { bar-only: { permissions: [ { any: true } ], principals: [ { "
                    "authenticated: { principal_name: { exact: '" BAR "' } } } ] } }\n");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_STR(f->rules_stat_prefix, "istio_");
    CHECK_STR(f->shadow_rules_stat_prefix, "dry_");
    struct req r;
    struct rs_rbac_decision d;
    rs_rbac_filter_eval(f, &http(&r, OTHER, "GET", "/admin/x")->in, &d);
    CHECK_EQ_INT(d.result, RS_RBAC_DENIED);
    CHECK_STR(d.policy, "admin");
    CHECK(d.shadowed);
    CHECK_EQ_INT(d.shadow_result, RS_RBAC_DENIED);
    CHECK(d.shadow_policy == NULL);
    rs_rbac_filter_eval(f, &http(&r, BAR, "GET", "/x")->in, &d);
    CHECK_EQ_INT(d.result, RS_RBAC_ALLOWED);
    CHECK_EQ_INT(d.shadow_result, RS_RBAC_ALLOWED);
    CHECK_STR(d.shadow_policy, "bar-only");
    rs_rbac_filter_free(f);

    /* No rules at all: everything passes, nothing shadowed. */
    f = http_filter("shadow_rules_stat_prefix: x\n");
    CHECK(f != NULL);
    if (!f) return;
    rs_rbac_filter_eval(f, &http(&r, NULL, "GET", "/")->in, &d);
    CHECK_EQ_INT(d.result, RS_RBAC_ALLOWED);
    CHECK(!d.shadowed);
    rs_rbac_filter_free(f);
}

static void test_network_filter(void)
{
    struct rs_rbac_filter *f =
        net_filter("stat_prefix: tcp.\n"
                   "enforcement_type: CONTINUOUS\n"
                   "rules:\n"
                   "  policies: { p: { permissions: [ { destination_port: 9000 } ], principals: "
                   "[ { authenticated: { principal_name: { exact: '" BAR "' } } } ] } }\n");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_STR(f->stat_prefix, "tcp.");
    CHECK(f->continuous);
    struct req r;
    struct rs_rbac_decision d;
    rs_rbac_filter_eval(f, &conn(&r, BAR, "10.1.2.3", 9000)->in, &d);
    CHECK_EQ_INT(d.result, RS_RBAC_ALLOWED);
    rs_rbac_filter_eval(f, &conn(&r, OTHER, "10.1.2.3", 9000)->in, &d);
    CHECK_EQ_INT(d.result, RS_RBAC_DENIED);
    rs_rbac_filter_free(f);
}

/* ---- refusals -------------------------------------------------------------------------------- */

/* The rules are refused with exactly this message. */
static void refused(const char *yaml, const char *want, int line)
{
    struct rs_rbac *rb = rbac(yaml);
    if (rb) {
        fprintf(stderr, "  line %d: accepted, expected \"%s\"\n", line, want);
        rs_rbac_free(rb);
        rs_test_current_failed = 1;
        return;
    }
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "  line %d: \"%s\" != \"%s\"\n", line, err, want);
        rs_test_current_failed = 1;
    }
}
#define REFUSED(yaml, want) refused((yaml), (want), __LINE__)

static const char *perm(const char *p)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "policies: { p: { permissions: [ %s ], principals: [ { any: true } ] } }", p);
    return buf;
}

static const char *princ(const char *p)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "policies: { p: { permissions: [ { any: true } ], principals: [ %s ] } }", p);
    return buf;
}

static void test_refusals(void)
{
    REFUSED("policies: { p: { permissions: [ { any: true } ], principals: [ { any: true } ], "
            "condition: { const_expr: { bool_value: true } } } }",
            "policies[\"p\"].condition: not supported: CEL expressions");
    REFUSED("policies: { p: { permissions: [ { any: true } ], principals: [ { any: true } ], "
            "checked_condition: { expr: { const_expr: { bool_value: true } } } } }",
            "policies[\"p\"].checked_condition: not supported: CEL expressions");
    REFUSED("audit_logging_options: { audit_condition: ON_DENY }",
            "audit_logging_options: not supported: RBAC audit loggers");
    REFUSED("policies: { p: { principals: [ { any: true } ] } }",
            "policies[\"p\"].permissions: at least one is required");
    REFUSED("policies: { p: { permissions: [ { any: true } ] } }",
            "policies[\"p\"].principals: at least one is required");
    REFUSED(perm("{ metadata: { filter: istio_authn, path: [ { key: request.auth.principal } ], "
                 "value: { string_match: { exact: x } } } }"),
            "policies[\"p\"].permissions[0].metadata: not supported: no dynamic metadata reaches "
            "RBAC in Ringside");
    REFUSED(perm("{ matcher: { name: m } }"),
            "policies[\"p\"].permissions[0].matcher: not supported: permission matcher extensions");
    REFUSED(perm("{ uri_template: { name: t } }"),
            "policies[\"p\"].permissions[0].uri_template: not supported: URI template matching");
    REFUSED(perm("{ any: false }"), "policies[\"p\"].permissions[0].any: must be true");
    REFUSED(perm("{}"), "policies[\"p\"].permissions[0]: a rule is required (any, and_rules, "
                        "or_rules, not_rule, header, url_path, destination_ip, destination_port, "
                        "destination_port_range, requested_server_name)");
    REFUSED(perm("{ and_rules: { rules: [ { any: true }, { or_rules: {} } ] } }"),
            "policies[\"p\"].permissions[0].and_rules.rules[1].or_rules.rules: at least one is "
            "required");
    REFUSED(perm("{ header: { name: x, safe_regex_match: { regex: 'a(' } } }"),
            "policies[\"p\"].permissions[0].header.safe_regex_match.regex: missing closing "
            "parenthesis at offset 2");
    REFUSED(perm("{ header: { string_match: { exact: x } } }"),
            "policies[\"p\"].permissions[0].header.name: required");
    REFUSED(perm("{ header: { name: x, string_match: { prefix: '' } } }"),
            "policies[\"p\"].permissions[0].header.string_match.prefix: must not be empty");
    REFUSED(perm("{ url_path: { path: { custom: { name: c } } } }"),
            "policies[\"p\"].permissions[0].url_path.path.custom: not supported");
    REFUSED(perm("{ url_path: {} }"), "policies[\"p\"].permissions[0].url_path.path: required");
    REFUSED(perm("{ requested_server_name: {} }"),
            "policies[\"p\"].permissions[0].requested_server_name: one of exact, prefix, suffix, "
            "contains, safe_regex is required");
    REFUSED(perm("{ destination_ip: { address_prefix: 10.0.0.0, prefix_len: 33 } }"),
            "policies[\"p\"].permissions[0].destination_ip.prefix_len: 33 is longer than the 32 "
            "bits of 10.0.0.0");
    REFUSED(perm("{ destination_ip: { address_prefix: not-an-ip } }"),
            "policies[\"p\"].permissions[0].destination_ip.address_prefix: not an IPv4 or IPv6 "
            "address");
    REFUSED(perm("{ destination_port: 70000 }"),
            "policies[\"p\"].permissions[0].destination_port: 70000 is above 65535");
    REFUSED(princ("{ metadata: { filter: istio_authn, path: [ { key: request.auth.principal } ], "
                  "value: { string_match: { exact: x } } } }"),
            "policies[\"p\"].principals[0].metadata: not supported: no dynamic metadata reaches "
            "RBAC in Ringside (Istio matches request.auth claims with it: JWT is not implemented)");
    REFUSED(princ("{ filter_state: { key: k, string_match: { exact: v } } }"),
            "policies[\"p\"].principals[0].filter_state: not supported: no filter state reaches "
            "RBAC in Ringside");
    REFUSED(princ("{ or_ids: { ids: [ { not_id: { remote_ip: { address_prefix: '::1', prefix_len: "
                  "129 } } } ] } }"),
            "policies[\"p\"].principals[0].or_ids.ids[0].not_id.remote_ip.prefix_len: 129 is "
            "longer than the 128 bits of ::1");
    REFUSED(princ("{ authenticated: { principal_name: { safe_regex: { regex: '[' } } } }"),
            "policies[\"p\"].principals[0].authenticated.principal_name.safe_regex.regex: missing "
            "terminating ] for character class at offset 1");
    REFUSED(princ("{}"), "policies[\"p\"].principals[0]: an identifier is required (any, and_ids, "
                         "or_ids, not_id, authenticated, source_ip, direct_remote_ip, remote_ip, "
                         "header, url_path)");
}

/* 65 nested not_rule: refused by depth, not by the stack. */
static void test_refuses_deep_nesting(void)
{
    char yaml[4096];
    size_t n = (size_t)snprintf(yaml, sizeof yaml,
                                "policies: { p: { principals: [ { any: true } "
                                "], permissions: [ ");
    for (int i = 0; i < 65; i++) n += (size_t)snprintf(yaml + n, sizeof yaml - n, "{ not_rule: ");
    n += (size_t)snprintf(yaml + n, sizeof yaml - n, "{ any: true }");
    for (int i = 0; i < 65; i++) n += (size_t)snprintf(yaml + n, sizeof yaml - n, " }");
    snprintf(yaml + n, sizeof yaml - n, " ] } }");
    struct rs_rbac *rb = rbac(yaml);
    CHECK(rb == NULL);
    CHECK(strstr(err, "nested deeper than 64") != NULL);
    rs_rbac_free(rb);
}

static void test_filter_refusals(void)
{
    struct rs_rbac_filter *f = http_filter("matcher: {}\n");
    CHECK(f == NULL);
    CHECK_STR(err, "matcher: not supported (the unified matcher form)");
    f = http_filter("shadow_matcher: {}\n");
    CHECK(f == NULL);
    CHECK_STR(err, "shadow_matcher: not supported (the unified matcher form)");
    f = http_filter("shadow_rules: { policies: { p: { permissions: [ { any: true } ] } } }\n");
    CHECK(f == NULL);
    CHECK_STR(err, "shadow_rules.policies[\"p\"].principals: at least one is required");
    f = net_filter("rules: { action: DENY }\n");
    CHECK(f == NULL);
    CHECK_STR(err, "stat_prefix: required");
    f = net_filter("stat_prefix: t\nmatcher: {}\n");
    CHECK(f == NULL);
    CHECK_STR(err, "matcher: not supported (the unified matcher form)");
    f = net_filter("stat_prefix: t\nrules: { policies: { p: { permissions: [ { header: {} } ], "
                   "principals: [ { any: true } ] } } }\n");
    CHECK(f == NULL);
    CHECK_STR(err, "rules.policies[\"p\"].permissions[0].header.name: required");
}

RUN_TESTS(TEST_CASE(test_istio_allow_principal_path_method), TEST_CASE(test_istio_deny_namespace),
          TEST_CASE(test_istio_not_principal), TEST_CASE(test_istio_source_ip_ranges),
          TEST_CASE(test_destination_ports_and_ip), TEST_CASE(test_no_policies),
          TEST_CASE(test_url_path_strips_query), TEST_CASE(test_repeated_policy_name_last_wins),
          TEST_CASE(test_policy_order_and_log), TEST_CASE(test_header_matchers),
          TEST_CASE(test_network_has_no_headers), TEST_CASE(test_requested_server_name),
          TEST_CASE(test_authenticated_any), TEST_CASE(test_regex_failure_fails_closed),
          TEST_CASE(test_http_filter_rules_and_shadow), TEST_CASE(test_network_filter),
          TEST_CASE(test_refusals), TEST_CASE(test_refuses_deep_nesting),
          TEST_CASE(test_filter_refusals))
