"""Score (query, document) pairs with an ONNX model, in two steps the stand-in can schedule apart.

``encode`` tokenizes (cheap, per request, where a bad text fails only its own request); ``run`` feeds
encodings from any number of requests to ONNX Runtime, grouped by token length before padding so a
batch of mixed lengths wastes little compute. Scores always come back in input order.

A text is cut to ``max_length * MAX_CHARS_PER_TOKEN`` characters before tokenizing: a pair never needs
more than ``max_length`` tokens, and without the cut a multi-megabyte text would be tokenized whole
(with every overflow window kept), for nothing. The cut changes a score only when the first
``max_length`` tokens of a text average more than 64 characters each; such a pair is reported as
truncated.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cpu import cpu_info
from .errors import ConfigError, ModelLoadError, ScoringError, ToolMissingError
from .model import ScorerOptions, activate, onnx_path, quantized, read_json, resolve_model_dir
from .precision import (
    FASTER_BY,
    SPEED_ORDER,
    Fidelity,
    Mode,
    builtin_gate_pairs,
    cached_fidelity,
    cached_speed,
    load_gate_pairs,
    unsupported,
)
from .runtimes import onnxruntime_runner, openvino_runner

__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "Encoded",
    "PairScorer",
    "PrecisionChoice",
    "Scores",
    "choose_precision",
    "load_scorer",
]

MAX_CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class Scores:
    """One raw score per pair in input order (logit, or cosine for a bi-encoder), and which
    pairs had to be truncated to fit the model."""

    values: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class Encoded:
    """Tokenized pairs: one item per pair (an Encoding; for a bi-encoder the query's and the document's),
    whether each was truncated, and its token count (what scheduling budgets are measured in)."""

    items: list[Any]
    truncated: np.ndarray
    tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def slice(self, start: int, stop: int) -> Encoded:
        return Encoded(self.items[start:stop], self.truncated[start:stop], self.tokens[start:stop])

    @staticmethod
    def join(parts: Sequence[Encoded]) -> Encoded:
        return Encoded(
            [item for p in parts for item in p.items],
            np.concatenate([p.truncated for p in parts]) if parts else np.zeros(0, dtype=bool),
            np.concatenate([p.tokens for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        )


class PairScorer:
    """Scores (query, document) pairs with an ONNX model; thread-safe for concurrent calls.

    ``score`` returns raw values; ``predict`` applies the activation chosen at construction.
    ``kind="cross-encoder"``: the model's single logit (sigmoid in ``predict`` unless activation is "none").
    ``kind="bi-encoder"``: cosine similarity of mean-pooled embeddings of query and document.
    """

    def __init__(self, folder: Path, options: ScorerOptions, mode: Mode = "fp32") -> None:
        from tokenizers import Tokenizer

        self.folder, self.options, self.mode = folder, options, mode
        self.kind, self.activation, self.batch_size = options.kind, options.activation, options.batch_size
        self.choice = PrecisionChoice(mode, "asked for")
        self.onnx_file = onnx_file = onnx_path(folder)
        config = read_json(folder / "config.json")
        tok_config = read_json(folder / "tokenizer_config.json")
        if self.kind == "cross-encoder" and len(config.get("id2label", {"0": "x"})) != 1:
            raise ModelLoadError(
                f"{folder} is a classifier with {len(config['id2label'])} labels; a cross-encoder for "
                "reranking has exactly one output logit"
            )
        self.label = next(iter(config.get("id2label", {"0": "LABEL_0"}).values()))
        limits = [config.get("max_position_embeddings", 512), tok_config.get("model_max_length", 512)]
        if self.kind == "bi-encoder":  # sentence-transformers truncates to its own, often shorter, limit
            limits.append(read_json(folder / "sentence_bert_config.json").get("max_seq_length", 512))
        if options.max_length is not None:
            if options.max_length < 8:
                raise ConfigError(f"--max-length {options.max_length} is too short: a pair needs at least 8 tokens")
            limits.append(options.max_length)
        self.max_length = int(min(x for x in limits if isinstance(x, int) and x > 0))
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"cannot load {folder / 'tokenizer.json'}: {exc}") from exc
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self.tokenizer.no_padding()
        self.pad_id = int(config.get("pad_token_id", 0) or 0)
        threads = options.threads or os.cpu_count() or 1
        if mode in ("bf16", "fp32-openvino"):
            self.runner = openvino_runner(onnx_file, threads, "bf16" if mode == "bf16" else "f32")
        else:
            self.runner = onnxruntime_runner(quantized(onnx_file) if mode == "int8" else onnx_file, threads)
        self.input_names = self.runner.input_names

    # ------------------------------------------------------------------ public
    def encode(self, pairs: Sequence[tuple[str, str | None]]) -> Encoded:
        """Tokenize pairs (each text first cut to max_length * MAX_CHARS_PER_TOKEN characters). A pair without
        a document (None) is the query alone, as the transformers pipeline encodes an empty ``text_pair``."""
        cap = self.max_length * MAX_CHARS_PER_TOKEN
        was_cut = np.array([len(q) > cap or len(d or "") > cap for q, d in pairs], dtype=bool)
        if self.kind == "bi-encoder":
            queries = self.tokenizer.encode_batch([q[:cap] for q, _ in pairs])
            docs = self.tokenizer.encode_batch([(d or "")[:cap] for _, d in pairs])
            items: list[Any] = list(zip(queries, docs, strict=True))
            overflow = np.array([bool(d.overflowing) for d in docs], dtype=bool)
            tokens = np.array([len(q.ids) + len(d.ids) for q, d in items], dtype=np.int64)
        else:
            items = self.tokenizer.encode_batch([q[:cap] if d is None else (q[:cap], d[:cap]) for q, d in pairs])
            overflow = np.array([bool(e.overflowing) for e in items], dtype=bool)
            tokens = np.array([len(e.ids) for e in items], dtype=np.int64)
        return Encoded(items, overflow | was_cut, tokens)

    def run(self, items: Sequence[Any]) -> np.ndarray:
        """Raw scores for encoded pairs (from one request or many), in input order."""
        if not items:
            return np.zeros(0, dtype=np.float64)
        if self.kind == "bi-encoder":  # each distinct query is embedded once
            queries = {tuple(q.ids): q for q, _ in items}
            row = {key: i for i, key in enumerate(queries)}
            vectors = self._forward([*queries.values(), *(d for _, d in items)])
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            docs = vectors[len(queries) :]
            q_rows = vectors[[row[tuple(q.ids)] for q, _ in items]]
            return np.einsum("ij,ij->i", q_rows, docs).astype(np.float64)
        return self._forward(list(items))[:, 0].astype(np.float64)

    def score(self, pairs: Sequence[tuple[str, str | None]]) -> Scores:
        """Score pairs in input order. Empty input gives empty arrays."""
        encoded = self.encode(pairs)
        return Scores(self.run(encoded.items), encoded.truncated)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Scores after this scorer's activation (bi-encoder cosines are never squashed)."""
        raw = self.score(pairs).values
        return raw if self.kind == "bi-encoder" else activate(raw, self.activation)

    def count_tokens(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return [int(n) for n in self.encode(pairs).tokens]

    # ------------------------------------------------------------------ internals
    def _forward(self, encodings: list[Any]) -> np.ndarray:
        """Run the model over encodings, grouped by length into batches; output rows in input order."""
        outputs: list[np.ndarray | None] = [None] * len(encodings)
        for chunk in length_batches([len(e.ids) for e in encodings], self.batch_size):
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            types = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
                types[row, :n] = encodings[i].type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            try:
                result = self.runner(feed)
            except Exception as exc:  # the engine's own error types: a model or runtime fault
                raise ScoringError(f"the model failed on a batch of {len(chunk)} pairs: {exc}") from exc
            if self.kind == "bi-encoder":
                result = _mean_pool(result, mask)
            for row, i in enumerate(chunk):
                outputs[i] = result[row]
        return np.stack(outputs)  # type: ignore[arg-type]


#: A batch's longest pair may be at most this many times its shortest: padding stays under 10%.
BATCH_SPREAD = 1.1


def length_batches(lengths: Sequence[int], size: int, spread: float = BATCH_SPREAD) -> list[list[int]]:
    """Indices grouped for the model: sorted by token length, at most ``size`` per batch, and a new batch
    whenever a pair is more than ``spread`` times the batch's shortest. Every pair in a batch is padded to
    the longest, so one 512-token document among 40-token ones would otherwise make the whole batch cost
    512 tokens a pair: on the nasty-texts set (one long text in 27) that was 15x the work, and on SciFact
    top-100 windows (one request each) fixed slices of 32 ran about 1.3x slower."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and len(batches[-1]) < size and lengths[i] <= spread * max(lengths[batches[-1][0]], 1):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


@dataclass(frozen=True)
class PrecisionChoice:
    """The mode a scorer runs in, and why (what ``osrerank serve`` logs and ``/ping`` shows)."""

    mode: Mode
    reason: str
    figures: dict[str, Any] | None = None


def load_scorer(model: ScorerOptions | str | Path, **options: Any) -> PairScorer:
    """Resolve a folder or hub id and build a :class:`PairScorer` for it (``options``: ScorerOptions fields).
    A precision other than fp32 is checked by the fidelity gate first (see :mod:`osrerank.precision`).

    Example::

        scorer = load_scorer("models/ms-marco-MiniLM-L-6-v2")
        scorer.predict([("What is the capital of the United States?", "Washington, D.C. ...")])
    """
    chosen = model if isinstance(model, ScorerOptions) else ScorerOptions(model=str(model))
    chosen = replace(chosen, **options)
    folder = resolve_model_dir(chosen.model)
    if chosen.precision == "fp32":
        return PairScorer(folder, chosen)
    choice = choose_precision(folder, chosen)
    scorer = PairScorer(folder, chosen, choice.mode)
    scorer.choice = choice
    return scorer


def choose_precision(folder: Path, options: ScorerOptions, modes: Sequence[Mode] = SPEED_ORDER) -> PrecisionChoice:
    """Gate the asked mode (refused when it fails); for ``auto``, gate the ``modes`` this CPU runs, time fp32
    and those that pass, and take the fastest (see :mod:`osrerank.precision`)."""
    cpu = cpu_info()
    asked = options.precision
    if asked == "fp32":
        return PrecisionChoice("fp32", "asked for")
    if asked != "auto":
        why = unsupported(asked, cpu)  # type: ignore[arg-type]
        if why:
            raise ConfigError(f"--precision {asked}: {why}")
    source = options.gate_pairs or "the built-in sample (Python standard library docstrings)"
    groups = load_gate_pairs(options.gate_pairs) if options.gate_pairs else builtin_gate_pairs()
    key = [hashlib.sha256(onnx_path(folder).read_bytes()).hexdigest(), options.kind, str(options.max_length)]
    flags = ",".join(sorted(cpu.flags))
    notes: list[str] = []
    figures: dict[str, Any] = {}
    exact = functools.cache(lambda: PairScorer(folder, replace(options, precision="fp32")))  # on a cache miss only
    reference_scores: list[np.ndarray] = []

    def fp32(pairs: list[tuple[str, str]]) -> np.ndarray:
        return exact().score(pairs).values

    def reference(pairs: list[tuple[str, str]]) -> np.ndarray:  # every mode's gate runs on the same pairs: once
        if not reference_scores:
            reference_scores.append(fp32(pairs))
        return reference_scores[0]

    candidates: list[Mode] = [asked] if asked != "auto" else list(modes)  # type: ignore[list-item]
    passed: dict[Mode, PairScorer] = {}
    for mode in candidates:
        why = unsupported(mode, cpu)
        if why:
            notes.append(f"{mode}: {why.split(':')[0]}")
            continue
        try:
            candidate = PairScorer(folder, options, mode)
        except ToolMissingError as exc:
            if asked != "auto":
                raise
            notes.append(f"{mode}: {exc}")
            continue
        result: Fidelity = cached_fidelity(
            [*key, mode, flags], groups, lambda p, c=candidate: c.score(p).values, reference
        )
        figures[mode] = result.shown()
        claims_fp32 = mode == "fp32-openvino"
        if result.passes(exact=claims_fp32):
            if asked != "auto":
                return PrecisionChoice(mode, f"{mode} passed the fidelity gate on {source}: {result.shown()}", figures)
            passed[mode] = candidate
            notes.append(f"{mode} passed the fidelity gate on {source} ({result.shown()})")
            continue
        if asked != "auto":
            raise ConfigError(
                f"--precision {mode} changes the ranking too much on {source}: {'; '.join(result.failures())} "
                f"({result.shown()}). Use --precision fp32 (exact) or auto."
            )
        notes.append(f"{mode} failed the fidelity gate ({'; '.join(result.failures(exact=claims_fp32))})")
    if not passed:
        return PrecisionChoice("fp32", f"auto picked fp32 (exact): {'; '.join(notes)}", figures)
    speeds = {"fp32": cached_speed([*key, "fp32", flags], groups, fp32)}
    for mode, scorer in passed.items():
        speeds[mode] = cached_speed([*key, mode, flags], groups, lambda p, c=scorer: c.score(p).values)
    figures["pairs_per_s"] = {m: round(v, 1) for m, v in speeds.items()}
    timed = "timed here, pairs/s: " + ", ".join(f"{m} {v:.1f}" for m, v in speeds.items())
    best = max(passed, key=lambda m: speeds[m])
    if speeds[best] >= FASTER_BY * speeds["fp32"]:
        return PrecisionChoice(best, f"auto picked {best}, the fastest ({timed}); {'; '.join(notes)}", figures)
    return PrecisionChoice(
        "fp32",
        f"auto picked fp32 (exact): nothing that passed is {FASTER_BY}x faster ({timed}); {'; '.join(notes)}",
        figures,
    )
