#!/usr/bin/env bash
# The benchmark harness (bench/run.sh) end to end, in seconds: every system comes up (direct,
# ringside / haproxy / nginx at 1 and 2 hops), every scenario runs once for 0.15 s, the results
# JSON is well-formed and has every system and scenario, and the Markdown report and both plots
# exist. Then the same for the mTLS set (bench/run.sh BUILD mtls: the mesh hop pairs with mutual
# TLS, full handshakes per second, BoringSSL's limit). No figure is asserted: this machine's
# numbers are not a test's business.
. "$(dirname "$0")/lib.sh"

need haproxy nginx gnuplot ss openssl
[ -r /usr/lib/nginx/modules/ngx_stream_module.so ] || skip "needs nginx's stream module (Debian: libnginx-mod-stream) for the L4 scenario"
LOADGEN=$RS_BUILD/bench/loadgen
[ -x "$LOADGEN" ] || skip "no loadgen binary at $LOADGEN (build first)"
[ -x "$RS_BUILD/bench/tls_speed" ] || skip "no tls_speed binary at $RS_BUILD/bench/tls_speed (build first)"
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

# The mTLS set (make bench-mtls): direct and the mesh hop pairs, scenarios 1-3 and full
# handshakes per second, with BoringSSL's limit measured in the same run.
RS_BENCH_SMOKE=1 RS_BENCH_RESULTS=$out "$RS_SRC/bench/run.sh" "$RS_BUILD" mtls >"$TMP/mtls.out" 2>"$TMP/mtls.err" ||
    fail "bench/run.sh BUILD mtls failed: $(tail -5 "$TMP/mtls.err")"
log "ok: bench/run.sh (smoke) mtls exited 0"
mbase=$out/$(date -u +%F)-mtls-smoke
for f in "$mbase.json" "$mbase.md" "$mbase-latency.png" "$mbase-overhead.png"; do
    [ -s "$f" ] || fail "missing or empty: $f"
done
python3 - "$mbase.json" "$RS_SRC" <<'PY' || fail "mTLS results JSON incomplete (see above)"
import json, re, sys
doc = json.load(open(sys.argv[1]))
src = open(sys.argv[2] + "/bench/systems.sh").read() + open(sys.argv[2] + "/bench/scenarios.sh").read()
systems = ["direct"] + re.search(r"^MTLS_SYSTEMS=\((.*)\)", src, re.M).group(1).split()
scenarios = re.search(r"^MTLS_SCENARIOS=\((.*)\)", src, re.M).group(1).split()
bad = []
if set(doc["systems"]) != set(systems):
    bad.append(f"systems {sorted(doc['systems'])} != {sorted(systems)}")
for scen in scenarios:
    rows = doc["results"].get(scen) or {}
    for s in systems:
        if s == "direct" and scen == "tlsconn":
            continue  # no TLS port
        m = rows.get(s)
        if m is None:
            bad.append(f"{scen}/{s}: no result")
            continue
        if m["errors"]:
            bad.append(f"{scen}/{s}: {m['errors']} errors")
        if s != "direct" and scen != "tlsconn" and "overhead_per_hop_us" not in m:
            bad.append(f"{scen}/{s}: no per-hop overhead")
        if scen == "tlsconn" and not (m.get("hs_per_cpu_s") is None or m["hs_per_cpu_s"] > 0):
            bad.append(f"tlsconn/{s}: no handshakes per CPU-second")
        if scen == "tlsconn" and m.get("tls_resumed"):
            bad.append(f"tlsconn/{s}: {m['tls_resumed']} resumed handshakes (must all be full)")
lim = doc.get("tls_limit") or {}
b = lim.get("boringssl") or {}
if not (b.get("handshakes", 0) > 0 and b.get("in_memory", 0) > 0):
    bad.append(f"no BoringSSL limit: {lim}")
for k in ("ringside-mtls/haproxy-mtls", "ringside-mtls/nginx-mtls"):
    if k not in doc["ratios"].get("rate1k", {}):
        bad.append(f"ratio {k} missing")
for b_ in bad:
    print(b_)
sys.exit(1 if bad else 0)
PY
log "ok: mTLS results JSON has every system, scenario, the library limit and the ratios"
assert_contains "$(cat "$mbase.md")" "## TLS library limit" "the mTLS report sets handshakes against the library's limit"
