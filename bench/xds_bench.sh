#!/usr/bin/env bash
# The xDS benchmarks of issue 4 ("Performance"), on loopback with ringside-cp as the control plane:
#
#  (a) a full update of SERVICES clusters, SERVICES endpoint sets and SERVICES x ROUTES_PER routes
#      (bench/xds_mesh.py; default 1,000 / 1,000 / 10,000): the time ringside spends applying it
#      (the sum of its cds/eds/lds/rds update_duration histograms, read exactly from the _sum of
#      /stats/prometheus), the wall time from ringside-cp sending the first response of the
#      update to receiving the last ACK (ringside-cp's log), and ringside's RSS after it. Measured
#      for the initial configuration and for a re-push where every cluster, endpoint set and
#      route changed. Targets: under 20 ms, under 16 MiB.
#  (b) scenario 2 of bench/run.sh (10,000 rq/s over 64 connections, 1 KiB responses, open loop)
#      through the sidecar while the mesh is edited every 100 ms (a new reviews v1/v2 split each
#      time: one RDS push per edit), against the same without edits, runs interleaved; medians
#      of RUNS runs.
#
# loadgen always sends `host: <target address>`, which no mesh virtual host matches, so in (b) it
# goes to a static entry listener of the same ringside that rewrites the host to reviews:9080 and
# forwards to the sidecar's outbound listener: two hops through one ringside in both columns.
#
# usage: bench/xds_bench.sh BUILD_DIR [--runs N] [--secs S] [--services N] [--routes-per N]
#                           [--perf] [--no-save]
#   --perf      perf record (call graphs) on ringside's xDS thread during the first re-push;
#               the report goes to bench/results/<date>-xds-perf.txt
# Prints a Markdown table; writes bench/results/<date>-xds.json (unless --no-save).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:?usage: bench/xds_bench.sh BUILD_DIR [--runs N] [--secs S] [--perf]}
shift
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RUNS=3 SECS=5 SERVICES=1000 ROUTES_PER=10 PERF=0 SAVE=1
while (($#)); do
    case $1 in
    --runs) RUNS=$2 && shift ;;
    --secs) SECS=$2 && shift ;;
    --services) SERVICES=$2 && shift ;;
    --routes-per) ROUTES_PER=$2 && shift ;;
    --perf) PERF=1 ;;
    --no-save) SAVE=0 ;;
    *) echo "xds_bench: unknown argument $1" >&2 && exit 2 ;;
    esac
    shift
done
RINGSIDE=$BUILD/sidecar/ringside
CP=$BUILD/xds/cp/ringside-cp
UPSTREAM_BIN=$BUILD/bench/upstream
LOADGEN=$BUILD/bench/loadgen

# shellcheck source=bench/lib.sh
source "$SRC/bench/lib.sh" # say, die, free_port, alive, gone, poll, spawn, stop_all
for b in "$RINGSIDE" "$CP" "$UPSTREAM_BIN" "$LOADGEN"; do [[ -x $b ]] || die "$b not built"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xds-bench.XXXXXX")
trap 'stop_all; release_ports; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# Workload addresses in a random 127.A.0.0/16 (bind: workload), so nothing else on the host collides.
A=$((RANDOM % 200 + 20))
CLIENT=127.$A.0.10
free_port CP_PORT
free_port ADMIN_PORT
free_port ENTRY_PORT
APP_PORT=19080

now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
# cp_ts_ms LINE: a ringside-cp log line's timestamp, in ms since the epoch.
cp_ts_ms() { date -d "$(cut -c2-24 <<<"$1")" +%s%3N; }
acks() { grep -c "ACK $1 from" "$WORK/cp.err" || true; }
acks_at_least() { (($(acks "$1") >= $2)); }
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
prom() { curl -s --max-time 10 "http://127.0.0.1:$ADMIN_PORT/stats/prometheus"; }
# apply_sums: "cds eds lds rds" apply-time sums in ms (the histograms' _sum, recorded in us)
apply_sums() {
    prom | awk '
        /^envoy_cluster_manager_cds_update_duration_sum / { c = $2 }
        /^envoy_cluster_manager_eds_update_duration_sum / { e = $2 }
        /^envoy_listener_manager_lds_update_duration_sum / { l = $2 }
        /^envoy_rds_update_duration_sum / { r = $2 }
        END { print c + 0, e + 0, l + 0, r + 0 }'
}
live() { curl -sf --max-time 2 "http://127.0.0.1:$ADMIN_PORT/ready" | grep -q LIVE; }

bootstrap() { # bootstrap FILE [entry]: productpage-like client node, everything over ADS
    {
        cat <<Y
node:
  id: sidecar~$CLIENT~client.default~default.svc.cluster.local
  cluster: client.default
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN_PORT } }
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: { cluster_name: xds-grpc }
  cds_config: { ads: {}, resource_api_version: V3 }
  lds_config: { ads: {}, resource_api_version: V3 }
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds-grpc
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $CP_PORT } } }
Y
        if [[ ${2:-} == entry ]]; then
            cat <<Y
  - name: self_9080
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: self_9080
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: $CLIENT, port_value: 9080 } } }
  listeners:
  - name: entry
    address: { socket_address: { address: $CLIENT, port_value: $ENTRY_PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: entry
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: self_9080, host_rewrite_literal: "reviews:9080" }
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
Y
        fi
    } >"$1"
}

start_cp() { # start_cp MESH
    : >"$WORK/cp.err"
    spawn "$WORK/cp" "$CP" --mesh "$1" --listen "127.0.0.1:$CP_PORT" -l debug
    CP_PID=$SPAWNED
    poll 60 grep -q '^ringside-cp listening' "$WORK/cp.out" || die "ringside-cp did not start: $(tail -3 "$WORK/cp.err")"
}
start_rs() { # start_rs BOOTSTRAP
    spawn "$WORK/rs" "$RINGSIDE" -c "$1" --concurrency 2 --drain-time-s 1
    RS_PID=$SPAWNED
    poll 120 live || die "ringside not LIVE: $(tail -5 "$WORK/rs.err")"
}

# ---- (a) a full update of a large mesh --------------------------------------------------------

say "(a) full update: $SERVICES clusters, $SERVICES endpoint sets, $((SERVICES * ROUTES_PER)) routes; $RUNS runs"
MESH=$WORK/mesh.yaml
gen_mesh() { # gen_mesh GEN: atomically
    python3 "$SRC/bench/xds_mesh.py" --services "$SERVICES" --routes-per "$ROUTES_PER" --gen "$1" \
        --net "127.$A" --client "$CLIENT" --app-port "$APP_PORT" >"$MESH.tmp"
    mv "$MESH.tmp" "$MESH"
}
bootstrap "$WORK/boot.yaml"
: >"$WORK/a.jsonl"
for ((run = 1; run <= RUNS; run++)); do
    gen_mesh $((run * 2))
    start_cp "$MESH"
    start_rs "$WORK/boot.yaml"
    poll 10 acks_at_least RDS 1 || die "no RDS ACK"
    read -r c0 e0 l0 r0 <<<"$(apply_sums)"
    rss_init=$(rss_kib "$RS_PID")
    first=$(grep -m1 ' CDS -> ' "$WORK/cp.err")
    last=$(grep 'ACK RDS from' "$WORK/cp.err" | tail -1)
    wall_init=$(($(cp_ts_ms "$last") - $(cp_ts_ms "$first")))

    # the re-push: every cluster, endpoint set and route changes
    n_sent=$(grep -c ' -> ' "$WORK/cp.err")
    if ((PERF && run == 1)) && command -v perf >/dev/null; then
        tid=$(grep -l '^rs-xds$' /proc/"$RS_PID"/task/*/comm | head -1 | cut -d/ -f5)
        perf record -g -t "$tid" -o "$WORK/perf.data" -- sleep 15 >"$WORK/perf.log" 2>&1 &
        PERF_PID=$!
        sleep 1 # perf attaching (a benchmark's setup, not a test's synchronisation)
    fi
    gen_mesh $((run * 2 + 1))
    poll 60 acks_at_least RDS 2 || die "the re-push was not ACKed: $(tail -3 "$WORK/cp.err")"
    poll 5 eval '[[ $(apply_sums) != "$c0 $e0 $l0 $r0" ]]' || true
    read -r c1 e1 l1 r1 <<<"$(apply_sums)"
    rss_upd=$(rss_kib "$RS_PID")
    first=$(grep ' -> ' "$WORK/cp.err" | sed -n "$((n_sent + 1))p")
    last=$(grep 'ACK RDS from' "$WORK/cp.err" | tail -1)
    wall_upd=$(($(cp_ts_ms "$last") - $(cp_ts_ms "$first")))
    pushed=$(grep ' -> ' "$WORK/cp.err" | sed -n "$((n_sent + 1)),\$p" | awk '{print $4}' | xargs)
    if [[ -n ${PERF_PID:-} ]]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
        perf report -i "$WORK/perf.data" --no-children --sort symbol --percent-limit 1 \
            -g caller,0.5,callee,function,percent --stdio >"$WORK/perf.txt" 2>/dev/null || true
        perf report -i "$WORK/perf.data" --children --sort symbol -g none --percent-limit 3 \
            --stdio >"$WORK/perf-children.txt" 2>/dev/null || true
    fi
    python3 - "$c0 $e0 $l0 $r0" "$c1 $e1 $l1 $r1" "$rss_init" "$rss_upd" "$wall_init" "$wall_upd" "$pushed" >>"$WORK/a.jsonl" <<'PY'
import json, sys
a0 = [float(x) for x in sys.argv[1].split()]
a1 = [float(x) for x in sys.argv[2].split()]
d = [round(y - x, 3) for x, y in zip(a0, a1)]
print(json.dumps({
    "initial": {"apply_ms": dict(zip(["cds", "eds", "lds", "rds"], a0)), "apply_ms_total": round(sum(a0), 3),
                "wall_ms": int(sys.argv[5]), "rss_kib": int(sys.argv[3])},
    "update": {"apply_ms": dict(zip(["cds", "eds", "lds", "rds"], d)), "apply_ms_total": round(sum(d), 3),
               "wall_ms": int(sys.argv[6]), "rss_kib": int(sys.argv[4]), "pushed": sys.argv[7].split()},
}))
PY
    say "  run $run: initial apply $(tail -1 "$WORK/a.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["initial"]["apply_ms_total"], "ms, re-push", r["update"]["apply_ms_total"], "ms, RSS", r["update"]["rss_kib"], "KiB")')"
    stop_all
done

# ---- (b) scenario 2 with and without updates every 100 ms -------------------------------------

say "(b) 10,000 rq/s over 64 connections for ${SECS}s, with and without a mesh edit every 100 ms; $RUNS runs each"
small_mesh() { # small_mesh W1: reviews v1/v2 with a W1/(100-W1) split, atomically
    cat >"$MESH.tmp" <<Y
options: {bind: workload, connect_timeout: 1s}
services:
  - name: reviews
    ports: [{port: 9080, protocol: http}]
    subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
    traffic:
      routes:
        - to: [{subset: v1, weight: $1}, {subset: v2, weight: $((100 - $1))}]
workloads:
  - {name: client, address: $CLIENT, labels: {app: client}}
  - {name: reviews-v1, address: 127.$A.0.11, labels: {app: reviews, version: v1}, services: [reviews], port: $APP_PORT}
  - {name: reviews-v2, address: 127.$A.0.12, labels: {app: reviews, version: v2}, services: [reviews], port: $APP_PORT}
Y
    mv "$MESH.tmp" "$MESH"
}
small_mesh 50
bootstrap "$WORK/boot-entry.yaml" entry
for v in 1 2; do
    spawn "$WORK/up$v" "$UPSTREAM_BIN" --port "$APP_PORT" --bind "127.$A.0.1$v" --id "v$v" --threads 1 --body-bytes 1024
done
start_cp "$MESH"
start_rs "$WORK/boot-entry.yaml"
curl -sf --max-time 5 -o /dev/null "http://$CLIENT:$ENTRY_PORT/" || die "no answer through the entry listener"

: >"$WORK/b.jsonl"
for ((run = 1; run <= RUNS; run++)); do
    for mode in none every100ms; do
        acks0=$(acks RDS)
        editor=""
        if [[ $mode == every100ms ]]; then
            (
                # bounded: at most one edit per 100 ms for the run's length and a margin
                for ((i = 1; i <= (SECS + 3) * 10; i++)); do
                    t=$(now_us)
                    small_mesh $((i % 99 + 1))
                    left=$((100000 - ($(now_us) - t)))
                    ((left > 0)) && sleep "0.$(printf '%06d' "$left")"
                done
            ) &
            editor=$!
        fi
        "$LOADGEN" --url "http://$CLIENT:$ENTRY_PORT/" --rate 10000 -c 64 --threads 2 \
            --duration "$SECS" --warmup 1 --json >"$WORK/lg.json" 2>"$WORK/lg.err" ||
            die "loadgen failed: $(cat "$WORK/lg.err")"
        if [[ -n $editor ]]; then
            kill "$editor" 2>/dev/null || true
            wait "$editor" 2>/dev/null || true
        fi
        python3 - "$WORK/lg.json" "$mode" "$run" $(($(acks RDS) - acks0)) >>"$WORK/b.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(json.dumps({"mode": sys.argv[2], "run": int(sys.argv[3]), "updates_acked": int(sys.argv[4]),
                  "rps": r["rps"], "requests": r["requests"], "errors": r["errors"]["total"],
                  "non_2xx": r["requests"] - r["status"]["2xx"],
                  "p50_us": l["p50"], "p90_us": l["p90"], "p99_us": l["p99"], "p999_us": l["p999"],
                  "max_us": l["max"]}))
PY
        say "  run $run, updates $mode: $(tail -1 "$WORK/b.jsonl")"
    done
done
stop_all

# ---- report -----------------------------------------------------------------------------------

DATE=$(date -u +%Y-%m-%d)
OUT_JSON=$SRC/bench/results/$DATE-xds.json
python3 - "$WORK/a.jsonl" "$WORK/b.jsonl" "$SERVICES" "$ROUTES_PER" "$SECS" "$(nproc)" \
    "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    >"$WORK/report.json" <<'PY'
import json, statistics as st, sys
A = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
B = [json.loads(x) for x in open(sys.argv[2]) if x.strip()]
med = lambda xs: st.median(xs) if xs else None
def amed(phase, key):
    return med([r[phase][key] for r in A])
out = {
    "what": "xDS benchmarks (issue 4): full-update apply time and RSS; scenario 2 latency with and without updates every 100 ms",
    "commit": sys.argv[7], "cpus": int(sys.argv[6]), "loadavg_at_end": sys.argv[8],
    "mesh": {"clusters": int(sys.argv[3]), "endpoint_sets": int(sys.argv[3]),
             "routes": int(sys.argv[3]) * int(sys.argv[4])},
    "targets": {"apply_ms": 20, "rss_kib": 16384},
    "full_update": {
        "runs": A,
        "median": {ph: {"apply_ms_total": amed(ph, "apply_ms_total"), "wall_ms": amed(ph, "wall_ms"),
                        "rss_kib": amed(ph, "rss_kib"),
                        "apply_ms": {t: med([r[ph]["apply_ms"][t] for r in A]) for t in ["cds", "eds", "lds", "rds"]}}
                   for ph in ["initial", "update"]},
    },
    "scenario2": {
        "load": "loadgen --rate 10000 -c 64 --threads 2, 1 KiB responses, --duration %s --warmup 1; entry listener -> sidecar outbound listener (2 hops, one ringside --concurrency 2)" % sys.argv[5],
        "runs": B,
        "median": {m: {k: med([r[k] for r in B if r["mode"] == m])
                       for k in ["rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors", "non_2xx", "updates_acked"]}
                   for m in ["none", "every100ms"]},
    },
}
print(json.dumps(out, indent=2))
PY
if ((SAVE)); then
    mkdir -p "$SRC/bench/results"
    cp "$WORK/report.json" "$OUT_JSON"
    if [[ -s $WORK/perf.txt ]]; then
        { cat "$WORK/perf-children.txt"; echo; cat "$WORK/perf.txt"; } >"$SRC/bench/results/$DATE-xds-perf.txt"
    fi
fi
python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["mesh"]; fu = r["full_update"]["median"]; s2 = r["scenario2"]["median"]; t = r["targets"]
ok = lambda v, lim: "yes" if v is not None and v < lim else "**no**"
print(f"### Full xDS update: {m['clusters']:,} clusters, {m['endpoint_sets']:,} endpoint sets, {m['routes']:,} routes (median of {len(r['full_update']['runs'])})\n")
print("| update | apply (cds + eds + lds + rds) | wall, first response sent to last ACK | RSS after | apply < 20 ms | RSS < 16 MiB |")
print("|---|---|---|---|---|---|")
for ph, name in [("initial", "initial (startup)"), ("update", "re-push, everything changed")]:
    p = fu[ph]; a = p["apply_ms"]
    print(f"| {name} | {p['apply_ms_total']:.1f} ms ({a['cds']:.1f} + {a['eds']:.1f} + {a['lds']:.1f} + {a['rds']:.1f}) "
          f"| {p['wall_ms']:.0f} ms | {p['rss_kib'] / 1024:.1f} MiB | {ok(p['apply_ms_total'], t['apply_ms'])} | {ok(p['rss_kib'], t['rss_kib'])} |")
print(f"\n### Scenario 2 (10,000 rq/s, 64 connections) with and without a mesh edit every 100 ms (median of {len(r['scenario2']['runs']) // 2})\n")
print("| updates | updates ACKed | rq/s | p50 | p90 | p99 | p99.9 | errors | non-2xx |")
print("|---|---|---|---|---|---|---|---|---|")
for mo in ["none", "every100ms"]:
    x = s2[mo]
    print(f"| {mo} | {x['updates_acked']:.0f} | {x['rps']:.0f} | {x['p50_us']:.0f} us | {x['p90_us']:.0f} us | {x['p99_us']:.0f} us "
          f"| {x['p999_us']:.0f} us | {x['errors']:.0f} | {x['non_2xx']:.0f} |")
print(f"\n{r['cpus']} CPUs, load average at the end {r['loadavg_at_end']}, commit {r['commit']}")
PY
((SAVE)) && say "wrote ${OUT_JSON#"$SRC"/}"
exit 0
