#!/usr/bin/env bash
# `make run`: a short, self-contained tour of Ringside on loopback. Starts a local upstream,
# starts ringside from examples/bootstrap.yaml (on free ports if the example's are taken), sends
# HTTP, direct-response and TCP-proxy requests through it, a short wrk burst when wrk is
# installed, then prints the access log, selected admin stats and /clusters, and stops
# everything with SIGTERM. Exits 0 only if every step worked and ringside exited 0.
#
# usage: scripts/run-demo.sh [BUILD_DIR]     (default: build)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
RINGSIDE=$BUILD/sidecar/ringside
UPSTREAM_BIN=$BUILD/bench/upstream
CONFIG=$SRC/examples/bootstrap.yaml
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

# --- cleanup: whatever happens, no child outlives the script -------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringside-demo.XXXXXX")
rs_pid=""
up_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in $rs_pid $up_pid; do
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

[[ -x $RINGSIDE ]] || die "$RINGSIDE not found: run 'make build' first"
command -v curl >/dev/null || die "curl is required"
command -v ss >/dev/null || die "ss (iproute2) is required"

# --- ports and config -----------------------------------------------------------------------------

heading "Setup"
http_port="" tcp_port="" admin_port="" up_port=""
choose_port http_port 10000
choose_port tcp_port 10001
choose_port admin_port 15000
choose_port up_port 8080
if [[ "$http_port $tcp_port $admin_port $up_port" != "10000 10001 15000 8080" ]]; then
    sed -e "s/port_value: 10000\b/port_value: $http_port/" \
        -e "s/port_value: 10001\b/port_value: $tcp_port/" \
        -e "s/port_value: 15000\b/port_value: $admin_port/" \
        -e "s/port_value: 8080\b/port_value: $up_port/" \
        "$CONFIG" >"$tmp/bootstrap.yaml"
    CONFIG=$tmp/bootstrap.yaml
    note "some of the example's ports are taken; using a copy of examples/bootstrap.yaml"
fi
note "config:   $CONFIG"
note "ports:    http $http_port, tcp $tcp_port, admin $admin_port, upstream $up_port"

# --- upstream -------------------------------------------------------------------------------------

if [[ -x $UPSTREAM_BIN ]]; then
    "$UPSTREAM_BIN" --port "$up_port" --id demo-upstream --body-bytes 64 \
        >"$tmp/upstream.log" 2>&1 &
    up_pid=$!
    note "upstream: $UPSTREAM_BIN (pid $up_pid)"
else
    command -v python3 >/dev/null || die "neither $UPSTREAM_BIN nor python3 is available"
    mkdir -p "$tmp/www"
    echo "hello from the demo upstream" >"$tmp/www/index.html"
    python3 -m http.server --bind 127.0.0.1 --directory "$tmp/www" "$up_port" \
        >"$tmp/upstream.log" 2>&1 &
    up_pid=$!
    note "upstream: python3 -m http.server (pid $up_pid; build/bench/upstream not built)"
fi
up_ready() {
    alive "$up_pid" || die "upstream exited early: $(tail -5 "$tmp/upstream.log")"
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$up_port/"
}
poll "$READY_DEADLINE_S" up_ready || die "upstream not answering on :$up_port after ${READY_DEADLINE_S}s"

# --- ringside -------------------------------------------------------------------------------------

"$RINGSIDE" -c "$CONFIG" --concurrency 2 --drain-time-s 5 \
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

# --- requests -------------------------------------------------------------------------------------

failures=0
# show_http TITLE EXPECTED_STATUS URL: the status line and a few headers, and the body's first line.
show_http() {
    local title=$1 want=$2 url=$3 status
    heading "$title"
    note "curl $url"
    if ! curl -s --max-time 5 -D "$tmp/h" -o "$tmp/b" "$url"; then
        note "FAILED: curl error"
        failures=$((failures + 1))
        return 0
    fi
    tr -d '\r' <"$tmp/h" | grep -iE '^(HTTP/|x-served-by|x-envoy-upstream-service-time|server|content-length|x-request-id)' |
        sed 's/^/   < /'
    note "body: $(head -c 80 "$tmp/b" | head -1)"
    status=$(tr -d '\r' <"$tmp/h" | awk 'NR==1 {print $2}')
    if [[ $status != "$want" ]]; then
        note "FAILED: expected $want, got ${status:-nothing}"
        failures=$((failures + 1))
    fi
}

show_http "HTTP through ringside (route to cluster app)" 200 "http://127.0.0.1:$http_port/"
show_http "HTTP, a second request (pooled upstream connection)" 200 "http://127.0.0.1:$http_port/?n=2"
show_http "Direct response (/healthz, answered by ringside itself)" 200 "http://127.0.0.1:$http_port/healthz"
show_http "TCP proxy (:$tcp_port forwards bytes to the upstream)" 200 "http://127.0.0.1:$tcp_port/"

heading "Load burst"
if command -v wrk >/dev/null; then
    note "wrk -t1 -c4 -d2s --latency http://127.0.0.1:$http_port/"
    if wrk -t1 -c4 -d2s --latency "http://127.0.0.1:$http_port/" >"$tmp/wrk" 2>&1; then
        grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|^ +(50|99)%' "$tmp/wrk" | sed 's/^ */   /'
        if grep -qE 'Non-2xx|Socket errors' "$tmp/wrk"; then
            note "FAILED: wrk saw errors"
            failures=$((failures + 1))
        fi
    else
        note "FAILED: wrk exited non-zero"
        failures=$((failures + 1))
    fi
else
    note "wrk not installed; skipped"
fi

# --- what ringside recorded ----------------------------------------------------------------------

heading "Access log (ringside's stdout)"
grep '"curl/' "$tmp/ringside.out" | sed 's/^/   /' || true
n_other=$(grep -vc '"curl/' "$tmp/ringside.out" || true)
((n_other == 0)) || note "... and $n_other more lines from the wrk burst"
if ! grep -q '"GET /healthz HTTP/1.1" 200' "$tmp/ringside.out"; then
    note "FAILED: no access-log line for /healthz"
    failures=$((failures + 1))
fi

heading "Admin /stats (listener, http, tcp, cluster counters; non-zero only)"
curl -sf --max-time 5 "http://127.0.0.1:$admin_port/stats?usedonly&filter=%5E(listener%7Chttp%7Ctcp%7Ccluster%5C.app)%5C." \
    >"$tmp/stats" || die "GET /stats failed"
grep -vE ': 0$|P[0-9]+\(' "$tmp/stats" | grep -E '(_rq_|_cx_|_2xx|_5xx|rq_total|cx_total|downstream_rq|upstream_rq|bytes)' |
    head -40 | sed 's/^/   /'

heading "Admin /clusters"
curl -sf --max-time 5 "http://127.0.0.1:$admin_port/clusters" | sed 's/^/   /' || die "GET /clusters failed"

# --- stop -----------------------------------------------------------------------------------------

heading "Stop"
kill -TERM "$rs_pid"
poll "$STOP_DEADLINE_S" gone "$rs_pid" ||
    die "ringside still running ${STOP_DEADLINE_S}s after SIGTERM"
rc=0
wait "$rs_pid" || rc=$?
rs_pid=""
note "ringside got SIGTERM and exited with status $rc"
((rc == 0)) || {
    tail -20 "$tmp/ringside.err" >&2
    die "ringside exit status $rc"
}
grep -iE 'error|fatal|assert' "$tmp/ringside.err" | head -5 | sed 's/^/   ringside stderr: /' || true

if ((failures > 0)); then
    die "$failures check(s) failed"
fi
heading "Demo finished: all requests answered, ringside exited cleanly"
