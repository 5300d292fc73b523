#!/usr/bin/env bash
# ringside-cp's ADS protocol, seen by an Envoy-like client written with grpc-js and protobufjs on
# Envoy's own .proto files (tests/peers/cp_ads_client.js): state of the world and delta in
# Envoy's startup order with Istio's resource names, ACKs, a NACK logged with the resource names,
# pushes after the mesh file changes (removals in delta), resume with initial_resource_versions,
# a first request without node or with a non-Istio node id rejected with INVALID_ARGUMENT, an
# invalid mesh file rejected with the previous mesh kept, the Unix socket, and a clean SIGTERM.
source "$(dirname "$0")/lib.sh"
need node
CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP (build first)"
CLIENT=$RS_SRC/tests/peers/cp_ads_client.js
NODE_ID='sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local'

cp "$RS_SRC/examples/mesh.yaml" "$TMP/mesh.yaml"
"$CP" --mesh "$TMP/mesh.yaml" --listen 127.0.0.1:0 --uds "$TMP/xds.sock" -l debug \
    >"$TMP/cp.out" 2>"$TMP/cp.err" &
CP_PID=$!
PIDS+=($CP_PID)
wait_for "ringside-cp to print its port" 10 grep -q 'listening on' "$TMP/cp.out"
CP_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/cp.out")
log "ringside-cp on port $CP_PORT"

# jq_line FILE KEY VALUE EXPR: a python expression over the first JSON line whose KEY is VALUE.
jq_line() {
    python3 - "$@" <<'PY'
import json, sys
path, key, val, expr = sys.argv[1:5]
for line in open(path):
    o = json.loads(line)
    if str(o.get(key)) == val:
        print(eval(expr, {"o": o}))
        break
PY
}

# edit_mesh: a change productpage-1 sees: subset v2 becomes v3 (its clusters change names).
edit_mesh() {
    sed 's/{name: v2, labels: {version: v2}}/{name: v3, labels: {version: v3}}/; s/subset: v2/subset: v3/g' \
        "$RS_SRC/examples/mesh.yaml" >"$TMP/mesh.new"
    mv "$TMP/mesh.new" "$TMP/mesh.yaml"
}

# ---- state of the world ----------------------------------------------------------------------
node "$CLIENT" --target "127.0.0.1:$CP_PORT" --scenario sotw --node "$NODE_ID" >"$TMP/sotw.out" 2>"$TMP/sotw.err" &
C=$!
wait_for "the SotW client to finish startup" 15 grep -q '"ready"' "$TMP/sotw.out"
cds=$(jq_line "$TMP/sotw.out" type CDS '" ".join(o["names"])')
assert_contains "$cds" 'outbound|9080||reviews.default.svc.cluster.local' "CDS: the whole-service cluster"
assert_contains "$cds" 'outbound|9080|v1|reviews.default.svc.cluster.local' "CDS: the v1 subset cluster"
assert_contains "$cds" 'outbound|5432||db.default.svc.cluster.local' "CDS: the tcp service cluster"
assert_contains "$cds" 'PassthroughCluster' "CDS: PassthroughCluster"
assert_contains "$cds" 'BlackHoleCluster' "CDS: BlackHoleCluster"
eds=$(jq_line "$TMP/sotw.out" type EDS 'len(o["names"])')
assert_eq "$eds" 5 "EDS: one ClusterLoadAssignment per EDS cluster"
lds=$(jq_line "$TMP/sotw.out" type LDS '" ".join(o["names"])')
assert_contains "$lds" 'virtualOutbound' "LDS: virtualOutbound"
assert_contains "$lds" 'virtualInbound' "LDS: virtualInbound"
assert_contains "$lds" '127.0.0.10_9080' "LDS: the outbound listener for 9080 (bound to the workload's address)"
assert_not_contains "$lds" 'reviews:9080' "LDS wildcard: no proxyless api_listeners for a sidecar"
rds=$(jq_line "$TMP/sotw.out" type RDS '" ".join(sorted(o["names"]))')
assert_eq "$rds" "50051 9080" "RDS: route configurations named by port"
v1=$(jq_line "$TMP/sotw.out" type CDS 'o["version"]')
assert_match "$v1" '^[0-9a-f]{16}$' "SotW version_info is a hash"
wait_for "the NACK in the log" 10 grep -q 'NACK RDS' "$TMP/cp.err"
nack=$(grep 'NACK RDS' "$TMP/cp.err")
assert_contains "$nack" "$NODE_ID" "NACK logged with the node id"
assert_contains "$nack" "resources 50051,9080" "NACK logged with the resource names"
assert_contains "$nack" "test NACK: route rejected on purpose" "NACK logged with the client's message"
for t in CDS EDS LDS; do
    assert_contains "$(cat "$TMP/cp.err")" "ACK $t from $NODE_ID" "$t ACK logged"
done

edit_mesh
wait "$C" || fail "SotW client failed: $(cat "$TMP/sotw.out" "$TMP/sotw.err")"
push=$(jq_line "$TMP/sotw.out" push CDS '" ".join(o["names"])')
assert_contains "$push" 'outbound|9080|v3|reviews.default.svc.cluster.local' "SotW push: the new subset's cluster"
assert_not_contains "$push" '|v2|' "SotW push: the whole set, without the removed subset"
v2=$(jq_line "$TMP/sotw.out" push CDS 'o["version"]')
assert_ne "$v2" "$v1" "SotW push: a new version_info"
assert_contains "$(cat "$TMP/cp.err")" "stale nonce stale-nonce" "a stale nonce is ignored (logged at debug)"

# ---- delta -----------------------------------------------------------------------------------
cp "$RS_SRC/examples/mesh.yaml" "$TMP/mesh.new" && mv "$TMP/mesh.new" "$TMP/mesh.yaml"
reloaded_twice() { [ "$(grep -c 'mesh reloaded' "$TMP/cp.err")" -ge 2 ]; }
wait_for "the mesh to be reloaded twice" 10 reloaded_twice
node "$CLIENT" --target "unix:$TMP/xds.sock" --scenario delta --node "$NODE_ID" >"$TMP/delta.out" 2>"$TMP/delta.err" &
C=$!
wait_for "the delta client to finish startup" 15 grep -q '"ready"' "$TMP/delta.out"
dcds=$(jq_line "$TMP/delta.out" type CDS '" ".join(o["names"])')
assert_contains "$dcds" 'outbound|9080|v2|reviews.default.svc.cluster.local' "delta over the Unix socket: CDS"
dver=$(jq_line "$TMP/delta.out" type CDS 'o["versions"]["PassthroughCluster"]')
assert_match "$dver" '^[0-9a-f]{16}$' "delta: each resource carries its version"
assert_eq "$(jq_line "$TMP/delta.out" type RDS 'len(o["names"])')" 2 "delta: RDS"
two_nacks() { [ "$(grep -c 'NACK RDS' "$TMP/cp.err")" -ge 2 ]; }
wait_for "the delta NACK in the log" 10 two_nacks
edit_mesh
wait "$C" || fail "delta client failed: $(cat "$TMP/delta.out" "$TMP/delta.err")"
assert_eq "$(jq_line "$TMP/delta.out" push CDS '" ".join(o["removed"])')" \
    'outbound|9080|v2|reviews.default.svc.cluster.local' "delta push: the removed subset's cluster in removed_resources"
assert_eq "$(jq_line "$TMP/delta.out" push CDS '" ".join(o["names"])')" \
    'outbound|9080|v3|reviews.default.svc.cluster.local' \
    "delta push: only the cluster that changed (the unchanged ones are not resent)"

out=$(node "$CLIENT" --target "127.0.0.1:$CP_PORT" --scenario delta-resume --node "$NODE_ID")
assert_contains "$out" '"resumed":[]' "delta resume: nothing resent for the versions the client had"
assert_contains "$out" '"removed":["outbound|1||gone.default.svc.cluster.local"]' "delta resume: an unknown resource it had is removed"

# ---- node checks -----------------------------------------------------------------------------
out=$(node "$CLIENT" --target "127.0.0.1:$CP_PORT" --scenario no-node)
assert_contains "$out" '"status":3' "no node: INVALID_ARGUMENT"
assert_contains "$out" 'must carry a node' "no node: the reason"
out=$(node "$CLIENT" --target "127.0.0.1:$CP_PORT" --scenario bad-id)
assert_contains "$out" '"status":3' "non-Istio node id: INVALID_ARGUMENT"
assert_contains "$out" 'is not sidecar~<IP>~' "non-Istio node id: the reason"

# ---- an invalid mesh file is rejected, the previous one kept ---------------------------------
reloads=$(grep -c 'mesh reloaded' "$TMP/cp.err")
sed 's/protocol: tcp/protocol: udp/' "$RS_SRC/examples/mesh.yaml" >"$TMP/mesh.new"
mv "$TMP/mesh.new" "$TMP/mesh.yaml"
wait_for "the rejection" 10 grep -q 'mesh file rejected' "$TMP/cp.err"
rej=$(grep 'mesh file rejected' "$TMP/cp.err")
assert_match "$rej" 'mesh.yaml:[0-9]+: services\[1\]\.ports\[0\]\.protocol: must be http, tcp or grpc \(got "udp"\)' \
    "the error names the file, line and field"
assert_eq "$(grep -c 'mesh reloaded' "$TMP/cp.err")" "$reloads" "no reload happened"
out=$(node "$CLIENT" --target "127.0.0.1:$CP_PORT" --scenario delta-resume --node "$NODE_ID")
assert_contains "$out" '"first":7' "still serving the previous mesh (7 clusters for productpage-1)"

# ---- --dump: what a node gets, offline ---------------------------------------------------------
dump=$("$CP" --mesh "$RS_SRC/examples/mesh.yaml" --dump 'sidecar~127.0.0.11~reviews-v1.default~default.svc.cluster.local')
inbound=$(python3 -c 'import json,sys; d=json.load(sys.stdin); l=[x for x in d["LDS"] if x["name"]=="virtualInbound"][0]; print(l["filterChains"][0]["filterChainMatch"]["destinationPort"])' <<<"$dump")
assert_eq "$inbound" 19080 "--dump: reviews-v1's virtualInbound matches its own port"

# ---- SIGTERM ---------------------------------------------------------------------------------
kill -TERM "$CP_PID"
code=0
for ((i = 0; i < 100; i++)); do kill -0 "$CP_PID" 2>/dev/null || break; sleep 0.05; done
wait "$CP_PID" || code=$?
assert_eq "$code" 0 "ringside-cp exits 0 on SIGTERM"
[ ! -e "$TMP/xds.sock" ] || fail "the Unix socket was left behind"
log "ok: the Unix socket was removed"
log "PASS"
