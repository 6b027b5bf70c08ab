"""The fidelity gate: how a reduced-precision mode is judged against fp32, on what pairs, and its memory.

A reranker is only as good as the order it puts documents in, so a faster mode is judged against fp32 on
groups of (query, candidate documents), the shape of a rerank: the Spearman correlation of all scores, the
per-query overlap of the top 5, and (reported, not gated) the largest logit shift.

The pairs the gate runs on: a JSONL file of ``{"query": ..., "documents": [...]}`` (``--gate-pairs``, best:
your own queries and first-stage hits), or, by default, a sample built here from the docstrings of Python's
standard library: nothing shipped, the same on every machine, long passages with close candidates.
With judged queries (``--gate-qrels``: a BEIR folder, judged.py) a mode is also judged by what users measure:
reranking each judged query's BM25 top 25, its nDCG@10 must stay within ``RELEVANCE_DROP`` of fp32's. The
ranking gate alone can refuse a mode whose changes never cross a relevance grade, and pass one whose few
swaps do; the two together are what a reduced mode must keep.

Results and speeds are remembered in the kit cache per model file, pairs, mode and CPU flags, so each is
measured once per machine; every measurement is logged (``osrerank.gate``), so a test can count them.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import re
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .judged import JudgedGroup, judged_groups, mean_ndcg10
from .paths import cache_root

__all__ = [
    "EXACT_LOGITS",
    "GATE",
    "GATE_QUERIES",
    "RELEVANCE_DROP",
    "SPEED_PAIRS",
    "Fidelity",
    "Gate",
    "GateData",
    "Group",
    "Relevance",
    "builtin_gate_pairs",
    "fidelity",
    "gate_data",
    "load_gate_pairs",
    "measured_fidelity",
    "measured_relevance",
    "measured_speed",
    "pairs_of",
]

log = logging.getLogger("osrerank.gate")
# pairs a mode is timed on (after a few untimed ones): long passages, about 3 s a mode on 2 cores
SPEED_PAIRS = 64
# an exact mode's largest logit shift against ONNX Runtime fp32 (the exactness tests hold it to PyTorch)
EXACT_LOGITS = 1e-4

# a reduced mode's nDCG@10 on judged queries may be at most this much below fp32's
RELEVANCE_DROP = 0.005
# judged queries the gate reranks (their BM25 top 25 each): 2,500 pairs, measured once per model, mode and CPU
GATE_QUERIES = 100

Group = tuple[str, list[str]]
Score = Callable[[list[tuple[str, str]]], np.ndarray]


@dataclass(frozen=True)
class Gate:
    spearman: float = 0.999
    top5_mean: float = 0.98
    top5_min: float = 0.8


GATE = Gate()


@dataclass(frozen=True)
class Fidelity:
    """A mode's scores against fp32's on the same pairs."""

    spearman: float
    top5_mean: float
    top5_min: float
    max_abs_logit_diff: float

    def failures(self, gate: Gate = GATE, *, exact: bool = False) -> list[str]:
        """What fails the gate; ``exact``: the mode claims fp32's scores, so its logits must match too."""
        out = []
        if exact and self.max_abs_logit_diff > EXACT_LOGITS:
            out.append(f"largest logit shift {self.max_abs_logit_diff:.3g} > {EXACT_LOGITS} (not exact)")
        if self.spearman < gate.spearman:
            out.append(f"Spearman {self.spearman:.5f} < {gate.spearman}")
        if self.top5_mean < gate.top5_mean:
            out.append(f"top-5 overlap mean {self.top5_mean:.3f} < {gate.top5_mean}")
        if self.top5_min < gate.top5_min:
            out.append(f"top-5 overlap min {self.top5_min:.2f} < {gate.top5_min}")
        return out

    def passes(self, gate: Gate = GATE, *, exact: bool = False) -> bool:
        return not self.failures(gate, exact=exact)

    def shown(self) -> str:
        return (
            f"Spearman {self.spearman:.5f}, top-5 overlap mean {self.top5_mean:.3f} / min {self.top5_min:.2f}, "
            f"largest logit shift {self.max_abs_logit_diff:.3g}"
        )


@dataclass(frozen=True)
class Relevance:
    """A mode's nDCG@10 against fp32's on the same judged queries and candidates."""

    ndcg10: float
    ndcg10_fp32: float
    queries: int

    @property
    def drop(self) -> float:
        return self.ndcg10_fp32 - self.ndcg10

    def failures(self) -> list[str]:
        if self.drop > RELEVANCE_DROP:
            return [
                f"nDCG@10 {self.ndcg10:.4f} is {self.drop:.4f} below fp32's {self.ndcg10_fp32:.4f} (> {RELEVANCE_DROP})"
            ]
        return []

    def shown(self) -> str:
        return f"nDCG@10 {self.ndcg10:.4f} vs fp32 {self.ndcg10_fp32:.4f} on {self.queries} judged queries"


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    return ranks


def fidelity(reference: np.ndarray, candidate: np.ndarray, sizes: Sequence[int], k: int = 5) -> Fidelity:
    """Compare ``candidate`` scores with ``reference`` ones; ``sizes``: documents per query, in order."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    overlaps, start = [], 0
    for size in sizes:
        ref, got = reference[start : start + size], candidate[start : start + size]
        top = min(k, size)
        best_ref, best_got = np.argsort(-ref, kind="stable")[:top], np.argsort(-got, kind="stable")[:top]
        overlaps.append(len(set(best_ref) & set(best_got)) / top)
        start += size
    spearman = float(np.corrcoef(_ranks(reference), _ranks(candidate))[0, 1]) if len(reference) > 1 else 1.0
    shift = float(np.max(np.abs(reference - candidate))) if len(reference) else 0.0
    return Fidelity(spearman, float(np.mean(overlaps)), float(np.min(overlaps)), shift)


def load_gate_pairs(path: str | Path) -> list[Group]:
    """Read ``{"query": str, "documents": [str, ...]}`` lines; refuse what the gate cannot judge."""
    groups: list[Group] = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read --gate-pairs {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            query, docs = row["query"], row["documents"]
            if not isinstance(query, str) or not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f'--gate-pairs {path}, line {number}: expected {{"query": "...", "documents": ["...", ...]}}'
            ) from None
        groups.append((query, list(docs)))
    if len(groups) < 4 or min(len(d) for _, d in groups) < 5:
        raise ConfigError(f"--gate-pairs {path}: the gate needs at least 4 queries with at least 5 documents each")
    return groups


_WORD = re.compile(r"[a-z]{3,}")


def builtin_gate_pairs(queries: int = 12, per_query: int = 24) -> list[Group]:
    """Groups from the standard library's own docstrings: each query is the first sentence of a long
    docstring, its candidates the long docstrings sharing most words with it (itself among them)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for file in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                text = ast.get_docstring(node)
                if text and 800 <= len(text) <= 6000:
                    docs.append(" ".join(text.split()))
    if len(docs) < per_query * 2:
        raise ConfigError(
            f"cannot build the built-in gate sample from {root} (Python {sys.version.split()[0]}): pass --gate-pairs"
        )
    words = [set(_WORD.findall(d.lower())) for d in docs]
    step = len(docs) // queries
    groups: list[Group] = []
    for i in range(queries):
        source = docs[i * step]
        query = re.split(r"(?<=[.!?])\s", source, maxsplit=1)[0][:300]
        q_words = set(_WORD.findall(query.lower()))
        ranked = sorted(range(len(docs)), key=lambda j: (-len(q_words & words[j]), j))[:per_query]
        groups.append((query, [docs[j] for j in ranked]))
    return groups


@dataclass(frozen=True)
class GateData:
    """What the gates run on: the ranking gate's groups (and where they come from), and the judged queries
    of ``--gate-qrels`` (empty without it). The calibration of int8-static reads the same groups."""

    source: str
    groups: list[Group]
    judged: list[JudgedGroup]


def gate_data(gate_pairs: str | None = None, gate_qrels: str | None = None) -> GateData:
    """``--gate-pairs`` if given, else the judged queries' candidates if ``--gate-qrels`` is, else the built-in
    sample; judged queries with fewer than two candidates (nothing to order) are left out."""
    judged = [g for g in judged_groups(gate_qrels, queries=GATE_QUERIES) if len(g.ids) > 1] if gate_qrels else []
    if gate_pairs:
        return GateData(gate_pairs, load_gate_pairs(gate_pairs), judged)
    if judged:
        return GateData(
            f"{len(judged)} judged queries of {gate_qrels}", [(g.query, g.documents) for g in judged], judged
        )
    return GateData("the built-in sample (Python standard library docstrings)", builtin_gate_pairs(), judged)


def pairs_of(groups: Sequence[Group]) -> tuple[list[tuple[str, str]], list[int]]:
    return [(q, d) for q, docs in groups for d in docs], [len(docs) for _, docs in groups]


def _remembered(folder: str, key: Sequence[object], measure: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``measure()``, kept in the kit cache under a digest of ``key`` (gate results and speeds alike)."""
    digest = hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:24]
    path = cache_root() / folder / f"{digest}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def measured_fidelity(key: Sequence[str], groups: Sequence[Group], score: Score, reference: Score) -> Fidelity:
    """The fidelity of ``score`` against ``reference`` on ``groups``, measured once per ``key`` (model, mode,
    CPU) and remembered."""

    def measure() -> dict[str, float]:
        pairs, sizes = pairs_of(groups)
        started = time.perf_counter()
        result = asdict(fidelity(reference(pairs), score(pairs), sizes))
        log.info(json.dumps({"gate": "fidelity", "measured": list(key), "s": round(time.perf_counter() - started, 2)}))
        return result

    return Fidelity(**_remembered("precision-gate", [*key, groups], measure))


def measured_relevance(key: Sequence[str], groups: Sequence[JudgedGroup], score: Score, reference: Score) -> Relevance:
    """nDCG@10 of ``score`` and of ``reference`` reranking ``groups``, measured once per ``key`` and remembered."""

    def measure() -> dict[str, float]:
        pairs = [(g.query, d) for g in groups for d in g.documents]
        started = time.perf_counter()
        result = {
            "ndcg10": mean_ndcg10(groups, score(pairs)),
            "ndcg10_fp32": mean_ndcg10(groups, reference(pairs)),
            "queries": len(groups),
        }
        log.info(json.dumps({"gate": "relevance", "measured": list(key), "s": round(time.perf_counter() - started, 2)}))
        return result

    judged = [[g.query, g.ids, g.documents, sorted(g.judgments.items())] for g in groups]
    return Relevance(**_remembered("precision-relevance", [*key, judged], measure))


def measured_speed(key: Sequence[str], groups: Sequence[Group], score: Score) -> float:
    """Pairs per second of ``score`` on the first ``SPEED_PAIRS`` gate pairs (a few untimed first), measured
    once per ``key`` and remembered like the gate."""

    def measure() -> dict[str, float]:
        pairs, _ = pairs_of(groups)
        score(pairs[:8])  # first calls allocate and compile
        timed = pairs[8 : 8 + SPEED_PAIRS]
        started = time.perf_counter()
        score(timed)
        speed = len(timed) / (time.perf_counter() - started)
        log.info(json.dumps({"gate": "speed", "measured": list(key), "pairs_per_s": round(speed, 1)}))
        return {"pairs_per_s": speed}

    return float(_remembered("precision-speed", [*key, "speed", SPEED_PAIRS, groups], measure)["pairs_per_s"])
