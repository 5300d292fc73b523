#!/usr/bin/env bash
# Scale and memory: a 100 MiB upload and a 100 MiB download stream through the proxy with its peak
# RSS bounded (bodies are never buffered whole), then 10,000 concurrent downstream connections are
# held open, each answered, with the proxy's RSS reported.
. "$(dirname "$0")/lib.sh"

NCONN=10000
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((NCONN + 2000)) ] || skip "needs a file-descriptor limit of $((NCONN + 2000)) (hard limit $(ulimit -Hn))"

read -r P_ADMIN P_HTTP UA <<<"$(free_ports 3)"
start_upstream a "$UA" --threads 2
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
$(yaml_hcm http $P_HTTP scale)
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: a, timeout: 60s }
  clusters:
  - name: a
    connect_timeout: 1s
    type: STATIC
    circuit_breakers: { thresholds: [ { max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 } ] }
    load_assignment:
      cluster_name: a
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UA } } }
EOF
start_ringside "$TMP/bootstrap.yaml"
U=http://127.0.0.1:$P_HTTP
rss0=$(proc_kb "$RS_PID" VmRSS)
log "proxy RSS at start: $rss0 KiB"

# 100 MiB each way, streamed
MIB100=$((100 * 1024 * 1024))
head -c $MIB100 /dev/urandom >"$TMP/big"
crc=$(python3 -c 'import sys,zlib; print("%08x" % zlib.crc32(open(sys.argv[1],"rb").read()))' "$TMP/big")
t0=$EPOCHREALTIME
assert_eq "$(curl -s --max-time 120 --data-binary @"$TMP/big" "$U/upload")" "body_bytes=$MIB100 crc32=$crc" \
    "100 MiB upload through the proxy intact"
t1=$EPOCHREALTIME
rm -f "$TMP/big"
crc=$(python3 -c 'import zlib; n=100*1024*1024; b=bytes(97+i%26 for i in range(26))*(n//26+1); print("%08x" % zlib.crc32(b[:n]))')
got=$(curl -s --max-time 120 "$U/bytes/$MIB100" | python3 -c '
import sys, zlib
n, c = 0, 0
while True:
    d = sys.stdin.buffer.read(1 << 20)
    if not d: break
    n += len(d); c = zlib.crc32(d, c)
print(n, "%08x" % c)')
t2=$EPOCHREALTIME
assert_eq "$got" "$MIB100 $crc" "100 MiB download through the proxy intact"
hwm=$(proc_kb "$RS_PID" VmHWM)
log "FIGURE: 100 MiB upload $(python3 -c "print('%.2f' % ($t1 - $t0))")s, download $(python3 -c "print('%.2f' % ($t2 - $t1))")s; proxy peak RSS (VmHWM) ${hwm} KiB"
if [ "$RS_SANITIZED" = 1 ]; then
    log "skip: the peak-RSS bound under ASan (shadow memory and quarantine inflate RSS)"
else
    assert_le "$hwm" $((64 * 1024)) "proxy peak RSS while streaming 2x100 MiB stays under 64 MiB (KiB)"
fi

# 10,000 concurrent connections: all opened and held, one request on each (in waves of 1,000,
# so the upstream side stays within the fd limit), every response checked, then all still open
cat >"$TMP/many.py" <<'EOF'
import selectors, socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(True)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    socks.append(s)
sel = selectors.DefaultSelector()
ok = 0
bad = {"closed": 0, "timed out": 0, "not 200 from a": 0}  # why a connection was not ok
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
for w in range(0, n, 1000):
    wave = socks[w:w + 1000]
    bufs = {}
    for s in wave:
        s.send(req)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    left = len(wave)
    deadline = time.time() + 60
    while left and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            d = s.recv(65536)
            if not d:
                sel.unregister(s); left -= 1; bad["closed"] += 1
                sys.stderr.write("connection %d closed after %r\n" % (socks.index(s), bufs[s][:200]))
                continue
            bufs[s] += d
            b = bufs[s]
            if b"\r\n\r\n" in b and len(b) >= b.index(b"\r\n\r\n") + 4 + 1024:
                sel.unregister(s); left -= 1
                good = b.startswith(b"HTTP/1.1 200") and b"x-upstream-id: a" in b
                ok += good
                if not good:
                    bad["not 200 from a"] += 1
                    sys.stderr.write("connection %d got %r\n" % (socks.index(s), b[:200]))
    for key in list(sel.get_map().values()):  # still registered at the deadline
        s = key.fileobj
        sel.unregister(s); bad["timed out"] += 1
        sys.stderr.write("connection %d: no response in 60 s, had %r\n" % (socks.index(s), bufs[s][:200]))
if ok != n:
    sys.stderr.write("not ok: %r\n" % bad)
print(ok, flush=True)
open(hold, "w").write("%d\n" % ok)
# hold every connection open until told to stop (stdin closes)
sys.stdin.read()
alive = 0
for s in socks:
    try:
        alive += s.recv(1) == b"" and 0 or 0
    except BlockingIOError:
        alive += 1  # nothing to read and not closed: still open
    except OSError:
        pass
print(alive, flush=True)
EOF
# the kernel's listen-queue counters (machine-wide): a connection it dropped never reached the proxy
tcpext() {
    awk '/^TcpExt:/ { if (!n) { for (i = 2; i <= NF; i++) k[i] = $i; n = 1 } else for (i = 2; i <= NF; i++) if (k[i] ~ /^(ListenOverflows|ListenDrops|SyncookiesFailed)$/) printf "%s=%s ", k[i], $i }' /proc/net/netstat
}
kernel0=$(tcpext)
mkfifo "$TMP/hold-stdin"
python3 "$TMP/many.py" "$P_HTTP" $NCONN "$TMP/held" <"$TMP/hold-stdin" >"$TMP/many.out" 2>"$TMP/many.err" &
MANY=$!
PIDS+=($MANY)
exec 7>"$TMP/hold-stdin"
t0=$EPOCHREALTIME
wait_for "$NCONN connections to get their responses" 120 test -s "$TMP/held"
t1=$EPOCHREALTIME
L=listener.127.0.0.1_$P_HTTP
if [ "$(cat "$TMP/held")" != $NCONN ]; then
    log "kernel before: $kernel0"
    log "kernel after:  $(tcpext)"
    log "the proxy accepted $(stat_value "$L.downstream_cx_total") connections"
fi
assert_eq "$(cat "$TMP/held")" $NCONN "all $NCONN connections answered 200 by the upstream"
wait_for "$NCONN connections active" 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$P_ADMIN/stats | awk -F': ' '\$1==\"$L.downstream_cx_active\"{print \$2}')\" = $NCONN ]"
log "ok: $L.downstream_cx_active = $NCONN"
rss=$(proc_kb "$RS_PID" VmRSS)
log "FIGURE: $NCONN connections opened and answered in $(python3 -c "print('%.2f' % ($t1 - $t0))")s; proxy RSS ${rss} KiB with $NCONN held ($(( (rss - rss0) * 1024 / NCONN )) bytes/connection over the start)"
if [ "$RS_SANITIZED" != 1 ]; then
    assert_le "$rss" $((256 * 1024)) "proxy RSS with $NCONN connections under 256 MiB (KiB)"
fi
exec 7>&-
wait "$MANY"
assert_eq "$(tail -n1 "$TMP/many.out")" $NCONN "all $NCONN connections were still open when released"
wait_for "connections to be released" 20 bash -c "[ \"\$(curl -s http://127.0.0.1:$P_ADMIN/stats | awk -F': ' '\$1==\"$L.downstream_cx_active\"{print \$2}')\" = 0 ]"
log "ok: downstream_cx_active back to 0"
assert_eq "$(status "$U/")" 200 "the proxy serves normally afterwards"
