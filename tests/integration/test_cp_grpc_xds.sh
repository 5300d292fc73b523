#!/usr/bin/env bash
# ringside-cp against gRPC's own xDS client (@grpc/grpc-js-xds): a proxyless client resolves
# xds:///greeter:50051 from ringside-cp (LDS api_listener -> CDS -> EDS) and makes real unary
# calls to a grpc-js server registered as a workload in the mesh file; then the mesh file is
# replaced (by rename, as editors do) so the service is backed by another workload, and the same
# client, on the same xDS stream, reaches the new backend (the change was pushed).
source "$(dirname "$0")/lib.sh"
need node
CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP (build first)"
[ -d "$RS_SRC/third_party/npm/node_modules/@grpc/grpc-js-xds" ] || skip "no @grpc/grpc-js-xds"
PEERS=$RS_SRC/tests/peers

read -r PORT_A PORT_B <<<"$(free_ports 2)"
mesh() { # mesh WORKLOAD_BACKING_GREETER
    cat <<Y
services:
  - name: greeter
    namespace: default
    ports: [{port: 50051, protocol: grpc}]
workloads:
  - name: greeter-a
    address: 127.0.0.1
    port: $PORT_A
    labels: {app: greeter, version: a}
    services: [$([ "$1" = a ] && echo greeter)]
  - name: greeter-b
    address: 127.0.0.2
    port: $PORT_B
    labels: {app: greeter, version: b}
    services: [$([ "$1" = b ] && echo greeter)]
Y
}
mesh a >"$TMP/mesh.yaml"

"$CP" --mesh "$TMP/mesh.yaml" --listen 127.0.0.1:0 -l debug >"$TMP/cp.out" 2>"$TMP/cp.err" &
PIDS+=($!)
wait_for "ringside-cp to print its port" 10 grep -q 'listening on' "$TMP/cp.out"
CP_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/cp.out")
log "ringside-cp on port $CP_PORT"

node "$PEERS/cp_grpc_server.js" --addr "127.0.0.1:$PORT_A" --id greeter-a >"$TMP/server-a.out" 2>"$TMP/server-a.err" &
PIDS+=($!)
node "$PEERS/cp_grpc_server.js" --addr "127.0.0.2:$PORT_B" --id greeter-b >"$TMP/server-b.out" 2>"$TMP/server-b.err" &
PIDS+=($!)
wait_for "greeter-a to listen" 10 grep -q listening "$TMP/server-a.out"
wait_for "greeter-b to listen" 10 grep -q listening "$TMP/server-b.out"

cat >"$TMP/bootstrap.json" <<J
{
  "xds_servers": [{"server_uri": "127.0.0.1:$CP_PORT", "channel_creds": [{"type": "insecure"}],
                   "server_features": ["xds_v3"]}],
  "node": {"id": "proxyless-client-1", "locality": {"zone": "test"}}
}
J
GRPC_XDS_BOOTSTRAP=$TMP/bootstrap.json node "$PEERS/cp_grpc_client.js" \
    --target xds:///greeter:50051 --calls 3 --until-from greeter-b >"$TMP/client.out" 2>"$TMP/client.err" &
CLIENT=$!
PIDS+=($CLIENT)
wait_for "the first calls through xDS" 20 grep -q '"ready":true' "$TMP/client.out"
first=$(head -n 3 "$TMP/client.out")
assert_eq "$(grep -c '"from":"greeter-a"' <<<"$first")" 3 "3 calls resolved through ringside-cp reach greeter-a"
assert_contains "$first" '"got":"hello 0"' "the server got the client's request"

cp_log=$(cat "$TMP/cp.err")
assert_contains "$cp_log" "node proxyless-client-1 (no workload, gRPC Node Pure JS)" "connect logged with the node id"
assert_contains "$cp_log" "ACK LDS from proxyless-client-1" "the api_listener was ACKed"
assert_contains "$cp_log" "ACK CDS from proxyless-client-1" "the cluster was ACKed"
assert_contains "$cp_log" "ACK EDS from proxyless-client-1" "the endpoints were ACKed"
assert_not_contains "$cp_log" "NACK" "gRPC's xDS client accepted every resource"

# Replace the file by rename: greeter is now backed by greeter-b only.
mesh b >"$TMP/mesh.yaml.new"
mv "$TMP/mesh.yaml.new" "$TMP/mesh.yaml"
wait_for "the mesh reload" 10 grep -q 'mesh reloaded' "$TMP/cp.err"
code=0
for ((i = 0; i < 200; i++)); do
    kill -0 "$CLIENT" 2>/dev/null || break
    sleep 0.1
done
wait "$CLIENT" || code=$?
assert_eq "$code" 0 "the client reached greeter-b after the push (exit status)"
assert_contains "$(tail -n 1 "$TMP/client.out")" '"from":"greeter-b"' "the last call was answered by greeter-b"
streams=$(grep -c 'ADS sotw stream from' "$TMP/cp.err")
assert_eq "$streams" 1 "the change came on the same xDS stream (one stream opened)"
pushed=$(grep -c 'EDS -> proxyless-client-1' "$TMP/cp.err")
assert_ge "$pushed" 2 "EDS was pushed again after the edit"
log "PASS"
