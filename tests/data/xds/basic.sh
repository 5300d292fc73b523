# The state-of-the-world and delta end-to-end scenario, sourced by test_xds_sotw.sh and
# test_xds_delta.sh after lib.sh with API=GRPC or API=DELTA_GRPC: Ringside against
# tests/peers/ads_server.js (grpc-js on Envoy's own .proto files). Asserts routing, the node and
# metadata the server saw, Envoy's CDS → EDS → LDS → RDS order, ACKs echoing version and nonce,
# pushes of routes, weights and endpoints under load (at least 50, as many as fit in a 6 s load
# run) with no failed request, pushed weights taking effect, the removal of a cluster, and after a
# restart of the server the versions held (SotW version_info, delta initial_resource_versions)
# with the node again on the stream's first request, and connected_state back to 1.
need node
read -r ADMIN LP U1 U2 U3 <<<"$(free_ports 5)"
start_upstream u1 "$U1"
start_upstream u2 "$U2"
start_upstream u3 "$U3"

xds_gen --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" \
    --route "routes=/a>a" --route "routes=/b>b" --route "routes=/>a*1+b*1"
start_ads_server
yaml_ads_bootstrap "$ADMIN" "$ADS_PORT" "$API" >"$TMP/boot.yaml"
# Istio's identity from the environment, as pilot-agent passes it
export POD_NAME=web-1 POD_NAMESPACE=shop INSTANCE_IP=127.0.0.7 ISTIO_META_FOO=bar ISTIO_VERSION=1.22.0
NODE_ID='sidecar~127.0.0.7~web-1.shop~shop.svc.cluster.local'
start_ringside "$TMP/boot.yaml"

assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/a")" u1 "route /a to cluster a (EDS endpoint u1)"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/b")" u2 "route /b to cluster b (EDS endpoint u2)"
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "weighted route served"

# ---- the node, as the server decoded it ------------------------------------------------------
kind=$([ "$API" == GRPC ] && echo sotw || echo delta)
assert_eq "$(ads_q 'R[0]["kind"]')" "$kind" "the stream is $kind"
assert_eq "$(ads_q 'R[0].get("node", {}).get("id")')" "$NODE_ID" "first request: Istio's node id"
md='R[0]["node"]["metadata"]["fields"]'
assert_eq "$(ads_q "$md[\"FOO\"][\"stringValue\"]")" bar "node metadata FOO from ISTIO_META_FOO"
assert_eq "$(ads_q "$md[\"NAME\"][\"stringValue\"]")" web-1 "node metadata NAME from POD_NAME"
assert_eq "$(ads_q "$md[\"NAMESPACE\"][\"stringValue\"]")" shop "node metadata NAMESPACE"
assert_eq "$(ads_q "$md[\"ISTIO_VERSION\"][\"stringValue\"]")" 1.22.0 "node metadata ISTIO_VERSION"
assert_eq "$(ads_q "$md[\"INSTANCE_IPS\"][\"stringValue\"]")" 127.0.0.7 "node metadata INSTANCE_IPS"
assert_eq "$(ads_q 'sum(1 for r in R if r.get("node", {}).get("id") != "'"$NODE_ID"'")')" 0 \
    "the node on every request (Envoy's default without set_node_on_first_message_only)"

# ---- Envoy's startup order, each type asked for once the previous one was accepted ------------
order=$(ads_q '" ".join(dict.fromkeys(r["type_url"].rsplit(".", 1)[1] for r in R if r["stream"] == 1))')
assert_eq "$order" "Cluster ClusterLoadAssignment Listener RouteConfiguration" "CDS → EDS → LDS → RDS"
names() { ads_q "sorted(set(n for r in R if r['type_url'].endswith('$1') for n in r.get('resource_names') or r.get('resource_names_subscribe')))"; }
assert_eq "$(names ClusterLoadAssignment)" "['a', 'b']" "EDS subscribes to both EDS clusters"
assert_eq "$(names RouteConfiguration)" "['routes']" "RDS subscribes to the listener's route config"
# the first EDS request follows Ringside's CDS ACK, LDS follows the EDS ACK, RDS the LDS ACK
first() { ads_q "L.index(next(r for r in R if r['type_url'].endswith('$1')))"; }
acked() { ads_q "L.index(next(r for r in R if r['type_url'].endswith('$1') and r['response_nonce']))"; }
assert_ge "$(first ClusterLoadAssignment)" "$(acked .Cluster)" "EDS requested after the CDS ACK"
assert_ge "$(first Listener)" "$(acked ClusterLoadAssignment)" "LDS requested after the EDS ACK"
assert_ge "$(first RouteConfiguration)" "$(acked Listener)" "RDS requested after the LDS ACK"

# ---- ACKs: each response answered with its nonce (SotW: and its version), no error -------------
check_acks() {
    ads_q '[s["sent"]["nonce"] for s in S if not any(r["stream"] == s["stream"] and r["response_nonce"] == s["sent"]["nonce"] and "error_detail" not in r and ("'"$kind"'" == "delta" or r["version_info"] == s["sent"]["version_info"]) for r in R)]'
}
assert_eq "$(ads_q 'len(S) >= 4')" True "the server sent the four types"
assert_eq "$(check_acks)" "[]" "every response ACKed with its nonce and version"

# ---- 50 pushes of routes, weights and endpoints under load: no request fails -------------------
"$LOADGEN" --url "http://127.0.0.1:$LP/" -c 8 --rate 300 --duration 6 --json >"$TMP/lg.json" 2>"$TMP/lg.err" &
LG=$!
rds0=$(stat_value rds.update_success)
eds0=$(stat_value cluster_manager.eds.update_success)
# batches of 20 pushes until the load run ends (at least 50, at most 1000), so they spread over it
n=0
while { [ $n -lt 50 ] || kill -0 $LG 2>/dev/null; } && [ $n -lt 1000 ]; do
    for ((i = n + 1; i <= n + 20; i++)); do
        eps_a="$U1*$((i % 3 + 1))"
        [ $((i % 2)) -eq 0 ] && eps_a="$eps_a,$U3*2"
        echo "--cluster a=$eps_a --cluster b=$U2 --listener http=$LP:routes --route routes=/a>a" \
            "--route routes=/b>b --route routes=/v$i>b --route routes=/>a*$((i % 4 + 1))+b*$((5 - i % 4))"
    done | ads_push_many
    n=$((n + 20))
done
log "$n pushes"
wait $LG || fail "loadgen failed: $(cat "$TMP/lg.err")"
loadgen_ok "$TMP/lg.json"
assert_eq "$(header x-upstream-id "http://127.0.0.1:$LP/v$n")" u2 "the last pushed route (/v$n to b) serves"
wait_stat rds.update_success $((rds0 + n))
wait_stat cluster_manager.eds.update_success $((eds0 + n))
assert_eq "$(check_acks)" "[]" "every pushed response ACKed with its nonce and version"
assert_eq "$(ads_q 'sum(1 for r in R if "error_detail" in r)')" 0 "no NACK during the pushes"
ids=$(for _ in 1 2 3 4 5 6; do header x-upstream-id "http://127.0.0.1:$LP/a"; done | sort -u | tr '\n' ' ')
assert_eq "$ids" "u1 u3 " "cluster a serves from its last pushed endpoints (u1 and u3: n is even)"

# the weights pushed last take effect: 30 requests with a:b = 1:5, then 5:1 (weighted clusters
# pick at random: a bound, not an exact split)
upstream_ids() { # N: the x-upstream-id of N requests to /
    local urls=() k
    for ((k = 0; k < $1; k++)); do urls+=("http://127.0.0.1:$LP/"); done
    curl -s --max-time 10 -D - -o /dev/null "${urls[@]}" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-upstream-id" { print $2 }'
}
ab() { upstream_ids 30 | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }'; }
split=$(ab)
assert_match "$split" '(^| )u2=(1[5-9]|2[0-9]|30) ' "weights a*1 b*5: mostly b ($split)"
ads_push --cluster "a=$U1" --cluster "b=$U2" --listener "http=$LP:routes" --route "routes=/a>a" \
    --route "routes=/b>b" --route "routes=/>a*5+b*1"
split=$(ab)
assert_match "$split" '(^| )u1=(1[5-9]|2[0-9]|30) ' "weights a*5 b*1 pushed: mostly a ($split)"

# ---- a cluster removed: CDS without b (delta: removed_resources), routes to it answer 503 -------
assert_contains "$(admin /clusters)" "b::127.0.0.1:$U2::" "cluster b on /clusters before"
ads_push --cluster "a=$U1" --listener "http=$LP:routes" --route "routes=/a>a" --route "routes=/b>b" \
    --route "routes=/>a"
wait_for "/b to answer 503 once cluster b is gone" 10 eval '[ "$(status "http://127.0.0.1:$LP/b")" == 503 ]'
assert_eq "$(admin /clusters | grep -c '^b::')" 0 "cluster b gone from /clusters"
assert_eq "$(status "http://127.0.0.1:$LP/a")" 200 "cluster a still serves"
if [ "$kind" == delta ]; then
    assert_eq "$(ads_q '[s["sent"]["removed_resources"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')" \
        "['b']" "delta: cluster b sent in removed_resources"
fi
if [ "$kind" == delta ]; then
    assert_eq "$(ads_q '[r["resource_names_unsubscribe"] for r in R if r["resource_names_unsubscribe"]]')" \
        "[['b']]" "delta: EDS unsubscribes from b"
else
    assert_eq "$(ads_q '[r["resource_names"] for r in R if r["type_url"].endswith("Assignment")][-1]')" \
        "['a']" "SotW: EDS resource_names without b"
fi

# ---- the server killed and restarted on the same port: resume with the versions held -----------
kill_ads_server
wait_for "connected_state 0" 10 eval '[ "$(stat_value control_plane.connected_state)" == 0 ]'
assert_eq "$(status "http://127.0.0.1:$LP/a")" 200 "served while the control plane is down"
start_ads_server "$ADS_PORT"
wait_stat control_plane.stream_reconnects 1 15
wait_for "RDS requested on the new stream" 15 eval '[ "$(ads_q "sum(1 for r in N if r[\"type_url\"].endswith(\"RouteConfiguration\"))")" -ge 1 ]'
assert_eq "$(ads_q 'N[0].get("node", {}).get("id")')" "$NODE_ID" "node on the new stream's first request"
order=$(ads_q '" ".join(dict.fromkeys(r["type_url"].rsplit(".", 1)[1] for r in N))')
assert_eq "$order" "Cluster ClusterLoadAssignment Listener RouteConfiguration" "new stream: CDS → EDS → LDS → RDS"
if [ "$kind" == delta ]; then
    for t in .Cluster Assignment Listener RouteConfiguration; do
        iv=$(ads_q "sorted(next(r for r in N if r['type_url'].endswith('$t'))['initial_resource_versions'])")
        case $t in
        .Cluster | Assignment) want="['a']" ;; Listener) want="['http']" ;; *) want="['routes']" ;;
        esac
        assert_eq "$iv" "$want" "delta: initial_resource_versions for ${t#.} lists what is held"
    done
    # the versions matched the server's, so it had nothing to send
    assert_eq "$(ads_q 'sum(1 for s in S if s["stream"] == N[0]["stream"])')" 0 "delta: nothing resent after the resume"
else
    last_cds=$(ADS_LOG=$TMP/ads-1.log ads_q '[s["sent"]["version_info"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')
    assert_eq "$(ads_q 'next(r for r in N if r["type_url"].endswith(".Cluster"))["version_info"]')" "$last_cds" \
        "SotW: the first CDS request carries the version held"
    assert_eq "$(ads_q 'next(r for r in N if r["type_url"].endswith(".Cluster"))["response_nonce"]')" "" "SotW: no nonce on the new stream"
fi
wait_for "Ringside to answer the new server" 10 ads_settled
assert_eq "$(status "http://127.0.0.1:$LP/a")" 200 "still serving after the resume"
# Envoy sets connected_state to 1 as soon as the stream is established; a server with nothing to
# send (delta resume, versions unchanged) may send no response headers before its first message
# (grpc-js, grpc-go), so "answered" cannot be the only signal.
wait_for "connected_state 1 on the resumed stream" 10 eval '[ "$(stat_value control_plane.connected_state)" == 1 ]'
