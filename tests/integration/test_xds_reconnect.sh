#!/usr/bin/env bash
# The control plane killed and restarted under load, with set_node_on_first_message_only: the
# proxy keeps its config and serves (no request lost), connected_state follows the stream, the
# client reconnects on its own and resumes (version held, no NACK), and the node is on the first
# request of each stream and only there (istiod rejects a stream whose first request lacks it).
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP U1 U2 <<<"$(free_ports 4)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
xds_gen --cluster "a=$U1,$U2" --listener "http=$LP:routes" --route "routes=/>a"
start_ads_server
ADS_CONFIG_EXTRA='set_node_on_first_message_only: true' xds_start_ringside GRPC
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "serving"
wait_for "connected_state 1" 10 eval '[ "$(stat_value control_plane.connected_state)" == 1 ]'
wait_for "the RDS ACK" 10 ads_settled

node_check() { # LOG WHAT: node on the first request of each stream, nowhere else
    assert_eq "$(ADS_LOG=$1 ads_q 'R[0].get("node", {}).get("id")')" "$XDS_NODE_ID" "$2: node on the first request"
    assert_eq "$(ADS_LOG=$1 ads_q 'sum(1 for r in R[1:] if "node" in r)')" 0 "$2: no node on the later requests"
    assert_ge "$(ADS_LOG=$1 ads_q 'len(R)')" 5 "$2: requests seen"
}
node_check "$ADS_LOG" "first stream"
cds_version=$(ads_q '[s["sent"]["version_info"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')

"$LOADGEN" --url "http://127.0.0.1:$LP/" -c 8 --rate 300 --duration 10 --json >"$TMP/lg.json" 2>"$TMP/lg.err" &
LG=$!
wait_for "load flowing" 10 stat_at_least http.http.downstream_rq_total 50
kill_ads_server
wait_for "connected_state 0" 10 eval '[ "$(stat_value control_plane.connected_state)" == 0 ]'
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "serving with the control plane down"
start_ads_server "$ADS_PORT"
wait_stat control_plane.stream_reconnects 1 15
wait_for "connected_state 1 again" 15 eval '[ "$(stat_value control_plane.connected_state)" == 1 ]'
wait_for "the resumed stream to reach RDS and settle" 15 eval \
    'ads_settled && [ "$(ads_q "sum(1 for r in R if r[\"type_url\"].endswith(\"RouteConfiguration\") and r[\"response_nonce\"])")" -ge 1 ]'
kill -0 $LG 2>/dev/null || fail "the load run ended before the stream resumed: not across the restart"
log "ok: the stream resumed while the load ran"
wait $LG || fail "loadgen failed: $(cat "$TMP/lg.err")"
loadgen_ok "$TMP/lg.json"

node_check "$ADS_LOG" "stream after the restart"
assert_eq "$(ads_q 'next(r for r in R if r["type_url"].endswith(".Cluster"))["version_info"]')" "$cds_version" \
    "the resumed stream asks with the CDS version held"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "no NACK after the resume"
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "serving after the resume"
assert_ge "$(stat_value cluster_manager.cds.update_failure)" 1 "the stream failure counted"
