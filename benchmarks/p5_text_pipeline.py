"""P5: what the text pipeline (``osrerank export``: the tokenizer inside the ONNX graph) costs against the kit's own
scorer (``tokenizers`` outside, token ids into the plain graph), on the same realistic pairs.

Pairs: 8 SciFact test queries x their BM25 top 25 (``_pairs.py``) = 200 pairs, title + ". " + text. Rows, each
scoring all 200 pairs, ``--rounds`` passes interleaved (a burst of load from other processes falls on every row
alike), median pairs/s and its ratio to the kit scorer's in the same run:

- ``kit scorer``: ``load_scorer(folder)`` (fp32, ONNX Runtime), tokenization included, batches of 32 of similar
  length;
- ``pipeline file``: the exported file in a bare ONNX Runtime session with onnxruntime-extensions, as a user loads
  it (strings in), the same batches;
- ``pipeline via kit``: ``load_scorer(FILE.onnx)``, the text-pipeline kind the stand-in serves it with;
- ``... one pair``: the kit scorer and the bare file on the first 50 pairs one pair per call (the tokenizer's share
  of a call is largest there).

    pip install -e '.[export]'
    python benchmarks/p5_text_pipeline.py [--model DIR] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _pairs import scifact_groups

from osrerank.config.environment import get
from osrerank.cpu import cpu_info
from osrerank.pipeline_export import export_pipeline
from osrerank.scorer import load_scorer

SHARED = Path(__file__).resolve().parents[2] / "shared"
BATCH = 32
SINGLE = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=get("OSRERANK_TEST_MODEL") or str(SHARED / "models/minilm-l6-random-head"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    dataset = Path(get("OSRERANK_SCIFACT") or SHARED / "data/beir/scifact")
    pairs = [(q, d) for q, docs in scifact_groups(dataset, queries=8, k=25) for d in docs]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = export_pipeline(args.model, Path(tmp) / "pipeline.onnx")
        exported = time.perf_counter() - started
        size_mb = result.path.stat().st_size / 1e6
        kit, via_kit = load_scorer(args.model), load_scorer(result.path)
        session = via_kit.kind.session  # the bare ONNX Runtime session on the file
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        batches = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]

        def bare(chunks: list[list[int]]) -> np.ndarray:
            out = np.zeros(len(pairs))
            for chunk in chunks:
                feed = {
                    "first_input": np.array([pairs[i][0] for i in chunk], dtype=object),
                    "second_input": np.array([pairs[i][1] for i in chunk], dtype=object),
                }
                out[chunk] = session.run(None, feed)[0]
            return out

        def kit_one() -> np.ndarray:
            out = np.zeros(len(pairs))
            for i in range(SINGLE):
                out[i] = kit.score([pairs[i]]).values[0]
            return out

        rows: dict[str, tuple[int, Callable[[], np.ndarray]]] = {
            "kit scorer": (len(pairs), lambda: kit.score(pairs).values),
            "pipeline file": (len(pairs), lambda: bare(batches)),
            "pipeline via kit": (len(pairs), lambda: via_kit.score(pairs).values),
            "kit scorer, one pair": (SINGLE, kit_one),
            "pipeline file, one pair": (SINGLE, lambda: bare([[i] for i in range(SINGLE)])),
        }
        values = {name: run() for name, (_, run) in rows.items()}  # warm-up, and the scores to compare
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, (_, run) in rows.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    cpu = cpu_info()
    figures = {}
    for name, (count, _) in rows.items():
        base = "kit scorer, one pair" if name.endswith("one pair") else "kit scorer"
        rate = count / statistics.median(times[name])
        figures[name] = {
            "pairs": count,
            "pairs_per_s": round(rate, 1),
            "ms_per_pair": round(1000 / rate, 2),
            "ratio_to_kit": round(rate / (rows[base][0] / statistics.median(times[base])), 3),
            "max_abs_logit_diff_to_kit": float(np.abs(values[name] - values[base])[: rows[name][0]].max()),
        }
    report = {
        "cpu": cpu.shown(),
        "model": Path(args.model).name,
        "pairs": len(pairs),
        "batch": BATCH,
        "rounds": args.rounds,
        "export_s": round(exported, 1),
        "file_mb": round(size_mb, 1),
        "tokenizer": result.tokenizer,
        "max_length": result.max_length,
        "rows": figures,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"CPU: {cpu.model} ({cpu.cores} threads); flags: {cpu.flags_shown()}")
    print(f"{len(pairs)} SciFact pairs, batches of {BATCH}, median of {args.rounds} interleaved rounds")
    print(f"export: {exported:.1f} s, {size_mb:.0f} MB, {result.tokenizer} tokenizer, pairs cut at {result.max_length}")
    for name, row in figures.items():
        print(
            f"{name:24} {row['pairs_per_s']:8.1f} pairs/s {row['ms_per_pair']:7.2f} ms/pair  x{row['ratio_to_kit']:.2f}"
            f"  max |logit - kit's| {row['max_abs_logit_diff_to_kit']:.1e}"
        )


if __name__ == "__main__":
    main()
