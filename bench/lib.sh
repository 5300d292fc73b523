# Helpers for bench/run.sh, sourced: messages, free ports, background processes with a cleanup
# trap, bounded polling, and what /proc says about a set of processes (CPU time, resident memory).
# shellcheck shell=bash

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

port_in_use() { ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .; }
# free_port VAR: sets VAR to a port nobody listens on, below the kernel's ephemeral range (where
# client connections' local ends could make bind fail), not handed out before in this run, and
# reserved in the registry the integration tests share ($RS_PORTS_DIR: one file per port naming its
# owner's pid, taken under a lock, see tests/integration/lib.sh), so a test running beside this run
# (test_bench_smoke runs this harness in the suite) is never given the same port: Ringside and the
# upstream bind with SO_REUSEPORT and would share it silently.
taken_ports=" "
RS_PORTS_DIR=${RS_PORTS_DIR:-${TMPDIR:-/tmp}/rs-test-ports}
reserve_port() { # PORT: succeeds if PORT is now this run's in the registry
    mkdir -p "$RS_PORTS_DIR" || return 1
    (
        flock 9 || exit 1
        f=$RS_PORTS_DIR/$1
        owner=$(cat "$f" 2>/dev/null) && [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null && exit 1
        echo $$ >"$f"
    ) 9>"$RS_PORTS_DIR/.lock"
}
release_ports() { # the ports this run reserved (at exit)
    grep -lx "$$" "$RS_PORTS_DIR"/[0-9]* 2>/dev/null | xargs -r rm -f || true
}
free_port() {
    local p tries=0 lo span
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
    span=$((lo > 21000 ? lo - 20000 : 10000))
    while ((tries++ < 500)); do
        p=$((20000 + RANDOM % span))
        [[ $taken_ports == *" $p "* ]] && continue
        port_in_use "$p" && continue
        reserve_port "$p" || continue
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
# poll SECONDS CMD...: runs CMD every 50 ms until it succeeds; false at the deadline.
poll() {
    local deadline_s=$1
    shift
    local end=$((SECONDS + deadline_s))
    until "$@"; do
        ((SECONDS < end)) || return 1
        sleep 0.05
    done
}

# Every background process the run starts is recorded here (spawn) and stopped by the EXIT trap:
# SIGTERM, a bounded wait, then SIGKILL.
BG_PIDS=()
spawn() { # spawn LOGBASE CMD...: starts CMD in the background; its pid in SPAWNED
    "${@:2}" >"$1.out" 2>"$1.err" &
    SPAWNED=$!
    BG_PIDS+=("$SPAWNED")
}
stop_all() {
    local pid
    for pid in "${BG_PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${BG_PIDS[@]}"; do
        poll 3 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BG_PIDS=()
}

# cpu_ticks PID...: utime + stime of the processes (all their threads), in clock ticks, summed.
# Fields 14 and 15 of /proc/PID/stat; the command name (field 2) may hold spaces, so split after
# its closing parenthesis.
cpu_ticks() {
    local pid line sum=0 rest
    for pid in "$@"; do
        line=$(<"/proc/$pid/stat") || continue
        rest=${line##*) }
        read -r -a f <<<"$rest"
        sum=$((sum + f[11] + f[12])) # fields 14, 15 counted from field 3
    done
    echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# rss_kb PID...: resident set size of the processes (VmRSS), in KiB, summed.
rss_kb() {
    local pid sum=0 v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || v=0
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# fd_count PID: open file descriptors of a process.
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# answers PORT BYTES: an HTTP GET / on 127.0.0.1:PORT returns 200 with BYTES bytes of body.
answers() {
    [[ $(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 1 \
        "http://127.0.0.1:$1/") == "200 $2" ]]
}

# answers_mtls PORT BYTES: the same over mutual TLS, as the mTLS systems' client-side hop would
# ask (client certificate, the server's name and root checked).
answers_mtls() {
    [[ $(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 1 \
        --cacert "$MTLS_DIR/root.pem" --cert "$MTLS_DIR/client.pem" --key "$MTLS_DIR/client.key" \
        --resolve "$MTLS_SERVER_DNS:$1:127.0.0.1" "https://$MTLS_SERVER_DNS:$1/") == "200 $2" ]]
}
