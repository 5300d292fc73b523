#!/usr/bin/env bash
# `make run`: a short tour of Ringside as a mesh sidecar on loopback. ringside-cp (the reference
# control plane and the mesh's certificate authority) serves examples/mesh-demo.yaml over ADS to
# four Ringside sidecars, one per workload: productpage (the client), reviews v1 and v2 and a tcp
# database, each on its own loopback address in front of its application (a plain upstream). Each
# sidecar starts from a bootstrap holding only the control-plane cluster
# (examples/sidecar-productpage.yaml, rewritten per workload) and gets its listeners, routes,
# clusters, endpoints and its SPIFFE certificate from ringside-cp.
#
# Without iptables capture, a server's sidecar is reached through an inbound listener on its
# workload's address and the service port (the mesh's `ingress: listeners`, Istio's Sidecar
# ingress with captureMode NONE), which is what the service's endpoints point at. With
# `mtls: STRICT` the hop between two sidecars is mutual TLS: the client sidecar presents
# spiffe://cluster.local/ns/default/sa/productpage, the server sidecar its own identity, and a
# server accepts nothing else.
#
# The tour sends HTTP through productpage's sidecar (host routing, the weighted split, the header
# route), bytes through the tcp service and a short load, then shows the mutual TLS: the server
# sidecars' access log lines with the client's SPIFFE ID, the x-forwarded-client-cert the
# application receives (a forged one sent by the client dropped), their listener ssl.* stats, openssl
# s_client against a server sidecar (its SPIFFE certificate; no client certificate: refused, a
# certificate from the mesh root: served) and a plaintext client refused. Then it edits the mesh
# file while everything runs and shows the new split applied, prints xDS and traffic stats and
# /clusters, and stops everything with SIGTERM. Exits 0 only if every step worked and every
# process exited 0.
#
# usage: scripts/run-demo.sh [BUILD_DIR]     (default: build)
#        RS_DEMO_MTLS=0 scripts/run-demo.sh  the same mesh with mtls: false (plaintext hops)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RINGSIDE=$BUILD/sidecar/ringside
CP=$BUILD/xds/cp/ringside-cp
UPSTREAM_BIN=$BUILD/bench/upstream
LOADGEN=$BUILD/bench/loadgen
MESH_EXAMPLE=$SRC/examples/mesh-demo.yaml
BOOT_EXAMPLE=$SRC/examples/sidecar-productpage.yaml
READY_DEADLINE_S=${RS_DEMO_READY_S:-15}
STOP_DEADLINE_S=${RS_DEMO_STOP_S:-15}
MTLS=${RS_DEMO_MTLS:-1}

# --- helpers ------------------------------------------------------------------------------------

heading() { printf '\n== %s ==\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# Ports, liveness and bounded polling are the benchmark harness's helpers (free_port,
# port_in_use, alive, gone, poll). Ringside binds its listeners with SO_REUSEPORT, so a second
# ringside on a taken port would share it silently rather than fail: ports are checked here.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../bench/lib.sh"
die() { # after the source: this script's own prefix
    printf 'run-demo: error: %s\n' "$*" >&2
    exit 1
}

# choose_port VAR PORT: the example's PORT if free, else a free one.
choose_port() {
    if port_in_use "$2" || [[ $taken_ports == *" $2 "* ]]; then
        free_port "$1"
    else
        taken_ports+="$2 "
        printf -v "$1" '%s' "$2"
    fi
}
# addr_in_use ADDR: something listens on ADDR (any port).
addr_in_use() { ss -Hltn "( src = $1 )" 2>/dev/null | grep -q .; }
addr_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# --- cleanup: whatever happens, no child outlives the script -------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringside-demo.XXXXXX")
declare -A rs_pid=()
cp_pid=""
up_pids=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${rs_pid[@]}" $cp_pid $up_pids; do
        [[ -n $pid ]] || continue
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            poll 3 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
    release_ports
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for bin in "$RINGSIDE" "$CP" "$UPSTREAM_BIN"; do
    [[ -x $bin ]] || die "$bin not found: run 'make build' first"
done
command -v curl >/dev/null || die "curl is required"
command -v ss >/dev/null || die "ss (iproute2) is required"
if ((MTLS)); then command -v openssl >/dev/null || die "openssl is required (or RS_DEMO_MTLS=0)"; fi

# --- addresses, ports, config --------------------------------------------------------------------

heading "Setup"
# The mesh's workloads live on 127.0.0.10-13 (all of 127/8 is loopback); when something already
# listens there, the demo moves the whole mesh to a free 127.A.B.0/24.
net=127.0.0
tries=0
while addr_in_use $net.10 || addr_in_use $net.11 || addr_in_use $net.12 || addr_in_use $net.13; do
    ((tries++ < 20)) || die "no free 127.A.B.10-13 addresses found"
    net=127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
done
cp_port=""
choose_port cp_port 15010
PP=$net.10 V1=$net.11 V2=$net.12 DB=$net.13
# name, address, app label (the node's cluster), for each workload of the mesh
WORKLOADS=("productpage-1 $PP productpage" "reviews-v1 $V1 reviews" "reviews-v2 $V2 reviews"
    "mongodb-1 $DB mongodb")
MESH=$tmp/mesh.yaml
CA=$tmp/ca
sed "s/127\.0\.0\./$net./" "$MESH_EXAMPLE" >"$MESH"
((MTLS)) || sed -i 's/^  mtls: STRICT .*/  mtls: false/' "$MESH"
for w in "${WORKLOADS[@]}"; do
    read -r name addr app <<<"$w"
    sed -e "s/127\.0\.0\.10/$addr/g" -e "s/productpage-1\./$name./" \
        -e "s/cluster: productpage\./cluster: $app./" \
        -e "s/port_value: 15010\b/port_value: $cp_port/" "$BOOT_EXAMPLE" >"$tmp/$name.yaml"
done
note "mesh:       $MESH (a copy of examples/mesh-demo.yaml, edited live below)"
note "            $(sed -nE 's/^  mtls: *([^ #]*).*/mtls: \1/p' "$MESH"), ingress: listeners, bind: workload"
note "bootstraps: $tmp/<workload>.yaml (examples/sidecar-productpage.yaml per workload)"
note "addresses:  productpage $PP, reviews-v1 $V1, reviews-v2 $V2, mongodb $DB"
note "ports:      ADS 127.0.0.1:$cp_port; per workload: admin 15000, services 9080 (http) and"
note "            27017 (tcp), apps 19080"

# --- the applications ----------------------------------------------------------------------------

heading "Applications (plain upstreams behind their sidecars)"
for app in "reviews-v1 $V1" "reviews-v2 $V2" "mongodb $DB"; do
    read -r name addr <<<"$app"
    "$UPSTREAM_BIN" --port 19080 --bind "$addr" --id "$name" --body-bytes 64 \
        >"$tmp/$name.app.log" 2>&1 &
    up_pids+=" $!"
    note "$name on $addr:19080 (pid $!)"
done
for addr in "$V1" "$V2" "$DB"; do
    poll "$READY_DEADLINE_S" addr_open "$addr" 19080 || die "upstream on $addr:19080 not answering"
done

# --- the control plane ---------------------------------------------------------------------------

heading "ringside-cp (control plane and certificate authority)"
"$CP" --mesh "$MESH" --listen "127.0.0.1:$cp_port" --ca-dir "$CA" >"$tmp/cp.out" 2>"$tmp/cp.err" &
cp_pid=$!
cp_up() {
    alive "$cp_pid" || die "ringside-cp exited early: $(tail -5 "$tmp/cp.err")"
    grep -q '^ringside-cp listening' "$tmp/cp.out"
}
poll "$READY_DEADLINE_S" cp_up || die "ringside-cp not listening after ${READY_DEADLINE_S}s"
note "$(head -1 "$tmp/cp.out") (pid $cp_pid)"
if ((MTLS)); then
    note "mesh root created in $CA: $(openssl x509 -in "$CA/root-cert.pem" -noout -subject 2>&1)"
fi

# --- the sidecars --------------------------------------------------------------------------------

heading "ringside sidecars (configured over ADS)"
for w in "${WORKLOADS[@]}"; do
    read -r name addr _ <<<"$w"
    "$RINGSIDE" -c "$tmp/$name.yaml" --concurrency 1 --drain-time-s 5 \
        >"$tmp/$name.access.log" 2>"$tmp/$name.err" &
    rs_pid[$name]=$!
    note "$name: ringside -c $name.yaml --concurrency 1 (pid $!)"
done
rs_ready() { # rs_ready NAME ADDR
    alive "${rs_pid[$1]}" || die "ringside ($1) exited early: $(tail -20 "$tmp/$1.err")"
    curl -sf -o /dev/null --max-time 1 "http://$2:15000/ready"
}
start=$(date +%s%N)
for w in "${WORKLOADS[@]}"; do
    read -r name addr _ <<<"$w"
    poll "$READY_DEADLINE_S" rs_ready "$name" "$addr" || die "ringside ($name) not ready after ${READY_DEADLINE_S}s"
done
note "ready:      GET <address>:15000/ready -> 200 from all four after $((($(date +%s%N) - start) / 1000000)) ms"
grep -oE '(listener .* listening on .*|xds: initial configuration.*)' "$tmp/productpage-1.err" |
    sed 's/^/   productpage-1: /'
grep -oE 'listener .*_(9080|27017) listening on .*' "$tmp/reviews-v1.err" "$tmp/mongodb-1.err" |
    sed -e "s|^$tmp/||" -e 's/\.err:/: /' -e 's/^/   /'

# --- requests ------------------------------------------------------------------------------------

failures=0
failed() {
    note "FAILED: $*"
    failures=$((failures + 1))
}
URL=http://$PP:9080/
# ids N [curl args]: the x-upstream-id of N requests to reviews through the sidecar, one a line.
ids() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        curl -s -D - -o /dev/null --max-time 5 -H 'Host: reviews:9080' "$@" "$URL" | tr -d '\r' |
            awk -F': ' 'tolower($1) == "x-upstream-id" { print $2 }'
    done
}
count() { grep -cx "$1" <<<"$2" || true; }

heading "HTTP: reviews:9080 through productpage's sidecar and the server's sidecar"
note "curl -H 'Host: reviews:9080' $URL"
if curl -s --max-time 5 -D "$tmp/h" -o "$tmp/b" -H 'Host: reviews:9080' "$URL"; then
    tr -d '\r' <"$tmp/h" | grep -iE '^(HTTP/|x-upstream-id|x-envoy-upstream-service-time|server)' |
        sed 's/^/   < /'
    grep -q '^HTTP/1.1 200' "$tmp/h" || failed "expected 200"
else
    failed "curl error"
fi

heading "Traffic split (mesh: reviews v1 80, v2 20)"
out=$(ids 50)
v1=$(count reviews-v1 "$out") v2=$(count reviews-v2 "$out")
note "50 requests: reviews-v1 $v1, reviews-v2 $v2"
((v1 > v2 && v2 > 0 && v1 + v2 == 50)) || failed "expected about 40/10"

heading "Header route (mesh: end-user: jason -> v2)"
out=$(ids 10 -H 'end-user: jason')
note "10 requests with end-user: jason: $(sort <<<"$out" | uniq -c | xargs)"
[[ $(sort -u <<<"$out") == reviews-v2 ]] || failed "expected reviews-v2 only"

heading "TCP service (mongodb:27017, tcp_proxy to the database's sidecar)"
note "curl http://$PP:27017/  (HTTP bytes through a tcp proxy; the database is an echo server)"
tcp_id=$(curl -s -D - -o /dev/null --max-time 5 "http://$PP:27017/" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "x-upstream-id" { print $2 }')
note "answered by: ${tcp_id:-nothing}"
[[ $tcp_id == mongodb ]] || failed "expected mongodb"

heading "Load burst (through the tcp service)"
if [[ -x $LOADGEN ]]; then
    note "loadgen --url http://$PP:27017/ -c 4 --rate 1000 --duration 2"
    if "$LOADGEN" --url "http://$PP:27017/" -c 4 --rate 1000 --duration 2 --json >"$tmp/load.json" 2>"$tmp/load.err"; then
        python3 - "$tmp/load.json" <<'PY' | sed 's/^/   /'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(f'{r["requests"]} requests, {r["rps"]} rq/s, 2xx {r["status"]["2xx"]}, errors {r["errors"]["total"]}, '
      f'latency p50 {l["p50"]} us, p99 {l["p99"]} us')
PY
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r["errors"]["total"] != 0 or r["status"]["2xx"] != r["requests"])' \
            "$tmp/load.json" || failed "loadgen saw errors"
    else
        failed "loadgen exited non-zero: $(cat "$tmp/load.err")"
    fi
else
    note "$LOADGEN not built; skipped"
fi

# --- what the server sidecars saw ----------------------------------------------------------------

# counter ADDR NAME: a stat from the admin API of the sidecar on ADDR (0 when absent).
counter() {
    curl -sf --max-time 2 "http://$1:15000/stats" |
        awk -F': ' -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }'
}
# log_has NAME REGEX: the sidecar NAME's access log has a line matching REGEX.
log_has() { grep -qE -- "$2" "$tmp/$1.access.log"; }

heading "Server side: the sidecars of reviews-v1 and mongodb (access logs)"
note "(the access log is buffered per worker and written within a second)"
poll 5 log_has reviews-v1 'inbound\|19080\|\|' || true
poll 5 log_has mongodb-1 'inbound\|19080\|\|' || true
for name in reviews-v1 mongodb-1; do
    tail -1 "$tmp/$name.access.log" | sed "s/^/   $name: /"
done
PEER=spiffe://cluster.local/ns/default/sa/productpage
if ((MTLS)); then
    log_has reviews-v1 "inbound\|19080\|\| .* peer=$PEER\$" || failed "reviews-v1 did not log the client's SPIFFE ID"
    log_has mongodb-1 "inbound\|19080\|\| .* peer=$PEER\$" || failed "mongodb did not log the client's SPIFFE ID"
    note "both name the client by its certificate: peer=$PEER"
    note "what reviews' application receives: curl -H 'x-forwarded-client-cert: URI=<a lie>' .../echo"
    xfcc=$(curl -s --max-time 5 -H 'Host: reviews:9080' \
        -H 'x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin' \
        "http://$PP:9080/echo" | python3 -c 'import json, sys
print(json.load(sys.stdin)["headers"].get("x-forwarded-client-cert", "none"))' 2>/dev/null || true)
    note "  x-forwarded-client-cert: ${xfcc:-none}"
    [[ $xfcc == *"URI=$PEER"* && $xfcc != *sa/admin* ]] ||
        failed "expected the client's identity from its certificate, and the application's own header dropped"
else
    log_has reviews-v1 'inbound\|19080\|\| .* peer=-$' || failed "reviews-v1 logged no inbound request"
    note "plaintext hops (RS_DEMO_MTLS=0): no peer identity"
fi

# --- mutual TLS ----------------------------------------------------------------------------------

if ((MTLS)); then
    heading "Mutual TLS (ringside-cp is the CA; STRICT: nothing else is accepted)"
    note "server sidecars' listener stats:"
    for l in "$V1 ${V1}_9080" "$V2 ${V2}_9080" "$DB ${DB}_27017"; do
        read -r addr name <<<"$l"
        hs=$(counter "$addr" "listener.$name.ssl.handshake")
        note "  listener.$name.ssl.handshake: $hs"
        ((hs > 0)) || failed "no TLS handshake on $name"
    done
    note "client sidecar's cluster stats (its side of the same handshakes):"
    curl -sf --max-time 2 "http://$PP:15000/stats?filter=ssl%5C.handshake" |
        grep -E '^cluster\..*\.ssl\.handshake: [1-9]' | sed 's/^/     productpage-1: /' || true

    note "openssl s_client -connect $V1:9080 -alpn istio-http/1.1 (no client certificate):"
    printf 'GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n' >"$tmp/req"
    # s_client sends the request once its side of the handshake is done (TLS 1.3); the server
    # refuses the connection when it sees no client certificate, so no response comes back.
    timeout 10 openssl s_client -connect "$V1:9080" -alpn istio-http/1.1 -CAfile "$CA/root-cert.pem" \
        -verify_return_error -ign_eof <"$tmp/req" >"$tmp/s_client.out" 2>&1 || true
    sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$tmp/s_client.out" >"$tmp/server.pem"
    san=$(openssl x509 -in "$tmp/server.pem" -noout -ext subjectAltName 2>/dev/null | grep -o 'URI:[^,]*' || true)
    note "  server certificate: ${san:-none} ($(grep -o 'Verify return code: .*' "$tmp/s_client.out" || echo 'not verified'))"
    [[ $san == URI:spiffe://cluster.local/ns/default/sa/reviews ]] || failed "expected the reviews SPIFFE certificate"
    if grep -q '^HTTP/1' "$tmp/s_client.out"; then
        failed "a client without a certificate was served"
    else
        why=$(grep -oE 'alert [a-z ]+|unexpected eof[a-z ]*|errno=[0-9]+' "$tmp/s_client.out" | head -1 || true)
        note "  no response: refused (${why:-connection closed})"
    fi
    nocert=$(counter "$V1" "listener.${V1}_9080.ssl.fail_verify_no_cert")
    note "  listener.${V1}_9080.ssl.fail_verify_no_cert: $nocert"
    ((nocert > 0)) || failed "the refusal was not counted"

    note "the same with a certificate from the mesh root (spiffe://cluster.local/ns/default/sa/demo):"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj / \
        -keyout "$tmp/demo.key" -out "$tmp/demo.csr" 2>/dev/null
    printf 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/demo\nextendedKeyUsage=clientAuth\n' >"$tmp/demo.ext"
    openssl x509 -req -in "$tmp/demo.csr" -CA "$CA/root-cert.pem" -CAkey "$CA/root-key.pem" \
        -set_serial "0x$(openssl rand -hex 8)" -days 1 -extfile "$tmp/demo.ext" -out "$tmp/demo.pem" 2>/dev/null
    timeout 10 openssl s_client -connect "$V1:9080" -alpn istio-http/1.1 -CAfile "$CA/root-cert.pem" \
        -cert "$tmp/demo.pem" -key "$tmp/demo.key" -verify_return_error -ign_eof -quiet \
        <"$tmp/req" >"$tmp/s_client2.out" 2>/dev/null || true
    status=$(head -1 "$tmp/s_client2.out" | tr -d '\r')
    note "  < ${status:-no response}"
    [[ $status == 'HTTP/1.1 200 OK' ]] || failed "a client with a mesh certificate was not served"
    poll 5 log_has reviews-v1 'peer=spiffe://cluster.local/ns/default/sa/demo$' ||
        failed "reviews-v1 did not log the demo client's identity"
    grep -m1 'sa/demo$' "$tmp/reviews-v1.access.log" | sed 's/^/   reviews-v1: /' || true

    note "curl http://$V1:9080/ (plaintext to a STRICT sidecar):"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: reviews' "http://$V1:9080/" || true)
    nochain=$(counter "$V1" "listener.${V1}_9080.no_filter_chain_match")
    note "  status ${code:-000} (connection closed), listener.${V1}_9080.no_filter_chain_match: $nochain"
    [[ ${code:-000} == 000 ]] || failed "plaintext was served by a STRICT sidecar"
    ((nochain > 0)) || failed "the plaintext refusal was not counted"
fi

# --- a live mesh edit ----------------------------------------------------------------------------

heading "Live mesh edit: reviews split 80/20 -> 0/100, while the sidecars run"
acks() { grep -c "ACK RDS from sidecar~$PP~" "$tmp/cp.err" || true; }
acked_more() { (($(acks) > $1)); }
before=$(acks)
sed -i 's/{subset: v1, weight: 80}, {subset: v2, weight: 20}/{subset: v1, weight: 0}, {subset: v2, weight: 100}/' "$MESH"
note "sed -i 's/v1 weight 80, v2 weight 20/v1 weight 0, v2 weight 100/' $MESH"
start=$(date +%s%N)
if poll 10 acked_more "$before"; then
    note "pushed and ACKed by productpage's sidecar after $((($(date +%s%N) - start) / 1000000)) ms; ringside-cp's log:"
    grep -E "mesh reloaded|ACK RDS from sidecar~$PP~" "$tmp/cp.err" | tail -2 | sed 's/^/   | /'
    out=$(ids 20)
    note "20 requests: $(sort <<<"$out" | uniq -c | xargs)"
    [[ $(sort -u <<<"$out") == reviews-v2 ]] || failed "expected reviews-v2 only"
else
    failed "no route update ACKed within 10 s"
fi

# --- what ringside recorded ----------------------------------------------------------------------

# The xDS counters are mirrored into /stats once a second: wait until they show the edit.
rds_ok() { (($(curl -sf --max-time 2 "http://$PP:15000/stats?filter=%5Erds%5C.update_success" | awk '{print $2}') >= 2)); }
poll 5 rds_ok || true
heading "productpage's sidecar: admin /stats (xDS and traffic; non-zero only)"
curl -sf --max-time 5 "http://$PP:15000/stats?usedonly" >"$tmp/stats" || die "GET /stats failed"
grep -E '^(control_plane\.(connected_state|rq_total|rq_nack)|(cluster_manager\.(cds|eds)|listener_manager\.lds|rds|sds)\.update_(success|rejected)|cluster\.outbound.*\.upstream_rq_2xx|http\.outbound.*\.downstream_rq_2xx|tcp\.outbound.*\.downstream_cx_total):' \
    "$tmp/stats" | grep -v ': 0$' | sed 's/^/   /'
heading "Server sidecars: inbound traffic (non-zero only)"
for w in "reviews-v1 $V1" "reviews-v2 $V2" "mongodb-1 $DB"; do
    read -r name addr <<<"$w"
    curl -sf --max-time 5 "http://$addr:15000/stats?usedonly" |
        grep -E '^(http\.inbound.*\.downstream_rq_2xx|tcp\.inbound.*\.downstream_cx_total|cluster\.inbound.*\.upstream_cx_total):' |
        grep -v ': 0$' | sed "s/^/   $name: /" || true
done

heading "productpage's sidecar: admin /clusters (endpoints from EDS: the servers' sidecars)"
curl -sf --max-time 5 "http://$PP:15000/clusters" >"$tmp/clusters" || die "GET /clusters failed"
grep -E '^outbound.*::(health_flags|rq_success)::' "$tmp/clusters" | sed 's/^/   /'

# --- stop ----------------------------------------------------------------------------------------

heading "Stop"
stop() { # stop WHO PID
    kill -TERM "$2"
    poll "$STOP_DEADLINE_S" gone "$2" || die "$1 still running ${STOP_DEADLINE_S}s after SIGTERM"
    local rc=0
    wait "$2" || rc=$?
    note "$1 got SIGTERM and exited with status $rc"
    ((rc == 0)) || die "$1 exit status $rc"
}
for w in "${WORKLOADS[@]}"; do
    read -r name _ <<<"$w"
    stop "ringside ($name)" "${rs_pid[$name]}"
    rs_pid[$name]=""
done
stop ringside-cp "$cp_pid"
cp_pid=""
for w in "${WORKLOADS[@]}"; do
    read -r name _ <<<"$w"
    grep -iE 'error|fatal|assert' "$tmp/$name.err" | head -5 | sed "s/^/   ringside ($name) stderr: /" || true
done

if ((failures > 0)); then
    die "$failures check(s) failed"
fi
if ((MTLS)); then
    heading "Demo finished: routed, split, header-routed, proxied tcp, every hop mutual TLS, updated live; all exited cleanly"
else
    heading "Demo finished: routed, split, header-routed, proxied tcp (plaintext hops), updated live; all exited cleanly"
fi
