/* The HTTP router: compiles an Envoy v3 RouteConfiguration into an immutable rs_route_table (one
 * chunked arena plus the PCRE2 codes it owns) and matches requests against it.
 *
 * Semantics follow Envoy's config_impl: virtual hosts by domain (exact, longest `*suffix`,
 * longest `prefix*`, then `*`; lower-cased; the Host is used as is, port included, unless a
 * strip option says otherwise), routes in order with the first match winning, safe_regex as a
 * full match (RE2::FullMatch in Envoy) run with PCRE2 + JIT. */
#include "sidecar/router.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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
#define HOST_BUF 1024            /* longest Host we lower-case for lookup */
#define QP_NAME_BUF 256          /* longest decoded query parameter name compared */
#define QP_VALUE_BUF 2048        /* longest decoded query parameter value compared */

/* ---- arena ------------------------------------------------------------------------------- */

struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct re_node {
    pcre2_code *re;
    struct re_node *next;
};

enum dom_kind { DOM_EXACT, DOM_SUFFIX, DOM_PREFIX, DOM_ANY };

struct dom_slot {
    const char *name; /* lower-cased; NULL = empty slot */
    uint32_t len;
    uint64_t hash;
    const struct rs_vhost *vh;
};

struct wildcard {
    const char *s; /* suffix (without the leading '*') or prefix (without the trailing '*') */
    uint32_t len;
    const struct rs_vhost *vh;
};

struct vhost_impl {
    struct rs_vhost pub; /* first: rs_route.vhost points here */
    struct rs_route *routes;
    uint32_t n_routes;
};

struct rs_route_table {
    struct chunk *chunks;
    struct re_node *regexes;
    struct vhost_impl *vhosts;
    uint32_t n_vhosts;
    struct dom_slot *exact;
    uint32_t exact_mask;
    struct wildcard *suffixes, *prefixes; /* longest first */
    uint32_t n_suffixes, n_prefixes;
    const struct rs_vhost *any;
    bool strip_any_port, strip_matching_port;
    uint16_t listener_port;
    bool most_specific_wins;
    struct rs_header_edits req, resp;
};

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

static inline unsigned char lc(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

static char *arena_strlower(struct rs_route_table *t, const char *s, size_t n)
{
    char *p = arena_strndup(t, s, n);
    for (size_t i = 0; i < n; i++) p[i] = (char)lc((unsigned char)p[i]);
    return p;
}

/* ---- private matcher types ----------------------------------------------------------------- */

enum sm_kind { SM_EXACT, SM_PREFIX, SM_SUFFIX, SM_CONTAINS, SM_REGEX };

struct strmatch {
    uint8_t kind;
    bool icase; /* pattern stored lower-cased */
    const char *s;
    uint32_t len;
    const pcre2_code *re;
};

enum pseudo { PS_NONE, PS_METHOD, PS_PATH, PS_AUTHORITY };
enum hm_kind { HM_STRING, HM_PRESENT, HM_RANGE };

struct hdrmatch {
    const char *name;
    uint32_t name_len;
    uint8_t pseudo, kind;
    bool invert, missing_as_empty, present;
    int64_t start, end;
    struct strmatch sm;
};

enum qm_kind { QM_PRESENT, QM_STRING };

struct qpmatch {
    const char *name;
    uint32_t name_len;
    uint8_t kind;
    bool present;
    struct strmatch sm;
};

enum path_kind { PK_PREFIX, PK_PATH, PK_REGEX, PK_SEPARATED };

struct rs_route_match {
    uint8_t path_kind;
    bool icase; /* pattern stored lower-cased */
    const char *s;
    uint32_t len;
    const pcre2_code *re;
    const struct hdrmatch *h;
    const struct qpmatch *q;
    uint32_t n_h, n_q;
};

enum fmt_var {
    FV_LITERAL = -1,
    FV_DOWNSTREAM_REMOTE,
    FV_DOWNSTREAM_REMOTE_NOPORT,
    FV_DOWNSTREAM_LOCAL,
    FV_DOWNSTREAM_LOCAL_NOPORT,
    FV_UPSTREAM_REMOTE,
    FV_UPSTREAM_REMOTE_NOPORT,
    FV_PROTOCOL,
    FV_HOSTNAME,
};

struct rs_fmt_seg {
    const char *lit;
    uint32_t len;
    int8_t var; /* enum fmt_var */
};

static const struct {
    const char *name;
    int8_t var;
} fmt_vars[] = {
    {"DOWNSTREAM_REMOTE_ADDRESS", FV_DOWNSTREAM_REMOTE},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", FV_DOWNSTREAM_REMOTE_NOPORT},
    {"DOWNSTREAM_LOCAL_ADDRESS", FV_DOWNSTREAM_LOCAL},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", FV_DOWNSTREAM_LOCAL_NOPORT},
    {"UPSTREAM_REMOTE_ADDRESS", FV_UPSTREAM_REMOTE},
    {"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", FV_UPSTREAM_REMOTE_NOPORT},
    {"PROTOCOL", FV_PROTOCOL},
    {"HOSTNAME", FV_HOSTNAME},
};

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
    uint32_t opts = PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C;
    if (full) opts |= PCRE2_ANCHORED | PCRE2_ENDANCHORED;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), opts, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return cfail(c, "regex", "%s at offset %zu", (const char *)msg, (size_t)off);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    struct re_node *n = ANEW(c->t, struct re_node, 1);
    n->re = re;
    n->next = c->t->regexes;
    c->t->regexes = n;
    *out = re;
    return 0;
}

static _Thread_local pcre2_match_data *tl_md;

static pcre2_match_data *match_data(void)
{
    if (!tl_md) {
        tl_md = pcre2_match_data_create(32, NULL);
        if (!tl_md) abort();
    }
    return tl_md;
}

void rs_router_thread_cleanup(void)
{
    pcre2_match_data_free(tl_md);
    tl_md = NULL;
}

static bool re_full(const pcre2_code *re, const char *s, size_t n)
{
    return pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, match_data(), NULL) >= 0;
}

/* ---- string matchers ------------------------------------------------------------------------- */

static bool eq_icase(const char *a, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lc((unsigned char)a[i]) != (unsigned char)lower[i]) return false;
    return true;
}

static bool eq(const char *a, const char *b, size_t n, bool icase)
{
    return icase ? eq_icase(a, b, n) : memcmp(a, b, n) == 0;
}

static bool contains(const char *v, size_t n, const char *s, size_t len, bool icase)
{
    if (!icase) return memmem(v, n, s, len) != NULL;
    for (size_t i = 0; i + len <= n; i++)
        if (eq_icase(v + i, s, len)) return true;
    return false;
}

static bool str_match(const struct strmatch *m, const char *v, size_t n)
{
    switch (m->kind) {
    case SM_EXACT:
        return n == m->len && eq(v, m->s, n, m->icase);
    case SM_PREFIX:
        return n >= m->len && eq(v, m->s, m->len, m->icase);
    case SM_SUFFIX:
        return n >= m->len && eq(v + n - m->len, m->s, m->len, m->icase);
    case SM_CONTAINS:
        return contains(v, n, m->s, m->len, m->icase);
    default:
        return re_full(m->re, v, n);
    }
}

static int compile_strmatch(struct cctx *c, const StringMatcher *sm, struct strmatch *out)
{
    const char *s = NULL;
    out->icase = sm->ignore_case;
    switch (sm->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        out->kind = SM_EXACT, s = S(sm->exact);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        out->kind = SM_PREFIX, s = S(sm->prefix);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        out->kind = SM_SUFFIX, s = S(sm->suffix);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        out->kind = SM_CONTAINS, s = S(sm->contains);
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        /* ignore_case has no effect on safe_regex (StringMatcher docs). */
        out->kind = SM_REGEX;
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
    if (out->kind != SM_EXACT && !*s)
        return cfail(c, NULL, "empty prefix/suffix/contains pattern (use present_match)");
    out->len = (uint32_t)strlen(s);
    out->s = out->icase ? arena_strlower(c->t, s, out->len) : arena_strndup(c->t, s, out->len);
    return 0;
}

static int plain_strmatch(struct cctx *c, enum sm_kind kind, const char *s, struct strmatch *out)
{
    out->kind = (uint8_t)kind;
    out->len = (uint32_t)strlen(S(s));
    if (kind != SM_EXACT && !out->len)
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
        return plain_strmatch(c, SM_EXACT, hm->exact_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
        return plain_strmatch(c, SM_PREFIX, hm->prefix_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
        return plain_strmatch(c, SM_SUFFIX, hm->suffix_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
        return plain_strmatch(c, SM_CONTAINS, hm->contains_match, &h->sm);
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH: {
        h->sm.kind = SM_REGEX;
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
    if (w->n_typed_per_filter_config) return unsupported(c, "typed_per_filter_config");
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
    if (a->max_grpc_timeout) return unsupported(c, "max_grpc_timeout");
    if (a->grpc_timeout_offset) return unsupported(c, "grpc_timeout_offset");
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
    if (m->n_typed_per_filter_config) return unsupported(c, "typed_per_filter_config");
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

static uint64_t hash_lower(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ lc((unsigned char)s[i])) * 1099511628211ull;
    return h;
}

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

static int check_vhost_unsupported(struct cctx *c, const VirtualHost *v)
{
    if (v->matcher) return unsupported(c, "matcher");
    if (v->require_tls) return unsupported(c, "require_tls");
    if (v->n_rate_limits) return unsupported(c, "rate_limits");
    if (v->cors) return unsupported(c, "cors");
    if (v->n_typed_per_filter_config) return unsupported(c, "typed_per_filter_config");
    if (v->retry_policy_typed_config) return unsupported(c, "retry_policy_typed_config");
    if (v->hedge_policy) return unsupported(c, "hedge_policy");
    if (v->n_request_mirror_policies) return unsupported(c, "request_mirror_policies");
    /* virtual_clusters (stats), metadata, include_is_timeout_retry_header: accepted. */
    return 0;
}

static int compile_vhost(struct cctx *c, const VirtualHost *v, struct vhost_impl *vh,
                         struct domain_tmp *doms, size_t *n_doms)
{
    if (check_vhost_unsupported(c, v)) return -1;
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
    if (rc->n_typed_per_filter_config) return unsupported(c, "typed_per_filter_config");
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

void rs_route_table_free(struct rs_route_table *t)
{
    if (!t) return;
    for (struct re_node *n = t->regexes; n; n = n->next) pcre2_code_free(n->re);
    for (struct chunk *c = t->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(t);
}

const struct rs_header_edits *rs_route_table_req_edits(const struct rs_route_table *t)
{
    return &t->req;
}

const struct rs_header_edits *rs_route_table_resp_edits(const struct rs_route_table *t)
{
    return &t->resp;
}

/* ---- matching ----------------------------------------------------------------------------------
 */

/* Envoy's HeaderUtility::getPortStart: the last ':' unless it sits inside an IPv6 "[...]". */
static size_t port_start(const char *h, size_t n)
{
    const char *colon = memrchr(h, ':', n);
    if (!colon) return n;
    const char *br = memrchr(h, ']', n);
    if (br && br > colon) return n;
    return (size_t)(colon - h);
}

static size_t host_for_lookup(const struct rs_route_table *t, const char *h, size_t n)
{
    if (!t->strip_any_port && !t->strip_matching_port) return n;
    size_t ps = port_start(h, n);
    if (ps == n || t->strip_any_port) return ps;
    unsigned port = 0;
    size_t i = ps + 1;
    for (; i < n && h[i] >= '0' && h[i] <= '9' && port <= 65535; i++)
        port = port * 10 + (unsigned)(h[i] - '0');
    return (i == n && i > ps + 1 && port == t->listener_port) ? ps : n;
}

static const struct rs_vhost *find_wildcard(const struct wildcard *w, uint32_t n, const char *h,
                                            size_t len, bool suffix)
{
    /* Longest first; a wildcard never matches the empty string, so the host must be longer. */
    for (uint32_t i = 0; i < n; i++) {
        if (w[i].len >= len) continue;
        const char *at = suffix ? h + len - w[i].len : h;
        if (!memcmp(at, w[i].s, w[i].len)) return w[i].vh;
    }
    return NULL;
}

const struct rs_vhost *rs_route_find_vhost(const struct rs_route_table *t, const char *authority,
                                           size_t len)
{
    if (!authority) return t->any;
    len = host_for_lookup(t, authority, len);
    if (len > HOST_BUF) return t->any;
    char h[HOST_BUF];
    for (size_t i = 0; i < len; i++) h[i] = (char)lc((unsigned char)authority[i]);
    uint64_t hv = hash_lower(h, len);
    for (uint32_t i = (uint32_t)hv & t->exact_mask;; i = (i + 1) & t->exact_mask) {
        const struct dom_slot *s = &t->exact[i];
        if (!s->name) break;
        if (s->hash == hv && s->len == len && !memcmp(s->name, h, len)) return s->vh;
    }
    const struct rs_vhost *vh = find_wildcard(t->suffixes, t->n_suffixes, h, len, true);
    if (!vh) vh = find_wildcard(t->prefixes, t->n_prefixes, h, len, false);
    return vh ? vh : t->any;
}

struct req_view {
    const struct rs_route_request *r;
    size_t path_noq; /* :path up to '?' or '#' */
    const char *query;
    size_t query_len;
};

static bool path_match(const struct rs_route_match *m, const struct req_view *v)
{
    const char *p = v->r->path;
    switch (m->path_kind) {
    case PK_PREFIX: /* Envoy compares the prefix against the whole :path, query included. */
        return v->r->path_len >= m->len && eq(p, m->s, m->len, m->icase);
    case PK_PATH:
        return v->path_noq == m->len && eq(p, m->s, m->len, m->icase);
    case PK_SEPARATED:
        return v->path_noq >= m->len && eq(p, m->s, m->len, m->icase) &&
               (v->path_noq == m->len || p[m->len] == '/');
    default:
        return re_full(m->re, p, v->path_noq);
    }
}

static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return false;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool header_value(const struct hdrmatch *h, const struct rs_route_request *r, const char **v,
                         size_t *n)
{
    switch (h->pseudo) {
    case PS_METHOD:
        *v = r->method, *n = r->method_len;
        return r->method != NULL;
    case PS_PATH:
        *v = r->path, *n = r->path_len;
        return r->path != NULL;
    case PS_AUTHORITY:
        *v = r->authority, *n = r->authority_len;
        return r->authority != NULL;
    default:
        return r->header && r->header(r->ctx, h->name, h->name_len, v, n);
    }
}

/* Envoy's HeaderUtility::matchHeaders: a missing header matches nothing (inverted or not)
 * unless treat_missing_header_as_empty; present_match compares presence, then invert applies. */
static bool header_match(const struct hdrmatch *h, const struct rs_route_request *r)
{
    const char *v = NULL;
    size_t n = 0;
    bool found = header_value(h, r, &v, &n);
    if (h->kind == HM_PRESENT) return (found == h->present) != h->invert;
    if (!found) {
        if (!h->missing_as_empty) return false;
        v = "", n = 0;
    }
    bool m;
    if (h->kind == HM_RANGE) {
        int64_t x;
        m = parse_int64(v, n, &x) && x >= h->start && x < h->end;
    } else {
        m = str_match(&h->sm, v, n);
    }
    return m != h->invert;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = lc(ch);
    return (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
}

/* Percent-decodes into out (Envoy decodes query names and values; '+' stays '+'). Returns the
 * decoded length, or -1 when it does not fit. */
static ssize_t pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o == cap) return -1;
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return (ssize_t)o;
}

/* The first value of the parameter (Envoy's QueryParamsMulti::getFirstValue). */
static bool qp_first(const struct qpmatch *q, const char *s, size_t n, char *vbuf, size_t *vlen)
{
    char nbuf[QP_NAME_BUF];
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - s) : n;
        const char *eqs = memchr(s + i, '=', end - i);
        size_t kend = eqs ? (size_t)(eqs - s) : end;
        ssize_t kl = pct_decode(s + i, kend - i, nbuf, sizeof nbuf);
        if (kend > i && kl == (ssize_t)q->name_len && !memcmp(nbuf, q->name, q->name_len)) {
            size_t vs = eqs ? kend + 1 : end;
            ssize_t vl = pct_decode(s + vs, end - vs, vbuf, QP_VALUE_BUF);
            *vlen = vl < 0 ? SIZE_MAX : (size_t)vl; /* too long: present, matches no value */
            return true;
        }
        i = end + 1;
    }
    return false;
}

static bool query_match(const struct qpmatch *q, const struct req_view *v)
{
    char vbuf[QP_VALUE_BUF];
    size_t vl = 0;
    bool found = v->query && qp_first(q, v->query, v->query_len, vbuf, &vl);
    if (q->kind == QM_PRESENT) return found == q->present;
    return found && vl != SIZE_MAX && str_match(&q->sm, vbuf, vl);
}

static bool route_matches(const struct rs_route_match *m, const struct req_view *v)
{
    if (!path_match(m, v)) return false;
    for (uint32_t i = 0; i < m->n_h; i++)
        if (!header_match(&m->h[i], v->r)) return false;
    for (uint32_t i = 0; i < m->n_q; i++)
        if (!query_match(&m->q[i], v)) return false;
    return true;
}

static size_t path_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '?' || p[i] == '#') return i;
    return n;
}

const struct rs_route *rs_route_match(const struct rs_route_table *t,
                                      const struct rs_route_request *req)
{
    const struct vhost_impl *vh =
        (const struct vhost_impl *)rs_route_find_vhost(t, req->authority, req->authority_len);
    if (!vh || !req->path) return NULL;
    struct req_view v = {.r = req, .path_noq = path_end(req->path, req->path_len)};
    if (v.path_noq < req->path_len && req->path[v.path_noq] == '?') {
        v.query = req->path + v.path_noq + 1;
        const char *hash = memchr(v.query, '#', req->path_len - v.path_noq - 1);
        v.query_len = hash ? (size_t)(hash - v.query) : req->path_len - v.path_noq - 1;
    }
    for (uint32_t i = 0; i < vh->n_routes; i++)
        if (route_matches(vh->routes[i].match, &v)) return &vh->routes[i];
    return NULL;
}

/* ---- actions -----------------------------------------------------------------------------------
 */

const struct rs_route_cluster *rs_route_pick_cluster(const struct rs_route *r, uint64_t rnd)
{
    if (!r->n_clusters) return NULL;
    if (!r->weighted) return &r->clusters[0];
    uint64_t sel = rnd % r->total_weight;
    for (uint32_t i = 0; i < r->n_clusters; i++)
        if (sel < r->clusters[i].weight_end) return &r->clusters[i];
    return &r->clusters[r->n_clusters - 1];
}

static ssize_t rewrite_regex(const struct rs_route *r, const char *path, size_t noq, char *out,
                             size_t outcap)
{
    PCRE2_SIZE olen = outcap;
    int rc = pcre2_substitute(r->regex_rewrite, (PCRE2_SPTR)path, noq, 0,
                              PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH,
                              match_data(), NULL, (PCRE2_SPTR)r->regex_subst, r->regex_subst_len,
                              (PCRE2_UCHAR *)out, &olen);
    if (rc == PCRE2_ERROR_NOMEMORY) return -ENOSPC;
    if (rc < 0) return -EINVAL;
    return (ssize_t)olen;
}

ssize_t rs_route_rewrite_path(const struct rs_route *r, const char *path, size_t len, char *out,
                              size_t outcap)
{
    if (!r->prefix_rewrite && !r->regex_rewrite) return -ENOENT;
    size_t noq = path_end(path, len), o;
    if (r->regex_rewrite) {
        ssize_t n = rewrite_regex(r, path, noq, out, outcap);
        if (n < 0) return n;
        o = (size_t)n;
    } else {
        /* Envoy replaces the matched part: the prefix for prefix matches, the whole path
         * (without query) for path and regex matches. */
        size_t matched = r->matched_prefix_len ? r->matched_prefix_len : noq;
        if (matched > noq) matched = noq; /* prefix match ran into the query */
        o = r->prefix_rewrite_len + (noq - matched);
        if (o > outcap) return -ENOSPC;
        memcpy(out, r->prefix_rewrite, r->prefix_rewrite_len);
        memcpy(out + r->prefix_rewrite_len, path + matched, noq - matched);
    }
    if (o + (len - noq) > outcap) return -ENOSPC;
    memcpy(out + o, path + noq, len - noq);
    return (ssize_t)(o + len - noq);
}

const char *rs_route_host_rewrite(const struct rs_route *r, const struct rs_route_cluster *c)
{
    if (c && c->host_rewrite_literal) return c->host_rewrite_literal;
    return r->host_rewrite_literal;
}

static size_t collect_edits(const struct rs_route_table *t, const struct rs_header_edits *lv[4],
                            const struct rs_header_edits *out[4])
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        const struct rs_header_edits *e = lv[t->most_specific_wins ? 3 - i : i];
        if (e && (e->n_add || e->n_remove)) out[n++] = e;
    }
    return n;
}

size_t rs_route_request_edits(const struct rs_route_table *t, const struct rs_route *r,
                              const struct rs_route_cluster *c,
                              const struct rs_header_edits *out[4])
{
    const struct rs_header_edits *lv[4] = {c ? &c->req : NULL, &r->req, &r->vhost->req, &t->req};
    return collect_edits(t, lv, out);
}

size_t rs_route_response_edits(const struct rs_route_table *t, const struct rs_route *r,
                               const struct rs_route_cluster *c,
                               const struct rs_header_edits *out[4])
{
    const struct rs_header_edits *lv[4] = {c ? &c->resp : NULL, &r->resp, &r->vhost->resp,
                                           &t->resp};
    return collect_edits(t, lv, out);
}

static void strip_port(const char **s, size_t *n)
{
    if (*n && (*s)[0] == '[') { /* "[v6]:port" → "v6" */
        const char *br = memchr(*s, ']', *n);
        if (br) {
            *n = (size_t)(br - *s) - 1;
            (*s)++;
        }
        return;
    }
    *n = port_start(*s, *n);
}

static void var_value(const struct rs_route_format_vars *v, int var, const char **s, size_t *n)
{
    const char *vals[] = {v->downstream_remote_address,
                          v->downstream_remote_address,
                          v->downstream_local_address,
                          v->downstream_local_address,
                          v->upstream_remote_address,
                          v->upstream_remote_address,
                          v->protocol,
                          v->hostname};
    *s = vals[var] ? vals[var] : "";
    *n = strlen(*s);
    if (var == FV_DOWNSTREAM_REMOTE_NOPORT || var == FV_DOWNSTREAM_LOCAL_NOPORT ||
        var == FV_UPSTREAM_REMOTE_NOPORT)
        strip_port(s, n);
}

ssize_t rs_route_format_value(const struct rs_header_add *h, const struct rs_route_format_vars *v,
                              char *out, size_t outcap)
{
    size_t o = 0;
    for (uint32_t i = 0; i < h->n_segs; i++) {
        const char *s = h->segs[i].lit;
        size_t n = h->segs[i].len;
        if (h->segs[i].var >= 0) var_value(v, h->segs[i].var, &s, &n);
        if (o + n > outcap) return -ENOSPC;
        memcpy(out + o, s, n);
        o += n;
    }
    return (ssize_t)o;
}
