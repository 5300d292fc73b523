#!/usr/bin/env bash
# Two Ringside sidecars as Istio deploys them, with mutual TLS between them and certificates from
# files. A is productpage's sidecar: an outbound HTTP listener and an outbound TCP listener whose
# clusters originate mutual TLS with Istio's conventions (client certificate
# spiffe://cluster.local/ns/default/sa/productpage, the server's SPIFFE ID checked exactly, SNI
# outbound_.<port>_._.reviews.default.svc.cluster.local, ALPN istio-http/1.1 for HTTP and
# istio-peer-exchange, istio for TCP; the HTTP cluster picks TLS through transport_socket_matches
# and the endpoint's tlsMode: istio). B is reviews' sidecar: an inbound listener as Istio's
# virtualInbound (TLS and HTTP inspectors; TLS + istio-http ALPN -> HTTP, TLS otherwise -> TCP,
# plaintext -> HTTP: PERMISSIVE) and a STRICT one (TLS chains only).
. "$(dirname "$0")/lib.sh"
need openssl

read -r A_ADMIN A_HTTP A_TCP B_ADMIN B_IN B_STRICT APP ECHO <<<"$(free_ports 8)"
start_upstream reviews "$APP"
start_echo "$ECHO"

SA=spiffe://cluster.local/ns/default/sa
tls_certs_init
ca root
leaf productpage root "$SA/productpage"
leaf reviews root "$SA/reviews"

HOST=reviews.default.svc.cluster.local
CL_HTTP="outbound|9080||$HOST"
CL_STRICT="outbound|9080|strict|$HOST"
CL_TCP="outbound|9091||$HOST"
CL_TSM="outbound|9080|tsm|$HOST"

# ---- A: productpage's sidecar (outbound) ----
# an outbound cluster's UpstreamTlsContext as Istio writes it, with the port's SNI and ALPN added
ISTIO_TLS=(--tls-params '{ tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: TLSv1_3 }'
    --cert productpage --san-exact "$SA/reviews")
up_tls() { # PORT ALPN [yaml_tls_upstream options]
    yaml_tls_upstream --sni "outbound_.$1_._.$HOST" --alpn "$2" "${ISTIO_TLS[@]}" "${@:3}"
}
# http_cluster NAME ENDPOINT_PORT [matches]: TLS from the cluster's transport_socket, or with
# "matches" chosen by transport_socket_matches from the endpoint's tlsMode, as Istio's auto-mTLS
# clusters do
http_cluster() {
    cat <<EOF
  - name: "$1"
    connect_timeout: 2s
    type: STATIC
    load_assignment:
      cluster_name: "$1"
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $2 } } }
          metadata: { filter_metadata: { envoy.transport_socket_match: { tlsMode: istio } } }
EOF
    if [ "${3:-}" = matches ]; then
        cat <<EOF
    transport_socket_matches:
    - name: tlsMode-istio
      match: { tlsMode: istio }
$(up_tls 9080 '"istio-http/1.1"' --indent 6)
    - name: tlsMode-disabled
      match: {}
      transport_socket:
        name: envoy.transport_sockets.raw_buffer
        typed_config: { "@type": type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer }
EOF
    else
        up_tls 9080 '"istio-http/1.1"'
    fi
}
cat >"$TMP/a.yaml" <<EOF
$(yaml_admin $A_ADMIN)
static_resources:
  listeners:
  - name: 0.0.0.0_9080
    address: { socket_address: { address: 127.0.0.1, port_value: $A_HTTP } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_0.0.0.0_9080
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: reviews
              domains: ["*"]
              routes:
              - match: { prefix: "/strict/" }
                route: { cluster: "$CL_STRICT" }
              - match: { prefix: "/tsm/" }
                route: { cluster: "$CL_TSM" }
              - match: { prefix: "/" }
                route: { cluster: "$CL_HTTP" }
  - name: 0.0.0.0_9091
    address: { socket_address: { address: 127.0.0.1, port_value: $A_TCP } }
    filter_chains:
    - filters:
$(yaml_tcp_proxy_filter "$CL_TCP" "$CL_TCP")
  clusters:
$(http_cluster "$CL_HTTP" $B_IN)
$(http_cluster "$CL_STRICT" $B_STRICT)
$(http_cluster "$CL_TSM" $B_IN matches)
$(yaml_tls_cluster "$CL_TCP" $B_IN --sni "outbound_.9091_._.$HOST" --alpn '"istio-peer-exchange", "istio"' "${ISTIO_TLS[@]}")
EOF

# ---- B: reviews' sidecar (inbound) ----
down_tls() {
    yaml_tls_downstream reviews --alpn '"h2", "http/1.1"' --san-prefix spiffe://cluster.local/
}
# what B logs of each request (HCM) or connection (tcp_proxy)
B_LOG="peer=%DOWNSTREAM_PEER_URI_SAN% sni=%REQUESTED_SERVER_NAME% %DOWNSTREAM_TLS_VERSION%"
inbound_hcm() { # STAT_PREFIX
    printf '      filters:\n'
    yaml_hcm_filter "$1" "inbound|9080||" --vhost inbound --access-log "$TMP/b-access.log" "$1 %RESPONSE_CODE% $B_LOG"
}
inbound_tcp() { # STAT_PREFIX
    printf '      filters:\n'
    yaml_tcp_proxy_filter "$1" "inbound|9091||" --access-log "$TMP/b-access.log" "$1 tcp $B_LOG"
}
inbound_listener() { # NAME PORT PERMISSIVE(0/1) PREFIX
    cat <<EOF
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
$(yaml_inspectors tls http)
    listener_filters_timeout: 2s
    filter_chains:
    - name: $4_mtls_http
      filter_chain_match:
        transport_protocol: tls
        application_protocols: ["istio-http/1.0", "istio-http/1.1", "istio-h2"]
$(down_tls)
$(inbound_hcm $4_mtls_http)
    - name: $4_mtls_tcp
      filter_chain_match: { transport_protocol: tls }
$(down_tls)
$(inbound_tcp $4_mtls_tcp)
EOF
    if [ "$3" = 1 ]; then
        cat <<EOF
    - name: $4_plain_http
      filter_chain_match:
        transport_protocol: raw_buffer
        application_protocols: ["http/1.1", "http/1.0", "h2c"]
$(inbound_hcm $4_plain_http)
EOF
    fi
}
cat >"$TMP/b.yaml" <<EOF
$(yaml_admin $B_ADMIN)
static_resources:
  listeners:
$(inbound_listener virtualInbound $B_IN 1 in)
$(inbound_listener strictInbound $B_STRICT 0 strict)
  clusters:
$(yaml_static_cluster "inbound|9080||" $APP)
$(yaml_static_cluster "inbound|9091||" $ECHO)
EOF

# start_sidecar NAME CONFIG: one of the two Ringsides, logs in $TMP/ringside-NAME.{out,err}
start_sidecar() {
    "$RINGSIDE" -c "$2" --concurrency 2 --drain-time-s 5 >"$TMP/ringside-$1.out" 2>"$TMP/ringside-$1.err" &
    PIDS+=("$!")
}
start_sidecar a "$TMP/a.yaml"
PID_a=$!
start_sidecar b "$TMP/b.yaml"
PID_b=$!
# on A|B CMD...: runs a lib.sh admin helper (stat_value, wait_stat, ...) against that sidecar
on() {
    local side=$1
    shift
    case $side in
    A) ADMIN_PORT=$A_ADMIN RS_PID=$PID_a "$@" ;;
    B) ADMIN_PORT=$B_ADMIN RS_PID=$PID_b "$@" ;;
    esac
}
on A wait_for "sidecar A ready" 20 ready_ok
on B wait_for "sidecar B ready" 20 ready_ok

LB=listener.127.0.0.1_$B_IN
# what B logs for a request from A: A's identity, Istio's SNI for the port, TLS 1.3
FROM_A="peer=$SA/productpage sni=outbound_.9080_._.$HOST TLSv1.3"
LS=listener.127.0.0.1_$B_STRICT

# ---- HTTP, A -> B over mutual TLS ----
assert_eq "$(header x-upstream-id "http://127.0.0.1:$A_HTTP/reviews/0")" reviews \
    "HTTP: productpage -> A -> (mTLS) -> B -> reviews"
wait_for "B's access log" 5 grep -q '^in_mtls_http ' "$TMP/b-access.log"
assert_eq "$(head -1 "$TMP/b-access.log")" "in_mtls_http 200 $FROM_A" \
    "B's access log shows A's SPIFFE ID and SNI, on the istio-http chain"
on B wait_stat "$LB.ssl.handshake" 1
on B wait_stat http.in_mtls_http.downstream_rq_total 1
log "ok: B counted the handshake and the request on the mTLS HTTP chain"

# many requests on keep-alive connections: A reuses its pooled TLS connections to B
urls=()
for i in $(seq 1 200); do urls+=(-o /dev/null "http://127.0.0.1:$A_HTTP/reviews/$i"); done
codes=$(curl -s -w '%{http_code}\n' --max-time 30 "${urls[@]}" | sort | uniq -c | tr -s ' ')
assert_eq "$codes" " 200 200" "200 requests through A and B, all 200"
# and five at once, so each of A's workers needs its own connection(s)
cpids=()
for i in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$A_HTTP/reviews/x$i" >"$TMP/par$i.code" &
    cpids+=($!)
done
for p in "${cpids[@]}"; do wait "$p"; done
assert_eq "$(cat "$TMP"/par*.code)" 200200200200200 "five concurrent requests, all 200"
on A wait_stat "cluster.$CL_HTTP.upstream_rq_total" 206
assert_le "$(on A stat_value "cluster.$CL_HTTP.upstream_cx_total")" 6 \
    "206 requests to B on a handful of TLS connections (keep-alive reuse)"
assert_eq "$(on A stat_value "cluster.$CL_HTTP.upstream_rq_5xx")" "0" "no 5xx on A's cluster"
on B wait_stat http.in_mtls_http.downstream_rq_total 206
assert_eq "$(on B stat_value http.in_plain_http.downstream_rq_total)" 0 "none of A's requests took B's plaintext chain"
hs=$(on B stat_value "$LB.ssl.handshake")
assert_le "$hs" 6 "B's handshakes stay as few as A's connections"
assert_eq "$(grep -c -x -F "in_mtls_http 200 $FROM_A" "$TMP/b-access.log")" 206 \
    "every request logged on B with A's identity"

# ---- TCP, A -> B over mutual TLS (ALPN istio-peer-exchange, istio -> B's TCP chain) ----
python3 - "$A_TCP" >"$TMP/tcp.out" 2>&1 <<'EOF' || fail "TCP through A and B: $(cat "$TMP/tcp.out")"
import os, socket, sys, time
data = os.urandom(256 * 1024)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(data)
got, deadline = b"", time.time() + 15
while len(got) < len(data) and time.time() < deadline:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
assert got == data, "echoed %d of %d bytes, equal prefix: %s" % (len(got), len(data), data[:len(got)] == got)
print("echoed", len(got))
EOF
assert_eq "$(cat "$TMP/tcp.out")" "echoed 262144" "TCP: 256 KiB through A -> (mTLS) -> B -> echo and back"
wait_for "B's TCP access log line" 10 grep -q '^in_mtls_tcp ' "$TMP/b-access.log"
assert_eq "$(grep '^in_mtls_tcp ' "$TMP/b-access.log")" "in_mtls_tcp tcp peer=$SA/productpage sni=outbound_.9091_._.$HOST TLSv1.3" \
    "B's TCP chain logged A's SPIFFE ID"
on B wait_stat tcp.in_mtls_tcp.downstream_cx_total 1
assert_eq "$(on B stat_value tcp.in_mtls_tcp.downstream_cx_total)" 1 "the TCP connection took the TCP chain, once"
assert_eq "$(on A stat_value "cluster.$CL_TCP.upstream_cx_total")" 1 "A opened one TLS connection for it"

# ---- PERMISSIVE: a plaintext client straight to B's inbound port takes the plaintext chain ----
assert_eq "$(header x-upstream-id "http://127.0.0.1:$B_IN/direct")" reviews "PERMISSIVE: plaintext to B is served"
wait_for "the plaintext request logged" 5 grep -q '^in_plain_http ' "$TMP/b-access.log"
assert_eq "$(grep '^in_plain_http ' "$TMP/b-access.log")" "in_plain_http 200 peer=- sni=- -" "on the plaintext chain, no peer identity"

# ---- STRICT: plaintext refused, A still passes ----
nc_before=$(on B stat_value "$LS.no_filter_chain_match")
assert_eq "$(status "http://127.0.0.1:$B_STRICT/direct")" 000 "STRICT: a plaintext client is refused"
on B wait_stat "$LS.no_filter_chain_match" $((${nc_before:-0} + 1))
log "ok: STRICT: counted as no_filter_chain_match"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$A_HTTP/strict/1")" reviews "STRICT: A's mutual TLS still passes"
wait_for "the STRICT request logged" 5 grep -q '^strict_mtls_http ' "$TMP/b-access.log"
assert_eq "$(grep '^strict_mtls_http ' "$TMP/b-access.log")" "strict_mtls_http 200 $FROM_A" \
    "B's STRICT listener saw A's identity"
on B wait_stat "$LS.ssl.handshake" 1
log "ok: B's STRICT listener counted the handshake"

# ---- transport_socket_matches: the endpoint's tlsMode: istio selects mutual TLS ----
n_lines=$(wc -l <"$TMP/b-access.log")
assert_eq "$(header x-upstream-id "http://127.0.0.1:$A_HTTP/tsm/1")" reviews "transport_socket_matches: A -> B passes"
wait_for "the tlsMode request logged" 5 bash -c "[ \$(wc -l <'$TMP/b-access.log') -gt $n_lines ]"
assert_eq "$(tail -1 "$TMP/b-access.log")" "in_mtls_http 200 $FROM_A" \
    "transport_socket_matches: tlsMode istio on a static endpoint means mutual TLS, not plaintext"

kill -0 "$PID_a" || fail "sidecar A died"
kill -0 "$PID_b" || fail "sidecar B died"
log "all checks passed"
