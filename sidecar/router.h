/* Envoy's HTTP route model (envoy.config.route.v3.RouteConfiguration), compiled once per config
 * snapshot into an immutable rs_route_table and matched per request without allocating.
 *
 * Compile: rs_route_table_compile() turns a RouteConfiguration (usually the HCM's inline
 * route_config) into lookup structures: a hash table of exact domains, suffix/prefix wildcard
 * lists longest first, the `*` virtual host, and per vhost an ordered route list with
 * precompiled matchers (PCRE2 + JIT for safe_regex). Fields that would change behaviour but are
 * not implemented are rejected with an error naming the field path; hints are accepted.
 *
 * Match: rs_route_match() takes a view of the request (no copy) and returns the first matching
 * route of the virtual host selected by :authority, or NULL (the caller answers 404, NR).
 * Everything a caller needs to act on a route is reachable from struct rs_route below. */
#ifndef RS_ROUTER_H
#define RS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct Envoy__Config__Route__V3__RouteConfiguration;
struct rs_route_table;
struct rs_route_match; /* private: precompiled matchers of one route */
struct rs_fmt_seg;     /* private: a parsed header value with %VAR% specifiers */

/* HeaderValueOption.append_action (the deprecated `append` is mapped onto it at compile time:
 * true → APPEND_IF_EXISTS_OR_ADD, false → OVERWRITE_IF_EXISTS_OR_ADD). */
enum rs_header_action {
    RS_HDR_APPEND_IF_EXISTS_OR_ADD = 0,
    RS_HDR_ADD_IF_ABSENT = 1,
    RS_HDR_OVERWRITE_IF_EXISTS_OR_ADD = 2,
    RS_HDR_OVERWRITE_IF_EXISTS = 3,
};

/* One header to add. `name` is lower-cased and NUL-terminated. When has_format is set, the value
 * holds Envoy %VAR% specifiers and must be expanded with rs_route_format_value(); otherwise it
 * is a literal. An empty (expanded) value is skipped unless keep_empty_value, as in Envoy. */
struct rs_header_add {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
    uint8_t action; /* enum rs_header_action */
    bool has_format;
    bool keep_empty_value;
    const struct rs_fmt_seg *segs; /* parsed value, for rs_route_format_value() */
    uint32_t n_segs;
};

struct rs_header_name {
    const char *name; /* lower-cased, NUL-terminated */
    uint32_t len;
};

/* The header edits of one config level. Apply `remove` first, then `add` in order (Envoy's
 * HeaderParser removes before it adds). */
struct rs_header_edits {
    const struct rs_header_add *add;
    const struct rs_header_name *remove;
    uint32_t n_add;
    uint32_t n_remove;
};

/* RetryPolicy, stored for the retry work; the router does not act on it. Inherited from the
 * virtual host when the route has none (Envoy: the route's policy replaces the vhost's). */
struct rs_retry_policy {
    const char *retry_on;             /* as configured, e.g. "5xx,connect-failure" */
    uint32_t num_retries;             /* default 1 */
    uint64_t per_try_timeout_ms;      /* 0 = unset (use the route timeout) */
    uint64_t per_try_idle_timeout_ms; /* 0 = unset */
    uint64_t backoff_base_ms;         /* default 25 */
    uint64_t backoff_max_ms;          /* default 10 × base */
    const uint32_t *retriable_status_codes;
    uint32_t n_retriable_status_codes;
    uint32_t host_selection_retry_max_attempts; /* default 1 */
    bool previous_hosts; /* envoy.retry_host_predicates.previous_hosts configured */
};

/* A typed_per_filter_config entry the configuration compiler compiled (per_filter's *compiled),
 * held by the route table and freed with it through the options' per_filter_free. */
struct rs_route_filter_cfg {
    const struct rs_route_filter_cfg *next;
    const char *filter; /* the map key: the HTTP filter's name */
    void *cfg;
};

struct rs_vhost {
    const char *name;
    const struct rs_route_filter_cfg *filter_cfgs; /* compiled typed_per_filter_config */
    struct rs_header_edits req, resp;
    const struct rs_retry_policy *retry; /* NULL: none */
    bool include_request_attempt_count;
    bool include_attempt_count_in_response;
};

#define RS_ROUTE_CLUSTER_UNKNOWN (-1) /* validate_clusters false and the cluster is unknown */

/* A target cluster; for weighted clusters, one entry with its weight and edits. */
struct rs_route_cluster {
    const char *name;
    int index;       /* from the compile-time cluster_index callback, or RS_ROUTE_CLUSTER_UNKNOWN */
    uint32_t weight; /* weighted clusters only */
    uint64_t weight_end;              /* cumulative weight: picked when rnd % total < weight_end */
    const char *host_rewrite_literal; /* per-cluster override, or NULL */
    struct rs_header_edits req, resp;
};

enum rs_route_kind {
    RS_ROUTE_FORWARD,         /* route: a cluster (n_clusters == 1) or weighted clusters */
    RS_ROUTE_DIRECT_RESPONSE, /* direct_response */
};

struct rs_route {
    const struct rs_vhost *vhost;
    const char *name;
    enum rs_route_kind kind;

    /* RS_ROUTE_FORWARD */
    const struct rs_route_cluster *clusters;
    uint32_t n_clusters;
    bool weighted;
    uint64_t total_weight;
    const char *host_rewrite_literal; /* NULL: none */
    bool auto_host_rewrite;           /* flag only: the caller rewrites to the upstream host */
    uint64_t timeout_ms;              /* RouteAction.timeout, default 15000; 0 = disabled */
    int64_t idle_timeout_ms;          /* -1 unset (HCM stream idle timeout applies); 0 disabled */
    const struct rs_retry_policy *retry;     /* route's, else vhost's, else NULL */
    uint32_t per_request_buffer_limit_bytes; /* 0 = unset */

    /* RS_ROUTE_DIRECT_RESPONSE */
    uint32_t direct_status;
    const char *direct_body; /* NULL when no body */
    size_t direct_body_len;

    struct rs_header_edits req, resp;
    const struct rs_route_filter_cfg *filter_cfgs; /* compiled typed_per_filter_config */

    /* private */
    const struct rs_route_match *match;
    const char *prefix_rewrite;
    uint32_t prefix_rewrite_len;
    uint32_t matched_prefix_len; /* prefix / path_separated_prefix length; 0 = whole path */
    const void *regex_rewrite;   /* pcre2_code * */
    const char *regex_subst;     /* substitution in PCRE2 syntax */
    uint32_t regex_subst_len;
};

struct rs_route_compile_opts {
    /* Maps a cluster name to an index; < 0 means unknown. Required. */
    int (*cluster_index)(void *ctx, const char *name);
    void *ctx;
    /* Used when RouteConfiguration.validate_clusters is unset: Envoy's default is true for an
     * inline route_config and false for RDS. When validation is off an unknown cluster compiles
     * to RS_ROUTE_CLUSTER_UNKNOWN and the caller answers 503 (cluster_not_found_response_code). */
    bool validate_clusters;
    /* HCM strip_any_host_port: ignore any :port of the Host when picking a virtual host. */
    bool strip_any_host_port;
    /* HCM strip_matching_host_port: ignore the :port only when it equals listener_port. */
    bool strip_matching_host_port;
    uint16_t listener_port;
    /* Decides one typed_per_filter_config entry (filter name, its google.protobuf.Any config,
     * passed as const void *): 0 accepts, -1 refuses with a reason in why. NULL: any
     * typed_per_filter_config is refused. Called with `ctx`. `compiled` is where the callback may
     * leave a compiled form of the entry for the data path (rs_route_filter_config), freed with
     * the table by per_filter_free; NULL where the router keeps none (weighted clusters). */
    int (*per_filter)(void *ctx, const char *filter, const void *any, void **compiled, char *why,
                      size_t len);
    void (*per_filter_free)(void *compiled);
};

/* Compiles `rc`. Returns a table the caller owns (free with rs_route_table_free), or NULL with a
 * message in err naming the field path, e.g.
 * "virtual_hosts[1].routes[0].match.safe_regex.regex: missing closing parenthesis at offset 3".
 * `rc` is not referenced after the call. */
struct rs_route_table *
rs_route_table_compile(const struct Envoy__Config__Route__V3__RouteConfiguration *rc,
                       const struct rs_route_compile_opts *opts, char *err, size_t errlen);

/* Drops a reference: the table is freed with its last one. Tables are shared by successive
 * snapshots compiled from the same RouteConfiguration (rs_route_table_ref). */
void rs_route_table_free(struct rs_route_table *t);
struct rs_route_table *rs_route_table_ref(struct rs_route_table *t);

/* What a table was compiled from, as the configuration compiler identifies it for reuse: an
 * opaque source identity and a key of the options that shape the table; NULL when unset. */
void rs_route_table_set_source(struct rs_route_table *t, const void *src, uint64_t key);
const void *rs_route_table_source(const struct rs_route_table *t, uint64_t *key);

/* The most specific compiled typed_per_filter_config of `filter` for route r (the route's, else
 * its virtual host's, else the route configuration's), or NULL: Envoy's
 * mostSpecificPerFilterConfig. */
const void *rs_route_filter_config(const struct rs_route_table *t, const struct rs_route *r,
                                   const char *filter);

/* Route-configuration-level header edits (applied last unless most_specific_wins). */
const struct rs_header_edits *rs_route_table_req_edits(const struct rs_route_table *t);
const struct rs_header_edits *rs_route_table_resp_edits(const struct rs_route_table *t);

/* Returns a header's value: if it occurs more than once the caller returns the values joined
 * with "," (as Envoy's header matching sees them), in a buffer that lives until the match call
 * returns. `lname` is lower-case, not NUL-terminated. Returns false when absent. */
typedef bool (*rs_route_header_fn)(void *ctx, const char *lname, size_t len, const char **value,
                                   size_t *value_len);

/* A view of the request; nothing is copied. :method, :path and :authority come from here (also
 * for header matchers naming those pseudo headers); every other header through `header`. */
struct rs_route_request {
    const char *method;
    size_t method_len;
    const char *path; /* :path, with the query string */
    size_t path_len;
    const char *authority; /* :authority / Host, possibly with :port */
    size_t authority_len;
    rs_route_header_fn header;
    void *ctx;
};

/* The virtual host for an authority (Envoy's precedence: exact, longest suffix wildcard, longest
 * prefix wildcard, `*`; case-insensitive), or NULL. */
const struct rs_vhost *rs_route_find_vhost(const struct rs_route_table *t, const char *authority,
                                           size_t len);

/* The first route of the selected virtual host that matches, or NULL (404). Thread-safe; a
 * thread's first regex match allocates its PCRE2 match data (see rs_router_thread_cleanup). */
const struct rs_route *rs_route_match(const struct rs_route_table *t,
                                      const struct rs_route_request *req);

/* Picks the target cluster: the only one, or for weighted clusters the entry where
 * rnd % total_weight falls (Envoy's selection). Never NULL for a forward route. */
const struct rs_route_cluster *rs_route_pick_cluster(const struct rs_route *r, uint64_t rnd);

/* Writes the upstream path (prefix_rewrite or regex_rewrite applied, query kept) to out.
 * Returns its length, -ENOENT when the route rewrites nothing (send the path as is), -ENOSPC
 * when outcap is too small (no NUL is written; out need not be terminated). */
ssize_t rs_route_rewrite_path(const struct rs_route *r, const char *path, size_t len, char *out,
                              size_t outcap);

/* The host to send upstream: the picked cluster's host_rewrite_literal, else the route's, else
 * NULL (keep the Host, or rewrite to the upstream host when r->auto_host_rewrite). */
const char *rs_route_host_rewrite(const struct rs_route *r, const struct rs_route_cluster *c);

/* Fills `out` with the request (resp: response) header edit levels in the order to apply them:
 * Envoy's default is most specific first — weighted cluster, route, virtual host, route config;
 * reversed when the route config sets most_specific_header_mutations_wins. `c` may be NULL.
 * Returns the number of levels written (≤ 4); empty levels are left out. */
size_t rs_route_request_edits(const struct rs_route_table *t, const struct rs_route *r,
                              const struct rs_route_cluster *c,
                              const struct rs_header_edits *out[4]);
size_t rs_route_response_edits(const struct rs_route_table *t, const struct rs_route *r,
                               const struct rs_route_cluster *c,
                               const struct rs_header_edits *out[4]);

/* Values for the %VAR% specifiers a header value may hold. Addresses are "ip:port" ("[v6]:port"
 * for IPv6); the _WITHOUT_PORT variants are derived. A NULL field expands to "". */
struct rs_route_format_vars {
    const char *downstream_remote_address;
    const char *downstream_local_address;
    const char *upstream_remote_address;
    const char *protocol; /* "HTTP/1.1", "HTTP/2" */
    const char *hostname;
};

/* Expands a header value. Supported: %DOWNSTREAM_REMOTE_ADDRESS%,
 * %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %DOWNSTREAM_LOCAL_ADDRESS%,
 * %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%, %UPSTREAM_REMOTE_ADDRESS%,
 * %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %PROTOCOL%, %HOSTNAME% and %% for a literal %; any
 * other specifier is a compile error. Returns the length written or -ENOSPC. */
ssize_t rs_route_format_value(const struct rs_header_add *h, const struct rs_route_format_vars *v,
                              char *out, size_t outcap);

/* Frees this thread's PCRE2 match data (call when a worker thread exits). */
void rs_router_thread_cleanup(void);

#endif
