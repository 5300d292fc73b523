#!/usr/bin/env bash
# STRICT_DNS clusters: a name is resolved on the resolver thread (never on a worker) and traffic
# flows to what it resolved to; a name that does not resolve leaves the cluster empty (503 UH)
# with the failure counted, and never blocks the other cluster.
source "$(dirname "$0")/lib.sh"
need curl

read -r UP LISTEN ADMIN_PORT <<<"$(free_ports 3)"
start_upstream dns1 "$UP"

cat >"$TMP/bootstrap.yaml" <<YAML
$(yaml_admin $ADMIN_PORT)
static_resources:
  listeners:
$(yaml_hcm http $LISTEN dns_http)
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /missing }
                route: { cluster: missing }
              - match: { prefix: / }
                route: { cluster: byname }
  clusters:
  - name: byname
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    dns_refresh_rate: 0.5s
    connect_timeout: 1s
    load_assignment:
      cluster_name: byname
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: localhost, port_value: $UP } } }
  - name: missing
    type: STRICT_DNS
    dns_refresh_rate: 0.5s
    load_assignment:
      cluster_name: missing
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: nonexistent.invalid, port_value: 80 } } }
YAML
start_ringside "$TMP/bootstrap.yaml"

wait_stat cluster.byname.update_success 1
assert_eq "$(stat_value cluster.byname.membership_total)" 1 "localhost resolved to one IPv4 address"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' -D "$TMP/headers" "http://127.0.0.1:$LISTEN/")
assert_eq "$code" 200 "a request to the DNS cluster succeeds"
assert_contains "$(cat "$TMP/headers")" "x-upstream-id: dns1" "it reached the resolved upstream"
assert_contains "$(admin /clusters)" "byname::127.0.0.1:$UP" "/clusters lists the resolved host"

wait_stat cluster.missing.update_failure 2
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$LISTEN/missing")
assert_eq "$code" 503 "an unresolvable cluster answers 503"
assert_contains "$(cat "$TMP/body")" "no healthy upstream" "with Envoy's body"
wait_for "the UH access-log line" 5 grep -q '"GET /missing HTTP/1.1" 503 UH' "$TMP/ringside.out"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LISTEN/")
assert_eq "$code" 200 "the healthy cluster keeps serving"
log "passed"
