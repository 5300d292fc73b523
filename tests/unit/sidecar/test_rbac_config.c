/* RBAC filters in the configuration compile: network RBAC stages on a filter chain, HTTP RBAC
 * stages on the HCM in http_filters order, RBACPerRoute compiled onto routes (most specific
 * wins), Envoy's stat names, x-forwarded-client-cert settings, and each refusal by name. The
 * stages' decisions (rs_rbac_stage_denies) and the denial details are checked here too. */
#include <arpa/inet.h>

#include "sidecar/authz.h"
#include "sidecar/config.h"
#include "sidecar/rbac.h"
#include "sidecar/router.h"
#include "test.h"
#include "xds/bootstrap.h"

static const char CLUSTER[] = "  clusters:\n"
                              "  - name: app\n"
                              "    type: STATIC\n"
                              "    load_assignment:\n"
                              "      cluster_name: app\n"
                              "      endpoints:\n"
                              "      - lb_endpoints:\n"
                              "        - endpoint: { address: { socket_address: { address: "
                              "127.0.0.1, port_value: 8080 } } }\n";

static const char NET_RBAC[] =
    "      - name: envoy.filters.network.rbac\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n"
    "          stat_prefix: tcp.\n"
    "          rules:\n"
    "            action: ALLOW\n"
    "            policies:\n"
    "              p: { permissions: [{ any: true }], principals: [{ authenticated: { "
    "principal_name: { exact: \"spiffe://td/ns/a/sa/b\" } } }] }\n"
    "%s";

static const char TCP[] =
    "      - name: envoy.filters.network.tcp_proxy\n"
    "        typed_config:\n"
    "          \"@type\": "
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n"
    "          stat_prefix: t\n"
    "          cluster: app\n";

/* An HCM with `filters` before the router and `route_extra` on its only route. */
static const char HCM[] =
    "      - name: envoy.filters.network.http_connection_manager\n"
    "        typed_config:\n"
    "          \"@type\": "
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
    "          stat_prefix: h\n"
    "%s"
    "          http_filters:\n"
    "%s"
    "          - name: envoy.filters.http.router\n"
    "            typed_config: { \"@type\": "
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }\n"
    "          route_config:\n"
    "            virtual_hosts:\n"
    "            - name: v\n"
    "              domains: [\"*\"]\n"
    "              routes:\n"
    "              - match: { prefix: /open }\n"
    "                route: { cluster: app }\n"
    "%s"
    "              - match: { prefix: / }\n"
    "                route: { cluster: app }\n";

static const char HTTP_ALLOW[] =
    "          - name: envoy.filters.http.rbac\n"
    "            typed_config:\n"
    "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n"
    "              rules:\n"
    "                action: ALLOW\n"
    "                policies:\n"
    "                  get: { permissions: [{ header: { name: \":method\", string_match: { "
    "exact: GET } } }], principals: [{ any: true }] }\n";

static const char HTTP_DENY[] =
    "          - name: deny\n"
    "            typed_config:\n"
    "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n"
    "              rules_stat_prefix: \"d_\"\n"
    "              rules:\n"
    "                action: DENY\n"
    "                policies:\n"
    "                  \"no admin\": { permissions: [{ url_path: { path: { prefix: /admin } } "
    "}], principals: [{ any: true }] }\n"
    "              shadow_rules: { action: ALLOW }\n";

static const char PER_ROUTE_OFF[] =
    "                typed_per_filter_config:\n"
    "                  envoy.filters.http.rbac:\n"
    "                    \"@type\": "
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute\n";

static struct rs_snapshot *compile_listener(const char *filters, char *err, size_t errlen)
{
    static char yaml[16384];
    snprintf(yaml, sizeof yaml,
             "static_resources:\n"
             "  listeners:\n"
             "  - name: l0\n"
             "    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }\n"
             "    filter_chains:\n"
             "    - filters:\n%s%s",
             filters, CLUSTER);
    xds_bootstrap *bs = xds_bootstrap_load_yaml_string(yaml, 0, err, errlen);
    if (!bs) return NULL;
    return rs_config_compile(bs, true, err, errlen);
}

static const char *hcm(const char *hcm_extra, const char *filters, const char *route_extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, HCM, hcm_extra, filters, route_extra);
    return buf;
}

static bool has_stat(const char *name)
{
    enum rs_stat_kind k;
    rs_stat_id id;
    for (size_t i = 0; i < rs_stats_count(); i++) {
        const char *n = rs_stats_name(i, &k, &id);
        if (n && strcmp(n, name) == 0) return true;
    }
    return false;
}

static struct rs_stats_shard *shard(void)
{
    static struct rs_stats_shard *sh;
    if (!sh) {
        rs_stats_init(1);
        sh = rs_stats_shard(0);
    }
    return sh;
}

static void test_network_rbac_compiled(void)
{
    char err[1024], filters[4096];
    snprintf(filters, sizeof filters, NET_RBAC, TCP);
    struct rs_snapshot *s = compile_listener(filters, err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    const struct rs_filter_chain *fc = &s->listeners[0].chains[0];
    CHECK_EQ_INT(fc->nrbac, 1);
    CHECK(fc->tcp != NULL);
    CHECK_STR(fc->rbac[0].name, "envoy.filters.network.rbac");
    /* Istio's "tcp." prefix: no double dot */
    CHECK(has_stat("tcp.rbac.allowed"));
    CHECK(has_stat("tcp.rbac.denied"));
    CHECK(has_stat("tcp.rbac.shadow_denied"));
    CHECK(!has_stat("tcp..rbac.denied"));
    /* the decision: the principal, or nothing (no TLS) */
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(5000)};
    inet_pton(AF_INET, "10.0.0.1", &peer.sin_addr);
    struct rs_rbac_input in = {.peer_principal = "spiffe://td/ns/a/sa/b",
                               .source = (struct sockaddr *)&peer,
                               .destination = (struct sockaddr *)&peer};
    const char *policy;
    uint64_t allowed0 = rs_stats_value(fc->rbac[0].allowed);
    CHECK(!rs_rbac_stage_denies(&fc->rbac[0], fc->rbac[0].f, shard(), &in, &policy));
    CHECK_STR(policy, "p");
    CHECK_EQ_INT(rs_stats_value(fc->rbac[0].allowed), allowed0 + 1);
    in.peer_principal = NULL;
    CHECK(rs_rbac_stage_denies(&fc->rbac[0], fc->rbac[0].f, shard(), &in, &policy));
    CHECK(policy == NULL);
    char d[100];
    CHECK_STR(rs_rbac_denied_details(policy, d, sizeof d),
              "rbac_access_denied_matched_policy[none]");
    rs_snapshot_unref(s);
}

static void test_http_rbac_stages_and_per_route(void)
{
    char err[1024], filters[4096];
    snprintf(filters, sizeof filters, "%s%s", HTTP_DENY, HTTP_ALLOW);
    struct rs_snapshot *s = compile_listener(
        hcm("          forward_client_cert_details: APPEND_FORWARD\n"
            "          set_current_client_cert_details: { subject: true, uri: true, dns: true, "
            "cert: true, chain: true }\n",
            filters, PER_ROUTE_OFF),
        err, sizeof err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    const struct rs_hcm_cfg *h = s->listeners[0].chains[0].hcm;
    CHECK_EQ_INT(h->nrbac, 2);
    CHECK_STR(h->rbac[0].name, "deny"); /* http_filters order: DENY first */
    CHECK_STR(h->rbac[1].name, "envoy.filters.http.rbac");
    CHECK(has_stat("http.h.rbac.d_denied")); /* rules_stat_prefix */
    CHECK(has_stat("http.h.rbac.allowed"));
    CHECK(has_stat("http.h.rbac.shadow_allowed"));
    CHECK_EQ_INT(h->xfcc_mode, RS_XFCC_APPEND_FORWARD);
    CHECK_EQ_INT(h->xfcc_set,
                 RS_XFCC_SUBJECT | RS_XFCC_URI | RS_XFCC_DNS | RS_XFCC_CERT | RS_XFCC_CHAIN);
    /* RBACPerRoute on /open: a filter without rules replaces the ALLOW stage there only */
    struct rs_route_request rq = {.method = "POST",
                                  .method_len = 4,
                                  .path = "/open/x",
                                  .path_len = 7,
                                  .authority = "a",
                                  .authority_len = 1};
    const struct rs_route *open = rs_route_match(h->routes, &rq);
    rq.path = "/other";
    rq.path_len = 6;
    const struct rs_route *other = rs_route_match(h->routes, &rq);
    CHECK(open && other && open != other);
    const struct rs_rbac_filter *po =
        rs_route_filter_config(h->routes, open, "envoy.filters.http.rbac");
    CHECK(po != NULL && po->rules == NULL);
    CHECK(rs_route_filter_config(h->routes, other, "envoy.filters.http.rbac") == NULL);
    CHECK(rs_route_filter_config(h->routes, open, "deny") == NULL);
    /* decisions: POST is denied by the ALLOW stage except on /open; /admin by the DENY stage */
    struct rs_rbac_input in = {
        .http = true, .method = "POST", .method_len = 4, .path = "/other", .path_len = 6};
    const char *policy;
    CHECK(!rs_rbac_stage_denies(&h->rbac[0], h->rbac[0].f, shard(), &in, &policy));
    CHECK(rs_rbac_stage_denies(&h->rbac[1], h->rbac[1].f, shard(), &in, &policy));
    CHECK(!rs_rbac_stage_denies(&h->rbac[1], po, shard(), &in, &policy));
    in.path = "/admin/x";
    in.path_len = 8;
    CHECK(rs_rbac_stage_denies(&h->rbac[0], h->rbac[0].f, shard(), &in, &policy));
    char d[100];
    /* whitespace in a policy name becomes '_', as Envoy's responseDetail */
    CHECK_STR(rs_rbac_denied_details(policy, d, sizeof d),
              "rbac_access_denied_matched_policy[no_admin]");
    rs_snapshot_unref(s);
}

/* FilterConfig keyed by an RBAC filter's name: disabled turns it off on the route; without a
 * config it only enables the filter (no override). */
static void test_filter_config_wrapper(void)
{
    static const char *const cases[] = {"{ disabled: true }", "{ }"};
    for (int i = 0; i < 2; i++) {
        char err[1024], route[512], filters[4096];
        snprintf(route, sizeof route,
                 "                typed_per_filter_config:\n"
                 "                  deny: { \"@type\": "
                 "type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: %s }\n",
                 i == 0 ? "true" : "false");
        snprintf(filters, sizeof filters, "%s", HTTP_DENY);
        struct rs_snapshot *s = compile_listener(hcm("", filters, route), err, sizeof err);
        CHECK(s != NULL);
        if (!s) {
            fprintf(stderr, "  %s: %s\n", cases[i], err);
            continue;
        }
        const struct rs_hcm_cfg *h = s->listeners[0].chains[0].hcm;
        struct rs_route_request rq = {.method = "GET",
                                      .method_len = 3,
                                      .path = "/open",
                                      .path_len = 5,
                                      .authority = "a",
                                      .authority_len = 1};
        const struct rs_route *open = rs_route_match(h->routes, &rq);
        const struct rs_rbac_filter *f = rs_route_filter_config(h->routes, open, "deny");
        if (i == 0)
            CHECK(f != NULL && f->rules == NULL);
        else
            CHECK(f == NULL);
        rs_snapshot_unref(s);
    }
}

static void expect_refusal(const char *filters, const char *want)
{
    char err[1024];
    struct rs_snapshot *s = compile_listener(filters, err, sizeof err);
    CHECK(s == NULL);
    if (s) {
        rs_snapshot_unref(s);
        return;
    }
    if (!strstr(err, want)) fprintf(stderr, "  \"%s\" lacks \"%s\"\n", err, want);
    CHECK(strstr(err, want) != NULL);
}

static void test_refusals(void)
{
    char f[4096];
    /* CEL conditions: refused with the field path */
    snprintf(
        f, sizeof f,
        "      - name: envoy.filters.network.rbac\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n"
        "          stat_prefix: x\n"
        "          rules:\n"
        "            policies:\n"
        "              p: { permissions: [{ any: true }], principals: [{ any: true }], "
        "condition: { const_expr: { bool_value: true } } }\n%s",
        TCP);
    expect_refusal(f, "filters[0].typed_config: rules.policies[\"p\"].condition: not supported");
    /* the unified matcher: refused by the filter table, by name */
    snprintf(
        f, sizeof f,
        "      - name: envoy.filters.network.rbac\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC\n"
        "          stat_prefix: x\n"
        "          matcher: { on_no_match: { action: { name: a, typed_config: { \"@type\": "
        "type.googleapis.com/envoy.config.rbac.v3.Action, name: deny, action: DENY } } } }\n%s",
        TCP);
    expect_refusal(f, "envoy.filters.network.rbac: matcher: the unified matcher form of RBAC");
    /* network RBAC after the terminal filter */
    char net[2048];
    snprintf(net, sizeof net, NET_RBAC, "");
    snprintf(f, sizeof f, "%s%s", TCP, net);
    expect_refusal(f, "no filter may follow the terminal filter");
    /* a disabled HTTP RBAC filter (enabled per route) */
    snprintf(f, sizeof f, "%s            disabled: true\n", HTTP_ALLOW);
    expect_refusal(hcm("", f, ""), "disabled: an RBAC filter enabled per route is not supported");
    /* an RBACPerRoute whose rules cannot be compiled */
    expect_refusal(hcm("", HTTP_ALLOW,
                       "                typed_per_filter_config:\n"
                       "                  envoy.filters.http.rbac:\n"
                       "                    \"@type\": "
                       "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute\n"
                       "                    rbac: { rules: { policies: { p: { permissions: [{ "
                       "metadata: {} }], principals: [{ any: true }] } } } }\n"),
                   "typed_per_filter_config: [\"envoy.filters.http.rbac\"]: rbac.rules.policies");
}

static void test_xff_addr(void)
{
    struct sockaddr_storage a;
    char ip[64];
    const char *x = "203.0.113.7, 10.0.0.1,  2001:db8::1 ";
    CHECK(rs_authz_xff_addr(x, strlen(x), 0, &a) && a.ss_family == AF_INET6);
    CHECK(rs_authz_xff_addr(x, strlen(x), 1, &a) && a.ss_family == AF_INET);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, ip, sizeof ip);
    CHECK_STR(ip, "10.0.0.1");
    CHECK(rs_authz_xff_addr(x, strlen(x), 2, &a));
    inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, ip, sizeof ip);
    CHECK_STR(ip, "203.0.113.7");
    CHECK(!rs_authz_xff_addr(x, strlen(x), 3, &a)); /* not that many hops */
    CHECK(!rs_authz_xff_addr("unknown", 7, 0, &a));
    CHECK(!rs_authz_xff_addr("1.2.3.4,", 8, 0, &a)); /* an empty last entry */
    CHECK(!rs_authz_xff_addr("", 0, 0, &a));
}

RUN_TESTS(TEST_CASE(test_network_rbac_compiled), TEST_CASE(test_xff_addr),
          TEST_CASE(test_http_rbac_stages_and_per_route), TEST_CASE(test_filter_config_wrapper),
          TEST_CASE(test_refusals))
