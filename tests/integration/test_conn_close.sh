#!/usr/bin/env bash
# How a downstream connection ends after "Connection: close": the FIN travels with the end of the
# response (the client finds end-of-stream as soon as it has the last byte, so it never closes
# first and never holds the TIME_WAIT), and a large response to a slow reader still arrives whole
# before the FIN.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP UA <<<"$(free_ports 3)"
start_upstream a "$UA"
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(yaml_hcm http $P_HTTP cc)
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

# 200 connections: read the response up to its last body byte, then look (without waiting)
# whether end-of-stream is already there.
out=$(python3 - "$P_HTTP" <<'EOF'
import socket, sys
port = int(sys.argv[1])
complete = eof_with_last_byte = 0
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            break
        data += d
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        d = s.recv(65536)
        if not d:
            break
        body += d
    if len(body) == length:
        complete += 1
        try:
            if s.recv(1, socket.MSG_DONTWAIT) == b"":
                eof_with_last_byte += 1
        except BlockingIOError:
            pass
    s.close()
print(complete, eof_with_last_byte)
EOF
)
read -r complete eof <<<"$out"
assert_eq "$complete" 200 "200 responses with Connection: close arrive complete"
assert_eq "$eof" 200 "end-of-stream is there with the last byte of each (the FIN rides with the response)"

# At full speed (loadgen, a new connection per request, closing as soon as it has the response):
# the client never closes first, so it holds no TIME_WAIT. (Closing only after the response's send
# completed left about half of them on the client's side.)
LOADGEN=$RS_BUILD/bench/loadgen
if [ -x "$LOADGEN" ]; then
    "$LOADGEN" --url "http://127.0.0.1:$P_HTTP/" --new-conn -c 8 --duration 0.5 --json >"$TMP/lg.json" ||
        fail "loadgen failed: $(cat "$TMP/lg.json")"
    conns=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["connections_opened"])' "$TMP/lg.json")
    client_tw=$(ss -Htn state time-wait "( dport = :$P_HTTP )" | wc -l)
    assert_ge "$conns" 500 "loadgen opened connections"
    assert_le "$((client_tw * 1000 / conns))" 5 "at most 0.5% of them left TIME_WAIT on the client ($client_tw of $conns, per mille)"
else
    log "no loadgen at $LOADGEN: the TIME_WAIT check is skipped"
fi

# A 4 MiB body to a client that reads slowly: the proxy's sends go short and are finished before
# the FIN; every byte arrives, then end-of-stream.
n=$(python3 - "$P_HTTP" <<'EOF'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connect: a small window scale
s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /bytes/4194304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
time.sleep(0.3)  # let the proxy fill the socket and queue the rest (not synchronisation)
data = b""
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    d = s.recv(16384)
    if not d:
        break
    data += d
head, _, body = data.partition(b"\r\n\r\n")
if b"transfer-encoding: chunked" in head.lower():
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    body = out
print(len(body))
EOF
)
assert_eq "$n" 4194304 "a 4 MiB response to a slow reader arrives whole before end-of-stream"
