#!/usr/bin/env bash
# --mode validate and the command line: good configs pass, broken ones fail non-zero naming the
# field, --config-yaml works alone and merged over -c, unknown flags fail, pilot-agent's flags pass.
. "$(dirname "$0")/lib.sh"

validate() { "$RINGSIDE" --mode validate "$@" >"$TMP/v.out" 2>"$TMP/v.txt"; echo $?; }

for f in "$RS_SRC/examples/bootstrap.yaml" "$RS_SRC"/tests/data/brief/*.yaml; do
    assert_eq "$(validate -c "$f")" 0 "validate $(basename "$f")"
    assert_contains "$(cat "$TMP/v.out")" "OK" "validate prints OK for $(basename "$f")"
done

# broken_config NAME SED-EXPR EXPECTED-MESSAGE-PART
broken_config() {
    sed "$2" "$RS_SRC/examples/bootstrap.yaml" >"$TMP/$1.yaml"
    cmp -s "$TMP/$1.yaml" "$RS_SRC/examples/bootstrap.yaml" && fail "$1: the edit did not apply"
    local rc
    rc=$(validate -c "$TMP/$1.yaml")
    assert_ne "$rc" 0 "$1 fails validation"
    assert_contains "$(cat "$TMP/v.txt")" "$3" "$1 error names the field"
}
broken_config bad_duration 's/connect_timeout: 1s/connect_timeout: 5 parsecs/' \
    'static_resources.clusters[0].connect_timeout'
broken_config unknown_cluster 's/cluster: app, timeout/cluster: nowhere, timeout/' \
    "routes[1].route.cluster: unknown cluster 'nowhere'"
broken_config unknown_field 's/^    lb_policy: ROUND_ROBIN/    lb_policy: ROUND_ROBIN\n    bogus_field: 1/' \
    'static_resources.clusters[0].bogus_field'
broken_config bad_enum 's/lb_policy: ROUND_ROBIN/lb_policy: SOMETIMES/' 'lb_policy'
broken_config bad_port 's/port_value: 8080/port_value: 99999/' 'port_value'

# unknown fields pass with --allow-unknown-static-fields, as in Envoy
sed 's/^    lb_policy: ROUND_ROBIN/    lb_policy: ROUND_ROBIN\n    bogus_field: 1/' \
    "$RS_SRC/examples/bootstrap.yaml" >"$TMP/unknown.yaml"
assert_eq "$(validate -c "$TMP/unknown.yaml" --allow-unknown-static-fields)" 0 \
    "--allow-unknown-static-fields accepts an unknown field"

# a file that is not YAML, and one that does not exist
printf 'static_resources: [\n' >"$TMP/garbage.yaml"
assert_ne "$(validate -c "$TMP/garbage.yaml")" 0 "unparsable YAML fails"
assert_ne "$(validate -c "$TMP/does-not-exist.yaml")" 0 "a missing file fails"

# --config-yaml alone, and merged over -c (Envoy: the YAML is merged into the file's config)
assert_eq "$(validate --config-yaml "$(cat "$RS_SRC/examples/bootstrap.yaml")")" 0 "--config-yaml alone"
assert_eq "$(validate -c "$RS_SRC/examples/bootstrap.yaml" \
    --config-yaml 'admin: {address: {socket_address: {address: 127.0.0.1, port_value: 15999}}}')" 0 \
    "--config-yaml merged over -c"
assert_ne "$(validate -c "$RS_SRC/examples/bootstrap.yaml" \
    --config-yaml 'static_resources: {clusters: [{name: x, connect_timeout: forever}]}')" 0 \
    "a bad --config-yaml fragment fails"

# the command line
assert_ne "$(validate -c "$RS_SRC/examples/bootstrap.yaml" --no-such-flag)" 0 "an unknown flag fails"
assert_contains "$(cat "$TMP/v.txt")" "usage" "an unknown flag prints the usage"
assert_ne "$(validate)" 0 "no configuration fails"
assert_ne "$("$RINGSIDE" --mode init_only -c "$RS_SRC/examples/bootstrap.yaml" >/dev/null 2>&1; echo $?)" 0 \
    "an unsupported --mode fails"
assert_ne "$("$RINGSIDE" --mode validate -c "$RS_SRC/examples/bootstrap.yaml" --concurrency 0 >/dev/null 2>&1; echo $?)" 0 \
    "--concurrency 0 fails"
# the flags Istio's pilot-agent passes to Envoy
assert_eq "$(validate -c "$RS_SRC/examples/bootstrap.yaml" --drain-time-s 45 --drain-strategy immediate \
    --local-address-ip-version v4 --file-flush-interval-msec 1000 --disable-hot-restart \
    --allow-unknown-static-fields --log-format '%Y-%m-%dT%T.%fZ	%l	envoy %n %g:%#	%v	thread=%t' \
    -l warning --component-log-level misc:error --parent-shutdown-time-s 60 --restart-epoch 0 \
    --service-node sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local --service-cluster pod.ns --concurrency 2)" 0 \
    "pilot-agent's flags are accepted"
assert_match "$("$RINGSIDE" --version)" "version" "--version prints a version"
