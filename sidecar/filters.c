/* The filter decision table (see filters.h) and the checks behind the decisions that depend on a
 * filter's configuration. The reasons here are what a NACK's error_detail and /config_dump say,
 * and what xds/README.md's filter table repeats. */
#include "sidecar/filters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/ext_authz/v3/ext_authz.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/set_filter_state/v3/set_filter_state.pb-c.h"
#include "udpa/type/v1/typed_struct.pb-c.h"
#include "xds/any.h"
#include "xds/registry.h"
#include "xds/type/v3/typed_struct.pb-c.h"

/* What a check sees: the decoded message when its type is generated, and for opaque types
 * whether the configuration is empty (no bytes, or a TypedStruct with no fields). */
struct fcfg {
    const ProtobufCMessage *msg;
    bool empty;
};

typedef enum rs_filter_verdict (*check_fn)(const struct fcfg *c, char *why, size_t len);

struct entry {
    enum rs_filter_kind kind;
    const char *name;
    const char *type;
    enum rs_filter_verdict verdict;
    enum rs_filter_id id;
    const char *reason;
    check_fn check; /* may change the verdict (and write a more precise reason) */
};

/* ---- config-dependent decisions -------------------------------------------------------------- */

/* RBAC is enforced (sidecar/rbac.c compiles rules and shadow rules; what it cannot evaluate,
 * such as CEL conditions or metadata principals, fails that compile with the field's path). The
 * unified matcher form is not implemented: refused by name, never skipped. */
static enum rs_filter_verdict rbac_matchers(const void *matcher, const void *shadow_matcher,
                                            char *why, size_t len)
{
    const char *f = matcher ? "matcher" : shadow_matcher ? "shadow_matcher" : NULL;
    if (!f) return RS_FILTER_IMPLEMENTED;
    snprintf(why, len,
             "%s: the unified matcher form of RBAC is not implemented; skipping it would let "
             "denied traffic through",
             f);
    return RS_FILTER_REFUSED;
}

static enum rs_filter_verdict check_rbac_http(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *r = (const void *)c->msg;
    return rbac_matchers(r->matcher, r->shadow_matcher, why, len);
}

static enum rs_filter_verdict check_rbac_net(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Network__Rbac__V3__RBAC *r = (const void *)c->msg;
    return rbac_matchers(r->matcher, r->shadow_matcher, why, len);
}

/* RBACPerRoute replaces the filter's configuration on the route; without `rbac` it disables the
 * filter there (both implemented). */
static enum rs_filter_verdict check_rbac_route(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Http__Rbac__V3__RBACPerRoute *r = (const void *)c->msg;
    if (!r->rbac) return RS_FILTER_IMPLEMENTED;
    return rbac_matchers(r->rbac->matcher, r->rbac->shadow_matcher, why, len);
}

/* Istio adds the fault filter to every HTTP chain; it only acts when a delay, an abort or a
 * response rate limit is configured (on the filter or, from a VirtualService, per route). */
static enum rs_filter_verdict check_fault(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *f = (const void *)c->msg;
    const char *active = f->delay                 ? "delay"
                         : f->abort               ? "abort"
                         : f->response_rate_limit ? "response_rate_limit"
                                                  : NULL;
    if (!active) return RS_FILTER_SKIPPED;
    snprintf(why, len, "%s: fault injection is not implemented yet", active);
    return RS_FILTER_REFUSED;
}

static enum rs_filter_verdict check_ext_authz_route(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Http__ExtAuthz__V3__ExtAuthzPerRoute *r =
        (const void *)c->msg;
    if (r->override_case ==
            ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_AUTHZ__V3__EXT_AUTHZ_PER_ROUTE__OVERRIDE_DISABLED &&
        r->disabled)
        return RS_FILTER_SKIPPED;
    snprintf(why, len, "check_settings: external authorization is not implemented");
    return RS_FILTER_REFUSED;
}

/* Filter-state keys Istio sets for its own telemetry and identity plumbing, read only by Istio's
 * filters (which Ringside skips). Any other key may steer routing (envoy.tcp_proxy.cluster,
 * envoy.network.*, envoy.upstream.*): refused. */
static enum rs_filter_verdict check_set_filter_state(const struct fcfg *c, char *why, size_t len)
{
    const Envoy__Extensions__Filters__Network__SetFilterState__V3__Config *s = (const void *)c->msg;
    for (size_t i = 0; i < s->n_on_new_connection; i++) {
        const char *k = s->on_new_connection[i]->object_key;
        if (!k) k = "";
        if (strncmp(k, "io.istio.", 9) == 0 || strncmp(k, "istio.", 6) == 0) continue;
        snprintf(why, len,
                 "on_new_connection[%zu].object_key \"%s\": setting this filter state "
                 "may change routing and is not implemented",
                 i, k);
        return RS_FILTER_REFUSED;
    }
    return RS_FILTER_SKIPPED;
}

/* istio_authn records the mTLS peer identity for later filters; with no TLS there is none, and
 * an empty config has nothing else to do. A config with policy (the old HTTP authn filter's
 * origins/peers) is authentication Ringside cannot enforce. */
static enum rs_filter_verdict check_empty(const struct fcfg *c, char *why, size_t len)
{
    if (c->empty) return RS_FILTER_SKIPPED;
    snprintf(why, len, "carries an authentication policy Ringside cannot enforce");
    return RS_FILTER_REFUSED;
}

/* ---- the table ----------------------------------------------------------------------------- */

#define L RS_FILTER_LISTENER
#define N RS_FILTER_NETWORK
#define H RS_FILTER_HTTP
#define R RS_FILTER_ROUTE
#define IMPL RS_FILTER_IMPLEMENTED
#define SKIP RS_FILTER_SKIPPED
#define NACK RS_FILTER_REFUSED

static const char TELEMETRY[] =
    "telemetry only (Istio's stats and metadata exchange): cannot change what traffic is allowed "
    "or where it goes";
static const char AUTHZ[] =
    "an authorization filter Ringside cannot enforce: skipping it would let denied traffic "
    "through";

static const struct entry table[] = {
    {L, "envoy.filters.listener.tls_inspector",
     "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector", IMPL, RS_FID_TLS_INSPECTOR,
     "the ClientHello sets transport_protocol \"tls\", the server name and ALPN for chain matching",
     NULL},
    {L, "envoy.filters.listener.http_inspector",
     "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector", IMPL,
     RS_FID_HTTP_INSPECTOR,
     "a plaintext connection's first request line sets application protocol http/1.0, http/1.1 or "
     "h2c (the HTTP/2 preface) for chain matching",
     NULL},
    {L, "envoy.filters.listener.original_dst",
     "envoy.extensions.filters.listener.original_dst.v3.OriginalDst", IMPL, RS_FID_ORIGINAL_DST,
     "the connection's original destination (SO_ORIGINAL_DST) becomes its local address", NULL},
    {N, "envoy.filters.network.http_connection_manager",
     "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", IMPL,
     RS_FID_HCM, "", NULL},
    {N, "envoy.filters.network.tcp_proxy", "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
     IMPL, RS_FID_TCP_PROXY, "", NULL},
    {N, "envoy.filters.network.connection_limit",
     "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit", IMPL,
     RS_FID_CONNECTION_LIMIT, "", NULL},
    {N, "envoy.filters.network.rbac", "envoy.extensions.filters.network.rbac.v3.RBAC", IMPL,
     RS_FID_RBAC,
     "rules enforced once per connection when the peer is known (at accept, or at the end of the "
     "TLS handshake), shadow_rules counted; the unified matcher is refused",
     check_rbac_net},
    {N, "envoy.filters.network.set_filter_state",
     "envoy.extensions.filters.network.set_filter_state.v3.Config", SKIP, RS_FID_OTHER,
     "sets only Istio's own filter-state keys (io.istio.*, istio.*), read by skipped filters",
     check_set_filter_state},
    {N, "istio.metadata_exchange", "envoy.tcp.metadataexchange.config.MetadataExchange", SKIP,
     RS_FID_OTHER, TELEMETRY, NULL},
    {N, "istio.stats", "stats.PluginConfig", SKIP, RS_FID_OTHER, TELEMETRY, NULL},
    {N, "istio_authn", "io.istio.network.authn.Config", SKIP, RS_FID_OTHER,
     "records the mTLS peer identity for later filters; without TLS there is none", check_empty},
    {N, "envoy.filters.network.ext_authz", "envoy.extensions.filters.network.ext_authz.v3.ExtAuthz",
     NACK, RS_FID_OTHER, AUTHZ, NULL},
    {N, "envoy.filters.network.wasm", "envoy.extensions.filters.network.wasm.v3.Wasm", NACK,
     RS_FID_OTHER, "Wasm plugins are not supported: their effect on traffic cannot be known", NULL},
    {H, "envoy.filters.http.router", "envoy.extensions.filters.http.router.v3.Router", IMPL,
     RS_FID_ROUTER, "", NULL},
    {H, "envoy.filters.http.buffer", "envoy.extensions.filters.http.buffer.v3.Buffer", IMPL,
     RS_FID_BUFFER, "", NULL},
    {H, "envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.Cors", SKIP, RS_FID_OTHER,
     "without a CorsPolicy the CORS filter changes nothing (a route's CorsPolicy is refused)",
     NULL},
    {H, "envoy.filters.http.fault", "envoy.extensions.filters.http.fault.v3.HTTPFault", SKIP,
     RS_FID_OTHER, "no active fault (delay, abort, response_rate_limit)", check_fault},
    {H, "envoy.filters.http.grpc_stats", "envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
     SKIP, RS_FID_OTHER, "gRPC statistics only", NULL},
    {H, "envoy.filters.http.rbac", "envoy.extensions.filters.http.rbac.v3.RBAC", IMPL, RS_FID_RBAC,
     "rules enforced after the route match (403 \"RBAC: access denied\"), shadow_rules counted; "
     "the unified matcher is refused",
     check_rbac_http},
    {H, "envoy.filters.http.ext_authz", "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", NACK,
     RS_FID_OTHER, AUTHZ, NULL},
    {H, "envoy.filters.http.jwt_authn",
     "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication", NACK, RS_FID_OTHER,
     "request authentication Ringside cannot enforce", NULL},
    {H, "envoy.filters.http.local_ratelimit",
     "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", NACK, RS_FID_OTHER,
     "rate limiting is not implemented (it changes what traffic is allowed)", NULL},
    {H, "envoy.filters.http.ratelimit", "envoy.extensions.filters.http.ratelimit.v3.RateLimit",
     NACK, RS_FID_OTHER, "rate limiting is not implemented (it changes what traffic is allowed)",
     NULL},
    {H, "envoy.filters.http.wasm", "envoy.extensions.filters.http.wasm.v3.Wasm", NACK, RS_FID_OTHER,
     "Wasm plugins are not supported: their effect on traffic cannot be known", NULL},
    {H, "envoy.filters.http.compressor", "envoy.extensions.filters.http.compressor.v3.Compressor",
     SKIP, RS_FID_OTHER,
     "responses go out uncompressed: the encoding is negotiated, so clients get identity; routing "
     "and access are unchanged",
     NULL},
    {H, "istio.metadata_exchange", "io.istio.http.metadata_exchange.Config", SKIP, RS_FID_OTHER,
     TELEMETRY, NULL},
    {H, "io.istio.http.peer_metadata", "io.istio.http.peer_metadata.Config", SKIP, RS_FID_OTHER,
     TELEMETRY, NULL},
    {H, "istio.stats", "stats.PluginConfig", SKIP, RS_FID_OTHER, TELEMETRY, NULL},
    {H, "istio.alpn", "istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig", IMPL,
     RS_FID_ISTIO_ALPN,
     "the connection manager's upstream TLS connections offer the alpn_override of HTTP11 "
     "(istio-http/1.1, ...) instead of the cluster's alpn_protocols, so the server's sidecar "
     "picks its HTTP chain",
     NULL},
    {H, "istio_authn", "istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig", SKIP,
     RS_FID_OTHER, "empty: no authentication policy", check_empty},
    {R, "envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.CorsPolicy", NACK,
     RS_FID_OTHER, "CORS policies are not implemented yet", NULL},
    {R, "envoy.filters.http.fault", "envoy.extensions.filters.http.fault.v3.HTTPFault", SKIP,
     RS_FID_OTHER, "no active fault (delay, abort, response_rate_limit)", check_fault},
    {R, "envoy.filters.http.rbac", "envoy.extensions.filters.http.rbac.v3.RBACPerRoute", IMPL,
     RS_FID_RBAC, "replaces the RBAC filter's rules on the route (without rbac: disables it)",
     check_rbac_route},
    {R, "envoy.filters.http.ext_authz",
     "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", SKIP, RS_FID_OTHER,
     "disables external authorization on the route", check_ext_authz_route},
    {R, "envoy.filters.http.compressor",
     "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute", SKIP, RS_FID_OTHER,
     "compression is not performed (see the compressor filter)", NULL},
    {R, "envoy.filters.http.buffer", "envoy.extensions.filters.http.buffer.v3.BufferPerRoute", NACK,
     RS_FID_OTHER, "per-route buffer settings are not implemented yet", NULL},
};

#undef L
#undef N
#undef H
#undef R

static const char *strip_url(const char *url)
{
    const char *s = url ? strrchr(url, '/') : NULL;
    return s ? s + 1 : url ? url : "";
}

static const struct entry *find(enum rs_filter_kind kind, const char *name, const char *type)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].kind == kind && type[0] && strcmp(table[i].type, type) == 0) return &table[i];
    /* only when the type is unknown to the table (opaque, or absent): the filter's name */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].kind == kind && name && strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

static bool is_typed_struct(const char *type)
{
    return strcmp(type, "udpa.type.v1.TypedStruct") == 0 ||
           strcmp(type, "xds.type.v3.TypedStruct") == 0;
}

/* The type a TypedStruct wraps (a static copy) and whether its value has fields. */
static const char *typed_struct_inner(const Google__Protobuf__Any *cfg, bool *empty, char *buf,
                                      size_t len)
{
    const char *type = strip_url(cfg->type_url);
    const ProtobufCMessageDescriptor *d = xds_registry_find(type);
    ProtobufCMessage *m =
        d ? protobuf_c_message_unpack(d, NULL, cfg->value.len, cfg->value.data) : NULL;
    if (!m) return NULL;
    /* both TypedStructs: type_url = 1, value = 2 */
    const Udpa__Type__V1__TypedStruct *ts = (const void *)m;
    snprintf(buf, len, "%s", strip_url(ts->type_url));
    *empty = !ts->value || ts->value->n_fields == 0;
    protobuf_c_message_free_unpacked(m, NULL);
    return buf;
}

static void decide_wrapped(enum rs_filter_kind kind, const char *name,
                           const Google__Protobuf__Any *cfg, bool is_optional,
                           struct rs_filter_decision *out);

void rs_filter_decide(enum rs_filter_kind kind, const char *name, const Google__Protobuf__Any *cfg,
                      bool is_optional, struct rs_filter_decision *out)
{
    memset(out, 0, sizeof *out);
    out->type = "";
    /* A route's envoy.config.route.v3.FilterConfig wraps the real per-filter config. */
    if (kind == RS_FILTER_ROUTE && cfg &&
        strcmp(strip_url(cfg->type_url), "envoy.config.route.v3.FilterConfig") == 0) {
        char err[200];
        ProtobufCMessage *m = xds_any_unpack(cfg, NULL, err, sizeof err);
        if (!m) {
            out->verdict = RS_FILTER_REFUSED;
            snprintf(out->reason, sizeof out->reason, "%s", err);
            return;
        }
        const Envoy__Config__Route__V3__FilterConfig *fc = (const void *)m;
        if (fc->disabled) {
            out->verdict = RS_FILTER_SKIPPED;
            out->id = RS_FID_OTHER;
            snprintf(out->reason, sizeof out->reason, "disables the filter on this route");
        } else if (!fc->config) {
            out->verdict = RS_FILTER_SKIPPED;
            out->id = RS_FID_OTHER;
            snprintf(out->reason, sizeof out->reason, "no per-route configuration");
        } else {
            decide_wrapped(kind, name, fc->config, is_optional || fc->is_optional, out);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    decide_wrapped(kind, name, cfg, is_optional, out);
}

static void decide_wrapped(enum rs_filter_kind kind, const char *name,
                           const Google__Protobuf__Any *cfg, bool is_optional,
                           struct rs_filter_decision *out)
{
    static _Thread_local char inner[256];
    const char *type = cfg ? strip_url(cfg->type_url) : "";
    bool empty = !cfg || cfg->value.len == 0;
    if (is_typed_struct(type)) {
        type = typed_struct_inner(cfg, &empty, inner, sizeof inner);
        if (!type) {
            out->verdict = RS_FILTER_REFUSED;
            snprintf(out->reason, sizeof out->reason, "typed_config: malformed TypedStruct");
            return;
        }
    }
    const struct entry *e = find(kind, name, type);
    out->type = e && e->type[0] && strcmp(e->type, type) == 0 ? e->type : type;
    const ProtobufCMessageDescriptor *d = type[0] ? xds_registry_find(type) : NULL;
    if (!e) {
        out->id = RS_FID_UNKNOWN;
        if (is_optional) {
            out->verdict = RS_FILTER_SKIPPED;
            snprintf(out->reason, sizeof out->reason,
                     "not supported, and marked optional (skipped as Envoy skips it)");
        } else {
            out->verdict = RS_FILTER_REFUSED;
            snprintf(out->reason, sizeof out->reason, "%s %s%s%s is not supported",
                     kind == RS_FILTER_LISTENER  ? "listener filter"
                     : kind == RS_FILTER_NETWORK ? "network filter"
                     : kind == RS_FILTER_HTTP    ? "HTTP filter"
                                                 : "per-route config of filter",
                     name ? name : "", type[0] ? " of type " : "", type);
        }
        return;
    }
    out->id = e->id;
    out->verdict = e->verdict;
    snprintf(out->reason, sizeof out->reason, "%s", e->reason);
    if (!cfg || !d || out->verdict == RS_FILTER_REFUSED) {
        /* opaque (or no config): only the opaque checks can run */
        if (e->check == check_empty) {
            struct fcfg c = {.msg = NULL, .empty = empty};
            out->verdict = e->check(&c, out->reason, sizeof out->reason);
        } else if (e->check && out->verdict != RS_FILTER_REFUSED && cfg) {
            out->verdict = RS_FILTER_REFUSED;
            snprintf(out->reason, sizeof out->reason, "typed_config: type %s cannot be decoded",
                     type);
        }
        return;
    }
    char err[200];
    ProtobufCMessage *m = xds_any_unpack(cfg, d, err, sizeof err);
    if (!m) {
        out->verdict = RS_FILTER_REFUSED;
        snprintf(out->reason, sizeof out->reason, "typed_config: %s", err);
        return;
    }
    if (e->check) {
        struct fcfg c = {.msg = m, .empty = empty};
        out->verdict = e->check(&c, out->reason, sizeof out->reason);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

/* ---- skipped list -------------------------------------------------------------------------- */

static char *dup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort(); /* control path */
    return d;
}

void rs_skipped_add(struct rs_skipped_list *l, const char *where, const char *name,
                    const struct rs_filter_decision *d)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort(); /* control path */
    }
    l->v[l->n++] = (struct rs_skipped_filter){
        .where = dup(where), .name = dup(name), .type = dup(d->type), .reason = dup(d->reason)};
}

void rs_skipped_free(struct rs_skipped_list *l)
{
    for (uint32_t i = 0; i < l->n; i++) {
        free(l->v[i].where);
        free(l->v[i].name);
        free(l->v[i].type);
        free(l->v[i].reason);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

bool rs_filter_table_at(size_t i, enum rs_filter_kind *kind, const char **name, const char **type,
                        enum rs_filter_verdict *verdict, const char **reason)
{
    if (i >= sizeof table / sizeof table[0]) return false;
    *kind = table[i].kind;
    *name = table[i].name;
    *type = table[i].type;
    *verdict = table[i].verdict;
    *reason = table[i].reason;
    return true;
}

const char *rs_filter_verdict_name(enum rs_filter_verdict v)
{
    switch (v) {
    case RS_FILTER_IMPLEMENTED:
        return "implemented";
    case RS_FILTER_SKIPPED:
        return "skipped";
    default:
        return "refused";
    }
}
