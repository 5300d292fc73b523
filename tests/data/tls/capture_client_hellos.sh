#!/bin/bash
# Captures ClientHellos from `openssl s_client` as seeds for tests/fuzz/fuzz_tls_inspector.c:
# a python listener on loopback records the first bytes each client sends, then closes.
# Usage: tests/data/tls/capture_client_hellos.sh [out-dir] (default: the fuzz target's corpus).
set -euo pipefail
out=${1:-$(dirname "$0")/../../fuzz/corpus/fuzz_tls_inspector}
mkdir -p "$out"

capture() { # name, s_client arguments...
    local name=$1
    shift
    local port_file
    port_file=$(mktemp)
    python3 - "$out/$name" "$port_file" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
s.settimeout(10)
c, _ = s.accept(); c.settimeout(2)
data = b""
deadline = time.time() + 2
while time.time() < deadline:
    try:
        chunk = c.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    data += chunk
    # one complete record holding the ClientHello is enough
    if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
        break
open(sys.argv[1], "wb").write(data)
c.close()
PY
    local py=$!
    for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.05; done
    timeout 5 openssl s_client -connect "127.0.0.1:$(cat "$port_file")" "$@" </dev/null >/dev/null 2>&1 || true
    wait $py
    rm -f "$port_file"
}

capture openssl_tls13_sni_alpn -servername outbound_.9080_._.reviews.default.svc.cluster.local \
    -alpn istio-peer-exchange,istio,istio-http/1.1
capture openssl_tls12_only -tls1_2 -servername example.com -alpn h2,http/1.1
capture openssl_no_sni -noservername
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >"$out/plaintext_http"
printf '\x16\x03\x01\x02\x00\x01\x00\x01' >"$out/truncated_record"
ls -l "$out"
