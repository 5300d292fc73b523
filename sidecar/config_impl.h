/* Internals shared by the configuration compiler's files: config.c (bootstrap, clusters,
 * listeners, filters), config_xds.c (xDS resources, warming, reuse, EDS) and chain_match.c
 * (filter chain selection). Not for the data plane. */
#ifndef RS_CONFIG_IMPL_H
#define RS_CONFIG_IMPL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/config.h"

typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Listener__V3__Listener Listener;

/* Compile context: the error buffer and the field path so far. */
struct cctx {
    struct rs_snapshot *snap;
    bool serve;
    /* Compiling xDS resources: route configurations default to validate_clusters false, and a
     * tcp_proxy may name a cluster that is not (yet) in the snapshot. */
    bool xds;
    const struct rs_xds_input *in;
    const struct rs_snapshot *prev;
    char *err;
    size_t errlen;
    char path[512];
    /* Length of a resource root such as `Listener "x"`: the first field after it follows ": "
     * instead of ".", so errors read `Listener "x": filter_chains[0]...: reason`. */
    size_t root;
    bool warming; /* set by a listener whose RDS is pending: the caller leaves it out */
    /* The snapshot's clusters have the previous one's names at the same indices, so a route
     * table compiled for `prev` from the same RouteConfiguration resource resolves alike and
     * is shared instead of compiled again (set by the xDS compile before the listeners). */
    bool same_clusters;
};

static inline const char *cfg_sep(const struct cctx *cx, size_t at)
{
    if (at == 0) return "";
    return at == cx->root ? ": " : ".";
}

__attribute__((format(printf, 3, 4))) static inline int fail(struct cctx *cx, const char *field,
                                                             const char *fmt, ...)
{
    size_t plen = strlen(cx->path);
    int n = snprintf(cx->err, cx->errlen, "%s%s%s: ", cx->path, field[0] ? cfg_sep(cx, plen) : "",
                     field);
    if (n < 0 || (size_t)n >= cx->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->err + n, cx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Pushes ".name" (or "name" at the root) onto the path; returns the old length to pop back to. */
__attribute__((format(printf, 2, 3))) static inline size_t path_push(struct cctx *cx,
                                                                     const char *fmt, ...)
{
    size_t old = strlen(cx->path);
    size_t n = old;
    const char *sep = cfg_sep(cx, old);
    for (; *sep && n < sizeof cx->path - 1; sep++) cx->path[n++] = *sep;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->path + n, sizeof cx->path - n, fmt, ap);
    va_end(ap);
    return old;
}

static inline void path_pop(struct cctx *cx, size_t old)
{
    cx->path[old] = '\0';
}

static inline char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort(); /* control path */
    return d;
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) abort(); /* control path */
    return p;
}

static inline void *xmemdup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (!d) abort(); /* control path */
    if (n) memcpy(d, p, n);
    return d;
}

/* config.c */
rs_stat_id rs_cfg_stat(const char *prefix, const char *name, const char *leaf,
                       enum rs_stat_kind kind);
int rs_cfg_socket_address(struct cctx *cx, const Envoy__Config__Core__V3__Address *a,
                          const char *field, bool need_ip,
                          const Envoy__Config__Core__V3__SocketAddress **out);
int rs_cfg_ip_port(const char *ip, uint32_t port, struct sockaddr_storage *ss, socklen_t *len);
int rs_cfg_listener(struct cctx *cx, struct rs_listener *l, const Listener *pl);
int rs_cfg_bootstrap_head(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs);
void rs_cfg_snapshot_free(struct rs_snapshot *s);
/* How many compiled snapshots are alive (any thread): the xDS thread gives memory back to the
 * system once the snapshot an update replaced is gone. */
int64_t rs_cfg_snapshots_live(void);
/* Counts a new snapshot (both compilers call it; snapshot_free counts it gone). */
void rs_cfg_snapshot_born(void);
void rs_cfg_listener_free(struct rs_listener *l);
/* Whether a TransportSocket is TLS (-1 with an error when it is neither TLS nor raw_buffer). */
int rs_cfg_transport_is_tls(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool *tls);
/* Resolving a TLS context's secrets: `fp` accumulates a fingerprint of the secrets and certificate
 * files it is built from; `pending` is set when a secret has not arrived; `dry` resolves without
 * building a context (to compare fingerprints). */
struct rs_tls_resolve {
    uint64_t fp;
    bool pending;
    bool dry;
};
/* The same, and for an UpstreamTlsContext its client context in *ctx (NULL otherwise, or when a
 * secret has not arrived: r->pending; or r->dry). ctx and r may be NULL (validation only). */
struct rs_tls_ctx;
int rs_cfg_transport_client(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool *tls, struct rs_tls_ctx **ctx,
                            struct rs_tls_resolve *r);
/* A filter chain's transport socket: *ctx the server context of a DownstreamTlsContext (NULL:
 * raw_buffer, or its secrets have not arrived: cx->warming is set, the listener warms). */
int rs_cfg_transport_server(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool http, struct rs_tls_ctx **ctx);

/* config_cluster.c */
struct rs_cluster *rs_cfg_cluster_new(void);
int rs_cfg_cluster(struct cctx *cx, struct rs_cluster *c, const Cluster *pc);
/* The transport_socket_matches entry a host's metadata selects, or -1 (the cluster's
 * transport_socket, or an entry with an empty match, applies). */
int rs_cfg_ts_match(const struct rs_cluster *c, const Envoy__Config__Core__V3__Metadata *md);
/* A cluster's client contexts (transport_socket, and transport_socket_matches in order) with
 * their secrets substituted; r.dry (set by the caller) only resolves and fingerprints. Release
 * with rs_cfg_cluster_tls_drop, or hand to rs_cfg_cluster_tls_swap, which replaces a live
 * cluster's contexts in place (control thread; the old ones are retired, see secrets.h). */
struct rs_cluster_tls {
    struct rs_tls_ctx *ctx, **match;
    uint32_t n;
    struct rs_tls_resolve r;
};
int rs_cfg_cluster_tls(struct cctx *cx, const Cluster *pc, struct rs_cluster_tls *t);
void rs_cfg_cluster_tls_drop(struct rs_cluster_tls *t);
void rs_cfg_cluster_tls_swap(struct rs_cluster *c, struct rs_cluster_tls *t);

/* config_xds.c: an EDS cluster's host set from its assignment (la may be NULL: empty). */
int rs_cfg_eds_hosts(struct cctx *cx, struct rs_cluster *c,
                     const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la,
                     struct rs_hostset **out);

/* chain_match.c */
int rs_cfg_chain_match(struct cctx *cx, struct rs_chain_match *m,
                       const Envoy__Config__Listener__V3__FilterChainMatch *pm);
void rs_cfg_chain_match_free(struct rs_chain_match *m);
int rs_cfg_fcm(struct cctx *cx, struct rs_listener *l, const Listener *pl);
void rs_fcm_free(struct rs_fcm *m);

#endif
