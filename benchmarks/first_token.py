"""What cutting a cross-encoder's last layer to the first token (osrerank/first_token.py) buys, per engine.

The kit's scorer in each mode twice, on the same pairs tokenized once: on the folder's own graph and on the cut
graph (what the kit serves), slice by slice in a shuffled order (``_timing.interleaved``), so the ratio is
measured side by side. Also the largest logit difference between the two graphs in each mode, and against
PyTorch where the model has a PyTorch twin (``--exact-check``).

    python benchmarks/first_token.py [--model DIR] [--queries 40] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _timing import compared, interleaved, print_compared

from osrerank.config.environment import get
from osrerank.cpu import cpu_info
from osrerank.judged import judged_groups
from osrerank.precision import MODES, refusal
from osrerank.scorer import ModelOptions, PairScorer, _runner

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODES_TIMED = ("fp32", "fp32-openvino", "bf16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=Path(get("OSRERANK_TEST_MODEL") or SHARED / "models/minilm-l6-random-head")
    )
    parser.add_argument("--dataset", type=Path, default=SHARED / "data/beir/scifact")
    parser.add_argument("--queries", type=int, default=40, help="SciFact test queries x their BM25 top 25")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    cpu, threads = cpu_info(), os.cpu_count() or 1
    pairs = [(g.query, d) for g in judged_groups(args.dataset, queries=args.queries, k=25) for d in g.documents]
    options = ModelOptions(path=str(args.model), batch_size=args.batch_size)
    rows, skipped = {}, {}
    for mode in MODES_TIMED:
        why = refusal(mode, "kit", cpu, "this host") or MODES[mode].missing()
        if why:
            skipped[mode] = why
            continue
        cut = PairScorer(args.model, options, mode)
        original = cut.kind.own_graph()  # before the kind's rewrite
        if cut.onnx_file == original:
            print(f"{args.model}: the rewrite does not fit this graph; nothing to compare", file=sys.stderr)
            return 1
        whole = PairScorer(args.model, options, mode)
        whole.runner = _runner(MODES[mode], original, threads, calibrated=Path)  # no calibrated mode here
        items = dict(zip(pairs, cut.encode(pairs).items, strict=True))
        rows[f"{mode}, every token"] = lambda p, s=whole, t=items: s.run([t[x] for x in p])
        rows[f"{mode}, first token"] = lambda p, s=cut, t=items: s.run([t[x] for x in p])
    tokens = np.array([len(e.ids) for e in items.values()])
    order = sorted(range(len(pairs)), key=lambda i: int(tokens[i]))
    slices = [order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size)]
    print(
        f"{len(pairs)} SciFact pairs, mean {tokens.mean():.0f} tokens; {cpu.model}, {threads} threads", file=sys.stderr
    )
    rates, values = interleaved(rows, pairs, slices, args.rounds)

    result = {"cpu": cpu.shown(), "pairs": len(pairs), "mean_tokens": round(float(tokens.mean()), 1), "modes": []}
    keys = ("every_token", "first_token")
    for mode in [m for m in MODES_TIMED if m not in skipped]:
        ab = compared(rates, values, f"{mode}, every token", f"{mode}, first token", keys)
        result["modes"].append({"mode": mode, **ab})
    result["skipped"] = skipped
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_compared(cpu, threads, result, keys, ("every token", "first token"), "tokenized beforehand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
