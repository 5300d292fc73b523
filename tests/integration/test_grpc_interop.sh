#!/usr/bin/env bash
# gRPC interop between Ringside's C gRPC (xds/grpc.h, driven by tests/unit/xds/test_grpc_peer.c)
# and grpc-js with Envoy's real ads.proto (tests/peers/): the C client against ads_server.js over
# TCP and a Unix socket (round trip with ACK, a pushed update, a status from the server's
# trailers), and the grpc-js client against the C server (response, status, Unix socket).
source "$(dirname "$0")/lib.sh"
need node
PEER=$RS_BUILD/tests/unit_xds_test_grpc_peer
[ -x "$PEER" ] || skip "no $PEER (build first)"
PEERS=$RS_SRC/tests/peers
CDS=type.googleapis.com/envoy.config.cluster.v3.Cluster
EDS=type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment

cluster() { printf '{"@type": "%s", "name": "%s", "connectTimeout": "1s"}' "$CDS" "$1"; }
write_resources() { # write_resources VERSION CLUSTER...
    local v=$1 sep="" c
    shift
    {
        printf '{"%s": {"version": "%s", "resources": [' "$CDS" "$v"
        for c in "$@"; do printf '%s%s' "$sep" "$(cluster "$c")"; sep=,; done
        printf ']},\n "%s": {"version": "1", "resources": []},\n' "$EDS"
        printf ' "_fail": {"node_id": "bad-node", "code": 7, "message": "node bad-node refused"}}\n'
    } >"$TMP/resources.json.new"
    mv "$TMP/resources.json.new" "$TMP/resources.json"
}

listening_port() { sed -n 's/^listening \([0-9]*\)$/\1/p' "$1"; }
has_line() { grep -q -- "$2" "$1"; }

# ---- C client against the grpc-js ADS server -------------------------------------------------
write_resources 1 alpha beta
node "$PEERS/ads_server.js" --resources "$TMP/resources.json" --log "$TMP/ads.log" \
    --uds "$TMP/ads.sock" --control "$TMP/resources.json" >"$TMP/ads_server.out" 2>"$TMP/ads_server.err" &
PIDS+=($!)
wait_for "ads_server.js to listen" 20 has_line "$TMP/ads_server.out" '^listening [0-9]'
ADS_PORT=$(listening_port "$TMP/ads_server.out")
log "ads_server.js on port $ADS_PORT"

"$PEER" client "127.0.0.1:$ADS_PORT" "$CDS" sidecar~127.0.0.1~a.ns~ns.svc.cluster.local \
    >"$TMP/c1.out" 2>"$TMP/c1.err" || fail "C client round trip: $(cat "$TMP/c1.out")"
grep -q "^response version_info=1 nonce=[0-9]* type_url=$CDS resources=2 names=alpha,beta$" "$TMP/c1.out" ||
    fail "C client did not get both clusters: $(cat "$TMP/c1.out")"
grep -q '^status 0 ' "$TMP/c1.out" || fail "C client status: $(tail -1 "$TMP/c1.out")"
# The server saw our node on the first request, and an ACK (its nonce, version 1, no error).
python3 - "$TMP/ads.log" <<'EOF' || fail "ads_server.js log does not show request + ACK"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1]) if '"kind"' in l]
first, ack = reqs[0], reqs[1]
assert first["node"]["id"] == "sidecar~127.0.0.1~a.ns~ns.svc.cluster.local", first
assert first["response_nonce"] == "" and first["version_info"] == "", first
assert ack["response_nonce"] != "" and ack["version_info"] == "1" and "error_detail" not in ack, ack
assert "node" not in ack, ack
EOF
log "ok: C client round trip with ACK over TCP"

# Unix socket, two responses: the second is pushed after the resources change.
"$PEER" client "unix:$TMP/ads.sock" "$CDS" uds-node 2 >"$TMP/c2.out" 2>"$TMP/c2.err" &
C2=$!
PIDS+=($C2)
wait_for "first response over the Unix socket" 10 has_line "$TMP/c2.out" '^response version_info=1 '
write_resources 2 alpha gamma
wait_for "pushed update" 10 has_line "$TMP/c2.out" '^response version_info=2 .*names=alpha,gamma$'
wait_for "client exit" 10 has_line "$TMP/c2.out" '^status 0 '
wait $C2 || fail "C client over Unix socket exited non-zero: $(cat "$TMP/c2.out")"
log "ok: C client over a Unix socket, update pushed on change"

# The server ends the stream with an error status: it arrives from the trailers.
if "$PEER" client "127.0.0.1:$ADS_PORT" "$CDS" bad-node >"$TMP/c3.out" 2>"$TMP/c3.err"; then
    fail "C client should fail for bad-node"
fi
grep -q '^status 7 node bad-node refused$' "$TMP/c3.out" || fail "status from trailers: $(cat "$TMP/c3.out")"
log "ok: PERMISSION_DENIED and its message from grpc-js's trailers"

# A server that is not there: UNAVAILABLE.
DEAD_PORT=$(free_ports 1)
"$PEER" client "127.0.0.1:$DEAD_PORT" "$CDS" n >"$TMP/c4.out" 2>&1 && fail "connect to nothing succeeded"
grep -q '^status 14 connect' "$TMP/c4.out" || fail "expected UNAVAILABLE: $(cat "$TMP/c4.out")"
log "ok: UNAVAILABLE when nothing listens"

# ---- grpc-js client against the C server -----------------------------------------------------
"$PEER" server "$TMP/c.sock" >"$TMP/cserver.out" 2>"$TMP/cserver.err" &
CSERVER=$!
PIDS+=($CSERVER)
wait_for "C server to listen" 10 has_line "$TMP/cserver.out" '^listening [0-9]'
C_PORT=$(listening_port "$TMP/cserver.out")

node "$PEERS/ads_client.js" --target "127.0.0.1:$C_PORT" --ack 1 \
    --request "{\"node\": {\"id\": \"js-node\"}, \"type_url\": \"$CDS\", \"resource_names\": [\"x\", \"y\"]}" \
    >"$TMP/js1.out" 2>"$TMP/js1.err" || fail "grpc-js client against the C server: $(cat "$TMP/js1.out" "$TMP/js1.err")"
python3 - "$TMP/js1.out" <<'EOF' || fail "grpc-js client output: $(cat "$TMP/js1.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
resp, status = lines[0], lines[-1]
assert resp["version_info"] == "v1" and resp["nonce"] == "n1", resp
assert [r["name"] for r in resp["resources"]] == ["x", "y"], resp
assert all(r["@type"].endswith("envoy.config.cluster.v3.Cluster") for r in resp["resources"])
assert status == {"status": 0, "details": ""} or status["status"] == 0, status
EOF
grep -q '^request node=js-node type_url=.* response_nonce= names=2$' "$TMP/cserver.out" ||
    fail "C server did not log the request"
wait_for "C server to log the ACK" 5 has_line "$TMP/cserver.out" 'version_info=v1 response_nonce=n1'
grep -q 'user-agent=grpc-node-js' "$TMP/cserver.out" || fail "no grpc-js user-agent seen"
log "ok: grpc-js client against the C server (response, ACK, OK status)"

node "$PEERS/ads_client.js" --target "unix:$TMP/c.sock" \
    --request "{\"node\": {\"id\": \"fail\"}, \"type_url\": \"$CDS\"}" >"$TMP/js2.out" 2>"$TMP/js2.err" &&
    fail "grpc-js client should see an error"
grep -q '{"status":9,"details":"node fail refused"}' "$TMP/js2.out" ||
    fail "grpc-js status over Unix socket: $(cat "$TMP/js2.out")"
log "ok: grpc-js client over the C server's Unix socket gets FAILED_PRECONDITION from trailers"

stop_pid $CSERVER
grep -q '^stopped' "$TMP/cserver.out" || fail "C server did not stop cleanly on SIGTERM"
[ -e "$TMP/c.sock" ] && fail "C server left its Unix socket behind"
log "PASS"
