#!/usr/bin/env bash
# The control plane ends every stream with an error status after its first request (istiod does
# this with INVALID_ARGUMENT to a node it refuses): Ringside stays INITIALIZING, sends the node on
# the first request of every new stream, retries with backoff (no hot loop), and comes up LIVE
# once the server accepts it.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP U1 <<<"$(free_ports 3)"
start_upstream u1 "$U1"
res=(--cluster "a=$U1" --listener "http=$LP:routes" --route "routes=/>a")
xds_gen "${res[@]}" --fail "$XDS_NODE_ID=3=node refused by the test"
start_ads_server
{
    printf 'node:\n  id: %s\n' "$XDS_NODE_ID"
    yaml_ads_bootstrap "$ADMIN" "$ADS_PORT" DELTA_GRPC 'set_node_on_first_message_only: true'
} >"$TMP/boot.yaml"
"$RINGSIDE" -c "$TMP/boot.yaml" --concurrency 2 --drain-time-s 5 >"$TMP/ringside.out" 2>"$TMP/ringside.err" &
RS_PID=$!
PIDS+=($RS_PID)
ADMIN_PORT=$ADMIN

streams() { ads_q 'len(set(r["stream"] for r in R))'; }
wait_for "three refused streams" 20 eval '[ "$(streams)" -ge 3 ]'
assert_contains "$(cat "$TMP/ringside.err")" "INVALID_ARGUMENT node refused by the test" "the status logged"
assert_eq "$(status "http://127.0.0.1:$ADMIN/ready")" 503 "/ready: 503 while refused"
first_ids='[next(r for r in R if r["stream"] == s).get("node", {}).get("id") for s in sorted(set(q["stream"] for q in R))]'
assert_eq "$(ads_q "set($first_ids)")" "{'$XDS_NODE_ID'}" "the node on the first request of every stream"
port_closed "$LP" || fail "listener open without config"

xds_gen "${res[@]}"
kill -HUP "$ADS_PID"
wait_for "ringside LIVE once accepted" 30 ready_ok
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/")" u1 "serving"
n=$(streams)
assert_le "$n" 12 "streams opened in all ($n): backoff, not a hot loop"
assert_ge "$(stat_value control_plane.stream_reconnects)" 2 "reconnects counted"
wait_for "connected_state 1" 10 eval '[ "$(stat_value control_plane.connected_state)" == 1 ]'
