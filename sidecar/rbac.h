/* Envoy's RBAC engine: `envoy.config.rbac.v3.RBAC` compiled once into an immutable struct rs_rbac,
 * evaluated per connection (network filter) or per request (HTTP filter) without allocation; and
 * the two filter configurations around it (`envoy.extensions.filters.{network,http}.rbac.v3.RBAC`:
 * enforced `rules`, counted-only `shadow_rules`, stat prefixes).
 *
 * What is compiled and what is refused (a refusal names the field, e.g.
 *   rules.policies["ns[foo]-policy[p]-rule[0]"].principals[0].metadata: not supported: ...):
 *
 *   field                                   decision
 *   RBAC.action ALLOW / DENY                enforced
 *   RBAC.action LOG                         never denies; a match is reported RS_RBAC_LOGGED
 *   RBAC.policies                           a map: evaluated in name order (Envoy keeps a
 *                                           std::map), the first match names the policy; a
 *                                           repeated name keeps its last value
 *   RBAC.audit_logging_options              refused (no audit loggers)
 *   Policy.permissions / principals         at least one each (Envoy's validation)
 *   Policy.condition / checked_condition    refused (CEL is not implemented)
 *   Permission any, and_rules, or_rules,    compiled
 *     not_rule, header, url_path,
 *     destination_ip, destination_port,
 *     destination_port_range,
 *     requested_server_name (every
 *     StringMatcher form, safe_regex too)
 *   Permission metadata                     refused (no dynamic metadata reaches the engine)
 *   Permission matcher, uri_template        refused (extensions not implemented)
 *   Principal any, and_ids, or_ids, not_id, compiled
 *     authenticated(.principal_name),
 *     source_ip, direct_remote_ip,
 *     remote_ip, header, url_path
 *   Principal metadata, filter_state        refused
 *   StringMatcher custom                    refused
 *   HeaderMatcher (every specifier,         compiled as Envoy's HeaderUtility::matchHeaders
 *     invert_match,
 *     treat_missing_header_as_empty)
 *   CidrRange with prefix_len past the      refused (Envoy: "invalid ip/mask combo")
 *     address length, or a bad address
 *   nesting deeper than 64 sets/negations   refused (bounds compile and evaluation stacks)
 *   network RBAC matcher / shadow_matcher   refused (the unified matcher form)
 *   network enforcement_type                kept (CONTINUOUS re-evaluates on each read in Envoy;
 *                                           every input here is fixed per connection, so the
 *                                           first evaluation's answer stands)
 *   HTTP RBAC matcher / shadow_matcher      refused
 *   HTTP track_per_rule_stats               kept for the caller (per-policy counters)
 *
 * Regexes (safe_regex, safe_regex_match) are PCRE2 with RE2's anchoring: a full match, `$` only
 * at the very end. A regex match that fails for a reason other than "no match" (PCRE2's match or
 * depth limit) fails closed: the evaluation answers RS_RBAC_DENIED with no policy name. */
#ifndef RS_RBAC_H
#define RS_RBAC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "sidecar/stats.h"

struct Envoy__Config__Rbac__V3__RBAC;
struct Envoy__Extensions__Filters__Http__Rbac__V3__RBAC;
struct Envoy__Extensions__Filters__Network__Rbac__V3__RBAC;

struct rs_rbac; /* compiled rules; immutable, shareable across threads */

enum rs_rbac_action { RS_RBAC_ACTION_ALLOW, RS_RBAC_ACTION_DENY, RS_RBAC_ACTION_LOG };

enum rs_rbac_result {
    RS_RBAC_ALLOWED,    /* let it through; count `allowed` (`shadow_allowed`) */
    RS_RBAC_DENIED,     /* HTTP 403 / close the connection; count `denied` (`shadow_denied`) */
    RS_RBAC_LOGGED,     /* LOG action and a policy matched: let it through, count `logged` */
    RS_RBAC_NOT_LOGGED, /* LOG action and nothing matched: let it through, count `not_logged` */
};

/* Returns a request header's value, several occurrences joined with "," (as Envoy's header
 * matching sees them), in a buffer that lives until rs_rbac_eval returns; false when absent.
 * `lname` is lower-case, not NUL-terminated. Same contract as rs_route_header_fn (router.h), so
 * the HCM's route header callback fits. */
typedef bool (*rs_rbac_header_fn)(void *ctx, const char *lname, size_t len, const char **value,
                                  size_t *value_len);

/* What a rule can look at; nothing is copied and everything is borrowed for one evaluation. */
struct rs_rbac_input {
    /* The verified peer's principal: its first URI SAN (the SPIFFE ID), or when it has none its
     * DNS SAN or subject, as Envoy's `authenticated` matcher falls back. NULL when the connection
     * is not TLS (then `authenticated` never matches); "" for TLS without a usable name. */
    const char *peer_principal;
    const struct sockaddr *source;      /* downstream peer: direct_remote_ip, source_ip */
    const struct sockaddr *remote;      /* remote_ip (the client per x-forwarded-for when the
                                           HCM trusts it); NULL = `source` */
    const struct sockaddr *destination; /* local (original destination) address: destination_ip,
                                           destination_port(_range) */
    const char *server_name;            /* SNI; NULL or "" when none */
    /* HTTP only. With http false (the network filter) every header is absent, as Envoy's
     * network RBAC evaluates against an empty header map: url_path never matches, a header rule
     * matches only as present_match: false / invert / treat_missing_header_as_empty allow. */
    bool http;
    const char *method; /* :method */
    size_t method_len;
    const char *path; /* :path, with the query (url_path strips query and fragment) */
    size_t path_len;
    const char *authority; /* :authority / Host */
    size_t authority_len;
    rs_rbac_header_fn header; /* every other header, other pseudo headers included */
    void *ctx;
};

/* Compiles the rules. Returns NULL with a message in err naming the field path relative to the
 * RBAC message (e.g. `policies["p"].permissions[1].or_rules.rules[0].header.name: required`). */
struct rs_rbac *rs_rbac_compile(const struct Envoy__Config__Rbac__V3__RBAC *m, char *err,
                                size_t errlen);
void rs_rbac_free(struct rs_rbac *r);

enum rs_rbac_action rs_rbac_action(const struct rs_rbac *r);
size_t rs_rbac_policy_count(const struct rs_rbac *r);

/* Envoy's RBAC engine decision. ALLOW: allowed iff some policy matches (no policies: everything
 * denied); DENY: denied iff some policy matches (no policies: everything allowed); LOG: LOGGED
 * iff some policy matches. policy_name (may be NULL) receives the first matching policy in name
 * order (Envoy's effective_policy_id), or NULL. Thread-safe; no allocation except a thread's
 * first regex match, which allocates its PCRE2 match data (see rs_rbac_thread_cleanup). */
enum rs_rbac_result rs_rbac_eval(const struct rs_rbac *r, const struct rs_rbac_input *in,
                                 const char **policy_name);

/* Frees the calling thread's PCRE2 match data; call before a worker thread exits. */
void rs_rbac_thread_cleanup(void);

/* ---- the filters ----------------------------------------------------------------------------
 *
 * Stats, as Envoy names them (the caller registers and counts them from rs_rbac_decision):
 *   network: <stat_prefix>.rbac.{allowed,denied,logged,not_logged}
 *            <stat_prefix>.rbac.<shadow_rules_stat_prefix>{shadow_allowed,shadow_denied}
 *            (no '.' added when stat_prefix ends with one: Istio's "tcp." gives tcp.rbac.denied)
 *   HTTP:    http.<HCM stat_prefix>.rbac.<rules_stat_prefix>{allowed,denied,logged,not_logged}
 *            http.<HCM stat_prefix>.rbac.<shadow_rules_stat_prefix>{shadow_allowed,shadow_denied}
 * A denial is HTTP 403 with body "RBAC: access denied" and response flag/details
 * `rbac_access_denied_matched_policy[<policy>]` (or `[none]`); network: the connection closes. */

struct rs_rbac_filter {
    struct rs_rbac *rules;          /* NULL: no rules, everything allowed */
    struct rs_rbac *shadow;         /* NULL: no shadow rules */
    char *stat_prefix;              /* network: stat_prefix; HTTP: "" */
    char *rules_stat_prefix;        /* HTTP: rules_stat_prefix; network: "" */
    char *shadow_rules_stat_prefix; /* both */
    bool continuous;                /* network enforcement_type CONTINUOUS */
    bool track_per_rule_stats;      /* HTTP */
};

struct rs_rbac_decision {
    enum rs_rbac_result result; /* rules' result; RS_RBAC_ALLOWED without rules */
    const char *policy;         /* rules' matching policy, or NULL */
    bool shadowed;              /* shadow rules present: shadow_result is set */
    enum rs_rbac_result shadow_result;
    const char *shadow_policy;
};

/* Compile a filter's configuration. NULL with err naming the field path from the filter message
 * (`rules.policies["p"]...`, `shadow_rules...`, `matcher`). Owned by the caller. */
struct rs_rbac_filter *
rs_rbac_filter_http(const struct Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *m, char *err,
                    size_t errlen);
struct rs_rbac_filter *
rs_rbac_filter_network(const struct Envoy__Extensions__Filters__Network__Rbac__V3__RBAC *m,
                       char *err, size_t errlen);
void rs_rbac_filter_free(struct rs_rbac_filter *f);

/* Evaluates rules and shadow rules; the caller enforces d->result == RS_RBAC_DENIED and counts
 * both. Same thread-safety and allocation contract as rs_rbac_eval. */
void rs_rbac_filter_eval(const struct rs_rbac_filter *f, const struct rs_rbac_input *in,
                         struct rs_rbac_decision *d);

/* ---- the filters on the data path ------------------------------------------------------------
 *
 * A filter chain (network) or an HTTP connection manager (HTTP) holds its RBAC filters as
 * stages, in configuration order (Istio sends one filter per action: DENY before ALLOW). The
 * data path evaluates them in order; the first denial stops the chain, as Envoy's filter chain
 * stops at a filter that closes the connection or sends a local reply. */

struct rs_rbac_stage {
    struct rs_rbac_filter *f;
    char *name; /* the filter's name: the key of a route's typed_per_filter_config (HTTP) */
    rs_stat_id allowed, denied, logged, not_logged, shadow_allowed, shadow_denied;
};

/* Takes f over and registers the stage's stats under `scope`: the network filter's stat_prefix,
 * or "http.<HCM stat_prefix>." for the HTTP filter (Envoy's statPrefixJoin with "rbac." adds a
 * '.' only when scope does not end with one). Control path. */
void rs_rbac_stage_init(struct rs_rbac_stage *s, struct rs_rbac_filter *f, const char *name,
                        const char *scope);
void rs_rbac_stage_fini(struct rs_rbac_stage *s);

/* Evaluates filter f (the stage's own, or a route's RBACPerRoute override) in stage s, counts
 * rules and shadow rules into shard sh, and returns whether it denies; *policy then names the
 * matched policy (NULL: none matched). */
bool rs_rbac_stage_denies(const struct rs_rbac_stage *s, const struct rs_rbac_filter *f,
                          struct rs_stats_shard *sh, const struct rs_rbac_input *in,
                          const char **policy);

/* Envoy's response code details (HTTP) / connection termination details (network) of a denial:
 * "rbac_access_denied_matched_policy[<policy>]", "[none]" without one; whitespace in the name
 * becomes '_' as in Envoy's RBAC::responseDetail. Returns out. */
const char *rs_rbac_denied_details(const char *policy, char *out, size_t cap);

#endif
