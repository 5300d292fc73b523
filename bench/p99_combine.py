#!/usr/bin/env python3
"""Puts the paired p99 rounds of several bench/run.sh runs together (bench/README.md, "The mTLS
tail"): each round is a pair within itself, so the rounds of runs made the same way can be
pooled, and the medians and intervals recomputed over all of them.

    p99_combine.py OUT_BASE RUN.json...

RUN.json: a run's report (bench/report.py), with its paired_p99 section. Writes OUT_BASE.json
(per scenario and pair: the per-round ratios at p50, p99, p99.9 and the per-round per-hop p99
differences of every run, their medians, bootstrap 95% intervals, rounds Ringside was lower,
sign-test p) and prints the Markdown table.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import bootstrap_median_ci, median, sign_test_p  # noqa: E402


def combine(runs):
    out = {}
    for run in runs:
        for scen, sc in (run.get("paired_p99") or {}).items():
            for name, pr in sc["pairs"].items():
                c = out.setdefault(scen, {}).setdefault(name, {"rounds": 0, "p50": [], "p99": [], "p999": [],
                                                               "wins": {"p50": 0, "p99": 0, "p999": 0},
                                                               "ties": {"p50": 0, "p99": 0, "p999": 0},
                                                               "diff": []})
                c["rounds"] += pr["rounds"]
                for p in ("p50", "p99", "p999"):
                    c[p] += pr[p]["ratios"]
                    c["wins"][p] += pr[p]["wins"]
                    c["ties"][p] += pr[p]["ties"]
                c["diff"] += pr["p99_overhead_diff_us"]["per_round"]
    res = {}
    for scen, pairs in out.items():
        for name, c in pairs.items():
            r = {"rounds": c["rounds"]}
            for p in ("p50", "p99", "p999"):
                r[p] = {"median": median(c[p]), "ci95": list(bootstrap_median_ci(c[p])),
                        "wins": c["wins"][p],
                        "sign_p": sign_test_p(c["wins"][p], c["rounds"] - c["ties"][p]),
                        "ratios": c[p]}
            r["p99_overhead_diff_us"] = {"median": median(c["diff"]),
                                         "ci95": list(bootstrap_median_ci(c["diff"])),
                                         "per_round": c["diff"]}
            res.setdefault(scen, {})[name] = r
    return res


def main():
    base, paths = sys.argv[1], sys.argv[2:]
    runs = [json.load(open(p)) for p in paths]
    res = combine(runs)
    with open(base + ".json", "w") as f:
        json.dump({"runs": paths, "commands": [r["meta"].get("command") for r in runs],
                   "combined": res}, f, indent=1)
        f.write("\n")
    print("| scenario | pair | rounds | p50 ratio [95%] | p99 ratio [95%] | lower at p99 | sign p "
          "| p99.9 ratio [95%] | Δ hop p99 µs [95%] |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for scen, pairs in res.items():
        for name, r in pairs.items():
            def q(x, nd=2, sign=False):
                f = f"{{:{'+' if sign else ''}.{nd}f}}"
                lo, hi = x["ci95"]
                return f"{f.format(x['median'])} [{f.format(lo)}, {f.format(hi)}]"
            print(f"| {scen} | {name} | {r['rounds']} | {q(r['p50'])} | {q(r['p99'])} | "
                  f"{r['p99']['wins']}/{r['rounds']} | {r['p99']['sign_p']:.3f} | {q(r['p999'])} | "
                  f"{q(r['p99_overhead_diff_us'], 0, True)} |")


if __name__ == "__main__":
    main()
