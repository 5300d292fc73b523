/* The control thread's secret sources besides ADS: one SotW StreamSecrets stream per separate
 * SDS server (a static cluster named by SdsSecretConfig.sds_config.api_config_source: Istio's
 * sds-grpc, pilot-agent's Unix socket), subscribed to the names the configuration references,
 * and an inotify watch on the certificate files and watched directories TLS contexts read.
 * A secret that arrives or changes, or a file that changes, calls back the owner (xds_client.c),
 * which recompiles and publishes. Everything runs on the control thread's xds_loop. */
#ifndef RS_SDS_CLIENT_H
#define RS_SDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "envoy/config/core/v3/base.pb-c.h"
#include "xds/bootstrap.h"

struct rs_sds;
struct rs_snapshot;
struct rs_xds_input;
struct xds_loop;
struct xds_state;

struct rs_sds_hooks {
    /* A separate SDS server sent secrets: recompile with rs_sds_fill (which sees this candidate)
     * and return 0 to accept (ACK), or non-zero with err to NACK. */
    int (*secrets)(void *arg, char *err, size_t errlen);
    /* A watched certificate file changed (rs_secrets_files_changed was called). */
    void (*files)(void *arg);
    void *arg;
};

/* node is copied (may be NULL). */
struct rs_sds *rs_sds_new(struct xds_loop *loop, const xds_bootstrap *bs,
                          const Envoy__Config__Core__V3__Node *node, const struct rs_sds_hooks *h);
void rs_sds_free(struct rs_sds *s); /* on the loop's thread, or after it stopped */

/* The bootstrap changed (SIGHUP reload of a static bootstrap): static clusters and names are read
 * from bs from now on (streams already open keep their target). */
void rs_sds_set_bootstrap(struct rs_sds *s, const xds_bootstrap *bs);

/* Sets in->grpc_secret/grpc_ctx so a compile reads the separate servers' secrets. */
void rs_sds_fill(struct rs_sds *s, struct rs_xds_input *in);

/* Hands snapshot s the states of the separate servers (referenced; a server being applied
 * contributes its candidate), for /config_dump. */
void rs_sds_keep(struct rs_sds *sds, struct rs_snapshot *s);

/* Subscriptions follow the configuration: the names the bootstrap's static resources and the
 * accepted ADS state (NULL: none) take from separate SDS servers; streams start on first use. */
void rs_sds_sync(struct rs_sds *s, const struct xds_state *ads);

/* Whether a name subscribed from a separate server has not arrived yet. */
bool rs_sds_pending(const struct rs_sds *s);

/* Watches the certificate files noted so far (rs_secrets_note_file); call after compiles. */
void rs_sds_watch_files(struct rs_sds *s);

/* Counts sds.<secret>.update_success (ok) or update_rejected for each secret cand adds or
 * changes over old (an ADS or a separate server's state). */
void rs_sds_count(const struct xds_state *old, const struct xds_state *cand, bool ok);

/* Whether the bootstrap's static resources need the control thread for their certificates: a
 * secret from a separate SDS server, or TLS material read from files. */
bool rs_sds_bootstrap_needs(const xds_bootstrap *bs);

#endif
