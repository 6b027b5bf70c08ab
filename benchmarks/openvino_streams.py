"""What running a call's batches on two OpenVINO streams (osrerank/runtimes.py, OPENVINO_STREAMS) buys, per mode.

The kit's scorer in each OpenVINO mode twice, tokenization included (``score``, P1's kit rows): compiled for one
stream of every thread, and for two streams of half the threads each with every batch split across them;
slice by slice in a shuffled order (``_timing.interleaved``), so the ratio is measured side by side. Also the
largest difference between the two rows' logits (the split computes each row as the whole batch did).

    python benchmarks/openvino_streams.py [--model DIR] [--queries 40] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from _timing import compared, interleaved, print_compared

from osrerank import runtimes
from osrerank.config.environment import get
from osrerank.cpu import cpu_info
from osrerank.judged import judged_groups
from osrerank.precision import MODES, refusal
from osrerank.scorer import ModelOptions, PairScorer

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODES_TIMED = ("fp32-openvino", "bf16", "int8-static")


def scorer_with(streams: int, model: Path, options: ModelOptions, mode: str) -> PairScorer:
    """A scorer whose OpenVINO runner was compiled for ``streams`` streams."""
    kept, runtimes.OPENVINO_STREAMS = runtimes.OPENVINO_STREAMS, streams
    try:
        return PairScorer(model, options, mode)
    finally:
        runtimes.OPENVINO_STREAMS = kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=Path(get("OSRERANK_TEST_MODEL") or SHARED / "models/minilm-l6-random-head")
    )
    parser.add_argument("--dataset", type=Path, default=SHARED / "data/beir/scifact")
    parser.add_argument("--queries", type=int, default=40, help="SciFact test queries x their BM25 top 25")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--calibrate",
        type=Path,
        default=SHARED / "data/beir/scifact/qrels/train.tsv",
        help="judged queries whose BM25 hits calibrate int8-static [default: SciFact train, as P1]",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    cpu, threads = cpu_info(), os.cpu_count() or 1
    if threads < 2:
        print("one CPU: there is nothing to share between streams", file=sys.stderr)
        return 1
    pairs = [(g.query, d) for g in judged_groups(args.dataset, queries=args.queries, k=25) for d in g.documents]
    options = ModelOptions(path=str(args.model), batch_size=args.batch_size, gate_qrels=str(args.calibrate))
    rows, skipped, modes = {}, {}, []
    for mode in MODES_TIMED:
        why = refusal(mode, "kit", cpu, "this host") or MODES[mode].missing()
        if why:
            skipped[mode] = why
            continue
        modes.append(mode)
        for streams in (1, runtimes.OPENVINO_STREAMS):
            scorer = scorer_with(streams, args.model, options, mode)
            rows[f"{mode}, {streams}"] = lambda p, s=scorer: s.score(p).values
    if not modes:
        print(f"no OpenVINO mode runs here: {skipped}", file=sys.stderr)
        return 1
    tokens = PairScorer(args.model, options).encode(pairs).tokens
    order = sorted(range(len(pairs)), key=lambda i: int(tokens[i]))  # P1's slices: a batch of like lengths each
    slices = [order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size)]
    print(
        f"{len(pairs)} SciFact pairs, mean {tokens.mean():.0f} tokens; {cpu.model}, {threads} threads",
        file=sys.stderr,
    )
    rates, values = interleaved(rows, pairs, slices, args.rounds)

    result = {"cpu": cpu.shown(), "threads": threads, "pairs": len(pairs)}
    result["mean_tokens"] = round(float(tokens.mean()), 1)
    result["modes"], result["skipped"] = [], skipped
    keys, streams = ("one_stream", "streams"), runtimes.OPENVINO_STREAMS
    for mode in modes:
        result["modes"].append({"mode": mode, **compared(rates, values, f"{mode}, 1", f"{mode}, {streams}", keys)})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print_compared(cpu, threads, result, keys, ("1 stream", f"{streams} streams"), "tokenization included")
    return 0


if __name__ == "__main__":
    sys.exit(main())
