/* The filter decision table: for every listener, network and HTTP filter (and per-route filter
 * config) that istiod and pilot-agent send, whether Ringside implements it, skips it (its absence
 * cannot change what traffic is allowed or where it goes: telemetry, metadata exchange), or
 * refuses it (NACK: skipping it would weaken security or silently change routing). An
 * authorization filter Ringside cannot enforce is never skipped.
 *
 * A filter is recognised by its type URL (for a TypedStruct, the type it wraps); a type whose
 * .proto does not ship with Envoy's API (Istio's own filters) is kept opaque and recognised by
 * type URL or, failing that, by filter name. Decisions that depend on the configuration (fault
 * with active faults, RBAC with enforcing rules, set_filter_state keys) read it. */
#ifndef RS_FILTERS_H
#define RS_FILTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/any.pb-c.h"

enum rs_filter_kind {
    RS_FILTER_LISTENER, /* Listener.listener_filters */
    RS_FILTER_NETWORK,  /* FilterChain.filters */
    RS_FILTER_HTTP,     /* HttpConnectionManager.http_filters */
    RS_FILTER_ROUTE,    /* typed_per_filter_config of a route, virtual host or route config */
};

enum rs_filter_verdict {
    RS_FILTER_IMPLEMENTED, /* Ringside acts on it (the caller compiles it) */
    RS_FILTER_SKIPPED,     /* accepted and not run; recorded and counted */
    RS_FILTER_REFUSED,     /* NACK */
};

/* What a filter is, as the table identifies it. */
enum rs_filter_id {
    RS_FID_UNKNOWN,
    RS_FID_TLS_INSPECTOR,
    RS_FID_HTTP_INSPECTOR,
    RS_FID_ORIGINAL_DST,
    RS_FID_HCM,
    RS_FID_TCP_PROXY,
    RS_FID_CONNECTION_LIMIT,
    RS_FID_ROUTER,
    RS_FID_BUFFER,
    RS_FID_RBAC, /* envoy.filters.{network,http}.rbac and RBACPerRoute: compiled by sidecar/rbac.c
                  */
    RS_FID_ISTIO_ALPN, /* istio.alpn: the upstream ALPN of the HTTP connection manager */
    RS_FID_OTHER,      /* known to the table, no compile step of its own */
};

struct rs_filter_decision {
    enum rs_filter_verdict verdict;
    enum rs_filter_id id;
    const char *type; /* the decided-on message name (TypedStruct unwrapped), or "" */
    char reason[512]; /* why (skipped, refused); names the offending field when refused */
};

/* Decides one filter. `name` is the filter's name (the typed_per_filter_config key for
 * RS_FILTER_ROUTE); `cfg` its typed_config (may be NULL); `is_optional` Envoy's
 * HttpFilter.is_optional / FilterConfig.is_optional (an unknown optional filter is skipped, as
 * Envoy does; a known authorization filter is refused even when optional). Never fails: an
 * undecodable config is a refusal with the decoder's message. */
void rs_filter_decide(enum rs_filter_kind kind, const char *name, const Google__Protobuf__Any *cfg,
                      bool is_optional, struct rs_filter_decision *out);

/* A skipped filter, as /config_dump shows it. */
struct rs_skipped_filter {
    char *where; /* e.g. Listener "virtualInbound" filter_chains[2].filters[0] */
    char *name;  /* the filter's name */
    char *type;  /* its (unwrapped) type, or "" */
    char *reason;
};

/* A growable list of skipped filters (owned by a snapshot). */
struct rs_skipped_list {
    struct rs_skipped_filter *v;
    uint32_t n, cap;
};

void rs_skipped_add(struct rs_skipped_list *l, const char *where, const char *name,
                    const struct rs_filter_decision *d);
void rs_skipped_free(struct rs_skipped_list *l);

/* The decision table itself, for documentation and /config_dump: entry i's kind, filter name,
 * type and fixed reason; returns false past the end. */
bool rs_filter_table_at(size_t i, enum rs_filter_kind *kind, const char **name, const char **type,
                        enum rs_filter_verdict *verdict, const char **reason);

const char *rs_filter_verdict_name(enum rs_filter_verdict v);

#endif
