#!/usr/bin/env bash
# Connection reuse on both sides and message framing: downstream keep-alive and pipelining,
# upstream pooling, request bodies (content-length and chunked), HEAD, 204, streamed downloads,
# Connection: close and HTTP/1.0.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP UA <<<"$(free_ports 3)"
start_upstream a "$UA"
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(yaml_hcm http $P_HTTP ka)
          http_protocol_options: { accept_http_10: true }
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: a }
  clusters:
$(yaml_static_cluster a $UA)
EOF
start_ringside "$TMP/bootstrap.yaml"
U=http://127.0.0.1:$P_HTTP
upstream_accepted() { curl -s "http://127.0.0.1:$UA/stats" | awk '$1=="connections_accepted"{print $2}'; }

# downstream keep-alive: 100 requests on one connection
before=$(stat_value listener.127.0.0.1_$P_HTTP.downstream_cx_total)
out=$(curl -s -o /dev/null -w '%{http_code}\n' "$U/[1-100]" | sort | uniq -c | awk '{print $1, $2}')
assert_eq "$out" "100 200" "100 requests on one keep-alive connection answered 200"
after=$(stat_value listener.127.0.0.1_$P_HTTP.downstream_cx_total)
assert_eq "$((after - before))" 1 "they used one downstream connection"

# pipelining: three requests in one write, three responses in order, connection kept
req='GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /status/203 HTTP/1.1\r\nHost: x\r\n\r\n'
out=$(raw "$P_HTTP" "$req" --responses 3)
assert_eq "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$out" | tr '\n' ' ')" "HTTP/1.1 201 HTTP/1.1 200 HTTP/1.1 203 " \
    "3 pipelined requests -> 3 responses in order"
assert_contains "$out" '"path": "/echo"' "the middle pipelined response is the /echo one"
assert_eq "$(tail -n1 <<<"$out")" "<<OPEN>>" "the connection stays open after pipelined requests"

# pipelined with a slow upstream answer first: order is kept
req='GET /delay/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n'
out=$(raw "$P_HTTP" "$req" --responses 2)
assert_eq "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$out" | tr '\n' ' ')" "HTTP/1.1 200 HTTP/1.1 202 " \
    "a slow first response is not overtaken by the second"

# upstream reuse: 1,000 sequential requests, half on one downstream connection and half on a
# new downstream connection each; the upstream sees a few pooled connections per worker
u0=$(upstream_accepted)
curl -s -o /dev/null "$U/[1-500]"
python3 - "$P_HTTP" <<'EOF'
import socket, sys
for i in range(500):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    d = b""
    while True:
        c = s.recv(65536)
        if not c: break
        d += c
    assert d.startswith(b"HTTP/1.1 200"), d[:100]
    s.close()
EOF
[ $? -eq 0 ] || fail "500 requests on fresh downstream connections"
u1=$(upstream_accepted)
assert_le "$((u1 - u0))" 4 "1,000 requests used at most 4 upstream connections (2 workers)"
wait_stat cluster.a.upstream_rq_total 1000
assert_le "$(stat_value cluster.a.upstream_cx_total)" 6 "cluster.a.upstream_cx_total stays small"

# request bodies: content-length and chunked, forwarded byte for byte
head -c 3000000 /dev/urandom >"$TMP/body"
crc=$(python3 -c 'import sys,zlib; print("%08x" % zlib.crc32(open(sys.argv[1],"rb").read()))' "$TMP/body")
assert_eq "$(curl -s --data-binary @"$TMP/body" "$U/upload")" "body_bytes=3000000 crc32=$crc" \
    "3 MB content-length body forwarded intact"
assert_eq "$(curl -s -H 'transfer-encoding: chunked' --data-binary @"$TMP/body" "$U/upload")" \
    "body_bytes=3000000 crc32=$crc" "3 MB chunked body forwarded intact"
req='POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n'
out=$(raw "$P_HTTP" "$req" --responses 1)
assert_contains "$out" '"body_bytes": 11' "chunked body with extensions and trailers forwarded (11 bytes)"
assert_contains "$out" '"body_crc32": "0d4a1185"' "chunked body content intact"

# streamed chunked download
crc=$(python3 -c 'import zlib; n=5000000; b=bytes(97+i%26 for i in range(26))*(n//26+1); print("%08x" % zlib.crc32(b[:n]))')
got=$(curl -s "$U/bytes/5000000" | python3 -c 'import sys,zlib; d=sys.stdin.buffer.read(); print(len(d), "%08x" % zlib.crc32(d))')
assert_eq "$got" "5000000 $crc" "5 MB chunked download intact"

# HEAD: headers only, and the connection is reused for the next request
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects} %{size_download}\n' -I "$U/" \
    --next -s -o /dev/null -w '%{http_code} %{num_connects} %{size_download}\n' "$U/")
assert_eq "$(tr '\n' ' ' <<<"$out")" "200 1 0 200 0 1024 " "HEAD has no body and the connection is reused"
assert_eq "$(header content-length -I "$U/")" 1024 "HEAD keeps the GET content-length"

# 204: no body, connection reused
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects} %{size_download}\n' "$U/status/204" \
    --next -s -o /dev/null -w '%{http_code} %{num_connects} %{size_download}\n' "$U/")
assert_eq "$(tr '\n' ' ' <<<"$out")" "204 1 0 200 0 1024 " "204 has no body and the connection is reused"

# 304 and other statuses pass through
assert_eq "$(status "$U/status/304")" 304 "304 passes through"
assert_eq "$(status "$U/status/503")" 503 "upstream 503 passes through"

# the upstream closes after a response: the client still gets it, the next request works
out=$(curl -s -w '%{http_code} ' -o /dev/null "$U/close" -o /dev/null "$U/" -o /dev/null "$U/close" -o /dev/null "$U/")
assert_eq "$out" "200 200 200 200 " "upstream connection: close is handled, pool recovers"

# client Connection: close and HTTP/1.0: one response, then the proxy closes
out=$(raw "$P_HTTP" 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' --responses 1 --wait-close)
assert_match "$out" '^HTTP/1.1 200' "Connection: close request answered"
assert_eq "$(tail -n1 <<<"$out")" "<<CLOSED>>" "Connection: close -> the proxy closes"
out=$(raw "$P_HTTP" 'GET / HTTP/1.0\r\nHost: x\r\n\r\n' --responses 1 --wait-close)
assert_match "$out" '^HTTP/1.[01] 200' "HTTP/1.0 request answered (accept_http_10)"
assert_eq "$(tail -n1 <<<"$out")" "<<CLOSED>>" "HTTP/1.0 without keep-alive -> the proxy closes"
wait_stat http.ka.downstream_rq_2xx 1000
