#!/usr/bin/env bash
# An oversized ADS response (a 5 MiB cluster, over the 4 MiB gRPC message limit) from the grpc-js
# ADS server: rejected without being applied (counted as malformed, or the stream reset), the
# proxy stays healthy and keeps serving its last config, reconnects, and takes the next config
# once the server sends a sane one.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP U1 U2 <<<"$(free_ports 4)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/>a"
start_ads_server
xds_start_ringside GRPC
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "serving"
wait_for "the RDS ACK" 10 ads_settled
mal0=$(stat_value control_plane.rx_malformed)
rec0=$(stat_value control_plane.stream_reconnects)
ok0=$(stat_value cluster_manager.cds.update_success)

# ---- 5 MiB in one cluster: not applied, stream reset --------------------------------------------
xds_gen --cluster "a=$U1" --cluster "b=$U2" --big a=5242880 --listener "http=$LP:routes" --route "routes=/>b"
kill -HUP "$ADS_PID"
rejected() { [ "$(stat_value control_plane.rx_malformed)" -gt "$mal0" ]; }
wait_for "the oversized response to be counted in rx_malformed" 15 rejected
log "rx_malformed $(stat_value control_plane.rx_malformed), stream_reconnects $(stat_value control_plane.stream_reconnects)"
assert_ge "$(ads_q 'max(s["sent"].get("resources", 0) for s in S if s["sent"]["type_url"].endswith(".Cluster"))')" 2 \
    "the server did send the big CDS response"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "no NACK: the message itself is refused"
kill -0 "$RS_PID" || fail "ringside died"
assert_eq "$(status "http://127.0.0.1:$ADMIN/ready")" 200 "admin /ready still 200"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "still serving the last config"
assert_eq "$(stat_value cluster_manager.cds.update_success)" "$ok0" "nothing of it applied"

# ---- a sane config again: the client reconnects and takes it ----------------------------------
xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/>b"
kill -HUP "$ADS_PID"
wait_for "the route pushed after the oversized response" 30 eval '[ "$(header x-upstream-id "http://127.0.0.1:$LP/")" == u2 ]'
wait_for "connected_state 1" 10 eval '[ "$(stat_value control_plane.connected_state)" == 1 ]'
assert_ge "$(stat_value control_plane.stream_reconnects)" $((rec0 + 1)) "the client reconnected"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "no NACK"
