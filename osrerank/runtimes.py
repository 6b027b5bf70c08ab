"""The inference engines a scorer can run an ONNX graph on, behind one call: feed in, first output out.

- ONNX Runtime, fp32: the exact path (its scores are the ones every exactness test holds to PyTorch's).
- ONNX Runtime on the dynamically quantized graph (``int8``): weights int8 per channel, activations
  quantized at run time.
- OpenVINO, which reads the same ONNX file: ``bf16`` (only where the CPU has bf16 dot products; on other
  CPUs OpenVINO would silently compute in f32) and ``f32``, pinned, since OpenVINO's own default on a
  bf16-capable CPU is already bf16.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, ToolMissingError

__all__ = ["Runner", "onnxruntime_runner", "openvino_runner"]


@dataclass(frozen=True)
class Runner:
    """A loaded graph: ``runner(feed)`` gives its first output, ``runner.many(feeds)`` one output per feed (an
    engine that can overlap them does); ``input_names`` are the inputs the graph takes (BERT has token types,
    XLM-R and ModernBERT do not), and only those are fed."""

    call: Callable[[dict[str, np.ndarray]], np.ndarray]
    input_names: frozenset[str]
    call_many: Callable[[list[dict[str, np.ndarray]]], list[np.ndarray]] | None = None

    def __call__(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.call(self._taken(feed))

    def many(self, feeds: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        taken = [self._taken(feed) for feed in feeds]
        return self.call_many(taken) if self.call_many else [self.call(feed) for feed in taken]

    def _taken(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v for k, v in feed.items() if k in self.input_names}


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


#: OpenVINO runs a call's batches on this many streams at once (the engine threads shared among them), each batch
#: of two or more pairs split in halves across them. At 2 threads, one stream's threads idle through the small
#: element-wise steps of a batch of short pairs; two streams of one thread keep both cores busy. Measured on the
#: trained reranker's cut graph (Xeon with AMX, 2 cores, interleaved): on fixed batches, bf16 1.08-1.16x at 8-32
#: pairs x 128 tokens, 1.00x at 32 x 384, f32 1.08-1.12x; through the scorer on P1's pairs, tokenization included
#: (benchmarks/openvino_streams.py), bf16 1.05-1.09x, f32 1.03-1.04x. The outputs were bit for bit those of the
#: whole batch on both MiniLM-sized models (bf16 on the tiny test model: within 4.8e-7). ONNX Runtime gains
#: nothing from the same split (1.00x).
OPENVINO_STREAMS = 2


def openvino_runner(onnx_file: Path, threads: int, precision: str) -> Runner:
    """``precision``: "f32" or "bf16" (OpenVINO's INFERENCE_PRECISION_HINT). With two or more threads, a call's
    batches run on OPENVINO_STREAMS streams at once; a call of one pair alone, which a stream of one thread would
    run 1.5-1.8x slower than both threads, goes to a one-stream compilation of the graph, made when first needed
    (0.25 s)."""
    try:
        import openvino as ov
    except ImportError:
        raise ToolMissingError("OpenVINO is not installed (pip install 'osrerank[openvino]')") from None
    core = ov.Core()
    streams = min(OPENVINO_STREAMS, threads)

    def compiled_with(n: int) -> Any:
        hint = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": n} if n > 1 else {"PERFORMANCE_HINT": "LATENCY"}
        try:
            return core.compile_model(
                core.read_model(str(onnx_file)),
                "CPU",
                {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, **hint},
            )
        except Exception as exc:  # OpenVINO raises RuntimeError with the compiler's message
            raise ModelLoadError(f"OpenVINO cannot load {onnx_file}: {str(exc).splitlines()[0][:300]}") from exc

    shared = compiled_with(streams)
    one_stream = functools.cache(lambda: compiled_with(1) if streams > 1 else shared)
    alone = _Pool(lambda: one_stream().create_infer_request())
    queues = _Pool(lambda: _queue(ov, shared, streams))

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return run_many([feed])[0]

    def run_many(feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        if streams == 1 or sum(len(next(iter(f.values()))) for f in feeds) == 1:
            with alone.taken() as request:
                return [np.asarray(request.infer(feed, share_inputs=True)[0]) for feed in feeds]
        split = [_halves(feed) for feed in feeds]
        pieces = [piece for halves in split for piece in halves]
        outputs: list[Any] = [None] * len(pieces)
        with queues.taken() as queue:
            try:
                for i, piece in enumerate(pieces):  # waits for an idle stream: each takes the next piece when free
                    queue.start_async(piece, (outputs, i), share_inputs=True)
            finally:  # the pieces' arrays are shared with OpenVINO: none may be freed while a request reads it
                queue.wait_all()
        errors = [o for o in outputs if isinstance(o, BaseException)]
        if errors:
            raise errors[0]
        out, at = [], 0
        for halves in split:
            out.append(np.concatenate(outputs[at : at + len(halves)]) if len(halves) > 1 else outputs[at])
            at += len(halves)
        return out

    return Runner(run, frozenset(name for port in shared.inputs for name in port.get_names()), run_many)


def _queue(ov: Any, compiled: Any, jobs: int) -> Any:
    """An AsyncInferQueue whose callback puts each output (a copy) at ``userdata``'s place."""
    queue = ov.AsyncInferQueue(compiled, jobs)

    def done(request: Any, userdata: tuple[list[Any], int]) -> None:
        outputs, i = userdata
        try:
            outputs[i] = np.array(request.get_output_tensor(0).data)
        except BaseException as exc:  # raised in the caller's thread, not lost in OpenVINO's
            outputs[i] = exc

    queue.set_callback(done)
    return queue


def _halves(feed: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """A batch of two or more rows as two of about equal size (rows are independent: same outputs)."""
    rows = len(next(iter(feed.values())))
    if rows < 2:
        return [feed]
    half = (rows + 1) // 2
    return [{k: v[:half] for k, v in feed.items()}, {k: v[half:] for k, v in feed.items()}]


class _Pool:
    """Things made once and reused rather than made per call (an infer request cost 3.5% of a bf16 batch of
    32 x 128 tokens, Xeon with AMX). Callers may run concurrently: each takes its own from the idle list
    (list.pop and list.append are atomic); ``make`` runs when none is idle."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._idle, self._lock = make, list[Any](), threading.Lock()

    @contextmanager
    def taken(self) -> Iterator[Any]:
        try:
            item = self._idle.pop()
        except IndexError:
            with self._lock:  # one compilation at a time
                item = self._make()
        try:
            yield item
        finally:
            self._idle.append(item)
