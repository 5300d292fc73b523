#!/usr/bin/env bash
# Certificates rotating under load, as Istio runs them: ringside-cp is the mesh CA and serves
# `default` and `ROOTCA` on its SDS socket (pilot-agent's workload socket), re-issuing every
# workload certificate each second. Sidecar A (outbound) originates mutual TLS to sidecar B with
# its SDS certificate and validates B against ROOTCA and B's SPIFFE ID; B (inbound) terminates it
# with its own SDS certificate and requires A's. For 30 s of traffic through A (one cluster with
# keep-alive pools, one opening a connection per request so every request is a new handshake):
# no request fails, B's serving certificate changes (openssl s_client sees a new serial), the
# handshake counters rise, A's cluster is rotated in place (its pool is kept: few upstream
# connections), sds.default.update_success counts the rotations and /config_dump shows the
# secrets with the key redacted. Then certificate FILES: sidecar C serves TLS from files;
# replacing them by rename changes the serial new handshakes see while a connection opened before
# keeps working; a Kubernetes-style ..data swap is seen through watched_directory; a certificate
# written without its key is refused and the running one kept; SIGHUP reloads such a bootstrap
# through the control thread (a broken one is refused).
source "$(dirname "$0")/lib.sh"
need openssl
need curl
CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP (build first)"
LOAD_S=${RS_SDS_LOAD_S:-30}
[ "$RS_SANITIZED" = 1 ] && LOAD_S=15

read -r UP P_A P_B P_C P_D P_E A_ADMIN B_ADMIN C_ADMIN <<<"$(free_ports 9)"
SDS=$TMP/sds.sock
TD=ringside.test
ID_A='sidecar~127.0.0.10~productpage-1.default~default.svc.cluster.local'
ID_B='sidecar~127.0.0.11~reviews-v1.default~default.svc.cluster.local'

cat >"$TMP/mesh.yaml" <<'EOF'
options:
  trust_domain: ringside.test
  cert_ttl: 1h
services:
  - name: reviews
    ports: [{port: 9080}]
workloads:
  - {name: productpage-1, address: 127.0.0.10, service_account: bookinfo-productpage}
  - {name: reviews-v1, address: 127.0.0.11, service_account: bookinfo-reviews, services: [reviews]}
EOF
"$CP" --mesh "$TMP/mesh.yaml" --listen 127.0.0.1:0 --ca-dir "$TMP/ca" --sds-uds "$SDS" \
    --rotate-every 1s >"$TMP/cp.out" 2>"$TMP/cp.err" &
PIDS+=($!)
wait_for "ringside-cp's SDS socket" 10 test -S "$SDS"
start_upstream reviews "$UP"

# SdsSecretConfig NAME: a secret from the sds-grpc cluster (Istio's shape).
sds() {
    printf '{ name: %s, sds_config: { api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [ { envoy_grpc: { cluster_name: sds-grpc } } ] }, resource_api_version: V3 } }' "$1"
}
sds_cluster() {
    cat <<EOF
  - name: sds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: sds-grpc
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { pipe: { path: "$SDS" } } } } ] } ]
EOF
}
# to_b NAME [EXTRA]: a cluster to B originating mTLS with A's SDS certificate, B's SAN checked.
to_b() {
    cat <<EOF
  - name: $1
    type: STATIC
    connect_timeout: 1s
${2:-}
    load_assignment:
      cluster_name: $1
      endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $P_B } } } } ] } ]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: outbound_.9080_._.reviews.default.svc.cluster.local
        common_tls_context:
          alpn_protocols: ["istio-http/1.1", "istio"]
          tls_certificate_sds_secret_configs: [ $(sds default) ]
          combined_validation_context:
            default_validation_context:
              match_subject_alt_names: [ { exact: "spiffe://$TD/ns/default/sa/bookinfo-reviews" } ]
            validation_context_sds_secret_config: $(sds ROOTCA)
EOF
}

cat >"$TMP/a.yaml" <<EOF
node: { id: "$ID_A", cluster: productpage.default }
$(yaml_admin $A_ADMIN)
static_resources:
  listeners:
$(yaml_hcm outbound $P_A outbound)
$(yaml_router)
          route_config:
            validate_clusters: false # its clusters warm until their secrets arrive
            virtual_hosts:
            - name: reviews
              domains: ["*"]
              routes:
              - match: { prefix: "/new/" }
                route: { cluster: b_new }
              - match: { prefix: "/" }
                route: { cluster: b }
  clusters:
$(sds_cluster)
$(to_b b)
$(to_b b_new "    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: { max_requests_per_connection: 1 }
        explicit_http_config: { http_protocol_options: {} }")
EOF

cat >"$TMP/b.yaml" <<EOF
node: { id: "$ID_B", cluster: reviews.default }
$(yaml_admin $B_ADMIN)
static_resources:
  listeners:
  - name: inbound
    address: { socket_address: { address: 127.0.0.1, port_value: $P_B } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: ["istio-http/1.1", "http/1.1"]
            tls_certificate_sds_secret_configs: [ $(sds default) ]
            combined_validation_context:
              default_validation_context:
                match_subject_alt_names: [ { prefix: "spiffe://$TD/" } ]
              validation_context_sds_secret_config: $(sds ROOTCA)
      filters:
$(yaml_hcm_filter inbound app)
  clusters:
$(sds_cluster)
$(yaml_static_cluster app $UP)
EOF

# start_sidecar NAME CONFIG ADMIN: logs in $TMP/ringside-NAME.{out,err}
start_sidecar() {
    "$RINGSIDE" -c "$2" --concurrency 2 --drain-time-s 5 >"$TMP/ringside-$1.out" 2>"$TMP/ringside-$1.err" &
    PIDS+=($!)
    LAST_PID=$!
    ADMIN_PORT=$3 RS_PID=$! wait_for "sidecar $1 ready" 20 ready_ok
}
on() { # on A|B|C CMD...: runs CMD against that sidecar's admin
    local p
    case $1 in A) p=$A_ADMIN ;; B) p=$B_ADMIN ;; C) p=$C_ADMIN ;; esac
    shift
    ADMIN_PORT=$p "$@"
}
# serial PORT: the serial of the certificate a new handshake to PORT is served (no client
# certificate: TLS 1.3 shows the server's before the server asks for the client's).
serial() {
    openssl s_client -connect "127.0.0.1:$1" -tls1_3 </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}
stat_sum() { # PREFIX SUFFIX: the sum of the stats matching PREFIX*SUFFIX
    admin /stats | awk -F': ' -v p="$1" -v s="$2" 'index($1, p) == 1 && substr($1, length($1) - length(s) + 1) == s { t += $2 } END { print t + 0 }'
}

start_sidecar b "$TMP/b.yaml" "$B_ADMIN"
start_sidecar a "$TMP/a.yaml" "$A_ADMIN"
# the listener and clusters warm until the SDS stream delivers the secrets
wait_for "B serving TLS with its SDS certificate" 10 test -n "$(serial $P_B)"
wait_for "A's cluster b out of warming" 10 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$P_A/ | grep -q 200"
assert_eq "$(status "http://127.0.0.1:$P_A/new/x")" 200 "A -> B mutual TLS with SDS certificates (new connection)"
s0=$(serial $P_B)
log "B serves serial $s0 at the start"

# ---- 30 s of traffic while the certificates rotate every second --------------------------------
on A admin /stats | awk -F': ' '$1 == "cluster.b.upstream_cx_total" { print $2 }' >"$TMP/cx0"
hs0=$(on B stat_sum listener. ssl.handshake)
ok=0
bad=0
end=$((SECONDS + LOAD_S))
while [ "$SECONDS" -lt "$end" ]; do
    for path in /keep "/new/$ok"; do
        code=$(status "http://127.0.0.1:$P_A$path")
        if [ "$code" = 200 ]; then ok=$((ok + 1)); else
            bad=$((bad + 1))
            log "request $path answered $code"
        fi
    done
done
log "$ok requests answered 200, $bad not, in ${LOAD_S}s"
assert_eq "$bad" 0 "no request fails while certificates rotate every second"
assert_ge "$ok" 100 "traffic flowed"
s1=$(serial $P_B)
assert_ne "$s1" "$s0" "a new handshake to B sees a new certificate (serial $s1)"
# every /new/ request was a new connection, so a full handshake (workers flush stats each second)
hs_rose() { [ "$(($(on B stat_sum listener. ssl.handshake) - hs0))" -ge "$((ok / 2))" ]; }
wait_for "B's ssl.handshake to rise by $((ok / 2))" 5 hs_rose
log "ok: B's ssl.handshake rose with every new connection"
ua=$(on A stat_value sds.default.update_success)
assert_ge "$ua" "$((LOAD_S / 2))" "A counts sds.default.update_success per rotation"
assert_eq "$(on A stat_value sds.default.update_rejected)" "" "A rejects no secret"
rot=$(grep -c 'cluster b: TLS contexts rotated in place' "$TMP/ringside-a.err")
assert_ge "$rot" "$((LOAD_S / 2))" "A's cluster is rotated in place, not rebuilt"
# a rebuilt cluster would lose its pool at each rotation: the keep-alive cluster opened few
cx=$(on A stat_value cluster.b.upstream_cx_total)
assert_le "$cx" 8 "cluster b kept its keep-alive connections across $rot rotations"
on A wait_stat cluster.b_new.upstream_cx_total "$((ok / 2))"
# B's log of A's identity: the new connections carried A's (rotated) SDS certificate
assert_contains "$(cat "$TMP/ringside-a.err")" "sds: secrets from sds-grpc" "A's SDS stream to sds-grpc"
# /config_dump shows the secrets from sds-grpc, the private key redacted
dump=$(on A admin /config_dump)
assert_eq "$(printf '%s' "$dump" | python3 -c 'import json, sys
d = json.load(sys.stdin)
s = [c for c in d["configs"] if c["@type"].endswith("SecretsConfigDump")][0]
by = {x["name"]: x["secret"] for x in s["dynamic_active_secrets"]}
print(" ".join(sorted(by)), json.dumps(by["default"]["tlsCertificate"]["privateKey"]))')" \
    'ROOTCA default {"inlineString": "[redacted]"}' "/config_dump: the SDS secrets, the private key redacted"

# ---- certificate files rewritten under a running sidecar ---------------------------------------
tls_certs_init
ca root
leaf c1 root "spiffe://$TD/ns/default/sa/c"
mkdir -p "$TMP/live"
cp "$C/c1.pem" "$TMP/live/cert.pem"
cp "$C/c1.key" "$TMP/live/key.pem"
cat >"$TMP/c.yaml" <<EOF
$(yaml_admin $C_ADMIN)
static_resources:
  listeners:
  - name: files
    address: { socket_address: { address: 127.0.0.1, port_value: $P_C } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: "$TMP/live/cert.pem" }
              private_key: { filename: "$TMP/live/key.pem" }
      filters:
$(yaml_hcm_filter files app)
  - name: kube
    address: { socket_address: { address: 127.0.0.1, port_value: $P_D } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: "$TMP/kube/tls.crt" }
              private_key: { filename: "$TMP/kube/tls.key" }
              watched_directory: { path: "$TMP/kube" }
      filters:
$(yaml_tcp_proxy_filter kube app)
  clusters:
$(yaml_static_cluster app $UP)
EOF
# a Kubernetes secret volume: tls.crt -> ..data/tls.crt, ..data -> a version directory that a new
# version replaces by renaming a new ..data link over it (only the directory sees that)
kube_version() { # VERSION CERT: writes the version directory and swaps ..data to it
    mkdir -p "$TMP/kube/..$1"
    cp "$C/$2.pem" "$TMP/kube/..$1/tls.crt"
    cp "$C/$2.key" "$TMP/kube/..$1/tls.key"
    ln -sfn "..$1" "$TMP/kube/..data_tmp"
    mv -T "$TMP/kube/..data_tmp" "$TMP/kube/..data"
}
mkdir -p "$TMP/kube"
kube_version v1 c1
ln -s ..data/tls.crt "$TMP/kube/tls.crt"
ln -s ..data/tls.key "$TMP/kube/tls.key"
start_sidecar c "$TMP/c.yaml" "$C_ADMIN"
PID_C=$LAST_PID
# one TLS connection opened before the rotation, used again after it
python3 - "$P_C" "$TMP/go" >"$TMP/held.out" 2>&1 <<'PY' &
import os, socket, ssl, sys, time
port, go = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
def get():
    s.sendall(b"GET /held HTTP/1.1\r\nHost: c\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
    while n and len(body) < n[0]:
        body += s.recv(4096)
    return head.split(b" ")[1].decode()
print("before", get(), flush=True)
deadline = time.time() + 20
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
print("after", get(), flush=True)
PY
PIDS+=($!)
wait_for "the held connection's first answer" 10 grep -q "before 200" "$TMP/held.out"
f0=$(serial $P_C)
assert_eq "$f0" "$(openssl x509 -in "$C/c1.pem" -noout -serial)" "C serves the file's certificate"
leaf c2 root "spiffe://$TD/ns/default/sa/c"
cp "$C/c2.pem" "$TMP/live/.cert.new" && cp "$C/c2.key" "$TMP/live/.key.new"
mv "$TMP/live/.key.new" "$TMP/live/key.pem" && mv "$TMP/live/.cert.new" "$TMP/live/cert.pem"
want=$(openssl x509 -in "$C/c2.pem" -noout -serial)
wait_for "C's new handshakes to see the rewritten certificate" 10 sh -c "[ \"\$(openssl s_client -connect 127.0.0.1:$P_C </dev/null 2>/dev/null | openssl x509 -noout -serial)\" = '$want' ]"
assert_eq "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$P_C/")" 200 "C serves with the new certificate"
: >"$TMP/go"
wait_for "the held connection's second answer" 10 grep -q "^after" "$TMP/held.out"
assert_eq "$(sed -n 's/^after //p' "$TMP/held.out")" 200 "a connection established before the rotation keeps running"
# the Kubernetes-style swap, seen through watched_directory
assert_eq "$(serial $P_D)" "$(openssl x509 -in "$C/c1.pem" -noout -serial)" "watched_directory: the first version serves"
kube_version v2 c2
wait_for "watched_directory: the swapped version to serve" 10 sh -c "[ \"\$(openssl s_client -connect 127.0.0.1:$P_D </dev/null 2>/dev/null | openssl x509 -noout -serial)\" = '$want' ]"
log "ok: watched_directory: a ..data swap is picked up"
# a half-written pair (certificate without its key) is refused and the running one kept
leaf c3 root "spiffe://$TD/ns/default/sa/c"
cp "$C/c3.pem" "$TMP/live/cert.pem"
wait_for "C to refuse the mismatched pair" 10 grep -q "certificate files changed but the configuration was not rebuilt" "$TMP/ringside-c.err"
assert_eq "$(serial $P_C)" "$want" "the mismatched pair is refused: the previous certificate serves on"
cp "$C/c3.key" "$TMP/live/key.pem"
want3=$(openssl x509 -in "$C/c3.pem" -noout -serial)
wait_for "the completed pair to serve" 10 sh -c "[ \"\$(openssl s_client -connect 127.0.0.1:$P_C </dev/null 2>/dev/null | openssl x509 -noout -serial)\" = '$want3' ]"
# SIGHUP: the control thread takes the new bootstrap (here with one more listener); a broken one
# is refused and the running configuration stays
{
    yaml_hcm plain "$P_E" plain
    yaml_router
    echo '          route_config: { virtual_hosts: [ { name: a, domains: ["*"], routes: [ { match: { prefix: "/" }, route: { cluster: app } } ] } ] }'
} >"$TMP/plain.yaml"
awk -v f="$TMP/plain.yaml" '/^  clusters:/ { while ((getline l < f) > 0) print l } { print }' \
    "$TMP/c.yaml" >"$TMP/c2.yaml"
cp "$TMP/c2.yaml" "$TMP/c.yaml"
kill -HUP "$PID_C"
on C wait_stat server.reload_success 1
assert_eq "$(status "http://127.0.0.1:$P_E/")" 200 "SIGHUP: the reloaded bootstrap's new listener serves"
assert_eq "$(serial $P_C)" "$want3" "SIGHUP: the TLS listener still serves its current certificate"
echo "static_resources: { listeners: [ { name: x } ] }" >"$TMP/c.yaml"
kill -HUP "$PID_C"
on C wait_stat server.reload_rejected 1
assert_eq "$(status "http://127.0.0.1:$P_E/")" 200 "SIGHUP: a broken bootstrap is refused, the running one stays"
log "PASS"
