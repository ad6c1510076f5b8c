#!/usr/bin/env python3
"""Prints BENCHMARKS.md's results table from the last criterion run.

Reads target/criterion (the benches of the package hotmod-benches, benches/Cargo.toml) and
target/hotmod-static/criterion (the static-build bench), so run it right after their run:

    cargo bench -p hotmod-benches && python3 benches/report.py

or from a saved copy of those directories:

    python3 benches/report.py SAVED/criterion SAVED/static-criterion

Each figure is the median of that benchmark's per-iteration sample times in its last run
(criterion's `median` estimate): on a two-core machine shared with other work, a few samples
disturbed by another process move the slope and the mean, much less the median.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIRS = sys.argv[1:] or [
    os.path.join(ROOT, "target", "criterion"),
    os.path.join(ROOT, "target", "hotmod-static", "criterion"),
]


def estimate(bench):
    """Nanoseconds per iteration of `bench` ("group/function[/param]")."""
    for base in DIRS:
        path = os.path.join(base, *bench.split("/"), "new", "estimates.json")
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            return data["median"]["point_estimate"]
    sys.exit(f"no criterion result for {bench}: run `cargo bench -p hotmod-benches` first")


def fmt(ns):
    if ns >= 1_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1_000:.1f} µs"
    if ns >= 100:
        return f"{ns:.0f} ns"
    return f"{ns:.2f} ns"


ROWS = []


def row(figure, result, comparator, ratio, target, met, command):
    ratio = "—" if ratio is None else f"{ratio:.2f}×"
    ROWS.append((figure, result, comparator, ratio, target, "met" if met else "**missed**", command))


e = estimate

# Single-thread call cost.
fp, h, p, hlr = e("add/fn_ptr"), e("add/handle"), e("add/plain"), e("add/hot_lib_reloader")
row("`Handle` method call, `add(u64,u64)`", fmt(h), f"`extern \"C\"` fn pointer {fmt(fp)}", h / fp,
    "≤ 1.2×", h / fp <= 1.2, "`cargo bench -p hotmod-benches --bench calls -- '^add/'`")
row("plain call, `add`", fmt(p), f"fn pointer {fmt(fp)}", p / fp, "≤ 2×", p / fp <= 2.0,
    "`cargo bench -p hotmod-benches --bench calls -- '^add/'`")
row("hot-lib-reloader 0.8 call, `add`, 1 thread", fmt(hlr), f"hotmod plain call {fmt(p)}", hlr / p, "≥ 20×",
    hlr / p >= 20, "`cargo bench -p hotmod-benches --bench calls -- '^add/'`")

gfp, gh, gp, ghlr = e("greet/fn_ptr"), e("greet/handle"), e("greet/plain"), e("greet/hot_lib_reloader")
row("`Handle` method call, `greet(&str) -> String`", fmt(gh), f"fn pointer {fmt(gfp)}", gh / gfp, "(≤ 1.2×)",
    gh / gfp <= 1.2, "`cargo bench -p hotmod-benches --bench calls -- '^greet/'`")
row("plain call, `greet`", fmt(gp), f"fn pointer {fmt(gfp)}", gp / gfp, "(≤ 2×)", gp / gfp <= 2.0,
    "`cargo bench -p hotmod-benches --bench calls -- '^greet/'`")
row("hot-lib-reloader call, `greet`, 1 thread", fmt(ghlr), f"hotmod plain call {fmt(gp)}", ghlr / gp,
    "(not a target: allocation dominates)", True, "`cargo bench -p hotmod-benches --bench calls -- '^greet/'`")

# Two threads: time per iteration = one call on each thread at once.
t = {k: (e(f"add_threads/{k}/1"), e(f"add_threads/{k}/2")) for k in ["fn_ptr", "handle", "plain", "hot_lib_reloader"]}
p2, hlr2 = t["plain"][1], t["hot_lib_reloader"][1]
row("hot-lib-reloader call, `add`, 2 threads (per call)", fmt(hlr2), f"hotmod plain call {fmt(p2)}", hlr2 / p2,
    "≥ 50×", hlr2 / p2 >= 50, "`cargo bench -p hotmod-benches --bench threads -- '^add_threads/'`")
for kind, target in [("plain", True), ("handle", True), ("fn_ptr", False), ("hot_lib_reloader", False)]:
    one, two = t[kind]
    scaling = 2 * one / two
    label = {"plain": "plain calls", "handle": "`Handle` calls", "fn_ptr": "fn-pointer calls (reference)",
             "hot_lib_reloader": "hot-lib-reloader calls (reference)"}[kind]
    row(f"2-thread ÷ 1-thread throughput, {label}", f"{2e3 / two:.0f} M calls/s",
        f"1 thread {1e3 / one:.0f} M calls/s", scaling, "≥ 1.8×" if target else "—",
        scaling >= 1.8 or not target, "`cargo bench -p hotmod-benches --bench threads -- '^add_threads/'`")
c1, c2 = e("handle_current_threads/current_and_drop/1"), e("handle_current_threads/current_and_drop/2")
row("2-thread ÷ 1-thread throughput, `Handle::current()`+drop (shared count, by design)",
    f"{2e3 / c2:.0f} M pins/s", f"1 thread {1e3 / c1:.0f} M pins/s", 2 * c1 / c2, "—", True,
    "`cargo bench -p hotmod-benches --bench threads -- '^handle_current_threads/'`")

cur, cur_drop = e("handle_current/current"), e("handle_current/current_and_drop")
row("`Handle::current()`", fmt(cur), "—", None, "≤ 25 ns", cur <= 25,
    "`cargo bench -p hotmod-benches --bench calls -- '^handle_current/'`")
row("`Handle::current()` + drop", fmt(cur_drop), "—", None, "(≤ 25 ns)", cur_drop <= 25,
    "`cargo bench -p hotmod-benches --bench calls -- '^handle_current/'`")

idle, during = e("plain_latency/p99_idle"), e("plain_latency/p99_during_reload")
row("plain-call p99 latency while reloading back to back", fmt(during), f"idle p99 {fmt(idle)}", during / idle,
    "≤ 2×", during / idle <= 2.0, "`cargo bench -p hotmod-benches --bench reload -- '^plain_latency/'`")

na, sp, sh = e("static_add/no_attribute"), e("static_add/plain"), e("static_add/handle")
row("static build (reload compiled out): plain call, `add`", fmt(sp), f"no attribute {fmt(na)}", sp / na, "≤ 1.05×",
    sp / na <= 1.05, "`cargo bench -p hotmod-benches --bench static_mode -- '^static_add/'`")
row("static build: `Handle` call, `add`", fmt(sh), f"no attribute {fmt(na)}", sh / na, "(≤ 1.05×)",
    sh / na <= 1.05, "`cargo bench -p hotmod-benches --bench static_mode -- '^static_add/'`")
gna, gsp = e("static_greet/no_attribute"), e("static_greet/plain")
row("static build: plain call, `greet`", fmt(gsp), f"no attribute {fmt(gna)}", gsp / gna, "(≤ 1.05×)",
    gsp / gna <= 1.05, "`cargo bench -p hotmod-benches --bench static_mode -- '^static_greet/'`")

r1, r10k = e("reload/live_handles/1"), e("reload/live_handles/10000")
row("reload with 10,000 live handles", fmt(r10k), f"with 1 handle {fmt(r1)}", r10k / r1, "≤ 1.2×", r10k / r1 <= 1.2,
    "`cargo bench -p hotmod-benches --bench reload -- '^reload/'`")

print("| figure | result | comparator | ratio | target | | command |")
print("|---|---|---|---|---|---|---|")
for r in ROWS:
    print("| " + " | ".join(r) + " |")
