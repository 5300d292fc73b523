/* Resource generation from examples/mesh.yaml: Istio's names, cluster settings, endpoints by
 * subset, route configurations (domains, header routes, weights, retries, timeouts), outbound
 * and virtual listeners, inbound chains and clusters for the node's own workload, api_listeners
 * for proxyless gRPC, and versions that change only with the resource. */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "test.h"
#include "xds/any.h"
#include "xds/cp/gen.h"

typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment Cla;
typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfig;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;

#define HOST "reviews.default.svc.cluster.local"

static char err[1024];

static const char *example_path(void)
{
    static char buf[1024];
    const char *file = __FILE__, *cut = strstr(file, "tests/unit/cp/");
    snprintf(buf, sizeof buf, "%.*sexamples/mesh.yaml", (int)(cut ? cut - file : 0), file);
    return buf;
}

static struct cp_mesh *example(void)
{
    struct cp_mesh *m = cp_mesh_load(example_path(), err, sizeof err);
    if (!m) fprintf(stderr, "  %s\n", err);
    return m;
}

static struct cp_resources *gen_for(const struct cp_mesh *m, const char *node_id)
{
    struct cp_node node = {0};
    if (node_id) CHECK_EQ_INT(cp_node_parse(node_id, &node), 0);
    struct cp_resources *r = cp_generate(m, node_id ? &node : NULL, err, sizeof err);
    if (!r) fprintf(stderr, "  generate: %s\n", err);
    return r;
}

/* The resource t/name unpacked into its message (caller frees), or NULL. */
static void *unpack(const struct cp_resources *r, enum cp_type t, const char *name,
                    const ProtobufCMessageDescriptor *d)
{
    const struct cp_resource *res = cp_resources_find(r, t, name);
    if (!res) {
        fprintf(stderr, "  no %s resource \"%s\"\n", cp_type_short(t), name);
        return NULL;
    }
    return protobuf_c_message_unpack(d, NULL, res->len, res->bytes);
}

static void *unpack_any(const Google__Protobuf__Any *any, const ProtobufCMessageDescriptor *d)
{
    void *m = xds_any_unpack(any, d, err, sizeof err);
    if (!m) fprintf(stderr, "  any: %s\n", err);
    return m;
}

static void msg_free(void *m)
{
    if (m) protobuf_c_message_free_unpacked(m, NULL);
}

static void test_node_ids(void)
{
    struct cp_node n;
    CHECK_EQ_INT(cp_node_parse("sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local", &n),
                 0);
    CHECK_STR(n.ip, "10.1.2.3");
    CHECK_STR(n.pod, "reviews-v1-abc");
    CHECK_STR(n.ns, "shop");
    CHECK(n.sidecar);
    CHECK_EQ_INT(cp_node_parse("router~10.1.2.3~gw.shop~shop.svc.cluster.local", &n), -1);
    CHECK_EQ_INT(cp_node_parse("sidecar~10.1.2.3~nodot~shop.svc.cluster.local", &n), -1);
    CHECK_EQ_INT(cp_node_parse("sidecar~10.1.2.3~p.shop~other.svc.cluster.local", &n), -1);
    CHECK_EQ_INT(cp_node_parse("sidecar~~p.shop~shop.svc.cluster.local", &n), -1);
    CHECK_EQ_INT(cp_node_parse("sidecar~1~p.shop~shop.svc.cluster.local~x", &n), -1);
    CHECK_EQ_INT(cp_node_parse("grpc-client", &n), -1);
    CHECK(!n.sidecar);
}

static void test_cluster_names_and_settings(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r = m ? gen_for(m, NULL) : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    static const char *const want[] = {
        "BlackHoleCluster",
        "PassthroughCluster",
        "outbound|50051||greeter.default.svc.cluster.local",
        "outbound|5432||db.default.svc.cluster.local",
        "outbound|9080|v1|" HOST,
        "outbound|9080|v2|" HOST,
        "outbound|9080||" HOST,
    };
    CHECK_EQ_INT(r->n[CP_CDS], 7);
    for (size_t i = 0; i < r->n[CP_CDS] && i < 7; i++) CHECK_STR(r->v[CP_CDS][i].name, want[i]);
    Cluster *c = unpack(r, CP_CDS, "outbound|9080|v1|" HOST,
                        &envoy__config__cluster__v3__cluster__descriptor);
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ_INT(c->cluster_discovery_type_case,
                     ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
        CHECK_EQ_INT(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
        CHECK(c->eds_cluster_config && c->eds_cluster_config->eds_config &&
              c->eds_cluster_config->eds_config->config_source_specifier_case ==
                  ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
        CHECK_STR(c->eds_cluster_config->service_name, "outbound|9080|v1|" HOST);
        CHECK(c->connect_timeout && c->connect_timeout->seconds == 1);
        CHECK_EQ_INT(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN);
        CHECK(c->circuit_breakers && c->circuit_breakers->n_thresholds == 1);
        if (c->circuit_breakers && c->circuit_breakers->n_thresholds == 1) {
            CHECK_EQ_INT(c->circuit_breakers->thresholds[0]->max_connections->value, 100);
            CHECK_EQ_INT(c->circuit_breakers->thresholds[0]->max_requests->value, 1000);
        }
        CHECK(c->outlier_detection && c->outlier_detection->consecutive_5xx->value == 5);
        CHECK(c->outlier_detection && c->outlier_detection->base_ejection_time->seconds == 30);
    }
    msg_free(c);
    Cluster *g = unpack(r, CP_CDS, "outbound|50051||greeter.default.svc.cluster.local",
                        &envoy__config__cluster__v3__cluster__descriptor);
    CHECK(g && g->n_typed_extension_protocol_options == 1); /* HTTP/2 upstream for gRPC */
    CHECK(g && !g->outlier_detection && !g->circuit_breakers);
    msg_free(g);
    Cluster *p =
        unpack(r, CP_CDS, "PassthroughCluster", &envoy__config__cluster__v3__cluster__descriptor);
    CHECK(p && p->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST);
    CHECK(p && p->lb_policy == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED);
    msg_free(p);
    CHECK_EQ_INT(r->n[CP_SDS], 0);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_endpoints_by_subset(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r = m ? gen_for(m, NULL) : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    CHECK_EQ_INT(r->n[CP_EDS], 5);
    Cla *all = unpack(r, CP_EDS, "outbound|9080||" HOST,
                      &envoy__config__endpoint__v3__cluster_load_assignment__descriptor);
    CHECK(all && all->n_endpoints == 1 && all->endpoints[0]->n_lb_endpoints == 2);
    if (all && all->n_endpoints == 1) {
        CHECK_EQ_INT(all->endpoints[0]->load_balancing_weight->value, 2); /* gRPC needs one */
        const Envoy__Config__Core__V3__SocketAddress *sa =
            all->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address;
        CHECK_STR(sa->address, "127.0.0.11");
        CHECK_EQ_INT(sa->port_value, 19080); /* the workload's own port */
    }
    msg_free(all);
    Cla *v2 = unpack(r, CP_EDS, "outbound|9080|v2|" HOST,
                     &envoy__config__endpoint__v3__cluster_load_assignment__descriptor);
    CHECK(v2 && v2->n_endpoints == 1 && v2->endpoints[0]->n_lb_endpoints == 1);
    if (v2 && v2->n_endpoints == 1)
        CHECK_STR(v2->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->address,
                  "127.0.0.12");
    CHECK(v2 && v2->endpoints[0]->lb_endpoints[0]->metadata == NULL); /* tls_mode_label off */
    msg_free(v2);
    Cla *db = unpack(r, CP_EDS, "outbound|5432||db.default.svc.cluster.local",
                     &envoy__config__endpoint__v3__cluster_load_assignment__descriptor);
    CHECK(db && db->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->port_value ==
                    5432); /* no workload port: the service port */
    msg_free(db);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

static int has_domain(const Envoy__Config__Route__V3__VirtualHost *vh, const char *d)
{
    for (size_t i = 0; i < vh->n_domains; i++)
        if (strcmp(vh->domains[i], d) == 0) return 1;
    return 0;
}

static void test_routes(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r =
        m ? gen_for(m, "sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local") : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    CHECK_EQ_INT(r->n[CP_RDS], 2); /* 9080 and 50051; 5432 is tcp */
    RouteConfig *rc =
        unpack(r, CP_RDS, "9080", &envoy__config__route__v3__route_configuration__descriptor);
    CHECK(rc && rc->n_virtual_hosts == 2);
    if (!rc || rc->n_virtual_hosts != 2) goto done;
    const Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[0];
    CHECK_STR(vh->name, HOST ":9080");
    CHECK(has_domain(vh, HOST));
    CHECK(has_domain(vh, HOST ":9080"));
    CHECK(has_domain(vh, "reviews.default.svc"));
    CHECK(has_domain(vh, "reviews.default:9080"));
    CHECK(has_domain(vh, "reviews"));
    CHECK(has_domain(vh, "reviews:9080"));
    CHECK_STR(rc->virtual_hosts[1]->name, "allow_any");
    CHECK_EQ_INT(vh->n_routes, 2);
    if (vh->n_routes != 2) goto done;
    const Envoy__Config__Route__V3__Route *jason = vh->routes[0], *split = vh->routes[1];
    CHECK_STR(jason->name, "jason");
    CHECK_STR(jason->match->prefix, "/");
    CHECK_EQ_INT(jason->match->n_headers, 1);
    CHECK_STR(jason->match->headers[0]->name, "end-user");
    CHECK_STR(jason->match->headers[0]->string_match->exact, "jason");
    CHECK_STR(jason->route->cluster, "outbound|9080|v2|" HOST);
    CHECK_EQ_INT(jason->route->timeout->seconds, 5);
    const Envoy__Config__Route__V3__RetryPolicy *rp = jason->route->retry_policy;
    CHECK(rp != NULL);
    if (rp) {
        CHECK_STR(rp->retry_on, "5xx,connect-failure");
        CHECK_EQ_INT(rp->num_retries->value, 3);
        CHECK_EQ_INT(rp->per_try_timeout->seconds, 1);
    }
    CHECK_EQ_INT(split->route->cluster_specifier_case,
                 ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS);
    const Envoy__Config__Route__V3__WeightedCluster *wc = split->route->weighted_clusters;
    CHECK(wc && wc->n_clusters == 2);
    if (wc && wc->n_clusters == 2) {
        CHECK_STR(wc->clusters[0]->name, "outbound|9080|v1|" HOST);
        CHECK_EQ_INT(wc->clusters[0]->weight->value, 90);
        CHECK_STR(wc->clusters[1]->name, "outbound|9080|v2|" HOST);
        CHECK_EQ_INT(wc->clusters[1]->weight->value, 10);
    }
done:
    msg_free(rc);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

/* A node in another namespace: short names would mean its own namespace's services. */
static void test_short_domains_only_in_own_namespace(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r =
        m ? gen_for(m, "sidecar~10.9.9.9~x.other~other.svc.cluster.local") : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    RouteConfig *rc =
        unpack(r, CP_RDS, "9080", &envoy__config__route__v3__route_configuration__descriptor);
    CHECK(rc && rc->n_virtual_hosts == 2);
    if (rc && rc->n_virtual_hosts == 2) {
        CHECK(has_domain(rc->virtual_hosts[0], "reviews.default"));
        CHECK(!has_domain(rc->virtual_hosts[0], "reviews"));
        CHECK(!has_domain(rc->virtual_hosts[0], "reviews:9080"));
    }
    msg_free(rc);
    CHECK(cp_resources_find(r, CP_LDS, "reviews:9080") == NULL);
    CHECK(cp_resources_find(r, CP_LDS, "reviews.default:9080") != NULL);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

static Hcm *listener_hcm(const Listener *l, size_t chain)
{
    if (!l || chain >= l->n_filter_chains || l->filter_chains[chain]->n_filters != 1) return NULL;
    const Envoy__Config__Listener__V3__Filter *f = l->filter_chains[chain]->filters[0];
    if (strcmp(f->name, "envoy.filters.network.http_connection_manager") != 0) return NULL;
    return unpack_any(
        f->typed_config,
        &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor);
}

static void test_listeners_for_a_workload(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r =
        m ? gen_for(m, "sidecar~127.0.0.11~reviews-v1-abc.default~default.svc.cluster.local")
          : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    /* Outbound HTTP: bound to the workload's address (options.bind), RDS "9080". */
    Listener *l =
        unpack(r, CP_LDS, "127.0.0.11_9080", &envoy__config__listener__v3__listener__descriptor);
    CHECK(l && strcmp(l->address->socket_address->address, "127.0.0.11") == 0);
    CHECK(l && l->address->socket_address->port_value == 9080);
    CHECK(l && l->traffic_direction == ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
    CHECK(l && l->bind_to_port == NULL); /* capture: none, so it binds */
    Hcm *h = listener_hcm(l, 0);
    CHECK(
        h &&
        h->route_specifier_case ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS);
    CHECK(h && strcmp(h->rds->route_config_name, "9080") == 0);
    CHECK(h && h->n_http_filters == 1 &&
          strcmp(h->http_filters[0]->name, "envoy.filters.http.router") == 0);
    msg_free(h);
    msg_free(l);
    /* Outbound TCP: tcp_proxy to the service's cluster. */
    l = unpack(r, CP_LDS, "127.0.0.11_5432", &envoy__config__listener__v3__listener__descriptor);
    CHECK(l && l->n_filter_chains == 1);
    if (l && l->n_filter_chains == 1) {
        TcpProxy *tp =
            unpack_any(l->filter_chains[0]->filters[0]->typed_config,
                       &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor);
        CHECK(tp && strcmp(tp->cluster, "outbound|5432||db.default.svc.cluster.local") == 0);
        msg_free(tp);
    }
    msg_free(l);
    /* virtualInbound: a chain for the workload's port 19080 to inbound|19080||, then passthrough.
     */
    l = unpack(r, CP_LDS, "virtualInbound", &envoy__config__listener__v3__listener__descriptor);
    CHECK(l && l->address->socket_address->port_value == 15006);
    CHECK(l && l->n_filter_chains == 2);
    if (l && l->n_filter_chains == 2) {
        CHECK_EQ_INT(l->filter_chains[0]->filter_chain_match->destination_port->value, 19080);
        h = listener_hcm(l, 0);
        CHECK(h && h->route_config && h->route_config->n_virtual_hosts == 1);
        if (h && h->route_config && h->route_config->n_virtual_hosts == 1)
            CHECK_STR(h->route_config->virtual_hosts[0]->routes[0]->route->cluster,
                      "inbound|19080||");
        msg_free(h);
        CHECK_STR(l->filter_chains[1]->name, "InboundPassthroughFilterChain");
        CHECK(l->filter_chains[1]->filter_chain_match == NULL);
    }
    msg_free(l);
    l = unpack(r, CP_LDS, "virtualOutbound", &envoy__config__listener__v3__listener__descriptor);
    CHECK(l && l->address->socket_address->port_value == 15001);
    msg_free(l);
    /* The inbound cluster: the application on the workload's address (bind: workload). */
    Cluster *c =
        unpack(r, CP_CDS, "inbound|19080||", &envoy__config__cluster__v3__cluster__descriptor);
    CHECK(c && c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC);
    if (c && c->load_assignment && c->load_assignment->n_endpoints == 1) {
        const Envoy__Config__Core__V3__SocketAddress *sa =
            c->load_assignment->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address;
        CHECK_STR(sa->address, "127.0.0.11");
        CHECK_EQ_INT(sa->port_value, 19080);
    } else {
        CHECK(!"inbound cluster has one endpoint");
    }
    msg_free(c);
    /* Another node has no inbound cluster of reviews. */
    struct cp_resources *other =
        gen_for(m, "sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local");
    CHECK(other && cp_resources_find(other, CP_CDS, "inbound|19080||") == NULL);
    cp_resources_free(other);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_port_offset_and_capture(void)
{
    const char *yaml =
        "options: {capture: iptables}\n"
        "services:\n  - {name: a, ports: [{port: 8080}]}\n"
        "workloads:\n  - {name: w, address: 10.0.0.5, port_offset: 100, services: [a]}\n";
    struct cp_mesh *m = cp_mesh_parse(yaml, strlen(yaml), "m.yaml", err, sizeof err);
    CHECK(m != NULL);
    if (!m) return;
    struct cp_resources *r = gen_for(m, "sidecar~10.0.0.5~w-1.default~default.svc.cluster.local");
    CHECK(r != NULL);
    if (r) {
        Listener *l =
            unpack(r, CP_LDS, "0.0.0.0_8080", &envoy__config__listener__v3__listener__descriptor);
        CHECK(l && l->address->socket_address->port_value == 8180);
        CHECK(l && strcmp(l->address->socket_address->address, "0.0.0.0") == 0);
        CHECK(l && l->bind_to_port && !l->bind_to_port->value); /* Istio's capture shape */
        msg_free(l);
        l = unpack(r, CP_LDS, "virtualOutbound",
                   &envoy__config__listener__v3__listener__descriptor);
        CHECK(l && l->address->socket_address->port_value == 15101);
        CHECK(l && l->use_original_dst && l->use_original_dst->value);
        CHECK(l && l->n_listener_filters == 1);
        msg_free(l);
        Cluster *c =
            unpack(r, CP_CDS, "inbound|8080||", &envoy__config__cluster__v3__cluster__descriptor);
        CHECK(c && strcmp(c->load_assignment->endpoints[0]
                              ->lb_endpoints[0]
                              ->endpoint->address->socket_address->address,
                          "127.0.0.1") == 0);
        msg_free(c);
    }
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_api_listeners_for_grpc(void)
{
    struct cp_mesh *m = example();
    struct cp_resources *r = m ? gen_for(m, NULL) : NULL;
    CHECK(r != NULL);
    if (!r) goto out;
    static const char *const names[] = {"greeter",
                                        "greeter:50051",
                                        "greeter.default:50051",
                                        "greeter.default.svc:50051",
                                        "greeter.default.svc.cluster.local:50051",
                                        "reviews:9080"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const struct cp_resource *res = cp_resources_find(r, CP_LDS, names[i]);
        CHECK(res != NULL);
        if (res) CHECK(!res->wildcard); /* only sent when asked for by name */
    }
    CHECK(cp_resources_find(r, CP_LDS, "db:5432") == NULL); /* tcp: no api_listener */
    Listener *l =
        unpack(r, CP_LDS, "greeter:50051", &envoy__config__listener__v3__listener__descriptor);
    CHECK(l && l->api_listener && l->api_listener->api_listener);
    if (l && l->api_listener) {
        Hcm *h = unpack_any(
            l->api_listener->api_listener,
            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor);
        CHECK(h && h->route_config && h->route_config->n_virtual_hosts == 1);
        if (h && h->route_config && h->route_config->n_virtual_hosts == 1)
            CHECK_STR(h->route_config->virtual_hosts[0]->routes[0]->route->cluster,
                      "outbound|50051||greeter.default.svc.cluster.local");
        msg_free(h);
    }
    msg_free(l);
out:
    cp_resources_free(r);
    cp_mesh_free(m);
}

static void test_versions(void)
{
    struct cp_mesh *m = example();
    if (!m) return;
    struct cp_resources *a = gen_for(m, NULL), *b = gen_for(m, NULL);
    /* Same mesh, same bytes, same versions. */
    for (int t = 0; a && b && t < CP_NTYPES; t++) {
        CHECK_STR(a->version[t], b->version[t]);
        for (size_t i = 0; i < a->n[t]; i++) CHECK_STR(a->v[t][i].version, b->v[t][i].version);
    }
    cp_mesh_free(m);
    /* A weight changes: RDS and the api_listeners change, clusters do not. */
    const char *base =
        "services:\n  - name: a\n    ports: [{port: 80}]\n"
        "    subsets: [{name: x, labels: {v: x}}, {name: y, labels: {v: y}}]\n"
        "    traffic: {routes: [{to: [{subset: x, weight: %d}, {subset: y, weight: %d}]}]}\n";
    char t1[512], t2[512];
    snprintf(t1, sizeof t1, base, 50, 50);
    snprintf(t2, sizeof t2, base, 70, 30);
    struct cp_mesh *m1 = cp_mesh_parse(t1, strlen(t1), "m", err, sizeof err);
    struct cp_mesh *m2 = cp_mesh_parse(t2, strlen(t2), "m", err, sizeof err);
    struct cp_resources *r1 = m1 ? gen_for(m1, NULL) : NULL, *r2 = m2 ? gen_for(m2, NULL) : NULL;
    CHECK(r1 && r2);
    if (r1 && r2) {
        CHECK_STR(r1->version[CP_CDS], r2->version[CP_CDS]);
        CHECK_STR(r1->version[CP_EDS], r2->version[CP_EDS]);
        CHECK(strcmp(r1->version[CP_RDS], r2->version[CP_RDS]) != 0);
        CHECK(strcmp(cp_resources_find(r1, CP_RDS, "80")->version,
                     cp_resources_find(r2, CP_RDS, "80")->version) != 0);
        CHECK_STR(cp_resources_find(r1, CP_LDS, "0.0.0.0_80")->version,
                  cp_resources_find(r2, CP_LDS, "0.0.0.0_80")->version);
    }
    cp_resources_free(a);
    cp_resources_free(b);
    cp_resources_free(r1);
    cp_resources_free(r2);
    cp_mesh_free(m1);
    cp_mesh_free(m2);
}

RUN_TESTS(TEST_CASE(test_node_ids), TEST_CASE(test_cluster_names_and_settings),
          TEST_CASE(test_endpoints_by_subset), TEST_CASE(test_routes),
          TEST_CASE(test_short_domains_only_in_own_namespace),
          TEST_CASE(test_listeners_for_a_workload), TEST_CASE(test_port_offset_and_capture),
          TEST_CASE(test_api_listeners_for_grpc), TEST_CASE(test_versions))
