#!/usr/bin/env bash
# A cluster removed from CDS while a request to it is in flight: the request completes on the
# snapshot it started with (200, full body), new requests to the route answer 503 (no cluster),
# and 404 once the route goes too; the other cluster serves throughout.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP U1 U2 <<<"$(free_ports 4)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/delay>a" --route "routes=/>b"
start_ads_server
xds_start_ringside DELTA_GRPC
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/delay/1")" u1 "/delay routed to cluster a"
wait_for "the RDS ACK" 10 ads_settled

# a 3 s request in flight through cluster a
curl -s -o "$TMP/slow.body" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$LP/delay/3000" >"$TMP/slow.code" &
SLOW=$!
wait_stat cluster.a.upstream_rq_active 1

ads_push --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/delay>a" --route "routes=/>b"
assert_eq "$(ads_q '[s["sent"]["removed_resources"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')" \
    "['a']" "cluster a removed (delta removed_resources)"
wait_for "new requests to the removed cluster to answer 503" 10 eval '[ "$(status "http://127.0.0.1:$LP/delay/1")" == 503 ]'
kill -0 $SLOW 2>/dev/null || fail "the slow request ended before the removal was applied: the test proves nothing"
log "ok: the slow request still in flight when the removal was applied"
wait_stat http.http.no_cluster 1 # Envoy's NC
assert_eq "$(admin /clusters | grep -c '^a::')" 0 "cluster a gone from /clusters"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/other")" u2 "cluster b serves"
wait $SLOW
assert_eq "$(cat "$TMP/slow.code")" 200 "the in-flight request completed"
assert_eq "$(cat "$TMP/slow.body")" "delayed 3000" "with its whole body"

ads_push --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/other>b"
wait_for "the removed route to answer 404" 10 eval '[ "$(status "http://127.0.0.1:$LP/delay/1")" == 404 ]'
assert_eq "$(status "http://127.0.0.1:$LP/other")" 200 "the remaining route serves"
