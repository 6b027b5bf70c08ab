"""The ``model`` settings section, and the scorer that runs it: (query, document) pairs in, one score each out,
in two steps the stand-in can schedule apart.

``encode`` tokenizes (cheap, per request, where a bad text fails only its own request); ``run`` feeds
encodings from any number of requests to the engine, grouped by token length before padding so a batch of
mixed lengths wastes little compute. Scores always come back in input order. What differs between model
families (how a pair is encoded, what an output means) is the kind's (kinds/); which engine and graph run it
is the precision mode's (precision.py), decided once when the scorer loads.

A text is cut to ``max_length * MAX_CHARS_PER_TOKEN`` characters before tokenizing: a pair never needs
more than ``max_length`` tokens, and without the cut a multi-megabyte text would be tokenized whole
(with every overflow window kept), for nothing. The cut changes a score only when the first
``max_length`` tokens of a text average more than 64 characters each; such a pair is reported as
truncated.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from .calibrated import calibrated_graph, calibration_pairs
from .config.section import Section, setting
from .config.sources import validated
from .errors import ScoringError
from .gate import gate_data
from .kinds import KINDS, Encoded, ModelKind, Pair, kind_of
from .kinds.decoder import DEFAULT_INSTRUCTION, FORMATS
from .model import DEFAULT_MODEL, Activation, activate, resolve_model_dir
from .precision import MODES, PRECISIONS, Decision, Host, ModeSpec, choose
from .runtimes import Runner, onnxruntime_runner, openvino_runner
from .score_cache import ScoreCache

__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "ModelOptions",
    "PairScorer",
    "Scores",
    "length_batches",
    "load_scorer",
]

MAX_CHARS_PER_TOKEN = 64
#: On OpenVINO a batch is padded to a multiple of this many tokens (never past max_length): OpenVINO keeps
#: compiled state for every input shape it meets, so widths that vary token by token cost memory and time.
#: Measured on the test model's SciFact pairs (mean 381 tokens, Xeon with AMX, one interleaved run): bf16 74.7 ->
#: 81.7 pairs/s, f32 28.4 -> 27.9 (noise; logits within 1.5e-5 of unpadded); 300 random shapes grew the RSS by
#: 413 MB instead of 653 MB.
OPENVINO_WIDTH_STEP = 32
Kind = Literal[("auto", *KINDS)]  # type: ignore[valid-type]
Precision = Literal[PRECISIONS]  # type: ignore[valid-type]


class ModelOptions(Section):
    """What loads and scores: the model, its kind, how its score is shaped, the precision it runs in and the
    length it reads. Every place that loads a model takes this one section: the stand-in (as JSON), the
    TorchServe handler, the in-cluster package, the benchmarks."""

    shorthand = "path"

    path: str = setting(DEFAULT_MODEL, "Model folder or Hugging Face Hub id.", flag="--model")
    kind: Kind = setting(
        "auto",
        "What the model is [default: auto, from the folder: a causal LM is a decoder, anything else a cross-encoder]: "
        + "; ".join(f"{n}: {k.summary}" for n, k in KINDS.items())
        + ".",
    )
    decoder_format: Literal[tuple(FORMATS)] | None = setting(  # type: ignore[valid-type]
        None, "How a decoder reranker scores [default: what its folder says (the hub id in its config)]."
    )
    instruction: str | None = setting(
        None, f"The instruction a qwen3-reranker prompt carries [default: {DEFAULT_INSTRUCTION!r}]."
    )
    activation: Activation = setting(
        "sigmoid",
        "Score activation: sigmoid (the tutorial's, SageMaker's HF text-classification) or none (raw logits).",
    )
    precision: Precision = setting(
        "fp32",
        "fp32: exact. bf16 (OpenVINO; CPUs with AVX512-BF16/AMX) or int8: reduced precision, refused unless they keep "
        "the ranking (the fidelity gate). auto: of fp32 and the modes that pass, the fastest as timed on this machine. "
        "Stand-in and opensearch targets.",
    )
    gate_pairs: str | None = setting(
        None,
        'JSONL of {"query": ..., "documents": [...]} from your data for the precision gate [default: a built-in '
        "sample].",
    )
    gate_qrels: str | None = setting(
        None,
        "Judged queries for the precision gate: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) or a "
        "qrels file in one. A reduced mode must then also keep nDCG@10 within 0.005 of fp32's, reranking the first "
        "100 judged queries' BM25 top 25.",
    )
    max_length: int | None = setting(
        None,
        "Cut each (query, document) pair to this many tokens: faster, may cost relevance [default: the model's "
        "limit, 512]. Stand-in and opensearch targets.",
    )
    batch_size: int = setting(32, "Pairs per model run.", ge=1)
    threads: int | None = setting(None, "Engine threads [default: all CPUs].", ge=1)

    @field_validator("max_length")
    @classmethod
    def _long_enough(cls, v: int | None) -> int | None:
        if v is not None and v < 8:
            raise ValueError(f"{v} is too short: a pair needs at least 8 tokens")
        return v

    @field_validator("path", "gate_pairs", "gate_qrels")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        """An existing folder or file as an absolute path, so that a server started elsewhere finds it."""
        if v is None:
            return v
        path = Path(v).expanduser()
        return str(path.resolve()) if path.exists() else v


@dataclass(frozen=True)
class Scores:
    """One raw score per pair in input order (logit, or cosine for a bi-encoder), and which
    pairs had to be truncated to fit the model."""

    values: np.ndarray
    truncated: np.ndarray


class PairScorer:
    """Scores (query, document) pairs with a model folder in one precision mode; thread-safe for concurrent calls.

    ``score`` returns raw values; ``predict`` applies the activation (where the kind is squashed). With a
    ``cache_mb`` bound, scores of pairs already scored are kept (score_cache.py) and ``score`` runs the model
    only for the others; the stand-in consults the same cache before it tokenizes.
    """

    def __init__(
        self, folder: Path, options: ModelOptions, mode: str = "fp32", cache_mb: float = 0, host: Host = "kit"
    ) -> None:
        self.folder, self.options, self.mode = folder, options, mode
        self.activation, self.batch_size = options.activation, options.batch_size
        self.kind: ModelKind = KINDS[kind_of(options.kind, folder)](folder, options)
        self.kind.check_kit()
        self.decision = Decision(mode, "asked for")
        # ``host``: where the model will run. The kit's rewrites of a graph are checked on this process's ONNX
        # Runtime only, so a scorer standing in for another runtime (ml-commons') scores the folder's own graph.
        self.onnx_file = self.kind.graph() if host == "kit" else self.kind.own_graph()
        limits = [*self.kind.limits(), *([options.max_length] if options.max_length else [])]
        self.max_length = int(min(x for x in limits if isinstance(x, int) and x > 0))
        self.tokenizer = self.kind.tokenizer(self.max_length)
        self.pad_id = int(self.kind.config.get("pad_token_id", 0) or 0)
        threads = options.threads or os.cpu_count() or 1
        self.width_step = OPENVINO_WIDTH_STEP if MODES[mode].engine == "openvino" else 1
        self.runner = (
            self.kind.runner()
            if self.kind.takes_text
            else _runner(MODES[mode], self.onnx_file, threads, self._calibration)
        )
        self.cache_identity = [
            str(self.onnx_file),
            mode,
            str(self.max_length),
            self.kind.name,
            str(options.instruction),
        ]
        self.cache = ScoreCache(cache_mb, self.cache_identity)

    @property
    def label(self) -> str:
        return self.kind.label

    @property
    def squashed(self) -> bool:
        """Whether scores go through the activation (a bi-encoder's cosine does not)."""
        return self.kind.squashed

    # ------------------------------------------------------------------ public
    def encode(self, pairs: Sequence[Pair]) -> Encoded:
        """Tokenize pairs (each text first cut to max_length * MAX_CHARS_PER_TOKEN characters)."""
        return self.kind.encode(self.tokenizer, pairs, self.max_length * MAX_CHARS_PER_TOKEN)

    def run(self, items: Sequence[Any]) -> np.ndarray:
        """Raw scores for encoded pairs (from one request or many), in input order."""
        if not items:
            return np.zeros(0, dtype=np.float64)
        return self.kind.score(self._forward, items)

    def score(self, pairs: Sequence[Pair]) -> Scores:
        """Score pairs in input order. Empty input gives empty arrays."""
        found = self.cache.lookup(pairs)
        if found.missing:
            encoded = self.encode([pairs[i] for i in found.missing])
            self.cache.fill(found, self.run(encoded.items), encoded.truncated)
        return Scores(found.values, found.truncated)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Scores after this scorer's activation (a bi-encoder's cosines are never squashed)."""
        raw = self.score(pairs).values
        return activate(raw, self.activation) if self.squashed else raw

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalized embedding per text (a model kind that makes embeddings: the bi-encoder)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return self.kind.embed(self.tokenizer, self._forward, texts, self.max_length * MAX_CHARS_PER_TOKEN)

    def count_tokens(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        return [int(n) for n in self.encode(pairs).tokens]

    # ------------------------------------------------------------------ internals
    def _calibration(self) -> Path:
        """This model quantized on the gate's pairs as this scorer encodes them (int8-static): the first
        CALIBRATION_PAIRS pairs taken across the groups (``calibration_pairs``), fed as the model sees them."""
        pairs = calibration_pairs(gate_data(self.options.gate_pairs, self.options.gate_qrels).groups)
        key = json.dumps([pairs, self.max_length, self.kind.name, self.options.instruction])
        return calibrated_graph(self.onnx_file, lambda: self.calibration_feeds(pairs), key)

    def calibration_feeds(self, pairs: Sequence[Pair]) -> list[dict[str, np.ndarray]]:
        """``pairs`` as the model's inputs, a few pairs a batch of about one length: what NNCF calibrates on."""
        items = self.encode(pairs).items
        return [self._feed(items, chunk) for chunk in length_batches([len(e.ids) for e in items], 8)]

    def _feed(self, encodings: Sequence[Any], chunk: Sequence[int]) -> dict[str, np.ndarray]:
        """The model's inputs for ``encodings[chunk]``, padded to the longest (on the kind's side), and on OpenVINO
        up to a multiple of OPENVINO_WIDTH_STEP within max_length."""
        longest = max(len(encodings[i].ids) for i in chunk)
        width = max(longest, min(-(-longest // self.width_step) * self.width_step, self.max_length))
        ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        types = np.zeros((len(chunk), width), dtype=np.int64)
        for row, i in enumerate(chunk):
            n = len(encodings[i].ids)
            at = slice(width - n, width) if self.kind.pad_side == "left" else slice(0, n)
            ids[row, at] = encodings[i].ids
            mask[row, at] = 1
            types[row, at] = encodings[i].type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def _forward(self, encodings: list[Any]) -> np.ndarray:
        """Run the model over encodings, grouped by length into batches; output rows in input order. A kind that
        takes text (a text pipeline) hands over its own feed of strings: it is run as it is."""
        if self.kind.takes_text:
            feed = encodings[0]
            try:
                return np.asarray(self.runner(feed))
            except Exception as exc:  # the engine's own error types
                raise ScoringError(
                    f"the model failed on a batch of {len(next(iter(feed.values())))} pairs: {exc}"
                ) from exc
        outputs: list[np.ndarray | None] = [None] * len(encodings)
        chunks = length_batches([len(e.ids) for e in encodings], self.batch_size)
        for at in range(0, len(chunks), BATCHES_IN_FLIGHT):
            window = chunks[at : at + BATCHES_IN_FLIGHT]
            feeds = [self._feed(encodings, chunk) for chunk in window]
            try:  # several batches at once: an engine with several streams overlaps them
                results = self.runner.many(feeds)
            except Exception as exc:  # the engine's own error types: a model or runtime fault
                raise ScoringError(f"the model failed on {sum(map(len, window))} pairs: {exc}") from exc
            for chunk, feed, result in zip(window, feeds, results, strict=True):
                for i, value in zip(chunk, self.kind.reduce(result, feed["attention_mask"]), strict=True):
                    outputs[i] = value
        return np.stack(outputs)  # type: ignore[arg-type]


#: Batches handed to the engine at once (``Runner.many``): enough for OpenVINO's streams to overlap, few enough that
#: the unreduced outputs held meanwhile stay small (a bi-encoder's are every token's vector).
BATCHES_IN_FLIGHT = 8
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


def load_scorer(
    model: ModelOptions | str | Path, host: Host = "kit", cache_mb: float = 0, **changes: Any
) -> PairScorer:
    """Resolve a folder or hub id and build a :class:`PairScorer` for it in the precision its options ask for,
    decided here (see :func:`osrerank.precision.choose`); ``cache_mb``: keep scores of pairs already scored
    within this bound (0: none); ``changes``: ModelOptions fields.

    Example::

        scorer = load_scorer("models/ms-marco-MiniLM-L-6-v2")
        scorer.predict([("What is the capital of the United States?", "Washington, D.C. ...")])
    """
    options = model if isinstance(model, ModelOptions) else ModelOptions(path=str(model))
    if changes:
        options = validated(ModelOptions, {**options.model_dump(), **changes}, ("model",))  # ConfigError if bad
    folder = resolve_model_dir(options.path)
    if options.precision == "fp32":
        return PairScorer(folder, options, cache_mb=cache_mb, host=host)
    loaded: dict[str, PairScorer] = {}

    def load(mode: str) -> PairScorer:
        if mode not in loaded:
            loaded[mode] = PairScorer(folder, options, mode, host=host)
        return loaded[mode]

    def key() -> list[str]:  # the fp32 load checks the folder, converts it once and resolves its kind
        exact = load("fp32")
        return [hashlib.sha256(exact.onnx_file.read_bytes()).hexdigest(), exact.kind.name, str(options.max_length)]

    decision = choose(
        options.precision, host, key, lambda mode: _raw(load(mode)), options.gate_pairs, options.gate_qrels
    )
    scorer = load(decision.mode)
    scorer.decision = decision
    scorer.cache = ScoreCache(cache_mb, scorer.cache_identity)
    return scorer


def _runner(mode: ModeSpec, onnx_file: Path, threads: int, calibrated: Callable[[], Path]) -> Runner:
    """A precision mode's engine on its form of the graph (``calibrated()``: the int8-static one)."""
    graph = calibrated() if mode.calibrated else mode.graph(onnx_file)
    if mode.engine == "openvino":
        return openvino_runner(graph, threads, mode.hint)
    return onnxruntime_runner(graph, threads)


def _raw(scorer: PairScorer) -> Any:
    return lambda pairs: scorer.score(pairs).values
