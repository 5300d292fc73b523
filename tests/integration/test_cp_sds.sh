#!/usr/bin/env bash
# ringside-cp as the mesh CA, seen by an SDS client written with grpc-js on Envoy's .proto files
# (tests/peers/cp_sds_client.js) and checked with the openssl CLI: the root is created on first
# start (key 0600) and reused on the next; a workload's node subscribing to `default` and
# `ROOTCA` over ADS gets its certificate chain, key and the root, the chain verifies against the
# root (openssl verify) with the SPIFFE URI SAN of the mesh's trust domain, namespace and service
# account; with --rotate-every 1s a new `default` version arrives within ~2 s, also valid; SDS's
# own service on --sds-uds (Istio's workload socket) serves the same; a node that is no workload
# gets ROOTCA only; a certificate from another root does not verify.
source "$(dirname "$0")/lib.sh"
need node
need openssl
CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP (build first)"
CLIENT=$RS_SRC/tests/peers/cp_sds_client.js
NODE_ID='sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local'
SPIFFE='URI:spiffe://ringside.test/ns/default/sa/bookinfo-productpage'
WAIT_MS=3000 # a push within ~2 s of a 1 s rotation, with slack
[ "$RS_SANITIZED" = 1 ] && WAIT_MS=6000

cat >"$TMP/mesh.yaml" <<'EOF'
options:
  trust_domain: ringside.test
  cert_ttl: 1h
services:
  - name: reviews
    ports: [{port: 9080}]
workloads:
  - {name: productpage-1, address: 127.0.0.10, service_account: bookinfo-productpage}
  - {name: reviews-v1, address: 127.0.0.11, services: [reviews]}
EOF

start_cp() {
    : >"$TMP/cp.out" # now, not in the background job: a restart must not find the last run's port
    "$CP" --mesh "$TMP/mesh.yaml" --listen 127.0.0.1:0 --ca-dir "$TMP/ca" --sds-uds "$TMP/sds.sock" \
        --rotate-every 1s -l debug >"$TMP/cp.out" 2>>"$TMP/cp.err" &
    CP_PID=$!
    PIDS+=($CP_PID)
    wait_for "ringside-cp to print its port" 10 grep -q 'listening on' "$TMP/cp.out"
    CP_PORT=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/cp.out")
    log "ringside-cp on port $CP_PORT"
}

# field FILE N KEY: KEY of the JSON line whose n is N.
field() {
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if str(o.get("n")) == sys.argv[2]: print(o.get(sys.argv[3]) if not isinstance(o.get(sys.argv[3]), list) else " ".join(o[sys.argv[3]]))' "$@"
}

san() { openssl x509 -in "$1" -noout -ext subjectAltName | tail -n +2 | tr -d ' '; }

start_cp
assert_eq "$(stat -c %a "$TMP/ca/root-key.pem")" 600 "the root key is created 0600"
assert_eq "$(stat -c %a "$TMP/ca")" 700 "the CA directory is created 0700"
assert_contains "$(openssl x509 -in "$TMP/ca/root-cert.pem" -noout -text)" "CA:TRUE" "the root is a CA"
assert_contains "$(openssl x509 -in "$TMP/ca/root-cert.pem" -noout -text)" "prime256v1" "the root key is P-256"
assert_contains "$(cat "$TMP/cp.err")" "mesh CA created in $TMP/ca" "first start creates the root"

# ---- over ADS, with rotation ------------------------------------------------------------------
mkdir "$TMP/ads"
node "$CLIENT" --target "127.0.0.1:$CP_PORT" --service ads --out "$TMP/ads" --node "$NODE_ID" \
    --pushes 1 --wait-ms "$WAIT_MS" >"$TMP/ads.out" 2>"$TMP/ads.err" ||
    fail "ADS SDS client: $(cat "$TMP/ads.out" "$TMP/ads.err")"
assert_eq "$(field "$TMP/ads.out" 0 names)" "ROOTCA default" "ADS: default and ROOTCA, as subscribed"
assert_eq "$(field "$TMP/ads.out" 1 names)" "ROOTCA default" "ADS push: both again (SotW sends the set)"
v0=$(field "$TMP/ads.out" 0 version)
v1=$(field "$TMP/ads.out" 1 version)
assert_ne "$v1" "$v0" "the rotated secret comes with a new version"
assert_ne "$(cat "$TMP/ads/cert-1.pem")" "$(cat "$TMP/ads/cert-0.pem")" "the rotated certificate is a new one"
cmp -s "$TMP/ads/root.pem" "$TMP/ca/root-cert.pem" || fail "ROOTCA is not the CA's root certificate"
for i in 0 1; do
    assert_contains "$(openssl verify -CAfile "$TMP/ads/root.pem" "$TMP/ads/cert-$i.pem" 2>&1)" \
        "cert-$i.pem: OK" "certificate $i verifies against ROOTCA (openssl verify)"
    assert_eq "$(san "$TMP/ads/cert-$i.pem")" "$SPIFFE" "certificate $i: the SPIFFE URI SAN"
    assert_eq "$(openssl x509 -in "$TMP/ads/cert-$i.pem" -noout -pubkey)" \
        "$(openssl pkey -in "$TMP/ads/key-$i.pem" -pubout)" "certificate $i: its key is the one served"
done
text=$(openssl x509 -in "$TMP/ads/cert-0.pem" -noout -text)
assert_contains "$text" "TLS Web Server Authentication, TLS Web Client Authentication" "EKU serverAuth+clientAuth"
assert_contains "$text" "Digital Signature, Key Encipherment" "key usage digitalSignature+keyEncipherment"
# A validity of the mesh's cert_ttl (1h) plus the minute backdated.
nb=$(date -d "$(openssl x509 -in "$TMP/ads/cert-0.pem" -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in "$TMP/ads/cert-0.pem" -noout -enddate | cut -d= -f2)" +%s)
assert_eq "$((na - nb))" 3660 "validity: cert_ttl + 60 s backdated"
assert_between "$(($(date +%s) - nb))" 55 120 "not-before about a minute back"

# A certificate from another root does not verify against ROOTCA (the check can fail).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/other.key" \
    -out "$TMP/other.pem" -subj /CN=other -days 1 2>/dev/null || fail "openssl req failed"
assert_not_contains "$(openssl verify -CAfile "$TMP/ads/root.pem" "$TMP/other.pem" 2>&1)" ": OK" \
    "a certificate from another root is refused"

# ---- SDS alone on the workload socket ----------------------------------------------------------
assert_eq "$(stat -c %a "$TMP/sds.sock")" 600 "the SDS socket is the owner's only"
mkdir "$TMP/uds"
node "$CLIENT" --target "unix:$TMP/sds.sock" --service sds --out "$TMP/uds" --node "$NODE_ID" \
    --pushes 1 --wait-ms "$WAIT_MS" >"$TMP/uds.out" 2>"$TMP/uds.err" ||
    fail "SDS-socket client: $(cat "$TMP/uds.out" "$TMP/uds.err")"
assert_eq "$(field "$TMP/uds.out" 0 names)" "ROOTCA default" "SDS socket: default and ROOTCA"
assert_contains "$(openssl verify -CAfile "$TMP/ca/root-cert.pem" "$TMP/uds/cert-1.pem" 2>&1)" \
    "cert-1.pem: OK" "SDS socket: the rotated certificate verifies"
assert_eq "$(san "$TMP/uds/cert-1.pem")" "$SPIFFE" "SDS socket: the SPIFFE URI SAN"

# ---- a node that is no mesh workload: the root only ---------------------------------------------
mkdir "$TMP/stranger"
node "$CLIENT" --target "127.0.0.1:$CP_PORT" --service ads --out "$TMP/stranger" \
    --node 'sidecar~127.0.0.99~x-1.default~default.svc.cluster.local' --pushes 0 \
    >"$TMP/stranger.out" 2>"$TMP/stranger.err" || fail "stranger client: $(cat "$TMP/stranger.out")"
assert_eq "$(field "$TMP/stranger.out" 0 names)" "ROOTCA" "a node that is no workload gets no certificate"

# ---- restart: the same root ---------------------------------------------------------------------
stop_pid "$CP_PID"
assert_contains "$(cat "$TMP/cp.err")" "certificates:" "totals logged at exit"
start_cp
assert_contains "$(cat "$TMP/cp.err")" "mesh CA loaded from $TMP/ca" "second start loads the root"
mkdir "$TMP/again"
node "$CLIENT" --target "127.0.0.1:$CP_PORT" --service ads --out "$TMP/again" --node "$NODE_ID" \
    --pushes 0 >"$TMP/again.out" 2>"$TMP/again.err" || fail "client after restart: $(cat "$TMP/again.out")"
cmp -s "$TMP/again/root.pem" "$TMP/ads/root.pem" || fail "the root changed across a restart"
assert_contains "$(openssl verify -CAfile "$TMP/ads/root.pem" "$TMP/again/cert-0.pem" 2>&1)" \
    "cert-0.pem: OK" "after a restart, certificates chain to the same root"
log "PASS"
