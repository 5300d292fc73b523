#!/usr/bin/env bash
# The benchmark harness (bench/run.sh) end to end, in seconds: every system comes up (direct,
# ringside / haproxy / nginx at 1 and 2 hops), every scenario runs once for 0.15 s, the results
# JSON is well-formed and has every system and scenario, and the Markdown report and both plots
# exist. No figure is asserted: this machine's numbers are not a test's business.
. "$(dirname "$0")/lib.sh"

need haproxy nginx gnuplot ss
[ -r /usr/lib/nginx/modules/ngx_stream_module.so ] || skip "needs nginx's stream module (Debian: libnginx-mod-stream) for the L4 scenario"
LOADGEN=$RS_BUILD/bench/loadgen
[ -x "$LOADGEN" ] || skip "no loadgen binary at $LOADGEN (build first)"
[ "$RS_SANITIZED" = 1 ] && skip "timing harness; the sanitized build proves nothing here"

out=$TMP/results
RS_BENCH_SMOKE=1 RS_BENCH_RESULTS=$out "$RS_SRC/bench/run.sh" "$RS_BUILD" >"$TMP/bench.out" 2>"$TMP/bench.err" ||
    fail "bench/run.sh failed: $(tail -5 "$TMP/bench.err")"
log "ok: bench/run.sh (smoke) exited 0"

base=$out/$(date -u +%F)-smoke
for f in "$base.json" "$base.md" "$base-latency.png" "$base-overhead.png"; do
    [ -s "$f" ] || fail "missing or empty: $f"
done
log "ok: JSON, Markdown report and both plots written"

python3 - "$base.json" "$RS_SRC" <<'PY' || fail "results JSON incomplete (see above)"
import json, re, sys
doc = json.load(open(sys.argv[1]))
src = open(sys.argv[2] + "/bench/systems.sh").read() + open(sys.argv[2] + "/bench/scenarios.sh").read()
systems = re.search(r"^SYSTEMS=\((.*)\)", src, re.M).group(1).split()
scenarios = re.search(r"^SCENARIOS=\((.*)\)", src, re.M).group(1).split()
bad = []
if set(doc["systems"]) != set(systems):
    bad.append(f"systems {sorted(doc['systems'])} != {sorted(systems)}")
for scen in scenarios:
    rows = doc["results"].get(scen)
    if rows is None:
        bad.append(f"scenario {scen} missing")
        continue
    for s in systems:
        m = rows.get(s)
        if m is None:
            bad.append(f"{scen}/{s}: no result")
            continue
        for k in ("p50", "p90", "p99", "p999", "rate", "errors", "rounds"):
            if k not in m:
                bad.append(f"{scen}/{s}: no {k}")
        if doc["systems"][s]["hops"] and "overhead_per_hop_us" not in m:
            bad.append(f"{scen}/{s}: no per-hop overhead")
for s in systems:
    if doc["systems"][s]["hops"]:
        for phase in ("idle", "idle_conns"):
            if phase not in doc["memory_kb"].get(s, {}):
                bad.append(f"memory/{s}: no {phase}")
        if not doc["systems"][s]["configs"]:
            bad.append(f"{s}: no saved config")
for k in ("ringside-1hop/haproxy-1hop", "ringside-1hop/nginx-1hop", "ringside-2hop/haproxy-2hop", "ringside-2hop/nginx-2hop"):
    if k not in doc["ratios"].get("rate1k", {}):
        bad.append(f"ratio {k} missing")
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
log "ok: results JSON has every system, scenario, memory phase and ratio"

md=$(cat "$base.md")
assert_contains "$md" "## Stated plainly" "report states the ratios"
assert_contains "$md" "ringside 1hop/haproxy 1hop" "report has the Ringside/HAProxy ratios"
