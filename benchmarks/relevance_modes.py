"""Relevance of every precision mode: nDCG@10 of SciFact's judged test queries (all 300 by default), each query's
BM25 top 25 reranked by the mode's scores, against fp32's on the same candidates, and the relevance gate's verdict
(at most 0.005 below fp32). P1 reports the same column on its 40 timed queries; this is the whole split, without
timing anything. int8-static is calibrated on SciFact train queries (``--calibrate``), never on the test ones.

    python benchmarks/relevance_modes.py [--model DIR] [--queries 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from osrerank.cpu import cpu_info
from osrerank.gate import RELEVANCE_DROP
from osrerank.judged import judged_groups, mean_ndcg10
from osrerank.precision import MODES, refusal
from osrerank.scorer import ModelOptions, PairScorer

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHARED / "models/minilm-l6-random-head")
    parser.add_argument("--dataset", type=Path, default=SHARED / "data/beir/scifact")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--calibrate", type=Path, default=SHARED / "data/beir/scifact/qrels/train.tsv")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    cpu = cpu_info()
    groups = judged_groups(args.dataset, queries=args.queries, k=25)
    pairs = [(g.query, d) for g in groups for d in g.documents]
    options = ModelOptions(path=str(args.model), gate_qrels=str(args.calibrate))
    print(f"{len(groups)} judged test queries, {len(pairs)} pairs; {cpu.model}", file=sys.stderr)
    ndcg: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for mode in MODES:
        why = refusal(mode, "kit", cpu, "this host") or MODES[mode].missing()
        if why:
            skipped[mode] = why
            continue
        print(f"  scoring {mode}", file=sys.stderr)
        ndcg[mode] = mean_ndcg10(groups, PairScorer(args.model, options, mode).score(pairs).values)
    rows = [
        {
            "mode": m,
            "ndcg10": round(v, 4),
            "drop": round(ndcg["fp32"] - v, 4),
            "passes": ndcg["fp32"] - v <= RELEVANCE_DROP,
        }
        for m, v in ndcg.items()
    ]
    result = {"cpu": cpu.shown(), "model": str(args.model), "queries": len(groups), "rows": rows, "not_run": skipped}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model {args.model}; {len(groups)} SciFact test queries x BM25 top 25; {cpu.model}")
    print(f"{'mode':<15}{'nDCG@10':>9}{'below fp32':>12}{'relevance gate':>16}")
    for r in rows:
        print(f"{r['mode']:<15}{r['ndcg10']:>9.4f}{r['drop']:>12.4f}{'pass' if r['passes'] else 'FAIL':>16}")
    for mode, why in skipped.items():
        print(f"{mode:<15}not run: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
