#!/usr/bin/env bash
# HTTP routing as a client sees it: matchers pick the upstream (told apart by x-upstream-id),
# domains pick the virtual host, rewrites and header edits reach the upstream (seen by /echo),
# direct responses, 404s, weighted clusters, x-request-id and x-forwarded-for.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP UA UB UC <<<"$(free_ports 5)"
for u in a:$UA b:$UB c:$UC; do start_upstream "${u%%:*}" "${u#*:}"; done

cluster() { # NAME PORT
    cat <<EOF
  - name: $1
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
EOF
}

cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(yaml_hcm http $P_HTTP rt)
          use_remote_address: true
$(yaml_router)
          route_config:
            name: rt
            request_headers_to_add:
            - header: { key: x-rc-added, value: rc }
            virtual_hosts:
            - name: exact
              domains: ["exact.test", "exact.test:*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: c }
                response_headers_to_add:
                - header: { key: x-vhost, value: exact }
            - name: wild
              domains: ["*.wild.test"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: b }
                response_headers_to_add:
                - header: { key: x-vhost, value: wild }
            - name: default
              domains: ["*"]
              response_headers_to_add:
              - header: { key: x-vhost, value: default }
              routes:
              - match: { path: "/exact-path" }
                route: { cluster: b }
              - match: { safe_regex: { regex: "^/re/[0-9]+$" } }
                route: { cluster: c }
              - match:
                  prefix: "/hdr"
                  headers:
                  - name: x-pick
                    string_match: { exact: "c" }
                route: { cluster: c }
              - match:
                  prefix: "/hdr"
                route: { cluster: a }
              - match:
                  prefix: "/method"
                  headers:
                  - name: ":method"
                    string_match: { exact: "POST" }
                route: { cluster: b }
              - match: { prefix: "/method" }
                route: { cluster: a }
              - match:
                  prefix: "/query"
                  query_parameters:
                  - name: v
                    string_match: { exact: "2" }
                route: { cluster: b }
              - match: { prefix: "/query" }
                route: { cluster: a }
              - match: { prefix: "/rewrite/" }
                route: { cluster: a, prefix_rewrite: "/echo/", host_rewrite_literal: "rewritten.test" }
              - match: { prefix: "/edit" }
                route: { cluster: a, prefix_rewrite: "/echo" }
                request_headers_to_add:
                - header: { key: x-added, value: yes }
                - header: { key: x-multi, value: two }
                  append_action: APPEND_IF_EXISTS_OR_ADD
                request_headers_to_remove: [x-secret]
                response_headers_to_add:
                - header: { key: x-resp-added, value: "1" }
                response_headers_to_remove: [x-upstream-id]
              - match: { prefix: "/direct" }
                direct_response: { status: 418, body: { inline_string: "short and stout\n" } }
              - match: { prefix: "/weighted" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: a, weight: 90 }
                    - { name: b, weight: 10 }
              - match: { prefix: "/echo" }
                route: { cluster: a }
              - match: { prefix: "/a" }
                route: { cluster: a }
  clusters:
$(cluster a "$UA")
$(cluster b "$UB")
$(cluster c "$UC")
EOF
start_ringside "$TMP/bootstrap.yaml"
U=http://127.0.0.1:$P_HTTP

upstream_of() { header x-upstream-id "$@"; }

# matchers
assert_eq "$(upstream_of "$U/a/x")" a "prefix /a -> a"
assert_eq "$(upstream_of "$U/exact-path")" b "path /exact-path -> b"
assert_eq "$(status "$U/exact-path/more")" 404 "path match is exact (/exact-path/more -> 404)"
assert_eq "$(upstream_of "$U/re/123")" c "regex ^/re/[0-9]+$ -> c"
assert_eq "$(status "$U/re/12x")" 404 "regex must match the whole path"
assert_eq "$(upstream_of "$U/hdr" -H 'x-pick: c')" c "header x-pick: c -> c"
assert_eq "$(upstream_of "$U/hdr" -H 'x-pick: d')" a "header x-pick: d -> fallback a"
assert_eq "$(upstream_of "$U/method" -X POST -d x)" b "POST /method -> b"
assert_eq "$(upstream_of "$U/method")" a "GET /method -> a"
assert_eq "$(upstream_of "$U/query?x=1&v=2")" b "query v=2 -> b"
assert_eq "$(upstream_of "$U/query?v=3")" a "query v=3 -> a"

# domains
assert_eq "$(upstream_of "$U/a" -H 'host: exact.test')" c "exact domain exact.test -> c"
assert_eq "$(header x-vhost "$U/a" -H 'host: exact.test:8080')" exact "exact.test:port matches exact.test:*"
assert_eq "$(upstream_of "$U/a" -H 'host: api.wild.test')" b "wildcard *.wild.test -> b"
assert_eq "$(header x-vhost "$U/a" -H 'host: other.test')" default "other host -> default vhost"

# rewrites seen by the upstream
echo_body=$(curl -s "$U/rewrite/abc?q=1")
assert_contains "$echo_body" '"path": "/echo/abc?q=1"' "prefix_rewrite /rewrite/ -> /echo/ keeps the rest and the query"
assert_contains "$echo_body" '"host": "rewritten.test"' "host_rewrite_literal"
assert_contains "$echo_body" '"x-rc-added": "rc"' "route-config request_headers_to_add"

# header edits
resp=$(curl -s -D "$TMP/h" "$U/edit" -H 'x-secret: hunter2' -H 'x-multi: one' -H 'x-keep: 1')
assert_contains "$resp" '"x-added": "yes"' "request_headers_to_add"
assert_not_contains "$resp" 'x-secret' "request_headers_to_remove strips x-secret"
assert_contains "$resp" '"x-keep": "1"' "other headers are forwarded"
assert_match "$(grep -c '"x-multi"' <<<"$resp")" '^2$' "APPEND_IF_EXISTS_OR_ADD keeps the client's x-multi and adds one"
hdrs=$(tr -d '\r' <"$TMP/h" | tr A-Z a-z)
assert_contains "$hdrs" "x-resp-added: 1" "response_headers_to_add"
assert_not_contains "$hdrs" "x-upstream-id" "response_headers_to_remove"
assert_contains "$hdrs" "x-vhost: default" "virtual-host response_headers_to_add"

# direct response and no route
assert_eq "$(status "$U/direct")" 418 "direct_response status"
assert_eq "$(curl -s "$U/direct")" "short and stout" "direct_response body"
assert_eq "$(status "$U/nothing-here")" 404 "no route -> 404"
assert_eq "$(status "$U/nothing-here" -X POST -d body)" 404 "no route with a body -> 404"
wait_stat http.rt.no_route 2

# x-request-id: generated when absent, kept when present (from a trusted, internal peer)
body=$(curl -s "$U/echo")
assert_match "$body" '"x-request-id": "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"' \
    "x-request-id generated as a UUIDv4"
id2=$(curl -s "$U/echo" | grep x-request-id)
assert_ne "$id2" "$(grep x-request-id <<<"$body")" "each request gets its own x-request-id"
assert_contains "$(curl -s "$U/echo" -H 'x-request-id: my-id-123')" '"x-request-id": "my-id-123"' \
    "x-request-id kept when present"

# x-forwarded-for with use_remote_address: the peer address is appended
assert_contains "$(curl -s "$U/echo")" '"x-forwarded-for": "127.0.0.1"' "x-forwarded-for set to the peer"
assert_contains "$(curl -s "$U/echo" -H 'x-forwarded-for: 10.1.2.3')" \
    '"x-forwarded-for": "10.1.2.3,127.0.0.1"' "x-forwarded-for appended"
assert_contains "$(curl -s "$U/echo")" '"x-forwarded-proto": "http"' "x-forwarded-proto set"

# weighted clusters 90/10 over 3,000 requests (one keep-alive connection, curl's URL globbing)
wa0=$(stat_value cluster.a.upstream_rq_total)
wb0=$(stat_value cluster.b.upstream_rq_total)
curl -s -o /dev/null -D - "$U/weighted/[1-3000]" | tr -d '\r' | awk -F': ' '$1=="x-upstream-id"{n[$2]++} END{print n["a"]+0, n["b"]+0}' >"$TMP/w"
read -r na nb <"$TMP/w"
assert_eq "$((na + nb))" 3000 "3000 weighted requests answered"
assert_between "$((na * 100 / 3000))" 85 95 "weighted cluster a gets ~90%"
assert_eq "$(($(stat_value cluster.a.upstream_rq_total) - wa0))" "$na" "cluster.a.upstream_rq_total counts its weighted share"
assert_eq "$(($(stat_value cluster.b.upstream_rq_total) - wb0))" "$nb" "cluster.b.upstream_rq_total counts its weighted share"
