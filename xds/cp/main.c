/* ringside-cp: the reference control plane. Loads the mesh file, opens (or creates) the mesh CA,
 * serves ADS on TCP (and a Unix socket) and SDS alone on another Unix socket, rotates workload
 * certificates, watches the file, exits cleanly on SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "xds/cp/ads_grpc.h"
#include "xds/cp/ads_server.h"
#include "xds/cp/ca.h"
#include "xds/cp/gen.h"
#include "xds/cp/log.h"
#include "xds/cp/mesh.h"
#include "xds/cp/sds.h"
#include "xds/cp/watch.h"
#include "xds/grpc.h"
#include "xds/pbjson.h"
#include "xds/registry.h"

static xds_loop *the_loop;

struct ticker {
    struct cp_ads *ads;
    uint64_t every_ms;
};

static void on_signal(int sig)
{
    (void)sig;
    xds_loop_stop(the_loop); /* writes an eventfd: async-signal-safe */
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringside-cp --mesh FILE --listen ADDR:PORT [--uds PATH] [-l LEVEL]\n"
            "                  [--ca-dir DIR | --root-cert FILE --root-key FILE]\n"
            "                  [--sds-uds PATH] [--rotate-every DURATION]\n"
            "       ringside-cp --mesh FILE --dump NODE_ID\n"
            "  --mesh FILE         the mesh file (YAML; see xds/cp/README.md), watched\n"
            "  --listen ADDR:PORT  ADS over gRPC on TCP (port 0: any; the port is printed)\n"
            "  --uds PATH          ADS on a Unix socket too\n"
            "  --ca-dir DIR        the mesh CA (root-cert.pem, root-key.pem; created if absent)\n"
            "                      default: options.ca_dir, else .ringside-ca next to the mesh\n"
            "  --root-cert FILE, --root-key FILE  an existing root instead\n"
            "  --sds-uds PATH      SDS alone (StreamSecrets) on a Unix socket, as Istio's agent\n"
            "  --rotate-every D    re-issue workload certificates every D (1s, 500ms), for tests\n"
            "  -l, --log-level L   trace|debug|info|warning|error|off (info)\n"
            "  --dump NODE_ID      print the resources a node would get, as JSON, and exit\n");
}

/* --dump: what a node gets, as Envoy's JSON, by type ({"CDS": [...], "EDS": [...], ...}). */
static int dump(const struct cp_mesh *mesh, const char *node_id)
{
    struct cp_node node;
    if (cp_node_parse(node_id, &node) < 0)
        fprintf(stderr, "ringside-cp: \"%s\" is not a sidecar node id: outbound resources only\n",
                node_id);
    char err[1024];
    struct cp_resources *res = cp_generate(mesh, &node, err, sizeof err);
    if (!res) {
        fprintf(stderr, "ringside-cp: %s\n", err);
        return 1;
    }
    json_t *out = json_object();
    for (int t = 0; t < CP_NTYPES; t++) {
        json_t *list = json_array();
        const ProtobufCMessageDescriptor *d = xds_registry_find(cp_type_url((enum cp_type)t));
        for (size_t i = 0; i < res->n[t]; i++) {
            ProtobufCMessage *m =
                protobuf_c_message_unpack(d, NULL, res->v[t][i].len, res->v[t][i].bytes);
            if (m) json_array_append_new(list, xds_to_json(m));
            protobuf_c_message_free_unpacked(m, NULL);
        }
        json_object_set_new(out, cp_type_short((enum cp_type)t), list);
    }
    json_dumpf(out, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(out);
    cp_resources_free(res);
    return 0;
}

/* "1s", "500ms", "2m": a rotation period in milliseconds, or 0 when malformed. */
static uint64_t parse_period(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    double scale = strcmp(end, "ms") == 0  ? 1
                   : strcmp(end, "s") == 0 ? 1e3
                   : strcmp(end, "m") == 0 ? 60e3
                                           : 0;
    if (end == s || !(v > 0) || v * scale > 864e5) return 0;
    return (uint64_t)(v * scale + 0.5);
}

static void on_tick(xds_loop *loop, void *arg)
{
    struct ticker *t = arg;
    cp_ads_tick(t->ads);
    if (!xds_loop_timer(loop, t->every_ms, on_tick, t)) {
        cp_log(CP_LOG_ERROR, "rotation timer: out of memory, certificates no longer rotate");
    }
}

/* The CA: --root-cert/--root-key, else --ca-dir, else the mesh's options.ca_dir (relative to the
 * mesh file), else .ringside-ca next to the mesh file. Only the default may fail softly (a
 * read-only mesh directory): then SDS answers stay empty, as before there was a CA. */
static struct cp_ca *open_ca(const char *mesh_path, const struct cp_mesh *mesh, const char *ca_dir,
                             const char *root_cert, const char *root_key, int *fatal)
{
    char dir[4096], err[1024];
    const char *slash = strrchr(mesh_path, '/');
    int mesh_dir_len = slash ? (int)(slash - mesh_path) : 1;
    const char *mesh_dir = slash ? mesh_path : ".";
    int explicit = ca_dir || root_cert || root_key || mesh->options.ca_dir;
    if (!ca_dir && mesh->options.ca_dir && mesh->options.ca_dir[0] == '/')
        ca_dir = mesh->options.ca_dir;
    else if (!ca_dir && mesh->options.ca_dir) {
        snprintf(dir, sizeof dir, "%.*s/%s", mesh_dir_len, mesh_dir, mesh->options.ca_dir);
        ca_dir = dir;
    } else if (!ca_dir) {
        snprintf(dir, sizeof dir, "%.*s/.ringside-ca", mesh_dir_len, mesh_dir);
        ca_dir = dir;
    }
    struct cp_ca_opts o = {.dir = ca_dir, .root_cert = root_cert, .root_key = root_key};
    struct cp_ca *ca = cp_ca_open(&o, err, sizeof err);
    *fatal = !ca && explicit;
    if (!ca)
        cp_log(explicit ? CP_LOG_ERROR : CP_LOG_WARN, "mesh CA%s: %s", explicit ? "" : " (no SDS)",
               err);
    else
        cp_log(CP_LOG_INFO, "mesh CA %s %s", cp_ca_created(ca) ? "created in" : "loaded from",
               root_cert ? root_cert : ca_dir);
    return ca;
}

/* "127.0.0.1:15010", "[::1]:0", ":15010" (all addresses). */
static int parse_listen(const char *s, char *ip, size_t iplen, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *host = s;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') host++, hlen -= 2;
    if (hlen == 0) host = "0.0.0.0", hlen = 7;
    if (hlen >= iplen) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535) return -1;
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"mesh", required_argument, NULL, 'm'},
                                         {"listen", required_argument, NULL, 'L'},
                                         {"uds", required_argument, NULL, 'u'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"dump", required_argument, NULL, 'd'},
                                         {"ca-dir", required_argument, NULL, 'C'},
                                         {"root-cert", required_argument, NULL, 'R'},
                                         {"root-key", required_argument, NULL, 'K'},
                                         {"sds-uds", required_argument, NULL, 'S'},
                                         {"rotate-every", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *mesh_path = NULL, *listen = NULL, *uds = NULL, *dump_node = NULL;
    const char *ca_dir = NULL, *root_cert = NULL, *root_key = NULL, *sds_uds = NULL;
    uint64_t rotate_every_ms = 0;
    for (int c; (c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'm':
            mesh_path = optarg;
            break;
        case 'L':
            listen = optarg;
            break;
        case 'u':
            uds = optarg;
            break;
        case 'd':
            dump_node = optarg;
            break;
        case 'C':
            ca_dir = optarg;
            break;
        case 'R':
            root_cert = optarg;
            break;
        case 'K':
            root_key = optarg;
            break;
        case 'S':
            sds_uds = optarg;
            break;
        case 'r':
            if (!(rotate_every_ms = parse_period(optarg))) {
                fprintf(stderr, "ringside-cp: --rotate-every \"%s\": expected e.g. 1s, 500ms\n",
                        optarg);
                return 2;
            }
            break;
        case 'l': {
            int level = cp_log_parse_level(optarg);
            if (level < 0) {
                fprintf(stderr, "ringside-cp: unknown log level \"%s\"\n", optarg);
                return 2;
            }
            cp_log_set_level((enum cp_log_level)level);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    char ip[64];
    uint16_t port = 0;
    if (!mesh_path || (!listen && !dump_node) || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!dump_node && parse_listen(listen, ip, sizeof ip, &port) < 0) {
        fprintf(stderr, "ringside-cp: --listen \"%s\": expected ADDR:PORT\n", listen);
        return 2;
    }
    char err[1024];
    struct cp_mesh *mesh = cp_mesh_load(mesh_path, err, sizeof err);
    if (!mesh) {
        fprintf(stderr, "ringside-cp: %s\n", err);
        return 1;
    }
    if (dump_node) {
        int drc = dump(mesh, dump_node);
        cp_mesh_free(mesh);
        return drc;
    }
    int rc = 1, fatal = 0;
    struct cp_ca *ca = open_ca(mesh_path, mesh, ca_dir, root_cert, root_key, &fatal);
    if (fatal) {
        cp_mesh_free(mesh);
        return 1;
    }
    struct cp_sds *sds = ca ? cp_sds_new(ca, rotate_every_ms) : NULL;
    struct ticker ticker = {.every_ms = 1000};
    if (rotate_every_ms && rotate_every_ms / 4 < ticker.every_ms)
        ticker.every_ms = rotate_every_ms / 4 > 50 ? rotate_every_ms / 4 : 50;
    struct cp_ads *ads = cp_ads_new(mesh);
    cp_ads_set_sds(ads, sds);
    ticker.ads = ads;
    xds_grpc_server *srv = NULL, *sds_srv = NULL;
    struct cp_watch *watch = NULL;
    the_loop = xds_loop_new();
    if (!the_loop) {
        fprintf(stderr, "ringside-cp: event loop: %s\n", strerror(errno));
        goto out;
    }
    srv = xds_grpc_server_new(the_loop, NULL);
    uint16_t bound = 0;
    int e = srv ? cp_ads_grpc_register(srv, ads) : -ENOMEM;
    if (e == 0) e = cp_sds_grpc_register(srv, ads);
    if (e == 0) e = xds_grpc_server_listen_tcp(srv, ip, port, &bound);
    if (e < 0) {
        fprintf(stderr, "ringside-cp: listen on %s: %s\n", listen, strerror(-e));
        goto out;
    }
    if (uds && (e = xds_grpc_server_listen_unix(srv, uds)) < 0) {
        fprintf(stderr, "ringside-cp: listen on unix:%s: %s\n", uds, strerror(-e));
        goto out;
    }
    if (sds_uds) {
        sds_srv = xds_grpc_server_new(the_loop, NULL);
        e = sds_srv ? cp_sds_grpc_register(sds_srv, ads) : -ENOMEM;
        if (e == 0) e = xds_grpc_server_listen_unix(sds_srv, sds_uds);
        /* Istio's workload socket is for the pod's own proxy: owner only. */
        if (e == 0 && chmod(sds_uds, 0600) < 0) e = -errno;
        if (e < 0) {
            fprintf(stderr, "ringside-cp: SDS on unix:%s: %s\n", sds_uds, strerror(-e));
            goto out;
        }
    }
    if (sds && !xds_loop_timer(the_loop, ticker.every_ms, on_tick, &ticker)) {
        fprintf(stderr, "ringside-cp: rotation timer: out of memory\n");
        goto out;
    }
    watch = cp_watch_new(the_loop, mesh_path, ads);
    if (!watch) {
        fprintf(stderr, "ringside-cp: watching %s: %s\n", mesh_path, strerror(errno));
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("ringside-cp listening on %s:%u%s%s\n", ip, bound, uds ? " and unix:" : "",
           uds ? uds : "");
    fflush(stdout);
    cp_log(CP_LOG_INFO, "ADS on %s:%u%s%s, mesh %s: %zu services, %zu workloads", ip, bound,
           uds ? " and unix:" : "", uds ? uds : "", mesh_path, mesh->n_services, mesh->n_workloads);
    if (sds_uds) cp_log(CP_LOG_INFO, "SDS on unix:%s", sds_uds);
    e = xds_loop_run(the_loop);
    rc = e < 0 ? 1 : 0;
    const struct cp_ads_stats *st = cp_ads_stats(ads);
    cp_log(CP_LOG_INFO,
           "stopping: %llu streams served, %llu responses, %llu ACKs, %llu NACKs, %llu mesh "
           "updates, %llu mesh files rejected",
           (unsigned long long)st->streams_opened, (unsigned long long)st->responses,
           (unsigned long long)st->acks, (unsigned long long)st->nacks,
           (unsigned long long)st->mesh_updates,
           (unsigned long long)cp_watch_stats(watch)->rejected);
    if (sds)
        cp_log(CP_LOG_INFO, "certificates: %llu issued, %llu rotations, %llu failures",
               (unsigned long long)cp_sds_stats(sds)->issued,
               (unsigned long long)cp_sds_stats(sds)->rotated,
               (unsigned long long)cp_sds_stats(sds)->failed);
out:
    cp_watch_free(watch);
    if (sds_srv) xds_grpc_server_free(sds_srv);
    if (srv) xds_grpc_server_free(srv);
    cp_ads_free(ads);
    cp_sds_free(sds);
    cp_ca_free(ca);
    if (the_loop) xds_loop_free(the_loop);
    return rc;
}
