#!/usr/bin/env bash
# Warming, as Envoy does it, against the grpc-js ADS server. At startup an EDS cluster whose
# ClusterLoadAssignment has not arrived holds initialization: /ready answers 503, LDS is not even
# requested, no listener port opens; the assignment arrives → LIVE and serving. Later, a new EDS
# cluster without its assignment is not used (routes to it answer 503) until the assignment comes,
# and a new listener whose RDS route configuration is not served stays absent (port closed) until
# the route configuration is added.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP LP2 U1 U2 <<<"$(free_ports 5)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
xds_gen --cluster a --listener "http=$LP:routes" --route "routes=/>a"
start_ads_server
{
    printf 'node:\n  id: %s\n' "$XDS_NODE_ID"
    yaml_ads_bootstrap "$ADMIN" "$ADS_PORT" GRPC
} >"$TMP/boot.yaml"
"$RINGSIDE" -c "$TMP/boot.yaml" --concurrency 2 --drain-time-s 5 >"$TMP/ringside.out" 2>"$TMP/ringside.err" &
RS_PID=$!
PIDS+=($RS_PID)
ADMIN_PORT=$ADMIN

# ---- startup: cluster a without its assignment ------------------------------------------------
eds_answered() {
    ads_settled && [ "$(ads_q 'sum(1 for s in S if s["sent"]["type_url"].endswith("Assignment"))')" -ge 1 ]
}
wait_for "the EDS response (without a) to be answered" 15 eds_answered
assert_eq "$(ads_q '[r["resource_names"] for r in R if r["type_url"].endswith("Assignment")][-1]')" "['a']" \
    "EDS subscribed to a"
assert_eq "$(status "http://127.0.0.1:$ADMIN/ready")" 503 "/ready: 503 while a is warming"
assert_eq "$(ads_q 'sum(1 for r in R if r["type_url"].endswith("Listener"))')" 0 \
    "LDS not requested while a cluster is warming"
port_closed "$LP" || fail "listener port open before initialization"
log "ok: no listener before initialization"

ads_push --cluster "a=$U1" --listener "http=$LP:routes" --route "routes=/>a"
wait_for "ringside LIVE once a's assignment arrived" 10 ready_ok
wait_for_port "$LP"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "serving through a"
assert_eq "$(stat_value cluster_manager.eds.init_fetch_timeout)" 0 "no initial fetch timeout involved"

# ---- a new EDS cluster without its assignment is not used ------------------------------------
base=(--cluster "a=$U1" --listener "http=$LP:routes" --route "routes=/c>c" --route "routes=/>a")
ads_push "${base[@]}" --cluster c
assert_eq "$(ads_q '[r["resource_names"] for r in R if r["type_url"].endswith("Assignment")][-1]')" \
    "['a', 'c']" "EDS subscribed to c"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "nothing NACKed"
assert_eq "$(status "http://127.0.0.1:$LP/c")" 503 "route to the warming cluster c: 503"
wait_stat http.http.no_cluster 1 # Envoy's NC: the route's cluster is not (yet) there
assert_eq "$(admin /clusters | grep -c '^c::')" 0 "c not on /clusters while warming"
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "a still serves"
ads_push "${base[@]}" --cluster "c=$U2"
wait_for "/c to serve once c's assignment arrived" 10 eval '[ "$(status "http://127.0.0.1:$LP/c")" == 200 ]'
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/c")" u2 "c serves from its endpoint"

# ---- a new listener whose route configuration is not served stays absent ----------------------
base=("${base[@]}" --cluster "c=$U2" --listener "http2=$LP2:routes2")
ads_push "${base[@]}"
assert_eq "$(ads_q '[r["resource_names"] for r in R if r["type_url"].endswith("RouteConfiguration")][-1]')" \
    "['routes', 'routes2']" "RDS subscribed to routes2"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "the listener is ACKed, not NACKed"
port_closed "$LP2" || fail "listener http2 open before its route configuration arrived"
log "ok: listener http2 absent while its route configuration is missing"
ads_push "${base[@]}" --route "routes2=/>c"
wait_for_port "$LP2"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP2/")" u2 "listener http2 serves once routes2 arrived"
