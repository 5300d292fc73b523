/* A C ADS peer on xds/grpc.h with the generated Envoy messages, for the interop test against
 * grpc-js (tests/integration/test_grpc_interop.sh). Built as a unit test so ctest also runs it:
 *
 *   test_grpc_peer                               self-test: the server and client below, in-process
 *   test_grpc_peer server [UDS_PATH]             ADS server on 127.0.0.1:0 (and UDS_PATH); prints
 *                                                "listening PORT", one line per request; SIGTERM
 * ends test_grpc_peer client TARGET TYPE_URL NODE_ID [N [NAME...]] one SotW stream: request, print
 * and ACK N responses (default 1), half-close, print "status CODE MSG"
 *
 * The server answers each request with a fresh nonce (not ACKs: requests whose response_nonce is
 * set), one Cluster per requested name ("c0" for a wildcard request); "fail" as the node id ends
 * the stream with FAILED_PRECONDITION. */
#include "xds/grpc.h"

#include <envoy/config/cluster/v3/cluster.pb-c.h>
#include <envoy/service/discovery/v3/discovery.pb-c.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOTW "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
#define CLUSTER_URL "type.googleapis.com/envoy.config.cluster.v3.Cluster"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest DiscoveryRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse DiscoveryResponse;

static xds_loop *loop;

/* ---- server -------------------------------------------------------------------------------- */

static int nonce_seq;

static void respond(xds_grpc_stream *s, const DiscoveryRequest *req)
{
    size_t n = req->n_resource_names ? req->n_resource_names : 1;
    Google__Protobuf__Any *anys = calloc(n, sizeof *anys);
    Google__Protobuf__Any **ptrs = calloc(n, sizeof *ptrs);
    for (size_t i = 0; i < n; i++) {
        /* The _init functions, not the INIT macros, which name deprecated fields (clang warns). */
        Envoy__Config__Cluster__V3__Cluster c;
        envoy__config__cluster__v3__cluster__init(&c);
        c.name = req->n_resource_names ? req->resource_names[i] : "c0";
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = CLUSTER_URL;
        anys[i].value.len = envoy__config__cluster__v3__cluster__get_packed_size(&c);
        anys[i].value.data = malloc(anys[i].value.len);
        envoy__config__cluster__v3__cluster__pack(&c, anys[i].value.data);
        ptrs[i] = &anys[i];
    }
    char nonce[16];
    snprintf(nonce, sizeof nonce, "n%d", ++nonce_seq);
    DiscoveryResponse resp;
    envoy__service__discovery__v3__discovery_response__init(&resp);
    resp.version_info = "v1";
    resp.type_url = req->type_url;
    resp.nonce = nonce;
    resp.n_resources = n;
    resp.resources = ptrs;
    size_t len = envoy__service__discovery__v3__discovery_response__get_packed_size(&resp);
    uint8_t *buf = malloc(len);
    envoy__service__discovery__v3__discovery_response__pack(&resp, buf);
    xds_grpc_stream_send(s, buf, len);
    free(buf);
    for (size_t i = 0; i < n; i++) free(anys[i].value.data);
    free(anys);
    free(ptrs);
}

static void srv_open(xds_grpc_stream *s, void *arg)
{
    (void)arg;
    const char *ua = xds_grpc_stream_header(s, "user-agent");
    printf("open peer=%s user-agent=%s\n", xds_grpc_stream_peer(s), ua ? ua : "");
    fflush(stdout);
}

static void srv_message(xds_grpc_stream *s, const uint8_t *msg, size_t len, void *arg)
{
    (void)arg;
    DiscoveryRequest *req =
        envoy__service__discovery__v3__discovery_request__unpack(NULL, len, msg);
    if (!req) {
        xds_grpc_stream_finish(s, XDS_GRPC_INVALID_ARGUMENT, "not a DiscoveryRequest");
        return;
    }
    const char *node = req->node ? req->node->id : "";
    printf("request node=%s type_url=%s version_info=%s response_nonce=%s names=%zu\n", node,
           req->type_url, req->version_info, req->response_nonce, req->n_resource_names);
    fflush(stdout);
    if (strcmp(node, "fail") == 0)
        xds_grpc_stream_finish(s, XDS_GRPC_FAILED_PRECONDITION, "node fail refused");
    else if (!req->response_nonce[0])
        respond(s, req);
    envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
}

static void srv_half_close(xds_grpc_stream *s, void *arg)
{
    (void)arg;
    xds_grpc_stream_finish(s, XDS_GRPC_OK, NULL);
}

static int cancelled;
static void srv_cancel(xds_grpc_stream *s, void *arg)
{
    (void)s, (void)arg;
    cancelled++;
}

static const struct xds_grpc_handler ads = {srv_open, srv_message, srv_half_close, srv_cancel};

static xds_grpc_server *server_start(const char *uds, uint16_t *port)
{
    xds_grpc_server *srv = xds_grpc_server_new(loop, NULL);
    if (xds_grpc_server_register(srv, SOTW, &ads, NULL) < 0 ||
        xds_grpc_server_listen_tcp(srv, "127.0.0.1", 0, port) < 0 ||
        (uds && xds_grpc_server_listen_unix(srv, uds) < 0)) {
        fprintf(stderr, "server: cannot listen\n");
        exit(1);
    }
    return srv;
}

/* ---- client -------------------------------------------------------------------------------- */

struct client {
    int want, got, status;
    bool closed;
    char message[256];
    char **names;
    size_t n_names;
    bool quiet;
};

static void send_request(xds_grpc_call *call, struct client *c, const char *type_url,
                         const char *node_id, const DiscoveryResponse *acking)
{
    DiscoveryRequest req;
    Envoy__Config__Core__V3__Node node;
    envoy__service__discovery__v3__discovery_request__init(&req);
    envoy__config__core__v3__node__init(&node);
    req.type_url = (char *)type_url;
    req.resource_names = c->names;
    req.n_resource_names = c->n_names;
    if (acking) {
        req.version_info = acking->version_info;
        req.response_nonce = acking->nonce;
    } else {
        node.id = (char *)node_id;
        req.node = &node;
    }
    size_t len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
    uint8_t *buf = malloc(len);
    envoy__service__discovery__v3__discovery_request__pack(&req, buf);
    xds_grpc_call_send(call, buf, len);
    free(buf);
}

static void cli_message(xds_grpc_call *call, const uint8_t *msg, size_t len, void *user)
{
    struct client *c = user;
    DiscoveryResponse *r =
        envoy__service__discovery__v3__discovery_response__unpack(NULL, len, msg);
    if (!r) {
        printf("bad response (%zu bytes)\n", len);
        xds_grpc_call_cancel(call);
        c->closed = true;
        c->status = XDS_GRPC_INTERNAL;
        xds_loop_stop(loop);
        return;
    }
    if (!c->quiet) {
        printf("response version_info=%s nonce=%s type_url=%s resources=%zu names=",
               r->version_info, r->nonce, r->type_url, r->n_resources);
        for (size_t i = 0; i < r->n_resources; i++) {
            Envoy__Config__Cluster__V3__Cluster *cl = envoy__config__cluster__v3__cluster__unpack(
                NULL, r->resources[i]->value.len, r->resources[i]->value.data);
            printf("%s%s", i ? "," : "", cl ? cl->name : "?");
            if (cl) envoy__config__cluster__v3__cluster__free_unpacked(cl, NULL);
        }
        printf("\n");
        fflush(stdout);
    }
    send_request(call, c, r->type_url, NULL, r); /* ACK */
    if (++c->got >= c->want) xds_grpc_call_half_close(call);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
}

static void cli_close(xds_grpc_call *call, int status, const char *msg, void *user)
{
    (void)call;
    struct client *c = user;
    c->closed = true;
    c->status = status;
    snprintf(c->message, sizeof c->message, "%s", msg);
    xds_loop_stop(loop);
}

static const struct xds_grpc_call_cbs cli_cbs = {.on_message = cli_message, .on_close = cli_close};

static int run_client(const char *target, const char *type_url, const char *node_id,
                      struct client *c)
{
    xds_grpc_client *cl = xds_grpc_client_new(
        loop, &(struct xds_grpc_client_opts){.target = target, .user_agent = "ringside-peer"});
    if (!cl) {
        fprintf(stderr, "bad target %s\n", target);
        return 2;
    }
    xds_grpc_call *call = xds_grpc_call_start(cl, SOTW, NULL, 0, &cli_cbs, c);
    send_request(call, c, type_url, node_id, NULL);
    xds_loop_run(loop);
    if (!c->quiet) printf("status %d %s\n", c->status, c->message);
    xds_grpc_client_free(cl);
    return c->status == XDS_GRPC_OK && c->got >= c->want ? 0 : 1;
}

/* ---- modes --------------------------------------------------------------------------------- */

static void on_term(int sig)
{
    (void)sig;
    xds_loop_stop(loop);
}

static int self_test(void)
{
    uint16_t port;
    xds_grpc_server *srv = server_start(NULL, &port);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    char *names[] = {"a", "b"};
    struct client c = {.want = 1, .names = names, .n_names = 2, .quiet = true};
    int rc = run_client(target, CLUSTER_URL, "self", &c);
    struct client f = {.want = 1, .quiet = true};
    int rc2 = run_client(target, CLUSTER_URL, "fail", &f);
    xds_grpc_server_free(srv);
    int failed = (rc != 0) + (f.status != XDS_GRPC_FAILED_PRECONDITION) + (rc2 == 0);
    printf("%s self-test: OK round trip, FAILED_PRECONDITION from trailers (%d %s)\n",
           failed ? "FAIL" : "ok  ", f.status, f.message);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    loop = xds_loop_new();
    int rc;
    if (argc == 1) {
        rc = self_test();
    } else if (strcmp(argv[1], "server") == 0) {
        uint16_t port;
        xds_grpc_server *srv = server_start(argc > 2 ? argv[2] : NULL, &port);
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        printf("listening %u\n", port);
        fflush(stdout);
        xds_loop_run(loop);
        xds_grpc_server_free(srv);
        printf("stopped (%d streams cancelled)\n", cancelled);
        rc = 0;
    } else if (strcmp(argv[1], "client") == 0 && argc >= 5) {
        struct client c = {.want = argc > 5 ? atoi(argv[5]) : 1};
        c.names = argc > 6 ? argv + 6 : NULL;
        c.n_names = argc > 6 ? (size_t)(argc - 6) : 0;
        rc = run_client(argv[2], argv[3], argv[4], &c);
    } else {
        fprintf(stderr, "usage: %s [server [UDS] | client TARGET TYPE_URL NODE_ID [N [NAME...]]]\n",
                argv[0]);
        rc = 2;
    }
    xds_loop_free(loop);
    return rc;
}
