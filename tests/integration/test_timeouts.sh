#!/usr/bin/env bash
# The HTTP connection manager's stream timeouts, as Envoy applies them: stream_idle_timeout (408
# and SI when nothing moves), request_timeout (408 when the whole request is late), a route's
# idle_timeout replacing the manager's, max_connection_duration draining a keep-alive connection,
# and a client that leaves in the middle of its request counted as a downstream reset.
source "$(dirname "$0")/lib.sh"
need curl
need python3

read -r UP LISTEN ADMIN_PORT <<<"$(free_ports 3)"
start_upstream t1 "$UP"
RAW="$RS_SRC/tests/integration/rawclient.py"

cat >"$TMP/bootstrap.yaml" <<YAML
$(yaml_admin $ADMIN_PORT)
static_resources:
  listeners:
$(yaml_hcm http $LISTEN to)
          stream_idle_timeout: 0.4s
          request_timeout: 1s
          common_http_protocol_options: { max_connection_duration: 1.5s }
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }
$(yaml_router)
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /patient }
                route: { cluster: up, timeout: 0s, idle_timeout: 2s, prefix_rewrite: / }
              - match: { prefix: / }
                route: { cluster: up, timeout: 0s }
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $UP } } }
YAML
start_ringside "$TMP/bootstrap.yaml"

# stream_idle_timeout: the upstream says nothing for longer than 0.4 s
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$LISTEN/delay/1200")
assert_eq "$code" 408 "an idle stream is answered 408"
assert_eq "$(cat "$TMP/body")" "stream timeout" "with Envoy's body"
wait_for "the SI access-log line" 5 grep -q '"GET /delay/1200 HTTP/1.1" 408 SI' "$TMP/ringside.out"
wait_stat http.to.downstream_rq_idle_timeout 1

# a route's idle_timeout (2 s) replaces the manager's 0.4 s
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LISTEN/patient/delay/700")
assert_eq "$code" 200 "the route's longer idle_timeout lets a slow answer through"

# request_timeout: the body trickles in (never idle for 0.4 s) but is not complete after 1 s
out=$(python3 "$RAW" "$LISTEN" 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nab|PAUSE|cd|PAUSE|ef|PAUSE|gh|PAUSE|ij|PAUSE|kl' \
    --split --pause 0.3 --idle 3)
assert_contains "$out" "HTTP/1.1 408" "a request still arriving after request_timeout gets 408"
assert_contains "$out" "request timeout" "with Envoy's body"
assert_contains "$out" "<<CLOSED>>" "and the connection is closed"
wait_stat http.to.downstream_rq_timeout 1

# a client that leaves mid-request is a downstream reset, not an answered request
python3 "$RAW" "$LISTEN" 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc' --idle 0.2 >/dev/null
wait_stat http.to.downstream_rq_rx_reset 1
wait_for "the DC access-log line" 5 grep -q '"POST / HTTP/1.1" 0 DC' "$TMP/ringside.out"

# max_connection_duration: a keep-alive connection is closed after 1.5 s once idle
out=$(python3 "$RAW" "$LISTEN" 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' --responses 1 --wait-close --idle 4)
assert_contains "$out" "HTTP/1.1 200" "the request on it was answered"
assert_contains "$out" "<<CLOSED>>" "the connection was closed by the proxy"
wait_stat http.to.downstream_cx_max_duration_reached 1
log "passed"
