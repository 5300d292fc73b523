# Mutual TLS for bench/run.sh, sourced: the test PKI every mTLS system shares, made per run under
# the run's temporary directory, and the library limit bench/tls_speed measures.
#
# The PKI: a root and two leaves, all ECDSA P-256 (SHA-256 signatures). The leaves carry the
# SPIFFE identities Istio gives workloads in their URI SAN, plus a DNS SAN for the peers that can
# only check a host name (HAProxy's verifyhost, NGINX's proxy_ssl_name):
#   server  spiffe://cluster.local/ns/bench/sa/server   DNS:server.bench.svc
#   client  spiffe://cluster.local/ns/bench/sa/client   DNS:client.bench.svc
# Files in $MTLS_DIR: root.pem, {server,client}.pem (leaf), .key, and .full.pem (leaf + key, for
# HAProxy's crt).
# shellcheck shell=bash disable=SC2034 # read by systems.sh and run.sh

MTLS_SERVER_SAN=spiffe://cluster.local/ns/bench/sa/server
MTLS_CLIENT_SAN=spiffe://cluster.local/ns/bench/sa/client
MTLS_SERVER_DNS=server.bench.svc
MTLS_CLIENT_DNS=client.bench.svc

# mtls_certs DIR: writes the PKI into DIR and sets MTLS_DIR.
mtls_certs() {
    MTLS_DIR=$1
    mkdir -p "$MTLS_DIR"
    local d=$MTLS_DIR
    if ! {
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/root.key" &&
            openssl req -x509 -new -sha256 -key "$d/root.key" -subj "/O=ringside-bench/CN=bench root" \
                -days 2 -out "$d/root.pem" -addext basicConstraints=critical,CA:TRUE \
                -addext keyUsage=critical,keyCertSign,cRLSign
    } 2>"$d/openssl.err"; then
        die "openssl could not make the test root in $d: $(tail -2 "$d/openssl.err")"
    fi
    mtls_leaf server "$MTLS_SERVER_SAN" "$MTLS_SERVER_DNS"
    mtls_leaf client "$MTLS_CLIENT_SAN" "$MTLS_CLIENT_DNS"
}

# mtls_leaf NAME URI DNS: a leaf signed by the root, for both TLS roles.
mtls_leaf() {
    local d=$MTLS_DIR
    printf '%s\n' "subjectAltName=critical,URI:$2,DNS:$3" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" "basicConstraints=critical,CA:FALSE" >"$d/$1.ext"
    if ! {
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/$1.key" &&
            openssl req -new -key "$d/$1.key" -subj "/O=ringside-bench" -out "$d/$1.csr" &&
            openssl x509 -req -sha256 -in "$d/$1.csr" -CA "$d/root.pem" -CAkey "$d/root.key" \
                -CAcreateserial -days 1 -extfile "$d/$1.ext" -out "$d/$1.pem"
    } 2>"$d/openssl.err"; then
        die "openssl could not make the $1 certificate in $d: $(tail -2 "$d/openssl.err")"
    fi
    cat "$d/$1.pem" "$d/$1.key" >"$d/$1.full.pem"
}
