"""Static int8: the graph quantized once with activation ranges calibrated on real pairs (OpenVINO NNCF's
post-training quantization), so at run time every quantized product is an int8 one (VNNI or AMX-INT8), with
no per-call range finding as dynamic int8 does.

The calibration pairs are the gate's (``--gate-pairs``, the judged queries' candidates of ``--gate-qrels``, or
the built-in sample): your own text where you give it. Calibration only sets ranges; nothing is fitted to
judgments, and the mode is still refused unless it passes the gates. What stays in fp32: the pooler and the
classification head (one logit from a few hundred numbers: quantizing it moves every score) and what NNCF's
transformer preset keeps (softmax, LayerNorm, GELU). Built once per graph and calibration set, cached beside
the converted ONNX.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import ToolMissingError
from .paths import cache_root

__all__ = ["CALIBRATION_PAIRS", "KEPT_IN_FP32", "calibrated_graph", "calibration_pairs"]

#: Pairs the ranges are calibrated on (NNCF's default subset is 300 samples).
CALIBRATION_PAIRS = 288
#: Node-name patterns of the parts kept in fp32: BERT's pooler and classifier, XLM-R's classifier, ModernBERT's
#: head and classifier, a decoder's answer head.
KEPT_IN_FP32 = [r".*pooler.*", r".*classifier.*", r".*/head/.*", r".*lm_head.*", r".*score.*"]

Feeds = list[dict[str, np.ndarray]]


def calibration_pairs(
    groups: Sequence[tuple[str, Sequence[str]]], count: int = CALIBRATION_PAIRS
) -> list[tuple[str, str]]:
    """The first ``count`` (query, document) pairs taken across the gate's groups: each query's first candidate,
    then each one's second, and so on, so every query is in the calibration before any has two."""
    spread = sorted((j, i) for i, (_, docs) in enumerate(groups) for j in range(len(docs)))
    return [(groups[i][0], groups[i][1][j]) for j, i in spread[:count]]


def calibrated_graph(onnx_file: Path, feeds: Callable[[], Feeds], calibration_key: str) -> Path:
    """The OpenVINO IR of ``onnx_file`` quantized to int8 on ``feeds()`` (model inputs, a few pairs each),
    cached under the graph's digest and ``calibration_key`` (what the pairs and the tokenization were)."""
    digest = hashlib.sha256(onnx_file.read_bytes() + calibration_key.encode()).hexdigest()[:20]
    target = cache_root() / "int8-static" / digest / "model.xml"
    if target.exists() and target.with_suffix(".bin").exists():
        return target
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise ToolMissingError(
            "--precision int8-static needs NNCF and OpenVINO: pip install 'osrerank[int8]'"
        ) from None
    calibration = feeds()
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars are for notebooks
        quantized = nncf.quantize(
            ov.Core().read_model(str(onnx_file)),
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(patterns=KEPT_IN_FP32, validate=False),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"tmp-{digest}.xml")
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(target.with_suffix(".bin"))
    tmp.replace(target)
    return target
