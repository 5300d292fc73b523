#!/usr/bin/env bash
# Access logs as Istio configures them: a listener-level log with response_flag_filter NR (a
# line per connection no filter chain takes), and an HCM log filtered on response flags (only
# requests that got a flag are written).
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP P_NOMATCH UA <<<"$(free_ports 4)"
start_upstream a "$UA"
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
  - name: nomatch
    address: { socket_address: { address: 127.0.0.1, port_value: $P_NOMATCH } }
    access_log:
    - name: envoy.access_loggers.file
      filter: { response_flag_filter: { flags: ["NR"] } }
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
        path: $TMP/listener.log
        log_format: { text_format_source: { inline_string: "listener %RESPONSE_FLAGS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS%\n" } }
    filter_chains:
    - filter_chain_match: { destination_port: 1 }
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: never
          cluster: a
$(yaml_hcm http $P_HTTP http)
          access_log:
          - name: envoy.access_loggers.file
            filter: { response_flag_filter: { flags: ["NR", "UH"] } }
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $TMP/http.log
              log_format: { text_format_source: { inline_string: "http %RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:PATH)% client=%REQ(X-Client)% tenant=%REQ(X-Tenant?X-Client)%\n" } }
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/ok" }
                route: { cluster: a }
  clusters:
$(yaml_static_cluster a $UA)
EOF
start_ringside "$TMP/bootstrap.yaml"

assert_eq "$(status "http://127.0.0.1:$P_HTTP/ok")" "200" "a routed request"
assert_eq "$(status -H "x-client: acme" "http://127.0.0.1:$P_HTTP/nowhere")" "404" "a request without a route"
# %REQ(X)% renders any request header the format names; X?Y falls back to Y
wait_for "the NR request to be logged" 10 grep -q "^http 404 NR /nowhere client=acme tenant=acme$" "$TMP/http.log"
assert_eq "$(status "http://127.0.0.1:$P_HTTP/nowhere2")" "404" "a request without those headers"
wait_for "its line, with '-' for them" 10 grep -q "^http 404 NR /nowhere2 client=- tenant=-$" "$TMP/http.log"
assert_not_contains "$(cat "$TMP/http.log")" "/ok" "the request without a flag was filtered out"

curl -s --max-time 2 "http://127.0.0.1:$P_NOMATCH/" >/dev/null || true
wait_stat "listener.127.0.0.1_$P_NOMATCH.no_filter_chain_match" 1
wait_for "the unmatched connection to be logged" 10 grep -q "^listener NR 127.0.0.1 127.0.0.1:$P_NOMATCH$" "$TMP/listener.log"
log "ok: listener-level log line for the connection no chain took"

# An access-log filter Ringside does not implement is refused by name.
sed 's/filter: { response_flag_filter: { flags: \["NR"\] } }/filter: { status_code_filter: { comparison: { op: GE, value: { default_value: 500, runtime_key: k } } } }/' \
    "$TMP/bootstrap.yaml" >"$TMP/bad.yaml"
out=$("$RINGSIDE" --mode validate -c "$TMP/bad.yaml" 2>&1 || true)
assert_contains "$out" "access_log[0].filter: only response_flag_filter is supported" "other filters are refused by name"
