/* The mesh file: YAML through xds/doc.h (which keeps line numbers) into struct cp_mesh, then the
 * cross-checks (names unique, references resolved, weights sane). Every error names the file, the
 * line and the field path, and the first one stops the parse: a rejected file changes nothing. */
#include "xds/cp/mesh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/doc.h"

struct cp_mesh_mem {
    struct xds_doc *doc;
    void **allocs;
    size_t n_allocs, cap_allocs;
};

struct parser {
    struct cp_mesh *mesh;
    const char *file;
    char *err;
    size_t errlen;
    char path[256];
    size_t path_len;
};

static void *mem_alloc(struct cp_mesh *m, size_t size)
{
    struct cp_mesh_mem *mem = m->mem;
    if (mem->n_allocs == mem->cap_allocs) {
        mem->cap_allocs = mem->cap_allocs ? mem->cap_allocs * 2 : 32;
        mem->allocs = realloc(mem->allocs, mem->cap_allocs * sizeof *mem->allocs);
        if (!mem->allocs) abort(); /* control path */
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) abort();
    mem->allocs[mem->n_allocs++] = p;
    return p;
}

static char *mem_printf(struct cp_mesh *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = mem_alloc(m, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- errors and field paths ------------------------------------------------------------------ */

static int fail(struct parser *p, const struct xds_node *at, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *path = p->path[0] == '.' ? p->path + 1 : p->path;
    if (at && at->line)
        snprintf(p->err, p->errlen, "%s:%u: %s%s%s", p->file, at->line, path, *path ? ": " : "",
                 msg);
    else
        snprintf(p->err, p->errlen, "%s: %s%s%s", p->file, path, *path ? ": " : "", msg);
    return -1;
}

static size_t path_push(struct parser *p, const char *fmt, ...)
{
    size_t mark = p->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->path + p->path_len, sizeof p->path - p->path_len, fmt, ap);
    va_end(ap);
    if (n > 0) p->path_len += (size_t)n;
    if (p->path_len >= sizeof p->path) p->path_len = sizeof p->path - 1;
    return mark;
}

static void path_pop(struct parser *p, size_t mark)
{
    p->path_len = mark;
    p->path[mark] = '\0';
}

/* ---- node access ----------------------------------------------------------------------------- */

static const struct xds_node *get(const struct xds_node *map, const char *key)
{
    for (size_t i = 0; i + 1 < map->n_kids; i += 2)
        if (map->kids[i]->kind == XDS_NODE_SCALAR && strcmp(map->kids[i]->text, key) == 0)
            return map->kids[i + 1];
    return NULL;
}

/* A map whose keys are all in allowed (NULL-terminated): a misspelt key is an error, never a
 * silently ignored setting. */
static int expect_map(struct parser *p, const struct xds_node *n, const char *const *allowed)
{
    if (n->kind != XDS_NODE_MAP) return fail(p, n, "must be a map");
    for (size_t i = 0; allowed && i + 1 < n->n_kids; i += 2) {
        const char *key = n->kids[i]->text;
        size_t k = 0;
        while (allowed[k] && strcmp(allowed[k], key) != 0) k++;
        if (!allowed[k]) {
            size_t mark = path_push(p, ".%s", key);
            fail(p, n->kids[i], "unknown field");
            path_pop(p, mark);
            return -1;
        }
        for (size_t j = i + 2; j + 1 < n->n_kids; j += 2)
            if (strcmp(n->kids[j]->text, key) == 0) {
                size_t mark = path_push(p, ".%s", key);
                fail(p, n->kids[j], "given twice");
                path_pop(p, mark);
                return -1;
            }
    }
    return 0;
}

static int scalar(struct parser *p, const struct xds_node *n, const char **out)
{
    if (n->kind != XDS_NODE_SCALAR) return fail(p, n, "must be a scalar");
    *out = n->text;
    return 0;
}

/* A DNS-label-like name: what Kubernetes allows in service and workload names. */
static int name_value(struct parser *p, const struct xds_node *n, const char **out)
{
    if (scalar(p, n, out) < 0) return -1;
    const char *s = *out;
    size_t len = strlen(s);
    if (len == 0 || len > 63) return fail(p, n, "must be 1 to 63 characters (got \"%s\")", s);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i && i + 1 < len);
        if (!ok)
            return fail(p, n, "must be lower-case letters, digits and inner '-' (got \"%s\")", s);
    }
    return 0;
}

static int u32_value(struct parser *p, const struct xds_node *n, uint32_t lo, uint32_t hi,
                     uint32_t *out)
{
    const char *s = NULL;
    if (scalar(p, n, &s) < 0) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < lo || v > hi)
        return fail(p, n, "must be an integer from %u to %u (got \"%s\")", lo, hi, s);
    *out = (uint32_t)v;
    return 0;
}

static int bool_value(struct parser *p, const struct xds_node *n, int *out)
{
    const char *s = NULL;
    if (scalar(p, n, &s) < 0) return -1;
    if (strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "false") == 0)
        *out = 0;
    else
        return fail(p, n, "must be true or false (got \"%s\")", s);
    return 0;
}

/* Durations as Istio writes them: "250ms", "1.5s", "2m", "1h". */
static int duration_value(struct parser *p, const struct xds_node *n, uint64_t *ms)
{
    const char *s = NULL;
    if (scalar(p, n, &s) < 0) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double scale = 0;
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0)
        scale = 1e3;
    else if (strcmp(end, "m") == 0)
        scale = 60e3;
    else if (strcmp(end, "h") == 0)
        scale = 3600e3;
    if (end == s || errno || scale == 0 || !(v >= 0) || v * scale > 864e5 * 365)
        return fail(p, n, "bad duration \"%s\" (e.g. 250ms, 1.5s, 2m)", s);
    *ms = (uint64_t)(v * scale + 0.5);
    return 0;
}

static int labels_value(struct parser *p, const struct xds_node *n, struct cp_labels *out)
{
    if (expect_map(p, n, NULL) < 0) return -1;
    out->n = n->n_kids / 2;
    out->v = mem_alloc(p->mesh, out->n * sizeof *out->v);
    for (size_t i = 0; i < out->n; i++) {
        size_t mark = path_push(p, ".%s", n->kids[2 * i]->text);
        out->v[i].key = n->kids[2 * i]->text;
        if (!*out->v[i].key) return fail(p, n->kids[2 * i], "empty label key");
        if (scalar(p, n->kids[2 * i + 1], &out->v[i].value) < 0) return -1;
        path_pop(p, mark);
    }
    return 0;
}

/* Calls each(p, item, i, ctx) for every item of a sequence, with "[i]" on the path. */
typedef int (*item_fn)(struct parser *p, const struct xds_node *item, size_t i, void *ctx);

static int each_item(struct parser *p, const struct xds_node *seq, item_fn each, void *ctx)
{
    if (seq->kind != XDS_NODE_SEQ) return fail(p, seq, "must be a list");
    for (size_t i = 0; i < seq->n_kids; i++) {
        size_t mark = path_push(p, "[%zu]", i);
        if (each(p, seq->kids[i], i, ctx) < 0) return -1;
        path_pop(p, mark);
    }
    return 0;
}

/* Looks key up in map; when present, pushes ".key" and runs the parse step given as a statement
 * with `v` bound to the value node. */
#define FIELD(p, map, key, stmt)                                                                   \
    do {                                                                                           \
        const struct xds_node *v = get((map), (key));                                              \
        if (v) {                                                                                   \
            size_t mark_ = path_push((p), ".%s", (key));                                           \
            if ((stmt) < 0) return -1;                                                             \
            path_pop((p), mark_);                                                                  \
        }                                                                                          \
    } while (0)

static int required(struct parser *p, const struct xds_node *map, const char *key)
{
    if (get(map, key)) return 0;
    return fail(p, map, "missing required field \"%s\"", key);
}

/* ---- policy pieces --------------------------------------------------------------------------- */

static int retries_value(struct parser *p, const struct xds_node *n, struct cp_retries *r)
{
    static const char *const keys[] = {"attempts", "per_try_timeout", "retry_on", NULL};
    if (expect_map(p, n, keys) < 0 || required(p, n, "attempts") < 0) return -1;
    r->set = 1;
    r->retry_on = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
    FIELD(p, n, "attempts", u32_value(p, v, 0, 100, &r->attempts));
    FIELD(p, n, "per_try_timeout", duration_value(p, v, &r->per_try_timeout_ms));
    FIELD(p, n, "retry_on", scalar(p, v, &r->retry_on));
    if (!*r->retry_on) return fail(p, get(n, "retry_on"), "retry_on: must not be empty");
    return 0;
}

static int outlier_value(struct parser *p, const struct xds_node *n, struct cp_outlier *o)
{
    static const char *const keys[] = {
        "consecutive_5xx",    "consecutive_gateway_errors", "interval",
        "base_ejection_time", "max_ejection_percent",       NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    *o = (struct cp_outlier){.set = 1,
                             .consecutive_5xx = 5,
                             .interval_ms = 10000,
                             .base_ejection_time_ms = 30000,
                             .max_ejection_percent = 10};
    FIELD(p, n, "consecutive_5xx", u32_value(p, v, 0, 1000000, &o->consecutive_5xx));
    FIELD(p, n, "consecutive_gateway_errors",
          u32_value(p, v, 0, 1000000, &o->consecutive_gateway_errors));
    FIELD(p, n, "interval", duration_value(p, v, &o->interval_ms));
    FIELD(p, n, "base_ejection_time", duration_value(p, v, &o->base_ejection_time_ms));
    FIELD(p, n, "max_ejection_percent", u32_value(p, v, 0, 100, &o->max_ejection_percent));
    if (o->interval_ms == 0) return fail(p, get(n, "interval"), "interval: must be > 0");
    return 0;
}

static int breakers_value(struct parser *p, const struct xds_node *n, struct cp_breakers *b)
{
    static const char *const keys[] = {"max_connections", "max_pending_requests", "max_requests",
                                       "max_retries", NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    /* Envoy's defaults for the limits not given. */
    *b = (struct cp_breakers){.set = 1,
                              .max_connections = 1024,
                              .max_pending_requests = 1024,
                              .max_requests = 1024,
                              .max_retries = 3};
    FIELD(p, n, "max_connections", u32_value(p, v, 1, UINT32_MAX, &b->max_connections));
    FIELD(p, n, "max_pending_requests", u32_value(p, v, 1, UINT32_MAX, &b->max_pending_requests));
    FIELD(p, n, "max_requests", u32_value(p, v, 1, UINT32_MAX, &b->max_requests));
    FIELD(p, n, "max_retries", u32_value(p, v, 0, UINT32_MAX, &b->max_retries));
    return 0;
}

static int header_match_value(struct parser *p, const struct xds_node *n, const char *name,
                              struct cp_header_match *h)
{
    static const char *const keys[] = {"exact", "prefix", "regex", "present", NULL};
    h->name = name;
    if (!*name) return fail(p, n, "empty header name");
    if (expect_map(p, n, keys) < 0) return -1;
    if (n->n_kids != 2) return fail(p, n, "must have exactly one of exact, prefix, regex, present");
    const char *kind = n->kids[0]->text;
    size_t mark = path_push(p, ".%s", kind);
    if (strcmp(kind, "present") == 0) {
        int present;
        if (bool_value(p, n->kids[1], &present) < 0) return -1;
        if (!present) return fail(p, n->kids[1], "only \"present: true\" is supported");
        h->kind = CP_MATCH_PRESENT;
    } else {
        h->kind = strcmp(kind, "exact") == 0    ? CP_MATCH_EXACT
                  : strcmp(kind, "prefix") == 0 ? CP_MATCH_PREFIX
                                                : CP_MATCH_REGEX;
        if (scalar(p, n->kids[1], &h->value) < 0) return -1;
    }
    path_pop(p, mark);
    return 0;
}

static int match_value(struct parser *p, const struct xds_node *n, struct cp_route *r)
{
    static const char *const keys[] = {"prefix", "headers", NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    FIELD(p, n, "prefix", scalar(p, v, &r->prefix));
    if (r->prefix[0] != '/') return fail(p, get(n, "prefix"), "prefix: must start with '/'");
    const struct xds_node *hs = get(n, "headers");
    if (!hs) return 0;
    size_t mark = path_push(p, ".headers");
    if (expect_map(p, hs, NULL) < 0) return -1;
    r->n_headers = hs->n_kids / 2;
    r->headers = mem_alloc(p->mesh, r->n_headers * sizeof *r->headers);
    for (size_t i = 0; i < r->n_headers; i++) {
        size_t m2 = path_push(p, ".%s", hs->kids[2 * i]->text);
        if (header_match_value(p, hs->kids[2 * i + 1], hs->kids[2 * i]->text, &r->headers[i]) < 0)
            return -1;
        path_pop(p, m2);
    }
    path_pop(p, mark);
    return 0;
}

static int dest_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {"subset", "weight", NULL};
    struct cp_route *r = ctx;
    struct cp_dest *d = &r->dests[i];
    if (expect_map(p, n, keys) < 0) return -1;
    d->weight = r->n_dests == 1 ? 100 : 0;
    FIELD(p, n, "subset", scalar(p, v, &d->subset));
    FIELD(p, n, "weight", u32_value(p, v, 0, 1000000, &d->weight));
    if (r->n_dests > 1 && !get(n, "weight"))
        return fail(p, n, "missing required field \"weight\" (the route splits traffic)");
    return 0;
}

static int route_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {"name", "match", "to", "retries", "timeout", NULL};
    struct cp_service *svc = ctx;
    struct cp_route *r = &svc->routes[i];
    if (expect_map(p, n, keys) < 0 || required(p, n, "to") < 0) return -1;
    r->prefix = "/";
    r->name = mem_printf(p->mesh, "route-%zu", i);
    FIELD(p, n, "name", scalar(p, v, &r->name));
    FIELD(p, n, "match", match_value(p, v, r));
    FIELD(p, n, "retries", retries_value(p, v, &r->retries));
    FIELD(p, n, "timeout", duration_value(p, v, &r->timeout_ms));
    const struct xds_node *to = get(n, "to");
    size_t mark = path_push(p, ".to");
    if (to->kind != XDS_NODE_SEQ || to->n_kids == 0) return fail(p, to, "must be a non-empty list");
    r->n_dests = to->n_kids;
    r->dests = mem_alloc(p->mesh, r->n_dests * sizeof *r->dests);
    if (each_item(p, to, dest_item, r) < 0) return -1;
    uint64_t total = 0;
    for (size_t k = 0; k < r->n_dests; k++) total += r->dests[k].weight;
    if (total == 0) return fail(p, to, "weights sum to 0");
    path_pop(p, mark);
    return 0;
}

static int subset_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {"name", "labels", NULL};
    struct cp_service *svc = ctx;
    struct cp_subset *s = &svc->subsets[i];
    if (expect_map(p, n, keys) < 0 || required(p, n, "name") < 0 || required(p, n, "labels") < 0)
        return -1;
    FIELD(p, n, "name", name_value(p, v, &s->name));
    FIELD(p, n, "labels", labels_value(p, v, &s->labels));
    if (s->labels.n == 0) return fail(p, get(n, "labels"), "labels: must select something");
    for (size_t k = 0; k < i; k++)
        if (strcmp(svc->subsets[k].name, s->name) == 0)
            return fail(p, n, "subset \"%s\" defined twice", s->name);
    return 0;
}

static int port_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {"port", "protocol", "name", NULL};
    struct cp_service *svc = ctx;
    struct cp_port *port = &svc->ports[i];
    if (expect_map(p, n, keys) < 0 || required(p, n, "port") < 0) return -1;
    FIELD(p, n, "port", u32_value(p, v, 1, 65535, &port->port));
    const char *proto = "http";
    FIELD(p, n, "protocol", scalar(p, v, &proto));
    if (strcmp(proto, "http") == 0)
        port->proto = CP_PROTO_HTTP;
    else if (strcmp(proto, "tcp") == 0)
        port->proto = CP_PROTO_TCP;
    else if (strcmp(proto, "grpc") == 0)
        port->proto = CP_PROTO_GRPC;
    else {
        size_t mark = path_push(p, ".protocol");
        fail(p, get(n, "protocol"), "must be http, tcp or grpc (got \"%s\")", proto);
        path_pop(p, mark);
        return -1;
    }
    port->name = mem_printf(p->mesh, "%s-%u", proto, port->port);
    FIELD(p, n, "name", scalar(p, v, &port->name));
    for (size_t k = 0; k < i; k++)
        if (svc->ports[k].port == port->port) return fail(p, n, "port %u listed twice", port->port);
    return 0;
}

/* Allocates the array for an optional list field and returns its node (NULL when absent). */
static const struct xds_node *list_field(struct parser *p, const struct xds_node *map,
                                         const char *key, size_t elem, void **arr, size_t *n)
{
    const struct xds_node *v = get(map, key);
    *n = v && v->kind == XDS_NODE_SEQ ? v->n_kids : 0;
    *arr = mem_alloc(p->mesh, *n * elem);
    return v;
}

static int traffic_value(struct parser *p, const struct xds_node *n, struct cp_service *svc)
{
    static const char *const keys[] = {"routes",           "retries",   "timeout",
                                       "connect_timeout",  "lb_policy", "outlier_detection",
                                       "circuit_breakers", NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    list_field(p, n, "routes", sizeof *svc->routes, (void **)&svc->routes, &svc->n_routes);
    FIELD(p, n, "routes", each_item(p, v, route_item, svc));
    FIELD(p, n, "retries", retries_value(p, v, &svc->retries));
    FIELD(p, n, "timeout", duration_value(p, v, &svc->timeout_ms));
    FIELD(p, n, "connect_timeout", duration_value(p, v, &svc->connect_timeout_ms));
    FIELD(p, n, "outlier_detection", outlier_value(p, v, &svc->outlier));
    FIELD(p, n, "circuit_breakers", breakers_value(p, v, &svc->breakers));
    const char *lb = NULL;
    FIELD(p, n, "lb_policy", scalar(p, v, &lb));
    if (!lb || strcmp(lb, "round_robin") == 0)
        svc->lb = CP_LB_ROUND_ROBIN;
    else if (strcmp(lb, "least_request") == 0)
        svc->lb = CP_LB_LEAST_REQUEST;
    else if (strcmp(lb, "random") == 0)
        svc->lb = CP_LB_RANDOM;
    else {
        size_t mark = path_push(p, ".lb_policy");
        fail(p, get(n, "lb_policy"), "must be round_robin, least_request or random (got \"%s\")",
             lb);
        path_pop(p, mark);
        return -1;
    }
    return 0;
}

static int service_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {"name", "namespace", "ports", "subsets", "traffic", NULL};
    (void)ctx;
    struct cp_service *svc = &p->mesh->services[i];
    if (expect_map(p, n, keys) < 0 || required(p, n, "name") < 0 || required(p, n, "ports") < 0)
        return -1;
    svc->ns = "default";
    svc->connect_timeout_ms = p->mesh->options.connect_timeout_ms;
    FIELD(p, n, "name", name_value(p, v, &svc->name));
    FIELD(p, n, "namespace", name_value(p, v, &svc->ns));
    svc->host = mem_printf(p->mesh, "%s.%s.svc.cluster.local", svc->name, svc->ns);
    for (size_t k = 0; k < i; k++)
        if (strcmp(p->mesh->services[k].host, svc->host) == 0)
            return fail(p, n, "service %s/%s defined twice", svc->ns, svc->name);
    const struct xds_node *ports =
        list_field(p, n, "ports", sizeof *svc->ports, (void **)&svc->ports, &svc->n_ports);
    size_t mark = path_push(p, ".ports");
    if (ports->kind != XDS_NODE_SEQ || ports->n_kids == 0)
        return fail(p, ports, "must be a non-empty list");
    if (each_item(p, ports, port_item, svc) < 0) return -1;
    path_pop(p, mark);
    list_field(p, n, "subsets", sizeof *svc->subsets, (void **)&svc->subsets, &svc->n_subsets);
    FIELD(p, n, "subsets", each_item(p, v, subset_item, svc));
    FIELD(p, n, "traffic", traffic_value(p, v, svc));
    return 0;
}

/* ---- workloads ------------------------------------------------------------------------------- */

static int service_ref(struct parser *p, const struct xds_node *n, const char *ns, size_t *out)
{
    const char *ref = NULL;
    if (scalar(p, n, &ref) < 0) return -1;
    const char *dot = strchr(ref, '.');
    size_t name_len = dot ? (size_t)(dot - ref) : strlen(ref);
    const char *want_ns = dot ? dot + 1 : ns;
    for (size_t k = 0; k < p->mesh->n_services; k++) {
        const struct cp_service *s = &p->mesh->services[k];
        if (strlen(s->name) == name_len && strncmp(s->name, ref, name_len) == 0 &&
            strcmp(s->ns, want_ns) == 0) {
            *out = k;
            return 0;
        }
    }
    return fail(p, n, "no service \"%.*s\" in namespace \"%s\"", (int)name_len, ref, want_ns);
}

static int wl_service_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    struct cp_workload *w = ctx;
    if (service_ref(p, n, w->ns, &w->services[i]) < 0) return -1;
    for (size_t k = 0; k < i; k++)
        if (w->services[k] == w->services[i]) return fail(p, n, "service listed twice");
    return 0;
}

static int address_value(struct parser *p, const struct xds_node *n, const char **out)
{
    unsigned char buf[16];
    if (scalar(p, n, out) < 0) return -1;
    if (inet_pton(AF_INET, *out, buf) != 1 && inet_pton(AF_INET6, *out, buf) != 1)
        return fail(p, n, "not an IPv4 or IPv6 address (got \"%s\")", *out);
    return 0;
}

static int locality_value(struct parser *p, const struct xds_node *n, struct cp_workload *w)
{
    static const char *const keys[] = {"region", "zone", "subzone", NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    FIELD(p, n, "region", scalar(p, v, &w->region));
    FIELD(p, n, "zone", scalar(p, v, &w->zone));
    FIELD(p, n, "subzone", scalar(p, v, &w->subzone));
    return 0;
}

static int workload_item(struct parser *p, const struct xds_node *n, size_t i, void *ctx)
{
    static const char *const keys[] = {
        "name", "namespace",   "service_account", "address",  "labels", "services",
        "port", "port_offset", "weight",          "locality", NULL};
    (void)ctx;
    struct cp_workload *w = &p->mesh->workloads[i];
    if (expect_map(p, n, keys) < 0 || required(p, n, "name") < 0 || required(p, n, "address") < 0)
        return -1;
    w->ns = "default";
    w->service_account = "default";
    w->weight = 1;
    w->region = w->zone = w->subzone = "";
    FIELD(p, n, "name", name_value(p, v, &w->name));
    FIELD(p, n, "namespace", name_value(p, v, &w->ns));
    FIELD(p, n, "service_account", name_value(p, v, &w->service_account));
    FIELD(p, n, "address", address_value(p, v, &w->address));
    FIELD(p, n, "labels", labels_value(p, v, &w->labels));
    FIELD(p, n, "port", u32_value(p, v, 1, 65535, &w->port));
    FIELD(p, n, "port_offset", u32_value(p, v, 0, 50000, &w->port_offset));
    FIELD(p, n, "weight", u32_value(p, v, 1, 128, &w->weight));
    FIELD(p, n, "locality", locality_value(p, v, w));
    list_field(p, n, "services", sizeof *w->services, (void **)&w->services, &w->n_services);
    FIELD(p, n, "services", each_item(p, v, wl_service_item, w));
    for (size_t k = 0; k < i; k++) {
        const struct cp_workload *o = &p->mesh->workloads[k];
        if (strcmp(o->name, w->name) == 0 && strcmp(o->ns, w->ns) == 0)
            return fail(p, n, "workload %s/%s defined twice", w->ns, w->name);
        if (strcmp(o->address, w->address) == 0)
            return fail(p, get(n, "address"),
                        "address %s already used by workload %s (a node is found by its address)",
                        w->address, o->name);
    }
    return 0;
}

/* ---- whole-mesh checks ----------------------------------------------------------------------- */

/* Route destinations name subsets of their own service. */
static int check_routes(struct parser *p, const struct xds_node *services)
{
    for (size_t i = 0; i < p->mesh->n_services; i++) {
        const struct cp_service *svc = &p->mesh->services[i];
        for (size_t r = 0; r < svc->n_routes; r++)
            for (size_t d = 0; d < svc->routes[r].n_dests; d++) {
                const char *sub = svc->routes[r].dests[d].subset;
                if (!sub || cp_service_subset(svc, sub)) continue;
                size_t mark =
                    path_push(p, "services[%zu].traffic.routes[%zu].to[%zu].subset", i, r, d);
                fail(p, services->kids[i], "service %s has no subset \"%s\"", svc->name, sub);
                path_pop(p, mark);
                return -1;
            }
    }
    return 0;
}

/* A tcp port cannot be shared: without service VIPs, the listener on that port can only forward
 * to one service. http/grpc ports share a listener and a route configuration. */
static int check_ports(struct parser *p, const struct xds_node *services)
{
    const struct cp_mesh *m = p->mesh;
    for (size_t i = 0; i < m->n_services; i++)
        for (size_t a = 0; a < m->services[i].n_ports; a++)
            for (size_t j = 0; j < i; j++)
                for (size_t b = 0; b < m->services[j].n_ports; b++) {
                    const struct cp_port *x = &m->services[i].ports[a],
                                         *y = &m->services[j].ports[b];
                    if (x->port != y->port) continue;
                    int tcp = x->proto == CP_PROTO_TCP || y->proto == CP_PROTO_TCP;
                    if (!tcp) continue;
                    size_t mark = path_push(p, "services[%zu].ports[%zu]", i, a);
                    fail(p, services->kids[i],
                         "port %u is also a port of service %s: a tcp port must belong to one "
                         "service",
                         x->port, m->services[j].name);
                    path_pop(p, mark);
                    return -1;
                }
    return 0;
}

/* With ingress listeners a workload's sidecar listens on <address>:<service port + offset>, so
 * its application must listen on another port of that address (the workload's `port`). */
static int check_ingress(struct parser *p, const struct xds_node *workloads)
{
    const struct cp_mesh *m = p->mesh;
    if (m->options.ingress != CP_INGRESS_LISTENERS) return 0;
    for (size_t i = 0; i < m->n_workloads; i++) {
        const struct cp_workload *w = &m->workloads[i];
        for (size_t s = 0; s < w->n_services; s++) {
            const struct cp_service *svc = &m->services[w->services[s]];
            for (size_t k = 0; k < svc->n_ports; k++) {
                uint32_t listener = svc->ports[k].port + w->port_offset;
                uint32_t app = w->port ? w->port : svc->ports[k].port;
                if (app != listener) continue;
                const struct xds_node *at = workloads->kids[i];
                size_t mark = path_push(p, "workloads[%zu].port", i);
                fail(p, get(at, "port") ? get(at, "port") : at,
                     "the application must listen on another port than its sidecar's inbound "
                     "listener %s:%u (options.ingress: listeners)",
                     w->address, listener);
                path_pop(p, mark);
                return -1;
            }
        }
    }
    return 0;
}

static void default_routes(struct cp_mesh *m)
{
    for (size_t i = 0; i < m->n_services; i++) {
        struct cp_service *svc = &m->services[i];
        for (size_t r = 0; r < svc->n_routes; r++)
            if (!svc->routes[r].retries.set) svc->routes[r].retries = svc->retries;
        if (svc->n_routes) continue;
        svc->n_routes = 1;
        svc->routes = mem_alloc(m, sizeof *svc->routes);
        svc->routes[0] = (struct cp_route){
            .name = "default", .prefix = "/", .retries = svc->retries, .n_dests = 1};
        svc->routes[0].dests = mem_alloc(m, sizeof *svc->routes[0].dests);
        svc->routes[0].dests[0].weight = 100;
    }
}

/* A SPIFFE trust domain: lower-case letters, digits, '.', '-', '_' (SPIFFE ID spec 2.1). */
static int trust_domain_value(struct parser *p, const struct xds_node *n, const char **out)
{
    if (scalar(p, n, out) < 0) return -1;
    const char *s = *out;
    if (!*s || strlen(s) > 255 || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != strlen(s))
        return fail(p, n, "must be lower-case letters, digits, '.', '-' or '_' (got \"%s\")", s);
    return 0;
}

/* An error on options.<key>, at that key's line. */
static int option_fail(struct parser *p, const struct xds_node *n, const char *key, const char *fmt,
                       ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mark = path_push(p, ".%s", key);
    fail(p, get(n, key), "%s", msg);
    path_pop(p, mark);
    return -1;
}

/* mtls: false | true (STRICT) | STRICT | PERMISSIVE, Istio's PeerAuthentication mode names. */
static int mtls_value(struct parser *p, const struct xds_node *n, enum cp_mtls *out)
{
    const char *s = NULL;
    if (scalar(p, n, &s) < 0) return -1;
    if (strcmp(s, "false") == 0 || strcmp(s, "DISABLE") == 0)
        *out = CP_MTLS_OFF;
    else if (strcmp(s, "true") == 0 || strcmp(s, "STRICT") == 0)
        *out = CP_MTLS_STRICT;
    else if (strcmp(s, "PERMISSIVE") == 0)
        *out = CP_MTLS_PERMISSIVE;
    else
        return fail(p, n, "must be true, false, STRICT, PERMISSIVE or DISABLE (got \"%s\")", s);
    return 0;
}

static int options_value(struct parser *p, const struct xds_node *n, struct cp_options *o)
{
    static const char *const keys[] = {
        "bind",     "capture", "tls_mode_label", "connect_timeout", "trust_domain",
        "cert_ttl", "ca_dir",  "mtls",           "ingress",         "access_log",
        NULL};
    if (expect_map(p, n, keys) < 0) return -1;
    const char *bind = "any";
    FIELD(p, n, "bind", scalar(p, v, &bind));
    if (strcmp(bind, "any") == 0)
        o->bind = CP_BIND_ANY;
    else if (strcmp(bind, "workload") == 0)
        o->bind = CP_BIND_WORKLOAD;
    else {
        size_t mark = path_push(p, ".bind");
        fail(p, get(n, "bind"), "must be any or workload (got \"%s\")", bind);
        path_pop(p, mark);
        return -1;
    }
    const char *capture = "none";
    FIELD(p, n, "capture", scalar(p, v, &capture));
    if (strcmp(capture, "none") == 0)
        o->capture = 0;
    else if (strcmp(capture, "iptables") == 0)
        o->capture = 1;
    else {
        size_t mark = path_push(p, ".capture");
        fail(p, get(n, "capture"), "must be none or iptables (got \"%s\")", capture);
        path_pop(p, mark);
        return -1;
    }
    FIELD(p, n, "tls_mode_label", bool_value(p, v, &o->tls_mode_label));
    FIELD(p, n, "connect_timeout", duration_value(p, v, &o->connect_timeout_ms));
    FIELD(p, n, "trust_domain", trust_domain_value(p, v, &o->trust_domain));
    FIELD(p, n, "cert_ttl", duration_value(p, v, &o->cert_ttl_ms));
    if (o->cert_ttl_ms < 1000) {
        size_t mark = path_push(p, ".cert_ttl");
        fail(p, get(n, "cert_ttl"), "must be at least 1s (certificates count whole seconds)");
        path_pop(p, mark);
        return -1;
    }
    FIELD(p, n, "ca_dir", scalar(p, v, &o->ca_dir));
    FIELD(p, n, "mtls", mtls_value(p, v, &o->mtls));
    const char *ingress = "none";
    FIELD(p, n, "ingress", scalar(p, v, &ingress));
    if (strcmp(ingress, "none") == 0)
        o->ingress = CP_INGRESS_NONE;
    else if (strcmp(ingress, "listeners") == 0)
        o->ingress = CP_INGRESS_LISTENERS;
    else
        return option_fail(p, n, "ingress", "must be none or listeners (got \"%s\")", ingress);
    /* Inbound listeners bind the service ports on each workload's own address: with 0.0.0.0 they
     * would take the outbound listeners' ports, and with capture virtualInbound does their job. */
    if (o->ingress == CP_INGRESS_LISTENERS && (o->bind != CP_BIND_WORKLOAD || o->capture))
        return option_fail(p, n, "ingress", "listeners needs bind: workload and capture: none");
    FIELD(p, n, "access_log", scalar(p, v, &o->access_log));
    if (o->access_log && !o->access_log[0]) o->access_log = NULL;
    return 0;
}

static int parse_root(struct parser *p, const struct xds_node *root)
{
    static const char *const keys[] = {"options", "services", "workloads", NULL};
    struct cp_mesh *m = p->mesh;
    /* An empty document is refused: a file caught half-written (truncated by an editor before
     * the new text lands) must not wipe the mesh. */
    if (!root || (root->kind == XDS_NODE_MAP && root->n_kids == 0))
        return fail(p, NULL, "empty file");
    if (expect_map(p, root, keys) < 0) return -1;
    m->options.connect_timeout_ms = 10000; /* Istio's default connect timeout */
    m->options.trust_domain = "cluster.local";
    m->options.cert_ttl_ms = 3600000; /* short-lived, rotated at 2/3 */
    FIELD(p, root, "options", options_value(p, v, &m->options));
    const struct xds_node *services =
        list_field(p, root, "services", sizeof *m->services, (void **)&m->services, &m->n_services);
    FIELD(p, root, "services", each_item(p, v, service_item, NULL));
    const struct xds_node *workloads = list_field(p, root, "workloads", sizeof *m->workloads,
                                                  (void **)&m->workloads, &m->n_workloads);
    FIELD(p, root, "workloads", each_item(p, v, workload_item, NULL));
    if (services && (check_routes(p, services) < 0 || check_ports(p, services) < 0)) return -1;
    if (workloads && check_ingress(p, workloads) < 0) return -1;
    default_routes(m);
    return 0;
}

struct cp_mesh *cp_mesh_parse(const char *text, size_t len, const char *filename, char *err,
                              size_t errlen)
{
    struct cp_mesh *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->mem = calloc(1, sizeof *m->mem);
    if (!m->mem) abort();
    struct parser p = {.mesh = m, .file = filename, .err = err, .errlen = errlen};
    char perr[256];
    m->mem->doc = xds_doc_parse_yaml(text, len, perr, sizeof perr);
    if (!m->mem->doc) {
        snprintf(err, errlen, "%s: %s", filename, perr);
        goto fail;
    }
    if (parse_root(&p, xds_doc_root(m->mem->doc)) < 0) goto fail;
    return m;
fail:
    cp_mesh_free(m);
    return NULL;
}

struct cp_mesh *cp_mesh_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t n; buf && (n = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += n;
        if (len == cap && len < (64u << 20))
            buf = realloc(buf, cap *= 2);
        else if (len == cap)
            break;
    }
    int bad = ferror(f) || !buf || len >= (64u << 20);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: could not read (error, or over 64 MiB)", path);
        return NULL;
    }
    struct cp_mesh *m = cp_mesh_parse(buf, len, path, err, errlen);
    free(buf);
    return m;
}

void cp_mesh_free(struct cp_mesh *m)
{
    if (!m) return;
    if (m->mem) {
        for (size_t i = 0; i < m->mem->n_allocs; i++) free(m->mem->allocs[i]);
        free(m->mem->allocs);
        if (m->mem->doc) xds_doc_free(m->mem->doc);
        free(m->mem);
    }
    free(m);
}

const struct cp_workload *cp_mesh_workload_by_ip(const struct cp_mesh *m, const char *ip)
{
    for (size_t i = 0; i < m->n_workloads; i++)
        if (strcmp(m->workloads[i].address, ip) == 0) return &m->workloads[i];
    return NULL;
}

const struct cp_subset *cp_service_subset(const struct cp_service *svc, const char *name)
{
    for (size_t i = 0; i < svc->n_subsets; i++)
        if (strcmp(svc->subsets[i].name, name) == 0) return &svc->subsets[i];
    return NULL;
}

int cp_labels_match(const struct cp_labels *sel, const struct cp_labels *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        size_t k = 0;
        while (k < labels->n && (strcmp(labels->v[k].key, sel->v[i].key) != 0 ||
                                 strcmp(labels->v[k].value, sel->v[i].value) != 0))
            k++;
        if (k == labels->n) return 0;
    }
    return 1;
}

const char *cp_proto_name(enum cp_proto proto)
{
    return proto == CP_PROTO_TCP ? "tcp" : proto == CP_PROTO_GRPC ? "grpc" : "http";
}
