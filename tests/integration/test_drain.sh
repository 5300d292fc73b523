#!/usr/bin/env bash
# Shutdown as Kubernetes drives it: SIGTERM lets in-flight requests finish, refuses new
# connections, closes idle keep-alive ones and exits 0 as soon as nothing is left (well before
# --drain-time-s); POST /drain_listeners stops accepting but keeps serving; POST /quitquitquit exits.
. "$(dirname "$0")/lib.sh"

read -r P_ADMIN P_HTTP UA <<<"$(free_ports 3)"
start_upstream a "$UA"
write_bootstrap() {
    cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(yaml_hcm http $P_HTTP dr)
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
}

# clients.py: NSLOW connections each with a request for PATH in flight and NIDLE idle keep-alive
# connections (one request answered each); writes "ready" to $TMP/ready once all are in place,
# then prints the slow statuses and, for each idle connection, whether the proxy closed it.
cat >"$TMP/clients.py" <<'EOF'
import socket, sys, time
port, nslow, nidle, path, ready = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def read_status(s):
    d = b""
    while b"\r\n\r\n" not in d:
        c = s.recv(65536)
        if not c: return "closed"
        d += c
    return d.split(b" ")[1].decode()
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(nidle)]
for s in idle:
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_status(s) == "200"
slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(nslow)]
for s in slow:
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
open(ready, "w").write("ready\n")
out = []
for s in slow:
    s.settimeout(15)
    out.append(read_status(s))
for s in idle:
    s.settimeout(15)
    try:
        d = s.recv(65536)  # the rest of the 1024-byte body may come first
        while d:
            d = s.recv(65536)
        out.append("idle-closed")
    except socket.timeout:
        out.append("idle-open")
    except ConnectionResetError:
        out.append("idle-closed")
print(" ".join(out))
EOF

write_bootstrap
start_ringside "$TMP/bootstrap.yaml" --drain-time-s 30
python3 "$TMP/clients.py" "$P_HTTP" 5 2 /delay/1500 "$TMP/ready" >"$TMP/clients.out" 2>"$TMP/clients.err" &
CLIENTS=$!
wait_for "clients to be in flight" 10 test -s "$TMP/ready"
wait_stat http.dr.downstream_rq_active 5
t0=$EPOCHREALTIME
kill -TERM "$RS_PID"
wait_for "the listener to stop accepting after SIGTERM" 5 port_closed "$P_HTTP"
log "ok: new connections are refused after SIGTERM"
kill -0 "$RS_PID" 2>/dev/null || fail "ringside exited with requests in flight"
log "ok: still running while requests are in flight"
wait "$CLIENTS" || fail "clients failed: $(cat "$TMP/clients.err")"
assert_eq "$(cat "$TMP/clients.out")" "200 200 200 200 200 idle-closed idle-closed" \
    "in-flight slow requests complete with 200, idle keep-alive connections are closed"
wait "$RS_PID"
rc=$?
elapsed=$(python3 -c "print(int(($EPOCHREALTIME - $t0) * 1000))")
assert_eq "$rc" 0 "ringside exits 0 after the drain"
assert_le "$elapsed" 6000 "it exits once the last request is done, well before --drain-time-s 30 (ms)"
assert_contains "$(cat "$TMP/ringside.err")" "caught SIGTERM" "the drain is logged"

# POST /drain_listeners: stops accepting, keeps serving what is in flight, admin stays up
read -r P_ADMIN P_HTTP <<<"$(free_ports 2)"
write_bootstrap
rm -f "$TMP/ready"
start_ringside "$TMP/bootstrap.yaml" --drain-time-s 30
python3 "$TMP/clients.py" "$P_HTTP" 3 0 /delay/1000 "$TMP/ready" >"$TMP/clients.out" 2>"$TMP/clients.err" &
CLIENTS=$!
wait_for "clients to be in flight" 10 test -s "$TMP/ready"
wait_stat http.dr.downstream_rq_active 3
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$P_ADMIN/drain_listeners")" 200 \
    "POST /drain_listeners answers 200"
wait_for "the listener to stop accepting after /drain_listeners" 5 port_closed "$P_HTTP"
log "ok: new connections are refused after /drain_listeners"
wait "$CLIENTS" || fail "clients failed: $(cat "$TMP/clients.err")"
assert_eq "$(cat "$TMP/clients.out")" "200 200 200" "in-flight requests complete after /drain_listeners"
kill -0 "$RS_PID" 2>/dev/null || fail "ringside exited after /drain_listeners"
assert_eq "$(curl -s "http://127.0.0.1:$P_ADMIN/ready")" "DRAINING" "/ready reports DRAINING"

# POST /quitquitquit: the process exits 0
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$P_ADMIN/quitquitquit")" 200 \
    "POST /quitquitquit answers 200"
t0=$SECONDS
wait "$RS_PID"
assert_eq "$?" 0 "ringside exits 0 after /quitquitquit"
assert_le "$((SECONDS - t0))" 3 "it exits promptly (s)"
