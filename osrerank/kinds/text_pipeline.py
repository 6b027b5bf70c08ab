"""Kind ``text-pipeline``: an ONNX file written by ``osrerank export`` (pipeline_export.py), chosen when the model
path is an ``.onnx`` file. Its tokenizer, truncation and padding are in the graph, so ``encode`` passes the texts
through (cut to the scorer's character cap, as every kind's are) and a batch runs the session on string inputs.

What the kit cannot know without tokenizing: a pair's token count (``tokens`` is an estimate, four characters a
token, for the stand-in's batch budget only) and whether the graph cut it (``truncated`` is always False: a request
that asks not to truncate is not refused). A pair without a document is scored with an empty one (the graph reads
pairs only), and an --sigmoid file's scores are already squashed. Served by the stand-in only: the other targets
run token-id graphs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError, ScoringError, ToolMissingError
from .base import Encoded, Forward, ModelKind, Pair

__all__ = ["INPUTS", "META", "TextPipeline", "is_text_pipeline"]

#: The file's inputs, and the prefix of the metadata keys it carries (written by pipeline_export.py).
INPUTS = ("first_input", "second_input")
META = "osrerank."
CHARS_PER_TOKEN = 4


def is_text_pipeline(model: str | Path) -> bool:
    """Whether a model path names an ONNX file (an exported text pipeline), not a folder or hub id."""
    path = Path(model).expanduser()
    return path.suffix == ".onnx" and path.is_file()


class TextPipeline(ModelKind):
    name = "text-pipeline"
    summary = "an ONNX file from `osrerank export`, raw text in (chosen for a model path ending in .onnx)"
    targets = frozenset({"standin"})
    takes_text = True

    def __init__(self, folder: Path, options: Any = None) -> None:
        self.folder, self.options, self.config = folder, options, {}
        self.check()
        try:
            import onnxruntime as ort
            import onnxruntime_extensions
        except ImportError:
            raise ToolMissingError(f"{folder} needs onnxruntime-extensions: pip install 'osrerank[export]'") from None
        settings = ort.SessionOptions()
        settings.register_custom_ops_library(onnxruntime_extensions.get_library_path())
        settings.intra_op_num_threads = getattr(options, "threads", None) or os.cpu_count() or 1
        settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(folder), settings, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types
            raise ModelLoadError(f"ONNX Runtime cannot load {folder}: {str(exc).splitlines()[0][:300]}") from exc
        self.meta = {
            k.removeprefix(META): v
            for k, v in self.session.get_modelmeta().custom_metadata_map.items()
            if k.startswith(META)
        }
        if sorted(i.name for i in self.session.get_inputs()) != sorted(INPUTS) or "max_length" not in self.meta:
            raise ModelLoadError(f"{folder} is not a text pipeline written by `osrerank export`")
        self.squashed = self.meta.get("activation") == "none"  # an --sigmoid file's scores are squashed already

    def check(self) -> None:
        if not is_text_pipeline(self.folder):
            raise ModelLoadError(f"{self.folder} is not an .onnx file: --kind text-pipeline takes `osrerank export`'s")

    def check_kit(self) -> None:
        options = self.options
        if options is not None and options.precision != "fp32":
            raise ModelLoadError(f"{self.folder} is a text pipeline: it runs in fp32 only (pass --precision fp32)")
        if options is not None and options.max_length:
            raise ModelLoadError(
                f"{self.folder} cuts pairs at {self.meta['max_length']} tokens, as exported: drop --max-length"
            )

    @property
    def label(self) -> str:
        return self.meta.get("label", "LABEL_0")

    def limits(self) -> list[int]:
        return [int(self.meta["max_length"])]

    def graph(self) -> Path:
        return self.folder

    def tokenizer(self, max_length: int) -> Any:
        return None  # in the graph

    def runner(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """One batch of string inputs through the session: its one output."""
        return lambda feed: self.session.run(None, feed)[0]

    def encode(self, tokenizer: Any, pairs: Sequence[Pair], cap: int) -> Encoded:
        for i, (q, d) in enumerate(pairs):  # ONNX Runtime would score str(x) of anything else (None as "None")
            if not isinstance(q, str) or not isinstance(d, str | None):
                raise ScoringError(
                    f"pair {i}: the query and the document must be strings, got {type(q).__name__} and "
                    f"{type(d).__name__}"
                )
        items = [(q[:cap], (d or "")[:cap]) for q, d in pairs]
        limit = int(self.meta["max_length"])
        tokens = np.array([min(limit, 3 + (len(q) + len(d)) // CHARS_PER_TOKEN) for q, d in items], dtype=np.int64)
        return Encoded(items, np.zeros(len(items), dtype=bool), tokens)

    def reduce(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return output

    def score(self, forward: Forward, items: Sequence[Any]) -> np.ndarray:
        """``forward`` runs one feed; batches of ``batch_size`` pairs of similar length (the graph pads each batch
        to its longest pair)."""
        size = getattr(self.options, "batch_size", 32)
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]) + len(items[i][1]))
        values = np.zeros(len(items), dtype=np.float64)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            feed = {name: np.array([items[i][k] for i in chunk], dtype=object) for k, name in enumerate(INPUTS)}
            values[chunk] = np.asarray(forward([feed]), dtype=np.float64).reshape(-1)
        return values

    def export(self, folder: Path, target: Path) -> Path:
        raise ModelLoadError(f"{folder} is already an ONNX file")
