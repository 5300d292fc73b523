/* ringside-cp: the reference control plane. Loads the mesh file, serves ADS on TCP (and a Unix
 * socket), watches the file, exits cleanly on SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/cp/ads_grpc.h"
#include "xds/cp/ads_server.h"
#include "xds/cp/gen.h"
#include "xds/cp/log.h"
#include "xds/cp/mesh.h"
#include "xds/cp/watch.h"
#include "xds/grpc.h"
#include "xds/pbjson.h"
#include "xds/registry.h"

static xds_loop *the_loop;

static void on_signal(int sig)
{
    (void)sig;
    xds_loop_stop(the_loop); /* writes an eventfd: async-signal-safe */
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringside-cp --mesh FILE --listen ADDR:PORT [--uds PATH] [-l LEVEL]\n"
               "       ringside-cp --mesh FILE --dump NODE_ID\n"
               "  --mesh FILE         the mesh file (YAML; see xds/cp/README.md), watched\n"
               "  --listen ADDR:PORT  ADS over gRPC on TCP (port 0: any; the port is printed)\n"
               "  --uds PATH          ADS on a Unix socket too\n"
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
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *mesh_path = NULL, *listen = NULL, *uds = NULL, *dump_node = NULL;
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
    int rc = 1;
    struct cp_ads *ads = cp_ads_new(mesh);
    xds_grpc_server *srv = NULL;
    struct cp_watch *watch = NULL;
    the_loop = xds_loop_new();
    if (!the_loop) {
        fprintf(stderr, "ringside-cp: event loop: %s\n", strerror(errno));
        goto out;
    }
    srv = xds_grpc_server_new(the_loop, NULL);
    uint16_t bound = 0;
    int e = srv ? cp_ads_grpc_register(srv, ads) : -ENOMEM;
    if (e == 0) e = xds_grpc_server_listen_tcp(srv, ip, port, &bound);
    if (e < 0) {
        fprintf(stderr, "ringside-cp: listen on %s: %s\n", listen, strerror(-e));
        goto out;
    }
    if (uds && (e = xds_grpc_server_listen_unix(srv, uds)) < 0) {
        fprintf(stderr, "ringside-cp: listen on unix:%s: %s\n", uds, strerror(-e));
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
out:
    cp_watch_free(watch);
    if (srv) xds_grpc_server_free(srv);
    cp_ads_free(ads);
    if (the_loop) xds_loop_free(the_loop);
    return rc;
}
