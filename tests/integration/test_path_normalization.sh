#!/usr/bin/env bash
# Envoy's path normalization as Istio turns it on: dot segments removed, unreserved escapes
# decoded, slashes merged, escaped slashes redirected; the normalized path is what is routed and
# what the upstream sees; a malformed path is a 400.
source "$(dirname "$0")/lib.sh"
need curl
need python3

read -r UP LISTEN ADMIN_PORT <<<"$(free_ports 3)"
start_upstream pn "$UP"
RAW="$RS_SRC/tests/integration/rawclient.py"

cat >"$TMP/bootstrap.yaml" <<YAML
$(yaml_admin $ADMIN_PORT)
static_resources:
  listeners:
$(yaml_hcm http $LISTEN pn)
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { path: /echo }
                route: { cluster: up }
              - match: { prefix: /admin }
                direct_response: { status: 403 }
              - match: { prefix: / }
                direct_response: { status: 404, body: { inline_string: "other" } }
  clusters:
  - name: up
    type: STATIC
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } }
YAML
start_ringside "$TMP/bootstrap.yaml"

# raw requests: curl would normalize some of these paths itself
req() { python3 "$RAW" "$LISTEN" "GET $1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" --responses 1; }
out=$(req "/public/../echo")
assert_contains "$out" "HTTP/1.1 200" "/public/../echo is routed as /echo"
assert_contains "$out" '"path": "/echo"' "and the upstream sees the normalized path"
out=$(req "//echo")
assert_contains "$out" '"path": "/echo"' "merge_slashes: //echo reaches /echo"
out=$(req "/%65cho?q=/../x")
assert_contains "$out" '"path": "/echo?q=/../x"' "an unreserved escape is decoded; the query is untouched"
out=$(req "/x/../admin/panel")
assert_contains "$out" "HTTP/1.1 403" "dot segments cannot route around a rule on /admin"
out=$(req "/admin%2Fpanel")
assert_contains "$out" "HTTP/1.1 307" "an escaped slash is redirected"
assert_contains "$(tr -d '\r' <<<"$out")" "location: /admin/panel" "to the unescaped path"
out=$(req "/bad%zz")
assert_contains "$out" "HTTP/1.1 400" "a malformed escape is rejected"
log "passed"
