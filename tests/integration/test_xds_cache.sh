#!/usr/bin/env bash
# --xds-cache: a run with the control plane up writes the accepted resources to the cache file;
# a restart with the control plane down serves the cached config (config_from_cache 1, said in
# /server_info); when the control plane comes back its config replaces the cached one.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP U1 U2 <<<"$(free_ports 4)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/>a"
start_ads_server
CACHE=$TMP/xds.cache
config_source() { admin /server_info | python3 -c 'import json, sys; print(json.load(sys.stdin).get("ringside_config_source"))'; }
xds_start_ringside DELTA_GRPC --xds-cache "$CACHE"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "serving from the control plane"
wait_for "the RDS ACK" 10 ads_settled
wait_for "the cache file" 10 test -s "$CACHE"
assert_eq "$(head -c 7 "$CACHE")" RSXDSC1 "cache file header"
assert_eq "$(stat_value control_plane.config_from_cache)" 0 "config_from_cache 0 with the control plane up"
assert_eq "$(config_source)" "xds" "/server_info: ringside_config_source xds"
first=$RS_PID
stop_pid "$first"
kill -0 "$first" 2>/dev/null && fail "ringside did not stop"
kill_ads_server

# ---- restart with the control plane down: the cache serves ----------------------------------
t0=$SECONDS
xds_start_ringside DELTA_GRPC --xds-cache "$CACHE"
log "LIVE from the cache after $((SECONDS - t0)) s"
wait_for_port "$LP"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "serving the cached config"
wait_for "config_from_cache 1" 5 eval '[ "$(stat_value control_plane.config_from_cache)" == 1 ]'
assert_eq "$(stat_value control_plane.connected_state)" 0 "not connected"
assert_eq "$(config_source)" "xds cache" "/server_info: ringside_config_source says the cache"

# ---- the control plane back, with a changed route: it replaces the cached config ----------------
xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/>b"
start_ads_server "$ADS_PORT"
wait_for "the new route from the control plane" 20 eval '[ "$(header x-upstream-id "http://127.0.0.1:$LP/")" == u2 ]'
wait_for "config_from_cache 0" 5 eval '[ "$(stat_value control_plane.config_from_cache)" == 0 ]'
assert_eq "$(config_source)" "xds" "/server_info: ringside_config_source back to xds"
assert_eq "$(ads_q 'sorted(next(r for r in R if r["type_url"].endswith(".Cluster"))["initial_resource_versions"])')" \
    "['a', 'b']" "the resumed stream offers the cached versions"
assert_eq "$(ads_q 'sum(1 for s in S if s["sent"]["type_url"].endswith(".Cluster"))')" 0 \
    "unchanged clusters not resent (the cached versions are the server's)"
