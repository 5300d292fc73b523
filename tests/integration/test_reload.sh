#!/usr/bin/env bash
# Live configuration updates (SIGHUP reloads the bootstrap and publishes a new snapshot) under
# continuous load: route and weight changes, a listener added and removed, a cluster removed, a
# broken bootstrap refused. No request may fail; a connection of an unchanged listener survives
# every update; one of a changed listener is drained (closed after its response), not cut.
. "$(dirname "$0")/lib.sh"
need python3

read -r P_ADMIN P_HTTP P_KEEP P_TCP P_NEW UA UB <<<"$(free_ports 7)"
start_upstream a "$UA"
start_upstream b "$UB"

# bootstrap VERSION CLUSTER WEIGHT_B NEW_LISTENER(0|1) WITH_B(0|1)
bootstrap() {
    local v=$1 route_to=$2 wb=$3 with_new=$4 with_b=$5
    {
        yaml_admin "$P_ADMIN"
        echo "static_resources:"
        echo "  listeners:"
        yaml_hcm http "$P_HTTP" http
        yaml_router
        cat <<EOF
          route_config:
            name: rt
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/split" }
                route:
                  weighted_clusters:
                    clusters:
                    - { name: a, weight: $((100 - wb)) }
                    - { name: $([ "$with_b" = 1 ] && echo b || echo a), weight: $wb }
              - match: { prefix: "/" }
                route: { cluster: $route_to }
                response_headers_to_add:
                - header: { key: x-config-version, value: "$v" }
EOF
        yaml_hcm keep "$P_KEEP" keep
        yaml_router
        cat <<EOF
          route_config:
            name: keep
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: a }
  - name: tcp
    address: { socket_address: { address: 127.0.0.1, port_value: $P_TCP } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: a
EOF
        if [ "$with_new" = 1 ]; then
            yaml_hcm added "$P_NEW" added
            yaml_router
            cat <<EOF
          route_config:
            name: added
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "added listener\n" } }
EOF
        fi
        echo "  clusters:"
        yaml_static_cluster a "$UA"
        [ "$with_b" = 1 ] && yaml_static_cluster b "$UB"
        true
    } >"$TMP/bootstrap.yaml.tmp"
    mv "$TMP/bootstrap.yaml.tmp" "$TMP/bootstrap.yaml"
}

reload_to() { # reload_to EXPECTED_SUCCESS_COUNT: SIGHUP and wait for the update to be counted
    kill -HUP "$RS_PID"
    wait_stat server.reload_success "$1" 10
}

bootstrap 0 a 0 0 1
start_ringside "$TMP/bootstrap.yaml" -l debug
assert_eq "$(header x-config-version "http://127.0.0.1:$P_HTTP/")" "0" "version 0 serves"

# A keep-alive connection on the listener that never changes, and a TCP-proxied one: both must
# outlive every update.
python3 - "$P_KEEP" "$P_TCP" "$TMP/held.ready" "$TMP/held.go" "$TMP/held.out" <<'EOF' &
import socket, sys, os, time
keep, tcp, ready, go, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def get(s):
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: k\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: return "closed"
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < n:
        d = s.recv(65536)
        if not d: return "closed"
        body += d
    return head.split(b"\r\n")[0].decode()
k = socket.create_connection(("127.0.0.1", keep), timeout=10)
t = socket.create_connection(("127.0.0.1", tcp), timeout=10)
r1, r2 = get(k), get(t)
open(ready, "w").write("%s|%s\n" % (r1, r2))
deadline = time.time() + 120
while not os.path.exists(go) and time.time() < deadline: time.sleep(0.05)
open(out, "w").write("%s|%s\n" % (get(k), get(t)))
EOF
HELD=$!
wait_for "held connections to be up" 10 test -s "$TMP/held.ready"
assert_eq "$(cat "$TMP/held.ready")" "HTTP/1.1 200 OK|HTTP/1.1 200 OK" "held connections answer before the updates"

# Continuous load on the listener that changes with every update.
"$LOADGEN" --url "http://127.0.0.1:$P_HTTP/split" -c 8 --rate 400 --duration 12 --warmup 0 \
    --json >"$TMP/load.json" 2>"$TMP/load.err" &
LOAD=$!
wait_stat http.http.downstream_rq_2xx 200 10

n=0
for i in $(seq 1 40); do
    case $((i % 4)) in
    0) bootstrap "$i" a "$((i % 100))" 0 1 ;;
    1) bootstrap "$i" b "$((100 - i % 100))" 0 1 ;;
    2) bootstrap "$i" a 50 1 1 ;;   # a listener appears
    3) bootstrap "$i" a 0 0 0 ;;    # it goes again, and so does cluster b
    esac
    n=$((n + 1))
    reload_to "$n"
    if [ $((i % 4)) = 2 ]; then
        assert_eq "$(curl -s --max-time 5 "http://127.0.0.1:$P_NEW/")" "added listener" "update $i: the added listener serves"
    fi
    if [ $((i % 4)) = 3 ]; then
        wait_for "port $P_NEW to close after update $i" 10 port_closed "$P_NEW"
    fi
done
assert_eq "$(header x-config-version "http://127.0.0.1:$P_HTTP/")" "40" "the last update serves"

# A broken bootstrap is refused and the running configuration stays.
echo "static_resources: { listeners: [ { name: broken" >"$TMP/bootstrap.yaml"
kill -HUP "$RS_PID"
wait_stat server.reload_rejected 1 10
assert_eq "$(header x-config-version "http://127.0.0.1:$P_HTTP/")" "40" "a refused update leaves the last good one serving"
assert_contains "$(cat "$TMP/ringside.err")" "reload refused" "the refusal is logged"

wait "$LOAD" || fail "loadgen failed: $(cat "$TMP/load.err")"
python3 - "$TMP/load.json" <<'EOF' || fail "requests failed during the updates: $(cat "$TMP/load.json")"
import json, sys
r = json.load(open(sys.argv[1]))
print("requests %d, 2xx %d, errors %s" % (r["requests"], r["status"]["2xx"], r["errors"]))
assert r["requests"] > 3000, "too few requests"
assert r["errors"]["total"] == 0, "errors"
assert r["status"]["2xx"] == r["requests"], "non-2xx answers"
EOF
log "ok: no failed request across 41 updates under load"

touch "$TMP/held.go"
wait "$HELD"
assert_eq "$(cat "$TMP/held.out")" "HTTP/1.1 200 OK|HTTP/1.1 200 OK" "connections of unchanged listeners survived every update"
drains=$(stat_value http.http.downstream_cx_drain_close)
log "connections drained by updates: ${drains:-0}"
assert_eq "$(stat_value server.reload_success)" "40" "every good update counted"
