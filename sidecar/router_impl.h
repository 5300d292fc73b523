/* The router's private representation, shared by its two halves: router.c compiles a
 * RouteConfiguration into it, router_match.c matches requests against it. */
#ifndef RS_ROUTER_IMPL_H
#define RS_ROUTER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidecar/router.h"
#include "sidecar/strmatch.h"

#define HOST_BUF 1024     /* longest Host we lower-case for lookup */
#define QP_NAME_BUF 256   /* longest decoded query parameter name compared */
#define QP_VALUE_BUF 2048 /* longest decoded query parameter value compared */

#define lc rs_lc

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
    uint32_t refs;   /* atomic: snapshots sharing the table */
    const void *src; /* reuse identity set by the configuration compiler, or NULL */
    uint64_t src_key;
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
    const struct rs_route_filter_cfg *filter_cfgs; /* route-configuration level */
    void (*filter_cfg_free)(void *cfg);
};

/* ---- private matcher types ----------------------------------------------------------------- */

enum pseudo { PS_NONE, PS_METHOD, PS_PATH, PS_AUTHORITY };
enum hm_kind { HM_STRING, HM_PRESENT, HM_RANGE };

struct hdrmatch {
    const char *name;
    uint32_t name_len;
    uint8_t pseudo, kind;
    bool invert, missing_as_empty, present;
    int64_t start, end;
    struct rs_strmatch sm;
};

enum qm_kind { QM_PRESENT, QM_STRING };

struct qpmatch {
    const char *name;
    uint32_t name_len;
    uint8_t kind;
    bool present;
    struct rs_strmatch sm;
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

static inline uint64_t hash_lower(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ lc((unsigned char)s[i])) * 1099511628211ull;
    return h;
}

#endif
