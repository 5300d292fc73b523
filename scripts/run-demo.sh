#!/usr/bin/env bash
# `make run`: a short tour of Ringside as a mesh sidecar on loopback. ringside-cp (the reference
# control plane) serves examples/mesh-demo.yaml over ADS; ringside starts from
# examples/sidecar-productpage.yaml (productpage's sidecar: nothing but the control-plane cluster
# is static) and gets its listeners, routes, clusters and endpoints from it. The applications
# behind it (reviews v1 and v2, a tcp database) are plain upstreams on their own loopback
# addresses. The tour sends HTTP through the sidecar (host routing, the weighted split, the
# header route), bytes through the tcp service and a short load, then edits the mesh file while
# ringside runs and shows the new split applied, prints the xDS and traffic stats and /clusters,
# and stops everything with SIGTERM. Exits 0 only if every step worked and both exited 0.
#
# Only the client side has a sidecar: the inbound side ringside-cp generates for a server node
# (virtualInbound on 15006, chains matched on the original destination port) needs iptables to
# steer traffic into it; on plain loopback the client's endpoints are the applications' own
# addresses, so a server-side sidecar would never see a request.
#
# usage: scripts/run-demo.sh [BUILD_DIR]     (default: build)
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
rs_pid=""
cp_pid=""
up_pids=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in $rs_pid $cp_pid $up_pids; do
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            poll 3 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
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
admin_port="" cp_port=""
choose_port admin_port 15000
choose_port cp_port 15010
PP=$net.10
MESH=$tmp/mesh.yaml
sed "s/127\.0\.0\./$net./" "$MESH_EXAMPLE" >"$MESH"
sed -e "s/127\.0\.0\.10/$PP/" -e "s/port_value: 15000\b/port_value: $admin_port/" \
    -e "s/port_value: 15010\b/port_value: $cp_port/" "$BOOT_EXAMPLE" >"$tmp/sidecar.yaml"
note "mesh:      $MESH (a copy of examples/mesh-demo.yaml, edited live below)"
note "bootstrap: $tmp/sidecar.yaml (examples/sidecar-productpage.yaml)"
note "addresses: productpage $PP, reviews-v1 $net.11, reviews-v2 $net.12, mongodb $net.13"
note "ports:     ADS $cp_port, admin $admin_port, apps 19080, services 9080 (http) and 27017 (tcp)"

# --- the applications ----------------------------------------------------------------------------

heading "Applications (plain upstreams, no sidecar)"
note "no server-side sidecar: its virtualInbound (15006) matches the original destination port,"
note "which only iptables capture provides; on loopback the client reaches the apps directly"
for app in "reviews-v1 $net.11" "reviews-v2 $net.12" "mongodb $net.13"; do
    read -r name addr <<<"$app"
    "$UPSTREAM_BIN" --port 19080 --bind "$addr" --id "$name" --body-bytes 64 \
        >"$tmp/$name.log" 2>&1 &
    up_pids+=" $!"
    note "$name on $addr:19080 (pid $!)"
done
for app in "$net.11" "$net.12" "$net.13"; do
    poll "$READY_DEADLINE_S" addr_open "$app" 19080 || die "upstream on $app:19080 not answering"
done

# --- the control plane ---------------------------------------------------------------------------

heading "ringside-cp (control plane)"
"$CP" --mesh "$MESH" --listen "127.0.0.1:$cp_port" >"$tmp/cp.out" 2>"$tmp/cp.err" &
cp_pid=$!
cp_up() {
    alive "$cp_pid" || die "ringside-cp exited early: $(tail -5 "$tmp/cp.err")"
    grep -q '^ringside-cp listening' "$tmp/cp.out"
}
poll "$READY_DEADLINE_S" cp_up || die "ringside-cp not listening after ${READY_DEADLINE_S}s"
note "$(head -1 "$tmp/cp.out") (pid $cp_pid)"

# --- the sidecar ---------------------------------------------------------------------------------

heading "ringside (productpage's sidecar, configured over ADS)"
"$RINGSIDE" -c "$tmp/sidecar.yaml" --concurrency 2 --drain-time-s 5 \
    >"$tmp/ringside.out" 2>"$tmp/ringside.err" &
rs_pid=$!
note "ringside: $RINGSIDE --concurrency 2 (pid $rs_pid)"
rs_ready() {
    alive "$rs_pid" || die "ringside exited early: $(tail -20 "$tmp/ringside.err")"
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$admin_port/ready"
}
start=$(date +%s%N)
poll "$READY_DEADLINE_S" rs_ready || die "ringside not ready after ${READY_DEADLINE_S}s"
note "ready:    GET :$admin_port/ready -> 200 after $((($(date +%s%N) - start) / 1000000)) ms"
grep -oE '(listener .* listening on .*|xds: initial configuration.*)' "$tmp/ringside.err" | sed 's/^/   /'

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

heading "HTTP: reviews:9080 through the sidecar"
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

heading "TCP service (mongodb:27017, tcp_proxy to the database's endpoint)"
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

# --- a live mesh edit ----------------------------------------------------------------------------

heading "Live mesh edit: reviews split 80/20 -> 0/100, while ringside runs"
acks() { grep -c 'ACK RDS from' "$tmp/cp.err" || true; }
acked_more() { (($(acks) > $1)); }
before=$(acks)
sed -i 's/{subset: v1, weight: 80}, {subset: v2, weight: 20}/{subset: v1, weight: 0}, {subset: v2, weight: 100}/' "$MESH"
note "sed -i 's/v1 weight 80, v2 weight 20/v1 weight 0, v2 weight 100/' $MESH"
start=$(date +%s%N)
if poll 10 acked_more "$before"; then
    note "pushed and ACKed after $((($(date +%s%N) - start) / 1000000)) ms; ringside-cp's log:"
    grep -E 'mesh reloaded|ACK RDS' "$tmp/cp.err" | tail -2 | sed 's/^/   | /'
    out=$(ids 20)
    note "20 requests: $(sort <<<"$out" | uniq -c | xargs)"
    [[ $(sort -u <<<"$out") == reviews-v2 ]] || failed "expected reviews-v2 only"
else
    failed "no route update ACKed within 10 s"
fi

# --- what ringside recorded ----------------------------------------------------------------------

# The xDS counters are mirrored into /stats once a second: wait until they show the edit.
rds_ok() { (($(curl -sf --max-time 2 "http://127.0.0.1:$admin_port/stats?filter=%5Erds%5C.update_success" | awk '{print $2}') >= 2)); }
poll 5 rds_ok || true
heading "Admin /stats (xDS and traffic; non-zero only)"
curl -sf --max-time 5 "http://127.0.0.1:$admin_port/stats?usedonly" >"$tmp/stats" || die "GET /stats failed"
grep -E '^(control_plane\.(connected_state|rq_total|rq_nack)|(cluster_manager\.(cds|eds)|listener_manager\.lds|rds)\.update_(success|rejected)|cluster\.outbound.*\.upstream_rq_2xx|http\.outbound.*\.downstream_rq_2xx|tcp\.outbound.*\.downstream_cx_total):' \
    "$tmp/stats" | grep -v ': 0$' | sed 's/^/   /'

heading "Admin /clusters (endpoints from EDS)"
curl -sf --max-time 5 "http://127.0.0.1:$admin_port/clusters" >"$tmp/clusters" || die "GET /clusters failed"
grep -E '^outbound.*::(health_flags|rq_success)::' "$tmp/clusters" | sed 's/^/   /'

# --- stop ----------------------------------------------------------------------------------------

heading "Stop"
for who in ringside ringside-cp; do
    if [[ $who == ringside ]]; then pid=$rs_pid; else pid=$cp_pid; fi
    kill -TERM "$pid"
    poll "$STOP_DEADLINE_S" gone "$pid" || die "$who still running ${STOP_DEADLINE_S}s after SIGTERM"
    rc=0
    wait "$pid" || rc=$?
    if [[ $who == ringside ]]; then rs_pid=""; else cp_pid=""; fi
    note "$who got SIGTERM and exited with status $rc"
    ((rc == 0)) || die "$who exit status $rc"
done
grep -iE 'error|fatal|assert' "$tmp/ringside.err" | head -5 | sed 's/^/   ringside stderr: /' || true

if ((failures > 0)); then
    die "$failures check(s) failed"
fi
heading "Demo finished: routed, split, header-routed, proxied tcp, updated live; both exited cleanly"
