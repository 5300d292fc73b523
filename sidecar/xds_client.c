/* The xDS control thread: ADS client callbacks compile and publish snapshots; so do secrets from
 * separate SDS servers and changed certificate files (sds_client.c), also for a static bootstrap
 * whose TLS needs them (no ADS then). A 1 s timer mirrors the client's counters into the stats
 * registry and releases the TLS contexts retired by in-place rotations once every worker has
 * moved on. Everything here runs on the control thread except rs_xds_start/rs_xds_stop (main
 * thread) and rs_xds_serving_cache (admin). */
#include "sidecar/xds_client.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/config.h"
#include "sidecar/config_impl.h"
#include "sidecar/log.h"
#include "sidecar/sds_client.h"
#include "sidecar/secrets.h"
#include "sidecar/server.h"
#include "sidecar/stats.h"
#include "xds/ads.h"
#include "xds/grpc.h"

/* Envoy's names for the client's counters (see xds/README.md). */
struct type_stat_ids {
    rs_stat_id update_attempt, update_success, update_rejected, update_failure, init_fetch_timeout,
        update_time, version, update_duration;
};

struct rs_xds {
    struct rs_server *srv;
    struct rs_dns *dns;
    const xds_bootstrap *bs;
    xds_loop *loop;
    xds_ads *ads; /* NULL: a static bootstrap (secrets and certificate files only) */
    /* Bootstraps SIGHUP reloads brought (ours; main's is not among them), the current one last:
     * snapshots borrow them, so all are kept until rs_xds_free (after the workers stopped). */
    xds_bootstrap **reloaded;
    size_t nreloaded;
    struct rs_sds *sds;
    pthread_t thread;
    bool started;
    char *service_node, *service_cluster;
    char *cache_path;
    unsigned cache_wait_ms;
    bool answered;     /* the control plane answered at least once */
    bool live;         /* the server was set LIVE */
    int serving_cache; /* atomic */
    xds_timer *tick, *cache_timer, *mirror_soon;
    /* Giving memory back: right after an update (what compiling left), then each time a
     * replaced snapshot is freed (by the last worker to move over), watched every 5 ms for 1 s:
     * the live snapshot count last seen, and the checks left. */
    bool trim_now;
    int64_t trim_live_seen;
    unsigned trim_waits;
    rs_stat_id connected_state, rq_total, rq_nack, rx_bytes, rx_malformed, reconnects,
        cache_write_fail, from_cache, apply_failed;
    struct type_stat_ids t[XDS_NTYPES];
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void register_stats(struct rs_xds *x)
{
    x->connected_state = rs_stats_register("control_plane.connected_state", RS_STAT_GAUGE);
    x->rq_total = rs_stats_register("control_plane.rq_total", RS_STAT_COUNTER);
    x->rq_nack = rs_stats_register("control_plane.rq_nack", RS_STAT_COUNTER);
    x->rx_bytes = rs_stats_register("control_plane.rx_bytes", RS_STAT_COUNTER);
    x->rx_malformed = rs_stats_register("control_plane.rx_malformed", RS_STAT_COUNTER);
    x->reconnects = rs_stats_register("control_plane.stream_reconnects", RS_STAT_COUNTER);
    x->cache_write_fail = rs_stats_register("control_plane.cache_write_fail", RS_STAT_COUNTER);
    x->from_cache = rs_stats_register("control_plane.config_from_cache", RS_STAT_GAUGE);
    x->apply_failed = rs_stats_register("control_plane.apply_failed", RS_STAT_COUNTER);
    static const char *const prefix[XDS_NTYPES] = {[XDS_CDS] = "cluster_manager.cds",
                                                   [XDS_EDS] = "cluster_manager.eds",
                                                   [XDS_LDS] = "listener_manager.lds",
                                                   [XDS_RDS] = "rds",
                                                   [XDS_SDS] = "sds"};
    for (int i = 0; i < XDS_NTYPES; i++) {
        char n[96];
#define REG(field, name, kind)                                                                     \
    snprintf(n, sizeof n, "%s.%s", prefix[i], name);                                               \
    x->t[i].field = rs_stats_register(n, kind)
        REG(update_attempt, "update_attempt", RS_STAT_COUNTER);
        REG(update_success, "update_success", RS_STAT_COUNTER);
        REG(update_rejected, "update_rejected", RS_STAT_COUNTER);
        REG(update_failure, "update_failure", RS_STAT_COUNTER);
        REG(init_fetch_timeout, "init_fetch_timeout", RS_STAT_COUNTER);
        REG(update_time, "update_time", RS_STAT_GAUGE);
        REG(version, "version", RS_STAT_GAUGE);
        REG(update_duration, "update_duration", RS_STAT_HISTOGRAM);
#undef REG
    }
}

static void mirror_stats(struct rs_xds *x)
{
    if (!x->ads) return;
    const struct xds_ads_stats *s = xds_ads_stats(x->ads);
#define M(id, v) rs_stat_set(id, atomic_load_explicit(&(v), memory_order_relaxed))
    M(x->connected_state, s->connected_state);
    M(x->rq_total, s->rq_total);
    M(x->rq_nack, s->rq_nack);
    M(x->rx_bytes, s->rx_bytes);
    M(x->rx_malformed, s->rx_malformed);
    M(x->reconnects, s->stream_reconnects);
    M(x->cache_write_fail, s->cache_write_fail);
    for (int i = 0; i < XDS_NTYPES; i++) {
        M(x->t[i].update_attempt, s->type[i].update_attempt);
        M(x->t[i].update_success, s->type[i].update_success);
        M(x->t[i].update_rejected, s->type[i].update_rejected);
        M(x->t[i].update_failure, s->type[i].update_failure);
        M(x->t[i].init_fetch_timeout, s->type[i].init_fetch_timeout);
        M(x->t[i].update_time, s->type[i].update_time);
        M(x->t[i].version, s->type[i].version);
    }
#undef M
    rs_stat_set(x->from_cache, (uint64_t)__atomic_load_n(&x->serving_cache, __ATOMIC_RELAXED));
}

/* The lowest publication sequence any worker runs on: a worker adopts a publication between
 * batches, so one on sequence >= q has finished every batch that began before q was published. */
static uint64_t workers_seq(const struct rs_server *srv)
{
    if (!srv->workers) return 0;
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < srv->nworkers; i++) {
        uint64_t v = __atomic_load_n(&srv->workers[i].pub_seq, __ATOMIC_ACQUIRE);
        if (v < m) m = v;
    }
    return m == UINT64_MAX ? 0 : m;
}

static void on_tick(xds_loop *loop, void *arg)
{
    struct rs_xds *x = arg;
    mirror_stats(x);
    rs_secrets_reap(workers_seq(x->srv));
    x->tick = xds_loop_timer(loop, 1000, on_tick, x);
}

/* An EDS update can skip compiling a snapshot when every EDS cluster it names is already in the
 * published one (none is leaving warming): the new host sets are swapped into those clusters. */
static bool eds_in_place(const struct rs_snapshot *cur, const struct xds_state *st)
{
    const struct xds_type_table *eds = st->types[XDS_EDS];
    for (size_t i = 0; i < eds->n; i++) {
        const char *name = eds->res[i]->name;
        /* usually the assignment is named after its cluster (no service_name): one lookup */
        int k = rs_config_cluster_index(cur, name);
        const struct rs_cluster *kc = k >= 0 ? cur->clusters[k] : NULL;
        bool found =
            kc && kc->type == RS_CLUSTER_EDS && kc->eds_name && strcmp(kc->eds_name, name) == 0;
        for (uint32_t c = 0; c < cur->nclusters && !found; c++)
            found = cur->clusters[c]->type == RS_CLUSTER_EDS && cur->clusters[c]->eds_name &&
                    strcmp(cur->clusters[c]->eds_name, name) == 0;
        if (!found) return false;
    }
    return true;
}

static void set_node(struct rs_xds *x, struct rs_snapshot *s)
{
    if (x->service_node) {
        free(s->node_id);
        s->node_id = strdup(x->service_node);
    }
    if (x->service_cluster) {
        free(s->node_cluster);
        s->node_cluster = strdup(x->service_cluster);
    }
}

static void go_live(struct rs_xds *x, const char *why)
{
    if (x->live) return;
    x->live = true;
    __atomic_store_n(&x->srv->state, RS_STATE_LIVE, __ATOMIC_RELEASE);
    rs_info("xds: initial configuration in place (%s): server LIVE", why);
}

static void after_apply(xds_loop *loop, void *arg)
{
    struct rs_xds *x = arg;
    x->mirror_soon = NULL;
    if (x->trim_now) mirror_stats(x);
    /* a replaced snapshot (its routes, clusters and the xDS state it holds) is freed by the
     * last worker to move over: trim again when the live count drops */
    int64_t live = rs_cfg_snapshots_live();
    if (x->trim_now || live < x->trim_live_seen) malloc_trim(0);
    x->trim_now = false;
    x->trim_live_seen = live;
    if (x->trim_waits > 0) {
        x->trim_waits--;
        x->mirror_soon = xds_loop_timer(loop, 5, after_apply, x);
    }
}

/* Envoy's initialization: clusters and listeners fetched (or their initial fetch timed out) and
 * nothing still warming: assignments, routes, and secrets over ADS or from separate servers. */
static bool initialized(const struct rs_xds *x, const struct xds_state *st)
{
    if (!st->type_initialized[XDS_CDS] || !st->type_initialized[XDS_LDS]) return false;
    for (int t = 0; t < XDS_NTYPES; t++)
        for (size_t i = 0; i < st->n_watch[t]; i++)
            if (t != XDS_CDS && t != XDS_LDS && st->watch[t][i].status == XDS_WATCH_PENDING)
                return false;
    return !rs_sds_pending(x->sds);
}

/* Compiles the bootstrap with the ADS state (NULL: none) and the separate servers' secrets, and
 * publishes it. changed: the type an ADS update changed, or -1. 0, or -1 with err. */
static int compile_publish(struct rs_xds *x, struct xds_state *cand, int changed, char *err,
                           size_t errlen)
{
    struct rs_xds_input *in = cand ? rs_xds_input_from_state(cand) : calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rs_sds_fill(x->sds, in);
    struct rs_snapshot *cur = rs_server_snapshot(x->srv);
    int rc = 0;
    if (cand && changed == XDS_EDS && eds_in_place(cur, cand)) {
        if (rs_config_apply_eds(cur, in, true, err, errlen) < 0) rc = -1;
    } else {
        struct rs_snapshot *next = rs_config_compile_xds(x->bs, in, cur, true, err, errlen);
        if (!next) {
            rc = -1;
        } else {
            set_node(x, next);
            rs_sds_keep(x->sds, next);
            /* DNS of dropped clusters stops before the old snapshot can be freed */
            if (rs_config_update_dns(cur, next, x->dns) != 0) {
                snprintf(err, errlen, "cannot start DNS resolution for the new clusters");
                rs_config_update_dns(next, cur, x->dns);
                rs_snapshot_unref(next);
                rc = -1;
            } else if (rs_server_publish(x->srv, next, err, errlen) != 0) {
                rs_config_update_dns(next, cur, x->dns);
                rs_snapshot_unref(next);
                rc = -1;
            }
        }
    }
    /* contexts a reused cluster swapped out: released once every worker is on a publication
     * after the swap (the one just made; if publishing failed, the next) */
    rs_secrets_seal(__atomic_load_n(&x->srv->pub_seq, __ATOMIC_ACQUIRE) + (rc ? 1 : 0));
    rs_snapshot_unref(cur);
    rs_xds_input_free(in);
    rs_sds_watch_files(x->sds);
    return rc;
}

static int apply(void *arg, struct xds_state *cand, int changed, char *err, size_t errlen)
{
    struct rs_xds *x = arg;
    uint64_t t0 = now_us();
    int rc = compile_publish(x, cand, changed, err, errlen);
    if (changed == XDS_SDS) rs_sds_count(xds_ads_current(x->ads), cand, rc == 0);
    if (rc == 0) rs_sds_sync(x->sds, cand); /* subscriptions follow the accepted resources */
    if (changed >= 0 && changed < XDS_NTYPES)
        rs_hist_record(rs_stats_shard(-1), x->t[changed].update_duration, now_us() - t0);
    if (rc) {
        rs_stat_inc(rs_stats_shard(-1), x->apply_failed);
        rs_warn("xds: %s update rejected: %s",
                changed >= 0 ? xds_type_short((enum xds_type)changed) : "cached", err);
        return -1;
    }
    rs_debug("xds: %s update applied in %llu us",
             changed >= 0 ? xds_type_short((enum xds_type)changed) : "cached",
             (unsigned long long)(now_us() - t0));
    if (changed < 0) {
        __atomic_store_n(&x->serving_cache, 1, __ATOMIC_RELAXED);
        go_live(x, "from the cache file");
    } else {
        if (changed != XDS_SDS) __atomic_store_n(&x->serving_cache, 0, __ATOMIC_RELAXED);
        if (initialized(x, cand)) go_live(x, "listeners, their routes and secrets received");
    }
    /* the client counts the update once apply returns: mirror on the next loop turn; and give
     * back what compiling left, then what the replaced configuration held once it is freed */
    x->trim_now = true;
    x->trim_waits = 200;
    if (!x->mirror_soon) x->mirror_soon = xds_loop_timer(x->loop, 0, after_apply, x);
    return 0;
}

static void on_cache_timer(xds_loop *loop, void *arg)
{
    (void)loop;
    struct rs_xds *x = arg;
    x->cache_timer = NULL;
    if (x->answered || x->live) return;
    char err[512];
    if (xds_ads_load_cache(x->ads, x->cache_path, err, sizeof err) == 0)
        rs_warn("xds: control plane not answering: serving the cached configuration from %s",
                x->cache_path);
    else
        rs_warn("xds: control plane not answering and no usable cache: %s", err);
}

static void connected(void *arg, bool up)
{
    struct rs_xds *x = arg;
    if (up) x->answered = true;
    rs_info("xds: control plane stream %s", up ? "up" : "down");
    mirror_stats(x);
}

static void *thread_main(void *arg)
{
    struct rs_xds *x = arg;
    pthread_setname_np(pthread_self(), "rs-xds");
    xds_loop_run(x->loop);
    xds_loop_timer_cancel(x->loop, x->tick);
    xds_loop_timer_cancel(x->loop, x->cache_timer);
    xds_loop_timer_cancel(x->loop, x->mirror_soon);
    if (x->ads) xds_ads_stop(x->ads);
    rs_sds_free(x->sds); /* its streams and watches live on this loop */
    x->sds = NULL;
    return NULL;
}

static void xds_free(struct rs_xds *x)
{
    for (size_t i = 0; i < x->nreloaded; i++) xds_bootstrap_free(x->reloaded[i]);
    free(x->reloaded);
    rs_sds_free(x->sds);
    if (x->ads) xds_ads_free(x->ads);
    if (x->loop) xds_loop_free(x->loop);
    free(x->service_node);
    free(x->service_cluster);
    free(x->cache_path);
    free(x);
}

static void ads_log(const char *msg)
{
    rs_warn("%s", msg);
}

/* A separate SDS server sent secrets: compile with them (the ADS state as accepted). */
static int on_secrets(void *arg, char *err, size_t errlen)
{
    struct rs_xds *x = arg;
    int rc = compile_publish(x, x->ads ? xds_ads_current(x->ads) : NULL, -1, err, errlen);
    if (rc == 0) rs_debug("sds: secrets applied");
    /* the last secrets the initial configuration waited for (the source being applied counts
     * its candidate: rs_sds_pending sees it) */
    if (rc == 0 && x->ads && initialized(x, xds_ads_current(x->ads)))
        go_live(x, "listeners, their routes and secrets received");
    return rc;
}

/* A certificate file changed: the contexts reading it are rebuilt (a reused cluster's in place). A
 * refused build (say a certificate written before its key) keeps what runs; the next change
 * retries. */
static void on_files(void *arg)
{
    struct rs_xds *x = arg;
    char err[1024];
    if (compile_publish(x, x->ads ? xds_ads_current(x->ads) : NULL, -1, err, sizeof err) != 0)
        rs_warn("sds: certificate files changed but the configuration was not rebuilt: %s", err);
}

struct reload {
    struct rs_xds *x;
    xds_bootstrap *bs;
};

static void on_reload(void *arg)
{
    struct reload *r = arg;
    struct rs_xds *x = r->x;
    const xds_bootstrap *old = x->bs;
    char err[1024];
    x->bs = r->bs;
    rs_sds_set_bootstrap(x->sds, r->bs);
    rs_secrets_files_changed(); /* a reload reads every certificate file again */
    int rc = compile_publish(x, NULL, -1, err, sizeof err);
    if (rc != 0) {
        x->bs = old;
        rs_sds_set_bootstrap(x->sds, old);
        xds_bootstrap_free(r->bs);
        rs_error("reload refused, keeping the running configuration: %s", err);
    } else {
        x->reloaded = realloc(x->reloaded, (x->nreloaded + 1) * sizeof *x->reloaded);
        if (!x->reloaded) abort(); /* control path */
        x->reloaded[x->nreloaded++] = r->bs;
        rs_sds_sync(x->sds, NULL);
        struct rs_snapshot *s = rs_server_snapshot(x->srv);
        rs_info("configuration reloaded: %u listeners, %u clusters", s->nlisteners, s->nclusters);
        rs_snapshot_unref(s);
    }
    rs_stat_inc(rs_stats_shard(-1),
                rs_stats_register(rc ? "server.reload_rejected" : "server.reload_success",
                                  RS_STAT_COUNTER));
    free(r);
}

int rs_xds_reload(struct rs_xds *x, xds_bootstrap *bs)
{
    struct reload *r = calloc(1, sizeof *r);
    if (r) *r = (struct reload){.x = x, .bs = bs};
    int rc = r ? xds_loop_post(x->loop, on_reload, r) : -ENOMEM;
    if (rc != 0) {
        free(r);
        xds_bootstrap_free(bs);
    }
    return rc;
}

/* The ADS client, for a bootstrap with dynamic_resources. */
static int ads_start(struct rs_xds *x, const xds_bootstrap *bs, const struct rs_xds_opts *o,
                     Envoy__Config__Core__V3__Node **node, char *err, size_t errlen)
{
    struct xds_ads_config cfg = {0};
    char e[512];
    if (xds_ads_config_from_bootstrap(&cfg, bs, e, sizeof e) != 0) {
        snprintf(err, errlen, "dynamic_resources: %s", e);
        return -1;
    }
    if (o->token_file) snprintf(cfg.token_file, sizeof cfg.token_file, "%s", o->token_file);
    cfg.node = *node;
    cfg.apply = apply;
    cfg.connected = connected;
    cfg.arg = x;
    x->ads = xds_ads_new(&cfg);
    rs_info("xds: node id %s, control plane %s (%s, %s)", cfg.node->id, cfg.target,
            cfg.cluster_name, cfg.delta ? "delta" : "state of the world");
    if (!x->ads) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (x->cache_path) xds_ads_set_cache(x->ads, x->cache_path);
    int ret = xds_ads_start(x->ads, x->loop);
    if (ret) {
        snprintf(err, errlen, "cannot start the ADS client: %s", strerror(-ret));
        return -1;
    }
    return 0;
}

struct rs_xds *rs_xds_start(struct rs_server *srv, struct rs_dns *dns, const xds_bootstrap *bs,
                            const struct rs_xds_opts *o, char *err, size_t errlen)
{
    xds_ads_set_logger(ads_log);
    struct rs_xds *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    x->srv = srv;
    x->dns = dns;
    x->bs = bs;
    x->service_node = o->service_node ? strdup(o->service_node) : NULL;
    x->service_cluster = o->service_cluster ? strdup(o->service_cluster) : NULL;
    x->cache_path = o->cache_path ? strdup(o->cache_path) : NULL;
    x->cache_wait_ms = o->cache_wait_ms ? o->cache_wait_ms : 3000;
    bool ads = bs->dynamic_resources != NULL;
    char e[512];
    Envoy__Config__Core__V3__Node *node = xds_ads_node_build(bs->node, NULL, e, sizeof e);
    if (!node && ads) {
        snprintf(err, errlen, "node: %s", e);
        xds_free(x);
        return NULL;
    }
    if (node && o->service_node) {
        free(node->id);
        node->id = strdup(o->service_node);
    }
    if (node && o->service_cluster) {
        free(node->cluster);
        node->cluster = strdup(o->service_cluster);
    }
    x->loop = xds_loop_new();
    if (!x->loop) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    register_stats(x);
    struct rs_sds_hooks hooks = {.secrets = on_secrets, .files = on_files, .arg = x};
    x->sds = rs_sds_new(x->loop, bs, node ? node : bs->node, &hooks);
    if (ads && ads_start(x, bs, o, &node, err, errlen) != 0) goto fail;
    /* what the bootstrap's own resources take from separate SDS servers, and the files the
     * first compile read */
    rs_sds_sync(x->sds, x->ads ? xds_ads_current(x->ads) : NULL);
    rs_sds_watch_files(x->sds);
    x->tick = xds_loop_timer(x->loop, 1000, on_tick, x);
    if (x->cache_path && ads)
        x->cache_timer = xds_loop_timer(x->loop, x->cache_wait_ms, on_cache_timer, x);
    if (pthread_create(&x->thread, NULL, thread_main, x) != 0) {
        snprintf(err, errlen, "cannot start the xDS thread: %s", strerror(errno));
        if (x->ads) xds_ads_stop(x->ads);
        goto fail;
    }
    if (node) protobuf_c_message_free_unpacked(&node->base, NULL);
    x->started = true;
    return x;
fail:
    if (node) protobuf_c_message_free_unpacked(&node->base, NULL);
    xds_free(x);
    return NULL;
}

void rs_xds_stop(struct rs_xds *x)
{
    if (!x || !x->started) return;
    xds_loop_stop(x->loop);
    pthread_join(x->thread, NULL);
    x->started = false;
}

void rs_xds_free(struct rs_xds *x)
{
    if (!x) return;
    rs_xds_stop(x);
    xds_free(x);
}

bool rs_xds_serving_cache(const struct rs_xds *x)
{
    return x && __atomic_load_n(&x->serving_cache, __ATOMIC_RELAXED);
}
