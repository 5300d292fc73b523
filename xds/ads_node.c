/* The ADS client's configuration from the bootstrap (ads_config and the static cluster it names)
 * and Istio's node identity (id and metadata from pilot-agent's environment variables). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "xds/ads_impl.h"
#include "xds/any.h"

extern char **environ;

typedef Google__Protobuf__Struct Struct;
typedef Google__Protobuf__Value Value;
typedef Google__Protobuf__Struct__FieldsEntry FieldsEntry;

/* ---- node --------------------------------------------------------------------------------- */

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') return *envp + n + 1;
    return NULL;
}

static void *zalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p) abort();
    return p;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = zalloc(n + 1);
    memcpy(p, s, n);
    return p;
}

static bool has_key(const Struct *s, const char *key)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (strcmp(s->fields[i]->key, key) == 0) return true;
    return false;
}

/* Adds key = v (owned) unless the key is there already. */
static void put(Struct *s, const char *key, size_t klen, Value *v)
{
    char *k = dup_n(key, klen);
    if (has_key(s, k)) {
        free(k);
        protobuf_c_message_free_unpacked(&v->base, NULL);
        return;
    }
    s->fields = realloc(s->fields, (s->n_fields + 1) * sizeof *s->fields);
    if (!s->fields) abort();
    FieldsEntry *e = zalloc(sizeof *e);
    google__protobuf__struct__fields_entry__init(e);
    e->key = k;
    e->value = v;
    s->fields[s->n_fields++] = e;
}

static Value *string_value(const char *str)
{
    Value *v = zalloc(sizeof *v);
    google__protobuf__value__init(v);
    v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v->string_value = dup_n(str, strlen(str));
    return v;
}

/* ISTIO_METAJSON_LABELS holds the pod's labels as a JSON object of strings. */
static Value *labels_value(const char *json)
{
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    Value *v = zalloc(sizeof *v);
    google__protobuf__value__init(v);
    v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    v->struct_value = zalloc(sizeof *v->struct_value);
    google__protobuf__struct__init(v->struct_value);
    const char *k;
    json_t *val;
    json_object_foreach(j, k, val)
    {
        if (json_is_string(val))
            put(v->struct_value, k, strlen(k), string_value(json_string_value(val)));
    }
    json_decref(j);
    return v;
}

static Envoy__Config__Core__V3__Node *copy_node(const Envoy__Config__Core__V3__Node *n)
{
    if (n) return (Envoy__Config__Core__V3__Node *)xds_message_clone(&n->base);
    Envoy__Config__Core__V3__Node *c = zalloc(sizeof *c);
    envoy__config__core__v3__node__init(c);
    return c;
}

static void env_metadata(Struct *md, char *const *envp)
{
    static const char prefix[] = "ISTIO_META_";
    /* ISTIO_META_<X> first: they are what pilot-agent forwards verbatim. */
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0) continue;
        const char *key = *e + sizeof prefix - 1, *eq = strchr(key, '=');
        if (!eq || eq == key) continue;
        put(md, key, (size_t)(eq - key), string_value(eq + 1));
    }
    static const struct {
        const char *key, *var, *alt;
    } plain[] = {
        {"NAME", "POD_NAME", NULL},
        {"NAMESPACE", "POD_NAMESPACE", NULL},
        {"INSTANCE_IPS", "INSTANCE_IPS", "INSTANCE_IP"},
        {"ISTIO_VERSION", "ISTIO_VERSION", NULL},
        {"CLUSTER_ID", "CLUSTER_ID", NULL},
        {"SERVICE_ACCOUNT", "SERVICE_ACCOUNT", NULL},
        {"WORKLOAD_NAME", "WORKLOAD_NAME", NULL},
        {"INTERCEPTION_MODE", "INTERCEPTION_MODE", NULL},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        const char *v = env_get(envp, plain[i].var);
        if (!v && plain[i].alt) v = env_get(envp, plain[i].alt);
        if (v && *v) put(md, plain[i].key, strlen(plain[i].key), string_value(v));
    }
    const char *labels = env_get(envp, "ISTIO_METAJSON_LABELS");
    Value *lv = labels ? labels_value(labels) : NULL;
    if (lv) put(md, "LABELS", 6, lv);
}

Envoy__Config__Core__V3__Node *xds_ads_node_build(const Envoy__Config__Core__V3__Node *boot_node,
                                                  char *const *envp, char *err, size_t errlen)
{
    if (!envp) envp = environ;
    Envoy__Config__Core__V3__Node *n = copy_node(boot_node);
    if (!n->id || !*n->id) {
        const char *ip = env_get(envp, "INSTANCE_IP"), *pod = env_get(envp, "POD_NAME"),
                   *ns = env_get(envp, "POD_NAMESPACE");
        if (!ip || !*ip || !pod || !*pod || !ns || !*ns) {
            snprintf(err, errlen,
                     "node.id is not set and INSTANCE_IP, POD_NAME, POD_NAMESPACE "
                     "are not all in the environment to build Istio's sidecar id");
            protobuf_c_message_free_unpacked(&n->base, NULL);
            return NULL;
        }
        int len = snprintf(NULL, 0, "sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, ns, ns);
        if (n->id != protobuf_c_empty_string) free(n->id);
        n->id = zalloc((size_t)len + 1);
        snprintf(n->id, (size_t)len + 1, "sidecar~%s~%s.%s~%s.svc.cluster.local", ip, pod, ns, ns);
    }
    if (!n->metadata) {
        n->metadata = zalloc(sizeof *n->metadata);
        google__protobuf__struct__init(n->metadata);
    }
    env_metadata(n->metadata, envp);
    return n;
}

/* ---- bootstrap ---------------------------------------------------------------------------- */

static uint32_t duration_ms(const Google__Protobuf__Duration *d, uint32_t dflt)
{
    if (!d) return dflt;
    int64_t ms = d->seconds * 1000 + d->nanos / 1000000;
    return ms < 0 ? 0 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* The static cluster's first endpoint as a gRPC target. */
int xds_bootstrap_cluster_target(const xds_bootstrap *b, const char *name, char *out, size_t outlen,
                                 char *err, size_t errlen)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b->static_resources;
    for (size_t i = 0; sr && i < sr->n_clusters; i++) {
        const Envoy__Config__Cluster__V3__Cluster *c = sr->clusters[i];
        if (!c->name || strcmp(c->name, name) != 0) continue;
        const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = c->load_assignment;
        const Envoy__Config__Core__V3__Address *addr = NULL;
        if (la && la->n_endpoints && la->endpoints[0]->n_lb_endpoints &&
            la->endpoints[0]->lb_endpoints[0]->host_identifier_case ==
                ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT &&
            la->endpoints[0]->lb_endpoints[0]->endpoint)
            addr = la->endpoints[0]->lb_endpoints[0]->endpoint->address;
        if (addr && addr->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_PIPE &&
            addr->pipe && addr->pipe->path && *addr->pipe->path) {
            snprintf(out, outlen, "unix:%s", addr->pipe->path);
            return 0;
        }
        if (addr &&
            addr->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS &&
            addr->socket_address && addr->socket_address->address &&
            addr->socket_address->port_specifier_case ==
                ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE) {
            const char *h = addr->socket_address->address;
            snprintf(out, outlen, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h,
                     addr->socket_address->port_value);
            return 0;
        }
        snprintf(err, errlen, "cluster \"%s\" has no socket address or pipe endpoint", name);
        return -1;
    }
    snprintf(err, errlen, "no static cluster named \"%s\"", name);
    return -1;
}

int xds_ads_config_from_bootstrap(struct xds_ads_config *cfg, const xds_bootstrap *b, char *err,
                                  size_t errlen)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dr = b->dynamic_resources;
    const Envoy__Config__Core__V3__ApiConfigSource *ads = dr ? dr->ads_config : NULL;
    if (!ads) {
        snprintf(err, errlen, "dynamic_resources.ads_config is not set");
        return -1;
    }
    switch (ads->api_type) {
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC:
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_GRPC:
        cfg->delta = false;
        break;
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC:
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC:
        cfg->delta = true;
        break;
    default:
        snprintf(err, errlen,
                 "dynamic_resources.ads_config.api_type: only GRPC and DELTA_GRPC "
                 "are supported");
        return -1;
    }
    if (ads->n_grpc_services != 1 ||
        ads->grpc_services[0]->target_specifier_case !=
            ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC ||
        !ads->grpc_services[0]->envoy_grpc || !ads->grpc_services[0]->envoy_grpc->cluster_name) {
        snprintf(err, errlen,
                 "dynamic_resources.ads_config.grpc_services: exactly one "
                 "envoy_grpc service is supported");
        return -1;
    }
    if (ads->grpc_services[0]->n_initial_metadata) {
        /* Static headers change what the server sees; not sent yet, so refused by name. */
        snprintf(err, errlen,
                 "dynamic_resources.ads_config.grpc_services[0].initial_metadata: "
                 "not supported");
        return -1;
    }
    const char *cluster = ads->grpc_services[0]->envoy_grpc->cluster_name;
    snprintf(cfg->cluster_name, sizeof cfg->cluster_name, "%s", cluster);
    if (xds_bootstrap_cluster_target(b, cluster, cfg->target, sizeof cfg->target, err, errlen) <
        0) {
        size_t n = strlen(err);
        if (n + 12 < errlen) {
            memmove(err + 12, err, n + 1);
            memcpy(err, "ads_config: ", 12);
        }
        return -1;
    }
    cfg->node_first_only = ads->set_node_on_first_message_only;
    /* Envoy's initial_fetch_timeout default is 15 s; Istio sets 0s (wait forever). */
    uint32_t cds =
        duration_ms(dr->cds_config ? dr->cds_config->initial_fetch_timeout : NULL, 15000);
    uint32_t lds =
        duration_ms(dr->lds_config ? dr->lds_config->initial_fetch_timeout : NULL, 15000);
    cfg->initial_fetch_timeout_ms[XDS_CDS] = cds;
    cfg->initial_fetch_timeout_ms[XDS_EDS] = cds;
    cfg->initial_fetch_timeout_ms[XDS_SDS] = cds;
    cfg->initial_fetch_timeout_ms[XDS_LDS] = lds;
    cfg->initial_fetch_timeout_ms[XDS_RDS] = lds;
    const char *tok = getenv("RINGSIDE_XDS_TOKEN_FILE");
    if (tok && *tok) snprintf(cfg->token_file, sizeof cfg->token_file, "%s", tok);
    return 0;
}
