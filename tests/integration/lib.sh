# Helpers sourced by every integration test: ports, processes with cleanup traps, bounded waits,
# admin stats, assertions. A test writes its bootstrap with a heredoc using the ports it got from
# free_ports, starts upstreams and ringside, and asserts what a user would see.
#
# ctest sets RS_BUILD (build directory) and RS_SRC (source tree); run by hand, they default to
# ./build and the checkout this file is in. Exit 77 = skipped (ctest's SKIP_RETURN_CODE).
set -u -o pipefail

RS_SRC=${RS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
RS_BUILD=${RS_BUILD:-$RS_SRC/build}
RINGSIDE=$RS_BUILD/sidecar/ringside
UPSTREAM=$RS_BUILD/bench/upstream
LOADGEN=$RS_BUILD/bench/loadgen
TEST_NAME=$(basename "$0" .sh)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rs-$TEST_NAME.XXXXXX")
PIDS=()          # background processes to stop on exit
CLEANUP_CMDS=()  # shell commands run at exit, after the processes are stopped
RS_PID=          # the ringside under test
ADMIN_PORT=      # its admin port (set by start_ringside from the bootstrap)
RS_FAILED=0

# 1 under the ASan/UBSan build: slower and hungrier, so timing and memory bounds scale.
RS_SANITIZED=0
if grep -q '^RS_SANITIZE:BOOL=ON' "$RS_BUILD/CMakeCache.txt" 2>/dev/null; then RS_SANITIZED=1; fi
# Sanitizer reports go to the process's stderr; a finding fails the test (checked at exit).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Messages go to the test's own stdout (fd 8) even from inside a redirected command, so a fail
# called within wait_for's condition is still seen.
exec 8>&1
log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&8; }

skip() {
    log "SKIP: $*"
    exit 77
}

# Prints the logs of the processes this test started, then fails.
fail() {
    log "FAIL: $*"
    RS_FAILED=1
    exit 1
}

need() {
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "needs $c"; done
}

[ -x "$RINGSIDE" ] || skip "no ringside binary at $RINGSIDE (build first)"
[ -x "$UPSTREAM" ] || skip "no upstream binary at $UPSTREAM (build first)"
need curl python3

# ---- processes -------------------------------------------------------------------------------

stop_pid() { # stop_pid PID: SIGTERM, then a second SIGTERM, then SIGKILL, each with a bounded wait
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    for sig in TERM TERM KILL; do
        kill -s $sig "$pid" 2>/dev/null || return 0
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.05
        done
    done
}

cleanup() {
    local rc=$?
    trap - EXIT
    # what follows is the test's output even when a fail came from inside a redirected command
    exec 1>&8 2>&1
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    wait 2>/dev/null
    local c
    for c in "${CLEANUP_CMDS[@]}"; do eval "$c" >/dev/null 2>&1; done
    release_ports
    # A sanitizer finding in any process we ran is a failure, whatever the assertions said.
    if grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP"/*.err >/dev/null 2>&1; then
        log "FAIL: sanitizer report:"
        grep -hE -A40 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP"/*.err | head -120
        rc=1
    fi
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        local f
        for f in "$TMP"/*.err "$TMP"/*.out; do
            [ -s "$f" ] || continue
            log "---- tail of $(basename "$f") ----"
            tail -n 30 "$f"
        done
        log "logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: N distinct TCP ports free on 127.0.0.1, below the ephemeral range so an
# outgoing connection cannot take one. Tests run in parallel and a port is bound some time after it
# is picked, so a port is also reserved for this test in a registry shared by every test on the
# machine ($RS_PORTS_DIR, one file per port naming the owner's pid, taken under a lock): no other
# test is given it until this one exits (its files are removed then, or reclaimed once the owner is
# dead). A CI run once lost a test to two tests picking the same port 15 s apart.
RS_PORTS_DIR=${RS_PORTS_DIR:-${TMPDIR:-/tmp}/rs-test-ports}
free_ports() {
    python3 - "$1" "$RS_PORTS_DIR" "$$" <<'EOF'
import fcntl, os, random, socket, sys
n, d, me = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(d, exist_ok=True)
def owner_alive(path):
    try:
        pid = int(open(path).read() or 0)
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False
got = []
with open(os.path.join(d, ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    for _ in range(100000):
        if len(got) == n:
            break
        p = random.randrange(20000, 32000)
        path = os.path.join(d, str(p))
        if p in got or (os.path.exists(path) and owner_alive(path)):
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        with open(path, "w") as f:
            f.write(me)
        got.append(p)
if len(got) < n:
    sys.exit("free_ports: no %d free ports" % n)
print(" ".join(map(str, got)))
EOF
}
release_ports() { # the ports this test reserved (at exit)
    grep -lx "$$" "$RS_PORTS_DIR"/[0-9]* 2>/dev/null | xargs -r rm -f || true
}

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds; fails the test at the deadline.
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs)) start=$EPOCHREALTIME
    while ! "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then fail "timed out after ${secs}s waiting for $what"; fi
        sleep 0.02
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for_port() { wait_for "port $1 to accept" "${2:-10}" port_open "$1"; }
port_closed() { ! port_open "$1"; }

# start_upstream ID PORT [upstream args...]: an upstream HTTP server answering with x-upstream-id ID.
start_upstream() {
    local id=$1 port=$2
    shift 2
    "$UPSTREAM" --port "$port" --id "$id" "$@" >"$TMP/upstream-$id.out" 2>"$TMP/upstream-$id.err" &
    PIDS+=($!)
    wait_for_port "$port"
}

# start_ringside CONFIG [ringside args...]: ringside in the background with --concurrency 2 (unless
# given), waits until its admin says LIVE. Access log (stdout) in $TMP/ringside.out.
start_ringside() {
    local cfg=$1
    shift
    local conc=(--concurrency 2)
    case " $* " in *" --concurrency "*) conc=() ;; esac
    ADMIN_PORT=$(python3 - "$cfg" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"admin:.*?port_value:\s*(\d+)", t, re.S)
print(m.group(1) if m else "")
EOF
)
    "$RINGSIDE" -c "$cfg" "${conc[@]}" --drain-time-s 5 "$@" >"$TMP/ringside.out" 2>"$TMP/ringside.err" &
    RS_PID=$!
    PIDS+=($RS_PID)
    if [ -n "$ADMIN_PORT" ]; then
        wait_for "ringside admin to be ready" 20 ready_ok
    fi
}

ready_ok() {
    kill -0 "$RS_PID" 2>/dev/null || fail "ringside exited during startup"
    curl -sf "http://127.0.0.1:$ADMIN_PORT/ready" | grep -q LIVE
}

# ---- bootstrap pieces ------------------------------------------------------------------------
# The YAML every test's bootstrap repeats, for use inside a test's heredoc: $(yaml_admin PORT),
# $(yaml_hcm NAME PORT STAT_PREFIX) (a listener up to the HCM's stat_prefix: the test adds its own
# HCM options after it), $(yaml_router) (http_filters with only the router), and
# $(yaml_static_cluster NAME PORT) (one 127.0.0.1 endpoint, connect_timeout 1s).
yaml_admin() {
    printf 'admin:\n  address: { socket_address: { address: 127.0.0.1, port_value: %s } }\n' "$1"
}
yaml_hcm() {
    cat <<Y
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $3
Y
}
yaml_router() {
    cat <<'Y'
          http_filters:
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
Y
}
yaml_static_cluster() {
    cat <<Y
  - name: $1
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
Y
}

# ---- admin -----------------------------------------------------------------------------------

admin() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT$1"; }

# stat_value NAME: the value of one stat from /stats ("" when absent).
stat_value() {
    admin /stats | awk -v n="$1" -F': ' '$1 == n { print $2; exit }'
}

# stat_at_least NAME MIN: true once the stat has reached MIN (for wait_for).
stat_at_least() { local v; v=$(stat_value "$1"); [ -n "$v" ] && [ "$v" -ge "$2" ]; }

# wait_stat NAME MIN: waits until a counter reaches MIN (stats are flushed by workers periodically).
wait_stat() { wait_for "stat $1 >= $2 (now '$(stat_value "$1")')" "${3:-10}" stat_at_least "$1" "$2"; }

# ---- assertions (each says what was expected and what was seen) -------------------------------

assert_eq() { # ACTUAL EXPECTED WHAT
    [ "$1" == "$2" ] || fail "$3: expected '$2', got '$1'"
    log "ok: $3 ($1)"
}
assert_ne() { [ "$1" != "$2" ] || fail "$3: expected anything but '$2'"; log "ok: $3"; }
assert_match() { # STRING REGEX WHAT
    [[ "$1" =~ $2 ]] || fail "$3: '$1' does not match /$2/"
    log "ok: $3"
}
assert_contains() { # HAYSTACK NEEDLE WHAT
    [[ "$1" == *"$2"* ]] || fail "$3: '$2' not found in: $(printf '%s' "$1" | head -c 2000)"
    log "ok: $3"
}
assert_not_contains() {
    [[ "$1" != *"$2"* ]] || fail "$3: '$2' unexpectedly found in: $(printf '%s' "$1" | head -c 2000)"
    log "ok: $3"
}
assert_between() { # VALUE LOW HIGH WHAT (inclusive)
    [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] || fail "$4: $1 not within [$2, $3]"
    log "ok: $4 ($1 in [$2, $3])"
}
assert_ge() { [ -n "$1" ] && [ "$1" -ge "$2" ] || fail "$3: '$1' < $2"; log "ok: $3 ($1 >= $2)"; }
assert_le() { [ -n "$1" ] && [ "$1" -le "$2" ] || fail "$3: '$1' > $2"; log "ok: $3 ($1 <= $2)"; }

# ---- HTTP ------------------------------------------------------------------------------------

# status URL [curl args...]: the response status code (000 when no response).
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }

# header NAME URL [curl args...]: the value of one response header.
header() {
    local name=$1
    shift
    curl -s -D - -o /dev/null --max-time 10 "$@" | tr -d '\r' |
        awk -v n="$(printf '%s' "$name" | tr A-Z a-z)" -F': ' 'tolower($1) == n { print $2; exit }'
}

# raw PORT [python args]: sends stdin bytes on one connection, prints what comes back until the
# peer closes or IDLE seconds pass without data; with -c prints "CLOSED" or "OPEN" last.
raw() {
    python3 "$RS_SRC/tests/integration/rawclient.py" "$@"
}

# rss_kb PID FIELD: VmRSS / VmHWM of a process, in KiB.
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# ---- xDS: the third-party ADS server (tests/peers/ads_server.js) -------------------------------
# ADS_RES is the resources file it serves (write it with xds_gen), ADS_LOG the running server's
# request log (JSON lines; $TMP/ads-N.log for the Nth start, as stream ids and nonces restart),
# ADS_PORT/ADS_PID the running server.
ADS_RES=$TMP/ads-resources.json
ADS_LOG=
ADS_PORT=
ADS_PID=
ADS_STARTS=0

# xds_gen ARGS...: writes $ADS_RES from tests/data/xds/gen.py's arguments (atomically, so the
# server never reads half a file).
xds_gen() {
    python3 "$RS_SRC/tests/data/xds/gen.py" "$@" >"$ADS_RES.tmp" || fail "gen.py $*"
    mv "$ADS_RES.tmp" "$ADS_RES"
}

# start_ads_server [PORT]: the ADS server on PORT (0 or absent: any), serving $ADS_RES.
start_ads_server() {
    ADS_STARTS=$((ADS_STARTS + 1))
    local out=$TMP/ads-$ADS_STARTS.out
    ADS_LOG=$TMP/ads-$ADS_STARTS.log
    RS_SRC=$RS_SRC node "$RS_SRC/tests/peers/ads_server.js" --resources "$ADS_RES" --log "$ADS_LOG" \
        --port "${1:-0}" >"$out" 2>"$TMP/ads-$ADS_STARTS.err" &
    ADS_PID=$!
    PIDS+=($ADS_PID)
    wait_for "the ADS server to listen" 15 grep -q '^listening' "$out"
    ADS_PORT=$(awk '/^listening/ { print $2; exit }' "$out")
}

# kill_ads_server: SIGKILL (no goodbye on the streams), waits until it is gone.
kill_ads_server() {
    kill -KILL "$ADS_PID" 2>/dev/null
    wait "$ADS_PID" 2>/dev/null
}

# ads_q EXPR: a Python expression over the running server's log (or $ADS_LOG set for the call):
# L (every line), R (requests), S (responses sent, each {"stream", "sent": {...}}), N (the
# requests of the last stream).
ads_q() {
    python3 - "$ADS_LOG" "$1" <<'PY'
import json, sys
L = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
R = [o for o in L if "kind" in o]
S = [o for o in L if "sent" in o]
last = max([o["stream"] for o in R], default=0)
N = [o for o in R if o["stream"] == last]
print(eval(sys.argv[2]))
PY
}

# ads_settled: every response the server sent has been answered (ACK or NACK) by a request
# carrying its nonce.
ads_settled() {
    [ "$(ads_q 'all(any(r["response_nonce"] == s["sent"]["nonce"] and r["stream"] == s["stream"] for r in R) for s in S)')" == True ]
}

# ads_push ARGS...: regenerates $ADS_RES from xds_gen's ARGS, has the server push it (SIGHUP)
# and waits until the server logged the reload and Ringside answered everything it sent. Many
# pushes at once: one line of arguments each on stdin of ads_push_many.
ads_push() { printf '%q ' "$@" | ads_push_many; }
ads_push_many() {
    python3 "$RS_SRC/tests/data/xds/ads_push.py" "$ADS_RES" "$ADS_LOG" "$ADS_PID" 10 ||
        fail "a push was not answered"
}

# yaml_ads_bootstrap ADMIN_PORT ADS_PORT API_TYPE [ADS_CONFIG_EXTRA]: a bootstrap whose only
# configuration comes over ADS (GRPC or DELTA_GRPC) from the xds-grpc cluster at 127.0.0.1:ADS_PORT.
# ADS_CONFIG_EXTRA is one more ads_config field ("set_node_on_first_message_only: true"). A test
# prepends its own node: block, or sets POD_NAME/POD_NAMESPACE/INSTANCE_IP for Istio's identity.
yaml_ads_bootstrap() {
    yaml_admin "$1"
    cat <<Y
dynamic_resources:
  ads_config:
    api_type: $3
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: { cluster_name: xds-grpc }
    ${4:-}
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
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
Y
}

# loadgen_ok JSON_FILE: fails unless the loadgen run had responses, no error and only 2xx.
loadgen_ok() {
    python3 - "$1" <<'PY' || fail "loadgen: $(cat "$1")"
import json, sys
r = json.load(open(sys.argv[1]))
s, e = r["status"], r["errors"]
assert r["requests"] > 0 and s["2xx"] > 0, "no responses"
assert e["total"] == 0, "errors"
assert sum(v for k, v in s.items() if k != "2xx") == 0, "non-2xx"
PY
    log "ok: loadgen $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["status"]["2xx"], "x 2xx, errors", r["errors"]["total"])' "$1")"
}

# xds_start_ringside API [ringside args...]: writes $TMP/boot.yaml (node id XDS_NODE_ID, then
# yaml_ads_bootstrap for $ADMIN and the running ADS server, ADS_CONFIG_EXTRA if set) and starts
# Ringside on it (start_ringside: waits until LIVE).
XDS_NODE_ID='sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local'
xds_start_ringside() {
    local api=$1
    shift
    {
        printf 'node:\n  id: %s\n  cluster: productpage.default\n' "$XDS_NODE_ID"
        yaml_ads_bootstrap "$ADMIN" "$ADS_PORT" "$api" "${ADS_CONFIG_EXTRA:-}"
    } >"$TMP/boot.yaml"
    start_ringside "$TMP/boot.yaml" "$@"
}

# ---- test certificates (openssl, ECDSA P-256) in $C -------------------------------------------
tls_certs_init() { C=$TMP/certs; mkdir -p "$C"; }
ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
# ca NAME: a self-signed root $C/NAME.pem, $C/NAME.key
ca() {
    ec "$C/$1.key"
    openssl req -x509 -new -key "$C/$1.key" -subj "/O=$1" -days 2 -out "$C/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
# leaf NAME CA SPIFFE_ID [DAYS_FROM DAYS_TO]: a workload certificate (URI SAN, DNS:localhost)
# signed by CA; the optional validity window is relative to now (e.g. -3 -1: expired)
leaf() {
    ec "$C/$1.key"
    openssl req -new -key "$C/$1.key" -subj "/O=mesh" -out "$C/$1.csr" 2>/dev/null
    printf 'subjectAltName=critical,URI:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$C/$1.ext"
    if [ $# -ge 5 ]; then # OpenSSL 3.0's x509 cannot set dates: its ca command can
        local d="$C/ca-$1"
        mkdir -p "$d" && : >"$d/index.txt"
        printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=sha256\npolicy=p\n[p]\nO=optional\n' \
            "$d" "$d" "$d" >"$d/ca.cnf"
        openssl rand -hex 8 >"$d/serial"
        openssl ca -batch -config "$d/ca.cnf" -cert "$C/$2.pem" -keyfile "$C/$2.key" \
            -in "$C/$1.csr" -extfile "$C/$1.ext" -out "$C/$1.pem" -notext \
            -startdate "$(date -u -d "$4 days" +%Y%m%d%H%M%SZ)" \
            -enddate "$(date -u -d "$5 days" +%Y%m%d%H%M%SZ)" 2>/dev/null
    else
        openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2.key" -CAcreateserial -days 1 \
            -extfile "$C/$1.ext" -out "$C/$1.pem" 2>/dev/null
    fi
}

# ---- mutual-TLS bootstrap pieces and third-party peers -----------------------------------------
# For the heredocs of the TLS tests, next to yaml_hcm & co. Certificates are names in $C (see
# leaf: NAME.pem and NAME.key). Each helper writes its block at the indentation it has inside a
# listener or cluster, so a test's heredoc shows the structure and what is special about it:
#     - name: strict-mtls
#       filter_chain_match: { transport_protocol: tls }
#   $(yaml_tls_downstream server --san-prefix spiffe://cluster.local/ --alpn '"http/1.1"')
#       filters:
#   $(yaml_hcm_filter strict up --access-log "$TMP/access.log" "strict %RESPONSE_CODE%")

# _yaml_tls_opts ARGS...: the options both TLS contexts take, set in the caller's locals (cert, ca,
# san, alpn, sni, params, require, indent). --san-exact/--san-prefix URI: one URI SAN matcher.
_yaml_tls_opts() {
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || fail "TLS helper: option $1 needs a value"
        case $1 in
        --cert) cert=$2 ;;
        --ca) ca=$2 ;;
        --san-exact) san="{ exact: \"$2\" }" ;;
        --san-prefix) san="{ prefix: \"$2\" }" ;;
        --alpn) alpn=$2 ;;
        --sni) sni=$2 ;;
        --tls-params) params=$2 ;;
        --require-client-cert) require=$2 ;;
        --indent) indent=$2 ;;
        *) fail "TLS helper: unknown option $1" ;;
        esac
        shift 2
    done
}

# _yaml_tls_common: common_tls_context's fields (ALPN, certificate, trusted CA, SAN matcher).
_yaml_tls_common() {
    [ -z "$params" ] || printf '  tls_params: %s\n' "$params"
    [ -z "$alpn" ] || printf '  alpn_protocols: [%s]\n' "$alpn"
    [ -z "$cert" ] || printf '  tls_certificates:\n  - certificate_chain: { filename: %s }\n    private_key: { filename: %s }\n' \
        "$C/$cert.pem" "$C/$cert.key"
    printf '  validation_context:\n    trusted_ca: { filename: %s }\n' "$C/$ca.pem"
    [ -z "$san" ] || printf '    match_typed_subject_alt_names:\n    - san_type: URI\n      matcher: %s\n' "$san"
}

# yaml_tls_downstream CERT [--ca NAME (root)] [--san-exact|--san-prefix URI] [--alpn LIST]
#   [--require-client-cert BOOL (true)]: a filter chain's transport_socket, a DownstreamTlsContext
# serving CERT and verifying clients against CA. LIST is YAML's inside [], e.g. '"h2", "http/1.1"'.
yaml_tls_downstream() {
    local cert=$1 ca=root san= alpn= sni= params= require=true indent=6
    shift
    _yaml_tls_opts "$@"
    {
        printf 'transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n'
        printf '    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n'
        printf '    require_client_certificate: %s\n    common_tls_context:\n' "$require"
        _yaml_tls_common | sed 's/^/    /'
    } | sed "s/^/$(printf '%*s' "$indent" '')/"
}

# yaml_tls_upstream [--cert NAME] [--ca NAME (root)] [--san-exact|--san-prefix URI] [--sni SNI]
#   [--alpn LIST] [--tls-params YAML] [--indent N (4)]: a cluster's transport_socket, an
# UpstreamTlsContext presenting NAME (none without --cert) and verifying the server against CA.
# --indent 6 for one inside transport_socket_matches.
yaml_tls_upstream() {
    local cert= ca=root san= alpn= sni= params= require= indent=4
    _yaml_tls_opts "$@"
    {
        printf 'transport_socket:\n  name: envoy.transport_sockets.tls\n  typed_config:\n'
        printf '    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n'
        [ -z "$sni" ] || printf '    sni: %s\n' "$sni"
        printf '    common_tls_context:\n'
        _yaml_tls_common | sed 's/^/    /'
    } | sed "s/^/$(printf '%*s' "$indent" '')/"
}

# yaml_tls_cluster NAME PORT [yaml_tls_upstream options]: as yaml_static_cluster (connect_timeout
# 2s, for the handshake), originating TLS.
yaml_tls_cluster() {
    cat <<Y
  - name: "$1"
    connect_timeout: 2s
    type: STATIC
    load_assignment:
      cluster_name: "$1"
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
Y
    shift 2
    yaml_tls_upstream "$@"
}

# yaml_inspectors tls|http...: a listener's listener_filters, the TLS and/or HTTP inspector.
yaml_inspectors() {
    printf '    listener_filters:\n'
    local k
    for k in "$@"; do
        case $k in
        tls) printf '    - name: envoy.filters.listener.tls_inspector\n      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }\n' ;;
        http) printf '    - name: envoy.filters.listener.http_inspector\n      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }\n' ;;
        *) fail "yaml_inspectors: unknown inspector $k" ;;
        esac
    done
}

# yaml_access_log PATH FORMAT: a network filter's access_log, one file logger writing FORMAT and a
# newline per request (HCM) or connection (tcp_proxy).
yaml_access_log() {
    cat <<Y
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $1
              log_format: { text_format_source: { inline_string: "$2\n" } }
Y
}

# yaml_route_all CLUSTER [PREFIX_REWRITE] [VHOST (all)]: an HCM's route_config, every request to
# CLUSTER.
yaml_route_all() {
    local rw=
    [ -z "${2:-}" ] || rw=", prefix_rewrite: \"$2\""
    cat <<Y
          route_config:
            virtual_hosts:
            - name: ${3:-all}
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: "$1"$rw }
Y
}

# yaml_hcm_filter STAT_PREFIX CLUSTER [--access-log PATH FORMAT] [--prefix-rewrite P] [--vhost V]:
# one item of a chain's filters: an HCM with only the router, every request to CLUSTER.
yaml_hcm_filter() {
    local stat=$1 cluster=$2 log_path= log_format= rw= vhost=
    shift 2
    while [ $# -gt 0 ]; do
        case $1 in
        --access-log) log_path=$2 log_format=$3; shift 3 ;;
        --prefix-rewrite) rw=$2; shift 2 ;;
        --vhost) vhost=$2; shift 2 ;;
        *) fail "yaml_hcm_filter: unknown option $1" ;;
        esac
    done
    cat <<Y
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $stat
Y
    [ -z "$log_path" ] || yaml_access_log "$log_path" "$log_format"
    yaml_router
    yaml_route_all "$cluster" "$rw" "$vhost"
}

# yaml_tcp_proxy_filter STAT_PREFIX CLUSTER [--access-log PATH FORMAT]: one item of a chain's
# filters: tcp_proxy to CLUSTER.
yaml_tcp_proxy_filter() {
    cat <<Y
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: "$1"
          cluster: "$2"
Y
    if [ "${3:-}" = --access-log ]; then yaml_access_log "$4" "$5"; fi
}

# start_nginx <<EOF server { ... } EOF: NGINX (one process, no daemon) with the server blocks read
# from stdin inside http { }; prefix and config in $TMP/ngx. The caller waits for the ports it needs.
start_nginx() {
    need nginx
    mkdir -p "$TMP/ngx/tmp"
    cat >"$TMP/ngx/nginx.conf" <<Y
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log info;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path tmp;
    proxy_temp_path tmp;
    fastcgi_temp_path tmp;
    uwsgi_temp_path tmp;
    scgi_temp_path tmp;
$(cat)
}
Y
    nginx -p "$TMP/ngx" -c "$TMP/ngx/nginx.conf" -e "$TMP/ngx/error.log" >"$TMP/nginx.out" 2>"$TMP/nginx.err" &
    PIDS+=($!)
}

# start_haproxy <<EOF frontend ... EOF: HAProxy (-db, in a background job) with the sections read
# from stdin (frontends, backends) after a global/defaults of 256 connections and 2s/10s timeouts.
# The configuration is checked first (haproxy -c): a bad one fails the test. In $TMP/haproxy.cfg.
start_haproxy() {
    need haproxy
    cat >"$TMP/haproxy.cfg" <<Y
global
    maxconn 256
defaults
    timeout connect 2s
    timeout client 10s
    timeout server 10s
$(cat)
Y
    haproxy -c -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.out" 2>&1 || fail "haproxy config: $(cat "$TMP/haproxy-check.out")"
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.out" 2>"$TMP/haproxy.err" &
    PIDS+=($!)
}

# start_echo PORT: tests/integration/echoserver.py on PORT (sends back what it receives), the
# upstream of tcp_proxy tests; logs in $TMP/echo.{out,err}.
start_echo() {
    python3 "$RS_SRC/tests/integration/echoserver.py" "$1" >"$TMP/echo.out" 2>"$TMP/echo.err" &
    PIDS+=($!)
    wait_for_port "$1"
}
