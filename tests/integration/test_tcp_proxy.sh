#!/usr/bin/env bash
# envoy.filters.network.tcp_proxy: bytes arrive intact both ways (echo, upload, download),
# half-close is carried through, weighted clusters spread connections, an upstream that refuses
# closes the downstream connection and is counted.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_ECHO P_WEIGHTED P_DEAD UA UB U_ECHO U_DEAD <<<"$(free_ports 8)"
start_upstream a "$UA"
start_upstream b "$UB"
python3 "$RS_SRC/tests/integration/echoserver.py" "$U_ECHO" >"$TMP/echo.out" 2>"$TMP/echo.err" &
PIDS+=($!)
wait_for_port "$U_ECHO"

cluster() { # NAME PORT
    cat <<EOF
  - name: $1
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: $1
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
EOF
}
tcp_listener() { # NAME PORT STAT_PREFIX ROUTE-YAML
    cat <<EOF
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: $3
$4
EOF
}
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(tcp_listener echo "$P_ECHO" tcp_echo "          cluster: echo")
$(tcp_listener weighted "$P_WEIGHTED" tcp_weighted "          weighted_clusters:
            clusters:
            - { name: a, weight: 75 }
            - { name: b, weight: 25 }")
$(tcp_listener dead "$P_DEAD" tcp_dead "          cluster: dead")
  clusters:
$(cluster a "$UA")
$(cluster b "$UB")
$(cluster echo "$U_ECHO")
$(cluster dead "$U_DEAD")
EOF
start_ringside "$TMP/bootstrap.yaml"

# echo: 4 MB each way at the same time, then half-close; everything comes back, in order
out=$(python3 - "$P_ECHO" <<'EOF'
import os, socket, sys, threading, zlib
data = os.urandom(4 << 20)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
got = bytearray()
s.settimeout(20)
while True:
    d = s.recv(1 << 16)
    if not d: break
    got += d
t.join()
print(len(got), zlib.crc32(got) == zlib.crc32(data))
EOF
)
assert_eq "$out" "4194304 True" "4 MiB echoed through the TCP proxy intact, half-close carried"

# several echo connections at once stay separate
out=$(python3 - "$P_ECHO" <<'EOF'
import socket, sys
ss = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(50)]
for i, s in enumerate(ss): s.sendall(b"conn-%d\n" % i)
ok = 0
for i, s in enumerate(ss):
    s.settimeout(5)
    want = b"conn-%d\n" % i
    got = b""
    while len(got) < len(want): got += s.recv(100)
    ok += got == want
print(ok)
EOF
)
assert_eq "$out" 50 "50 concurrent TCP connections each get their own bytes back"

# upload and download through the TCP proxy to the HTTP upstream
head -c 5000000 /dev/urandom >"$TMP/body"
crc=$(python3 -c 'import sys,zlib; print("%08x" % zlib.crc32(open(sys.argv[1],"rb").read()))' "$TMP/body")
wa=http://127.0.0.1:$P_WEIGHTED
assert_eq "$(curl -s --data-binary @"$TMP/body" "$wa/upload")" "body_bytes=5000000 crc32=$crc" \
    "5 MB upload through the TCP proxy intact"
crc=$(python3 -c 'import zlib; n=5000000; b=bytes(97+i%26 for i in range(26))*(n//26+1); print("%08x" % zlib.crc32(b[:n]))')
got=$(curl -s "$wa/bytes/5000000" | python3 -c 'import sys,zlib; d=sys.stdin.buffer.read(); print(len(d), "%08x" % zlib.crc32(d))')
assert_eq "$got" "5000000 $crc" "5 MB download through the TCP proxy intact"

# weighted clusters: 400 connections (curl opens a new one per URL with --no-keepalive... use
# Connection: close so each request is its own TCP connection)
curl -s -o /dev/null -D - -H 'connection: close' "$wa/[1-400]" | tr -d '\r' |
    awk -F': ' '$1=="x-upstream-id"{n[$2]++} END{print n["a"]+0, n["b"]+0}' >"$TMP/w"
read -r na nb <"$TMP/w"
assert_eq "$((na + nb))" 400 "400 connections through the weighted TCP listener answered"
assert_between "$((na * 100 / 400))" 65 85 "weighted TCP cluster a gets ~75% of connections"
wait_stat tcp.tcp_weighted.downstream_cx_total 402

# upstream refuses: the downstream connection is closed without data, and it is counted
out=$(raw "$P_DEAD" 'hello\n' --idle 5)
assert_eq "$out" "$(printf '\n<<CLOSED>>')" "upstream refused -> downstream closed with no data"
wait_stat cluster.dead.upstream_cx_connect_fail 1
assert_ge "$(stat_value cluster.echo.upstream_cx_total)" 51 "cluster.echo.upstream_cx_total counts TCP proxy connections"
assert_ge "$(stat_value tcp.tcp_echo.downstream_cx_rx_bytes_total)" 4194304 "tcp rx bytes counted"
# the proxy is still fine
assert_eq "$(status "$wa/")" 200 "TCP listener still serves after the failures"
