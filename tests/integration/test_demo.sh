#!/usr/bin/env bash
# `make run` under `make test`: runs scripts/run-demo.sh against the build being tested and
# checks that it exits 0, printed what a person is meant to see (routing through two sidecars,
# and the mutual TLS between them: the server side's access log with the client's SPIFFE ID, the
# listeners' handshakes, the server's SPIFFE certificate, refusals of a client without a
# certificate and of plaintext), and left no process behind.
set -euo pipefail

SRC=${RS_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${RS_BUILD:-$SRC/build}
[[ -x $BUILD/sidecar/ringside ]] || {
    echo "skip: $BUILD/sidecar/ringside not built"
    exit 77
}
command -v curl >/dev/null || {
    echo "skip: curl not installed"
    exit 77
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

rc=0
timeout -k 5 120 "$SRC/scripts/run-demo.sh" "$BUILD" >"$out" 2>&1 || rc=$?
cat "$out"
fail=0
check() {
    if ! grep -qE -- "$1" "$out"; then
        echo "FAIL: demo output lacks /$1/"
        fail=1
    fi
}
[[ $rc == 0 ]] || {
    echo "FAIL: run-demo.sh exited $rc"
    fail=1
}
check '^== Setup =='
check 'mtls: STRICT, ingress: listeners, bind: workload'
check 'ringside-cp listening on 127\.0\.0\.1:[0-9]+ \(pid [0-9]+\)'
check 'mesh root created in .*/ca'
check 'ready: +GET <address>:15000/ready -> 200 from all four'
check 'productpage-1: listener [0-9.]+_9080 listening on'
check 'reviews-v1: listener [0-9.]+_9080 listening on [0-9.]+:9080'
check '< HTTP/1\.[01] 200'
check '< x-upstream-id: reviews-v[12]'
check '< x-envoy-upstream-service-time: [0-9]+'
check '50 requests: reviews-v1 [0-9]+, reviews-v2 [1-9]'
check 'with end-user: jason: 10 reviews-v2$'
check 'answered by: mongodb$'
# mutual TLS, seen from the server side
check 'reviews-v1: .*"GET / HTTP/1\.1" 200 .* inbound\|19080\|\| .* peer=spiffe://cluster\.local/ns/default/sa/productpage$'
check 'mongodb-1: .* inbound\|19080\|\| .* peer=spiffe://cluster\.local/ns/default/sa/productpage$'
check 'x-forwarded-client-cert: By=spiffe://cluster\.local/ns/default/sa/reviews;Hash=[0-9a-f]+;.*URI=spiffe://cluster\.local/ns/default/sa/productpage'
check 'listener\.[0-9.]+_9080\.ssl\.handshake: [1-9]'
check 'listener\.[0-9.]+_27017\.ssl\.handshake: [1-9]'
check 'productpage-1: cluster\.outbound\|27017\|\|mongodb\.default\.svc\.cluster\.local\.ssl\.handshake: [1-9]'
check 'server certificate: URI:spiffe://cluster\.local/ns/default/sa/reviews \(Verify return code: 0 \(ok\)\)'
check 'no response: refused'
check 'ssl\.fail_verify_no_cert: [1-9]'
check '^ +< HTTP/1\.1 200 OK$'
check 'reviews-v1: .* peer=spiffe://cluster\.local/ns/default/sa/demo$'
check 'status 000 \(connection closed\), listener\.[0-9.]+_9080\.no_filter_chain_match: [1-9]'
check 'pushed and ACKed by productpage.s sidecar after [0-9]+ ms'
check '20 requests: 20 reviews-v2$'
check '^ +rds\.update_success: [2-9]'
check 'cluster\.outbound\|9080\|v2\|reviews\.default\.svc\.cluster\.local\.upstream_rq_2xx: [1-9]'
check 'tcp\.outbound\|27017\|\|mongodb\.default\.svc\.cluster\.local\.downstream_cx_total: [1-9]'
check 'reviews-v1: http\.inbound\|19080\|\|\.downstream_rq_2xx: [1-9]'
check 'mongodb-1: tcp\.inbound\|19080\|\|\.downstream_cx_total: [1-9]'
# the endpoints are the servers' sidecars (service port), not the applications (19080)
check '^ +outbound\|9080\|v1\|reviews\.default\.svc\.cluster\.local::[0-9.]+:9080::health_flags::healthy'
for who in productpage-1 reviews-v1 reviews-v2 mongodb-1; do
    check "ringside \($who\) got SIGTERM and exited with status 0"
done
check 'ringside-cp got SIGTERM and exited with status 0'
check '^== Demo finished: .*every hop mutual TLS'
if grep -q 'FAILED' "$out"; then
    echo "FAIL: demo reported a failed step"
    fail=1
fi

# Nothing the demo started may outlive it.
while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL: pid $pid from the demo is still running"
        fail=1
    fi
done < <(sed -nE 's/.*\(pid ([0-9]+)[;)].*/\1/p' "$out")
exit "$fail"
