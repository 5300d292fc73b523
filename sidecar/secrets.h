/* SDS secrets and certificate files for TLS contexts.
 *
 * - Substitution: a CommonTlsContext's SdsSecretConfigs are resolved (bootstrap
 *   static_resources.secrets for a name-only config, the ADS state for `ads: {}`, a separate SDS
 *   server's state for `api_config_source` naming a cluster) and merged into the context in
 *   place before rs_tls_ctx_client/server builds it, then undone.
 * - The names each separate SDS server must be asked for, walked from clusters and listeners.
 * - The certificate files contexts read (tls_certificates / trusted_ca filenames, and Envoy's
 *   watched_directory), which the control thread watches with inotify, and a generation bumped
 *   when one changes, so a reused cluster knows its contexts are stale.
 * - Retired client contexts: a cluster reused across compiles swaps its contexts in place; the
 *   old ones are released only once every worker has moved past the publication that retired
 *   them (see rs_secrets_retire). */
#ifndef RS_SECRETS_H
#define RS_SECRETS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

struct cctx;
struct rs_tls_ctx;

/* What rs_secrets_subst changed in a CommonTlsContext, to put back before the message is freed
 * (the substituted parts are borrowed from the secrets). */
struct rs_tls_subst {
    bool done;
    size_t n_sds, n_certs;
    Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig **sds;
    Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate **certs, *cert;
    int vcase;
    void *vunion;
    Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *merged;
};

/* Resolves every SdsSecretConfig of c and merges the secrets into c: a TlsCertificate secret
 * into tls_certificates, a CertificateValidationContext secret into validation_context (for
 * combined_validation_context: default_validation_context, then the secret merged over it with
 * protobuf's MergeFrom, as Envoy does: Istio puts the SAN matchers in the default and the root
 * in the ROOTCA secret). Adds the secrets' bytes and the
 * certificate files' generation to *fp (a fingerprint of what the context is built from), and
 * notes the files the context reads for watching. Returns 0 (c substituted: undo with
 * rs_secrets_undo), 1 when a secret has not arrived yet (c unchanged: the resource warms), or -1
 * with the error in cx (unknown static secret, unsupported sds_config, wrong secret type). */
int rs_secrets_subst(struct cctx *cx,
                     Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *c,
                     struct rs_tls_subst *u, uint64_t *fp);
void rs_secrets_undo(Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *c,
                     struct rs_tls_subst *u);

/* Whether c takes anything from SDS. */
bool rs_secrets_uses_sds(const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *c);

/* Calls fn(arg, cluster, secret, timeout_ms) for every secret a Cluster or Listener (m) takes
 * from a separate SDS server (sds_config.api_config_source.grpc_services[0].envoy_grpc
 * .cluster_name); timeout_ms is sds_config.initial_fetch_timeout (Envoy's 15 s when unset, 0:
 * none, as Istio sets). */
typedef void (*rs_secret_ref_fn)(void *arg, const char *cluster, const char *name,
                                 uint32_t timeout_ms);
void rs_secrets_grpc_names(const ProtobufCMessage *m, rs_secret_ref_fn fn, void *arg);

/* Certificate files: noted while compiling (any thread), listed for the watcher. */
void rs_secrets_note_file(const char *path, bool directory);
/* A copy of the noted paths (malloc'd array of malloc'd strings; dirs[i] true for a
 * watched_directory); returns the count. */
size_t rs_secrets_files(char ***paths, bool **dirs);
/* A watched file changed: contexts built from files are stale from now on. */
void rs_secrets_files_changed(void);
uint64_t rs_secrets_files_gen(void);

/* Server contexts by what they are built from (the DownstreamTlsContext serialized with its
 * secrets substituted, and the fingerprint of the secrets and certificate files), so a compile
 * that changes nothing of a filter chain's TLS hands it the context it had: no rebuild, and its
 * session tickets stay valid across configuration updates. rs_secrets_ctx_find returns a new
 * reference or NULL; rs_secrets_ctx_put adds one for ctx; rs_secrets_ctx_sweep (after a compile)
 * drops the entries that compile did not use. Any thread, one compile at a time. */
struct rs_tls_ctx *rs_secrets_ctx_find(const uint8_t *def, size_t len, uint64_t fp);
void rs_secrets_ctx_put(const uint8_t *def, size_t len, uint64_t fp, struct rs_tls_ctx *ctx);
void rs_secrets_ctx_sweep(void);

/* Retired client contexts. rs_secrets_retire takes the caller's reference; rs_secrets_seal
 * stamps every unstamped one with the publication sequence that follows the swap (workers that
 * have adopted it have finished every batch that could have read the old pointer);
 * rs_secrets_reap releases those whose stamp every worker has reached (min_seq: the lowest
 * sequence any worker runs on; UINT64_MAX releases all). Control thread only. */
void rs_secrets_retire(struct rs_tls_ctx *ctx);
void rs_secrets_seal(uint64_t seq);
size_t rs_secrets_reap(uint64_t min_seq);

#endif
