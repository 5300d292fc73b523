/* The control thread's separate SDS streams (one xds_ads client in sds_only mode per SDS
 * cluster) and its inotify watch on certificate files; see sds_client.h. */
#include "sidecar/sds_client.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/config.h"
#include "sidecar/log.h"
#include "sidecar/secrets.h"
#include "sidecar/stats.h"
#include "xds/ads.h"
#include "xds/any.h"
#include "xds/grpc.h"

/* A changed file is picked up after this quiet time, so a certificate and its key written one
 * after the other are read together (a mismatched pair is refused and retried on the next). */
#define FILE_SETTLE_MS 100

struct src {
    struct rs_sds *s;
    char *cluster;
    xds_ads *ads;           /* NULL: the cluster has no usable target (warned once) */
    struct xds_state *cand; /* during this source's apply: what the compile must see */
    char **names;           /* collected by rs_sds_sync */
    size_t n, cap;
};

struct watch {
    int wd;
    char *dir;
    bool whole; /* a watched_directory: any change counts */
};

struct rs_sds {
    struct xds_loop *loop;
    const xds_bootstrap *bs;
    Envoy__Config__Core__V3__Node *node;
    struct rs_sds_hooks h;
    struct src **src;
    size_t nsrc;
    struct rs_xds_resource scratch; /* what grpc_secret returned last */
    /* files */
    int ino;
    struct watch *w;
    size_t nw;
    char **files; /* noted paths being watched (plain files) */
    size_t nfiles, nnoted;
    xds_timer *settle;
};

static char *dupstr(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort(); /* control path */
    return d;
}

/* ---- SDS streams ----------------------------------------------------------------------------- */

static struct src *find_src(const struct rs_sds *s, const char *cluster)
{
    for (size_t i = 0; i < s->nsrc; i++)
        if (strcmp(s->src[i]->cluster, cluster) == 0) return s->src[i];
    return NULL;
}

static const struct rs_xds_resource *grpc_secret(void *ctx, const char *cluster, const char *name)
{
    struct rs_sds *s = ctx;
    struct src *c = find_src(s, cluster);
    if (!c || !c->ads) return NULL;
    const struct xds_state *st = c->cand ? c->cand : xds_ads_current(c->ads);
    const struct xds_resource *r = xds_state_find(st, XDS_SDS, name);
    if (!r) return NULL;
    s->scratch =
        (struct rs_xds_resource){.name = r->name, .msg = r->msg, .bytes = r->bytes, .len = r->len};
    return &s->scratch;
}

void rs_sds_set_bootstrap(struct rs_sds *s, const xds_bootstrap *bs)
{
    s->bs = bs;
}

void rs_sds_fill(struct rs_sds *s, struct rs_xds_input *in)
{
    in->grpc_secret = grpc_secret;
    in->grpc_ctx = s;
}

static void state_release(void *st)
{
    xds_state_unref(st);
}

void rs_sds_keep(struct rs_sds *sds, struct rs_snapshot *s)
{
    s->sds_states = calloc(sds->nsrc + 1, sizeof *s->sds_states);
    if (!s->sds_states) abort();
    s->sds_release = state_release;
    for (size_t i = 0; i < sds->nsrc; i++) {
        struct src *c = sds->src[i];
        if (!c->ads) continue;
        struct xds_state *st = c->cand ? c->cand : xds_ads_current(c->ads);
        s->sds_states[s->n_sds_states++] = xds_state_ref(st);
    }
}

void rs_sds_count(const struct xds_state *old, const struct xds_state *cand, bool ok)
{
    const struct xds_type_table *t = cand->types[XDS_SDS];
    for (size_t i = 0; i < t->n; i++) {
        const struct xds_resource *r = t->res[i];
        const struct xds_resource *o = old ? xds_state_find(old, XDS_SDS, r->name) : NULL;
        if (o == r || (o && o->len == r->len && memcmp(o->bytes, r->bytes, r->len) == 0)) continue;
        char n[300];
        snprintf(n, sizeof n, "sds.%s.%s", r->name, ok ? "update_success" : "update_rejected");
        rs_stat_inc(rs_stats_shard(-1), rs_stats_register(n, RS_STAT_COUNTER));
    }
}

static int on_secrets(void *arg, struct xds_state *cand, int changed, char *err, size_t errlen)
{
    (void)changed;
    struct src *c = arg;
    c->cand = cand;
    int rc = c->s->h.secrets(c->s->h.arg, err, errlen);
    c->cand = NULL;
    rs_sds_count(xds_ads_current(c->ads), cand, rc == 0);
    if (rc) rs_warn("sds: secrets from %s rejected: %s", c->cluster, err);
    return rc;
}

static struct src *src_new(struct rs_sds *s, const char *cluster, uint32_t timeout_ms)
{
    struct src *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->s = s;
    c->cluster = dupstr(cluster);
    struct xds_ads_config cfg = {
        .sds_only = true, .node = s->node, .apply = on_secrets, .arg = c, .node_first_only = true};
    /* the first reference's initial_fetch_timeout: Envoy's SDS init target gives up waiting
     * then (the server goes LIVE; what needs the secret keeps warming) */
    cfg.initial_fetch_timeout_ms[XDS_SDS] = timeout_ms;
    char err[256];
    snprintf(cfg.cluster_name, sizeof cfg.cluster_name, "%s", cluster);
    if (xds_bootstrap_cluster_target(s->bs, cluster, cfg.target, sizeof cfg.target, err,
                                     sizeof err) != 0) {
        rs_warn("sds: secrets from cluster %s cannot be fetched: %s (what needs them warms)",
                cluster, err);
    } else if (!(c->ads = xds_ads_new(&cfg)) || xds_ads_start(c->ads, s->loop) != 0) {
        rs_warn("sds: cannot start the SDS stream to %s", cfg.target);
        xds_ads_free(c->ads);
        c->ads = NULL;
    } else {
        rs_info("sds: secrets from %s (%s, StreamSecrets)", cluster, cfg.target);
    }
    s->src = realloc(s->src, (s->nsrc + 1) * sizeof *s->src);
    if (!s->src) abort();
    s->src[s->nsrc++] = c;
    return c;
}

static void add_name(void *arg, const char *cluster, const char *name, uint32_t timeout_ms)
{
    struct rs_sds *s = arg;
    struct src *c = find_src(s, cluster);
    if (!c) c = src_new(s, cluster, timeout_ms);
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->names = realloc(c->names, c->cap * sizeof *c->names);
        if (!c->names) abort();
    }
    c->names[c->n++] = dupstr(name);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void rs_sds_sync(struct rs_sds *s, const struct xds_state *ads)
{
    for (size_t i = 0; i < s->nsrc; i++) {
        for (size_t k = 0; k < s->src[i]->n; k++) free(s->src[i]->names[k]);
        s->src[i]->n = 0;
    }
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = s->bs->static_resources;
    for (size_t i = 0; sr && i < sr->n_clusters; i++)
        rs_secrets_grpc_names(&sr->clusters[i]->base, add_name, s);
    for (size_t i = 0; sr && i < sr->n_listeners; i++)
        rs_secrets_grpc_names(&sr->listeners[i]->base, add_name, s);
    for (int t = XDS_CDS; ads && t <= XDS_LDS; t += XDS_LDS - XDS_CDS)
        for (size_t i = 0; i < ads->types[t]->n; i++)
            rs_secrets_grpc_names(ads->types[t]->res[i]->msg, add_name, s);
    for (size_t i = 0; i < s->nsrc; i++) {
        struct src *c = s->src[i];
        if (c->n > 1) qsort(c->names, c->n, sizeof *c->names, str_cmp);
        if (c->ads) xds_ads_set_sds_names(c->ads, (const char *const *)c->names, c->n);
    }
}

bool rs_sds_pending(const struct rs_sds *s)
{
    for (size_t i = 0; s && i < s->nsrc; i++) {
        const struct src *c = s->src[i];
        if (!c->ads) return true; /* no usable server: what needs it warms for good */
        const struct xds_state *st = c->cand ? c->cand : xds_ads_current(c->ads);
        for (size_t k = 0; k < c->n; k++)
            if (xds_state_watch_status(st, XDS_SDS, c->names[k]) == XDS_WATCH_PENDING &&
                !xds_state_find(st, XDS_SDS, c->names[k]))
                return true;
    }
    return false;
}

/* ---- certificate files ----------------------------------------------------------------------- */

static void on_settled(xds_loop *loop, void *arg)
{
    (void)loop;
    struct rs_sds *s = arg;
    s->settle = NULL;
    rs_info("sds: a watched certificate file changed: rebuilding the TLS contexts that read it");
    rs_secrets_files_changed();
    s->h.files(s->h.arg);
}

/* Whether an event in watch w about entry `name` concerns a noted file. */
static bool relevant(const struct rs_sds *s, const struct watch *w, const char *name)
{
    if (w->whole) return true;
    size_t dl = strlen(w->dir);
    for (size_t i = 0; i < s->nfiles; i++) {
        const char *f = s->files[i];
        if (strncmp(f, w->dir, dl) == 0 && f[dl] == '/' && strcmp(f + dl + 1, name) == 0)
            return true;
    }
    return false;
}

static void on_inotify(xds_loop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct rs_sds *s = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false;
    for (int rounds = 0; rounds < 64; rounds++) { /* bounded: the queue is drained each turn */
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const void *)p;
            if (e->mask & IN_Q_OVERFLOW) hit = true; /* events were lost: rebuild anyway */
            for (size_t i = 0; i < s->nw && !hit; i++)
                if (s->w[i].wd == e->wd) hit = relevant(s, &s->w[i], e->len ? e->name : "");
            p += sizeof *e + e->len;
        }
    }
    if (hit && !s->settle) s->settle = xds_loop_timer(loop, FILE_SETTLE_MS, on_settled, s);
}

static void watch_dir(struct rs_sds *s, const char *dir, bool whole)
{
    for (size_t i = 0; i < s->nw; i++)
        if (strcmp(s->w[i].dir, dir) == 0) {
            s->w[i].whole |= whole;
            return;
        }
    /* the directory, not the file: Kubernetes and cert tools replace files by rename, which a
     * watch on the old inode would not see */
    int wd = inotify_add_watch(
        s->ino, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM);
    if (wd < 0) {
        rs_warn("sds: cannot watch %s for certificate changes: %s", dir, strerror(errno));
        return;
    }
    s->w = realloc(s->w, (s->nw + 1) * sizeof *s->w);
    if (!s->w) abort();
    s->w[s->nw++] = (struct watch){.wd = wd, .dir = dupstr(dir), .whole = whole};
}

void rs_sds_watch_files(struct rs_sds *s)
{
    if (s->ino < 0) return;
    char **paths;
    bool *dirs;
    size_t n = rs_secrets_files(&paths, &dirs);
    for (size_t i = s->nnoted; i < n; i++) { /* the registry only grows, in order */
        if (dirs[i]) {
            watch_dir(s, paths[i], true);
            continue;
        }
        char dir[PATH_MAX];
        const char *slash = strrchr(paths[i], '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == paths[i])
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - paths[i]), paths[i]);
        /* a relative name: events carry the entry name, compare against dir/name */
        char full[PATH_MAX + 2];
        snprintf(full, sizeof full, "%s/%s", dir, slash ? slash + 1 : paths[i]);
        s->files = realloc(s->files, (s->nfiles + 1) * sizeof *s->files);
        if (!s->files) abort();
        s->files[s->nfiles++] = dupstr(full);
        watch_dir(s, dir, false);
    }
    s->nnoted = n;
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(dirs);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static Envoy__Config__Core__V3__Node *node_copy(const Envoy__Config__Core__V3__Node *n)
{
    return n ? (Envoy__Config__Core__V3__Node *)xds_message_clone(&n->base) : NULL;
}

struct rs_sds *rs_sds_new(struct xds_loop *loop, const xds_bootstrap *bs,
                          const Envoy__Config__Core__V3__Node *node, const struct rs_sds_hooks *h)
{
    struct rs_sds *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->bs = bs;
    s->node = node_copy(node);
    s->h = *h;
    s->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (s->ino < 0 || xds_loop_watch(loop, s->ino, XDS_EV_READ, on_inotify, s) != 0) {
        rs_warn("sds: certificate files will not be watched: %s", strerror(errno));
        if (s->ino >= 0) close(s->ino);
        s->ino = -1;
    }
    return s;
}

void rs_sds_free(struct rs_sds *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nsrc; i++) {
        struct src *c = s->src[i];
        if (c->ads) {
            xds_ads_stop(c->ads);
            xds_ads_free(c->ads);
        }
        for (size_t k = 0; k < c->n; k++) free(c->names[k]);
        free(c->names);
        free(c->cluster);
        free(c);
    }
    free(s->src);
    if (s->settle) xds_loop_timer_cancel(s->loop, s->settle);
    if (s->ino >= 0) {
        xds_loop_unwatch(s->loop, s->ino);
        close(s->ino);
    }
    for (size_t i = 0; i < s->nw; i++) free(s->w[i].dir);
    free(s->w);
    for (size_t i = 0; i < s->nfiles; i++) free(s->files[i]);
    free(s->files);
    if (s->node) protobuf_c_message_free_unpacked(&s->node->base, NULL);
    free(s);
}

/* ---- static bootstraps ----------------------------------------------------------------------- */

static bool socket_is_tls(const Envoy__Config__Core__V3__TransportSocket *ts)
{
    if (!ts ||
        ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG)
        return false;
    char err[64];
    ProtobufCMessage *m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err);
    bool tls =
        m &&
        (m->descriptor ==
             &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor ||
         m->descriptor ==
             &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return tls;
}

bool rs_sds_bootstrap_needs(const xds_bootstrap *bs)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = bs->static_resources;
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        const Envoy__Config__Cluster__V3__Cluster *c = sr->clusters[i];
        if (socket_is_tls(c->transport_socket)) return true;
        for (size_t k = 0; k < c->n_transport_socket_matches; k++)
            if (socket_is_tls(c->transport_socket_matches[k]->transport_socket)) return true;
    }
    for (size_t i = 0; sr && i < sr->n_listeners; i++) {
        const Envoy__Config__Listener__V3__Listener *l = sr->listeners[i];
        for (size_t k = 0; k < l->n_filter_chains; k++)
            if (socket_is_tls(l->filter_chains[k]->transport_socket)) return true;
        if (l->default_filter_chain && socket_is_tls(l->default_filter_chain->transport_socket))
            return true;
    }
    return false;
}
