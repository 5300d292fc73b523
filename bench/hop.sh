#!/usr/bin/env bash
# One Ringside hop against a direct connection, measured open-loop with bench/loadgen (latency
# from each request's scheduled send time, so stalls are not hidden): Istio's test shape (1 KiB
# responses, 1,000 req/s over 4 connections), the same at 10,000 req/s over 64 connections, and
# closed-loop maximum throughput. Runs direct and ringside alternately, ROUNDS times, and prints
# medians and the per-hop overhead (ringside - direct).
#
#   bench/hop.sh [BUILD_DIR]      environment: RS_HOP_ROUNDS (3), RS_HOP_SECONDS (5)
#
# Placement: upstream on CPU 0, ringside (1 worker) on CPU 1, loadgen unpinned (2-CPU machines
# are tight: the load generator shares the cores; compare the two paths, not absolute figures).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
ROUNDS=${RS_HOP_ROUNDS:-3}
SECS=${RS_HOP_SECONDS:-5}
for b in sidecar/ringside bench/upstream bench/loadgen; do
    [[ -x $BUILD/$b ]] || { echo "hop: $BUILD/$b is not built (make build)" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

pin0=() pin1=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port) RS=$(port) ADMIN=$(port)
sed -e "s/15000/$ADMIN/; s/10000/$RS/; s/8080/$UP/; /access_log:/,/StdoutAccessLog/d; /tcp_in/,/cluster: app/d" \
    "$SRC/examples/bootstrap.yaml" >"$tmp/hop.yaml"
"${pin0[@]}" "$BUILD/bench/upstream" --port "$UP" >/dev/null 2>&1 &
pids+=($!)
"${pin1[@]}" "$BUILD/sidecar/ringside" -c "$tmp/hop.yaml" --concurrency 1 -l warning >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/ready" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$RS/" >/dev/null || { echo "hop: ringside does not answer" >&2; exit 1; }

declare -A SCEN=([1k]="--rate 1000 -c 4" [10k]="--rate 10000 -c 64 --threads 2" [max]="--max -c 64 --threads 2")
ORDER=(1k 10k max)
run() { # PATH-NAME PORT SCENARIO
    "$BUILD/bench/loadgen" --url "http://127.0.0.1:$2/" ${SCEN[$3]} --duration "$SECS" --warmup 1 --json \
        >"$tmp/$1-$3-$r.json"
}
for r in $(seq "$ROUNDS"); do
    for s in "${ORDER[@]}"; do
        run direct "$UP" "$s"
        run ringside "$RS" "$s"
    done
done
python3 - "$tmp" "$ROUNDS" <<'PY'
import json, statistics, sys, glob
tmp, rounds = sys.argv[1], int(sys.argv[2])
def load(path, scen):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/{path}-{scen}-*.json"))]
def med(rs, key):
    vals = []
    for r in rs:
        v = r
        for k in key.split("."):
            v = v[k]
        vals.append(float(v))
    return statistics.median(vals)
print(f"median of {rounds} rounds; latency in µs from the scheduled send; hop = ringside - direct")
print("| scenario | path | req/s | p50 | p90 | p99 | p99.9 | errors |")
print("|---|---|--:|--:|--:|--:|--:|--:|")
for scen, label in (("1k", "1,000 rps, 4 conns"), ("10k", "10,000 rps, 64 conns"), ("max", "max, 64 conns")):
    row = {}
    for path in ("direct", "ringside"):
        rs = load(path, scen)
        lat = {p: med(rs, f"latency_us.{p}") for p in ("p50", "p90", "p99", "p999")}
        err = sum(r["errors"]["total"] for r in rs)
        rps = med(rs, "rps")
        row[path] = (rps, lat)
        print(f"| {label} | {path} | {rps:,.0f} | {lat['p50']:.0f} | {lat['p90']:.0f} | {lat['p99']:.0f} | {lat['p999']:.0f} | {err} |")
    d, g = row["direct"][1], row["ringside"][1]
    print(f"| {label} | **hop** | | +{g['p50']-d['p50']:.0f} | +{g['p90']-d['p90']:.0f} | +{g['p99']-d['p99']:.0f} | +{g['p999']-d['p999']:.0f} | |")
PY
