/* The ADS protocol of ringside-cp, independent of the transport: streams take serialized
 * DiscoveryRequest / DeltaDiscoveryRequest messages and emit serialized responses through a
 * callback. State of the world and delta, per-type subscriptions, nonces, ACK/NACK tracking, and
 * pushes of what changed when the mesh is replaced. Single-threaded (the control loop's). */
#ifndef XDS_CP_ADS_SERVER_H
#define XDS_CP_ADS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "xds/cp/mesh.h"
#include "xds/cp/sds.h"

struct cp_ads;
struct cp_ads_stream;

/* How a stream talks to its transport. send queues one serialized response (0, or <0: the
 * transport failed, and will report the stream gone through cp_ads_stream_close). finish ends the
 * stream with a gRPC status; the ADS layer calls cp_ads_stream_close itself right after. */
struct cp_ads_io {
    int (*send)(void *ctx, const uint8_t *msg, size_t len);
    void (*finish)(void *ctx, int grpc_status, const char *message);
};

/* Counters, for logs and tests. */
struct cp_ads_stats {
    uint64_t streams_opened, streams_closed, streams_active;
    uint64_t requests, bad_requests; /* bad: undecodable, no node, bad node id */
    uint64_t responses, acks, nacks, stale_nonces, unknown_types;
    uint64_t mesh_updates;
};

/* A server owning the current mesh (mesh is taken over; NULL: an empty mesh). */
struct cp_ads *cp_ads_new(struct cp_mesh *mesh);

/* Frees the server; streams must have been closed. */
void cp_ads_free(struct cp_ads *ads);

/* Replaces the mesh (taken over; the old one is freed) and pushes to every stream what changed
 * for it. */
void cp_ads_set_mesh(struct cp_ads *ads, struct cp_mesh *mesh);

const struct cp_ads_stats *cp_ads_stats(const struct cp_ads *ads);

/* What a stream speaks: StreamAggregatedResources, DeltaAggregatedResources, or SDS alone
 * (SecretDiscoveryService/StreamSecrets, state of the world; other types are ignored). */
enum cp_ads_mode { CP_ADS_SOTW = 0, CP_ADS_DELTA = 1, CP_ADS_SDS = 2 };

/* Serves SDS secrets from sds (borrowed; NULL: SDS answers stay empty). Call before streams open.
 */
void cp_ads_set_sds(struct cp_ads *ads, struct cp_sds *sds);

/* Rotates the certificates that are due and pushes the new secrets to the streams subscribed to
 * them. Called periodically by the owner of the loop. */
void cp_ads_tick(struct cp_ads *ads);

/* A new stream: delta is an enum cp_ads_mode (0 SotW, 1 delta, 2 SDS only). peer is for logs.
 * io and ctx stay valid until cp_ads_stream_close. */
struct cp_ads_stream *cp_ads_stream_open(struct cp_ads *ads, int delta, const char *peer,
                                         const struct cp_ads_io *io, void *ctx);

/* One request from the client. May call io->send, or io->finish (then the stream is closed and
 * freed before this returns: do not use it after a finish). */
void cp_ads_stream_request(struct cp_ads_stream *s, const uint8_t *msg, size_t len);

/* The transport is gone (peer cancel, connection closed): forget the stream. */
void cp_ads_stream_close(struct cp_ads_stream *s);

#endif
