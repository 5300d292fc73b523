/* The ADS client over real gRPC against someone else's server: tests/peers/ads_server.js
 * (@grpc/grpc-js with Envoy's .proto files), state of the world and delta. The client receives
 * CDS -> EDS -> LDS -> RDS in Envoy's order and ACKs each; then the server pushes a changed
 * route that apply rejects, and the server must see a NACK with error_detail and the previous
 * version. Skipped (77) when node is not installed. Env: RS_SRC (source tree; default from this
 * file's path), RS_NODE (node binary; default "node" on PATH). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "xds/ads.h"
#include "xds/grpc.h"

extern char **environ;

#define CDS_URL "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_URL "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define LDS_URL "type.googleapis.com/envoy.config.listener.v3.Listener"
#define RDS_URL "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
#define NODE_ID "sidecar~127.0.0.1~peer.ns~ns.svc.cluster.local"

static char dir[256], src[1024];

static const char *node_bin(void)
{
    const char *n = getenv("RS_NODE");
    if (n && *n) return n;
    const char *path = getenv("PATH");
    static char buf[1024];
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, sizeof buf, "%.*s/node", (int)len, path);
        if (access(buf, X_OK) == 0) return buf;
        path = colon ? colon + 1 : NULL;
    }
    return NULL;
}

static void write_resources(const char *route_cluster, const char *version)
{
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/resources.json", dir);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    fprintf(
        f,
        "{\"%s\": {\"version\": \"1\", \"resources\": [{\"@type\": \"%s\", \"name\": "
        "\"outbound|80||a\", \"type\": \"EDS\", \"connect_timeout\": \"1s\", "
        "\"eds_cluster_config\": {\"service_name\": \"a\", \"eds_config\": {\"ads\": {}}}}]},\n",
        CDS_URL, CDS_URL);
    fprintf(f,
            "\"%s\": {\"version\": \"1\", \"resources\": [{\"@type\": \"%s\", \"cluster_name\": "
            "\"a\", \"endpoints\": [{\"lb_endpoints\": [{\"endpoint\": {\"address\": "
            "{\"socket_address\": {\"address\": \"127.0.0.1\", \"port_value\": 8080}}}}]}]}]},\n",
            EDS_URL, EDS_URL);
    fprintf(f,
            "\"%s\": {\"version\": \"1\", \"resources\": [{\"@type\": \"%s\", \"name\": "
            "\"0.0.0.0_80\", \"address\": {\"socket_address\": {\"address\": \"0.0.0.0\", "
            "\"port_value\": 80}}, \"filter_chains\": [{\"filters\": [{\"name\": "
            "\"envoy.filters.network.http_connection_manager\", \"typed_config\": {\"@type\": "
            "\"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager\", \"stat_prefix\": \"p\", \"rds\": {\"route_config_name\": "
            "\"80\", \"config_source\": {\"ads\": {}}}}}]}]}]},\n",
            LDS_URL, LDS_URL);
    fprintf(f,
            "\"%s\": {\"version\": \"%s\", \"resources\": [{\"@type\": \"%s\", \"name\": \"80\", "
            "\"virtual_hosts\": [{\"name\": \"vh\", \"domains\": [\"*\"], \"routes\": [{\"match\": "
            "{\"prefix\": \"/\"}, \"route\": {\"cluster\": \"%s\"}}]}]}]}}\n",
            RDS_URL, version, RDS_URL, route_cluster);
    fclose(f);
    rename(tmp, path);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Starts ads_server.js on port *port (0: any); returns its pid and sets *port (0 on failure). */
static pid_t start_server(const char *node, int *port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", *port);
    char script[1200], res[512], logp[512], outp[512];
    snprintf(script, sizeof script, "%s/tests/peers/ads_server.js", src);
    snprintf(res, sizeof res, "%s/resources.json", dir);
    snprintf(logp, sizeof logp, "%s/ads.log", dir);
    snprintf(outp, sizeof outp, "%s/server.out", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    char errp[512];
    snprintf(errp, sizeof errp, "%s/server.err", dir);
    unlink(outp); /* no stale "listening" line from an earlier server */
    posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_APPEND, 0644);
    char *argv[] = {(char *)node, script, "--resources", res,     "--log", logp,
                    "--control",  res,    "--port",      portarg, NULL};
    pid_t pid;
    if (posix_spawn(&pid, node, &fa, NULL, argv, environ) != 0) pid = 0;
    posix_spawn_file_actions_destroy(&fa);
    *port = 0;
    for (int i = 0; pid && i < 400 && !*port; i++) { /* up to 20 s for node to start */
        FILE *f = fopen(outp, "r");
        if (f) {
            if (fscanf(f, "listening %d", port) != 1) *port = 0;
            fclose(f);
        }
        if (!*port) sleep_ms(50);
    }
    return pid;
}

/* ---- the client under test ----------------------------------------------------------------- */

struct run {
    xds_loop *loop;
    xds_ads *ads;
    int phase; /* 0: until RDS accepted; 1: until the pushed RDS is NACKed */
    bool reject_rds, timed_out;
    uint64_t deadline;
};

static bool log_has(const char *needle)
{
    char p[512], line[65536];
    snprintf(p, sizeof p, "%s/ads.log", dir);
    FILE *f = fopen(p, "r");
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    if (f) fclose(f);
    return found;
}

static int apply(void *arg, struct xds_state *cand, int changed, char *err, size_t errlen)
{
    struct run *r = arg;
    (void)cand;
    if (changed == XDS_RDS && r->reject_rds) {
        snprintf(err, errlen, "route_config \"80\": virtual_hosts[0].routes[0]: rejected by test");
        return 1;
    }
    return 0;
}

static void on_tick(xds_loop *loop, void *arg)
{
    struct run *r = arg;
    struct xds_state *s = xds_ads_current(r->ads);
    if (xds_loop_now_ms() > r->deadline) {
        r->timed_out = true;
        xds_loop_stop(loop);
        return;
    }
    if (r->phase == 0 && xds_state_find(s, XDS_RDS, "80")) {
        r->phase = 1;
        r->reject_rds = true;
        write_resources("elsewhere", "2"); /* the server's --control watch pushes it */
    } else if (r->phase == 1 && xds_ads_stats(r->ads)->type[XDS_RDS].update_rejected > 0 &&
               log_has("error_detail")) { /* the NACK reached the server, not just our queue */
        xds_loop_stop(loop);
        return;
    }
    xds_loop_timer(loop, 20, on_tick, r);
}

static json_t *read_log(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ads.log", dir);
    json_t *arr = json_array();
    FILE *f = fopen(p, "r");
    char line[65536];
    while (f && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j && json_object_get(j, "kind")) json_array_append(arr, j);
        json_decref(j);
    }
    if (f) fclose(f);
    return arr;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Index of the first request of type url after index `from` matching ack (nonce set, no error)
 * or nack (error_detail), or any (-1 for neither filter). */
static int find_rq(json_t *log, size_t from, const char *url, int want)
{
    for (size_t i = from; i < json_array_size(log); i++) {
        json_t *e = json_array_get(log, i);
        if (strcmp(jstr(e, "type_url"), url) != 0) continue;
        bool acked = *jstr(e, "response_nonce") != '\0';
        bool nacked = json_object_get(e, "error_detail") != NULL;
        if (want == -1 || (want == 0 && acked && !nacked) || (want == 1 && nacked)) return (int)i;
    }
    return -1;
}

static void run_mode(const char *node, bool delta)
{
    snprintf(dir, sizeof dir, "/tmp/rs-ads-peer-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    write_resources("outbound|80||a", "1");
    int port = 0;
    pid_t pid = start_server(node, &port);
    CHECK(pid > 0 && port > 0);
    if (!pid || !port) goto out;

    Envoy__Config__Core__V3__Node n;
    envoy__config__core__v3__node__init(&n);
    n.id = NODE_ID;
    struct run r = {.loop = xds_loop_new()};
    struct xds_ads_config cfg = {.delta = delta, .node = &n, .apply = apply, .arg = &r};
    snprintf(cfg.target, sizeof cfg.target, "127.0.0.1:%d", port);
    r.ads = xds_ads_new(&cfg);
    r.deadline = xds_loop_now_ms() + 15000;
    CHECK_EQ_INT(xds_ads_start(r.ads, r.loop), 0);
    xds_loop_timer(r.loop, 20, on_tick, &r);
    xds_loop_run(r.loop);
    CHECK(!r.timed_out);
    if (r.timed_out)
        fprintf(stderr, "  %s: timed out in phase %d\n", delta ? "delta" : "sotw", r.phase);

    struct xds_state *s = xds_ads_current(r.ads);
    CHECK(xds_state_find(s, XDS_CDS, "outbound|80||a") != NULL);
    CHECK(xds_state_find(s, XDS_EDS, "a") != NULL);
    CHECK(xds_state_find(s, XDS_LDS, "0.0.0.0_80") != NULL);
    CHECK(xds_state_find(s, XDS_RDS, "80") != NULL);
    CHECK_EQ_INT(xds_ads_stats(r.ads)->type[XDS_RDS].update_success, 1);
    CHECK_EQ_INT(xds_ads_stats(r.ads)->connected_state, 1);
    xds_ads_stop(r.ads);
    xds_ads_free(r.ads);
    xds_loop_free(r.loop);

    json_t *log = read_log();
    json_t *first = json_array_get(log, 0);
    CHECK_STR(jstr(first, "type_url"), CDS_URL);
    CHECK_STR(jstr(json_object_get(first, "node"), "id"), NODE_ID);
    int cds_ack = find_rq(log, 1, CDS_URL, 0), eds_rq = find_rq(log, 0, EDS_URL, -1);
    int eds_ack = find_rq(log, 0, EDS_URL, 0), lds_rq = find_rq(log, 0, LDS_URL, -1);
    int rds_ack = find_rq(log, 0, RDS_URL, 0), rds_nack = find_rq(log, 0, RDS_URL, 1);
    CHECK(cds_ack > 0 && eds_rq > 0 && eds_ack > eds_rq && lds_rq > eds_ack && rds_ack > lds_rq);
    CHECK(rds_nack > rds_ack);
    json_t *names = json_object_get(json_array_get(log, (size_t)eds_rq),
                                    delta ? "resource_names_subscribe" : "resource_names");
    CHECK(json_array_size(names) == 1 &&
          strcmp(json_string_value(json_array_get(names, 0)), "a") == 0);
    json_t *nack = json_array_get(log, (size_t)rds_nack);
    const char *msg = jstr(json_object_get(nack, "error_detail"), "message");
    CHECK(strstr(msg, "rejected by test") != NULL);
    if (!delta) {
        CHECK_STR(jstr(json_array_get(log, (size_t)cds_ack), "version_info"), "1");
        CHECK_STR(jstr(nack, "version_info"), "1"); /* the previous version, as Envoy */
    }
    json_decref(log);
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

static const char *node_path;

/* ---- reconnect: the server dies and comes back on the same port ------------------------------ */

struct rerun {
    xds_ads *ads;
    pid_t pid;
    int port, phase;
    bool timed_out;
    uint64_t deadline;
};

static void on_tick_reconnect(xds_loop *loop, void *arg)
{
    struct rerun *r = arg;
    const struct xds_ads_stats *st = xds_ads_stats(r->ads);
    if (xds_loop_now_ms() > r->deadline) {
        r->timed_out = true;
        xds_loop_stop(loop);
        return;
    }
    if (r->phase == 0 && xds_state_find(xds_ads_current(r->ads), XDS_RDS, "80")) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
        r->phase = 1;
    } else if (r->phase == 1 && st->connected_state == 0 && st->stream_reconnects > 0) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/ads.log", dir);
        snprintf(b, sizeof b, "%s/ads-first.log", dir);
        rename(a, b);
        r->pid = start_server(node_path, &r->port); /* same port */
        r->phase = 2;
    } else if (r->phase == 2 && log_has(RDS_URL)) { /* re-subscribed down to RDS */
        xds_loop_stop(loop);
        return;
    }
    xds_loop_timer(loop, 20, on_tick_reconnect, r);
}

static void run_reconnect(bool delta)
{
    snprintf(dir, sizeof dir, "/tmp/rs-ads-peer-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    write_resources("outbound|80||a", "1");
    struct rerun r = {.port = 0};
    r.pid = start_server(node_path, &r.port);
    CHECK(r.pid > 0 && r.port > 0);
    if (r.pid > 0 && r.port > 0) {
        xds_loop *loop = xds_loop_new();
        Envoy__Config__Core__V3__Node n;
        envoy__config__core__v3__node__init(&n);
        n.id = NODE_ID;
        struct xds_ads_config cfg = {.delta = delta, .node = &n};
        snprintf(cfg.target, sizeof cfg.target, "127.0.0.1:%d", r.port);
        r.ads = xds_ads_new(&cfg);
        r.deadline = xds_loop_now_ms() + 30000;
        CHECK_EQ_INT(xds_ads_start(r.ads, loop), 0);
        xds_loop_timer(loop, 20, on_tick_reconnect, &r);
        xds_loop_run(loop);
        CHECK(!r.timed_out);
        if (r.timed_out) {
            char cmd[700];
            fprintf(stderr, "  reconnect: timed out in phase %d; server stderr:\n", r.phase);
            snprintf(cmd, sizeof cmd, "cat '%s/server.err' >&2", dir);
            if (system(cmd) != 0) fprintf(stderr, "  (none)\n");
        }
        /* The state served throughout; the new stream asked with what it held. */
        CHECK(xds_state_find(xds_ads_current(r.ads), XDS_RDS, "80") != NULL);
        CHECK(xds_ads_stats(r.ads)->type[XDS_CDS].update_failure >= 1);
        xds_ads_stop(r.ads);
        xds_ads_free(r.ads);
        xds_loop_free(loop);

        json_t *log = read_log();
        json_t *first = json_array_get(log, 0);
        CHECK_STR(jstr(first, "type_url"), CDS_URL);
        CHECK_STR(jstr(first, "response_nonce"), "");
        if (delta) {
            json_t *irv = json_object_get(first, "initial_resource_versions");
            CHECK(json_string_value(json_object_get(irv, "outbound|80||a")) != NULL);
        } else {
            CHECK_STR(jstr(first, "version_info"), "1");
        }
        int rds = find_rq(log, 0, RDS_URL, -1);
        CHECK(rds > 0);
        json_t *names = json_object_get(json_array_get(log, (size_t)(rds < 0 ? 0 : rds)),
                                        delta ? "resource_names_subscribe" : "resource_names");
        CHECK(json_array_size(names) == 1);
        json_decref(log);
    }
    if (r.pid > 0) {
        kill(r.pid, SIGTERM);
        waitpid(r.pid, NULL, 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

static void test_sotw_reconnect(void)
{
    run_reconnect(false);
}
static void test_delta_reconnect(void)
{
    run_reconnect(true);
}

static void test_sotw_against_grpc_js(void)
{
    run_mode(node_path, false);
}
static void test_delta_against_grpc_js(void)
{
    run_mode(node_path, true);
}

int main(void)
{
    node_path = node_bin();
    const char *s = getenv("RS_SRC");
    if (s && *s) {
        snprintf(src, sizeof src, "%s", s);
    } else {
        const char *file = __FILE__, *cut = strstr(file, "tests/unit/xds/");
        snprintf(src, sizeof src, "%.*s", (int)(cut ? cut - file - 1 : 1), cut ? file : ".");
    }
    char script[1200];
    snprintf(script, sizeof script, "%s/tests/peers/ads_server.js", src);
    if (!node_path || access(script, R_OK) != 0) {
        printf("skipped: node or %s not found\n", script);
        return 77;
    }
    static const struct rs_test_case cases[] = {
        TEST_CASE(test_sotw_against_grpc_js), TEST_CASE(test_delta_against_grpc_js),
        TEST_CASE(test_sotw_reconnect), TEST_CASE(test_delta_reconnect)};
    return rs_run_tests(cases, 4);
}
