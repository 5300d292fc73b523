#!/usr/bin/env bash
# Upstream mutual TLS (envoy.transport_sockets.tls with an UpstreamTlsContext) against a
# third-party server: NGINX terminating TLS and requiring a client certificate. Ringside presents
# a SPIFFE workload certificate, verifies NGINX's against the mesh root and its URI SAN; HTTP
# through the connection manager and bytes through tcp_proxy. Refusals: a SAN Ringside does not
# expect, a server certificate from another root, no client certificate.
. "$(dirname "$0")/lib.sh"
need openssl
need nginx

read -r P_ADMIN P_HTTP P_TCP P_BADSAN P_BADCA P_NOCERT P_NGX P_NGX2 <<<"$(free_ports 8)"
tls_certs_init
ca root
ca other
leaf server root spiffe://cluster.local/ns/default/sa/reviews
leaf client root spiffe://cluster.local/ns/default/sa/productpage
leaf imposter other spiffe://cluster.local/ns/default/sa/reviews

# NGINX: TLS with a required client certificate from the mesh root, telling who called.
start_nginx <<EOF
    server {
        listen 127.0.0.1:$P_NGX ssl;
        ssl_certificate $C/server.pem;
        ssl_certificate_key $C/server.key;
        ssl_client_certificate $C/root.pem;
        ssl_verify_client on;
        location / { return 200 "verify=\$ssl_client_verify proto=\$ssl_protocol\n"; }
    }
    server {
        listen 127.0.0.1:$P_NGX2 ssl;
        ssl_certificate $C/imposter.pem;
        ssl_certificate_key $C/imposter.key;
        location / { return 200 "imposter\n"; }
    }
EOF
wait_for_port "$P_NGX"

# tls_cluster NAME PORT SAN [yaml_tls_upstream options]: Istio's SNI for reviews, HTTP/1.1 ALPN
tls_cluster() {
    yaml_tls_cluster "$1" "$2" --sni outbound_.9080_._.reviews.default.svc.cluster.local \
        --alpn '"http/1.1"' --san-exact "$3" "${@:4}"
}
route_to() { # NAME PORT CLUSTER
    yaml_hcm "$1" "$2" "$1"
    yaml_router
    yaml_route_all "$3"
}
SAN=spiffe://cluster.local/ns/default/sa/reviews
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(route_to http $P_HTTP reviews)
$(route_to badsan $P_BADSAN wrong_san)
$(route_to badca $P_BADCA imposter)
$(route_to nocert $P_NOCERT no_client_cert)
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $P_TCP } }
    filter_chains:
    - filters:
$(yaml_tcp_proxy_filter tcp reviews_tcp)
  clusters:
$(tls_cluster reviews $P_NGX $SAN --cert client)
$(tls_cluster reviews_tcp $P_NGX $SAN --cert client)
$(tls_cluster wrong_san $P_NGX spiffe://cluster.local/ns/default/sa/ratings --cert client)
$(tls_cluster imposter $P_NGX2 $SAN --cert client)
$(tls_cluster no_client_cert $P_NGX $SAN)
EOF
start_ringside "$TMP/bootstrap.yaml"

body=$(curl -s --max-time 5 "http://127.0.0.1:$P_HTTP/")
assert_match "$body" "^verify=SUCCESS proto=TLSv1\.[23]$" "HTTP over mutual TLS: NGINX verified Ringside's client certificate"
for i in 1 2 3 4 5; do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$P_HTTP/"; done
assert_le "$(stat_value cluster.reviews.upstream_cx_total)" 2 "six requests on pooled TLS connections (one per worker at most)"

# tcp_proxy: plaintext in, TLS out (the client speaks HTTP/1.1 through it)
out=$(raw "$P_TCP" 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
assert_contains "$out" "verify=SUCCESS" "tcp_proxy originates TLS with the client certificate"

assert_eq "$(status "http://127.0.0.1:$P_BADSAN/")" "503" "a server certificate without the expected SPIFFE ID is refused"
assert_eq "$(status "http://127.0.0.1:$P_BADCA/")" "503" "a server certificate from another root is refused"
assert_eq "$(status "http://127.0.0.1:$P_NOCERT/")" "400" "without a client certificate NGINX refuses the request"
body=$(curl -s --max-time 5 "http://127.0.0.1:$P_BADSAN/")
assert_contains "$body" "upstream connect error or disconnect/reset before headers" "the refusal is answered as Envoy does"
assert_ge "$(stat_value cluster.wrong_san.upstream_rq_5xx)" 1 "and counted on the cluster"
