#!/usr/bin/env bash
# Mutual TLS with third-party peers. As clients of a Ringside STRICT listener: openssl s_client and
# curl --cert over TLS 1.2 and 1.3, against an ECDSA P-256 and an RSA 2048 server key; NGINX
# (proxy_pass https with proxy_ssl_certificate, proxy_ssl_verify on) and HAProxy (server ... ssl crt
# ... ca-file ... verify required) as downstream mTLS clients, whose SPIFFE IDs Ringside's access
# log shows. As Ringside's upstream: HAProxy terminating mutual TLS (bind ... ssl crt ... ca-file
# ... verify required) for HTTP through the connection manager and bytes through tcp_proxy.
. "$(dirname "$0")/lib.sh"
need openssl
need nginx
need haproxy

read -r P_ADMIN P_EC P_RSA UP U_ECHO P_NGX P_HAP P_OUT_HTTP P_OUT_TCP P_HAP_HTTP P_HAP_TCP \
    <<<"$(free_ports 11)"
start_upstream up "$UP"
start_echo "$U_ECHO"

SA=spiffe://cluster.local/ns/default/sa
tls_certs_init
ca root
leaf server root "$SA/reviews"
leaf client root "$SA/productpage"
leaf nginx root "$SA/nginx-gateway"
leaf haproxy root "$SA/haproxy-gateway"
leaf hap_server root "$SA/reviews"
# rsa_leaf NAME CA SPIFFE_ID: as lib.sh's leaf, with an RSA 2048 key
rsa_leaf() {
    openssl req -new -newkey rsa:2048 -nodes -keyout "$C/$1.key" -subj "/O=mesh" -out "$C/$1.csr" 2>/dev/null
    printf 'subjectAltName=critical,URI:%s,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$C/$1.ext"
    openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2.key" -CAcreateserial -days 1 \
        -extfile "$C/$1.ext" -out "$C/$1.pem" 2>/dev/null
}
rsa_leaf server_rsa root "$SA/reviews"
[ "$(openssl x509 -in "$C/server_rsa.pem" -noout -text | grep -c 'Public-Key: (2048 bit)')" = 1 ] ||
    fail "could not make the RSA 2048 certificate"
# HAProxy wants the certificate and its key in one file
cat "$C/haproxy.pem" "$C/haproxy.key" >"$C/haproxy.crt"
cat "$C/hap_server.pem" "$C/hap_server.key" >"$C/hap_server.crt"

hcm_filter() { # STAT_PREFIX CLUSTER
    printf '      filters:\n'
    yaml_hcm_filter "$1" "$2" --access-log "$TMP/access.log" \
        "$1 %RESPONSE_CODE% %REQ(USER-AGENT)% peer=%DOWNSTREAM_PEER_URI_SAN%"
}
strict_listener() { # NAME PORT CERT
    cat <<EOF
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
$(yaml_inspectors tls)
    filter_chains:
    - name: $1
      filter_chain_match: { transport_protocol: tls }
$(yaml_tls_downstream "$3" --san-prefix spiffe://cluster.local/)
$(hcm_filter "$1" up)
EOF
}
tls_cluster() { # NAME PORT: mutual TLS to HAProxy, which must present the reviews SPIFFE ID
    yaml_tls_cluster "$1" "$2" --sni localhost --cert client --san-exact "$SA/reviews"
}
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(strict_listener strict_ec $P_EC server)
$(strict_listener strict_rsa $P_RSA server_rsa)
  - name: out_http
    address: { socket_address: { address: 127.0.0.1, port_value: $P_OUT_HTTP } }
    filter_chains:
    - name: out_http
$(hcm_filter out_http haproxy_http)
  - name: out_tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $P_OUT_TCP } }
    filter_chains:
    - filters:
$(yaml_tcp_proxy_filter out_tcp haproxy_tcp)
  clusters:
$(yaml_static_cluster up $UP)
$(tls_cluster haproxy_http $P_HAP_HTTP)
$(tls_cluster haproxy_tcp $P_HAP_TCP)
EOF

# NGINX: a plaintext front that proxies to Ringside's STRICT listener over mutual TLS.
start_nginx <<EOF
    server {
        listen 127.0.0.1:$P_NGX;
        location / {
            proxy_pass https://127.0.0.1:$P_EC;
            proxy_http_version 1.1; # Ringside, like Envoy, answers HTTP/1.0 with 426
            proxy_set_header User-Agent nginx;
            proxy_ssl_certificate $C/nginx.pem;
            proxy_ssl_certificate_key $C/nginx.key;
            proxy_ssl_trusted_certificate $C/root.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
        }
    }
EOF
# HAProxy: a plaintext front proxying to Ringside over mutual TLS (downstream client), and two
# mutual-TLS fronts for Ringside's clusters (upstream server): HTTP answered by HAProxy itself
# with what it saw of the client certificate, TCP forwarded to the echo server.
start_haproxy <<EOF
frontend front_plain
    mode http
    bind 127.0.0.1:$P_HAP
    http-request set-header User-Agent haproxy
    default_backend to_ringside
backend to_ringside
    mode http
    server s1 127.0.0.1:$P_EC ssl crt $C/haproxy.crt ca-file $C/root.pem verify required verifyhost localhost sni str(localhost)
frontend mtls_http
    mode http
    bind 127.0.0.1:$P_HAP_HTTP ssl crt $C/hap_server.crt ca-file $C/root.pem verify required
    http-request return status 200 content-type text/plain lf-string "haproxy verify=%[ssl_c_verify] used=%[ssl_c_used] proto=%[ssl_fc_protocol]\n"
frontend mtls_tcp
    mode tcp
    bind 127.0.0.1:$P_HAP_TCP ssl crt $C/hap_server.crt ca-file $C/root.pem verify required
    default_backend echo
backend echo
    mode tcp
    server e1 127.0.0.1:$U_ECHO
EOF
wait_for_port "$P_NGX"
wait_for_port "$P_HAP_TCP"
start_ringside "$TMP/bootstrap.yaml"

MTLS=(--cacert "$C/root.pem" --cert "$C/client.pem" --key "$C/client.key")
n_logged=0
# logged LINE: the access log gets one more line, LINE
logged() {
    n_logged=$((n_logged + 1))
    wait_for "access log line $n_logged" 5 bash -c "[ \$(wc -l <'$TMP/access.log') -ge $n_logged ]"
    assert_eq "$(sed -n "${n_logged}p" "$TMP/access.log")" "$1" "access log: $1"
}

# ---- openssl s_client and curl: TLS 1.2 and 1.3, ECDSA and RSA server keys ----
for v in 1.2 1.3; do
    for k in ec rsa; do
        port=$P_EC
        [ $k = rsa ] && port=$P_RSA
        what="TLS $v, $k server key"
        out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: s_client\r\nConnection: close\r\n\r\n' |
            timeout 10 openssl s_client -connect 127.0.0.1:$port -servername localhost -tls${v/./_} \
                -CAfile "$C/root.pem" -cert "$C/client.pem" -key "$C/client.key" -verify_return_error \
                -ign_eof 2>&1)
        assert_match "$out" "Protocol *: TLSv$v" "openssl s_client, $what: negotiated TLSv$v"
        assert_contains "$out" "Verify return code: 0 (ok)" "openssl s_client, $what: Ringside's certificate verifies"
        if [ $k = rsa ]; then
            assert_match "$out" "Server public key is 2048 bit" "openssl s_client, $what: an RSA 2048 server key"
            assert_match "$out" "Peer signature type: RSA" "openssl s_client, $what: signed with RSA"
        else
            assert_match "$out" "Server public key is 256 bit" "openssl s_client, $what: a P-256 server key"
            assert_match "$out" "Peer signature type: ECDSA" "openssl s_client, $what: signed with ECDSA"
        fi
        assert_match "$out" "HTTP/1.1 200" "openssl s_client, $what: the request reaches the upstream"
        assert_match "$out" "x-upstream-id: up" "openssl s_client, $what: the upstream's answer comes back"
        logged "strict_$k 200 s_client peer=$SA/productpage"

        info=$(curl -sv -o /dev/null -w 'status=%{http_code}' --max-time 10 "${MTLS[@]}" -A curl \
            --tlsv$v --tls-max $v "https://localhost:$port/" 2>&1)
        assert_contains "$info" "status=200" "curl --cert, $what: 200"
        assert_match "$info" "SSL connection using TLSv$v" "curl --cert, $what: TLSv$v"
        logged "strict_$k 200 curl peer=$SA/productpage"
    done
done
assert_ge "$(stat_value listener.127.0.0.1_$P_RSA.ssl.handshake)" 4 "the RSA listener counted its handshakes"

# ---- NGINX and HAProxy as downstream mutual-TLS clients of Ringside ----
assert_eq "$(header x-upstream-id "http://127.0.0.1:$P_NGX/")" up "NGINX -> Ringside (mTLS) -> upstream"
logged "strict_ec 200 nginx peer=$SA/nginx-gateway"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$P_HAP/")" up "HAProxy -> Ringside (mTLS) -> upstream"
logged "strict_ec 200 haproxy peer=$SA/haproxy-gateway"

# ---- HAProxy as Ringside's mutual-TLS upstream ----
body=$(curl -s --max-time 5 -A out "http://127.0.0.1:$P_OUT_HTTP/")
assert_match "$body" "^haproxy verify=0 used=1 proto=TLSv1\\.[23]$" \
    "Ringside -> HAProxy over HTTP: HAProxy verified Ringside's client certificate"
logged "out_http 200 out peer=-"
for _ in 1 2 3 4; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$P_OUT_HTTP/"; done
assert_le "$(stat_value cluster.haproxy_http.upstream_cx_total)" 2 "five requests on pooled TLS connections"
out=$(printf 'hello through haproxy\n' | raw "$P_OUT_TCP" - --idle 2)
assert_contains "$out" "hello through haproxy" "Ringside tcp_proxy -> HAProxy (mTLS, tcp mode) -> echo: bytes come back"

kill -0 "$RS_PID" || fail "ringside died"
log "all checks passed"
