/* ringside: the sidecar binary. Envoy's command line where it overlaps (and the flags Istio's
 * pilot-agent passes are accepted), the bootstrap loaded and compiled into a snapshot, workers
 * and the admin listener started, then signals: SIGTERM/SIGINT drain and exit 0. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sidecar/admin.h"
#include "sidecar/config.h"
#include "sidecar/dns.h"
#include "sidecar/log.h"
#include "sidecar/sds_client.h"
#include "sidecar/server.h"
#include "sidecar/xds_client.h"
#include "xds/bootstrap.h"

#define RS_VERSION "0.1.0"

struct options {
    const char *config_path, *config_yaml, *mode, *service_node, *service_cluster;
    const char *xds_cache, *xds_token_file;
    int concurrency;
    uint32_t drain_time_s;
    bool allow_unknown;
};

static struct rs_server server;
static char command_line[1024];

static void usage(FILE *f)
{
    fprintf(f, "usage: ringside -c FILE [--config-yaml YAML] [--mode serve|validate]\n"
               "                [--concurrency N] [--drain-time-s S] [-l LEVEL]\n"
               "                [--service-node ID] [--service-cluster NAME]\n"
               "                [--xds-cache FILE] [--xds-token-file FILE]\n"
               "Envoy's other flags that Istio's pilot-agent passes are accepted.\n");
}

enum {
    OPT_CONFIG_YAML = 256,
    OPT_MODE,
    OPT_CONCURRENCY,
    OPT_DRAIN_TIME,
    OPT_NODE,
    OPT_CLUSTER,
    OPT_ALLOW_UNKNOWN,
    OPT_IGNORED_ARG,
    OPT_IGNORED_FLAG,
    OPT_VERSION,
    OPT_XDS_CACHE,
    OPT_XDS_TOKEN,
};

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        {"config-path", required_argument, NULL, 'c'},
        {"config-yaml", required_argument, NULL, OPT_CONFIG_YAML},
        {"mode", required_argument, NULL, OPT_MODE},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"drain-time-s", required_argument, NULL, OPT_DRAIN_TIME},
        {"log-level", required_argument, NULL, 'l'},
        {"service-node", required_argument, NULL, OPT_NODE},
        {"service-cluster", required_argument, NULL, OPT_CLUSTER},
        {"allow-unknown-static-fields", no_argument, NULL, OPT_ALLOW_UNKNOWN},
        /* accepted for pilot-agent compatibility; they tune Envoy internals Ringside lacks */
        {"drain-strategy", required_argument, NULL, OPT_IGNORED_ARG},
        {"local-address-ip-version", required_argument, NULL, OPT_IGNORED_ARG},
        {"file-flush-interval-msec", required_argument, NULL, OPT_IGNORED_ARG},
        {"log-format", required_argument, NULL, OPT_IGNORED_ARG},
        {"component-log-level", required_argument, NULL, OPT_IGNORED_ARG},
        {"parent-shutdown-time-s", required_argument, NULL, OPT_IGNORED_ARG},
        {"restart-epoch", required_argument, NULL, OPT_IGNORED_ARG},
        {"base-id", required_argument, NULL, OPT_IGNORED_ARG},
        {"log-path", required_argument, NULL, OPT_IGNORED_ARG},
        {"service-zone", required_argument, NULL, OPT_IGNORED_ARG},
        {"disable-hot-restart", no_argument, NULL, OPT_IGNORED_FLAG},
        {"use-dynamic-base-id", no_argument, NULL, OPT_IGNORED_FLAG},
        {"reject-unknown-dynamic-fields", no_argument, NULL, OPT_IGNORED_FLAG},
        {"ignore-unknown-dynamic-fields", no_argument, NULL, OPT_IGNORED_FLAG},
        {"disable-extensions", required_argument, NULL, OPT_IGNORED_ARG},
        {"xds-cache", required_argument, NULL, OPT_XDS_CACHE},
        {"xds-token-file", required_argument, NULL, OPT_XDS_TOKEN},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    o->mode = "serve";
    o->concurrency = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o->drain_time_s = 600; /* Envoy's default */
    int c;
    while ((c = getopt_long(argc, argv, "c:l:h", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case OPT_CONFIG_YAML:
            o->config_yaml = optarg;
            break;
        case OPT_MODE:
            o->mode = optarg;
            break;
        case OPT_CONCURRENCY:
            o->concurrency = atoi(optarg);
            break;
        case OPT_DRAIN_TIME:
            o->drain_time_s = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'l': {
            int lvl = rs_log_parse_level(optarg);
            if (lvl < 0) {
                fprintf(stderr, "ringside: unknown log level '%s'\n", optarg);
                return -1;
            }
            rs_log_min = (enum rs_log_level)lvl;
            break;
        }
        case OPT_NODE:
            o->service_node = optarg;
            break;
        case OPT_CLUSTER:
            o->service_cluster = optarg;
            break;
        case OPT_ALLOW_UNKNOWN:
            o->allow_unknown = true;
            break;
        case OPT_XDS_CACHE:
            o->xds_cache = optarg;
            break;
        case OPT_XDS_TOKEN:
            o->xds_token_file = optarg;
            break;
        case OPT_IGNORED_ARG:
        case OPT_IGNORED_FLAG:
            break;
        case OPT_VERSION:
            printf("ringside version: %s\n", RS_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringside: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (strcmp(o->mode, "serve") != 0 && strcmp(o->mode, "validate") != 0) {
        fprintf(stderr,
                "ringside: --mode must be serve or validate (init_only is not supported)\n");
        return -1;
    }
    if (!o->config_path && !o->config_yaml) {
        fprintf(stderr, "ringside: a configuration is required (-c FILE or --config-yaml)\n");
        return -1;
    }
    if (o->concurrency < 1 || o->concurrency > 64) {
        fprintf(stderr, "ringside: --concurrency must be 1..64\n");
        return -1;
    }
    return 0;
}

/* ---- admin hooks --------------------------------------------------------------------------- */

static volatile sig_atomic_t admin_quit;
static rs_stat_id stat_reload_ok, stat_reload_failed;

static struct rs_snapshot *hook_snapshot(void *ctx)
{
    (void)ctx;
    return rs_server_snapshot(&server);
}

static void hook_quit(void *ctx)
{
    (void)ctx;
    admin_quit = 1; /* the main thread stops everything, admin included */
    kill(getpid(), SIGUSR1);
}

static void hook_drain(void *ctx, bool graceful, bool inbound_only)
{
    (void)ctx, (void)graceful, (void)inbound_only;
    rs_info("draining listeners (admin request)");
    rs_server_drain(&server, false);
}

static int hook_state(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&server.state, __ATOMIC_ACQUIRE);
}

static uint64_t hook_uptime(void *ctx)
{
    (void)ctx;
    return (rs_now_ms() - server.start_ms) / 1000;
}

uint32_t rs_server_sessions(struct rs_server *srv);

static struct rs_xds *xds; /* NULL for a static bootstrap without watched secrets */
static bool dynamic;
/* The control thread compiles: ADS, or a static bootstrap whose TLS takes secrets from a separate
 * SDS server or reads certificate files it watches (rotation rebuilds contexts in place). Such a
 * bootstrap compiles as xDS resources do: a route may name a cluster still warming (503 until
 * its secrets arrive; Envoy would hold the listeners until then). */
static bool controlled;

static const char *hook_config_source(void *ctx)
{
    (void)ctx;
    if (!dynamic) return "bootstrap";
    return rs_xds_serving_cache(xds) ? "xds cache" : "xds";
}

/* SIGHUP: load the bootstrap again and publish it (a Ringside addition: Envoy ignores SIGHUP).
 * Listeners with an unchanged definition keep their connections; the others drain. A bootstrap
 * that does not load or compile is refused and the running configuration stays. */
static void reload(const struct options *o, struct rs_dns *dns)
{
    char err[1024];
    unsigned flags = o->allow_unknown ? XDS_LOAD_ALLOW_UNKNOWN : 0;
    xds_bootstrap *bs = xds_bootstrap_load(o->config_path, o->config_yaml, flags, err, sizeof err);
    if (bs && controlled && !dynamic && !bs->dynamic_resources) {
        /* the control thread compiles this bootstrap (its certificates are watched): it takes
         * the new one, compiles, publishes and counts the outcome */
        if (rs_xds_reload(xds, bs) != 0) {
            rs_error("reload refused: the control thread did not take the new bootstrap");
            rs_stat_inc(rs_stats_shard(-1), stat_reload_failed);
        }
        return;
    }
    if (bs && (bs->dynamic_resources || controlled)) {
        rs_error("reload refused: %s (restart to change the bootstrap)",
                 dynamic ? "a bootstrap with dynamic_resources is not reloaded (its configuration "
                           "comes from xDS)"
                         : "a static bootstrap cannot become a dynamic one");
        rs_stat_inc(rs_stats_shard(-1), stat_reload_failed);
        xds_bootstrap_free(bs);
        return;
    }
    struct rs_snapshot *snap = bs ? rs_config_compile(bs, true, err, sizeof err) : NULL;
    if (!snap) {
        rs_error("reload refused, keeping the running configuration: %s", err);
        rs_stat_inc(rs_stats_shard(-1), stat_reload_failed);
        return;
    }
    if (o->service_node) {
        free(snap->node_id);
        snap->node_id = strdup(o->service_node);
    }
    if (o->service_cluster) {
        free(snap->node_cluster);
        snap->node_cluster = strdup(o->service_cluster);
    }
    struct rs_snapshot *cur = rs_server_snapshot(&server);
    int ret = rs_config_update_dns(cur, snap, dns); /* stops the DNS of the clusters it drops */
    if (ret == 0) ret = rs_server_publish(&server, snap, err, sizeof err);
    if (ret) {
        rs_error("reload refused, keeping the running configuration: %s", err);
        rs_stat_inc(rs_stats_shard(-1), stat_reload_failed);
        rs_config_update_dns(snap, cur, dns);
        rs_snapshot_unref(cur);
        rs_snapshot_unref(snap);
        return;
    }
    rs_snapshot_unref(cur);
    rs_stat_inc(rs_stats_shard(-1), stat_reload_ok);
    rs_info("configuration reloaded: %u listeners, %u clusters", snap->nlisteners, snap->nclusters);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct options o = {0};
    size_t n = 0;
    for (int i = 0; i < argc && n < sizeof command_line - 1; i++)
        n += (size_t)snprintf(command_line + n, sizeof command_line - n, "%s%s", i ? " " : "",
                              argv[i]);
    if (parse_options(argc, argv, &o) != 0) return 1;

    char err[1024];
    unsigned flags = o.allow_unknown ? XDS_LOAD_ALLOW_UNKNOWN : 0;
    xds_bootstrap *bs = xds_bootstrap_load(o.config_path, o.config_yaml, flags, err, sizeof err);
    if (!bs) {
        fprintf(stderr, "ringside: error initializing configuration '%s': %s\n",
                o.config_path ? o.config_path : "--config-yaml", err);
        return 1;
    }
    bool validate = strcmp(o.mode, "validate") == 0;
    rs_stats_init(o.concurrency);
    /* With dynamic_resources the bootstrap compiles to its static part first; xDS brings the
     * rest. The bootstrap then stays ours (snapshots point into it). */
    dynamic = bs->dynamic_resources != NULL;
    controlled = dynamic || rs_sds_bootstrap_needs(bs);
    struct rs_xds_input no_resources = {0};
    struct rs_snapshot *snap =
        controlled ? rs_config_compile_xds(bs, &no_resources, NULL, !validate, err, sizeof err)
                   : rs_config_compile(bs, !validate, err, sizeof err);
    if (!snap) {
        fprintf(stderr, "ringside: error initializing configuration '%s': %s\n",
                o.config_path ? o.config_path : "--config-yaml", err);
        return 1;
    }
    if (validate) {
        printf("configuration '%s' OK\n", o.config_path ? o.config_path : "--config-yaml");
        rs_snapshot_unref(snap);
        if (controlled) xds_bootstrap_free(bs);
        return 0;
    }
    if (o.service_node) {
        free(snap->node_id);
        snap->node_id = strdup(o.service_node);
    }
    if (o.service_cluster) {
        free(snap->node_cluster);
        snap->node_cluster = strdup(o.service_cluster);
    }
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits the mask; main waits */

    server.snap = snap;
    server.nworkers = o.concurrency;
    server.drain_time_ms = o.drain_time_s * 1000;
    server.start_ms = rs_now_ms();
    server.state = RS_STATE_PRE_INITIALIZING;
    /* The admin listener first: a second instance on the same ports fails here, before its
     * SO_REUSEPORT listeners could take a share of the first one's connections. */
    struct rs_admin *admin = NULL;
    if (snap->has_admin) {
        struct rs_admin_hooks hooks = {
            .snapshot = hook_snapshot,
            .quit = hook_quit,
            .drain_listeners = hook_drain,
            .state = hook_state,
            .uptime_s = hook_uptime,
            .config_source = hook_config_source,
            .concurrency = (uint32_t)o.concurrency,
            .command_line = command_line,
            .hot_restart_version = "disabled",
        };
        admin = rs_admin_start((struct sockaddr *)&snap->admin_addr, snap->admin_addrlen, &hooks,
                               err, sizeof err);
        if (!admin) {
            rs_error("admin: %s", err);
            return 1;
        }
        char a[64];
        rs_addr_str((struct sockaddr *)&snap->admin_addr, a, sizeof a);
        rs_info("admin address: %s (port %u)", a, rs_admin_port(admin));
    }
    stat_reload_ok = rs_stats_register("server.reload_success", RS_STAT_COUNTER);
    stat_reload_failed = rs_stats_register("server.reload_rejected", RS_STAT_COUNTER);
    if (rs_server_bind(&server, err, sizeof err) != 0) {
        rs_error("%s", err);
        if (admin) rs_admin_stop(admin);
        return 1;
    }
    struct rs_dns *dns = rs_dns_start();
    if (!dns || rs_config_start_dns(snap, dns) != 0) {
        rs_error("cannot start the DNS resolver");
        return 1;
    }
    if (rs_server_start(&server) != 0) return 1;
    if (controlled) {
        /* INITIALIZING (/ready says so) until the control plane's first listeners are in */
        if (dynamic) __atomic_store_n(&server.state, RS_STATE_INITIALIZING, __ATOMIC_RELEASE);
        struct rs_xds_opts xo = {
            .cache_path = o.xds_cache,
            .token_file = o.xds_token_file,
            .service_node = o.service_node,
            .service_cluster = o.service_cluster,
        };
        xds = rs_xds_start(&server, dns, bs, &xo, err, sizeof err);
        if (!xds) {
            rs_error("xds: %s", err);
            return 1;
        }
    }
    if (!dynamic) __atomic_store_n(&server.state, RS_STATE_LIVE, __ATOMIC_RELEASE);
    rs_info("ringside %s started: %d workers, %u listeners, %u clusters", RS_VERSION, o.concurrency,
            snap->nlisteners, snap->nclusters);

    /* Signals and the drain deadline: bounded waits, the loop ends on quit or a finished drain. */
    uint64_t drain_deadline = 0;
    for (;;) {
        struct timespec ts = {0, 50 * 1000000};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (admin_quit) break;
        if (sig == SIGHUP && !drain_deadline) reload(&o, dns);
        if (sig == SIGTERM || sig == SIGINT) {
            if (drain_deadline) break; /* a second signal: stop now */
            rs_info("caught %s: draining for up to %us", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                    o.drain_time_s);
            rs_server_drain(&server, true);
            rs_xds_stop(xds); /* the drain finishes on the configuration we have */
            drain_deadline = rs_now_ms() + server.drain_time_ms;
        }
        if (drain_deadline && (rs_server_sessions(&server) == 0 || rs_now_ms() >= drain_deadline))
            break;
    }
    rs_info("shutting down");
    rs_xds_stop(xds);
    if (admin) rs_admin_stop(admin);
    rs_server_quit(&server);
    rs_server_join(&server);
    rs_xds_free(xds); /* after the workers: their snapshots borrow reloaded bootstraps */
    rs_dns_stop(dns);
    rs_snapshot_unref(snap);
    if (controlled) xds_bootstrap_free(bs);
    rs_info("exiting");
    return 0;
}
