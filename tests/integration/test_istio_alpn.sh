#!/usr/bin/env bash
# istio.alpn as istiod configures it: a cluster whose UpstreamTlsContext offers Istio's TCP ALPN
# (istio-peer-exchange, istio), and an HTTP connection manager whose istio.alpn filter (a
# TypedStruct) overrides it with istio-http/1.1 for its HTTP/1.1 upstream connections, so the
# server's inbound listener picks its HTTP chain (application_protocols istio-http/1.1) rather
# than its TCP one. One Ringside plays both sidecars: the outbound listeners connect to its own
# inbound listener over mutual TLS.
. "$(dirname "$0")/lib.sh"
need openssl

read -r P_ADMIN P_OUT P_OUT_NOALPN P_IN UP <<<"$(free_ports 5)"
start_upstream app "$UP"
tls_certs_init
ca root
leaf server root spiffe://cluster.local/ns/default/sa/reviews
leaf client root spiffe://cluster.local/ns/default/sa/productpage

# outbound NAME PORT STAT_PREFIX [istio.alpn filter yaml]: an HCM listener routing everything to
# the mTLS cluster, with that filter before the router
outbound() {
    yaml_hcm "$1" "$2" "$3"
    printf '%s\n' "          http_filters:"
    [ -z "${4:-}" ] || printf '%s\n' "$4"
    printf '%s\n' "          - name: envoy.filters.http.router" \
        '            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }'
    yaml_route_all "outbound|9080||reviews"
}
ALPN_FILTER='          - name: istio.alpn
            typed_config:
              "@type": type.googleapis.com/udpa.type.v1.TypedStruct
              type_url: type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig
              value:
                alpn_override:
                - alpn_override: [istio-http/1.0, istio, http/1.0]
                - upstream_protocol: HTTP11
                  alpn_override: [istio-http/1.1, istio, http/1.1]
                - upstream_protocol: HTTP2
                  alpn_override: [istio-h2, istio, h2]'
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(outbound out $P_OUT out "$ALPN_FILTER")
$(outbound out_noalpn $P_OUT_NOALPN out_noalpn)
  - name: inbound
    address: { socket_address: { address: 127.0.0.1, port_value: $P_IN } }
$(yaml_inspectors tls)
    filter_chains:
    - name: in-http
      filter_chain_match: { transport_protocol: tls, application_protocols: [istio-http/1.0, istio-http/1.1, istio-h2] }
$(yaml_tls_downstream server)
      filters:
$(yaml_hcm_filter in_http app)
    - name: in-tcp
      filter_chain_match: { transport_protocol: tls }
$(yaml_tls_downstream server)
      filters:
$(yaml_tcp_proxy_filter in_tcp app)
  clusters:
$(yaml_static_cluster app $UP)
$(yaml_tls_cluster "outbound|9080||reviews" $P_IN --cert client --alpn "istio-peer-exchange, istio" \
    --sni outbound_.9080_._.reviews.default.svc.cluster.local --san-exact spiffe://cluster.local/ns/default/sa/reviews)
EOF
start_ringside "$TMP/bootstrap.yaml" --concurrency 1

assert_eq "$(status "http://127.0.0.1:$P_OUT/")" 200 "through istio.alpn's HCM"
assert_eq "$(stat_value http.in_http.downstream_rq_total)" 1 "istio-http/1.1 offered: the inbound HTTP chain took it"
assert_eq "$(stat_value tcp.in_tcp.downstream_cx_total)" 0 "and not the TCP chain"
assert_eq "$(status "http://127.0.0.1:$P_OUT_NOALPN/")" 200 "through an HCM without istio.alpn"
wait_stat tcp.in_tcp.downstream_cx_total 1
assert_eq "$(stat_value http.in_http.downstream_rq_total)" 1 "the cluster's own ALPN (istio) took the TCP chain"
log "all checks passed"
