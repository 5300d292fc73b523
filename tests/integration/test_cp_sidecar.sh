#!/usr/bin/env bash
# ringside-cp + ringside end to end on loopback: the client sidecar of productpage gets its whole
# configuration from ringside-cp's mesh file, routes by host, splits by weight, routes by header,
# proxies a tcp service; then 200 edits of the mesh file (weights, the header route, an endpoint
# added and removed, timeouts) are pushed while loadgen sends 300 rq/s over 8 connections: no
# request fails, every edit is applied and ACKed, and the final routing is the last file's. An
# invalid edit in the middle is rejected by ringside-cp and changes nothing in ringside.
source "$(dirname "$0")/lib.sh"

CP=$RS_BUILD/xds/cp/ringside-cp
[ -x "$CP" ] || skip "no ringside-cp at $CP"
[ -x "$LOADGEN" ] || skip "no loadgen at $LOADGEN"

# Workload addresses in a random 127.A.B.0/24 (all of 127/8 is loopback): with `bind: workload`
# the sidecar's listeners bind its own address, so parallel tests cannot collide on 9080/15001.
NET=127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
PP=$NET.10  # productpage: the node of the sidecar under test
V1=$NET.11  # reviews v1
V2=$NET.12  # reviews v2
V2B=$NET.13 # a second reviews v2 endpoint, added and removed by the edits
RT=$NET.14  # ratings (tcp)
read -r CP_PORT ADMIN APP ENTRY <<<"$(free_ports 4)"
MESH=$TMP/mesh.yaml
N_EDITS=${RS_CP_EDITS:-200}

# write_mesh W1 W2 HDR TIMEOUT WITH_V2B: the mesh, written to a temporary file and renamed over
# the watched one (ringside-cp must never see half a file).
write_mesh() {
    local w1=$1 w2=$2 hdr=$3 timeout=$4 v2b=$5
    {
        cat <<Y
options: {bind: workload, connect_timeout: 1s}
services:
  - name: reviews
    ports: [{port: 9080, protocol: http}]
    subsets:
      - {name: v1, labels: {version: v1}}
      - {name: v2, labels: {version: v2}}
    traffic:
      timeout: $timeout
      routes:
        - name: by-user
          match: {prefix: /, headers: {end-user: {exact: $hdr}}}
          to: [{subset: v1}]
        - name: split
          to: [{subset: v1, weight: $w1}, {subset: v2, weight: $w2}]
  - name: ratings
    ports: [{port: 9300, protocol: tcp}]
workloads:
  - {name: productpage-1, address: $PP, labels: {app: productpage}}
  - {name: reviews-v1, address: $V1, labels: {app: reviews, version: v1}, services: [reviews], port: $APP}
  - {name: reviews-v2, address: $V2, labels: {app: reviews, version: v2}, services: [reviews], port: $APP}
  - {name: ratings-v1, address: $RT, labels: {app: ratings}, services: [ratings], port: $APP}
Y
        if [ "$v2b" = 1 ]; then
            echo "  - {name: reviews-v2b, address: $V2B, labels: {app: reviews, version: v2}, services: [reviews], port: $APP}"
        fi
    } >"$MESH.tmp"
    mv "$MESH.tmp" "$MESH"
}

write_mesh 50 50 jason 5s 0
"$CP" --mesh "$MESH" --listen "127.0.0.1:$CP_PORT" >"$TMP/cp.out" 2>"$TMP/cp.err" &
CP_PID=$!
PIDS+=($CP_PID)
wait_for "ringside-cp to listen" 10 grep -q '^ringside-cp listening' "$TMP/cp.out"

# the upstreams listen on their workload addresses (lib.sh's start_upstream waits on 127.0.0.1)
addr_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
for u in "v1 $V1" "v2 $V2" "v2b $V2B" "ratings $RT"; do
    set -- $u
    "$UPSTREAM" --port "$APP" --id "$1" --bind "$2" --body-bytes 16 >"$TMP/upstream-$1.out" 2>"$TMP/upstream-$1.err" &
    PIDS+=($!)
    wait_for "upstream $1 on $2:$APP" 10 addr_open "$2" "$APP"
done

{
    cat <<Y
node:
  id: sidecar~$PP~productpage-1.default~default.svc.cluster.local
  cluster: productpage.default
Y
    yaml_ads_bootstrap "$ADMIN" "$CP_PORT" GRPC
    # loadgen always sends `host: <its target address>`, which no mesh virtual host matches: a
    # static entry listener rewrites it to reviews:9080 and hands the request to the sidecar's
    # own outbound listener, where the mesh's routes apply
    yaml_static_cluster self_9080 9080 | sed "s/address: 127.0.0.1/address: $PP/"
    echo "  listeners:"
    yaml_hcm entry "$ENTRY" entry | sed "s/address: 127.0.0.1/address: $PP/"
    cat <<Y
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: self_9080, host_rewrite_literal: "reviews:9080" }
Y
    yaml_router
} >"$TMP/boot.yaml"
start_ringside "$TMP/boot.yaml"

URL=http://$PP:9080/echo
H_HOST='Host: reviews:9080'
# ids N [curl args]: the x-upstream-id of N requests through the sidecar, one per line.
ids() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do header x-upstream-id "$URL" -H "$H_HOST" "$@"; done
}
count() { grep -cx "$1" || true; }

# ---- routing from the mesh file --------------------------------------------------------------

out=$(ids 40)
assert_between "$(count v1 <<<"$out")" 8 32 "50/50 split: v1 share of 40"
assert_between "$(count v2 <<<"$out")" 8 32 "50/50 split: v2 share of 40"
assert_eq "$(ids 10 -H 'end-user: jason' | sort -u)" v1 "header route end-user: jason -> v1 only"
assert_eq "$(header x-upstream-id "$URL" -H 'Host: reviews.default.svc.cluster.local:9080' -H 'end-user: jason')" v1 \
    "the FQDN host routes too"
assert_eq "$(status "$URL" -H 'Host: nosuch:9080')" 503 "an unknown host goes to PassthroughCluster (no original destination on loopback: 503)"
assert_eq "$(header x-upstream-id "http://$PP:9300/" -H 'Host: anything')" ratings "tcp service 9300 -> ratings"

# ---- 200 edits under load --------------------------------------------------------------------

# ringside mirrors its xDS counters into /stats on its next 1 s tick (update_success lags the
# ACK), so the per-edit wait reads ringside-cp's log, where each ACK is a line the moment it
# arrives; ringside's own counters are checked once at the end.
acks() { grep -c "ACK $1 from sidecar~$PP~" "$TMP/cp.err"; }
acks_at_least() { [ "$(acks "$1")" -ge "$2" ]; }
base_acks=$(acks RDS)

# load in 5 s runs back to back until the edits are done (loadgen has no early stop)
(
    for ((n = 1; n <= 40; n++)); do
        [ -e "$TMP/edits.done" ] && break
        "$LOADGEN" --url "http://$PP:$ENTRY/echo" -c 8 --rate 300 --duration 5 --json \
            >"$TMP/load-$n.json" 2>"$TMP/load-$n.err" || echo "$n" >>"$TMP/load.failed"
    done
) &
LOAD_PID=$!
PIDS+=($LOAD_PID)
wait_stat "http.entry.downstream_rq_2xx" 100

last=""
now_us() { local t=${EPOCHREALTIME/./}; echo $((10#$t)); }
t0=$(now_us)
for ((i = 1; i <= N_EDITS; i++)); do
    slot=$(now_us)
    w1=$((i % 99 + 1))
    v2b=$((i / 10 % 2))
    hdr=jason
    ((i % 3 == 0)) && hdr=user-$i
    last="$w1 $((100 - w1)) $hdr $((i % 4 + 1))s $v2b"
    if [ "$i" -eq "$N_EDITS" ]; then last="0 1 final 3s 1"; fi # last: the split all to v2 (2 endpoints)
    write_mesh $last
    # every edit changes the route configuration, pushed last (CDS, EDS, LDS, RDS order): once
    # RDS counts this edit, all it brought has been applied and ACKed
    wait_for "edit $i ACKed (RDS ACKs >= $((base_acks + i)))" 10 acks_at_least RDS $((base_acks + i))
    if [ "$i" -eq $((N_EDITS / 2)) ]; then
        # an invalid file: rejected by ringside-cp, nothing pushed, the previous mesh kept
        all_acks=$(grep -c ' ACK ' "$TMP/cp.err")
        printf 'services:\n  - name: reviews\n    ports: [{port: 9080, protocol: udp}]\n' >"$MESH.tmp"
        mv "$MESH.tmp" "$MESH"
        wait_for "ringside-cp to reject the invalid mesh" 10 grep -q 'mesh file rejected, previous mesh kept' "$TMP/cp.err"
        assert_contains "$(grep 'mesh file rejected' "$TMP/cp.err")" 'protocol: must be http, tcp or grpc' \
            "the rejection names the field"
        assert_eq "$(status "$URL" -H "$H_HOST")" 200 "ringside still serves after the rejected mesh"
        # a push would have been sent with the reload and ACKed within milliseconds
        assert_eq "$(grep -c ' ACK ' "$TMP/cp.err")" "$all_acks" "nothing was pushed from the invalid mesh"
    fi
    # edits at least 100 ms apart (pacing, not synchronisation: the wait above is on the ACK)
    left_us=$((100000 - ($(now_us) - slot)))
    if ((left_us > 0)); then sleep "0.$(printf '%06d' "$left_us")"; fi
done
log "$N_EDITS edits applied in $((($(now_us) - t0) / 1000)) ms"
touch "$TMP/edits.done"
wait "$LOAD_PID" # at most the current 5 s run (loadgen has its own watchdog)
[ ! -e "$TMP/load.failed" ] || fail "loadgen exited non-zero in run(s) $(cat "$TMP/load.failed")"
runs=("$TMP"/load-*.json)
assert_ge "${#runs[@]}" 1 "load ran during the edits (5 s runs)"
for f in "${runs[@]}"; do loadgen_ok "$f"; done

# ---- every edit ACKed, nothing rejected ------------------------------------------------------

assert_eq "$(acks RDS)" $((base_acks + N_EDITS)) "ringside-cp got one RDS ACK per edit"
wait_stat rds.update_success "$(acks RDS)"
assert_eq "$(stat_value rds.update_success)" "$(acks RDS)" "ringside counts as many route updates as it ACKed"
for t in cluster_manager.cds cluster_manager.eds listener_manager.lds rds; do
    assert_eq "$(stat_value $t.update_rejected)" 0 "$t.update_rejected"
done
assert_eq "$(stat_value control_plane.rq_nack)" 0 "no NACK sent"
assert_eq "$(grep -c 'mesh reloaded' "$TMP/cp.err")" "$N_EDITS" "ringside-cp reloaded the mesh once per valid edit"
assert_eq "$(grep -c ' NACK ' "$TMP/cp.err")" 0 "ringside-cp saw no NACK"
eds_ok=$(stat_value cluster_manager.eds.update_success)
assert_ge "$eds_ok" $((N_EDITS / 10)) "endpoint additions and removals were pushed (EDS updates)"

# ---- the final routing is the last mesh's ----------------------------------------------------

log "last mesh: $last"
assert_eq "$(ids 20 | sort -u | tr '\n' ' ')" "v2 v2b " "weights 0/1: all to v2, on both its endpoints"
assert_eq "$(ids 5 -H 'end-user: final' | sort -u)" v1 "the header route has the last value"
assert_contains "$(curl -s --max-time 5 "$URL" -H "$H_HOST")" '"x-envoy-expected-rq-timeout-ms": "3000"' \
    "the route timeout is the last mesh's (3s, as the upstream sees it)"
