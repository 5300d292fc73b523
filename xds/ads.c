/* The ADS protocol core: consumes (Delta)DiscoveryResponses, validates them into a candidate
 * state, asks the sidecar to apply it, ACKs or NACKs as Envoy does, and keeps the subscriptions
 * in Envoy's startup order (CDS wildcard -> EDS for EDS clusters -> LDS once CDS is warm -> RDS
 * for the listeners' route names -> SDS for the secrets transport sockets name over ADS). No
 * socket here: requests leave through a send callback (ads_grpc.c binds it to gRPC). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "google/rpc/status.pb-c.h"
#include "xds/ads_impl.h"
#include "xds/any.h"

typedef Envoy__Service__Discovery__V3__DiscoveryRequest Request;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse Response;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest DeltaRequest;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse DeltaResponse;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry IrvEntry;

#define GRPC_INVALID_ARGUMENT 3 /* google.rpc.Code, as Envoy sets in error_detail */

static void inc(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void set(atomic_uint_fast64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t now_ms(const xds_ads *a)
{
    return a->cfg.now_ms ? a->cfg.now_ms() : xds_mono_ms();
}

/* Envoy publishes a hash of version_info as the `version` gauge; ours is FNV-1a 64. */
static uint64_t fnv64(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; s && *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static char *dupstr(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

static bool wildcard(enum xds_type t)
{
    return t == XDS_CDS || t == XDS_LDS;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static Envoy__Config__Core__V3__Node *node_copy(const Envoy__Config__Core__V3__Node *n)
{
    return n ? (Envoy__Config__Core__V3__Node *)xds_message_clone(&n->base) : NULL;
}

xds_ads *xds_ads_new(const struct xds_ads_config *cfg)
{
    xds_ads *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = *cfg;
    a->cfg.node = NULL;
    if (!a->cfg.max_msg) a->cfg.max_msg = 4u << 20;
    a->node = node_copy(cfg->node);
    a->cur = xds_state_new();
    a->rng = xds_mono_ms() ^ (uint64_t)(uintptr_t)a;
    return a;
}

static void sub_reset(struct xds_ads_sub *s)
{
    free(s->nonce);
    for (size_t i = 0; i < s->n_sent; i++) free(s->sent[i]);
    free(s->sent);
    *s = (struct xds_ads_sub){.wild_deadline_ms = s->wild_deadline_ms};
}

void xds_ads_free(xds_ads *a)
{
    if (!a) return;
    for (int t = 0; t < XDS_NTYPES; t++) sub_reset(&a->sub[t]);
    for (size_t i = 0; i < a->n_sds_names; i++) free(a->sds_names[i]);
    free(a->sds_names);
    xds_state_unref(a->cur);
    if (a->node) protobuf_c_message_free_unpacked(&a->node->base, NULL);
    free(a->cache_path);
    free(a);
}

struct xds_state *xds_ads_current(const xds_ads *a)
{
    return a->cur;
}
const struct xds_ads_stats *xds_ads_stats(const xds_ads *a)
{
    return &a->stats;
}
bool xds_ads_state_from_cache(const xds_ads *a)
{
    return a->cur->from_cache;
}

void xds_ads_set_cache(xds_ads *a, const char *path)
{
    free(a->cache_path);
    a->cache_path = path ? dupstr(path) : NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

static int emit(xds_ads *a, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    if (!buf) abort();
    protobuf_c_message_pack(m, buf);
    int rc = a->send ? a->send(a->send_arg, buf, len) : -1;
    free(buf);
    inc(&a->stats.rq_total);
    a->node_sent = true;
    return rc;
}

static Envoy__Config__Core__V3__Node *node_for_request(xds_ads *a)
{
    return !a->node_sent || !a->cfg.node_first_only ? a->node : NULL;
}

/* The names a type is subscribed to now (wildcard types: none listed). */
static char **watch_names(const xds_ads *a, enum xds_type t, size_t *n)
{
    const struct xds_state *s = a->cur;
    *n = s->n_watch[t];
    char **v = malloc((*n + 1) * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < *n; i++) v[i] = s->watch[t][i].name; /* borrowed, sorted */
    return v;
}

static void remember_sent(struct xds_ads_sub *sub, char **names, size_t n)
{
    for (size_t i = 0; i < sub->n_sent; i++) free(sub->sent[i]);
    free(sub->sent);
    sub->sent = malloc((n + 1) * sizeof *sub->sent);
    if (!sub->sent) abort();
    for (size_t i = 0; i < n; i++) sub->sent[i] = dupstr(names[i]);
    sub->n_sent = n;
    sub->requested = true;
}

static bool same_names(const struct xds_ads_sub *sub, char **names, size_t n)
{
    if (n != sub->n_sent) return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], sub->sent[i]) != 0) return false;
    return true;
}

/* SotW: one DiscoveryRequest carrying the whole subscription, the last accepted version and the
 * last nonce; with error_detail it is a NACK (version_info stays the previous one, as Envoy). */
static void send_sotw(xds_ads *a, enum xds_type t, const char *nack)
{
    struct xds_ads_sub *sub = &a->sub[t];
    Request rq = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    size_t n;
    char **names = watch_names(a, t, &n);
    rq.version_info = a->cur->types[t]->version_info;
    rq.node = node_for_request(a);
    rq.type_url = (char *)xds_type_url(t);
    rq.response_nonce = sub->nonce ? sub->nonce : "";
    rq.n_resource_names = n;
    rq.resource_names = names;
    if (nack) {
        st.code = GRPC_INVALID_ARGUMENT;
        st.message = (char *)nack;
        rq.error_detail = &st;
        inc(&a->stats.rq_nack);
    }
    emit(a, &rq.base);
    remember_sent(sub, names, n);
    free(names);
}

/* Delta, first request of a type on a stream: subscribe to every watched name and tell the
 * server what we hold (initial_resource_versions), so it sends only what changed. */
static void send_delta_initial(xds_ads *a, enum xds_type t)
{
    DeltaRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    const struct xds_type_table *tb = a->cur->types[t];
    size_t n;
    char **names = watch_names(a, t, &n);
    IrvEntry *ent = malloc((tb->n + 1) * sizeof *ent);
    IrvEntry **ep = malloc((tb->n + 1) * sizeof *ep);
    if (!ent || !ep) abort();
    for (size_t i = 0; i < tb->n; i++) {
        envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
            &ent[i]);
        ent[i].key = tb->res[i]->name;
        ent[i].value = tb->res[i]->version;
        ep[i] = &ent[i];
    }
    rq.node = node_for_request(a);
    rq.type_url = (char *)xds_type_url(t);
    rq.n_resource_names_subscribe = n;
    rq.resource_names_subscribe = names;
    rq.n_initial_resource_versions = tb->n;
    rq.initial_resource_versions = ep;
    emit(a, &rq.base);
    remember_sent(&a->sub[t], names, n);
    free(names);
    free(ent);
    free(ep);
}

/* Delta, later: subscribe the new names, unsubscribe the gone ones (both lists sorted). */
static void send_delta_diff(xds_ads *a, enum xds_type t)
{
    struct xds_ads_sub *sub = &a->sub[t];
    DeltaRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    size_t n, i = 0, j = 0, ns = 0, nu = 0;
    char **names = watch_names(a, t, &n);
    char **subs = malloc((n + 1) * sizeof *subs),
         **unsubs = malloc((sub->n_sent + 1) * sizeof *unsubs);
    if (!subs || !unsubs) abort();
    while (i < n || j < sub->n_sent) {
        int c = i == n ? 1 : j == sub->n_sent ? -1 : strcmp(names[i], sub->sent[j]);
        if (c < 0)
            subs[ns++] = names[i++];
        else if (c > 0)
            unsubs[nu++] = sub->sent[j++];
        else
            i++, j++;
    }
    rq.node = node_for_request(a);
    rq.type_url = (char *)xds_type_url(t);
    rq.n_resource_names_subscribe = ns;
    rq.resource_names_subscribe = subs;
    rq.n_resource_names_unsubscribe = nu;
    rq.resource_names_unsubscribe = unsubs;
    emit(a, &rq.base);
    free(subs);
    free(unsubs);
    remember_sent(sub, names, n);
    free(names);
}

/* Delta ACK (nonce only) or NACK (nonce and error_detail). */
static void send_delta_ack(xds_ads *a, enum xds_type t, const char *nonce, const char *nack)
{
    DeltaRequest rq = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    rq.node = node_for_request(a);
    rq.type_url = (char *)xds_type_url(t);
    rq.response_nonce = (char *)(nonce ? nonce : "");
    if (nack) {
        st.code = GRPC_INVALID_ARGUMENT;
        st.message = (char *)nack;
        rq.error_detail = &st;
        inc(&a->stats.rq_nack);
    }
    emit(a, &rq.base);
}

static bool wanted(const xds_ads *a, enum xds_type t)
{
    if (a->cfg.sds_only) return t == XDS_SDS;
    if (t == XDS_CDS) return true;
    if (t == XDS_LDS) return a->cur->cds_initialized;
    return a->cur->n_watch[t] > 0 || a->sub[t].requested;
}

/* Brings the server's view of every subscription up to date, in Envoy's type order. */
static void sync_subscriptions(xds_ads *a)
{
    if (!a->open) return;
    for (int t = 0; t < XDS_NTYPES; t++) {
        struct xds_ads_sub *sub = &a->sub[t];
        if (!wanted(a, t)) continue;
        if (!sub->requested) {
            if (a->cfg.delta)
                send_delta_initial(a, t);
            else
                send_sotw(a, t, NULL);
            if (wildcard(t) && !a->cur->type_initialized[t] && !sub->wild_deadline_ms &&
                a->cfg.initial_fetch_timeout_ms[t])
                sub->wild_deadline_ms = now_ms(a) + a->cfg.initial_fetch_timeout_ms[t];
            continue;
        }
        size_t n;
        char **names = watch_names(a, t, &n);
        bool same = same_names(sub, names, n);
        free(names);
        if (same) continue;
        if (a->cfg.delta)
            send_delta_diff(a, t);
        else
            send_sotw(a, t, NULL);
    }
}

/* ---- stream events ------------------------------------------------------------------------ */

void xds_ads_stream_open(xds_ads *a, xds_ads_send_fn send, void *send_arg)
{
    a->send = send;
    a->send_arg = send_arg;
    a->open = true;
    a->node_sent = false;
    a->got_response = a->up = false;
    for (int t = 0; t < XDS_NTYPES; t++) sub_reset(&a->sub[t]);
    sync_subscriptions(a);
}

void xds_ads_stream_closed(xds_ads *a)
{
    if (!a->open) return;
    for (int t = 0; t < XDS_NTYPES; t++) {
        if (a->sub[t].requested) inc(&a->stats.type[t].update_failure);
        sub_reset(&a->sub[t]);
    }
    a->open = false;
    a->send = NULL;
    set(&a->stats.connected_state, 0);
    if (a->up && a->cfg.connected) a->cfg.connected(a->cfg.arg, false);
    a->got_response = a->up = false;
}

/* ---- building a candidate ----------------------------------------------------------------- */

/* EDS, RDS, SDS subscriptions follow the accepted CDS and LDS resources; what is no longer
 * referenced is unsubscribed and dropped from the state (Envoy removes it with its watch). */
static void derive_watches(xds_ads *a, struct xds_state *s)
{
    uint64_t now = now_ms(a);
    for (int t = XDS_EDS; t < XDS_NTYPES; t++) {
        if (wildcard(t)) continue;
        char **names = NULL;
        size_t n = 0, cap = 0;
        for (int src = XDS_CDS; src <= XDS_LDS; src += XDS_LDS - XDS_CDS)
            for (size_t i = 0; i < s->types[src]->n; i++)
                xds_res_deps(s->types[src]->res[i], t, &names, &n, &cap);
        if (a->cfg.sds_only && t == XDS_SDS) { /* the caller's subscription */
            names = malloc((a->n_sds_names + 1) * sizeof *names);
            if (!names) abort();
            for (n = 0; n < a->n_sds_names; n++) names[n] = dupstr(a->sds_names[n]);
        }
        uint64_t timeout = a->cfg.initial_fetch_timeout_ms[t];
        xds_state_set_watch(s, t, names, n, timeout ? now + timeout : 0);
        /* Prune resources nobody watches any more. */
        const struct xds_type_table *tb = s->types[t];
        size_t keep = 0;
        for (size_t i = 0; i < tb->n; i++)
            keep += xds_state_watch_find(s, t, tb->res[i]->name) != NULL;
        if (keep == tb->n) continue;
        struct xds_resource **res = malloc((keep + 1) * sizeof *res);
        if (!res) abort();
        keep = 0;
        for (size_t i = 0; i < tb->n; i++)
            if (xds_state_watch_find(s, t, tb->res[i]->name)) res[keep++] = xds_res_ref(tb->res[i]);
        xds_state_set_table(s, t, xds_table_new(tb->version_info, res, keep));
        free(res);
    }
    if (!s->cds_initialized && s->type_initialized[XDS_CDS]) {
        bool warming = false;
        for (size_t i = 0; i < s->n_watch[XDS_EDS]; i++)
            warming |= s->watch[XDS_EDS][i].status == XDS_WATCH_PENDING;
        s->cds_initialized = !warming;
    }
}

static void mark_arrived(struct xds_state *s, enum xds_type t, const char *name)
{
    struct xds_watch *w = xds_state_watch_find(s, t, name);
    if (w) w->status = XDS_WATCH_ARRIVED;
}

static void (*logger)(const char *msg);

void xds_ads_set_logger(void (*fn)(const char *msg))
{
    logger = fn;
}

void xds_ads_warn(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (logger)
        logger(msg);
    else
        fprintf(stderr, "ringside: %s\n", msg);
}

static void write_cache(xds_ads *a)
{
    char err[256];
    if (a->cache_path && xds_cache_write(a->cur, a->cache_path, err, sizeof err) < 0) {
        inc(&a->stats.cache_write_fail);
        xds_ads_warn("%s", err);
    }
}

/* Offers a candidate to the sidecar; on acceptance it becomes current. 0 accepted. */
static int offer(xds_ads *a, struct xds_state *cand, int changed_type, char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = a->cfg.apply ? a->cfg.apply(a->cfg.arg, cand, changed_type, err, errlen) : 0;
    if (rc != 0) {
        if (!err[0]) snprintf(err, errlen, "rejected by the data plane");
        xds_state_unref(cand);
        return -1;
    }
    xds_state_unref(a->cur);
    a->cur = cand;
    write_cache(a);
    return 0;
}

/* The new table of type t: the old one with `add` (owned; replacing same names) and without
 * `removed`; replace_all keeps none of the old (SotW CDS/LDS). A resource whose bytes did not
 * change stays the old object (its version and last_updated are kept, memory shared). For
 * EDS/RDS/SDS, names nobody subscribed to are dropped, as Envoy ignores them. */
static struct xds_type_table *merge_table(xds_ads *a, enum xds_type t, const char *version,
                                          struct xds_resource **add, size_t n_add, char **removed,
                                          size_t n_removed, bool replace_all)
{
    const struct xds_type_table *old = a->cur->types[t];
    struct xds_resource **res = malloc((old->n + n_add + 1) * sizeof *res);
    if (!res) abort();
    size_t n = 0;
    for (size_t i = 0; i < n_add; i++) {
        const struct xds_resource *prev = xds_state_find(a->cur, t, add[i]->name);
        if (!wildcard(t) && !xds_state_watch_find(a->cur, t, add[i]->name)) {
            xds_res_unref(add[i]);
            continue;
        }
        if (prev && prev->len == add[i]->len &&
            memcmp(prev->bytes, add[i]->bytes, prev->len) == 0) {
            xds_res_unref(add[i]);
            res[n++] = xds_res_ref((struct xds_resource *)prev);
        } else {
            res[n++] = add[i];
        }
    }
    size_t n_new = n;
    for (size_t i = 0; !replace_all && i < old->n; i++) {
        const char *name = old->res[i]->name;
        bool gone = false;
        for (size_t j = 0; j < n_new && !gone; j++) gone = strcmp(res[j]->name, name) == 0;
        for (size_t j = 0; j < n_removed && !gone; j++) gone = strcmp(removed[j], name) == 0;
        if (!gone) res[n++] = xds_res_ref(old->res[i]);
    }
    struct xds_type_table *tb = xds_table_new(version, res, n);
    free(res);
    return tb;
}

/* The end of every response: validate-done table (or a decode error) -> candidate -> apply ->
 * ACK/NACK -> subscriptions. arrived: the names the response mentioned. */
static void finish_response(xds_ads *a, enum xds_type t, struct xds_type_table *tb, char **arrived,
                            size_t n_arrived, const char *nonce, const char *decode_err)
{
    struct xds_ads_type_stats *ts = &a->stats.type[t];
    char err[1024];
    int rc = -1;
    inc(&ts->update_attempt);
    if (decode_err) {
        snprintf(err, sizeof err, "%s", decode_err);
    } else {
        struct xds_state *cand = xds_state_clone(a->cur);
        xds_state_set_table(cand, t, tb);
        tb = NULL;
        cand->type_initialized[t] = true;
        cand->from_cache = false;
        a->sub[t].wild_deadline_ms = 0;
        for (size_t i = 0; i < n_arrived; i++) mark_arrived(cand, t, arrived[i]);
        derive_watches(a, cand);
        rc = offer(a, cand, t, err, sizeof err);
    }
    if (tb) xds_table_unref(tb);
    if (rc == 0) {
        inc(&ts->update_success);
        set(&ts->version, fnv64(a->cur->types[t]->version_info));
        set(&ts->update_time, (uint64_t)xds_wall_ms());
    } else {
        inc(&ts->update_rejected);
    }
    if (a->cfg.delta)
        send_delta_ack(a, t, nonce, rc == 0 ? NULL : err);
    else
        send_sotw(a, t, rc == 0 ? NULL : err);
    sync_subscriptions(a);
    xds_ads_timer_changed(a);
}

static int res_name_cmp(const void *x, const void *y)
{
    return strcmp((*(struct xds_resource *const *)x)->name,
                  (*(struct xds_resource *const *)y)->name);
}

/* Decoded resources must have distinct names (Envoy: "duplicate ... found"). */
static const char *find_duplicate(struct xds_resource **res, size_t n)
{
    if (n > 1) qsort(res, n, sizeof *res, res_name_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(res[i - 1]->name, res[i]->name) == 0) return res[i]->name;
    return NULL;
}

/* ---- responses ---------------------------------------------------------------------------- */

static int on_sotw(xds_ads *a, const uint8_t *msg, size_t len)
{
    Response *r = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, msg);
    if (!r) return -1;
    int t = xds_type_from_url(r->type_url);
    if (t < 0 || !a->sub[t].requested) { /* Envoy ignores a type it did not ask for */
        envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
        return 0;
    }
    free(a->sub[t].nonce);
    a->sub[t].nonce = dupstr(r->nonce);
    struct xds_resource **res = calloc(r->n_resources + 1, sizeof *res);
    if (!res) abort();
    char err[768], msgbuf[1024];
    const char *bad = NULL, *version = r->version_info ? r->version_info : "";
    size_t n = 0;
    for (size_t i = 0; i < r->n_resources && !bad; i++) {
        const Google__Protobuf__Any *any = r->resources[i];
        res[n] = xds_res_from_any(t, any->type_url, any->value.data, any->value.len, version, err,
                                  sizeof err);
        if (res[n]) {
            n++;
            continue;
        }
        snprintf(msgbuf, sizeof msgbuf, "%s version %s: resources[%zu]: %s", xds_type_short(t),
                 version, i, err);
        bad = msgbuf;
    }
    const char *dup = bad ? NULL : find_duplicate(res, n);
    if (dup) {
        snprintf(msgbuf, sizeof msgbuf, "%s version %s: duplicate resource name \"%s\"",
                 xds_type_short(t), version, dup);
        bad = msgbuf;
    }
    /* The names this response mentioned, before merge_table takes the resources. */
    char **arrived = calloc(n + 1, sizeof *arrived);
    if (!arrived) abort();
    for (size_t i = 0; i < n; i++) arrived[i] = dupstr(res[i]->name);
    struct xds_type_table *tb = NULL;
    if (!bad)
        tb = merge_table(a, t, version, res, n, NULL, 0, wildcard(t));
    else
        for (size_t i = 0; i < n; i++) xds_res_unref(res[i]);
    free(res);
    finish_response(a, t, tb, arrived, n, r->nonce, bad);
    for (size_t i = 0; i < n; i++) free(arrived[i]);
    free(arrived);
    envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    return 0;
}

static int on_delta(xds_ads *a, const uint8_t *msg, size_t len)
{
    DeltaResponse *r =
        envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, msg);
    if (!r) return -1;
    int t = xds_type_from_url(r->type_url);
    if (t < 0 || !a->sub[t].requested) {
        envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
        return 0;
    }
    struct xds_resource **res = calloc(r->n_resources + 1, sizeof *res);
    size_t n_arrived = 0, n = 0;
    char **arrived = calloc(r->n_resources + r->n_removed_resources + 1, sizeof *arrived);
    if (!res || !arrived) abort();
    char err[768], msgbuf[1024];
    const char *bad = NULL;
    /* system_version_info is for debugging only (xDS protocol): it plays no part in the
     * protocol here; it is only shown as the type's version_info (else the nonce). */
    for (size_t i = 0; i < r->n_resources && !bad; i++) {
        const Envoy__Service__Discovery__V3__Resource *w = r->resources[i];
        if (!w->resource) continue; /* a TTL heartbeat: nothing to update */
        res[n] = xds_res_decode(t, w->resource->value.data, w->resource->value.len, w->version,
                                w->name, err, sizeof err);
        if (res[n] && strcmp(w->resource->type_url ? w->resource->type_url : "", xds_type_url(t))) {
            snprintf(err, sizeof err, "resource of type %s", w->resource->type_url);
            xds_res_unref(res[n]);
            res[n] = NULL;
        }
        if (!res[n]) {
            snprintf(msgbuf, sizeof msgbuf, "%s: resources[%zu] \"%s\": %s", xds_type_short(t), i,
                     w->name ? w->name : "", err);
            bad = msgbuf;
        } else {
            n++;
        }
    }
    const char *dup = bad ? NULL : find_duplicate(res, n);
    if (dup) {
        snprintf(msgbuf, sizeof msgbuf, "%s: duplicate resource name \"%s\"", xds_type_short(t),
                 dup);
        bad = msgbuf;
    }
    for (size_t i = 0; i < n; i++) arrived[n_arrived++] = dupstr(res[i]->name);
    for (size_t i = 0; i < r->n_removed_resources; i++)
        arrived[n_arrived++] = dupstr(r->removed_resources[i]);
    struct xds_type_table *tb = NULL;
    if (!bad)
        tb = merge_table(a, t,
                         r->system_version_info && *r->system_version_info ? r->system_version_info
                                                                           : r->nonce,
                         res, n, r->removed_resources, r->n_removed_resources, false);
    else
        for (size_t i = 0; i < n; i++) xds_res_unref(res[i]);
    free(res);
    finish_response(a, t, tb, arrived, n_arrived, r->nonce, bad);
    for (size_t i = 0; i < n_arrived; i++) free(arrived[i]);
    free(arrived);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    return 0;
}

int xds_ads_on_message(xds_ads *a, const uint8_t *msg, size_t len)
{
    atomic_fetch_add_explicit(&a->stats.rx_bytes, len, memory_order_relaxed);
    int rc = len > a->cfg.max_msg ? -1
             : a->cfg.delta       ? on_delta(a, msg, len)
                                  : on_sotw(a, msg, len);
    if (rc < 0) {
        inc(&a->stats.rx_malformed);
        return -1;
    }
    a->got_response = true;
    xds_ads_stream_up(a);
    return 0;
}

void xds_ads_stream_up(xds_ads *a)
{
    if (!a->open || a->up) return;
    a->up = true;
    set(&a->stats.connected_state, 1);
    if (a->cfg.connected) a->cfg.connected(a->cfg.arg, true);
}

void xds_ads_set_sds_names(xds_ads *a, const char *const *names, size_t n)
{
    bool same = n == a->n_sds_names;
    for (size_t i = 0; same && i < n; i++) same = strcmp(names[i], a->sds_names[i]) == 0;
    if (same) return;
    for (size_t i = 0; i < a->n_sds_names; i++) free(a->sds_names[i]);
    free(a->sds_names);
    a->sds_names = malloc((n + 1) * sizeof *a->sds_names);
    if (!a->sds_names) abort();
    for (size_t i = 0; i < n; i++) a->sds_names[i] = dupstr(names[i]);
    a->n_sds_names = n;
    /* only the watch list changes (and secrets nobody names are dropped): no resource arrived,
     * so nothing is offered to the sidecar */
    struct xds_state *s = xds_state_clone(a->cur);
    derive_watches(a, s);
    xds_state_unref(a->cur);
    a->cur = s;
    sync_subscriptions(a);
    xds_ads_timer_changed(a);
}

/* ---- initial fetch timeouts --------------------------------------------------------------- */

uint64_t xds_ads_on_timer(xds_ads *a)
{
    uint64_t now = now_ms(a);
    struct xds_state *cand = NULL;
    int changed = -1;
    for (int t = 0; t < XDS_NTYPES; t++) {
        struct xds_ads_sub *sub = &a->sub[t];
        if (wildcard(t) && sub->wild_deadline_ms && sub->wild_deadline_ms <= now) {
            sub->wild_deadline_ms = 0;
            if (!a->cur->type_initialized[t]) {
                if (!cand) cand = xds_state_clone(a->cur);
                cand->type_initialized[t] = true;
                inc(&a->stats.type[t].init_fetch_timeout);
                changed = changed < 0 ? t : changed;
            }
        }
        for (size_t i = 0; i < a->cur->n_watch[t]; i++) {
            const struct xds_watch *w = &a->cur->watch[t][i];
            if (w->status != XDS_WATCH_PENDING || !w->deadline_ms) continue;
            if (w->deadline_ms > now) continue;
            if (!cand) cand = xds_state_clone(a->cur);
            xds_state_watch_find(cand, t, w->name)->status = XDS_WATCH_TIMED_OUT;
            inc(&a->stats.type[t].init_fetch_timeout);
            changed = changed < 0 ? t : changed;
        }
    }
    if (cand) {
        char err[256];
        derive_watches(a, cand);
        if (offer(a, cand, changed, err, sizeof err) < 0)
            xds_ads_warn("xds: initial fetch timeout state rejected: %s", err);
        sync_subscriptions(a);
    }
    return xds_ads_next_deadline(a);
}

uint64_t xds_ads_next_deadline(const xds_ads *a)
{
    uint64_t next = 0;
    for (int t = 0; t < XDS_NTYPES; t++) {
        uint64_t d = a->sub[t].wild_deadline_ms;
        if (d && (!next || d < next)) next = d;
        for (size_t i = 0; i < a->cur->n_watch[t]; i++) {
            const struct xds_watch *w = &a->cur->watch[t][i];
            if (w->status == XDS_WATCH_PENDING && w->deadline_ms &&
                (!next || w->deadline_ms < next))
                next = w->deadline_ms;
        }
    }
    return next;
}

/* ---- cache -------------------------------------------------------------------------------- */

int xds_ads_load_cache(xds_ads *a, const char *path, char *err, size_t errlen)
{
    struct xds_state *s = xds_cache_read(path, err, errlen);
    if (!s) return -1;
    derive_watches(a, s);
    /* The cached state was accepted as a whole: nothing in it is still warming. */
    for (int t = 0; t < XDS_NTYPES; t++) {
        s->type_initialized[t] = true;
        for (size_t i = 0; i < s->n_watch[t]; i++) s->watch[t][i].status = XDS_WATCH_ARRIVED;
    }
    s->cds_initialized = true;
    char *keep = a->cache_path; /* the file we just read needs no rewrite */
    a->cache_path = NULL;
    int rc = offer(a, s, -1, err, errlen);
    a->cache_path = keep;
    return rc;
}
