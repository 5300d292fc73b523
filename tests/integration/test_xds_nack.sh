#!/usr/bin/env bash
# NACK and recovery against the grpc-js ADS server: a cluster with an lb_policy Ringside refuses
# and a listener with a refused field are NACKed (error_detail naming the resource and the field,
# the previous version echoed), counted, and change nothing that serves; fixed, they are ACKed
# with the new version and serve.
source "$(dirname "$0")/lib.sh"
need node
read -r ADMIN LP LP2 U1 <<<"$(free_ports 4)"
start_upstream u1 "$U1"
base=(--cluster "a=$U1" --listener "http=$LP:routes" --route "routes=/>a")
xds_gen "${base[@]}"
start_ads_server
xds_start_ringside GRPC
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "initial config serves"

last_req() { # TYPE_SUFFIX FIELD: FIELD of the last request for that type
    ads_q "[r for r in R if r['type_url'].endswith('$1')][-1].get('$2', '')"
}
cds_version=$(last_req .Cluster version_info)
rej0=$(stat_value cluster_manager.cds.update_rejected)
ok0=$(stat_value cluster_manager.cds.update_success)
nack0=$(stat_value control_plane.rq_nack)

# ---- a cluster with lb_policy RING_HASH (refused): NACK ----------------------------------------
ads_push "${base[@]}" --cluster "bad=$U1" --lb bad=RING_HASH --route "routes=/bad>bad"
msg=$(ads_q "[r for r in R if r['type_url'].endswith('.Cluster')][-1]['error_detail']['message']")
assert_contains "$msg" '"bad"' "NACK error_detail names the cluster"
assert_contains "$msg" 'lb_policy' "NACK error_detail names the field"
assert_eq "$(ads_q "[r for r in R if r['type_url'].endswith('.Cluster')][-1]['error_detail'].get('code')")" 3 \
    "NACK status INVALID_ARGUMENT"
assert_eq "$(last_req .Cluster version_info)" "$cds_version" "NACK echoes the previous accepted version"
assert_eq "$(last_req .Cluster response_nonce)" \
    "$(ads_q '[s["sent"]["nonce"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')" \
    "NACK echoes the rejected response's nonce"
wait_stat cluster_manager.cds.update_rejected $((rej0 + 1))
wait_stat control_plane.rq_nack $((nack0 + 1))
assert_eq "$(stat_value cluster_manager.cds.update_success)" "$ok0" "no CDS success counted for it"
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "the previous config keeps serving"
assert_eq "$(admin /clusters | grep -c '^bad::')" 0 "the rejected cluster is not there"

# ---- fixed: ACK with the new version, serves ---------------------------------------------------
ads_push "${base[@]}" --cluster "bad=$U1" --route "routes=/bad>bad"
wait_stat cluster_manager.cds.update_success $((ok0 + 1))
assert_eq "$(last_req .Cluster error_detail)" "" "the fixed cluster is ACKed"
assert_eq "$(last_req .Cluster version_info)" \
    "$(ads_q '[s["sent"]["version_info"] for s in S if s["sent"]["type_url"].endswith(".Cluster")][-1]')" \
    "the ACK carries the new version"
assert_ne "$(last_req .Cluster version_info)" "$cds_version" "a new CDS version"
wait_for "/bad to serve" 10 eval '[ "$(status "http://127.0.0.1:$LP/bad")" == 200 ]'

# ---- a listener with freebind (refused): NACK, its port stays closed ---------------------------
fixed=("${base[@]}" --cluster "bad=$U1" --route "routes=/bad>bad")
lrej0=$(stat_value listener_manager.lds.update_rejected)
lds_version=$(last_req Listener version_info)
ads_push "${fixed[@]}" --listener "http2=$LP2:routes" --freebind http2
msg=$(ads_q "[r for r in R if r['type_url'].endswith('Listener')][-1]['error_detail']['message']")
assert_contains "$msg" '"http2"' "listener NACK names the listener"
assert_contains "$msg" 'freebind' "listener NACK names the field"
assert_eq "$(last_req Listener version_info)" "$lds_version" "listener NACK echoes the previous version"
wait_stat listener_manager.lds.update_rejected $((lrej0 + 1))
port_closed "$LP2" || fail "the rejected listener's port accepts connections"
log "ok: the rejected listener's port is closed"
assert_eq "$(status "http://127.0.0.1:$LP/")" 200 "the other listener keeps serving"

ads_push "${fixed[@]}" --listener "http2=$LP2:routes"
wait_for_port "$LP2"
assert_eq "$(status "http://127.0.0.1:$LP2/bad")" 200 "the fixed listener serves"
assert_eq "$(last_req Listener error_detail)" "" "the fixed listener is ACKed"
assert_eq "$(stat_value control_plane.rx_malformed)" 0 "nothing malformed"
