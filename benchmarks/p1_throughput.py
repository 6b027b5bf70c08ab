"""P1: scoring speed and fidelity of every precision mode vs sentence-transformers, on realistic pairs.

Pairs (``--pairs scifact``, the default): 40 SciFact test queries x their BM25 top 25 (``_pairs.py``),
title + ". " + text, up to 512 tokens: what a reranker really sees. ``--pairs tutorial``: the OpenSearch
tutorial's 40-token pairs, for comparison with older figures.

Rows, each scoring every length-sorted slice of 32 pairs in a shuffled order within one pass (so a burst of
load on the machine falls on every row alike), ``--rounds`` passes, tokenization included:

- ``sentence-transformers``: ``CrossEncoder.predict`` (PyTorch fp32) on the model's PyTorch twin;
- ``fp32``: the kit's scorer on ONNX Runtime (the exact path);
- ``fp32-openvino``: the kit's OpenVINO f32 mode on the same ONNX file (exact; ``auto`` takes it when faster);
- ``bf16``: the kit's OpenVINO bf16 mode (only where the CPU has AVX512-BF16/AMX);
- ``int8``: the kit's ONNX Runtime dynamic int8 mode;
- ``int8-static``: the kit's OpenVINO int8 graph calibrated by NNCF, on SciFact **train** queries' BM25 hits
  (``--calibrate``, default qrels/train.tsv: never the test queries it is then judged on);
- with ``--model-alone``, ``fp32-openvino (model alone)`` and ``bf16 (model alone)``: the same modes on pairs
  tokenized before the clock starts, so what the engine alone allows is measured in the same run.

Each row: pairs/s, its ratio to sentence-transformers (per pass, median), whether it is exact (logits within
1e-4 of PyTorch), the fidelity gate against fp32 (Spearman, per-query top-5 overlap, largest logit shift),
nDCG@10 of the test queries reranked by the row's scores (SciFact pairs: the same judged candidates for every
row, so a difference is the mode's alone) against fp32's, the relevance gate (within 0.005 of fp32), and the
fraction of this CPU's measured matrix-multiply peak it reaches. Give ``--model`` a trained reranker (``osrerank
train`` on SciFact train) for relevance figures that mean something; the test model's head is random.

    pip install -e '.[bench,openvino,int8]'
    python benchmarks/p1_throughput.py [--model DIR] [--pairs scifact] [--rounds 2] [--model-alone] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _timing import interleaved

from osrerank.config.environment import get
from osrerank.cpu import cpu_info
from osrerank.demo import TUTORIAL_PASSAGES, TUTORIAL_QUERY
from osrerank.gate import RELEVANCE_DROP, fidelity
from osrerank.judged import JudgedGroup, judged_groups, mean_ndcg10
from osrerank.model import pytorch_folder, read_json
from osrerank.precision import MODES, refusal
from osrerank.scorer import ModelOptions, PairScorer

SHARED = Path(__file__).resolve().parents[2] / "shared"
Score = Callable[[list[tuple[str, str]]], np.ndarray]


def groups_for(kind: str, dataset: Path, queries: int) -> tuple[list[tuple[str, list[str]]], list[JudgedGroup]]:
    """The (query, candidates) groups, and their judgments where there are any (SciFact)."""
    if kind == "scifact":
        judged = judged_groups(dataset, queries=queries, k=25)
        return [(g.query, g.documents) for g in judged], judged
    return [(TUTORIAL_QUERY, list(TUTORIAL_PASSAGES) * 6)] * queries, []


def flops_per_pair(config: dict, tokens: np.ndarray, first_token: bool = False) -> np.ndarray:
    """Multiply-adds x 2 of a BERT-style encoder per pair of ``tokens`` tokens: the projections and
    feed-forward (linear in length) and the attention products (quadratic). ``first_token``: the last layer as
    the kit runs it (osrerank/first_token.py), keys and values for every token, the rest for the first only."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    inner = config.get("intermediate_size", 4 * h)
    per_token = 2 * (4 * h * h + 2 * h * inner)
    whole = layers * (per_token * tokens + 2 * 2 * tokens * tokens * h).astype(np.float64)
    if not first_token:
        return whole
    last_cut = 2 * 2 * h * h * tokens + per_token - 2 * 2 * h * h + 2 * 2 * tokens * h
    return whole - (per_token * tokens + 2 * 2 * tokens * tokens * h) + last_cut


def matmul_peak(threads: int, bf16: bool) -> dict[str, float | None]:
    """GFLOP/s of large square matrix products with this many threads: fp32 (PyTorch), and bf16 only on a
    CPU with bf16 dot products (elsewhere PyTorch emulates it, and the figure would mean nothing)."""
    import torch

    torch.set_num_threads(threads)
    out: dict[str, float | None] = {"bf16": None}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name == "bf16" and not bf16:
            continue
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < 2.0:
            a @ b
            n += 1
        out[name] = 2 * 2048**3 * n / (time.perf_counter() - started) / 1e9
    out["int8"] = None  # no portable int8 GEMM to time from Python
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(get("OSRERANK_TEST_MODEL") or SHARED / "models/minilm-l6-random-head"),
    )
    parser.add_argument("--pairs", choices=["scifact", "tutorial"], default="scifact")
    parser.add_argument("--dataset", type=Path, default=SHARED / "data/beir/scifact")
    parser.add_argument("--queries", type=int, default=40, help="queries x 25 pairs [default: 40 -> 1,000 pairs]")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--calibrate",
        type=Path,
        default=SHARED / "data/beir/scifact/qrels/train.tsv",
        help="judged queries whose BM25 hits calibrate int8-static [default: SciFact train]",
    )
    parser.add_argument(
        "--model-alone",
        action="store_true",
        help="also time OpenVINO f32 and bf16 on pairs tokenized beforehand: what the engine alone allows",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    cpu = cpu_info()
    threads = os.cpu_count() or 1
    groups, judged = groups_for(args.pairs, args.dataset, args.queries)
    pairs = [(q, d) for q, docs in groups for d in docs]
    sizes = [len(docs) for _, docs in groups]
    options = ModelOptions(path=str(args.model), batch_size=args.batch_size, gate_qrels=str(args.calibrate))
    exact = PairScorer(args.model, options)
    encoded = exact.encode(pairs)
    order = sorted(range(len(pairs)), key=lambda i: int(encoded.tokens[i]))
    slices = [order[s : s + args.batch_size] for s in range(0, len(order), args.batch_size)]
    print(
        f"P1: {len(pairs)} {args.pairs} pairs, mean {encoded.tokens.mean():.0f} tokens, "
        f"{int((encoded.tokens >= exact.max_length).sum())} at the {exact.max_length} cap; "
        f"{cpu.model}, {threads} threads",
        file=sys.stderr,
    )

    twin = CrossEncoder(str(pytorch_folder(args.model)), device="cpu", max_length=exact.max_length)
    rows: dict[str, Score] = {
        "sentence-transformers": lambda p: np.asarray(
            twin.predict(p, batch_size=args.batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)
        ).reshape(-1),
        "fp32": lambda p: exact.score(p).values,
    }
    skipped: dict[str, str] = {}
    for mode in [m for m in MODES if m != "fp32"]:
        why = refusal(mode, "kit", cpu, "this host") or MODES[mode].missing()  # OpenVINO not installed, say
        if why:
            skipped[mode] = why
            continue
        if MODES[mode].calibrated:
            print(f"calibrating {mode} on {args.calibrate} (once per model; cached)", file=sys.stderr)
        scorer = PairScorer(args.model, options, mode)
        rows[mode] = lambda p, s=scorer: s.score(p).values
        if args.model_alone and mode in ("fp32-openvino", "bf16"):  # every mode encodes pairs as fp32 does
            tokens = dict(zip(pairs, encoded.items, strict=True))
            rows[f"{mode} (model alone)"] = lambda p, s=scorer, t=tokens: s.run([t[x] for x in p])

    rates, scores = interleaved(rows, pairs, slices, args.rounds)
    peak = matmul_peak(threads, cpu.bf16)
    config = read_json(args.model / "config.json")
    work = float(flops_per_pair(config, encoded.tokens).mean())
    cut = exact.onnx_file.name == "model.first-token.onnx"  # the kit's rows do the last layer for one token
    work_kit = float(flops_per_pair(config, encoded.tokens, first_token=cut).mean())
    reference = scores["sentence-transformers"]
    out_rows = []
    for name, got in scores.items():
        ratio = statistics.median(r / s for r, s in zip(rates[name], rates["sentence-transformers"], strict=True))
        gate = fidelity(scores["fp32"], got, sizes)
        precision = "bf16" if name.startswith("bf16") else "int8" if name.startswith("int8") else "fp32"
        best = max(rates[name])
        ndcg = round(mean_ndcg10(judged, got), 4) if judged else None
        ndcg_fp32 = mean_ndcg10(judged, scores["fp32"]) if judged else None
        out_rows.append(
            {
                "mode": name,
                "pairs_per_s": round(best, 2),
                "ratio": round(ratio, 3),
                "exact": bool(np.max(np.abs(got - reference)) <= 1e-4),
                "gate_passed": gate.passes(),
                "spearman": round(gate.spearman, 6),
                "top5_mean": round(gate.top5_mean, 4),
                "top5_min": round(gate.top5_min, 2),
                "max_abs_logit_diff": float(f"{float(np.max(np.abs(got - scores['fp32']))):.3g}"),
                "max_abs_logit_diff_vs_pytorch": float(f"{float(np.max(np.abs(got - reference))):.3g}"),
                "ndcg10": ndcg,
                "relevance_passed": None if ndcg is None else bool(ndcg_fp32 - ndcg <= RELEVANCE_DROP),
                "fraction_of_peak": None
                if peak[precision] is None
                else round(best * (work if name == "sentence-transformers" else work_kit) / 1e9 / peak[precision], 3),
            }
        )
    result = {
        "cpu": cpu.shown(),
        "pairs": {
            "kind": args.pairs,
            "count": len(pairs),
            "mean_tokens": round(float(encoded.tokens.mean()), 1),
            "at_cap": int((encoded.tokens >= exact.max_length).sum()),
            "gflop_per_pair": round(work / 1e9, 2),
            "gflop_per_pair_kit": round(work_kit / 1e9, 2),
            "judged_queries": len(judged),
        },
        "model": str(args.model),
        "calibrated_on": str(args.calibrate),
        "peak_gflops": {k: None if v is None else round(v, 1) for k, v in peak.items()},
        "rounds": args.rounds,
        "rows": out_rows,
        "not_run": skipped,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"CPU: {cpu.model} ({threads} threads); AVX-512/VNNI/BF16/AMX flags: {cpu.flags_shown()}; model {args.model}")
    print(
        f"pairs: {len(pairs)} {args.pairs}, mean {result['pairs']['mean_tokens']} tokens, "
        f"{result['pairs']['gflop_per_pair']} GFLOP per pair ({result['pairs']['gflop_per_pair_kit']} as the kit runs "
        f"the last layer); matmul peak fp32 {result['peak_gflops']['fp32']} GFLOP/s"
    )
    print(
        f"{'mode':<29}{'pairs/s':>9}{'x ST':>7}{'exact':>7}{'gate':>6}{'Spearman':>10}{'top5 mean/min':>15}"
        f"{'max logit shift':>17}{'nDCG@10':>9}{'rel.':>6}{'of peak':>9}"
    )
    for r in out_rows:
        peak_txt = "-" if r["fraction_of_peak"] is None else f"{r['fraction_of_peak']:.0%}"
        print(
            f"{r['mode']:<29}{r['pairs_per_s']:>9.1f}{r['ratio']:>7.2f}{'yes' if r['exact'] else 'no':>7}"
            f"{'pass' if r['gate_passed'] else 'FAIL':>6}{r['spearman']:>10.5f}"
            f"{r['top5_mean']:>9.3f} / {r['top5_min']:.1f}{r['max_abs_logit_diff']:>17.3g}"
            f"{'-' if r['ndcg10'] is None else format(r['ndcg10'], '.4f'):>9}"
            f"{'-' if r['relevance_passed'] is None else 'pass' if r['relevance_passed'] else 'FAIL':>6}{peak_txt:>9}"
        )
    for name, why in skipped.items():
        print(f"{name:<29}not run: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
