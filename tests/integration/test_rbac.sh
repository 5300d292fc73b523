#!/usr/bin/env bash
# RBAC, as Istio's AuthorizationPolicy compiles to it, with real mutual-TLS clients: an HTTP
# listener with a DENY filter then an ALLOW filter (principals by SPIFFE ID, paths, methods,
# headers; shadow rules counted only; a route whose RBACPerRoute disables the ALLOW filter), a TCP
# listener over mutual TLS with network RBAC on the principal, and a plaintext TCP listener whose
# network RBAC denies at accept. Checks what a user sees: 403 "RBAC: access denied", closed TCP
# connections, Envoy's stats and response code / termination details, the denial log line with
# the peer identity, the TLS access-log operators, and x-forwarded-client-cert at the upstream.
. "$(dirname "$0")/lib.sh"
need openssl
need curl

read -r P_ADMIN P_HTTP P_TCP P_PLAIN P_HNET P_XFCC UP U_ECHO <<<"$(free_ports 8)"
start_upstream up "$UP"
start_echo "$U_ECHO"
tls_certs_init
ca root
leaf server root spiffe://cluster.local/ns/default/sa/reviews
leaf pp root spiffe://cluster.local/ns/default/sa/productpage
leaf ratings root spiffe://cluster.local/ns/default/sa/ratings
PP=spiffe://cluster.local/ns/default/sa/productpage
RATINGS=spiffe://cluster.local/ns/default/sa/ratings

# every chain's TLS: client certificates from the mesh root, any SPIFFE ID (RBAC decides)
tls_socket() { yaml_tls_downstream server; }
any_any() { # POLICY_NAME INDENT: a policy matching everything
    printf '%*s"%s": { permissions: [{ any: true }], principals: [{ any: true }] }\n' "$2" "" "$1"
}
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
  - name: http
    address: { socket_address: { address: 127.0.0.1, port_value: $P_HTTP } }
    filter_chains:
    - name: http-mtls
$(tls_socket)
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: authz
          forward_client_cert_details: APPEND_FORWARD
          set_current_client_cert_details: { subject: true, uri: true, dns: true }
$(yaml_access_log "$TMP/access.log" "%REQ(:SCHEME)% %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% peer=%DOWNSTREAM_PEER_URI_SAN% subject=%DOWNSTREAM_PEER_SUBJECT% local=%DOWNSTREAM_LOCAL_URI_SAN% tls=%DOWNSTREAM_TLS_VERSION% sni=%REQUESTED_SERVER_NAME% fp=%DOWNSTREAM_PEER_FINGERPRINT_256%")
          http_filters:
          - name: istio.deny
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  "ns[default]-policy[no-admin]-rule[0]":
                    permissions:
                    - url_path: { path: { prefix: /admin } }
                    - url_path: { path: { exact: /open/secret } }
                    principals: [{ any: true }]
                  "ns[default]-policy[blocked-ip]-rule[0]":
                    permissions: [{ any: true }]
                    principals: [{ remote_ip: { address_prefix: 198.51.100.0, prefix_len: 24 } }]
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  "ns[default]-policy[productpage]-rule[0]":
                    permissions: [{ any: true }]
                    principals: [{ authenticated: { principal_name: { exact: "$PP" } } }]
                  "ns[default]-policy[public-get]-rule[0]":
                    permissions:
                    - and_rules:
                        rules:
                        - header: { name: ":method", string_match: { exact: GET } }
                        - url_path: { path: { prefix: /public/ } }
                    principals: [{ authenticated: { principal_name: { prefix: "spiffe://cluster.local/" } } }]
                  "ns[default]-policy[token]-rule[0]":
                    permissions: [{ header: { name: x-token, string_match: { exact: let-me-in } } }]
                    principals: [{ any: true }]
              shadow_rules:
                action: DENY
                policies:
$(any_any shadow-deny-all 18)
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/open" }
                route: { cluster: up, prefix_rewrite: "/echo" }
                typed_per_filter_config:
                  envoy.filters.http.rbac:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
              - match: { prefix: "/" }
                route: { cluster: up, prefix_rewrite: "/echo/" }
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $P_TCP } }
    filter_chains:
    - name: tcp-mtls
$(tls_socket)
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: tcp.
          rules:
            action: ALLOW
            policies:
              "ns[default]-policy[tcp-productpage]-rule[0]":
                permissions: [{ destination_port: $P_TCP }]
                principals: [{ authenticated: { principal_name: { exact: "$PP" } } }]
          shadow_rules:
            action: ALLOW
            policies:
$(any_any shadow-allow-all 14)
$(yaml_tcp_proxy_filter echo_mtls echo --access-log "$TMP/tcp.log" \
    "tcp peer=%DOWNSTREAM_PEER_URI_SAN% details=%CONNECTION_TERMINATION_DETAILS% flags=%RESPONSE_FLAGS%")
  - name: hnet
    address: { socket_address: { address: 127.0.0.1, port_value: $P_HNET } }
    filter_chains:
    - name: hnet-mtls
$(tls_socket)
      filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: hnet
          rules:
            action: ALLOW
            policies:
              "pp-only":
                permissions: [{ any: true }]
                principals: [{ authenticated: { principal_name: { exact: "$PP" } } }]
$(yaml_hcm_filter hnet_http up --prefix-rewrite /echo/)
  - name: xfcc
    address: { socket_address: { address: 127.0.0.1, port_value: $P_XFCC } }
    filter_chains:
    - name: xfcc-mtls
$(tls_socket)
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: xfcc
          forward_client_cert_details: SANITIZE_SET
          set_current_client_cert_details: { cert: true, chain: true, uri: true }
$(yaml_router)
$(yaml_route_all up /echo/)
  - name: plain
    address: { socket_address: { address: 127.0.0.1, port_value: $P_PLAIN } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: plain
          rules:
            action: DENY
            policies:
              "deny-loopback":
                permissions: [{ destination_port: $P_PLAIN }]
                principals: [{ direct_remote_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }]
$(yaml_tcp_proxy_filter echo_plain echo_plain)
  clusters:
$(yaml_static_cluster up $UP)
$(yaml_static_cluster echo $U_ECHO)
$(yaml_static_cluster echo_plain $U_ECHO)
EOF
start_ringside "$TMP/bootstrap.yaml" -l debug

AS_PP=(--cacert "$C/root.pem" --cert "$C/pp.pem" --key "$C/pp.key")
AS_RATINGS=(--cacert "$C/root.pem" --cert "$C/ratings.pem" --key "$C/ratings.key")
U=https://localhost:$P_HTTP

# ---- HTTP: principals, paths, methods, headers, DENY first, per-route ------------------------
assert_eq "$(status "${AS_PP[@]}" "$U/reviews")" 200 "productpage's principal is allowed"
body=$(curl -s --max-time 10 "${AS_RATINGS[@]}" -w ' %{http_code}' "$U/reviews")
assert_eq "$body" "RBAC: access denied 403" "ratings' principal is denied: 403 with Envoy's body"
assert_eq "$(status "${AS_RATINGS[@]}" "$U/public/a")" 200 "GET /public/ allowed for any mesh principal"
assert_eq "$(status "${AS_RATINGS[@]}" -X POST -d x "$U/public/a")" 403 "POST /public/ denied (method)"
assert_eq "$(status "${AS_RATINGS[@]}" -H 'x-token: let-me-in' "$U/reviews")" 200 "allowed by header"
assert_eq "$(status "${AS_RATINGS[@]}" -H 'x-token: wrong' "$U/reviews")" 403 "wrong header value denied"
assert_eq "$(status "${AS_PP[@]}" "$U/admin/x")" 403 "the DENY filter wins over an ALLOW match"
assert_eq "$(status "${AS_RATINGS[@]}" "$U/open/x")" 200 "RBACPerRoute without rules disables the filter on its route"
assert_eq "$(status "${AS_RATINGS[@]}" "$U/open/secret")" 403 "…and not the DENY filter"

# stats: 2 denials by istio.deny, 3 by the ALLOW filter; the shadow DENY counts, never denies
wait_stat http.authz.rbac.denied 5
assert_eq "$(stat_value http.authz.rbac.denied)" 5 "http.<prefix>.rbac.denied"
assert_ge "$(stat_value http.authz.rbac.allowed)" 5 "http.<prefix>.rbac.allowed"
assert_ge "$(stat_value http.authz.rbac.shadow_denied)" 5 "shadow rules counted (shadow_denied)"
assert_ge "$(stat_value http.authz.downstream_rq_4xx)" 5 "denials are 4xx responses"

# remote_ip: the client as x-forwarded-for says (use_remote_address false, no trusted hops)
assert_eq "$(status "${AS_PP[@]}" -H 'x-forwarded-for: 203.0.113.1, 198.51.100.9' "$U/reviews")" 403 \
    "remote_ip: the last x-forwarded-for entry is the client, and it is blocked"
assert_eq "$(status "${AS_PP[@]}" -H 'x-forwarded-for: 198.51.100.9, 203.0.113.1' "$U/reviews")" 200 \
    "remote_ip: an earlier x-forwarded-for entry is not trusted"

# the access log: details, peer identity and the TLS operators
wait_for "access log lines" 5 bash -c "[ \$(wc -l <'$TMP/access.log') -ge 11 ]"
alog=$(cat "$TMP/access.log")
fp=$(openssl x509 -in "$C/pp.pem" -outform DER | sha256sum | cut -d' ' -f1)
assert_contains "$alog" "GET /reviews 403 rbac_access_denied_matched_policy[none] peer=$RATINGS" \
    "403 logged with Envoy's response code details and the peer's SPIFFE ID"
assert_contains "$alog" "GET /admin/x 403 rbac_access_denied_matched_policy[ns[default]-policy[no-admin]-rule[0]]" \
    "a DENY policy is named in the details"
assert_contains "$alog" "https GET /reviews 200 via_upstream peer=$PP subject=O=mesh local=spiffe://cluster.local/ns/default/sa/reviews tls=TLSv1.3 sni=localhost fp=$fp" \
    "%DOWNSTREAM_PEER_SUBJECT% %DOWNSTREAM_LOCAL_URI_SAN% %DOWNSTREAM_TLS_VERSION% %REQUESTED_SERVER_NAME% %DOWNSTREAM_PEER_FINGERPRINT_256%"
wait_for "the denial debug line" 5 grep -q "principal \"$RATINGS\") denied by envoy.filters.http.rbac" "$TMP/ringside.err"
log "$(grep -m1 "denied by envoy.filters.http.rbac" "$TMP/ringside.err")"

# x-forwarded-client-cert at the upstream (APPEND_FORWARD: a client's own element is kept)
echo_out=$(curl -s --max-time 10 "${AS_PP[@]}" -H 'x-forwarded-client-cert: By=spiffe://a;Hash=00' "$U/reviews")
assert_contains "$echo_out" "\"x-forwarded-client-cert\": \"By=spiffe://a;Hash=00,By=spiffe://cluster.local/ns/default/sa/reviews;Hash=$fp;Subject=\\\"O=mesh\\\";URI=$PP;DNS=localhost\"" \
    "XFCC appended with By, Hash, Subject, URI and DNS as Envoy writes them"
assert_contains "$echo_out" "\"x-forwarded-proto\": \"https\"" "x-forwarded-proto is https behind TLS"

# XFCC's Cert and Chain (SANITIZE_SET): the client's certificate, and the chain it sent (here leaf
# and intermediate), each URL-encoded PEM that decodes to exactly those certificates
mkdir -p "$C/inter.d"
ec "$C/inter.key"
openssl req -new -key "$C/inter.key" -subj "/O=inter" -out "$C/inter.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >"$C/inter.ext"
openssl x509 -req -in "$C/inter.csr" -CA "$C/root.pem" -CAkey "$C/root.key" -CAcreateserial -days 1 \
    -extfile "$C/inter.ext" -out "$C/inter.pem" 2>/dev/null
leaf viainter inter "$PP"
cat "$C/viainter.pem" "$C/inter.pem" >"$C/viainter-chain.pem"
xf=$(curl -s --max-time 10 --cacert "$C/root.pem" --cert "$C/viainter-chain.pem" --key "$C/viainter.key" \
    -H 'x-forwarded-client-cert: By=spiffe://forged;Hash=00' "https://localhost:$P_XFCC/x")
assert_eq "$(printf '%s' "$xf" | python3 -c '
import json, re, ssl, sys, urllib.parse
x = json.load(sys.stdin)["headers"]["x-forwarded-client-cert"]
m = re.fullmatch(r"By=([^;]*);Hash=([0-9a-f]{64});Cert=\"([^\"]*)\";Chain=\"([^\"]*)\";URI=(.*)", x)
if not m: sys.exit("unexpected XFCC: " + x)
ders = lambda pem: [ssl.PEM_cert_to_DER_cert(b) for b in re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", pem, re.S)]
cert, chain = urllib.parse.unquote(m[3]), urllib.parse.unquote(m[4])
want = ders(open(sys.argv[1]).read())
print(m[1], m[5], "cert ok" if ders(cert) == want[:1] and cert.count("BEGIN") == 1 else "cert differs",
      "chain ok" if ders(chain) == want else "chain differs", len(want),
      "encoded" if re.fullmatch(r"[A-Za-z0-9%._~-]*", m[3] + m[4]) else "not url-encoded")' "$C/viainter-chain.pem")" \
    "spiffe://cluster.local/ns/default/sa/reviews $PP cert ok chain ok 2 encoded" \
    "XFCC Cert and Chain: the client's certificate and the chain it sent, URL-encoded PEM (a forged element dropped)"

# ---- TCP over mutual TLS: network RBAC at the end of the handshake ---------------------------
# s_client_as CERT: openssl s_client as that client sends one line and keeps its stdin open
# (a fifo), so only the server decides when the connection ends; output in $TMP/sc-CERT.out
s_client_as() {
    mkfifo "$TMP/sc-$1.in"
    openssl s_client -quiet -connect 127.0.0.1:$P_TCP -servername localhost -CAfile "$C/root.pem" \
        -cert "$C/$1.pem" -key "$C/$1.key" <"$TMP/sc-$1.in" >"$TMP/sc-$1.out" 2>"$TMP/sc-$1.err" &
    SC_PID=$!
    PIDS+=($SC_PID)
    exec 7>"$TMP/sc-$1.in"
    printf 'hello %s\n' "$1" >&7
}
s_client_as pp
wait_for "productpage's line echoed through the TCP listener" 10 grep -q "hello pp" "$TMP/sc-pp.out"
log "ok: TCP: productpage's principal is allowed (bytes echoed)"
exec 7>&-
stop_pid "$SC_PID"
s_client_as ratings
wait_for "the server to close ratings' connection" 10 bash -c "! kill -0 $SC_PID 2>/dev/null"
exec 7>&-
assert_eq "$(cat "$TMP/sc-ratings.out")" "" "TCP: ratings' principal is denied (closed by the server, nothing echoed)"
wait_stat tcp.rbac.denied 1
assert_eq "$(stat_value tcp.rbac.denied)" 1 "tcp.rbac.denied (stat_prefix \"tcp.\": no double dot)"
assert_eq "$(stat_value tcp.rbac.allowed)" 1 "tcp.rbac.allowed"
assert_eq "$(stat_value tcp.rbac.shadow_allowed)" 2 "shadow rules counted on every connection"
wait_for "tcp access log" 5 bash -c "[ \$(wc -l <'$TMP/tcp.log') -ge 2 ]"
assert_contains "$(cat "$TMP/tcp.log")" "tcp peer=$RATINGS details=rbac_access_denied_matched_policy[none]" \
    "the denied connection logged with its peer and termination details"
assert_contains "$(cat "$TMP/ringside.err")" "principal \"$RATINGS\") denied by envoy.filters.network.rbac" \
    "the network denial logged with the peer identity"

# ---- network RBAC before the HCM: decided at the end of the handshake, before any request ----
hnet=$(curl -s --max-time 10 "${AS_PP[@]}" -H 'x-forwarded-client-cert: By=spiffe://forged;Hash=00' "https://localhost:$P_HNET/x")
assert_contains "$hnet" '"path": "/echo/x"' "network RBAC + HCM: productpage's request is served"
assert_not_contains "$hnet" "x-forwarded-client-cert" "SANITIZE (the default): a client's XFCC header is removed"
assert_eq "$(status "${AS_RATINGS[@]}" "https://localhost:$P_HNET/x")" 000 "network RBAC + HCM: ratings' connection is closed, no response"
wait_stat hnet.rbac.denied 1
assert_eq "$(stat_value http.hnet_http.downstream_rq_total)" 1 "the denied connection never reached the HCM as a request"

# ---- plaintext TCP: denied at accept, before any upstream connect ----------------------------
out=$(printf 'plain\n' | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    s.sendall(b"plain\n")
    print(s.recv(100).decode(), end="")
except OSError:
    pass' "$P_PLAIN")
assert_eq "$out" "" "plaintext: denied by source address, nothing echoed"
wait_stat plain.rbac.denied 1
assert_eq "$(stat_value cluster.echo_plain.upstream_cx_total)" 0 "no upstream connection was made for the denied peer"
kill -0 "$RS_PID" || fail "ringside died"
log "all checks passed"
