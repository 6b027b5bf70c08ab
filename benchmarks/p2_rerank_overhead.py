"""P2: what reranking adds to a search, and how much of that is the model itself.

For top-10/50/100 windows over SciFact test queries, per query: ``_search`` through the rerank pipeline,
BM25 alone (same request, no pipeline), and, for the stand-in, the direct model call for the same
pairs. Overhead = pipeline - BM25 - model: the cost of ml-commons, the connector and the processor.
With ``--targets standin,opensearch`` the in-cluster model (issue 9) runs in the same run for comparison:
there the model cannot be called apart from the node, so its line shows pipeline - BM25. With
``--max-batch N`` the pipeline calls the model once per hit (setup --max-batch), so overhead is what those
parallel one-document calls cost against the one direct call of the whole window.

``--split`` (stand-in) also times each query again through a second setup whose stand-in keeps scores
(``--cache-mb``), once the window is cached: the model then costs nothing, so that search is BM25 + the
pipeline's own cost, which splits into the stand-in's share (the direct call of the cached window: HTTP,
SigV4, JSON, the cache) and the node's (ml-commons' request building, the Painless pre/post-process, the
connector's HTTP client, the rerank processor). Those cached searches each come right after a model call that
kept both cores busy for seconds, as a search arriving after another's rerank would on a machine that also runs the
model; ``--split`` then times the cached path again in a row (three rounds of BM25, cached search, cached direct
call per query, no model call between), as on a node whose model runs elsewhere, and prints both.

Before timing, ``--warmup N`` searches (default 600: BM25, and with ``--split`` the cached pipeline too) bring
the node's JIT to what a node that has served for a while runs: on a freshly started node the cached path's
cost over BM25 fell from 33 ms p50 in the first 100 searches to 20 ms after 600, and BM25 from 21 to 12 ms.

``--against fp32`` sets up a third stand-in with that precision and times its reranked search right after each
query's, so ``--precision auto --against fp32`` compares the two in one run, query by query.

    python benchmarks/p2_rerank_overhead.py [--model DIR] [--queries 30] [--targets standin,opensearch]
        [--precision auto] [--max-batch 32] [--split] [--against fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import requests
from _common import DEFAULT_MODEL, RERANK_FIELD, direct_model_call, prepare, search

from osrerank.cpu import cpu_info

#: rounds of the cached path timed in a row with ``--split`` (each: every query's BM25, cached search, direct call)
STEADY_ROUNDS = 3


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t0) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--kind", default="cross-encoder")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--windows", default="10,50,100")
    parser.add_argument("--targets", default="standin", help="standin and/or opensearch, comma-separated")
    parser.add_argument("--precision", default="fp32", help="the model's --precision (auto: what setup picks)")
    parser.add_argument("--max-batch", type=int, help="the pipeline calls the model once per hit (setup --max-batch)")
    parser.add_argument("--split", action="store_true", help="split the overhead with a cached second setup")
    parser.add_argument(
        "--against", help="another --precision (fp32, say) timed in the same run, query by query: the p50 ratio"
    )
    parser.add_argument(
        "--warmup", type=int, default=600, help="untimed searches first (BM25, and the cached pipeline with --split)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(w) for w in args.windows.split(",")]
    cpu = cpu_info()
    print(f"CPU: {cpu.model}; AVX-512/VNNI/BF16/AMX flags: {cpu.flags_shown()}")

    session = requests.Session()
    figures: dict[str, dict[str, float]] = {}
    for target in args.targets.split(","):
        _, cluster, queries = prepare(args.model, args.kind, target, args.precision, args.max_batch)
        split = args.split and target == "standin"
        if split:
            prepare(args.model, args.kind, target, args.precision, args.max_batch, cache_mb=64, variant="cache")
        against = args.against and target == "standin"
        if against:
            prepare(args.model, args.kind, target, args.against, args.max_batch, variant="against")
        queries = queries[: args.queries]
        shape = f"one call per hit (--max-batch {args.max_batch})" if args.max_batch else "one call per search"
        warmed = "BM25 and the cached pipeline" if split else "BM25"
        print(f"P2 target {target}: {len(queries)} SciFact queries, model {args.model}, {shape}")
        print(f"{'':<10} the node warmed first with {args.warmup} untimed searches ({warmed})", flush=True)
        for i in range(args.warmup):
            search(cluster, queries[i % len(queries)], max(sizes), False, target)
            if split:
                search(cluster, queries[i % len(queries)], max(sizes), True, target, "cache")
        for k in sizes:
            search(cluster, queries[0], k, True, target)  # warm-up
            if against:
                search(cluster, queries[0], k, True, target, "against")
            rows: dict[str, list[float]] = {"pipeline": [], "bm25": [], "rerank": []}
            passages: dict[str, list[str]] = {}  # each query's BM25 hits, for the cached path timed in a row
            if target == "standin":
                rows.update(model=[], overhead=[])
            if split:
                rows.update(cached_pipeline=[], cached_standin=[], cached_node=[])
                rows.update(steady_bm25=[], steady_pipeline=[], steady_over=[], steady_standin=[], steady_node=[])
            if against:
                rows.update(against_pipeline=[])
            for query in queries:
                t_bm25, plain = timed(search, cluster, query, k, False, target)
                t_pipe, _ = timed(search, cluster, query, k, True, target)
                rows["pipeline"].append(t_pipe)
                rows["bm25"].append(t_bm25)
                rows["rerank"].append(t_pipe - t_bm25)
                if against:
                    rows["against_pipeline"].append(timed(search, cluster, query, k, True, target, "against")[0])
                if target == "standin":
                    docs = [h["_source"][RERANK_FIELD] for h in plain["hits"]["hits"]]
                    t_model, _ = timed(direct_model_call, query, docs, session)
                    rows["model"].append(t_model)
                    rows["overhead"].append(t_pipe - t_bm25 - t_model)
                if split:
                    search(cluster, query, k, True, target, "cache")  # the window's scores now cached
                    t_cached, _ = timed(search, cluster, query, k, True, target, "cache")
                    t_cdirect, _ = timed(direct_model_call, query, docs, session, "cache")
                    rows["cached_pipeline"].append(t_cached)
                    rows["cached_standin"].append(t_cdirect)
                    rows["cached_node"].append(t_cached - t_bm25 - t_cdirect)
                    passages[query] = docs
            for _ in range(STEADY_ROUNDS if split else 0):
                for query, docs in passages.items():
                    t_bm25, _ = timed(search, cluster, query, k, False, target)
                    t_cached, _ = timed(search, cluster, query, k, True, target, "cache")
                    t_cdirect, _ = timed(direct_model_call, query, docs, session, "cache")
                    rows["steady_bm25"].append(t_bm25)
                    rows["steady_pipeline"].append(t_cached)
                    rows["steady_over"].append(t_cached - t_bm25)
                    rows["steady_standin"].append(t_cdirect)
                    rows["steady_node"].append(t_cached - t_bm25 - t_cdirect)
            f = {
                f"{key}_{p}": float(np.percentile(v, q))
                for key, v in rows.items()
                for p, q in (("p50", 50), ("p95", 95))
            }
            figures[f"{target}_top{k}"] = f
            line = (
                f"{target:<10} top-{k:<3} pipeline p50 {f['pipeline_p50']:7.1f} ms p95 {f['pipeline_p95']:7.1f} | "
                f"bm25 p50 {f['bm25_p50']:5.1f} | rerank (pipeline-bm25) p50 {f['rerank_p50']:7.1f}"
            )
            if target == "standin":
                line += f" | model p50 {f['model_p50']:7.1f}"
                line += f" | overhead p50 {f['overhead_p50']:6.1f} p95 {f['overhead_p95']:6.1f}"
            print(line)
            if split:
                print(
                    f"{'':<10} top-{k:<3} cached: pipeline p50 {f['cached_pipeline_p50']:6.1f} ms "
                    f"({f['cached_pipeline_p50'] / f['bm25_p50']:.2f}x BM25) | stand-in (no model) p50 "
                    f"{f['cached_standin_p50']:5.1f} | node (pipeline - BM25 - stand-in) p50 "
                    f"{f['cached_node_p50']:5.1f} p95 {f['cached_node_p95']:5.1f}"
                )
                print(
                    f"{'':<10} top-{k:<3} cached, in a row: pipeline p50 {f['steady_pipeline_p50']:6.1f} ms "
                    f"({f['steady_pipeline_p50'] / f['steady_bm25_p50']:.2f}x BM25 {f['steady_bm25_p50']:.1f}) | "
                    f"over BM25 p50 {f['steady_over_p50']:5.1f} p95 {f['steady_over_p95']:5.1f} | "
                    f"stand-in p50 {f['steady_standin_p50']:5.1f} | node p50 {f['steady_node_p50']:5.1f} "
                    f"p95 {f['steady_node_p95']:5.1f}"
                )
            if against:
                print(
                    f"{'':<10} top-{k:<3} {args.against}: pipeline p50 {f['against_pipeline_p50']:7.1f} ms, so "
                    f"{args.precision} is {f['against_pipeline_p50'] / f['pipeline_p50']:.2f}x faster (same queries, "
                    "interleaved)"
                )
    if args.json:
        out = {"cpu": cpu.shown(), "precision": args.precision, "against": args.against, **figures}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
