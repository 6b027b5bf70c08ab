"""Replay: SciFact test queries searched with Zipf-distributed repeats (as search traffic repeats its head
queries), through the rerank pipeline with the stand-in's score cache off and on, side by side.

One seeded sequence of ``--searches`` searches (default 1,000) over the 300 SciFact test queries, query rank r
drawn with probability proportional to 1 / r^s (``--zipf``, default 1.1), each a top-``--window`` (50)
reranked ``_search``. Two setups run it in one process, alternating search by search (a burst of load on the
machine falls on both): ``on`` (``--cache-mb``, default 64) runs every search; ``off`` (``--cache-mb 0``), which
pays the model on every search, runs every ``--off-every``-th one (default 5: 200 of 1,000, spread over the
sequence, so its latencies and the identical-results check cover first and repeated queries alike). Printed:

- p50/p95 of every search, of the first time a query is searched, and of a repeated one, for each;
- BM25 alone (the same request without the pipeline) p50 over the same sequence: the floor a cached repeat
  can approach; the ratio of the cached repeat's p50 to it;
- the stand-in's memory (RSS from /proc) before and after, its cache counters from /metrics;
- whether the two setups returned the same hits with the same scores for every search.

    python benchmarks/replay_zipf.py [--searches 1000] [--window 50] [--cache-mb 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import requests
from _common import DEFAULT_MODEL, prepare, search

from osrerank.cpu import cpu_info
from osrerank.targets.standin import StandInProcess


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cache_counters(base_url: str) -> dict[str, float]:
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return {
        line.split()[0].removeprefix("osrerank_score_cache_"): float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("osrerank_score_cache_")
    }


def ranked(reply: dict) -> list[tuple[str, float]]:
    return [(h["_id"], h["_score"]) for h in reply["hits"]["hits"]]


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--cache-mb", type=float, default=64)
    parser.add_argument("--off-every", type=int, default=5, help="run the cache-off setup on every N-th search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    _, cluster, queries = prepare(args.model, precision=args.precision, cache_mb=0)
    prepare(args.model, precision=args.precision, cache_mb=args.cache_mb, variant="cache")
    stand_ins = {"off": StandInProcess("bench").info(), "on": StandInProcess("bench-cache").info()}
    assert all(stand_ins.values()), "a bench stand-in is not running"
    rng = random.Random(args.seed)
    weights = [1 / (rank + 1) ** args.zipf for rank in range(len(queries))]
    order = list(range(len(queries)))
    rng.shuffle(order)  # which query is the head: not the qrels order
    sequence = rng.choices(order, weights=weights, k=args.searches)
    say(
        f"replay: {args.searches} searches over {len(set(sequence))} distinct SciFact test queries "
        f"(Zipf s={args.zipf}), top-{args.window} reranked; cache off vs {args.cache_mb:g} MB; {cpu_info().model}"
    )
    rss_before = {k: rss_mb(v.pid) for k, v in stand_ins.items()}
    for setup in ("off", "on"):  # warm-up on a query outside the sequence's head
        search(cluster, queries[order[-1]], args.window, True, variant="" if setup == "off" else "cache")
    times: dict[str, dict[str, list[float]]] = {s: {"all": [], "first": [], "repeat": []} for s in ("off", "on")}
    bm25: list[float] = []
    differ, seen = 0, set()
    for number, q in enumerate(sequence):
        kind = "repeat" if q in seen else "first"
        seen.add(q)
        replies = {}
        setups = ["off", "on"] if number % args.off_every == 0 else ["on"]
        for setup in rng.sample(setups, len(setups)):
            started = time.perf_counter()
            replies[setup] = search(cluster, queries[q], args.window, True, variant="" if setup == "off" else "cache")
            spent = (time.perf_counter() - started) * 1000
            times[setup]["all"].append(spent)
            times[setup][kind].append(spent)
        started = time.perf_counter()
        search(cluster, queries[q], args.window, False)
        bm25.append((time.perf_counter() - started) * 1000)
        differ += "off" in replies and ranked(replies["off"]) != ranked(replies["on"])
        if number % 100 == 99:
            say(f"  {number + 1}/{args.searches} searches")
    figures = {s: {k: percentiles(v) for k, v in t.items()} for s, t in times.items()}
    bm25_p50 = float(np.percentile(bm25, 50))
    result = {
        "cpu": cpu_info().shown(),
        "searches": args.searches,
        "distinct_queries": len(set(sequence)),
        "window": args.window,
        "zipf": args.zipf,
        "cache_mb": args.cache_mb,
        "latency_ms": figures,
        "bm25_p50_ms": bm25_p50,
        "cached_repeat_over_bm25": figures["on"]["repeat"]["p50"] / bm25_p50,
        "rss_mb": {k: {"before": rss_before[k], "after": rss_mb(v.pid)} for k, v in stand_ins.items()},
        "cache": cache_counters(stand_ins["on"].base_url),
        "compared_searches": len(times["off"]["all"]),
        "searches_that_differ": differ,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    cpu = cpu_info()
    print(f"CPU: {cpu.model}; AVX-512/VNNI/BF16/AMX flags: {cpu.flags_shown()}")
    print(f"{'cache':<6}{'all p50':>10}{'p95':>9}{'first p50':>12}{'repeat p50':>12}{'repeat p95':>12}")
    for setup in ("off", "on"):
        f = figures[setup]
        print(
            f"{setup:<6}{f['all']['p50']:>10.1f}{f['all']['p95']:>9.1f}{f['first']['p50']:>12.1f}"
            f"{f['repeat']['p50']:>12.1f}{f['repeat']['p95']:>12.1f}   (ms; {f['repeat']['n']} repeats)"
        )
    print(f"BM25 alone p50 {bm25_p50:.1f} ms; a cached repeat's p50 is {result['cached_repeat_over_bm25']:.2f}x it")
    c = result["cache"]
    print(
        f"cache: {c.get('hits_total', 0):.0f} hits, {c.get('misses_total', 0):.0f} misses, "
        f"{c.get('entries', 0):.0f} entries ({c.get('bytes', 0) / 2**20:.1f} MB counted); stand-in RSS "
        + ", ".join(f"{k} {v['before']:.0f} -> {v['after']:.0f} MB" for k, v in result["rss_mb"].items())
    )
    print(f"searches whose hits or scores differ between off and on: {differ} of {result['compared_searches']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
