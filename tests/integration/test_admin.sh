#!/usr/bin/env bash
# The admin API as Envoy's users and Istio's tooling read it: /ready, /stats with Envoy's names
# and values that follow the traffic, /stats/prometheus, /clusters, /config_dump, /server_info.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP P_TCP UA <<<"$(free_ports 4)"
start_upstream a "$UA"
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
node: { id: "sidecar~127.0.0.1~admin-test.default~default.svc.cluster.local", cluster: admin-test }
static_resources:
  listeners:
$(yaml_hcm http_in $P_HTTP ingress_http)
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: app }
  - name: tcp_in
    address: { socket_address: { address: 127.0.0.1, port_value: $P_TCP } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp_app
          cluster: app
  clusters:
$(yaml_static_cluster app $UA)
EOF
start_ringside "$TMP/bootstrap.yaml"
A=http://127.0.0.1:$P_ADMIN

assert_eq "$(curl -s "$A/ready")" "LIVE" "/ready says LIVE"
assert_eq "$(status "$A/ready")" 200 "/ready answers 200"

# traffic: 20 HTTP requests (2xx), 5 404s through the upstream, 3 TCP connections
curl -s -o /dev/null "http://127.0.0.1:$P_HTTP/[1-20]"
curl -s -o /dev/null "http://127.0.0.1:$P_HTTP/status/404?[1-5]"
for i in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$P_TCP/"; done
L=listener.127.0.0.1_$P_HTTP
wait_stat http.ingress_http.downstream_rq_2xx 20
assert_eq "$(stat_value http.ingress_http.downstream_rq_2xx)" 20 "http.ingress_http.downstream_rq_2xx"
assert_eq "$(stat_value http.ingress_http.downstream_rq_4xx)" 5 "http.ingress_http.downstream_rq_4xx"
assert_eq "$(stat_value http.ingress_http.downstream_rq_total)" 25 "http.ingress_http.downstream_rq_total"
assert_eq "$(stat_value http.ingress_http.rq_total)" 25 "http.ingress_http.rq_total (router: routed requests)"
assert_eq "$(stat_value $L.downstream_cx_total)" 2 "$L.downstream_cx_total (2 curl connections)"
wait_stat cluster.app.upstream_rq_total 25
assert_eq "$(stat_value cluster.app.upstream_rq_total)" 25 "cluster.app.upstream_rq_total (HTTP requests)"
assert_ge "$(stat_value cluster.app.upstream_cx_total)" 4 "cluster.app.upstream_cx_total (pool + 3 TCP)"
assert_eq "$(stat_value cluster.app.upstream_rq_2xx)" 20 "cluster.app.upstream_rq_2xx"
assert_eq "$(stat_value cluster.app.upstream_rq_4xx)" 5 "cluster.app.upstream_rq_4xx"
assert_eq "$(stat_value tcp.tcp_app.downstream_cx_total)" 3 "tcp.tcp_app.downstream_cx_total"
assert_eq "$(stat_value cluster.app.membership_healthy)" 1 "cluster.app.membership_healthy"
assert_ne "$(stat_value server.live)" "" "server.live present"
assert_eq "$(stat_value server.concurrency)" 2 "server.concurrency"

# filters and formats
out=$(curl -s "$A/stats?filter=downstream_rq_2xx")
assert_contains "$out" "http.ingress_http.downstream_rq_2xx: 20" "/stats?filter= keeps matching stats"
assert_not_contains "$out" "cluster.app.upstream_cx_total" "/stats?filter= drops the others"
json=$(curl -s "$A/stats?format=json")
assert_eq "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(next(s["value"] for s in d["stats"] if s.get("name")=="http.ingress_http.downstream_rq_2xx"))' <<<"$json")" \
    20 "/stats?format=json parses and has the counter"

# prometheus: TYPE lines, envoy_ prefix, tags extracted as labels, histograms with buckets
prom=$(curl -s "$A/stats/prometheus")
assert_contains "$prom" "# TYPE envoy_cluster_upstream_rq_total counter" "prometheus TYPE line"
assert_contains "$prom" 'envoy_cluster_upstream_rq_total{envoy_cluster_name="app"} 25' "prometheus cluster name label"
assert_contains "$prom" 'envoy_cluster_upstream_rq_xx{envoy_cluster_name="app",envoy_response_code_class="2"} 20' \
    "prometheus response-code-class tag (cluster)"
assert_contains "$prom" 'envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="ingress_http",envoy_response_code_class="4"} 5' \
    "prometheus response-code-class tag (http)"
assert_contains "$prom" 'envoy_http_rq_total{envoy_http_conn_manager_prefix="ingress_http"} 25' \
    "prometheus router rq_total counts routed requests"
assert_match "$prom" 'envoy_http_downstream_rq_time_bucket\{[^}]*le="\+Inf"\} 25' "prometheus histogram +Inf bucket"
bad=$(grep -vE '^(# (TYPE|HELP) [a-z_:][a-zA-Z0-9_:]* ?.*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? [-+0-9.eEaInf]+)$' <<<"$prom" | grep -v '^$' | head -3)
assert_eq "$bad" "" "every prometheus line is a TYPE line or a sample"

# /clusters: hosts with their counters
cl=$(curl -s "$A/clusters")
assert_contains "$cl" "app::127.0.0.1:$UA::cx_total::" "/clusters lists the host with cx_total"
assert_contains "$cl" "app::127.0.0.1:$UA::health_flags::healthy" "/clusters host health"
# per-host counters follow the traffic: 25 HTTP requests (5 of them 4xx, still successes as
# Envoy counts them), the pool's connections plus 3 TCP proxy connections, none active requests
assert_contains "$cl" "app::127.0.0.1:$UA::rq_total::25" "/clusters host rq_total"
assert_contains "$cl" "app::127.0.0.1:$UA::rq_success::25" "/clusters host rq_success"
assert_contains "$cl" "app::127.0.0.1:$UA::rq_active::0" "/clusters host rq_active back to 0"
assert_contains "$cl" "app::127.0.0.1:$UA::rq_error::0" "/clusters host rq_error"
cx=$(grep -oE "app::127.0.0.1:$UA::cx_total::[0-9]+" <<<"$cl" | sed 's/.*:://')
assert_eq "$cx" "$(stat_value cluster.app.upstream_cx_total)" "/clusters host cx_total equals the cluster's"
clj=$(curl -s "$A/clusters?format=json")
assert_eq "$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["cluster_statuses"][0]["name"])' <<<"$clj")" app \
    "/clusters?format=json"
assert_eq "$(python3 -c 'import json,sys; d=json.load(sys.stdin); h=d["cluster_statuses"][0]["host_statuses"][0]; print(next(s["value"] for s in h["stats"] if s["name"]=="rq_total"))' <<<"$clj")" 25 \
    "/clusters?format=json host rq_total"

# /config_dump: JSON with the bootstrap
cd_json=$(curl -s "$A/config_dump")
out=$(python3 -c '
import json, sys
d = json.load(sys.stdin)
bs = next(c for c in d["configs"] if c["@type"].endswith("BootstrapConfigDump"))["bootstrap"]
print(bs["node"]["id"], [l["name"] for l in bs["staticResources"]["listeners"]], bs["staticResources"]["clusters"][0]["name"])
' <<<"$cd_json")
assert_eq "$out" "sidecar~127.0.0.1~admin-test.default~default.svc.cluster.local ['http_in', 'tcp_in'] app" \
    "/config_dump is JSON with the bootstrap's node, listeners and clusters"

# /server_info
si=$(curl -s "$A/server_info")
out=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["state"], d["node"]["id"], d["command_line_options"]["concurrency"])' <<<"$si")
assert_eq "$out" "LIVE sidecar~127.0.0.1~admin-test.default~default.svc.cluster.local 2" "/server_info state, node, concurrency"

# unknown path and wrong method
assert_eq "$(status "$A/no-such-page")" 404 "unknown admin path -> 404"
assert_ne "$(status "$A/quitquitquit")" 200 "GET /quitquitquit is refused (POST only)"
kill -0 "$RS_PID" || fail "ringside exited on GET /quitquitquit"
log "ok: still running after GET /quitquitquit"
