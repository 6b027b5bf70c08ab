"""Kind ``cross-encoder``: query and document read together, one logit per pair (``*ForSequenceClassification``
with one label: ms-marco-MiniLM, bge-reranker-base/v2-m3, ModernBERT rerankers). Runs on every target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..first_token import first_token_graph
from ..model import export_onnx
from .base import Encoded, Forward, ModelKind, Pair
from .pair_tokens import encode_pairs

__all__ = ["CrossEncoder"]


class CrossEncoder(ModelKind):
    name = "cross-encoder"
    summary = "query and document read together, one logit per pair (sigmoid: the score)"
    targets = frozenset({"standin", "torchserve", "sagemaker", "opensearch"})

    def check(self) -> None:
        if self.architectures and not self.has_classifier:
            raise ModelLoadError(
                f"{self.folder} is a {', '.join(self.architectures)} without a classification head: an embedding "
                "model (bi-encoder), not a cross-encoder. Pass --kind bi-encoder to rerank with it, or a cross-encoder"
            )
        labels = self.config.get("id2label", {"0": "x"})
        if len(labels) != 1:
            raise ModelLoadError(
                f"{self.folder} is a classifier with {len(labels)} labels; a cross-encoder for reranking has "
                "exactly one output logit"
            )

    def encode(self, tokenizer: Any, pairs: Sequence[Pair], cap: int) -> Encoded:
        was_cut = np.array([len(q) > cap or len(d or "") > cap for q, d in pairs], dtype=bool)
        items = encode_pairs(tokenizer, pairs, cap)
        overflow = np.array([bool(e.overflowing) for e in items], dtype=bool)
        return Encoded(items, overflow | was_cut, np.array([len(e.ids) for e in items], dtype=np.int64))

    def reduce(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return output

    def score(self, forward: Forward, items: Sequence[Any]) -> np.ndarray:
        return forward(list(items))[:, 0].astype(np.float64)

    def graph(self) -> Path:
        """The folder's graph with its last layer computed for the first token only, the one the head reads
        (first_token.py: 12-14% faster, the same logits), where that rewrite fits the graph. Only for the kit's
        own engines: ml-commons' ONNX Runtime 1.16.3 gives NaN on some cut graphs (XLM-R) from its second call."""
        return first_token_graph(self.own_graph())

    def export(self, folder: Path, target: Path) -> Path:
        return export_onnx(folder, target, classifier=True)
