/* The router's matching half: virtual host lookup, route matching and the actions a caller
 * applies (cluster pick, path and host rewrites, header edit levels, header value formatting),
 * on the tables router.c compiles. No allocation per request. */
#include "sidecar/router_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rs_router_thread_cleanup(void)
{
    rs_strmatch_thread_cleanup();
}

static bool re_full(const pcre2_code *re, const char *s, size_t n)
{
    return rs_regex_match(re, s, n) > 0;
}

static bool eq(const char *a, const char *lower, size_t n, bool icase)
{
    if (!icase) return memcmp(a, lower, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (lc((unsigned char)a[i]) != (unsigned char)lower[i]) return false;
    return true;
}

static bool str_match(const struct rs_strmatch *m, const char *v, size_t n)
{
    return rs_strmatch(m, v, n, NULL);
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
        m = rs_parse_int64(v, n, &x) && x >= h->start && x < h->end;
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
                              rs_regex_match_data(), NULL, (PCRE2_SPTR)r->regex_subst,
                              r->regex_subst_len, (PCRE2_UCHAR *)out, &olen);
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
