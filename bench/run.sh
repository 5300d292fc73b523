#!/usr/bin/env bash
# `make bench` / `make bench-full`: Ringside against a direct connection, HAProxy and NGINX, one
# and two hops, in one run on this machine (see bench/README.md).
#
#   bench/run.sh [BUILD_DIR [SET]]      BUILD_DIR default build; SET quick (default), full, mtls
#                                       or mtls-tail
#
# Systems (bench/systems.sh): direct; ringside, haproxy, nginx with 1 hop and with 2 hops
# (client-side sidecar -> server-side sidecar), one worker per proxy process, configs generated
# here and saved with the results. Scenarios (bench/scenarios.sh): 1,000 and 10,000 rps open loop,
# closed-loop maximum, L4 bulk transfer, a new connection per request; then memory: each system's
# resident set idle, under the 10,000 rps scenario, and holding 10,000 idle connections.
# Within a round every scenario runs on every system in turn (A B C A B C ...); rounds repeat and
# the report gives medians.
# The mtls set (`make bench-mtls`): direct and the mTLS mesh hop pairs (ringside-mtls,
# haproxy-mtls, nginx-mtls: plaintext -> hop 1 -> mutual TLS -> hop 2 -> plaintext upstream) with
# the 1,000 / 10,000 rps and maximum-throughput scenarios, and full mTLS handshakes per second
# straight to hop 2 (tlsconn), against BoringSSL's limit on one core, measured in every round by
# bench/tls_speed. Quick durations, 3 rounds, no idle-connection memory. RS_BENCH_MTLS=1 adds the
# mTLS systems and tlsconn to the quick or full set instead.
# The mtls-tail set: the p99 comparison of the mTLS systems (bench/README.md, "The mTLS tail"):
# direct and the mTLS hop pairs, the two open-loop scenarios only, in short slices over many
# rounds, the order of the systems shuffled each round, the load generator pinned beside the
# upstream (CPU 0, the proxies on CPU 1), everything at SCHED_FIFO 1; the report pairs each
# round's p99s.
#
# Writes bench/results/<date>-<set>.json, .md, -latency.png, -overhead.png, and the configs and
# raw loadgen output under bench/results/<date>-<set>/.
# Environment: RS_BENCH_ROUNDS, RS_BENCH_WARMUP (s), RS_BENCH_SCALE (multiplies every duration),
# RS_BENCH_SYSTEMS / RS_BENCH_SCENARIOS (subsets, space-separated), RS_BENCH_IDLE_CONNS (10000),
# RS_BENCH_RESULTS (bench/results), RS_BENCH_SMOKE=1 (~15 s: every duration 0.15 s,
# 1 round, 200 idle connections; for tests/integration/test_bench_smoke.sh), RS_BENCH_BASELINE
# (a ringside binary run by the systems "rsbase-<n>hop", for before/after comparisons),
# RS_BENCH_PIN_LOADGEN (CPUs for the load generator; default unpinned, 0 in mtls-tail),
# RS_BENCH_RT=1 (everything of the run at SCHED_FIFO 1, below), RS_BENCH_SHUFFLE=1 (a new
# order of the systems every round; default 1 in mtls-tail), RS_BENCH_MTLS=1 (above).
# shellcheck disable=SC2086,SC2206 # pid lists (SYS_PIDS) and RS_BENCH_SYSTEMS split into words on purpose
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SET=${2:-quick}
SMOKE=${RS_BENCH_SMOKE:-0}
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
# shellcheck source=bench/systems.sh
. "$HERE/systems.sh"
# shellcheck source=bench/scenarios.sh
. "$HERE/scenarios.sh"
# shellcheck source=bench/mtls.sh
. "$HERE/mtls.sh"

RINGSIDE=$BUILD/sidecar/ringside
UPSTREAM_BIN=$BUILD/bench/upstream
LOADGEN=$BUILD/bench/loadgen
TLS_SPEED=$BUILD/bench/tls_speed
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
BODY=1024

case $SET in
quick | mtls) ROUNDS=3 WARMUP=0.3 ;;
full) ROUNDS=5 WARMUP=1 ;;
mtls-tail) ROUNDS=20 WARMUP=0.3 ;;
*) die "unknown set '$SET' (quick, full, mtls or mtls-tail)" ;;
esac
IDLE_CONNS=10000
SCALE=1
# SHUFFLE=1: every round runs the systems in a new order, a permutation drawn with the round's
# number as the seed (the same in every run), so that no system always runs right after the same
# other one, nor always first.
SHUFFLE=${RS_BENCH_SHUFFLE:-0}
if [[ $SET == mtls ]]; then
    SYSTEMS=(direct "${MTLS_SYSTEMS[@]}") SCENARIOS=("${MTLS_SCENARIOS[@]}") IDLE_CONNS=0
elif [[ $SET == mtls-tail ]]; then
    # rsbase-mtls runs the same binary as ringside-mtls unless RS_BENCH_BASELINE names another:
    # an A/A control, which shows how far two identical systems differ in this method.
    SYSTEMS=(direct ringside-mtls rsbase-mtls haproxy-mtls nginx-mtls)
    SCENARIOS=("${TAIL_SCENARIOS[@]}") IDLE_CONNS=0
    RS_BENCH_BASELINE=${RS_BENCH_BASELINE:-$BUILD/sidecar/ringside}
    SHUFFLE=${RS_BENCH_SHUFFLE:-1}
    RS_BENCH_PIN_LOADGEN=${RS_BENCH_PIN_LOADGEN-0} RS_BENCH_RT=${RS_BENCH_RT:-1}
elif [[ ${RS_BENCH_MTLS:-0} == 1 ]]; then
    SYSTEMS+=("${MTLS_SYSTEMS[@]}") SCENARIOS+=(tlsconn)
fi
if [[ $SMOKE == 1 ]]; then
    [[ $SET == mtls ]] || IDLE_CONNS=200
    SET=${SET/quick/smoke} ROUNDS=1 WARMUP=0.05
    [[ $SET == smoke ]] || SET=$SET-smoke
fi
ROUNDS=${RS_BENCH_ROUNDS:-$ROUNDS}
WARMUP=${RS_BENCH_WARMUP:-$WARMUP}
SCALE=${RS_BENCH_SCALE:-$SCALE}
IDLE_CONNS=${RS_BENCH_IDLE_CONNS:-$IDLE_CONNS}
[[ -n ${RS_BENCH_SCENARIOS:-} ]] && read -r -a SCENARIOS <<<"$RS_BENCH_SCENARIOS"
# secs SCENARIO: its measured duration in this set.
secs() {
    local s
    if [[ $SMOKE == 1 ]]; then
        s=0.15
    elif [[ $SET == full ]]; then
        s=${SCEN_SECS_FULL[$1]}
    elif [[ $SET == mtls-tail* ]]; then
        s=${SCEN_SECS_TAIL[$1]}
    else
        s=${SCEN_SECS_QUICK[$1]}
    fi
    awk -v s="$s" -v k="$SCALE" 'BEGIN { print s * k }'
}

# --- what we need ---------------------------------------------------------------------------------

for b in "$RINGSIDE" "$UPSTREAM_BIN" "$LOADGEN"; do
    # A parallel rebuild leaves a binary missing for a moment while it links.
    poll 30 test -x "$b" || die "$b not built (make build, or cmake --build $BUILD --target ringside upstream loadgen)"
done
for tool in curl ss python3; do command -v "$tool" >/dev/null || die "$tool is required"; done
wanted=(${RS_BENCH_SYSTEMS:-${SYSTEMS[*]}})
SYSTEMS=()
for s in "${wanted[@]}"; do
    case $(sys_kind "$s") in
    haproxy) [[ -x $HAPROXY ]] || { say "haproxy not installed: $s skipped"; continue; } ;;
    nginx) [[ -x $NGINX ]] || { say "nginx not installed: $s skipped"; continue; } ;;
    rsbase) [[ -x ${RS_BENCH_BASELINE:-} ]] || die "$s needs RS_BENCH_BASELINE=<a ringside binary>" ;;
    direct | ringside) ;;
    *) die "unknown system '$s'" ;;
    esac
    SYSTEMS+=("$s")
done
[[ ${SYSTEMS[0]:-} == direct ]] || die "the systems must start with direct (the floor every hop is measured against)"
nginx_has_l4 || say "nginx has no stream module (Debian: libnginx-mod-stream): no L4 bulk figures for nginx"
MTLS=0
for s in "${SYSTEMS[@]}"; do sys_is_mtls "$s" && MTLS=1; done
if ((MTLS)); then
    command -v openssl >/dev/null || die "openssl is required for the mTLS systems' certificates"
    poll 30 test -x "$TLS_SPEED" || die "$TLS_SPEED not built (cmake --build $BUILD --target tls_speed)"
fi

# 10,000 idle connections need 10,000 fds in the proxy and in the client holding them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + 100)); then
    say "fd limit $(ulimit -n) is too low for $IDLE_CONNS idle connections: using $(($(ulimit -n) - 100))"
    IDLE_CONNS=$(($(ulimit -n) - 100))
fi

# Placement. Two CPUs leave no honest way to give everyone a core: the upstream gets CPU 0 and
# every proxy process CPU 1 (so the two hops of a 2-hop system share it, as two sidecars on one
# node share cores), and the load generator floats over both.
NCPU=$(nproc)
if ((NCPU >= 2)) && command -v taskset >/dev/null; then
    PIN_UP=(taskset -c 0) PIN_PROXY=(taskset -c 1)
    PLACEMENT="upstream (1 thread) on CPU 0; every proxy process (1 worker each, so both hops of a 2-hop system) on CPU 1; loadgen (2 threads) unpinned over all $NCPU CPUs"
else
    PIN_UP=() PIN_PROXY=()
    PLACEMENT="nothing pinned ($NCPU CPU(s) or no taskset)"
fi
# RS_BENCH_PIN_LOADGEN=CPUS pins the load generator too (taskset -c CPUS): with 0, the proxies
# get CPU 1 to themselves, which separates what a proxy does from what sharing its core costs.
PIN_LG=()
if [[ -n ${RS_BENCH_PIN_LOADGEN:-} ]]; then
    PIN_LG=(taskset -c "$RS_BENCH_PIN_LOADGEN")
    PLACEMENT="${PLACEMENT/loadgen (2 threads) unpinned over all $NCPU CPUs/loadgen (2 threads) on CPU $RS_BENCH_PIN_LOADGEN}"
fi
PIN_SPEED=("${PIN_PROXY[@]}") # bench/tls_speed spins: never real-time (it would be throttled)
# RS_BENCH_RT=1: the upstream, every proxy and the load generator run SCHED_FIFO priority 1
# (chrt -f 1), so that a CPU-bound process of someone else's on the same CPU no longer makes them
# wait out its time slice when they wake (several ms with EEVDF here). They block between events,
# so they take no more CPU than otherwise; the kernel keeps 5% of each CPU for everything else.
if [[ ${RS_BENCH_RT:-0} == 1 ]]; then
    chrt -f 1 true 2>/dev/null || die "RS_BENCH_RT=1 needs SCHED_FIFO (root or CAP_SYS_NICE)"
    PIN_UP+=(chrt -f 1) PIN_PROXY+=(chrt -f 1) PIN_LG+=(chrt -f 1)
    PLACEMENT+="; upstream, proxies and loadgen SCHED_FIFO priority 1 (chrt -f 1)"
fi

# Others may rebuild while a run goes on: every hop runs one snapshot of the binary, taken now.
SNAP=$(mktemp -d "${TMPDIR:-/tmp}/ringside-bench.XXXXXX")
cp "$RINGSIDE" "$SNAP/ringside"
RINGSIDE_BUILT=$(date -u -r "$RINGSIDE" '+%F %T UTC')
RINGSIDE_SHA=$(sha256sum "$SNAP/ringside" | cut -c1-12)
RINGSIDE=$SNAP/ringside
if [[ -n ${RS_BENCH_BASELINE:-} ]]; then
    cp "$RS_BENCH_BASELINE" "$SNAP/ringside-base"
    RINGSIDE_BASE=$SNAP/ringside-base
fi
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$({ git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null || true; } | awk '$2 !~ /^bench\/results\// { printf "%s ", $2 }')

RESULTS=${RS_BENCH_RESULTS:-$SRC/bench/results}
DATE=$(date -u +%F)
NAME=$DATE-$SET
OUT=$RESULTS/$NAME
rm -rf "$OUT"
mkdir -p "$OUT/configs" "$OUT/raw" "$OUT/logs"
trap 'stop_all; release_ports; rm -rf "$SNAP"' EXIT
# The mTLS systems' PKI, new for every run, under the run's temporary directory.
((MTLS)) && mtls_certs "$SNAP/pki"
trap 'exit 130' INT
trap 'exit 143' TERM

# --- bring everything up --------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$SECONDS
free_port UP_PORT
spawn "$OUT/logs/upstream" "${PIN_UP[@]}" "$UPSTREAM_BIN" --port "$UP_PORT" --id bench \
    --body-bytes "$BODY" --threads 1
UP_PID=$SPAWNED
poll 10 answers "$UP_PORT" "$BODY" || die "upstream not answering 200 with $BODY bytes on :$UP_PORT"
for s in "${SYSTEMS[@]}"; do
    sys_start "$s" "$OUT/configs" "$OUT/logs"
    poll 10 sys_up "$s" || die "$s not answering through ports ${SYS_HTTP[$s]}/${SYS_TCP[$s]} within 10 s (logs in $OUT/logs)"
done
say "upstream :$UP_PORT; systems: ${SYSTEMS[*]}; scenarios: ${SCENARIOS[*]}; $ROUNDS round(s)"
say "placement: $PLACEMENT"

: >"$OUT/memory.tsv"
for s in "${SYSTEMS[@]}"; do # idle: started and answered one request each way, nothing since
    [[ -n ${SYS_PIDS[$s]} ]] && printf '%s\tidle\t%s\n' "$s" "$(rss_kb ${SYS_PIDS[$s]})" >>"$OUT/memory.tsv"
done
for s in "${SYSTEMS[@]}"; do # warm-up: pools filled, code paged in
    [[ $SMOKE == 1 ]] && break
    "$LOADGEN" --url "http://127.0.0.1:${SYS_HTTP[$s]}/" --max -c 64 --threads 2 --duration 0.2 \
        --json >/dev/null 2>&1 || true
done

# --- the rounds -----------------------------------------------------------------------------------

# run_cell SCENARIO SYSTEM ROUND: one loadgen run; its JSON in raw/, and the proxies' CPU ticks
# (and mid-run RSS where the scenario asks) appended to cells.tsv. On an mTLS system's hop 2
# (tlsconn), loadgen is the client-side sidecar (client certificate, root, SPIFFE ID of the
# server checked) and the CPU counted is hop 2's alone.
run_cell() {
    local scen=$1 sys=$2 round=$3 url raw c0 c1 rss="" lg d pid pids tls=()
    scen_runs_on "$scen" "$sys" || return 0
    url=http://127.0.0.1:${SYS_HTTP[$sys]}/
    pids=${SYS_PIDS[$sys]}
    case ${SCEN_PORT[$scen]} in
    tcp)
        sys_has_l4 "$sys" || return 0
        url=http://127.0.0.1:${SYS_TCP[$sys]}/
        ;;
    tls)
        url=https://127.0.0.1:${SYS_TLS[$sys]}/
        pids=${SYS_TLS_PID[$sys]}
        tls=(--cert "$MTLS_DIR/client.pem" --key "$MTLS_DIR/client.key" --ca "$MTLS_DIR/root.pem"
            --san "$MTLS_SERVER_SAN" --sni "$MTLS_SERVER_DNS" --alpn http/1.1)
        ;;
    esac
    d=$(secs "$scen")
    raw=$OUT/raw/$scen.$sys.$round.json
    c0=$(cpu_ticks $pids)
    # shellcheck disable=SC2086 # SCEN_ARGS holds several words on purpose
    "${PIN_LG[@]}" "$LOADGEN" --url "$url" "${tls[@]}" ${SCEN_ARGS[$scen]} --duration "$d" \
        --warmup "$WARMUP" --json >"$raw" 2>"$raw.err" &
    lg=$!
    if [[ -n ${SCEN_RSS[$scen]:-} && -n ${SYS_PIDS[$sys]} ]]; then
        sleep "$(awk -v w="$WARMUP" -v d="$d" 'BEGIN { print w + d / 2 }')"
        rss=$(rss_kb ${SYS_PIDS[$sys]})
    fi
    # loadgen exits 1 when no response completed in the window: a bulk run too short for one
    # 16 MiB GET still counts its bytes. Anything else, or no JSON, is a failure.
    local rc=0
    wait "$lg" || rc=$?
    if ((rc > 1)) || ! python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$raw" 2>/dev/null; then
        die "loadgen failed (exit $rc): $scen on $sys, round $round: $(tail -3 "$raw.err")"
    fi
    c1=$(cpu_ticks $pids)
    [[ -s $raw.err ]] || rm -f "$raw.err"
    for pid in ${SYS_PIDS[$sys]} $UP_PID; do
        alive "$pid" || die "a process of $sys (or the upstream) died during $scen, round $round (logs in $OUT/logs)"
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$sys" "$round" "$((c1 - c0))" "$rss" >>"$OUT/cells.tsv"
}

# tls_limit ROUND: BoringSSL's ECDSA P-256 sign/verify and X25519 rates on the proxies' CPU, with
# nothing else of the run going (bench/tls_speed; the handshake limit is derived from them), and
# its whole server-side handshake in memory with the run's certificates. In the first round,
# OpenSSL's figures too (`openssl speed`: the library HAProxy and NGINX use).
tls_limit() {
    local secs=0.6
    [[ $SET == full* ]] && secs=1.5
    [[ $SMOKE == 1 ]] && secs=0.06
    "${PIN_SPEED[@]}" "$TLS_SPEED" --secs "$secs" --pki "$MTLS_DIR" --json \
        >"$OUT/raw/tls_speed.$1.json" ||
        die "bench/tls_speed failed"
    if (($1 == 1 && SMOKE == 0)); then
        "${PIN_SPEED[@]}" openssl speed -mr -seconds 1 ecdsap256 ecdhx25519 \
            >"$OUT/raw/openssl_speed.txt" 2>/dev/null || say "openssl speed failed: no OpenSSL figures"
    fi
}

: >"$OUT/cells.tsv"
# shuffled SEED: the systems in an order drawn with SEED (Fisher-Yates, bash's RANDOM), in ORDER.
shuffled() {
    local i j t
    ORDER=("${SYSTEMS[@]}")
    RANDOM=$1
    for ((i = ${#ORDER[@]} - 1; i > 0; i--)); do
        j=$((RANDOM % (i + 1)))
        t=${ORDER[i]} ORDER[i]=${ORDER[j]} ORDER[j]=$t
    done
}
for ((round = 1; round <= ROUNDS; round++)); do
    si=0
    for scen in "${SCENARIOS[@]}"; do
        say "round $round/$ROUNDS: $scen"
        [[ ${SCEN_PORT[$scen]} == tls ]] && tls_limit "$round"
        ORDER=("${SYSTEMS[@]}")
        ((SHUFFLE)) && shuffled $((round * 100 + si++))
        for s in "${ORDER[@]}"; do run_cell "$scen" "$s" "$round"; done
    done
done

# --- memory holding idle connections --------------------------------------------------------------

# hold_idle SYSTEM: IDLE_CONNS idle client connections to its HTTP port; RSS once the entry hop
# holds them all (or after 15 s, with the count it reached).
hold_idle() {
    local sys=$1 entry fifo holder rss base n
    entry=${SYS_PIDS[$sys]%% *}
    fifo=$OUT/logs/idle.fifo
    rm -f "$fifo"
    mkfifo "$fifo"
    base=$(fd_count "$entry")
    # After the load scenarios, buffers and pools may have grown: the per-connection figure is
    # measured from here, not from the idle RSS at start.
    printf '%s\tbefore_idle_conns\t%s\n' "$sys" "$(rss_kb ${SYS_PIDS[$sys]})" >>"$OUT/memory.tsv"
    python3 "$HERE/idle_conns.py" "${SYS_HTTP[$sys]}" "$IDLE_CONNS" <"$fifo" >"$OUT/logs/idle.$sys.out" 2>&1 &
    holder=$!
    exec 9>"$fifo"
    poll 60 grep -q '^open' "$OUT/logs/idle.$sys.out" || say "$sys: idle connections not all opened in 60 s"
    # shellcheck disable=SC2317 # called through poll
    held() { (($(fd_count "$entry") >= base + IDLE_CONNS)); }
    poll 15 held || true
    n=$(($(fd_count "$entry") - base))
    rss=$(rss_kb ${SYS_PIDS[$sys]})
    printf '%s\tidle_conns\t%s\t%s\n' "$sys" "$rss" "$n" >>"$OUT/memory.tsv"
    exec 9>&-
    wait "$holder" || true
    rm -f "$fifo"
}
if ((IDLE_CONNS > 0)); then
    say "memory: $IDLE_CONNS idle connections to each system"
    for s in "${SYSTEMS[@]}"; do [[ -n ${SYS_PIDS[$s]} ]] && ! sys_is_mtls "$s" && hold_idle "$s"; done
fi
ELAPSED=$((SECONDS - STARTED))
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
stop_all

# --- report ---------------------------------------------------------------------------------------

{
    kv() { printf '%s\t%s\n' "$1" "$2"; }
    kv date "$DATE"
    kv set "$SET"
    kv command "$(env | grep '^RS_BENCH_' | sort | tr '\n' ' ')bench/run.sh ${1:-build} ${2:-quick}"
    kv commit "$COMMIT"
    kv dirty "$DIRTY"
    kv ringside_built "$RINGSIDE_BUILT, sha256 $RINGSIDE_SHA"
    [[ -n ${RINGSIDE_BASE:-} ]] && kv baseline "$RS_BENCH_BASELINE, sha256 $(sha256sum "$RINGSIDE_BASE" | cut -c1-12)"
    kv cpus "$NCPU"
    kv cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    kv kernel "$(uname -r)"
    kv loadavg_before "$LOAD_BEFORE"
    kv loadavg_after "$LOAD_AFTER"
    kv elapsed_s "$ELAPSED"
    kv placement "$PLACEMENT"
    kv upstream "build/bench/upstream --threads 1 --body-bytes $BODY"
    kv rounds "$ROUNDS"
    kv shuffle "$SHUFFLE"
    kv warmup_s "$WARMUP"
    kv clk_tck "$CLK_TCK"
    kv idle_conns "$IDLE_CONNS"
    kv haproxy "$("$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print $3 }' || true)"
    kv nginx "$("$NGINX" -v 2>&1 | sed 's/.*nginx\///' || true)"
    kv systems "${SYSTEMS[*]}"
    kv scenarios "${SCENARIOS[*]}"
    for s in "${SYSTEMS[@]}"; do
        kv "sys.$s.kind" "$(sys_kind "$s")"
        kv "sys.$s.hops" "$(sys_hops "$s")"
        kv "sys.$s.configs" "$(for c in ${SYS_CONFIGS[$s]}; do printf '%s ' "${c#"$RESULTS"/}"; done)"
        kv "sys.$s.mtls" "$(sys_is_mtls "$s" && echo 1 || echo 0)"
    done
    if ((MTLS)); then
        kv mtls "TLS 1.3 only; ECDSA P-256 root and leaves (SHA-256), made by openssl for this run; server $MTLS_SERVER_SAN + DNS:$MTLS_SERVER_DNS, client $MTLS_CLIENT_SAN; hop 2 requires and verifies the client certificate; hop 1 verifies the server's chain and SAN (Ringside the URI SAN, HAProxy verifyhost and NGINX proxy_ssl_name the DNS SAN)"
        kv tls_speed "taskset -c 1 build/bench/tls_speed (BoringSSL), once per round before tlsconn"
        kv openssl "$(openssl version)"
        kv boringssl "Debian android-libboringssl ($(dpkg-query -W -f '${Version}' android-libboringssl 2>/dev/null || echo '?'))"
    fi
    for c in "${SCENARIOS[@]}"; do
        kv "scen.$c.label" "${SCEN_LABEL[$c]}"
        kv "scen.$c.loadgen" "${SCEN_ARGS[$c]} --duration $(secs "$c") --warmup $WARMUP"
        kv "scen.$c.duration_s" "$(secs "$c")"
        kv "scen.$c.port" "${SCEN_PORT[$c]}"
        kv "scen.$c.work" "${SCEN_WORK[$c]}"
        kv "scen.$c.on" "${SCEN_ON[$c]:-all}"
    done
} >"$OUT/meta.tsv"

python3 "$HERE/report.py" "$OUT" "$RESULTS/$NAME"
if command -v gnuplot >/dev/null; then
    gnuplot -e "base='$RESULTS/$NAME'" "$HERE/plot.gp" || die "gnuplot failed"
else
    say "gnuplot not installed: no plots"
fi
cat "$RESULTS/$NAME.md"
say "wrote $RESULTS/$NAME.{json,md} and plots; configs and raw output in $OUT/"
python3 - "$RESULTS/$NAME.json" <<'EOF'
import json, sys
errs = json.load(open(sys.argv[1]))["errors_total"]
if errs:
    sys.exit(f"bench: {errs} loadgen errors in the run (see the errors column)")
EOF
