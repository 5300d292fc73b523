/* The HTTP router's compiling half: an Envoy v3 RouteConfiguration becomes an immutable
 * rs_route_table (one chunked arena plus the PCRE2 codes it owns; types in router_impl.h), which
 * router_match.c matches requests against.
 *
 * Semantics follow Envoy's config_impl: virtual hosts by domain (exact, longest `*suffix`,
 * longest `prefix*`, then `*`; lower-cased; the Host is used as is, port included, unless a
 * strip option says otherwise), routes in order with the first match winning, safe_regex as a
 * full match (RE2::FullMatch in Envoy) run with PCRE2 + JIT. */
#include "sidecar/router.h"
#include "sidecar/router_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/route/v3/route.pb-c.h"

/* Deprecated Envoy fields (HeaderMatcher.exact_match, HeaderValueOption.append, ...) are still
 * valid config: they are read here on purpose, or rejected by name. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Config__Route__V3__RouteConfiguration RouteConfiguration;
typedef Envoy__Config__Route__V3__VirtualHost VirtualHost;
typedef Envoy__Config__Route__V3__Route Route;
typedef Envoy__Config__Route__V3__RouteMatch RouteMatch;
typedef Envoy__Config__Route__V3__RouteAction RouteAction;
typedef Envoy__Config__Route__V3__HeaderMatcher HeaderMatcher;
typedef Envoy__Config__Route__V3__QueryParameterMatcher QueryParameterMatcher;
typedef Envoy__Config__Route__V3__RetryPolicy RetryPolicy;
typedef Envoy__Config__Route__V3__DirectResponseAction DirectResponseAction;
typedef Envoy__Config__Route__V3__WeightedCluster__ClusterWeight ClusterWeight;
typedef Envoy__Config__Core__V3__HeaderValueOption HeaderValueOption;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;
typedef Envoy__Type__Matcher__V3__RegexMatcher RegexMatcher;

#define DEFAULT_TIMEOUT_MS 15000 /* RouteAction.timeout default */
#define DEFAULT_MAX_BODY 4096    /* RouteConfiguration.max_direct_response_body_size_bytes */

static void *arena_alloc(struct rs_route_table *t, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = t->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = calloc(1, sizeof *c + cap);
        if (!c) abort(); /* control path: OOM aborts (STYLE.md) */
        c->cap = cap;
        c->next = t->chunks;
        t->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

#define ANEW(t, type, n) ((type *)arena_alloc((t), sizeof(type) * ((n) ? (n) : 1)))

static char *arena_strndup(struct rs_route_table *t, const char *s, size_t n)
{
    char *p = arena_alloc(t, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static char *arena_strlower(struct rs_route_table *t, const char *s, size_t n)
{
    char *p = arena_strndup(t, s, n);
    for (size_t i = 0; i < n; i++) p[i] = (char)lc((unsigned char)p[i]);
    return p;
}

/* ---- compile context, field paths and errors ------------------------------------------------ */

struct cctx {
    struct rs_route_table *t;
    const struct rs_route_compile_opts *o;
    bool validate_clusters;
    uint32_t max_body;
    char *err;
    size_t errlen;
    char path[512];
    size_t plen;
};

static size_t ppush(struct cctx *c, const char *fmt, ...)
{
    size_t mark = c->plen;
    if (c->plen && fmt[0] != '[' && c->plen < sizeof c->path - 1) c->path[c->plen++] = '.';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
    va_end(ap);
    if (n > 0) c->plen += (size_t)n;
    if (c->plen >= sizeof c->path) c->plen = sizeof c->path - 1;
    return mark;
}

static void ppop(struct cctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = 0;
}

/* Reports "<path>.<field>: <message>" and returns -1. */
__attribute__((format(printf, 3, 4))) static int cfail(struct cctx *c, const char *field,
                                                       const char *fmt, ...)
{
    if (!c->errlen) return -1;
    int n = snprintf(c->err, c->errlen, "%s%s%s: ", c->path,
                     (field && *field && c->plen) ? "." : "", field ? field : "");
    if (n < 0 || (size_t)n >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int unsupported(struct cctx *c, const char *field)
{
    return cfail(c, field, "not supported");
}

/* typed_per_filter_config maps (route config, virtual host, route, weighted cluster): each entry
 * is decided by the caller's per_filter callback; without one the field is refused. The map
 * entry messages all share the layout {base, key, value}. */
struct pfc_entry {
    ProtobufCMessage base;
    char *key;
    Google__Protobuf__Any *value;
};

static int per_filter_configs(struct cctx *c, size_t n, void *const *entries,
                              const struct rs_route_filter_cfg **out)
{
    if (!n) return 0;
    if (!c->o->per_filter) return unsupported(c, "typed_per_filter_config");
    for (size_t i = 0; i < n; i++) {
        const struct pfc_entry *e = entries[i];
        char why[400];
        const char *key = e->key ? e->key : "";
        void *compiled = NULL;
        if (c->o->per_filter(c->o->ctx, key, e->value, out ? &compiled : NULL, why, sizeof why))
            return cfail(c, "typed_per_filter_config", "[\"%s\"]: %s", key, why);
        if (!compiled) continue;
        /* kept by the table, freed with it (rs_route_table_free) */
        struct rs_route_filter_cfg *f = arena_alloc(c->t, sizeof *f);
        f->filter = arena_strndup(c->t, key, strlen(key));
        f->cfg = compiled;
        f->next = *out;
        *out = f;
        c->t->filter_cfg_free = c->o->per_filter_free;
    }
    return 0;
}
#define PER_FILTER(c, m, out)                                                                      \
    per_filter_configs((c), (m)->n_typed_per_filter_config,                                        \
                       (void *const *)(m)->typed_per_filter_config, (out))

static const char *S(const char *s)
{
    return s ? s : "";
}

static int duration_ms(struct cctx *c, const char *field, const Google__Protobuf__Duration *d,
                       uint64_t *ms)
{
    if (d->seconds < 0 || d->nanos < 0 || d->nanos > 999999999)
        return cfail(c, field, "invalid duration");
    /* Envoy's DurationUtil rounds down to whole milliseconds. */
    *ms = (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
    return 0;
}

/* ---- regex ----------------------------------------------------------------------------------- */

/* RE2 semantics on PCRE2: `$` matches only at the very end (RE2 has no "before a final \n"), and
 * a full match is both start- and end-anchored. */
static int compile_regex(struct cctx *c, const RegexMatcher *rm, bool full, const pcre2_code **out)
{
    if (!rm) return cfail(c, "regex", "required");
    const char *pat = S(rm->regex);
    char err[300];
    pcre2_code *re = rs_regex_compile(pat, full, err, sizeof err);
    if (!re) return cfail(c, "regex", "%s", err);
    struct re_node *n = ANEW(c->t, struct re_node, 1);
    n->re = re;
    n->next = c->t->regexes;
    c->t->regexes = n;
    *out = re;
    return 0;
}

/* ---- string matchers ------------------------------------------------------------------------- */

static int compile_strmatch(struct cctx *c, const StringMatcher *sm, struct rs_strmatch *out)
{
    const char *s = NULL;
    out->icase = sm->ignore_case;
    switch (sm->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        out->kind = RS_SM_EXACT, s = S(sm->exact);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        out->kind = RS_SM_PREFIX, s = S(sm->prefix);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        out->kind = RS_SM_SUFFIX, s = S(sm->suffix);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        out->kind = RS_SM_CONTAINS, s = S(sm->contains);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        /* ignore_case has no effect on safe_regex (StringMatcher docs). */
        out->kind = RS_SM_REGEX;
        size_t m = ppush(c, "safe_regex");
        int rc = compile_regex(c, sm->safe_regex, true, &out->re);
        ppop(c, m);
        return rc;
    }
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CUSTOM:
        return unsupported(c, "custom");
    default:
        return cfail(c, NULL, "one of exact, prefix, suffix, contains, safe_regex is required");
    }
    if (out->kind != RS_SM_EXACT && !*s)
        return cfail(c, NULL, "empty prefix/suffix/contains pattern (use present_match)");
    out->len = (uint32_t)strlen(s);
    out->s = out->icase ? arena_strlower(c->t, s, out->len) : arena_strndup(c->t, s, out->len);
    return 0;
}

static int plain_strmatch(struct cctx *c, enum rs_sm_kind kind, const char *s,
                          struct rs_strmatch *out)
{
    out->kind = (uint8_t)kind;
    out->len = (uint32_t)strlen(S(s));
    if (kind != RS_SM_EXACT && !out->len)
        return cfail(c, NULL, "empty prefix/suffix/contains pattern (use present_match)");
    out->s = arena_strndup(c->t, S(s), out->len);
    return 0;
}

/* ---- header and query parameter matchers ------------------------------------------------------
 */

static int compile_hdrmatch_spec(struct cctx *c, const HeaderMatcher *hm, struct hdrmatch *h)
{
    h->kind = HM_STRING;
    switch (hm->header_match_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
        return plain_strmatch(c, RS_SM_EXACT, hm->exact_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
        return plain_strmatch(c, RS_SM_PREFIX, hm->prefix_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
        return plain_strmatch(c, RS_SM_SUFFIX, hm->suffix_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
        return plain_strmatch(c, RS_SM_CONTAINS, hm->contains_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH: {
        h->sm.kind = RS_SM_REGEX;
        size_t m = ppush(c, "safe_regex_match");
        int rc = compile_regex(c, hm->safe_regex_match, true, &h->sm.re);
        ppop(c, m);
        return rc;
    }
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH: {
        size_t m = ppush(c, "string_match");
        int rc = compile_strmatch(c, hm->string_match, &h->sm);
        ppop(c, m);
        return rc;
    }
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
        h->kind = HM_RANGE;
        h->start = hm->range_match->start;
        h->end = hm->range_match->end;
        if (h->start >= h->end) return cfail(c, "range_match", "start must be below end");
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
        h->kind = HM_PRESENT;
        h->present = hm->present_match;
        return 0;
    default:
        /* No specifier: Envoy matches on presence. */
        h->kind = HM_PRESENT;
        h->present = true;
        return 0;
    }
}

static int compile_hdrmatch(struct cctx *c, const HeaderMatcher *hm, struct hdrmatch *h)
{
    size_t n = strlen(S(hm->name));
    if (!n) return cfail(c, "name", "required");
    h->name = arena_strlower(c->t, hm->name, n);
    h->name_len = (uint32_t)n;
    h->pseudo = !strcmp(h->name, ":method")      ? PS_METHOD
                : !strcmp(h->name, ":path")      ? PS_PATH
                : !strcmp(h->name, ":authority") ? PS_AUTHORITY
                                                 : PS_NONE;
    h->invert = hm->invert_match;
    h->missing_as_empty = hm->treat_missing_header_as_empty;
    return compile_hdrmatch_spec(c, hm, h);
}

static int compile_qpmatch(struct cctx *c, const QueryParameterMatcher *qm, struct qpmatch *q)
{
    size_t n = strlen(S(qm->name));
    if (!n) return cfail(c, "name", "required");
    q->name = arena_strndup(c->t, qm->name, n);
    q->name_len = (uint32_t)n;
    switch (qm->query_parameter_match_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH: {
        q->kind = QM_STRING;
        size_t m = ppush(c, "string_match");
        int rc = compile_strmatch(c, qm->string_match, &q->sm);
        ppop(c, m);
        return rc;
    }
    case ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_PRESENT_MATCH:
        q->kind = QM_PRESENT;
        q->present = qm->present_match;
        return 0;
    default:
        q->kind = QM_PRESENT; /* no specifier: the parameter must be present */
        q->present = true;
        return 0;
    }
}

/* ---- route match ------------------------------------------------------------------------------
 */

static int compile_path_spec(struct cctx *c, const RouteMatch *m, struct rs_route_match *rm,
                             struct rs_route *r)
{
    const char *s = NULL;
    switch (m->path_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
        rm->path_kind = PK_PREFIX, s = S(m->prefix);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH:
        rm->path_kind = PK_PATH, s = S(m->path);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
        rm->path_kind = PK_SEPARATED, s = S(m->path_separated_prefix);
        if (s[0] != '/' || s[strlen(s) - 1] == '/' || strpbrk(s, "?#"))
            return cfail(c, "path_separated_prefix",
                         "must start with '/', not end with '/', and hold no '?' or '#'");
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX: {
        rm->path_kind = PK_REGEX;
        size_t mk = ppush(c, "safe_regex");
        int rc = compile_regex(c, m->safe_regex, true, &rm->re);
        ppop(c, mk);
        return rc;
    }
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_CONNECT_MATCHER:
        return unsupported(c, "connect_matcher");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_MATCH_POLICY:
        return unsupported(c, "path_match_policy");
    default:
        return cfail(c, NULL, "one of prefix, path, safe_regex, path_separated_prefix is required");
    }
    rm->len = (uint32_t)strlen(s);
    rm->s = rm->icase ? arena_strlower(c->t, s, rm->len) : arena_strndup(c->t, s, rm->len);
    if (rm->path_kind != PK_PATH) r->matched_prefix_len = rm->len;
    return 0;
}

static int compile_match(struct cctx *c, const RouteMatch *m, struct rs_route *r)
{
    if (!m) return cfail(c, NULL, "required");
    if (m->runtime_fraction) return unsupported(c, "runtime_fraction");
    if (m->grpc) return unsupported(c, "grpc");
    if (m->tls_context) return unsupported(c, "tls_context");
    if (m->n_dynamic_metadata) return unsupported(c, "dynamic_metadata");
    struct rs_route_match *rm = ANEW(c->t, struct rs_route_match, 1);
    /* case_sensitive (default true) covers prefix/path/path_separated_prefix, not safe_regex. */
    rm->icase = m->case_sensitive && !m->case_sensitive->value;
    if (compile_path_spec(c, m, rm, r)) return -1;
    struct hdrmatch *h = ANEW(c->t, struct hdrmatch, m->n_headers);
    for (size_t i = 0; i < m->n_headers; i++) {
        size_t mk = ppush(c, "headers[%zu]", i);
        if (compile_hdrmatch(c, m->headers[i], &h[i])) return -1;
        ppop(c, mk);
    }
    struct qpmatch *q = ANEW(c->t, struct qpmatch, m->n_query_parameters);
    for (size_t i = 0; i < m->n_query_parameters; i++) {
        size_t mk = ppush(c, "query_parameters[%zu]", i);
        if (compile_qpmatch(c, m->query_parameters[i], &q[i])) return -1;
        ppop(c, mk);
    }
    rm->h = h, rm->n_h = (uint32_t)m->n_headers;
    rm->q = q, rm->n_q = (uint32_t)m->n_query_parameters;
    r->match = rm;
    return 0;
}

/* ---- header edits ------------------------------------------------------------------------------
 */

/* Envoy refuses to let config add or remove pseudo headers and Host. */
static int check_header_name(struct cctx *c, const char *field, const char *name)
{
    if (!*name) return cfail(c, field, "empty header name");
    if (name[0] == ':' || !strcasecmp(name, "host"))
        return cfail(c, field, "':'-prefixed or host headers may not be modified (%s)", name);
    return 0;
}

static int parse_format(struct cctx *c, struct rs_header_add *h)
{
    const char *v = h->value;
    size_t n = h->value_len, nseg = 0;
    struct rs_fmt_seg *segs = ANEW(c->t, struct rs_fmt_seg, n + 1); /* at most one per byte */
    size_t i = 0;
    while (i < n) {
        const char *pct = memchr(v + i, '%', n - i);
        size_t lit_end = pct ? (size_t)(pct - v) : n;
        if (lit_end > i) segs[nseg++] = (struct rs_fmt_seg){v + i, (uint32_t)(lit_end - i), -1};
        if (!pct) break;
        i = lit_end + 1;
        h->has_format = true;
        if (i < n && v[i] == '%') { /* %% is a literal % */
            segs[nseg++] = (struct rs_fmt_seg){v + i, 1, -1};
            i++;
            continue;
        }
        const char *close = memchr(v + i, '%', n - i);
        if (!close) return cfail(c, "header.value", "unterminated %% at offset %zu", lit_end);
        size_t nl = (size_t)(close - (v + i));
        int8_t var = -2;
        for (size_t k = 0; k < sizeof fmt_vars / sizeof fmt_vars[0]; k++)
            if (strlen(fmt_vars[k].name) == nl && !memcmp(fmt_vars[k].name, v + i, nl))
                var = fmt_vars[k].var;
        if (var == -2)
            return cfail(c, "header.value", "format specifier %%%.*s%% not supported", (int)nl,
                         v + i);
        segs[nseg++] = (struct rs_fmt_seg){NULL, 0, var};
        i += nl + 1;
    }
    h->segs = segs;
    h->n_segs = (uint32_t)nseg;
    return 0;
}

static int compile_header_add(struct cctx *c, const HeaderValueOption *o, struct rs_header_add *h)
{
    if (!o->header) return cfail(c, "header", "required");
    const char *key = S(o->header->key);
    if (check_header_name(c, "header.key", key)) return -1;
    h->name_len = (uint32_t)strlen(key);
    h->name = arena_strlower(c->t, key, h->name_len);
    const char *val = S(o->header->value);
    size_t vlen = strlen(val);
    if (!vlen && o->header->raw_value.len) {
        val = (const char *)o->header->raw_value.data;
        vlen = o->header->raw_value.len;
    }
    h->value = arena_strndup(c->t, val, vlen);
    h->value_len = (uint32_t)vlen;
    h->keep_empty_value = o->keep_empty_value;
    h->action = (uint8_t)o->append_action;
    if (o->append_action >
        ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS)
        return cfail(c, "append_action", "unknown value %d", (int)o->append_action);
    if (o->append) {
        if (o->append_action) return cfail(c, "append", "both append and append_action are set");
        h->action =
            o->append->value ? RS_HDR_APPEND_IF_EXISTS_OR_ADD : RS_HDR_OVERWRITE_IF_EXISTS_OR_ADD;
    }
    return parse_format(c, h);
}

static int compile_edits(struct cctx *c, const char *prefix, HeaderValueOption **add, size_t n_add,
                         char **rm, size_t n_rm, struct rs_header_edits *out)
{
    struct rs_header_add *a = ANEW(c->t, struct rs_header_add, n_add);
    for (size_t i = 0; i < n_add; i++) {
        size_t mk = ppush(c, "%s_headers_to_add[%zu]", prefix, i);
        if (compile_header_add(c, add[i], &a[i])) return -1;
        ppop(c, mk);
    }
    struct rs_header_name *r = ANEW(c->t, struct rs_header_name, n_rm);
    for (size_t i = 0; i < n_rm; i++) {
        size_t mk = ppush(c, "%s_headers_to_remove[%zu]", prefix, i);
        if (check_header_name(c, NULL, S(rm[i]))) return -1;
        ppop(c, mk);
        r[i].len = (uint32_t)strlen(rm[i]);
        r[i].name = arena_strlower(c->t, rm[i], r[i].len);
    }
    *out = (struct rs_header_edits){a, r, (uint32_t)n_add, (uint32_t)n_rm};
    return 0;
}

#define COMPILE_EDITS(c, msg, req_out, resp_out)                                                   \
    (compile_edits((c), "request", (msg)->request_headers_to_add, (msg)->n_request_headers_to_add, \
                   (msg)->request_headers_to_remove, (msg)->n_request_headers_to_remove,           \
                   (req_out)) ||                                                                   \
     compile_edits((c), "response", (msg)->response_headers_to_add,                                \
                   (msg)->n_response_headers_to_add, (msg)->response_headers_to_remove,            \
                   (msg)->n_response_headers_to_remove, (resp_out)))

/* ---- retry policy ------------------------------------------------------------------------------
 */

static int compile_retry(struct cctx *c, const RetryPolicy *p, const struct rs_retry_policy **out)
{
    if (!p) return 0;
    size_t mk = ppush(c, "retry_policy");
    if (p->retry_priority) return unsupported(c, "retry_priority");
    if (p->n_retry_options_predicates) return unsupported(c, "retry_options_predicates");
    if (p->rate_limited_retry_back_off) return unsupported(c, "rate_limited_retry_back_off");
    if (p->n_retriable_headers) return unsupported(c, "retriable_headers");
    if (p->n_retriable_request_headers) return unsupported(c, "retriable_request_headers");
    struct rs_retry_policy *rp = ANEW(c->t, struct rs_retry_policy, 1);
    for (size_t i = 0; i < p->n_retry_host_predicate; i++) {
        if (strcmp(S(p->retry_host_predicate[i]->name),
                   "envoy.retry_host_predicates.previous_hosts"))
            return cfail(c, "retry_host_predicate", "predicate %s not supported",
                         S(p->retry_host_predicate[i]->name));
        rp->previous_hosts = true;
    }
    rp->retry_on = arena_strndup(c->t, S(p->retry_on), strlen(S(p->retry_on)));
    rp->num_retries = p->num_retries ? p->num_retries->value : 1;
    if (p->per_try_timeout &&
        duration_ms(c, "per_try_timeout", p->per_try_timeout, &rp->per_try_timeout_ms))
        return -1;
    if (p->per_try_idle_timeout && duration_ms(c, "per_try_idle_timeout", p->per_try_idle_timeout,
                                               &rp->per_try_idle_timeout_ms))
        return -1;
    rp->backoff_base_ms = 25;
    if (p->retry_back_off) {
        if (!p->retry_back_off->base_interval)
            return cfail(c, "retry_back_off.base_interval", "required");
        if (duration_ms(c, "retry_back_off.base_interval", p->retry_back_off->base_interval,
                        &rp->backoff_base_ms))
            return -1;
        if (!rp->backoff_base_ms) rp->backoff_base_ms = 1; /* Envoy rounds < 1 ms up to 1 ms */
    }
    rp->backoff_max_ms = rp->backoff_base_ms * 10;
    if (p->retry_back_off && p->retry_back_off->max_interval) {
        if (duration_ms(c, "retry_back_off.max_interval", p->retry_back_off->max_interval,
                        &rp->backoff_max_ms))
            return -1;
        if (rp->backoff_max_ms < rp->backoff_base_ms)
            return cfail(c, "retry_back_off.max_interval", "must be >= base_interval");
    }
    uint32_t *codes = ANEW(c->t, uint32_t, p->n_retriable_status_codes);
    if (p->n_retriable_status_codes)
        memcpy(codes, p->retriable_status_codes, p->n_retriable_status_codes * sizeof *codes);
    rp->retriable_status_codes = codes;
    rp->n_retriable_status_codes = (uint32_t)p->n_retriable_status_codes;
    rp->host_selection_retry_max_attempts = p->host_selection_retry_max_attempts > 0
                                                ? (uint32_t)p->host_selection_retry_max_attempts
                                                : 1;
    ppop(c, mk);
    *out = rp;
    return 0;
}

/* ---- route actions -----------------------------------------------------------------------------
 */

static int resolve_cluster(struct cctx *c, const char *field, const char *name,
                           struct rs_route_cluster *out)
{
    if (!*name) return cfail(c, field, "cluster name required");
    out->name = arena_strndup(c->t, name, strlen(name));
    out->index = c->o->cluster_index(c->o->ctx, name);
    if (out->index < 0) {
        if (c->validate_clusters) return cfail(c, field, "unknown cluster '%s'", name);
        out->index = RS_ROUTE_CLUSTER_UNKNOWN;
    }
    return 0;
}

static int compile_cluster_weight(struct cctx *c, const ClusterWeight *w,
                                  struct rs_route_cluster *o)
{
    if (*S(w->cluster_header)) return unsupported(c, "cluster_header");
    if (w->metadata_match) return unsupported(c, "metadata_match");
    if (PER_FILTER(c, w, NULL)) return -1;
    if (resolve_cluster(c, "name", S(w->name), o)) return -1;
    o->weight = w->weight ? w->weight->value : 0;
    if (w->host_rewrite_specifier_case ==
        ENVOY__CONFIG__ROUTE__V3__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL)
        o->host_rewrite_literal =
            arena_strndup(c->t, S(w->host_rewrite_literal), strlen(S(w->host_rewrite_literal)));
    return COMPILE_EDITS(c, w, &o->req, &o->resp);
}

static int compile_weighted(struct cctx *c, const Envoy__Config__Route__V3__WeightedCluster *wc,
                            struct rs_route *r)
{
    size_t mk = ppush(c, "weighted_clusters");
    if (*S(wc->runtime_key_prefix)) return unsupported(c, "runtime_key_prefix");
    if (wc->random_value_specifier_case) return unsupported(c, "header_name");
    if (!wc->n_clusters) return cfail(c, "clusters", "at least one cluster required");
    struct rs_route_cluster *cl = ANEW(c->t, struct rs_route_cluster, wc->n_clusters);
    uint64_t total = 0;
    for (size_t i = 0; i < wc->n_clusters; i++) {
        size_t m2 = ppush(c, "clusters[%zu]", i);
        if (compile_cluster_weight(c, wc->clusters[i], &cl[i])) return -1;
        ppop(c, m2);
        total += cl[i].weight;
        cl[i].weight_end = total;
    }
    if (!total) return cfail(c, NULL, "sum of weights must be greater than 0");
    if (wc->total_weight && wc->total_weight->value != total)
        return cfail(c, "total_weight", "%u differs from the sum of weights %llu",
                     wc->total_weight->value, (unsigned long long)total);
    ppop(c, mk);
    r->clusters = cl;
    r->n_clusters = (uint32_t)wc->n_clusters;
    r->weighted = true;
    r->total_weight = total;
    return 0;
}

static int compile_cluster_specifier(struct cctx *c, const RouteAction *a, struct rs_route *r)
{
    switch (a->cluster_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER: {
        struct rs_route_cluster *cl = ANEW(c->t, struct rs_route_cluster, 1);
        if (resolve_cluster(c, "cluster", S(a->cluster), cl)) return -1;
        r->clusters = cl;
        r->n_clusters = 1;
        return 0;
    }
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS:
        return compile_weighted(c, a->weighted_clusters, r);
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER:
        return unsupported(c, "cluster_header");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_SPECIFIER_PLUGIN:
        return unsupported(c, "cluster_specifier_plugin");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_INLINE_CLUSTER_SPECIFIER_PLUGIN:
        return unsupported(c, "inline_cluster_specifier_plugin");
    default:
        return cfail(c, NULL, "one of cluster, weighted_clusters is required");
    }
}

/* RE2's rewrite syntax (\0..\9, \\) into PCRE2's ($0..$9, $$ for a literal $). */
static int convert_subst(struct cctx *c, const char *s, const pcre2_code *re, struct rs_route *r)
{
    size_t n = strlen(s), o = 0;
    char *out = arena_alloc(c->t, n * 4 + 1);
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '$') {
            out[o++] = '$', out[o++] = '$';
        } else if (s[i] != '\\') {
            out[o++] = s[i];
        } else if (i + 1 < n && s[i + 1] == '\\') {
            out[o++] = '\\', i++;
        } else if (i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            if ((uint32_t)(s[i + 1] - '0') > groups)
                return cfail(c, "substitution", "\\%c refers to a missing group", s[i + 1]);
            o += (size_t)sprintf(out + o, "${%c}", s[i + 1]);
            i++;
        } else {
            return cfail(c, "substitution", "invalid escape at offset %zu", i);
        }
    }
    out[o] = 0;
    r->regex_subst = out;
    r->regex_subst_len = (uint32_t)o;
    return 0;
}

static int compile_regex_rewrite(struct cctx *c,
                                 const Envoy__Type__Matcher__V3__RegexMatchAndSubstitute *rr,
                                 struct rs_route *r)
{
    size_t mk = ppush(c, "regex_rewrite");
    const pcre2_code *re;
    size_t m2 = ppush(c, "pattern");
    if (compile_regex(c, rr->pattern, false, &re)) return -1;
    ppop(c, m2);
    if (convert_subst(c, S(rr->substitution), re, r)) return -1;
    r->regex_rewrite = re;
    ppop(c, mk);
    return 0;
}

static int check_action_unsupported(struct cctx *c, const RouteAction *a)
{
    if (a->cluster_not_found_response_code)
        return unsupported(c, "cluster_not_found_response_code");
    if (a->metadata_match) return unsupported(c, "metadata_match");
    if (a->path_rewrite_policy) return unsupported(c, "path_rewrite_policy");
    if (a->append_x_forwarded_host) return unsupported(c, "append_x_forwarded_host");
    if (a->early_data_policy) return unsupported(c, "early_data_policy");
    if (a->retry_policy_typed_config) return unsupported(c, "retry_policy_typed_config");
    if (a->n_request_mirror_policies) return unsupported(c, "request_mirror_policies");
    if (a->priority) return unsupported(c, "priority");
    if (a->n_rate_limits) return unsupported(c, "rate_limits");
    if (a->include_vh_rate_limits) return unsupported(c, "include_vh_rate_limits");
    if (a->n_hash_policy) return unsupported(c, "hash_policy");
    if (a->cors) return unsupported(c, "cors");
    /* max_grpc_timeout / grpc_timeout_offset act on gRPC requests only, which need HTTP/2
     * (not served yet): hints. istiod sets max_grpc_timeout: 0s on every route. */
    if (a->n_upgrade_configs) return unsupported(c, "upgrade_configs");
    if (a->internal_redirect_policy) return unsupported(c, "internal_redirect_policy");
    if (a->internal_redirect_action) return unsupported(c, "internal_redirect_action");
    if (a->max_internal_redirects) return unsupported(c, "max_internal_redirects");
    if (a->hedge_policy) return unsupported(c, "hedge_policy");
    /* Istio sets max_stream_duration with zero values (= disabled) on every route. */
    const Envoy__Config__Route__V3__RouteAction__MaxStreamDuration *d = a->max_stream_duration;
    if (d && ((d->max_stream_duration &&
               (d->max_stream_duration->seconds || d->max_stream_duration->nanos)) ||
              (d->grpc_timeout_header_max &&
               (d->grpc_timeout_header_max->seconds || d->grpc_timeout_header_max->nanos)) ||
              d->grpc_timeout_header_offset))
        return unsupported(c, "max_stream_duration");
    return 0;
}

static int compile_host_rewrite(struct cctx *c, const RouteAction *a, struct rs_route *r)
{
    switch (a->host_rewrite_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL:
        r->host_rewrite_literal =
            arena_strndup(c->t, S(a->host_rewrite_literal), strlen(S(a->host_rewrite_literal)));
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE:
        r->auto_host_rewrite = a->auto_host_rewrite && a->auto_host_rewrite->value;
        return 0;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_HEADER:
        return unsupported(c, "host_rewrite_header");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_PATH_REGEX:
        return unsupported(c, "host_rewrite_path_regex");
    default:
        return 0;
    }
}

static int compile_action(struct cctx *c, const RouteAction *a, struct rs_route *r)
{
    size_t mk = ppush(c, "route");
    if (check_action_unsupported(c, a) || compile_cluster_specifier(c, a, r) ||
        compile_host_rewrite(c, a, r))
        return -1;
    if (*S(a->prefix_rewrite) && a->regex_rewrite)
        return cfail(c, NULL, "only one of prefix_rewrite and regex_rewrite may be set");
    if (*S(a->prefix_rewrite)) {
        r->prefix_rewrite_len = (uint32_t)strlen(a->prefix_rewrite);
        r->prefix_rewrite = arena_strndup(c->t, a->prefix_rewrite, r->prefix_rewrite_len);
    }
    if (a->regex_rewrite && compile_regex_rewrite(c, a->regex_rewrite, r)) return -1;
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (a->timeout && duration_ms(c, "timeout", a->timeout, &r->timeout_ms)) return -1;
    r->idle_timeout_ms = -1;
    if (a->idle_timeout) {
        uint64_t ms = 0;
        if (duration_ms(c, "idle_timeout", a->idle_timeout, &ms)) return -1;
        r->idle_timeout_ms = (int64_t)ms;
    }
    if (compile_retry(c, a->retry_policy, &r->retry)) return -1;
    ppop(c, mk);
    return 0;
}

static int read_body_file(struct cctx *c, const char *fname, struct rs_route *r)
{
    FILE *f = fopen(fname, "rb");
    if (!f) return cfail(c, "body.filename", "cannot open %s: %s", fname, strerror(errno));
    char *buf = arena_alloc(c->t, (size_t)c->max_body + 1);
    size_t n = fread(buf, 1, (size_t)c->max_body + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) return cfail(c, "body.filename", "cannot read %s", fname);
    if (n > c->max_body)
        return cfail(c, "body", "response body is over the maximum of %u bytes", c->max_body);
    r->direct_body = buf;
    r->direct_body_len = n;
    return 0;
}

static int compile_direct(struct cctx *c, const DirectResponseAction *d, struct rs_route *r)
{
    size_t mk = ppush(c, "direct_response");
    if (d->status < 200 || d->status >= 600)
        return cfail(c, "status", "%u is not in [200, 600)", d->status);
    r->kind = RS_ROUTE_DIRECT_RESPONSE;
    r->direct_status = d->status;
    const Envoy__Config__Core__V3__DataSource *b = d->body;
    const char *p = NULL;
    size_t n = 0;
    if (b && b->watched_directory) return unsupported(c, "body.watched_directory");
    switch (b ? b->specifier_case : 0) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        p = S(b->inline_string), n = strlen(p);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        p = (const char *)b->inline_bytes.data, n = b->inline_bytes.len;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        p = getenv(S(b->environment_variable));
        if (!p)
            return cfail(c, "body.environment_variable", "%s is not set",
                         S(b->environment_variable));
        n = strlen(p);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        if (read_body_file(c, S(b->filename), r)) return -1;
        ppop(c, mk);
        return 0;
    default:
        ppop(c, mk);
        return 0; /* no body */
    }
    if (n > c->max_body)
        return cfail(c, "body", "response body is %zu bytes, over the maximum of %u", n,
                     c->max_body);
    r->direct_body = arena_strndup(c->t, p ? p : "", n);
    r->direct_body_len = n;
    ppop(c, mk);
    return 0;
}

static int compile_route(struct cctx *c, const Route *m, struct vhost_impl *vh, struct rs_route *r)
{
    r->vhost = &vh->pub;
    r->name = arena_strndup(c->t, S(m->name), strlen(S(m->name)));
    /* decorator, tracing, metadata, stat_prefix, name: observability hints, accepted. */
    if (PER_FILTER(c, m, &r->filter_cfgs)) return -1;
    if (m->per_request_buffer_limit_bytes)
        r->per_request_buffer_limit_bytes = m->per_request_buffer_limit_bytes->value;
    size_t mk = ppush(c, "match");
    if (compile_match(c, m->match, r)) return -1;
    ppop(c, mk);
    switch (m->action_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE:
        r->kind = RS_ROUTE_FORWARD;
        if (compile_action(c, m->route, r)) return -1;
        if (!r->retry) r->retry = vh->pub.retry;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE:
        if (compile_direct(c, m->direct_response, r)) return -1;
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT:
        return unsupported(c, "redirect");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_FILTER_ACTION:
        return unsupported(c, "filter_action");
    case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_NON_FORWARDING_ACTION:
        return unsupported(c, "non_forwarding_action");
    default:
        return cfail(c, NULL, "one of route, direct_response is required");
    }
    return COMPILE_EDITS(c, m, &r->req, &r->resp);
}

/* ---- virtual hosts and domains -----------------------------------------------------------------
 */

struct domain_tmp {
    const char *d; /* lower-cased */
    uint32_t len;
    uint8_t kind;
    const struct rs_vhost *vh;
};

static enum dom_kind domain_kind(const char *d, size_t n)
{
    if (n == 1 && d[0] == '*') return DOM_ANY;
    if (d[0] == '*') return DOM_SUFFIX;
    if (d[n - 1] == '*') return DOM_PREFIX;
    return DOM_EXACT;
}

static int check_vhost_unsupported(struct cctx *c, const VirtualHost *v, struct rs_vhost *vh)
{
    if (v->matcher) return unsupported(c, "matcher");
    if (v->require_tls) return unsupported(c, "require_tls");
    if (v->n_rate_limits) return unsupported(c, "rate_limits");
    if (v->cors) return unsupported(c, "cors");
    if (PER_FILTER(c, v, &vh->filter_cfgs)) return -1;
    if (v->retry_policy_typed_config) return unsupported(c, "retry_policy_typed_config");
    if (v->hedge_policy) return unsupported(c, "hedge_policy");
    if (v->n_request_mirror_policies) return unsupported(c, "request_mirror_policies");
    /* virtual_clusters (stats), metadata, include_is_timeout_retry_header: accepted. */
    return 0;
}

static int compile_vhost(struct cctx *c, const VirtualHost *v, struct vhost_impl *vh,
                         struct domain_tmp *doms, size_t *n_doms)
{
    if (check_vhost_unsupported(c, v, &vh->pub)) return -1;
    vh->pub.name = arena_strndup(c->t, S(v->name), strlen(S(v->name)));
    vh->pub.include_request_attempt_count = v->include_request_attempt_count;
    vh->pub.include_attempt_count_in_response = v->include_attempt_count_in_response;
    if (!v->n_domains) return cfail(c, "domains", "at least one domain required");
    for (size_t i = 0; i < v->n_domains; i++) {
        size_t n = strlen(S(v->domains[i]));
        if (!n) return cfail(c, "domains", "[%zu] is empty", i);
        struct domain_tmp *d = &doms[(*n_doms)++];
        d->d = arena_strlower(c->t, v->domains[i], n);
        d->len = (uint32_t)n;
        d->kind = (uint8_t)domain_kind(d->d, n);
        d->vh = &vh->pub;
    }
    if (compile_retry(c, v->retry_policy, &vh->pub.retry)) return -1;
    if (COMPILE_EDITS(c, v, &vh->pub.req, &vh->pub.resp)) return -1;
    vh->routes = ANEW(c->t, struct rs_route, v->n_routes);
    vh->n_routes = (uint32_t)v->n_routes;
    for (size_t i = 0; i < v->n_routes; i++) {
        size_t mk = ppush(c, "routes[%zu]", i);
        if (compile_route(c, v->routes[i], vh, &vh->routes[i])) return -1;
        ppop(c, mk);
    }
    return 0;
}

static int cmp_wild_len_desc(const void *a, const void *b)
{
    const struct wildcard *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static int add_exact(struct cctx *c, const struct domain_tmp *d)
{
    struct rs_route_table *t = c->t;
    uint64_t h = hash_lower(d->d, d->len);
    for (uint32_t i = (uint32_t)h & t->exact_mask;; i = (i + 1) & t->exact_mask) {
        struct dom_slot *s = &t->exact[i];
        if (!s->name) {
            *s = (struct dom_slot){d->d, d->len, h, d->vh};
            return 0;
        }
        if (s->hash == h && s->len == d->len && !memcmp(s->name, d->d, d->len))
            return cfail(c, NULL, "duplicate domain '%s' (in virtual hosts '%s' and '%s')", d->d,
                         s->vh->name, d->vh->name);
    }
}

static int add_wildcard(struct cctx *c, struct wildcard *w, uint32_t *n, const char *s,
                        uint32_t len, const struct domain_tmp *d)
{
    for (uint32_t i = 0; i < *n; i++)
        if (w[i].len == len && !memcmp(w[i].s, s, len))
            return cfail(c, NULL, "duplicate domain '%s' (in virtual hosts '%s' and '%s')", d->d,
                         w[i].vh->name, d->vh->name);
    w[(*n)++] = (struct wildcard){s, len, d->vh};
    return 0;
}

static int build_domains(struct cctx *c, const struct domain_tmp *doms, size_t n)
{
    struct rs_route_table *t = c->t;
    uint32_t cap = 8;
    while (cap < n * 2) cap <<= 1;
    t->exact = ANEW(t, struct dom_slot, cap);
    t->exact_mask = cap - 1;
    t->suffixes = ANEW(t, struct wildcard, n);
    t->prefixes = ANEW(t, struct wildcard, n);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct domain_tmp *d = &doms[i];
        switch (d->kind) {
        case DOM_EXACT:
            rc = add_exact(c, d);
            break;
        case DOM_SUFFIX:
            rc = add_wildcard(c, t->suffixes, &t->n_suffixes, d->d + 1, d->len - 1, d);
            break;
        case DOM_PREFIX:
            rc = add_wildcard(c, t->prefixes, &t->n_prefixes, d->d, d->len - 1, d);
            break;
        default:
            if (t->any)
                return cfail(c, NULL,
                             "only a single wildcard domain '*' is permitted "
                             "(virtual hosts '%s' and '%s')",
                             t->any->name, d->vh->name);
            t->any = d->vh;
        }
    }
    qsort(t->suffixes, t->n_suffixes, sizeof *t->suffixes, cmp_wild_len_desc);
    qsort(t->prefixes, t->n_prefixes, sizeof *t->prefixes, cmp_wild_len_desc);
    return rc;
}

/* ---- route configuration -----------------------------------------------------------------------
 */

static int check_config_unsupported(struct cctx *c, const RouteConfiguration *rc)
{
    if (rc->vhds) return unsupported(c, "vhds");
    if (rc->n_internal_only_headers) return unsupported(c, "internal_only_headers");
    if (rc->n_cluster_specifier_plugins) return unsupported(c, "cluster_specifier_plugins");
    if (rc->n_request_mirror_policies) return unsupported(c, "request_mirror_policies");
    if (rc->ignore_path_parameters_in_path_matching)
        return unsupported(c, "ignore_path_parameters_in_path_matching");
    if (PER_FILTER(c, rc, &c->t->filter_cfgs)) return -1;
    return 0;
}

static int compile_config(struct cctx *c, const RouteConfiguration *rc)
{
    struct rs_route_table *t = c->t;
    if (check_config_unsupported(c, rc)) return -1;
    c->validate_clusters =
        rc->validate_clusters ? rc->validate_clusters->value : c->o->validate_clusters;
    c->max_body = rc->max_direct_response_body_size_bytes
                      ? rc->max_direct_response_body_size_bytes->value
                      : DEFAULT_MAX_BODY;
    t->most_specific_wins = rc->most_specific_header_mutations_wins;
    t->strip_any_port = c->o->strip_any_host_port || rc->ignore_port_in_host_matching;
    t->strip_matching_port = c->o->strip_matching_host_port;
    t->listener_port = c->o->listener_port;
    if (COMPILE_EDITS(c, rc, &t->req, &t->resp)) return -1;
    size_t n_doms = 0;
    for (size_t i = 0; i < rc->n_virtual_hosts; i++) n_doms += rc->virtual_hosts[i]->n_domains;
    struct domain_tmp *doms = ANEW(t, struct domain_tmp, n_doms);
    t->vhosts = ANEW(t, struct vhost_impl, rc->n_virtual_hosts);
    t->n_vhosts = (uint32_t)rc->n_virtual_hosts;
    n_doms = 0;
    for (size_t i = 0; i < rc->n_virtual_hosts; i++) {
        size_t mk = ppush(c, "virtual_hosts[%zu]", i);
        if (compile_vhost(c, rc->virtual_hosts[i], &t->vhosts[i], doms, &n_doms)) return -1;
        ppop(c, mk);
    }
    size_t mk = ppush(c, "virtual_hosts");
    if (build_domains(c, doms, n_doms)) return -1;
    ppop(c, mk);
    return 0;
}

struct rs_route_table *rs_route_table_compile(const RouteConfiguration *rc,
                                              const struct rs_route_compile_opts *opts, char *err,
                                              size_t errlen)
{
    struct rs_route_table *t = calloc(1, sizeof *t);
    if (!t) abort();
    t->refs = 1;
    struct cctx c = {.t = t, .o = opts, .err = err, .errlen = errlen};
    if (errlen) err[0] = 0;
    if (!rc || !opts || !opts->cluster_index) {
        cfail(&c, NULL, "route configuration and cluster_index callback required");
        goto fail;
    }
    if (compile_config(&c, rc)) goto fail;
    return t;
fail:
    rs_route_table_free(t);
    return NULL;
}

struct rs_route_table *rs_route_table_ref(struct rs_route_table *t)
{
    __atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void rs_route_table_set_source(struct rs_route_table *t, const void *src, uint64_t key)
{
    t->src = src;
    t->src_key = key;
}

const void *rs_route_table_source(const struct rs_route_table *t, uint64_t *key)
{
    *key = t->src_key;
    return t->src;
}

static void free_filter_cfgs(const struct rs_route_table *t, const struct rs_route_filter_cfg *f)
{
    for (; f && t->filter_cfg_free; f = f->next) t->filter_cfg_free(f->cfg);
}

void rs_route_table_free(struct rs_route_table *t)
{
    if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    free_filter_cfgs(t, t->filter_cfgs);
    for (uint32_t i = 0; t->vhosts && i < t->n_vhosts; i++) {
        free_filter_cfgs(t, t->vhosts[i].pub.filter_cfgs);
        for (uint32_t j = 0; t->vhosts[i].routes && j < t->vhosts[i].n_routes; j++)
            free_filter_cfgs(t, t->vhosts[i].routes[j].filter_cfgs);
    }
    for (struct re_node *n = t->regexes; n; n = n->next) pcre2_code_free(n->re);
    for (struct chunk *c = t->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(t);
}

static const void *find_filter_cfg(const struct rs_route_filter_cfg *f, const char *filter)
{
    for (; f; f = f->next)
        if (strcmp(f->filter, filter) == 0) return f->cfg;
    return NULL;
}

const void *rs_route_filter_config(const struct rs_route_table *t, const struct rs_route *r,
                                   const char *filter)
{
    const void *cfg = r ? find_filter_cfg(r->filter_cfgs, filter) : NULL;
    if (!cfg && r && r->vhost) cfg = find_filter_cfg(r->vhost->filter_cfgs, filter);
    if (!cfg && t) cfg = find_filter_cfg(t->filter_cfgs, filter);
    return cfg;
}

const struct rs_header_edits *rs_route_table_req_edits(const struct rs_route_table *t)
{
    return &t->req;
}

const struct rs_header_edits *rs_route_table_resp_edits(const struct rs_route_table *t)
{
    return &t->resp;
}
