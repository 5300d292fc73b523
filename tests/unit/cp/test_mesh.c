/* The mesh file: the example parses into the model with every policy carried, defaults are
 * Istio's, and each invalid shape is rejected with a message naming the file, line and field. */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "xds/cp/mesh.h"

static char err[1024];

/* examples/, found from this file's own path so the test runs from any directory. */
static const char *example_path(const char *name)
{
    static char buf[1024];
    const char *file = __FILE__, *cut = strstr(file, "tests/unit/cp/");
    snprintf(buf, sizeof buf, "%.*sexamples/%s", (int)(cut ? cut - file : 0), file, name);
    return buf;
}

static struct cp_mesh *parse(const char *text)
{
    err[0] = '\0';
    return cp_mesh_parse(text, strlen(text), "m.yaml", err, sizeof err);
}

static const struct cp_service *service(const struct cp_mesh *m, const char *name)
{
    for (size_t i = 0; i < m->n_services; i++)
        if (strcmp(m->services[i].name, name) == 0) return &m->services[i];
    return NULL;
}

static void test_example_mesh(void)
{
    struct cp_mesh *m = cp_mesh_load(example_path("mesh.yaml"), err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ_INT(m->n_services, 3);
    CHECK_EQ_INT(m->n_workloads, 5);
    CHECK_EQ_INT(m->options.bind, CP_BIND_WORKLOAD);
    CHECK_EQ_INT(m->options.connect_timeout_ms, 1000);
    const struct cp_service *r = service(m, "reviews");
    CHECK(r != NULL);
    if (!r) goto out;
    CHECK_STR(r->host, "reviews.default.svc.cluster.local");
    CHECK_EQ_INT(r->n_ports, 1);
    CHECK_EQ_INT(r->ports[0].port, 9080);
    CHECK_EQ_INT(r->ports[0].proto, CP_PROTO_HTTP);
    CHECK_STR(r->ports[0].name, "http-9080");
    CHECK_EQ_INT(r->n_subsets, 2);
    CHECK_STR(r->subsets[1].name, "v2");
    CHECK_STR(r->subsets[1].labels.v[0].key, "version");
    CHECK_STR(r->subsets[1].labels.v[0].value, "v2");
    CHECK_EQ_INT(r->timeout_ms, 5000);
    CHECK_EQ_INT(r->connect_timeout_ms, 1000); /* the mesh option */
    CHECK(r->retries.set);
    CHECK_EQ_INT(r->retries.attempts, 3);
    CHECK_EQ_INT(r->retries.per_try_timeout_ms, 1000);
    CHECK_STR(r->retries.retry_on, "5xx,connect-failure");
    CHECK(r->outlier.set);
    CHECK_EQ_INT(r->outlier.consecutive_5xx, 5);
    CHECK_EQ_INT(r->outlier.base_ejection_time_ms, 30000);
    CHECK_EQ_INT(r->outlier.max_ejection_percent, 10); /* Istio's default */
    CHECK(r->breakers.set);
    CHECK_EQ_INT(r->breakers.max_connections, 100);
    CHECK_EQ_INT(r->breakers.max_pending_requests, 1024); /* Envoy's default */
    CHECK_EQ_INT(r->n_routes, 2);
    CHECK_STR(r->routes[0].name, "jason");
    CHECK_EQ_INT(r->routes[0].n_headers, 1);
    CHECK_STR(r->routes[0].headers[0].name, "end-user");
    CHECK_EQ_INT(r->routes[0].headers[0].kind, CP_MATCH_EXACT);
    CHECK_STR(r->routes[0].headers[0].value, "jason");
    CHECK_EQ_INT(r->routes[0].n_dests, 1);
    CHECK_EQ_INT(r->routes[0].dests[0].weight, 100);
    CHECK(r->routes[0].retries.set); /* the service's, carried to each route */
    CHECK_EQ_INT(r->routes[1].n_dests, 2);
    CHECK_STR(r->routes[1].dests[0].subset, "v1");
    CHECK_EQ_INT(r->routes[1].dests[0].weight, 90);
    CHECK_EQ_INT(r->routes[1].dests[1].weight, 10);
    const struct cp_service *db = service(m, "db");
    CHECK(db && db->ports[0].proto == CP_PROTO_TCP);
    CHECK(db && db->n_routes == 1 && db->routes[0].dests[0].subset == NULL);
    const struct cp_workload *w = cp_mesh_workload_by_ip(m, "127.0.0.12");
    CHECK(w != NULL);
    if (w) {
        CHECK_STR(w->name, "reviews-v2");
        CHECK_STR(w->ns, "default");
        CHECK_STR(w->service_account, "default");
        CHECK_EQ_INT(w->port, 19080);
        CHECK_EQ_INT(w->n_services, 1);
        CHECK(&m->services[w->services[0]] == r);
        CHECK(cp_labels_match(&r->subsets[1].labels, &w->labels));
        CHECK(!cp_labels_match(&r->subsets[0].labels, &w->labels));
    }
    CHECK(cp_mesh_workload_by_ip(m, "10.0.0.1") == NULL);
out:
    cp_mesh_free(m);
}

static void test_defaults_and_namespaces(void)
{
    struct cp_mesh *m =
        parse("services:\n"
              "  - name: a\n"
              "    namespace: shop\n"
              "    ports: [{port: 80}]\n"
              "  - name: a\n"
              "    ports: [{port: 81, protocol: grpc, name: rpc}]\n"
              "workloads:\n"
              "  - {name: w, namespace: shop, address: '::1', services: [a, a.default]}\n");
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_STR(m->services[0].host, "a.shop.svc.cluster.local");
    CHECK_STR(m->services[1].host, "a.default.svc.cluster.local");
    CHECK_STR(m->services[1].ports[0].name, "rpc");
    CHECK_EQ_INT(m->options.bind, CP_BIND_ANY);
    CHECK_EQ_INT(m->options.capture, 0);
    CHECK_EQ_INT(m->options.connect_timeout_ms, 10000);
    CHECK_EQ_INT(m->services[0].n_routes, 1);
    CHECK_STR(m->services[0].routes[0].prefix, "/");
    CHECK_EQ_INT(m->services[0].lb, CP_LB_ROUND_ROBIN);
    /* "a" resolves in the workload's namespace, "a.default" names the other one. */
    CHECK_EQ_INT(m->workloads[0].n_services, 2);
    CHECK_EQ_INT(m->workloads[0].services[0], 0);
    CHECK_EQ_INT(m->workloads[0].services[1], 1);
    CHECK_EQ_INT(m->workloads[0].weight, 1);
    cp_mesh_free(m);
}

struct bad_case {
    const char *yaml;
    const char *message;
};

static const struct bad_case bad_cases[] = {
    {"services:\n  - name: a\n    ports:\n      - {port: 80, protocol: udp}\n",
     "m.yaml:4: services[0].ports[0].protocol: must be http, tcp or grpc (got \"udp\")"},
    {"services:\n  - name: a\n    prots: []\n", "m.yaml:3: services[0].prots: unknown field"},
    {"services:\n  - ports: [{port: 80}]\n",
     "m.yaml:2: services[0]: missing required field \"name\""},
    {"services:\n  - {name: a, ports: [{port: 80}]}\n  - {name: a, ports: [{port: 81}]}\n",
     "m.yaml:3: services[1]: service default/a defined twice"},
    {"services:\n  - {name: a, ports: [{port: 70000}]}\n",
     "m.yaml:2: services[0].ports[0].port: must be an integer from 1 to 65535 (got \"70000\")"},
    {"services:\n  - {name: a, ports: [{port: 80}, {port: 80}]}\n",
     "services[0].ports[1]: port 80 listed twice"},
    {"services:\n  - {name: a, ports: []}\n",
     "m.yaml:2: services[0].ports: must be a non-empty list"},
    {"services:\n  - {name: A_b, ports: [{port: 80}]}\n",
     "services[0].name: must be lower-case letters, digits and inner '-' (got \"A_b\")"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      timeout: 5 parsecs\n",
     "m.yaml:5: services[0].traffic.timeout: bad duration \"5 parsecs\" (e.g. 250ms, 1.5s, 2m)"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      routes:\n"
     "        - to: [{subset: v9}]\n",
     "services[0].traffic.routes[0].to[0].subset: service a has no subset \"v9\""},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    subsets: [{name: v1, labels: {v: "
     "'1'}}]\n    traffic:\n      routes:\n        - to: [{subset: v1, weight: 50}, {}]\n",
     "m.yaml:7: services[0].traffic.routes[0].to[1]: missing required field \"weight\" (the route "
     "splits traffic)"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      routes:\n"
     "        - to: [{weight: 0}]\n",
     "services[0].traffic.routes[0].to: weights sum to 0"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      routes:\n"
     "        - match: {headers: {x: {exact: a, prefix: b}}}\n          to: [{}]\n",
     "services[0].traffic.routes[0].match.headers.x: must have exactly one of exact, prefix, "
     "regex, present"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      routes:\n"
     "        - match: {prefix: api}\n          to: [{}]\n",
     "services[0].traffic.routes[0].match: prefix: must start with '/'"},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      retries: "
     "{per_try_timeout: 1s}\n",
     "services[0].traffic.retries: missing required field \"attempts\""},
    {"services:\n  - name: a\n    ports: [{port: 80}]\n    traffic:\n      lb_policy: maglev\n",
     "services[0].traffic.lb_policy: must be round_robin, least_request or random (got "
     "\"maglev\")"},
    {"services:\n  - {name: a, ports: [{port: 80}]}\nworkloads:\n  - {name: w, address: 1.2.3.4, "
     "services: [nope]}\n",
     "m.yaml:4: workloads[0].services[0]: no service \"nope\" in namespace \"default\""},
    {"workloads:\n  - {name: w, address: 1.2.3}\n",
     "workloads[0].address: not an IPv4 or IPv6 address (got \"1.2.3\")"},
    {"workloads:\n  - {name: w, address: 1.2.3.4}\n  - {name: x, address: 1.2.3.4}\n",
     "m.yaml:3: workloads[1]: address 1.2.3.4 already used by workload w (a node is found by its "
     "address)"},
    {"workloads:\n  - {address: 1.2.3.4}\n", "workloads[0]: missing required field \"name\""},
    {"services:\n  - {name: a, ports: [{port: 80, protocol: tcp}]}\n"
     "  - {name: b, ports: [{port: 80}]}\n",
     "services[1].ports[0]: port 80 is also a port of service a: a tcp port must belong to one "
     "service"},
    {"options: {bind: everywhere}\n",
     "m.yaml:1: options.bind: must be any or workload (got \"everywhere\")"},
    {"options: {capture: ebpf}\n", "options.capture: must be none or iptables (got \"ebpf\")"},
    {"services: {name: a}\n", "m.yaml:1: services: must be a list"},
    {"- a\n- b\n", "m.yaml:1: must be a map"},
    {"", "m.yaml: empty file"},
    {"services:\n  - name: [a\n", "m.yaml: "},
    {"services:\n  - name: a\n    name: b\n    ports: [{port: 80}]\n",
     "m.yaml:3: services[0].name: given twice"},
};

static void test_invalid_shapes(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct cp_mesh *m = parse(bad_cases[i].yaml);
        if (m) {
            fprintf(stderr, "  case %zu accepted, expected: %s\n", i, bad_cases[i].message);
            rs_test_current_failed = 1;
            cp_mesh_free(m);
            continue;
        }
        if (!strstr(err, bad_cases[i].message)) {
            fprintf(stderr, "  case %zu:\n    got      %s\n    expected %s\n", i, err,
                    bad_cases[i].message);
            rs_test_current_failed = 1;
        }
    }
}

static void test_unreadable_file(void)
{
    CHECK(cp_mesh_load("/nonexistent/mesh.yaml", err, sizeof err) == NULL);
    CHECK_STR(err, "/nonexistent/mesh.yaml: No such file or directory");
}

RUN_TESTS(TEST_CASE(test_example_mesh), TEST_CASE(test_defaults_and_namespaces),
          TEST_CASE(test_invalid_shapes), TEST_CASE(test_unreadable_file))
