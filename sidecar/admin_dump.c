/* /config_dump in Envoy's shape: the bootstrap, then static and dynamic resources per type. The
 * dynamic ones come from the xDS state a snapshot was compiled from, with version_info and
 * last_updated; what the state holds but the snapshot left out is warming. Secrets (static, over
 * ADS, and from separate SDS servers) are redacted as Envoy does. */
#include "sidecar/admin_dump.h"

#include <string.h>
#include <time.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/config.h"
#include "sidecar/filters.h"
#include "xds/ads.h"
#include "xds/pbjson.h"

#define TYPE_PREFIX "type.googleapis.com/"

/* {"@type": type, ...fields of m}: Envoy's Any rendering of a message. */
static json_t *typed(const char *type, const ProtobufCMessage *m)
{
    json_t *o = json_pack("{s:s}", "@type", type), *body = xds_to_json(m);
    if (body) json_object_update(o, body);
    json_decref(body);
    return o;
}

/* RFC 3339 with milliseconds, as protobuf's JSON mapping writes a Timestamp. */
static json_t *timestamp(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[40], out[48];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03dZ", b, (int)(ms % 1000));
    return json_string(out);
}

static json_t *dump_entry(const char *section, const char *type, const struct xds_resource *r)
{
    return json_pack("{s:s,s:o,s:o}", "version_info", r->version ? r->version : "", section,
                     typed(type, r->msg), "last_updated", timestamp(r->last_updated_ms));
}

static const struct xds_type_table *table(const struct xds_state *st, enum xds_type t)
{
    return st ? st->types[t] : NULL;
}

static bool has_cluster(const struct rs_snapshot *s, const char *name)
{
    return rs_config_cluster_index(s, name) >= 0;
}

static bool has_listener(const struct rs_snapshot *s, const char *name)
{
    for (uint32_t i = 0; i < s->nlisteners; i++)
        if (strcmp(s->listeners[i].name, name) == 0) return true;
    return false;
}

static json_t *clusters_dump(const struct rs_snapshot *snap, const struct xds_state *st)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
        snap->bootstrap ? snap->bootstrap->static_resources : NULL;
    json_t *stat = json_array(), *active = json_array(), *warming = json_array();
    for (size_t i = 0; sr && i < sr->n_clusters; i++)
        json_array_append_new(stat, json_pack("{s:o}", "cluster",
                                              typed(TYPE_PREFIX "envoy.config.cluster.v3.Cluster",
                                                    &sr->clusters[i]->base)));
    const struct xds_type_table *cds = table(st, XDS_CDS);
    for (size_t i = 0; cds && i < cds->n; i++)
        json_array_append_new(
            has_cluster(snap, cds->res[i]->name) ? active : warming,
            dump_entry("cluster", TYPE_PREFIX "envoy.config.cluster.v3.Cluster", cds->res[i]));
    json_t *o = json_pack("{s:s,s:s,s:o}", "@type", TYPE_PREFIX "envoy.admin.v3.ClustersConfigDump",
                          "version_info", cds ? cds->version_info : "", "static_clusters", stat);
    if (st) {
        json_object_set_new(o, "dynamic_active_clusters", active);
        json_object_set_new(o, "dynamic_warming_clusters", warming);
    } else {
        json_decref(active);
        json_decref(warming);
    }
    return o;
}

static json_t *listeners_dump(const struct rs_snapshot *snap, const struct xds_state *st)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
        snap->bootstrap ? snap->bootstrap->static_resources : NULL;
    json_t *stat = json_array(), *dyn = json_array();
    for (size_t i = 0; sr && i < sr->n_listeners; i++)
        json_array_append_new(stat, json_pack("{s:o}", "listener",
                                              typed(TYPE_PREFIX "envoy.config.listener.v3.Listener",
                                                    &sr->listeners[i]->base)));
    const struct xds_type_table *lds = table(st, XDS_LDS);
    for (size_t i = 0; lds && i < lds->n; i++) {
        const struct xds_resource *r = lds->res[i];
        json_t *state =
            json_pack("{s:s,s:o,s:o}", "version_info", r->version ? r->version : "", "listener",
                      typed(TYPE_PREFIX "envoy.config.listener.v3.Listener", r->msg),
                      "last_updated", timestamp(r->last_updated_ms));
        json_array_append_new(
            dyn, json_pack("{s:s,s:o}", "name", r->name,
                           has_listener(snap, r->name) ? "active_state" : "warming_state", state));
    }
    json_t *o =
        json_pack("{s:s,s:s,s:o}", "@type", TYPE_PREFIX "envoy.admin.v3.ListenersConfigDump",
                  "version_info", lds ? lds->version_info : "", "static_listeners", stat);
    if (st)
        json_object_set_new(o, "dynamic_listeners", dyn);
    else
        json_decref(dyn);
    return o;
}

static json_t *dynamic_dump(const struct xds_state *st, enum xds_type t, const char *dump_type,
                            const char *list, const char *section, const char *res_type)
{
    json_t *arr = json_array();
    const struct xds_type_table *tt = table(st, t);
    for (size_t i = 0; tt && i < tt->n; i++)
        json_array_append_new(arr, dump_entry(section, res_type, tt->res[i]));
    return json_pack("{s:s,s:o}", "@type", dump_type, list, arr);
}

/* Envoy prints key material replaced wherever it is (its `sensitive` fields): a TlsCertificate's
 * private_key and password, a GenericSecret's secret, session ticket keys, in secrets and inline
 * in transport sockets alike. The dump is in protobuf's JSON mapping (lowerCamelCase names). A
 * DataSource naming a file keeps the name (the path is not the secret). */
static void redact_value(json_t *parent, const char *key)
{
    json_t *v = json_object_get(parent, key);
    if (json_is_object(v) && json_object_get(v, "filename")) return;
    json_object_set_new(parent, key, json_pack("{s:s}", "inlineString", "[redacted]"));
}

static void redact(json_t *j)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) redact(v);
        return;
    }
    if (!json_is_object(j)) return;
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(j, tmp, key, v)
    {
        if (strcmp(key, "privateKey") == 0 || strcmp(key, "password") == 0 ||
            strcmp(key, "sessionTicketKeys") == 0)
            redact_value(j, key);
        else if (strcmp(key, "genericSecret") == 0 && json_is_object(v) &&
                 json_object_get(v, "secret"))
            redact_value(v, "secret");
        else
            redact(v);
    }
}

static void secrets_from(json_t *arr, const struct xds_state *st)
{
    const struct xds_type_table *sds = table(st, XDS_SDS);
    for (size_t i = 0; sds && i < sds->n; i++) {
        const struct xds_resource *r = sds->res[i];
        json_t *secret =
            typed(TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret", r->msg);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o,s:o}", "name", r->name, "version_info",
                                             r->version ? r->version : "", "last_updated",
                                             timestamp(r->last_updated_ms), "secret", secret));
    }
}

/* Envoy's SecretsConfigDump: the bootstrap's static_resources.secrets, then the dynamic ones
 * (over ADS, and from each separate SDS server the snapshot was compiled with), keys redacted. */
static json_t *secrets_dump(const struct rs_snapshot *snap, const struct xds_state *st)
{
    json_t *stat = json_array(), *arr = json_array();
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr =
        snap->bootstrap ? snap->bootstrap->static_resources : NULL;
    for (size_t i = 0; sr && i < sr->n_secrets; i++) {
        json_t *secret = typed(TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.Secret",
                               &sr->secrets[i]->base);
        json_array_append_new(stat, json_pack("{s:s,s:o}", "name",
                                              sr->secrets[i]->name ? sr->secrets[i]->name : "",
                                              "secret", secret));
    }
    secrets_from(arr, st);
    for (uint32_t i = 0; i < snap->n_sds_states; i++) secrets_from(arr, snap->sds_states[i]);
    return json_pack("{s:s,s:o,s:o}", "@type", TYPE_PREFIX "envoy.admin.v3.SecretsConfigDump",
                     "static_secrets", stat, "dynamic_active_secrets", arr);
}

/* Ringside's addition, as a google.protobuf.Struct so tools that decode every entry (istioctl)
 * still can: the filters accepted but not run, and why. */
static json_t *skipped_dump(const struct rs_snapshot *snap)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < snap->skipped.n; i++) {
        const struct rs_skipped_filter *f = &snap->skipped.v[i];
        json_array_append_new(arr,
                              json_pack("{s:s,s:s,s:s,s:s}", "where", f->where, "name", f->name,
                                        "type", f->type ? f->type : "", "reason", f->reason));
    }
    return json_pack("{s:s,s:{s:o}}", "@type", TYPE_PREFIX "google.protobuf.Struct", "value",
                     "ringside_skipped_filters", arr);
}

json_t *rs_admin_config_dump_json(const struct rs_snapshot *snap)
{
    json_t *configs = json_array();
    if (snap && snap->bootstrap) {
        /* the state a snapshot keeps is ADS's (rs_xds_input_from_state) */
        const struct xds_state *st = snap->xds;
        json_array_append_new(configs, json_pack("{s:s,s:o}", "@type",
                                                 TYPE_PREFIX "envoy.admin.v3.BootstrapConfigDump",
                                                 "bootstrap", xds_to_json(&snap->bootstrap->base)));
        json_array_append_new(configs, clusters_dump(snap, st));
        if (st)
            json_array_append_new(
                configs,
                dynamic_dump(st, XDS_EDS, TYPE_PREFIX "envoy.admin.v3.EndpointsConfigDump",
                             "dynamic_endpoint_configs", "endpoint_config",
                             TYPE_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment"));
        json_array_append_new(configs, listeners_dump(snap, st));
        if (st) {
            json_array_append_new(
                configs, dynamic_dump(st, XDS_RDS, TYPE_PREFIX "envoy.admin.v3.RoutesConfigDump",
                                      "dynamic_route_configs", "route_config",
                                      TYPE_PREFIX "envoy.config.route.v3.RouteConfiguration"));
        }
        if (st || snap->n_sds_states ||
            (snap->bootstrap->static_resources && snap->bootstrap->static_resources->n_secrets))
            json_array_append_new(configs, secrets_dump(snap, st));
        json_array_append_new(configs, skipped_dump(snap));
    }
    redact(configs); /* bootstrap, transport sockets and secrets alike */
    return json_pack("{s:o}", "configs", configs);
}
