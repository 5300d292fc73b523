/* The RBAC engine (see rbac.h for the field table): compiles envoy.config.rbac.v3.RBAC into a
 * tree of matcher nodes in one arena, and evaluates it with Envoy's semantics: a policy matches
 * when one of its permissions and one of its principals match; policies are tried in name order.
 * Also the network and HTTP filter configurations around two engines (rules, shadow rules). */
#include "sidecar/rbac.h"
#include "sidecar/strmatch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"

/* Deprecated Envoy fields (HeaderMatcher.exact_match and the other *_match, Principal.source_ip)
 * are still valid config: read on purpose. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

typedef Envoy__Config__Rbac__V3__RBAC RBAC;
typedef Envoy__Config__Rbac__V3__Policy Policy;
typedef Envoy__Config__Rbac__V3__Permission Permission;
typedef Envoy__Config__Rbac__V3__Principal Principal;
typedef Envoy__Config__Route__V3__HeaderMatcher HeaderMatcher;
typedef Envoy__Type__Matcher__V3__StringMatcher StringMatcher;
typedef Envoy__Type__Matcher__V3__PathMatcher PathMatcher;
typedef Envoy__Type__Matcher__V3__RegexMatcher RegexMatcher;
typedef Envoy__Config__Core__V3__CidrRange CidrRange;

#define MAX_DEPTH 64

/* ---- compiled form ------------------------------------------------------------------------- */

enum pseudo { PS_NONE, PS_METHOD, PS_PATH, PS_AUTHORITY };
enum hm_kind { HM_STRING, HM_PRESENT, HM_RANGE };

struct hdrmatch {
    const char *name; /* lower-cased */
    uint32_t name_len;
    uint8_t pseudo, kind;
    bool invert, missing_as_empty, present;
    int64_t start, end;
    struct rs_strmatch sm;
};

struct cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t bits;
    uint8_t addr[16]; /* host bits cleared */
};

/* Permission and principal nodes share one tree type: the leaves differ, the logic does not. */
enum node_kind {
    N_ANY,
    N_AND,
    N_OR,
    N_NOT,
    N_HEADER,
    N_URL_PATH,
    N_DST_IP,
    N_DST_PORT,
    N_DST_PORT_RANGE,
    N_SNI,
    N_AUTHENTICATED,
    N_DIRECT_REMOTE_IP, /* source_ip and direct_remote_ip */
    N_REMOTE_IP,
};

struct node {
    uint8_t kind;
    bool any_name; /* N_AUTHENTICATED without principal_name */
    uint32_t n;    /* N_AND / N_OR: children */
    union {
        const struct node *kids; /* N_AND, N_OR: n of them; N_NOT: one */
        const struct hdrmatch *h;
        const struct rs_strmatch *sm; /* N_URL_PATH, N_SNI, N_AUTHENTICATED */
        const struct cidr *ip;
        struct {
            int32_t lo, hi; /* [lo, hi) */
        } port;
    };
};

struct policy {
    const char *name;
    const struct node *perms, *princs;
    uint32_t n_perms, n_princs;
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct re_node {
    pcre2_code *re;
    struct re_node *next;
};

struct rs_rbac {
    struct chunk *chunks;
    struct re_node *regexes;
    enum rs_rbac_action action;
    const struct policy *policies; /* sorted by name */
    uint32_t n_policies;
};

/* ---- arena ----------------------------------------------------------------------------------- */

/* Control path: out of memory aborts (STYLE.md). */
static void *arena_alloc(struct rs_rbac *r, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct chunk *c = r->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > 4096 ? size : 4096;
        c = malloc(sizeof *c + cap);
        if (!c) abort();
        c->next = r->chunks, c->used = 0, c->cap = cap;
        r->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

#define ANEW(r, type, n) ((type *)arena_alloc((r), sizeof(type) * (size_t)(n)))

#define lc rs_lc

static const char *arena_str(struct rs_rbac *r, const char *s, size_t n, bool lower)
{
    char *d = arena_alloc(r, n + 1);
    for (size_t i = 0; i < n; i++) d[i] = lower ? (char)lc((unsigned char)s[i]) : s[i];
    return d;
}

/* ---- compile context: the field path for error messages -------------------------------------- */

struct cctx {
    struct rs_rbac *r;
    char *err;
    size_t errlen;
    char path[512];
    size_t plen;
    int depth;
};

static size_t ppush(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
    c->path[c->plen] = 0;
    return mark;
}

static void ppop(struct cctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = 0;
}

/* Reports "<path>: <message>" and returns -1. */
static int cfail(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfail(struct cctx *c, const char *fmt, ...)
{
    if (!c->errlen) return -1;
    int n = snprintf(c->err, c->errlen, "%s: ", c->plen ? c->path : "(rbac)");
    if (n < 0 || (size_t)n >= c->errlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* cfail at a sub-field. */
static int ffail(struct cctx *c, const char *field, const char *msg)
{
    size_t m = ppush(c, "%s", field);
    cfail(c, "%s", msg);
    ppop(c, m);
    return -1;
}

static const char *S(const char *s)
{
    return s ? s : "";
}

/* ---- string matchers ------------------------------------------------------------------------- */

/* RE2 semantics on PCRE2 (as router.c): `$` only at the very end, a full match anchored at both
 * ends. */
static int compile_regex(struct cctx *c, const RegexMatcher *rm, const pcre2_code **out)
{
    if (!rm) return cfail(c, "required");
    char err[300];
    pcre2_code *re = rs_regex_compile(S(rm->regex), true, err, sizeof err);
    if (!re) {
        size_t m = ppush(c, "regex");
        cfail(c, "%s", err);
        ppop(c, m);
        return -1;
    }
    struct re_node *n = ANEW(c->r, struct re_node, 1);
    n->re = re;
    n->next = c->r->regexes;
    c->r->regexes = n;
    *out = re;
    return 0;
}

static int plain_strmatch(struct cctx *c, enum rs_sm_kind kind, const char *s, bool icase,
                          struct rs_strmatch *out)
{
    out->kind = (uint8_t)kind;
    out->icase = icase;
    out->len = (uint32_t)strlen(S(s));
    /* Envoy's validation: prefix, suffix and contains have min_len 1. */
    if (kind != RS_SM_EXACT && !out->len) return cfail(c, "must not be empty");
    out->s = arena_str(c->r, S(s), out->len, icase);
    return 0;
}

static int compile_strmatch(struct cctx *c, const StringMatcher *sm, struct rs_strmatch *out)
{
    if (!sm) return cfail(c, "required");
    const char *field;
    enum rs_sm_kind kind;
    const char *s;
    switch (sm->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        field = "exact", kind = RS_SM_EXACT, s = sm->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        field = "prefix", kind = RS_SM_PREFIX, s = sm->prefix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        field = "suffix", kind = RS_SM_SUFFIX, s = sm->suffix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        field = "contains", kind = RS_SM_CONTAINS, s = sm->contains;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        /* ignore_case has no effect on safe_regex (StringMatcher docs). */
        out->kind = RS_SM_REGEX;
        size_t m = ppush(c, "safe_regex");
        int rc = compile_regex(c, sm->safe_regex, &out->re);
        ppop(c, m);
        return rc;
    }
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CUSTOM:
        return ffail(c, "custom", "not supported");
    default:
        return cfail(c, "one of exact, prefix, suffix, contains, safe_regex is required");
    }
    size_t m = ppush(c, "%s", field);
    int rc = plain_strmatch(c, kind, s, sm->ignore_case, out);
    ppop(c, m);
    return rc;
}

/* ---- header matchers ------------------------------------------------------------------------- */

static int compile_hdr_spec(struct cctx *c, const HeaderMatcher *hm, struct hdrmatch *h)
{
    h->kind = HM_STRING;
    const char *field = NULL;
    int rc;
    size_t m;
    switch (hm->header_match_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
        m = ppush(c, "exact_match");
        rc = plain_strmatch(c, RS_SM_EXACT, hm->exact_match, false, &h->sm);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
        m = ppush(c, "prefix_match");
        rc = plain_strmatch(c, RS_SM_PREFIX, hm->prefix_match, false, &h->sm);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
        m = ppush(c, "suffix_match");
        rc = plain_strmatch(c, RS_SM_SUFFIX, hm->suffix_match, false, &h->sm);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
        m = ppush(c, "contains_match");
        rc = plain_strmatch(c, RS_SM_CONTAINS, hm->contains_match, false, &h->sm);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
        h->sm.kind = RS_SM_REGEX;
        m = ppush(c, "safe_regex_match");
        rc = compile_regex(c, hm->safe_regex_match, &h->sm.re);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
        m = ppush(c, "string_match");
        rc = compile_strmatch(c, hm->string_match, &h->sm);
        break;
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
        h->kind = HM_RANGE;
        h->start = hm->range_match->start;
        h->end = hm->range_match->end;
        field = "range_match";
        return h->start < h->end ? 0 : ffail(c, field, "start must be below end");
    case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
        h->kind = HM_PRESENT;
        h->present = hm->present_match;
        return 0;
    default: /* no specifier: Envoy matches on presence */
        h->kind = HM_PRESENT;
        h->present = true;
        return 0;
    }
    ppop(c, m);
    return rc;
}

static int compile_header(struct cctx *c, const HeaderMatcher *hm, struct node *n)
{
    size_t len = strlen(S(hm->name));
    if (!len) return ffail(c, "name", "required");
    struct hdrmatch *h = ANEW(c->r, struct hdrmatch, 1);
    h->name = arena_str(c->r, hm->name, len, true);
    h->name_len = (uint32_t)len;
    h->pseudo = !strcmp(h->name, ":method")      ? PS_METHOD
                : !strcmp(h->name, ":path")      ? PS_PATH
                : !strcmp(h->name, ":authority") ? PS_AUTHORITY
                                                 : PS_NONE;
    h->invert = hm->invert_match;
    h->missing_as_empty = hm->treat_missing_header_as_empty;
    n->kind = N_HEADER;
    n->h = h;
    return compile_hdr_spec(c, hm, h);
}

/* ---- leaves ---------------------------------------------------------------------------------- */

static int compile_url_path(struct cctx *c, const PathMatcher *pm, struct node *n)
{
    if (pm->rule_case != ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH)
        return ffail(c, "path", "required");
    struct rs_strmatch *sm = ANEW(c->r, struct rs_strmatch, 1);
    size_t m = ppush(c, "path");
    int rc = compile_strmatch(c, pm->path, sm);
    ppop(c, m);
    n->kind = N_URL_PATH;
    n->sm = sm;
    return rc;
}

static int compile_cidr(struct cctx *c, const CidrRange *cr, enum node_kind kind, struct node *n)
{
    struct cidr *ip = ANEW(c->r, struct cidr, 1);
    const char *a = S(cr->address_prefix);
    unsigned max;
    if (inet_pton(AF_INET, a, ip->addr) == 1)
        ip->family = AF_INET, max = 32;
    else if (inet_pton(AF_INET6, a, ip->addr) == 1)
        ip->family = AF_INET6, max = 128;
    else
        return ffail(c, "address_prefix", *a ? "not an IPv4 or IPv6 address" : "required");
    uint32_t bits = cr->prefix_len ? cr->prefix_len->value : 0; /* unset is 0 (CidrRange docs) */
    if (bits > max) {
        size_t m = ppush(c, "prefix_len");
        cfail(c, "%u is longer than the %u bits of %s", bits, max, a);
        ppop(c, m);
        return -1;
    }
    ip->bits = (uint8_t)bits;
    /* Envoy compares the masked address: clear the host bits once here. */
    for (unsigned i = 0; i < max / 8; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        ip->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    n->kind = (uint8_t)kind;
    n->ip = ip;
    return 0;
}

static int compile_strmatch_node(struct cctx *c, const StringMatcher *sm, enum node_kind kind,
                                 struct node *n)
{
    struct rs_strmatch *m = ANEW(c->r, struct rs_strmatch, 1);
    n->kind = (uint8_t)kind;
    n->sm = m;
    return compile_strmatch(c, sm, m);
}

/* ---- permissions and principals -------------------------------------------------------------- */

static int compile_permission(struct cctx *c, const Permission *p, struct node *n);
static int compile_principal(struct cctx *c, const Principal *p, struct node *n);

typedef int (*compile_fn)(struct cctx *c, const void *msg, struct node *n);

/* A Set (and_rules/or_rules, and_ids/or_ids): at least one member (Envoy's validation). */
static int compile_set(struct cctx *c, const char *member, size_t count, void *const *items,
                       compile_fn fn, enum node_kind kind, struct node *n)
{
    if (!count) return ffail(c, member, "at least one is required");
    struct node *kids = ANEW(c->r, struct node, count);
    n->kind = (uint8_t)kind;
    n->kids = kids;
    n->n = (uint32_t)count;
    for (size_t i = 0; i < count; i++) {
        size_t m = ppush(c, "%s[%zu]", member, i);
        int rc = fn(c, items[i], &kids[i]);
        ppop(c, m);
        if (rc) return rc;
    }
    return 0;
}

static int compile_not(struct cctx *c, const void *msg, compile_fn fn, struct node *n)
{
    struct node *kid = ANEW(c->r, struct node, 1);
    n->kind = N_NOT;
    n->kids = kid;
    return fn(c, msg, kid);
}

static int permission_fn(struct cctx *c, const void *msg, struct node *n)
{
    return compile_permission(c, msg, n);
}

static int principal_fn(struct cctx *c, const void *msg, struct node *n)
{
    return compile_principal(c, msg, n);
}

/* The name of the oneof member set (a oneof case is its field number), for the error path; NULL
 * when none is. */
static const char *oneof_field(const ProtobufCMessage *m, unsigned number)
{
    const ProtobufCFieldDescriptor *f =
        number ? protobuf_c_message_descriptor_get_field(m->descriptor, number) : NULL;
    return f ? f->name : NULL;
}

/* Compiles p's rule; the error path already ends with the rule's field name. */
static int compile_permission_rule(struct cctx *c, const Permission *p, struct node *n)
{
    switch (p->rule_case) {
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY:
        n->kind = N_ANY;
        return p->any ? 0 : cfail(c, "must be true");
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES:
        return compile_set(c, "rules", p->and_rules->n_rules, (void *const *)p->and_rules->rules,
                           permission_fn, N_AND, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES:
        return compile_set(c, "rules", p->or_rules->n_rules, (void *const *)p->or_rules->rules,
                           permission_fn, N_OR, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE:
        return compile_not(c, p->not_rule, permission_fn, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER:
        return compile_header(c, p->header, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH:
        return compile_url_path(c, p->url_path, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP:
        return compile_cidr(c, p->destination_ip, N_DST_IP, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT:
        if (p->destination_port > 65535) return cfail(c, "%u is above 65535", p->destination_port);
        n->kind = N_DST_PORT;
        n->port.lo = (int32_t)p->destination_port;
        n->port.hi = n->port.lo + 1;
        return 0;
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT_RANGE:
        /* Int32Range is [start, end); an empty range matches nothing, as in Envoy. */
        n->kind = N_DST_PORT_RANGE;
        n->port.lo = p->destination_port_range->start;
        n->port.hi = p->destination_port_range->end;
        return 0;
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_REQUESTED_SERVER_NAME:
        return compile_strmatch_node(c, p->requested_server_name, N_SNI, n);
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA:
        return cfail(c, "not supported: no dynamic metadata reaches RBAC in Ringside");
    case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_MATCHER:
        return cfail(c, "not supported: permission matcher extensions");
    default: /* uri_template */
        return cfail(c, "not supported: URI template matching");
    }
}

static int compile_permission(struct cctx *c, const Permission *p, struct node *n)
{
    const char *field = oneof_field(&p->base, p->rule_case);
    if (!field)
        return cfail(c, "a rule is required (any, and_rules, or_rules, not_rule, header, url_path, "
                        "destination_ip, destination_port, destination_port_range, "
                        "requested_server_name)");
    if (c->depth == MAX_DEPTH) return cfail(c, "nested deeper than %d", MAX_DEPTH);
    size_t m = ppush(c, "%s", field);
    c->depth++;
    int rc = compile_permission_rule(c, p, n);
    c->depth--;
    ppop(c, m);
    return rc;
}

static int compile_authenticated(struct cctx *c,
                                 const Envoy__Config__Rbac__V3__Principal__Authenticated *a,
                                 struct node *n)
{
    if (!a->principal_name) {
        n->kind = N_AUTHENTICATED;
        n->any_name = true; /* any TLS peer */
        return 0;
    }
    size_t m = ppush(c, "principal_name");
    int rc = compile_strmatch_node(c, a->principal_name, N_AUTHENTICATED, n);
    ppop(c, m);
    return rc;
}

static int compile_principal_id(struct cctx *c, const Principal *p, struct node *n)
{
    switch (p->identifier_case) {
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY:
        n->kind = N_ANY;
        return p->any ? 0 : cfail(c, "must be true");
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS:
        return compile_set(c, "ids", p->and_ids->n_ids, (void *const *)p->and_ids->ids,
                           principal_fn, N_AND, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS:
        return compile_set(c, "ids", p->or_ids->n_ids, (void *const *)p->or_ids->ids, principal_fn,
                           N_OR, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID:
        return compile_not(c, p->not_id, principal_fn, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED:
        return compile_authenticated(c, p->authenticated, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_SOURCE_IP:
        /* Deprecated alias of direct_remote_ip (Envoy reads the direct remote address). */
        return compile_cidr(c, p->source_ip, N_DIRECT_REMOTE_IP, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP:
        return compile_cidr(c, p->direct_remote_ip, N_DIRECT_REMOTE_IP, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_REMOTE_IP:
        return compile_cidr(c, p->remote_ip, N_REMOTE_IP, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER:
        return compile_header(c, p->header, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_URL_PATH:
        return compile_url_path(c, p->url_path, n);
    case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA:
        return cfail(c, "not supported: no dynamic metadata reaches RBAC in Ringside (Istio "
                        "matches request.auth claims with it: JWT is not implemented)");
    default: /* filter_state */
        return cfail(c, "not supported: no filter state reaches RBAC in Ringside");
    }
}

static int compile_principal(struct cctx *c, const Principal *p, struct node *n)
{
    const char *field = oneof_field(&p->base, p->identifier_case);
    if (!field)
        return cfail(c, "an identifier is required (any, and_ids, or_ids, not_id, authenticated, "
                        "source_ip, direct_remote_ip, remote_ip, header, url_path)");
    if (c->depth == MAX_DEPTH) return cfail(c, "nested deeper than %d", MAX_DEPTH);
    size_t m = ppush(c, "%s", field);
    c->depth++;
    int rc = compile_principal_id(c, p, n);
    c->depth--;
    ppop(c, m);
    return rc;
}

/* ---- policies -------------------------------------------------------------------------------- */

static int compile_list(struct cctx *c, const char *field, size_t count, void *const *items,
                        compile_fn fn, const struct node **out, uint32_t *n_out)
{
    if (!count) return ffail(c, field, "at least one is required");
    struct node *nodes = ANEW(c->r, struct node, count);
    for (size_t i = 0; i < count; i++) {
        size_t m = ppush(c, "%s[%zu]", field, i);
        int rc = fn(c, items[i], &nodes[i]);
        ppop(c, m);
        if (rc) return rc;
    }
    *out = nodes;
    *n_out = (uint32_t)count;
    return 0;
}

static int compile_policy(struct cctx *c, const char *name, const Policy *p, struct policy *out)
{
    if (!p) return cfail(c, "a policy is required");
    if (p->condition) return ffail(c, "condition", "not supported: CEL expressions");
    if (p->checked_condition)
        return ffail(c, "checked_condition", "not supported: CEL expressions");
    out->name = arena_str(c->r, name, strlen(name), false);
    if (compile_list(c, "permissions", p->n_permissions, (void *const *)p->permissions,
                     permission_fn, &out->perms, &out->n_perms))
        return -1;
    return compile_list(c, "principals", p->n_principals, (void *const *)p->principals,
                        principal_fn, &out->princs, &out->n_princs);
}

/* Map entries in name order, the later of a repeated name winning (protobuf map semantics). */
struct entry_ref {
    const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e;
    size_t index;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry_ref *x = a, *y = b;
    int c = strcmp(S(x->e->key), S(y->e->key));
    if (c) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int compile_policies(struct cctx *c, const RBAC *m)
{
    size_t n = m->n_policies;
    if (!n) return 0;
    struct entry_ref *refs = malloc(n * sizeof *refs);
    if (!refs) abort();
    for (size_t i = 0; i < n; i++) refs[i] = (struct entry_ref){m->policies[i], i};
    qsort(refs, n, sizeof *refs, cmp_entry);
    struct policy *ps = ANEW(c->r, struct policy, n);
    uint32_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (i + 1 < n && !strcmp(S(refs[i].e->key), S(refs[i + 1].e->key))) continue;
        size_t mk = ppush(c, "policies[\"%s\"]", S(refs[i].e->key));
        rc = compile_policy(c, S(refs[i].e->key), refs[i].e->value, &ps[k++]);
        ppop(c, mk);
    }
    free(refs);
    c->r->policies = ps;
    c->r->n_policies = k;
    return rc;
}

static int compile_rbac(struct cctx *c, const RBAC *m)
{
    switch (m->action) {
    case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW:
        c->r->action = RS_RBAC_ACTION_ALLOW;
        break;
    case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY:
        c->r->action = RS_RBAC_ACTION_DENY;
        break;
    case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG:
        c->r->action = RS_RBAC_ACTION_LOG;
        break;
    default:
        return ffail(c, "action", "unknown action");
    }
    if (m->audit_logging_options)
        return ffail(c, "audit_logging_options", "not supported: RBAC audit loggers");
    return compile_policies(c, m);
}

static struct rs_rbac *compile_at(const RBAC *m, const char *prefix, char *err, size_t errlen)
{
    struct rs_rbac *r = calloc(1, sizeof *r);
    if (!r) abort();
    struct cctx c = {.r = r, .err = err, .errlen = errlen};
    if (prefix) ppush(&c, "%s", prefix);
    if (compile_rbac(&c, m)) {
        rs_rbac_free(r);
        return NULL;
    }
    return r;
}

struct rs_rbac *rs_rbac_compile(const struct Envoy__Config__Rbac__V3__RBAC *m, char *err,
                                size_t errlen)
{
    return compile_at(m, NULL, err, errlen);
}

void rs_rbac_free(struct rs_rbac *r)
{
    if (!r) return;
    for (struct re_node *n = r->regexes; n; n = n->next) pcre2_code_free(n->re);
    for (struct chunk *c = r->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(r);
}

enum rs_rbac_action rs_rbac_action(const struct rs_rbac *r)
{
    return r->action;
}

size_t rs_rbac_policy_count(const struct rs_rbac *r)
{
    return r->n_policies;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

void rs_rbac_thread_cleanup(void)
{
    rs_strmatch_thread_cleanup();
}

struct ectx {
    const struct rs_rbac_input *in;
    bool failed; /* a regex could not decide: the whole evaluation fails closed */
};

static bool str_match(struct ectx *e, const struct rs_strmatch *m, const char *v, size_t n)
{
    return rs_strmatch(m, v, n, &e->failed);
}

static bool str_match_z(struct ectx *e, const struct rs_strmatch *m, const char *v)
{
    return str_match(e, m, v ? v : "", v ? strlen(v) : 0);
}

static bool header_value(const struct hdrmatch *h, const struct rs_rbac_input *in, const char **v,
                         size_t *n)
{
    if (!in->http) return false;
    switch (h->pseudo) {
    case PS_METHOD:
        *v = in->method, *n = in->method_len;
        return in->method != NULL;
    case PS_PATH:
        *v = in->path, *n = in->path_len;
        return in->path != NULL;
    case PS_AUTHORITY:
        *v = in->authority, *n = in->authority_len;
        return in->authority != NULL;
    default:
        return in->header && in->header(in->ctx, h->name, h->name_len, v, n);
    }
}

/* Envoy's HeaderUtility::matchHeaders: presence compared first for present_match; otherwise a
 * missing header matches nothing, inverted or not, unless treat_missing_header_as_empty. */
static bool header_match(struct ectx *e, const struct hdrmatch *h)
{
    const char *v = NULL;
    size_t n = 0;
    bool found = header_value(h, e->in, &v, &n);
    if (h->kind == HM_PRESENT) return (found == h->present) != h->invert;
    if (!found) {
        if (!h->missing_as_empty) return false;
        v = "", n = 0;
    }
    bool m;
    if (h->kind == HM_RANGE) {
        int64_t x;
        m = rs_parse_int64(v, n, &x) && x >= h->start && x < h->end;
    } else {
        m = str_match(e, &h->sm, v, n);
    }
    return m != h->invert;
}

/* Envoy's PathMatcher: the :path without query and fragment; no :path, no match. */
static bool url_path_match(struct ectx *e, const struct rs_strmatch *m)
{
    const struct rs_rbac_input *in = e->in;
    if (!in->http || !in->path) return false;
    size_t n = 0;
    while (n < in->path_len && in->path[n] != '?' && in->path[n] != '#') n++;
    return str_match(e, m, in->path, n);
}

/* The address bytes of sa; an IPv4-mapped IPv6 address counts as IPv4 (a dual-stack listener
 * sees IPv4 peers that way). */
static const uint8_t *ip_bytes(const struct sockaddr *sa, int *family)
{
    if (!sa) return NULL;
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        return (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    }
    if (sa->sa_family != AF_INET6) return NULL;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        *family = AF_INET;
        return a6->s6_addr + 12;
    }
    *family = AF_INET6;
    return a6->s6_addr;
}

static bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    int family = 0;
    const uint8_t *a = ip_bytes(sa, &family);
    if (!a || family != c->family) return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full)) return false;
    return !rest || (a[full] & (uint8_t)(0xff00u >> rest)) == c->addr[full];
}

static int port_of(const struct sockaddr *sa)
{
    if (!sa) return -1;
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return -1;
}

static bool node_match(struct ectx *e, const struct node *n)
{
    const struct rs_rbac_input *in = e->in;
    switch (n->kind) {
    case N_ANY:
        return true;
    case N_AND:
        for (uint32_t i = 0; i < n->n; i++)
            if (!node_match(e, &n->kids[i])) return false;
        return true;
    case N_OR:
        for (uint32_t i = 0; i < n->n; i++)
            if (node_match(e, &n->kids[i])) return true;
        return false;
    case N_NOT:
        return !node_match(e, n->kids);
    case N_HEADER:
        return header_match(e, n->h);
    case N_URL_PATH:
        return url_path_match(e, n->sm);
    case N_DST_IP:
        return cidr_match(n->ip, in->destination);
    case N_DST_PORT:
    case N_DST_PORT_RANGE: {
        int port = port_of(in->destination);
        return port >= 0 && port >= n->port.lo && port < n->port.hi;
    }
    case N_SNI: /* no SNI is the empty string (Envoy's requestedServerName()) */
        return str_match_z(e, n->sm, in->server_name);
    case N_AUTHENTICATED:
        if (!in->peer_principal) return false;
        return n->any_name || str_match_z(e, n->sm, in->peer_principal);
    case N_DIRECT_REMOTE_IP:
        return cidr_match(n->ip, in->source);
    case N_REMOTE_IP:
        return cidr_match(n->ip, in->remote ? in->remote : in->source);
    default:
        return false;
    }
}

static bool any_match(struct ectx *e, const struct node *nodes, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (node_match(e, &nodes[i])) return true;
    return false;
}

static bool policy_match(struct ectx *e, const struct policy *p)
{
    return any_match(e, p->perms, p->n_perms) && any_match(e, p->princs, p->n_princs);
}

enum rs_rbac_result rs_rbac_eval(const struct rs_rbac *r, const struct rs_rbac_input *in,
                                 const char **policy_name)
{
    struct ectx e = {.in = in};
    const char *matched = NULL;
    for (uint32_t i = 0; i < r->n_policies && !matched; i++)
        if (policy_match(&e, &r->policies[i])) matched = r->policies[i].name;
    if (e.failed) {
        if (policy_name) *policy_name = NULL;
        return RS_RBAC_DENIED;
    }
    if (policy_name) *policy_name = matched;
    switch (r->action) {
    case RS_RBAC_ACTION_ALLOW:
        return matched ? RS_RBAC_ALLOWED : RS_RBAC_DENIED;
    case RS_RBAC_ACTION_DENY:
        return matched ? RS_RBAC_DENIED : RS_RBAC_ALLOWED;
    default:
        return matched ? RS_RBAC_LOGGED : RS_RBAC_NOT_LOGGED;
    }
}

/* ---- the filters ----------------------------------------------------------------------------- */

static char *dup_str(const char *s)
{
    char *d = strdup(S(s));
    if (!d) abort();
    return d;
}

static int filter_engines(struct rs_rbac_filter *f, const RBAC *rules, const RBAC *shadow,
                          char *err, size_t errlen)
{
    if (rules && !(f->rules = compile_at(rules, "rules", err, errlen))) return -1;
    if (shadow && !(f->shadow = compile_at(shadow, "shadow_rules", err, errlen))) return -1;
    return 0;
}

static struct rs_rbac_filter *filter_fail(struct rs_rbac_filter *f, const char *field, char *err,
                                          size_t errlen)
{
    if (field && errlen)
        snprintf(err, errlen, "%s: not supported (the unified matcher form)", field);
    rs_rbac_filter_free(f);
    return NULL;
}

struct rs_rbac_filter *
rs_rbac_filter_http(const struct Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *m, char *err,
                    size_t errlen)
{
    struct rs_rbac_filter *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->stat_prefix = dup_str("");
    f->rules_stat_prefix = dup_str(m->rules_stat_prefix);
    f->shadow_rules_stat_prefix = dup_str(m->shadow_rules_stat_prefix);
    f->track_per_rule_stats = m->track_per_rule_stats;
    if (m->matcher) return filter_fail(f, "matcher", err, errlen);
    if (m->shadow_matcher) return filter_fail(f, "shadow_matcher", err, errlen);
    if (filter_engines(f, m->rules, m->shadow_rules, err, errlen))
        return filter_fail(f, NULL, err, errlen);
    return f;
}

struct rs_rbac_filter *
rs_rbac_filter_network(const struct Envoy__Extensions__Filters__Network__Rbac__V3__RBAC *m,
                       char *err, size_t errlen)
{
    struct rs_rbac_filter *f = calloc(1, sizeof *f);
    if (!f) abort();
    f->stat_prefix = dup_str(m->stat_prefix);
    f->rules_stat_prefix = dup_str("");
    f->shadow_rules_stat_prefix = dup_str(m->shadow_rules_stat_prefix);
    f->continuous =
        m->enforcement_type ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__RBAC__V3__RBAC__ENFORCEMENT_TYPE__CONTINUOUS;
    /* Envoy's validation: stat_prefix has min_len 1. */
    if (!*f->stat_prefix) {
        if (errlen) snprintf(err, errlen, "stat_prefix: required");
        return filter_fail(f, NULL, err, errlen);
    }
    if (m->matcher) return filter_fail(f, "matcher", err, errlen);
    if (m->shadow_matcher) return filter_fail(f, "shadow_matcher", err, errlen);
    if (filter_engines(f, m->rules, m->shadow_rules, err, errlen))
        return filter_fail(f, NULL, err, errlen);
    return f;
}

void rs_rbac_filter_free(struct rs_rbac_filter *f)
{
    if (!f) return;
    rs_rbac_free(f->rules);
    rs_rbac_free(f->shadow);
    free(f->stat_prefix);
    free(f->rules_stat_prefix);
    free(f->shadow_rules_stat_prefix);
    free(f);
}

void rs_rbac_filter_eval(const struct rs_rbac_filter *f, const struct rs_rbac_input *in,
                         struct rs_rbac_decision *d)
{
    *d = (struct rs_rbac_decision){.result = RS_RBAC_ALLOWED};
    if (f->rules) d->result = rs_rbac_eval(f->rules, in, &d->policy);
    if (f->shadow) {
        d->shadowed = true;
        d->shadow_result = rs_rbac_eval(f->shadow, in, &d->shadow_policy);
    }
}

/* ---- stages ---------------------------------------------------------------------------------- */

void rs_rbac_stage_init(struct rs_rbac_stage *s, struct rs_rbac_filter *f, const char *name,
                        const char *scope)
{
    s->f = f;
    s->name = dup_str(name);
    char base[400];
    size_t n = strlen(S(scope));
    snprintf(base, sizeof base, "%s%srbac.", S(scope), n && scope[n - 1] != '.' ? "." : "");
    const char *rp = f->rules_stat_prefix, *sp = f->shadow_rules_stat_prefix;
    char full[600];
#define REG(field, prefix, leaf)                                                                   \
    (snprintf(full, sizeof full, "%s%s%s", base, prefix, leaf),                                    \
     s->field = rs_stats_register(full, RS_STAT_COUNTER))
    REG(allowed, rp, "allowed");
    REG(denied, rp, "denied");
    s->logged = s->not_logged = UINT32_MAX;
    if (f->rules && f->rules->action == RS_RBAC_ACTION_LOG) { /* only a LOG engine has them */
        REG(logged, rp, "logged");
        REG(not_logged, rp, "not_logged");
    }
    REG(shadow_allowed, sp, "shadow_allowed");
    REG(shadow_denied, sp, "shadow_denied");
#undef REG
}

void rs_rbac_stage_fini(struct rs_rbac_stage *s)
{
    rs_rbac_filter_free(s->f);
    free(s->name);
    s->f = NULL;
    s->name = NULL;
}

static void count_result(struct rs_stats_shard *sh, const struct rs_rbac_stage *s,
                         enum rs_rbac_result r, bool shadow)
{
    rs_stat_id id;
    switch (r) {
    case RS_RBAC_ALLOWED:
        id = shadow ? s->shadow_allowed : s->allowed;
        break;
    case RS_RBAC_DENIED:
        id = shadow ? s->shadow_denied : s->denied;
        break;
    case RS_RBAC_LOGGED: /* Envoy counts a shadow LOG engine as allowed */
        id = shadow ? s->shadow_allowed : s->logged;
        break;
    default:
        id = shadow ? s->shadow_allowed : s->not_logged;
    }
    if (id != UINT32_MAX) rs_stat_inc(sh, id);
}

bool rs_rbac_stage_denies(const struct rs_rbac_stage *s, const struct rs_rbac_filter *f,
                          struct rs_stats_shard *sh, const struct rs_rbac_input *in,
                          const char **policy)
{
    *policy = NULL;
    if (!f) return false;
    struct rs_rbac_decision d;
    rs_rbac_filter_eval(f, in, &d);
    if (d.shadowed) count_result(sh, s, d.shadow_result, true);
    /* without rules nothing is enforced and nothing counted (Envoy: no engine) */
    if (!f->rules) return false;
    count_result(sh, s, d.result, false);
    *policy = d.policy;
    return d.result == RS_RBAC_DENIED;
}

const char *rs_rbac_denied_details(const char *policy, char *out, size_t cap)
{
    int n = snprintf(out, cap, "rbac_access_denied_matched_policy[%s]",
                     policy && *policy ? policy : "none");
    /* the policy name sits between the 34-byte prefix and the closing bracket */
    for (int i = 34; n > 0 && i < n - 1 && (size_t)i < cap; i++)
        if (out[i] == ' ' || out[i] == '\t' || out[i] == '\n' || out[i] == '\r' || out[i] == '\f' ||
            out[i] == '\v')
            out[i] = '_';
    return out;
}
