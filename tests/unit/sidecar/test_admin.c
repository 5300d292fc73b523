/* Admin API: the renderers against a registry filled here, and the server over real sockets. */
#include "sidecar/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/config.h"
#include "sidecar/stats.h"
#include "test.h"

static char *render(const struct rs_admin_stats_query *q, const struct rs_admin_hooks *h,
                    const struct rs_snapshot *snap)
{
    struct rs_admin_buf b = {0};
    char err[256];
    int rc = rs_admin_render_stats(&b, q, h, snap, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    return b.data ? b.data : strdup("");
}

static void test_stats_text_sorted(void)
{
    rs_stat_id z = rs_stats_register("t1.zeta", RS_STAT_COUNTER);
    rs_stat_id a = rs_stats_register("t1.alpha", RS_STAT_GAUGE);
    rs_stat_id m = rs_stats_register("t1.mid", RS_STAT_COUNTER);
    rs_stat_add(rs_stats_shard(-1), z, 3);
    rs_stat_set(a, 5);
    (void)m;
    struct rs_admin_stats_query q = {.filter = "^t1\\."};
    char *out = render(&q, NULL, NULL);
    CHECK_STR(out, "t1.alpha: 5\nt1.mid: 0\nt1.zeta: 3\n");
    free(out);
}

static void test_stats_filter_usedonly(void)
{
    rs_stat_id a = rs_stats_register("t2.used", RS_STAT_COUNTER);
    rs_stats_register("t2.unused", RS_STAT_COUNTER);
    rs_stats_register("t2x.other", RS_STAT_COUNTER);
    rs_stat_inc(rs_stats_shard(-1), a);
    struct rs_admin_stats_query q = {.filter = "^t2\\.", .used_only = true};
    char *out = render(&q, NULL, NULL);
    CHECK_STR(out, "t2.used: 1\n");
    free(out);
    q.used_only = false;
    out = render(&q, NULL, NULL);
    CHECK_STR(out, "t2.unused: 0\nt2.used: 1\n");
    free(out);

    struct rs_admin_buf b = {0};
    char err[256] = "";
    q.filter = "([unclosed";
    CHECK_EQ_INT(rs_admin_render_stats(&b, &q, NULL, NULL, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "Invalid regex") != NULL);
    free(b.data);
}

static void test_stats_json_and_histograms(void)
{
    rs_stat_id c = rs_stats_register("t3.count", RS_STAT_COUNTER);
    rs_stat_id h = rs_stats_register("t3.time", RS_STAT_HISTOGRAM);
    rs_stats_register("t3.empty", RS_STAT_HISTOGRAM);
    rs_stat_add(rs_stats_shard(-1), c, 7);
    rs_hist_record(rs_stats_shard(-1), h, 2000); /* 2 ms */
    struct rs_admin_stats_query q = {.filter = "^t3\\.", .format = RS_ADMIN_FMT_JSON};
    char *out = render(&q, NULL, NULL);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    CHECK(j != NULL);
    json_t *stats = json_object_get(j, "stats");
    CHECK_EQ_INT(json_array_size(stats), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(stats, 0), "name")), "t3.count");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(stats, 0), "value")), 7);
    json_t *hist = json_object_get(json_array_get(stats, 1), "histograms");
    CHECK_EQ_INT(json_array_size(json_object_get(hist, "supported_quantiles")), 10);
    json_t *cq = json_object_get(hist, "computed_quantiles");
    CHECK_EQ_INT(json_array_size(cq), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(cq, 1), "name")), "t3.time");
    json_decref(j);
    free(out);

    q.format = RS_ADMIN_FMT_TEXT;
    out = render(&q, NULL, NULL);
    CHECK(strstr(out, "t3.count: 7\nt3.empty: No recorded values\nt3.time: P0(nan,1) P25(") == out);
    CHECK(strstr(out, " P100(nan,5)\n") != NULL);
    free(out);
}

static int fake_state = RS_ADMIN_LIVE;
static int quit_calls, drain_calls;
static bool drain_graceful, drain_inbound;

static int state_cb(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&fake_state, __ATOMIC_RELAXED);
}
static uint64_t uptime_cb(void *ctx)
{
    (void)ctx;
    return 12;
}
static void quit_cb(void *ctx)
{
    (void)ctx;
    __atomic_fetch_add(&quit_calls, 1, __ATOMIC_RELAXED);
}
static void drain_cb(void *ctx, bool graceful, bool inbound_only)
{
    (void)ctx;
    drain_graceful = graceful;
    drain_inbound = inbound_only;
    __atomic_fetch_add(&drain_calls, 1, __ATOMIC_RELEASE);
}

static const struct rs_admin_hooks fake_hooks = {
    .quit = quit_cb,
    .drain_listeners = drain_cb,
    .state = state_cb,
    .uptime_s = uptime_cb,
    .concurrency = 4,
    .command_line = "ringside -c /etc/envoy.yaml --concurrency 4 --log-level=debug",
    .hot_restart_version = "disabled",
};

static void test_server_stats(void)
{
    fake_state = RS_ADMIN_DRAINING;
    struct rs_admin_stats_query q = {.filter = "^server\\."};
    char *out = render(&q, &fake_hooks, NULL);
    CHECK(strstr(out, "server.concurrency: 4\n") != NULL);
    CHECK(strstr(out, "server.live: 0\n") != NULL);
    CHECK(strstr(out, "server.state: 1\n") != NULL);
    CHECK(strstr(out, "server.uptime: 12\n") != NULL);
    CHECK(strstr(out, "server.memory_allocated: ") != NULL);
    CHECK(strstr(out, "server.memory_heap_size: ") != NULL);
    CHECK(strstr(out, "server.version: ") != NULL);
    free(out);
    fake_state = RS_ADMIN_LIVE;
}

static struct rs_cluster cfx[2];
static struct rs_cluster *cfxp[2] = {&cfx[0], &cfx[1]};
static struct rs_listener test_listener;
static struct rs_snapshot test_snap = {.refs = 1, .clusters = cfxp, .nclusters = 2};

static void setup_snap(void)
{
    cfx[0].name = "outbound|80||svc.ns.svc.cluster.local";
    cfx[1].name = "outbound"; /* a prefix of the first: the longest match must win */
    cfx[0].max_connections = 1024;
    cfx[0].max_pending_requests = 512;
    cfx[0].max_requests = 1024;
}

static void check_prom(const char *stat, const char *name, const char *labels)
{
    char n[256], l[512];
    CHECK_EQ_INT(rs_admin_prom_name(stat, &test_snap, n, sizeof n, l, sizeof l), 0);
    CHECK_STR(n, name);
    CHECK_STR(l, labels);
}

static void test_prom_names(void)
{
    setup_snap();
    check_prom("cluster.outbound|80||svc.ns.svc.cluster.local.upstream_rq_total",
               "envoy_cluster_upstream_rq_total",
               "envoy_cluster_name=\"outbound|80||svc.ns.svc.cluster.local\"");
    check_prom("cluster.outbound.upstream_cx_active", "envoy_cluster_upstream_cx_active",
               "envoy_cluster_name=\"outbound\"");
    check_prom("cluster.outbound|80||svc.ns.svc.cluster.local.upstream_rq_2xx",
               "envoy_cluster_upstream_rq_xx",
               "envoy_cluster_name=\"outbound|80||svc.ns.svc.cluster.local\","
               "envoy_response_code_class=\"2\"");
    check_prom("cluster.unknown.upstream_rq_503", "envoy_cluster_upstream_rq",
               "envoy_cluster_name=\"unknown\",envoy_response_code=\"503\"");
    check_prom("listener.0.0.0.0_15006.downstream_cx_total", "envoy_listener_downstream_cx_total",
               "envoy_listener_address=\"0.0.0.0_15006\"");
    check_prom("listener.0.0.0.0_15006.http.inbound_http.downstream_rq_5xx",
               "envoy_listener_http_downstream_rq_xx",
               "envoy_listener_address=\"0.0.0.0_15006\","
               "envoy_http_conn_manager_prefix=\"inbound_http\",envoy_response_code_class=\"5\"");
    check_prom("http.ingress_http.downstream_rq_total", "envoy_http_downstream_rq_total",
               "envoy_http_conn_manager_prefix=\"ingress_http\"");
    check_prom("tcp.egress.downstream_cx_total", "envoy_tcp_downstream_cx_total",
               "envoy_tcp_prefix=\"egress\"");
    check_prom("server.live", "envoy_server_live", "");
    check_prom("http.weird-name.rq_total", "envoy_http_rq_total",
               "envoy_http_conn_manager_prefix=\"weird-name\"");
    check_prom("runtime.load-success", "envoy_runtime_load_success", "");

    /* known listener names take precedence over the address heuristic */
    snprintf(test_listener.addr_str, sizeof test_listener.addr_str, "10.0.0.1:80");
    test_snap.listeners = &test_listener;
    test_snap.nlisteners = 1;
    check_prom("listener.10.0.0.1_80.downstream_cx_active", "envoy_listener_downstream_cx_active",
               "envoy_listener_address=\"10.0.0.1_80\"");
    test_snap.listeners = NULL;
    test_snap.nlisteners = 0;
}

static void test_prometheus_render(void)
{
    setup_snap();
    const char *big = "outbound|80||svc.ns.svc.cluster.local";
    char name[256];
    snprintf(name, sizeof name, "cluster.%s.t4_rq", big);
    rs_stat_id a = rs_stats_register(name, RS_STAT_COUNTER);
    rs_stat_id b = rs_stats_register("cluster.outbound.t4_rq", RS_STAT_COUNTER);
    snprintf(name, sizeof name, "cluster.%s.t4_time", big);
    rs_stat_id h = rs_stats_register(name, RS_STAT_HISTOGRAM);
    rs_stat_add(rs_stats_shard(-1), a, 2);
    rs_stat_add(rs_stats_shard(-1), b, 9);
    rs_hist_record(rs_stats_shard(-1), h, 700);  /* 0.7 ms: the le=1 bucket */
    rs_hist_record(rs_stats_shard(-1), h, 3000); /* 3 ms: le=5 */
    rs_hist_record(rs_stats_shard(-1), h, 3000);
    struct rs_admin_stats_query q = {.filter = "t4_", .format = RS_ADMIN_FMT_PROMETHEUS};
    char *out = render(&q, NULL, &test_snap);
    const char *want_counter =
        "# TYPE envoy_cluster_t4_rq counter\n"
        "envoy_cluster_t4_rq{envoy_cluster_name=\"outbound\"} 9\n"
        "envoy_cluster_t4_rq{envoy_cluster_name=\"outbound|80||svc.ns.svc.cluster.local\"} 2\n"
        "# TYPE envoy_cluster_t4_time histogram\n";
    CHECK(strstr(out, want_counter) == out);
    const char *lbl = "envoy_cluster_name=\"outbound|80||svc.ns.svc.cluster.local\"";
    char line[512];
    snprintf(line, sizeof line, "envoy_cluster_t4_time_bucket{%s,le=\"0.5\"} 0\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_bucket{%s,le=\"1\"} 1\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_bucket{%s,le=\"5\"} 3\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_bucket{%s,le=\"3.6e+06\"} 3\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_bucket{%s,le=\"+Inf\"} 3\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_sum{%s} 6.7\n", lbl);
    CHECK(strstr(out, line) != NULL);
    snprintf(line, sizeof line, "envoy_cluster_t4_time_count{%s} 3\n", lbl);
    CHECK(strstr(out, line) != NULL);
    free(out);
}

static void test_clusters(void)
{
    setup_snap();
    struct rs_endpoint ep = {.weight = 3};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ep.addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(8080);
    inet_pton(AF_INET, "10.1.2.3", &sin->sin_addr);
    ep.addrlen = sizeof *sin;
    snprintf(ep.name, sizeof ep.name, "10.1.2.3:8080");
    struct rs_hostset *hs = rs_hostset_new(&ep, 1);
    CHECK(hs != NULL);
    cfx[0].hosts = hs;
    struct rs_snapshot one = {.refs = 1, .clusters = cfxp, .nclusters = 1};

    struct rs_admin_buf b = {0};
    rs_admin_render_clusters(&b, &one, false);
    const char *n = "outbound|80||svc.ns.svc.cluster.local";
    char line[256];
    snprintf(line, sizeof line, "%s::default_priority::max_pending_requests::512\n", n);
    CHECK(strstr(b.data, line) != NULL);
    snprintf(line, sizeof line, "%s::10.1.2.3:8080::cx_active::0\n", n);
    CHECK(strstr(b.data, line) != NULL);
    snprintf(line, sizeof line, "%s::10.1.2.3:8080::health_flags::healthy\n", n);
    CHECK(strstr(b.data, line) != NULL);
    snprintf(line, sizeof line, "%s::10.1.2.3:8080::weight::3\n", n);
    CHECK(strstr(b.data, line) != NULL);
    free(b.data);

    b = (struct rs_admin_buf){0};
    rs_admin_render_clusters(&b, &one, true);
    json_t *j = json_loads(b.data, 0, NULL);
    json_t *cs = json_array_get(json_object_get(j, "cluster_statuses"), 0);
    CHECK_STR(json_string_value(json_object_get(cs, "name")), n);
    json_t *host = json_array_get(json_object_get(cs, "host_statuses"), 0);
    json_t *sa = json_object_get(json_object_get(host, "address"), "socket_address");
    CHECK_STR(json_string_value(json_object_get(sa, "address")), "10.1.2.3");
    CHECK_EQ_INT(json_integer_value(json_object_get(sa, "port_value")), 8080);
    CHECK_EQ_INT(json_integer_value(json_object_get(host, "weight")), 3);
    json_decref(j);
    free(b.data);
    cfx[0].hosts = NULL;
    rs_hostset_unref(hs);
}

static void test_config_dump_and_server_info(void)
{
    Envoy__Config__Cluster__V3__Cluster cl;
    envoy__config__cluster__v3__cluster__init(&cl); /* the INIT macro sets deprecated fields */
    cl.name = "backend";
    Envoy__Config__Cluster__V3__Cluster *clp = &cl;
    Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources sr;
    envoy__config__bootstrap__v3__bootstrap__static_resources__init(&sr);
    sr.n_clusters = 1;
    sr.clusters = &clp;
    Envoy__Config__Core__V3__Node node;
    envoy__config__core__v3__node__init(&node);
    node.id = "sidecar~10.0.0.1";
    Envoy__Config__Bootstrap__V3__Bootstrap bs;
    envoy__config__bootstrap__v3__bootstrap__init(&bs);
    bs.static_resources = &sr;
    bs.node = &node;
    struct rs_snapshot snap = {.refs = 1, .bootstrap = &bs};

    struct rs_admin_buf b = {0};
    rs_admin_render_config_dump(&b, &snap);
    json_t *j = json_loads(b.data, 0, NULL);
    json_t *configs = json_object_get(j, "configs");
    /* bootstrap, clusters, listeners, and Ringside's skipped-filter list (no xDS state) */
    CHECK_EQ_INT(json_array_size(configs), 4);
    CHECK_STR(json_string_value(json_object_get(json_array_get(configs, 0), "@type")),
              "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump");
    json_t *c0 = json_object_get(
        json_array_get(json_object_get(json_array_get(configs, 1), "static_clusters"), 0),
        "cluster");
    CHECK_STR(json_string_value(json_object_get(c0, "@type")),
              "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    CHECK_STR(json_string_value(json_object_get(c0, "name")), "backend");
    CHECK_STR(json_string_value(json_object_get(json_array_get(configs, 2), "@type")),
              "type.googleapis.com/envoy.admin.v3.ListenersConfigDump");
    CHECK(json_object_get(json_array_get(configs, 2), "dynamic_listeners") == NULL);
    json_t *skipped = json_object_get(json_array_get(configs, 3), "value");
    CHECK(json_is_array(json_object_get(skipped, "ringside_skipped_filters")));
    json_decref(j);
    free(b.data);

    b = (struct rs_admin_buf){0};
    rs_admin_render_server_info(&b, &fake_hooks, &snap);
    j = json_loads(b.data, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "LIVE");
    CHECK_STR(json_string_value(json_object_get(j, "uptime_current_epoch")), "12s");
    CHECK_STR(json_string_value(json_object_get(j, "hot_restart_version")), "disabled");
    json_t *clo = json_object_get(j, "command_line_options");
    CHECK_STR(json_string_value(json_object_get(clo, "config_path")), "/etc/envoy.yaml");
    CHECK_STR(json_string_value(json_object_get(clo, "log_level")), "debug");
    CHECK_EQ_INT(json_integer_value(json_object_get(clo, "concurrency")), 4);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "node"), "id")),
              "sidecar~10.0.0.1");
    json_decref(j);
    free(b.data);
}

/* ---- over real sockets ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends raw bytes and reads the reply until the server closes (bounded: 3 s). */
static char *http(uint16_t port, const char *raw)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        return strdup("");
    }
    if (write(fd, raw, strlen(raw)) < 0) CHECK(0);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    int64_t deadline = now_ms() + 3000;
    while (len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
        ssize_t n = read(fd, out + len, cap - len - 1);
        if (n <= 0) break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static bool wait_count(int *counter, int want)
{
    int64_t deadline = now_ms() + 2000;
    while (__atomic_load_n(counter, __ATOMIC_ACQUIRE) < want) {
        if (now_ms() > deadline) return false;
        usleep(1000);
    }
    return true;
}

static void test_server_http(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char err[256] = "";
    struct rs_admin *a =
        rs_admin_start((struct sockaddr *)&sin, sizeof sin, &fake_hooks, err, sizeof err);
    CHECK(a != NULL);
    if (!a) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    uint16_t port = rs_admin_port(a);
    CHECK(port != 0);

    char *r = http(port, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(r, "Content-Type: text/plain") != NULL);
    CHECK(strstr(r, "\r\n\r\nLIVE\n") != NULL);
    free(r);

    __atomic_store_n(&fake_state, RS_ADMIN_PRE_INITIALIZING, __ATOMIC_RELAXED);
    r = http(port, "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 503 ", 13) == 0);
    CHECK(strstr(r, "\r\n\r\nPRE_INITIALIZING\n") != NULL);
    free(r);
    __atomic_store_n(&fake_state, RS_ADMIN_LIVE, __ATOMIC_RELAXED);

    r = http(port, "GET /stats?filter=%5Eserver%5C.live HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(r, "\r\n\r\nserver.live: 1\n") != NULL);
    free(r);

    r = http(port, "GET /stats/prometheus?filter=server HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strstr(r, "Content-Type: text/plain; version=0.0.4\r\n") != NULL);
    CHECK(strstr(r, "# TYPE envoy_server_live gauge\nenvoy_server_live 1\n") != NULL);
    free(r);

    r = http(port, "GET /stats?format=json&filter=server.uptime HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strstr(r, "Content-Type: application/json\r\n") != NULL);
    CHECK(strstr(r, "\"server.uptime\"") != NULL);
    free(r);

    r = http(port, "GET /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 405 ", 13) == 0);
    free(r);
    CHECK_EQ_INT(quit_calls, 0);

    r = http(port, "GARBAGE\x01 / HTTP/9\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    free(r);

    r = http(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
    free(r);

    r = http(port, "GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(strstr(r, "\"configs\"") != NULL);
    free(r);

    r = http(port, "POST /drain_listeners?graceful&inbound_only HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 0\r\n\r\n");
    CHECK(strstr(r, "\r\n\r\nOK\n") != NULL);
    free(r);
    CHECK(wait_count(&drain_calls, 1));
    CHECK(drain_graceful && drain_inbound);

    r = http(port, "POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(r, "\r\n\r\nOK\n") != NULL);
    free(r);
    CHECK(wait_count(&quit_calls, 1));

    /* a client that connects and says nothing must not hold up stop */
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(idle, (struct sockaddr *)&to, sizeof to) == 0);
    int64_t t0 = now_ms();
    rs_admin_stop(a);
    CHECK(now_ms() - t0 < 2000);
    close(idle);
}

RUN_TESTS(TEST_CASE(test_stats_text_sorted), TEST_CASE(test_stats_filter_usedonly),
          TEST_CASE(test_stats_json_and_histograms), TEST_CASE(test_server_stats),
          TEST_CASE(test_prom_names), TEST_CASE(test_prometheus_render), TEST_CASE(test_clusters),
          TEST_CASE(test_config_dump_and_server_info), TEST_CASE(test_server_http))
