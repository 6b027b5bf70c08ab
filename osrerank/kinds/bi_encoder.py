"""Kind ``bi-encoder``: query and document embedded apart (mean pooling), the score is their cosine (a
sentence-transformers retriever such as all-MiniLM-L6-v2, used as a reranker). Served by the stand-in only:
the other targets' servers and ml-commons' TEXT_SIMILARITY expect one logit per pair."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..model import export_onnx, read_json
from .base import Encoded, Forward, ModelKind, Pair

__all__ = ["BiEncoder"]


class BiEncoder(ModelKind):
    name = "bi-encoder"
    summary = "query and document embedded apart, the cosine of their mean-pooled embeddings"
    targets = frozenset({"standin"})
    squashed = False
    embeds = True

    def check(self) -> None:
        if self.has_classifier:
            raise ModelLoadError(
                f"{self.folder} is a {', '.join(self.architectures)}: a cross-encoder, which scores a query and a "
                "document together. Pass --kind cross-encoder (the default), or an embedding model's folder"
            )

    def check_kit(self) -> None:
        if self.pooling != "MEAN":
            raise ModelLoadError(
                f"{self.folder} pools its embeddings by {self.pooling}: the kit's scorer pools by mean only. Use "
                "--embedding-target opensearch (ml-commons pools as the folder says)"
            )

    @property
    def pooling(self) -> str:
        """ml-commons' name of the folder's pooling (sentence-transformers' 1_Pooling/config.json; mean without)."""
        config = read_json(self.folder / "1_Pooling" / "config.json")
        for key, name in (("cls_token", "CLS"), ("max_tokens", "MAX"), ("mean_sqrt_len_tokens", "MEAN_SQRT_LEN")):
            if config.get(f"pooling_mode_{key}"):
                return name
        return "MEAN"

    @property
    def normalized(self) -> bool:
        """Whether sentence-transformers normalizes its embeddings (a Normalize module)."""
        modules = self.folder / "modules.json"
        return modules.exists() and "Normalize" in modules.read_text()

    @property
    def dimension(self) -> int:
        pooling = read_json(self.folder / "1_Pooling" / "config.json")
        return int(pooling.get("word_embedding_dimension") or self.config["hidden_size"])

    def embed(self, tokenizer: Any, forward: Forward, texts: Sequence[str], cap: int) -> np.ndarray:
        """Mean-pooled, L2-normalized embeddings (what all-MiniLM-L6-v2 makes with its Normalize module)."""
        vectors = forward(tokenizer.encode_batch_fast([t[:cap] for t in texts]))
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def limits(self) -> list[int]:
        # sentence-transformers truncates to its own, often shorter, limit
        return [*super().limits(), read_json(self.folder / "sentence_bert_config.json").get("max_seq_length", 512)]

    def encode(self, tokenizer: Any, pairs: Sequence[Pair], cap: int) -> Encoded:
        was_cut = np.array([len(q) > cap or len(d or "") > cap for q, d in pairs], dtype=bool)
        queries = tokenizer.encode_batch_fast([q[:cap] for q, _ in pairs])
        docs = tokenizer.encode_batch_fast([(d or "")[:cap] for _, d in pairs])
        items: list[Any] = list(zip(queries, docs, strict=True))
        overflow = np.array([bool(d.overflowing) for d in docs], dtype=bool)
        tokens = np.array([len(q.ids) + len(d.ids) for q, d in items], dtype=np.int64)
        return Encoded(items, overflow | was_cut, tokens)

    def reduce(self, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = mask[..., None].astype(output.dtype)
        return (output * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def score(self, forward: Forward, items: Sequence[Any]) -> np.ndarray:
        queries = {tuple(q.ids): q for q, _ in items}  # each distinct query is embedded once
        row = {key: i for i, key in enumerate(queries)}
        vectors = forward([*queries.values(), *(d for _, d in items)])
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        docs = vectors[len(queries) :]
        q_rows = vectors[[row[tuple(q.ids)] for q, _ in items]]
        return np.einsum("ij,ij->i", q_rows, docs).astype(np.float64)

    def export(self, folder: Path, target: Path) -> Path:
        return export_onnx(folder, target, classifier=False)
