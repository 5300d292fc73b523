#!/usr/bin/env python3
"""Turns one bench/run.sh run into its results: medians over rounds, per-hop overhead, CPU per
unit of work, memory, and Ringside's ratios to HAProxy and NGINX.

    report.py RUN_DIR BASE

RUN_DIR holds what run.sh wrote: meta.tsv (key<TAB>value), cells.tsv (scenario, system, round,
proxy CPU ticks, mid-run RSS KiB), memory.tsv (system, phase, RSS KiB[, connections held]) and
raw/<scenario>.<system>.<round>.json (bench/loadgen --json); with mTLS systems also
raw/tls_speed.<round>.json (bench/tls_speed --json) and raw/openssl_speed.txt (openssl speed -mr).
Writes BASE.json, BASE.md, and the gnuplot inputs RUN_DIR/latency.dat, RUN_DIR/overhead.dat and
RUN_DIR/plot-titles.gp.

Per-hop overhead = (proxied - direct) / hops, each a median over rounds, at each percentile.
CPU is utime + stime of every process of the system (both hops), over the whole loadgen run
(warm-up included), divided by the work done in that time (rate x (warm-up + duration)).
For tlsconn (full mTLS handshakes straight to hop 2) only hop 2's CPU counts, and handshakes per
CPU-second = connections / that CPU time, set against the limit bench/tls_speed derives:
1 / (1/sign + 2/verify + 1/x25519), BoringSSL's ECDSA P-256 and X25519 rates on one core.
"""
import glob
import json
import math
import os
import random
import statistics
import sys

PCTS = ("p50", "p90", "p99", "p999")
PCT_LABEL = {"p50": "p50", "p90": "p90", "p99": "p99", "p999": "p99.9"}
PEERS = ("haproxy", "nginx")
UNSTABLE_SPREAD = 5  # max/min of the rounds' p99 above which a row is flagged
TLS_TARGET = 0.8  # issue 5: handshakes per core within 80% of the library's limit
# What each scenario's throughput and CPU figures are counted in.
WORK = {
    "req": ("rps", "req/s", "CPU s / 1k req", 1e3),
    "gb": ("mb_per_s", "MB/s", "CPU s / GB", 1e3),  # MB/s x s / 1e3 = GB
    "conn": ("cps", "conn/s", "CPU s / 1k conn", 1e3),
}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load_meta(run):
    meta = {}
    with open(os.path.join(run, "meta.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    return meta


def load_cells(run, meta):
    """{(scenario, system): [round dicts]} from cells.tsv and the raw loadgen outputs."""
    tck = float(meta["clk_tck"])
    warm = float(meta["warmup_s"])
    cells = {}
    with open(os.path.join(run, "cells.tsv")) as f:
        for line in f:
            scen, sysname, rnd, ticks, rss = (line.rstrip("\n").split("\t") + [""])[:5]
            with open(os.path.join(run, "raw", f"{scen}.{sysname}.{rnd}.json")) as r:
                lg = json.load(r)
            dur = float(meta[f"scen.{scen}.duration_s"])
            key, _, _, per = WORK[meta[f"scen.{scen}.work"]]
            work = float(lg[key]) * (warm + dur) / per  # thousands of requests, GB, ...
            cpu_s = int(ticks) / tck
            d = {p: lg["latency_us"][p] for p in PCTS}
            if meta[f"scen.{scen}.port"] == "tls":
                d["hs_per_cpu_s"] = (work * per / cpu_s) if cpu_s > 0 else None
                d["tls_resumed"] = lg.get("tls_resumed", 0)
            d.update(
                round=int(rnd),
                rate=float(lg[key]),
                max_us=lg["latency_us"]["max"],
                count=lg["latency_us"]["count"],
                errors=lg["errors"]["total"],
                errors_by_kind={k: v for k, v in lg["errors"].items() if k != "total" and v},
                cpu_s=cpu_s,
                cpu_per_unit=(cpu_s / work) if work > 0 else None,
                rss_kb=int(rss) if rss else None,
            )
            cells.setdefault((scen, sysname), []).append(d)
    return cells


def load_hist(run, scen, sysname, rnd):
    """The run's latency histogram ({bucket low: (width, count)}) and its exact min and max, from
    loadgen's latency_hist_us; None from a loadgen without it."""
    with open(os.path.join(run, "raw", f"{scen}.{sysname}.{rnd}.json")) as r:
        lg = json.load(r)
    if "latency_hist_us" not in lg:
        return None
    return ({low: (width, n) for low, width, n in lg["latency_hist_us"]},
            lg["latency_us"]["min"], lg["latency_us"]["max"])


def pooled_percentile(hists, p):
    """Percentile p of every value of the histograms together, as loadgen computes one (nearest
    rank, the bucket's midpoint kept within the exact min and max)."""
    merged, lo, hi = {}, None, None
    for h, mn, mx in hists:
        for low, (width, n) in h.items():
            merged[low] = (width, merged.get(low, (width, 0))[1] + n)
        if sum(n for _, n in h.values()):
            lo = mn if lo is None else min(lo, mn)
            hi = mx if hi is None else max(hi, mx)
    count = sum(n for _, n in merged.values())
    if not count:
        return None, 0
    rank = max(1, math.ceil(p / 100 * count))
    if rank >= count:
        return hi, count
    seen = 0
    for low in sorted(merged):
        width, n = merged[low]
        seen += n
        if seen >= rank:
            return min(max(low + width // 2, lo), hi), count
    return hi, count


def bootstrap_median_ci(xs, reps=2000, seed=1):
    """95% interval of the median of xs by resampling xs with replacement (percentile method)."""
    if len(xs) < 3:
        return None, None
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(reps))
    return meds[int(0.025 * reps)], meds[int(0.975 * reps) - 1]


def sign_test_p(wins, n):
    """Two-sided sign test: the chance of a split at least this uneven if either system were as
    likely as the other to have the lower figure in a round (ties left out of n)."""
    if n == 0:
        return None
    k = min(wins, n - wins)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(run, meta, summary):
    """Per open-loop scenario: each system's p99 per round and pooled over every round's requests,
    and for Ringside against each peer of the same hop count (and rsbase, an A/A control when it
    runs the same binary) the per-round ratios at p50, p99, p99.9: median, bootstrap 95% interval,
    rounds Ringside had the lower figure, sign-test p; and the per-round difference of per-hop
    p99 overheads, (Ringside - peer) / hops, in which the direct row cancels."""
    systems = meta["systems"].split()
    hops = {s: int(meta[f"sys.{s}.hops"]) for s in systems}
    out = {}
    for scen in ("rate1k", "rate10k"):
        rows = summary.get(scen)
        if not rows:
            continue
        sc = {"systems": {}, "pairs": {}}
        for s, m in rows.items():
            if not m:
                continue
            hists = [load_hist(run, scen, s, r["round"]) for r in m["rounds"]]
            d = {"p99_rounds": [r["p99"] for r in m["rounds"]]}
            if all(hists):
                for p, v in (("p50", 50), ("p99", 99), ("p999", 99.9)):
                    d[f"pooled_{p}"], d["pooled_count"] = pooled_percentile(hists, v)
            sc["systems"][s] = d
        dr = sc["systems"].get("direct")
        for s, d in sc["systems"].items():
            if hops[s] and dr and "pooled_p99" in d and "pooled_p99" in dr:
                d["pooled_overhead_per_hop"] = {p: (d[f"pooled_{p}"] - dr[f"pooled_{p}"]) / hops[s]
                                                for p in ("p50", "p99", "p999")}
        for rs in (s for s in systems if s.startswith("ringside-") and rows.get(s)):
            suffix = rs.split("-", 1)[1]
            for peer in PEERS + ("rsbase",):
                ps = f"{peer}-{suffix}"
                if not rows.get(ps):
                    continue
                a = {r["round"]: r for r in rows[rs]["rounds"]}
                b = {r["round"]: r for r in rows[ps]["rounds"]}
                common = sorted(set(a) & set(b))
                pr = {"rounds": len(common)}
                for p in ("p50", "p99", "p999"):
                    rat = [a[k][p] / b[k][p] for k in common if a[k][p] > 0 and b[k][p] > 0]
                    wins = sum(1 for k in common if a[k][p] < b[k][p])
                    ties = sum(1 for k in common if a[k][p] == b[k][p])
                    lo, hi = bootstrap_median_ci(rat)
                    pr[p] = {"ratios": rat, "median": median(rat), "ci95": [lo, hi],
                             "quartiles": statistics.quantiles(rat, n=4) if len(rat) > 1 else None,
                             "wins": wins, "ties": ties,
                             "sign_p": sign_test_p(wins, len(common) - ties)}
                diff = [(a[k]["p99"] - b[k]["p99"]) / hops[rs] for k in common]
                lo, hi = bootstrap_median_ci(diff)
                pr["p99_overhead_diff_us"] = {"per_round": diff, "median": median(diff), "ci95": [lo, hi]}
                po_a = sc["systems"][rs].get("pooled_overhead_per_hop", {}).get("p99")
                po_b = sc["systems"][ps].get("pooled_overhead_per_hop", {}).get("p99")
                pr["pooled_p99_overhead_ratio"] = ratio(po_a, po_b)
                sc["pairs"][f"{rs}/{ps}"] = pr
        out[scen] = sc
    return out


def paired_markdown(meta, pair):
    """The paired p99 section of the report (bench/README.md, "The mTLS tail")."""
    L = ["", "## p99, paired by round", "",
         f"Every round ran each system once per scenario, one after the other"
         f"{' (in an order shuffled every round)' if meta.get('shuffle') == '1' else ''}, so the systems "
         "of one round saw nearly the same background load. For each round, Ringside's figure is "
         "divided by the peer's of the same round; the table gives the median of those "
         f"{meta['rounds']} ratios, its 95% interval (bootstrap over rounds), the rounds in which "
         "Ringside's figure was the lower, and the sign-test p (the chance of a split at least as "
         "uneven if neither were lower more often). **Δ hop p99** = median over rounds of "
         "(Ringside's p99 − the peer's) / hops: the difference of the per-hop p99 overheads, in "
         "which the direct row cancels. **Pooled** = percentiles of all the rounds' requests "
         "together (merged histograms). No round is left out."]
    def ci(x, nd=2):
        lo, hi = x["ci95"]
        return "–" if lo is None else f"{fmt(lo, nd)}–{fmt(hi, nd)}"
    for scen, sc in pair.items():
        L += ["", f"### {scen}", "",
              "| system | p99 of the rounds: median (min–max) | pooled p50 / p99 / p99.9 | requests "
              "pooled | pooled hop p50 / p99 / p99.9 |", "|---|--:|--:|--:|--:|"]
        for s, d in sc["systems"].items():
            r = d["p99_rounds"]
            oh = d.get("pooled_overhead_per_hop")
            L.append(f"| {s} | {fmt(median(r))} ({fmt(min(r))}–{fmt(max(r))}) | "
                     f"{fmt(d.get('pooled_p50'))} / {fmt(d.get('pooled_p99'))} / "
                     f"{fmt(d.get('pooled_p999'))} | {fmt(d.get('pooled_count'))} | " +
                     (" / ".join(fmt(oh[p], 0, True) for p in ("p50", "p99", "p999")) if oh else "") + " |")
        if not sc["pairs"]:
            continue
        L += ["", "| pair | p50 ratio [95%] | lower in | p99 ratio [95%] | lower in | sign p | "
              "p99.9 ratio [95%] | lower in | Δ hop p99 µs [95%] | pooled hop p99 ratio |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        same = meta.get("baseline", "").split("sha256 ")[-1] == meta.get("ringside_built", "").split("sha256 ")[-1]
        for name, pr in sc["pairs"].items():
            n = pr["rounds"]
            cells = [name.replace("-", " ") + (" (A/A: same binary)" if "rsbase" in name and same else "")]
            for p in ("p50", "p99", "p999"):
                x = pr[p]
                cells += [f"{fr(x['median'])} [{ci(x)}]", f"{x['wins']}/{n}"]
                if p == "p99":
                    cells.append("–" if x["sign_p"] is None else f"{x['sign_p']:.3f}")
            dd = pr["p99_overhead_diff_us"]
            cells += [f"{fmt(dd['median'], 0, True)} [{ci(dd, 0)}]", fr(pr["pooled_p99_overhead_ratio"])]
            L.append("| " + " | ".join(cells) + " |")
    return L


def load_memory(run):
    mem = {}
    path = os.path.join(run, "memory.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                mem.setdefault(parts[0], {})[parts[1]] = int(parts[2])
                if len(parts) > 3:
                    mem[parts[0]]["idle_conns_held"] = int(parts[3])
    return mem


def applies(meta, scen, sysname):
    """Whether the scenario runs on the system at all (scenarios.sh SCEN_ON)."""
    on = meta.get(f"scen.{scen}.on", "all")
    mtls = meta.get(f"sys.{sysname}.mtls", "0") == "1"
    return on == "all" or (on == "mtls") == mtls


def load_tls_limit(run):
    """BoringSSL's rates on the proxies' core (bench/tls_speed, per CPU-second, medians over the
    rounds) and the handshake limit derived from them; OpenSSL's from `openssl speed -mr` (per
    second), with the same limit estimated. None without mTLS systems."""
    rounds = []
    for path in sorted(glob.glob(os.path.join(run, "raw", "tls_speed.*.json"))):
        with open(path) as f:
            rounds.append(json.load(f))
    if not rounds:
        return None
    bssl = {k: median([r[k]["per_cpu_s"] for r in rounds]) for k in ("sign", "verify", "x25519")}
    bssl["handshakes"] = median([r["handshake_limit_per_cpu_s"] for r in rounds])
    bssl["handshakes_rounds"] = [r["handshake_limit_per_cpu_s"] for r in rounds]
    mem = [r["handshake_in_memory"]["server_per_cpu_s"] for r in rounds if "handshake_in_memory" in r]
    bssl["in_memory"] = median(mem)
    lim = {"formula": rounds[0]["formula"], "boringssl": bssl, "openssl": None}
    path = os.path.join(run, "raw", "openssl_speed.txt")
    o = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if parts[0] == "+F4" and len(parts) >= 5 and parts[2] == "256":
                    o["sign"], o["verify"] = float(parts[3]), float(parts[4])
                elif parts[0] == "+F5" and len(parts) >= 4 and parts[2] == "253":
                    o["x25519_derive"] = float(parts[3])
    if len(o) == 3:
        # openssl speed's X25519 op is the shared secret alone; a handshake also makes a key
        # pair, counted here as a second one (a fixed-base multiplication is somewhat cheaper).
        o["handshakes_est"] = 1 / (1 / o["sign"] + 2 / o["verify"] + 2 / o["x25519_derive"])
        lim["openssl"] = o
    return lim


def summarize(meta, cells, mem):
    systems = meta["systems"].split()
    scenarios = meta["scenarios"].split()
    hops = {s: int(meta[f"sys.{s}.hops"]) for s in systems}
    out = {}
    for scen in scenarios:
        rows = {}
        for s in systems:
            if not applies(meta, scen, s):
                continue
            rs = cells.get((scen, s))
            if not rs:
                rows[s] = None  # not run (e.g. no L4 listener)
                continue
            m = {p: median([r[p] for r in rs]) for p in PCTS}
            m.update(
                rate=median([r["rate"] for r in rs]),
                cpu_per_unit=median([r["cpu_per_unit"] for r in rs]) if hops[s] else None,
                rss_kb=median([r["rss_kb"] for r in rs]),
                errors=sum(r["errors"] for r in rs),
                rounds=rs,
            )
            if "hs_per_cpu_s" in rs[0]:
                m["hs_per_cpu_s"] = median([r["hs_per_cpu_s"] for r in rs])
                m["tls_resumed"] = sum(r["tls_resumed"] for r in rs)
            # Rounds that disagree wildly mean something else ran on the machine during one of
            # them (a stall of 100 ms in a 1 s run owns its p90): flag the row, keep the figure.
            p99s = [r["p99"] for r in rs if r["p99"]]
            m["p99_spread"] = (max(p99s) / min(p99s)) if len(p99s) > 1 else None
            m["unstable"] = bool(m["p99_spread"] and m["p99_spread"] > UNSTABLE_SPREAD)
            rows[s] = m
        d = rows.get("direct")
        for s, m in rows.items():
            if m is None or not hops[s] or d is None:
                continue
            m["overhead_per_hop_us"] = {p: (m[p] - d[p]) / hops[s] for p in PCTS}
        out[scen] = rows
    return out


def ratio(a, b):
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b


def figures(m, memrow):
    """The figures of one system in one scenario that get a Ringside/peer ratio."""
    f = {p: m[p] for p in PCTS}
    f.update({f"overhead_{p}": m.get("overhead_per_hop_us", {}).get(p) for p in PCTS})
    f["rate"] = m["rate"]
    f["cpu_per_unit"] = m["cpu_per_unit"]
    f["rss_kb"] = m["rss_kb"]
    if "hs_per_cpu_s" in m:
        f["hs_per_cpu_s"] = m["hs_per_cpu_s"]
    return f


def ratios(meta, summary):
    """{scenario: {"ringside-1hop/haproxy-1hop": {figure: ratio}}}, for every hop count present."""
    systems = meta["systems"].split()
    out = {}
    for scen, rows in summary.items():
        out[scen] = {}
        for rs in (s for s in systems if s.startswith("ringside-")):
            suffix = rs.split("-", 1)[1]
            for peer in PEERS:
                ps = f"{peer}-{suffix}"
                if rows.get(rs) is None or rows.get(ps) is None:
                    continue
                a, b = figures(rows[rs], None), figures(rows[ps], None)
                out[scen][f"{rs}/{ps}"] = {k: ratio(a[k], b[k]) for k in a}
    return out


def fmt(v, nd=0, sign=False):
    if v is None:
        return "–"
    s = f"{v:+,.{nd}f}" if sign else f"{v:,.{nd}f}"
    return s.replace("-", "−")


def fr(v):
    return "n/a" if v is None else f"{v:.2f}"


def pct(a, b):
    return "–" if a is None or not b else f"{100 * a / b:.0f}%"


def tls_table(meta, rows, lim):
    """The tlsconn figures set against the libraries' limits."""
    bl = lim["boringssl"]["handshakes"]
    bm = lim["boringssl"].get("in_memory")
    ol = (lim["openssl"] or {}).get("handshakes_est")
    L = ["", "Handshakes per CPU-second = connections / hop 2's CPU time (utime + stime, warm-up "
         "included): what one core of hop 2 would do if it had nothing else to run. Limits from "
         f"\"TLS library limit\" below: BoringSSL's public-key limit {fmt(bl)}/CPU-s and its whole "
         f"handshake in memory {fmt(bm)}/CPU-s (Ringside's library); OpenSSL's public-key limit "
         f"≈ {fmt(ol)}/s (HAProxy's and NGINX's). resumed: handshakes that resumed a session "
         "(must be 0).", "",
         "| system | conn/s | handshakes / CPU-s | of BoringSSL's limit | of BoringSSL in memory "
         "| of OpenSSL's limit (est.) | resumed |",
         "|---|--:|--:|--:|--:|--:|--:|"]
    for s, m in rows.items():
        if m is None or "hs_per_cpu_s" not in m:
            continue
        h = m["hs_per_cpu_s"]
        L.append(f"| {s} | {fmt(m['rate'])} | {fmt(h)} | {pct(h, bl)} | {pct(h, bm)} | {pct(h, ol)} "
                 f"| {m['tls_resumed']} |")
    return L


def limit_section(meta, summary, lim):
    b, o = lim["boringssl"], lim["openssl"]
    L = ["", "## TLS library limit (one core)", "",
         "The server side of a full mutual-TLS 1.3 handshake with ECDSA P-256 certificates and an "
         "X25519 key share does one ECDSA sign (its CertificateVerify), two ECDSA verifies (the "
         "client's CertificateVerify, and the client leaf's signature by the root) and one X25519 "
         f"key agreement (a key pair and the shared secret): limit = `{lim['formula']}`. Public-key "
         "work only: hashing, HKDF, record encryption, certificate parsing and the kernel's TCP "
         "work come on top.", "",
         "| library | ECDSA P-256 sign/s | verify/s | X25519 /s | handshake limit |",
         "|---|--:|--:|--:|--:|",
         f"| BoringSSL ({meta.get('boringssl', '?')}), `bench/tls_speed`, per CPU-second, median of "
         f"{len(b['handshakes_rounds'])} round(s) | {fmt(b['sign'])} | {fmt(b['verify'])} | "
         f"{fmt(b['x25519'])} (key pair + secret) | **{fmt(b['handshakes'])}** |"]
    if b.get("in_memory"):
        L.append("| BoringSSL, whole server-side handshake in memory (`bench/tls_speed --pki`: client "
                 "and server SSL over a BIO pair, the run's certificates, tickets issued, server calls "
                 f"timed), per CPU-second | | | | {fmt(b['in_memory'])} |")
    if o:
        L.append(f"| {meta.get('openssl', 'OpenSSL')}, `openssl speed`, per second | {fmt(o['sign'])} "
                 f"| {fmt(o['verify'])} | {fmt(o['x25519_derive'])} (secret only) | "
                 f"≈ {fmt(o['handshakes_est'])} (X25519 counted twice) |")
    rs = (summary.get("tlsconn") or {}).get("ringside-mtls")
    if rs and rs.get("hs_per_cpu_s"):
        r = rs["hs_per_cpu_s"] / b["handshakes"]
        L += ["", f"Target (issue 5): Ringside's handshakes per core ≥ {TLS_TARGET:.0%} of BoringSSL's "
              f"limit. Measured: {fmt(rs['hs_per_cpu_s'])} / {fmt(b['handshakes'])} = **{r:.0%}**, "
              f"{'met' if r >= TLS_TARGET else 'not met'}" +
              (f" (BoringSSL's own handshake in memory reaches {pct(b['in_memory'], b['handshakes'])} "
               f"of that limit; Ringside {pct(rs['hs_per_cpu_s'], b['in_memory'])} of it)."
               if b.get("in_memory") else ".")]
    return L


def markdown(meta, summary, rat, mem, lim=None, pair=None):
    systems = meta["systems"].split()
    hops = {s: int(meta[f"sys.{s}.hops"]) for s in systems}
    L = []
    w = L.append
    w(f"# Ringside benchmark, {meta['set']} set, {meta['date']}")
    w("")
    dirty = meta.get("dirty", "").strip()
    dirty = f" with uncommitted changes to {dirty}" if dirty else ""
    w(f"- Command: `{meta['command']}`, commit {meta['commit']}{dirty}; ringside binary built "
      f"{meta.get('ringside_built', '?')}; took {meta['elapsed_s']} s.")
    w(f"- Host: {meta['cpus']} x {meta['cpu']}, Linux {meta['kernel']}; load average before "
      f"{meta['loadavg_before']}, after {meta['loadavg_after']}.")
    w(f"- Upstream: `{meta['upstream']}` (1 KiB body; `/bytes/N` for the bulk scenario).")
    w(f"- Proxies: Ringside `--concurrency 1`, HAProxy {meta['haproxy']} `nbthread 1`, NGINX "
      f"{meta['nginx']} `worker_processes 1`; keep-alive upstream pools, no logging; configs in "
      f"`{meta['date']}-{meta['set']}/configs/`. *N*hop = N proxies in a chain (client-side "
      "sidecar → server-side sidecar).")
    w(f"- Placement: {meta['placement']}.")
    w(f"- {meta['rounds']} round(s); in each, every scenario runs on every system in turn; figures "
      f"are medians over rounds. Warm-up {meta['warmup_s']} s per run, excluded from latency. "
      "Latency in µs, from each request's scheduled send (open loop) or its send (closed loop).")
    w("- **hop** = per-hop overhead = (proxied − direct) / hops, at each percentile. CPU = utime + "
      "stime of all the system's proxy processes (both hops) from /proc, per unit of work; "
      f"resolution 1/{meta['clk_tck']} s, so short runs at low rates read coarsely.")
    if meta.get("mtls"):
        w(f"- mTLS systems (*-mtls): client → hop 1 (plaintext in, mutual TLS out over its keep-alive "
          f"pool) → hop 2 (mutual TLS in, plaintext out) → upstream; {meta['mtls']}. Per-hop "
          "overhead = (two-hop mTLS − direct) / 2. tlsconn connects straight to hop 2 (loadgen as "
          "the client-side sidecar: client certificate, the server's SAN checked, no session "
          "resumption) and counts hop 2's CPU alone.")
    for scen in meta["scenarios"].split():
        rows = summary[scen]
        key, unit, cpu_unit, _ = WORK[meta[f"scen.{scen}.work"]]
        w("")
        w(f"## {scen}: {meta[f'scen.{scen}.label']}")
        w("")
        where = {"tcp": "the system's L4 (TCP) listener", "http": "the system's HTTP listener",
                 "tls": "hop 2's mTLS listener"}[meta[f"scen.{scen}.port"]]
        w(f"`loadgen {meta[f'scen.{scen}.loadgen']}` on {where}.")
        w("")
        show_rss = any(m and m["rss_kb"] for m in rows.values())
        hdr = f"| system | {unit} | p50 | p90 | p99 | p99.9 | hop p50 | hop p90 | hop p99 | hop p99.9 | {cpu_unit} |"
        sep = "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        if show_rss:
            hdr += " RSS under load |"
            sep += "--:|"
        hdr += " errors |"
        sep += "--:|"
        w(hdr)
        w(sep)
        for s in systems:
            if s not in rows:
                continue  # the scenario is not for this system (scenarios.sh SCEN_ON)
            m = rows.get(s)
            if m is None:
                w(f"| {s} | not run (no L4 listener) |" + " |" * (11 if show_rss else 10))
                continue
            oh = m.get("overhead_per_hop_us")
            name = f"{s} ‡" if m["unstable"] else s
            cells = [name, fmt(m["rate"], 1 if key == "mb_per_s" else 0)]
            cells += [fmt(m[p]) for p in PCTS]
            cells += [fmt(oh[p], 0, True) if oh else "" for p in PCTS]
            cells.append(fmt(m["cpu_per_unit"], 3) if m["cpu_per_unit"] is not None else "")
            if show_rss:
                cells.append(f"{m['rss_kb'] / 1024:.1f} MiB" if m["rss_kb"] else "")
            cells.append(str(m["errors"]))
            w("| " + " | ".join(cells) + " |")
        if meta[f"scen.{scen}.port"] == "tls" and lim:
            L.extend(tls_table(meta, rows, lim))
        unstable = [f"{s} (p99 of the rounds {fmt(min(r['p99'] for r in rows[s]['rounds']))}–"
                    f"{fmt(max(r['p99'] for r in rows[s]['rounds']))} µs)"
                    for s in systems if rows.get(s) and rows[s]["unstable"]]
        if unstable:
            w("")
            w(f"‡ rounds disagree more than {UNSTABLE_SPREAD}x at p99, so something else was "
              "running on the machine during one of them: " + ", ".join(unstable) + ". Median "
              "kept; read these rows (and ratios using them) with care.")
        if rat.get(scen):
            w("")
            cols = list(rat[scen].keys())
            w("Ringside / peer (same number of hops). Latency, hop and CPU: below 1 is better for "
              f"Ringside; {unit}: above 1 is better. n/a where a figure is ≤ 0 (a hop within noise).")
            w("")
            w("| figure | " + " | ".join(c.replace("-", " ") for c in cols) + " |")
            w("|---|" + "--:|" * len(cols))
            names = [(p, PCT_LABEL[p]) for p in PCTS] + [(f"overhead_{p}", f"hop {PCT_LABEL[p]}") for p in PCTS]
            names += [("rate", unit), ("cpu_per_unit", cpu_unit)]
            if meta[f"scen.{scen}.port"] == "tls":
                names.append(("hs_per_cpu_s", "handshakes / CPU-s"))
            if show_rss:
                names.append(("rss_kb", "RSS under load"))
            for k, label in names:
                w(f"| {label} | " + " | ".join(fr(rat[scen][c][k]) for c in cols) + " |")
    # memory
    w("")
    w(f"## Memory: resident set of each system's proxy processes (both hops summed)")
    w("")
    w(f"Idle = started and answered one request on each listener. Under load = mid-run of rate10k "
      f"(median). Idle connections = {meta['idle_conns']} client connections opened to the entry "
      "hop and left silent, after all the load runs; KiB / idle conn = (holding − just before) / "
      "connections held.")
    w("")
    w("| system | idle | under 10,000 rps | after the load runs | holding idle conns | conns held | KiB / idle conn |")
    w("|---|--:|--:|--:|--:|--:|--:|")
    load_rss = {s: (summary.get("rate10k", {}).get(s) or {}).get("rss_kb") for s in systems}
    for s in systems:
        if not hops[s]:
            continue
        m = mem.get(s, {})
        idle, held, n = m.get("idle"), m.get("idle_conns"), m.get("idle_conns_held")
        before = m.get("before_idle_conns", idle)
        per = (held - before) / n if before and held and n else None
        w(f"| {s} | {mib(idle)} | {mib(load_rss.get(s))} | {mib(before)} | {mib(held)} | {fmt(n)} | {fmt(per, 2)} |")
    w("")
    w("Ringside / peer, memory:")
    w("")
    for rs in (s for s in systems if s.startswith("ringside-")):
        suffix = rs.split("-", 1)[1]
        for peer in PEERS:
            ps = f"{peer}-{suffix}"
            if ps not in systems:
                continue
            a, b = mem.get(rs, {}), mem.get(ps, {})
            w(f"- {rs} / {ps}: idle {fr(ratio(a.get('idle'), b.get('idle')))}, holding idle "
              f"connections {fr(ratio(a.get('idle_conns'), b.get('idle_conns')))}, under 10,000 rps "
              f"{fr(ratio(load_rss.get(rs), load_rss.get(ps)))}.")
    if lim:
        L.extend(limit_section(meta, summary, lim))
    if pair:
        L.extend(paired_markdown(meta, pair))
    w("")
    w("## Stated plainly")
    w("")
    L.extend(plainly(meta, summary, rat, mem, load_rss, lim))
    return "\n".join(L) + "\n"


def mib(kb):
    return "–" if not kb else f"{kb / 1024:.1f} MiB"


def plainly(meta, summary, rat, mem, load_rss, lim=None):
    """One sentence per headline figure: Ringside's value, the peers', and the ratios."""
    out = []
    systems = meta["systems"].split()

    def peers_of(rs):
        suffix = rs.split("-", 1)[1]
        return [(p, f"{p}-{suffix}") for p in PEERS if f"{p}-{suffix}" in systems]

    for scen in ("rate1k", "rate10k"):
        rows = summary.get(scen)
        if not rows:
            continue
        for rs in (s for s in systems if s.startswith("ringside-") and rows.get(s)):
            oh = rows[rs]["overhead_per_hop_us"]
            parts = []
            for p in ("p50", "p99", "p999"):
                peer_txt = ", ".join(
                    f"{peer} {fmt(rows[ps]['overhead_per_hop_us'][p], 0, True)} "
                    f"(ratio {fr(rat[scen][f'{rs}/{ps}'][f'overhead_{p}'])})"
                    for peer, ps in peers_of(rs) if rows.get(ps))
                parts.append(f"{PCT_LABEL[p]} {fmt(oh[p], 0, True)} µs vs {peer_txt}")
            out.append(f"- {scen}, {rs}: per-hop overhead " + "; ".join(parts) + ".")
    for scen in ("max", "bulk", "newconn", "tlsconn"):
        rows = summary.get(scen)
        if not rows:
            continue
        key, unit, cpu_unit, _ = WORK[meta[f"scen.{scen}.work"]]
        for rs in (s for s in systems if s.startswith("ringside-") and rows.get(s)):
            txt = ", ".join(
                f"{peer} {fmt(rows[ps]['rate'])} {unit} / {fmt(rows[ps]['cpu_per_unit'], 3)} "
                f"(ratios {fr(rat[scen][f'{rs}/{ps}']['rate'])} / {fr(rat[scen][f'{rs}/{ps}']['cpu_per_unit'])})"
                for peer, ps in peers_of(rs) if rows.get(ps))
            out.append(f"- {scen}, {rs}: {fmt(rows[rs]['rate'])} {unit}, "
                       f"{fmt(rows[rs]['cpu_per_unit'], 3)} {cpu_unit}; {txt}.")
            if scen == "tlsconn" and lim:
                bl = lim["boringssl"]["handshakes"]
                hs = rows[rs].get("hs_per_cpu_s")
                peers = ", ".join(f"{peer} {fmt(rows[ps].get('hs_per_cpu_s'))}"
                                  for peer, ps in peers_of(rs) if rows.get(ps))
                met = hs is not None and hs >= TLS_TARGET * bl
                bm = lim["boringssl"].get("in_memory")
                out.append(f"- tlsconn, {rs}: {fmt(hs)} full mTLS handshakes per CPU-second of hop 2 = "
                           f"{pct(hs, bl)} of BoringSSL's public-key limit on this core ({fmt(bl)}); "
                           f"target ≥ {TLS_TARGET:.0%}: {'met' if met else 'not met'}; "
                           f"{pct(hs, bm)} of BoringSSL's own handshake in memory ({fmt(bm)}). "
                           f"Peers: {peers} (OpenSSL).")
    for rs in (s for s in systems if s == "ringside-1hop"):
        txt = ", ".join(f"{peer} {mib(mem.get(ps, {}).get('idle'))} (ratio "
                        f"{fr(ratio(mem.get(rs, {}).get('idle'), mem.get(ps, {}).get('idle')))})"
                        for peer, ps in peers_of(rs))
        out.append(f"- Idle RSS, one process: Ringside {mib(mem.get(rs, {}).get('idle'))}; {txt}.")
    return out


def gnuplot_data(run, meta, summary):
    """latency.dat: one block per open-loop scenario, a row per percentile, a column per system;
    overhead.dat: the same for per-hop overhead, proxied systems only. Blocks are separated by two
    blank lines (gnuplot's index)."""
    systems = meta["systems"].split()
    proxied = [s for s in systems if int(meta[f"sys.{s}.hops"])]
    scens = [s for s in ("rate1k", "rate10k") if s in summary]
    with open(os.path.join(run, "latency.dat"), "w") as lf, open(os.path.join(run, "overhead.dat"), "w") as of:
        for scen in scens:
            rows = summary[scen]
            lf.write("pct " + " ".join(systems) + "\n")
            of.write("pct " + " ".join(proxied) + "\n")
            for p in PCTS:
                lf.write(PCT_LABEL[p] + " " + " ".join(
                    str(rows[s][p]) if rows.get(s) else "NaN" for s in systems) + "\n")
                of.write(PCT_LABEL[p] + " " + " ".join(
                    f"{rows[s]['overhead_per_hop_us'][p]:.1f}" if rows.get(s) else "NaN" for s in proxied) + "\n")
            lf.write("\n\n")
            of.write("\n\n")
    # One colour per proxy, one dash per hop count: direct black; solid 1 hop, dashed 2 hops,
    # dotted the mTLS hop pair.
    colour = {"direct": "#000000", "ringside": "#1f77b4", "rsbase": "#9467bd", "haproxy": "#d62728",
              "nginx": "#2ca02c"}
    def dash(sysname):
        return 3 if meta.get(f"sys.{sysname}.mtls") == "1" else min(int(meta[f"sys.{sysname}.hops"]) or 1, 2)
    with open(os.path.join(run, "plot-titles.gp"), "w") as f:
        for i, scen in enumerate(scens):
            f.write(f"title{i} = \"{meta[f'scen.{scen}.label']}\"\n")
            # the overhead panel's largest bar: plot.gp sets its y range from it, because gnuplot
            # refuses to autoscale a histogram in which one system has no bar at all (every hop
            # of it within noise, which happens with few systems)
            top = max([(m or {}).get("overhead_per_hop_us", {}).get(p, 0)
                       for s, m in summary[scen].items() if s in proxied for p in PCTS] + [0])
            f.write(f"ymax{i} = {top:.1f}\n")
        f.write(f"nblocks = {len(scens)}\n")
        for name, sel in (("C", systems), ("PC", proxied)):
            f.write(f"array {name}[{len(sel)}] = [" + ", ".join(
                f"\"{colour.get(meta[f'sys.{s}.kind'], '#7f7f7f')}\"" for s in sel) + "]\n")
        for name, sel in (("D", systems), ("PD", proxied)):
            f.write(f"array {name}[{len(sel)}] = [" + ", ".join(str(dash(s)) for s in sel) + "]\n")


def main():
    run, base = sys.argv[1], sys.argv[2]
    meta = load_meta(run)
    cells = load_cells(run, meta)
    mem = load_memory(run)
    summary = summarize(meta, cells, mem)
    rat = ratios(meta, summary)
    lim = load_tls_limit(run)
    gnuplot_data(run, meta, summary)
    pair = paired(run, meta, summary) if int(meta["rounds"]) >= 3 else None
    systems = meta["systems"].split()
    errors_total = sum(m["errors"] for rows in summary.values() for m in rows.values() if m)
    doc = {
        "meta": {k: v for k, v in meta.items() if not k.startswith(("sys.", "scen."))},
        "systems": {s: {"kind": meta[f"sys.{s}.kind"], "hops": int(meta[f"sys.{s}.hops"]),
                        "configs": meta[f"sys.{s}.configs"].split()} for s in systems},
        "scenarios": {c: {"label": meta[f"scen.{c}.label"], "loadgen": meta[f"scen.{c}.loadgen"],
                          "listener": meta[f"scen.{c}.port"],
                          "rate_unit": WORK[meta[f"scen.{c}.work"]][1],
                          "cpu_unit": WORK[meta[f"scen.{c}.work"]][2]}
                      for c in meta["scenarios"].split()},
        "results": {scen: {s: m for s, m in rows.items()} for scen, rows in summary.items()},
        "memory_kb": mem,
        "ratios": rat,
        "tls_limit": lim,
        "paired_p99": pair,
        "errors_total": errors_total,
    }
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(markdown(meta, summary, rat, mem, lim, pair))


if __name__ == "__main__":
    main()
