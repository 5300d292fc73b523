/* The admin API server and its renderers.
 *
 * One thread, blocking sockets, one request per connection (Connection: close): admin traffic is
 * a scrape every few seconds and an operator's curl, so simplicity beats concurrency here. Every
 * wait is a poll() that also watches the stop pipe and a per-connection deadline, so a slow or
 * silent client delays others by at most RS_ADMIN_CONN_TIMEOUT_MS and never delays shutdown.
 * Output shapes follow Envoy's admin handlers so existing tooling and dashboards keep working. */
#include "sidecar/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <llhttp.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "sidecar/admin_dump.h"
#include "sidecar/config.h"
#include "sidecar/stats.h"
#include "xds/pbjson.h"

#define RS_ADMIN_VERSION "0.1.0"
#define RS_ADMIN_CONN_TIMEOUT_MS 5000
#define RS_ADMIN_MAX_URL 4096
#define RS_ADMIN_MAX_REQUEST (64 * 1024) /* headers and body together */
#define RS_ADMIN_MAX_PARAMS 16

/* ---- output buffer ---------------------------------------------------------------------- */

static void buf_add(struct rs_admin_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) abort(); /* control path */
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(struct rs_admin_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct rs_admin_buf *b,
                                                             const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

/* Appends a JSON document and drops the reference. */
static void buf_json(struct rs_admin_buf *b, json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags | JSON_PRESERVE_ORDER);
    if (!s) abort();
    buf_puts(b, s);
    buf_puts(b, "\n");
    free(s);
    json_decref(j);
}

/* Jansson integers are signed: a counter past INT64_MAX would wrap, so clamp it. */
static json_t *json_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* ---- stats collection -------------------------------------------------------------------- */

struct stat_item {
    const char *name; /* the registry's (never freed) or one of ours in `owned` */
    enum rs_stat_kind kind;
    rs_stat_id id;
    uint64_t value;
    struct rs_hist_shard hist;
};

struct stat_list {
    struct stat_item *v;
    size_t n, cap;
};

static struct stat_item *list_push(struct stat_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct stat_item *p = realloc(l->v, cap * sizeof *p);
        if (!p) abort();
        l->v = p;
        l->cap = cap;
    }
    struct stat_item *it = &l->v[l->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static const char *const server_stat_names[] = {
    "server.concurrency",      "server.live",    "server.memory_allocated",
    "server.memory_heap_size", "server.state",   "server.total_connections",
    "server.uptime",           "server.version",
};

static bool is_server_stat(const char *name)
{
    for (size_t i = 0; i < sizeof server_stat_names / sizeof *server_stat_names; i++)
        if (strcmp(name, server_stat_names[i]) == 0) return true;
    return false;
}

static int hook_state(const struct rs_admin_hooks *h)
{
    return h && h->state ? h->state(h->ctx) : RS_ADMIN_LIVE;
}

static uint64_t hook_uptime(const struct rs_admin_hooks *h)
{
    return h && h->uptime_s ? h->uptime_s(h->ctx) : 0;
}

/* server.total_connections: Envoy counts every downstream connection of every listener. */
static uint64_t total_connections(const struct rs_snapshot *snap)
{
    uint64_t n = 0;
    for (uint32_t i = 0; snap && i < snap->nlisteners; i++)
        n += rs_stats_value(snap->listeners[i].st.downstream_cx_active);
    return n;
}

/* The live server.* gauges, in server_stat_names order. */
static void server_stat_values(const struct rs_admin_hooks *h, const struct rs_snapshot *snap,
                               uint64_t out[8])
{
    struct mallinfo2 mi = mallinfo2();
    int state = hook_state(h);
    out[0] = h ? h->concurrency : 0;
    out[1] = state == RS_ADMIN_LIVE;
    out[2] = mi.uordblks + mi.hblkhd;
    out[3] = mi.arena + mi.hblkhd;
    out[4] = (uint64_t)state;
    out[5] = total_connections(snap);
    out[6] = hook_uptime(h);
    out[7] = 0; /* Envoy's is a number derived from the SCM revision; we have none */
}

static bool item_used(const struct stat_item *it)
{
    return it->kind == RS_STAT_HISTOGRAM ? it->hist.count != 0 : it->value != 0;
}

static bool name_matches(pcre2_code *re, pcre2_match_data *md, const char *name)
{
    if (!re) return true;
    return pcre2_match(re, (PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0;
}

static int cmp_items(const void *a, const void *b)
{
    return strcmp(((const struct stat_item *)a)->name, ((const struct stat_item *)b)->name);
}

/* Every stat passing the query, sorted by name; server stats included when hooks is set. */
static int collect(struct stat_list *l, const struct rs_admin_stats_query *q,
                   const struct rs_admin_hooks *hooks, const struct rs_snapshot *snap, char *err,
                   size_t errlen)
{
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    if (q->filter && q->filter[0]) {
        int ec;
        PCRE2_SIZE off;
        re = pcre2_compile((PCRE2_SPTR)q->filter, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
        if (!re) {
            char msg[128];
            pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
            snprintf(err, errlen, "Invalid regex: \"%s\" at offset %zu: %s", q->filter, (size_t)off,
                     msg);
            return -EINVAL;
        }
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md) abort();
    }
    size_t n = rs_stats_count();
    for (size_t i = 0; i < n; i++) {
        enum rs_stat_kind kind;
        rs_stat_id id;
        const char *name = rs_stats_name(i, &kind, &id);
        if (!name || id == UINT32_MAX || (hooks && is_server_stat(name))) continue;
        if (!name_matches(re, md, name)) continue;
        struct stat_item *it = list_push(l);
        it->name = name;
        it->kind = kind;
        it->id = id;
        if (kind == RS_STAT_HISTOGRAM)
            rs_hist_value(id, &it->hist);
        else
            it->value = rs_stats_value(id);
        if (q->used_only && !item_used(it)) l->n--;
    }
    if (hooks) {
        uint64_t v[8];
        server_stat_values(hooks, snap, v);
        for (size_t i = 0; i < 8; i++) {
            if (!name_matches(re, md, server_stat_names[i])) continue;
            struct stat_item *it = list_push(l);
            it->name = server_stat_names[i];
            it->kind = RS_STAT_GAUGE;
            it->value = v[i];
        }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_items);
    return 0;
}

/* ---- /stats text and JSON ------------------------------------------------------------------ */

/* Envoy's default summary quantiles, in percent. */
static const double quantiles[] = {0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100};
#define NQUANTILES (sizeof quantiles / sizeof *quantiles)

static void render_hist_text(struct rs_admin_buf *b, const struct stat_item *it)
{
    buf_printf(b, "%s:", it->name);
    if (it->hist.count == 0) {
        buf_puts(b, " No recorded values\n");
        return;
    }
    /* Envoy prints (interval,cumulative); we keep no interval histogram, so interval is nan as
     * Envoy prints it for an interval without samples. */
    for (size_t q = 0; q < NQUANTILES; q++)
        buf_printf(b, " P%g(nan,%g)", quantiles[q],
                   rs_hist_quantile(&it->hist, quantiles[q] / 100));
    buf_puts(b, "\n");
}

static void render_text(struct rs_admin_buf *b, const struct stat_list *l)
{
    /* Envoy lists counters and gauges together by name, then the histograms. */
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kind != RS_STAT_HISTOGRAM)
            buf_printf(b, "%s: %llu\n", l->v[i].name, (unsigned long long)l->v[i].value);
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kind == RS_STAT_HISTOGRAM) render_hist_text(b, &l->v[i]);
}

static json_t *hist_json(const struct stat_list *l)
{
    json_t *supported = json_array(), *computed = json_array();
    for (size_t q = 0; q < NQUANTILES; q++)
        json_array_append_new(supported, json_real(quantiles[q]));
    for (size_t i = 0; i < l->n; i++) {
        const struct stat_item *it = &l->v[i];
        if (it->kind != RS_STAT_HISTOGRAM) continue;
        json_t *vals = json_array();
        for (size_t q = 0; q < NQUANTILES; q++) {
            double c = rs_hist_quantile(&it->hist, quantiles[q] / 100);
            json_array_append_new(vals, json_pack("{s:n,s:o}", "interval", "cumulative",
                                                  isnan(c) ? json_null() : json_real(c)));
        }
        json_array_append_new(computed, json_pack("{s:s,s:o}", "name", it->name, "values", vals));
    }
    return json_pack("{s:{s:o,s:o}}", "histograms", "supported_quantiles", supported,
                     "computed_quantiles", computed);
}

static void render_json(struct rs_admin_buf *b, const struct stat_list *l)
{
    json_t *stats = json_array();
    bool any_hist = false;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].kind == RS_STAT_HISTOGRAM) {
            any_hist = true;
            continue;
        }
        json_array_append_new(
            stats, json_pack("{s:s,s:o}", "name", l->v[i].name, "value", json_u64(l->v[i].value)));
    }
    if (any_hist) json_array_append_new(stats, hist_json(l));
    buf_json(b, json_pack("{s:o}", "stats", stats), JSON_INDENT(1));
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t cap, len;
    bool overflow;
};

static void sb_add(struct sbuf *s, const char *src, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->overflow = true;
        return;
    }
    memcpy(s->p + s->len, src, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_label(struct sbuf *s, const char *key, const char *val, size_t vlen)
{
    if (s->len) sb_add(s, ",", 1);
    sb_add(s, key, strlen(key));
    sb_add(s, "=\"", 2);
    /* the exposition format escapes backslash, quote and newline in label values */
    for (size_t i = 0; i < vlen; i++) {
        if (val[i] == '\\' || val[i] == '"')
            sb_add(s, "\\", 1), sb_add(s, &val[i], 1);
        else if (val[i] == '\n')
            sb_add(s, "\\n", 2);
        else
            sb_add(s, &val[i], 1);
    }
    sb_add(s, "\"", 1);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Length of the longest name in names[] such that s starts with "name.". */
static size_t longest_known(const char *s, const char *const *names, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len > best && strncmp(s, names[i], len) == 0 && s[len] == '.') best = len;
    }
    return best;
}

/* Envoy's listener address tag: the longest run of [_.0-9] (IPv4) or [_[]a-fA-F0-9] (IPv6)
 * that is followed by a dot, as its regex's greedy match with backtracking finds it. */
static size_t listener_addr_len(const char *s)
{
    size_t best = 0;
    for (int v6 = 0; v6 < 2; v6++) {
        for (size_t i = 0; s[i]; i++) {
            char c = s[i];
            bool ok =
                c == '_' || (c >= '0' && c <= '9') || (!v6 && c == '.') ||
                (v6 && (c == '[' || c == ']' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
            if (i > best && s[i] == '.') best = i;
            if (!ok) break;
        }
    }
    return best;
}

/* Strips the first component (up to its dot) as the value of tag `key`; returns the rest. */
static const char *tag_first_dot(const char *s, const char *key, struct sbuf *labels)
{
    const char *dot = strchr(s, '.');
    if (!dot) return s;
    sb_label(labels, key, s, (size_t)(dot - s));
    return dot + 1;
}

static size_t cluster_name_len(const char *s, const struct rs_snapshot *snap)
{
    size_t best = 0;
    for (uint32_t i = 0; snap && i < snap->nclusters; i++) {
        const char *n = snap->clusters[i]->name;
        size_t len = n ? strlen(n) : 0;
        if (len > best && strncmp(s, n, len) == 0 && s[len] == '.') best = len;
    }
    if (best) return best;
    const char *dot = strchr(s, '.');
    return dot ? (size_t)(dot - s) : 0;
}

static size_t listener_name_len(const char *s, const struct rs_snapshot *snap)
{
    size_t best = 0;
    for (uint32_t i = 0; snap && i < snap->nlisteners; i++) {
        /* Envoy's listener stat prefix is the address with ':' as '_' ("0.0.0.0_8080") */
        char addr[sizeof snap->listeners[i].addr_str];
        snprintf(addr, sizeof addr, "%s", snap->listeners[i].addr_str);
        for (char *p = addr; *p; p++)
            if (*p == ':') *p = '_';
        const char *names[2] = {addr, snap->listeners[i].name ? snap->listeners[i].name : ""};
        size_t len = longest_known(s, names, 2);
        if (len > best) best = len;
    }
    if (!best && starts_with(s, "admin.")) best = 5;
    return best ? best : listener_addr_len(s);
}

/* The response code tags on the last component: "..._rq_2xx" -> "..._rq_xx" with
 * envoy_response_code_class="2"; "..._rq_503" -> "..._rq" with envoy_response_code="503". */
static size_t tag_response_code(const char *rest, struct sbuf *labels)
{
    size_t n = strlen(rest);
    if (n >= 7 && strcmp(rest + n - 2, "xx") == 0 && rest[n - 3] >= '1' && rest[n - 3] <= '5' &&
        strncmp(rest + n - 7, "_rq_", 4) == 0) {
        sb_label(labels, "envoy_response_code_class", rest + n - 3, 1);
        return n - 3; /* caller appends "xx" */
    }
    if (n >= 7 && strncmp(rest + n - 7, "_rq_", 4) == 0) {
        for (size_t i = n - 3; i < n; i++)
            if (rest[i] < '0' || rest[i] > '9') return n;
        sb_label(labels, "envoy_response_code", rest + n - 3, 3);
        return n - 4;
    }
    return n;
}

int rs_admin_prom_name(const char *stat, const struct rs_snapshot *snap, char *name,
                       size_t name_cap, char *labels, size_t labels_cap)
{
    struct sbuf nm = {name, name_cap, 0, false}, lb = {labels, labels_cap, 0, false};
    if (name_cap) name[0] = '\0';
    if (labels_cap) labels[0] = '\0';
    sb_add(&nm, "envoy_", 6);
    const char *rest = stat;
    size_t len;
    if (starts_with(rest, "cluster.") && (len = cluster_name_len(rest + 8, snap))) {
        sb_label(&lb, "envoy_cluster_name", rest + 8, len);
        sb_add(&nm, "cluster.", 8);
        rest += 8 + len + 1;
    } else if (starts_with(rest, "listener.") && (len = listener_name_len(rest + 9, snap))) {
        sb_label(&lb, "envoy_listener_address", rest + 9, len);
        sb_add(&nm, "listener.", 9);
        rest += 9 + len + 1;
        if (starts_with(rest, "http.")) {
            sb_add(&nm, "http.", 5);
            rest = tag_first_dot(rest + 5, "envoy_http_conn_manager_prefix", &lb);
        }
    } else if (starts_with(rest, "http.") && strchr(rest + 5, '.')) {
        sb_add(&nm, "http.", 5);
        rest = tag_first_dot(rest + 5, "envoy_http_conn_manager_prefix", &lb);
    } else if (starts_with(rest, "tcp.") && strchr(rest + 4, '.')) {
        sb_add(&nm, "tcp.", 4);
        rest = tag_first_dot(rest + 4, "envoy_tcp_prefix", &lb);
    }
    size_t keep = tag_response_code(rest, &lb);
    sb_add(&nm, rest, keep);
    if (keep + 3 == strlen(rest)) sb_add(&nm, "xx", 2);
    /* Prometheus names are [a-zA-Z_:][a-zA-Z0-9_:]*; Envoy maps everything else to '_' */
    for (size_t i = 0; i < nm.len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            name[i] = '_';
    }
    return nm.overflow || lb.overflow ? -ENOSPC : 0;
}

struct prom_item {
    char name[256];
    char labels[512];
    const struct stat_item *it;
};

static int kind_rank(enum rs_stat_kind k)
{
    return k == RS_STAT_COUNTER ? 0 : k == RS_STAT_GAUGE ? 1 : 2;
}

static int cmp_prom(const void *a, const void *b)
{
    const struct prom_item *x = a, *y = b;
    int d = kind_rank(x->it->kind) - kind_rank(y->it->kind);
    if (d) return d;
    if ((d = strcmp(x->name, y->name))) return d;
    return strcmp(x->labels, y->labels);
}

static void prom_series(struct rs_admin_buf *b, const char *name, const char *suffix,
                        const char *labels, const char *extra)
{
    buf_printf(b, "%s%s", name, suffix);
    if (labels[0] || extra)
        buf_printf(b, "{%s%s%s}", labels, labels[0] && extra ? "," : "", extra ? extra : "");
    buf_puts(b, " ");
}

static void prom_hist(struct rs_admin_buf *b, const struct prom_item *p)
{
    const struct rs_hist_shard *h = &p->it->hist;
    uint64_t cum = 0;
    char le[48];
    for (int i = 0; i < RS_HIST_BUCKETS - 1; i++) {
        cum += h->buckets[i];
        snprintf(le, sizeof le, "le=\"%g\"", rs_hist_bounds_ms[i]);
        prom_series(b, p->name, "_bucket", p->labels, le);
        buf_printf(b, "%llu\n", (unsigned long long)cum);
    }
    prom_series(b, p->name, "_bucket", p->labels, "le=\"+Inf\"");
    buf_printf(b, "%llu\n", (unsigned long long)h->count);
    prom_series(b, p->name, "_sum", p->labels, NULL);
    buf_printf(b, "%.15g\n", (double)h->sum_us / 1000.0); /* Envoy's histograms are in ms */
    prom_series(b, p->name, "_count", p->labels, NULL);
    buf_printf(b, "%llu\n", (unsigned long long)h->count);
}

static void render_prometheus(struct rs_admin_buf *b, const struct stat_list *l,
                              const struct rs_snapshot *snap)
{
    struct prom_item *v = calloc(l->n ? l->n : 1, sizeof *v);
    if (!v) abort();
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (rs_admin_prom_name(l->v[i].name, snap, v[n].name, sizeof v[n].name, v[n].labels,
                               sizeof v[n].labels) != 0)
            continue; /* a name too long to be a sane metric: skipped rather than cut */
        v[n++].it = &l->v[i];
    }
    qsort(v, n, sizeof *v, cmp_prom);
    static const char *const type[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(v[i].name, v[i - 1].name) != 0)
            buf_printf(b, "# TYPE %s %s\n", v[i].name, type[kind_rank(v[i].it->kind)]);
        if (v[i].it->kind == RS_STAT_HISTOGRAM) {
            prom_hist(b, &v[i]);
            continue;
        }
        prom_series(b, v[i].name, "", v[i].labels, NULL);
        buf_printf(b, "%llu\n", (unsigned long long)v[i].it->value);
    }
    free(v);
}

int rs_admin_render_stats(struct rs_admin_buf *out, const struct rs_admin_stats_query *q,
                          const struct rs_admin_hooks *hooks, const struct rs_snapshot *snap,
                          char *err, size_t errlen)
{
    struct stat_list l = {0};
    int rc = collect(&l, q, hooks, snap, err, errlen);
    if (rc == 0) {
        if (q->format == RS_ADMIN_FMT_JSON)
            render_json(out, &l);
        else if (q->format == RS_ADMIN_FMT_PROMETHEUS)
            render_prometheus(out, &l, snap);
        else
            render_text(out, &l);
    }
    free(l.v);
    return rc;
}

/* ---- /clusters ------------------------------------------------------------------------------ */

/* Host-level stats Envoy prints per host, sorted by name (enum rs_host_stat has this order). */
static const struct {
    const char *name;
    bool gauge;
} host_stats[] = {
    {"cx_active", true}, {"cx_connect_fail", false}, {"cx_total", false},   {"rq_active", true},
    {"rq_error", false}, {"rq_success", false},      {"rq_timeout", false}, {"rq_total", false},
};

static void split_addr(const struct rs_endpoint *ep, char *ip, size_t cap, uint16_t *port)
{
    ip[0] = '\0';
    *port = 0;
    if (ep->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&ep->addr;
        inet_ntop(AF_INET, &s->sin_addr, ip, (socklen_t)cap);
        *port = ntohs(s->sin_port);
    } else if (ep->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&ep->addr;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, (socklen_t)cap);
        *port = ntohs(s->sin6_port);
    }
}

static void clusters_text_one(struct rs_admin_buf *b, struct rs_cluster *c)
{
    const char *n = c->name;
    buf_printf(b, "%s::observability_name::%s\n", n, n);
    /* Envoy prints both priorities; we enforce one set of thresholds, and Envoy's defaults for
     * the rest (max_retries 3, high priority 1024). */
    buf_printf(b, "%s::default_priority::max_connections::%u\n", n, c->max_connections);
    buf_printf(b, "%s::default_priority::max_pending_requests::%u\n", n, c->max_pending_requests);
    buf_printf(b, "%s::default_priority::max_requests::%u\n", n, c->max_requests);
    buf_printf(b, "%s::default_priority::max_retries::3\n", n);
    static const char *const hp[] = {"max_connections", "max_pending_requests", "max_requests"};
    for (int i = 0; i < 3; i++) buf_printf(b, "%s::high_priority::%s::1024\n", n, hp[i]);
    buf_printf(b, "%s::high_priority::max_retries::3\n", n);
    buf_printf(b, "%s::added_via_api::false\n", n);
    struct rs_hostset *hs = rs_cluster_hosts(c);
    for (uint32_t i = 0; hs && i < hs->n; i++) {
        const struct rs_endpoint *ep = &hs->eps[i];
        for (size_t s = 0; s < sizeof host_stats / sizeof *host_stats; s++)
            buf_printf(b, "%s::%s::%s::%llu\n", n, ep->name, host_stats[s].name,
                       (unsigned long long)rs_host_stat_value(hs, i, (enum rs_host_stat)s));
        buf_printf(b, "%s::%s::hostname::\n", n, ep->name);
        buf_printf(b, "%s::%s::health_flags::healthy\n", n, ep->name);
        buf_printf(b, "%s::%s::weight::%u\n", n, ep->name, ep->weight ? ep->weight : 1);
        static const char *const tail[] = {"region::",
                                           "zone::",
                                           "sub_zone::",
                                           "canary::false",
                                           "priority::0",
                                           "success_rate::-1",
                                           "local_origin_success_rate::-1"};
        for (size_t t = 0; t < sizeof tail / sizeof *tail; t++)
            buf_printf(b, "%s::%s::%s\n", n, ep->name, tail[t]);
    }
    if (hs) rs_hostset_unref(hs);
}

static json_t *host_json(const struct rs_hostset *hs, uint32_t idx)
{
    const struct rs_endpoint *ep = &hs->eps[idx];
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
    split_addr(ep, ip, sizeof ip, &port);
    json_t *stats = json_array();
    /* proto3 JSON omits zero values, so a zero stat is its name (and type, for gauges) */
    for (size_t s = 0; s < sizeof host_stats / sizeof *host_stats; s++) {
        json_t *st = json_pack("{s:s}", "name", host_stats[s].name);
        uint64_t v = rs_host_stat_value(hs, idx, (enum rs_host_stat)s);
        if (v) { /* proto3 JSON renders uint64 as a string */
            char num[24];
            snprintf(num, sizeof num, "%llu", (unsigned long long)v);
            json_object_set_new(st, "value", json_string(num));
        }
        if (host_stats[s].gauge) json_object_set_new(st, "type", json_string("GAUGE"));
        json_array_append_new(stats, st);
    }
    return json_pack("{s:{s:{s:s,s:i}},s:o,s:{s:s},s:i,s:{}}", "address", "socket_address",
                     "address", ip, "port_value", (int)port, "stats", stats, "health_status",
                     "eds_health_status", "HEALTHY", "weight", ep->weight ? (int)ep->weight : 1,
                     "locality");
}

static json_t *cluster_json(struct rs_cluster *c)
{
    json_t *hosts = json_array();
    struct rs_hostset *hs = rs_cluster_hosts(c);
    for (uint32_t i = 0; hs && i < hs->n; i++) json_array_append_new(hosts, host_json(hs, i));
    if (hs) rs_hostset_unref(hs);
    json_t *th = json_pack("[{s:i,s:i,s:i,s:i},{s:s,s:i,s:i,s:i,s:i}]", "max_connections",
                           (int)c->max_connections, "max_pending_requests",
                           (int)c->max_pending_requests, "max_requests", (int)c->max_requests,
                           "max_retries", 3, "priority", "HIGH", "max_connections", 1024,
                           "max_pending_requests", 1024, "max_requests", 1024, "max_retries", 3);
    return json_pack("{s:s,s:s,s:{s:o},s:o}", "name", c->name, "observability_name", c->name,
                     "circuit_breakers", "thresholds", th, "host_statuses", hosts);
}

void rs_admin_render_clusters(struct rs_admin_buf *out, struct rs_snapshot *snap, bool json)
{
    uint32_t n = snap ? snap->nclusters : 0;
    if (!json) {
        for (uint32_t i = 0; i < n; i++) clusters_text_one(out, snap->clusters[i]);
        if (!out->data) buf_add(out, "", 0);
        return;
    }
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n; i++) json_array_append_new(arr, cluster_json(snap->clusters[i]));
    buf_json(out, json_pack("{s:o}", "cluster_statuses", arr), JSON_INDENT(1));
}

/* ---- /server_info (/config_dump: admin_dump.c) ----------------------------------------------- */

void rs_admin_render_config_dump(struct rs_admin_buf *out, const struct rs_snapshot *snap)
{
    buf_json(out, rs_admin_config_dump_json(snap), JSON_INDENT(1));
}

static const char *state_name(int state)
{
    switch (state) {
    case RS_ADMIN_LIVE:
        return "LIVE";
    case RS_ADMIN_DRAINING:
        return "DRAINING";
    case RS_ADMIN_PRE_INITIALIZING:
        return "PRE_INITIALIZING";
    case RS_ADMIN_INITIALIZING:
        return "INITIALIZING";
    default:
        return "UNKNOWN";
    }
}

/* The CommandLineOptions fields we can recover from the command line: flag -> JSON key. */
static const struct {
    const char *flag, *alt, *key;
} cli_flags[] = {
    {"-c", "--config-path", "config_path"},
    {NULL, "--config-yaml", "config_yaml"},
    {"-l", "--log-level", "log_level"},
    {NULL, "--service-cluster", "service_cluster"},
    {NULL, "--service-node", "service_node"},
    {NULL, "--base-id", "base_id"},
    {NULL, "--drain-time-s", "drain_time"},
    {NULL, "--parent-shutdown-time-s", "parent_shutdown_time"},
};

static json_t *command_line_json(const struct rs_admin_hooks *h)
{
    json_t *o = json_pack("{s:s,s:i,s:i,s:s}", "base_id", "0", "concurrency",
                          h ? (int)h->concurrency : 0, "restart_epoch", 0, "mode", "Serve");
    if (!h || !h->command_line) return o;
    char *line = strdup(h->command_line), *save = NULL;
    if (!line) abort();
    const char *want = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (want) {
            json_object_set_new(o, want, json_string(tok));
            want = NULL;
            continue;
        }
        for (size_t i = 0; i < sizeof cli_flags / sizeof *cli_flags; i++) {
            const char *eq = strchr(tok, '=');
            size_t flen = eq ? (size_t)(eq - tok) : strlen(tok);
            bool hit =
                (cli_flags[i].flag && strlen(cli_flags[i].flag) == flen &&
                 strncmp(tok, cli_flags[i].flag, flen) == 0) ||
                (strlen(cli_flags[i].alt) == flen && strncmp(tok, cli_flags[i].alt, flen) == 0);
            if (!hit) continue;
            if (eq)
                json_object_set_new(o, cli_flags[i].key, json_string(eq + 1));
            else
                want = cli_flags[i].key;
        }
    }
    free(line);
    return o;
}

static json_t *node_json(const struct rs_snapshot *snap)
{
    if (snap && snap->bootstrap && snap->bootstrap->node)
        return xds_to_json(&snap->bootstrap->node->base);
    json_t *o = json_object();
    if (snap && snap->node_id) json_object_set_new(o, "id", json_string(snap->node_id));
    if (snap && snap->node_cluster)
        json_object_set_new(o, "cluster", json_string(snap->node_cluster));
    return o;
}

void rs_admin_render_server_info(struct rs_admin_buf *out, const struct rs_admin_hooks *hooks,
                                 const struct rs_snapshot *snap)
{
    char up[32];
    snprintf(up, sizeof up, "%llus", (unsigned long long)hook_uptime(hooks));
    const char *hrv = hooks && hooks->hot_restart_version ? hooks->hot_restart_version : "disabled";
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:s,s:s}", "version",
                          "ringside/" RS_ADMIN_VERSION "/Clean/RELEASE/BoringSSL", "state",
                          state_name(hook_state(hooks)), "hot_restart_version", hrv,
                          "command_line_options", command_line_json(hooks), "node", node_json(snap),
                          "uptime_current_epoch", up, "uptime_all_epochs", up);
    if (hooks && hooks->config_source)
        json_object_set_new(o, "ringside_config_source",
                            json_string(hooks->config_source(hooks->ctx)));
    buf_json(out, o, JSON_INDENT(1));
}

/* ---- HTTP server ------------------------------------------------------------------------------
 */

struct rs_admin {
    int lfd;
    int wake[2]; /* rs_admin_stop writes a byte: every poll() in the thread watches [0] */
    pthread_t thread;
    uint16_t port;
    struct rs_admin_hooks hooks;
};

enum req_result { REQ_OK, REQ_BAD, REQ_TOO_LARGE, REQ_URL_TOO_LONG, REQ_TIMEOUT, REQ_CLOSED };

struct request {
    llhttp_t parser;
    char url[RS_ADMIN_MAX_URL];
    size_t url_len;
    bool url_too_long, complete;
};

enum action { ACT_NONE, ACT_QUIT, ACT_DRAIN };

struct response {
    int status;
    const char *ctype;
    struct rs_admin_buf body;
    enum action action;
    bool graceful, inbound_only;
};

struct param {
    char key[64];
    char val[1024];
};

struct query {
    struct param p[RS_ADMIN_MAX_PARAMS];
    int n;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = p->data;
    if (r->url_len + len >= sizeof r->url) {
        r->url_too_long = true;
        return -1;
    }
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    r->url[r->url_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct request *r = p->data;
    r->complete = true;
    return HPE_PAUSED; /* one request per connection: anything pipelined after it is ignored */
}

/* Waits for fd to be ready for `events` until deadline; false on timeout, error or stop. */
static bool wait_fd(struct rs_admin *a, int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return false;
        struct pollfd pfd[2] = {{.fd = fd, .events = events}, {.fd = a->wake[0], .events = POLLIN}};
        int n = poll(pfd, 2, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || pfd[1].revents) return false;
        return true;
    }
}

static enum req_result read_request(struct rs_admin *a, int fd, struct request *r, int64_t deadline)
{
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_url = on_url;
    s.on_message_complete = on_message_complete;
    llhttp_init(&r->parser, HTTP_REQUEST, &s);
    r->parser.data = r;
    size_t total = 0;
    char buf[4096];
    while (!r->complete) {
        if (!wait_fd(a, fd, POLLIN, deadline)) return REQ_TIMEOUT;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return REQ_CLOSED;
        total += (size_t)n;
        if (total > RS_ADMIN_MAX_REQUEST) return REQ_TOO_LARGE;
        enum llhttp_errno e = llhttp_execute(&r->parser, buf, (size_t)n);
        if (e == HPE_PAUSED) break;
        if (e != HPE_OK) return r->url_too_long ? REQ_URL_TOO_LONG : REQ_BAD;
    }
    return REQ_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into dst (cap bytes); false when it does not fit. */
static bool url_decode(const char *src, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < n && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap) return false;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return true;
}

static void parse_query(const char *qs, struct query *q)
{
    q->n = 0;
    while (qs && *qs && q->n < RS_ADMIN_MAX_PARAMS) {
        size_t len = strcspn(qs, "&");
        const char *eq = memchr(qs, '=', len);
        size_t klen = eq ? (size_t)(eq - qs) : len;
        struct param *p = &q->p[q->n];
        p->val[0] = '\0';
        if (klen && url_decode(qs, klen, p->key, sizeof p->key) &&
            (!eq || url_decode(eq + 1, len - klen - 1, p->val, sizeof p->val)))
            q->n++;
        qs += len;
        if (*qs == '&') qs++;
    }
}

static const char *query_get(const struct query *q, const char *key)
{
    for (int i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0) return q->p[i].val;
    return NULL;
}

static const char *const ctype_text = "text/plain; charset=UTF-8";
static const char *const ctype_json = "application/json";
static const char *const ctype_prom = "text/plain; version=0.0.4";

static const struct {
    const char *path, *help;
} endpoints[] = {
    {"/", "Admin home page"},
    {"/clusters", "upstream cluster status"},
    {"/config_dump", "dump current Envoy configs"},
    {"/drain_listeners", "drain listeners (POST; ?graceful, ?inbound_only)"},
    {"/help", "print out list of admin commands"},
    {"/quitquitquit", "exit the server (POST)"},
    {"/ready", "print server state, return 200 if LIVE, otherwise return 503"},
    {"/server_info", "print server version/status information"},
    {"/stats", "print server stats (?filter=, ?usedonly, ?format=json|prometheus)"},
    {"/stats/prometheus", "print server stats in prometheus format"},
};

static void reply_text(struct response *r, int status, const char *text)
{
    r->status = status;
    r->ctype = ctype_text;
    buf_puts(&r->body, text);
}

static void render_help(struct rs_admin_buf *b)
{
    buf_puts(b, "admin commands are:\n");
    for (size_t i = 0; i < sizeof endpoints / sizeof *endpoints; i++)
        buf_printf(b, "  %s: %s\n", endpoints[i].path, endpoints[i].help);
}

static void handle_stats(struct rs_admin *a, struct rs_snapshot *snap, const struct query *q,
                         bool prometheus, struct response *r)
{
    const char *fmt = query_get(q, "format");
    struct rs_admin_stats_query sq = {.filter = query_get(q, "filter"),
                                      .used_only = query_get(q, "usedonly") != NULL};
    if (prometheus || (fmt && strcmp(fmt, "prometheus") == 0))
        sq.format = RS_ADMIN_FMT_PROMETHEUS;
    else if (fmt && strcmp(fmt, "json") == 0)
        sq.format = RS_ADMIN_FMT_JSON;
    else if (fmt && strcmp(fmt, "text") != 0) {
        reply_text(r, 400, "usage: /stats?format=(json|prometheus|text)\n");
        return;
    }
    char err[256];
    if (rs_admin_render_stats(&r->body, &sq, &a->hooks, snap, err, sizeof err) != 0) {
        buf_printf(&r->body, "%s\n", err);
        r->status = 400;
        r->ctype = ctype_text;
        return;
    }
    r->status = 200;
    r->ctype = sq.format == RS_ADMIN_FMT_JSON         ? ctype_json
               : sq.format == RS_ADMIN_FMT_PROMETHEUS ? ctype_prom
                                                      : ctype_text;
}

/* Routes one request. Actions that change server state run after the response is sent. */
static void dispatch(struct rs_admin *a, int method, const char *url, struct response *r)
{
    char path[256];
    size_t plen = strcspn(url, "?");
    const char *qs = url[plen] == '?' ? url + plen + 1 : NULL;
    struct query q;
    parse_query(qs, &q);
    if (plen >= sizeof path) plen = sizeof path - 1;
    memcpy(path, url, plen);
    path[plen] = '\0';
    bool post = method == HTTP_POST;

    bool mutating = strcmp(path, "/quitquitquit") == 0 || strcmp(path, "/drain_listeners") == 0;
    if (mutating && !post) {
        /* Envoy refuses state changes on GET so a crawler or a browser prefetch cannot do them */
        r->status = 405;
        r->ctype = ctype_text;
        buf_printf(&r->body, "Method %s not allowed, POST required.\n",
                   llhttp_method_name((llhttp_method_t)method));
        return;
    }
    if (strcmp(path, "/quitquitquit") == 0) {
        r->action = ACT_QUIT;
        reply_text(r, 200, "OK\n");
        return;
    }
    if (strcmp(path, "/drain_listeners") == 0) {
        r->action = ACT_DRAIN;
        r->graceful = query_get(&q, "graceful") != NULL;
        r->inbound_only = query_get(&q, "inbound_only") != NULL;
        reply_text(r, 200, "OK\n");
        return;
    }
    if (strcmp(path, "/ready") == 0) {
        int st = hook_state(&a->hooks);
        r->status = st == RS_ADMIN_LIVE ? 200 : 503;
        r->ctype = ctype_text;
        buf_printf(&r->body, "%s\n", state_name(st));
        return;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/help") == 0) {
        r->status = 200;
        r->ctype = ctype_text;
        render_help(&r->body);
        return;
    }

    struct rs_snapshot *snap = a->hooks.snapshot ? a->hooks.snapshot(a->hooks.ctx) : NULL;
    const char *fmt = query_get(&q, "format");
    bool json = fmt && strcmp(fmt, "json") == 0;
    r->status = 200;
    r->ctype = ctype_json;
    if (strcmp(path, "/stats") == 0 || strcmp(path, "/stats/prometheus") == 0) {
        handle_stats(a, snap, &q, path[6] == '/', r);
    } else if (strcmp(path, "/clusters") == 0) {
        rs_admin_render_clusters(&r->body, snap, json);
        r->ctype = json ? ctype_json : ctype_text;
    } else if (strcmp(path, "/config_dump") == 0) {
        rs_admin_render_config_dump(&r->body, snap);
    } else if (strcmp(path, "/server_info") == 0) {
        rs_admin_render_server_info(&r->body, &a->hooks, snap);
    } else {
        r->status = 404;
        r->ctype = ctype_text;
        buf_puts(&r->body, "invalid path. ");
        render_help(&r->body);
    }
    if (snap) rs_snapshot_unref(snap);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static bool send_all(struct rs_admin *a, int fd, const char *p, size_t n, int64_t deadline)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            if (!wait_fd(a, fd, POLLOUT, deadline)) return false;
            continue;
        }
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void send_response(struct rs_admin *a, int fd, const struct response *r, bool head,
                          int64_t deadline)
{
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache, max-age=0\r\nX-Content-Type-Options: nosniff\r\n"
                     "Connection: close\r\n\r\n",
                     r->status, reason(r->status), r->ctype, r->body.len);
    if (!send_all(a, fd, hdr, (size_t)n, deadline)) return;
    if (!head && r->body.len) send_all(a, fd, r->body.data, r->body.len, deadline);
}

/* After an error reply the client may still be sending: closing with unread bytes would make
 * the kernel answer with RST and the client could lose our reply. Half-close, then read what is
 * left for a moment. */
static void drain_input(struct rs_admin *a, int fd)
{
    shutdown(fd, SHUT_WR);
    int64_t deadline = now_ms() + 200;
    char buf[4096];
    size_t total = 0;
    while (total < RS_ADMIN_MAX_REQUEST && wait_fd(a, fd, POLLIN, deadline)) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        total += (size_t)n;
    }
}

static void on_connection(struct rs_admin *a, int fd)
{
    int64_t deadline = now_ms() + RS_ADMIN_CONN_TIMEOUT_MS;
    struct request *req = calloc(1, sizeof *req);
    struct response r = {.status = 500, .ctype = ctype_text};
    if (!req) abort();
    enum req_result rr = read_request(a, fd, req, deadline);
    switch (rr) {
    case REQ_OK:
        dispatch(a, llhttp_get_method(&req->parser), req->url, &r);
        break;
    case REQ_BAD:
        reply_text(&r, 400, "Bad Request\n");
        break;
    case REQ_TOO_LARGE:
        reply_text(&r, 413, "Request too large\n");
        break;
    case REQ_URL_TOO_LONG:
        reply_text(&r, 414, "URI too long\n");
        break;
    case REQ_TIMEOUT:
        reply_text(&r, 408, "Request timeout\n");
        break;
    case REQ_CLOSED:
        break;
    }
    if (rr != REQ_CLOSED) {
        bool head = rr == REQ_OK && llhttp_get_method(&req->parser) == HTTP_HEAD;
        send_response(a, fd, &r, head, deadline);
    }
    if (rr != REQ_OK && rr != REQ_CLOSED) drain_input(a, fd);
    close(fd);
    free(req);
    free(r.body.data);
    if (r.action == ACT_QUIT && a->hooks.quit) a->hooks.quit(a->hooks.ctx);
    if (r.action == ACT_DRAIN && a->hooks.drain_listeners)
        a->hooks.drain_listeners(a->hooks.ctx, r.graceful, r.inbound_only);
}

static void *admin_main(void *arg)
{
    struct rs_admin *a = arg;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = a->lfd, .events = POLLIN},
                                {.fd = a->wake[0], .events = POLLIN}};
        int n = poll(pfd, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || pfd[1].revents) break;
        int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) continue; /* EAGAIN, ECONNABORTED, EMFILE: retried on the next readiness */
        on_connection(a, fd);
    }
    return NULL;
}

struct rs_admin *rs_admin_start(const struct sockaddr *addr, socklen_t len,
                                const struct rs_admin_hooks *hooks, char *err, size_t errlen)
{
    struct rs_admin *a = calloc(1, sizeof *a);
    if (!a) abort();
    a->lfd = a->wake[0] = a->wake[1] = -1;
    a->hooks = *hooks;
    char where[80];
    rs_addr_str(addr, where, sizeof where);
    const char *what = "socket";
    int one = 1;
    a->lfd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->lfd < 0) goto fail;
    setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    what = "bind";
    if (bind(a->lfd, addr, len) < 0) goto fail;
    what = "listen";
    if (listen(a->lfd, 64) < 0) goto fail;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    what = "getsockname";
    if (getsockname(a->lfd, (struct sockaddr *)&ss, &sslen) < 0) goto fail;
    a->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    what = "pipe";
    if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) < 0) goto fail;
    what = "pthread_create";
    int rc = pthread_create(&a->thread, NULL, admin_main, a);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    return a;
fail:
    snprintf(err, errlen, "admin %s: %s: %s", where, what, strerror(errno));
    if (a->lfd >= 0) close(a->lfd);
    if (a->wake[0] >= 0) close(a->wake[0]), close(a->wake[1]);
    free(a);
    return NULL;
}

void rs_admin_stop(struct rs_admin *a)
{
    if (!a) return;
    ssize_t w;
    do w = write(a->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(a->thread, NULL);
    close(a->lfd);
    close(a->wake[0]);
    close(a->wake[1]);
    free(a);
}

uint16_t rs_admin_port(const struct rs_admin *a)
{
    return a->port;
}
