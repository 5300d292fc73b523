/* The ADS client's accepted state: resources decoded from Any, the names they depend on,
 * per-type tables shared between successive states, watch lists, and the cache file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/ads_impl.h"
#include "xds/any.h"

typedef Envoy__Service__Discovery__V3__Resource Resource;
typedef Envoy__Config__Cluster__V3__Cluster Cluster;
typedef Envoy__Config__Listener__V3__Listener Listener;
typedef Envoy__Config__Listener__V3__FilterChain FilterChain;
typedef Envoy__Config__Core__V3__TransportSocket TransportSocket;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;

#define RESOURCE_URL "type.googleapis.com/envoy.service.discovery.v3.Resource"

static const struct {
    const char *url, *shortname, *name_field;
    const ProtobufCMessageDescriptor *desc;
} types[XDS_NTYPES] = {
    [XDS_CDS] = {"type.googleapis.com/envoy.config.cluster.v3.Cluster", "cds", "name",
                 &envoy__config__cluster__v3__cluster__descriptor},
    [XDS_EDS] = {"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "eds",
                 "cluster_name", &envoy__config__endpoint__v3__cluster_load_assignment__descriptor},
    [XDS_LDS] = {"type.googleapis.com/envoy.config.listener.v3.Listener", "lds", "name",
                 &envoy__config__listener__v3__listener__descriptor},
    [XDS_RDS] = {"type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "rds", "name",
                 &envoy__config__route__v3__route_configuration__descriptor},
    [XDS_SDS] = {"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "sds",
                 "name", &envoy__extensions__transport_sockets__tls__v3__secret__descriptor},
};

const char *xds_type_url(enum xds_type t)
{
    return (unsigned)t < XDS_NTYPES ? types[t].url : "";
}

const char *xds_type_short(enum xds_type t)
{
    return (unsigned)t < XDS_NTYPES ? types[t].shortname : "?";
}

int xds_type_from_url(const char *url)
{
    for (int t = 0; url && t < XDS_NTYPES; t++)
        if (strcmp(url, types[t].url) == 0) return t;
    return -1;
}

int64_t xds_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t xds_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort(); /* control path: out-of-memory aborts (STYLE.md) */
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *p = xmalloc(n);
    memcpy(p, s ? s : "", n);
    return p;
}

/* ---- dependencies ------------------------------------------------------------------------- */

struct deps {
    char **names;
    uint8_t *types;
    size_t n, cap;
};

static void deps_add(struct deps *d, enum xds_type t, const char *name)
{
    if (!name || !*name) return;
    for (size_t i = 0; i < d->n; i++)
        if (d->types[i] == t && strcmp(d->names[i], name) == 0) return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 4;
        d->names = realloc(d->names, d->cap * sizeof *d->names);
        d->types = realloc(d->types, d->cap);
        if (!d->names || !d->types) abort();
    }
    d->names[d->n] = xstrdup(name);
    d->types[d->n++] = (uint8_t)t;
}

/* Envoy fetches a secret over ADS when its sds_config is `ads: {}`; other sources (Istio's
 * sds-grpc cluster) are separate SDS streams, not this client's. */
static void sds_add(struct deps *d, const SdsSecretConfig *c)
{
    if (c && c->sds_config &&
        c->sds_config->config_source_specifier_case ==
            ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
        deps_add(d, XDS_SDS, c->name);
}

static void tls_deps(struct deps *d, const CommonTlsContext *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_tls_certificate_sds_secret_configs; i++)
        sds_add(d, c->tls_certificate_sds_secret_configs[i]);
    if (c->validation_context_type_case ==
        ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG)
        sds_add(d, c->validation_context_sds_secret_config);
    else if (
        c->validation_context_type_case ==
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT &&
        c->combined_validation_context)
        sds_add(d, c->combined_validation_context->validation_context_sds_secret_config);
}

/* A transport socket's TLS context (upstream or downstream); anything else names no secret. A
 * context that does not decode names none here: the translation rejects it with its reason. */
static void socket_deps(struct deps *d, const TransportSocket *ts)
{
    if (!ts ||
        ts->config_type_case !=
            ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG ||
        !ts->typed_config)
        return;
    char err[128];
    ProtobufCMessage *m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err);
    if (!m) return;
    if (m->descriptor ==
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor)
        tls_deps(d, ((Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *)m)
                        ->common_tls_context);
    else if (m->descriptor ==
             &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor)
        tls_deps(d, ((Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *)m)
                        ->common_tls_context);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void cluster_deps(struct deps *d, const Cluster *c)
{
    if (c->cluster_discovery_type_case ==
            ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
        c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS) {
        /* Envoy: eds_cluster_config.service_name, else the cluster's own name. */
        const char *svc = c->eds_cluster_config ? c->eds_cluster_config->service_name : NULL;
        deps_add(d, XDS_EDS, svc && *svc ? svc : c->name);
    }
    socket_deps(d, c->transport_socket);
    for (size_t i = 0; i < c->n_transport_socket_matches; i++)
        socket_deps(d, c->transport_socket_matches[i]->transport_socket);
}

static void chain_deps(struct deps *d, const FilterChain *fc)
{
    if (!fc) return;
    socket_deps(d, fc->transport_socket);
    for (size_t i = 0; i < fc->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
            !f->typed_config ||
            !strstr(f->typed_config->type_url ? f->typed_config->type_url : "",
                    "http_connection_manager.v3.HttpConnectionManager"))
            continue;
        char err[128];
        Hcm *h = (Hcm *)xds_any_unpack(
            f->typed_config,
            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
            err, sizeof err);
        if (!h) continue;
        if (h->route_specifier_case ==
                ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
            h->rds)
            deps_add(d, XDS_RDS, h->rds->route_config_name);
        protobuf_c_message_free_unpacked(&h->base, NULL);
    }
}

static void listener_deps(struct deps *d, const Listener *l)
{
    for (size_t i = 0; i < l->n_filter_chains; i++) chain_deps(d, l->filter_chains[i]);
    chain_deps(d, l->default_filter_chain);
}

void xds_res_deps(const struct xds_resource *r, enum xds_type dep, char ***names, size_t *n,
                  size_t *cap)
{
    for (size_t i = 0; i < r->n_deps; i++) {
        if (r->dep_types[i] != dep) continue;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *names = realloc(*names, *cap * sizeof **names);
            if (!*names) abort();
        }
        (*names)[(*n)++] = xstrdup(r->deps[i]);
    }
}

/* ---- resources ---------------------------------------------------------------------------- */

struct xds_resource *xds_res_decode(enum xds_type type, const uint8_t *bytes, size_t len,
                                    const char *version, const char *want_name, char *err,
                                    size_t errlen)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(types[type].desc, NULL, len, bytes);
    if (!m) {
        snprintf(err, errlen, "malformed %s", types[type].desc->name);
        return NULL;
    }
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(types[type].desc, types[type].name_field);
    const char *name = *(char **)((char *)m + f->offset);
    if (!name || !*name) {
        snprintf(err, errlen, "%s without %s", types[type].desc->name, types[type].name_field);
        goto fail;
    }
    if (want_name && *want_name && strcmp(want_name, name) != 0) {
        snprintf(err, errlen, "%s \"%s\": Resource wrapper names it \"%s\"", types[type].desc->name,
                 name, want_name);
        goto fail;
    }
    struct xds_resource *r = calloc(1, sizeof *r);
    if (!r) abort();
    atomic_init(&r->refs, 1);
    r->name = xstrdup(name);
    r->version = xstrdup(version);
    r->msg = m;
    r->bytes = xmalloc(len);
    memcpy(r->bytes, bytes, len);
    r->len = len;
    r->last_updated_ms = xds_wall_ms();
    struct deps d = {0};
    if (type == XDS_CDS) cluster_deps(&d, (const Cluster *)m);
    if (type == XDS_LDS) listener_deps(&d, (const Listener *)m);
    r->deps = d.names;
    r->dep_types = d.types;
    r->n_deps = d.n;
    return r;
fail:
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

struct xds_resource *xds_res_from_any(enum xds_type type, const char *type_url,
                                      const uint8_t *value, size_t len, const char *version,
                                      char *err, size_t errlen)
{
    if (type_url && strcmp(type_url, RESOURCE_URL) == 0) {
        Resource *w = envoy__service__discovery__v3__resource__unpack(NULL, len, value);
        if (!w) {
            snprintf(err, errlen, "malformed envoy.service.discovery.v3.Resource");
            return NULL;
        }
        struct xds_resource *r = NULL;
        if (!w->resource)
            snprintf(err, errlen, "Resource \"%s\" without resource", w->name ? w->name : "");
        else if (w->resource &&
                 strcmp(w->resource->type_url ? w->resource->type_url : "", types[type].url) != 0)
            snprintf(err, errlen, "Resource \"%s\" has type %s in a %s response",
                     w->name ? w->name : "", w->resource->type_url, types[type].url);
        else
            r = xds_res_decode(type, w->resource->value.data, w->resource->value.len,
                               w->version && *w->version ? w->version : version, w->name, err,
                               errlen);
        envoy__service__discovery__v3__resource__free_unpacked(w, NULL);
        return r;
    }
    if (!type_url || strcmp(type_url, types[type].url) != 0) {
        snprintf(err, errlen, "resource of type %s in a %s response", type_url ? type_url : "",
                 types[type].url);
        return NULL;
    }
    return xds_res_decode(type, value, len, version, NULL, err, errlen);
}

struct xds_resource *xds_res_ref(struct xds_resource *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void xds_res_unref(struct xds_resource *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
    protobuf_c_message_free_unpacked(r->msg, NULL);
    for (size_t i = 0; i < r->n_deps; i++) free(r->deps[i]);
    free(r->deps);
    free(r->dep_types);
    free(r->bytes);
    free(r->name);
    free(r->version);
    free(r);
}

/* ---- tables and states -------------------------------------------------------------------- */

static int res_cmp(const void *a, const void *b)
{
    return strcmp((*(struct xds_resource *const *)a)->name,
                  (*(struct xds_resource *const *)b)->name);
}

struct xds_type_table *xds_table_new(const char *version_info, struct xds_resource **res, size_t n)
{
    struct xds_type_table *t = calloc(1, sizeof *t);
    if (!t) abort();
    atomic_init(&t->refs, 1);
    t->version_info = xstrdup(version_info);
    t->n = n;
    t->res = xmalloc(n * sizeof *res);
    if (n) memcpy(t->res, res, n * sizeof *res);
    if (n > 1) qsort(t->res, n, sizeof *res, res_cmp);
    return t;
}

void xds_table_unref(struct xds_type_table *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < t->n; i++) xds_res_unref(t->res[i]);
    free(t->res);
    free(t->version_info);
    free(t);
}

struct xds_state *xds_state_new(void)
{
    struct xds_state *s = calloc(1, sizeof *s);
    if (!s) abort();
    atomic_init(&s->refs, 1);
    for (int t = 0; t < XDS_NTYPES; t++) s->types[t] = xds_table_new("", NULL, 0);
    return s;
}

struct xds_state *xds_state_clone(const struct xds_state *src)
{
    struct xds_state *s = xds_state_new();
    for (int t = 0; t < XDS_NTYPES; t++) {
        xds_table_unref(s->types[t]);
        s->types[t] = src->types[t];
        atomic_fetch_add_explicit(&s->types[t]->refs, 1, memory_order_relaxed);
        s->n_watch[t] = src->n_watch[t];
        s->watch[t] = xmalloc(src->n_watch[t] * sizeof *s->watch[t]);
        for (size_t i = 0; i < src->n_watch[t]; i++) {
            s->watch[t][i] = src->watch[t][i];
            s->watch[t][i].name = xstrdup(src->watch[t][i].name);
        }
        s->type_initialized[t] = src->type_initialized[t];
    }
    s->cds_initialized = src->cds_initialized;
    s->from_cache = src->from_cache;
    return s;
}

struct xds_state *xds_state_ref(struct xds_state *s)
{
    if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void xds_state_unref(struct xds_state *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) return;
    for (int t = 0; t < XDS_NTYPES; t++) {
        xds_table_unref(s->types[t]);
        for (size_t i = 0; i < s->n_watch[t]; i++) free(s->watch[t][i].name);
        free(s->watch[t]);
    }
    free(s);
}

void xds_state_set_table(struct xds_state *s, enum xds_type t, struct xds_type_table *table)
{
    xds_table_unref(s->types[t]);
    s->types[t] = table;
}

const struct xds_resource *xds_state_find(const struct xds_state *s, enum xds_type type,
                                          const char *name)
{
    if ((unsigned)type >= XDS_NTYPES || !name) return NULL;
    const struct xds_type_table *t = s->types[type];
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->res[mid]->name);
        if (c == 0) return t->res[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int watch_cmp(const void *a, const void *b)
{
    return strcmp(((const struct xds_watch *)a)->name, ((const struct xds_watch *)b)->name);
}

struct xds_watch *xds_state_watch_find(struct xds_state *s, enum xds_type t, const char *name)
{
    struct xds_watch key = {.name = (char *)name};
    if ((unsigned)t >= XDS_NTYPES || !name || !s->n_watch[t]) return NULL;
    return bsearch(&key, s->watch[t], s->n_watch[t], sizeof key, watch_cmp);
}

int xds_state_watch_status(const struct xds_state *s, enum xds_type type, const char *name)
{
    const struct xds_watch *w = xds_state_watch_find((struct xds_state *)s, type, name);
    return w ? (int)w->status : -1;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool xds_state_set_watch(struct xds_state *s, enum xds_type t, char **names, size_t n,
                         uint64_t deadline_ms)
{
    if (n > 1) qsort(names, n, sizeof *names, str_cmp);
    struct xds_watch *w = xmalloc(n * sizeof *w);
    size_t m = 0;
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        if (m && strcmp(w[m - 1].name, names[i]) == 0) { /* duplicate reference */
            free(names[i]);
            continue;
        }
        struct xds_watch *old = xds_state_watch_find(s, t, names[i]);
        if (old) {
            w[m] = *old;
            w[m].name = names[i];
        } else {
            changed = true;
            bool have = xds_state_find(s, t, names[i]) != NULL;
            w[m] = (struct xds_watch){names[i], have ? XDS_WATCH_ARRIVED : XDS_WATCH_PENDING,
                                      have ? 0 : deadline_ms};
        }
        m++;
    }
    free(names);
    if (m != s->n_watch[t]) changed = true;
    for (size_t i = 0; i < s->n_watch[t]; i++) free(s->watch[t][i].name);
    free(s->watch[t]);
    s->watch[t] = w;
    s->n_watch[t] = m;
    return changed;
}

/* ---- the cache file ----------------------------------------------------------------------- */

/* "RSXDSC1\n", then per type a 4-byte big-endian length and a DeltaDiscoveryResponse: type_url,
 * system_version_info = the type's version_info, resources = Resource{name, version, Any}. */
static const char cache_magic[8] = "RSXDSC1\n";

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_type(int fd, const struct xds_type_table *tb, enum xds_type t)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse msg =
        ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    msg.type_url = (char *)types[t].url;
    msg.system_version_info = tb->version_info;
    Resource *rs = xmalloc(tb->n * sizeof *rs);
    Resource **rp = xmalloc(tb->n * sizeof *rp);
    Google__Protobuf__Any *anys = xmalloc(tb->n * sizeof *anys);
    for (size_t i = 0; i < tb->n; i++) {
        envoy__service__discovery__v3__resource__init(&rs[i]);
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)types[t].url;
        anys[i].value.data = tb->res[i]->bytes;
        anys[i].value.len = tb->res[i]->len;
        rs[i].name = tb->res[i]->name;
        rs[i].version = tb->res[i]->version;
        rs[i].resource = &anys[i];
        rp[i] = &rs[i];
    }
    msg.n_resources = tb->n;
    msg.resources = rp;
    size_t len = protobuf_c_message_get_packed_size(&msg.base);
    uint8_t *buf = xmalloc(len + 4);
    buf[0] = (uint8_t)(len >> 24), buf[1] = (uint8_t)(len >> 16), buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    protobuf_c_message_pack(&msg.base, buf + 4);
    int rc = write_all(fd, buf, len + 4);
    free(buf);
    free(anys);
    free(rp);
    free(rs);
    return rc;
}

int xds_cache_write(const struct xds_state *s, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "xDS cache %s: %s", tmp, strerror(errno));
        return -1;
    }
    int rc = write_all(fd, cache_magic, sizeof cache_magic);
    for (int t = 0; rc == 0 && t < XDS_NTYPES; t++) rc = write_type(fd, s->types[t], t);
    /* Data on disk before the rename makes it visible: a crash leaves the old file or the new. */
    if (rc == 0) rc = fsync(fd);
    if (close(fd) < 0) rc = -1;
    if (rc == 0) rc = rename(tmp, path);
    if (rc < 0) {
        snprintf(err, errlen, "xDS cache %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    /* The rename itself durable: fsync the directory. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "xDS cache %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

static int load_type(struct xds_state *s, const uint8_t *p, size_t len, char *err, size_t errlen)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *m =
        envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, p);
    if (!m) {
        snprintf(err, errlen, "malformed record");
        return -1;
    }
    int t = xds_type_from_url(m->type_url), rc = 0;
    struct xds_resource **res = xmalloc(m->n_resources * sizeof *res);
    size_t n = 0;
    if (t < 0) {
        snprintf(err, errlen, "unknown type \"%s\"", m->type_url ? m->type_url : "");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < m->n_resources; i++) {
        const Resource *r = m->resources[i];
        if (!r->resource) {
            snprintf(err, errlen, "%s resource \"%s\" without body", types[t].shortname,
                     r->name ? r->name : "");
            rc = -1;
            break;
        }
        res[n] = xds_res_decode(t, r->resource->value.data, r->resource->value.len, r->version,
                                r->name, err, errlen);
        if (!res[n])
            rc = -1;
        else
            n++;
    }
    if (rc == 0) {
        xds_state_set_table(s, t, xds_table_new(m->system_version_info, res, n));
        s->type_initialized[t] = true;
    } else {
        for (size_t i = 0; i < n; i++) xds_res_unref(res[i]);
    }
    free(res);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(m, NULL);
    return rc;
}

struct xds_state *xds_cache_read(const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    uint8_t *buf = read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    struct xds_state *s = xds_state_new();
    int rc = 0;
    if (len < sizeof cache_magic || memcmp(buf, cache_magic, sizeof cache_magic) != 0) {
        snprintf(err, errlen, "xDS cache %s: not a cache file", path);
        rc = -1;
    }
    for (size_t off = sizeof cache_magic; rc == 0 && off < len;) {
        if (len - off < 4) {
            snprintf(err, errlen, "xDS cache %s: truncated", path);
            rc = -1;
            break;
        }
        size_t n = (size_t)buf[off] << 24 | (size_t)buf[off + 1] << 16 | (size_t)buf[off + 2] << 8 |
                   buf[off + 3];
        off += 4;
        if (n > len - off) {
            snprintf(err, errlen, "xDS cache %s: truncated", path);
            rc = -1;
            break;
        }
        char e[256];
        if (load_type(s, buf + off, n, e, sizeof e) < 0) {
            snprintf(err, errlen, "xDS cache %s: %s", path, e);
            rc = -1;
        }
        off += n;
    }
    free(buf);
    if (rc < 0) {
        xds_state_unref(s);
        return NULL;
    }
    s->from_cache = true;
    return s;
}
