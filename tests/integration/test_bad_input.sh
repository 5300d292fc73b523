#!/usr/bin/env bash
# Bad and hostile input, and failing upstreams. Each bad request gets Envoy's status and a closed
# connection, while a well-behaved keep-alive connection opened before it keeps working; timeouts,
# the connection limit and upstream failures show in the status, the access log flags and stats.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP P_IDLE P_LIMIT UA U_DEAD <<<"$(free_ports 6)"
start_upstream a "$UA"

hcm() { # STAT_PREFIX EXTRA-HCM-YAML
    cat <<EOF
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $1
          request_headers_timeout: 1s
$2
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $TMP/access.log
              log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:PATH)%\n" } }
          http_filters:
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/dead" }
                route: { cluster: dead }
              - match: { prefix: "/slow/" }
                route: { cluster: a, prefix_rewrite: "/delay/", timeout: 0.5s }
              - match: { prefix: "/" }
                route: { cluster: a }
EOF
}
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: $P_HTTP } }
    filter_chains:
    - filters:
$(hcm bad "")
  - name: idle
    address: { socket_address: { address: 127.0.0.1, port_value: $P_IDLE } }
    filter_chains:
    - filters:
$(hcm idle "          common_http_protocol_options: { idle_timeout: 1s }")
  - name: limited
    address: { socket_address: { address: 127.0.0.1, port_value: $P_LIMIT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.connection_limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: cl
          max_connections: 2
$(hcm limited "")
  clusters:
$(yaml_static_cluster a $UA)
$(yaml_static_cluster dead $U_DEAD)
EOF
start_ringside "$TMP/bootstrap.yaml"

# bad_case NAME EXPECTED-STATUS DATA [rawclient args]: the status, the close, the probe
bad_case() {
    local name=$1 want=$2 data=$3
    shift 3
    local out
    out=$(raw "$P_HTTP" "$data" --probe / --wait-close "$@")
    assert_match "$(head -n1 <<<"$out")" "^HTTP/1\.[01] $want " "$name -> $want"
    assert_contains "$out" "<<CLOSED>>" "$name: connection closed"
    assert_contains "$out" "<<PROBE 200 200>>" "$name: a concurrent keep-alive connection keeps working"
}

big=$(head -c 70000 /dev/zero | tr '\0' a)
bad_case "headers > 60 KiB" 431 "GET / HTTP/1.1\r\nHost: x\r\nx-big: $big\r\n\r\n"
wait_stat http.bad.rq_header_too_large 1
many=$(for i in $(seq 1 101); do printf 'x-h%d: v\\r\\n' "$i"; done)
bad_case "101 headers" 431 "GET / HTTP/1.1\r\nHost: x\r\n$many\r\n"
wait_stat http.bad.rq_header_too_large 2

body=$(head -c 100000 /dev/zero | tr '\0' b)
bad_case "content-length body > max_request_bytes" 413 "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n$body"
chunk=$(head -c 30000 /dev/zero | tr '\0' c)
bad_case "chunked body > max_request_bytes" 413 \
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7530\r\n$chunk\r\n7530\r\n$chunk\r\n7530\r\n$chunk\r\n0\r\n\r\n"
wait_stat http.bad.downstream_rq_too_large 2
# a body under the limit passes through the buffer filter
assert_eq "$(curl -s --data-binary "${body:0:60000}" "http://127.0.0.1:$P_HTTP/up")" \
    "body_bytes=60000 crc32=$(python3 -c 'import zlib; print("%08x" % zlib.crc32(b"b"*60000))')" \
    "a 60,000-byte body under max_request_bytes is forwarded"

bad_case "content-length + transfer-encoding" 400 \
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
bad_case "two different content-length" 400 \
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
bad_case "bad chunk size" 400 "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
bad_case "obs-fold" 400 "GET / HTTP/1.1\r\nHost: x\r\nx-folded: a\r\n  b\r\n\r\n"
bad_case "bare LF" 400 "GET / HTTP/1.1\nHost: x\n\n"
bad_case "garbage request line" 400 "HELLO\r\n\r\n"
bad_case "HTTP/1.0 without accept_http_10" 426 "GET / HTTP/1.0\r\nHost: x\r\n\r\n"
wait_stat http.bad.downstream_cx_protocol_error 6

# slow headers: 408 after request_headers_timeout (1s), counted
t0=$EPOCHREALTIME
bad_case "slow headers" 408 "GET / HTTP/1.1\r\nHost: x\r\n" --idle 5
elapsed=$(python3 -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
assert_between "$elapsed" 900 4000 "408 came after about request_headers_timeout (ms)"
wait_stat http.bad.downstream_rq_header_timeout 1

# idle connection closed after common_http_protocol_options.idle_timeout (1s), before and after
# a request; counted
t0=$EPOCHREALTIME
out=$(raw "$P_IDLE" "" --idle 5)
elapsed=$(python3 -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
assert_eq "$(tail -n1 <<<"$out")" "<<CLOSED>>" "a silent connection is closed by the idle timeout"
assert_between "$elapsed" 900 4000 "closed after about idle_timeout (ms)"
out=$(raw "$P_IDLE" 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' --responses 1 --wait-close --idle 5)
assert_match "$out" "^HTTP/1.1 200" "a request on the idle-timeout listener is answered"
assert_eq "$(tail -n1 <<<"$out")" "<<CLOSED>>" "then the idle connection is closed"
wait_stat http.idle.downstream_cx_idle_timeout 2

# connection limit: 2 held connections, the third is closed without an answer, counted
out=$(python3 - "$P_LIMIT" <<'EOF'
import socket, sys
port = int(sys.argv[1])
def get(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    d = b""
    while b"\r\n\r\n" not in d:
        c = s.recv(65536)
        if not c: return "closed"
        d += c
    return d.split(b" ")[1].decode()
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
res = [get(s) for s in held]
extra = socket.create_connection(("127.0.0.1", port))
try:
    res.append(get(extra))
except ConnectionResetError:
    res.append("closed")
res.append(get(held[0]))
held[1].close()
extra.close()
print(" ".join(res))
EOF
)
assert_eq "$out" "200 200 closed 200" "connection_limit max_connections 2: third connection closed, held ones work"
wait_stat connection_limit.cl.limited_connections 1
# a slot frees when a connection closes
wait_for "a connection_limit slot to free" 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P_LIMIT/)\" = 200 ]"
log "ok: a new connection is accepted once a held one closed"

# upstream failures: refused -> 503 UF, reset -> 503 UC, too slow -> 504 UT
U=http://127.0.0.1:$P_HTTP
assert_eq "$(status "$U/dead")" 503 "upstream refused -> 503"
assert_eq "$(status "$U/reset")" 503 "upstream reset -> 503"
assert_eq "$(status "$U/slow/3000")" 504 "upstream slower than the route timeout -> 504"
assert_eq "$(status "$U/slow/10")" 200 "upstream within the route timeout -> 200"
wait_for "access log lines" 10 grep -q ' /slow/10$' "$TMP/access.log"
alog=$(cat "$TMP/access.log")
assert_contains "$alog" "503 UF /dead" "access log: 503 UF for the refused upstream"
assert_contains "$alog" "503 UC /reset" "access log: 503 UC for the reset upstream"
assert_contains "$alog" "504 UT /slow/3000" "access log: 504 UT for the upstream timeout"
assert_eq "$(grep -c '^431 DPE' <<<"$alog")" 2 "access log: both 431s logged with DPE"
assert_ge "$(grep -c '^400 DPE' <<<"$alog")" 6 "access log: the 400s logged with DPE"
assert_eq "$(grep -c '^413 ' <<<"$alog")" 2 "access log: both 413s logged"
assert_contains "$alog" "408 " "access log: the 408 is logged"
# every local reply is a request: 2x431 + 2x413 + 6x400 + 426 + 408
wait_stat http.bad.downstream_rq_4xx 12
wait_stat cluster.dead.upstream_cx_connect_fail 1
wait_stat cluster.a.upstream_rq_timeout 1
wait_stat http.bad.downstream_rq_5xx 3
# the proxy is still healthy
assert_eq "$(status "$U/")" 200 "the proxy still serves after all of the above"
