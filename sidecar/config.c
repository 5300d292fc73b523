/* Compiles an Envoy v3 bootstrap into the immutable snapshot the workers read: listeners with
 * filter chains (filters decided by sidecar/filters.c), HTTP connection managers with compiled
 * route tables (inline or RDS), TCP proxies, access logs, and the snapshot's lifetime. Clusters
 * and host sets are config_cluster.c's, xDS resources config_xds.c's, chain selection
 * chain_match.c's. Anything that would change behaviour and is not implemented is an error naming
 * its field, never silently ignored. */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/un.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "envoy/extensions/filters/http/buffer/v3/buffer.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/connection_limit/v3/connection_limit.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "udpa/type/v1/typed_struct.pb-c.h"
#include "sidecar/access_log.h"
#include "sidecar/config_impl.h"
#include "sidecar/dns.h"
#include "sidecar/log.h"
#include "sidecar/rbac.h"
#include "sidecar/router.h"
#include "sidecar/secrets.h"
#include "sidecar/tls.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "xds/any.h"

/* Envoy still accepts its deprecated fields (format, text_format, cluster-level protocol
 * options), so configs in the wild use them: reading them is deliberate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager Hcm;
typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy TcpProxy;
typedef Envoy__Config__Accesslog__V3__AccessLog AccessLog;
typedef Envoy__Config__Core__V3__SubstitutionFormatString FormatString;

uint32_t rs_duration_ms(const void *duration, uint32_t dflt)
{
    const Google__Protobuf__Duration *d = duration;
    if (!d) return dflt;
    uint64_t ms = (uint64_t)(d->seconds < 0 ? 0 : d->seconds) * 1000 +
                  (uint64_t)(d->nanos < 0 ? 0 : d->nanos) / 1000000;
    if (ms == 0 && d->nanos > 0) ms = 1;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

void rs_addr_str(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, cap, "%s", ((const struct sockaddr_un *)sa)->sun_path);
    } else {
        snprintf(out, cap, "unknown");
    }
}

int rs_cfg_ip_port(const char *ip, uint32_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (void *)ss;
    struct sockaddr_in6 *in6 = (void *)ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *len = sizeof *in;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

int rs_cfg_socket_address(struct cctx *cx, const Envoy__Config__Core__V3__Address *a,
                          const char *field, bool need_ip,
                          const Envoy__Config__Core__V3__SocketAddress **out)
{
    if (!a || a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return fail(cx, field,
                    "a socket_address is required (pipe and internal addresses are "
                    "not supported)");
    const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
    if (sa->protocol != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PROTOCOL__TCP)
        return fail(cx, field, "only TCP socket addresses are supported");
    if (sa->port_specifier_case !=
            ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE ||
        sa->port_value > 65535)
        return fail(cx, field, "port_value (0-65535) is required");
    if (!sa->address || !sa->address[0]) return fail(cx, field, "address is required");
    struct sockaddr_storage ss;
    socklen_t len;
    if (need_ip && rs_cfg_ip_port(sa->address, sa->port_value, &ss, &len) != 0)
        return fail(cx, field, "\"%s\" is not an IP address", sa->address);
    *out = sa;
    return 0;
}

/* ---- shared helpers ------------------------------------------------------------------------ */

rs_stat_id rs_cfg_stat(const char *prefix, const char *name, const char *leaf,
                       enum rs_stat_kind kind)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s.%s", prefix, name, leaf);
    return rs_stats_register(full, kind);
}

/* A TLS context's common part with its SDS secrets substituted (rs_secrets_subst), built by
 * `build`, then put back. Returns 0 (*ctx set, or NULL when r->dry), 1 when a secret has not
 * arrived (r->pending), -1 with the error in cx. */
static int build_tls(struct cctx *cx, ProtobufCMessage *m,
                     Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *c,
                     struct rs_tls_resolve *r, struct rs_tls_ctx **ctx)
{
    struct rs_tls_subst u;
    int ret = rs_secrets_subst(cx, c, &u, &r->fp);
    if (ret) {
        if (ret > 0) r->pending = true;
        return ret;
    }
    if (!r->dry && ctx) {
        char e[512];
        bool server =
            m->descriptor ==
            &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor;
        /* a server context built from the same definition and secrets is reused (control
         * thread compiles: swept after each); a client context is its cluster's alone */
        uint8_t *def = NULL;
        size_t len = 0;
        if (server && cx->in) {
            len = protobuf_c_message_get_packed_size(m);
            def = xcalloc(1, len + 1);
            protobuf_c_message_pack(m, def);
            *ctx = rs_secrets_ctx_find(def, len, r->fp);
        }
        if (!*ctx) {
            *ctx = server ? rs_tls_ctx_server((const void *)m, e, sizeof e)
                          : rs_tls_ctx_client((const void *)m, e, sizeof e);
            if (!*ctx) ret = fail(cx, "", "%s", e);
            if (*ctx && def) rs_secrets_ctx_put(def, len, r->fp, *ctx);
        }
        free(def);
    }
    rs_secrets_undo(c, &u);
    return ret;
}

int rs_cfg_transport_is_tls(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool *tls)
{
    struct rs_tls_resolve r = {.dry = true};
    return rs_cfg_transport_client(cx, ts, field, tls, NULL, &r);
}

int rs_cfg_transport_client(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool *tls, struct rs_tls_ctx **ctx,
                            struct rs_tls_resolve *r)
{
    *tls = false;
    if (ctx) *ctx = NULL;
    if (!ts) return 0;
    size_t old = path_push(cx, "%s", field);
    int ret = 0;
    if (ts->config_type_case !=
        ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG) {
        ret = fail(cx, "typed_config", "is required");
        goto out;
    }
    char err[256];
    ProtobufCMessage *m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err);
    if (!m) {
        ret = fail(cx, "typed_config", "%s", err);
        goto out;
    }
    bool raw = m->descriptor ==
               &envoy__extensions__transport_sockets__raw_buffer__v3__raw_buffer__descriptor;
    *tls = m->descriptor ==
           &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor;
    if (*tls) {
        /* built now (secrets substituted, certificates read, validation set up), shared by every
         * connection of the cluster; its errors name the field. A secret that has not arrived
         * leaves *ctx NULL with r->pending: the cluster warms. */
        Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u = (void *)m;
        size_t o2 = path_push(cx, "typed_config");
        struct rs_tls_resolve dry = {.dry = true};
        if (build_tls(cx, m, u->common_tls_context, r ? r : &dry, ctx) < 0) ret = -1;
        path_pop(cx, o2);
    }
    if (!raw && !*tls)
        ret = fail(cx, "typed_config",
                   "a cluster's transport socket is raw_buffer or an UpstreamTlsContext, not %s",
                   m->descriptor->name);
    protobuf_c_message_free_unpacked(m, NULL);
out:
    path_pop(cx, old);
    return ret;
}

/* A filter chain's transport socket: raw_buffer, or TLS terminated with a server context built
 * from its DownstreamTlsContext (SDS secrets substituted; one that has not arrived sets
 * cx->warming: the listener is compiled but not served, as Envoy's SDS init target). An HTTP
 * chain serves HTTP/1.1 only, so "h2" is left out of the ALPN it offers (a client that also
 * offers http/1.1 gets that; Envoy would pick h2). */
int rs_cfg_transport_server(struct cctx *cx, const Envoy__Config__Core__V3__TransportSocket *ts,
                            const char *field, bool http, struct rs_tls_ctx **ctx)
{
    *ctx = NULL;
    if (!ts) return 0;
    size_t old = path_push(cx, "%s", field);
    int ret = 0;
    char err[512];
    ProtobufCMessage *m = NULL;
    if (ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG)
        ret = fail(cx, "typed_config", "is required");
    else if (!(m = xds_any_unpack(ts->typed_config, NULL, err, sizeof err)))
        ret = fail(cx, "typed_config", "%s", err);
    if (!m) goto out;
    if (m->descriptor ==
        &envoy__extensions__transport_sockets__raw_buffer__v3__raw_buffer__descriptor)
        goto done;
    if (m->descriptor !=
        &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor) {
        ret = fail(cx, "typed_config",
                   "a listener's transport socket is raw_buffer or a "
                   "DownstreamTlsContext, not %s",
                   m->descriptor->name);
        goto done;
    }
    Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d = (void *)m;
    Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *c = d->common_tls_context;
    size_t nalpn = c ? c->n_alpn_protocols : 0, kept = 0;
    for (size_t i = 0; http && i < nalpn; i++) /* h2 to the end, out of the count */
        if (strcmp(c->alpn_protocols[i], "h2") != 0) {
            char *t = c->alpn_protocols[kept];
            c->alpn_protocols[kept++] = c->alpn_protocols[i];
            c->alpn_protocols[i] = t;
        }
    if (http && c) c->n_alpn_protocols = kept;
    struct rs_tls_resolve r = {0};
    size_t o2 = path_push(cx, "typed_config");
    int b = build_tls(cx, m, c, &r, ctx);
    path_pop(cx, o2);
    if (c) c->n_alpn_protocols = nalpn;
    if (b < 0) ret = -1;
    if (b > 0) cx->warming = true; /* its secrets have not arrived */
done:
    protobuf_c_message_free_unpacked(m, NULL);
out:
    path_pop(cx, old);
    return ret;
}

/* ---- access logs --------------------------------------------------------------------------- */

static struct rs_access_log *format_log(struct cctx *cx, enum rs_access_sink sink, const char *path,
                                        const FormatString *fs, const char *legacy_text)
{
    char err[256];
    const char *text = legacy_text && legacy_text[0] ? legacy_text : NULL;
    const char **keys = NULL, **formats = NULL;
    size_t njson = 0;
    struct rs_access_log *log = NULL;
    if (fs) {
        if (fs->n_formatters) {
            fail(cx, "log_format.formatters", "custom formatters are not supported");
            return NULL;
        }
        switch (fs->format_case) {
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT:
            text = fs->text_format;
            break;
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE:
            if (fs->text_format_source->specifier_case !=
                ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING) {
                fail(cx, "log_format.text_format_source", "only inline_string is supported");
                return NULL;
            }
            text = fs->text_format_source->inline_string;
            break;
        case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT: {
            const Google__Protobuf__Struct *st = fs->json_format;
            njson = st->n_fields;
            keys = xcalloc(njson, sizeof *keys);
            formats = xcalloc(njson, sizeof *formats);
            for (size_t i = 0; i < njson; i++) {
                const Google__Protobuf__Value *v = st->fields[i]->value;
                if (!v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE) {
                    fail(cx, "log_format.json_format", "value of \"%s\" must be a string",
                         st->fields[i]->key);
                    goto out;
                }
                keys[i] = st->fields[i]->key;
                formats[i] = v->string_value;
            }
            break;
        }
        default:
            break;
        }
    }
    log = rs_access_log_create(sink, path, text, keys, formats, njson, err, sizeof err);
    if (!log) fail(cx, "log_format", "%s", err);
out:
    free(keys);
    free(formats);
    return log;
}

/* The request headers an HCM's logs name that a stream does not keep anyway (hcm.c keeps
 * these for routing and its own needs). */
static int hcm_log_headers(struct cctx *cx, struct rs_hcm_cfg *h)
{
    static const char *const kept[] = {
        ":method",         ":path",        ":authority",           "host", ":scheme", "user-agent",
        "x-forwarded-for", "x-request-id", "x-envoy-original-path"};
    for (uint32_t i = 0; i < h->nlogs; i++) {
        const char *names[RS_HCM_LOG_HDRS_MAX + 1];
        size_t n = rs_access_log_req_headers(h->logs[i], names, RS_HCM_LOG_HDRS_MAX + 1);
        for (size_t k = 0; k < n; k++) {
            bool known = false;
            for (size_t j = 0; j < sizeof kept / sizeof kept[0] && !known; j++)
                known = strcmp(names[k], kept[j]) == 0;
            for (uint32_t j = 0; j < h->nlog_hdrs && !known; j++)
                known = strcmp(names[k], h->log_hdrs[j]) == 0;
            if (known) continue;
            if (h->nlog_hdrs == RS_HCM_LOG_HDRS_MAX)
                return fail(cx, "access_log", "more than %d distinct request headers in %%REQ()%%",
                            RS_HCM_LOG_HDRS_MAX);
            h->log_hdrs[h->nlog_hdrs++] = names[k];
        }
    }
    return 0;
}

static int compile_access_logs(struct cctx *cx, AccessLog **als, size_t n,
                               struct rs_access_log ***out_logs, uint32_t **out_idx,
                               uint32_t *out_n)
{
    struct rs_snapshot *s = cx->snap;
    *out_logs = xcalloc(n, sizeof **out_logs);
    *out_idx = xcalloc(n, sizeof **out_idx);
    for (size_t i = 0; i < n; i++) {
        const AccessLog *al = als[i];
        size_t old = path_push(cx, "access_log[%zu]", i);
        uint32_t flag_filter = 0;
        if (al->filter) {
            const Envoy__Config__Accesslog__V3__AccessLogFilter *f = al->filter;
            if (f->filter_specifier_case !=
                ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__FILTER_SPECIFIER_RESPONSE_FLAG_FILTER) {
                fail(cx, "filter", "only response_flag_filter is supported");
                return -1;
            }
            const Envoy__Config__Accesslog__V3__ResponseFlagFilter *rf = f->response_flag_filter;
            flag_filter = rf->n_flags ? 0 : ~0u; /* no flags listed: any flag passes */
            for (size_t k = 0; k < rf->n_flags; k++) {
                uint32_t bit = rs_resp_flag_parse(rf->flags[k]);
                if (!bit) {
                    fail(cx, "filter.response_flag_filter.flags", "unknown response flag \"%s\"",
                         rf->flags[k]);
                    return -1;
                }
                flag_filter |= bit;
            }
        }
        if (al->config_type_case !=
            ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG) {
            fail(cx, "typed_config", "is required");
            return -1;
        }
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(al->typed_config, NULL, err, sizeof err);
        if (!m) {
            fail(cx, "typed_config", "%s", err);
            return -1;
        }
        struct rs_access_log *log = NULL;
        const ProtobufCMessageDescriptor *d = m->descriptor;
        if (d == &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *f = (const void *)m;
            const FormatString *fs = NULL;
            const char *legacy = NULL;
            if (f->access_log_format_case ==
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT)
                fs = f->log_format;
            else if (
                f->access_log_format_case ==
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_FORMAT)
                legacy = f->format;
            else if (
                f->access_log_format_case !=
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT__NOT_SET)
                fail(cx, "typed_config", "use log_format for JSON access logs");
            bool is_stdout = strcmp(f->path, "/dev/stdout") == 0;
            bool is_stderr = strcmp(f->path, "/dev/stderr") == 0;
            if (!cx->err[0])
                log = format_log(cx,
                                 is_stdout   ? RS_ACCESS_SINK_STDOUT
                                 : is_stderr ? RS_ACCESS_SINK_STDERR
                                             : RS_ACCESS_SINK_FILE,
                                 f->path, fs, legacy);
        } else if (d ==
                   &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog *f =
                (const void *)m;
            log = format_log(cx, RS_ACCESS_SINK_STDOUT, NULL, f->log_format, NULL);
        } else if (d ==
                   &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor) {
            const Envoy__Extensions__AccessLoggers__Stream__V3__StderrAccessLog *f =
                (const void *)m;
            log = format_log(cx, RS_ACCESS_SINK_STDERR, NULL, f->log_format, NULL);
        } else {
            fail(cx, "typed_config", "unsupported access logger %s", d->name);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (!log) return -1;
        rs_access_log_set_flag_filter(log, flag_filter);
        if (s->nlogs == s->logs_cap) {
            s->logs_cap = s->logs_cap ? s->logs_cap * 2 : 8;
            s->logs = realloc(s->logs, s->logs_cap * sizeof *s->logs);
            if (!s->logs) abort();
        }
        (*out_idx)[i] = s->nlogs;
        s->logs[s->nlogs++] = log;
        (*out_logs)[i] = log;
        (*out_n)++;
        path_pop(cx, old);
    }
    return 0;
}

/* ---- network filters ----------------------------------------------------------------------- */

static void hcm_stats(struct rs_hcm_cfg *h)
{
    struct rs_hcm_stats *s = &h->st;
#define C(f) s->f = rs_cfg_stat("http", h->stat_prefix, #f, RS_STAT_COUNTER)
#define G(f) s->f = rs_cfg_stat("http", h->stat_prefix, #f, RS_STAT_GAUGE)
#define H(f) s->f = rs_cfg_stat("http", h->stat_prefix, #f, RS_STAT_HISTOGRAM)
    C(downstream_cx_total), G(downstream_cx_active), C(downstream_cx_http1_total);
    C(downstream_cx_destroy), C(downstream_cx_destroy_remote), C(downstream_cx_destroy_local);
    C(downstream_cx_protocol_error), C(downstream_cx_idle_timeout), C(downstream_cx_rx_bytes_total);
    C(downstream_cx_tx_bytes_total), C(downstream_cx_drain_close), C(downstream_rq_total);
    C(downstream_cx_max_duration_reached);
    C(downstream_rq_http1_total), G(downstream_rq_active), C(downstream_rq_1xx);
    C(downstream_rq_2xx), C(downstream_rq_3xx), C(downstream_rq_4xx), C(downstream_rq_5xx);
    C(downstream_rq_completed), C(downstream_rq_timeout), C(downstream_rq_header_timeout);
    C(downstream_rq_too_large), C(downstream_rq_idle_timeout), C(downstream_rq_rx_reset);
    C(downstream_rq_tx_reset), C(downstream_rq_non_relative_path), C(rq_direct_response);
    C(rq_total), C(no_route), C(no_cluster), C(rq_header_too_large);
    H(downstream_rq_time), H(downstream_cx_length_ms);
#undef C
#undef G
#undef H
}

/* Records a skipped filter at the current path + field, for /config_dump. */
static void skip_record(struct cctx *cx, const char *field, const char *name,
                        const struct rs_filter_decision *d)
{
    char where[700];
    size_t plen = strlen(cx->path);
    snprintf(where, sizeof where, "%s%s%s", cx->path, field[0] ? cfg_sep(cx, plen) : "", field);
    rs_skipped_add(&cx->snap->skipped, where, name, d);
}

/* Appends an RBAC stage (filters run in configuration order). */
static void add_rbac_stage(struct rs_rbac_stage **v, uint32_t *n, struct rs_rbac_filter *f,
                           const char *name, const char *scope)
{
    *v = realloc(*v, (*n + 1) * sizeof **v);
    if (!*v) abort(); /* control path */
    rs_rbac_stage_init(&(*v)[*n], f, name ? name : "", scope);
    (*n)++;
}

static void free_rbac_stages(struct rs_rbac_stage *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) rs_rbac_stage_fini(&v[i]);
    free(v);
}

/* envoy.filters.http.rbac: compiled into a stage of the HCM, evaluated after the route match. */
static int compile_http_rbac(
    struct cctx *cx, struct rs_hcm_cfg *h, const char *field,
    const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f)
{
    /* a disabled filter runs only on routes whose FilterConfig enables it: not implemented */
    if (f->disabled)
        return fail(cx, field, "%s: disabled: an RBAC filter enabled per route is not supported",
                    f->name ? f->name : "");
    char err[512];
    ProtobufCMessage *m = xds_any_unpack(f->typed_config, NULL, err, sizeof err);
    if (!m) return fail(cx, field, "%s", err);
    struct rs_rbac_filter *rf = rs_rbac_filter_http((const void *)m, err, sizeof err);
    protobuf_c_message_free_unpacked(m, NULL);
    char tfield[96];
    snprintf(tfield, sizeof tfield, "%s.typed_config", field);
    if (!rf) return fail(cx, tfield, "%s", err);
    char scope[300];
    snprintf(scope, sizeof scope, "http.%s.", h->stat_prefix);
    add_rbac_stage(&h->rbac, &h->nrbac, rf, f->name, scope);
    return 0;
}

/* A Struct's field of one kind (GOOGLE__PROTOBUF__VALUE__KIND_*), or NULL. */
static const Google__Protobuf__Value *struct_get(const Google__Protobuf__Struct *st,
                                                 const char *key, int kind)
{
    for (size_t i = 0; st && i < st->n_fields; i++) {
        const Google__Protobuf__Value *v = st->fields[i]->value;
        if (v && (int)v->kind_case == kind && strcmp(st->fields[i]->key, key) == 0) return v;
    }
    return NULL;
}

/* istio.alpn (a TypedStruct: {alpn_override: [{upstream_protocol: HTTP10|HTTP11|HTTP2,
 * alpn_override: [names]}]}): the names for HTTP/1.1, the protocol Ringside speaks upstream. */
static int compile_istio_alpn(struct cctx *cx, struct rs_hcm_cfg *h, const char *field,
                              const Google__Protobuf__Any *cfg)
{
    /* istiod sends it as a TypedStruct (udpa's and xds' have the same wire form); the
     * FilterConfig message itself is not among Ringside's protos */
    const char *t = strrchr(cfg->type_url, '/');
    t = t ? t + 1 : cfg->type_url;
    Udpa__Type__V1__TypedStruct *ts =
        strcmp(t, "udpa.type.v1.TypedStruct") == 0 || strcmp(t, "xds.type.v3.TypedStruct") == 0
            ? udpa__type__v1__typed_struct__unpack(NULL, cfg->value.len, cfg->value.data)
            : NULL;
    if (!ts) return fail(cx, field, "istio.alpn: only its TypedStruct form is understood");
    const Google__Protobuf__Value *list =
        struct_get(ts->value, "alpn_override", GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    int ret = 0;
    for (size_t k = 0; list && k < list->list_value->n_values && ret == 0; k++) {
        const Google__Protobuf__Value *e = list->list_value->values[k];
        if (e->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE) continue;
        const Google__Protobuf__Value *proto = struct_get(
            e->struct_value, "upstream_protocol", GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
        const Google__Protobuf__Value *names =
            struct_get(e->struct_value, "alpn_override", GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
        /* an entry without upstream_protocol is HTTP10's */
        if (!proto || strcmp(proto->string_value, "HTTP11") != 0 || !names || h->upstream_alpn)
            continue;
        const Google__Protobuf__ListValue *nl = names->list_value;
        h->upstream_alpn = xcalloc(nl->n_values + 1, sizeof *h->upstream_alpn);
        h->upstream_alpn_hash = 0xcbf29ce484222325ull;
        for (size_t j = 0; j < nl->n_values; j++) {
            const Google__Protobuf__Value *n = nl->values[j];
            if (n->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE || !n->string_value[0] ||
                strlen(n->string_value) > 255) {
                ret = fail(cx, field, "alpn_override: [%zu]: names are non-empty strings", k);
                break;
            }
            h->upstream_alpn[h->n_upstream_alpn++] = xstrdup(n->string_value);
            /* FNV-1a over the names, each with its terminating NUL */
            for (const char *c = n->string_value;; c++) {
                h->upstream_alpn_hash = (h->upstream_alpn_hash ^ (uint8_t)*c) * 0x100000001b3ull;
                if (!*c) break;
            }
        }
    }
    udpa__type__v1__typed_struct__free_unpacked(ts, NULL);
    return ret;
}

static int compile_http_filters(struct cctx *cx, struct rs_hcm_cfg *h, const Hcm *pm)
{
    if (pm->n_http_filters == 0)
        return fail(cx, "http_filters", "must end with envoy.filters.http.router");
    for (size_t i = 0; i < pm->n_http_filters; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
            pm->http_filters[i];
        char field[64];
        snprintf(field, sizeof field, "http_filters[%zu]", i);
        bool last = i + 1 == pm->n_http_filters;
        if (f->config_type_case !=
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG)
            return fail(cx, field, "typed_config is required (%s)", f->name);
        /* Disabled filters are decided too: a route may enable them (FilterConfig), so an
         * authorization filter is refused even when disabled by default. */
        struct rs_filter_decision d;
        rs_filter_decide(RS_FILTER_HTTP, f->name, f->typed_config, f->is_optional, &d);
        if (d.verdict == RS_FILTER_REFUSED)
            return fail(cx, field, "%s: %s", f->name ? f->name : "", d.reason);
        if (last && d.id != RS_FID_ROUTER)
            return fail(cx, field, "the last HTTP filter must be envoy.filters.http.router");
        if (d.verdict == RS_FILTER_SKIPPED) {
            skip_record(cx, field, f->name, &d);
            continue;
        }
        if (d.id == RS_FID_ROUTER) {
            if (!last) return fail(cx, field, "envoy.filters.http.router must be the last filter");
            continue;
        }
        if (d.id == RS_FID_RBAC) {
            if (compile_http_rbac(cx, h, field, f)) return -1;
            continue;
        }
        if (d.id == RS_FID_ISTIO_ALPN) {
            if (!f->disabled && compile_istio_alpn(cx, h, field, f->typed_config)) return -1;
            continue;
        }
        if (d.id != RS_FID_BUFFER || f->disabled) continue;
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(f->typed_config, NULL, err, sizeof err);
        if (!m) return fail(cx, field, "%s", err);
        const Envoy__Extensions__Filters__Http__Buffer__V3__Buffer *b = (const void *)m;
        h->max_request_bytes = b->max_request_bytes ? b->max_request_bytes->value : 0;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    return 0;
}

/* typed_per_filter_config of routes, virtual hosts and route configurations: decided by the
 * filter table (RS_FILTER_ROUTE); skipped ones are recorded. */
struct route_ctx {
    struct cctx *cx;
    const struct rs_hcm_cfg *h;
};

static bool is_rbac_stage(const struct rs_hcm_cfg *h, const char *filter)
{
    for (uint32_t i = 0; h && i < h->nrbac; i++)
        if (strcmp(h->rbac[i].name, filter) == 0) return true;
    return false;
}

/* A route's RBACPerRoute (possibly inside a FilterConfig): the filter that replaces the HCM's
 * on the route; one without rules (no `rbac`, or FilterConfig.disabled) disables it there. */
static int compile_rbac_route(const Google__Protobuf__Any *any, void **compiled, char *why,
                              size_t len)
{
    char err[512];
    ProtobufCMessage *m = xds_any_unpack(any, NULL, err, sizeof err);
    if (!m) {
        snprintf(why, len, "%s", err);
        return -1;
    }
    const ProtobufCMessage *inner = m;
    ProtobufCMessage *unwrapped = NULL;
    if (m->descriptor == &envoy__config__route__v3__filter_config__descriptor) {
        const Envoy__Config__Route__V3__FilterConfig *fc = (const void *)m;
        if (!fc->disabled && !fc->config) { /* enables the filter as configured: no override */
            protobuf_c_message_free_unpacked(m, NULL);
            return 0;
        }
        if (!fc->disabled && fc->config &&
            !(unwrapped = xds_any_unpack(fc->config, NULL, err, sizeof err))) {
            protobuf_c_message_free_unpacked(m, NULL);
            snprintf(why, len, "config: %s", err);
            return -1;
        }
        inner = unwrapped;
    }
    Envoy__Extensions__Filters__Http__Rbac__V3__RBAC none =
        ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
    const Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *r = &none;
    if (inner && inner->descriptor ==
                     &envoy__extensions__filters__http__rbac__v3__rbacper_route__descriptor) {
        const Envoy__Extensions__Filters__Http__Rbac__V3__RBACPerRoute *pr = (const void *)inner;
        if (pr->rbac) r = pr->rbac;
    }
    struct rs_rbac_filter *f = rs_rbac_filter_http(r, err, sizeof err);
    if (unwrapped) protobuf_c_message_free_unpacked(unwrapped, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!f) {
        snprintf(why, len, "rbac.%s", err);
        return -1;
    }
    *compiled = f;
    return 0;
}

static void per_filter_free(void *compiled)
{
    rs_rbac_filter_free(compiled);
}

static int per_filter_cb(void *ctx, const char *filter, const void *any, void **compiled, char *why,
                         size_t len)
{
    struct route_ctx *rc = ctx;
    struct rs_filter_decision d;
    rs_filter_decide(RS_FILTER_ROUTE, filter, any, false, &d);
    if (d.verdict == RS_FILTER_REFUSED) {
        snprintf(why, len, "%s", d.reason);
        return -1;
    }
    /* RBACPerRoute, or a FilterConfig that disables one of this HCM's RBAC filters */
    bool rbac_disable = d.verdict == RS_FILTER_SKIPPED && d.id == RS_FID_OTHER &&
                        is_rbac_stage(rc->h, filter) && any &&
                        strstr(((const Google__Protobuf__Any *)any)->type_url,
                               "envoy.config.route.v3.FilterConfig");
    if (d.id == RS_FID_RBAC || rbac_disable) {
        if (!compiled) {
            snprintf(why, len, "RBACPerRoute is not supported on a weighted cluster");
            return -1;
        }
        return compile_rbac_route(any, compiled, why, len);
    }
    char field[300];
    snprintf(field, sizeof field, "typed_per_filter_config[\"%s\"]", filter);
    if (d.verdict == RS_FILTER_SKIPPED) skip_record(rc->cx, field, filter, &d);
    return 0;
}

static int route_cluster_cb(void *ctx, const char *name)
{
    struct route_ctx *rc = ctx;
    return rs_config_cluster_index(rc->cx->snap, name);
}

/* The RouteConfiguration resource an HCM names through rds, from the xDS input; NULL when it
 * has not arrived (the caller then decides between warming and empty). */
static const struct rs_xds_resource *rds_find(struct cctx *cx, const char *name)
{
    const struct rs_xds_input *in = cx->in;
    for (size_t i = 0; in && i < in->n[RS_XDS_RDS]; i++)
        if (strcmp(in->res[RS_XDS_RDS][i].name, name) == 0) return &in->res[RS_XDS_RDS][i];
    return NULL;
}

/* The previous snapshot's route table for RouteConfiguration `name` compiled from the same
 * resource (its serialized bytes: the ADS client keeps an unchanged resource as the same
 * object, and the previous snapshot holds the state that owns it, so an equal pointer is the
 * same definition) with the same options; NULL when there is none. */
static struct rs_route_table *prev_routes(const struct cctx *cx, const char *name, const void *src,
                                          uint64_t key)
{
    const struct rs_snapshot *p = cx->prev;
    for (uint32_t i = 0; p && i < p->nlisteners; i++) {
        const struct rs_listener *l = &p->listeners[i];
        for (uint32_t j = 0; l->chains && j <= l->nchains; j++) {
            const struct rs_hcm_cfg *h = l->chains[j].hcm;
            if (!h || !h->routes || !h->rds_name || strcmp(h->rds_name, name) != 0) continue;
            uint64_t k;
            if (rs_route_table_source(h->routes, &k) == src && k == key) return h->routes;
        }
    }
    return NULL;
}

/* upgrade_configs: istiod lists websocket on every HCM. HTTP/1 upgrades are answered 403 until
 * they are implemented; refusing the whole listener would refuse all of istiod's HTTP
 * listeners, so a websocket upgrade config is accepted and recorded as skipped (shown on
 * /config_dump). Upgrade filters or other upgrade types are refused. */
static int hcm_upgrades(struct cctx *cx, const Hcm *pm)
{
    for (size_t i = 0; i < pm->n_upgrade_configs; i++) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__UpgradeConfig
            *u = pm->upgrade_configs[i];
        char field[48];
        snprintf(field, sizeof field, "upgrade_configs[%zu]", i);
        if (!u->upgrade_type || strcasecmp(u->upgrade_type, "websocket") != 0 || u->n_filters)
            return fail(cx, field, "only websocket upgrades without filters are accepted");
        if (u->enabled && !u->enabled->value) continue;
        struct rs_filter_decision d = {.verdict = RS_FILTER_SKIPPED, .type = ""};
        snprintf(d.reason, sizeof d.reason,
                 "HTTP/1 upgrades are not implemented yet: upgrade requests are answered 403");
        skip_record(cx, field, "websocket", &d);
    }
    return 0;
}

/* forward_client_cert_details and set_current_client_cert_details (istiod: APPEND_FORWARD with
 * subject, dns and uri inbound; SANITIZE_SET outbound). */
static void compile_xfcc(struct rs_hcm_cfg *h, const Hcm *pm)
{
    switch (pm->forward_client_cert_details) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__FORWARD_ONLY:
        h->xfcc_mode = RS_XFCC_FORWARD_ONLY;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD:
        h->xfcc_mode = RS_XFCC_APPEND_FORWARD;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__SANITIZE_SET:
        h->xfcc_mode = RS_XFCC_SANITIZE_SET;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__ALWAYS_FORWARD_ONLY:
        h->xfcc_mode = RS_XFCC_ALWAYS_FORWARD_ONLY;
        break;
    default:
        h->xfcc_mode = RS_XFCC_SANITIZE;
    }
    const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager__SetCurrentClientCertDetails
        *d = pm->set_current_client_cert_details;
    if (!d) return;
    h->xfcc_set = (uint8_t)((d->subject && d->subject->value ? RS_XFCC_SUBJECT : 0) |
                            (d->uri ? RS_XFCC_URI : 0) | (d->dns ? RS_XFCC_DNS : 0) |
                            (d->cert ? RS_XFCC_CERT : 0) | (d->chain ? RS_XFCC_CHAIN : 0));
}

static int compile_hcm(struct cctx *cx, struct rs_filter_chain *fc, const Hcm *pm, uint16_t port)
{
    struct rs_hcm_cfg *h = fc->hcm = xcalloc(1, sizeof *h);
    h->stat_prefix = xstrdup(pm->stat_prefix);
    if (!pm->stat_prefix || !pm->stat_prefix[0]) return fail(cx, "stat_prefix", "is required");
    hcm_stats(h);
    if (pm->codec_type ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP2 ||
        pm->codec_type ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__CODEC_TYPE__HTTP3)
        return fail(cx, "codec_type", "only HTTP/1.1 is served so far (HTTP/2 comes next)");
    if (hcm_upgrades(cx, pm)) return -1;
    /* Behaviour-changing HCM fields not implemented yet are refused by name; hints
     * (delayed_close_timeout, request_id_extension with UUIDs,
     * stream_error_on_invalid_http_message, HTTP/2 and HTTP/3 options on an HTTP/1.1 codec) are
     * accepted. */
    if (pm->path_normalization_options)
        return fail(cx, "path_normalization_options", "is not supported yet");
    h->path.normalize = pm->normalize_path && pm->normalize_path->value;
    h->path.merge_slashes = pm->merge_slashes;
    switch (pm->path_with_escaped_slashes_action) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__REJECT_REQUEST:
        h->path.escaped_slashes = RS_PATH_SLASHES_REJECT;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_REDIRECT:
        h->path.escaped_slashes = RS_PATH_SLASHES_UNESCAPE_AND_REDIRECT;
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__PATH_WITH_ESCAPED_SLASHES_ACTION__UNESCAPE_AND_FORWARD:
        h->path.escaped_slashes = RS_PATH_SLASHES_UNESCAPE_AND_FORWARD;
        break;
    default: /* IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED in Envoy */
        h->path.escaped_slashes = RS_PATH_SLASHES_KEEP;
    }
    if (pm->via && pm->via[0]) return fail(cx, "via", "is not supported yet");
    if (pm->add_user_agent && pm->add_user_agent->value)
        return fail(cx, "add_user_agent", "is not supported");
    if (pm->proxy_100_continue)
        return fail(cx, "proxy_100_continue", "100-continue is answered by the proxy itself");
    if (pm->internal_address_config) return fail(cx, "internal_address_config", "is not supported");
    if (pm->scheme_header_transformation)
        return fail(cx, "scheme_header_transformation", "is not supported");
    if (pm->append_x_forwarded_port) return fail(cx, "append_x_forwarded_port", "is not supported");
    if (pm->n_early_header_mutation_extensions)
        return fail(cx, "early_header_mutation_extensions", "are not supported");
    if (pm->typed_header_validation_config)
        return fail(cx, "typed_header_validation_config", "is not supported");
    if (pm->proxy_status_config) return fail(cx, "proxy_status_config", "is not supported");
    if (pm->strip_trailing_host_dot) return fail(cx, "strip_trailing_host_dot", "is not supported");
    if (pm->represent_ipv4_remote_address_as_ipv4_mapped_ipv6)
        return fail(cx, "represent_ipv4_remote_address_as_ipv4_mapped_ipv6", "is not supported");
    compile_xfcc(h, pm);
    if (pm->http_protocol_options) {
        const Envoy__Config__Core__V3__Http1ProtocolOptions *h1 = pm->http_protocol_options;
        if (h1->allow_absolute_url && !h1->allow_absolute_url->value)
            return fail(cx, "http_protocol_options.allow_absolute_url", "false is not supported");
        if (h1->header_key_format)
            return fail(cx, "http_protocol_options.header_key_format", "is not supported");
        if (h1->enable_trailers)
            return fail(cx, "http_protocol_options.enable_trailers", "is not supported yet");
        if (h1->allow_chunked_length)
            return fail(cx, "http_protocol_options.allow_chunked_length", "is not supported");
        if (h1->send_fully_qualified_url)
            return fail(cx, "http_protocol_options.send_fully_qualified_url", "is not supported");
        if (h1->allow_custom_methods)
            return fail(cx, "http_protocol_options.allow_custom_methods", "is not supported");
    }
    h->always_set_request_id_in_response = pm->always_set_request_id_in_response;
    /* istiod sets tracing (sampling percentages) on every HCM; with no provider no span can
     * be emitted, so it is a hint. A provider is refused. */
    if (pm->tracing && pm->tracing->provider)
        return fail(cx, "tracing.provider", "tracing providers are not supported");
    if (pm->request_id_extension && pm->request_id_extension->typed_config &&
        !strstr(pm->request_id_extension->typed_config->type_url,
                "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"))
        return fail(cx, "request_id_extension", "only UuidRequestIdConfig is supported");
    if (pm->local_reply_config) return fail(cx, "local_reply_config", "is not supported");
    if (pm->n_original_ip_detection_extensions)
        return fail(cx, "original_ip_detection_extensions", "are not supported");
    h->max_request_headers_kb = pm->max_request_headers_kb ? pm->max_request_headers_kb->value : 60;
    if (h->max_request_headers_kb == 0 || h->max_request_headers_kb > 8192)
        return fail(cx, "max_request_headers_kb", "must be 1..8192");
    const Envoy__Config__Core__V3__HttpProtocolOptions *o = pm->common_http_protocol_options;
    h->max_headers_count = o && o->max_headers_count ? o->max_headers_count->value : 100;
    h->idle_timeout_ms = o ? rs_duration_ms(o->idle_timeout, 3600 * 1000) : 3600 * 1000;
    h->max_connection_duration_ms = o ? rs_duration_ms(o->max_connection_duration, 0) : 0;
    if (o &&
        o->headers_with_underscores_action !=
            ENVOY__CONFIG__CORE__V3__HTTP_PROTOCOL_OPTIONS__HEADERS_WITH_UNDERSCORES_ACTION__ALLOW)
        return fail(cx, "common_http_protocol_options.headers_with_underscores_action",
                    "only ALLOW is supported");
    h->request_headers_timeout_ms = rs_duration_ms(pm->request_headers_timeout, 0);
    h->request_timeout_ms = rs_duration_ms(pm->request_timeout, 0);
    h->stream_idle_timeout_ms = rs_duration_ms(pm->stream_idle_timeout, 300 * 1000);
    h->drain_timeout_ms = rs_duration_ms(pm->drain_timeout, 5000);
    h->use_remote_address = pm->use_remote_address && pm->use_remote_address->value;
    h->xff_num_trusted_hops = pm->xff_num_trusted_hops;
    h->skip_xff_append = pm->skip_xff_append;
    h->generate_request_id = !pm->generate_request_id || pm->generate_request_id->value;
    h->preserve_external_request_id = pm->preserve_external_request_id;
    h->server_name = xstrdup(pm->server_name && pm->server_name[0] ? pm->server_name : "envoy");
    h->server_header_pass_through =
        pm->server_header_transformation ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__SERVER_HEADER_TRANSFORMATION__PASS_THROUGH;
    if (pm->http_protocol_options) {
        h->accept_http_10 = pm->http_protocol_options->accept_http_10;
        if (pm->http_protocol_options->default_host_for_http_10 &&
            pm->http_protocol_options->default_host_for_http_10[0])
            h->default_host_for_http_10 =
                xstrdup(pm->http_protocol_options->default_host_for_http_10);
    }
    if (compile_http_filters(cx, h, pm)) return -1;
    if (compile_access_logs(cx, pm->access_log, pm->n_access_log, &h->logs, &h->log_index,
                            &h->nlogs))
        return -1;
    if (hcm_log_headers(cx, h)) return -1;
    h->strip_any_host_port =
        pm->strip_port_mode_case ==
            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__STRIP_PORT_MODE_STRIP_ANY_HOST_PORT &&
        pm->strip_any_host_port;
    struct route_ctx rctx = {.cx = cx, .h = h};
    struct rs_route_compile_opts ro = {
        .cluster_index = route_cluster_cb,
        .ctx = &rctx,
        .validate_clusters = true,
        .strip_any_host_port = h->strip_any_host_port,
        .strip_matching_host_port = pm->strip_matching_host_port,
        .listener_port = port,
        .per_filter = per_filter_cb,
        .per_filter_free = per_filter_free,
    };
    const Envoy__Config__Route__V3__RouteConfiguration *rc = pm->route_config;
    Envoy__Config__Route__V3__RouteConfiguration empty =
        ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
    const char *field = "route_config";
    if (pm->route_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
        const char *name = pm->rds->route_config_name;
        if (!cx->xds) return fail(cx, "rds", "RDS needs xDS (dynamic_resources with ADS)");
        if (!name || !name[0]) return fail(cx, "rds.route_config_name", "is required");
        if (pm->rds->config_source &&
            pm->rds->config_source->config_source_specifier_case !=
                ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
            return fail(cx, "rds.config_source", "only ads: {} is supported");
        h->rds_name = xstrdup(name);
        const struct rs_xds_resource *res = rds_find(cx, name);
        rc = res ? (const void *)res->msg : NULL;
        int st = cx->in->watch ? cx->in->watch(cx->in->ctx, RS_XDS_RDS, name) : -1;
        if (!rc && (st == RS_XDS_PENDING || (st < 0 && !cx->in->watch))) {
            cx->warming = true; /* listener warming: left out until its routes arrive */
            return 0;
        }
        if (!rc) rc = &empty; /* timed out or removed: no routes (404 NR), as Envoy */
        /* Envoy's default for RDS: validate_clusters false (503 NC for an unknown cluster) */
        ro.validate_clusters = false;
        size_t old = strlen(cx->path), oroot = cx->root;
        char saved[sizeof cx->path];
        memcpy(saved, cx->path, sizeof saved);
        snprintf(cx->path, sizeof cx->path, "RouteConfiguration \"%s\"", name);
        cx->root = strlen(cx->path);
        /* reuse needs the source to outlive the table's snapshots: the snapshot keeps the
         * input's state (in->keep) */
        const void *src = res && cx->in->keep && cx->in->retain ? res->bytes : NULL;
        uint64_t key = (uint64_t)(res ? res->len : 0) << 20 | (uint64_t)port << 2 |
                       (uint64_t)ro.strip_any_host_port << 1 |
                       (uint64_t)ro.strip_matching_host_port;
        struct rs_route_table *reuse =
            src && cx->same_clusters ? prev_routes(cx, name, src, key) : NULL;
        int ret = 0;
        if (reuse) {
            h->routes = rs_route_table_ref(reuse);
        } else {
            uint32_t nskipped = cx->snap->skipped.n;
            char err[512];
            h->routes = rs_route_table_compile(rc, &ro, err, sizeof err);
            ret = h->routes ? 0 : fail(cx, "", "%s", err);
            /* a table whose compile recorded skipped filters is not shared: the records
             * belong to each snapshot */
            if (h->routes && src && cx->snap->skipped.n == nskipped)
                rs_route_table_set_source(h->routes, src, key);
        }
        memcpy(cx->path, saved, sizeof saved);
        cx->path[old] = '\0';
        cx->root = oroot;
        return ret;
    }
    if (pm->route_specifier_case !=
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG)
        return fail(cx, "route_config", "an inline route_config or rds is required");
    char err[512];
    h->routes = rs_route_table_compile(rc, &ro, err, sizeof err);
    if (!h->routes) return fail(cx, field, "%s", err);
    return 0;
}

static int tcp_cluster(struct cctx *cx, const char *name, const char *field, uint32_t *out)
{
    int idx = rs_config_cluster_index(cx->snap, name);
    if (idx < 0 && cx->xds && name && name[0]) {
        /* Envoy: a tcp_proxy naming a missing (or still warming) cluster closes its
         * connections (downstream_cx_no_route); not a config error */
        *out = RS_CLUSTER_NONE;
        return 0;
    }
    if (idx < 0) return fail(cx, field, "unknown cluster \"%s\"", name);
    *out = (uint32_t)idx;
    return 0;
}

static int compile_tcp(struct cctx *cx, struct rs_filter_chain *fc, const TcpProxy *pt)
{
    struct rs_tcp_cfg *t = fc->tcp = xcalloc(1, sizeof *t);
    if (!pt->stat_prefix || !pt->stat_prefix[0]) return fail(cx, "stat_prefix", "is required");
    t->stat_prefix = xstrdup(pt->stat_prefix);
    struct rs_tcp_stats *s = &t->st;
    s->downstream_cx_total =
        rs_cfg_stat("tcp", t->stat_prefix, "downstream_cx_total", RS_STAT_COUNTER);
    s->downstream_cx_no_route =
        rs_cfg_stat("tcp", t->stat_prefix, "downstream_cx_no_route", RS_STAT_COUNTER);
    s->downstream_cx_rx_bytes_total =
        rs_cfg_stat("tcp", t->stat_prefix, "downstream_cx_rx_bytes_total", RS_STAT_COUNTER);
    s->downstream_cx_tx_bytes_total =
        rs_cfg_stat("tcp", t->stat_prefix, "downstream_cx_tx_bytes_total", RS_STAT_COUNTER);
    s->idle_timeout = rs_cfg_stat("tcp", t->stat_prefix, "idle_timeout", RS_STAT_COUNTER);
    s->upstream_flush_total =
        rs_cfg_stat("tcp", t->stat_prefix, "upstream_flush_total", RS_STAT_COUNTER);
    s->max_downstream_connection_duration =
        rs_cfg_stat("tcp", t->stat_prefix, "max_downstream_connection_duration", RS_STAT_COUNTER);
    if (pt->tunneling_config) return fail(cx, "tunneling_config", "is not supported");
    if (pt->n_hash_policy) return fail(cx, "hash_policy", "is not supported");
    if (pt->metadata_match) return fail(cx, "metadata_match", "is not supported");
    if (pt->on_demand) return fail(cx, "on_demand", "is not supported");
    t->idle_timeout_ms = rs_duration_ms(pt->idle_timeout, 3600 * 1000);
    t->max_connect_attempts = pt->max_connect_attempts ? pt->max_connect_attempts->value : 1;
    if (pt->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER) {
        t->nclusters = 1;
        t->clusters = xcalloc(1, sizeof *t->clusters);
        t->weights = xcalloc(1, sizeof *t->weights);
        t->weights[0] = 1;
        t->total_weight = 1;
        if (tcp_cluster(cx, pt->cluster, "cluster", &t->clusters[0])) return -1;
    } else if (
        pt->cluster_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) {
        const Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy__WeightedCluster *w =
            pt->weighted_clusters;
        t->nclusters = (uint32_t)w->n_clusters;
        t->clusters = xcalloc(w->n_clusters, sizeof *t->clusters);
        t->weights = xcalloc(w->n_clusters, sizeof *t->weights);
        for (size_t i = 0; i < w->n_clusters; i++) {
            char field[64];
            snprintf(field, sizeof field, "weighted_clusters.clusters[%zu]", i);
            if (w->clusters[i]->metadata_match)
                return fail(cx, field, "metadata_match is not supported");
            if (tcp_cluster(cx, w->clusters[i]->name, field, &t->clusters[i])) return -1;
            t->weights[i] = w->clusters[i]->weight;
            t->total_weight += w->clusters[i]->weight;
        }
        if (t->total_weight == 0) return fail(cx, "weighted_clusters", "weights sum to 0");
    } else {
        return fail(cx, "cluster", "cluster or weighted_clusters is required");
    }
    return compile_access_logs(cx, pt->access_log, pt->n_access_log, &t->logs, &t->log_index,
                               &t->nlogs);
}

static int compile_filters(struct cctx *cx, struct rs_filter_chain *fc,
                           const Envoy__Config__Listener__V3__FilterChain *pfc, uint16_t port)
{
    for (size_t i = 0; i < pfc->n_filters; i++) {
        const Envoy__Config__Listener__V3__Filter *f = pfc->filters[i];
        size_t old = path_push(cx, "filters[%zu]", i);
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
            return fail(cx, "typed_config", "is required (%s)", f->name);
        struct rs_filter_decision dec;
        rs_filter_decide(RS_FILTER_NETWORK, f->name, f->typed_config, false, &dec);
        if (dec.verdict == RS_FILTER_REFUSED)
            return fail(cx, "", "%s: %s", f->name ? f->name : "", dec.reason);
        if (dec.verdict == RS_FILTER_SKIPPED) {
            skip_record(cx, "", f->name, &dec);
            path_pop(cx, old);
            continue;
        }
        char err[256];
        ProtobufCMessage *m = xds_any_unpack(f->typed_config, NULL, err, sizeof err);
        if (!m) return fail(cx, "typed_config", "%s", err);
        const ProtobufCMessageDescriptor *d = m->descriptor;
        bool terminal = fc->hcm || fc->tcp;
        int ret = 0;
        if (terminal) {
            ret = fail(cx, "", "no filter may follow the terminal filter");
        } else if (
            d ==
            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor) {
            size_t o2 = path_push(cx, "typed_config");
            ret = compile_hcm(cx, fc, (const void *)m, port);
            if (!ret) path_pop(cx, o2);
        } else if (d ==
                   &envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor) {
            size_t o2 = path_push(cx, "typed_config");
            ret = compile_tcp(cx, fc, (const void *)m);
            if (!ret) path_pop(cx, o2);
        } else if (d == &envoy__extensions__filters__network__rbac__v3__rbac__descriptor) {
            char rerr[512];
            struct rs_rbac_filter *rf = rs_rbac_filter_network((const void *)m, rerr, sizeof rerr);
            if (!rf)
                ret = fail(cx, "typed_config", "%s", rerr);
            else
                add_rbac_stage(&fc->rbac, &fc->nrbac, rf, f->name, rf->stat_prefix);
        } else if (
            d ==
            &envoy__extensions__filters__network__connection_limit__v3__connection_limit__descriptor) {
            const Envoy__Extensions__Filters__Network__ConnectionLimit__V3__ConnectionLimit *cl =
                (const void *)m;
            if (cl->delay)
                ret = fail(cx, "typed_config.delay", "is not supported");
            else if (!cl->max_connections || cl->max_connections->value == 0)
                ret = fail(cx, "typed_config.max_connections", "must be at least 1");
            else {
                fc->max_cx = cl->max_connections->value;
                fc->active_cx = xcalloc(1, sizeof *fc->active_cx);
                fc->limited_connections = rs_cfg_stat("connection_limit", cl->stat_prefix,
                                                      "limited_connections", RS_STAT_COUNTER);
                fc->active_connections = rs_cfg_stat("connection_limit", cl->stat_prefix,
                                                     "active_connections", RS_STAT_GAUGE);
            }
        } else {
            ret = fail(cx, "typed_config", "unsupported network filter %s (%s)", f->name, d->name);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (ret) return ret;
        path_pop(cx, old);
    }
    if (!fc->hcm && !fc->tcp)
        return fail(cx, "filters",
                    "a terminal filter (http_connection_manager or tcp_proxy) is required");
    if (rs_cfg_transport_server(cx, pfc->transport_socket, "transport_socket", fc->hcm != NULL,
                                &fc->tls_ctx))
        return -1;
    fc->handshake_timeout_ms = rs_duration_ms(pfc->transport_socket_connect_timeout, 0);
    return 0;
}

static int compile_chain(struct cctx *cx, struct rs_filter_chain *fc,
                         const Envoy__Config__Listener__V3__FilterChain *pfc, uint16_t port)
{
    fc->name = xstrdup(pfc->name);
    const Envoy__Config__Listener__V3__FilterChainMatch *m = pfc->filter_chain_match;
    if (m) {
        size_t old = path_push(cx, "filter_chain_match");
        if (rs_cfg_chain_match(cx, &fc->m, m)) return -1;
        path_pop(cx, old);
        fc->dst_port = m->destination_port ? m->destination_port->value : 0;
    }
    return compile_filters(cx, fc, pfc, port);
}

/* Listener filters, decided by the filter table: the TLS and HTTP inspectors and original_dst
 * set flags the data path honours (server.c). */
static int listener_filters(struct cctx *cx, struct rs_listener *l, const Listener *pl)
{
    for (size_t i = 0; i < pl->n_listener_filters; i++) {
        const Envoy__Config__Listener__V3__ListenerFilter *f = pl->listener_filters[i];
        char field[48];
        snprintf(field, sizeof field, "listener_filters[%zu]", i);
        if (f->filter_disabled)
            return fail(cx, field, "filter_disabled is not supported (%s)", f->name);
        struct rs_filter_decision d;
        rs_filter_decide(RS_FILTER_LISTENER, f->name, f->typed_config, false, &d);
        if (d.verdict == RS_FILTER_REFUSED) return fail(cx, field, "%s: %s", f->name, d.reason);
        if (d.verdict == RS_FILTER_SKIPPED) skip_record(cx, field, f->name, &d);
        if (d.id == RS_FID_ORIGINAL_DST) l->original_dst = true;
        if (d.id == RS_FID_TLS_INSPECTOR) l->tls_inspector = true;
        if (d.id == RS_FID_HTTP_INSPECTOR) l->http_inspector = true;
    }
    l->inspect_timeout_ms = rs_duration_ms(pl->listener_filters_timeout, 15000);
    l->inspect_continue = pl->continue_on_listener_filters_timeout;
    return 0;
}

/* FNV-1a of a message's wire form: equal definitions, equal hashes (how an update tells a
 * changed listener from an unchanged one). */
static uint64_t message_hash(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xcalloc(1, n + 1);
    protobuf_c_message_pack(m, buf);
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
    free(buf);
    return h;
}

int rs_cfg_listener(struct cctx *cx, struct rs_listener *l, const Listener *pl)
{
    const Envoy__Config__Core__V3__SocketAddress *sa;
    if (rs_cfg_socket_address(cx, pl->address, "address", true, &sa)) return -1;
    rs_cfg_ip_port(sa->address, sa->port_value, &l->addr, &l->addrlen);
    rs_addr_str((struct sockaddr *)&l->addr, l->addr_str, sizeof l->addr_str);
    l->name = xstrdup(pl->name && pl->name[0] ? pl->name : l->addr_str);
    l->hash = message_hash(&pl->base);
    if (listener_filters(cx, l, pl)) return -1;
    /* Istio's virtualOutbound: hand each connection to the listener of its original
     * destination (data path: SO_ORIGINAL_DST at accept) */
    l->use_original_dst = pl->use_original_dst && pl->use_original_dst->value;
    if (pl->udp_listener_config || pl->api_listener)
        return fail(cx, "", "only TCP listeners are supported");
    if (pl->n_additional_addresses) return fail(cx, "additional_addresses", "is not supported");
    /* Fields that change what a listener does are refused until implemented; drain_type,
     * traffic_direction, metadata, stat_prefix and the accept-batching knobs are hints. */
    if (pl->n_socket_options) return fail(cx, "socket_options", "is not supported");
    if ((pl->transparent && pl->transparent->value) || (pl->freebind && pl->freebind->value))
        return fail(cx, "transparent", "transparent/freebind listeners come with traffic capture");
    /* Istio's outbound listeners (0.0.0.0_9080) do not bind: virtualOutbound hands them its
     * connections (use_original_dst) */
    l->bind_to_port = !pl->bind_to_port || pl->bind_to_port->value;
    if (pl->enable_reuse_port && !pl->enable_reuse_port->value)
        return fail(cx, "enable_reuse_port", "false is not supported: each worker owns its socket");
    if (pl->connection_balance_config)
        return fail(cx, "connection_balance_config", "is not supported");
    if (pl->enable_mptcp) return fail(cx, "enable_mptcp", "is not supported");
    if (pl->listener_specifier_case ==
        ENVOY__CONFIG__LISTENER__V3__LISTENER__LISTENER_SPECIFIER_INTERNAL_LISTENER)
        return fail(cx, "internal_listener", "is not supported");
    /* listener-level logs: written for connections no filter chain takes (Istio's NR lines) */
    if (compile_access_logs(cx, pl->access_log, pl->n_access_log, &l->logs, &l->log_index,
                            &l->nlogs))
        return -1;
    l->backlog = pl->tcp_backlog_size ? pl->tcp_backlog_size->value : 4096;
    l->tcp_fast_open = pl->tcp_fast_open_queue_length ? pl->tcp_fast_open_queue_length->value : 0;
    l->per_connection_buffer_limit = pl->per_connection_buffer_limit_bytes
                                         ? pl->per_connection_buffer_limit_bytes->value
                                         : 1024 * 1024;
    /* Envoy's listener stat scope: listener.<address with ':' as '_'> */
    char scope[96];
    const char *prefix = pl->stat_prefix && pl->stat_prefix[0] ? pl->stat_prefix : l->addr_str;
    snprintf(scope, sizeof scope, "%s", prefix);
    for (char *p = scope; *p; p++)
        if (*p == ':') *p = '_';
    l->st.downstream_cx_total =
        rs_cfg_stat("listener", scope, "downstream_cx_total", RS_STAT_COUNTER);
    l->st.downstream_cx_active =
        rs_cfg_stat("listener", scope, "downstream_cx_active", RS_STAT_GAUGE);
    l->st.downstream_cx_destroy =
        rs_cfg_stat("listener", scope, "downstream_cx_destroy", RS_STAT_COUNTER);
    l->st.downstream_cx_overflow =
        rs_cfg_stat("listener", scope, "downstream_cx_overflow", RS_STAT_COUNTER);
    l->st.no_filter_chain_match =
        rs_cfg_stat("listener", scope, "no_filter_chain_match", RS_STAT_COUNTER);
    l->st.downstream_cx_length_ms =
        rs_cfg_stat("listener", scope, "downstream_cx_length_ms", RS_STAT_HISTOGRAM);
    l->st.downstream_pre_cx_active =
        rs_cfg_stat("listener", scope, "downstream_pre_cx_active", RS_STAT_GAUGE);
    l->st.downstream_pre_cx_timeout =
        rs_cfg_stat("listener", scope, "downstream_pre_cx_timeout", RS_STAT_COUNTER);
    for (int i = 0; i < RS_TLS_STAT_COUNT; i++) {
        char leaf[48];
        snprintf(leaf, sizeof leaf, "ssl.%s", rs_tls_stat_names[i]);
        l->st.ssl[i] = rs_cfg_stat("listener", scope, leaf, RS_STAT_COUNTER);
    }
    uint16_t port = (uint16_t)sa->port_value;
    l->nchains = (uint32_t)pl->n_filter_chains;
    l->chains = xcalloc(l->nchains + 1, sizeof *l->chains);
    for (uint32_t i = 0; i < l->nchains; i++) {
        size_t old = path_push(cx, "filter_chains[%u]", i);
        if (compile_chain(cx, &l->chains[i], pl->filter_chains[i], port)) return -1;
        path_pop(cx, old);
    }
    if (pl->default_filter_chain) {
        size_t old = path_push(cx, "default_filter_chain");
        if (compile_chain(cx, &l->chains[l->nchains], pl->default_filter_chain, port)) return -1;
        l->default_chain = &l->chains[l->nchains];
        path_pop(cx, old);
    }
    if (l->nchains == 0 && !l->default_chain)
        return fail(cx, "filter_chains", "at least one filter chain is required");
    if (pl->filter_chain_matcher && rs_cfg_fcm(cx, l, pl)) return -1;
    /* the routes an HCM takes from RDS are part of what the listener serves */
    for (uint32_t i = 0; i < l->nchains + (l->default_chain ? 1 : 0); i++) {
        const char *rds = l->chains[i].hcm ? l->chains[i].hcm->rds_name : NULL;
        for (size_t k = 0; rds && cx->in && k < cx->in->n[RS_XDS_RDS]; k++) {
            const struct rs_xds_resource *r = &cx->in->res[RS_XDS_RDS][k];
            if (strcmp(r->name, rds) != 0) continue;
            /* eight bytes a step: a 10,000-route configuration is a megabyte, hashed again
             * for every listener naming it on every compile */
            size_t b = 0;
            for (uint64_t w; b + 8 <= r->len; b += 8) {
                memcpy(&w, r->bytes + b, 8);
                l->hash = (l->hash ^ w) * 0x100000001b3ull;
            }
            for (; b < r->len; b++) l->hash = (l->hash ^ r->bytes[b]) * 0x100000001b3ull;
        }
    }
    return 0;
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static void free_logs_refs(struct rs_access_log **logs, uint32_t *idx)
{
    free(logs);
    free(idx);
}

static void free_chain(struct rs_filter_chain *fc)
{
    free(fc->name);
    rs_cfg_chain_match_free(&fc->m);
    rs_tls_ctx_unref(fc->tls_ctx);
    free(fc->active_cx);
    free_rbac_stages(fc->rbac, fc->nrbac);
    if (fc->hcm) {
        free_rbac_stages(fc->hcm->rbac, fc->hcm->nrbac);
        if (fc->hcm->routes) rs_route_table_free(fc->hcm->routes);
        free(fc->hcm->stat_prefix);
        free(fc->hcm->rds_name);
        free(fc->hcm->server_name);
        free(fc->hcm->default_host_for_http_10);
        for (uint32_t i = 0; i < fc->hcm->n_upstream_alpn; i++) free(fc->hcm->upstream_alpn[i]);
        free(fc->hcm->upstream_alpn);
        free_logs_refs(fc->hcm->logs, fc->hcm->log_index);
        free(fc->hcm);
    }
    if (fc->tcp) {
        free(fc->tcp->stat_prefix);
        free(fc->tcp->clusters);
        free(fc->tcp->weights);
        free_logs_refs(fc->tcp->logs, fc->tcp->log_index);
        free(fc->tcp);
    }
}

int rs_snapshot_set_workers(struct rs_snapshot *s, uint32_t nworkers)
{
    for (uint32_t i = 0; i < s->nclusters; i++) {
        struct rs_cluster *c = s->clusters[i];
        if (c->wc) continue;
        c->wc = aligned_alloc(64, nworkers * sizeof *c->wc);
        if (!c->wc) return -ENOMEM;
        memset(c->wc, 0, nworkers * sizeof *c->wc);
        c->nwc = nworkers;
    }
    for (uint32_t i = 0; i < s->nlogs; i++)
        if (rs_access_log_set_workers(s->logs[i], nworkers)) return -ENOMEM;
    return 0;
}

void rs_cfg_listener_free(struct rs_listener *l)
{
    rs_fcm_free(l->matcher);
    for (uint32_t j = 0; j < l->nchains + 1 && l->chains; j++) free_chain(&l->chains[j]);
    free(l->chains);
    free_logs_refs(l->logs, l->log_index);
    free(l->name);
}

static int64_t snapshots_live; /* atomic; signed: tests free snapshots they built by hand */

void rs_cfg_snapshot_born(void)
{
    __atomic_add_fetch(&snapshots_live, 1, __ATOMIC_RELAXED);
}

int64_t rs_cfg_snapshots_live(void)
{
    return __atomic_load_n(&snapshots_live, __ATOMIC_ACQUIRE);
}

static void snapshot_free(struct rs_snapshot *s)
{
    for (uint32_t i = 0; i < s->nlisteners; i++) rs_cfg_listener_free(&s->listeners[i]);
    free(s->listeners);
    for (uint32_t i = 0; i < s->nclusters; i++) rs_cluster_unref(s->clusters[i]);
    free(s->clusters);
    free(s->cluster_slots);
    for (uint32_t i = 0; i < s->nlogs; i++) rs_access_log_destroy(s->logs[i]);
    free(s->logs);
    free(s->node_id);
    free(s->node_cluster);
    free(s->admin_access_log_path);
    if (s->bootstrap && !s->bootstrap_borrowed)
        protobuf_c_message_free_unpacked(&s->bootstrap->base, NULL);
    rs_skipped_free(&s->skipped);
    if (s->xds && s->xds_release) s->xds_release(s->xds);
    for (uint32_t i = 0; i < s->n_sds_states && s->sds_release; i++)
        s->sds_release(s->sds_states[i]);
    free(s->sds_states);
    free(s);
    __atomic_sub_fetch(&snapshots_live, 1, __ATOMIC_RELEASE);
}

void rs_cfg_snapshot_free(struct rs_snapshot *s)
{
    snapshot_free(s);
}

void rs_snapshot_ref(struct rs_snapshot *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void rs_snapshot_unref(struct rs_snapshot *s)
{
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) snapshot_free(s);
}

int rs_cfg_bootstrap_head(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    struct rs_snapshot *s = cx->snap;
    if (bs->node) {
        s->node_id = xstrdup(bs->node->id);
        s->node_cluster = xstrdup(bs->node->cluster);
    }
    if (bs->admin && bs->admin->address) {
        size_t old = path_push(cx, "admin");
        const Envoy__Config__Core__V3__SocketAddress *sa;
        if (rs_cfg_socket_address(cx, bs->admin->address, "address", true, &sa)) return -1;
        rs_cfg_ip_port(sa->address, sa->port_value, &s->admin_addr, &s->admin_addrlen);
        s->has_admin = true;
        path_pop(cx, old);
    }
    return 0;
}

static int compile_bootstrap(struct cctx *cx, const Envoy__Config__Bootstrap__V3__Bootstrap *bs)
{
    struct rs_snapshot *s = cx->snap;
    if (rs_cfg_bootstrap_head(cx, bs)) return -1;
    if (bs->dynamic_resources && cx->serve)
        return fail(cx, "dynamic_resources",
                    "needs the ADS client: compile with rs_config_compile_xds");
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = bs->static_resources;
    if (!sr) return 0;
    s->clusters = xcalloc(sr->n_clusters + 1, sizeof *s->clusters);
    for (uint32_t i = 0; i < sr->n_clusters; i++) {
        struct rs_cluster *c = xcalloc(1, sizeof *c);
        c->refs = 1;
        size_t old = path_push(cx, "static_resources.clusters[%u]", i);
        if (rs_cfg_cluster(cx, c, sr->clusters[i]) ||
            (rs_snapshot_add_cluster(s, c) &&
             fail(cx, "name", "duplicate cluster name \"%s\"", c->name))) {
            rs_cluster_unref(c);
            return -1;
        }
        path_pop(cx, old);
    }
    s->nlisteners = (uint32_t)sr->n_listeners;
    s->listeners = xcalloc(s->nlisteners, sizeof *s->listeners);
    for (uint32_t i = 0; i < s->nlisteners; i++) {
        s->listeners[i].index = i;
        size_t old = path_push(cx, "static_resources.listeners[%u]", i);
        if (rs_cfg_listener(cx, &s->listeners[i], sr->listeners[i])) return -1;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(s->listeners[j].name, s->listeners[i].name) == 0)
                return fail(cx, "name", "duplicate listener name \"%s\"", s->listeners[i].name);
        path_pop(cx, old);
    }
    return 0;
}

struct rs_snapshot *rs_config_compile(Envoy__Config__Bootstrap__V3__Bootstrap *bs, bool serve,
                                      char *err, size_t errlen)
{
    struct rs_snapshot *s = xcalloc(1, sizeof *s);
    s->refs = 1;
    rs_cfg_snapshot_born();
    s->bootstrap = bs;
    struct cctx cx = {.snap = s, .serve = serve, .err = err, .errlen = errlen};
    err[0] = '\0';
    if (compile_bootstrap(&cx, bs) != 0) {
        snapshot_free(s);
        return NULL;
    }
    return s;
}
