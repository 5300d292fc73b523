#!/usr/bin/env bash
# Istio's capture shape with iptables, in a network namespace of the test's own: outbound
# connections to service addresses are REDIRECTed to virtualOutbound (15001, use_original_dst),
# which hands each one to the listener of its original destination (0.0.0.0_<port>,
# bind_to_port: false) or, when none matches, to PassthroughCluster (ORIGINAL_DST: connect to
# where the client meant to go). The proxy's own connections are not captured (uid 1337, as
# Istio's sidecar runs).
. "$(dirname "$0")/lib.sh"
need iptables
need setpriv
[ "$(id -u)" = 0 ] || skip "needs root for a network namespace"

NS=rs-odst-$$
ip netns add "$NS" || skip "cannot create a network namespace"
CLEANUP_CMDS+=("ip netns del $NS")
chmod 755 "$TMP"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
nsx ip addr add 10.99.0.1/32 dev lo # the "service" address (nothing listens on it)
nsx ip addr add 10.99.0.2/32 dev lo # an address outside the mesh (passthrough)
nsx iptables -t nat -A OUTPUT -p tcp -d 10.99.0.0/16 -m owner ! --uid-owner 1337 \
    -j REDIRECT --to-ports 15001 || skip "iptables nat is not available"

P_ADMIN=15000
cat >"$TMP/bootstrap.yaml" <<EOF
$(yaml_admin $P_ADMIN)
static_resources:
  listeners:
  - name: virtualOutbound
    address: { socket_address: { address: 0.0.0.0, port_value: 15001 } }
    use_original_dst: true
    filter_chains:
    - name: virtualOutbound-catchall-tcp
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: PassthroughCluster
          cluster: PassthroughCluster
  - name: 0.0.0.0_9080
    address: { socket_address: { address: 0.0.0.0, port_value: 9080 } }
    bind_to_port: false
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: outbound_0.0.0.0_9080
$(yaml_router)
          route_config:
            name: "9080"
            virtual_hosts:
            - name: reviews
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: reviews }
  clusters:
  - name: PassthroughCluster
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 1s
  - name: reviews
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: reviews
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 19080 } } }
EOF

# Upstreams inside the namespace: the reviews backend on 127.0.0.1, and an outside service on
# 10.99.0.2 (reached only through the passthrough; it runs as 1337 so its replies are not
# captured either).
# (ip netns exec and setpriv exec, so $! is the process itself and cleanup stops it)
ip netns exec "$NS" "$UPSTREAM" --port 19080 --id reviews >"$TMP/up-reviews.out" 2>&1 &
PIDS+=($!)
ip netns exec "$NS" setpriv --reuid=1337 --regid=1337 --clear-groups "$UPSTREAM" --port 8000 --id outside \
    --bind 10.99.0.2 >"$TMP/up-outside.out" 2>&1 &
PIDS+=($!)
ip netns exec "$NS" setpriv --reuid=1337 --regid=1337 --clear-groups "$RINGSIDE" -c "$TMP/bootstrap.yaml" \
    --concurrency 2 --drain-time-s 2 >"$TMP/ringside.out" 2>"$TMP/ringside.err" &
RS_PID=$!
PIDS+=($RS_PID)
ns_ready() { nsx curl -sf "http://127.0.0.1:$P_ADMIN/ready" | grep -q LIVE; }
wait_for "ringside in the namespace to be ready" 20 ns_ready
ns_stat() { nsx curl -s "http://127.0.0.1:$P_ADMIN/stats" | awk -v n="$1:" '$1 == n { print $2 }'; }

# The client believes it talks to reviews at 10.99.0.1:9080.
out=$(nsx curl -s -D - --max-time 5 http://10.99.0.1:9080/echo)
assert_contains "$out" "x-upstream-id: reviews" "a captured connection to the service port is routed by 0.0.0.0_9080"
assert_eq "$(ns_stat http.outbound_0.0.0.0_9080.downstream_rq_2xx)" "1" "the request was counted on the handed-off listener"
assert_eq "$(ns_stat listener.0.0.0.0_9080.downstream_cx_total)" "1" "and its connection on that listener"

# No listener on port 8000: virtualOutbound's own chain, PassthroughCluster, the original
# destination.
out=$(nsx curl -s -D - --max-time 5 http://10.99.0.2:8000/echo)
assert_contains "$out" "x-upstream-id: outside" "an uncaptured port passes through to the original destination"
assert_eq "$(ns_stat cluster.PassthroughCluster.upstream_cx_total)" "1" "through PassthroughCluster"

# A connection straight to 15001 has no original destination: PassthroughCluster has no host.
code=$(nsx curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:15001/ || true)
assert_eq "$code" "000" "a connection that was not redirected gets no passthrough (no loop)"
wait_for "the refused passthrough to be counted" 5 \
    bash -c "[ \"\$(ip netns exec $NS curl -s http://127.0.0.1:$P_ADMIN/stats | awk '\$1 == \"cluster.PassthroughCluster.upstream_cx_none_healthy:\" {print \$2}')\" = 1 ]"
log "ok: counted as upstream_cx_none_healthy"
