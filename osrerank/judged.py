"""Judged rerank groups from a BEIR folder, for the relevance gate and the benchmarks: each judged query with its
BM25 top k from the corpus (title + ". " + text, as a reranker sees them) and its judgments, with no cluster.

BM25 here is a plain Python one (k1=1.2, b=0.75, Lucene's idf, lower-cased word tokens) so the groups are the
same on every machine; its top 25 is close to, not identical with, OpenSearch's. It holds the corpus's postings
in memory, so it takes corpora up to ``MAX_DOCUMENTS``; beyond that, judge with your own first stage's hits
(``--gate-pairs``).

nDCG@10 is trec_eval's (and ir_measures'): gains are the judgment grades, discounted by log2(rank + 1), over
the ideal order of every judged document of the query, retrieved or not.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError

__all__ = ["MAX_DOCUMENTS", "JudgedGroup", "judged_groups", "mean_ndcg10", "ndcg10"]

TOKEN = re.compile(r"\w+")
K1, B = 1.2, 0.75
MAX_DOCUMENTS = 500_000


@dataclass(frozen=True)
class JudgedGroup:
    """One judged query: its text, its candidates' ids and texts (BM25 order) and its judgments."""

    query: str
    ids: list[str]
    documents: list[str]
    judgments: dict[str, int]


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def _folder_and_qrels(path: Path) -> tuple[Path, Path]:
    """A BEIR folder (its qrels/test.tsv) or a qrels TSV inside one (its folder: two levels up)."""
    if path.is_dir():
        return path, path / "qrels" / "test.tsv"
    return path.parent.parent, path


def _read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def judged_groups(path: str | Path, queries: int | None = None, k: int = 25, skip: int = 0) -> list[JudgedGroup]:
    """Judged queries ``skip .. skip + queries`` (qrels order) with their BM25 top ``k``."""
    folder, qrels_file = _folder_and_qrels(Path(path))
    needed = [folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise ConfigError(
            f"--gate-qrels {path}: {', '.join(missing)} not found; give a BEIR folder (corpus.jsonl, queries.jsonl, "
            "qrels/test.tsv) or a qrels TSV inside one"
        )
    judgments: dict[str, dict[str, int]] = {}
    for number, line in enumerate(qrels_file.read_text(encoding="utf-8").splitlines(), 1):
        cells = line.split("\t") if "\t" in line else line.split()
        if (number == 1 and cells[0].strip() == "query-id") or not line.strip():
            continue
        if len(cells) == 4:  # TREC: query 0 document grade
            cells = [cells[0], cells[2], cells[3]]
        try:
            judgments.setdefault(cells[0].strip(), {})[cells[1].strip()] = int(cells[2])
        except (IndexError, ValueError):
            raise ConfigError(f"{qrels_file}, line {number}: expected query-id, corpus-id, score") from None
    docs = _read_jsonl(folder / "corpus.jsonl")
    if len(docs) > MAX_DOCUMENTS:
        raise ConfigError(
            f"--gate-qrels {path}: {len(docs):,} documents is more than the gate's own BM25 holds "
            f"({MAX_DOCUMENTS:,}); judge with your first stage's hits instead (--gate-pairs)"
        )
    text_of = {str(q["_id"]): q["text"] for q in _read_jsonl(folder / "queries.jsonl")}
    chosen = [q for q in judgments if q in text_of][skip:]
    chosen = chosen[:queries] if queries is not None else chosen
    if not chosen:
        raise ConfigError(f"--gate-qrels {path}: no judged query is in queries.jsonl")
    ids = [str(d["_id"]) for d in docs]
    texts = [f"{d.get('title', '')}. {d.get('text', '')}" if d.get("title") else d.get("text", "") for d in docs]
    top = _bm25(texts, ids)
    groups = []
    for q in chosen:
        hits = top(text_of[q], k)
        groups.append(JudgedGroup(text_of[q], [ids[i] for i in hits], [texts[i] for i in hits], judgments[q]))
    return groups


def _bm25(texts: Sequence[str], ids: Sequence[str]):
    tfs = [Counter(_tokens(t)) for t in texts]
    lengths = [sum(tf.values()) for tf in tfs]
    avgdl = sum(lengths) / max(len(lengths), 1)
    df: Counter[str] = Counter()
    for tf in tfs:
        df.update(tf.keys())
    idf = {t: math.log(1 + (len(texts) - n + 0.5) / (n + 0.5)) for t, n in df.items()}
    postings: dict[str, list[tuple[int, int]]] = {}
    for i, tf in enumerate(tfs):
        for t, c in tf.items():
            postings.setdefault(t, []).append((i, c))

    def top(query: str, k: int) -> list[int]:
        scores: dict[int, float] = {}
        for t in _tokens(query):
            for i, c in postings.get(t, ()):
                norm = K1 * (1 - B + B * lengths[i] / avgdl)
                scores[i] = scores.get(i, 0.0) + idf[t] * c * (K1 + 1) / (c + norm)
        return sorted(scores, key=lambda i: (-scores[i], ids[i]))[:k]

    return top


def ndcg10(ids: Sequence[str], scores: np.ndarray, judgments: dict[str, int]) -> float:
    """nDCG@10 of ``ids`` ordered by ``scores`` (ties: the given order), against ``judgments``."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:10]
    gain = sum(max(judgments.get(ids[i], 0), 0) / math.log2(rank + 2) for rank, i in enumerate(order))
    ideal = sorted((g for g in judgments.values() if g > 0), reverse=True)[:10]
    best = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return gain / best if best else 0.0


def mean_ndcg10(groups: Sequence[JudgedGroup], scores: np.ndarray) -> float:
    """Mean nDCG@10 over ``groups`` with ``scores`` for their candidates, concatenated in order."""
    values, start = [], 0
    for group in groups:
        values.append(ndcg10(group.ids, scores[start : start + len(group.ids)], group.judgments))
        start += len(group.ids)
    return float(np.mean(values)) if values else 0.0
