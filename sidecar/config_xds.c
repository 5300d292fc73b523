/* Compiling xDS resources into a snapshot: the bootstrap's static resources plus the accepted
 * CDS/EDS/LDS/RDS resources, with Envoy's warming (an EDS cluster waits for its assignment, a
 * listener for its route configuration), reuse of unchanged cluster objects across compiles
 * (byte-identical definitions keep their host sets, pools and gauges; their TLS contexts are
 * swapped in place when secrets rotate), SDS warming (a cluster or listener whose secrets have
 * not arrived is left out), and EDS-only updates that swap host sets into the live clusters
 * without a new snapshot. */
#include <arpa/inet.h>

#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "sidecar/config_impl.h"
#include "sidecar/log.h"
#include "sidecar/secrets.h"
#include "xds/ads.h"

typedef Envoy__Config__Endpoint__V3__ClusterLoadAssignment Cla;

static const struct rs_xds_resource *find_res(const struct rs_xds_input *in, enum rs_xds_type t,
                                              const char *name)
{
    if (in && in->sorted) {
        size_t lo = 0, hi = in->n[t];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(name, in->res[t][mid].name ? in->res[t][mid].name : "");
            if (c == 0) return &in->res[t][mid];
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
        return NULL;
    }
    for (size_t i = 0; in && i < in->n[t]; i++)
        if (in->res[t][i].name && strcmp(in->res[t][i].name, name) == 0) return &in->res[t][i];
    return NULL;
}

/* Warming status of an EDS/RDS name: an absent resource is pending unless the ADS client says
 * it arrived (removed) or timed out. */
static bool pending(const struct rs_xds_input *in, enum rs_xds_type t, const char *name)
{
    if (find_res(in, t, name)) return false;
    if (!in->watch) return true;
    int st = in->watch(in->ctx, t, name);
    return st == RS_XDS_PENDING || st < 0;
}

/* Enters a resource root: errors read `Type "name": field: reason`. */
static void enter(struct cctx *cx, const char *type, const char *name)
{
    snprintf(cx->path, sizeof cx->path, "%s \"%s\"", type, name ? name : "");
    cx->root = strlen(cx->path);
}

static void enter_static(struct cctx *cx, const char *fmt, uint32_t i)
{
    snprintf(cx->path, sizeof cx->path, fmt, i);
    cx->root = 0;
}

/* ---- EDS host sets ------------------------------------------------------------------------- */

static bool usable(Envoy__Config__Core__V3__HealthStatus h)
{
    /* UNKNOWN and HEALTHY carry traffic; UNHEALTHY, DRAINING, TIMEOUT and DEGRADED do not (no
     * degraded-host fallback yet) */
    return h == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN ||
           h == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
}

/* The lowest priority with a usable host: Envoy spills over to priority N+1 as priority N loses
 * healthy hosts; here the whole load moves to the first priority that has any (no partial
 * spill-over by overprovisioning factor). */
static uint32_t pick_priority(const Cla *la)
{
    uint32_t best = UINT32_MAX;
    for (size_t i = 0; i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
        if (lle->priority >= best) continue;
        if (lle->load_balancing_weight && lle->load_balancing_weight->value == 0) continue;
        for (size_t j = 0; j < lle->n_lb_endpoints; j++)
            if (usable(lle->lb_endpoints[j]->health_status)) {
                best = lle->priority;
                break;
            }
    }
    return best;
}

static int eds_endpoint(struct cctx *cx, struct rs_cluster *c,
                        const Envoy__Config__Endpoint__V3__LbEndpoint *lbe, uint64_t lw,
                        struct rs_endpoint *e)
{
    if (lbe->host_identifier_case !=
            ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
        !lbe->endpoint || !lbe->endpoint->address ||
        lbe->endpoint->address->address_case !=
            ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return fail(cx, "endpoint.address", "a socket_address is required");
    const Envoy__Config__Core__V3__SocketAddress *sa = lbe->endpoint->address->socket_address;
    memset(e, 0, sizeof *e);
    if (sa->port_specifier_case !=
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE ||
        sa->port_value > 65535 ||
        rs_cfg_ip_port(sa->address, sa->port_value, &e->addr, &e->addrlen) != 0)
        return fail(cx, "endpoint.address.socket_address",
                    "an IP address and a port_value are required");
    if (lbe->load_balancing_weight && lbe->load_balancing_weight->value == 0)
        return fail(cx, "load_balancing_weight", "must be at least 1");
    uint64_t w = (lbe->load_balancing_weight ? lbe->load_balancing_weight->value : 1) * lw;
    e->weight = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
    rs_addr_str((struct sockaddr *)&e->addr, e->name, sizeof e->name);
    int m = rs_cfg_ts_match(c, lbe->metadata);
    e->ts_match = (int8_t)(m > 127 ? 127 : m);
    return 0;
}

int rs_cfg_eds_hosts(struct cctx *cx, struct rs_cluster *c, const Cla *la, struct rs_hostset **out)
{
    *out = NULL;
    uint32_t prio = la ? pick_priority(la) : UINT32_MAX;
    size_t total = 0;
    for (size_t i = 0; la && i < la->n_endpoints; i++) total += la->endpoints[i]->n_lb_endpoints;
    struct rs_endpoint *eps = xcalloc(total, sizeof *eps);
    uint32_t n = 0;
    for (size_t i = 0; la && i < la->n_endpoints; i++) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
        /* endpoint weight x locality weight (a locality without one weighs 1) */
        uint64_t lw = lle->load_balancing_weight ? lle->load_balancing_weight->value : 1;
        for (size_t j = 0; j < lle->n_lb_endpoints; j++) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *lbe = lle->lb_endpoints[j];
            size_t old = path_push(cx, "endpoints[%zu].lb_endpoints[%zu]", i, j);
            /* every endpoint is validated, also those not used now */
            struct rs_endpoint e;
            if (eds_endpoint(cx, c, lbe, lw ? lw : 1, &e)) {
                free(eps);
                return -1;
            }
            path_pop(cx, old);
            if (lle->priority == prio && lw && usable(lbe->health_status)) eps[n++] = e;
        }
    }
    *out = rs_hostset_new(eps, n);
    free(eps);
    return 0;
}

/* ---- clusters ------------------------------------------------------------------------------ */

/* A host set waiting to be swapped into a (possibly shared, live) cluster when the whole
 * compile succeeds: a NACKed update must not have changed anything. */
struct swap {
    struct rs_cluster *c;
    struct rs_hostset *hs;
    const struct rs_xds_resource *cla;
};

/* New TLS contexts for a reused cluster whose secrets or certificate files changed, swapped in
 * when the whole compile succeeds (rs_cfg_cluster_tls_swap). */
struct tls_swap {
    struct rs_cluster *c;
    struct rs_cluster_tls t;
};

struct xcompile {
    struct cctx cx;
    struct swap *swaps;
    size_t nswaps;
    struct tls_swap *tls;
    size_t ntls;
};

static void xcompile_done(struct xcompile *xc, bool apply)
{
    if (apply) {
        for (size_t i = 0; i < xc->nswaps; i++) {
            struct rs_cluster *c = xc->swaps[i].c;
            rs_cluster_set_hosts(c, xc->swaps[i].hs);
            free(c->cla_bytes);
            c->cla_bytes =
                xc->swaps[i].cla ? xmemdup(xc->swaps[i].cla->bytes, xc->swaps[i].cla->len) : NULL;
            c->cla_len = xc->swaps[i].cla ? xc->swaps[i].cla->len : 0;
            c->cla_seen = xc->swaps[i].cla != NULL;
        }
        for (size_t i = 0; i < xc->ntls; i++) {
            rs_info("cluster %s: TLS contexts rotated in place", xc->tls[i].c->name);
            rs_cfg_cluster_tls_swap(xc->tls[i].c, &xc->tls[i].t);
        }
    } else {
        for (size_t i = 0; i < xc->nswaps; i++) rs_hostset_unref(xc->swaps[i].hs);
        for (size_t i = 0; i < xc->ntls; i++) rs_cfg_cluster_tls_drop(&xc->tls[i].t);
    }
    free(xc->swaps);
    free(xc->tls);
    xc->swaps = NULL;
    xc->tls = NULL;
    xc->nswaps = xc->ntls = 0;
}

static void swap_add(struct xcompile *xc, struct rs_cluster *c, struct rs_hostset *hs,
                     const struct rs_xds_resource *cla)
{
    xc->swaps = realloc(xc->swaps, (xc->nswaps + 1) * sizeof *xc->swaps);
    if (!xc->swaps) abort(); /* control path */
    xc->swaps[xc->nswaps++] = (struct swap){.c = c, .hs = hs, .cla = cla};
}

static bool cla_unchanged(const struct rs_cluster *c, const struct rs_xds_resource *cla)
{
    if (!cla) return !c->cla_seen;
    return c->cla_seen && c->cla_len == cla->len && memcmp(c->cla_bytes, cla->bytes, cla->len) == 0;
}

/* An EDS cluster's host set from the input, queued for swapping; 1 when it is warming. */
static int eds_refresh(struct xcompile *xc, struct rs_cluster *c, bool fresh)
{
    struct cctx *cx = &xc->cx;
    const struct rs_xds_resource *cla = find_res(cx->in, RS_XDS_EDS, c->eds_name);
    /* absent and pending: a new cluster warms, a live one keeps its hosts; absent but arrived
     * (removed) or timed out: no hosts */
    if (!cla && pending(cx->in, RS_XDS_EDS, c->eds_name)) return fresh ? 1 : 0;
    if (!fresh && cla_unchanged(c, cla)) return 0;
    char saved[sizeof cx->path];
    size_t oroot = cx->root;
    memcpy(saved, cx->path, sizeof saved);
    enter(cx, "ClusterLoadAssignment", c->eds_name);
    struct rs_hostset *hs;
    int ret = rs_cfg_eds_hosts(cx, c, cla ? (const Cla *)cla->msg : NULL, &hs);
    memcpy(cx->path, saved, sizeof saved);
    cx->root = oroot;
    if (ret) return -1;
    swap_add(xc, c, hs, cla);
    return 0;
}

/* A reused cluster's TLS contexts, rebuilt when the secrets or certificate files they come from
 * changed (queued for swapping in place). A secret that went missing keeps the contexts it has,
 * as Envoy keeps the last secret. */
static int tls_refresh(struct xcompile *xc, struct rs_cluster *c, const Cluster *pc)
{
    struct rs_cluster_tls t = {.r = {.dry = true}};
    int ret = rs_cfg_cluster_tls(&xc->cx, pc, &t);
    bool same = t.r.pending || t.r.fp == c->tls_fp;
    rs_cfg_cluster_tls_drop(&t);
    if (ret || same) return ret;
    ret = rs_cfg_cluster_tls(&xc->cx, pc, &t);
    if (ret || t.r.pending) {
        rs_cfg_cluster_tls_drop(&t);
        return ret;
    }
    xc->tls = realloc(xc->tls, (xc->ntls + 1) * sizeof *xc->tls);
    if (!xc->tls) abort(); /* control path */
    xc->tls[xc->ntls++] = (struct tls_swap){.c = c, .t = t};
    return 0;
}

static struct rs_cluster *prev_cluster(const struct rs_snapshot *prev, const char *name)
{
    int i = prev ? rs_config_cluster_index(prev, name) : -1;
    return i >= 0 ? prev->clusters[i] : NULL;
}

/* Adds one cluster: the previous snapshot's object when its definition is byte-identical,
 * else a new one. An EDS cluster whose assignment is pending is left out (warming). */
static int add_cluster(struct xcompile *xc, const Cluster *pc, const uint8_t *def, size_t len)
{
    struct cctx *cx = &xc->cx;
    struct rs_snapshot *s = cx->snap;
    const char *name = pc->name ? pc->name : "";
    if (rs_config_cluster_index(s, name) >= 0)
        return fail(cx, "name", "duplicate cluster name \"%s\"", name);
    struct rs_cluster *c = prev_cluster(cx->prev, name);
    if (c && c->def && c->def_len == len && memcmp(c->def, def, len) == 0) {
        if (c->type == RS_CLUSTER_EDS && eds_refresh(xc, c, false) < 0) return -1;
        if (tls_refresh(xc, c, pc) < 0) return -1;
        rs_cluster_ref(c);
        rs_snapshot_add_cluster(s, c);
        return 0;
    }
    c = rs_cfg_cluster_new();
    cx->warming = false;
    if (rs_cfg_cluster(cx, c, pc)) {
        rs_cluster_unref(c);
        return -1;
    }
    if (cx->warming) { /* compiled (errors NACK now), not served until its secrets arrive */
        rs_debug("cluster %s: warming (SDS secrets pending)", name);
        cx->warming = false;
        rs_cluster_unref(c);
        return 0;
    }
    c->def = xmemdup(def, len);
    c->def_len = len;
    if (c->type == RS_CLUSTER_EDS) {
        int r = eds_refresh(xc, c, true);
        if (r != 0) {
            rs_cluster_unref(c);
            if (r > 0) rs_debug("cluster %s: warming (no assignment yet)", name);
            return r < 0 ? -1 : 0;
        }
    }
    rs_snapshot_add_cluster(s, c);
    return 0;
}

static int compile_clusters(struct xcompile *xc, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    struct cctx *cx = &xc->cx;
    const struct rs_xds_input *in = cx->in;
    size_t nstatic = bs->static_resources ? bs->static_resources->n_clusters : 0;
    cx->snap->clusters = xcalloc(nstatic + in->n[RS_XDS_CDS], sizeof *cx->snap->clusters);
    for (size_t i = 0; i < nstatic; i++) {
        const Cluster *pc = bs->static_resources->clusters[i];
        enter_static(cx, "static_resources.clusters[%u]", (uint32_t)i);
        size_t len = protobuf_c_message_get_packed_size(&pc->base);
        uint8_t *def = xcalloc(1, len + 1);
        protobuf_c_message_pack(&pc->base, def);
        int r = add_cluster(xc, pc, def, len);
        free(def);
        if (r) return -1;
    }
    for (size_t i = 0; i < in->n[RS_XDS_CDS]; i++) {
        const struct rs_xds_resource *r = &in->res[RS_XDS_CDS][i];
        enter(cx, "Cluster", r->name);
        if (add_cluster(xc, (const Cluster *)r->msg, r->bytes, r->len)) return -1;
    }
    cx->path[0] = '\0';
    cx->root = 0;
    return 0;
}

/* ---- listeners ----------------------------------------------------------------------------- */

static int add_listener(struct cctx *cx, const Listener *pl)
{
    struct rs_snapshot *s = cx->snap;
    struct rs_listener *l = &s->listeners[s->nlisteners];
    l->index = s->nlisteners++;
    cx->warming = false;
    if (rs_cfg_listener(cx, l, pl)) return -1;
    for (uint32_t j = 0; j + 1 < s->nlisteners; j++)
        if (strcmp(s->listeners[j].name, l->name) == 0)
            return fail(cx, "name", "duplicate listener name \"%s\"", l->name);
    if (cx->warming) {
        /* its routes or secrets have not arrived: compiled (so errors NACK now), not served */
        rs_debug("listener %s: warming (route configuration or secrets pending)", l->name);
        s->nlisteners--;
        rs_cfg_listener_free(l);
        memset(l, 0, sizeof *l);
    }
    return 0;
}

/* Whether the snapshot's clusters are the previous snapshot's names at the same indices. */
static bool same_cluster_names(const struct rs_snapshot *s, const struct rs_snapshot *prev)
{
    if (!prev || prev->nclusters != s->nclusters) return false;
    for (uint32_t i = 0; i < s->nclusters; i++) {
        const struct rs_cluster *a = s->clusters[i], *b = prev->clusters[i];
        if (a != b && strcmp(a->name ? a->name : "", b->name ? b->name : "") != 0) return false;
    }
    return true;
}

static int compile_listeners(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    const struct rs_xds_input *in = cx->in;
    cx->same_clusters = same_cluster_names(cx->snap, cx->prev);
    size_t nstatic = bs->static_resources ? bs->static_resources->n_listeners : 0;
    cx->snap->listeners = xcalloc(nstatic + in->n[RS_XDS_LDS], sizeof *cx->snap->listeners);
    for (size_t i = 0; i < nstatic; i++) {
        enter_static(cx, "static_resources.listeners[%u]", (uint32_t)i);
        if (add_listener(cx, bs->static_resources->listeners[i])) return -1;
    }
    for (size_t i = 0; i < in->n[RS_XDS_LDS]; i++) {
        const struct rs_xds_resource *r = &in->res[RS_XDS_LDS][i];
        enter(cx, "Listener", r->name);
        if (add_listener(cx, (const Listener *)r->msg)) return -1;
    }
    cx->path[0] = '\0';
    cx->root = 0;
    return 0;
}

/* ---- entry points -------------------------------------------------------------------------- */

static rs_stat_id filters_skipped_stat(void)
{
    static rs_stat_id id;
    static int once;
    if (!__atomic_exchange_n(&once, 1, __ATOMIC_ACQ_REL))
        __atomic_store_n(&id, rs_stats_register("server.filters_skipped", RS_STAT_GAUGE),
                         __ATOMIC_RELEASE);
    return __atomic_load_n(&id, __ATOMIC_ACQUIRE);
}

struct rs_snapshot *rs_config_compile_xds(const Envoy__Config__Bootstrap__V3__Bootstrap *bs,
                                          const struct rs_xds_input *in,
                                          const struct rs_snapshot *prev, bool serve, char *err,
                                          size_t errlen)
{
    struct rs_snapshot *s = xcalloc(1, sizeof *s);
    s->refs = 1;
    rs_cfg_snapshot_born();
    s->bootstrap = (Envoy__Config__Bootstrap__V3__Bootstrap *)bs;
    s->bootstrap_borrowed = true;
    struct rs_xds_input none = {0};
    struct xcompile xc = {.cx = {.snap = s,
                                 .serve = serve,
                                 .xds = true,
                                 .in = in ? in : &none,
                                 .prev = prev,
                                 .err = err,
                                 .errlen = errlen}};
    err[0] = '\0';
    int failed = rs_cfg_bootstrap_head(&xc.cx, bs) || compile_clusters(&xc, bs) ||
                 compile_listeners(&xc.cx, bs);
    /* server contexts this compile did not use leave the cache (a refused compile keeps the
     * cache to what it used: the next one rebuilds the rest) */
    rs_secrets_ctx_sweep();
    if (failed) {
        xcompile_done(&xc, false);
        rs_cfg_snapshot_free(s);
        return NULL;
    }
    xcompile_done(&xc, true);
    if (in && in->keep && in->retain) {
        s->xds = in->retain(in->keep);
        s->xds_release = in->release;
    }
    rs_stat_set(filters_skipped_stat(), s->skipped.n);
    return s;
}

int rs_config_apply_eds(struct rs_snapshot *s, const struct rs_xds_input *in, bool serve, char *err,
                        size_t errlen)
{
    struct xcompile xc = {
        .cx = {.snap = s, .serve = serve, .xds = true, .in = in, .err = err, .errlen = errlen}};
    err[0] = '\0';
    for (uint32_t i = 0; i < s->nclusters; i++) {
        struct rs_cluster *c = s->clusters[i];
        if (c->type != RS_CLUSTER_EDS) continue;
        if (eds_refresh(&xc, c, false) < 0) {
            xcompile_done(&xc, false);
            return -1;
        }
    }
    int n = (int)xc.nswaps;
    xcompile_done(&xc, true);
    return n;
}

/* ---- the ADS client's state ------------------------------------------------------------------ */

static int state_watch(void *ctx, enum rs_xds_type type, const char *name)
{
    /* enum xds_type and enum xds_watch_status share rs_xds_type's and rs_xds_watch's order */
    return xds_state_watch_status(ctx, (enum xds_type)type, name);
}

static void *state_retain(void *keep)
{
    return xds_state_ref(keep);
}

static void state_release(void *keep)
{
    xds_state_unref(keep);
}

struct rs_xds_input *rs_xds_input_from_state(struct xds_state *st)
{
    _Static_assert((int)RS_XDS_CDS == (int)XDS_CDS && (int)RS_XDS_SDS == (int)XDS_SDS &&
                       (int)RS_XDS_NTYPES == (int)XDS_NTYPES,
                   "resource type orders differ");
    _Static_assert((int)RS_XDS_PENDING == (int)XDS_WATCH_PENDING &&
                       (int)RS_XDS_TIMED_OUT == (int)XDS_WATCH_TIMED_OUT,
                   "watch status orders differ");
    struct rs_xds_input *in = xcalloc(1, sizeof *in);
    for (int t = 0; t < RS_XDS_NTYPES; t++) {
        const struct xds_type_table *tt = st->types[t];
        struct rs_xds_resource *r = xcalloc(tt->n, sizeof *r);
        for (size_t i = 0; i < tt->n; i++)
            r[i] = (struct rs_xds_resource){.name = tt->res[i]->name,
                                            .msg = tt->res[i]->msg,
                                            .bytes = tt->res[i]->bytes,
                                            .len = tt->res[i]->len};
        in->res[t] = r;
        in->n[t] = tt->n;
    }
    in->sorted = true; /* the ADS client keeps each type's table sorted by name */
    in->watch = state_watch;
    in->ctx = st;
    in->keep = st;
    in->retain = state_retain;
    in->release = state_release;
    return in;
}

void rs_xds_input_free(struct rs_xds_input *in)
{
    if (!in) return;
    for (int t = 0; t < RS_XDS_NTYPES; t++) free((void *)in->res[t]);
    free(in);
}
