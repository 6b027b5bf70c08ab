"""The inference engines a scorer can run an ONNX graph on, behind one call: feed in, first output out.

- ONNX Runtime, fp32: the exact path (its scores are the ones every exactness test holds to PyTorch's).
- ONNX Runtime on the dynamically quantized graph (``int8``): weights int8 per channel, activations
  quantized at run time.
- OpenVINO, which reads the same ONNX file: ``bf16`` (only where the CPU has bf16 dot products; on other
  CPUs OpenVINO would silently compute in f32) and ``f32``, pinned, since OpenVINO's own default on a
  bf16-capable CPU is already bf16.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, ToolMissingError

__all__ = ["Runner", "onnxruntime_runner", "openvino_runner"]


@dataclass(frozen=True)
class Runner:
    """A loaded graph: ``runner(feed)`` gives its first output; ``input_names`` are the inputs the graph
    takes (BERT has token types, XLM-R and ModernBERT do not), and only those are fed."""

    call: Callable[[dict[str, np.ndarray]], np.ndarray]
    input_names: frozenset[str]

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.call({k: v for k, v in feed.items() if k in self.input_names})


def onnxruntime_runner(onnx_file: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise ModelLoadError(f"ONNX Runtime cannot load {onnx_file}: {str(exc).splitlines()[0][:300]}") from exc

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, feed)[0]

    return Runner(run, frozenset(i.name for i in session.get_inputs()))


def openvino_runner(onnx_file: Path, threads: int, precision: str) -> Runner:
    """``precision``: "f32" or "bf16" (OpenVINO's INFERENCE_PRECISION_HINT)."""
    try:
        import openvino as ov
    except ImportError:
        raise ToolMissingError("OpenVINO is not installed (pip install 'osrerank[openvino]')") from None
    core = ov.Core()
    try:
        compiled = core.compile_model(
            core.read_model(str(onnx_file)),
            "CPU",
            {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
        )
    except Exception as exc:  # OpenVINO raises RuntimeError with the compiler's message
        raise ModelLoadError(f"OpenVINO cannot load {onnx_file}: {str(exc).splitlines()[0][:300]}") from exc
    output = compiled.output(0)
    idle: list[Any] = []  # requests not in use: callers may run concurrently, each takes its own

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        # A request is reused rather than made per call: making one cost 3.5% of a bf16 batch of 32 x 128 tokens
        # (Xeon with AMX). list.pop and list.append are atomic, so no lock is needed.
        request = idle.pop() if idle else compiled.create_infer_request()
        try:
            return np.asarray(request.infer(feed, share_inputs=True)[output])  # outputs are copied (the default)
        finally:
            idle.append(request)

    return Runner(run, frozenset(name for port in compiled.inputs for name in port.get_names()))
