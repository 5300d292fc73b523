/* The sidecar's side of xDS: a control thread running the ADS client (xds/ads.h) on its own event
 * loop, compiling each accepted update into a snapshot off the workers and publishing it
 * (rs_server_publish), publishing the client's counters under Envoy's stat names, and the cache
 * file the last accepted resources are kept in. */
#ifndef RS_XDS_CLIENT_H
#define RS_XDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "xds/bootstrap.h"

struct rs_server;
struct rs_dns;
struct rs_xds;

struct rs_xds_opts {
    const char *cache_path; /* --xds-cache: the last accepted resources (NULL: none) */
    const char *token_file; /* --xds-token-file: bearer token for the control plane */
    const char *service_node, *service_cluster; /* --service-node / --service-cluster */
    /* How long to wait for a first answer from the control plane before serving the cache. */
    unsigned cache_wait_ms;
};

/* Starts the control thread for a bootstrap with dynamic_resources.ads_config. The bootstrap must
 * outlive the client (snapshots point into it). The server stays INITIALIZING until the first
 * listeners are accepted (or their initial fetch timed out, or the cache was served). NULL with
 * err on a configuration error. */
struct rs_xds *rs_xds_start(struct rs_server *srv, struct rs_dns *dns, const xds_bootstrap *bs,
                            const struct rs_xds_opts *opts, char *err, size_t errlen);
/* SIGHUP for a static bootstrap the control thread compiles (its TLS secrets or certificate
 * files are watched): bs (taken) replaces the bootstrap on the control thread, compiled with the
 * running snapshot as the previous one (unchanged clusters keep their pools) and published, or
 * refused (server.reload_success / server.reload_rejected). 0, or -errno when it could not be
 * handed over (bs is freed). */
int rs_xds_reload(struct rs_xds *x, xds_bootstrap *bs);
/* Stops the thread: no more updates (idempotent). */
void rs_xds_stop(struct rs_xds *x);
/* Stops and frees the client (after the admin thread, which asks rs_xds_serving_cache), with the
 * bootstraps reloads brought: after the workers stopped (rs_server_join), since their snapshots
 * borrow them. */
void rs_xds_free(struct rs_xds *x);
/* True while the data plane runs on the configuration loaded from the cache file. */
bool rs_xds_serving_cache(const struct rs_xds *x);

#endif
