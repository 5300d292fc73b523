#!/usr/bin/env bash
# Downstream TLS: a listener with the TLS and HTTP inspectors serving PERMISSIVE (a mutual-TLS
# chain and a plaintext chain on one port) and a STRICT one (mutual TLS only), as Istio's inbound
# does. Clients: curl with and without a client certificate, openssl s_client for ALPN, Python's
# ssl for bytes through tcp_proxy and for stalled handshakes. The server side sees the
# client's SPIFFE identity in the access log; handshakes and refusals are counted.
. "$(dirname "$0")/lib.sh"
need openssl
need curl

read -r P_ADMIN P_PERM P_STRICT P_TCP UP U_ECHO <<<"$(free_ports 6)"
start_upstream up "$UP"
start_echo "$U_ECHO"
tls_certs_init
ca root
ca other
leaf server root spiffe://cluster.local/ns/default/sa/reviews
leaf client root spiffe://cluster.local/ns/default/sa/productpage
leaf stranger other spiffe://cluster.local/ns/default/sa/productpage

# the chains' DownstreamTlsContext: any workload of the default namespace
tls_socket() {
    yaml_tls_downstream server --alpn '"h2", "http/1.1"' --san-prefix spiffe://cluster.local/ns/default/
}
hcm_filter() { # STAT_PREFIX
    printf '      filters:\n'
    yaml_hcm_filter "$1" up --access-log "$TMP/access.log" "$1 %RESPONSE_CODE% peer=%DOWNSTREAM_PEER_URI_SAN%"
}
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
  - name: permissive
    address: { socket_address: { address: 127.0.0.1, port_value: $P_PERM } }
$(yaml_inspectors tls http)
    filter_chains:
    - name: mtls
      filter_chain_match: { transport_protocol: tls }
$(tls_socket)
$(hcm_filter mtls)
    - name: plain-http
      filter_chain_match: { transport_protocol: raw_buffer, application_protocols: ["http/1.1", "http/1.0"] }
$(hcm_filter plain)
  - name: strict
    address: { socket_address: { address: 127.0.0.1, port_value: $P_STRICT } }
    listener_filters_timeout: 1s
$(yaml_inspectors tls http)
    filter_chains:
    - name: strict-mtls
      filter_chain_match: { transport_protocol: tls }
      transport_socket_connect_timeout: 1s
$(tls_socket)
$(hcm_filter strict)
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $P_TCP } }
$(yaml_inspectors tls)
    filter_chains:
    - name: tcp-mtls
      filter_chain_match: { transport_protocol: tls }
$(tls_socket)
      filters:
$(yaml_tcp_proxy_filter tcp echo)
  clusters:
$(yaml_static_cluster up $UP)
$(yaml_static_cluster echo $U_ECHO)
EOF
start_ringside "$TMP/bootstrap.yaml"

MTLS=(--cacert "$C/root.pem" --cert "$C/client.pem" --key "$C/client.key")
assert_eq "$(status "${MTLS[@]}" "https://localhost:$P_PERM/")" 200 "PERMISSIVE: mutual TLS with curl"
assert_eq "$(status "http://127.0.0.1:$P_PERM/")" 200 "PERMISSIVE: plaintext HTTP on the same port"
assert_eq "$(status "${MTLS[@]}" "https://localhost:$P_STRICT/")" 200 "STRICT: mutual TLS"
wait_for "access log lines" 5 bash -c "[ \$(wc -l <'$TMP/access.log') -ge 3 ]"
log_lines=$(cat "$TMP/access.log")
assert_contains "$log_lines" "mtls 200 peer=spiffe://cluster.local/ns/default/sa/productpage" "the server side sees the client's SPIFFE identity"
assert_contains "$log_lines" "plain 200 peer=-" "a plaintext request has no peer identity"

# refusals
assert_eq "$(status "http://127.0.0.1:$P_STRICT/")" 000 "STRICT: plaintext is refused (no chain)"
assert_eq "$(status --cacert "$C/root.pem" "https://localhost:$P_STRICT/")" 000 \
    "STRICT: a client without a certificate is refused"
assert_eq "$(status --cacert "$C/root.pem" --cert "$C/stranger.pem" --key "$C/stranger.key" "https://localhost:$P_STRICT/")" 000 \
    "a client certificate from another root is refused"
wait_stat listener.127.0.0.1_$P_STRICT.ssl.fail_verify_no_cert 1
wait_stat listener.127.0.0.1_$P_STRICT.ssl.fail_verify_error 1
assert_ge "$(stat_value listener.127.0.0.1_$P_STRICT.no_filter_chain_match)" 1 "plaintext to STRICT counted as no chain match"
assert_ge "$(stat_value listener.127.0.0.1_$P_PERM.ssl.handshake)" 1 "handshakes counted on the listener"
assert_ge "$(stat_value tls_inspector.tls_found)" 3 "the TLS inspector found TLS"
assert_ge "$(stat_value http_inspector.http11_found)" 1 "the HTTP inspector found HTTP/1.1"
# a request line in three pieces: the inspectors wait for it, decide once (each counted once per
# connection) and the chain gets every byte
nf=$(stat_value tls_inspector.tls_not_found)
h11=$(stat_value http_inspector.http11_found)
out=$(raw "$P_PERM" 'GE|PAUSE|T / HTTP/1.|PAUSE|1\r\nHost: x\r\nConnection: close\r\n\r\n' --split --pause 0.2 --responses 1)
assert_match "$out" "^HTTP/1.1 200" "a request line arriving in pieces is served"
assert_eq "$(stat_value tls_inspector.tls_not_found)" $((nf + 1)) "plaintext counted once, not once per piece"
assert_eq "$(stat_value http_inspector.http11_found)" $((h11 + 1)) "HTTP/1.1 counted once"

# stalls, each cut without holding up other connections: half a ClientHello (listener_filters_timeout
# 1s), and a whole ClientHello after which the client goes quiet (transport_socket_connect_timeout 1s)
python3 - "$P_STRICT" >"$TMP/stall.out" 2>&1 <<'EOF' &
import socket, ssl, sys, threading, time
port = int(sys.argv[1])
def wait_close(s, what):
    t = time.time()
    s.settimeout(30)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    print("%s: closed after %.1f s" % (what, time.time() - t), flush=True)
half = socket.create_connection(("127.0.0.1", port))
half.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
quiet = socket.create_connection(("127.0.0.1", port))
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="localhost")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
quiet.sendall(out.read())  # the ClientHello; the server's reply is never answered
ts = [threading.Thread(target=wait_close, args=a) for a in ((half, "half hello"), (quiet, "quiet client"))]
for t in ts: t.start()
for t in ts: t.join()
EOF
STALL=$!
PIDS+=($STALL)
assert_eq "$(status "${MTLS[@]}" "https://localhost:$P_STRICT/")" 200 "served while two handshakes stall"
wait_for "both stalled connections to be closed" 10 bash -c "[ \$(grep -c closed '$TMP/stall.out') -eq 2 ]"
log "$(cat "$TMP/stall.out")"
assert_ge "$(stat_value listener.127.0.0.1_$P_STRICT.downstream_pre_cx_timeout)" 1 "the half ClientHello timed out in the inspector"
assert_ge "$(stat_value listener.127.0.0.1_$P_STRICT.ssl.handshake_timeout)" 1 "the quiet client's handshake timed out"

# TCP over mutual TLS (Python's ssl as the client): bytes come back through the echo upstream
out=$(python3 - "$P_TCP" "$C" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2] + "/root.pem")
ctx.load_cert_chain(sys.argv[2] + "/client.pem", sys.argv[2] + "/client.key")
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5),
                     server_hostname="localhost") as s:
    s.sendall(b"hello over mtls\n")
    print(s.makefile().readline().strip())
EOF
)
assert_eq "$out" "hello over mtls" "tcp_proxy behind TLS: bytes arrive and return"
# ALPN: h2 is never negotiated on an HTTP/1.1 chain
alpn=$(echo | timeout 10 openssl s_client -connect 127.0.0.1:$P_PERM -alpn h2,http/1.1 -CAfile "$C/root.pem" \
    -cert "$C/client.pem" -key "$C/client.key" 2>/dev/null | grep -i "ALPN protocol")
assert_contains "$alpn" "http/1.1" "ALPN: http/1.1 chosen, not h2"
kill -0 "$RS_PID" || fail "ringside died"
log "all checks passed"
