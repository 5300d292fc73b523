/* Compiling and evaluating filter chain matches (see chain_match.h). */
#include "sidecar/chain_match.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "google/protobuf/wrappers.pb-c.h"
#include "sidecar/config_impl.h"
#include "xds/any.h"
#include "xds/type/matcher/v3/ip.pb-c.h"
#include "xds/type/matcher/v3/matcher.pb-c.h"

typedef Xds__Type__Matcher__V3__Matcher Matcher;
typedef Xds__Type__Matcher__V3__Matcher__OnMatch OnMatch;

/* ---- addresses ----------------------------------------------------------------------------- */

static int parse_cidr(const char *prefix, const Google__Protobuf__UInt32Value *len,
                      struct rs_cidr *out)
{
    memset(out, 0, sizeof *out);
    socklen_t sl;
    if (!prefix || rs_cfg_ip_port(prefix, 0, &out->addr, &sl) != 0) return -1;
    uint32_t max = out->addr.ss_family == AF_INET ? 32 : 128;
    out->len = len ? len->value : 0; /* Envoy: an unset prefix_len is 0 (matches everything) */
    return out->len > max ? -1 : 0;
}

static const uint8_t *ip_bytes(const struct sockaddr *sa, uint32_t *bits)
{
    if (sa->sa_family == AF_INET) {
        *bits = 32;
        return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    if (sa->sa_family == AF_INET6) {
        *bits = 128;
        return (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    }
    *bits = 0;
    return NULL;
}

static uint16_t sa_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

static bool cidr_contains(const struct rs_cidr *c, const struct sockaddr *sa)
{
    uint32_t bits, cbits;
    const uint8_t *a = ip_bytes(sa, &bits);
    const uint8_t *p = ip_bytes((const struct sockaddr *)&c->addr, &cbits);
    if (!a || !p || bits != cbits) return false;
    uint32_t full = c->len / 8, rest = c->len % 8;
    if (memcmp(a, p, full) != 0) return false;
    if (!rest) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (p[full] & mask);
}

/* The longest matching prefix length among ranges, or -1 when none contains sa (and -2 when
 * there are no ranges: a wildcard). */
static int best_prefix(const struct rs_cidr *r, uint32_t n, const struct sockaddr *sa)
{
    if (!n) return -2;
    int best = -1;
    for (uint32_t i = 0; i < n; i++)
        if (cidr_contains(&r[i], sa) && (int)r[i].len > best) best = (int)r[i].len;
    return best;
}

static bool is_local(const struct sockaddr *remote, const struct sockaddr *local)
{
    uint32_t bits, lbits;
    const uint8_t *a = ip_bytes(remote, &bits);
    const uint8_t *b = ip_bytes(local, &lbits);
    if (!a) return false;
    if (bits == 32 && a[0] == 127) return true;
    static const uint8_t v6_loopback[16] = {[15] = 1};
    if (bits == 128 && memcmp(a, v6_loopback, 16) == 0) return true;
    return b && bits == lbits && memcmp(a, b, bits / 8) == 0;
}

/* ---- FilterChainMatch ---------------------------------------------------------------------- */

static int cidrs(struct cctx *cx, const char *field, Envoy__Config__Core__V3__CidrRange **in,
                 size_t n, struct rs_cidr **out, uint32_t *nout)
{
    *out = xcalloc(n, sizeof **out);
    *nout = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        if (parse_cidr(in[i]->address_prefix, in[i]->prefix_len, &(*out)[i]))
            return fail(cx, field, "[%zu]: \"%s\" is not an IP prefix", i,
                        in[i]->address_prefix ? in[i]->address_prefix : "");
    return 0;
}

int rs_cfg_chain_match(struct cctx *cx, struct rs_chain_match *m,
                       const Envoy__Config__Listener__V3__FilterChainMatch *pm)
{
    if (cidrs(cx, "prefix_ranges", pm->prefix_ranges, pm->n_prefix_ranges, &m->dst, &m->ndst) ||
        cidrs(cx, "source_prefix_ranges", pm->source_prefix_ranges, pm->n_source_prefix_ranges,
              &m->src, &m->nsrc) ||
        cidrs(cx, "direct_source_prefix_ranges", pm->direct_source_prefix_ranges,
              pm->n_direct_source_prefix_ranges, &m->direct_src, &m->ndirect_src))
        return -1;
    if (pm->address_suffix && pm->address_suffix[0])
        return fail(cx, "address_suffix", "is not supported");
    m->nsrc_ports = (uint32_t)pm->n_source_ports;
    m->src_ports = xmemdup(pm->source_ports, pm->n_source_ports * sizeof *pm->source_ports);
    m->source_type = (uint8_t)pm->source_type;
    m->nserver_names = (uint32_t)pm->n_server_names;
    m->server_names = xcalloc(pm->n_server_names + 1, sizeof *m->server_names);
    for (size_t i = 0; i < pm->n_server_names; i++) {
        const char *n = pm->server_names[i];
        if (!n[0] || strchr(n + 1, '*') || (n[0] == '*' && n[1] != '.'))
            return fail(cx, "server_names", "[%zu]: \"%s\" is neither a name nor \"*.suffix\"", i,
                        n);
        m->server_names[i] = xstrdup(n);
    }
    m->napp_protocols = (uint32_t)pm->n_application_protocols;
    m->app_protocols = xcalloc(pm->n_application_protocols + 1, sizeof *m->app_protocols);
    for (size_t i = 0; i < pm->n_application_protocols; i++)
        m->app_protocols[i] = xstrdup(pm->application_protocols[i]);
    const char *tp = pm->transport_protocol ? pm->transport_protocol : "";
    if (strcmp(tp, "tls") == 0)
        m->tls = true;
    else if (strcmp(tp, "raw_buffer") == 0)
        m->raw_buffer = true;
    else if (tp[0])
        return fail(cx, "transport_protocol", "\"%s\" is not supported (raw_buffer, tls)", tp);
    return 0;
}

void rs_cfg_chain_match_free(struct rs_chain_match *m)
{
    free(m->dst);
    free(m->src);
    free(m->direct_src);
    free(m->src_ports);
    for (uint32_t i = 0; i < m->nserver_names; i++) free(m->server_names[i]);
    free(m->server_names);
    for (uint32_t i = 0; i < m->napp_protocols; i++) free(m->app_protocols[i]);
    free(m->app_protocols);
}

/* How specifically a chain's server_names match the connection's SNI: an exact name beats any
 * wildcard, a longer "*.suffix" beats a shorter one; -1 none matches, 0 the chain has none. */
static int server_name_score(const struct rs_chain_match *m, const char *sni)
{
    if (!m->nserver_names) return 0;
    if (!sni) return -1;
    size_t sl = strlen(sni);
    int best = -1;
    for (uint32_t i = 0; i < m->nserver_names; i++) {
        const char *n = m->server_names[i];
        size_t nl = strlen(n);
        if (n[0] != '*') {
            if (strcasecmp(n, sni) == 0) return 1 << 20;
        } else if (sl > nl - 1 && strcasecmp(sni + sl - (nl - 1), n + 1) == 0 && (int)nl > best) {
            best = (int)nl; /* "*.b.c" matches "a.b.c" and "x.a.b.c", as Envoy */
        }
    }
    return best;
}

static int app_protocol_score(const struct rs_chain_match *m, const struct rs_conn_meta *meta)
{
    if (!m->napp_protocols) return 0;
    for (uint32_t i = 0; i < m->napp_protocols; i++)
        for (uint32_t k = 0; k < meta->napp_protocols; k++)
            if (strcmp(m->app_protocols[i], meta->app_protocols[k]) == 0) return 1;
    return -1;
}

/* Envoy's order of criteria; at each, the most specific matching value wins and chains that do
 * not match it drop out; a chain without the criterion is a wildcard, used only when no chain
 * has a specific match. Scores: -1 does not match, 0 wildcard, higher = more specific. */
enum crit {
    CR_DST_PORT,
    CR_DST_IP,
    CR_SERVER_NAME,
    CR_TRANSPORT,
    CR_APP_PROTO,
    CR_DIRECT_SRC_IP,
    CR_SOURCE_TYPE,
    CR_SRC_IP,
    CR_SRC_PORT,
    CR_COUNT
};

static int score(const struct rs_filter_chain *fc, enum crit c, const struct sockaddr *local,
                 const struct sockaddr *remote, const struct rs_conn_meta *meta)
{
    const struct rs_chain_match *m = &fc->m;
    int p;
    switch (c) {
    case CR_DST_PORT:
        return fc->dst_port == 0 ? 0 : fc->dst_port == sa_port(local) ? 1 : -1;
    case CR_DST_IP:
        p = best_prefix(m->dst, m->ndst, local);
        return p == -2 ? 0 : p < 0 ? -1 : p + 1;
    case CR_SERVER_NAME:
        return server_name_score(m, meta->server_name);
    case CR_TRANSPORT:
        if (!m->tls && !m->raw_buffer) return 0;
        return m->tls == meta->tls ? 1 : -1;
    case CR_APP_PROTO:
        return app_protocol_score(m, meta);
    case CR_DIRECT_SRC_IP:
        p = best_prefix(m->direct_src, m->ndirect_src, remote);
        return p == -2 ? 0 : p < 0 ? -1 : p + 1;
    case CR_SOURCE_TYPE:
        if (m->source_type == 0) return 0;
        return (m->source_type == 1) == is_local(remote, local) ? 1 : -1;
    case CR_SRC_IP:
        p = best_prefix(m->src, m->nsrc, remote);
        return p == -2 ? 0 : p < 0 ? -1 : p + 1;
    case CR_SRC_PORT:
        if (!m->nsrc_ports) return 0;
        for (uint32_t i = 0; i < m->nsrc_ports; i++)
            if (m->src_ports[i] == sa_port(remote)) return 1;
        return -1;
    default:
        return 0;
    }
}

#define MAX_CANDIDATES 256

static struct rs_filter_chain *pick_legacy(const struct rs_listener *l,
                                           const struct sockaddr *local,
                                           const struct sockaddr *remote,
                                           const struct rs_conn_meta *meta)
{
    /* candidates as a bitmap over the first MAX_CANDIDATES chains (Istio's listeners have
     * far fewer; beyond that the first match in order wins) */
    uint64_t alive[MAX_CANDIDATES / 64];
    uint32_t n = l->nchains < MAX_CANDIDATES ? l->nchains : MAX_CANDIDATES;
    memset(alive, 0, sizeof alive);
    for (uint32_t i = 0; i < n; i++) alive[i / 64] |= 1ull << (i % 64);
    for (int c = 0; c < CR_COUNT; c++) {
        int best = -1;
        for (uint32_t i = 0; i < n; i++) {
            if (!(alive[i / 64] >> (i % 64) & 1)) continue;
            int s = score(&l->chains[i], (enum crit)c, local, remote, meta);
            if (s > best) best = s;
        }
        if (best < 0) return l->default_chain;
        for (uint32_t i = 0; i < n; i++)
            if ((alive[i / 64] >> (i % 64) & 1) &&
                score(&l->chains[i], (enum crit)c, local, remote, meta) != best)
                alive[i / 64] &= ~(1ull << (i % 64));
    }
    for (uint32_t i = 0; i < n; i++)
        if (alive[i / 64] >> (i % 64) & 1) return &l->chains[i];
    return l->default_chain;
}

/* ---- filter_chain_matcher ------------------------------------------------------------------- */

enum fcm_input {
    IN_DST_PORT,
    IN_DST_IP,
    IN_SRC_IP,
    IN_DIRECT_SRC_IP,
    IN_SRC_PORT,
    IN_SOURCE_TYPE,
    IN_SERVER_NAME,
    IN_TRANSPORT,
    IN_APP_PROTO,
};

static const struct {
    const char *type;
    enum fcm_input in;
} inputs[] = {
    {"envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput", IN_DST_PORT},
    {"envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput", IN_DST_IP},
    {"envoy.extensions.matching.common_inputs.network.v3.SourceIPInput", IN_SRC_IP},
    {"envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput", IN_DIRECT_SRC_IP},
    {"envoy.extensions.matching.common_inputs.network.v3.SourcePortInput", IN_SRC_PORT},
    {"envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput", IN_SOURCE_TYPE},
    {"envoy.extensions.matching.common_inputs.network.v3.ServerNameInput", IN_SERVER_NAME},
    {"envoy.extensions.matching.common_inputs.network.v3.TransportProtocolInput", IN_TRANSPORT},
    {"envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput", IN_APP_PROTO},
};

struct fcm_on {
    int chain;          /* index into the listener's chains; -1: none */
    struct rs_fcm *sub; /* nested matcher, or NULL */
    bool set;
};

enum fcm_kind { FCM_EXACT, FCM_PREFIX, FCM_IP };

struct rs_fcm {
    enum fcm_kind kind;
    enum fcm_input input;
    uint32_t n;
    char **keys;           /* FCM_EXACT / FCM_PREFIX */
    struct rs_cidr *cidrs; /* FCM_IP: one per range; `owner` maps a range to its entry */
    uint32_t *owner, ncidrs;
    struct fcm_on *on;
    struct fcm_on no_match;
};

void rs_fcm_free(struct rs_fcm *m)
{
    if (!m) return;
    for (uint32_t i = 0; i < m->n; i++) {
        if (m->keys) free(m->keys[i]);
        rs_fcm_free(m->on[i].sub);
    }
    rs_fcm_free(m->no_match.sub);
    free(m->keys);
    free(m->cidrs);
    free(m->owner);
    free(m->on);
    free(m);
}

static const char *strip_url(const char *url)
{
    const char *s = url ? strrchr(url, '/') : NULL;
    return s ? s + 1 : url ? url : "";
}

static int compile_matcher(struct cctx *cx, const Matcher *pm, const struct rs_listener *l,
                           const Listener *pl, struct rs_fcm **out, int depth);

/* An action names a filter chain: a google.protobuf.StringValue holding the chain's name. */
static int compile_on(struct cctx *cx, const OnMatch *om, const struct rs_listener *l,
                      const Listener *pl, struct fcm_on *out, int depth)
{
    out->chain = -1;
    if (!om) return 0;
    out->set = true;
    if (om->on_match_case == XDS__TYPE__MATCHER__V3__MATCHER__ON_MATCH__ON_MATCH_MATCHER) {
        size_t old = path_push(cx, "matcher");
        if (compile_matcher(cx, om->matcher, l, pl, &out->sub, depth + 1)) return -1;
        path_pop(cx, old);
        return 0;
    }
    if (om->on_match_case != XDS__TYPE__MATCHER__V3__MATCHER__ON_MATCH__ON_MATCH_ACTION ||
        !om->action || !om->action->typed_config)
        return fail(cx, "action", "is required");
    char err[256];
    ProtobufCMessage *m = xds_any_unpack(
        om->action->typed_config, &google__protobuf__string_value__descriptor, err, sizeof err);
    if (!m) return fail(cx, "action.typed_config", "%s (a filter chain name)", err);
    const char *name = ((Google__Protobuf__StringValue *)m)->value;
    for (size_t i = 0; i < pl->n_filter_chains; i++)
        if (pl->filter_chains[i]->name && strcmp(pl->filter_chains[i]->name, name) == 0)
            out->chain = (int)i;
    int ret = 0;
    if (out->chain < 0) ret = fail(cx, "action", "no filter chain named \"%s\"", name ? name : "");
    protobuf_c_message_free_unpacked(m, NULL);
    (void)l;
    return ret;
}

static int compile_ip(struct cctx *cx, struct rs_fcm *f,
                      const Xds__Core__V3__TypedExtensionConfig *cm, const struct rs_listener *l,
                      const Listener *pl, int depth)
{
    char err[256];
    ProtobufCMessage *m =
        cm && cm->typed_config
            ? xds_any_unpack(cm->typed_config, &xds__type__matcher__v3__ipmatcher__descriptor, err,
                             sizeof err)
            : NULL;
    if (!m) return fail(cx, "custom_match", "%s", cm ? err : "is required");
    const Xds__Type__Matcher__V3__IPMatcher *ip = (const void *)m;
    int ret = 0;
    f->kind = FCM_IP;
    f->n = (uint32_t)ip->n_range_matchers;
    f->on = xcalloc(f->n, sizeof *f->on);
    for (size_t i = 0; i < ip->n_range_matchers; i++) f->ncidrs += ip->range_matchers[i]->n_ranges;
    f->cidrs = xcalloc(f->ncidrs, sizeof *f->cidrs);
    f->owner = xcalloc(f->ncidrs, sizeof *f->owner);
    uint32_t k = 0;
    for (size_t i = 0; i < ip->n_range_matchers && !ret; i++) {
        const Xds__Type__Matcher__V3__IPMatcher__IPRangeMatcher *rm = ip->range_matchers[i];
        size_t old = path_push(cx, "custom_match.range_matchers[%zu]", i);
        for (size_t j = 0; j < rm->n_ranges && !ret; j++, k++) {
            f->owner[k] = (uint32_t)i;
            if (parse_cidr(rm->ranges[j]->address_prefix, rm->ranges[j]->prefix_len, &f->cidrs[k]))
                ret = fail(cx, "ranges", "[%zu] is not an IP prefix", j);
        }
        if (!ret) ret = compile_on(cx, rm->on_match, l, pl, &f->on[i], depth);
        if (!ret) path_pop(cx, old);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ret;
}

static int compile_matcher(struct cctx *cx, const Matcher *pm, const struct rs_listener *l,
                           const Listener *pl, struct rs_fcm **out, int depth)
{
    if (depth > 16) return fail(cx, "", "matchers nested too deeply");
    if (pm->matcher_type_case != XDS__TYPE__MATCHER__V3__MATCHER__MATCHER_TYPE_MATCHER_TREE)
        return fail(cx, "matcher_list", "only matcher_tree is supported");
    struct rs_fcm *f = *out = xcalloc(1, sizeof *f);
    const Xds__Type__Matcher__V3__Matcher__MatcherTree *t = pm->matcher_tree;
    size_t old = path_push(cx, "matcher_tree");
    const char *type =
        t->input && t->input->typed_config ? strip_url(t->input->typed_config->type_url) : "";
    size_t i;
    for (i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        if (strcmp(inputs[i].type, type) == 0) break;
    if (i == sizeof inputs / sizeof inputs[0])
        return fail(cx, "input", "unsupported input \"%s\"", type);
    f->input = inputs[i].in;
    if (t->tree_type_case ==
        XDS__TYPE__MATCHER__V3__MATCHER__MATCHER_TREE__TREE_TYPE_CUSTOM_MATCH) {
        if (f->input != IN_DST_IP && f->input != IN_SRC_IP && f->input != IN_DIRECT_SRC_IP)
            return fail(cx, "custom_match", "an IPMatcher needs an IP input");
        if (compile_ip(cx, f, t->custom_match, l, pl, depth)) return -1;
    } else {
        const Xds__Type__Matcher__V3__Matcher__MatcherTree__MatchMap *mm;
        if (t->tree_type_case ==
            XDS__TYPE__MATCHER__V3__MATCHER__MATCHER_TREE__TREE_TYPE_EXACT_MATCH_MAP) {
            f->kind = FCM_EXACT;
            mm = t->exact_match_map;
        } else if (t->tree_type_case ==
                   XDS__TYPE__MATCHER__V3__MATCHER__MATCHER_TREE__TREE_TYPE_PREFIX_MATCH_MAP) {
            f->kind = FCM_PREFIX;
            mm = t->prefix_match_map;
        } else {
            return fail(cx, "", "exact_match_map, prefix_match_map or custom_match is required");
        }
        f->n = (uint32_t)mm->n_map;
        f->keys = xcalloc(f->n, sizeof *f->keys);
        f->on = xcalloc(f->n, sizeof *f->on);
        for (uint32_t k = 0; k < f->n; k++) {
            f->keys[k] = xstrdup(mm->map[k]->key);
            size_t o2 = path_push(cx, "map[\"%s\"]", f->keys[k]);
            if (compile_on(cx, mm->map[k]->value, l, pl, &f->on[k], depth)) return -1;
            path_pop(cx, o2);
        }
    }
    path_pop(cx, old);
    if (pm->on_no_match) {
        old = path_push(cx, "on_no_match");
        if (compile_on(cx, pm->on_no_match, l, pl, &f->no_match, depth)) return -1;
        path_pop(cx, old);
    }
    return 0;
}

int rs_cfg_fcm(struct cctx *cx, struct rs_listener *l, const Listener *pl)
{
    size_t old = path_push(cx, "filter_chain_matcher");
    if (compile_matcher(cx, pl->filter_chain_matcher, l, pl, &l->matcher, 0)) return -1;
    path_pop(cx, old);
    return 0;
}

/* The input's value as Envoy renders it; false when the input has no data (no server name, no
 * application protocol). */
static bool input_value(enum fcm_input in, const struct sockaddr *local,
                        const struct sockaddr *remote, const struct rs_conn_meta *meta, char *buf,
                        size_t len)
{
    uint32_t bits;
    const uint8_t *a;
    switch (in) {
    case IN_DST_PORT:
        snprintf(buf, len, "%u", sa_port(local));
        return true;
    case IN_SRC_PORT:
        snprintf(buf, len, "%u", sa_port(remote));
        return true;
    case IN_DST_IP:
    case IN_SRC_IP:
    case IN_DIRECT_SRC_IP:
        a = ip_bytes(in == IN_DST_IP ? local : remote, &bits);
        return a && inet_ntop(bits == 32 ? AF_INET : AF_INET6, a, buf, (socklen_t)len);
    case IN_SOURCE_TYPE:
        snprintf(buf, len, "%s", is_local(remote, local) ? "local" : "");
        return buf[0] != '\0';
    case IN_TRANSPORT:
        snprintf(buf, len, "%s", meta->tls ? "tls" : "raw_buffer");
        return true;
    case IN_SERVER_NAME:
        if (!meta->server_name) return false;
        snprintf(buf, len, "%s", meta->server_name);
        return true;
    case IN_APP_PROTO: {
        /* Envoy's rendering: 'h2','http/1.1' */
        size_t n = 0;
        for (uint32_t i = 0; i < meta->napp_protocols && n < len; i++) {
            int k = snprintf(buf + n, len - n, "%s'%s'", i ? "," : "", meta->app_protocols[i]);
            if (k < 0) return false;
            n += (size_t)k;
        }
        return meta->napp_protocols > 0 && n < len;
    }
    default:
        return false;
    }
}

static int eval(const struct rs_fcm *f, const struct sockaddr *local, const struct sockaddr *remote,
                const struct rs_conn_meta *meta);

static int eval_on(const struct fcm_on *on, const struct sockaddr *local,
                   const struct sockaddr *remote, const struct rs_conn_meta *meta)
{
    if (!on->set) return -2;
    return on->sub ? eval(on->sub, local, remote, meta) : on->chain;
}

/* The chain index, -1 for an explicit no chain, -2 for no match. */
static int eval(const struct rs_fcm *f, const struct sockaddr *local, const struct sockaddr *remote,
                const struct rs_conn_meta *meta)
{
    const struct fcm_on *hit = NULL;
    if (f->kind == FCM_IP) {
        const struct sockaddr *sa = f->input == IN_DST_IP ? local : remote;
        uint32_t best = 0;
        for (uint32_t k = 0; k < f->ncidrs; k++)
            if (cidr_contains(&f->cidrs[k], sa) && (!hit || f->cidrs[k].len > best)) {
                hit = &f->on[f->owner[k]];
                best = f->cidrs[k].len;
            }
    } else {
        char v[512];
        if (input_value(f->input, local, remote, meta, v, sizeof v)) {
            size_t vl = strlen(v), best = 0;
            for (uint32_t k = 0; k < f->n; k++) {
                size_t kl = strlen(f->keys[k]);
                if (f->kind == FCM_EXACT
                        ? strcmp(f->keys[k], v) == 0
                        : kl <= vl && memcmp(f->keys[k], v, kl) == 0 && (!hit || kl > best)) {
                    hit = &f->on[k];
                    best = kl;
                    if (f->kind == FCM_EXACT) break;
                }
            }
        }
    }
    if (hit) {
        int r = eval_on(hit, local, remote, meta);
        if (r != -2) return r;
    }
    return eval_on(&f->no_match, local, remote, meta);
}

struct rs_filter_chain *rs_listener_pick_chain(const struct rs_listener *l,
                                               const struct sockaddr *local,
                                               const struct sockaddr *remote,
                                               const struct rs_conn_meta *meta)
{
    static const struct rs_conn_meta plain = {0};
    if (!meta) meta = &plain;
    if (l->matcher) {
        int i = eval(l->matcher, local, remote, meta);
        return i >= 0 ? &l->chains[i] : l->default_chain;
    }
    return pick_legacy(l, local, remote, meta);
}
