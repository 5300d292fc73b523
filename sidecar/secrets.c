/* SDS secrets for TLS contexts: resolving SdsSecretConfigs at compile time and merging them into
 * the context, the names separate SDS servers are asked for, the certificate files to watch, and
 * the retired client contexts of clusters that rotated in place. */
#include "sidecar/secrets.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "sidecar/config_impl.h"
#include "sidecar/tls.h"
#include "xds/any.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext CommonTlsContext;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig SdsSecretConfig;
typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret Secret;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate TlsCertificate;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext Cvc;
typedef Envoy__Config__Core__V3__ConfigSource ConfigSource;

#define VCASE(x)                                                                                   \
    ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_##x
#define SECRET_CASE(x) ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_##x

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* ---- where a secret comes from --------------------------------------------------------------- */

/* The cluster a separate SDS server is reached through, or NULL when sds_config is not that. */
static const char *grpc_source(const ConfigSource *cs)
{
    if (!cs ||
        cs->config_source_specifier_case !=
            ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_API_CONFIG_SOURCE)
        return NULL;
    const Envoy__Config__Core__V3__ApiConfigSource *api = cs->api_config_source;
    if (!api || api->n_grpc_services == 0) return NULL;
    const Envoy__Config__Core__V3__GrpcService *g = api->grpc_services[0];
    if (g->target_specifier_case !=
            ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC ||
        !g->envoy_grpc || !g->envoy_grpc->cluster_name || !g->envoy_grpc->cluster_name[0])
        return NULL;
    return g->envoy_grpc->cluster_name;
}

static const struct rs_xds_resource *find_ads(const struct rs_xds_input *in, const char *name)
{
    for (size_t i = 0; in && i < in->n[RS_XDS_SDS]; i++)
        if (in->res[RS_XDS_SDS][i].name && strcmp(in->res[RS_XDS_SDS][i].name, name) == 0)
            return &in->res[RS_XDS_SDS][i];
    return NULL;
}

/* The secret a config names: *out set (borrowed), or NULL when it has not arrived (return 0);
 * -1 with the error in cx. */
static int lookup(struct cctx *cx, const SdsSecretConfig *sc, const char *field, const Secret **out,
                  uint64_t *fp)
{
    *out = NULL;
    const char *name = sc->name ? sc->name : "";
    if (!name[0]) return fail(cx, field, "name is required");
    const ConfigSource *cs = sc->sds_config;
    if (!cs) { /* name only: the bootstrap's static_resources.secrets */
        const Envoy__Config__Bootstrap__V3__Bootstrap *bs = cx->snap->bootstrap;
        const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
            bs ? bs->static_resources : NULL;
        for (size_t i = 0; sr && i < sr->n_secrets; i++)
            if (sr->secrets[i]->name && strcmp(sr->secrets[i]->name, name) == 0) {
                *out = sr->secrets[i];
                size_t len = protobuf_c_message_get_packed_size(&(*out)->base);
                uint8_t *b = xcalloc(1, len + 1);
                protobuf_c_message_pack(&(*out)->base, b);
                *fp = fnv(*fp, b, len);
                free(b);
                return 0;
            }
        return fail(cx, field, "no static secret named \"%s\" (static_resources.secrets)", name);
    }
    const struct rs_xds_resource *r = NULL;
    if (cs->config_source_specifier_case ==
        ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS) {
        const Envoy__Config__Bootstrap__V3__Bootstrap *bs = cx->snap->bootstrap;
        if (!cx->in || !bs || !bs->dynamic_resources)
            return fail(cx, field, "an SDS secret over ADS needs dynamic_resources");
        r = find_ads(cx->in, name);
    } else {
        const char *cluster = grpc_source(cs);
        if (!cluster)
            return fail(cx, field,
                        "sds_config: only ads and api_config_source with "
                        "grpc_services[0].envoy_grpc.cluster_name are supported");
        /* rs_config_compile (no input) is validation or a bootstrap without secrets */
        if (!cx->in) return fail(cx, field, "an SDS secret needs the control thread");
        if (cx->in->grpc_secret) r = cx->in->grpc_secret(cx->in->grpc_ctx, cluster, name);
    }
    if (!r) return 0; /* warming (an initial_fetch_timeout does not end it: no secret to use) */
    *fp = fnv(*fp, r->bytes, r->len);
    *out = (const Secret *)r->msg;
    return 0;
}

/* ---- certificate files ----------------------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    char **paths;
    bool *dirs;
    size_t n, cap;
    uint64_t gen; /* atomic */
} files = {.lock = PTHREAD_MUTEX_INITIALIZER};

void rs_secrets_note_file(const char *path, bool directory)
{
    if (!path || !path[0]) return;
    pthread_mutex_lock(&files.lock);
    bool have = false;
    for (size_t i = 0; i < files.n && !have; i++) have = strcmp(files.paths[i], path) == 0;
    if (!have) {
        if (files.n == files.cap) {
            files.cap = files.cap ? files.cap * 2 : 8;
            files.paths = realloc(files.paths, files.cap * sizeof *files.paths);
            files.dirs = realloc(files.dirs, files.cap * sizeof *files.dirs);
            if (!files.paths || !files.dirs) abort(); /* control path */
        }
        files.dirs[files.n] = directory;
        files.paths[files.n++] = xstrdup(path);
    }
    pthread_mutex_unlock(&files.lock);
}

size_t rs_secrets_files(char ***paths, bool **dirs)
{
    pthread_mutex_lock(&files.lock);
    size_t n = files.n;
    *paths = xcalloc(n, sizeof **paths);
    *dirs = xcalloc(n, sizeof **dirs);
    for (size_t i = 0; i < n; i++) {
        (*paths)[i] = xstrdup(files.paths[i]);
        (*dirs)[i] = files.dirs[i];
    }
    pthread_mutex_unlock(&files.lock);
    return n;
}

void rs_secrets_files_changed(void)
{
    __atomic_add_fetch(&files.gen, 1, __ATOMIC_RELAXED);
}

uint64_t rs_secrets_files_gen(void)
{
    return __atomic_load_n(&files.gen, __ATOMIC_RELAXED);
}

static bool note_source(const Envoy__Config__Core__V3__DataSource *ds)
{
    if (!ds || ds->specifier_case != ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME)
        return false;
    rs_secrets_note_file(ds->filename, false);
    return true;
}

static bool note_dir(const Envoy__Config__Core__V3__WatchedDirectory *wd)
{
    if (!wd || !wd->path || !wd->path[0]) return false;
    rs_secrets_note_file(wd->path, true);
    return true;
}

/* Notes the files a (substituted) context reads; true when there is any. */
static bool note_files(const CommonTlsContext *c)
{
    bool any = false;
    for (size_t i = 0; i < c->n_tls_certificates; i++) {
        const TlsCertificate *tc = c->tls_certificates[i];
        any |= note_source(tc->certificate_chain);
        any |= note_source(tc->private_key);
        any |= note_dir(tc->watched_directory);
    }
    if (c->validation_context_type_case == VCASE(VALIDATION_CONTEXT) && c->validation_context) {
        any |= note_source(c->validation_context->trusted_ca);
        any |= note_dir(c->validation_context->watched_directory);
    }
    return any;
}

/* ---- substitution ---------------------------------------------------------------------------- */

bool rs_secrets_uses_sds(const CommonTlsContext *c)
{
    return c && (c->n_tls_certificate_sds_secret_configs ||
                 c->validation_context_type_case == VCASE(VALIDATION_CONTEXT_SDS_SECRET_CONFIG) ||
                 (c->validation_context_type_case == VCASE(COMBINED_VALIDATION_CONTEXT) &&
                  c->combined_validation_context &&
                  c->combined_validation_context->validation_context_sds_secret_config));
}

/* The default validation context's fields, then the secret's over them: protobuf's MergeFrom is
 * what parsing the two serializations one after the other gives. */
static Cvc *merge_cvc(const Cvc *dflt, const Cvc *secret)
{
    size_t a = dflt ? protobuf_c_message_get_packed_size(&dflt->base) : 0;
    size_t b = protobuf_c_message_get_packed_size(&secret->base);
    uint8_t *buf = xcalloc(1, a + b + 1);
    if (dflt) protobuf_c_message_pack(&dflt->base, buf);
    protobuf_c_message_pack(&secret->base, buf + a);
    Cvc *m = (Cvc *)protobuf_c_message_unpack(
        &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__descriptor,
        NULL, a + b, buf);
    free(buf);
    if (!m) abort(); /* both halves were packed by us */
    return m;
}

static int cert_secret(struct cctx *cx, CommonTlsContext *c, uint64_t *fp,
                       const TlsCertificate **cert)
{
    *cert = NULL;
    if (c->n_tls_certificate_sds_secret_configs > 1)
        return fail(cx, "tls_certificate_sds_secret_configs",
                    "%zu secrets: only one certificate per context is supported",
                    c->n_tls_certificate_sds_secret_configs);
    if (!c->n_tls_certificate_sds_secret_configs) return 0;
    if (c->n_tls_certificates)
        return fail(cx, "tls_certificate_sds_secret_configs",
                    "only one of tls_certificates and tls_certificate_sds_secret_configs");
    const Secret *s;
    if (lookup(cx, c->tls_certificate_sds_secret_configs[0],
               "tls_certificate_sds_secret_configs[0]", &s, fp))
        return -1;
    if (!s) return 1;
    if (s->type_case != SECRET_CASE(TLS_CERTIFICATE) || !s->tls_certificate)
        return fail(cx, "tls_certificate_sds_secret_configs[0]",
                    "secret \"%s\" is not a tls_certificate", s->name);
    *cert = s->tls_certificate;
    return 0;
}

static int validation_secret(struct cctx *cx, CommonTlsContext *c, uint64_t *fp, const Cvc **cvc)
{
    *cvc = NULL;
    const SdsSecretConfig *sc = NULL;
    const char *field = "validation_context_sds_secret_config";
    if (c->validation_context_type_case == VCASE(VALIDATION_CONTEXT_SDS_SECRET_CONFIG)) {
        sc = c->validation_context_sds_secret_config;
    } else if (c->validation_context_type_case == VCASE(COMBINED_VALIDATION_CONTEXT) &&
               c->combined_validation_context) {
        sc = c->combined_validation_context->validation_context_sds_secret_config;
        field = "combined_validation_context.validation_context_sds_secret_config";
        if (!sc) return fail(cx, field, "is required");
    }
    if (!sc) return 0;
    const Secret *s;
    if (lookup(cx, sc, field, &s, fp)) return -1;
    if (!s) return 1;
    if (s->type_case != SECRET_CASE(VALIDATION_CONTEXT) || !s->validation_context)
        return fail(cx, field, "secret \"%s\" is not a validation_context", s->name);
    *cvc = s->validation_context;
    return 0;
}

int rs_secrets_subst(struct cctx *cx, CommonTlsContext *c, struct rs_tls_subst *u, uint64_t *fp)
{
    memset(u, 0, sizeof *u);
    if (!c) return 0;
    const TlsCertificate *cert;
    const Cvc *cvc;
    size_t old = path_push(cx, "common_tls_context");
    int r = cert_secret(cx, c, fp, &cert);
    int v = r < 0 ? -1 : validation_secret(cx, c, fp, &cvc);
    path_pop(cx, old);
    if (r < 0 || v < 0) return -1;
    if (r > 0 || v > 0) return 1;
    u->done = true;
    if (cert) {
        u->n_sds = c->n_tls_certificate_sds_secret_configs;
        u->sds = c->tls_certificate_sds_secret_configs;
        u->n_certs = c->n_tls_certificates;
        u->certs = c->tls_certificates;
        u->cert = (TlsCertificate *)cert;
        c->n_tls_certificate_sds_secret_configs = 0;
        c->tls_certificate_sds_secret_configs = NULL;
        c->n_tls_certificates = 1;
        c->tls_certificates = &u->cert;
    }
    if (cvc) {
        u->vcase = (int)c->validation_context_type_case;
        u->vunion = c->validation_context; /* the oneof's one pointer, whichever member */
        if (c->validation_context_type_case == VCASE(COMBINED_VALIDATION_CONTEXT)) {
            u->merged = merge_cvc(c->combined_validation_context->default_validation_context, cvc);
            c->validation_context = u->merged;
        } else {
            c->validation_context = (Cvc *)cvc;
        }
        c->validation_context_type_case = VCASE(VALIDATION_CONTEXT);
    }
    if (note_files(c)) {
        uint64_t gen = rs_secrets_files_gen();
        *fp = fnv(*fp, &gen, sizeof gen);
    }
    return 0;
}

void rs_secrets_undo(CommonTlsContext *c, struct rs_tls_subst *u)
{
    if (!c || !u->done) return;
    if (u->cert) {
        c->n_tls_certificate_sds_secret_configs = u->n_sds;
        c->tls_certificate_sds_secret_configs = u->sds;
        c->n_tls_certificates = u->n_certs;
        c->tls_certificates = u->certs;
    }
    if (u->vcase) {
        c->validation_context_type_case = u->vcase;
        c->validation_context = u->vunion;
    }
    if (u->merged) protobuf_c_message_free_unpacked(&u->merged->base, NULL);
    memset(u, 0, sizeof *u);
}

/* ---- names for separate SDS servers ---------------------------------------------------------- */

struct walk {
    rs_secret_ref_fn fn;
    void *arg;
};

static void walk_config(struct walk *w, const SdsSecretConfig *sc)
{
    const char *cluster = sc ? grpc_source(sc->sds_config) : NULL;
    if (cluster && sc->name && sc->name[0])
        w->fn(w->arg, cluster, sc->name,
              rs_duration_ms(sc->sds_config->initial_fetch_timeout, 15000));
}

static void walk_socket(struct walk *w, const Envoy__Config__Core__V3__TransportSocket *ts)
{
    if (!ts ||
        ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG)
        return;
    char err[128];
    ProtobufCMessage *m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err);
    if (!m) return; /* the compile reports it */
    const CommonTlsContext *c = NULL;
    if (m->descriptor ==
        &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor)
        c = ((Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *)m)
                ->common_tls_context;
    else if (m->descriptor ==
             &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor)
        c = ((Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *)m)
                ->common_tls_context;
    for (size_t i = 0; c && i < c->n_tls_certificate_sds_secret_configs; i++)
        walk_config(w, c->tls_certificate_sds_secret_configs[i]);
    if (c && c->validation_context_type_case == VCASE(VALIDATION_CONTEXT_SDS_SECRET_CONFIG))
        walk_config(w, c->validation_context_sds_secret_config);
    if (c && c->validation_context_type_case == VCASE(COMBINED_VALIDATION_CONTEXT) &&
        c->combined_validation_context)
        walk_config(w, c->combined_validation_context->validation_context_sds_secret_config);
    protobuf_c_message_free_unpacked(m, NULL);
}

void rs_secrets_grpc_names(const ProtobufCMessage *m, rs_secret_ref_fn fn, void *arg)
{
    struct walk w = {fn, arg};
    if (m->descriptor == &envoy__config__cluster__v3__cluster__descriptor) {
        const Cluster *c = (const Cluster *)m;
        walk_socket(&w, c->transport_socket);
        for (size_t i = 0; i < c->n_transport_socket_matches; i++)
            walk_socket(&w, c->transport_socket_matches[i]->transport_socket);
    } else if (m->descriptor == &envoy__config__listener__v3__listener__descriptor) {
        const Listener *l = (const Listener *)m;
        for (size_t i = 0; i < l->n_filter_chains; i++)
            walk_socket(&w, l->filter_chains[i]->transport_socket);
        if (l->default_filter_chain) walk_socket(&w, l->default_filter_chain->transport_socket);
    }
}

/* ---- server context cache -------------------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    struct cached {
        uint8_t *def;
        size_t len;
        uint64_t fp;
        struct rs_tls_ctx *ctx;
        bool used; /* since the last sweep */
    } * v;
    size_t n, cap;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct rs_tls_ctx *rs_secrets_ctx_find(const uint8_t *def, size_t len, uint64_t fp)
{
    struct rs_tls_ctx *ctx = NULL;
    pthread_mutex_lock(&cache.lock);
    for (size_t i = 0; i < cache.n && !ctx; i++) {
        struct cached *e = &cache.v[i];
        if (e->fp == fp && e->len == len && memcmp(e->def, def, len) == 0) {
            e->used = true;
            ctx = rs_tls_ctx_ref(e->ctx);
        }
    }
    pthread_mutex_unlock(&cache.lock);
    return ctx;
}

void rs_secrets_ctx_put(const uint8_t *def, size_t len, uint64_t fp, struct rs_tls_ctx *ctx)
{
    pthread_mutex_lock(&cache.lock);
    if (cache.n == cache.cap) {
        cache.cap = cache.cap ? cache.cap * 2 : 16;
        cache.v = realloc(cache.v, cache.cap * sizeof *cache.v);
        if (!cache.v) abort(); /* control path */
    }
    cache.v[cache.n++] = (struct cached){
        .def = xmemdup(def, len), .len = len, .fp = fp, .ctx = rs_tls_ctx_ref(ctx), .used = true};
    pthread_mutex_unlock(&cache.lock);
}

void rs_secrets_ctx_sweep(void)
{
    pthread_mutex_lock(&cache.lock);
    size_t kept = 0;
    for (size_t i = 0; i < cache.n; i++) {
        struct cached *e = &cache.v[i];
        if (e->used) {
            e->used = false;
            cache.v[kept++] = *e;
            continue;
        }
        rs_tls_ctx_unref(e->ctx); /* listeners that still use it hold their own reference */
        free(e->def);
    }
    cache.n = kept;
    pthread_mutex_unlock(&cache.lock);
}

/* ---- retired contexts ------------------------------------------------------------------------ */

static struct retired {
    struct rs_tls_ctx *ctx;
    uint64_t seq; /* 0: not sealed yet */
} * retired;
static size_t nretired, retired_cap;

void rs_secrets_retire(struct rs_tls_ctx *ctx)
{
    if (!ctx) return;
    if (nretired == retired_cap) {
        retired_cap = retired_cap ? retired_cap * 2 : 8;
        retired = realloc(retired, retired_cap * sizeof *retired);
        if (!retired) abort(); /* control path */
    }
    retired[nretired++] = (struct retired){ctx, 0};
}

void rs_secrets_seal(uint64_t seq)
{
    for (size_t i = 0; i < nretired; i++)
        if (!retired[i].seq) retired[i].seq = seq;
}

size_t rs_secrets_reap(uint64_t min_seq)
{
    size_t kept = 0, freed = 0;
    for (size_t i = 0; i < nretired; i++) {
        if (min_seq == UINT64_MAX || (retired[i].seq && retired[i].seq <= min_seq)) {
            rs_tls_ctx_unref(retired[i].ctx);
            freed++;
        } else {
            retired[kept++] = retired[i];
        }
    }
    nretired = kept;
    return freed;
}
