/* Private to the ADS client (ads.c, ads_state.c, ads_node.c, ads_grpc.c): building resources,
 * tables and states, the cache file, and the client structure the binding shares with the core. */
#ifndef XDS_ADS_IMPL_H
#define XDS_ADS_IMPL_H

#include "xds/ads.h"

/* Decodes one resource of `type` from a google.protobuf.Any (or an
 * envoy.service.discovery.v3.Resource wrapper in it). version: the resource's version (the
 * wrapper's wins when set). Returns a new resource with one reference, or NULL with err naming
 * the problem. */
struct xds_resource *xds_res_from_any(enum xds_type type, const char *type_url,
                                      const uint8_t *value, size_t len, const char *version,
                                      char *err, size_t errlen);
/* Decodes a resource's serialized message (Any.value) of `type`; name checked against want_name
 * when not NULL. */
struct xds_resource *xds_res_decode(enum xds_type type, const uint8_t *bytes, size_t len,
                                    const char *version, const char *want_name, char *err,
                                    size_t errlen);
struct xds_resource *xds_res_ref(struct xds_resource *r);
void xds_res_unref(struct xds_resource *r);
/* Names of `dep` resources (EDS, RDS, SDS) this CDS/LDS resource refers to; appended to *names
 * (malloc'd strings), count in *n, capacity in *cap. */
void xds_res_deps(const struct xds_resource *r, enum xds_type dep, char ***names, size_t *n,
                  size_t *cap);

/* A table owning the references in res[0..n) (sorted here by name), with version_info copied. */
struct xds_type_table *xds_table_new(const char *version_info, struct xds_resource **res, size_t n);
void xds_table_unref(struct xds_type_table *t);

/* An empty state, and a copy of s sharing its tables (watch arrays copied). */
struct xds_state *xds_state_new(void);
struct xds_state *xds_state_clone(const struct xds_state *s);
/* Replaces s->types[t] (takes the caller's reference on table). */
void xds_state_set_table(struct xds_state *s, enum xds_type t, struct xds_type_table *table);
/* Replaces the watch list of t with names[0..n) (taken), keeping the status of names already
 * watched; new names are ARRIVED if the table has them, else PENDING with deadline. Returns
 * true when the set of names changed. */
bool xds_state_set_watch(struct xds_state *s, enum xds_type t, char **names, size_t n,
                         uint64_t deadline_ms);
struct xds_watch *xds_state_watch_find(struct xds_state *s, enum xds_type t, const char *name);

/* The cache file: every table of s with its version_info and per-resource versions. */
int xds_cache_write(const struct xds_state *s, const char *path, char *err, size_t errlen);
struct xds_state *xds_cache_read(const char *path, char *err, size_t errlen);

/* Per type, what this stream has been told. */
struct xds_ads_sub {
    bool requested; /* the first request for the type went out on this stream */
    char *nonce;    /* the last response's nonce on this stream */
    char **sent;    /* the names last sent (SotW) or subscribed (delta), sorted */
    size_t n_sent;
    uint64_t wild_deadline_ms; /* CDS/LDS initial fetch timeout; 0: none */
};

struct xds_ads {
    struct xds_ads_config cfg;
    char **sds_names; /* sds_only: the subscription (xds_ads_set_sds_names) */
    size_t n_sds_names;
    Envoy__Config__Core__V3__Node *node;
    struct xds_state *cur;
    struct xds_ads_stats stats;
    char *cache_path;

    /* the stream */
    xds_ads_send_fn send;
    void *send_arg;
    bool open, node_sent, got_response, up;
    struct xds_ads_sub sub[XDS_NTYPES];

    /* the gRPC binding (ads_grpc.c) */
    struct xds_loop *loop;
    struct xds_grpc_client *grpc;
    struct xds_grpc_call *call;
    struct xds_timer *retry_timer, *fetch_timer;
    uint64_t fetch_timer_at;
    unsigned attempt;
    uint64_t rng;
};

/* The server answered the stream (response headers or a first message): connected_state 1 and
 * connected(true), once per stream. */
void xds_ads_stream_up(struct xds_ads *a);
/* The nearest initial-fetch deadline (monotonic ms), 0 for none. */
uint64_t xds_ads_next_deadline(const struct xds_ads *a);
/* The binding re-arms its initial-fetch timer after the core changed deadlines. */
void xds_ads_timer_changed(struct xds_ads *a);

int64_t xds_wall_ms(void);
uint64_t xds_mono_ms(void);

/* A warning through the logger xds_ads_set_logger installed. */
void xds_ads_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
