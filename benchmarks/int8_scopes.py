"""What NNCF's static int8 keeps of a trained reranker, per quantization scope: which parts left in fp32 (or
which calibration settings: SmoothQuant, how activation ranges are estimated, more pairs, full bias correction)
bring int8-static inside the gates, and what each costs in speed; and, for comparison, int8 weights alone
(``weights-only``: ``nncf.compress_weights``, every product still in f32 or bf16).

Each variant is quantized on the same pairs int8-static calibrates on (the gate's groups of SciFact **train**
queries), then judged like ``auto`` judges a mode: the ranking gate against fp32 on those train groups
(Spearman, top-5 overlap mean / min) and the nDCG@10 drop on them (the relevance gate), plus, for the record,
the drop on all 300 **test** queries (each BM25 top 25; no variant is chosen by it). Speed: pairs/s on the
first 800 test pairs, with OpenVINO's f32 and bf16 inference precision for the parts left unquantized (bf16
only on a CPU with bf16 dot products), beside OpenVINO f32 and bf16 without int8.

    pip install -e '.[bench,int8]'
    python benchmarks/int8_scopes.py --model DIR [--variants base,output-dense-fp32] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path

from osrerank.calibrated import CALIBRATION_PAIRS, KEPT_IN_FP32, calibration_pairs
from osrerank.cpu import cpu_info
from osrerank.gate import fidelity, gate_data, pairs_of
from osrerank.judged import judged_groups, mean_ndcg10
from osrerank.runtimes import openvino_runner
from osrerank.scorer import ModelOptions, PairScorer

SHARED = Path(__file__).resolve().parents[2] / "shared"
ATTENTION_PRODUCTS = [r".*attention/self/MatMul$", r".*attention/self/MatMul_1$"]
OUTPUT_DENSE = [r".*/output/dense/MatMul.*"]  # attention's output projection and the feed-forward's down one
VARIANTS: dict[str, dict] = {
    "base": {},  # what int8-static builds: the head and pooler in fp32, NNCF's transformer preset
    "output-dense-fp32": {"extra": OUTPUT_DENSE},
    "attention-products-fp32": {"extra": ATTENTION_PRODUCTS},
    "both-fp32": {"extra": ATTENTION_PRODUCTS + OUTPUT_DENSE},
    "no-smoothquant": {"smooth_quant": -1.0},
    "smoothquant-0.5": {"smooth_quant": 0.5},
    "calibrate-1000": {"pairs": 1000},
    "full-bias-correction": {"fast_bias_correction": False},
    "quantile-ranges": {"ranges": "MEAN_QUANTILE"},  # activation ranges without their outliers (clipped)
    "histogram-ranges": {"ranges": "HISTOGRAM"},
    "weights-only": {"weights_only": True},  # int8 weights per channel, products in f32/bf16 (compress_weights)
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a reranker with a learned head (osrerank train)")
    parser.add_argument("--dataset", type=Path, default=SHARED / "data/beir/scifact")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    cpu = cpu_info()
    train = str(args.dataset / "qrels/train.tsv")
    scorer = PairScorer(args.model, ModelOptions(path=str(args.model), gate_qrels=train), "fp32")
    gate = gate_data(None, train)
    gate_pairs, sizes = pairs_of(gate.groups)
    test = judged_groups(args.dataset, queries=300, k=25)
    test_pairs = [(g.query, d) for g in test for d in g.documents]
    ref_gate, ref_test = scorer.score(gate_pairs).values, scorer.score(test_pairs).values
    print(f"{cpu.model}; fp32 nDCG@10 train gate {mean_ndcg10(gate.judged, ref_gate):.4f}", file=sys.stderr)

    def speed(runner) -> float:
        scorer.runner = runner
        scorer.score(test_pairs[:16])
        started = time.perf_counter()
        scorer.score(test_pairs[:800])
        return round(800 / (time.perf_counter() - started), 1)

    precisions = ["f32", "bf16"] if cpu.bf16 else ["f32"]
    rows = [
        {"variant": f"no int8, OpenVINO {p}", "pairs_per_s": speed(openvino_runner(scorer.onnx_file, 2, p))}
        for p in precisions
    ]
    core = ov.Core()
    for name in args.variants.split(","):
        v = VARIANTS[name]
        pairs = calibration_pairs(gate.groups, v.get("pairs", CALIBRATION_PAIRS))
        data = scorer.calibration_feeds(pairs)
        extra = {}
        if "smooth_quant" in v:
            sq = AdvancedSmoothQuantParameters(matmul=v["smooth_quant"])
            extra["advanced_parameters"] = AdvancedQuantizationParameters(smooth_quant_alphas=sq)
        if "ranges" in v:
            ranges = getattr(RangeEstimatorParametersSet, v["ranges"])
            extra["advanced_parameters"] = AdvancedQuantizationParameters(activations_range_estimator_params=ranges)
        if "fast_bias_correction" in v:
            extra["fast_bias_correction"] = v["fast_bias_correction"]
        started = time.perf_counter()
        nncf.set_log_level(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = (
                nncf.compress_weights(
                    core.read_model(str(scorer.onnx_file)),
                    mode=nncf.CompressWeightsMode.INT8_SYM,
                    ignored_scope=nncf.IgnoredScope(patterns=KEPT_IN_FP32, validate=False),
                )
                if v.get("weights_only")
                else nncf.quantize(
                    core.read_model(str(scorer.onnx_file)),
                    nncf.Dataset(data),
                    model_type=nncf.ModelType.TRANSFORMER,
                    subset_size=len(pairs),
                    ignored_scope=nncf.IgnoredScope(patterns=KEPT_IN_FP32 + v.get("extra", []), validate=False),
                    **extra,
                )
            )
        built = round(time.perf_counter() - started, 1)
        xml = Path(f"/tmp/osrerank-int8-scope-{name}.xml")
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        for precision in precisions:
            pairs_per_s = speed(openvino_runner(xml, 2, precision))
            on_gate, on_test = scorer.score(gate_pairs).values, scorer.score(test_pairs).values
            f = fidelity(ref_gate, on_gate, sizes)
            row = {
                "variant": f"{name}, rest {precision}",
                "pairs_per_s": pairs_per_s,
                "built_s": built,
                "spearman": round(f.spearman, 5),
                "top5_mean": round(f.top5_mean, 3),
                "top5_min": round(f.top5_min, 2),
                "ranking_gate": f.passes(),
                "gate_ndcg_drop": round(mean_ndcg10(gate.judged, ref_gate) - mean_ndcg10(gate.judged, on_gate), 4),
                "test_ndcg_drop": round(mean_ndcg10(test, ref_test) - mean_ndcg10(test, on_test), 4),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"cpu": cpu.shown(), "model": str(args.model), "rows": rows}, indent=2))
        return 0
    print(f"CPU: {cpu.model}; {', '.join(k for k, on in cpu.shown()['flags'].items() if on)}; model {args.model}")
    head = f"{'variant':<40}{'pairs/s':>8}{'Spearman':>10}{'top5 mean/min':>15}"
    print(head + f"{'gate':>6}{'drop train':>11}{'drop test':>10}")
    for r in rows:
        if "spearman" not in r:
            print(f"{r['variant']:<40}{r['pairs_per_s']:>8.1f}")
            continue
        print(
            f"{r['variant']:<40}{r['pairs_per_s']:>8.1f}{r['spearman']:>10.5f}"
            f"{r['top5_mean']:>9.3f} / {r['top5_min']:.1f}"
            f"{'pass' if r['ranking_gate'] else 'FAIL':>6}{r['gate_ndcg_drop']:>11.4f}{r['test_ndcg_drop']:>10.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
