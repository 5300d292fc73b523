/* The ADS protocol as Envoy and istiod speak it (xDS REST/gRPC protocol, "Aggregated Discovery
 * Service"): the first request carries the node; each type is subscribed on its own (wildcard for
 * CDS/LDS, by name for EDS/RDS/SDS); every response has a fresh nonce; a request echoing the
 * latest nonce is an ACK, or a NACK when error_detail is set; one echoing an older nonce is stale
 * and ignored. State of the world sends a type's whole subscribed set whenever any of it changes;
 * delta sends only the resources whose version the client lacks, and removals. */
#include "xds/cp/ads_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "xds/cp/gen.h"
#include "xds/cp/log.h"
#include "xds/grpc.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest SotwRequest;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse SotwResponse;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest DeltaRequest;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DeltaResponse;
typedef Envoy__Service__Discovery__V3__Resource DeltaResource;
typedef Envoy__Config__Core__V3__Node Node;

struct known {
    char *name;
    char version[17];
};

/* One type's subscription on one stream. */
struct sub {
    int active;
    int wildcard;
    char **names; /* resources subscribed by name */
    size_t n_names, cap_names;
    char nonce[24];      /* of the latest response of this type; "" before the first */
    char sent_hash[17];  /* SotW: names and versions of the latest response */
    char *sent_names;    /* the latest response's resource names, for NACK logs */
    struct known *known; /* delta: what the client has */
    size_t n_known, cap_known;
};

struct cp_ads_stream {
    struct cp_ads *ads;
    struct cp_ads_stream *prev, *next;
    int delta;
    int sds_only; /* SecretDiscoveryService: secrets only */
    char peer[64];
    char *node_id; /* NULL until the first request */
    struct cp_node node;
    struct cp_resources *res;
    struct sub subs[CP_NTYPES];
    const struct cp_ads_io *io;
    void *ctx;
    int broken; /* a send failed: the transport will close the stream */
};

struct cp_ads {
    struct cp_mesh *mesh;
    struct cp_sds *sds; /* NULL: no CA, SDS answers are empty */
    struct cp_ads_stream *streams;
    uint64_t nonce_seq;
    uint64_t mesh_version;
    struct cp_ads_stats stats;
};

static struct cp_mesh empty_mesh;

struct cp_ads *cp_ads_new(struct cp_mesh *mesh)
{
    struct cp_ads *ads = calloc(1, sizeof *ads);
    if (!ads) abort(); /* control path */
    ads->mesh = mesh;
    ads->mesh_version = 1;
    return ads;
}

void cp_ads_free(struct cp_ads *ads)
{
    if (!ads) return;
    while (ads->streams) cp_ads_stream_close(ads->streams);
    cp_mesh_free(ads->mesh);
    free(ads);
}

const struct cp_ads_stats *cp_ads_stats(const struct cp_ads *ads)
{
    return &ads->stats;
}

static const struct cp_mesh *mesh_of(const struct cp_ads *ads)
{
    return ads->mesh ? ads->mesh : &empty_mesh;
}

/* ---- name sets ------------------------------------------------------------------------------- */

static int has_name(const struct sub *sub, const char *name)
{
    for (size_t i = 0; i < sub->n_names; i++)
        if (strcmp(sub->names[i], name) == 0) return 1;
    return 0;
}

static void add_name(struct sub *sub, const char *name)
{
    if (has_name(sub, name)) return;
    if (sub->n_names == sub->cap_names) {
        sub->cap_names = sub->cap_names ? sub->cap_names * 2 : 8;
        sub->names = realloc(sub->names, sub->cap_names * sizeof *sub->names);
        if (!sub->names) abort();
    }
    sub->names[sub->n_names] = strdup(name);
    if (!sub->names[sub->n_names]) abort();
    sub->n_names++;
}

static void remove_name(struct sub *sub, const char *name)
{
    for (size_t i = 0; i < sub->n_names; i++)
        if (strcmp(sub->names[i], name) == 0) {
            free(sub->names[i]);
            sub->names[i] = sub->names[--sub->n_names];
            return;
        }
}

static void clear_names(struct sub *sub)
{
    for (size_t i = 0; i < sub->n_names; i++) free(sub->names[i]);
    sub->n_names = 0;
}

static struct known *find_known(struct sub *sub, const char *name)
{
    for (size_t i = 0; i < sub->n_known; i++)
        if (strcmp(sub->known[i].name, name) == 0) return &sub->known[i];
    return NULL;
}

static void set_known(struct sub *sub, const char *name, const char *version)
{
    struct known *k = find_known(sub, name);
    if (!k) {
        if (sub->n_known == sub->cap_known) {
            sub->cap_known = sub->cap_known ? sub->cap_known * 2 : 8;
            sub->known = realloc(sub->known, sub->cap_known * sizeof *sub->known);
            if (!sub->known) abort();
        }
        k = &sub->known[sub->n_known++];
        k->name = strdup(name);
        if (!k->name) abort();
    }
    snprintf(k->version, sizeof k->version, "%s", version);
}

static void drop_known(struct sub *sub, const char *name)
{
    struct known *k = find_known(sub, name);
    if (!k) return;
    free(k->name);
    *k = sub->known[--sub->n_known];
}

static void sub_free(struct sub *sub)
{
    clear_names(sub);
    free(sub->names);
    for (size_t i = 0; i < sub->n_known; i++) free(sub->known[i].name);
    free(sub->known);
    free(sub->sent_names);
}

/* The resources a subscription selects, in name order. Returns how many (ptrs has r->n[t]). */
static size_t selected(const struct cp_ads_stream *s, enum cp_type t,
                       const struct cp_resource **ptrs)
{
    const struct sub *sub = &s->subs[t];
    size_t n = 0;
    if (!s->res) return 0;
    for (size_t i = 0; i < s->res->n[t]; i++) {
        const struct cp_resource *r = &s->res->v[t][i];
        if ((sub->wildcard && r->wildcard) || has_name(sub, r->name)) ptrs[n++] = r;
    }
    return n;
}

static void remember_names(struct sub *sub, const struct cp_resource **rs, size_t n)
{
    char buf[1024];
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len + 8 < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? "," : "", rs[i]->name);
    if (len >= sizeof buf) len = sizeof buf - 1;
    if (n == 0) snprintf(buf, sizeof buf, "(none)");
    free(sub->sent_names);
    sub->sent_names = strdup(buf);
}

static void new_nonce(struct cp_ads_stream *s, struct sub *sub)
{
    snprintf(sub->nonce, sizeof sub->nonce, "%llx", (unsigned long long)++s->ads->nonce_seq);
}

static void send_bytes(struct cp_ads_stream *s, const ProtobufCMessage *msg)
{
    if (s->broken) return;
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) abort();
    protobuf_c_message_pack(msg, buf);
    if (s->io->send(s->ctx, buf, len) < 0)
        s->broken = 1;
    else
        s->ads->stats.responses++;
    free(buf);
}

/* ---- state of the world ---------------------------------------------------------------------- */

/* Sends the subscribed set of type t, unless it is what was last sent and force is 0. */
static void sotw_push(struct cp_ads_stream *s, enum cp_type t, int force)
{
    struct sub *sub = &s->subs[t];
    size_t cap = s->res ? s->res->n[t] : 0;
    const struct cp_resource **rs = malloc((cap ? cap : 1) * sizeof *rs);
    if (!rs) abort();
    size_t n = selected(s, t, rs);
    /* The version names exactly this set: it changes when any selected resource does. */
    size_t blen = 1;
    for (size_t i = 0; i < n; i++) blen += strlen(rs[i]->name) + 18;
    char *buf = malloc(blen), *p = buf;
    if (!buf) abort();
    *p = '\0';
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s %s\n", rs[i]->name, rs[i]->version);
    char hash[17];
    cp_hash_hex(buf, (size_t)(p - buf), hash);
    free(buf);
    if (!force && sub->nonce[0] && strcmp(hash, sub->sent_hash) == 0) {
        free(rs);
        return;
    }
    Google__Protobuf__Any *anys = calloc(n ? n : 1, sizeof *anys);
    Google__Protobuf__Any **anyp = calloc(n ? n : 1, sizeof *anyp);
    if (!anys || !anyp) abort();
    for (size_t i = 0; i < n; i++) {
        google__protobuf__any__init(&anys[i]);
        anys[i].type_url = (char *)cp_type_url(t);
        anys[i].value.data = rs[i]->bytes;
        anys[i].value.len = rs[i]->len;
        anyp[i] = &anys[i];
    }
    new_nonce(s, sub);
    snprintf(sub->sent_hash, sizeof sub->sent_hash, "%s", hash);
    remember_names(sub, rs, n);
    SotwResponse resp = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
    resp.version_info = hash;
    resp.type_url = (char *)cp_type_url(t);
    resp.nonce = sub->nonce;
    resp.n_resources = n;
    resp.resources = anyp;
    send_bytes(s, &resp.base);
    cp_log(CP_LOG_DEBUG, "%s -> %s: %zu resources, version %s, nonce %s", cp_type_short(t),
           s->node_id, n, hash, sub->nonce);
    free(anys);
    free(anyp);
    free(rs);
}

/* ---- delta ----------------------------------------------------------------------------------- */

/* Sends what the client lacks of type t and what it has that is gone; nothing if neither, except
 * the first answer of a type (so the client knows the subscription was seen). */
static void delta_push(struct cp_ads_stream *s, enum cp_type t)
{
    struct sub *sub = &s->subs[t];
    size_t cap = s->res ? s->res->n[t] : 0;
    const struct cp_resource **rs = malloc((cap ? cap : 1) * sizeof *rs);
    if (!rs) abort();
    size_t n = selected(s, t, rs), n_send = 0, n_removed = 0;
    DeltaResource *res = calloc(n ? n : 1, sizeof *res);
    DeltaResource **resp_res = calloc(n ? n : 1, sizeof *resp_res);
    Google__Protobuf__Any *anys = calloc(n ? n : 1, sizeof *anys);
    char **removed = calloc(sub->n_known ? sub->n_known : 1, sizeof *removed);
    if (!res || !resp_res || !anys || !removed) abort();
    for (size_t i = 0; i < n; i++) {
        const struct known *k = find_known(sub, rs[i]->name);
        if (k && strcmp(k->version, rs[i]->version) == 0) continue;
        envoy__service__discovery__v3__resource__init(&res[n_send]);
        google__protobuf__any__init(&anys[n_send]);
        anys[n_send].type_url = (char *)cp_type_url(t);
        anys[n_send].value.data = rs[i]->bytes;
        anys[n_send].value.len = rs[i]->len;
        res[n_send].name = rs[i]->name;
        res[n_send].version = (char *)rs[i]->version;
        res[n_send].resource = &anys[n_send];
        resp_res[n_send] = &res[n_send];
        rs[n_send++] = rs[i];
    }
    for (size_t k = 0; k < sub->n_known; k++) {
        /* Still selected (changed or not)? Then it is not removed. */
        const struct cp_resource *r =
            s->res ? cp_resources_find(s->res, t, sub->known[k].name) : NULL;
        int still = r && ((sub->wildcard && r->wildcard) || has_name(sub, r->name));
        if (!still) removed[n_removed++] = sub->known[k].name;
    }
    if (n_send || n_removed || !sub->nonce[0]) {
        char sysver[24];
        snprintf(sysver, sizeof sysver, "%llu", (unsigned long long)s->ads->mesh_version);
        new_nonce(s, sub);
        DeltaResponse resp = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
        resp.system_version_info = sysver;
        resp.type_url = (char *)cp_type_url(t);
        resp.nonce = sub->nonce;
        resp.n_resources = n_send;
        resp.resources = resp_res;
        resp.n_removed_resources = n_removed;
        resp.removed_resources = removed;
        send_bytes(s, &resp.base);
        remember_names(sub, rs, n_send);
        cp_log(CP_LOG_DEBUG, "%s -> %s: %zu changed, %zu removed, nonce %s", cp_type_short(t),
               s->node_id, n_send, n_removed, sub->nonce);
        for (size_t i = 0; i < n_send; i++) set_known(sub, rs[i]->name, rs[i]->version);
        /* Copy the removed names before dropping them: drop_known frees the strings. */
        for (size_t i = 0; i < n_removed; i++) removed[i] = strdup(removed[i]);
        for (size_t i = 0; i < n_removed; i++) {
            drop_known(sub, removed[i]);
            free(removed[i]);
        }
    }
    free(removed);
    free(anys);
    free(resp_res);
    free(res);
    free(rs);
}

static void push(struct cp_ads_stream *s, enum cp_type t, int force)
{
    if (s->delta)
        delta_push(s, t);
    else
        sotw_push(s, t, force);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void fill_secrets(struct cp_ads_stream *s, struct cp_resources *res)
{
    if (!s->ads->sds) return;
    const struct cp_mesh *m = mesh_of(s->ads);
    const struct cp_workload *w = s->node.ip[0] ? cp_mesh_workload_by_ip(m, s->node.ip) : NULL;
    cp_sds_fill(s->ads->sds, m, w, res);
}

static void regenerate(struct cp_ads_stream *s)
{
    char err[512];
    struct cp_resources *res = cp_generate(mesh_of(s->ads), &s->node, err, sizeof err);
    if (!res) {
        cp_log(CP_LOG_ERROR, "generating resources for %s failed (previous ones kept): %s",
               s->node_id, err);
        return;
    }
    fill_secrets(s, res);
    cp_resources_free(s->res);
    s->res = res;
}

static void reject(struct cp_ads_stream *s, const char *why)
{
    s->ads->stats.bad_requests++;
    cp_log(CP_LOG_WARN, "ADS stream from %s closed: %s", s->peer, why);
    s->io->finish(s->ctx, XDS_GRPC_INVALID_ARGUMENT, why);
    cp_ads_stream_close(s);
}

/* gRPC's own xDS clients pick any node id; Envoy-like proxies must use Istio's sidecar form. */
static int is_grpc_client(const Node *node)
{
    return node->user_agent_name && strncmp(node->user_agent_name, "gRPC", 4) == 0;
}

/* Takes the node from the first request. 0, or -1 after the stream was rejected. */
static int take_node(struct cp_ads_stream *s, const Node *node)
{
    if (s->node_id) return 0;
    if (!node || !node->id || !node->id[0]) {
        reject(s, "the first request must carry a node with an id");
        return -1;
    }
    if (cp_node_parse(node->id, &s->node) < 0 && !is_grpc_client(node)) {
        char why[512];
        snprintf(why, sizeof why,
                 "node id \"%.300s\" is not sidecar~<IP>~<POD>.<NAMESPACE>~<NAMESPACE>.svc.cluster."
                 "local",
                 node->id);
        reject(s, why);
        return -1;
    }
    s->node_id = strdup(node->id);
    if (!s->node_id) abort();
    const struct cp_workload *w =
        s->node.ip[0] ? cp_mesh_workload_by_ip(mesh_of(s->ads), s->node.ip) : NULL;
    cp_log(CP_LOG_INFO, "ADS %s stream from %s: node %s (%s%s%s%s)",
           s->sds_only ? "sds"
           : s->delta  ? "delta"
                       : "sotw",
           s->peer, s->node_id, w ? "workload " : "", w ? w->name : "no workload",
           node->user_agent_name && node->user_agent_name[0] ? ", " : "",
           node->user_agent_name ? node->user_agent_name : "");
    regenerate(s);
    return 0;
}

/* A type URL the stream may subscribe to, or -1 (logged and counted). */
static int request_type(struct cp_ads_stream *s, const char *url)
{
    /* Istio's agent takes an SDS request without a type on its secrets-only socket. */
    int t = s->sds_only && (!url || !*url) ? CP_SDS : cp_type_from_url(url ? url : "");
    if (s->sds_only && t >= 0 && t != CP_SDS) t = -1;
    if (t < 0) {
        s->ads->stats.unknown_types++;
        cp_log(CP_LOG_WARN, "node %s asked for type \"%s\", which ringside-cp does not serve",
               s->node_id, url ? url : "");
    }
    return t;
}

static int nack(struct cp_ads_stream *s, enum cp_type t, const Google__Rpc__Status *e,
                const char *version)
{
    s->ads->stats.nacks++;
    cp_log(CP_LOG_WARN, "NACK %s from %s (version %s, resources %s): code %d: %s", cp_type_short(t),
           s->node_id, version && *version ? version : "-",
           s->subs[t].sent_names ? s->subs[t].sent_names : "(none)", e->code,
           e->message ? e->message : "");
    return 0;
}

static int wildcard_type(enum cp_type t)
{
    return t == CP_CDS || t == CP_LDS;
}

static void sotw_request(struct cp_ads_stream *s, const SotwRequest *rq)
{
    if (take_node(s, rq->node) < 0) return;
    int t = request_type(s, rq->type_url);
    if (t < 0) return;
    struct sub *sub = &s->subs[t];
    const char *nonce = rq->response_nonce ? rq->response_nonce : "";
    if (nonce[0] && strcmp(nonce, sub->nonce) != 0) {
        s->ads->stats.stale_nonces++;
        cp_log(CP_LOG_DEBUG, "%s from %s: stale nonce %s (latest %s) ignored", cp_type_short(t),
               s->node_id, nonce, sub->nonce);
        return;
    }
    if (nonce[0] && rq->error_detail) {
        nack(s, t, rq->error_detail, rq->version_info);
        /* A NACK may still change the subscription; the names are compared below. */
    } else if (nonce[0]) {
        s->ads->stats.acks++;
        cp_log(CP_LOG_INFO, "ACK %s from %s version %s", cp_type_short(t), s->node_id,
               rq->version_info ? rq->version_info : "");
    }
    int wildcard = 0, changed = !sub->active;
    for (size_t i = 0; i < rq->n_resource_names; i++)
        if (strcmp(rq->resource_names[i], "*") == 0) wildcard = 1;
    if (rq->n_resource_names == 0 && wildcard_type((enum cp_type)t)) wildcard = 1;
    changed |= wildcard != sub->wildcard;
    size_t named = 0;
    for (size_t i = 0; i < rq->n_resource_names; i++)
        if (strcmp(rq->resource_names[i], "*") != 0) {
            named++;
            changed |= !has_name(sub, rq->resource_names[i]);
        }
    changed |= named != sub->n_names;
    if (!changed) return;
    sub->active = 1;
    sub->wildcard = wildcard;
    clear_names(sub);
    for (size_t i = 0; i < rq->n_resource_names; i++)
        if (strcmp(rq->resource_names[i], "*") != 0) add_name(sub, rq->resource_names[i]);
    /* A new or changed subscription is always answered, even with what was sent before: the
     * client waits for a response to each request that changes what it asks for. */
    sotw_push(s, (enum cp_type)t, 1);
}

static void delta_request(struct cp_ads_stream *s, const DeltaRequest *rq)
{
    if (take_node(s, rq->node) < 0) return;
    int t = request_type(s, rq->type_url);
    if (t < 0) return;
    struct sub *sub = &s->subs[t];
    const char *nonce = rq->response_nonce ? rq->response_nonce : "";
    int first = !sub->active;
    if (first) {
        sub->active = 1;
        sub->wildcard = wildcard_type((enum cp_type)t) && rq->n_resource_names_subscribe == 0;
        /* On reconnect the client says what it already has, so only differences are sent. */
        for (size_t i = 0; i < rq->n_initial_resource_versions; i++) {
            const char *k = rq->initial_resource_versions[i]->key;
            const char *v = rq->initial_resource_versions[i]->value;
            if (k) set_known(sub, k, v ? v : "");
        }
    }
    if (nonce[0] && rq->error_detail) {
        nack(s, t, rq->error_detail, NULL);
    } else if (nonce[0] && strcmp(nonce, sub->nonce) == 0) {
        s->ads->stats.acks++;
        cp_log(CP_LOG_INFO, "ACK %s from %s nonce %s", cp_type_short(t), s->node_id, nonce);
    } else if (nonce[0]) {
        s->ads->stats.stale_nonces++;
        cp_log(CP_LOG_DEBUG, "%s from %s: stale nonce %s (latest %s)", cp_type_short(t), s->node_id,
               nonce, sub->nonce);
    }
    int changed = first;
    for (size_t i = 0; i < rq->n_resource_names_subscribe; i++) {
        const char *name = rq->resource_names_subscribe[i];
        changed = 1;
        if (strcmp(name, "*") == 0)
            sub->wildcard = 1;
        else
            add_name(sub, name);
    }
    for (size_t i = 0; i < rq->n_resource_names_unsubscribe; i++) {
        const char *name = rq->resource_names_unsubscribe[i];
        changed = 1;
        if (strcmp(name, "*") == 0) {
            sub->wildcard = 0;
            continue;
        }
        remove_name(sub, name);
        drop_known(sub, name); /* the client forgets it: no removal to send */
    }
    if (changed) delta_push(s, (enum cp_type)t);
}

void cp_ads_stream_request(struct cp_ads_stream *s, const uint8_t *msg, size_t len)
{
    s->ads->stats.requests++;
    if (s->delta) {
        DeltaRequest *rq =
            envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, msg);
        if (!rq) {
            reject(s, "undecodable DeltaDiscoveryRequest");
            return;
        }
        delta_request(s, rq);
        envoy__service__discovery__v3__delta_discovery_request__free_unpacked(rq, NULL);
    } else {
        SotwRequest *rq = envoy__service__discovery__v3__discovery_request__unpack(NULL, len, msg);
        if (!rq) {
            reject(s, "undecodable DiscoveryRequest");
            return;
        }
        sotw_request(s, rq);
        envoy__service__discovery__v3__discovery_request__free_unpacked(rq, NULL);
    }
}

/* ---- streams and mesh updates ---------------------------------------------------------------- */

struct cp_ads_stream *cp_ads_stream_open(struct cp_ads *ads, int delta, const char *peer,
                                         const struct cp_ads_io *io, void *ctx)
{
    struct cp_ads_stream *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->ads = ads;
    s->delta = delta == CP_ADS_DELTA;
    s->sds_only = delta == CP_ADS_SDS;
    snprintf(s->peer, sizeof s->peer, "%s", peer ? peer : "?");
    s->io = io;
    s->ctx = ctx;
    s->next = ads->streams;
    if (ads->streams) ads->streams->prev = s;
    ads->streams = s;
    ads->stats.streams_opened++;
    ads->stats.streams_active++;
    return s;
}

void cp_ads_stream_close(struct cp_ads_stream *s)
{
    struct cp_ads *ads = s->ads;
    if (s->prev)
        s->prev->next = s->next;
    else
        ads->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    ads->stats.streams_closed++;
    ads->stats.streams_active--;
    if (s->node_id) cp_log(CP_LOG_INFO, "ADS stream of %s from %s ended", s->node_id, s->peer);
    for (int t = 0; t < CP_NTYPES; t++) sub_free(&s->subs[t]);
    cp_resources_free(s->res);
    free(s->node_id);
    free(s);
}

void cp_ads_set_mesh(struct cp_ads *ads, struct cp_mesh *mesh)
{
    cp_mesh_free(ads->mesh);
    ads->mesh = mesh;
    ads->mesh_version++;
    ads->stats.mesh_updates++;
    for (struct cp_ads_stream *s = ads->streams; s; s = s->next) {
        if (!s->node_id) continue;
        regenerate(s);
        /* Envoy's order: clusters before their endpoints, listeners before their routes. */
        static const enum cp_type order[] = {CP_CDS, CP_EDS, CP_LDS, CP_RDS, CP_SDS};
        for (size_t i = 0; i < CP_NTYPES; i++)
            if (s->subs[order[i]].active) push(s, order[i], 0);
    }
}

void cp_ads_set_sds(struct cp_ads *ads, struct cp_sds *sds)
{
    ads->sds = sds;
}

void cp_ads_tick(struct cp_ads *ads)
{
    if (!ads->sds || cp_sds_rotate(ads->sds, mesh_of(ads)) == 0) return;
    for (struct cp_ads_stream *s = ads->streams; s; s = s->next) {
        if (!s->node_id || !s->res) continue;
        fill_secrets(s, s->res);
        /* Only what changed goes out: a stream whose workload kept its certificate sends nothing
         * (SotW compares the set's version, delta each resource's). */
        if (s->subs[CP_SDS].active) push(s, CP_SDS, 0);
    }
}
