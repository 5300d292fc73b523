#!/usr/bin/env bash
# The quick comparison behind `make bench`: requests per second and p50/p99 latency through one
# proxy hop (Ringside, HAProxy, NGINX) against a direct connection to the same upstream, all on
# loopback, measured with wrk.
#
#   bench/quick.sh [BUILD_DIR]          (default: build)
#
# Two loads, each run ROUNDS times, interleaved within a round (direct, ringside, haproxy, nginx),
# reported as medians:
#   max   wrk -t2 -c64 -d10s   closed loop, as many requests as the path will take
#   light wrk -t1 -c4  -d3s    4 connections, each pausing 1 ms before every request (a wrk Lua
#                              delay hook), so at most ~4,000 req/s: the latency of a mostly idle
#                              hop. wrk has no constant-rate mode; this is the nearest it gets.
#
# Placement: the upstream (1 thread) is pinned to CPU 0 and the proxy under test (1 worker) to
# CPU 1 when the machine has 2 or more CPUs; wrk is not pinned and shares both. On a 2-CPU machine
# that is tight: wrk competes with the upstream and the proxy, so absolute figures are low and
# the comparison between proxies is what these numbers are for.
#
# Writes bench/results/<date>-quick.md and .json, and the generated proxy configs and raw wrk
# output into bench/results/<date>/. Environment: RS_BENCH_ROUNDS (3), RS_BENCH_MAX_S (10),
# RS_BENCH_LIGHT_S (3), RS_BENCH_BODY (1024 bytes), RS_BENCH_RESULTS (bench/results),
# RS_BENCH_ONLY (space-separated subset of "ringside haproxy nginx").
# shellcheck disable=SC2317 # helpers are called indirectly (trap, poll)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RINGSIDE=$BUILD/sidecar/ringside
UPSTREAM_BIN=$BUILD/bench/upstream
ROUNDS=${RS_BENCH_ROUNDS:-3}
MAX_S=${RS_BENCH_MAX_S:-10}
LIGHT_S=${RS_BENCH_LIGHT_S:-3}
BODY=${RS_BENCH_BODY:-1024}
LIGHT_PAUSE_MS=1
RESULTS=${RS_BENCH_RESULTS:-$SRC/bench/results}
DATE=$(date -u +%F)
OUT=$RESULTS/$DATE
MD=$RESULTS/$DATE-quick.md
JSON=$RESULTS/$DATE-quick.json
LOADS=(max light)
declare -A WRK_ARGS=([max]="-t2 -c64 -d${MAX_S}s" [light]="-t1 -c4 -d${LIGHT_S}s")

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# --- process helpers (same conventions as scripts/run-demo.sh) ----------------------------------

port_in_use() { ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .; }
# free_port VAR: sets VAR to a port nobody listens on, below the kernel's ephemeral range (where
# client connections' local ends could make bind fail) and not handed out before.
taken_ports=" "
free_port() {
    local p tries=0 lo span
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    span=$((lo > 21000 ? lo - 20000 : 10000))
    while ((tries++ < 500)); do
        p=$((20000 + RANDOM % span))
        [[ $taken_ports == *" $p "* ]] && continue
        port_in_use "$p" && continue
        taken_ports+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free TCP port found from 20000"
}
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $st != Z* ]]
}
gone() { ! alive "$1"; }
poll() {
    local deadline_s=$1
    shift
    local end=$((SECONDS + deadline_s))
    until "$@"; do
        ((SECONDS < end)) || return 1
        sleep 0.05
    done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringside-bench.XXXXXX")
declare -A PID=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PID[@]}"; do
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
        poll 3 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- what we need --------------------------------------------------------------------------------

[[ -x $RINGSIDE ]] || die "$RINGSIDE not found: run 'make build' first"
for tool in wrk curl ss; do
    command -v "$tool" >/dev/null || die "$tool is required (scripts/deps.sh installs it)"
done
TARGETS=(direct)
for t in ${RS_BENCH_ONLY:-ringside haproxy nginx}; do
    case $t in
    ringside) TARGETS+=(ringside) ;;
    haproxy | nginx)
        if command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]]; then
            TARGETS+=("$t")
        else
            say "$t not installed: skipped (Debian: apt-get install ${t/nginx/nginx-light})"
        fi
        ;;
    *) die "unknown target '$t'" ;;
    esac
done
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

ncpu=$(nproc)
if ((ncpu >= 2)) && command -v taskset >/dev/null; then
    PIN_UP=(taskset -c 0)
    PIN_PROXY=(taskset -c 1)
    placement="upstream pinned to CPU 0, proxy to CPU 1, wrk unpinned (shares both; $ncpu CPUs)"
else
    PIN_UP=()
    PIN_PROXY=()
    placement="no pinning ($ncpu CPU(s) or no taskset): everything shares"
fi

mkdir -p "$OUT" "$tmp/raw"
rm -f "$OUT"/*.txt

# --- upstream ------------------------------------------------------------------------------------

UP_PORT="" RS_ADMIN="" port=""
free_port UP_PORT
if [[ -x $UPSTREAM_BIN ]]; then
    upstream_desc="build/bench/upstream, 1 thread, $BODY-byte body"
    "${PIN_UP[@]}" "$UPSTREAM_BIN" --port "$UP_PORT" --id bench --body-bytes "$BODY" --threads 1 \
        >"$tmp/upstream.log" 2>&1 &
else
    say "build/bench/upstream not built: falling back to python3 http.server (figures will be python-bound)"
    upstream_desc="python3 -m http.server (HTTP/1.1), $BODY-byte file"
    mkdir -p "$tmp/www"
    head -c "$BODY" /dev/zero | tr '\0' x >"$tmp/www/index.html"
    "${PIN_UP[@]}" python3 -m http.server --protocol HTTP/1.1 --bind 127.0.0.1 \
        --directory "$tmp/www" "$UP_PORT" >"$tmp/upstream.log" 2>&1 &
fi
PID[upstream]=$!

# --- proxy configs (generated, kept next to the results) ----------------------------------------

declare -A PORT=([direct]=$UP_PORT)
free_port RS_ADMIN

write_ringside_config() {
    cat >"$OUT/ringside.yaml" <<EOF
# Generated by bench/quick.sh: one HTTP listener routing every request to the upstream; no access
# log. Run with --concurrency 1.
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: $RS_ADMIN }
node: { id: bench, cluster: bench }
static_resources:
  listeners:
  - name: http_in
    address:
      socket_address: { address: 127.0.0.1, port_value: ${PORT[ringside]} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: app }
  clusters:
  - name: app
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $UP_PORT }
EOF
}

write_haproxy_config() {
    cat >"$OUT/haproxy.cfg" <<EOF
# Generated by bench/quick.sh: one thread, keep-alive on both sides, upstream connections reused
# across client connections, no logging.
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend app
backend app
    server app 127.0.0.1:$UP_PORT
EOF
}

write_nginx_config() {
    cat >"$OUT/nginx.conf" <<EOF
# Generated by bench/quick.sh: one worker process, keep-alive pool to the upstream, no access log.
# Paths are relative to the prefix given with -p.
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

start_target() {
    local t=$1
    case $t in
    ringside)
        write_ringside_config
        "${PIN_PROXY[@]}" "$RINGSIDE" -c "$OUT/ringside.yaml" --concurrency 1 -l warning \
            --drain-time-s 2 >"$tmp/ringside.out" 2>"$tmp/ringside.err" &
        ;;
    haproxy)
        write_haproxy_config
        "$HAPROXY" -c -q -f "$OUT/haproxy.cfg" || die "haproxy rejects $OUT/haproxy.cfg"
        "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$OUT/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
        ;;
    nginx)
        write_nginx_config
        mkdir -p "$tmp/nginx/tmp"
        "${PIN_PROXY[@]}" "$NGINX" -p "$tmp/nginx" -c "$OUT/nginx.conf" -e "$tmp/nginx/error.log" \
            >"$tmp/nginx.out" 2>&1 &
        ;;
    esac
    PID[$t]=$!
}

answers() {
    local t=$1
    if [[ $t != direct ]] && gone "${PID[$t]}"; then
        die "$t exited at start: $(tail -5 "$tmp/$t".* 2>/dev/null)"
    fi
    [[ $(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 1 \
        "http://127.0.0.1:${PORT[$t]}/") == "200 $BODY" ]]
}

for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] && continue
    free_port port
    PORT[$t]=$port
done
poll 10 answers direct || die "upstream not answering 200 with $BODY bytes on :$UP_PORT"
for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] && continue
    start_target "$t"
    poll 10 answers "$t" || die "$t not answering 200 with $BODY bytes on :${PORT[$t]} within 10 s"
done

# --- measurement ---------------------------------------------------------------------------------

cat >"$tmp/report-max.lua" <<'EOF'
-- Prints one machine-readable line when wrk finishes (the done hook costs nothing per request).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
# The light load paces each connection: a pause of LIGHT_PAUSE_MS before every request (wrk's
# latency clock starts after the pause), so the proxy is mostly idle and the figure is the hop's
# own cost rather than queueing.
{
    cat "$tmp/report-max.lua"
    echo "delay = function() return $LIGHT_PAUSE_MS end"
} >"$tmp/report-light.lua"

# run_wrk LOAD TARGET ROUND: one wrk run; appends "load target round rps p50 p99 errors" to samples.
run_wrk() {
    local load=$1 t=$2 round=$3 raw line
    raw=$OUT/wrk-$load-$t-$round.txt
    # shellcheck disable=SC2086 # WRK_ARGS holds several words on purpose
    wrk ${WRK_ARGS[$load]} --latency -s "$tmp/report-$load.lua" "http://127.0.0.1:${PORT[$t]}/" >"$raw" 2>&1 ||
        die "wrk failed against $t: $(tail -3 "$raw")"
    line=$(grep '^RESULT ' "$raw") || die "no RESULT line from wrk against $t (see $raw)"
    awk -v load="$load" -v t="$t" -v r="$round" '{
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        errs = v["connect"] + v["read"] + v["write"] + v["status"] + v["timeout"]
        printf "%s %s %s %.0f %s %s %d\n", load, t, r, v["requests"] / (v["duration_us"] / 1e6),
            v["p50_us"], v["p99_us"], errs
    }' <<<"$line" >>"$tmp/samples"
    local x
    for x in "${TARGETS[@]}"; do
        [[ $x == direct ]] || alive "${PID[$x]}" || die "$x died during the run (load $load, round $round)"
    done
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
say "upstream :$UP_PORT ($upstream_desc); targets: ${TARGETS[*]}; $placement"
for t in "${TARGETS[@]}"; do # warm-up: pools filled, code paged in
    [[ $t == direct ]] || wrk -t1 -c8 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1 || true
done
: >"$tmp/samples"
for load in "${LOADS[@]}"; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for t in "${TARGETS[@]}"; do
            say "$load round $round/$ROUNDS: $t"
            run_wrk "$load" "$t" "$round"
        done
    done
done
elapsed=$((SECONDS - started))

# Resident memory of each proxy after the runs, and Ringside's own view of what it served.
declare -A RSS_KB=()
for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] || RSS_KB[$t]=$(ps -o rss= -p "${PID[$t]}" | tr -d ' ')
done
rs_stats=""
if [[ -n ${PID[ringside]:-} ]]; then
    rs_stats=$(curl -sf --max-time 5 "http://127.0.0.1:$RS_ADMIN/stats?filter=%5E(http%5C.bench%7Ccluster%5C.app)%5C.(downstream_rq_(total%7C2xx%7C4xx%7C5xx)%7Cupstream_rq_(total%7C2xx%7C5xx%7Ctimeout)%7Cupstream_cx_(total%7Cconnect_fail))%24" ||
        echo "(admin /stats unavailable)")
fi

# Stop the proxies; Ringside must drain and exit 0.
rs_exit=""
for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] && continue
    kill -TERM "${PID[$t]}" 2>/dev/null || true
    poll 10 gone "${PID[$t]}" || say "$t still running 10 s after SIGTERM"
    if [[ $t == ringside ]]; then
        rs_exit=0
        wait "${PID[$t]}" || rs_exit=$?
        unset 'PID[ringside]'
    fi
done

# --- report --------------------------------------------------------------------------------------

# med LOAD TARGET FIELD: the median over rounds (field 4 rps, 5 p50, 6 p99); the sum for 7 errors.
med() {
    awk -v l="$1" -v t="$2" -v f="$3" '$1 == l && $2 == t { print $f }' "$tmp/samples" | sort -n |
        awk -v f="$3" '{ v[NR] = $1; s += $1 }
            END {
                if (NR == 0) print "null"
                else if (f == 7) print s
                else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# ratio A B: A/B to two decimals; n/a unless both are positive (a hop that measured <= 0 is noise).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a <= 0 || b <= 0) print "n/a"; else printf "%.2f", a / b }'; }

declare -A M=()
for load in "${LOADS[@]}"; do
    for t in "${TARGETS[@]}"; do
        M[$load.$t.rps]=$(med "$load" "$t" 4)
        M[$load.$t.p50]=$(med "$load" "$t" 5)
        M[$load.$t.p99]=$(med "$load" "$t" 6)
        M[$load.$t.err]=$(med "$load" "$t" 7)
        if [[ $t == direct ]]; then
            M[$load.$t.hop50]=0
            M[$load.$t.hop99]=0
        else
            M[$load.$t.hop50]=$(calc %.0f "${M[$load.$t.p50]} - ${M[$load.direct.p50]}")
            M[$load.$t.hop99]=$(calc %.0f "${M[$load.$t.p99]} - ${M[$load.direct.p99]}")
        fi
    done
done

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kernel=$(uname -r)
ver_haproxy=$({ "$HAPROXY" -v 2>/dev/null || true; } | awk 'NR == 1 { print $3 }')
ver_nginx=$({ "$NGINX" -v 2>&1 || true; } | sed 's/.*nginx\///')
ver_wrk=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }') # wrk -v exits 1
rs_commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)

{
    echo "# Ringside quick bench, $DATE"
    echo
    echo "- Command: \`make bench\` (runs \`bench/run.sh build\` -> \`bench/quick.sh build\`), commit $rs_commit; took ${elapsed} s."
    echo "- Host: $ncpu x $cpu_model, Linux $kernel; load average before: $load_before."
    if awk -v l="${load_before%% *}" 'BEGIN { exit !(l > 0.5) }'; then
        echo "  The machine was not idle before the run (1-minute load ${load_before%% *}): expect noise, p99 most of all."
    fi
    echo "- Upstream: $upstream_desc."
    echo "- Proxies, one hop, 1 worker each, keep-alive upstream pools, no logging (configs in"
    echo "  \`bench/results/$DATE/\`): Ringside --concurrency 1, HAProxy $ver_haproxy nbthread 1,"
    echo "  NGINX $ver_nginx worker_processes 1. Load generator: wrk $ver_wrk."
    echo "- Placement: $placement."
    echo "- Every figure is the median of $ROUNDS rounds run interleaved (${TARGETS[*]}, then again)."
    echo "  Latencies in µs. hop = proxied − direct (difference of medians): what the proxy adds."
    for load in "${LOADS[@]}"; do
        echo
        if [[ $load == light ]]; then
            echo "## $load: \`wrk ${WRK_ARGS[$load]} --latency\`, ${LIGHT_PAUSE_MS} ms pause before each request"
        else
            echo "## $load: \`wrk ${WRK_ARGS[$load]} --latency\`"
        fi
        echo
        echo "| path | req/s | p50 µs | p99 µs | hop p50 µs | hop p99 µs | errors | RSS after |"
        echo "|---|--:|--:|--:|--:|--:|--:|--:|"
        for t in "${TARGETS[@]}"; do
            rss="-"
            [[ -n ${RSS_KB[$t]:-} ]] && rss="$(calc %.1f "${RSS_KB[$t]} / 1024") MiB"
            hop50="+${M[$load.$t.hop50]}"
            hop99="+${M[$load.$t.hop99]}"
            [[ $t == direct ]] && hop50="-" && hop99="-"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${M[$load.$t.rps]}" \
                "${M[$load.$t.p50]}" "${M[$load.$t.p99]}" "${hop50/+-/-}" "${hop99/+-/-}" \
                "${M[$load.$t.err]}" "$rss"
        done
    done
    for peer in haproxy nginx; do
        [[ " ${TARGETS[*]} " == *" ringside "* && " ${TARGETS[*]} " == *" $peer "* ]] || continue
        peers_present=1
    done
    if [[ -n ${peers_present:-} ]]; then
        echo
        echo "## Ringside relative to the others (ratio of medians; req/s: higher is better, latency: lower is better)"
        echo
        hdr="| metric |"
        sep="|---|"
        for peer in haproxy nginx; do
            [[ " ${TARGETS[*]} " == *" $peer "* ]] || continue
            hdr+=" ringside/$peer |"
            sep+="--:|"
        done
        echo "$hdr"
        echo "$sep"
        for load in "${LOADS[@]}"; do
            for m in rps p50 p99 hop50 hop99; do
                [[ $load == light && $m == rps ]] && continue # paced: the rate says nothing
                row="| $load $m |"
                for peer in haproxy nginx; do
                    [[ " ${TARGETS[*]} " == *" $peer "* ]] || continue
                    row+=" $(ratio "${M[$load.ringside.$m]}" "${M[$load.$peer.$m]}") |"
                done
                echo "$row"
            done
        done
    fi
    if [[ -n $rs_stats ]]; then
        echo
        echo "Ringside counters after the runs (admin /stats), exit status after SIGTERM: ${rs_exit:-n/a}"
        echo
        echo '```'
        echo "$rs_stats"
        echo '```'
    fi
} >"$tmp/report.md"

{
    printf '{\n  "date": "%s",\n  "commit": "%s",\n' "$DATE" "$rs_commit"
    printf '  "host": {"cpus": %d, "cpu": "%s", "kernel": "%s", "loadavg_before": "%s"},\n' \
        "$ncpu" "$cpu_model" "$kernel" "$load_before"
    printf '  "setup": {"upstream": "%s", "placement": "%s", "rounds": %d, "haproxy": "%s", "nginx": "%s", "wrk": "%s"},\n' \
        "$upstream_desc" "$placement" "$ROUNDS" "$ver_haproxy" "$ver_nginx" "$ver_wrk"
    printf '  "loads": {'
    sep=""
    for load in "${LOADS[@]}"; do
        extra=""
        [[ $load == light ]] && extra=", ${LIGHT_PAUSE_MS} ms pause before each request"
        printf '%s"%s": "wrk %s --latency%s"' "$sep" "$load" "${WRK_ARGS[$load]}" "$extra"
        sep=", "
    done
    printf '},\n  "results": [\n'
    sep=""
    for load in "${LOADS[@]}"; do
        for t in "${TARGETS[@]}"; do
            rounds=$(awk -v l="$load" -v t="$t" '$1 == l && $2 == t {
                printf "%s{\"rps\": %s, \"p50_us\": %s, \"p99_us\": %s, \"errors\": %s}", s, $4, $5, $6, $7; s = ", " }' \
                "$tmp/samples")
            printf '%s    {"load": "%s", "target": "%s", "rps": %s, "p50_us": %s, "p99_us": %s, "hop_p50_us": %s, "hop_p99_us": %s, "errors": %s, "rss_kb": %s, "rounds": [%s]}' \
                "$sep" "$load" "$t" "${M[$load.$t.rps]}" "${M[$load.$t.p50]}" "${M[$load.$t.p99]}" \
                "${M[$load.$t.hop50]}" "${M[$load.$t.hop99]}" "${M[$load.$t.err]}" "${RSS_KB[$t]:-null}" "$rounds"
            sep=$',\n'
        done
    done
    printf '\n  ],\n  "ringside_exit_status": %s\n}\n' "${rs_exit:-null}"
} >"$tmp/report.json"

mkdir -p "$RESULTS"
cp "$tmp/report.md" "$MD"
cp "$tmp/report.json" "$JSON"
cat "$tmp/report.md"
say "wrote $MD, $JSON and $OUT/"

fail=0
for load in "${LOADS[@]}"; do
    for t in "${TARGETS[@]}"; do
        ((${M[$load.$t.err]} == 0)) || {
            say "$t: ${M[$load.$t.err]} wrk errors under the $load load (see $OUT/wrk-$load-$t-*.txt)"
            fail=1
        }
    done
done
if [[ -n $rs_exit && $rs_exit != 0 ]]; then
    say "ringside exited $rs_exit after SIGTERM: $(tail -5 "$tmp/ringside.err")"
    fail=1
fi
exit "$fail"
