#!/usr/bin/env bash
# ringside-cp's mTLS mesh end to end with three Ringside sidecars: productpage (client), reviews
# and ratings (servers behind `ingress: listeners`), certificates from ringside-cp over SDS on
# ADS, rotated every second. PERMISSIVE first: HTTP and TCP from the client sidecar arrive over
# mutual TLS (the server's access log names the client's SPIFFE ID) while a plaintext client
# reaching the server sidecar directly is served on the plaintext chain (no identity). Then the
# mesh file is edited to STRICT while the sidecars run: the plaintext client is refused (no
# chain), the sidecar-to-sidecar traffic keeps flowing. Under load across rotations no request
# fails (new TCP handshakes each time), and the server presents a new certificate (another serial) after a rotation.
source "$(dirname "$0")/lib.sh"
need openssl
CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP"

# Workload addresses in a random 127.A.B.0/24: the sidecars bind their own addresses.
NET=127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
PP=$NET.10 RV=$NET.11 RT=$NET.12
read -r CP_PORT A_PP A_RV A_RT APP <<<"$(free_ports 5)"
PEER=spiffe://cluster.local/ns/default/sa/productpage
MESH=$TMP/mesh.yaml

write_mesh() { # write_mesh MODE: atomically (ringside-cp must never see half a file)
    cat >"$MESH.tmp" <<Y
options:
  bind: workload
  ingress: listeners
  mtls: $1
  access_log: /dev/stdout
  connect_timeout: 1s
services:
  - name: reviews
    ports: [{port: 9080, protocol: http}]
  - name: ratings
    ports: [{port: 9300, protocol: tcp}]
workloads:
  - {name: productpage-1, address: $PP, service_account: productpage}
  - {name: reviews-1, address: $RV, service_account: reviews, services: [reviews], port: $APP}
  - {name: ratings-1, address: $RT, service_account: ratings, services: [ratings], port: $APP}
Y
    mv "$MESH.tmp" "$MESH"
}
write_mesh PERMISSIVE
"$CP" --mesh "$MESH" --listen "127.0.0.1:$CP_PORT" --ca-dir "$TMP/ca" --rotate-every 1s \
    >"$TMP/cp.out" 2>"$TMP/cp.err" &
PIDS+=($!)
wait_for "ringside-cp to listen" 10 grep -q '^ringside-cp listening' "$TMP/cp.out"

addr_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for u in "reviews $RV" "ratings $RT"; do
    set -- $u # two words: name address
    "$UPSTREAM" --port "$APP" --id "$1" --bind "$2" --body-bytes 16 >"$TMP/app-$1.out" 2>"$TMP/app-$1.err" &
    PIDS+=($!)
    wait_for "application $1 on $2:$APP" 10 addr_open "$2" "$APP"
done

# sidecar NAME ADDR ADMIN: a sidecar configured only over ADS; its access log in $TMP/NAME.out
sidecar() {
    {
        printf 'node:\n  id: sidecar~%s~%s.default~default.svc.cluster.local\n  cluster: %s.default\n' \
            "$2" "$1" "${1%-*}"
        yaml_ads_bootstrap "$3" "$CP_PORT" GRPC
    } >"$TMP/$1.yaml"
    "$RINGSIDE" -c "$TMP/$1.yaml" --concurrency 1 --drain-time-s 1 >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PIDS+=($!)
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:$1/ready" | grep -q LIVE; }
sidecar productpage-1 "$PP" "$A_PP"
sidecar reviews-1 "$RV" "$A_RV"
sidecar ratings-1 "$RT" "$A_RT"
for a in "$A_PP" "$A_RV" "$A_RT"; do wait_for "sidecar with admin $a to be LIVE" 20 ready "$a"; done
# stat_of ADMIN NAME: one stat of the sidecar whose admin port is ADMIN ("" when absent)
stat_of() { curl -s --max-time 5 "http://127.0.0.1:$1/stats" | awk -v n="$2" -F': ' '$1 == n { print $2; exit }'; }
logged() { grep -qE -- "$2" "$TMP/$1.out"; } # logged NAME REGEX: NAME's access log has it

# ---- PERMISSIVE --------------------------------------------------------------------------------

H='Host: reviews:9080'
# the first requests may find a server sidecar still warming its secrets: wait for a 200
wait_for "a request through both sidecars" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -H '$H' http://$PP:9080/)\" = 200 ]"
assert_eq "$(header x-upstream-id "http://$PP:9080/" -H "$H")" reviews "HTTP: productpage's sidecar -> reviews' sidecar -> app"
wait_for "reviews' access log line over mTLS" 5 logged reviews-1 "inbound\|$APP\|\| .* peer=$PEER\$"
assert_eq "$(header x-upstream-id "http://$PP:9300/")" ratings "TCP: productpage's sidecar -> ratings' sidecar -> app"
wait_for "ratings' access log line over mTLS" 5 logged ratings-1 "inbound\|$APP\|\| .* peer=$PEER\$"
assert_ge "$(stat_of "$A_RV" "listener.${RV}_9080.ssl.handshake")" 1 "reviews' inbound listener counted the handshake"
assert_ge "$(stat_of "$A_RT" "listener.${RT}_9300.ssl.handshake")" 1 "ratings' inbound listener counted the handshake"
assert_eq "$(status -H "$H" "http://$RV:9080/plain")" 200 "PERMISSIVE: plaintext straight to reviews' sidecar is served"
wait_for "the plaintext request in reviews' access log" 5 logged reviews-1 '"GET /plain HTTP/1.1" 200 .* peer=-$'
log "ok: the plaintext request has no peer identity"

# ---- rotation under load -------------------------------------------------------------------------

serial() { # the serial of the certificate reviews' sidecar presents
    timeout 5 openssl s_client -connect "$RV:9080" -alpn istio-http/1.1 -CAfile "$TMP/ca/root-cert.pem" \
        </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null
}
s1=$(serial)
assert_match "$s1" '^serial=' "reviews' sidecar presents a certificate from the mesh root"
# HTTP rides the client sidecar's pooled connection; each TCP request is a new connection, so a
# new mutual-TLS handshake with whatever certificates are current at that moment
end=$((SECONDS + 3))
for ((i = 0; i < 1000 && SECONDS < end; i++)); do
    status -H "$H" "http://$PP:9080/"
    echo
    status "http://$PP:9300/"
    echo
done >"$TMP/codes"
assert_ge "$(wc -l <"$TMP/codes")" 20 "requests sent across rotations"
assert_eq "$(grep -vcx 200 "$TMP/codes")" 0 "no request failed across rotations (of $(wc -l <"$TMP/codes"))"
s2=$(serial)
assert_ne "$s2" "$s1" "after a rotation the server presents a new certificate ($s1 -> $s2)"

# ---- live switch to STRICT ----------------------------------------------------------------------

lds_acks() { grep -c "ACK LDS from sidecar~$RV~" "$TMP/cp.err" || true; }
before=$(lds_acks)
write_mesh STRICT
wait_for "reviews' sidecar to ACK the STRICT listeners" 10 bash -c "[ \$(grep -c 'ACK LDS from sidecar~$RV~' '$TMP/cp.err') -gt $before ]"
# the listener is replaced (its chains changed): poll until plaintext finds no chain
refused() { [ "$(status -H "$H" "http://$RV:9080/plain")" = 000 ]; }
wait_for "plaintext to be refused by reviews' sidecar" 10 refused
log "ok: STRICT: plaintext straight to reviews' sidecar is refused"
wait_for "no_filter_chain_match counted" 5 bash -c "[ \"\$(curl -s http://127.0.0.1:$A_RV/stats | awk -F': ' '\$1 == \"listener.${RV}_9080.no_filter_chain_match\" { print \$2 }')\" -ge 1 ]"
assert_eq "$(header x-upstream-id "http://$PP:9080/" -H "$H")" reviews "STRICT: sidecar to sidecar still served"
assert_eq "$(header x-upstream-id "http://$PP:9300/")" ratings "STRICT: TCP sidecar to sidecar still served"
grep -q 'NACK' "$TMP/cp.err" && fail "a sidecar NACKed: $(grep NACK "$TMP/cp.err" | head -3)"
log "ok: no NACK from any sidecar"
log "all checks passed"
